//! Journal throughput and durability latency on the local-directory device (anchors §1.5,
//! §1.6 workload 6), beside an fdatasync-per-entry baseline measured in the same run.
//!
//! * `baseline/fdatasync_per_entry/<bytes>`: one writer appends a framed entry to a file with
//!   `pwrite` and calls `fdatasync` after each — what a journal without group commit costs.
//!   Measured before and again after the journal runs (`baseline_after`); the ratio uses both.
//! * `journal/<submitters>x<bytes>`: `submitters` tokio tasks each loop `submit` + `wait_safe`
//!   on an [`MdLog`] over a [`DirDevice`]; concurrent submitters share flushes. With one event
//!   in flight per submitter a flush can carry at most `submitters` events, so this closed loop
//!   is bounded by `submitters ×` the baseline.
//! * `journal_window8/16x<bytes>`: 16 submitters that each submit 8 events and then wait for
//!   the last (latency is per window).
//!
//! * `replay/dir_page_cache/<MiB>`: opening a 64 MiB journal of 4 KiB events (every crc checked,
//!   every event decoded), files in the page cache; throughput in bytes/s.
//!
//! Criterion reports events/s (one element = one durable event). After the groups, the bench
//! prints p50/p99 of `wait_safe` latency per configuration and the ratio to the baseline.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use mds_journal::metablob::{dir_state, full_state};
use mds_journal::*;
use rados_store::UTime;

const SUBMITTERS: [usize; 4] = [1, 4, 16, 64];
const SIZES: [usize; 2] = [512, 4096];

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "mds-journal-bench-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An EUpdate whose encoded payload is `bytes` long (padded with an xattr).
fn event_of_size(tid: u64, bytes: usize) -> LogEvent {
    let make = |pad: usize| {
        let mut mb = MetaBlob::default();
        let lump = mb.add_dir(DirFrag::whole(InodeNo::ROOT), Fnode::default(), dir_state::DIRTY);
        lump.full.push(FullDentry {
            name: format!("f{tid:016}"),
            inode: Inode {
                ino: InodeNo(0x10_0000 + tid),
                mode: Inode::S_IFREG | 0o644,
                nlink: 1,
                ..Inode::default()
            },
            xattrs: [("user.pad".to_owned(), vec![0x5a; pad])].into_iter().collect(),
            state: full_state::DIRTY | full_state::NEW,
            ..FullDentry::default()
        });
        LogEvent::Update(EUpdate {
            stamp: UTime { sec: 1, nsec: 0 },
            op_type: "create".into(),
            metablob: mb,
            cmapv: 0,
            reqid: Some(MetaReqId { name: rados_store::EntityName::client(4100), tid }),
            had_peers: false,
        })
    };
    let base = make(0).to_payload().len();
    make(bytes.saturating_sub(base))
}

/// Delegates to a device and counts flushes, so the report can show events per fdatasync.
#[derive(Debug)]
struct Counting<D> {
    inner: D,
    flushes: AtomicU64,
}

#[async_trait::async_trait]
impl<D: JournalDevice> JournalDevice for Counting<D> {
    async fn write(&self, object: &str, offset: u64, data: bytes::Bytes) -> Result<(), DeviceError> {
        self.inner.write(object, offset, data).await
    }
    async fn sync(&self, objects: &[String]) -> Result<(), DeviceError> {
        self.inner.sync(objects).await
    }
    async fn write_and_sync(&self, writes: Vec<device::ObjectWrite>) -> Result<(), DeviceError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_and_sync(writes).await
    }
    async fn write_full(&self, object: &str, data: bytes::Bytes) -> Result<(), DeviceError> {
        self.inner.write_full(object, data).await
    }
    async fn read(&self, object: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, DeviceError> {
        self.inner.read(object, offset, len).await
    }
    async fn stat(&self, object: &str) -> Result<Option<u64>, DeviceError> {
        self.inner.stat(object).await
    }
    async fn truncate(&self, object: &str, size: u64) -> Result<(), DeviceError> {
        self.inner.truncate(object, size).await
    }
    async fn remove(&self, object: &str) -> Result<bool, DeviceError> {
        self.inner.remove(object).await
    }
    async fn list(&self) -> Result<Vec<String>, DeviceError> {
        self.inner.list().await
    }
}

