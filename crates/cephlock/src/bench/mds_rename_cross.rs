//! `cephlock bench mds-rename-cross`: what a witness costs a rename (mds spec §4.17
//! RENAMEPREP / PREPACK / FINISH / COMMITTED, §4.18 no early reply with journaled peers).
//!
//! Two ranks in one process (`mds_locker::cluster::Cluster`, FIFO transport, the stand-in
//! journal made safe whenever the ranks are idle). `/a` is pinned to rank 1 and `/b` stays on
//! rank 0. Each op creates a file (not timed) and renames it into the root, whose dirfrag is
//! rank 0's: from `/a` that rename has rank 1 as a witness (two-phase), from `/b` it is a
//! same-rank rename — the baseline, measured in the same run. One client answers cap
//! revokes at once. Latency is from submitting the rename to its safe reply; messages and
//! journal entries are counted for the rename only (every rank's entries).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use mds_locker::cluster::{Cluster, Output};
use mds_locker::{
    CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig,
    Op, ReqId,
};
use serde::Serialize;

use super::{LatencySummary, new_histogram, parse_duration, progress};
use crate::CliError;

/// The JSON document `--json` prints, for `cephlock bench mds-rename-cross --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"mds-rename-cross\", \"duration_s\": f64, \"baseline\": R, \"result\": R}
  R = {\"kind\": \"same-rank\"|\"cross-rank\", \"ops\": u64, \"seconds\": f64, \"ops_per_s\": f64,
       \"safe_reply_us\": L, \"early_replies\": u64, \"messages_per_op\": f64,
       \"messages_by_kind_per_op\": {kind: f64}, \"journal_entries_per_op\": f64,
       \"errors\": u64, \"vs_baseline\": f64}
  L = {\"samples\", \"mean\", \"p50\", \"p99\", \"p999\", \"max\"} in microseconds.
  The baseline renames /b/fN -> /hN with / and /b both on rank 0; the result renames
  /a/fN -> /gN with /a's dirfrag on rank 1 (a witness). vs_baseline is ops_per_s over the
  baseline's.";

/// Arguments of `bench mds-rename-cross`.
#[derive(Args, Debug)]
pub(crate) struct RenameCrossArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Seconds of measurement per configuration.
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = parse_duration)]
    duration: f64,
}

#[derive(Debug, Serialize)]
struct RenameResult {
    kind: &'static str,
    ops: u64,
    seconds: f64,
    ops_per_s: f64,
    safe_reply_us: LatencySummary,
    early_replies: u64,
    messages_per_op: f64,
    messages_by_kind_per_op: std::collections::BTreeMap<String, f64>,
    journal_entries_per_op: f64,
    errors: u64,
    vs_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    duration_s: f64,
    baseline: RenameResult,
    result: RenameResult,
}

pub(super) fn run(args: &RenameCrossArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let duration = Duration::from_secs_f64(args.duration);
    let pb = progress(2);
    pb.set_message("same-rank renames");
    let baseline = measure(false, duration)?;
    pb.inc(1);
    pb.set_message("cross-rank renames (one witness)");
    let mut result = measure(true, duration)?;
    pb.inc(1);
    pb.finish_and_clear();
    result.vs_baseline = result.ops_per_s / baseline.ops_per_s.max(f64::MIN_POSITIVE);
    let report = Report { workload: "mds-rename-cross", duration_s: args.duration, baseline, result };
    super::emit(args.json, &report, out, print_table)
}

fn print_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mds-rename-cross on two ranks, {} s per configuration (latencies in µs)", r.duration_s)?;
    writeln!(
        out,
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6}",
        "kind", "ops/s", "safe50", "safe99", "safe999", "msgs/op", "journal/op", "errors", "×base"
    )?;
    for s in [&r.baseline, &r.result] {
        let l = &s.safe_reply_us;
        writeln!(
            out,
            "{:<12} {:>9.0} {:>8.1} {:>8.1} {:>8.1} {:>8.2} {:>9.2} {:>7} {:>6.2}",
            s.kind,
            s.ops_per_s,
            l.p50,
            l.p99,
            l.p999,
            s.messages_per_op,
            s.journal_entries_per_op,
            s.errors,
            s.vs_baseline
        )?;
    }
    Ok(())
}

fn bench_err(what: impl std::fmt::Display) -> CliError {
    CliError::Io(std::io::Error::other(format!("bench mds-rename-cross: {what}")))
}

/// A safe reply's result and everything the cluster did meanwhile.
type Submitted = (Result<Option<Ino>, Errno>, Vec<Output>);

