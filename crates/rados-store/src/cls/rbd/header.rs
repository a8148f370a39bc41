//! Header methods about the image head: creation, size, features, flags, prefix, data pool.

use std::collections::BTreeMap;

use super::{
    CEPH_NOSNAP, ParentLink, SnapshotRecord, decode_input, features, invalid, is_enoent, key, os, output,
    rbd_errno, read_key, read_key_opt, write_key,
};
use crate::cls::ClsContext;
use crate::encoding::encode_to_vec;
use crate::error::{Error, Result};

/// `create`: initialise a header. Checks, in cls_rbd's order: unknown feature bits
/// `-ENOSYS`; empty object prefix `-EINVAL`; a header already there (an `object_prefix` key,
/// or anything but "no such key") `-EEXIST`; the internal `operations` feature `-EINVAL`;
/// the data-pool feature without a pool, or a pool without the feature, `-EINVAL`.
pub(super) fn create(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (size, order, feats, object_prefix, data_pool_id) = decode_input(input, |d| {
        let size = d.u64()?;
        let order = d.u8()?;
        let feats = d.u64()?;
        let prefix = d.string()?;
        let pool = if d.is_empty() { -1 } else { d.i64()? };
        Ok((size, order, feats, prefix, pool))
    })?;
    if feats & !features::ALL != 0 {
        return Err(os(
            rbd_errno::ENOSYS,
            format!("cls_rbd: unknown feature bits {:#x}", feats & !features::ALL),
        ));
    }
    if object_prefix.is_empty() {
        return Err(invalid("cls_rbd: empty object prefix"));
    }
    match ctx.omap_get_val(key::OBJECT_PREFIX) {
        Err(e) if is_enoent(&e) => {}
        _ => {
            return Err(Error::Exists(format!(
                "cls_rbd: {:?} is already an image header",
                ctx.object_name()
            )));
        }
    }

    let now = ctx.now();
    let mut omap: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    omap.insert(key::SIZE.into(), encode_to_vec(&size));
    omap.insert(key::ORDER.into(), encode_to_vec(&order));
    omap.insert(key::FEATURES.into(), encode_to_vec(&feats));
    omap.insert(key::OBJECT_PREFIX.into(), encode_to_vec(&object_prefix));
    omap.insert(key::SNAP_SEQ.into(), encode_to_vec(&0u64));
    for k in [key::CREATE_TIMESTAMP, key::ACCESS_TIMESTAMP, key::MODIFY_TIMESTAMP] {
        omap.insert(k.into(), encode_to_vec(&now));
    }
    if feats & features::OPERATIONS != 0 {
        return Err(invalid("cls_rbd: the operations feature is internal"));
    }
    if feats & features::DATA_POOL != 0 {
        if data_pool_id == -1 {
            return Err(invalid("cls_rbd: data-pool feature without a data pool"));
        }
        omap.insert(key::DATA_POOL_ID.into(), encode_to_vec(&data_pool_id));
    } else if data_pool_id != -1 {
        return Err(invalid("cls_rbd: data pool given without the data-pool feature"));
    }
    ctx.omap_set_vals(&omap)?;
    Ok(Vec::new())
}

/// `get_features`: the feature bits and the subset a client must understand (to open the
/// image read-only when `read_only`, to write it otherwise). The snapshot id in the input is
/// required but ignored, as in 16.2.
pub(super) fn get_features(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let read_only = decode_input(input, |d| {
        let _snap_id = d.u64()?;
        if d.is_empty() { Ok(false) } else { d.bool() }
    })?;
    let feats: u64 = read_key(ctx, key::FEATURES)?;
    let mask = if read_only { features::INCOMPATIBLE } else { features::RW_INCOMPATIBLE };
    Ok(output(|e| {
        e.u64(feats).u64(feats & mask);
    }))
}

