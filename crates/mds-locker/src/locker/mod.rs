//! The Locker: a sans-I/O state machine over the metadata cache (mds spec §4).
//!
//! `Locker::handle` takes one `Event`, runs Ceph's algorithms against the cache and returns the
//! `Effect`s the driver must carry out. Work that Ceph defers to its finisher thread is
//! deferred here too, but finished before `handle` returns: woken lock waiters are re-dispatched
//! in FIFO order (`ready`), and inodes whose caps may need (re)issuing are collected
//! (`need_issue`) and issued once at the end, as Ceph's `need_issue` out-parameters do.
//!
//! The algorithms are split by topic across the submodules, all as `impl Locker` blocks:
//! `locks` (rd/wr/xlock start and finish, §4.5–§4.8, release order §4.18), `acquire`
//! (`acquire_locks`, §4.4), `transitions` (`eval_gather` and the initiators, §4.9–§4.10),
//! `eval` (choosing states and loners, §4.11) and `caps` (§4.14).

mod acquire;
mod caps;
mod cluster_recovery;
mod deferred_eval;
mod discover_inode;
mod eval;
mod find_ino;
mod flock_ops;
mod lock_msg;
mod locks;
mod migrate;
mod ops_attr;
mod ops_link;
mod ops_read;
mod peer;
mod peer_park;
mod rejoin;
mod replay;
mod replicate;
mod scatter;
mod server;
mod transitions;
mod witness;
mod witness_fetch;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lock_sm::LockState;

use crate::cache::Cache;
use crate::capability::{CompletedRequest, Session};
use crate::effects::{ClientRequest, Effect, Errno, Event, Op, Reply, ReplyData};
use crate::error::LockerError;
use crate::flock::{FileLock, FileLockRule};
use crate::ids::{ClientId, Ino, InodeId, JournalSeq, LockId, Rank, ReqId};
use crate::journal::{JournalEntry, MetaChange};
use crate::lock::Lock;
use crate::mutation::{LockOp, Mutation, Phase, Projection, RDLOCK, REMOTE_WRLOCK, WRLOCK, XLOCK};

/// Tunables (Ceph's `mds_*` options that matter here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockerConfig {
    /// This rank.
    pub rank: Rank,
    /// Active ranks, `0..max_mds` (Ceph's mdsmap `max_mds`): the ranks asked when a request
    /// names a base inode this rank has never seen (`find_ino`). With 1, such a request
    /// fails with ENOENT at once, as a single MDS has nobody to ask.
    pub max_mds: u32,
    /// A client that leaves a revoke unanswered this long is evicted (`mds_session_timeout`
    /// semantics folded into one number; Ceph's default is 60 s).
    pub session_timeout_ms: u64,
    /// `mds_early_reply` (default true, §4.18).
    pub early_reply: bool,
    /// Bound on re-dispatches of woken requests within one event, so a bug cannot spin
    /// forever (TigerBeetle-style bound on every loop).
    pub max_dispatch_per_event: usize,
    /// Record every lock state change (for tests asserting exact walks, e.g. §8 fact 38).
    pub record_transitions: bool,
    /// Record, per request, the locks it held (in grant order) when it decided its result:
    /// at journal submit for a mutation, at the reply otherwise (tests assert §5.2 lock sets
    /// on it; see `take_lock_sets`).
    pub record_lock_sets: bool,
    /// Completed-request table entries kept per session (Ceph's `mds_max_completed_requests`
    /// default); the oldest ids are forgotten first.
    pub max_completed_requests: usize,
    /// `mds_scatter_nudge_interval` (default 5 s, §4.13): a scatterlock whose frag changes
    /// have waited this long to be folded is nudged by the tick.
    pub scatter_nudge_interval_ms: u64,
    /// Record every lock grant, release and state change in order, for the simulator's trace
    /// and its grant-time checks (`lock_events`, `take_lock_events`).
    pub record_lock_events: bool,
    /// A deliberate bug for proving the simulator catches it (issue 9): grant a rdlock in
    /// SYNC_LOCK, which every table forbids. Exists only with the `bug-injection` feature.
    #[cfg(feature = "bug-injection")]
    pub inject_rdlock_in_sync_lock: bool,
}

impl Default for LockerConfig {
    fn default() -> Self {
        LockerConfig {
            rank: 0,
            max_mds: 1,
            session_timeout_ms: 60_000,
            early_reply: true,
            max_dispatch_per_event: 100_000,
            record_transitions: false,
            record_lock_sets: false,
            max_completed_requests: 100_000,
            scatter_nudge_interval_ms: 5_000,
            record_lock_events: false,
            #[cfg(feature = "bug-injection")]
            inject_rdlock_in_sync_lock: false,
        }
    }
}

/// Counters for benchmarks and the "transitions per op" figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockerStats {
    /// Lock state changes.
    pub transitions: u64,
    /// Waiters woken.
    pub wakeups: u64,
    /// Journal entries submitted.
    pub journal_submits: u64,
    /// Journal flushes requested.
    pub journal_flushes: u64,
    /// Cap messages sent.
    pub cap_messages: u64,
    /// Messages sent to other ranks.
    pub messages_sent: u64,
    /// Messages received from other ranks.
    pub messages_received: u64,
    /// Requests forwarded to another rank.
    pub forwards: u64,
}

