//! Rank failure and the simplified resolve / rejoin on the Locker side (mds §6.6, §4.12,
//! §4.17). `cluster::Cluster::{crash, restart}` drives these steps and documents exactly what
//! is simplified compared with Ceph.
//!
//! * A survivor learns of the failure (`Event::RankDown`): the failed rank's replicas and
//!   gather entries go (gathers that become empty complete, so a transition that waited on
//!   the dead rank's ack finishes), peer requests it led are cleaned up (their locks
//!   released) except prepared two-phase updates, which wait for the leader's resolve
//!   (`locker::witness`), and the survivor's own requests stop waiting for it: they stay in
//!   the locking phase and are retried once it is active again (`Event::RankActive`), as
//!   Ceph's `wait_for_active_peer` retries them; a leader re-sends a prep or FINISH the
//!   failed witness lost.
//! * The restarted rank, after replay, learns every rank's subtree roots
//!   (`resolve_authority`, the part of Ceph's resolve stage that settles authority) and so
//!   knows which replayed objects are replicas of another rank's.
//! * Rejoin: each survivor reports the replicas it holds of the restarted rank's objects
//!   (`rejoin_replicas_of`) and the remote xlocks / wrlocks its leaders hold there
//!   (`rejoin_remote_locks`); the restarted rank re-acquires those locks as peer requests
//!   (`rejoin_lock`), re-adds the replicas and answers with its lock states
//!   (`rejoin_replica`), which the survivor adopts (`rejoin_ack`). The restarted rank does the
//!   same in the other direction for the replicas it replayed (`rejoin_weak`).

use lock_sm::{LockState, LockType};

use crate::cache::ROOT_RANK;
use crate::effects::Effect;
use crate::error::LockerError;
use crate::ids::{DirfragId, InodeId, LockId, ObjKey, ObjRef, Rank, ReqId};
use crate::message::ReplicaObj;
use crate::mutation::{LockOp, Mutation, Phase, WRLOCK, XLOCK};
use crate::recovery::{FragKey, RejoinLock};

use super::Locker;

/// Replica states in which wrlocks may be held or still draining (Ceph's strong rejoin
/// treats all of them as MIX).
fn mix_family(s: LockState) -> bool {
    matches!(
        s,
        LockState::Mix | LockState::MixLock | LockState::MixLock2 | LockState::MixSync | LockState::MixSync2
    )
}

/// Every wait bit: a lock whose state the rejoin replaced wakes all its waiters, which
/// re-evaluate against the new state.
const WAIT_ALL: u8 = u8::MAX;

impl Locker {
    fn all_dirfrag_ids(&self) -> Vec<DirfragId> {
        self.cache
            .inode_ids()
            .filter_map(|i| self.cache.inode(i))
            .flat_map(|n| n.dirfrags().values().copied())
            .collect()
    }

    fn all_objects(&self) -> Vec<ObjRef> {
        let mut v: Vec<ObjRef> = self.cache.inode_ids().map(ObjRef::Inode).collect();
        v.extend(self.cache.dentry_ids().map(ObjRef::Dentry));
        v
    }

    /// Runs `f` as if it were an event: woken requests are dispatched and caps issued before
    /// the effects are returned.
    pub(super) fn run_direct<T>(
        &mut self,
        f: impl FnOnce(&mut Locker) -> Result<T, LockerError>,
    ) -> Result<(T, Vec<Effect>), LockerError> {
        let result = f(self).and_then(|t| self.finish_event().map(|()| t));
        match result {
            Ok(t) => Ok((t, std::mem::take(&mut self.fx))),
            Err(e) => {
                self.fx.clear();
                Err(e)
            }
        }
    }

