//! The metadata cache: inodes, dentries and dirfrags in arenas (mds spec §2.4, §6.2).
//!
//! Every inode carries the full inode lock set and every dentry the DN and DVERSION locks, in
//! `lock-sm`'s value order so a lock's slot is its position in `ObjectKind::lock_types()`.
//! Metadata changes are *projected* first (a queue of pending versions per object, one entry per
//! mutation) and applied oldest-first when the journal says the change is safe; readers choose
//! between the committed and the projected view depending on what they hold (§6.2).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lock_sm::{LockType, ObjectKind};

use crate::capability::Capability;
use crate::error::LockerError;
use crate::flock::{FileLockRule, FileLockTable};
use crate::ids::{ClientId, DentryId, DirfragId, Ino, InodeId, LockId, ObjRef, Rank, ReqId};
use crate::lock::Lock;

/// File type bits of `mode` (POSIX).
pub const S_IFMT: u32 = 0o170000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Named pipe (one of the types MKNOD creates).
pub const S_IFIFO: u32 = 0o010000;

/// How many stray directories each rank keeps (§6.4).
pub const NUM_STRAY: u32 = 10;

/// Bound on walks up the tree (a loop would be a bug; the bound keeps it from hanging).
pub(crate) const MAX_DEPTH: u32 = 4096;

/// First inode number handed to client-created inodes.
pub const FIRST_CLIENT_INO: u64 = 1 << 40;

/// Size of each rank's inode number range (Ceph's InoTable hands rank `r` the range starting
/// at `(r + 1) << 40`), so ranks never allocate the same number.
pub const INO_RANGE: u64 = 1 << 40;

/// The rank that is auth for the root directory.
pub const ROOT_RANK: Rank = 0;

/// First inode number rank `rank` allocates.
pub const fn ino_range_start(rank: Rank) -> u64 {
    FIRST_CLIENT_INO + rank as u64 * INO_RANGE
}

/// Directory statistics protected by IFILE (§4.13 "dirstat"/"fragstat").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirStat {
    /// Regular files and other non-directories.
    pub nfiles: u64,
    /// Subdirectories.
    pub nsubdirs: u64,
    /// Last time an entry was added or removed.
    pub mtime_ms: u64,
    /// Bumped on every entry change.
    pub change_attr: u64,
}

/// Recursive statistics protected by INEST (§4.13 "rstat").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NestStat {
    /// Bytes in all files below.
    pub rbytes: u64,
    /// Files below.
    pub rfiles: u64,
    /// Directories below.
    pub rsubdirs: u64,
    /// Newest ctime below.
    pub rctime_ms: u64,
}

/// The journaled content of an inode (Ceph's `inode_t` plus xattrs and symlink target).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InodeData {
    /// Projected/committed version (§6.2 `pre_dirty`).
    pub version: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner (IAUTH).
    pub uid: u32,
    /// Group (IAUTH).
    pub gid: u32,
    /// File size (IFILE).
    pub size: u64,
    /// Modification time (IFILE).
    pub mtime_ms: u64,
    /// Change time (any inode lock, §2.3 ctime rule).
    pub ctime_ms: u64,
    /// Link count (ILINK).
    pub nlink: u32,
    /// Extended attributes (IXATTR).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Bumped on every xattr change.
    pub xattr_version: u64,
    /// Directories: entry counts (IFILE).
    pub dirstat: DirStat,
    /// Directories: recursive stats (INEST).
    pub rstat: NestStat,
    /// Symlink target.
    pub symlink: Option<String>,
}

impl InodeData {
    /// Whether the mode says directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// One not-yet-journaled version of an inode, owned by the mutation that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectedInode {
    /// The projecting mutation.
    pub by: ReqId,
    /// The new content.
    pub data: InodeData,
}

/// An inode with its locks, caps and projections.
#[derive(Debug, Clone)]
pub struct Inode {
    pub(crate) ino: Ino,
    pub(crate) is_auth: bool,
    pub(crate) auth: Rank,
    pub(crate) replicas: BTreeSet<Rank>,
    pub(crate) data: InodeData,
    pub(crate) projected: VecDeque<ProjectedInode>,
    pub(crate) locks: Vec<Lock>,
    pub(crate) parent: Option<DentryId>,
    pub(crate) projected_parent: Option<DentryId>,
    pub(crate) dirfrags: BTreeMap<u32, DirfragId>,
    pub(crate) caps: BTreeMap<ClientId, Capability>,
    pub(crate) loner: Option<ClientId>,
    pub(crate) want_loner: Option<ClientId>,
    pub(crate) auth_pins: u32,
    pub(crate) flocks: FileLockTable,
    pub(crate) fcntl_locks: FileLockTable,
}

impl Inode {
    /// Inode number.
    pub fn ino(&self) -> Ino {
        self.ino
    }

    /// Whether this rank is auth for the inode (the auth of its primary dentry's dirfrag).
    pub fn is_auth(&self) -> bool {
        self.is_auth
    }

    /// The auth rank.
    pub fn auth(&self) -> Rank {
        self.auth
    }

    /// Ranks holding a replica (meaningful on the auth only).
    pub fn replicas(&self) -> &BTreeSet<Rank> {
        &self.replicas
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.data.is_dir()
    }

