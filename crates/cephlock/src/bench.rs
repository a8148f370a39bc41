//! `cephlock bench <workload>`: measurements a user can rerun on their own machine (anchors
//! §1.6).
//!
//! Each workload is its own module with its own arguments; this file holds what they share:
//! the common options, latency summaries from HdrHistogram, the progress bar (drawn only when
//! stderr is a terminal, so that piped or captured runs stay clean), and scratch directories.
//! Workloads so far: `journal`, `rbd-pingpong`, `rbd-snap-forward`, `mds-create` and
//! `mds-stat`, `mds-rename-cross`.

mod journal;
mod mds_create;
mod mds_rename_cross;
mod mds_stat;
mod rbd_pingpong;
mod rbd_snap_forward;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::CliError;

/// The `bench` workloads.
#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// MDS journal: events/s and wait_safe latency with group commit vs fdatasync per entry.
    #[command(after_long_help = journal::JSON_SHAPE)]
    Journal(journal::JournalBenchArgs),
    /// MDS, one rank: creates/s by N clients in private directories vs one shared directory,
    /// journal in memory vs on the local-directory device, against one uncontended client.
    #[command(name = "mds-create", after_long_help = mds_create::JSON_SHAPE)]
    MdsCreate(mds_create::MdsCreateArgs),
    /// MDS, one rank: stats/s of many readers of one file with and without one writer whose
    /// setattrs force SYNC→LOCK→SYNC and cap revocations.
    #[command(name = "mds-stat", after_long_help = mds_stat::JSON_SHAPE)]
    MdsStat(mds_stat::MdsStatArgs),
    /// MDS, two ranks: renames/s into the root from a directory pinned to the other rank
    /// (one witness, two-phase) against same-rank renames.
    #[command(name = "mds-rename-cross", after_long_help = mds_rename_cross::JSON_SHAPE)]
    MdsRenameCross(mds_rename_cross::RenameCrossArgs),
    /// RBD exclusive lock: cooperative hand-overs/s and hand-over latency between clients.
    #[command(name = "rbd-pingpong", after_long_help = rbd_pingpong::JSON_SHAPE)]
    RbdPingpong(rbd_pingpong::PingpongArgs),
    /// RBD: latency of a snapshot forwarded to the lock owner, and the owner's write stall.
    #[command(name = "rbd-snap-forward", after_long_help = rbd_snap_forward::JSON_SHAPE)]
    RbdSnapForward(rbd_snap_forward::SnapForwardArgs),
}

/// Options every workload takes.
#[derive(Args, Debug, Clone)]
pub(crate) struct CommonArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Seconds of measurement per configuration.
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = parse_duration)]
    duration: f64,
    /// Client (submitter) counts to run, comma separated.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [1u32, 4, 16, 64],
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: Vec<u32>,
}

impl CommonArgs {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
        return Err(format!("{s:?} must be more than 0 and at most 3600 seconds"));
    }
    Ok(v)
}

pub(crate) fn run(cmd: &BenchCommand, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Journal(args) => journal::run(args, out),
        BenchCommand::MdsCreate(args) => mds_create::run(args, out),
        BenchCommand::MdsStat(args) => mds_stat::run(args, out),
        BenchCommand::MdsRenameCross(args) => mds_rename_cross::run(args, out),
        BenchCommand::RbdPingpong(args) => rbd_pingpong::run(args, out),
        BenchCommand::RbdSnapForward(args) => rbd_snap_forward::run(args, out),
    }
}

/// Prints a workload's report: one pretty JSON document with `--json`, else its table.
fn emit<R: Serialize, E: Into<CliError>>(
    json: bool,
    report: &R,
    out: &mut dyn std::io::Write,
    table: impl FnOnce(&R, &mut dyn std::io::Write) -> Result<(), E>,
) -> Result<(), CliError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report).map_err(|e| CliError::Io(e.into()))?;
        writeln!(out)?;
    } else {
        table(report, out).map_err(Into::into)?;
    }
    Ok(())
}

/// A latency histogram in nanoseconds, 3 significant digits, up to a minute.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Latency percentiles in microseconds, as every workload reports them.
#[derive(Debug, Clone, Copy, Serialize)]
struct LatencySummary {
    samples: u64,
    mean: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1e3;
        LatencySummary {
            samples: h.len(),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.50)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// A progress bar over `steps` configurations on a terminal, a hidden one otherwise.
fn progress(steps: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// A directory for one run's files, removed when dropped (also on error paths).
struct Scratch(PathBuf);

impl Scratch {
    /// A fresh `cephlock-bench-<tag>-<pid>` directory inside `parent`.
    fn new(parent: &Path, tag: &str) -> Result<Scratch, CliError> {
        let dir = parent.join(format!("cephlock-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| CliError::file(&dir, e))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file system type `path` lives on, from /proc/mounts (longest matching mount point), so a
/// reader can tell an ext4 figure from a tmpfs one, where fdatasync costs nothing.
fn fs_type(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else { return "unknown".into() };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return "unknown".into() };
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_src, mnt, ty) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt).then(|| (mnt.len(), ty.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, ty)| ty)
        .unwrap_or_else(|| "unknown".into())
}

/// A journal device that counts journal flushes (`write_and_sync`) on the way to the device it
/// wraps, so a report can show flushes per event or per operation. Every other call passes
/// straight through.
#[derive(Debug)]
pub(crate) struct CountingDevice {
    inner: std::sync::Arc<dyn mds_journal::JournalDevice>,
    flushes: std::sync::atomic::AtomicU64,
}

impl CountingDevice {
    /// Counts the flushes of `inner`.
    pub(crate) fn wrap(
        inner: std::sync::Arc<dyn mds_journal::JournalDevice>,
    ) -> std::sync::Arc<CountingDevice> {
        std::sync::Arc::new(CountingDevice { inner, flushes: std::sync::atomic::AtomicU64::new(0) })
    }

    /// Flushes so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl mds_journal::JournalDevice for CountingDevice {
    async fn write(
        &self,
        object: &str,
        offset: u64,
        data: bytes::Bytes,
    ) -> mds_journal::device::DeviceResult<()> {
        self.inner.write(object, offset, data).await
    }
    async fn sync(&self, objects: &[String]) -> mds_journal::device::DeviceResult<()> {
        self.inner.sync(objects).await
    }
    async fn write_and_sync(
        &self,
        writes: Vec<mds_journal::device::ObjectWrite>,
    ) -> mds_journal::device::DeviceResult<()> {
        self.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write_and_sync(writes).await
    }
    async fn write_full(&self, object: &str, data: bytes::Bytes) -> mds_journal::device::DeviceResult<()> {
        self.inner.write_full(object, data).await
    }
    async fn read(
        &self,
        object: &str,
        offset: u64,
        len: u64,
    ) -> mds_journal::device::DeviceResult<Option<Vec<u8>>> {
        self.inner.read(object, offset, len).await
    }
    async fn stat(&self, object: &str) -> mds_journal::device::DeviceResult<Option<u64>> {
        self.inner.stat(object).await
    }
    async fn truncate(&self, object: &str, size: u64) -> mds_journal::device::DeviceResult<()> {
        self.inner.truncate(object, size).await
    }
    async fn remove(&self, object: &str) -> mds_journal::device::DeviceResult<bool> {
        self.inner.remove(object).await
    }
    async fn list(&self) -> mds_journal::device::DeviceResult<Vec<String>> {
        self.inner.list().await
    }
}
