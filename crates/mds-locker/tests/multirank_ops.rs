//! Namespace operations across ranks: discover on traversal and forwarding to the auth rank
//! (mds spec §5.1, §5.2 multi-MDS notes, §4.13 for the parent's stats).

use lock_sm::LockType;
use mds_locker::cluster::{Cluster, Output};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig, Op, ReqId, SetAttr};

/// Sends a request to `rank`, answers every cap revoke at once (a cooperative client), and
/// returns the safe reply's result and everything the cluster did meanwhile.
fn run(
    c: &mut Cluster,
    rank: u32,
    reqid: u64,
    client: u64,
    op: Op,
) -> (Result<Option<Ino>, Errno>, Vec<Output>) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    let out = pump(c);
    let result = out
        .iter()
        .find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("request {reqid} got no safe reply: {out:#?}"));
    (result, out)
}

/// Settles the cluster, answering every cap revoke at once, and returns what it did.
fn pump(c: &mut Cluster) -> Vec<Output> {
    let mut out = Vec::new();
    let mut clients = CooperativeClients::new();
    for _ in 0..100 {
        c.settle().unwrap();
        let batch = c.take_outputs();
        let answers = clients.answers(&batch);
        out.extend(batch);
        if answers.is_empty() {
            break;
        }
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
        }
    }
    out
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

fn forwarded_to(out: &[Output], reqid: u64) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match &o.effect {
            Effect::Forward { to, request } if request.reqid == ReqId(reqid) => Some(*to),
            _ => None,
        })
        .collect()
}

/// Two ranks; `/a` is pinned to rank 1 (its dirfrag is a subtree root there).
fn two_ranks_with_pinned_a() -> (Cluster, Ino) {
    let mut c = Cluster::new(2, LockerConfig::default());
    let (a, _) = run(&mut c, 0, 1, 1, Op::Mkdir { path: path("a"), mode: 0o755 });
    let a = a.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    (c, a)
}

#[test]
fn mkdir_in_a_pinned_dir_is_forwarded_to_the_dirfrag_auth() {
    let (mut c, a) = two_ranks_with_pinned_a();
    let (r, out) = run(&mut c, 0, 2, 1, Op::Mkdir { path: path("a/x"), mode: 0o755 });
    let x = r.unwrap().unwrap();
    assert_eq!(forwarded_to(&out, 2), vec![1]);
    // The new inode comes from rank 1's range and is auth there.
    assert!(x.0 >= mds_locker::cache::ino_range_start(1));
    let r1 = c.rank(1).cache();
    let xi = r1.lookup_ino(x).unwrap();
    assert!(r1.inode(xi).unwrap().is_auth());
    // The parent inode stays on rank 0; rank 1's frag counts the entry (§4.13).
    let f = r1.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r1.dirfrag(f).unwrap().fnode().fragstat.nsubdirs, 1);
    assert!(mds_locker::invariants::check_all(c.rank(0)).is_ok());
    assert!(mds_locker::invariants::check_all(c.rank(1)).is_ok());
}

#[test]
fn getattr_on_another_ranks_entry_discovers_it() {
    let (mut c, _a) = two_ranks_with_pinned_a();
    let (x, _) = run(&mut c, 1, 2, 1, Op::Mkdir { path: path("a/x"), mode: 0o755 });
    let x = x.unwrap().unwrap();
    assert!(c.rank(0).cache().lookup_ino(x).is_none());
    let (r, out) = run(&mut c, 0, 3, 2, Op::Getattr { path: path("a/x"), mask: 0 });
    assert_eq!(r, Ok(Some(x)));
    assert!(forwarded_to(&out, 3).is_empty(), "a read is served by a replica, not forwarded");
    assert!(c.delivered().get("discover").copied().unwrap_or(0) >= 1);
    let r0 = c.rank(0).cache();
    let xi = r0.lookup_ino(x).expect("rank 0 now has a replica of x");
    assert!(!r0.inode(xi).unwrap().is_auth());
    // A name that does not exist on the auth is ENOENT.
    let (r, _) = run(&mut c, 0, 4, 2, Op::Getattr { path: path("a/nope"), mask: 0 });
    assert_eq!(r, Err(Errno::ENOENT));
}

