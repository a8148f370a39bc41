//! `cephlock bench mds-create`: file creates per second on one MDS rank (mds spec §5.2 CREATE,
//! §4.18 early reply, §6.3 journal-before-unlock; anchors §1.1: the real MDS manages about
//! 1,000–2,000 creates/s per rank).
//!
//! N clients each create files in a closed loop, one request in flight per client, either in
//! a private directory per client or all in one shared directory, against a
//! `mds_locker::runtime::Rank` whose journal lives in memory or on the local-directory device.
//! The rank runs in this one thread and the clients are interleaved deterministically: in each
//! round every idle client sends its next request (the rank handles them in client order and
//! early-replies), then the rank waits for its journal (one group commit for the round) and
//! the safe replies go out. Latencies are from the round's start (when all the requests were
//! sent) to the reply, so queueing behind other clients' requests counts, as it would for real
//! clients of a single-threaded rank. Cap revokes are acknowledged at once by the simulated
//! clients. The baseline is one uncontended client in a private directory on the same journal
//! kind, measured in the same run.
//!
//! The module also holds the driver `bench mds-stat` shares.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use mds_journal::{DirDevice, JournalConfig, JournalDevice, JournalError, MemDevice};
use mds_locker::runtime::Rank;
use mds_locker::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, ClientId, ClientRequest, Effect, Event, FilePath, Ino,
    LockerConfig, Op, ReqId,
};
use serde::Serialize;

use super::{CommonArgs, CountingDevice, LatencySummary, Scratch, fs_type, new_histogram, progress};
use crate::CliError;

/// The JSON document `--json` prints, for `cephlock bench mds-create --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"mds-create\", \"duration_s\": f64,
   \"journal_dir\": {\"path\": str, \"fs\": str} | null,
   \"baseline\": [R], \"results\": [R]}
  R = {\"clients\": u32, \"dir\": \"private\"|\"shared\", \"journal\": \"mem\"|\"dir\",
       \"ops\": u64, \"seconds\": f64, \"ops_per_s\": f64,
       \"early_reply_us\": L, \"safe_reply_us\": L,
       \"transitions_per_op\": f64, \"journal_submits_per_op\": f64,
       \"journal_flushes_per_op\": f64, \"flush_requests_per_op\": f64,
       \"cap_messages_per_op\": f64, \"messages_per_op\": f64, \"errors\": u64,
       \"vs_baseline\": f64}
  L = {\"samples\", \"mean\", \"p50\", \"p99\", \"p999\", \"max\"} in microseconds, from the round's
  start (all clients send at once) to the reply. journal_flushes_per_op counts device flushes
  (one write + sync of the objects touched); flush_requests_per_op counts the Locker's own
  JournalFlush effects (nudge_log, §8 fact 53). messages_per_op counts every message between
  the rank and its clients: requests, replies, cap messages both ways, lease messages. The
  baseline is one client in a private directory on the same journal; vs_baseline is
  ops_per_s over the baseline's.";

/// Arguments of `bench mds-create`.
#[derive(Args, Debug)]
pub(crate) struct MdsCreateArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Where clients create: a private directory each, one shared directory, or both.
    #[arg(long, value_enum, default_value_t = DirMode::Both)]
    dir: DirMode,
    /// Where the journal lives: in memory, on the local-directory device, or both.
    #[arg(long, value_enum, default_value_t = JournalMode::Both)]
    journal: JournalMode,
    /// Parent directory for the local-directory journal (a scratch directory is made inside
    /// and removed afterwards). Default: the system temp directory.
    #[arg(long, value_name = "DIR")]
    journal_path: Option<PathBuf>,
}

/// `--dir`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum DirMode {
    /// One directory per client.
    Private,
    /// All clients in one directory.
    Shared,
    /// Both configurations.
    Both,
}

/// `--journal`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum JournalMode {
    /// `MemDevice`: no I/O, the Locker's own cost.
    Mem,
    /// `DirDevice` on a scratch directory: write + fdatasync per journal flush.
    Dir,
    /// Both configurations.
    Both,
}

