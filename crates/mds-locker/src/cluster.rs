//! Several ranks in one process: a transport between Lockers and a deterministic driver.
//!
//! Ceph's messenger delivers the messages of one connection in order; the MLock and peer
//! protocols rely on that (a SYNC must not overtake the LOCK before it). `Transport` is the
//! seam: `FifoTransport` delivers every message in send order (so per-connection order holds
//! trivially); the simulator supplies one that interleaves connections and delays delivery,
//! still FIFO per connection.
//!
//! `Cluster` owns N Lockers, routes their `Effect::Send`s through a transport, keeps a
//! stand-in journal per rank (entries become safe when the driver says so, or at once with
//! `auto_safe`), and records every other effect with the rank that produced it. Everything is
//! single-threaded and deterministic; tests drive it step by step.

use std::collections::{BTreeMap, VecDeque};

use crate::effects::{ClientRequest, Effect, Event};
use crate::error::LockerError;
use crate::ids::{Ino, JournalSeq, ObjKey, ObjRef, Rank};
use crate::locker::{Locker, LockerConfig};
use crate::message::MdsMessage;

/// Carries messages between ranks.
pub trait Transport {
    /// Accepts a message for later delivery.
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage);
    /// The next message to deliver, if any. Messages from one rank to another must come out
    /// in the order they went in.
    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)>;
    /// Messages accepted and not yet delivered.
    fn in_flight(&self) -> usize;
}

/// Delivers messages in global send order.
#[derive(Debug, Default, Clone)]
pub struct FifoTransport {
    queue: VecDeque<(Rank, Rank, MdsMessage)>,
}

impl Transport for FifoTransport {
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage) {
        self.queue.push_back((from, to, msg));
    }

    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)> {
        self.queue.pop_front()
    }

    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

/// Errors of the in-process cluster.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    /// A rank refused an event or message.
    #[error("rank {rank}: {source}")]
    Locker {
        /// The rank.
        rank: Rank,
        /// What it said.
        source: LockerError,
    },
    /// No such rank.
    #[error("no rank {0}")]
    NoRank(Rank),
    /// Messages kept flowing past the bound: a livelock between ranks.
    #[error("messages still flowing after {0} deliveries")]
    NoQuiescence(usize),
    /// A setup step's precondition does not hold.
    #[error("{0}")]
    Setup(String),
}

/// One effect a rank produced, in production order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The rank.
    pub rank: Rank,
    /// The effect (never `Send`: those go to the transport).
    pub effect: Effect,
}

/// N ranks wired together.
#[derive(Debug)]
pub struct Cluster<T: Transport = FifoTransport> {
    ranks: Vec<Locker>,
    net: T,
    /// Per rank: journal entries submitted and not yet safe.
    unsafe_entries: Vec<VecDeque<JournalSeq>>,
    auto_safe: bool,
    outputs: Vec<Output>,
    delivered: BTreeMap<&'static str, u64>,
    max_deliveries: usize,
    /// Forwarded client requests the client has yet to re-send, in order.
    forwards: VecDeque<(Rank, ClientRequest)>,
}

impl Cluster<FifoTransport> {
    /// `n` ranks with `cfg` (its `rank` field is set per rank), FIFO transport.
    pub fn new(n: u32, cfg: LockerConfig) -> Cluster<FifoTransport> {
        Cluster::with_transport(n, cfg, FifoTransport::default())
    }
}

impl<T: Transport> Cluster<T> {
    /// `n` ranks over the given transport. Every rank other than 0 holds a replica of the
    /// root, and rank 0 knows it.
    pub fn with_transport(n: u32, cfg: LockerConfig, net: T) -> Cluster<T> {
        let mut ranks: Vec<Locker> =
            (0..n.max(1)).map(|r| Locker::new(LockerConfig { rank: r, ..cfg.clone() })).collect();
        let root0 = ranks[0].cache().root();
        for r in 1..n.max(1) {
            ranks[0].cache_mut().add_replica(ObjRef::Inode(root0), r);
            if let Some(f) = ranks[0].cache().inode(root0).and_then(|i| i.dirfrags().get(&0)).copied() {
                ranks[0].cache_mut().add_dirfrag_replica(f, r);
            }
        }
        let count = ranks.len();
        Cluster {
            ranks,
            net,
            unsafe_entries: vec![VecDeque::new(); count],
            auto_safe: false,
            outputs: Vec::new(),
            delivered: BTreeMap::new(),
            max_deliveries: 1_000_000,
            forwards: VecDeque::new(),
        }
    }

    /// With `auto_safe`, every journal entry is made safe as soon as the event or message
    /// that submitted it has been handled.
    pub fn set_auto_safe(&mut self, on: bool) {
        self.auto_safe = on;
    }

