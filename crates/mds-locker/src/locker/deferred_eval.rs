//! Re-evaluating a replicated lock once the requests a transition woke have had their turn.
//!
//! `eval_gather` does not re-evaluate a replicated auth lock right after it wakes waiters
//! (deviation, see the comment there): the woken requests get the first go at the new state,
//! and their own release re-evaluates the lock. A woken request may however not take the lock
//! at all (it now waits for something else, fails, or was forwarded), and then nobody ever
//! evaluates the lock again: an auth dentry lock stays in LOCK while a replica's path
//! traversal waits for it to be readable, and a traversal does not send REQRDLOCK (Ceph's
//! `path_traverse` only waits on `WAIT_RD`, relying on the auth's `eval_gather` → `try_eval`
//! to return the lock to SYNC, §4.11). Simulator `--cross-subtree`, 3 ranks, seeds 269, 306,
//! 584: a rename's leader waited forever on a replica dentry in LOCK.
//!
//! So the skipped evaluation is only postponed: the lock is remembered here and evaluated at
//! the end of the event, once the woken requests ran, if by then nobody holds or waits for it
//! (so the original deviation, giving woken requests the first go, still holds).

use crate::error::LockerError;
use crate::ids::LockId;

use super::Locker;

impl Locker {
    /// Remembers a replicated auth lock whose `try_eval` `eval_gather` skipped because it
    /// woke waiters.
    pub(crate) fn defer_eval(&mut self, id: LockId) {
        self.deferred_evals.insert(id);
    }

    /// Evaluates one postponed lock (see the module doc); false if none is left.
    pub(crate) fn run_deferred_eval(&mut self) -> Result<bool, LockerError> {
        let Some(id) = self.deferred_evals.pop_first() else {
            return Ok(false);
        };
        let idle = self.cache.lock(id).is_ok_and(|l| {
            l.is_auth()
                && l.is_stable()
                && l.num_rdlock() == 0
                && l.num_wrlock() == 0
                && l.num_xlock() == 0
                && l.waiters().next().is_none()
        });
        if idle {
            tracing::debug!(lock = ?id, "re-evaluating a lock its woken waiters left idle");
            self.try_eval(id)?;
        }
        Ok(true)
    }
}