/// Everything measured for the closing table.
#[derive(Default)]
struct Report {
    lat: Latencies,
    rates: Rates,
    /// Events per flush, per journal configuration.
    batches: Mutex<BTreeMap<String, f64>>,
}

#[derive(Default)]
struct Latencies(Mutex<BTreeMap<String, Vec<Duration>>>);

impl Latencies {
    fn add(&self, key: &str, mut v: Vec<Duration>) {
        self.0.lock().unwrap().entry(key.to_owned()).or_default().append(&mut v);
    }
}

/// Events and seconds measured per configuration, over every sample criterion ran.
type Rates = Mutex<BTreeMap<String, (f64, f64)>>;

fn add_rate(rates: &Rates, key: &str, events: f64, elapsed: Duration) {
    let mut r = rates.lock().unwrap();
    let e = r.entry(key.to_owned()).or_insert((0.0, 0.0));
    e.0 += events;
    e.1 += elapsed.as_secs_f64();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn bench_baseline(c: &mut Criterion, report: &Report, group: &str) {
    let (lat, rates) = (&report.lat, &report.rates);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for &size in &SIZES {
        let scratch = Scratch::new("baseline");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(scratch.0.join("wal"))
            .unwrap();
        let payload = event_of_size(0, size).to_payload();
        let mut framed = Vec::new();
        let mut pos = 0u64;
        // Both baseline runs (before and after the journal runs) pool into one rate, so a disk
        // that got slower or faster during the run skews the ratio less.
        let key = format!("baseline/fdatasync_per_entry/{size}");
        g.bench_function(BenchmarkId::new("fdatasync_per_entry", size), |b| {
            b.iter_custom(|iters| {
                let mut lats = Vec::with_capacity(iters as usize);
                let t0 = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    framed.clear();
                    frame::encode_frame(StreamFormat::ResilientCrc, pos, &payload, &mut framed);
                    file.write_all_at(&framed, pos).unwrap();
                    file.sync_data().unwrap();
                    pos += framed.len() as u64;
                    lats.push(t.elapsed());
                }
                let el = t0.elapsed();
                add_rate(rates, &key, iters as f64, el);
                lat.add(&key, lats);
                el
            });
        });
    }
    g.finish();
}

/// Runs `k` submitters on a fresh journal; each submits `window` events and then waits for the
/// last of them (`window` 1 = closed loop: one event in flight per submitter).
fn bench_journal(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    report: &Report,
    group: &str,
    submitters: &[usize],
    window: u64,
) {
    let (lat, rates, batches) = (&report.lat, &report.rates, &report.batches);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for &size in &SIZES {
        for &k in submitters {
            let scratch = Scratch::new("journal");
            let counting = Arc::new(Counting {
                inner: DirDevice::open(&scratch.0).unwrap(),
                flushes: AtomicU64::new(0),
            });
            let dev: Arc<dyn JournalDevice> = counting.clone();
            let cfg = JournalConfig { max_segments: usize::MAX, ..JournalConfig::for_rank(0) };
            let log = rt.block_on(MdLog::create(dev, cfg)).unwrap();
            let mut events_done = 0u64;
            let events: Arc<Vec<LogEvent>> =
                Arc::new((0..k as u64).map(|i| event_of_size(i, size)).collect());
            let key = format!("{group}/{k}x{size}");
            g.bench_function(BenchmarkId::new(format!("{k}_submitters"), size), |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(k as u64 * window) * window;
                    let (el, lats) = rt.block_on(async {
                        let t0 = Instant::now();
                        let mut tasks = Vec::new();
                        for s in 0..k {
                            let log = log.clone();
                            let events = events.clone();
                            tasks.push(tokio::spawn(async move {
                                let mut lats = Vec::with_capacity((per / window) as usize);
                                for _ in 0..per / window {
                                    let t = Instant::now();
                                    let mut last = None;
                                    for _ in 0..window {
                                        last = Some(log.submit(events[s].clone()).unwrap());
                                    }
                                    log.wait_safe(&last.expect("window ≥ 1")).await.unwrap();
                                    lats.push(t.elapsed());
                                }
                                lats
                            }));
                        }
                        let mut all = Vec::new();
                        for t in tasks {
                            all.extend(t.await.unwrap());
                        }
                        (t0.elapsed(), all)
                    });
                    let done = per * k as u64;
                    events_done += done;
                    add_rate(rates, &key, done as f64, el);
                    lat.add(&key, lats);
                    // Scale to the iterations criterion asked for.
                    el.mul_f64(iters as f64 / done as f64)
                });
            });
            rt.block_on(log.close()).unwrap();
            let flushes = counting.flushes.load(Ordering::Relaxed).max(1);
            batches.lock().unwrap().insert(key, events_done as f64 / flushes as f64);
        }
    }
    g.finish();
}

