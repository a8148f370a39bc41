//! Replicas and the message entry point (mds spec §4.12, §5.1 discover).
//!
//! A rank that traverses a path it is not auth for asks the auth for replicas (Ceph's
//! discover). The auth answers with the objects of the path it is auth for and remembers the
//! asker as a replica holder, so later lock transitions reach it. Each replicated lock starts
//! in the `replica_state` of the auth's current state (§1.1).

use lock_sm::LockType;

use crate::authority::replica_state_of;
use crate::cache::Linkage;
use crate::effects::ClientRequest;
use crate::effects::Effect;
use crate::effects::Errno;
use crate::error::LockerError;
use crate::ids::ReqId;
use crate::ids::{DentryId, Ino, InodeId, LockId, ObjKey, ObjRef, Rank};
use crate::message::{
    AuthChanged, DentryLinkage, Discover, DiscoverReply, MdsMessage, ReplicaBundle, ReplicaObj,
};

use super::server::Step as Progress;

use super::Locker;

impl Locker {
    /// Routes a message from another rank.
    pub(crate) fn handle_message(&mut self, from: Rank, msg: MdsMessage) -> Result<(), LockerError> {
        if from == self.cache.rank() {
            return Err(LockerError::BadMessage { from, why: "a rank does not send messages to itself" });
        }
        self.stats.messages_received += 1;
        tracing::debug!(rank = self.cache.rank(), from, kind = msg.kind(), "message");
        match msg {
            MdsMessage::Replicate(bundle) => self.apply_replicas(from, bundle),
            MdsMessage::Discover(d) => self.handle_discover(from, d),
            MdsMessage::DiscoverReply(r) => {
                let key = (r.dir, r.name.clone());
                self.handle_discover_reply(from, r)?;
                self.find_ino_discovered(&key)
            }
            MdsMessage::FindIno(m) => self.handle_find_ino(from, m),
            MdsMessage::FindInoReply(r) => self.handle_find_ino_reply(from, r),
            MdsMessage::Lock(m) => self.handle_lock_message(from, m),
            MdsMessage::Peer(m) => self.handle_peer_message(from, m),
            MdsMessage::AuthChanged(m) => self.handle_auth_changed(from, m),
        }
    }

    /// Queues a message to another rank.
    pub(crate) fn send(&mut self, to: Rank, msg: MdsMessage) {
        self.stats.messages_sent += 1;
        tracing::debug!(rank = self.cache.rank(), to, kind = msg.kind(), "send");
        self.fx.push(Effect::Send { to, msg });
    }

    /// The auth side of discover: replicates to `to` the objects on the path from the root to
    /// `target` that this rank is auth for and `to` does not hold yet (inode, then its
    /// dirfrag, then each dentry and the inode it links, down to the target). `target` may be
    /// an inode, a dentry or a dirfrag. Returns the `Send` effect (none if there is nothing
    /// new to send).
    pub fn replicate_to(&mut self, target: &ObjKey, to: Rank) -> Result<Vec<Effect>, LockerError> {
        if to == self.cache.rank() {
            return Err(LockerError::BadMessage { from: to, why: "cannot replicate to oneself" });
        }
        let chain = self.path_chain(target).ok_or_else(|| LockerError::UnknownObject(target.clone()))?;
        let mut bundle = ReplicaBundle::default();
        for step in chain {
            match step {
                Step::Inode(i) => {
                    let obj = ObjRef::Inode(i);
                    if !self.cache.is_auth_obj(obj) || self.cache.replicas_of(obj).contains(&to) {
                        continue;
                    }
                    bundle.objects.push(self.encode_inode_replica(i)?);
                    self.cache.add_replica(obj, to);
                }
                Step::Dirfrag(f) => {
                    let Some(frag) = self.cache.dirfrag(f) else { continue };
                    if frag.auth() != self.cache.rank() || frag.replicas().contains(&to) {
                        continue;
                    }
                    let dir = self.cache.inode(frag.inode()).map(|n| n.ino()).unwrap_or(Ino(0));
                    bundle.objects.push(ReplicaObj::Dirfrag {
                        dir,
                        frag: frag.frag(),
                        auth: frag.auth(),
                        fnode: *frag.fnode(),
                    });
                    self.cache.add_dirfrag_replica(f, to);
                }
                Step::Dentry(d) => {
                    let obj = ObjRef::Dentry(d);
                    if !self.cache.is_auth_obj(obj) || self.cache.replicas_of(obj).contains(&to) {
                        continue;
                    }
                    bundle.objects.push(self.encode_dentry_replica(d)?);
                    self.cache.add_replica(obj, to);
                }
            }
        }
        if bundle.objects.is_empty() {
            return Ok(Vec::new());
        }
        self.send(to, MdsMessage::Replicate(bundle));
        Ok(std::mem::take(&mut self.fx))
    }

