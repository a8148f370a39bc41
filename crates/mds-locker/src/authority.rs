//! Authority and replicas across ranks (mds spec §2.2, §4.12).
//!
//! Every cache object has one auth rank. A dirfrag's auth is the rank its subtree belongs to;
//! a dentry follows its dirfrag; an inode follows the dirfrag holding its primary dentry (the
//! root and the `~mdsN` directories are base inodes, auth on rank 0 and rank N). Other ranks
//! may hold replicas; the auth remembers which ranks replicate each object so it can send them
//! lock messages and gather their acks. A replica's locks follow the `replica_state` column of
//! the auth's state (§1.1).
//!
//! Messages name objects with `ObjKey` / `LockKey`; this module turns those into local handles
//! and back.

use std::collections::BTreeSet;

use lock_sm::LockState;

use crate::cache::{Cache, Linkage};
use crate::ids::{DirfragId, Ino, LockId, LockKey, ObjKey, ObjRef, Rank};

impl Cache {
    /// The cross-rank name of a lock-bearing object.
    pub fn obj_key(&self, obj: ObjRef) -> Option<ObjKey> {
        match obj {
            ObjRef::Inode(i) => self.inode(i).map(|n| ObjKey::Inode(n.ino())),
            ObjRef::Dentry(d) => {
                let dn = self.dentry(d)?;
                let dir = self.dentry_dir_inode(d).and_then(|i| self.inode(i))?.ino();
                Some(ObjKey::Dentry { dir, name: dn.name().to_string() })
            }
        }
    }

    /// The cross-rank name of a dirfrag.
    pub fn dirfrag_key(&self, f: DirfragId) -> Option<ObjKey> {
        let frag = self.dirfrag(f)?;
        let dir = self.inode(frag.inode())?.ino();
        Some(ObjKey::Dirfrag { dir, frag: frag.frag() })
    }

    /// The local handle of a lock-bearing object named by another rank, if it is in cache.
    pub fn resolve_obj(&self, key: &ObjKey) -> Option<ObjRef> {
        match key {
            ObjKey::Inode(ino) => self.lookup_ino(*ino).map(ObjRef::Inode),
            ObjKey::Dentry { dir, name } => {
                let dir = self.lookup_ino(*dir)?;
                self.lookup_dentry(dir, name).map(ObjRef::Dentry)
            }
            ObjKey::Dirfrag { .. } => None,
        }
    }

    /// The local handle of a dirfrag named by another rank, if it is in cache.
    pub fn resolve_dirfrag(&self, dir: Ino, frag: u32) -> Option<DirfragId> {
        let dir = self.lookup_ino(dir)?;
        self.inode(dir)?.dirfrags().get(&frag).copied()
    }

    /// The cross-rank name of a lock.
    pub fn lock_key(&self, id: LockId) -> Option<LockKey> {
        Some(LockKey { obj: self.obj_key(id.obj)?, ty: id.ty })
    }

    /// The local lock named by another rank, if its object is in cache.
    pub fn resolve_lock(&self, key: &LockKey) -> Option<LockId> {
        let obj = self.resolve_obj(&key.obj)?;
        let id = LockId { obj, ty: key.ty };
        self.lock(id).ok().map(|_| id)
    }

    /// The auth rank of a lock-bearing object.
    pub fn auth_of(&self, obj: ObjRef) -> Option<Rank> {
        match obj {
            ObjRef::Inode(i) => self.inode(i).map(|n| n.auth),
            ObjRef::Dentry(d) => self.dentry(d).map(|n| n.auth),
        }
    }

    /// Whether this rank is auth for the object.
    pub fn is_auth_obj(&self, obj: ObjRef) -> bool {
        self.auth_of(obj) == Some(self.rank())
    }

    /// The ranks replicating an object (empty on a replica, and when unreplicated).
    pub fn replicas_of(&self, obj: ObjRef) -> BTreeSet<Rank> {
        match obj {
            ObjRef::Inode(i) => self.inode(i).map(|n| n.replicas.clone()),
            ObjRef::Dentry(d) => self.dentry(d).map(|n| n.replicas.clone()),
        }
        .unwrap_or_default()
    }

    /// Whether any other rank holds a replica (Ceph's `is_replicated()`).
    pub fn is_replicated(&self, obj: ObjRef) -> bool {
        match obj {
            ObjRef::Inode(i) => self.inode(i).is_some_and(|n| !n.replicas.is_empty()),
            ObjRef::Dentry(d) => self.dentry(d).is_some_and(|n| !n.replicas.is_empty()),
        }
    }

