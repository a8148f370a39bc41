//! Ceph's lock state machines as data.
//!
//! The MDS decides everything about a lock (who may read it, who may hold which client
//! capability, where a transition is heading) by looking up a row in one of four `const`
//! tables: simplelock, scatterlock, filelock and locallock. This crate holds those tables, the
//! lock types and capability bits, and the pure predicates computed from them, plus librbd's
//! ManagedLock states and decisions. It has no dependencies, does no I/O and is not async, so
//! every other crate (and every test) can consult it freely.

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
