//! The replica ↔ auth lock protocol across ranks (mds spec §4.12, with §2.2 actions, §4.5 /
//! §4.6 replica rdlock and wrlock requests, §4.9 eval_gather on both sides, §4.10 initiators,
//! §4.13 NUDGE / LOCKFLUSHED).
//!
//! Every test drives an in-process `Cluster` message by message, checks every rank's
//! single-rank invariants and the cross-rank ones (`invariants::check_cluster`) after each
//! delivery, and asserts the exact states on auth and replicas, the gather set, who waits,
//! and the exact message sequence (sender, receiver, action).

use std::collections::VecDeque;

use lock_sm::{LockState as S, LockType as T};
use mds_locker::cache::{InodeData, S_IFDIR, S_IFREG};
use mds_locker::cluster::{Cluster, Transport};
use mds_locker::{
    ClientRequest, Effect, Event, Ino, LockData, LockId, LockKey, LockMsg, LockOp, LockerConfig, LockerError,
    MdsMessage, ObjKey, Op, Rank, ReqId,
};

/// FIFO delivery that remembers what it delivered, so tests can assert exact sequences.
#[derive(Debug, Default)]
struct Recorder {
    queue: VecDeque<(Rank, Rank, MdsMessage)>,
    log: Vec<(Rank, Rank, &'static str, Option<LockKey>)>,
}

impl Transport for Recorder {
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage) {
        self.queue.push_back((from, to, msg));
    }
    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)> {
        let m = self.queue.pop_front()?;
        let lock = match &m.2 {
            MdsMessage::Lock(l) => Some(l.lock.clone()),
            _ => None,
        };
        self.log.push((m.0, m.1, m.2.kind(), lock));
        Some(m)
    }
    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

struct C {
    c: Cluster<Recorder>,
    /// How much of the transport log has been returned by `take_log`.
    seen: usize,
}

impl C {
    fn new(n: u32) -> C {
        let cfg = LockerConfig { record_transitions: true, ..LockerConfig::default() };
        let mut c = Cluster::with_transport(n, cfg, Recorder::default());
        for r in 0..n {
            for client in 1..=2 {
                c.handle(r, Event::SessionOpen { client }).unwrap();
            }
        }
        C { c, seen: 0 }
    }

    /// A directory (or file) under the root, created committed on rank 0.
    fn create(&mut self, name: &str, dir: bool) -> Ino {
        let l = self.c.rank_mut(0);
        let root = l.cache().root();
        let mode = if dir { S_IFDIR | 0o755 } else { S_IFREG | 0o644 };
        let data = InodeData { mode, nlink: 1, version: 1, ..InodeData::default() };
        let (_, i) = l.cache_mut().create_committed(root, name, data);
        l.cache().inode(i).unwrap().ino()
    }

    fn replicate(&mut self, ino: Ino, to: Rank) {
        self.c.replicate(&ObjKey::Inode(ino), to).unwrap();
        self.skip_log();
        self.check();
    }

    fn check(&self) {
        if let Err(v) =
            mds_locker::invariants::check_cluster(self.c.lockers(), self.c.transport().in_flight())
        {
            panic!("invariants violated: {v:#?}");
        }
    }

    fn id(&self, rank: Rank, key: &LockKey) -> LockId {
        self.c.rank(rank).cache().resolve_lock(key).unwrap_or_else(|| panic!("rank {rank} lacks {key}"))
    }

    fn state(&self, rank: Rank, key: &LockKey) -> S {
        self.c.rank(rank).lock(self.id(rank, key)).unwrap().state()
    }

    fn gather(&self, rank: Rank, key: &LockKey) -> Vec<Rank> {
        self.c.rank(rank).lock(self.id(rank, key)).unwrap().gather_set().iter().copied().collect()
    }

    /// Client 1 (or 2) asks rank `rank` for `locks` (mode 'r', 'w' or 'x') and holds them.
    fn req(&mut self, rank: Rank, reqid: u64, client: u64, locks: &[(&LockKey, char)]) {
        let ops = locks
            .iter()
            .map(|(k, m)| {
                let id = self.id(rank, k);
                match m {
                    'r' => LockOp::rd(id),
                    'w' => LockOp::wr(id),
                    _ => LockOp::x(id),
                }
            })
            .collect();
        let op = Op::LockSet { locks: ops, journal: false };
        self.c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
        self.check();
    }

