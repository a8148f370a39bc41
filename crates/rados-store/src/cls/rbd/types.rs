//! The values the `rbd` class stores and exchanges, with cls_rbd 16.2's encodings.
//!
//! Two audiences share these types: the class itself (what it keeps in the header's omap) and
//! the typed client (what crosses `exec`). Keeping one definition means the bytes a client
//! decodes are, by construction, the bytes the embedded OSD wrote, and a golden test of one
//! covers the other (rbd §4.1, §4.3, §6.1).

use std::collections::{BTreeMap, BTreeSet};

use crate::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder};
use crate::snap::SnapContext;
use crate::types::UTime;

/// Ceph's `CEPH_NOSNAP` (`(u64)-2`): "the image head, not a snapshot". Methods that take a
/// snapshot id use it to mean the live image; methods that only make sense for a snapshot
/// reject it with `-EINVAL`.
pub const CEPH_NOSNAP: u64 = u64::MAX - 1;

/// Ceph's `CEPH_MAXSNAP` (`(u64)-3`): the largest id a snapshot may have. `snapshot_add`
/// refuses anything above it, so that a snapshot id can never collide with `CEPH_NOSNAP`.
pub const CEPH_MAXSNAP: u64 = u64::MAX - 2;

/// The numeric kind of a snapshot namespace, as cls_rbd writes it (`u32`).
///
/// It appears twice on the wire: as the namespace's own discriminant and, inside a trash
/// namespace, as the kind the snapshot had before it was trashed. Values cls_rbd does not
/// define are kept rather than rejected, because cls_rbd decodes them without complaint and
/// only refuses them where it matters (`snapshot_add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SnapshotNamespaceType {
    /// 0: an ordinary snapshot a user created.
    User,
    /// 1: a member of a consistency-group snapshot.
    Group,
    /// 2: a removed snapshot kept because clones still depend on it.
    Trash,
    /// 3: a snapshot-based mirroring snapshot.
    Mirror,
    /// Any other value, kept as read.
    Unknown(u32),
}

impl SnapshotNamespaceType {
    /// The kind for a wire value.
    pub const fn from_wire(v: u32) -> Self {
        match v {
            0 => SnapshotNamespaceType::User,
            1 => SnapshotNamespaceType::Group,
            2 => SnapshotNamespaceType::Trash,
            3 => SnapshotNamespaceType::Mirror,
            other => SnapshotNamespaceType::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn wire(self) -> u32 {
        match self {
            SnapshotNamespaceType::User => 0,
            SnapshotNamespaceType::Group => 1,
            SnapshotNamespaceType::Trash => 2,
            SnapshotNamespaceType::Mirror => 3,
            SnapshotNamespaceType::Unknown(v) => v,
        }
    }
}

/// The state of a mirroring snapshot, one byte on the wire. Unknown bytes are kept, as
/// cls_rbd's decoder keeps them (it casts without checking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum MirrorSnapshotState {
    /// 0: taken on the primary image.
    Primary,
    /// 1: taken on the primary when it was demoted.
    PrimaryDemoted,
    /// 2: a copy on a non-primary image (cls_rbd's default).
    #[default]
    NonPrimary,
    /// 3: a non-primary copy of a demotion snapshot.
    NonPrimaryDemoted,
    /// Any other byte, kept as read.
    Unknown(u8),
}

impl MirrorSnapshotState {
    /// The state for a wire byte.
    pub const fn from_wire(v: u8) -> Self {
        match v {
            0 => MirrorSnapshotState::Primary,
            1 => MirrorSnapshotState::PrimaryDemoted,
            2 => MirrorSnapshotState::NonPrimary,
            3 => MirrorSnapshotState::NonPrimaryDemoted,
            other => MirrorSnapshotState::Unknown(other),
        }
    }

    /// The wire byte.
    pub const fn wire(self) -> u8 {
        match self {
            MirrorSnapshotState::Primary => 0,
            MirrorSnapshotState::PrimaryDemoted => 1,
            MirrorSnapshotState::NonPrimary => 2,
            MirrorSnapshotState::NonPrimaryDemoted => 3,
            MirrorSnapshotState::Unknown(v) => v,
        }
    }
}

/// The body of a mirror snapshot namespace (16.2 layout, without the group fields later
/// releases append). cephlock never creates mirror snapshots, but a header written by real
/// Ceph may hold one, so it must survive a decode/encode round trip.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MirrorSnapshotNamespace {
    /// Primary, demoted, non-primary, ...
    pub state: MirrorSnapshotState,
    /// Whether a non-primary copy finished syncing.
    pub complete: bool,
    /// The peers this snapshot still has to reach.
    pub mirror_peer_uuids: BTreeSet<String>,
    /// For a non-primary snapshot, the mirror uuid of the primary it copies.
    pub primary_mirror_uuid: String,
    /// For a non-primary snapshot, the primary's snapshot id ([`CEPH_NOSNAP`] when none).
    pub primary_snap_id: u64,
    /// How far an interrupted sync got.
    pub last_copied_object_number: u64,
    /// Primary snapshot id to local snapshot id.
    pub snap_seqs: BTreeMap<u64, u64>,
}

