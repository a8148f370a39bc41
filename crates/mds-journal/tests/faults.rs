//! Fault injection: EIO on writes, syncs and header writes; torn writes; loss of unsynced data
//! at a simulated crash. The journal must report the error, refuse further work, never
//! acknowledge what it did not write, and after a crash replay everything it acknowledged
//! (STYLE §4: "nothing acknowledged as durable is lost after a crash").

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::*;
use mds_journal::*;

type Dev = Arc<FaultDevice<Arc<MemDevice>>>;

fn fault_dev() -> (Dev, Arc<MemDevice>) {
    let mem = Arc::new(MemDevice::new());
    (Arc::new(FaultDevice::new(mem.clone())), mem)
}

#[tokio::test]
async fn sync_eio_fails_waiters_and_refuses_further_submits() {
    let (fault, _) = fault_dev();
    let log = MdLog::create(fault.clone(), small_cfg(0, 16 << 10)).await.unwrap();
    let ok = log.submit(update(1)).unwrap();
    log.wait_safe(&ok).await.unwrap();
    fault.fail_syncs_after(Some(0));
    let lost = log.submit(update(2)).unwrap();
    let cb_result = Arc::new(Mutex::new(None));
    let slot = cb_result.clone();
    let lost2 = log.submit_with(update(3), move |r| *slot.lock().unwrap() = Some(r)).unwrap();
    let err = log.wait_safe(&lost).await.unwrap_err();
    assert!(matches!(err, JournalError::Failed(DeviceError::Io { op: "sync", .. })), "{err:?}");
    assert!(matches!(cb_result.lock().unwrap().take(), Some(Err(JournalError::Failed(_)))));
    assert!(matches!(log.wait_safe(&lost2).await, Err(JournalError::Failed(_))));
    // Refuses further work, reports the error, never moves the safe position.
    assert!(matches!(log.submit(update(4)), Err(JournalError::Failed(_))));
    assert!(matches!(log.wait_for_safe().await, Err(JournalError::Failed(_))));
    let st = log.status();
    assert_eq!(st.safe_pos, ok.end);
    assert!(st.error.is_some());
    assert!(matches!(log.trim_all().await, Err(JournalError::Failed(_))));
    // Even the previously acknowledged position stays acknowledged only if it was safe before.
    assert!(log.error().is_some());
}

#[tokio::test]
async fn write_eio_with_a_torn_write_is_never_acknowledged_and_replay_drops_it() {
    let (fault, mem) = fault_dev();
    let cfg = small_cfg(0, 16 << 10);
    let log = MdLog::create(fault.clone(), cfg.clone()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        let p = log.submit(update(i)).unwrap();
        log.wait_safe(&p).await.unwrap();
        acked.push(i);
    }
    fault.torn_on_failure(true);
    fault.fail_writes_after(Some(0));
    let p = log.submit(update(99)).unwrap();
    assert!(matches!(
        log.wait_safe(&p).await,
        Err(JournalError::Failed(DeviceError::Io { op: "write", .. }))
    ));
    // The torn half sits in the volatile cache; a crash may or may not keep it.
    fault.crash(CrashMode::KeepUnsynced).await;
    log.abandon().await;
    let (log2, replay) = MdLog::open(mem.clone(), cfg).await.unwrap();
    let tids: Vec<u64> = replay.events.iter().filter_map(|e| tid_of(&e.event)).collect();
    assert_eq!(tids, acked);
    let torn = replay.torn_tail.expect("the half-written entry is a torn tail");
    assert_eq!(torn.at, p.start);
    assert_eq!(replay.write_pos, p.start);
    // The journal continues where the valid data ended.
    assert_eq!(log2.status().write_pos, p.start);
    let p2 = log2.submit(update(100)).unwrap();
    log2.wait_safe(&p2).await.unwrap();
    log2.close().await.unwrap();
    assert_eq!(tool::inspect(mem.as_ref(), 0).await.unwrap().integrity, tool::Integrity::Ok);
}

#[tokio::test]
async fn header_write_failure_fails_the_journal() {
    let (fault, _) = fault_dev();
    let log = MdLog::create(fault.clone(), small_cfg(0, 16 << 10)).await.unwrap();
    let p = log.submit(update(1)).unwrap();
    log.wait_safe(&p).await.unwrap();
    fault.fail_write_full(true);
    assert!(matches!(log.write_head().await, Err(JournalError::Failed(_))));
    assert!(matches!(log.submit(update(2)), Err(JournalError::Failed(_))));
}

