//! Golden bytes for every notify message, the ack payload and the notify reply frame.
//!
//! Sources, per test:
//! * `spec_4_6_*`: the hex examples of rbd §4.6, transcribed with the spec's shorthand
//!   (`<gid 8>`, `34 12 00.. (8)`, `01.. 02.. 03.. (3×8)`) written out in full.
//! * `derived_*`: bytes derived by hand from the field tables of rbd §4.1–§4.5 (and §4.7 for
//!   older envelopes); each byte group is commented with the field it encodes.
//! * `reply_frame_*`: the notify2 reply layout of real-ceph §5, filled with the (gid, cookie)
//!   values observed there.
//!
//! Every example is checked both ways: our encoder produces exactly these bytes, and our
//! decoder turns them back into the same value.

use rados_store::encoding::{EncodingError, decode_all, encode_to_vec};
use rbd_exclusive_lock::notify::{
    AsyncRequestId, ClientId, MirrorSnapshotNamespace, MirrorSnapshotState, NotifyError, NotifyMessage,
    NotifyOp, NotifyReplyFrame, ResponseMessage, SnapCreateFlags, SnapshotNamespace, SnapshotNamespaceType,
};

/// Parses hex written with spaces, `|` separators and newlines.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits in {s:?}");
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
}

/// The client of rbd §4.6: gid 0x1234, handle 0x5678.
const C: ClientId = ClientId::new(0x1234, 0x5678);
/// Its bytes: gid u64 LE, handle u64 LE.
const C_HEX: &str = "34 12 00 00 00 00 00 00  78 56 00 00 00 00 00 00";

/// Request 1 of client C.
fn req1() -> AsyncRequestId {
    AsyncRequestId::new(C, 1)
}
/// Its bytes: ClientId, then request_id u64 LE.
fn req1_hex() -> String {
    format!("{C_HEX} 01 00 00 00 00 00 00 00")
}

/// Asserts encode(msg) == bytes and decode(bytes) == msg.
fn check(msg: &NotifyMessage, bytes: &[u8]) {
    assert_eq!(msg.to_bytes(), bytes, "encoding of {msg:?}");
    assert_eq!(NotifyMessage::from_bytes(bytes).as_ref(), Ok(msg), "decoding of {bytes:02x?}");
    // The envelope's length field always covers exactly the rest of the buffer.
    assert_eq!(u32::from_le_bytes(bytes[2..6].try_into().unwrap()) as usize, bytes.len() - 6);
}

// ----- rbd §4.6 -----

#[test]
fn spec_4_6_acquired_lock() {
    let bytes = hex("07 01 14 00 00 00 | 00 00 00 00 | 34 12 00 00 00 00 00 00 | 78 56 00 00 00 00 00 00");
    check(&NotifyMessage::AcquiredLock { client_id: C }, &bytes);
}

#[test]
fn spec_4_6_request_lock_force_false() {
    let bytes = hex(&format!("07 01 15 00 00 00 | 02 00 00 00 | {C_HEX} | 00"));
    check(&NotifyMessage::RequestLock { client_id: C, force: false }, &bytes);
}

#[test]
fn spec_4_6_header_update() {
    check(&NotifyMessage::HeaderUpdate, &hex("07 01 04 00 00 00 | 03 00 00 00"));
}

#[test]
fn spec_4_6_response_messages() {
    for (result, h) in [(0, "01 01 04 00 00 00 | 00 00 00 00"), (-30, "01 01 04 00 00 00 | e2 ff ff ff")] {
        let bytes = hex(h);
        let msg = ResponseMessage::new(result);
        assert_eq!(msg.to_bytes(), bytes);
        assert_eq!(bytes.len(), ResponseMessage::ENCODED_LEN);
        assert_eq!(ResponseMessage::from_bytes(&bytes), Ok(msg));
    }
}

