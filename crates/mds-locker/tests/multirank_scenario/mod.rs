//! The scenario harness of the multi-rank namespace tests (multirank_unlink.rs,
//! multirank_migrate.rs, the multirank_cross_*.rs tests): a FIFO transport that logs what it
//! carried, a driver that checks the cross-rank invariants after every delivery with a
//! cooperative client, client requests sent and their safe replies picked, scenarios written
//! as path-named steps, and the comparison of a multi-rank run with one rank (replies with
//! inode numbers as creation order, the namespace with link counts, the strays); a transport
//! that holds chosen messages back.
#![allow(dead_code)]

pub use std::collections::BTreeMap;

pub use mds_locker::cache::Linkage;
pub use mds_locker::cluster::{Cluster, Output, Transport};
pub use mds_locker::cooperative::CooperativeClients;
pub use mds_locker::twophase::{PeerPhase, PeerRecord};
pub use mds_locker::{
    ClientRequest, Effect, Errno, Event, FilePath, Ino, JournalEntry, LockerConfig, MdsMessage, Op, Reply,
    ReqId, SetAttr,
};

/// FIFO transport that remembers the two-phase peer messages it carried: (from, to, op).
#[derive(Debug, Default)]
pub struct Recording {
    pub queue: std::collections::VecDeque<(u32, u32, MdsMessage)>,
    pub peer_log: Vec<(u32, u32, &'static str)>,
    /// Every message: (from, to, kind).
    pub msg_log: Vec<(u32, u32, &'static str)>,
}

impl Transport for Recording {
    fn send(&mut self, from: u32, to: u32, msg: MdsMessage) {
        if let MdsMessage::Peer(p) = &msg {
            self.peer_log.push((from, to, p.op.name()));
        }
        self.msg_log.push((from, to, msg.kind()));
        self.queue.push_back((from, to, msg));
    }
    fn next(&mut self) -> Option<(u32, u32, MdsMessage)> {
        self.queue.pop_front()
    }
    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

pub type C = Cluster<Recording>;

pub fn check<T: Transport>(c: &Cluster<T>) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
}

/// Delivers everything one step at a time (invariants after each), answers cap and lease
/// revokes as a cooperative client does, makes journals safe when the network is quiet;
/// returns the outputs. Generic over the transport so the cross-subtree tests, on the plain
/// FIFO transport, share it.
pub fn drive<T: Transport>(c: &mut Cluster<T>, clients: &mut CooperativeClients) -> Vec<Output> {
    let mut out = Vec::new();
    for _ in 0..20_000 {
        if c.step().unwrap() {
            check(c);
            continue;
        }
        let batch = c.take_outputs();
        let answers = clients.answers(&batch);
        let answered = !answers.is_empty();
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
            check(c);
        }
        out.extend(batch);
        let pending: Vec<u32> = (0..c.len() as u32).filter(|r| c.unsafe_entries(*r) > 0).collect();
        if pending.is_empty() && !answered && c.transport().in_flight() == 0 {
            return out;
        }
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("cluster did not settle: delivered {:?}", c.delivered());
}

/// Opens `client`'s session on `rank` unless it is open already: a rank serves requests of
/// clients with a session only, and a second SessionOpen would be a new session.
pub fn open<T: Transport>(c: &mut Cluster<T>, rank: u32, client: u64) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
}

/// Hands `op` from `client` to `rank` (opening the session first) and checks the invariants,
/// delivering nothing: tests that interleave several requests send them all before driving.
pub fn send<T: Transport>(c: &mut Cluster<T>, rank: u32, client: u64, reqid: u64, op: Op) {
    open(c, rank, client);
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    check(c);
}

/// The safe reply to `reqid` in `out`, if any (the early, unsafe one does not count: the
/// tests look at what a request committed to).
pub fn safe_reply(out: &[Output], reqid: u64) -> Option<&Reply> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r),
        _ => None,
    })
}

