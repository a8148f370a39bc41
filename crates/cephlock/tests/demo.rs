//! `cephlock demo` and `cephlock bench rbd-snap-forward` as a user runs them: the RBD seed story
//! of rbd spec §7 told on the embedded cluster, its JSON summary, and the snapshot benchmark.

use std::process::{Command, Output};

use serde_json::Value;

fn cephlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cephlock")).args(args).output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn json(args: &[&str]) -> Value {
    let out = cephlock(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout(&out)).expect("valid JSON")
}

/// rbd §7.3–§7.5: the narration names the forwarded ops, who ran them, the lock moving, and the
/// dead owner fenced; the MDS section says plainly what is not built.
#[test]
fn s7_demo_narrates_the_rbd_story() {
    let out = cephlock(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for fact in [
        "Story 1: RBD",
        "SNAP_CREATE from nova-compute",
        "RESIZE from nova-compute",
        "ASYNC_COMPLETE from qemu",
        "snapshot run by qemu, resize run by qemu",
        "qemu kept its lock",
        "vm-disk@before-upgrade exists and holds exactly qemu's first",
        "RELEASED_LOCK from qemu, ACQUIRED_LOCK from nova-compute",
        "RELEASED_LOCK from nova-compute, ACQUIRED_LOCK from qemu",
        "blocklisted qemu",
        "qemu's late write was refused",
        "violations: 0",
        "Story 2: two MDS ranks",
        "forwarded to rank 1",
        "early (unsafe) reply, then safe reply",
        "reqscatter",
        "cap revoke: rank 1 tells alice",
        "0 violations",
        "replayed",
        "SYNC_LOCK",
    ] {
        assert!(text.contains(fact), "the narration lacks {fact:?}:\n{text}");
    }
    assert!(!text.contains("VIOLATION"), "{text}");
}

/// The narration is the same on every run (simulated clock, one thread): a test or a doc can
/// quote it.
#[test]
fn demo_output_is_deterministic() {
    assert_eq!(stdout(&cephlock(&["demo"])), stdout(&cephlock(&["demo"])));
}

/// rbd §7.3.6, §7.4, §7.5 rows 3, 4 and 6, as machine-readable facts.
#[test]
fn s7_demo_json_reports_owners_snapshot_and_fencing() {
    let v = json(&["demo", "--json"]);
    assert_eq!(v["invariant_violations"], 0);
    let rbd = &v["stories"][0];
    assert_eq!(rbd["story"], "rbd");
    assert!(rbd["invariant_checks"].as_u64().unwrap() >= 20, "{}", rbd["invariant_checks"]);
    assert_eq!(rbd["invariant_violations"], 0, "{}", rbd["violations"]);

    // §7.3: forwarded, run by qemu, qemu kept the lock, contents verified.
    let snap = &rbd["snapshot"];
    assert_eq!(snap["requested_by"], "nova-compute");
    assert_eq!(snap["run_by"], "qemu");
    assert_eq!(snap["forwarded"], true);
    assert_eq!(snap["exists"], true);
    assert_eq!(snap["contents_verified"], true);
    assert_eq!(snap["owner_kept_lock"], true);
    let k = snap["writes_in_snapshot"].as_u64().unwrap();
    assert!(snap["writes_done_before_request"].as_u64().unwrap() <= k);
    assert!(k <= snap["writes_done_at_completion"].as_u64().unwrap());
    // §7.4.
    assert_eq!(rbd["resize"]["run_by"], "qemu");
    assert_eq!(rbd["resize"]["forwarded"], true);
    assert_eq!(rbd["resize"]["owner_kept_lock"], true);

    // The owner after each step: qemu until nova-compute writes, back to qemu, then nova-compute
    // once qemu is dead and fenced.
    let owners: Vec<&str> =
        rbd["phases"].as_array().unwrap().iter().map(|p| p["lock_owner"].as_str().unwrap_or("-")).collect();
    assert_eq!(
        owners,
        ["qemu", "qemu", "qemu", "qemu", "nova-compute", "qemu", "qemu", "nova-compute", "nova-compute"]
    );
    let cookies: Vec<&str> =
        rbd["phases"].as_array().unwrap().iter().map(|p| p["lock_cookie"].as_str().unwrap_or("-")).collect();
    assert!(cookies[0].starts_with("auto "), "real-ceph §3 cookie format: {}", cookies[0]);
    assert!(
        cookies[..4].iter().all(|c| *c == cookies[0]),
        "the cookie stays while qemu runs the ops: {cookies:?}"
    );
    assert_eq!(cookies[5], cookies[0], "qemu retakes the lock with its own cookie");

    // §7.5 row 3 / real-ceph §3: the takeover waits for the 30 s watch timeout, then fences.
    let dead = &rbd["dead_owner"];
    assert!(dead["nova_write_blocked_s"].as_f64().unwrap() >= dead["watch_timeout_s"].as_f64().unwrap());
    assert_eq!(dead["qemu_blocklisted"], true);
    assert_eq!(dead["lock_broken"], true);
    assert_eq!(dead["late_write_refused"], true);
    // rbd §2.13: a fenced owner that wakes up gets -EBLOCKLISTED, not a lost connection.
    assert_eq!(dead["late_write_errno"], 108);
    assert!(dead["blocklisted"].as_array().is_some_and(|a| a.len() == 1));
    let last = rbd["phases"].as_array().unwrap().last().unwrap();
    assert_eq!(last["operations"][0]["client"], "qemu");
    assert_eq!(last["operations"][0]["outcome"], "refused");
    assert_eq!(rbd["writes"]["refused"], 1);
    assert!(rbd["writes"]["accepted"].as_u64().unwrap() >= 35);

    let mds = &v["stories"][1];
    assert_eq!(mds["story"], "mds");
    assert_eq!(mds["ranks"], 2);
    assert_eq!(mds["invariant_violations"], 0);
    assert!(mds["invariant_checks"].as_u64().unwrap() > 0);
    assert!(mds["xlock_walk"].as_array().is_some_and(|a| !a.is_empty()));
    let phases = mds["phases"].as_array().unwrap();
    let ops: Vec<&serde_json::Value> =
        phases.iter().flat_map(|p| p["operations"].as_array().unwrap().iter()).collect();
    // Every request completes with a safe reply (but the one lost with rank 1, re-sent).
    let lost = ops.iter().filter(|o| o["safe_reply"] == false).count();
    assert_eq!(lost, 1, "{ops:?}");
    assert!(ops.iter().filter(|o| o["safe_reply"] == true).all(|o| o["outcome"] == "ok"), "{ops:?}");
    let create = ops.iter().find(|o| o["op"].as_str().unwrap().starts_with("create")).unwrap();
    assert_eq!(create["early_reply"], true);
    // §5.1: the create sent to rank 0 runs on rank 1, the auth of /proj's dirfrag.
    assert_eq!(create["sent_to"], 0);
    assert_eq!(create["forwarded_to"], serde_json::json!([1]));
    // §4.12/§4.13: creating in /proj on rank 1 made rank 0 scatter /proj's locks.
    let p2 = &phases[1];
    assert!(p2["messages"]["reqscatter"].as_u64().unwrap() >= 1, "{p2}");
    assert!(p2["lock_transitions"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().ends_with("MIX")));
    // §4.14: bob's stat revoked caps alice held on the file.
    assert!(!phases[3]["cap_revokes"].as_array().unwrap().is_empty());
    assert!(phases[3]["messages"]["discover"].as_u64().unwrap() >= 1);
    // §6.6: rank 1 restarts with an unsafe create; the client re-sends it and it is done once;
    // everything acknowledged as safe before the crash is still there afterwards.
    assert_eq!(mds["complete"], true);
    let restart = &phases[6];
    assert_eq!(restart["restart"]["rank"], 1);
    assert!(restart["restart"]["replayed_updates"].as_u64().unwrap() >= 3, "{restart}");
    assert_eq!(restart["restart"]["resent_requests"], 1);
    let (first, resent) = (&restart["operations"][0], &restart["operations"][1]);
    assert_eq!((first["early_reply"].clone(), first["safe_reply"].clone()), (true.into(), false.into()));
    assert_eq!(resent["outcome"], "ok");
    let last = &phases[7]["operations"];
    assert!(last.as_array().unwrap().iter().all(|o| o["outcome"] == "ok"), "{last}");
}

/// `bench rbd-snap-forward` (issue rbd-ops, Benchmark): forwarded snapshot latency, the owner's
/// write stall, and the baselines of the same run, with internally consistent figures.
#[test]
fn bench_rbd_snap_forward_json() {
    let v = json(&["bench", "rbd-snap-forward", "--json", "--duration", "0.2"]);
    assert_eq!(v["workload"], "rbd-snap-forward");
    assert_eq!(v["backend"], "embedded");
    let fwd = &v["forwarded_snap_create"];
    assert!(fwd["latency_us"]["samples"].as_u64().unwrap() >= 1, "{fwd}");
    assert!(fwd["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(fwd["latency_us"]["p50"].as_f64().unwrap() <= fwd["latency_us"]["p99"].as_f64().unwrap());
    assert_eq!(fwd["run_by_owner"], fwd["latency_us"]["samples"], "every snapshot ran on the owner");
    assert_eq!(fwd["owner_kept_lock"], true);
    let local = &v["baseline"]["local_snap_create"];
    assert!(local["samples"].as_u64().unwrap() >= 1);
    let alone = &v["baseline"]["writes_without_snapshot"];
    assert!(alone["latency_us"]["samples"].as_u64().unwrap() >= 1);
    assert!(alone["write_iops"].as_f64().unwrap() > 0.0);
    let during = &fwd["writes_during_snapshot"];
    assert!(during["max"].as_f64().unwrap() >= during["p50"].as_f64().unwrap());
    assert!(v["forwarded_vs_local_p50"].as_f64().unwrap() > 0.0);
}

/// `demo --data-dir` (issue 10): the MDS ranks' journals are kept where `cephlock journal` reads
/// them, intact, with rank 1's restart visible (a second ESubtreeMap after replay).
#[test]
fn demo_keeps_the_mds_journals_for_the_journal_tool() {
    let dir = std::env::temp_dir().join(format!("cephlock-demo-journals-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let v = json(&["demo", "--json", "--data-dir", d]);
    let kept = &v["stories"][1]["data_dir"];
    assert!(kept["events"].as_u64().unwrap() > 10, "{kept}");
    for rank in ["0", "1"] {
        let out = cephlock(&["journal", "--dir", d, "--rank", rank, "inspect", "--format", "json"]);
        assert!(out.status.success());
        let i: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(i["integrity"]["status"], "ok", "rank {rank}: {i}");
    }
    let out =
        cephlock(&["journal", "--dir", d, "--rank", "1", "event", "get", "--type", "ESubtreeMap", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 2);
    let _ = std::fs::remove_dir_all(&dir);
}
