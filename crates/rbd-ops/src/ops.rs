//! Maintenance operations: run by the lock owner, locally or on a peer's behalf (rbd §5).
//!
//! Every op that needs the lock goes through [`Image::invoke_async_request`], librbd's
//! `C_InvokeAsyncRequest` (rbd §5.1): refresh if needed, take the lock if nobody live holds it,
//! run locally when owner, otherwise forward to the owner by notify and wait for its completion,
//! retrying on -ETIMEDOUT / -ERESTART (owner gone or changed) and taking the lock itself on
//! -EOPNOTSUPP. The owner side ([`Image::execute_forwarded`]) and the local path both end in the
//! same `execute_*` functions, so an op behaves the same wherever it runs.

use std::sync::Arc;

use rados_store::cls_rbd_client::{self as cls, ProtectionStatus, SnapshotNamespace, features};
use rados_store::error::errno;
use rados_store::{Error as StoreError, WriteOp};
use rbd_exclusive_lock::notify::{AsyncRequestId, NotifyMessage, SnapCreateFlags};
use rbd_exclusive_lock::{LockError, ProgressFn, ProgressReporter, RequestType, next_request_id};

use crate::admin::{self, RBD_DIRECTORY, data_oid, id_oid};
use crate::error::{RbdError, RbdResult, to_r};
use crate::image::{Image, quiesce_id};

/// Op types, for per-type serialisation (rbd §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OpKind {
    SnapCreate,
    SnapRemove,
    SnapRename,
    SnapProtect,
    SnapUnprotect,
    SnapRollback,
    Resize,
    Rename,
    UpdateFeatures,
    Metadata,
}

/// One maintenance request, as run locally or carried by a notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    SnapCreate { name: String, flags: SnapCreateFlags },
    SnapRemove { name: String },
    SnapRename { snap_id: u64, new_name: String },
    SnapProtect { name: String },
    SnapUnprotect { name: String },
    SnapRollback { name: String },
    Resize { size: u64, allow_shrink: bool },
    Rename { new_name: String },
    UpdateFeatures { features: u64, enabled: bool },
    MetadataSet { key: String, value: String },
    MetadataRemove { key: String },
}

impl Request {
    fn kind(&self) -> OpKind {
        match self {
            Request::SnapCreate { .. } => OpKind::SnapCreate,
            Request::SnapRemove { .. } => OpKind::SnapRemove,
            Request::SnapRename { .. } => OpKind::SnapRename,
            Request::SnapProtect { .. } => OpKind::SnapProtect,
            Request::SnapUnprotect { .. } => OpKind::SnapUnprotect,
            Request::SnapRollback { .. } => OpKind::SnapRollback,
            Request::Resize { .. } => OpKind::Resize,
            Request::Rename { .. } => OpKind::Rename,
            Request::UpdateFeatures { .. } => OpKind::UpdateFeatures,
            Request::MetadataSet { .. } | Request::MetadataRemove { .. } => OpKind::Metadata,
        }
    }

    /// "Permit snapshot?" of rbd §5.2: may a handle opened at a snapshot issue it.
    fn permits_snapshot_handle(&self) -> bool {
        matches!(
            self,
            Request::SnapCreate { .. }
                | Request::SnapRemove { .. }
                | Request::SnapRename { .. }
                | Request::SnapProtect { .. }
                | Request::SnapUnprotect { .. }
                | Request::Rename { .. }
        )
    }

    /// Renaming a format-2 image sends no HEADER_UPDATE (rbd §3.6); feature changes send it
    /// from their own request, which here is the same place.
    fn notifies_header_update(&self) -> bool {
        !matches!(self, Request::Rename { .. })
    }

