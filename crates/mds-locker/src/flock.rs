//! Advisory file locks (mds spec §5.2 SETFILELOCK / GETFILELOCK).
//!
//! Ceph keeps `flock(2)` and `fcntl(2)` locks in memory on the inode's auth MDS and never
//! journals them: after a restart clients re-send their locks on reconnect. The MDS's lock
//! (IFLOCK) only serializes changes to this table; the table itself decides conflicts. A
//! blocked F_SETLKW / LOCK_EX request waits on the inode until some lock is removed, then
//! retries from scratch, exactly like a request waiting on a metadata lock.
//!
//! Rules kept from Ceph's `ceph_lock_state_t`: two locks conflict when their byte ranges
//! overlap, they belong to different owners (client + owner id), and at least one of them is
//! exclusive. A new lock replaces the same owner's locks on the bytes it covers (POSIX
//! semantics; `flock` locks always cover the whole file). Unlocking removes the owner's locks
//! on the given range, splitting locks that straddle it.

use crate::ids::ClientId;

/// What a file lock request asks for (Ceph's `CEPH_LOCK_SHARED` / `EXCL` / `UNLOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLockKind {
    /// Read lock: compatible with other shared locks.
    Shared,
    /// Write lock: conflicts with every other owner's lock on the same bytes.
    Exclusive,
    /// Release the owner's locks on the range.
    Unlock,
}

/// Which of the two lock families (Ceph's `CEPH_LOCK_FLOCK` / `CEPH_LOCK_FCNTL` rules). The
/// families never conflict with each other, as on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileLockRule {
    /// `flock(2)`: whole-file locks.
    Flock,
    /// `fcntl(2)` byte-range (POSIX) locks.
    Fcntl,
}

/// One advisory lock (Ceph's `ceph_filelock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLock {
    /// Shared, exclusive, or (in requests only) unlock.
    pub kind: FileLockKind,
    /// First byte.
    pub start: u64,
    /// Number of bytes; 0 means "to the end of the file, however long it grows".
    pub length: u64,
    /// The client holding it.
    pub client: ClientId,
    /// Owner within the client (open file description or process).
    pub owner: u64,
    /// Process id, reported back by GETFILELOCK.
    pub pid: u64,
}

impl FileLock {
    /// Last byte covered, `None` for "to end of file".
    fn last(&self) -> Option<u64> {
        if self.length == 0 { None } else { Some(self.start.saturating_add(self.length - 1)) }
    }

    /// Whether the two byte ranges share a byte.
    pub fn overlaps(&self, other: &FileLock) -> bool {
        let a_before_b = self.last().is_some_and(|l| l < other.start);
        let b_before_a = other.last().is_some_and(|l| l < self.start);
        !a_before_b && !b_before_a
    }

    /// Same owner: the same client and owner id.
    pub fn same_owner(&self, other: &FileLock) -> bool {
        self.client == other.client && self.owner == other.owner
    }

    /// Whether `self` (held) blocks `req`.
    pub fn conflicts_with(&self, req: &FileLock) -> bool {
        !self.same_owner(req)
            && self.overlaps(req)
            && (self.kind == FileLockKind::Exclusive || req.kind == FileLockKind::Exclusive)
    }

    /// The parts of `self` outside `cut`'s range (zero, one or two pieces).
    fn minus(&self, cut: &FileLock) -> Vec<FileLock> {
        if !self.overlaps(cut) {
            return vec![*self];
        }
        let mut out = Vec::new();
        if self.start < cut.start {
            out.push(FileLock { length: cut.start - self.start, ..*self });
        }
        if let Some(cut_last) = cut.last() {
            let after = cut_last.saturating_add(1);
            match self.last() {
                Some(last) if last >= after => {
                    out.push(FileLock { start: after, length: last - after + 1, ..*self })
                }
                None if after > cut_last => out.push(FileLock { start: after, length: 0, ..*self }),
                _ => {}
            }
        }
        out
    }
}

/// The held locks of one family on one inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileLockTable {
    held: Vec<FileLock>,
}