impl Default for MirrorSnapshotNamespace {
    /// cls_rbd's defaults: non-primary, incomplete, no primary snapshot.
    fn default() -> Self {
        MirrorSnapshotNamespace {
            state: MirrorSnapshotState::NonPrimary,
            complete: false,
            mirror_peer_uuids: BTreeSet::new(),
            primary_mirror_uuid: String::new(),
            primary_snap_id: CEPH_NOSNAP,
            last_copied_object_number: 0,
            snap_seqs: BTreeMap::new(),
        }
    }
}

/// cls_rbd's snapshot namespace: which kind of snapshot a record is (rbd §4.3).
///
/// On the wire: versioned(1, 1) { `u32` kind, kind-specific body }. The same encoding rides in
/// the snapshot notify messages, so this type is meant to serve both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SnapshotNamespace {
    /// An ordinary snapshot; no body. Encodes as `01 01 04 00 00 00 00 00 00 00`.
    #[default]
    User,
    /// A member of a group snapshot.
    Group {
        /// The pool holding the group.
        group_pool: i64,
        /// The group's id.
        group_id: String,
        /// The group snapshot's id.
        group_snapshot_id: String,
    },
    /// A removed snapshot still referenced by clones.
    Trash {
        /// The snapshot's name before removal.
        original_name: String,
        /// The snapshot's namespace kind before removal.
        original_namespace_type: SnapshotNamespaceType,
    },
    /// A mirroring snapshot.
    Mirror(MirrorSnapshotNamespace),
    /// A kind cls_rbd 16.2 does not define. Its body is skipped on decode; re-encoding writes
    /// the kind back with an empty body, so it must be a value outside 0..=3. `snapshot_add`
    /// refuses it with `-EINVAL`.
    Unknown {
        /// The kind as read.
        namespace_type: u32,
    },
}

impl SnapshotNamespace {
    /// The envelope version cls_rbd 16.2 writes.
    pub const VERSION: u8 = 1;
    /// The envelope compat version cls_rbd 16.2 writes, and the newest compat it reads.
    pub const COMPAT: u8 = 1;

    /// The namespace's kind.
    pub fn namespace_type(&self) -> SnapshotNamespaceType {
        match self {
            SnapshotNamespace::User => SnapshotNamespaceType::User,
            SnapshotNamespace::Group { .. } => SnapshotNamespaceType::Group,
            SnapshotNamespace::Trash { .. } => SnapshotNamespaceType::Trash,
            SnapshotNamespace::Mirror(_) => SnapshotNamespaceType::Mirror,
            SnapshotNamespace::Unknown { namespace_type } => {
                SnapshotNamespaceType::from_wire(*namespace_type)
            }
        }
    }

    /// Equality as cls_rbd's duplicate-name check sees it, which is not field equality: two
    /// trash namespaces always compare equal (whatever they record), as do two unknown ones;
    /// group and mirror namespaces compare field by field. `snapshot_add` refuses a name that
    /// exists with a namespace that matches in this sense.
    pub fn cls_matches(&self, other: &SnapshotNamespace) -> bool {
        match (self, other) {
            (SnapshotNamespace::User, SnapshotNamespace::User)
            | (SnapshotNamespace::Trash { .. }, SnapshotNamespace::Trash { .. })
            | (SnapshotNamespace::Unknown { .. }, SnapshotNamespace::Unknown { .. }) => true,
            (a @ SnapshotNamespace::Group { .. }, b @ SnapshotNamespace::Group { .. }) => a == b,
            (SnapshotNamespace::Mirror(a), SnapshotNamespace::Mirror(b)) => a == b,
            _ => false,
        }
    }
}

