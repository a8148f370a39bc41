//! The replica ↔ auth lock protocol (mds spec §4.12): handling `MLock` on either side, the
//! helpers the initiators use to message replicas, and the lock-data encoders (§2.3).
//!
//! A replica's copy of a lock never changes state on its own: the auth tells it where to go
//! (SYNC, MIX, LOCK), the replica drains what its own holders, leases and caps forbid in the
//! target (its local `eval_gather`) and acknowledges, and the auth completes only once every
//! replica in the lock's gather set has answered. Replicas that want something the auth's
//! state does not give them ask for it (REQRDLOCK, REQSCATTER, REQUNSCATTER, NUDGE).
//!
//! REQRDLOCK reaching an auth whose lock is unstable is parked and handled again once the lock
//! is stable (`scatter` module). Scattered data a replica sends (LOCKACK from MIX_LOCK,
//! SYNCACK) is stored in the auth's copy of the sender's dirfrag and marks the auth lock dirty;
//! the gather then waits for `scatter_writebehind` to fold and journal it, and LOCKFLUSHED goes
//! out only when that entry is safe (§4.9 auth step 2, §4.13).
//!
//! Deviations from the spec, chosen for this scope:
//! * Messages naming an object this rank does not have are dropped (as Ceph does); a message
//!   whose direction contradicts our authority, or whose state precondition fails (Ceph
//!   asserts), is refused with `LockerError::BadMessage` before anything changes.

use lock_sm::{LockAction, LockState, LockType, Machine};

use crate::cache::{DirStat, Linkage, NestStat};
use crate::effects::Effect;
use crate::error::LockerError;
use crate::ids::{LockId, LockKey, ObjRef, Rank, ReqId};
use crate::lock::{WAIT_RD, WAIT_STABLE, WAIT_WR};
use crate::message::{DentryLinkage, LockData, LockMsg, MdsMessage};

use super::Locker;
use super::scatter::ScatterAccounted;

impl Locker {
    // ---- public entry points ---------------------------------------------------------------

    /// `scatter_nudge(lock, force)` for a driver or a periodic tick (§4.13): on the auth, cycle
    /// a stable scatterlock so replicas' scattered data is gathered; on a replica, ask the auth
    /// to do so (NUDGE). Only IFILE, INEST and IDFT scatter.
    pub fn nudge_scatterlock(&mut self, lock: &LockKey) -> Result<Vec<Effect>, LockerError> {
        let id = self.scatter_lock_named(lock)?;
        let result = self.scatter_nudge(id).and_then(|()| self.finish_event());
        self.take_fx(result)
    }

    /// A replica that no longer wants its copy scattered asks the auth to leave MIX
    /// (REQUNSCATTER, §4.12); the auth goes to LOCK now if stable, or once it is.
    pub fn request_unscatter(&mut self, lock: &LockKey) -> Result<Vec<Effect>, LockerError> {
        let id = self.scatter_lock_named(lock)?;
        if self.lk(id)?.is_auth() {
            return Err(LockerError::Precondition("REQUNSCATTER is sent by a replica"));
        }
        self.send_to_auth(id, LockAction::ReqUnscatter, None, None)?;
        let result = self.finish_event();
        self.take_fx(result)
    }

    fn take_fx(&mut self, result: Result<(), LockerError>) -> Result<Vec<Effect>, LockerError> {
        match result {
            Ok(()) => Ok(std::mem::take(&mut self.fx)),
            Err(e) => {
                self.fx.clear();
                Err(e)
            }
        }
    }

    fn scatter_lock_named(&self, lock: &LockKey) -> Result<LockId, LockerError> {
        let id = self.cache.resolve_lock(lock).ok_or_else(|| LockerError::UnknownObject(lock.obj.clone()))?;
        if !matches!(id.ty, LockType::IFile | LockType::INest | LockType::IDft) {
            return Err(LockerError::UnsupportedLockOp {
                op: "scatter",
                lock: id,
                why: "only IFILE, INEST and IDFT scatter (§4.13)",
            });
        }
        Ok(id)
    }

    // ---- helpers shared with the initiators -------------------------------------------------

    /// Whether this rank is auth for the lock's object and some other rank replicates it.
    pub(crate) fn lock_replicated(&self, id: LockId) -> bool {
        self.lk(id).is_ok_and(|l| l.is_auth()) && self.cache.is_replicated(id.obj)
    }

