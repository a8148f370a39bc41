//! The RBD half of the simulator: K clients on one image, with crashes and hangs.
//!
//! Each step the seeded scheduler either injects a fault (a client crash, `kill_client`, or a
//! hang, `suspend_client` then later `resume_client`, rbd §7.5), moves the simulated clock, or
//! starts one operation on an idle client: a small write inside one object, a read, a user flush,
//! an explicit `lock_acquire`/`lock_release` (rbd §2.12), or, when every client is idle, a
//! `snap_create` or a grow `resize` (forwarded to the owner, rbd §5.1). Operations run as tokio
//! tasks on one thread with paused time, one at most per client, so writers race for the lock
//! exactly as VMs do. After every step the invariants of [`super::invariants`] are checked.
//!
//! The run has two phases (STYLE.md, openraft's fuzzer): a *safety* phase with faults, then a
//! *liveness* phase without them in which every pending operation must finish within
//! [`OP_BOUND_S`] simulated seconds and every client must be able to write again.
//!
//! Writes never cross an object boundary: a write the store applied is then either wholly
//! acknowledged or wholly rejected, so the model never has to guess about torn, unacknowledged
//! writes. Reads and writes stay inside the initial size so a peer's stale size cannot clip them.
//!
//! CI runs a fixed batch (`tests/sim_rbd.rs`); a soak is one command,
//! `cargo run --release -p cephlock -- sim rbd --seeds 0..10000`, which prints every failing
//! seed with the command that replays it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rados_store::cls_lock_client::get_lock_info;
use rados_store::{Cluster, ClusterConfig, EntityAddr, IoCtx, SimClock};
use rbd_ops::{CreateOptions, Image, LockMode, OpenOptions, admin};
use tokio::task::JoinHandle;

use super::invariants::{self, WriteAck};
use super::model::ImageModel;
use super::trace::Trace;
use super::{Prng, Violation};

const POOL: &str = "rbd";
const IMAGE: &str = "sim";
/// 4 KiB objects (the smallest order librbd accepts) keep every full-image read cheap.
const ORDER: u8 = 12;
const OBJ_BYTES: u64 = 1 << ORDER;
/// The created size; all reads and writes stay inside it.
const INITIAL_SIZE_BYTES: u64 = 4 * OBJ_BYTES;
/// Grows stop here.
const MAX_SIZE_BYTES: u64 = 8 * OBJ_BYTES;
/// How long, in simulated seconds, any operation may stay pending once faults are off. It covers
/// a watch timeout (30 s), a few notify timeouts (10 s each) and the lock request retries.
pub const OP_BOUND_S: u64 = 300;
const LOCK_NAME: &str = "rbd_lock";
/// How often the safety phase waits for every in-flight operation, so that the full-image
/// comparison (which needs a quiet image) runs at least this often.
const QUIESCE_EVERY_STEPS: u64 = 16;

/// Which fault classes the safety phase injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Client crash: `kill_client`, then the clock passes the watch timeout.
    pub crash: bool,
    /// Client hang: `suspend_client`, later `resume_client`; the client may wake up fenced.
    pub hang: bool,
}

impl Faults {
    /// Every fault class.
    pub const ALL: Faults = Faults { crash: true, hang: true };
    /// Crashes only.
    pub const CRASH_ONLY: Faults = Faults { crash: true, hang: false };
    /// Hangs only.
    pub const HANG_ONLY: Faults = Faults { crash: false, hang: true };
    /// No faults (the run is then a plain concurrency test).
    pub const NONE: Faults = Faults { crash: false, hang: false };

    /// Parses a comma-separated list of `crash`, `hang`, `all` or `none`.
    pub fn parse(list: &str) -> Result<Faults, String> {
        let mut f = Faults::NONE;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "crash" => f.crash = true,
                "hang" => f.hang = true,
                "all" => f = Faults::ALL,
                "none" => f = Faults::NONE,
                other => return Err(format!("unknown RBD fault class {other:?} (crash, hang, all, none)")),
            }
        }
        Ok(f)
    }

    fn as_list(&self) -> String {
        match (self.crash, self.hang) {
            (true, true) => "crash,hang".into(),
            (true, false) => "crash".into(),
            (false, true) => "hang".into(),
            (false, false) => "none".into(),
        }
    }
}

