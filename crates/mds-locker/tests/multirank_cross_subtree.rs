//! Renames, links and rmdirs that join different ranks' subtrees (issue 6, simulator
//! `--cross-subtree`). Each test pins down one root cause the simulator found, without the
//! simulator: the leader's view of a lock's object through its replica (§4.7, §4.12), the
//! answer to FindIno for an inode whose creation is not yet safe (§5.1), the xlocks of an
//! exported inode (§4.17, §5.2 RENAME), and the emptiness check of an rmdir whose
//! directory inode is only replicated on the leader (§5.2 RMDIR, §8 fact 63).
//!
//! Every delivery is followed by the cluster invariants and by the cross-rank form of "never
//! two xlock holders" (§4.7) the simulator checks: the auth's holders and every replica
//! copy's name at most one request that is not XLOCKDONE, all of one client.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::{LockType, Machine};
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::ids::ObjKey;
use mds_locker::{
    ClientRequest, Effect, Errno, Event, FilePath, Ino, Linkage, LockId, LockOp, LockerConfig, ObjRef, Op,
    ReqId,
};

type Holders = BTreeMap<String, Vec<(u32, ReqId, Option<u64>, bool)>>;

/// §4.7 across ranks: at most one active xlock holder per lock, all of one client.
fn xlock_holders_ok(c: &Cluster) -> Result<(), String> {
    let mut by_key: Holders = BTreeMap::new();
    for l in c.lockers() {
        let cache = l.cache();
        let objs = cache.inode_ids().map(ObjRef::Inode).chain(cache.dentry_ids().map(ObjRef::Dentry));
        for obj in objs.collect::<Vec<_>>() {
            for id in cache.lock_ids(obj) {
                let Ok(lock) = cache.lock(id) else { continue };
                if lock.machine() == Machine::Local {
                    continue;
                }
                let key = cache.lock_key(id).map_or_else(|| format!("{id:?}"), |k| k.to_string());
                for h in lock.xlock_holders() {
                    by_key.entry(key.clone()).or_default().push((cache.rank(), h.req, h.client, h.done));
                }
            }
        }
    }
    for (key, holders) in by_key {
        let active: BTreeSet<ReqId> = holders.iter().filter(|h| !h.3).map(|h| h.1).collect();
        let clients: BTreeSet<Option<u64>> = holders.iter().map(|h| h.2).collect();
        if active.len() > 1 || clients.len() > 1 {
            return Err(format!("{key}: holders (rank, req, client, done) {holders:?}"));
        }
    }
    Ok(())
}

fn check(c: &Cluster) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
    if let Err(e) = xlock_holders_ok(c) {
        panic!("two xlock holders across ranks (§4.7): {e}");
    }
}

/// Delivers one message at a time (checks after each), answers revokes as a cooperative
/// client, and with `safe` makes journals safe whenever the network is quiet. Returns the
/// outputs.
fn drive(c: &mut Cluster, cl: &mut CooperativeClients, safe: bool) -> Vec<Output> {
    let mut out = Vec::new();
    for _ in 0..20_000 {
        if c.step().unwrap() {
            check(c);
            continue;
        }
        let batch = c.take_outputs();
        let answers = cl.answers(&batch);
        let answered = !answers.is_empty();
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
            check(c);
        }
        out.extend(batch);
        if answered {
            continue;
        }
        let pending: Vec<u32> = (0..c.len() as u32).filter(|r| c.unsafe_entries(*r) > 0).collect();
        if !safe || pending.is_empty() {
            return out;
        }
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("cluster did not settle");
}

fn send(c: &mut Cluster, rank: u32, client: u64, reqid: u64, op: Op) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    check(c);
}

/// The first reply (early or safe) of `reqid`, and whether it was the safe one.
fn first_reply(out: &[Output], reqid: u64) -> Option<(Result<Option<Ino>, Errno>, bool)> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.reqid == ReqId(reqid) => Some((r.result, r.safe)),
        _ => None,
    })
}

fn acquired(out: &[Output], reqid: u64) -> bool {
    out.iter().any(|o| o.effect == Effect::LocksAcquired { reqid: ReqId(reqid) })
}

/// Runs `op` from `client` on `rank` to its safe reply.
fn submit(
    c: &mut Cluster,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> Result<Option<Ino>, Errno> {
    send(c, rank, 1, reqid, op);
    let out = drive(c, cl, true);
    out.iter()
        .find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("request {reqid} got no safe reply"))
}

