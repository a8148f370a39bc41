//! A record of every lock grant, release and state change, in the order the Locker made them.
//!
//! The simulator (issue 9) writes these as its trace and checks every grant against the lock
//! table at the moment it was decided: holders alone cannot show a grant the table forbids,
//! because a transitional state may legitimately still carry holders of the state before it
//! (mds spec §4.2), so only the grant itself tells "drained late" from "granted wrongly".
//! Recording is off unless `LockerConfig::record_lock_events` is set; the events are named by
//! `LockKey` (inode number, or directory and name) so that they read the same on every rank.

use lock_sm::LockState;

use crate::error::LockerError;
use crate::ids::{ClientId, LockId, LockKey, ReqId};
use crate::locker::Locker;

/// Which kind of hold a grant or release is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// A rdlock.
    Rd,
    /// A wrlock.
    Wr,
    /// An xlock.
    X,
}

impl HoldKind {
    /// The trace name (`rd`, `wr`, `x`).
    pub const fn name(self) -> &'static str {
        match self {
            HoldKind::Rd => "rd",
            HoldKind::Wr => "wr",
            HoldKind::X => "x",
        }
    }
}

/// The lock's facts when a grant was decided, before the grant changed anything: exactly what
/// `lock-sm`'s predicates were asked about, so a checker can ask them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantFacts {
    /// The state the grant was decided in.
    pub state: LockState,
    /// `xlock_by_client` then.
    pub xlock_by_client: Option<ClientId>,
    /// `excl_client` then.
    pub excl_client: Option<ClientId>,
    /// A wrlock taken regardless of the state (Ceph's `wrlock_force`, used by journaling
    /// paths such as a cap flush); the table's `can_force_wrlock` column applies, not
    /// `can_wrlock`.
    pub forced: bool,
    /// The hold is on a replica copy on behalf of the auth, which granted the real lock
    /// (§4.7 remote xlock); the copy's own state does not decide it.
    pub remote: bool,
}

/// What happened to the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEventKind {
    /// The state changed.
    State {
        /// Before.
        from: LockState,
        /// After.
        to: LockState,
    },
    /// A hold was granted.
    Grant {
        /// Which hold.
        kind: HoldKind,
        /// The facts the grant was decided on.
        facts: GrantFacts,
    },
    /// A hold was released.
    Release {
        /// Which hold.
        kind: HoldKind,
    },
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// The lock, named across ranks (`None` only for an object with no cross-rank name).
    pub key: Option<LockKey>,
    /// The lock's local handle on this rank.
    pub lock: LockId,
    /// Whether this rank is auth for the lock's object.
    pub auth: bool,
    /// The request holding or releasing (`None` for state changes).
    pub req: Option<ReqId>,
    /// The client the table was asked about: the request's client (`None` for the MDS
    /// itself), or the lock's `excl_client` for a wrlock pinning the state on its behalf.
    pub client: Option<ClientId>,
    /// What happened.
    pub kind: LockEventKind,
}

impl Locker {
    /// Takes the recorded lock events (empty unless `record_lock_events` is set).
    pub fn take_lock_events(&mut self) -> Vec<LockEvent> {
        std::mem::take(&mut self.lock_events)
    }

    fn push_lock_event(
        &mut self,
        id: LockId,
        req: Option<ReqId>,
        client: Option<ClientId>,
        kind: LockEventKind,
    ) {
        let auth = self.cache.lock(id).is_ok_and(|l| l.is_auth());
        let key = self.cache.lock_key(id);
        self.lock_events.push(LockEvent { key, lock: id, auth, req, client, kind });
    }

    /// The facts a grant is decided on, to pass to `note_grant` after the grant: read before
    /// the grant moves the state (an xlock sets XLOCK first).
    pub(crate) fn grant_facts(
        &self,
        id: LockId,
        forced: bool,
        remote: bool,
    ) -> Result<GrantFacts, LockerError> {
        let l = self.cache.lock(id)?;
        Ok(GrantFacts {
            state: l.state(),
            xlock_by_client: l.xlock_by_client(),
            excl_client: l.excl_client(),
            forced,
            remote,
        })
    }

    /// Records a grant (no-op unless recording).
    pub(crate) fn note_grant(
        &mut self,
        id: LockId,
        reqid: ReqId,
        client: Option<ClientId>,
        kind: HoldKind,
        facts: GrantFacts,
    ) {
        if self.config().record_lock_events {
            self.push_lock_event(id, Some(reqid), client, LockEventKind::Grant { kind, facts });
        }
    }

    /// Records a release (no-op unless recording).
    pub(crate) fn note_release(&mut self, id: LockId, reqid: ReqId, kind: HoldKind) {
        if self.config().record_lock_events {
            let client = self.requests.get(&reqid).and_then(|m| m.client);
            self.push_lock_event(id, Some(reqid), client, LockEventKind::Release { kind });
        }
    }

    /// Records a state change (no-op unless recording).
    pub(crate) fn note_state(&mut self, id: LockId, from: LockState, to: LockState) {
        if self.config().record_lock_events {
            self.push_lock_event(id, None, None, LockEventKind::State { from, to });
        }
    }

    /// The deliberately injected bug of `LockerConfig::inject_rdlock_in_sync_lock`: whether
    /// to grant a rdlock the table forbids because the lock sits in SYNC_LOCK. Always false
    /// without the `bug-injection` feature.
    pub(crate) fn injected_rdlock_in_sync_lock(&self, id: LockId) -> bool {
        #[cfg(feature = "bug-injection")]
        {
            self.config().inject_rdlock_in_sync_lock
                && self.cache.lock(id).is_ok_and(|l| l.state() == LockState::SyncLock)
        }
        #[cfg(not(feature = "bug-injection"))]
        {
            let _ = id;
            false
        }
    }
}