    /// `Event::RankDown` on a survivor (see the module notes).
    pub(crate) fn rank_down(&mut self, down: Rank) -> Result<(), LockerError> {
        if down == self.cache.rank() {
            return Err(LockerError::Precondition("a rank is not told of its own failure"));
        }
        tracing::info!(rank = self.cache.rank(), down, "peer rank failed");
        for obj in self.all_objects() {
            self.cache.remove_replica(obj, down);
        }
        for f in self.all_dirfrag_ids() {
            if let Some(d) = self.cache.dirfrag_mut(f) {
                d.replicas.remove(&down);
            }
        }
        // Gathers waiting on the dead rank's ack: it will never come. (Ceph keeps a rejoining
        // rank in a scatterlock's gather while the lock is in a MIX-family state, because
        // the rank may still hold wrlocks; here its wrlocks died with it.)
        let mut gathered = Vec::new();
        for obj in self.all_objects() {
            for id in self.cache.lock_ids(obj) {
                if let Ok(l) = self.lkm(id)
                    && l.gather_set.remove(&down)
                    && l.gather_set.is_empty()
                {
                    gathered.push(id);
                }
            }
        }
        for id in gathered {
            self.eval_gather(id, false)?;
        }
        // Peer requests the dead rank led: nobody will release them (Ceph resolves them with
        // the leader; a peer request without journaled updates simply goes).
        // A prepared two-phase update is the exception: it waits for the leader's resolve.
        let prepared = self.twophase_rank_down(down);
        let led: Vec<ReqId> = self
            .requests
            .values()
            .filter(|m| m.peer_of == Some(down) && !prepared.contains(&m.reqid))
            .map(|m| m.reqid)
            .collect();
        for reqid in led {
            self.cleanup_request(reqid)?;
        }
        self.pin_freeze_rank_down(down);
        self.peers_down.insert(down);
        // Our requests stop waiting for its acks; `rank_active` retries them.
        for m in self.requests.values_mut().filter(|m| m.peer_of.is_none()) {
            m.waiting_on_peer.remove(&down);
            if m.locking_target == Some(down) {
                m.locking_target = None;
            }
            m.remote_auth_pins.retain(|_, r| *r != down);
        }
        // Discovers sent to it are lost with it.
        let lost: Vec<(crate::ids::Ino, String)> =
            self.discovering.keys().filter(|k| self.discover_went_to(k) == Some(down)).cloned().collect();
        for k in lost {
            self.discovering.remove(&k);
            self.discover_to.remove(&k);
        }
        Ok(())
    }

    /// The rank a pending discover was sent to: as recorded when it went out, else as
    /// `discover_dentry` would pick it now.
    fn discover_went_to(&self, k: &(crate::ids::Ino, String)) -> Option<Rank> {
        self.discover_to.get(k).copied().or_else(|| self.discover_target(k.0))
    }

    /// The rank a discover in `dir` goes to (as `discover_dentry` picks it).
    fn discover_target(&self, dir: crate::ids::Ino) -> Option<Rank> {
        let id = self.cache.lookup_ino(dir)?;
        match self.cache.dirfrag_of_existing(id).and_then(|f| self.cache.dirfrag_auth(f)) {
            Some(a) => Some(a),
            None => self.cache.inode(id).map(|n| n.auth()),
        }
    }

    /// `Event::RankActive` on a survivor: the rank finished rejoin; requests that stopped
    /// waiting for it (or were stuck on an ack it never sent) run again.
    pub(crate) fn rank_active(&mut self, up: Rank) -> Result<(), LockerError> {
        self.peers_down.remove(&up);
        // Discovers sent to it while it was down were dropped with it: their requests run
        // again below and ask anew (found by the simulator: 2 ranks, rank-crash, seed 1).
        let lost: Vec<(crate::ids::Ino, String)> =
            self.discovering.keys().filter(|k| self.discover_went_to(k) == Some(up)).cloned().collect();
        for k in lost {
            self.discovering.remove(&k);
            self.discover_to.remove(&k);
        }
        let discovering: std::collections::BTreeSet<ReqId> =
            self.discovering.values().flatten().copied().collect();
        let mut retry = Vec::new();
        for m in self.requests.values_mut().filter(|m| m.peer_of.is_none() && m.phase == Phase::Locking) {
            m.waiting_on_peer.remove(&up);
            if m.locking_target == Some(up) {
                m.locking_target = None;
            }
            if m.waiting_on.is_none()
                && m.waiting_on_peer.is_empty()
                && !discovering.contains(&m.reqid)
                && !self.flock_waiting.contains_key(&m.reqid)
            {
                retry.push(m.reqid);
            }
        }
        for reqid in retry {
            self.mark_event(reqid, "retrying after peer rank recovered");
            self.requeue(reqid);
        }
        self.twophase_rank_active(up)
    }

