//! Owners of librados handles: each raw pointer lives in exactly one value whose `Drop`
//! releases it, and every call into librados goes through a method that checks its return
//! code and maps a negative errno with [`Error::from_errno`].
//!
//! Thread-safety follows librados' own rules: a `rados_t` may be used from any number of
//! threads at once; an I/O context may carry concurrent operations, but changing its settings
//! (namespace, read snapshot, write snap context) must not race with other use, which is why
//! [`RawIoCtx`]'s setters take `&mut self` and the pool in `mod.rs` hands each context to one
//! user at a time.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::Path;
use std::ptr;

use super::ffi;
use crate::error::{Error, Result, errno};
use crate::snap::{SnapContext, SnapId};

/// Maps a librados return code: negative is an errno, anything else passes through.
pub(super) fn check(rc: c_int, what: impl FnOnce() -> String) -> Result<c_int> {
    if rc < 0 { Err(Error::from_errno(rc, what())) } else { Ok(rc) }
}

/// A string as librados wants it; names with an interior NUL cannot be passed through C and
/// are refused with -EINVAL, which is also what [`crate::names`] says about them.
pub(super) fn cstring(kind: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidArgument(format!("{kind} {s:?} contains a NUL byte")))
}

/// A buffer librados allocated for us, released with `rados_buffer_free`.
pub(super) struct LibBuf {
    ptr: *mut c_char,
    len: usize,
}

impl LibBuf {
    /// Takes ownership of `ptr` (may be null) holding `len` bytes.
    ///
    /// # Safety
    /// `ptr` must be null or a buffer librados allocated for the caller, at least `len` bytes
    /// long, that nothing else frees.
    pub(super) unsafe fn from_raw(ptr: *mut c_char, len: usize) -> Self {
        LibBuf { ptr, len }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: from_raw's contract: ptr holds len initialized bytes that we own.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for LibBuf {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the buffer came from librados and is freed exactly once, here.
            unsafe { ffi::rados_buffer_free(self.ptr) };
        }
    }
}

/// A `rados_t`: created, configured, connected, and shut down on drop.
pub(super) struct Cluster {
    ptr: ffi::RadosPtr,
}

