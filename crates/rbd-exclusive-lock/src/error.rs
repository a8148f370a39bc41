//! The crate's public error type, and the bridge from librbd's `r` values to it.
//!
//! Inside, the lock runs on librbd's integer results (`0` or a negative errno) because every
//! decision in `lock-sm` branches on exact errno values and the hooks pass them through
//! unchanged (see `lock_sm::managed_lock`, "Why results are plain i32"). Callers of this crate
//! should not have to know errno numbers to decide what to do, so every public call converts at
//! the boundary into [`LockError`], which keeps the errno (for logs, for the C-API-compatible
//! layers above and for conformance tests) and names the cases a caller acts on.

use lock_sm::managed_lock::errno;

/// Why a lock operation failed. Every variant maps to exactly one errno ([`LockError::errno`]).
///
/// The variants are grouped by what a caller can do about them: retry later (`Busy`,
/// `OwnerAlive`, `TimedOut`, `Restart`), give up on writing (`ReadOnly`), stop using the image
/// (`Blocklisted`, `ShutDown`), or report a bug / bad input (`InvalidArgument`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum LockError {
    /// -EBUSY: the lock is held by another client or by an external mechanism (another tag or a
    /// cookie that is not `auto <handle>`, rbd §1.6.1), or the caller asked to break its own lock.
    #[error("lock is busy: held by another client or by an external mechanism (-EBUSY)")]
    Busy,
    /// -EAGAIN: the lock owner is alive (or changed during a break, rbd §1.6.3); a plain
    /// ManagedLock acquire reports it as is.
    #[error("lock owner is alive (-EAGAIN)")]
    OwnerAlive,
    /// -EROFS: this handle is not the owner and may not become it: a standard-policy owner
    /// refused to hand the lock over (rbd §2.9), or the handle's own policy forbids acquiring.
    #[error("read-only: not the lock owner (-EROFS)")]
    ReadOnly,
    /// -ESHUTDOWN: the lock is shutting down or shut down (rbd §1.3, §10 fact 17).
    #[error("exclusive lock is shut down (-ESHUTDOWN)")]
    ShutDown,
    /// -EBLOCKLISTED: the client was fenced by the cluster; it can never regain the lock and must
    /// reopen the image after the blocklist entry goes away (rbd §2.13).
    #[error("client is blocklisted (-EBLOCKLISTED)")]
    Blocklisted,
    /// -ENOENT: there is no lock holder, or the header object is missing.
    #[error("no lock holder or no header object (-ENOENT)")]
    NotFound,
    /// -ETIMEDOUT: no lock owner answered, or a forwarded request timed out (rbd §3.4).
    #[error("timed out (-ETIMEDOUT)")]
    TimedOut,
    /// -ERESTART: a forwarded request was canceled because the owner released or changed; the
    /// whole request should be retried with the same request id (rbd §3.4, §10 fact 50).
    #[error("request must be restarted (-ERESTART)")]
    Restart,
    /// -EINVAL: bad input, or more than one watcher answered as owner (rbd §3.4).
    #[error("invalid argument (-EINVAL)")]
    InvalidArgument,
    /// -EOPNOTSUPP: the mode or operation is not supported (SHARED lock mode, an owner that cannot
    /// run a forwarded op).
    #[error("operation not supported (-EOPNOTSUPP)")]
    NotSupported,
    /// -ECANCELED: the operation was canceled.
    #[error("operation canceled (-ECANCELED)")]
    Canceled,
    /// Any other errno (positive value), as an OSD, a hook or a peer returned it.
    #[error("errno {0}")]
    Os(i32),
}

