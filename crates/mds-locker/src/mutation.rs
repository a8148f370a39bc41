//! Mutations (Ceph's MDRequest / MutationImpl) and lock op vectors (mds spec §4.3).
//!
//! A mutation is everything the Locker remembers about one request between events: the locks
//! it wants and holds, the lock whose xlock it has *started* (`locking`), its auth pins, what it
//! projected, and the op-tracker trail. Holding this in one record is what lets a retry "keep
//! what it holds": the lock vector is re-evaluated and held entries are skipped.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ClientId, DentryId, DirfragId, InodeId, JournalSeq, LockId, ObjRef, Rank, ReqId};

/// Lock op flag: rdlock.
pub const RDLOCK: u8 = 1;
/// Lock op flag: wrlock.
pub const WRLOCK: u8 = 2;
/// Lock op flag: xlock.
pub const XLOCK: u8 = 4;
/// Lock op flag: wrlock held on another rank.
pub const REMOTE_WRLOCK: u8 = 8;
/// Lock op flag: wrlock taken on behalf of the lock's excl_client to pin the scatter state.
pub const STATE_PIN: u8 = 16;

/// `locking_state` bit: the snaplocks from the (first) path's base up to the root are
/// rdlocked (§4.3 SNAP_LOCKED).
pub const SNAP_LOCKED: u8 = 1;
/// `locking_state` bit: the same for the second path of LINK and RENAME (SNAP2_LOCKED).
pub const SNAP2_LOCKED: u8 = 2;
/// `locking_state` bit: the request's full lock set was acquired once.
pub const ALL_LOCKED: u8 = 8;

/// One entry of a lock vector: a lock and what to take on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOp {
    /// The lock.
    pub lock: LockId,
    /// `RDLOCK`, `WRLOCK`, `XLOCK` (after merging, exactly one mode; see `sort_and_merge`).
    pub flags: u8,
    /// Remote wrlock target rank: set exactly when `flags` has `REMOTE_WRLOCK` (§4.3
    /// `add_remote_wrlock`).
    pub wrlock_target: Option<Rank>,
}

impl LockOp {
    /// A rdlock entry.
    pub const fn rd(lock: LockId) -> LockOp {
        LockOp { lock, flags: RDLOCK, wrlock_target: None }
    }

    /// A wrlock entry.
    pub const fn wr(lock: LockId) -> LockOp {
        LockOp { lock, flags: WRLOCK, wrlock_target: None }
    }

    /// An xlock entry.
    pub const fn x(lock: LockId) -> LockOp {
        LockOp { lock, flags: XLOCK, wrlock_target: None }
    }

    /// A remote wrlock entry: `target` takes a wrlock on `lock` for this request (§4.6), used
    /// when the rank that must wrlock is not the one running the request (a rename's source
    /// directory on another rank).
    pub const fn remote_wr(lock: LockId, target: Rank) -> LockOp {
        LockOp { lock, flags: REMOTE_WRLOCK, wrlock_target: Some(target) }
    }

    /// Whether this entry takes an xlock.
    pub const fn is_xlock(&self) -> bool {
        self.flags & XLOCK != 0
    }

    /// Whether this entry takes a local wrlock.
    pub const fn is_wrlock(&self) -> bool {
        self.flags & WRLOCK != 0
    }

    /// Whether this entry takes a rdlock.
    pub const fn is_rdlock(&self) -> bool {
        self.flags & RDLOCK != 0
    }
}

/// Ceph's `sort_and_merge` (§4.3, §8 facts 35 and 36).
///
/// Sorts each maximal run of consecutive entries on the same object by lock-type value and
/// leaves the order of different objects exactly as the caller built it; then merges adjacent
/// entries on the same lock by OR-ing their flags, an xlock absorbing rdlock and wrlock.
/// Returns `false` (vector unchanged) if an xlock would merge with a remote wrlock, which Ceph
/// treats as a caller bug.
pub fn sort_and_merge(ops: &mut Vec<LockOp>) -> bool {
    let mut sorted = ops.clone();
    let mut start = 0;
    while start < sorted.len() {
        let obj = sorted[start].lock.obj;
        let mut end = start + 1;
        while end < sorted.len() && sorted[end].lock.obj == obj {
            end += 1;
        }
        sorted[start..end].sort_by_key(|op| op.lock.ty.value());
        start = end;
    }
    let mut merged: Vec<LockOp> = Vec::with_capacity(sorted.len());
    for op in sorted {
        match merged.last_mut() {
            Some(prev) if prev.lock == op.lock => {
                prev.flags |= op.flags;
                if op.wrlock_target.is_some() {
                    prev.wrlock_target = op.wrlock_target;
                }
                if prev.flags & XLOCK != 0 {
                    if prev.flags & REMOTE_WRLOCK != 0 {
                        return false;
                    }
                    prev.flags = XLOCK;
                }
            }
            _ => merged.push(op),
        }
    }
    *ops = merged;
    true
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Acquiring locks (possibly waiting).
    Locking,
    /// Holds its locks and waits for the driver (lock-set requests without journaling).
    Holding,
    /// Its journal entry was submitted; waits for it to be safe.
    Committing(JournalSeq),
}

