//! Event encodings (mds §6.1): round trips for every type, hand-derived golden bytes, and
//! decoding of damaged or random bytes, which must fail with a typed error and never panic.

mod common;

use common::*;
use mds_journal::*;
use proptest::prelude::*;
use rados_store::UTime;

#[test]
fn every_event_type_round_trips_fact_75() {
    let events = one_of_each();
    let mut seen = std::collections::BTreeSet::new();
    for ev in &events {
        let bytes = ev.to_payload();
        let back = LogEvent::decode_payload(&bytes).unwrap_or_else(|e| panic!("{}: {e}", ev.summary()));
        assert_eq!(&back, ev);
        seen.insert(ev.event_type());
    }
    assert_eq!(seen.len(), EventType::ALL.len(), "one_of_each covers every type");
}

#[test]
fn type_ids_match_ceph_fact_75() {
    let ids: Vec<(EventType, u32)> = EventType::ALL.iter().map(|t| (*t, t.id())).collect();
    assert_eq!(
        ids,
        vec![
            (EventType::SubtreeMap, 2),
            (EventType::ResetJournal, 9),
            (EventType::Session, 10),
            (EventType::Update, 20),
            (EventType::PeerUpdate, 21),
            (EventType::Open, 22),
            (EventType::Committed, 23),
            (EventType::NoOp, 51),
        ]
    );
    for t in EventType::ALL {
        assert_eq!(EventType::from_id(t.id()), Some(t));
        assert_eq!(EventType::parse(t.name()), Some(t));
        assert_eq!(EventType::parse(&t.id().to_string()), Some(t));
    }
    assert_eq!(EventType::parse("update"), Some(EventType::Update));
    assert_eq!(EventType::parse("peer_update"), Some(EventType::PeerUpdate));
    assert_eq!(EventType::parse("EExport"), None);
    assert_eq!(EventType::name_of_id(3), "EExport");
}

