//! Lock state identifiers (mds spec §2.1).
//!
//! One numbering is shared by all four lock classes, and the ids travel between MDS ranks inside
//! MLock messages and lock-state encodings, so the numeric values are a wire contract and must
//! never be reordered. Which states a class actually uses is decided by its table (`table.rs`).

use core::fmt;

/// A lock state id, shared by simplelock, scatterlock, filelock and locallock.
///
/// The discriminant is the wire id (§2.1, §8 fact 26). `Undef` (0) doubles as the "stable"
/// marker in a table's `next` column and as the replica state of replica-only waiting states.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockState {
    /// 0: no state; also the `next` value of a stable row.
    Undef = 0,
    /// 1: shared read state; readers and leases everywhere.
    Sync = 1,
    /// 2: the auth holds the lock; writers on the auth only (for scatter/file locks).
    Lock = 2,
    /// 3: xlock reserved for the request that started it.
    PreXlock = 3,
    /// 4: xlocked.
    Xlock = 4,
    /// 5: xlocked and the request replied early; the xlocker may read.
    XlockDone = 5,
    /// 6: filelock only: xlocked while a snapshot flushes buffered client data.
    XlockSnap = 6,
    /// 7: LOCK heading to PREXLOCK.
    LockXlock = 7,
    /// 8: SYNC heading to LOCK.
    SyncLock = 8,
    /// 9: LOCK heading to SYNC.
    LockSync = 9,
    /// 10: loner mode: one client holds exclusive caps.
    Excl = 10,
    /// 11: EXCL heading to SYNC.
    ExclSync = 11,
    /// 12: EXCL heading to LOCK.
    ExclLock = 12,
    /// 13: SYNC heading to EXCL.
    SyncExcl = 13,
    /// 14: LOCK heading to EXCL.
    LockExcl = 14,
    /// 15: historical remote-xlock state (has a simplelock row, never entered).
    RemoteXlock = 15,
    /// 16: scattered: writers on every rank, no readers.
    Mix = 16,
    /// 17: SYNC heading to MIX.
    SyncMix = 17,
    /// 18: replica-only second stage of SYNC->MIX (waits for the auth's MIX message).
    SyncMix2 = 18,
    /// 19: defined by Ceph but used by no table.
    LockMix = 19,
    /// 20: EXCL heading to MIX.
    ExclMix = 20,
    /// 21: MIX heading to SYNC.
    MixSync = 21,
    /// 22: replica-only second stage of MIX->SYNC (waits for the auth's SYNC message).
    MixSync2 = 22,
    /// 23: MIX heading to LOCK (local stage on the auth).
    MixLock = 23,
    /// 24: MIX heading to LOCK (replicas being gathered).
    MixLock2 = 24,
    /// 25: MIX heading to EXCL.
    MixExcl = 25,
    /// 26: temporary sync (scatterlock table only; never entered).
    Tsyn = 26,
    /// 27: TSYN heading to LOCK.
    TsynLock = 27,
    /// 28: TSYN heading to MIX.
    TsynMix = 28,
    /// 29: LOCK heading to TSYN.
    LockTsyn = 29,
    /// 30: MIX heading to TSYN.
    MixTsyn = 30,
    /// 31: filelock: heading to SCAN (file size/mtime recovery).
    PreScan = 31,
    /// 32: filelock: recovering the file, then LOCK.
    Scan = 32,
    /// 33: heading to SYNC after a snapshot.
    SnapSync = 33,
    /// 34: filelock loner state where the loner keeps only cached/buffered data.
    Xsyn = 34,
    /// 35: XSYN heading to EXCL.
    XsynExcl = 35,
    /// 36: EXCL heading to XSYN.
    ExclXsyn = 36,
    /// 37: XSYN heading to SYNC.
    XsynSync = 37,
    /// 38: XSYN heading to LOCK.
    XsynLock = 38,
    /// 39: XSYN heading to MIX.
    XsynMix = 39,
}

impl LockState {
    /// Number of state ids, Ceph's `LOCK_MAX`: the size of every state table.
    pub const COUNT: usize = 40;

