//! `cephlock bench rbd-pingpong`: how fast the exclusive lock of one image moves between
//! clients (rbd spec §3.5, anchors §1.4, §1.6).
//!
//! N automatic-policy handles of one image on the embedded cluster take the lock in turn: each
//! step is one complete cooperative hand-over (REQUEST_LOCK to the owner, its release and
//! RELEASED_LOCK, our cls_lock acquire and ACQUIRED_LOCK). The same run measures two
//! baselines on the same cluster: a notify round trip to one watcher (the messaging floor of a
//! hand-over, which needs at least two) and an uncontended cls_lock lock + unlock by one client
//! (its RADOS floor). A real single-host cluster hands over in about 20 ms (real-ceph §3).
//!
//! The cluster runs on a simulated clock that never advances: a live hand-over needs no timer,
//! so every figure is pure CPU and message cost, and a hand-over that needed a timeout would
//! hang instead of silently inflating the numbers.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use rados_store::cls_lock_client::{self, LockType};
use rados_store::{Cluster, ClusterConfig, IoCtx, NotifyEvent, SimClock, WatchCtx};
use rbd_exclusive_lock::{ExclusiveLock, ImageWatcher, LockConfig, NoImageHooks, NoNotifyHandler};
use serde::Serialize;

use super::{CommonArgs, LatencySummary, new_histogram, progress};
use crate::CliError;

/// The JSON document `--json` prints, for `cephlock bench rbd-pingpong --help`.
pub(super) const JSON_SHAPE: &str = "\
JSON OUTPUT (--json)
  {\"workload\": \"rbd-pingpong\", \"backend\": \"embedded\",
   \"baseline\": {\"notify_round_trip\": L, \"cls_lock_lock_unlock\": L},
   \"results\": [{\"clients\": u32, \"handovers\": u64, \"seconds\": f64, \"handovers_per_s\": f64,
                \"latency_us\": L, \"notifies_per_handover\": f64,
                \"vs_notify_round_trip\": f64}]}
  L = {\"samples\", \"mean\", \"p50\", \"p99\", \"p999\", \"max\"} in microseconds. latency_us is one
  hand-over, from the taker's acquire call to its completion. vs_notify_round_trip is the
  hand-over p50 divided by the notify round-trip p50. --clients N rotates the lock among N
  handles (at least 2).";

/// Arguments of `bench rbd-pingpong`.
#[derive(Args, Debug)]
pub(crate) struct PingpongArgs {
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Serialize)]
struct Baselines {
    notify_round_trip: LatencySummary,
    cls_lock_lock_unlock: LatencySummary,
}

#[derive(Serialize)]
struct PingpongResult {
    clients: u32,
    handovers: u64,
    seconds: f64,
    handovers_per_s: f64,
    latency_us: LatencySummary,
    notifies_per_handover: f64,
    vs_notify_round_trip: f64,
}

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    backend: &'static str,
    baseline: Baselines,
    results: Vec<PingpongResult>,
}

const IMAGE_ID: &str = "pingpong";

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("rbd-pingpong: {what}: {e}"))
}

pub(super) fn run(args: &PingpongArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("starting the runtime", e))?;
    let duration = args.common.duration();
    let counts: Vec<u32> = args.common.clients.iter().map(|&n| n.max(2)).collect();
    let pb = progress(2 + counts.len() as u64);
    let report = rt.block_on(async {
        pb.set_message("baseline: notify round trip");
        let notify_round_trip = notify_baseline(duration / 2).await?;
        pb.inc(1);
        pb.set_message("baseline: cls_lock lock + unlock");
        let cls_lock_lock_unlock = cls_lock_baseline(duration / 2).await?;
        pb.inc(1);
        let mut results = Vec::new();
        for &n in &counts {
            pb.set_message(format!("{n} clients"));
            let mut r = pingpong(n, duration).await?;
            r.vs_notify_round_trip = r.latency_us.p50 / notify_round_trip.p50.max(f64::MIN_POSITIVE);
            results.push(r);
            pb.inc(1);
        }
        Ok::<_, CliError>(Report {
            workload: "rbd-pingpong",
            backend: "embedded",
            baseline: Baselines { notify_round_trip, cls_lock_lock_unlock },
            results,
        })
    })?;
    pb.finish_and_clear();
    super::emit(args.common.json, &report, out, print_table)
}

fn print_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "rbd-pingpong on the embedded cluster (latencies in µs)")?;
    writeln!(
        out,
        "{:<28} {:>12} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "configuration", "ops/s", "p50", "p99", "p999", "notify/op", "×notify"
    )?;
    for (name, l) in [
        ("baseline: notify round trip", &r.baseline.notify_round_trip),
        ("baseline: cls lock+unlock", &r.baseline.cls_lock_lock_unlock),
    ] {
        let ops = if l.mean > 0.0 { 1e6 / l.mean } else { 0.0 };
        writeln!(
            out,
            "{name:<28} {ops:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10}",
            l.p50, l.p99, l.p999, "-", "-"
        )?;
    }
    for x in &r.results {
        writeln!(
            out,
            "{:<28} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>10.2} {:>10.1}",
            format!("hand-over, {} clients", x.clients),
            x.handovers_per_s,
            x.latency_us.p50,
            x.latency_us.p99,
            x.latency_us.p999,
            x.notifies_per_handover,
            x.vs_notify_round_trip
        )?;
    }
    Ok(())
}