/// The payload header: u32 0 (EVENT_NEW_ENCODING), then versioned(1,1) { u32 type, body }.
fn envelope(type_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0, 1, 1];
    v.extend_from_slice(&((4 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&type_id.to_le_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn golden_reset_journal() {
    let ev = LogEvent::ResetJournal(EResetJournal { stamp: UTime { sec: 0x0102_0304, nsec: 5 } });
    let expected: Vec<u8> = vec![
        0, 0, 0, 0, // EVENT_NEW_ENCODING
        1, 1, 18, 0, 0, 0, // event header v1 compat 1, 18 bytes
        9, 0, 0, 0, // type 9
        1, 1, 8, 0, 0, 0, // EResetJournal v1 compat 1, 8 bytes
        4, 3, 2, 1, 5, 0, 0, 0, // stamp
    ];
    assert_eq!(ev.to_payload(), expected);
    assert_eq!(LogEvent::decode_payload(&expected).unwrap(), ev);
}

#[test]
fn golden_committed() {
    let ev = LogEvent::Committed(ECommitted { stamp: UTime { sec: 1, nsec: 2 }, reqid: reqid(7) });
    let body: Vec<u8> = vec![
        1, 1, 25, 0, 0, 0, // ECommitted v1 compat 1, 25 bytes
        1, 0, 0, 0, 2, 0, 0, 0, // stamp
        0x08, 0x1b, 0x10, 0, 0, 0, 0, 0, 0, // entity_name_t client.4123
        7, 0, 0, 0, 0, 0, 0, 0, // tid
    ];
    assert_eq!(ev.to_payload(), envelope(23, &body));
}

#[test]
fn golden_noop() {
    let ev = LogEvent::NoOp(ENoOp { pad_size: 3 });
    let body: Vec<u8> = vec![1, 1, 7, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0];
    assert_eq!(ev.to_payload(), envelope(51, &body));
}

#[test]
fn golden_empty_update() {
    // Pins the EMetaBlob field order: an empty blob is 13 counts/ids after its envelope.
    let ev = LogEvent::Update(EUpdate {
        stamp: UTime { sec: 1, nsec: 0 },
        op_type: "x".into(),
        metablob: MetaBlob::default(),
        cmapv: 2,
        reqid: None,
        had_peers: true,
    });
    let mut blob = vec![1u8, 1];
    let blob_body: Vec<u8> = [
        &[0u8; 4][..], // dirs
        &[0; 4],       // roots
        &[0; 4],       // client_reqs
        &[0; 8],       // allocated_ino
        &[0; 8],       // used_preallocated_ino
        &[0; 4],       // preallocated_inos
        &[0],          // client_name: absent
        &[0; 8],       // inotable_version
        &[0; 8],       // sessionmap_version
        &[0; 4],       // truncate_start
        &[0; 4],       // truncate_finish
        &[0; 4],       // destroyed_inodes
        &[0; 8],       // renamed_dirino
    ]
    .concat();
    blob.extend_from_slice(&(blob_body.len() as u32).to_le_bytes());
    blob.extend_from_slice(&blob_body);
    let mut inner = vec![1u8, 0, 0, 0, 0, 0, 0, 0]; // stamp
    inner.extend_from_slice(&[1, 0, 0, 0, b'x']);
    inner.extend_from_slice(&blob);
    inner.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // cmapv
    inner.push(0); // reqid absent
    inner.push(1); // had_peers
    let mut body = vec![1u8, 1];
    body.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    body.extend_from_slice(&inner);
    assert_eq!(ev.to_payload(), envelope(20, &body));
}

#[test]
fn old_style_payload_without_marker_decodes() {
    // Before EVENT_NEW_ENCODING, a payload began directly with the type id.
    let mut bytes = 23u32.to_le_bytes().to_vec();
    let full = LogEvent::Committed(ECommitted { stamp: t(1), reqid: reqid(3) }).to_payload();
    bytes.extend_from_slice(&full[14..]);
    assert_eq!(
        LogEvent::decode_payload(&bytes).unwrap(),
        LogEvent::Committed(ECommitted { stamp: t(1), reqid: reqid(3) })
    );
}

#[test]
fn unknown_type_and_trailing_bytes_are_errors() {
    assert_eq!(LogEvent::decode_payload(&envelope(3, &[])), Err(EventDecodeError::UnknownType(3)));
    let mut bytes = LogEvent::NoOp(ENoOp { pad_size: 0 }).to_payload();
    bytes.push(0);
    assert!(matches!(LogEvent::decode_payload(&bytes), Err(EventDecodeError::Encoding { .. })));
    // An invalid peer op byte.
    let ev = one_of_each().into_iter().find(|e| matches!(e, LogEvent::PeerUpdate(_))).unwrap();
    let mut bytes = ev.to_payload();
    // Locate the op byte: after stamp(8) + op_type + reqid(17) + leader(4) inside the body.
    let body_start = 4 + 6 + 4 + 6;
    let op_type_len = u32::from_le_bytes(bytes[body_start + 8..body_start + 12].try_into().unwrap()) as usize;
    let op_byte = body_start + 8 + 4 + op_type_len + 17 + 4;
    bytes[op_byte] = 9;
    assert!(matches!(
        LogEvent::decode_payload(&bytes),
        Err(EventDecodeError::Encoding { event: "EPeerUpdate", .. })
    ));
}

#[test]
fn json_shape_is_tagged_and_stable() {
    let ev = LogEvent::Committed(ECommitted { stamp: UTime { sec: 1, nsec: 2 }, reqid: reqid(7) });
    let json = serde_json::to_string(&ev).unwrap();
    assert_eq!(
        json,
        r#"{"type":"Committed","event":{"stamp":{"sec":1,"nsec":2},"reqid":{"name":"client.4123","tid":7}}}"#
    );
}

#[test]
fn truncations_of_every_event_fail_cleanly() {
    for ev in one_of_each() {
        let bytes = ev.to_payload();
        for cut in 0..bytes.len() {
            assert!(
                LogEvent::decode_payload(&bytes[..cut]).is_err(),
                "{} cut at {cut} decoded",
                ev.summary()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = LogEvent::decode_payload(&bytes);
        let _ = JournalHeader::from_bytes(&bytes);
    }

    #[test]
    fn corrupted_events_never_panic(idx in 0usize..11, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let ev = &one_of_each()[idx];
        let mut bytes = ev.to_payload();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x | 1;
        }
        // Either an error or some event; never a panic, never an allocation bomb.
        let _ = LogEvent::decode_payload(&bytes);
    }

    #[test]
    fn random_updates_round_trip(tid in any::<u64>(), size in 700usize..4096, peers in any::<bool>()) {
        let mut ev = update_sized(tid, size);
        if let LogEvent::Update(u) = &mut ev { u.had_peers = peers; }
        let bytes = ev.to_payload();
        prop_assert_eq!(LogEvent::decode_payload(&bytes).unwrap(), ev);
    }

    #[test]
    fn frames_of_random_bytes_never_panic(start in any::<u64>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = frame::parse_frame(StreamFormat::ResilientCrc, start, &bytes);
        let _ = frame::parse_frame(StreamFormat::Resilient, start, &bytes);
    }
}
