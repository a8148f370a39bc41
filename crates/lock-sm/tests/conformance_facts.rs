//! spec/mds-locks.md §8 behavioural facts about tables and predicates (facts 1–34, 47, 48),
//! one `#[test]` each, plus every row of the derived tables of §1.7 (effective caps) and §1.8
//! (what a transitional state waits for).
//!
//! Expectations come from the spec text only. Facts that need the Locker runtime (acquisition,
//! messages, journal) are left to the mds-locker tests.

use lock_sm::caps::{self, format_caps, shift_caps};
use lock_sm::predicates::{
    can_force_wrlock, can_lease, can_rdlock, can_read, can_read_projected, can_wrlock, can_xlock,
    gcaps_allowed, perm_allows, req_rdlock_from_auth,
};
use lock_sm::{
    CapsWho, ClientId, Direction, GatherNeeds, GatherState, LockAction, LockCtx, LockState, LockType,
    Machine, Perm, gather_finished, gather_needs,
};

/// The client that holds the xlock in these tests.
const XLOCKER: ClientId = 7;
/// The inode's loner (excl_client).
const LONER: ClientId = 9;
/// A client with no relation to the lock.
const OTHER: ClientId = 11;

fn ctx(is_auth: bool) -> LockCtx {
    LockCtx { is_auth, xlock_by_client: Some(XLOCKER), excl_client: Some(LONER) }
}

/// Every client relation: the MDS itself, the xlocker, the loner, an unrelated client.
const CLIENTS: [Option<ClientId>; 4] = [None, Some(XLOCKER), Some(LONER), Some(OTHER)];

type Pred = fn(Machine, LockState, &LockCtx, Option<ClientId>) -> bool;

/// Every (auth, client) pair for which `pred` holds in (m, s).
fn grants(pred: Pred, m: Machine, s: LockState) -> Vec<(bool, Option<ClientId>)> {
    let mut out = Vec::new();
    for auth in [true, false] {
        for c in CLIENTS {
            if pred(m, s, &ctx(auth), c) {
                out.push((auth, c));
            }
        }
    }
    out
}

fn everyone() -> Vec<(bool, Option<ClientId>)> {
    [true, false].into_iter().flat_map(|a| CLIENTS.map(|c| (a, c))).collect()
}

fn auth_only() -> Vec<(bool, Option<ClientId>)> {
    CLIENTS.map(|c| (true, c)).to_vec()
}

fn gcaps(m: Machine, s: LockState, who: CapsWho, is_auth: bool) -> u32 {
    gcaps_allowed(m, s, s, who, is_auth, true)
}

// ------------------------------------------------------------------------------------------
// State tables (facts 1–25)
// ------------------------------------------------------------------------------------------

#[test]
fn fact_01_simplelock_sync_replica_may_rdlock() {
    for c in CLIENTS {
        assert!(can_rdlock(Machine::Simple, LockState::Sync, &ctx(false), c), "replica, client {c:?}");
        assert!(can_rdlock(Machine::Simple, LockState::Sync, &ctx(true), c), "auth, client {c:?}");
    }
    assert_eq!(Machine::Simple.row(LockState::Sync).can_rdlock, Perm::Any);
}

#[test]
fn fact_02_simplelock_sync_never_xlocks() {
    assert!(grants(can_xlock, Machine::Simple, LockState::Sync).is_empty());
    assert_eq!(Machine::Simple.row(LockState::Sync).can_xlock, Perm::Never);
}

#[test]
fn fact_03_simplelock_lock_rdlock_req_even_on_auth_and_read_auth_only() {
    assert_eq!(Machine::Simple.row(LockState::Lock).can_rdlock, Perm::Req);
    assert!(req_rdlock_from_auth(Machine::Simple, LockState::Lock));
    assert!(grants(can_rdlock, Machine::Simple, LockState::Lock).is_empty(), "REQ never grants locally");
    assert_eq!(grants(can_read, Machine::Simple, LockState::Lock), auth_only(), "read only on the auth");
}

#[test]
fn fact_04_simplelock_xlockdone_only_the_xlocking_client_reads() {
    let xl = vec![(true, Some(XLOCKER)), (false, Some(XLOCKER))];
    for (name, pred) in [
        ("read", can_read as Pred),
        ("read_projected", can_read_projected),
        ("rdlock", can_rdlock),
        ("lease", can_lease),
    ] {
        assert_eq!(grants(pred, Machine::Simple, LockState::XlockDone), xl, "XLOCKDONE {name}");
    }
    // Even with no other context the MDS (client -1) never qualifies.
    let anon = LockCtx { is_auth: true, xlock_by_client: None, excl_client: None };
    assert!(!can_rdlock(Machine::Simple, LockState::XlockDone, &anon, None));
}

#[test]
fn fact_05_simplelock_xlockdone_grants_the_xlocker_s_only() {
    let m = Machine::Simple;
    let s = LockState::XlockDone;
    assert_eq!(gcaps(m, s, CapsWho::Xlocker, true), caps::GSHARED);
    assert_eq!(gcaps(m, s, CapsWho::Any, true), 0);
    assert_eq!(gcaps(m, s, CapsWho::Loner, true), 0);
    assert_eq!(gcaps(m, s, CapsWho::Any, false), 0);
    // For IAUTH that is `As`.
    let abs = shift_caps(gcaps(m, s, CapsWho::Xlocker, true), LockType::IAuth);
    assert_eq!(abs, caps::AUTH_SHARED);
    assert_eq!(format_caps(abs), "As");
}

