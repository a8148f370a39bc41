//! A RADOS-like cluster interface and its embedded backend (work in progress).
//!
//! The RBD exclusive lock and the MDS journal both live on RADOS in Ceph; this crate is that
//! layer for cephlock: objects, xattrs, omap, object classes (`exec`), watch/notify, blocklist
//! and self-managed snapshots behind one async interface, with an in-process backend that is
//! the default everywhere and, later, a librados backend behind a cargo feature.

pub mod error;
pub mod types;

pub use error::{Error, Result};
pub use types::{EntityAddr, EntityName, EntityType, Gid, UTime};
