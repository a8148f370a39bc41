//! The client-facing API: [`Client`] (one connection) and [`IoCtx`] (one pool and namespace).
//!
//! These mirror librados' `Rados` and `IoCtx` so that the exclusive lock, the rbd operations and
//! the MDS journal read like their Ceph counterparts. They hold no cluster state of their own:
//! every call becomes one op on the connection's [`ClientBackend`], which is what lets a real
//! cluster replace the embedded one later.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backend::{ClientBackend, ObjectLocator, PoolId};
use crate::error::{Error, Result, errno};
use crate::names;
use crate::ops::{ObjectStat, ReadOp, ReadResult, WriteOp};
use crate::snap::{SnapContext, SnapId, SnapSetInfo};
use crate::types::{EntityAddr, EntityName, Gid, UTime};
use crate::watch::{NotifyError, NotifyReply, WatchCtx, WatcherInfo};

/// One client connection (librados' `Rados`): a gid, an address, and access to pools.
///
/// Cheap to clone; clones are the same connection.
#[derive(Clone)]
pub struct Client {
    backend: Arc<dyn ClientBackend>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("gid", &self.gid()).field("addr", &self.addr().to_string()).finish()
    }
}

impl Client {
    /// Wraps a backend connection.
    pub fn from_backend(backend: Arc<dyn ClientBackend>) -> Self {
        Client { backend }
    }

    /// The backend connection (for backend-specific extensions).
    pub fn backend(&self) -> &Arc<dyn ClientBackend> {
        &self.backend
    }

    /// The global id.
    pub fn gid(&self) -> Gid {
        self.backend.gid()
    }

    /// The entity name, `client.<gid>`: what cls_lock records as a locker (rbd §0.1).
    pub fn entity(&self) -> EntityName {
        EntityName::client(self.gid())
    }

    /// The address; its string form is what lock owners are compared and blocklisted by.
    pub fn addr(&self) -> EntityAddr {
        self.backend.addr()
    }

    /// The cluster's notion of now.
    pub fn now(&self) -> UTime {
        self.backend.now()
    }

    /// The cluster's clock, to wait on cluster time (see [`ClientBackend::clock`]).
    pub fn clock(&self) -> Arc<dyn crate::clock::Clock> {
        self.backend.clock()
    }

    /// An I/O context on a pool (by name) and namespace ("" = default); -ENOENT if no such
    /// pool, -EINVAL / -ENAMETOOLONG for a bad namespace.
    pub fn ioctx(&self, pool: &str, namespace: &str) -> Result<IoCtx> {
        names::validate_pool_name(pool)?;
        names::validate_namespace(namespace)?;
        let pool_id = self.backend.pool_lookup(pool)?;
        Ok(IoCtx {
            backend: self.backend.clone(),
            pool: pool_id,
            pool_name: Arc::from(pool),
            namespace: Arc::from(namespace),
            snaps: Arc::new(RwLock::new(SnapSettings::default())),
        })
    }

    /// Creates a pool; -EEXIST if it exists.
    pub async fn pool_create(&self, name: &str) -> Result<PoolId> {
        names::validate_pool_name(name)?;
        self.backend.pool_create(name).await
    }

    /// Blocklists an address through the monitors, as librbd's lock breaker does (rbd §1.6.3
    /// step 4). `expire` zero means the monitor default (one hour).
    pub async fn blocklist_add(&self, addr: &EntityAddr, expire: Duration) -> Result<UTime> {
        self.backend.blocklist_add(addr, expire).await
    }
}

#[derive(Debug, Clone, Default)]
struct SnapSettings {
    write: SnapContext,
    read: Option<SnapId>,
}

/// An I/O context: one client's handle on one pool and namespace (librados' `IoCtx`).
///
/// Cheap to clone. Clones share the write snap context and the read snapshot, as threads sharing
/// one librados `IoCtx` do; use [`IoCtx::dup`] for an independent copy.
#[derive(Clone)]
pub struct IoCtx {
    backend: Arc<dyn ClientBackend>,
    pool: PoolId,
    pool_name: Arc<str>,
    namespace: Arc<str>,
    snaps: Arc<RwLock<SnapSettings>>,
}