    /// Settles the authority of every replayed object from the subtree roots of all ranks
    /// (this rank's, from its replayed ESubtreeMap, and the survivors', which Ceph learns in
    /// the resolve stage): a dirfrag belongs to the nearest subtree root above it, a dentry
    /// to its dirfrag, an inode to the dirfrag of its primary dentry; base inodes keep their
    /// fixed owners (the root is rank 0's, `~mdsN` rank N's). Objects of other ranks become
    /// replicas in their initial replica states, which rejoin then refreshes.
    pub fn resolve_authority(&mut self, roots: &std::collections::BTreeMap<FragKey, Rank>) {
        let me = self.cache.rank();
        let frags = self.all_dirfrag_ids();
        let mut frag_auth = std::collections::BTreeMap::new();
        for f in &frags {
            if let Some(a) = self.owner_of_frag(*f, roots) {
                frag_auth.insert(*f, a);
            }
        }
        for (f, a) in &frag_auth {
            self.cache.set_dirfrag_auth(*f, *a);
            if *a != me
                && let Some(d) = self.cache.dirfrag_mut(*f)
            {
                d.complete = false;
            }
        }
        for obj in self.all_objects() {
            let want = match obj {
                ObjRef::Dentry(d) => self.cache.dentry(d).and_then(|x| frag_auth.get(&x.dir()).copied()),
                ObjRef::Inode(i) => match self.cache.inode(i).and_then(|n| n.parent()) {
                    Some(dn) => self.cache.dentry(dn).and_then(|x| frag_auth.get(&x.dir()).copied()),
                    None => Some(self.base_owner(i)),
                },
            };
            let Some(want) = want else { continue };
            if self.cache.auth_of(obj) == Some(want) && self.cache.is_auth_obj(obj) == (want == me) {
                continue;
            }
            if want == me {
                self.cache.set_auth(obj, me);
            } else {
                self.cache.make_replica(obj, want);
            }
        }
    }

    /// Settles the authority of replayed inodes the survivors vouch for (`claims`: inode
    /// number to auth rank), after `resolve_authority`: a directory renamed across ranks
    /// stays with its auth (only files migrate, see `migrate`), so its primary dentry's
    /// dirfrag does not name its auth; and a file's old auth whose replayed prepare moved it
    /// away may keep it without a parent (it had no replica of the new dentry).
    pub fn resolve_inode_authority(&mut self, claims: &std::collections::BTreeMap<crate::ids::Ino, Rank>) {
        let me = self.cache.rank();
        for i in self.cache.inode_ids().collect::<Vec<_>>() {
            let Some(ino) = self.cache.inode(i).map(|n| n.ino()) else { continue };
            let Some(want) = claims.get(&ino).copied() else { continue };
            let obj = ObjRef::Inode(i);
            if self.cache.auth_of(obj) == Some(want) && self.cache.is_auth_obj(obj) == (want == me) {
                continue;
            }
            if want == me {
                self.cache.set_auth(obj, me);
            } else {
                self.cache.make_replica(obj, want);
            }
        }
    }

    fn base_owner(&self, i: InodeId) -> Rank {
        match self.cache.inode(i) {
            Some(n) if n.ino() == crate::ids::Ino::ROOT => ROOT_RANK,
            Some(n) => n.auth(),
            None => self.cache.rank(),
        }
    }

    fn owner_of_frag(
        &self,
        mut f: DirfragId,
        roots: &std::collections::BTreeMap<FragKey, Rank>,
    ) -> Option<Rank> {
        for _ in 0..crate::cache::MAX_DEPTH {
            let frag = self.cache.dirfrag(f)?;
            let dir = frag.inode();
            let key = (self.cache.inode(dir)?.ino(), frag.frag());
            if let Some(r) = roots.get(&key) {
                return Some(*r);
            }
            match self.cache.inode(dir)?.parent() {
                Some(dn) => f = self.cache.dentry(dn)?.dir(),
                None => return Some(self.base_owner(dir)),
            }
        }
        None
    }

    /// Survivor side of rejoin: the objects `auth` is auth for that this rank replicates.
    pub fn rejoin_replicas_of(&self, auth: Rank) -> Vec<ObjKey> {
        let mut out = Vec::new();
        for i in self.cache.inode_ids() {
            if self.cache.auth_of(ObjRef::Inode(i)) == Some(auth)
                && let Some(k) = self.cache.obj_key(ObjRef::Inode(i))
            {
                out.push(k);
            }
        }
        for f in self.all_dirfrag_ids() {
            if self.cache.dirfrag_auth(f) == Some(auth)
                && let Some(k) = self.cache.dirfrag_key(f)
            {
                out.push(k);
            }
        }
        for d in self.cache.dentry_ids() {
            if self.cache.auth_of(ObjRef::Dentry(d)) == Some(auth)
                && let Some(k) = self.cache.obj_key(ObjRef::Dentry(d))
            {
                out.push(k);
            }
        }
        out
    }

