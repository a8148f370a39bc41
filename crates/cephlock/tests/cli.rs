//! The `cephlock` binary as a user runs it: exit codes, one-line errors, and the CSV export
//! checked against the spec fixture (mds spec §1.3–§1.6, transcribed independently of the code).

use std::path::PathBuf;
use std::process::{Command, Output};

fn cephlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cephlock")).args(args).output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lock-sm/tests/fixtures").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Compares line by line so a failure names the first differing row instead of dumping both.
fn assert_same_lines(got: &str, want: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {} differs", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "line counts differ");
}

#[test]
fn export_csv_matches_the_spec_tables() {
    let out = cephlock(&["sm", "export", "--format", "csv"]);
    assert!(out.status.success());
    assert_same_lines(&stdout(&out), &fixture("spec_tables.csv"));
}

#[test]
fn export_lock_types_csv() {
    let out = cephlock(&["sm", "export", "--format", "csv", "--lock-types"]);
    assert!(out.status.success());
    // §2.3 pre-Squid numbering, in value order (also the intra-object lock order).
    let want = "lock_type,value,machine,cap_shift
dn,1,simplelock,0
dversion,2,locallock,0
isnap,16,simplelock,0
ipolicy,32,simplelock,0
ifile,64,filelock,8
inest,128,scatterlock,0
idft,256,scatterlock,0
iauth,512,simplelock,2
ilink,1024,simplelock,4
ixattr,2048,simplelock,6
iflock,4096,simplelock,0
iversion,8192,locallock,0
";
    assert_same_lines(&stdout(&out), want);
}

#[test]
fn export_json_parses_and_agrees_with_csv() {
    let csv = stdout(&cephlock(&["sm", "export"]));
    let out = cephlock(&["sm", "export", "--format", "json"]);
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(rows.len(), csv.lines().count() - 1);
    for (row, line) in rows.iter().zip(lines) {
        for (col, cell) in header.iter().zip(line.split(',')) {
            let v = &row[*col];
            let as_text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            assert_eq!(as_text, cell, "column {col} of {line}");
        }
    }
}

#[test]
fn show_and_diagram_work_for_every_machine() {
    for m in ["simplelock", "scatterlock", "filelock", "locallock"] {
        let out = cephlock(&["sm", "show", m]);
        assert!(out.status.success(), "show {m}");
        assert!(stdout(&out).starts_with(m));
        for f in ["dot", "mermaid"] {
            let out = cephlock(&["sm", "diagram", m, "--format", f]);
            assert!(out.status.success(), "diagram {m} {f}");
        }
    }
    let dot = stdout(&cephlock(&["sm", "diagram", "filelock"]));
    assert!(dot.contains("SYNC_LOCK -> LOCK;"), "next edge drawn");
    assert!(dot.contains("EXCL -> EXCL_XSYN [style=dashed"), "file_xsyn edge drawn");
}

/// Unknown machine, state or format: exactly one line on stderr and a non-zero exit.
#[test]
fn bad_names_give_one_line_errors() {
    for args in [
        &["sm", "show", "nosuchlock"][..],
        &["sm", "show", "filelock", "--state", "BOGUS"],
        &["sm", "diagram", "simplelock", "--format", "png"],
        &["sm", "export", "--format", "xml"],
        &["sm", "frobnicate"],
    ] {
        let out = cephlock(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(err.lines().count(), 1, "{args:?} printed: {err}");
        assert!(err.starts_with("cephlock: error: "), "{args:?} printed: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

#[test]
fn demo_runs() {
    let out = cephlock(&["demo"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("SYNC_LOCK"));
    let out = cephlock(&["demo", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let stories = v["stories"].as_array().expect("stories");
    let mds = stories.iter().find(|s| s["story"] == "mds").expect("the MDS story");
    assert!(mds["xlock_walk"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(v.get("xlock_walk").is_none(), "the walk lives under the MDS story only");
}

/// rbd spec §3.5: a cooperative hand-over costs REQUEST_LOCK, RELEASED_LOCK and ACQUIRED_LOCK,
/// and the run itself fails if more than one handle ends up owning the lock.
#[test]
fn bench_rbd_pingpong_json() {
    let out = cephlock(&["bench", "rbd-pingpong", "--json", "--duration", "0.2", "--clients", "2,3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(v["workload"], "rbd-pingpong");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["handovers"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert_eq!(r["notifies_per_handover"].as_f64(), Some(3.0), "{r}");
    }
    assert!(v["baseline"]["notify_round_trip"]["samples"].as_u64().is_some_and(|n| n > 0));
}
