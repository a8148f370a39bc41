//! A rank fails and restarts: journal replay through the real encoding, the ESubtreeMap,
//! the simplified resolve / rejoin, and clients re-sending unsafe requests (mds spec §6.6,
//! §6.1 ESubtreeMap, §4.12 replica lock states, §4.17 peer requests).

use lock_sm::LockType;
use mds_journal::LogEvent;
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::invariants::check_cluster;
use mds_locker::mutation::XLOCK;
use mds_locker::{
    ClientRequest, Effect, Errno, Event, FilePath, Ino, LockId, LockOp, Locker, LockerConfig, ObjKey, ObjRef,
    Op, ReqId, SetAttr,
};

mod multirank_support;
use multirank_support::{drive, open_session, safe_result};

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// Answers every cap revoke at once (a cooperative client) until none is left.
fn settle_with_caps(c: &mut Cluster) -> Vec<Output> {
    drive(c, true)
}

/// Runs a request to its safe reply.
fn run(c: &mut Cluster, rank: u32, reqid: u64, client: u64, op: Op) -> Result<Option<Ino>, Errno> {
    open_session(c, rank, client);
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    let out = settle_with_caps(c);
    safe_result(&out, reqid).unwrap_or_else(|| panic!("request {reqid} got no safe reply: {out:#?}"))
}

/// Sends a request and delivers messages, but leaves its journal entry unsafe. Returns
/// whether it got its early (unsafe) reply.
fn run_unsafe(c: &mut Cluster, rank: u32, reqid: u64, client: u64, op: Op) -> bool {
    open_session(c, rank, client);
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    let out = drive(c, false);
    out.iter().any(
        |o| matches!(&o.effect, Effect::Reply(r) if !r.safe && r.reqid == ReqId(reqid) && r.result.is_ok()),
    )
}

fn getattr(c: &mut Cluster, rank: u32, reqid: u64, p: &str) -> Result<Option<Ino>, Errno> {
    run(c, rank, reqid, 9, Op::Getattr { path: path(p), mask: 0 })
}

fn mode_on_auth(c: &Cluster, ino: Ino) -> u32 {
    let auth = (0..c.len() as u32)
        .find(|r| {
            c.rank(*r)
                .cache()
                .lookup_ino(ino)
                .is_some_and(|i| c.rank(*r).cache().is_auth_obj(ObjRef::Inode(i)))
        })
        .expect("some rank is auth");
    let cache = c.rank(auth).cache();
    cache.inode(cache.lookup_ino(ino).unwrap()).unwrap().data().mode & 0o7777
}

fn all_locks(l: &Locker) -> Vec<LockId> {
    let c = l.cache();
    let mut objs: Vec<ObjRef> = c.inode_ids().map(ObjRef::Inode).collect();
    objs.extend(c.dentry_ids().map(ObjRef::Dentry));
    objs.into_iter().flat_map(|o| c.lock_ids(o)).collect()
}

fn assert_quiet_and_consistent(c: &Cluster) {
    assert_eq!(c.transport().in_flight(), 0);
    if let Err(v) = check_cluster(c.lockers(), 0) {
        panic!("invariants violated after rejoin: {v:#?}");
    }
    for l in c.lockers() {
        for id in all_locks(l) {
            let lock = l.lock(id).unwrap();
            assert!(lock.is_stable(), "rank {}: {id:?} not stable: {}", l.cache().rank(), lock.state());
        }
    }
}

/// Updates journaled for a client request id (how often a request ran to durability).
fn updates_for(c: &Cluster, rank: u32, reqid: u64) -> usize {
    c.journal_events(rank)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, LogEvent::Update(u) if u.reqid.is_some_and(|r| r.tid == reqid)))
        .count()
}

