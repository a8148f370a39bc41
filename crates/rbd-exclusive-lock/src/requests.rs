//! ManagedLock's sub-requests over RADOS (rbd §1.6): GetLocker, Acquire, Break, Release and
//! Reacquire, each one or more cls_lock / watch / monitor round trips.
//!
//! Every branch is decided by `lock_sm::managed_lock` (`get_locker`, `acquire_after_*`,
//! `owner_is_alive`, `break_after_*`, ...); this module only performs the I/O those decisions
//! ask for and feeds the results back. Results are librbd `r` values for the same reason as in
//! `lock-sm`: the managed lock branches on exact errnos.
//!
//! They are public because the image layer needs them outside the state machine too:
//! `rbd lock ls` is a GetLocker, `rbd lock break` a forced Break (rbd §2.12).

use std::time::Duration;

use lock_sm::managed_lock::{
    self as ml, AcquireAfterBreak, AcquireAfterGetLocker, AcquireAfterLock, BreakAfterGetLocker, ClsLockType,
    LOCK_NAME, LOCK_TAG, Locker, LockerEntry, errno,
};
use rados_store::cls_lock_client::{self as cls, LockType};
use rados_store::{EntityAddr, EntityName, EntityType, IoCtx};

use crate::error::{store_r, store_result};

/// The blocklist settings a break uses (rbd §0.2, §1.6.3 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakConfig {
    /// `rbd_blocklist_on_break_lock`.
    pub blocklist_on_break_lock: bool,
    /// `rbd_blocklist_expire_seconds` (zero = the monitor default).
    pub blocklist_expire: Duration,
}

/// The lock-sm lock type for a cls_lock type. Only EXCLUSIVE satisfies the exclusive manager;
/// an EXCLUSIVE_EPHEMERAL (or typeless) lock is "incompatible" just as a SHARED one is, so it is
/// reported as SHARED and GetLocker answers -EBUSY for it (rbd §1.6.1 step 5).
fn sm_lock_type(t: LockType) -> ClsLockType {
    match t {
        LockType::Exclusive => ClsLockType::Exclusive,
        LockType::Shared | LockType::ExclusiveEphemeral | LockType::None => ClsLockType::Shared,
    }
}

/// Parses an entity name such as `client.4176` (the form GetLocker stores in [`Locker`]).
pub fn parse_entity(s: &str) -> Option<EntityName> {
    let (kind, num) = s.split_once('.')?;
    let kind = [EntityType::Mon, EntityType::Mds, EntityType::Osd, EntityType::Client, EntityType::Mgr]
        .into_iter()
        .find(|k| k.prefix() == kind)?;
    Some(EntityName { kind, num: num.parse().ok()? })
}

/// GetLocker (rbd §1.6.1): reads `lock.get_info("rbd_lock")` on the header and classifies it.
/// -ENOENT: no locker (or no header); -EBUSY: locked by something other than librbd's managed
/// lock (another tag, type or cookie format).
pub async fn get_locker(ioctx: &IoCtx, oid: &str) -> Result<Locker, i32> {
    let info = cls::get_lock_info(ioctx, oid, LOCK_NAME).await.map_err(|e| store_r(&e))?;
    let owned: Vec<(String, String, String)> = info
        .lockers
        .iter()
        .map(|(id, li)| (id.entity.to_string(), id.cookie.clone(), li.addr.to_string()))
        .collect();
    let entries: Vec<LockerEntry<'_>> =
        owned.iter().map(|(entity, cookie, address)| LockerEntry { entity, cookie, address }).collect();
    ml::get_locker(&entries, &info.tag, sm_lock_type(info.lock_type), true)
}

/// cls `lock.lock` as librbd's AcquireRequest issues it: EXCLUSIVE, tag `internal`, empty
/// description, no expiry, no flags (rbd §1.6.2 step 2, §10 fact 7).
async fn cls_lock(ioctx: &IoCtx, oid: &str, cookie: &str) -> i32 {
    let res =
        cls::lock(ioctx, oid, LOCK_NAME, LockType::Exclusive, cookie, LOCK_TAG, "", Duration::ZERO, 0).await;
    store_result(&res)
}

/// AcquireRequest (rbd §1.6.2): GetLocker, then cls lock, breaking a dead owner's lock when the
/// lock is busy. -EAGAIN means a live owner holds it; -EBUSY an external lock.
///
/// The loop is librbd's: it repeats when the lock changed hands between two reads (the lock
/// appeared after GetLocker found none, or a dead owner's lock was just broken). Unlike librbd it
/// is bounded ([`MAX_ACQUIRE_PASSES`]): a lock whose only locker GetLocker reports as "no valid
/// locker" (empty address, rbd §1.6.1 step 7, §9 row 12) would otherwise make it spin forever.
pub async fn acquire(ioctx: &IoCtx, oid: &str, cookie: &str, cfg: &BreakConfig) -> i32 {
    let mut cached: Option<Locker>;
    for _pass in 0..MAX_ACQUIRE_PASSES {
        // Step 1: who holds it now?
        let got = get_locker(ioctx, oid).await;
        let r = got.as_ref().err().copied().unwrap_or(0);
        match ml::acquire_after_get_locker(r) {
            AcquireAfterGetLocker::CacheLockerThenLock => cached = got.ok(),
            AcquireAfterGetLocker::ForgetLockerThenLock => cached = None,
            AcquireAfterGetLocker::Finish(r) => return r,
        }
        // Steps 2 and 3: lock, and break a dead owner in the way.
        loop {
            let r = cls_lock(ioctx, oid, cookie).await;
            match ml::acquire_after_lock(r, cached.is_some()) {
                AcquireAfterLock::Finish(r) => return r,
                AcquireAfterLock::RetryGetLocker => break,
                AcquireAfterLock::Break => {
                    let Some(locker) = cached.as_ref() else { break };
                    let r = break_lock(ioctx, oid, locker, false, cfg).await;
                    match ml::acquire_after_break(r) {
                        AcquireAfterBreak::ClearLockerThenLock => cached = None,
                        AcquireAfterBreak::Finish(r) => return r,
                    }
                }
            }
        }
    }
    tracing::warn!(passes = MAX_ACQUIRE_PASSES, "the lock keeps changing hands or has no valid locker: busy");
    -errno::EBUSY
}