/// §5.1: discover of a name the auth's dirfrag lacks returns a null dentry replica, not a
/// bare "no such name"; the reader decides ENOENT under a rdlock on its replica's DN lock,
/// and a racing create on the auth must gather that rdlock (§4.12 LOCK / LOCKACK) before it
/// can xlock the dentry. So the reader's ENOENT can never come after the create was
/// acknowledged (simulator, 2 ranks, seeds 3, 11, 19, 29).
#[test]
fn discover_of_a_missing_name_replicates_a_null_dentry_a_racing_create_gathers() {
    let (mut c, a) = two_ranks_with_pinned_a();
    c.handle(0, Event::SessionOpen { client: 2 }).unwrap();
    c.handle(1, Event::SessionOpen { client: 3 }).unwrap();
    c.handle(
        0,
        Event::Request(ClientRequest {
            reqid: ReqId(10),
            client: 2,
            op: Op::Getattr { path: path("a/n"), mask: 0 },
        }),
    )
    .unwrap();
    // Rank 1 answers the discover; its reply is in flight when the create arrives there.
    assert!(c.step().unwrap());
    assert!(c.delivered().get("discover").copied().unwrap_or(0) >= 1);
    let r1 = c.rank(1).cache();
    let a1 = r1.lookup_ino(a).unwrap();
    let n1 = r1.lookup_dentry(a1, "n").expect("the auth keeps the null dentry it replicated");
    assert!(r1.dentry(n1).unwrap().replicas().contains(&0));
    let op = Op::Create { path: path("a/n"), mode: 0o644, excl: true, file_mode: 1 };
    c.handle(1, Event::Request(ClientRequest { reqid: ReqId(11), client: 3, op })).unwrap();
    let out = pump(&mut c);
    let first_reply = |id: u64| {
        out.iter()
            .position(|o| matches!(&o.effect, Effect::Reply(r) if r.reqid == ReqId(id)))
            .unwrap_or_else(|| panic!("no reply to {id}: {out:#?}"))
    };
    let (read, create) = (first_reply(10), first_reply(11));
    let Effect::Reply(rr) = &out[read].effect else { unreachable!() };
    let Effect::Reply(cr) = &out[create].effect else { unreachable!() };
    let ino = cr.result.unwrap().unwrap();
    match rr.result {
        Err(Errno::ENOENT) => assert!(read < create, "ENOENT answered after the create was acknowledged"),
        Ok(Some(i)) => assert_eq!(i, ino),
        other => panic!("getattr: {other:?}"),
    }
    // The replica learns the new link from the DN lock data (§2.3) and reads it locally.
    let (r, out) = run(&mut c, 0, 12, 2, Op::Getattr { path: path("a/n"), mask: 0 });
    assert_eq!(r, Ok(Some(ino)));
    assert!(forwarded_to(&out, 12).is_empty());
    assert!(mds_locker::invariants::check_cluster(c.lockers(), 0).is_ok());
}

#[test]
fn setattr_is_forwarded_to_the_inode_auth() {
    let (mut c, _a) = two_ranks_with_pinned_a();
    let (x, _) =
        run(&mut c, 1, 2, 1, Op::Create { path: path("a/f"), mode: 0o644, excl: true, file_mode: 1 });
    let f = x.unwrap().unwrap();
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    let (r, out) = run(&mut c, 0, 3, 2, Op::Setattr { path: path("a/f"), attrs });
    assert_eq!(r, Ok(Some(f)));
    assert_eq!(forwarded_to(&out, 3), vec![1]);
    let r1 = c.rank(1).cache();
    let fi = r1.lookup_ino(f).unwrap();
    assert_eq!(r1.inode(fi).unwrap().data().mode & 0o7777, 0o600);
    let _ = LockType::IAuth;
}

#[test]
fn updates_with_witnesses_succeed_where_the_inode_is_auth_on_another_rank() {
    let (mut c, a) = two_ranks_with_pinned_a();
    let (f, _) =
        run(&mut c, 1, 2, 1, Op::Create { path: path("a/f"), mode: 0o644, excl: true, file_mode: 1 });
    let f = f.unwrap().unwrap();
    // RENAME /a/f → /g: rank 1 (source dentry and inode) witnesses (§4.17 RENAMEPREP; the
    // protocol itself is tested in multirank_witness.rs).
    let op = Op::Rename { dest: FilePath::new(Ino::ROOT, "g"), src: FilePath::new(a, "f") };
    let (r, _) = run(&mut c, 0, 3, 1, op);
    assert_eq!(r, Ok(Some(f)));
    // Unlinking /g, whose inode stays auth on rank 1, and renaming onto such a name, answer
    // as on one rank: the inode's auth witnesses (multirank_unlink.rs has the details).
    let (r, _) = run(&mut c, 0, 4, 1, Op::Unlink { path: path("g") });
    assert_eq!(r, Ok(None));
    let (r, _) = run(&mut c, 0, 5, 2, Op::Getattr { path: path("g"), mask: 0 });
    assert_eq!(r, Err(Errno::ENOENT));
    let (f2, _) =
        run(&mut c, 1, 6, 1, Op::Create { path: path("a/f2"), mode: 0o644, excl: true, file_mode: 1 });
    let f2 = f2.unwrap().unwrap();
    let op = Op::Rename { dest: FilePath::new(Ino::ROOT, "g2"), src: FilePath::new(a, "f2") };
    assert_eq!(run(&mut c, 0, 7, 1, op).0, Ok(Some(f2)));
    let (h, _) = run(&mut c, 0, 8, 1, Op::Create { path: path("h"), mode: 0o644, excl: true, file_mode: 1 });
    let h = h.unwrap().unwrap();
    let (r, _) = run(&mut c, 0, 9, 1, Op::Rename { dest: path("g2"), src: path("h") });
    assert_eq!(r, Ok(Some(h)));
    let (r, _) = run(&mut c, 0, 10, 2, Op::Getattr { path: path("g2"), mask: 0 });
    assert_eq!(r, Ok(Some(h)));
    let (r, _) = run(&mut c, 0, 11, 2, Op::Getattr { path: path("h"), mask: 0 });
    assert_eq!(r, Err(Errno::ENOENT));
    for l in c.lockers() {
        assert!(mds_locker::invariants::check_all(l).is_ok());
    }
}
