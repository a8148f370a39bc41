//! `cephlock bench mds-rename-cross` as a user runs it: a tiny duration and the JSON shape its
//! `--help` documents. Wall-time figures are not asserted; the counts that follow from the
//! protocol (mds §4.17, §4.18) are.

use std::process::Command;

fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_cephlock")).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn bench_mds_rename_cross_json() {
    let v = json(&["bench", "mds-rename-cross", "--json", "--duration", "0.05"]);
    assert_eq!(v["workload"], "mds-rename-cross");
    assert!(v["duration_s"].as_f64().is_some_and(|d| (d - 0.05).abs() < 1e-9));
    for (key, kind) in [("baseline", "same-rank"), ("result", "cross-rank")] {
        let r = &v[key];
        assert_eq!(r["kind"], kind, "{r}");
        assert!(r["ops"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        for k in ["seconds", "ops_per_s", "messages_per_op", "journal_entries_per_op", "vs_baseline"] {
            assert!(r[k].as_f64().is_some_and(|x| x.is_finite() && x >= 0.0), "{k}: {r}");
        }
        for k in ["samples", "mean", "p50", "p99", "p999", "max"] {
            assert!(r["safe_reply_us"][k].is_number(), "{k}: {r}");
        }
        assert!(r["messages_by_kind_per_op"].is_object(), "{r}");
    }
    let (base, cross) = (&v["baseline"], &v["result"]);
    // Same rank: one EUpdate per rename, an early reply, no witness messages.
    assert_eq!(base["journal_entries_per_op"], 1.0);
    assert!(base["early_replies"].as_u64().is_some_and(|n| n > 0));
    assert!(base["messages_by_kind_per_op"].get("rename_prep").is_none());
    // Across ranks (§4.17): leader EUpdate + ECommitted, witness PREPARE + COMMIT; one each of
    // RENAMEPREP, PREPACK, FINISH, COMMITTED; never an early reply (§4.18).
    assert_eq!(cross["journal_entries_per_op"], 4.0);
    assert_eq!(cross["early_replies"], 0);
    for k in ["rename_prep", "prep_ack", "finish", "committed"] {
        assert_eq!(cross["messages_by_kind_per_op"][k], 1.0, "{k}: {cross}");
    }
}