/// How many GetLocker passes one AcquireRequest makes before reporting -EBUSY. Each pass means the
/// lock changed between a read and a lock attempt, so a handful is already unusual.
pub const MAX_ACQUIRE_PASSES: usize = 64;

/// BreakRequest (rbd §1.6.3): check liveness (unless `force`), re-read the locker, blocklist it
/// (if enabled) and break its lock. -EAGAIN: the owner is alive or changed; -EINVAL: asked to
/// blocklist ourselves or an unparsable address.
pub async fn break_lock(ioctx: &IoCtx, oid: &str, locker: &Locker, force: bool, cfg: &BreakConfig) -> i32 {
    // Steps 1-2: the liveness rule.
    let watchers = match ioctx.list_watchers(oid).await {
        Ok(w) => w,
        Err(e) => return store_r(&e),
    };
    let listed: Vec<(String, u64)> = watchers.iter().map(|w| (w.addr.to_string(), w.cookie)).collect();
    let alive = ml::owner_is_alive(locker, listed.iter().map(|(a, c)| (a.as_str(), *c)));
    if let Some(r) = ml::break_after_liveness(alive, force) {
        tracing::debug!(locker = %locker.entity, cookie = %locker.cookie, "lock owner is alive");
        return r;
    }
    // Step 3: the locker must not have changed meanwhile.
    let refreshed = get_locker(ioctx, oid).await;
    let r = refreshed.as_ref().err().copied().unwrap_or(0);
    if let BreakAfterGetLocker::Finish(r) = ml::break_after_get_locker(r, refreshed.as_ref().ok(), locker) {
        return r;
    }
    // Step 4: fence the owner first, so it cannot write after losing the lock.
    if cfg.blocklist_on_break_lock {
        let own = ioctx.entity().to_string();
        let addr = locker.address.parse::<EntityAddr>();
        if let Err(r) = ml::break_blocklist_precheck(&locker.entity, &own, addr.is_ok()) {
            return r;
        }
        let Ok(addr) = addr else { return -errno::EINVAL };
        tracing::info!(locker = %locker.entity, %addr, "blocklisting lock owner before breaking its lock");
        // `blocklist_add` returns once the entry is in effect, which is what librbd's wait for
        // the latest OSD map guarantees (rbd §1.6.3 step 4).
        if let Err(e) = ioctx.client().blocklist_add(&addr, cfg.blocklist_expire).await {
            return store_r(&e);
        }
    }
    // Step 5: break it.
    let Some(entity) = parse_entity(&locker.entity) else { return -errno::EINVAL };
    let res = cls::break_lock(ioctx, oid, LOCK_NAME, &locker.cookie, entity).await;
    let r = ml::break_lock_result(store_result(&res));
    tracing::info!(locker = %locker.entity, cookie = %locker.cookie, r, "broke lock");
    r
}

/// ReleaseRequest (rbd §1.6.4): cls unlock; errors are logged and the result is always 0.
pub async fn release(ioctx: &IoCtx, oid: &str, cookie: &str) -> i32 {
    let res = cls::unlock(ioctx, oid, LOCK_NAME, cookie).await;
    if let Err(e) = &res {
        tracing::warn!(cookie, error = %e, "failed to unlock");
    }
    ml::release_request_result(store_result(&res))
}

/// ReacquireRequest (rbd §1.6.5): cls `set_cookie(old → new)`; returns the OSD result (-EBUSY if
/// we no longer hold the lock or the new cookie equals the old one, -EOPNOTSUPP on old OSDs).
pub async fn reacquire(ioctx: &IoCtx, oid: &str, old_cookie: &str, new_cookie: &str) -> i32 {
    let res =
        cls::set_cookie(ioctx, oid, LOCK_NAME, LockType::Exclusive, old_cookie, LOCK_TAG, new_cookie).await;
    store_result(&res)
}

/// `assert_header_locked` (rbd §1.3): 0 if `cookie` of this client holds the managed lock;
/// -EBUSY if not, -ENOENT without a header, -EBLOCKLISTED if fenced.
pub async fn assert_locked(ioctx: &IoCtx, oid: &str, cookie: &str) -> i32 {
    let res = cls::assert_locked(ioctx, oid, LOCK_NAME, LockType::Exclusive, cookie, LOCK_TAG).await;
    store_result(&res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_parse() {
        assert_eq!(parse_entity("client.4176"), Some(EntityName::client(4176)));
        assert_eq!(parse_entity("osd.3").map(|e| e.kind), Some(EntityType::Osd));
        assert_eq!(parse_entity("client"), None);
        assert_eq!(parse_entity("bogus.1"), None);
        assert_eq!(parse_entity("client.x"), None);
    }

    #[test]
    fn only_exclusive_satisfies_the_exclusive_manager() {
        assert_eq!(sm_lock_type(LockType::Exclusive), ClsLockType::Exclusive);
        for t in [LockType::Shared, LockType::ExclusiveEphemeral, LockType::None] {
            assert_ne!(sm_lock_type(t), ClsLockType::Exclusive);
        }
    }
}
