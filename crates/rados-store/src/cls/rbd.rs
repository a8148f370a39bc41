//! The `rbd` object class: the subset of Ceph 16.2's cls_rbd that format-2 images need.
//!
//! An RBD image is a handful of RADOS objects whose metadata only ever changes through this
//! class: `rbd_id.<name>` holds the image id, `rbd_header.<id>` holds size, order, features,
//! snapshots and metadata in its omap, and `rbd_directory` maps names to ids (rbd §0.1, §6.1).
//! Clients never write those objects directly, so the class *is* the on-disk format: the same
//! typed client must work against this embedded implementation and against a real OSD. That
//! is why every method here keeps cls_rbd's method name, its input and output encodings, its
//! omap keys and value encodings, its error codes, and the order in which it checks them.
//!
//! # Methods
//!
//! Inputs and outputs are bare concatenations of Ceph encodings (no envelope), except where a
//! struct is named. `snap` is a `u64` snapshot id, [`CEPH_NOSNAP`] for the head.
//!
//! | method | flags | input | output |
//! |---|---|---|---|
//! | `create` | RW | size u64, order u8, features u64, object_prefix string, [data_pool_id i64] | — |
//! | `get_size` | RD | snap | order u8, size u64 |
//! | `set_size` | RW | size u64 | — |
//! | `get_features` | RD | snap (ignored), [read_only bool] | features u64, incompatible u64 |
//! | `set_features` | RW | features u64, mask u64 | — |
//! | `get_object_prefix` | RD | — | string |
//! | `get_data_pool` | RD | — | pool i64 (-1: none) |
//! | `get_flags` | RD | snap | flags u64 |
//! | `op_features_get` | RD | — | op features u64 |
//! | `get_snapcontext` | RD | — | seq u64, ids `vector<u64>` newest first |
//! | `snapshot_get` | RD | snap | [`SnapshotInfo`] |
//! | `snapshot_add` | RW | name string, snap, [[`SnapshotNamespace`]] | — |
//! | `snapshot_remove` | RW | snap | — |
//! | `snapshot_rename` | RW | snap, new name string | — |
//! | `get_protection_status` | RD | snap | status u8 |
//! | `set_protection_status` | RW | snap, status u8 | — |
//! | `snapshot_get_limit` | RD | — | limit u64 (`u64::MAX`: none) |
//! | `snapshot_set_limit` | RW | limit u64 | — |
//! | `metadata_set` | RW | `map<string, bytes>` | — |
//! | `metadata_get` | RD | key string | value bytes |
//! | `metadata_list` | RD | start_after string, max u64 (0 = 64) | `map<string, bytes>` |
//! | `metadata_remove` | RW | key string | — |
//! | `get_id` | RD | — | id string (from the object's data) |
//! | `set_id` | RW | id string | — |
//! | `dir_add_image` | RW | name string, id string | — |
//! | `dir_remove_image` | RW | name string, id string | — |
//! | `dir_rename_image` | RW | src string, dest string, id string | — |
//! | `dir_get_id` | RD | name string | id string |
//! | `dir_get_name` | RD | id string | name string |
//! | `dir_list` | RD | start_after string, max u64 | `map<string, string>` name → id |
//!
//! # Header omap (values in Ceph encoding)
//!
//! `size` u64, `order` u8, `features` u64, `object_prefix` string, `snap_seq` u64,
//! `create_timestamp` / `access_timestamp` / `modify_timestamp` utime, `data_pool_id` i64
//! (data-pool images only), `flags` u64, `op_features` u64, `snap_limit` u64, `parent`
//! [`ParentLink`], `snapshot_<16 lowercase hex>` [`SnapshotRecord`], and `metadata_<key>` holding
//! the raw value bytes. The directory holds `name_<name>` → id string and `id_<id>` → name
//! string; `rbd_id.<name>` holds the id string as its data.
//!
//! # One OSD quirk kept on purpose
//!
//! Inside one method call, a real OSD's omap reads see the object as it was before the call:
//! the method's own omap writes are not visible to its later reads. The embedded store does
//! show them, so every method here finishes its reads before its first write wherever the
//! difference could matter (`dir_rename_image` to the same name fails with `-EEXIST` on Ceph,
//! and does here).