/// A piece of projected state to pop, in order, once the journal entry is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// `pop_and_dirty_projected_inode`.
    Inode(InodeId),
    /// `pop_projected_linkage`.
    Linkage(DentryId),
    /// `pop_and_dirty_projected_fnode`.
    Fnode(DirfragId),
}

/// One op-tracker flag point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpEvent {
    /// Locker clock when it happened.
    pub at_ms: u64,
    /// Ceph's flag point text ("failed to rdlock, waiting", "acquired locks", …).
    pub what: String,
}

/// An in-flight request (Ceph's MDRequest).
#[derive(Debug, Clone)]
pub struct Mutation {
    pub(crate) reqid: ReqId,
    pub(crate) client: Option<ClientId>,
    pub(crate) held: BTreeMap<LockId, u8>,
    pub(crate) locking: Option<LockId>,
    pub(crate) locking_state: u8,
    pub(crate) auth_pins: BTreeSet<ObjRef>,
    pub(crate) waiting_on: Option<LockId>,
    pub(crate) phase: Phase,
    pub(crate) early_replied: bool,
    pub(crate) projections: Vec<Projection>,
    pub(crate) events: Vec<OpEvent>,
    pub(crate) new_dentries: Vec<DentryId>,
    pub(crate) acquired: Vec<(LockId, u8)>,
    pub(crate) orphaned: bool,
    /// Peer side (§4.17): the leader rank this request serves; `None` for a leader request.
    pub(crate) peer_of: Option<Rank>,
    /// Peer side: every lock the leader asked for so far (a peer keeps earlier xlocks and
    /// wrlocks of the same request while acquiring a later one, §4.6).
    pub(crate) peer_locks: Vec<LockOp>,
    /// Peer side: the ack owed to the leader once `peer_locks` are all held.
    pub(crate) peer_ack: Option<(crate::message::PeerOp, LockId)>,
    /// Leader side: ranks involved in this request (Ceph's `more()->peers`); each is told to
    /// drop what it holds for us when the request goes away.
    pub(crate) peers: BTreeSet<Rank>,
    /// Leader side: ranks whose ack this request waits for (Ceph's `waiting_on_peer`). The
    /// request is re-dispatched when the set becomes empty.
    pub(crate) waiting_on_peer: BTreeSet<Rank>,
    /// Leader side: the rank asked for the lock in `locking` (Ceph's `locking_target_mds`).
    pub(crate) locking_target: Option<Rank>,
    /// Leader side: remote wrlocks held, with the rank holding each.
    pub(crate) remote_wrlocks: BTreeMap<LockId, Rank>,
    /// Leader side: objects auth-pinned on their auth rank for this request.
    pub(crate) remote_auth_pins: BTreeMap<ObjRef, Rank>,
    /// Leader side: the rename's source inode its auth must freeze when pinning it (§4.4
    /// `auth_pin_freeze`), set before the rename locks the inode.
    pub(crate) auth_pin_freeze: Option<ObjRef>,
    /// Leader side: the inode a peer acked as frozen for this request.
    pub(crate) remote_frozen: Option<ObjRef>,
}

impl Mutation {
    pub(crate) fn new(reqid: ReqId, client: Option<ClientId>, now_ms: u64) -> Mutation {
        Mutation {
            reqid,
            client,
            held: BTreeMap::new(),
            locking: None,
            locking_state: 0,
            auth_pins: BTreeSet::new(),
            waiting_on: None,
            phase: Phase::Locking,
            early_replied: false,
            projections: Vec::new(),
            events: vec![OpEvent { at_ms: now_ms, what: "initiated".to_string() }],
            new_dentries: Vec::new(),
            acquired: Vec::new(),
            orphaned: false,
            peer_of: None,
            peer_locks: Vec::new(),
            peer_ack: None,
            peers: BTreeSet::new(),
            waiting_on_peer: BTreeSet::new(),
            locking_target: None,
            remote_wrlocks: BTreeMap::new(),
            remote_auth_pins: BTreeMap::new(),
            auth_pin_freeze: None,
            remote_frozen: None,
        }
    }

    /// Request id.
    pub fn reqid(&self) -> ReqId {
        self.reqid
    }

    /// Client (`None` for internal mutations).
    pub fn client(&self) -> Option<ClientId> {
        self.client
    }

    /// Locks held and how (`RDLOCK` / `WRLOCK` / `XLOCK` bits).
    pub fn held(&self) -> &BTreeMap<LockId, u8> {
        &self.held
    }

    /// Whether the request holds `lock` with any of `flags`.
    pub fn holds(&self, lock: LockId, flags: u8) -> bool {
        self.held.get(&lock).is_some_and(|f| f & flags != 0)
    }

    /// The lock whose xlock this request has started (`req.locking`).
    pub fn locking(&self) -> Option<LockId> {
        self.locking
    }

    /// The lock the request waits on, if any.
    pub fn waiting_on(&self) -> Option<LockId> {
        self.waiting_on
    }