/// Replay speed from the page cache: open (scan, check every crc, decode every event) a journal
/// of 4 KiB events on the local-directory device.
fn bench_replay(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let scratch = Scratch::new("replay");
    let dev: Arc<dyn JournalDevice> = Arc::new(DirDevice::open(&scratch.0).unwrap());
    let cfg = JournalConfig { max_segments: usize::MAX, ..JournalConfig::for_rank(0) };
    let bytes = rt.block_on(async {
        let log = MdLog::create(dev.clone(), cfg.clone()).await.unwrap();
        let ev = event_of_size(1, 4096);
        for _ in 0..16_384 {
            log.submit(ev.clone()).unwrap();
        }
        log.close().await.unwrap();
        let st = log.status();
        st.write_pos - st.expire_pos
    });
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::new("dir_page_cache", bytes >> 20), |b| {
        b.iter(|| {
            rt.block_on(async {
                let (log, replay) = MdLog::open(dev.clone(), cfg.clone()).await.unwrap();
                assert_eq!(replay.bytes, bytes);
                log.abandon().await;
            })
        });
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = Report::default();
    bench_baseline(&mut c, &report, "baseline");
    bench_journal(&mut c, &rt, &report, "journal", &SUBMITTERS, 1);
    // Each submitter keeps 8 events in flight (an MDS with early replies does not wait for one
    // request to be safe before journaling the next).
    bench_journal(&mut c, &rt, &report, "journal_window8", &[16], 8);
    bench_baseline(&mut c, &report, "baseline_after");
    bench_replay(&mut c, &rt);
    c.final_summary();

    let rates: BTreeMap<String, f64> =
        report.rates.into_inner().unwrap().into_iter().map(|(k, (n, secs))| (k, n / secs)).collect();
    let lat = report.lat.0.into_inner().unwrap();
    let batches = report.batches.into_inner().unwrap();
    if lat.is_empty() {
        return;
    }
    eprintln!(
        "\n{:<36} {:>12} {:>10} {:>10} {:>10} {:>8} {:>10}",
        "configuration", "events/s", "p50 µs", "p99 µs", "samples", "×base", "ev/flush"
    );
    for (key, mut v) in lat {
        v.sort();
        let size = key.rsplit(['/', 'x']).next().unwrap_or("");
        let base = rates.get(&format!("baseline/fdatasync_per_entry/{size}")).copied().unwrap_or(f64::NAN);
        let rate = rates.get(&key).copied().unwrap_or(f64::NAN);
        let per_flush = batches.get(&key).copied().unwrap_or(1.0);
        eprintln!(
            "{:<36} {:>12.0} {:>10.0} {:>10.0} {:>10} {:>8.1} {:>10.1}",
            key,
            rate,
            percentile(&v, 0.5).as_secs_f64() * 1e6,
            percentile(&v, 0.99).as_secs_f64() * 1e6,
            v.len(),
            rate / base,
            per_flush
        );
    }
}
