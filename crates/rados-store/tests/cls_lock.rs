//! The `lock` class (rbd spec §4.8, §6; real-ceph-observed §3, §5), driven through its
//! registered method functions against a one-object in-memory [`ClsContext`] with a settable
//! clock. The harness applies a method's changes only when it succeeds and runs RD-only
//! methods as reads, as an OSD (and the embedded cluster) does.

use std::collections::BTreeMap;

use rados_store::cls::lock::{
    AssertOp, BreakOp, GetInfoOp, LOCK_FLAG_MAY_RENEW, LOCK_FLAG_MUST_RENEW, ListLocksReply, LockInfo,
    LockOp, LockType, LockerId, SetCookieOp, UnlockOp,
};
use rados_store::cls::{ClassRegistry, ClsContext};
use rados_store::cls_lock_client as client;
use rados_store::encoding::{Decode, Decoder, Encode, Encoder};
use rados_store::error::errno;
use rados_store::{EntityAddr, EntityName, Error, Result, UTime};

// ---------------------------------------------------------------------------------------------
// Harness

#[derive(Debug, Clone, Default, PartialEq)]
struct Obj {
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    omap: BTreeMap<String, Vec<u8>>,
}

struct Ctx {
    obj: Option<Obj>,
    now: UTime,
    entity: EntityName,
    addr: EntityAddr,
    read_only: bool,
}

fn enoent() -> Error {
    Error::NotFound("object".into())
}

impl Ctx {
    fn obj(&self) -> Result<&Obj> {
        self.obj.as_ref().ok_or_else(enoent)
    }

    fn writable(&mut self) -> Result<&mut Option<Obj>> {
        if self.read_only {
            return Err(Error::from_errno(errno::EIO, "method tried to update object but is not marked WR"));
        }
        Ok(&mut self.obj)
    }
}

impl ClsContext for Ctx {
    fn object_name(&self) -> &str {
        "obj"
    }
    fn exists(&self) -> bool {
        self.obj.is_some()
    }
    fn create(&mut self, exclusive: bool) -> Result<()> {
        let o = self.writable()?;
        if o.is_some() && exclusive {
            return Err(Error::Exists("obj".into()));
        }
        o.get_or_insert_with(Obj::default);
        Ok(())
    }
    fn stat(&self) -> Result<(u64, UTime)> {
        Ok((self.obj()?.data.len() as u64, UTime::ZERO))
    }
    fn read(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        let d = &self.obj()?.data;
        let start = (off as usize).min(d.len());
        let end = if len == 0 { d.len() } else { (start + len as usize).min(d.len()) };
        Ok(d[start..end].to_vec())
    }
    fn write_full(&mut self, data: &[u8]) -> Result<()> {
        self.writable()?.get_or_insert_with(Obj::default).data = data.to_vec();
        Ok(())
    }
    fn remove(&mut self) -> Result<()> {
        self.writable()?.take().map(drop).ok_or_else(enoent)
    }
    fn getxattr(&self, name: &str) -> Result<Vec<u8>> {
        self.obj()?.xattrs.get(name).cloned().ok_or_else(|| Error::NoData(name.into()))
    }
    fn getxattrs(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        Ok(self.obj()?.xattrs.clone())
    }
    fn setxattr(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.writable()?.get_or_insert_with(Obj::default).xattrs.insert(name.into(), value.to_vec());
        Ok(())
    }
    fn rmxattr(&mut self, name: &str) -> Result<()> {
        self.writable()?.as_mut().ok_or_else(enoent)?.xattrs.remove(name);
        Ok(())
    }
    fn omap_get_val(&self, key: &str) -> Result<Vec<u8>> {
        self.obj()?.omap.get(key).cloned().ok_or_else(|| Error::NotFound(key.into()))
    }
    fn omap_get_vals(&self, start_after: &str, max: u64) -> Result<(BTreeMap<String, Vec<u8>>, bool)> {
        let all: Vec<_> = self.obj()?.omap.iter().filter(|(k, _)| k.as_str() > start_after).collect();
        let more = all.len() as u64 > max;
        Ok((all.into_iter().take(max as usize).map(|(k, v)| (k.clone(), v.clone())).collect(), more))
    }
    fn omap_set_vals(&mut self, kv: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        self.writable()?.get_or_insert_with(Obj::default).omap.extend(kv.clone());
        Ok(())
    }
    fn omap_remove_keys(&mut self, keys: &[String]) -> Result<()> {
        let o = self.writable()?.as_mut().ok_or_else(enoent)?;
        for k in keys {
            o.omap.remove(k);
        }
        Ok(())
    }
    fn now(&self) -> UTime {
        self.now
    }
    fn caller_entity(&self) -> EntityName {
        self.entity
    }
    fn caller_addr(&self) -> EntityAddr {
        self.addr
    }
}

#[derive(Clone, Copy)]
struct Who {
    entity: EntityName,
    addr: EntityAddr,
}

fn client_at(gid: u64, addr: &str) -> Who {
    let mut addr: EntityAddr = addr.parse().unwrap();
    // Clients speak msgr2 nowadays; the class must still record a legacy address.
    addr.addr_type = EntityAddr::TYPE_MSGR2;
    Who { entity: EntityName::client(gid), addr }
}

fn a() -> Who {
    client_at(4269, "127.0.0.1:0/1675076772")
}

fn b() -> Who {
    client_at(4270, "127.0.0.1:0/2222")
}

/// One object on an OSD hosting the `lock` class.
struct Osd {
    obj: Option<Obj>,
    now: UTime,
    reg: ClassRegistry,
}

impl Osd {
    fn new() -> Self {
        let mut reg = ClassRegistry::new();
        rados_store::cls::lock::register(&mut reg);
        Osd { obj: None, now: UTime { sec: 1_000, nsec: 0 }, reg }
    }

    fn with_object() -> Self {
        let mut osd = Self::new();
        osd.obj = Some(Obj::default());
        osd
    }