    fn to_notify(&self, id: AsyncRequestId) -> Option<NotifyMessage> {
        let user = SnapshotNamespace::User;
        Some(match self.clone() {
            Request::SnapCreate { name, flags } => NotifyMessage::SnapCreate {
                snap_name: name,
                snap_namespace: user,
                async_request_id: id,
                flags,
            },
            Request::SnapRemove { name } => {
                NotifyMessage::SnapRemove { snap_name: name, snap_namespace: user, async_request_id: id }
            }
            Request::SnapRename { snap_id, new_name } => NotifyMessage::SnapRename {
                snap_id,
                snap_name: new_name,
                snap_namespace: user,
                async_request_id: id,
            },
            Request::SnapProtect { name } => {
                NotifyMessage::SnapProtect { snap_name: name, snap_namespace: user, async_request_id: id }
            }
            Request::SnapUnprotect { name } => {
                NotifyMessage::SnapUnprotect { snap_name: name, snap_namespace: user, async_request_id: id }
            }
            Request::Resize { size, allow_shrink } => {
                NotifyMessage::Resize { size, async_request_id: id, allow_shrink }
            }
            Request::Rename { new_name } => {
                NotifyMessage::Rename { image_name: new_name, async_request_id: id }
            }
            Request::UpdateFeatures { features, enabled } => {
                NotifyMessage::UpdateFeatures { features, enabled, async_request_id: id }
            }
            Request::MetadataSet { key, value } => {
                NotifyMessage::MetadataUpdate { key, value: Some(value), async_request_id: id }
            }
            Request::MetadataRemove { key } => {
                NotifyMessage::MetadataUpdate { key, value: None, async_request_id: id }
            }
            Request::SnapRollback { .. } => return None,
        })
    }

    /// The request a forwarded notify carries; None for ops this crate does not run (flatten,
    /// object map, migrate, sparsify, non-user snapshot namespaces), which the owner answers with
    /// -EOPNOTSUPP so the requester takes the lock and runs them itself (rbd §7.5 row 2).
    fn from_notify(msg: &NotifyMessage) -> Option<Request> {
        let user = |ns: &SnapshotNamespace| *ns == SnapshotNamespace::User;
        Some(match msg {
            NotifyMessage::SnapCreate { snap_name, snap_namespace, flags, .. } if user(snap_namespace) => {
                Request::SnapCreate { name: snap_name.clone(), flags: *flags }
            }
            NotifyMessage::SnapRemove { snap_name, snap_namespace, .. } if user(snap_namespace) => {
                Request::SnapRemove { name: snap_name.clone() }
            }
            NotifyMessage::SnapRename { snap_id, snap_name, .. } => {
                Request::SnapRename { snap_id: *snap_id, new_name: snap_name.clone() }
            }
            NotifyMessage::SnapProtect { snap_name, snap_namespace, .. } if user(snap_namespace) => {
                Request::SnapProtect { name: snap_name.clone() }
            }
            NotifyMessage::SnapUnprotect { snap_name, snap_namespace, .. } if user(snap_namespace) => {
                Request::SnapUnprotect { name: snap_name.clone() }
            }
            NotifyMessage::Resize { size, allow_shrink, .. } => {
                Request::Resize { size: *size, allow_shrink: *allow_shrink }
            }
            NotifyMessage::Rename { image_name, .. } => Request::Rename { new_name: image_name.clone() },
            NotifyMessage::UpdateFeatures { features, enabled, .. } => {
                Request::UpdateFeatures { features: *features, enabled: *enabled }
            }
            NotifyMessage::MetadataUpdate { key, value: Some(v), .. } => {
                Request::MetadataSet { key: key.clone(), value: v.clone() }
            }
            NotifyMessage::MetadataUpdate { key, value: None, .. } => {
                Request::MetadataRemove { key: key.clone() }
            }
            _ => return None,
        })
    }
}

fn ignore_enoent_r(r: rados_store::Result<()>) -> i32 {
    match r {
        Ok(()) | Err(StoreError::NotFound(_)) => 0,
        Err(e) => -e.errno(),
    }
}

fn store_r<T>(r: rados_store::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => -e.errno(),
    }
}

impl Image {
    fn check_not_read_only(&self) -> RbdResult {
        if self.inner.read_only {
            return Err(RbdError::ReadOnly("image handle is read-only".into()));
        }
        Ok(())
    }

