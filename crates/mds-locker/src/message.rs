//! Messages between ranks: lock messages (`MLock`, §2.2, §4.12), peer requests
//! (`MMDSPeerRequest`, §4.17), replicas (discover replies) and the search for an inode by
//! number (`MMDSFindIno`, §5.1).
//!
//! The Locker emits `Effect::Send { to, msg }` and consumes `Event::Message { from, msg }`; a
//! transport in between (see `cluster`) carries them. Objects are named by `ObjKey` /
//! `LockKey` because arena handles mean nothing on another rank. Messages are plain Rust
//! values, not Ceph's wire encoding: ranks of cephlock talk only to each other.

use lock_sm::{LockAction, LockState};

use crate::cache::{DirStat, Fnode, InodeData, NestStat};
use crate::ids::{ClientId, Ino, LockKey, ObjKey, Rank, ReqId};

/// Anything one rank sends another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdsMessage {
    /// `MLock`.
    Lock(LockMsg),
    /// `MMDSPeerRequest`.
    Peer(PeerMsg),
    /// Replicas of objects the sender is auth for: the receiver adds the ones it lacks.
    Replicate(ReplicaBundle),
    /// `MDiscover`: the sender traversed to `dir`/`name` and has no replica of it.
    Discover(Discover),
    /// `MDiscoverReply`: replicas for a discover, or word that the name does not exist.
    DiscoverReply(DiscoverReply),
    /// `MMDSFindIno` (§5.1): the sender was handed an inode number it has no copy of.
    FindIno(FindIno),
    /// `MMDSFindInoReply`: where the answering rank's cache has that inode.
    FindInoReply(FindInoReply),
    /// New auth → replica holders: an inode a rename migrated is now auth on the sender
    /// (see `locker::migrate`).
    AuthChanged(AuthChanged),
}

/// `MMDSFindIno`: a rank whose cache lacks a request's base inode asks every other rank
/// where it is, because clients name paths from any inode they were ever told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindIno {
    /// The asker's id for this search (replies from an older search are ignored).
    pub tid: u64,
    /// The inode looked for.
    pub ino: Ino,
}

/// `MMDSFindInoReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindInoReply {
    /// The asker's `FindIno::tid`.
    pub tid: u64,
    /// The inode looked for (so a reply is never applied to another search).
    pub ino: Ino,
    /// The names from `base` down to the inode, as the answering rank's cache links it;
    /// empty when that rank has no copy (or none reachable from a base it can vouch for):
    /// the asker then discovers this path itself instead of trusting anyone's replica.
    pub path: Vec<String>,
    /// Where `path` starts: the root, or the answering rank's own `~mdsN` when the inode
    /// lives in one of its stray directories (an unlinked inode that remote links still
    /// name). Ceph's answer is a path from a base inode too (`make_path`).
    pub base: Ino,
}

/// Sent by the new auth of an inode a cross-rank rename migrated to every rank that
/// replicates it (the old auth too), before any lock message of the new auth about it, so
/// that the replica accepts the new auth's lock messages and sends its own requests there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChanged {
    /// The migrated inode.
    pub ino: Ino,
    /// Its auth before the rename (whose late messages the replica drops).
    pub old_auth: Rank,
    /// (lock type value, replica state) for each lock: the replica state of what the new
    /// auth starts from. A replica rebuilt by a restart while the rename was in flight
    /// starts from initial states the new auth does not know; this puts every copy in step.
    pub locks: Vec<(u16, LockState)>,
}

/// What the old auth of a renamed inode hands the leader in its PREPACK (Ceph's rename
/// `inode_export`): everything the leader needs to become auth at commit. Client caps are
/// not carried: the exporter recalled them before freezing (see `locker::migrate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeExport {
    /// The inode.
    pub ino: Ino,
    /// Committed content.
    pub data: InodeData,
    /// (lock type value, the auth's state) for each lock.
    pub locks: Vec<(u16, LockState)>,
    /// The ranks that replicate it (the leader among them).
    pub replicas: std::collections::BTreeSet<Rank>,
    /// Advisory `flock` locks.
    pub flocks: crate::flock::FileLockTable,
    /// POSIX `fcntl` locks.
    pub fcntl_locks: crate::flock::FileLockTable,
}

/// `MDiscover` (§5.1): asks the auth of a directory's dirfrag for the dentry `name` and the
/// inode it links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discover {
    /// The directory.
    pub dir: Ino,
    /// The name looked up.
    pub name: String,
}

/// `MDiscoverReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverReply {
    /// The directory asked about.
    pub dir: Ino,
    /// The name asked about.
    pub name: String,
    /// Replicas the asker lacked (dirfrag, dentry, inode).
    pub bundle: ReplicaBundle,
    /// The directory is complete on its auth and has no such entry (Ceph's error_dn flag).
    pub missing: bool,
    /// The rank auth for the inode the dentry primary-links, when that is not the replying
    /// dirfrag auth (a directory renamed into another rank's dirfrag keeps its auth, see
    /// `locker::discover_inode`): the asker gets the inode from there.
    pub inode_auth: Option<crate::ids::Rank>,
}