    fn finish(&mut self, rank: Rank, reqid: u64) {
        self.c.handle(rank, Event::FinishRequest { reqid: ReqId(reqid) }).unwrap();
        self.check();
    }

    /// Whether the request on `rank` got all its locks (and when not, which lock it waits on).
    fn acquired(&self, rank: Rank, reqid: u64) -> bool {
        self.c.outputs().iter().any(|o| {
            o.rank == rank && matches!(o.effect, Effect::LocksAcquired { reqid: r } if r == ReqId(reqid))
        })
    }

    fn waiting_on(&self, rank: Rank, reqid: u64) -> Option<LockId> {
        self.c.rank(rank).request(ReqId(reqid)).and_then(|m| m.waiting_on())
    }

    /// Delivers one message and checks every invariant.
    fn step(&mut self) -> bool {
        let more = self.c.step().unwrap();
        self.check();
        more
    }

    /// Delivers messages (peer requests such as remote auth-pins included) until one MLock
    /// about `key` has been delivered; false if none was in flight.
    fn step_lock(&mut self, key: &LockKey) -> bool {
        while self.step() {
            if self.c.transport().log.last().is_some_and(|e| e.3.as_ref() == Some(key)) {
                return true;
            }
        }
        false
    }

    /// Delivers until quiet.
    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// The MLocks about `key` delivered since the last call, as (from, to, action). Other
    /// messages (other locks, the peer protocol's remote auth-pins) are left out.
    fn take_log(&mut self, key: &LockKey) -> Vec<(Rank, Rank, &'static str)> {
        let log = self.c.transport().log[self.seen..]
            .iter()
            .filter(|e| e.3.as_ref() == Some(key))
            .map(|e| (e.0, e.1, e.2))
            .collect();
        self.seen = self.c.transport().log.len();
        log
    }

    fn skip_log(&mut self) {
        self.seen = self.c.transport().log.len();
    }

    fn in_flight(&self) -> usize {
        self.c.transport().in_flight()
    }
}

fn key(ino: Ino, ty: T) -> LockKey {
    LockKey { obj: ObjKey::Inode(ino), ty }
}

/// §4.12 simple handler, SYNC→LOCK row of the protocol table; §4.9 replica SYNC_LOCK: a
/// replica holding a rdlock keeps the auth's SYNC→LOCK (started by an xlock, §4.7) waiting;
/// its LOCKACK goes only after the rdlock is released. On the xlock's release the auth heads
/// back to SYNC and sends SYNC with the lock data (§4.9 step 4, XLOCK → SYNC).
#[test]
fn s4_12_replica_rdlock_delays_sync_to_lock_until_released() {
    let mut c = C::new(2);
    let f = c.create("f", false);
    c.replicate(f, 1);
    let auth = key(f, T::IAuth);
    c.req(1, 10, 1, &[(&auth, 'r')]);
    assert!(c.acquired(1, 10), "a replica in SYNC rdlocks locally (§1.3 rdlock ANY)");
    assert_eq!(c.take_log(&auth), vec![]);

    c.req(0, 20, 2, &[(&auth, 'x')]);
    assert_eq!(c.state(0, &auth), S::SyncLock);
    assert_eq!(c.gather(0, &auth), vec![1]);
    assert_eq!(c.waiting_on(0, 20), Some(c.id(0, &auth)));
    c.run();
    assert_eq!(c.take_log(&auth), vec![(0, 1, "lock")]);
    // The replica is draining its rdlock; no LOCKACK yet, the auth still gathers.
    assert_eq!(c.state(1, &auth), S::SyncLock);
    assert_eq!(c.state(0, &auth), S::SyncLock);
    assert_eq!(c.gather(0, &auth), vec![1]);
    assert!(!c.acquired(0, 20));

    c.finish(1, 10);
    assert_eq!(c.state(1, &auth), S::Lock);
    assert!(c.step_lock(&auth));
    assert_eq!(c.take_log(&auth), vec![(1, 0, "lockack")]);
    // All acks in: SYNC_LOCK → LOCK → LOCK_XLOCK → PREXLOCK → XLOCK, granted.
    assert!(c.gather(0, &auth).is_empty());
    assert_eq!(c.state(0, &auth), S::Xlock);
    assert!(c.acquired(0, 20));

    // The auth changes the mode under its xlock; releasing it sends SYNC with the data.
    let l0 = c.c.rank_mut(0);
    let fi = l0.cache().lookup_ino(f).unwrap();
    l0.cache_mut().project_inode(fi, ReqId(20)).unwrap().mode = S_IFREG | 0o600;
    l0.cache_mut().pop_projected_inode(fi);
    c.finish(0, 20);
    assert_eq!(c.state(0, &auth), S::Sync);
    c.run();
    assert_eq!(c.take_log(&auth), vec![(0, 1, "sync")]);
    assert_eq!(c.state(1, &auth), S::Sync);
    let r1 = c.c.rank(1).cache();
    assert_eq!(r1.inode(r1.lookup_ino(f).unwrap()).unwrap().data().mode, S_IFREG | 0o600);
}