    /// Every state in id order, so tables and walks can iterate without gaps.
    pub const ALL: [LockState; 40] = [
        LockState::Undef,
        LockState::Sync,
        LockState::Lock,
        LockState::PreXlock,
        LockState::Xlock,
        LockState::XlockDone,
        LockState::XlockSnap,
        LockState::LockXlock,
        LockState::SyncLock,
        LockState::LockSync,
        LockState::Excl,
        LockState::ExclSync,
        LockState::ExclLock,
        LockState::SyncExcl,
        LockState::LockExcl,
        LockState::RemoteXlock,
        LockState::Mix,
        LockState::SyncMix,
        LockState::SyncMix2,
        LockState::LockMix,
        LockState::ExclMix,
        LockState::MixSync,
        LockState::MixSync2,
        LockState::MixLock,
        LockState::MixLock2,
        LockState::MixExcl,
        LockState::Tsyn,
        LockState::TsynLock,
        LockState::TsynMix,
        LockState::LockTsyn,
        LockState::MixTsyn,
        LockState::PreScan,
        LockState::Scan,
        LockState::SnapSync,
        LockState::Xsyn,
        LockState::XsynExcl,
        LockState::ExclXsyn,
        LockState::XsynSync,
        LockState::XsynLock,
        LockState::XsynMix,
    ];

    /// The wire id (§2.1), as carried in MLock and lock-state encodings.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// Decodes a wire id; `None` for ids at or beyond `LOCK_MAX`, which a peer must not send.
    pub const fn from_id(id: u8) -> Option<LockState> {
        if (id as usize) < Self::COUNT { Some(Self::ALL[id as usize]) } else { None }
    }

