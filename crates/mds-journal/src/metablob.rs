//! EMetaBlob: the "what changed" payload of EUpdate, EPeerUpdate, EOpen and ESubtreeMap
//! (mds §6.1).
//!
//! A metablob is a list of directory contexts ("dir lumps"). Each lump names one dirfrag, carries
//! the dirfrag's fnode and state flags, and lists the dentries the mutation touched in three
//! shapes: *full* (a primary link with the whole inode, its xattrs and symlink target), *remote*
//! (a hard link: the target inode number and type) and *null* (the name no longer exists).
//! Lumps keep their insertion order: `add_dir_context` journals ancestors from the subtree root
//! downwards, and replay must see parents before children to rebuild the path.
//!
//! Beside the lumps it records the request bookkeeping replay needs: client request ids (for the
//! completed-request table), allocated and preallocated inode numbers (for the inode table and
//! the session), truncations started and finished, destroyed inodes and a renamed directory.

use std::collections::{BTreeMap, BTreeSet};

use rados_store::EntityName;
use rados_store::encoding::{DecodeResult, Decoder, Encoder};
use serde::Serialize;

use crate::serde_util;
use crate::types::{
    DirFrag, Fnode, InoIntervals, Inode, InodeNo, MetaReqId, decode_inos, decode_intervals, encode_inos,
    encode_intervals,
};

/// State flags of a full dentry (`fullbit::STATE_*`).
pub mod full_state {
    /// The inode is dirty (must be written back before the segment expires).
    pub const DIRTY: u32 = 1 << 0;
    /// The inode's backtrace (`parent` xattr) must be rewritten.
    pub const DIRTY_PARENT: u32 = 1 << 1;
    /// The inode's data pool changed; old-pool backtraces must be updated too.
    pub const DIRTY_POOL: u32 = 1 << 2;
    /// The inode was created by this mutation.
    pub const NEW: u32 = 1 << 3;
}

/// State flags of a dir lump (`dirlump::STATE_*`).
pub mod dir_state {
    /// The dirfrag holds every dentry of its range in cache.
    pub const COMPLETE: u32 = 1 << 1;
    /// The dirfrag is dirty.
    pub const DIRTY: u32 = 1 << 2;
    /// The dirfrag was created by this mutation (no object yet).
    pub const NEW: u32 = 1 << 3;
    /// The dirfrag is being imported from another rank.
    pub const IMPORTING: u32 = 1 << 4;
    /// The directory's fragment tree is dirty.
    pub const DIRTY_DFT: u32 = 1 << 5;
}

/// A primary dentry with its full inode ("full bit").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FullDentry {
    /// Dentry name.
    pub name: String,
    /// First snap id the dentry is valid for.
    pub first: u64,
    /// Last snap id ([`crate::CEPH_NOSNAP`] for the head).
    pub last: u64,
    /// Dentry version.
    pub version: u64,
    /// The inode.
    pub inode: Inode,
    /// Extended attributes (values are raw bytes).
    #[serde(serialize_with = "serde_util::hex_map")]
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Symlink target (empty unless the inode is a symlink).
    pub symlink: String,
    /// Leaf fragments of a directory's fragment tree (empty: unfragmented).
    pub dirfragtree: Vec<u32>,
    /// [`full_state`] flags.
    pub state: u32,
}

impl FullDentry {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).u64(self.first).u64(self.last).u64(self.version);
            self.inode.encode(e);
            e.map(&self.xattrs, |e, k| e.string(k).pipe(), |e, v| e.bytes(v).pipe());
            e.string(&self.symlink);
            e.seq(&self.dirfragtree, |e, f| e.u32(*f).pipe());
            e.u32(self.state);
        });
    }

    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(FullDentry {
                name: d.string()?,
                first: d.u64()?,
                last: d.u64()?,
                version: d.u64()?,
                inode: Inode::decode(d)?,
                xattrs: d.map(Decoder::string, Decoder::bytes)?,
                symlink: d.string()?,
                dirfragtree: d.seq(Decoder::u32)?,
                state: d.u32()?,
            })
        })
    }

    /// Whether a flag of [`full_state`] is set.
    pub fn has_state(&self, flag: u32) -> bool {
        self.state & flag != 0
    }
}

