//! SETATTR, SETXATTR and REMOVEXATTR (mds spec §5.2, §8 fact 64): changes to one inode's
//! own fields, each under the lock that protects that field group (§2.4): IAUTH for mode and
//! ownership, IFILE for size and times, IXATTR for extended attributes, and only the
//! versionlock for a bare ctime change (nothing a client caches depends on ctime alone).

use lock_sm::LockType;
use lock_sm::caps::{FILE_RD, FILE_WR};

use crate::cache::{S_IFDIR, S_IFMT, S_IFREG};
use crate::effects::{Errno, FilePath, SetAttr, XattrFlags};
use crate::error::LockerError;
use crate::ids::{LockId, ReqId};
use crate::journal::JournalEntry;
use crate::mutation::{LockOp, Projection};

use super::Locker;
use super::server::Step;

/// Longest extended attribute name (XATTR_NAME_MAX).
pub const XATTR_NAME_MAX: usize = 255;

impl Locker {
    /// SETATTR (§5.2, §8 fact 64): path rdlocks, then xlock the authlock for mode / uid /
    /// gid, xlock the filelock for size / mtime / atime, wrlock the versionlock for ctime.
    /// Size is only settable on regular files. An empty change is refused: clients never
    /// send one, and it would journal a version bump under no lock.
    pub(crate) fn handle_setattr(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        attrs: SetAttr,
    ) -> Result<(), LockerError> {
        if attrs.is_empty() {
            return self.reply_error(reqid, Errno::EINVAL);
        }
        let target = match self.traverse_to_inode(reqid, path, true)? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let ty = self.cache.inode(target).map(|n| n.data().mode & S_IFMT).unwrap_or(0);
        if attrs.size.is_some() && ty != S_IFREG {
            return self.reply_error(reqid, if ty == S_IFDIR { Errno::EISDIR } else { Errno::EINVAL });
        }
        let lk = |ty| LockId::inode(target, ty);
        let mut locks = Vec::new();
        if attrs.touches_auth() {
            locks.push(LockOp::x(lk(LockType::IAuth)));
        }
        if attrs.touches_file() {
            locks.push(LockOp::x(lk(LockType::IFile)));
        }
        if attrs.ctime_ms.is_some() {
            locks.push(LockOp::wr(lk(LockType::IVersion)));
        }
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        let now = self.now_ms();
        let pi =
            self.cache.project_inode(target, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        if let Some(mode) = attrs.mode {
            pi.mode = (pi.mode & S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = attrs.uid {
            pi.uid = uid;
        }
        if let Some(gid) = attrs.gid {
            pi.gid = gid;
        }
        if let Some(size) = attrs.size {
            if size != pi.size {
                pi.mtime_ms = now;
            }
            pi.size = size;
        }
        if let Some(mtime) = attrs.mtime_ms {
            pi.mtime_ms = mtime;
        }
        pi.ctime_ms = attrs.ctime_ms.unwrap_or(now);
        self.cache.pre_dirty_inode(target);
        self.note_projection(reqid, Projection::Inode(target))?;
        let ino = self.ino_of(target);
        let changes = self.projected_changes(reqid)?;
        self.journal_and_reply(reqid, JournalEntry::update(reqid, "setattr", changes), Ok(Some(ino)))?;
        // A client waiting to read or write behind the xlocked filelock should not wait for
        // the journal's own batching (§5.2 SETATTR).
        let wanted_io = self
            .cache
            .inode(target)
            .is_some_and(|n| n.caps().values().any(|c| c.wanted() & (FILE_RD | FILE_WR) != 0));
        if attrs.touches_file() && wanted_io {
            self.need_flush = true;
        }
        Ok(())
    }

    /// SETXATTR (`value` is `Some`) and REMOVEXATTR (`None`), §5.2: path rdlocks, xlock the
    /// xattrlock, then check existence against the projected attributes (the xlock makes
    /// them this request's to read). `ceph.*` virtual attributes set layouts and quotas under
    /// other locks and are not modelled, so they are refused.
    pub(crate) fn handle_setxattr(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        name: &str,
        value: Option<Vec<u8>>,
        flags: XattrFlags,
    ) -> Result<(), LockerError> {
        if name.is_empty() || name.starts_with("ceph.") {
            return self.reply_error(reqid, Errno::EINVAL);
        }
        if name.len() > XATTR_NAME_MAX {
            return self.reply_error(reqid, Errno::ENAMETOOLONG);
        }
        let target = match self.traverse_to_inode(reqid, path, true)? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        if !self.acquire_locks(reqid, &[LockOp::x(LockId::inode(target, LockType::IXattr))])? {
            return Ok(());
        }
        let exists = self.cache.inode(target).is_some_and(|n| n.projected_data().xattrs.contains_key(name));
        let err = match (&value, flags) {
            (Some(_), XattrFlags::Create) if exists => Some(Errno::EEXIST),
            (Some(_), XattrFlags::Replace) if !exists => Some(Errno::ENODATA),
            (None, _) if !exists => Some(Errno::ENODATA),
            _ => None,
        };
        if let Some(e) = err {
            return self.reply_error(reqid, e);
        }
        let now = self.now_ms();
        let what = if value.is_some() { "setxattr" } else { "removexattr" };
        let pi =
            self.cache.project_inode(target, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        match value {
            Some(v) => {
                pi.xattrs.insert(name.to_string(), v);
            }
            None => {
                pi.xattrs.remove(name);
            }
        }
        pi.xattr_version += 1;
        pi.ctime_ms = now;
        self.cache.pre_dirty_inode(target);
        self.note_projection(reqid, Projection::Inode(target))?;
        let ino = self.ino_of(target);
        let changes = self.projected_changes(reqid)?;
        self.journal_and_reply(reqid, JournalEntry::update(reqid, what, changes), Ok(Some(ino)))
    }
}
