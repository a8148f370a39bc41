//! mds §6.6, §6.3, §4.17: two ranks with `/a` pinned to rank 1. Safe changes on both ranks,
//! including a rename rank 1 witnessed; then rank 1 early-replies a create and a setattr whose
//! journal entries are not yet safe, and crashes. After the restart:
//! * every change that got a safe reply is there, as seen from both ranks;
//! * the client re-sends its unsafe requests; each runs exactly once (one EUpdate each);
//! * a re-sent request that had its safe reply is answered from the replayed completed-request
//!   table and not run again;
//! * subtree authority is back: rank 1 is auth of `/a`'s dirfrag again, both ranks agree, and a
//!   new create through rank 0 is forwarded to rank 1.
//!
//! The same story is then run with the leader (rank 0) crashing instead.

use mds_locker::cluster::{Cluster, Transport};
use mds_locker::{ClientRequest, Event, FilePath, Ino, LockerConfig, Op, ReqId, SetAttr};

use crate::support::mds::{
    check, dirfrag_auth, drive, events_for, forwarded_to, inode_auth, path, run, safe_result, send,
    updates_for,
};

const ALICE: u64 = 1;
const BOB: u64 = 2;

fn mode_on_auth(c: &Cluster, ino: Ino) -> u32 {
    let r = inode_auth(c, ino).expect("some rank is auth");
    let cache = c.rank(r).cache();
    cache.inode(cache.lookup_ino(ino).unwrap()).unwrap().data().mode & 0o7777
}

/// Builds the state both scenarios start from. Returns (/a, /a/keep, /renamed).
fn setup(c: &mut Cluster) -> (Ino, Ino, Ino) {
    let (r, _) = run(c, 0, 1, ALICE, Op::Mkdir { path: path("a"), mode: 0o755 });
    let a = r.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let create = |p: &str| Op::Create { path: path(p), mode: 0o644, excl: true, file_mode: 1 };
    let keep = run(c, 1, 2, ALICE, create("a/keep")).0.unwrap().unwrap();
    let mv = run(c, 1, 3, ALICE, create("a/mv")).0.unwrap().unwrap();
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    run(c, 1, 4, ALICE, Op::Setattr { path: path("a/keep"), attrs }).0.unwrap();
    // A rename rank 1 witnesses (mds §4.17), committed before anything fails.
    let (r, _) = run(c, 0, 5, ALICE, Op::Rename { dest: path("renamed"), src: FilePath::new(a, "mv") });
    assert_eq!(r, Ok(Some(mv)));
    assert_eq!(events_for(c, 0, 5).last().map(String::as_str), Some("ECommitted"));
    (a, keep, mv)
}

/// Sends a request and delivers everything without making journal entries safe; returns
/// whether it got an early (unsafe) reply.
fn early_reply_only(c: &mut Cluster, rank: u32, reqid: u64, op: Op) -> bool {
    send(c, rank, reqid, ALICE, op);
    let out = drive(c, false);
    assert_eq!(safe_result(&out, reqid), None, "request {reqid} must not be safe yet");
    out.iter().any(|o| {
        matches!(&o.effect, mds_locker::Effect::Reply(r) if !r.safe && r.reqid == ReqId(reqid) && r.result.is_ok())
    })
}

fn assert_survivors(c: &mut Cluster, a: Ino, keep: Ino, mv: Ino, keep_mode: u32, base: u64) {
    for rank in [0u32, 1] {
        let q = base + 10 * u64::from(rank);
        let get = |p: &str| Op::Getattr { path: path(p), mask: 0 };
        assert_eq!(run(c, rank, q, BOB, get("a")).0, Ok(Some(a)), "rank {rank}");
        assert_eq!(run(c, rank, q + 1, BOB, get("a/keep")).0, Ok(Some(keep)), "rank {rank}");
        assert_eq!(run(c, rank, q + 2, BOB, get("renamed")).0, Ok(Some(mv)), "rank {rank}");
        assert_eq!(run(c, rank, q + 3, BOB, get("a/mv")).0, Err(mds_locker::Errno::ENOENT), "rank {rank}");
    }
    assert_eq!(mode_on_auth(c, keep), keep_mode, "the last setattr that ran is the mode");
}

