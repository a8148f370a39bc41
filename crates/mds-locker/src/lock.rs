//! Per-lock runtime state (mds spec §4.1).
//!
//! `lock-sm` knows what each state permits; this module knows who currently holds what. A
//! `Lock` never decides anything itself: the Locker asks `lock-sm` with the facts stored here
//! (`ctx()`, counts, issued caps) and then changes the state through `Locker::set_state`, which
//! keeps the "a transitional lock auth-pins its parent" rule in one place.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lock_sm::{LockCtx, LockState, LockType, Machine};

use crate::ids::{ClientId, Rank, ReqId};

/// Waiter bit: wake when a rdlock may be possible (§2.3 wait bits).
pub const WAIT_RD: u8 = 1;
/// Waiter bit: wake when a wrlock may be possible.
pub const WAIT_WR: u8 = 2;
/// Waiter bit: wake when an xlock may be possible. Same bit as `WAIT_STABLE` in Ceph.
pub const WAIT_XLOCK: u8 = 4;
/// Waiter bit: wake when the lock becomes stable.
pub const WAIT_STABLE: u8 = 4;
/// Waiter bit: remote xlock (multi-rank; unused on one rank).
pub const WAIT_REMOTEXLOCK: u8 = 8;
/// Waiter bit, on an inode's IFLOCK lock only: a blocked SETFILELOCK waiting for an advisory
/// lock on the inode to be released (Ceph's `CInode::WAIT_FLOCK`). Lock transitions never
/// wake it; only a change to the advisory lock table does.
pub const WAIT_FLOCK: u8 = 16;

/// One queued waiter: a request to re-dispatch when any of `mask`'s conditions may hold.
/// Waiters are woken in the order they were added (Ceph flags lock waiters "ordered").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// Which wait bits this waiter is interested in.
    pub mask: u8,
    /// The request to retry.
    pub req: ReqId,
}

/// One xlock holder. Ceph keeps a count plus the current holder; two holders exist only when
/// the same client re-takes a lock that is still XLOCKDONE for its previous request (§4.7
/// step 3), and then the older one is already done. Keeping the list makes that case visible
/// to dumps and to the "never two active xlock holders" invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlockHolder {
    /// The holding mutation.
    pub req: ReqId,
    /// Its client (`None` for the MDS itself).
    pub client: Option<ClientId>,
    /// `set_xlock_done` was applied: the holder only waits for its journal entry.
    pub done: bool,
}

/// ScatterLock flags (§4.1). Kept for every lock so the Locker can treat all locks alike; only
/// IFILE, INEST and IDFT ever set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScatterFlags {
    /// A replica asked for MIX while the lock was unstable.
    pub scatter_wanted: bool,
    /// A replica asked to leave MIX while the lock was unstable.
    pub unscatter_wanted: bool,
    /// Scattered data not yet folded into the inode.
    pub dirty: bool,
    /// A writebehind is journaling the folded data.
    pub flushing: bool,
    /// The writebehind completed; lets a waiting gather finish.
    pub flushed: bool,
}

/// The runtime state of one lock (§4.1).
#[derive(Debug, Clone)]
pub struct Lock {
    pub(crate) ty: LockType,
    pub(crate) state: LockState,
    pub(crate) is_auth: bool,
    pub(crate) gather_set: BTreeSet<Rank>,
    pub(crate) rdlocks: BTreeMap<ReqId, u32>,
    pub(crate) wrlocks: BTreeMap<ReqId, u32>,
    pub(crate) xlocks: Vec<XlockHolder>,
    pub(crate) xlock_by_client: Option<ClientId>,
    pub(crate) excl_client: Option<ClientId>,
    pub(crate) leases: BTreeMap<ClientId, u32>,
    pub(crate) scatter: ScatterFlags,
    pub(crate) last_wrlock_client: Option<ClientId>,
    pub(crate) waiters: VecDeque<Waiter>,
    pub(crate) auth_pinned: bool,
}

