//! Discovering an inode whose primary dentry lives in another rank's dirfrag.
//!
//! Deviation from Ceph: a cross-rank rename does not migrate a directory inode (see
//! `migrate`), so after renaming a directory into another rank's dirfrag the inode's auth
//! (the rank that had it) differs from its primary dentry's auth. In Ceph an inode is always
//! auth where its primary dentry is, so the dentry auth's discover reply (§5.1) carries the
//! inode; here the dentry's auth may hold only a replica, which it must not hand on (the
//! inode's auth would not know the new replica, and its lock gathers would miss it). The
//! asker then kept a dentry naming an inode it never received (`pending_primary`) and
//! discovered it again from the dentry's auth, forever (simulator `--cross-subtree`, 3
//! ranks, seed 855: a link whose target was such a directory).
//!
//! So the dentry's auth names the inode's auth in its reply (`DiscoverReply::inode_auth`),
//! the asker asks that rank the same question, and a rank asked about a dentry in a dirfrag
//! it is not auth for replicates the inode the dentry links if that inode is its own.

use crate::cache::Linkage;
use crate::ids::{Ino, InodeId, ObjKey, ObjRef, Rank};
use crate::message::{Discover, MdsMessage};

use super::Locker;

impl Locker {
    /// The inode `dir`/`name` primary-links, if this rank is its auth.
    pub(crate) fn linked_inode_target(&self, dir: InodeId, name: &str) -> Option<ObjKey> {
        let dn = self.cache.lookup_dentry(dir, name)?;
        let Linkage::Primary(i) = self.cache.dentry(dn)?.linkage() else { return None };
        self.cache.is_auth_obj(ObjRef::Inode(i)).then(|| ObjKey::Inode(self.ino_of(i)))
    }

    /// The rank auth for the inode `dir`/`name` primary-links, if that is another rank.
    pub(crate) fn linked_inode_elsewhere(&self, dir: InodeId, name: &str) -> Option<Rank> {
        let dn = self.cache.lookup_dentry(dir, name)?;
        let Linkage::Primary(i) = self.cache.dentry(dn)?.linkage() else { return None };
        self.cache.auth_of(ObjRef::Inode(i)).filter(|a| *a != self.cache.rank())
    }

    /// Asker side of a discover reply naming the linked inode's auth: if the dentry still
    /// names an inode this rank lacks, ask that rank, and keep the requests waiting for the
    /// answer. Returns whether it did.
    pub(crate) fn discover_linked_inode(
        &mut self,
        from: Rank,
        dir: Ino,
        name: &str,
        inode_auth: Option<Rank>,
    ) -> bool {
        let Some(to) = inode_auth else { return false };
        if to == self.cache.rank() || to == from || self.peers_down.contains(&to) {
            return false;
        }
        let pending = self
            .cache
            .lookup_ino(dir)
            .and_then(|d| self.cache.lookup_dentry(d, name))
            .and_then(|dn| self.cache.dentry(dn))
            .is_some_and(|d| d.pending_primary.is_some() && d.linkage() == Linkage::Null);
        let key = (dir, name.to_string());
        if !pending || self.discovering.get(&key).is_none_or(|w| w.is_empty()) {
            return false;
        }
        tracing::debug!(%dir, name, to, "discover: the linked inode's auth is another rank; asking it");
        self.discover_to.insert(key, to);
        self.send(to, MdsMessage::Discover(Discover { dir, name: name.to_string() }));
        true
    }
}