use std::collections::BTreeMap;

use crate::cls::{CLS_METHOD_RD, CLS_METHOD_WR, ClassRegistry, ClsContext, ClsMethod};
use crate::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder};
use crate::error::{Error, Result, errno};

mod directory;
mod header;
mod metadata;
mod snapshot;
pub mod types;

pub use types::{
    CEPH_MAXSNAP, CEPH_NOSNAP, MirrorSnapshotNamespace, MirrorSnapshotState, ParentLink, ProtectionStatus,
    SnapshotInfo, SnapshotNamespace, SnapshotNamespaceType, SnapshotRecord,
};

/// The class name clients pass to `exec`.
pub const CLASS: &str = "rbd";

/// How many omap entries cls_rbd reads per round trip (`RBD_MAX_KEYS_READ`); also what
/// `metadata_list` returns when asked for 0 entries.
pub const MAX_KEYS_READ: u64 = 64;

/// The method names, as Ceph registers them.
pub mod method {
    /// Initialise a header.
    pub const CREATE: &str = "create";
    /// Size and order of the head or a snapshot.
    pub const GET_SIZE: &str = "get_size";
    /// Resize the head.
    pub const SET_SIZE: &str = "set_size";
    /// Feature bits and the incompatible subset.
    pub const GET_FEATURES: &str = "get_features";
    /// Enable or disable mutable features.
    pub const SET_FEATURES: &str = "set_features";
    /// The data objects' name prefix.
    pub const GET_OBJECT_PREFIX: &str = "get_object_prefix";
    /// The separate data pool, if any.
    pub const GET_DATA_POOL: &str = "get_data_pool";
    /// Image or snapshot flags.
    pub const GET_FLAGS: &str = "get_flags";
    /// Operation features (clone, group, snap-trash).
    pub const OP_FEATURES_GET: &str = "op_features_get";
    /// The snap context writes must carry.
    pub const GET_SNAPCONTEXT: &str = "get_snapcontext";
    /// One snapshot's record.
    pub const SNAPSHOT_GET: &str = "snapshot_get";
    /// Record a new snapshot.
    pub const SNAPSHOT_ADD: &str = "snapshot_add";
    /// Forget a snapshot.
    pub const SNAPSHOT_REMOVE: &str = "snapshot_remove";
    /// Rename a user snapshot.
    pub const SNAPSHOT_RENAME: &str = "snapshot_rename";
    /// A snapshot's protection status.
    pub const GET_PROTECTION_STATUS: &str = "get_protection_status";
    /// Protect, unprotect, or mark unprotecting.
    pub const SET_PROTECTION_STATUS: &str = "set_protection_status";
    /// The snapshot count limit.
    pub const SNAPSHOT_GET_LIMIT: &str = "snapshot_get_limit";
    /// Set or clear the snapshot count limit.
    pub const SNAPSHOT_SET_LIMIT: &str = "snapshot_set_limit";
    /// Set image metadata entries.
    pub const METADATA_SET: &str = "metadata_set";
    /// One image metadata value.
    pub const METADATA_GET: &str = "metadata_get";
    /// A page of image metadata.
    pub const METADATA_LIST: &str = "metadata_list";
    /// Remove an image metadata entry.
    pub const METADATA_REMOVE: &str = "metadata_remove";
    /// Read the id from `rbd_id.<name>`.
    pub const GET_ID: &str = "get_id";
    /// Write the id into `rbd_id.<name>`.
    pub const SET_ID: &str = "set_id";
    /// Add a name/id pair to `rbd_directory`.
    pub const DIR_ADD_IMAGE: &str = "dir_add_image";
    /// Remove a name/id pair from `rbd_directory`.
    pub const DIR_REMOVE_IMAGE: &str = "dir_remove_image";
    /// Rename an image in `rbd_directory`.
    pub const DIR_RENAME_IMAGE: &str = "dir_rename_image";
    /// Name to id.
    pub const DIR_GET_ID: &str = "dir_get_id";
    /// Id to name.
    pub const DIR_GET_NAME: &str = "dir_get_name";
    /// A page of name → id.
    pub const DIR_LIST: &str = "dir_list";
}

