//! Seeded randomized workload (STYLE.md: safety phase, then liveness phase).
//!
//! Several clients issue lock sets on a few inodes and dentries (acquired in one global order,
//! as Ceph's callers do, §4.3), hold or journal them, open and release caps and acknowledge
//! revokes in random order; alongside, they run namespace operations (mkdir, create, mknod,
//! symlink, unlink, rmdir, link, rename, setattr, xattrs, lookup, getattr, readdir, open with
//! and without O_TRUNC, flock) on a handful of names in a few directories, re-send completed
//! write requests, and now and then a client is evicted. The invariants of
//! `mds_locker::invariants` are checked after every event, and every first reply is checked
//! against a sequential model of the namespace (`model`), in which a request takes effect at
//! its first reply. Then the workload stops and the clients cooperate (finish, journal safe,
//! ack every revoke, release every file lock): every request must complete, every lock must
//! end stable and unheld, every lock state change must be an edge of `lock-sm`'s graph, and
//! the committed namespace must equal the model, with directory statistics matching entries.
//!
//! A failing seed is printed; rerun it with `MDS_LOCKER_SEED=<seed> cargo test -p mds-locker
//! --test random -- --nocapture` (add `MDS_TRACE=1` to print every event and its effects,
//! `MDS_DEBUG=1` to print caps and loners when an invariant breaks). `MDS_LOCKER_SEEDS=<n>`
//! runs more seeds (in release, about 80 per second), `MDS_LOCKER_SEED_START=<n>` starts the
//! range elsewhere, and `MDS_LOCKER_REPORT=1` prints how often each operation succeeded or
//! failed with each error.

mod common;
use mds_model as model;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::H;
use lock_sm::LockType as T;
use lock_sm::caps;
use mds_locker::cache::{S_IFDIR, S_IFIFO, S_IFMT, S_IFREG};
use mds_locker::mutation::Phase;
use model::{Kind, Model};

