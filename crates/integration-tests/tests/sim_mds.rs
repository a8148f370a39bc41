//! The MDS simulator over a fixed batch of seeds (mds §4.2, §4.7, §4.12, §4.14, §4.18, §5.2),
//! and proof that its invariants catch a deliberately injected locking bug. A failing seed
//! prints the command that replays it; every seed that ever failed belongs in
//! `REGRESSION_SEEDS`.

use std::time::Instant;

use integration_tests::sim::mds::{Faults, InjectedBug, SimConfig, SimOutcome, run};

/// Seeds that once failed, kept forever.
const REGRESSION_SEEDS: &[u64] = &[];

/// Seeds that once failed with two ranks (the CLI's defaults otherwise: 4 clients, 400 ops,
/// every fault), kept forever:
/// * 3, 11, 19, 29: a discover of a name the auth's dirfrag lacked was answered "missing"
///   with no dentry replica, so the asker replied ENOENT under no lock after a racing create
///   had been acknowledged (mds §5.1: discover replicates the null dentry, the reader
///   decides under its DN rdlock).
/// * 1: a rename's destination replica took the inode while the source replica, whose SYNC
///   was still in flight, linked it too (§2.3, §4.12 DN lock data).
/// * 26: a replica dentry kept a stale "links an inode I lack" mark after lock data said
///   null, and a reader holding its rdlock rediscovered forever while the auth's create
///   waited for that rdlock.
/// * 194: a reader away on a remote auth pin when a discover reply said "links nothing"
///   applied that verdict after newer lock data had linked the dentry.
const TWO_RANK_REGRESSION_SEEDS: &[u64] = &[1, 3, 11, 19, 26, 29, 194];

/// Seeds that once failed on one rank with a journal EIO (`--faults all,eio`), kept forever:
/// * 925: a restarted rank ran every replayed request at once, so an unlink replayed ahead
///   of the create it had followed (blocked on a lock) answered ENOENT after its early
///   reply said done; Ceph replays one request at a time, the next once the current one
///   has journaled (mds §6.6 client replay, `Cluster`'s replay queue).
/// * 706, 876: a dead client's non-exclusive create that opened its own lost unsafe file
///   was taken, once the model forgot the lost create, for a second creation (simulator).
/// * 517: a dead client's replay killed by its eviction was forgotten only after the
///   replies the eviction released had been checked against the model (simulator).
/// * 1059, 1231: a rename naming a lost mkdir's inode as its directory: the model said
///   ENOTDIR for an inode it does not have, the server ENOENT (simulator).
/// * 1641, 1780: the liveness phase called the cluster quiet while the failed rank was
///   still down, and compared its empty stand-in cache with the model (simulator).
const EIO_REGRESSION_SEEDS: &[u64] = &[517, 706, 876, 925, 1059, 1231, 1641, 1780];

/// Seeds that once failed on one rank with every rank failure class
/// (`--faults all,torn,eio,rank-crash`): 413 and 845 as 517 above, 707 as 706, 1059 as
/// 1059 above.
const RANK_FAILURE_REGRESSION_SEEDS: &[u64] = &[413, 707, 845, 1059];