    /// Number of ranks.
    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    /// Always false: a cluster has at least one rank.
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// A rank's Locker.
    pub fn rank(&self, r: Rank) -> &Locker {
        &self.ranks[r as usize]
    }

    /// A rank's Locker, for setup.
    pub fn rank_mut(&mut self, r: Rank) -> &mut Locker {
        &mut self.ranks[r as usize]
    }

    /// Every rank.
    pub fn lockers(&self) -> &[Locker] {
        &self.ranks
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.net
    }

    /// Takes the effects recorded so far (everything but `Send`), in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// The effects recorded so far.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Messages delivered so far, by kind (`MdsMessage::kind`).
    pub fn delivered(&self) -> &BTreeMap<&'static str, u64> {
        &self.delivered
    }

    /// Total messages delivered.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.values().sum()
    }

    /// Journal entries of `r` submitted and not yet safe.
    pub fn unsafe_entries(&self, r: Rank) -> usize {
        self.unsafe_entries.get(r as usize).map_or(0, |q| q.len())
    }

    /// Feeds one event to rank `r` and routes its effects. Messages are queued, not
    /// delivered: call `run` (or `step`) to deliver them.
    pub fn handle(&mut self, r: Rank, ev: Event) -> Result<(), ClusterError> {
        let fx = self
            .ranks
            .get_mut(r as usize)
            .ok_or(ClusterError::NoRank(r))?
            .handle(ev)
            .map_err(|source| ClusterError::Locker { rank: r, source })?;
        self.route(r, fx)
    }

    /// Routes effects rank `r` returned from a call the caller made directly on its Locker.
    pub fn route(&mut self, r: Rank, fx: Vec<Effect>) -> Result<(), ClusterError> {
        for e in fx {
            match e {
                Effect::Send { to, msg } => {
                    if to as usize >= self.ranks.len() {
                        return Err(ClusterError::NoRank(to));
                    }
                    self.net.send(r, to, msg);
                }
                Effect::Forward { to, ref request } => {
                    if to as usize >= self.ranks.len() {
                        return Err(ClusterError::NoRank(to));
                    }
                    self.forwards.push_back((to, request.clone()));
                    self.outputs.push(Output { rank: r, effect: e });
                }
                Effect::JournalSubmit { seq, ref entry } => {
                    let _ = entry;
                    self.unsafe_entries[r as usize].push_back(seq);
                    self.outputs.push(Output { rank: r, effect: e });
                }
                other => self.outputs.push(Output { rank: r, effect: other }),
            }
        }
        if self.auto_safe && !self.unsafe_entries[r as usize].is_empty() {
            self.make_safe(r)?;
        }
        Ok(())
    }

    /// Makes every submitted entry of rank `r` safe.
    pub fn make_safe(&mut self, r: Rank) -> Result<(), ClusterError> {
        let Some(upto) = self.unsafe_entries.get_mut(r as usize).and_then(|q| q.drain(..).next_back()) else {
            return Ok(());
        };
        self.handle(r, Event::JournalSafe { upto })
    }

    /// Makes every rank's submitted entries safe, delivering messages in between, until
    /// nothing is left to do.
    pub fn settle(&mut self) -> Result<(), ClusterError> {
        loop {
            self.run()?;
            let pending: Vec<Rank> =
                (0..self.ranks.len() as Rank).filter(|r| self.unsafe_entries(*r) > 0).collect();
            if pending.is_empty() {
                return Ok(());
            }
            for r in pending {
                self.make_safe(r)?;
            }
        }
    }

    /// Delivers one forwarded request (the client re-sending it to the rank it was told,
    /// opening a session there first if it has none, as a Ceph client does) or else one
    /// message. Returns false if nothing was pending.
    pub fn step(&mut self) -> Result<bool, ClusterError> {
        if let Some((to, req)) = self.forwards.pop_front() {
            *self.delivered.entry("client_request_forward").or_insert(0) += 1;
            if !self.rank(to).sessions().any(|s| s.client() == req.client) {
                self.handle(to, Event::SessionOpen { client: req.client })?;
            }
            self.handle(to, Event::Request(req))?;
            return Ok(true);
        }
        let Some((from, to, msg)) = self.net.next() else {
            return Ok(false);
        };
        *self.delivered.entry(msg.kind()).or_insert(0) += 1;
        self.handle(to, Event::Message { from, msg })?;
        Ok(true)
    }

    /// Delivers messages until none is in flight (bounded, so a livelock is an error rather
    /// than a hang).
    pub fn run(&mut self) -> Result<(), ClusterError> {
        for _ in 0..self.max_deliveries {
            if !self.step()? {
                return Ok(());
            }
        }
        Err(ClusterError::NoQuiescence(self.max_deliveries))
    }

    /// Discover: the auth ranks along the path to `target` replicate it to rank `to`, parent
    /// objects first (each object comes from its own auth, as in Ceph).
    pub fn replicate(&mut self, target: &ObjKey, to: Rank) -> Result<(), ClusterError> {
        // The directory above first: a rank that is auth only for the lower part of the path
        // sends just that part, and a replica cannot be added before its parent.
        if let Some(parent) = self.parent_dir_key(target, to) {
            self.replicate(&parent, to)?;
        }
        // Walk from the root: each step, find who is auth for the next missing piece.
        for _ in 0..crate::cache::MAX_DEPTH {
            let have = self.rank(to).cache().resolve_obj(target).is_some()
                || matches!(target, ObjKey::Dirfrag { dir, frag } if self.rank(to).cache().resolve_dirfrag(*dir, *frag).is_some());
            if have {
                return Ok(());
            }
            let mut progressed = false;
            for auth in 0..self.ranks.len() as Rank {
                if auth == to {
                    continue;
                }
                let fx = self.ranks[auth as usize]
                    .replicate_to(target, to)
                    .or_else(|e| match e {
                        LockerError::UnknownObject(_) => Ok(Vec::new()),
                        e => Err(e),
                    })
                    .map_err(|source| ClusterError::Locker { rank: auth, source })?;
                if !fx.is_empty() {
                    progressed = true;
                }
                self.route(auth, fx)?;
                self.run()?;
            }
            if !progressed {
                return Err(ClusterError::Setup(format!("rank {to} cannot discover {target}")));
            }
        }
        Err(ClusterError::Setup(format!("path to {target} too deep")))
    }

    /// The directory holding `target`, if `to` lacks it (none for the root, or when no rank
    /// knows the target's parent).
    fn parent_dir_key(&self, target: &ObjKey, to: Rank) -> Option<ObjKey> {
        let dir = match target {
            ObjKey::Inode(ino) => self.ranks.iter().find_map(|l| {
                let c = l.cache();
                let p = c.parent_dir(c.lookup_ino(*ino)?)?;
                c.inode(p).map(|n| n.ino())
            })?,
            ObjKey::Dentry { dir, .. } | ObjKey::Dirfrag { dir, .. } => *dir,
        };
        self.rank(to).cache().lookup_ino(dir).is_none().then_some(ObjKey::Inode(dir))
    }

    /// Pins an empty, idle directory to rank `to` (like setting `ceph.dir.pin`): its dirfrag
    /// becomes a subtree root whose auth is `to`; the directory inode stays with its current
    /// auth, which keeps a replica of the dirfrag. Migrating a directory with entries (Ceph's
    /// export with freezing) is not supported here.
    pub fn pin_empty_dir(&mut self, dir: Ino, to: Rank) -> Result<(), ClusterError> {
        let from = (0..self.ranks.len() as Rank)
            .find(|r| {
                let c = self.rank(*r).cache();
                c.resolve_dirfrag(dir, 0).and_then(|f| c.dirfrag(f)).is_some_and(|f| f.auth() == *r)
            })
            .ok_or_else(|| ClusterError::Setup(format!("no rank is auth for {dir}'s dirfrag")))?;
        if from == to {
            return Ok(());
        }
        let c = self.rank(from).cache();
        let f = c.resolve_dirfrag(dir, 0).ok_or_else(|| ClusterError::Setup(format!("{dir} not a dir")))?;
        let frag = c.dirfrag(f).ok_or_else(|| ClusterError::Setup(format!("{dir} has no dirfrag")))?;
        if !frag.dentries().is_empty() || frag.projected_fnode() != frag.fnode() {
            return Err(ClusterError::Setup(format!("{dir} is not empty and idle")));
        }
        self.replicate(&ObjKey::Inode(dir), to)?;
        // Exporter: the frag becomes a replica of the importer's.
        let from_locker = &mut self.ranks[from as usize];
        from_locker.cache_mut().set_dirfrag_auth(f, to);
        // Importer: open (or take over) the frag as auth, complete, with the exporter as a
        // replica holder.
        let fnode =
            *self.rank(from).cache().dirfrag(f).map(|d| d.fnode()).ok_or(ClusterError::NoRank(from))?;
        let imp = self.ranks[to as usize].cache_mut();
        let dir_id =
            imp.lookup_ino(dir).ok_or_else(|| ClusterError::Setup(format!("{dir} not replicated")))?;
        let g = imp.open_dirfrag(dir_id, true);
        imp.set_dirfrag_auth(g, to);
        imp.set_dirfrag_complete(g, fnode);
        imp.add_dirfrag_replica(g, from);
        Ok(())
    }
}