/// Header omap keys and key builders (rbd §6.1).
pub mod key {
    /// Image size in bytes (u64).
    pub const SIZE: &str = "size";
    /// log2 of the object size (u8).
    pub const ORDER: &str = "order";
    /// Feature bits (u64).
    pub const FEATURES: &str = "features";
    /// Prefix of the data objects (string).
    pub const OBJECT_PREFIX: &str = "object_prefix";
    /// Highest snapshot id ever recorded (u64).
    pub const SNAP_SEQ: &str = "snap_seq";
    /// Creation time (utime).
    pub const CREATE_TIMESTAMP: &str = "create_timestamp";
    /// Last access time (utime).
    pub const ACCESS_TIMESTAMP: &str = "access_timestamp";
    /// Last modification time (utime).
    pub const MODIFY_TIMESTAMP: &str = "modify_timestamp";
    /// Separate data pool (i64), data-pool images only.
    pub const DATA_POOL_ID: &str = "data_pool_id";
    /// Image flags (u64); absent means 0.
    pub const FLAGS: &str = "flags";
    /// Operation features (u64); absent means 0.
    pub const OP_FEATURES: &str = "op_features";
    /// Maximum number of snapshots (u64); absent means unlimited.
    pub const SNAP_LIMIT: &str = "snap_limit";
    /// The clone link ([`super::ParentLink`]).
    pub const PARENT: &str = "parent";
    /// Prefix of snapshot records.
    pub const SNAPSHOT_PREFIX: &str = "snapshot_";
    /// Prefix of image metadata entries.
    pub const METADATA_PREFIX: &str = "metadata_";
    /// Prefix of the directory's name → id entries.
    pub const DIR_NAME_PREFIX: &str = "name_";
    /// Prefix of the directory's id → name entries.
    pub const DIR_ID_PREFIX: &str = "id_";

    /// `snapshot_<id as 16 lowercase hex digits>`, so that key order is id order.
    pub fn snapshot(snap_id: u64) -> String {
        format!("{SNAPSHOT_PREFIX}{snap_id:016x}")
    }

    /// The id in a snapshot key; `None` if it is not one.
    pub fn snapshot_id(key: &str) -> Option<u64> {
        let hex = key.strip_prefix(SNAPSHOT_PREFIX)?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    }

    /// `metadata_<key>`.
    pub fn metadata(name: &str) -> String {
        format!("{METADATA_PREFIX}{name}")
    }

    /// `name_<image name>` in `rbd_directory`.
    pub fn dir_name(name: &str) -> String {
        format!("{DIR_NAME_PREFIX}{name}")
    }

    /// `id_<image id>` in `rbd_directory`.
    pub fn dir_id(id: &str) -> String {
        format!("{DIR_ID_PREFIX}{id}")
    }
}

/// Object names of a format-2 image (rbd §0.1).
pub mod oid {
    /// The pool's image directory.
    pub const RBD_DIRECTORY: &str = "rbd_directory";

    /// `rbd_id.<image name>`: holds the image id.
    pub fn id(image_name: &str) -> String {
        format!("rbd_id.{image_name}")
    }

    /// `rbd_header.<image id>`: the header every method above (but the directory and id ones)
    /// runs on.
    pub fn header(image_id: &str) -> String {
        format!("rbd_header.{image_id}")
    }

    /// `rbd_data.<image id>`: the object prefix librbd gives a new image.
    pub fn data_prefix(image_id: &str) -> String {
        format!("rbd_data.{image_id}")
    }

    /// `<object prefix>.<object number as 16 lowercase hex digits>`: one data object.
    pub fn data(object_prefix: &str, object_no: u64) -> String {
        format!("{object_prefix}.{object_no:016x}")
    }
}

