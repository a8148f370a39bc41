//! Feeds arbitrary bytes to every decoder of the rbd notify wire format (rbd §4).
//!
//! A malformed notify must come back as an error, which librbd answers by not acking (rbd
//! §3.2); a panic here would instead take down the image watcher of whoever received it. Beyond
//! "no panic", whatever does decode must survive a re-encode: the decoded value is something
//! cephlock could send, so it has to read back as itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rados_store::encoding::{decode_all, encode_to_vec};
use rbd_exclusive_lock::notify::{
    NotifyMessage, NotifyReplyFrame, ResponseMessage, SnapshotNamespace, lock_owner_result,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = NotifyMessage::from_bytes_with_version(data) {
        let bytes = decoded.message.to_bytes();
        let again = NotifyMessage::from_bytes(&bytes).expect("a re-encoded notify must decode");
        assert_eq!(again, decoded.message);
        assert_eq!(again.to_bytes(), bytes, "encoding must be canonical");
    }

    if let Ok(response) = ResponseMessage::from_bytes(data) {
        assert_eq!(ResponseMessage::from_bytes(&response.to_bytes()), Ok(response));
    }

    if let Ok(frame) = NotifyReplyFrame::from_bytes(data) {
        assert_eq!(NotifyReplyFrame::from_bytes(&frame.to_bytes()).as_ref(), Ok(&frame));
        let _ = frame.lock_owner_result();
    }

    if let Ok(ns) = decode_all::<SnapshotNamespace>(data) {
        assert_eq!(decode_all::<SnapshotNamespace>(&encode_to_vec(&ns)), Ok(ns));
    }

    // The owner-ack rule over a reply where this input is one (or two) of the acks.
    let _ = lock_owner_result([data]);
    let _ = lock_owner_result([data, &[][..], data]);
});
