//! READDIR and OPEN (mds spec §5.2): operations that read the namespace and, at most,
//! truncate a file.
//!
//! READDIR rdlocks the directory's filelock (its entry list and fragstat) and dirfragtreelock
//! (which fragments exist), §8 fact 65; every request that adds or removes an entry holds a
//! wrlock on that filelock until its journal entry is safe, so a listing never shows a
//! half-applied change to another client. OPEN rdlocks what the reply reports and, with
//! O_TRUNC, xlocks the filelock and journals the truncation.

use lock_sm::LockType;
use lock_sm::caps::{
    AUTH_EXCL, AUTH_SHARED, FILE_MODE_PIN, FILE_MODE_WR, XATTR_EXCL, XATTR_SHARED, caps_for_mode,
};

use crate::cache::{Linkage, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::effects::{DirEntry, Errno, FilePath, ReplyData};
use crate::error::LockerError;
use crate::ids::{InodeId, LockId, ReqId};
use crate::journal::JournalEntry;
use crate::mutation::{LockOp, Projection};

use super::Locker;
use super::server::{Step, Want};

impl Locker {
    /// The inode a read-style path (`rdlock_path_pin_ref`, §5.1) resolves to.
    /// With `want_auth` the request is forwarded to the target's auth rank unless that is
    /// this rank (writes to the inode, §5.2).
    pub(crate) fn traverse_to_inode(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        want_auth: bool,
    ) -> Result<Step<InodeId>, LockerError> {
        match self.path_traverse(reqid, path, Want { want_auth, ..Want::default() })? {
            Step::Done(t) => Ok(t.target.map_or(Step::Fail(Errno::ENOENT), Step::Done)),
            Step::Wait => Ok(Step::Wait),
            Step::Fail(e) => Ok(Step::Fail(e)),
        }
    }

    /// READDIR (§5.2, §8 fact 65): path rdlocks, then rdlock the directory's filelock and
    /// dirfragtreelock and list every non-null entry in name order. Entries come without
    /// leases or caps (Ceph issues those lock-free; not modelled).
    pub(crate) fn handle_readdir(&mut self, reqid: ReqId, path: &FilePath) -> Result<(), LockerError> {
        let dir = match self.traverse_to_inode(reqid, path, false)? {
            Step::Done(d) => d,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        if !self.cache.inode(dir).is_some_and(|n| n.is_dir()) {
            return self.reply_error(reqid, Errno::ENOTDIR);
        }
        // Only the dirfrag's auth has every entry (Ceph's try_open_auth_dirfrag): a replica
        // holds just the dentries it discovered, so the listing is served there. Without the
        // dirfrag in cache, the directory inode's auth knows where it is.
        let me = self.cache.rank();
        let frag_auth = match self.cache.dirfrag_of_existing(dir) {
            Some(f) => self.cache.dirfrag_auth(f),
            None => self.cache.inode(dir).map(|n| n.auth()),
        };
        if let Some(a) = frag_auth.filter(|a| *a != me) {
            return self.forward_request(reqid, a);
        }
        let locks =
            [LockOp::rd(LockId::inode(dir, LockType::IFile)), LockOp::rd(LockId::inode(dir, LockType::IDft))];
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        let mut entries = Vec::new();
        let frags: Vec<_> =
            self.cache.inode(dir).map(|n| n.dirfrags().values().copied().collect()).unwrap_or_default();
        for frag in frags {
            let dentries: Vec<_> = self
                .cache
                .dirfrag(frag)
                .map(|f| f.dentries().iter().map(|(n, d)| (n.clone(), *d)).collect())
                .unwrap_or_default();
            for (name, dn) in dentries {
                let entry = match self.visible_linkage(dn, reqid)? {
                    Linkage::Null => continue,
                    Linkage::Primary(i) => {
                        let n =
                            self.cache.inode(i).ok_or(LockerError::Precondition("linked inode missing"))?;
                        DirEntry { name, ino: n.ino(), d_type: n.data().mode & S_IFMT }
                    }
                    Linkage::Remote { ino, d_type } => DirEntry { name, ino, d_type },
                };
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let ino = self.ino_of(dir);
        self.reply_done(reqid, Some(ino), ReplyData::Entries(entries))
    }

    /// OPEN of an existing inode (§5.2): path rdlocks (the target's snaplock among them), a
    /// rdlock on the authlock / xattrlock when the reply should carry them and the client
    /// cannot already trust its own caps, and with O_TRUNC an xlock on the filelock; then a
    /// cap for the open mode. Only regular files are opened for I/O; anything else gets a
    /// pin-only cap, and a symlink's O_TRUNC is ignored (it is followed by the client).
    pub(crate) fn handle_open(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        file_mode: u32,
        trunc: bool,
        directory: bool,
        mask: u32,
    ) -> Result<(), LockerError> {
        // Every open goes to the inode's auth, which issues the caps. Ceph lets a replica
        // serve a read-only open with a non-auth cap; cephlock does not model non-auth caps.
        let target = match self.traverse_to_inode(reqid, path, true)? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let ty = self.cache.inode(target).map(|n| n.data().mode & S_IFMT).unwrap_or(0);
        let (is_dir, is_file, is_symlink) = (ty == S_IFDIR, ty == S_IFREG, ty == S_IFLNK);
        if directory && !is_dir && !is_symlink {
            return self.reply_error(reqid, Errno::ENOTDIR);
        }
        if is_dir && file_mode & FILE_MODE_WR != 0 {
            // The VFS refuses this before asking the MDS; answer the same.
            return self.reply_error(reqid, Errno::EISDIR);
        }
        let trunc = trunc && !is_symlink;
        if trunc && !is_file {
            return self.reply_error(reqid, if is_dir { Errno::EISDIR } else { Errno::EINVAL });
        }
        let cmode = if is_file { file_mode } else { FILE_MODE_PIN };
        let client = self.mutation(reqid)?.client;
        let issued = self.client_issued(target, client);
        let lk = |ty| LockId::inode(target, ty);
        let mut locks = vec![LockOp::rd(lk(LockType::ISnap))];
        if mask & AUTH_SHARED != 0 && issued & AUTH_EXCL == 0 {
            locks.push(LockOp::rd(lk(LockType::IAuth)));
        }
        if mask & XATTR_SHARED != 0 && issued & XATTR_EXCL == 0 {
            locks.push(LockOp::rd(lk(LockType::IXattr)));
        }
        if trunc {
            locks.push(LockOp::x(lk(LockType::IFile)));
        }
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        if let Some(client) = client {
            self.add_cap(client, target, caps_for_mode(cmode))?;
        }
        let ino = self.ino_of(target);
        if !trunc {
            return self.reply_done(reqid, Some(ino), ReplyData::None);
        }
        // do_open_truncate: project size 0, journal, and flush at once (§5.2 OPEN).
        let now = self.now_ms();
        let pi =
            self.cache.project_inode(target, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        pi.size = 0;
        pi.mtime_ms = now;
        pi.ctime_ms = now;
        self.cache.pre_dirty_inode(target);
        self.note_projection(reqid, Projection::Inode(target))?;
        let changes = self.projected_changes(reqid)?;
        self.journal_and_reply(reqid, JournalEntry::update(reqid, "open_truncate", changes), Ok(Some(ino)))?;
        self.need_flush = true;
        Ok(())
    }
}