    /// Sends `action` to every replica of the lock's object, with the auth's lock data when
    /// `with_data`.
    pub(crate) fn send_lock_to_replicas(
        &mut self,
        id: LockId,
        action: LockAction,
        with_data: bool,
    ) -> Result<(), LockerError> {
        let key = self.cache.lock_key(id).ok_or(LockerError::UnknownLock(id))?;
        let data = if with_data { Some(self.encode_lock_data(id)?) } else { None };
        let me = self.cache.rank();
        for to in self.cache.replicas_of(id.obj) {
            let msg = LockMsg { action, asker: me, reqid: None, lock: key.clone(), data: data.clone() };
            self.send(to, MdsMessage::Lock(msg));
        }
        Ok(())
    }

    /// `init_gather`: wait for an ack from every current replica.
    pub(crate) fn init_gather(&mut self, id: LockId) -> Result<(), LockerError> {
        let replicas = self.cache.replicas_of(id.obj);
        self.lkm(id)?.gather_set = replicas;
        Ok(())
    }

    /// Sends `action` to the auth of the lock's object (a replica's ack or request).
    pub(crate) fn send_to_auth(
        &mut self,
        id: LockId,
        action: LockAction,
        reqid: Option<ReqId>,
        data: Option<LockData>,
    ) -> Result<(), LockerError> {
        let key = self.cache.lock_key(id).ok_or(LockerError::UnknownLock(id))?;
        let auth = self.cache.auth_of(id.obj).ok_or(LockerError::UnknownLock(id))?;
        let me = self.cache.rank();
        if auth == me {
            return Err(LockerError::Precondition("a replica message from the auth"));
        }
        self.send(auth, MdsMessage::Lock(LockMsg { action, asker: me, reqid, lock: key, data }));
        Ok(())
    }

    /// A replica's part of `eval_gather` once its local gather is finished (§4.9 replica
    /// table): acknowledge to the auth and return the state to move to.
    pub(crate) fn replica_gather_done(
        &mut self,
        id: LockId,
        state: LockState,
    ) -> Result<LockState, LockerError> {
        let next = match state {
            LockState::SyncLock => {
                self.send_to_auth(id, LockAction::LockAck, None, None)?;
                LockState::Lock
            }
            LockState::MixSync => {
                let data = self.encode_replica_scatter_data(id)?;
                self.send_to_auth(id, LockAction::SyncAck, None, Some(data))?;
                self.start_flush(id)?;
                LockState::MixSync2
            }
            LockState::MixSync2 => {
                self.finish_flush(id)?;
                LockState::Sync
            }
            LockState::SyncMix2 => LockState::Mix,
            LockState::SyncMix => {
                self.send_to_auth(id, LockAction::MixAck, None, None)?;
                LockState::SyncMix2
            }
            LockState::MixLock => {
                let data = self.encode_replica_scatter_data(id)?;
                self.send_to_auth(id, LockAction::LockAck, None, Some(data))?;
                self.start_flush(id)?;
                LockState::Lock
            }
            _ => {
                return Err(LockerError::Precondition(
                    "replica gather in a state the auth never sends it to",
                ));
            }
        };
        Ok(next)
    }

    /// `start_flush`: scattered data just sent to the auth is now in flight (DIRTY → FLUSHING).
    fn start_flush(&mut self, id: LockId) -> Result<(), LockerError> {
        let dirty = self.replica_has_dirty_frags(id) || self.lk(id)?.scatter_flags().dirty;
        let l = self.lkm(id)?;
        if dirty {
            l.scatter.flushing = true;
        }
        l.scatter.dirty = false;
        Ok(())
    }

    /// `finish_flush` + `clear_flushed`: the auth has the data.
    fn finish_flush(&mut self, id: LockId) -> Result<(), LockerError> {
        let l = self.lkm(id)?;
        l.scatter.flushing = false;
        l.scatter.flushed = false;
        Ok(())
    }

    // ---- MLock dispatch ---------------------------------------------------------------------

