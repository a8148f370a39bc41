//! The metadata values events carry: inode numbers, dirfrags, request ids, the inode and
//! fnode records with their directory statistics.
//!
//! These are the journal's view of the cache objects (mds §6.1): exactly the fields replay needs
//! to rebuild an inode or a dirfrag and the locker needs to check what a mutation changed
//! (mode/uid/gid under IAUTH, size and times under IFILE, nlink under ILINK, dirstat/rstat under
//! IFILE/INEST scatter-gather, xattrs under IXATTR). Each record has its own versioned envelope
//! so fields can be appended later without breaking old journals.

use std::fmt;

use rados_store::encoding::{DecodeResult, Decoder, Encoder};
use rados_store::{EntityName, UTime};
use serde::Serialize;

use crate::serde_util;

/// Ceph's `CEPH_NOSNAP`: the snap id of the live ("head") version of a dentry.
pub const CEPH_NOSNAP: u64 = 0xffff_ffff_ffff_fffe;

/// An inode number (`inodeno_t`). Printed in hex, as Ceph prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct InodeNo(pub u64);

impl InodeNo {
    /// The root directory.
    pub const ROOT: InodeNo = InodeNo(1);
    /// "No inode" (an EMetaBlob that allocated nothing).
    pub const NONE: InodeNo = InodeNo(0);

    /// The journal inode of an MDS rank: `0x200 + rank` (mds §6.4, fact 72).
    pub const fn journal_of_rank(rank: u32) -> InodeNo {
        InodeNo(0x200 + rank as u64)
    }

    pub(crate) fn encode(self, e: &mut Encoder) {
        e.u64(self.0);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.u64().map(InodeNo)
    }
}

impl fmt::Display for InodeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A directory fragment id (`frag_t`): the number of significant bits in the top 8 bits and the
/// fragment value in the low 24. `Frag(0)` is the whole directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Frag(pub u32);

impl Frag {
    /// The unfragmented directory.
    pub const WHOLE: Frag = Frag(0);

    /// A fragment with `bits` significant bits and value `value` (masked to 24 bits).
    pub const fn new(bits: u8, value: u32) -> Frag {
        Frag(((bits as u32) << 24) | (value & 0x00ff_ffff))
    }

    /// Number of significant bits.
    pub const fn bits(self) -> u8 {
        (self.0 >> 24) as u8
    }

    /// The fragment value.
    pub const fn value(self) -> u32 {
        self.0 & 0x00ff_ffff
    }
}

/// One fragment of one directory (`dirfrag_t`): what a dir context in an EMetaBlob describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct DirFrag {
    /// The directory inode.
    pub ino: InodeNo,
    /// The fragment.
    pub frag: Frag,
}

impl DirFrag {
    /// The whole-directory fragment of `ino`.
    pub const fn whole(ino: InodeNo) -> DirFrag {
        DirFrag { ino, frag: Frag::WHOLE }
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u64(self.ino.0).u32(self.frag.0);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        Ok(DirFrag { ino: InodeNo(d.u64()?), frag: Frag(d.u32()?) })
    }
}

impl fmt::Display for DirFrag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}.{:x}", self.ino.0, self.frag.0)
    }
}

/// A client request id (`metareqid_t`): who asked and their transaction id. Journaled so that a
/// client retrying a request after an MDS restart gets the original reply (mds §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MetaReqId {
    /// The requesting entity (a client, or an MDS for internal and peer requests).
    #[serde(serialize_with = "serde_util::entity_name")]
    pub name: EntityName,
    /// The requester's transaction id.
    pub tid: u64,
}

impl MetaReqId {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.entity_name(self.name).u64(self.tid);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        Ok(MetaReqId { name: d.entity_name()?, tid: d.u64()? })
    }
}

impl fmt::Display for MetaReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tid)
    }
}

/// A directory's own statistics (`frag_info_t`, the "dirstat"), maintained under the IFILE
/// scatterlock (mds §4.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FragInfo {
    /// Version of the last update folded in.
    pub version: u64,
    /// Latest mtime of the directory's entries.
    #[serde(serialize_with = "serde_util::utime")]
    pub mtime: UTime,
    /// Number of non-directory entries.
    pub nfiles: i64,
    /// Number of subdirectories.
    pub nsubdirs: i64,
    /// Change counter.
    pub change_attr: u64,
}

impl FragInfo {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.u64(self.version).utime(self.mtime).i64(self.nfiles).i64(self.nsubdirs).u64(self.change_attr);
        });
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(FragInfo {
                version: d.u64()?,
                mtime: d.utime()?,
                nfiles: d.i64()?,
                nsubdirs: d.i64()?,
                change_attr: d.u64()?,
            })
        })
    }
}

/// Recursive statistics (`nest_info_t`, the "rstat"), maintained under the INEST scatterlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct NestInfo {
    /// Version of the last update folded in.
    pub version: u64,
    /// Latest ctime in the subtree.
    #[serde(serialize_with = "serde_util::utime")]
    pub rctime: UTime,
    /// Bytes in the subtree.
    pub rbytes: i64,
    /// Files in the subtree.
    pub rfiles: i64,
    /// Directories in the subtree.
    pub rsubdirs: i64,
    /// Snapshots in the subtree.
    pub rsnaps: i64,
}