use mds_locker::{
    ClientCapMessage, ClientCapOp, ClientRequest, Effect, Errno, Event, FileLock, FileLockKind, FileLockRule,
    FilePath, Ino, InodeId, JournalSeq, Linkage, LockId, LockOp, ObjRef, Op, Reply, ReqId, SetAttr,
    XattrFlags,
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

/// Names the namespace operations use; the lock-set objects (`a`, `b`, `c`, `d`) are never
/// touched by name, so their handles stay valid.
const NAMES: [&str; 3] = ["n0", "n1", "n2"];
/// Bound on remembered directories used as bases.
const MAX_DIRS: usize = 12;

/// A reply's result.
type Outcome = Result<Option<Ino>, Errno>;

/// A namespace request waiting for its first reply.
struct Pending {
    client: u64,
    op: Op,
}

struct Sim {
    h: H,
    rng: Rng,
    /// Lockable objects in the one global order (path order: a directory inode, then each
    /// entry's dentry followed by its inode), which every lock set follows (§4.3).
    objs: Vec<ObjRef>,
    inodes: Vec<InodeId>,
    next_req: u64,
    seed: u64,
    model: Model,
    /// Namespace requests that have not replied yet.
    pending: BTreeMap<u64, Pending>,
    /// Early-replied requests and their result, which the safe reply must repeat.
    early: BTreeMap<u64, Outcome>,
    /// Early-replied namespace requests waiting for their safe reply: (client, op).
    pending_safe: BTreeMap<u64, (u64, Op)>,
    /// Successful writes whose safe reply went out: (reqid, client, op, result), for re-sends.
    done_writes: Vec<(u64, u64, Op, Outcome)>,
    /// Directories to use as bases: the root, `d`, and directories created since.
    dirs: Vec<Ino>,
    d_ino: Ino,
    /// Counts for the report: first replies per op name and outcome.
    seen: BTreeMap<String, u64>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut h = H::new();
        let mut model = Model::new();
        let mut objs = vec![ObjRef::Inode(h.l.cache().root())];
        let mut inodes = vec![h.l.cache().root()];
        for name in ["a", "b", "c"] {
            let (dn, i) = h.file(name);
            objs.push(ObjRef::Dentry(dn));
            objs.push(ObjRef::Inode(i));
            inodes.push(i);
            model.add_existing(Ino::ROOT, name, h.l.cache().inode(i).unwrap().ino(), Kind::File);
        }
        let (dn, d) = h.dir("d");
        objs.push(ObjRef::Dentry(dn));
        objs.push(ObjRef::Inode(d));
        inodes.push(d);
        let d_ino = h.l.cache().inode(d).unwrap().ino();
        model.add_existing(Ino::ROOT, "d", d_ino, Kind::Dir);
        let root = h.l.cache().root();
        h.l.cache_mut().recompute_dir_stats(root);
        Sim {
            h,
            rng: Rng(seed),
            objs,
            inodes,
            next_req: 1,
            seed,
            model,
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
            pending_safe: BTreeMap::new(),
            done_writes: Vec::new(),
            dirs: vec![Ino::ROOT, d_ino],
            d_ino,
            seen: BTreeMap::new(),
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

    /// Sends an event and feeds its effects to the model.
    fn ev(&mut self, e: Event) -> Vec<Effect> {
        if std::env::var("MDS_TRACE").is_ok() {
            eprintln!("EV {e:?}");
        }
        let fx = self.h.ev(e);
        if std::env::var("MDS_TRACE").is_ok() {
            eprintln!("  FX {fx:?}");
        }
        self.observe(&fx);
        fx
    }

    fn observe(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::Reply(r) => self.observe_reply(r),
                Effect::Evicted { client } => {
                    self.model.evict(*client);
                    // A new session starts with an empty completed-request table, and writes
                    // of the old one that complete later are not recorded in it.
                    self.done_writes.retain(|(_, c, _, _)| c != client);
                    self.pending_safe.retain(|_, (c, _)| c != client);
                }
                _ => {}
            }
        }
        // Requests that ended without replying (cancelled, evicted) took no effect.
        let in_flight: Vec<u64> = self.h.l.requests().map(|m| m.reqid().0).collect();
        self.pending.retain(|r, _| in_flight.contains(r));
    }

    fn observe_reply(&mut self, r: &Reply) {
        let id = r.reqid.0;
        if let Some(p) = self.pending.remove(&id) {
            if let Err(why) = self.model.apply(p.client, &p.op, r) {
                panic!("seed {}: req {id} {:?} by client {}: {why}", self.seed, p.op, p.client);
            }
            let outcome = match r.result {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            *self.seen.entry(format!("{} {outcome}", p.op.name())).or_default() += 1;
            if let (Op::Mkdir { .. }, Ok(Some(ino))) = (&p.op, r.result) {
                if self.dirs.len() >= MAX_DIRS {
                    self.dirs.remove(2);
                }
                self.dirs.push(ino);
            }
            if r.safe {
                self.record_write(id, p.client, p.op, r);
            } else {
                self.early.insert(id, r.result);
                // Keep the op for the re-send table once the safe reply comes.
                self.pending_safe.insert(id, (p.client, p.op));
            }
        } else if r.safe
            && let Some(early) = self.early.remove(&id)
        {
            assert_eq!(
                r.result, early,
                "seed {}: req {id}: safe reply differs from the early one",
                self.seed
            );
            if let Some((client, op)) = self.pending_safe.remove(&id) {
                self.record_write(id, client, op, r);
            }
        }
    }

    fn record_write(&mut self, id: u64, client: u64, op: Op, r: &Reply) {
        if op.is_write() && r.result.is_ok() && !self.done_writes.iter().any(|(i, ..)| *i == id) {
            self.done_writes.push((id, client, op, r.result));
        }
    }

    // ---- namespace requests -----------------------------------------------------------------

    fn name(&mut self) -> String {
        self.rng.pick(&NAMES).to_string()
    }

    /// Mostly the root and `d`, sometimes a directory created since (possibly removed again).
    fn dir(&mut self) -> Ino {
        match self.rng.below(10) {
            0..=4 => Ino::ROOT,
            5..=7 => self.d_ino,
            _ => {
                let dirs = self.dirs.clone();
                self.rng.pick(&dirs)
            }
        }
    }

    /// A depth-1 path (directory + name).
    fn named(&mut self) -> FilePath {
        let base = self.dir();
        let name = self.name();
        FilePath { base, components: vec![name] }
    }

    /// A path for single-path operations: mostly depth 1, sometimes two names from the root,
    /// sometimes (for operations on an existing inode) a directory itself.
    fn path(&mut self, allow_depth0: bool) -> FilePath {
        match self.rng.below(10) {
            0..=6 => self.named(),
            7 | 8 => {
                let (a, b) = (self.name(), self.name());
                FilePath::new(Ino::ROOT, &format!("{a}/{b}"))
            }
            _ if allow_depth0 => FilePath { base: self.dir(), components: vec![] },
            _ => self.named(),
        }
    }

    fn file_lock(&mut self, kind: FileLockKind) -> FileLock {
        let owner = 1 + self.rng.below(2) as u64;
        FileLock { kind, start: 0, length: 0, client: 0, owner, pid: owner }
    }

    fn random_namespace_op(&mut self) -> Op {
        match self.rng.below(106) {
            0..=9 => Op::Mkdir { path: self.path(false), mode: 0o755 },
            10..=19 => {
                let file_mode = self.rng.pick(&[caps::FILE_MODE_RD, caps::FILE_MODE_RDWR]);
                Op::Create { path: self.path(false), mode: 0o644, excl: self.rng.chance(50), file_mode }
            }
            20..=25 => {
                let mode = if self.rng.chance(70) { 0o644 } else { S_IFIFO | 0o600 };
                Op::Mknod { path: self.path(false), mode }
            }
            26..=29 => Op::Symlink { path: self.path(false), target: "n0".to_string() },
            30..=39 => Op::Unlink { path: self.path(false) },
            40..=46 => Op::Rmdir { path: self.path(false) },
            47..=54 => {
                let path = if self.rng.chance(5) { self.path(false) } else { self.named() };
                Op::Link { path, target: self.named() }
            }
            55..=66 => {
                let dest = if self.rng.chance(5) { self.path(false) } else { self.named() };
                Op::Rename { dest, src: self.named() }
            }
            67..=72 => {
                let attrs = match self.rng.below(5) {
                    0 => SetAttr { mode: Some(0o600), ..SetAttr::default() },
                    1 => SetAttr { uid: Some(7), gid: Some(8), ..SetAttr::default() },
                    2 => SetAttr { size: Some(self.rng.below(100) as u64), ..SetAttr::default() },
                    3 => SetAttr { mtime_ms: Some(5), ..SetAttr::default() },
                    _ => SetAttr { ctime_ms: Some(6), ..SetAttr::default() },
                };
                Op::Setattr { path: self.path(true), attrs }
            }
            73..=77 => {
                let flags = self.rng.pick(&[XattrFlags::Any, XattrFlags::Create, XattrFlags::Replace]);
                let name = self.rng.pick(&["user.x", "user.y"]).to_string();
                Op::Setxattr { path: self.path(true), name, value: b"v".to_vec(), flags }
            }
            78..=80 => {
                let name = self.rng.pick(&["user.x", "user.y"]).to_string();
                Op::Removexattr { path: self.path(true), name }
            }
            81..=86 => {
                let mask = self.rng.pick(&[0, caps::AUTH_SHARED, caps::FILE_SHARED | caps::LINK_SHARED]);
                Op::Lookup { path: self.path(true), mask }
            }
            87..=89 => Op::Getattr {
                path: FilePath { base: self.dir(), components: vec![] },
                mask: caps::AUTH_SHARED | caps::FILE_SHARED,
            },
            90..=93 => Op::Readdir { path: self.path(true) },
            94..=97 => {
                let file_mode =
                    self.rng.pick(&[caps::FILE_MODE_RD, caps::FILE_MODE_WR, caps::FILE_MODE_RDWR]);
                Op::Open {
                    path: self.path(true),
                    file_mode,
                    trunc: self.rng.chance(30),
                    directory: false,
                    mask: 0,
                }
            }
            98..=103 => {
                let kind =
                    self.rng.pick(&[FileLockKind::Shared, FileLockKind::Exclusive, FileLockKind::Unlock]);
                let lock = self.file_lock(kind);
                Op::SetFileLock {
                    path: self.path(false),
                    rule: FileLockRule::Flock,
                    lock,
                    wait: self.rng.chance(30),
                }
            }
            _ => {
                let kind = self.rng.pick(&[FileLockKind::Shared, FileLockKind::Exclusive]);
                let lock = self.file_lock(kind);
                Op::GetFileLock { path: self.path(false), rule: FileLockRule::Flock, lock }
            }
        }
    }

    fn send_namespace_op(&mut self, client: u64, op: Op) {
        let reqid = self.next_req;
        self.next_req += 1;
        self.pending.insert(reqid, Pending { client, op: op.clone() });
        self.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }));
    }

    /// Re-sends a completed write: it must be answered from the completed-request table with
    /// the recorded result and run nothing.
    fn resend_completed(&mut self) {
        if self.done_writes.is_empty() {
            return;
        }
        let (id, client, op, result) = self.done_writes[self.rng.below(self.done_writes.len())].clone();
        if !self.has_session(client) {
            return;
        }
        let fx = self.ev(Event::Request(ClientRequest { reqid: ReqId(id), client, op }));
        let mine: Vec<&Reply> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(r) if r.reqid.0 == id => Some(r),
                _ => None,
            })
            .collect();
        assert!(
            mine.len() == 1 && mine[0].safe && mine[0].result == result,
            "seed {}: re-sent req {id}: {fx:?}",
            self.seed
        );
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::JournalSubmit { entry, .. } if entry.reqid.0 == id)),
            "seed {}: re-sent req {id} ran again",
            self.seed
        );
        *self.seen.entry("resend answered".to_string()).or_default() += 1;
    }

    fn has_session(&self, client: u64) -> bool {
        self.h.l.sessions().any(|s| s.client() == client)
    }

    fn step(&mut self) {
        let roll = self.rng.below(100);
        match roll {
            0..=34 => {
                if self.h.l.requests().count() < 12 {
                    let client = self.rng.pick(&CLIENTS);
                    if !self.has_session(client) {
                        self.ev(Event::SessionOpen { client });
                    }
                    if self.rng.chance(60) {
                        let op = self.random_namespace_op();
                        self.send_namespace_op(client, op);
                    } else {
                        let locks = self.random_lock_set();
                        let journal = self.rng.chance(50);
                        let reqid = self.next_req;
                        self.next_req += 1;
                        let op = Op::LockSet { locks, journal };
                        self.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }));
                    }
                }
            }
            35..=46 => {
                let holding = self.reqs_in(|p| p == Phase::Holding);
                if !holding.is_empty() {
                    let r = self.rng.pick(&holding);
                    self.ev(Event::FinishRequest { reqid: r });
                }
            }
            47..=60 => {
                let seqs: Vec<JournalSeq> = self.h.l.committing().map(|(s, _)| s).collect();
                if !seqs.is_empty() {
                    let upto = seqs[self.rng.below(seqs.len().min(3))];
                    self.ev(Event::JournalSafe { upto });
                }
            }
            61..=72 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    // Sometimes the client voluntarily drops a shared bit too.
                    let drop = if self.rng.chance(20) { caps::FILE_SHARED | caps::AUTH_SHARED } else { 0 };
                    let e = self.cap_msg(c, i, ClientCapOp::Update, drop, None);
                    self.ev(e);
                }
            }
            73..=80 => {
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
            81..=84 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    let e = self.cap_msg(c, i, ClientCapOp::Release, 0, None);
                    self.ev(e);
                }
            }
            85..=87 => {
                let caps = self.caps();
                if !caps.is_empty() {
                    let (c, i) = self.rng.pick(&caps);
                    let wanted = self.rng.pick(&[caps::PIN, caps::caps_for_mode(caps::FILE_MODE_RDWR)]);
                    let e = self.cap_msg(c, i, ClientCapOp::Update, 0, Some(wanted));
                    self.ev(e);
                }
            }
            88..=89 => {
                let leases = self.leases();
                if !leases.is_empty() {
                    let e = leases[self.rng.below(leases.len())].clone();
                    self.ev(e);
                }
            }
            90..=92 => {
                let locking = self.reqs_in(|p| p == Phase::Locking);
                if !locking.is_empty() {
                    let r = self.rng.pick(&locking);
                    self.ev(Event::FinishRequest { reqid: r });
                }
            }
            93..=95 => self.resend_completed(),
            96..=98 => {
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
            // Holders of advisory locks let go, so blocked lockers get their turn.
            for (client, ino, owner) in self.file_lock_holders() {
                if self.has_session(client) && self.h.l.requests().count() < 64 {
                    let lock =
                        FileLock { kind: FileLockKind::Unlock, start: 0, length: 0, client, owner, pid: 0 };
                    let path = FilePath { base: ino, components: vec![] };
                    self.send_namespace_op(
                        client,
                        Op::SetFileLock { path, rule: FileLockRule::Flock, lock, wait: false },
                    );
                }
            }
            assert!(round < 499, "seed {}: no convergence\n{:#}", self.seed, self.h.l.dump_ops_in_flight());
        }
    }

    /// (client, inode, owner) of every held flock.
    fn file_lock_holders(&self) -> Vec<(u64, Ino, u64)> {
        let c = self.h.l.cache();
        let mut out = Vec::new();
        for i in c.inode_ids() {
            let n = c.inode(i).unwrap();
            for l in n.file_locks(FileLockRule::Flock).held() {
                out.push((l.client, n.ino(), l.owner));
            }
        }
        out
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
        let c = self.h.l.cache();
        for i in c.inode_ids() {
            assert_eq!(c.inode(i).unwrap().auth_pins(), 0, "seed {}: auth pins left", self.seed);
            assert_eq!(c.inode(i).unwrap().projections().count(), 0, "seed {}: projection left", self.seed);
        }
        for d in c.dentry_ids() {
            assert_eq!(c.dentry(d).unwrap().auth_pins(), 0, "seed {}: dentry auth pins left", self.seed);
            assert_eq!(c.dentry(d).unwrap().projections().count(), 0, "seed {}: projection left", self.seed);
        }
    }

    /// After settling: the committed namespace equals the model (names, inode numbers, types,
    /// link counts, xattr names), every directory's committed statistics match its entries
    /// (§6.2 projections applied in order), and every inode without links sits in a stray
    /// directory.
    fn check_model(&self) {
        let c = self.h.l.cache();
        let seed = self.seed;
        for (dir, name, ino) in self.model.reachable() {
            let d = c.lookup_ino(dir).unwrap();
            let dn = c.lookup_dentry(d, &name).unwrap_or_else(|| panic!("seed {seed}: {dir}/{name} missing"));
            let target = match c.dentry(dn).unwrap().linkage() {
                Linkage::Primary(i) => c.inode(i).unwrap().ino(),
                Linkage::Remote { ino, .. } => ino,
                Linkage::Null => panic!("seed {seed}: {dir}/{name} is null, model has {ino}"),
            };
            assert_eq!(target, ino, "seed {seed}: {dir}/{name}");
            let node = &self.model.nodes[&ino];
            let data = c.inode(c.lookup_ino(ino).unwrap()).unwrap().data();
            assert_eq!(data.mode & S_IFMT, node.kind.type_bits(), "seed {seed}: type of {ino}");
            if node.kind != Kind::Dir {
                assert_eq!(data.nlink, node.nlink, "seed {seed}: nlink of {ino}");
            }
            let xattrs: Vec<&String> = data.xattrs.keys().collect();
            assert_eq!(xattrs, node.xattrs.iter().collect::<Vec<_>>(), "seed {seed}: xattrs of {ino}");
        }
        // No extra names either.
        for (ino, node) in &self.model.nodes {
            if node.kind != Kind::Dir || node.removed {
                continue;
            }
            let d = c.lookup_ino(*ino).unwrap();
            let frag = *c.inode(d).unwrap().dirfrags().get(&0).unwrap();
            let names: Vec<&String> = c
                .dirfrag(frag)
                .unwrap()
                .dentries()
                .iter()
                .filter(|(_, dn)| c.dentry(**dn).unwrap().linkage() != Linkage::Null)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names, node.entries.keys().collect::<Vec<_>>(), "seed {seed}: entries of {ino}");
        }
        for i in c.inode_ids() {
            let n = c.inode(i).unwrap();
            if n.is_dir() {
                let frag = *n.dirfrags().get(&0).unwrap();
                let (mut files, mut dirs, mut rfiles, mut rdirs) = (0, 0, 0, 0);
                for dn in c.dirfrag(frag).unwrap().dentries().values() {
                    match c.dentry(*dn).unwrap().linkage() {
                        Linkage::Null => {}
                        Linkage::Primary(t) if c.inode(t).unwrap().is_dir() => {
                            dirs += 1;
                            rdirs += 1;
                        }
                        Linkage::Primary(_) => {
                            files += 1;
                            rfiles += 1;
                        }
                        Linkage::Remote { d_type, .. } if d_type == S_IFDIR => dirs += 1,
                        Linkage::Remote { .. } => files += 1,
                    }
                }
                let d = n.data();
                assert_eq!(
                    (d.dirstat.nfiles, d.dirstat.nsubdirs, d.rstat.rfiles, d.rstat.rsubdirs),
                    (files, dirs, rfiles, rdirs),
                    "seed {seed}: statistics of {}",
                    n.ino()
                );
            }
            if n.data().nlink == 0 {
                let parent = c.parent_dir(i);
                assert!(
                    parent.is_some_and(|p| c.is_stray(p)),
                    "seed {seed}: unlinked {} not in a stray dir",
                    n.ino()
                );
            }
        }
        let _ = S_IFREG;
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