    /// Survivor side of rejoin: the remote xlocks its leader requests hold on objects `auth`
    /// is auth for, and the remote wrlocks they hold on `auth` (Ceph's strong rejoin lists
    /// both with the request ids).
    pub fn rejoin_remote_locks(&self, auth: Rank) -> Vec<RejoinLock> {
        let mut out = Vec::new();
        for m in self.requests.values().filter(|m| m.peer_of.is_none()) {
            for (id, flags) in &m.held {
                let Ok(l) = self.lk(*id) else { continue };
                if flags & XLOCK == 0 || l.is_auth() || self.cache.auth_of(id.obj) != Some(auth) {
                    continue;
                }
                let done = l.xlock_holders().iter().any(|h| h.req == m.reqid && h.done);
                if let Some(lock) = self.cache.lock_key(*id) {
                    out.push(RejoinLock { reqid: m.reqid, client: m.client, lock, xlock: true, done });
                }
            }
            for (id, target) in &m.remote_wrlocks {
                if *target == auth
                    && let Some(lock) = self.cache.lock_key(*id)
                {
                    out.push(RejoinLock {
                        reqid: m.reqid,
                        client: m.client,
                        lock,
                        xlock: false,
                        done: false,
                    });
                }
            }
        }
        out
    }

    /// Survivor side of the strong rejoin of scatterlocks (mds §4.12, §4.13, §6.6): the
    /// dirfragtree, file and nest locks of `auth`'s inodes this rank replicates that are in
    /// a MIX-family state or wrlocked here, with their states. Requests on this rank may hold
    /// wrlocks under MIX that the restarted auth knows nothing of; Ceph's MMDSCacheRejoin
    /// carries each replica's scatterlock state so the auth can infer its own from them.
    pub fn rejoin_scatter_states(&self, auth: Rank) -> Vec<(crate::ids::LockKey, LockState)> {
        let mut out = Vec::new();
        for i in self.cache.inode_ids() {
            let obj = ObjRef::Inode(i);
            if self.cache.auth_of(obj) != Some(auth) || self.cache.is_auth_obj(obj) {
                continue;
            }
            for ty in [LockType::IDft, LockType::IFile, LockType::INest] {
                let id = LockId { obj, ty };
                let Ok(l) = self.lk(id) else { continue };
                if (mix_family(l.state) || l.is_wrlocked())
                    && let Some(k) = self.cache.lock_key(id)
                {
                    out.push((k, l.state));
                }
            }
        }
        out
    }

    /// Restarted side of the strong rejoin of scatterlocks: a replica on `from` reports
    /// `key` in `state` (MIX-family, or wrlocked). As Ceph's auth infers its scatterlock
    /// state from the replicas' (`infer_state_from_strong_rejoin`: a replica in MIX,
    /// MIX_LOCK or MIX_SYNC makes the auth MIX), the auth's lock is set to MIX, where both
    /// the auth and every replica may wrlock, so the replica's wrlocks stay legal once it
    /// adopts the auth's state. The state is set, not reached by a transition: the replicas
    /// are already there. Returns whether the state was taken (false: not ours, or a lock
    /// held here forbids MIX).
    pub fn rejoin_scatter(
        &mut self,
        from: Rank,
        key: &crate::ids::LockKey,
        state: LockState,
    ) -> Result<(bool, Vec<Effect>), LockerError> {
        self.run_direct(|me| {
            let Some(id) = me.cache.resolve_lock(key) else { return Ok(false) };
            let l = me.lk(id)?;
            if !l.is_auth() {
                return Ok(false);
            }
            if l.state == LockState::Mix {
                return Ok(true);
            }
            if !l.is_stable() || l.is_rdlocked() || l.is_xlocked() {
                tracing::warn!(from, lock = %key, ?state, "scatter rejoin: lock held or in transition here; MIX not taken");
                return Ok(false);
            }
            tracing::info!(from, lock = %key, replica = ?state, "scatter rejoin: auth takes MIX from its replica");
            me.set_state(id, LockState::Mix)?;
            me.wake(id, WAIT_ALL)?;
            Ok(true)
        })
    }

