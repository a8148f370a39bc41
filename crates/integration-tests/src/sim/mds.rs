//! The MDS half of the simulator: R ranks, M filesystem clients, one thread, one seed.
//!
//! The ranks are an `mds_locker::cluster::Cluster` whose transport ([`SimNet`]) keeps every
//! connection FIFO (the MLock and peer protocols rely on it, mds §4.12) but interleaves the
//! connections and delays each message by a seeded number of ticks. Top-level directories
//! `/t0 … /t{R-1}` are created first and `/tK` (K ≥ 1) is pinned to rank K
//! (`Cluster::pin_empty_dir`), so every rank is auth for a subtree and the others hold replicas.
//!
//! Each step the seeded scheduler does one thing: a client sends a namespace request (mkdir,
//! create, unlink, rmdir, rename, link, setattr, setxattr, getattr, readdir, open) to a random
//! rank (a rename or link, which names its directories by inode number, goes to the rank that
//! is auth for that subtree, as a client that learned the inode there would); some in-flight
//! messages are delivered; a rank's journal makes its entries safe; a client answers what it
//! was sent (cap revokes, lease revokes); the clock moves and every rank ticks; or a fault
//! strikes (see [`Faults`]). After every step the invariants below are checked; the first
//! violation ends the run.
//!
//! Invariants, one function each: [`cluster_invariants`] (mds-locker's own per-rank and
//! cross-rank checks), [`never_two_xlock_holders_across_ranks`],
//! [`grants_permitted_by_table`] (every grant, checked at the moment it was decided, from the
//! Locker's lock events), [`safe_reply_repeats_and_persists`] and
//! [`namespace_matches_model`] (checked whenever no journal entry is outstanding on any rank).
//! Every first reply is also checked against the sequential model (the `mds-model` crate, shared with mds-locker's randomized tests).
//!
//! The run has two phases (STYLE.md): a *safety* phase with faults and random work, then a
//! *liveness* phase with faults off and no new requests, in which within [`LIVENESS_STEPS`]
//! every request must get its safe reply, every lock must end stable and unheld with no
//! waiter left, nothing may be left in flight, and the namespace must equal the model.
//!
//! `rank-crash` (not in `all`) crashes one rank at a seeded step and restarts it some steps
//! later (`Cluster::crash` / `Cluster::restart`: replay, resolve, rejoin, clients re-send
//! what was not safely answered). Meanwhile clients send that rank nothing, and the checks
//! that need every rank's cache (the namespace against the model, a safe reply's
//! persistence) wait for the restart. `journal` stalls a rank's journal (entries become safe
//! late, then all in one burst). Each rank's journal is a real byte stream in mds-journal's
//! framing (`mds_locker::rank_journal`), so two more classes fail a rank through its journal
//! device; like `rank-crash` they end in a rank restart, so they are not in `all` either:
//! `torn` crashes the rank in the middle of a journal flush (written, not synced) and the
//! device loses those bytes, keeps them, or keeps a prefix cut mid-frame — a torn tail that
//! replay must truncate (`Cluster::crash_during_flush`); `eio` arms an EIO on the rank's next
//! journal write or sync (`Cluster::arm_journal_fault`): the journal fails, acknowledges
//! nothing more, and at the next step the rank respawns through `crash` / `restart`, as Ceph's
//! MDS does on a journal write error. A run has at most one rank failure: with several of
//! `rank-crash`, `torn`, `eio` on, the seed picks which.
//!
//! CI runs a fixed batch (`tests/sim_mds.rs`); a soak is one command,
//! `cargo run --release -p cephlock -- sim mds --seeds 0..10000`, which prints every failing
//! seed with the command that replays it.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::rc::Rc;

use lock_sm::caps::{FILE_MODE_RD, FILE_MODE_WR};
use lock_sm::{LockCtx, Machine, predicates};
use mds_locker::cluster::{Cluster, ClusterError, Transport};
use mds_locker::rank_journal::{DeviceFault, FlushCrash as CrashMode};
use mds_locker::{
    CapOp, ClientCapMessage, ClientCapOp, ClientId, ClientRequest, Effect, Errno, Event, FilePath, HoldKind,
    Ino, Linkage, LockEvent, LockEventKind, Locker, LockerConfig, MdsMessage, Op, Rank, Reply, ReqId,
    SetAttr, XattrFlags,
};
use serde_json::json;

use super::trace::Trace;
use super::{Prng, Violation};
use mds_model::{Kind, Model};

/// Steps the liveness phase may take before a leftover request, lock or message is a violation.
pub const LIVENESS_STEPS: u64 = 4_000;
/// The Locker's session timeout in the simulation (mds `session_timeout_ms`).
const SESSION_TIMEOUT_MS: u64 = 60_000;
/// Names used inside each subtree: few, so clients collide on them.
const NAMES: [&str; 3] = ["a", "b", "c"];
/// The client id the setup uses; evicted before the workload starts.
const SETUP_CLIENT: ClientId = 1_000_000;
/// Which fault classes the safety phase injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// A client stops for good: its session times out and every rank evicts it (mds §4.14).
    pub client_crash: bool,
    /// A client answers cap and lease revokes late; past the session timeout the Locker's tick
    /// evicts it, and the simulator then blocklists it on every rank.
    pub slow_client: bool,
    /// A rank's journal stalls: its entries become safe late, then all at once (§4.18).
    pub journal: bool,
    /// Once per run a rank crashes at a seeded step (its unsafe journal entries and messages
    /// in flight are lost) and restarts some steps later: replay, resolve, rejoin, clients
    /// re-send what it had not safely answered (`Cluster::crash` / `Cluster::restart`,
    /// mds §6.6). Not part of `ALL`.
    pub rank_crash: bool,
    /// The run's rank failure is a crash in the middle of a journal flush: the unsynced bytes
    /// are lost, kept, or torn mid-frame (replay truncates the torn tail). Not part of `ALL`.
    pub torn: bool,
    /// The run's rank failure is an EIO on a journal write or sync: the journal fails, nothing
    /// more is acknowledged, and the rank respawns (crash, then restart). Not part of `ALL`.
    pub eio: bool,
}

impl Faults {
    /// Every available fault class.
    pub const ALL: Faults = Faults {
        client_crash: true,
        slow_client: true,
        journal: true,
        rank_crash: false,
        torn: false,
        eio: false,
    };
    /// No faults.
    pub const NONE: Faults = Faults {
        client_crash: false,
        slow_client: false,
        journal: false,
        rank_crash: false,
        torn: false,
        eio: false,
    };

    /// Parses a comma-separated list of `crash` (client crash), `slow`, `journal`,
    /// `rank-crash`, `torn`, `eio`, `all` (the first three), `none`.
    pub fn parse(list: &str) -> Result<Faults, String> {
        let mut f = Faults::NONE;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "crash" | "client-crash" => f.client_crash = true,
                "slow" => f.slow_client = true,
                "journal" => f.journal = true,
                "all" => f = Faults::ALL,
                "none" => f = Faults::NONE,
                "rank-crash" => f.rank_crash = true,
                "torn" => f.torn = true,
                "eio" => f.eio = true,
                other => {
                    return Err(format!(
                        "unknown MDS fault class {other:?} (crash, slow, journal, rank-crash, torn, eio, all, none)"
                    ));
                }
            }
        }
        Ok(f)
    }

    fn as_list(&self) -> String {
        let mut v = Vec::new();
        if self.client_crash {
            v.push("crash");
        }
        if self.slow_client {
            v.push("slow");
        }
        if self.journal {
            v.push("journal");
        }
        if self.rank_crash {
            v.push("rank-crash");
        }
        if self.torn {
            v.push("torn");
        }
        if self.eio {
            v.push("eio");
        }
        if v.is_empty() { "none".into() } else { v.join(",") }
    }
}

/// How the run's rank fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// `rank-crash`: the rank crashes at a step.
    Crash,
    /// `torn`: the rank crashes in the middle of a journal flush.
    MidFlush,
    /// `eio`: the rank's journal device fails a write or sync; the rank respawns.
    Eio,
}

/// Where the run's rank failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not yet struck.
    Scheduled,
    /// An EIO is armed and has not struck yet.
    Armed,
    /// The rank is down until step `back`.
    Down { back: u64 },
    /// Restarted.
    Done,
}

/// The run's one seeded rank failure.
#[derive(Debug, Clone, Copy)]
struct RankFailure {
    rank: Rank,
    kind: FailureKind,
    /// The step it strikes (an EIO is armed then and strikes at the next journal write/sync).
    at: u64,
    /// Steps the rank stays down.
    down_for: u64,
    stage: Stage,
}

/// A deliberate bug in the Locker, to show the invariants catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedBug {
    /// `rdlock_start` grants a rdlock on a lock in SYNC_LOCK, which every table forbids
    /// (mds-locker's `bug-injection` feature, `LockerConfig::inject_rdlock_in_sync_lock`).
    RdlockInSyncLock,
}

/// One simulator run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Determines every choice of the run.
    pub seed: u64,
    /// MDS ranks.
    pub ranks: u32,
    /// Filesystem clients.
    pub clients: usize,
    /// Scheduler steps in the safety phase.
    pub ops: usize,
    /// Fault classes of the safety phase.
    pub faults: Faults,
    /// A bug to inject (tests of the checker only).
    pub bug: Option<InjectedBug>,
    /// Where to write the JSON-lines trace (docs/trace-format.md).
    pub trace: Option<PathBuf>,
    /// Renames and links may join directories of different subtrees (so of different ranks,
    /// exercising witnesses, inode migration and the search by inode number), and go to any
    /// rank. Off, both names are in one subtree and the request goes to its rank, which keeps
    /// the seeds recorded before this option existed running the same workload.
    pub cross_subtree: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            ranks: 3,
            clients: 4,
            ops: 400,
            faults: Faults::ALL,
            bug: None,
            trace: None,
            cross_subtree: false,
        }
    }
}

