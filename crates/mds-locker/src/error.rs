//! Errors the Locker returns to its driver.
//!
//! These are driver mistakes or stale references, not metadata errors: a request that names a
//! missing file gets a POSIX error in its reply, while an event naming a request or lock that
//! does not exist is refused here and changes nothing.

use crate::ids::{ClientId, Ino, LockId, ObjKey, Rank, ReqId};

/// Why the Locker refused an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockerError {
    /// The request id is not in flight.
    #[error("unknown request {0}")]
    UnknownRequest(ReqId),
    /// The request id is already in flight for another client (a re-send by the same client
    /// waits for the original and is answered from the completed-request table instead).
    #[error("request {0} is already in flight for another client")]
    DuplicateRequest(ReqId),
    /// The client has no open session; open one first.
    #[error("client {0} has no session")]
    NoSession(ClientId),
    /// The inode is not in this rank's cache.
    #[error("inode {0} is not in cache")]
    UnknownInode(Ino),
    /// The lock's parent object is not in cache, or the type belongs to the other object kind.
    #[error("no such lock {0:?}")]
    UnknownLock(LockId),
    /// A lock op Ceph never performs on that lock class (e.g. wrlocking a simplelock,
    /// xlocking a scatterlock, rdlocking a locallock).
    #[error("{op} is not supported on {lock:?} ({why})")]
    UnsupportedLockOp {
        /// "rdlock", "wrlock" or "xlock".
        op: &'static str,
        /// The lock.
        lock: LockId,
        /// The rule that forbids it.
        why: &'static str,
    },
    /// The request is waiting for its journal entry and can no longer be cancelled.
    #[error("request {0} is committing")]
    RequestCommitting(ReqId),
    /// A request ids at or above `ReqId::INTERNAL_BASE` belongs to the Locker.
    #[error("request id {0} is reserved for internal mutations")]
    ReservedRequestId(ReqId),
    /// An internal precondition failed (a bug): e.g. `predirty_journal_parents` without the
    /// parent's filelock and nestlock wrlocks (§8 fact 71).
    #[error("internal precondition failed: {0}")]
    Precondition(&'static str),
    /// An object named by another rank or a caller is not in this rank's cache.
    #[error("object {0} is not in cache")]
    UnknownObject(ObjKey),
    /// A message from another rank that cannot be right (sent to itself, naming an object
    /// the sender is not auth for, ...). Messages about objects this rank no longer has are
    /// not errors: Ceph drops them, and so does the Locker.
    #[error("bad message from rank {from}: {why}")]
    BadMessage {
        /// Sender rank.
        from: Rank,
        /// What is wrong with it.
        why: &'static str,
    },
}