/// The result of the safe reply to `reqid` in `out`, if any.
pub fn safe_result(out: &[Output], reqid: u64) -> Option<Result<Option<Ino>, Errno>> {
    safe_reply(out, reqid).map(|r| r.result)
}

/// Prints every rank's live requests (id, leader, held locks, history) to stderr: what a
/// test shows when a request never got its reply, so the hang can be read off.
pub fn dump_requests<T: Transport>(c: &Cluster<T>) {
    for l in c.lockers() {
        for m in l.requests() {
            let ev: Vec<_> = m.events().iter().map(|e| e.what.clone()).collect();
            eprintln!(
                "rank {}: {:?} peer_of {:?} held {:?} events {:?}",
                l.cache().rank(),
                m.reqid(),
                m.peer_of(),
                m.held(),
                ev
            );
        }
    }
}

/// One client operation, the rank its client (client 1) sends it to, and the reply (the
/// safe one) with everything the run produced.
pub fn submit<T: Transport>(
    c: &mut Cluster<T>,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> (Result<Option<Ino>, Errno>, Vec<Output>) {
    send(c, rank, 1, reqid, op);
    let out = drive(c, cl);
    let r = safe_result(&out, reqid).unwrap_or_else(|| {
        dump_requests(c);
        panic!("request {reqid} got no safe reply")
    });
    (r, out)
}

/// [`submit`] for a test that only wants the result.
pub fn run_op<T: Transport>(
    c: &mut Cluster<T>,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> Result<Option<Ino>, Errno> {
    submit(c, cl, rank, reqid, op).0
}

/// [`run_op`] for a setup step that must succeed and name an inode (mkdir, create).
pub fn ok_ino<T: Transport>(
    c: &mut Cluster<T>,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> Ino {
    run_op(c, cl, rank, reqid, op).unwrap().unwrap()
}

/// The start of most cross-subtree tests: `ranks` ranks, `/t0` on rank 0 and `/tK` pinned to
/// rank K for each K in `pinned`, made by requests 1, 2, ... Returns the top directories,
/// `/t0` first, then the pinned ones in order.
pub fn pinned_tops(ranks: u32, pinned: &[u32]) -> (C, CooperativeClients, Vec<Ino>) {
    let mut cl = CooperativeClients::new();
    let mut c: C = Cluster::with_transport(ranks, LockerConfig::default(), Recording::default());
    let mut tops = vec![ok_ino(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("t0"), mode: 0o755 })];
    for (k, r) in pinned.iter().enumerate() {
        let t =
            ok_ino(&mut c, &mut cl, 0, 2 + k as u64, Op::Mkdir { path: path(&format!("t{r}")), mode: 0o755 });
        c.pin_empty_dir(t, *r).unwrap();
        check(&c);
        tops.push(t);
    }
    (c, cl, tops)
}

/// Delivers messages and answers cap revokes until nothing moves, but never makes a journal
/// safe: for tests that keep an update unsafe on purpose.
pub fn pump<T: Transport>(c: &mut Cluster<T>, cl: &mut CooperativeClients) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        while c.step().unwrap() {
            check(c);
        }
        let batch = c.take_outputs();
        let answers = cl.answers(&batch);
        out.extend(batch);
        if answers.is_empty() {
            return out;
        }
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
            check(c);
        }
    }
}

