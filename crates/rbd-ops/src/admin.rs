//! Pool-level image management: create, remove, list (librbd's `RBD` class).
//!
//! A format-2 image is three kinds of objects tied together only by names (rbd §0.1, §6.1):
//! `rbd_id.<name>` holds the id, `rbd_header.<id>` holds the metadata, `rbd_directory` maps names
//! to ids, and the data lives in `rbd_data.<id>.<object number in 16 hex digits>`. Every change
//! goes through the `rbd` object class, so the same calls work on a real OSD.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rados_store::cls_rbd_client::{self as cls, features};
use rados_store::error::errno;
use rados_store::{Error as StoreError, IoCtx, WriteOp};

use crate::error::{RbdError, RbdResult};

/// The directory object listing every image of a pool namespace.
pub const RBD_DIRECTORY: &str = "rbd_directory";

/// The default object size order, 4 MiB objects (librbd `rbd_default_order`).
pub const DEFAULT_ORDER: u8 = 22;

/// The features this crate implements. Images asking for others (object map, fast diff,
/// journaling, ...) are refused with -ENOSYS rather than created with a feature nothing maintains.
pub const SUPPORTED_FEATURES: u64 = features::LAYERING | features::EXCLUSIVE_LOCK;

/// The features new images get by default: librbd's default minus what is not implemented here
/// (object map, fast diff, deep flatten).
pub const DEFAULT_FEATURES: u64 = features::LAYERING | features::EXCLUSIVE_LOCK;

/// `rbd_id.<name>`.
pub fn id_oid(name: &str) -> String {
    format!("rbd_id.{name}")
}

/// `rbd_header.<id>`.
pub fn header_oid(id: &str) -> String {
    format!("rbd_header.{id}")
}

/// `rbd_data.<id>`, the object prefix format-2 images use.
pub fn object_prefix(id: &str) -> String {
    format!("rbd_data.{id}")
}

/// `<prefix>.<object number as 16 lowercase hex digits>`.
pub fn data_oid(prefix: &str, objno: u64) -> String {
    format!("{prefix}.{objno:016x}")
}

/// How to create an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// log2 of the object size, 12..=25.
    pub order: u8,
    /// Feature bits (subset of [`SUPPORTED_FEATURES`]).
    pub features: u64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { order: DEFAULT_ORDER, features: DEFAULT_FEATURES }
    }
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh image id: the creating client's gid and a per-process counter, in hex. librbd mixes
/// the gid with a random number; a counter keeps simulated runs reproducible and is still unique
/// per cluster because gids are.
fn generate_image_id(io: &IoCtx) -> String {
    format!("{:x}{:06x}", io.client_gid(), ID_COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn md_ctx(io: &IoCtx) -> IoCtx {
    let md = io.dup();
    md.set_read_snap(None);
    // An empty context is always valid.
    let _ = md.set_snap_write_context(rados_store::SnapContext::empty());
    md
}

/// Checks an image name as librbd does before touching the cluster.
pub(crate) fn validate_name(name: &str) -> RbdResult {
    if name.is_empty() || name.contains('/') || name.contains('@') {
        return Err(RbdError::InvalidArgument(format!("invalid image name {name:?}")));
    }
    Ok(())
}

/// Creates a format-2 image (librbd `CreateRequest`): the id object (exclusive), the directory
/// entry, then the header (exclusive create plus cls `create` in one op). A failure undoes the
/// earlier steps. -EEXIST if the name is taken.
pub async fn create(io: &IoCtx, name: &str, size: u64, opts: &CreateOptions) -> RbdResult {
    validate_name(name)?;
    if !(12..=25).contains(&opts.order) {
        return Err(RbdError::InvalidArgument(format!("order {} outside 12..=25", opts.order)));
    }
    if opts.features & !SUPPORTED_FEATURES != 0 {
        return Err(RbdError::Os {
            errno: 38,
            context: format!("features {:#x} are not implemented", opts.features & !SUPPORTED_FEATURES),
        });
    }
    let md = md_ctx(io);
    let id = generate_image_id(&md);
    let id_obj = id_oid(name);
    md.operate_write(&id_obj, &cls::write_op_set_id(WriteOp::new().create(true), &id)).await?;
    if let Err(e) = cls::dir_add_image(&md, RBD_DIRECTORY, name, &id).await {
        let _ = md.remove(&id_obj).await;
        return Err(e.into());
    }
    let op = cls::write_op_create_image(
        WriteOp::new().create(true),
        size,
        opts.order,
        opts.features,
        &object_prefix(&id),
        -1,
    );
    if let Err(e) = md.operate_write(&header_oid(&id), &op).await {
        let _ = cls::dir_remove_image(&md, RBD_DIRECTORY, name, &id).await;
        let _ = md.remove(&id_obj).await;
        return Err(e.into());
    }
    tracing::info!(name, id, size, "image created");
    Ok(())
}

/// The id of image `name`; -ENOENT if there is none.
pub async fn image_id(io: &IoCtx, name: &str) -> RbdResult<String> {
    validate_name(name)?;
    Ok(cls::get_id(&md_ctx(io), &id_oid(name)).await?)
}

/// Every image name in the pool namespace with its id (`rbd ls`), in name order.
pub async fn list(io: &IoCtx) -> RbdResult<BTreeMap<String, String>> {
    let md = md_ctx(io);
    let mut all = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = match cls::dir_list(&md, RBD_DIRECTORY, &after, 64).await {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => break,
            Err(e) => return Err(e.into()),
        };
        let Some(last) = page.keys().next_back().cloned() else { break };
        let n = page.len();
        all.extend(page);
        if n < 64 {
            break;
        }
        after = last;
    }
    Ok(all)
}

/// Removes an image (librbd `RemoveRequest`): -ENOENT if missing, -EBUSY while any client
/// watches its header (an open read-write handle), -ENOTEMPTY while it has snapshots. Then the
/// data objects, the header, the directory entry and the id object go, in that order.
pub async fn remove(io: &IoCtx, name: &str) -> RbdResult {
    let md = md_ctx(io);
    let id = image_id(io, name).await?;
    let header = header_oid(&id);
    match md.list_watchers(&header).await {
        Ok(w) if !w.is_empty() => {
            return Err(RbdError::Busy(format!("image {name:?} has {} watcher(s)", w.len())));
        }
        Ok(_) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match cls::get_snapcontext(&md, &header).await {
        Ok(snapc) if !snapc.snaps.is_empty() => {
            return Err(RbdError::Os {
                errno: errno::ENOTEMPTY,
                context: format!("image {name:?} has {} snapshot(s)", snapc.snaps.len()),
            });
        }
        Ok(_) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let prefix = match cls::get_object_prefix(&md, &header).await {
        Ok(p) => Some(p),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(prefix) = prefix {
        let dot = format!("{prefix}.");
        for oid in md.list_objects().await?.into_iter().filter(|o| o.starts_with(&dot)) {
            ignore_enoent(md.remove(&oid).await)?;
        }
        ignore_enoent(md.remove(&header).await)?;
    }
    match cls::dir_remove_image(&md, RBD_DIRECTORY, name, &id).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    ignore_enoent(md.remove(&id_oid(name)).await)?;
    tracing::info!(name, id, "image removed");
    Ok(())
}

pub(crate) fn ignore_enoent(r: rados_store::Result<()>) -> RbdResult {
    match r {
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