    /// `C_InvokeAsyncRequest` (rbd §5.1). Returns librbd's `r`, with the op's filter set
    /// (`ignore`) already mapped to 0.
    pub(crate) async fn invoke_async_request(
        &self,
        req: Request,
        ignore: &[i32],
        progress: Option<ProgressFn>,
    ) -> i32 {
        let request_id = next_request_id();
        let mut request_lock = false;
        loop {
            if let Err(e) = self.refresh_if_required().await {
                return e.r();
            }
            if self.inner.read_only || (self.inner.snap_id.is_some() && !req.permits_snapshot_handle()) {
                return -errno::EROFS;
            }
            let local = match self.inner.current_lock() {
                None => true,
                Some(slot) => {
                    let lock = slot.lock;
                    if self.inner.watcher.is_none() {
                        return -errno::EROFS;
                    }
                    if lock.is_lock_owner() && lock.accept_request(RequestType::General).0 {
                        true
                    } else {
                        let res = if request_lock {
                            request_lock = false;
                            lock.acquire_lock().await
                        } else {
                            lock.try_acquire_lock().await
                        };
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "lock for a maintenance op failed");
                            return if e == LockError::Blocklisted {
                                -errno::EBLOCKLISTED
                            } else {
                                -errno::EROFS
                            };
                        }
                        lock.is_lock_owner() || self.inner.current_lock().is_none()
                    }
                }
            };
            let r = if local {
                let r = self.execute_local(&req, progress.clone()).await;
                if r == -errno::ERESTART {
                    continue;
                }
                r
            } else {
                let Some(watcher) = self.inner.watcher.as_ref() else { return -errno::EROFS };
                let Some(_) = req.to_notify(AsyncRequestId::default()) else { return -errno::EINVAL };
                let res = watcher
                    .notify_async_request(
                        request_id,
                        |id| req.to_notify(id).unwrap_or(NotifyMessage::Unknown { op: u32::MAX }),
                        progress.clone(),
                    )
                    .await;
                let r = match res {
                    Ok(()) => 0,
                    Err(e) => e.r(),
                };
                if r == -errno::EOPNOTSUPP {
                    request_lock = true;
                    continue;
                }
                if r == -errno::ETIMEDOUT || r == -errno::ERESTART {
                    tracing::debug!(r, "forwarded op must be retried");
                    continue;
                }
                self.inner.refresh_required.store(true, std::sync::atomic::Ordering::SeqCst);
                r
            };
            return if ignore.contains(&r) { 0 } else { r };
        }
    }

    /// Runs an op on this handle: serialised per op type, admitted by the lock when there is one
    /// (a lock no longer accepting ops gives -ERESTART, rbd §5.4), then HEADER_UPDATE to peers.
    pub(crate) async fn execute_local(&self, req: &Request, progress: Option<ProgressFn>) -> i32 {
        let serial = self.inner.op_serial(req.kind());
        let _serial = serial.lock().await;
        let _guard = match self.inner.current_lock() {
            Some(slot) => match slot.lock.start_op() {
                Ok(g) => Some(g),
                Err(_) => return -errno::ERESTART,
            },
            None => None,
        };
        let r = self.execute(req, progress).await;
        if r >= 0 && req.notifies_header_update() {
            self.notify_header_update().await;
        }
        r
    }

    /// The owner side of a forwarded op (rbd §3.3).
    pub(crate) async fn execute_forwarded(&self, msg: &NotifyMessage, reporter: ProgressReporter) -> i32 {
        let Some(req) = Request::from_notify(msg) else { return -errno::EOPNOTSUPP };
        let progress: ProgressFn = Arc::new(move |offset, total| reporter.update(offset, total));
        tracing::info!(?req, "executing a forwarded op as the lock owner");
        self.execute_local(&req, Some(progress)).await
    }

    /// HEADER_UPDATE after a header change; -ETIMEDOUT and -ENOENT are ignored (rbd §3.6).
    pub(crate) async fn notify_header_update(&self) {
        let r = match &self.inner.watcher {
            Some(w) => to_r(&w.notify_header_update().await.map_err(RbdError::from)),
            None => 0,
        };
        if r < 0 && r != -errno::ETIMEDOUT && r != -errno::ENOENT {
            tracing::warn!(r, "header update notify failed");
        }
    }

    async fn execute(&self, req: &Request, progress: Option<ProgressFn>) -> i32 {
        match req {
            Request::SnapCreate { name, flags } => self.execute_snap_create(name, *flags).await,
            Request::SnapRemove { name } => self.execute_snap_remove(name).await,
            Request::SnapRename { snap_id, new_name } => self.execute_snap_rename(*snap_id, new_name).await,
            Request::SnapProtect { name } => self.execute_set_protection(name, true).await,
            Request::SnapUnprotect { name } => self.execute_set_protection(name, false).await,
            Request::SnapRollback { name } => self.execute_snap_rollback(name).await,
            Request::Resize { size, allow_shrink } => {
                self.execute_resize(*size, *allow_shrink, progress).await
            }
            Request::Rename { new_name } => self.execute_rename(new_name).await,
            Request::UpdateFeatures { features, enabled } => {
                self.execute_update_features(*features, *enabled).await
            }
            Request::MetadataSet { key, value } => {
                let data = [(key.clone(), value.clone().into_bytes())].into_iter().collect();
                store_r(cls::metadata_set(&self.inner.md_ctx, &self.inner.header_oid, &data).await)
            }
            Request::MetadataRemove { key } => {
                store_r(cls::metadata_remove(&self.inner.md_ctx, &self.inner.header_oid, key).await)
            }
        }
    }

    async fn refresh_r(&self) -> i32 {
        to_r(&self.refresh().await)
    }

    // ----- owner-side executions (rbd §5.5, §5.6) ---------------------------------------------

    /// SnapshotCreateRequest (rbd §5.6).
    async fn execute_snap_create(&self, name: &str, flags: SnapCreateFlags) -> i32 {
        if self.inner.st().snap_by_name(name).is_some() {
            return -errno::EEXIST;
        }
        // Step 2: quiesce every watcher, unless the requester asked to skip it.
        let mut quiesced = None;
        if let Some(w) = &self.inner.watcher
            && !flags.contains(SnapCreateFlags::SKIP_NOTIFY_QUIESCE)
        {
            let rid = next_request_id();
            match w.notify_quiesce(rid).await {
                Ok(id) => quiesced = Some(id),
                Err(e) if !flags.contains(SnapCreateFlags::IGNORE_NOTIFY_QUIESCE_ERROR) => {
                    let _ = w.notify_unquiesce(quiesce_id(w, rid)).await;
                    return e.r();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "quiesce failed; ignored as asked");
                    quiesced = Some(quiesce_id(w, rid));
                }
            }
        }
        let r = {
            // Step 4: block writes; in-flight ones finish first, new ones queue.
            let _block = self.inner.write_block.write().await;
            let r = loop {
                // Step 6: a self-managed snapshot id from the data pool.
                let snap_id = match self.inner.data_ctx.selfmanaged_snap_create().await {
                    Ok(id) => id,
                    Err(e) => break -e.errno(),
                };
                // Step 7: record it in the header; -ESTALE means a newer id exists, take another.
                match cls::snapshot_add(
                    &self.inner.md_ctx,
                    &self.inner.header_oid,
                    snap_id,
                    name,
                    &SnapshotNamespace::User,
                )
                .await
                {
                    Ok(()) => break 0,
                    Err(e) if e.errno() == errno::ESTALE => {
                        let _ = self.inner.data_ctx.selfmanaged_snap_remove(snap_id).await;
                    }
                    Err(e) => {
                        let _ = self.inner.data_ctx.selfmanaged_snap_remove(snap_id).await;
                        break -e.errno();
                    }
                }
            };
            // Step 9: the new snap context applies to the very next write.
            if r == 0 { self.refresh_r().await } else { r }
        };
        // Step 10: unblock (the guard above), then un-quiesce.
        if let (Some(w), Some(id)) = (&self.inner.watcher, quiesced) {
            let _ = w.notify_unquiesce(id).await;
        }
        r
    }

    async fn execute_snap_remove(&self, name: &str) -> i32 {
        let Some(snap) = self.inner.st().snap_by_name(name).cloned() else { return -errno::ENOENT };
        if snap.protection != ProtectionStatus::Unprotected {
            return -errno::EBUSY;
        }
        let r = store_r(cls::snapshot_remove(&self.inner.md_ctx, &self.inner.header_oid, snap.id).await);
        if r < 0 {
            return r;
        }
        let _ = self.inner.data_ctx.selfmanaged_snap_remove(snap.id).await;
        self.refresh_r().await
    }

    async fn execute_snap_rename(&self, snap_id: u64, new_name: &str) -> i32 {
        {
            let st = self.inner.st();
            if st.snap_by_name(new_name).is_some() {
                return -errno::EEXIST;
            }
            if !st.snaps.iter().any(|s| s.id == snap_id) {
                return -errno::ENOENT;
            }
        }
        let r = store_r(
            cls::snapshot_rename(&self.inner.md_ctx, &self.inner.header_oid, snap_id, new_name).await,
        );
        if r < 0 { r } else { self.refresh_r().await }
    }

    async fn execute_set_protection(&self, name: &str, protect: bool) -> i32 {
        let Some(snap) = self.inner.st().snap_by_name(name).cloned() else { return -errno::ENOENT };
        let (md, oid) = (&self.inner.md_ctx, &self.inner.header_oid);
        let r = if protect {
            if snap.protection == ProtectionStatus::Protected {
                return -errno::EBUSY;
            }
            store_r(cls::set_protection_status(md, oid, snap.id, ProtectionStatus::Protected).await)
        } else {
            if snap.protection == ProtectionStatus::Unprotected {
                return -errno::EINVAL;
            }
            // librbd marks it UNPROTECTING while it looks for clones; there are none here.
            let r =
                store_r(cls::set_protection_status(md, oid, snap.id, ProtectionStatus::Unprotecting).await);
            if r < 0 {
                return r;
            }
            store_r(cls::set_protection_status(md, oid, snap.id, ProtectionStatus::Unprotected).await)
        };
        if r < 0 { r } else { self.refresh_r().await }
    }

    /// Removes or truncates the data beyond `new_size` (ResizeRequest's trim), reporting
    /// progress per object.
    async fn trim(&self, new_size: u64, old_size: u64, order: u8, progress: Option<&ProgressFn>) -> i32 {
        let os = 1u64 << order;
        let first = new_size.div_ceil(os);
        let end = old_size.div_ceil(os);
        let total = end.saturating_sub(first);
        for (i, objno) in (first..end).enumerate() {
            let r = ignore_enoent_r(
                self.inner.data_ctx.remove(&data_oid(&self.inner.object_prefix, objno)).await,
            );
            if r < 0 {
                return r;
            }
            if let Some(p) = progress {
                p(i as u64 + 1, total);
            }
        }
        if !new_size.is_multiple_of(os) && new_size < old_size {
            let oid = data_oid(&self.inner.object_prefix, new_size / os);
            let r = store_r(self.inner.data_ctx.truncate(&oid, new_size % os).await);
            if r < 0 {
                return r;
            }
        }
        0
    }

    /// ResizeRequest: block writes; when shrinking, trim the data first; then the header size.
    async fn execute_resize(&self, size: u64, allow_shrink: bool, progress: Option<ProgressFn>) -> i32 {
        if self.inner.read_only || self.inner.snap_id.is_some() {
            return -errno::EROFS;
        }
        let _block = self.inner.write_block.write().await;
        self.resize_blocked(size, allow_shrink, progress.as_ref()).await
    }

    async fn resize_blocked(&self, size: u64, allow_shrink: bool, progress: Option<&ProgressFn>) -> i32 {
        let (old, order) = {
            let st = self.inner.st();
            (st.size, st.order)
        };
        if size < old {
            if !allow_shrink {
                return -errno::EINVAL;
            }
            let r = self.trim(size, old, order, progress).await;
            if r < 0 {
                return r;
            }
        }
        if size != old {
            let r = store_r(cls::set_size(&self.inner.md_ctx, &self.inner.header_oid, size).await);
            if r < 0 {
                return r;
            }
        }
        self.refresh_r().await
    }

    /// SnapshotRollbackRequest: the head goes back to the snapshot's size, then every object to
    /// its state at the snapshot (objects that did not exist then disappear).
    async fn execute_snap_rollback(&self, name: &str) -> i32 {
        let Some(snap) = self.inner.st().snap_by_name(name).cloned() else { return -errno::ENOENT };
        let _block = self.inner.write_block.write().await;
        let r = self.resize_blocked(snap.size, true, None).await;
        if r < 0 {
            return r;
        }
        let order = self.inner.st().order;
        let n = snap.size.div_ceil(1u64 << order);
        for objno in 0..n {
            let oid = data_oid(&self.inner.object_prefix, objno);
            let r = ignore_enoent_r(self.inner.data_ctx.selfmanaged_snap_rollback(&oid, snap.id).await);
            if r < 0 {
                return r;
            }
        }
        self.refresh_r().await
    }

    /// RenameRequest (format 2): new id object, directory rename, old id object removed.
    async fn execute_rename(&self, new_name: &str) -> i32 {
        let old = self.name();
        let md = &self.inner.md_ctx;
        let r = store_r(
            md.operate_write(
                &id_oid(new_name),
                &cls::write_op_set_id(WriteOp::new().create(true), &self.inner.id),
            )
            .await,
        );
        if r < 0 {
            return r;
        }
        let r = store_r(cls::dir_rename_image(md, RBD_DIRECTORY, &old, new_name, &self.inner.id).await);
        if r < 0 {
            let _ = md.remove(&id_oid(new_name)).await;
            return r;
        }
        let _ = md.remove(&id_oid(&old)).await;
        *self.inner.name.lock().unwrap_or_else(|e| e.into_inner()) = new_name.to_owned();
        0
    }

    /// Enable or disable exclusive-lock. Already in the asked state is a no-op here (the caller
    /// validated it before forwarding; a retry after the owner went away must not fail).
    async fn execute_update_features(&self, feats: u64, enabled: bool) -> i32 {
        let r = store_r(
            cls::set_features(
                &self.inner.md_ctx,
                &self.inner.header_oid,
                if enabled { feats } else { 0 },
                feats,
            )
            .await,
        );
        if r < 0 { r } else { self.refresh_r().await }
    }

    // ----- public maintenance API (rbd §5.2) -----------------------------------------------

    /// Creates snapshot `name`. -EROFS on a read-only handle, -EEXIST if the name exists; run by
    /// the lock owner (locally or forwarded), and a retried request's -EEXIST counts as success.
    pub async fn snap_create(&self, name: &str) -> RbdResult {
        self.snap_create_with_flags(name, SnapCreateFlags::NONE).await
    }

    /// [`Image::snap_create`] with librbd's internal flags (quiesce skip / ignore errors, rbd §4.4).
    pub async fn snap_create_with_flags(&self, name: &str, flags: SnapCreateFlags) -> RbdResult {
        self.check_not_read_only()?;
        if name.is_empty() {
            return Err(RbdError::InvalidArgument("empty snapshot name".into()));
        }
        self.refresh_if_required().await?;
        if self.inner.st().snap_by_name(name).is_some() {
            return Err(RbdError::Exists(format!("snapshot {name:?} exists")));
        }
        let r = self
            .invoke_async_request(
                Request::SnapCreate { name: name.to_owned(), flags },
                &[-errno::EEXIST],
                None,
            )
            .await;
        RbdError::check(r, "snap_create")
    }

    /// Resizes the image (grow or shrink, trimming data beyond the new end).
    pub async fn resize(&self, size: u64) -> RbdResult {
        self.resize2(size, true, None).await
    }

    /// Resize with librbd's `allow_shrink` and a progress callback (offset, total).
    pub async fn resize2(&self, size: u64, allow_shrink: bool, progress: Option<ProgressFn>) -> RbdResult {
        self.check_not_read_only()?;
        let r = self.invoke_async_request(Request::Resize { size, allow_shrink }, &[], progress).await;
        RbdError::check(r, "resize")
    }

    /// Removes snapshot `name`: -ENOENT if unknown, -EBUSY while protected. Forwarded to the
    /// owner only with fast-diff or journaling; otherwise run here without the lock (rbd §5.2).
    pub async fn snap_remove(&self, name: &str) -> RbdResult {
        self.check_not_read_only()?;
        self.refresh_if_required().await?;
        let snap = self.inner.st().snap_by_name(name).cloned();
        let Some(snap) = snap else { return Err(RbdError::NotFound(format!("no snapshot {name:?}"))) };
        if snap.protection != ProtectionStatus::Unprotected {
            return Err(RbdError::Busy(format!("snapshot {name:?} is protected")));
        }
        let req = Request::SnapRemove { name: name.to_owned() };
        let r = if self.features() & (features::FAST_DIFF | features::JOURNALING) != 0 {
            self.invoke_async_request(req, &[-errno::ENOENT], None).await
        } else {
            self.execute_unlocked(&req).await
        };
        RbdError::check(r, "snap_remove")
    }

    /// Ops that librbd runs locally without the lock unless journaling is on (rbd §5.2).
    async fn execute_unlocked(&self, req: &Request) -> i32 {
        let serial = self.inner.op_serial(req.kind());
        let _serial = serial.lock().await;
        let r = self.execute(req, None).await;
        if r >= 0 && req.notifies_header_update() {
            self.notify_header_update().await;
        }
        r
    }

    fn journaling(&self) -> bool {
        self.features() & features::JOURNALING != 0
    }

    /// Renames snapshot `src` to `dst`: -ENOENT / -EEXIST pre-checks; a retried -EEXIST is success.
    pub async fn snap_rename(&self, src: &str, dst: &str) -> RbdResult {
        self.check_not_read_only()?;
        self.refresh_if_required().await?;
        let snap_id = {
            let st = self.inner.st();
            let Some(s) = st.snap_by_name(src) else {
                return Err(RbdError::NotFound(format!("no snapshot {src:?}")));
            };
            if st.snap_by_name(dst).is_some() {
                return Err(RbdError::Exists(format!("snapshot {dst:?} exists")));
            }
            s.id
        };
        let req = Request::SnapRename { snap_id, new_name: dst.to_owned() };
        let r = if self.journaling() {
            self.invoke_async_request(req, &[], None).await
        } else {
            self.execute_unlocked(&req).await
        };
        RbdError::check(if r == -errno::EEXIST { 0 } else { r }, "snap_rename")
    }

    /// Protects snapshot `name`: -ENOSYS without layering, -EBUSY if already protected.
    pub async fn snap_protect(&self, name: &str) -> RbdResult {
        self.protection_op(name, true).await
    }

    /// Unprotects snapshot `name`: -EINVAL if not protected.
    pub async fn snap_unprotect(&self, name: &str) -> RbdResult {
        self.protection_op(name, false).await
    }

    async fn protection_op(&self, name: &str, protect: bool) -> RbdResult {
        self.check_not_read_only()?;
        self.refresh_if_required().await?;
        if self.features() & features::LAYERING == 0 {
            return Err(RbdError::Os { errno: 38, context: "layering is not enabled".into() });
        }
        let status = self.inner.st().snap_by_name(name).map(|s| s.protection);
        match (status, protect) {
            (None, _) => return Err(RbdError::NotFound(format!("no snapshot {name:?}"))),
            (Some(ProtectionStatus::Protected), true) => {
                return Err(RbdError::Busy(format!("snapshot {name:?} is already protected")));
            }
            (Some(ProtectionStatus::Unprotected), false) => {
                return Err(RbdError::InvalidArgument(format!("snapshot {name:?} is not protected")));
            }
            _ => {}
        }
        let req = if protect {
            Request::SnapProtect { name: name.to_owned() }
        } else {
            Request::SnapUnprotect { name: name.to_owned() }
        };
        let r = if self.journaling() {
            self.invoke_async_request(req, &[], None).await
        } else {
            self.execute_unlocked(&req).await
        };
        let ignored = if protect { -errno::EBUSY } else { -errno::EINVAL };
        RbdError::check(if r == ignored { 0 } else { r }, "snap_protect")
    }

    /// Rolls the image back to snapshot `name`. Never forwarded: it takes the lock with a
    /// try-lock (serving no peer meanwhile) and fails -EROFS while another live client owns it
    /// (rbd §5.2, §5.3, §7.5).
    pub async fn snap_rollback(&self, name: &str) -> RbdResult {
        self.check_not_read_only()?;
        if self.inner.snap_id.is_some() {
            return Err(RbdError::ReadOnly("handle is opened at a snapshot".into()));
        }
        self.refresh_if_required().await?;
        if self.inner.st().snap_by_name(name).is_none() {
            return Err(RbdError::NotFound(format!("no snapshot {name:?}")));
        }
        let req = Request::SnapRollback { name: name.to_owned() };
        loop {
            self.prepare_image_update(false).await?;
            let r = self.execute_local(&req, None).await;
            if r == -errno::ERESTART {
                continue;
            }
            return RbdError::check(r, "snap_rollback");
        }
    }

    /// `prepare_image_update(request_lock)` (rbd §5.3).
    async fn prepare_image_update(&self, request_lock: bool) -> RbdResult {
        let Some(slot) = self.inner.current_lock() else { return Ok(()) };
        let lock = slot.lock;
        if lock.is_lock_owner() && lock.accept_request(RequestType::General).0 {
            return Ok(());
        }
        lock.block_requests(0);
        let res = if request_lock { lock.acquire_lock().await } else { lock.try_acquire_lock().await };
        lock.unblock_requests();
        match res {
            Ok(()) | Err(LockError::OwnerAlive | LockError::Busy) => {}
            Err(e) => return Err(e.into()),
        }
        if !lock.is_lock_owner() {
            return Err(lock.unlocked_op_error().into());
        }
        Ok(())
    }

    /// Renames the image: -EEXIST if the destination exists (a retried -EEXIST is success).
    pub async fn rename(&self, new_name: &str) -> RbdResult {
        self.check_not_read_only()?;
        admin::validate_name(new_name)?;
        match cls::get_id(&self.inner.md_ctx, &id_oid(new_name)).await {
            Ok(_) => return Err(RbdError::Exists(format!("image {new_name:?} exists"))),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let r = self.invoke_async_request(Request::Rename { new_name: new_name.to_owned() }, &[], None).await;
        if r >= 0 {
            *self.inner.name.lock().unwrap_or_else(|e| e.into_inner()) = new_name.to_owned();
        }
        RbdError::check(if r == -errno::EEXIST { 0 } else { r }, "rename")
    }

    /// Enables or disables features; only exclusive-lock is mutable here. -EINVAL for other
    /// bits or a feature already in the asked state.
    pub async fn update_features(&self, feats: u64, enabled: bool) -> RbdResult {
        self.check_not_read_only()?;
        if feats == 0 || feats & !features::EXCLUSIVE_LOCK != 0 {
            return Err(RbdError::InvalidArgument(format!("features {feats:#x} cannot be changed here")));
        }
        self.refresh_if_required().await?;
        let have = self.features() & feats == feats;
        if have == enabled {
            return Err(RbdError::InvalidArgument(format!(
                "features {feats:#x} already {}",
                if enabled { "enabled" } else { "disabled" }
            )));
        }
        let r =
            self.invoke_async_request(Request::UpdateFeatures { features: feats, enabled }, &[], None).await;
        RbdError::check(r, "update_features")
    }

    /// Sets image metadata `key` (run by the lock owner, METADATA_UPDATE).
    pub async fn metadata_set(&self, key: &str, value: &str) -> RbdResult {
        self.check_not_read_only()?;
        let req = Request::MetadataSet { key: key.to_owned(), value: value.to_owned() };
        RbdError::check(self.invoke_async_request(req, &[], None).await, "metadata_set")
    }

    /// Removes image metadata `key`; the lookup's -ENOENT is returned for a missing key.
    pub async fn metadata_remove(&self, key: &str) -> RbdResult {
        self.check_not_read_only()?;
        cls::metadata_get(&self.inner.md_ctx, &self.inner.header_oid, key).await?;
        let r = self.invoke_async_request(Request::MetadataRemove { key: key.to_owned() }, &[], None).await;
        RbdError::check(if r == -errno::ENOENT { 0 } else { r }, "metadata_remove")
    }

    /// One metadata value (-ENOENT if unset).
    pub async fn metadata_get(&self, key: &str) -> RbdResult<String> {
        let v = cls::metadata_get(&self.inner.md_ctx, &self.inner.header_oid, key).await?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }
}