impl Encode for SnapshotNamespace {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(Self::VERSION, Self::COMPAT, |e| {
            e.u32(self.namespace_type().wire());
            match self {
                SnapshotNamespace::User | SnapshotNamespace::Unknown { .. } => {}
                SnapshotNamespace::Group { group_pool, group_id, group_snapshot_id } => {
                    e.i64(*group_pool).string(group_id).string(group_snapshot_id);
                }
                SnapshotNamespace::Trash { original_name, original_namespace_type } => {
                    e.string(original_name).u32(original_namespace_type.wire());
                }
                SnapshotNamespace::Mirror(m) => {
                    e.u8(m.state.wire()).bool(m.complete).put(&m.mirror_peer_uuids);
                    e.string(&m.primary_mirror_uuid).u64(m.primary_snap_id);
                    e.u64(m.last_copied_object_number).put(&m.snap_seqs);
                }
            }
        });
    }
}

impl Decode for SnapshotNamespace {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(Self::COMPAT, |d, _| {
            Ok(match SnapshotNamespaceType::from_wire(d.u32()?) {
                SnapshotNamespaceType::User => SnapshotNamespace::User,
                SnapshotNamespaceType::Group => SnapshotNamespace::Group {
                    group_pool: d.i64()?,
                    group_id: d.string()?,
                    group_snapshot_id: d.string()?,
                },
                SnapshotNamespaceType::Trash => SnapshotNamespace::Trash {
                    original_name: d.string()?,
                    original_namespace_type: SnapshotNamespaceType::from_wire(d.u32()?),
                },
                SnapshotNamespaceType::Mirror => SnapshotNamespace::Mirror(MirrorSnapshotNamespace {
                    state: MirrorSnapshotState::from_wire(d.u8()?),
                    complete: d.bool()?,
                    mirror_peer_uuids: d.get()?,
                    primary_mirror_uuid: d.string()?,
                    primary_snap_id: d.u64()?,
                    last_copied_object_number: d.u64()?,
                    snap_seqs: d.get()?,
                }),
                // The envelope skips whatever body an unknown kind has.
                SnapshotNamespaceType::Unknown(namespace_type) => {
                    SnapshotNamespace::Unknown { namespace_type }
                }
            })
        })
    }
}

/// `RBD_PROTECTION_STATUS_*`: whether clones may be made from a snapshot and whether it may be
/// removed. Only an unprotected snapshot can be removed (`-EBUSY` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtectionStatus {
    /// 0: may be removed, may not be cloned.
    #[default]
    Unprotected,
    /// 1: an unprotect is in progress (still not removable).
    Unprotecting,
    /// 2: may be cloned, may not be removed.
    Protected,
}

impl ProtectionStatus {
    /// `RBD_PROTECTION_STATUS_LAST`: the first byte value that is not a status.
    pub const LAST: u8 = 3;

    /// The wire byte.
    pub const fn wire(self) -> u8 {
        match self {
            ProtectionStatus::Unprotected => 0,
            ProtectionStatus::Unprotecting => 1,
            ProtectionStatus::Protected => 2,
        }
    }

    /// The status for a wire byte, if it is one.
    pub const fn from_wire(b: u8) -> Option<Self> {
        match b {
            0 => Some(ProtectionStatus::Unprotected),
            1 => Some(ProtectionStatus::Unprotecting),
            2 => Some(ProtectionStatus::Protected),
            _ => None,
        }
    }
}

/// `cls_rbd_parent`, the header's `parent` key: the clone link of an image.
///
/// cephlock creates no clones, but `snapshot_add`, `snapshot_remove` and `set_size` consult
/// this key exactly as cls_rbd does, so a header cloned by real Ceph keeps working.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParentLink {
    /// The parent's pool (-1: none).
    pub pool_id: i64,
    /// The parent's RADOS namespace.
    pub pool_namespace: String,
    /// The parent image's id.
    pub image_id: String,
    /// The parent snapshot ([`CEPH_NOSNAP`]: none).
    pub snap_id: u64,
    /// How much of the parent the head still maps; absent once the head was flattened while
    /// snapshots still reference the parent.
    pub head_overlap: Option<u64>,
}

impl Default for ParentLink {
    fn default() -> Self {
        ParentLink {
            pool_id: -1,
            pool_namespace: String::new(),
            image_id: String::new(),
            snap_id: CEPH_NOSNAP,
            head_overlap: None,
        }
    }
}

impl ParentLink {
    /// cls_rbd's `exists()`: a pool, an image and a snapshot are all named.
    pub fn exists(&self) -> bool {
        self.pool_id >= 0 && !self.image_id.is_empty() && self.snap_id != CEPH_NOSNAP
    }
}

