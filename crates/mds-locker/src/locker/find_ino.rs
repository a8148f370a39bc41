//! Finding a base inode this rank has never seen (Ceph's `MDCache::find_ino_peers`, mds spec
//! §5.1): clients name paths as (base inode number, names), and a client may send a path
//! based on an inode it learned from one rank to any other rank. Alone, a rank that lacks
//! the base answers ENOENT; with several ranks the inode may well exist in a peer's subtree,
//! and answering ENOENT there would break "several ranks give the same results as one".
//!
//! The search, per inode number (requests naming the same base share one):
//! 1. `FindIno { tid, ino }` goes to every other rank (`LockerConfig::max_mds`); a rank that is
//!    down is asked once it is active again.
//! 2. Each answers `FindInoReply { tid, ino, path, base }`: the names from a base inode (the
//!    root, or its own `~mdsN`) down to the inode as its cache links it (committed primary
//!    dentries), or nothing.
//! 3. The first path that comes back is walked from its base with §5.1 discovers, one name
//!    at a time (each `DiscoverReply` moves the walk on), until the inode is in this rank's
//!    cache; the parked requests are then retried from the top. A walk that meets a name its
//!    auth says is gone or links something else (the inode was renamed or removed
//!    meanwhile) gives way to the next answer. When the answers are spent and one of them
//!    was such a stale path, everyone is asked again (Ceph clears its checked set and
//!    retries the same way), since the inode may just have moved.
//! 4. When every rank has answered and no answer led to the inode, the parked requests fail
//!    with ENOENT.
//!
//! Every loop is bounded: a walk sends at most `walk_budget` discovers, each rank answers
//! once per round, a search asks at most `MAX_ASK_ROUNDS` rounds, and a request starts at
//! most `MAX_FINDS_PER_REQUEST` searches (an inode found but gone again before the request
//! ran counts as a new search).
//!
//! Deviations from Ceph:
//! * The final error is ENOENT, the errno a single rank gives for the same request, not
//!   Ceph's ESTALE; and there is no `open_ino` fallback (Ceph reads the inode's backtrace
//!   from the data pool when no peer has it in cache; cephlock has no backtraces).
//! * Ceph asks one peer at a time (in rank order, after an optional hint) and moves on after
//!   an empty answer; here every peer is asked at once, so a search costs exactly one
//!   `FindIno` per other rank and finishes in one round trip when anyone has the inode.
//! * A path starts at the root or, for an inode in one of the answering rank's stray
//!   directories (unlinked, still named by remote links), at that rank's `~mdsN`, as Ceph's
//!   may. The answering rank replicates its `~mdsN` to the asker ahead of the answer, where
//!   Ceph's asker opens the foreign mdsdir itself (`open_foreign_mdsdir`). An inode under
//!   another rank's `~mds` is not reported by a rank that only replicates it (simulator
//!   `--cross-subtree`, seeds 2/2856 and 3/1541: a rename of a remote link whose target's
//!   primary link had been unlinked failed with ENOENT).
//! * As in Ceph (`kick_find_ino_peers`), a peer that fails before answering is not counted
//!   as "not here": while the other ranks have not found the inode, the search waits for it
//!   to be active again and asks it then, so a crash does not turn a findable inode into
//!   ENOENT.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lock_sm::LockType;

use crate::cache::{Linkage, MAX_DEPTH};
use crate::effects::Errno;
use crate::error::LockerError;
use crate::ids::{Ino, InodeId, LockId, ObjKey, Rank, ReqId};
use crate::lock::{WAIT_RD, WAIT_STABLE};
use crate::message::{Discover, FindIno, FindInoReply, MdsMessage};

use super::Locker;
use super::server::Step;

/// Searches one request may start before it gives up with ENOENT: the inode it names was
/// found and vanished again before the request could use it this many times.
pub(crate) const MAX_FINDS_PER_REQUEST: u32 = 4;

