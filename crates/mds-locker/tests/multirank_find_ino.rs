//! Requests whose base inode the receiving rank never saw (mds spec §5.1: before
//! `path_traverse` gives up on a base it lacks, Ceph's MDS asks its peers with
//! `find_ino_peers` and discovers the path they report). Clients name paths as (base inode
//! number, names); on several ranks the rank a request reaches may have no copy of the base,
//! and the results must still be those of one rank (§5.2 operations: GETATTR, SETATTR,
//! CREATE, MKDIR, UNLINK, RMDIR, READDIR).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use mds_locker::cache::Linkage;
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::message::FindIno;
use mds_locker::{
    ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig, MdsMessage, ObjRef, Op, Reply,
    ReplyData, ReqId, SetAttr,
};

/// FIFO transport that can hold back the messages of one kind to one rank (to order a find
/// against another request deterministically) and counts what was sent, by kind.
#[derive(Debug, Default)]
struct Net {
    queue: VecDeque<(u32, u32, MdsMessage)>,
    /// (receiver, kind) held back until removed from this set (shared, so a test can change
    /// it through `Cluster::transport`).
    hold: Rc<RefCell<BTreeSet<(u32, &'static str)>>>,
}

impl Net {
    fn held(&self, to: u32, m: &MdsMessage) -> bool {
        self.hold.borrow().contains(&(to, m.kind()))
    }

    fn deliverable(&self) -> usize {
        self.queue.iter().filter(|(_, to, m)| !self.held(*to, m)).count()
    }
}

impl Transport for Net {
    fn send(&mut self, from: u32, to: u32, msg: MdsMessage) {
        self.queue.push_back((from, to, msg));
    }

    fn next(&mut self) -> Option<(u32, u32, MdsMessage)> {
        let i = self.queue.iter().position(|(_, to, m)| !self.held(*to, m))?;
        self.queue.remove(i)
    }

    fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn drop_rank(&mut self, r: u32) -> u64 {
        let before = self.queue.len();
        self.queue.retain(|(from, to, _)| *from != r && *to != r);
        (before - self.queue.len()) as u64
    }
}

type C = Cluster<Net>;

/// Holds back (or releases) messages of `kind` to rank `to`.
fn hold(c: &C, to: u32, kind: &'static str, on: bool) {
    let mut h = c.transport().hold.borrow_mut();
    if on {
        h.insert((to, kind));
    } else {
        h.remove(&(to, kind));
    }
}

fn cluster(ranks: u32) -> C {
    Cluster::with_transport(ranks, LockerConfig::default(), Net::default())
}

fn check(c: &C) {
    // A crashed rank's stand-in is empty until its restart; the invariants are about live ranks.
    if (0..c.len() as u32).any(|r| c.is_down(r)) {
        return;
    }
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
}

/// Delivers everything that is not held back, one message at a time (invariants after each),
/// answers cap and lease revokes as a cooperative client does and makes journals safe when
/// the network is quiet; returns the outputs.
fn drive(c: &mut C, cl: &mut CooperativeClients) -> Vec<Output> {
    let mut out = Vec::new();
    for _ in 0..20_000 {
        if c.step().unwrap() {
            check(c);
            continue;
        }
        let batch = c.take_outputs();
        let answers = cl.answers(&batch);
        let answered = !answers.is_empty();
        for (r, ev) in answers {
            if !c.is_down(r) {
                c.handle(r, ev).unwrap();
                check(c);
            }
        }
        out.extend(batch);
        let pending: Vec<u32> =
            (0..c.len() as u32).filter(|r| !c.is_down(*r) && c.unsafe_entries(*r) > 0).collect();
        if pending.is_empty() && !answered && c.transport().deliverable() == 0 {
            return out;
        }
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("cluster did not settle: delivered {:?}", c.delivered());
}

const CLIENT: u64 = 1;

/// Hands a request to `rank` (opening the session first) without delivering anything.
fn send(c: &mut C, rank: u32, reqid: u64, op: Op) {
    if !c.rank(rank).sessions().any(|s| s.client() == CLIENT) {
        c.handle(rank, Event::SessionOpen { client: CLIENT }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client: CLIENT, op })).unwrap();
    check(c);
}

fn safe_reply(out: &[Output], reqid: u64) -> Option<Reply> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.clone()),
        _ => None,
    })
}