impl JournalMode {
    pub(super) fn kinds(self) -> Vec<JournalKind> {
        match self {
            JournalMode::Mem => vec![JournalKind::Mem],
            JournalMode::Dir => vec![JournalKind::Dir],
            JournalMode::Both => vec![JournalKind::Mem, JournalKind::Dir],
        }
    }
}

/// One journal configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum JournalKind {
    Mem,
    Dir,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Placement {
    Private,
    Shared,
}

/// What a configuration measured, in the shape both MDS workloads report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Measured {
    pub(super) ops: u64,
    pub(super) seconds: f64,
    pub(super) ops_per_s: f64,
    pub(super) early_reply_us: LatencySummary,
    pub(super) safe_reply_us: LatencySummary,
    pub(super) transitions_per_op: f64,
    pub(super) journal_submits_per_op: f64,
    pub(super) journal_flushes_per_op: f64,
    pub(super) flush_requests_per_op: f64,
    pub(super) cap_messages_per_op: f64,
    pub(super) messages_per_op: f64,
    pub(super) errors: u64,
}

#[derive(Debug, Serialize)]
struct CreateResult {
    clients: u32,
    dir: Placement,
    journal: JournalKind,
    #[serde(flatten)]
    m: Measured,
    vs_baseline: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct JournalDir {
    pub(super) path: String,
    pub(super) fs: String,
}

#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    duration_s: f64,
    journal_dir: Option<JournalDir>,
    baseline: Vec<CreateResult>,
    results: Vec<CreateResult>,
}

pub(super) fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("mds bench: {what}: {e}"))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("starting the runtime", e))
}

/// The scratch directory for `dir` journals, if any configuration needs one.
pub(super) fn journal_scratch(
    kinds: &[JournalKind],
    parent: Option<&Path>,
    tag: &str,
) -> Result<Option<Scratch>, CliError> {
    if !kinds.contains(&JournalKind::Dir) {
        return Ok(None);
    }
    let parent = parent.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    if !parent.is_dir() {
        return Err(CliError::Usage(format!("journal directory {} does not exist", parent.display())));
    }
    Scratch::new(&parent, tag).map(Some)
}

pub(super) fn journal_dir_info(scratch: Option<&Scratch>) -> Option<JournalDir> {
    scratch.map(|s| JournalDir { path: s.path().display().to_string(), fs: fs_type(s.path()) })
}

pub(super) fn run(args: &MdsCreateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let kinds = args.journal.kinds();
    let placements = match args.dir {
        DirMode::Private => vec![Placement::Private],
        DirMode::Shared => vec![Placement::Shared],
        DirMode::Both => vec![Placement::Private, Placement::Shared],
    };
    let scratch = journal_scratch(&kinds, args.journal_path.as_deref(), "mds-create")?;
    let duration = args.common.duration();
    let steps = (kinds.len() * (1 + placements.len() * args.common.clients.len())) as u64;
    let pb = progress(steps);
    let rt = runtime()?;
    let mut baseline = Vec::new();
    let mut results = Vec::new();
    for (k, &kind) in kinds.iter().enumerate() {
        let mut n = 0;
        let mut dev_for = |scratch: Option<&Scratch>| {
            n += 1;
            CountingDevice::new(kind, scratch.map(|s| s.path().join(format!("j{k}-{n}"))))
        };
        pb.set_message(format!("baseline: 1 client, {kind:?} journal"));
        let base = rt.block_on(creates(dev_for(scratch.as_ref())?, 1, Placement::Private, duration))?;
        pb.inc(1);
        let base_rate = base.ops_per_s;
        baseline.push(CreateResult {
            clients: 1,
            dir: Placement::Private,
            journal: kind,
            m: base,
            vs_baseline: 1.0,
        });
        for &placement in &placements {
            for &clients in &args.common.clients {
                pb.set_message(format!("{clients} clients, {placement:?} dir, {kind:?} journal"));
                let m = rt.block_on(creates(dev_for(scratch.as_ref())?, clients, placement, duration))?;
                pb.inc(1);
                let vs = m.ops_per_s / base_rate.max(f64::MIN_POSITIVE);
                results.push(CreateResult { clients, dir: placement, journal: kind, m, vs_baseline: vs });
            }
        }
    }
    pb.finish_and_clear();
    let report = Report {
        workload: "mds-create",
        duration_s: args.common.duration,
        journal_dir: journal_dir_info(scratch.as_ref()),
        baseline,
        results,
    };
    super::emit(args.common.json, &report, out, print_table)
}