    fn call(&mut self, who: Who, method: &str, input: &[u8]) -> Result<Vec<u8>> {
        let entry = self.reg.lookup("lock", method)?;
        if !entry.is_write() && self.obj.is_none() {
            return Err(enoent());
        }
        let mut ctx = Ctx {
            obj: self.obj.clone(),
            now: self.now,
            entity: who.entity,
            addr: who.addr,
            read_only: !entry.is_write(),
        };
        let out = (entry.func)(&mut ctx, input)?;
        self.obj = ctx.obj;
        Ok(out)
    }

    fn advance(&mut self, sec: u32, nsec: u32) {
        let total = u64::from(self.now.nsec) + u64::from(nsec);
        self.now = UTime {
            sec: self.now.sec + sec + (total / 1_000_000_000) as u32,
            nsec: (total % 1_000_000_000) as u32,
        };
    }

    fn lock(&mut self, who: Who, op: &LockOp) -> Result<()> {
        self.call(who, "lock", &client::encode_lock_op(op)).map(drop)
    }

    fn unlock(&mut self, who: Who, name: &str, cookie: &str) -> Result<()> {
        let op = UnlockOp { name: name.into(), cookie: cookie.into() };
        self.call(who, "unlock", &client::encode_unlock_op(&op)).map(drop)
    }

    fn break_lock(&mut self, who: Who, name: &str, locker: EntityName, cookie: &str) -> Result<()> {
        let op = BreakOp { name: name.into(), locker, cookie: cookie.into() };
        self.call(who, "break_lock", &client::encode_break_op(&op)).map(drop)
    }

    fn info(&mut self, who: Who, name: &str) -> Result<LockInfo> {
        let out =
            self.call(who, "get_info", &client::encode_get_info_op(&GetInfoOp { name: name.into() }))?;
        client::decode_get_info_reply(&out)
    }

    fn list(&mut self, who: Who) -> Result<Vec<String>> {
        let out = self.call(who, "list_locks", &[])?;
        client::decode_list_locks_reply(&out).map(|r| r.locks)
    }

    /// `assert_locked`, with the caller last to read like the spec table.
    fn assert_as(&mut self, name: &str, t: LockType, cookie: &str, tag: &str, who: Who) -> Result<()> {
        let op = AssertOp { name: name.into(), lock_type: t, cookie: cookie.into(), tag: tag.into() };
        self.call(who, "assert_locked", &client::encode_assert_op(&op)).map(drop)
    }

    fn set_cookie(
        &mut self,
        who: Who,
        name: &str,
        t: LockType,
        cookie: &str,
        tag: &str,
        new: &str,
    ) -> Result<()> {
        let op = SetCookieOp {
            name: name.into(),
            lock_type: t,
            cookie: cookie.into(),
            tag: tag.into(),
            new_cookie: new.into(),
        };
        self.call(who, "set_cookie", &client::encode_set_cookie_op(&op)).map(drop)
    }

    fn xattr(&self, name: &str) -> Option<Vec<u8>> {
        self.obj.as_ref().and_then(|o| o.xattrs.get(name).cloned())
    }
}

fn op(name: &str, t: LockType, cookie: &str, tag: &str) -> LockOp {
    LockOp { name: name.into(), lock_type: t, cookie: cookie.into(), tag: tag.into(), ..LockOp::default() }
}

fn excl(cookie: &str) -> LockOp {
    op("mylock", LockType::Exclusive, cookie, "")
}

fn shared(cookie: &str, tag: &str) -> LockOp {
    op("mylock", LockType::Shared, cookie, tag)
}

fn secs(sec: u32) -> UTime {
    UTime { sec, nsec: 0 }
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: Result<T>, code: i32) {
    match r {
        Err(e) => assert_eq!(e.errno(), code, "expected errno {code}, got {e:?}"),
        Ok(v) => panic!("expected errno {code}, got Ok({v:?})"),
    }
}

fn holders(info: &LockInfo) -> Vec<(EntityName, String)> {
    info.lockers.keys().map(|k| (k.entity, k.cookie.clone())).collect()
}

// ---------------------------------------------------------------------------------------------
// lock: validation (§6 row "lock", first rule; §10 item 59)

#[test]
fn s6_lock_invalid_type_empty_name_or_both_flags_is_einval() {
    let mut osd = Osd::new();
    assert_errno(osd.lock(a(), &op("l", LockType::None, "c", "")), errno::EINVAL);
    assert_errno(osd.lock(a(), &op("", LockType::Exclusive, "c", "")), errno::EINVAL);
    let both = LockOp { flags: LOCK_FLAG_MAY_RENEW | LOCK_FLAG_MUST_RENEW, ..excl("c") };
    assert_errno(osd.lock(a(), &both), errno::EINVAL);
    // None of these created the object.
    assert!(osd.obj.is_none());
}

#[test]
fn s6_lock_undecodable_input_or_unknown_type_byte_is_einval() {
    let mut osd = Osd::new();
    assert_errno(osd.call(a(), "lock", &[1, 1, 200, 0, 0, 0]), errno::EINVAL);
    assert_errno(osd.call(a(), "lock", b"garbage"), errno::EINVAL);
    // Type byte 4 is not a ClsLockType.
    let mut bytes = client::encode_lock_op(&excl("c"));
    bytes[6 + 4 + 6] = 4; // header, name length, "mylock", then the type byte
    assert_errno(osd.call(a(), "lock", &bytes), errno::EINVAL);
    assert!(osd.obj.is_none());
}

#[test]
fn s6_lock_validation_precedes_state_checks() {
    // Held by B with tag "t": A's invalid request is still EINVAL, not EBUSY.
    let mut osd = Osd::new();
    osd.lock(b(), &op("mylock", LockType::Exclusive, "cb", "t")).unwrap();
    assert_errno(osd.lock(a(), &op("mylock", LockType::None, "ca", "other")), errno::EINVAL);
    let both = LockOp { flags: 3, ..op("mylock", LockType::Exclusive, "ca", "other") };
    assert_errno(osd.lock(a(), &both), errno::EINVAL);
}