impl LockError {
    /// The positive errno.
    pub const fn errno(&self) -> i32 {
        match self {
            LockError::Busy => errno::EBUSY,
            LockError::OwnerAlive => errno::EAGAIN,
            LockError::ReadOnly => errno::EROFS,
            LockError::ShutDown => errno::ESHUTDOWN,
            LockError::Blocklisted => errno::EBLOCKLISTED,
            LockError::NotFound => errno::ENOENT,
            LockError::TimedOut => errno::ETIMEDOUT,
            LockError::Restart => errno::ERESTART,
            LockError::InvalidArgument => errno::EINVAL,
            LockError::NotSupported => errno::EOPNOTSUPP,
            LockError::Canceled => errno::ECANCELED,
            LockError::Os(e) => *e,
        }
    }

    /// librbd's negative form, `-errno`.
    pub const fn r(&self) -> i32 {
        -self.errno()
    }

    /// The error for a negative librbd result `r` (a positive value is read as its negation).
    ///
    /// librbd gives -ESHUTDOWN and -EBLOCKLISTED the same number (108), so the number alone
    /// cannot tell them apart; `blocklisted` (whether the handle's watcher is blocklisted right
    /// now) decides, which matches what the result meant in the cases that produce it.
    pub fn from_r(r: i32, blocklisted: bool) -> LockError {
        match r.saturating_abs() {
            errno::EBUSY => LockError::Busy,
            errno::EAGAIN => LockError::OwnerAlive,
            errno::EROFS => LockError::ReadOnly,
            errno::ESHUTDOWN if blocklisted => LockError::Blocklisted,
            errno::ESHUTDOWN => LockError::ShutDown,
            errno::ENOENT => LockError::NotFound,
            errno::ETIMEDOUT => LockError::TimedOut,
            errno::ERESTART => LockError::Restart,
            errno::EINVAL => LockError::InvalidArgument,
            errno::EOPNOTSUPP => LockError::NotSupported,
            errno::ECANCELED => LockError::Canceled,
            other => LockError::Os(other),
        }
    }

    /// The error for a store failure. The store knows a blocklisted client when it sees one, so
    /// -EBLOCKLISTED from it is never mistaken for -ESHUTDOWN.
    pub fn from_store(e: &rados_store::Error) -> LockError {
        LockError::from_r(-e.errno(), matches!(e, rados_store::Error::Blocklisted))
    }

    /// `Ok(())` for `r >= 0`, otherwise [`LockError::from_r`].
    pub fn check(r: i32, blocklisted: bool) -> Result<(), LockError> {
        if r >= 0 { Ok(()) } else { Err(LockError::from_r(r, blocklisted)) }
    }
}

/// librbd's `r` for a store error: the negated errno.
pub(crate) fn store_r(e: &rados_store::Error) -> i32 {
    -e.errno()
}

/// librbd's `r` for a store call's result.
pub(crate) fn store_result<T>(res: &rados_store::Result<T>) -> i32 {
    match res {
        Ok(_) => 0,
        Err(e) => store_r(e),
    }
}

/// The crate's result type.
pub type LockResult<T = ()> = Result<T, LockError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_errno() {
        let all = [
            LockError::Busy,
            LockError::OwnerAlive,
            LockError::ReadOnly,
            LockError::ShutDown,
            LockError::NotFound,
            LockError::TimedOut,
            LockError::Restart,
            LockError::InvalidArgument,
            LockError::NotSupported,
            LockError::Canceled,
            LockError::Os(5),
        ];
        for e in all {
            assert_eq!(LockError::from_r(e.r(), false), e, "{e}");
            assert_eq!(LockError::from_r(e.errno(), false), e, "positive input for {e}");
        }
        assert_eq!(LockError::from_r(-108, true), LockError::Blocklisted);
        assert_eq!(LockError::Blocklisted.r(), -108);
        assert_eq!(LockError::check(0, false), Ok(()));
        assert_eq!(LockError::check(3, false), Ok(()));
        assert_eq!(LockError::check(-30, false), Err(LockError::ReadOnly));
        assert_eq!(LockError::from_r(i32::MIN, false), LockError::Os(i32::MAX));
    }
}
