//! Seeded randomized lock workload (STYLE.md: safety phase, then liveness phase).
//!
//! Several clients issue lock sets on a few inodes and dentries (acquired in one global order,
//! as Ceph's callers do, §4.3), hold or journal them, open and release caps and acknowledge
//! revokes in random order; now and then a client is evicted. The invariants of
//! `mds_locker::invariants` are checked after every event. Then the workload stops and the
//! clients cooperate (finish, journal safe, ack every revoke): every request must complete and
//! every lock must end stable and unheld, every lock state change must be an edge of
//! `lock-sm`'s graph, and the namespace must hold every creation that got a safe reply with
//! parent statistics matching the children.
//!
//! A failing seed is printed; rerun it with `MDS_LOCKER_SEED=<seed> cargo test -p mds-locker
//! --test random -- --nocapture` (add `MDS_TRACE=1` to print every event and its effects,
//! `MDS_DEBUG=1` to print caps and loners when an invariant breaks). `MDS_LOCKER_SEEDS=<n>`
//! runs more seeds (3000 pass in release in about 35 s).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::H;
use lock_sm::LockType as T;
use lock_sm::caps;
use mds_locker::mutation::Phase;
use std::collections::{BTreeMap, BTreeSet};

use mds_locker::{
    ClientCapMessage, ClientCapOp, ClientRequest, Effect, Errno, Event, FilePath, Ino, InodeId, JournalSeq,
    LockId, LockOp, ObjRef, Op, ReqId,
};

/// splitmix64: tiny, std-only, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const CLIENTS: [u64; 3] = [1, 2, 3];
const INODE_RD: [T; 9] =
    [T::ISnap, T::IPolicy, T::IFile, T::INest, T::IDft, T::IAuth, T::ILink, T::IXattr, T::IFlock];
const INODE_WR: [T; 4] = [T::IFile, T::INest, T::IDft, T::IVersion];
const INODE_X: [T; 7] = [T::ISnap, T::IPolicy, T::IFile, T::IAuth, T::ILink, T::IXattr, T::IFlock];

/// A create-like request in flight: (dir name or "" for root, name, is_dir, O_EXCL).
type Pending = (String, String, bool, bool);

