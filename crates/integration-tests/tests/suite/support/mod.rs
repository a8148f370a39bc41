//! Shared drivers for the suite's scenarios.

pub mod mds;
pub mod rbd;