/// `/a` made on rank 0 and pinned to `rank`.
fn pinned_dir(c: &mut Cluster, reqid: u64, name: &str, rank: u32) -> Ino {
    let a = run(c, 0, reqid, 1, Op::Mkdir { path: path(name), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(a, rank).unwrap();
    a
}

#[test]
fn s6_6_two_ranks_safe_changes_survive_and_unsafe_ones_rerun_once() {
    let mut c = Cluster::new(2, LockerConfig::default());
    pinned_dir(&mut c, 1, "a", 1);
    // Changes on both ranks, all safe.
    let d1 = run(&mut c, 1, 10, 2, Op::Mkdir { path: path("a/d1"), mode: 0o755 }).unwrap().unwrap();
    let f1 = run(&mut c, 1, 11, 2, Op::Create { path: path("a/f1"), mode: 0o644, excl: true, file_mode: 1 })
        .unwrap()
        .unwrap();
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    run(&mut c, 1, 12, 2, Op::Setattr { path: path("a/f1"), attrs }).unwrap();
    let b = run(&mut c, 0, 13, 1, Op::Mkdir { path: path("b"), mode: 0o755 }).unwrap().unwrap();
    let attrs = SetAttr { mode: Some(0o700), ..SetAttr::default() };
    run(&mut c, 0, 14, 1, Op::Setattr { path: path("b"), attrs }).unwrap();
    // Unsafe on rank 1: early-replied, not durable.
    assert!(run_unsafe(&mut c, 1, 20, 2, Op::Mkdir { path: path("a/u1"), mode: 0o755 }));
    assert!(c.unsafe_entries(1) > 0);
    let durable_before = c.journal(1).len();
    assert_eq!(updates_for(&c, 1, 20), 0);

    c.crash(1).unwrap();
    assert!(c.is_down(1));
    assert_eq!(c.unsafe_entries(1), 0);
    assert!(matches!(
        c.handle(1, Event::SessionOpen { client: 5 }),
        Err(mds_locker::cluster::ClusterError::RankDown(1))
    ));
    let report = c.restart(1).unwrap();
    assert!(report.replay.updates >= 3, "{report:?}");
    assert!(report.replay.completed_restored >= 3, "{report:?}");
    assert_eq!(report.resent, 1, "the client re-sends only its unsafe request");
    assert!(report.weak_replicas > 0, "rank 1 re-registers its replayed replicas: {report:?}");
    settle_with_caps(&mut c);

    // The unsafe mkdir ran again, once; the safe changes are there, seen from both ranks.
    assert_eq!(updates_for(&c, 1, 20), 1);
    assert!(c.journal(1).len() > durable_before);
    for rank in [0, 1] {
        let base = 100 + 10 * u64::from(rank);
        assert_eq!(getattr(&mut c, rank, base, "a/d1"), Ok(Some(d1)));
        assert_eq!(getattr(&mut c, rank, base + 1, "a/f1"), Ok(Some(f1)));
        assert_eq!(getattr(&mut c, rank, base + 2, "b"), Ok(Some(b)));
        assert!(getattr(&mut c, rank, base + 3, "a/u1").is_ok());
    }
    assert_eq!(mode_on_auth(&c, f1), 0o600);
    assert_eq!(mode_on_auth(&c, b), 0o700);
    // A safe request re-sent after the restart is answered from the replayed table, not run.
    let before = c.journal(1).len();
    c.handle(
        1,
        Event::Request(ClientRequest {
            reqid: ReqId(10),
            client: 2,
            op: Op::Mkdir { path: path("a/d1"), mode: 0o755 },
        }),
    )
    .unwrap();
    let out = settle_with_caps(&mut c);
    assert_eq!(safe_result(&out, 10), Some(Ok(Some(d1))));
    assert_eq!(c.journal(1).len(), before);
    assert_quiet_and_consistent(&c);
}

#[test]
fn s6_6_unsafe_request_without_resend_is_gone() {
    let mut c = Cluster::new(2, LockerConfig::default());
    pinned_dir(&mut c, 1, "a", 1);
    assert!(run_unsafe(&mut c, 1, 20, 2, Op::Mkdir { path: path("a/gone"), mode: 0o755 }));
    // The client goes away before the crash: its session close is journaled, so nobody
    // re-sends and replay has no trace of the request.
    c.handle(1, Event::SessionTimeout { client: 2 }).unwrap();
    c.crash(1).unwrap();
    let report = c.restart(1).unwrap();
    settle_with_caps(&mut c);
    assert_eq!(report.resent, 0);
    assert_eq!(updates_for(&c, 1, 20), 0);
    assert_eq!(getattr(&mut c, 0, 30, "a/gone"), Err(Errno::ENOENT));
    assert_eq!(getattr(&mut c, 1, 31, "a/gone"), Err(Errno::ENOENT));
    assert_quiet_and_consistent(&c);
}

#[test]
fn s6_1_restarted_rank_replays_its_subtree_map_and_is_auth_again() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let a = pinned_dir(&mut c, 1, "a", 1);
    run(&mut c, 1, 10, 2, Op::Mkdir { path: path("a/x"), mode: 0o755 }).unwrap();
    let maps: Vec<_> = c
        .journal_events(1)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            LogEvent::SubtreeMap(s) => Some(s),
            _ => None,
        })
        .collect();
    let last = maps.last().expect("rank 1 journaled subtree maps");
    assert!(last.subtrees.keys().any(|df| df.ino.0 == a.0), "{last:?}");
    // The JSON dump works with subtrees in it (the struct-keyed map bug).
    serde_json::to_string(&LogEvent::SubtreeMap(last.clone())).unwrap();

    c.crash(1).unwrap();
    let report = c.restart(1).unwrap();
    c.settle().unwrap();
    assert!(report.replay.subtree_maps >= 2);
    assert!(report.replay.subtree_roots.contains(&(a, 0)), "{report:?}");
    let r1 = c.rank(1).cache();
    let f = r1.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r1.dirfrag_auth(f), Some(1));
    assert!(r1.dirfrag(f).unwrap().is_complete());
    // The directory inode and the root stay rank 0's; rank 1 holds replicas.
    assert_eq!(r1.auth_of(ObjRef::Inode(r1.lookup_ino(a).unwrap())), Some(0));
    assert_eq!(r1.auth_of(ObjRef::Inode(r1.root())), Some(0));
    assert!(mds_locker::recovery::subtree_roots(r1).contains_key(&(a, 0)));
    assert_quiet_and_consistent(&c);
}

