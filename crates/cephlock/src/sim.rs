//! `cephlock sim`: the seeded simulator from `integration_tests::sim`, one seed or a range.
//!
//! The command is a thin layer: it parses the run's shape, calls the library, prints one line
//! per seed, and exits non-zero with the replay command when any seed breaks an invariant, so
//! a soak is `cephlock sim rbd --seeds 0..100000` (or `sim mds`) and its failures are bug
//! reports.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use std::time::Duration;

use integration_tests::sim::mds;
use integration_tests::sim::rbd::{self, Faults, LIVELOCK, SimConfig};

use crate::CliError;

/// Which half of the system to simulate.
#[derive(Subcommand, Debug)]
pub(crate) enum SimCommand {
    /// K RBD clients on one image: writes, reads, snapshots, resizes, explicit locks, with
    /// client crashes and hangs; checks the exclusive-lock invariants after every step.
    Rbd(RbdSimArgs),
    /// R MDS ranks and M filesystem clients running namespace operations, with client
    /// crashes, slow clients and journal stalls; checks the locking invariants after every
    /// step and the namespace against a sequential model.
    Mds(MdsSimArgs),
}

/// The shape of an MDS simulator run.
#[derive(Args, Debug)]
pub(crate) struct MdsSimArgs {
    /// The seed to run (ignored when --seeds is given).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A range of seeds, A..B (B excluded); prints the failing ones.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// MDS ranks; rank K ≥ 1 is auth for the pinned subtree /tK.
    #[arg(long, default_value_t = 3)]
    ranks: u32,
    /// Filesystem clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Scheduler steps in the safety phase (the liveness phase runs until quiet, bounded).
    #[arg(long, default_value_t = 400)]
    ops: usize,
    /// Fault classes of the safety phase: a comma-separated list of crash, slow, journal,
    /// rank-crash, torn (a rank crashes mid journal flush: unsynced bytes lost, kept or torn),
    /// eio (a rank's journal write or sync fails with EIO and the rank respawns), all (crash,
    /// slow, journal: every class that does not restart a rank), none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Write the JSON-lines trace here (docs/trace-format.md); with --seeds, the last seed's.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Let renames and links join directories of different subtrees (different ranks) and go
    /// to any rank: witnesses, inode migration and the search by inode number.
    #[arg(long)]
    cross_subtree: bool,
}

/// The shape of an RBD simulator run.
#[derive(Args, Debug)]
pub(crate) struct RbdSimArgs {
    /// The seed to run (ignored when --seeds is given).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A range of seeds, A..B (B excluded); prints the failing ones.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// RBD clients on the image.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Scheduler steps in the safety phase (the liveness phase adds a quarter).
    #[arg(long, default_value_t = 150)]
    ops: usize,
    /// Fault classes of the safety phase: a comma-separated list of crash, hang, all, none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Write the JSON-lines trace here (docs/trace-format.md); with --seeds, the last seed's.
    #[arg(long)]
    trace: Option<PathBuf>,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("bad range start {a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("bad range end {b:?}: {e}"))?;
    if a >= b {
        return Err(format!("empty range {s:?}"));
    }
    Ok(a..b)
}

/// Runs the chosen simulation; any violation is an error naming the seeds and how to replay.
pub(crate) fn run(cmd: &SimCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        SimCommand::Rbd(args) => run_rbd(args, out),
        SimCommand::Mds(args) => run_mds(args, out),
    }
}

fn run_mds(args: &MdsSimArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let faults = mds::Faults::parse(&args.faults).map_err(CliError::Usage)?;
    if args.clients == 0 || args.ranks == 0 {
        return Err(CliError::Usage("--clients and --ranks must be at least 1".into()));
    }
    let seeds = args.seeds.clone().unwrap_or(args.seed..args.seed + 1);
    let mut failed = Vec::new();
    for seed in seeds {
        let cfg = mds::SimConfig {
            seed,
            ranks: args.ranks,
            clients: args.clients,
            ops: args.ops,
            faults,
            bug: None,
            trace: args.trace.clone(),
            cross_subtree: args.cross_subtree,
        };
        let o = mds::run(cfg.clone());
        match &o.violation {
            None => writeln!(
                out,
                "seed {seed}: ok ({} steps, {} ms simulated, {} requests: {} ok, {} errors; {} forwards, {} grants, {} client crashes, {} slow clients, {} evictions, {} journal stalls, {} rank failures: {} mid-flush, {} torn tails, {} journal EIOs)",
                o.steps,
                o.sim_time_ms,
                o.requests,
                o.replies_ok,
                o.replies_err,
                o.forwards,
                o.grants,
                o.client_crashes,
                o.slow_clients,
                o.evictions,
                o.journal_stalls,
                o.rank_crashes,
                o.journal_torn,
                o.torn_tails,
                o.journal_eios
            )?,
            Some(v) => {
                writeln!(out, "seed {seed}: FAILED: {v}")?;
                writeln!(out, "  replay: {} --trace sim-mds-{seed}.jsonl", cfg.replay_command())?;
                failed.push(seed);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!("invariant violated for seeds {failed:?}")))
    }
}

fn run_rbd(args: &RbdSimArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let faults = Faults::parse(&args.faults).map_err(CliError::Usage)?;
    if args.clients == 0 {
        return Err(CliError::Usage("--clients must be at least 1".into()));
    }
    let seeds = args.seeds.clone().unwrap_or(args.seed..args.seed + 1);
    let mut failed = Vec::new();
    for seed in seeds {
        let cfg = SimConfig {
            seed,
            clients: args.clients,
            ops: args.ops,
            faults,
            bug: None,
            trace: args.trace.clone(),
            wall_budget: Duration::from_secs(120),
        };
        let outcome = rbd::run(cfg.clone());
        match &outcome.violation {
            None => writeln!(
                out,
                "seed {seed}: ok ({} steps, {} s simulated, {} writes accepted, {} refused, {} crashes, {} hangs, {} snapshots)",
                outcome.steps,
                outcome.sim_time_s,
                outcome.writes_accepted,
                outcome.writes_rejected,
                outcome.crashes,
                outcome.hangs,
                outcome.snaps
            )?,
            Some(v) => {
                writeln!(out, "seed {seed}: FAILED: {v}")?;
                writeln!(out, "  replay: {}", cfg.replay_command())?;
                failed.push(seed);
                if v.invariant == LIVELOCK {
                    // The livelocked run's thread is still spinning; later seeds would share
                    // the CPU with it, so stop here.
                    writeln!(out, "  stopping: a livelocked run is still spinning in this process")?;
                    break;
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!("invariant violated for seeds {failed:?}")))
    }
}