/// A deliberate bug the simulator can inject, to show the invariants catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedBug {
    /// About one write in ten from a non-owner skips the lock gate (rbd §2.11) and writes the
    /// data object directly.
    UngatedWrite,
    /// About one write in ten is acknowledged without reaching the store (a cache that loses
    /// acknowledged data); only the model comparisons can see it.
    LostWrite,
}

/// One simulator run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Determines every choice of the run.
    pub seed: u64,
    /// RBD clients (image handles on separate RADOS clients).
    pub clients: usize,
    /// Scheduler steps in the safety phase; the liveness phase runs a quarter as many.
    pub ops: usize,
    /// Fault classes of the safety phase.
    pub faults: Faults,
    /// A bug to inject (tests of the checker only).
    pub bug: Option<InjectedBug>,
    /// Where to write the JSON-lines trace (docs/trace-format.md).
    pub trace: Option<PathBuf>,
    /// A fail-safe on real time. A livelock that never advances simulated time (tasks that keep
    /// each other busy at one instant) never lets the paused runtime go idle, so no simulated
    /// bound can fire; past this budget the run is reported as [`LIVELOCK`] and its thread is
    /// abandoned, still spinning (callers should stop running seeds in that process).
    pub wall_budget: Duration,
}

/// The invariant name of a run that exceeded [`SimConfig::wall_budget`].
pub const LIVELOCK: &str = "the run makes progress in simulated time (liveness; rbd §3.5 retries)";

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            clients: 3,
            ops: 150,
            faults: Faults::ALL,
            bug: None,
            trace: None,
            wall_budget: Duration::from_secs(120),
        }
    }
}

impl SimConfig {
    /// The command line that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -p cephlock -- sim rbd --seed {} --clients {} --ops {} --faults {}",
            self.seed,
            self.clients,
            self.ops,
            self.faults.as_list()
        )
    }
}

/// What a run did and, if it failed, the first violation.
#[derive(Debug, Clone, Default)]
pub struct SimOutcome {
    /// The seed that was run.
    pub seed: u64,
    /// Scheduler steps taken (both phases).
    pub steps: u64,
    /// Simulated seconds that passed.
    pub sim_time_s: u64,
    /// Writes acknowledged to their caller.
    pub writes_accepted: u64,
    /// Writes that returned an error.
    pub writes_rejected: u64,
    /// Rejected writes whose client was blocklisted at the time: fencing at work (rbd §2.13).
    pub writes_refused_fenced: u64,
    /// Client crashes injected.
    pub crashes: u64,
    /// Client hangs injected.
    pub hangs: u64,
    /// Snapshots taken.
    pub snaps: u64,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
}

impl SimOutcome {
    /// Whether every invariant held in both phases.
    pub fn is_ok(&self) -> bool {
        self.violation.is_none()
    }
}

/// Runs one seed on its own single-threaded runtime with paused tokio time. Nothing under test
/// uses tokio's clock, so paused time only makes "every task is idle" observable; simulated time
/// moves only when the scheduler says so.
pub fn run(cfg: SimConfig) -> SimOutcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = cfg.clone();
    let spawned = std::thread::Builder::new().name(format!("sim-rbd-{}", cfg.seed)).spawn(move || {
        let _ = tx.send(run_on_this_thread(inner));
    });
    if let Err(e) = spawned {
        return setup_failure(&cfg, format!("simulator thread: {e}"));
    }
    match rx.recv_timeout(cfg.wall_budget) {
        Ok(out) => out,
        Err(_) => SimOutcome {
            seed: cfg.seed,
            violation: Some(Violation {
                step: 0,
                invariant: LIVELOCK,
                detail: format!(
                    "no result after {} s of real time: tasks keep running without moving the simulated clock",
                    cfg.wall_budget.as_secs()
                ),
            }),
            ..SimOutcome::default()
        },
    }
}

fn run_on_this_thread(cfg: SimConfig) -> SimOutcome {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build() {
        Ok(rt) => rt,
        Err(e) => return setup_failure(&cfg, format!("tokio runtime: {e}")),
    };
    rt.block_on(async {
        // Hang guard: with paused time this fires as soon as every task is blocked for good.
        match tokio::time::timeout(Duration::from_secs(24 * 3600), run_async(&cfg)).await {
            Ok(out) => out,
            Err(_) => setup_failure(&cfg, "every task blocked: the run deadlocked".into()),
        }
    })
}

fn setup_failure(cfg: &SimConfig, detail: String) -> SimOutcome {
    SimOutcome {
        seed: cfg.seed,
        violation: Some(Violation { step: 0, invariant: "the simulator runs", detail }),
        ..SimOutcome::default()
    }
}

