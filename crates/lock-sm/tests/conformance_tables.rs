//! Conformance of lock-sm's tables and identifiers with spec/mds-locks.md §1.2–§1.6, §2.1,
//! §2.3, §2.4 and §3.
//!
//! The expected state tables are `fixtures/spec_tables.csv`, extracted mechanically from the
//! markdown tables of §1.3–§1.6 (one line per (machine, state) row). The same CSV is built
//! here from the public API and compared cell by cell, so a failure names the machine, the
//! state and the column. The fixture doubles as the golden output of
//! `cephlock sm export --format csv`.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::caps::{self, format_caps, format_generic, parse_caps, parse_generic, shift_caps};
use lock_sm::{LockState, LockType, Machine, ObjectKind, Perm, StateRow};

const FIXTURE: &str = include_str!("fixtures/spec_tables.csv");

const HEADER: &str = "machine,state_id,state,next,loner,replica_state,can_read,can_read_projected,\
can_rdlock,can_wrlock,can_force_wrlock,can_lease,can_xlock,caps,loner_caps,xlocker_caps,replica_caps";

/// One CSV line for a row, in the fixture's format: `-` for a stable `next`, state names from
/// §2.1 (UNDEF for 0), loner 0/1, permission symbols, decimal generic caps.
fn csv_line(m: Machine, s: LockState, r: &StateRow) -> String {
    let next = if r.next == LockState::Undef { "-".to_string() } else { r.next.name().to_string() };
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        m.name(),
        s.id(),
        s.name(),
        next,
        u8::from(r.loner),
        r.replica_state.name(),
        r.can_read.symbol(),
        r.can_read_projected.symbol(),
        r.can_rdlock.symbol(),
        r.can_wrlock.symbol(),
        r.can_force_wrlock.symbol(),
        r.can_lease.symbol(),
        r.can_xlock.symbol(),
        r.caps,
        r.loner_caps,
        r.xlocker_caps,
        r.replica_caps,
    )
}

fn api_csv() -> Vec<String> {
    let mut out = vec![HEADER.to_string()];
    for m in Machine::ALL {
        for s in m.states_with_rows() {
            out.push(csv_line(m, s, m.row(s)));
        }
    }
    out
}

fn fixture_lines() -> Vec<&'static str> {
    FIXTURE.lines().filter(|l| !l.is_empty()).collect()
}

/// (machine name, state id) → the fixture line's cells.
fn fixture_rows() -> BTreeMap<(String, u8), Vec<String>> {
    fixture_lines()
        .into_iter()
        .skip(1)
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(str::to_string).collect();
            let id: u8 = cells[1].parse().expect("fixture state_id is a number");
            ((cells[0].clone(), id), cells)
        })
        .collect()
}

fn machine_by_name(name: &str) -> Machine {
    Machine::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("fixture names unknown machine {name}"))
}

#[test]
fn fixture_header_and_shape() {
    let lines = fixture_lines();
    assert_eq!(lines[0], HEADER, "fixture header");
    let width = HEADER.split(',').count();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.split(',').count(), width, "fixture line {} has the wrong width: {l}", i + 1);
    }
    // §1.3: 15 simplelock rows, §1.4: 16 scatterlock, §1.5: 32 filelock, §1.6: 1 locallock.
    let rows = fixture_rows();
    for (machine, n) in [("simplelock", 15), ("scatterlock", 16), ("filelock", 32), ("locallock", 1)] {
        assert_eq!(rows.keys().filter(|(m, _)| m == machine).count(), n, "{machine} row count");
    }
}