    /// Base inodes (root, `~mdsN`) have no parent dentry.
    pub fn is_base(&self) -> bool {
        self.parent.is_none()
    }

    /// Committed content.
    pub fn data(&self) -> &InodeData {
        &self.data
    }

    /// Newest view: the latest projection, else the committed content.
    pub fn projected_data(&self) -> &InodeData {
        self.projected.back().map(|p| &p.data).unwrap_or(&self.data)
    }

    /// Pending projections, oldest first.
    pub fn projections(&self) -> impl Iterator<Item = &ProjectedInode> {
        self.projected.iter()
    }

    /// The lock of type `ty`, or `None` for a dentry lock type.
    pub fn lock(&self, ty: LockType) -> Option<&Lock> {
        slot(ObjectKind::Inode, ty).map(|i| &self.locks[i])
    }

    /// All locks in value order.
    pub fn locks(&self) -> &[Lock] {
        &self.locks
    }

    /// The primary dentry linking this inode, if any.
    pub fn parent(&self) -> Option<DentryId> {
        self.parent
    }

    /// The primary dentry once pending projections are applied (Ceph's
    /// `get_projected_parent_dn`): where an unlink or rename in flight is moving the inode.
    pub fn projected_parent(&self) -> Option<DentryId> {
        self.projected_parent
    }

    /// The advisory locks of one family (in memory only, §5.2 SETFILELOCK).
    pub fn file_locks(&self, rule: FileLockRule) -> &FileLockTable {
        match rule {
            FileLockRule::Flock => &self.flocks,
            FileLockRule::Fcntl => &self.fcntl_locks,
        }
    }

    pub(crate) fn file_locks_mut(&mut self, rule: FileLockRule) -> &mut FileLockTable {
        match rule {
            FileLockRule::Flock => &mut self.flocks,
            FileLockRule::Fcntl => &mut self.fcntl_locks,
        }
    }

    /// Dirfrags by frag value.
    pub fn dirfrags(&self) -> &BTreeMap<u32, DirfragId> {
        &self.dirfrags
    }

    /// Client caps.
    pub fn caps(&self) -> &BTreeMap<ClientId, Capability> {
        &self.caps
    }

    /// The current loner (`loner_cap`).
    pub fn loner(&self) -> Option<ClientId> {
        self.loner
    }

    /// The loner `calc_ideal_loner` last wanted.
    pub fn want_loner(&self) -> Option<ClientId> {
        self.want_loner
    }

    /// The loner transitions should aim for: set only while the current loner is the wanted one.
    pub fn target_loner(&self) -> Option<ClientId> {
        if self.loner == self.want_loner { self.loner } else { None }
    }

    /// Auth pins held on this inode (by requests and by transitional locks).
    pub fn auth_pins(&self) -> u32 {
        self.auth_pins
    }
}

/// What a dentry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// Negative dentry.
    Null,
    /// The inode's primary link.
    Primary(InodeId),
    /// A hard link to an inode whose primary link is elsewhere.
    Remote {
        /// Target inode number.
        ino: Ino,
        /// Target type bits (`mode & S_IFMT`).
        d_type: u32,
    },
}

/// One not-yet-journaled linkage of a dentry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectedLinkage {
    /// The projecting mutation.
    pub by: ReqId,
    /// The new linkage.
    pub linkage: Linkage,
    /// The dentry version it will have once applied.
    pub version: u64,
}

/// A dentry with its DN and DVERSION locks.
#[derive(Debug, Clone)]
pub struct Dentry {
    pub(crate) name: String,
    pub(crate) dir: DirfragId,
    pub(crate) linkage: Linkage,
    pub(crate) projected: VecDeque<ProjectedLinkage>,
    pub(crate) version: u64,
    pub(crate) projected_version: u64,
    pub(crate) locks: Vec<Lock>,
    pub(crate) auth_pins: u32,
    pub(crate) auth: Rank,
    pub(crate) replicas: BTreeSet<Rank>,
    /// Replica only: the primary inode a discover reply named before sending the inode.
    pub(crate) pending_primary: Option<Ino>,
}

impl Dentry {
    /// Whether this rank is auth for the dentry (the auth of its dirfrag).
    pub fn is_auth(&self) -> bool {
        self.locks.first().is_some_and(|l| l.is_auth)
    }

    /// The auth rank.
    pub fn auth(&self) -> Rank {
        self.auth
    }

    /// Ranks holding a replica (meaningful on the auth only).
    pub fn replicas(&self) -> &BTreeSet<Rank> {
        &self.replicas
    }

    /// Name within its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Containing dirfrag.
    pub fn dir(&self) -> DirfragId {
        self.dir
    }

    /// Committed linkage.
    pub fn linkage(&self) -> Linkage {
        self.linkage
    }

    /// Newest linkage (projected if any).
    pub fn projected_linkage(&self) -> Linkage {
        self.projected.back().map(|p| p.linkage).unwrap_or(self.linkage)
    }

    /// Pending linkage projections, oldest first.
    pub fn projections(&self) -> impl Iterator<Item = &ProjectedLinkage> {
        self.projected.iter()
    }

    /// Committed version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Newest assigned version.
    pub fn projected_version(&self) -> u64 {
        self.projected_version
    }