/// Seeds that once failed with a plain rank crash (`--faults all,rank-crash`), kept forever:
/// * one rank, 10, 15, 49, 74, 104, 181, 199: an unsafe create's inode number went to another
///   request after the crash; Ceph's client replays the request with the number and the MDS
///   keeps it (mds §6.6 client replay, `Locker::expect_replay`).
/// * one rank, 179: a replayed setxattr ran after requests that had never been answered, so
///   it met the file a later create made; replays go first (CLIENTREPLAY).
/// * one rank, 48, 206: the namespace was compared with the model while a replay that the
///   model had already counted had not committed again (simulator).
/// * one rank, 858: a deferred request of a client evicted meanwhile was still handed to the
///   rank, which refused it for want of a session.
/// * two ranks, 5, 6, 9, 52, 55, 59: the restarted auth of a directory's file and nest
///   locks started in SYNC while its replica held wrlocks under MIX; Ceph's strong rejoin
///   makes the auth MIX from the replica's report (mds §4.12, §4.13, `rejoin_scatter`).
/// * two ranks, 56: a replica dentry kept a stale null linkage whose update died in flight
///   with the auth; the rejoin ack carries linkage.
/// * two ranks, 54: a replica null dentry the restarted auth no longer had was left out of
///   its replica set, so the next create never reached it; the auth invents it null.
/// * two ranks, 151: a discover answered ENOENT for a name whose unsafe create was waiting
///   to be replayed; the model counted the create at its early reply (simulator: such a
///   change takes effect at its replay, `Pending::reapply`).
/// * two ranks, 220: a dead client's forwarded request was re-sent after the crash.
const RANK_CRASH_REGRESSION_SEEDS: &[(u32, u64)] = &[
    (1, 10),
    (1, 15),
    (1, 48),
    (1, 49),
    (1, 74),
    (1, 104),
    (1, 179),
    (1, 181),
    (1, 199),
    (1, 206),
    (1, 858),
    (2, 5),
    (2, 6),
    (2, 9),
    (2, 52),
    (2, 54),
    (2, 55),
    (2, 56),
    (2, 59),
    (2, 151),
    (2, 220),
];

/// Seeds that once failed with two ranks and every rank failure class
/// (`--ranks 2 --faults all,torn,eio,rank-crash`), kept forever: 74, 227, 288, 351, 527, 592,
/// 626, 759, 848, 920, 989: `Cluster::crash` dropped only the messages the simulator's
/// transport already had due, so lock messages the failed rank's old incarnation had sent
/// (LOCK, SYNC, LOCKACK) were delivered after its restart and contradicted the lock states
/// rejoin had set (mds §6.6: a failed rank's connections are reset; `Transport::drop_rank`).
const TWO_RANK_FAILURE_REGRESSION_SEEDS: &[u64] = &[74, 227, 288, 351, 527, 592, 626, 759, 848, 920, 989];

/// Seeds that once failed with two ranks and rank crashes (`--ranks 2 --faults
/// all,rank-crash`), kept forever: 36, 305, 311, 322, 986 as the seeds above; 20: a dead
/// client's rename of a name onto itself, answered on its own lost unsafe mkdir, was taken
/// by the rebuilt model for a change (simulator).
const TWO_RANK_CRASH_REGRESSION_SEEDS: &[u64] = &[20, 36, 305, 311, 322, 986];

/// Seeds that once failed on three ranks with `--faults all,rank-crash` (mds §6.6):
/// * 389 ("dirfrag replica before its inode"), 964: a message the failed rank had sent,
///   still delayed in the transport, survived the crash (the drain only saw messages
///   already due) and reached a peer after the restart; now `Transport::drop_rank`.
/// * 388, 418: a survivor's discover lost with the failed rank stayed pending forever,
///   because the rank it had gone to was recomputed from a cache a later reply had
///   changed; now the target is recorded when the discover is sent (`discover_to`).
const THREE_RANK_FAILURE_REGRESSION_SEEDS: &[u64] = &[388, 389, 418, 964];

/// Seeds that once failed on three ranks with `--faults all,torn,eio,rank-crash`, for the
/// same two causes: 228 (a dentry left in SYNC_LOCK) and 402 ("dentry replica before its
/// dirfrag") by a stale pre-crash message, 181 and 599 by a lost discover never retried;
/// 1569 (found by a soak run): a client's rmdir, sent before its mkdir of the same name but
/// run after it, was replayed first, by request id, and answered ENOENT after its early
/// reply said done; replays now follow the order of the early replies, as Ceph's client
/// keeps its unsafe requests (mds §6.6).
const THREE_RANK_EVERY_FAILURE_REGRESSION_SEEDS: &[u64] = &[181, 228, 402, 599, 1569];