    /// Handles an `MLock` from `from`.
    pub(crate) fn handle_lock_message(&mut self, from: Rank, msg: LockMsg) -> Result<(), LockerError> {
        tracing::debug!(rank = self.cache.rank(), from, action = msg.action.name(), lock = %msg.lock, "MLock");
        let Some(id) = self.cache.resolve_lock(&msg.lock) else {
            tracing::debug!(from, lock = %msg.lock, action = msg.action.name(), "MLock for an object not in cache; dropped");
            return Ok(());
        };
        if self.migrate_filter_lock_msg(from, id, &msg)? {
            return Ok(());
        }
        let to_replica = msg.action.value() < 0;
        let is_auth = self.lk(id)?.is_auth();
        if to_replica == is_auth {
            return Err(LockerError::BadMessage {
                from,
                why: if is_auth {
                    "auth-to-replica MLock sent to the auth"
                } else {
                    "replica-to-auth MLock sent to a replica"
                },
            });
        }
        if !is_auth && self.cache.auth_of(id.obj) != Some(from) {
            return Err(LockerError::BadMessage {
                from,
                why: "auth-to-replica MLock from a rank that is not the auth",
            });
        }
        match id.ty.machine() {
            Machine::Local => {
                Err(LockerError::BadMessage { from, why: "locallocks are never messaged (§1.6)" })
            }
            Machine::Simple => self.handle_simple_lock(from, id, msg),
            Machine::File | Machine::Scatter => self.handle_file_lock(from, id, msg),
        }
    }

    fn bad(from: Rank, why: &'static str) -> Result<(), LockerError> {
        Err(LockerError::BadMessage { from, why })
    }

    /// The simple-lock handler (§4.12): DN, IAUTH, ILINK, ISNAP, IXATTR, IFLOCK, IPOLICY.
    fn handle_simple_lock(&mut self, from: Rank, id: LockId, msg: LockMsg) -> Result<(), LockerError> {
        let state = self.lk(id)?.state();
        match msg.action {
            LockAction::Sync => {
                if state != LockState::Lock {
                    return Self::bad(from, "SYNC for a simplelock replica not in LOCK");
                }
                if let Some(d) = &msg.data {
                    self.decode_lock_data(id, from, d)?;
                }
                self.set_state(id, LockState::Sync)?;
                self.wake(id, WAIT_RD | WAIT_STABLE)?;
                if id.ty.is_cap_bearing() {
                    self.request_issue(id);
                }
                Ok(())
            }
            LockAction::Lock => {
                if state != LockState::Sync {
                    return Self::bad(from, "LOCK for a simplelock replica not in SYNC");
                }
                self.set_state(id, LockState::SyncLock)?;
                self.revoke_client_leases(id)?;
                self.eval_gather(id, true)?;
                self.flush_if_unstable_and_locked(id)
            }
            LockAction::LockAck => {
                if !matches!(state, LockState::SyncLock | LockState::SyncExcl) {
                    return Self::bad(from, "LOCKACK for a simplelock not in SYNC_LOCK or SYNC_EXCL");
                }
                self.take_ack(from, id)
            }
            LockAction::ReqRdlock => self.handle_reqrdlock(from, id),
            _ => Self::bad(from, "action not used with simplelocks"),
        }
    }

