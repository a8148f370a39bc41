//! The seam between the client-facing API and a cluster implementation.
//!
//! [`crate::IoCtx`] and [`crate::Client`] are thin, backend-independent wrappers; everything they
//! do goes through one [`ClientBackend`], the equivalent of one librados `Rados` connection. The
//! trait is deliberately the shape of librados itself (op vectors, `exec`, watch/notify, self-
//! managed snaps, one monitor command), so a later backend on a real cluster implements each
//! method with one or two librados calls, and code written against the embedded backend keeps
//! working unchanged.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::ops::{ReadOp, ReadResult, WriteOp};
use crate::snap::{SnapContext, SnapId, SnapSetInfo};
use crate::types::{EntityAddr, Gid, UTime};
use crate::watch::{NotifyError, NotifyReply, WatchCtx, WatcherInfo};

/// A pool's numeric id.
pub type PoolId = i64;

/// Where an object lives: pool, namespace ("" is the default namespace) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectLocator<'a> {
    /// The pool.
    pub pool: PoolId,
    /// The namespace within the pool.
    pub namespace: &'a str,
    /// The object's name.
    pub oid: &'a str,
}

/// One client connection to a cluster (librados' `Rados` handle), as seen by the API layer.
///
/// Every call fails with [`crate::Error::Blocklisted`] once the client's address is blocklisted,
/// and with `-ENOTCONN` once the client is gone. Calls on one object are applied in the order
/// they are issued (first polled).
#[async_trait]
pub trait ClientBackend: Send + Sync + fmt::Debug {
    /// This connection's global id; its entity name is `client.<gid>`.
    fn gid(&self) -> Gid;
    /// This connection's address (`<ip>:<port>/<nonce>`).
    fn addr(&self) -> EntityAddr;
    /// The cluster's notion of now. Callers that timestamp or time out against cluster state
    /// (lock expiry, watch timeouts) use this rather than the system clock.
    fn now(&self) -> UTime;

    /// The clock [`ClientBackend::now`] reads, for callers that must also *wait* on cluster
    /// time (lock request retries, notify and watch timeouts): the embedded cluster's clock,
    /// which a simulator advances by hand, or the system clock on a real cluster.
    fn clock(&self) -> std::sync::Arc<dyn crate::clock::Clock>;

    /// The id of the pool with this name; -ENOENT if there is none.
    fn pool_lookup(&self, name: &str) -> Result<PoolId>;
    /// Creates a pool; -EEXIST if the name is taken.
    async fn pool_create(&self, name: &str) -> Result<PoolId>;

    /// Applies a write op vector atomically under a snap context.
    async fn operate_write(&self, loc: ObjectLocator<'_>, snapc: &SnapContext, op: &WriteOp) -> Result<()>;
    /// Evaluates a read op vector against the head (`snap` None) or a snapshot.
    async fn operate_read(
        &self,
        loc: ObjectLocator<'_>,
        snap: Option<SnapId>,
        op: &ReadOp,
    ) -> Result<Vec<ReadResult>>;
    /// Runs one object-class method and returns its output. A method flagged WR runs as a write
    /// (under `snapc`; -EROFS when reading at a snapshot); otherwise it runs as a read at `snap`.
    async fn exec(
        &self,
        loc: ObjectLocator<'_>,
        snapc: &SnapContext,
        snap: Option<SnapId>,
        class: &str,
        method: &str,
        input: &[u8],
    ) -> Result<Vec<u8>>;
    /// Object names in a pool, sorted; `namespace` None lists every namespace.
    async fn list_objects(&self, pool: PoolId, namespace: Option<&str>) -> Result<Vec<(String, String)>>;

    /// Registers a watch on an existing object; returns its non-zero handle.
    async fn watch(&self, loc: ObjectLocator<'_>, ctx: Arc<dyn WatchCtx>) -> Result<u64>;
    /// Removes one of this client's watches; -ENOENT if it does not exist.
    async fn unwatch(&self, handle: u64) -> Result<()>;
    /// Ok while the watch is registered; its error otherwise (-ENOTCONN, -EBLOCKLISTED).
    async fn watch_check(&self, handle: u64) -> Result<()>;
    /// Notifies every watcher of the object and collects their acks (see [`NotifyReply`]).
    /// A zero `timeout` means the cluster default.
    async fn notify(
        &self,
        loc: ObjectLocator<'_>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<NotifyReply, NotifyError>;
    /// Acknowledges a notify received on one of this client's watches.
    async fn notify_ack(
        &self,
        loc: ObjectLocator<'_>,
        notify_id: u64,
        handle: u64,
        reply: &[u8],
    ) -> Result<()>;
    /// The object's current watchers, sorted by cookie.
    async fn list_watchers(&self, loc: ObjectLocator<'_>) -> Result<Vec<WatcherInfo>>;

    /// Allocates a self-managed snap id in the pool.
    async fn selfmanaged_snap_create(&self, pool: PoolId) -> Result<SnapId>;
    /// Releases a self-managed snap id; clones only it needed are trimmed.
    async fn selfmanaged_snap_remove(&self, pool: PoolId, snap: SnapId) -> Result<()>;
    /// The object's clones and snap sequence (`rados listsnaps`).
    async fn list_snaps(&self, loc: ObjectLocator<'_>) -> Result<SnapSetInfo>;

    /// Asks the monitors to blocklist an address (`osd blocklist add`), for `expire` (zero =
    /// the monitor default, one hour). Returns when the entry is in effect, with its expiry.
    async fn blocklist_add(&self, addr: &EntityAddr, expire: Duration) -> Result<UTime>;
}
