//! Handler-level tests: call one Locker function on a prepared lock and assert the exact state
//! and effects (openraft-style "tests next to each handler").

use lock_sm::LockState as S;
use lock_sm::LockType as T;

use super::*;
use crate::cache::{InodeData, S_IFREG};
use crate::mutation::Mutation;

fn setup() -> (Locker, InodeId) {
    let mut l = Locker::new(LockerConfig { record_transitions: true, ..LockerConfig::default() });
    let root = l.cache.root();
    let data = InodeData { mode: S_IFREG | 0o644, nlink: 1, ..InodeData::default() };
    let (_, f) = l.cache.create_committed(root, "f", data);
    (l, f)
}

fn mutation(l: &mut Locker, n: u64, client: Option<ClientId>) -> ReqId {
    let r = ReqId(n);
    l.requests.insert(r, Mutation::new(r, client, 0));
    r
}

fn states(l: &mut Locker, id: LockId) -> Vec<LockState> {
    let t = l.take_transitions();
    let mut out = Vec::new();
    for tr in t.into_iter().filter(|t| t.lock == id) {
        if out.is_empty() {
            out.push(tr.from);
        }
        out.push(tr.to);
    }
    out
}

#[test]
fn fact_51_simple_sync_does_not_wait_for_rdlocks() {
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    // XSYN permits rdlocks on the auth; put one there and sync.
    l.set_state(file, S::Xsyn).unwrap();
    let r = mutation(&mut l, 1, None);
    assert!(l.rdlock_start(file, r).unwrap());
    l.take_transitions();
    assert!(l.simple_sync(file).unwrap(), "completes at once");
    assert_eq!(states(&mut l, file), vec![S::Xsyn, S::XsynSync, S::Sync]);
    assert_eq!(l.lk(file).unwrap().num_rdlock(), 1);
}

#[test]
fn fact_51_simple_lock_does_not_wait_for_wrlocks() {
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    l.set_state(file, S::Mix).unwrap();
    let r = mutation(&mut l, 1, Some(1));
    assert!(l.wrlock_start(file, r, false).unwrap(), "MIX allows wrlocks from anyone");
    l.take_transitions();
    l.simple_lock(file).unwrap();
    // Unreplicated MIX→LOCK skips the replica stage (MIX_LOCK2) and, with nothing to gather,
    // reaches LOCK with the wrlock still held (LOCK allows auth wrlocks).
    assert_eq!(states(&mut l, file), vec![S::Mix, S::MixLock, S::MixLock2, S::Lock]);
    assert_eq!(l.lk(file).unwrap().num_wrlock(), 1);
}

#[test]
fn simple_lock_waits_for_rdlocks_and_eval_gather_completes() {
    let (mut l, f) = setup();
    let auth = LockId::inode(f, T::IAuth);
    let r = mutation(&mut l, 1, Some(1));
    assert!(l.rdlock_start(auth, r).unwrap());
    l.simple_lock(auth).unwrap();
    assert_eq!(l.lk(auth).unwrap().state(), S::SyncLock);
    assert!(l.lk(auth).unwrap().holds_auth_pin());
    assert_eq!(l.cache.inode(f).unwrap().auth_pins(), 1);
    // Dropping the rdlock completes SYNC_LOCK → LOCK; try_eval then syncs the idle lock again.
    l.take_transitions();
    l.rdlock_finish(auth, r).unwrap();
    assert_eq!(states(&mut l, auth), vec![S::SyncLock, S::Lock, S::LockSync, S::Sync]);
    assert_eq!(l.cache.inode(f).unwrap().auth_pins(), 0);
}

#[test]
fn eval_gather_ignores_stable_locks() {
    let (mut l, f) = setup();
    let auth = LockId::inode(f, T::IAuth);
    l.take_transitions();
    l.eval_gather(auth, true).unwrap();
    assert!(l.take_transitions().is_empty());
    assert!(l.fx.is_empty());
}

#[test]
fn cancel_locking_from_prexlock_finishes_the_xlock() {
    let (mut l, f) = setup();
    let auth = LockId::inode(f, T::IAuth);
    let r = mutation(&mut l, 1, Some(1));
    // Drive to PREXLOCK as xlock_start would, but stop before the grant.
    l.simple_lock(auth).unwrap();
    l.mutation_mut(r).unwrap().locking = Some(auth);
    l.simple_xlock(auth).unwrap();
    assert_eq!(l.lk(auth).unwrap().state(), S::PreXlock);
    l.take_transitions();
    l.cancel_locking(r).unwrap();
    // No loner: PREXLOCK gathers to LOCK, and try_eval syncs the idle lock.
    assert_eq!(states(&mut l, auth), vec![S::PreXlock, S::Lock, S::LockSync, S::Sync]);
    assert_eq!(l.mutation(r).unwrap().locking(), None);
}

#[test]
fn cancel_locking_from_lock_xlock_goes_through_xlockdone() {
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    let holder = mutation(&mut l, 1, Some(1));
    let r = mutation(&mut l, 2, Some(2));
    assert!(l.wrlock_start(file, holder, false).unwrap());
    assert!(!l.xlock_start(file, r).unwrap(), "waits for the wrlock in LOCK_XLOCK");
    assert_eq!(l.lk(file).unwrap().state(), S::LockXlock);
    l.take_transitions();
    l.lkm(file).unwrap().remove_waiters_of(r);
    l.mutation_mut(r).unwrap().waiting_on = None;
    l.cancel_locking(r).unwrap();
    // XLOCKDONE heads to LOCK (filelock), where the wrlock may stay.
    assert_eq!(states(&mut l, file), vec![S::LockXlock, S::XlockDone, S::Lock]);
}