// ---------------------------------------------------------------------------------------------
// lock: state rules

#[test]
fn s6_lock_creates_missing_object_and_stores_xattr() {
    let mut osd = Osd::new();
    let req = LockOp { description: "A".into(), ..excl("cookieA") };
    osd.lock(a(), &req).unwrap();
    let raw = osd.xattr("lock.mylock").expect("lock state lives in xattr lock.<name>");
    let stored = LockInfo::decode(&mut Decoder::new(&raw)).unwrap();
    assert_eq!(stored.lock_type, LockType::Exclusive);
    assert_eq!(stored.tag, "");
    let (id, info) = stored.lockers.iter().next().unwrap();
    assert_eq!(id, &LockerId { entity: EntityName::client(4269), cookie: "cookieA".into() });
    assert_eq!(info.description, "A");
    assert_eq!(info.expiration, UTime::ZERO, "duration 0 never expires");
    // §10 item 61: stored as legacy, rendered ip:port/nonce.
    assert_eq!(info.addr.addr_type, EntityAddr::TYPE_LEGACY);
    assert_eq!(info.addr.to_string(), "127.0.0.1:0/1675076772");
    // The object holds nothing else.
    assert_eq!(osd.obj.as_ref().unwrap().data, Vec::<u8>::new());
}

#[test]
fn s6_lock_does_not_disturb_existing_object_contents() {
    let mut osd = Osd::with_object();
    osd.obj.as_mut().unwrap().data = b"header".to_vec();
    osd.obj.as_mut().unwrap().xattrs.insert("other".into(), b"x".to_vec());
    osd.lock(a(), &excl("c")).unwrap();
    let obj = osd.obj.as_ref().unwrap();
    assert_eq!(obj.data, b"header");
    assert_eq!(obj.xattrs.get("other").map(Vec::as_slice), Some(&b"x"[..]));
}

#[test]
fn real_ceph_s3_relock_by_same_entity_and_cookie_is_eexist() {
    // real-ceph-observed §3: A lock('cookieA') twice -> ObjectExists [errno 17].
    let mut osd = Osd::new();
    osd.lock(a(), &excl("cookieA")).unwrap();
    assert_errno(osd.lock(a(), &excl("cookieA")), errno::EEXIST);
    // The same for a shared lock.
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c", "")).unwrap();
    assert_errno(osd.lock(a(), &shared("c", "")), errno::EEXIST);
}

#[test]
fn real_ceph_s3_exclusive_lock_held_by_other_is_ebusy() {
    // real-ceph-observed §3: B lock('cookieB') while A holds -> ObjectBusy [errno 16].
    let mut osd = Osd::new();
    osd.lock(a(), &excl("cookieA")).unwrap();
    assert_errno(osd.lock(b(), &excl("cookieB")), errno::EBUSY);
    // Even with A's cookie: a locker is (entity, cookie).
    assert_errno(osd.lock(b(), &excl("cookieA")), errno::EBUSY);
    // And a second handle of the same client (same entity, other cookie) is busy too (§6).
    assert_errno(osd.lock(a(), &excl("cookieA2")), errno::EBUSY);
}

#[test]
fn s6_may_renew_replaces_own_entry() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(10), description: "first".into(), ..excl("c") }).unwrap();
    osd.advance(5, 0);
    let renew =
        LockOp { duration: secs(10), description: "second".into(), flags: LOCK_FLAG_MAY_RENEW, ..excl("c") };
    osd.lock(a(), &renew).unwrap();
    let info = osd.info(a(), "mylock").unwrap();
    let entry = info.lockers.values().next().unwrap();
    assert_eq!(entry.expiration, secs(1_015), "renewed from the new now");
    assert_eq!(entry.description, "second");
    assert_eq!(info.lockers.len(), 1);
    // MAY_RENEW without holding is a plain lock.
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { flags: LOCK_FLAG_MAY_RENEW, ..excl("c") }).unwrap();
    // ... and does not let anyone else in.
    assert_errno(osd.lock(b(), &LockOp { flags: LOCK_FLAG_MAY_RENEW, ..excl("d") }), errno::EBUSY);
}

#[test]
fn s6_must_renew_requires_holding() {
    let mut osd = Osd::new();
    let must = LockOp { flags: LOCK_FLAG_MUST_RENEW, duration: secs(30), ..excl("c") };
    // Nobody holds it (object missing even): ENOENT, and nothing is created.
    assert_errno(osd.lock(a(), &must), errno::ENOENT);
    assert!(osd.obj.is_none());
    osd.lock(a(), &excl("c")).unwrap();
    // Holder renews (no EEXIST with MUST_RENEW).
    osd.lock(a(), &must).unwrap();
    assert_eq!(osd.info(a(), "mylock").unwrap().lockers.values().next().unwrap().expiration, secs(1_030));
    // Someone else with MUST_RENEW: ENOENT, not EBUSY.
    assert_errno(osd.lock(b(), &LockOp { flags: LOCK_FLAG_MUST_RENEW, ..excl("c") }), errno::ENOENT);
    // After expiry the holder itself can no longer renew.
    osd.advance(31, 0);
    assert_errno(osd.lock(a(), &must), errno::ENOENT);
}

#[test]
fn s6_tag_mismatch_while_held_is_ebusy_not_einval() {
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c1", "t1")).unwrap();
    assert_errno(osd.lock(b(), &shared("c2", "t2")), errno::EBUSY);
    // Checked before the caller's own entry: the holder cannot renew under a new tag.
    let renew = LockOp { flags: LOCK_FLAG_MAY_RENEW, ..shared("c1", "t2") };
    assert_errno(osd.lock(a(), &renew), errno::EBUSY);
    // Same tag is fine.
    osd.lock(b(), &shared("c2", "t1")).unwrap();
    assert_eq!(osd.info(a(), "mylock").unwrap().lockers.len(), 2);
}