/// `set_features`: change the masked features. A mask naming internal features, enabling an
/// immutable one or disabling one that may not be disabled is `-EINVAL`; mask bits beyond what
/// 16.2 knows are dropped. A missing `features` key counts as 0 (and is then created).
pub(super) fn set_features(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (feats, mut mask) = decode_input(input, |d| Ok((d.u64()?, d.u64()?)))?;
    let orig: u64 = read_key_opt(ctx, key::FEATURES)?.unwrap_or(0);
    if mask & features::INTERNAL != 0 {
        return Err(invalid(format!("cls_rbd: internal features {:#x} in mask", mask & features::INTERNAL)));
    }
    mask &= features::ALL;
    let enabled = feats & mask;
    if enabled & !features::MUTABLE != 0 {
        return Err(invalid(format!("cls_rbd: cannot enable {:#x}", enabled & !features::MUTABLE)));
    }
    let disabled = !feats & mask;
    if disabled & !(features::MUTABLE | features::DISABLE_ONLY) != 0 {
        return Err(invalid(format!(
            "cls_rbd: cannot disable {:#x}",
            disabled & !(features::MUTABLE | features::DISABLE_ONLY)
        )));
    }
    write_key(ctx, key::FEATURES, &((orig & !mask) | (feats & mask)))?;
    Ok(Vec::new())
}

/// `get_size`: order and size of the head, or the size a snapshot captured. The order is read
/// first, so a header without one fails before anything else.
pub(super) fn get_size(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let snap_id = decode_input(input, |d| d.u64())?;
    let order: u8 = read_key(ctx, key::ORDER)?;
    let size: u64 = if snap_id == CEPH_NOSNAP {
        read_key(ctx, key::SIZE)?
    } else {
        read_key::<SnapshotRecord>(ctx, &key::snapshot(snap_id))?.image_size
    };
    Ok(output(|e| {
        e.u8(order).u64(size);
    }))
}

/// `set_size`: resize the head (`-ENOENT` if there is no `size`, i.e. no header). A shrink also
/// shrinks a clone's overlap with its parent.
pub(super) fn set_size(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let size = decode_input(input, |d| d.u64())?;
    let orig: u64 = read_key(ctx, key::SIZE)?;
    let parent: Option<ParentLink> = if size < orig { read_key_opt(ctx, key::PARENT)? } else { None };
    write_key(ctx, key::SIZE, &size)?;
    if let Some(mut parent) = parent
        && parent.exists()
        && parent.head_overlap.unwrap_or(0) > size
    {
        parent.head_overlap = Some(size);
        write_key(ctx, key::PARENT, &parent)?;
    }
    Ok(Vec::new())
}

/// `get_object_prefix`: the data objects' name prefix.
pub(super) fn get_object_prefix(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let prefix: String = read_key(ctx, key::OBJECT_PREFIX)?;
    Ok(output(|e| {
        e.string(&prefix);
    }))
}

/// `get_data_pool`: the separate data pool, or -1.
pub(super) fn get_data_pool(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let pool: i64 = read_key_opt(ctx, key::DATA_POOL_ID)?.unwrap_or(-1);
    Ok(output(|e| {
        e.i64(pool);
    }))
}

/// `get_flags`: the head's flags (absent: 0) or a snapshot's.
pub(super) fn get_flags(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let snap_id = decode_input(input, |d| d.u64())?;
    let flags: u64 = if snap_id == CEPH_NOSNAP {
        read_key_opt(ctx, key::FLAGS)?.unwrap_or(0)
    } else {
        read_key::<SnapshotRecord>(ctx, &key::snapshot(snap_id))?.flags
    };
    Ok(output(|e| {
        e.u64(flags);
    }))
}

/// `op_features_get`: the operation features (absent: 0). The input is ignored.
pub(super) fn op_features_get(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let op: u64 = read_key_opt(ctx, key::OP_FEATURES)?.unwrap_or(0);
    Ok(output(|e| {
        e.u64(op);
    }))
}