fn root_path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// `/t0` (rank 0) and `/t1` pinned to rank 1 on a 2-rank cluster: (t0, t1).
fn two_subtrees(c: &mut Cluster, cl: &mut CooperativeClients) -> (Ino, Ino) {
    let t0 = submit(c, cl, 0, 1, Op::Mkdir { path: root_path("t0"), mode: 0o755 }).unwrap().unwrap();
    let t1 = submit(c, cl, 0, 2, Op::Mkdir { path: root_path("t1"), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(t1, 1).unwrap();
    check(c);
    (t0, t1)
}

/// Simulator (2 ranks, cross-subtree, seeds 35, 45): a peer request xlocking for a leader on
/// another rank took over an XLOCKDONE xlock of the same client (§4.2 XCL) whose change was
/// not yet safe. The lock then went from that xlock straight to the peer's, never through
/// SYNC, so the leader's replica kept the linkage from before the change (the leader answered
/// ENOENT for a file the client had just been told it created). The peer now waits until the
/// change is safe: the DN lock's SYNC brings the new linkage to the replica before the
/// XLOCKACK (one FIFO connection).
#[test]
fn s4_7_peer_xlock_does_not_take_over_an_unsafe_xlockdone_of_the_same_client() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let mut cl = CooperativeClients::new();
    let y = submit(
        &mut c,
        &mut cl,
        0,
        1,
        Op::Create { path: root_path("y"), mode: 0o644, excl: true, file_mode: 1 },
    )
    .unwrap()
    .unwrap();
    // Rank 1 looks /x up: a replica of the null dentry.
    send(&mut c, 1, 2, 2, Op::Getattr { path: root_path("x"), mask: 0 });
    let out = drive(&mut c, &mut cl, true);
    assert_eq!(first_reply(&out, 2).map(|r| r.0), Some(Err(Errno::ENOENT)));
    // Client 1 links /x -> /y on rank 0: early reply, the DN lock stays XLOCKDONE (not safe).
    send(&mut c, 0, 1, 10, Op::Link { path: root_path("x"), target: root_path("y") });
    let out = drive(&mut c, &mut cl, false);
    assert_eq!(first_reply(&out, 10), Some((Ok(Some(y)), false)), "the link replies early");
    // The same client xlocks the dentry from rank 1, where it is a replica: a remote xlock.
    let dn1 = {
        let cache = c.rank(1).cache();
        cache.lookup_dentry(cache.root(), "x").unwrap()
    };
    let lock = LockId::dentry(dn1, LockType::Dn);
    send(&mut c, 1, 1, 11, Op::LockSet { locks: vec![LockOp::x(lock)], journal: false });
    let out = drive(&mut c, &mut cl, true);
    assert!(acquired(&out, 11));
    // Held by us, the replica must show what the auth has: the link.
    assert_eq!(
        c.rank(1).cache().dentry(dn1).unwrap().linkage(),
        Linkage::Remote { ino: y, d_type: mds_locker::cache::S_IFREG }
    );
}

/// Simulator (2 ranks, cross-subtree, seed 53; 3 ranks, seeds 26, 76): a client names, as
/// the base of a request to another rank, a directory whose mkdir was answered early. The
/// creating rank knew no committed path to it and answered FindIno with nothing, so the
/// asker failed the request with ENOENT. The answer now waits until the creation is safe.
#[test]
fn s5_1_find_ino_answer_waits_for_an_unsafe_creation() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let mut cl = CooperativeClients::new();
    send(&mut c, 0, 1, 10, Op::Mkdir { path: root_path("d"), mode: 0o755 });
    let out = drive(&mut c, &mut cl, false);
    let Some((Ok(Some(d)), false)) = first_reply(&out, 10) else { panic!("no early mkdir reply: {out:?}") };
    // Rank 1 has never seen d: it asks rank 0, which is still journaling the mkdir.
    send(&mut c, 1, 2, 11, Op::Getattr { path: FilePath::new(d, ""), mask: 0 });
    let out = drive(&mut c, &mut cl, false);
    assert_eq!(first_reply(&out, 11), None, "answered before the creation was safe");
    let out = drive(&mut c, &mut cl, true);
    assert_eq!(first_reply(&out, 11).map(|r| r.0), Some(Ok(Some(d))));
}

