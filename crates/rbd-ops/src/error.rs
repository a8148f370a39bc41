//! The crate's error type: one variant per errno a librbd caller acts on.
//!
//! librbd reports everything as a negative errno, and callers (qemu, OpenStack, the `rbd` CLI)
//! branch on the exact value (-EROFS means "someone else owns the lock", -EBLOCKLISTED means "you
//! were fenced, reopen", ...). So every error here keeps its errno ([`RbdError::errno`]), while the
//! common cases get names so Rust callers can match without knowing numbers.

use rados_store::error::errno;
use rbd_exclusive_lock::LockError;

/// Why an image call failed. Every variant maps to one errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbdError {
    /// -EROFS: the handle is read-only or at a snapshot, or another client owns the lock and will
    /// not (or may not) hand it over (rbd §2.11, §5.1, §7.5).
    #[error("read-only (-EROFS): {0}")]
    ReadOnly(String),
    /// -EBLOCKLISTED: the client was fenced; reopen the image once the entry expires (rbd §2.13).
    #[error("client is blocklisted (-EBLOCKLISTED)")]
    Blocklisted,
    /// -ENOENT: no such image, snapshot, key or lock holder.
    #[error("not found (-ENOENT): {0}")]
    NotFound(String),
    /// -EEXIST: the image or snapshot name is taken.
    #[error("already exists (-EEXIST): {0}")]
    Exists(String),
    /// -EBUSY: protected snapshot, watched image, lock held by someone else.
    #[error("busy (-EBUSY): {0}")]
    Busy(String),
    /// -EINVAL: bad argument (offset past the end, shrink not allowed, feature off, ...).
    #[error("invalid argument (-EINVAL): {0}")]
    InvalidArgument(String),
    /// -ETIMEDOUT: a peer did not answer in time.
    #[error("timed out (-ETIMEDOUT): {0}")]
    TimedOut(String),
    /// -EOPNOTSUPP: mode or operation not supported.
    #[error("not supported (-EOPNOTSUPP): {0}")]
    NotSupported(String),
    /// Any other errno (positive value).
    #[error("errno {errno}: {context}")]
    Os {
        /// The positive errno.
        errno: i32,
        /// What was being done.
        context: String,
    },
}

impl RbdError {
    /// The positive errno librbd would return (negated) for this error.
    pub fn errno(&self) -> i32 {
        match self {
            RbdError::ReadOnly(_) => errno::EROFS,
            RbdError::Blocklisted => errno::EBLOCKLISTED,
            RbdError::NotFound(_) => errno::ENOENT,
            RbdError::Exists(_) => errno::EEXIST,
            RbdError::Busy(_) => errno::EBUSY,
            RbdError::InvalidArgument(_) => errno::EINVAL,
            RbdError::TimedOut(_) => errno::ETIMEDOUT,
            RbdError::NotSupported(_) => errno::EOPNOTSUPP,
            RbdError::Os { errno, .. } => *errno,
        }
    }

    /// librbd's negative result, `-errno`.
    pub fn r(&self) -> i32 {
        -self.errno()
    }

    /// The error for an errno (either sign). 108 is read as -EBLOCKLISTED, which is what it means
    /// on every path of this crate that can produce it.
    pub fn from_errno(code: i32, context: impl Into<String>) -> RbdError {
        let context = context.into();
        match code.saturating_abs() {
            errno::EROFS => RbdError::ReadOnly(context),
            errno::EBLOCKLISTED => RbdError::Blocklisted,
            errno::ENOENT => RbdError::NotFound(context),
            errno::EEXIST => RbdError::Exists(context),
            errno::EBUSY => RbdError::Busy(context),
            errno::EINVAL => RbdError::InvalidArgument(context),
            errno::ETIMEDOUT => RbdError::TimedOut(context),
            errno::EOPNOTSUPP => RbdError::NotSupported(context),
            other => RbdError::Os { errno: other, context },
        }
    }

    /// `Ok(())` for `r >= 0`, else the error for `r`.
    pub fn check(r: i32, context: &str) -> RbdResult<()> {
        if r >= 0 { Ok(()) } else { Err(RbdError::from_errno(r, context)) }
    }
}

impl From<rados_store::Error> for RbdError {
    fn from(e: rados_store::Error) -> Self {
        RbdError::from_errno(e.errno(), e.to_string())
    }
}

impl From<LockError> for RbdError {
    fn from(e: LockError) -> Self {
        RbdError::from_errno(e.errno(), e.to_string())
    }
}

/// The crate's result type.
pub type RbdResult<T = ()> = Result<T, RbdError>;

/// librbd's `r` for a result.
pub(crate) fn to_r<T>(res: &RbdResult<T>) -> i32 {
    match res {
        Ok(_) => 0,
        Err(e) => e.r(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips() {
        for code in [2, 16, 17, 22, 30, 95, 108, 110, 5, 39] {
            assert_eq!(RbdError::from_errno(-code, "x").errno(), code);
        }
        assert_eq!(RbdError::from(LockError::ReadOnly), RbdError::ReadOnly(LockError::ReadOnly.to_string()));
        assert_eq!(RbdError::from(LockError::Blocklisted), RbdError::Blocklisted);
    }
}