    /// Restarted side of rejoin: re-acquire a lock `from`'s leader request holds, as a peer
    /// request led by `from` (auth-pinning the object). An xlock is taken directly in XLOCK
    /// (XLOCKDONE if the leader had already marked it done), as Ceph's rejoin sets the state
    /// rather than walking the transition: the leader's replica copy already holds it. A
    /// wrlock moves a stable lock that forbids it to LOCK, where the auth may wrlock.
    /// Returns whether the lock was re-acquired (false: object gone, not ours, or taken).
    pub fn rejoin_lock(&mut self, from: Rank, l: &RejoinLock) -> Result<(bool, Vec<Effect>), LockerError> {
        self.run_direct(|me| me.rejoin_lock_inner(from, l))
    }

    fn rejoin_lock_inner(&mut self, from: Rank, l: &RejoinLock) -> Result<bool, LockerError> {
        let Some(id) = self.cache.resolve_lock(&l.lock) else {
            tracing::warn!(from, reqid = %l.reqid, lock = %l.lock, "rejoin lock on an object not in cache; not re-acquired");
            return Ok(false);
        };
        let lock = self.lk(id)?;
        if !lock.is_auth() {
            tracing::warn!(from, reqid = %l.reqid, lock = %l.lock, "rejoin lock on an object we are not auth for");
            return Ok(false);
        }
        if lock.is_xlocked() || (l.xlock && (lock.is_wrlocked() || lock.is_rdlocked())) {
            tracing::warn!(from, reqid = %l.reqid, lock = %l.lock, "rejoin lock conflicts with a held lock");
            return Ok(false);
        }
        let now = self.now_ms();
        let m = self.requests.entry(l.reqid).or_insert_with(|| {
            let mut m = Mutation::new(l.reqid, l.client, now);
            m.peer_of = Some(from);
            m.phase = Phase::Holding;
            m
        });
        if m.peer_of != Some(from) {
            tracing::warn!(from, reqid = %l.reqid, "rejoin lock for a request this rank runs otherwise");
            return Ok(false);
        }
        if m.auth_pins.insert(id.obj) {
            self.cache.add_auth_pin(id.obj, 1);
        }
        if l.xlock {
            let target = if l.done { LockState::XlockDone } else { LockState::Xlock };
            self.set_state(id, target)?;
            let lk = self.lkm(id)?;
            lk.get_xlock(l.reqid, l.client);
            if l.done {
                lk.mark_xlock_done(l.reqid);
            }
            let m = self.mutation_mut(l.reqid)?;
            m.add_held(id, XLOCK);
            m.peer_locks.push(LockOp::x(id));
        } else {
            let lock = self.lk(id)?;
            if !lock.can_wrlock(l.client) {
                if !lock.is_stable() {
                    tracing::warn!(from, reqid = %l.reqid, lock = %l.lock, "rejoin wrlock on a lock in transition");
                    return Ok(false);
                }
                self.set_state(id, LockState::Lock)?;
            }
            self.lkm(id)?.get_wrlock(l.reqid, l.client);
            let m = self.mutation_mut(l.reqid)?;
            m.add_held(id, WRLOCK);
            m.peer_locks.push(LockOp::wr(id));
        }
        self.mark_event(l.reqid, "rejoined remote lock for peer");
        Ok(true)
    }

    /// Auth side of rejoin: `from` holds a replica of `key`; record it and return the
    /// object with the current lock states for `from` to adopt. `None` when this rank does
    /// not have the object or is not its auth (the replica is stale: Ceph would tell the
    /// holder to trim it).
    pub fn rejoin_replica(&mut self, from: Rank, key: &ObjKey) -> Result<Option<ReplicaObj>, LockerError> {
        let me = self.cache.rank();
        if let ObjKey::Dirfrag { dir, frag } = key {
            let Some(f) = self.cache.resolve_dirfrag(*dir, *frag) else { return Ok(None) };
            let Some(d) = self.cache.dirfrag(f) else { return Ok(None) };
            if d.auth() != me {
                return Ok(None);
            }
            let obj = ReplicaObj::Dirfrag { dir: *dir, frag: *frag, auth: me, fnode: *d.fnode() };
            self.cache.add_dirfrag_replica(f, from);
            return Ok(Some(obj));
        }
        // A replica of a dentry this rank no longer has (a null dentry discover made, never
        // journaled): as Ceph's strong rejoin does, invent it null here, so the holder stays
        // in the replica set and hears of the name's next change.
        if let ObjKey::Dentry { dir, name } = key
            && self.cache.resolve_obj(key).is_none()
            && let Some(f) = self.cache.resolve_dirfrag(*dir, 0)
            && self.cache.dirfrag(f).is_some_and(|d| d.auth() == me)
        {
            self.cache.add_null_dentry(f, name);
        }
        let Some(obj) = self.cache.resolve_obj(key) else { return Ok(None) };
        if !self.cache.is_auth_obj(obj) {
            return Ok(None);
        }
        self.cache.add_replica(obj, from);
        let enc = match obj {
            ObjRef::Inode(i) => self.encode_inode_replica(i)?,
            ObjRef::Dentry(d) => self.encode_dentry_replica(d)?,
        };
        Ok(Some(enc))
    }

