//! Typed client for the `lock` object class, as Ceph's `cls_lock_client` library offers it.
//!
//! librbd never builds cls_lock requests by hand; it calls `rados::cls::lock::lock(...)`,
//! `get_lock_info(...)` and friends, or adds the same calls to a compound op. This module is
//! that library for cephlock: async calls over [`IoCtx::exec`], op-vector helpers for
//! [`WriteOp`]/[`ReadOp`], and the pure `encode_*_op` / `decode_*_reply` functions underneath,
//! so the wire format can be checked without a cluster (rbd spec §4.8).
//!
//! Errors are the OSD's (rbd spec §6). A reply that does not decode is `-EBADMSG`, as in
//! Ceph's client.

use std::time::Duration;

use crate::IoCtx;
use crate::encoding::{Decode, Decoder, Encode, Encoder};
use crate::error::{Error, Result};
use crate::ops::{ReadOp, WriteOp};
use crate::types::{EntityName, UTime};

pub use crate::cls::lock::{
    AssertOp, BreakOp, CLASS, GetInfoOp, GetInfoReply, LOCK_FLAG_MAY_RENEW, LOCK_FLAG_MUST_RENEW,
    ListLocksReply, LockInfo, LockOp, LockType, LockerId, LockerInfo, SetCookieOp, UnlockOp, method,
};

use crate::error::errno::EBADMSG;

fn encode<T: Encode>(v: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    v.encode(&mut e);
    e.into_vec()
}

fn decode_reply<T: Decode>(what: &str, out: &[u8]) -> Result<T> {
    T::decode(&mut Decoder::new(out))
        .map_err(|e| Error::from_errno(EBADMSG, format!("cls_lock {what} reply: {e}")))
}