/// Rounds of questions one search may ask. A path that did not lead to the inode (it moved
/// between the answer and the walk) starts a new round, as Ceph clears its checked set and
/// asks again; the bound keeps an inode renamed over and over from holding a request forever.
pub(crate) const MAX_ASK_ROUNDS: u32 = 3;

/// The searches in flight and what they decided.
#[derive(Debug, Clone, Default)]
pub(crate) struct FindInos {
    /// The last `tid` used.
    next_tid: u64,
    /// Searches by the inode looked for.
    by_ino: BTreeMap<Ino, Find>,
    /// Requests whose search failed: their next traversal of that base answers ENOENT.
    failed: BTreeMap<ReqId, Ino>,
    /// Searches each live request has started.
    rounds: BTreeMap<ReqId, u32>,
    /// Questions about inodes this rank is creating (their primary link is projected, not
    /// yet safe), answered once the creation is (see `handle_find_ino`).
    deferred: Vec<(Rank, FindIno)>,
}

/// One search.
#[derive(Debug, Clone)]
struct Find {
    /// This round's id: answers to an earlier round are ignored.
    tid: u64,
    /// Rounds asked so far (1 after the first questions).
    round: u32,
    /// A path of this round did not lead to the inode: worth asking again.
    stale_this_round: bool,
    /// Requests parked until the inode is in cache (or known to be nowhere), in arrival order.
    waiters: Vec<ReqId>,
    /// Ranks asked that have not answered.
    asked: BTreeSet<Rank>,
    /// Ranks that were down before answering: asked when active again.
    down: BTreeSet<Rank>,
    /// Non-empty answers not yet walked, in arrival order.
    answers: VecDeque<(Rank, Ino, Vec<String>)>,
    /// The answer being walked.
    walk: Option<Walk>,
}

/// A path being discovered from the root.
#[derive(Debug, Clone)]
struct Walk {
    /// The rank that gave the path (for traces).
    from: Rank,
    /// Where the path starts: the root or that rank's `~mdsN` (sent ahead of the answer).
    base: Ino,
    path: Vec<String>,
    /// The discover in flight: (directory, name, rank asked).
    awaiting: Option<(Ino, String, Rank)>,
    /// The auth of the next name is down: the walk resumes when it is active again.
    blocked_on: Option<Rank>,
    /// A dentry on the path whose lock is not readable: the walk resumes once it is (see
    /// `find_ino_unreadable`).
    blocked_lock: Option<LockId>,
    /// Discovers sent for this walk.
    discovers: u32,
}

/// Discovers one walk may send: one per name plus redirects (a directory inode's auth
/// pointing at its dirfrag's auth) and a retry for a dentry whose inode came separately.
fn walk_budget(path: &[String]) -> u32 {
    3 * (path.len() as u32 + 1)
}

/// What one pass over a walk's path found.
enum WalkStep {
    /// A discover went out (or the next auth is down): wait.
    Wait,
    /// The path does not lead to the inode (any more): try the next answer.
    Stale(&'static str),
}

impl Locker {
    /// `path_traverse` met a base inode this rank does not have (mds §5.1): park the request
    /// on a search of the other ranks, or fail it with ENOENT when there is nobody to ask,
    /// the search already failed for it, or it has searched too often. Never `Done`: a found
    /// inode re-runs the request from the top.
    pub(crate) fn find_ino_for<T>(&mut self, reqid: ReqId, ino: Ino) -> Result<Step<T>, LockerError> {
        let me = self.cache.rank();
        if self.finds.failed.get(&reqid) == Some(&ino) {
            self.finds.failed.remove(&reqid);
            return Ok(Step::Fail(Errno::ENOENT));
        }
        if self.config().max_mds <= 1 {
            return Ok(Step::Fail(Errno::ENOENT));
        }
        if let Some(f) = self.finds.by_ino.get_mut(&ino) {
            if !f.waiters.contains(&reqid) {
                f.waiters.push(reqid);
            }
            // Woken by the dentry lock a walk waits for: move the walk on.
            let lock_blocked = f.walk.as_ref().is_some_and(|w| w.blocked_lock.is_some());
            self.mark_event(reqid, "waiting for find_ino");
            if lock_blocked {
                self.find_ino_advance(ino)?;
            }
            return Ok(Step::Wait);
        }
        let rounds = self.finds.rounds.entry(reqid).or_insert(0);
        *rounds += 1;
        if *rounds > MAX_FINDS_PER_REQUEST {
            tracing::warn!(rank = me, %reqid, %ino, "base inode found and lost too often; giving up");
            return Ok(Step::Fail(Errno::ENOENT));
        }
        let f = Find {
            tid: 0,
            round: 0,
            stale_this_round: false,
            waiters: vec![reqid],
            asked: BTreeSet::new(),
            down: BTreeSet::new(),
            answers: VecDeque::new(),
            walk: None,
        };
        self.finds.by_ino.insert(ino, f);
        tracing::debug!(rank = me, %reqid, %ino, "find_ino started");
        self.find_ino_ask_all(ino);
        self.mark_event(reqid, "waiting for find_ino");
        Ok(Step::Wait)
    }

