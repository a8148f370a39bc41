//! The `lock` object class: Ceph 16.2's cls_lock, method for method and byte for byte.
//!
//! librbd's exclusive lock (rbd spec §1.6, §6) and the advisory lock API are nothing but calls
//! to this class on the image header, so its error codes *are* the protocol: `-EBUSY` means
//! "held by someone else / wrong tag or type", `-EEXIST` "you already hold it", `-ENOENT` "no
//! such locker". This module reproduces them in the order Ceph evaluates them, and keeps the
//! lock state exactly where Ceph does: one xattr `lock.<name>` per lock holding the encoded
//! `lock_info_t`, so a store dump looks like an OSD's.
//!
//! Wire formats (rbd spec §4.8), all `versioned(1, 1)` and decodable from the legacy
//! unversioned form too (`DECODE_START_LEGACY_COMPAT_LEN(1, 1, 1)`):
//!
//! | struct | body |
//! |---|---|
//! | [`LockOp`] | name, type u8, cookie, tag, description, duration utime, flags u8 |
//! | [`UnlockOp`] | name, cookie |
//! | [`BreakOp`] | name, locker entity_name_t, cookie |
//! | [`GetInfoOp`] | name |
//! | [`LockInfo`] (get_info reply and the xattr) | map of [`LockerId`] to [`LockerInfo`], type u8, tag |
//! | [`ListLocksReply`] | `list<string>` |
//! | [`AssertOp`] | name, type u8, cookie, tag |
//! | [`SetCookieOp`] | name, type u8, cookie, tag, new_cookie |
//! | [`LockerId`] | entity_name_t, cookie |
//! | [`LockerInfo`] | expiration utime, entity_addr_t (modern form), description |
//!
//! Time comes only from [`ClsContext::now`], so expiry follows the cluster's clock (and the
//! simulator's).

use std::collections::BTreeMap;
use std::fmt;

use crate::cls::{CLS_METHOD_RD, CLS_METHOD_WR, ClassRegistry, ClsContext};
use crate::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder, EncodingError};
use crate::error::{Error, Result, errno};
use crate::types::{EntityAddr, EntityName, UTime};

/// The class name clients pass to `exec`.
pub const CLASS: &str = "lock";

/// The xattr prefix under which each lock's state is stored (`lock.<name>`).
pub const XATTR_PREFIX: &str = "lock.";

/// `LOCK_FLAG_MAY_RENEW`: re-locking by the current holder refreshes the entry instead of
/// failing with `-EEXIST`.
pub const LOCK_FLAG_MAY_RENEW: u8 = 0x1;
/// `LOCK_FLAG_MUST_RENEW`: only the current holder may lock (anyone else gets `-ENOENT`), so a
/// lease renewal can never silently become a fresh acquisition.
pub const LOCK_FLAG_MUST_RENEW: u8 = 0x2;

/// The method names, as Ceph registers them.
pub mod method {
    /// Take or renew a lock.
    pub const LOCK: &str = "lock";
    /// Release the caller's own lock.
    pub const UNLOCK: &str = "unlock";
    /// Remove another locker's entry.
    pub const BREAK_LOCK: &str = "break_lock";
    /// Read a lock's lockers, type and tag.
    pub const GET_INFO: &str = "get_info";
    /// List the lock names on an object.
    pub const LIST_LOCKS: &str = "list_locks";
    /// Fail unless the caller holds the lock as described.
    pub const ASSERT_LOCKED: &str = "assert_locked";
    /// Re-key the caller's entry under a new cookie.
    pub const SET_COOKIE: &str = "set_cookie";
}

/// `ClsLockType`, a `u8` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum LockType {
    /// No lock (what a lock nobody ever took reports).
    #[default]
    None,
    /// One holder.
    Exclusive,
    /// Any number of holders, all shared.
    Shared,
    /// Exclusive, and the object itself is deleted when the last holder goes.
    ExclusiveEphemeral,
}

impl LockType {
    /// The wire byte.
    pub const fn wire(self) -> u8 {
        match self {
            LockType::None => 0,
            LockType::Exclusive => 1,
            LockType::Shared => 2,
            LockType::ExclusiveEphemeral => 3,
        }
    }

