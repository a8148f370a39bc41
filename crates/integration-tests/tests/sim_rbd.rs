//! The RBD simulator over a fixed batch of seeds (rbd §2.11, §2.13, §6, §7), and proof that the
//! invariants catch a deliberately injected bug. A failing seed prints the command that replays
//! it; every seed that ever failed belongs in `REGRESSION_SEEDS`.

use std::time::Instant;

use integration_tests::sim::rbd::{Faults, InjectedBug, SimConfig, SimOutcome, run};

/// Seeds that once failed, kept forever.
///
/// * 1022, 1024, 1033, 1038, 1039 (`cephlock sim rbd --seeds 1000..1100`): the store's first hang
///   model failed a hung client's operations with -ENOTCONN, so an owner that hung while
///   releasing "released" (ReleaseRequest ignores unlock errors, rbd §1.6.4) while the OSD kept
///   its lock; its watch stayed alive, so nobody could break it and a waiter spun through
///   REQUEST_LOCK forever (1022). A stopped process sends nothing, and librados resends rather
///   than fails a stalled op: the store now holds a hung client's operations until it resumes,
///   and draining no longer waits on them (1024-1039 failed on that until it did).
const REGRESSION_SEEDS: &[u64] = &[1022, 1024, 1033, 1038, 1039];

fn run_batch(seeds: impl Iterator<Item = u64>, base: SimConfig) -> Vec<SimOutcome> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut n = 0;
    let mut outcomes = Vec::new();
    for seed in seeds {
        n += 1;
        let cfg = SimConfig { seed, ..base.clone() };
        let out = run(cfg.clone());
        eprintln!(
            "seed {seed}: {} steps, {} s simulated, writes {} accepted / {} rejected ({} fenced), {} crashes, {} hangs, {} snaps",
            out.steps,
            out.sim_time_s,
            out.writes_accepted,
            out.writes_rejected,
            out.writes_refused_fenced,
            out.crashes,
            out.hangs,
            out.snaps
        );
        if let Some(v) = &out.violation {
            eprintln!("seed {seed} FAILED: {v}\n  replay: {}", cfg.replay_command());
            failures.push(seed);
        }
        outcomes.push(out);
    }
    eprintln!("{n} seeds in {:.1} s", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    outcomes
}

#[test]
fn rbd_sim_seed_batch_with_all_faults() {
    let outs =
        run_batch(0..40, SimConfig { clients: 3, ops: 120, faults: Faults::ALL, ..SimConfig::default() });
    // The batch must exercise what it claims to: both fault classes, snapshots, and contention.
    assert!(outs.iter().map(|o| o.crashes).sum::<u64>() > 0, "no crash injected");
    assert!(outs.iter().map(|o| o.hangs).sum::<u64>() > 0, "no hang injected");
    assert!(outs.iter().map(|o| o.snaps).sum::<u64>() > 0, "no snapshot taken");
    assert!(outs.iter().map(|o| o.writes_accepted).sum::<u64>() > 100, "too few writes accepted");
}

#[test]
fn rbd_sim_seed_batch_without_faults_many_clients() {
    run_batch(100..104, SimConfig { clients: 5, ops: 120, faults: Faults::NONE, ..SimConfig::default() });
}

#[test]
fn rbd_sim_seed_batch_two_clients_crash_only() {
    run_batch(
        200..210,
        SimConfig { clients: 2, ops: 150, faults: Faults::CRASH_ONLY, ..SimConfig::default() },
    );
}

#[test]
fn rbd_sim_seed_batch_hang_only() {
    let outs = run_batch(
        300..310,
        SimConfig { clients: 3, ops: 150, faults: Faults::HANG_ONLY, ..SimConfig::default() },
    );
    // rbd §2.13: some hung owner lost its lock to a peer and woke up fenced, and its writes were
    // refused; without this the batch would not test fencing at all.
    assert!(outs.iter().map(|o| o.writes_refused_fenced).sum::<u64>() > 0, "no fenced write was attempted");
}

#[test]
fn rbd_sim_regression_seeds() {
    run_batch(REGRESSION_SEEDS.iter().copied(), SimConfig::default());
}

/// STYLE.md §3: one seed reproduces a run exactly, down to the trace bytes.
#[test]
fn rbd_sim_same_seed_same_run() {
    let dir = std::env::temp_dir();
    let paths = [0, 1].map(|k| dir.join(format!("cephlock-sim-rbd-{}-{k}.jsonl", std::process::id())));
    let runs =
        paths.clone().map(|p| run(SimConfig { seed: 7, ops: 60, trace: Some(p), ..SimConfig::default() }));
    let traces = paths.clone().map(|p| std::fs::read_to_string(p).expect("trace written"));
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    let (a, b) = (&runs[0], &runs[1]);
    assert!(a.is_ok(), "{:?}", a.violation);
    assert_eq!(
        (a.steps, a.sim_time_s, a.writes_accepted, a.writes_rejected, a.crashes, a.hangs, a.snaps),
        (b.steps, b.sim_time_s, b.writes_accepted, b.writes_rejected, b.crashes, b.hangs, b.snaps)
    );
    assert_eq!(traces[0], traces[1], "same seed, different trace");
    assert!(a.writes_accepted > 0, "the run did some work: {a:?}");
    // docs/trace-format.md: every line is one JSON object with step and ev.
    let mut owners = 0;
    for line in traces[0].lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert!(v["step"].is_u64(), "{line}");
        match v["ev"].as_str() {
            Some("lock_owner") => {
                owners += 1;
                assert!(
                    v["owner"].is_null() || v["owner"].as_str().is_some_and(|o| o.starts_with("client."))
                );
            }
            Some("write") => assert!(v["accepted"].is_boolean() && v["client"].is_string(), "{line}"),
            other => panic!("unknown event {other:?}"),
        }
        assert_eq!(v["image"], "sim");
    }
    assert!(owners > 1, "ownership never changed");
}

/// rbd §2.11: a write that skips the lock gate must be caught within a few seeds.
#[test]
fn injected_ungated_write_is_caught() {
    let caught = (0..5).find_map(|seed| {
        let out =
            run(SimConfig { seed, ops: 80, bug: Some(InjectedBug::UngatedWrite), ..SimConfig::default() });
        out.violation.map(|v| (seed, v))
    });
    let (seed, v) = caught.expect("an ungated write went unnoticed for 5 seeds");
    eprintln!("injected bug caught at seed {seed}: {v}");
    assert!(v.invariant.contains("§2.11") || v.invariant.contains("model"), "{v}");
}

/// rbd §7, §2.13: a write acknowledged but never stored must be caught by the model comparisons
/// (it passes the lock-gate check, since the owner acknowledges it).
#[test]
fn injected_lost_write_is_caught() {
    let caught = (0..5).find_map(|seed| {
        let out = run(SimConfig { seed, ops: 80, bug: Some(InjectedBug::LostWrite), ..SimConfig::default() });
        out.violation.map(|v| (seed, v))
    });
    let (seed, v) = caught.expect("a lost acknowledged write went unnoticed for 5 seeds");
    eprintln!("injected bug caught at seed {seed}: {v}");
    assert!(v.invariant.contains("model") || v.invariant.contains("survives"), "{v}");
}