impl FileLockTable {
    /// Held locks, in start order.
    pub fn held(&self) -> &[FileLock] {
        &self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The first held lock that blocks `req` (GETFILELOCK's answer), if any.
    pub fn conflict(&self, req: &FileLock) -> Option<FileLock> {
        self.held.iter().find(|h| h.conflicts_with(req)).copied()
    }

    /// Every held lock that blocks `req`.
    pub fn conflicts<'a>(&'a self, req: &'a FileLock) -> impl Iterator<Item = &'a FileLock> + 'a {
        self.held.iter().filter(move |h| h.conflicts_with(req))
    }

    /// Installs `req` (which must not conflict), replacing the owner's locks on its bytes.
    pub(crate) fn add(&mut self, req: FileLock) {
        self.remove(&req);
        self.held.push(req);
        self.held.sort_by_key(|l| (l.start, l.client, l.owner));
    }

    /// Removes `req`'s owner's locks on `req`'s range. Returns whether anything changed.
    pub(crate) fn remove(&mut self, req: &FileLock) -> bool {
        let before = self.held.clone();
        let mut out = Vec::with_capacity(self.held.len() + 1);
        for h in self.held.drain(..) {
            if h.same_owner(req) { out.extend(h.minus(req)) } else { out.push(h) }
        }
        out.sort_by_key(|l| (l.start, l.client, l.owner));
        self.held = out;
        self.held != before
    }

    /// Drops every lock of a client (session closed or evicted). Returns whether any went.
    pub(crate) fn remove_client(&mut self, client: ClientId) -> bool {
        let n = self.held.len();
        self.held.retain(|l| l.client != client);
        self.held.len() != n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lk(kind: FileLockKind, start: u64, length: u64, client: u64, owner: u64) -> FileLock {
        FileLock { kind, start, length, client, owner, pid: 0 }
    }

    #[test]
    fn shared_locks_coexist_exclusive_conflicts() {
        let mut t = FileLockTable::default();
        t.add(lk(FileLockKind::Shared, 0, 10, 1, 1));
        assert_eq!(t.conflict(&lk(FileLockKind::Shared, 5, 10, 2, 1)), None);
        assert!(t.conflict(&lk(FileLockKind::Exclusive, 5, 10, 2, 1)).is_some());
        assert_eq!(t.conflict(&lk(FileLockKind::Exclusive, 10, 5, 2, 1)), None, "byte 10 is free");
        assert_eq!(t.conflict(&lk(FileLockKind::Exclusive, 0, 0, 1, 1)), None, "own lock");
        assert!(t.conflict(&lk(FileLockKind::Exclusive, 0, 0, 1, 2)).is_some(), "other owner");
    }

    #[test]
    fn to_eof_ranges_overlap_everything_after_start() {
        let a = lk(FileLockKind::Exclusive, 100, 0, 1, 1);
        assert!(a.overlaps(&lk(FileLockKind::Shared, u64::MAX - 1, 1, 2, 1)));
        assert!(!a.overlaps(&lk(FileLockKind::Shared, 0, 100, 2, 1)));
        assert!(a.overlaps(&lk(FileLockKind::Shared, 0, 101, 2, 1)));
    }

    #[test]
    fn unlock_splits_and_relock_replaces() {
        let mut t = FileLockTable::default();
        t.add(lk(FileLockKind::Exclusive, 0, 100, 1, 1));
        assert!(t.remove(&lk(FileLockKind::Unlock, 10, 10, 1, 1)));
        let ranges: Vec<(u64, u64)> = t.held().iter().map(|l| (l.start, l.length)).collect();
        assert_eq!(ranges, vec![(0, 10), (20, 80)]);
        // Downgrading the middle of a range to shared replaces only those bytes.
        t.add(lk(FileLockKind::Shared, 0, 5, 1, 1));
        let kinds: Vec<(u64, FileLockKind)> = t.held().iter().map(|l| (l.start, l.kind)).collect();
        assert_eq!(
            kinds,
            vec![(0, FileLockKind::Shared), (5, FileLockKind::Exclusive), (20, FileLockKind::Exclusive)]
        );
        assert!(!t.remove(&lk(FileLockKind::Unlock, 0, 0, 2, 1)), "other owner removes nothing");
        assert!(t.remove(&lk(FileLockKind::Unlock, 0, 0, 1, 1)));
        assert!(t.is_empty());
    }

    #[test]
    fn unlock_to_eof_keeps_the_head_and_eof_lock_keeps_its_tail() {
        let mut t = FileLockTable::default();
        t.add(lk(FileLockKind::Exclusive, 10, 0, 1, 1));
        t.remove(&lk(FileLockKind::Unlock, 20, 5, 1, 1));
        let ranges: Vec<(u64, u64)> = t.held().iter().map(|l| (l.start, l.length)).collect();
        assert_eq!(ranges, vec![(10, 10), (25, 0)]);
        t.remove(&lk(FileLockKind::Unlock, 15, 0, 1, 1));
        let ranges: Vec<(u64, u64)> = t.held().iter().map(|l| (l.start, l.length)).collect();
        assert_eq!(ranges, vec![(10, 5)]);
    }

    #[test]
    fn remove_client_drops_only_that_client() {
        let mut t = FileLockTable::default();
        t.add(lk(FileLockKind::Shared, 0, 0, 1, 1));
        t.add(lk(FileLockKind::Shared, 0, 0, 2, 1));
        assert!(t.remove_client(1));
        assert_eq!(t.held().len(), 1);
        assert!(!t.remove_client(1));
    }
}
