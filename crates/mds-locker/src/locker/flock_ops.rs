//! SETFILELOCK and GETFILELOCK (mds spec §5.2): advisory locks kept in memory on the inode.
//!
//! Changing the table takes an xlock on the inode's flocklock (IFLOCK); reading it a rdlock.
//! A conflicting request either fails at once with EAGAIN (F_SETLK, LOCK_NB) or, asked to
//! wait, drops every lock and auth pin it holds and parks on the inode until some advisory
//! lock there is released; it then retries from the top. Nothing is journaled: clients
//! re-assert their locks when they reconnect after a restart.

use std::collections::BTreeSet;

use lock_sm::LockType;

use crate::effects::{Errno, FilePath, ReplyData};
use crate::error::LockerError;
use crate::flock::{FileLock, FileLockKind, FileLockRule};
use crate::ids::{ClientId, InodeId, LockId, ReqId};
use crate::lock::WAIT_FLOCK;
use crate::mutation::LockOp;

use super::Locker;
use super::server::Step;

/// Bound on the owners a deadlock search visits (every owner is visited once anyway).
const MAX_DEADLOCK_OWNERS: usize = 4096;

impl Locker {
    /// The request's lock with the requester filled in; flock locks cover the whole file.
    fn own_file_lock(
        &self,
        reqid: ReqId,
        rule: FileLockRule,
        mut lock: FileLock,
    ) -> Result<Option<FileLock>, LockerError> {
        let Some(client) = self.mutation(reqid)?.client else {
            return Ok(None);
        };
        lock.client = client;
        if rule == FileLockRule::Flock {
            lock.start = 0;
            lock.length = 0;
        }
        Ok(Some(lock))
    }

    /// SETFILELOCK (§5.2): path rdlocks, xlock the flocklock, then add or remove the lock.
    pub(crate) fn handle_setfilelock(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        rule: FileLockRule,
        lock: FileLock,
        wait: bool,
    ) -> Result<(), LockerError> {
        let target = match self.traverse_to_inode(reqid, path, true)? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let Some(lock) = self.own_file_lock(reqid, rule, lock)? else {
            return self.reply_error(reqid, Errno::EINVAL);
        };
        let flocklock = LockId::inode(target, LockType::IFlock);
        if !self.acquire_locks(reqid, &[LockOp::x(flocklock)])? {
            return Ok(());
        }
        let ino = self.ino_of(target);
        let table = self
            .cache
            .inode(target)
            .map(|n| n.file_locks(rule).clone())
            .ok_or(LockerError::Precondition("inode vanished"))?;
        if lock.kind == FileLockKind::Unlock {
            let changed = self.cache.inode_mut(target).is_some_and(|n| n.file_locks_mut(rule).remove(&lock));
            if changed {
                self.wake(flocklock, WAIT_FLOCK)?;
            }
            tracing::debug!(%reqid, %ino, ?rule, changed, "file lock released");
            return self.reply_done(reqid, Some(ino), ReplyData::None);
        }
        if table.conflict(&lock).is_some() {
            if !wait {
                return self.reply_error(reqid, Errno::EAGAIN);
            }
            if rule == FileLockRule::Fcntl && self.file_lock_would_deadlock(target, &lock) {
                return self.reply_error(reqid, Errno::EDEADLK);
            }
            self.drop_locks(reqid)?;
            self.drop_local_auth_pins(reqid)?;
            self.flock_waiting.insert(reqid, (target, rule, lock));
            self.add_waiter(flocklock, WAIT_FLOCK, reqid)?;
            self.mark_event(reqid, "failed to add lock, waiting");
            return Ok(());
        }
        self.flock_waiting.remove(&reqid);
        // Replacing this owner's locks (a downgrade, a shrink) may unblock others.
        let replaced = table.held().iter().any(|h| h.same_owner(&lock) && h.overlaps(&lock));
        if let Some(n) = self.cache.inode_mut(target) {
            n.file_locks_mut(rule).add(lock);
        }
        if replaced {
            self.wake(flocklock, WAIT_FLOCK)?;
        }
        tracing::debug!(%reqid, %ino, ?rule, ?lock, "file lock granted");
        self.reply_done(reqid, Some(ino), ReplyData::None)
    }

    /// GETFILELOCK (§5.2): path rdlocks, rdlock the flocklock, report the first lock that
    /// would block the probe.
    pub(crate) fn handle_getfilelock(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        rule: FileLockRule,
        lock: FileLock,
    ) -> Result<(), LockerError> {
        let target = match self.traverse_to_inode(reqid, path, true)? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let Some(lock) = self.own_file_lock(reqid, rule, lock)? else {
            return self.reply_error(reqid, Errno::EINVAL);
        };
        if !self.acquire_locks(reqid, &[LockOp::rd(LockId::inode(target, LockType::IFlock))])? {
            return Ok(());
        }
        let conflict = self.cache.inode(target).and_then(|n| n.file_locks(rule).conflict(&lock));
        let ino = self.ino_of(target);
        self.reply_done(reqid, Some(ino), ReplyData::FileLock(conflict))
    }

    /// Whether waiting for `lock` on `inode` would close a cycle of fcntl owners each
    /// waiting for the next (Ceph's `is_deadlock` over its global waiting list).
    fn file_lock_would_deadlock(&self, inode: InodeId, lock: &FileLock) -> bool {
        let me = (lock.client, lock.owner);
        let blockers = |i: InodeId, l: &FileLock| -> Vec<(ClientId, u64)> {
            self.cache
                .inode(i)
                .map(|n| {
                    n.file_locks(FileLockRule::Fcntl).conflicts(l).map(|h| (h.client, h.owner)).collect()
                })
                .unwrap_or_default()
        };
        let mut frontier = blockers(inode, lock);
        let mut seen = BTreeSet::new();
        while let Some(owner) = frontier.pop() {
            if owner == me {
                return true;
            }
            if !seen.insert(owner) || seen.len() > MAX_DEADLOCK_OWNERS {
                continue;
            }
            for (wi, rule, wl) in self.flock_waiting.values() {
                if *rule == FileLockRule::Fcntl && (wl.client, wl.owner) == owner {
                    frontier.extend(blockers(*wi, wl));
                }
            }
        }
        false
    }

    /// A client's session ended: its advisory locks go, and requests blocked on them retry.
    pub(crate) fn drop_client_file_locks(&mut self, client: ClientId) -> Result<(), LockerError> {
        let inodes: Vec<InodeId> = self.cache.inode_ids().collect();
        for i in inodes {
            let changed = self.cache.inode_mut(i).is_some_and(|n| {
                let a = n.file_locks_mut(FileLockRule::Flock).remove_client(client);
                let b = n.file_locks_mut(FileLockRule::Fcntl).remove_client(client);
                a || b
            });
            if changed {
                self.wake(LockId::inode(i, LockType::IFlock), WAIT_FLOCK)?;
            }
        }
        Ok(())
    }
}