/// Runs one request to its safe reply.
fn submit(c: &mut C, cl: &mut CooperativeClients, rank: u32, reqid: u64, op: Op) -> Reply {
    send(c, rank, reqid, op);
    let out = drive(c, cl);
    safe_reply(&out, reqid).unwrap_or_else(|| {
        for l in c.lockers() {
            for m in l.requests() {
                let ev: Vec<_> = m.events().iter().map(|e| e.what.clone()).collect();
                eprintln!("rank {}: {:?} events {ev:?}", l.cache().rank(), m.reqid());
            }
        }
        panic!("request {reqid} got no safe reply")
    })
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// How an operation names its object.
#[derive(Debug, Clone, Copy)]
enum T {
    /// "dir/name": the parent directory's inode number and the last name (a top-level name
    /// is based at the root).
    Under(&'static str),
    /// The object's own inode number, no names (an unknown name: a number nobody uses).
    Ino(&'static str),
}

/// A number no rank ever allocates.
const NOSUCH: Ino = Ino(0x7777_7777);

/// An operation by names; built into an `Op` when its step runs.
#[derive(Debug, Clone, Copy)]
enum P {
    Create(T),
    Mkdir(T),
    Unlink(T),
    Rmdir(T),
    Getattr(T),
    Setattr(T, u32),
    Readdir(T),
}

/// A step: `Mk` makes a directory from the root on rank 0 and pins it to a rank (modulo the
/// rank count; 0 is no pin); `Send` runs an operation on a rank (modulo the rank count).
#[derive(Debug, Clone, Copy)]
enum S {
    Mk(&'static str, u32),
    Send(u32, P),
}

fn resolve(t: T, inos: &BTreeMap<String, Ino>) -> FilePath {
    let ino = |p: &str| inos.get(p).copied().unwrap_or(NOSUCH);
    match t {
        T::Under(p) => match p.rsplit_once('/') {
            None => FilePath::new(Ino::ROOT, p),
            Some((d, n)) => FilePath::new(ino(d), n),
        },
        T::Ino(p) => FilePath { base: ino(p), components: Vec::new() },
    }
}

fn build(p: P, inos: &BTreeMap<String, Ino>) -> Op {
    match p {
        P::Create(t) => Op::Create { path: resolve(t, inos), mode: 0o644, excl: true, file_mode: 1 },
        P::Mkdir(t) => Op::Mkdir { path: resolve(t, inos), mode: 0o755 },
        P::Unlink(t) => Op::Unlink { path: resolve(t, inos) },
        P::Rmdir(t) => Op::Rmdir { path: resolve(t, inos) },
        P::Getattr(t) => Op::Getattr { path: resolve(t, inos), mask: 0 },
        P::Setattr(t, mode) => {
            Op::Setattr { path: resolve(t, inos), attrs: SetAttr { mode: Some(mode), ..SetAttr::default() } }
        }
        P::Readdir(t) => Op::Readdir { path: resolve(t, inos) },
    }
}

fn target_of(p: P) -> T {
    match p {
        P::Create(t)
        | P::Mkdir(t)
        | P::Unlink(t)
        | P::Rmdir(t)
        | P::Getattr(t)
        | P::Setattr(t, _)
        | P::Readdir(t) => t,
    }
}

/// A reply with inode numbers replaced by the order they were first seen in.
type Seen1 = (Result<Option<usize>, Errno>, Vec<(String, usize)>);

/// What a run shows: every reply (and listing), and the namespace (path → link count and
/// permission bits, from the auth copies).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    replies: Vec<Seen1>,
    names: BTreeMap<String, (u32, u32)>,
}

/// A run: what it showed, the steps whose receiving rank lacked the base inode, and the
/// cluster.
struct Run {
    seen: Seen,
    unknown_base: Vec<usize>,
    c: C,
}

fn run(ranks: u32, steps: &[S]) -> Run {
    let mut cl = CooperativeClients::new();
    let mut c = cluster(ranks);
    let mut inos: BTreeMap<String, Ino> = BTreeMap::new();
    let mut label: BTreeMap<Ino, usize> = BTreeMap::new();
    let mut replies = Vec::new();
    let mut unknown_base = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        let reqid = 100 + k as u64;
        match *s {
            S::Mk(p, to) => {
                let r = submit(&mut c, &mut cl, 0, reqid, Op::Mkdir { path: path(p), mode: 0o755 });
                let ino = r.result.unwrap().unwrap();
                inos.insert(p.to_string(), ino);
                let n = label.len();
                label.entry(ino).or_insert(n);
                if to % ranks != 0 {
                    c.pin_empty_dir(ino, to % ranks).unwrap();
                    check(&c);
                }
            }
            S::Send(rank, p) => {
                let rank = rank % ranks;
                let op = build(p, &inos);
                let base = resolve(target_of(p), &inos).base;
                if c.rank(rank).cache().lookup_ino(base).is_none() {
                    unknown_base.push(k);
                }
                let r = submit(&mut c, &mut cl, rank, reqid, op);
                if let (Ok(Some(ino)), P::Create(T::Under(n)) | P::Mkdir(T::Under(n))) = (r.result, p) {
                    inos.insert(n.to_string(), ino);
                }
                let mut name = |i: Ino| {
                    let n = label.len();
                    *label.entry(i).or_insert(n)
                };
                let result = r.result.map(|x| x.map(&mut name));
                let listing = match r.data {
                    ReplyData::Entries(es) => es.into_iter().map(|e| (e.name, name(e.ino))).collect(),
                    _ => Vec::new(),
                };
                replies.push((result, listing));
            }
        }
    }
    let seen = Seen { replies, names: namespace(&c) };
    Run { seen, unknown_base, c }
}

/// The rank whose cache holds `dir`'s dirfrag as auth.
fn frag_auth(c: &C, dir: Ino) -> u32 {
    (0..c.len() as u32)
        .find(|r| {
            let cache = c.rank(*r).cache();
            cache.resolve_dirfrag(dir, 0).and_then(|f| cache.dirfrag(f)).is_some_and(|f| f.auth() == *r)
        })
        .unwrap_or_else(|| panic!("no auth for {dir}'s dirfrag"))
}

/// Link count and permission bits of `ino` on its auth rank.
fn on_auth(c: &C, ino: Ino) -> (u32, u32) {
    for r in 0..c.len() as u32 {
        let cache = c.rank(r).cache();
        if let Some(n) = cache.lookup_ino(ino).and_then(|i| cache.inode(i))
            && n.is_auth()
        {
            assert_eq!(n.projections().count(), 0, "{ino} still projected on rank {r}");
            return (n.data().nlink, n.data().mode & 0o7777);
        }
    }
    panic!("no auth for inode {ino}");
}

/// The namespace from the root, on the auth copies.
fn namespace(c: &C) -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), Ino::ROOT)];
    while let Some((prefix, dir)) = todo.pop() {
        let r = frag_auth(c, dir);
        let cache = c.rank(r).cache();
        let f = cache.resolve_dirfrag(dir, 0).unwrap();
        for (name, dn) in cache.dirfrag(f).unwrap().dentries() {
            let (ino, is_dir) = match cache.dentry(*dn).unwrap().linkage() {
                Linkage::Null => continue,
                Linkage::Primary(i) => (cache.inode(i).unwrap().ino(), cache.inode(i).unwrap().is_dir()),
                Linkage::Remote { ino, .. } => (ino, false),
            };
            let p = format!("{prefix}{name}");
            out.insert(p.clone(), on_auth(c, ino));
            if is_dir {
                todo.push((format!("{p}/"), ino));
            }
        }
    }
    out
}