/// Runs a request to its safe reply, answering revokes; returns the result and the outputs.
fn submit(c: &mut Cluster, rank: u32, reqid: u64, op: Op) -> Result<Submitted, CliError> {
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client: 1, op }))
        .map_err(bench_err)?;
    let mut all = Vec::new();
    for _ in 0..1000 {
        c.settle().map_err(bench_err)?;
        let batch = c.take_outputs();
        let mut revoked = false;
        for o in &batch {
            if let Effect::Cap(m) = &o.effect
                && m.op == CapOp::Revoke
            {
                revoked = true;
                let ack = ClientCapMessage {
                    client: m.client,
                    ino: m.ino,
                    op: ClientCapOp::Update,
                    seq: m.seq,
                    caps: m.caps,
                    wanted: m.wanted,
                };
                c.handle(o.rank, Event::ClientCaps(ack)).map_err(bench_err)?;
            }
        }
        all.extend(batch);
        let done = all.iter().find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        });
        if let (Some(r), false) = (done, revoked) {
            c.settle().map_err(bench_err)?;
            all.extend(c.take_outputs());
            return Ok((r, all));
        }
    }
    Err(bench_err(format!("request {reqid} never got a safe reply")))
}

fn measure(cross: bool, duration: Duration) -> Result<RenameResult, CliError> {
    let mut c = Cluster::new(2, LockerConfig::default());
    c.handle(0, Event::SessionOpen { client: 1 }).map_err(bench_err)?;
    c.handle(1, Event::SessionOpen { client: 1 }).map_err(bench_err)?;
    let root = |p: &str| FilePath::new(Ino::ROOT, p);
    let (a, _) = submit(&mut c, 0, 1, Op::Mkdir { path: root("a"), mode: 0o755 })?;
    let a = a.map_err(|e| bench_err(format!("mkdir: {e:?}")))?.ok_or_else(|| bench_err("mkdir: no ino"))?;
    let (b, _) = submit(&mut c, 0, 2, Op::Mkdir { path: root("b"), mode: 0o755 })?;
    let b = b.map_err(|e| bench_err(format!("mkdir: {e:?}")))?.ok_or_else(|| bench_err("mkdir: no ino"))?;
    c.pin_empty_dir(a, 1).map_err(bench_err)?;
    let (dir, dir_rank, prefix) = if cross { (a, 1, "g") } else { (b, 0, "h") };
    let mut hist = new_histogram();
    let mut reqid = 10;
    let (mut ops, mut errors, mut early, mut journal) = (0u64, 0u64, 0u64, 0u64);
    let mut messages = 0u64;
    let mut by_kind: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut busy = Duration::ZERO;
    while busy < duration {
        let name = format!("f{ops}");
        reqid += 1;
        let create = Op::Create { path: FilePath::new(dir, &name), mode: 0o644, excl: true, file_mode: 1 };
        let (r, _) = submit(&mut c, dir_rank, reqid, create)?;
        if r.is_err() {
            errors += 1;
            continue;
        }
        let before = c.delivered().clone();
        reqid += 1;
        let op = Op::Rename { dest: root(&format!("{prefix}{ops}")), src: FilePath::new(dir, &name) };
        let t = Instant::now();
        let (r, outs) = submit(&mut c, 0, reqid, op)?;
        let took = t.elapsed();
        busy += took;
        ops += 1;
        if r.is_err() {
            errors += 1;
        }
        let _ = hist.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1));
        early += outs.iter().filter(|o| matches!(&o.effect, Effect::Reply(x) if !x.safe)).count() as u64;
        journal += outs.iter().filter(|o| matches!(o.effect, Effect::JournalSubmit { .. })).count() as u64;
        for (k, n) in c.delivered() {
            let d = n - before.get(k).copied().unwrap_or(0);
            if d > 0 {
                messages += d;
                *by_kind.entry((*k).to_string()).or_default() += d;
            }
        }
    }
    let per = |x: u64| x as f64 / ops.max(1) as f64;
    let seconds = busy.as_secs_f64();
    Ok(RenameResult {
        kind: if cross { "cross-rank" } else { "same-rank" },
        ops,
        seconds,
        ops_per_s: ops as f64 / seconds.max(f64::MIN_POSITIVE),
        safe_reply_us: LatencySummary::of(&hist),
        early_replies: early,
        messages_per_op: per(messages),
        messages_by_kind_per_op: by_kind.into_iter().map(|(k, v)| (k, per(v))).collect(),
        journal_entries_per_op: per(journal),
        errors,
        vs_baseline: 1.0,
    })
}