impl SimConfig {
    /// The command line that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -p cephlock -- sim mds --seed {} --ranks {} --clients {} --ops {} --faults {}{}",
            self.seed,
            self.ranks,
            self.clients,
            self.ops,
            self.faults.as_list(),
            if self.cross_subtree { " --cross-subtree" } else { "" }
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
    /// Simulated milliseconds that passed.
    pub sim_time_ms: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests whose first reply was a success.
    pub replies_ok: u64,
    /// Requests whose first reply was an error.
    pub replies_err: u64,
    /// Messages delivered between ranks, and forwarded requests re-sent.
    pub deliveries: u64,
    /// Requests forwarded to another rank.
    pub forwards: u64,
    /// Lock grants recorded.
    pub grants: u64,
    /// Client crashes injected.
    pub client_crashes: u64,
    /// Slow-client faults injected.
    pub slow_clients: u64,
    /// Evictions seen (session timeouts and tick evictions, every rank counted).
    pub evictions: u64,
    /// Journal stalls injected.
    pub journal_stalls: u64,
    /// Rank crashes injected (each followed by a restart).
    pub rank_crashes: u64,
    /// Crashes in the middle of a journal flush (`torn`), and how many left a torn tail that
    /// replay truncated.
    pub journal_torn: u64,
    /// Torn tails replay found and truncated.
    pub torn_tails: u64,
    /// Journal EIOs that struck (each failing its rank, which then restarted).
    pub journal_eios: u64,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
}

impl SimOutcome {
    /// Whether every invariant held in both phases.
    pub fn is_ok(&self) -> bool {
        self.violation.is_none()
    }
}

// ---- transport ------------------------------------------------------------------------------

/// Messages in flight: FIFO per (from, to) connection, each held until its seeded due tick;
/// `next` picks among the connections whose head is due, at random. The tick is shared with
/// the driver (the cluster owns the transport, so the clock is an `Rc<Cell>`).
#[derive(Debug)]
pub struct SimNet {
    conns: BTreeMap<(Rank, Rank), VecDeque<(u64, MdsMessage)>>,
    rng: Prng,
    now: Rc<Cell<u64>>,
    /// Off during setup: `Cluster::replicate` and `pin_empty_dir` expect to run to completion.
    delays: Rc<Cell<bool>>,
    max_delay: u64,
}

impl SimNet {
    fn new(seed: u64, now: Rc<Cell<u64>>, delays: Rc<Cell<bool>>) -> SimNet {
        SimNet {
            conns: BTreeMap::new(),
            rng: Prng::new(seed ^ 0x6e65_7477_6f72_6b21),
            now,
            delays,
            max_delay: 4,
        }
    }
}

impl Transport for SimNet {
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage) {
        let delay = if self.delays.get() { self.rng.below(self.max_delay) } else { 0 };
        let due = self.now.get() + delay;
        self.conns.entry((from, to)).or_default().push_back((due, msg));
    }

    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)> {
        let now = self.now.get();
        let ready: Vec<(Rank, Rank)> = self
            .conns
            .iter()
            .filter(|(_, q)| q.front().is_some_and(|(due, _)| *due <= now))
            .map(|(k, _)| *k)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let key = ready[self.rng.below(ready.len() as u64) as usize];
        let q = self.conns.get_mut(&key)?;
        let (_, msg) = q.pop_front()?;
        if q.is_empty() {
            self.conns.remove(&key);
        }
        Some((key.0, key.1, msg))
    }

    fn in_flight(&self) -> usize {
        self.conns.values().map(VecDeque::len).sum()
    }

    /// A failed rank's connections go whole, messages not yet due included: draining `next`
    /// would leave those behind, to be delivered after the restart (and would re-queue the
    /// due messages of other connections behind their not-yet-due successors).
    fn drop_rank(&mut self, r: Rank) -> u64 {
        let mut dropped = 0;
        self.conns.retain(|(from, to), q| {
            let gone = *from == r || *to == r;
            if gone {
                dropped += q.len() as u64;
            }
            !gone
        });
        dropped
    }
}

// ---- clients --------------------------------------------------------------------------------

#[derive(Debug)]
struct Client {
    /// The current client id; a crashed or evicted client comes back under a new one (a
    /// remount), as a blocklisted Ceph client must.
    id: ClientId,
    alive: bool,
    /// Until this simulated time the client does not answer anything.
    slow_until_ms: u64,
    /// Messages to ranks not yet sent (cap acks, lease releases), in order.
    outbox: VecDeque<(Rank, Event)>,
    /// Latest lease seq per (rank, dir, name).
    leases: BTreeMap<(Rank, Ino, String), u32>,
    /// When a crashed client comes back.
    restart_at_ms: u64,
}

#[derive(Debug)]
struct Pending {
    client: ClientId,
    op: Op,
    first: Option<Result<Option<Ino>, Errno>>,
    /// The rank whose unsafe (early) reply came first, if the first reply was unsafe.
    early_rank: Option<Rank>,
    /// Its client crashed: nobody replays it if that rank fails before it is safe.
    orphaned: bool,
    /// Its update was replayed from a restarted rank's journal: the re-sent request is
    /// answered from the completed-request table, which keeps only a created inode number
    /// (as Ceph's does), so a safe `Ok(None)` confirms an early `Ok(Some(_))`.
    from_table: bool,
    /// Answered early by a rank that failed before it was safe; its client replays it, and
    /// it takes effect in the model when the replay answers.
    reapply: bool,
    /// The step it was sent at.
    submitted: u64,
}

/// The inodes a request's paths start from.
fn op_bases(op: &Op) -> Vec<Ino> {
    match op {
        Op::Lookup { path, .. }
        | Op::Getattr { path, .. }
        | Op::Mkdir { path, .. }
        | Op::Create { path, .. }
        | Op::Readdir { path }
        | Op::Open { path, .. }
        | Op::Mknod { path, .. }
        | Op::Symlink { path, .. }
        | Op::Unlink { path }
        | Op::Rmdir { path }
        | Op::Setattr { path, .. }
        | Op::Setxattr { path, .. }
        | Op::Removexattr { path, .. }
        | Op::SetFileLock { path, .. }
        | Op::GetFileLock { path, .. } => vec![path.base],
        Op::Link { path, target } => vec![path.base, target.base],
        Op::Rename { dest, src } => vec![dest.base, src.base],
        Op::LockSet { .. } => Vec::new(),
    }
}

/// A dead client id whose sessions must be evicted once the timeout has passed.
#[derive(Debug)]
struct DeadSession {
    client: ClientId,
    evict_at_ms: u64,
}

// ---- the run --------------------------------------------------------------------------------

struct Sim {
    cfg: SimConfig,
    rng: Prng,
    cluster: Cluster<SimNet>,
    net_now: Rc<Cell<u64>>,
    net_delays: Rc<Cell<bool>>,
    now_ms: u64,
    step: u64,
    clients: Vec<Client>,
    next_client_id: ClientId,
    next_req: u64,
    pending: BTreeMap<ReqId, Pending>,
    dead: Vec<DeadSession>,
    journal_stalled_until: Vec<u64>,
    /// The run's seeded rank failure, if a class that makes one is on.
    rank_failure: Option<RankFailure>,
    /// Requests re-sent to a restarted rank that have not replied again: until they have,
    /// the namespace lacks changes the model took from their first (early) reply.
    awaiting_resend: BTreeSet<ReqId>,
    model: Model,
    /// Every request the model applied, in order, to rebuild it without lost ones.
    model_log: Vec<(ReqId, Op, Reply)>,
    /// Inode numbers that only lost requests created: free to be allocated again.
    lost_created: BTreeSet<Ino>,
    /// Lost inode numbers created again, with the step of the new creation's first reply.
    recreated: BTreeMap<Ino, u64>,
    /// Top-level directory per rank: `/tK`.
    tops: Vec<Ino>,
    trace: Trace,
    out: SimOutcome,
    /// Violations found while processing effects, reported after the step.
    found: Option<Violation>,
    /// Safe results of the setup's requests.
    setup_results: BTreeMap<ReqId, Result<Option<Ino>, Errno>>,
}

/// Runs one seed.
pub fn run(cfg: SimConfig) -> SimOutcome {
    let mut sim = match Sim::new(cfg) {
        Ok(s) => s,
        Err((cfg, v)) => return SimOutcome { seed: cfg.seed, violation: Some(v), ..SimOutcome::default() },
    };
    let result = sim.run_phases();
    sim.trace.finish();
    sim.out.steps = sim.step;
    sim.out.sim_time_ms = sim.now_ms;
    sim.out.violation = result.err();
    sim.out.clone()
}