/// The input bytes of `lock.lock`.
pub fn encode_lock_op(op: &LockOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.unlock`.
pub fn encode_unlock_op(op: &UnlockOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.break_lock`.
pub fn encode_break_op(op: &BreakOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.get_info`.
pub fn encode_get_info_op(op: &GetInfoOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.assert_locked`.
pub fn encode_assert_op(op: &AssertOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.set_cookie`.
pub fn encode_set_cookie_op(op: &SetCookieOp) -> Vec<u8> {
    encode(op)
}

/// The input bytes of `lock.list_locks`: Ceph's client sends an empty input (the class
/// ignores it).
pub fn encode_list_locks_op() -> Vec<u8> {
    Vec::new()
}

/// Decodes the output of `lock.get_info`; `-EBADMSG` if it does not decode.
pub fn decode_get_info_reply(out: &[u8]) -> Result<GetInfoReply> {
    decode_reply("get_info", out)
}

/// Decodes the output of `lock.list_locks`; `-EBADMSG` if it does not decode.
pub fn decode_list_locks_reply(out: &[u8]) -> Result<ListLocksReply> {
    decode_reply("list_locks", out)
}

/// A lock duration as `utime_t` (zero means the lock never expires).
pub fn duration_to_utime(d: Duration) -> UTime {
    UTime::from_duration(d)
}

/// Takes (or renews) lock `name` on `oid` for this client's entity and `cookie`.
///
/// The parameter list is Ceph's `rados::cls::lock::lock` one for one. `duration` zero means
/// no expiry; `flags` is [`LOCK_FLAG_MAY_RENEW`] or [`LOCK_FLAG_MUST_RENEW`] (or 0). Creates
/// the object if it is missing.
#[allow(clippy::too_many_arguments)]
pub async fn lock(
    ioctx: &IoCtx,
    oid: &str,
    name: &str,
    lock_type: LockType,
    cookie: &str,
    tag: &str,
    description: &str,
    duration: Duration,
    flags: u8,
) -> Result<()> {
    let op = LockOp {
        name: name.to_owned(),
        lock_type,
        cookie: cookie.to_owned(),
        tag: tag.to_owned(),
        description: description.to_owned(),
        duration: duration_to_utime(duration),
        flags,
    };
    lock_with(ioctx, oid, &op).await
}

/// [`lock`] with a prepared request.
pub async fn lock_with(ioctx: &IoCtx, oid: &str, op: &LockOp) -> Result<()> {
    ioctx.exec(oid, CLASS, method::LOCK, &encode_lock_op(op)).await.map(drop)
}

/// Releases this client's (entity, `cookie`) hold on `name`; `-ENOENT` if it holds nothing.
pub async fn unlock(ioctx: &IoCtx, oid: &str, name: &str, cookie: &str) -> Result<()> {
    let op = UnlockOp { name: name.to_owned(), cookie: cookie.to_owned() };
    ioctx.exec(oid, CLASS, method::UNLOCK, &encode_unlock_op(&op)).await.map(drop)
}

/// Removes another holder's (`locker`, `cookie`) entry from `name`; `-ENOENT` if there is no
/// such entry. (Argument order as Ceph's: cookie, then locker.)
pub async fn break_lock(
    ioctx: &IoCtx,
    oid: &str,
    name: &str,
    cookie: &str,
    locker: EntityName,
) -> Result<()> {
    let op = BreakOp { name: name.to_owned(), locker, cookie: cookie.to_owned() };
    ioctx.exec(oid, CLASS, method::BREAK_LOCK, &encode_break_op(&op)).await.map(drop)
}

/// The live holders, type and tag of `name` (empty, [`LockType::None`] and "" if it was never
/// taken); `-ENOENT` if the object does not exist.
pub async fn get_lock_info(ioctx: &IoCtx, oid: &str, name: &str) -> Result<LockInfo> {
    let op = GetInfoOp { name: name.to_owned() };
    let out = ioctx.exec(oid, CLASS, method::GET_INFO, &encode_get_info_op(&op)).await?;
    decode_get_info_reply(&out)
}

/// The names of the locks on `oid`, sorted.
pub async fn list_locks(ioctx: &IoCtx, oid: &str) -> Result<Vec<String>> {
    let out = ioctx.exec(oid, CLASS, method::LIST_LOCKS, &encode_list_locks_op()).await?;
    decode_list_locks_reply(&out).map(|r| r.locks)
}

/// Succeeds only if this client's (entity, `cookie`) holds `name` with this type and tag;
/// `-EBUSY` otherwise, `-ENOENT` if the object is missing.
pub async fn assert_locked(
    ioctx: &IoCtx,
    oid: &str,
    name: &str,
    lock_type: LockType,
    cookie: &str,
    tag: &str,
) -> Result<()> {
    let op = AssertOp { name: name.to_owned(), lock_type, cookie: cookie.to_owned(), tag: tag.to_owned() };
    ioctx.exec(oid, CLASS, method::ASSERT_LOCKED, &encode_assert_op(&op)).await.map(drop)
}

/// Re-keys this client's hold on `name` from `cookie` to `new_cookie`, keeping its expiration
/// and address; `-EBUSY` if the caller does not hold it as described or `new_cookie` is taken.
#[allow(clippy::too_many_arguments)]
pub async fn set_cookie(
    ioctx: &IoCtx,
    oid: &str,
    name: &str,
    lock_type: LockType,
    cookie: &str,
    tag: &str,
    new_cookie: &str,
) -> Result<()> {
    let op = SetCookieOp {
        name: name.to_owned(),
        lock_type,
        cookie: cookie.to_owned(),
        tag: tag.to_owned(),
        new_cookie: new_cookie.to_owned(),
    };
    ioctx.exec(oid, CLASS, method::SET_COOKIE, &encode_set_cookie_op(&op)).await.map(drop)
}

/// Adds a `lock` call to a write op vector (so it applies atomically with the other ops).
pub fn write_op_lock(op: WriteOp, req: &LockOp) -> WriteOp {
    op.exec(CLASS, method::LOCK, encode_lock_op(req))
}

/// Adds an `unlock` call to a write op vector.
pub fn write_op_unlock(op: WriteOp, name: &str, cookie: &str) -> WriteOp {
    let req = UnlockOp { name: name.to_owned(), cookie: cookie.to_owned() };
    op.exec(CLASS, method::UNLOCK, encode_unlock_op(&req))
}

/// Adds a `break_lock` call to a write op vector.
pub fn write_op_break_lock(op: WriteOp, name: &str, cookie: &str, locker: EntityName) -> WriteOp {
    let req = BreakOp { name: name.to_owned(), locker, cookie: cookie.to_owned() };
    op.exec(CLASS, method::BREAK_LOCK, encode_break_op(&req))
}

/// Adds a `set_cookie` call to a write op vector.
pub fn write_op_set_cookie(op: WriteOp, req: &SetCookieOp) -> WriteOp {
    op.exec(CLASS, method::SET_COOKIE, encode_set_cookie_op(req))
}

/// Guards a write op vector with `assert_locked`: the whole vector fails with `-EBUSY` unless
/// the caller still holds the lock, which is how a lock owner fences its own writes.
pub fn write_op_assert_locked(op: WriteOp, req: &AssertOp) -> WriteOp {
    op.exec(CLASS, method::ASSERT_LOCKED, encode_assert_op(req))
}

/// Adds `assert_locked` to a read op vector.
pub fn read_op_assert_locked(op: ReadOp, req: &AssertOp) -> ReadOp {
    op.exec(CLASS, method::ASSERT_LOCKED, encode_assert_op(req))
}

/// Adds `get_info` to a read op vector (as librbd's refresh does, rbd spec §6.1); decode its
/// result with [`decode_get_info_reply`].
pub fn read_op_get_lock_info(op: ReadOp, name: &str) -> ReadOp {
    op.exec(CLASS, method::GET_INFO, encode_get_info_op(&GetInfoOp { name: name.to_owned() }))
}