    /// The file/scatter handler (§4.12): IFILE, INEST, IDFT.
    fn handle_file_lock(&mut self, from: Rank, id: LockId, msg: LockMsg) -> Result<(), LockerError> {
        use LockState as S;
        let state = self.lk(id)?.state();
        match msg.action {
            // ---- received by a replica ----
            LockAction::Sync => match state {
                S::Mix => {
                    self.set_state(id, S::MixSync)?;
                    self.eval_gather(id, true)?;
                    self.flush_if_unstable_and_locked(id)
                }
                S::Lock | S::MixSync2 => {
                    self.finish_flush(id)?;
                    if let Some(d) = &msg.data {
                        self.decode_lock_data(id, from, d)?;
                    }
                    self.set_state(id, S::Sync)?;
                    self.wake(id, WAIT_RD | WAIT_STABLE)?;
                    if id.ty.is_cap_bearing() {
                        self.request_issue(id);
                    }
                    Ok(())
                }
                _ => Self::bad(from, "SYNC for a scatterlock replica not in LOCK, MIX or MIX_SYNC2"),
            },
            LockAction::Lock => {
                let mid = match state {
                    S::Sync => S::SyncLock,
                    S::Mix => S::MixLock,
                    _ => return Self::bad(from, "LOCK for a scatterlock replica not in SYNC or MIX"),
                };
                self.set_state(id, mid)?;
                self.eval_gather(id, true)?;
                self.flush_if_unstable_and_locked(id)
            }
            LockAction::LockFlushed => {
                self.finish_flush(id)?;
                if self.lk(id)?.is_stable() {
                    self.wake(id, WAIT_STABLE)?;
                }
                Ok(())
            }
            LockAction::Mix => match state {
                S::Sync => {
                    self.set_state(id, S::SyncMix)?;
                    self.eval_gather(id, true)?;
                    self.flush_if_unstable_and_locked(id)
                }
                S::Lock | S::SyncMix2 => {
                    if let Some(d) = &msg.data {
                        self.decode_lock_data(id, from, d)?;
                    }
                    self.set_state(id, S::Mix)?;
                    if id.ty.is_cap_bearing() {
                        self.request_issue(id);
                    }
                    self.wake(id, WAIT_WR | WAIT_STABLE)
                }
                _ => Self::bad(from, "MIX for a scatterlock replica not in SYNC, LOCK or SYNC_MIX2"),
            },
            // ---- received by the auth ----
            LockAction::LockAck => {
                if !matches!(
                    state,
                    S::SyncLock
                        | S::MixLock
                        | S::MixLock2
                        | S::MixExcl
                        | S::SyncExcl
                        | S::SyncMix
                        | S::MixTsyn
                ) {
                    return Self::bad(from, "LOCKACK for a scatterlock not gathering LOCKACKs");
                }
                if !self.lk(id)?.gather_set().contains(&from) {
                    return Self::bad(from, "LOCKACK from a rank not in the gather set");
                }
                if matches!(state, S::MixLock | S::MixLock2 | S::MixExcl | S::MixTsyn) {
                    if let Some(d) = &msg.data {
                        self.decode_lock_data(id, from, d)?;
                    }
                    self.lkm(id)?.scatter.flushed = false;
                }
                self.take_ack(from, id)
            }
            LockAction::SyncAck => {
                if state != S::MixSync {
                    return Self::bad(from, "SYNCACK for a scatterlock not in MIX_SYNC");
                }
                if !self.lk(id)?.gather_set().contains(&from) {
                    return Self::bad(from, "SYNCACK from a rank not in the gather set");
                }
                if let Some(d) = &msg.data {
                    self.decode_lock_data(id, from, d)?;
                }
                self.take_ack(from, id)
            }
            LockAction::MixAck => {
                if state != S::SyncMix {
                    return Self::bad(from, "MIXACK for a scatterlock not in SYNC_MIX");
                }
                self.take_ack(from, id)
            }
            LockAction::ReqScatter => {
                let l = self.lk(id)?;
                if l.is_stable() {
                    if l.state() != S::Mix {
                        self.scatter_mix(id)?;
                    }
                } else {
                    self.lkm(id)?.scatter.scatter_wanted = true;
                }
                Ok(())
            }
            LockAction::ReqUnscatter => {
                let l = self.lk(id)?;
                if l.is_stable() {
                    if l.state() == S::Mix {
                        self.simple_lock(id)?;
                    }
                } else {
                    self.lkm(id)?.scatter.unscatter_wanted = true;
                }
                Ok(())
            }
            LockAction::ReqRdlock => self.handle_reqrdlock(from, id),
            LockAction::Nudge => {
                if self.lock_replicated(id) {
                    self.scatter_nudge(id)?;
                    self.need_flush = true;
                } else {
                    tracing::debug!(from, lock = ?id, "NUDGE for an unreplicated lock; ignored");
                }
                Ok(())
            }
        }
    }

    /// Removes `from` from the gather set (it must be there) and, once the set is empty, lets
    /// the transition complete.
    fn take_ack(&mut self, from: Rank, id: LockId) -> Result<(), LockerError> {
        if !self.lkm(id)?.gather_set.remove(&from) {
            return Self::bad(from, "ack from a rank not in the gather set");
        }
        if self.lk(id)?.gather_set().is_empty() {
            self.eval_gather(id, false)?;
        }
        Ok(())
    }