/// §4.6 / §4.12 REQSCATTER, SYNC→MIX row: a replica that wants a wrlock on a filelock not in
/// MIX asks the auth and waits for STABLE. Three ranks: the auth sends MIX without data to
/// both replicas, gathers both MIXACKs (replicas wait in SYNC_MIX2), then sends MIX with data
/// and both replicas reach MIX. The directory's dirfrag is a subtree root on rank 1, so the
/// auth stays in MIX afterwards (§4.11 file_eval rule 4).
#[test]
fn s4_12_replica_wrlock_request_makes_the_auth_go_mix_on_every_replica() {
    let mut c = C::new(3);
    let a = c.create("a", true);
    c.c.pin_empty_dir(a, 1).unwrap();
    c.replicate(a, 2);
    let file = key(a, T::IFile);
    c.req(1, 10, 1, &[(&file, 'w')]);
    assert!(!c.acquired(1, 10));
    // (The request first auth-pins the inode on its auth, §4.4 phase C; then §4.6.)
    assert!(c.step_lock(&file));
    assert_eq!(c.take_log(&file), vec![(1, 0, "reqscatter")]);
    assert_eq!(c.waiting_on(1, 10), Some(c.id(1, &file)));
    assert_eq!(c.state(0, &file), S::SyncMix);
    assert_eq!(c.gather(0, &file), vec![1, 2]);
    c.step_lock(&file);
    c.step_lock(&file);
    assert_eq!(c.take_log(&file), vec![(0, 1, "mix"), (0, 2, "mix")]);
    assert_eq!(c.state(1, &file), S::SyncMix2);
    assert_eq!(c.state(2, &file), S::SyncMix2);
    c.step_lock(&file);
    assert_eq!(c.gather(0, &file), vec![2]);
    assert_eq!(c.state(0, &file), S::SyncMix);
    c.run();
    assert_eq!(c.take_log(&file), vec![(1, 0, "mixack"), (2, 0, "mixack"), (0, 1, "mix"), (0, 2, "mix")]);
    for r in 0..3 {
        assert_eq!(c.state(r, &file), S::Mix, "rank {r}");
    }
    assert!(c.gather(0, &file).is_empty());
    assert!(c.acquired(1, 10));
    assert_eq!(c.c.rank(1).lock(c.id(1, &file)).unwrap().num_wrlock(), 1);
    c.finish(1, 10);
    c.run();
    assert_eq!(c.take_log(&file), vec![]);
    assert_eq!(c.state(0, &file), S::Mix);
}

