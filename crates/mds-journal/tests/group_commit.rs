//! Group commit under concurrency (mds §6.4 submission; anchors §1.5): many tasks submit and
//! wait; completions fire in log order; nothing is acknowledged before the sync covering it
//! has returned; flushes are shared.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mds_journal::*;
use rados_store::SimClock;

/// Reads entry `[start, end)` of `rank`'s stream straight from the durable device.
fn durable_event(dev: &MemDevice, rank: u32, layout: FileLayout, pos: &LogPosition) -> Option<LogEvent> {
    let ino = InodeNo::journal_of_rank(rank);
    let mut bytes = Vec::new();
    for ext in layout.map(pos.start, pos.end - pos.start) {
        let obj = dev.object(&object_name(ino, ext.object))?;
        let end = (ext.offset + ext.len) as usize;
        if obj.len() < end {
            return None;
        }
        bytes.extend_from_slice(&obj[ext.offset as usize..end]);
    }
    let frame = frame::parse_frame(StreamFormat::ResilientCrc, pos.start, &bytes).ok()?;
    LogEvent::decode_payload(frame.payload).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_submitters_complete_in_log_order_and_only_when_durable() {
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let cfg = small_cfg(0, 16 << 10);
    let layout = cfg.layout;
    let log = MdLog::create(fault.clone(), cfg).await.unwrap();
    let order: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let log = log.clone();
        let order = order.clone();
        let fault = fault.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                let tid = task * 1000 + i;
                let ev = update_sized(tid, 600);
                let order = order.clone();
                let pos = log
                    .submit_with(ev.clone(), move |r| {
                        let pos = r.expect("durable");
                        order.lock().unwrap().push(pos.start);
                    })
                    .unwrap();
                log.wait_safe(&pos).await.unwrap();
                // Acknowledged ⇒ durable: the bytes are on the platter, not only in the cache.
                let on_disk = durable_event(fault.inner(), 0, layout, &pos);
                assert_eq!(
                    on_disk.as_ref(),
                    Some(&ev),
                    "acked entry {tid} at {:#x} is not durable",
                    pos.start
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.close().await.unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 32 * 20);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "completions out of log order");
    let stats = fault.stats();
    // Group commit: far fewer syncs than entries (with 32 concurrent submitters).
    assert!(stats.syncs < 32 * 20, "no batching: {} syncs for {} entries", stats.syncs, 32 * 20);
}

#[tokio::test]
async fn nothing_is_acknowledged_while_its_sync_is_held() {
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let log = MdLog::create(fault.clone(), small_cfg(0, 64 << 10)).await.unwrap();
    fault.hold_syncs();
    let pos = log.submit(update(1)).unwrap();
    let l2 = log.clone();
    let waiter = tokio::spawn(async move { l2.wait_safe(&pos).await });
    fault.wait_for_blocked_syncs(1).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiter.is_finished(), "acknowledged while the sync had not returned");
    assert!(log.status().safe_pos < pos.end);
    // Entries submitted while a flush is in flight join the next batch.
    let p2 = log.submit(update(2)).unwrap();
    let p3 = log.submit(update(3)).unwrap();
    let l3 = log.clone();
    let w3 = tokio::spawn(async move { l3.wait_safe(&p3).await });
    fault.release_syncs();
    waiter.await.unwrap().unwrap();
    w3.await.unwrap().unwrap();
    log.wait_safe(&p2).await.unwrap();
    assert_eq!(log.status().safe_pos, p3.end);
    // One sync for the first batch, one for the two entries that queued behind it.
    assert_eq!(fault.stats().syncs, 2);
}

#[tokio::test]
async fn unwaited_entries_are_flushed_by_the_batch_timer() {
    let clock = Arc::new(SimClock::new());
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let mut cfg = small_cfg(0, 64 << 10);
    cfg.clock = clock.clone();
    cfg.batch = BatchConfig { max_batch_delay: Duration::from_millis(5), ..BatchConfig::default() };
    let log = MdLog::create(fault.clone(), cfg).await.unwrap();
    fault.hold_syncs();
    let pos = log.submit(update(1)).unwrap();
    // The flusher parks on the batch timer; nothing is flushed before it fires.
    clock.wait_for_sleepers(1).await;
    assert_eq!(fault.stats().writes, 0);
    clock.advance(Duration::from_millis(5));
    fault.wait_for_blocked_syncs(1).await;
    fault.release_syncs();
    log.wait_safe(&pos).await.unwrap();
    assert_eq!(fault.stats().syncs, 1);
}