fn run_batch(seeds: impl Iterator<Item = u64>, base: SimConfig) -> Vec<SimOutcome> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for seed in seeds {
        let cfg = SimConfig { seed, ..base.clone() };
        let out = run(cfg.clone());
        eprintln!(
            "seed {seed}: {} steps, {} ms simulated, {} requests ({} ok / {} err), {} deliveries, {} forwards, {} grants, {} crashes, {} slow, {} evictions, {} journal stalls",
            out.steps,
            out.sim_time_ms,
            out.requests,
            out.replies_ok,
            out.replies_err,
            out.deliveries,
            out.forwards,
            out.grants,
            out.client_crashes,
            out.slow_clients,
            out.evictions,
            out.journal_stalls
        );
        if let Some(v) = &out.violation {
            eprintln!("seed {seed} FAILED: {v}\n  replay: {}", cfg.replay_command());
            failures.push(seed);
        }
        outcomes.push(out);
    }
    eprintln!("{} seeds in {:.1} s", outcomes.len(), started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    outcomes
}

#[test]
fn mds_sim_single_rank_batch_with_all_faults() {
    let outs = run_batch(0..6, SimConfig { ranks: 1, clients: 4, ops: 300, ..SimConfig::default() });
    // The batch must exercise what it claims to: every fault class and real work.
    assert!(outs.iter().map(|o| o.client_crashes).sum::<u64>() > 0, "no client crash injected");
    assert!(outs.iter().map(|o| o.slow_clients).sum::<u64>() > 0, "no slow client injected");
    assert!(outs.iter().map(|o| o.journal_stalls).sum::<u64>() > 0, "no journal stall injected");
    assert!(outs.iter().map(|o| o.evictions).sum::<u64>() > 0, "nobody was evicted");
    assert!(outs.iter().map(|o| o.replies_ok).sum::<u64>() > 50, "too little work succeeded");
}

#[test]
fn mds_sim_regression_seeds() {
    run_batch(REGRESSION_SEEDS.iter().copied(), SimConfig { ranks: 1, ..SimConfig::default() });
}

#[test]
fn mds_sim_regression_seeds_journal_eio_mds_s6_6() {
    let faults = Faults::parse("all,eio").expect("fault list");
    let outs = run_batch(
        EIO_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 1, faults, ..SimConfig::default() },
    );
    assert!(outs.iter().all(|o| o.journal_eios == 1), "every seed's EIO struck and its rank restarted");
}

#[test]
fn mds_sim_regression_seeds_every_rank_failure_mds_s6_6() {
    let faults = Faults::parse("all,torn,eio,rank-crash").expect("fault list");
    run_batch(
        RANK_FAILURE_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 1, faults, ..SimConfig::default() },
    );
}

#[test]
fn mds_sim_regression_seeds_rank_crash_mds_s6_6() {
    let faults = Faults::parse("all,rank-crash").expect("fault list");
    for ranks in [1, 2] {
        let seeds = RANK_CRASH_REGRESSION_SEEDS.iter().filter(|(r, _)| *r == ranks).map(|(_, s)| *s);
        let outs = run_batch(seeds, SimConfig { ranks, faults, ..SimConfig::default() });
        assert!(outs.iter().all(|o| o.rank_crashes == 1), "every seed's rank crash struck");
    }
}

#[test]
fn mds_sim_two_rank_regression_seeds_every_rank_failure_mds_s6_6() {
    let faults = Faults::parse("all,torn,eio,rank-crash").expect("fault list");
    let outs = run_batch(
        TWO_RANK_FAILURE_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 2, faults, ..SimConfig::default() },
    );
    assert!(outs.iter().all(|o| o.rank_crashes == 1), "every seed failed a rank once");
}

#[test]
fn mds_sim_two_rank_regression_seeds_rank_crash_mds_s6_6() {
    let faults = Faults::parse("all,rank-crash").expect("fault list");
    let outs = run_batch(
        TWO_RANK_CRASH_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 2, faults, ..SimConfig::default() },
    );
    assert!(outs.iter().all(|o| o.rank_crashes == 1), "every seed crashed a rank once");
}