/// §1.3–§1.6, every cell: the API's tables printed as CSV equal the spec fixture.
#[test]
fn s1_3_to_1_6_tables_match_spec_cell_by_cell() {
    let header: Vec<&str> = HEADER.split(',').collect();
    let want = fixture_rows();
    let mut got: BTreeMap<(String, u8), Vec<String>> = BTreeMap::new();
    for line in api_csv().into_iter().skip(1) {
        let cells: Vec<String> = line.split(',').map(str::to_string).collect();
        let id: u8 = cells[1].parse().unwrap();
        got.insert((cells[0].clone(), id), cells);
    }
    let mut problems = Vec::new();
    for (key, w) in &want {
        match got.get(key) {
            None => problems
                .push(format!("{} {} ({}): row missing from the API (has_row false?)", key.0, w[2], key.1)),
            Some(g) => {
                for (col, (wc, gc)) in header.iter().zip(w.iter().zip(g.iter())) {
                    if wc != gc {
                        problems.push(format!("{} {} column {col}: spec {wc}, lock-sm {gc}", key.0, w[2]));
                    }
                }
            }
        }
    }
    for (key, g) in &got {
        if !want.contains_key(key) {
            problems
                .push(format!("{} {} ({}): row in the API but not in the spec tables", key.0, g[2], key.1));
        }
    }
    assert!(
        problems.is_empty(),
        "{} table cell(s) differ from the spec:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The fixture is also the golden export: same lines in the same order (machine order
/// simplelock, scatterlock, filelock, locallock, then state id).
#[test]
fn export_csv_equals_fixture_line_by_line() {
    let want = fixture_lines();
    let got = api_csv();
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        assert_eq!(g, w, "line {} of the CSV export (left: lock-sm, right: spec fixture)", i + 1);
    }
    assert_eq!(got.len(), want.len(), "number of CSV lines");
}

/// has_row is true exactly for the states listed in §1.3–§1.6; states_with_rows lists them
/// in id order; every other row is all-zero (§1.1: "any state that has no row ... is all-zero").
#[test]
fn s1_1_has_row_exactly_for_spec_rows_and_absent_rows_are_zero() {
    let want = fixture_rows();
    for m in Machine::ALL {
        let listed: BTreeSet<u8> = want.keys().filter(|(n, _)| n == m.name()).map(|(_, id)| *id).collect();
        for s in LockState::ALL {
            let expected = listed.contains(&s.id());
            assert_eq!(m.has_row(s), expected, "{} has_row({})", m.name(), s.name());
            if !expected {
                let r = m.row(s);
                assert_eq!(
                    *r,
                    StateRow::ZERO,
                    "{} {} has no spec row, so it must be all-zero",
                    m.name(),
                    s.name()
                );
                assert_eq!(r.next, LockState::Undef, "{} {} next", m.name(), s.name());
                assert!(!r.loner, "{} {} loner", m.name(), s.name());
                assert_eq!(r.replica_state, LockState::Undef, "{} {} replica_state", m.name(), s.name());
                for (col, p) in [
                    ("read", r.can_read),
                    ("read_projected", r.can_read_projected),
                    ("rdlock", r.can_rdlock),
                    ("wrlock", r.can_wrlock),
                    ("force_wrlock", r.can_force_wrlock),
                    ("lease", r.can_lease),
                    ("xlock", r.can_xlock),
                ] {
                    assert_eq!(p, Perm::Never, "{} {} {col}", m.name(), s.name());
                }
                assert_eq!(
                    (r.caps, r.loner_caps, r.xlocker_caps, r.replica_caps),
                    (0, 0, 0, 0),
                    "{} {} caps",
                    m.name(),
                    s.name()
                );
                assert!(r.is_stable(), "{} {}: an absent row is formally stable (§1.1)", m.name(), s.name());
            }
        }
        let got: Vec<u8> = m.states_with_rows().map(LockState::id).collect();
        let want_ids: Vec<u8> = listed.into_iter().collect();
        assert_eq!(got, want_ids, "{} states_with_rows (id order)", m.name());
    }
    // UNDEF never has a row anywhere.
    for m in Machine::ALL {
        assert!(!m.has_row(LockState::Undef), "{} has_row(UNDEF)", m.name());
    }
}

#[test]
fn s1_1_zero_row_and_is_stable() {
    let z = StateRow::ZERO;
    assert_eq!(z.next, LockState::Undef);
    assert!(z.is_stable());
    for line in fixture_lines().into_iter().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let m = machine_by_name(cells[0]);
        let s = LockState::from_id(cells[1].parse().unwrap()).unwrap();
        assert_eq!(m.row(s).is_stable(), cells[3] == "-", "{} {} is_stable", cells[0], cells[2]);
    }
}

