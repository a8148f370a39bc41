//! Snapshot methods: the snap context, snapshot records, protection and the snapshot limit.

use super::{
    CEPH_MAXSNAP, CEPH_NOSNAP, ParentLink, ProtectionStatus, SnapshotNamespace, SnapshotNamespaceType,
    SnapshotRecord, check_exists, decode_input, features, invalid, key, omap_all_prefixed, os, output,
    read_key, read_key_opt, remove_key, require_feature, set_op_features, write_key,
};
use crate::cls::ClsContext;
use crate::encoding::Decode;
use crate::encoding::Decoder;
use crate::error::{Error, Result, errno};
use crate::snap::SnapContext;

/// Every snapshot record, in id order (cls_rbd's `snapshot::iterate`); `-EIO` if one does not
/// decode.
fn all_snapshots(ctx: &dyn ClsContext) -> Result<Vec<SnapshotRecord>> {
    omap_all_prefixed(ctx, key::SNAPSHOT_PREFIX, key::SNAPSHOT_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            SnapshotRecord::decode(&mut Decoder::new(&v))
                .map_err(|e| os(errno::EIO, format!("cls_rbd: undecodable snapshot record {k:?}: {e}")))
        })
        .collect()
}

/// cls_rbd's `snapshot::write`: a record that still embeds its parent link (pre-Nautilus
/// form) is normalised first: the link moves to the header's `parent` key (if none is there)
/// and the record keeps only the overlap.
fn write_snapshot(ctx: &mut dyn ClsContext, mut snap: SnapshotRecord) -> Result<()> {
    if snap.legacy_parent.exists() {
        let on_disk: ParentLink = read_key_opt(ctx, key::PARENT)?.unwrap_or_default();
        if !on_disk.exists() {
            let link = ParentLink { head_overlap: None, ..snap.legacy_parent.clone() };
            write_key(ctx, key::PARENT, &link)?;
        }
        snap.parent_overlap = snap.legacy_parent.head_overlap;
        snap.legacy_parent = ParentLink::default();
    }
    write_key(ctx, &key::snapshot(snap.id), &snap)
}

/// `get_snapcontext`: `snap_seq` and every snapshot id, newest first, as writes must carry
/// them. `-ENOENT` without `snap_seq`; `-EIO` for a snapshot key whose id is not hex.
pub(super) fn get_snapcontext(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let mut snaps = omap_all_prefixed(ctx, key::SNAPSHOT_PREFIX, key::SNAPSHOT_PREFIX)?
        .keys()
        .map(|k| {
            key::snapshot_id(k).ok_or_else(|| os(errno::EIO, format!("cls_rbd: bad snapshot key {k:?}")))
        })
        .collect::<Result<Vec<u64>>>()?;
    let seq: u64 = read_key(ctx, key::SNAP_SEQ)?;
    snaps.reverse();
    let snapc = SnapContext { seq, snaps };
    Ok(output(|e| super::types::encode_snap_context(e, &snapc)))
}

/// Reads the snapshot-id input of the per-snapshot getters, refusing the head.
fn decode_snap_id_not_head(input: &[u8]) -> Result<u64> {
    let snap_id = decode_input(input, |d| d.u64())?;
    if snap_id == CEPH_NOSNAP {
        return Err(invalid("cls_rbd: CEPH_NOSNAP is not a snapshot"));
    }
    Ok(snap_id)
}

/// `snapshot_get`: one snapshot as [`super::SnapshotInfo`]. The head is `-EINVAL`; an unknown
/// id `-ENOENT`.
pub(super) fn snapshot_get(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let snap_id = decode_snap_id_not_head(input)?;
    let snap: SnapshotRecord = read_key(ctx, &key::snapshot(snap_id))?;
    Ok(output(|e| {
        e.put(&snap.info());
    }))
}

