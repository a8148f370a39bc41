//! Permission predicates and effective caps (mds spec §4.2, §1.1, §1.7).
//!
//! Every "may I?" question the Locker asks about a lock reduces to one table cell and the
//! condition rules of §1.1. They live here, pure and allocation-free, so the Locker, the
//! invariant checkers and the conformance tests all evaluate the same rule.

use crate::state::LockState;
use crate::table::{Machine, Perm};

/// A client id. Ceph uses -1 for "no client / the MDS itself"; we use `None` for that.
pub type ClientId = u64;

/// The per-lock runtime facts the predicates depend on besides the state (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockCtx {
    /// Whether this MDS is auth for the lock's parent object.
    pub is_auth: bool,
    /// Client of the request holding the xlock, if a client's request holds it.
    pub xlock_by_client: Option<ClientId>,
    /// The inode's loner client (kept for IAUTH/ILINK/IXATTR/IFILE); satisfies XCL for wrlocks.
    pub excl_client: Option<ClientId>,
}

/// Evaluates one permission cell for `client` (§1.1 condition values, §4.2).
///
/// XCL needs a real client (`Some`) equal to the xlocker, or to `excl_client_counts`; callers
/// pass the loner there only for wrlock and force_wrlock, and `None` otherwise. The MDS itself
/// (`client == None`) therefore never satisfies XCL. REQ is never granted locally.
pub const fn perm_allows(
    perm: Perm,
    is_auth: bool,
    client: Option<ClientId>,
    xlock_by_client: Option<ClientId>,
    excl_client_counts: Option<ClientId>,
) -> bool {
    match perm {
        Perm::Any => true,
        Perm::Auth => is_auth,
        Perm::Xcl => match client {
            Some(c) => same_client(c, xlock_by_client) || same_client(c, excl_client_counts),
            None => false,
        },
        Perm::Never | Perm::Req => false,
    }
}

const fn same_client(c: ClientId, other: Option<ClientId>) -> bool {
    match other {
        Some(o) => o == c,
        None => false,
    }
}

/// Same rule for the columns where only the xlocker satisfies XCL.
const fn xlocker_only(perm: Perm, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    perm_allows(perm, ctx.is_auth, client, ctx.xlock_by_client, None)
}

/// Same rule for wrlock columns, where the loner also satisfies XCL (§8 fact 34).
const fn xlocker_or_loner(perm: Perm, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    perm_allows(perm, ctx.is_auth, client, ctx.xlock_by_client, ctx.excl_client)
}

/// May `client` read the current (journaled) value without a rdlock.
pub const fn can_read(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_only(m.row(s).can_read, ctx, client)
}

/// May `client` read the projected (not yet journaled) value.
pub const fn can_read_projected(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_only(m.row(s).can_read_projected, ctx, client)
}

/// May a rdlock be granted here now.
pub const fn can_rdlock(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_only(m.row(s).can_rdlock, ctx, client)
}

/// May a wrlock be granted here now; the loner counts for XCL.
pub const fn can_wrlock(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_or_loner(m.row(s).can_wrlock, ctx, client)
}

/// May an internal writer force a wrlock here now; the loner counts for XCL.
pub const fn can_force_wrlock(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_or_loner(m.row(s).can_force_wrlock, ctx, client)
}

/// May a client dentry lease be issued here now.
pub const fn can_lease(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_only(m.row(s).can_lease, ctx, client)
}

/// May an xlock be granted (or its acquisition proceed) here now.
pub const fn can_xlock(m: Machine, s: LockState, ctx: &LockCtx, client: Option<ClientId>) -> bool {
    xlocker_only(m.row(s).can_xlock, ctx, client)
}

/// Whether the rdlock column is REQ: a replica must ask the auth (REQRDLOCK) to leave this state
/// before anyone can rdlock.
pub const fn req_rdlock_from_auth(m: Machine, s: LockState) -> bool {
    matches!(m.row(s).can_rdlock, Perm::Req)
}

/// Which cap bucket is being asked about (§1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapsWho {
    /// Any client that is neither the loner nor the xlocker.
    Any,
    /// The inode's loner client.
    Loner,
    /// The client holding the xlock.
    Xlocker,
}

