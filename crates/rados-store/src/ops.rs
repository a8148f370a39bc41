//! Compound operations: one vector of sub-operations applied to one object as a unit.
//!
//! An OSD executes a client's op vector atomically: every sub-op sees the effects of the ones
//! before it, and if any fails, none takes effect. librbd relies on this (its header refresh
//! reads size, features and the lock state in one read op, rbd §6.1; cls methods and xattr
//! updates are combined with asserts). [`WriteOp`] and [`ReadOp`] are that vector; every single-op
//! call on [`crate::IoCtx`] is a one-element vector, so there is one code path to get right.
//!
//! The sub-op enums are public so that a second backend (librados) can translate them one to
//! one into `ObjectWriteOperation` / `ObjectReadOperation` calls.

use std::collections::{BTreeMap, BTreeSet};

use crate::snap::SnapId;
use crate::types::UTime;

/// What `stat` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStat {
    /// Size of the object's data in bytes.
    pub size: u64,
    /// Time of the last modification, by the cluster's clock.
    pub mtime: UTime,
}

/// One mutation inside a [`WriteOp`], with OSD semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOpKind {
    /// Create the object; with `exclusive`, fail with -EEXIST if it exists.
    Create {
        /// Fail if the object exists.
        exclusive: bool,
    },
    /// Write `data` at `offset`, creating the object and zero-filling any gap.
    Write {
        /// Byte offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Replace the object's data (xattrs and omap are kept), creating it if needed.
    WriteFull {
        /// The new contents.
        data: Vec<u8>,
    },
    /// Append `data`, creating the object if needed.
    Append {
        /// The bytes.
        data: Vec<u8>,
    },
    /// Set the size, cutting or zero-extending. A no-op on a missing object (as on an OSD).
    Truncate {
        /// New size in bytes.
        size: u64,
    },
    /// Zero a byte range inside the object. Never extends the object; a no-op on a missing one.
    Zero {
        /// Byte offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Delete the object (-ENOENT if missing). Clones needed by live snapshots stay.
    Remove,
    /// Set an xattr, creating the object if needed.
    SetXattr {
        /// Attribute name.
        name: String,
        /// Attribute value.
        value: Vec<u8>,
    },
    /// Remove an xattr (-ENOENT if the object is missing; a missing attribute is not an error).
    RmXattr {
        /// Attribute name.
        name: String,
    },
    /// Set omap entries, creating the object if needed.
    OmapSet {
        /// Keys and values to set.
        entries: BTreeMap<String, Vec<u8>>,
    },
    /// Remove omap keys (-ENOENT if the object is missing; missing keys are fine).
    OmapRmKeys {
        /// Keys to remove.
        keys: BTreeSet<String>,
    },
    /// Remove every omap entry (-ENOENT if the object is missing).
    OmapClear,
    /// Fail the whole vector with -ENOENT unless the object exists.
    AssertExists,
    /// Restore the object to its state as of a snapshot (removing it if it did not exist then).
    Rollback {
        /// The snapshot to restore.
        snap: SnapId,
    },
    /// Run an object-class method; its output is discarded (use [`crate::IoCtx::exec`] for it).
    Exec {
        /// Class name, e.g. `lock`.
        class: String,
        /// Method name, e.g. `lock`.
        method: String,
        /// Encoded input.
        input: Vec<u8>,
    },
}

/// A compound write: sub-ops applied in order, all or nothing, to one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOp {
    ops: Vec<WriteOpKind>,
}

impl WriteOp {
    /// An empty vector (applying it changes nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a raw sub-op.
    pub fn push(mut self, op: WriteOpKind) -> Self {
        self.ops.push(op);
        self
    }

    /// See [`WriteOpKind::Create`].
    pub fn create(self, exclusive: bool) -> Self {
        self.push(WriteOpKind::Create { exclusive })
    }

    /// See [`WriteOpKind::Write`].
    pub fn write(self, offset: u64, data: impl Into<Vec<u8>>) -> Self {
        self.push(WriteOpKind::Write { offset, data: data.into() })
    }