    /// `handle_reqrdlock` (§4.12): a stable non-SYNC auth lock goes to SYNC; a lock already in
    /// SYNC ignores it. An unstable lock parks the request until it is stable and then handles
    /// it again (Ceph's wait on STABLE), so the replica, which waits for STABLE on its own copy,
    /// is not stranded when the auth settles in a state its copy already has (e.g. LOCK → EXCL).
    pub(crate) fn handle_reqrdlock(&mut self, from: Rank, id: LockId) -> Result<(), LockerError> {
        let l = self.lk(id)?;
        if l.state() == LockState::Sync {
            tracing::debug!(from, lock = ?id, "REQRDLOCK for a lock already in SYNC; ignored");
        } else if l.is_stable() {
            self.simple_sync(id)?;
        } else {
            tracing::debug!(from, lock = ?id, state = %l.state(), "REQRDLOCK while unstable; parked");
            self.park_reqrdlock(id, from);
        }
        Ok(())
    }

    /// After a replica starts a gather: if holders keep it from completing, the journal may
    /// hold the updates they wait on (§4.12 "flush journal").
    fn flush_if_unstable_and_locked(&mut self, id: LockId) -> Result<(), LockerError> {
        if self.lk(id)?.is_unstable_and_locked() {
            self.need_flush = true;
        }
        Ok(())
    }

    /// `scatter_nudge(lock, force=true)` (§4.13). Auth: cycle a stable lock (replicated and
    /// not MIX → MIX; else not LOCK → LOCK; else → SYNC), at most two rounds, stopping as soon
    /// as it is transitional. Replica: send NUDGE.
    pub(crate) fn scatter_nudge(&mut self, id: LockId) -> Result<(), LockerError> {
        if !self.lk(id)?.is_auth() {
            return self.send_to_auth(id, LockAction::Nudge, None, None);
        }
        for _ in 0..2 {
            let l = self.lk(id)?;
            if !l.is_stable() {
                break;
            }
            let state = l.state();
            if self.lock_replicated(id) && state != LockState::Mix {
                self.scatter_mix(id)?;
            } else if state != LockState::Lock {
                self.simple_lock(id)?;
            } else {
                self.simple_sync(id)?;
            }
        }
        Ok(())
    }

    // ---- lock data (§2.3) ---------------------------------------------------------------------

    /// The auth's `encode_lock_state(type)`: the authoritative values the lock protects. For
    /// IFILE / INEST it includes every dirfrag's values.
    pub(crate) fn encode_lock_data(&self, id: LockId) -> Result<LockData, LockerError> {
        match id.obj {
            ObjRef::Dentry(d) => {
                let dn = self.cache.dentry(d).ok_or(LockerError::UnknownLock(id))?;
                Ok(match id.ty {
                    LockType::Dn => LockData::Dentry(self.linkage_key(dn.linkage())),
                    _ => LockData::Empty,
                })
            }
            ObjRef::Inode(i) => {
                let n = self.cache.inode(i).ok_or(LockerError::UnknownLock(id))?;
                let d = n.data();
                Ok(match id.ty {
                    LockType::IAuth => LockData::Auth {
                        version: d.version,
                        ctime_ms: d.ctime_ms,
                        mode: d.mode,
                        uid: d.uid,
                        gid: d.gid,
                    },
                    LockType::ILink => {
                        LockData::Link { version: d.version, ctime_ms: d.ctime_ms, nlink: d.nlink }
                    }
                    LockType::IXattr => LockData::Xattr {
                        version: d.version,
                        ctime_ms: d.ctime_ms,
                        xattrs: d.xattrs.clone(),
                        xattr_version: d.xattr_version,
                    },
                    LockType::IFile => LockData::File {
                        version: d.version,
                        ctime_ms: d.ctime_ms,
                        mtime_ms: d.mtime_ms,
                        size: d.size,
                        dirstat: d.dirstat,
                        frags: self.frag_stats(i, false).0,
                        dirty: false,
                    },
                    LockType::INest => LockData::Nest {
                        version: d.version,
                        rstat: d.rstat,
                        frags: self.frag_stats(i, false).1,
                        dirty: false,
                    },
                    _ => LockData::Empty,
                })
            }
        }
    }

