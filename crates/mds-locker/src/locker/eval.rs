//! Choosing lock states and the loner (mds spec §4.11).
//!
//! Once a lock is stable and idle, `eval` picks the state that best serves the clients' wanted
//! caps and the waiters: SYNC for readers, EXCL for a single writer (the loner), MIX for
//! several writers, LOCK for the nest lock on an unreplicated directory.

use lock_sm::LockType;
use lock_sm::caps::{ANY_FILE_RD, ANY_WR, GBUFFER, GEXCL, GRD, GWR, unshift_caps};

use crate::error::LockerError;
use crate::ids::{ClientId, InodeId, LockId};
use crate::lock::WAIT_WR;

use super::Locker;

/// The order `eval(inode, mask)` evaluates an inode's locks in (§4.11).
const EVAL_ORDER: [LockType; 7] = [
    LockType::IFile,
    LockType::IAuth,
    LockType::ILink,
    LockType::IXattr,
    LockType::INest,
    LockType::IFlock,
    LockType::IPolicy,
];

/// The cap-bearing locks, as `eval_cap_gather` visits them.
pub(crate) const CAP_LOCK_TYPES: [LockType; 4] =
    [LockType::IFile, LockType::IAuth, LockType::ILink, LockType::IXattr];

/// `eval` mask covering every lock `EVAL_ORDER` visits.
pub(crate) const EVAL_ALL: u16 = {
    let mut m = 0;
    let mut i = 0;
    while i < EVAL_ORDER.len() {
        m |= EVAL_ORDER[i].value();
        i += 1;
    }
    m
};