#[test]
fn fact_06_xlock_targets_sync_in_simplelock_and_lock_in_filelock() {
    assert_eq!(Machine::Simple.row(LockState::Xlock).next, LockState::Sync);
    assert_eq!(Machine::Simple.row(LockState::XlockDone).next, LockState::Sync);
    assert_eq!(Machine::File.row(LockState::Xlock).next, LockState::Lock);
    assert_eq!(Machine::File.row(LockState::XlockDone).next, LockState::Lock);
    assert_eq!(Machine::File.row(LockState::XlockSnap).next, LockState::Lock);
}

#[test]
fn fact_07_simplelock_lock_xlock_prexlock_chain() {
    assert_eq!(Machine::Simple.row(LockState::LockXlock).next, LockState::PreXlock);
    assert_eq!(Machine::Simple.row(LockState::PreXlock).next, LockState::Lock);
    assert_eq!(Machine::Simple.row(LockState::PreXlock).can_xlock, Perm::Any);
    assert_eq!(grants(can_xlock, Machine::Simple, LockState::PreXlock), everyone());
}

#[test]
fn fact_08_simplelock_excl_is_loner_mode() {
    let m = Machine::Simple;
    let s = LockState::Excl;
    assert!(m.row(s).loner);
    assert_eq!(gcaps(m, s, CapsWho::Loner, true), caps::GSHARED | caps::GEXCL);
    assert_eq!(gcaps(m, s, CapsWho::Any, true), 0);
    assert_eq!(m.row(s).can_wrlock, Perm::Xcl);
    assert_eq!(
        grants(can_wrlock, m, s),
        vec![(true, Some(XLOCKER)), (true, Some(LONER)), (false, Some(XLOCKER)), (false, Some(LONER))],
        "wrlock XCL: the xlocker or the loner"
    );
}

#[test]
fn fact_09_simplelock_lock_excl_not_loner_allows_s_for_all() {
    let m = Machine::Simple;
    let s = LockState::LockExcl;
    assert!(!m.row(s).loner);
    assert_eq!(gcaps(m, s, CapsWho::Any, true), caps::GSHARED);
    assert_eq!(gcaps(m, s, CapsWho::Loner, true), caps::GSHARED);
}

#[test]
fn fact_10_scatterlock_mix_replica_wrlock_no_rdlock() {
    assert_eq!(grants(can_wrlock, Machine::Scatter, LockState::Mix), everyone());
    assert!(grants(can_rdlock, Machine::Scatter, LockState::Mix).is_empty());
    assert!(req_rdlock_from_auth(Machine::Scatter, LockState::Mix));
}

#[test]
fn fact_11_scatterlock_lock_wrlock_and_read_auth_only() {
    assert_eq!(grants(can_wrlock, Machine::Scatter, LockState::Lock), auth_only());
    assert_eq!(grants(can_read, Machine::Scatter, LockState::Lock), auth_only());
}

#[test]
fn fact_12_scatterlock_issues_only_s_in_sync() {
    for s in LockState::ALL {
        let r = Machine::Scatter.row(s);
        let (any, rep) = if s == LockState::Sync { (caps::GSHARED, caps::GSHARED) } else { (0, 0) };
        assert_eq!(r.caps, any, "scatterlock {} caps", s.name());
        assert_eq!(r.replica_caps, rep, "scatterlock {} replica caps", s.name());
        assert_eq!((r.loner_caps, r.xlocker_caps), (0, 0), "scatterlock {} loner/xlocker caps", s.name());
    }
    assert_eq!(LockType::INest.cap_shift(), 0);
    assert_eq!(LockType::IDft.cap_shift(), 0);
}

#[test]
fn fact_13_filelock_mix_caps() {
    let any = shift_caps(gcaps(Machine::File, LockState::Mix, CapsWho::Any, true), LockType::IFile);
    assert_eq!(any, caps::FILE_RD | caps::FILE_WR | caps::FILE_LAZYIO, "Fr Fw Fl for any client");
    let rep = shift_caps(gcaps(Machine::File, LockState::Mix, CapsWho::Any, false), LockType::IFile);
    assert_eq!(rep, caps::FILE_RD, "replica clients only Fr");
    assert_eq!(any & (caps::FILE_CACHE | caps::FILE_BUFFER | caps::FILE_SHARED), 0);
}

#[test]
fn fact_14_filelock_excl_loner_caps() {
    let loner = shift_caps(gcaps(Machine::File, LockState::Excl, CapsWho::Loner, true), LockType::IFile);
    assert_eq!(
        loner,
        caps::FILE_SHARED
            | caps::FILE_EXCL
            | caps::FILE_CACHE
            | caps::FILE_RD
            | caps::FILE_WR
            | caps::FILE_BUFFER
    );
    assert_eq!(loner & (caps::FILE_LAZYIO | caps::FILE_WREXTEND), 0);
    assert_eq!(gcaps(Machine::File, LockState::Excl, CapsWho::Any, true), 0, "others nothing");
}

