//! rdlock, wrlock, xlock and local locks: start and finish (mds spec §4.5–§4.8), and the
//! release helpers used at early reply and completion (§4.7 `set_xlocks_done`, §4.18).
//!
//! Every "may I?" goes to `lock-sm` through `Lock::can_*`; these functions only decide what to
//! kick when the answer is no and which waiter bits to queue on.

use lock_sm::{LockState, LockType, Machine};

use crate::error::LockerError;
use crate::ids::{ClientId, LockId, ObjRef, ReqId};
use crate::lock::{WAIT_RD, WAIT_STABLE, WAIT_WR};
use crate::lock_events::HoldKind;
use crate::mutation::{RDLOCK, REMOTE_WRLOCK, WRLOCK, XLOCK};

use super::Locker;

/// Bound on kick-and-retry rounds inside one start call. Each round either grants, waits, or
/// moves the lock to another state; the longest legitimate walk (§4.7, from EXCL to XLOCK) is
/// five rounds.
const MAX_KICKS: usize = 16;

impl Locker {
    // ---- rdlock (§4.5) ---------------------------------------------------------------------

    /// `rdlock_start`: take a rdlock if the table allows it for the request's client; otherwise
    /// kick the lock toward a readable state and retry; finally wait (RD on a stable auth lock,
    /// STABLE otherwise) and nudge the log.
    pub(crate) fn rdlock_start(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        let client = self.mutation(reqid)?.client;
        for _ in 0..MAX_KICKS {
            if self.lk(id)?.can_rdlock(client) || self.injected_rdlock_in_sync_lock(id) {
                let facts = self.grant_facts(id, false, false)?;
                self.lkm(id)?.get_rdlock(reqid);
                self.mutation_mut(reqid)?.add_held(id, RDLOCK);
                self.note_grant(id, reqid, client, HoldKind::Rd, facts);
                tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, state = %self.lk(id)?.state(), "rdlock");
                return Ok(true);
            }
            if !self.rdlock_kick(id, client.is_none(), reqid)? {
                break;
            }
        }
        let lock = self.lk(id)?;
        let mask = if lock.is_auth() && lock.is_stable() { WAIT_RD } else { WAIT_STABLE };
        self.add_waiter(id, mask, reqid)?;
        self.nudge_log(id)?;
        tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, state = %self.lk(id)?.state(), "rdlock waits");
        Ok(false)
    }

    /// `_rdlock_kick`: on a stable auth lock start the transition toward a readable state and
    /// report whether the state changed (so the caller re-checks); otherwise nothing can be
    /// done now.
    pub(crate) fn rdlock_kick(
        &mut self,
        id: LockId,
        as_anon: bool,
        reqid: ReqId,
    ) -> Result<bool, LockerError> {
        let lock = self.lk(id)?;
        if !lock.is_stable() {
            return Ok(false);
        }
        if !lock.is_auth() {
            // §4.5: a stable replica asks the auth to go to SYNC and waits for STABLE.
            if lock.machine() != Machine::Local {
                self.send_to_auth(id, lock_sm::LockAction::ReqRdlock, Some(reqid), None)?;
            }
            return Ok(false);
        }
        let before = lock.state();
        match lock.machine() {
            Machine::File => {
                let inode = id.inode_id().and_then(|i| self.cache.inode(i));
                let xsyn = before == LockState::Excl
                    && inode.is_some_and(|n| n.target_loner().is_some() && !n.is_dir())
                    && !as_anon;
                if xsyn {
                    self.file_xsyn(id)?;
                } else {
                    self.simple_sync(id)?;
                }
            }
            Machine::Local => return Ok(false),
            Machine::Simple | Machine::Scatter => {
                self.simple_sync(id)?;
            }
        }
        Ok(self.lk(id)?.state() != before)
    }

    /// `rdlock_finish`: when the last rdlock goes, let a transition complete (unstable) or let
    /// the lock choose a better state (stable, auth).
    pub(crate) fn rdlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        self.lkm(id)?.put_rdlock(reqid);
        self.mutation_mut(reqid)?.remove_held(id, RDLOCK);
        self.note_release(id, reqid, HoldKind::Rd);
        let lock = self.lk(id)?;
        if !lock.is_rdlocked() {
            if !lock.is_stable() {
                self.eval_gather(id, false)?;
            } else if lock.is_auth() {
                self.try_eval(id)?;
            }
        }
        Ok(())
    }

    // ---- wrlock (§4.6) ---------------------------------------------------------------------

    /// `wrlock_start`. With `state_pin` the wrlock is taken on behalf of the lock's
    /// excl_client (Ceph's `lock_scatter_gather`).
    pub(crate) fn wrlock_start(
        &mut self,
        id: LockId,
        reqid: ReqId,
        state_pin: bool,
    ) -> Result<bool, LockerError> {
        if self.lk(id)?.machine() == Machine::Local {
            return self.local_wrlock_start(id, reqid);
        }
        let client = if state_pin { self.lk(id)?.excl_client() } else { self.mutation(reqid)?.client };
        for _ in 0..MAX_KICKS {
            let lock = self.lk(id)?;
            // §4.6 want_scatter: a replica asked for MIX, or another rank is auth for one of
            // the directory's dirfrags (a subtree root) and writes its stats under MIX.
            let want_scatter =
                lock.is_auth() && (lock.scatter_flags().scatter_wanted || self.has_subtree_dirfrag(id));
            if lock.can_wrlock(client) && (!want_scatter || lock.state() == LockState::Mix) {
                let facts = self.grant_facts(id, false, false)?;
                self.lkm(id)?.get_wrlock(reqid, client);
                self.mutation_mut(reqid)?.add_held(id, WRLOCK);
                self.note_grant(id, reqid, client, HoldKind::Wr, facts);
                tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, state = %self.lk(id)?.state(), "wrlock");
                return Ok(true);
            }
            if !lock.is_stable() {
                break;
            }
            if !lock.is_auth() {
                // §4.6: a replica asks the auth to scatter and waits for STABLE.
                if matches!(lock.machine(), Machine::File | Machine::Scatter) {
                    self.send_to_auth(id, lock_sm::LockAction::ReqScatter, Some(reqid), None)?;
                }
                break;
            }
            let before = lock.state();
            if want_scatter {
                self.scatter_mix(id)?;
            } else {
                self.simple_lock(id)?;
            }
            if self.lk(id)?.state() == before {
                break;
            }
        }
        self.add_waiter(id, WAIT_STABLE, reqid)?;
        self.nudge_log(id)?;
        tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, state = %self.lk(id)?.state(), "wrlock waits");
        Ok(false)
    }

    /// `wrlock_finish`.
    pub(crate) fn wrlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        if self.lk(id)?.machine() == Machine::Local {
            return self.local_wrlock_finish(id, reqid);
        }
        self.lkm(id)?.put_wrlock(reqid);
        self.mutation_mut(reqid)?.remove_held(id, WRLOCK);
        self.note_release(id, reqid, HoldKind::Wr);
        let lock = self.lk(id)?;
        if lock.is_wrlocked() {
            if !lock.is_stable() && lock.scatter_flags().flushed && lock.is_auth() {
                self.eval_gather(id, false)?;
            }
        } else if !lock.is_stable() {
            self.eval_gather(id, false)?;
        } else if lock.is_auth() {
            self.try_eval(id)?;
        }
        Ok(())
    }

    // ---- local locks (§4.8) ----------------------------------------------------------------

    fn local_wrlock_start(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        let client = self.mutation(reqid)?.client;
        if self.lk(id)?.can_wrlock_local() {
            let facts = self.grant_facts(id, false, false)?;
            self.lkm(id)?.get_wrlock(reqid, client);
            self.mutation_mut(reqid)?.add_held(id, WRLOCK);
            self.note_grant(id, reqid, client, HoldKind::Wr, facts);
            return Ok(true);
        }
        self.add_waiter(id, WAIT_WR | WAIT_STABLE, reqid)?;
        Ok(false)
    }

    fn local_wrlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        self.lkm(id)?.put_wrlock(reqid);
        self.mutation_mut(reqid)?.remove_held(id, WRLOCK);
        self.note_release(id, reqid, HoldKind::Wr);
        if !self.lk(id)?.is_wrlocked() {
            self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD)?;
        }
        Ok(())
    }

    fn local_xlock_start(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        let client = self.mutation(reqid)?.client;
        if self.lk(id)?.can_xlock_local() {
            let facts = self.grant_facts(id, false, false)?;
            self.lkm(id)?.get_xlock(reqid, client);
            self.mutation_mut(reqid)?.add_held(id, XLOCK);
            self.note_grant(id, reqid, client, HoldKind::X, facts);
            return Ok(true);
        }
        self.add_waiter(id, WAIT_WR | WAIT_STABLE, reqid)?;
        Ok(false)
    }

    fn local_xlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        self.lkm(id)?.put_xlock(reqid);
        self.mutation_mut(reqid)?.remove_held(id, XLOCK);
        self.note_release(id, reqid, HoldKind::X);
        self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD)
    }

    // ---- xlock (§4.7) ----------------------------------------------------------------------

    /// `xlock_start` on the auth. The request first marks the lock as the one it is
    /// `locking`, then drives it LOCK → LOCK_XLOCK → PREXLOCK; only the request that started
    /// the walk may turn PREXLOCK into XLOCK (§8 facts 38, 39).
    pub(crate) fn xlock_start(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        if self.lk(id)?.machine() == Machine::Local {
            return self.local_xlock_start(id, reqid);
        }
        if !self.lk(id)?.is_auth() {
            // §4.7 replica branch: ask the auth (peer.rs).
            return self.remote_xlock_start(id, reqid);
        }
        let client = self.mutation(reqid)?.client;
        let xcl_client = self.xcl_client(reqid)?;
        for _ in 0..MAX_KICKS {
            let locking = self.mutation(reqid)?.locking;
            let lock = self.lk(id)?;
            let state = lock.state();
            if locking == Some(id)
                && lock.can_xlock(xcl_client)
                && !(state == LockState::LockXlock && self.issued_caps_need_gather(id)?)
            {
                let facts = self.grant_facts(id, false, false)?;
                self.set_state(id, LockState::Xlock)?;
                self.lkm(id)?.get_xlock(reqid, client);
                let m = self.mutation_mut(reqid)?;
                m.add_held(id, XLOCK);
                m.locking = None;
                self.note_grant(id, reqid, client, HoldKind::X, facts);
                tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, "xlock");
                return Ok(true);
            }
            let lock = self.lk(id)?;
            let same_client_done = state == LockState::XlockDone
                && xcl_client.is_some()
                && lock.xlock_by_client() == xcl_client
                && !lock.is_waiter_for(WAIT_STABLE);
            if !lock.is_stable() && !same_client_done {
                break;
            }
            if state == LockState::XlockDone && id.ty == LockType::IFile {
                // Never restart a filelock xlock from XLOCKDONE (§8 fact 40, tracker 49132).
                break;
            }
            if state == LockState::Lock || state == LockState::XlockDone {
                self.mutation_mut(reqid)?.locking = Some(id);
                self.simple_xlock(id)?;
            } else {
                self.simple_lock(id)?;
            }
            let progressed = self.lk(id)?.state() != state || self.mutation(reqid)?.locking != locking;
            if !progressed {
                break;
            }
        }
        self.add_waiter(id, WAIT_WR | WAIT_STABLE, reqid)?;
        self.nudge_log(id)?;
        tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?id, state = %self.lk(id)?.state(), "xlock waits");
        Ok(false)
    }

    /// The client whose XCL rights (§4.2: taking over an XLOCKDONE xlock of the same client)
    /// a request may use on an auth lock. None for a peer request: its leader on another rank
    /// reads its own replica, which holds only what the auth committed, so an xlock taken
    /// over another request's unsafe change would let the leader decide on the state from
    /// before that change (a just-created source seen as missing: ENOENT after the create's
    /// early reply). The peer waits instead until that request's journal entry is safe and
    /// the lock's SYNC has carried the change to the replicas.
    fn xcl_client(&self, reqid: ReqId) -> Result<Option<ClientId>, LockerError> {
        let m = self.mutation(reqid)?;
        Ok(if m.peer_of.is_some() { None } else { m.client })
    }

    /// `xlock_finish`.
    pub(crate) fn xlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        if self.lk(id)?.machine() == Machine::Local {
            return self.local_xlock_finish(id, reqid);
        }
        if !self.lk(id)?.is_auth() {
            // A remote xlock: release our copy and send UNXLOCK to the auth (peer.rs).
            return self.remote_xlock_finish(id, reqid);
        }
        let xlocker = self.lkm(id)?.put_xlock(reqid).flatten();
        self.mutation_mut(reqid)?.remove_held(id, XLOCK);
        self.note_release(id, reqid, HoldKind::X);
        let lock = self.lk(id)?;
        if lock.is_auth() && !lock.is_xlocked() && lock.state() != LockState::LockXlock {
            self.finish_xlock(id, xlocker)?;
        }
        if id.ty.is_cap_bearing() {
            self.request_issue(id);
        }
        Ok(())
    }

    /// `_finish_xlock`: the last xlock went. If the inode's target loner is the xlocker (or
    /// the MDS held it) and nothing else holds the lock, go straight to EXCL (§8 fact 41);
    /// otherwise let `eval_gather` move XLOCK/XLOCKDONE to their `next`.
    pub(crate) fn finish_xlock(&mut self, id: LockId, xlocker: Option<ClientId>) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        let exempt = matches!(id.ty, LockType::Dn | LockType::ISnap | LockType::IPolicy);
        let target_loner = id.inode_id().and_then(|i| self.cache.inode(i)).and_then(|n| n.target_loner());
        let state = lock.state();
        let direct = !exempt
            && !lock.is_rdlocked()
            && !lock.is_wrlocked()
            && !lock.is_leased()
            && state != LockState::XlockSnap
            && target_loner.is_some_and(|l| xlocker.is_none() || xlocker == Some(l));
        if direct {
            self.set_state(id, LockState::Excl)?;
            self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD)?;
            if id.ty.is_cap_bearing() {
                self.request_issue(id);
            }
            self.try_eval(id)
        } else {
            self.eval_gather(id, state != LockState::XlockSnap)
        }
    }

    /// `cancel_locking`: back out of a started xlock walk (§4.7).
    pub(crate) fn cancel_locking(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let m = self.mutation_mut(reqid)?;
        // A remote acquisition in flight is not recalled: the peer's ack still records the
        // lock (Ceph does the same), and DROPLOCKS at cleanup releases it.
        m.locking_target = None;
        let Some(id) = m.locking.take() else {
            return Ok(());
        };
        let lock = self.lk(id)?;
        if lock.is_auth() {
            match lock.state() {
                LockState::PreXlock => self.finish_xlock(id, None)?,
                LockState::LockXlock => {
                    self.set_state(id, LockState::XlockDone)?;
                    self.eval_gather(id, true)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    // ---- release helpers (§4.7, §4.18) -------------------------------------------------------

    /// `set_xlocks_done`: every xlock of the request goes XLOCK → XLOCKDONE, except dentry locks
    /// when `skip_dentry` (rename). Afterwards the same client may read (§8 fact 59).
    pub(crate) fn set_xlocks_done(&mut self, reqid: ReqId, skip_dentry: bool) -> Result<(), LockerError> {
        let xlocks: Vec<LockId> =
            self.mutation(reqid)?.held.iter().filter(|(_, f)| **f & XLOCK != 0).map(|(l, _)| *l).collect();
        for id in xlocks {
            if skip_dentry && matches!(id.obj, ObjRef::Dentry(_)) {
                continue;
            }
            self.lkm(id)?.mark_xlock_done(reqid);
            if self.lk(id)?.machine() != Machine::Local && self.lk(id)?.state() == LockState::Xlock {
                self.set_state(id, LockState::XlockDone)?;
            }
        }
        Ok(())
    }

    /// `drop_rdlocks_for_early_reply`: release every rdlock except ISNAP and IPOLICY, which are
    /// kept until the request is durable (§8 fact 57).
    pub(crate) fn drop_rdlocks_for_early_reply(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let rdlocks: Vec<LockId> = self
            .mutation(reqid)?
            .held
            .iter()
            .filter(|(l, f)| **f & RDLOCK != 0 && !matches!(l.ty, LockType::ISnap | LockType::IPolicy))
            .map(|(l, _)| *l)
            .collect();
        for id in rdlocks {
            self.rdlock_finish(id, reqid)?;
        }
        Ok(())
    }

    /// `drop_non_rdlocks`: release xlocks and wrlocks (done before the safe reply, §4.18).
    pub(crate) fn drop_non_rdlocks(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        self.drop_held(reqid, false)
    }

    /// `drop_locks`: cancel a started xlock walk and release everything.
    pub(crate) fn drop_locks(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        self.cancel_locking(reqid)?;
        self.drop_held(reqid, true)?;
        let m = self.mutation_mut(reqid)?;
        m.locking_state = 0;
        m.acquired.clear();
        Ok(())
    }

    /// `_drop_locks` (§4.18). Remote xlocks and remote wrlocks are released locally without a
    /// per-lock UNXLOCK / UNWRLOCK; instead each rank that held one gets one DROPLOCKS at the
    /// end.
    fn drop_held(&mut self, reqid: ReqId, drop_rdlocks: bool) -> Result<(), LockerError> {
        let held: Vec<(LockId, u8)> = self.mutation(reqid)?.held.iter().map(|(l, f)| (*l, *f)).collect();
        let mut ranks = std::collections::BTreeSet::new();
        for (id, flags) in held {
            if flags & XLOCK != 0 {
                if self.lk(id)?.is_auth() {
                    self.xlock_finish(id, reqid)?;
                } else {
                    ranks.extend(self.release_remote_xlock(id, reqid)?);
                }
            }
            if flags & REMOTE_WRLOCK != 0 {
                ranks.extend(self.forget_remote_wrlock(id, reqid)?);
            }
            if flags & WRLOCK != 0 {
                self.wrlock_finish(id, reqid)?;
            }
            if drop_rdlocks && flags & RDLOCK != 0 {
                self.rdlock_finish(id, reqid)?;
            }
        }
        self.send_drop_locks(reqid, ranks)
    }
}