fn nothing_left(c: &C) {
    for l in c.lockers() {
        assert_eq!(l.requests().count(), 0, "rank {} still has requests", l.cache().rank());
    }
    assert_eq!(c.transport().in_flight(), 0);
    check(c);
}

/// Runs the steps on one rank and on `ranks` ranks and requires the same replies and
/// namespace; returns the multi-rank run. On one rank nobody is asked anything.
fn same_as_one_rank(ranks: u32, steps: &[S]) -> Run {
    let one = run(1, steps);
    assert_eq!(one.c.delivered().get("find_ino"), None, "one rank asks nobody");
    let many = run(ranks, steps);
    assert_eq!(many.seen, one.seen, "{ranks} ranks differ from one rank");
    nothing_left(&many.c);
    many
}

fn finds(c: &C) -> (u64, u64) {
    let d = c.delivered();
    (d.get("find_ino").copied().unwrap_or(0), d.get("find_ino_reply").copied().unwrap_or(0))
}

// ---- same results as one rank (§5.1 traversal from an unknown base, §5.2 operations) -----

fn getattr_steps() -> Vec<S> {
    use P::*;
    use T::*;
    vec![
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, Create(Under("a/f"))),
        S::Send(2, Create(Under("b/g"))),
        // Rank 2 never saw `a` (3 ranks).
        S::Send(2, Getattr(Under("a/f"))),
        // Rank 0 never saw `f`, created on rank 1.
        S::Send(0, Getattr(Ino("a/f"))),
        // Rank 1 never saw `g` (created on the rank holding b).
        S::Send(1, Getattr(Ino("b/g"))),
        S::Send(1, Getattr(Under("b/g"))),
        S::Send(2, Getattr(Under("a/missing"))),
        S::Send(0, Getattr(Ino("a"))),
    ]
}

