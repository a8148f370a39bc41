//! The image watcher's wire format: librbd 16.2's notify messages, byte for byte (rbd §4).
//!
//! Every client that opens an image writable watches `rbd_header.<id>`, and everything the
//! clients say to each other travels as a RADOS notify on that object: lock hand-over
//! (ACQUIRED/RELEASED/REQUEST_LOCK), header updates, and maintenance operations forwarded to
//! the lock owner together with their progress and completion (rbd §3.2). A cephlock client
//! only interoperates with qemu, the `rbd` CLI and the rest of the librbd world if it writes
//! and reads these payloads exactly as librbd does, so this module is a contract, not a
//! convenience:
//!
//! * [`NotifyMessage`] is the notify payload: a versioned envelope (v7, compat 1) holding a
//!   `u32` op and that op's fields (rbd §4.2). Older peers' envelopes decode with their missing
//!   fields defaulted as librbd defaults them (rbd §4.7), and ops this code does not know decode
//!   as [`NotifyMessage::Unknown`] rather than failing, because the receiver must still answer
//!   them (`-EOPNOTSUPP` from the owner, rbd §3.2).
//! * [`ResponseMessage`] is what a responsible receiver puts in its ack (rbd §4.5).
//! * [`NotifyReplyFrame`] is how the OSD hands all the acks of one notify back to the notifier
//!   (rbd §3.1, real-ceph §5), and [`lock_owner_result`] is librbd's rule for reading an
//!   owner-directed notify's acks (rbd §3.4, §10 fact 45).
//! * [`SnapshotNamespace`] and [`SnapCreateFlags`] are the cls_rbd / librbd types embedded in
//!   the snapshot ops (rbd §4.3, §4.4).
//!
//! Every primitive comes from [`rados_store::encoding`]; this module only arranges fields.
//! Decoding never panics, whatever the bytes: every failure is a [`NotifyError`].

mod ids;
mod message;
mod reply;
mod snap;

pub use ids::{AsyncRequestId, ClientId};
pub use message::{DecodedNotify, NOTIFY_COMPAT, NOTIFY_VERSION, NotifyMessage, NotifyOp};
pub use reply::{NotifyReplyFrame, RESPONSE_VERSION, ResponseMessage, lock_owner_result};
pub use snap::{
    MirrorSnapshotNamespace, MirrorSnapshotState, SnapCreateFlags, SnapshotNamespace, SnapshotNamespaceType,
};

use rados_store::encoding::EncodingError;
use rados_store::error::errno;

/// Why notify-layer bytes or values were rejected.
///
/// librbd's reaction to a payload it cannot decode is specific: it does not ack the notify at
/// all, so the sender sees that watcher time out (rbd §3.2, §10 fact 43), and a requester that
/// cannot decode the owner's ResponseMessage treats it as `-EINVAL` (rbd §3.4). Callers make
/// those decisions from this type; [`NotifyError::errno`] gives the latter mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The bytes of the named structure are malformed: truncated, a length running past the
    /// input, a compat version newer than librbd 16.2 understands, or a string that is not
    /// UTF-8.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// Which structure failed (`"notify message"`, `"response message"`, ...).
        what: &'static str,
        /// What the primitive decoder found.
        #[source]
        source: EncodingError,
    },
    /// `snap_create` API flags that librbd refuses: unknown bits, or both quiesce flags at once
    /// (rbd §4.4).
    #[error("invalid snap create flags {flags:#b}")]
    InvalidSnapCreateFlags {
        /// The API flags as given.
        flags: u32,
    },
}

impl NotifyError {
    /// The negative errno librbd reports for this failure: always `-EINVAL`, which is what
    /// NotifyLockOwner returns for an undecodable ack and `snap_create` for bad flags.
    pub fn errno(&self) -> i32 {
        -errno::EINVAL
    }

    pub(crate) fn decode(what: &'static str) -> impl FnOnce(EncodingError) -> NotifyError {
        move |source| NotifyError::Decode { what, source }
    }
}
