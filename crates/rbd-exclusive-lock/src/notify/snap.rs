//! The snapshot types that ride inside the snapshot notify ops: cls_rbd's snapshot namespace
//! (rbd §4.3) and librbd's internal snap-create flags (rbd §4.4).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use rados_store::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder};

use super::NotifyError;

// The namespace types are cls_rbd's own: one definition serves the object class and the notify
// messages that carry a namespace inside SNAP_CREATE and friends (rbd §4.3).
pub use rados_store::cls::rbd::{
    MirrorSnapshotNamespace, MirrorSnapshotState, SnapshotNamespace, SnapshotNamespaceType,
};

/// librbd's internal snap-create flags, carried as a `u64` in SNAP_CREATE (rbd §4.4).
///
/// They travel with a forwarded snapshot request so that the owner honours the requester's
/// quiesce choice. Unknown bits are kept as received: librbd does not validate them on
/// receipt, and dropping them would change what a relayed request means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapCreateFlags(u64);

impl SnapCreateFlags {
    /// No flags: quiesce peers, fail on quiesce errors, update the object map.
    pub const NONE: SnapCreateFlags = SnapCreateFlags(0);
    /// Bit 0: do not update the object map for the new snapshot.
    pub const SKIP_OBJECT_MAP: SnapCreateFlags = SnapCreateFlags(1 << 0);
    /// Bit 1: do not send QUIESCE/UNQUIESCE to the watchers.
    pub const SKIP_NOTIFY_QUIESCE: SnapCreateFlags = SnapCreateFlags(1 << 1);
    /// Bit 2: take the snapshot even if a watcher's quiesce failed.
    pub const IGNORE_NOTIFY_QUIESCE_ERROR: SnapCreateFlags = SnapCreateFlags(1 << 2);

    /// The public API's `RBD_SNAP_CREATE_SKIP_QUIESCE` (a `u32` flag of `rbd_snap_create2`).
    pub const API_SKIP_QUIESCE: u32 = 1 << 0;
    /// The public API's `RBD_SNAP_CREATE_IGNORE_QUIESCE_ERROR`.
    pub const API_IGNORE_QUIESCE_ERROR: u32 = 1 << 1;

    /// Flags from their wire value, unknown bits included.
    pub const fn from_bits(bits: u64) -> Self {
        SnapCreateFlags(bits)
    }

    /// The wire value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True when every bit of `other` is set here.
    pub const fn contains(self, other: SnapCreateFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Translates `rbd_snap_create2` API flags as librbd does: SKIP_QUIESCE wins and maps to
    /// [`Self::SKIP_NOTIFY_QUIESCE`]; otherwise IGNORE_QUIESCE_ERROR maps to
    /// [`Self::IGNORE_NOTIFY_QUIESCE_ERROR`]. Any bit left over is refused, which includes
    /// IGNORE_QUIESCE_ERROR when SKIP_QUIESCE is also set, so both together are `-EINVAL`.
    pub fn from_api_flags(api_flags: u32) -> Result<Self, NotifyError> {
        let mut rest = api_flags;
        let mut flags = SnapCreateFlags::NONE;
        if rest & Self::API_SKIP_QUIESCE != 0 {
            flags |= Self::SKIP_NOTIFY_QUIESCE;
            rest &= !Self::API_SKIP_QUIESCE;
        } else if rest & Self::API_IGNORE_QUIESCE_ERROR != 0 {
            flags |= Self::IGNORE_NOTIFY_QUIESCE_ERROR;
            rest &= !Self::API_IGNORE_QUIESCE_ERROR;
        }
        if rest != 0 {
            return Err(NotifyError::InvalidSnapCreateFlags { flags: api_flags });
        }
        Ok(flags)
    }
}

impl BitOr for SnapCreateFlags {
    type Output = SnapCreateFlags;

    fn bitor(self, rhs: SnapCreateFlags) -> SnapCreateFlags {
        SnapCreateFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for SnapCreateFlags {
    fn bitor_assign(&mut self, rhs: SnapCreateFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Binary for SnapCreateFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Binary::fmt(&self.0, f)
    }
}

impl Encode for SnapCreateFlags {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.0);
    }
}

impl Decode for SnapCreateFlags {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.u64().map(SnapCreateFlags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_flags_map_as_librbd_rbd_4_4() {
        type F = SnapCreateFlags;
        assert_eq!(F::from_api_flags(0), Ok(F::NONE));
        assert_eq!(F::from_api_flags(F::API_SKIP_QUIESCE), Ok(F::SKIP_NOTIFY_QUIESCE));
        assert_eq!(F::from_api_flags(F::API_IGNORE_QUIESCE_ERROR), Ok(F::IGNORE_NOTIFY_QUIESCE_ERROR));
        // Both at once: SKIP is taken and IGNORE is left over, which librbd refuses.
        assert_eq!(F::from_api_flags(3), Err(NotifyError::InvalidSnapCreateFlags { flags: 3 }));
        assert_eq!(F::from_api_flags(4).unwrap_err().errno(), -22);
    }
}
