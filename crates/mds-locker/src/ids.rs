//! Identifiers: inode numbers, arena handles, lock identities, request ids.
//!
//! The cache is an arena: objects refer to each other through small copyable handles instead
//! of `Rc<RefCell<…>>`, so the Locker can hold `&mut` to the whole cache and still follow links,
//! and so every reference can be dumped and compared in tests. Handles are only meaningful for
//! the `Cache` that issued them.

use core::fmt;

use lock_sm::LockType;

pub use lock_sm::ClientId;

/// A metadata server rank. Single-rank for now, but gather sets are sets of ranks so that the
/// replica protocol (§4.12) can be added without changing the lock state.
pub type Rank = u32;

/// An inode number as clients and the journal see it (Ceph's `inodeno_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

/// Ranks the system inode numbers leave room for (Ceph's `MAX_MDS`).
const MAX_MDS: u64 = 0x100;
/// First `~mdsN` (Ceph's `MDS_INO_MDSDIR_OFFSET`).
const MDSDIR_OFFSET: u64 = 0x100;
/// First stray directory (Ceph's `MDS_INO_STRAY_OFFSET`).
const STRAY_OFFSET: u64 = 0x600;
/// Stray directories per rank (Ceph's `NUM_STRAY`).
const NUM_STRAY: u64 = 10;

impl Ino {
    /// The filesystem root (`CEPH_INO_ROOT`).
    pub const ROOT: Ino = Ino(1);

    /// The rank's private directory `~mdsN` (§6.4: `0x100 + rank`).
    pub const fn mdsdir(rank: Rank) -> Ino {
        Ino(MDSDIR_OFFSET + rank as u64)
    }

    /// Stray directory `i` of a rank (§6.4: `0x600 + rank·10 + i`).
    pub const fn stray(rank: Rank, i: u32) -> Ino {
        Ino(STRAY_OFFSET + rank as u64 * NUM_STRAY + i as u64)
    }

    /// Whether this is some rank's stray directory (Ceph's `MDS_INO_IS_STRAY`: ten per rank,
    /// for up to 256 ranks). A rank knows its own strays by handle; another rank's it may
    /// hold as a replica, and only the number says what it is.
    pub const fn is_stray(self) -> bool {
        self.0 >= STRAY_OFFSET && self.0 < STRAY_OFFSET + MAX_MDS * NUM_STRAY
    }

    /// Whether this is some rank's `~mdsN` (Ceph's `MDS_INO_IS_MDSDIR`).
    pub const fn is_mdsdir(self) -> bool {
        self.0 >= MDSDIR_OFFSET && self.0 < MDSDIR_OFFSET + MAX_MDS
    }

    /// Inodes the MDS creates itself (root, `~mdsN`, strays) rather than clients.
    pub const fn is_system(self) -> bool {
        self.0 < 0x1000
    }
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Handle of an inode in the cache arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(pub(crate) u32);

/// Handle of a dentry in the cache arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DentryId(pub(crate) u32);

/// Handle of a directory fragment in the cache arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirfragId(pub(crate) u32);

impl InodeId {
    /// Arena slot, for dumps and tests.
    pub const fn index(self) -> u32 {
        self.0
    }
}

impl DentryId {
    /// Arena slot, for dumps and tests.
    pub const fn index(self) -> u32 {
        self.0
    }
}

impl DirfragId {
    /// Arena slot, for dumps and tests.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// The object a lock lives on (§2.4). Dirfrags carry no locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjRef {
    /// An inode's lock.
    Inode(InodeId),
    /// A dentry's lock.
    Dentry(DentryId),
}

/// One lock: its parent object and its type. A lock's type fixes which object kind it is on;
/// a `LockId` pairing a dentry with an inode lock type (or the reverse) names nothing and the
/// cache rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId {
    /// The parent object.
    pub obj: ObjRef,
    /// Which of its locks.
    pub ty: LockType,
}

impl LockId {
    /// A lock on an inode.
    pub const fn inode(id: InodeId, ty: LockType) -> LockId {
        LockId { obj: ObjRef::Inode(id), ty }
    }

    /// A lock on a dentry.
    pub const fn dentry(id: DentryId, ty: LockType) -> LockId {
        LockId { obj: ObjRef::Dentry(id), ty }
    }

    /// The inode this lock is on, if it is an inode lock.
    pub const fn inode_id(self) -> Option<InodeId> {
        match self.obj {
            ObjRef::Inode(i) => Some(i),
            ObjRef::Dentry(_) => None,
        }
    }
}

/// A request id. Ceph's `metareqid_t` is (client entity, tid); the driver hands us ids that are
/// unique per Locker, and internal mutations (cap updates, writebehinds) get ids from the
/// Locker's own counter above `ReqId::INTERNAL_BASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub u64);

impl ReqId {
    /// Ids at or above this value are allocated by the Locker for its own mutations.
    pub const INTERNAL_BASE: u64 = 1 << 62;
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req:{}", self.0)
    }
}

/// The journal's sequence number for a submitted entry. Entries become safe in order, so
/// "safe up to N" is the whole acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JournalSeq(pub u64);

/// An object's name that means the same thing on every rank.
///
/// Arena handles (`InodeId`, `DentryId`) are private to one rank's cache, so messages between
/// ranks name objects the way Ceph's do: an inode by its number, a dentry by its directory's
/// inode number and its name, a dirfrag by its directory and frag (§2.2: the MLock payload
/// carries "inode number+snap for inode locks; dirfrag + dentry name + snapid for DN").
/// Snapshots are out of scope, so there is no snap id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKey {
    /// An inode.
    Inode(Ino),
    /// A dentry: directory inode number (frag 0) and name.
    Dentry {
        /// The directory.
        dir: Ino,
        /// The entry name.
        name: String,
    },
    /// A directory fragment.
    Dirfrag {
        /// The directory.
        dir: Ino,
        /// The frag value (0: the whole directory).
        frag: u32,
    },
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjKey::Inode(ino) => write!(f, "{ino}"),
            ObjKey::Dentry { dir, name } => write!(f, "{dir}/{name}"),
            ObjKey::Dirfrag { dir, frag } => write!(f, "{dir}.{frag:x}"),
        }
    }
}

/// A lock named across ranks: its object's `ObjKey` and its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockKey {
    /// The parent object (an inode or a dentry; dirfrags carry no locks).
    pub obj: ObjKey,
    /// Which of its locks.
    pub ty: LockType,
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {})", self.ty.name(), self.obj)
    }
}