impl NestInfo {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.u64(self.version)
                .utime(self.rctime)
                .i64(self.rbytes)
                .i64(self.rfiles)
                .i64(self.rsubdirs)
                .i64(self.rsnaps);
        });
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(NestInfo {
                version: d.u64()?,
                rctime: d.utime()?,
                rbytes: d.i64()?,
                rfiles: d.i64()?,
                rsubdirs: d.i64()?,
                rsnaps: d.i64()?,
            })
        })
    }
}

/// The journaled inode record (the subset of `inode_t` the locker and replay use).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Inode {
    /// Inode number.
    pub ino: InodeNo,
    /// File type and permission bits (`S_IFDIR | 0755`...). IAUTH.
    pub mode: u32,
    /// Owner. IAUTH.
    pub uid: u32,
    /// Group. IAUTH.
    pub gid: u32,
    /// Link count. ILINK.
    pub nlink: u32,
    /// File size. IFILE.
    pub size: u64,
    /// Truncation sequence. IFILE.
    pub truncate_seq: u32,
    /// Change time.
    #[serde(serialize_with = "serde_util::utime")]
    pub ctime: UTime,
    /// Modification time. IFILE.
    #[serde(serialize_with = "serde_util::utime")]
    pub mtime: UTime,
    /// Access time. IFILE.
    #[serde(serialize_with = "serde_util::utime")]
    pub atime: UTime,
    /// Birth time.
    #[serde(serialize_with = "serde_util::utime")]
    pub btime: UTime,
    /// Change counter.
    pub change_attr: u64,
    /// Projected version (mds §6.2 step 2); replay keeps the newest.
    pub version: u64,
    /// Version of the xattrs. IXATTR.
    pub xattr_version: u64,
    /// Directory statistics (directories only). IFILE scatter.
    pub dirstat: FragInfo,
    /// Recursive statistics. INEST scatter.
    pub rstat: NestInfo,
    /// The part of `rstat` already propagated to the parent.
    pub accounted_rstat: NestInfo,
}

impl Inode {
    /// `S_IFMT`.
    pub const S_IFMT: u32 = 0o170_000;
    /// `S_IFDIR`.
    pub const S_IFDIR: u32 = 0o040_000;
    /// `S_IFREG`.
    pub const S_IFREG: u32 = 0o100_000;
    /// `S_IFLNK`.
    pub const S_IFLNK: u32 = 0o120_000;

    /// Whether the mode says directory.
    pub fn is_dir(&self) -> bool {
        self.mode & Self::S_IFMT == Self::S_IFDIR
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            self.ino.encode(e);
            e.u32(self.mode).u32(self.uid).u32(self.gid).u32(self.nlink);
            e.u64(self.size).u32(self.truncate_seq);
            e.utime(self.ctime).utime(self.mtime).utime(self.atime).utime(self.btime);
            e.u64(self.change_attr).u64(self.version).u64(self.xattr_version);
            self.dirstat.encode(e);
            self.rstat.encode(e);
            self.accounted_rstat.encode(e);
        });
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(Inode {
                ino: InodeNo::decode(d)?,
                mode: d.u32()?,
                uid: d.u32()?,
                gid: d.u32()?,
                nlink: d.u32()?,
                size: d.u64()?,
                truncate_seq: d.u32()?,
                ctime: d.utime()?,
                mtime: d.utime()?,
                atime: d.utime()?,
                btime: d.utime()?,
                change_attr: d.u64()?,
                version: d.u64()?,
                xattr_version: d.u64()?,
                dirstat: FragInfo::decode(d)?,
                rstat: NestInfo::decode(d)?,
                accounted_rstat: NestInfo::decode(d)?,
            })
        })
    }
}

/// A dirfrag's own record (`fnode_t`): its version and the statistics of the entries it holds,
/// with the parts already accounted to the directory inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Fnode {
    /// Dirfrag version.
    pub version: u64,
    /// Statistics of this fragment's entries.
    pub fragstat: FragInfo,
    /// The part of `fragstat` folded into the inode's dirstat.
    pub accounted_fragstat: FragInfo,
    /// Recursive statistics of this fragment.
    pub rstat: NestInfo,
    /// The part of `rstat` folded into the inode's rstat.
    pub accounted_rstat: NestInfo,
}

impl Fnode {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.u64(self.version);
            self.fragstat.encode(e);
            self.accounted_fragstat.encode(e);
            self.rstat.encode(e);
            self.accounted_rstat.encode(e);
        });
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(Fnode {
                version: d.u64()?,
                fragstat: FragInfo::decode(d)?,
                accounted_fragstat: FragInfo::decode(d)?,
                rstat: NestInfo::decode(d)?,
                accounted_rstat: NestInfo::decode(d)?,
            })
        })
    }
}

/// An interval set of inode numbers (`interval_set<inodeno_t>`): start and length pairs.
pub type InoIntervals = Vec<(InodeNo, u64)>;

pub(crate) fn encode_intervals(e: &mut Encoder, v: &InoIntervals) {
    e.seq(v, |e, (start, len)| {
        e.u64(start.0).u64(*len);
    });
}

pub(crate) fn decode_intervals(d: &mut Decoder<'_>) -> DecodeResult<InoIntervals> {
    d.seq(|d| Ok((InodeNo(d.u64()?), d.u64()?)))
}

pub(crate) fn encode_inos(e: &mut Encoder, v: &[InodeNo]) {
    e.seq(v, |e, i| i.encode(e));
}

pub(crate) fn decode_inos(d: &mut Decoder<'_>) -> DecodeResult<Vec<InodeNo>> {
    d.seq(InodeNo::decode)
}