#[test]
fn s5_1_getattr_from_unknown_base_same_as_one_rank_3_ranks() {
    let r = same_as_one_rank(3, &getattr_steps());
    assert_eq!(r.unknown_base, vec![4, 5, 6], "steps whose rank lacked the base");
    // Replies of the `Send` steps only (the two `Mk`s are not counted).
    let ok: Vec<bool> = r.seen.replies.iter().map(|(x, _)| x.is_ok()).collect();
    assert_eq!(ok, [true, true, true, true, true, true, false, true]);
    assert_eq!(r.seen.replies[6].0, Err(Errno::ENOENT));
}

#[test]
fn s5_1_getattr_from_unknown_base_same_as_one_rank_2_ranks() {
    let r = same_as_one_rank(2, &getattr_steps());
    // b stays on rank 0, and step 4 runs there and discovers f: only rank 1 lacks g.
    assert_eq!(r.unknown_base, vec![6]);
}

fn setattr_steps() -> Vec<S> {
    use P::*;
    use T::*;
    vec![
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, Create(Under("a/f"))),
        S::Send(2, Create(Under("b/g"))),
        // want_auth: found, then forwarded to the file's auth.
        S::Send(2, Setattr(Ino("a/f"), 0o600)),
        S::Send(0, Setattr(Under("a/f"), 0o640)),
        S::Send(1, Setattr(Under("b/g"), 0o604)),
        S::Send(0, Getattr(Ino("b/g"))),
        S::Send(2, Setattr(Ino("nosuch"), 0o600)),
    ]
}

#[test]
fn s5_2_setattr_from_unknown_base_same_as_one_rank() {
    for ranks in [2, 3] {
        let r = same_as_one_rank(ranks, &setattr_steps());
        assert!(!r.unknown_base.is_empty());
        assert_eq!(r.seen.names["a/f"], (1, 0o640));
        assert_eq!(r.seen.names["b/g"], (1, 0o604));
        assert_eq!(r.seen.replies.last().unwrap().0, Err(Errno::ENOENT));
    }
}