#[test]
fn s6_tag_is_free_once_no_lockers_remain() {
    let mut osd = Osd::new();
    osd.lock(a(), &op("mylock", LockType::Exclusive, "c", "internal")).unwrap();
    osd.unlock(a(), "mylock", "c").unwrap();
    osd.lock(b(), &op("mylock", LockType::Shared, "d", "other")).unwrap();
    let info = osd.info(a(), "mylock").unwrap();
    assert_eq!((info.lock_type, info.tag.as_str()), (LockType::Shared, "other"));
}

#[test]
fn s6_shared_and_exclusive_do_not_mix() {
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c1", "")).unwrap();
    osd.lock(b(), &shared("c2", "")).unwrap();
    osd.lock(a(), &shared("c3", "")).unwrap();
    assert_errno(osd.lock(b(), &excl("c4")), errno::EBUSY);
    assert_errno(osd.lock(b(), &op("mylock", LockType::ExclusiveEphemeral, "c4", "")), errno::EBUSY);
    let info = osd.info(a(), "mylock").unwrap();
    assert_eq!(info.lock_type, LockType::Shared);
    // Listed in Ceph's order: by entity, then cookie.
    assert_eq!(
        holders(&info),
        vec![
            (EntityName::client(4269), "c1".to_owned()),
            (EntityName::client(4269), "c3".to_owned()),
            (EntityName::client(4270), "c2".to_owned())
        ]
    );

    let mut osd = Osd::new();
    osd.lock(a(), &excl("c1")).unwrap();
    assert_errno(osd.lock(b(), &shared("c2", "")), errno::EBUSY);
}

#[test]
fn s6_sole_holder_may_switch_type_by_renewing() {
    // The holder's own entry is dropped before the type check, so with nobody else left the
    // renewal may change the type.
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c", "")).unwrap();
    osd.lock(a(), &LockOp { flags: LOCK_FLAG_MAY_RENEW, ..excl("c") }).unwrap();
    assert_eq!(osd.info(a(), "mylock").unwrap().lock_type, LockType::Exclusive);
    // With another shared holder present, it may not.
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c", "")).unwrap();
    osd.lock(b(), &shared("d", "")).unwrap();
    assert_errno(osd.lock(a(), &LockOp { flags: LOCK_FLAG_MAY_RENEW, ..excl("c") }), errno::EBUSY);
}

#[test]
fn s6_expired_lockers_are_dropped_on_read() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(2), ..excl("cookieA") }).unwrap();
    assert_eq!(osd.info(a(), "mylock").unwrap().lockers.values().next().unwrap().expiration, secs(1_002));
    // Exactly at the expiration it still holds ("expiration < now" expires).
    osd.advance(2, 0);
    assert_errno(osd.lock(b(), &excl("cookieB")), errno::EBUSY);
    // One nanosecond later it is gone (real-ceph-observed §5: A got the lock after B's lease).
    osd.advance(0, 1);
    let info = osd.info(a(), "mylock").unwrap();
    assert!(info.lockers.is_empty());
    assert_eq!(info.lock_type, LockType::Exclusive, "the stored type survives its lockers");
    osd.lock(b(), &excl("cookieB")).unwrap();
    // real-ceph-observed §5: "B unlock (expired) -> ENOENT" (here: A's expired entry).
    assert_errno(osd.unlock(a(), "mylock", "cookieA"), errno::ENOENT);
}

#[test]
fn s6_duration_adds_seconds_and_nanoseconds() {
    let mut osd = Osd::new();
    osd.now = UTime { sec: 1_000, nsec: 700_000_000 };
    osd.lock(a(), &LockOp { duration: UTime { sec: 1, nsec: 500_000_000 }, ..excl("c") }).unwrap();
    let info = osd.info(a(), "mylock").unwrap();
    assert_eq!(info.lockers.values().next().unwrap().expiration, UTime { sec: 1_002, nsec: 200_000_000 });
}

#[test]
fn s6_expired_holder_does_not_block_and_is_replaced() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(1), ..shared("c1", "t") }).unwrap();
    osd.lock(b(), &shared("c2", "t")).unwrap();
    osd.advance(5, 0);
    // Only B (no expiry) remains, so A's exclusive is still busy, but B's is not.
    assert_errno(osd.lock(a(), &op("mylock", LockType::Exclusive, "c3", "t")), errno::EBUSY);
    osd.lock(b(), &LockOp { flags: LOCK_FLAG_MAY_RENEW, ..op("mylock", LockType::Exclusive, "c2", "t") })
        .unwrap();
    assert_eq!(holders(&osd.info(a(), "mylock").unwrap()), vec![(EntityName::client(4270), "c2".to_owned())]);
}

// ---------------------------------------------------------------------------------------------
// unlock / break_lock

#[test]
fn s6_unlock_missing_object_or_locker_is_enoent() {
    let mut osd = Osd::new();
    assert_errno(osd.unlock(a(), "mylock", "c"), errno::ENOENT);
    assert!(osd.obj.is_none(), "unlock does not create the object");
    osd.lock(a(), &excl("cookieA")).unwrap();
    assert_errno(osd.unlock(a(), "mylock", "other"), errno::ENOENT);
    assert_errno(osd.unlock(a(), "otherlock", "cookieA"), errno::ENOENT);
    // real-ceph-observed §3: B unlock('cookieA') -> ObjectNotFound [errno 2].
    assert_errno(osd.unlock(b(), "mylock", "cookieA"), errno::ENOENT);
    osd.unlock(a(), "mylock", "cookieA").unwrap();
    assert_errno(osd.unlock(a(), "mylock", "cookieA"), errno::ENOENT);
}

#[test]
fn s6_unlock_keeps_the_empty_lock_record() {
    let mut osd = Osd::new();
    osd.lock(a(), &op("mylock", LockType::Exclusive, "c", "internal")).unwrap();
    osd.unlock(a(), "mylock", "c").unwrap();
    assert!(osd.obj.is_some(), "a non-ephemeral unlock keeps the object");
    let info = osd.info(a(), "mylock").unwrap();
    assert!(info.lockers.is_empty());
    assert_eq!((info.lock_type, info.tag.as_str()), (LockType::Exclusive, "internal"));
    assert_eq!(osd.list(a()).unwrap(), vec!["mylock".to_owned()]);
}