/// §4.12 MIX→SYNC row, §4.9 replica MIX_SYNC: without a subtree dirfrag the auth leaves MIX
/// for SYNC right after granting the scatter; it sends SYNC without data, a replica still
/// holding its wrlock delays its SYNCACK (the other replica acks and waits in MIX_SYNC2),
/// and once every SYNCACK is in the auth sends SYNC with data.
#[test]
fn s4_12_mix_to_sync_gathers_syncacks_then_sends_sync_with_data() {
    let mut c = C::new(3);
    let a = c.create("a", true);
    c.replicate(a, 1);
    c.replicate(a, 2);
    let file = key(a, T::IFile);
    c.req(1, 10, 1, &[(&file, 'w')]);
    c.run();
    assert_eq!(
        c.take_log(&file),
        vec![
            (1, 0, "reqscatter"),
            (0, 1, "mix"),
            (0, 2, "mix"),
            (1, 0, "mixack"),
            (2, 0, "mixack"),
            // MIX with data, then the auth's own eval heads back to SYNC (no data yet).
            (0, 1, "mix"),
            (0, 2, "mix"),
            (0, 1, "sync"),
            (0, 2, "sync"),
            (2, 0, "syncack"),
        ]
    );
    assert!(c.acquired(1, 10), "the MIX with data arrived before the SYNC");
    assert_eq!(c.state(0, &file), S::MixSync);
    assert_eq!(c.gather(0, &file), vec![1]);
    assert_eq!(c.state(1, &file), S::MixSync);
    assert_eq!(c.state(2, &file), S::MixSync2);
    c.finish(1, 10);
    assert_eq!(c.state(1, &file), S::MixSync2);
    c.run();
    assert_eq!(c.take_log(&file), vec![(1, 0, "syncack"), (0, 1, "sync"), (0, 2, "sync")]);
    for r in 0..3 {
        assert_eq!(c.state(r, &file), S::Sync, "rank {r}");
    }
}

/// §4.5 / §4.12 REQRDLOCK: a replica whose copy is in LOCK (REQ) asks the auth for SYNC and
/// waits for STABLE; the auth, stable in LOCK under a local wrlock, starts LOCK→SYNC at once
/// (LOCK_SYNC waits for the wrlock), and the SYNC with data lets the replica rdlock.
#[test]
fn s4_12_replica_rdlock_request_brings_a_locked_auth_back_to_sync() {
    let mut c = C::new(2);
    let a = c.create("a", true);
    c.replicate(a, 1);
    let file = key(a, T::IFile);
    c.req(0, 20, 2, &[(&file, 'w')]);
    assert_eq!(c.state(0, &file), S::SyncLock);
    c.run();
    assert_eq!(c.take_log(&file), vec![(0, 1, "lock"), (1, 0, "lockack")]);
    assert_eq!(c.state(0, &file), S::Lock);
    assert!(c.acquired(0, 20));
    assert_eq!(c.state(1, &file), S::Lock);

    c.req(1, 10, 1, &[(&file, 'r')]);
    assert!(!c.acquired(1, 10));
    // (The request first auth-pins the inode on its auth, §4.4 phase C; then §4.5.)
    assert!(c.step_lock(&file));
    assert_eq!(c.waiting_on(1, 10), Some(c.id(1, &file)));
    let waiter = c.c.rank(1).lock(c.id(1, &file)).unwrap().waiters().next().copied().unwrap();
    assert_eq!(waiter.mask, mds_locker::lock::WAIT_STABLE, "§8 fact 42: a replica waits for STABLE");
    c.run();
    assert_eq!(c.take_log(&file), vec![(1, 0, "reqrdlock")]);
    assert_eq!(c.state(0, &file), S::LockSync);
    assert_eq!(c.state(1, &file), S::Lock);

    c.finish(0, 20);
    assert_eq!(c.state(0, &file), S::Sync);
    c.run();
    assert_eq!(c.take_log(&file), vec![(0, 1, "sync")]);
    assert_eq!(c.state(1, &file), S::Sync);
    assert!(c.acquired(1, 10));
    // A REQRDLOCK for a lock already in SYNC is ignored (§8 fact 46).
    let msg = LockMsg {
        action: lock_sm::LockAction::ReqRdlock,
        asker: 1,
        reqid: None,
        lock: file.clone(),
        data: None,
    };
    c.c.handle(0, Event::Message { from: 1, msg: MdsMessage::Lock(msg) }).unwrap();
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.state(0, &file), S::Sync);
}

