//! Inode migration on a cross-rank rename (issue 6): the srcdn auth exports the renamed
//! inode to the leader (destdn auth) within the rename's two-phase update (§5.2 RENAME,
//! §4.17 RENAMEPREP / PREPACK / FINISH), so an inode stays auth where its primary dentry's
//! dirfrag is.
//!
//! Scenarios compare every reply and the final namespace with one rank (as
//! multirank_unlink.rs does). Ranks that name a directory by inode number look a path in it
//! up first: there is no discover by inode number yet.

use std::collections::BTreeMap;

use mds_locker::cache::Linkage;
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::twophase::{PeerPhase, PeerRecord};
use mds_locker::{
    ClientRequest, Effect, Errno, Event, FilePath, Ino, JournalEntry, LockerConfig, MdsMessage, Op, ReqId,
    SetAttr,
};

/// FIFO transport that remembers the two-phase peer messages it carried: (from, to, op).
#[derive(Debug, Default)]
struct Recording {
    queue: std::collections::VecDeque<(u32, u32, MdsMessage)>,
    peer_log: Vec<(u32, u32, &'static str)>,
    /// Every message: (from, to, kind).
    msg_log: Vec<(u32, u32, &'static str)>,
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

type C = Cluster<Recording>;

fn check(c: &C) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
}

/// Delivers everything one step at a time (invariants after each), answers cap and lease
/// revokes as a cooperative client does, makes journals safe when the network is quiet;
/// returns the outputs.
fn drive(c: &mut C, clients: &mut CooperativeClients) -> Vec<Output> {
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

/// One client operation, the rank its client sends it to, and the reply (the safe one).
fn submit(
    c: &mut C,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> (Result<Option<Ino>, Errno>, Vec<Output>) {
    let client = 1;
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    check(c);
    let out = drive(c, cl);
    let r = out
        .iter()
        .find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        })
        .unwrap_or_else(|| {
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
            panic!("request {reqid} got no safe reply")
        });
    (r, out)
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// A step of a scenario: paths are from the root; `Mk` makes a directory (pinned to a rank on
/// the multi-rank cluster), `Send` runs an op on the given rank (rank 0 on one rank). Two-path
/// ops name their directories by inode number, so ops are built when the step runs.
#[derive(Debug, Clone)]
enum S {
    Mk(&'static str, u32),
    Send(u32, P),
}

/// An operation by path names.
#[derive(Debug, Clone)]
enum P {
    Create(&'static str),
    Link(&'static str, &'static str),
    Rename(&'static str, &'static str),
    Unlink(&'static str),
    Getattr(&'static str),
    Setattr(&'static str, SetAttr),
}

fn create(p: &'static str) -> P {
    P::Create(p)
}

fn link(new: &'static str, target: &'static str) -> P {
    P::Link(new, target)
}

fn rename(dest: &'static str, src: &'static str) -> P {
    P::Rename(dest, src)
}

/// The op on a cluster whose directories are `dirs` (path → inode number).
fn op(p: &P, dirs: &BTreeMap<String, Ino>) -> Op {
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
struct Seen {
    replies: Vec<Result<Option<usize>, Errno>>,
    names: BTreeMap<String, u32>,
    strays: Vec<u32>,
}

/// Runs `steps` on `ranks` ranks (rank numbers taken modulo `ranks`; a pin to rank 0 is no
/// pin) and returns what it saw plus the cluster. Every op runs to its safe reply before the next is sent.
fn run(ranks: u32, steps: &[S]) -> (Seen, C, CooperativeClients) {
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
fn frag_auth(c: &C, dir: Ino) -> u32 {
    (0..c.len() as u32)
        .find(|r| {
            let cache = c.rank(*r).cache();
            cache.resolve_dirfrag(dir, 0).and_then(|f| cache.dirfrag(f)).is_some_and(|f| f.auth() == *r)
        })
        .unwrap_or_else(|| panic!("no auth for {dir}'s dirfrag"))
}

/// The committed data of `ino` on its auth rank.
fn auth_nlink(c: &C, ino: Ino) -> u32 {
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
fn namespace(c: &C) -> BTreeMap<String, u32> {
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
fn strays(c: &C) -> Vec<u32> {
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

fn no_twophase_left(c: &C) {
    for l in c.lockers() {
        assert_eq!(l.twophase_in_progress(), (0, 0), "rank {} still has two-phase state", l.cache().rank());
        assert_eq!(l.requests().count(), 0, "rank {} still has requests", l.cache().rank());
    }
}

/// Runs the scenario on one rank and on `ranks` ranks and requires the same result.
fn same_as_one_rank(ranks: u32, steps: &[S]) -> (Seen, C, CooperativeClients) {
    let (one, _, _) = run(1, steps);
    let (many, c, cl) = run(ranks, steps);
    assert_eq!(many, one, "{ranks} ranks differ from one rank");
    assert!(many.replies.iter().all(|r| *r != Err(Errno::EXDEV)));
    no_twophase_left(&c);
    (many, c, cl)
}

/// The two-phase messages rank `leader` exchanged for request `reqid`'s step.
fn twophase_ops(c: &C, mark: usize) -> Vec<(u32, u32, &'static str)> {
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

fn entries(out: &[Output], r: u32, reqid: u64) -> Vec<String> {
    out.iter()
        .filter(|o| o.rank == r)
        .filter_map(|o| match &o.effect {
            Effect::JournalSubmit { entry, .. } if entry.reqid == ReqId(reqid) => Some(kind(entry)),
            _ => None,
        })
        .collect()
}

fn kind(e: &JournalEntry) -> String {
    match &e.peer {
        None => "EUpdate".to_string(),
        Some(PeerRecord::Leader { witnesses, .. }) => format!("EUpdate(peers {witnesses:?})"),
        Some(PeerRecord::Peer { phase: PeerPhase::Prepare, .. }) => "EPeerUpdate(prepare)".into(),
        Some(PeerRecord::Peer { phase: PeerPhase::Commit, .. }) => "EPeerUpdate(commit)".into(),
        Some(PeerRecord::Peer { phase: PeerPhase::Rollback, .. }) => "EPeerUpdate(rollback)".into(),
        Some(PeerRecord::Committed) => "ECommitted".into(),
    }
}

fn unsafe_replies(out: &[Output], reqid: u64) -> usize {
    out.iter().filter(|o| matches!(&o.effect, Effect::Reply(r) if !r.safe && r.reqid == ReqId(reqid))).count()
}

/// The rank that is auth for inode `ino` (exactly one).
fn inode_auth(c: &C, ino: Ino) -> u32 {
    let auths: Vec<u32> = (0..c.len() as u32)
        .filter(|r| {
            let cache = c.rank(*r).cache();
            cache.lookup_ino(ino).and_then(|i| cache.inode(i)).is_some_and(|n| n.is_auth())
        })
        .collect();
    assert_eq!(auths.len(), 1, "inode {ino} has auths {auths:?}");
    auths[0]
}

/// The inode `p` names (walking the auth copies).
fn ino_at(c: &C, p: &str) -> Ino {
    let mut dir = Ino::ROOT;
    let parts: Vec<&str> = p.split('/').collect();
    for (k, name) in parts.iter().enumerate() {
        let r = frag_auth(c, dir);
        let cache = c.rank(r).cache();
        let d = cache.lookup_ino(dir).unwrap();
        let dn = cache.lookup_dentry(d, name).unwrap_or_else(|| panic!("no {p}"));
        let ino = match cache.dentry(dn).unwrap().linkage() {
            Linkage::Primary(i) => cache.inode(i).unwrap().ino(),
            Linkage::Remote { ino, .. } => ino,
            Linkage::Null => panic!("{p} is null"),
        };
        if k + 1 == parts.len() {
            return ino;
        }
        dir = ino;
    }
    unreachable!()
}

/// Every inode auth anywhere is auth where its primary dentry's dirfrag is.
fn auth_follows_dentry(c: &C) {
    for r in 0..c.len() as u32 {
        let cache = c.rank(r).cache();
        for i in cache.inode_ids() {
            let n = cache.inode(i).unwrap();
            if n.is_auth() && !n.is_dir() {
                assert_eq!(
                    cache.derived_inode_auth(i),
                    Some(r),
                    "rank {r}: inode {} auth off its dentry",
                    n.ino()
                );
            }
        }
    }
}

// ---- a renamed file moves to the leader -------------------------------------------------

#[test]
fn s5_2_rename_into_the_leaders_dir_migrates_the_inode_and_a_third_rank_finds_it() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        // Rank 2 names `a` by inode number below (no discover by inode number yet).
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, rename("b/g", "a/f")),
        S::Send(0, P::Getattr("b/g")),
    ];
    let (_, c, _) = same_as_one_rank(3, &steps);
    assert_eq!(inode_auth(&c, ino_at(&c, "b/g")), 2);
    auth_follows_dentry(&c);
}

#[test]
fn s5_2_rename_sent_to_a_third_rank_migrates_the_inode_to_the_destination_rank() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(2, P::Getattr("a/f")),
        S::Send(0, rename("b/g", "a/f")),
        S::Send(1, P::Getattr("b/g")),
        S::Send(1, P::Setattr("b/g", SetAttr { mode: Some(0o600), ..SetAttr::default() })),
        S::Send(0, P::Unlink("b/g")),
    ];
    let (_, c, _) = same_as_one_rank(3, &steps);
    auth_follows_dentry(&c);
}

#[test]
fn s4_17_the_srcdn_auth_prepares_last_and_exports_in_its_prepack() {
    // Rename over a remote link to an inode of rank 1 from rank 0: rank 2 (the srcdn and
    // srci auth) must come after rank 1 (the replaced inode's auth).
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/t")),
        S::Send(0, link("l", "a/t")),
        S::Send(2, create("b/f")),
        S::Send(0, P::Getattr("b/f")),
    ];
    let (_, mut c, mut cl) = same_as_one_rank(3, &steps);
    let f = ino_at(&c, "b/f");
    assert_eq!(inode_auth(&c, f), 2);
    let mark = c.transport().peer_log.len();
    let b = ino_at(&c, "b");
    let (r, out) = submit(&mut c, &mut cl, 0, 50, Op::Rename { dest: path("l"), src: FilePath::new(b, "f") });
    assert_eq!(r, Ok(Some(f)));
    assert_eq!(unsafe_replies(&out, 50), 0, "§4.18: no early reply with journaled peers");
    assert_eq!(entries(&out, 2, 50), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    assert_eq!(entries(&out, 0, 50).first().map(String::as_str), Some("EUpdate(peers [1, 2])"));
    let ops = twophase_ops(&c, mark);
    let prep_to = |w: u32| ops.iter().position(|o| *o == (0, w, "rename_prep")).unwrap();
    let ack_from = |w: u32| ops.iter().position(|o| *o == (w, 0, "prep_ack")).unwrap();
    assert!(ack_from(1) < prep_to(2), "{ops:?}");
    assert!(prep_to(2) < ack_from(2), "{ops:?}");
    assert_eq!(inode_auth(&c, f), 0);
    auth_follows_dentry(&c);
    no_twophase_left(&c);
    // The inode works at its new auth.
    let (r, _) = submit(&mut c, &mut cl, 2, 51, Op::Getattr { path: path("l"), mask: 0 });
    assert_eq!(r, Ok(Some(f)));
}

#[test]
fn s4_14_caps_on_the_renamed_inode_are_recalled_and_dropped_by_the_old_auth() {
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let f = ino_at(&c, "a/f");
    let a = ino_at(&c, "a");
    {
        let cache = c.rank(1).cache();
        let n = cache.inode(cache.lookup_ino(f).unwrap()).unwrap();
        assert!(n.caps().values().any(|cap| cap.issued() != 0), "the creating client holds caps");
    }
    let (r, out) = submit(&mut c, &mut cl, 0, 60, Op::Rename { dest: path("g"), src: FilePath::new(a, "f") });
    assert_eq!(r, Ok(Some(f)));
    let revoked_to_nothing =
        out.iter().any(|o| o.rank == 1 && matches!(&o.effect, Effect::Cap(m) if m.ino == f && m.caps == 0));
    assert!(revoked_to_nothing, "the old auth recalls the caps before it prepares");
    let cache = c.rank(1).cache();
    let n = cache.inode(cache.lookup_ino(f).unwrap()).unwrap();
    assert!(!n.is_auth());
    assert!(n.caps().is_empty());
    assert!(c.rank(1).sessions().all(|s| !s.caps().contains(&cache.lookup_ino(f).unwrap())));
    assert_eq!(inode_auth(&c, f), 0);
    auth_follows_dentry(&c);
}

#[test]
fn s4_12_a_third_ranks_replica_learns_the_new_auth() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(0, P::Getattr("a/f")),
        S::Send(2, P::Getattr("a/f")),
    ];
    let (_, mut c, mut cl) = same_as_one_rank(3, &steps);
    let f = ino_at(&c, "a/f");
    let (a, b) = (ino_at(&c, "a"), ino_at(&c, "b"));
    let mark = c.transport().msg_log.len();
    let (r, _) = submit(
        &mut c,
        &mut cl,
        2,
        70,
        Op::Rename { dest: FilePath::new(b, "g"), src: FilePath::new(a, "f") },
    );
    assert_eq!(r, Ok(Some(f)));
    let log = &c.transport().msg_log[mark..];
    let told: Vec<_> = log.iter().filter(|m| m.2 == "auth_changed").collect();
    assert_eq!(told, vec![&(2, 0, "auth_changed"), &(2, 1, "auth_changed")]);
    // The new auth's lock messages to rank 0 after the commit come after it.
    let finish = log.iter().position(|m| *m == (2, 1, "finish")).unwrap();
    let told = log.iter().position(|m| *m == (2, 0, "auth_changed")).unwrap();
    assert!(finish < told, "{log:?}");
    assert!(
        log[finish..told].iter().all(|m| !(m.0 == 2 && m.1 == 0 && ["sync", "mix", "lock"].contains(&m.2)))
    );
    let cache = c.rank(0).cache();
    assert_eq!(cache.inode(cache.lookup_ino(f).unwrap()).unwrap().auth(), 2);
    // Rank 0 reads and changes it through the new auth.
    let (r, _) = submit(&mut c, &mut cl, 0, 71, Op::Getattr { path: path("b/g"), mask: 0 });
    assert_eq!(r, Ok(Some(f)));
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    let (r, _) = submit(&mut c, &mut cl, 0, 72, Op::Setattr { path: path("b/g"), attrs });
    assert!(r.is_ok());
    let (r, _) = submit(&mut c, &mut cl, 1, 73, Op::Setattr { path: path("b/g"), attrs });
    assert!(r.is_ok());
    auth_follows_dentry(&c);
    no_twophase_left(&c);
}

#[test]
fn s5_2_a_file_renamed_across_ranks_is_used_at_its_new_place_without_lookups_first() {
    // multirank_unlink.rs's scenario of the same name without "Rank 2 replicates g and m
    // from their auth before they move".
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(1, create("a/g")),
        S::Send(2, create("b/h")),
        S::Send(0, rename("f", "a/f")),
        S::Send(0, rename("g", "a/g")),
        S::Send(0, P::Setattr("f", attrs)),
        S::Send(2, P::Setattr("g", attrs)),
        S::Send(0, rename("f2", "f")),
        S::Send(0, rename("g", "f2")),
        S::Send(0, rename("g", "b/h")),
        S::Send(0, create("k")),
        S::Send(1, create("a/k")),
        S::Send(0, rename("k2", "a/k")),
        S::Send(0, rename("k2", "k")),
        S::Send(1, create("a/m")),
        S::Send(0, rename("m", "a/m")),
        S::Send(0, link("l", "m")),
        S::Send(2, link("b/l", "m")),
        S::Send(0, P::Unlink("m")),
        S::Send(0, P::Getattr("l")),
        S::Send(2, P::Unlink("b/l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, c, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.strays, vec![0, 0, 0, 0], "{ranks} ranks: {seen:?}");
        auth_follows_dentry(&c);
    }
}
