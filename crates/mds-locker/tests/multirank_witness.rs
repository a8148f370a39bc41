//! Two-phase updates with witnesses across ranks (mds spec §4.17 LINKPREP / RMDIRPREP /
//! RENAMEPREP, PREPACK, FINISH, COMMITTED; §4.18 no early reply with journaled peers; §5.2
//! multi-MDS RENAME / LINK / RMDIR; §6.1 EPeerUpdate and ECommitted).
//!
//! Every test drives the cluster one delivery at a time and checks the cross-rank
//! invariants after each, with a cooperative client answering cap revokes.

use std::collections::VecDeque;

use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::twophase::{PeerPhase, PeerRecord};
use mds_locker::{
    CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Errno, Event, FilePath, Ino, JournalEntry,
    LockerConfig, MdsMessage, Op, ReqId,
};

/// FIFO transport that remembers every peer message it carried: (from, to, op name).
#[derive(Debug, Default)]
struct Recording {
    queue: VecDeque<(u32, u32, MdsMessage)>,
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

/// Delivers everything one step at a time (checking invariants after each), makes journals
/// safe when the network is quiet, answers revokes; returns the outputs.
fn drive(c: &mut C) -> Vec<Output> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        if c.step().unwrap() {
            check(c);
            continue;
        }
        let batch = c.take_outputs();
        let revokes: Vec<_> = batch
            .iter()
            .filter_map(|o| match &o.effect {
                Effect::Cap(m) if m.op == CapOp::Revoke => Some((o.rank, *m)),
                _ => None,
            })
            .collect();
        out.extend(batch);
        for (r, m) in &revokes {
            let ack = ClientCapMessage {
                client: m.client,
                ino: m.ino,
                op: ClientCapOp::Update,
                seq: m.seq,
                caps: m.caps,
                wanted: m.wanted,
            };
            c.handle(*r, Event::ClientCaps(ack)).unwrap();
        }
        let pending: Vec<u32> = (0..c.len() as u32).filter(|r| c.unsafe_entries(*r) > 0).collect();
        if pending.is_empty() && revokes.is_empty() && c.transport().in_flight() == 0 {
            return out;
        }
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("cluster did not settle");
}

fn submit(
    c: &mut C,
    rank: u32,
    reqid: u64,
    client: u64,
    op: Op,
) -> (Result<Option<Ino>, Errno>, Vec<Output>) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    check(c);
    let out = drive(c);
    let result = out
        .iter()
        .find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("request {reqid} got no safe reply: {out:#?}"));
    (result, out)
}