/// §4.12 REQUNSCATTER, MIX→LOCK row, LOCKFLUSHED; §4.9 auth step 1 / replica MIX_LOCK;
/// §4.13 data: with nothing to drain locally, MIX_LOCK moves straight to MIX_LOCK2 and sends
/// LOCK; each replica answers LOCKACK with its scattered data (rank 1, auth for the dirfrag,
/// sends its fragstat and is dirty, so it starts a flush). The auth stores rank 1's frag
/// values on its replica of the dirfrag, marks the lock dirty, and sends LOCKFLUSHED when it
/// completes; the replicas finish their flush. Then the auth's eval returns it to SYNC (LOCK
/// → SYNC sends SYNC with data).
#[test]
fn s4_12_requnscatter_mix_to_lock_carries_scattered_data_and_lockflushed() {
    let mut c = C::new(3);
    let a = c.create("a", true);
    c.c.pin_empty_dir(a, 1).unwrap();
    c.replicate(a, 2);
    let file = key(a, T::IFile);
    c.req(1, 10, 1, &[(&file, 'w')]);
    c.run();
    c.finish(1, 10);
    c.take_log(&file);
    assert_eq!(c.state(0, &file), S::Mix);
    // Rank 1 created an entry in the dirfrag it is auth for: its fragstat is ahead of what
    // was accounted into the inode.
    let l1 = c.c.rank_mut(1);
    let f1 = l1.cache().resolve_dirfrag(a, 0).unwrap();
    l1.cache_mut().project_fnode(f1, ReqId(99)).unwrap().fragstat.nfiles = 1;
    l1.cache_mut().pop_projected_fnode(f1);

    let fx = c.c.rank_mut(1).request_unscatter(&file).unwrap();
    c.c.route(1, fx).unwrap();
    c.step_lock(&file);
    assert_eq!(c.take_log(&file), vec![(1, 0, "requnscatter")]);
    assert_eq!(c.state(0, &file), S::MixLock2);
    assert_eq!(c.gather(0, &file), vec![1, 2]);
    c.step_lock(&file);
    c.step_lock(&file);
    assert_eq!(c.take_log(&file), vec![(0, 1, "lock"), (0, 2, "lock")]);
    assert_eq!(c.state(1, &file), S::Lock);
    assert!(c.c.rank(1).lock(c.id(1, &file)).unwrap().scatter_flags().flushing);
    assert!(!c.c.rank(2).lock(c.id(2, &file)).unwrap().scatter_flags().flushing);
    c.step_lock(&file);
    assert_eq!(c.take_log(&file), vec![(1, 0, "lockack")]);
    assert!(c.c.rank(0).lock(c.id(0, &file)).unwrap().scatter_flags().dirty);
    let r0 = c.c.rank(0).cache();
    let f0 = r0.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r0.dirfrag(f0).unwrap().fnode().fragstat.nfiles, 1, "rank 1's frag values stored");
    assert_eq!(c.gather(0, &file), vec![2]);
    c.run();
    // §4.9 auth step 2: the gathered data is folded and journaled first; LOCKFLUSHED waits
    // for that entry to be safe (§4.13 scatter_writebehind).
    assert_eq!(c.take_log(&file), vec![(2, 0, "lockack")]);
    assert_eq!(c.state(0, &file), S::MixLock2);
    assert!(c.c.rank(0).lock(c.id(0, &file)).unwrap().scatter_flags().flushing);
    assert_eq!(c.c.rank(0).writebehinds().count(), 1);
    c.c.make_safe(0).unwrap();
    c.check();
    c.run();
    assert_eq!(
        c.take_log(&file),
        vec![(0, 1, "lockflushed"), (0, 2, "lockflushed"), (0, 1, "sync"), (0, 2, "sync")]
    );
    let r0 = c.c.rank(0).cache();
    assert_eq!(r0.inode(r0.lookup_ino(a).unwrap()).unwrap().data().dirstat.nfiles, 1, "folded");
    assert!(!c.c.rank(1).lock(c.id(1, &file)).unwrap().scatter_flags().flushing);
    for r in 0..3 {
        assert_eq!(c.state(r, &file), S::Sync, "rank {r}");
    }
}

