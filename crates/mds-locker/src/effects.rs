//! What goes into the Locker and what comes out (STYLE.md "sans-I/O cores").
//!
//! The Locker never sends a message, writes the journal or sleeps. Its driver feeds it
//! `Event`s and carries out the returned `Effect`s: submit this journal entry, send this reply
//! or cap message, and so on. Completions (journal safe, cap acks) come back as events. Tests
//! drive it the same way and assert on the exact effect lists.

use crate::flock::{FileLock, FileLockRule};
use crate::ids::{ClientId, Ino, JournalSeq, LockId, Rank, ReqId};
use crate::journal::JournalEntry;
use crate::message::MdsMessage;
use crate::mutation::LockOp;

/// A path relative to a base inode (Ceph's `filepath`): `base` then `components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath {
    /// Inode the path starts at.
    pub base: Ino,
    /// Names to walk, in order.
    pub components: Vec<String>,
}

impl FilePath {
    /// `base` followed by the `/`-separated components of `rel` (empty parts ignored).
    pub fn new(base: Ino, rel: &str) -> FilePath {
        FilePath { base, components: rel.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect() }
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components.len()
    }
}

/// A client request's operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// LOOKUP (§5.2): resolve `path`, rdlocking it, plus the target's locks for `mask`.
    Lookup {
        /// Path to resolve (usually a directory and one name).
        path: FilePath,
        /// Getattr cap mask (`As`, `Ls`, `Xs`, `Fs`, …) naming the fields wanted.
        mask: u32,
    },
    /// GETATTR (§5.2): like LOOKUP, usually with a depth-0 path.
    Getattr {
        /// Path to resolve.
        path: FilePath,
        /// Getattr cap mask.
        mask: u32,
    },
    /// MKDIR (§5.2): create directory `path` (last component new).
    Mkdir {
        /// Path of the new directory.
        path: FilePath,
        /// Permission bits.
        mode: u32,
    },
    /// CREATE / openc (§5.2): create and open file `path`; with `excl` an existing file is
    /// EEXIST, otherwise it is opened.
    Create {
        /// Path of the file.
        path: FilePath,
        /// Permission bits.
        mode: u32,
        /// O_EXCL.
        excl: bool,
        /// Open mode (`caps::FILE_MODE_*`), deciding the wanted caps.
        file_mode: u32,
    },
    /// READDIR (§5.2, §8 fact 65): list directory `path`.
    Readdir {
        /// The directory.
        path: FilePath,
    },
    /// OPEN of an existing inode (§5.2), optionally truncating it.
    Open {
        /// The inode to open.
        path: FilePath,
        /// Open mode (`caps::FILE_MODE_*`), deciding the wanted caps.
        file_mode: u32,
        /// O_TRUNC: xlock the filelock and journal the truncation.
        trunc: bool,
        /// O_DIRECTORY: fail with ENOTDIR unless the target is a directory (or symlink).
        directory: bool,
        /// Getattr mask for the reply (`As`, `Xs` decide extra rdlocks).
        mask: u32,
    },
    /// MKNOD (§5.2): a new non-directory inode; a type of 0 means a regular file.
    Mknod {
        /// Path of the new inode.
        path: FilePath,
        /// Type and permission bits (S_IFDIR and S_IFLNK are refused).
        mode: u32,
    },
    /// SYMLINK (§5.2).
    Symlink {
        /// Path of the new link.
        path: FilePath,
        /// What it points to.
        target: String,
    },
    /// UNLINK (§5.2, §8 fact 62): remove a non-directory name.
    Unlink {
        /// The name to remove.
        path: FilePath,
    },
    /// RMDIR (§5.2, §8 fact 63): remove an empty directory.
    Rmdir {
        /// The directory to remove.
        path: FilePath,
    },
    /// LINK (§5.2): a new name `path` for the inode that `target` names. Both are depth-1
    /// paths (directory inode + name) as clients send them; a depth-0 `target` names the inode
    /// by number.
    Link {
        /// The new name.
        path: FilePath,
        /// The existing name (or inode).
        target: FilePath,
    },
    /// RENAME (§5.2, §8 fact 68): move `src` to `dest`, replacing what `dest` names. Both are
    /// depth-1 paths.
    Rename {
        /// Destination name.
        dest: FilePath,
        /// Source name.
        src: FilePath,
    },
    /// SETATTR (§5.2, §8 fact 64).
    Setattr {
        /// The inode.
        path: FilePath,
        /// Fields to set.
        attrs: SetAttr,
    },
    /// SETXATTR (§5.2): xlock the xattrlock and set one extended attribute.
    Setxattr {
        /// The inode.
        path: FilePath,
        /// Attribute name (non-empty, not a `ceph.` virtual attribute).
        name: String,
        /// New value.
        value: Vec<u8>,
        /// XATTR_CREATE / XATTR_REPLACE semantics.
        flags: XattrFlags,
    },
    /// REMOVEXATTR (§5.2).
    Removexattr {
        /// The inode.
        path: FilePath,
        /// Attribute name.
        name: String,
    },
    /// SETFILELOCK (§5.2): take or release an advisory lock under an xlock of the flocklock.
    SetFileLock {
        /// The inode.
        path: FilePath,
        /// flock or fcntl family.
        rule: FileLockRule,
        /// The lock (kind `Unlock` releases); `client` is overwritten with the requester.
        lock: FileLock,
        /// F_SETLKW / blocking flock: wait for a conflicting lock to go instead of EAGAIN.
        wait: bool,
    },
    /// GETFILELOCK (§5.2): report the first lock that would block `lock` (rdlock flocklock).
    GetFileLock {
        /// The inode.
        path: FilePath,
        /// flock or fcntl family.
        rule: FileLockRule,
        /// The probe; `client` is overwritten with the requester.
        lock: FileLock,
    },
    /// Acquire exactly these locks (§4.4), as a metadata operation's lock set would.
    ///
    /// With `journal`, the request then runs the full mutation pipeline with an empty change
    /// set: early reply, journal submit, safe reply after the entry is safe (§4.18). Without
    /// it, the Locker emits `Effect::LocksAcquired` and keeps the locks until
    /// `Event::FinishRequest`. This is how the lock engine is exercised without a namespace.
    LockSet {
        /// Locks in the caller's order (the Locker augments, sorts and merges them).
        locks: Vec<LockOp>,
        /// Run through the journal and reply pipeline once acquired.
        journal: bool,
    },
}