impl Sim {
    fn new(cfg: SimConfig) -> Result<Sim, (SimConfig, Violation)> {
        let trace = match &cfg.trace {
            Some(p) => match File::create(p) {
                Ok(f) => Trace::to_writer(Box::new(BufWriter::new(f))),
                Err(e) => {
                    let v = Violation {
                        step: 0,
                        invariant: "trace file",
                        detail: format!("{}: {e}", p.display()),
                    };
                    return Err((cfg, v));
                }
            },
            None => Trace::default(),
        };
        let locker_cfg = locker_config(&cfg);
        let net_now = Rc::new(Cell::new(0));
        let net_delays = Rc::new(Cell::new(false));
        let net = SimNet::new(cfg.seed, net_now.clone(), net_delays.clone());
        let ranks = cfg.ranks.max(1);
        let cluster = Cluster::with_transport(ranks, locker_cfg, net);
        let clients = (0..cfg.clients.max(1))
            .map(|i| Client {
                id: i as ClientId + 1,
                alive: true,
                slow_until_ms: 0,
                outbox: VecDeque::new(),
                leases: BTreeMap::new(),
                restart_at_ms: 0,
            })
            .collect::<Vec<_>>();
        let n = clients.len() as ClientId;
        let mut sim = Sim {
            rng: Prng::new(cfg.seed),
            cluster,
            net_now,
            net_delays,
            now_ms: 0,
            step: 0,
            clients,
            next_client_id: n + 1,
            next_req: 1,
            pending: BTreeMap::new(),
            dead: Vec::new(),
            journal_stalled_until: vec![0; ranks as usize],
            rank_failure: None,
            awaiting_resend: BTreeSet::new(),
            model: Model::new(),
            model_log: Vec::new(),
            lost_created: BTreeSet::new(),
            recreated: BTreeMap::new(),
            tops: Vec::new(),
            trace,
            out: SimOutcome { seed: cfg.seed, ..SimOutcome::default() },
            found: None,
            setup_results: BTreeMap::new(),
            cfg,
        };
        if let Err(v) = sim.setup() {
            return Err((sim.cfg.clone(), v));
        }
        sim.net_delays.set(true);
        let f = sim.cfg.faults;
        if f.rank_crash || f.torn || f.eio {
            let ops = sim.cfg.ops.max(4) as u64;
            let r = sim.rng.below(u64::from(ranks)) as Rank;
            let at = 1 + ops / 4 + sim.rng.below(ops / 2);
            let back = (at + 5 + sim.rng.below(40)).min(ops);
            let mut kinds = Vec::new();
            if f.rank_crash {
                kinds.push(FailureKind::Crash);
            }
            if f.torn {
                kinds.push(FailureKind::MidFlush);
            }
            if f.eio {
                kinds.push(FailureKind::Eio);
            }
            // One class on: no extra draw, so `rank-crash` runs stay what they were.
            let kind =
                if kinds.len() == 1 { kinds[0] } else { kinds[sim.rng.below(kinds.len() as u64) as usize] };
            sim.rank_failure =
                Some(RankFailure { rank: r, kind, at, down_for: back - at, stage: Stage::Scheduled });
        }
        Ok(sim)
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation { step: self.step, invariant, detail }
    }

    fn fail_cluster(&self, what: &str, e: ClusterError) -> Violation {
        self.violation("the ranks accept every event the cluster delivers", format!("{what}: {e}"))
    }

    /// Creates `/tK` for every rank and pins `/tK` (K ≥ 1) to rank K, cooperatively and
    /// without faults; the setup client is evicted afterwards so it holds no caps.
    fn setup(&mut self) -> Result<(), Violation> {
        for r in 0..self.cluster.len() as Rank {
            self.cluster
                .handle(r, Event::SessionOpen { client: SETUP_CLIENT })
                .map_err(|e| self.fail_cluster("setup session", e))?;
        }
        for k in 0..self.cluster.len() as Rank {
            let reqid = self.new_reqid();
            let op = Op::Mkdir { path: FilePath::new(Ino::ROOT, &format!("t{k}")), mode: 0o755 };
            self.pending.insert(
                reqid,
                Pending {
                    client: SETUP_CLIENT,
                    op: op.clone(),
                    first: None,
                    early_rank: None,
                    orphaned: false,
                    from_table: false,
                    reapply: false,
                    submitted: self.step,
                },
            );
            self.cluster
                .handle(0, Event::Request(ClientRequest { reqid, client: SETUP_CLIENT, op }))
                .map_err(|e| self.fail_cluster("setup mkdir", e))?;
            self.settle_cooperatively()?;
            let Some(Ok(Some(ino))) = self.setup_results.get(&reqid).copied() else {
                return Err(self.violation("setup", format!("mkdir /t{k} did not succeed")));
            };
            self.tops.push(ino);
            if k > 0 {
                self.cluster.pin_empty_dir(ino, k).map_err(|e| self.fail_cluster("pin", e))?;
                self.drain_effects();
            }
        }
        for r in 0..self.cluster.len() as Rank {
            self.cluster
                .handle(r, Event::SessionTimeout { client: SETUP_CLIENT })
                .map_err(|e| self.fail_cluster("setup eviction", e))?;
        }
        self.settle_cooperatively()?;
        self.found.take().map_or(Ok(()), Err)
    }

    /// Delivers everything and makes every entry safe, answering the setup client's revokes.
    fn settle_cooperatively(&mut self) -> Result<(), Violation> {
        for _ in 0..1_000 {
            self.net_now.set(self.net_now.get() + 1_000);
            self.cluster.settle().map_err(|e| self.fail_cluster("settle", e))?;
            self.drain_effects();
            let mut sent = false;
            for c in 0..self.clients.len() {
                while let Some((r, ev)) = self.clients[c].outbox.pop_front() {
                    let _ = self.cluster.handle(r, ev);
                    sent = true;
                }
            }
            self.drain_effects();
            if !sent && self.cluster.transport().in_flight() == 0 && self.unsafe_total() == 0 {
                return Ok(());
            }
        }
        Err(self.violation("setup settles", "the setup did not settle".into()))
    }

    fn unsafe_total(&self) -> usize {
        (0..self.cluster.len() as Rank).map(|r| self.cluster.unsafe_entries(r)).sum()
    }

    fn new_reqid(&mut self) -> ReqId {
        let r = ReqId(self.next_req);
        self.next_req += 1;
        r
    }

    fn run_phases(&mut self) -> Result<(), Violation> {
        for _ in 0..self.cfg.ops {
            self.step += 1;
            self.net_now.set(self.net_now.get() + 1);
            self.crash_or_restart_rank()?;
            self.safety_step()?;
            self.drain_effects();
            self.forget_killed_replays();
            self.check_step()?;
        }
        self.liveness()
    }

    // ---- the safety phase -------------------------------------------------------------------

    fn safety_step(&mut self) -> Result<(), Violation> {
        self.revive_clients();
        self.evict_dead_sessions()?;
        let roll = self.rng.below(100);
        let faults = self.cfg.faults;
        match roll {
            0..=29 => self.client_request(),
            30..=54 => {
                let n = 1 + self.rng.below(6);
                self.deliver(n)
            }
            55..=69 => {
                let r = self.rng.below(self.cluster.len() as u64) as Rank;
                self.journal_safe(r)
            }
            70..=84 => {
                let c = self.rng.below(self.clients.len() as u64) as usize;
                self.client_answers(c);
                Ok(())
            }
            85..=93 => {
                let dt = 200 + self.rng.below(4_000);
                self.tick(dt)
            }
            94..=95 if faults.client_crash => {
                self.crash_client();
                Ok(())
            }
            96..=97 if faults.slow_client => {
                self.slow_client();
                Ok(())
            }
            98..=99 if faults.journal => {
                self.stall_journal();
                Ok(())
            }
            _ => self.deliver(1),
        }
    }

    fn revive_clients(&mut self) {
        for c in 0..self.clients.len() {
            if !self.clients[c].alive && self.now_ms >= self.clients[c].restart_at_ms {
                let id = self.next_client_id;
                self.next_client_id += 1;
                let cl = &mut self.clients[c];
                cl.id = id;
                cl.alive = true;
                cl.slow_until_ms = 0;
                cl.outbox.clear();
                cl.leases.clear();
                self.trace.event(json!({"step": self.step, "ev": "client_restart", "client": id}));
            }
        }
    }

    /// A session timeout reaches every rank for a dead client (mds §4.14: its caps, leases and
    /// unjournaled requests go).
    fn evict_dead_sessions(&mut self) -> Result<(), Violation> {
        let now = self.now_ms;
        let due: Vec<ClientId> =
            self.dead.iter().filter(|d| d.evict_at_ms <= now).map(|d| d.client).collect();
        self.dead.retain(|d| d.evict_at_ms > now);
        for client in due {
            self.evict_everywhere(client)?;
        }
        Ok(())
    }

    fn evict_everywhere(&mut self, client: ClientId) -> Result<(), Violation> {
        for r in 0..self.cluster.len() as Rank {
            if self.cluster.rank(r).sessions().any(|s| s.client() == client) {
                self.trace
                    .event(json!({"step": self.step, "ev": "session_timeout", "rank": r, "client": client}));
                self.cluster
                    .handle(r, Event::SessionTimeout { client })
                    .map_err(|e| self.fail_cluster("session timeout", e))?;
                self.drain_effects();
            }
        }
        Ok(())
    }

    fn kill_client(&mut self, c: usize, evict_after_ms: u64) {
        let id = self.clients[c].id;
        self.cluster.client_gone(id);
        for p in self.pending.values_mut().filter(|p| p.client == id) {
            p.orphaned = true;
        }
        let cl = &mut self.clients[c];
        cl.alive = false;
        cl.outbox.clear();
        cl.restart_at_ms = self.now_ms + evict_after_ms + 1_000;
        self.dead.push(DeadSession { client: cl.id, evict_at_ms: self.now_ms + evict_after_ms });
    }