/// Simulator (2 ranks, cross-subtree, seed 21): a rename migrating a file to the leader
/// (§5.2 RENAME, rename-time export) left the exporter's peer xlocks on the inode until its
/// FINISH, while the leader, auth at commit, granted the same locks to the next request: two
/// xlock holders across ranks. The exporter now hands its xlocks over with the export in
/// its PREPACK (Ceph's `xlock_export`); the inode stays frozen there until FINISH.
#[test]
fn s4_17_exporter_hands_its_xlocks_to_the_leader_with_the_export() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let mut cl = CooperativeClients::new();
    let (t0, t1) = two_subtrees(&mut c, &mut cl);
    let f = submit(
        &mut c,
        &mut cl,
        0,
        3,
        Op::Create { path: root_path("t0/f"), mode: 0o644, excl: true, file_mode: 1 },
    )
    .unwrap()
    .unwrap();
    // Rank 1 learns t0 and t1/g by inode number and name (as a client's earlier replies tell
    // it), then leads the rename t0/f -> t1/g.
    c.replicate(&ObjKey::Inode(t0), 1).unwrap();
    send(&mut c, 1, 1, 10, Op::Rename { dest: FilePath::new(t1, "g"), src: FilePath::new(t0, "f") });
    // A second client's unlink of t1/g on rank 1 queues behind the rename's dentry xlock, so
    // it runs as soon as the rename commits and the leader imports the inode.
    let dest_xlocked = |c: &Cluster| {
        let cache = c.rank(1).cache();
        let Some(dir) = cache.lookup_ino(t1) else { return false };
        cache
            .lookup_dentry(dir, "g")
            .and_then(|dn| cache.lock(LockId::dentry(dn, LockType::Dn)).ok())
            .is_some_and(|l| l.xlock_holders().iter().any(|h| h.req == ReqId(10)))
    };
    let mut out = Vec::new();
    for _ in 0..10_000 {
        if dest_xlocked(&c) {
            break;
        }
        if !c.step().unwrap() {
            out.extend(drive(&mut c, &mut cl, false));
            let pending: Vec<u32> = (0..2).filter(|r| c.unsafe_entries(*r) > 0).collect();
            assert!(!pending.is_empty() || dest_xlocked(&c), "rename never xlocked its destination");
            for r in pending {
                c.make_safe(r).unwrap();
            }
        }
        check(&c);
    }
    assert!(dest_xlocked(&c));
    send(&mut c, 1, 2, 11, Op::Unlink { path: root_path("t1/g") });
    out.extend(drive(&mut c, &mut cl, true));
    assert_eq!(first_reply(&out, 10).map(|r| r.0), Some(Ok(Some(f))));
    assert_eq!(first_reply(&out, 11).map(|r| r.0), Some(Ok(None)));
    let cache = c.rank(1).cache();
    let n = cache.inode(cache.lookup_ino(f).unwrap()).unwrap();
    assert!(n.is_auth(), "the renamed file migrated to the leader");
    assert_eq!(n.data().nlink, 0);
}

/// Simulator (3 ranks, cross-subtree, seed 94): a directory renamed into another rank's
/// subtree keeps its inode (and dirfrag) on its old rank. An rmdir of it on the new
/// dentry's rank checked emptiness on the dirfrags in its own cache, which had none of
/// them, and removed a non-empty directory. The locked check (§8 fact 63: under the
/// filelock rdlock) now also reads the inode's dirstat, the fold of every frag.
#[test]
fn s5_2_rmdir_of_a_replicated_directory_with_entries_is_enotempty() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let mut cl = CooperativeClients::new();
    let (t0, t1) = two_subtrees(&mut c, &mut cl);
    let d =
        submit(&mut c, &mut cl, 0, 3, Op::Mkdir { path: root_path("t0/d"), mode: 0o755 }).unwrap().unwrap();
    submit(
        &mut c,
        &mut cl,
        0,
        4,
        Op::Create { path: root_path("t0/d/f"), mode: 0o644, excl: true, file_mode: 1 },
    )
    .unwrap();
    c.replicate(&ObjKey::Inode(t0), 1).unwrap();
    let r = submit(
        &mut c,
        &mut cl,
        1,
        5,
        Op::Rename { dest: FilePath::new(t1, "e"), src: FilePath::new(t0, "d") },
    );
    assert_eq!(r, Ok(Some(d)));
    assert!(!c.rank(1).cache().inode(c.rank(1).cache().lookup_ino(d).unwrap()).unwrap().is_auth());
    assert_eq!(submit(&mut c, &mut cl, 1, 6, Op::Rmdir { path: root_path("t1/e") }), Err(Errno::ENOTEMPTY));
    assert_eq!(
        submit(&mut c, &mut cl, 0, 7, Op::Getattr { path: root_path("t1/e/f"), mask: 0 })
            .map(|x| x.is_some()),
        Ok(true)
    );
    // Emptied, it goes.
    submit(&mut c, &mut cl, 0, 8, Op::Unlink { path: root_path("t1/e/f") }).unwrap();
    assert_eq!(submit(&mut c, &mut cl, 1, 9, Op::Rmdir { path: root_path("t1/e") }), Ok(None));
}