/// §1.2 machine-level fields.
#[test]
fn s1_2_machine_level_fields() {
    // (machine, allowed_ever_auth, allowed_ever_replica, careful, can_remote_xlock)
    let rows = [
        (Machine::Simple, 3, 1, 3, true),
        (Machine::Scatter, 3, 1, 3, false),
        (Machine::File, 255, 141, 39, false),
        (Machine::Local, 0, 0, 0, false),
    ];
    for (m, auth, replica, careful, remote) in rows {
        let d = m.def();
        assert_eq!(d.machine, m, "{} def().machine", m.name());
        assert_eq!(d.allowed_ever_auth, auth, "{} allowed_ever_auth", m.name());
        assert_eq!(d.allowed_ever_replica, replica, "{} allowed_ever_replica", m.name());
        assert_eq!(d.careful, careful, "{} careful", m.name());
        assert_eq!(d.can_remote_xlock, remote, "{} can_remote_xlock", m.name());
    }
}

#[test]
fn machine_names_and_order() {
    assert_eq!(Machine::ALL, [Machine::Simple, Machine::Scatter, Machine::File, Machine::Local]);
    for (m, name, short) in [
        (Machine::Simple, "simplelock", "simple"),
        (Machine::Scatter, "scatterlock", "scatter"),
        (Machine::File, "filelock", "file"),
        (Machine::Local, "locallock", "local"),
    ] {
        assert_eq!(m.name(), name);
        assert_eq!(Machine::from_name(name), Some(m), "from_name({name})");
        assert_eq!(Machine::from_name(short), Some(m), "from_name({short})");
        assert_eq!(Machine::from_name(&name.to_uppercase()), Some(m), "from_name is case-insensitive");
    }
    assert_eq!(Machine::from_name("quiescelock"), None);
    assert!(
        Machine::Simple < Machine::Scatter
            && Machine::Scatter < Machine::File
            && Machine::File < Machine::Local
    );
}

/// §1.1 condition values, as symbols used in the CSV.
#[test]
fn s1_1_perm_values_and_symbols() {
    for (p, v, sym) in [
        (Perm::Never, 0, "0"),
        (Perm::Any, 1, "ANY"),
        (Perm::Auth, 2, "AUTH"),
        (Perm::Xcl, 3, "XCL"),
        (Perm::Req, 5, "REQ"),
    ] {
        assert_eq!(p.value(), v, "{sym} value");
        assert_eq!(p.symbol(), sym);
        assert_eq!(Perm::from_symbol(sym), Some(p), "from_symbol({sym})");
    }
    assert_eq!(Perm::from_symbol("FW"), None, "4 (FW) is unused");
}