    /// Lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether an early (unsafe) reply went out.
    pub fn early_replied(&self) -> bool {
        self.early_replied
    }

    /// Op-tracker trail, oldest first.
    pub fn events(&self) -> &[OpEvent] {
        &self.events
    }

    /// Objects this request auth-pinned.
    pub fn auth_pins(&self) -> &BTreeSet<ObjRef> {
        &self.auth_pins
    }

    /// What the request projected so far, in the order it will be applied.
    pub fn projections(&self) -> &[Projection] {
        &self.projections
    }

    /// The leader rank this peer request serves (`None`: this rank leads the request).
    pub fn peer_of(&self) -> Option<Rank> {
        self.peer_of
    }

    /// Ranks whose peer-request ack this request waits for.
    pub fn waiting_on_peer(&self) -> &BTreeSet<Rank> {
        &self.waiting_on_peer
    }

    /// Ranks this leader request has sent peer requests to (they hold or may hold state for
    /// it, so they are told to drop it when the request ends).
    pub fn peers(&self) -> &BTreeSet<Rank> {
        &self.peers
    }

    /// The rank asked for the lock being remotely acquired (`locking`), if any.
    pub fn locking_target(&self) -> Option<Rank> {
        self.locking_target
    }

    /// Remote wrlocks held, with the rank that holds each for us.
    pub fn remote_wrlocks(&self) -> &BTreeMap<LockId, Rank> {
        &self.remote_wrlocks
    }

    /// Objects auth-pinned for us on their auth rank.
    pub fn remote_auth_pins(&self) -> &BTreeMap<ObjRef, Rank> {
        &self.remote_auth_pins
    }

    pub(crate) fn mark_event(&mut self, now_ms: u64, what: &str) {
        self.events.push(OpEvent { at_ms: now_ms, what: what.to_string() });
    }

    pub(crate) fn add_held(&mut self, lock: LockId, flag: u8) {
        let f = self.held.entry(lock).or_insert(0);
        if *f & flag == 0 {
            self.acquired.retain(|e| *e != (lock, flag));
            self.acquired.push((lock, flag));
        }
        *f |= flag;
    }

    /// Locks in the order they were granted since the request last dropped everything
    /// (entries stay after an individual release; `held` is the current set).
    pub fn acquired(&self) -> &[(LockId, u8)] {
        &self.acquired
    }

    pub(crate) fn remove_held(&mut self, lock: LockId, flag: u8) {
        if let Some(f) = self.held.get_mut(&lock) {
            *f &= !flag;
            if *f == 0 {
                self.held.remove(&lock);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DentryId, InodeId};
    use lock_sm::LockType as T;

    fn i(n: u32, t: T) -> LockId {
        LockId::inode(InodeId(n), t)
    }

    #[test]
    fn fact_35_sorts_within_runs_only() {
        let mut v = vec![
            LockOp::x(i(2, T::ILink)),
            LockOp::rd(i(2, T::ISnap)),
            LockOp::wr(i(1, T::IFile)),
            LockOp::rd(i(1, T::ISnap)),
            LockOp::x(LockId::dentry(DentryId(0), T::Dn)),
        ];
        assert!(sort_and_merge(&mut v));
        let got: Vec<LockId> = v.iter().map(|o| o.lock).collect();
        assert_eq!(
            got,
            vec![
                i(2, T::ISnap),
                i(2, T::ILink),
                i(1, T::ISnap),
                i(1, T::IFile),
                LockId::dentry(DentryId(0), T::Dn)
            ],
            "object 2 stays before object 1 although its index is larger"
        );
    }

    #[test]
    fn fact_35_non_consecutive_runs_are_not_joined() {
        let mut v = vec![LockOp::rd(i(1, T::IFile)), LockOp::rd(i(2, T::IAuth)), LockOp::rd(i(1, T::ISnap))];
        assert!(sort_and_merge(&mut v));
        let got: Vec<LockId> = v.iter().map(|o| o.lock).collect();
        assert_eq!(got, vec![i(1, T::IFile), i(2, T::IAuth), i(1, T::ISnap)]);
    }

    #[test]
    fn fact_36_xlock_absorbs_rdlock_and_wrlock() {
        let mut v = vec![LockOp::rd(i(1, T::IFile)), LockOp::x(i(1, T::IFile)), LockOp::wr(i(1, T::IFile))];
        assert!(sort_and_merge(&mut v));
        assert_eq!(v, vec![LockOp::x(i(1, T::IFile))]);
        let mut v = vec![LockOp::rd(i(1, T::IFile)), LockOp::wr(i(1, T::IFile))];
        assert!(sort_and_merge(&mut v));
        assert_eq!(v[0].flags, RDLOCK | WRLOCK);
    }

    #[test]
    fn xlock_with_remote_wrlock_is_refused() {
        let remote = LockOp { lock: i(1, T::IFile), flags: REMOTE_WRLOCK, wrlock_target: Some(1) };
        let mut v = vec![remote, LockOp::x(i(1, T::IFile))];
        assert!(!sort_and_merge(&mut v));
        assert_eq!(v.len(), 2);
    }
}
