//! `acquire_locks` (mds spec §4.4): augment, sort and merge, auth-pin, then take the locks in
//! vector order, stopping at the first one that must wait.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::LockType;

use crate::error::LockerError;
use crate::ids::{ClientId, LockId, ObjRef, Rank, ReqId};
use crate::mutation::{ALL_LOCKED, LockOp, RDLOCK, REMOTE_WRLOCK, STATE_PIN, WRLOCK, XLOCK, sort_and_merge};

use super::Locker;

impl Locker {
    /// Phase A of `acquire_locks`: the versionlock that accompanies every auth xlock (a leader
    /// wrlocks it, a peer xlocks it so its update could be rolled back, §8 fact 37) and the
    /// objects to auth-pin, here or on their auth rank.
    pub(crate) fn augment_lock_vector(
        &self,
        wanted: &[LockOp],
        peer: bool,
        client: Option<ClientId>,
    ) -> Result<(Vec<LockOp>, BTreeSet<ObjRef>), LockerError> {
        let mut ops = Vec::with_capacity(wanted.len() + 2);
        let mut must_pin = BTreeSet::new();
        for op in wanted {
            ops.push(*op);
            let lock = self.lk(op.lock)?;
            let is_auth = lock.is_auth();
            if op.is_xlock() {
                must_pin.insert(op.lock.obj);
                let versionlock = match op.lock.obj {
                    ObjRef::Dentry(d) if op.lock.ty == LockType::Dn => {
                        Some(LockId::dentry(d, LockType::DVersion))
                    }
                    ObjRef::Inode(i) if op.lock.ty != LockType::IVersion => {
                        Some(LockId::inode(i, LockType::IVersion))
                    }
                    _ => None,
                };
                if let (Some(v), true) = (versionlock, is_auth) {
                    ops.push(if peer { LockOp::x(v) } else { LockOp::wr(v) });
                }
            } else if op.flags & REMOTE_WRLOCK != 0 || is_auth {
                must_pin.insert(op.lock.obj);
            } else if !peer {
                // A replica lock we cannot take now: the auth may have to change state for
                // us, so pin the object there first (§4.4 phase A, WRLOCK / RDLOCK entries).
                let client = if op.flags & STATE_PIN != 0 { lock.excl_client() } else { client };
                let blocked = if op.is_wrlock() {
                    !lock.can_wrlock(client)
                } else {
                    op.is_rdlock() && !lock.can_rdlock(client)
                };
                if blocked {
                    must_pin.insert(op.lock.obj);
                }
            }
        }
        Ok((ops, must_pin))
    }

    /// Whether `obj`, already pinned on its auth, is the rename's source inode that the auth
    /// has not frozen for us yet: it is asked again with the freeze (§4.4 phase C "except
    /// the freeze target").
    fn must_refreeze(&self, reqid: ReqId, obj: ObjRef) -> Result<bool, LockerError> {
        let m = self.mutation(reqid)?;
        Ok(m.auth_pin_freeze == Some(obj) && m.remote_frozen != Some(obj))
    }

    /// `acquire_locks`: returns `true` once every lock is held. On `false` the request sits on
    /// one lock's waiter list, or waits for a peer's ack, and is re-dispatched when woken;
    /// what it already holds is kept and skipped on the retry.
    pub(crate) fn acquire_locks(&mut self, reqid: ReqId, wanted: &[LockOp]) -> Result<bool, LockerError> {
        for op in wanted {
            self.validate_lock_op(op)?;
        }
        let m = self.mutation(reqid)?;
        if !m.waiting_on_peer.is_empty() {
            // Re-dispatched while a peer request is outstanding: its ack re-dispatches us.
            return Ok(false);
        }
        let peer = m.peer_of.is_some();
        let (mut ops, must_pin) = self.augment_lock_vector(wanted, peer, m.client)?;
        if !sort_and_merge(&mut ops) {
            // validate_lock_op refuses an xlock with a remote wrlock, so this is a bug.
            return Err(LockerError::Precondition("an xlock cannot merge with a remote wrlock (§4.3)"));
        }
        // Phase A: a snaplock xlock while the cluster is degraded (`cluster_recovery`).
        if self.wait_for_cluster_recovered(reqid, &ops)? {
            return Ok(false);
        }
        // Phase C: only an inode frozen for a rename (against pins, or for its export)
        // refuses local pins (the request waits until it unfreezes or moves, see `migrate`);
        // objects another rank is
        // auth for are pinned there (a peer never pins remotely: its leader asked each auth
        // itself).
        if self.wait_if_frozen(reqid, &must_pin) {
            // §4.4 phase C: a request that cannot pin drops its locks and local pins while
            // it waits for the unfreeze; the freezing rename may need one of them (a path
            // traversal's rdlock of the frozen inode's snaplock, say).
            // A peer request keeps them: its leader holds them through it.
            if !peer {
                self.drop_locks(reqid)?;
                self.drop_local_auth_pins(reqid)?;
            }
            return Ok(false);
        }
        let mut remote: BTreeMap<Rank, BTreeSet<ObjRef>> = BTreeMap::new();
        for obj in must_pin {
            if self.cache.is_auth_obj(obj) {
                if self.mutation_mut(reqid)?.auth_pins.insert(obj) {
                    self.cache.add_auth_pin(obj, 1);
                }
            } else if !peer
                && (!self.mutation(reqid)?.remote_auth_pins.contains_key(&obj)
                    || self.must_refreeze(reqid, obj)?)
            {
                let auth =
                    self.cache.auth_of(obj).ok_or(LockerError::Precondition("object without an auth"))?;
                remote.entry(auth).or_default().insert(obj);
            }
        }
        if !remote.is_empty() {
            self.request_remote_auth_pins(reqid, remote)?;
            self.mark_event(reqid, "waiting for remote authpins");
            return Ok(false);
        }
        // Phase D.
        for op in ops {
            let m = self.mutation(reqid)?;
            if op.flags & XLOCK != 0 {
                if m.holds(op.lock, XLOCK) {
                    continue;
                }
                if m.locking.is_some_and(|l| l != op.lock) {
                    self.cancel_locking(reqid)?;
                }
                if !self.xlock_start(op.lock, reqid)? {
                    self.mark_event(reqid, "failed to xlock, waiting");
                    return Ok(false);
                }
                continue;
            }
            if op.flags & REMOTE_WRLOCK != 0 && !m.holds(op.lock, REMOTE_WRLOCK) {
                if m.locking.is_some_and(|l| l != op.lock) {
                    self.cancel_locking(reqid)?;
                }
                let target =
                    op.wrlock_target.ok_or(LockerError::Precondition("remote wrlock without target"))?;
                self.remote_wrlock_start(op.lock, target, reqid)?;
                self.mark_event(reqid, "waiting for remote wrlocks");
                return Ok(false);
            }
            if op.flags & WRLOCK != 0 {
                if m.holds(op.lock, WRLOCK) {
                    continue;
                }
                if !self.wrlock_start(op.lock, reqid, op.flags & STATE_PIN != 0)? {
                    self.mark_event(reqid, "failed to wrlock, waiting");
                    return Ok(false);
                }
            } else if op.flags & RDLOCK != 0 {
                if m.holds(op.lock, RDLOCK | WRLOCK | XLOCK) {
                    continue;
                }
                if !self.rdlock_start(op.lock, reqid)? {
                    self.mark_event(reqid, "failed to rdlock, waiting");
                    return Ok(false);
                }
            }
        }
        self.mutation_mut(reqid)?.locking_state |= ALL_LOCKED;
        self.mark_event(reqid, "acquired locks");
        Ok(true)
    }
}