// SAFETY: librados documents a `rados_t` as usable from many threads at once; the pointer is
// only freed by Drop, which has exclusive access.
unsafe impl Send for Cluster {}
// SAFETY: as above; every method takes `&self` and librados serializes internally.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// `rados_create2` for an entity name such as `client.admin`.
    pub(super) fn create(name: &str) -> Result<Cluster> {
        let cluster_name = cstring("cluster name", "ceph")?;
        let name = cstring("client name", name)?;
        let mut ptr: ffi::RadosPtr = ptr::null_mut();
        // SAFETY: both strings are valid for the call; `ptr` is a valid out-pointer.
        let rc = unsafe { ffi::rados_create2(&mut ptr, cluster_name.as_ptr(), name.as_ptr(), 0) };
        check(rc, || format!("rados_create2({name:?})"))?;
        if ptr.is_null() {
            return Err(Error::from_errno(errno::EIO, "rados_create2 returned no handle"));
        }
        Ok(Cluster { ptr })
    }

    /// Reads a ceph.conf; None searches the default places (and `$CEPH_CONF`).
    pub(super) fn conf_read_file(&self, path: Option<&Path>) -> Result<()> {
        let path_c = match path {
            Some(p) => Some(cstring("conf path", &p.to_string_lossy())?),
            None => None,
        };
        let p = path_c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        // SAFETY: the handle is live; `p` is null or a valid C string for the call.
        let rc = unsafe { ffi::rados_conf_read_file(self.ptr, p) };
        check(rc, || format!("reading ceph config {path:?}")).map(drop)
    }

    pub(super) fn conf_set(&self, option: &str, value: &str) -> Result<()> {
        let o = cstring("config option", option)?;
        let v = cstring("config value", value)?;
        // SAFETY: the handle is live; both strings are valid for the call.
        let rc = unsafe { ffi::rados_conf_set(self.ptr, o.as_ptr(), v.as_ptr()) };
        check(rc, || format!("setting config {option} = {value}")).map(drop)
    }

    /// Blocks until the monitors accept us (bounded by `client_mount_timeout`).
    pub(super) fn connect(&self) -> Result<()> {
        // SAFETY: the handle is live and configured.
        let rc = unsafe { ffi::rados_connect(self.ptr) };
        check(rc, || "rados_connect".to_owned()).map(drop)
    }

    pub(super) fn instance_id(&self) -> u64 {
        // SAFETY: the handle is live and connected.
        unsafe { ffi::rados_get_instance_id(self.ptr) }
    }

    /// This client's address vector as librados prints it.
    pub(super) fn addrs(&self) -> Result<String> {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: the handle is live; `out` is a valid out-pointer.
        let rc = unsafe { ffi::rados_getaddrs(self.ptr, &mut out) };
        check(rc, || "rados_getaddrs".to_owned())?;
        if out.is_null() {
            return Err(Error::from_errno(errno::EIO, "rados_getaddrs returned nothing"));
        }
        // SAFETY: librados returned a NUL-terminated string it allocated for us.
        let s = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        // SAFETY: `out` came from librados and is freed once.
        drop(unsafe { LibBuf::from_raw(out, 0) });
        Ok(s)
    }

    pub(super) fn wait_for_latest_osdmap(&self) -> Result<()> {
        // SAFETY: the handle is live.
        let rc = unsafe { ffi::rados_wait_for_latest_osdmap(self.ptr) };
        check(rc, || "rados_wait_for_latest_osdmap".to_owned()).map(drop)
    }

    pub(super) fn pool_lookup(&self, name: &str) -> Result<i64> {
        let n = cstring("pool name", name)?;
        // SAFETY: the handle is live; `n` is valid for the call.
        let id = unsafe { ffi::rados_pool_lookup(self.ptr, n.as_ptr()) };
        if id < 0 {
            let code = i32::try_from(id).unwrap_or(-errno::EIO);
            return Err(Error::from_errno(code, format!("pool {name:?}")));
        }
        Ok(id)
    }

    pub(super) fn pool_create(&self, name: &str) -> Result<()> {
        let n = cstring("pool name", name)?;
        // SAFETY: the handle is live; `n` is valid for the call.
        let rc = unsafe { ffi::rados_pool_create(self.ptr, n.as_ptr()) };
        check(rc, || format!("creating pool {name:?}")).map(drop)
    }

    /// Sends one JSON command to the monitors; returns (output buffer, status string).
    pub(super) fn mon_command(&self, json: &str) -> Result<(Vec<u8>, String)> {
        let cmd = cstring("monitor command", json)?;
        let mut cmds = [cmd.as_ptr()];
        let mut outbuf: *mut c_char = ptr::null_mut();
        let mut outbuf_len = 0usize;
        let mut outs: *mut c_char = ptr::null_mut();
        let mut outs_len = 0usize;
        // SAFETY: `cmds` holds one valid C string; the out-pointers are valid; no input buffer.
        let rc = unsafe {
            ffi::rados_mon_command(
                self.ptr,
                cmds.as_mut_ptr(),
                1,
                ptr::null(),
                0,
                &mut outbuf,
                &mut outbuf_len,
                &mut outs,
                &mut outs_len,
            )
        };
        // SAFETY: both buffers (possibly null) were allocated by librados for us.
        let (outbuf, outs) =
            unsafe { (LibBuf::from_raw(outbuf, outbuf_len), LibBuf::from_raw(outs, outs_len)) };
        let status = String::from_utf8_lossy(outs.as_slice()).into_owned();
        check(rc, || format!("monitor command {json}: {status}"))?;
        Ok((outbuf.as_slice().to_vec(), status))
    }

    /// Waits until no watch callback is queued or running.
    pub(super) fn watch_flush(&self) -> Result<()> {
        // SAFETY: the handle is live.
        let rc = unsafe { ffi::rados_watch_flush(self.ptr) };
        check(rc, || "rados_watch_flush".to_owned()).map(drop)
    }

    /// A new I/O context on a pool, in the default namespace.
    pub(super) fn ioctx(&self, pool: i64) -> Result<RawIoCtx> {
        let mut io: ffi::IoCtxPtr = ptr::null_mut();
        // SAFETY: the handle is live; `io` is a valid out-pointer.
        let rc = unsafe { ffi::rados_ioctx_create2(self.ptr, pool, &mut io) };
        check(rc, || format!("opening pool {pool}"))?;
        if io.is_null() {
            return Err(Error::from_errno(errno::EIO, "rados_ioctx_create2 returned no context"));
        }
        Ok(RawIoCtx { ptr: io })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle is live and owned by us; every I/O context was destroyed first
        // (the owner in mod.rs tears them down before dropping the cluster).
        unsafe { ffi::rados_shutdown(self.ptr) };
    }
}