impl Lock {
    /// A fresh lock as Ceph creates it: locallocks in LOCK, everything else in SYNC.
    pub(crate) fn new(ty: LockType, is_auth: bool) -> Lock {
        let state = Lock::initial_state(ty);
        Lock {
            ty,
            state,
            is_auth,
            gather_set: BTreeSet::new(),
            rdlocks: BTreeMap::new(),
            wrlocks: BTreeMap::new(),
            xlocks: Vec::new(),
            xlock_by_client: None,
            excl_client: None,
            leases: BTreeMap::new(),
            scatter: ScatterFlags::default(),
            last_wrlock_client: None,
            waiters: VecDeque::new(),
            auth_pinned: false,
        }
    }

    /// The state a fresh lock of this type starts in: LOCK for locallocks, SYNC otherwise.
    pub fn initial_state(ty: LockType) -> LockState {
        match ty.machine() {
            Machine::Local => LockState::Lock,
            _ => LockState::Sync,
        }
    }

    /// The lock type.
    pub fn lock_type(&self) -> LockType {
        self.ty
    }

    /// The state table this lock follows.
    pub fn machine(&self) -> Machine {
        self.ty.machine()
    }

    /// Current state.
    pub fn state(&self) -> LockState {
        self.state
    }

    /// Whether this rank is auth for the parent (always true on one rank).
    pub fn is_auth(&self) -> bool {
        self.is_auth
    }

    /// Ranks whose acks are still awaited.
    pub fn gather_set(&self) -> &BTreeSet<Rank> {
        &self.gather_set
    }

    /// Ceph's `is_stable()`: the table row has no `next`.
    pub fn is_stable(&self) -> bool {
        self.machine().row(self.state).is_stable()
    }

    /// Total rdlocks.
    pub fn num_rdlock(&self) -> u32 {
        self.rdlocks.values().sum()
    }

    /// Total wrlocks.
    pub fn num_wrlock(&self) -> u32 {
        self.wrlocks.values().sum()
    }

    /// Total xlocks.
    pub fn num_xlock(&self) -> u32 {
        self.xlocks.len() as u32
    }

    /// Client dentry leases outstanding.
    pub fn num_client_lease(&self) -> u32 {
        self.leases.len() as u32
    }

    /// Any rdlock held.
    pub fn is_rdlocked(&self) -> bool {
        !self.rdlocks.is_empty()
    }

    /// Any wrlock held.
    pub fn is_wrlocked(&self) -> bool {
        !self.wrlocks.is_empty()
    }

    /// Any xlock held.
    pub fn is_xlocked(&self) -> bool {
        !self.xlocks.is_empty()
    }

    /// Any client lease outstanding.
    pub fn is_leased(&self) -> bool {
        !self.leases.is_empty()
    }

    /// Ceph's `is_used()`.
    pub fn is_used(&self) -> bool {
        self.is_xlocked() || self.is_rdlocked() || self.is_wrlocked() || self.is_leased()
    }

    /// Ceph's `is_unstable_and_locked()`: what makes `nudge_log` flush the journal.
    pub fn is_unstable_and_locked(&self) -> bool {
        !self.is_stable() && (self.is_rdlocked() || self.is_wrlocked() || self.is_xlocked())
    }

    /// The mutation currently xlocking (not yet done), Ceph's `xlock_by`.
    pub fn xlock_by(&self) -> Option<ReqId> {
        self.xlocks.iter().find(|h| !h.done).map(|h| h.req)
    }

    /// Every xlock holder, oldest first.
    pub fn xlock_holders(&self) -> &[XlockHolder] {
        &self.xlocks
    }

    /// Client of the xlock holder; survives `set_xlock_done` and is cleared only when the last
    /// xlock goes (§4.1), which is what lets the same client read in XLOCKDONE.
    pub fn xlock_by_client(&self) -> Option<ClientId> {
        self.xlock_by_client
    }

    /// The inode's loner, mirrored on IAUTH/ILINK/IXATTR/IFILE.
    pub fn excl_client(&self) -> Option<ClientId> {
        self.excl_client
    }

