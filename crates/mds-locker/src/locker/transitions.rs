//! Completing and starting transitions (mds spec §4.9 `eval_gather`, §4.10 initiators).
//!
//! An initiator moves a stable lock into the transitional state on the way to its target,
//! counts what must be gathered first (holders the target forbids, client caps to revoke,
//! leases, replica acks) and, if nothing is, completes at once. Otherwise `eval_gather`
//! completes it later, each time something that was being waited for goes away. Whether the
//! gather is finished is `lock-sm`'s `gather_finished`; nothing here re-derives the tables.
//!
//! Single-rank scope: there are no replicas, so the replica messages of §4.10 (AC_SYNC,
//! AC_LOCK, AC_MIX and their acks) are never needed, and scatter data is folded into the
//! inode when it is written (one dirfrag, always auth), so locks are never dirty and no
//! writebehind is started. The code keeps those steps' positions so multi-rank can fill them.

use lock_sm::{GatherState, LockState, LockType, gather_finished};

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
        if is_auth {
            // §4.9 auth steps 1–2 (MIX_LOCK's replica stage, dirty writebehind) do not arise on
            // one rank; step 3:
            self.lkm(id)?.scatter.flushed = false;
            // Step 4: entering MIX starts the scatter (nothing to fold with one auth dirfrag)
            // and satisfies a pending scatter request.
            if matches!(
                state,
                LockState::TsynMix | LockState::SyncMix | LockState::ExclMix | LockState::XsynMix
            ) {
                self.lkm(id)?.scatter.scatter_wanted = false;
            }
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
        self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD | WAIT_XLOCK)?;
        if cap_bearing {
            need_issue = true;
        }
        if is_auth && self.lk(id)?.is_stable() {
            self.try_eval(id)?;
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
    fn revoke_client_leases(&mut self, id: LockId) -> Result<u32, LockerError> {
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
            gather += self.gather_caps(id)?;
            if gather > 0 {
                return Ok(false);
            }
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
        if mid == LockState::MixLock {
            // Unreplicated: no replica stage to defer, go straight to the second stage.
            self.set_state(id, LockState::MixLock2)?;
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
        gather += self.revoke_client_leases(id)?;
        gather += self.gather_caps(id)?;
        if gather == 0 {
            self.finish_scatter_mix(id)?;
        }
        Ok(())
    }

    /// The no-gather tail of `scatter_mix`: `start_scatter`, MIX, issue caps.
    fn finish_scatter_mix(&mut self, id: LockId) -> Result<(), LockerError> {
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
