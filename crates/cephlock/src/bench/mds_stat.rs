//! `cephlock bench mds-stat`: what one writer costs many readers of the same file (mds spec
//! §5.2 GETATTR and SETATTR, §4.10 transitions, §4.14 cap revocation).
//!
//! R readers hold read caps on one file (they opened it read-only) and stat it in a closed
//! loop (GETATTR with `As Fs`, which rdlocks the authlock and filelock). One writer truncates
//! the same file in a closed loop (SETATTR size, which xlocks the filelock): each setattr
//! drives the filelock SYNC → LOCK → XLOCK (revoking the readers' `Fs Fr Fc`, which they
//! acknowledge at once), and the next stat brings it back to SYNC and re-grants the caps. The
//! baseline is the same readers without the writer, measured in the same run. The rank runs
//! in this thread with the clients interleaved deterministically, as in `bench mds-create`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lock_sm::caps::{AUTH_SHARED, FILE_MODE_PIN, FILE_MODE_RD, FILE_SHARED};
use mds_locker::{FilePath, Ino, Op, SetAttr};
use serde::Serialize;

use super::mds_create::{
    Driver, JournalDir, JournalKind, JournalMode, Measured, failed, journal_dir_info, journal_scratch,
    print_row, runtime,
};
use super::progress;
use super::{CommonArgs, CountingDevice};
use crate::CliError;

