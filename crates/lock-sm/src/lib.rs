//! Ceph's lock state machines as data.
//!
//! The MDS decides everything about a lock (who may read it, who may hold which client
//! capability, where a transition is heading) by looking up a row in one of four `const`
//! tables: simplelock, scatterlock, filelock and locallock. This crate holds those tables, the
//! lock types and capability bits, and the pure predicates computed from them, plus librbd's
//! ManagedLock states and decisions. It has no dependencies, does no I/O and is not async, so
//! every other crate (and every test) can consult it freely.