    /// Starts a round: every other rank that is up is asked, the others once they are
    /// active again.
    fn find_ino_ask_all(&mut self, ino: Ino) {
        let me = self.cache.rank();
        let max_mds = self.config().max_mds;
        self.finds.next_tid += 1;
        let tid = self.finds.next_tid;
        let Some(f) = self.finds.by_ino.get_mut(&ino) else { return };
        f.tid = tid;
        f.round += 1;
        f.stale_this_round = false;
        f.asked.clear();
        f.down.clear();
        let mut to = Vec::new();
        for r in (0..max_mds).filter(|r| *r != me) {
            if self.peers_down.contains(&r) {
                f.down.insert(r);
            } else {
                f.asked.insert(r);
                to.push(r);
            }
        }
        tracing::debug!(rank = me, %ino, tid, round = f.round, asked = ?f.asked, down = ?f.down, "find_ino asks");
        for r in to {
            self.send(r, MdsMessage::FindIno(FindIno { tid, ino }));
        }
    }

    /// Whether a request is parked on a search (it waits for other ranks).
    pub(crate) fn waits_on_find(&self, reqid: ReqId) -> bool {
        self.finds.by_ino.values().any(|f| f.waiters.contains(&reqid))
    }

    /// The request is gone (`cleanup_request`): forget it; a search nobody waits for stops,
    /// and its late answers are ignored.
    pub(crate) fn find_ino_forget(&mut self, reqid: ReqId) {
        self.finds.failed.remove(&reqid);
        self.finds.rounds.remove(&reqid);
        for f in self.finds.by_ino.values_mut() {
            f.waiters.retain(|r| *r != reqid);
        }
        self.finds.by_ino.retain(|_, f| !f.waiters.is_empty());
    }

    /// The answering side: where this rank's cache has the inode, from the root.
    ///
    /// An inode this rank is still creating (a mkdir or create answered early whose journal
    /// entry is not safe: its primary link is only projected) has no committed path yet, and
    /// the asker's discovers would meet the committed, still null, dentry. Its client has
    /// already been told the inode number, so "nowhere" would be wrong (the asker answers
    /// ENOENT for an inode that exists): the answer waits until the creation is safe, as a
    /// request on this rank would wait on the new dentry's xlock. The creation holds every
    /// lock it needs and only waits for its journal, so this wait cannot close a cycle.
    pub(crate) fn handle_find_ino(&mut self, from: Rank, m: FindIno) -> Result<(), LockerError> {
        if self.creation_unsafe(m.ino) {
            tracing::debug!(rank = self.cache.rank(), from, ino = %m.ino, tid = m.tid, "find_ino: inode still being created; answer deferred");
            self.finds.deferred.push((from, m));
            return Ok(());
        }
        self.answer_find_ino(from, m);
        Ok(())
    }

