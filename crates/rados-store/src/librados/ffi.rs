//! The slice of the librados 16.2 C API (and of our C++ bridge) that this backend calls.
//!
//! Hand-written from `/usr/include/rados/librados.h` rather than generated, so that the crate
//! needs no bindgen and every declaration here is one we use and have checked against the
//! header: pointer widths, `size_t` as `usize`, `time_t` as `i64` (64-bit Linux, the only
//! platform Debian's librados-dev targets for us). Nothing here is public outside the module;
//! the safe wrappers in the sibling files are the only callers.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uchar, c_void};

/// `rados_t`: one cluster connection.
pub(super) type RadosPtr = *mut c_void;
/// `rados_ioctx_t`: one I/O context.
pub(super) type IoCtxPtr = *mut c_void;
/// `rados_list_ctx_t`: an object listing in progress.
pub(super) type ListCtxPtr = *mut c_void;
/// `rados_write_op_t`.
pub(super) type WriteOpPtr = *mut c_void;
/// `rados_read_op_t`.
pub(super) type ReadOpPtr = *mut c_void;
/// `rados_completion_t`.
pub(super) type CompletionPtr = *mut c_void;
/// `rados_xattrs_iter_t`.
pub(super) type XattrsIterPtr = *mut c_void;
/// `rados_omap_iter_t`.
pub(super) type OmapIterPtr = *mut c_void;
/// `time_t` on 64-bit Linux.
pub(super) type TimeT = i64;

/// `rados_callback_t`.
pub(super) type CompletionCallback = Option<unsafe extern "C" fn(cb: CompletionPtr, arg: *mut c_void)>;
/// `rados_watchcb2_t`.
pub(super) type WatchCallback = Option<
    unsafe extern "C" fn(
        arg: *mut c_void,
        notify_id: u64,
        handle: u64,
        notifier_id: u64,
        data: *mut c_void,
        data_len: usize,
    ),
>;
/// `rados_watcherrcb_t`.
pub(super) type WatchErrorCallback = Option<unsafe extern "C" fn(pre: *mut c_void, cookie: u64, err: c_int)>;

/// `LIBRADOS_SNAP_HEAD`: read the live object.
pub(super) const SNAP_HEAD: u64 = u64::MAX - 1;
/// `LIBRADOS_SNAP_DIR`: the pseudo-snapshot `list_snaps` must read at.
pub(super) const SNAP_DIR: u64 = u64::MAX;
/// `LIBRADOS_CREATE_EXCLUSIVE`.
pub(super) const CREATE_EXCLUSIVE: c_int = 1;
/// `LIBRADOS_CREATE_IDEMPOTENT`.
pub(super) const CREATE_IDEMPOTENT: c_int = 0;
/// `LIBRADOS_ALL_NSPACES`: the namespace value that makes a listing cover every namespace.
pub(super) const ALL_NSPACES: &str = "\u{1}";

/// `struct obj_watch_t` from `rados/rados_types.h`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct ObjWatch {
    /// The watcher's address, NUL-terminated.
    pub addr: [c_char; 256],
    /// The watcher's gid.
    pub watcher_id: i64,
    /// The watch cookie.
    pub cookie: u64,
    /// The watch's timeout.
    pub timeout_seconds: u32,
}