    /// The type for a wire byte, if Ceph defines it.
    pub const fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            0 => LockType::None,
            1 => LockType::Exclusive,
            2 => LockType::Shared,
            3 => LockType::ExclusiveEphemeral,
            _ => return None,
        })
    }

    /// Whether a request may name this type (`cls_lock_is_valid`): everything but none.
    pub const fn is_valid(self) -> bool {
        !matches!(self, LockType::None)
    }

    /// Whether it admits a single holder only.
    pub const fn is_exclusive(self) -> bool {
        matches!(self, LockType::Exclusive | LockType::ExclusiveEphemeral)
    }

    /// Whether the object goes away with the last holder.
    pub const fn is_ephemeral(self) -> bool {
        matches!(self, LockType::ExclusiveEphemeral)
    }

    /// Ceph's name for the type, as `rados lock info` prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LockType::None => "none",
            LockType::Exclusive => "exclusive",
            LockType::Shared => "shared",
            LockType::ExclusiveEphemeral => "exclusive-ephemeral",
        }
    }
}

impl fmt::Display for LockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Encode for LockType {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.wire());
    }
}

impl Decode for LockType {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        let b = d.u8()?;
        LockType::from_wire(b).ok_or(EncodingError::InvalidValue { what: "lock type", value: u64::from(b) })
    }
}

/// Decodes a cls_lock struct: `versioned(1, 1)`, also accepting the pre-versioned layout.
fn decode_struct<'a, T>(
    d: &mut Decoder<'a>,
    f: impl FnOnce(&mut Decoder<'a>) -> DecodeResult<T>,
) -> DecodeResult<T> {
    d.versioned_legacy(1, 1, 1, |d, _| f(d))
}

/// `locker_id_t`: a lock holder is the pair (entity, cookie), so two handles of one client
/// (same entity) are told apart by their cookies. Ordered as Ceph orders it (entity type,
/// entity number, then cookie), which is the order lockers are listed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockerId {
    /// Who holds it (`client.<gid>`).
    pub entity: EntityName,
    /// The holder's cookie (librbd: `auto <watch handle>`).
    pub cookie: String,
}

impl Encode for LockerId {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.entity_name(self.entity).string(&self.cookie);
        });
    }
}

impl Decode for LockerId {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(LockerId { entity: d.entity_name()?, cookie: d.string()? }))
    }
}

/// `locker_info_t`: what is recorded about one holder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockerInfo {
    /// When the entry lapses; zero means never.
    pub expiration: UTime,
    /// The holder's address, always stored with the legacy type (rbd spec §10 item 61).
    pub addr: EntityAddr,
    /// Free text from the locker.
    pub description: String,
}

impl Encode for LockerInfo {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.utime(self.expiration).entity_addr(&self.addr).string(&self.description);
        });
    }
}

impl Decode for LockerInfo {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| {
            Ok(LockerInfo { expiration: d.utime()?, addr: d.entity_addr()?, description: d.string()? })
        })
    }
}

/// `lock_info_t` / `cls_lock_get_info_reply` (identical encodings): the state of one lock,
/// stored in the `lock.<name>` xattr and returned by `get_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockInfo {
    /// The current holders, in Ceph's order.
    pub lockers: BTreeMap<LockerId, LockerInfo>,
    /// The type of the lock (kept even after the last holder left, as Ceph does).
    pub lock_type: LockType,
    /// The tag every holder must agree on while there are holders.
    pub tag: String,
}

impl Encode for LockInfo {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.put(&self.lockers).put(&self.lock_type).string(&self.tag);
        });
    }
}

impl Decode for LockInfo {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(LockInfo { lockers: d.get()?, lock_type: d.get()?, tag: d.string()? }))
    }
}

/// The `get_info` reply has the same shape as the stored state.
pub type GetInfoReply = LockInfo;

/// `cls_lock_lock_op`: the input of `lock`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockOp {
    /// The lock's name (not empty).
    pub name: String,
    /// Exclusive, shared or exclusive-ephemeral.
    pub lock_type: LockType,
    /// The caller's cookie.
    pub cookie: String,
    /// Must equal the current tag while the lock is held.
    pub tag: String,
    /// Recorded with the locker.
    pub description: String,
    /// How long the entry lives; zero means forever.
    pub duration: UTime,
    /// [`LOCK_FLAG_MAY_RENEW`] and/or [`LOCK_FLAG_MUST_RENEW`] (not both).
    pub flags: u8,
}

