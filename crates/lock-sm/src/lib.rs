//! Ceph's lock state machines as data.
//!
//! The MDS decides everything about a lock (who may read it, who may hold which client
//! capability, where a transition is heading) by looking up a row in one of four `const`
//! tables: simplelock, scatterlock, filelock and locallock. This crate holds those tables, the
//! lock types and capability bits, and the pure predicates computed from them, plus librbd's
//! ManagedLock states and decisions. It has no dependencies, does no I/O and is not async, so
//! every other crate (and every test) can consult it freely.
//!
//! # A walk through the crate: `chmod` takes an xlock
//!
//! The story below is what the MDS Locker does, step by step, when one client runs `chmod` on
//! an inode that another client is reading (mds spec §4.7, §8 fact 38). The Locker keeps the
//! counts and the clients; every rule it applies comes from here.
//!
//! **1. Which machine governs the lock.** The mode bits live under the inode's authlock,
//! `IAUTH`, a simplelock whose client caps sit at the `A` position (§2.3).
//!
//! ```
//! use lock_sm::{LockState, LockType, Machine};
//!
//! let lt = LockType::IAuth;
//! assert_eq!(lt.machine(), Machine::Simple);
//! assert_eq!(lt.cap_shift(), lock_sm::caps::SAUTH);
//! // SYNC is a stable row of the simplelock table: it heads nowhere.
//! assert!(Machine::Simple.row(LockState::Sync).is_stable());
//! ```
//!
//! **2. Who may do what in a state.** The predicates evaluate one table cell with the rules
//! of §1.1 (`ANY`, `AUTH`, `XCL`, ...). In SYNC anyone may rdlock, nobody may xlock, and any
//! client may cache `As` (shared auth caps).
//!
//! ```
//! use lock_sm::predicates::{CapsWho, LockCtx, can_rdlock, can_xlock, gcaps_allowed};
//! use lock_sm::caps::{format_caps, shift_caps};
//! use lock_sm::{LockState, LockType, Machine};
//!
//! let m = Machine::Simple;
//! let auth = LockCtx { is_auth: true, ..LockCtx::default() };
//! assert!(can_rdlock(m, LockState::Sync, &auth, Some(8)));
//! assert!(!can_xlock(m, LockState::Sync, &auth, Some(7)));
//!
//! let generic = gcaps_allowed(m, LockState::Sync, LockState::Sync, CapsWho::Any, true, false);
//! assert_eq!(format_caps(shift_caps(generic, LockType::IAuth)), "As");
//! ```
//!
//! **3. Starting a transition.** The Locker may only move a lock along an edge this crate
//! lists. From SYNC, `simple_lock` goes to the transitional state SYNC_LOCK, whose row says it
//! heads to LOCK.
//!
//! ```
//! use lock_sm::transitions::{Initiator, initiated_edges};
//! use lock_sm::{LockState, Machine};
//!
//! let m = Machine::Simple;
//! let edge = initiated_edges(m)
//!     .find(|e| e.from == LockState::Sync && e.via == Initiator::SimpleLock)
//!     .expect("simple_lock starts from SYNC");
//! assert_eq!(edge.to, LockState::SyncLock);
//! assert_eq!(m.row(LockState::SyncLock).next, LockState::Lock);
//! ```
//!
//! **4. Gathering.** A transitional state completes only once nothing its target forbids is
//! still held (§1.8). LOCK does not let clients keep `As`, so the reader's caps must be revoked
//! first; once they are, `eval_gather` may move the lock on.
//!
//! ```
//! use lock_sm::caps::GSHARED;
//! use lock_sm::{GatherState, LockState, Machine, gather_finished, gather_needs};
//!
//! let m = Machine::Simple;
//! let needs = gather_needs(m, LockState::SyncLock, true).expect("a transitional state");
//! assert_eq!(needs.target, LockState::Lock);
//! assert_eq!(needs.caps_any & GSHARED, 0, "nobody keeps As in LOCK");
//!
//! let mut st = GatherState {
//!     is_auth: true,
//!     gather_set_empty: true,
//!     other_issued: GSHARED,
//!     ..GatherState::default()
//! };
//! assert!(!gather_finished(m, LockState::SyncLock, &st), "client 8 still holds As");
//! st.other_issued = 0; // the revocation was acknowledged
//! assert!(gather_finished(m, LockState::SyncLock, &st));
//! ```
//!
//! **5. The xlock path.** Nobody may xlock in LOCK itself: `simple_xlock` first reserves the
//! lock (LOCK → LOCK_XLOCK, which heads to PREXLOCK), and in PREXLOCK the request may take it.
//! The request then holds XLOCK, and at the early reply XLOCKDONE lets the xlocking client
//! read its own change while everyone else still waits (the `XCL` rule of §4.2).
//!
//! ```
//! use lock_sm::predicates::{LockCtx, can_rdlock, can_xlock};
//! use lock_sm::transitions::{Initiator, initiated_edges};
//! use lock_sm::{LockState, Machine};
//!
//! let m = Machine::Simple;
//! let auth = LockCtx { is_auth: true, ..LockCtx::default() };
//! assert!(!can_xlock(m, LockState::Lock, &auth, Some(7)));
//! assert!(initiated_edges(m).any(|e| e.from == LockState::Lock
//!     && e.to == LockState::LockXlock
//!     && e.via == Initiator::SimpleXlock));
//! assert_eq!(m.row(LockState::LockXlock).next, LockState::PreXlock);
//! assert!(can_xlock(m, LockState::PreXlock, &auth, Some(7)));
//!
//! let done = LockCtx { is_auth: true, xlock_by_client: Some(7), excl_client: None };
//! assert!(can_rdlock(m, LockState::XlockDone, &done, Some(7)), "the chmod client");
//! assert!(!can_rdlock(m, LockState::XlockDone, &done, Some(8)), "everyone else");
//! ```
//!
//! **6. librbd's lock uses the same idea.** [`managed_lock`] holds ManagedLock's decisions as
//! pure functions: what a public call does in a given state, and the cookie an owner writes.
//!
//! ```
//! use std::num::NonZeroU64;
//! use lock_sm::managed_lock::{Action, EntryDecision, EntryPoint, State, encode_cookie, entry_decision};
//!
//! // An unlocked image asked to acquire: queue an ACQUIRE_LOCK action.
//! assert_eq!(
//!     entry_decision(EntryPoint::Acquire, State::Unlocked, None),
//!     EntryDecision::Enqueue(Action::AcquireLock)
//! );
//! // Already the owner with nothing queued: done at once.
//! assert_eq!(entry_decision(EntryPoint::Acquire, State::Locked, None), EntryDecision::Complete(0));
//! assert_eq!(encode_cookie(NonZeroU64::new(94489280512).unwrap()), "auto 94489280512");
//! ```
//!
//! The tables themselves can be printed and drawn with `cephlock sm show | export | diagram`;
//! the SVGs in `docs/diagrams/` are generated from them.

pub mod caps;
pub mod gather;
pub mod lock_type;
pub mod managed_lock;
pub mod mlock;
pub mod predicates;
pub mod state;
pub mod table;
pub mod transitions;

pub use caps::CapParseError;
pub use gather::{GatherNeeds, GatherState, gather_finished, gather_needs};
pub use lock_type::{LockType, ObjectKind};
pub use mlock::{Direction, LockAction};
pub use predicates::{CapsWho, ClientId, LockCtx};
pub use state::LockState;
pub use table::{Machine, MachineDef, Perm, StateRow};