    /// The lock of type `ty`, or `None` for an inode lock type.
    pub fn lock(&self, ty: LockType) -> Option<&Lock> {
        slot(ObjectKind::Dentry, ty).map(|i| &self.locks[i])
    }

    /// All locks in value order.
    pub fn locks(&self) -> &[Lock] {
        &self.locks
    }

    /// Auth pins held.
    pub fn auth_pins(&self) -> u32 {
        self.auth_pins
    }
}

/// A dirfrag's journaled header (Ceph's `fnode_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fnode {
    /// Dirfrag version (also the source of dentry versions, §6.2).
    pub version: u64,
    /// This frag's entry counts.
    pub fragstat: DirStat,
    /// The part of `fragstat` already folded into the inode.
    pub accounted_fragstat: DirStat,
    /// This frag's recursive stats.
    pub rstat: NestStat,
    /// The part of `rstat` already folded into the inode.
    pub accounted_rstat: NestStat,
}

/// A directory fragment: a slice of a directory's entries. One frag per directory for now;
/// dirfrags are keyed by frag value so splitting can come later.
#[derive(Debug, Clone)]
pub struct Dirfrag {
    pub(crate) inode: InodeId,
    pub(crate) frag: u32,
    pub(crate) dentries: BTreeMap<String, DentryId>,
    pub(crate) fnode: Fnode,
    pub(crate) projected: VecDeque<(ReqId, Fnode)>,
    pub(crate) projected_version: u64,
    pub(crate) complete: bool,
    pub(crate) auth: Rank,
    pub(crate) replicas: BTreeSet<Rank>,
}

impl Dirfrag {
    /// The auth rank: the rank of the subtree this frag belongs to.
    pub fn auth(&self) -> Rank {
        self.auth
    }

    /// Ranks holding a replica (meaningful on the auth only).
    pub fn replicas(&self) -> &BTreeSet<Rank> {
        &self.replicas
    }

    /// The directory inode.
    pub fn inode(&self) -> InodeId {
        self.inode
    }

    /// Frag value.
    pub fn frag(&self) -> u32 {
        self.frag
    }

    /// Entries by name.
    pub fn dentries(&self) -> &BTreeMap<String, DentryId> {
        &self.dentries
    }

    /// Committed fnode.
    pub fn fnode(&self) -> &Fnode {
        &self.fnode
    }

    /// Newest fnode.
    pub fn projected_fnode(&self) -> &Fnode {
        self.projected.back().map(|p| &p.1).unwrap_or(&self.fnode)
    }

    /// Whether every entry of the frag is in cache (so a miss is a real ENOENT).
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

fn slot(kind: ObjectKind, ty: LockType) -> Option<usize> {
    kind.lock_types().iter().position(|t| *t == ty)
}

fn new_locks(kind: ObjectKind, is_auth: bool) -> Vec<Lock> {
    kind.lock_types().iter().map(|t| Lock::new(*t, is_auth)).collect()
}

/// The arenas plus the well-known directories of one rank.
#[derive(Debug, Clone)]
pub struct Cache {
    rank: Rank,
    inodes: Vec<Option<Inode>>,
    dentries: Vec<Option<Dentry>>,
    dirfrags: Vec<Option<Dirfrag>>,
    by_ino: BTreeMap<Ino, InodeId>,
    root: InodeId,
    mdsdir: InodeId,
    strays: Vec<InodeId>,
    next_ino: u64,
    /// Numbers kept for replayed requests (`reserve_ino`).
    reserved_inos: BTreeSet<u64>,
}

impl Cache {
    /// A cache holding the root, the rank's `~mdsN` and its stray directories, all auth.
    pub fn new(rank: Rank) -> Cache {
        let mut c = Cache {
            rank,
            inodes: Vec::new(),
            dentries: Vec::new(),
            dirfrags: Vec::new(),
            by_ino: BTreeMap::new(),
            root: InodeId(0),
            mdsdir: InodeId(0),
            strays: Vec::new(),
            next_ino: ino_range_start(rank),
            reserved_inos: BTreeSet::new(),
        };
        c.root = c.new_dir_inode(Ino::ROOT);
        c.mdsdir = c.new_dir_inode(Ino::mdsdir(rank));
        for i in 0..NUM_STRAY {
            let stray = c.new_dir_inode(Ino::stray(rank, i));
            let frag = c.dirfrag_of(c.mdsdir);
            let dn = c.add_null_dentry(frag, &format!("stray{i}"));
            c.link_primary_now(dn, stray);
            c.strays.push(stray);
        }
        let mdsdir = c.mdsdir;
        c.recompute_dir_stats(mdsdir);
        if rank != ROOT_RANK {
            // Rank 0 is auth for the root (§6.4); every other rank starts with a replica of
            // it, as Ceph's ranks do once they have opened the root.
            let root = c.root;
            c.make_replica(ObjRef::Inode(root), ROOT_RANK);
            if let Some(f) = c.inode(root).and_then(|n| n.dirfrags.get(&0)).copied() {
                c.set_dirfrag_auth(f, ROOT_RANK);
            }
        }
        c
    }

    fn new_dir_inode(&mut self, ino: Ino) -> InodeId {
        let data = InodeData { mode: S_IFDIR | 0o755, nlink: 1, version: 1, ..InodeData::default() };
        let id = self.insert_inode(ino, data);
        self.open_dirfrag(id, true);
        id
    }