fn run(seed: u64, steps: usize) -> (mds_locker::LockerStats, BTreeMap<String, u64>) {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
    }
    sim.settle();
    sim.assert_quiescent();
    sim.check_model();
    check_transitions(seed, sim.h.l.take_transitions());
    (sim.h.l.stats(), sim.seen)
}

fn run_reporting(seed: u64, steps: usize) -> (mds_locker::LockerStats, BTreeMap<String, u64>) {
    match catch_unwind(AssertUnwindSafe(|| run(seed, steps))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("random workload failed with seed {seed} (MDS_LOCKER_SEED={seed})");
            std::panic::resume_unwind(e)
        }
    }
}

#[test]
fn random_workload_keeps_invariants_matches_the_model_and_converges() {
    if let Ok(seed) = std::env::var("MDS_LOCKER_SEED") {
        run_reporting(seed.parse().expect("MDS_LOCKER_SEED must be a u64"), 400);
        return;
    }
    let seeds: u64 = std::env::var("MDS_LOCKER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(48);
    let first: u64 = std::env::var("MDS_LOCKER_SEED_START").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut total = mds_locker::LockerStats::default();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for seed in first..first + seeds {
        let (s, counts) = run_reporting(seed, 400);
        total.transitions += s.transitions;
        total.wakeups += s.wakeups;
        total.cap_messages += s.cap_messages;
        for (k, v) in counts {
            *seen.entry(k).or_default() += v;
        }
    }
    if std::env::var("MDS_LOCKER_REPORT").is_ok() {
        eprintln!("{total:?}\n{seen:#?}");
    }
    // The workload must actually exercise transitions, waits and cap traffic…
    assert!(total.transitions > seeds * 100, "{total:?}");
    assert!(total.wakeups > seeds * 5, "{total:?}");
    assert!(total.cap_messages > seeds * 10, "{total:?}");
    // …and every namespace operation must both succeed and fail along the way.
    if seeds >= 16 {
        for op in ["mkdir", "create", "mknod", "symlink", "unlink", "rmdir", "link", "rename", "setattr"] {
            assert!(seen.get(&format!("{op} ok")).is_some_and(|n| *n > 0), "{op} never succeeded: {seen:?}");
            assert!(
                seen.keys().any(|k| k.starts_with(op) && !k.ends_with(" ok")),
                "{op} never failed: {seen:?}"
            );
        }
        for k in ["rename EINVAL", "rmdir ENOTEMPTY", "link EEXIST", "setfilelock EAGAIN", "resend answered"]
        {
            assert!(seen.get(k).is_some_and(|n| *n > 0), "{k} never happened: {seen:?}");
        }
    }
}