    /// `replicate_to` for a rank that asked for nothing (a rename's witness that must hold
    /// the new primary dentry of an inode it is auth for): sends the bundle only if `to` can
    /// attach every dirfrag and dentry in it, that is when each one's parent is in the bundle
    /// or is this rank's and already replicated to `to`. Otherwise it sends nothing and
    /// returns false: a parent on the path is another rank's (a subtree root's inode, after
    /// `to` restarted and lost its replicas), this rank cannot tell whether `to` holds it,
    /// and a replica cannot be handed out by a rank that is not its auth. The witness then
    /// discovers the path itself, as Ceph's does (`witness_fetch`).
    pub(crate) fn replicate_if_attachable(&mut self, target: &ObjKey, to: Rank) -> Result<bool, LockerError> {
        let chain = self.path_chain(target).ok_or_else(|| LockerError::UnknownObject(target.clone()))?;
        let me = self.cache.rank();
        // Per step: will `to` have it once the bundle is applied?
        let mut parent_there = true;
        for step in chain {
            let (ours, known) = match step {
                Step::Inode(i) => {
                    let obj = ObjRef::Inode(i);
                    (self.cache.is_auth_obj(obj), self.cache.replicas_of(obj).contains(&to))
                }
                Step::Dirfrag(f) => match self.cache.dirfrag(f) {
                    Some(x) => (x.auth() == me, x.replicas().contains(&to)),
                    None => (false, false),
                },
                Step::Dentry(d) => {
                    let obj = ObjRef::Dentry(d);
                    (self.cache.is_auth_obj(obj), self.cache.replicas_of(obj).contains(&to))
                }
            };
            let sent = ours && !known;
            // An inode replica may arrive without its parent dentry (it is linked when that
            // comes); a dirfrag needs its inode and a dentry its dirfrag.
            if sent && !parent_there && !matches!(step, Step::Inode(_)) {
                tracing::debug!(
                    rank = me,
                    to,
                    ?target,
                    "replica path has another rank's object the receiver may lack; it discovers instead"
                );
                return Ok(false);
            }
            parent_there = ours;
        }
        let fx = self.replicate_to(target, to)?;
        self.fx.extend(fx);
        Ok(true)
    }

    /// Whether a request waits for another rank (a discover reply, a peer's ack), rather than
    /// on a lock.
    pub fn waits_on_remote(&self, reqid: ReqId) -> bool {
        self.discovering.values().any(|w| w.contains(&reqid))
            || self.waits_on_find(reqid)
            || self.waits_for_recovery(reqid)
            || self.requests.get(&reqid).is_some_and(|m| !m.waiting_on_peer().is_empty())
            || (!self.peers_down.is_empty()
                && self.requests.get(&reqid).is_some_and(|m| m.phase == crate::mutation::Phase::Locking))
    }