    /// See [`WriteOpKind::WriteFull`].
    pub fn write_full(self, data: impl Into<Vec<u8>>) -> Self {
        self.push(WriteOpKind::WriteFull { data: data.into() })
    }

    /// See [`WriteOpKind::Append`].
    pub fn append(self, data: impl Into<Vec<u8>>) -> Self {
        self.push(WriteOpKind::Append { data: data.into() })
    }

    /// See [`WriteOpKind::Truncate`].
    pub fn truncate(self, size: u64) -> Self {
        self.push(WriteOpKind::Truncate { size })
    }

    /// See [`WriteOpKind::Zero`].
    pub fn zero(self, offset: u64, len: u64) -> Self {
        self.push(WriteOpKind::Zero { offset, len })
    }

    /// See [`WriteOpKind::Remove`].
    pub fn remove(self) -> Self {
        self.push(WriteOpKind::Remove)
    }

    /// See [`WriteOpKind::SetXattr`].
    pub fn setxattr(self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.push(WriteOpKind::SetXattr { name: name.into(), value: value.into() })
    }

    /// See [`WriteOpKind::RmXattr`].
    pub fn rmxattr(self, name: impl Into<String>) -> Self {
        self.push(WriteOpKind::RmXattr { name: name.into() })
    }

    /// See [`WriteOpKind::OmapSet`].
    pub fn omap_set<K, V>(self, entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<Vec<u8>>,
    {
        let entries = entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.push(WriteOpKind::OmapSet { entries })
    }

    /// See [`WriteOpKind::OmapRmKeys`].
    pub fn omap_rm_keys<K: Into<String>>(self, keys: impl IntoIterator<Item = K>) -> Self {
        self.push(WriteOpKind::OmapRmKeys { keys: keys.into_iter().map(Into::into).collect() })
    }

    /// See [`WriteOpKind::OmapClear`].
    pub fn omap_clear(self) -> Self {
        self.push(WriteOpKind::OmapClear)
    }

    /// See [`WriteOpKind::AssertExists`].
    pub fn assert_exists(self) -> Self {
        self.push(WriteOpKind::AssertExists)
    }

    /// See [`WriteOpKind::Rollback`].
    pub fn rollback(self, snap: SnapId) -> Self {
        self.push(WriteOpKind::Rollback { snap })
    }

    /// See [`WriteOpKind::Exec`].
    pub fn exec(
        self,
        class: impl Into<String>,
        method: impl Into<String>,
        input: impl Into<Vec<u8>>,
    ) -> Self {
        self.push(WriteOpKind::Exec { class: class.into(), method: method.into(), input: input.into() })
    }

    /// The sub-ops, in the order they will be applied.
    pub fn ops(&self) -> &[WriteOpKind] {
        &self.ops
    }

    /// Number of sub-ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if there are no sub-ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One read inside a [`ReadOp`]. Every kind fails the vector with -ENOENT on a missing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOpKind {
    /// Size and mtime.
    Stat,
    /// `len` bytes from `offset` (fewer at the end of the object; `len` 0 reads to the end, as
    /// an OSD does).
    Read {
        /// Byte offset.
        offset: u64,
        /// Length in bytes; 0 means "to the end".
        len: u64,
    },
    /// One xattr (-ENODATA if absent).
    GetXattr {
        /// Attribute name.
        name: String,
    },
    /// All xattrs.
    GetXattrs,
    /// Up to `max` omap entries with keys after `start_after` that start with `filter_prefix`.
    OmapGetVals {
        /// Exclusive lower bound ("" = from the start).
        start_after: String,
        /// Only keys with this prefix ("" = all).
        filter_prefix: String,
        /// Most entries to return.
        max: u64,
    },
    /// Up to `max` omap keys after `start_after`.
    OmapGetKeys {
        /// Exclusive lower bound ("" = from the start).
        start_after: String,
        /// Most keys to return.
        max: u64,
    },
    /// The values of the given keys that exist.
    OmapGetValsByKeys {
        /// Keys to look up.
        keys: BTreeSet<String>,
    },
    /// Fail the whole vector with -ENOENT unless the object exists.
    AssertExists,
    /// Run a read-only object-class method and return its output.
    Exec {
        /// Class name.
        class: String,
        /// Method name.
        method: String,
        /// Encoded input.
        input: Vec<u8>,
    },
}

/// The result of one [`ReadOpKind`], in the same position as its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// From [`ReadOpKind::Stat`].
    Stat(ObjectStat),
    /// From [`ReadOpKind::Read`].
    Data(Vec<u8>),
    /// From [`ReadOpKind::GetXattr`].
    Xattr(Vec<u8>),
    /// From [`ReadOpKind::GetXattrs`].
    Xattrs(BTreeMap<String, Vec<u8>>),
    /// From [`ReadOpKind::OmapGetVals`] and [`ReadOpKind::OmapGetValsByKeys`] (`more` is always
    /// false for the latter).
    OmapVals {
        /// The entries.
        entries: BTreeMap<String, Vec<u8>>,
        /// True if more entries follow the last one returned.
        more: bool,
    },
    /// From [`ReadOpKind::OmapGetKeys`].
    OmapKeys {
        /// The keys, ascending.
        keys: Vec<String>,
        /// True if more keys follow the last one returned.
        more: bool,
    },
    /// From [`ReadOpKind::AssertExists`].
    Exists,
    /// From [`ReadOpKind::Exec`].
    Exec(Vec<u8>),
}

