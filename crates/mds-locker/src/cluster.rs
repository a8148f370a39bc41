//! Several ranks in one process: a transport between Lockers and a deterministic driver.
//!
//! Ceph's messenger delivers the messages of one connection in order; the MLock and peer
//! protocols rely on that (a SYNC must not overtake the LOCK before it). `Transport` is the
//! seam: `FifoTransport` delivers every message in send order (so per-connection order holds
//! trivially); the simulator supplies one that interleaves connections and delays delivery,
//! still FIFO per connection.
//!
//! `Cluster` owns N Lockers, routes their `Effect::Send`s through a transport, keeps a
//! journal per rank, and records every other effect with the rank that produced it.
//! Everything is single-threaded and deterministic; tests drive it step by step.
//!
//! # Journals
//!
//! Each rank's journal is a `rank_journal::RankJournal`: a byte stream in `mds_journal`'s
//! on-disk framing (RESILIENT_CRC frames of encoded `LogEvent`s, a header, striped objects on
//! a memory device), written synchronously. The Lockers stay sans-I/O and the cluster does what
//! `runtime::Rank` does for one rank: at `Effect::JournalSubmit` the entry is encoded through
//! `wire` at once (the cache still holds its projections) and buffered as *unsafe*;
//! `make_safe` / `settle` / `auto_safe` flush (write, then sync) and only then feed
//! `Event::JournalSafe`. A crash loses what was not synced. Session opens and closes (ESession)
//! and subtree maps (ESubtreeMap, written when a rank starts and when `pin_empty_dir` changes
//! its subtrees) are written and synced at once, as Ceph answers a session open and finishes
//! an import only once those events are safe. `restart` replays through the real scanner: a
//! torn tail is truncated and reported (`RestartReport::torn_tail`), a corrupt entry refuses
//! the restart with its offset, and the payloads go through `wire`'s mapping
//! (`recovery::replay_rank`).
//!
//! Journal faults (`cluster/journal_faults.rs`): a crash in the middle of a flush, whose
//! unsynced bytes are lost, kept or torn (`crash_during_flush`), and device errors armed on a
//! rank's journal (`arm_journal_fault`). A journal that hit a device error acknowledges
//! nothing more and refuses submits (`journal_failure`); as Ceph's MDS respawns on a journal
//! write error, the driver then fails the rank with `crash` and brings it back with `restart`.
//! A failed session or subtree-map write is not reported to the Locker (it already answered
//! the session open); replay simply lacks that event.
//!
//! # Rank failure: crash, replay, simplified resolve / reconnect / rejoin
//!
//! `crash(r)` drops rank `r`'s Locker, its unsafe journal entries and every message to or
//! from it in flight; forwards to it wait; each survivor gets `Event::RankDown`: it forgets
//! `r`'s replicas and gather entries (gathers that become empty complete), cleans up the
//! peer requests `r` led (releasing their locks), and stops waiting for `r`'s acks and
//! discover replies (those requests are retried at `Event::RankActive`, as Ceph's
//! `wait_for_active_peer` retries them).
//!
//! `restart(r)` replays `r`'s durable journal into a fresh Locker (subtree maps, sessions,
//! updates, the completed-request table), then:
//! 1. *resolve*: `r` learns every survivor's subtree roots and settles which replayed objects
//!    are its own (`Locker::resolve_authority`, then `resolve_inode_authority` with the
//!    inodes the survivors are auth for or replicate from `r`, since a renamed directory
//!    keeps its auth; a renamed file migrates, and a survivor mid-migration claims it as
//!    importer and not as exporter). Two-phase updates (mds §4.17, §6.6): `r`'s prepares left without COMMIT /
//!    ROLLBACK are decided by `recovery::decide_peer_updates` (commit iff the leader
//!    journaled its update: in its durable journal, or submitted by a live leader) and
//!    applied (`Locker::resolve_replayed_prepare`); the survivors' prepared updates that `r`
//!    led commit or roll back by `r`'s journal (`Locker::resolve_witnessed`), and `r`'s
//!    EUpdates with peers and no ECommitted wait for those witnesses' COMMITTED
//!    (`Locker::resolve_uncommitted_leader`).
//! 2. *strong rejoin of scatterlocks*: each survivor reports its replicas of `r`'s
//!    dirfragtree / file / nest locks that are in a MIX-family state or wrlocked
//!    (`Locker::rejoin_scatter_states`); `r` then takes MIX for them (`rejoin_scatter`), as
//!    Ceph's auth infers its scatterlock state from the replicas' strong rejoins, so the
//!    replicas' wrlocks stay legal.
//! 3. *rejoin, locks*: each survivor reports the remote xlocks / wrlocks its leader requests
//!    hold on `r`'s objects; `r` re-acquires them as peer requests led by that survivor.
//! 4. *rejoin, replicas*: each survivor reports its replicas of `r`'s objects; `r` re-adds
//!    them (inventing, null, a dentry it no longer has, as Ceph's strong rejoin does) and
//!    answers with its lock states and, for dentries, linkage, which the survivor adopts (the
//!    lock data that carried the last linkage may have died in flight with `r`). Then the
//!    same for the replicas `r` itself replayed (ancestors of its subtree roots), from their
//!    auths.
//! 5. `r` journals a fresh ESubtreeMap; survivors get `Event::RankActive`. *Clientreplay*:
//!    live clients replay the requests `r` had answered unsafely, first and one at a time
//!    (each once the previous one journaled, as Ceph's `queue_one_replay`), with the inode
//!    numbers those replies named (`Locker::expect_replay` reserves them) and no second early
//!    reply; requests `r` had not answered at all are re-sent after every replay is
//!    answered, and new requests wait until then. The completed-request table answers those
//!    whose update was durable. A client that died (`client_gone`) replays nothing: its
//!    unsafe changes are lost, as in Ceph. When the last replay is answered, every rank gets
//!    `Event::RankRecovered` (Ceph's ACTIVE): until then the cluster is degraded, and a
//!    survivor's request that must xlock a snaplock gives its locks back and waits
//!    (`locker::cluster_recovery`), so it cannot move a directory a replay needs.
//!
//! Simplified compared with Ceph:
//! * No mdsmap, no standby takeover, no states (REPLAY, RESOLVE, RECONNECT, REJOIN,
//!   CLIENTREPLAY, ACTIVE): the same rank restarts at once and the stages run back to back
//!   inside `restart`, with no other event in between; survivors need not check a peer's
//!   state before sending it lock messages.
//! * Resolve and rejoin are direct calls between Lockers, not MMDSResolve / MMDSCacheRejoin
//!   messages; the exchange is complete and in order by construction, so there are no
//!   resolve acks, no rejoin acks with missing-object lists, no retries.
//! * Resolve settles subtree authority (every survivor's subtree roots are trusted, so
//!   there are no ambiguous imports) and uncommitted two-phase updates. The witnesses of a
//!   restarted leader's update are the survivors that report it prepared (the EUpdate keeps
//!   only `had_peers`); a rank that fails together with the other side of an update is not
//!   handled.
//! * Reconnect is not modelled: clients' capabilities on the failed rank are lost (Ceph's
//!   clients re-send their caps and `choose_lock_state` picks lock states from them), and
//!   the restarted rank's locks start in their initial states, except scatterlocks its
//!   replicas hold in MIX. Only scatterlock states come from the replicas (Ceph's strong
//!   rejoin also reports each replica's simple locks and dirty scatter data flags).
//! * Rejoin re-acquires a remote xlock by setting the auth's lock to XLOCK (XLOCKDONE if the
//!   leader had marked it done) and a remote wrlock by moving a stable lock that forbids it to
//!   LOCK; the implicit versionlock xlock a peer xlock takes is not re-taken. Remote auth pins
//!   are not re-sent (the re-created peer request pins the locked object itself), and the
//!   leader forgets those it had on the failed rank. Scatterlocks do not keep the failed
//!   rank in a MIX-family gather, and no lock is marked `need_recover`.
//! * A replica inode or dirfrag the auth no longer has (possible only for objects that were
//!   never journaled, e.g. built with `cache_mut`) is left in the holder's cache instead of
//!   being trimmed; a missing dentry is invented null at the auth.
//! * The restarted rank re-discovers, on traversal, any replica it held only in memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mds_journal::{CrashMode, LogEvent};