/// §2.1: every state id, name and log name.
const STATE_IDS: [(u8, LockState, &str, &str); 40] = [
    (0, LockState::Undef, "UNDEF", "UNDEF"),
    (1, LockState::Sync, "SYNC", "sync"),
    (2, LockState::Lock, "LOCK", "lock"),
    (3, LockState::PreXlock, "PREXLOCK", "prexlock"),
    (4, LockState::Xlock, "XLOCK", "xlock"),
    (5, LockState::XlockDone, "XLOCKDONE", "xlockdone"),
    (6, LockState::XlockSnap, "XLOCKSNAP", "xlocksnap"),
    (7, LockState::LockXlock, "LOCK_XLOCK", "lock->xlock"),
    (8, LockState::SyncLock, "SYNC_LOCK", "sync->lock"),
    (9, LockState::LockSync, "LOCK_SYNC", "lock->sync"),
    (10, LockState::Excl, "EXCL", "excl"),
    (11, LockState::ExclSync, "EXCL_SYNC", "excl->sync"),
    (12, LockState::ExclLock, "EXCL_LOCK", "excl->lock"),
    (13, LockState::SyncExcl, "SYNC_EXCL", "sync->excl"),
    (14, LockState::LockExcl, "LOCK_EXCL", "lock->excl"),
    (15, LockState::RemoteXlock, "REMOTEXLOCK", "remote_xlock"),
    (16, LockState::Mix, "MIX", "mix"),
    (17, LockState::SyncMix, "SYNC_MIX", "sync->mix"),
    (18, LockState::SyncMix2, "SYNC_MIX2", "sync->mix(2)"),
    // §2.1 lists no log name for LOCK_MIX ("defined, unused"); the API contract chose
    // "lock->mix", following the `from->to` pattern.
    (19, LockState::LockMix, "LOCK_MIX", "lock->mix"),
    (20, LockState::ExclMix, "EXCL_MIX", "excl->mix"),
    (21, LockState::MixSync, "MIX_SYNC", "mix->sync"),
    (22, LockState::MixSync2, "MIX_SYNC2", "mix->sync(2)"),
    (23, LockState::MixLock, "MIX_LOCK", "mix->lock"),
    (24, LockState::MixLock2, "MIX_LOCK2", "mix->lock(2)"),
    (25, LockState::MixExcl, "MIX_EXCL", "mix->excl"),
    (26, LockState::Tsyn, "TSYN", "tsyn"),
    (27, LockState::TsynLock, "TSYN_LOCK", "tsyn->lock"),
    (28, LockState::TsynMix, "TSYN_MIX", "tsyn->mix"),
    (29, LockState::LockTsyn, "LOCK_TSYN", "lock->tsyn"),
    (30, LockState::MixTsyn, "MIX_TSYN", "mix->tsyn"),
    (31, LockState::PreScan, "PRE_SCAN", "*->scan"),
    (32, LockState::Scan, "SCAN", "scan"),
    (33, LockState::SnapSync, "SNAP_SYNC", "snap->sync"),
    (34, LockState::Xsyn, "XSYN", "xsyn"),
    (35, LockState::XsynExcl, "XSYN_EXCL", "xsyn->excl"),
    (36, LockState::ExclXsyn, "EXCL_XSYN", "excl->xsyn"),
    (37, LockState::XsynSync, "XSYN_SYNC", "xsyn->sync"),
    (38, LockState::XsynLock, "XSYN_LOCK", "xsyn->lock"),
    (39, LockState::XsynMix, "XSYN_MIX", "xsyn->mix"),
];

#[test]
fn s2_1_state_ids_names_and_log_names() {
    assert_eq!(LockState::COUNT, 40, "LOCK_MAX");
    assert_eq!(LockState::ALL.len(), 40);
    for (i, (id, s, name, log)) in STATE_IDS.into_iter().enumerate() {
        assert_eq!(LockState::ALL[i], s, "ALL[{i}] is in id order");
        assert_eq!(s.id(), id, "{name} id");
        assert_eq!(s as u8, id, "{name} discriminant");
        assert_eq!(LockState::from_id(id), Some(s), "from_id({id})");
        assert_eq!(s.name(), name, "state {id} name");
        assert_eq!(s.to_string(), name, "state {id} Display");
        assert_eq!(s.log_name(), log, "state {name} log name");
        assert_eq!(LockState::from_name(name), Some(s), "from_name({name})");
        assert_eq!(
            LockState::from_name(&name.to_lowercase()),
            Some(s),
            "from_name is case-insensitive ({name})"
        );
        assert_eq!(LockState::from_name(log), Some(s), "from_name(log name {log})");
    }
    for bad in [40u8, 41, 255] {
        assert_eq!(LockState::from_id(bad), None, "from_id({bad})");
    }
    assert_eq!(LockState::from_name("MAX"), None);
    assert_eq!(LockState::from_name("bogus"), None);
}

