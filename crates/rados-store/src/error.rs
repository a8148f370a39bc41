//! The store's errors, each carrying the errno Ceph would return.
//!
//! Callers above the store (the exclusive lock, the journal) decide what to do by errno, as
//! librbd and the MDS do (`-EBUSY` means "someone else holds it", `-EBLOCKLISTED` means "we were
//! fenced", ...), so every variant maps to exactly one errno and back.

/// Linux errno values as Ceph returns them (negated on the wire; positive here).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such object, lock holder or key.
    pub const ENOENT: i32 = 2;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Resource busy (cls_lock: held by someone else, or a tag/type mismatch).
    pub const EBUSY: i32 = 16;
    /// Already exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Object too large.
    pub const EFBIG: i32 = 27;
    /// Read-only: librbd's answer when a handle may not write or hand over the lock.
    pub const EROFS: i32 = 30;
    /// Result out of range.
    pub const ERANGE: i32 = 34;
    /// Bad message: a reply that does not decode (what Ceph's class clients return).
    pub const EBADMSG: i32 = 74;
    /// Name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Directory (or omap) not empty.
    pub const ENOTEMPTY: i32 = 39;
    /// Restart: librbd asks a requester to retry a forwarded operation (the owner changed).
    pub const ERESTART: i32 = 85;
    /// No such attribute (a missing xattr).
    pub const ENODATA: i32 = 61;
    /// Operation not supported (unknown object class or method).
    pub const EOPNOTSUPP: i32 = 95;
    /// The client is blocklisted. Ceph reuses ESHUTDOWN's number for it.
    pub const EBLOCKLISTED: i32 = 108;
    /// Ceph's name for the same number, used when a handle is shutting down.
    pub const ESHUTDOWN: i32 = 108;
    /// Timed out (a notify some watcher did not ack in time).
    pub const ETIMEDOUT: i32 = 110;
    /// Stale (snap id below the current sequence).
    pub const ESTALE: i32 = 116;
    /// Quota exceeded.
    pub const EDQUOT: i32 = 122;
    /// Operation cancelled.
    pub const ECANCELED: i32 = 125;
    /// Not connected (a watch that is gone).
    pub const ENOTCONN: i32 = 107;
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The object, key, lock holder or snapshot does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object or entry already exists.
    #[error("already exists: {0}")]
    Exists(String),
    /// Held by someone else, or a lock type or tag mismatch.
    #[error("busy: {0}")]
    Busy(String),
    /// The arguments are malformed (bad name, bad range, undecodable input).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A requested extended attribute is absent.
    #[error("no such attribute: {0}")]
    NoData(String),
    /// Unknown object class or method.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// This client has been blocklisted: it must not touch the cluster again.
    #[error("client is blocklisted")]
    Blocklisted,
    /// At least one watcher did not ack a notify before its timeout.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// A name is longer than the store accepts.
    #[error("name too long: {0}")]
    NameTooLong(String),
    /// Any other errno, as an object class or the backend returned it.
    #[error("errno {errno}: {context}")]
    Os {
        /// The positive errno.
        errno: i32,
        /// What was being done.
        context: String,
    },
}

impl Error {
    /// The positive errno Ceph would return for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound(_) => errno::ENOENT,
            Error::Exists(_) => errno::EEXIST,
            Error::Busy(_) => errno::EBUSY,
            Error::InvalidArgument(_) => errno::EINVAL,
            Error::NoData(_) => errno::ENODATA,
            Error::NotSupported(_) => errno::EOPNOTSUPP,
            Error::Blocklisted => errno::EBLOCKLISTED,
            Error::TimedOut(_) => errno::ETIMEDOUT,
            Error::NameTooLong(_) => errno::ENAMETOOLONG,
            Error::Os { errno, .. } => *errno,
        }
    }

    /// The typed error for an errno (positive or negative), e.g. from an object class or a real
    /// OSD reply.
    pub fn from_errno(code: i32, context: impl Into<String>) -> Self {
        let context = context.into();
        match code.abs() {
            errno::ENOENT => Error::NotFound(context),
            errno::EEXIST => Error::Exists(context),
            errno::EBUSY => Error::Busy(context),
            errno::EINVAL => Error::InvalidArgument(context),
            errno::ENODATA => Error::NoData(context),
            errno::EOPNOTSUPP => Error::NotSupported(context),
            errno::EBLOCKLISTED => Error::Blocklisted,
            errno::ETIMEDOUT => Error::TimedOut(context),
            errno::ENAMETOOLONG => Error::NameTooLong(context),
            other => Error::Os { errno: other, context },
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips() {
        for code in [2, 5, 11, 16, 17, 22, 36, 61, 95, 108, 110, 116, 122, 125] {
            assert_eq!(Error::from_errno(-code, "x").errno(), code);
            assert_eq!(Error::from_errno(code, "x").errno(), code);
        }
    }
}