struct Sim {
    h: H,
    rng: Rng,
    /// Lockable objects in the one global order (path order: a directory inode, then each
    /// entry's dentry followed by its inode), which every lock set follows (§4.3).
    objs: Vec<ObjRef>,
    inodes: Vec<InodeId>,
    next_req: u64,
    seed: u64,
    /// Create-like requests in flight.
    pending: BTreeMap<u64, Pending>,
    /// Names a safe reply reported as created, per directory: the model.
    created: BTreeSet<(String, String)>,
    /// Requests that got an early reply (journaled creations).
    early: BTreeSet<u64>,
    d_ino: Ino,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut h = H::new();
        let mut objs = vec![ObjRef::Inode(h.l.cache().root())];
        let mut inodes = vec![h.l.cache().root()];
        for name in ["a", "b", "c"] {
            let (dn, i) = h.file(name);
            objs.push(ObjRef::Dentry(dn));
            objs.push(ObjRef::Inode(i));
            inodes.push(i);
        }
        let (dn, d) = h.dir("d");
        objs.push(ObjRef::Dentry(dn));
        objs.push(ObjRef::Inode(d));
        inodes.push(d);
        let d_ino = h.l.cache().inode(d).unwrap().ino();
        Sim {
            h,
            rng: Rng(seed),
            objs,
            inodes,
            next_req: 1,
            seed,
            pending: BTreeMap::new(),
            created: BTreeSet::new(),
            early: BTreeSet::new(),
            d_ino,
        }
    }

    fn random_lock_set(&mut self) -> Vec<LockOp> {
        let n = 1 + self.rng.below(3);
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < n {
            let o = self.rng.below(self.objs.len());
            if !chosen.contains(&o) {
                chosen.push(o);
            }
        }
        // One global object order for every request, so acquisition cannot deadlock (§4.3).
        chosen.sort();
        let chosen: Vec<ObjRef> = chosen.into_iter().map(|i| self.objs[i]).collect();
        let mut ops = Vec::new();
        for obj in chosen {
            let k = 1 + self.rng.below(2);
            let mut types: Vec<(T, u8)> = Vec::new();
            for _ in 0..k {
                let (ty, mode) = match obj {
                    ObjRef::Dentry(_) => match self.rng.below(3) {
                        0 => (T::Dn, 0),
                        1 => (T::Dn, 2),
                        _ => (T::DVersion, 1),
                    },
                    ObjRef::Inode(_) => match self.rng.below(3) {
                        0 => (self.rng.pick(&INODE_RD), 0),
                        1 => (self.rng.pick(&INODE_WR), 1),
                        _ => (self.rng.pick(&INODE_X), 2),
                    },
                };
                if !types.iter().any(|(t, _)| *t == ty) {
                    types.push((ty, mode));
                }
            }
            types.sort_by_key(|(t, _)| t.value());
            for (ty, mode) in types {
                let lock = LockId { obj, ty };
                ops.push(match mode {
                    0 => LockOp::rd(lock),
                    1 => LockOp::wr(lock),
                    _ => LockOp::x(lock),
                });
            }
        }
        ops
    }

    fn reqs_in(&self, want: fn(Phase) -> bool) -> Vec<ReqId> {
        self.h.l.requests().filter(|m| want(m.phase())).map(|m| m.reqid()).collect()
    }

    /// (client, inode) pairs with a capability.
    fn caps(&self) -> Vec<(u64, InodeId)> {
        let mut out = Vec::new();
        for i in self.h.l.cache().inode_ids() {
            for c in self.h.l.cache().inode(i).unwrap().caps().keys() {
                out.push((*c, i));
            }
        }
        out
    }

    fn cap_msg(&self, client: u64, inode: InodeId, op: ClientCapOp, drop: u32, wanted: Option<u32>) -> Event {
        let n = self.h.l.cache().inode(inode).unwrap();
        let cap = n.caps().get(&client).unwrap();
        Event::ClientCaps(ClientCapMessage {
            client,
            ino: n.ino(),
            op,
            seq: cap.last_sent(),
            caps: cap.pending() & !drop,
            wanted: wanted.unwrap_or(cap.wanted()),
        })
    }

    /// Sends an event and feeds its replies to the model.
    fn ev(&mut self, e: Event) {
        if std::env::var("MDS_TRACE").is_ok() {
            eprintln!("EV {e:?}");
        }
        let fx = self.h.ev(e);
        if std::env::var("MDS_TRACE").is_ok() {
            eprintln!("  FX {fx:?}");
        }
        self.observe(&fx);
    }

    fn observe(&mut self, fx: &[Effect]) {
        for e in fx {
            let Effect::Reply(r) = e else { continue };
            if !r.safe {
                // Only journaled creations reply early; an open of an existing file does not.
                self.early.insert(r.reqid.0);
                continue;
            }
            let Some((dir, name, is_dir, excl)) = self.pending.remove(&r.reqid.0) else { continue };
            match r.result {
                Ok(_) => {
                    if !self.early.remove(&r.reqid.0) {
                        assert!(!is_dir && !excl, "seed {}: creation without early reply", self.seed);
                        continue;
                    }
                    let fresh = self.created.insert((dir.clone(), name.clone()));
                    assert!(fresh, "seed {}: {dir}/{name} created twice (req {})", self.seed, r.reqid.0);
                }
                Err(Errno::EEXIST) => {}
                Err(Errno::EISDIR) => assert!(!is_dir && !excl, "seed {}", self.seed),
                Err(other) => panic!("seed {}: unexpected {other:?} for {dir}/{name}", self.seed),
            }
        }
    }

    fn server_op(&mut self, client: u64) {
        let in_d = self.rng.chance(50);
        let (base, dir) = if in_d { (self.d_ino, "d") } else { (Ino::ROOT, "") };
        let name = format!("n{}", self.rng.below(4));
        let reqid = self.next_req;
        self.next_req += 1;
        let path = FilePath::new(base, &name);
        let op = match self.rng.below(4) {
            0 => {
                self.pending.insert(reqid, (dir.to_string(), name, true, true));
                Op::Mkdir { path, mode: 0o755 }
            }
            1 => {
                let excl = self.rng.chance(50);
                self.pending.insert(reqid, (dir.to_string(), name, false, excl));
                let file_mode = self.rng.pick(&[caps::FILE_MODE_RD, caps::FILE_MODE_RDWR]);
                Op::Create { path, mode: 0o644, excl, file_mode }
            }
            2 => {
                // Also look up the entries that exist from the start.
                let path = if self.rng.chance(50) {
                    FilePath::new(Ino::ROOT, self.rng.pick(&["a", "d"]))
                } else {
                    path
                };
                Op::Lookup {
                    path,
                    mask: self.rng.pick(&[0, caps::AUTH_SHARED, caps::FILE_SHARED | caps::LINK_SHARED]),
                }
            }
            _ => Op::Getattr { path: FilePath::new(base, ""), mask: caps::AUTH_SHARED | caps::FILE_SHARED },
        };
        self.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }));
    }

    /// After settling: every name the model saw created exists, committed, and each directory's
    /// committed entry counts match its children (§6.2 projections applied in order).
    fn check_model(&self) {
        let c = self.h.l.cache();
        for (dir, name) in &self.created {
            let d = if dir.is_empty() { c.root() } else { c.lookup_ino(self.d_ino).unwrap() };
            let dn = c
                .lookup_dentry(d, name)
                .unwrap_or_else(|| panic!("seed {}: {dir}/{name} missing", self.seed));
            assert!(
                matches!(c.dentry(dn).unwrap().linkage(), mds_locker::Linkage::Primary(_)),
                "seed {}: {dir}/{name} not linked",
                self.seed
            );
        }
        for d in [c.root(), c.lookup_ino(self.d_ino).unwrap()] {
            let (mut files, mut dirs) = (0, 0);
            for dn in c.dirfrag(*c.inode(d).unwrap().dirfrags().get(&0).unwrap()).unwrap().dentries().values()
            {
                if let mds_locker::Linkage::Primary(i) = c.dentry(*dn).unwrap().linkage() {
                    if c.inode(i).unwrap().is_dir() { dirs += 1 } else { files += 1 }
                }
            }
            let stat = c.inode(d).unwrap().data().dirstat;
            let pre = if d == c.root() { (3, 1) } else { (0, 0) };
            assert_eq!(
                (stat.nfiles + pre.0, stat.nsubdirs + pre.1),
                (files, dirs),
                "seed {}: dirstat",
                self.seed
            );
        }
    }

    fn has_session(&self, client: u64) -> bool {
        self.h.l.sessions().any(|s| s.client() == client)
    }

    fn step(&mut self) {
        let roll = self.rng.below(100);
        match roll {
            0..=29 => {
                if self.h.l.requests().count() < 12 {
                    let client = self.rng.pick(&CLIENTS);
                    if !self.has_session(client) {
                        self.ev(Event::SessionOpen { client });
                    }
                    let locks = self.random_lock_set();
                    let journal = self.rng.chance(50);
                    let reqid = self.next_req;
                    self.next_req += 1;
                    if self.rng.chance(35) {
                        self.next_req -= 1;
                        self.server_op(client);
                    } else {
                        let op = Op::LockSet { locks, journal };
                        self.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }));
                    }
                }
            }
            30..=44 => {
                let holding = self.reqs_in(|p| p == Phase::Holding);
                if !holding.is_empty() {
                    let r = self.rng.pick(&holding);
                    self.ev(Event::FinishRequest { reqid: r });
                }
            }
            45..=59 => {
                let seqs: Vec<JournalSeq> = self.h.l.committing().map(|(s, _)| s).collect();
                if !seqs.is_empty() {
                    let upto = seqs[self.rng.below(seqs.len().min(3))];
                    self.ev(Event::JournalSafe { upto });
                }
            }
            60..=74 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    // Sometimes the client voluntarily drops a shared bit too.
                    let drop = if self.rng.chance(20) { caps::FILE_SHARED | caps::AUTH_SHARED } else { 0 };
                    let e = self.cap_msg(c, i, ClientCapOp::Update, drop, None);
                    self.ev(e);
                }
            }
            75..=84 => {
                let client = self.rng.pick(&CLIENTS);
                if self.has_session(client) {
                    let inode = self.rng.pick(&self.inodes);
                    let wanted = self.rng.pick(&[
                        caps::caps_for_mode(caps::FILE_MODE_RD),
                        caps::caps_for_mode(caps::FILE_MODE_WR),
                        caps::caps_for_mode(caps::FILE_MODE_RDWR),
                        caps::caps_for_mode(caps::FILE_MODE_LAZY),
                        caps::PIN | caps::AUTH_SHARED | caps::LINK_SHARED,
                    ]);
                    let fx = self.h.open_cap(client, inode, wanted);
                    self.observe(&fx);
                }
            }
            85..=89 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    let e = self.cap_msg(c, i, ClientCapOp::Release, 0, None);
                    self.ev(e);
                }
            }
            90..=92 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    let wanted = self.rng.pick(&[caps::PIN, caps::caps_for_mode(caps::FILE_MODE_RDWR)]);
                    let e = self.cap_msg(c, i, ClientCapOp::Update, 0, Some(wanted));
                    self.ev(e);
                }
            }
            93..=94 => {
                let leases = self.leases();
                if !leases.is_empty() {
                    let e = leases[self.rng.below(leases.len())].clone();
                    self.ev(e);
                }
            }
            95..=97 => {
                let locking = self.reqs_in(|p| p == Phase::Locking);
                if !locking.is_empty() {
                    let r = self.rng.pick(&locking);
                    self.ev(Event::FinishRequest { reqid: r });
                }
            }
            98 => {
                // Time passes; a client sitting on a revoke for a whole session timeout goes.
                let now = self.h.l.now_ms() + 20_000;
                self.ev(Event::Tick { now_ms: now });
            }
            _ => {
                let client = self.rng.pick(&CLIENTS);
                if self.has_session(client) {
                    self.ev(Event::SessionTimeout { client });
                    self.ev(Event::SessionOpen { client });
                }
            }
        }
    }

    /// Everybody cooperates until nothing is in flight.
    fn settle(&mut self) {
        for round in 0..500 {
            if self.h.l.requests().count() == 0
                && self.caps().iter().all(|(c, i)| !self.revoking(*c, *i))
                && self.leases().is_empty()
            {
                return;
            }
            for r in self.reqs_in(|p| p == Phase::Holding) {
                self.ev(Event::FinishRequest { reqid: r });
            }
            if let Some(last) = self.h.l.committing().map(|(s, _)| s).last() {
                self.ev(Event::JournalSafe { upto: last });
            }
            for (c, i) in self.caps() {
                if self.revoking(c, i) {
                    let e = self.cap_msg(c, i, ClientCapOp::Update, 0, None);
                    self.ev(e);
                }
            }
            for e in self.leases() {
                self.ev(e);
            }
            assert!(round < 499, "seed {}: no convergence\n{:#}", self.seed, self.h.l.dump_ops_in_flight());
        }
    }

    /// A release event for every outstanding dentry lease.
    fn leases(&self) -> Vec<Event> {
        let c = self.h.l.cache();
        let mut out = Vec::new();
        for d in c.dentry_ids() {
            let lock = c.lock(LockId::dentry(d, T::Dn)).unwrap();
            let dir = c.inode(c.dentry_dir_inode(d).unwrap()).unwrap().ino();
            let name = c.dentry(d).unwrap().name().to_string();
            for (client, seq) in lock.leases() {
                out.push(Event::LeaseRelease { client: *client, dir, name: name.clone(), seq: *seq });
            }
        }
        out
    }

    fn revoking(&self, c: u64, i: InodeId) -> bool {
        self.h.l.cache().inode(i).unwrap().caps().get(&c).is_some_and(|cap| cap.is_revoking())
    }

    fn assert_quiescent(&self) {
        let active = self.h.l.dump_locks(mds_locker::LockFilter::Active);
        for lock in active.as_array().unwrap() {
            let held = ["rdlocks", "wrlocks", "xlocks", "waiters"]
                .iter()
                .any(|k| !lock[k].as_array().unwrap().is_empty());
            assert!(
                !held && lock["stable"].as_bool().unwrap(),
                "seed {}: lock not released: {lock:#}",
                self.seed
            );
        }
        for i in &self.inodes {
            assert_eq!(
                self.h.l.cache().inode(*i).unwrap().auth_pins(),
                0,
                "seed {}: auth pins left",
                self.seed
            );
        }
    }
}

