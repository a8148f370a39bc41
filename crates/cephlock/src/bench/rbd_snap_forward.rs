//! `cephlock bench rbd-snap-forward`: what a snapshot requested by another client costs the
//! writer that owns the image's lock (rbd spec §5.1, §5.6, §7.3; anchors §1.6).
//!
//! One image on the embedded cluster, three read-write handles on separate clients: the owner
//! ("qemu") writes 4 KiB blocks without pause over a 1 MiB hot region of the first 4 MiB
//! object; the requester ("nova-compute") creates snapshots, each forwarded to the owner (SNAP_CREATE
//! notify, the owner blocks its writes, quiesces, adds the snapshot, unblocks, ASYNC_COMPLETE);
//! an observer counts who sent ASYNC_COMPLETE and whether the lock ever moved. Each snapshot is
//! removed again (unmeasured; librbd runs snap_remove on the requester without the lock when
//! fast-diff and journaling are off, rbd §5.2) so the header and the clones do not grow with the run. Three
//! phases of `--duration` each, in one run:
//!
//! 1. baseline: the owner writes alone (write latency and 4 KiB IOPS with the lock held);
//! 2. baseline: the owner creates the snapshots itself while writing (local snap_create);
//! 3. the requester's forwarded snap_create while the owner writes.
//!
//! The owner's write stall is the latency of writes that overlapped a forwarded snapshot
//! (max and p99), next to the writes of phase 1. For scale, real single-host Ceph stalls the
//! owner for 100–350 ms per forwarded snapshot (real-ceph §3).
//!
//! Clock: simulated and never advanced, as in `rbd-pingpong`. A live forward needs no timer
//! (every watcher acks at once), so figures are pure CPU and message cost measured with the
//! system's monotonic clock, and a forward that fell back on a timeout would hang the run
//! instead of quietly adding seconds to it. One thread (current-thread runtime): the writer
//! yields after every write, as an event loop would, so the requester and the owner's notify
//! handling interleave with it deterministically.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use rados_store::{Cluster, ClusterConfig, Gid, IoCtx, NotifyEvent, SimClock, WatchCtx};
use rbd_exclusive_lock::notify::{NotifyMessage, NotifyOp};
use rbd_ops::{CreateOptions, Image, OpenOptions, admin};
use serde::Serialize;

use super::{LatencySummary, new_histogram, parse_duration, progress};
use crate::CliError;

/// The JSON document `--json` prints, for `cephlock bench rbd-snap-forward --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"rbd-snap-forward\", \"backend\": \"embedded\", \"block_size\": 4096,
   \"phase_seconds\": f64,
   \"baseline\": {\"writes_without_snapshot\": W, \"local_snap_create\": L,
                \"writes_during_local_snapshot\": L},
   \"forwarded_snap_create\": {\"latency_us\": L, \"run_by_owner\": u64, \"owner_kept_lock\": bool,
                             \"notifies_per_snapshot\": f64, \"writes_during_snapshot\": L,
                             \"writes_outside_snapshot\": L, \"writes\": W},
   \"owner_write_stall_us\": {\"max\": f64, \"p99\": f64, \"baseline_max\": f64, \"baseline_p99\": f64},
   \"forwarded_vs_local_p50\": f64}
  L = {\"samples\", \"mean\", \"p50\", \"p99\", \"p999\", \"max\"} in microseconds.
  W = {\"writes\", \"seconds\", \"write_iops\", \"latency_us\": L}: the owner's 4 KiB writes.
  Each phase runs --duration seconds: the owner writing alone (the IOPS with the lock held),
  the owner snapshotting locally while writing, and the requester's forwarded snapshots while
  the owner writes. writes_during_snapshot are the owner's writes that overlapped a forwarded
  snap_create; the stall compares them with the writes of the first phase. run_by_owner counts
  forwarded snapshots whose ASYNC_COMPLETE came from the owner (the run fails unless that is all
  of them and the lock never moved); notifies_per_snapshot counts every notify, including the
  HEADER_UPDATE of the unmeasured snap_remove that follows each snapshot.";

/// Arguments of `bench rbd-snap-forward`.
#[derive(Args, Debug)]
pub(crate) struct SnapForwardArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Seconds of measurement per phase (three phases).
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = parse_duration)]
    duration: f64,
}

#[derive(Serialize)]
struct Writes {
    writes: u64,
    seconds: f64,
    write_iops: f64,
    latency_us: LatencySummary,
}