    /// Records that `rank` now holds a replica of `obj` (the auth side of discover).
    pub fn add_replica(&mut self, obj: ObjRef, rank: Rank) {
        match obj {
            ObjRef::Inode(i) => {
                if let Some(n) = self.inode_mut(i) {
                    n.replicas.insert(rank);
                }
            }
            ObjRef::Dentry(d) => {
                if let Some(n) = self.dentry_mut(d) {
                    n.replicas.insert(rank);
                }
            }
        }
    }

    /// Forgets `rank`'s replica of `obj` (it trimmed it, or it failed).
    pub fn remove_replica(&mut self, obj: ObjRef, rank: Rank) {
        match obj {
            ObjRef::Inode(i) => {
                if let Some(n) = self.inode_mut(i) {
                    n.replicas.remove(&rank);
                }
            }
            ObjRef::Dentry(d) => {
                if let Some(n) = self.dentry_mut(d) {
                    n.replicas.remove(&rank);
                }
            }
        }
    }

    /// Records that `rank` replicates dirfrag `f`.
    pub fn add_dirfrag_replica(&mut self, f: DirfragId, rank: Rank) {
        if let Some(d) = self.dirfrag_mut(f) {
            d.replicas.insert(rank);
        }
    }

    /// Sets the auth rank of an object and flips its locks' `is_auth` accordingly. The lock
    /// states are the caller's business (see `make_replica`).
    pub fn set_auth(&mut self, obj: ObjRef, auth: Rank) {
        let me = self.rank();
        let locks = match obj {
            ObjRef::Inode(i) => self.inode_mut(i).map(|n| {
                n.auth = auth;
                n.is_auth = auth == me;
                if auth != me {
                    n.replicas.clear();
                }
                &mut n.locks
            }),
            ObjRef::Dentry(d) => self.dentry_mut(d).map(|n| {
                n.auth = auth;
                if auth != me {
                    n.replicas.clear();
                }
                &mut n.locks
            }),
        };
        if let Some(locks) = locks {
            for l in locks.iter_mut() {
                l.is_auth = auth == me;
            }
        }
    }

    /// Sets the auth rank of a dirfrag (the subtree map's view of it).
    pub fn set_dirfrag_auth(&mut self, f: DirfragId, auth: Rank) {
        let me = self.rank();
        if let Some(d) = self.dirfrag_mut(f) {
            d.auth = auth;
            if auth != me {
                d.replicas.clear();
            }
        }
    }

    /// Turns a freshly created object into a replica of `auth`'s copy whose locks are in
    /// their initial states: each lock takes the `replica_state` of the auth's initial state.
    pub fn make_replica(&mut self, obj: ObjRef, auth: Rank) {
        self.set_auth(obj, auth);
        for id in self.lock_ids(obj) {
            if let Ok(l) = self.lock_mut(id) {
                let auth_state = crate::lock::Lock::initial_state(l.ty);
                l.state = replica_state_of(l.machine(), auth_state);
            }
        }
    }

    /// Marks a dirfrag complete with the given committed fnode (an importer taking over a
    /// frag whose full content it received).
    pub fn set_dirfrag_complete(&mut self, f: DirfragId, fnode: crate::cache::Fnode) {
        if let Some(d) = self.dirfrag_mut(f) {
            d.complete = true;
            d.fnode = fnode;
            d.projected_version = d.projected_version.max(fnode.version);
        }
    }

    /// A directory's dirfrag if it is in cache (never opens one).
    pub fn dirfrag_of_existing(&self, dir: crate::ids::InodeId) -> Option<DirfragId> {
        self.inode(dir).and_then(|n| n.dirfrags().get(&0).copied())
    }

    /// The auth rank of a dirfrag.
    pub fn dirfrag_auth(&self, f: DirfragId) -> Option<Rank> {
        self.dirfrag(f).map(|d| d.auth)
    }

    /// The auth rank an inode should have: that of the dirfrag holding its primary dentry,
    /// or its own for base inodes.
    pub fn derived_inode_auth(&self, ino: crate::ids::InodeId) -> Option<Rank> {
        let n = self.inode(ino)?;
        match n.parent() {
            Some(dn) => self.dentry(dn).and_then(|d| self.dirfrag_auth(d.dir())),
            None => Some(n.auth),
        }
    }

    /// Whether a dentry's committed linkage names a primary inode in cache.
    pub fn primary_of(&self, dn: crate::ids::DentryId) -> Option<crate::ids::InodeId> {
        match self.dentry(dn)?.linkage() {
            Linkage::Primary(i) => Some(i),
            _ => None,
        }
    }
}

/// The state a replica's lock is in while the auth's is in `auth_state` (§1.1
/// `replica_state`). Rows whose column is empty (UNDEF) leave the replica where the auth is.
pub fn replica_state_of(m: lock_sm::Machine, auth_state: LockState) -> LockState {
    match m.row(auth_state).replica_state {
        LockState::Undef => auth_state,
        s => s,
    }
}