/// §4.12 NUDGE and §4.13 scatter_nudge: a replica with dirty scattered data asks the auth to
/// cycle the lock; the auth (replicated, in MIX) starts MIX→LOCK and flushes its journal.
#[test]
fn s4_12_nudge_from_a_replica_cycles_the_auth_lock() {
    let mut c = C::new(2);
    let a = c.create("a", true);
    c.c.pin_empty_dir(a, 1).unwrap();
    let file = key(a, T::IFile);
    c.req(1, 10, 1, &[(&file, 'w')]);
    c.run();
    c.finish(1, 10);
    c.take_log(&file);
    c.c.take_outputs();
    assert_eq!(c.state(0, &file), S::Mix);
    let fx = c.c.rank_mut(1).nudge_scatterlock(&file).unwrap();
    c.c.route(1, fx).unwrap();
    c.step_lock(&file);
    assert_eq!(c.take_log(&file), vec![(1, 0, "nudge")]);
    assert_eq!(c.state(0, &file), S::MixLock2);
    assert!(c.c.outputs().iter().any(|o| o.rank == 0 && o.effect == Effect::JournalFlush));
    c.run();
    assert_eq!(c.take_log(&file), vec![(0, 1, "lock"), (1, 0, "lockack"), (0, 1, "sync")]);
    assert_eq!(c.state(0, &file), S::Sync);
    assert_eq!(c.state(1, &file), S::Sync);
    // Only scatterlocks nudge.
    let e = c.c.rank_mut(1).nudge_scatterlock(&key(a, T::IAuth)).unwrap_err();
    assert!(matches!(e, LockerError::UnsupportedLockOp { .. }), "{e}");
}

/// §4.12 "messages for objects not in cache are dropped"; a message contradicting the
/// receiver's authority, or a failed state precondition, is refused and changes nothing.
#[test]
fn s4_12_messages_for_unknown_objects_are_dropped_and_bad_ones_refused() {
    let mut c = C::new(2);
    let a = c.create("a", true);
    c.replicate(a, 1);
    let gone = key(Ino(0xdead), T::IFile);
    for action in lock_sm::LockAction::ALL {
        let to = if action.value() < 0 { 1 } else { 0 };
        let from = 1 - to;
        let msg = LockMsg { action, asker: from, reqid: None, lock: gone.clone(), data: None };
        c.c.handle(to, Event::Message { from, msg: MdsMessage::Lock(msg) }).unwrap();
    }
    assert_eq!(c.in_flight(), 0);
    c.check();
    let file = key(a, T::IFile);
    // SYNC to the auth: wrong direction.
    let msg =
        LockMsg { action: lock_sm::LockAction::Sync, asker: 1, reqid: None, lock: file.clone(), data: None };
    let e = c.c.handle(0, Event::Message { from: 1, msg: MdsMessage::Lock(msg) }).unwrap_err();
    assert!(matches!(e, mds_locker::cluster::ClusterError::Locker { rank: 0, .. }), "{e}");
    // MIXACK while the auth is not in SYNC_MIX.
    let msg = LockMsg {
        action: lock_sm::LockAction::MixAck,
        asker: 1,
        reqid: None,
        lock: file.clone(),
        data: None,
    };
    assert!(c.c.handle(0, Event::Message { from: 1, msg: MdsMessage::Lock(msg) }).is_err());
    // SYNC to a replica already in SYNC.
    let msg = LockMsg {
        action: lock_sm::LockAction::Sync,
        asker: 0,
        reqid: None,
        lock: file.clone(),
        data: Some(LockData::Empty),
    };
    assert!(c.c.handle(1, Event::Message { from: 0, msg: MdsMessage::Lock(msg) }).is_err());
    assert_eq!(c.state(0, &file), S::Sync);
    assert_eq!(c.state(1, &file), S::Sync);
    c.check();
}

/// §4.12 SYNC→EXCL row (file_excl sends LOCK and gathers LOCKACK; replicas end in LOCK, the
/// replica state of EXCL): a single client wanting to write a replicated file becomes loner.
#[test]
fn s4_12_sync_to_excl_sends_lock_and_gathers_lockacks() {
    let mut c = C::new(2);
    let f = c.create("f", false);
    c.replicate(f, 1);
    let file = key(f, T::IFile);
    let fx =
        c.c.rank_mut(0)
            .open_cap(
                1,
                f,
                lock_sm::caps::FILE_WR
                    | lock_sm::caps::FILE_RD
                    | lock_sm::caps::FILE_CACHE
                    | lock_sm::caps::FILE_BUFFER,
            )
            .unwrap();
    c.c.route(0, fx).unwrap();
    assert_eq!(c.state(0, &file), S::SyncExcl);
    assert_eq!(c.gather(0, &file), vec![1]);
    c.run();
    assert_eq!(c.take_log(&file), vec![(0, 1, "lock"), (1, 0, "lockack")]);
    assert_eq!(c.state(0, &file), S::Excl);
    assert_eq!(c.state(1, &file), S::Lock);
}