    /// A replica's encoding of scattered data (§2.3: "a replica ships only a dirty flag plus
    /// per-frag values for frags it is auth for").
    fn encode_replica_scatter_data(&self, id: LockId) -> Result<LockData, LockerError> {
        let Some(i) = id.inode_id() else { return Ok(LockData::Empty) };
        let n = self.cache.inode(i).ok_or(LockerError::UnknownLock(id))?;
        let d = n.data();
        let dirty = self.replica_has_dirty_frags(id) || self.lk(id)?.scatter_flags().dirty;
        let (files, nests) = self.frag_stats(i, true);
        Ok(match id.ty {
            LockType::IFile => LockData::File {
                version: d.version,
                ctime_ms: d.ctime_ms,
                mtime_ms: d.mtime_ms,
                size: d.size,
                dirstat: d.dirstat,
                frags: files,
                dirty,
            },
            LockType::INest => LockData::Nest { version: d.version, rstat: d.rstat, frags: nests, dirty },
            _ => LockData::Empty,
        })
    }

    /// Per-dirfrag (fragstat, accounted) and (rstat, accounted) of inode `i`, optionally only
    /// for the frags this rank is auth for.
    #[allow(clippy::type_complexity)]
    fn frag_stats(
        &self,
        i: crate::ids::InodeId,
        only_auth: bool,
    ) -> (Vec<(u32, DirStat, DirStat)>, Vec<(u32, NestStat, NestStat)>) {
        let me = self.cache.rank();
        let (mut files, mut nests) = (Vec::new(), Vec::new());
        let Some(n) = self.cache.inode(i) else { return (files, nests) };
        for (frag, f) in n.dirfrags() {
            let Some(df) = self.cache.dirfrag(*f) else { continue };
            if only_auth && df.auth() != me {
                continue;
            }
            // Our own frags as projected: a pending `finish_scatter_update` already counts
            // (a replica only encodes once its wrlock holders, whose changes are applied
            // before they release, are gone).
            let fnode = if only_auth { df.projected_fnode() } else { df.fnode() };
            files.push((*frag, fnode.fragstat, fnode.accounted_fragstat));
            nests.push((*frag, fnode.rstat, fnode.accounted_rstat));
        }
        (files, nests)
    }

    /// Whether a replica holds scattered changes the auth has not folded: a dirfrag it is auth
    /// for whose stats differ from what was accounted into the inode.
    fn replica_has_dirty_frags(&self, id: LockId) -> bool {
        let Some(i) = id.inode_id() else { return false };
        let me = self.cache.rank();
        let Some(n) = self.cache.inode(i) else { return false };
        n.dirfrags().values().filter_map(|f| self.cache.dirfrag(*f)).filter(|df| df.auth() == me).any(|df| {
            let f = df.projected_fnode();
            match id.ty {
                LockType::IFile => f.fragstat != f.accounted_fragstat,
                LockType::INest => f.rstat != f.accounted_rstat,
                _ => false,
            }
        })
    }

