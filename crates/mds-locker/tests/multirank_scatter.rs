//! Scatter-gather of directory stats across ranks (mds spec §4.13; §4.9 auth steps 1–4;
//! §4.12 SYNCACK / LOCKACK data, LOCKFLUSHED, NUDGE, REQRDLOCK; §4.6 `wrlock_force`; §6.2).
//!
//! Setup for every test: two ranks, `/a` created on rank 0 (its inode stays auth there) and
//! pinned to rank 1 (its dirfrag is a subtree root there). Entries created in `/a` through
//! rank 1 count in rank 1's fragstat / rstat only; rank 0's inode learns of them when it
//! gathers IFILE / INEST out of MIX and journals a `scatter_writebehind`. The cluster is driven
//! message by message with every invariant (`check_cluster`) checked after each delivery,
//! journals made safe only when a test says so, and a cooperative client that answers every
//! cap revoke.

use std::collections::VecDeque;

use lock_sm::caps::FILE_SHARED;
use lock_sm::{LockAction, LockState as S, LockType as T};
use mds_locker::cluster::{Cluster, Transport};
use mds_locker::{
    CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Event, FilePath, Ino, LockId, LockKey,
    LockMsg, LockOp, LockerConfig, MdsMessage, ObjKey, Op, Rank, ReqId,
};

/// One delivered message: (from, to, action or kind, lock, carries lock data).
type Logged = (Rank, Rank, &'static str, Option<LockKey>, bool);

/// FIFO delivery that remembers what it delivered.
#[derive(Debug, Default)]
struct Recorder {
    queue: VecDeque<(Rank, Rank, MdsMessage)>,
    log: Vec<Logged>,
}

impl Transport for Recorder {
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage) {
        self.queue.push_back((from, to, msg));
    }
    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)> {
        let m = self.queue.pop_front()?;
        let (lock, data) = match &m.2 {
            MdsMessage::Lock(l) => (Some(l.lock.clone()), l.data.is_some()),
            _ => (None, false),
        };
        self.log.push((m.0, m.1, m.2.kind(), lock, data));
        Some(m)
    }
    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

struct H {
    c: Cluster<Recorder>,
    seen: usize,
    a: Ino,
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

fn key(ino: Ino, ty: T) -> LockKey {
    LockKey { obj: ObjKey::Inode(ino), ty }
}

impl H {
    /// Two ranks, `/a` pinned to rank 1, and `dirs` subdirectories plus `files` files created
    /// in `/a` through rank 1, all settled.
    fn new(dirs: usize, files: usize) -> H {
        let mut c = Cluster::with_transport(2, LockerConfig::default(), Recorder::default());
        for r in 0..2 {
            for client in 1..=2 {
                c.handle(r, Event::SessionOpen { client }).unwrap();
            }
        }
        let mut h = H { c, seen: 0, a: Ino(0) };
        h.request(0, 1, 1, Op::Mkdir { path: path("a"), mode: 0o755 });
        h.settle();
        h.a = h.created(1).expect("mkdir /a");
        h.c.pin_empty_dir(h.a, 1).unwrap();
        h.check();
        let mut reqid = 10;
        for d in 0..dirs {
            h.request(1, reqid, 1, Op::Mkdir { path: path(&format!("a/d{d}")), mode: 0o755 });
            h.settle();
            reqid += 1;
        }
        for f in 0..files {
            let op = Op::Create { path: path(&format!("a/f{f}")), mode: 0o644, excl: true, file_mode: 1 };
            h.request(1, reqid, 1, op);
            h.settle();
            reqid += 1;
        }
        h.skip_log();
        h.c.take_outputs();
        h
    }

    fn check(&self) {
        if let Err(v) =
            mds_locker::invariants::check_cluster(self.c.lockers(), self.c.transport().in_flight())
        {
            panic!("invariants violated: {v:#?}");
        }
    }

    fn request(&mut self, rank: Rank, reqid: u64, client: u64, op: Op) {
        self.c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
        self.check();
    }

    /// The inode a safe reply named.
    fn created(&self, reqid: u64) -> Option<Ino> {
        self.replied(reqid).and_then(|r| r.ok().flatten())
    }

