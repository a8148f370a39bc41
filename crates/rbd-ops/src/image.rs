//! Image handles: open, refresh, I/O gated by the exclusive lock, and the public lock API.
//!
//! A handle mirrors librbd's `ImageCtx`: cached header state (size, features, snapshots, snap
//! context) refreshed when a peer says the header changed (rbd §3.6), a header watch and an
//! exclusive lock for writable handles at HEAD (rbd §2.1, §3.1), and a write barrier the
//! snapshot and resize paths use to pause writes (rbd §5.6 step 4).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use async_trait::async_trait;
use rados_store::cls_rbd_client::{self as cls, ProtectionStatus, SnapshotNamespace, features};
use rados_store::error::errno;
use rados_store::{Error as StoreError, IoCtx, SnapContext, WatcherInfo};
use rbd_exclusive_lock::notify::{AsyncRequestId, NotifyMessage};
use rbd_exclusive_lock::{
    ExclusiveLock, ImageLockHooks, ImageNotifyHandler, ImageWatcher, LockConfig, LockError, LockMode,
    OpGuard, ProgressReporter,
};

use crate::admin::{self, data_oid, header_oid};
use crate::error::{RbdError, RbdResult};
use crate::ops::OpKind;

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open read-only: no header watch, no exclusive lock, every write and op fails -EROFS
    /// (rbd §2.1, §3.1).
    pub read_only: bool,
    /// Open at this snapshot (implies read-only I/O at the snapshot's data and size).
    pub snap_name: Option<String>,
    /// The lock's tunables (16.2 defaults).
    pub lock_config: LockConfig,
}

/// One snapshot as the handle knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapInfo {
    /// The self-managed snapshot id.
    pub id: u64,
    /// The name.
    pub name: String,
    /// The image size it captured.
    pub size: u64,
    /// Its namespace (user snapshots only are created here).
    pub namespace: SnapshotNamespace,
    /// Protection status.
    pub protection: ProtectionStatus,
}

/// `rbd info`: what the handle's last refresh saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image (or snapshot) size in bytes.
    pub size: u64,
    /// Object size in bytes.
    pub obj_size: u64,
    /// Number of objects covering `size`.
    pub num_objs: u64,
    /// log2 of the object size.
    pub order: u8,
    /// The data objects' prefix (`rbd_data.<id>`).
    pub block_name_prefix: String,
    /// Feature bits.
    pub features: u64,
    /// Snapshots, newest first.
    pub snaps: Vec<SnapInfo>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HeadState {
    pub(crate) size: u64,
    pub(crate) order: u8,
    pub(crate) features: u64,
    pub(crate) snapc: SnapContext,
    pub(crate) snaps: Vec<SnapInfo>,
}

impl HeadState {
    pub(crate) fn snap_by_name(&self, name: &str) -> Option<&SnapInfo> {
        self.snaps.iter().find(|s| s.name == name && s.namespace == SnapshotNamespace::User)
    }
}

/// The lock of the handle, with a generation so a caller can tell whether the lock it failed on
/// is still the current one.
#[derive(Clone)]
pub(crate) struct LockSlot {
    pub(crate) generation: u64,
    pub(crate) lock: ExclusiveLock,
}

pub(crate) struct ImageInner {
    pub(crate) name: Mutex<String>,
    pub(crate) id: String,
    pub(crate) header_oid: String,
    pub(crate) object_prefix: String,
    /// Header I/O: no snap context, no read snapshot (librbd's `md_ctx`).
    pub(crate) md_ctx: IoCtx,
    /// Data I/O: the image's snap context, or the read snapshot of a snapshot handle.
    pub(crate) data_ctx: IoCtx,
    pub(crate) read_only: bool,
    pub(crate) snap_id: Option<u64>,
    pub(crate) state: Mutex<HeadState>,
    pub(crate) refresh_required: AtomicBool,
    refresh_serial: tokio::sync::Mutex<()>,
    pub(crate) watcher: Option<ImageWatcher>,
    lock: Mutex<Option<LockSlot>>,
    lock_generation: AtomicU64,
    /// Writes hold it shared; snapshot create, resize and rollback hold it exclusively
    /// ("block writes", rbd §5.6 step 4). tokio's RwLock queues new readers behind a waiting
    /// writer, which is librbd's "new writes queue up".
    pub(crate) write_block: tokio::sync::RwLock<()>,
    op_serial: Mutex<HashMap<OpKind, Arc<tokio::sync::Mutex<()>>>>,
    closed: AtomicBool,
}