#[test]
fn fact_15_filelock_sync_caps() {
    let any = shift_caps(gcaps(Machine::File, LockState::Sync, CapsWho::Any, true), LockType::IFile);
    assert_eq!(any, caps::FILE_SHARED | caps::FILE_CACHE | caps::FILE_RD | caps::FILE_LAZYIO);
    let rep = shift_caps(gcaps(Machine::File, LockState::Sync, CapsWho::Any, false), LockType::IFile);
    assert_eq!(rep, caps::FILE_SHARED | caps::FILE_CACHE | caps::FILE_RD);
}

#[test]
fn fact_16_filelock_lock_keeps_cb_rdlock_req_wrlock_auth() {
    let any = shift_caps(gcaps(Machine::File, LockState::Lock, CapsWho::Any, true), LockType::IFile);
    assert_eq!(any, caps::FILE_CACHE | caps::FILE_BUFFER);
    assert_eq!(Machine::File.row(LockState::Lock).can_rdlock, Perm::Req);
    assert!(grants(can_rdlock, Machine::File, LockState::Lock).is_empty());
    assert_eq!(grants(can_wrlock, Machine::File, LockState::Lock), auth_only());
}

#[test]
fn fact_17_filelock_xsyn() {
    let m = Machine::File;
    let s = LockState::Xsyn;
    assert_eq!(grants(can_rdlock, m, s), auth_only(), "rdlock AUTH");
    assert_eq!(grants(can_read_projected, m, s), auth_only(), "read_projected AUTH");
    assert_eq!(m.row(s).can_wrlock, Perm::Xcl);
    assert!(m.row(s).loner);
    assert_eq!(gcaps(m, s, CapsWho::Loner, true), caps::GCACHE | caps::GBUFFER, "loner keeps Fc Fb");
}

#[test]
fn fact_18_filelock_sync_lock_rdlock_req_vs_simplelock_zero() {
    assert_eq!(Machine::File.row(LockState::SyncLock).can_rdlock, Perm::Req);
    assert_eq!(Machine::Simple.row(LockState::SyncLock).can_rdlock, Perm::Never);
    assert!(req_rdlock_from_auth(Machine::File, LockState::SyncLock));
    assert!(!req_rdlock_from_auth(Machine::Simple, LockState::SyncLock));
    assert!(grants(can_rdlock, Machine::File, LockState::SyncLock).is_empty());
    assert!(grants(can_rdlock, Machine::Simple, LockState::SyncLock).is_empty());
}

#[test]
fn fact_19_filelock_excl_xsyn_not_loner_every_client_gets_cb() {
    let m = Machine::File;
    let s = LockState::ExclXsyn;
    assert!(!m.row(s).loner);
    assert_eq!(m.row(s).loner_caps, caps::GCACHE | caps::GBUFFER);
    assert_eq!(gcaps(m, s, CapsWho::Any, true), caps::GCACHE | caps::GBUFFER);
    assert_eq!(
        shift_caps(gcaps(m, s, CapsWho::Any, true), LockType::IFile),
        caps::FILE_CACHE | caps::FILE_BUFFER
    );
}

#[test]
fn fact_20_replica_only_states_have_replica_state_undef() {
    assert_eq!(Machine::File.row(LockState::SyncMix2).replica_state, LockState::Undef);
    assert_eq!(Machine::File.row(LockState::MixSync2).replica_state, LockState::Undef);
    assert_eq!(Machine::Scatter.row(LockState::SyncMix2).replica_state, LockState::Undef);
    assert_eq!(LockState::Undef.id(), 0);
}

#[test]
fn fact_21_locallock_only_lock_row() {
    let m = Machine::Local;
    let with_rows: Vec<LockState> = m.states_with_rows().collect();
    assert_eq!(with_rows, vec![LockState::Lock]);
    let r = m.row(LockState::Lock);
    assert_eq!(r.can_read, Perm::Any);
    assert_eq!(r.can_rdlock, Perm::Any);
    assert_eq!(r.can_lease, Perm::Any);
    assert_eq!(r.can_xlock, Perm::Auth);
    assert_eq!((r.caps, r.loner_caps, r.xlocker_caps, r.replica_caps), (0, 0, 0, 0));
}

#[test]
fn fact_22_can_remote_xlock_only_simplelock() {
    for m in Machine::ALL {
        assert_eq!(m.def().can_remote_xlock, m == Machine::Simple, "{}", m.name());
    }
}

#[test]
fn fact_23_filelock_allowed_ever_and_careful() {
    let d = Machine::File.def();
    assert_eq!((d.allowed_ever_auth, d.allowed_ever_replica, d.careful), (255, 141, 39));
}

#[test]
fn fact_24_simple_and_scatter_allowed_ever_and_careful() {
    for m in [Machine::Simple, Machine::Scatter] {
        let d = m.def();
        assert_eq!((d.allowed_ever_auth, d.allowed_ever_replica, d.careful), (3, 1, 3), "{}", m.name());
    }
}

