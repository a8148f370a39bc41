//! What goes into the Locker and what comes out (STYLE.md "sans-I/O cores").
//!
//! The Locker never sends a message, writes the journal or sleeps. Its driver feeds it
//! `Event`s and carries out the returned `Effect`s: submit this journal entry, send this reply
//! or cap message, and so on. Completions (journal safe, cap acks) come back as events. Tests
//! drive it the same way and assert on the exact effect lists.

use crate::ids::{ClientId, Ino, JournalSeq, LockId, Rank, ReqId};
use crate::journal::JournalEntry;
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
    /// A lock message from another rank (§4.12). Refused until multi-rank support exists.
    LockMessage {
        /// Sender rank.
        from: Rank,
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
}

/// What a cap message to a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapOp {
    /// Only adds bits (no ack needed).
    Grant,
    /// Removes bits; the client must answer with an update carrying `seq`.
    Revoke,
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
        }
    }
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
}