/// `snapshot_add`: record a snapshot taken with a freshly allocated self-managed id (rbd §5.6
/// step 7). In cls_rbd's order: an unknown namespace or an id above [`CEPH_MAXSNAP`] is
/// `-EINVAL`; no header (`snap_seq`) `-ENOENT`; an id below `snap_seq` `-ESTALE` (the caller
/// lost a race and allocates again); then, walking the existing snapshots in id order, the
/// walk fails with `-EDQUOT` once it has counted `snap_limit` of them, and with `-EEXIST` at a
/// snapshot with the same id, or the same name in a matching namespace (whichever comes
/// first). On success the record captures the current size and flags, the OSD's time and the
/// clone overlap, and `snap_seq` becomes the new id.
pub(super) fn snapshot_add(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (name, id, ns) = decode_input(input, |d| {
        let name = d.string()?;
        let id = d.u64()?;
        let ns = if d.is_empty() { SnapshotNamespace::User } else { d.get()? };
        Ok((name, id, ns))
    })?;
    if matches!(ns, SnapshotNamespace::Unknown { .. }) {
        return Err(invalid("cls_rbd: unknown snapshot namespace"));
    }
    if id > CEPH_MAXSNAP {
        return Err(invalid(format!("cls_rbd: snapshot id {id:#x} is above CEPH_MAXSNAP")));
    }
    let seq: u64 = read_key(ctx, key::SNAP_SEQ)?;
    if id < seq {
        return Err(os(errno::ESTALE, format!("cls_rbd: snapshot id {id} is below snap_seq {seq}")));
    }
    let image_size: u64 = read_key(ctx, key::SIZE)?;
    let flags: u64 = read_key_opt(ctx, key::FLAGS)?.unwrap_or(0);
    let limit: u64 = read_key_opt(ctx, key::SNAP_LIMIT)?.unwrap_or(u64::MAX);

    let mut counted: u64 = 0;
    for old in all_snapshots(ctx)? {
        counted += 1;
        if counted >= limit {
            return Err(os(errno::EDQUOT, format!("cls_rbd: snapshot limit {limit} reached")));
        }
        if (old.name == name && old.snapshot_namespace.cls_matches(&ns)) || old.id == id {
            return Err(Error::Exists(format!(
                "cls_rbd: snapshot {name:?} / {id} collides with {:?} / {}",
                old.name, old.id
            )));
        }
    }
    let legacy_parent: ParentLink = read_key_opt(ctx, key::PARENT)?.unwrap_or_default();

    let is_trash = ns.namespace_type() == SnapshotNamespaceType::Trash;
    let snap = SnapshotRecord {
        id,
        name,
        image_size,
        flags,
        timestamp: ctx.now(),
        snapshot_namespace: ns,
        legacy_parent,
        ..SnapshotRecord::default()
    };
    if is_trash {
        set_op_features(ctx, features::OP_SNAP_TRASH, features::OP_SNAP_TRASH)?;
    }
    write_key(ctx, key::SNAP_SEQ, &id)?;
    write_snapshot(ctx, snap)?;
    Ok(Vec::new())
}

/// `snapshot_remove`: forget a snapshot. Unknown id `-ENOENT`; protected or unprotecting
/// `-EBUSY`; referenced by clone-v2 children `-EBUSY`; an undecodable record `-EIO`. Afterwards
/// the clone link and the clone-child / snap-trash operation features are dropped if nothing
/// uses them any more.
pub(super) fn snapshot_remove(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let snap_id = decode_input(input, |d| d.u64())?;
    let snap_key = key::snapshot(snap_id);
    // cls_rbd goes on with a default record when the stored one does not decode, but its
    // later walk over all records (which still sees this one) then fails with -EIO.
    let snap: SnapshotRecord = read_key(ctx, &snap_key)?;
    if snap.protection_status != ProtectionStatus::Unprotected.wire() {
        return Err(Error::Busy(format!("cls_rbd: snapshot {snap_id} is protected")));
    }
    if snap.child_count > 0 {
        return Err(Error::Busy(format!(
            "cls_rbd: snapshot {snap_id} has {} clone children",
            snap.child_count
        )));
    }

    let others: Vec<SnapshotRecord> = all_snapshots(ctx)?.into_iter().filter(|s| s.id != snap_id).collect();
    let has_child_snaps = others.iter().any(|s| s.legacy_parent.pool_id != -1 || s.parent_overlap.is_some());
    let has_trash_snaps =
        others.iter().any(|s| s.snapshot_namespace.namespace_type() == SnapshotNamespaceType::Trash);
    let parent: Option<ParentLink> = read_key_opt(ctx, key::PARENT)?;
    let has_parent = parent.as_ref().is_some_and(ParentLink::exists);
    let is_head_child = has_parent && parent.as_ref().is_some_and(|p| p.head_overlap.is_some());

    remove_key(ctx, &snap_key)?;
    if has_parent && !is_head_child && !has_child_snaps {
        remove_key(ctx, key::PARENT)?;
    }
    let mut mask = 0;
    if !has_child_snaps && !is_head_child {
        mask |= features::OP_CLONE_CHILD;
    }
    if !has_trash_snaps {
        mask |= features::OP_SNAP_TRASH;
    }
    if mask != 0 {
        set_op_features(ctx, 0, mask)?;
    }
    Ok(Vec::new())
}

