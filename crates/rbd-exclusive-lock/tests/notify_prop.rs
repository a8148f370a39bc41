//! Properties of the notify wire format (rbd §4):
//! * arbitrary bytes never panic any decoder, whether fully random or shaped like a notify
//!   envelope with a random body (which reaches the per-op field decoders);
//! * encode → decode is the identity for every generated message, and the encoding is
//!   canonical (decode → encode gives the same bytes back).

use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use rados_store::encoding::{Decoder, Encoder, decode_all, encode_to_vec};
use rbd_exclusive_lock::notify::{
    AsyncRequestId, ClientId, MirrorSnapshotNamespace, MirrorSnapshotState, NotifyMessage, NotifyReplyFrame,
    ResponseMessage, SnapCreateFlags, SnapshotNamespace, SnapshotNamespaceType,
};

fn client_id() -> impl Strategy<Value = ClientId> {
    (any::<u64>(), any::<u64>()).prop_map(|(g, h)| ClientId::new(g, h))
}

fn request_id() -> impl Strategy<Value = AsyncRequestId> {
    (client_id(), any::<u64>()).prop_map(|(c, r)| AsyncRequestId::new(c, r))
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn namespace_type() -> impl Strategy<Value = SnapshotNamespaceType> {
    any::<u32>().prop_map(SnapshotNamespaceType::from_wire)
}

fn namespace() -> impl Strategy<Value = SnapshotNamespace> {
    let mirror = (
        any::<u8>(),
        any::<bool>(),
        btree_set(text(), 0..3),
        text(),
        any::<u64>(),
        any::<u64>(),
        btree_map(any::<u64>(), any::<u64>(), 0..3),
    )
        .prop_map(|(state, complete, peers, primary, snap_id, last, seqs)| {
            SnapshotNamespace::Mirror(MirrorSnapshotNamespace {
                state: MirrorSnapshotState::from_wire(state),
                complete,
                mirror_peer_uuids: peers,
                primary_mirror_uuid: primary,
                primary_snap_id: snap_id,
                last_copied_object_number: last,
                snap_seqs: seqs,
            })
        });
    prop_oneof![
        Just(SnapshotNamespace::User),
        (any::<i64>(), text(), text()).prop_map(|(group_pool, group_id, group_snapshot_id)| {
            SnapshotNamespace::Group { group_pool, group_id, group_snapshot_id }
        }),
        (text(), namespace_type()).prop_map(|(original_name, original_namespace_type)| {
            SnapshotNamespace::Trash { original_name, original_namespace_type }
        }),
        mirror,
        // Unknown kinds must lie outside 0..=3 to round-trip (see SnapshotNamespace::Unknown).
        (4u32..).prop_map(|namespace_type| SnapshotNamespace::Unknown { namespace_type }),
    ]
}

fn snap_fields() -> impl Strategy<Value = (String, SnapshotNamespace, AsyncRequestId)> {
    (text(), namespace(), request_id())
}

fn message() -> impl Strategy<Value = NotifyMessage> {
    use NotifyMessage as M;
    prop_oneof![
        client_id().prop_map(|client_id| M::AcquiredLock { client_id }),
        client_id().prop_map(|client_id| M::ReleasedLock { client_id }),
        (client_id(), any::<bool>()).prop_map(|(client_id, force)| M::RequestLock { client_id, force }),
        Just(M::HeaderUpdate),
        (request_id(), any::<u64>(), any::<u64>()).prop_map(|(async_request_id, offset, total)| {
            M::AsyncProgress { async_request_id, offset, total }
        }),
        (request_id(), any::<i32>())
            .prop_map(|(async_request_id, result)| M::AsyncComplete { async_request_id, result }),
        request_id().prop_map(|async_request_id| M::Flatten { async_request_id }),
        (any::<u64>(), request_id(), any::<bool>()).prop_map(|(size, async_request_id, allow_shrink)| {
            M::Resize { size, async_request_id, allow_shrink }
        }),
        (snap_fields(), any::<u64>()).prop_map(|((snap_name, snap_namespace, async_request_id), flags)| {
            M::SnapCreate {
                snap_name,
                snap_namespace,
                async_request_id,
                flags: SnapCreateFlags::from_bits(flags),
            }
        }),
        snap_fields().prop_map(|(snap_name, snap_namespace, async_request_id)| M::SnapRemove {
            snap_name,
            snap_namespace,
            async_request_id
        }),
        request_id().prop_map(|async_request_id| M::RebuildObjectMap { async_request_id }),
        (any::<u64>(), snap_fields()).prop_map(|(snap_id, (snap_name, snap_namespace, async_request_id))| {
            M::SnapRename { snap_id, snap_name, snap_namespace, async_request_id }
        }),
        snap_fields().prop_map(|(snap_name, snap_namespace, async_request_id)| M::SnapProtect {
            snap_name,
            snap_namespace,
            async_request_id
        }),
        snap_fields().prop_map(|(snap_name, snap_namespace, async_request_id)| M::SnapUnprotect {
            snap_name,
            snap_namespace,
            async_request_id
        }),
        (text(), request_id())
            .prop_map(|(image_name, async_request_id)| M::Rename { image_name, async_request_id }),
        (any::<u64>(), any::<bool>(), request_id()).prop_map(|(features, enabled, async_request_id)| {
            M::UpdateFeatures { features, enabled, async_request_id }
        }),
        request_id().prop_map(|async_request_id| M::Migrate { async_request_id }),
        (request_id(), any::<u64>())
            .prop_map(|(async_request_id, sparse_size)| M::Sparsify { async_request_id, sparse_size }),
        request_id().prop_map(|async_request_id| M::Quiesce { async_request_id }),
        request_id().prop_map(|async_request_id| M::Unquiesce { async_request_id }),
        (text(), option::of(text()), request_id())
            .prop_map(|(key, value, async_request_id)| M::MetadataUpdate { key, value, async_request_id }),
        (21u32..).prop_map(|op| M::Unknown { op }),
    ]
}

/// A notify envelope with chosen header fields and an arbitrary body, so that random bytes
/// reach the per-op decoders instead of failing at the header.
fn shaped_envelope() -> impl Strategy<Value = Vec<u8>> {
    (0u8..10, 0u8..3, 0u32..24, vec(any::<u8>(), 0..96), any::<bool>(), 0u32..8).prop_map(
        |(version, compat, op, body, honest_len, len_skew)| {
            let mut e = Encoder::new();
            e.u8(version).u8(compat);
            let len = body.len() as u32 + 4;
            e.u32(if honest_len { len } else { len.saturating_sub(len_skew) });
            e.u32(op).raw(&body);
            e.into_vec()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// rbd §3.2: a malformed payload is an error (the notify goes unacked), never a crash.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..160)) {
        let _ = NotifyMessage::from_bytes_with_version(&bytes);
        let _ = ResponseMessage::from_bytes(&bytes);
        let _ = NotifyReplyFrame::from_bytes(&bytes);
        let _ = decode_all::<SnapshotNamespace>(&bytes);
        let _ = rbd_exclusive_lock::notify::lock_owner_result([&bytes, &bytes]);
        let _ = rbd_exclusive_lock::notify::lock_owner_result([&bytes]);
    }

    /// Envelope-shaped input: decoding either fails cleanly or yields a message whose op is
    /// the one on the wire, and whatever decodes re-encodes and decodes to the same value.
    #[test]
    fn shaped_envelopes_never_panic_and_decode_consistently(bytes in shaped_envelope()) {
        if let Ok(d) = NotifyMessage::from_bytes_with_version(&bytes) {
            let op = u32::from_le_bytes(bytes[6..10].try_into().unwrap());
            prop_assert_eq!(d.message.op_code(), op);
            prop_assert_eq!(d.struct_v, Some(bytes[0]));
            prop_assert!(bytes[1] <= 1);
            let again = NotifyMessage::from_bytes(&d.message.to_bytes());
            prop_assert_eq!(again.as_ref(), Ok(&d.message));
        }
    }

    /// rbd §4.2: every message survives encode → decode, and the encoding is canonical.
    #[test]
    fn encode_decode_is_identity(msg in message()) {
        let bytes = msg.to_bytes();
        prop_assert_eq!(&bytes[..2], &[7u8, 1][..]);
        prop_assert_eq!(u32::from_le_bytes(bytes[2..6].try_into().unwrap()) as usize, bytes.len() - 6);
        prop_assert_eq!(u32::from_le_bytes(bytes[6..10].try_into().unwrap()), msg.op_code());
        let back = NotifyMessage::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        // Through the rados-store trait too, with nothing left over.
        prop_assert_eq!(decode_all::<NotifyMessage>(&bytes), Ok(msg));
    }

    /// Any strict prefix of a valid message is an error, never a panic or a wrong message.
    #[test]
    fn truncated_messages_are_errors(msg in message(), cut in any::<prop::sample::Index>()) {
        let bytes = msg.to_bytes();
        let n = cut.index(bytes.len());
        // An empty prefix is the legacy HEADER_UPDATE, which is correct, not an error.
        prop_assume!(n > 0);
        prop_assert!(NotifyMessage::from_bytes(&bytes[..n]).is_err());
    }

    /// rbd §4.3 and §4.5 round trips.
    #[test]
    fn namespace_and_response_round_trip(ns in namespace(), result in any::<i32>()) {
        let bytes = encode_to_vec(&ns);
        prop_assert_eq!(decode_all::<SnapshotNamespace>(&bytes), Ok(ns));
        let r = ResponseMessage::new(result);
        prop_assert_eq!(ResponseMessage::from_bytes(&r.to_bytes()), Ok(r));
    }

    /// rbd §3.1: the reply frame round-trips.
    #[test]
    fn reply_frame_round_trips(
        acks in btree_map(client_id(), vec(any::<u8>(), 0..12), 0..4),
        missed in vec(client_id(), 0..3),
    ) {
        let frame = NotifyReplyFrame { acks, missed };
        let bytes = frame.to_bytes();
        prop_assert_eq!(NotifyReplyFrame::from_bytes(&bytes), Ok(frame));
        let mut d = Decoder::new(&bytes);
        prop_assert!(d.get::<NotifyReplyFrame>().is_ok() && d.is_empty());
    }
}