#[test]
fn s6_break_lock_needs_the_exact_locker() {
    let mut osd = Osd::new();
    assert_errno(osd.break_lock(b(), "mylock", a().entity, "c1"), errno::ENOENT);
    osd.lock(a(), &shared("c1", "")).unwrap();
    osd.lock(b(), &shared("c2", "")).unwrap();
    // Unknown locker, wrong cookie, wrong lock name.
    assert_errno(osd.break_lock(b(), "mylock", EntityName::client(9999), "c1"), errno::ENOENT);
    assert_errno(osd.break_lock(b(), "mylock", a().entity, "c2"), errno::ENOENT);
    assert_errno(osd.break_lock(b(), "nolock", a().entity, "c1"), errno::ENOENT);
    // Anyone may break anyone's entry; the others stay.
    osd.break_lock(b(), "mylock", a().entity, "c1").unwrap();
    assert_eq!(holders(&osd.info(a(), "mylock").unwrap()), vec![(EntityName::client(4270), "c2".to_owned())]);
    assert_errno(osd.break_lock(b(), "mylock", a().entity, "c1"), errno::ENOENT);
    // A client may also break its own entry.
    osd.break_lock(b(), "mylock", b().entity, "c2").unwrap();
    assert!(osd.info(a(), "mylock").unwrap().lockers.is_empty());
}

// ---------------------------------------------------------------------------------------------
// get_info / list_locks

#[test]
fn s6_get_info_of_untaken_lock_is_empty_none_and_no_tag() {
    let mut osd = Osd::with_object();
    assert_eq!(osd.info(a(), "rbd_lock").unwrap(), LockInfo::default());
    let mut osd = Osd::new();
    assert_errno(osd.info(a(), "rbd_lock"), errno::ENOENT);
    assert_errno(osd.call(a(), "get_info", &[0xff]), errno::ENOENT); // read on a missing object
    let mut osd = Osd::with_object();
    assert_errno(osd.call(a(), "get_info", &[0xff]), errno::EINVAL);
}

#[test]
fn s6_undecodable_lock_state_is_eio() {
    let mut osd = Osd::with_object();
    osd.obj.as_mut().unwrap().xattrs.insert("lock.mylock".into(), vec![1, 1, 9]);
    assert_errno(osd.info(a(), "mylock"), errno::EIO);
    assert_errno(osd.lock(a(), &excl("c")), errno::EIO);
    assert_errno(osd.unlock(a(), "mylock", "c"), errno::EIO);
}

#[test]
fn s6_list_locks_lists_lock_xattrs_only() {
    let mut osd = Osd::new();
    assert_errno(osd.list(a()), errno::ENOENT);
    let mut osd = Osd::with_object();
    assert_eq!(osd.list(a()).unwrap(), Vec::<String>::new());
    osd.obj.as_mut().unwrap().xattrs.insert("user.thing".into(), vec![]);
    osd.obj.as_mut().unwrap().xattrs.insert("lockx".into(), vec![]);
    osd.lock(a(), &op("zeta", LockType::Exclusive, "c", "")).unwrap();
    osd.lock(a(), &op("alpha", LockType::Shared, "c", "")).unwrap();
    osd.lock(a(), &op("rbd_lock", LockType::Exclusive, "c", "internal")).unwrap();
    // Input is ignored, output sorted.
    let out = osd.call(a(), "list_locks", b"anything").unwrap();
    let reply = client::decode_list_locks_reply(&out).unwrap();
    assert_eq!(reply, ListLocksReply { locks: vec!["alpha".into(), "rbd_lock".into(), "zeta".into()] });
}

// ---------------------------------------------------------------------------------------------
// assert_locked (§1.3, §6)

#[test]
fn s1_3_assert_locked_every_mismatch_is_ebusy() {
    let mut osd = Osd::new();
    let t = LockType::Exclusive;
    assert_errno(osd.assert_as("rbd_lock", t, "auto 1", "internal", a()), errno::ENOENT);
    osd.obj = Some(Obj::default());
    assert_errno(osd.assert_as("rbd_lock", t, "auto 1", "internal", a()), errno::EBUSY); // no lockers
    osd.lock(a(), &op("rbd_lock", t, "auto 1", "internal")).unwrap();
    osd.assert_as("rbd_lock", t, "auto 1", "internal", a()).unwrap();
    assert_errno(osd.assert_as("rbd_lock", LockType::Shared, "auto 1", "internal", a()), errno::EBUSY);
    assert_errno(osd.assert_as("rbd_lock", t, "auto 1", "", a()), errno::EBUSY);
    assert_errno(osd.assert_as("rbd_lock", t, "auto 2", "internal", a()), errno::EBUSY);
    assert_errno(osd.assert_as("rbd_lock", t, "auto 1", "internal", b()), errno::EBUSY);
    assert_errno(osd.assert_as("other", t, "auto 1", "internal", a()), errno::EBUSY);
    assert_errno(osd.assert_as("rbd_lock", LockType::None, "auto 1", "internal", a()), errno::EINVAL);
    assert_errno(osd.assert_as("", t, "auto 1", "internal", a()), errno::EINVAL);
}

#[test]
fn s6_assert_locked_after_expiry_is_ebusy() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(3), ..excl("c") }).unwrap();
    osd.assert_as("mylock", LockType::Exclusive, "c", "", a()).unwrap();
    osd.advance(4, 0);
    assert_errno(osd.assert_as("mylock", LockType::Exclusive, "c", "", a()), errno::EBUSY);
}

// ---------------------------------------------------------------------------------------------
// set_cookie (§1.6.5, §6)