/// A lock changes state only along `lock-sm`'s edges: a table `next` step or an initiated edge
/// (§4.7, §4.9, §4.10), and never into TSYN (§8 fact 52).
fn check_transitions(seed: u64, transitions: Vec<mds_locker::Transition>) {
    use lock_sm::LockState as S;
    use lock_sm::transitions::{initiated_edges, next_edges};
    for t in transitions {
        let m = t.lock.ty.machine();
        let known = next_edges(m).any(|e| e == (t.from, t.to))
            || initiated_edges(m).any(|e| (e.from, e.to) == (t.from, t.to));
        assert!(known, "seed {seed}: {} {} -> {} is not an edge of {}", t.lock.ty, t.from, t.to, m.name());
        assert!(!matches!(t.to, S::Tsyn | S::TsynLock | S::TsynMix | S::LockTsyn | S::MixTsyn), "fact 52");
    }
}

fn run(seed: u64, steps: usize) -> mds_locker::LockerStats {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
    }
    sim.settle();
    sim.assert_quiescent();
    sim.check_model();
    check_transitions(seed, sim.h.l.take_transitions());
    sim.h.l.stats()
}

fn run_reporting(seed: u64, steps: usize) -> mds_locker::LockerStats {
    match catch_unwind(AssertUnwindSafe(|| run(seed, steps))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("random workload failed with seed {seed} (MDS_LOCKER_SEED={seed})");
            std::panic::resume_unwind(e)
        }
    }
}

#[test]
fn random_lock_workload_keeps_invariants_and_converges() {
    if let Ok(seed) = std::env::var("MDS_LOCKER_SEED") {
        run_reporting(seed.parse().expect("MDS_LOCKER_SEED must be a u64"), 400);
        return;
    }
    let seeds: u64 = std::env::var("MDS_LOCKER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let mut total = mds_locker::LockerStats::default();
    for seed in 0..seeds {
        let s = run_reporting(seed, 400);
        total.transitions += s.transitions;
        total.wakeups += s.wakeups;
        total.cap_messages += s.cap_messages;
    }
    // The workload must actually exercise transitions, waits and cap traffic.
    assert!(total.transitions > seeds * 100, "{total:?}");
    assert!(total.wakeups > seeds * 5, "{total:?}");
    assert!(total.cap_messages > seeds * 10, "{total:?}");
}