impl Encode for LockOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).put(&self.lock_type).string(&self.cookie).string(&self.tag);
            e.string(&self.description).utime(self.duration).u8(self.flags);
        });
    }
}

impl Decode for LockOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| {
            Ok(LockOp {
                name: d.string()?,
                lock_type: d.get()?,
                cookie: d.string()?,
                tag: d.string()?,
                description: d.string()?,
                duration: d.utime()?,
                flags: d.u8()?,
            })
        })
    }
}

/// `cls_lock_unlock_op`: the input of `unlock` (the entity is the caller's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnlockOp {
    /// The lock's name.
    pub name: String,
    /// The caller's cookie.
    pub cookie: String,
}

impl Encode for UnlockOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).string(&self.cookie);
        });
    }
}

impl Decode for UnlockOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(UnlockOp { name: d.string()?, cookie: d.string()? }))
    }
}

/// `cls_lock_break_op`: the input of `break_lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakOp {
    /// The lock's name.
    pub name: String,
    /// The holder to remove.
    pub locker: EntityName,
    /// That holder's cookie.
    pub cookie: String,
}

impl Encode for BreakOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).entity_name(self.locker).string(&self.cookie);
        });
    }
}

impl Decode for BreakOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(BreakOp { name: d.string()?, locker: d.entity_name()?, cookie: d.string()? }))
    }
}

/// `cls_lock_get_info_op`: the input of `get_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetInfoOp {
    /// The lock's name.
    pub name: String,
}

impl Encode for GetInfoOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name);
        });
    }
}

impl Decode for GetInfoOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(GetInfoOp { name: d.string()? }))
    }
}

/// `cls_lock_list_locks_reply`: the output of `list_locks`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListLocksReply {
    /// Lock names, sorted (they come from the xattr map).
    pub locks: Vec<String>,
}

impl Encode for ListLocksReply {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.put(&self.locks);
        });
    }
}

impl Decode for ListLocksReply {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| Ok(ListLocksReply { locks: d.get()? }))
    }
}

/// `cls_lock_assert_op`: the input of `assert_locked`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssertOp {
    /// The lock's name.
    pub name: String,
    /// The type the caller believes it holds.
    pub lock_type: LockType,
    /// The caller's cookie.
    pub cookie: String,
    /// The tag the caller believes is set.
    pub tag: String,
}

impl Encode for AssertOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).put(&self.lock_type).string(&self.cookie).string(&self.tag);
        });
    }
}

impl Decode for AssertOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| {
            Ok(AssertOp { name: d.string()?, lock_type: d.get()?, cookie: d.string()?, tag: d.string()? })
        })
    }
}

/// `cls_lock_set_cookie_op`: the input of `set_cookie`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetCookieOp {
    /// The lock's name.
    pub name: String,
    /// The type the caller holds.
    pub lock_type: LockType,
    /// The caller's current cookie.
    pub cookie: String,
    /// The current tag.
    pub tag: String,
    /// The cookie to re-key the entry under.
    pub new_cookie: String,
}

impl Encode for SetCookieOp {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).put(&self.lock_type).string(&self.cookie).string(&self.tag);
            e.string(&self.new_cookie);
        });
    }
}

impl Decode for SetCookieOp {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        decode_struct(d, |d| {
            Ok(SetCookieOp {
                name: d.string()?,
                lock_type: d.get()?,
                cookie: d.string()?,
                tag: d.string()?,
                new_cookie: d.string()?,
            })
        })
    }
}

/// Registers every method with the flags Ceph gives it. The RD/WR split matters: a method
/// without WR runs as a read (it fails with `-ENOENT` on a missing object and may not modify
/// anything).
pub fn register(reg: &mut ClassRegistry) {
    let rw = CLS_METHOD_RD | CLS_METHOD_WR;
    reg.register(CLASS, method::LOCK, rw, lock);
    reg.register(CLASS, method::UNLOCK, rw, unlock);
    reg.register(CLASS, method::BREAK_LOCK, rw, break_lock);
    reg.register(CLASS, method::GET_INFO, CLS_METHOD_RD, get_info);
    reg.register(CLASS, method::LIST_LOCKS, CLS_METHOD_RD, list_locks);
    reg.register(CLASS, method::ASSERT_LOCKED, CLS_METHOD_RD, assert_locked);
    reg.register(CLASS, method::SET_COOKIE, rw, set_cookie);
}