/// The JSON document `--json` prints, for `cephlock bench mds-stat --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"mds-stat\", \"duration_s\": f64,
   \"journal_dir\": {\"path\": str, \"fs\": str} | null,
   \"baseline\": [R], \"results\": [R]}
  R = {\"readers\": u32, \"writer\": bool, \"journal\": \"mem\"|\"dir\",
       \"stats\": u64, \"stats_per_s\": f64, \"setattrs\": u64,
       \"ops\": u64, \"seconds\": f64, \"ops_per_s\": f64,
       \"early_reply_us\": L, \"safe_reply_us\": L,
       \"transitions_per_op\": f64, \"journal_submits_per_op\": f64,
       \"journal_flushes_per_op\": f64, \"flush_requests_per_op\": f64,
       \"cap_messages_per_op\": f64, \"messages_per_op\": f64, \"errors\": u64,
       \"vs_baseline\": f64}
  L = {\"samples\", \"mean\", \"p50\", \"p99\", \"p999\", \"max\"} in microseconds. ops counts
  stats and setattrs; a stat has only a safe reply, so its early-reply latency is the safe
  one. The baseline is the same readers without the writer; vs_baseline is stats_per_s over
  the baseline's.";

/// Arguments of `bench mds-stat`.
#[derive(Args, Debug)]
pub(crate) struct MdsStatArgs {
    /// Reader counts are given with --clients.
    #[command(flatten)]
    common: CommonArgs,
    /// Where the journal lives: in memory, on the local-directory device, or both.
    #[arg(long, value_enum, default_value_t = JournalMode::Mem)]
    journal: JournalMode,
    /// Parent directory for the local-directory journal. Default: the system temp directory.
    #[arg(long, value_name = "DIR")]
    journal_path: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct StatResult {
    readers: u32,
    writer: bool,
    journal: JournalKind,
    stats: u64,
    stats_per_s: f64,
    setattrs: u64,
    #[serde(flatten)]
    m: Measured,
    vs_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    duration_s: f64,
    journal_dir: Option<JournalDir>,
    baseline: Vec<StatResult>,
    results: Vec<StatResult>,
}

pub(super) fn run(args: &MdsStatArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let kinds = args.journal.kinds();
    let scratch = journal_scratch(&kinds, args.journal_path.as_deref(), "mds-stat")?;
    let duration = args.common.duration();
    let pb = progress((kinds.len() * args.common.clients.len() * 2) as u64);
    let rt = runtime()?;
    let mut baseline = Vec::new();
    let mut results = Vec::new();
    let mut n = 0;
    for &kind in &kinds {
        for &readers in &args.common.clients {
            let mut dev = || {
                n += 1;
                CountingDevice::new(kind, scratch.as_ref().map(|s| s.path().join(format!("j{n}"))))
            };
            pb.set_message(format!("{readers} readers, no writer, {kind:?} journal"));
            let base = rt.block_on(stats(dev()?, kind, readers, false, duration))?;
            pb.inc(1);
            pb.set_message(format!("{readers} readers + 1 writer, {kind:?} journal"));
            let mut with = rt.block_on(stats(dev()?, kind, readers, true, duration))?;
            pb.inc(1);
            with.vs_baseline = with.stats_per_s / base.stats_per_s.max(f64::MIN_POSITIVE);
            baseline.push(base);
            results.push(with);
        }
    }
    pb.finish_and_clear();
    let report = Report {
        workload: "mds-stat",
        duration_s: args.common.duration,
        journal_dir: journal_dir_info(scratch.as_ref()),
        baseline,
        results,
    };
    super::emit(args.common.json, &report, out, print_table)
}

fn print_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mds-stat on one rank, {} s per configuration (latencies in µs)", r.duration_s)?;
    writeln!(
        out,
        "{:<30} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8}  {:>9} {:>8}",
        "configuration",
        "ops/s",
        "early50",
        "early99",
        "safe50",
        "safe99",
        "safe999",
        "trans/op",
        "flush/op",
        "caps/op",
        "msgs/op",
        "×base",
        "stats/s",
        "setattrs"
    )?;
    for s in r.baseline.iter().chain(&r.results) {
        let name =
            format!("{} readers{} {:?}", s.readers, if s.writer { " + writer" } else { "" }, s.journal)
                .to_lowercase();
        let mut line = Vec::new();
        print_row(&mut line, &name, &s.m, s.vs_baseline)?;
        let line = String::from_utf8_lossy(&line);
        writeln!(out, "{}  {:>9.0} {:>8}", line.trim_end(), s.stats_per_s, s.setattrs)?;
    }
    Ok(())
}

/// One configuration: `readers` readers (clients 1..=R) stat `/f`; with `writer`, client 0
/// truncates it to alternating sizes.
async fn stats(
    dev: std::sync::Arc<CountingDevice>,
    journal: JournalKind,
    readers: u32,
    writer: bool,
    duration: Duration,
) -> Result<StatResult, CliError> {
    let mut d = Driver::start(dev, readers + 1).await?;
    let f = FilePath::new(Ino::ROOT, "f");
    // Set-up (not measured): client 0 creates the file without caps; the readers open it.
    d.setup(0, Op::Create { path: f.clone(), mode: 0o644, excl: true, file_mode: FILE_MODE_PIN }).await?;
    for c in 1..=readers {
        let op =
            Op::Open { path: f.clone(), file_mode: FILE_MODE_RD, trunc: false, directory: false, mask: 0 };
        d.setup(c, op).await?;
    }
    let mut size = 0u64;
    let result = d
        .measure(duration, |c| match (c, writer) {
            (0, true) => {
                size = if size == 0 { 4096 } else { 0 };
                Some(Op::Setattr {
                    path: f.clone(),
                    attrs: SetAttr { size: Some(size), ..SetAttr::default() },
                })
            }
            // Without the writer, client 0 sits out.
            (0, false) => None,
            _ => Some(Op::Getattr { path: f.clone(), mask: AUTH_SHARED | FILE_SHARED }),
        })
        .await;
    let m = d.finish(result);
    let done = d.done.clone();
    let closed = d.close().await;
    let m = m?;
    closed?;
    if m.errors > 0 {
        return Err(failed("mds-stat", format!("{} requests failed", m.errors)));
    }
    let seconds = m.seconds;
    let stats: u64 = done.iter().skip(1).sum();
    let setattrs = if writer { done[0] } else { 0 };
    Ok(StatResult {
        readers,
        writer,
        journal,
        stats,
        stats_per_s: stats as f64 / seconds,
        setattrs,
        m,
        vs_baseline: 1.0,
    })
}