#[test]
fn s6_set_cookie_validation_and_busy_rules() {
    let t = LockType::Exclusive;
    let mut osd = Osd::new();
    assert_errno(osd.set_cookie(a(), "rbd_lock", t, "auto 1", "internal", "auto 2"), errno::ENOENT);
    osd.obj = Some(Obj::default());
    assert_errno(
        osd.set_cookie(a(), "rbd_lock", LockType::None, "auto 1", "internal", "auto 2"),
        errno::EINVAL,
    );
    assert_errno(osd.set_cookie(a(), "", t, "auto 1", "internal", "auto 2"), errno::EINVAL);
    assert_errno(osd.set_cookie(a(), "rbd_lock", t, "auto 1", "internal", "auto 2"), errno::EBUSY); // not locked
    osd.lock(a(), &op("rbd_lock", t, "auto 1", "internal")).unwrap();
    assert_errno(
        osd.set_cookie(a(), "rbd_lock", LockType::Shared, "auto 1", "internal", "auto 2"),
        errno::EBUSY,
    );
    assert_errno(osd.set_cookie(a(), "rbd_lock", t, "auto 1", "external", "auto 2"), errno::EBUSY);
    assert_errno(osd.set_cookie(a(), "rbd_lock", t, "auto 9", "internal", "auto 2"), errno::EBUSY);
    assert_errno(osd.set_cookie(b(), "rbd_lock", t, "auto 1", "internal", "auto 2"), errno::EBUSY);
    // new == old is "cookie in use".
    assert_errno(osd.set_cookie(a(), "rbd_lock", t, "auto 1", "internal", "auto 1"), errno::EBUSY);
}

#[test]
fn s6_set_cookie_rekeys_and_keeps_expiration_and_address() {
    let t = LockType::Exclusive;
    let mut osd = Osd::new();
    osd.lock(
        a(),
        &LockOp { duration: secs(60), description: "d".into(), ..op("rbd_lock", t, "auto 1", "internal") },
    )
    .unwrap();
    let before = osd.info(a(), "rbd_lock").unwrap().lockers.into_values().next().unwrap();
    osd.advance(10, 0);
    osd.set_cookie(a(), "rbd_lock", t, "auto 1", "internal", "auto 2").unwrap();
    let info = osd.info(a(), "rbd_lock").unwrap();
    assert_eq!(holders(&info), vec![(EntityName::client(4269), "auto 2".to_owned())]);
    assert_eq!(info.lockers.values().next(), Some(&before), "expiration, address, description kept");
    osd.assert_as("rbd_lock", t, "auto 2", "internal", a()).unwrap();
    assert_errno(osd.assert_as("rbd_lock", t, "auto 1", "internal", a()), errno::EBUSY);
}

#[test]
fn s6_set_cookie_collision_with_own_other_cookie_is_ebusy() {
    let t = LockType::Shared;
    let mut osd = Osd::new();
    osd.lock(a(), &shared("c1", "")).unwrap();
    osd.lock(a(), &shared("c2", "")).unwrap();
    assert_errno(osd.set_cookie(a(), "mylock", t, "c1", "", "c2"), errno::EBUSY);
    // Another entity's use of the same cookie string is no collision.
    osd.lock(b(), &shared("c3", "")).unwrap();
    osd.set_cookie(a(), "mylock", t, "c1", "", "c3").unwrap();
    assert_eq!(osd.info(a(), "mylock").unwrap().lockers.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// exclusive-ephemeral (§6: "the object is removed when the last locker unlocks")

fn eph(cookie: &str) -> LockOp {
    op("mylock", LockType::ExclusiveEphemeral, cookie, "")
}

#[test]
fn s6_ephemeral_unlock_removes_the_object() {
    let mut osd = Osd::new();
    osd.lock(a(), &eph("c")).unwrap();
    assert!(osd.obj.is_some());
    assert_errno(osd.lock(b(), &eph("d")), errno::EBUSY);
    assert_errno(osd.lock(b(), &shared("d", "")), errno::EBUSY);
    osd.assert_as("mylock", LockType::ExclusiveEphemeral, "c", "", a()).unwrap();
    assert_errno(osd.assert_as("mylock", LockType::Exclusive, "c", "", a()), errno::EBUSY);
    osd.unlock(a(), "mylock", "c").unwrap();
    assert!(osd.obj.is_none(), "last unlock of an ephemeral lock deletes the object");
}

#[test]
fn s6_ephemeral_break_removes_the_object() {
    let mut osd = Osd::new();
    osd.lock(a(), &eph("c")).unwrap();
    osd.break_lock(b(), "mylock", a().entity, "c").unwrap();
    assert!(osd.obj.is_none());
}

#[test]
fn s6_expired_ephemeral_lock_is_cleaned_by_a_successful_lock() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(5), ..eph("c") }).unwrap();
    osd.obj.as_mut().unwrap().data = b"scratch".to_vec();
    osd.advance(6, 0);
    // A failing write method drops its whole effect, including the clean-up.
    assert_errno(osd.unlock(a(), "mylock", "c"), errno::ENOENT);
    assert_errno(osd.break_lock(b(), "mylock", a().entity, "c"), errno::ENOENT);
    assert_eq!(osd.obj.as_ref().map(|o| o.data.clone()), Some(b"scratch".to_vec()));
    // A read-only method may not delete: the OSD fails it with EIO.
    assert_errno(osd.info(a(), "mylock"), errno::EIO);
    assert_errno(osd.assert_as("mylock", LockType::ExclusiveEphemeral, "c", "", a()), errno::EIO);
    // A successful lock removes the old object and re-creates it holding only the new lock.
    osd.lock(b(), &excl("d")).unwrap();
    let obj = osd.obj.as_ref().unwrap();
    assert!(obj.data.is_empty(), "the expired ephemeral object was deleted first");
    assert_eq!(obj.xattrs.keys().collect::<Vec<_>>(), vec!["lock.mylock"]);
    let info = osd.info(a(), "mylock").unwrap();
    assert_eq!(
        (info.lock_type, holders(&info)),
        (LockType::Exclusive, vec![(EntityName::client(4270), "d".to_owned())])
    );
}

// ---------------------------------------------------------------------------------------------
// Atomicity and golden output