impl Encode for ParentLink {
    /// The form OSDs at Nautilus or later write: versioned(2, 2) with the pool namespace and
    /// an optional head overlap.
    fn encode(&self, e: &mut Encoder) {
        e.versioned(2, 2, |e| {
            e.i64(self.pool_id).string(&self.pool_namespace).string(&self.image_id).u64(self.snap_id);
            e.optional(self.head_overlap.as_ref(), |e, v| {
                e.u64(*v);
            });
        });
    }
}

impl Decode for ParentLink {
    /// Both forms: v1 (no namespace, a plain `u64` overlap) and v2.
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(2, |d, v| {
            let pool_id = d.i64()?;
            let pool_namespace = if v >= 2 { d.string()? } else { String::new() };
            let image_id = d.string()?;
            let snap_id = d.u64()?;
            let head_overlap = if v == 1 { Some(d.u64()?) } else { d.optional(Decoder::u64)? };
            Ok(ParentLink { pool_id, pool_namespace, image_id, snap_id, head_overlap })
        })
    }
}

/// `cls_rbd_snap`: one snapshot record, stored under `snapshot_<16 hex digits>` in the header.
///
/// Encoded as OSDs at Nautilus or later write it: versioned(8, 8) { id, name, image size,
/// protection status `u8`, flags, namespace, timestamp, child count `u32`, optional parent
/// overlap }. Older records (compat < 8) also carry an unused feature word and an embedded
/// parent link; they decode into [`SnapshotRecord::legacy_parent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The self-managed snapshot id.
    pub id: u64,
    /// The snapshot's name (unique among snapshots of the same namespace).
    pub name: String,
    /// The image size when the snapshot was taken.
    pub image_size: u64,
    /// The raw protection byte (a record written by something else may hold any value;
    /// `get_protection_status` reports one it does not know as `-EIO`).
    pub protection_status: u8,
    /// The parent link embedded in pre-Nautilus records; default otherwise.
    pub legacy_parent: ParentLink,
    /// The image flags (object-map invalid, ...) as of the snapshot.
    pub flags: u64,
    /// When the snapshot was taken (the OSD's clock).
    pub timestamp: UTime,
    /// Which kind of snapshot this is.
    pub snapshot_namespace: SnapshotNamespace,
    /// How many clone-v2 children reference it.
    pub child_count: u32,
    /// The parent overlap as of the snapshot (clones only).
    pub parent_overlap: Option<u64>,
}

impl Default for SnapshotRecord {
    fn default() -> Self {
        SnapshotRecord {
            id: CEPH_NOSNAP,
            name: String::new(),
            image_size: 0,
            protection_status: ProtectionStatus::Unprotected.wire(),
            legacy_parent: ParentLink::default(),
            flags: 0,
            timestamp: UTime::ZERO,
            snapshot_namespace: SnapshotNamespace::User,
            child_count: 0,
            parent_overlap: None,
        }
    }
}

impl SnapshotRecord {
    /// The version (and compat) written.
    pub const VERSION: u8 = 8;

    /// The record as `snapshot_get` reports it.
    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            id: self.id,
            snapshot_namespace: self.snapshot_namespace.clone(),
            name: self.name.clone(),
            image_size: self.image_size,
            timestamp: self.timestamp,
            child_count: self.child_count,
        }
    }
}

impl Encode for SnapshotRecord {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(Self::VERSION, Self::VERSION, |e| {
            e.u64(self.id).string(&self.name).u64(self.image_size).u8(self.protection_status);
            e.u64(self.flags).put(&self.snapshot_namespace).utime(self.timestamp).u32(self.child_count);
            e.optional(self.parent_overlap.as_ref(), |e, v| {
                e.u64(*v);
            });
        });
    }
}

impl Decode for SnapshotRecord {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        // Which fields are present depends on the compat byte as well as the version, and the
        // envelope helper only hands over the version, so read the compat byte ahead.
        let compat = d.clone().raw(2)?[1];
        d.versioned(Self::VERSION, |d, v| {
            let mut rec = SnapshotRecord {
                id: d.u64()?,
                name: d.string()?,
                image_size: d.u64()?,
                ..Default::default()
            };
            if compat < 8 {
                // The unused feature word of pre-Nautilus records.
                d.u64()?;
                if v >= 2 {
                    rec.legacy_parent = d.get()?;
                }
            }
            if v >= 3 {
                rec.protection_status = d.u8()?;
            }
            if v >= 4 {
                rec.flags = d.u64()?;
            }
            if v >= 5 {
                rec.snapshot_namespace = d.get()?;
            }
            if v >= 6 {
                rec.timestamp = d.utime()?;
            }
            if v >= 7 {
                rec.child_count = d.u32()?;
            }
            if v >= 8 {
                rec.parent_overlap = d.optional(Decoder::u64)?;
            }
            Ok(rec)
        })
    }
}

