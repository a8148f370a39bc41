//! mds §6.3, §6.6: a rank runs a workload on a `FaultDevice` over a `MemDevice`. The first
//! requests get their safe replies; the rest get only early replies (their journal sync is
//! held) when the device crashes, either losing every unsynced byte or keeping a torn prefix
//! of them. Replay must rebuild exactly the acknowledged updates plus, for a torn tail, the
//! unacknowledged ones that reached the disk whole, in order (never half of one); the
//! completed-request table must answer the client's re-sent requests without running them
//! again; and the journal must take new entries after the tear and replay them on the next open.

use std::collections::BTreeMap;
use std::sync::Arc;

use mds_journal::{CrashMode, FaultDevice, JournalDevice, MemDevice};
use mds_locker::runtime::Rank;
use mds_locker::{LockerConfig, Op, ReqId};

use super::common::{
    CLIENT, Entry, jcfg, namespace, open_session, replies, run_safe, submit, without_versions, workload,
};

/// Requests that get their safe reply before the crash.
const ACKED: usize = 6;

/// The namespace after each prefix of the workload (index i: after i requests), from a run
/// without faults; the model the crashed runs are compared with.
async fn reference() -> Vec<BTreeMap<String, Entry>> {
    let dev: Arc<dyn JournalDevice> = Arc::new(MemDevice::new());
    let mut rank = Rank::create(dev, jcfg(), LockerConfig::default()).await.unwrap();
    open_session(&mut rank);
    let mut out = vec![namespace(&rank)];
    for (i, op) in workload().into_iter().enumerate() {
        let r = run_safe(&mut rank, i as u64 + 1, op).await;
        assert!(r.result.is_ok(), "reference request {}: {r:?}", i + 1);
        out.push(namespace(&rank));
    }
    rank.close().await.unwrap();
    out
}