/// An open image (librbd's `Image`). Cheap to clone; clones are the same handle.
#[derive(Clone)]
pub struct Image {
    pub(crate) inner: Arc<ImageInner>,
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("name", &*self.inner.name.lock().unwrap_or_else(|e| e.into_inner()))
            .field("id", &self.inner.id)
            .field("gid", &self.inner.md_ctx.client_gid())
            .field("read_only", &self.inner.read_only)
            .field("snap_id", &self.inner.snap_id)
            .finish()
    }
}

/// The image side of the header watch: marks refreshes and runs forwarded ops (rbd §3.3, §3.6).
#[derive(Default)]
struct NotifyHandler {
    image: OnceLock<Weak<ImageInner>>,
}

impl NotifyHandler {
    fn image(&self) -> Option<Image> {
        self.image.get().and_then(Weak::upgrade).map(|inner| Image { inner })
    }
}

#[async_trait]
impl ImageNotifyHandler for NotifyHandler {
    fn header_updated(&self) {
        if let Some(img) = self.image() {
            img.inner.refresh_required.store(true, Ordering::SeqCst);
        }
    }

    async fn refresh_if_required(&self) {
        if let Some(img) = self.image()
            && let Err(e) = img.refresh_if_required().await
        {
            tracing::warn!(error = %e, "refresh before a forwarded op failed");
        }
    }

    async fn execute_operation(&self, request: &NotifyMessage, progress: ProgressReporter) -> i32 {
        let Some(img) = self.image() else { return -errno::ERESTART };
        img.execute_forwarded(request, progress).await
    }
}

/// The image side of lock transitions (rbd §2.3 step 1). Writes are synchronous here, so there is
/// no cache to flush and nothing queued below the lock layer.
#[derive(Default)]
struct LockHooks {
    image: OnceLock<Weak<ImageInner>>,
}

#[async_trait]
impl ImageLockHooks for LockHooks {
    async fn refresh_if_required(&self) -> i32 {
        let Some(inner) = self.image.get().and_then(Weak::upgrade) else { return 0 };
        match (Image { inner }).refresh_if_required().await {
            Ok(()) => 0,
            Err(e) => e.r(),
        }
    }
}

/// Object extents of a byte range: (object number, offset in object, length, offset in buffer).
pub(crate) fn extents(order: u8, off: u64, len: u64) -> Vec<(u64, u64, u64, u64)> {
    let os = 1u64 << order;
    let mut out = Vec::new();
    let mut pos = off;
    let end = off + len;
    while pos < end {
        let objno = pos >> order;
        let in_obj = pos & (os - 1);
        let n = (os - in_obj).min(end - pos);
        out.push((objno, in_obj, n, pos - off));
        pos += n;
    }
    out
}

/// librbd's `clip_io`: a zero-length request is always valid; one starting at or past the end is
/// -EINVAL; one running past the end is cut at the end.
pub(crate) fn clip_io(size: u64, off: u64, len: u64) -> RbdResult<u64> {
    if len == 0 {
        return Ok(0);
    }
    if off >= size {
        return Err(RbdError::InvalidArgument(format!("offset {off} is at or past the image end {size}")));
    }
    Ok(len.min(size - off))
}