#[tokio::test]
async fn unacknowledged_waiters_fail_when_the_device_crashes() {
    let (fault, mem) = fault_dev();
    let cfg = small_cfg(0, 16 << 10);
    let log = MdLog::create(fault.clone(), cfg.clone()).await.unwrap();
    let safe = log.submit(update(1)).unwrap();
    log.wait_safe(&safe).await.unwrap();
    fault.hold_syncs();
    let p = log.submit(update(2)).unwrap();
    let l = log.clone();
    let w = tokio::spawn(async move { l.wait_safe(&p).await });
    fault.wait_for_blocked_syncs(1).await;
    fault.crash(CrashMode::LoseUnsynced).await;
    fault.release_syncs();
    assert!(w.await.unwrap().is_err(), "an entry lost in the crash was acknowledged");
    log.abandon().await;
    let (_log2, replay) = MdLog::open(mem, cfg).await.unwrap();
    let tids: Vec<u64> = replay.events.iter().filter_map(|e| tid_of(&e.event)).collect();
    assert_eq!(tids, vec![1]);
}

/// One crash scenario: `submitters` tasks submit and wait; at a seeded moment the device
/// crashes with `mode`; replay must contain every acknowledged event, in submission order per
/// submitter, and only events that were submitted.
async fn crash_scenario(seed: u64, mode_pick: u64) {
    let (fault, mem) = fault_dev();
    let cfg = small_cfg(0, 4 << 10);
    let log = MdLog::create(fault.clone(), cfg.clone()).await.unwrap();
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let submitted: Arc<Mutex<BTreeSet<u64>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let mut rng = Rng::new(seed);
    let crash_after = 5 + rng.below(60);
    let mut tasks = Vec::new();
    for s in 0..4u64 {
        let log = log.clone();
        let acked = acked.clone();
        let submitted = submitted.clone();
        let batch = 1 + (seed + s) % 3;
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                // Submit `batch` events, then wait for the last (pipelined submitters).
                let mut last = None;
                for _ in 0..batch {
                    let tid = s * 100_000 + i;
                    i += 1;
                    match log.submit(update_sized(tid, 500 + (tid % 7) as usize * 300)) {
                        Ok(p) => {
                            submitted.lock().unwrap().insert(tid);
                            last = Some((p, tid));
                        }
                        Err(_) => return,
                    }
                }
                let Some((p, tid)) = last else { return };
                if log.wait_safe(&p).await.is_err() {
                    return;
                }
                let mut a = acked.lock().unwrap();
                for t in (tid + 1 - batch)..=tid {
                    a.insert(t);
                }
            }
        }));
    }
    // Let the submitters run until enough acknowledgements exist, then pull the plug.
    loop {
        tokio::task::yield_now().await;
        if acked.lock().unwrap().len() as u64 >= crash_after {
            break;
        }
    }
    let mode = match mode_pick % 3 {
        0 => CrashMode::LoseUnsynced,
        1 => CrashMode::TornPrefix { bytes: rng.below(3000) },
        _ => CrashMode::KeepUnsynced,
    };
    fault.crash(mode).await;
    for t in tasks {
        t.await.unwrap();
    }
    log.abandon().await;
    let acked = acked.lock().unwrap().clone();
    let submitted = submitted.lock().unwrap().clone();

    fault.restart();
    let (log2, replay) =
        MdLog::open(mem.clone(), cfg.clone()).await.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let replayed: Vec<u64> = replay.events.iter().filter_map(|e| tid_of(&e.event)).collect();
    let replayed_set: BTreeSet<u64> = replayed.iter().copied().collect();
    assert_eq!(replayed.len(), replayed_set.len(), "seed {seed}: duplicate events");
    for a in &acked {
        assert!(replayed_set.contains(a), "seed {seed} {mode:?}: acknowledged {a} lost");
    }
    for r in &replayed {
        assert!(submitted.contains(r), "seed {seed}: replay invented {r}");
    }
    for s in 0..4u64 {
        let mine: Vec<u64> = replayed.iter().copied().filter(|t| t / 100_000 == s).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "seed {seed}: submitter {s} out of order");
        // Replay is a prefix of each submitter's stream: no holes.
        if let Some(&max) = mine.last() {
            assert_eq!(mine.len() as u64, max - s * 100_000 + 1, "seed {seed}: hole in submitter {s}");
        }
    }
    // Segments start with a subtree map.
    assert!(matches!(replay.events.first().map(|e| &e.event), Some(LogEvent::SubtreeMap(_))));
    // After recovery the journal is clean and writable, and a second open sees the same events.
    let p = log2.submit(update(999_999)).unwrap();
    log2.wait_safe(&p).await.unwrap();
    log2.close().await.unwrap();
    assert_eq!(tool::inspect(mem.as_ref(), 0).await.unwrap().integrity, tool::Integrity::Ok);
    let (_l3, replay3) = MdLog::open(mem, cfg).await.unwrap();
    let again: Vec<u64> = replay3.events.iter().filter_map(|e| tid_of(&e.event)).collect();
    assert_eq!(&again[..replayed.len()], &replayed[..]);
    assert_eq!(again.last(), Some(&999_999));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_seeded_moments_keeps_everything_acknowledged() {
    for seed in 0..24 {
        crash_scenario(seed, seed).await;
    }
}