    #[allow(clippy::type_complexity)]
    fn replied(&self, reqid: u64) -> Option<Result<Option<Ino>, mds_locker::Errno>> {
        self.c.outputs().iter().find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        })
    }

    /// Delivers one message, then checks every invariant.
    fn step(&mut self) -> bool {
        let more = self.c.step().unwrap();
        self.check();
        more
    }

    /// Answers every cap revoke not yet answered (a cooperative client). Returns whether any
    /// was answered.
    fn ack_revokes(&mut self, answered: &mut usize) -> bool {
        let revokes: Vec<_> = self.c.outputs()[*answered..]
            .iter()
            .filter_map(|o| match &o.effect {
                Effect::Cap(m) if m.op == CapOp::Revoke => Some((o.rank, *m)),
                _ => None,
            })
            .collect();
        *answered = self.c.outputs().len();
        for (r, m) in &revokes {
            let ack = ClientCapMessage {
                client: m.client,
                ino: m.ino,
                op: ClientCapOp::Update,
                seq: m.seq,
                caps: m.caps,
                wanted: m.wanted,
            };
            self.c.handle(*r, Event::ClientCaps(ack)).unwrap();
            self.check();
        }
        !revokes.is_empty()
    }

    /// Delivers messages and answers revokes until quiet, without making any journal safe.
    fn run(&mut self) {
        let mut answered = 0;
        for _ in 0..10_000 {
            while self.step() {}
            if !self.ack_revokes(&mut answered) {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// `run`, then make every rank's journal safe, until nothing is left.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            self.run();
            let pending: Vec<Rank> = (0..2).filter(|r| self.c.unsafe_entries(*r) > 0).collect();
            if pending.is_empty() {
                return;
            }
            for r in pending {
                self.c.make_safe(r).unwrap();
                self.check();
            }
        }
        panic!("journals never settle");
    }

    fn id(&self, rank: Rank, k: &LockKey) -> LockId {
        self.c.rank(rank).cache().resolve_lock(k).unwrap()
    }

    fn state(&self, rank: Rank, ty: T) -> S {
        let k = key(self.a, ty);
        self.c.rank(rank).lock(self.id(rank, &k)).unwrap().state()
    }

    fn flags(&self, rank: Rank, ty: T) -> mds_locker::lock::ScatterFlags {
        let k = key(self.a, ty);
        self.c.rank(rank).lock(self.id(rank, &k)).unwrap().scatter_flags()
    }

    /// `/a`'s committed inode data on `rank`.
    fn a_data(&self, rank: Rank) -> mds_locker::InodeData {
        let c = self.c.rank(rank).cache();
        c.inode(c.lookup_ino(self.a).unwrap()).unwrap().data().clone()
    }

    /// `/a`'s committed fnode on `rank`.
    fn a_fnode(&self, rank: Rank) -> mds_locker::cache::Fnode {
        let c = self.c.rank(rank).cache();
        *c.dirfrag(c.resolve_dirfrag(self.a, 0).unwrap()).unwrap().fnode()
    }

    /// Lock messages about `/a`'s `ty` delivered since the last call: (from, to, action,
    /// carries data).
    fn take_log(&mut self, ty: T) -> Vec<(Rank, Rank, &'static str, bool)> {
        let k = key(self.a, ty);
        let out = self.c.transport().log[self.seen..]
            .iter()
            .filter(|e| e.3.as_ref() == Some(&k))
            .map(|e| (e.0, e.1, e.2, e.4))
            .collect();
        self.seen = self.c.transport().log.len();
        out
    }

    fn skip_log(&mut self) {
        self.seen = self.c.transport().log.len();
    }

    /// Journal entries submitted by `rank` with this EUpdate description, in order.
    fn journaled(&self, rank: Rank, what: &str) -> usize {
        self.c
            .outputs()
            .iter()
            .filter(|o| {
                o.rank == rank
                    && matches!(&o.effect, Effect::JournalSubmit { entry, .. } if entry.description == what)
            })
            .count()
    }

    /// Index in the outputs of the first effect matching `f`.
    fn position(&self, f: impl Fn(&mds_locker::cluster::Output) -> bool) -> Option<usize> {
        self.c.outputs().iter().position(f)
    }
}