unsafe extern "C" {
    // ----- connection -----
    pub(super) fn rados_create2(
        pcluster: *mut RadosPtr,
        clustername: *const c_char,
        name: *const c_char,
        flags: u64,
    ) -> c_int;
    pub(super) fn rados_conf_read_file(cluster: RadosPtr, path: *const c_char) -> c_int;
    pub(super) fn rados_conf_set(cluster: RadosPtr, option: *const c_char, value: *const c_char) -> c_int;
    pub(super) fn rados_connect(cluster: RadosPtr) -> c_int;
    pub(super) fn rados_shutdown(cluster: RadosPtr);
    pub(super) fn rados_get_instance_id(cluster: RadosPtr) -> u64;
    pub(super) fn rados_getaddrs(cluster: RadosPtr, addrs: *mut *mut c_char) -> c_int;
    pub(super) fn rados_wait_for_latest_osdmap(cluster: RadosPtr) -> c_int;
    pub(super) fn rados_buffer_free(buf: *mut c_char);
    pub(super) fn rados_mon_command(
        cluster: RadosPtr,
        cmd: *mut *const c_char,
        cmdlen: usize,
        inbuf: *const c_char,
        inbuflen: usize,
        outbuf: *mut *mut c_char,
        outbuflen: *mut usize,
        outs: *mut *mut c_char,
        outslen: *mut usize,
    ) -> c_int;

    // ----- pools and I/O contexts -----
    pub(super) fn rados_pool_lookup(cluster: RadosPtr, pool_name: *const c_char) -> i64;
    pub(super) fn rados_pool_create(cluster: RadosPtr, pool_name: *const c_char) -> c_int;
    pub(super) fn rados_ioctx_create2(cluster: RadosPtr, pool_id: i64, ioctx: *mut IoCtxPtr) -> c_int;
    pub(super) fn rados_ioctx_destroy(io: IoCtxPtr);
    pub(super) fn rados_ioctx_set_namespace(io: IoCtxPtr, nspace: *const c_char);
    pub(super) fn rados_ioctx_snap_set_read(io: IoCtxPtr, snap: u64);
    pub(super) fn rados_ioctx_selfmanaged_snap_set_write_ctx(
        io: IoCtxPtr,
        seq: u64,
        snaps: *mut u64,
        num_snaps: c_int,
    ) -> c_int;
    pub(super) fn rados_ioctx_selfmanaged_snap_create(io: IoCtxPtr, snapid: *mut u64) -> c_int;
    pub(super) fn rados_ioctx_selfmanaged_snap_remove(io: IoCtxPtr, snapid: u64) -> c_int;
    pub(super) fn rados_ioctx_selfmanaged_snap_rollback(
        io: IoCtxPtr,
        oid: *const c_char,
        snapid: u64,
    ) -> c_int;

    // ----- listing -----
    pub(super) fn rados_nobjects_list_open(io: IoCtxPtr, ctx: *mut ListCtxPtr) -> c_int;
    pub(super) fn rados_nobjects_list_next2(
        ctx: ListCtxPtr,
        entry: *mut *const c_char,
        key: *mut *const c_char,
        nspace: *mut *const c_char,
        entry_size: *mut usize,
        key_size: *mut usize,
        nspace_size: *mut usize,
    ) -> c_int;
    pub(super) fn rados_nobjects_list_close(ctx: ListCtxPtr);

    // ----- completions -----
    pub(super) fn rados_aio_create_completion2(
        cb_arg: *mut c_void,
        cb_complete: CompletionCallback,
        pc: *mut CompletionPtr,
    ) -> c_int;
    pub(super) fn rados_aio_wait_for_complete(c: CompletionPtr) -> c_int;
    pub(super) fn rados_aio_get_return_value(c: CompletionPtr) -> c_int;
    pub(super) fn rados_aio_release(c: CompletionPtr);

    // ----- write ops -----
    pub(super) fn rados_create_write_op() -> WriteOpPtr;
    pub(super) fn rados_release_write_op(op: WriteOpPtr);
    pub(super) fn rados_write_op_assert_exists(op: WriteOpPtr);
    pub(super) fn rados_write_op_create(op: WriteOpPtr, exclusive: c_int, category: *const c_char);
    pub(super) fn rados_write_op_write(op: WriteOpPtr, buffer: *const c_char, len: usize, offset: u64);
    pub(super) fn rados_write_op_write_full(op: WriteOpPtr, buffer: *const c_char, len: usize);
    pub(super) fn rados_write_op_append(op: WriteOpPtr, buffer: *const c_char, len: usize);
    pub(super) fn rados_write_op_remove(op: WriteOpPtr);
    pub(super) fn rados_write_op_truncate(op: WriteOpPtr, offset: u64);
    pub(super) fn rados_write_op_zero(op: WriteOpPtr, offset: u64, len: u64);
    pub(super) fn rados_write_op_setxattr(
        op: WriteOpPtr,
        name: *const c_char,
        value: *const c_char,
        value_len: usize,
    );
    pub(super) fn rados_write_op_rmxattr(op: WriteOpPtr, name: *const c_char);
    pub(super) fn rados_write_op_omap_set2(
        op: WriteOpPtr,
        keys: *const *const c_char,
        vals: *const *const c_char,
        key_lens: *const usize,
        val_lens: *const usize,
        num: usize,
    );
    pub(super) fn rados_write_op_omap_rm_keys2(
        op: WriteOpPtr,
        keys: *const *const c_char,
        key_lens: *const usize,
        keys_len: usize,
    );
    pub(super) fn rados_write_op_omap_clear(op: WriteOpPtr);
    pub(super) fn rados_write_op_exec(
        op: WriteOpPtr,
        cls: *const c_char,
        method: *const c_char,
        in_buf: *const c_char,
        in_len: usize,
        prval: *mut c_int,
    );
    pub(super) fn rados_aio_write_op_operate(
        op: WriteOpPtr,
        io: IoCtxPtr,
        completion: CompletionPtr,
        oid: *const c_char,
        mtime: *mut TimeT,
        flags: c_int,
    ) -> c_int;

    // ----- read ops -----
    pub(super) fn rados_create_read_op() -> ReadOpPtr;
    pub(super) fn rados_release_read_op(op: ReadOpPtr);
    pub(super) fn rados_read_op_assert_exists(op: ReadOpPtr);
    pub(super) fn rados_read_op_stat(op: ReadOpPtr, psize: *mut u64, pmtime: *mut TimeT, prval: *mut c_int);
    pub(super) fn rados_read_op_read(
        op: ReadOpPtr,
        offset: u64,
        len: usize,
        buffer: *mut c_char,
        bytes_read: *mut usize,
        prval: *mut c_int,
    );
    pub(super) fn rados_read_op_getxattrs(op: ReadOpPtr, iter: *mut XattrsIterPtr, prval: *mut c_int);
    pub(super) fn rados_read_op_omap_get_vals2(
        op: ReadOpPtr,
        start_after: *const c_char,
        filter_prefix: *const c_char,
        max_return: u64,
        iter: *mut OmapIterPtr,
        pmore: *mut c_uchar,
        prval: *mut c_int,
    );
    pub(super) fn rados_read_op_omap_get_keys2(
        op: ReadOpPtr,
        start_after: *const c_char,
        max_return: u64,
        iter: *mut OmapIterPtr,
        pmore: *mut c_uchar,
        prval: *mut c_int,
    );
    pub(super) fn rados_read_op_omap_get_vals_by_keys2(
        op: ReadOpPtr,
        keys: *const *const c_char,
        num_keys: usize,
        key_lens: *const usize,
        iter: *mut OmapIterPtr,
        prval: *mut c_int,
    );
    pub(super) fn rados_read_op_exec(
        op: ReadOpPtr,
        cls: *const c_char,
        method: *const c_char,
        in_buf: *const c_char,
        in_len: usize,
        out_buf: *mut *mut c_char,
        out_len: *mut usize,
        prval: *mut c_int,
    );
    pub(super) fn rados_aio_read_op_operate(
        op: ReadOpPtr,
        io: IoCtxPtr,
        completion: CompletionPtr,
        oid: *const c_char,
        flags: c_int,
    ) -> c_int;

    // ----- result iterators -----
    pub(super) fn rados_getxattrs_next(
        iter: XattrsIterPtr,
        name: *mut *const c_char,
        val: *mut *const c_char,
        len: *mut usize,
    ) -> c_int;
    pub(super) fn rados_getxattrs_end(iter: XattrsIterPtr);
    pub(super) fn rados_omap_get_next2(
        iter: OmapIterPtr,
        key: *mut *mut c_char,
        val: *mut *mut c_char,
        key_len: *mut usize,
        val_len: *mut usize,
    ) -> c_int;
    pub(super) fn rados_omap_get_end(iter: OmapIterPtr);

    // ----- watch / notify -----
    pub(super) fn rados_watch2(
        io: IoCtxPtr,
        o: *const c_char,
        cookie: *mut u64,
        watchcb: WatchCallback,
        watcherrcb: WatchErrorCallback,
        arg: *mut c_void,
    ) -> c_int;
    pub(super) fn rados_watch_check(io: IoCtxPtr, cookie: u64) -> c_int;
    pub(super) fn rados_unwatch2(io: IoCtxPtr, cookie: u64) -> c_int;
    pub(super) fn rados_watch_flush(cluster: RadosPtr) -> c_int;
    pub(super) fn rados_aio_notify(
        io: IoCtxPtr,
        o: *const c_char,
        completion: CompletionPtr,
        buf: *const c_char,
        buf_len: c_int,
        timeout_ms: u64,
        reply_buffer: *mut *mut c_char,
        reply_buffer_len: *mut usize,
    ) -> c_int;
    pub(super) fn rados_notify_ack(
        io: IoCtxPtr,
        o: *const c_char,
        notify_id: u64,
        cookie: u64,
        buf: *const c_char,
        buf_len: c_int,
    ) -> c_int;

    // ----- our C++ bridge (shim.cpp) -----
    pub(super) fn cephlock_rados_list_watchers(
        io: IoCtxPtr,
        oid: *const c_char,
        out: *mut *mut ObjWatch,
        count: *mut usize,
    ) -> c_int;
    pub(super) fn cephlock_rados_list_snaps(
        io: IoCtxPtr,
        oid: *const c_char,
        out: *mut *mut c_uchar,
        len: *mut usize,
    ) -> c_int;
    pub(super) fn cephlock_rados_free(p: *mut c_void);
}