    /// Client of the latest local wrlocker (local locks), cleared when wrlocks drain.
    pub fn last_wrlock_client(&self) -> Option<ClientId> {
        self.last_wrlock_client
    }

    /// rdlock holders and counts.
    pub fn rdlock_holders(&self) -> &BTreeMap<ReqId, u32> {
        &self.rdlocks
    }

    /// wrlock holders and counts.
    pub fn wrlock_holders(&self) -> &BTreeMap<ReqId, u32> {
        &self.wrlocks
    }

    /// Lease holders and their lease seqs.
    pub fn leases(&self) -> &BTreeMap<ClientId, u32> {
        &self.leases
    }

    /// Scatter flags.
    pub fn scatter_flags(&self) -> ScatterFlags {
        self.scatter
    }

    /// Queued waiters in wake order.
    pub fn waiters(&self) -> impl Iterator<Item = &Waiter> {
        self.waiters.iter()
    }

    /// Whether the lock holds an auth-pin on its parent (it does exactly while unstable).
    pub fn holds_auth_pin(&self) -> bool {
        self.auth_pinned
    }

    /// The facts `lock-sm`'s predicates need.
    pub fn ctx(&self) -> LockCtx {
        LockCtx {
            is_auth: self.is_auth,
            xlock_by_client: self.xlock_by_client,
            excl_client: self.excl_client,
        }
    }

    /// Whether any waiter wants one of `mask`'s conditions (Ceph's `is_waiter_for`).
    pub fn is_waiter_for(&self, mask: u8) -> bool {
        self.waiters.iter().any(|w| w.mask & mask != 0)
    }

    /// Can `client` rdlock now.
    pub fn can_rdlock(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_rdlock(self.machine(), self.state, &self.ctx(), client)
    }

    /// Can `client` wrlock now.
    pub fn can_wrlock(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_wrlock(self.machine(), self.state, &self.ctx(), client)
    }

    /// Can `client` xlock now (or proceed with its acquisition).
    pub fn can_xlock(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_xlock(self.machine(), self.state, &self.ctx(), client)
    }

    /// Can `client` read the current value without a lock.
    pub fn can_read(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_read(self.machine(), self.state, &self.ctx(), client)
    }

    /// Can `client` read the projected value.
    pub fn can_read_projected(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_read_projected(self.machine(), self.state, &self.ctx(), client)
    }

    /// Can `client` get a dentry lease now.
    pub fn can_lease(&self, client: Option<ClientId>) -> bool {
        lock_sm::predicates::can_lease(self.machine(), self.state, &self.ctx(), client)
    }

    /// Locallock: a wrlock (the shared mode) is possible iff nobody xlocks (§1.6).
    pub fn can_wrlock_local(&self) -> bool {
        !self.is_xlocked()
    }

    /// Locallock: an xlock (the exclusive mode) is possible iff nobody wrlocks or xlocks (§1.6).
    pub fn can_xlock_local(&self) -> bool {
        !self.is_wrlocked() && !self.is_xlocked()
    }

    pub(crate) fn add_waiter(&mut self, mask: u8, req: ReqId) {
        self.waiters.push_back(Waiter { mask, req });
    }

    /// Removes and returns, in FIFO order, the waiters interested in `mask`.
    pub(crate) fn take_waiters(&mut self, mask: u8) -> Vec<ReqId> {
        let mut woken = Vec::new();
        self.waiters.retain(|w| {
            if w.mask & mask != 0 {
                woken.push(w.req);
                false
            } else {
                true
            }
        });
        woken
    }

    pub(crate) fn remove_waiters_of(&mut self, req: ReqId) {
        self.waiters.retain(|w| w.req != req);
    }

    pub(crate) fn get_rdlock(&mut self, req: ReqId) {
        *self.rdlocks.entry(req).or_insert(0) += 1;
    }

    /// Drops one rdlock of `req`; false if it held none.
    pub(crate) fn put_rdlock(&mut self, req: ReqId) -> bool {
        put_count(&mut self.rdlocks, req)
    }