#[test]
fn s4_17_remote_xlock_held_by_rank0_leader_survives_rank1_restart() {
    let mut c = Cluster::new(2, LockerConfig::default());
    pinned_dir(&mut c, 1, "a", 1);
    let f = run(&mut c, 1, 10, 2, Op::Create { path: path("a/f"), mode: 0o644, excl: true, file_mode: 1 })
        .unwrap()
        .unwrap();
    c.replicate(&ObjKey::Inode(f), 0).unwrap();
    let leader = LockId::inode(c.rank(0).cache().lookup_ino(f).unwrap(), LockType::IAuth);
    open_session(&mut c, 0, 3);
    let req = ClientRequest {
        reqid: ReqId(40),
        client: 3,
        op: Op::LockSet { locks: vec![LockOp::x(leader)], journal: false },
    };
    c.handle(0, Event::Request(req)).unwrap();
    let out = drive(&mut c, false);
    assert!(out.iter().any(|o| o.effect == Effect::LocksAcquired { reqid: ReqId(40) }));

    c.crash(1).unwrap();
    // The leader keeps its copy of the remote xlock through the failure.
    assert!(c.rank(0).request(ReqId(40)).unwrap().holds(leader, XLOCK));
    let report = c.restart(1).unwrap();
    c.run().unwrap();
    assert_eq!(report.rejoined_locks, 1, "{report:?}");
    let auth = LockId::inode(c.rank(1).cache().lookup_ino(f).unwrap(), LockType::IAuth);
    assert!(c.rank(1).peer_holds(0, ReqId(40), auth, XLOCK));
    assert!(c.rank(1).lock(auth).unwrap().is_xlocked());
    // Rank 0's replica follows the auth's xlocked state (LOCK).
    assert_eq!(c.rank(0).lock(leader).unwrap().state(), lock_sm::LockState::Lock);
    if let Err(v) = check_cluster(c.lockers(), 0) {
        panic!("{v:#?}");
    }
    // A setattr on rank 1 needs the same xlock (§5.2 SETATTR xlocks IAUTH): it waits.
    let attrs = SetAttr { mode: Some(0o640), ..SetAttr::default() };
    open_session(&mut c, 1, 4);
    c.handle(
        1,
        Event::Request(ClientRequest {
            reqid: ReqId(41),
            client: 4,
            op: Op::Setattr { path: path("a/f"), attrs },
        }),
    )
    .unwrap();
    let out = settle_with_caps(&mut c);
    assert_eq!(safe_result(&out, 41), None, "setattr must wait for the rejoined xlock");

    // Released normally: the leader's request ends, DROPLOCKS reaches the rejoined peer.
    c.handle(0, Event::FinishRequest { reqid: ReqId(40) }).unwrap();
    let out = settle_with_caps(&mut c);
    assert!(c.rank(1).request(ReqId(40)).is_none());
    assert!(!c.rank(0).lock(leader).unwrap().is_xlocked());
    assert!(safe_result(&out, 41).is_some_and(|r| r.is_ok()), "{out:#?}");
    assert_eq!(mode_on_auth(&c, f), 0o640);
    assert_quiet_and_consistent(&c);
}