impl fmt::Debug for IoCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoCtx")
            .field("gid", &self.client_gid())
            .field("pool", &self.pool_name)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl IoCtx {
    fn loc<'a>(&'a self, oid: &'a str) -> Result<ObjectLocator<'a>> {
        names::validate_object_name(oid)?;
        Ok(ObjectLocator { pool: self.pool, namespace: &self.namespace, oid })
    }

    fn settings(&self) -> SnapSettings {
        self.snaps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The write path refuses to run while reading at a snapshot, as librados does.
    fn write_snapc(&self) -> Result<SnapContext> {
        let s = self.settings();
        if let Some(snap) = s.read {
            return Err(Error::Os {
                errno: errno::EROFS,
                context: format!("I/O context reads at snap {snap}; writes are refused"),
            });
        }
        Ok(s.write)
    }

    /// An independent copy with its own snap settings (librados `IoCtx::dup`).
    pub fn dup(&self) -> IoCtx {
        IoCtx { snaps: Arc::new(RwLock::new(self.settings())), ..self.clone() }
    }

    /// The connection's gid.
    pub fn client_gid(&self) -> Gid {
        self.backend.gid()
    }

    /// The connection's entity name, `client.<gid>`.
    pub fn entity(&self) -> EntityName {
        EntityName::client(self.client_gid())
    }

    /// The connection's address.
    pub fn addr(&self) -> EntityAddr {
        self.backend.addr()
    }

    /// The cluster's notion of now.
    pub fn now(&self) -> UTime {
        self.backend.now()
    }

    /// The cluster's clock, to wait on cluster time (see [`ClientBackend::clock`]).
    pub fn clock(&self) -> Arc<dyn crate::clock::Clock> {
        self.backend.clock()
    }

    /// The pool id.
    pub fn pool_id(&self) -> PoolId {
        self.pool
    }

    /// The pool name.
    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    /// The namespace ("" = default).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The connection this context belongs to.
    pub fn client(&self) -> Client {
        Client { backend: self.backend.clone() }
    }

    // ----- compound ops -----

    /// Applies a compound write atomically (all sub-ops or none), under the current snap
    /// context.
    pub async fn operate_write(&self, oid: &str, op: &WriteOp) -> Result<()> {
        let snapc = self.write_snapc()?;
        self.backend.operate_write(self.loc(oid)?, &snapc, op).await
    }

    /// Evaluates a compound read against one consistent state of the object, at the current
    /// read snapshot. One result per sub-read, in order.
    pub async fn operate_read(&self, oid: &str, op: &ReadOp) -> Result<Vec<ReadResult>> {
        let snap = self.settings().read;
        self.backend.operate_read(self.loc(oid)?, snap, op).await
    }

    async fn read_one(&self, oid: &str, op: ReadOp) -> Result<ReadResult> {
        let mut results = self.operate_read(oid, &op).await?;
        results.pop().ok_or_else(|| Error::from_errno(errno::EIO, "backend returned no read result"))
    }

    fn unexpected(what: &str, got: &ReadResult) -> Error {
        Error::from_errno(errno::EIO, format!("backend answered {what} with {got:?}"))
    }

    // ----- objects -----

    /// Size and mtime; -ENOENT if missing.
    pub async fn stat(&self, oid: &str) -> Result<ObjectStat> {
        match self.read_one(oid, ReadOp::new().stat()).await? {
            ReadResult::Stat(s) => Ok(s),
            other => Err(Self::unexpected("stat", &other)),
        }
    }

    /// Whether the object exists (at the read snapshot).
    pub async fn exists(&self, oid: &str) -> Result<bool> {
        match self.stat(oid).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Up to `len` bytes from `offset` (`len` 0 = to the end); -ENOENT if missing.
    pub async fn read(&self, oid: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self.read_one(oid, ReadOp::new().read(offset, len)).await? {
            ReadResult::Data(d) => Ok(d),
            other => Err(Self::unexpected("read", &other)),
        }
    }

    /// Writes at an offset, creating the object.
    pub async fn write(&self, oid: &str, offset: u64, data: &[u8]) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().write(offset, data)).await
    }

    /// Replaces the object's data, creating it.
    pub async fn write_full(&self, oid: &str, data: &[u8]) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().write_full(data)).await
    }

    /// Appends, creating the object.
    pub async fn append(&self, oid: &str, data: &[u8]) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().append(data)).await
    }

    /// Sets the size (no-op on a missing object).
    pub async fn truncate(&self, oid: &str, size: u64) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().truncate(size)).await
    }

    /// Zeroes a range inside the object (no-op on a missing object).
    pub async fn zero(&self, oid: &str, offset: u64, len: u64) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().zero(offset, len)).await
    }

    /// Creates the object; with `exclusive`, -EEXIST if it exists.
    pub async fn create(&self, oid: &str, exclusive: bool) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().create(exclusive)).await
    }

    /// Deletes the object; -ENOENT if missing.
    pub async fn remove(&self, oid: &str) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().remove()).await
    }

    /// Object names in this namespace, sorted.
    pub async fn list_objects(&self) -> Result<Vec<String>> {
        let all = self.backend.list_objects(self.pool, Some(&self.namespace)).await?;
        Ok(all.into_iter().map(|(_, oid)| oid).collect())
    }

    /// (namespace, name) of every object in the pool, sorted.
    pub async fn list_objects_all_namespaces(&self) -> Result<Vec<(String, String)>> {
        self.backend.list_objects(self.pool, None).await
    }

    // ----- xattrs -----

    /// One xattr: -ENOENT if the object is missing, -ENODATA if the attribute is.
    pub async fn getxattr(&self, oid: &str, name: &str) -> Result<Vec<u8>> {
        names::validate_xattr_name(name)?;
        match self.read_one(oid, ReadOp::new().getxattr(name)).await? {
            ReadResult::Xattr(v) => Ok(v),
            other => Err(Self::unexpected("getxattr", &other)),
        }
    }

    /// All xattrs; -ENOENT if the object is missing.
    pub async fn getxattrs(&self, oid: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        match self.read_one(oid, ReadOp::new().getxattrs()).await? {
            ReadResult::Xattrs(m) => Ok(m),
            other => Err(Self::unexpected("getxattrs", &other)),
        }
    }

    /// Sets an xattr, creating the object.
    pub async fn setxattr(&self, oid: &str, name: &str, value: &[u8]) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().setxattr(name, value)).await
    }

    /// Removes an xattr; -ENOENT if the object is missing.
    pub async fn rmxattr(&self, oid: &str, name: &str) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().rmxattr(name)).await
    }

    // ----- omap -----

    /// Up to `max` omap entries after `start_after` ("" = from the start), and whether more
    /// follow; -ENOENT if the object is missing.
    pub async fn omap_get_vals(
        &self,
        oid: &str,
        start_after: &str,
        max: u64,
    ) -> Result<(BTreeMap<String, Vec<u8>>, bool)> {
        self.omap_get_vals_with_prefix(oid, start_after, "", max).await
    }

    /// As [`IoCtx::omap_get_vals`], restricted to keys starting with `prefix`.
    pub async fn omap_get_vals_with_prefix(
        &self,
        oid: &str,
        start_after: &str,
        prefix: &str,
        max: u64,
    ) -> Result<(BTreeMap<String, Vec<u8>>, bool)> {
        match self.read_one(oid, ReadOp::new().omap_get_vals(start_after, prefix, max)).await? {
            ReadResult::OmapVals { entries, more } => Ok((entries, more)),
            other => Err(Self::unexpected("omap_get_vals", &other)),
        }
    }

    /// Up to `max` omap keys after `start_after`, and whether more follow.
    pub async fn omap_get_keys(&self, oid: &str, start_after: &str, max: u64) -> Result<(Vec<String>, bool)> {
        match self.read_one(oid, ReadOp::new().omap_get_keys(start_after, max)).await? {
            ReadResult::OmapKeys { keys, more } => Ok((keys, more)),
            other => Err(Self::unexpected("omap_get_keys", &other)),
        }
    }

    /// The values of those `keys` that exist.
    pub async fn omap_get_vals_by_keys(&self, oid: &str, keys: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
        let set: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        match self.read_one(oid, ReadOp::new().omap_get_vals_by_keys(set)).await? {
            ReadResult::OmapVals { entries, .. } => Ok(entries),
            other => Err(Self::unexpected("omap_get_vals_by_keys", &other)),
        }
    }

    /// Sets omap entries, creating the object.
    pub async fn omap_set(&self, oid: &str, entries: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().omap_set(entries.clone())).await
    }

    /// Removes omap keys; -ENOENT if the object is missing.
    pub async fn omap_rm_keys(&self, oid: &str, keys: &[&str]) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().omap_rm_keys(keys.iter().copied())).await
    }

    /// Removes every omap entry; -ENOENT if the object is missing.
    pub async fn omap_clear(&self, oid: &str) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().omap_clear()).await
    }

    // ----- object classes -----

    /// Runs `class.method` on the object and returns its output; -EOPNOTSUPP for an unknown
    /// class or method. The method applies atomically: on error the object is unchanged.
    pub async fn exec(&self, oid: &str, class: &str, method: &str, input: &[u8]) -> Result<Vec<u8>> {
        names::validate_cls_name("class", class)?;
        names::validate_cls_name("method", method)?;
        let s = self.settings();
        self.backend.exec(self.loc(oid)?, &s.write, s.read, class, method, input).await
    }

    // ----- watch / notify -----

    /// Watches an existing object (-ENOENT otherwise); returns the non-zero handle that
    /// `list_watchers` reports as the cookie.
    pub async fn watch(&self, oid: &str, ctx: Arc<dyn WatchCtx>) -> Result<u64> {
        self.backend.watch(self.loc(oid)?, ctx).await
    }

    /// Removes a watch of this connection.
    pub async fn unwatch(&self, handle: u64) -> Result<()> {
        self.backend.unwatch(handle).await
    }

    /// Ok while the watch is registered; -ENOTCONN or -EBLOCKLISTED once it is broken.
    pub async fn watch_check(&self, handle: u64) -> Result<()> {
        self.backend.watch_check(handle).await
    }

    /// Notifies every watcher of the object (this connection's own watches included) and waits
    /// for their acks or the timeout (zero = the cluster default). On -ETIMEDOUT the error
    /// still carries every ack that arrived.
    pub async fn notify(
        &self,
        oid: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<NotifyReply, NotifyError> {
        self.backend.notify(self.loc(oid)?, payload, timeout).await
    }

    /// Answers a notify received on one of this connection's watches.
    pub async fn notify_ack(&self, oid: &str, notify_id: u64, handle: u64, reply: &[u8]) -> Result<()> {
        self.backend.notify_ack(self.loc(oid)?, notify_id, handle, reply).await
    }

    /// The object's watchers: (address, gid, cookie), sorted by cookie; -ENOENT if missing.
    pub async fn list_watchers(&self, oid: &str) -> Result<Vec<WatcherInfo>> {
        self.backend.list_watchers(self.loc(oid)?).await
    }

    // ----- self-managed snapshots -----

    /// Allocates a snap id in this pool.
    pub async fn selfmanaged_snap_create(&self) -> Result<SnapId> {
        self.backend.selfmanaged_snap_create(self.pool).await
    }

    /// Releases a snap id; clones kept only for it are trimmed.
    pub async fn selfmanaged_snap_remove(&self, snap: SnapId) -> Result<()> {
        self.backend.selfmanaged_snap_remove(self.pool, snap).await
    }

    /// Sets the snap context sent with every later write (librados
    /// `selfmanaged_snap_set_write_ctx`); -EINVAL if it is malformed.
    pub fn set_snap_write_context(&self, snapc: SnapContext) -> Result<()> {
        if !snapc.is_valid() {
            return Err(Error::InvalidArgument(format!("invalid snap context {snapc:?}")));
        }
        self.snaps.write().unwrap_or_else(|e| e.into_inner()).write = snapc;
        Ok(())
    }

    /// The snap context writes currently carry.
    pub fn snap_write_context(&self) -> SnapContext {
        self.settings().write
    }

    /// Reads (and `exec` of read-only methods) see the object as of `snap`; None = the head.
    /// While a snap is set, writes fail with -EROFS.
    pub fn set_read_snap(&self, snap: Option<SnapId>) {
        self.snaps.write().unwrap_or_else(|e| e.into_inner()).read = snap;
    }

    /// The snapshot reads currently see (None = head).
    pub fn read_snap(&self) -> Option<SnapId> {
        self.settings().read
    }

    /// The object's clones (`rados listsnaps`).
    pub async fn list_snaps(&self, oid: &str) -> Result<SnapSetInfo> {
        self.backend.list_snaps(self.loc(oid)?).await
    }

    /// Restores the object to its state at `snap` (librados `selfmanaged_snap_rollback`).
    pub async fn selfmanaged_snap_rollback(&self, oid: &str, snap: SnapId) -> Result<()> {
        self.operate_write(oid, &WriteOp::new().rollback(snap)).await
    }
}
