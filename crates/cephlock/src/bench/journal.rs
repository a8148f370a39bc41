//! `cephlock bench journal`: what group commit buys on the local-directory device (anchors
//! §1.5 "group commit", §1.6 workload 6).
//!
//! For each event size, N client tasks each loop `submit` + `wait_safe` on one `MdLog` over a
//! `DirDevice` (closed loop; `--window W` lets each keep W events in flight and wait for the
//! last), beside an fdatasync-per-entry baseline measured in the same run: one writer that
//! frames the same event, writes it at the end of a file and calls fdatasync after each. The
//! baseline runs twice, half the duration before the journal configurations and half after, and
//! the two halves are pooled, so a disk that drifts during the run skews the ratio less.
//!
//! A closed loop with one event in flight per client can put at most N events in a flush, so
//! it is bounded by N × the baseline; `--window` shows what an MDS with early replies (which
//! does not wait for one request to be safe before journaling the next) can get.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use mds_journal::{DirDevice, JournalConfig, JournalDevice, JournalError, MdLog, StreamFormat, frame};
use serde::Serialize;

use super::{CommonArgs, CountingDevice, LatencySummary, Scratch, fs_type, new_histogram, progress};
use crate::CliError;
use crate::journal::sized_update;

/// The JSON document `--json` prints, for `cephlock bench journal --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"journal\", \"device\": {\"kind\": \"dir\", \"path\": str, \"fs\": str},
   \"duration_s\": f64, \"threads\": u32, \"window\": u32,
   \"baseline\": [{\"event_bytes\": u64, \"events\": u64, \"seconds\": f64, \"events_per_s\": f64,
                 \"latency_us\": latency, \"flushes_per_op\": 1.0}],
   \"journal\": [{\"clients\": u32, \"event_bytes\": u64, \"events\": u64, \"seconds\": f64,
                \"events_per_s\": f64, \"latency_us\": latency, \"flushes\": u64,
                \"flushes_per_op\": f64, \"events_per_flush\": f64, \"vs_baseline\": f64}]}
  latency = {\"samples\": u64, \"mean\": f64, \"p50\": f64, \"p99\": f64, \"p999\": f64, \"max\": f64}
  Latency is wait_safe (submit of the window's first event to wait_safe of its last returning)
  for the journal, write + fdatasync for the baseline, in microseconds. flushes counts device
  flushes (one write + fdatasync of every object touched) over the whole run, warm-up included.";

/// Tokio worker threads for the journal runs (the reference box has 2 cores).
const THREADS: u32 = 2;

/// Arguments of `bench journal`.
#[derive(Args, Debug)]
pub(crate) struct JournalBenchArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Event sizes in bytes, comma separated.
    #[arg(long, value_name = "B,...", value_delimiter = ',', default_values_t = [512u64, 4096],
          value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    sizes: Vec<u64>,
    /// Events each client keeps in flight before waiting for the last of them.
    #[arg(long, value_name = "W", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    window: u32,
    /// Where to put the journal and baseline files (a scratch directory is made inside and
    /// removed afterwards). Default: the system temp directory. Pick a directory on the disk
    /// you care about: on tmpfs fdatasync is free and the comparison means nothing.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Device {
    kind: &'static str,
    path: String,
    fs: String,
}

#[derive(Debug, Serialize)]
struct BaselineResult {
    event_bytes: u64,
    events: u64,
    seconds: f64,
    events_per_s: f64,
    latency_us: LatencySummary,
    flushes_per_op: f64,
}

#[derive(Debug, Serialize)]
struct JournalResult {
    clients: u32,
    event_bytes: u64,
    events: u64,
    seconds: f64,
    events_per_s: f64,
    latency_us: LatencySummary,
    flushes: u64,
    flushes_per_op: f64,
    events_per_flush: f64,
    vs_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    device: Device,
    duration_s: f64,
    threads: u32,
    window: u32,
    baseline: Vec<BaselineResult>,
    journal: Vec<JournalResult>,
}

/// One half of a baseline run, before pooling.
struct BaselineRun {
    events: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

pub(super) fn run(args: &JournalBenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    if !parent.is_dir() {
        return Err(CliError::Usage(format!("bench directory {} does not exist", parent.display())));
    }
    let scratch = Scratch::new(&parent, "journal")?;
    let duration = args.common.duration();
    let sizes: Vec<usize> = args.sizes.iter().map(|&b| usize::try_from(b).unwrap_or(usize::MAX)).collect();
    let steps = (sizes.len() * (2 + args.common.clients.len())) as u64;
    let pb = progress(steps);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS as usize)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;

    let mut before = Vec::new();
    for &size in &sizes {
        pb.set_message(format!("baseline {size} B (before)"));
        before.push(baseline(scratch.path(), size, duration / 2)?);
        pb.inc(1);
    }
    let mut journal_runs = Vec::new();
    for &size in &sizes {
        for &clients in &args.common.clients {
            pb.set_message(format!("journal {clients} clients x {size} B"));
            let dir = scratch.path().join(format!("journal-{clients}x{size}"));
            let res = rt.block_on(journal(&dir, clients, size, args.window, duration));
            let _ = std::fs::remove_dir_all(&dir);
            journal_runs.push((clients, size, res?));
            pb.inc(1);
        }
    }
    let mut baselines = Vec::new();
    for (&size, first) in sizes.iter().zip(before) {
        pb.set_message(format!("baseline {size} B (after)"));
        let second = baseline(scratch.path(), size, duration / 2)?;
        pb.inc(1);
        let mut hist = first.hist;
        hist.add(&second.hist).map_err(|e| CliError::Failed(format!("merging histograms: {e}")))?;
        let events = first.events + second.events;
        let seconds = (first.elapsed + second.elapsed).as_secs_f64();
        baselines.push(BaselineResult {
            event_bytes: size as u64,
            events,
            seconds,
            events_per_s: events as f64 / seconds,
            latency_us: LatencySummary::of(&hist),
            flushes_per_op: 1.0,
        });
    }
    pb.finish_and_clear();

    let journal = journal_runs
        .into_iter()
        .map(|(clients, size, r)| {
            let base = baselines.iter().find(|b| b.event_bytes == size as u64).map(|b| b.events_per_s);
            let seconds = r.elapsed.as_secs_f64();
            let events_per_s = r.events as f64 / seconds;
            JournalResult {
                clients,
                event_bytes: size as u64,
                events: r.events,
                seconds,
                events_per_s,
                latency_us: LatencySummary::of(&r.hist),
                flushes: r.flushes,
                flushes_per_op: r.flushes as f64 / r.all_events.max(1) as f64,
                events_per_flush: r.all_events as f64 / r.flushes.max(1) as f64,
                vs_baseline: base.map_or(f64::NAN, |b| events_per_s / b),
            }
        })
        .collect();
    let report = Report {
        workload: "journal",
        device: Device {
            kind: "dir",
            path: scratch.path().display().to_string(),
            fs: fs_type(scratch.path()),
        },
        duration_s: args.common.duration,
        threads: THREADS,
        window: args.window,
        baseline: baselines,
        journal,
    };
    super::emit(args.common.json, &report, out, |r, o| table(o, r))
}

fn table(out: &mut dyn Write, r: &Report) -> Result<(), CliError> {
    writeln!(
        out,
        "journal bench: local-directory device ({}) in {}; {} s per configuration, {} worker threads, \
         window {}",
        r.device.fs, r.device.path, r.duration_s, r.threads, r.window
    )?;
    writeln!(
        out,
        "{:<26} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "configuration", "events/s", "p50 µs", "p99 µs", "p999 µs", "flushes/op", "ev/flush", "×baseline"
    )?;
    for b in &r.baseline {
        writeln!(
            out,
            "{:<26} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>10.3} {:>10.1} {:>9.1}",
            format!("fdatasync/entry {} B", b.event_bytes),
            b.events_per_s,
            b.latency_us.p50,
            b.latency_us.p99,
            b.latency_us.p999,
            b.flushes_per_op,
            1.0,
            1.0
        )?;
    }
    for j in &r.journal {
        writeln!(
            out,
            "{:<26} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>10.3} {:>10.1} {:>9.1}",
            format!("journal {}x {} B", j.clients, j.event_bytes),
            j.events_per_s,
            j.latency_us.p50,
            j.latency_us.p99,
            j.latency_us.p999,
            j.flushes_per_op,
            j.events_per_flush,
            j.vs_baseline
        )?;
    }
    Ok(())
}

/// Frames one event per entry and writes + fdatasyncs it at the end of a file, for `duration`.
fn baseline(dir: &Path, size: usize, duration: Duration) -> Result<BaselineRun, CliError> {
    let path = dir.join(format!("baseline-{size}"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::file(&path, e))?;
    let payload = sized_update(0, 0, size).to_payload();
    let mut framed = Vec::new();
    let mut pos = 0u64;
    let mut hist = new_histogram();
    let mut events = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < duration {
        let t = Instant::now();
        framed.clear();
        frame::encode_frame(StreamFormat::ResilientCrc, pos, &payload, &mut framed);
        file.write_all_at(&framed, pos)
            .and_then(|()| file.sync_data())
            .map_err(|e| CliError::file(&path, e))?;
        pos += framed.len() as u64;
        record(&mut hist, t.elapsed());
        events += 1;
    }
    let elapsed = t0.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(BaselineRun { events, elapsed, hist })
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    // Values beyond the histogram's minute saturate instead of being dropped.
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// One journal configuration's measurements.
struct JournalRun {
    /// Events completed in the measured interval.
    events: u64,
    /// The measured interval: from the end of the warm-up to the last client finishing.
    elapsed: Duration,
    hist: Histogram<u64>,
    /// Device flushes over the whole run.
    flushes: u64,
    /// Events over the whole run (warm-up included), to set against `flushes`.
    all_events: u64,
}

async fn journal(
    dir: &Path,
    clients: u32,
    size: usize,
    window: u32,
    duration: Duration,
) -> Result<JournalRun, CliError> {
    let counting = CountingDevice::wrap(Arc::new(DirDevice::open(dir).map_err(JournalError::from)?));
    let dev: Arc<dyn JournalDevice> = counting.clone();
    // No trimming during the run: nothing is ever marked clean, so it could not expire anyway.
    let cfg = JournalConfig { max_segments: usize::MAX, ..JournalConfig::for_rank(0) };
    let log = MdLog::create(dev, cfg).await?;
    let warm = (duration / 5).min(Duration::from_millis(250));
    let start = Instant::now();
    let measure_from = start + warm;
    let deadline = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let log = log.clone();
        let event = sized_update(u64::from(c), u64::from(c), size);
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let (mut measured, mut all) = (0u64, 0u64);
            loop {
                let t = Instant::now();
                if t >= deadline {
                    break;
                }
                let mut last = None;
                for _ in 0..window {
                    last = Some(log.submit(event.clone())?);
                }
                if let Some(pos) = last {
                    log.wait_safe(&pos).await?;
                }
                all += u64::from(window);
                if t >= measure_from {
                    record(&mut hist, t.elapsed());
                    measured += u64::from(window);
                }
            }
            Ok::<_, JournalError>((hist, measured, all, Instant::now()))
        }));
    }
    let mut hist = new_histogram();
    let (mut events, mut all_events) = (0u64, 0u64);
    let mut finished = measure_from;
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok((h, m, a, end))) => {
                let _ = hist.add(&h);
                events += m;
                all_events += a;
                finished = finished.max(end);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(CliError::from(e));
            }
            Err(e) => {
                first_err.get_or_insert(CliError::Failed(format!("client task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        log.abandon().await;
        return Err(e);
    }
    log.close().await?;
    Ok(JournalRun {
        events,
        elapsed: finished.saturating_duration_since(measure_from),
        hist,
        flushes: counting.flushes(),
        all_events,
    })
}