impl MdsMessage {
    /// A short name for traces and per-type message counts.
    pub fn kind(&self) -> &'static str {
        match self {
            MdsMessage::Lock(m) => m.action.name(),
            MdsMessage::Peer(p) => p.op.name(),
            MdsMessage::Replicate(_) => "replicate",
            MdsMessage::Discover(_) => "discover",
            MdsMessage::DiscoverReply(_) => "discover_reply",
            MdsMessage::FindIno(_) => "find_ino",
            MdsMessage::FindInoReply(_) => "find_ino_reply",
            MdsMessage::AuthChanged(_) => "auth_changed",
        }
    }
}

/// `MLock` (§2.2): one action on one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockMsg {
    /// What to do.
    pub action: LockAction,
    /// The rank that sent it (Ceph's `asker`).
    pub asker: Rank,
    /// The request on whose behalf, when there is one.
    pub reqid: Option<ReqId>,
    /// The lock.
    pub lock: LockKey,
    /// The lock's protected state (`encode_lock_state`), when the action carries it.
    pub data: Option<LockData>,
}

/// What a lock protects, as shipped between auth and replicas (§2.3 "Fields protected").
///
/// The auth ships authoritative values; a replica shipping scatter data (SYNCACK, LOCKACK from
/// a MIX state) sends only the per-frag values of the dirfrags it is auth for, plus whether
/// it has anything dirty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockData {
    /// DN: the dentry's linkage.
    Dentry(DentryLinkage),
    /// IAUTH: mode, uid, gid (+ version, ctime).
    Auth {
        /// Inode version.
        version: u64,
        /// Change time.
        ctime_ms: u64,
        /// Mode bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// ILINK: the link count.
    Link {
        /// Inode version.
        version: u64,
        /// Change time.
        ctime_ms: u64,
        /// Link count.
        nlink: u32,
    },
    /// IXATTR: the extended attributes.
    Xattr {
        /// Inode version.
        version: u64,
        /// Change time.
        ctime_ms: u64,
        /// The attributes.
        xattrs: std::collections::BTreeMap<String, Vec<u8>>,
        /// Their version.
        xattr_version: u64,
    },
    /// IFILE: size and times for files; dirstat plus per-frag fragstats for directories.
    File {
        /// Inode version.
        version: u64,
        /// Change time.
        ctime_ms: u64,
        /// Modification time.
        mtime_ms: u64,
        /// File size.
        size: u64,
        /// Directory: the inode's dirstat (auth → replica).
        dirstat: DirStat,
        /// Per dirfrag: (frag, fragstat, accounted_fragstat).
        frags: Vec<(u32, DirStat, DirStat)>,
        /// Replica → auth: whether the sender has unfolded changes.
        dirty: bool,
    },
    /// INEST: rstat plus per-frag rstats.
    Nest {
        /// Inode version.
        version: u64,
        /// The inode's rstat (auth → replica).
        rstat: NestStat,
        /// Per dirfrag: (frag, rstat, accounted_rstat).
        frags: Vec<(u32, NestStat, NestStat)>,
        /// Replica → auth: whether the sender has unfolded changes.
        dirty: bool,
    },
    /// Locks whose protected state cephlock does not model (IDFT with one frag, ISNAP without
    /// snapshots, IPOLICY, IFLOCK whose advisory table lives on the auth).
    Empty,
}

/// A dentry linkage named across ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DentryLinkage {
    /// Negative dentry.
    Null,
    /// Primary link to an inode.
    Primary(Ino),
    /// Remote (hard) link.
    Remote {
        /// Target inode number.
        ino: Ino,
        /// Type bits.
        d_type: u32,
    },
}

/// Peer request operations (§4.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerOp {
    /// Leader → auth: auth-pin these objects.
    AuthPin,
    /// Reply to `AuthPin`.
    AuthPinAck,
    /// Leader → auth: take an xlock for the leader's request.
    Xlock,
    /// Reply to `Xlock`, with the lock's state.
    XlockAck,
    /// Leader → auth: release that xlock (no reply).
    Unxlock,
    /// Leader → rank: take a wrlock for the leader's request.
    Wrlock,
    /// Reply to `Wrlock`.
    WrlockAck,
    /// Leader → rank: release that wrlock (no reply).
    Unwrlock,
    /// Leader → peers: drop every lock held for the request.
    DropLocks,
    /// Leader → witness: prepare a link (two-phase update; the inode's auth adds a link).
    LinkPrep,
    /// Leader → witness: prepare an unlink of a remote link (the inode's auth drops a link;
    /// Ceph's `_link_remote(inc = false)`).
    UnlinkPrep,
    /// Leader → witness: prepare an rmdir.
    RmdirPrep,
    /// Leader → witness: prepare a rename.
    RenamePrep,
    /// Witness → leader: prepared (journaled EPeerUpdate PREPARE).
    PrepAck,
    /// Leader → peers: commit (or abort) after the leader's update is safe.
    Finish,
    /// Peer → leader: committed.
    Committed,
}