#[test]
fn mds_s6_6_rank_crash_with_unsafe_entries_then_restart() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let (a, keep, mv) = setup(&mut c);

    // Unsafe on rank 1: early-replied, not durable.
    assert!(early_reply_only(
        &mut c,
        1,
        100,
        Op::Create { path: path("a/draft"), mode: 0o644, excl: true, file_mode: 1 }
    ));
    let attrs = SetAttr { mode: Some(0o640), ..SetAttr::default() };
    assert!(early_reply_only(&mut c, 1, 101, Op::Setattr { path: path("a/keep"), attrs }));
    assert!(c.unsafe_entries(1) > 0);
    assert_eq!(updates_for(&c, 1, 100) + updates_for(&c, 1, 101), 0, "nothing durable yet");

    c.crash(1).unwrap();
    check(&c);
    let report = c.restart(1).unwrap();
    assert_eq!(report.resent, 2, "mds §6.6: the client re-sends exactly its two unsafe requests: {report:?}");
    assert!(report.replay.completed_restored >= 3, "{report:?}");
    drive(&mut c, true);
    assert_eq!(c.transport().in_flight(), 0);
    check(&c);

    // Each re-sent request ran exactly once.
    assert_eq!(updates_for(&c, 1, 100), 1);
    assert_eq!(updates_for(&c, 1, 101), 1);
    assert_eq!(mode_on_auth(&c, keep), 0o640, "the re-sent setattr took effect");
    // Subtree authority restored (resolve): rank 1 is auth of /a's frag, and rank 0 agrees.
    assert_eq!(dirfrag_auth(&c, 1, a), Some(1));
    assert_eq!(dirfrag_auth(&c, 0, a), Some(1));
    let (r, out) =
        run(&mut c, 0, 200, ALICE, Op::Create { path: path("a/new"), mode: 0o644, excl: true, file_mode: 1 });
    r.unwrap().unwrap();
    assert_eq!(forwarded_to(&out, 200), vec![1], "rank 0 still forwards /a's creates to rank 1");

    // A safe request re-sent after the restart is answered from the completed-request table.
    let before = c.journal(1).len();
    let op = Op::Create { path: path("a/keep"), mode: 0o644, excl: true, file_mode: 1 };
    c.handle(1, Event::Request(ClientRequest { reqid: ReqId(2), client: ALICE, op })).unwrap();
    let out = drive(&mut c, true);
    assert_eq!(safe_result(&out, 2), Some(Ok(Some(keep))), "mds §6.6: same answer, not -EEXIST");
    assert_eq!(c.journal(1).len(), before, "and not run again");

    assert_survivors(&mut c, a, keep, mv, 0o640, 300);
    let (r, _) = run(&mut c, 0, 400, BOB, Op::Getattr { path: path("a/draft"), mask: 0 });
    assert!(r.is_ok(), "the re-sent create is visible: {r:?}");
}

#[test]
fn mds_s6_6_leader_rank_crash_with_an_unsafe_mkdir_then_restart() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let (a, keep, mv) = setup(&mut c);
    assert!(early_reply_only(&mut c, 0, 100, Op::Mkdir { path: path("late"), mode: 0o755 }));
    assert!(c.unsafe_entries(0) > 0);

    c.crash(0).unwrap();
    check(&c);
    let report = c.restart(0).unwrap();
    assert_eq!(report.resent, 1, "{report:?}");
    drive(&mut c, true);
    assert_eq!(c.transport().in_flight(), 0);
    check(&c);
    assert_eq!(updates_for(&c, 0, 100), 1, "the re-sent mkdir ran once");
    assert_eq!(updates_for(&c, 0, 1), 1, "the first mkdir was not re-run");
    assert_eq!(inode_auth(&c, a), Some(0), "rank 0 is auth of /a's inode again");
    assert_eq!(dirfrag_auth(&c, 0, a), Some(1), "and knows rank 1 has its dirfrag");
    assert_survivors(&mut c, a, keep, mv, 0o600, 300);
    let (r, _) = run(&mut c, 1, 400, BOB, Op::Getattr { path: path("late"), mask: 0 });
    assert!(r.is_ok(), "the re-sent mkdir is visible from rank 1: {r:?}");
}