    /// `decode_lock_state`. On a replica: take the auth's values (ctime only moves forward)
    /// and its per-frag values for frags this rank replicates. On the auth: store a replica's
    /// per-frag values into our replica of each dirfrag the sender is auth for, and mark the
    /// lock updated if the sender says it has unfolded changes (§4.13; the gather's
    /// writebehind folds them). A replica that is auth for a frag runs
    /// `finish_scatter_update` on it.
    fn decode_lock_data(&mut self, id: LockId, from: Rank, data: &LockData) -> Result<(), LockerError> {
        let is_auth = self.lk(id)?.is_auth();
        match (id.obj, data) {
            (ObjRef::Dentry(d), LockData::Dentry(link)) if !is_auth => self.decode_dentry_linkage(d, *link),
            (ObjRef::Inode(i), LockData::File { frags, dirty, .. }) if is_auth => {
                for (frag, fs, acc) in frags {
                    self.store_replica_frag(i, from, *frag, |f| {
                        f.fragstat = *fs;
                        f.accounted_fragstat = *acc;
                    });
                }
                if *dirty {
                    self.mark_updated_scatterlock(id)?;
                }
                Ok(())
            }
            (ObjRef::Inode(i), LockData::Nest { frags, dirty, .. }) if is_auth => {
                for (frag, rs, acc) in frags {
                    self.store_replica_frag(i, from, *frag, |f| {
                        f.rstat = *rs;
                        f.accounted_rstat = *acc;
                    });
                }
                if *dirty {
                    self.mark_updated_scatterlock(id)?;
                }
                Ok(())
            }
            (ObjRef::Inode(_), _) if is_auth => Ok(()),
            (ObjRef::Inode(i), data) => {
                let me = self.cache.rank();
                // Frags this rank is auth for, with what the inode's auth has accounted.
                let mut mine = Vec::new();
                let Some(n) = self.cache.inode_mut(i) else { return Err(LockerError::UnknownLock(id)) };
                let dd = &mut n.data;
                match data {
                    LockData::Auth { version, ctime_ms, mode, uid, gid } => {
                        dd.version = dd.version.max(*version);
                        dd.ctime_ms = dd.ctime_ms.max(*ctime_ms);
                        dd.mode = *mode;
                        dd.uid = *uid;
                        dd.gid = *gid;
                    }
                    LockData::Link { version, ctime_ms, nlink } => {
                        dd.version = dd.version.max(*version);
                        dd.ctime_ms = dd.ctime_ms.max(*ctime_ms);
                        dd.nlink = *nlink;
                    }
                    LockData::Xattr { version, ctime_ms, xattrs, xattr_version } => {
                        dd.version = dd.version.max(*version);
                        dd.ctime_ms = dd.ctime_ms.max(*ctime_ms);
                        dd.xattrs = xattrs.clone();
                        dd.xattr_version = *xattr_version;
                    }
                    LockData::File { version, ctime_ms, mtime_ms, size, dirstat, frags, .. } => {
                        dd.version = dd.version.max(*version);
                        dd.ctime_ms = dd.ctime_ms.max(*ctime_ms);
                        dd.mtime_ms = *mtime_ms;
                        dd.size = *size;
                        dd.dirstat = *dirstat;
                        for (frag, fs, acc) in frags {
                            if let Some(f) = self.store_auth_frag(i, me, *frag, |f| {
                                f.fragstat = *fs;
                                f.accounted_fragstat = *acc;
                            }) {
                                mine.push((f, ScatterAccounted::File(*acc)));
                            }
                        }
                    }
                    LockData::Nest { version, rstat, frags, .. } => {
                        dd.version = dd.version.max(*version);
                        dd.rstat = *rstat;
                        for (frag, rs, acc) in frags {
                            if let Some(f) = self.store_auth_frag(i, me, *frag, |f| {
                                f.rstat = *rs;
                                f.accounted_rstat = *acc;
                            }) {
                                mine.push((f, ScatterAccounted::Nest(*acc)));
                            }
                        }
                    }
                    LockData::Dentry(_) | LockData::Empty => {}
                }
                for (f, acc) in mine {
                    self.finish_scatter_update(id, f, acc)?;
                }
                Ok(())
            }
            (ObjRef::Dentry(_), _) => Ok(()),
        }
    }

    /// Auth side: the sender's values for a dirfrag it is auth for go into our replica of it.
    fn store_replica_frag(
        &mut self,
        i: crate::ids::InodeId,
        from: Rank,
        frag: u32,
        set: impl FnOnce(&mut crate::cache::Fnode),
    ) {
        let Some(f) = self.cache.inode(i).and_then(|n| n.dirfrags().get(&frag).copied()) else {
            tracing::debug!(from, frag, "scatter data for a dirfrag not in cache; dropped");
            return;
        };
        match self.cache.dirfrag_mut(f) {
            Some(df) if df.auth == from => set(&mut df.fnode),
            _ => {
                tracing::debug!(from, frag, "scatter data for a dirfrag the sender is not auth for; ignored")
            }
        }
    }

    /// Replica side: the auth's values for a dirfrag go into our copy unless we are its auth
    /// (ours is authoritative). Returns the frag when we are its auth, for
    /// `finish_scatter_update`.
    fn store_auth_frag(
        &mut self,
        i: crate::ids::InodeId,
        me: Rank,
        frag: u32,
        set: impl FnOnce(&mut crate::cache::Fnode),
    ) -> Option<crate::ids::DirfragId> {
        let f = self.cache.inode(i).and_then(|n| n.dirfrags().get(&frag).copied())?;
        let df = self.cache.dirfrag_mut(f)?;
        if df.auth == me {
            return Some(f);
        }
        set(&mut df.fnode);
        None
    }