    /// Whether `ino` is auth here and linked only by a projected (unsafe) primary dentry.
    fn creation_unsafe(&self, ino: Ino) -> bool {
        self.cache
            .lookup_ino(ino)
            .and_then(|i| self.cache.inode(i))
            .is_some_and(|n| n.is_auth() && n.parent().is_none() && n.projected_parent().is_some())
    }

    /// Answers the deferred questions whose inode's creation is now safe (or gone). Called
    /// at the end of every event.
    pub(crate) fn answer_deferred_find_inos(&mut self) {
        if self.finds.deferred.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.finds.deferred);
        for (from, m) in pending {
            if self.creation_unsafe(m.ino) {
                self.finds.deferred.push((from, m));
            } else {
                self.answer_find_ino(from, m);
            }
        }
    }

    fn answer_find_ino(&mut self, from: Rank, m: FindIno) {
        let (base, path) = self.path_from_base(m.ino).unwrap_or((Ino::ROOT, Vec::new()));
        if base != Ino::ROOT && !path.is_empty() {
            // The asker walks from our `~mdsN`, which it may never have seen: send it first,
            // on the same connection (a base inode has no parent, so this is just the inode).
            match self.replicate_to(&ObjKey::Inode(base), from) {
                Ok(fx) => self.fx.extend(fx),
                Err(e) => {
                    tracing::warn!(rank = self.cache.rank(), from, error = %e, "cannot replicate ~mds for find_ino")
                }
            }
        }
        tracing::debug!(rank = self.cache.rank(), from, ino = %m.ino, tid = m.tid, %base, ?path, "find_ino answered");
        self.send(from, MdsMessage::FindInoReply(FindInoReply { tid: m.tid, ino: m.ino, path, base }));
    }

    /// The names down to `ino` along committed primary dentries, from the root or from this
    /// rank's own `~mdsN` (an inode in one of its stray directories); `None` if the inode is
    /// not in cache or hangs below neither (another rank's `~mds`, which only its auth
    /// vouches for).
    fn path_from_base(&self, ino: Ino) -> Option<(Ino, Vec<String>)> {
        let mut cur = self.cache.lookup_ino(ino)?;
        let (root, mdsdir) = (self.cache.root(), self.cache.mdsdir());
        let mut names = Vec::new();
        for _ in 0..=MAX_DEPTH {
            if cur == root || cur == mdsdir {
                names.reverse();
                return Some((self.ino_of(cur), names));
            }
            let dn = self.cache.inode(cur).and_then(|n| n.parent())?;
            let d = self.cache.dentry(dn)?;
            let dir = self.cache.dentry_dir_inode(dn)?;
            names.push(d.name().to_string());
            cur = dir;
        }
        None
    }

    /// The asking side: note the answer and move the search on.
    pub(crate) fn handle_find_ino_reply(&mut self, from: Rank, r: FindInoReply) -> Result<(), LockerError> {
        let me = self.cache.rank();
        let Some(f) = self.finds.by_ino.get_mut(&r.ino).filter(|f| f.tid == r.tid) else {
            tracing::debug!(rank = me, from, ino = %r.ino, tid = r.tid, "find_ino reply for no search; ignored");
            return Ok(());
        };
        if !f.asked.remove(&from) {
            tracing::debug!(rank = me, from, ino = %r.ino, tid = r.tid, "find_ino reply not expected; ignored");
            return Ok(());
        }
        tracing::debug!(rank = me, from, ino = %r.ino, tid = r.tid, path = ?r.path, "find_ino reply");
        if !r.path.is_empty() {
            f.answers.push_back((from, r.base, r.path));
        }
        self.find_ino_advance(r.ino)
    }

    /// A discover reply arrived: walks waiting for it go on; a search whose inode it brought
    /// is done.
    pub(crate) fn find_ino_discovered(&mut self, key: &(Ino, String)) -> Result<(), LockerError> {
        let mut moved = Vec::new();
        for (ino, f) in &mut self.finds.by_ino {
            if let Some(w) = f.walk.as_mut()
                && w.awaiting.as_ref().is_some_and(|(d, n, _)| *d == key.0 && *n == key.1)
            {
                w.awaiting = None;
                moved.push(*ino);
            } else if self.cache.lookup_ino(*ino).is_some() {
                moved.push(*ino);
            }
        }
        for ino in moved {
            self.find_ino_advance(ino)?;
        }
        Ok(())
    }

