//! Compound operations on librados: our [`WriteOp`]/[`ReadOp`] vectors become one
//! `rados_write_op_t`/`rados_read_op_t` each, submitted with the aio API.
//!
//! Why aio: the [`crate::ClientBackend`] contract applies calls on one object in the order
//! they are first polled. Submitting the op synchronously inside that first poll hands it to
//! librados' objecter in exactly that order (the objecter keeps per-object order), and only
//! the wait for completion moves to a blocking thread, so no tokio worker ever blocks on the
//! cluster.
//!
//! Memory: a read op writes its results into buffers we provide, after the submit call has
//! returned. Everything librados may still write to lives in one heap block owned by
//! [`InFlight`], whose `Drop` waits for the completion before releasing anything. A caller
//! that drops its future therefore never frees memory librados is about to use.

#![allow(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, c_char, c_int, c_uchar};
use std::ptr;
use std::sync::Arc;

use super::ffi;
use super::raw::{RawIoCtx, check, cstring};
use crate::error::{Error, Result, errno};
use crate::ops::{ObjectStat, ReadOpKind, ReadResult, WriteOpKind};
use crate::types::UTime;

/// Linux ENOMEM (not among [`errno`]'s named values, which list what the store itself returns).
const ENOMEM: i32 = 12;

/// Reads up to this many bytes go straight into a buffer of the requested size; longer or
/// open-ended (`len` 0) reads are sized from a stat taken in the same op.
const DIRECT_READ_MAX: u64 = 8 << 20;
/// First buffer for a read whose size is not known in advance.
const FIRST_READ_GUESS: u64 = 64 << 10;
/// How often a read is resized before giving up on an object that keeps growing.
pub(super) const MAX_READ_ATTEMPTS: usize = 8;

/// A `rados_completion_t` without callbacks: waited on from a blocking thread.
struct Completion {
    ptr: ffi::CompletionPtr,
}

impl Completion {
    fn new() -> Result<Self> {
        let mut ptr: ffi::CompletionPtr = ptr::null_mut();
        // SAFETY: no callback and no argument; `ptr` is a valid out-pointer.
        let rc = unsafe { ffi::rados_aio_create_completion2(ptr::null_mut(), None, &mut ptr) };
        check(rc, || "rados_aio_create_completion2".to_owned())?;
        if ptr.is_null() {
            return Err(Error::from_errno(ENOMEM, "rados_aio_create_completion2 returned nothing"));
        }
        Ok(Completion { ptr })
    }

    /// Blocks until the operation has completed; returns its result.
    fn wait(&self) -> c_int {
        // SAFETY: the completion is live.
        unsafe {
            ffi::rados_aio_wait_for_complete(self.ptr);
            ffi::rados_aio_get_return_value(self.ptr)
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // SAFETY: live and owned; InFlight drops it only after the operation completed (or
        // it was never submitted).
        unsafe { ffi::rados_aio_release(self.ptr) };
    }
}

/// An op handle of either kind, released on drop.
enum OpHandle {
    Write(ffi::WriteOpPtr),
    Read(ffi::ReadOpPtr),
}

impl Drop for OpHandle {
    fn drop(&mut self) {
        // SAFETY: each handle was created by the matching rados_create_*_op and is released
        // exactly once, after its operation completed or without ever being submitted.
        unsafe {
            match *self {
                OpHandle::Write(p) => ffi::rados_release_write_op(p),
                OpHandle::Read(p) => ffi::rados_release_read_op(p),
            }
        }
    }
}

/// An operation librados may still be executing, with everything it may write into.
///
/// Invariant: `state` is a `Box::into_raw` pointer (or null once taken) that librados may
/// write through until `completion` completes, and nothing else touches it until then.
struct InFlight<S> {
    completion: Option<Completion>,
    op: Option<OpHandle>,
    state: *mut S,
}

// SAFETY: the raw parts are librados handles (usable from any thread) and a heap block that
// only this value owns; S itself must be Send.
unsafe impl<S: Send> Send for InFlight<S> {}

impl<S> InFlight<S> {
    /// Waits for completion and returns the result code with the filled-in state.
    fn finish(mut self) -> (c_int, Box<S>) {
        let rc = self.completion.as_ref().map_or(-errno::EIO, Completion::wait);
        self.op = None;
        self.completion = None;
        let state = std::mem::replace(&mut self.state, ptr::null_mut());
        // SAFETY: the operation has completed, so librados no longer writes through `state`,
        // which came from Box::into_raw and is taken exactly once (the field is now null).
        (rc, unsafe { Box::from_raw(state) })
    }
}

impl<S> Drop for InFlight<S> {
    fn drop(&mut self) {
        if let Some(c) = &self.completion {
            c.wait();
        }
        self.op = None;
        self.completion = None;
        if !self.state.is_null() {
            // SAFETY: completed (or never submitted), and not yet taken by `finish`.
            drop(unsafe { Box::from_raw(self.state) });
        }
    }
}

/// A submitted operation; [`Pending::wait`] finishes it on a blocking thread.
///
/// Field order matters: `inflight` (which waits for librados) drops before `keep`, the
/// connection it runs on, so the connection can never be shut down under a running op.
pub(super) struct Pending<S: Send + 'static> {
    inflight: InFlight<S>,
    keep: Arc<dyn Send + Sync>,
}