#[test]
fn mds_sim_three_rank_regression_seeds_rank_failure_mds_s6_6() {
    let faults = Faults::parse("all,rank-crash").expect("fault list");
    run_batch(
        THREE_RANK_FAILURE_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 3, faults, ..SimConfig::default() },
    );
}

#[test]
fn mds_sim_three_rank_regression_seeds_every_rank_failure_mds_s6_6() {
    let faults = Faults::parse("all,torn,eio,rank-crash").expect("fault list");
    run_batch(
        THREE_RANK_EVERY_FAILURE_REGRESSION_SEEDS.iter().copied(),
        SimConfig { ranks: 3, faults, ..SimConfig::default() },
    );
}

/// CI-sized batch of single-rank runs that each fail their rank once (crash, crash in the
/// middle of a journal flush, or journal EIO), then replay, client replay and restart.
#[test]
fn mds_sim_single_rank_batch_with_rank_failures() {
    let faults = Faults::parse("all,torn,eio,rank-crash").expect("fault list");
    let outs = run_batch(0..12, SimConfig { ranks: 1, clients: 4, ops: 300, faults, ..SimConfig::default() });
    assert!(outs.iter().map(|o| o.rank_crashes).sum::<u64>() >= 10, "too few rank failures struck");
    assert!(outs.iter().map(|o| o.journal_eios).sum::<u64>() > 0, "no journal EIO struck");
    assert!(outs.iter().map(|o| o.journal_torn).sum::<u64>() > 0, "no crash mid-flush");
}

#[test]
fn mds_sim_two_rank_regression_seeds_discover_and_dn_lock_data() {
    run_batch(TWO_RANK_REGRESSION_SEEDS.iter().copied(), SimConfig { ranks: 2, ..SimConfig::default() });
}

/// STYLE.md §3: one seed reproduces a run exactly, down to the trace bytes, and the trace
/// follows docs/trace-format.md.
#[test]
fn mds_sim_same_seed_same_trace() {
    let dir = std::env::temp_dir();
    let paths = [0, 1].map(|k| dir.join(format!("cephlock-sim-mds-{}-{k}.jsonl", std::process::id())));
    let runs = paths
        .clone()
        .map(|p| run(SimConfig { seed: 5, ranks: 1, ops: 120, trace: Some(p), ..SimConfig::default() }));
    let traces = paths.clone().map(|p| std::fs::read_to_string(p).expect("trace written"));
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    assert!(runs[0].is_ok(), "{:?}", runs[0].violation);
    assert_eq!(traces[0], traces[1], "same seed, different trace");
    let (mut grants, mut releases, mut states) = (0, 0, 0);
    for line in traces[0].lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert!(v["step"].is_u64(), "{line}");
        match v["ev"].as_str() {
            Some("state") => {
                states += 1;
                assert!(v["from"].is_string() && v["to"].is_string() && v["auth"].is_boolean(), "{line}");
            }
            Some("grant") => {
                grants += 1;
                for k in ["state", "kind", "obj", "lock"] {
                    assert!(v[k].is_string(), "{k}: {line}");
                }
                assert!(v["req"].is_u64() && v["client"].is_i64(), "{line}");
                assert!(v["forced"].is_boolean() && v["remote"].is_boolean(), "{line}");
                assert!(v.get("xlock_by_client").is_some() && v.get("excl_client").is_some(), "{line}");
            }
            Some("release") => {
                releases += 1;
                assert!(["rd", "wr", "x"].contains(&v["kind"].as_str().unwrap_or("")), "{line}");
            }
            Some(
                "request" | "reply" | "fault" | "evicted" | "session_timeout" | "client_restart"
                | "rank_restart",
            ) => {}
            other => panic!("unknown event {other:?}: {line}"),
        }
    }
    assert!(
        grants > 10 && releases > 10 && states > 10,
        "{grants} grants {releases} releases {states} states"
    );
}