    /// `Event::RankDown`: an unanswered question to that rank waits for it to come back (as
    /// Ceph's `kick_find_ino_peers`), and so does a walk whose discover went there. Searches
    /// that now have nothing left to wait for finish.
    pub(crate) fn find_ino_rank_down(&mut self, down: Rank) -> Result<(), LockerError> {
        let inos: Vec<Ino> = self.finds.by_ino.keys().copied().collect();
        for f in self.finds.by_ino.values_mut() {
            if f.asked.remove(&down) {
                f.down.insert(down);
            }
            if let Some(w) = f.walk.as_mut()
                && w.awaiting.as_ref().is_some_and(|(_, _, r)| *r == down)
            {
                w.awaiting = None;
                w.blocked_on = Some(down);
            }
        }
        for ino in inos {
            self.find_ino_advance(ino)?;
        }
        Ok(())
    }

    /// `Event::RankActive`: ask the rank again (a question sent while it was down, or before
    /// this rank knew it was, was lost with it) and resume walks that waited for it.
    pub(crate) fn find_ino_rank_active(&mut self, up: Rank) -> Result<(), LockerError> {
        let mut resend = Vec::new();
        for (ino, f) in &mut self.finds.by_ino {
            if f.down.remove(&up) || f.asked.contains(&up) {
                f.asked.insert(up);
                resend.push(MdsMessage::FindIno(FindIno { tid: f.tid, ino: *ino }));
            }
            if let Some(w) = f.walk.as_mut() {
                if w.blocked_on == Some(up) {
                    w.blocked_on = None;
                }
                if w.awaiting.as_ref().is_some_and(|(_, _, r)| *r == up) {
                    w.awaiting = None;
                }
            }
        }
        for msg in resend {
            self.send(up, msg);
        }
        let inos: Vec<Ino> = self.finds.by_ino.keys().copied().collect();
        for ino in inos {
            self.find_ino_advance(ino)?;
        }
        Ok(())
    }

