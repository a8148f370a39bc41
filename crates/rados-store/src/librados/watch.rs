//! watch2 callbacks: librados calls them on its own threads; they forward into the caller's
//! [`WatchCtx`].
//!
//! librados keeps the `void *arg` given to `rados_watch2` and passes it to every callback
//! until the watch is removed *and* `rados_watch_flush` has drained the callback queue. The
//! argument is therefore a `Box<WatchTarget>` turned into a raw pointer that [`WatchReg`] owns
//! and frees only after both calls returned (see `LibradosClient::unwatch` and the client's
//! teardown). A panic in a caller's callback is caught here: unwinding into C would abort.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;

use super::ffi;
use super::raw::{Cluster, RawIoCtx, check, cstring};
use crate::backend::PoolId;
use crate::error::{Error, Result};
use crate::watch::{NotifyEvent, WatchCtx};

/// What a watch's callbacks reach through librados' `arg` pointer.
pub(super) struct WatchTarget {
    ctx: Arc<dyn WatchCtx>,
}

/// One live watch of this client: where it is (to unwatch through a context on the same
/// pool and namespace) and the callback target librados holds a pointer to.
///
/// Invariant: while a `WatchReg` with a non-zero `cookie` exists, librados has a live watch
/// with that cookie (its `rados_watch2` succeeded and `rados_unwatch2` has not been called),
/// because only [`unregister`] calls `rados_unwatch2`, and it consumes the registration.
pub(super) struct WatchReg {
    pub(super) pool: PoolId,
    pub(super) namespace: String,
    cookie: u64,
    target: *mut WatchTarget,
}

// SAFETY: `target` points to a WatchTarget (Send + Sync: it holds an Arc<dyn WatchCtx>, and
// WatchCtx is Send + Sync) that only this registration frees.
unsafe impl Send for WatchReg {}
// SAFETY: as above; the registration never dereferences the pointer itself.
unsafe impl Sync for WatchReg {}

impl WatchReg {
    /// A registration whose target librados does not know about yet.
    pub(super) fn new(pool: PoolId, namespace: &str, ctx: Arc<dyn WatchCtx>) -> Self {
        let target = Box::into_raw(Box::new(WatchTarget { ctx }));
        WatchReg { pool, namespace: namespace.to_owned(), cookie: 0, target }
    }

    /// The watch handle (0 until registered).
    pub(super) fn cookie(&self) -> u64 {
        self.cookie
    }

    /// Frees the callback target.
    ///
    /// # Safety
    /// librados must no longer be able to call back with this target: the watch was never
    /// registered, or `rados_unwatch2` and then `rados_watch_flush` have returned.
    unsafe fn release(self) {
        // SAFETY: the caller's contract; the pointer came from Box::into_raw in `new` and is
        // freed exactly once because `self` is consumed.
        drop(unsafe { Box::from_raw(self.target) });
    }
}

/// Registers a watch on `oid` (blocking: one OSD round trip). On success the returned
/// registration carries the handle; on failure the callback target is already freed.
pub(super) fn register(cluster: &Cluster, io: &RawIoCtx, oid: &str, mut reg: WatchReg) -> Result<WatchReg> {
    let o = match cstring("object name", oid) {
        Ok(o) => o,
        Err(e) => {
            // SAFETY: librados never saw this target.
            unsafe { reg.release() };
            return Err(e);
        }
    };
    let mut cookie = 0u64;
    // SAFETY: context and string are live; `reg.target` stays valid until unregister (or the
    // failure path below) has drained every callback.
    let rc = unsafe {
        ffi::rados_watch2(
            io.as_ptr(),
            o.as_ptr(),
            &mut cookie,
            Some(on_notify),
            Some(on_error),
            reg.target.cast(),
        )
    };
    if rc < 0 {
        // librados cancels a failed watch itself; drain anything it may have queued before
        // freeing the target.
        let _ = cluster.watch_flush();
        // SAFETY: the watch is gone and its callbacks are drained.
        unsafe { reg.release() };
        return Err(Error::from_errno(rc, format!("watch on {oid:?}")));
    }
    reg.cookie = cookie;
    Ok(reg)
}

/// Removes a registered watch (blocking), drains its callbacks and frees its target. Returns
/// librados' verdict on the unwatch; the registration is gone either way (librados cancels
/// the watch locally even when the OSD cannot be told).
pub(super) fn unregister(cluster: &Cluster, io: &RawIoCtx, reg: WatchReg) -> Result<()> {
    let rc = if reg.cookie == 0 {
        0
    } else {
        // SAFETY: by WatchReg's invariant the cookie names a live watch of this client, on a
        // context with the watch's pool and namespace.
        unsafe { ffi::rados_unwatch2(io.as_ptr(), reg.cookie) }
    };
    let flushed = cluster.watch_flush();
    let cookie = reg.cookie;
    // SAFETY: unwatch2 and watch_flush returned, so no callback can reach the target.
    unsafe { reg.release() };
    check(rc, || format!("unwatch {cookie}"))?;
    flushed
}

/// Whether a registered watch is still healthy: Ok, or the error that broke it.
pub(super) fn check_watch(io: &RawIoCtx, reg: &WatchReg) -> Result<()> {
    if reg.cookie == 0 {
        return Err(Error::from_errno(crate::error::errno::ENOTCONN, "watch was never registered"));
    }
    // SAFETY: by WatchReg's invariant (and the borrow, which keeps `unregister` from running)
    // the cookie names a live watch of this client.
    let rc = unsafe { ffi::rados_watch_check(io.as_ptr(), reg.cookie) };
    check(rc, || format!("watch {}", reg.cookie)).map(drop)
}

/// `rados_watchcb2_t`: a notify arrived.
pub(super) unsafe extern "C" fn on_notify(
    arg: *mut c_void,
    notify_id: u64,
    handle: u64,
    notifier_id: u64,
    data: *mut c_void,
    data_len: usize,
) {
    if arg.is_null() {
        return;
    }
    // SAFETY: `arg` is a WatchTarget kept alive until unwatch2 + watch_flush (module doc).
    let target = unsafe { &*arg.cast::<WatchTarget>() };
    let payload = if data.is_null() || data_len == 0 {
        Bytes::new()
    } else {
        // SAFETY: librados passes `data_len` readable bytes, valid for this call; copied now.
        Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), data_len) })
    };
    let event = NotifyEvent { notify_id, handle, notifier_gid: notifier_id, payload };
    if catch_unwind(AssertUnwindSafe(|| target.ctx.handle_notify(event))).is_err() {
        tracing::error!(handle, notify_id, "watch callback panicked; notify dropped");
    }
}

/// `rados_watcherrcb_t`: the watch broke (disconnect, timeout, blocklist).
pub(super) unsafe extern "C" fn on_error(arg: *mut c_void, cookie: u64, err: c_int) {
    if arg.is_null() {
        return;
    }
    // SAFETY: as in `on_notify`.
    let target = unsafe { &*arg.cast::<WatchTarget>() };
    let error = Error::from_errno(err, format!("watch {cookie} broke"));
    tracing::debug!(cookie, err, "librados watch error");
    if catch_unwind(AssertUnwindSafe(|| target.ctx.handle_error(cookie, error))).is_err() {
        tracing::error!(cookie, "watch error callback panicked");
    }
}
