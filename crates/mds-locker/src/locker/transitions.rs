//! Completing and starting transitions (mds spec §4.9 `eval_gather`, §4.10 initiators).
//!
//! An initiator moves a stable lock into the transitional state on the way to its target,
//! counts what must be gathered first (holders the target forbids, client caps to revoke,
//! leases, replica acks) and, if nothing is, completes at once. Otherwise `eval_gather`
//! completes it later, each time something that was being waited for goes away. Whether the
//! gather is finished is `lock-sm`'s `gather_finished`; nothing here re-derives the tables.
//!
//! Multi-rank: when the lock's object is replicated, the initiators message the replicas as
//! the §4.12 "full protocol sequences" table says and put them in the gather set
//! (`init_gather`); `eval_gather` cannot finish while that set is non-empty. A replica runs
//! `eval_gather` too, for its own holders, and acknowledges to the auth when done (§4.9
//! replica table). A dirty scatterlock does not complete until its gathered frag stats are
//! folded and journaled (§4.9 auth step 2, `scatter` module).

use lock_sm::{GatherState, LockAction, LockState, LockType, gather_finished};

use crate::authority::replica_state_of;

use crate::error::LockerError;
use crate::ids::LockId;
use crate::lock::{WAIT_RD, WAIT_STABLE, WAIT_WR, WAIT_XLOCK};

use super::Locker;