/// A `rados_ioctx_t`, destroyed on drop. Must not outlive its [`Cluster`]; the owner in
/// `mod.rs` guarantees that by destroying every context before the cluster.
pub(super) struct RawIoCtx {
    ptr: ffi::IoCtxPtr,
}

// SAFETY: an I/O context may be used from any thread; its settings are changed only through
// `&mut self`, so moving it between threads cannot race.
unsafe impl Send for RawIoCtx {}

impl RawIoCtx {
    pub(super) fn as_ptr(&self) -> ffi::IoCtxPtr {
        self.ptr
    }

    pub(super) fn set_namespace(&mut self, ns: &str) -> Result<()> {
        let n = cstring("namespace", ns)?;
        // SAFETY: the context is live and exclusively ours; librados copies the string.
        unsafe { ffi::rados_ioctx_set_namespace(self.ptr, n.as_ptr()) };
        Ok(())
    }

    /// Reads at a snapshot (None = the head); `snap` may also be [`ffi::SNAP_DIR`].
    pub(super) fn set_read(&mut self, snap: Option<SnapId>) {
        // SAFETY: the context is live and exclusively ours.
        unsafe { ffi::rados_ioctx_snap_set_read(self.ptr, snap.unwrap_or(ffi::SNAP_HEAD)) };
    }

    pub(super) fn set_write_ctx(&mut self, snapc: &SnapContext) -> Result<()> {
        let mut snaps = snapc.snaps.clone();
        let n = c_int::try_from(snaps.len())
            .map_err(|_| Error::InvalidArgument(format!("snap context with {} snaps", snaps.len())))?;
        // SAFETY: the context is live and exclusively ours; `snaps` holds `n` ids and
        // librados copies them.
        let rc = unsafe {
            ffi::rados_ioctx_selfmanaged_snap_set_write_ctx(self.ptr, snapc.seq, snaps.as_mut_ptr(), n)
        };
        check(rc, || format!("setting snap context {snapc:?}")).map(drop)
    }
}

impl RawIoCtx {
    /// Allocates a self-managed snap id (a monitor round trip: blocking).
    pub(super) fn selfmanaged_snap_create(&self) -> Result<SnapId> {
        let mut id = 0u64;
        // SAFETY: the context is live; `id` is a valid out-pointer.
        let rc = unsafe { ffi::rados_ioctx_selfmanaged_snap_create(self.ptr, &mut id) };
        check(rc, || "selfmanaged_snap_create".to_owned())?;
        Ok(id)
    }

    /// Releases a self-managed snap id (blocking).
    pub(super) fn selfmanaged_snap_remove(&self, snap: SnapId) -> Result<()> {
        // SAFETY: the context is live.
        let rc = unsafe { ffi::rados_ioctx_selfmanaged_snap_remove(self.ptr, snap) };
        check(rc, || format!("selfmanaged_snap_remove({snap})")).map(drop)
    }

    /// Rolls an object back to a snapshot under the context's write snap context (blocking).
    pub(super) fn selfmanaged_snap_rollback(&self, oid: &str, snap: SnapId) -> Result<()> {
        let o = cstring("object name", oid)?;
        // SAFETY: the context and string are live for the call.
        let rc = unsafe { ffi::rados_ioctx_selfmanaged_snap_rollback(self.ptr, o.as_ptr(), snap) };
        check(rc, || format!("rolling {oid:?} back to snap {snap}")).map(drop)
    }

    /// Every (namespace, name) the context's namespace setting covers (blocking).
    pub(super) fn list_objects(&self) -> Result<Vec<(String, String)>> {
        let mut ctx: ffi::ListCtxPtr = ptr::null_mut();
        // SAFETY: the context is live; `ctx` is a valid out-pointer.
        let rc = unsafe { ffi::rados_nobjects_list_open(self.ptr, &mut ctx) };
        check(rc, || "opening an object listing".to_owned())?;
        let mut out = Vec::new();
        let result = loop {
            let mut entry: *const c_char = ptr::null();
            let mut key: *const c_char = ptr::null();
            let mut nspace: *const c_char = ptr::null();
            let (mut entry_len, mut key_len, mut nspace_len) = (0usize, 0usize, 0usize);
            // SAFETY: `ctx` is an open listing; all out-pointers are valid.
            let rc = unsafe {
                ffi::rados_nobjects_list_next2(
                    ctx,
                    &mut entry,
                    &mut key,
                    &mut nspace,
                    &mut entry_len,
                    &mut key_len,
                    &mut nspace_len,
                )
            };
            if rc == -errno::ENOENT {
                break Ok(());
            }
            if rc < 0 {
                break Err(Error::from_errno(rc, "listing objects"));
            }
            // SAFETY: librados returns `*_len` bytes at each non-null pointer, valid until the
            // next call on the listing; both are copied now.
            let (name, ns) = unsafe { (lossy(entry, entry_len), lossy(nspace, nspace_len)) };
            out.push((ns, name));
        };
        // SAFETY: opened above, closed once.
        unsafe { ffi::rados_nobjects_list_close(ctx) };
        result.map(|()| out)
    }