pub fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// A step of a scenario: paths are from the root; `Mk` makes a directory (pinned to a rank on
/// the multi-rank cluster), `Send` runs an op on the given rank (rank 0 on one rank). Two-path
/// ops name their directories by inode number, so ops are built when the step runs.
#[derive(Debug, Clone)]
pub enum S {
    Mk(&'static str, u32),
    Send(u32, P),
}

/// An operation by path names.
#[derive(Debug, Clone)]
pub enum P {
    Create(&'static str),
    Link(&'static str, &'static str),
    Rename(&'static str, &'static str),
    Unlink(&'static str),
    Getattr(&'static str),
    Setattr(&'static str, SetAttr),
}

pub fn create(p: &'static str) -> P {
    P::Create(p)
}

pub fn link(new: &'static str, target: &'static str) -> P {
    P::Link(new, target)
}

pub fn rename(dest: &'static str, src: &'static str) -> P {
    P::Rename(dest, src)
}

/// The op on a cluster whose directories are `dirs` (path → inode number).
pub fn op(p: &P, dirs: &BTreeMap<String, Ino>) -> Op {
    let split = |x: &str| -> FilePath {
        match x.rsplit_once('/') {
            None => FilePath::new(Ino::ROOT, x),
            Some((d, n)) => FilePath::new(dirs[d], n),
        }
    };
    match p {
        P::Create(x) => Op::Create { path: path(x), mode: 0o644, excl: true, file_mode: 1 },
        P::Link(n, t) => Op::Link { path: split(n), target: split(t) },
        P::Rename(d, s) => Op::Rename { dest: split(d), src: split(s) },
        P::Unlink(x) => Op::Unlink { path: path(x) },
        P::Getattr(x) => Op::Getattr { path: path(x), mask: 0 },
        P::Setattr(x, a) => Op::Setattr { path: path(x), attrs: *a },
    }
}

/// What a run shows: every reply with inode numbers replaced by creation order, the
/// namespace (path → link count of the inode it names), and the link counts of the inodes in
/// stray directories, sorted.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub replies: Vec<Result<Option<usize>, Errno>>,
    pub names: BTreeMap<String, u32>,
    pub strays: Vec<u32>,
}

/// Runs `steps` on `ranks` ranks (rank numbers taken modulo `ranks`; a pin to rank 0 is no
/// pin) and returns what it saw plus the cluster. Every op runs to its safe reply before the next is sent.
pub fn run(ranks: u32, steps: &[S]) -> (Seen, C, CooperativeClients) {
    let mut cl = CooperativeClients::new();
    let mut c = Cluster::with_transport(ranks, LockerConfig::default(), Recording::default());
    let mut dirs = BTreeMap::new();
    let mut label: BTreeMap<Ino, usize> = BTreeMap::new();
    let mut replies = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        let reqid = 100 + k as u64;
        if std::env::var_os("MDS_TRACE").is_some() {
            eprintln!("{ranks} ranks, step {k}: {s:?}");
        }
        match s {
            S::Mk(p, to) => {
                let (r, _) = submit(&mut c, &mut cl, 0, reqid, Op::Mkdir { path: path(p), mode: 0o755 });
                let ino = r.unwrap().unwrap();
                dirs.insert(p.to_string(), ino);
                if *to % ranks != 0 {
                    c.pin_empty_dir(ino, *to % ranks).unwrap();
                    check(&c);
                }
            }
            S::Send(rank, p) => {
                let rank = *rank % ranks;
                let (r, _) = submit(&mut c, &mut cl, rank, reqid, op(p, &dirs));
                let n = label.len();
                replies.push(r.map(|x| x.map(|i| *label.entry(i).or_insert(n))));
            }
        }
    }
    let seen = Seen { replies, names: namespace(&c), strays: strays(&c) };
    (seen, c, cl)
}

/// The rank whose cache holds `dir`'s dirfrag as auth.
pub fn frag_auth(c: &C, dir: Ino) -> u32 {
    (0..c.len() as u32)
        .find(|r| {
            let cache = c.rank(*r).cache();
            cache.resolve_dirfrag(dir, 0).and_then(|f| cache.dirfrag(f)).is_some_and(|f| f.auth() == *r)
        })
        .unwrap_or_else(|| panic!("no auth for {dir}'s dirfrag"))
}

/// The committed data of `ino` on its auth rank.
pub fn auth_nlink(c: &C, ino: Ino) -> u32 {
    for r in 0..c.len() as u32 {
        let cache = c.rank(r).cache();
        if let Some(n) = cache.lookup_ino(ino).and_then(|i| cache.inode(i))
            && n.is_auth()
        {
            assert_eq!(n.projections().count(), 0, "{ino} still projected on rank {r}");
            return n.data().nlink;
        }
    }
    panic!("no auth for inode {ino}");
}

/// Walks the namespace from the root on the auth copies (dentries from their dirfrag's
/// auth, link counts from the inode's auth).
pub fn namespace(c: &C) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), Ino::ROOT)];
    while let Some((prefix, dir)) = todo.pop() {
        let r = frag_auth(c, dir);
        let cache = c.rank(r).cache();
        let f = cache.resolve_dirfrag(dir, 0).unwrap();
        for (name, dn) in cache.dirfrag(f).unwrap().dentries() {
            let d = cache.dentry(*dn).unwrap();
            let (ino, is_dir) = match d.linkage() {
                Linkage::Null => continue,
                Linkage::Primary(i) => (cache.inode(i).unwrap().ino(), cache.inode(i).unwrap().is_dir()),
                Linkage::Remote { ino, .. } => (ino, false),
            };
            let p = format!("{prefix}{name}");
            out.insert(p.clone(), auth_nlink(c, ino));
            if is_dir {
                todo.push((format!("{p}/"), ino));
            }
        }
    }
    out
}

