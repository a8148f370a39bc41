//! Unlink and rename-over of links whose inode is auth on another rank (issue 6: every
//! single-rank operation gives the same result on two and three ranks).
//!
//! Spec: §5.2 UNLINK (x in.linklock, in.snaplock; a primary link moves the inode to a stray
//! dentry) and RENAME ("remote inode auths get RENAMEPREP"); §4.17 LINKPREP / UNLINKPREP,
//! RENAMEPREP, PREPACK, FINISH, COMMITTED; §4.18 no early reply with journaled peers; §6.1
//! EUpdate (had_peers), EPeerUpdate, ECommitted.
//!
//! Each scenario runs the same client operations on one rank and on a multi-rank cluster
//! with pinned subtrees, and compares every reply (inode numbers mapped to "the n-th inode
//! created") and the final namespace: names, link counts, and the link counts of the inodes
//! left in stray directories.
//!
//! Known limit the scenarios step around: a rank resolves a directory named by inode number
//! only if it has it in cache (no discover by inode number), so such ranks look a path in it
//! up first. (A renamed file migrates to its new dentry's rank, see multirank_migrate.rs;
//! some scenarios below still look inodes up at their old place first, as they did before
//! that existed: multirank_migrate.rs runs one without.)

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
}

impl Transport for Recording {
    fn send(&mut self, from: u32, to: u32, msg: MdsMessage) {
        if let MdsMessage::Peer(p) = &msg {
            self.peer_log.push((from, to, p.op.name()));
        }
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

// ---- unlink of a remote link whose inode is auth elsewhere ------------------------------

#[test]
fn s4_17_unlink_of_a_remote_link_sends_unlinkprep_to_the_inode_auth() {
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, link("l", "a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, Op::Unlink { path: path("l") });
    assert_eq!(r, Ok(None));
    // §4.18: a journaled peer forbids the early reply.
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_ops(&c, mark),
        vec![(0, 1, "unlink_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(entries(&out, 0, 10), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(entries(&out, 1, 10), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    // The inode survives with its primary link; its auth counts one link.
    let names = namespace(&c);
    assert_eq!(names.get("a/f"), Some(&1));
    assert!(!names.contains_key("l"));
}

#[test]
fn s5_2_unlink_of_a_remote_link_matches_one_rank_on_two_and_three_ranks() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, link("b/m", "a/f")),
        S::Send(0, P::Unlink("l")),
        S::Send(2, P::Unlink("b/m")),
        S::Send(1, P::Getattr("a/f")),
        S::Send(0, P::Unlink("l")),
    ];
    let (seen, _, _) = same_as_one_rank(2, &steps);
    assert_eq!(seen.names.get("a/f"), Some(&1));
    let (seen, _, _) = same_as_one_rank(3, &steps);
    assert_eq!(seen.names.get("a/f"), Some(&1));
    assert_eq!(seen.replies.last(), Some(&Err(Errno::ENOENT)));
}

#[test]
fn s5_2_unlink_of_the_last_remote_link_leaves_the_inode_in_a_stray_with_no_links() {
    // The primary link goes first (the inode moves to its auth's stray directory with one
    // link left), then the remote one on another rank: the inode's auth drops it to zero.
    let steps = [
        S::Mk("a", 1),
        S::Send(1, create("a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(1, P::Unlink("a/f")),
        S::Send(0, P::Getattr("l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.strays, vec![0]);
        assert!(seen.names.keys().all(|n| n == "a"));
    }
}

// ---- rename over a remote link to an inode auth elsewhere --------------------------------

#[test]
fn s5_2_rename_over_a_remote_link_makes_the_replaced_inodes_auth_a_witness() {
    let steps =
        [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, link("l", "a/f")), S::Send(0, create("h"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, op(&rename("l", "h"), &BTreeMap::new()));
    assert!(matches!(r, Ok(Some(_))));
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_ops(&c, mark),
        vec![(0, 1, "rename_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(entries(&out, 1, 10), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    let names = namespace(&c);
    assert_eq!((names.get("a/f"), names.get("l"), names.get("h")), (Some(&1), Some(&1), None));
}

#[test]
fn s5_2_rename_over_a_remote_link_matches_one_rank_on_two_and_three_ranks() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        // A rank resolves a directory named by inode number only once it has it in cache
        // (there is no discover by inode number here): rank 2 looks the path up first.
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, link("b/l", "a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(2, create("b/h")),
        // Same directory (rank 2 leads alone apart from f's auth).
        S::Send(2, rename("b/l", "b/h")),
        // Across directories: the source on rank 2, the destination and leader rank 0.
        S::Send(0, create("b/k")),
        S::Send(0, rename("l", "b/k")),
        S::Send(0, P::Getattr("a/f")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.names.get("a/f"), Some(&1));
    }
}

// ---- a file renamed across ranks, then used at its new place -----------------------------

#[test]
fn s5_2_a_file_renamed_across_ranks_can_be_unlinked_renamed_and_changed_at_its_new_place() {
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    // On two ranks `b` is an ordinary directory of rank 0; on three it is rank 2's.
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(1, create("a/g")),
        S::Send(2, create("b/h")),
        // Rank 2 replicates g and m from their auth before they move (see the module notes).
        S::Send(2, P::Getattr("a/g")),
        S::Send(0, rename("f", "a/f")),
        S::Send(0, rename("g", "a/g")),
        // setattr at the new place (forwarded to the inode's auth).
        S::Send(0, P::Setattr("f", attrs)),
        S::Send(2, P::Setattr("g", attrs)),
        // rename within the new directory, then onto the other renamed file (a primary link
        // whose inode came from another rank: it goes to a stray with no links).
        S::Send(0, rename("f2", "f")),
        S::Send(0, rename("g", "f2")),
        // a file of a third rank renamed over the renamed one.
        S::Send(0, rename("g", "b/h")),
        S::Send(0, create("k")),
        S::Send(1, create("a/k")),
        S::Send(0, rename("k2", "a/k")),
        S::Send(0, rename("k2", "k")),
        // links to, and unlink of, a renamed file.
        S::Send(1, create("a/m")),
        S::Send(2, P::Getattr("a/m")),
        S::Send(0, rename("m", "a/m")),
        S::Send(0, link("l", "m")),
        S::Send(2, link("b/l", "m")),
        S::Send(0, P::Unlink("m")),
        S::Send(0, P::Getattr("l")),
        S::Send(2, P::Unlink("b/l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(
            seen.strays,
            vec![0, 0, 0, 0],
            "{ranks} ranks: four inodes lost their last link: {seen:?}"
        );
    }
}

#[test]
fn s5_2_unlink_of_a_file_renamed_across_ranks_is_local_to_its_new_auth() {
    // The rename migrated the inode to rank 0 with its new primary dentry (see
    // multirank_migrate.rs), so the unlink needs no witness.
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, rename("g", "a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, Op::Unlink { path: path("g") });
    assert_eq!(r, Ok(None));
    assert_eq!(twophase_ops(&c, mark), vec![]);
    assert!(entries(&out, 1, 10).is_empty());
    assert_eq!(strays(&c), vec![0]);
    assert!(namespace(&c).keys().all(|n| n == "a"));
}
