//! Typed client for the `rbd` object class, as Ceph's `librbd::cls_client` offers it.
//!
//! librbd never builds cls_rbd requests by hand: it calls `cls_client::get_size(...)`,
//! `snapshot_add(...)` and friends, or adds the same calls to a compound op (its refresh reads
//! size, features, flags, snap context and the lock in one read, rbd §6.1). This module is that
//! library for cephlock: async calls over [`IoCtx::exec`], op-vector helpers for
//! [`WriteOp`] / [`ReadOp`], and underneath them pure `encode_*` / `decode_*` functions, so the
//! wire format can be checked byte for byte without a cluster. Method names, argument order and
//! encodings are 16.2's, so the same calls work against a real OSD.
//!
//! Errors are the OSD's (see [`crate::cls::rbd`] for each method's). A reply that does not
//! decode is `-EBADMSG`, as in Ceph's client; so is a snap context that is not valid.
//!
//! Header calls should go through an [`IoCtx`] without the image's snap context (librbd's
//! `md_ctx`): a write op carrying the image's snapshots would make the store keep clones of the
//! header.

use std::collections::BTreeMap;

use crate::IoCtx;
use crate::cls_lock_client::{self, LockInfo};
use crate::encoding::{Decode, DecodeResult, Decoder, Encoder};
use crate::error::{Error, Result, errno};
use crate::ops::{ReadOp, ReadResult, WriteOp};
use crate::snap::SnapContext;

pub use crate::cls::rbd::types::{decode_snap_context, encode_snap_context, snap_context_is_valid};
pub use crate::cls::rbd::{
    CEPH_MAXSNAP, CEPH_NOSNAP, CLASS, MirrorSnapshotNamespace, MirrorSnapshotState, ProtectionStatus,
    SnapshotInfo, SnapshotNamespace, SnapshotNamespaceType, features, method, oid,
};

/// The lock name librbd's exclusive lock uses on the header (rbd §0.1).
pub const RBD_LOCK_NAME: &str = "rbd_lock";

/// `get_size`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    /// Size in bytes of the head or the snapshot.
    pub size: u64,
    /// log2 of the object size.
    pub order: u8,
}

/// `get_features`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFeatures {
    /// The feature bits ([`features`]).
    pub features: u64,
    /// The bits a client must understand to use the image the way it asked (read-only or
    /// read-write); unknown ones mean "do not open" (librbd: `-ENOSYS`).
    pub incompatible: u64,
}

/// What librbd's refresh reads in one compound op (rbd §6.1): the head's size and order,
/// features, flags, snap context, and the exclusive lock's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableMetadata {
    /// Size and order of the head.
    pub size: ImageSize,
    /// Features and the incompatible subset.
    pub features: ImageFeatures,
    /// Image flags.
    pub flags: u64,
    /// The snap context the image's writes must carry.
    pub snapc: SnapContext,
    /// `lock.get_info(rbd_lock)`: lockers, type, tag.
    pub lock: LockInfo,
}

fn bad_reply(what: &str, e: impl std::fmt::Display) -> Error {
    Error::from_errno(errno::EBADMSG, format!("cls_rbd {what} reply: {e}"))
}

fn decode_reply<'a, T>(
    what: &str,
    out: &'a [u8],
    f: impl FnOnce(&mut Decoder<'a>) -> DecodeResult<T>,
) -> Result<T> {
    f(&mut Decoder::new(out)).map_err(|e| bad_reply(what, e))
}