/// `cls::rbd::SnapshotInfo`, the output of `snapshot_get`: versioned(1, 1) { id, namespace,
/// name, image size, timestamp, child count `u32` }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotInfo {
    /// The snapshot id.
    pub id: u64,
    /// Which kind of snapshot.
    pub snapshot_namespace: SnapshotNamespace,
    /// Its name.
    pub name: String,
    /// The image size it captured.
    pub image_size: u64,
    /// When it was taken.
    pub timestamp: UTime,
    /// Clone-v2 children referencing it.
    pub child_count: u32,
}

impl Encode for SnapshotInfo {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(1, 1, |e| {
            e.u64(self.id).put(&self.snapshot_namespace).string(&self.name).u64(self.image_size);
            e.utime(self.timestamp).u32(self.child_count);
        });
    }
}

impl Decode for SnapshotInfo {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(1, |d, _| {
            Ok(SnapshotInfo {
                id: d.u64()?,
                snapshot_namespace: d.get()?,
                name: d.string()?,
                image_size: d.u64()?,
                timestamp: d.utime()?,
                child_count: d.u32()?,
            })
        })
    }
}

/// Appends a `SnapContext` as Ceph encodes it (and `get_snapcontext` returns it): `u64` seq,
/// then the snapshot ids as a `vector<u64>`, newest first.
pub fn encode_snap_context(e: &mut Encoder, snapc: &SnapContext) {
    e.u64(snapc.seq).put(&snapc.snaps);
}

/// Reads a `SnapContext` without judging it (see [`snap_context_is_valid`]).
pub fn decode_snap_context(d: &mut Decoder<'_>) -> DecodeResult<SnapContext> {
    Ok(SnapContext { seq: d.u64()?, snaps: d.get()? })
}

/// Ceph's `SnapContext::is_valid`, which is what a client applies to `get_snapcontext`'s
/// answer: `seq` at most [`CEPH_MAXSNAP`], the first snapshot not above `seq`, the ids strictly
/// descending, and zero allowed only as the last id. (cls_rbd accepts snapshot id 0, so this is
/// looser than [`SnapContext::is_valid`], which the store applies to writes.)
pub fn snap_context_is_valid(snapc: &SnapContext) -> bool {
    if snapc.seq > CEPH_MAXSNAP {
        return false;
    }
    if snapc.snaps.first().is_some_and(|&first| first > snapc.seq) {
        return false;
    }
    snapc.snaps.windows(2).all(|w| w[0] != 0 && w[1] < w[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{decode_all, encode_to_vec};

    #[test]
    fn user_namespace_bytes_rbd_4_3() {
        let bytes = encode_to_vec(&SnapshotNamespace::User);
        assert_eq!(bytes, [0x01, 0x01, 0x04, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_all::<SnapshotNamespace>(&bytes), Ok(SnapshotNamespace::User));
    }

    #[test]
    fn cls_matching_ignores_trash_fields() {
        let t1 = SnapshotNamespace::Trash {
            original_name: "a".into(),
            original_namespace_type: SnapshotNamespaceType::User,
        };
        let t2 = SnapshotNamespace::Trash {
            original_name: "b".into(),
            original_namespace_type: SnapshotNamespaceType::Group,
        };
        assert!(t1.cls_matches(&t2));
        let g1 =
            SnapshotNamespace::Group { group_pool: 1, group_id: "g".into(), group_snapshot_id: "s".into() };
        let g2 =
            SnapshotNamespace::Group { group_pool: 2, group_id: "g".into(), group_snapshot_id: "s".into() };
        assert!(!g1.cls_matches(&g2));
        assert!(g1.cls_matches(&g1.clone()));
        assert!(!SnapshotNamespace::User.cls_matches(&t1));
    }

    #[test]
    fn ceph_snap_context_validity() {
        let ok = |seq, snaps: &[u64]| snap_context_is_valid(&SnapContext { seq, snaps: snaps.to_vec() });
        assert!(ok(0, &[0]));
        assert!(ok(5, &[5, 3, 0]));
        assert!(!ok(5, &[3, 0, 0]));
        assert!(!ok(2, &[3]));
        assert!(!ok(5, &[3, 4]));
        assert!(!ok(CEPH_NOSNAP, &[]));
    }
}