fn create_unlink_steps() -> Vec<S> {
    use P::*;
    use T::*;
    vec![
        S::Mk("a", 1),
        S::Mk("b", 2),
        // xlock_dentry at the last name: found, discovered, then forwarded to the dirfrag's auth.
        S::Send(2, Create(Under("a/g"))),
        S::Send(1, Create(Under("b/h"))),
        S::Send(1, Mkdir(Under("b/d"))),
        // Two names below the root to discover (b, then d).
        S::Send(0, Create(Under("b/d/x"))),
        S::Send(1, Create(Under("b/d/x"))),
        S::Send(1, Rmdir(Under("b/d"))),
        S::Send(0, Unlink(Under("a/g"))),
        S::Send(2, Unlink(Under("b/d/x"))),
        S::Send(0, Rmdir(Under("b/d"))),
        S::Send(2, Unlink(Under("b/h"))),
        S::Send(0, Unlink(Under("a/g"))),
    ]
}

#[test]
fn s5_2_create_mkdir_unlink_rmdir_from_unknown_base_same_as_one_rank() {
    for ranks in [2, 3] {
        let r = same_as_one_rank(ranks, &create_unlink_steps());
        assert!(!r.unknown_base.is_empty(), "{ranks} ranks");
        let results: Vec<_> = r.seen.replies.iter().map(|(x, _)| x.map(|_| ())).collect();
        assert_eq!(
            results,
            vec![
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Err(Errno::EEXIST),
                Err(Errno::ENOTEMPTY),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Err(Errno::ENOENT)
            ]
        );
        assert!(r.seen.names.keys().eq(["a", "b"]), "{:?}", r.seen.names);
    }
}

fn readdir_steps() -> Vec<S> {
    use P::*;
    use T::*;
    vec![
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, Create(Under("a/f"))),
        S::Send(1, Mkdir(Under("a/e"))),
        S::Send(2, Create(Under("b/g"))),
        S::Send(2, Readdir(Ino("a"))),
        S::Send(0, Readdir(Ino("a/e"))),
        S::Send(1, Readdir(Ino("b"))),
        S::Send(2, Readdir(Ino("nosuch"))),
    ]
}

#[test]
fn s5_2_readdir_of_unknown_directory_same_as_one_rank() {
    for ranks in [2, 3] {
        let r = same_as_one_rank(ranks, &readdir_steps());
        assert!(!r.unknown_base.is_empty(), "{ranks} ranks");
        let names: Vec<Vec<&str>> =
            r.seen.replies[3..6].iter().map(|(_, l)| l.iter().map(|(n, _)| n.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["e", "f"], vec![], vec!["g"]]);
        assert_eq!(r.seen.replies[6].0, Err(Errno::ENOENT));
    }
}

#[test]
fn s5_1_nested_base_discovered_name_by_name() {
    use P::*;
    use T::*;
    let steps = [
        S::Mk("a", 1),
        S::Mk("a/c", 2),
        S::Send(2, Create(Under("a/c/f"))),
        // Rank 0 has a but not c: the walk discovers c in a's dirfrag on rank 1, then the
        // request discovers f in c's dirfrag on rank 2.
        S::Send(0, Getattr(Under("a/c/f"))),
        S::Send(1, Getattr(Ino("a/c/f"))),
    ];
    for ranks in [2, 3] {
        let r = same_as_one_rank(ranks, &steps);
        assert!(r.unknown_base.contains(&3) || ranks == 2, "{ranks} ranks: {:?}", r.unknown_base);
        assert!(r.unknown_base.contains(&4) || ranks == 2, "{ranks} ranks: {:?}", r.unknown_base);
        assert!(r.seen.replies.iter().all(|(x, _)| x.is_ok()));
    }
}

// ---- nobody has it; what a search costs ---------------------------------------------------

#[test]
fn s5_1_ino_nobody_has_is_enoent_like_one_rank_after_one_question_per_rank() {
    for ranks in [2u32, 3, 4] {
        let mut c = cluster(ranks);
        let mut cl = CooperativeClients::new();
        for (k, op) in [
            Op::Getattr { path: FilePath { base: NOSUCH, components: Vec::new() }, mask: 0 },
            Op::Create { path: FilePath::new(NOSUCH, "x"), mode: 0o644, excl: true, file_mode: 1 },
            Op::Readdir { path: FilePath { base: NOSUCH, components: Vec::new() } },
        ]
        .into_iter()
        .enumerate()
        {
            let before = finds(&c);
            let r = submit(&mut c, &mut cl, ranks - 1, 1 + k as u64, op);
            assert_eq!(r.result, Err(Errno::ENOENT));
            let after = finds(&c);
            let n = u64::from(ranks - 1);
            assert_eq!(
                (after.0 - before.0, after.1 - before.1),
                (n, n),
                "{ranks} ranks: one question per rank"
            );
        }
        nothing_left(&c);
    }
}