#[tokio::test]
async fn commit_delay_gathers_later_entries_into_the_same_flush() {
    let clock = Arc::new(SimClock::new());
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let mut cfg = small_cfg(0, 64 << 10);
    cfg.clock = clock.clone();
    cfg.batch = BatchConfig {
        commit_delay: Duration::from_millis(1),
        max_batch_delay: Duration::from_secs(1),
        ..BatchConfig::default()
    };
    let log = MdLog::create(fault.clone(), cfg).await.unwrap();
    let p1 = log.submit(update(1)).unwrap();
    let l = log.clone();
    let w1 = tokio::spawn(async move { l.wait_safe(&p1).await });
    clock.wait_for_sleepers(1).await;
    let p2 = log.submit(update(2)).unwrap();
    let l = log.clone();
    let w2 = tokio::spawn(async move { l.wait_safe(&p2).await });
    assert_eq!(fault.stats().writes, 0, "the requested flush is held for commit_delay");
    clock.advance(Duration::from_millis(1));
    w1.await.unwrap().unwrap();
    w2.await.unwrap().unwrap();
    assert_eq!(fault.stats().syncs, 1, "both entries shared one flush");
}

#[tokio::test]
async fn batches_respect_max_batch_bytes() {
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let mut cfg = small_cfg(0, 1 << 20);
    cfg.batch = BatchConfig { max_batch_bytes: 4096, ..BatchConfig::default() };
    let log = MdLog::create(fault.clone(), cfg).await.unwrap();
    fault.hold_syncs();
    let first = log.submit(update_sized(0, 1000)).unwrap();
    let l = log.clone();
    let w = tokio::spawn(async move { l.wait_safe(&first).await });
    fault.wait_for_blocked_syncs(1).await;
    // Ten ~1 KiB entries queue behind the held flush; they must go out in ≥ 3 flushes of ≤ 4 KiB.
    let mut last = first;
    for i in 1..=10 {
        last = log.submit(update_sized(i, 1000)).unwrap();
    }
    fault.release_syncs();
    w.await.unwrap().unwrap();
    log.wait_safe(&last).await.unwrap();
    assert!(fault.stats().syncs >= 4, "syncs: {}", fault.stats().syncs);
}

#[tokio::test]
async fn wait_for_safe_covers_everything_submitted() {
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let log = MdLog::create(fault.clone(), small_cfg(0, 8 << 10)).await.unwrap();
    let mut positions = Vec::new();
    for i in 0..50 {
        positions.push(log.submit(update(i)).unwrap());
    }
    log.wait_for_safe().await.unwrap();
    assert_eq!(fault.unsynced_bytes(), 0);
    for p in &positions {
        assert!(durable_event(fault.inner(), 0, FileLayout::simple(8 << 10), p).is_some());
    }
    // Waiting for a position already safe returns at once; beyond the end is refused.
    log.wait_safe(&positions[0]).await.unwrap();
    let beyond = LogPosition { end: positions[49].end + 1000, ..positions[49] };
    assert!(matches!(log.wait_safe(&beyond).await, Err(JournalError::InvalidArgument(_))));
}

#[tokio::test]
async fn oversized_events_are_refused_without_side_effects() {
    let dev = Arc::new(MemDevice::new());
    let log = MdLog::create(dev, small_cfg(0, 64 << 10)).await.unwrap();
    let before = log.status();
    let err = log.submit(LogEvent::NoOp(ENoOp { pad_size: 65 << 20 })).unwrap_err();
    assert!(matches!(err, JournalError::EventTooLarge { .. }), "{err:?}");
    let after = log.status();
    assert_eq!(
        (after.write_pos, after.segments, after.next_seq),
        (before.write_pos, before.segments, before.next_seq)
    );
    // The journal is still usable.
    let p = log.submit(update(1)).unwrap();
    log.wait_safe(&p).await.unwrap();
}