/// Issue 9's acceptance: a Locker that grants a rdlock in SYNC_LOCK (forbidden by every table,
/// mds §4.2) is caught by a seed within seconds, with a message naming the rule and state.
#[test]
fn injected_rdlock_in_sync_lock_is_caught() {
    let started = Instant::now();
    let caught = (0..10).find_map(|seed| {
        let cfg = SimConfig {
            seed,
            ranks: 1,
            ops: 300,
            bug: Some(InjectedBug::RdlockInSyncLock),
            ..SimConfig::default()
        };
        run(cfg).violation.map(|v| (seed, v))
    });
    let (seed, v) = caught.expect("a rdlock granted in SYNC_LOCK went unnoticed for 10 seeds");
    eprintln!("injected bug caught at seed {seed} in {:.1} s: {v}", started.elapsed().as_secs_f64());
    assert!(v.invariant.contains("§4.2"), "{v}");
    assert!(v.detail.contains("rd lock granted") && v.detail.contains("SYNC_LOCK"), "{v}");
}

/// The multi-rank batch: forwards, discover, replicas and the MLock protocol under every
/// fault class (mds §4.12, §5.1, §4.17).
#[test]
fn mds_sim_multi_rank_batch_with_all_faults() {
    let outs = run_batch(0..12, SimConfig { ranks: 3, clients: 4, ops: 300, ..SimConfig::default() });
    assert!(outs.iter().map(|o| o.forwards).sum::<u64>() > 0, "no request was forwarded");
}

#[test]
fn mds_sim_without_faults_many_clients() {
    let outs = run_batch(
        100..103,
        SimConfig { ranks: 1, clients: 6, ops: 300, faults: Faults::NONE, ..SimConfig::default() },
    );
    assert_eq!(outs.iter().map(|o| o.client_crashes + o.slow_clients + o.journal_stalls).sum::<u64>(), 0);
}

/// Seeds that failed once renames and links joined subtrees of different ranks
/// (`cross_subtree`), each for a cause fixed since, as (ranks, seed):
/// * 2/1, 2/5, 3/7: a witness projecting a replica dentry onto the renamed inode kept the
///   overwritten inode's projected parent (one primary link per inode, §4.17);
/// * 2/35, 2/45: a peer XLOCK took over the same client's unsafe XLOCKDONE, so the leader's
///   replica missed the SYNC with the new linkage and answered ENOENT (§4.2, §4.12);
/// * 2/53, 3/26: FindIno for a directory whose mkdir was only answered early (§5.1);
/// * 2/21: the exporter of a migrated file kept its xlocks until FINISH while the new auth
///   xlocked the same lock (two holders, §4.7);
/// * 3/94: RMDIR of a renamed directory whose frags live only on another rank (§5.2);
/// * 2/118: a rename exporting a file and a rename over a remote link to it deadlocked (the
///   export's freeze waited for the other's auth pin, which waited for the export's xlock);
///   the srcdn auth now freezes at AUTHPIN time, as Ceph's `auth_pin_freeze` (§4.4, §4.17).
///
/// Session 5 (seeds 0..1000 on 2 and 3 ranks):
/// * 2/219, 2/292, 2/616, 3/923: a witness installed its directory projections at COMMIT, so
///   a local request stacking on the same directory inode (shared filelock/nestlock wrlocks)
///   installed the witness's projection as its own; it now installs at PREPARE safe (§4.17);
/// * 3/269, 3/584: a replicated auth dentry lock whose transition woke a request that then
///   went elsewhere stayed in LOCK with nobody to evaluate it (§4.11);
/// * 3/375: a forwarded request's AUTHPIN reached a peer before the old leader's DROPLOCKS of
///   the same request id (§4.17);
/// * 3/742, 3/855: a directory renamed into another rank's subtree was discovered from its
///   dentry's auth forever instead of from its inode's auth (§5.1);
/// * 2/855: a search by inode number took a replica null dentry under a rename's xlock for
///   "not there" (§5.1);
/// * 3/647: a rename of a hard link whose target the leader never saw answered ENOENT (§5.1);
/// * 3/415, 3/812, 3/957: a readdir on the source dirfrag's auth listed a renamed entry: the
///   directory inode's auth synced the filelock before the leader's FINISH arrived; the
///   leader now remote-wrlocks it on the dirfrag's auth (§5.1);
/// * 2/482, 3/374: two renames of directories into each other deadlocked on their snap
///   rdlock chains (§4.4); 2/598 guards the narrowing of that fix to directories;
/// * 3/977: a search by inode number woken while its dentry was still unreadable was never
///   parked again (§5.1);
/// * session 6: 2/2856, 3/1541: a search by inode number could not find an inode in another
///   rank's stray directory (§5.1, §6.4); 2/2299: a rename into a directory another rank had
///   removed into its stray directory succeeded; 2/2624: a rename held its destination's snap
///   chain while its source's search waited behind a rename that had to xlock it; 3/1188: a
///   replica dentry waiting for its inode never linked it once the inode came another way.
const CROSS_SUBTREE_REGRESSION_SEEDS: &[(u32, u64)] = &[
    (3, 415),
    (3, 812),
    (3, 957),
    (2, 482),
    (3, 374),
    (2, 598),
    (3, 977),
    (2, 1),
    (2, 5),
    (3, 7),
    (2, 35),
    (2, 45),
    (2, 53),
    (3, 26),
    (2, 21),
    (3, 94),
    (2, 118),
    (2, 219),
    (2, 292),
    (2, 616),
    (3, 923),
    (3, 269),
    (3, 584),
    (3, 375),
    (3, 742),
    (3, 855),
    (2, 855),
    (3, 647),
    (2, 2856),
    (3, 1541),
    (2, 2299),
    (2, 2624),
    (3, 1188),
];

