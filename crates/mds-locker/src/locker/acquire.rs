//! `acquire_locks` (mds spec §4.4): augment, sort and merge, auth-pin, then take the locks in
//! vector order, stopping at the first one that must wait.

use std::collections::BTreeSet;

use lock_sm::LockType;

use crate::error::LockerError;
use crate::ids::{LockId, ObjRef, ReqId};
use crate::mutation::{ALL_LOCKED, LockOp, RDLOCK, STATE_PIN, WRLOCK, XLOCK, sort_and_merge};

use super::Locker;

impl Locker {
    /// Phase A of `acquire_locks`: the versionlock that accompanies every auth xlock (a leader
    /// wrlocks it, §8 fact 37) and the objects to auth-pin.
    pub(crate) fn augment_lock_vector(
        &self,
        wanted: &[LockOp],
    ) -> Result<(Vec<LockOp>, BTreeSet<ObjRef>), LockerError> {
        let mut ops = Vec::with_capacity(wanted.len() + 2);
        let mut must_pin = BTreeSet::new();
        for op in wanted {
            ops.push(*op);
            let is_auth = self.lk(op.lock)?.is_auth();
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
                    // We are always the leader on one rank; a peer would xlock it instead.
                    ops.push(LockOp::wr(v));
                }
            } else if is_auth {
                must_pin.insert(op.lock.obj);
            }
        }
        Ok((ops, must_pin))
    }

    /// `acquire_locks`: returns `true` once every lock is held. On `false` the request sits on
    /// one lock's waiter list and is re-dispatched when woken; what it already holds is kept
    /// and skipped on the retry.
    pub(crate) fn acquire_locks(&mut self, reqid: ReqId, wanted: &[LockOp]) -> Result<bool, LockerError> {
        for op in wanted {
            self.validate_lock_op(op)?;
        }
        let (mut ops, must_pin) = self.augment_lock_vector(wanted)?;
        if !sort_and_merge(&mut ops) {
            // validate_lock_op refuses remote wrlocks, so this is a bug, not bad input.
            return Err(LockerError::Precondition("an xlock cannot merge with a remote wrlock (§4.3)"));
        }
        // Phase C: nothing on one rank is frozen, freezing or ambiguous, so pinning succeeds.
        for obj in must_pin {
            if self.mutation_mut(reqid)?.auth_pins.insert(obj) {
                self.cache.add_auth_pin(obj, 1);
            }
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
            } else if op.flags & WRLOCK != 0 {
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
