//! When a transitional state may complete (mds spec §1.8, §4.9).
//!
//! `eval_gather` moves a lock from a transitional state S to its target N only once nothing
//! that N forbids is still held: lock counts, client leases, issued caps, unacked replicas and
//! scatter flushes. That rule is fully determined by the tables, so it is computed here, purely,
//! and the Locker only supplies the current counts.

use crate::predicates::{CapsWho, gcaps_allowed};
use crate::state::LockState;
use crate::table::{Machine, Perm};

/// What a transitional state waits for before it may become its target (§1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherNeeds {
    /// The state the transition completes into (the row's `next`).
    pub target: LockState,
    /// Existing rdlocks block completion (the target does not allow rdlock on this side).
    pub rdlocks_must_drain: bool,
    /// Existing wrlocks block completion.
    pub wrlocks_must_drain: bool,
    /// Existing xlocks block completion.
    pub xlocks_must_drain: bool,
    /// Existing client leases block completion.
    pub leases_must_drain: bool,
    /// Generic caps clients other than the loner may keep (issued beyond this must be revoked).
    pub caps_any: u32,
    /// Generic caps the loner may keep.
    pub caps_loner: u32,
    /// Generic caps the xlocking client may keep within its xlocker mask (assuming one exists;
    /// without an xlocking client that bucket is empty anyway).
    pub caps_xlocker: u32,
    /// SYNC_MIX2 / MIX_SYNC2: completed only by the auth's MIX / SYNC message, never by a gather.
    pub completes_only_by_message: bool,
}

/// "Allowed in N" for a lock-count column: ANY, or AUTH while we are the auth (§1.8, fact 47).
const fn allowed_in_target(p: Perm, is_auth: bool) -> bool {
    matches!(p, Perm::Any) || (is_auth && matches!(p, Perm::Auth))
}

/// The completion conditions of state `s`, or `None` when `s` is stable in `m` (including states
/// the class has no row for): there is nothing to gather.
pub const fn gather_needs(m: Machine, s: LockState, is_auth: bool) -> Option<GatherNeeds> {
    let row = m.row(s);
    if row.is_stable() {
        return None;
    }
    let target = row.next;
    let t = m.row(target);
    Some(GatherNeeds {
        target,
        rdlocks_must_drain: !allowed_in_target(t.can_rdlock, is_auth),
        wrlocks_must_drain: !allowed_in_target(t.can_wrlock, is_auth),
        xlocks_must_drain: !allowed_in_target(t.can_xlock, is_auth),
        leases_must_drain: !allowed_in_target(t.can_lease, is_auth),
        caps_any: gcaps_allowed(m, s, target, CapsWho::Any, is_auth, true),
        caps_loner: gcaps_allowed(m, s, target, CapsWho::Loner, is_auth, true),
        caps_xlocker: gcaps_allowed(m, s, target, CapsWho::Xlocker, is_auth, true),
        completes_only_by_message: matches!(s, LockState::SyncMix2 | LockState::MixSync2),
    })
}

/// The runtime facts `gather_finished` checks (§4.1). Cap fields hold the lock's *generic* bits
/// (absolute caps already unshifted with `caps::unshift_caps`), bucketed as Ceph's
/// `get_caps_issued` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatherState {
    /// Whether this MDS is auth for the parent.
    pub is_auth: bool,
    /// No replica acks are outstanding.
    pub gather_set_empty: bool,
    /// rdlocks held on this rank's copy.
    pub rdlocks: u32,
    /// wrlocks held on this rank's copy.
    pub wrlocks: u32,
    /// xlocks held on this rank's copy.
    pub xlocks: u32,
    /// Client dentry leases outstanding.
    pub leases: u32,
    /// A scatter flush is in progress (only blocks on the auth).
    pub flushing: bool,
    /// Generic caps issued to the loner.
    pub loner_issued: u32,
    /// Generic caps issued to every other client.
    pub other_issued: u32,
    /// Generic caps issued to the xlocking client, already masked with its xlocker mask.
    pub xlocker_issued: u32,
    /// Some client still holds `Fb` (newest-tree rule for filelock XLOCKSNAP on the auth).
    pub any_client_holds_fb: bool,
}

/// Whether state `s` may complete now: every condition of §1.8 holds. A stable state (or one
/// the class has no row for) is not a transition, so this returns `false` for it.
pub const fn gather_finished(m: Machine, s: LockState, st: &GatherState) -> bool {
    let Some(n) = gather_needs(m, s, st.is_auth) else {
        return false;
    };
    !n.completes_only_by_message
        && st.gather_set_empty
        && (!n.rdlocks_must_drain || st.rdlocks == 0)
        && (!n.wrlocks_must_drain || st.wrlocks == 0)
        && (!n.xlocks_must_drain || st.xlocks == 0)
        && (!n.leases_must_drain || st.leases == 0)
        && !(st.is_auth && st.flushing)
        && st.loner_issued & !n.caps_loner == 0
        && st.other_issued & !n.caps_any == 0
        && st.xlocker_issued & !n.caps_xlocker == 0
        && !waits_for_fb_revocation(m, s, st)
}

