//! The MDS Locker: metadata cache, locks, caps and the lock engine as a sans-I/O state machine.
//!
//! Ceph's MDS serializes metadata updates with per-object locks whose behaviour is fixed by
//! four state tables (held as data in `lock-sm`). This crate holds the runtime side: the cache
//! objects that carry the locks, the per-lock holders and waiters (mds spec §4.1), the
//! `Locker` algorithms that move locks between states (§4.4–§4.11), client capabilities and
//! dentry leases (§4.14, §4.15), path traversal and the server operations with their §5.2
//! lock sets (lookup, getattr, readdir, open with O_TRUNC, create, mknod, mkdir, symlink,
//! unlink, rmdir, link, rename, setattr, setxattr / removexattr, set/getfilelock with an
//! in-memory advisory lock table in `flock`), and the journal-before-unlock request pipeline
//! (§4.18, §6.2, §6.3). Successful writes are recorded per session, so a client re-sending a
//! request id gets the recorded reply instead of a second execution. `dump_locks`,
//! `dump_ops_in_flight`, `session_ls`, `dump_cache` and `dump_inode` give JSON views.
//!
//! Several ranks: `cluster::Cluster` wires Lockers together through a `Transport`. Objects
//! have an auth rank and replicas (`authority`); ranks exchange `message::MdsMessage`s: the
//! MLock replica protocol of §4.12 with per-lock-type data, peer requests for remote xlocks,
//! wrlocks and auth pins (§4.17), discover, and the two-phase witness updates of cross-rank
//! rename / link / rmdir. Scatterlocks gather replicas' dirfrag stats into the inode in a
//! journaled writebehind (§4.13). A rank can crash and restart: it replays its journal
//! (EUpdate, ESession, ESubtreeMap, EPeerUpdate) and rejoins the survivors (simplified; see
//! `cluster`). Limits: one dirfrag per directory, no snapshots, no lock caches, no purging of
//! stray inodes, recursive statistics folded one level, only empty directories can be pinned.
//! The Locker's journal payload is its own `JournalEntry` (handles into its cache); `wire` maps
//! it to and from `mds-journal`'s events, and `runtime::Rank` drives one Locker on a real
//! `MdLog` (journal-before-unlock, §6.3), rebuilding its cache, sessions and completed-request
//! table by replay at open (§6.6).
//!
//! Invariants (checked after every event by the tests, see `invariants`): never two active
//! xlock holders; no grant in a state whose table forbids it; caps within what the lock states
//! allow; a transitional lock auth-pins its parent; every waiting request is parked on exactly
//! one lock; every inode has exactly one primary link, committed and projected. The Locker
//! never panics on bad input: refused events return `LockerError` and change nothing, and a
//! request naming a bad path gets a POSIX error and changes nothing.
//!
//! The `Locker` never does I/O. A driver feeds it events and carries out its effects:
//!
//! ```
//! use lock_sm::LockType;
//! use mds_locker::{ClientRequest, Effect, Event, LockId, LockOp, Locker, LockerConfig, Op, ReqId};
//!
//! let mut locker = Locker::new(LockerConfig::default());
//! let root = locker.cache().root();
//! locker.handle(Event::SessionOpen { client: 1 }).unwrap();
//! // Client 1 wants to change the root's mode: xlock its authlock (§5.2 SETATTR).
//! let op = Op::LockSet { locks: vec![LockOp::x(LockId::inode(root, LockType::IAuth))], journal: true };
//! let fx = locker.handle(Event::Request(ClientRequest { reqid: ReqId(1), client: 1, op })).unwrap();
//! // Nobody else holds anything, so the xlock is granted at once (§8 fact 38), the client gets
//! // an early (unsafe) reply and the journal entry is submitted.
//! assert!(matches!(fx[0], Effect::Reply(ref r) if !r.safe));
//! let Effect::JournalSubmit { seq, .. } = fx[1] else { panic!() };
//! // Once the journal says the entry is safe, locks are dropped and the safe reply goes out.
//! let fx = locker.handle(Event::JournalSafe { upto: seq }).unwrap();
//! assert!(matches!(fx[0], Effect::Reply(ref r) if r.safe));
//! assert!(mds_locker::invariants::check_all(&locker).is_ok());
//! ```

pub mod authority;
pub mod cache;
pub mod capability;
pub mod cluster;
pub mod cooperative;
pub mod dump;
pub mod effects;
pub mod error;
pub mod flock;
pub mod ids;
pub mod invariants;
pub mod journal;
pub mod lock;
pub mod lock_events;
pub mod locker;
pub mod message;
pub mod mutation;
pub mod rank_journal;
pub mod recovery;
pub mod runtime;
pub mod twophase;
pub mod wire;

pub use cache::{Cache, Dentry, Dirfrag, Inode, InodeData, Linkage};
pub use capability::{Capability, Session};
pub use dump::LockFilter;
pub use effects::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, ClientRequest, DirEntry, Effect, Errno, Event,
    FilePath, Op, Reply, ReplyData, SetAttr, XattrFlags,
};
pub use error::LockerError;
pub use flock::{FileLock, FileLockKind, FileLockRule, FileLockTable};
pub use ids::{
    ClientId, DentryId, DirfragId, Ino, InodeId, JournalSeq, LockId, LockKey, ObjKey, ObjRef, Rank, ReqId,
};
pub use journal::{JournalEntry, MetaChange};
pub use lock::Lock;
pub use lock_events::{GrantFacts, HoldKind, LockEvent, LockEventKind};
pub use locker::{Locker, LockerConfig, LockerStats, Transition};
pub use message::{DentryLinkage, LockData, LockMsg, MdsMessage, PeerMsg, PeerOp, ReplicaBundle, ReplicaObj};
pub use mutation::{LockOp, Mutation};
