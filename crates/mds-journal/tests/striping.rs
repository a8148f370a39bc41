//! A striped layout (stripe_count > 1, stripe unit < object size) through the whole journal:
//! the stream is dealt over several objects per object set, and probing, torn-tail truncation
//! and trimming must all follow the layout (mds §6.4: the journal is striped like any file).

mod common;

use std::sync::Arc;

use common::*;
use mds_journal::tool::{self, Integrity};
use mds_journal::*;

fn striped() -> JournalConfig {
    JournalConfig {
        layout: FileLayout { stripe_unit: 1024, stripe_count: 3, object_size: 4096, pool_id: 7 },
        events_per_segment: 4,
        max_segments: 2,
        ..JournalConfig::for_rank(0)
    }
}

#[tokio::test]
async fn striped_journal_replays_truncates_and_trims() {
    let fault = Arc::new(FaultDevice::new(Arc::new(MemDevice::new())));
    let c = striped();
    let log = MdLog::create(fault.clone(), c.clone()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..40 {
        let p = log.submit(update(i)).unwrap();
        log.wait_safe(&p).await.unwrap();
        acked.push(i);
    }
    let objs = tool::journal_objects(fault.as_ref(), 0).await.unwrap();
    // Period 12 KiB: data starts at object set 1, i.e. objects 3, 4 and 5 first.
    assert_eq!(&objs[..4], &["200.00000000", "200.00000003", "200.00000004", "200.00000005"]);
    // A torn batch: the last entries reach the cache but only part survives the crash.
    fault.hold_syncs();
    let tail = log.submit(update(40)).unwrap();
    log.flush();
    fault.wait_for_blocked_syncs(1).await;
    fault.crash(CrashMode::TornPrefix { bytes: (tail.end - tail.start) / 2 }).await;
    fault.release_syncs();
    log.abandon().await;
    fault.restart();

    let (log, replay) = MdLog::open(fault.clone(), c.clone()).await.unwrap();
    let tids: Vec<u64> = replay.events.iter().filter_map(|e| tid_of(&e.event)).collect();
    assert_eq!(tids, acked);
    assert_eq!(replay.torn_tail.as_ref().map(|t| t.at), Some(tail.start));
    assert_eq!(tool::inspect(fault.as_ref(), 0).await.unwrap().integrity, Integrity::Ok);
    let r = log.trim().await.unwrap();
    assert!(r.objects_removed >= 3, "{r:?}");
    assert_eq!(r.trimmed_pos % (3 * 4096), 0);
    log.close().await.unwrap();
    let (_log, replay) = MdLog::open(fault.clone(), c).await.unwrap();
    assert_eq!(replay.events[0].pos.start, r.expire_pos);
    assert_eq!(tid_of(&replay.events.last().unwrap().event), Some(39));
    let h = tool::read_header(fault.as_ref(), 0).await.unwrap();
    assert_eq!(h.layout, FileLayout { stripe_unit: 1024, stripe_count: 3, object_size: 4096, pool_id: 7 });
}