impl Op {
    /// Ceph's `may_write()`: whether a successful result is recorded in the session's
    /// completed-request table, so that a re-sent request is answered instead of re-run.
    pub fn is_write(&self) -> bool {
        match self {
            Op::Mkdir { .. }
            | Op::Create { .. }
            | Op::Mknod { .. }
            | Op::Symlink { .. }
            | Op::Unlink { .. }
            | Op::Rmdir { .. }
            | Op::Link { .. }
            | Op::Rename { .. }
            | Op::Setattr { .. }
            | Op::Setxattr { .. }
            | Op::Removexattr { .. }
            | Op::SetFileLock { .. } => true,
            Op::Open { trunc, .. } => *trunc,
            Op::LockSet { journal, .. } => *journal,
            Op::Lookup { .. } | Op::Getattr { .. } | Op::Readdir { .. } | Op::GetFileLock { .. } => false,
        }
    }

    /// The op's name as Ceph logs it (`ceph_mds_op_name`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Lookup { .. } => "lookup",
            Op::Getattr { .. } => "getattr",
            Op::Mkdir { .. } => "mkdir",
            Op::Create { .. } => "create",
            Op::Readdir { .. } => "readdir",
            Op::Open { .. } => "open",
            Op::Mknod { .. } => "mknod",
            Op::Symlink { .. } => "symlink",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::Link { .. } => "link",
            Op::Rename { .. } => "rename",
            Op::Setattr { .. } => "setattr",
            Op::Setxattr { .. } => "setxattr",
            Op::Removexattr { .. } => "rmxattr",
            Op::SetFileLock { .. } => "setfilelock",
            Op::GetFileLock { .. } => "getfilelock",
            Op::LockSet { .. } => "lockset",
        }
    }
}