    /// The rank.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// The root directory.
    pub fn root(&self) -> InodeId {
        self.root
    }

    /// `~mdsN`.
    pub fn mdsdir(&self) -> InodeId {
        self.mdsdir
    }

    /// Stray directories, stray0 first.
    pub fn strays(&self) -> &[InodeId] {
        &self.strays
    }

    /// Allocates a fresh inode number (the inode table, §5.1 `alloc_ino`).
    pub fn alloc_ino(&mut self) -> Ino {
        while self.reserved_inos.contains(&self.next_ino) {
            self.next_ino += 1;
        }
        let ino = Ino(self.next_ino);
        self.next_ino += 1;
        ino
    }

    /// Keeps `ino` from `alloc_ino` until `take_reserved_ino` hands it out: a client will
    /// replay a request that was given this number in an unsafe reply before the rank
    /// failed (Ceph's clients carry it in the replayed request; the number came from the
    /// session's preallocated range, which no other request draws from). Numbers outside
    /// this rank's range, or already in cache, are ignored.
    pub fn reserve_ino(&mut self, ino: Ino) {
        let start = ino_range_start(self.rank);
        if ino.0 >= start && ino.0 < start + INO_RANGE && !self.by_ino.contains_key(&ino) {
            self.reserved_inos.insert(ino.0);
        }
    }

    /// Hands out a number `reserve_ino` kept, if it is still reserved and unused.
    pub fn take_reserved_ino(&mut self, ino: Ino) -> Option<Ino> {
        (self.reserved_inos.remove(&ino.0) && !self.by_ino.contains_key(&ino)).then_some(ino)
    }

    /// Adds an inode with the given content and a full, fresh lock set.
    pub fn insert_inode(&mut self, ino: Ino, data: InodeData) -> InodeId {
        let id = InodeId(self.inodes.len() as u32);
        self.inodes.push(Some(Inode {
            ino,
            is_auth: true,
            auth: self.rank,
            replicas: BTreeSet::new(),
            data,
            projected: VecDeque::new(),
            locks: new_locks(ObjectKind::Inode, true),
            parent: None,
            projected_parent: None,
            dirfrags: BTreeMap::new(),
            caps: BTreeMap::new(),
            loner: None,
            want_loner: None,
            auth_pins: 0,
            flocks: FileLockTable::default(),
            fcntl_locks: FileLockTable::default(),
        }));
        self.by_ino.insert(ino, id);
        // Replay re-inserts inodes this rank allocated: never hand their numbers out again.
        // Inodes from another rank's range (replicas) leave this rank's counter alone.
        let start = ino_range_start(self.rank);
        if ino.0 >= self.next_ino && ino.0 < start + INO_RANGE {
            self.next_ino = ino.0 + 1;
        }
        id
    }

    /// Opens (or returns) the directory's single dirfrag (frag 0 = the whole directory).
    pub fn open_dirfrag(&mut self, dir: InodeId, complete: bool) -> DirfragId {
        if let Some(f) = self.inode(dir).and_then(|i| i.dirfrags.get(&0)) {
            return *f;
        }
        let id = DirfragId(self.dirfrags.len() as u32);
        self.dirfrags.push(Some(Dirfrag {
            inode: dir,
            frag: 0,
            dentries: BTreeMap::new(),
            fnode: Fnode { version: 1, ..Fnode::default() },
            projected: VecDeque::new(),
            projected_version: 1,
            complete,
            auth: self.rank,
            replicas: BTreeSet::new(),
        }));
        if let Some(i) = self.inode_mut(dir) {
            i.dirfrags.insert(0, id);
        }
        id
    }

    /// The directory's dirfrag, opening it if needed. Callers ensure `dir` is a directory.
    pub fn dirfrag_of(&mut self, dir: InodeId) -> DirfragId {
        self.open_dirfrag(dir, true)
    }

    /// Adds a negative dentry `name` to `frag`, or returns the existing one.
    pub fn add_null_dentry(&mut self, frag: DirfragId, name: &str) -> DentryId {
        if let Some(d) = self.dirfrag(frag).and_then(|f| f.dentries.get(name)) {
            return *d;
        }
        let id = DentryId(self.dentries.len() as u32);
        self.dentries.push(Some(Dentry {
            name: name.to_string(),
            dir: frag,
            linkage: Linkage::Null,
            projected: VecDeque::new(),
            version: 0,
            projected_version: 0,
            locks: new_locks(ObjectKind::Dentry, true),
            auth_pins: 0,
            auth: self.rank,
            replicas: BTreeSet::new(),
            pending_primary: None,
        }));
        if let Some(f) = self.dirfrag_mut(frag) {
            f.dentries.insert(name.to_string(), id);
        }
        id
    }

    /// Links `inode` as the committed primary of `dn` without journaling: for building the
    /// initial cache and for replay.
    pub fn link_primary_now(&mut self, dn: DentryId, inode: InodeId) {
        if let Some(d) = self.dentry_mut(dn) {
            d.linkage = Linkage::Primary(inode);
        }
        if let Some(i) = self.inode_mut(inode) {
            i.parent = Some(dn);
            i.projected_parent = Some(dn);
        }
    }