fn print_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "mds-create on one rank, {} s per configuration (latencies in µs)", r.duration_s)?;
    if let Some(d) = &r.journal_dir {
        writeln!(out, "local-directory journal in {} ({})", d.path, d.fs)?;
    }
    writeln!(
        out,
        "{:<30} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8}",
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
        "×base"
    )?;
    for (label, c) in r.baseline.iter().map(|c| ("baseline", c)).chain(r.results.iter().map(|c| ("", c))) {
        let name = format!(
            "{label}{}{} {:?} {:?}",
            if label.is_empty() { "" } else { " " },
            c.clients,
            c.dir,
            c.journal
        )
        .to_lowercase();
        print_row(out, &name, &c.m, c.vs_baseline)?;
    }
    Ok(())
}

pub(super) fn print_row(out: &mut dyn Write, name: &str, m: &Measured, vs: f64) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<30} {:>9.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.2} {:>7.3} {:>7.2} {:>7.2} {:>8.2}",
        name,
        m.ops_per_s,
        m.early_reply_us.p50,
        m.early_reply_us.p99,
        m.safe_reply_us.p50,
        m.safe_reply_us.p99,
        m.safe_reply_us.p999,
        m.transitions_per_op,
        m.journal_flushes_per_op,
        m.cap_messages_per_op,
        m.messages_per_op,
        vs
    )
}

/// One create configuration: `clients` clients, each creating `fN` files in a closed loop.
async fn creates(
    dev: Arc<CountingDevice>,
    clients: u32,
    placement: Placement,
    duration: Duration,
) -> Result<Measured, CliError> {
    let mut d = Driver::start(dev, clients).await?;
    // Set-up (not measured): the directories.
    let dirs: Vec<String> = match placement {
        Placement::Private => (0..clients).map(|c| format!("c{c}")).collect(),
        Placement::Shared => vec!["shared".to_string()],
    };
    for (i, name) in dirs.iter().enumerate() {
        let op = Op::Mkdir { path: FilePath::new(Ino::ROOT, name), mode: 0o755 };
        d.setup(i as u32 % clients, op).await?;
    }
    let mut next = vec![0u64; clients as usize];
    let result = d
        .measure(duration, |c| {
            let i = c as usize;
            let dir = match placement {
                Placement::Private => format!("c{c}"),
                Placement::Shared => "shared".to_string(),
            };
            next[i] += 1;
            Some(Op::Create {
                path: FilePath::new(Ino::ROOT, &format!("{dir}/f{c}-{}", next[i])),
                mode: 0o644,
                excl: true,
                file_mode: lock_sm::caps::FILE_MODE_WR,
            })
        })
        .await;
    let m = d.finish(result);
    let closed = d.close().await;
    let m = m?;
    closed?;
    Ok(m)
}

/// One request a client has in flight.
struct Outstanding {
    client: u32,
    sent: Instant,
    early: bool,
}

/// A rank, its journal device and N simulated clients with one request in flight each.
pub(super) struct Driver {
    rank: Rank,
    dev: Arc<CountingDevice>,
    clients: u32,
    next_reqid: u64,
    outstanding: BTreeMap<ReqId, Outstanding>,
    idle: Vec<bool>,
    early: Histogram<u64>,
    safe: Histogram<u64>,
    measuring: bool,
    ops: u64,
    /// Requests finished in the measurement, per client.
    pub(super) done: Vec<u64>,
    errors: u64,
    messages: u64,
    cap_messages: u64,
}

/// Client ids start at 1 (0 is nobody's).
pub(super) fn client_id(c: u32) -> ClientId {
    u64::from(c) + 1
}