/// The fields a SETATTR changes; `None` leaves a field alone. Which fields are set decides the
/// locks (§8 fact 64): mode/uid/gid xlock the authlock, size/mtime/atime xlock the filelock,
/// ctime wrlocks the versionlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// Permission bits (the file type is kept).
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// New size (truncate or extend); regular files only.
    pub size: Option<u64>,
    /// Modification time.
    pub mtime_ms: Option<u64>,
    /// Access time (not stored; it still takes the filelock as in Ceph).
    pub atime_ms: Option<u64>,
    /// Change time set explicitly by the client.
    pub ctime_ms: Option<u64>,
}

impl SetAttr {
    /// Whether any authlock-protected field is set.
    pub fn touches_auth(&self) -> bool {
        self.mode.is_some() || self.uid.is_some() || self.gid.is_some()
    }

    /// Whether any filelock-protected field is set.
    pub fn touches_file(&self) -> bool {
        self.size.is_some() || self.mtime_ms.is_some() || self.atime_ms.is_some()
    }

    /// Whether nothing at all is set.
    pub fn is_empty(&self) -> bool {
        !self.touches_auth() && !self.touches_file() && self.ctime_ms.is_none()
    }
}

/// setxattr(2) flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrFlags {
    /// Create or replace.
    #[default]
    Any,
    /// XATTR_CREATE: fail with EEXIST if the attribute exists.
    Create,
    /// XATTR_REPLACE: fail with ENODATA if it does not.
    Replace,
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// Unique id chosen by the driver (below `ReqId::INTERNAL_BASE`).
    pub reqid: ReqId,
    /// The requesting client; it must have a session.
    pub client: ClientId,
    /// What to do.
    pub op: Op,
}

/// What a client says in a cap message (§3.2 cap ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCapOp {
    /// UPDATE: acknowledges `seq`, reports the caps still held and what it wants.
    Update,
    /// RELEASE: gives the whole capability back.
    Release,
    /// FLUSH (an UPDATE that also carries dirty metadata, §4.14 "cap flushes"): acknowledges
    /// `seq` like `Update` and hands over what the client changed under its `Fw` / `Fx` caps.
    /// The MDS journals the change and answers with `CapOp::FlushAck` only once it is safe.
    /// Only the file fields exist here, so only `Fw` / `Fx` dirtiness has an effect.
    Flush {
        /// The client's flush id; a re-sent flush with a tid already acknowledged is acked
        /// again without journaling anything.
        tid: u64,
        /// Caps whose data is dirty (`Fw`, `Fx`; other bits are acknowledged but carry
        /// nothing).
        dirty: u32,
        /// The file size as the client wrote it (the MDS only ever grows the size here).
        size: u64,
        /// The modification time the client set.
        mtime_ms: u64,
    },
}