async fn run_async(cfg: &SimConfig) -> SimOutcome {
    let mut sim = match Sim::new(cfg).await {
        Ok(s) => s,
        Err(e) => return setup_failure(cfg, e),
    };
    let result = sim.run_phases().await;
    sim.trace.finish();
    sim.out.violation = result.err();
    sim.out.sim_time_s = sim.now_s().saturating_sub(sim.start_s);
    sim.out.clone()
}

/// Writes acknowledged or refused so far; tasks push in completion order, which (with one
/// thread) is the order the store applied them.
#[derive(Default)]
struct WriteLog {
    entries: Vec<WriteAck>,
    /// Writes pushed since the start (entries drained by the driver included).
    total: usize,
}

type SharedLog = Arc<Mutex<WriteLog>>;

fn log_total(log: &SharedLog) -> usize {
    log.lock().unwrap_or_else(|e| e.into_inner()).total
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Live,
    Hung { resume_at_step: u64 },
    Dead { reopen_at_step: u64 },
}

struct Slot {
    img: Option<Image>,
    gid: u64,
    addr: Option<EntityAddr>,
    state: SlotState,
    pending: Option<Pending>,
    /// Set once `lock_acquire` switched the handle to the standard policy (rbd §2.12).
    standard: bool,
}

enum OpResult {
    Write,
    Read { off: u64, start: usize, end: usize, data: Option<Vec<u8>> },
    LockAcquire { ok: bool },
    Other,
}

struct Pending {
    kind: &'static str,
    started_s: u64,
    task: JoinHandle<OpResult>,
}

struct Sim {
    cfg: SimConfig,
    rng: Prng,
    clock: Arc<SimClock>,
    cluster: Cluster,
    admin: IoCtx,
    header: String,
    data_prefix: String,
    watch_timeout: Duration,
    slots: Vec<Slot>,
    model: ImageModel,
    log: SharedLog,
    acked: Vec<WriteAck>,
    trace: Trace,
    step: u64,
    start_s: u64,
    snap_seq: u64,
    out: SimOutcome,
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

impl Sim {
    async fn new(cfg: &SimConfig) -> Result<Sim, String> {
        let clock = Arc::new(SimClock::new());
        let config = ClusterConfig::default();
        let watch_timeout = config.watch_timeout;
        let cluster = Cluster::with_clock(clock.clone(), config);
        cluster.create_pool(POOL).map_err(|e| format!("create pool: {e}"))?;
        let admin = cluster.connect().ioctx(POOL, "").map_err(|e| format!("ioctx: {e}"))?;
        let opts = CreateOptions { order: ORDER, features: rbd_ops::DEFAULT_FEATURES };
        admin::create(&admin, IMAGE, INITIAL_SIZE_BYTES, &opts).await.map_err(|e| format!("create: {e}"))?;
        let trace = match &cfg.trace {
            Some(path) => {
                let f = File::create(path).map_err(|e| format!("trace {}: {e}", path.display()))?;
                Trace::to_writer(Box::new(BufWriter::new(f)))
            }
            None => Trace::default(),
        };
        let start_s = u64::from(clock.now().sec);
        let mut sim = Sim {
            cfg: cfg.clone(),
            rng: Prng::new(cfg.seed),
            clock,
            cluster,
            admin,
            header: String::new(),
            data_prefix: String::new(),
            watch_timeout,
            slots: Vec::new(),
            model: ImageModel::new(INITIAL_SIZE_BYTES),
            log: SharedLog::default(),
            acked: Vec::new(),
            trace,
            step: 0,
            start_s,
            snap_seq: 0,
            out: SimOutcome { seed: cfg.seed, ..SimOutcome::default() },
        };
        for _ in 0..cfg.clients.max(1) {
            let slot = sim.open_slot().await?;
            sim.slots.push(slot);
        }
        let img = sim.slots[0].img.as_ref().ok_or("first client has no image")?;
        sim.header = format!("rbd_header.{}", img.id());
        let info = img.info().await.map_err(|e| format!("info: {e}"))?;
        sim.data_prefix = info.block_name_prefix;
        Ok(sim)
    }

