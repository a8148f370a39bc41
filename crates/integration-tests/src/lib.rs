//! Workspace-wide tests and the deterministic simulator.
//!
//! [`sim`] is the seeded, single-threaded simulator in the style of FoundationDB and TigerBeetle
//! (STYLE.md): one seed reproduces a whole run of RBD clients on the embedded cluster with a
//! simulated clock, faults, and invariants checked after every step. It lives in a library, not
//! a test file, so the `cephlock sim` command and the test suites run the very same code. The
//! MDS half (`sim::mds`) runs Locker ranks and filesystem clients the same way; the topic-grouped
//! integration suites are still to come; the
//! real-Ceph suite (feature `ceph`) lives under `tests/`. Each crate's own behaviour is tested
//! beside its code instead.

pub mod sim;