/// A cap message from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCapMessage {
    /// Sender.
    pub client: ClientId,
    /// Inode.
    pub ino: Ino,
    /// Update or release.
    pub op: ClientCapOp,
    /// The newest MDS cap message seq the client has seen.
    pub seq: u64,
    /// Caps the client still holds.
    pub caps: u32,
    /// Caps the client wants.
    pub wanted: u32,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client opened a session.
    SessionOpen {
        /// The client.
        client: ClientId,
    },
    /// The client's session timed out (or it was blocklisted): evict it, dropping its caps,
    /// leases and requests.
    SessionTimeout {
        /// The client.
        client: ClientId,
    },
    /// A client request.
    Request(ClientRequest),
    /// The driver is done with a request that holds its locks (`Op::LockSet` without journal),
    /// or cancels one still waiting: drop everything it holds.
    FinishRequest {
        /// The request.
        reqid: ReqId,
    },
    /// A cap message from a client.
    ClientCaps(ClientCapMessage),
    /// A client gives back a dentry lease (RELEASE, or REVOKE_ACK after `Effect::LeaseRevoke`).
    LeaseRelease {
        /// The client.
        client: ClientId,
        /// Directory inode number.
        dir: Ino,
        /// Dentry name.
        name: String,
        /// The lease seq from `Effect::LeaseGrant`; an older seq releases nothing.
        seq: u32,
    },
    /// A message from another rank: a lock message (§4.12), a peer request (§4.17) or
    /// replicas (discover reply).
    Message {
        /// Sender rank.
        from: Rank,
        /// The message.
        msg: MdsMessage,
    },
    /// The journal made everything up to `upto` durable.
    JournalSafe {
        /// Highest safe sequence.
        upto: JournalSeq,
    },
    /// Clock tick (Ceph's `Locker::tick`): advances the clock; clients that have not
    /// acknowledged a revoke within the session timeout are evicted.
    Tick {
        /// Current time.
        now_ms: u64,
    },
    /// Another rank failed (the mdsmap shows it down): forget its replicas and gather acks,
    /// drop the peer requests it led, and stop waiting for it (see `cluster` on rejoin).
    RankDown {
        /// The failed rank.
        rank: Rank,
    },
    /// A failed rank finished its rejoin and is active again: requests that were waiting for
    /// it are retried.
    RankActive {
        /// The recovered rank.
        rank: Rank,
    },
    /// A failed rank finished replaying its clients' requests (Ceph's ACTIVE, after
    /// CLIENTREPLAY). Until every failed rank has, the cluster is degraded and a leader's
    /// snaplock xlock waits (`RankActive` comes earlier, at the end of rejoin).
    RankRecovered {
        /// The rank that is active.
        rank: Rank,
    },
}

/// What a cap message to a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapOp {
    /// Only adds bits (no ack needed).
    Grant,
    /// Removes bits; the client must answer with an update carrying `seq`.
    Revoke,
    /// FLUSH_ACK: the flush `tid` is durable in the journal, so the client may forget the
    /// `cleaned` dirty bits (§4.14: sent only after the journal entry is safe). `seq` echoes the
    /// flush message's seq.
    FlushAck {
        /// The client's flush id.
        tid: u64,
        /// The dirty bits the flush carried, now clean.
        cleaned: u32,
    },
}

/// A cap message to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapMessage {
    /// Recipient.
    pub client: ClientId,
    /// Inode.
    pub ino: Ino,
    /// Grant or revoke.
    pub op: CapOp,
    /// The caps the client may now hold (the new `pending`).
    pub caps: u32,
    /// The client's wanted caps as the MDS knows them.
    pub wanted: u32,
    /// Message seq to acknowledge.
    pub seq: u64,
}

/// A POSIX error in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// No such file or directory.
    ENOENT,
    /// File exists.
    EEXIST,
    /// Not a directory.
    ENOTDIR,
    /// Is a directory.
    EISDIR,
    /// Invalid argument.
    EINVAL,
    /// Directory not empty.
    ENOTEMPTY,
    /// File name too long.
    ENAMETOOLONG,
    /// Read-only (system directories, snapshots).
    EROFS,
    /// No such attribute (removexattr, XATTR_REPLACE).
    ENODATA,
    /// A non-blocking file lock request conflicts (EWOULDBLOCK).
    EAGAIN,
    /// A blocking fcntl lock would deadlock.
    EDEADLK,
    /// The update spans ranks in a way that needs witnesses (cross-rank rename, link, or
    /// rmdir of a directory whose dirfrag another rank is auth for), which cephlock does not
    /// implement yet. Ceph would run the two-phase peer update of §4.17 instead.
    EXDEV,
}

