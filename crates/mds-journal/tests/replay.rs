//! Replay and inspection (mds §6.6): torn tails are reported and truncated; corruption in the
//! middle stops replay with the damaged entry's offset; the journal tool sees the same verdicts.

mod common;

use std::sync::Arc;

use common::*;
use mds_journal::tool::{self, EventFilter, Integrity};
use mds_journal::*;

const OBJ: u32 = 4 << 10;

/// A closed journal on a memory device with `n` EUpdates; returns their positions.
async fn journal_with(n: u64) -> (Arc<MemDevice>, JournalConfig, Vec<LogPosition>) {
    let dev = Arc::new(MemDevice::new());
    let cfg = small_cfg(0, OBJ);
    let log = MdLog::create(dev.clone(), cfg.clone()).await.unwrap();
    let mut ps = Vec::new();
    for i in 0..n {
        ps.push(log.submit(update(i)).unwrap());
    }
    log.close().await.unwrap();
    (dev, cfg, ps)
}

fn obj(n: u64) -> String {
    object_name(InodeNo::journal_of_rank(0), n)
}

/// Applies `f` to stream byte `pos` of rank 0's journal.
fn poke(dev: &MemDevice, pos: u64, f: impl FnOnce(&mut u8)) {
    let (o, at) = FileLayout::simple(OBJ).locate(pos);
    let mut data = dev.object(&obj(o)).unwrap();
    f(&mut data[at as usize]);
    dev.set_object(&obj(o), data);
}

/// Appends raw bytes at the end of rank 0's stream (as a torn, unacknowledged write would).
fn append_raw(dev: &MemDevice, pos: u64, bytes: &[u8]) {
    let layout = FileLayout::simple(OBJ);
    for ext in layout.map(pos, bytes.len() as u64) {
        let mut data = dev.object(&obj(ext.object)).unwrap_or_default();
        let start = (ext.stream_offset - pos) as usize;
        let end = ext.offset as usize + ext.len as usize;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[ext.offset as usize..end].copy_from_slice(&bytes[start..start + ext.len as usize]);
        dev.set_object(&obj(ext.object), data);
    }
}

#[tokio::test]
async fn clean_replay_returns_every_event_in_order() {
    let (dev, cfg, ps) = journal_with(40).await;
    let (_log, replay) = MdLog::open(dev.clone(), cfg).await.unwrap();
    assert!(replay.torn_tail.is_none());
    assert_eq!(replay.skipped, 0);
    let updates: Vec<&ReplayedEvent> = replay.events.iter().filter(|e| tid_of(&e.event).is_some()).collect();
    assert_eq!(updates.len(), 40);
    for (i, (ev, p)) in updates.iter().zip(&ps).enumerate() {
        assert_eq!(ev.pos, *p, "event {i}");
        assert_eq!(ev.event, update(i as u64));
    }
    assert!(replay.events.windows(2).all(|w| w[0].pos.end == w[1].pos.start), "entries are contiguous");
    assert_eq!(replay.write_pos, ps.last().unwrap().end);
    let insp = tool::inspect(dev.as_ref(), 0).await.unwrap();
    assert_eq!(insp.integrity, Integrity::Ok);
    assert_eq!(insp.entries as usize, replay.events.len());
    assert_eq!(insp.event_counts["EUpdate"], 40);
    assert_eq!(insp.valid_end, replay.write_pos);
}

#[tokio::test]
async fn torn_tail_is_reported_truncated_and_overwritten() {
    let (dev, cfg, ps) = journal_with(10).await;
    let end = ps.last().unwrap().end;
    // A partial entry: a valid frame cut short, as a crash mid-write leaves it.
    let mut frame_bytes = Vec::new();
    frame::encode_frame(StreamFormat::ResilientCrc, end, &update(10).to_payload(), &mut frame_bytes);
    append_raw(&dev, end, &frame_bytes[..frame_bytes.len() / 2]);
    let insp = tool::inspect(dev.as_ref(), 0).await.unwrap();
    assert!(matches!(insp.integrity, Integrity::TornTail { at, .. } if at == end), "{:?}", insp.integrity);

    let (log, replay) = MdLog::open(dev.clone(), cfg.clone()).await.unwrap();
    let torn = replay.torn_tail.clone().expect("torn tail");
    assert_eq!(torn.at, end);
    assert_eq!(replay.write_pos, end);
    assert_eq!(replay.events.iter().filter(|e| tid_of(&e.event).is_some()).count(), 10);
    // Truncated on the device: inspect is clean before anything new is written.
    assert_eq!(tool::inspect(dev.as_ref(), 0).await.unwrap().integrity, Integrity::Ok);
    assert_eq!(log.status().write_pos, end, "new entries go where the valid data ended");
    log.submit(update(11)).unwrap();
    log.close().await.unwrap();
    let (_log, replay) = MdLog::open(dev, cfg).await.unwrap();
    assert_eq!(tid_of(&replay.events.last().unwrap().event), Some(11));
}