    /// Answers a notify. librados sends the ack without waiting for the OSD, so this does
    /// not block; the cookie is only carried in the message.
    pub(super) fn notify_ack(&self, oid: &str, notify_id: u64, cookie: u64, reply: &[u8]) -> Result<()> {
        let o = cstring("object name", oid)?;
        let len = c_int::try_from(reply.len())
            .map_err(|_| Error::InvalidArgument(format!("notify reply of {} bytes", reply.len())))?;
        // SAFETY: context, string and reply buffer are live for the call; librados copies them.
        let rc = unsafe {
            ffi::rados_notify_ack(self.ptr, o.as_ptr(), notify_id, cookie, reply.as_ptr().cast(), len)
        };
        check(rc, || format!("notify_ack on {oid:?}")).map(drop)
    }

    /// The object's watchers through the C++ bridge (blocking): (address, gid, cookie).
    pub(super) fn list_watchers(&self, oid: &str) -> Result<Vec<(String, i64, u64)>> {
        let o = cstring("object name", oid)?;
        let mut arr: *mut ffi::ObjWatch = ptr::null_mut();
        let mut n = 0usize;
        // SAFETY: context and string are live; out-pointers are valid.
        let rc = unsafe { ffi::cephlock_rados_list_watchers(self.ptr, o.as_ptr(), &mut arr, &mut n) };
        check(rc, || format!("list_watchers on {oid:?}"))?;
        let mut out = Vec::with_capacity(n);
        if !arr.is_null() {
            for i in 0..n {
                // SAFETY: on success the bridge returns `n` initialized entries at `arr`, each
                // with a NUL-terminated address (it forces the last byte to 0).
                let w = unsafe { *arr.add(i) };
                // SAFETY: as above; `addr` is a NUL-terminated array inside `w`.
                let addr = unsafe { CStr::from_ptr(w.addr.as_ptr()) }.to_string_lossy().into_owned();
                out.push((addr, w.watcher_id, w.cookie));
            }
            // SAFETY: allocated by the bridge's malloc; freed once with its free.
            unsafe { ffi::cephlock_rados_free(arr.cast()) };
        }
        Ok(out)
    }

    /// The object's snap set through the C++ bridge (blocking), in the bridge's encoding.
    /// Leaves the context reading at `LIBRADOS_SNAP_DIR`; the next user resets it.
    pub(super) fn list_snaps(&mut self, oid: &str) -> Result<Vec<u8>> {
        let o = cstring("object name", oid)?;
        // SAFETY: the context is live and exclusively ours (`&mut self`).
        unsafe { ffi::rados_ioctx_snap_set_read(self.ptr, ffi::SNAP_DIR) };
        let mut buf: *mut std::ffi::c_uchar = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: context and string are live; out-pointers are valid.
        let rc = unsafe { ffi::cephlock_rados_list_snaps(self.ptr, o.as_ptr(), &mut buf, &mut len) };
        check(rc, || format!("list_snaps on {oid:?}"))?;
        let out = if buf.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: on success the bridge returns `len` bytes at `buf`.
            unsafe { std::slice::from_raw_parts(buf, len) }.to_vec()
        };
        if !buf.is_null() {
            // SAFETY: allocated by the bridge's malloc; freed once with its free.
            unsafe { ffi::cephlock_rados_free(buf.cast()) };
        }
        Ok(out)
    }
}

/// `len` bytes at `p` as a string (null gives "").
///
/// # Safety
/// `p` must be null or point to `len` readable bytes.
unsafe fn lossy(p: *const c_char, len: usize) -> String {
    if p.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: the caller's contract.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }).into_owned()
}

impl Drop for RawIoCtx {
    fn drop(&mut self) {
        // SAFETY: the context is live and owned by us; its cluster is still connected.
        unsafe { ffi::rados_ioctx_destroy(self.ptr) };
    }
}