#[derive(Serialize)]
struct Baseline {
    writes_without_snapshot: Writes,
    local_snap_create: LatencySummary,
    writes_during_local_snapshot: LatencySummary,
}

#[derive(Serialize)]
struct Forwarded {
    latency_us: LatencySummary,
    run_by_owner: u64,
    owner_kept_lock: bool,
    notifies_per_snapshot: f64,
    writes_during_snapshot: LatencySummary,
    writes_outside_snapshot: LatencySummary,
    writes: Writes,
}

#[derive(Serialize)]
struct Stall {
    max: f64,
    p99: f64,
    baseline_max: f64,
    baseline_p99: f64,
}

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    backend: &'static str,
    block_size: u64,
    phase_seconds: f64,
    baseline: Baseline,
    forwarded_snap_create: Forwarded,
    owner_write_stall_us: Stall,
    forwarded_vs_local_p50: f64,
}

const IMAGE: &str = "bench";
const BLOCK: u64 = 4096;
/// The owner rewrites this many blocks in a loop (1 MiB, inside the first 4 MiB object).
const HOT_BLOCKS: u64 = 256;
/// Owner writes between two snapshots, so every phase also has writes outside a snapshot.
const WRITES_BETWEEN: u64 = 8;

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("rbd-snap-forward: {what}: {e}"))
}

/// Counts, per sender, the notifies that tell who ran an op and whether the lock moved.
#[derive(Default)]
struct Tally {
    completes: Mutex<Vec<Gid>>,
    lock_moves: AtomicU64,
}

/// A watcher that tallies notifies and acks each at once, as an idle watcher does.
struct Observer {
    io: IoCtx,
    oid: String,
    tally: Arc<Tally>,
}

impl WatchCtx for Observer {
    fn handle_notify(&self, ev: NotifyEvent) {
        match NotifyMessage::from_bytes(&ev.payload).ok().and_then(|m| m.op()) {
            Some(NotifyOp::AsyncComplete) => {
                self.tally.completes.lock().unwrap_or_else(|e| e.into_inner()).push(ev.notifier_gid);
            }
            Some(NotifyOp::ReleasedLock | NotifyOp::AcquiredLock) => {
                self.tally.lock_moves.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let (io, oid) = (self.io.clone(), self.oid.clone());
        tokio::spawn(async move {
            let _ = io.notify_ack(&oid, ev.notify_id, ev.handle, b"").await;
        });
    }

    fn handle_error(&self, _handle: u64, _error: rados_store::Error) {}
}

/// One owner write: when it started and how long it took.
type WriteLog = Arc<Mutex<Vec<(Instant, Duration)>>>;

/// The owner's write loop, until `stop`; each write is logged and followed by a yield.
fn spawn_writer(
    owner: Image,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    log: WriteLog,
) -> tokio::task::JoinHandle<Result<(), CliError>> {
    tokio::spawn(async move {
        let data = vec![0x5au8; BLOCK as usize];
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            owner.write_at((i % HOT_BLOCKS) * BLOCK, &data).await.map_err(|e| failed("owner write", e))?;
            log.lock().unwrap_or_else(|e| e.into_inner()).push((t, t.elapsed()));
            count.fetch_add(1, Ordering::Relaxed);
            i += 1;
            tokio::task::yield_now().await;
        }
        Ok(())
    })
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().min(u128::from(u64::MAX)) as u64);
}

fn writes_summary(log: &[(Instant, Duration)], seconds: f64) -> Writes {
    let mut h = new_histogram();
    for (_, d) in log {
        record(&mut h, *d);
    }
    Writes {
        writes: log.len() as u64,
        seconds,
        write_iops: log.len() as f64 / seconds.max(f64::MIN_POSITIVE),
        latency_us: LatencySummary::of(&h),
    }
}

/// Splits writes into those that overlapped one of `ops` (start, end) and the others.
fn split_writes(log: &[(Instant, Duration)], ops: &[(Instant, Instant)]) -> (Histogram<u64>, Histogram<u64>) {
    let (mut during, mut outside) = (new_histogram(), new_histogram());
    for &(start, d) in log {
        let end = start + d;
        let overlaps = ops.iter().any(|&(s, e)| start < e && end > s);
        record(if overlaps { &mut during } else { &mut outside }, d);
    }
    (during, outside)
}

