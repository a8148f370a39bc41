//! Self-managed snapshots: the values a client passes and gets back.
//!
//! RBD images use *self-managed* snapshots: the client allocates a snap id from the pool, keeps
//! its own list of live snaps (in the image header, rbd §6.1 `snap_seq`), and sends that list as
//! a *snap context* with every write. The OSD clones an object the first time it is written
//! after a snapshot newer than the object's last write (copy-on-write), and serves reads "as of"
//! a snap id from those clones. This module holds the client-visible values; the copy-on-write
//! rules themselves live in the backend.

use crate::error::{Error, Result};

/// A snapshot id. Allocated per pool, strictly increasing, never 0.
pub type SnapId = u64;

/// The snap context a client sends with every write (Ceph's `SnapContext`).
///
/// `seq` is the newest snap id the client knows; `snaps` lists the live snaps, newest first.
/// An object last written under an older `seq` is cloned before the write lands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SnapContext {
    /// The newest snap id the writer knows about.
    pub seq: SnapId,
    /// Live snap ids, in strictly descending order, none above `seq`.
    pub snaps: Vec<SnapId>,
}

impl SnapContext {
    /// A checked snap context; -EINVAL unless `snaps` is strictly descending and no snap is
    /// above `seq` (what the OSD checks before accepting a write).
    pub fn new(seq: SnapId, snaps: Vec<SnapId>) -> Result<Self> {
        let ctx = SnapContext { seq, snaps };
        if ctx.is_valid() {
            Ok(ctx)
        } else {
            Err(Error::InvalidArgument(format!("invalid snap context seq={} snaps={:?}", ctx.seq, ctx.snaps)))
        }
    }

    /// The empty context: no snapshots, nothing is ever cloned.
    pub fn empty() -> Self {
        SnapContext::default()
    }

    /// Ceph's `SnapContext::is_valid`: snaps strictly descending, none above `seq`, none zero.
    pub fn is_valid(&self) -> bool {
        if self.snaps.first().is_some_and(|&s| s > self.seq) {
            return false;
        }
        if self.snaps.contains(&0) {
            return false;
        }
        self.snaps.windows(2).all(|w| w[0] > w[1])
    }
}

/// One clone of an object, as `rados listsnaps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneInfo {
    /// The clone's id: the writer's `seq` when the clone was made.
    pub id: SnapId,
    /// The snaps this clone serves, ascending.
    pub snaps: Vec<SnapId>,
    /// The object's size in the clone.
    pub size: u64,
}

/// The snapshot state of one object (Ceph's `SnapSet`, reduced to what callers need).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapSetInfo {
    /// The newest snap context `seq` the object has been written under.
    pub seq: SnapId,
    /// Clones, ascending by id.
    pub clones: Vec<CloneInfo>,
    /// Whether the current ("head") object exists.
    pub head_exists: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_context_validation() {
        assert!(SnapContext::new(0, vec![]).is_ok());
        assert!(SnapContext::new(5, vec![5, 3, 1]).is_ok());
        assert!(SnapContext::new(5, vec![3, 5]).is_err(), "must be descending");
        assert!(SnapContext::new(2, vec![3]).is_err(), "no snap above seq");
        assert!(SnapContext::new(3, vec![3, 3]).is_err(), "strictly descending");
        assert!(SnapContext::new(3, vec![3, 0]).is_err(), "0 is not a snap id");
    }
}