/// One recorded lock state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The lock.
    pub lock: LockId,
    /// State before.
    pub from: LockState,
    /// State after.
    pub to: LockState,
}

/// The reply a request will send once it finishes.
type PendingReply = (Result<Option<Ino>, Errno>, ReplyData);

/// The single-rank Locker.
#[derive(Debug, Clone)]
pub struct Locker {
    cfg: LockerConfig,
    pub(crate) cache: Cache,
    pub(crate) sessions: BTreeMap<ClientId, Session>,
    pub(crate) requests: BTreeMap<ReqId, Mutation>,
    pub(crate) ops: BTreeMap<ReqId, Op>,
    ready: VecDeque<ReqId>,
    pub(crate) fx: Vec<Effect>,
    pub(crate) need_issue: BTreeSet<InodeId>,
    pub(crate) need_flush: bool,
    now_ms: u64,
    next_seq: u64,
    committing: BTreeMap<JournalSeq, ReqId>,
    replies: BTreeMap<ReqId, PendingReply>,
    pub(crate) next_lease_seq: u32,
    pub(crate) stats: LockerStats,
    transitions: Vec<Transition>,
    /// Re-sent copies of requests still in flight, answered when the original finishes.
    retries: BTreeMap<ReqId, Vec<ClientRequest>>,
    /// Re-sent requests whose original finished: run through `start_request` again.
    resubmit: VecDeque<ClientRequest>,
    /// SETFILELOCK requests blocked on a conflicting advisory lock: what they want.
    pub(crate) flock_waiting: BTreeMap<ReqId, (InodeId, FileLockRule, FileLock)>,
    lock_sets: BTreeMap<ReqId, Vec<(LockId, u8)>>,
    /// Discovers in flight: (directory, name) → requests waiting for the reply.
    pub(crate) discovering: BTreeMap<(Ino, String), Vec<ReqId>>,
    /// The rank each discover in `discovering` went to. Recomputing it from the cache at a
    /// rank failure is wrong once another reply moved the directory's frag auth: the lost
    /// discover then stayed pending forever (simulator, 3 ranks, rank-crash, seed 388).
    pub(crate) discover_to: BTreeMap<(Ino, String), Rank>,
    /// Requests told by a discover reply that the name they traverse does not exist.
    pub(crate) discover_missing: BTreeMap<ReqId, (Ino, String)>,
    /// Peer ranks that failed and are not active again (`Event::RankDown` until
    /// `Event::RankActive`): a request still locking meanwhile may be parked on their return
    /// (Ceph's `wait_for_active_peer`), which `rank_active` retries.
    pub(crate) peers_down: std::collections::BTreeSet<Rank>,
    /// Ranks not active yet and the requests waiting for all of them (`cluster_recovery`).
    pub(crate) recovery: cluster_recovery::ClusterRecovery,
    /// Scatter-gather bookkeeping (§4.13): updated list, writebehinds, parked REQRDLOCKs.
    scatter: scatter::ScatterState,
    /// Recorded lock events (`record_lock_events`).
    pub(crate) lock_events: Vec<crate::lock_events::LockEvent>,
    /// Two-phase updates with witnesses, as leader and as witness (§4.17).
    pub(crate) twophase: witness::TwoPhase,
    /// Inodes moving to another rank with a rename, as exporter and importer.
    pub(crate) migrate: migrate::MigrateState,
    /// Requests a client will replay after this rank restarted, with the inode number their
    /// unsafe reply carried, if any (`expect_replay`).
    pub(crate) replay_inos: BTreeMap<ReqId, Option<Ino>>,
    /// Searches for base inodes this rank lacks (`find_ino`); volatile, like Ceph's.
    pub(crate) finds: find_ino::FindInos,
    /// Replicated auth locks whose evaluation `eval_gather` postponed until the requests it
    /// woke have run (`deferred_eval`).
    deferred_evals: BTreeSet<LockId>,
    /// Peer messages waiting for another leader's peer request with the same id to end
    /// (`peer_park`).
    parked_peer_msgs: Vec<(Rank, crate::message::PeerMsg)>,
}

impl Locker {
    /// A Locker over a fresh cache (root, `~mdsN`, strays).
    pub fn new(cfg: LockerConfig) -> Locker {
        let cache = Cache::new(cfg.rank);
        Locker {
            cfg,
            cache,
            sessions: BTreeMap::new(),
            requests: BTreeMap::new(),
            ops: BTreeMap::new(),
            ready: VecDeque::new(),
            fx: Vec::new(),
            need_issue: BTreeSet::new(),
            need_flush: false,
            now_ms: 0,
            next_seq: 1,
            committing: BTreeMap::new(),
            replies: BTreeMap::new(),
            next_lease_seq: 0,
            stats: LockerStats::default(),
            transitions: Vec::new(),
            retries: BTreeMap::new(),
            resubmit: VecDeque::new(),
            flock_waiting: BTreeMap::new(),
            lock_sets: BTreeMap::new(),
            discovering: BTreeMap::new(),
            discover_to: BTreeMap::new(),
            replay_inos: BTreeMap::new(),
            discover_missing: BTreeMap::new(),
            peers_down: std::collections::BTreeSet::new(),
            recovery: cluster_recovery::ClusterRecovery::default(),
            scatter: scatter::ScatterState::default(),
            lock_events: Vec::new(),
            twophase: witness::TwoPhase::default(),
            finds: find_ino::FindInos::default(),
            migrate: migrate::MigrateState::default(),
            deferred_evals: BTreeSet::new(),
            parked_peer_msgs: Vec::new(),
        }
    }