const WB: &str = "scatter_writebehind";
const ACCOUNTED_FILE: &str = "lock ifile accounted scatter stat update";
const ACCOUNTED_NEST: &str = "lock inest accounted scatter stat update";

/// Before anything gathers: rank 1 counted the entries in its frag, marked both scatterlocks
/// updated (§4.13 `mark_updated_scatterlock`), and rank 0's inode knows nothing yet; both ends
/// are in MIX (rank 1 asked with REQSCATTER to write, §4.6).
#[test]
fn s4_13_replica_frag_changes_are_scattered_and_marked_updated() {
    let h = H::new(2, 3);
    let f1 = h.a_fnode(1);
    assert_eq!((f1.fragstat.nfiles, f1.fragstat.nsubdirs), (3, 2));
    assert_eq!((f1.rstat.rfiles, f1.rstat.rsubdirs), (3, 2));
    assert_eq!(f1.accounted_fragstat.nfiles, 0);
    let d0 = h.a_data(0);
    assert_eq!((d0.dirstat.nfiles, d0.dirstat.nsubdirs), (0, 0));
    for ty in [T::IFile, T::INest] {
        assert_eq!(h.state(0, ty), S::Mix);
        assert_eq!(h.state(1, ty), S::Mix);
        assert!(h.flags(1, ty).dirty, "{ty:?} dirty on the frag's auth");
        assert!(!h.flags(0, ty).dirty, "{ty:?} not dirty on the inode's auth yet");
    }
    let updated: Vec<_> = h.c.rank(1).updated_scatterlocks().map(|(l, _)| l.ty).collect();
    assert_eq!(updated, vec![T::IFile, T::INest]);
    assert_eq!(h.c.rank(0).updated_scatterlocks().count(), 0);
}