/// Image feature bits (`include/rbd/features.h`, 16.2) and the groups cls_rbd checks.
pub mod features {
    /// Clones (and snapshot protection).
    pub const LAYERING: u64 = 1 << 0;
    /// Fancy striping.
    pub const STRIPINGV2: u64 = 1 << 1;
    /// The exclusive lock (rbd §1, §2).
    pub const EXCLUSIVE_LOCK: u64 = 1 << 2;
    /// Object map.
    pub const OBJECT_MAP: u64 = 1 << 3;
    /// Fast diff.
    pub const FAST_DIFF: u64 = 1 << 4;
    /// Deep flatten.
    pub const DEEP_FLATTEN: u64 = 1 << 5;
    /// Journaling.
    pub const JOURNALING: u64 = 1 << 6;
    /// Data objects in a separate pool.
    pub const DATA_POOL: u64 = 1 << 7;
    /// Operation features are in use (internal).
    pub const OPERATIONS: u64 = 1 << 8;
    /// Being migrated (internal).
    pub const MIGRATING: u64 = 1 << 9;
    /// Non-primary mirror image.
    pub const NON_PRIMARY: u64 = 1 << 10;
    /// Dirty persistent write-back cache.
    pub const DIRTY_CACHE: u64 = 1 << 11;

    /// Every feature 16.2 knows; `create` refuses others with `-ENOSYS`.
    pub const ALL: u64 = LAYERING
        | STRIPINGV2
        | EXCLUSIVE_LOCK
        | OBJECT_MAP
        | FAST_DIFF
        | DEEP_FLATTEN
        | JOURNALING
        | DATA_POOL
        | OPERATIONS
        | MIGRATING
        | NON_PRIMARY
        | DIRTY_CACHE;
    /// Features a client must understand to open the image at all.
    pub const INCOMPATIBLE: u64 = LAYERING | STRIPINGV2 | DATA_POOL | DIRTY_CACHE;
    /// Features a client must understand to write to the image.
    pub const RW_INCOMPATIBLE: u64 = INCOMPATIBLE
        | EXCLUSIVE_LOCK
        | OBJECT_MAP
        | FAST_DIFF
        | DEEP_FLATTEN
        | JOURNALING
        | OPERATIONS
        | MIGRATING
        | NON_PRIMARY;
    /// Features `set_features` may turn on or off.
    pub const MUTABLE: u64 = EXCLUSIVE_LOCK | OBJECT_MAP | FAST_DIFF | JOURNALING | NON_PRIMARY | DIRTY_CACHE;
    /// Features `set_features` may only turn off.
    pub const DISABLE_ONLY: u64 = DEEP_FLATTEN;
    /// Features only cls_rbd itself sets; a mask naming them is `-EINVAL`.
    pub const INTERNAL: u64 = OPERATIONS | MIGRATING;

    /// Operation feature: the image is a clone-v2 parent.
    pub const OP_CLONE_PARENT: u64 = 1 << 0;
    /// Operation feature: the image is a clone-v2 child.
    pub const OP_CLONE_CHILD: u64 = 1 << 1;
    /// Operation feature: the image is in a group.
    pub const OP_GROUP: u64 = 1 << 2;
    /// Operation feature: the image has trashed snapshots.
    pub const OP_SNAP_TRASH: u64 = 1 << 3;
}

/// Errnos cls_rbd returns that the store's [`errno`] table does not name.
pub mod rbd_errno {
    /// `-ENOEXEC`: the image lacks a feature the method needs (layering, for protection).
    pub const ENOEXEC: i32 = 8;
    /// `-EBADF`: `dir_add_image` found the id already in the directory.
    pub const EBADF: i32 = 9;
    /// `-ENOSYS`: `create` was asked for a feature this cls_rbd does not know.
    pub const ENOSYS: i32 = 38;
}