/// Link counts of the inodes in every rank's stray directories (from each inode's auth).
pub fn strays(c: &C) -> Vec<u32> {
    let mut out = Vec::new();
    for r in 0..c.len() as u32 {
        let cache = c.rank(r).cache();
        for s in cache.strays() {
            let Some(f) = cache.inode(*s).and_then(|n| n.dirfrags().get(&0).copied()) else { continue };
            if cache.dirfrag(f).is_none_or(|x| x.auth() != r) {
                continue;
            }
            for dn in cache.dirfrag(f).unwrap().dentries().values() {
                if let Linkage::Primary(i) = cache.dentry(*dn).unwrap().linkage() {
                    out.push(auth_nlink(c, cache.inode(i).unwrap().ino()));
                }
            }
        }
    }
    out.sort_unstable();
    out
}

pub fn no_twophase_left<T: Transport>(c: &Cluster<T>) {
    for l in c.lockers() {
        assert_eq!(l.twophase_in_progress(), (0, 0), "rank {} still has two-phase state", l.cache().rank());
        assert_eq!(l.requests().count(), 0, "rank {} still has requests", l.cache().rank());
    }
}

/// Runs the scenario on one rank and on `ranks` ranks and requires the same result.
pub fn same_as_one_rank(ranks: u32, steps: &[S]) -> (Seen, C, CooperativeClients) {
    let (one, _, _) = run(1, steps);
    let (many, c, cl) = run(ranks, steps);
    assert_eq!(many, one, "{ranks} ranks differ from one rank");
    assert!(many.replies.iter().all(|r| *r != Err(Errno::EXDEV)));
    no_twophase_left(&c);
    (many, c, cl)
}

/// The two-phase messages rank `leader` exchanged for request `reqid`'s step.
pub fn twophase_ops(c: &C, mark: usize) -> Vec<(u32, u32, &'static str)> {
    c.transport().peer_log[mark..]
        .iter()
        .copied()
        .filter(|(_, _, k)| {
            matches!(
                *k,
                "rename_prep"
                    | "link_prep"
                    | "unlink_prep"
                    | "rmdir_prep"
                    | "prep_ack"
                    | "finish"
                    | "committed"
            )
        })
        .collect()
}

pub fn entries(out: &[Output], r: u32, reqid: u64) -> Vec<String> {
    out.iter()
        .filter(|o| o.rank == r)
        .filter_map(|o| match &o.effect {
            Effect::JournalSubmit { entry, .. } if entry.reqid == ReqId(reqid) => Some(kind(entry)),
            _ => None,
        })
        .collect()
}