    /// A replica dentry takes the auth's linkage.
    pub(crate) fn decode_dentry_linkage(
        &mut self,
        d: crate::ids::DentryId,
        link: DentryLinkage,
    ) -> Result<(), LockerError> {
        let Some(cur) = self.cache.dentry(d).map(|dn| dn.linkage()) else { return Ok(()) };
        // Whatever the auth says now replaces a link to an inode we never received: a stale
        // pending primary would send every later reader to discover an inode the dentry no
        // longer names, while it holds the rdlock the auth waits for.
        if let Some(dn) = self.cache.dentry_mut(d) {
            dn.pending_primary = None;
        }
        // So does any earlier discover verdict "the name links nothing" for this dentry: the
        // auth sent this data after that reply, on the same FIFO connection (§4.12). A request
        // that was away (waiting for a remote auth pin) when the reply came must not apply the
        // old verdict to the new linkage.
        if let Some((dir, name)) = self.dentry_key_of(d) {
            self.discover_missing.retain(|_, (di, n)| !(*di == dir && *n == name));
        }
        if self.linkage_key(cur) == link {
            return Ok(());
        }
        if let Linkage::Primary(old) = cur
            && let Some(n) = self.cache.inode_mut(old)
        {
            if n.parent == Some(d) {
                n.parent = None;
            }
            if n.projected_parent == Some(d) {
                n.projected_parent = None;
            }
        }
        match link {
            DentryLinkage::Null => {
                if let Some(dn) = self.cache.dentry_mut(d) {
                    dn.linkage = Linkage::Null;
                }
            }
            DentryLinkage::Remote { ino, d_type } => self.cache.link_remote_now(d, ino, d_type),
            DentryLinkage::Primary(ino) => match self.cache.lookup_ino(ino) {
                Some(i) => {
                    self.drop_stale_replica_parent(d, i);
                    self.cache.link_primary_now(d, i);
                }
                None => {
                    if let Some(dn) = self.cache.dentry_mut(d) {
                        dn.linkage = Linkage::Null;
                        dn.pending_primary = Some(ino);
                    }
                }
            },
        }
        Ok(())
    }

    /// A replica dentry that names an inode it was waiting for (`pending_primary`) links it
    /// if the inode is in cache by now: it may have come by another way than a replica
    /// bundle (a search by inode number, an import, a rejoin) that does not look for such
    /// dentries. Without this the traversal asked the auth again and again, and the auth,
    /// which had replicated both, had nothing new to send (simulator `--cross-subtree`,
    /// 3 ranks, seed 1188). Returns whether it linked.
    pub(crate) fn resolve_pending_primary(&mut self, d: crate::ids::DentryId) -> bool {
        let Some(ino) = self.cache.dentry(d).and_then(|x| x.pending_primary) else { return false };
        let Some(i) = self.cache.lookup_ino(ino) else { return false };
        self.drop_stale_replica_parent(d, i);
        self.cache.link_primary_now(d, i);
        if let Some(x) = self.cache.dentry_mut(d) {
            x.pending_primary = None;
        }
        true
    }

    /// The directory inode number and name of a dentry, as discover names it.
    fn dentry_key_of(&self, d: crate::ids::DentryId) -> Option<(crate::ids::Ino, String)> {
        let dn = self.cache.dentry(d)?;
        let dir = self.cache.dentry_dir_inode(d).and_then(|i| self.cache.inode(i))?.ino();
        Some((dir, dn.name().to_string()))
    }

    /// A replica dentry `d` is about to take `inode` as its primary link while another
    /// replica dentry of this rank still links it: the auth moved the inode (a rename), and
    /// the old dentry's own SYNC, with its new linkage, is still on the way (each DN lock
    /// ships its data separately, §2.3, §4.12). An inode has one primary dentry, so the old
    /// replica's linkage is stale and goes now. Its DN lock cannot be readable here: the auth
    /// xlocked it for the move, so every replica is in LOCK until that SYNC comes (Ceph
    /// refreshes both replicas at once through the rename's witness update instead).
    pub(crate) fn drop_stale_replica_parent(&mut self, d: crate::ids::DentryId, inode: crate::ids::InodeId) {
        let me = self.cache.rank();
        let Some(old) = self.cache.inode(inode).and_then(|n| n.parent()) else { return };
        if old == d || self.cache.dentry(old).is_none_or(|x| x.auth() == me) {
            return;
        }
        if let Some(x) = self.cache.dentry_mut(old)
            && x.linkage == Linkage::Primary(inode)
        {
            x.linkage = Linkage::Null;
        }
        if let Some(n) = self.cache.inode_mut(inode) {
            n.parent = None;
            if n.projected_parent == Some(old) {
                n.projected_parent = None;
            }
        }
    }
}