    /// Hands the request to rank `to` (Ceph's `request_forward`): the client re-sends it
    /// there. Everything it holds here is dropped first.
    pub(crate) fn forward_request(&mut self, reqid: ReqId, to: Rank) -> Result<(), LockerError> {
        let op = self.ops.get(&reqid).cloned().ok_or(LockerError::UnknownRequest(reqid))?;
        let Some(client) = self.mutation(reqid)?.client else {
            return Err(LockerError::Precondition("the MDS's own mutations are never forwarded"));
        };
        tracing::debug!(rank = self.cache.rank(), %reqid, to, "forwarding request to its auth");
        self.mark_event(reqid, "forwarding request");
        self.stats.forwards += 1;
        self.fx.push(Effect::Forward { to, request: ClientRequest { reqid, client, op } });
        self.cleanup_request(reqid)
    }

    /// Path traversal met `dir`/`name` with no dentry in cache and a dirfrag this rank is not
    /// the complete auth for: ask the dirfrag's auth (§5.1 discover) and wait, or fail with
    /// ENOENT if a discover reply already said the name does not exist.
    pub(crate) fn discover_dentry<T>(
        &mut self,
        reqid: ReqId,
        dir: InodeId,
        name: &str,
    ) -> Result<Progress<T>, LockerError> {
        let dir_ino = self.ino_of(dir);
        if self.discover_missing.get(&reqid).is_some_and(|(d, n)| *d == dir_ino && n == name) {
            self.discover_missing.remove(&reqid);
            return Ok(Progress::Fail(Errno::ENOENT));
        }
        let frag = self.cache.inode(dir).and_then(|n| n.dirfrags().get(&0).copied());
        let to = match frag.and_then(|f| self.cache.dirfrag_auth(f)) {
            Some(a) => a,
            None => self.cache.inode(dir).map(|n| n.auth()).unwrap_or(crate::cache::ROOT_RANK),
        };
        if to == self.cache.rank() {
            // We are the auth and the frag is complete: the caller's miss is real.
            return Ok(Progress::Fail(Errno::ENOENT));
        }
        let key = (dir_ino, name.to_string());
        let waiting = self.discovering.entry(key).or_default();
        let first = waiting.is_empty();
        if !waiting.contains(&reqid) {
            waiting.push(reqid);
        }
        if first {
            tracing::debug!(rank = self.cache.rank(), %reqid, dir = %dir_ino, name, to, "discover");
            self.discover_to.insert((dir_ino, name.to_string()), to);
            self.send(to, MdsMessage::Discover(Discover { dir: dir_ino, name: name.to_string() }));
        }
        self.mark_event(reqid, "waiting for discover");
        Ok(Progress::Wait)
    }