#[tokio::test]
async fn a_frame_with_a_bad_crc_at_the_end_is_a_torn_tail() {
    let (dev, cfg, ps) = journal_with(5).await;
    let end = ps.last().unwrap().end;
    let mut frame_bytes = Vec::new();
    frame::encode_frame(StreamFormat::ResilientCrc, end, &update(5).to_payload(), &mut frame_bytes);
    let n = frame_bytes.len();
    frame_bytes[n - 30] ^= 0xff; // full length written, a block inside never made it
    append_raw(&dev, end, &frame_bytes);
    let (_log, replay) = MdLog::open(dev, cfg).await.unwrap();
    let torn = replay.torn_tail.unwrap();
    assert_eq!(torn.at, end);
    assert!(torn.reason.contains("crc"), "{}", torn.reason);
}

#[tokio::test]
async fn zeros_after_the_last_entry_are_a_clean_end() {
    let (dev, cfg, ps) = journal_with(5).await;
    let end = ps.last().unwrap().end;
    append_raw(&dev, end, &[0u8; 3000]);
    assert_eq!(tool::inspect(dev.as_ref(), 0).await.unwrap().integrity, Integrity::Ok);
    let (_log, replay) = MdLog::open(dev, cfg).await.unwrap();
    assert!(replay.torn_tail.is_none());
    assert_eq!(replay.write_pos, end);
}

