//! RBD format-2 images on `rados-store`: image handles, I/O gated by the exclusive lock, and
//! maintenance operations run by the lock owner, locally or forwarded to it (rbd spec §2.11,
//! §2.12, §5, §6.1, §7).
//!
//! The seed scenario this crate exists for (rbd §7): a VM writes to an image while a cloud
//! controller snapshots and resizes it. The controller's requests reach the VM's handle, which
//! owns the lock and runs them (pausing its own writes for the snapshot); the VM keeps the lock;
//! the snapshot holds exactly the data written before it.
//!
//! * [`admin`]: create / remove / list images (`rbd_id.<name>`, `rbd_header.<id>`,
//!   `rbd_directory`, data objects `rbd_data.<id>.<16 hex>`), all through the `rbd` class.
//! * [`Image`]: open (read-write, read-only, at a snapshot), refresh on HEADER_UPDATE,
//!   `read_at` / `write_at` / `discard` / `flush`, the public lock API, and the maintenance ops
//!   (`snap_create`, `resize`, `snap_remove`, `snap_rename`, `snap_protect`, `snap_unprotect`,
//!   `snap_rollback`, `rename`, `update_features`, `metadata_set` / `metadata_remove`).
//! * [`RbdError`]: typed errors that keep librbd's errno.

pub mod admin;
pub mod error;
pub mod image;
mod ops;

pub use admin::{CreateOptions, DEFAULT_FEATURES, DEFAULT_ORDER, SUPPORTED_FEATURES, create, list, remove};
pub use error::{RbdError, RbdResult};
pub use image::{Image, ImageInfo, OpenOptions, SnapInfo};
pub use rbd_exclusive_lock::notify::SnapCreateFlags;
pub use rbd_exclusive_lock::{LockConfig, LockMode, ProgressFn};