/// §2.3 (pre-Squid numbering) and §2.4: one row per lock type.
#[test]
fn s2_3_lock_types() {
    // (type, value, log name, machine, cap shift, cap mask, wait shift, xlocker mask, object)
    let rows = [
        (LockType::Dn, 1, "dn", Machine::Simple, 0, 0x3, 8, 0x3, ObjectKind::Dentry),
        (LockType::DVersion, 2, "dversion", Machine::Local, 0, 0x3, 12, 0x3, ObjectKind::Dentry),
        (LockType::ISnap, 16, "isnap", Machine::Simple, 0, 0x3, 40, 0x3, ObjectKind::Inode),
        (LockType::IPolicy, 32, "ipolicy", Machine::Simple, 0, 0x3, 52, 0x3, ObjectKind::Inode),
        (LockType::IFile, 64, "ifile", Machine::File, 8, 0xff, 28, 0xf, ObjectKind::Inode),
        (LockType::INest, 128, "inest", Machine::Scatter, 0, 0x3, 44, 0x3, ObjectKind::Inode),
        (LockType::IDft, 256, "idft", Machine::Scatter, 0, 0x3, 24, 0x3, ObjectKind::Inode),
        (LockType::IAuth, 512, "iauth", Machine::Simple, 2, 0x3, 16, 0x3, ObjectKind::Inode),
        (LockType::ILink, 1024, "ilink", Machine::Simple, 4, 0x3, 20, 0x3, ObjectKind::Inode),
        (LockType::IXattr, 2048, "ixattr", Machine::Simple, 6, 0x3, 36, 0x3, ObjectKind::Inode),
        (LockType::IFlock, 4096, "iflock", Machine::Simple, 0, 0x3, 48, 0x3, ObjectKind::Inode),
        (LockType::IVersion, 8192, "iversion", Machine::Local, 0, 0x3, 32, 0x3, ObjectKind::Inode),
    ];
    assert_eq!(LockType::ALL.len(), rows.len());
    for (i, (lt, value, name, machine, shift, mask, wait, xmask, kind)) in rows.into_iter().enumerate() {
        assert_eq!(LockType::ALL[i], lt, "ALL[{i}] is in value order");
        assert_eq!(lt.value(), value, "{name} value");
        assert_eq!(lt as u16, value, "{name} discriminant");
        assert_eq!(LockType::from_value(value), Some(lt), "from_value({value})");
        assert_eq!(lt.name(), name, "{value} name");
        assert_eq!(LockType::from_name(name), Some(lt), "from_name({name})");
        assert_eq!(lt.machine(), machine, "{name} machine");
        assert_eq!(lt.cap_shift(), shift, "{name} cap shift");
        assert_eq!(lt.cap_mask(), mask, "{name} cap mask");
        assert_eq!(lt.wait_shift(), wait, "{name} wait shift");
        assert_eq!(lt.xlocker_mask(), xmask, "{name} xlocker mask");
        assert_eq!(lt.object_kind(), kind, "{name} object kind");
        assert!(value.is_power_of_two(), "{name}: lock type values are single bits");
    }
    // No IQUIESCE (16 is ISNAP in the pre-Squid numbering) and no other values.
    for v in 0..=u16::MAX {
        if LockType::from_value(v).is_some() {
            assert!(
                LockType::ALL.iter().any(|lt| lt.value() == v),
                "from_value({v}) accepts an unlisted value"
            );
        }
    }
    assert_eq!(LockType::from_name("iquiesce"), None);
}

/// §2.4: which locks each object has, in value (acquisition) order.
#[test]
fn s2_4_locks_per_object() {
    assert_eq!(ObjectKind::Dentry.lock_types(), &[LockType::Dn, LockType::DVersion]);
    assert_eq!(
        ObjectKind::Inode.lock_types(),
        &[
            LockType::ISnap,
            LockType::IPolicy,
            LockType::IFile,
            LockType::INest,
            LockType::IDft,
            LockType::IAuth,
            LockType::ILink,
            LockType::IXattr,
            LockType::IFlock,
            LockType::IVersion,
        ]
    );
}

/// §3.1 generic bits and shifts.
#[test]
fn s3_1_generic_bits_and_shifts() {
    let rows = [
        ("PIN", caps::PIN, 1),
        ("GSHARED", caps::GSHARED, 1),
        ("GEXCL", caps::GEXCL, 2),
        ("GCACHE", caps::GCACHE, 4),
        ("GRD", caps::GRD, 8),
        ("GWR", caps::GWR, 16),
        ("GBUFFER", caps::GBUFFER, 32),
        ("GWREXTEND", caps::GWREXTEND, 64),
        ("GLAZYIO", caps::GLAZYIO, 128),
        ("SIMPLE_BITS", caps::SIMPLE_BITS, 2),
        ("FILE_BITS", caps::FILE_BITS, 8),
        ("SAUTH", caps::SAUTH, 2),
        ("SLINK", caps::SLINK, 4),
        ("SXATTR", caps::SXATTR, 6),
        ("SFILE", caps::SFILE, 8),
    ];
    for (name, got, want) in rows {
        assert_eq!(got, want, "§3.1 {name}");
    }
}

