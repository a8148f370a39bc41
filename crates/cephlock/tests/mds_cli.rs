//! `cephlock mds` (issue 10, Inspection): the live views of the demo's two MDS ranks.

use std::process::{Command, Output};

fn cephlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cephlock")).args(args).output().expect("run cephlock")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = cephlock(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Stopped right after the rename's early reply (mds spec §4.18, §8 fact 59), rank 1 shows the
/// rename's dentry xlocks still XLOCK and its inode xlocks XLOCKDONE, all held by one request.
#[test]
fn dump_locks_mid_rename_shows_the_held_xlocks() {
    let v = json(&["mds", "dump-locks", "--phase", "5", "--hold", "--rank", "1", "--json"]);
    let locks = v[0]["dump_locks"].as_array().unwrap();
    let find = |object: &str, lock: &str| {
        locks
            .iter()
            .find(|l| l["object"] == object && l["lock"] == lock)
            .unwrap_or_else(|| panic!("{object} {lock}"))
    };
    for dn in ["report", "final"] {
        let l = find(&format!("dentry 0x10000000000/{dn}"), "dn");
        assert_eq!(l["state"], "xlock");
        assert_eq!(l["auth"], true);
        assert_eq!(l["xlocks"].as_array().unwrap().len(), 1);
    }
    let link = find("inode 0x20000000000", "ilink");
    assert_eq!(link["state"], "xlockdone");
    let ops = json(&["mds", "ops", "--phase", "5", "--hold", "--rank", "1", "--json"]);
    let op = &ops[0]["dump_ops_in_flight"]["ops"][0];
    assert!(op["phase"].as_str().unwrap().starts_with("committing"));
    assert!(op["events"].as_array().unwrap().iter().any(|e| e["event"] == "early_replied"));
}

/// After the whole story nothing is in flight and every lock is stable.
#[test]
fn after_the_story_nothing_is_in_flight() {
    let v = json(&["mds", "ops", "--json"]);
    for r in v.as_array().unwrap() {
        assert_eq!(r["dump_ops_in_flight"]["num_ops"], 0, "{r}");
    }
    let v = json(&["mds", "dump-locks", "--json"]);
    for r in v.as_array().unwrap() {
        assert!(r["dump_locks"].as_array().unwrap().iter().all(|l| l["stable"] == true), "{r}");
    }
    let s = json(&["mds", "sessions", "--rank", "1", "--json"]);
    assert!(s[0]["session_ls"].as_array().unwrap().iter().any(|c| c["client"] == 3));
}

/// Bad arguments: one line on stderr, non-zero exit.
#[test]
fn bad_arguments_are_one_line_errors() {
    for args in [
        &["mds", "ops", "--phase", "0"][..],
        &["mds", "ops", "--hold"],
        &["mds", "ops", "--rank", "7"],
        &["mds", "inode", "zzz"],
        &["mds", "inode", "0x99"],
    ] {
        let out = cephlock(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