/// Runs the acknowledged part, then submits the rest with syncs held and, once the flusher is
/// blocked in its sync, crashes with the mode `mode` picks from the unsynced byte count.
/// Returns the device (restarted), the safe replies of the acknowledged requests and the
/// unsynced byte count.
async fn crashed_run(
    mode: impl FnOnce(u64) -> CrashMode,
) -> (Arc<FaultDevice<MemDevice>>, Vec<mds_locker::Reply>, u64) {
    let dev = Arc::new(FaultDevice::new(MemDevice::new()));
    let as_dev: Arc<dyn JournalDevice> = dev.clone();
    let mut rank = Rank::create(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
    open_session(&mut rank);
    let mut acked = Vec::new();
    let ops = workload();
    for (i, op) in ops.iter().take(ACKED).enumerate() {
        acked.push(run_safe(&mut rank, i as u64 + 1, op.clone()).await);
    }
    dev.hold_syncs();
    for (i, op) in ops.iter().enumerate().skip(ACKED) {
        let fx = submit(&mut rank, i as u64 + 1, op.clone());
        assert!(
            replies(&fx).iter().all(|r| !r.safe),
            "request {}: nothing is safe while syncs are held",
            i + 1
        );
    }
    assert!(rank.unsafe_entries() > 0);
    dev.wait_for_blocked_syncs(1).await;
    let unsynced = dev.unsynced_bytes();
    dev.crash(mode(unsynced)).await;
    dev.release_syncs();
    rank.abandon().await;
    dev.restart();
    (dev, acked, unsynced)
}

/// After a replay: re-sends every request of the workload, as a client does for those
/// without a safe reply and may do for the others; replayed ones must be answered from the
/// completed-request table (same result, nothing journaled), the others must run.
async fn resend_all(rank: &mut Rank, replayed: &[ReqId], acked: &[mds_locker::Reply]) {
    open_session(rank);
    for (i, op) in workload().into_iter().enumerate() {
        let reqid = i as u64 + 1;
        if replayed.contains(&ReqId(reqid)) {
            let fx = submit(rank, reqid, op);
            let r = replies(&fx);
            assert_eq!(r.len(), 1, "request {reqid}: one reply from the table: {r:?}");
            assert!(r[0].safe, "mds §6.6: a completed request is answered safe at once: {r:?}");
            // The table keeps the request id and any inode it created (mds §6.6), so a create
            // or mkdir gets its inode back; other ops get success without a target.
            if let Some(a) = acked.get(i) {
                let creates = matches!(workload()[i], Op::Create { .. } | Op::Mkdir { .. });
                if creates {
                    assert_eq!(r[0].result, a.result, "request {reqid}: same inode as before the crash");
                } else {
                    assert_eq!(r[0].result.is_ok(), a.result.is_ok(), "request {reqid}: {r:?} vs {a:?}");
                }
            }
            assert_eq!(rank.unsafe_entries(), 0, "request {reqid} was run again");
        } else {
            let r = run_safe(rank, reqid, op).await;
            assert!(r.result.is_ok(), "lost request {reqid} runs again: {r:?}");
        }
    }
}

#[tokio::test]
async fn mds_s6_6_crash_losing_unsynced_data_replays_exactly_the_acknowledged_updates() {
    let model = reference().await;
    let (dev, acked, unsynced) = crashed_run(|_| CrashMode::LoseUnsynced).await;
    assert!(unsynced > 0, "the held entries reached the device, unsynced");
    let as_dev: Arc<dyn JournalDevice> = dev.clone();
    let (mut rank, report) = Rank::open(as_dev.clone(), jcfg(), LockerConfig::default()).await.unwrap();
    let reqs: Vec<ReqId> = report.client_reqs.iter().map(|(_, q)| *q).collect();
    assert_eq!(reqs, (1..=ACKED as u64).map(ReqId).collect::<Vec<_>>(), "{report:?}");
    assert!(report.client_reqs.iter().all(|(c, _)| *c == CLIENT));
    assert_eq!(report.completed_restored, ACKED, "{report:?}");
    assert_eq!(namespace(&rank), model[ACKED], "mds §6.6: exactly the acknowledged updates");
    mds_locker::invariants::check_all(rank.locker()).unwrap();

    resend_all(&mut rank, &reqs, &acked).await;
    assert_eq!(namespace(&rank), model[workload().len()]);
    rank.close().await.unwrap();
    let (rank, _) = Rank::open(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
    assert_eq!(namespace(&rank), model[workload().len()], "the second replay sees the re-run requests");
    rank.close().await.unwrap();
}

#[tokio::test]
async fn mds_s6_6_crash_with_a_torn_tail_replays_a_whole_entry_prefix() {
    let model = reference().await;
    let total = workload().len();
    let mut seen_prefixes = Vec::new();
    // Tear the unsynced tail at 0 bytes, 1 byte, 1/5 .. 4/5 of it, all but one byte, and all.
    for k in 0..=7u64 {
        let pick = move |u: u64| CrashMode::TornPrefix {
            bytes: match k {
                0 => 0,
                1 => 1,
                6 => u.saturating_sub(1),
                7 => u,
                _ => u * (k - 1) / 5,
            },
        };
        let (dev, acked, unsynced) = crashed_run(pick).await;
        let cut = format!("tear {k} of {unsynced} unsynced bytes");
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let (mut rank, report) = Rank::open(as_dev.clone(), jcfg(), LockerConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{cut}: replay failed: {e}"));
        let reqs: Vec<ReqId> = report.client_reqs.iter().map(|(_, q)| *q).collect();
        let n = reqs.len();
        assert!(n >= ACKED, "{cut}: an acknowledged update was lost: {reqs:?}");
        assert_eq!(reqs, (1..=n as u64).map(ReqId).collect::<Vec<_>>(), "{cut}: not a prefix");
        assert_eq!(namespace(&rank), model[n], "{cut}: replay of {n} whole entries");
        mds_locker::invariants::check_all(rank.locker()).unwrap();
        seen_prefixes.push(n);

        // The journal goes on after the tear: re-sends, then a clean close and reopen.
        resend_all(&mut rank, &reqs, &acked).await;
        assert_eq!(without_versions(namespace(&rank)), without_versions(model[total].clone()), "{cut}");
        rank.close().await.unwrap();
        let (rank, report) = Rank::open(as_dev, jcfg(), LockerConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{cut}: second replay after writing past the tear: {e}"));
        assert_eq!(
            without_versions(namespace(&rank)),
            without_versions(model[total].clone()),
            "{cut}: second replay {report:?}"
        );
        rank.close().await.unwrap();
    }
    assert_eq!(seen_prefixes.first(), Some(&ACKED), "cut 0 keeps only the acknowledged updates");
    assert!(seen_prefixes.windows(2).all(|w| w[0] <= w[1]), "longer tails replay more: {seen_prefixes:?}");
}