/// A remote dentry (a hard link to an inode whose primary dentry is elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RemoteDentry {
    /// Dentry name.
    pub name: String,
    /// First snap id.
    pub first: u64,
    /// Last snap id.
    pub last: u64,
    /// Dentry version.
    pub version: u64,
    /// The target inode.
    pub ino: InodeNo,
    /// The target's type (`DT_REG`, `DT_DIR`...), so readdir needs no lookup.
    pub d_type: u8,
    /// Whether the dentry is dirty.
    pub dirty: bool,
}

impl RemoteDentry {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).u64(self.first).u64(self.last).u64(self.version);
            self.ino.encode(e);
            e.u8(self.d_type).bool(self.dirty);
        });
    }

    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(RemoteDentry {
                name: d.string()?,
                first: d.u64()?,
                last: d.u64()?,
                version: d.u64()?,
                ino: InodeNo::decode(d)?,
                d_type: d.u8()?,
                dirty: d.bool()?,
            })
        })
    }
}

/// A null dentry: the name is gone (unlink, rename source).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NullDentry {
    /// Dentry name.
    pub name: String,
    /// First snap id.
    pub first: u64,
    /// Last snap id.
    pub last: u64,
    /// Dentry version.
    pub version: u64,
    /// Whether the dentry is dirty.
    pub dirty: bool,
}

impl NullDentry {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.string(&self.name).u64(self.first).u64(self.last).u64(self.version).bool(self.dirty);
        });
    }

    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(NullDentry {
                name: d.string()?,
                first: d.u64()?,
                last: d.u64()?,
                version: d.u64()?,
                dirty: d.bool()?,
            })
        })
    }
}

/// One directory context: a dirfrag's fnode, flags and the dentries touched in it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DirLump {
    /// The dirfrag's fnode after the mutation.
    pub fnode: Fnode,
    /// [`dir_state`] flags.
    pub state: u32,
    /// Primary dentries.
    pub full: Vec<FullDentry>,
    /// Remote dentries.
    pub remote: Vec<RemoteDentry>,
    /// Null dentries.
    pub null: Vec<NullDentry>,
}

impl DirLump {
    /// Whether a flag of [`dir_state`] is set.
    pub fn has_state(&self, flag: u32) -> bool {
        self.state & flag != 0
    }

    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            self.fnode.encode(e);
            e.u32(self.state);
            e.seq(&self.full, |e, f| f.encode(e));
            e.seq(&self.remote, |e, r| r.encode(e));
            e.seq(&self.null, |e, n| n.encode(e));
        });
    }

    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(DirLump {
                fnode: Fnode::decode(d)?,
                state: d.u32()?,
                full: d.seq(FullDentry::decode)?,
                remote: d.seq(RemoteDentry::decode)?,
                null: d.seq(NullDentry::decode)?,
            })
        })
    }
}

/// The metadata changes of one mutation (EMetaBlob).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MetaBlob {
    /// Directory contexts in journaling order (ancestors first).
    pub dirs: Vec<(DirFrag, DirLump)>,
    /// Base inodes journaled on their own (root, mdsdir), as full dentries with empty names.
    pub roots: Vec<FullDentry>,
    /// Client requests completed by this event, with the client's oldest outstanding tid
    /// (lets replay trim the completed-request table).
    pub client_reqs: Vec<(MetaReqId, u64)>,
    /// An inode number taken from the inode table (`InodeNo::NONE` if none).
    pub allocated_ino: InodeNo,
    /// An inode number taken from the client session's preallocated range.
    pub used_preallocated_ino: InodeNo,
    /// Inode numbers newly preallocated to the client session.
    pub preallocated_inos: InoIntervals,
    /// The client whose session the inode numbers belong to.
    #[serde(serialize_with = "serde_util::opt_entity_name")]
    pub client_name: Option<EntityName>,
    /// Inode table version after the allocation.
    pub inotable_version: u64,
    /// Session map version after the allocation.
    pub sessionmap_version: u64,
    /// Inodes whose truncation starts here (replay restarts them).
    pub truncate_start: BTreeSet<InodeNo>,
    /// Truncations finished here: inode → the segment offset that started them.
    pub truncate_finish: BTreeMap<InodeNo, u64>,
    /// Inodes destroyed (purged) by this event.
    pub destroyed_inodes: Vec<InodeNo>,
    /// A directory renamed by this event (its subtree map may change), or `InodeNo::NONE`.
    pub renamed_dirino: InodeNo,
}

