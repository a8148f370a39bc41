//! Exhaustive walks over machine × state × operation × (auth, replica) × client relation,
//! checked against invariants derived from spec/mds-locks.md §1.1, §1.7, §1.8 and §4.2.
//!
//! The expected permission for every cell is recomputed from the *spec fixture*
//! (`fixtures/spec_tables.csv`, extracted from §1.3–§1.6) with the §4.2 rule, so these walks
//! test the predicates independently of lock-sm's own tables. On top of that, structural
//! invariants are asserted directly on the API.

use std::collections::BTreeMap;

use lock_sm::predicates::{
    can_force_wrlock, can_lease, can_rdlock, can_read, can_read_projected, can_wrlock, can_xlock,
    gcaps_allowed, req_rdlock_from_auth,
};
use lock_sm::{
    CapsWho, ClientId, GatherState, LockCtx, LockState, Machine, Perm, gather_finished, gather_needs,
};

const FIXTURE: &str = include_str!("fixtures/spec_tables.csv");

const XLOCKER: ClientId = 7;
const LONER: ClientId = 9;
const OTHER: ClientId = 11;

type Pred = fn(Machine, LockState, &LockCtx, Option<ClientId>) -> bool;

/// The seven permission operations, with their fixture column and whether XCL also accepts
/// the loner (`excl_client`), which §4.2 allows for wrlock and force_wrlock only.
const OPS: [(&str, Pred, bool); 7] = [
    ("can_read", can_read, false),
    ("can_read_projected", can_read_projected, false),
    ("can_rdlock", can_rdlock, false),
    ("can_wrlock", can_wrlock, true),
    ("can_force_wrlock", can_force_wrlock, true),
    ("can_lease", can_lease, false),
    ("can_xlock", can_xlock, false),
];

/// Spec rows keyed by (machine name, state id) → column name → cell.
fn spec_rows() -> BTreeMap<(String, u8), BTreeMap<String, String>> {
    let mut lines = FIXTURE.lines().filter(|l| !l.is_empty());
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines
        .map(|l| {
            let cells: BTreeMap<String, String> =
                header.iter().cloned().zip(l.split(',').map(str::to_string)).collect();
            ((cells["machine"].clone(), cells["state_id"].parse().unwrap()), cells)
        })
        .collect()
}

fn spec_cell(
    rows: &BTreeMap<(String, u8), BTreeMap<String, String>>,
    m: Machine,
    s: LockState,
    col: &str,
) -> String {
    match rows.get(&(m.name().to_string(), s.id())) {
        Some(r) => r[col].clone(),
        // §1.1: a state without a row is all-zero.
        None => match col {
            "next" => "-".into(),
            "replica_state" => "UNDEF".into(),
            _ => "0".into(),
        },
    }
}

/// Lock contexts to walk: with and without an xlocking client, with no loner, a separate
/// loner, or the xlocker being the loner too.
fn contexts(is_auth: bool) -> Vec<LockCtx> {
    let mut out = Vec::new();
    for xlock_by_client in [None, Some(XLOCKER)] {
        for excl_client in [None, Some(LONER), Some(XLOCKER)] {
            out.push(LockCtx { is_auth, xlock_by_client, excl_client });
        }
    }
    out
}

const CLIENTS: [Option<ClientId>; 4] = [None, Some(XLOCKER), Some(LONER), Some(OTHER)];

/// §1.1 / §4.2: the permission rule, stated independently of the implementation.
fn spec_allows(perm: &str, ctx: &LockCtx, client: Option<ClientId>, loner_counts: bool) -> bool {
    match perm {
        "ANY" => true,
        "AUTH" => ctx.is_auth,
        "XCL" => {
            client.is_some() && (client == ctx.xlock_by_client || (loner_counts && client == ctx.excl_client))
        }
        "REQ" | "0" => false,
        other => panic!("fixture has unknown permission {other}"),
    }
}

