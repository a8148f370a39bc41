//! librbd's exclusive lock: one owner per RBD image, cooperative hand-over, dead owners fenced,
//! and the notify messages that let any client ask the owner to act (rbd spec §0–§4).
//!
//! # Layers
//!
//! * [`managed_lock`]: ManagedLock (rbd §1), the generic lock state machine: the action queue
//!   with coalescing, acquire / try-lock / reacquire / release / shut down, and the GetLocker,
//!   Acquire, Break, Release and Reacquire sub-requests ([`requests`]) over `rados-store`. Every
//!   decision comes from `lock_sm::managed_lock`; this crate only runs them.
//! * [`exclusive_lock`]: ExclusiveLock (rbd §2), the image layer on top: the acquire and release
//!   hooks (which call [`exclusive_lock::ImageLockHooks`], implemented by the image layer),
//!   WAITING_FOR_LOCK and the hand-over policies, request and op admission.
//! * [`image_watcher`]: ImageWatcher (rbd §3), the header watch and everything said through it:
//!   lock announcements, the REQUEST_LOCK protocol, header updates, forwarded maintenance ops
//!   ([`async_requests`]) and quiesce. The bytes are [`notify`]'s.
//!
//! # Opening the lock of an image handle
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use rados_store::{Cluster, ClusterConfig, SimClock};
//! use rbd_exclusive_lock::{ExclusiveLock, ImageWatcher, LockConfig, NoImageHooks, NoNotifyHandler};
//!
//! let clock = Arc::new(SimClock::new());
//! let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
//! cluster.create_pool("rbd").unwrap();
//! let ioctx = cluster.connect().ioctx("rbd", "").unwrap();
//! ioctx.create("rbd_header.1234", false).await.unwrap();
//!
//! let config = LockConfig::default();
//! let watcher =
//!     ImageWatcher::register(ioctx, "1234", clock, config, Arc::new(NoNotifyHandler)).await.unwrap();
//! let lock = ExclusiveLock::create(watcher.clone(), Arc::new(NoImageHooks)).await;
//! lock.acquire_lock().await.unwrap();
//! assert!(lock.is_lock_owner());
//! assert_eq!(lock.managed_lock().cookie(), format!("auto {}", watcher.watch_handle()));
//!
//! lock.shut_down().await.unwrap();
//! watcher.unregister().await;
//! # });
//! ```
//!
//! # What the image layer uses
//!
//! * Open: [`ImageWatcher::register`] (every writable handle), then, when the image has the
//!   exclusive-lock feature, [`ExclusiveLock::create`] with the image's [`ImageLockHooks`].
//!   Close: [`ExclusiveLock::shut_down`], then [`ImageWatcher::unregister`].
//! * I/O: [`ExclusiveLock::start_op_acquiring`] admits a write the way librbd's lock dispatch
//!   layer does (automatic policy: take the lock, asking the owner to hand over; standard policy:
//!   -EROFS); the returned [`OpGuard`] keeps a release waiting until the write is done.
//! * Maintenance ops: a non-owner forwards them with [`ImageWatcher::notify_async_request`]
//!   (request id from [`next_request_id`], reused on retries); the owner runs them in
//!   [`ImageNotifyHandler::execute_operation`], reporting through [`ProgressReporter`].
//!   Afterwards [`ImageWatcher::notify_header_update`]; snapshots use
//!   [`ImageWatcher::notify_quiesce`] / [`ImageWatcher::notify_unquiesce`].
//! * The public lock API of rbd §2.12: [`ExclusiveLock::lock_acquire`], `lock_release`,
//!   `lock_get_owners`, `lock_break`, `is_exclusive_lock_owner`.
//!
//! # Invariants
//!
//! * At most one owner per image: ownership is the cls lock `rbd_lock` (tag `internal`, cookie
//!   `auto <watch handle>`) on `rbd_header.<id>`, and an owner's lock is only broken after the
//!   owner is shown dead (no matching watch) and, by default, blocklisted.
//! * Nothing here sleeps on the system clock: every timer runs on the cluster's `Clock`.

pub mod async_requests;
pub mod config;
pub mod error;
pub mod exclusive_lock;
pub mod image_watcher;
pub mod managed_lock;
pub mod notify;
pub mod requests;

pub use async_requests::{ProgressFn, next_request_id};
pub use config::LockConfig;
pub use error::{LockError, LockResult};
pub use exclusive_lock::{ExclusiveLock, ImageLockHooks, LockMode, NoImageHooks, OpGuard, RequestType};
pub use image_watcher::{ImageNotifyHandler, ImageWatcher, NoNotifyHandler, ProgressReporter, header_oid};
pub use lock_sm::managed_lock::{Action, Locker, Policy, State};
pub use managed_lock::{LockWatcher, ManagedLock, ManagedLockHooks, ManagedLockOptions, PassThroughHooks};