    pub(crate) fn get_wrlock(&mut self, req: ReqId, client: Option<ClientId>) {
        *self.wrlocks.entry(req).or_insert(0) += 1;
        if self.machine() == Machine::Local {
            self.last_wrlock_client = client;
        }
    }

    /// Drops one wrlock of `req`; false if it held none.
    pub(crate) fn put_wrlock(&mut self, req: ReqId) -> bool {
        let had = put_count(&mut self.wrlocks, req);
        if self.wrlocks.is_empty() {
            self.last_wrlock_client = None;
        }
        had
    }

    pub(crate) fn get_xlock(&mut self, req: ReqId, client: Option<ClientId>) {
        self.xlocks.push(XlockHolder { req, client, done: false });
        self.xlock_by_client = client;
    }

    /// Drops `req`'s xlock; returns its client, or `None` (outer) if it held none.
    pub(crate) fn put_xlock(&mut self, req: ReqId) -> Option<Option<ClientId>> {
        let pos = self.xlocks.iter().position(|h| h.req == req)?;
        let holder = self.xlocks.remove(pos);
        if self.xlocks.is_empty() {
            self.xlock_by_client = None;
        }
        Some(holder.client)
    }

    /// Marks `req`'s xlock done (Ceph's `set_xlock_done` forgets the holding mutation).
    pub(crate) fn mark_xlock_done(&mut self, req: ReqId) {
        for h in self.xlocks.iter_mut().filter(|h| h.req == req) {
            h.done = true;
        }
    }
}

fn put_count(map: &mut BTreeMap<ReqId, u32>, req: ReqId) -> bool {
    match map.get_mut(&req) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            map.remove(&req);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_states_section_4_1() {
        assert_eq!(Lock::new(LockType::IAuth, true).state(), LockState::Sync);
        assert_eq!(Lock::new(LockType::IFile, true).state(), LockState::Sync);
        assert_eq!(Lock::new(LockType::IVersion, true).state(), LockState::Lock);
        assert!(Lock::new(LockType::DVersion, true).is_stable());
    }

    #[test]
    fn waiters_fifo_and_mask() {
        let mut l = Lock::new(LockType::IAuth, true);
        l.add_waiter(WAIT_RD, ReqId(1));
        l.add_waiter(WAIT_WR, ReqId(2));
        l.add_waiter(WAIT_RD | WAIT_STABLE, ReqId(3));
        assert!(l.is_waiter_for(WAIT_WR));
        assert_eq!(l.take_waiters(WAIT_RD), vec![ReqId(1), ReqId(3)]);
        assert_eq!(l.take_waiters(WAIT_RD | WAIT_STABLE), Vec::<ReqId>::new());
        assert_eq!(l.take_waiters(WAIT_WR), vec![ReqId(2)]);
    }

    #[test]
    fn xlock_client_survives_done_and_clears_at_zero() {
        let mut l = Lock::new(LockType::IAuth, true);
        l.get_xlock(ReqId(1), Some(7));
        assert_eq!(l.xlock_by(), Some(ReqId(1)));
        l.mark_xlock_done(ReqId(1));
        assert_eq!(l.xlock_by(), None);
        assert_eq!(l.xlock_by_client(), Some(7));
        assert_eq!(l.put_xlock(ReqId(1)), Some(Some(7)));
        assert_eq!(l.xlock_by_client(), None);
        assert_eq!(l.put_xlock(ReqId(1)), None);
    }

    #[test]
    fn local_lock_modes_section_1_6() {
        let mut l = Lock::new(LockType::IVersion, true);
        l.get_wrlock(ReqId(1), Some(4));
        assert_eq!(l.last_wrlock_client(), Some(4));
        assert!(l.can_wrlock_local());
        assert!(!l.can_xlock_local());
        assert!(l.put_wrlock(ReqId(1)));
        assert_eq!(l.last_wrlock_client(), None);
        l.get_xlock(ReqId(2), None);
        assert!(!l.can_wrlock_local());
    }
}