/// A getattr asking for `Fs` on rank 0 rdlocks IFILE: the auth cycles MIX → MIX_SYNC, rank 1
/// answers SYNCACK with its frag values, the auth folds them under a forced wrlock and
/// journals the writebehind, and only once that entry is safe does the gather finish, SYNC
/// (with data) go to rank 1 and the getattr reply go out, with `/a`'s dirstat counting every
/// entry. Rank 1 then journals its accounted values (§4.13 `finish_scatter_update`).
#[test]
fn s4_13_getattr_fs_gathers_fragstat_and_journals_writebehind_before_sync() {
    let mut h = H::new(2, 3);
    h.request(0, 100, 2, Op::Getattr { path: path("a"), mask: FILE_SHARED });
    h.run();
    assert_eq!(h.take_log(T::IFile), vec![(0, 1, "sync", false), (1, 0, "syncack", true)]);
    // The gather waits on the writebehind: flushing, forced wrlock, entry not yet safe.
    assert_eq!(h.state(0, T::IFile), S::MixSync);
    assert_eq!(h.state(1, T::IFile), S::MixSync2);
    assert!(h.flags(0, T::IFile).flushing && !h.flags(0, T::IFile).dirty);
    assert_eq!(h.journaled(0, WB), 1);
    let wbs: Vec<_> = h.c.rank(0).writebehinds().collect();
    assert_eq!(wbs.len(), 1);
    let (wb, lock) = wbs[0];
    assert_eq!(lock.ty, T::IFile);
    assert!(wb.0 >= ReqId::INTERNAL_BASE, "internal mutation id");
    assert_eq!(h.c.rank(0).lock(lock).unwrap().num_wrlock(), 1, "wrlock_force (§4.6)");
    assert_eq!(h.a_data(0).dirstat.nfiles, 0, "projected, not yet applied (§6.2)");
    assert_eq!(h.replied(100), None, "no reply before the fold is safe");
    // The entry carries the projected inode with the folded counts.
    let entry =
        h.c.outputs()
            .iter()
            .find_map(|o| match &o.effect {
                Effect::JournalSubmit { entry, .. } if entry.description == WB => Some(entry.clone()),
                _ => None,
            })
            .unwrap();
    let folded = entry
        .changes
        .iter()
        .find_map(|c| match c {
            mds_locker::MetaChange::Inode { ino, data, .. } if *ino == h.a => Some(data.dirstat),
            _ => None,
        })
        .expect("writebehind journals /a");
    assert_eq!((folded.nfiles, folded.nsubdirs), (3, 2));

    h.c.make_safe(0).unwrap();
    h.check();
    h.run();
    assert_eq!(h.take_log(T::IFile), vec![(0, 1, "sync", true)]);
    assert_eq!(h.state(0, T::IFile), S::Sync);
    assert_eq!(h.state(1, T::IFile), S::Sync);
    assert_eq!(h.replied(100), Some(Ok(Some(h.a))));
    let d0 = h.a_data(0);
    assert_eq!((d0.dirstat.nfiles, d0.dirstat.nsubdirs), (3, 2), "rank 0 counts every entry");
    let wb_at = h.position(|o| {
        o.rank == 0 && matches!(&o.effect, Effect::JournalSubmit { entry, .. } if entry.description == WB)
    });
    let reply_at = h.position(|o| matches!(&o.effect, Effect::Reply(r) if r.reqid == ReqId(100)));
    assert!(wb_at < reply_at);
    // Rank 1 got the folded values with SYNC and adopts them as accounted (journaled).
    assert_eq!(h.a_data(1).dirstat.nfiles, 3);
    assert_eq!(h.journaled(1, ACCOUNTED_FILE), 1);
    h.settle();
    let f1 = h.a_fnode(1);
    assert_eq!(f1.accounted_fragstat, f1.fragstat);
    assert!(!h.flags(0, T::IFile).flushing && !h.flags(0, T::IFile).flushed);
    assert!(!h.flags(1, T::IFile).dirty && !h.flags(1, T::IFile).flushing);
    // INEST was not gathered: still dirty on rank 1, unfolded on rank 0.
    assert!(h.flags(1, T::INest).dirty);
    assert_eq!(h.a_data(0).rstat.rfiles, 0);
    // Nothing is folded twice: a second getattr changes nothing and journals no writebehind.
    h.request(0, 101, 2, Op::Getattr { path: path("a"), mask: FILE_SHARED });
    h.settle();
    assert_eq!(h.replied(101), Some(Ok(Some(h.a))));
    assert_eq!(h.journaled(0, WB), 1);
    assert_eq!(h.a_data(0).dirstat.nfiles, 3);
}

/// INEST likewise (§4.13 rstat): a rdlock on `/a`'s nestlock on rank 0 gathers rank 1's
/// rstat and folds it into `/a`'s rstat before the rdlock is granted.
#[test]
fn s4_13_nestlock_rdlock_folds_rstat() {
    let mut h = H::new(2, 3);
    let nest = h.id(0, &key(h.a, T::INest));
    h.request(0, 100, 2, Op::LockSet { locks: vec![LockOp::rd(nest)], journal: false });
    h.run();
    assert_eq!(h.take_log(T::INest), vec![(0, 1, "sync", false), (1, 0, "syncack", true)]);
    assert!(h.flags(0, T::INest).flushing);
    assert!(!h.c.outputs().iter().any(|o| matches!(o.effect, Effect::LocksAcquired { .. })));
    h.c.make_safe(0).unwrap();
    h.check();
    h.run();
    assert_eq!(h.take_log(T::INest), vec![(0, 1, "sync", true)]);
    assert!(
        h.c.outputs()
            .iter()
            .any(|o| matches!(o.effect, Effect::LocksAcquired { reqid } if reqid == ReqId(100)))
    );
    let r = h.a_data(0).rstat;
    assert_eq!((r.rfiles, r.rsubdirs), (3, 2));
    assert_eq!(h.journaled(1, ACCOUNTED_NEST), 1);
    h.c.handle(0, Event::FinishRequest { reqid: ReqId(100) }).unwrap();
    h.settle();
    let f1 = h.a_fnode(1);
    assert_eq!(f1.accounted_rstat, f1.rstat);
}