/// The result of one snapshot phase.
struct SnapPhase {
    latency: Histogram<u64>,
    ops: Vec<(Instant, Instant)>,
    log: Vec<(Instant, Duration)>,
    seconds: f64,
    /// Snapshots after which the owner had sent one more ASYNC_COMPLETE (only forwarded ones).
    run_by_owner: u64,
}

/// Runs the owner's writer for `duration` while `snapper` creates (timed) and removes
/// (untimed, and run by the snapper itself without the lock: rbd §5.2) snapshots, pacing them `WRITES_BETWEEN` owner writes apart.
async fn snapshot_phase(
    owner: &Image,
    snapper: &Image,
    duration: Duration,
    tag: &str,
    tally: &Tally,
) -> Result<SnapPhase, CliError> {
    let owner_gid = owner.watcher().map_or(0, |w| w.ioctx().client_gid());
    let owner_completes = || {
        tally.completes.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|g| **g == owner_gid).count()
    };
    let mut run_by_owner = 0u64;
    let (stop, count, log) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), WriteLog::default());
    let writer = spawn_writer(owner.clone(), stop.clone(), count.clone(), log.clone());
    let mut latency = new_histogram();
    let mut ops = Vec::new();
    let started = Instant::now();
    let end = started + duration;
    let mut i = 0u64;
    while Instant::now() < end {
        let target = count.load(Ordering::Relaxed) + WRITES_BETWEEN;
        while count.load(Ordering::Relaxed) < target && !writer.is_finished() {
            tokio::task::yield_now().await;
        }
        if writer.is_finished() {
            break;
        }
        let name = format!("{tag}{i}");
        let completes_before = owner_completes();
        let t = Instant::now();
        snapper.snap_create(&name).await.map_err(|e| failed("snap_create", e))?;
        let done = Instant::now();
        if owner_completes() > completes_before {
            run_by_owner += 1;
        }
        record(&mut latency, done - t);
        ops.push((t, done));
        snapper.snap_remove(&name).await.map_err(|e| failed("snap_remove", e))?;
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.map_err(|e| failed("writer task", e))??;
    let seconds = started.elapsed().as_secs_f64();
    let log = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(SnapPhase { latency, ops, log, seconds, run_by_owner })
}