    fn crash_client(&mut self) {
        let c = self.rng.below(self.clients.len() as u64) as usize;
        if !self.clients[c].alive {
            return;
        }
        self.out.client_crashes += 1;
        self.trace.event(
            json!({"step": self.step, "ev": "fault", "fault": "client_crash", "client": self.clients[c].id}),
        );
        self.kill_client(c, SESSION_TIMEOUT_MS);
    }

    fn slow_client(&mut self) {
        let c = self.rng.below(self.clients.len() as u64) as usize;
        if !self.clients[c].alive {
            return;
        }
        self.out.slow_clients += 1;
        let until = self.now_ms + 1_000 + self.rng.below(SESSION_TIMEOUT_MS + 30_000);
        self.clients[c].slow_until_ms = until;
        self.trace.event(json!({"step": self.step, "ev": "fault", "fault": "slow_client", "client": self.clients[c].id, "until_ms": until}));
    }

    /// The seeded rank failure and its restart (see [`Faults::rank_crash`], [`Faults::torn`],
    /// [`Faults::eio`]). Clients forget the caps and leases they had from the crashed rank
    /// (reconnect is not modelled) and stop sending it anything until it is back. Runs in both
    /// phases: a failure that strikes late (an EIO on the liveness phase's flushes) still
    /// restarts its rank.
    fn crash_or_restart_rank(&mut self) -> Result<(), Violation> {
        let Some(f) = self.rank_failure else { return Ok(()) };
        let r = f.rank;
        match f.stage {
            Stage::Scheduled if self.step >= f.at => match f.kind {
                FailureKind::Crash => {
                    let back = self.step + f.down_for;
                    self.out.rank_crashes += 1;
                    self.trace.event(json!({"step": self.step, "ev": "fault", "fault": "rank_crash", "rank": r, "until_step": back}));
                    self.cluster.crash(r).map_err(|e| self.fail_cluster("rank crash", e))?;
                    self.rank_went_down(r, back);
                }
                FailureKind::MidFlush => {
                    // Wait (a bounded while) for entries to tear: a flush with nothing in it
                    // is a plain crash.
                    if self.cluster.unsafe_entries(r) == 0 && self.step < f.at + 30 {
                        return Ok(());
                    }
                    let bytes = self.cluster.journal_flush_bytes(r);
                    let (mode, name) = match self.rng.below(4) {
                        0 => (CrashMode::LoseUnsynced, "lose_unsynced"),
                        1 => (CrashMode::KeepUnsynced, "keep_unsynced"),
                        _ => (CrashMode::TornPrefix { bytes: 1 + self.rng.below(bytes.max(2) - 1) }, "torn"),
                    };
                    let back = self.step + f.down_for;
                    self.out.rank_crashes += 1;
                    self.out.journal_torn += 1;
                    let loss = self
                        .cluster
                        .crash_during_flush(r, mode)
                        .map_err(|e| self.fail_cluster("crash mid-flush", e))?;
                    self.trace.event(json!({
                        "step": self.step, "ev": "fault", "fault": "journal_torn", "rank": r, "mode": name,
                        "buffered_entries": loss.buffered_entries, "unsynced_entries": loss.unsynced_entries,
                        "unsynced_bytes": loss.unsynced_bytes, "kept_bytes": loss.kept_bytes, "until_step": back,
                    }));
                    self.rank_went_down(r, back);
                }
                FailureKind::Eio => {
                    let fault =
                        if self.rng.below(2) == 0 { DeviceFault::WriteEio } else { DeviceFault::SyncEio };
                    self.cluster
                        .arm_journal_fault(r, fault)
                        .map_err(|e| self.fail_cluster("arm journal EIO", e))?;
                    self.trace.event(json!({"step": self.step, "ev": "fault", "fault": "journal_eio", "rank": r, "op": fault.name()}));
                    self.set_stage(Stage::Armed);
                }
            },
            Stage::Armed => {
                // The journal reported the error since the last step: the rank respawns.
                if let Some(error) = self.cluster.journal_failure(r).map(str::to_owned) {
                    let back = self.step + f.down_for;
                    self.out.rank_crashes += 1;
                    self.out.journal_eios += 1;
                    self.trace.event(json!({"step": self.step, "ev": "fault", "fault": "journal_error_crash", "rank": r, "error": error, "until_step": back}));
                    self.cluster.crash(r).map_err(|e| self.fail_cluster("rank crash on journal error", e))?;
                    self.rank_went_down(r, back);
                }
            }
            Stage::Down { back } if self.step >= back => {
                self.awaiting_resend.extend(self.cluster.client_unsafe(r).map(|q| q.reqid));
                let report = self.cluster.restart(r).map_err(|e| self.fail_cluster("rank restart", e))?;
                let replayed: BTreeSet<ReqId> = report.replay.client_reqs.iter().map(|(_, q)| *q).collect();
                for q in &replayed {
                    if let Some(p) = self.pending.get_mut(q) {
                        p.from_table = true;
                    }
                }
                self.forget_lost_requests(r, &replayed)?;
                let torn_at = report.torn_tail.as_ref().map(|t| t.at);
                if torn_at.is_some() {
                    self.out.torn_tails += 1;
                }
                self.trace.event(
                    json!({"step": self.step, "ev": "rank_restart", "rank": r, "torn_tail_at": torn_at}),
                );
                self.set_stage(Stage::Done);
                self.drain_effects();
            }
            _ => {}
        }
        Ok(())
    }