/// Every machine × state × op × side × context × client against the §4.2 rule applied to
/// the spec's cell, plus the generic invariants of §1.1.
#[test]
fn every_permission_cell_follows_the_spec_rule() {
    let rows = spec_rows();
    let mut problems = Vec::new();
    let mut checked = 0usize;
    for m in Machine::ALL {
        for s in LockState::ALL {
            for (op, pred, loner_counts) in OPS {
                let perm = spec_cell(&rows, m, s, op);
                for is_auth in [true, false] {
                    for ctx in contexts(is_auth) {
                        for client in CLIENTS {
                            checked += 1;
                            let got = pred(m, s, &ctx, client);
                            let want = spec_allows(&perm, &ctx, client, loner_counts);
                            if got != want {
                                problems.push(format!(
                                    "{} {} {op} [{perm}] auth={is_auth} xlock_by={:?} excl={:?} client={client:?}: spec {want}, lock-sm {got}",
                                    m.name(),
                                    s.name(),
                                    ctx.xlock_by_client,
                                    ctx.excl_client
                                ));
                            }
                            // Generic invariants, stated separately so a failure names the rule.
                            if got && perm == "REQ" {
                                problems.push(format!(
                                    "{} {} {op}: REQ granted locally (§1.1)",
                                    m.name(),
                                    s.name()
                                ));
                            }
                            if got && perm == "AUTH" && !is_auth {
                                problems.push(format!(
                                    "{} {} {op}: AUTH granted on a replica (§1.1)",
                                    m.name(),
                                    s.name()
                                ));
                            }
                            if got && perm == "XCL" && client.is_none() {
                                problems.push(format!(
                                    "{} {} {op}: the MDS passed XCL (§1.1)",
                                    m.name(),
                                    s.name()
                                ));
                            }
                            if got && perm == "XCL" && client == Some(OTHER) {
                                problems.push(format!(
                                    "{} {} {op}: an unrelated client passed XCL",
                                    m.name(),
                                    s.name()
                                ));
                            }
                            if got
                                && perm == "XCL"
                                && !loner_counts
                                && client == ctx.excl_client
                                && client != ctx.xlock_by_client
                            {
                                problems.push(format!(
                                    "{} {} {op}: XCL satisfied by the loner alone (§8 fact 34)",
                                    m.name(),
                                    s.name()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 4 * 40 * 7 * 2 * 6 * 4, "walk size");
    assert!(problems.is_empty(), "{} permission cell(s) wrong:\n{}", problems.len(), problems.join("\n"));
}

/// §4.2: req_rdlock_from_auth is exactly "the rdlock column is REQ"; REQ appears in no other
/// column of the spec tables.
#[test]
fn req_rdlock_from_auth_matches_rdlock_req_everywhere() {
    let rows = spec_rows();
    for m in Machine::ALL {
        for s in LockState::ALL {
            let want = spec_cell(&rows, m, s, "can_rdlock") == "REQ";
            assert_eq!(req_rdlock_from_auth(m, s), want, "{} {} req_rdlock_from_auth", m.name(), s.name());
            for (op, _, _) in OPS.iter().filter(|o| o.0 != "can_rdlock") {
                assert_ne!(
                    spec_cell(&rows, m, s, op),
                    "REQ",
                    "spec: REQ outside rdlock at {} {} {op}",
                    m.name(),
                    s.name()
                );
            }
        }
    }
}

/// §1.7 rule recomputed from the spec fixture.
fn spec_gcaps(
    rows: &BTreeMap<(String, u8), BTreeMap<String, String>>,
    m: Machine,
    current: LockState,
    evaluated: LockState,
    who: CapsWho,
    is_auth: bool,
    has_xlocker: bool,
) -> u32 {
    let num = |col: &str| spec_cell(rows, m, evaluated, col).parse::<u32>().unwrap();
    if !is_auth {
        return num("replica_caps");
    }
    let loner_mode = spec_cell(rows, m, current, "loner") == "1";
    match who {
        CapsWho::Xlocker if has_xlocker => num("xlocker_caps") | num("caps"),
        CapsWho::Any if loner_mode => num("caps"),
        _ => num("loner_caps") | num("caps"),
    }
}

/// Every (machine, current, evaluated, who, side, has_xlocker) against the §1.7 rule, plus:
/// the loner always gets at least what ANY gets; auth caps ⊆ allowed_ever_auth; replica caps
/// ⊆ allowed_ever_replica.
#[test]
fn gcaps_allowed_follows_the_section_1_7_rule_everywhere() {
    let rows = spec_rows();
    let mut problems = Vec::new();
    for m in Machine::ALL {
        let def = m.def();
        for current in LockState::ALL {
            for evaluated in LockState::ALL {
                for is_auth in [true, false] {
                    for has_xlocker in [false, true] {
                        let mut by_who = Vec::new();
                        for who in [CapsWho::Any, CapsWho::Loner, CapsWho::Xlocker] {
                            let got = gcaps_allowed(m, current, evaluated, who, is_auth, has_xlocker);
                            let want = spec_gcaps(&rows, m, current, evaluated, who, is_auth, has_xlocker);
                            if got != want {
                                problems.push(format!(
                                    "{} current={} evaluated={} {who:?} auth={is_auth} xlocker={has_xlocker}: spec {want}, lock-sm {got}",
                                    m.name(),
                                    current.name(),
                                    evaluated.name()
                                ));
                            }
                            let bound =
                                if is_auth { def.allowed_ever_auth } else { def.allowed_ever_replica };
                            if got & !bound != 0 {
                                problems.push(format!(
                                    "{} {}→{} {who:?} auth={is_auth}: {got} exceeds allowed_ever {bound} (§1.2)",
                                    m.name(),
                                    current.name(),
                                    evaluated.name()
                                ));
                            }
                            by_who.push(got);
                        }
                        if by_who[1] & by_who[0] != by_who[0] {
                            problems.push(format!(
                                "{} {}→{} auth={is_auth}: loner {} does not cover ANY {} (§1.7)",
                                m.name(),
                                current.name(),
                                evaluated.name(),
                                by_who[1],
                                by_who[0]
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} gcaps cell(s) wrong:\n{}", problems.len(), problems.join("\n"));
}

/// Every row's raw caps stay within the machine's allowed_ever bounds (§1.2).
#[test]
fn table_caps_within_allowed_ever() {
    for m in Machine::ALL {
        let d = m.def();
        for s in LockState::ALL {
            let r = m.row(s);
            for (col, v) in [("caps", r.caps), ("loner_caps", r.loner_caps), ("xlocker_caps", r.xlocker_caps)]
            {
                assert_eq!(
                    v & !d.allowed_ever_auth,
                    0,
                    "{} {} {col} exceeds allowed_ever_auth",
                    m.name(),
                    s.name()
                );
            }
            assert_eq!(
                r.replica_caps & !d.allowed_ever_replica,
                0,
                "{} {} replica_caps exceeds allowed_ever_replica",
                m.name(),
                s.name()
            );
        }
    }
}

/// Every transitional state heads to a state that has a row and is stable, except where the
/// spec itself chains two transitional states:
/// * LOCK_XLOCK → PREXLOCK (simplelock and filelock; §8 fact 7, PREXLOCK then → LOCK);
/// * PRE_SCAN → SCAN (filelock §1.5; SCAN then → LOCK).
///
/// For those the chain must reach a stable state with a row in one more step.
#[test]
fn transitional_states_head_to_stable_states_with_rows() {
    let chained = [
        (Machine::Simple, LockState::LockXlock),
        (Machine::File, LockState::LockXlock),
        (Machine::File, LockState::PreScan),
    ];
    for m in Machine::ALL {
        for s in LockState::ALL {
            let r = m.row(s);
            if r.is_stable() {
                continue;
            }
            let n = r.next;
            assert!(m.has_row(n), "{} {} → {}: target has no row", m.name(), s.name(), n.name());
            if chained.contains(&(m, s)) {
                let nn = m.row(n).next;
                assert!(
                    !m.row(n).is_stable(),
                    "{} {} → {} is listed as a chain",
                    m.name(),
                    s.name(),
                    n.name()
                );
                assert!(
                    m.has_row(nn) && m.row(nn).is_stable(),
                    "{} {} → {} → {}",
                    m.name(),
                    s.name(),
                    n.name(),
                    nn.name()
                );
            } else {
                assert!(
                    m.row(n).is_stable(),
                    "{} {} → {}: target is not stable",
                    m.name(),
                    s.name(),
                    n.name()
                );
            }
        }
    }
}

/// Every replica_state names a state with a row in the same machine, except UNDEF, which the
/// spec uses only for the replica-only waiting states SYNC_MIX2 and MIX_SYNC2 (§1.4, §1.5,
/// §8 fact 20).
///
/// Spec quirk (§1.4): a scatterlock replica is put into MIX_SYNC2 after it sends SYNCACK,
/// yet the scatterlock table has no MIX_SYNC2 row, so there it is formally stable with no
/// permissions. That state is reached by the Locker, not via a replica_state cell (the
/// scatterlock MIX_SYNC row says LOCK), and is encoded explicitly here.
#[test]
fn replica_states_have_rows() {
    for m in Machine::ALL {
        for s in m.states_with_rows() {
            let rs = m.row(s).replica_state;
            if rs == LockState::Undef {
                assert!(
                    matches!(s, LockState::SyncMix2 | LockState::MixSync2),
                    "{} {}: replica state UNDEF outside SYNC_MIX2/MIX_SYNC2",
                    m.name(),
                    s.name()
                );
            } else {
                assert!(m.has_row(rs), "{} {}: replica state {} has no row", m.name(), s.name(), rs.name());
            }
        }
    }
    // The quirk.
    assert!(!Machine::Scatter.has_row(LockState::MixSync2), "spec §1.4: no scatterlock MIX_SYNC2 row");
    assert!(Machine::Scatter.row(LockState::MixSync2).is_stable());
    assert_eq!(gather_needs(Machine::Scatter, LockState::MixSync2, false), None);
    assert_eq!(Machine::Scatter.row(LockState::MixSync).replica_state, LockState::Lock);
    assert_eq!(Machine::File.row(LockState::MixSync).replica_state, LockState::MixSync2);
}

/// Stable states per machine (rows whose next is `stable`): §1.3–§1.6.
#[test]
fn stable_states_with_rows() {
    use LockState::*;
    let want: [(Machine, &[LockState]); 4] = [
        (Machine::Simple, &[Sync, Lock, Excl]),
        (Machine::Scatter, &[Sync, Lock, Mix, Tsyn]),
        (Machine::File, &[Sync, Lock, Excl, Mix, Xsyn]),
        (Machine::Local, &[Lock]),
    ];
    for (m, states) in want {
        let got: Vec<LockState> = m.states_with_rows().filter(|s| m.row(*s).is_stable()).collect();
        assert_eq!(got, states, "{} stable states", m.name());
    }
}

/// §1.8: gather_needs is Some exactly for transitional states, its target is the row's next,
/// and its flags follow "allowed in N" (ANY, or AUTH on the auth; §8 fact 47) applied to the
/// spec's target row; caps follow §1.7 evaluated at the target with the current loner flag.
#[test]
fn gather_needs_follows_the_section_1_8_rule_everywhere() {
    let rows = spec_rows();
    let allowed = |perm: &str, is_auth: bool| perm == "ANY" || (perm == "AUTH" && is_auth);
    let mut problems = Vec::new();
    for m in Machine::ALL {
        for s in LockState::ALL {
            for is_auth in [true, false] {
                let next = spec_cell(&rows, m, s, "next");
                let got = gather_needs(m, s, is_auth);
                let Some(g) = got else {
                    if next != "-" {
                        problems.push(format!(
                            "{} {} auth={is_auth}: transitional but gather_needs is None",
                            m.name(),
                            s.name()
                        ));
                    }
                    continue;
                };
                if next == "-" {
                    problems.push(format!(
                        "{} {} auth={is_auth}: stable but gather_needs is Some",
                        m.name(),
                        s.name()
                    ));
                    continue;
                }
                let n = LockState::from_name(&next).unwrap();
                let cell = |col: &str| spec_cell(&rows, m, n, col);
                let mut check = |what: &str, got: String, want: String| {
                    if got != want {
                        problems.push(format!(
                            "{} {} auth={is_auth} {what}: spec {want}, lock-sm {got}",
                            m.name(),
                            s.name()
                        ));
                    }
                };
                check("target", g.target.name().into(), next.clone());
                check(
                    "rdlocks_must_drain",
                    g.rdlocks_must_drain.to_string(),
                    (!allowed(&cell("can_rdlock"), is_auth)).to_string(),
                );
                check(
                    "wrlocks_must_drain",
                    g.wrlocks_must_drain.to_string(),
                    (!allowed(&cell("can_wrlock"), is_auth)).to_string(),
                );
                check(
                    "xlocks_must_drain",
                    g.xlocks_must_drain.to_string(),
                    (!allowed(&cell("can_xlock"), is_auth)).to_string(),
                );
                check(
                    "leases_must_drain",
                    g.leases_must_drain.to_string(),
                    (!allowed(&cell("can_lease"), is_auth)).to_string(),
                );
                check(
                    "completes_only_by_message",
                    g.completes_only_by_message.to_string(),
                    matches!(s, LockState::SyncMix2 | LockState::MixSync2).to_string(),
                );
                if is_auth {
                    check(
                        "caps_any",
                        g.caps_any.to_string(),
                        spec_gcaps(&rows, m, s, n, CapsWho::Any, true, true).to_string(),
                    );
                    check(
                        "caps_loner",
                        g.caps_loner.to_string(),
                        spec_gcaps(&rows, m, s, n, CapsWho::Loner, true, true).to_string(),
                    );
                    check(
                        "caps_xlocker",
                        g.caps_xlocker.to_string(),
                        spec_gcaps(&rows, m, s, n, CapsWho::Xlocker, true, true).to_string(),
                    );
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} gather cell(s) wrong:\n{}", problems.len(), problems.join("\n"));
}

fn idle(is_auth: bool) -> GatherState {
    GatherState {
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
    }
}

/// §1.8 conditions 1–8 one at a time, for every transitional state on both sides: an idle
/// lock finishes (except SYNC_MIX2/MIX_SYNC2); each outstanding item blocks exactly when the
/// corresponding "must drain" flag is set; replicas always block; flushing blocks on the auth
/// only; caps within the target's allowance never block and one bit beyond always does.
#[test]
fn gather_finished_checks_each_condition() {
    let mut problems = Vec::new();
    for m in Machine::ALL {
        for s in LockState::ALL {
            for is_auth in [true, false] {
                let base = idle(is_auth);
                let Some(g) = gather_needs(m, s, is_auth) else {
                    continue;
                };
                let name = format!("{} {} auth={is_auth}", m.name(), s.name());
                if g.completes_only_by_message {
                    if gather_finished(m, s, &base) {
                        problems.push(format!("{name}: finished by gather (condition 8)"));
                    }
                    continue;
                }
                let mut expect = |what: &str, st: GatherState, want: bool| {
                    let got = gather_finished(m, s, &st);
                    if got != want {
                        problems.push(format!("{name} {what}: spec finished={want}, lock-sm {got}"));
                    }
                };
                expect("idle", base, true);
                expect("replica ack outstanding", GatherState { gather_set_empty: false, ..base }, false);
                expect("rdlock held", GatherState { rdlocks: 1, ..base }, !g.rdlocks_must_drain);
                expect("wrlock held", GatherState { wrlocks: 1, ..base }, !g.wrlocks_must_drain);
                expect("xlock held", GatherState { xlocks: 1, ..base }, !g.xlocks_must_drain);
                expect("lease held", GatherState { leases: 1, ..base }, !g.leases_must_drain);
                expect("flushing", GatherState { flushing: true, ..base }, !is_auth);
                if is_auth {
                    expect(
                        "caps within allowance",
                        GatherState {
                            loner_issued: g.caps_loner,
                            other_issued: g.caps_any,
                            xlocker_issued: g.caps_xlocker,
                            ..base
                        },
                        true,
                    );
                    for bit in (0..8).map(|i| 1u32 << i) {
                        if g.caps_any & bit == 0 {
                            expect(
                                &format!("other holds bit {bit}"),
                                GatherState { other_issued: bit, ..base },
                                false,
                            );
                        }
                        if g.caps_loner & bit == 0 {
                            expect(
                                &format!("loner holds bit {bit}"),
                                GatherState { loner_issued: bit, ..base },
                                false,
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} gather_finished case(s) wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Permission symbols round-trip and the spec only uses the five §1.1 values.
#[test]
fn fixture_uses_only_section_1_1_condition_values() {
    for ((m, id), row) in spec_rows() {
        for (op, _, _) in OPS {
            let sym = &row[op];
            let p = Perm::from_symbol(sym).unwrap_or_else(|| panic!("{m} {id} {op}: unknown symbol {sym}"));
            assert_eq!(p.symbol(), sym);
        }
    }
}