#[test]
fn s5_1_one_rank_answers_enoent_without_asking() {
    let mut c = cluster(1);
    let mut cl = CooperativeClients::new();
    let r = submit(&mut c, &mut cl, 0, 1, Op::Getattr { path: FilePath::new(NOSUCH, "x"), mask: 0 });
    assert_eq!(r.result, Err(Errno::ENOENT));
    assert_eq!(c.delivered_total(), 0);
}

/// Three ranks, `a` pinned to rank 1 with file `f` created there: rank 2 has neither.
fn a_f_on_rank1(ranks: u32) -> (C, CooperativeClients, Ino, Ino) {
    let mut c = cluster(ranks);
    let mut cl = CooperativeClients::new();
    let a =
        submit(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("a"), mode: 0o755 }).result.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let f = submit(
        &mut c,
        &mut cl,
        1,
        2,
        Op::Create { path: FilePath::new(a, "f"), mode: 0o644, excl: true, file_mode: 1 },
    )
    .result
    .unwrap()
    .unwrap();
    assert!(c.rank(ranks - 1).cache().lookup_ino(f).is_none());
    (c, cl, a, f)
}

fn by_ino(ino: Ino) -> FilePath {
    FilePath { base: ino, components: Vec::new() }
}

#[test]
fn s5_1_a_found_ino_costs_one_question_per_other_rank_and_requests_share_it() {
    let (mut c, mut cl, _, f) = a_f_on_rank1(3);
    let before = finds(&c);
    // Two requests naming the same unknown base before anything is delivered: one search.
    send(&mut c, 2, 10, Op::Getattr { path: by_ino(f), mask: 0 });
    send(
        &mut c,
        2,
        11,
        Op::Setattr { path: by_ino(f), attrs: SetAttr { mode: Some(0o600), ..SetAttr::default() } },
    );
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(f)));
    assert_eq!(safe_reply(&out, 11).unwrap().result, Ok(Some(f)));
    let after = finds(&c);
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 2));
    assert_eq!(on_auth(&c, f).1, 0o600);
    // Now rank 2 has it: no more questions.
    let r = submit(&mut c, &mut cl, 2, 12, Op::Getattr { path: by_ino(f), mask: 0 });
    assert_eq!(r.result, Ok(Some(f)));
    assert_eq!(finds(&c), after);
    nothing_left(&c);
}

#[test]
fn s5_1_find_ino_answer_is_the_path_from_the_root() {
    let (mut c, _, a, f) = a_f_on_rank1(3);
    let ask = |c: &mut C, r: u32, ino: Ino| -> Vec<String> {
        let fx = c
            .rank_mut(r)
            .handle(Event::Message { from: 2, msg: MdsMessage::FindIno(FindIno { tid: 7, ino }) })
            .unwrap();
        match fx.as_slice() {
            [Effect::Send { to: 2, msg: MdsMessage::FindInoReply(rep) }] => {
                assert_eq!((rep.tid, rep.ino), (7, ino));
                rep.path.clone()
            }
            other => panic!("unexpected effects {other:?}"),
        }
    };
    assert_eq!(ask(&mut c, 1, f), vec!["a", "f"]);
    assert_eq!(ask(&mut c, 0, a), vec!["a"]);
    // Rank 0 never saw f; nobody has NOSUCH.
    assert!(ask(&mut c, 0, f).is_empty());
    assert!(ask(&mut c, 1, NOSUCH).is_empty());
}

// ---- races: the base removed or renamed while it is looked for ----------------------------