impl Locker {
    /// `try_eval(lock)`: honour pending scatter requests, then let the lock choose a state.
    /// An inode frozen for a rename's export is not evaluated (see `migrate`).
    pub(crate) fn try_eval(&mut self, id: LockId) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        if !lock.is_auth() || id.inode_id().is_some_and(|i| self.export_frozen(i)) {
            return Ok(());
        }
        if matches!(id.ty, LockType::IFile | LockType::INest | LockType::IDft) {
            let flags = lock.scatter_flags();
            let state = lock.state();
            if flags.scatter_wanted && state != lock_sm::LockState::Mix {
                self.scatter_mix(id)?;
            } else if flags.unscatter_wanted && state != lock_sm::LockState::Lock {
                self.simple_lock(id)?;
            }
        }
        if !self.lk(id)?.is_stable() {
            return Ok(());
        }
        self.eval_lock(id)
    }

    /// `eval(lock)`: dispatch to the class's evaluator (the lock must be stable and auth).
    pub(crate) fn eval_lock(&mut self, id: LockId) -> Result<(), LockerError> {
        match id.ty {
            LockType::IFile => self.file_eval(id),
            LockType::INest | LockType::IDft => self.scatter_eval(id),
            LockType::DVersion | LockType::IVersion => Ok(()),
            _ => self.simple_eval(id),
        }
    }

    /// `eval_any`: complete a transition, or choose a state if stable.
    fn eval_any(&mut self, id: LockId) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        if !lock.is_stable() {
            self.eval_gather(id, false)
        } else if lock.is_auth() {
            self.eval_lock(id)
        } else {
            Ok(())
        }
    }

    /// The loner's wanted generic caps for this lock (Ceph's `get_caps_wanted` loner bucket),
    /// and everyone else's.
    fn caps_wanted(&self, id: LockId) -> (u32, u32) {
        let Some(n) = id.inode_id().and_then(|i| self.cache.inode(i)) else {
            return (0, 0);
        };
        let (mut loner, mut other) = (0, 0);
        for (c, cap) in n.caps() {
            let w = unshift_caps(cap.wanted(), id.ty);
            if Some(*c) == n.loner() {
                loner |= w;
            } else {
                other |= w;
            }
        }
        (loner, other)
    }

    /// `simple_eval` (§4.11).
    fn simple_eval(&mut self, id: LockId) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        if !lock.is_stable() || !lock.is_auth() {
            return Ok(());
        }
        let state = lock.state();
        let wanted = if id.ty.is_cap_bearing() { self.caps_wanted(id).0 } else { 0 };
        let target_loner = id.inode_id().and_then(|i| self.cache.inode(i)).and_then(|n| n.target_loner());
        use lock_sm::LockState as S;
        if state != S::Excl && target_loner.is_some() && wanted & GEXCL != 0 {
            self.simple_excl(id)
        } else if state != S::Sync
            && !lock.is_wrlocked()
            && ((wanted & GEXCL == 0 && !lock.is_waiter_for(WAIT_WR))
                || (state == S::Excl && target_loner.is_none()))
        {
            self.simple_sync(id).map(|_| ())
        } else {
            Ok(())
        }
    }

    /// `scatter_eval` (IDFT, INEST) for an unreplicated inode with one dirfrag (§4.11).
    fn scatter_eval(&mut self, id: LockId) -> Result<(), LockerError> {
        use lock_sm::LockState as S;
        let lock = self.lk(id)?;
        if !lock.is_stable() || !lock.is_auth() {
            return Ok(());
        }
        let state = lock.state();
        if !lock.is_rdlocked() && state != S::Mix && lock.scatter_flags().scatter_wanted {
            return self.scatter_mix(id);
        }
        if id.ty == LockType::INest {
            // Keep INEST writable: MIX when replicated (replicas may write rstats into the
            // dirfrags they are auth for), LOCK otherwise.
            if !lock.is_rdlocked() {
                if self.lock_replicated(id) {
                    if state != S::Mix {
                        self.scatter_mix(id)?;
                    }
                } else if state != S::Lock {
                    self.simple_lock(id)?;
                }
            }
            return Ok(());
        }
        if !lock.is_wrlocked() && state != S::Sync {
            self.simple_sync(id)?;
        }
        Ok(())
    }

    /// `file_eval` (IFILE, §4.11): the first matching rule wins.
    fn file_eval(&mut self, id: LockId) -> Result<(), LockerError> {
        use lock_sm::LockState as S;
        let lock = self.lk(id)?;
        let Some(n) = id.inode_id().and_then(|i| self.cache.inode(i)) else {
            return Ok(());
        };
        if !lock.is_stable() || !lock.is_auth() {
            return Ok(());
        }
        let (loner_wanted, other_wanted) = self.caps_wanted(id);
        let wanted = loner_wanted | other_wanted;
        let loner_issued = n
            .loner()
            .and_then(|l| n.caps().get(&l))
            .map(|c| unshift_caps(c.issued(), LockType::IFile))
            .unwrap_or(0);
        let target_loner = n.target_loner();
        let is_dir = n.is_dir();
        let ncaps = n.caps().len();
        let state = lock.state();
        let rdlocked = lock.is_rdlocked();
        let wrlocked = lock.is_wrlocked();
        let wr_waiter = lock.is_waiter_for(WAIT_WR);
        let subtree = self.has_subtree_dirfrag(id);
        if state == S::Excl {
            let leave = (loner_wanted | loner_issued) & (GEXCL | GWR | GBUFFER) == 0
                || other_wanted & (GEXCL | GWR | GRD) != 0
                || (is_dir && ncaps > 1);
            if leave {
                if wanted & GWR != 0 || wr_waiter {
                    self.scatter_mix(id)?;
                } else if !wrlocked {
                    self.simple_sync(id)?;
                }
            }
        } else if !rdlocked
            && target_loner.is_some()
            && (if is_dir { !subtree } else { wanted & (GEXCL | GWR | GBUFFER) != 0 })
        {
            self.file_excl(id)?;
        } else if state != S::Mix
            && !rdlocked
            && (lock.scatter_flags().scatter_wanted || (target_loner.is_none() && wanted & GWR != 0))
        {
            self.scatter_mix(id)?;
        } else if state != S::Sync
            && !wrlocked
            && !wr_waiter
            && wanted & GWR == 0
            && !(state == S::Mix && is_dir && subtree)
        {
            self.simple_sync(id)?;
        }
        Ok(())
    }

    /// `eval(inode, mask)` (§4.11): re-choose the loner, evaluate the masked locks in order,
    /// and hand the loner over if the wanted one differs.
    pub(crate) fn eval_inode(&mut self, inode: InodeId, mut mask: u16) -> Result<(), LockerError> {
        let Some(n) = self.cache.inode(inode) else {
            return Ok(());
        };
        if self.export_frozen(inode) {
            // Nothing about an inode frozen for export may change (see `migrate`).
            return Ok(());
        }
        let is_auth = n.is_auth();
        let mut need_issue = false;
        if is_auth {
            if self.choose_ideal_loner(inode)? {
                need_issue = true;
                mask = EVAL_ALL;
            } else if self.cache.inode(inode).is_some_and(|n| n.want_loner() != n.loner()) {
                mask = EVAL_ALL;
            }
        }
        for _round in 0..2 {
            for ty in EVAL_ORDER {
                if mask & ty.value() != 0 {
                    self.eval_any(LockId::inode(inode, ty))?;
                }
            }
            let Some(n) = self.cache.inode(inode) else {
                return Ok(());
            };
            if is_auth && n.want_loner() != n.loner() && self.try_drop_loner(inode)? {
                need_issue = true;
                if let Some(want) = self.cache.inode(inode).and_then(|n| n.want_loner()) {
                    self.set_loner(inode, Some(want))?;
                    mask = EVAL_ALL;
                    continue;
                }
            }
            break;
        }
        if need_issue {
            self.need_issue.insert(inode);
        }
        Ok(())
    }

    /// `eval_cap_gather`: after a cap ack or release, let the unstable cap-bearing locks
    /// complete.
    pub(crate) fn eval_cap_gather(&mut self, inode: InodeId) -> Result<(), LockerError> {
        for ty in CAP_LOCK_TYPES {
            let id = LockId::inode(inode, ty);
            if !self.lk(id)?.is_stable() {
                self.eval_gather(id, false)?;
            }
        }
        Ok(())
    }

    /// Ceph's `has_subtree_or_exporting_dirfrag`, as far as cephlock models subtrees: some
    /// dirfrag of the lock's directory inode has a different auth than the inode, so it is a
    /// subtree root another rank writes stats into (only possible with several ranks).
    pub(crate) fn has_subtree_dirfrag(&self, id: LockId) -> bool {
        let Some(n) = id.inode_id().and_then(|i| self.cache.inode(i)) else {
            return false;
        };
        let auth = n.auth();
        n.dirfrags().values().filter_map(|f| self.cache.dirfrag(*f)).any(|f| f.auth() != auth)
    }

    // ---- loner selection (§4.11) -----------------------------------------------------------

    /// `calc_ideal_loner`: the single client whose cap qualifies, or nobody.
    pub(crate) fn calc_ideal_loner(&self, inode: InodeId) -> Option<ClientId> {
        let n = self.cache.inode(inode)?;
        let mut found = None;
        let mut count = 0;
        for (c, cap) in n.caps() {
            let qualifies =
                if n.is_dir() { cap.wanted() != 0 } else { cap.wanted() & (ANY_WR | ANY_FILE_RD) != 0 };
            if qualifies {
                count += 1;
                found = Some(*c);
            }
        }
        if count == 1 { found } else { None }
    }

    /// `choose_ideal_loner`: returns whether the loner changed.
    pub(crate) fn choose_ideal_loner(&mut self, inode: InodeId) -> Result<bool, LockerError> {
        let want = self.calc_ideal_loner(inode);
        let Some(n) = self.cache.inode_mut(inode) else {
            return Ok(false);
        };
        n.want_loner = want;
        let loner = n.loner;
        let mut changed = false;
        if loner.is_some() && loner != want {
            if !self.try_drop_loner(inode)? {
                return Ok(false);
            }
            changed = true;
        }
        if want.is_some() && self.cache.inode(inode).is_some_and(|n| n.loner().is_none()) {
            self.set_loner(inode, want)?;
            changed = true;
        }
        Ok(changed)
    }

    /// `try_drop_loner`: succeeds iff the loner holds nothing an ordinary client could not.
    pub(crate) fn try_drop_loner(&mut self, inode: InodeId) -> Result<bool, LockerError> {
        let Some(n) = self.cache.inode(inode) else {
            return Ok(false);
        };
        let Some(loner) = n.loner() else {
            return Ok(true);
        };
        let other_allowed = self.allowed_by_type(inode, lock_sm::CapsWho::Any)?;
        let droppable = n.caps().get(&loner).is_none_or(|c| c.issued() & !other_allowed == 0);
        if droppable {
            self.set_loner(inode, None)?;
        }
        Ok(droppable)
    }

    /// `set_loner_cap`: records the loner and mirrors it as `excl_client` on the cap-bearing
    /// locks, where it satisfies XCL for wrlocks (§8 fact 34).
    pub(crate) fn set_loner(&mut self, inode: InodeId, loner: Option<ClientId>) -> Result<(), LockerError> {
        if let Some(n) = self.cache.inode_mut(inode) {
            n.loner = loner;
        }
        for ty in CAP_LOCK_TYPES {
            self.lkm(LockId::inode(inode, ty))?.excl_client = loner;
        }
        tracing::debug!(?inode, ?loner, "loner");
        Ok(())
    }
}