/// §3.2 composed absolute values.
#[test]
fn s3_2_composed_values() {
    let rows = [
        ("PIN", caps::PIN, 1),
        ("AUTH_SHARED", caps::AUTH_SHARED, 4),
        ("AUTH_EXCL", caps::AUTH_EXCL, 8),
        ("LINK_SHARED", caps::LINK_SHARED, 16),
        ("LINK_EXCL", caps::LINK_EXCL, 32),
        ("XATTR_SHARED", caps::XATTR_SHARED, 64),
        ("XATTR_EXCL", caps::XATTR_EXCL, 128),
        ("FILE_SHARED", caps::FILE_SHARED, 256),
        ("FILE_EXCL", caps::FILE_EXCL, 512),
        ("FILE_CACHE", caps::FILE_CACHE, 1024),
        ("FILE_RD", caps::FILE_RD, 2048),
        ("FILE_WR", caps::FILE_WR, 4096),
        ("FILE_BUFFER", caps::FILE_BUFFER, 8192),
        ("FILE_WREXTEND", caps::FILE_WREXTEND, 16384),
        ("FILE_LAZYIO", caps::FILE_LAZYIO, 32768),
        ("ANY_SHARED", caps::ANY_SHARED, 340),
        ("ANY_RD", caps::ANY_RD, 3412),
        ("ANY_EXCL", caps::ANY_EXCL, 680),
        ("ANY_FILE_RD", caps::ANY_FILE_RD, 3328),
        ("ANY_FILE_WR", caps::ANY_FILE_WR, 12800),
        ("ANY_WR", caps::ANY_WR, 12968),
        ("ANY", caps::ANY, 49149),
        ("DIR_CREATE", caps::DIR_CREATE, 1024),
        ("DIR_UNLINK", caps::DIR_UNLINK, 2048),
        ("ANY_DIR_OPS", caps::ANY_DIR_OPS, 52224),
        ("STAT_RSTAT", caps::STAT_RSTAT, 16384),
    ];
    for (name, got, want) in rows {
        assert_eq!(got, want, "§3.2 {name}");
    }
    assert_eq!(caps::ANY & caps::FILE_WREXTEND, 0, "§3.2: ANY does not include Fa");
}

/// §3.2 caps_for_mode and the file modes.
#[test]
fn s3_2_caps_for_mode() {
    assert_eq!(
        (
            caps::FILE_MODE_PIN,
            caps::FILE_MODE_RD,
            caps::FILE_MODE_WR,
            caps::FILE_MODE_RDWR,
            caps::FILE_MODE_LAZY
        ),
        (0, 1, 2, 3, 4)
    );
    let rd = caps::FILE_SHARED | caps::FILE_RD | caps::FILE_CACHE;
    let wr = caps::FILE_EXCL
        | caps::FILE_WR
        | caps::FILE_BUFFER
        | caps::AUTH_SHARED
        | caps::AUTH_EXCL
        | caps::XATTR_SHARED
        | caps::XATTR_EXCL;
    let rows = [
        (caps::FILE_MODE_PIN, caps::PIN),
        (caps::FILE_MODE_RD, caps::PIN | rd),
        (caps::FILE_MODE_WR, caps::PIN | wr),
        (caps::FILE_MODE_RDWR, caps::PIN | rd | wr),
        (caps::FILE_MODE_LAZY, caps::PIN | caps::FILE_LAZYIO),
        (caps::FILE_MODE_RD | caps::FILE_MODE_LAZY, caps::PIN | rd | caps::FILE_LAZYIO),
        (caps::FILE_MODE_RDWR | caps::FILE_MODE_LAZY, caps::PIN | rd | wr | caps::FILE_LAZYIO),
    ];
    for (mode, want) in rows {
        assert_eq!(caps::caps_for_mode(mode), want, "caps_for_mode({mode})");
    }
    assert_eq!(caps::caps_for_mode(caps::FILE_MODE_RD), 3329);
    assert_eq!(caps::caps_for_mode(caps::FILE_MODE_WR), 13005);
}