#[test]
fn s4_12_survivor_gathering_from_the_crashed_rank_completes() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let b = run(&mut c, 0, 1, 1, Op::Mkdir { path: path("b"), mode: 0o755 }).unwrap().unwrap();
    c.replicate(&ObjKey::Inode(b), 1).unwrap();
    // The dentry's lock: no client caps in the way, only rank 1's replica to gather from.
    let c0 = c.rank(0).cache();
    let dn = c0.lookup_dentry(c0.root(), "b").unwrap();
    let id = LockId { obj: ObjRef::Dentry(dn), ty: LockType::Dn };
    assert!(c.rank(0).cache().replicas_of(id.obj).contains(&1));
    open_session(&mut c, 0, 3);
    let req = ClientRequest {
        reqid: ReqId(50),
        client: 3,
        op: Op::LockSet { locks: vec![LockOp::x(id)], journal: false },
    };
    c.handle(0, Event::Request(req)).unwrap();
    // The auth waits for rank 1's LOCKACK, which is still in flight.
    assert!(!c.rank(0).lock(id).unwrap().gather_set().is_empty());
    assert!(!c.outputs().iter().any(|o| o.effect == Effect::LocksAcquired { reqid: ReqId(50) }));
    c.crash(1).unwrap();
    assert!(c.dropped_messages() > 0);
    assert!(c.rank(0).lock(id).unwrap().gather_set().is_empty());
    assert!(c.outputs().iter().any(|o| o.effect == Effect::LocksAcquired { reqid: ReqId(50) }));
    assert!(c.rank(0).lock(id).unwrap().is_xlocked());
    c.restart(1).unwrap();
    settle_with_caps(&mut c);
    c.handle(0, Event::FinishRequest { reqid: ReqId(50) }).unwrap();
    settle_with_caps(&mut c);
    assert_quiet_and_consistent(&c);
}

#[test]
fn s6_6_three_ranks_restart_the_middle_one() {
    let mut c = Cluster::new(3, LockerConfig::default());
    pinned_dir(&mut c, 1, "a", 1);
    pinned_dir(&mut c, 2, "c", 2);
    let ax = run(&mut c, 1, 10, 2, Op::Mkdir { path: path("a/x"), mode: 0o755 }).unwrap().unwrap();
    let cy = run(&mut c, 2, 11, 3, Op::Mkdir { path: path("c/y"), mode: 0o755 }).unwrap().unwrap();
    let r0 = run(&mut c, 0, 12, 1, Op::Mkdir { path: path("r0"), mode: 0o755 }).unwrap().unwrap();
    // Cross-rank readers so survivors hold replicas of rank 1's objects.
    assert_eq!(getattr(&mut c, 0, 13, "a/x"), Ok(Some(ax)));
    assert_eq!(getattr(&mut c, 2, 14, "a/x"), Ok(Some(ax)));
    let attrs = SetAttr { mode: Some(0o711), ..SetAttr::default() };
    run(&mut c, 1, 15, 2, Op::Setattr { path: path("a/x"), attrs }).unwrap();
    assert!(run_unsafe(&mut c, 1, 16, 2, Op::Mkdir { path: path("a/u"), mode: 0o755 }));

    c.crash(1).unwrap();
    let report = c.restart(1).unwrap();
    assert!(report.rejoined_replicas > 0, "{report:?}");
    settle_with_caps(&mut c);
    for (n, rank) in [0u32, 1, 2].into_iter().enumerate() {
        let base = 200 + 10 * n as u64;
        assert_eq!(getattr(&mut c, rank, base, "a/x"), Ok(Some(ax)));
        assert_eq!(getattr(&mut c, rank, base + 1, "c/y"), Ok(Some(cy)));
        assert_eq!(getattr(&mut c, rank, base + 2, "r0"), Ok(Some(r0)));
        assert!(getattr(&mut c, rank, base + 3, "a/u").is_ok());
    }
    assert_eq!(mode_on_auth(&c, ax), 0o711);
    assert_eq!(updates_for(&c, 1, 16), 1);
    assert_quiet_and_consistent(&c);
}
