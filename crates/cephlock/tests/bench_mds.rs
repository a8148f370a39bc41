//! `cephlock bench mds-create` and `bench mds-stat` as a user runs them: tiny durations, and
//! the JSON shape their `--help` documents. Figures are not asserted (wall time varies); the
//! shape and the counts that follow from the protocol are.

use std::process::{Command, Output};

fn cephlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cephlock")).args(args).output().expect("the binary runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = cephlock(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

const LATENCY_KEYS: [&str; 6] = ["samples", "mean", "p50", "p99", "p999", "max"];

fn check_measured(r: &serde_json::Value) {
    assert!(r["ops"].as_u64().is_some_and(|n| n > 0), "{r}");
    for k in
        ["seconds", "ops_per_s", "transitions_per_op", "journal_submits_per_op", "journal_flushes_per_op"]
    {
        assert!(r[k].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0), "{k}: {r}");
    }
    for k in ["flush_requests_per_op", "cap_messages_per_op", "messages_per_op", "vs_baseline"] {
        assert!(r[k].as_f64().is_some(), "{k}: {r}");
    }
    for l in ["early_reply_us", "safe_reply_us"] {
        for k in LATENCY_KEYS {
            assert!(r[l][k].is_number(), "{l}.{k}: {r}");
        }
    }
    assert_eq!(r["errors"], 0, "{r}");
}

/// mds §5.2 CREATE, §4.18: every create is journaled once and answered twice (early, safe).
#[test]
fn bench_mds_create_json() {
    let v = json(&[
        "bench",
        "mds-create",
        "--json",
        "--duration",
        "0.05",
        "--clients",
        "1,3",
        "--dir",
        "both",
        "--journal",
        "both",
    ]);
    assert_eq!(v["workload"], "mds-create");
    assert!(v["journal_dir"]["path"].is_string() && v["journal_dir"]["fs"].is_string(), "{v}");
    let baseline = v["baseline"].as_array().expect("baseline");
    assert_eq!(baseline.len(), 2, "one uncontended client per journal kind");
    for b in baseline {
        assert_eq!((b["clients"].as_u64(), b["dir"].as_str()), (Some(1), Some("private")), "{b}");
        assert_eq!(b["vs_baseline"].as_f64(), Some(1.0));
        check_measured(b);
    }
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 2 * 2 * 2, "clients × dir × journal");
    for r in results {
        check_measured(r);
        assert_eq!(r["journal_submits_per_op"].as_f64(), Some(1.0), "one EUpdate per create: {r}");
        assert_eq!(r["early_reply_us"]["samples"], r["ops"], "every create is early-replied: {r}");
        assert!(["mem", "dir"].contains(&r["journal"].as_str().unwrap()), "{r}");
        assert!(["private", "shared"].contains(&r["dir"].as_str().unwrap()), "{r}");
    }
}

/// mds §4.10, §4.14: the writer's setattrs make lock transitions and cap messages that the
/// readers alone never cause.
#[test]
fn bench_mds_stat_json() {
    let v = json(&["bench", "mds-stat", "--json", "--duration", "0.05", "--clients", "2"]);
    assert_eq!(v["workload"], "mds-stat");
    assert!(v["journal_dir"].is_null(), "memory journal by default: {v}");
    let (baseline, results) = (v["baseline"].as_array().unwrap(), v["results"].as_array().unwrap());
    assert_eq!((baseline.len(), results.len()), (1, 1));
    let (b, r) = (&baseline[0], &results[0]);
    check_measured(b);
    check_measured(r);
    assert_eq!((b["writer"].as_bool(), r["writer"].as_bool()), (Some(false), Some(true)));
    assert_eq!((b["readers"].as_u64(), r["readers"].as_u64()), (Some(2), Some(2)));
    assert_eq!(b["setattrs"], 0);
    assert!(r["setattrs"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert!(r["stats_per_s"].as_f64().is_some_and(|s| s > 0.0), "{r}");
    assert_eq!(b["transitions_per_op"].as_f64(), Some(0.0), "readers alone keep SYNC: {b}");
    assert!(r["transitions_per_op"].as_f64().is_some_and(|t| t > 0.0), "{r}");
    assert!(r["cap_messages_per_op"].as_f64().is_some_and(|c| c > 0.0), "revokes and re-grants: {r}");
}

#[test]
fn bench_mds_create_table_and_bad_options() {
    let out = cephlock(&["bench", "mds-create", "--duration", "0.02", "--clients", "2", "--journal", "mem"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("baseline 1 private mem") && text.contains("2 shared mem"), "{text}");
    let out = cephlock(&["bench", "mds-create", "--dir", "nowhere"]);
    assert!(!out.status.success());
}
