//! The workspace integration suite (issue 9): end-to-end stories that cross crates, one module
//! per topic and one file per scenario (`tNN_<name>.rs`), all in one test binary so the
//! workspace pays for one link, not one per topic.
//!
//! Every scenario is deterministic: RBD stories run on rados-store's embedded cluster with a
//! `SimClock` and paused tokio time on one thread (no real sleeps; the 30 s watch timeout
//! passes when a test advances the clock), MDS stories run the in-process `Cluster` or one
//! `runtime::Rank` on an in-memory or fault-injecting journal device. Each cites the spec
//! section it checks (`rbd §N` for /work/shared/spec/rbd-exclusive-lock.md, `mds §N` for
//! mds-locks.md). A crate's own unit behaviour is left to that crate's tests; what is checked
//! here is what only shows when the crates run together.

mod support;

mod journal_replay;
mod mds_stories;
mod rank_failover;
mod rbd_fencing;
mod rbd_stories;