/// `snapshot_rename`: give a user snapshot a new name. A user snapshot already called that
/// (including the snapshot itself) is `-EEXIST`; an unknown id `-ENOENT`; a snapshot of another
/// namespace `-EINVAL`.
pub(super) fn snapshot_rename(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (src_id, dst_name) = decode_input(input, |d| Ok((d.u64()?, d.string()?)))?;
    for s in all_snapshots(ctx)? {
        if s.snapshot_namespace.namespace_type() == SnapshotNamespaceType::User && s.name == dst_name {
            return Err(Error::Exists(format!("cls_rbd: snapshot {} is already named {dst_name:?}", s.id)));
        }
    }
    let mut snap: SnapshotRecord = read_key(ctx, &key::snapshot(src_id))?;
    if snap.snapshot_namespace.namespace_type() != SnapshotNamespaceType::User {
        return Err(invalid(format!("cls_rbd: snapshot {src_id} is not a user snapshot")));
    }
    snap.name = dst_name;
    write_snapshot(ctx, snap)?;
    Ok(Vec::new())
}

/// `get_protection_status`: a snapshot's status byte. No object `-ENOENT`; the head
/// `-EINVAL`; unknown id `-ENOENT`; a stored byte that is not a status `-EIO`.
pub(super) fn get_protection_status(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let snap_id = decode_input(input, |d| d.u64())?;
    check_exists(ctx)?;
    if snap_id == CEPH_NOSNAP {
        return Err(invalid("cls_rbd: CEPH_NOSNAP has no protection status"));
    }
    let snap: SnapshotRecord = read_key(ctx, &key::snapshot(snap_id))?;
    if snap.protection_status >= ProtectionStatus::LAST {
        return Err(os(errno::EIO, format!("cls_rbd: bad protection status {}", snap.protection_status)));
    }
    Ok(output(|e| {
        e.u8(snap.protection_status);
    }))
}

/// `set_protection_status`: no object `-ENOENT`; an image without layering `-ENOEXEC`; the
/// head or a byte that is not a status `-EINVAL`; unknown id `-ENOENT`.
pub(super) fn set_protection_status(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (snap_id, status) = decode_input(input, |d| Ok((d.u64()?, d.u8()?)))?;
    check_exists(ctx)?;
    require_feature(ctx, features::LAYERING)?;
    if snap_id == CEPH_NOSNAP {
        return Err(invalid("cls_rbd: CEPH_NOSNAP cannot be protected"));
    }
    if status >= ProtectionStatus::LAST {
        return Err(invalid(format!("cls_rbd: {status} is not a protection status")));
    }
    let mut snap: SnapshotRecord = read_key(ctx, &key::snapshot(snap_id))?;
    snap.protection_status = status;
    write_snapshot(ctx, snap)?;
    Ok(Vec::new())
}

/// `snapshot_get_limit`: the snapshot limit, `u64::MAX` when none is set.
pub(super) fn snapshot_get_limit(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let limit: u64 = read_key_opt(ctx, key::SNAP_LIMIT)?.unwrap_or(u64::MAX);
    Ok(output(|e| {
        e.u64(limit);
    }))
}

/// `snapshot_set_limit`: `u64::MAX` clears the limit (`-ENOENT` on a missing object); any other
/// value below the current number of snapshots is `-ERANGE`. (Only format-2 headers are
/// supported; cls_rbd would also count the snapshots of a format-1 header.)
pub(super) fn snapshot_set_limit(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let limit = decode_input(input, |d| d.u64())?;
    if limit == u64::MAX {
        ctx.omap_remove_keys(&[key::SNAP_LIMIT.to_owned()])?;
        return Ok(Vec::new());
    }
    check_exists(ctx)?;
    let count = omap_all_prefixed(ctx, key::SNAPSHOT_PREFIX, key::SNAPSHOT_PREFIX)?.len() as u64;
    if limit < count {
        return Err(os(errno::ERANGE, format!("cls_rbd: {count} snapshots exceed the limit {limit}")));
    }
    write_key(ctx, key::SNAP_LIMIT, &limit)?;
    Ok(Vec::new())
}