    /// Makes `dn` a committed remote link to `ino` without journaling (test setup, replay).
    /// The target's link count is the caller's business.
    pub fn link_remote_now(&mut self, dn: DentryId, ino: Ino, d_type: u32) {
        if let Some(d) = self.dentry_mut(dn) {
            d.linkage = Linkage::Remote { ino, d_type };
        }
    }

    /// Rebuilds a directory's committed entry statistics from its committed entries (one
    /// level, as this rank folds them): every entry in the fragstat, primary links also in the
    /// rstat. For building a namespace without journaling (test setup, replay).
    pub fn recompute_dir_stats(&mut self, dir: InodeId) {
        let frags: Vec<DirfragId> =
            self.inode(dir).map(|n| n.dirfrags.values().copied().collect()).unwrap_or_default();
        let (mut dirstat, mut rstat) = (DirStat::default(), NestStat::default());
        for frag in frags {
            let (mut fs, mut rs) = (DirStat::default(), NestStat::default());
            let dns: Vec<DentryId> =
                self.dirfrag(frag).map(|f| f.dentries.values().copied().collect()).unwrap_or_default();
            for dn in dns {
                let Some(linkage) = self.dentry(dn).map(|d| d.linkage) else { continue };
                let (is_dir, primary) = match linkage {
                    Linkage::Null => continue,
                    Linkage::Primary(i) => (self.inode(i).is_some_and(|n| n.is_dir()), true),
                    Linkage::Remote { d_type, .. } => (d_type == S_IFDIR, false),
                };
                match (is_dir, primary) {
                    (true, true) => {
                        fs.nsubdirs += 1;
                        rs.rsubdirs += 1;
                    }
                    (false, true) => {
                        fs.nfiles += 1;
                        rs.rfiles += 1;
                    }
                    (true, false) => fs.nsubdirs += 1,
                    (false, false) => fs.nfiles += 1,
                }
            }
            if let Some(f) = self.dirfrag_mut(frag) {
                f.fnode.fragstat = fs;
                f.fnode.accounted_fragstat = fs;
                f.fnode.rstat = rs;
                f.fnode.accounted_rstat = rs;
            }
            dirstat.nfiles += fs.nfiles;
            dirstat.nsubdirs += fs.nsubdirs;
            rstat.rfiles += rs.rfiles;
            rstat.rsubdirs += rs.rsubdirs;
        }
        if let Some(n) = self.inode_mut(dir) {
            n.data.dirstat.nfiles = dirstat.nfiles;
            n.data.dirstat.nsubdirs = dirstat.nsubdirs;
            n.data.rstat.rfiles = rstat.rfiles;
            n.data.rstat.rsubdirs = rstat.rsubdirs;
        }
    }

    /// Creates `name` in directory `dir` with `data`, committed (no journal): test setup and
    /// replay. Directories get a complete, empty dirfrag. Parent stats are not touched.
    pub fn create_committed(&mut self, dir: InodeId, name: &str, data: InodeData) -> (DentryId, InodeId) {
        let frag = self.dirfrag_of(dir);
        let dn = self.add_null_dentry(frag, name);
        let ino = self.alloc_ino();
        let is_dir = data.is_dir();
        let id = self.insert_inode(ino, data);
        if is_dir {
            self.open_dirfrag(id, true);
        }
        self.link_primary_now(dn, id);
        (dn, id)
    }

    /// The inode, if the handle is live.
    pub fn inode(&self, id: InodeId) -> Option<&Inode> {
        self.inodes.get(id.0 as usize).and_then(|i| i.as_ref())
    }

    pub(crate) fn inode_mut(&mut self, id: InodeId) -> Option<&mut Inode> {
        self.inodes.get_mut(id.0 as usize).and_then(|i| i.as_mut())
    }

    /// The dentry, if the handle is live.
    pub fn dentry(&self, id: DentryId) -> Option<&Dentry> {
        self.dentries.get(id.0 as usize).and_then(|d| d.as_ref())
    }

    pub(crate) fn dentry_mut(&mut self, id: DentryId) -> Option<&mut Dentry> {
        self.dentries.get_mut(id.0 as usize).and_then(|d| d.as_mut())
    }

    /// The dirfrag, if the handle is live.
    pub fn dirfrag(&self, id: DirfragId) -> Option<&Dirfrag> {
        self.dirfrags.get(id.0 as usize).and_then(|d| d.as_ref())
    }

    pub(crate) fn dirfrag_mut(&mut self, id: DirfragId) -> Option<&mut Dirfrag> {
        self.dirfrags.get_mut(id.0 as usize).and_then(|d| d.as_mut())
    }

    /// Inode by number.
    pub fn lookup_ino(&self, ino: Ino) -> Option<InodeId> {
        self.by_ino.get(&ino).copied()
    }

    /// Every live inode handle, in arena order.
    pub fn inode_ids(&self) -> impl Iterator<Item = InodeId> + '_ {
        self.inodes.iter().enumerate().filter(|(_, i)| i.is_some()).map(|(n, _)| InodeId(n as u32))
    }