    /// Moves a search as far as it can go: done if the inode is in cache, else walk the
    /// current answer (or the next), else wait for answers, else fail.
    fn find_ino_advance(&mut self, ino: Ino) -> Result<(), LockerError> {
        let me = self.cache.rank();
        // Each pass returns, drops one answer, or starts one of the bounded rounds (which
        // then waits for answers), so this ends.
        loop {
            let Some(f) = self.finds.by_ino.get_mut(&ino) else {
                return Ok(());
            };
            if self.cache.lookup_ino(ino).is_some() {
                let f = self.finds.by_ino.remove(&ino).map(|f| f.waiters).unwrap_or_default();
                tracing::debug!(rank = me, %ino, waiters = ?f, "find_ino found the inode; retrying requests");
                for reqid in f {
                    self.find_ino_unpark(reqid)?;
                    if self.requests.contains_key(&reqid) {
                        self.mark_event(reqid, "find_ino found the base inode");
                        self.requeue(reqid);
                    }
                }
                return Ok(());
            }
            if let Some(w) = &f.walk {
                if w.awaiting.is_some() || w.blocked_on.is_some() {
                    return Ok(());
                }
                if let Some(l) = w.blocked_lock {
                    if self.lk(l).is_ok_and(|x| !x.can_read(None)) {
                        // Woken by a change that left the dentry unreadable (its auth
                        // started another xlock): the wake took the requests off the
                        // lock's waiter list, so park them again or nothing re-dispatches
                        // them (simulator `--cross-subtree`, 3 ranks, seed 977: a rename
                        // waited for ever with no message in flight).
                        if self.find_ino_unreadable(ino, l)? {
                            return Ok(());
                        }
                    }
                    if let Some(w) = self.finds.by_ino.get_mut(&ino).and_then(|f| f.walk.as_mut()) {
                        w.blocked_lock = None;
                    }
                }
                match self.find_ino_walk(ino)? {
                    WalkStep::Wait => return Ok(()),
                    WalkStep::Stale(why) => {
                        if let Some(f) = self.finds.by_ino.get_mut(&ino)
                            && let Some(w) = f.walk.take()
                        {
                            f.stale_this_round = true;
                            tracing::debug!(rank = me, %ino, from = w.from, path = ?w.path, why, "find_ino path did not lead to the inode");
                        }
                        continue;
                    }
                }
            }
            if let Some((from, base, path)) = f.answers.pop_front() {
                f.walk = Some(Walk {
                    from,
                    base,
                    path,
                    awaiting: None,
                    blocked_on: None,
                    blocked_lock: None,
                    discovers: 0,
                });
                continue;
            }
            if !f.asked.is_empty() || !f.down.is_empty() {
                return Ok(());
            }
            if f.stale_this_round && f.round < MAX_ASK_ROUNDS {
                // Somebody had it, but it moved before we got there: ask again.
                self.find_ino_ask_all(ino);
                continue;
            }
            let waiters = self.finds.by_ino.remove(&ino).map(|f| f.waiters).unwrap_or_default();
            tracing::debug!(rank = me, %ino, ?waiters, "find_ino: no rank has the inode");
            for reqid in waiters {
                self.find_ino_unpark(reqid)?;
                if self.requests.contains_key(&reqid) {
                    self.finds.failed.insert(reqid, ino);
                    self.mark_event(reqid, "find_ino found nothing");
                    self.requeue(reqid);
                }
            }
            return Ok(());
        }
    }

    /// Walks the current answer from the root through this rank's cache and sends a
    /// discover for the first name it lacks (§5.1). A name that its cached dentry (or the
    /// complete dirfrag this rank is auth for) says is null or a remote link, a walk that
    /// ends at another inode, or a walk over its discover budget, is stale.
    fn find_ino_walk(&mut self, ino: Ino) -> Result<WalkStep, LockerError> {
        let me = self.cache.rank();
        let Some(w) = self.finds.by_ino.get(&ino).and_then(|f| f.walk.as_ref()) else {
            return Ok(WalkStep::Stale("no walk"));
        };
        let path = w.path.clone();
        let Some(mut cur) = self.cache.lookup_ino(w.base) else {
            return Ok(WalkStep::Stale("the path's base is not in cache"));
        };
        let mut missing: Option<(InodeId, String)> = None;
        for name in &path {
            if !self.cache.inode(cur).is_some_and(|n| n.is_dir()) {
                return Ok(WalkStep::Stale("a name on the path is not a directory"));
            }
            if let Some(dn) = self.cache.lookup_dentry(cur, name)
                && self.find_ino_unreadable(ino, LockId::dentry(dn, LockType::Dn))?
            {
                return Ok(WalkStep::Wait);
            }
            match self.cache.lookup_dentry(cur, name).and_then(|d| self.cache.dentry(d)) {
                Some(d) => match d.linkage() {
                    Linkage::Primary(t) => cur = t,
                    Linkage::Remote { .. } => return Ok(WalkStep::Stale("a name is a remote link")),
                    Linkage::Null if d.pending_primary.is_some() => {
                        missing = Some((cur, name.clone()));
                        break;
                    }
                    Linkage::Null => return Ok(WalkStep::Stale("a name on the path is null")),
                },
                None => {
                    let frag = self.cache.dirfrag_of_existing(cur);
                    let ours = frag.is_some_and(|f| {
                        self.cache.dirfrag_auth(f) == Some(me)
                            && self.cache.dirfrag(f).is_some_and(|x| x.is_complete())
                    });
                    if ours {
                        return Ok(WalkStep::Stale("a name on the path is not in our complete dirfrag"));
                    }
                    missing = Some((cur, name.clone()));
                    break;
                }
            }
        }
        let Some((dir, name)) = missing else {
            // Every name resolved but to another inode (the one we look for is not in cache).
            return Ok(WalkStep::Stale("the path leads to another inode"));
        };
        let to = match self.cache.dirfrag_of_existing(dir).and_then(|f| self.cache.dirfrag_auth(f)) {
            Some(a) => a,
            None => self.cache.inode(dir).map(|n| n.auth()).unwrap_or(crate::cache::ROOT_RANK),
        };
        if to == me {
            return Ok(WalkStep::Stale("this rank is the auth and lacks the name"));
        }
        let dir_ino = self.ino_of(dir);
        let Some(w) = self.finds.by_ino.get_mut(&ino).and_then(|f| f.walk.as_mut()) else {
            return Ok(WalkStep::Stale("no walk"));
        };
        if self.peers_down.contains(&to) {
            w.blocked_on = Some(to);
            tracing::debug!(rank = me, %ino, dir = %dir_ino, name = %name, to, "find_ino walk waits for a down auth");
            return Ok(WalkStep::Wait);
        }
        if w.discovers >= walk_budget(&path) {
            return Ok(WalkStep::Stale("discover budget spent"));
        }
        w.discovers += 1;
        w.awaiting = Some((dir_ino, name.clone(), to));
        tracing::debug!(rank = me, %ino, dir = %dir_ino, name = %name, to, "find_ino walk discovers");
        self.send(to, MdsMessage::Discover(Discover { dir: dir_ino, name }));
        Ok(WalkStep::Wait)
    }