#[test]
fn failed_methods_leave_the_object_untouched() {
    let mut osd = Osd::new();
    osd.lock(a(), &LockOp { duration: secs(100), ..shared("c1", "t") }).unwrap();
    let snapshot = osd.obj.clone();
    type Call = Box<dyn Fn(&mut Osd) -> Result<()>>;
    let failing: Vec<Call> = vec![
        Box::new(|o| o.lock(a(), &shared("c1", "t"))),
        Box::new(|o| o.lock(b(), &shared("c2", "other"))),
        Box::new(|o| o.lock(b(), &excl("c2"))),
        Box::new(|o| o.unlock(b(), "mylock", "c1")),
        Box::new(|o| o.break_lock(b(), "mylock", b().entity, "c1")),
        Box::new(|o| o.set_cookie(a(), "mylock", LockType::Shared, "c1", "t", "c1")),
        Box::new(|o| o.assert_as("mylock", LockType::Exclusive, "c1", "t", a())),
    ];
    for f in failing {
        assert!(f(&mut osd).is_err());
        assert_eq!(osd.obj, snapshot);
    }
}

#[test]
fn real_ceph_s3_get_info_golden_output() {
    // `rados lock info rbd_header.104897c58821 rbd_lock` (real-ceph-observed §3):
    // {"name":"rbd_lock","type":"exclusive","tag":"internal","lockers":[{"name":"client.4196",
    //  "cookie":"auto 139669987729456","description":"","expiration":"0.000000",
    //  "addr":"127.0.0.1:0/969119657"}]}
    let librbd = client_at(4196, "127.0.0.1:0/969119657");
    let mut osd = Osd::with_object();
    // §0.1 / §1.6.2: librbd locks EXCLUSIVE, tag "internal", description "", duration 0, flags 0.
    osd.lock(librbd, &op("rbd_lock", LockType::Exclusive, "auto 139669987729456", "internal")).unwrap();
    let out = osd
        .call(a(), "get_info", &client::encode_get_info_op(&GetInfoOp { name: "rbd_lock".into() }))
        .unwrap();
    let expected: Vec<u8> = [
        &[0x01, 0x01, 0x6d, 0, 0, 0][..], // cls_lock_get_info_reply v1 compat 1, body 109 bytes
        &[0x01, 0, 0, 0],                 // lockers: 1 entry
        // locker_id_t: v1 compat 1, body 33 = 9 (entity) + 4 + 20 (cookie)
        &[0x01, 0x01, 0x21, 0, 0, 0],
        &[0x08, 0x64, 0x10, 0, 0, 0, 0, 0, 0], // client.4196 (0x1064)
        &[0x14, 0, 0, 0],                      // cookie length 20
        b"auto 139669987729456",
        // locker_info_t: v1 compat 1, body 47 = 8 (expiration) + 35 (address) + 4 (description)
        &[0x01, 0x01, 0x2f, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0, 0],    // expiration 0.000000 (never)
        &[0x01],                      // entity_addr_t modern marker
        &[0x01, 0x01, 0x1c, 0, 0, 0], // v1 compat 1, body 28
        &[0x01, 0, 0, 0],             // TYPE_LEGACY (the class forces it)
        &[0xa9, 0x97, 0xc3, 0x39],    // nonce 969119657 = 0x39c397a9
        &[0x10, 0, 0, 0],             // sockaddr_in length 16
        &[0x02, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00, 0x01], // AF_INET (LE), port 0, 127.0.0.1
        &[0, 0, 0, 0, 0, 0, 0, 0],    // sin_zero
        &[0, 0, 0, 0],                // description ""
        &[0x01],                      // type exclusive
        &[0x08, 0, 0, 0],             // tag length 8
        b"internal",
    ]
    .concat();
    assert_eq!(out, expected);
    let info = client::decode_get_info_reply(&out).unwrap();
    let (id, l) = info.lockers.iter().next().unwrap();
    assert_eq!(id.entity.to_string(), "client.4196");
    assert_eq!(l.addr.to_string(), "127.0.0.1:0/969119657");
    assert_eq!(l.expiration.to_string(), "0.000000");
    assert_eq!((info.lock_type.as_str(), info.tag.as_str()), ("exclusive", "internal"));
    // The xattr holds the same encoding (lock_info_t and the reply are the same struct).
    assert_eq!(osd.xattr("lock.rbd_lock"), Some(expected));
}

#[test]
fn s4_8_methods_accept_the_legacy_unversioned_input_form() {
    // struct_v 0: no compat byte, no length (DECODE_START_LEGACY_COMPAT_LEN(1, 1, 1)).
    let mut legacy = Encoder::new();
    legacy.u8(0).string("mylock").u8(LockType::Exclusive.wire()).string("c").string("").string("");
    legacy.utime(UTime::ZERO).u8(0);
    let mut osd = Osd::new();
    osd.call(a(), "lock", legacy.as_slice()).unwrap();
    let mut unlock = Encoder::new();
    unlock.u8(0).string("mylock").string("c");
    osd.call(a(), "unlock", unlock.as_slice()).unwrap();
    // Newer encoders' extra fields are skipped.
    let mut newer = Encoder::new();
    newer.versioned(2, 1, |e| {
        e.string("mylock").u8(1).string("c").string("").string("").utime(UTime::ZERO).u8(0).u64(0xdead);
    });
    osd.call(a(), "lock", newer.as_slice()).unwrap();
    // A compat version above 1 is refused.
    let mut future = Encoder::new();
    future.versioned(2, 2, |e| {
        excl("c").encode(e);
    });
    assert_errno(osd.call(b(), "lock", future.as_slice()), errno::EINVAL);
}

#[test]
fn unknown_method_is_eopnotsupp() {
    let mut osd = Osd::new();
    assert_errno(osd.call(a(), "lock_all_the_things", &[]), errno::EOPNOTSUPP);
}