/// Takes the outputs so far and answers their cap revokes (a cooperative client).
fn answer_revokes(c: &mut C) -> Vec<Output> {
    let batch = c.take_outputs();
    for o in &batch {
        if let Effect::Cap(m) = &o.effect
            && m.op == CapOp::Revoke
        {
            let ack = ClientCapMessage {
                client: m.client,
                ino: m.ino,
                op: ClientCapOp::Update,
                seq: m.seq,
                caps: m.caps,
                wanted: m.wanted,
            };
            c.handle(o.rank, Event::ClientCaps(ack)).unwrap();
        }
    }
    batch
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

fn unsafe_replies(out: &[Output], reqid: u64) -> usize {
    out.iter().filter(|o| matches!(&o.effect, Effect::Reply(r) if !r.safe && r.reqid == ReqId(reqid))).count()
}

/// The journal entries rank `r` submitted for `reqid`.
fn entries(out: &[Output], r: u32, reqid: u64) -> Vec<JournalEntry> {
    out.iter()
        .filter(|o| o.rank == r)
        .filter_map(|o| match &o.effect {
            Effect::JournalSubmit { entry, .. } if entry.reqid == ReqId(reqid) => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

fn kinds(es: &[JournalEntry]) -> Vec<String> {
    es.iter()
        .map(|e| match &e.peer {
            None => "EUpdate".to_string(),
            Some(PeerRecord::Leader { witnesses, .. }) => format!("EUpdate(peers {witnesses:?})"),
            Some(PeerRecord::Peer { phase: PeerPhase::Prepare, rollback, .. }) => {
                assert!(!rollback.is_empty(), "a prepare carries its rollback record");
                "EPeerUpdate(prepare)".to_string()
            }
            Some(PeerRecord::Peer { phase: PeerPhase::Commit, .. }) => "EPeerUpdate(commit)".to_string(),
            Some(PeerRecord::Peer { phase: PeerPhase::Rollback, .. }) => "EPeerUpdate(rollback)".to_string(),
            Some(PeerRecord::Committed) => "ECommitted".to_string(),
        })
        .collect()
}

/// The two-phase messages of the log from `from` on (locks and pins are the peer protocol's).
fn twophase_log(c: &C, from: usize) -> Vec<(u32, u32, &'static str)> {
    c.transport().peer_log[from..]
        .iter()
        .copied()
        .filter(|(_, _, k)| {
            matches!(
                *k,
                "rename_prep"
                    | "link_prep"
                    | "rmdir_prep"
                    | "prep_ack"
                    | "finish"
                    | "committed"
                    | "drop_locks"
            )
        })
        .collect()
}

/// Two ranks; `/a` is pinned to rank 1 (its dirfrag is a subtree root there), client 1 made
/// `/a/f` on rank 1.
fn setup() -> (C, Ino, Ino) {
    let mut c = Cluster::with_transport(2, LockerConfig::default(), Recording::default());
    let (a, _) = submit(&mut c, 0, 1, 1, Op::Mkdir { path: path("a"), mode: 0o755 });
    let a = a.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    check(&c);
    let (f, _) =
        submit(&mut c, 1, 2, 1, Op::Create { path: path("a/f"), mode: 0o644, excl: true, file_mode: 1 });
    (c, a, f.unwrap().unwrap())
}

fn getattr(c: &mut C, rank: u32, reqid: u64, p: FilePath) -> Result<Option<Ino>, Errno> {
    submit(c, rank, reqid, 9, Op::Getattr { path: p, mask: 0 }).0
}

fn no_twophase_left(c: &C) {
    for l in c.lockers() {
        assert_eq!(l.twophase_in_progress(), (0, 0), "rank {} still has two-phase state", l.cache().rank());
        assert_eq!(l.requests().count(), 0, "rank {} still has requests", l.cache().rank());
    }
}

#[test]
fn s4_17_rename_from_a_witness_dirfrag_into_the_leaders() {
    let (mut c, a, f) = setup();
    let mark = c.transport().peer_log.len();
    let op = Op::Rename { dest: path("g"), src: FilePath::new(a, "f") };
    let (r, out) = submit(&mut c, 0, 10, 1, op);
    assert_eq!(r, Ok(Some(f)));
    // §4.18: journaled peers forbid the early reply.
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_log(&c, mark),
        vec![(0, 1, "rename_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(kinds(&entries(&out, 0, 10)), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(kinds(&entries(&out, 1, 10)), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    // The namespace, from either rank.
    for (rank, base) in [(0, 20), (1, 30)] {
        assert_eq!(getattr(&mut c, rank, base, path("g")), Ok(Some(f)));
        assert_eq!(getattr(&mut c, rank, base + 1, path("a/f")), Err(Errno::ENOENT));
    }
    // The witness's frag counts the removal; the leader's root frag the addition.
    let r1 = c.rank(1).cache();
    let fa = r1.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r1.dirfrag(fa).unwrap().fnode().fragstat.nfiles, 0);
    let r0 = c.rank(0).cache();
    let root = r0.resolve_dirfrag(Ino::ROOT, 0).unwrap();
    assert_eq!(r0.dirfrag(root).unwrap().fnode().fragstat.nfiles, 1);
}

#[test]
fn s4_17_rename_from_the_leaders_dirfrag_into_a_witness_dirfrag_is_forwarded_then_witnessed() {
    let (mut c, a, _f) = setup();
    let (g, _) =
        submit(&mut c, 0, 3, 1, Op::Create { path: path("g"), mode: 0o644, excl: true, file_mode: 1 });
    let g = g.unwrap().unwrap();
    let mark = c.transport().peer_log.len();
    let op = Op::Rename { dest: FilePath::new(a, "h"), src: path("g") };
    let (r, out) = submit(&mut c, 0, 10, 1, op);
    assert_eq!(r, Ok(Some(g)));
    assert_eq!(unsafe_replies(&out, 10), 0);
    // Rank 1 leads (auth of /a's frag, the destination); rank 0 witnesses.
    assert_eq!(
        twophase_log(&c, mark),
        vec![(1, 0, "rename_prep"), (0, 1, "prep_ack"), (1, 0, "finish"), (0, 1, "committed")]
    );
    assert_eq!(kinds(&entries(&out, 1, 10)), vec!["EUpdate(peers [0])", "ECommitted"]);
    assert_eq!(kinds(&entries(&out, 0, 10)), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    for (rank, base) in [(0, 20), (1, 30)] {
        assert_eq!(getattr(&mut c, rank, base, FilePath::new(a, "h")), Ok(Some(g)));
        assert_eq!(getattr(&mut c, rank, base + 1, path("g")), Err(Errno::ENOENT));
    }
}

#[test]
fn s5_2_rename_over_an_existing_target_on_the_other_rank() {
    let (mut c, a, f) = setup();
    let (g, _) =
        submit(&mut c, 0, 3, 1, Op::Create { path: path("g"), mode: 0o644, excl: true, file_mode: 1 });
    let g = g.unwrap().unwrap();
    let mark = c.transport().peer_log.len();
    let op = Op::Rename { dest: path("g"), src: FilePath::new(a, "f") };
    let (r, out) = submit(&mut c, 0, 10, 1, op);
    assert_eq!(r, Ok(Some(f)));
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_log(&c, mark),
        vec![(0, 1, "rename_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(kinds(&entries(&out, 0, 10)), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(kinds(&entries(&out, 1, 10)), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    for (rank, base) in [(0, 20), (1, 30)] {
        assert_eq!(getattr(&mut c, rank, base, path("g")), Ok(Some(f)));
        assert_eq!(getattr(&mut c, rank, base + 1, path("a/f")), Err(Errno::ENOENT));
    }
    // The replaced inode went to rank 0's stray directory with no links left.
    let r0 = c.rank(0).cache();
    let gi = r0.lookup_ino(g).unwrap();
    assert_eq!(r0.inode(gi).unwrap().data().nlink, 0);
    assert!(r0.is_stray(r0.parent_dir(gi).unwrap()));
}

#[test]
fn s5_2_link_to_an_inode_on_the_other_rank() {
    let (mut c, a, f) = setup();
    let mark = c.transport().peer_log.len();
    let op = Op::Link { path: path("l"), target: FilePath::new(a, "f") };
    let (r, out) = submit(&mut c, 0, 10, 1, op);
    assert_eq!(r, Ok(Some(f)));
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_log(&c, mark),
        vec![(0, 1, "link_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(kinds(&entries(&out, 0, 10)), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(kinds(&entries(&out, 1, 10)), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    for (rank, base) in [(0, 20), (1, 30)] {
        assert_eq!(getattr(&mut c, rank, base, path("l")), Ok(Some(f)));
        assert_eq!(getattr(&mut c, rank, base + 1, FilePath::new(a, "f")), Ok(Some(f)));
    }
    // The inode's auth counts both links.
    let r1 = c.rank(1).cache();
    assert_eq!(r1.inode(r1.lookup_ino(f).unwrap()).unwrap().data().nlink, 2);
}

#[test]
fn s5_2_rmdir_of_a_pinned_empty_dir_has_its_subtree_rank_witness() {
    let mut c = Cluster::with_transport(2, LockerConfig::default(), Recording::default());
    let (a, _) = submit(&mut c, 0, 1, 1, Op::Mkdir { path: path("a"), mode: 0o755 });
    let a = a.unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, 0, 10, 1, Op::Rmdir { path: path("a") });
    assert_eq!(r, Ok(None));
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_log(&c, mark),
        vec![(0, 1, "rmdir_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(kinds(&entries(&out, 0, 10)), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(kinds(&entries(&out, 1, 10)), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    assert_eq!(getattr(&mut c, 0, 20, path("a")), Err(Errno::ENOENT));
    assert_eq!(getattr(&mut c, 1, 21, path("a")), Err(Errno::ENOENT));
}

#[test]
fn s5_2_rmdir_refused_by_the_witness_when_its_dirfrag_is_not_empty() {
    let (mut c, a, f) = setup();
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, 0, 10, 1, Op::Rmdir { path: path("a") });
    assert_eq!(r, Err(Errno::ENOTEMPTY));
    // Either the leader's gathered stats or the witness refuse; nothing is journaled.
    assert!(entries(&out, 0, 10).is_empty() && entries(&out, 1, 10).iter().all(|e| e.peer.is_some()));
    no_twophase_left(&c);
    let _ = mark;
    assert_eq!(getattr(&mut c, 0, 20, FilePath::new(a, "f")), Ok(Some(f)));
}

#[test]
fn s4_17_a_witness_that_cannot_prepare_aborts_the_update_everywhere() {
    let (mut c, a, f) = setup();
    let mark = c.transport().peer_log.len();
    let op = Op::Rename { dest: path("g"), src: FilePath::new(a, "f") };
    c.handle(0, Event::Request(ClientRequest { reqid: ReqId(10), client: 1, op })).unwrap();
    // Deliver until the prep is the next message, then make the witness's view of the
    // source diverge (as after a failover that lost the source): it must refuse (ENOENT).
    let mut out = Vec::new();
    loop {
        out.extend(answer_revokes(&mut c));
        if c.transport()
            .queue
            .front()
            .is_some_and(|(_, _, m)| matches!(m, MdsMessage::Peer(p) if p.op.name() == "rename_prep"))
        {
            break;
        }
        if !c.step().unwrap() {
            let more = answer_revokes(&mut c);
            let progressed = !more.is_empty();
            out.extend(more);
            if progressed && c.transport().in_flight() > 0 {
                continue;
            }
            let pending: Vec<u32> = (0..2).filter(|r| c.unsafe_entries(*r) > 0).collect();
            assert!(!pending.is_empty(), "the prep never went out");
            for r in pending {
                c.make_safe(r).unwrap();
            }
        }
        check(&c);
    }
    let r1 = c.rank_mut(1).cache_mut();
    let adir = r1.lookup_ino(a).unwrap();
    let dn = r1.lookup_dentry(adir, "f").unwrap();
    let fi = r1.lookup_ino(f).unwrap();
    let frag = r1.dentry(dn).unwrap().dir();
    let moved = r1.add_null_dentry(frag, "moved");
    r1.link_primary_now(moved, fi);
    r1.link_remote_now(dn, Ino(0xdead), 0o100000);
    out.extend(drive(&mut c));
    let result = out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(10) => Some(r.result),
        _ => None,
    });
    assert_eq!(result, Some(Err(Errno::ENOENT)));
    assert_eq!(twophase_log(&c, mark), vec![(0, 1, "rename_prep"), (1, 0, "prep_ack"), (0, 1, "finish")]);
    // Nothing journaled for the request anywhere; nothing changed on the leader.
    assert!(entries(&out, 0, 10).is_empty());
    assert!(entries(&out, 1, 10).is_empty());
    no_twophase_left(&c);
    assert_eq!(getattr(&mut c, 0, 20, path("g")), Err(Errno::ENOENT));
    let _ = f;
}