impl Image {
    /// Opens image `name` (librbd `OpenRequest` + `RefreshRequest`). A writable handle at HEAD
    /// watches the header and, with the exclusive-lock feature, gets its lock (not acquired: the
    /// first write or op takes it, rbd §2.1). -ENOENT for an unknown image or snapshot.
    pub async fn open(io: &IoCtx, name: &str, opts: OpenOptions) -> RbdResult<Image> {
        let id = admin::image_id(io, name).await?;
        let md_ctx = io.dup();
        md_ctx.set_read_snap(None);
        md_ctx.set_snap_write_context(SnapContext::empty())?;
        let data_ctx = md_ctx.dup();
        let header = header_oid(&id);
        let object_prefix = cls::get_object_prefix(&md_ctx, &header).await?;
        let read_only = opts.read_only || opts.snap_name.is_some();
        let md = cls::get_mutable_metadata(&md_ctx, &header, read_only).await?;
        let mut snap_id = None;
        if let Some(sn) = &opts.snap_name {
            let mut found = None;
            for &sid in &md.snapc.snaps {
                match cls::snapshot_get(&md_ctx, &header, sid).await {
                    Ok(info) if &info.name == sn && info.snapshot_namespace == SnapshotNamespace::User => {
                        found = Some(sid);
                        break;
                    }
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let sid = found.ok_or_else(|| RbdError::NotFound(format!("no snapshot {sn:?}")))?;
            data_ctx.set_read_snap(Some(sid));
            snap_id = Some(sid);
        }
        let clock = io.clock();
        let handler = Arc::new(NotifyHandler::default());
        // Read-only and snapshot handles register no watch (rbd §3.1).
        let watcher = if opts.read_only {
            None
        } else {
            Some(
                ImageWatcher::register(md_ctx.clone(), &id, clock, opts.lock_config.clone(), handler.clone())
                    .await?,
            )
        };
        let inner = Arc::new(ImageInner {
            name: Mutex::new(name.to_owned()),
            header_oid: header,
            object_prefix,
            md_ctx,
            data_ctx,
            read_only,
            snap_id,
            state: Mutex::new(HeadState::default()),
            refresh_required: AtomicBool::new(false),
            refresh_serial: tokio::sync::Mutex::new(()),
            watcher,
            lock: Mutex::new(None),
            lock_generation: AtomicU64::new(0),
            write_block: tokio::sync::RwLock::new(()),
            op_serial: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            id,
        });
        let _ = handler.image.set(Arc::downgrade(&inner));
        let img = Image { inner };
        if let Err(e) = img.refresh().await {
            img.close().await;
            return Err(e);
        }
        Ok(img)
    }

    /// Closes the handle: shuts the lock down (releasing it, rbd §2.5) and removes the watch.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let slot = self.inner.lock_slot().take();
        if let Some(slot) = slot
            && let Err(e) = slot.lock.shut_down().await
        {
            tracing::debug!(error = %e, "lock shutdown at close");
        }
        if let Some(w) = &self.inner.watcher {
            w.unregister().await;
        }
    }

    // ----- accessors ----------------------------------------------------------------------------

    /// The image name.
    pub fn name(&self) -> String {
        self.inner.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The image id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Whether the handle was opened read-only (or at a snapshot).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The snapshot the handle is opened at, if any.
    pub fn snap_id(&self) -> Option<u64> {
        self.inner.snap_id
    }

    /// The size the handle sees: the head's, or the snapshot's for a snapshot handle.
    pub fn size(&self) -> u64 {
        let st = self.inner.st();
        self.inner.visible_size(&st)
    }

    /// The feature bits of the last refresh.
    pub fn features(&self) -> u64 {
        self.inner.st().features
    }

    /// Snapshots, newest first, as of the last refresh.
    pub fn snaps(&self) -> Vec<SnapInfo> {
        self.inner.st().snaps.clone()
    }

    /// The snap context writes carry (rbd §6.1).
    pub fn snap_context(&self) -> SnapContext {
        self.inner.st().snapc.clone()
    }

    /// `rbd info` after refreshing if a refresh is pending.
    pub async fn info(&self) -> RbdResult<ImageInfo> {
        self.refresh_if_required().await?;
        let st = self.inner.st();
        let size = self.inner.visible_size(&st);
        let obj_size = 1u64 << st.order;
        Ok(ImageInfo {
            size,
            obj_size,
            num_objs: size.div_ceil(obj_size),
            order: st.order,
            block_name_prefix: self.inner.object_prefix.clone(),
            features: st.features,
            snaps: st.snaps.clone(),
        })
    }

    /// The header watch (None for read-only handles).
    pub fn watcher(&self) -> Option<&ImageWatcher> {
        self.inner.watcher.as_ref()
    }

    /// The exclusive lock, when the feature is on and the handle is writable at HEAD.
    pub fn exclusive_lock(&self) -> Option<ExclusiveLock> {
        self.inner.current_lock().map(|s| s.lock)
    }

    /// The header's watchers (`rbd status`), i.e. the clients with the image open read-write.
    pub async fn watchers(&self) -> RbdResult<Vec<WatcherInfo>> {
        Ok(self.inner.md_ctx.list_watchers(&self.inner.header_oid).await?)
    }

    // ----- refresh (rbd §3.6, §6.1) -------------------------------------------------------------

    /// Refreshes if a HEADER_UPDATE (or a finished forwarded op) marked the handle stale.
    pub async fn refresh_if_required(&self) -> RbdResult {
        if self.inner.refresh_required.load(Ordering::SeqCst) { self.refresh().await } else { Ok(()) }
    }

    /// Re-reads the header: size, features, flags, snap context and lock in one compound read,
    /// then the snapshot records. A change of the exclusive-lock feature creates or shuts down the
    /// handle's lock (rbd §2.1 "dynamic disable").
    pub async fn refresh(&self) -> RbdResult {
        let inner = &self.inner;
        let _serial = inner.refresh_serial.lock().await;
        inner.refresh_required.store(false, Ordering::SeqCst);
        let res = self.refresh_locked().await;
        if res.is_err() {
            inner.refresh_required.store(true, Ordering::SeqCst);
        }
        res
    }

    async fn refresh_locked(&self) -> RbdResult {
        let inner = &self.inner;
        let md = cls::get_mutable_metadata(&inner.md_ctx, &inner.header_oid, inner.read_only).await?;
        let mut snaps = Vec::with_capacity(md.snapc.snaps.len());
        for &sid in &md.snapc.snaps {
            let info = match cls::snapshot_get(&inner.md_ctx, &inner.header_oid, sid).await {
                Ok(i) => i,
                // Removed between the two reads: the next refresh drops it from the context too.
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let protection = match cls::get_protection_status(&inner.md_ctx, &inner.header_oid, sid).await {
                Ok(p) => p,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            snaps.push(SnapInfo {
                id: sid,
                name: info.name,
                size: info.image_size,
                namespace: info.snapshot_namespace,
                protection,
            });
        }
        if let Some(sid) = inner.snap_id
            && !snaps.iter().any(|s| s.id == sid)
        {
            return Err(RbdError::NotFound(format!("snapshot {sid} was removed")));
        }
        let features = md.features.features;
        {
            let mut st = inner.st();
            st.size = md.size.size;
            st.order = md.size.order;
            st.features = features;
            st.snapc = md.snapc.clone();
            st.snaps = snaps;
            if inner.snap_id.is_none() {
                inner.data_ctx.set_snap_write_context(md.snapc)?;
            }
        }
        if let Some(w) = &inner.watcher
            && inner.snap_id.is_none()
            && !inner.closed.load(Ordering::SeqCst)
        {
            let want = features & features::EXCLUSIVE_LOCK != 0;
            let have = inner.current_lock().is_some();
            if want && !have {
                let hooks = Arc::new(LockHooks::default());
                let _ = hooks.image.set(Arc::downgrade(inner));
                let lock = ExclusiveLock::create(w.clone(), hooks).await;
                let generation = inner.lock_generation.fetch_add(1, Ordering::SeqCst) + 1;
                *inner.lock_slot() = Some(LockSlot { generation, lock });
            } else if !want && have {
                let slot = inner.lock_slot().take();
                if let Some(slot) = slot {
                    tracing::info!(image = %inner.id, "exclusive-lock disabled: shutting the lock down");
                    // In the background: the caller may itself hold an op the shutdown waits for.
                    tokio::spawn(async move {
                        let _ = slot.lock.shut_down().await;
                    });
                }
            }
        }
        Ok(())
    }

    // ----- I/O (rbd §2.11) ------------------------------------------------------------------------

    fn check_writable(&self) -> RbdResult {
        if self.inner.read_only {
            return Err(RbdError::ReadOnly("image handle is read-only".into()));
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(RbdError::Os { errno: errno::ESHUTDOWN, context: "image is closed".into() });
        }
        Ok(())
    }

    /// Admits one write-direction request through the exclusive lock (rbd §2.11): nothing to do
    /// without the feature; otherwise the automatic policy acquires (asking the owner to hand
    /// over), the standard policy fails -EROFS, a fenced handle -EBLOCKLISTED. A lock that shut
    /// down because the feature went away re-dispatches without it.
    async fn admit_write(&self) -> RbdResult<Option<OpGuard>> {
        loop {
            self.refresh_if_required().await?;
            let Some(slot) = self.inner.current_lock() else { return Ok(None) };
            match slot.lock.start_op_acquiring().await {
                Ok(g) => return Ok(Some(g)),
                Err(LockError::ShutDown) => {
                    let same = self.inner.current_lock().is_some_and(|s| s.generation == slot.generation);
                    if same || self.inner.closed.load(Ordering::SeqCst) {
                        return Err(RbdError::Os {
                            errno: errno::ESHUTDOWN,
                            context: "lock shut down".into(),
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes `data` at byte offset `off` and returns how much was written: librbd clips a write
    /// running past the end and refuses one starting past it with -EINVAL. The write carries the
    /// image's snap context, so the store keeps the pre-snapshot data (copy-on-write).
    pub async fn write_at(&self, off: u64, data: &[u8]) -> RbdResult<usize> {
        self.check_writable()?;
        let _block = self.inner.write_block.read().await;
        let _op = self.admit_write().await?;
        let (size, order) = self.inner.size_order();
        let len = clip_io(size, off, data.len() as u64)?;
        for (objno, in_obj, n, buf_off) in extents(order, off, len) {
            let oid = data_oid(&self.inner.object_prefix, objno);
            let b = buf_off as usize;
            self.inner.data_ctx.write(&oid, in_obj, &data[b..b + n as usize]).await?;
        }
        Ok(len as usize)
    }

    /// Discards a byte range (librbd: whole objects are removed, an object's tail is truncated,
    /// anything else is zeroed); gated like a write. Returns the clipped length.
    pub async fn discard(&self, off: u64, len: u64) -> RbdResult<u64> {
        self.check_writable()?;
        let _block = self.inner.write_block.read().await;
        let _op = self.admit_write().await?;
        let (size, order) = self.inner.size_order();
        let len = clip_io(size, off, len)?;
        let os = 1u64 << order;
        for (objno, in_obj, n, _) in extents(order, off, len) {
            let oid = data_oid(&self.inner.object_prefix, objno);
            if in_obj == 0 && n == os {
                admin::ignore_enoent(self.inner.data_ctx.remove(&oid).await)?;
            } else if in_obj + n == os {
                self.inner.data_ctx.truncate(&oid, in_obj).await?;
            } else {
                self.inner.data_ctx.zero(&oid, in_obj, n).await?;
            }
        }
        Ok(len)
    }

    /// A user flush. Writes complete in the store before they return, so there is nothing to
    /// push down; but a user flush is gated by the lock like a write (rbd §2.11, §10 fact 39).
    pub async fn flush(&self) -> RbdResult {
        if self.inner.read_only {
            return Ok(());
        }
        self.check_writable()?;
        let _block = self.inner.write_block.read().await;
        let _op = self.admit_write().await?;
        Ok(())
    }

    /// Reads up to `len` bytes at `off` (clipped at the end, -EINVAL past it). Unwritten ranges
    /// read as zeros. A snapshot handle reads the snapshot's data. Reads never need the lock here
    /// (no journaling or copy-on-read, rbd §2.11).
    pub async fn read_at(&self, off: u64, len: u64) -> RbdResult<Vec<u8>> {
        self.refresh_if_required().await?;
        let (size, order) = self.inner.size_order();
        let len = clip_io(size, off, len)?;
        let mut out = vec![0u8; len as usize];
        for (objno, in_obj, n, buf_off) in extents(order, off, len) {
            let oid = data_oid(&self.inner.object_prefix, objno);
            match self.inner.data_ctx.read(&oid, in_obj, n).await {
                Ok(d) => {
                    let b = buf_off as usize;
                    out[b..b + d.len()].copy_from_slice(&d);
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    // ----- the public lock API (rbd §2.12) ------------------------------------------------------

    fn lock_or_einval(&self) -> RbdResult<ExclusiveLock> {
        self.exclusive_lock().ok_or_else(|| {
            RbdError::InvalidArgument("exclusive-lock feature is not enabled on this handle".into())
        })
    }

    /// `rbd_lock_acquire(mode)`: switches the handle to the standard policy for good, then
    /// acquires. -EOPNOTSUPP for SHARED, -EINVAL without the feature (or on a read-only handle,
    /// which has no lock), -EROFS if a standard-policy owner refuses.
    pub async fn lock_acquire(&self, mode: LockMode) -> RbdResult {
        if mode != LockMode::Exclusive {
            return Err(RbdError::NotSupported("only exclusive lock mode is supported".into()));
        }
        self.refresh_if_required().await?;
        Ok(self.lock_or_einval()?.lock_acquire(mode).await?)
    }

    /// `rbd_lock_release()`: -EINVAL unless this handle owns the lock.
    pub async fn lock_release(&self) -> RbdResult {
        Ok(self.lock_or_einval()?.lock_release().await?)
    }

    /// `rbd_lock_get_owners()`: the owner's address; -ENOENT when unlocked.
    pub async fn lock_get_owners(&self) -> RbdResult<Vec<String>> {
        self.refresh_if_required().await?;
        Ok(self.lock_or_einval()?.lock_get_owners().await?)
    }

    /// `rbd_lock_break(mode, owner)`: -EROFS on a read-only handle, -EINVAL without the feature,
    /// -ENOENT without a lock, -EBUSY if `owner` is not the current owner; otherwise the owner is
    /// blocklisted (by default) and its lock broken.
    pub async fn lock_break(&self, mode: LockMode, owner: &str) -> RbdResult {
        if mode != LockMode::Exclusive {
            return Err(RbdError::NotSupported("only exclusive lock mode is supported".into()));
        }
        if self.inner.read_only {
            return Err(RbdError::ReadOnly("image handle is read-only".into()));
        }
        self.refresh_if_required().await?;
        Ok(self.lock_or_einval()?.lock_break(mode, owner).await?)
    }

    /// `rbd_is_exclusive_lock_owner()`: false without the feature; otherwise asks the OSD.
    pub async fn is_exclusive_lock_owner(&self) -> RbdResult<bool> {
        match self.exclusive_lock() {
            None => Ok(false),
            Some(l) => Ok(l.is_exclusive_lock_owner().await?),
        }
    }
}

impl ImageInner {
    pub(crate) fn st(&self) -> MutexGuard<'_, HeadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_slot(&self) -> MutexGuard<'_, Option<LockSlot>> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn current_lock(&self) -> Option<LockSlot> {
        self.lock_slot().clone()
    }

    pub(crate) fn visible_size(&self, st: &HeadState) -> u64 {
        match self.snap_id {
            Some(sid) => st.snaps.iter().find(|s| s.id == sid).map_or(0, |s| s.size),
            None => st.size,
        }
    }

    pub(crate) fn size_order(&self) -> (u64, u8) {
        let st = self.st();
        (self.visible_size(&st), st.order)
    }

    /// The per-op-type serialisation of rbd §5.4.
    pub(crate) fn op_serial(&self, kind: OpKind) -> Arc<tokio::sync::Mutex<()>> {
        self.op_serial.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default().clone()
    }
}

/// The AsyncRequestId a quiesce round of `request_id` gets (the watcher builds it the same way).
pub(crate) fn quiesce_id(w: &ImageWatcher, request_id: u64) -> AsyncRequestId {
    AsyncRequestId::new(w.client_id(), request_id)
}