    /// Requests rank `r` answered early that were not safe when it failed. Those its journal
    /// still had (`replayed`) are durable: a dead client's are done. The others died with the
    /// rank (mds §6.6): a dead client's are lost; a live client replays them first after the
    /// restart, and since nobody else could see them before they were safe, they take
    /// effect in the model where their replay commits (`Pending::reapply`). Either way they
    /// leave the model, which is rebuilt from the other first replies in order.
    fn forget_lost_requests(&mut self, r: Rank, replayed: &BTreeSet<ReqId>) -> Result<(), Violation> {
        let unsafe_on_r: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.early_rank == Some(r) && !p.reapply)
            .map(|(q, _)| *q)
            .collect();
        let mut out = BTreeSet::new();
        for q in unsafe_on_r {
            let orphaned = self.pending.get(&q).is_some_and(|p| p.orphaned);
            if replayed.contains(&q) {
                if orphaned {
                    self.pending.remove(&q);
                }
                continue;
            }
            out.insert(q);
            if orphaned {
                self.pending.remove(&q);
                self.awaiting_resend.remove(&q);
                self.trace.event(json!({"step": self.step, "ev": "lost_unsafe", "rank": r, "req": q.0}));
            } else if let Some(p) = self.pending.get_mut(&q) {
                p.reapply = true;
                self.trace
                    .event(json!({"step": self.step, "ev": "unsafe_awaits_replay", "rank": r, "req": q.0}));
            }
        }
        self.forget(&out)
    }

    /// A dead client's request replayed on its behalf after a rank restart and killed with
    /// the client's session before it committed again: its change is gone (Ceph kills an
    /// evicted session's requests). It left the model at the restart already.
    fn forget_killed_replays(&mut self) {
        if self.any_rank_down() {
            return;
        }
        let killed: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(q, p)| {
                p.orphaned
                    && p.reapply
                    && self.cluster.lockers().iter().all(|l| l.request(**q).is_none())
                    && p.early_rank.is_some_and(|r| self.cluster.client_unsafe(r).all(|u| u.reqid != **q))
            })
            .map(|(q, _)| *q)
            .collect();
        for q in killed {
            self.pending.remove(&q);
            self.awaiting_resend.remove(&q);
            self.trace.event(json!({"step": self.step, "ev": "lost_unsafe", "req": q.0}));
        }
    }

    /// Takes requests out of the model, which is rebuilt from the other first replies in
    /// order.
    fn forget(&mut self, lost: &BTreeSet<ReqId>) -> Result<(), Violation> {
        if lost.is_empty() {
            return Ok(());
        }
        let first = self.model_log.iter().position(|(q, _, _)| lost.contains(q)).unwrap_or(usize::MAX);
        // Inode numbers a lost request created: the first reply naming a number is its
        // creation. A lost creation's number may be allocated again later (its allocation
        // was lost with it); such a later creation is not the first to name it.
        let mut named = BTreeSet::new();
        let mut lost_inos = BTreeSet::new();
        for (q, op, reply) in &self.model_log {
            if let Ok(Some(ino)) = reply.result
                && named.insert(ino)
                && lost.contains(q)
                && matches!(op, Op::Mkdir { .. } | Op::Create { .. })
            {
                lost_inos.insert(ino);
            }
        }
        self.lost_created.extend(lost_inos.iter().copied());
        let owners: BTreeSet<ClientId> =
            self.model_log.iter().filter(|(q, _, _)| lost.contains(q)).map(|(_, _, r)| r.client).collect();
        self.model_log.retain(|(q, _, _)| !lost.contains(q));
        // The same client's own later answers may rest on its removed changes (a rename of
        // its unsafe file onto itself succeeds at once, journaling nothing). Other clients
        // cannot read a lost change (its xlocks and wrlocks are held until it is safe), but
        // an error can be decided on projected state before any lock is taken:
        // Ceph's rmdir answers ENOTEMPTY from the projected fragstat of a directory someone
        // is creating in. Such an answer, and a read, that the rebuilt model no longer gives
        // is dropped from the log; a change that no longer fits is a violation.
        let mut model = Model::new();
        let mut kept = Vec::with_capacity(self.model_log.len());
        for (i, (q, op, reply)) in std::mem::take(&mut self.model_log).into_iter().enumerate() {
            // A read of a lost inode, or a non-exclusive create that opened it (same client:
            // only it could see the change before it was safe), changed nothing: without the
            // lost create the model would take the open for a second creation.
            // A rename of a name onto itself is the same: Ceph answers it without journaling
            // anything (found by the simulator: 2 ranks, rank-crash, seed 20).
            let self_rename = matches!(&op, Op::Rename { dest, src } if dest == src);
            let opened_lost = matches!(reply.result, Ok(Some(ino)) if lost_inos.contains(&ino))
                && (!op.is_write() || self_rename || matches!(op, Op::Create { excl: false, .. }));
            if i >= first && opened_lost {
                self.trace
                    .event(json!({"step": self.step, "ev": "answer_rested_on_lost_change", "req": q.0}));
                continue;
            }
            let mut trial = model.clone();
            match trial.apply(reply.client, &op, &reply) {
                Ok(()) => {
                    model = trial;
                    kept.push((q, op, reply));
                }
                Err(_)
                    if i >= first
                        && (reply.result.is_err()
                            || !op.is_write()
                            || self_rename
                            || owners.contains(&reply.client)) =>
                {
                    self.trace
                        .event(json!({"step": self.step, "ev": "answer_rested_on_lost_change", "req": q.0}));
                }
                Err(e) => {
                    return Err(self.violation(
                        "first replies match the sequential model (§4.18, §5.2)",
                        format!("{q} {op:?} after forgetting lost unsafe requests {lost:?}: {e}"),
                    ));
                }
            }
        }
        self.model_log = kept;
        self.model = model;
        Ok(())
    }

    fn set_stage(&mut self, stage: Stage) {
        if let Some(f) = &mut self.rank_failure {
            f.stage = stage;
        }
    }

    /// What follows every rank failure: clients stop talking to it, its journal stall ends.
    fn rank_went_down(&mut self, r: Rank, back: u64) {
        self.journal_stalled_until[r as usize] = 0;
        for c in &mut self.clients {
            c.outbox.retain(|(to, _)| *to != r);
            c.leases.retain(|(to, _, _), _| *to != r);
        }
        self.set_stage(Stage::Down { back });
        self.drain_effects();
    }

    fn any_rank_down(&self) -> bool {
        (0..self.cluster.len() as Rank).any(|r| self.cluster.is_down(r))
    }

    fn stall_journal(&mut self) {
        let r = self.rng.below(self.cluster.len() as u64) as usize;
        self.out.journal_stalls += 1;
        let until = self.step + 5 + self.rng.below(40);
        self.journal_stalled_until[r] = until;
        self.trace.event(json!({"step": self.step, "ev": "fault", "fault": "journal_stall", "rank": r, "until_step": until}));
    }

    fn journal_safe(&mut self, r: Rank) -> Result<(), Violation> {
        if self.step < self.journal_stalled_until[r as usize] || self.cluster.unsafe_entries(r) == 0 {
            return Ok(());
        }
        self.cluster.make_safe(r).map_err(|e| self.fail_cluster("journal safe", e))
    }

    fn deliver(&mut self, n: u64) -> Result<(), Violation> {
        for _ in 0..n {
            match self.cluster.step() {
                Ok(true) => self.out.deliveries += 1,
                Ok(false) => break,
                Err(e) => return Err(self.fail_cluster("delivery", e)),
            }
            self.drain_effects();
        }
        Ok(())
    }

    fn tick(&mut self, dt_ms: u64) -> Result<(), Violation> {
        self.now_ms += dt_ms;
        for r in 0..self.cluster.len() as Rank {
            if self.cluster.is_down(r) {
                continue;
            }
            self.cluster
                .handle(r, Event::Tick { now_ms: self.now_ms })
                .map_err(|e| self.fail_cluster("tick", e))?;
            self.drain_effects();
        }
        Ok(())
    }

    /// A live, responsive client sends what it owes (cap acks, lease releases), in order.
    /// Refusals (the rank has evicted it meanwhile, or dropped the inode) change nothing and
    /// are what a real client would also meet.
    fn client_answers(&mut self, c: usize) {
        let cl = &self.clients[c];
        if !cl.alive || self.now_ms < cl.slow_until_ms {
            return;
        }
        let batch: Vec<(Rank, Event)> = self.clients[c].outbox.drain(..).collect();
        for (r, ev) in batch {
            let _ = self.cluster.handle(r, ev);
            self.drain_effects();
        }
    }

    // ---- requests ---------------------------------------------------------------------------

    fn client_request(&mut self) -> Result<(), Violation> {
        let c = self.rng.below(self.clients.len() as u64) as usize;
        if !self.clients[c].alive {
            return Ok(());
        }
        let client = self.clients[c].id;
        let (op, rank) = self.gen_op();
        if self.cluster.is_down(rank) {
            // The client holds the request until the rank is back; here it simply does not
            // send one this step.
            return Ok(());
        }
        let reqid = self.new_reqid();
        self.out.requests += 1;
        self.trace.event(json!({"step": self.step, "ev": "request", "rank": rank, "client": client, "req": reqid.0, "op": op.name(), "args": format!("{op:?}")}));
        if !self.cluster.rank(rank).sessions().any(|s| s.client() == client) {
            self.cluster
                .handle(rank, Event::SessionOpen { client })
                .map_err(|e| self.fail_cluster("session open", e))?;
        }
        self.pending.insert(
            reqid,
            Pending {
                client,
                op: op.clone(),
                first: None,
                early_rank: None,
                orphaned: false,
                from_table: false,
                reapply: false,
                submitted: self.step,
            },
        );
        self.cluster
            .handle(rank, Event::Request(ClientRequest { reqid, client, op }))
            .map_err(|e| self.fail_cluster("request", e))?;
        Ok(())
    }

    /// Live directories of subtree `k` (its top included), by path from the root.
    fn dirs_of(&self, k: usize) -> Vec<(String, Ino)> {
        let top = self.tops[k];
        let mut out = vec![(format!("t{k}"), top)];
        let mut i = 0;
        while i < out.len() && out.len() < 16 {
            let (p, d) = out[i].clone();
            if let Some(n) = self.model.nodes.get(&d) {
                for (name, ino) in &n.entries {
                    if self.model.nodes.get(ino).is_some_and(|x| x.kind == Kind::Dir) {
                        out.push((format!("{p}/{name}"), *ino));
                    }
                }
            }
            i += 1;
        }
        out
    }

    fn gen_op(&mut self) -> (Op, Rank) {
        let ranks = self.cluster.len() as u64;
        let k = self.rng.below(ranks) as usize;
        let dirs = self.dirs_of(k);
        // Prefer shallow directories: two levels below /tK at most.
        let shallow: Vec<&(String, Ino)> = dirs.iter().filter(|(p, _)| p.matches('/').count() <= 1).collect();
        let (dpath, dino) = shallow[self.rng.below(shallow.len() as u64) as usize].clone();
        let name = NAMES[self.rng.below(NAMES.len() as u64) as usize];
        let path = FilePath::new(Ino::ROOT, &format!("{dpath}/{name}"));
        let random_rank = self.rng.below(ranks) as Rank;
        let subtree_rank = k as Rank;
        let op = match self.rng.below(13) {
            0 | 1 => Op::Mkdir { path, mode: 0o755 },
            2 | 3 => Op::Create {
                path,
                mode: 0o644,
                excl: self.rng.chance(50),
                file_mode: if self.rng.chance(50) { FILE_MODE_RD } else { FILE_MODE_WR },
            },
            4 => Op::Unlink { path },
            5 => Op::Rmdir { path },
            6 | 7 => {
                let cross = self.cfg.cross_subtree;
                let other = if cross {
                    let k2 = self.rng.below(ranks) as usize;
                    self.dirs_of(k2)
                } else {
                    Vec::new()
                };
                let shallow2: Vec<&(String, Ino)> = if cross {
                    other.iter().filter(|(p, _)| p.matches('/').count() <= 1).collect()
                } else {
                    shallow.clone()
                };
                let (_, d2) = shallow2[self.rng.below(shallow2.len() as u64) as usize].clone();
                let n2 = NAMES[self.rng.below(NAMES.len() as u64) as usize];
                let a = FilePath::new(dino, name);
                let b = FilePath::new(d2, n2);
                let op = if self.rng.chance(75) {
                    Op::Rename { dest: b, src: a }
                } else {
                    Op::Link { path: b, target: a }
                };
                // Across subtrees a client may ask any rank: the one it sends to may have to
                // find the inodes by number, forward, and lead a two-phase update.
                let to = if cross && self.rng.chance(50) { random_rank } else { subtree_rank };
                return (op, to);
            }
            8 => {
                let attrs = match self.rng.below(3) {
                    0 => SetAttr { mode: Some(0o600 + self.rng.below(0o100) as u32), ..SetAttr::default() },
                    1 => SetAttr { mtime_ms: Some(self.now_ms), ..SetAttr::default() },
                    _ => SetAttr { size: Some(self.rng.below(4096)), ..SetAttr::default() },
                };
                Op::Setattr { path, attrs }
            }
            9 => {
                let flags = match self.rng.below(3) {
                    0 => XattrFlags::Any,
                    1 => XattrFlags::Create,
                    _ => XattrFlags::Replace,
                };
                let xname = if self.rng.chance(50) { "user.x" } else { "user.y" };
                Op::Setxattr { path, name: xname.into(), value: vec![1], flags }
            }
            10 => Op::Getattr { path, mask: 0 },
            11 => Op::Readdir { path: FilePath::new(Ino::ROOT, &dpath) },
            _ => Op::Open {
                path,
                file_mode: if self.rng.chance(50) { FILE_MODE_RD } else { FILE_MODE_WR },
                trunc: self.rng.chance(20),
                directory: false,
                mask: 0,
            },
        };
        (op, random_rank)
    }

    // ---- effects ----------------------------------------------------------------------------

    /// Takes every rank's effects and lock events and acts on them as clients and journal
    /// would. Called after each call into the cluster so the trace keeps the real order.
    fn drain_effects(&mut self) {
        for r in 0..self.cluster.len() as Rank {
            let events = self.cluster.rank_mut(r).take_lock_events();
            for ev in events {
                self.lock_event(r, &ev);
            }
        }
        for o in self.cluster.take_outputs() {
            let r = o.rank;
            match o.effect {
                Effect::Reply(reply) => self.reply(r, reply),
                Effect::Cap(m) if m.op == CapOp::Revoke => {
                    if let Some(c) = self.live_client(m.client) {
                        let ack = ClientCapMessage {
                            client: m.client,
                            ino: m.ino,
                            op: ClientCapOp::Update,
                            seq: m.seq,
                            caps: m.caps,
                            wanted: m.wanted,
                        };
                        self.clients[c].outbox.push_back((r, Event::ClientCaps(ack)));
                    }
                }
                Effect::LeaseGrant { client, dir, name, seq } => {
                    if let Some(c) = self.live_client(client) {
                        self.clients[c].leases.insert((r, dir, name), seq);
                    }
                }
                Effect::LeaseRevoke { client, dir, name } => {
                    if let Some(c) = self.live_client(client)
                        && let Some(seq) = self.clients[c].leases.remove(&(r, dir, name.clone()))
                    {
                        self.clients[c].outbox.push_back((r, Event::LeaseRelease { client, dir, name, seq }));
                    }
                }
                Effect::Evicted { client } => {
                    self.out.evictions += 1;
                    self.trace
                        .event(json!({"step": self.step, "ev": "evicted", "rank": r, "client": client}));
                    // A client one rank evicted is blocklisted: every rank drops it, and the
                    // client itself remounts under a new id.
                    if let Some(c) = self.live_client(client) {
                        self.kill_client(c, 0);
                    } else if !self.dead.iter().any(|d| d.client == client) {
                        self.dead.push(DeadSession { client, evict_at_ms: self.now_ms });
                    }
                    // The eviction killed the client's replays that had not journaled yet:
                    // they leave the pending set before the replies that follow it are
                    // checked.
                    self.forget_killed_replays();
                }
                Effect::Forward { .. } => self.out.forwards += 1,
                _ => {}
            }
        }
    }

    fn live_client(&self, id: ClientId) -> Option<usize> {
        self.clients.iter().position(|c| c.alive && c.id == id)
    }

    fn record(&mut self, v: Violation) {
        if self.found.is_none() {
            self.found = Some(v);
        }
    }

    /// Applies a request's change to the model where it takes effect, logging it for a later
    /// rebuild; a mismatch is a violation of `invariant`.
    fn apply_to_model(&mut self, rank: Rank, op: Op, reply: &Reply, invariant: &'static str) {
        match self.model.apply(reply.client, &op, reply) {
            Ok(()) => self.model_log.push((reply.reqid, op, reply.clone())),
            Err(e) => {
                let v = self.violation(invariant, format!("{} {:?} from rank {rank}: {e}", reply.reqid, op));
                self.record(v);
            }
        }
    }

    fn reply(&mut self, rank: Rank, reply: Reply) {
        self.trace.event(json!({
            "step": self.step, "ev": "reply", "rank": rank, "req": reply.reqid.0, "client": reply.client,
            "safe": reply.safe, "result": match reply.result { Ok(i) => json!(i.map(|i| i.0)), Err(e) => json!(format!("{e:?}")) },
        }));
        self.awaiting_resend.remove(&reply.reqid);
        let Some(p) = self.pending.get_mut(&reply.reqid) else {
            let v = self.violation("every reply answers a pending request (§4.18)", format!("{reply:?}"));
            self.record(v);
            return;
        };
        if p.first.is_none() {
            p.first = Some(reply.result);
            if !reply.safe {
                p.early_rank = Some(rank);
            }
            if reply.result.is_ok() {
                self.out.replies_ok += 1;
            } else {
                self.out.replies_err += 1;
            }
            let (op, submitted) = (p.op.clone(), p.submitted);
            if let Ok(Some(ino)) = reply.result
                && matches!(op, Op::Mkdir { .. } | Op::Create { .. } | Op::Mknod { .. } | Op::Symlink { .. })
                && self.lost_created.remove(&ino)
            {
                self.recreated.insert(ino, self.step);
            }
            // A request sent with an inode number only a lost creation had named, and answered
            // with an error after the number was allocated again: it looked for the lost
            // inode, which did not exist then (simulator `--cross-subtree`, 3 ranks, faults
            // `all,torn,eio,rank-crash`, seed 210: a link based on a directory whose mkdir
            // died with its rank failed ENOENT after another mkdir got the same number).
            // Its error cannot be checked against a model in which the number is taken.
            let stale_base = reply.result.is_err()
                && op_bases(&op).iter().any(|b| self.recreated.get(b).is_some_and(|at| *at > submitted));
            if stale_base {
                match self.model.apply(reply.client, &op, &reply) {
                    Ok(()) => self.model_log.push((reply.reqid, op, reply.clone())),
                    Err(_) => self
                        .trace
                        .event(json!({"step": self.step, "ev": "answer_rested_on_lost_change", "req": reply.reqid.0})),
                }
            } else {
                // The first reply is where the request takes effect in the model.
                self.apply_to_model(
                    rank,
                    op,
                    &reply,
                    "first replies match the sequential model (§4.18, §5.2)",
                );
            }
        }
        if let Some(p) = self.pending.get_mut(&reply.reqid)
            && p.reapply
        {
            // The replay committed: this is where the change happens now.
            p.reapply = false;
            let op = p.op.clone();
            self.apply_to_model(
                rank,
                op,
                &reply,
                "replayed requests match the sequential model (§4.18, §6.6)",
            );
        }
        let (first, op) = match self.pending.get(&reply.reqid) {
            Some(p) => {
                let mut first = p.first.unwrap_or(reply.result);
                if p.from_table && reply.safe && reply.result == Ok(None) && matches!(first, Ok(Some(_))) {
                    first = reply.result;
                }
                (first, p.op.clone())
            }
            None => return,
        };
        // A crashed rank's objects are not in the cluster until its restart: persistence is
        // checked on the replies that come after it (and by the namespace check).
        if !self.any_rank_down()
            && let Err(v) =
                safe_reply_repeats_and_persists(self.step, &reply, first, &op, self.cluster.lockers())
        {
            self.record(v);
        }
        if reply.safe
            && let Some(p) = self.pending.remove(&reply.reqid)
            && p.client == SETUP_CLIENT
        {
            self.setup_results.insert(reply.reqid, reply.result);
        }
    }

    fn lock_event(&mut self, rank: Rank, ev: &LockEvent) {
        let (obj, lock) = match &ev.key {
            Some(k) => (k.obj.to_string(), k.ty.name().to_uppercase()),
            None => (format!("{:?}", ev.lock.obj), ev.lock.ty.name().to_uppercase()),
        };
        let client = ev.client.map_or(-1, |c| c as i64);
        let line = match ev.kind {
            LockEventKind::State { from, to } => json!({
                "step": self.step, "rank": rank, "obj": obj, "lock": lock, "ev": "state", "auth": ev.auth,
                "from": from.name(), "to": to.name(),
            }),
            LockEventKind::Grant { kind, facts } => {
                self.out.grants += 1;
                if let Err(v) = grants_permitted_by_table(self.step, rank, ev) {
                    self.record(v);
                }
                json!({
                    "step": self.step, "rank": rank, "obj": obj, "lock": lock, "ev": "grant", "auth": ev.auth,
                    "kind": kind.name(), "req": ev.req.map(|r| r.0), "client": client,
                    "state": facts.state.name(), "xlock_by_client": facts.xlock_by_client,
                    "excl_client": facts.excl_client, "forced": facts.forced, "remote": facts.remote,
                })
            }
            LockEventKind::Release { kind } => json!({
                "step": self.step, "rank": rank, "obj": obj, "lock": lock, "ev": "release", "auth": ev.auth,
                "kind": kind.name(), "req": ev.req.map(|r| r.0), "client": client,
            }),
        };
        self.trace.event(line);
    }

    // ---- checks -----------------------------------------------------------------------------

    fn check_step(&mut self) -> Result<(), Violation> {
        if let Some(v) = self.found.take() {
            return Err(v);
        }
        let lockers = self.cluster.lockers();
        cluster_invariants(self.step, lockers, self.cluster.transport().in_flight())?;
        never_two_xlock_holders_across_ranks(self.step, lockers)?;
        // A request answered early by a rank that then failed is in the model but not in
        // the cache until its client's replay commits it again.
        let replaying = self.pending.values().any(|p| p.early_rank.is_some());
        // A witness applies a two-phase update at FINISH, after the leader's safe reply (the
        // model's moment): until then its committed copy is the old one.
        let witnessing = lockers.iter().any(|l| l.twophase_in_progress().1 > 0);
        if !self.any_rank_down()
            && !witnessing
            && !replaying
            && self.awaiting_resend.is_empty()
            && lockers.iter().all(|l| l.committing().next().is_none())
        {
            namespace_matches_model(self.step, lockers, &self.model)?;
        }
        Ok(())
    }

    // ---- the liveness phase -----------------------------------------------------------------

    /// Faults off, no new requests: clients answer everything, journals flush, messages flow
    /// and the clock moves, until nothing is left or the bound is hit.
    fn liveness(&mut self) -> Result<(), Violation> {
        for c in &mut self.clients {
            c.slow_until_ms = 0;
        }
        self.journal_stalled_until.iter_mut().for_each(|s| *s = 0);
        let end = self.step + LIVENESS_STEPS;
        while self.step < end {
            self.step += 1;
            self.net_now.set(self.net_now.get() + 1);
            self.crash_or_restart_rank()?;
            self.evict_dead_sessions()?;
            self.deliver(64)?;
            for c in 0..self.clients.len() {
                self.client_answers(c);
            }
            for r in 0..self.cluster.len() as Rank {
                self.journal_safe(r)?;
                self.drain_effects();
            }
            if self.step.is_multiple_of(8) {
                self.tick(1_000)?;
            }
            self.forget_killed_replays();
            self.check_step()?;
            if self.quiet() {
                return self.final_checks();
            }
        }
        Err(self.violation(
            "liveness: every request gets a safe reply and every lock settles within the bound",
            self.leftovers(),
        ))
    }

    /// A request counts as outstanding if its client is alive, or if it already replied
    /// early (its journal entry must still become safe and answer).
    fn outstanding(&self) -> Vec<(ReqId, &Pending)> {
        self.pending
            .iter()
            .filter(|(_, p)| p.first.is_some() || self.live_client(p.client).is_some())
            .map(|(r, p)| (*r, p))
            .collect()
    }

    /// Nothing left to do, and no rank down: a failed rank's stand-in cache is empty until
    /// its restart, so the final checks wait for it.
    fn quiet(&self) -> bool {
        !self.any_rank_down()
            && self.outstanding().is_empty()
            && self.cluster.transport().in_flight() == 0
            && self.unsafe_total() == 0
            && self.dead.is_empty()
            && self.cluster.lockers().iter().all(|l| l.requests().next().is_none())
            && self.clients.iter().all(|c| c.outbox.is_empty())
    }

    fn leftovers(&self) -> String {
        let reqs: Vec<String> = self
            .outstanding()
            .iter()
            .take(5)
            .map(|(r, p)| format!("{r} {} of client {}", p.op.name(), p.client))
            .collect();
        let mutations: Vec<String> = self
            .cluster
            .lockers()
            .iter()
            .flat_map(|l| l.requests().map(move |m| format!("rank {}: {}", l.cache().rank(), m.reqid())))
            .take(5)
            .collect();
        format!(
            "unanswered requests {reqs:?}, mutations {mutations:?}, {} messages in flight, {} unsafe journal entries",
            self.cluster.transport().in_flight(),
            self.unsafe_total()
        )
    }

    fn final_checks(&self) -> Result<(), Violation> {
        every_lock_stable_and_unheld(self.step, self.cluster.lockers())?;
        namespace_matches_model(self.step, self.cluster.lockers(), &self.model)
    }
}