#[tokio::test]
async fn corruption_in_the_middle_stops_replay_with_its_offset() {
    let (dev, cfg, ps) = journal_with(20).await;
    let victim = ps[7];
    poke(&dev, victim.start + 40, |b| *b ^= 0x01);
    let err = MdLog::open(dev.clone(), cfg.clone()).await.unwrap_err();
    match err {
        JournalError::Corrupt { offset, reason } => {
            assert_eq!(offset, victim.start);
            assert!(matches!(reason, FrameError::BadCrc { .. }), "{reason:?}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let insp = tool::inspect(dev.as_ref(), 0).await.unwrap();
    assert!(matches!(insp.integrity, Integrity::Corrupt { at, .. } if at == victim.start));
    assert_eq!(insp.valid_end, victim.start);
    // The operator's repair: cut the journal at the damaged entry, then it opens.
    tool::truncate(dev.as_ref(), 0, victim.start).await.unwrap();
    let (_log, replay) = MdLog::open(dev, cfg).await.unwrap();
    assert_eq!(replay.events.iter().filter_map(|e| tid_of(&e.event)).max(), Some(6));
}

#[tokio::test]
async fn a_damaged_sentinel_in_the_middle_is_corruption_not_a_torn_tail() {
    let (dev, cfg, ps) = journal_with(20).await;
    poke(&dev, ps[12].start, |b| *b = 0);
    assert!(matches!(
        MdLog::open(dev, cfg).await,
        Err(JournalError::Corrupt { offset, reason: FrameError::BadSentinel { .. } }) if offset == ps[12].start
    ));
}

#[tokio::test]
async fn damage_to_the_last_acknowledged_entry_is_corruption() {
    // The header's write_pos vouches for everything before it: damage there is never "torn".
    let (dev, cfg, ps) = journal_with(6).await;
    let last = ps[5];
    let header = tool::read_header(dev.as_ref(), 0).await.unwrap();
    assert_eq!(header.write_pos, last.end);
    poke(&dev, last.start + 30, |b| *b ^= 0x80);
    assert!(
        matches!(MdLog::open(dev, cfg).await, Err(JournalError::Corrupt { offset, .. }) if offset == last.start)
    );
}

#[tokio::test]
async fn undecodable_payload_with_a_valid_frame_is_corruption() {
    let (dev, cfg, ps) = journal_with(3).await;
    let end = ps.last().unwrap().end;
    let mut frame_bytes = Vec::new();
    frame::encode_frame(StreamFormat::ResilientCrc, end, b"\x03\x00\x00\x00junk", &mut frame_bytes);
    append_raw(&dev, end, &frame_bytes);
    let mut h = tool::read_header(dev.as_ref(), 0).await.unwrap();
    h.write_pos = end + frame_bytes.len() as u64;
    tool::write_header(dev.as_ref(), 0, &h).await.unwrap();
    assert!(matches!(
        MdLog::open(dev.clone(), cfg).await,
        Err(JournalError::Corrupt { offset, reason: FrameError::Event(EventDecodeError::UnknownType(3)) }) if offset == end
    ));
    // The listing shows it with its error and type id.
    let listing = tool::list_events(dev.as_ref(), 0, &EventFilter::default()).await.unwrap();
    let last = listing.events.last().unwrap();
    assert_eq!((last.offset, last.type_id, last.type_name.as_str()), (end, 3, "EExport"));
    assert!(last.event.is_none() && last.error.is_some());
}

#[tokio::test]
async fn events_before_the_first_segment_start_are_skipped() {
    let (dev, cfg, ps) = journal_with(6).await;
    let all = tool::list_events(dev.as_ref(), 0, &EventFilter::default()).await.unwrap().events;
    let from = all.iter().position(|r| r.offset == ps[2].start).unwrap();
    let expect_skipped = all[from..].iter().take_while(|r| r.type_id != EventType::SubtreeMap.id()).count();
    assert!(expect_skipped >= 1);
    // Point expire_pos at the third EUpdate: replay must skip until a segment start.
    let mut h = tool::read_header(dev.as_ref(), 0).await.unwrap();
    h.expire_pos = ps[2].start;
    tool::write_header(dev.as_ref(), 0, &h).await.unwrap();
    let (_log, replay) = MdLog::open(dev, cfg).await.unwrap();
    assert_eq!(replay.skipped as usize, expect_skipped);
    assert_eq!(replay.events.len(), all.len() - from - expect_skipped);
    assert!(matches!(replay.events.first().map(|e| &e.event), None | Some(LogEvent::SubtreeMap(_))));
}

#[tokio::test]
async fn event_listing_filters_by_type_and_range() {
    let (dev, _cfg, ps) = journal_with(12).await;
    let all = tool::list_events(dev.as_ref(), 0, &EventFilter::default()).await.unwrap();
    assert_eq!(all.integrity, Integrity::Ok);
    assert!(all.events.len() > 12, "subtree maps are listed too");
    let updates =
        tool::list_events(dev.as_ref(), 0, &EventFilter { event_type: Some(EventType::Update), range: None })
            .await
            .unwrap();
    assert_eq!(
        updates.events.iter().map(|r| r.offset).collect::<Vec<_>>(),
        ps.iter().map(|p| p.start).collect::<Vec<_>>()
    );
    assert!(updates.events.iter().all(|r| r.summary.starts_with("EUpdate mkdir")));
    let ranged = tool::list_events(
        dev.as_ref(),
        0,
        &EventFilter { event_type: Some(EventType::Update), range: Some(ps[3].start..ps[6].start) },
    )
    .await
    .unwrap();
    assert_eq!(ranged.events.len(), 3);
    assert_eq!(ranged.events[0].event, Some(update(3)));
    let json = serde_json::to_value(&ranged).unwrap();
    assert_eq!(json["integrity"]["status"], "ok");
    assert_eq!(json["events"][0]["type_name"], "EUpdate");
}

#[tokio::test]
async fn a_missing_header_and_a_bad_header_are_typed_errors() {
    let dev = Arc::new(MemDevice::new());
    assert!(matches!(MdLog::open(dev.clone(), small_cfg(0, OBJ)).await, Err(JournalError::NotFound { .. })));
    assert!(matches!(tool::inspect(dev.as_ref(), 0).await, Err(JournalError::NotFound { .. })));
    dev.set_object(&obj(0), vec![2, 2, 200, 0, 0, 0, 1]);
    assert!(matches!(MdLog::open(dev.clone(), small_cfg(0, OBJ)).await, Err(JournalError::BadHeader { .. })));
    let mut h = JournalHeader::new(FileLayout::simple(OBJ), StreamFormat::ResilientCrc);
    h.expire_pos = h.write_pos + 1;
    tool::write_header(dev.as_ref(), 0, &h).await.unwrap();
    assert!(matches!(MdLog::open(dev.clone(), small_cfg(0, OBJ)).await, Err(JournalError::BadHeader { .. })));
    let insp = tool::inspect(dev.as_ref(), 0).await.unwrap();
    assert!(insp.header_problem.is_some());
}

#[tokio::test]
async fn truncation_removes_stale_objects_beyond_a_gap() {
    // A stale object far beyond the end (left by an earlier incarnation) must not survive a
    // torn-tail truncation: the log would otherwise run into it when it grows that far.
    let (dev, cfg, ps) = journal_with(5).await;
    let end = ps.last().unwrap().end;
    append_raw(&dev, end, &[0xee; 100]);
    dev.set_object(&obj(40), vec![0xab; 64]);
    let (_log, replay) = MdLog::open(dev.clone(), cfg).await.unwrap();
    assert_eq!(replay.torn_tail.map(|t| t.at), Some(end));
    assert!(dev.object(&obj(40)).is_none());
}