    /// The auth side of discover. A rank that is not the dirfrag's auth passes the question
    /// on to the rank it believes is (the frag moved, or the asker guessed from the inode).
    fn handle_discover(&mut self, from: Rank, d: Discover) -> Result<(), LockerError> {
        let Some(dir) = self.cache.lookup_ino(d.dir) else {
            tracing::debug!(from, dir = %d.dir, "discover for a directory not in cache; dropped");
            return Ok(());
        };
        let frag = self.cache.dirfrag_of_existing(dir);
        let frag_auth = frag.and_then(|f| self.cache.dirfrag_auth(f));
        let me = self.cache.rank();
        match frag_auth {
            Some(a) if a != me => {
                // Not ours: tell the asker what we know of the frag, then it will ask the auth.
                let mut bundle = ReplicaBundle::default();
                let target = self.linked_inode_target(dir, &d.name).unwrap_or(ObjKey::Inode(d.dir));
                for fx in self.replicate_to(&target, from)? {
                    if let Effect::Send { msg: MdsMessage::Replicate(b), .. } = fx {
                        bundle.objects.extend(b.objects);
                    }
                }
                if let Some(x) = frag.and_then(|f| self.cache.dirfrag(f)) {
                    bundle.objects.push(ReplicaObj::Dirfrag {
                        dir: d.dir,
                        frag: x.frag(),
                        auth: a,
                        fnode: *x.fnode(),
                    });
                }
                self.send(
                    from,
                    MdsMessage::DiscoverReply(DiscoverReply {
                        dir: d.dir,
                        name: d.name,
                        bundle,
                        missing: false,
                        inode_auth: None,
                    }),
                );
                return Ok(());
            }
            None if self.cache.inode(dir).is_some_and(|n| n.auth() != me) => {
                tracing::debug!(from, dir = %d.dir, "discover for a directory we are not auth for; dropped");
                return Ok(());
            }
            _ => {}
        }
        // A name this rank's complete dirfrag lacks gets a null dentry, replicated like any
        // other (§5.1: discover returns the null dentry, not just "no such name"). The
        // asker then decides ENOENT under a rdlock on its replica's DN lock, and a create
        // here must gather that rdlock before it can xlock the dentry; a bare "missing"
        // answer would let the asker reply ENOENT after a create it raced had already been
        // acknowledged (simulator, 2 ranks: seeds 3, 11, 19, 29).
        if self.cache.lookup_dentry(dir, &d.name).is_none()
            && let Some(f) = frag
            && frag_auth == Some(me)
            && self.cache.dirfrag(f).is_some_and(|x| x.is_complete())
        {
            self.cache.add_null_dentry(f, &d.name);
        }
        let target = match self.cache.lookup_dentry(dir, &d.name) {
            Some(dn) => match self.cache.dentry(dn).map(|x| x.linkage()) {
                Some(Linkage::Primary(i)) => Some(ObjKey::Inode(self.ino_of(i))),
                Some(_) => Some(ObjKey::Dentry { dir: d.dir, name: d.name.clone() }),
                None => None,
            },
            None => None,
        };
        // "Missing" now only says the committed linkage is null: the asker always gets the
        // dentry itself (null or not) and decides under its own DN rdlock. The flag matters
        // to an asker whose replica names an inode it never received (`pending_primary`):
        // its rdlock keeps the auth from changing the committed linkage meanwhile.
        let missing = self
            .cache
            .lookup_dentry(dir, &d.name)
            .and_then(|dn| self.cache.dentry(dn))
            .is_none_or(|x| x.linkage() == Linkage::Null);
        let inode_auth = self.linked_inode_elsewhere(dir, &d.name);
        let mut bundle = ReplicaBundle::default();
        let chain_target = target.unwrap_or(ObjKey::Inode(d.dir));
        for fx in self.replicate_to(&chain_target, from)? {
            if let Effect::Send { msg: MdsMessage::Replicate(b), .. } = fx {
                bundle.objects.extend(b.objects);
            }
        }
        // The dirfrag itself, if the asker lacks it.
        if let Some(f) = self.cache.dirfrag_of_existing(dir)
            && self.cache.dirfrag(f).is_some_and(|x| !x.replicas().contains(&from))
        {
            if let Some(x) = self.cache.dirfrag(f) {
                bundle.objects.push(ReplicaObj::Dirfrag {
                    dir: d.dir,
                    frag: x.frag(),
                    auth: x.auth(),
                    fnode: *x.fnode(),
                });
            }
            self.cache.add_dirfrag_replica(f, from);
        }
        self.send(
            from,
            MdsMessage::DiscoverReply(DiscoverReply {
                dir: d.dir,
                name: d.name,
                bundle,
                missing,
                inode_auth,
            }),
        );
        Ok(())
    }

    /// The asker side: add the replicas, then retry the waiting requests (a missing name
    /// fails them with ENOENT on retry).
    fn handle_discover_reply(&mut self, from: Rank, r: DiscoverReply) -> Result<(), LockerError> {
        tracing::debug!(rank = self.cache.rank(), from, dir = %r.dir, name = %r.name, missing = r.missing, objects = r.bundle.objects.len(), inode_auth = ?r.inode_auth, "discover reply");
        let inode_auth = r.inode_auth;
        self.apply_replicas(from, r.bundle)?;
        if self.discover_linked_inode(from, r.dir, &r.name, inode_auth) {
            return Ok(());
        }
        self.discover_to.remove(&(r.dir, r.name.clone()));
        let waiting = self.discovering.remove(&(r.dir, r.name.clone())).unwrap_or_default();
        for reqid in waiting {
            if !self.requests.contains_key(&reqid) {
                continue;
            }
            if r.missing {
                self.discover_missing.insert(reqid, (r.dir, r.name.clone()));
            }
            self.requeue(reqid);
        }
        Ok(())
    }