    /// Every live dentry handle, in arena order.
    pub fn dentry_ids(&self) -> impl Iterator<Item = DentryId> + '_ {
        self.dentries.iter().enumerate().filter(|(_, d)| d.is_some()).map(|(n, _)| DentryId(n as u32))
    }

    /// The dentry `name` in directory `dir`, if cached.
    pub fn lookup_dentry(&self, dir: InodeId, name: &str) -> Option<DentryId> {
        let inode = self.inode(dir)?;
        inode.dirfrags.values().find_map(|f| self.dirfrag(*f).and_then(|f| f.dentries.get(name).copied()))
    }

    /// The directory containing the inode's primary dentry.
    pub fn parent_dir(&self, id: InodeId) -> Option<InodeId> {
        let dn = self.inode(id)?.parent?;
        self.dentry_dir_inode(dn)
    }

    /// The directory inode a dentry lives in.
    pub fn dentry_dir_inode(&self, dn: DentryId) -> Option<InodeId> {
        let frag = self.dentry(dn)?.dir;
        self.dirfrag(frag).map(|f| f.inode)
    }

    /// The directory the inode's projected primary dentry lives in (where it is, counting
    /// unlinks and renames in flight).
    pub fn projected_parent_dir(&self, id: InodeId) -> Option<InodeId> {
        let dn = self.inode(id)?.projected_parent?;
        self.dentry_dir_inode(dn)
    }

    /// Whether `dir` is one of this rank's stray directories.
    pub fn is_stray(&self, dir: InodeId) -> bool {
        self.strays.contains(&dir)
    }

    /// The base inode a projected walk from `id` ends at, with the number of steps taken:
    /// Ceph's (`dir_root`, `dir_depth`) pair that `compare_paths` orders by (§4.3 rules 1–2).
    pub fn projected_root_and_depth(&self, id: InodeId) -> (InodeId, u32) {
        let mut d = 0;
        let mut cur = id;
        while let Some(p) = self.projected_parent_dir(cur) {
            d += 1;
            cur = p;
            if d > MAX_DEPTH {
                break;
            }
        }
        (cur, d)
    }

    /// Number of (projected) ancestors up to the root of its tree (root or `~mdsN`), for §4.3
    /// ordering.
    pub fn depth(&self, id: InodeId) -> u32 {
        self.projected_root_and_depth(id).1
    }

    /// Whether `anc` is `id` or one of its projected ancestors (Ceph's
    /// `is_projected_ancestor_of`, used to refuse moving a directory into its own subtree).
    pub fn is_projected_ancestor(&self, anc: InodeId, id: InodeId) -> bool {
        let mut cur = Some(id);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == anc {
                return true;
            }
            steps += 1;
            if steps > MAX_DEPTH {
                return false;
            }
            cur = self.projected_parent_dir(c);
        }
        false
    }

    /// Whether any entry of the directory has a non-null newest linkage: the unlocked
    /// emptiness check Ceph runs before locking (`_dir_is_nonempty_unlocked`).
    pub fn dir_has_projected_entries(&self, dir: InodeId) -> bool {
        let Some(n) = self.inode(dir) else { return false };
        n.dirfrags.values().filter_map(|f| self.dirfrag(*f)).any(|f| {
            f.dentries
                .values()
                .any(|d| self.dentry(*d).is_some_and(|d| d.projected_linkage() != Linkage::Null))
        })
    }

    /// The locked emptiness check (`_dir_is_nonempty`): the projected fragstat of every
    /// dirfrag in cache, then the inode's projected dirstat. Only meaningful while the caller
    /// can read the directory's filelock: the dirstat is then the fold of every frag's
    /// stats, including frags this rank has no copy of. A directory whose inode is only
    /// replicated here (a renamed directory stays auth on its old rank) usually has no
    /// dirfrag here at all, so the frags alone would call it empty whatever it holds
    /// (simulator, 3 ranks, cross-subtree, seed 94: an rmdir removed a non-empty directory).
    /// Ceph compares the frags' sum with the dirstat and calls any difference non-empty;
    /// with nothing in the frags that is "the dirstat is not zero".
    pub fn dir_projected_fragstat_nonzero(&self, dir: InodeId) -> bool {
        let Some(n) = self.inode(dir) else { return false };
        let frags = n.dirfrags.values().filter_map(|f| self.dirfrag(*f)).any(|f| {
            let st = f.projected_fnode().fragstat;
            st.nfiles + st.nsubdirs > 0
        });
        let ds = n.projected_data().dirstat;
        frags || ds.nfiles + ds.nsubdirs > 0
    }

    /// Drops a negative dentry nobody uses (no locks, waiters, leases, pins, projections):
    /// Ceph trims such dentries from its LRU. Returns whether it was removed.
    pub fn trim_null_dentry(&mut self, dn: DentryId) -> bool {
        let Some(d) = self.dentry(dn) else { return false };
        // A replicated null dentry stays: another rank holds a replica whose DN lock this
        // rank must keep driving (§4.12).
        let idle = d.linkage == Linkage::Null
            && d.replicas.is_empty()
            && d.projected.is_empty()
            && d.auth_pins == 0
            && d.locks.iter().all(|l| {
                !l.is_used()
                    && l.is_stable()
                    && l.waiters().next().is_none()
                    && l.state() == Lock::initial_state(l.ty)
            });
        if !idle {
            return false;
        }
        let (frag, name) = (d.dir, d.name.clone());
        if let Some(f) = self.dirfrag_mut(frag) {
            f.dentries.remove(&name);
        }
        self.dentries[dn.0 as usize] = None;
        true
    }

    /// A lock by id; `Err` if the object is gone or the type belongs to the other object kind.
    pub fn lock(&self, id: LockId) -> Result<&Lock, LockerError> {
        match id.obj {
            ObjRef::Inode(i) => self.inode(i).and_then(|n| n.lock(id.ty)),
            ObjRef::Dentry(d) => self.dentry(d).and_then(|n| n.lock(id.ty)),
        }
        .ok_or(LockerError::UnknownLock(id))
    }

    pub(crate) fn lock_mut(&mut self, id: LockId) -> Result<&mut Lock, LockerError> {
        let kind = id.ty.object_kind();
        let s = slot(kind, id.ty);
        let lock = match (id.obj, s) {
            (ObjRef::Inode(i), Some(s)) if kind == ObjectKind::Inode => {
                self.inode_mut(i).and_then(|n| n.locks.get_mut(s))
            }
            (ObjRef::Dentry(d), Some(s)) if kind == ObjectKind::Dentry => {
                self.dentry_mut(d).and_then(|n| n.locks.get_mut(s))
            }
            _ => None,
        };
        lock.ok_or(LockerError::UnknownLock(id))
    }

    /// Every lock id of an object, in value order.
    pub fn lock_ids(&self, obj: ObjRef) -> Vec<LockId> {
        let kind = match obj {
            ObjRef::Inode(_) => ObjectKind::Inode,
            ObjRef::Dentry(_) => ObjectKind::Dentry,
        };
        kind.lock_types().iter().map(|t| LockId { obj, ty: *t }).collect()
    }

    /// A human-readable name for dumps: `inode 0x1` or `dentry 0x1/name`.
    pub fn object_name(&self, obj: ObjRef) -> String {
        match obj {
            ObjRef::Inode(i) => match self.inode(i) {
                Some(n) => format!("inode {}", n.ino),
                None => format!("inode #{}", i.0),
            },
            ObjRef::Dentry(d) => {
                let dir = self.dentry_dir_inode(d).and_then(|i| self.inode(i)).map(|i| i.ino);
                match (self.dentry(d), dir) {
                    (Some(dn), Some(dir)) => format!("dentry {dir}/{}", dn.name),
                    _ => format!("dentry #{}", d.0),
                }
            }
        }
    }

    pub(crate) fn add_auth_pin(&mut self, obj: ObjRef, delta: i32) {
        let pins = match obj {
            ObjRef::Inode(i) => self.inode_mut(i).map(|n| &mut n.auth_pins),
            ObjRef::Dentry(d) => self.dentry_mut(d).map(|n| &mut n.auth_pins),
        };
        if let Some(p) = pins {
            *p = p.saturating_add_signed(delta);
        }
    }

    // ---- projection (§6.2) --------------------------------------------------------------

    /// `project_inode`: the mutation's projected copy, created from the newest view on first
    /// use and returned again on later calls by the same mutation (§8 fact 69).
    pub fn project_inode(&mut self, id: InodeId, by: ReqId) -> Option<&mut InodeData> {
        let inode = self.inode_mut(id)?;
        if inode.projected.back().is_none_or(|p| p.by != by) {
            let data = inode.projected_data().clone();
            inode.projected.push_back(ProjectedInode { by, data });
        }
        inode.projected.back_mut().map(|p| &mut p.data)
    }

    /// `pre_dirty` for an inode: the next version, taken from the parent dirfrag for
    /// non-base inodes (so the dentry and inode versions agree) and from the inode itself for
    /// base inodes. The projected copy must exist.
    pub fn pre_dirty_inode(&mut self, id: InodeId) -> Option<u64> {
        let dn = self.inode(id)?.projected_parent;
        self.pre_dirty_inode_via(id, dn)
    }

    /// `pre_dirty` with the primary dentry the inode will have once this mutation applies
    /// (an unlink's stray dentry, a rename's destination), so both get the same version.
    pub fn pre_dirty_inode_via(&mut self, id: InodeId, dn: Option<DentryId>) -> Option<u64> {
        let cur = self.inode(id)?.projected_data().version;
        let version = match dn {
            Some(dn) => self.pre_dirty_dentry(dn, cur)?,
            None => cur + 1,
        };
        let inode = self.inode_mut(id)?;
        inode.projected.back_mut()?.data.version = version;
        Some(version)
    }

    /// The dentry's next version, at least `min` + 1 and above the dirfrag's newest.
    pub fn pre_dirty_dentry(&mut self, dn: DentryId, min: u64) -> Option<u64> {
        let frag = self.dentry(dn)?.dir;
        let f = self.dirfrag_mut(frag)?;
        f.projected_version = f.projected_version.max(min) + 1;
        let v = f.projected_version;
        self.dentry_mut(dn)?.projected_version = v;
        Some(v)
    }

    /// `pop_and_dirty_projected_inode`: installs the *oldest* projection (§8 fact 70).
    pub fn pop_projected_inode(&mut self, id: InodeId) -> Option<ReqId> {
        let inode = self.inode_mut(id)?;
        let p = inode.projected.pop_front()?;
        inode.data = p.data;
        Some(p.by)
    }

    /// Projects a new linkage for a dentry, at the dentry's newest version (call
    /// `pre_dirty_dentry` or `pre_dirty_inode` first).
    pub fn push_projected_linkage(&mut self, dn: DentryId, by: ReqId, linkage: Linkage) -> Option<()> {
        let d = self.dentry_mut(dn)?;
        let version = d.projected_version;
        d.projected.push_back(ProjectedLinkage { by, linkage, version });
        if let Linkage::Primary(i) = linkage
            && let Some(n) = self.inode_mut(i)
        {
            n.projected_parent = Some(dn);
        }
        Some(())
    }

    /// Installs the oldest projected linkage, fixing the inode's parent pointer.
    pub fn pop_projected_linkage(&mut self, dn: DentryId) -> Option<ReqId> {
        let d = self.dentry_mut(dn)?;
        let ProjectedLinkage { by, linkage, version } = d.projected.pop_front()?;
        let old = d.linkage;
        d.linkage = linkage;
        d.version = d.version.max(version);
        if let Linkage::Primary(i) = old
            && let Some(n) = self.inode_mut(i)
            && n.parent == Some(dn)
        {
            n.parent = None;
        }
        if let Linkage::Primary(i) = linkage
            && let Some(n) = self.inode_mut(i)
        {
            n.parent = Some(dn);
        }
        Some(by)
    }

    /// Projects the dirfrag's fnode for `by` (once per mutation) and bumps its version.
    pub fn project_fnode(&mut self, frag: DirfragId, by: ReqId) -> Option<&mut Fnode> {
        let f = self.dirfrag_mut(frag)?;
        if f.projected.back().is_none_or(|p| p.0 != by) {
            let mut fnode = *f.projected_fnode();
            f.projected_version += 1;
            fnode.version = f.projected_version;
            f.projected.push_back((by, fnode));
        }
        f.projected.back_mut().map(|p| &mut p.1)
    }

    /// Installs the oldest projected fnode.
    pub fn pop_projected_fnode(&mut self, frag: DirfragId) -> Option<ReqId> {
        let f = self.dirfrag_mut(frag)?;
        let (by, fnode) = f.projected.pop_front()?;
        f.fnode = fnode;
        Some(by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_cache_has_root_mdsdir_and_strays() {
        let c = Cache::new(0);
        let root = c.inode(c.root()).unwrap();
        assert_eq!(root.ino(), Ino::ROOT);
        assert!(root.is_dir() && root.is_base());
        assert_eq!(root.locks().len(), 10);
        assert_eq!(c.inode(c.mdsdir()).unwrap().ino(), Ino(0x100));
        assert_eq!(c.strays().len(), 10);
        let s3 = c.lookup_dentry(c.mdsdir(), "stray3").unwrap();
        assert_eq!(c.dentry(s3).unwrap().linkage(), Linkage::Primary(c.strays()[3]));
        assert_eq!(c.inode(c.strays()[3]).unwrap().ino(), Ino(0x603));
        assert!(c.is_stray(c.strays()[3]));
        assert_eq!(c.depth(c.strays()[0]), 1);
        assert_eq!(c.object_name(ObjRef::Dentry(s3)), "dentry 0x100/stray3");
    }

    #[test]
    fn lock_ids_reject_wrong_object_kind() {
        let c = Cache::new(0);
        let bad = LockId::inode(c.root(), LockType::Dn);
        assert!(c.lock(bad).is_err());
        assert!(c.lock(LockId::inode(c.root(), LockType::IFile)).is_ok());
    }

    #[test]
    fn fact_69_project_twice_same_node_and_fact_70_fifo_pop() {
        let mut c = Cache::new(0);
        let root = c.root();
        c.project_inode(root, ReqId(1)).unwrap().uid = 5;
        c.project_inode(root, ReqId(1)).unwrap().gid = 6;
        assert_eq!(c.inode(root).unwrap().projections().count(), 1);
        c.project_inode(root, ReqId(2)).unwrap().uid = 7;
        let p = c.inode(root).unwrap().projected_data();
        assert_eq!((p.uid, p.gid), (7, 6));
        assert_eq!(c.inode(root).unwrap().data().uid, 0);
        assert_eq!(c.pop_projected_inode(root), Some(ReqId(1)));
        assert_eq!(c.inode(root).unwrap().data().uid, 5);
        assert_eq!(c.pop_projected_inode(root), Some(ReqId(2)));
        assert_eq!(c.inode(root).unwrap().data().uid, 7);
    }

    #[test]
    fn pre_dirty_versions_come_from_the_dirfrag() {
        let mut c = Cache::new(0);
        let root = c.root();
        let data = InodeData { mode: S_IFREG | 0o644, nlink: 1, ..InodeData::default() };
        let (dn, f) = c.create_committed(root, "f", data);
        c.project_inode(f, ReqId(1));
        let v1 = c.pre_dirty_inode(f).unwrap();
        c.project_inode(f, ReqId(2));
        let v2 = c.pre_dirty_inode(f).unwrap();
        assert!(v2 > v1);
        assert_eq!(c.dentry(dn).unwrap().projected_version(), v2);
        // Base inodes version themselves.
        c.project_inode(root, ReqId(3));
        assert_eq!(c.pre_dirty_inode(root), Some(2));
    }
}
