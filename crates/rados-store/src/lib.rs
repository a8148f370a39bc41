//! A RADOS-like cluster interface and its embedded backend.
//!
//! The RBD exclusive lock and the MDS journal both live on RADOS in Ceph; this crate is that
//! layer for cephlock: objects, xattrs, omap, object classes (`exec`), watch/notify, blocklist
//! and self-managed snapshots behind one async interface, with an in-process backend that is
//! the default everywhere (demo, tests, simulation) and a librados backend (feature `librados`)
//! behind the same interface. Semantics follow librados and the OSD (rbd spec §0, §1.6, §3.1, §4.1, §6;
//! real-ceph §3, §5), so code written against the embedded cluster behaves the same on Ceph.
//!
//! # Layers
//!
//! * [`Client`] and [`IoCtx`]: the API callers use, shaped like librados' `Rados` and `IoCtx`.
//! * [`backend::ClientBackend`]: the seam every call goes through (op vectors, `exec`,
//!   watch/notify, snaps, blocklist). [`Cluster`] (the embedded backend) implements it.
//! * [`cls`]: object classes, run atomically against one object; the `lock` class is built in.
//! * [`Clock`]: the only source of time, so a [`SimClock`] replays a run exactly.
//!
//! # Walkthrough
//!
//! **1. Objects and watch/notify.** Two clients of one cluster share a pool; one watches an
//! object, the other notifies it and collects every watcher's ack. This is how librbd clients
//! on one image talk to each other.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rados_store::{Cluster, ClusterConfig, SimClock, WatchEvent, watch_channel};
//!
//! let clock = Arc::new(SimClock::new());
//! let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
//! cluster.create_pool("rbd").unwrap();
//! let a = cluster.connect().ioctx("rbd", "").unwrap();
//! let b = cluster.connect().ioctx("rbd", "").unwrap();
//!
//! a.write_full("rbd_header.1", b"hello").await.unwrap();
//! assert_eq!(b.read("rbd_header.1", 0, 0).await.unwrap(), b"hello");
//!
//! // b watches; a notifies; b's task acks with a reply.
//! let (ctx, mut events) = watch_channel();
//! let handle = b.watch("rbd_header.1", ctx).await.unwrap();
//! let b2 = b.clone();
//! tokio::spawn(async move {
//!     if let Some(WatchEvent::Notify(ev)) = events.recv().await {
//!         b2.notify_ack("rbd_header.1", ev.notify_id, ev.handle, b"pong").await.unwrap();
//!     }
//! });
//! let reply = a.notify("rbd_header.1", b"ping", Duration::from_secs(5)).await.unwrap();
//! assert_eq!(reply.acks[0].cookie, handle);
//! assert_eq!(reply.acks[0].reply, b"pong");
//! # });
//! ```
//!
//! **2. A cls lock, and fencing a dead holder.** The `lock` object class keeps lockers in the
//! object's xattrs, atomically. A second client is refused with -EBUSY; if the holder is dead it
//! is blocklisted first and its lock broken, and from then on the cluster refuses the old
//! holder's writes (rbd spec §1.6.3, §2.13). Time comes from the [`SimClock`], so nothing waits.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rados_store::cls_lock_client::{self as cls_lock, LockType};
//! use rados_store::{Cluster, ClusterConfig, Error, SimClock};
//!
//! let cluster = Cluster::with_clock(Arc::new(SimClock::new()), ClusterConfig::default());
//! cluster.create_pool("rbd").unwrap();
//! let (owner, other) = (cluster.connect(), cluster.connect());
//! let (a, b) = (owner.ioctx("rbd", "").unwrap(), other.ioctx("rbd", "").unwrap());
//! a.create("rbd_header.1", false).await.unwrap();
//!
//! let take = |io, cookie| async move {
//!     let (excl, forever) = (LockType::Exclusive, Duration::ZERO);
//!     cls_lock::lock(io, "rbd_header.1", "rbd_lock", excl, cookie, "internal", "", forever, 0).await
//! };
//! take(&a, "auto 1").await.unwrap();
//! assert!(matches!(take(&b, "auto 2").await, Err(Error::Busy(_))));
//!
//! // The holder is presumed dead: fence it, then break its lock and take it.
//! b.client().blocklist_add(&owner.addr(), Duration::ZERO).await.unwrap();
//! cls_lock::break_lock(&b, "rbd_header.1", "rbd_lock", "auto 1", owner.entity()).await.unwrap();
//! take(&b, "auto 2").await.unwrap();
//! let info = cls_lock::get_lock_info(&b, "rbd_header.1", "rbd_lock").await.unwrap();
//! assert_eq!(info.lockers.keys().next().unwrap().entity, other.entity());
//!
//! // The fenced client's late write is refused.
//! assert!(matches!(a.write_full("rbd_data.1.0", b"late").await, Err(Error::Blocklisted)));
//! # });
//! ```

pub mod backend;
pub mod clock;
pub mod cls;
pub mod cls_lock_client;
pub mod cls_rbd_client;
pub mod embedded;
pub mod encoding;
pub mod error;
pub mod ioctx;
#[cfg(feature = "librados")]
pub mod librados;
pub mod names;
pub mod ops;
pub mod snap;
pub mod types;
pub mod watch;

pub use backend::{ClientBackend, ObjectLocator, PoolId};
pub use clock::{Clock, SimClock, SystemClock};
pub use cls::{CLS_METHOD_RD, CLS_METHOD_WR, ClassRegistry, ClsContext, ClsMethod};
pub use embedded::{Cluster, ClusterConfig};
pub use error::{Error, Result};
pub use ioctx::{Client, IoCtx};
pub use ops::{ObjectStat, ReadOp, ReadOpKind, ReadResult, WriteOp, WriteOpKind};
pub use snap::{CloneInfo, SnapContext, SnapId, SnapSetInfo};
pub use types::{EntityAddr, EntityName, EntityType, Gid, UTime};
pub use watch::{
    NotifyAck, NotifyError, NotifyEvent, NotifyReply, WatchCtx, WatchEvent, WatcherId, WatcherInfo,
    watch_channel,
};