/// Effective generic caps allowed to `who` (§1.7).
///
/// `current` decides loner mode and `evaluated` supplies the cap columns; they differ when
/// `eval_gather` checks issued caps against the target state, and Ceph still takes loner mode
/// from the current state then. `has_xlocker` says whether a client holds the xlock; without one
/// the xlocker bucket gets the loner answer. On a replica everyone gets `replica_caps`.
pub const fn gcaps_allowed(
    m: Machine,
    current: LockState,
    evaluated: LockState,
    who: CapsWho,
    is_auth: bool,
    has_xlocker: bool,
) -> u32 {
    let row = m.row(evaluated);
    if !is_auth {
        return row.replica_caps;
    }
    match who {
        CapsWho::Xlocker if has_xlocker => row.xlocker_caps | row.caps,
        CapsWho::Any if m.row(current).loner => row.caps,
        _ => row.loner_caps | row.caps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::format_generic;

    const AUTH: LockCtx = LockCtx { is_auth: true, xlock_by_client: None, excl_client: None };
    const REPLICA: LockCtx = LockCtx { is_auth: false, xlock_by_client: None, excl_client: None };

    #[test]
    fn perm_allows_condition_values_section_1_1() {
        for is_auth in [false, true] {
            assert!(!perm_allows(Perm::Never, is_auth, Some(1), Some(1), Some(1)));
            assert!(perm_allows(Perm::Any, is_auth, None, None, None));
            assert_eq!(perm_allows(Perm::Auth, is_auth, None, None, None), is_auth);
            assert!(!perm_allows(Perm::Req, is_auth, Some(1), Some(1), Some(1)));
        }
        assert!(perm_allows(Perm::Xcl, false, Some(7), Some(7), None));
        assert!(perm_allows(Perm::Xcl, false, Some(7), None, Some(7)));
        assert!(!perm_allows(Perm::Xcl, true, Some(7), Some(8), Some(9)));
        // The MDS itself (Ceph's -1) never qualifies, even when nobody holds anything.
        assert!(!perm_allows(Perm::Xcl, true, None, None, None));
    }

    #[test]
    fn fact_1_2_simplelock_sync() {
        assert!(can_rdlock(Machine::Simple, LockState::Sync, &REPLICA, None));
        assert!(!can_xlock(Machine::Simple, LockState::Sync, &AUTH, Some(1)));
        assert!(!can_xlock(Machine::Simple, LockState::Sync, &REPLICA, Some(1)));
    }

    #[test]
    fn fact_3_simplelock_lock_rdlock_is_req() {
        assert!(!can_rdlock(Machine::Simple, LockState::Lock, &AUTH, None));
        assert!(req_rdlock_from_auth(Machine::Simple, LockState::Lock));
        assert!(can_read(Machine::Simple, LockState::Lock, &AUTH, None));
        assert!(!can_read(Machine::Simple, LockState::Lock, &REPLICA, None));
    }

    #[test]
    fn fact_4_xlockdone_only_for_the_xlocker() {
        let ctx = LockCtx { is_auth: true, xlock_by_client: Some(5), excl_client: Some(6) };
        let s = LockState::XlockDone;
        let m = Machine::Simple;
        for f in [can_read, can_read_projected, can_rdlock, can_lease] {
            assert!(f(m, s, &ctx, Some(5)));
            assert!(!f(m, s, &ctx, Some(6)), "loner must not count for non-wrlock XCL");
            assert!(!f(m, s, &ctx, None));
        }
    }

    #[test]
    fn fact_10_11_scatterlock_mix_and_lock() {
        assert!(can_wrlock(Machine::Scatter, LockState::Mix, &REPLICA, None));
        assert!(!can_rdlock(Machine::Scatter, LockState::Mix, &AUTH, None));
        assert!(can_wrlock(Machine::Scatter, LockState::Lock, &AUTH, None));
        assert!(!can_wrlock(Machine::Scatter, LockState::Lock, &REPLICA, None));
        assert!(!can_read(Machine::Scatter, LockState::Lock, &REPLICA, None));
    }

    #[test]
    fn fact_17_filelock_xsyn() {
        let ctx = LockCtx { is_auth: true, xlock_by_client: None, excl_client: Some(3) };
        assert!(can_rdlock(Machine::File, LockState::Xsyn, &ctx, None));
        assert!(can_read_projected(Machine::File, LockState::Xsyn, &ctx, None));
        assert!(!can_rdlock(Machine::File, LockState::Xsyn, &REPLICA, None));
        assert!(can_wrlock(Machine::File, LockState::Xsyn, &ctx, Some(3)));
        assert!(!can_wrlock(Machine::File, LockState::Xsyn, &ctx, Some(4)));
    }

    #[test]
    fn fact_18_sync_lock_rdlock_req_vs_zero() {
        assert!(req_rdlock_from_auth(Machine::File, LockState::SyncLock));
        assert!(!req_rdlock_from_auth(Machine::Simple, LockState::SyncLock));
        for m in [Machine::File, Machine::Simple] {
            assert!(!can_rdlock(m, LockState::SyncLock, &AUTH, None));
        }
    }

    #[test]
    fn fact_34_loner_satisfies_xcl_for_wrlock_only() {
        let ctx = LockCtx { is_auth: true, xlock_by_client: None, excl_client: Some(9) };
        assert!(can_wrlock(Machine::File, LockState::Excl, &ctx, Some(9)));
        assert!(!can_rdlock(Machine::File, LockState::Excl, &ctx, Some(9)));
        assert!(can_force_wrlock(Machine::File, LockState::ExclSync, &ctx, Some(9)));
        assert!(!can_wrlock(Machine::File, LockState::Excl, &ctx, None));
    }

    #[test]
    fn fact_21_locallock() {
        assert!(can_rdlock(Machine::Local, LockState::Lock, &REPLICA, None));
        assert!(can_xlock(Machine::Local, LockState::Lock, &AUTH, None));
        assert!(!can_xlock(Machine::Local, LockState::Lock, &REPLICA, None));
    }

    #[test]
    fn fact_25_unlisted_states_permit_nothing() {
        let ctx = LockCtx { is_auth: true, xlock_by_client: Some(1), excl_client: Some(1) };
        for f in
            [can_read, can_read_projected, can_rdlock, can_wrlock, can_force_wrlock, can_lease, can_xlock]
        {
            assert!(!f(Machine::Simple, LockState::Mix, &ctx, Some(1)));
            assert!(!f(Machine::Scatter, LockState::Excl, &ctx, Some(1)));
            assert!(!f(Machine::Local, LockState::Sync, &ctx, Some(1)));
        }
    }

    fn allowed(m: Machine, s: LockState, who: CapsWho, is_auth: bool) -> String {
        format_generic(gcaps_allowed(m, s, s, who, is_auth, true))
    }

    #[test]
    fn section_1_7_filelock_rows() {
        use CapsWho::*;
        use LockState as S;
        let m = Machine::File;
        // (state, any, loner, xlocker, replica) from the §1.7 filelock table.
        let rows = [
            (S::Sync, "scrl", "scrl", "scrl", "scr"),
            (S::XlockDone, "cb", "cb", "scb", "-"),
            (S::Excl, "-", "sxcrwb", "-", "-"),
            (S::LockExcl, "-", "cb", "-", "-"),
            (S::Mix, "rwl", "rwl", "rwl", "r"),
            (S::ExclXsyn, "cb", "cb", "-", "-"),
            (S::XsynSync, "-", "c", "-", "-"),
            (S::XsynMix, "-", "-", "-", "-"),
        ];
        for (s, any, loner, xl, rep) in rows {
            assert_eq!(allowed(m, s, Any, true), any, "{s} any");
            assert_eq!(allowed(m, s, Loner, true), loner, "{s} loner");
            assert_eq!(allowed(m, s, Xlocker, true), xl, "{s} xlocker");
            for who in [Any, Loner, Xlocker] {
                assert_eq!(allowed(m, s, who, false), rep, "{s} replica");
            }
        }
    }

    #[test]
    fn section_1_7_simplelock_and_facts_5_8_9_19() {
        use CapsWho::*;
        let m = Machine::Simple;
        // fact 5: XLOCKDONE grants s to the xlocker only.
        assert_eq!(allowed(m, LockState::XlockDone, Xlocker, true), "s");
        assert_eq!(allowed(m, LockState::XlockDone, Any, true), "-");
        assert_eq!(allowed(m, LockState::XlockDone, Loner, true), "-");
        // Without an xlocking client the xlocker bucket falls back to the loner answer.
        assert_eq!(gcaps_allowed(m, LockState::XlockDone, LockState::XlockDone, Xlocker, true, false), 0);
        // fact 8: EXCL loner sx, others nothing.
        assert_eq!(allowed(m, LockState::Excl, Loner, true), "sx");
        assert_eq!(allowed(m, LockState::Excl, Any, true), "-");
        // fact 9: LOCK_EXCL is not loner mode: everybody keeps s.
        assert_eq!(allowed(m, LockState::LockExcl, Any, true), "s");
        // fact 19: filelock EXCL_XSYN is not loner mode, so the loner column reaches everyone.
        assert_eq!(allowed(Machine::File, LockState::ExclXsyn, Any, true), "cb");
    }

    #[test]
    fn section_1_7_loner_mode_comes_from_current_state() {
        // Evaluating target EXCL from the non-loner LOCK_EXCL (simplelock): ANY gets loner caps.
        let g =
            gcaps_allowed(Machine::Simple, LockState::LockExcl, LockState::Excl, CapsWho::Any, true, false);
        assert_eq!(g, 3);
        // From the loner SYNC_EXCL, ANY gets only the target's plain caps (none).
        let g =
            gcaps_allowed(Machine::Simple, LockState::SyncExcl, LockState::Excl, CapsWho::Any, true, false);
        assert_eq!(g, 0);
    }
}
