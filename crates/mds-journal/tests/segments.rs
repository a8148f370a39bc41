//! Log segments, expiry and trimming (mds §6.4, facts 72, 76): a segment every N events starting
//! with an ESubtreeMap; expiry only of durable segments whose dirty items were written back,
//! oldest first, never the newest; trimming removes whole objects behind the durable
//! expire position; "behind on trimming" past max_segments.

mod common;

use std::sync::Arc;

use common::*;
use mds_journal::tool;
use mds_journal::*;

fn cfg(events_per_segment: u64, max_segments: usize) -> JournalConfig {
    JournalConfig {
        events_per_segment,
        max_segments,
        layout: FileLayout::simple(1 << 20),
        ..JournalConfig::for_rank(0)
    }
}

#[tokio::test]
async fn a_segment_starts_every_n_events_with_a_subtree_map() {
    let dev = Arc::new(MemDevice::new());
    let log = MdLog::create(dev.clone(), cfg(4, 128)).await.unwrap();
    log.set_subtree_map_provider(Box::new(|| ESubtreeMap {
        subtrees: [(DirFrag::whole(InodeNo::ROOT), vec![])].into_iter().collect(),
        ..ESubtreeMap::default()
    }));
    let mut ps = Vec::new();
    for i in 0..10 {
        ps.push(log.submit(update(i)).unwrap());
    }
    // Segment = subtree map + 3 updates (4 events), so 10 updates need 4 segments.
    let segs = log.segments();
    assert_eq!(segs.len(), 4);
    assert!(segs.iter().take(3).all(|s| s.events == 4));
    assert_eq!(segs[3].events, 2);
    assert_eq!(ps[0].segment, segs[0].seq);
    assert_eq!(ps[3].segment, segs[1].seq);
    assert_eq!(ps[0].seq, segs[0].seq + 1, "the subtree map takes the segment's first sequence number");
    log.close().await.unwrap();
    let (_log, replay) = MdLog::open(dev, cfg(4, 128)).await.unwrap();
    let maps: Vec<&ESubtreeMap> = replay
        .events
        .iter()
        .filter_map(|e| match &e.event {
            LogEvent::SubtreeMap(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(maps.len(), 4);
    for (m, s) in maps.iter().zip(&segs) {
        assert_eq!(m.event_seq, s.seq);
        assert_eq!(m.subtrees.len(), 1, "the provider's map was journaled");
    }
    // Replay rebuilds the same segment keys and event positions.
    let replayed_updates: Vec<LogPosition> =
        replay.events.iter().filter(|e| tid_of(&e.event).is_some()).map(|e| e.pos).collect();
    assert_eq!(replayed_updates, ps);
}

#[tokio::test]
async fn a_new_segment_starts_when_the_stream_crosses_an_object() {
    let dev = Arc::new(MemDevice::new());
    let c = JournalConfig { layout: FileLayout::simple(8 << 10), ..cfg(1024, 128) };
    let log = MdLog::create(dev, c).await.unwrap();
    for i in 0..30 {
        log.submit(update(i)).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() > 2, "{segs:?}");
    for w in segs.windows(2) {
        assert_eq!(w[0].end, w[1].start, "segments are contiguous");
        assert_ne!(w[0].start / (8 << 10), w[1].start / (8 << 10), "a segment boundary per object crossed");
    }
}

#[tokio::test]
async fn dirty_items_hold_their_segment_until_marked_clean() {
    let dev = Arc::new(MemDevice::new());
    let log = MdLog::create(dev, cfg(2, 1)).await.unwrap();
    let p1 = log.submit(update(1)).unwrap(); // segment A: map, u1
    let p2 = log.submit(update(2)).unwrap(); // segment B: map, u2
    let _p3 = log.submit(update(3)).unwrap(); // segment C: map, u3
    assert_ne!(p1.segment, p2.segment);
    let ino = DirtyItem::Inode(InodeNo(0x10_0001));
    let df = DirtyItem::DirFrag(DirFrag::whole(InodeNo::ROOT));
    log.register_dirty(p1.segment, ino.clone()).unwrap();
    log.register_dirty(p1.segment, df.clone()).unwrap();
    // Dirtied again by a later event: moves to the newer segment.
    log.register_dirty(p2.segment, df.clone()).unwrap();
    assert_eq!(log.dirty_segment(&df), Some(p2.segment));
    // ...but never back to an older one.
    log.register_dirty(p1.segment, df.clone()).unwrap();
    assert_eq!(log.dirty_segment(&df), Some(p2.segment));
    assert!(log.register_dirty(9999, ino.clone()).is_err());
    log.wait_for_safe().await.unwrap();

    let r = log.trim().await.unwrap();
    assert!(r.expired.is_empty(), "A is dirty, so nothing expires: {r:?}");
    assert_eq!(r.waiting.len(), 2);
    assert_eq!(r.waiting[0].seq, p1.segment);
    assert_eq!(r.waiting[0].dirty, vec![ino.clone()]);
    assert!(!r.waiting[0].not_safe);
    assert!(r.behind_on_trimming);
    assert!(log.is_behind_on_trimming());

    assert_eq!(log.mark_clean(&ino), Some(p1.segment));
    let r = log.trim().await.unwrap();
    assert_eq!(r.expired, vec![p1.segment], "A expires; B still waits for the dirfrag");
    assert_eq!(r.expire_pos, log.segments()[0].start);
    assert_eq!(log.mark_clean(&df), Some(p2.segment));
    assert_eq!(log.mark_clean(&df), None);
    let r = log.trim().await.unwrap();
    assert_eq!(r.expired, vec![p2.segment]);
    assert_eq!(r.segments, 1);
    assert!(!r.behind_on_trimming);
    // The newest segment is never expired, even by trim_all.
    let r = log.trim_all().await.unwrap();
    assert!(r.expired.is_empty());
    assert_eq!(log.segments().len(), 1);
}

#[tokio::test]
async fn segments_with_unsafe_events_do_not_expire() {
    let fault = Arc::new(FaultDevice::new(MemDevice::new()));
    let log = MdLog::create(fault.clone(), cfg(2, 1)).await.unwrap();
    let p1 = log.submit(update(1)).unwrap();
    log.wait_safe(&p1).await.unwrap();
    fault.hold_syncs();
    let p2 = log.submit(update(2)).unwrap();
    let _p3 = log.submit(update(3)).unwrap();
    log.flush();
    fault.wait_for_blocked_syncs(1).await;
    // A (map, u1) ends where B starts, which is safe; B's end is not.
    let r = log.trim().await.unwrap();
    assert_eq!(r.expired, vec![p1.segment]);
    assert_eq!(r.waiting.len(), 1);
    assert_eq!(r.waiting[0].seq, p2.segment);
    assert!(r.waiting[0].not_safe);
    fault.release_syncs();
    log.wait_for_safe().await.unwrap();
    assert_eq!(log.trim().await.unwrap().expired, vec![p2.segment]);
}

#[tokio::test]
async fn trimming_removes_whole_objects_behind_the_durable_expire_pos() {
    let dev = Arc::new(MemDevice::new());
    let c = JournalConfig { layout: FileLayout::simple(4 << 10), ..cfg(8, 4) };
    let log = MdLog::create(dev.clone(), c.clone()).await.unwrap();
    for i in 0..120 {
        log.submit(update(i)).unwrap();
    }
    log.wait_for_safe().await.unwrap();
    let before = tool::journal_objects(dev.as_ref(), 0).await.unwrap();
    assert_eq!(before[0], "200.00000000");
    assert_eq!(before[1], "200.00000001", "data starts one period in (fact 72)");
    let segs_before = log.segments().len();
    assert!(segs_before > 4);
    let r = log.trim().await.unwrap();
    assert_eq!(r.segments, 4);
    assert_eq!(r.expired.len(), segs_before - 4);
    assert!(r.objects_removed > 0);
    let after = tool::journal_objects(dev.as_ref(), 0).await.unwrap();
    assert_eq!(after.len() as u64, before.len() as u64 - r.objects_removed);
    let period = 4u64 << 10;
    assert_eq!(r.trimmed_pos, (r.expire_pos / period) * period);
    // Every object wholly before trimmed_pos is gone; the header is durable with the new positions.
    let first_kept = parse_object_name(InodeNo::journal_of_rank(0), &after[1]).unwrap();
    assert_eq!(first_kept, r.trimmed_pos / period);
    let h = tool::read_header(dev.as_ref(), 0).await.unwrap();
    assert_eq!((h.expire_pos, h.trimmed_pos), (r.expire_pos, r.trimmed_pos));
    assert!(h.trimmed_pos <= h.expire_pos && h.expire_pos <= h.write_pos);
    log.close().await.unwrap();
    // Replay starts at the expire position, with a subtree map.
    let (_log, replay) = MdLog::open(dev, c).await.unwrap();
    assert_eq!(replay.events[0].pos.start, r.expire_pos);
    assert!(matches!(replay.events[0].event, LogEvent::SubtreeMap(_)));
    assert_eq!(tid_of(&replay.events.last().unwrap().event), Some(119));
}