// ---------------------------------------------------------------------------------------------
// Properties: random call sequences keep the lock's invariants; no input panics a method.

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Lock { who: usize, cookie: usize, t: LockType, tag: usize, lease: bool, flags: u8 },
        Unlock { who: usize, cookie: usize },
        Break { who: usize, victim: usize, cookie: usize },
        SetCookie { who: usize, cookie: usize, new: usize, t: LockType, tag: usize },
        Advance { sec: u32 },
    }

    const COOKIES: [&str; 3] = ["c0", "c1", "c2"];
    const TAGS: [&str; 2] = ["", "internal"];

    fn who(i: usize) -> Who {
        client_at(100 + i as u64, &format!("10.0.0.{}:0/{}", i + 1, 7 + i))
    }

    fn arb_type() -> impl Strategy<Value = LockType> {
        (0u8..=3).prop_map(|b| LockType::from_wire(b).unwrap())
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3usize, 0..3usize, arb_type(), 0..2usize, any::<bool>(), 0u8..4)
                .prop_map(|(who, cookie, t, tag, lease, flags)| Step::Lock { who, cookie, t, tag, lease, flags }),
            2 => (0..3usize, 0..3usize).prop_map(|(who, cookie)| Step::Unlock { who, cookie }),
            1 => (0..3usize, 0..3usize, 0..3usize).prop_map(|(who, victim, cookie)| Step::Break { who, victim, cookie }),
            1 => (0..3usize, 0..3usize, 0..3usize, arb_type(), 0..2usize)
                .prop_map(|(who, cookie, new, t, tag)| Step::SetCookie { who, cookie, new, t, tag }),
            1 => (0u32..8).prop_map(|sec| Step::Advance { sec }),
        ]
    }

    fn apply(osd: &mut Osd, step: &Step) -> Result<()> {
        match *step {
            Step::Lock { who: w, cookie, t, tag, lease, flags } => {
                let duration = if lease { secs(5) } else { UTime::ZERO };
                osd.lock(who(w), &LockOp { duration, flags, ..op("l", t, COOKIES[cookie], TAGS[tag]) })
            }
            Step::Unlock { who: w, cookie } => osd.unlock(who(w), "l", COOKIES[cookie]),
            Step::Break { who: w, victim, cookie } => {
                osd.break_lock(who(w), "l", who(victim).entity, COOKIES[cookie])
            }
            Step::SetCookie { who: w, cookie, new, t, tag } => {
                osd.set_cookie(who(w), "l", t, COOKIES[cookie], TAGS[tag], COOKIES[new])
            }
            Step::Advance { sec } => {
                osd.advance(sec, 0);
                Ok(())
            }
        }
    }

    /// The lock's state as a fresh reader sees it, or None when it cannot be read without
    /// writing (object gone, or an expired ephemeral lock awaiting clean-up).
    fn observe(osd: &mut Osd) -> Option<LockInfo> {
        osd.info(who(0), "l").ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn prop_random_sequences_keep_lock_invariants(steps in proptest::collection::vec(arb_step(), 1..40)) {
            let mut osd = Osd::new();
            for step in &steps {
                let before = observe(&mut osd);
                let r = apply(&mut osd, step);
                let Some(info) = observe(&mut osd) else { continue };
                // An exclusive lock never has two holders.
                if info.lock_type.is_exclusive() {
                    prop_assert!(info.lockers.len() <= 1, "{info:?}");
                }
                // Every listed holder passes assert_locked with the lock's type and tag, and
                // every lease is in the future.
                for (id, l) in &info.lockers {
                    let w = (0..3).map(who).find(|w| w.entity == id.entity).unwrap();
                    prop_assert!(osd.assert_as("l", info.lock_type, &id.cookie, &info.tag, w).is_ok());
                    prop_assert!(l.expiration.is_zero() || l.expiration >= osd.now);
                    prop_assert_eq!(l.addr.addr_type, EntityAddr::TYPE_LEGACY);
                    prop_assert_eq!(l.addr, w.addr.as_legacy());
                }
                // Successful calls have their documented effect.
                if r.is_ok() {
                    match *step {
                        Step::Lock { who: w, cookie, t, tag, .. } => {
                            prop_assert_eq!(info.lock_type, t);
                            prop_assert_eq!(info.tag.as_str(), TAGS[tag]);
                            let id = LockerId { entity: who(w).entity, cookie: COOKIES[cookie].into() };
                            prop_assert!(info.lockers.contains_key(&id));
                        }
                        Step::Unlock { who: w, cookie } | Step::Break { victim: w, cookie, .. } => {
                            let id = LockerId { entity: who(w).entity, cookie: COOKIES[cookie].into() };
                            prop_assert!(!info.lockers.contains_key(&id));
                        }
                        Step::SetCookie { who: w, cookie, new, .. } => {
                            let old = LockerId { entity: who(w).entity, cookie: COOKIES[cookie].into() };
                            let new = LockerId { entity: who(w).entity, cookie: COOKIES[new].into() };
                            prop_assert!(!info.lockers.contains_key(&old));
                            prop_assert_eq!(
                                info.lockers.get(&new),
                                before.as_ref().and_then(|b| b.lockers.get(&old))
                            );
                        }
                        Step::Advance { .. } => {}
                    }
                }
            }
        }

        #[test]
        fn prop_arbitrary_input_never_panics_a_method(
            bytes in proptest::collection::vec(any::<u8>(), 0..160),
            method in proptest::sample::select(vec![
                "lock", "unlock", "break_lock", "get_info", "list_locks", "assert_locked", "set_cookie",
            ]),
            garbage_state in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let mut osd = Osd::new();
            osd.lock(who(0), &op("l", LockType::Shared, "c0", "t")).unwrap();
            let garbage = garbage_state.is_some();
            if let Some(state) = garbage_state {
                osd.obj.as_mut().unwrap().xattrs.insert("lock.l".into(), state);
            }
            let r = osd.call(who(1), method, &bytes);
            // Whatever a method stores decodes again.
            if r.is_ok()
                && !garbage
                && let Some(raw) = osd.xattr("lock.l")
            {
                prop_assert!(LockInfo::decode(&mut Decoder::new(&raw)).is_ok());
            }
        }
    }
}