pub fn kind(e: &JournalEntry) -> String {
    match &e.peer {
        None => "EUpdate".to_string(),
        Some(PeerRecord::Leader { witnesses, .. }) => format!("EUpdate(peers {witnesses:?})"),
        Some(PeerRecord::Peer { phase: PeerPhase::Prepare, .. }) => "EPeerUpdate(prepare)".into(),
        Some(PeerRecord::Peer { phase: PeerPhase::Commit, .. }) => "EPeerUpdate(commit)".into(),
        Some(PeerRecord::Peer { phase: PeerPhase::Rollback, .. }) => "EPeerUpdate(rollback)".into(),
        Some(PeerRecord::Committed) => "ECommitted".into(),
    }
}

pub fn unsafe_replies(out: &[Output], reqid: u64) -> usize {
    out.iter().filter(|o| matches!(&o.effect, Effect::Reply(r) if !r.safe && r.reqid == ReqId(reqid))).count()
}

/// FIFO transport that parks the messages `park` picks while `hold` is set (with `behind`,
/// also every later message on a parked message's connection, keeping per-connection order),
/// and hands them out again first, in order, once `hold` is cleared: a test's way to make one
/// message arrive late. Parked messages count as in flight, so [`drive`] does not settle
/// while any is parked, unless the transport is [`Hold::quiet`].
#[derive(Debug)]
pub struct Hold {
    pub queue: std::collections::VecDeque<(u32, u32, MdsMessage)>,
    pub parked: std::collections::VecDeque<(u32, u32, MdsMessage)>,
    pub hold: std::rc::Rc<std::cell::Cell<bool>>,
    park: fn(u32, u32, &MdsMessage) -> bool,
    behind: bool,
    quiet: bool,
}

impl Hold {
    /// A transport parking what `park` picks; `behind` parks what follows on its connection.
    pub fn new(
        hold: std::rc::Rc<std::cell::Cell<bool>>,
        park: fn(u32, u32, &MdsMessage) -> bool,
        behind: bool,
    ) -> Self {
        Self { queue: Default::default(), parked: Default::default(), hold, park, behind, quiet: false }
    }

    /// While `hold` is set, parked messages are not in flight: [`drive`] settles with them
    /// parked (a test that makes two requests each wait for a message the other needs, then
    /// looks at the stuck state), and the invariants are checked as if they were not sent yet.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }
}

impl Transport for Hold {
    fn send(&mut self, from: u32, to: u32, msg: MdsMessage) {
        let picked = self.hold.get() && (self.park)(from, to, &msg);
        let behind = self.behind && self.parked.iter().any(|(f, t, _)| *f == from && *t == to);
        if picked || behind {
            self.parked.push_back((from, to, msg));
        } else {
            self.queue.push_back((from, to, msg));
        }
    }
    fn next(&mut self) -> Option<(u32, u32, MdsMessage)> {
        if !self.hold.get() {
            while let Some(m) = self.parked.pop_back() {
                self.queue.push_front(m);
            }
        }
        self.queue.pop_front()
    }
    fn in_flight(&self) -> usize {
        self.queue.len() + if self.quiet && self.hold.get() { 0 } else { self.parked.len() }
    }
}

/// Runs a [`Hold`] cluster until nothing moves except parked messages (deliveries,
/// cooperative client answers, journal flushes), whether or not the transport is quiet.
pub fn settle(c: &mut Cluster<Hold>, cl: &mut CooperativeClients) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        out.extend(pump(c, cl));
        let mut progress = false;
        for r in 0..c.len() as u32 {
            if c.unsafe_entries(r) > 0 {
                c.make_safe(r).unwrap();
                check(c);
                progress = true;
            }
        }
        if !progress && c.transport().queue.is_empty() {
            return out;
        }
    }
}

/// [`ok_ino`] run with [`settle`] instead of [`drive`], for the [`Hold`] tests' setup steps.
pub fn ok_ino_settled(
    c: &mut Cluster<Hold>,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> Ino {
    send(c, rank, 1, reqid, op);
    let out = settle(c, cl);
    safe_result(&out, reqid).unwrap().unwrap().unwrap()
}