/// §4.13 `scatter_tick` and §4.12 NUDGE / LOCKFLUSHED: nobody asks, but once the nudge
/// interval has passed rank 1's tick sends NUDGE for both locks; the auth cycles MIX →
/// MIX_LOCK(2), gathers LOCKACK with data, journals the writebehinds, and sends LOCKFLUSHED
/// only after they are safe.
#[test]
fn s4_13_tick_after_nudge_interval_folds_without_a_client_and_lockflushed_follows_safe() {
    let mut h = H::new(1, 2);
    // Too early: nothing happens (§4.13 "stop at the first entry updated less than
    // mds_scatter_nudge_interval ago").
    h.c.handle(1, Event::Tick { now_ms: 4_999 }).unwrap();
    h.c.handle(0, Event::Tick { now_ms: 4_999 }).unwrap();
    assert_eq!(h.c.transport().in_flight(), 0);
    assert_eq!(h.c.rank(1).updated_scatterlocks().count(), 2);
    h.c.handle(1, Event::Tick { now_ms: 5_000 }).unwrap();
    h.check();
    assert_eq!(h.c.transport().in_flight(), 2, "one NUDGE per dirty lock");
    assert!(h.c.outputs().iter().any(|o| o.rank == 1 && o.effect == Effect::JournalFlush));
    h.run();
    for ty in [T::IFile, T::INest] {
        assert_eq!(
            h.c.transport().log[h.seen..]
                .iter()
                .filter(|e| e.3.as_ref() == Some(&key(h.a, ty)))
                .map(|e| (e.0, e.1, e.2, e.4))
                .collect::<Vec<_>>(),
            vec![(1, 0, "nudge", false), (0, 1, "lock", false), (1, 0, "lockack", true)],
            "{ty:?}"
        );
        assert_eq!(h.state(0, ty), S::MixLock2, "{ty:?} waits for its writebehind");
        assert!(h.flags(0, ty).flushing);
        assert_eq!(h.state(1, ty), S::Lock);
        assert!(h.flags(1, ty).flushing, "{ty:?}: replica flushing until LOCKFLUSHED");
    }
    h.skip_log();
    assert_eq!(h.journaled(0, WB), 2);
    h.c.make_safe(0).unwrap();
    h.check();
    h.run();
    let k_file = key(h.a, T::IFile);
    let k_nest = key(h.a, T::INest);
    let after: Vec<_> = h.c.transport().log[h.seen..]
        .iter()
        .filter(|e| e.3.as_ref() == Some(&k_file) || e.3.as_ref() == Some(&k_nest))
        .map(|e| (e.0, e.1, e.2, e.3.as_ref().unwrap().ty))
        .collect();
    // LOCKFLUSHED only now, each right before its lock leaves MIX_LOCK2; the auth then
    // re-evaluates: IFILE (no one wants it scattered) goes on to SYNC, INEST back to MIX (the
    // dir has a subtree dirfrag on rank 1, §4.6 want_scatter).
    assert_eq!(
        after,
        vec![
            (0, 1, "lockflushed", T::IFile),
            (0, 1, "sync", T::IFile),
            (0, 1, "lockflushed", T::INest),
            (0, 1, "mix", T::INest)
        ]
    );
    for ty in [T::IFile, T::INest] {
        assert!(!h.flags(1, ty).flushing && !h.flags(1, ty).dirty, "{ty:?}");
        assert!(h.c.rank(0).lock(h.id(0, &key(h.a, ty))).unwrap().is_stable());
    }
    let d = h.a_data(0);
    assert_eq!((d.dirstat.nfiles, d.dirstat.nsubdirs), (2, 1));
    assert_eq!((d.rstat.rfiles, d.rstat.rsubdirs), (2, 1));
    h.settle();
    // Once rank 1's copy has adopted the folded values its list drains at the next tick.
    h.c.handle(1, Event::Tick { now_ms: 20_000 }).unwrap();
    h.c.handle(0, Event::Tick { now_ms: 20_000 }).unwrap();
    h.settle();
    assert_eq!(h.c.rank(1).updated_scatterlocks().count(), 0);
    assert_eq!(h.c.rank(0).updated_scatterlocks().count(), 0);
    assert_eq!(h.journaled(0, WB), 2, "nothing left to fold");
}