    fn replica_lock_states(&self, obj: ObjRef) -> Result<Vec<(u16, lock_sm::LockState)>, LockerError> {
        let mut out = Vec::new();
        for id in self.cache.lock_ids(obj) {
            let l = self.lk(id)?;
            out.push((id.ty.value(), replica_state_of(l.machine(), l.state())));
        }
        Ok(out)
    }

    pub(crate) fn encode_inode_replica(&self, i: InodeId) -> Result<ReplicaObj, LockerError> {
        let n = self.cache.inode(i).ok_or(LockerError::UnknownInode(Ino(0)))?;
        Ok(ReplicaObj::Inode {
            ino: n.ino(),
            auth: n.auth(),
            data: n.data().clone(),
            locks: self.replica_lock_states(ObjRef::Inode(i))?,
        })
    }

    pub(crate) fn encode_dentry_replica(&self, d: DentryId) -> Result<ReplicaObj, LockerError> {
        let dn = self.cache.dentry(d).ok_or(LockerError::UnknownObject(ObjKey::Inode(Ino(0))))?;
        let dir = self
            .cache
            .dentry_dir_inode(d)
            .and_then(|i| self.cache.inode(i))
            .map(|n| n.ino())
            .unwrap_or(Ino(0));
        let linkage = self.linkage_key(dn.linkage());
        Ok(ReplicaObj::Dentry {
            dir,
            name: dn.name().to_string(),
            auth: dn.auth(),
            linkage,
            version: dn.version(),
            locks: self.replica_lock_states(ObjRef::Dentry(d))?,
        })
    }

    /// A linkage named across ranks.
    pub(crate) fn linkage_key(&self, l: Linkage) -> DentryLinkage {
        match l {
            Linkage::Null => DentryLinkage::Null,
            Linkage::Primary(i) => {
                DentryLinkage::Primary(self.cache.inode(i).map(|n| n.ino()).unwrap_or(Ino(0)))
            }
            Linkage::Remote { ino, d_type } => DentryLinkage::Remote { ino, d_type },
        }
    }

    /// The objects from the root down to `target`, parents first.
    fn path_chain(&self, target: &ObjKey) -> Option<Vec<Step>> {
        let mut rev = Vec::new();
        let mut cur = match target {
            ObjKey::Inode(ino) => Step::Inode(self.cache.lookup_ino(*ino)?),
            ObjKey::Dentry { .. } => match self.cache.resolve_obj(target)? {
                ObjRef::Dentry(d) => Step::Dentry(d),
                ObjRef::Inode(i) => Step::Inode(i),
            },
            ObjKey::Dirfrag { dir, frag } => Step::Dirfrag(self.cache.resolve_dirfrag(*dir, *frag)?),
        };
        for _ in 0..crate::cache::MAX_DEPTH * 3 {
            rev.push(cur);
            cur = match cur {
                Step::Inode(i) => match self.cache.inode(i)?.parent() {
                    Some(dn) => Step::Dentry(dn),
                    None => break,
                },
                Step::Dentry(d) => Step::Dirfrag(self.cache.dentry(d)?.dir()),
                Step::Dirfrag(f) => Step::Inode(self.cache.dirfrag(f)?.inode()),
            };
        }
        rev.reverse();
        Some(rev)
    }