    /// The spec's state name (§2.1 "name" column), used in tables, diagrams and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            LockState::Undef => "UNDEF",
            LockState::Sync => "SYNC",
            LockState::Lock => "LOCK",
            LockState::PreXlock => "PREXLOCK",
            LockState::Xlock => "XLOCK",
            LockState::XlockDone => "XLOCKDONE",
            LockState::XlockSnap => "XLOCKSNAP",
            LockState::LockXlock => "LOCK_XLOCK",
            LockState::SyncLock => "SYNC_LOCK",
            LockState::LockSync => "LOCK_SYNC",
            LockState::Excl => "EXCL",
            LockState::ExclSync => "EXCL_SYNC",
            LockState::ExclLock => "EXCL_LOCK",
            LockState::SyncExcl => "SYNC_EXCL",
            LockState::LockExcl => "LOCK_EXCL",
            LockState::RemoteXlock => "REMOTEXLOCK",
            LockState::Mix => "MIX",
            LockState::SyncMix => "SYNC_MIX",
            LockState::SyncMix2 => "SYNC_MIX2",
            LockState::LockMix => "LOCK_MIX",
            LockState::ExclMix => "EXCL_MIX",
            LockState::MixSync => "MIX_SYNC",
            LockState::MixSync2 => "MIX_SYNC2",
            LockState::MixLock => "MIX_LOCK",
            LockState::MixLock2 => "MIX_LOCK2",
            LockState::MixExcl => "MIX_EXCL",
            LockState::Tsyn => "TSYN",
            LockState::TsynLock => "TSYN_LOCK",
            LockState::TsynMix => "TSYN_MIX",
            LockState::LockTsyn => "LOCK_TSYN",
            LockState::MixTsyn => "MIX_TSYN",
            LockState::PreScan => "PRE_SCAN",
            LockState::Scan => "SCAN",
            LockState::SnapSync => "SNAP_SYNC",
            LockState::Xsyn => "XSYN",
            LockState::XsynExcl => "XSYN_EXCL",
            LockState::ExclXsyn => "EXCL_XSYN",
            LockState::XsynSync => "XSYN_SYNC",
            LockState::XsynLock => "XSYN_LOCK",
            LockState::XsynMix => "XSYN_MIX",
        }
    }

    /// The name Ceph prints in MDS logs (§2.1 "log name"), so our logs can be compared with a
    /// real MDS's. LOCK_MIX (19) has no log name upstream because nothing uses it; we print
    /// "lock->mix" following the `from->to` pattern. XSYN_LOCK/XSYN_MIX follow the same pattern
    /// (§9 marks their exact spelling unverified).
    pub const fn log_name(self) -> &'static str {
        match self {
            LockState::Undef => "UNDEF",
            LockState::Sync => "sync",
            LockState::Lock => "lock",
            LockState::PreXlock => "prexlock",
            LockState::Xlock => "xlock",
            LockState::XlockDone => "xlockdone",
            LockState::XlockSnap => "xlocksnap",
            LockState::LockXlock => "lock->xlock",
            LockState::SyncLock => "sync->lock",
            LockState::LockSync => "lock->sync",
            LockState::Excl => "excl",
            LockState::ExclSync => "excl->sync",
            LockState::ExclLock => "excl->lock",
            LockState::SyncExcl => "sync->excl",
            LockState::LockExcl => "lock->excl",
            LockState::RemoteXlock => "remote_xlock",
            LockState::Mix => "mix",
            LockState::SyncMix => "sync->mix",
            LockState::SyncMix2 => "sync->mix(2)",
            LockState::LockMix => "lock->mix",
            LockState::ExclMix => "excl->mix",
            LockState::MixSync => "mix->sync",
            LockState::MixSync2 => "mix->sync(2)",
            LockState::MixLock => "mix->lock",
            LockState::MixLock2 => "mix->lock(2)",
            LockState::MixExcl => "mix->excl",
            LockState::Tsyn => "tsyn",
            LockState::TsynLock => "tsyn->lock",
            LockState::TsynMix => "tsyn->mix",
            LockState::LockTsyn => "lock->tsyn",
            LockState::MixTsyn => "mix->tsyn",
            LockState::PreScan => "*->scan",
            LockState::Scan => "scan",
            LockState::SnapSync => "snap->sync",
            LockState::Xsyn => "xsyn",
            LockState::XsynExcl => "xsyn->excl",
            LockState::ExclXsyn => "excl->xsyn",
            LockState::XsynSync => "xsyn->sync",
            LockState::XsynLock => "xsyn->lock",
            LockState::XsynMix => "xsyn->mix",
        }
    }

    /// Parses either spelling a human or a log might use: the spec name (`SYNC_MIX2`) or the
    /// log name (`sync->mix(2)`), both case-insensitively. The two spellings never collide
    /// across states, so this is unambiguous. Ceph's C enum names (`LOCK_SYNC` meaning SYNC)
    /// are deliberately not accepted: `LOCK_SYNC` is also the name of state 9.
    pub fn from_name(s: &str) -> Option<LockState> {
        Self::ALL
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s) || st.log_name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for LockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_match_position_section_2_1() {
        for (i, s) in LockState::ALL.iter().enumerate() {
            assert_eq!(s.id() as usize, i);
            assert_eq!(LockState::from_id(s.id()), Some(*s));
        }
        for id in 40..=u8::MAX {
            assert_eq!(LockState::from_id(id), None);
        }
    }

    #[test]
    fn fact_26_selected_ids() {
        assert_eq!(LockState::Sync.id(), 1);
        assert_eq!(LockState::Lock.id(), 2);
        assert_eq!(LockState::Xlock.id(), 4);
        assert_eq!(LockState::XlockDone.id(), 5);
        assert_eq!(LockState::Excl.id(), 10);
        assert_eq!(LockState::Mix.id(), 16);
        assert_eq!(LockState::SnapSync.id(), 33);
        assert_eq!(LockState::Xsyn.id(), 34);
        assert_eq!(LockState::COUNT, 40);
    }

    #[test]
    fn names_and_log_names_round_trip() {
        for s in LockState::ALL {
            assert_eq!(LockState::from_name(s.name()), Some(s), "{s:?}");
            assert_eq!(LockState::from_name(s.log_name()), Some(s), "{s:?}");
            assert_eq!(LockState::from_name(&s.name().to_ascii_lowercase()), Some(s));
            assert_eq!(LockState::from_name(&s.log_name().to_ascii_uppercase()), Some(s));
            assert_eq!(s.to_string(), s.name());
        }
    }

    #[test]
    fn names_are_unique() {
        for a in LockState::ALL {
            for b in LockState::ALL {
                if a != b {
                    assert!(!a.name().eq_ignore_ascii_case(b.name()));
                    assert!(!a.log_name().eq_ignore_ascii_case(b.log_name()));
                    assert!(!a.name().eq_ignore_ascii_case(b.log_name()), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn spec_section_2_1_spot_checks() {
        assert_eq!(LockState::SyncMix2.name(), "SYNC_MIX2");
        assert_eq!(LockState::SyncMix2.log_name(), "sync->mix(2)");
        assert_eq!(LockState::Undef.log_name(), "UNDEF");
        assert_eq!(LockState::PreScan.log_name(), "*->scan");
        assert_eq!(LockState::RemoteXlock.log_name(), "remote_xlock");
        assert_eq!(LockState::LockMix.log_name(), "lock->mix");
    }

    #[test]
    fn garbage_names_are_rejected() {
        for bad in ["", "sync ", "LOCK_", "syncmix2", "40", "->", "lock->"] {
            assert_eq!(LockState::from_name(bad), None, "{bad:?}");
        }
    }
}