impl Driver {
    /// A fresh rank on `dev` with sessions for `clients` clients.
    pub(super) async fn start(dev: Arc<CountingDevice>, clients: u32) -> Result<Driver, CliError> {
        // No trimming during the run: nothing is written back, so nothing could expire anyway.
        let jcfg = JournalConfig { max_segments: usize::MAX, ..JournalConfig::for_rank(0) };
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let rank = Rank::create(as_dev, jcfg, LockerConfig::default())
            .await
            .map_err(|e| failed("creating the rank", e))?;
        let mut d = Driver {
            rank,
            dev,
            clients,
            next_reqid: 1,
            outstanding: BTreeMap::new(),
            idle: vec![true; clients as usize],
            early: new_histogram(),
            safe: new_histogram(),
            measuring: false,
            ops: 0,
            done: vec![0; clients as usize],
            errors: 0,
            messages: 0,
            cap_messages: 0,
        };
        for c in 0..clients {
            let fx = d
                .rank
                .handle(Event::SessionOpen { client: client_id(c) })
                .map_err(|e| failed("session", e))?;
            d.absorb(fx)?;
        }
        d.rank.wait_safe().await.map_err(|e| failed("journal", e))?;
        Ok(d)
    }

    /// Runs one request of client `c` to its safe reply, outside the measurement.
    pub(super) async fn setup(&mut self, c: u32, op: Op) -> Result<(), CliError> {
        self.send(c, op)?;
        for _ in 0..1000 {
            if self.idle[c as usize] {
                return Ok(());
            }
            self.settle().await?;
        }
        Err(failed("set-up", "a set-up request never finished"))
    }

    fn send(&mut self, c: u32, op: Op) -> Result<(), CliError> {
        let reqid = ReqId(self.next_reqid);
        self.next_reqid += 1;
        self.idle[c as usize] = false;
        self.outstanding.insert(reqid, Outstanding { client: c, sent: Instant::now(), early: false });
        self.messages += 1;
        let fx = self
            .rank
            .handle(Event::Request(ClientRequest { reqid, client: client_id(c), op }))
            .map_err(|e| failed("request", e))?;
        self.absorb(fx)
    }

    /// Waits for the journal and delivers what that releases.
    async fn settle(&mut self) -> Result<(), CliError> {
        let fx = self.rank.wait_safe().await.map_err(|e| failed("journal", e))?;
        self.absorb(fx)
    }