/// §3 cap strings: Ceph's ccap_string layout (p, then A, L, X, F groups, each with generic
/// letters in the order s x c r w b a l) and "-" for nothing.
#[test]
fn s3_cap_strings() {
    let rows = [
        (0, "-"),
        (caps::PIN, "p"),
        (caps::AUTH_SHARED, "As"),
        (caps::AUTH_SHARED | caps::AUTH_EXCL, "Asx"),
        (caps::LINK_EXCL, "Lx"),
        (caps::XATTR_SHARED, "Xs"),
        (caps::FILE_BUFFER, "Fb"),
        (caps::FILE_WREXTEND, "Fa"),
        (
            caps::PIN
                | caps::AUTH_SHARED
                | caps::LINK_SHARED
                | caps::XATTR_SHARED
                | caps::FILE_SHARED
                | caps::FILE_CACHE
                | caps::FILE_RD,
            "pAsLsXsFscr",
        ),
        (caps::ANY, "pAsxLsxXsxFsxcrwbl"),
        (caps::ANY | caps::FILE_WREXTEND, "pAsxLsxXsxFsxcrwbal"),
        (caps::caps_for_mode(caps::FILE_MODE_RD), "pFscr"),
        (caps::caps_for_mode(caps::FILE_MODE_WR), "pAsxXsxFxwb"),
        (caps::ANY_DIR_OPS, "Fcral"),
    ];
    for (value, s) in rows {
        assert_eq!(format_caps(value), s, "format_caps({value})");
        assert_eq!(parse_caps(s), Ok(value), "parse_caps({s:?})");
    }
    let generic = [
        (0, "-"),
        (1, "s"),
        (3, "sx"),
        (13, "scr"),
        (24, "rw"),
        (36, "cb"),
        (39, "sxcb"),
        (63, "sxcrwb"),
        (136, "rl"),
        (141, "scrl"),
        (152, "rwl"),
        (255, "sxcrwbal"),
    ];
    for (value, s) in generic {
        assert_eq!(format_generic(value), s, "format_generic({value})");
        assert_eq!(parse_generic(s), Ok(value), "parse_generic({s:?})");
    }
    // Round trip over every valid combination of the four groups and PIN.
    for a in 0..4u32 {
        for l in 0..4u32 {
            for x in 0..4u32 {
                for f in [0u32, 1, 36, 63, 141, 152, 255] {
                    for p in [0, 1] {
                        let v = p | (a << 2) | (l << 4) | (x << 6) | (f << 8);
                        let s = format_caps(v);
                        assert_eq!(parse_caps(&s), Ok(v), "round trip {v} via {s:?}");
                    }
                }
            }
        }
    }
    for bad in ["", "q", "Fz", "Zs", "sx"] {
        let err = parse_caps(bad);
        assert!(err.is_err(), "parse_caps({bad:?}) must fail, got {err:?}");
        let msg = err.unwrap_err().to_string();
        assert!(!msg.is_empty(), "CapParseError Display for {bad:?}");
    }
    for bad in ["", "q", "F", "sxq"] {
        assert!(parse_generic(bad).is_err(), "parse_generic({bad:?}) must fail");
    }
}

/// §2.3/§3.1: generic → absolute per lock (masked by the cap mask, shifted by the cap shift).
#[test]
fn s3_shift_caps_per_lock() {
    assert_eq!(shift_caps(1, LockType::IAuth), caps::AUTH_SHARED, "As");
    assert_eq!(shift_caps(3, LockType::ILink), caps::LINK_SHARED | caps::LINK_EXCL, "Lsx");
    assert_eq!(shift_caps(1, LockType::IXattr), caps::XATTR_SHARED, "Xs");
    assert_eq!(
        shift_caps(141, LockType::IFile),
        caps::FILE_SHARED | caps::FILE_CACHE | caps::FILE_RD | caps::FILE_LAZYIO,
        "Fscrl"
    );
    assert_eq!(shift_caps(255, LockType::IAuth), caps::AUTH_SHARED | caps::AUTH_EXCL, "masked to sx");
    for lt in LockType::ALL {
        for g in 0..=255u32 {
            assert_eq!(
                shift_caps(g, lt),
                (g & lt.cap_mask()) << lt.cap_shift(),
                "shift_caps({g}, {})",
                lt.name()
            );
        }
    }
}