    /// Takes the recorded state changes (empty unless `record_transitions` is set).
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Takes the recorded lock sets (empty unless `record_lock_sets` is set): for each
    /// finished decision, the locks held then, in grant order, with their `RDLOCK` / `WRLOCK`
    /// / `XLOCK` flag.
    pub fn take_lock_sets(&mut self) -> BTreeMap<ReqId, Vec<(LockId, u8)>> {
        std::mem::take(&mut self.lock_sets)
    }

    fn record_lock_set(&mut self, reqid: ReqId) {
        if self.cfg.record_lock_sets
            && let Some(m) = self.requests.get(&reqid)
        {
            let still_held = m.acquired.iter().filter(|(l, f)| m.holds(*l, *f)).copied().collect();
            self.lock_sets.insert(reqid, still_held);
        }
    }

    /// Configuration.
    pub fn config(&self) -> &LockerConfig {
        &self.cfg
    }

    /// The metadata cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Mutable cache access for building a namespace before any request runs (tests, replay).
    /// Changing objects that are locked or have caps bypasses the Locker's rules.
    pub fn cache_mut(&mut self) -> &mut Cache {
        &mut self.cache
    }

    /// A lock's runtime state.
    pub fn lock(&self, id: LockId) -> Result<&Lock, LockerError> {
        self.cache.lock(id)
    }

    /// An in-flight request.
    pub fn request(&self, reqid: ReqId) -> Option<&Mutation> {
        self.requests.get(&reqid)
    }

    /// All in-flight requests by id.
    pub fn requests(&self) -> impl Iterator<Item = &Mutation> {
        self.requests.values()
    }

    /// Open sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// The Locker clock (advanced by `Event::Tick`).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Counters.
    pub fn stats(&self) -> LockerStats {
        self.stats
    }