/// Decodes a method's input. Like Ceph, bytes after the struct are ignored, and anything
/// that does not decode is `-EINVAL`.
fn decode_input<T: Decode>(input: &[u8]) -> Result<T> {
    Ok(T::decode(&mut Decoder::new(input))?)
}

fn invalid(what: impl Into<String>) -> Error {
    Error::InvalidArgument(what.into())
}

fn busy(what: impl Into<String>) -> Error {
    Error::Busy(what.into())
}

/// `utime_t += utime_t`, carrying nanoseconds; saturates where Ceph's `u32` would wrap.
fn utime_add(a: UTime, b: UTime) -> UTime {
    let nsec = u64::from(a.nsec) + u64::from(b.nsec);
    let sec = u64::from(a.sec) + u64::from(b.sec) + nsec / 1_000_000_000;
    match u32::try_from(sec) {
        Ok(sec) => UTime { sec, nsec: (nsec % 1_000_000_000) as u32 },
        Err(_) => UTime { sec: u32::MAX, nsec: 999_999_999 },
    }
}

/// Whether the method reading the lock may modify the object (is registered WR).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Reads a lock's state and drops expired holders (Ceph's `read_lock`).
///
/// A missing xattr is an empty lock; a missing object is `-ENOENT`; undecodable state is
/// `-EIO`. When the holders of an exclusive-ephemeral lock have all expired, Ceph deletes the
/// object right here. From a WR method that deletion is part of the method's effect (and is
/// discarded with it if the method then fails). A method registered RD only cannot write: the
/// classic OSD fails such a call with `-EIO` ("method tried to update object but is not
/// marked WR"), which is what happens to `get_info`/`assert_locked` on such an object.
fn read_lock(ctx: &mut dyn ClsContext, name: &str, access: Access) -> Result<LockInfo> {
    let key = format!("{XATTR_PREFIX}{name}");
    let raw = match ctx.getxattr(&key) {
        Ok(raw) => raw,
        Err(e) if e.errno() == errno::ENODATA => return Ok(LockInfo::default()),
        Err(e) => return Err(e),
    };
    let mut info: LockInfo = LockInfo::decode(&mut Decoder::new(&raw))
        .map_err(|e| Error::from_errno(errno::EIO, format!("cls_lock: undecodable {key}: {e}")))?;

    let now = ctx.now();
    info.lockers.retain(|_, l| l.expiration.is_zero() || l.expiration >= now);

    if info.lockers.is_empty() && info.lock_type.is_ephemeral() {
        match access {
            // Ceph only logs a failed clean-up.
            Access::Write => {
                let _ = ctx.remove();
            }
            Access::Read => {
                return Err(Error::from_errno(
                    errno::EIO,
                    format!(
                        "cls_lock: read-only method would remove expired ephemeral lock object for {key}"
                    ),
                ));
            }
        }
    }
    Ok(info)
}

fn write_lock(ctx: &mut dyn ClsContext, name: &str, info: &LockInfo) -> Result<()> {
    let mut e = Encoder::new();
    info.encode(&mut e);
    ctx.setxattr(&format!("{XATTR_PREFIX}{name}"), e.as_slice())
}