impl<S: Send + 'static> Pending<S> {
    fn run(self) -> (c_int, Box<S>) {
        let out = self.inflight.finish();
        drop(self.keep);
        out
    }

    /// Waits on a blocking thread. If the caller stops waiting, the blocking task still runs
    /// to the end and releases everything.
    pub(super) async fn wait(self) -> Result<(c_int, Box<S>)> {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .map_err(|e| Error::from_errno(errno::EIO, format!("librados completion task failed: {e}")))
    }
}

// ----------------------------------------------------------------------------------------
// Writes

/// Output slots of a write op: the return value of every `exec` sub-op.
pub(super) struct WriteState {
    exec_rvals: Vec<c_int>,
}

/// One sub-op with its strings already converted, so that building the librados op cannot
/// fail halfway.
enum PreparedWrite<'a> {
    Create(c_int),
    Write(u64, &'a [u8]),
    WriteFull(&'a [u8]),
    Append(&'a [u8]),
    Truncate(u64),
    Zero(u64, u64),
    Remove,
    SetXattr(CString, &'a [u8]),
    RmXattr(CString),
    OmapSet(&'a BTreeMap<String, Vec<u8>>),
    OmapRmKeys(&'a BTreeSet<String>),
    OmapClear,
    AssertExists,
    Exec(CString, CString, &'a [u8]),
}

fn prepare_write(op: &WriteOpKind) -> Result<PreparedWrite<'_>> {
    Ok(match op {
        WriteOpKind::Create { exclusive } => {
            PreparedWrite::Create(if *exclusive { ffi::CREATE_EXCLUSIVE } else { ffi::CREATE_IDEMPOTENT })
        }
        WriteOpKind::Write { offset, data } => PreparedWrite::Write(*offset, data),
        WriteOpKind::WriteFull { data } => PreparedWrite::WriteFull(data),
        WriteOpKind::Append { data } => PreparedWrite::Append(data),
        WriteOpKind::Truncate { size } => PreparedWrite::Truncate(*size),
        WriteOpKind::Zero { offset, len } => PreparedWrite::Zero(*offset, *len),
        WriteOpKind::Remove => PreparedWrite::Remove,
        WriteOpKind::SetXattr { name, value } => PreparedWrite::SetXattr(cstring("xattr name", name)?, value),
        WriteOpKind::RmXattr { name } => PreparedWrite::RmXattr(cstring("xattr name", name)?),
        WriteOpKind::OmapSet { entries } => PreparedWrite::OmapSet(entries),
        WriteOpKind::OmapRmKeys { keys } => PreparedWrite::OmapRmKeys(keys),
        WriteOpKind::OmapClear => PreparedWrite::OmapClear,
        WriteOpKind::AssertExists => PreparedWrite::AssertExists,
        WriteOpKind::Exec { class, method, input } => {
            PreparedWrite::Exec(cstring("class", class)?, cstring("method", method)?, input)
        }
        WriteOpKind::Rollback { .. } => {
            // The 16.2 C API has no rollback sub-op; the caller routes a lone rollback to
            // rados_ioctx_selfmanaged_snap_rollback instead.
            return Err(Error::NotSupported(
                "rollback inside a compound write: librados 16.2's C API only rolls back as a single op"
                    .to_owned(),
            ));
        }
    })
}

/// Builds and submits a write op on `io`, which must already carry the snap context.
pub(super) fn submit_write(
    io: &RawIoCtx,
    oid: &str,
    ops: &[WriteOpKind],
    keep: Arc<dyn Send + Sync>,
) -> Result<Pending<WriteState>> {
    let prepared = ops.iter().map(prepare_write).collect::<Result<Vec<_>>>()?;
    let oid_c = cstring("object name", oid)?;
    let n_exec = prepared.iter().filter(|p| matches!(p, PreparedWrite::Exec(..))).count();
    let completion = Completion::new()?;
    // SAFETY: plain constructor; null means allocation failure.
    let op_ptr = unsafe { ffi::rados_create_write_op() };
    if op_ptr.is_null() {
        return Err(Error::from_errno(ENOMEM, "rados_create_write_op"));
    }
    let state = Box::into_raw(Box::new(WriteState { exec_rvals: vec![0; n_exec] }));
    let inflight = InFlight { completion: Some(completion), op: Some(OpHandle::Write(op_ptr)), state };
    // SAFETY: `state` is live and not yet shared; the Vec is never resized, so pointers to
    // its elements stay valid until InFlight frees it after completion.
    let rvals = unsafe { (*state).exec_rvals.as_mut_ptr() };
    let mut exec_i = 0usize;
    for p in &prepared {
        let rval = if matches!(p, PreparedWrite::Exec(..)) {
            exec_i += 1;
            // SAFETY: exec_i - 1 < n_exec, the Vec's length, so the slot is in bounds.
            unsafe { rvals.add(exec_i - 1) }
        } else {
            ptr::null_mut()
        };
        // SAFETY: `op_ptr` is a live write op; `rval` is null or a slot in `state`, which
        // InFlight keeps alive and unmoved until the op completes.
        unsafe { add_write(op_ptr, p, rval) };
    }
    let completion_ptr = inflight.completion.as_ref().map_or(ptr::null_mut(), |c| c.ptr);
    // SAFETY: op, context, completion and oid are live; a null mtime means "now".
    let rc = unsafe {
        ffi::rados_aio_write_op_operate(
            op_ptr,
            io.as_ptr(),
            completion_ptr,
            oid_c.as_ptr(),
            ptr::null_mut(),
            0,
        )
    };
    if rc < 0 {
        // Never submitted: the completion will not fire, so release it without waiting.
        let mut inflight = inflight;
        inflight.completion = None;
        return Err(Error::from_errno(rc, format!("submitting write to {oid:?}")));
    }
    Ok(Pending { inflight, keep })
}

/// Adds one sub-op to a write op.
///
/// # Safety
/// `op_ptr` is a live write op; `rval` is null or points to an `int` that stays valid until
/// the op completes (only exec sub-ops use it).
unsafe fn add_write(op_ptr: ffi::WriteOpPtr, p: &PreparedWrite<'_>, rval: *mut c_int) {
    // SAFETY: the caller's contract for `op_ptr` and `rval`; every buffer and string is valid
    // for the duration of its call and librados copies it into the op. Each arm is one call.
    unsafe {
        match p {
            PreparedWrite::Create(mode) => ffi::rados_write_op_create(op_ptr, *mode, ptr::null()),
            PreparedWrite::Write(off, data) => {
                ffi::rados_write_op_write(op_ptr, data.as_ptr().cast(), data.len(), *off)
            }
            PreparedWrite::WriteFull(data) => {
                ffi::rados_write_op_write_full(op_ptr, data.as_ptr().cast(), data.len())
            }
            PreparedWrite::Append(data) => {
                ffi::rados_write_op_append(op_ptr, data.as_ptr().cast(), data.len())
            }
            PreparedWrite::Truncate(size) => ffi::rados_write_op_truncate(op_ptr, *size),
            PreparedWrite::Zero(off, len) => ffi::rados_write_op_zero(op_ptr, *off, *len),
            PreparedWrite::Remove => ffi::rados_write_op_remove(op_ptr),
            PreparedWrite::SetXattr(name, value) => {
                ffi::rados_write_op_setxattr(op_ptr, name.as_ptr(), value.as_ptr().cast(), value.len())
            }
            PreparedWrite::RmXattr(name) => ffi::rados_write_op_rmxattr(op_ptr, name.as_ptr()),
            PreparedWrite::OmapSet(entries) => {
                let keys: Vec<*const c_char> = entries.keys().map(|k| k.as_ptr().cast()).collect();
                let key_lens: Vec<usize> = entries.keys().map(String::len).collect();
                let vals: Vec<*const c_char> = entries.values().map(|v| v.as_ptr().cast()).collect();
                let val_lens: Vec<usize> = entries.values().map(Vec::len).collect();
                ffi::rados_write_op_omap_set2(
                    op_ptr,
                    keys.as_ptr(),
                    vals.as_ptr(),
                    key_lens.as_ptr(),
                    val_lens.as_ptr(),
                    keys.len(),
                )
            }
            PreparedWrite::OmapRmKeys(set) => {
                let keys: Vec<*const c_char> = set.iter().map(|k| k.as_ptr().cast()).collect();
                let key_lens: Vec<usize> = set.iter().map(String::len).collect();
                ffi::rados_write_op_omap_rm_keys2(op_ptr, keys.as_ptr(), key_lens.as_ptr(), keys.len())
            }
            PreparedWrite::OmapClear => ffi::rados_write_op_omap_clear(op_ptr),
            PreparedWrite::AssertExists => ffi::rados_write_op_assert_exists(op_ptr),
            PreparedWrite::Exec(cls, method, input) => ffi::rados_write_op_exec(
                op_ptr,
                cls.as_ptr(),
                method.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                rval,
            ),
        }
    }
}

/// Turns a finished write into our result: the op's code, else the first failed exec.
pub(super) fn finish_write(oid: &str, rc: c_int, state: &WriteState) -> Result<()> {
    check(rc, || format!("write op on {oid:?}"))?;
    if let Some(&bad) = state.exec_rvals.iter().find(|&&r| r < 0) {
        return Err(Error::from_errno(bad, format!("exec in write op on {oid:?}")));
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Reads

/// Where one sub-read's results land.
enum ReadSlot {
    Stat { size: u64, mtime: ffi::TimeT, rval: c_int },
    Read { buf: Vec<u8>, bytes_read: usize, rval: c_int },
    Xattrs { iter: ffi::XattrsIterPtr, rval: c_int },
    Omap { iter: ffi::OmapIterPtr, more: c_uchar, rval: c_int },
    Exists,
    Exec { out: *mut c_char, out_len: usize, rval: c_int },
}

/// Output slots of a read op, plus the stat that sizes open-ended reads.
pub(super) struct ReadState {
    slots: Vec<ReadSlot>,
    sizing_stat: Option<ReadSlot>,
}

// SAFETY: the raw pointers are librados-allocated iterators and buffers that only this state
// owns; they are used from one thread at a time.
unsafe impl Send for ReadState {}

impl Drop for ReadState {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            // SAFETY: each pointer is null or was allocated by librados for this op and is
            // released once, here, after the op completed (InFlight guarantees the order).
            unsafe {
                match slot {
                    ReadSlot::Xattrs { iter, .. } if !iter.is_null() => ffi::rados_getxattrs_end(*iter),
                    ReadSlot::Omap { iter, .. } if !iter.is_null() => ffi::rados_omap_get_end(*iter),
                    ReadSlot::Exec { out, .. } if !out.is_null() => ffi::rados_buffer_free(*out),
                    _ => {}
                }
            }
        }
    }
}

/// How big to make each `Read` sub-op's buffer on this attempt (None for other kinds).
pub(super) fn initial_read_caps(ops: &[ReadOpKind]) -> Vec<Option<u64>> {
    ops.iter()
        .map(|op| match op {
            ReadOpKind::Read { len, .. } if *len != 0 && *len <= DIRECT_READ_MAX => Some(*len),
            ReadOpKind::Read { len, .. } if *len == 0 => Some(FIRST_READ_GUESS),
            ReadOpKind::Read { .. } => Some(FIRST_READ_GUESS),
            _ => None,
        })
        .collect()
}

fn needs_sizing(ops: &[ReadOpKind]) -> bool {
    ops.iter().any(|op| matches!(op, ReadOpKind::Read { len, .. } if *len == 0 || *len > DIRECT_READ_MAX))
}

/// Strings and key arrays of a read op, converted before anything is allocated.
enum PreparedRead {
    Plain,
    OmapVals(CString, CString),
    OmapKeys(CString),
    OmapByKeys(Vec<String>),
    Exec(CString, CString),
}

fn prepare_read(op: &ReadOpKind) -> Result<PreparedRead> {
    Ok(match op {
        ReadOpKind::OmapGetVals { start_after, filter_prefix, .. } => PreparedRead::OmapVals(
            cstring("omap start key", start_after)?,
            cstring("omap key prefix", filter_prefix)?,
        ),
        ReadOpKind::OmapGetKeys { start_after, .. } => {
            PreparedRead::OmapKeys(cstring("omap start key", start_after)?)
        }
        ReadOpKind::OmapGetValsByKeys { keys } => PreparedRead::OmapByKeys(keys.iter().cloned().collect()),
        ReadOpKind::Exec { class, method, .. } => {
            PreparedRead::Exec(cstring("class", class)?, cstring("method", method)?)
        }
        _ => PreparedRead::Plain,
    })
}

/// Builds and submits a read op on `io`, which must already read at the wanted snapshot.
/// `caps` comes from [`initial_read_caps`] or [`next_read_caps`].
pub(super) fn submit_read(
    io: &RawIoCtx,
    oid: &str,
    ops: &[ReadOpKind],
    caps: &[Option<u64>],
    keep: Arc<dyn Send + Sync>,
) -> Result<Pending<ReadState>> {
    let prepared = ops.iter().map(prepare_read).collect::<Result<Vec<_>>>()?;
    let oid_c = cstring("object name", oid)?;
    let mut slots = Vec::with_capacity(ops.len());
    for (op, cap) in ops.iter().zip(caps) {
        slots.push(match op {
            ReadOpKind::Stat => ReadSlot::Stat { size: 0, mtime: 0, rval: 0 },
            ReadOpKind::Read { .. } => {
                let cap = usize::try_from(cap.unwrap_or(FIRST_READ_GUESS).max(1))
                    .map_err(|_| Error::InvalidArgument("read length exceeds the address space".into()))?;
                let mut buf = Vec::new();
                buf.try_reserve_exact(cap).map_err(|_| {
                    Error::from_errno(ENOMEM, format!("cannot allocate {cap} bytes to read {oid:?}"))
                })?;
                buf.resize(cap, 0);
                ReadSlot::Read { buf, bytes_read: 0, rval: 0 }
            }
            ReadOpKind::GetXattr { .. } | ReadOpKind::GetXattrs => {
                ReadSlot::Xattrs { iter: ptr::null_mut(), rval: 0 }
            }
            ReadOpKind::OmapGetVals { .. }
            | ReadOpKind::OmapGetKeys { .. }
            | ReadOpKind::OmapGetValsByKeys { .. } => {
                ReadSlot::Omap { iter: ptr::null_mut(), more: 0, rval: 0 }
            }
            ReadOpKind::AssertExists => ReadSlot::Exists,
            ReadOpKind::Exec { .. } => ReadSlot::Exec { out: ptr::null_mut(), out_len: 0, rval: 0 },
        });
    }
    let sizing_stat = needs_sizing(ops).then_some(ReadSlot::Stat { size: 0, mtime: 0, rval: 0 });
    let completion = Completion::new()?;
    // SAFETY: plain constructor; null means allocation failure.
    let op_ptr = unsafe { ffi::rados_create_read_op() };
    if op_ptr.is_null() {
        return Err(Error::from_errno(ENOMEM, "rados_create_read_op"));
    }
    let state = Box::into_raw(Box::new(ReadState { slots, sizing_stat }));
    let inflight = InFlight { completion: Some(completion), op: Some(OpHandle::Read(op_ptr)), state };
    for (i, (op, prep)) in ops.iter().zip(&prepared).enumerate() {
        // SAFETY: `state` is live, owned by `inflight`, and neither moved nor resized until
        // the op completes, so every slot pointer handed to librados stays valid; strings and
        // input buffers are valid for the call and copied by librados.
        unsafe {
            let slot: *mut ReadSlot = (*state).slots.as_mut_ptr().add(i);
            add_read(op_ptr, op, prep, slot);
        }
    }
    // SAFETY: as above, for the sizing stat.
    unsafe {
        if let Some(ReadSlot::Stat { size, mtime, rval }) = &mut (*state).sizing_stat {
            ffi::rados_read_op_stat(op_ptr, size, mtime, rval);
        }
    }
    let completion_ptr = inflight.completion.as_ref().map_or(ptr::null_mut(), |c| c.ptr);
    // SAFETY: op, context, completion and oid are live.
    let rc =
        unsafe { ffi::rados_aio_read_op_operate(op_ptr, io.as_ptr(), completion_ptr, oid_c.as_ptr(), 0) };
    if rc < 0 {
        let mut inflight = inflight;
        inflight.completion = None;
        return Err(Error::from_errno(rc, format!("submitting read of {oid:?}")));
    }
    Ok(Pending { inflight, keep })
}

/// Adds one sub-read to a read op.
///
/// # Safety
/// `op_ptr` is a live read op; `slot` points into a heap block that stays valid and
/// untouched by Rust until the op completes.
unsafe fn add_read(op_ptr: ffi::ReadOpPtr, op: &ReadOpKind, prep: &PreparedRead, slot: *mut ReadSlot) {
    // SAFETY: the caller's contract; each arm passes pointers to fields of `slot`.
    unsafe {
        match (&mut *slot, op, prep) {
            (ReadSlot::Stat { size, mtime, rval }, _, _) => {
                ffi::rados_read_op_stat(op_ptr, size, mtime, rval)
            }
            (ReadSlot::Read { buf, bytes_read, rval }, ReadOpKind::Read { offset, .. }, _) => {
                ffi::rados_read_op_read(op_ptr, *offset, buf.len(), buf.as_mut_ptr().cast(), bytes_read, rval)
            }
            (ReadSlot::Xattrs { iter, rval }, _, _) => ffi::rados_read_op_getxattrs(op_ptr, iter, rval),
            (
                ReadSlot::Omap { iter, more, rval },
                ReadOpKind::OmapGetVals { max, .. },
                PreparedRead::OmapVals(s, p),
            ) => ffi::rados_read_op_omap_get_vals2(op_ptr, s.as_ptr(), p.as_ptr(), *max, iter, more, rval),
            (
                ReadSlot::Omap { iter, more, rval },
                ReadOpKind::OmapGetKeys { max, .. },
                PreparedRead::OmapKeys(s),
            ) => ffi::rados_read_op_omap_get_keys2(op_ptr, s.as_ptr(), *max, iter, more, rval),
            (ReadSlot::Omap { iter, rval, .. }, _, PreparedRead::OmapByKeys(keys)) => {
                let ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
                let lens: Vec<usize> = keys.iter().map(String::len).collect();
                ffi::rados_read_op_omap_get_vals_by_keys2(
                    op_ptr,
                    ptrs.as_ptr(),
                    ptrs.len(),
                    lens.as_ptr(),
                    iter,
                    rval,
                )
            }
            (ReadSlot::Exists, _, _) => ffi::rados_read_op_assert_exists(op_ptr),
            (
                ReadSlot::Exec { out, out_len, rval },
                ReadOpKind::Exec { input, .. },
                PreparedRead::Exec(c, m),
            ) => ffi::rados_read_op_exec(
                op_ptr,
                c.as_ptr(),
                m.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out,
                out_len,
                rval,
            ),
            // Slots are built from the same op list, so the kinds always agree.
            _ => {}
        }
    }
}

/// What a finished read op means: results, or bigger buffers for another attempt.
pub(super) enum ReadOutcome {
    Done(Vec<ReadResult>),
    Retry(Vec<Option<u64>>),
}

/// Interprets a finished read op. A `Read` whose buffer turned out smaller than the data the
/// sizing stat reports asks for a retry with exact buffers.
pub(super) fn finish_read(
    oid: &str,
    ops: &[ReadOpKind],
    caps: &[Option<u64>],
    rc: c_int,
    state: &ReadState,
) -> Result<ReadOutcome> {
    check(rc, || format!("read op on {oid:?}"))?;
    let object_size = match &state.sizing_stat {
        Some(ReadSlot::Stat { size, rval, .. }) => {
            check(*rval, || format!("sizing stat of {oid:?}"))?;
            Some(*size)
        }
        _ => None,
    };
    // First: do any open-ended reads need a bigger buffer?
    if let Some(size) = object_size {
        let mut retry = false;
        let mut next = caps.to_vec();
        for (i, op) in ops.iter().enumerate() {
            if let (ReadOpKind::Read { offset, len }, Some(cap)) = (op, caps[i]) {
                let end = if *len == 0 { size } else { size.min(offset.saturating_add(*len)) };
                let want = end.saturating_sub(*offset);
                if want > cap {
                    next[i] = Some(want);
                    retry = true;
                }
            }
        }
        if retry {
            return Ok(ReadOutcome::Retry(next));
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for (op, slot) in ops.iter().zip(&state.slots) {
        out.push(read_result(oid, op, slot)?);
    }
    Ok(ReadOutcome::Done(out))
}

fn read_result(oid: &str, op: &ReadOpKind, slot: &ReadSlot) -> Result<ReadResult> {
    let ctx = || format!("{op:?} on {oid:?}");
    Ok(match (op, slot) {
        (ReadOpKind::Stat, ReadSlot::Stat { size, mtime, rval }) => {
            check(*rval, ctx)?;
            let sec = u32::try_from(*mtime).unwrap_or(0);
            ReadResult::Stat(ObjectStat { size: *size, mtime: UTime { sec, nsec: 0 } })
        }
        (ReadOpKind::Read { .. }, ReadSlot::Read { buf, bytes_read, rval }) => {
            check(*rval, ctx)?;
            ReadResult::Data(buf[..(*bytes_read).min(buf.len())].to_vec())
        }
        (ReadOpKind::GetXattr { name }, ReadSlot::Xattrs { iter, rval }) => {
            check(*rval, ctx)?;
            // SAFETY: the op completed successfully, so the iterator is initialized.
            let all = unsafe { drain_xattrs(*iter) };
            match all.into_iter().find(|(k, _)| k == name) {
                Some((_, v)) => ReadResult::Xattr(v),
                None => return Err(Error::NoData(format!("xattr {name:?} on {oid:?}"))),
            }
        }
        (ReadOpKind::GetXattrs, ReadSlot::Xattrs { iter, rval }) => {
            check(*rval, ctx)?;
            // SAFETY: as above.
            ReadResult::Xattrs(unsafe { drain_xattrs(*iter) }.into_iter().collect())
        }
        (ReadOpKind::OmapGetVals { .. }, ReadSlot::Omap { iter, more, rval }) => {
            check(*rval, ctx)?;
            // SAFETY: as above.
            let entries = unsafe { drain_omap(*iter) }.into_iter().collect();
            ReadResult::OmapVals { entries, more: *more != 0 }
        }
        (ReadOpKind::OmapGetKeys { .. }, ReadSlot::Omap { iter, more, rval }) => {
            check(*rval, ctx)?;
            // SAFETY: as above.
            let keys = unsafe { drain_omap(*iter) }.into_iter().map(|(k, _)| k).collect();
            ReadResult::OmapKeys { keys, more: *more != 0 }
        }
        (ReadOpKind::OmapGetValsByKeys { .. }, ReadSlot::Omap { iter, rval, .. }) => {
            check(*rval, ctx)?;
            // SAFETY: as above.
            let entries = unsafe { drain_omap(*iter) }.into_iter().collect();
            ReadResult::OmapVals { entries, more: false }
        }
        (ReadOpKind::AssertExists, ReadSlot::Exists) => ReadResult::Exists,
        (ReadOpKind::Exec { .. }, ReadSlot::Exec { out, out_len, rval }) => {
            check(*rval, ctx)?;
            // SAFETY: librados set `out`/`out_len` (null/0 for empty output); the buffer stays
            // owned by the state (freed in its Drop), so only borrow it here.
            let bytes = unsafe { borrowed(*out, *out_len) }.to_vec();
            ReadResult::Exec(bytes)
        }
        _ => return Err(Error::from_errno(errno::EIO, format!("internal: result slot mismatch for {op:?}"))),
    })
}

/// Bytes at `p` (null or `len` 0 gives an empty slice).
///
/// # Safety
/// `p` must be null or point to `len` readable bytes that outlive the returned slice.
unsafe fn borrowed<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
    }
}

/// Every (name, value) of a finished getxattrs.
///
/// # Safety
/// `iter` must come from a completed, successful `rados_read_op_getxattrs`.
unsafe fn drain_xattrs(iter: ffi::XattrsIterPtr) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if iter.is_null() {
        return out;
    }
    loop {
        let mut name: *const c_char = ptr::null();
        let mut val: *const c_char = ptr::null();
        let mut len = 0usize;
        // SAFETY: the caller's contract; the out-pointers are valid.
        let rc = unsafe { ffi::rados_getxattrs_next(iter, &mut name, &mut val, &mut len) };
        if rc < 0 || name.is_null() {
            return out;
        }
        // SAFETY: librados returns a NUL-terminated name and `len` value bytes, valid until the
        // next call on the iterator; both are copied before that.
        let (k, v) =
            unsafe { (CStr::from_ptr(name).to_string_lossy().into_owned(), borrowed(val, len).to_vec()) };
        out.push((k, v));
    }
}

/// Every (key, value) of a finished omap read (values are empty for key listings).
///
/// # Safety
/// `iter` must come from a completed, successful omap read sub-op.
unsafe fn drain_omap(iter: ffi::OmapIterPtr) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if iter.is_null() {
        return out;
    }
    loop {
        let mut key: *mut c_char = ptr::null_mut();
        let mut val: *mut c_char = ptr::null_mut();
        let mut key_len = 0usize;
        let mut val_len = 0usize;
        // SAFETY: the caller's contract; the out-pointers are valid.
        let rc = unsafe { ffi::rados_omap_get_next2(iter, &mut key, &mut val, &mut key_len, &mut val_len) };
        if rc < 0 || key.is_null() {
            return out;
        }
        // SAFETY: librados returns `key_len` key bytes and `val_len` value bytes, valid until
        // the next call on the iterator; both are copied before that.
        let (k, v) = unsafe { (borrowed(key, key_len).to_vec(), borrowed(val, val_len).to_vec()) };
        out.push((String::from_utf8_lossy(&k).into_owned(), v));
    }
}

// ----------------------------------------------------------------------------------------
// Notify

/// Where `rados_aio_notify` leaves the reply buffer.
pub(super) struct NotifyState {
    reply: *mut c_char,
    reply_len: usize,
}

// SAFETY: the buffer is librados-allocated memory that only this state owns.
unsafe impl Send for NotifyState {}

impl NotifyState {
    /// The reply bytes (empty if librados left none).
    pub(super) fn reply(&self) -> &[u8] {
        // SAFETY: after completion, `reply` is null or holds `reply_len` bytes this state owns.
        unsafe { borrowed(self.reply, self.reply_len) }
    }
}

impl Drop for NotifyState {
    fn drop(&mut self) {
        if !self.reply.is_null() {
            // SAFETY: allocated by librados for this notify; freed once, after completion.
            unsafe { ffi::rados_buffer_free(self.reply) };
        }
    }
}

/// Submits a notify; librados fills the reply buffer when every watcher acked or timed out.
/// `timeout_ms` 0 means librados' default.
pub(super) fn submit_notify(
    io: &RawIoCtx,
    oid: &str,
    payload: &[u8],
    timeout_ms: u64,
    keep: Arc<dyn Send + Sync>,
) -> Result<Pending<NotifyState>> {
    let oid_c = cstring("object name", oid)?;
    let len = c_int::try_from(payload.len())
        .map_err(|_| Error::InvalidArgument(format!("notify payload of {} bytes", payload.len())))?;
    let completion = Completion::new()?;
    let state = Box::into_raw(Box::new(NotifyState { reply: ptr::null_mut(), reply_len: 0 }));
    let inflight = InFlight { completion: Some(completion), op: None, state };
    let completion_ptr = inflight.completion.as_ref().map_or(ptr::null_mut(), |c| c.ptr);
    // SAFETY: context, completion and strings are live; the payload is copied during the
    // call; the two out-pointers point into `state`, which InFlight keeps until completion.
    let rc = unsafe {
        ffi::rados_aio_notify(
            io.as_ptr(),
            oid_c.as_ptr(),
            completion_ptr,
            payload.as_ptr().cast(),
            len,
            timeout_ms,
            &mut (*state).reply,
            &mut (*state).reply_len,
        )
    };
    if rc < 0 {
        let mut inflight = inflight;
        inflight.completion = None;
        return Err(Error::from_errno(rc, format!("submitting notify on {oid:?}")));
    }
    Ok(Pending { inflight, keep })
}