    /// Journal entries submitted and not yet safe, in order.
    pub fn committing(&self) -> impl Iterator<Item = (JournalSeq, ReqId)> + '_ {
        self.committing.iter().map(|(s, r)| (*s, *r))
    }

    /// Processes one event and returns the effects to carry out, in order.
    ///
    /// An `Err` means the event was refused before anything changed (unknown request, missing
    /// session, a lock op Ceph never performs…).
    pub fn handle(&mut self, event: Event) -> Result<Vec<Effect>, LockerError> {
        tracing::trace!(?event, "handle");
        let result = self.handle_event(event).and_then(|()| self.finish_event());
        match result {
            Ok(()) => Ok(std::mem::take(&mut self.fx)),
            Err(e) => {
                self.fx.clear();
                Err(e)
            }
        }
    }

    /// Ceph's `issue_new_caps`: gives `client` a capability on inode `ino` wanting `wanted`,
    /// lets the inode re-evaluate its locks and loner, and issues what is allowed. Server
    /// operations (open, create) do this themselves; drivers and tests use it to give clients
    /// caps without a namespace operation.
    pub fn open_cap(
        &mut self,
        client: ClientId,
        ino: crate::ids::Ino,
        wanted: u32,
    ) -> Result<Vec<Effect>, LockerError> {
        if !self.sessions.contains_key(&client) {
            return Err(LockerError::NoSession(client));
        }
        let inode = self.cache.lookup_ino(ino).ok_or(LockerError::UnknownInode(ino))?;
        let result = self.add_cap(client, inode, wanted).and_then(|()| self.finish_event());
        match result {
            Ok(()) => Ok(std::mem::take(&mut self.fx)),
            Err(e) => {
                self.fx.clear();
                Err(e)
            }
        }
    }

    fn handle_event(&mut self, event: Event) -> Result<(), LockerError> {
        match event {
            Event::SessionOpen { client } => {
                self.sessions.entry(client).or_insert_with(|| Session::new(client, self.now_ms));
                Ok(())
            }
            Event::SessionTimeout { client } => self.evict(client),
            Event::Request(req) => self.start_request(req),
            Event::FinishRequest { reqid } => self.finish_request(reqid),
            Event::ClientCaps(msg) => self.handle_client_caps(msg),
            Event::LeaseRelease { client, dir, name, seq } => {
                self.handle_lease_release(client, dir, &name, seq)
            }
            Event::Message { from, msg } => self.handle_message(from, msg),
            Event::JournalSafe { upto } => self.journal_safe(upto),
            Event::Tick { now_ms } => self.tick(now_ms),
            Event::RankDown { rank } => {
                self.recovery_rank_down(rank);
                self.rank_down(rank)?;
                self.find_ino_rank_down(rank)
            }
            Event::RankActive { rank } => {
                self.rank_active(rank)?;
                self.find_ino_rank_active(rank)
            }
            Event::RankRecovered { rank } => {
                self.rank_recovered(rank);
                Ok(())
            }
        }
    }

    /// Drains the work Ceph's finisher would run: woken requests, then cap issues, then one
    /// journal flush if anyone asked for it.
    fn finish_event(&mut self) -> Result<(), LockerError> {
        let mut budget = self.cfg.max_dispatch_per_event;
        loop {
            if let Some(reqid) = self.ready.pop_front() {
                if budget == 0 {
                    tracing::error!(%reqid, "dispatch budget exhausted; leaving requests queued");
                    self.ready.push_front(reqid);
                    break;
                }
                budget -= 1;
                if self.retry_fetching_prep(reqid)? {
                    // A witness's prep that waited for a dentry it fetched.
                } else if self.requests.get(&reqid).is_some_and(|m| m.phase == Phase::Locking) {
                    self.dispatch(reqid)?;
                }
            } else if self.run_deferred_eval()? {
                // A replicated lock left idle by the requests its transition woke.
            } else if self.unpark_peer_message()? {
                // A peer request that met another leader's peer request of the same id.
            } else if self.retry_parked_reqrdlock()? {
                // A replica's REQRDLOCK parked until its lock became stable (§4.12).
            } else if self.poll_exports()? {
                // A rename's prep waited for the inode it exports to freeze.
            } else if let Some(req) = self.resubmit.pop_front() {
                // Ceph's C_MDS_RetryMessage: the re-sent copy runs once the original is gone,
                // and meets the completed-request table if the original succeeded.
                let reqid = req.reqid;
                match self.start_request(req) {
                    Ok(()) => {}
                    Err(e @ (LockerError::NoSession(_) | LockerError::DuplicateRequest(_))) => {
                        tracing::debug!(%reqid, error = %e, "dropping re-sent request");
                    }
                    Err(e) => return Err(e),
                }
            } else {
                break;
            }
        }
        let inodes = std::mem::take(&mut self.need_issue);
        for inode in inodes {
            self.issue_caps(inode)?;
        }
        self.answer_deferred_find_inos();
        if std::mem::take(&mut self.need_flush) {
            self.stats.journal_flushes += 1;
            self.fx.push(Effect::JournalFlush);
        }
        Ok(())
    }

    // ---- small helpers shared by the submodules ----------------------------------------

    pub(crate) fn lk(&self, id: LockId) -> Result<&Lock, LockerError> {
        self.cache.lock(id)
    }

    pub(crate) fn lkm(&mut self, id: LockId) -> Result<&mut Lock, LockerError> {
        self.cache.lock_mut(id)
    }

    pub(crate) fn mutation(&self, reqid: ReqId) -> Result<&Mutation, LockerError> {
        self.requests.get(&reqid).ok_or(LockerError::UnknownRequest(reqid))
    }

    pub(crate) fn mutation_mut(&mut self, reqid: ReqId) -> Result<&mut Mutation, LockerError> {
        self.requests.get_mut(&reqid).ok_or(LockerError::UnknownRequest(reqid))
    }

    pub(crate) fn mark_event(&mut self, reqid: ReqId, what: &str) {
        let now = self.now_ms;
        if let Some(m) = self.requests.get_mut(&reqid) {
            m.mark_event(now, what);
        }
        tracing::debug!(%reqid, what, "op event");
    }

    /// Changes a lock's state. On the auth a lock auth-pins its parent exactly while it is
    /// transitional (§4.1), so the pin is taken or dropped here whenever stability changes.
    pub(crate) fn set_state(&mut self, id: LockId, to: LockState) -> Result<(), LockerError> {
        let lock = self.cache.lock_mut(id)?;
        let from = lock.state;
        let was_stable = lock.is_stable();
        lock.state = to;
        let now_stable = lock.is_stable();
        let mut delta = 0;
        if lock.is_auth {
            if was_stable && !now_stable {
                lock.auth_pinned = true;
                delta = 1;
            } else if !was_stable && now_stable {
                lock.auth_pinned = false;
                delta = -1;
            }
        }
        let is_auth = lock.is_auth;
        if delta != 0 {
            self.cache.add_auth_pin(id.obj, delta);
        }
        if is_auth {
            self.lock_state_changed(id, was_stable, now_stable);
        }
        self.stats.transitions += 1;
        if self.cfg.record_transitions {
            self.transitions.push(Transition { lock: id, from, to });
        }
        self.note_state(id, from, to);
        tracing::debug!(rank = self.cache.rank(), lock = ?id, from = from.log_name(), to = to.log_name(), "lock state");
        Ok(())
    }

    /// Wakes the waiters interested in `mask`, in FIFO order; they are re-dispatched before
    /// `handle` returns.
    pub(crate) fn wake(&mut self, id: LockId, mask: u8) -> Result<(), LockerError> {
        let woken = self.cache.lock_mut(id)?.take_waiters(mask);
        for reqid in woken {
            if let Some(m) = self.requests.get_mut(&reqid) {
                m.waiting_on = None;
            }
            self.stats.wakeups += 1;
            self.ready.push_back(reqid);
            self.fx.push(Effect::Woken { reqid, lock: id });
        }
        Ok(())
    }

    /// Re-dispatches a request before `handle` returns (it waited on something other than a
    /// lock: a discover reply, a peer's ack).
    pub(crate) fn requeue(&mut self, reqid: ReqId) {
        if !self.ready.contains(&reqid) {
            self.ready.push_back(reqid);
        }
    }

    /// Queues `reqid` on `id`'s waiter list.
    pub(crate) fn add_waiter(&mut self, id: LockId, mask: u8, reqid: ReqId) -> Result<(), LockerError> {
        self.cache.lock_mut(id)?.add_waiter(mask, reqid);
        self.mutation_mut(reqid)?.waiting_on = Some(id);
        Ok(())
    }

    /// Asks for caps to be re-issued on the lock's inode at the end of the event.
    pub(crate) fn request_issue(&mut self, id: LockId) {
        if let Some(i) = id.inode_id() {
            self.need_issue.insert(i);
        }
    }

    /// `nudge_log` (§8 fact 53): flush the journal iff we are auth and the lock is unstable and
    /// rd/wr/x-locked, because a waiter is then likely stuck behind an unsafe update.
    pub(crate) fn nudge_log(&mut self, id: LockId) -> Result<(), LockerError> {
        let lock = self.lk(id)?;
        if lock.is_auth() && lock.is_unstable_and_locked() {
            self.need_flush = true;
        }
        Ok(())
    }

    // ---- request lifecycle (§4.18) -------------------------------------------------------

    fn start_request(&mut self, req: ClientRequest) -> Result<(), LockerError> {
        if req.reqid.0 >= ReqId::INTERNAL_BASE {
            return Err(LockerError::ReservedRequestId(req.reqid));
        }
        let Some(session) = self.sessions.get(&req.client) else {
            return Err(LockerError::NoSession(req.client));
        };
        if let Some(done) = session.completed.get(&req.reqid).cloned() {
            // Never run a write twice: answer from the completed-request table (§4.18).
            tracing::debug!(reqid = %req.reqid, client = req.client, "already completed; replaying reply");
            self.fx.push(Effect::Reply(Reply {
                reqid: req.reqid,
                client: req.client,
                safe: true,
                result: done.result,
                data: done.data,
            }));
            return Ok(());
        }
        if let Some(m) = self.requests.get(&req.reqid) {
            if m.client != Some(req.client) {
                return Err(LockerError::DuplicateRequest(req.reqid));
            }
            // A re-sent copy of a request in flight waits for the original to finish.
            self.validate_op(&req.op)?;
            tracing::debug!(reqid = %req.reqid, "request already in flight; waiting for it to finish");
            self.retries.entry(req.reqid).or_default().push(req);
            return Ok(());
        }
        let ClientRequest { reqid, client, op } = req;
        self.validate_op(&op)?;
        self.requests.insert(reqid, Mutation::new(reqid, Some(client), self.now_ms));
        self.ops.insert(reqid, op);
        if let Some(s) = self.sessions.get_mut(&client) {
            s.requests.insert(reqid);
            s.last_seen_ms = self.now_ms;
        }
        self.dispatch(reqid)
    }

    /// Refuses lock ops Ceph never performs, so the engine only sees sane vectors.
    fn validate_op(&self, op: &Op) -> Result<(), LockerError> {
        match op {
            Op::LockSet { locks, .. } => {
                for o in locks {
                    self.validate_lock_op(o)?;
                }
                Ok(())
            }
            // Path operations report bad paths to the client as POSIX errors.
            _ => Ok(()),
        }
    }

    pub(crate) fn validate_lock_op(&self, o: &LockOp) -> Result<(), LockerError> {
        use lock_sm::Machine;
        let lock = self.cache.lock(o.lock)?;
        let m = lock.machine();
        let bad = |op, why| Err(LockerError::UnsupportedLockOp { op, lock: o.lock, why });
        if o.flags & (RDLOCK | WRLOCK | XLOCK | REMOTE_WRLOCK) == 0 {
            return bad("lock", "no lock mode requested");
        }
        if o.flags & REMOTE_WRLOCK != 0 || o.wrlock_target.is_some() {
            // §4.3 / §4.6: a remote wrlock names the rank that takes it, never this one, and
            // never merges with an xlock. The Locker does not know how many ranks exist; a
            // rank outside the cluster is the transport's error.
            match o.wrlock_target {
                None => return bad("remote_wrlock", "a remote wrlock needs a target rank"),
                Some(_) if o.flags & REMOTE_WRLOCK == 0 => {
                    return bad("remote_wrlock", "a target rank without the REMOTE_WRLOCK flag");
                }
                Some(t) if t == self.cache.rank() => {
                    return bad("remote_wrlock", "the target of a remote wrlock is another rank");
                }
                Some(_) => {}
            }
            if o.flags & XLOCK != 0 {
                return bad("remote_wrlock", "an xlock cannot merge with a remote wrlock (§4.3)");
            }
            if matches!(m, Machine::Simple | Machine::Local) {
                return bad("remote_wrlock", "only scatterlocks and filelocks are remotely wrlocked (§4.6)");
            }
        }
        if o.flags & XLOCK != 0 && !lock.is_auth() && !m.def().can_remote_xlock {
            return bad(
                "xlock",
                "only simplelocks can be xlocked through their auth (§1.2 can_remote_xlock)",
            );
        }
        if o.flags & XLOCK != 0 && m == Machine::Scatter {
            return bad("xlock", "no request xlocks INEST or IDFT (§1.4)");
        }
        if o.flags & WRLOCK != 0 && o.flags & XLOCK == 0 && m == Machine::Simple {
            return bad("wrlock", "simplelocks are rdlocked or xlocked, never wrlocked (§4.6)");
        }
        if o.flags & RDLOCK != 0 && o.flags & XLOCK == 0 && m == Machine::Local {
            return bad("rdlock", "locallocks use wrlock as the shared mode (§1.6)");
        }
        Ok(())
    }

    /// Runs (or re-runs, after a wake-up) a request as far as it can go.
    fn dispatch(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        if self.requests.get(&reqid).is_some_and(|m| m.peer_of.is_some()) {
            return self.dispatch_peer(reqid);
        }
        let Some(op) = self.ops.get(&reqid).cloned() else {
            return Ok(());
        };
        match op {
            Op::LockSet { locks, journal } => {
                if !self.acquire_locks(reqid, &locks)? {
                    return Ok(());
                }
                if journal {
                    let entry = JournalEntry::update(reqid, "lockset", Vec::new());
                    self.journal_and_reply(reqid, entry, Ok(None))
                } else {
                    self.mutation_mut(reqid)?.phase = Phase::Holding;
                    self.fx.push(Effect::LocksAcquired { reqid });
                    Ok(())
                }
            }
            Op::Lookup { path, mask } | Op::Getattr { path, mask } => self.handle_getattr(reqid, &path, mask),
            Op::Mkdir { path, mode } => self.handle_mkdir(reqid, &path, mode),
            Op::Create { path, mode, excl, file_mode } => {
                self.handle_create(reqid, &path, mode, excl, file_mode)
            }
            Op::Readdir { path } => self.handle_readdir(reqid, &path),
            Op::Open { path, file_mode, trunc, directory, mask } => {
                self.handle_open(reqid, &path, file_mode, trunc, directory, mask)
            }
            Op::Mknod { path, mode } => self.handle_mknod(reqid, &path, mode),
            Op::Symlink { path, target } => self.handle_symlink(reqid, &path, &target),
            Op::Unlink { path } => self.handle_unlink(reqid, &path, false),
            Op::Rmdir { path } => self.handle_unlink(reqid, &path, true),
            Op::Link { path, target } => self.handle_link(reqid, &path, &target),
            Op::Rename { dest, src } => self.handle_rename(reqid, &dest, &src),
            Op::Setattr { path, attrs } => self.handle_setattr(reqid, &path, attrs),
            Op::Setxattr { path, name, value, flags } => {
                self.handle_setxattr(reqid, &path, &name, Some(value), flags)
            }
            Op::Removexattr { path, name } => {
                self.handle_setxattr(reqid, &path, &name, None, crate::effects::XattrFlags::Replace)
            }
            Op::SetFileLock { path, rule, lock, wait } => {
                self.handle_setfilelock(reqid, &path, rule, lock, wait)
            }
            Op::GetFileLock { path, rule, lock } => self.handle_getfilelock(reqid, &path, rule, lock),
        }
    }

    /// `journal_and_reply` (§4.18): early reply if allowed (xlocks → XLOCKDONE first), submit
    /// the entry, then drop rdlocks (except ISNAP/IPOLICY) — or flush if no early reply went
    /// out.
    pub(crate) fn journal_and_reply(
        &mut self,
        reqid: ReqId,
        entry: JournalEntry,
        result: Result<Option<Ino>, Errno>,
    ) -> Result<(), LockerError> {
        self.record_lock_set(reqid);
        let client = self.mutation(reqid)?.client;
        // §4.18: never with journaled peers (witnesses).
        // A replayed request was already answered early before the rank failed: Ceph sends
        // no second early reply for it.
        let early = self.cfg.early_reply
            && client.is_some()
            && !self.twophase.has_witnesses(reqid)
            && !self.replay_inos.contains_key(&reqid);
        if let (true, Some(client)) = (early, client) {
            // RENAME keeps its dentry xlocks until safe (§8 fact 59).
            let skip_dentry = matches!(self.ops.get(&reqid), Some(Op::Rename { .. }));
            self.set_xlocks_done(reqid, skip_dentry)?;
            tracing::debug!(%reqid, client, "early reply");
            self.fx.push(Effect::Reply(Reply { reqid, client, safe: false, result, data: ReplyData::None }));
            self.mutation_mut(reqid)?.early_replied = true;
            self.mark_event(reqid, "early_replied");
        }
        let seq = JournalSeq(self.next_seq);
        self.next_seq += 1;
        self.stats.journal_submits += 1;
        self.fx.push(Effect::JournalSubmit { seq, entry });
        self.committing.insert(seq, reqid);
        self.replies.insert(reqid, (result, ReplyData::None));
        self.mutation_mut(reqid)?.phase = Phase::Committing(seq);
        self.mark_event(reqid, "submit entry: journal_and_reply");
        if early {
            self.drop_rdlocks_for_early_reply(reqid)?;
        } else {
            self.need_flush = true;
        }
        Ok(())
    }

    fn journal_safe(&mut self, upto: JournalSeq) -> Result<(), LockerError> {
        let done: Vec<(JournalSeq, ReqId)> = self.committing.range(..=upto).map(|(s, r)| (*s, *r)).collect();
        for (seq, reqid) in done {
            // Two-phase entries journaled before this one first: projections install in
            // journal order (witness.rs `witness_prepare_safe`).
            self.twophase_safe_below(seq)?;
            self.committing.remove(&seq);
            self.commit(reqid)?;
        }
        self.twophase_safe(upto)
    }

    /// The journal entry is safe: apply projections oldest-first, drop every non-rdlock, send
    /// the safe reply, then drop the rest (§4.18, §6.3, §8 fact 60).
    fn commit(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        self.mark_event(reqid, "journal_committed");
        let projections = std::mem::take(&mut self.mutation_mut(reqid)?.projections);
        for p in projections {
            match p {
                Projection::Inode(i) => {
                    self.cache.pop_projected_inode(i);
                }
                Projection::Linkage(d) => {
                    self.cache.pop_projected_linkage(d);
                }
                Projection::Fnode(f) => {
                    self.cache.pop_projected_fnode(f);
                }
            }
        }
        self.cap_flush_committed(reqid)?;
        self.scatter_writebehind_committed(reqid)?;
        self.commit_witnesses(reqid)?;
        self.drop_non_rdlocks(reqid)?;
        let (result, data) = self.replies.remove(&reqid).unwrap_or((Ok(None), ReplyData::None));
        self.send_safe_reply(reqid, result, data)?;
        self.cleanup_request(reqid)?;
        // A rename that took over an inode from its old auth becomes its auth now that its
        // own (remote) locks on it are gone.
        self.import_committed(reqid)
    }

    /// `reply_client_request`'s tail: send the safe reply and, for a successful write, record
    /// it in the session's completed-request table so a re-sent copy is answered, not re-run.
    pub(crate) fn send_safe_reply(
        &mut self,
        reqid: ReqId,
        result: Result<Option<Ino>, Errno>,
        data: ReplyData,
    ) -> Result<(), LockerError> {
        if !matches!(self.mutation(reqid)?.phase, Phase::Committing(_)) {
            self.record_lock_set(reqid);
        }
        let Some(client) = self.mutation(reqid)?.client else {
            return Ok(());
        };
        self.mark_event(reqid, "replying");
        tracing::debug!(%reqid, client, ?result, "safe reply");
        let is_write = self.ops.get(&reqid).is_some_and(Op::is_write);
        if is_write && result.is_ok() && !self.mutation(reqid)?.orphaned {
            let max = self.cfg.max_completed_requests;
            if let Some(s) = self.sessions.get_mut(&client) {
                s.add_completed(reqid, CompletedRequest { result, data: data.clone() }, max);
            }
        }
        self.fx.push(Effect::Reply(Reply { reqid, client, safe: true, result, data }));
        Ok(())
    }

    fn finish_request(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        if let Phase::Committing(_) = m.phase {
            return Err(LockerError::RequestCommitting(reqid));
        }
        self.cleanup_request(reqid)
    }

    /// `request_cleanup`: drop all locks (cancelling a started xlock), forget waiters and auth
    /// pins, and forget the request.
    pub(crate) fn cleanup_request(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        self.mark_event(reqid, "cleaned up request");
        self.replay_inos.remove(&reqid);
        self.drop_locks(reqid)?;
        self.release_peers(reqid)?;
        let m = self.mutation_mut(reqid)?;
        let waiting = m.waiting_on.take();
        let pins = std::mem::take(&mut m.auth_pins);
        let new_dentries = std::mem::take(&mut m.new_dentries);
        let client = m.client;
        if let Some(l) = waiting {
            self.lkm(l)?.remove_waiters_of(reqid);
        }
        for obj in pins {
            self.cache.add_auth_pin(obj, -1);
        }
        self.requests.remove(&reqid);
        self.ops.remove(&reqid);
        self.replies.remove(&reqid);
        self.flock_waiting.remove(&reqid);
        self.discover_missing.remove(&reqid);
        self.find_ino_forget(reqid);
        self.twophase.fetching.remove(&reqid);
        self.recovery_forget(reqid);
        for waiting in self.discovering.values_mut() {
            waiting.retain(|r| *r != reqid);
        }
        self.ready.retain(|r| *r != reqid);
        if let Some(s) = client.and_then(|c| self.sessions.get_mut(&c)) {
            s.requests.remove(&reqid);
        }
        // Negative dentries the request added and nobody else uses go, as Ceph's LRU would
        // trim them, so a failed request leaves the cache as it found it.
        for dn in new_dentries {
            self.cache.trim_null_dentry(dn);
        }
        if let Some(copies) = self.retries.remove(&reqid) {
            self.resubmit.extend(copies);
        }
        Ok(())
    }

    /// Drops the request's auth pins while it waits without locks (Ceph's
    /// `drop_local_auth_pins`), so a blocked file lock request pins nothing.
    pub(crate) fn drop_local_auth_pins(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let pins = std::mem::take(&mut self.mutation_mut(reqid)?.auth_pins);
        for obj in pins {
            self.cache.add_auth_pin(obj, -1);
        }
        Ok(())
    }

    /// Records a projection so it is applied when the mutation's entry is safe. A mutation
    /// projects each object once (§8 fact 69), so a repeat is ignored.
    pub(crate) fn note_projection(&mut self, reqid: ReqId, p: Projection) -> Result<(), LockerError> {
        let m = self.mutation_mut(reqid)?;
        if !m.projections.contains(&p) {
            m.projections.push(p);
        }
        Ok(())
    }

    /// The journal payload for the projections recorded so far.
    pub(crate) fn projected_changes(&self, reqid: ReqId) -> Result<Vec<MetaChange>, LockerError> {
        let mut out = Vec::new();
        for p in &self.mutation(reqid)?.projections {
            match *p {
                Projection::Inode(id) => {
                    if let Some(n) = self.cache.inode(id)
                        && let Some(pi) = n.projections().filter(|pi| pi.by == reqid).last()
                    {
                        out.push(MetaChange::Inode { id, ino: n.ino(), data: pi.data.clone() });
                    }
                }
                Projection::Linkage(id) => {
                    if let Some(d) = self.cache.dentry(id)
                        && let Some(pl) = d.projections().filter(|pl| pl.by == reqid).last()
                    {
                        let dir = self
                            .cache
                            .dentry_dir_inode(id)
                            .and_then(|i| self.cache.inode(i))
                            .map(|i| i.ino())
                            .unwrap_or(crate::ids::Ino(0));
                        out.push(MetaChange::Dentry {
                            id,
                            dir,
                            name: d.name().to_string(),
                            linkage: pl.linkage,
                            version: pl.version,
                        });
                    }
                }
                Projection::Fnode(id) => {
                    if let Some(f) = self.cache.dirfrag(id) {
                        let dir = self.cache.inode(f.inode()).map(|i| i.ino()).unwrap_or(crate::ids::Ino(0));
                        out.push(MetaChange::Dirfrag { id, dir, fnode: *f.projected_fnode() });
                    }
                }
            }
        }
        Ok(out)
    }

    fn tick(&mut self, now_ms: u64) -> Result<(), LockerError> {
        self.now_ms = self.now_ms.max(now_ms);
        let timeout = self.cfg.session_timeout_ms;
        let mut late: Vec<ClientId> = Vec::new();
        for (client, s) in &self.sessions {
            let oldest = s
                .caps
                .iter()
                .filter_map(|i| self.cache.inode(*i).and_then(|n| n.caps.get(client)))
                .filter_map(|c| c.oldest_revoke_ms())
                .min();
            if oldest.is_some_and(|t| self.now_ms.saturating_sub(t) >= timeout) {
                late.push(*client);
            }
        }
        for client in late {
            tracing::warn!(client, "client did not answer a cap revoke within the session timeout; evicting");
            self.evict(client)?;
        }
        self.scatter_tick()
    }

    /// Evicts a client: kills its requests that are not yet committing, drops its caps and
    /// leases, and re-evaluates the affected locks so gathers waiting on it complete.
    fn evict(&mut self, client: ClientId) -> Result<(), LockerError> {
        let Some(session) = self.sessions.remove(&client) else {
            return Err(LockerError::NoSession(client));
        };
        for reqid in session.requests.iter().copied() {
            if self.requests.get(&reqid).is_some_and(|m| !matches!(m.phase, Phase::Committing(_))) {
                self.cleanup_request(reqid)?;
            } else if let Some(m) = self.requests.get_mut(&reqid) {
                // Its journal entry still completes, but the completion belongs to the dead
                // session: a new session of the same client starts with an empty table.
                m.orphaned = true;
            }
        }
        self.drop_client_leases(client)?;
        self.drop_client_file_locks(client)?;
        for inode in session.caps.iter().copied() {
            self.remove_cap(client, inode)?;
        }
        self.fx.push(Effect::Evicted { client });
        Ok(())
    }
}

/// Whether all four cap-bearing locks of `inode` are stable (the state in which issued caps
/// must already be within the allowance once revokes are acknowledged).
pub(crate) fn cap_locks_stable(l: &Locker, inode: InodeId) -> bool {
    eval::CAP_LOCK_TYPES.iter().all(|t| l.cache.lock(LockId::inode(inode, *t)).is_ok_and(|k| k.is_stable()))
}