/// `a` pinned to rank 1 with an empty directory `a/d` made there.
fn a_d_on_rank1() -> (C, CooperativeClients, Ino, Ino) {
    let mut c = cluster(3);
    let mut cl = CooperativeClients::new();
    let a =
        submit(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("a"), mode: 0o755 }).result.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let d = submit(&mut c, &mut cl, 1, 2, Op::Mkdir { path: FilePath::new(a, "d"), mode: 0o755 })
        .result
        .unwrap()
        .unwrap();
    (c, cl, a, d)
}

#[test]
fn s5_1_base_removed_between_answer_and_walk_is_found_in_the_stray() {
    let (mut c, mut cl, a, d) = a_d_on_rank1();
    // Rank 2 asks; the answers (rank 1 knows a/d) wait while the rmdir commits.
    hold(&c, 2, "find_ino_reply", true);
    send(&mut c, 2, 10, Op::Getattr { path: by_ino(d), mask: 0 });
    let out = drive(&mut c, &mut cl);
    assert!(safe_reply(&out, 10).is_none());
    let r = submit(&mut c, &mut cl, 1, 11, Op::Rmdir { path: FilePath::new(a, "d") });
    assert_eq!(r.result, Ok(None));
    hold(&c, 2, "find_ino_reply", false);
    let before = finds(&c);
    let out = drive(&mut c, &mut cl);
    // The walk meets a null `a/d` and everyone is asked again. Rank 1 now answers with a
    // path from its `~mds1`: the removed directory waits in its stray directory, where one
    // rank would find it too (find_ino module notes).
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(d)));
    let after = finds(&c);
    assert_eq!(after.0 - before.0, 2, "a second round after the stale path");
    nothing_left(&c);
}

#[test]
fn s5_1_find_racing_rmdir_of_the_base_settles_either_way() {
    let (mut c, mut cl, a, d) = a_d_on_rank1();
    send(&mut c, 2, 10, Op::Create { path: FilePath::new(d, "x"), mode: 0o644, excl: true, file_mode: 1 });
    send(&mut c, 1, 11, Op::Rmdir { path: FilePath::new(a, "d") });
    let out = drive(&mut c, &mut cl);
    let create = safe_reply(&out, 10).unwrap().result;
    let rmdir = safe_reply(&out, 11).unwrap().result;
    // Either the create got in first (then the directory is not empty) or the rmdir did
    // (with the FIFO transport the rmdir wins: it needs no other rank).
    match create {
        Ok(_) => assert_eq!(rmdir, Err(Errno::ENOTEMPTY)),
        Err(e) => {
            assert_eq!(e, Errno::ENOENT);
            assert_eq!(rmdir, Ok(None));
        }
    }
    nothing_left(&c);
}

#[test]
fn s5_1_replicas_a_find_brought_in_are_known_to_their_auth_so_rmdir_gathers_them() {
    let (mut c, mut cl, a, d) = a_d_on_rank1();
    let r = submit(&mut c, &mut cl, 2, 10, Op::Getattr { path: by_ino(d), mask: 0 });
    assert_eq!(r.result, Ok(Some(d)));
    let c1 = c.rank(1).cache();
    let dn = c1.lookup_dentry(c1.lookup_ino(a).unwrap(), "d").unwrap();
    assert!(c1.replicas_of(ObjRef::Dentry(dn)).contains(&2), "rank 1 knows rank 2 holds a/d");
    assert!(c1.replicas_of(ObjRef::Inode(c1.lookup_ino(d).unwrap())).contains(&2));
    let r = submit(&mut c, &mut cl, 1, 11, Op::Rmdir { path: FilePath::new(a, "d") });
    assert_eq!(r.result, Ok(None));
    // Rank 2's replica of the dentry followed the rmdir.
    let c2 = c.rank(2).cache();
    let dn2 = c2.lookup_dentry(c2.lookup_ino(a).unwrap(), "d").unwrap();
    assert_eq!(c2.dentry(dn2).unwrap().linkage(), Linkage::Null);
    let r = submit(&mut c, &mut cl, 2, 12, Op::Getattr { path: FilePath::new(a, "d"), mask: 0 });
    assert_eq!(r.result, Err(Errno::ENOENT));
    nothing_left(&c);
}