pub(super) fn run(args: &SnapForwardArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("starting the runtime", e))?;
    let duration = Duration::from_secs_f64(args.duration);
    let pb = progress(3);
    let report = rt.block_on(async {
        let clock = Arc::new(SimClock::new());
        let cluster = Cluster::with_clock(clock, ClusterConfig::default());
        cluster.create_pool("rbd").map_err(|e| failed("creating the pool", e))?;
        let connect = || cluster.connect().ioctx("rbd", "").map_err(|e| failed("connecting", e));
        let (owner_io, nova_io, obs_io) = (connect()?, connect()?, connect()?);
        admin::create(&owner_io, IMAGE, 1 << 30, &CreateOptions::default())
            .await
            .map_err(|e| failed("creating the image", e))?;
        let owner =
            Image::open(&owner_io, IMAGE, OpenOptions::default()).await.map_err(|e| failed("open", e))?;
        let nova =
            Image::open(&nova_io, IMAGE, OpenOptions::default()).await.map_err(|e| failed("open", e))?;
        let tally = Arc::new(Tally::default());
        let oid = admin::header_oid(owner.id());
        let observer = Observer { io: obs_io.clone(), oid: oid.clone(), tally: tally.clone() };
        obs_io.watch(&oid, Arc::new(observer)).await.map_err(|e| failed("watching", e))?;
        owner.write_at(0, &[1u8; BLOCK as usize]).await.map_err(|e| failed("first write", e))?;

        // Phase 1: the owner alone.
        pb.set_message("baseline: owner writes alone");
        let (stop, count, log) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), WriteLog::default());
        let writer = spawn_writer(owner.clone(), stop.clone(), count, log.clone());
        let started = Instant::now();
        while Instant::now() < started + duration && !writer.is_finished() {
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Relaxed);
        writer.await.map_err(|e| failed("writer task", e))??;
        let alone_log = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
        let alone = writes_summary(&alone_log, started.elapsed().as_secs_f64());
        pb.inc(1);

        // Phase 2: the owner snapshots itself (run locally, no notify round trip to a peer).
        pb.set_message("baseline: owner snapshots locally");
        let local = snapshot_phase(&owner, &owner, duration, "local-", &tally).await?;
        let (local_during, _) = split_writes(&local.log, &local.ops);
        pb.inc(1);

        // Phase 3: nova-compute's snapshots, forwarded to the owner.
        pb.set_message("forwarded snapshots");
        let moves_before = tally.lock_moves.load(Ordering::Relaxed);
        let notifies_before = cluster.notify_count();
        let fwd = snapshot_phase(&owner, &nova, duration, "fwd-", &tally).await?;
        let notifies = cluster.notify_count() - notifies_before;
        let by_owner = fwd.run_by_owner;
        let kept = tally.lock_moves.load(Ordering::Relaxed) == moves_before
            && owner.is_exclusive_lock_owner().await.map_err(|e| failed("owner check", e))?
            && !nova.is_exclusive_lock_owner().await.map_err(|e| failed("requester check", e))?;
        let (during, outside) = split_writes(&fwd.log, &fwd.ops);
        pb.inc(1);
        nova.close().await;
        owner.close().await;

        let samples = fwd.latency.len();
        if !kept || by_owner != samples {
            return Err(failed(
                "after the run",
                format!("{by_owner} of {samples} snapshots ran on the owner; lock kept: {kept}"),
            ));
        }
        let local_lat = LatencySummary::of(&local.latency);
        let fwd_lat = LatencySummary::of(&fwd.latency);
        let during = LatencySummary::of(&during);
        Ok::<_, CliError>(Report {
            workload: "rbd-snap-forward",
            backend: "embedded",
            block_size: BLOCK,
            phase_seconds: duration.as_secs_f64(),
            owner_write_stall_us: Stall {
                max: during.max,
                p99: during.p99,
                baseline_max: alone.latency_us.max,
                baseline_p99: alone.latency_us.p99,
            },
            forwarded_vs_local_p50: fwd_lat.p50 / local_lat.p50.max(f64::MIN_POSITIVE),
            baseline: Baseline {
                writes_without_snapshot: alone,
                local_snap_create: local_lat,
                writes_during_local_snapshot: LatencySummary::of(&local_during),
            },
            forwarded_snap_create: Forwarded {
                latency_us: fwd_lat,
                run_by_owner: by_owner,
                owner_kept_lock: kept,
                notifies_per_snapshot: notifies as f64 / samples.max(1) as f64,
                writes_during_snapshot: during,
                writes_outside_snapshot: LatencySummary::of(&outside),
                writes: writes_summary(&fwd.log, fwd.seconds),
            },
        })
    })?;
    pb.finish_and_clear();
    super::emit(args.json, &report, out, print_table)
}

fn print_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "rbd-snap-forward on the embedded cluster, 4 KiB owner writes (latencies in µs)")?;
    writeln!(
        out,
        "{:<36} {:>8} {:>10} {:>9} {:>9} {:>10}",
        "configuration", "samples", "ops/s", "p50", "p99", "max"
    )?;
    let row = |out: &mut dyn Write, name: &str, l: &LatencySummary, ops: f64| {
        writeln!(out, "{name:<36} {:>8} {ops:>10.0} {:>9.1} {:>9.1} {:>10.1}", l.samples, l.p50, l.p99, l.max)
    };
    let b = &r.baseline;
    let f = &r.forwarded_snap_create;
    let rate = |l: &LatencySummary| if l.mean > 0.0 { 1e6 / l.mean } else { 0.0 };
    row(
        out,
        "baseline: owner write, no snapshot",
        &b.writes_without_snapshot.latency_us,
        b.writes_without_snapshot.write_iops,
    )?;
    row(out, "baseline: local snap_create", &b.local_snap_create, rate(&b.local_snap_create))?;
    row(out, "  owner writes during it", &b.writes_during_local_snapshot, 0.0)?;
    row(out, "forwarded snap_create", &f.latency_us, rate(&f.latency_us))?;
    row(out, "  owner writes during it (stall)", &f.writes_during_snapshot, 0.0)?;
    row(out, "  owner writes outside it", &f.writes_outside_snapshot, f.writes.write_iops)?;
    writeln!(
        out,
        "forwarded / local p50: {:.2}; owner write stall max {:.1} µs vs {:.1} µs without snapshots; \
         {:.1} notifies per snapshot (with its removal); lock kept: {}",
        r.forwarded_vs_local_p50,
        r.owner_write_stall_us.max,
        r.owner_write_stall_us.baseline_max,
        f.notifies_per_snapshot,
        f.owner_kept_lock
    )?;
    writeln!(
        out,
        "(real single-host Ceph 16.2: the owner stalls 100-350 ms per forwarded snapshot, real-ceph §3)"
    )
}
