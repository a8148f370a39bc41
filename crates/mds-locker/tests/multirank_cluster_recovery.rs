//! While a restarted rank replays its clients' requests, a survivor's rename waits for the
//! cluster to recover before it xlocks a snaplock (mds spec §4.4 phase A, §6.6 client replay).
//!
//! `/t1` is pinned to rank 1, which owns the directory `/t1/d`. Client 2's `mkdir /t1/m` is
//! answered early by rank 1, which then fails before the entry is safe. After the restart,
//! client 2 replays the mkdir, and that replay stays unsafe for as long as the test keeps
//! rank 1's journal from syncing. Meanwhile rank 0 leads `mv /t1/d /t0/e`, which must xlock
//! the snaplock of `/t1/d`, an inode rank 1 owns. The cluster is degraded, so rank 0 gives
//! back every lock it holds and waits. Once the replay is answered, rank 1 is active again
//! (`Event::RankRecovered`) and the rename runs. In the simulator this wait is what keeps a
//! rename from moving a directory that a replay needs (`--cross-subtree`, 2 ranks, seeds 2277
//! and 2350).

mod multirank_scenario;

use multirank_scenario::*;

fn reply(out: &[Output], reqid: u64, safe: bool) -> Option<Result<Option<Ino>, Errno>> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe == safe && r.reqid == ReqId(reqid) => Some(r.result),
        _ => None,
    })
}

/// §4.4 phase A, §6.6: the rename waits for the cluster to recover, with no lock held, and
/// runs once the replay is answered; the replay keeps its early result.
#[test]
fn s4_4_rename_waits_for_the_cluster_to_recover_before_a_snaplock_xlock() {
    let (mut c, mut cl, tops) = pinned_tops(2, &[1]);
    let (t0, t1) = (tops[0], tops[1]);
    let d = ok_ino(&mut c, &mut cl, 1, 3, Op::Mkdir { path: FilePath::new(t1, "d"), mode: 0o755 });

    // Client 2's mkdir is answered early and is still unsafe when rank 1 fails.
    send(&mut c, 1, 2, 4, Op::Mkdir { path: FilePath::new(t1, "m"), mode: 0o755 });
    let out = pump(&mut c, &mut cl);
    let early = reply(&out, 4, false).expect("the mkdir is answered early");
    assert!(matches!(early, Ok(Some(_))), "mkdir: {early:?}");
    c.crash(1).unwrap();
    c.restart(1).unwrap();
    // The replay runs at the restart and waits for rank 1's journal.
    pump(&mut c, &mut cl);

    let rename = Op::Rename { dest: FilePath::new(t0, "e"), src: FilePath::new(t1, "d") };
    send(&mut c, 0, 1, 5, rename);
    let mut out = pump(&mut c, &mut cl);
    let m = c.rank(0).request(ReqId(5)).expect("the rename is still running");
    let events: Vec<_> = m.events().iter().map(|e| e.what.clone()).collect();
    assert!(events.iter().any(|e| e == "waiting for cluster recovered"), "rename events: {events:?}");
    assert!(m.held().is_empty(), "the waiting rename holds no lock: {:?}", m.held());
    assert!(reply(&out, 5, true).is_none());

    // The replay commits: rank 1 is active, the cluster has recovered, the rename goes on.
    out.extend(drive(&mut c, &mut cl));
    assert_eq!(reply(&out, 4, true), Some(early), "the replay keeps the early result");
    let moved = reply(&out, 5, true).expect("the rename is answered");
    assert!(moved.is_ok(), "rename: {moved:?}");
    let (r, _) = submit(&mut c, &mut cl, 0, 6, Op::Getattr { path: FilePath::new(t0, "e"), mask: 0 });
    assert_eq!(r, Ok(Some(d)));
    no_twophase_left(&c);
}