/// §4.12 `handle_reqrdlock`: a replica's REQRDLOCK that reaches the auth while its lock is
/// unstable (here MIX_SYNC, held open by the writebehind; the replica sent it before it saw
/// the auth's SYNC, which a transport that interleaves connections allows) is parked, not
/// dropped, and handled again when the lock is stable — by then SYNC, so it changes nothing.
#[test]
fn s4_12_reqrdlock_during_unstable_auth_is_parked_until_stable() {
    let mut h = H::new(1, 1);
    h.request(0, 100, 2, Op::Getattr { path: path("a"), mask: FILE_SHARED });
    h.run();
    assert_eq!(h.state(0, T::IFile), S::MixSync);
    let msg = LockMsg {
        action: LockAction::ReqRdlock,
        asker: 1,
        reqid: None,
        lock: key(h.a, T::IFile),
        data: None,
    };
    h.c.handle(0, Event::Message { from: 1, msg: MdsMessage::Lock(msg) }).unwrap();
    h.check();
    let parked: Vec<_> = h.c.rank(0).parked_rdlock_requests().map(|(l, r)| (l.ty, r)).collect();
    assert_eq!(parked, vec![(T::IFile, 1)]);
    assert_eq!(h.state(0, T::IFile), S::MixSync, "parking does not disturb the gather");
    h.skip_log();
    h.settle();
    assert_eq!(h.c.rank(0).parked_rdlock_requests().count(), 0);
    assert_eq!(h.take_log(T::IFile), vec![(0, 1, "sync", true)], "the retry in SYNC sends nothing");
    assert_eq!(h.state(0, T::IFile), S::Sync);
    assert_eq!(h.replied(100), Some(Ok(Some(h.a))));
}

/// §4.12 REQRDLOCK parking across an xlock: the auth's filelock is xlocked (the replica's
/// copy sits in LOCK, where it cannot rdlock), and the replica's rdlock request arrives
/// meanwhile and is parked. When the xlock ends (XLOCK → LOCK, which by itself tells the
/// replica nothing) the parked request is handled again and the auth goes to SYNC, which
/// wakes the replica. (Here the auth's own re-evaluation would also have gone to SYNC; the
/// parked set is what shows the request was kept rather than dropped.)
#[test]
fn s4_12_reqrdlock_parked_during_an_xlock_is_handled_when_it_ends() {
    let mut h = H::new(0, 1);
    // Make rank 0's IFILE of /a LOCK-able: xlock it (from MIX: MIX → LOCK, then LOCK → XLOCK).
    let file0 = h.id(0, &key(h.a, T::IFile));
    let file1 = h.id(1, &key(h.a, T::IFile));
    h.request(0, 100, 2, Op::LockSet { locks: vec![LockOp::x(file0)], journal: false });
    h.settle();
    assert!(
        h.c.outputs()
            .iter()
            .any(|o| matches!(o.effect, Effect::LocksAcquired { reqid } if reqid == ReqId(100)))
    );
    assert!(matches!(h.state(0, T::IFile), S::Xlock));
    assert_eq!(h.state(1, T::IFile), S::Lock);
    h.request(1, 200, 2, Op::LockSet { locks: vec![LockOp::rd(file1)], journal: false });
    h.run();
    let parked: Vec<_> = h.c.rank(0).parked_rdlock_requests().map(|(l, r)| (l.ty, r)).collect();
    assert_eq!(parked, vec![(T::IFile, 1)]);
    h.skip_log();
    h.c.handle(0, Event::FinishRequest { reqid: ReqId(100) }).unwrap();
    h.check();
    h.settle();
    assert_eq!(h.c.rank(0).parked_rdlock_requests().count(), 0);
    assert!(
        h.c.outputs().iter().any(
            |o| o.rank == 1 && matches!(o.effect, Effect::LocksAcquired { reqid } if reqid == ReqId(200))
        ),
        "the replica's rdlock is granted"
    );
    assert_eq!(h.state(1, T::IFile), S::Sync);
}