/// `lock`: take (or renew) a lock for the caller's (entity, cookie). Creates the object if it
/// is missing.
///
/// Errors, in Ceph's order (rbd spec §6): invalid type, empty name, or both renew flags:
/// `-EINVAL`; held with another tag: `-EBUSY`; already held by this (entity, cookie) without
/// MAY_RENEW/MUST_RENEW: `-EEXIST`; MUST_RENEW but not held: `-ENOENT`; other holders remain
/// and the request is exclusive, or they hold the other type: `-EBUSY`.
pub fn lock(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: LockOp = decode_input(input)?;
    if !op.lock_type.is_valid() {
        return Err(invalid(format!("cls_lock: invalid lock type {}", op.lock_type)));
    }
    if op.name.is_empty() {
        return Err(invalid("cls_lock: empty lock name"));
    }
    let may_renew = op.flags & LOCK_FLAG_MAY_RENEW != 0;
    let must_renew = op.flags & LOCK_FLAG_MUST_RENEW != 0;
    if may_renew && must_renew {
        return Err(invalid("cls_lock: MAY_RENEW and MUST_RENEW are exclusive"));
    }

    let mut info = match read_lock(ctx, &op.name, Access::Write) {
        Ok(info) => info,
        Err(e) if e.errno() == errno::ENOENT => LockInfo::default(),
        Err(e) => return Err(e),
    };
    let id = LockerId { entity: ctx.caller_entity(), cookie: op.cookie.clone() };

    // The tag is checked before the caller's own entry is considered, so a holder cannot
    // change the tag by renewing.
    if !info.lockers.is_empty() && op.tag != info.tag {
        return Err(busy(format!("cls_lock: lock {:?} is held with a different tag", op.name)));
    }
    let existing_type = info.lock_type;
    if info.lockers.remove(&id).is_some() {
        if !may_renew && !must_renew {
            return Err(Error::Exists(format!(
                "cls_lock: {} {:?} already holds {:?}",
                id.entity, id.cookie, op.name
            )));
        }
    } else if must_renew {
        return Err(Error::NotFound(format!(
            "cls_lock: {} {:?} does not hold {:?} to renew",
            id.entity, id.cookie, op.name
        )));
    }
    if !info.lockers.is_empty() {
        if op.lock_type.is_exclusive() {
            return Err(busy(format!("cls_lock: lock {:?} is already held", op.name)));
        }
        if existing_type != op.lock_type {
            return Err(busy(format!("cls_lock: lock {:?} is held as {existing_type}", op.name)));
        }
    }

    info.lock_type = op.lock_type;
    info.tag = op.tag;
    let expiration = if op.duration.is_zero() { UTime::ZERO } else { utime_add(ctx.now(), op.duration) };
    // Stored as legacy whatever protocol the client speaks, so that the address string
    // compared against watchers and blocklists is stable.
    let addr = ctx.caller_addr().as_legacy();
    info.lockers.insert(id, LockerInfo { expiration, addr, description: op.description });
    write_lock(ctx, &op.name, &info)?;
    Ok(Vec::new())
}

/// Removes one holder (Ceph's `remove_lock`), deleting the object for an ephemeral lock.
fn remove_locker(ctx: &mut dyn ClsContext, name: &str, entity: EntityName, cookie: String) -> Result<()> {
    let mut info = read_lock(ctx, name, Access::Write)?;
    let id = LockerId { entity, cookie };
    if info.lockers.remove(&id).is_none() {
        return Err(Error::NotFound(format!(
            "cls_lock: {} {:?} does not hold {name:?}",
            id.entity, id.cookie
        )));
    }
    if info.lock_type.is_ephemeral() { ctx.remove() } else { write_lock(ctx, name, &info) }
}

/// `unlock`: release the caller's own (entity, cookie) entry; `-ENOENT` if there is none
/// (another client's cookie does not count, real-ceph-observed §3).
pub fn unlock(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: UnlockOp = decode_input(input)?;
    let entity = ctx.caller_entity();
    remove_locker(ctx, &op.name, entity, op.cookie)?;
    Ok(Vec::new())
}

/// `break_lock`: remove any holder's entry; `-ENOENT` if that (entity, cookie) holds nothing.
pub fn break_lock(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: BreakOp = decode_input(input)?;
    remove_locker(ctx, &op.name, op.locker, op.cookie)?;
    Ok(Vec::new())
}

/// `get_info`: the live holders, type and tag of a lock (empty, none and "" if it was never
/// taken). `-ENOENT` if the object does not exist.
pub fn get_info(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: GetInfoOp = decode_input(input)?;
    let info = read_lock(ctx, &op.name, Access::Read)?;
    let mut e = Encoder::new();
    info.encode(&mut e);
    Ok(e.into_vec())
}