impl MetaBlob {
    /// The lump for `dirfrag`, added at the end (with `fnode` and `state`) if not yet present.
    /// An existing lump keeps its position and gets the newer fnode and the union of the flags,
    /// as repeated `add_dir` calls do in the MDS.
    pub fn add_dir(&mut self, dirfrag: DirFrag, fnode: Fnode, state: u32) -> &mut DirLump {
        let idx = match self.dirs.iter().position(|(df, _)| *df == dirfrag) {
            Some(i) => {
                let lump = &mut self.dirs[i].1;
                lump.fnode = fnode;
                lump.state |= state;
                i
            }
            None => {
                self.dirs.push((dirfrag, DirLump { fnode, state, ..DirLump::default() }));
                self.dirs.len() - 1
            }
        };
        &mut self.dirs[idx].1
    }

    /// The lump for `dirfrag`, if the blob has one.
    pub fn dir(&self, dirfrag: DirFrag) -> Option<&DirLump> {
        self.dirs.iter().find(|(df, _)| *df == dirfrag).map(|(_, l)| l)
    }

    /// Every inode number the blob carries a full inode for (roots and primary dentries).
    pub fn inodes(&self) -> impl Iterator<Item = &Inode> {
        self.roots
            .iter()
            .map(|r| &r.inode)
            .chain(self.dirs.iter().flat_map(|(_, l)| l.full.iter().map(|f| &f.inode)))
    }

    /// True when the blob records nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == MetaBlob::default()
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.seq(&self.dirs, |e, (df, lump)| {
                df.encode(e);
                lump.encode(e);
            });
            e.seq(&self.roots, |e, r| r.encode(e));
            e.seq(&self.client_reqs, |e, (r, oldest)| {
                r.encode(e);
                e.u64(*oldest);
            });
            self.allocated_ino.encode(e);
            self.used_preallocated_ino.encode(e);
            encode_intervals(e, &self.preallocated_inos);
            e.optional(self.client_name.as_ref(), |e, n| e.entity_name(*n).pipe());
            e.u64(self.inotable_version).u64(self.sessionmap_version);
            e.set(&self.truncate_start, |e, i| i.encode(e));
            e.map(&self.truncate_finish, |e, i| i.encode(e), |e, v| e.u64(*v).pipe());
            encode_inos(e, &self.destroyed_inodes);
            self.renamed_dirino.encode(e);
        });
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(MetaBlob {
                dirs: d.seq(|d| Ok((DirFrag::decode(d)?, DirLump::decode(d)?)))?,
                roots: d.seq(FullDentry::decode)?,
                client_reqs: d.seq(|d| Ok((MetaReqId::decode(d)?, d.u64()?)))?,
                allocated_ino: InodeNo::decode(d)?,
                used_preallocated_ino: InodeNo::decode(d)?,
                preallocated_inos: decode_intervals(d)?,
                client_name: d.optional(Decoder::entity_name)?,
                inotable_version: d.u64()?,
                sessionmap_version: d.u64()?,
                truncate_start: d.set(InodeNo::decode)?,
                truncate_finish: d.map(InodeNo::decode, Decoder::u64)?,
                destroyed_inodes: decode_inos(d)?,
                renamed_dirino: InodeNo::decode(d)?,
            })
        })
    }
}

/// Lets encoder calls that return `&mut Encoder` sit in closures that must return `()`.
trait Pipe {
    fn pipe(&mut self);
}

impl Pipe for Encoder {
    fn pipe(&mut self) {}
}