    async fn open_slot(&mut self) -> Result<Slot, String> {
        let io = self.cluster.connect().ioctx(POOL, "").map_err(|e| format!("ioctx: {e}"))?;
        let gid = io.client_gid();
        let addr = self.cluster.client_addr(gid);
        let task = {
            let io = io.clone();
            tokio::spawn(async move { Image::open(&io, IMAGE, OpenOptions::default()).await })
        };
        if !self.drive(&task, OP_BOUND_S).await {
            task.abort();
            return Err(format!("client.{gid}: open did not finish within {OP_BOUND_S} s"));
        }
        let img = task.await.map_err(|e| format!("open task: {e}"))?.map_err(|e| format!("open: {e}"))?;
        Ok(Slot { img: Some(img), gid, addr, state: SlotState::Live, pending: None, standard: false })
    }

    /// Moves simulated time one second at a time until `task` finishes or `bound_s` passes.
    async fn drive<T>(&self, task: &JoinHandle<T>, bound_s: u64) -> bool {
        for _ in 0..bound_s {
            settle().await;
            if task.is_finished() {
                return true;
            }
            self.advance_s(1).await;
        }
        settle().await;
        task.is_finished()
    }

    async fn advance_s(&self, secs: u64) {
        for _ in 0..secs {
            settle().await;
            self.clock.advance(Duration::from_secs(1));
            settle().await;
        }
    }

    fn now_s(&self) -> u64 {
        u64::from(self.clock.now().sec)
    }

    async fn run_phases(&mut self) -> Result<(), Violation> {
        // Safety: faults on, invariants after every step.
        for _ in 0..self.cfg.ops {
            self.step += 1;
            self.wake_and_reopen(false).await?;
            self.safety_step().await?;
            self.check_step().await?;
            if self.step.is_multiple_of(QUIESCE_EVERY_STEPS) {
                // Let everything in flight finish (faults stay as they are: hung clients stay
                // hung) so the full-image comparison of every live client runs regularly.
                self.drain().await?;
                self.check_step().await?;
            }
        }
        // Liveness: faults off; everyone comes back and every operation must finish.
        self.wake_and_reopen(true).await?;
        for _ in 0..(self.cfg.ops / 4).max(4) {
            self.step += 1;
            self.wake_and_reopen(false).await?;
            self.start_random_op().await?;
            let secs = self.rng.below(2);
            self.advance_s(secs).await;
            self.check_step().await?;
        }
        self.drain().await?;
        self.check_step().await?;
        self.everyone_writes().await?;
        self.check_step().await?;
        self.final_checks().await?;
        self.out.steps = self.step;
        Ok(())
    }

    async fn safety_step(&mut self) -> Result<(), Violation> {
        let r = self.rng.below(100);
        if self.cfg.faults.crash && r < 3 {
            self.crash().await;
        } else if self.cfg.faults.hang && (3..6).contains(&r) {
            self.hang().await;
        } else if r < 16 {
            let secs = 1 + self.rng.below(5);
            self.advance_s(secs).await;
        } else {
            self.start_random_op().await?;
        }
        Ok(())
    }

    fn live_indices(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state == SlotState::Live && self.slots[i].img.is_some())
            .collect()
    }

    fn pick_live(&mut self) -> Option<usize> {
        let live = self.live_indices();
        if live.is_empty() {
            return None;
        }
        Some(live[self.rng.below(live.len() as u64) as usize])
    }

    /// rbd §7.5: a client dies; its lock stays until a peer breaks it after the watch timeout.
    async fn crash(&mut self) {
        let Some(i) = self.pick_live() else { return };
        let gid = self.slots[i].gid;
        // A kill makes every later op of that client fail, so an aborted write never lands.
        let _ = self.cluster.kill_client(gid);
        settle().await;
        self.collect().await;
        if let Some(p) = self.slots[i].pending.take() {
            p.task.abort();
        }
        self.slots[i].img = None;
        self.out.crashes += 1;
        let reopen_at_step = self.step + 3 + self.rng.below(15);
        self.slots[i].state = SlotState::Dead { reopen_at_step };
        self.advance_s(self.watch_timeout.as_secs() + 1).await;
    }

    /// rbd §2.13: a client hangs; if a peer takes the lock meanwhile it wakes up blocklisted.
    async fn hang(&mut self) {
        let Some(i) = self.pick_live() else { return };
        if self.cluster.suspend_client(self.slots[i].gid).is_err() {
            return;
        }
        self.out.hangs += 1;
        let resume_at_step = self.step + 2 + self.rng.below(12);
        self.slots[i].state = SlotState::Hung { resume_at_step };
        // Half the hangs outlast the watch timeout, so peers can declare the owner dead.
        let secs = if self.rng.chance(50) { self.watch_timeout.as_secs() + 1 } else { 2 };
        self.advance_s(secs).await;
    }