/// A cluster with one pool and the image header object, on a clock that never moves.
async fn cluster() -> Result<(Arc<SimClock>, Cluster, IoCtx), CliError> {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").map_err(|e| failed("creating the pool", e))?;
    let io = cluster.connect().ioctx("rbd", "").map_err(|e| failed("opening the pool", e))?;
    io.create(&rbd_exclusive_lock::header_oid(IMAGE_ID), false)
        .await
        .map_err(|e| failed("creating the header", e))?;
    Ok((clock, cluster, io))
}

/// Acks every notify at once from a spawned task, as an idle image watcher does.
struct AckAtOnce(IoCtx, String);

impl WatchCtx for AckAtOnce {
    fn handle_notify(&self, ev: NotifyEvent) {
        let (io, oid) = (self.0.clone(), self.1.clone());
        tokio::spawn(async move {
            let _ = io.notify_ack(&oid, ev.notify_id, ev.handle, b"").await;
        });
    }

    fn handle_error(&self, _handle: u64, _error: rados_store::Error) {}
}

async fn notify_baseline(duration: Duration) -> Result<LatencySummary, CliError> {
    let (_clock, cluster, notifier) = cluster().await?;
    let watcher = cluster.connect().ioctx("rbd", "").map_err(|e| failed("opening the pool", e))?;
    let oid = rbd_exclusive_lock::header_oid(IMAGE_ID);
    watcher
        .watch(&oid, Arc::new(AckAtOnce(watcher.clone(), oid.clone())))
        .await
        .map_err(|e| failed("watching", e))?;
    let mut hist = new_histogram();
    timed_loop(duration, &mut hist, || async {
        notifier
            .notify(&oid, b"ping", Duration::from_secs(5))
            .await
            .map(drop)
            .map_err(|e| failed("notify", e))
    })
    .await?;
    Ok(LatencySummary::of(&hist))
}

async fn cls_lock_baseline(duration: Duration) -> Result<LatencySummary, CliError> {
    let (_clock, _cluster, io) = cluster().await?;
    let oid = rbd_exclusive_lock::header_oid(IMAGE_ID);
    let mut hist = new_histogram();
    timed_loop(duration, &mut hist, || async {
        cls_lock_client::lock(
            &io,
            &oid,
            "rbd_lock",
            LockType::Exclusive,
            "auto 1",
            "internal",
            "",
            Duration::ZERO,
            0,
        )
        .await
        .map_err(|e| failed("cls_lock lock", e))?;
        cls_lock_client::unlock(&io, &oid, "rbd_lock", "auto 1")
            .await
            .map_err(|e| failed("cls_lock unlock", e))
    })
    .await?;
    Ok(LatencySummary::of(&hist))
}

async fn pingpong(n: u32, duration: Duration) -> Result<PingpongResult, CliError> {
    let (clock, cluster, _io) = cluster().await?;
    let mut handles = Vec::new();
    for _ in 0..n {
        let io = cluster.connect().ioctx("rbd", "").map_err(|e| failed("opening the pool", e))?;
        let watcher = ImageWatcher::register(
            io,
            IMAGE_ID,
            clock.clone(),
            LockConfig::default(),
            Arc::new(NoNotifyHandler),
        )
        .await
        .map_err(|e| failed("registering the image watcher", e))?;
        handles.push(ExclusiveLock::create(watcher, Arc::new(NoImageHooks)).await);
    }
    handles[0].acquire_lock().await.map_err(|e| failed("first acquire", e))?;
    let notifies_before = cluster.notify_count();
    let mut hist = new_histogram();
    let mut next = 1usize;
    let started = Instant::now();
    let handovers = timed_loop(duration, &mut hist, || {
        let taker = &handles[next];
        next = (next + 1) % handles.len();
        async move { taker.acquire_lock().await.map_err(|e| failed("hand-over", e)) }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let notifies = cluster.notify_count() - notifies_before;
    let owners = handles.iter().filter(|h| h.is_lock_owner()).count();
    if owners != 1 {
        return Err(failed("after the run", format!("{owners} handles think they own the lock")));
    }
    for h in &handles {
        h.shut_down().await.map_err(|e| failed("shutting down", e))?;
    }
    Ok(PingpongResult {
        clients: n,
        handovers,
        seconds,
        handovers_per_s: handovers as f64 / seconds,
        latency_us: LatencySummary::of(&hist),
        notifies_per_handover: notifies as f64 / handovers.max(1) as f64,
        vs_notify_round_trip: 0.0,
    })
}

/// Runs `op` until `duration` of wall time has passed, recording each call's latency.
async fn timed_loop<F, Fut>(duration: Duration, hist: &mut Histogram<u64>, mut op: F) -> Result<u64, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let end = Instant::now() + duration;
    let mut n = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        op().await?;
        hist.saturating_record(t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
        n += 1;
    }
    Ok(n)
}