#[test]
fn fact_39_other_request_cannot_take_a_reserved_prexlock() {
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    let holder = mutation(&mut l, 1, Some(1));
    let a = mutation(&mut l, 2, Some(2));
    let b = mutation(&mut l, 3, Some(3));
    assert!(l.wrlock_start(file, holder, false).unwrap());
    assert!(!l.xlock_start(file, a).unwrap());
    assert!(!l.xlock_start(file, b).unwrap());
    // Release the wrlock without running the woken requests: the lock sits in PREXLOCK,
    // reserved by `a` (its `locking`).
    l.wrlock_finish(file, holder).unwrap();
    assert_eq!(l.lk(file).unwrap().state(), S::PreXlock);
    assert!(l.lk(file).unwrap().can_xlock(Some(3)), "the table says ANY…");
    assert!(!l.xlock_start(file, b).unwrap(), "…but b did not start this xlock");
    assert_eq!(l.lk(file).unwrap().state(), S::PreXlock);
    assert!(l.xlock_start(file, a).unwrap());
    assert_eq!(l.lk(file).unwrap().state(), S::Xlock);
}

#[test]
fn section_4_8_local_locks_wrlock_shared_xlock_exclusive() {
    let (mut l, f) = setup();
    let v = LockId::inode(f, T::IVersion);
    let a = mutation(&mut l, 1, Some(1));
    let b = mutation(&mut l, 2, Some(2));
    let c = mutation(&mut l, 3, None);
    assert!(l.wrlock_start(v, a, false).unwrap());
    assert!(l.wrlock_start(v, b, false).unwrap(), "wrlock is the shared mode");
    assert_eq!(l.lk(v).unwrap().last_wrlock_client(), Some(2));
    assert!(!l.xlock_start(v, c).unwrap(), "xlock waits for wrlocks");
    l.wrlock_finish(v, a).unwrap();
    assert!(l.fx.is_empty(), "still wrlocked: nobody woken");
    l.wrlock_finish(v, b).unwrap();
    assert_eq!(l.fx, vec![Effect::Woken { reqid: c, lock: v }]);
    assert_eq!(l.lk(v).unwrap().last_wrlock_client(), None);
    assert!(l.xlock_start(v, c).unwrap());
    assert!(!l.wrlock_start(v, a, false).unwrap(), "wrlock waits for the xlock");
    assert_eq!(l.lk(v).unwrap().state(), S::Lock, "locallocks never change state");
}

#[test]
fn rdlock_kick_on_excl_filelock_goes_xsyn_for_clients_and_sync_for_the_mds() {
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    l.cache.inode_mut(f).unwrap().loner = Some(7);
    l.cache.inode_mut(f).unwrap().want_loner = Some(7);
    l.set_state(file, S::Excl).unwrap();
    let client_req = mutation(&mut l, 1, Some(8));
    l.take_transitions();
    assert!(l.rdlock_start(file, client_req).unwrap(), "XSYN rdlock is AUTH");
    assert_eq!(states(&mut l, file), vec![S::Excl, S::ExclXsyn, S::Xsyn]);
    let (mut l, f) = setup();
    let file = LockId::inode(f, T::IFile);
    l.cache.inode_mut(f).unwrap().loner = Some(7);
    l.cache.inode_mut(f).unwrap().want_loner = Some(7);
    l.set_state(file, S::Excl).unwrap();
    let mds_req = mutation(&mut l, 1, None);
    l.take_transitions();
    assert!(l.rdlock_start(file, mds_req).unwrap());
    assert_eq!(states(&mut l, file), vec![S::Excl, S::ExclSync, S::Sync]);
}

#[test]
fn set_state_pins_parent_exactly_while_transitional() {
    let (mut l, f) = setup();
    let id = LockId::inode(f, T::ILink);
    l.set_state(id, S::SyncLock).unwrap();
    l.set_state(id, S::LockXlock).unwrap();
    assert_eq!(l.cache.inode(f).unwrap().auth_pins(), 1);
    l.set_state(id, S::Lock).unwrap();
    assert_eq!(l.cache.inode(f).unwrap().auth_pins(), 0);
    assert!(!l.lk(id).unwrap().holds_auth_pin());
}

#[test]
fn fact_71_predirty_requires_parent_filelock_and_nestlock_wrlocks() {
    let (mut l, _) = setup();
    let root = l.cache.root();
    let r = mutation(&mut l, 1, Some(1));
    assert!(matches!(l.predirty_parent(r, root, false, 1, true), Err(LockerError::Precondition(_))));
    assert!(l.wrlock_start(LockId::inode(root, T::IFile), r, false).unwrap());
    assert!(matches!(l.predirty_parent(r, root, false, 1, true), Err(LockerError::Precondition(_))));
    assert!(l.wrlock_start(LockId::inode(root, T::INest), r, false).unwrap());
    l.predirty_parent(r, root, false, 1, true).unwrap();
    assert_eq!(l.cache.inode(root).unwrap().projected_data().dirstat.nfiles, 1);
    assert_eq!(l.cache.inode(root).unwrap().data().dirstat.nfiles, 0, "projected only");
}