    /// Delivers effects to the simulated clients: replies end requests, revokes are acked at
    /// once (and whatever the ack releases is delivered too).
    fn absorb(&mut self, fx: Vec<Effect>) -> Result<(), CliError> {
        let mut queue = fx;
        let mut i = 0;
        while i < queue.len() {
            match &queue[i] {
                Effect::Reply(r) => {
                    self.messages += 1;
                    let now = Instant::now();
                    if !r.safe {
                        if let Some(o) = self.outstanding.get_mut(&r.reqid) {
                            o.early = true;
                            if self.measuring {
                                record(&mut self.early, now - o.sent);
                            }
                        }
                    } else if let Some(o) = self.outstanding.remove(&r.reqid) {
                        if self.measuring {
                            // A request with no early reply (reads, failures) is answered once.
                            if !o.early {
                                record(&mut self.early, now - o.sent);
                            }
                            record(&mut self.safe, now - o.sent);
                            self.ops += 1;
                            self.done[o.client as usize] += 1;
                            self.errors += u64::from(r.result.is_err());
                        }
                        self.idle[o.client as usize] = true;
                    }
                }
                Effect::Cap(CapMessage { client, ino, op, caps, wanted, seq }) => {
                    self.messages += 1;
                    self.cap_messages += 1;
                    if *op == CapOp::Revoke {
                        let ack = ClientCapMessage {
                            client: *client,
                            ino: *ino,
                            op: ClientCapOp::Update,
                            seq: *seq,
                            caps: *caps,
                            wanted: *wanted,
                        };
                        self.messages += 1;
                        let more =
                            self.rank.handle(Event::ClientCaps(ack)).map_err(|e| failed("cap ack", e))?;
                        queue.extend(more);
                    }
                }
                Effect::LeaseGrant { .. } | Effect::LeaseRevoke { .. } => self.messages += 1,
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// The closed loop: every idle client sends `next(client)`, then the journal is waited
    /// for, until `duration` has passed; then the requests in flight are drained.
    pub(super) async fn measure(
        &mut self,
        duration: Duration,
        mut next: impl FnMut(u32) -> Option<Op>,
    ) -> Result<MeasureWindow, CliError> {
        self.measuring = true;
        let stats0 = self.rank.locker().stats();
        let flushes0 = self.dev.flushes();
        let (messages0, caps0) = (self.messages, self.cap_messages);
        let start = Instant::now();
        let deadline = start + duration;
        let mut stalled = 0u32;
        while Instant::now() < deadline {
            let before = self.ops;
            let mut sent = false;
            for c in 0..self.clients {
                if self.idle[c as usize]
                    && let Some(op) = next(c)
                {
                    self.send(c, op)?;
                    sent = true;
                }
            }
            self.settle().await?;
            stalled = if self.ops == before && !sent { stalled + 1 } else { 0 };
            if stalled > 1000 {
                return Err(failed(
                    "measurement",
                    "no request finished in 1000 rounds: the clients are stuck",
                ));
            }
        }
        for _ in 0..10_000 {
            if self.outstanding.is_empty() {
                break;
            }
            self.settle().await?;
        }
        if !self.outstanding.is_empty() {
            return Err(failed("draining", format!("{} requests never finished", self.outstanding.len())));
        }
        let elapsed = start.elapsed();
        self.measuring = false;
        let stats = self.rank.locker().stats();
        Ok(MeasureWindow {
            elapsed,
            transitions: stats.transitions - stats0.transitions,
            submits: stats.journal_submits - stats0.journal_submits,
            flush_requests: stats.journal_flushes - stats0.journal_flushes,
            device_flushes: self.dev.flushes() - flushes0,
            messages: self.messages - messages0,
            cap_messages: self.cap_messages - caps0,
        })
    }

    /// Closes the rank and summarizes a measurement.
    pub(super) fn finish(&self, w: Result<MeasureWindow, CliError>) -> Result<Measured, CliError> {
        let w = w?;
        let ops = self.ops.max(1) as f64;
        let seconds = w.elapsed.as_secs_f64();
        Ok(Measured {
            ops: self.ops,
            seconds,
            ops_per_s: self.ops as f64 / seconds,
            early_reply_us: LatencySummary::of(&self.early),
            safe_reply_us: LatencySummary::of(&self.safe),
            transitions_per_op: w.transitions as f64 / ops,
            journal_submits_per_op: w.submits as f64 / ops,
            journal_flushes_per_op: w.device_flushes as f64 / ops,
            flush_requests_per_op: w.flush_requests as f64 / ops,
            cap_messages_per_op: w.cap_messages as f64 / ops,
            messages_per_op: w.messages as f64 / ops,
            errors: self.errors,
        })
    }
}

impl Driver {
    /// Closes the journal (everything is safe by now).
    pub(super) async fn close(self) -> Result<(), CliError> {
        self.rank.close().await.map_err(|e| failed("closing the journal", e))
    }
}

/// Counters over one measurement.
pub(super) struct MeasureWindow {
    elapsed: Duration,
    transitions: u64,
    submits: u64,
    flush_requests: u64,
    device_flushes: u64,
    messages: u64,
    cap_messages: u64,
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

impl CountingDevice {
    /// A memory device, or a directory device in `dir` (created).
    pub(super) fn new(kind: JournalKind, dir: Option<PathBuf>) -> Result<Arc<CountingDevice>, CliError> {
        let inner: Arc<dyn JournalDevice> = match (kind, dir) {
            (JournalKind::Mem, _) => Arc::new(MemDevice::new()),
            (JournalKind::Dir, Some(dir)) => {
                std::fs::create_dir_all(&dir).map_err(|e| CliError::file(&dir, e))?;
                Arc::new(DirDevice::open(&dir).map_err(JournalError::from)?)
            }
            (JournalKind::Dir, None) => {
                return Err(failed("journal", "a directory journal needs a directory"));
            }
        };
        Ok(CountingDevice::wrap(inner))
    }
}