use crate::effects::{ClientRequest, Effect, Event, Reply};
use crate::error::LockerError;
use crate::ids::{Ino, ObjKey, ObjRef, Rank, ReqId};
use crate::locker::{Locker, LockerConfig};
use crate::message::MdsMessage;
use crate::rank_journal::{RankJournal, RankJournalError};
use crate::recovery::{self, PeerDecision, ReplayError};
use crate::twophase::OrigOp;
use crate::wire::{self, WireError};

mod journal_faults;

/// Carries messages between ranks.
pub trait Transport {
    /// Accepts a message for later delivery.
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage);
    /// The next message to deliver, if any. Messages from one rank to another must come out
    /// in the order they went in.
    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)>;
    /// Messages accepted and not yet delivered.
    fn in_flight(&self) -> usize;
    /// Drops every message in flight from or to rank `r`, delivered or not yet due, and
    /// returns how many went: a failed rank's connections are reset, and nothing its old
    /// incarnation sent may reach anyone after its restart (Ceph's messenger marks the old
    /// instance's connections down). The default drains `next` and re-sends the rest, which
    /// is right only for a transport whose `next` yields every accepted message; one that
    /// holds messages back (delays) must override it, or a held-back message of the dead
    /// incarnation would be delivered after the restart and contradict the receiver's
    /// rejoined lock states (found by the simulator: 2 ranks, rank-crash, seed 322).
    fn drop_rank(&mut self, r: Rank) -> u64 {
        let mut dropped = 0;
        let mut keep = Vec::new();
        while let Some((from, to, msg)) = self.next() {
            if from == r || to == r {
                dropped += 1;
            } else {
                keep.push((from, to, msg));
            }
        }
        for (from, to, msg) in keep {
            self.send(from, to, msg);
        }
        dropped
    }
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

    fn drop_rank(&mut self, r: Rank) -> u64 {
        let before = self.queue.len();
        self.queue.retain(|(from, to, _)| *from != r && *to != r);
        (before - self.queue.len()) as u64
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
    /// The rank is down (crashed and not yet restarted), or already up for `restart`.
    #[error("rank {0} is down")]
    RankDown(Rank),
    /// `restart` of a rank that is not down.
    #[error("rank {0} is not down")]
    NotDown(Rank),
    /// A journal entry could not be encoded.
    #[error("journal encoding: {0}")]
    Wire(#[from] WireError),
    /// A rank's journal could not be replayed.
    #[error("replay: {0}")]
    Replay(#[from] ReplayError),
    /// A rank's journal stream refused replay (a corrupt entry) or an operation.
    #[error("journal: {0}")]
    Journal(#[from] RankJournalError),
}

/// What `Cluster::restart` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartReport {
    /// What replay found.
    pub replay: recovery::ReplayOutcome,
    /// The torn journal tail replay truncated, if any.
    pub torn_tail: Option<mds_journal::TornTail>,
    /// Remote locks of survivors' leaders re-acquired on the restarted rank.
    pub rejoined_locks: usize,
    /// Remote locks that could not be (object gone or not the rank's).
    pub lost_locks: usize,
    /// Survivors' replicas re-added on the restarted rank (objects and dirfrags).
    pub rejoined_replicas: usize,
    /// The restarted rank's replayed replicas re-added on their auths.
    pub weak_replicas: usize,
    /// Replicas whose auth no longer has the object (left in place).
    pub stale_replicas: usize,
    /// Uncommitted peer updates and what resolve decided for each.
    pub peer_decisions: Vec<(mds_journal::MetaReqId, PeerDecision)>,
    /// Client requests re-sent to the restarted rank.
    pub resent: usize,
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
    /// Per rank: the journal stream and device.
    journals: Vec<RankJournal>,
    /// Ranks crashed and not yet restarted.
    down: BTreeSet<Rank>,
    /// Client requests sent to a rank that have not had their safe reply: what clients
    /// re-send after that rank restarts.
    client_unsafe: BTreeMap<(Rank, ReqId), ClientRequest>,
    /// Requests still in `client_unsafe` that had an unsafe reply: the order of that reply
    /// and the inode it named. After the rank fails the client replays them first, in the
    /// order the replies came (Ceph's client keeps its unsafe requests in that order, which
    /// is the order they took effect), with that number.
    early_replies: BTreeMap<(Rank, ReqId), (u64, Option<Ino>)>,
    /// Counts unsafe replies, to order `early_replies`.
    early_seq: u64,
    /// Per rank: replayed requests not answered yet (Ceph's CLIENTREPLAY state; new requests
    /// wait in `deferred` until it is empty).
    replaying: Vec<BTreeSet<ReqId>>,
    /// Per rank: requests held back until the replays are answered.
    deferred: Vec<VecDeque<ClientRequest>>,
    /// Clients that died (`client_gone`): a request of theirs still travelling (a forward)
    /// is never re-sent after a rank failure.
    gone_clients: BTreeSet<crate::ids::ClientId>,
    /// Per rank: the replayed request being processed, until it submits its journal entry,
    /// is answered or forwarded (or its session is killed). Ceph replays one request at a
    /// time: `journal_and_reply` queues the next replay only once the current one has
    /// journaled, so replays take effect in the order their clients sent them.
    replay_current: Vec<Option<ReqId>>,
    /// Per rank: replayed requests waiting for their turn, in the order they arrived.
    replay_queue: Vec<VecDeque<ClientRequest>>,
    /// Messages dropped because their sender or receiver was down.
    dropped: u64,
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
        let mut ranks: Vec<Locker> = (0..n.max(1))
            .map(|r| Locker::new(LockerConfig { rank: r, max_mds: n.max(1), ..cfg.clone() }))
            .collect();
        let root0 = ranks[0].cache().root();
        for r in 1..n.max(1) {
            ranks[0].cache_mut().add_replica(ObjRef::Inode(root0), r);
            if let Some(f) = ranks[0].cache().inode(root0).and_then(|i| i.dirfrags().get(&0)).copied() {
                ranks[0].cache_mut().add_dirfrag_replica(f, r);
            }
        }
        let count = ranks.len();
        let mut c = Cluster {
            ranks,
            net,
            journals: (0..count as Rank).map(RankJournal::new).collect(),
            down: BTreeSet::new(),
            client_unsafe: BTreeMap::new(),
            early_replies: BTreeMap::new(),
            early_seq: 0,
            replaying: vec![BTreeSet::new(); count],
            deferred: vec![VecDeque::new(); count],
            gone_clients: BTreeSet::new(),
            replay_current: vec![None; count],
            replay_queue: vec![VecDeque::new(); count],
            dropped: 0,
            auto_safe: false,
            outputs: Vec::new(),
            delivered: BTreeMap::new(),
            max_deliveries: 1_000_000,
            forwards: VecDeque::new(),
        };
        for r in 0..count as Rank {
            // A fresh cache always encodes: its subtree roots are its own base directories.
            if let Err(e) = c.journal_subtree_map(r) {
                tracing::error!(rank = r, error = %e, "initial subtree map not journaled");
            }
        }
        c
    }

    /// Writes and syncs an event in rank `r`'s journal. A device error fails the journal
    /// (see the module notes) and is not reported here.
    fn journal_durable(&mut self, r: Rank, ev: &LogEvent) {
        if let Some(j) = self.journals.get_mut(r as usize)
            && let Err(e) = j.append_durable(&ev.to_payload())
        {
            tracing::warn!(rank = r, error = %e, event = ev.event_type().name(), "durable journal write lost");
        }
    }

    /// Journals rank `r`'s current subtree map (mds §6.1 ESubtreeMap), durable at once.
    fn journal_subtree_map(&mut self, r: Rank) -> Result<(), ClusterError> {
        let seq = self.journals.get(r as usize).map_or(0, |j| j.durable_entries());
        let ev = recovery::subtree_map_event(self.rank(r).cache(), seq)?;
        self.journal_durable(r, &ev);
        Ok(())
    }

    /// Rank `r`'s durable journal: the encoded events read back from its stream, in log
    /// order (empty for an unknown rank or an unreadable device).
    pub fn journal(&self, r: Rank) -> Vec<Vec<u8>> {
        self.journals.get(r as usize).and_then(|j| j.durable_payloads().ok()).unwrap_or_default()
    }

    /// Rank `r`'s durable journal, decoded.
    pub fn journal_events(&self, r: Rank) -> Result<Vec<LogEvent>, ClusterError> {
        let j = self.journals.get(r as usize).ok_or(ClusterError::NoRank(r))?;
        Ok(j.durable_events()?)
    }

    /// Rank `r`'s journal stream and device (to inspect it with `mds_journal::tool`).
    pub fn rank_journal(&self, r: Rank) -> Option<&RankJournal> {
        self.journals.get(r as usize)
    }

    /// Whether rank `r` is down.
    pub fn is_down(&self, r: Rank) -> bool {
        self.down.contains(&r)
    }

    /// Messages dropped because their sender or receiver was down.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped
    }

    /// Client requests sent to rank `r` still waiting for their safe reply.
    pub fn client_unsafe(&self, r: Rank) -> impl Iterator<Item = &ClientRequest> {
        self.client_unsafe.range((r, ReqId(0))..=(r, ReqId(u64::MAX))).map(|(_, q)| q)
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
        self.journals.get(r as usize).map_or(0, |j| j.unsafe_entries())
    }

    /// Feeds one event to rank `r` and routes its effects. Messages are queued, not
    /// delivered: call `run` (or `step`) to deliver them. A session that opens is journaled
    /// (ESession); a client request is remembered until its safe reply, so the client can
    /// re-send it if the rank fails first.
    pub fn handle(&mut self, r: Rank, ev: Event) -> Result<(), ClusterError> {
        if self.down.contains(&r) {
            return Err(ClusterError::RankDown(r));
        }
        let locker = self.ranks.get_mut(r as usize).ok_or(ClusterError::NoRank(r))?;
        let opens = match &ev {
            Event::SessionOpen { client } if !locker.sessions().any(|s| s.client() == *client) => {
                Some(*client)
            }
            _ => None,
        };
        let request = match &ev {
            Event::Request(req) => Some(req.clone()),
            _ => None,
        };
        // While replayed requests are outstanding, new ones wait (Ceph's CLIENTREPLAY).
        if let Some(req) = &request
            && !self.replaying[r as usize].is_empty()
            && !self.replaying[r as usize].contains(&req.reqid)
        {
            if !self.gone_clients.contains(&req.client) {
                self.client_unsafe.insert((r, req.reqid), req.clone());
            }
            self.deferred[r as usize].push_back(req.clone());
            return Ok(());
        }
        // Replayed requests run one at a time, in arrival order (Ceph's replay queue).
        if let Some(req) = &request
            && self.replaying[r as usize].contains(&req.reqid)
            && self.replay_current[r as usize] != Some(req.reqid)
        {
            self.client_unsafe.insert((r, req.reqid), req.clone());
            self.replay_queue[r as usize].push_back(req.clone());
            return self.next_replay(r);
        }
        let fx = locker.handle(ev).map_err(|source| ClusterError::Locker { rank: r, source })?;
        if let Some(client) = opens {
            self.journal_durable(r, &wire::session_event(client, true));
        }
        if let Some(req) = request
            && !self.gone_clients.contains(&req.client)
        {
            // A re-sent copy answered at once from the completed table removes it again below.
            self.client_unsafe.insert((r, req.reqid), req);
        }
        self.route(r, fx)
    }

    /// Hands rank `r` its next queued replay once the current one has journaled, been
    /// answered or forwarded (Ceph's `queue_one_replay`). Replays whose session was killed
    /// meanwhile are skipped.
    fn next_replay(&mut self, r: Rank) -> Result<(), ClusterError> {
        let i = r as usize;
        while self.replay_current[i].is_none()
            && let Some(req) = self.replay_queue[i].pop_front()
        {
            if !self.replaying[i].contains(&req.reqid) {
                continue;
            }
            self.replay_current[i] = Some(req.reqid);
            self.handle(r, Event::Request(req))?;
        }
        Ok(())
    }

    /// The client died: it will re-send nothing after a rank fails, so its requests that
    /// were not safely answered are lost with a failed rank's unsafe journal entries (as in
    /// Ceph, where only a live client's replay restores them). Ranks that stay up still
    /// finish its requests, the replays already sent to a restarted rank included.
    pub fn client_gone(&mut self, client: crate::ids::ClientId) {
        self.gone_clients.insert(client);
        let replaying = &self.replaying;
        let gone: Vec<(Rank, ReqId)> = self
            .client_unsafe
            .iter()
            .filter(|((r, q), req)| {
                req.client == client && !replaying.get(*r as usize).is_some_and(|s| s.contains(q))
            })
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.client_unsafe.remove(&k);
            self.early_replies.remove(&k);
        }
        for d in &mut self.deferred {
            d.retain(|q| q.client != client);
        }
    }

    /// Routes effects rank `r` returned from a call the caller made directly on its Locker.
    pub fn route(&mut self, r: Rank, fx: Vec<Effect>) -> Result<(), ClusterError> {
        let mut replay_done = false;
        for e in fx {
            match e {
                Effect::Send { to, msg } => {
                    if to as usize >= self.ranks.len() {
                        return Err(ClusterError::NoRank(to));
                    }
                    if self.down.contains(&to) {
                        self.dropped += 1;
                        continue;
                    }
                    self.net.send(r, to, msg);
                }
                Effect::Forward { to, ref request } => {
                    if to as usize >= self.ranks.len() {
                        return Err(ClusterError::NoRank(to));
                    }
                    self.client_unsafe.remove(&(r, request.reqid));
                    self.early_replies.remove(&(r, request.reqid));
                    self.replay_turn_over(r, request.reqid);
                    if let Some(set) = self.replaying.get_mut(r as usize)
                        && set.remove(&request.reqid)
                        && set.is_empty()
                    {
                        replay_done = true;
                    }
                    self.forwards.push_back((to, request.clone()));
                    self.outputs.push(Output { rank: r, effect: e });
                }
                Effect::JournalSubmit { seq, ref entry } => {
                    let l = &self.ranks[r as usize];
                    let client = l.request(entry.reqid).and_then(|m| m.client());
                    let created = l.journaled_reply(entry.reqid).and_then(|j| j.created);
                    let ev = wire::to_log_event_with_created(entry, l.cache(), client, created)?;
                    self.replay_turn_over(r, entry.reqid);
                    if let Err(err) = self.journals[r as usize].submit(seq, ev.to_payload()) {
                        // A failed journal never writes it, so it is never reported safe.
                        tracing::warn!(rank = r, error = %err, "journal submit refused");
                    }
                    self.outputs.push(Output { rank: r, effect: e });
                }
                Effect::Reply(Reply { reqid, safe, result, .. }) => {
                    if safe {
                        self.client_unsafe.remove(&(r, reqid));
                        self.early_replies.remove(&(r, reqid));
                    } else if self.client_unsafe.contains_key(&(r, reqid)) {
                        self.early_seq += 1;
                        self.early_replies.insert((r, reqid), (self.early_seq, result.ok().flatten()));
                    }
                    self.replay_turn_over(r, reqid);
                    if let Some(set) = self.replaying.get_mut(r as usize)
                        && set.remove(&reqid)
                        && set.is_empty()
                    {
                        replay_done = true;
                    }
                    self.outputs.push(Output { rank: r, effect: e });
                }
                Effect::Evicted { client } => {
                    // An evicted client re-sends nothing to this rank.
                    self.client_unsafe.retain(|(rank, _), q| *rank != r || q.client != client);
                    self.deferred[r as usize].retain(|q| q.client != client);
                    let unsafe_reqs = &self.client_unsafe;
                    self.early_replies.retain(|k, _| k.0 != r || unsafe_reqs.contains_key(k));
                    let before = self.replaying[r as usize].len();
                    self.replaying[r as usize].retain(|q| unsafe_reqs.contains_key(&(r, *q)));
                    self.replay_queue[r as usize].retain(|q| q.client != client);
                    // A replay the eviction killed before it journaled gives up its turn.
                    if let Some(q) = self.replay_current[r as usize]
                        && !self.replaying[r as usize].contains(&q)
                    {
                        self.replay_turn_over(r, q);
                    }
                    replay_done |= before > 0 && self.replaying[r as usize].is_empty();
                    self.journal_durable(r, &wire::session_event(client, false));
                    self.outputs.push(Output { rank: r, effect: e });
                }
                other => self.outputs.push(Output { rank: r, effect: other }),
            }
        }
        if self.auto_safe && self.unsafe_entries(r) > 0 {
            self.make_safe(r)?;
        }
        self.next_replay(r)?;
        if replay_done {
            // Clientreplay is over: the requests held back run now, in arrival order, and
            // every rank learns that `r` is active.
            while let Some(req) = self.deferred[r as usize].pop_front() {
                self.handle(r, Event::Request(req))?;
            }
            self.announce_recovered(r)?;
        }
        Ok(())
    }

    /// Tells every rank that is up that `r` finished client replay (Ceph's ACTIVE).
    fn announce_recovered(&mut self, r: Rank) -> Result<(), ClusterError> {
        for s in 0..self.ranks.len() as Rank {
            if !self.down.contains(&s) {
                self.handle(s, Event::RankRecovered { rank: r })?;
            }
        }
        Ok(())
    }

    /// Rank `r`'s current replay `reqid` got as far as Ceph's `journal_and_reply` (or was
    /// answered, forwarded or killed): the next replay may start.
    fn replay_turn_over(&mut self, r: Rank, reqid: ReqId) {
        if let Some(cur) = self.replay_current.get_mut(r as usize)
            && *cur == Some(reqid)
        {
            *cur = None;
        }
    }

    /// Makes every submitted entry of rank `r` safe: writes and syncs them to its journal in
    /// order, then tells the Locker. If the journal fails instead (a device error), nothing is
    /// reported safe and the rank must be failed (`journal_failure`); that is not an error of
    /// this call.
    pub fn make_safe(&mut self, r: Rank) -> Result<(), ClusterError> {
        if self.down.contains(&r) {
            return Ok(());
        }
        let Some(j) = self.journals.get_mut(r as usize) else {
            return Ok(());
        };
        if j.failure().is_some() {
            return Ok(());
        }
        match j.flush() {
            Ok(Some(upto)) => self.handle(r, Event::JournalSafe { upto }),
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(rank = r, error = %e, "journal flush failed: nothing more is acknowledged");
                Ok(())
            }
        }
    }

    /// Makes every rank's submitted entries safe, delivering messages in between, until
    /// nothing is left to do.
    pub fn settle(&mut self) -> Result<(), ClusterError> {
        loop {
            self.run()?;
            let pending: Vec<Rank> = (0..self.ranks.len() as Rank)
                .filter(|r| {
                    self.unsafe_entries(*r) > 0
                        && !self.down.contains(r)
                        && self.journal_failure(*r).is_none()
                })
                .collect();
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
        // A client holds a forward to a down rank until it is back.
        let next_fwd = self.forwards.iter().position(|(to, _)| !self.down.contains(to));
        if let Some((to, req)) = next_fwd.and_then(|i| self.forwards.remove(i)) {
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
        if self.down.contains(&to) || self.down.contains(&from) {
            self.dropped += 1;
            return Ok(true);
        }
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
        // Both subtree sets changed: journal them (Ceph's EExport / EImportFinish).
        self.journal_subtree_map(from)?;
        self.journal_subtree_map(to)?;
        Ok(())
    }

    /// Rank `r` fails (see the module notes): its Locker and unsafe journal entries are
    /// lost, messages to and from it in flight are dropped, and every survivor handles
    /// `Event::RankDown`. Its durable journal stays for `restart`.
    pub fn crash(&mut self, r: Rank) -> Result<(), ClusterError> {
        if r as usize >= self.ranks.len() {
            return Err(ClusterError::NoRank(r));
        }
        if self.down.contains(&r) {
            return Err(ClusterError::RankDown(r));
        }
        let cfg = self.ranks[r as usize].config().clone();
        // An empty stand-in until the restart replays the journal.
        self.ranks[r as usize] = Locker::new(cfg);
        self.journals[r as usize].crash(CrashMode::LoseUnsynced);
        // Held-back requests stay in `client_unsafe`: the clients re-send them after restart.
        self.replaying[r as usize].clear();
        self.deferred[r as usize].clear();
        self.replay_current[r as usize] = None;
        self.replay_queue[r as usize].clear();
        self.down.insert(r);
        // Every message of r's connections goes, also those a delaying transport still
        // holds back (see `Transport::drop_rank`).
        self.dropped += self.net.drop_rank(r);
        for s in self.up_ranks() {
            self.handle(s, Event::RankDown { rank: r })?;
        }
        Ok(())
    }

    /// Which rank is auth for each inode, by the survivors' word, for a restarted `r`: the
    /// inodes a survivor is auth for, and those it replicates from `r`. A renamed file
    /// migrates to its new dentry's rank (`locker::migrate`), but a renamed directory does
    /// not, so its auth need not own its primary dentry's dirfrag, and the subtree roots
    /// alone would misplace it (Ceph learns it from the rename's import / export events
    /// instead). A survivor in the middle of a migration speaks for the end state: one that
    /// holds an export to import at commit (it journaled the rename) claims the inode; the
    /// exporter does not (the rename's resolve decides, and the journals place the inode).
    fn inode_claims(&self, survivors: &[Rank], r: Rank) -> BTreeMap<Ino, Rank> {
        let mut claims = BTreeMap::new();
        for s in survivors {
            let l = self.rank(*s);
            let c = l.cache();
            for i in c.inode_ids() {
                let Some(n) = c.inode(i) else { continue };
                if l.importing(n.ino()) {
                    claims.insert(n.ino(), *s);
                } else if l.exporting(n.ino()) {
                    continue;
                } else if n.is_auth() {
                    claims.insert(n.ino(), *s);
                } else if n.auth() == r {
                    claims.entry(n.ino()).or_insert(r);
                }
            }
        }
        claims
    }

    fn up_ranks(&self) -> Vec<Rank> {
        (0..self.ranks.len() as Rank).filter(|r| !self.down.contains(r)).collect()
    }

    /// Restarts failed rank `r`: replay, resolve, rejoin, then clients re-send (see the
    /// module notes for each step and what is simplified). Messages the steps produce are
    /// queued; call `run` or `settle` afterwards.
    pub fn restart(&mut self, r: Rank) -> Result<RestartReport, ClusterError> {
        if r as usize >= self.ranks.len() {
            return Err(ClusterError::NoRank(r));
        }
        if !self.down.contains(&r) {
            return Err(ClusterError::NotDown(r));
        }
        let cfg = self.ranks[r as usize].config().clone();
        let stream = self.journals[r as usize].replay()?;
        let (mut locker, replay) = recovery::replay_rank(cfg, &stream.payloads)?;
        let mut report = RestartReport { torn_tail: stream.torn_tail, ..RestartReport::default() };
        let survivors = self.up_ranks();

        // Resolve: subtree authority from every rank, and the uncommitted peer updates.
        let mut roots = BTreeMap::new();
        for s in &survivors {
            for k in recovery::subtree_roots(self.rank(*s).cache()).into_keys() {
                roots.insert(k, *s);
            }
        }
        for k in &replay.subtree_roots {
            roots.insert(*k, r);
        }
        // Uncommitted peer updates of r's: commit iff the leader journaled its update (in
        // its durable journal, or submitted by a surviving leader), as Ceph's leader answers
        // a peer's resolve. A committed one is applied before authority is settled, so the
        // objects it creates are placed with the rest.
        let leader_journals: Vec<Vec<LogEvent>> =
            (0..self.ranks.len() as Rank).map(|l| self.journal_events(l).unwrap_or_default()).collect();
        report.peer_decisions = recovery::decide_peer_updates(&replay.uncommitted_peer_updates, |l, q| {
            leader_journals.get(l as usize).is_some_and(|j| recovery::journal_has_update(j, q))
                || (survivors.contains(&l) && self.rank(l).leader_journaled(ReqId(q.tid)))
        });
        let mut own_fx = Vec::new();
        for (p, (_, d)) in replay.uncommitted_peer_updates.iter().zip(&report.peer_decisions) {
            let fx = locker
                .resolve_replayed_prepare(p, *d == PeerDecision::Commit)
                .map_err(|source| ClusterError::Locker { rank: r, source })?;
            own_fx.extend(fx);
        }
        locker.resolve_authority(&roots);
        locker.resolve_inode_authority(&self.inode_claims(&survivors, r));
        // r's uncommitted leader updates: the survivors that still have them prepared
        // commit or roll back by r's journal.
        let mut witness_fx: Vec<(Rank, Vec<crate::effects::Effect>)> = Vec::new();
        let mut prepared_by: BTreeMap<u64, BTreeSet<Rank>> = BTreeMap::new();
        for s in &survivors {
            for (reqid, _) in self.rank(*s).prepared_for(r) {
                let q = wire::meta_reqid(0, reqid);
                let commit = recovery::journal_has_update(&leader_journals[r as usize], &q);
                if commit {
                    prepared_by.entry(reqid.0).or_default().insert(*s);
                }
                let fx = self.ranks[*s as usize]
                    .resolve_witnessed(r, reqid, commit)
                    .map_err(|source| ClusterError::Locker { rank: *s, source })?;
                witness_fx.push((*s, fx));
            }
        }
        for (q, op_type) in &replay.uncommitted_leader_updates {
            let origop = match op_type.as_str() {
                "link_remote" | "link_local" | "unlink_remote" => OrigOp::Link,
                "rmdir" => OrigOp::Rmdir,
                _ => OrigOp::Rename,
            };
            let witnesses = prepared_by.remove(&q.tid).unwrap_or_default();
            let fx = locker
                .resolve_uncommitted_leader(ReqId(q.tid), origop, witnesses)
                .map_err(|source| ClusterError::Locker { rank: r, source })?;
            own_fx.extend(fx);
        }
        self.ranks[r as usize] = locker;
        self.down.remove(&r);
        report.replay = replay;
        self.route(r, own_fx)?;
        for (s, fx) in witness_fx {
            self.route(s, fx)?;
        }

        // Strong rejoin of scatterlocks: replicas holding (or draining) wrlocks under MIX
        // make the restarted auth MIX, before anything else takes those locks.
        for s in &survivors {
            for (key, state) in self.rank(*s).rejoin_scatter_states(r) {
                let (_, fx) = self.ranks[r as usize]
                    .rejoin_scatter(*s, &key, state)
                    .map_err(|source| ClusterError::Locker { rank: r, source })?;
                self.route(r, fx)?;
            }
        }
        // Rejoin, first the survivors' remote locks, so the lock states the replicas adopt
        // below already include them.
        for s in &survivors {
            for l in self.rank(*s).rejoin_remote_locks(r) {
                let (ok, fx) = self.ranks[r as usize]
                    .rejoin_lock(*s, &l)
                    .map_err(|source| ClusterError::Locker { rank: r, source })?;
                if ok {
                    report.rejoined_locks += 1;
                } else {
                    report.lost_locks += 1;
                }
                self.route(r, fx)?;
            }
        }
        // Then the survivors' replicas of r's objects.
        for s in &survivors {
            for key in self.rank(*s).rejoin_replicas_of(r) {
                let got = self.ranks[r as usize]
                    .rejoin_replica(*s, &key)
                    .map_err(|source| ClusterError::Locker { rank: r, source })?;
                match got {
                    Some(obj) => {
                        let fx = self.ranks[*s as usize]
                            .rejoin_ack(r, obj)
                            .map_err(|source| ClusterError::Locker { rank: *s, source })?;
                        report.rejoined_replicas += 1;
                        self.route(*s, fx)?;
                    }
                    None => report.stale_replicas += 1,
                }
            }
        }
        // And r's replayed replicas of the survivors' objects.
        for (auth, key) in self.rank(r).rejoin_weak() {
            if self.down.contains(&auth) || auth as usize >= self.ranks.len() {
                continue;
            }
            let got = self.ranks[auth as usize]
                .rejoin_replica(r, &key)
                .map_err(|source| ClusterError::Locker { rank: auth, source })?;
            match got {
                Some(obj) => {
                    let fx = self.ranks[r as usize]
                        .rejoin_ack(auth, obj)
                        .map_err(|source| ClusterError::Locker { rank: r, source })?;
                    report.weak_replicas += 1;
                    self.route(r, fx)?;
                }
                None => report.stale_replicas += 1,
            }
        }
        self.journal_subtree_map(r)?;

        // Active: survivors retry what waited for r; clients re-send their unsafe requests.
        for s in &survivors {
            self.handle(*s, Event::RankActive { rank: r })?;
        }
        let resend: Vec<ClientRequest> = self.client_unsafe(r).cloned().collect();
        // Clientreplay: the requests that had an unsafe reply go first, keeping the inode
        // numbers those replies named (reserved before any request runs); the others are
        // re-sent as new requests once every replay is answered (Ceph's CLIENTREPLAY state).
        let (mut replays, others): (Vec<ClientRequest>, Vec<ClientRequest>) =
            resend.into_iter().partition(|q| self.early_replies.contains_key(&(r, q.reqid)));
        replays.sort_by_key(|q| self.early_replies.get(&(r, q.reqid)).map_or(0, |e| e.0));
        for req in &replays {
            let ino = self.early_replies.get(&(r, req.reqid)).and_then(|e| e.1);
            self.ranks[r as usize].expect_replay(req.reqid, ino);
            self.replaying[r as usize].insert(req.reqid);
        }
        let no_replays = replays.is_empty();
        let mut resend = replays;
        resend.extend(others);
        for req in resend {
            if !self.rank(r).sessions().any(|s| s.client() == req.client) {
                self.handle(r, Event::SessionOpen { client: req.client })?;
            }
            report.resent += 1;
            self.handle(r, Event::Request(req))?;
        }
        if no_replays {
            self.announce_recovered(r)?;
        }
        Ok(report)
    }
}