/// Cross-subtree seeds with rank crashes, torn tails and journal EIOs (session 5), fixed by the
/// same causes: 3/813 (witness projections), 2/108 and 2/323 (an AUTHPIN ack for a request
/// the leader no longer had left the peer request and its freeze behind, §4.17), 3/894
/// (discover from the inode's auth), 2/100 (search by inode number), 3/238 (remote link).
/// Session 6: 3/610 and 3/875 (a rename's witness fetches the path to its directory's new
/// dentry), 3/210 (the checker excuses an error for a base inode number a lost mkdir had named
/// and a later mkdir reused), 2/1060 and 3/2215 (journal entries carry the ancestry of another
/// rank's directory, so a restarted leader replays them), 2/2277 and 2/2350 (a survivor's
/// rename waits for the cluster to recover, so a client replay goes first), 3/1507 and 3/1514
/// (no entry is added to a directory another rank removed into its stray directory), 3/1918 (a
/// replica that missed an inode's migration learns the new auth from its replica bundle).
const CROSS_SUBTREE_FAULT_REGRESSION_SEEDS: &[(u32, u64)] = &[
    (3, 813),
    (2, 108),
    (2, 323),
    (3, 894),
    (2, 100),
    (3, 238),
    (3, 610),
    (3, 875),
    (3, 210),
    (2, 1060),
    (3, 2215),
    (2, 2277),
    (2, 2350),
];

#[test]
fn mds_sim_cross_subtree_regression_seeds_mds_s4_17_s5_2() {
    for ranks in [2, 3] {
        let seeds = CROSS_SUBTREE_REGRESSION_SEEDS.iter().filter(|(r, _)| *r == ranks).map(|(_, s)| *s);
        run_batch(
            seeds,
            SimConfig { ranks, faults: Faults::NONE, cross_subtree: true, ..SimConfig::default() },
        );
    }
}

#[test]
fn mds_sim_cross_subtree_regression_seeds_with_rank_faults_mds_s4_17_s6_6() {
    let faults = Faults::parse("all,torn,eio,rank-crash").expect("fault list");
    for ranks in [2, 3] {
        let seeds = CROSS_SUBTREE_FAULT_REGRESSION_SEEDS.iter().filter(|(r, _)| *r == ranks).map(|(_, s)| *s);
        run_batch(seeds, SimConfig { ranks, faults, cross_subtree: true, ..SimConfig::default() });
    }
}