fn locker_config(cfg: &SimConfig) -> LockerConfig {
    let mut c = LockerConfig {
        session_timeout_ms: SESSION_TIMEOUT_MS,
        record_lock_events: true,
        ..LockerConfig::default()
    };
    if let Some(InjectedBug::RdlockInSyncLock) = cfg.bug {
        c.inject_rdlock_in_sync_lock = true;
    }
    c
}

// ---- invariants -------------------------------------------------------------------------------

/// mds-locker's own invariants on every rank (never two active xlock holders, grants the table
/// permits for held locks, caps within `gcaps_allowed`, auth pins of transitional locks, every
/// waiter parked on a live request: §4.1, §4.2, §4.7, §4.14) and across ranks (gather sets are
/// replicas, replica holds permitted, and once nothing is in flight a stable replica is in the
/// table's `replica_state` of its auth: §4.12).
pub fn cluster_invariants(step: u64, lockers: &[Locker], in_flight: usize) -> Result<(), Violation> {
    mds_locker::invariants::check_cluster(lockers, in_flight).map_err(|vs| Violation {
        step,
        invariant: "mds_locker::invariants::check_cluster (§4.1, §4.2, §4.7, §4.12, §4.14)",
        detail: vs.iter().map(|v| format!("{}: {}", v.rule, v.detail)).collect::<Vec<_>>().join("; "),
    })
}