#[test]
fn spec_4_6_snap_create() {
    let bytes = hex(
        "07 01 34 00 00 00 | 08 00 00 00 | 02 00 00 00 73 31 | 01 01 04 00 00 00 00 00 00 00 |
         34 12 00 00 00 00 00 00 | 78 56 00 00 00 00 00 00 | 01 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00",
    );
    let msg = NotifyMessage::SnapCreate {
        snap_name: "s1".into(),
        snap_namespace: SnapshotNamespace::User,
        async_request_id: req1(),
        flags: SnapCreateFlags::NONE,
    };
    check(&msg, &bytes);
}

#[test]
fn spec_4_6_async_complete() {
    let bytes = hex(&format!("07 01 20 00 00 00 | 05 00 00 00 | {} | ef ff ff ff", req1_hex()));
    check(&NotifyMessage::AsyncComplete { async_request_id: req1(), result: -17 }, &bytes);
}

#[test]
fn spec_4_6_resize() {
    let bytes = hex("07 01 25 00 00 00 | 07 00 00 00 | 00 00 00 40 00 00 00 00 |
         01 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  03 00 00 00 00 00 00 00 | 01");
    let msg = NotifyMessage::Resize {
        size: 1 << 30,
        async_request_id: AsyncRequestId::new(ClientId::new(1, 2), 3),
        allow_shrink: true,
    };
    check(&msg, &bytes);
}

// ----- every other op, derived from rbd §4.2 -----

#[test]
fn derived_released_lock() {
    // len 0x14 = op 4 + ClientId 16.
    let bytes = hex(&format!("07 01 14 00 00 00 | 01 00 00 00 | {C_HEX}"));
    check(&NotifyMessage::ReleasedLock { client_id: C }, &bytes);
}

#[test]
fn derived_request_lock_force_true() {
    // As the §4.6 example, with the force byte set.
    let bytes = hex(&format!("07 01 15 00 00 00 | 02 00 00 00 | {C_HEX} | 01"));
    check(&NotifyMessage::RequestLock { client_id: C, force: true }, &bytes);
}

#[test]
fn derived_async_progress() {
    // len 0x2c = op 4 + id 24 + offset 8 + total 8.
    let bytes = hex(&format!(
        "07 01 2c 00 00 00 | 04 00 00 00 | {} | 05 00 00 00 00 00 00 00 | 0a 00 00 00 00 00 00 00",
        req1_hex()
    ));
    check(&NotifyMessage::AsyncProgress { async_request_id: req1(), offset: 5, total: 10 }, &bytes);
}

#[test]
fn derived_ops_with_only_an_async_request_id() {
    // FLATTEN 6, REBUILD_OBJECT_MAP 10, MIGRATE 16, QUIESCE 18, UNQUIESCE 19:
    // len 0x1c = op 4 + id 24.
    let id = req1();
    let cases = [
        ("06", NotifyMessage::Flatten { async_request_id: id }),
        ("0a", NotifyMessage::RebuildObjectMap { async_request_id: id }),
        ("10", NotifyMessage::Migrate { async_request_id: id }),
        ("12", NotifyMessage::Quiesce { async_request_id: id }),
        ("13", NotifyMessage::Unquiesce { async_request_id: id }),
    ];
    for (op, msg) in cases {
        check(&msg, &hex(&format!("07 01 1c 00 00 00 | {op} 00 00 00 | {}", req1_hex())));
    }
}

#[test]
fn derived_snap_remove_protect_unprotect() {
    // len 0x2c = op 4 + name (4 + "s1") 6 + user namespace 10 + id 24.
    let id = req1();
    let name = || "s1".to_string();
    let cases = [
        (
            "09",
            NotifyMessage::SnapRemove {
                snap_name: name(),
                snap_namespace: SnapshotNamespace::User,
                async_request_id: id,
            },
        ),
        (
            "0c",
            NotifyMessage::SnapProtect {
                snap_name: name(),
                snap_namespace: SnapshotNamespace::User,
                async_request_id: id,
            },
        ),
        (
            "0d",
            NotifyMessage::SnapUnprotect {
                snap_name: name(),
                snap_namespace: SnapshotNamespace::User,
                async_request_id: id,
            },
        ),
    ];
    for (op, msg) in cases {
        let bytes = hex(&format!(
            "07 01 2c 00 00 00 | {op} 00 00 00 | 02 00 00 00 73 31 | 01 01 04 00 00 00 00 00 00 00 | {}",
            req1_hex()
        ));
        check(&msg, &bytes);
    }
}

#[test]
fn derived_snap_rename() {
    // len 0x34 = op 4 + snap_id 8 + name "s2" 6 + user namespace 10 + id 24.
    let bytes = hex(&format!(
        "07 01 34 00 00 00 | 0b 00 00 00 | 04 00 00 00 00 00 00 00 | 02 00 00 00 73 32 |
         01 01 04 00 00 00 00 00 00 00 | {}",
        req1_hex()
    ));
    let msg = NotifyMessage::SnapRename {
        snap_id: 4,
        snap_name: "s2".into(),
        snap_namespace: SnapshotNamespace::User,
        async_request_id: req1(),
    };
    check(&msg, &bytes);
}

#[test]
fn derived_rename() {
    // len 0x24 = op 4 + name (4 + "img2") 8 + id 24.
    let bytes = hex(&format!("07 01 24 00 00 00 | 0e 00 00 00 | 04 00 00 00 69 6d 67 32 | {}", req1_hex()));
    check(&NotifyMessage::Rename { image_name: "img2".into(), async_request_id: req1() }, &bytes);
}

#[test]
fn derived_update_features() {
    // Enable exclusive-lock (1<<2). len 0x25 = op 4 + features 8 + enabled 1 + id 24.
    let bytes =
        hex(&format!("07 01 25 00 00 00 | 0f 00 00 00 | 04 00 00 00 00 00 00 00 | 01 | {}", req1_hex()));
    check(
        &NotifyMessage::UpdateFeatures { features: 1 << 2, enabled: true, async_request_id: req1() },
        &bytes,
    );
}

#[test]
fn derived_sparsify() {
    // id first, then sparse_size 4096. len 0x24 = op 4 + id 24 + 8.
    let bytes = hex(&format!("07 01 24 00 00 00 | 11 00 00 00 | {} | 00 10 00 00 00 00 00 00", req1_hex()));
    check(&NotifyMessage::Sparsify { async_request_id: req1(), sparse_size: 4096 }, &bytes);
}

#[test]
fn derived_metadata_update_set_and_remove() {
    // Set: len 0x27 = op 4 + key (4 + "k") 5 + optional (1 + 4 + "v") 6 + id 24.
    let set = hex(&format!(
        "07 01 27 00 00 00 | 14 00 00 00 | 01 00 00 00 6b | 01 01 00 00 00 76 | {}",
        req1_hex()
    ));
    check(
        &NotifyMessage::MetadataUpdate { key: "k".into(), value: Some("v".into()), async_request_id: req1() },
        &set,
    );
    // Remove: the optional is a single 00. len 0x22.
    let remove = hex(&format!("07 01 22 00 00 00 | 14 00 00 00 | 01 00 00 00 6b | 00 | {}", req1_hex()));
    check(&NotifyMessage::MetadataUpdate { key: "k".into(), value: None, async_request_id: req1() }, &remove);
}

#[test]
fn derived_snap_create_flags_and_trash_namespace() {
    // A trash-namespace SNAP_CREATE with every internal flag set (bits 0..2 = 7).
    // Trash namespace: 01 01, len 0x0e = kind 4 + original name (4 + "s1") 6 + original kind 4.
    // Envelope len 0x3e = op 4 + name 6 + namespace 20 + id 24 + flags 8.
    let bytes = hex(&format!(
        "07 01 3e 00 00 00 | 08 00 00 00 | 02 00 00 00 73 31 |
         01 01 0e 00 00 00 02 00 00 00 02 00 00 00 73 31 00 00 00 00 | {} | 07 00 00 00 00 00 00 00",
        req1_hex()
    ));
    let flags = SnapCreateFlags::SKIP_OBJECT_MAP
        | SnapCreateFlags::SKIP_NOTIFY_QUIESCE
        | SnapCreateFlags::IGNORE_NOTIFY_QUIESCE_ERROR;
    let msg = NotifyMessage::SnapCreate {
        snap_name: "s1".into(),
        snap_namespace: SnapshotNamespace::Trash {
            original_name: "s1".into(),
            original_namespace_type: SnapshotNamespaceType::User,
        },
        async_request_id: req1(),
        flags,
    };
    check(&msg, &bytes);
}

#[test]
fn derived_unknown_op_decodes_and_skips_its_body() {
    // Op 21 (one past 16.2's last) with no body.
    let bare = hex("07 01 04 00 00 00 | 15 00 00 00");
    check(&NotifyMessage::Unknown { op: 21 }, &bare);
    // Op 99 with a 4-byte body nobody understands: skipped through the struct length.
    let with_body = hex("07 01 08 00 00 00 | 63 00 00 00 | de ad be ef");
    let msg = NotifyMessage::from_bytes(&with_body).unwrap();
    assert_eq!(msg, NotifyMessage::Unknown { op: 99 });
    assert_eq!(msg.op(), None);
    assert_eq!(msg.op_code(), 99);
}

// ----- snapshot namespaces, rbd §4.3 -----

#[test]
fn derived_group_namespace() {
    // kind 1, group_pool i64 3, group_id "g1", group_snapshot_id "gs1": len 4 + 8 + 6 + 7 = 0x19.
    let bytes = hex(
        "01 01 19 00 00 00 | 01 00 00 00 | 03 00 00 00 00 00 00 00 | 02 00 00 00 67 31 | 03 00 00 00 67 73 31",
    );
    let ns =
        SnapshotNamespace::Group { group_pool: 3, group_id: "g1".into(), group_snapshot_id: "gs1".into() };
    assert_eq!(encode_to_vec(&ns), bytes);
    assert_eq!(decode_all::<SnapshotNamespace>(&bytes), Ok(ns));
}

#[test]
fn derived_mirror_namespace() {
    // kind 3; state u8 0 (primary); complete 01; peer set {"p"}; primary_mirror_uuid "";
    // primary_snap_id CEPH_NOSNAP; last_copied_object_number 0; snap_seqs {1: 2}.
    // len = 4 + 1 + 1 + (4 + 5) + 4 + 8 + 8 + (4 + 16) = 0x37.
    let bytes = hex("01 01 37 00 00 00 | 03 00 00 00 | 00 | 01 | 01 00 00 00 01 00 00 00 70 | 00 00 00 00 |
         fe ff ff ff ff ff ff ff | 00 00 00 00 00 00 00 00 |
         01 00 00 00 01 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00");
    let ns = SnapshotNamespace::Mirror(MirrorSnapshotNamespace {
        state: MirrorSnapshotState::Primary,
        complete: true,
        mirror_peer_uuids: ["p".to_string()].into(),
        snap_seqs: [(1, 2)].into(),
        ..Default::default()
    });
    assert_eq!(encode_to_vec(&ns), bytes);
    assert_eq!(decode_all::<SnapshotNamespace>(&bytes), Ok(ns));
}

#[test]
fn derived_unknown_namespace_kind_is_kept_and_its_body_skipped() {
    let bytes = hex("01 01 06 00 00 00 | 07 00 00 00 | aa bb");
    let ns = decode_all::<SnapshotNamespace>(&bytes).unwrap();
    assert_eq!(ns, SnapshotNamespace::Unknown { namespace_type: 7 });
    assert_eq!(ns.namespace_type(), SnapshotNamespaceType::Unknown(7));
    assert_eq!(encode_to_vec(&ns), hex("01 01 04 00 00 00 | 07 00 00 00"));
}

// ----- ResponseMessage, rbd §4.5 -----

#[test]
fn derived_response_eopnotsupp_and_compat() {
    let bytes = hex("01 01 04 00 00 00 | a1 ff ff ff");
    assert_eq!(ResponseMessage::new(-95).to_bytes(), bytes);
    // A future v2 response with an extra field still reads (compat 1, tail skipped).
    let v2 = hex("02 01 05 00 00 00 | a1 ff ff ff | 09");
    assert_eq!(ResponseMessage::from_bytes(&v2), Ok(ResponseMessage::new(-95)));
    // compat 2 is refused.
    let c2 = hex("02 02 04 00 00 00 | a1 ff ff ff");
    assert!(matches!(
        ResponseMessage::from_bytes(&c2),
        Err(NotifyError::Decode { source: EncodingError::IncompatibleVersion { compat: 2, max: 1 }, .. })
    ));
}

// ----- older and newer envelopes, rbd §4.7 -----

#[test]
fn derived_v1_lock_payloads_have_no_client_id() {
    // A v1 ACQUIRED_LOCK is the op alone; the owner is "unknown" (0, 0).
    let bytes = hex("01 01 04 00 00 00 | 00 00 00 00");
    let d = NotifyMessage::from_bytes_with_version(&bytes).unwrap();
    assert_eq!(d.message, NotifyMessage::AcquiredLock { client_id: ClientId::default() });
    assert_eq!(d.struct_v, Some(1));
    // A v1 envelope that nevertheless carries a ClientId: librbd does not read it.
    let extra = hex(&format!("01 01 14 00 00 00 | 01 00 00 00 | {C_HEX}"));
    assert_eq!(
        NotifyMessage::from_bytes(&extra),
        Ok(NotifyMessage::ReleasedLock { client_id: ClientId::default() })
    );
}

#[test]
fn derived_v2_request_lock_has_no_force() {
    let bytes = hex(&format!("02 01 14 00 00 00 | 02 00 00 00 | {C_HEX}"));
    assert_eq!(
        NotifyMessage::from_bytes(&bytes),
        Ok(NotifyMessage::RequestLock { client_id: C, force: false })
    );
}

#[test]
fn derived_v3_resize_allows_shrink() {
    // No allow_shrink byte before v4; librbd defaults it to true. len 0x24 = 4 + 8 + 24.
    let bytes = hex(&format!("03 01 24 00 00 00 | 07 00 00 00 | 00 10 00 00 00 00 00 00 | {}", req1_hex()));
    assert_eq!(
        NotifyMessage::from_bytes(&bytes),
        Ok(NotifyMessage::Resize { size: 4096, async_request_id: req1(), allow_shrink: true })
    );
}

#[test]
fn derived_v5_snap_create_reads_namespace_but_other_snap_ops_do_not() {
    // v5 SNAP_CREATE: name, then the namespace (a group namespace, to see that it is read).
    let group =
        "01 01 19 00 00 00 01 00 00 00 03 00 00 00 00 00 00 00 02 00 00 00 67 31 03 00 00 00 67 73 31";
    // len = 4 + 6 + 31 = 0x29.
    let create = hex(&format!("05 01 29 00 00 00 | 08 00 00 00 | 02 00 00 00 73 31 | {group}"));
    assert_eq!(
        NotifyMessage::from_bytes(&create),
        Ok(NotifyMessage::SnapCreate {
            snap_name: "s1".into(),
            snap_namespace: SnapshotNamespace::Group {
                group_pool: 3,
                group_id: "g1".into(),
                group_snapshot_id: "gs1".into()
            },
            async_request_id: AsyncRequestId::default(),
            flags: SnapCreateFlags::NONE,
        })
    );
    // The same bytes as SNAP_REMOVE (op 9): before v6 only the name is read; the rest is
    // skipped and the namespace defaults to user.
    let remove = hex(&format!("05 01 29 00 00 00 | 09 00 00 00 | 02 00 00 00 73 31 | {group}"));
    assert_eq!(
        NotifyMessage::from_bytes(&remove),
        Ok(NotifyMessage::SnapRemove {
            snap_name: "s1".into(),
            snap_namespace: SnapshotNamespace::User,
            async_request_id: AsyncRequestId::default(),
        })
    );
}

#[test]
fn derived_v6_octopus_payloads_have_no_request_id() {
    // Octopus SNAP_CREATE: name + namespace, no id, no flags. len 0x14 = 4 + 6 + 10.
    let create = hex("06 01 14 00 00 00 | 08 00 00 00 | 02 00 00 00 73 31 | 01 01 04 00 00 00 00 00 00 00");
    let msg = NotifyMessage::from_bytes(&create).unwrap();
    assert_eq!(
        msg,
        NotifyMessage::SnapCreate {
            snap_name: "s1".into(),
            snap_namespace: SnapshotNamespace::User,
            async_request_id: AsyncRequestId::default(),
            flags: SnapCreateFlags::NONE,
        }
    );
    // The empty id is what sends the owner down the legacy synchronous path (rbd §3.3).
    assert!(msg.async_request_id().unwrap().is_empty());
    // Octopus RENAME and UPDATE_FEATURES.
    let rename = hex("06 01 0c 00 00 00 | 0e 00 00 00 | 04 00 00 00 69 6d 67 32");
    assert_eq!(
        NotifyMessage::from_bytes(&rename),
        Ok(NotifyMessage::Rename { image_name: "img2".into(), async_request_id: AsyncRequestId::default() })
    );
    let features = hex("06 01 0d 00 00 00 | 0f 00 00 00 | 04 00 00 00 00 00 00 00 | 00");
    assert_eq!(
        NotifyMessage::from_bytes(&features),
        Ok(NotifyMessage::UpdateFeatures {
            features: 4,
            enabled: false,
            async_request_id: AsyncRequestId::default()
        })
    );
    // Octopus FLATTEN always had its id.
    let flatten = hex(&format!("06 01 1c 00 00 00 | 06 00 00 00 | {}", req1_hex()));
    assert_eq!(NotifyMessage::from_bytes(&flatten), Ok(NotifyMessage::Flatten { async_request_id: req1() }));
}

#[test]
fn derived_newer_envelope_with_appended_field_still_decodes() {
    // A hypothetical v8 ACQUIRED_LOCK with two extra bytes after the ClientId.
    let bytes = hex(&format!("08 01 16 00 00 00 | 00 00 00 00 | {C_HEX} | ff ff"));
    let d = NotifyMessage::from_bytes_with_version(&bytes).unwrap();
    assert_eq!(d.message, NotifyMessage::AcquiredLock { client_id: C });
    assert_eq!(d.struct_v, Some(8));
}

// ----- malformed input, rbd §3.2 "not acked" -----

#[test]
fn malformed_envelopes_are_typed_errors() {
    let good = NotifyMessage::AcquiredLock { client_id: C }.to_bytes();

    // compat 2 is newer than librbd 16.2 accepts.
    let mut compat2 = good.clone();
    compat2[1] = 2;
    assert!(matches!(
        NotifyMessage::from_bytes(&compat2),
        Err(NotifyError::Decode {
            what: "notify message",
            source: EncodingError::IncompatibleVersion { compat: 2, max: 1 }
        })
    ));

    // The length claims one byte more than there is.
    let short = &good[..good.len() - 1];
    assert!(matches!(
        NotifyMessage::from_bytes(short),
        Err(NotifyError::Decode { source: EncodingError::StructTooLong { len: 0x14, remaining: 0x13 }, .. })
    ));

    // The length is honest but too small for the op's fields: reading stops at the struct end.
    let cut = hex(&format!("07 01 0c 00 00 00 | 00 00 00 00 | {C_HEX}"));
    assert!(matches!(
        NotifyMessage::from_bytes(&cut),
        Err(NotifyError::Decode { source: EncodingError::Truncated { .. }, .. })
    ));

    // Not UTF-8 in a snapshot name.
    let bad_name = hex(&format!(
        "07 01 2c 00 00 00 | 09 00 00 00 | 02 00 00 00 ff fe | 01 01 04 00 00 00 00 00 00 00 | {}",
        req1_hex()
    ));
    assert!(matches!(
        NotifyMessage::from_bytes(&bad_name),
        Err(NotifyError::Decode { source: EncodingError::InvalidUtf8, .. })
    ));

    // Any decode error maps to -EINVAL for a requester (rbd §3.4).
    assert_eq!(NotifyMessage::from_bytes(short).unwrap_err().errno(), -22);

    // Too short for even the envelope header.
    for n in 1..6 {
        assert!(NotifyMessage::from_bytes(&good[..n]).is_err(), "{n} bytes");
    }
}

#[test]
fn bytes_after_the_envelope_are_ignored_like_librbd() {
    let mut bytes = NotifyMessage::HeaderUpdate.to_bytes();
    bytes.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(NotifyMessage::from_bytes(&bytes), Ok(NotifyMessage::HeaderUpdate));
}

#[test]
fn every_op_has_a_golden_test_here() {
    // A guard against adding an op without bytes: the ops exercised in this file.
    let covered = [0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
    let all: Vec<u32> = NotifyOp::ALL.iter().map(|o| o.wire()).collect();
    assert_eq!(all, covered);
}

// ----- the notify2 reply frame, rbd §3.1 / real-ceph §5 -----

#[test]
fn reply_frame_with_one_ack() {
    // Observed: reply=([(4343, 94038161559408, "pong")], []).
    let bytes =
        hex("01 00 00 00 | f7 10 00 00 00 00 00 00 | 70 0f 37 f7 86 55 00 00 | 04 00 00 00 70 6f 6e 67 |
         00 00 00 00");
    let frame = NotifyReplyFrame {
        acks: [(ClientId::new(4343, 94038161559408), b"pong".to_vec())].into(),
        missed: vec![],
    };
    assert_eq!(frame.to_bytes(), bytes);
    assert_eq!(NotifyReplyFrame::from_bytes(&bytes), Ok(frame));
}

#[test]
fn reply_frame_with_a_missed_watcher() {
    // Observed: ret=-110, reply=([], [(4357, 94632919752400)]).
    let bytes = hex("00 00 00 00 | 01 00 00 00 | 05 11 00 00 00 00 00 00 | d0 de 90 71 11 56 00 00");
    let frame =
        NotifyReplyFrame { acks: Default::default(), missed: vec![ClientId::new(4357, 94632919752400)] };
    assert_eq!(frame.to_bytes(), bytes);
    assert_eq!(NotifyReplyFrame::from_bytes(&bytes), Ok(frame.clone()));
    // Nobody answered: for an owner-directed notify that is -ETIMEDOUT (rbd §3.4).
    assert_eq!(frame.lock_owner_result(), -110);
}

#[test]
fn reply_frame_owner_answer_among_empty_acks() {
    // Three watchers ack a REQUEST_LOCK; only the owner's ack carries a ResponseMessage(-EROFS).
    let frame = NotifyReplyFrame {
        acks: [
            (ClientId::new(1, 10), vec![]),
            (ClientId::new(2, 20), ResponseMessage::new(-30).to_bytes()),
            (ClientId::new(3, 30), vec![]),
        ]
        .into(),
        missed: vec![],
    };
    let bytes = frame.to_bytes();
    // 4 + 3 × (16 + 4) + 10 (the response) + 4.
    assert_eq!(bytes.len(), 4 + 3 * 20 + 10 + 4);
    let back = NotifyReplyFrame::from_bytes(&bytes).unwrap();
    assert_eq!(back, frame);
    assert_eq!(back.lock_owner_result(), -30);
}