    /// Holder side of rejoin: adopt the auth's lock states (and, for an inode, its committed
    /// content) for a replica already in cache, waking whoever waited on those locks.
    pub fn rejoin_ack(&mut self, from: Rank, obj: ReplicaObj) -> Result<Vec<Effect>, LockerError> {
        self.run_direct(|me| {
            let (target, locks) = match obj {
                ReplicaObj::Inode { ino, data, locks, .. } => {
                    let Some(id) = me.cache.lookup_ino(ino) else { return Ok(()) };
                    if let Some(n) = me.cache.inode_mut(id) {
                        n.data = data;
                    }
                    (ObjRef::Inode(id), locks)
                }
                ReplicaObj::Dentry { dir, name, version, locks, linkage, .. } => {
                    let Some(dn) = me.cache.lookup_ino(dir).and_then(|d| me.cache.lookup_dentry(d, &name))
                    else {
                        return Ok(());
                    };
                    // The lock data that would have brought the auth's last linkage may have
                    // died in flight with the auth: the rejoin ack carries it (Ceph's strong
                    // dentries in MMDSCacheRejoin).
                    if me.cache.auth_of(ObjRef::Dentry(dn)) == Some(from) {
                        me.decode_dentry_linkage(dn, linkage)?;
                    }
                    if let Some(d) = me.cache.dentry_mut(dn) {
                        d.version = d.version.max(version);
                        d.projected_version = d.projected_version.max(d.version);
                    }
                    (ObjRef::Dentry(dn), locks)
                }
                ReplicaObj::Dirfrag { .. } => return Ok(()),
            };
            if me.cache.auth_of(target) != Some(from) {
                return Ok(());
            }
            me.set_replica_locks(target, &locks)?;
            for id in me.cache.lock_ids(target) {
                if let Ok(l) = me.lkm(id) {
                    l.gather_set.clear();
                }
                me.wake(id, WAIT_ALL)?;
            }
            Ok(())
        })
        .map(|((), fx)| fx)
    }

    /// Restarted side: the replicas replay left in cache, by auth rank (parents first), for
    /// the weak half of rejoin.
    pub fn rejoin_weak(&self) -> Vec<(Rank, ObjKey)> {
        let me = self.cache.rank();
        let mut out = Vec::new();
        for i in self.cache.inode_ids() {
            let obj = ObjRef::Inode(i);
            if let (Some(a), Some(k)) = (self.cache.auth_of(obj), self.cache.obj_key(obj))
                && a != me
            {
                out.push((a, k));
            }
        }
        for f in self.all_dirfrag_ids() {
            if let (Some(a), Some(k)) = (self.cache.dirfrag_auth(f), self.cache.dirfrag_key(f))
                && a != me
            {
                out.push((a, k));
            }
        }
        for d in self.cache.dentry_ids() {
            let obj = ObjRef::Dentry(d);
            if let (Some(a), Some(k)) = (self.cache.auth_of(obj), self.cache.obj_key(obj))
                && a != me
            {
                out.push((a, k));
            }
        }
        out
    }

    /// Clientreplay (mds §6.6): before any new request, a client will re-send `reqid`, which
    /// this rank answered unsafely (naming inode `ino`, if any) before it failed. Ceph's
    /// replayed request carries that number and the MDS creates the inode under it; here the
    /// cluster passes it on, and the number is kept from every other allocation until then,
    /// so the client never sees its file change identity. The replay gets no second early
    /// reply, as in Ceph. Forgotten when the request finishes.
    pub fn expect_replay(&mut self, reqid: ReqId, ino: Option<crate::ids::Ino>) {
        if let Some(ino) = ino {
            self.cache.reserve_ino(ino);
        }
        self.replay_inos.insert(reqid, ino);
    }

    /// Whether `id` is held by the peer request `reqid` led by `leader` (tests of rejoin).
    pub fn peer_holds(&self, leader: Rank, reqid: ReqId, id: LockId, flag: u8) -> bool {
        self.requests.get(&reqid).is_some_and(|m| m.peer_of == Some(leader) && m.holds(id, flag))
    }
}