impl Locker {
    /// `eval_gather(lock, first)`: complete the lock's transition if every §1.8 condition
    /// holds. With `first`, caps beyond what the target allows trigger a revoke.
    pub(crate) fn eval_gather(&mut self, id: LockId, first: bool) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        if lock.is_stable() {
            return Ok(());
        }
        let m = lock.machine();
        let state = lock.state();
        let next = m.row(state).next;
        let is_auth = lock.is_auth();
        let cap_bearing = id.ty.is_cap_bearing() && id.inode_id().is_some();
        let mut need_issue = false;
        let issued = if cap_bearing { self.caps_issued(id)? } else { Default::default() };
        if cap_bearing && first && self.caps_exceed(id, next, &issued)? {
            need_issue = true;
        }
        let lock = self.lk(id)?;
        let st = GatherState {
            is_auth,
            gather_set_empty: lock.gather_set().is_empty(),
            rdlocks: lock.num_rdlock(),
            wrlocks: lock.num_wrlock(),
            xlocks: lock.num_xlock(),
            leases: lock.num_client_lease(),
            flushing: lock.scatter_flags().flushing,
            loner_issued: issued.loner,
            other_issued: issued.other,
            xlocker_issued: issued.xlocker,
            any_client_holds_fb: issued.any_fb,
        };
        if !gather_finished(m, state, &st) {
            tracing::trace!(lock = ?id, state = state.log_name(), ?st, "gather not finished");
            if need_issue {
                self.request_issue(id);
            }
            return Ok(());
        }
        let mut next = next;
        if is_auth {
            let replicated = self.lock_replicated(id);
            // Step 1: MIX_LOCK's local stage is done; now the replicas' stage.
            if state == LockState::MixLock && replicated {
                self.send_lock_to_replicas(id, LockAction::Lock, false)?;
                self.init_gather(id)?;
                self.set_state(id, LockState::MixLock2)?;
                if need_issue {
                    self.request_issue(id);
                }
                return Ok(());
            }
            // Step 2: gathered frag stats not yet folded are journaled first (§4.13
            // `scatter_writebehind`); FLUSHING keeps this gather open until the entry is
            // safe, and releasing the writebehind's forced wrlock re-enters here.
            let flags = self.lk(id)?.scatter_flags();
            if flags.dirty && !flags.flushed {
                self.scatter_writebehind(id)?;
                if need_issue {
                    self.request_issue(id);
                }
                return Ok(());
            }
            // Step 3.
            self.lkm(id)?.scatter.flushed = false;
            // Step 4: entering MIX starts the scatter (nothing to fold with one auth dirfrag),
            // hands the replicas the data, and satisfies a pending scatter request; entering
            // SYNC hands the replicas the data.
            match state {
                LockState::TsynMix | LockState::SyncMix | LockState::ExclMix | LockState::XsynMix => {
                    if replicated {
                        self.send_lock_to_replicas(id, LockAction::Mix, true)?;
                    }
                    self.lkm(id)?.scatter.scatter_wanted = false;
                }
                LockState::Xlock | LockState::XlockDone if next == LockState::Sync && replicated => {
                    self.send_lock_to_replicas(id, LockAction::Sync, true)?;
                }
                LockState::ExclSync | LockState::LockSync | LockState::MixSync | LockState::XsynSync
                    if replicated =>
                {
                    self.send_lock_to_replicas(id, LockAction::Sync, true)?;
                }
                _ => {}
            }
        } else {
            next = self.replica_gather_done(id, state)?;
        }
        self.set_state(id, next)?;
        if cap_bearing
            && is_auth
            && let Some(inode) = id.inode_id()
            && self.cache.inode(inode).is_some_and(|n| n.want_loner() != n.loner())
            && self.try_drop_loner(inode)?
        {
            need_issue = true;
        }
        let woke = self.lk(id)?.is_waiter_for(WAIT_STABLE | WAIT_WR | WAIT_RD | WAIT_XLOCK);
        self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD | WAIT_XLOCK)?;
        if cap_bearing {
            need_issue = true;
        }
        // Deviation (multi-rank): on a replicated lock, requests just woken get the first go
        // at the new state; re-evaluating now could move it away before they retry (e.g.
        // LOCK → SYNC under a woken wrlock request), and each such bounce costs the replicas
        // a round trip, forever. Their own release re-evaluates the lock.
        if is_auth && self.lk(id)?.is_stable() {
            if !(woke && self.lock_replicated(id)) {
                self.try_eval(id)?;
            } else {
                // ...but if they leave it idle, it is evaluated at the end of the event.
                self.defer_eval(id);
            }
        }
        if need_issue {
            self.request_issue(id);
        }
        Ok(())
    }

    /// Issues caps if the inode's clients hold more than the lock's current state allows and
    /// reports whether that makes the transition wait (one "gather" unit).
    fn gather_caps(&mut self, id: LockId) -> Result<u32, LockerError> {
        if id.ty.is_cap_bearing() && self.issued_caps_need_gather(id)? {
            self.request_issue(id);
            Ok(1)
        } else {
            Ok(0)
        }
    }

    /// Asks every lease holder to give its dentry lease back (§4.15).
    pub(crate) fn revoke_client_leases(&mut self, id: LockId) -> Result<u32, LockerError> {
        let holders: Vec<_> = self.lk(id)?.leases().keys().copied().collect();
        if holders.is_empty() {
            return Ok(0);
        }
        let (dir, name) = match id.obj {
            crate::ids::ObjRef::Dentry(d) => {
                let dir = self.cache.dentry_dir_inode(d).and_then(|i| self.cache.inode(i)).map(|i| i.ino());
                let name = self.cache.dentry(d).map(|d| d.name().to_string());
                (dir.unwrap_or(crate::ids::Ino(0)), name.unwrap_or_default())
            }
            crate::ids::ObjRef::Inode(_) => return Ok(0),
        };
        for client in holders {
            self.fx.push(crate::effects::Effect::LeaseRevoke { client, dir, name: name.clone() });
        }
        Ok(1)
    }

    /// `simple_sync`: toward SYNC. Does not wait for rdlocks (SYNC permits them, §8 fact 51).
    /// Returns whether the lock reached SYNC now.
    pub(crate) fn simple_sync(&mut self, id: LockId) -> Result<bool, LockerError> {
        let old = self.lk(id)?.state();
        if old != LockState::Tsyn {
            let mid = match old {
                LockState::Mix => LockState::MixSync,
                LockState::Lock => LockState::LockSync,
                LockState::Xsyn => LockState::XsynSync,
                LockState::Excl => LockState::ExclSync,
                _ => return Ok(false),
            };
            self.set_state(id, mid)?;
            let mut gather = 0;
            if self.lk(id)?.is_wrlocked() {
                gather += 1;
                // The wrlock holders finish only when their journal entries are safe.
                self.need_flush = true;
            }
            if old == LockState::Mix && self.lock_replicated(id) {
                // The replicas may hold wrlocks and scattered data: gather their SYNCACKs.
                self.send_lock_to_replicas(id, LockAction::Sync, false)?;
                self.init_gather(id)?;
                gather += 1;
            }
            gather += self.gather_caps(id)?;
            if gather > 0 {
                return Ok(false);
            }
        }
        if self.lock_replicated(id) {
            self.send_lock_to_replicas(id, LockAction::Sync, true)?;
        }
        self.set_state(id, LockState::Sync)?;
        self.wake(id, WAIT_RD | WAIT_STABLE)?;
        if id.ty.is_cap_bearing() {
            self.request_issue(id);
        }
        Ok(true)
    }

    /// `simple_lock`: toward LOCK. Does not wait for wrlocks (LOCK permits auth wrlocks on
    /// scatter and file locks, §8 fact 51).
    pub(crate) fn simple_lock(&mut self, id: LockId) -> Result<(), LockerError> {
        let old = self.lk(id)?.state();
        let mid = match old {
            LockState::Sync => LockState::SyncLock,
            LockState::Xsyn => LockState::XsynLock,
            LockState::Excl => LockState::ExclLock,
            LockState::Mix => LockState::MixLock,
            LockState::Tsyn => LockState::TsynLock,
            _ => return Ok(()),
        };
        self.set_state(id, mid)?;
        if old == LockState::Mix {
            self.lkm(id)?.scatter.unscatter_wanted = false;
        }
        let mut gather = self.revoke_client_leases(id)?;
        if self.lk(id)?.is_rdlocked() {
            gather += 1;
        }
        gather += self.gather_caps(id)?;
        let replicated = self.lock_replicated(id);
        if mid == LockState::MixLock && replicated && gather > 0 {
            // The replicas' stage waits for the local one (§4.9 auth step 1): they keep
            // their wrlocks until we are drained.
        } else {
            if mid == LockState::MixLock {
                self.set_state(id, LockState::MixLock2)?;
            }
            if replicated && replica_state_of(id.ty.machine(), old) != LockState::Lock {
                self.send_lock_to_replicas(id, LockAction::Lock, false)?;
                self.init_gather(id)?;
                gather += 1;
            }
        }
        if gather == 0 {
            self.set_state(id, LockState::Lock)?;
            self.wake(id, WAIT_XLOCK | WAIT_WR | WAIT_STABLE)?;
        }
        Ok(())
    }

    /// `simple_excl` (simplelocks with a loner): toward EXCL.
    pub(crate) fn simple_excl(&mut self, id: LockId) -> Result<(), LockerError> {
        let old = self.lk(id)?.state();
        let mid = match old {
            LockState::Lock => LockState::LockExcl,
            LockState::Sync => LockState::SyncExcl,
            LockState::Xsyn => LockState::XsynExcl,
            _ => return Ok(()),
        };
        self.set_state(id, mid)?;
        let lock = self.lk(id)?;
        let mut gather = u32::from(lock.is_rdlocked()) + u32::from(lock.is_wrlocked());
        if mid == LockState::SyncExcl && self.lock_replicated(id) {
            self.send_lock_to_replicas(id, LockAction::Lock, false)?;
            self.init_gather(id)?;
            gather += 1;
        }
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.set_state(id, LockState::Excl)?;
            self.wake(id, WAIT_WR | WAIT_STABLE)?;
            if id.ty.is_cap_bearing() {
                self.request_issue(id);
            }
        }
        Ok(())
    }

    /// `simple_xlock`: LOCK or XLOCKDONE → LOCK_XLOCK, and on to PREXLOCK if nothing must be
    /// gathered (the caller then grants the xlock).
    pub(crate) fn simple_xlock(&mut self, id: LockId) -> Result<(), LockerError> {
        let old = self.lk(id)?.state();
        if !matches!(old, LockState::Lock | LockState::XlockDone) {
            return Ok(());
        }
        self.set_state(id, LockState::LockXlock)?;
        let lock = self.lk(id)?;
        let mut gather = u32::from(lock.is_rdlocked()) + u32::from(lock.is_wrlocked());
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.set_state(id, LockState::PreXlock)?;
        }
        Ok(())
    }

    /// `scatter_mix` (IFILE, INEST, IDFT): toward MIX; from LOCK directly.
    pub(crate) fn scatter_mix(&mut self, id: LockId) -> Result<(), LockerError> {
        let old = self.lk(id)?.state();
        if old == LockState::Lock {
            self.finish_scatter_mix(id)?;
            return Ok(());
        }
        let mid = match old {
            LockState::Sync => LockState::SyncMix,
            LockState::Excl => LockState::ExclMix,
            LockState::Xsyn => LockState::XsynMix,
            LockState::Tsyn => LockState::TsynMix,
            _ => return Ok(()),
        };
        self.set_state(id, mid)?;
        let mut gather = u32::from(self.lk(id)?.is_rdlocked());
        if mid == LockState::SyncMix && self.lock_replicated(id) {
            // Replicas drain their rdlocks first; the data follows at completion.
            self.send_lock_to_replicas(id, LockAction::Mix, false)?;
            self.init_gather(id)?;
            gather += 1;
        }
        gather += self.revoke_client_leases(id)?;
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.finish_scatter_mix(id)?;
        }
        Ok(())
    }

    /// The no-gather tail of `scatter_mix`: `start_scatter`, MIX, issue caps.
    fn finish_scatter_mix(&mut self, id: LockId) -> Result<(), LockerError> {
        if self.lock_replicated(id) {
            self.send_lock_to_replicas(id, LockAction::Mix, true)?;
        }
        self.set_state(id, LockState::Mix)?;
        self.lkm(id)?.scatter.scatter_wanted = false;
        if id.ty.is_cap_bearing() {
            self.request_issue(id);
        }
        Ok(())
    }

    /// `file_excl` (IFILE): toward EXCL for the inode's loner.
    pub(crate) fn file_excl(&mut self, id: LockId) -> Result<(), LockerError> {
        let old = self.lk(id)?.state();
        let mid = match old {
            LockState::Sync => LockState::SyncExcl,
            LockState::Mix => LockState::MixExcl,
            LockState::Lock => LockState::LockExcl,
            LockState::Xsyn => LockState::XsynExcl,
            _ => return Ok(()),
        };
        self.set_state(id, mid)?;
        let lock = self.lk(id)?;
        let mut gather = u32::from(lock.is_rdlocked()) + u32::from(lock.is_wrlocked());
        if matches!(mid, LockState::SyncExcl | LockState::MixExcl) && self.lock_replicated(id) {
            self.send_lock_to_replicas(id, LockAction::Lock, false)?;
            self.init_gather(id)?;
            gather += 1;
        }
        gather += self.revoke_client_leases(id)?;
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.set_state(id, LockState::Excl)?;
            self.request_issue(id);
        }
        Ok(())
    }

    /// `file_xsyn` (IFILE): EXCL → XSYN, so the MDS can read while the loner keeps `Fc Fb`.
    pub(crate) fn file_xsyn(&mut self, id: LockId) -> Result<(), LockerError> {
        if self.lk(id)?.state() != LockState::Excl || id.ty != LockType::IFile {
            return Ok(());
        }
        self.set_state(id, LockState::ExclXsyn)?;
        let mut gather = u32::from(self.lk(id)?.is_wrlocked());
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.set_state(id, LockState::Xsyn)?;
            self.wake(id, WAIT_RD | WAIT_STABLE)?;
            self.request_issue(id);
        }
        Ok(())
    }
}