    /// A search's request leaves the dentry lock its walk parked it on (the search ended
    /// some other way), so it is never on a waiter list it no longer waits for.
    fn find_ino_unpark(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(m) = self.requests.get_mut(&reqid) else { return Ok(()) };
        let Some(l) = m.waiting_on.take() else { return Ok(()) };
        self.lkm(l)?.remove_waiters_of(reqid);
        Ok(())
    }

    /// §5.1 `path_traverse` (DISCOVER, no path locks): a dentry whose lock cannot be read
    /// says nothing yet. A replica's linkage may be stale while the auth holds the xlock of a
    /// create or rename, so concluding "null, the path is stale" from it answered ENOENT
    /// for an inode that exists (simulator, `--cross-subtree`, 2 ranks, seeds 100, 855). As
    /// `rdlock_start` would, kick the lock once toward a readable state (a stable replica
    /// sends REQRDLOCK, §4.5), and if that is not enough park the search's requests on the
    /// lock; their re-dispatch moves the walk on (`find_ino_for`). Returns whether the walk
    /// must wait.
    fn find_ino_unreadable(&mut self, ino: Ino, dn_lock: LockId) -> Result<bool, LockerError> {
        if self.lk(dn_lock)?.can_read(None) {
            return Ok(false);
        }
        let waiters: Vec<ReqId> = self
            .finds
            .by_ino
            .get(&ino)
            .map(|f| f.waiters.iter().copied().filter(|r| self.requests.contains_key(r)).collect())
            .unwrap_or_default();
        let Some(first) = waiters.first().copied() else {
            return Ok(false);
        };
        if self.rdlock_kick(dn_lock, true, first)? && self.lk(dn_lock)?.can_read(None) {
            return Ok(false);
        }
        for reqid in waiters {
            if self.mutation(reqid)?.waiting_on != Some(dn_lock) {
                self.find_ino_unpark(reqid)?;
                self.add_waiter(dn_lock, WAIT_RD | WAIT_STABLE, reqid)?;
            }
        }
        self.nudge_log(dn_lock)?;
        if let Some(w) = self.finds.by_ino.get_mut(&ino).and_then(|f| f.walk.as_mut()) {
            w.blocked_lock = Some(dn_lock);
        }
        tracing::debug!(rank = self.cache.rank(), %ino, lock = ?dn_lock, "find_ino walk waits for a readable dentry");
        Ok(true)
    }
}
