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
//!
//! # A walk through the crate: the seed story in thirty lines
//!
//! Everything below runs on the embedded cluster of `rados-store` with a simulated clock, so it
//! needs no Ceph and no waiting. Each handle is opened on its own cluster connection, as two
//! processes (a VM and a cloud controller) would be.
//!
//! **1. Create an image.** [`create`] writes `rbd_id.<name>`, `rbd_header.<id>` and the
//! `rbd_directory` entry through the `rbd` object class; the default features are layering and
//! exclusive-lock.
//!
//! **2. Open it twice and write.** Opening takes no lock; the first write does (automatic
//! policy, rbd §2.1), so the VM becomes the owner with the cookie `auto <watch handle>`.
//!
//! **3. Snapshot from the other handle.** nova does not own the lock, so its `snap_create`
//! goes over the header's watch/notify to the owner, which runs it and keeps the lock
//! (rbd §5.1, §7). No hand-over happens.
//!
//! **4. Read the snapshot.** A read-only handle opened at the snapshot sees exactly the data
//! written before it; later writes at the head do not change it.
//!
//! **5. The lock moves when nova writes.** A write by a non-owner asks the owner to release
//! (REQUEST_LOCK) and takes the lock cooperatively.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use rados_store::{Cluster, ClusterConfig, SimClock};
//! use rbd_ops::{CreateOptions, Image, OpenOptions, create};
//!
//! let cluster = Cluster::with_clock(Arc::new(SimClock::new()), ClusterConfig::default());
//! cluster.create_pool("rbd").unwrap();
//! let admin = cluster.connect().ioctx("rbd", "").unwrap();
//! // 1. A 1 MiB image with 64 KiB objects.
//! create(&admin, "vm-disk", 1 << 20, &CreateOptions { order: 16, ..CreateOptions::default() }).await?;
//!
//! // 2. Two handles on two connections; the VM's first write takes the lock.
//! let open = |name: &'static str| {
//!     let io = cluster.connect().ioctx("rbd", "").unwrap();
//!     async move { Image::open(&io, name, OpenOptions::default()).await }
//! };
//! let vm = open("vm-disk").await?;
//! let nova = open("vm-disk").await?;
//! vm.write_at(0, b"boot sector").await?;
//! assert!(vm.is_exclusive_lock_owner().await?);
//!
//! // 3. nova's snapshot is forwarded to the VM, which runs it and keeps the lock.
//! nova.snap_create("before-upgrade").await?;
//! assert!(vm.is_exclusive_lock_owner().await?);
//! assert!(!nova.is_exclusive_lock_owner().await?);
//!
//! // 4. The snapshot holds what was written before it, whatever the VM writes next.
//! vm.write_at(0, b"BOOT SECTOR").await?;
//! let io = cluster.connect().ioctx("rbd", "").unwrap();
//! let snap_opts =
//!     OpenOptions { snap_name: Some("before-upgrade".into()), read_only: true, ..OpenOptions::default() };
//! let snap = Image::open(&io, "vm-disk", snap_opts).await?;
//! assert_eq!(snap.read_at(0, 11).await?, b"boot sector");
//! assert_eq!(nova.read_at(0, 11).await?, b"BOOT SECTOR");
//!
//! // 5. nova writes: the VM hands the lock over.
//! nova.write_at(4096, b"cloud-init").await?;
//! assert!(nova.is_exclusive_lock_owner().await?);
//! assert!(!vm.is_exclusive_lock_owner().await?);
//!
//! snap.close().await;
//! vm.close().await;
//! nova.close().await;
//! # Ok::<(), rbd_ops::RbdError>(())
//! # }).unwrap();
//! ```
//!
//! A dead owner is the other half of the story: its watch times out, a waiting writer
//! blocklists it and breaks its lock, and its late writes fail with -EBLOCKLISTED.
//! `cephlock demo` runs the whole story, that part included, and narrates it.

pub mod admin;
pub mod error;
pub mod image;
mod ops;

pub use admin::{CreateOptions, DEFAULT_FEATURES, DEFAULT_ORDER, SUPPORTED_FEATURES, create, list, remove};
pub use error::{RbdError, RbdResult};
pub use image::{Image, ImageInfo, OpenOptions, SnapInfo};
pub use rbd_exclusive_lock::notify::SnapCreateFlags;
pub use rbd_exclusive_lock::{LockConfig, LockMode, ProgressFn};