    /// Resumes hung clients and reopens crashed or fenced ones when due (`all`: now).
    async fn wake_and_reopen(&mut self, all: bool) -> Result<(), Violation> {
        for i in 0..self.slots.len() {
            let state = self.slots[i].state;
            match state {
                SlotState::Hung { resume_at_step } if all || self.step >= resume_at_step => {
                    let _ = self.cluster.resume_client(self.slots[i].gid);
                    self.slots[i].state = SlotState::Live;
                    settle().await;
                }
                SlotState::Dead { reopen_at_step } if all || self.step >= reopen_at_step => {
                    self.reopen(i).await?;
                }
                // The application reopens a fenced image (rbd §2.13), though not at once, so the
                // fenced handle first gets a chance to try (and fail) some writes.
                SlotState::Live
                    if self.slots[i].pending.is_none()
                        && self.is_fenced(i)
                        && (all || self.rng.chance(20)) =>
                {
                    self.reopen(i).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn is_fenced(&self, i: usize) -> bool {
        self.slots[i].addr.as_ref().is_some_and(|a| self.cluster.is_blocklisted(a))
    }

    async fn reopen(&mut self, i: usize) -> Result<(), Violation> {
        if let Some(p) = self.slots[i].pending.take() {
            p.task.abort();
        }
        if let Some(old) = self.slots[i].img.take() {
            // The old handle is fenced or dead; killing its RADOS client stops its background
            // work, like the process exiting.
            let gid = old.watcher().map(|w| w.ioctx().client_gid()).unwrap_or(self.slots[i].gid);
            let _ = self.cluster.kill_client(gid);
        }
        match self.open_slot().await {
            Ok(slot) => {
                self.slots[i] = slot;
                Ok(())
            }
            Err(detail) => Err(Violation {
                step: self.step,
                invariant: "a client can reopen the image (liveness)",
                detail,
            }),
        }
    }

    async fn start_random_op(&mut self) -> Result<(), Violation> {
        let idle: Vec<usize> =
            self.live_indices().into_iter().filter(|&i| self.slots[i].pending.is_none()).collect();
        if idle.is_empty() {
            self.advance_s(1).await;
            return Ok(());
        }
        let i = idle[self.rng.below(idle.len() as u64) as usize];
        let all_idle = self.slots.iter().all(|s| s.pending.is_none());
        let r = self.rng.below(100);
        match r {
            0..45 => self.start_write(i),
            45..70 => self.start_read(i),
            70..78 => self.start_simple(i, "flush"),
            78..82 => self.start_simple(i, "lock_acquire"),
            82..90 => self.start_simple(i, "lock_release"),
            90..95 if all_idle => return self.snap_create(i).await,
            95..100 if all_idle => return self.resize(i).await,
            _ => self.start_read(i),
        }
        Ok(())
    }

    fn start_write(&mut self, i: usize) {
        let Some(img) = self.slots[i].img.clone() else { return };
        let objno = self.rng.below(INITIAL_SIZE_BYTES / OBJ_BYTES);
        let len = 1 + self.rng.below(64);
        let in_obj = self.rng.below(OBJ_BYTES - len);
        let tag = self.rng.next_u64() as u8;
        let data: Vec<u8> = (0..len).map(|j| tag ^ (j as u8).wrapping_mul(7)).collect();
        let off = objno * OBJ_BYTES + in_obj;
        let bypass = self.cfg.bug == Some(InjectedBug::UngatedWrite) && self.rng.chance(10);
        let lose = self.cfg.bug == Some(InjectedBug::LostWrite) && self.rng.chance(10);
        let oid = format!("{}.{objno:016x}", self.data_prefix);
        let (gid, addr) = (self.slots[i].gid, self.slots[i].addr);
        let (admin, header, cluster, log) =
            (self.admin.clone(), self.header.clone(), self.cluster.clone(), self.log.clone());
        let task = tokio::spawn(async move {
            let ok = if bypass && !img.is_exclusive_lock_owner().await.unwrap_or(false) {
                // The injected bug: straight to the data object, past the lock gate.
                match img.watcher() {
                    Some(w) => w.ioctx().write(&oid, in_obj, &data).await.is_ok(),
                    None => false,
                }
            } else if lose {
                // The injected bug: acknowledged after the lock gate, never written.
                img.flush().await.is_ok()
            } else {
                img.write_at(off, &data).await.is_ok()
            };
            let owner_at_ack = lock_owner(&admin, &header).await.ok().flatten();
            let blocklisted_at_ack = addr.as_ref().is_some_and(|a| cluster.is_blocklisted(a));
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            l.entries.push(WriteAck { gid, off, data, accepted: ok, owner_at_ack, blocklisted_at_ack });
            l.total += 1;
            OpResult::Write
        });
        self.slots[i].pending = Some(Pending { kind: "write", started_s: self.now_s(), task });
    }

    fn start_read(&mut self, i: usize) {
        let Some(img) = self.slots[i].img.clone() else { return };
        let off = self.rng.below(INITIAL_SIZE_BYTES - 1);
        let len = 1 + self.rng.below((INITIAL_SIZE_BYTES - off).min(2 * OBJ_BYTES));
        let log = self.log.clone();
        let task = tokio::spawn(async move {
            let start = log_total(&log);
            let data = img.read_at(off, len).await.ok();
            let end = log_total(&log);
            OpResult::Read { off, start, end, data }
        });
        self.slots[i].pending = Some(Pending { kind: "read", started_s: self.now_s(), task });
    }

    fn start_simple(&mut self, i: usize, kind: &'static str) {
        let Some(img) = self.slots[i].img.clone() else { return };
        let task = tokio::spawn(async move {
            match kind {
                "flush" => {
                    let _ = img.flush().await;
                    OpResult::Other
                }
                "lock_acquire" => {
                    OpResult::LockAcquire { ok: img.lock_acquire(LockMode::Exclusive).await.is_ok() }
                }
                _ => {
                    let _ = img.lock_release().await;
                    OpResult::Other
                }
            }
        });
        if kind == "lock_acquire" {
            // The policy switch happens at the call, whatever the outcome (rbd §2.12).
            self.slots[i].standard = true;
        }
        self.slots[i].pending = Some(Pending { kind, started_s: self.now_s(), task });
    }

    /// Runs a maintenance op to completion while no other op is in flight, then reconciles the
    /// model with what the header says happened (an op can land and still report an error, e.g.
    /// when its requester timed out).
    async fn run_maintenance(&mut self, i: usize, task: JoinHandle<()>, what: &str) -> Result<(), Violation> {
        if !self.drive(&task, OP_BOUND_S).await {
            return Err(Violation {
                step: self.step,
                invariant: "every operation completes within the bound (liveness)",
                detail: format!("{what} on client.{} pending after {OP_BOUND_S} s", self.slots[i].gid),
            });
        }
        Ok(())
    }

    async fn header_truth(&self) -> Option<(u64, Vec<String>)> {
        let io = self.cluster.connect().ioctx(POOL, "").ok()?;
        let ro = OpenOptions { read_only: true, ..OpenOptions::default() };
        let img = Image::open(&io, IMAGE, ro).await.ok()?;
        let out = (img.size(), img.snaps().into_iter().map(|s| s.name).collect());
        img.close().await;
        Some(out)
    }

    async fn snap_create(&mut self, i: usize) -> Result<(), Violation> {
        let Some(img) = self.slots[i].img.clone() else { return Ok(()) };
        self.snap_seq += 1;
        let name = format!("s{}", self.snap_seq);
        let task = {
            let name = name.clone();
            tokio::spawn(async move {
                let _ = img.snap_create(&name).await;
            })
        };
        self.run_maintenance(i, task, "snap_create").await?;
        self.collect().await;
        if self.header_truth().await.is_some_and(|(_, snaps)| snaps.contains(&name)) {
            self.model.snap(&name);
            self.out.snaps += 1;
        }
        Ok(())
    }

    async fn resize(&mut self, i: usize) -> Result<(), Violation> {
        let Some(img) = self.slots[i].img.clone() else { return Ok(()) };
        let size = self.model.head.len() as u64;
        if size >= MAX_SIZE_BYTES {
            return Ok(());
        }
        let new_size = size + OBJ_BYTES;
        let task = tokio::spawn(async move {
            let _ = img.resize(new_size).await;
        });
        self.run_maintenance(i, task, "resize").await?;
        self.collect().await;
        if let Some((truth, _)) = self.header_truth().await {
            self.model.resize(truth);
        }
        Ok(())
    }

    /// Gathers finished operations and folds accepted writes into the model, checking each read
    /// against the model as it stood when the read ran.
    async fn collect(&mut self) -> Vec<(u64, u64, Vec<u8>, usize)> {
        let mut reads = Vec::new();
        for i in 0..self.slots.len() {
            let done = self.slots[i].pending.as_ref().is_some_and(|p| p.task.is_finished());
            if !done {
                continue;
            }
            let Some(p) = self.slots[i].pending.take() else { continue };
            match p.task.await {
                Ok(OpResult::Read { off, start, end, data: Some(data) }) if start == end => {
                    reads.push((self.slots[i].gid, off, data, end));
                }
                Ok(OpResult::LockAcquire { ok }) => {
                    let _ = ok;
                }
                _ => {}
            }
        }
        reads
    }

    async fn check_step(&mut self) -> Result<(), Violation> {
        settle().await;
        let reads = self.collect().await;
        // Writes, in the order the store took them, interleaved with the reads they bracket.
        let (entries, total) = {
            let mut l = self.log.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut l.entries), l.total)
        };
        let first = total - entries.len();
        let mut reads_by_point: BTreeMap<usize, Vec<(u64, u64, Vec<u8>)>> = BTreeMap::new();
        for (gid, off, data, at) in reads {
            reads_by_point.entry(at).or_default().push((gid, off, data));
        }
        for (k, w) in entries.into_iter().enumerate() {
            for (gid, off, data) in reads_by_point.remove(&(first + k)).unwrap_or_default() {
                invariants::read_matches_model(self.step, gid, off, &data, &self.model)?;
            }
            self.trace.write(self.step, IMAGE, w.gid, w.accepted);
            invariants::write_accepted_only_from_owner(self.step, &w)?;
            if w.accepted {
                self.out.writes_accepted += 1;
                self.model.write(w.off, &w.data);
                self.acked.push(w);
            } else {
                self.out.writes_rejected += 1;
                if w.blocklisted_at_ack {
                    self.out.writes_refused_fenced += 1;
                }
            }
        }
        for (_, rs) in reads_by_point {
            for (gid, off, data) in rs {
                invariants::read_matches_model(self.step, gid, off, &data, &self.model)?;
            }
        }
        self.check_owners().await?;
        if self.slots.iter().all(|s| s.pending.is_none()) {
            self.check_live_reads().await?;
        }
        Ok(())
    }

    async fn check_owners(&mut self) -> Result<(), Violation> {
        let lockers = lock_lockers(&self.admin, &self.header).await.map_err(|detail| Violation {
            step: self.step,
            invariant: "the header's lock can be read",
            detail,
        })?;
        self.trace.owner(self.step, IMAGE, lockers.first().copied());
        let mut owners = Vec::new();
        for i in self.live_indices() {
            if let Some(img) = &self.slots[i].img
                && img.is_exclusive_lock_owner().await.unwrap_or(false)
            {
                owners.push(self.slots[i].gid);
            }
        }
        invariants::at_most_one_owner(self.step, &lockers, &owners)
    }

    /// rbd §7: with nothing in flight, every live, unfenced client reads the model's head.
    async fn check_live_reads(&mut self) -> Result<(), Violation> {
        let size = self.model.head.len() as u64;
        for i in self.live_indices() {
            if self.is_fenced(i) {
                continue;
            }
            let Some(img) = self.slots[i].img.clone() else { continue };
            let task = tokio::spawn(async move { img.read_at(0, size).await });
            if !self.drive(&task, OP_BOUND_S).await {
                return Err(Violation {
                    step: self.step,
                    invariant: "every operation completes within the bound (liveness)",
                    detail: format!("full read on client.{} pending", self.slots[i].gid),
                });
            }
            if let Ok(Ok(data)) = task.await {
                invariants::read_matches_model(self.step, self.slots[i].gid, 0, &data, &self.model)?;
            }
        }
        Ok(())
    }

    /// Liveness: every pending operation finishes within [`OP_BOUND_S`], except those of a
    /// client that is hung right now: a stopped process's requests wait until it runs again
    /// (the liveness phase resumes everyone first, so nothing is exempt there).
    async fn drain(&mut self) -> Result<(), Violation> {
        let deadline = self.now_s() + OP_BOUND_S;
        let waiting = |s: &Slot| {
            !matches!(s.state, SlotState::Hung { .. })
                && s.pending.as_ref().is_some_and(|p| !p.task.is_finished())
        };
        while self.slots.iter().any(waiting) {
            if self.now_s() >= deadline {
                let (gid, p) = self
                    .slots
                    .iter()
                    .filter(|s| waiting(s))
                    .find_map(|s| s.pending.as_ref().map(|p| (s.gid, p)))
                    .map(|(g, p)| (g, (p.kind, p.started_s)))
                    .unwrap_or((0, ("?", 0)));
                return Err(Violation {
                    step: self.step,
                    invariant: "every operation completes within the bound (liveness)",
                    detail: format!("{} on client.{gid} pending since t={} s", p.0, p.1),
                });
            }
            self.advance_s(1).await;
        }
        Ok(())
    }

    /// Liveness: once explicit locks are released, every client can write again (no client is
    /// starved and no lock is stuck, rbd §9 problems 3-5).
    async fn everyone_writes(&mut self) -> Result<(), Violation> {
        self.wake_and_reopen(true).await?;
        for i in 0..self.slots.len() {
            if let Some(img) = self.slots[i].img.clone()
                && self.slots[i].standard
            {
                let _ = img.lock_release().await;
            }
        }
        for i in 0..self.slots.len() {
            self.step += 1;
            let Some(img) = self.slots[i].img.clone() else { continue };
            let standard = self.slots[i].standard;
            let gid = self.slots[i].gid;
            let off = (i as u64 % (INITIAL_SIZE_BYTES / OBJ_BYTES)) * OBJ_BYTES + 8 * i as u64;
            let data = vec![0xA0 ^ i as u8; 8];
            let (admin, header, log) = (self.admin.clone(), self.header.clone(), self.log.clone());
            let task = tokio::spawn(async move {
                if standard {
                    let _ = img.lock_acquire(LockMode::Exclusive).await;
                }
                let ok = img.write_at(off, &data).await.is_ok();
                let owner_at_ack = lock_owner(&admin, &header).await.ok().flatten();
                {
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    l.entries.push(WriteAck {
                        gid,
                        off,
                        data,
                        accepted: ok,
                        owner_at_ack,
                        blocklisted_at_ack: false,
                    });
                    l.total += 1;
                }
                if standard {
                    let _ = img.lock_release().await;
                }
                ok
            });
            let finished = self.drive(&task, OP_BOUND_S).await;
            let ok = finished && matches!(task.await, Ok(true));
            if !ok {
                return Err(Violation {
                    step: self.step,
                    invariant: "every client can write once faults stop (liveness)",
                    detail: format!("client.{gid} could not write within {OP_BOUND_S} s"),
                });
            }
            self.check_step().await?;
        }
        Ok(())
    }

    /// A fresh client reads the head and every snapshot.
    async fn final_checks(&mut self) -> Result<(), Violation> {
        let step = self.step;
        let fail =
            |detail: String| Violation { step, invariant: "a fresh client can read the image", detail };
        let io = self.cluster.connect().ioctx(POOL, "").map_err(|e| fail(e.to_string()))?;
        let ro = OpenOptions { read_only: true, ..OpenOptions::default() };
        let img = Image::open(&io, IMAGE, ro).await.map_err(|e| fail(e.to_string()))?;
        let head = img.read_at(0, img.size()).await.map_err(|e| fail(e.to_string()))?;
        invariants::acknowledged_writes_survive(step, &self.acked, &head, &self.model)?;
        for snap in img.snaps() {
            let so =
                OpenOptions { read_only: true, snap_name: Some(snap.name.clone()), ..OpenOptions::default() };
            let s = Image::open(&io, IMAGE, so).await.map_err(|e| fail(e.to_string()))?;
            let data = s.read_at(0, s.size()).await.map_err(|e| fail(e.to_string()))?;
            invariants::snapshot_matches_model(step, &snap.name, &data, &self.model)?;
            s.close().await;
        }
        img.close().await;
        Ok(())
    }
}

async fn lock_lockers(admin: &IoCtx, header: &str) -> Result<Vec<u64>, String> {
    let info = get_lock_info(admin, header, LOCK_NAME).await.map_err(|e| e.to_string())?;
    Ok(info.lockers.keys().map(|id| id.entity.num as u64).collect())
}

async fn lock_owner(admin: &IoCtx, header: &str) -> Result<Option<u64>, String> {
    Ok(lock_lockers(admin, header).await?.first().copied())
}
