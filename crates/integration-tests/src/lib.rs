//! Workspace-wide tests (not yet filled).
//!
//! This crate will hold the suites that span crates: the seeded, single-threaded simulator of
//! MDS ranks, filesystem clients and RBD clients with its invariants (safety and liveness
//! phases), topic-grouped integration suites, and the real-Ceph suite that runs only when a
//! cluster is configured. Each crate's own behaviour is tested beside its code instead.