/// A compound read: sub-reads evaluated against one consistent state of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOp {
    ops: Vec<ReadOpKind>,
}

impl ReadOp {
    /// An empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a raw sub-read.
    pub fn push(mut self, op: ReadOpKind) -> Self {
        self.ops.push(op);
        self
    }

    /// See [`ReadOpKind::Stat`].
    pub fn stat(self) -> Self {
        self.push(ReadOpKind::Stat)
    }

    /// See [`ReadOpKind::Read`].
    pub fn read(self, offset: u64, len: u64) -> Self {
        self.push(ReadOpKind::Read { offset, len })
    }

    /// See [`ReadOpKind::GetXattr`].
    pub fn getxattr(self, name: impl Into<String>) -> Self {
        self.push(ReadOpKind::GetXattr { name: name.into() })
    }

    /// See [`ReadOpKind::GetXattrs`].
    pub fn getxattrs(self) -> Self {
        self.push(ReadOpKind::GetXattrs)
    }

    /// See [`ReadOpKind::OmapGetVals`].
    pub fn omap_get_vals(
        self,
        start_after: impl Into<String>,
        filter_prefix: impl Into<String>,
        max: u64,
    ) -> Self {
        self.push(ReadOpKind::OmapGetVals {
            start_after: start_after.into(),
            filter_prefix: filter_prefix.into(),
            max,
        })
    }

    /// See [`ReadOpKind::OmapGetKeys`].
    pub fn omap_get_keys(self, start_after: impl Into<String>, max: u64) -> Self {
        self.push(ReadOpKind::OmapGetKeys { start_after: start_after.into(), max })
    }

    /// See [`ReadOpKind::OmapGetValsByKeys`].
    pub fn omap_get_vals_by_keys<K: Into<String>>(self, keys: impl IntoIterator<Item = K>) -> Self {
        self.push(ReadOpKind::OmapGetValsByKeys { keys: keys.into_iter().map(Into::into).collect() })
    }

    /// See [`ReadOpKind::AssertExists`].
    pub fn assert_exists(self) -> Self {
        self.push(ReadOpKind::AssertExists)
    }

    /// See [`ReadOpKind::Exec`].
    pub fn exec(
        self,
        class: impl Into<String>,
        method: impl Into<String>,
        input: impl Into<Vec<u8>>,
    ) -> Self {
        self.push(ReadOpKind::Exec { class: class.into(), method: method.into(), input: input.into() })
    }

    /// The sub-reads, in order.
    pub fn ops(&self) -> &[ReadOpKind] {
        &self.ops
    }

    /// Number of sub-reads.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if there are no sub-reads.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