/// The quiesce-era rule (§1.8 last paragraph, §9): a filelock in XLOCKSNAP on the auth does not
/// complete while any client still holds `Fb`.
const fn waits_for_fb_revocation(m: Machine, s: LockState, st: &GatherState) -> bool {
    matches!(m, Machine::File) && matches!(s, LockState::XlockSnap) && st.is_auth && st.any_client_holds_fb
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockState as S;

    const Y: bool = true;
    const N: bool = false;

    /// One §1.8 table row: state, auth rd/wr/x/lease drain, caps any/loner/xlocker,
    /// replica rd/wr/lease drain.
    type Row = (LockState, [bool; 4], [u32; 3], [bool; 3]);

    #[rustfmt::skip]
    const SIMPLE: [Row; 12] = [
        (S::PreXlock,    [Y, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::Xlock,       [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::XlockDone,   [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::LockXlock,   [Y, Y, N, Y], [0, 0, 0], [Y, Y, Y]),
        (S::SyncLock,    [Y, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::LockSync,    [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::ExclSync,    [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::ExclLock,    [Y, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::SyncExcl,    [Y, Y, Y, Y], [0, 3, 0], [Y, Y, Y]),
        (S::LockExcl,    [Y, Y, Y, Y], [3, 3, 0], [Y, Y, Y]),
        (S::RemoteXlock, [Y, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::SnapSync,    [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
    ];

    #[rustfmt::skip]
    const SCATTER: [Row; 12] = [
        (S::SyncLock,  [Y, N, N, Y], [0, 0, 0], [Y, Y, Y]),
        (S::LockSync,  [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::SyncMix,   [Y, N, Y, Y], [0, 0, 0], [Y, N, Y]),
        (S::SyncMix2,  [Y, N, Y, Y], [0, 0, 0], [Y, N, Y]),
        (S::MixSync,   [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
        (S::MixLock,   [Y, N, N, Y], [0, 0, 0], [Y, Y, Y]),
        (S::MixLock2,  [Y, N, N, Y], [0, 0, 0], [Y, Y, Y]),
        (S::TsynLock,  [Y, N, N, Y], [0, 0, 0], [Y, Y, Y]),
        (S::TsynMix,   [Y, N, Y, Y], [0, 0, 0], [Y, N, Y]),
        (S::LockTsyn,  [N, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::MixTsyn,   [N, Y, Y, Y], [0, 0, 0], [Y, Y, Y]),
        (S::SnapSync,  [N, Y, Y, N], [1, 1, 1], [N, Y, N]),
    ];

    #[rustfmt::skip]
    const FILE: [Row; 27] = [
        (S::PreXlock,  [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::Xlock,     [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::XlockDone, [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::XlockSnap, [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::LockXlock, [Y, Y, N, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::SyncLock,  [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::LockSync,  [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::ExclSync,  [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::ExclLock,  [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::SyncExcl,  [Y, Y, Y, Y], [0, 63, 0],      [Y, Y, Y]),
        (S::LockExcl,  [Y, Y, Y, Y], [0, 63, 0],      [Y, Y, Y]),
        (S::SyncMix,   [Y, N, Y, Y], [152, 152, 152], [Y, N, Y]),
        (S::SyncMix2,  [Y, N, Y, Y], [152, 152, 152], [Y, N, Y]),
        (S::ExclMix,   [Y, N, Y, Y], [152, 152, 152], [Y, N, Y]),
        (S::MixSync,   [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::MixSync2,  [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::MixLock,   [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::MixLock2,  [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::MixExcl,   [Y, Y, Y, Y], [0, 63, 0],      [Y, Y, Y]),
        (S::PreScan,   [Y, Y, Y, Y], [0, 0, 0],       [Y, Y, Y]),
        (S::Scan,      [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::SnapSync,  [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::XsynExcl,  [Y, Y, Y, Y], [0, 63, 0],      [Y, Y, Y]),
        (S::ExclXsyn,  [N, Y, Y, Y], [36, 36, 0],     [Y, Y, Y]),
        (S::XsynSync,  [N, Y, Y, N], [141, 141, 141], [N, Y, N]),
        (S::XsynLock,  [Y, N, Y, Y], [36, 36, 36],    [Y, Y, Y]),
        (S::XsynMix,   [Y, N, Y, Y], [152, 152, 152], [Y, N, Y]),
    ];

    fn check_table(m: Machine, rows: &[Row]) {
        let transitional: Vec<LockState> =
            LockState::ALL.into_iter().filter(|s| gather_needs(m, *s, true).is_some()).collect();
        let listed: Vec<LockState> = rows.iter().map(|r| r.0).collect();
        assert_eq!(transitional, listed, "{m}: §1.8 lists exactly the transitional states");
        for &(s, [rd, wr, x, lease], [any, loner, xl], [rrd, rwr, rlease]) in rows {
            let a = gather_needs(m, s, true).unwrap_or_else(|| panic!("{m} {s} must be transitional"));
            assert_eq!(a.target, m.row(s).next);
            assert_eq!(
                [a.rdlocks_must_drain, a.wrlocks_must_drain, a.xlocks_must_drain, a.leases_must_drain],
                [rd, wr, x, lease],
                "{m} {s} auth drains"
            );
            assert_eq!([a.caps_any, a.caps_loner, a.caps_xlocker], [any, loner, xl], "{m} {s} caps");
            let r = gather_needs(m, s, false).unwrap_or_else(|| panic!("{m} {s}"));
            assert_eq!(
                [r.rdlocks_must_drain, r.wrlocks_must_drain, r.leases_must_drain],
                [rrd, rwr, rlease],
                "{m} {s} replica drains"
            );
            let rep = m.row(a.target).replica_caps;
            assert_eq!([r.caps_any, r.caps_loner, r.caps_xlocker], [rep; 3], "{m} {s} replica caps");
        }
    }

    #[test]
    fn section_1_8_simplelock_table() {
        check_table(Machine::Simple, &SIMPLE);
    }

    #[test]
    fn section_1_8_scatterlock_table() {
        check_table(Machine::Scatter, &SCATTER);
    }

    #[test]
    fn section_1_8_filelock_table() {
        check_table(Machine::File, &FILE);
    }

    #[test]
    fn locallock_has_nothing_to_gather() {
        for s in LockState::ALL {
            assert_eq!(gather_needs(Machine::Local, s, true), None);
        }
    }

    fn idle(is_auth: bool) -> GatherState {
        GatherState { is_auth, gather_set_empty: true, ..GatherState::default() }
    }

    #[test]
    fn idle_transitions_finish_except_message_only_ones_fact_48() {
        for m in Machine::ALL {
            for s in LockState::ALL {
                for is_auth in [true, false] {
                    let done = gather_finished(m, s, &idle(is_auth));
                    let expect = !m.row(s).is_stable() && !matches!(s, S::SyncMix2 | S::MixSync2);
                    assert_eq!(done, expect, "{m} {s} auth={is_auth}");
                }
            }
        }
    }

    #[test]
    fn filelock_sync_lock_keeps_wrlocks_but_drains_rdlocks() {
        let m = Machine::File;
        let mut st = idle(true);
        st.wrlocks = 2;
        st.other_issued = 36; // Fc Fb
        assert!(gather_finished(m, S::SyncLock, &st));
        st.other_issued = 36 | 1; // plus Fs: must be revoked first
        assert!(!gather_finished(m, S::SyncLock, &st));
        st.other_issued = 36;
        st.rdlocks = 1;
        assert!(!gather_finished(m, S::SyncLock, &st));
        // On a replica the auth-only wrlock permission of LOCK does not count (fact 47).
        let mut rep = idle(false);
        rep.wrlocks = 1;
        assert!(!gather_finished(m, S::SyncLock, &rep));
    }

    #[test]
    fn gather_set_and_flushing_block() {
        let mut st = idle(true);
        st.gather_set_empty = false;
        assert!(!gather_finished(Machine::Scatter, S::MixLock, &st));
        let mut st = idle(true);
        st.flushing = true;
        assert!(!gather_finished(Machine::Scatter, S::MixLock, &st));
        // Flushing only counts on the auth.
        let mut st = idle(false);
        st.flushing = true;
        assert!(gather_finished(Machine::Scatter, S::MixLock, &st));
    }

    #[test]
    fn caps_buckets_are_checked_separately() {
        // simplelock SYNC_EXCL -> EXCL: only the loner may keep sx.
        let mut st = idle(true);
        st.loner_issued = 3;
        assert!(gather_finished(Machine::Simple, S::SyncExcl, &st));
        st.other_issued = 1;
        assert!(!gather_finished(Machine::Simple, S::SyncExcl, &st));
        // simplelock LOCK_SYNC -> SYNC: an xlocker bit beyond s blocks.
        let mut st = idle(true);
        st.xlocker_issued = 2;
        assert!(!gather_finished(Machine::Simple, S::LockSync, &st));
        st.xlocker_issued = 1;
        assert!(gather_finished(Machine::Simple, S::LockSync, &st));
    }

    #[test]
    fn xlocksnap_waits_for_fb_on_auth_only() {
        let mut st = idle(true);
        st.any_client_holds_fb = true;
        assert!(!gather_finished(Machine::File, S::XlockSnap, &st));
        st.is_auth = false;
        assert!(gather_finished(Machine::File, S::XlockSnap, &st));
        // The flag only matters for XLOCKSNAP.
        let mut st = idle(true);
        st.any_client_holds_fb = true;
        assert!(gather_finished(Machine::File, S::Xlock, &st));
    }

    #[test]
    fn stable_states_are_never_finished() {
        assert_eq!(gather_needs(Machine::File, S::Sync, true), None);
        assert!(!gather_finished(Machine::File, S::Sync, &idle(true)));
        // scatterlock has no MIX_SYNC2 row: formally stable (§1.4 quirk).
        assert_eq!(gather_needs(Machine::Scatter, S::MixSync2, false), None);
    }
}