#[test]
fn fact_25_stable_iff_next_zero_absent_rows_permit_nothing() {
    for m in Machine::ALL {
        for s in LockState::ALL {
            let r = m.row(s);
            assert_eq!(r.is_stable(), r.next == LockState::Undef, "{} {}", m.name(), s.name());
            if !m.has_row(s) || s == LockState::Undef {
                assert!(r.is_stable(), "{} {} is formally stable", m.name(), s.name());
                for pred in [
                    can_read as Pred,
                    can_read_projected,
                    can_rdlock,
                    can_wrlock,
                    can_force_wrlock,
                    can_lease,
                    can_xlock,
                ] {
                    assert!(grants(pred, m, s).is_empty(), "{} {} permits something", m.name(), s.name());
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Identifiers (facts 26–34)
// ------------------------------------------------------------------------------------------

#[test]
fn fact_26_state_ids() {
    for (s, id) in [
        (LockState::Sync, 1),
        (LockState::Lock, 2),
        (LockState::Xlock, 4),
        (LockState::XlockDone, 5),
        (LockState::Excl, 10),
        (LockState::Mix, 16),
        (LockState::SnapSync, 33),
        (LockState::Xsyn, 34),
    ] {
        assert_eq!(s.id(), id, "{}", s.name());
    }
    assert_eq!(LockState::COUNT, 40, "LOCK_MAX");
}

#[test]
fn fact_27_lock_actions() {
    let rows = [
        (LockAction::Sync, -1, "sync", Direction::AuthToReplica),
        (LockAction::Mix, -2, "mix", Direction::AuthToReplica),
        (LockAction::Lock, -3, "lock", Direction::AuthToReplica),
        (LockAction::LockFlushed, -4, "lockflushed", Direction::AuthToReplica),
        (LockAction::SyncAck, 1, "syncack", Direction::ReplicaToAuth),
        (LockAction::MixAck, 2, "mixack", Direction::ReplicaToAuth),
        (LockAction::LockAck, 3, "lockack", Direction::ReplicaToAuth),
        (LockAction::ReqScatter, 7, "reqscatter", Direction::ReplicaToAuth),
        (LockAction::ReqUnscatter, 8, "requnscatter", Direction::ReplicaToAuth),
        (LockAction::Nudge, 9, "nudge", Direction::ReplicaToAuth),
        (LockAction::ReqRdlock, 10, "reqrdlock", Direction::ReplicaToAuth),
    ];
    assert_eq!(LockAction::ALL.len(), rows.len());
    for (a, v, name, dir) in rows {
        assert_eq!(a.value(), v, "{name} value");
        assert_eq!(LockAction::from_value(v), Some(a), "from_value({v})");
        assert_eq!(a.name(), name, "action {v} name");
        assert_eq!(a.direction(), dir, "{name} direction");
        assert_eq!(v < 0, dir == Direction::AuthToReplica, "{name}: negative = for replica");
    }
    for v in [0, 4, 5, 6, 11, -5] {
        assert_eq!(LockAction::from_value(v), None, "from_value({v})");
    }
}

#[test]
fn fact_28_condition_values() {
    assert_eq!(Perm::Any.value(), 1);
    assert_eq!(Perm::Auth.value(), 2);
    assert_eq!(Perm::Xcl.value(), 3);
    assert_eq!(Perm::Req.value(), 5);
    assert_eq!(Perm::Never.value(), 0);
}

#[test]
fn fact_29_pre_squid_lock_type_values() {
    for (lt, v) in [
        (LockType::Dn, 1),
        (LockType::DVersion, 2),
        (LockType::ISnap, 16),
        (LockType::IPolicy, 32),
        (LockType::IFile, 64),
        (LockType::INest, 128),
        (LockType::IDft, 256),
        (LockType::IAuth, 512),
        (LockType::ILink, 1024),
        (LockType::IXattr, 2048),
        (LockType::IFlock, 4096),
        (LockType::IVersion, 8192),
    ] {
        assert_eq!(lt.value(), v, "{}", lt.name());
    }
}

#[test]
fn fact_30_cap_constants() {
    assert_eq!(caps::FILE_BUFFER, 8192);
    assert_eq!(caps::AUTH_EXCL, 8);
    assert_eq!(caps::XATTR_SHARED, 64);
    assert_eq!(caps::ANY, 49149);
    assert_eq!(caps::ANY & 16384, 0, "ANY excludes Fa");
}

#[test]
fn fact_31_cap_shifts_and_masks() {
    for lt in LockType::ALL {
        let (shift, mask) = match lt {
            LockType::IAuth => (2, 0x3),
            LockType::ILink => (4, 0x3),
            LockType::IXattr => (6, 0x3),
            LockType::IFile => (8, 0xff),
            _ => (0, 0x3),
        };
        assert_eq!(lt.cap_shift(), shift, "{} cap shift", lt.name());
        assert_eq!(lt.cap_mask(), mask, "{} cap mask", lt.name());
    }
}

#[test]
fn fact_32_wait_shifts() {
    // k per §8 fact 32 (IQUIESCE, k = 12, does not exist in the pre-Squid numbering).
    for (lt, k) in [
        (LockType::Dn, 0),
        (LockType::DVersion, 1),
        (LockType::IAuth, 2),
        (LockType::ILink, 3),
        (LockType::IDft, 4),
        (LockType::IFile, 5),
        (LockType::IVersion, 6),
        (LockType::IXattr, 7),
        (LockType::ISnap, 8),
        (LockType::INest, 9),
        (LockType::IFlock, 10),
        (LockType::IPolicy, 11),
    ] {
        assert_eq!(lt.wait_shift(), 8 + 4 * k, "{} wait shift", lt.name());
    }
}

#[test]
fn fact_33_xlocker_mask() {
    for lt in LockType::ALL {
        let want = if lt == LockType::IFile {
            caps::GSHARED | caps::GEXCL | caps::GCACHE | caps::GRD
        } else {
            caps::GSHARED | caps::GEXCL
        };
        assert_eq!(lt.xlocker_mask(), want, "{} xlocker mask", lt.name());
    }
}

#[test]
fn fact_34_xcl_wrlock_satisfied_by_loner_rdlock_not() {
    // filelock EXCL has rdlock XCL and wrlock XCL. The loner holds no xlock.
    let m = Machine::File;
    let s = LockState::Excl;
    assert_eq!((m.row(s).can_rdlock, m.row(s).can_wrlock), (Perm::Xcl, Perm::Xcl));
    let no_xlock = LockCtx { is_auth: true, xlock_by_client: None, excl_client: Some(LONER) };
    assert!(can_wrlock(m, s, &no_xlock, Some(LONER)), "wrlock XCL accepts the loner");
    assert!(!can_rdlock(m, s, &no_xlock, Some(LONER)), "rdlock XCL does not accept the loner");
    // simplelock EXCL_SYNC has force_wrlock XCL: the loner passes there too.
    assert!(can_force_wrlock(Machine::Simple, LockState::ExclSync, &no_xlock, Some(LONER)));
    // The raw rule.
    assert!(perm_allows(Perm::Xcl, true, Some(LONER), None, Some(LONER)));
    assert!(!perm_allows(Perm::Xcl, true, Some(LONER), None, None));
    assert!(perm_allows(Perm::Xcl, false, Some(XLOCKER), Some(XLOCKER), None));
    assert!(!perm_allows(Perm::Xcl, true, None, None, None), "the MDS never passes XCL");
}

// ------------------------------------------------------------------------------------------
// eval_gather facts (47, 48)
// ------------------------------------------------------------------------------------------

#[test]
fn fact_47_gather_counts_any_and_auth_on_auth_only_any_on_replica() {
    // filelock SYNC_LOCK → LOCK: LOCK's wrlock is AUTH, so wrlocks may stay on the auth but
    // must drain on a replica.
    let auth = gather_needs(Machine::File, LockState::SyncLock, true).expect("transitional");
    let rep = gather_needs(Machine::File, LockState::SyncLock, false).expect("transitional");
    assert!(!auth.wrlocks_must_drain);
    assert!(rep.wrlocks_must_drain);
    // scatterlock MIX_LOCK → LOCK: LOCK's xlock is ANY, so xlocks never need to drain.
    let auth = gather_needs(Machine::Scatter, LockState::MixLock, true).unwrap();
    let rep = gather_needs(Machine::Scatter, LockState::MixLock, false).unwrap();
    assert!(!auth.xlocks_must_drain && !rep.xlocks_must_drain);
}

#[test]
fn fact_48_sync_mix2_and_mix_sync2_complete_only_by_message() {
    for (m, s) in [
        (Machine::File, LockState::SyncMix2),
        (Machine::File, LockState::MixSync2),
        (Machine::Scatter, LockState::SyncMix2),
    ] {
        for is_auth in [true, false] {
            let n = gather_needs(m, s, is_auth).expect("transitional");
            assert!(n.completes_only_by_message, "{} {} auth={is_auth}", m.name(), s.name());
            let idle = GatherState {
                is_auth,
                gather_set_empty: true,
                rdlocks: 0,
                wrlocks: 0,
                xlocks: 0,
                leases: 0,
                flushing: false,
                loner_issued: 0,
                other_issued: 0,
                xlocker_issued: 0,
                any_client_holds_fb: false,
            };
            assert!(!gather_finished(m, s, &idle), "{} {} must never finish by gather", m.name(), s.name());
        }
    }
}

// ------------------------------------------------------------------------------------------
// §1.7 effective caps, every row
// ------------------------------------------------------------------------------------------

/// (state, ANY on auth, loner on auth, xlocker on auth with an xlocker, replica): §1.7 filelock.
const FILELOCK_EFFECTIVE: [(LockState, u32, u32, u32, u32); 32] = [
    (LockState::Sync, 141, 141, 141, 13),
    (LockState::Lock, 36, 36, 36, 0),
    (LockState::PreXlock, 36, 36, 36, 0),
    (LockState::Xlock, 36, 36, 36, 0),
    (LockState::XlockDone, 36, 36, 37, 0),
    (LockState::XlockSnap, 4, 4, 4, 0),
    (LockState::LockXlock, 36, 36, 36, 0),
    (LockState::SyncLock, 4, 4, 4, 0),
    (LockState::LockSync, 4, 4, 4, 0),
    (LockState::Excl, 0, 63, 0, 0),
    (LockState::ExclSync, 0, 13, 0, 0),
    (LockState::ExclLock, 36, 36, 36, 0),
    (LockState::SyncExcl, 0, 13, 0, 0),
    (LockState::LockExcl, 0, 36, 0, 0),
    (LockState::Mix, 152, 152, 152, 8),
    (LockState::SyncMix, 136, 136, 136, 8),
    (LockState::SyncMix2, 136, 136, 136, 8),
    (LockState::ExclMix, 0, 24, 0, 0),
    (LockState::MixSync, 136, 136, 136, 8),
    (LockState::MixSync2, 136, 136, 136, 8),
    (LockState::MixLock, 0, 0, 0, 0),
    (LockState::MixLock2, 0, 0, 0, 0),
    (LockState::MixExcl, 0, 24, 0, 0),
    (LockState::PreScan, 0, 0, 0, 0),
    (LockState::Scan, 0, 0, 0, 0),
    (LockState::SnapSync, 0, 0, 0, 0),
    (LockState::Xsyn, 0, 36, 0, 0),
    (LockState::XsynExcl, 0, 36, 0, 0),
    (LockState::ExclXsyn, 36, 36, 0, 0),
    (LockState::XsynSync, 0, 4, 0, 0),
    (LockState::XsynLock, 0, 36, 0, 0),
    (LockState::XsynMix, 0, 0, 0, 0),
];

/// Same columns, §1.7 simplelock.
const SIMPLELOCK_EFFECTIVE: [(LockState, u32, u32, u32, u32); 15] = [
    (LockState::Sync, 1, 1, 1, 1),
    (LockState::Lock, 0, 0, 0, 0),
    (LockState::PreXlock, 0, 0, 0, 0),
    (LockState::Xlock, 0, 0, 0, 0),
    (LockState::XlockDone, 0, 0, 1, 0),
    (LockState::LockXlock, 0, 0, 0, 0),
    (LockState::SyncLock, 0, 0, 0, 0),
    (LockState::LockSync, 0, 0, 0, 0),
    (LockState::Excl, 0, 3, 0, 0),
    (LockState::ExclSync, 0, 1, 0, 0),
    (LockState::ExclLock, 0, 0, 0, 0),
    (LockState::SyncExcl, 0, 1, 0, 0),
    (LockState::LockExcl, 1, 1, 1, 0),
    (LockState::RemoteXlock, 0, 0, 0, 0),
    (LockState::SnapSync, 0, 0, 0, 0),
];

fn check_effective(m: Machine, table: &[(LockState, u32, u32, u32, u32)]) {
    let mut problems = Vec::new();
    for &(s, any, loner, xlocker, replica) in table {
        let cols = [
            ("ANY (auth)", gcaps_allowed(m, s, s, CapsWho::Any, true, false), any),
            ("ANY (auth, xlocker present)", gcaps_allowed(m, s, s, CapsWho::Any, true, true), any),
            ("loner (auth)", gcaps_allowed(m, s, s, CapsWho::Loner, true, false), loner),
            ("loner (auth, xlocker present)", gcaps_allowed(m, s, s, CapsWho::Loner, true, true), loner),
            (
                "xlocker (auth, xlocker present)",
                gcaps_allowed(m, s, s, CapsWho::Xlocker, true, true),
                xlocker,
            ),
            ("replica (ANY)", gcaps_allowed(m, s, s, CapsWho::Any, false, false), replica),
            ("replica (loner)", gcaps_allowed(m, s, s, CapsWho::Loner, false, false), replica),
            ("replica (xlocker)", gcaps_allowed(m, s, s, CapsWho::Xlocker, false, true), replica),
        ];
        for (col, got, want) in cols {
            if got != want {
                problems.push(format!("{} {} {col}: spec {want}, lock-sm {got}", m.name(), s.name()));
            }
        }
    }
    // Every row of the class appears in the §1.7 table.
    let listed: Vec<LockState> = table.iter().map(|r| r.0).collect();
    let rows: Vec<LockState> = m.states_with_rows().collect();
    if listed != rows {
        problems.push(format!("{}: §1.7 lists {listed:?}, lock-sm has rows {rows:?}", m.name()));
    }
    assert!(problems.is_empty(), "§1.7 effective caps differ:\n{}", problems.join("\n"));
}

#[test]
fn s1_7_filelock_effective_caps_every_row() {
    check_effective(Machine::File, &FILELOCK_EFFECTIVE);
}

#[test]
fn s1_7_simplelock_effective_caps_every_row() {
    check_effective(Machine::Simple, &SIMPLELOCK_EFFECTIVE);
}

#[test]
fn s1_7_target_evaluation_uses_current_loner_flag() {
    // §1.7 subtlety: evaluating EXCL (target) from SYNC_EXCL (loner) gives ANY only `caps`;
    // from LOCK_EXCL (not loner, simplelock) it gives ANY `loner_caps | caps`.
    assert_eq!(
        gcaps_allowed(Machine::Simple, LockState::SyncExcl, LockState::Excl, CapsWho::Any, true, false),
        0
    );
    assert_eq!(
        gcaps_allowed(Machine::Simple, LockState::LockExcl, LockState::Excl, CapsWho::Any, true, false),
        3
    );
    // Without an xlocker, the xlocker bucket gets the loner answer.
    assert_eq!(
        gcaps_allowed(Machine::File, LockState::Excl, LockState::Excl, CapsWho::Xlocker, true, false),
        63
    );
}

// ------------------------------------------------------------------------------------------
// §1.8 gather tables, every row
// ------------------------------------------------------------------------------------------

/// One §1.8 row: the auth columns, then the replica rd/wr/lease column.
struct G {
    s: LockState,
    target: LockState,
    rd: bool,
    wr: bool,
    x: bool,
    lease: bool,
    any: u32,
    loner: u32,
    xlocker: u32,
    rep_rd: bool,
    rep_wr: bool,
    rep_lease: bool,
}

#[rustfmt::skip]
const SIMPLELOCK_GATHER: [G; 12] = [
    G { s: LockState::PreXlock, target: LockState::Lock, rd: true, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::Xlock, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::XlockDone, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::LockXlock, target: LockState::PreXlock, rd: true, wr: true, x: false, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SyncLock, target: LockState::Lock, rd: true, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::ExclSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::ExclLock, target: LockState::Lock, rd: true, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SyncExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 0, loner: 3, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 3, loner: 3, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::RemoteXlock, target: LockState::Lock, rd: true, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SnapSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
];

#[rustfmt::skip]
const SCATTERLOCK_GATHER: [G; 12] = [
    G { s: LockState::SyncLock, target: LockState::Lock, rd: true, wr: false, x: false, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::SyncMix, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::SyncMix2, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::MixSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::MixLock, target: LockState::Lock, rd: true, wr: false, x: false, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::MixLock2, target: LockState::Lock, rd: true, wr: false, x: false, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::TsynLock, target: LockState::Lock, rd: true, wr: false, x: false, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::TsynMix, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::LockTsyn, target: LockState::Tsyn, rd: false, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::MixTsyn, target: LockState::Tsyn, rd: false, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SnapSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 1, loner: 1, xlocker: 1, rep_rd: false, rep_wr: true, rep_lease: false },
];

#[rustfmt::skip]
const FILELOCK_GATHER: [G; 27] = [
    G { s: LockState::PreXlock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::Xlock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::XlockDone, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::XlockSnap, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockXlock, target: LockState::PreXlock, rd: true, wr: true, x: false, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SyncLock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::ExclSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::ExclLock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SyncExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 0, loner: 63, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::LockExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 0, loner: 63, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SyncMix, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 152, loner: 152, xlocker: 152, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::SyncMix2, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 152, loner: 152, xlocker: 152, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::ExclMix, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 152, loner: 152, xlocker: 152, rep_rd: true, rep_wr: false, rep_lease: true },
    G { s: LockState::MixSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::MixSync2, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::MixLock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::MixLock2, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::MixExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 0, loner: 63, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::PreScan, target: LockState::Scan, rd: true, wr: true, x: true, lease: true, any: 0, loner: 0, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::Scan, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::SnapSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::XsynExcl, target: LockState::Excl, rd: true, wr: true, x: true, lease: true, any: 0, loner: 63, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::ExclXsyn, target: LockState::Xsyn, rd: false, wr: true, x: true, lease: true, any: 36, loner: 36, xlocker: 0, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::XsynSync, target: LockState::Sync, rd: false, wr: true, x: true, lease: false, any: 141, loner: 141, xlocker: 141, rep_rd: false, rep_wr: true, rep_lease: false },
    G { s: LockState::XsynLock, target: LockState::Lock, rd: true, wr: false, x: true, lease: true, any: 36, loner: 36, xlocker: 36, rep_rd: true, rep_wr: true, rep_lease: true },
    G { s: LockState::XsynMix, target: LockState::Mix, rd: true, wr: false, x: true, lease: true, any: 152, loner: 152, xlocker: 152, rep_rd: true, rep_wr: false, rep_lease: true },
];

fn check_gather(m: Machine, table: &[G]) {
    let mut problems = Vec::new();
    for g in table {
        let name = format!("{} {}", m.name(), g.s.name());
        let Some(auth) = gather_needs(m, g.s, true) else {
            problems.push(format!("{name}: gather_needs(auth) is None for a transitional state"));
            continue;
        };
        let Some(rep) = gather_needs(m, g.s, false) else {
            problems.push(format!("{name}: gather_needs(replica) is None for a transitional state"));
            continue;
        };
        let by_msg = matches!(g.s, LockState::SyncMix2 | LockState::MixSync2);
        let cols: [(&str, String, String); 14] = [
            ("target", format!("{:?}", auth.target), format!("{:?}", g.target)),
            ("auth rdlocks must drain", auth.rdlocks_must_drain.to_string(), g.rd.to_string()),
            ("auth wrlocks must drain", auth.wrlocks_must_drain.to_string(), g.wr.to_string()),
            ("auth xlocks must drain", auth.xlocks_must_drain.to_string(), g.x.to_string()),
            ("auth leases must drain", auth.leases_must_drain.to_string(), g.lease.to_string()),
            ("caps any", auth.caps_any.to_string(), g.any.to_string()),
            ("caps loner", auth.caps_loner.to_string(), g.loner.to_string()),
            ("caps xlocker", auth.caps_xlocker.to_string(), g.xlocker.to_string()),
            ("replica target", format!("{:?}", rep.target), format!("{:?}", g.target)),
            ("replica rdlocks must drain", rep.rdlocks_must_drain.to_string(), g.rep_rd.to_string()),
            ("replica wrlocks must drain", rep.wrlocks_must_drain.to_string(), g.rep_wr.to_string()),
            ("replica leases must drain", rep.leases_must_drain.to_string(), g.rep_lease.to_string()),
            (
                "completes_only_by_message (auth)",
                auth.completes_only_by_message.to_string(),
                by_msg.to_string(),
            ),
            (
                "completes_only_by_message (replica)",
                rep.completes_only_by_message.to_string(),
                by_msg.to_string(),
            ),
        ];
        for (col, got, want) in cols {
            if got != want {
                problems.push(format!("{name} {col}: spec {want}, lock-sm {got}"));
            }
        }
    }
    // The §1.8 table lists every transitional state of the class, and nothing else gathers.
    for s in LockState::ALL {
        let listed = table.iter().any(|g| g.s == s);
        let got = gather_needs(m, s, true).is_some();
        if listed != got {
            problems.push(format!(
                "{} {}: §1.8 lists it: {listed}, gather_needs is Some: {got}",
                m.name(),
                s.name()
            ));
        }
    }
    assert!(problems.is_empty(), "§1.8 gather table cells differ:\n{}", problems.join("\n"));
}

#[test]
fn s1_8_simplelock_gather_every_row() {
    check_gather(Machine::Simple, &SIMPLELOCK_GATHER);
}

#[test]
fn s1_8_scatterlock_gather_every_row() {
    check_gather(Machine::Scatter, &SCATTERLOCK_GATHER);
}

#[test]
fn s1_8_filelock_gather_every_row() {
    check_gather(Machine::File, &FILELOCK_GATHER);
}

#[test]
fn s1_8_locallock_never_gathers() {
    for s in LockState::ALL {
        assert_eq!(gather_needs(Machine::Local, s, true), None::<GatherNeeds>, "locallock {}", s.name());
    }
}

#[test]
fn s1_8_filelock_sync_lock_reading_example() {
    // §1.8 "Reading the tables": filelock SYNC_LOCK (auth) waits for rdlocks and leases, for
    // replicas, and for clients to give back everything but c|b; wrlocks may stay.
    let base = GatherState {
        is_auth: true,
        gather_set_empty: true,
        rdlocks: 0,
        wrlocks: 3,
        xlocks: 0,
        leases: 0,
        flushing: false,
        loner_issued: caps::GCACHE | caps::GBUFFER,
        other_issued: caps::GCACHE,
        xlocker_issued: 0,
        any_client_holds_fb: false,
    };
    let m = Machine::File;
    let s = LockState::SyncLock;
    assert!(gather_finished(m, s, &base), "wrlocks and c|b may stay");
    assert!(!gather_finished(m, s, &GatherState { rdlocks: 1, ..base }), "rdlocks drain");
    assert!(!gather_finished(m, s, &GatherState { leases: 1, ..base }), "leases drain");
    assert!(!gather_finished(m, s, &GatherState { gather_set_empty: false, ..base }), "replicas ack");
    for (bit, name) in [(caps::GSHARED, "Fs"), (caps::GRD, "Fr"), (caps::GLAZYIO, "Fl")] {
        assert!(!gather_finished(m, s, &GatherState { other_issued: bit, ..base }), "{name} must be revoked");
    }
    // LOCK_SYNC waits for wrlocks/xlocks but not rdlocks.
    let s = LockState::LockSync;
    let idle = GatherState { wrlocks: 0, loner_issued: 0, other_issued: 0, ..base };
    assert!(gather_finished(m, s, &GatherState { rdlocks: 2, ..idle }));
    assert!(!gather_finished(m, s, &GatherState { wrlocks: 1, ..idle }));
    assert!(!gather_finished(m, s, &GatherState { xlocks: 1, ..idle }));
}

#[test]
fn s1_8_xlocksnap_waits_for_fb_on_auth() {
    let idle = GatherState {
        is_auth: true,
        gather_set_empty: true,
        rdlocks: 0,
        wrlocks: 0,
        xlocks: 0,
        leases: 0,
        flushing: false,
        loner_issued: 0,
        other_issued: 0,
        xlocker_issued: 0,
        any_client_holds_fb: false,
    };
    let m = Machine::File;
    assert!(gather_finished(m, LockState::XlockSnap, &idle));
    assert!(
        !gather_finished(m, LockState::XlockSnap, &GatherState { any_client_holds_fb: true, ..idle }),
        "§1.8 newest-tree rule: XLOCKSNAP waits for Fb revocation on the auth"
    );
}