impl Errno {
    /// The Linux errno value.
    pub const fn code(self) -> i32 {
        match self {
            Errno::ENOENT => 2,
            Errno::EEXIST => 17,
            Errno::ENOTDIR => 20,
            Errno::EISDIR => 21,
            Errno::EINVAL => 22,
            Errno::EROFS => 30,
            Errno::ENAMETOOLONG => 36,
            Errno::ENOTEMPTY => 39,
            Errno::EAGAIN => 11,
            Errno::EDEADLK => 35,
            Errno::ENODATA => 61,
            Errno::EXDEV => 18,
        }
    }
}

/// One READDIR entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: String,
    /// Inode it links to (the target for a remote link).
    pub ino: Ino,
    /// Type bits (`mode & S_IFMT`).
    pub d_type: u32,
}

/// Operation-specific reply content beyond the target inode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplyData {
    /// Nothing more.
    #[default]
    None,
    /// READDIR: the directory's entries in name order.
    Entries(Vec<DirEntry>),
    /// GETFILELOCK: the first conflicting lock, or `None` ("would be granted").
    FileLock(Option<FileLock>),
}

/// A reply to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request.
    pub reqid: ReqId,
    /// The client.
    pub client: ClientId,
    /// `false` for an early reply sent before the journal entry is safe.
    pub safe: bool,
    /// Result: `Ok` with the target inode, if any, or the error.
    pub result: Result<Option<Ino>, Errno>,
    /// READDIR entries, GETFILELOCK answer.
    pub data: ReplyData,
}

/// Outputs, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append this entry to the journal; report `Event::JournalSafe` when durable.
    JournalSubmit {
        /// Sequence the Locker assigned.
        seq: JournalSeq,
        /// Payload.
        entry: JournalEntry,
    },
    /// Flush the journal now: a lock waiter is blocked behind an unsafe update (`nudge_log`,
    /// §8 fact 53) or a request was not early-replied.
    JournalFlush,
    /// Send a reply.
    Reply(Reply),
    /// Send a cap message.
    Cap(CapMessage),
    /// Send a dentry lease on `dir`/`name` with the reply that follows (§4.15).
    LeaseGrant {
        /// Lease holder.
        client: ClientId,
        /// Directory inode number.
        dir: Ino,
        /// Dentry name.
        name: String,
        /// Lease seq the client must quote when releasing.
        seq: u32,
    },
    /// Revoke a client's dentry lease on `dir`/`name` (§4.15).
    LeaseRevoke {
        /// Lease holder.
        client: ClientId,
        /// Directory inode number.
        dir: Ino,
        /// Dentry name.
        name: String,
    },
    /// A waiter was woken; the Locker re-dispatches the request itself before returning.
    /// Informational, in FIFO wake order.
    Woken {
        /// The request.
        reqid: ReqId,
        /// The lock whose waiter list it was on.
        lock: LockId,
    },
    /// An `Op::LockSet` request without journaling now holds all its locks.
    LocksAcquired {
        /// The request.
        reqid: ReqId,
    },
    /// A client was evicted; its caps, leases and unjournaled requests are gone.
    Evicted {
        /// The client.
        client: ClientId,
    },
    /// The request needs an object another rank is auth for: the client must re-send it to
    /// rank `to` (Ceph's MClientRequestForward). Nothing of it remains on this rank.
    Forward {
        /// The rank to send it to.
        to: Rank,
        /// The request, unchanged.
        request: ClientRequest,
    },
    /// Send a message to another rank. Messages to one rank must arrive in the order they
    /// were emitted (Ceph's messenger keeps per-connection order; the protocol relies on it).
    Send {
        /// Destination rank.
        to: Rank,
        /// The message.
        msg: MdsMessage,
    },
}