/// Never two xlock holders on one lock anywhere in the cluster (§4.7): the auth's holders and
/// every replica copy's (remote xlocks held for a leader) together name at most one request
/// that is not yet XLOCKDONE, and all of them belong to one client.
pub fn never_two_xlock_holders_across_ranks(step: u64, lockers: &[Locker]) -> Result<(), Violation> {
    let mut by_key: XlockHolders = BTreeMap::new();
    for l in lockers {
        let c = l.cache();
        for i in c.inode_ids() {
            for id in c.lock_ids(mds_locker::ObjRef::Inode(i)) {
                collect_xlocks(l, id, &mut by_key);
            }
        }
        for d in c.dentry_ids() {
            for id in c.lock_ids(mds_locker::ObjRef::Dentry(d)) {
                collect_xlocks(l, id, &mut by_key);
            }
        }
    }
    for (key, holders) in by_key {
        let active: BTreeSet<ReqId> = holders.iter().filter(|h| !h.3).map(|h| h.1).collect();
        let clients: BTreeSet<Option<ClientId>> = holders.iter().map(|h| h.2).collect();
        if active.len() > 1 || clients.len() > 1 {
            return Err(Violation {
                step,
                invariant: "never two xlock holders on a lock across ranks (§4.7)",
                detail: format!("{key}: holders (rank, req, client, done) {holders:?}"),
            });
        }
    }
    Ok(())
}

/// Per lock (named across ranks): (rank, request, client, done) of every xlock holder.
type XlockHolders = BTreeMap<String, Vec<(Rank, ReqId, Option<ClientId>, bool)>>;

fn collect_xlocks(l: &Locker, id: mds_locker::LockId, by_key: &mut XlockHolders) {
    let Ok(lock) = l.cache().lock(id) else { return };
    if lock.machine() == Machine::Local || lock.xlock_holders().is_empty() {
        return;
    }
    let key =
        l.cache().lock_key(id).map_or_else(|| format!("rank {} {id:?}", l.cache().rank()), |k| k.to_string());
    for h in lock.xlock_holders() {
        by_key.entry(key.clone()).or_default().push((l.cache().rank(), h.req, h.client, h.done));
    }
}

/// No rdlock, wrlock or xlock is granted where the lock-sm table forbids it for that auth or
/// replica and that client (§4.2, §1 tables): each grant is checked against the facts it was
/// decided on (state, auth, `xlock_by_client`, `excl_client`), so a grant in a transitional
/// state is caught even though holders of the previous state may legitimately remain there.
/// Locallocks (§1.6) have no table; a remote xlock's replica copy is granted by the auth.
pub fn grants_permitted_by_table(step: u64, rank: Rank, ev: &LockEvent) -> Result<(), Violation> {
    let LockEventKind::Grant { kind, facts } = ev.kind else { return Ok(()) };
    let m = ev.lock.ty.machine();
    if m == Machine::Local || facts.remote {
        return Ok(());
    }
    let ctx =
        LockCtx { is_auth: ev.auth, xlock_by_client: facts.xlock_by_client, excl_client: facts.excl_client };
    let ok = match kind {
        HoldKind::Rd => predicates::can_rdlock(m, facts.state, &ctx, ev.client),
        HoldKind::Wr if facts.forced => predicates::can_force_wrlock(m, facts.state, &ctx, ev.client),
        HoldKind::Wr => predicates::can_wrlock(m, facts.state, &ctx, ev.client),
        HoldKind::X => predicates::can_xlock(m, facts.state, &ctx, ev.client),
    };
    if ok {
        return Ok(());
    }
    let name = ev.key.as_ref().map_or_else(|| format!("{:?}", ev.lock), |k| k.to_string());
    Err(Violation {
        step,
        invariant: "no grant the lock table forbids (§4.2)",
        detail: format!(
            "rank {rank}: {} lock granted on {name} in {} to {:?} for client {:?} (auth {}, xlock_by_client {:?}, excl_client {:?}, forced {})",
            kind.name(),
            facts.state.name(),
            ev.req,
            ev.client,
            ev.auth,
            facts.xlock_by_client,
            facts.excl_client,
            facts.forced
        ),
    })
}