/// Registers every method with the flags Ceph gives it. A method without WR runs as a read:
/// on a missing object the OSD answers `-ENOENT` before the method runs.
pub fn register(reg: &mut ClassRegistry) {
    const RD: u32 = CLS_METHOD_RD;
    const RW: u32 = CLS_METHOD_RD | CLS_METHOD_WR;
    let methods: [(&str, u32, ClsMethod); 30] = [
        (method::CREATE, RW, header::create),
        (method::GET_SIZE, RD, header::get_size),
        (method::SET_SIZE, RW, header::set_size),
        (method::GET_FEATURES, RD, header::get_features),
        (method::SET_FEATURES, RW, header::set_features),
        (method::GET_OBJECT_PREFIX, RD, header::get_object_prefix),
        (method::GET_DATA_POOL, RD, header::get_data_pool),
        (method::GET_FLAGS, RD, header::get_flags),
        (method::OP_FEATURES_GET, RD, header::op_features_get),
        (method::GET_SNAPCONTEXT, RD, snapshot::get_snapcontext),
        (method::SNAPSHOT_GET, RD, snapshot::snapshot_get),
        (method::SNAPSHOT_ADD, RW, snapshot::snapshot_add),
        (method::SNAPSHOT_REMOVE, RW, snapshot::snapshot_remove),
        (method::SNAPSHOT_RENAME, RW, snapshot::snapshot_rename),
        (method::GET_PROTECTION_STATUS, RD, snapshot::get_protection_status),
        (method::SET_PROTECTION_STATUS, RW, snapshot::set_protection_status),
        (method::SNAPSHOT_GET_LIMIT, RD, snapshot::snapshot_get_limit),
        (method::SNAPSHOT_SET_LIMIT, RW, snapshot::snapshot_set_limit),
        (method::METADATA_SET, RW, metadata::metadata_set),
        (method::METADATA_GET, RD, metadata::metadata_get),
        (method::METADATA_LIST, RD, metadata::metadata_list),
        (method::METADATA_REMOVE, RW, metadata::metadata_remove),
        (method::GET_ID, RD, directory::get_id),
        (method::SET_ID, RW, directory::set_id),
        (method::DIR_ADD_IMAGE, RW, directory::dir_add_image),
        (method::DIR_REMOVE_IMAGE, RW, directory::dir_remove_image),
        (method::DIR_RENAME_IMAGE, RW, directory::dir_rename_image),
        (method::DIR_GET_ID, RD, directory::dir_get_id),
        (method::DIR_GET_NAME, RD, directory::dir_get_name),
        (method::DIR_LIST, RD, directory::dir_list),
    ];
    for (name, flags, func) in methods {
        reg.register(CLASS, name, flags, func);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the method modules: cls_rbd's own small vocabulary.

/// Decodes a method's input with `f`. As in Ceph, bytes after what `f` reads are ignored and
/// anything that does not decode is `-EINVAL`.
fn decode_input<'a, T>(input: &'a [u8], f: impl FnOnce(&mut Decoder<'a>) -> DecodeResult<T>) -> Result<T> {
    let mut d = Decoder::new(input);
    f(&mut d).map_err(|e| Error::InvalidArgument(format!("cls_rbd: undecodable input: {e}")))
}

/// Encodes a method's output.
fn output(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    f(&mut e);
    e.into_vec()
}

fn os(code: i32, what: impl Into<String>) -> Error {
    Error::from_errno(code, what)
}

fn invalid(what: impl Into<String>) -> Error {
    Error::InvalidArgument(what.into())
}

fn is_enoent(e: &Error) -> bool {
    e.errno() == errno::ENOENT
}

/// cls_rbd's `read_key`: the omap value under `key`, decoded. A missing object or key passes
/// the OSD's error through (`-ENOENT`); a value that does not decode is `-EIO`.
fn read_key<T: Decode>(ctx: &dyn ClsContext, key: &str) -> Result<T> {
    let raw = ctx.omap_get_val(key)?;
    T::decode(&mut Decoder::new(&raw))
        .map_err(|e| os(errno::EIO, format!("cls_rbd: undecodable {key:?}: {e}")))
}

/// [`read_key`] with a missing key (or object) as `None`.
fn read_key_opt<T: Decode>(ctx: &dyn ClsContext, key: &str) -> Result<Option<T>> {
    match read_key(ctx, key) {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_enoent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// cls_rbd's `write_key`: one omap value, Ceph-encoded.
fn write_key<T: Encode + ?Sized>(ctx: &mut dyn ClsContext, key: &str, value: &T) -> Result<()> {
    let mut kv = BTreeMap::new();
    kv.insert(key.to_owned(), crate::encoding::encode_to_vec(value));
    ctx.omap_set_vals(&kv)
}

/// cls_rbd's `remove_key`: a missing key is fine (the OSD does not report one anyway).
fn remove_key(ctx: &mut dyn ClsContext, key: &str) -> Result<()> {
    match ctx.omap_remove_keys(&[key.to_owned()]) {
        Err(e) if !is_enoent(&e) => Err(e),
        _ => Ok(()),
    }
}

/// `cls_cxx_stat` as cls_rbd's `check_exists` uses it: `-ENOENT` for a missing object.
fn check_exists(ctx: &dyn ClsContext) -> Result<()> {
    ctx.stat().map(drop)
}

/// An OSD omap read with a filter prefix (`cls_cxx_map_get_vals(start_after, prefix, max)`):
/// up to `max` entries after `start_after` whose keys start with `prefix`, and whether more such
/// entries follow.
fn omap_get_vals_prefixed(
    ctx: &dyn ClsContext,
    start_after: &str,
    prefix: &str,
    max: u64,
) -> Result<(BTreeMap<String, Vec<u8>>, bool)> {
    let mut out = BTreeMap::new();
    let mut cursor = start_after.to_owned();
    loop {
        let (page, more) = ctx.omap_get_vals(&cursor, MAX_KEYS_READ)?;
        let Some(last) = page.keys().next_back() else { return Ok((out, false)) };
        cursor = last.clone();
        for (k, v) in page {
            if k.as_str() < prefix {
                continue;
            }
            if !k.starts_with(prefix) {
                return Ok((out, false));
            }
            if out.len() as u64 >= max {
                return Ok((out, true));
            }
            out.insert(k, v);
        }
        if !more {
            return Ok((out, false));
        }
    }
}

/// Every entry after `start_after` with keys starting with `prefix` (cls_rbd's paging loops
/// collapsed; they read 64 at a time but see the same entries).
fn omap_all_prefixed(
    ctx: &dyn ClsContext,
    start_after: &str,
    prefix: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    omap_get_vals_prefixed(ctx, start_after, prefix, u64::MAX).map(|(m, _)| m)
}

/// cls_rbd's `require_feature`: `-ENOEXEC` unless every bit of `need` is set (a header
/// without a `features` key is an old-format image and has none).
fn require_feature(ctx: &dyn ClsContext, need: u64) -> Result<()> {
    let features: u64 = match read_key(ctx, key::FEATURES) {
        Ok(f) => f,
        Err(e) if is_enoent(&e) => 0,
        Err(e) => return Err(e),
    };
    if features & need != need {
        return Err(os(rbd_errno::ENOEXEC, format!("cls_rbd: image lacks feature bits {need:#x}")));
    }
    Ok(())
}

/// cls_rbd's `set_op_features`: update the masked operation features, keeping the
/// `operations` feature bit set exactly while any operation feature is.
fn set_op_features(ctx: &mut dyn ClsContext, op_features: u64, mask: u64) -> Result<()> {
    let orig_features: u64 = read_key(ctx, key::FEATURES)?;
    let orig_op: u64 = read_key_opt(ctx, key::OP_FEATURES)?.unwrap_or(0);
    let op = (orig_op & !mask) | (op_features & mask);
    if op == orig_op {
        return Ok(());
    }
    let mut features = orig_features;
    if op == 0 {
        features &= !features::OPERATIONS;
        remove_key(ctx, key::OP_FEATURES)?;
    } else {
        features |= features::OPERATIONS;
        write_key(ctx, key::OP_FEATURES, &op)?;
    }
    if features != orig_features {
        write_key(ctx, key::FEATURES, &features)?;
    }
    Ok(())
}