/// `list_locks`: the names of all locks ever taken on the object (every `lock.` xattr, even
/// one whose holders are gone). The input is ignored.
pub fn list_locks(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    // A read-only call on a missing object never reaches a classic OSD's class method.
    if !ctx.exists() {
        return Err(Error::NotFound(format!("cls_lock: object {:?} does not exist", ctx.object_name())));
    }
    let attrs = ctx.getxattrs()?;
    let locks = attrs.keys().filter_map(|k| k.strip_prefix(XATTR_PREFIX)).map(str::to_owned).collect();
    let mut e = Encoder::new();
    ListLocksReply { locks }.encode(&mut e);
    Ok(e.into_vec())
}

/// Checks that the caller holds `name` with exactly this type, tag and cookie; every
/// mismatch (including "nobody holds it") is `-EBUSY`.
fn check_held(info: &LockInfo, name: &str, lock_type: LockType, tag: &str, id: &LockerId) -> Result<()> {
    if info.lockers.is_empty() {
        return Err(busy(format!("cls_lock: {name:?} is not locked")));
    }
    if info.lock_type != lock_type {
        return Err(busy(format!("cls_lock: {name:?} is {} not {lock_type}", info.lock_type)));
    }
    if info.tag != tag {
        return Err(busy(format!("cls_lock: {name:?} has tag {:?} not {tag:?}", info.tag)));
    }
    if !info.lockers.contains_key(id) {
        return Err(busy(format!("cls_lock: {name:?} is not held by {} {:?}", id.entity, id.cookie)));
    }
    Ok(())
}

fn check_type_and_name(lock_type: LockType, name: &str) -> Result<()> {
    if !lock_type.is_valid() {
        return Err(invalid(format!("cls_lock: invalid lock type {lock_type}")));
    }
    if name.is_empty() {
        return Err(invalid("cls_lock: empty lock name"));
    }
    Ok(())
}

/// `assert_locked`: succeed only if the caller's (entity, cookie) holds the lock with this
/// type and tag. librbd uses it to ask the OSD, not its own memory, whether it still owns
/// the image (rbd spec §1.3).
pub fn assert_locked(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: AssertOp = decode_input(input)?;
    check_type_and_name(op.lock_type, &op.name)?;
    let info = read_lock(ctx, &op.name, Access::Read)?;
    let id = LockerId { entity: ctx.caller_entity(), cookie: op.cookie };
    check_held(&info, &op.name, op.lock_type, &op.tag, &id)?;
    Ok(Vec::new())
}

/// `set_cookie`: move the caller's entry to a new cookie, keeping its expiration, address and
/// description. librbd's reacquire uses it after a re-watch changed its handle (rbd spec
/// §1.6.5). The same checks as `assert_locked`, then `-EBUSY` if the new (entity, cookie)
/// already holds the lock (including new == old).
pub fn set_cookie(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let op: SetCookieOp = decode_input(input)?;
    check_type_and_name(op.lock_type, &op.name)?;
    let mut info = read_lock(ctx, &op.name, Access::Write)?;
    let entity = ctx.caller_entity();
    let old = LockerId { entity, cookie: op.cookie };
    check_held(&info, &op.name, op.lock_type, &op.tag, &old)?;
    let new = LockerId { entity, cookie: op.new_cookie };
    if info.lockers.contains_key(&new) {
        return Err(busy(format!("cls_lock: cookie {:?} is already in use on {:?}", new.cookie, op.name)));
    }
    if let Some(entry) = info.lockers.remove(&old) {
        info.lockers.insert(new, entry);
    }
    write_lock(ctx, &op.name, &info)?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_add_carries_and_saturates() {
        let a = UTime { sec: 10, nsec: 700_000_000 };
        let b = UTime { sec: 1, nsec: 400_000_000 };
        assert_eq!(utime_add(a, b), UTime { sec: 12, nsec: 100_000_000 });
        let max = UTime { sec: u32::MAX, nsec: 0 };
        assert_eq!(utime_add(max, UTime { sec: 1, nsec: 0 }).sec, u32::MAX);
    }

    #[test]
    fn lock_type_wire_round_trip() {
        for b in 0..=3u8 {
            assert_eq!(LockType::from_wire(b).map(LockType::wire), Some(b));
        }
        assert_eq!(LockType::from_wire(4), None);
    }
}