impl PeerOp {
    /// Log name.
    pub const fn name(self) -> &'static str {
        match self {
            PeerOp::AuthPin => "authpin",
            PeerOp::AuthPinAck => "authpin_ack",
            PeerOp::Xlock => "xlock",
            PeerOp::XlockAck => "xlock_ack",
            PeerOp::Unxlock => "unxlock",
            PeerOp::Wrlock => "wrlock",
            PeerOp::WrlockAck => "wrlock_ack",
            PeerOp::Unwrlock => "unwrlock",
            PeerOp::DropLocks => "drop_locks",
            PeerOp::LinkPrep => "link_prep",
            PeerOp::UnlinkPrep => "unlink_prep",
            PeerOp::RmdirPrep => "rmdir_prep",
            PeerOp::RenamePrep => "rename_prep",
            PeerOp::PrepAck => "prep_ack",
            PeerOp::Finish => "finish",
            PeerOp::Committed => "committed",
        }
    }
}

/// `MMDSPeerRequest` (§4.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMsg {
    /// The operation.
    pub op: PeerOp,
    /// The leader's request id (the peer keys its peer request by it).
    pub reqid: ReqId,
    /// The client the leader's request belongs to (a peer xlock is held for that client).
    pub client: Option<ClientId>,
    /// The lock for XLOCK / WRLOCK / UNXLOCK / UNWRLOCK and their acks.
    pub lock: Option<LockKey>,
    /// AUTHPIN: the objects to pin; AUTHPINACK: the objects pinned.
    pub objects: Vec<ObjKey>,
    /// XLOCKACK: the lock's protected state and the state the auth's lock is in.
    pub lock_state: Option<(LockState, LockData)>,
    /// AUTHPINACK sent because the peer must wait (NOTIFY_BLOCKING); FINISH as an abort.
    pub flag: bool,
    /// LINKPREP / RMDIRPREP / RENAMEPREP: what the witness must change (§4.17).
    pub prep: Option<Box<crate::twophase::WitnessPrep>>,
    /// PREPACK: whether the witness prepared, or why not.
    pub prep_result: Option<crate::twophase::PrepResult>,
    /// PREPACK of a RENAMEPREP whose witness exported the renamed inode to the leader.
    pub inode_export: Option<Box<InodeExport>>,
    /// AUTHPIN: the rename's source inode to freeze with the pin (§4.4 `auth_pin_freeze`),
    /// so no other request can pin it between the rename's locking and its RENAMEPREP;
    /// AUTHPINACK: the inode that is now frozen for the request.
    pub freeze: Option<ObjKey>,
}

impl PeerMsg {
    /// A message with only the op, request and client set.
    pub fn new(op: PeerOp, reqid: ReqId, client: Option<ClientId>) -> PeerMsg {
        PeerMsg {
            op,
            reqid,
            client,
            lock: None,
            objects: Vec::new(),
            lock_state: None,
            flag: false,
            prep: None,
            prep_result: None,
            inode_export: None,
            freeze: None,
        }
    }
}

/// Replicas of a path of objects, root first: what a discover reply carries (Ceph's
/// `replicate_*` encodings). The receiver creates what it lacks and refreshes the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaBundle {
    /// The objects, each after its parent.
    pub objects: Vec<ReplicaObj>,
}

/// One replicated object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaObj {
    /// An inode with its content and each lock's replica state.
    Inode {
        /// The inode.
        ino: Ino,
        /// Its auth rank.
        auth: Rank,
        /// Committed content.
        data: InodeData,
        /// (lock type value, replica state) for each lock.
        locks: Vec<(u16, LockState)>,
    },
    /// A dirfrag.
    Dirfrag {
        /// The directory.
        dir: Ino,
        /// The frag.
        frag: u32,
        /// Its auth rank (the subtree's rank).
        auth: Rank,
        /// Committed fnode.
        fnode: Fnode,
    },
    /// A dentry with its linkage and lock states.
    Dentry {
        /// The directory.
        dir: Ino,
        /// Name.
        name: String,
        /// Its auth rank.
        auth: Rank,
        /// Committed linkage.
        linkage: DentryLinkage,
        /// Committed version.
        version: u64,
        /// (lock type value, replica state) for each lock.
        locks: Vec<(u16, LockState)>,
    },
}