/// A safe reply repeats the result of the early reply before it (§4.18: the early reply already
/// told the client the outcome), and a safe reply of a mkdir or create that made an inode is
/// reflected in the namespace: its auth rank has the inode (inodes are never purged here, so a
/// later unlink cannot make it vanish). The names themselves are compared with the model by
/// [`namespace_matches_model`] whenever no journal entry is outstanding.
pub fn safe_reply_repeats_and_persists(
    step: u64,
    reply: &Reply,
    first: Result<Option<Ino>, Errno>,
    op: &Op,
    lockers: &[Locker],
) -> Result<(), Violation> {
    if reply.result != first {
        return Err(Violation {
            step,
            invariant: "a safe reply repeats its early reply (§4.18)",
            detail: format!("{}: early {first:?}, safe {:?}", reply.reqid, reply.result),
        });
    }
    if reply.safe
        && matches!(op, Op::Mkdir { .. } | Op::Create { .. })
        && let Ok(Some(ino)) = reply.result
    {
        let found = lockers.iter().any(|l| {
            let c = l.cache();
            c.lookup_ino(ino).and_then(|i| c.inode(i)).is_some_and(|n| n.is_auth())
        });
        if !found {
            return Err(Violation {
                step,
                invariant: "every reply marked safe is reflected in the namespace (§4.18, §6.3)",
                detail: format!("{}: inode {ino} is on no rank as auth", reply.reqid),
            });
        }
    }
    Ok(())
}

/// Once no journal entry is outstanding on any rank, the committed namespace equals the
/// sequential model of the operations that replied (§4.18, §6.2): every name the model
/// reaches is a committed dentry on its dirfrag's auth rank with the right inode, type, link
/// count and xattr names, and no directory has a name the model lacks.
pub fn namespace_matches_model(step: u64, lockers: &[Locker], model: &Model) -> Result<(), Violation> {
    let fail = |detail: String| Violation {
        step,
        invariant: "the committed namespace equals the sequential model (§4.18, §6.2)",
        detail,
    };
    // dir ino → the auth's committed entries.
    let entries_of = |dir: Ino| -> Option<BTreeMap<String, Ino>> {
        for l in lockers {
            let c = l.cache();
            let Some(f) = c.resolve_dirfrag(dir, 0) else { continue };
            let Some(frag) = c.dirfrag(f) else { continue };
            if frag.auth() != c.rank() {
                continue;
            }
            let mut out = BTreeMap::new();
            for (name, dn) in frag.dentries() {
                match c.dentry(*dn).map(|d| d.linkage()) {
                    Some(Linkage::Primary(i)) => {
                        out.insert(name.clone(), c.inode(i).map_or(Ino(0), |n| n.ino()));
                    }
                    Some(Linkage::Remote { ino, .. }) => {
                        out.insert(name.clone(), ino);
                    }
                    _ => {}
                }
            }
            return Some(out);
        }
        None
    };
    let inode_auth = |ino: Ino| {
        lockers.iter().find_map(|l| {
            let c = l.cache();
            c.lookup_ino(ino).and_then(|i| c.inode(i)).filter(|n| n.is_auth()).map(|n| n.data().clone())
        })
    };
    let mut stack = vec![Ino::ROOT];
    let mut seen = BTreeSet::new();
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) {
            continue;
        }
        let Some(node) = model.nodes.get(&dir) else { continue };
        let Some(got) = entries_of(dir) else {
            return Err(fail(format!("no rank is auth for directory {dir}")));
        };
        let want: BTreeMap<String, Ino> = node.entries.clone();
        // System entries (the root holds none here besides the model's) are compared too.
        if got != want {
            return Err(fail(format!("entries of {dir}: namespace {got:?}, model {want:?}")));
        }
        for ino in want.values() {
            let Some(n) = model.nodes.get(ino) else { continue };
            let Some(data) = inode_auth(*ino) else {
                return Err(fail(format!("inode {ino} has no auth rank")));
            };
            if data.mode & mds_locker::cache::S_IFMT != n.kind.type_bits() {
                return Err(fail(format!("type of {ino}: mode {:o}, model {:?}", data.mode, n.kind)));
            }
            if n.kind != Kind::Dir && data.nlink != n.nlink {
                return Err(fail(format!("nlink of {ino}: {} vs model {}", data.nlink, n.nlink)));
            }
            let xattrs: BTreeSet<String> = data.xattrs.keys().cloned().collect();
            if xattrs != n.xattrs {
                return Err(fail(format!("xattrs of {ino}: {xattrs:?} vs model {:?}", n.xattrs)));
            }
            if n.kind == Kind::Dir {
                stack.push(*ino);
            }
        }
    }
    Ok(())
}

/// Liveness (STYLE.md): once the cluster is quiet every lock on every rank is stable, holds
/// nothing and has no waiter (§4.4: every waiter was woken), and no request or peer mutation
/// is left on any rank.
pub fn every_lock_stable_and_unheld(step: u64, lockers: &[Locker]) -> Result<(), Violation> {
    for l in lockers {
        let c = l.cache();
        let ids = c
            .inode_ids()
            .flat_map(|i| c.lock_ids(mds_locker::ObjRef::Inode(i)))
            .chain(c.dentry_ids().flat_map(|d| c.lock_ids(mds_locker::ObjRef::Dentry(d))));
        for id in ids {
            let Ok(lock) = c.lock(id) else { continue };
            let held = lock.is_rdlocked() || lock.is_wrlocked() || lock.is_xlocked();
            if !lock.is_stable() || held || lock.waiters().next().is_some() {
                return Err(Violation {
                    step,
                    invariant: "liveness: every lock ends stable and unheld, every waiter woken (§4.4)",
                    detail: format!(
                        "rank {}: {} {} in {} rd={} wr={} x={} waiters={}",
                        c.rank(),
                        c.object_name(id.obj),
                        id.ty.name(),
                        lock.state().name(),
                        lock.num_rdlock(),
                        lock.num_wrlock(),
                        lock.num_xlock(),
                        lock.waiters().count()
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_including_rank_crash() {
        assert_eq!(Faults::parse("all").unwrap(), Faults::ALL);
        assert_eq!(Faults::parse("crash,journal").unwrap().as_list(), "crash,journal");
        let f = Faults::parse("journal,rank-crash").unwrap();
        assert!(f.rank_crash && f.journal && !f.client_crash);
        assert_eq!(f.as_list(), "journal,rank-crash");
        let f = Faults::parse("all,torn,eio").unwrap();
        assert!(f.torn && f.eio && f.client_crash && !f.rank_crash);
        assert_eq!(f.as_list(), "crash,slow,journal,torn,eio");
        let all = Faults::parse("all").unwrap();
        assert!(!all.torn && !all.eio, "journal device faults restart a rank");
        assert!(Faults::parse("bogus").is_err());
    }

    #[test]
    fn sim_net_keeps_each_connection_fifo() {
        let now = Rc::new(Cell::new(0));
        let mut net = SimNet::new(3, now.clone(), Rc::new(Cell::new(true)));
        let msg = |i: u32| {
            MdsMessage::Discover(mds_locker::message::Discover { dir: Ino::ROOT, name: format!("{i}") })
        };
        for i in 0..40u32 {
            net.send(i % 2, 2, msg(i));
            now.set(now.get() + u64::from(i % 3 == 0));
        }
        // Nothing is delivered before it is due.
        now.set(0);
        let early: Vec<_> = std::iter::from_fn(|| net.next()).collect();
        now.set(1_000);
        let mut order: BTreeMap<Rank, Vec<String>> = BTreeMap::new();
        let mut froms = Vec::new();
        for (from, _, m) in early.into_iter().chain(std::iter::from_fn(|| net.next())) {
            let MdsMessage::Discover(d) = m else { panic!("not sent") };
            order.entry(from).or_default().push(d.name);
            froms.push(from);
        }
        assert_eq!(net.in_flight(), 0);
        for (from, names) in order {
            let want: Vec<String> = (0..40u32).filter(|i| i % 2 == from).map(|i| format!("{i}")).collect();
            assert_eq!(names, want, "connection from {from} reordered");
        }
        // The two connections interleave.
        assert!(froms.windows(2).any(|w| w[0] != w[1]) && froms[..20].contains(&1));
    }

    /// A failed rank's connections are reset (mds §6.6): every message from or to it goes,
    /// also those not yet due, and the others keep their per-connection order. Draining
    /// `next` instead left the held-back messages of the dead incarnation to be delivered
    /// after its restart (2 ranks, rank-crash: seeds 74, 322 and more).
    #[test]
    fn sim_net_drop_rank_drops_messages_not_yet_due() {
        let now = Rc::new(Cell::new(0));
        let mut net = SimNet::new(7, now.clone(), Rc::new(Cell::new(true)));
        let msg = |i: u32| {
            MdsMessage::Discover(mds_locker::message::Discover { dir: Ino::ROOT, name: format!("{i}") })
        };
        let conns = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2)];
        for i in 0..50u32 {
            let (from, to) = conns[i as usize % conns.len()];
            net.send(from, to, msg(i));
        }
        // Some are due, some not: the drop must not depend on it.
        now.set(1);
        assert_eq!(net.drop_rank(1), 30);
        assert_eq!(net.in_flight(), 20);
        now.set(1_000);
        let mut order: BTreeMap<(Rank, Rank), Vec<String>> = BTreeMap::new();
        while let Some((from, to, m)) = net.next() {
            let MdsMessage::Discover(d) = m else { panic!("not sent") };
            order.entry((from, to)).or_default().push(d.name);
        }
        assert_eq!(order.len(), 2, "{order:?}");
        for ((from, to), names) in order {
            let want: Vec<String> = (0..50u32)
                .filter(|i| conns[*i as usize % conns.len()] == (from, to))
                .map(|i| format!("{i}"))
                .collect();
            assert_eq!(names, want, "connection {from}->{to} reordered");
        }
    }
}