#[test]
fn s5_1_base_renamed_between_answer_and_walk_is_found_again() {
    let mut c = cluster(3);
    let mut cl = CooperativeClients::new();
    let a =
        submit(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("a"), mode: 0o755 }).result.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let d = submit(&mut c, &mut cl, 1, 2, Op::Mkdir { path: FilePath::new(a, "d"), mode: 0o755 })
        .result
        .unwrap()
        .unwrap();
    let f = submit(
        &mut c,
        &mut cl,
        1,
        3,
        Op::Create { path: FilePath::new(d, "f"), mode: 0o644, excl: true, file_mode: 1 },
    )
    .result
    .unwrap()
    .unwrap();
    hold(&c, 2, "find_ino_reply", true);
    send(&mut c, 2, 10, Op::Getattr { path: FilePath::new(d, "f"), mask: 0 });
    drive(&mut c, &mut cl);
    // Renamed within rank 1's subtree after rank 1 answered "a/d".
    let r = submit(
        &mut c,
        &mut cl,
        1,
        11,
        Op::Rename { dest: FilePath::new(a, "e"), src: FilePath::new(a, "d") },
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let before = finds(&c);
    hold(&c, 2, "find_ino_reply", false);
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(f)));
    let after = finds(&c);
    assert_eq!(after.0 - before.0, 2, "the stale path \"a/d\" led to a second round");
    nothing_left(&c);
}

// ---- rank failures during a search ------------------------------------------------------

#[test]
fn s5_1_only_holder_crashes_during_find_request_waits_for_its_restart() {
    let (mut c, mut cl, _, f) = a_f_on_rank1(3);
    send(&mut c, 2, 10, Op::Getattr { path: by_ino(f), mask: 0 });
    // Rank 1 (the only rank with f) fails before it answers.
    c.crash(1).unwrap();
    let out = drive(&mut c, &mut cl);
    assert!(safe_reply(&out, 10).is_none(), "a down rank is not \"nobody has it\"");
    assert!(c.rank(2).waits_on_remote(ReqId(10)));
    c.restart(1).unwrap();
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(f)));
    nothing_left(&c);
}

#[test]
fn s5_1_other_peer_crashing_does_not_hold_up_a_find_that_succeeds() {
    let (mut c, mut cl, a, _) = a_f_on_rank1(3);
    // Rank 0 has `a` (its inode's auth); rank 1 fails before answering.
    send(&mut c, 2, 10, Op::Getattr { path: by_ino(a), mask: 0 });
    c.crash(1).unwrap();
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(a)));
    c.restart(1).unwrap();
    drive(&mut c, &mut cl);
    nothing_left(&c);
}

#[test]
fn s5_1_nobody_but_a_crashed_rank_then_enoent_after_it_answers() {
    let (mut c, mut cl, _, _) = a_f_on_rank1(3);
    send(&mut c, 2, 10, Op::Getattr { path: by_ino(NOSUCH), mask: 0 });
    c.crash(0).unwrap();
    let out = drive(&mut c, &mut cl);
    assert!(safe_reply(&out, 10).is_none());
    c.restart(0).unwrap();
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Err(Errno::ENOENT));
    nothing_left(&c);
}

#[test]
fn s5_1_requester_crashing_mid_find_answers_the_resent_request() {
    let (mut c, mut cl, _, f) = a_f_on_rank1(3);
    send(
        &mut c,
        2,
        10,
        Op::Setattr { path: by_ino(f), attrs: SetAttr { mode: Some(0o600), ..SetAttr::default() } },
    );
    // Rank 2 fails with its questions in flight; the client re-sends after the restart.
    c.crash(2).unwrap();
    drive(&mut c, &mut cl);
    let report = c.restart(2).unwrap();
    assert_eq!(report.resent, 1);
    let out = drive(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).unwrap().result, Ok(Some(f)));
    assert_eq!(on_auth(&c, f).1, 0o600);
    nothing_left(&c);
}