fn enc(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    f(&mut e);
    e.into_vec()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// The input of `create`: size, order, features, object prefix, data pool (-1: none).
pub fn encode_create(size: u64, order: u8, features: u64, object_prefix: &str, data_pool_id: i64) -> Vec<u8> {
    enc(|e| {
        e.u64(size).u8(order).u64(features).string(object_prefix).i64(data_pool_id);
    })
}

/// The input of every method that takes just a snapshot id (`get_size`, `get_flags`,
/// `snapshot_get`, `get_protection_status`, `snapshot_remove`).
pub fn encode_snap_id(snap_id: u64) -> Vec<u8> {
    enc(|e| {
        e.u64(snap_id);
    })
}

/// The input of `get_features`: [`CEPH_NOSNAP`] (ignored by 16.2) and whether the caller opens
/// the image read-only.
pub fn encode_get_features(read_only: bool) -> Vec<u8> {
    enc(|e| {
        e.u64(CEPH_NOSNAP).bool(read_only);
    })
}

/// The input of `set_features`: the new values of the masked bits, and the mask.
pub fn encode_set_features(features: u64, mask: u64) -> Vec<u8> {
    enc(|e| {
        e.u64(features).u64(mask);
    })
}

/// The input of `set_size`, and of `snapshot_set_limit`: one `u64`.
pub fn encode_u64(v: u64) -> Vec<u8> {
    enc(|e| {
        e.u64(v);
    })
}

/// The input of `snapshot_add`: name, id, namespace (in that order, as Ceph's client writes
/// them).
pub fn encode_snapshot_add(snap_id: u64, name: &str, namespace: &SnapshotNamespace) -> Vec<u8> {
    enc(|e| {
        e.string(name).u64(snap_id).put(namespace);
    })
}

/// The input of `snapshot_rename`: the snapshot's id, then its new name.
pub fn encode_snapshot_rename(src_snap_id: u64, dst_name: &str) -> Vec<u8> {
    enc(|e| {
        e.u64(src_snap_id).string(dst_name);
    })
}

/// The input of `set_protection_status`: snapshot id, status byte.
pub fn encode_set_protection_status(snap_id: u64, status: ProtectionStatus) -> Vec<u8> {
    enc(|e| {
        e.u64(snap_id).u8(status.wire());
    })
}

/// The input of `metadata_set`: `map<string, bytes>`.
pub fn encode_metadata_set(data: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    enc(|e| {
        e.map(
            data,
            |e, k| {
                e.string(k);
            },
            |e, v| {
                e.bytes(v);
            },
        );
    })
}

/// The input of every method that takes one string: `metadata_get` / `metadata_remove` (a
/// key), `set_id` (an id), `dir_get_id` (a name), `dir_get_name` (an id).
pub fn encode_string(s: &str) -> Vec<u8> {
    enc(|e| {
        e.string(s);
    })
}

/// The input of `metadata_list` and `dir_list`: where to start (exclusive, "" for the
/// beginning) and how many entries at most.
pub fn encode_list(start_after: &str, max_return: u64) -> Vec<u8> {
    enc(|e| {
        e.string(start_after).u64(max_return);
    })
}

/// The input of `dir_add_image` and `dir_remove_image`: name, id.
pub fn encode_dir_entry(name: &str, id: &str) -> Vec<u8> {
    enc(|e| {
        e.string(name).string(id);
    })
}

/// The input of `dir_rename_image`: old name, new name, id.
pub fn encode_dir_rename(src: &str, dest: &str, id: &str) -> Vec<u8> {
    enc(|e| {
        e.string(src).string(dest).string(id);
    })
}

// ---------------------------------------------------------------------------------------------
// Outputs

/// The output of `get_size`: order `u8`, then size `u64`.
pub fn decode_get_size(out: &[u8]) -> Result<ImageSize> {
    decode_reply("get_size", out, |d| {
        let order = d.u8()?;
        Ok(ImageSize { size: d.u64()?, order })
    })
}

/// The output of `get_features`: features, then the incompatible subset.
pub fn decode_get_features(out: &[u8]) -> Result<ImageFeatures> {
    decode_reply("get_features", out, |d| Ok(ImageFeatures { features: d.u64()?, incompatible: d.u64()? }))
}

/// A `u64` output: `get_flags`, `op_features_get`, `snapshot_get_limit`.
pub fn decode_u64(out: &[u8]) -> Result<u64> {
    decode_reply("u64", out, |d| d.u64())
}

/// The output of `get_data_pool`: the pool id, -1 for none.
pub fn decode_get_data_pool(out: &[u8]) -> Result<i64> {
    decode_reply("get_data_pool", out, |d| d.i64())
}

/// A string output: `get_object_prefix`, `get_id`, `dir_get_id`, `dir_get_name`.
pub fn decode_string(out: &[u8]) -> Result<String> {
    decode_reply("string", out, |d| d.string())
}

/// The output of `get_snapcontext`; a context that is not valid by Ceph's rule
/// ([`snap_context_is_valid`]) is `-EBADMSG`, as librbd treats it.
pub fn decode_get_snapcontext(out: &[u8]) -> Result<SnapContext> {
    let snapc = decode_reply("get_snapcontext", out, decode_snap_context)?;
    if !snap_context_is_valid(&snapc) {
        return Err(bad_reply("get_snapcontext", format!("invalid snap context {snapc:?}")));
    }
    Ok(snapc)
}

/// The output of `snapshot_get`.
pub fn decode_snapshot_get(out: &[u8]) -> Result<SnapshotInfo> {
    decode_reply("snapshot_get", out, SnapshotInfo::decode)
}

/// The output of `get_protection_status`; a byte that is not a status is `-EBADMSG`.
pub fn decode_get_protection_status(out: &[u8]) -> Result<ProtectionStatus> {
    let b = decode_reply("get_protection_status", out, |d| d.u8())?;
    ProtectionStatus::from_wire(b)
        .ok_or_else(|| bad_reply("get_protection_status", format!("status byte {b}")))
}

/// The output of `metadata_get`: the value (bytes with a length prefix).
pub fn decode_metadata_get(out: &[u8]) -> Result<Vec<u8>> {
    decode_reply("metadata_get", out, |d| d.bytes())
}

/// The output of `metadata_list`: key (without prefix) → value.
pub fn decode_metadata_list(out: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    decode_reply("metadata_list", out, |d| d.map(|d| d.string(), |d| d.bytes()))
}

/// The output of `dir_list`: image name → image id.
pub fn decode_dir_list(out: &[u8]) -> Result<BTreeMap<String, String>> {
    decode_reply("dir_list", out, |d| d.get())
}

// ---------------------------------------------------------------------------------------------
// Calls

async fn call(ioctx: &IoCtx, oid: &str, method: &str, input: &[u8]) -> Result<Vec<u8>> {
    ioctx.exec(oid, CLASS, method, input).await
}

/// Initialises the header `oid` (librbd adds an exclusive create in the same op; see
/// [`write_op_create_image`]). `data_pool_id` is -1 unless `features` has the data-pool bit.
pub async fn create_image(
    ioctx: &IoCtx,
    oid: &str,
    size: u64,
    order: u8,
    features: u64,
    object_prefix: &str,
    data_pool_id: i64,
) -> Result<()> {
    call(ioctx, oid, method::CREATE, &encode_create(size, order, features, object_prefix, data_pool_id))
        .await
        .map(drop)
}

/// Size and order of the head ([`CEPH_NOSNAP`]) or of a snapshot.
pub async fn get_size(ioctx: &IoCtx, oid: &str, snap_id: u64) -> Result<ImageSize> {
    decode_get_size(&call(ioctx, oid, method::GET_SIZE, &encode_snap_id(snap_id)).await?)
}

/// Sets the head's size (the data objects are the caller's business).
pub async fn set_size(ioctx: &IoCtx, oid: &str, size: u64) -> Result<()> {
    call(ioctx, oid, method::SET_SIZE, &encode_u64(size)).await.map(drop)
}

/// Features and the subset a client must understand to open the image read-only or
/// read-write.
pub async fn get_features(ioctx: &IoCtx, oid: &str, read_only: bool) -> Result<ImageFeatures> {
    decode_get_features(&call(ioctx, oid, method::GET_FEATURES, &encode_get_features(read_only)).await?)
}

/// Sets the bits of `mask` to their values in `features` (only mutable features; see
/// [`features::MUTABLE`]).
pub async fn set_features(ioctx: &IoCtx, oid: &str, features: u64, mask: u64) -> Result<()> {
    call(ioctx, oid, method::SET_FEATURES, &encode_set_features(features, mask)).await.map(drop)
}

/// The data objects' name prefix.
pub async fn get_object_prefix(ioctx: &IoCtx, oid: &str) -> Result<String> {
    decode_string(&call(ioctx, oid, method::GET_OBJECT_PREFIX, &[]).await?)
}

/// The separate data pool, -1 when the data lives in the header's pool.
pub async fn get_data_pool(ioctx: &IoCtx, oid: &str) -> Result<i64> {
    decode_get_data_pool(&call(ioctx, oid, method::GET_DATA_POOL, &[]).await?)
}

/// The flags of the head ([`CEPH_NOSNAP`]) or of a snapshot.
pub async fn get_flags(ioctx: &IoCtx, oid: &str, snap_id: u64) -> Result<u64> {
    decode_u64(&call(ioctx, oid, method::GET_FLAGS, &encode_snap_id(snap_id)).await?)
}

/// The operation features.
pub async fn op_features_get(ioctx: &IoCtx, oid: &str) -> Result<u64> {
    decode_u64(&call(ioctx, oid, method::OP_FEATURES_GET, &[]).await?)
}

/// The snap context the image's data writes must carry.
pub async fn get_snapcontext(ioctx: &IoCtx, oid: &str) -> Result<SnapContext> {
    decode_get_snapcontext(&call(ioctx, oid, method::GET_SNAPCONTEXT, &[]).await?)
}

/// One snapshot's id, namespace, name, size, time and child count.
pub async fn snapshot_get(ioctx: &IoCtx, oid: &str, snap_id: u64) -> Result<SnapshotInfo> {
    decode_snapshot_get(&call(ioctx, oid, method::SNAPSHOT_GET, &encode_snap_id(snap_id)).await?)
}

/// Records snapshot `snap_id` (allocated by the caller with `selfmanaged_snap_create`) under
/// `name`. `-ESTALE` means the id is older than the header's `snap_seq`: allocate another
/// (rbd §5.6 step 7).
pub async fn snapshot_add(
    ioctx: &IoCtx,
    oid: &str,
    snap_id: u64,
    name: &str,
    namespace: &SnapshotNamespace,
) -> Result<()> {
    call(ioctx, oid, method::SNAPSHOT_ADD, &encode_snapshot_add(snap_id, name, namespace)).await.map(drop)
}

/// Forgets a snapshot (`-EBUSY` while protected).
pub async fn snapshot_remove(ioctx: &IoCtx, oid: &str, snap_id: u64) -> Result<()> {
    call(ioctx, oid, method::SNAPSHOT_REMOVE, &encode_snap_id(snap_id)).await.map(drop)
}

/// Renames a user snapshot (`-EEXIST` if the name is taken).
pub async fn snapshot_rename(ioctx: &IoCtx, oid: &str, src_snap_id: u64, dst_name: &str) -> Result<()> {
    call(ioctx, oid, method::SNAPSHOT_RENAME, &encode_snapshot_rename(src_snap_id, dst_name)).await.map(drop)
}

/// A snapshot's protection status.
pub async fn get_protection_status(ioctx: &IoCtx, oid: &str, snap_id: u64) -> Result<ProtectionStatus> {
    decode_get_protection_status(
        &call(ioctx, oid, method::GET_PROTECTION_STATUS, &encode_snap_id(snap_id)).await?,
    )
}

/// Sets a snapshot's protection status (the image needs the layering feature).
pub async fn set_protection_status(
    ioctx: &IoCtx,
    oid: &str,
    snap_id: u64,
    status: ProtectionStatus,
) -> Result<()> {
    call(ioctx, oid, method::SET_PROTECTION_STATUS, &encode_set_protection_status(snap_id, status))
        .await
        .map(drop)
}

/// The snapshot limit (`u64::MAX`: none).
pub async fn snapshot_get_limit(ioctx: &IoCtx, oid: &str) -> Result<u64> {
    decode_u64(&call(ioctx, oid, method::SNAPSHOT_GET_LIMIT, &[]).await?)
}

/// Sets the snapshot limit; `u64::MAX` removes it.
pub async fn snapshot_set_limit(ioctx: &IoCtx, oid: &str, limit: u64) -> Result<()> {
    call(ioctx, oid, method::SNAPSHOT_SET_LIMIT, &encode_u64(limit)).await.map(drop)
}

/// Sets image metadata entries.
pub async fn metadata_set(ioctx: &IoCtx, oid: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    call(ioctx, oid, method::METADATA_SET, &encode_metadata_set(data)).await.map(drop)
}

/// One image metadata value (`-ENOENT` if unset).
pub async fn metadata_get(ioctx: &IoCtx, oid: &str, key: &str) -> Result<Vec<u8>> {
    decode_metadata_get(&call(ioctx, oid, method::METADATA_GET, &encode_string(key)).await?)
}

/// Up to `max_return` metadata entries after `start_after` (0 means 64).
pub async fn metadata_list(
    ioctx: &IoCtx,
    oid: &str,
    start_after: &str,
    max_return: u64,
) -> Result<BTreeMap<String, Vec<u8>>> {
    decode_metadata_list(
        &call(ioctx, oid, method::METADATA_LIST, &encode_list(start_after, max_return)).await?,
    )
}

/// Removes a metadata entry (an unset key is not an error).
pub async fn metadata_remove(ioctx: &IoCtx, oid: &str, key: &str) -> Result<()> {
    call(ioctx, oid, method::METADATA_REMOVE, &encode_string(key)).await.map(drop)
}

/// The image id held by `rbd_id.<name>`.
pub async fn get_id(ioctx: &IoCtx, oid: &str) -> Result<String> {
    decode_string(&call(ioctx, oid, method::GET_ID, &[]).await?)
}

/// Writes the image id into an existing, empty `rbd_id.<name>` (see [`write_op_set_id`] for
/// librbd's create-and-set in one op).
pub async fn set_id(ioctx: &IoCtx, oid: &str, id: &str) -> Result<()> {
    call(ioctx, oid, method::SET_ID, &encode_string(id)).await.map(drop)
}

/// The id of image `name` in the directory `oid`.
pub async fn dir_get_id(ioctx: &IoCtx, oid: &str, name: &str) -> Result<String> {
    decode_string(&call(ioctx, oid, method::DIR_GET_ID, &encode_string(name)).await?)
}

/// The name of image `id` in the directory `oid`.
pub async fn dir_get_name(ioctx: &IoCtx, oid: &str, id: &str) -> Result<String> {
    decode_string(&call(ioctx, oid, method::DIR_GET_NAME, &encode_string(id)).await?)
}

/// Up to `max_return` images (name → id) after `start_after`. `-ENOENT` when the directory
/// object does not exist yet (librbd reads that as "no images").
pub async fn dir_list(
    ioctx: &IoCtx,
    oid: &str,
    start_after: &str,
    max_return: u64,
) -> Result<BTreeMap<String, String>> {
    decode_dir_list(&call(ioctx, oid, method::DIR_LIST, &encode_list(start_after, max_return)).await?)
}

/// Adds an image to the directory (creating it); `-EEXIST` for a taken name, `-EBADF` for a
/// taken id.
pub async fn dir_add_image(ioctx: &IoCtx, oid: &str, name: &str, id: &str) -> Result<()> {
    call(ioctx, oid, method::DIR_ADD_IMAGE, &encode_dir_entry(name, id)).await.map(drop)
}

/// Removes an image from the directory; `-ESTALE` if name and id no longer match.
pub async fn dir_remove_image(ioctx: &IoCtx, oid: &str, name: &str, id: &str) -> Result<()> {
    call(ioctx, oid, method::DIR_REMOVE_IMAGE, &encode_dir_entry(name, id)).await.map(drop)
}

/// Renames an image in the directory in one step.
pub async fn dir_rename_image(ioctx: &IoCtx, oid: &str, src: &str, dest: &str, id: &str) -> Result<()> {
    call(ioctx, oid, method::DIR_RENAME_IMAGE, &encode_dir_rename(src, dest, id)).await.map(drop)
}

// ---------------------------------------------------------------------------------------------
// Compound ops

/// Adds `create` to a write op. librbd precedes it with an exclusive create of the header so
/// that two creators cannot both succeed.
pub fn write_op_create_image(
    op: WriteOp,
    size: u64,
    order: u8,
    features: u64,
    object_prefix: &str,
    data_pool_id: i64,
) -> WriteOp {
    op.exec(CLASS, method::CREATE, encode_create(size, order, features, object_prefix, data_pool_id))
}

/// Adds `set_size` to a write op.
pub fn write_op_set_size(op: WriteOp, size: u64) -> WriteOp {
    op.exec(CLASS, method::SET_SIZE, encode_u64(size))
}

/// Adds `set_features` to a write op.
pub fn write_op_set_features(op: WriteOp, features: u64, mask: u64) -> WriteOp {
    op.exec(CLASS, method::SET_FEATURES, encode_set_features(features, mask))
}

/// Adds `snapshot_add` to a write op.
pub fn write_op_snapshot_add(
    op: WriteOp,
    snap_id: u64,
    name: &str,
    namespace: &SnapshotNamespace,
) -> WriteOp {
    op.exec(CLASS, method::SNAPSHOT_ADD, encode_snapshot_add(snap_id, name, namespace))
}

/// Adds `snapshot_remove` to a write op.
pub fn write_op_snapshot_remove(op: WriteOp, snap_id: u64) -> WriteOp {
    op.exec(CLASS, method::SNAPSHOT_REMOVE, encode_snap_id(snap_id))
}

/// Adds `snapshot_rename` to a write op.
pub fn write_op_snapshot_rename(op: WriteOp, src_snap_id: u64, dst_name: &str) -> WriteOp {
    op.exec(CLASS, method::SNAPSHOT_RENAME, encode_snapshot_rename(src_snap_id, dst_name))
}

/// Adds `set_protection_status` to a write op.
pub fn write_op_set_protection_status(op: WriteOp, snap_id: u64, status: ProtectionStatus) -> WriteOp {
    op.exec(CLASS, method::SET_PROTECTION_STATUS, encode_set_protection_status(snap_id, status))
}

/// Adds `snapshot_set_limit` to a write op.
pub fn write_op_snapshot_set_limit(op: WriteOp, limit: u64) -> WriteOp {
    op.exec(CLASS, method::SNAPSHOT_SET_LIMIT, encode_u64(limit))
}

/// Adds `metadata_set` to a write op.
pub fn write_op_metadata_set(op: WriteOp, data: &BTreeMap<String, Vec<u8>>) -> WriteOp {
    op.exec(CLASS, method::METADATA_SET, encode_metadata_set(data))
}

/// Adds `metadata_remove` to a write op.
pub fn write_op_metadata_remove(op: WriteOp, key: &str) -> WriteOp {
    op.exec(CLASS, method::METADATA_REMOVE, encode_string(key))
}

/// Adds `set_id` to a write op (librbd: exclusive create, then `set_id`, in one op).
pub fn write_op_set_id(op: WriteOp, id: &str) -> WriteOp {
    op.exec(CLASS, method::SET_ID, encode_string(id))
}

/// Adds `dir_add_image` to a write op.
pub fn write_op_dir_add_image(op: WriteOp, name: &str, id: &str) -> WriteOp {
    op.exec(CLASS, method::DIR_ADD_IMAGE, encode_dir_entry(name, id))
}

/// Adds `dir_remove_image` to a write op.
pub fn write_op_dir_remove_image(op: WriteOp, name: &str, id: &str) -> WriteOp {
    op.exec(CLASS, method::DIR_REMOVE_IMAGE, encode_dir_entry(name, id))
}

/// Adds `dir_rename_image` to a write op.
pub fn write_op_dir_rename_image(op: WriteOp, src: &str, dest: &str, id: &str) -> WriteOp {
    op.exec(CLASS, method::DIR_RENAME_IMAGE, encode_dir_rename(src, dest, id))
}

/// Adds `get_size` to a read op.
pub fn read_op_get_size(op: ReadOp, snap_id: u64) -> ReadOp {
    op.exec(CLASS, method::GET_SIZE, encode_snap_id(snap_id))
}

/// Adds `get_features` to a read op.
pub fn read_op_get_features(op: ReadOp, read_only: bool) -> ReadOp {
    op.exec(CLASS, method::GET_FEATURES, encode_get_features(read_only))
}

/// Adds `get_flags` to a read op.
pub fn read_op_get_flags(op: ReadOp, snap_id: u64) -> ReadOp {
    op.exec(CLASS, method::GET_FLAGS, encode_snap_id(snap_id))
}

/// Adds `get_snapcontext` to a read op.
pub fn read_op_get_snapcontext(op: ReadOp) -> ReadOp {
    op.exec(CLASS, method::GET_SNAPCONTEXT, Vec::new())
}

/// Adds `snapshot_get` to a read op.
pub fn read_op_snapshot_get(op: ReadOp, snap_id: u64) -> ReadOp {
    op.exec(CLASS, method::SNAPSHOT_GET, encode_snap_id(snap_id))
}

/// Adds `get_protection_status` to a read op.
pub fn read_op_get_protection_status(op: ReadOp, snap_id: u64) -> ReadOp {
    op.exec(CLASS, method::GET_PROTECTION_STATUS, encode_snap_id(snap_id))
}

/// Adds the reads of librbd 16.2's refresh to a read op, in its order: `get_size(head)`,
/// `get_features(read_only)`, `get_flags(head)`, `get_snapcontext`,
/// `lock.get_info(rbd_lock)`. Decode the five results with [`decode_mutable_metadata`].
pub fn read_op_get_mutable_metadata(op: ReadOp, read_only: bool) -> ReadOp {
    let op = read_op_get_size(op, CEPH_NOSNAP);
    let op = read_op_get_features(op, read_only);
    let op = read_op_get_flags(op, CEPH_NOSNAP);
    let op = read_op_get_snapcontext(op);
    cls_lock_client::read_op_get_lock_info(op, RBD_LOCK_NAME)
}

/// Decodes the five results [`read_op_get_mutable_metadata`] produces (they must be the last
/// five of `results`); anything else is `-EBADMSG`.
pub fn decode_mutable_metadata(results: &[ReadResult]) -> Result<MutableMetadata> {
    let [size, feats, flags, snapc, lock] = results
        .get(results.len().saturating_sub(5)..)
        .and_then(|r| <&[ReadResult; 5]>::try_from(r).ok())
        .ok_or_else(|| bad_reply("mutable metadata", format!("{} results, 5 expected", results.len())))?;
    let out = |r: &ReadResult| match r {
        ReadResult::Exec(out) => Ok(out.clone()),
        other => Err(bad_reply("mutable metadata", format!("unexpected result {other:?}"))),
    };
    Ok(MutableMetadata {
        size: decode_get_size(&out(size)?)?,
        features: decode_get_features(&out(feats)?)?,
        flags: decode_u64(&out(flags)?)?,
        snapc: decode_get_snapcontext(&out(snapc)?)?,
        lock: cls_lock_client::decode_get_info_reply(&out(lock)?)?,
    })
}

/// Reads everything librbd's refresh reads first, in one consistent compound op.
pub async fn get_mutable_metadata(ioctx: &IoCtx, oid: &str, read_only: bool) -> Result<MutableMetadata> {
    let results = ioctx.operate_read(oid, &read_op_get_mutable_metadata(ReadOp::new(), read_only)).await?;
    decode_mutable_metadata(&results)
}