    /// The replica side of discover: adds the objects it lacks as replicas; objects already
    /// in cache keep their (possibly transitional) lock states, which the lock protocol
    /// maintains from here on.
    fn apply_replicas(&mut self, from: Rank, bundle: ReplicaBundle) -> Result<(), LockerError> {
        let me = self.cache.rank();
        for obj in bundle.objects {
            match obj {
                ReplicaObj::Inode { ino, auth, data, locks } => {
                    if auth == me {
                        return Err(LockerError::BadMessage {
                            from,
                            why: "replica of an object we are auth for",
                        });
                    }
                    if let Some(i) = self.cache.lookup_ino(ino) {
                        // A copy that still names an older auth: the inode migrated while
                        // this rank was not on the old auth's replica list (it lost it in a
                        // restart), so no AuthChanged came. The replica from the new auth
                        // says the same as one would (simulator `--cross-subtree`, 3 ranks,
                        // faults `all,torn,eio,rank-crash`, seed 1918: the new auth's lock
                        // messages were refused as coming from a rank that is not the auth).
                        if let Some(old) =
                            self.cache.auth_of(ObjRef::Inode(i)).filter(|a| *a != auth && *a != me)
                        {
                            self.handle_auth_changed(auth, AuthChanged { ino, old_auth: old, locks })?;
                        }
                        continue;
                    }
                    let id = self.cache.insert_inode(ino, data);
                    self.cache.make_replica(ObjRef::Inode(id), auth);
                    self.set_replica_locks(ObjRef::Inode(id), &locks)?;
                    // A dentry replica that arrived first may already name this inode.
                    let parent = self
                        .cache
                        .dentry_ids()
                        .find(|d| self.cache.dentry(*d).is_some_and(|dn| dn.pending_primary == Some(ino)));
                    if let Some(dn) = parent {
                        self.resolve_pending_primary(dn);
                    }
                }
                ReplicaObj::Dirfrag { dir, frag, auth, fnode } => {
                    let Some(dir_id) = self.cache.lookup_ino(dir) else {
                        return Err(LockerError::BadMessage {
                            from,
                            why: "dirfrag replica before its inode",
                        });
                    };
                    if self.cache.resolve_dirfrag(dir, frag).is_some() {
                        continue;
                    }
                    let f = self.cache.open_dirfrag(dir_id, false);
                    self.cache.set_dirfrag_auth(f, auth);
                    if let Some(d) = self.cache.dirfrag_mut(f) {
                        d.fnode = fnode;
                        d.projected_version = fnode.version;
                    }
                }
                ReplicaObj::Dentry { dir, name, auth, linkage, version, locks } => {
                    let Some(f) = self.cache.resolve_dirfrag(dir, 0) else {
                        return Err(LockerError::BadMessage {
                            from,
                            why: "dentry replica before its dirfrag",
                        });
                    };
                    let dir_id = self.cache.lookup_ino(dir).ok_or(LockerError::UnknownInode(dir))?;
                    if self.cache.lookup_dentry(dir_id, &name).is_some() {
                        continue;
                    }
                    let dn = self.cache.add_null_dentry(f, &name);
                    self.cache.make_replica(ObjRef::Dentry(dn), auth);
                    self.set_replica_locks(ObjRef::Dentry(dn), &locks)?;
                    if let Some(d) = self.cache.dentry_mut(dn) {
                        d.version = version;
                        d.projected_version = version;
                    }
                    match linkage {
                        DentryLinkage::Null => {}
                        DentryLinkage::Remote { ino, d_type } => self.cache.link_remote_now(dn, ino, d_type),
                        DentryLinkage::Primary(ino) => match self.cache.lookup_ino(ino) {
                            Some(i) => {
                                self.drop_stale_replica_parent(dn, i);
                                self.cache.link_primary_now(dn, i);
                            }
                            None => {
                                if let Some(d) = self.cache.dentry_mut(dn) {
                                    d.pending_primary = Some(ino);
                                }
                            }
                        },
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn set_replica_locks(
        &mut self,
        obj: ObjRef,
        locks: &[(u16, lock_sm::LockState)],
    ) -> Result<(), LockerError> {
        for (ty, state) in locks {
            let Some(ty) = LockType::from_value(*ty) else { continue };
            let id = LockId { obj, ty };
            if let Ok(l) = self.lkm(id) {
                l.state = *state;
            }
        }
        Ok(())
    }
}

/// One object on a path.
#[derive(Debug, Clone, Copy)]
enum Step {
    Inode(InodeId),
    Dirfrag(crate::ids::DirfragId),
    Dentry(DentryId),
}
