//! Cross-rank rename with a rank that crashes in the middle of the two-phase update (mds spec
//! §4.17 RENAMEPREP / PREPACK / FINISH / COMMITTED; §6.1 EPeerUpdate, ECommitted; §6.6 replay
//! and resolve: "uncommitted leader/peer updates (resolved later with peers in the resolve
//! stage)").
//!
//! Rank 0 leads `rename /a/f -> /g` (it is auth for the root dirfrag, the destination); rank 1
//! is the witness (auth for `/a`'s dirfrag and for `f`, which it exports to rank 0 within the
//! rename: the inode's auth moves with its primary dentry). Each test crashes one of them at one
//! point of the protocol, restarts it, settles, and checks that the namespace on both ranks is
//! entirely the old one or entirely the new one, matching what the client was told, with
//! nothing half-applied and nothing left over. The invariants are checked after every delivery.

use mds_journal::LogEvent;
use mds_journal::event::PeerOp as JPeerOp;
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::twophase::{PeerPhase, PeerRecord};
use mds_locker::{
    CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig,
    ObjRef, Op, ReqId,
};

const RENAME: u64 = 10;

fn check(c: &Cluster) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// Answers the cap revokes among `batch` (a cooperative client); true if there were any.
fn answer_revokes(c: &mut Cluster, batch: &[Output]) -> bool {
    let mut any = false;
    for o in batch {
        if let Effect::Cap(m) = &o.effect
            && m.op == CapOp::Revoke
            && !c.is_down(o.rank)
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
            check(c);
            any = true;
        }
    }
    any
}

/// Drives the cluster one action at a time (a delivery, or making the journals of the ranks
/// that are up safe once the network is quiet), checking the invariants after each, until
/// `stop` holds (true) or nothing is left to do (false). Every output is appended to `out`.
fn drive_until(c: &mut Cluster, out: &mut Vec<Output>, stop: impl Fn(&Cluster, &[Output]) -> bool) -> bool {
    for _ in 0..10_000 {
        let batch = c.take_outputs();
        let revoked = answer_revokes(c, &batch);
        out.extend(batch);
        if stop(c, out) {
            return true;
        }
        if c.step().unwrap() || revoked {
            check(c);
            continue;
        }
        let pending: Vec<u32> =
            (0..c.len() as u32).filter(|r| !c.is_down(*r) && c.unsafe_entries(*r) > 0).collect();
        if pending.is_empty() {
            let batch = c.take_outputs();
            let revoked = answer_revokes(c, &batch);
            out.extend(batch);
            if !revoked && c.transport().in_flight() == 0 {
                return stop(c, out);
            }
            continue;
        }
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("cluster did not settle");
}

fn settle(c: &mut Cluster, out: &mut Vec<Output>) {
    drive_until(c, out, |_, _| false);
}

fn submit(c: &mut Cluster, rank: u32, reqid: u64, client: u64, op: Op) -> Result<Option<Ino>, Errno> {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    check(c);
    let mut out = Vec::new();
    settle(c, &mut out);
    safe_reply(&out, reqid).unwrap_or_else(|| panic!("request {reqid} got no safe reply"))
}

fn safe_reply(out: &[Output], reqid: u64) -> Option<Result<Option<Ino>, Errno>> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
        _ => None,
    })
}

/// Rank `r` submitted a two-phase journal entry for the rename matching `want`.
fn submitted(out: &[Output], r: u32, want: impl Fn(&PeerRecord) -> bool) -> bool {
    out.iter().any(|o| {
        o.rank == r
            && matches!(&o.effect, Effect::JournalSubmit { entry, .. }
                if entry.reqid == ReqId(RENAME) && entry.peer.as_ref().is_some_and(&want))
    })
}

fn is_prepare(p: &PeerRecord) -> bool {
    matches!(p, PeerRecord::Peer { phase: PeerPhase::Prepare, .. })
}

fn is_leader_update(p: &PeerRecord) -> bool {
    matches!(p, PeerRecord::Leader { .. })
}

/// Two ranks; `/a` is pinned to rank 1, client 1 made `/a/f` on rank 1.
fn setup() -> (Cluster, Ino, Ino) {
    let mut c = Cluster::new(2, LockerConfig::default());
    let a = submit(&mut c, 0, 1, 1, Op::Mkdir { path: path("a"), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    check(&c);
    let f = submit(&mut c, 1, 2, 1, Op::Create { path: path("a/f"), mode: 0o644, excl: true, file_mode: 1 })
        .unwrap()
        .unwrap();
    (c, a, f)
}

fn start_rename(c: &mut Cluster, a: Ino) {
    let op = Op::Rename { dest: path("g"), src: FilePath::new(a, "f") };
    c.handle(0, Event::Request(ClientRequest { reqid: ReqId(RENAME), client: 1, op })).unwrap();
    check(c);
}

/// The phases of the rename's EPeerUpdates in rank `r`'s durable journal, and whether the
/// journal holds the leader's EUpdate (with peers) and an ECommitted for it.
fn journal_story(c: &Cluster, r: u32) -> (Vec<JPeerOp>, bool, bool) {
    let mut phases = Vec::new();
    let (mut update, mut committed) = (false, false);
    for ev in c.journal_events(r).unwrap() {
        match ev {
            LogEvent::PeerUpdate(p) if p.reqid.tid == RENAME => phases.push(p.op),
            LogEvent::Update(u) if u.reqid.is_some_and(|q| q.tid == RENAME) => {
                assert!(u.had_peers, "the leader's update names its peers");
                update = true;
            }
            LogEvent::Committed(e) if e.reqid.tid == RENAME => committed = true,
            _ => {}
        }
    }
    (phases, update, committed)
}

/// What the namespace looks like after everything settled: checks that both ranks agree,
/// that nothing is half-applied or left over, and returns whether the rename took effect.
fn settled_namespace(c: &Cluster, a: Ino, f: Ino) -> bool {
    for l in c.lockers() {
        let r = l.cache().rank();
        assert_eq!(l.twophase_in_progress(), (0, 0), "rank {r} still has two-phase state");
        assert_eq!(l.requests().count(), 0, "rank {r} still has requests");
        let cache = l.cache();
        for i in cache.inode_ids() {
            for id in cache.lock_ids(ObjRef::Inode(i)) {
                let lock = l.lock(id).unwrap();
                assert!(lock.is_stable(), "rank {r}: {id:?} not stable: {}", lock.state());
            }
        }
        for d in cache.dentry_ids() {
            for id in cache.lock_ids(ObjRef::Dentry(d)) {
                let lock = l.lock(id).unwrap();
                assert!(lock.is_stable(), "rank {r}: {id:?} not stable: {}", lock.state());
            }
        }
    }
    // The destination dentry, on its auth (rank 0).
    let r0 = c.rank(0).cache();
    let g_target =
        r0.lookup_dentry(r0.root(), "g").and_then(|dn| r0.dentry(dn)).and_then(|d| match d.linkage() {
            mds_locker::cache::Linkage::Primary(i) => r0.inode(i).map(|n| n.ino()),
            _ => None,
        });
    // The source dentry, on its auth (rank 1).
    let r1 = c.rank(1).cache();
    let adir = r1.lookup_ino(a).unwrap();
    let src = r1.lookup_dentry(adir, "f").and_then(|dn| r1.dentry(dn));
    let src_linked = src.is_some_and(|d| d.linkage() != mds_locker::cache::Linkage::Null);
    let renamed = g_target == Some(f);
    // The inode has exactly one auth: the rank of its primary dentry (it migrates with a
    // rename, see multirank_migrate.rs); any other copy is a replica of that rank's.
    let want_auth = if renamed { 0 } else { 1 };
    for l in c.lockers() {
        let cache = l.cache();
        let Some(n) = cache.lookup_ino(f).and_then(|i| cache.inode(i)) else { continue };
        let r = cache.rank();
        assert_eq!(n.is_auth(), r == want_auth, "rank {r}: auth of f");
        assert_eq!(n.auth(), want_auth, "rank {r}: f's auth");
    }
    let ac = c.rank(want_auth).cache();
    let fi = ac.lookup_ino(f).unwrap();
    let fnode = ac.inode(fi).unwrap();
    assert_eq!(fnode.data().nlink, 1, "a rename changes no link count");
    let parent = fnode
        .parent()
        .and_then(|dn| ac.dentry(dn))
        .map(|d| (ac.parent_dir(fi).and_then(|p| ac.inode(p)).map(|n| n.ino()), d.name().to_string()));
    let af = r1.dirfrag(r1.resolve_dirfrag(a, 0).unwrap()).unwrap().fnode().fragstat.nfiles;
    let rootf = r0.dirfrag(r0.resolve_dirfrag(Ino::ROOT, 0).unwrap()).unwrap().fnode().fragstat.nfiles;
    if renamed {
        assert!(!src_linked, "renamed, but /a/f still linked on rank 1");
        assert_eq!(parent, Some((Some(Ino::ROOT), "g".to_string())), "f's parent on its auth");
        assert_eq!((af, rootf), (0, 1), "frag stats of the new namespace");
    } else {
        assert_eq!(g_target, None, "/g names something else");
        assert!(src_linked, "not renamed, but /a/f is gone on rank 1");
        assert_eq!(parent, Some((Some(a), "f".to_string())), "f's parent on its auth");
        assert_eq!((af, rootf), (1, 0), "frag stats of the old namespace");
    }
    renamed
}

/// Client-visible view from both ranks, through requests.
fn lookups(c: &mut Cluster, a: Ino, f: Ino, renamed: bool, base: u64) {
    for (rank, r) in [(0u32, base), (1, base + 10)] {
        let g = submit(c, rank, r, 9, Op::Getattr { path: path("g"), mask: 0 });
        let af = submit(c, rank, r + 1, 9, Op::Getattr { path: FilePath::new(a, "f"), mask: 0 });
        if renamed {
            assert_eq!((g, af), (Ok(Some(f)), Err(Errno::ENOENT)), "rank {rank}");
        } else {
            assert_eq!((g, af), (Err(Errno::ENOENT), Ok(Some(f))), "rank {rank}");
        }
    }
}

/// Which rank crashes, and when.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// The witness, with its PREPARE submitted but not safe.
    WitnessPrepareUnsafe,
    /// The witness, after its PREPACK, with the leader's EUpdate submitted but not safe.
    WitnessAfterAck,
    /// As `WitnessAfterAck`, and the witness restarts before the leader's EUpdate is safe.
    WitnessAfterAckQuickRestart,
    /// The witness, after the leader's EUpdate is safe, before FINISH arrives.
    WitnessBeforeFinish,
    /// The leader, after the witness prepared, with its EUpdate submitted but not safe.
    LeaderUpdateUnsafe,
    /// The leader, with its EUpdate safe, before the witness got FINISH.
    LeaderUpdateSafe,
}

struct Outcome {
    out: Vec<Output>,
    /// The client's safe reply before the crash, if any.
    told_before: Option<Result<Option<Ino>, Errno>>,
    /// The witness's (rank 1) and the leader's (rank 0) journal stories.
    witness: (Vec<JPeerOp>, bool, bool),
    leader: (Vec<JPeerOp>, bool, bool),
    renamed: bool,
    report: mds_locker::cluster::RestartReport,
}

fn run(point: Point) -> (Cluster, Ino, Ino, Outcome) {
    run_inspecting(point, |_, _, _| {})
}

/// `run`, calling `inspect` right after the restart, before anything it queued is delivered.
fn run_inspecting(point: Point, inspect: impl Fn(&Cluster, Ino, Ino)) -> (Cluster, Ino, Ino, Outcome) {
    let (mut c, a, f) = setup();
    start_rename(&mut c, a);
    let mut out = Vec::new();
    let (victim, hit) = match point {
        Point::WitnessPrepareUnsafe => (1, drive_until(&mut c, &mut out, |_, o| submitted(o, 1, is_prepare))),
        Point::WitnessAfterAck | Point::WitnessAfterAckQuickRestart => {
            (1, drive_until(&mut c, &mut out, |_, o| submitted(o, 0, is_leader_update)))
        }
        Point::WitnessBeforeFinish | Point::LeaderUpdateSafe => {
            let v = if matches!(point, Point::LeaderUpdateSafe) { 0 } else { 1 };
            (v, drive_until(&mut c, &mut out, |_, o| safe_reply(o, RENAME).is_some()))
        }
        Point::LeaderUpdateUnsafe => {
            (0, drive_until(&mut c, &mut out, |_, o| submitted(o, 0, is_leader_update)))
        }
    };
    assert!(hit, "{point:?}: the crash point was never reached");
    let told_before = safe_reply(&out, RENAME);
    match point {
        Point::WitnessPrepareUnsafe => assert!(c.unsafe_entries(1) > 0, "the prepare is not safe yet"),
        Point::WitnessAfterAck | Point::WitnessAfterAckQuickRestart | Point::LeaderUpdateUnsafe => {
            assert!(c.unsafe_entries(0) > 0 && told_before.is_none(), "the leader's update is not safe yet")
        }
        Point::WitnessBeforeFinish | Point::LeaderUpdateSafe => {
            assert_eq!(told_before, Some(Ok(Some(f))));
            assert!(c.transport().in_flight() > 0, "FINISH is still in flight");
        }
    }
    c.crash(victim).unwrap();
    check(&c);
    if matches!(point, Point::WitnessAfterAckQuickRestart) {
        // Deliver what is in flight, but keep the leader's update unsafe.
        while c.step().unwrap() {
            check(&c);
        }
        assert!(c.unsafe_entries(0) > 0);
    } else {
        // The survivor runs on while the victim is down: nothing may hang it or break it.
        settle(&mut c, &mut out);
    }
    let report = c.restart(victim).unwrap();
    check(&c);
    inspect(&c, a, f);
    if matches!(point, Point::WitnessAfterAckQuickRestart) {
        // The witness's COMMIT turns safe first: its COMMITTED reaches the leader before the
        // leader's own update is safe (ECommitted must still wait for it).
        c.make_safe(1).unwrap();
        check(&c);
        while c.step().unwrap() {
            check(&c);
        }
        assert!(c.unsafe_entries(0) > 0);
    }
    settle(&mut c, &mut out);
    let renamed = settled_namespace(&c, a, f);
    let witness = journal_story(&c, 1);
    let leader = journal_story(&c, 0);
    let o = Outcome { out, told_before, witness, leader, renamed, report };
    (c, a, f, o)
}

/// What every scenario must show: the client's answer (before or after the restart) matches
/// the namespace; the witness's journal ends every PREPARE with COMMIT or ROLLBACK; a
/// committed update has the leader's EUpdate and ECommitted.
fn common_checks(c: &mut Cluster, a: Ino, f: Ino, o: &Outcome, base: u64) {
    let told = o.told_before.or_else(|| safe_reply(&o.out, RENAME));
    match told {
        Some(Ok(Some(ino))) => {
            assert_eq!(ino, f);
            assert!(o.renamed, "the client was told the rename happened");
        }
        Some(other) => panic!("unexpected answer {other:?}"),
        None => assert!(!o.renamed, "renamed without telling the client"),
    }
    let phases = &o.witness.0;
    assert!(!phases.is_empty() && phases.len().is_multiple_of(2), "witness journal: {phases:?}");
    for pair in phases.chunks(2) {
        assert_eq!(pair[0], JPeerOp::Prepare, "witness journal: {phases:?}");
        assert!(matches!(pair[1], JPeerOp::Commit | JPeerOp::Rollback), "witness journal: {phases:?}");
    }
    assert_eq!(phases.last() == Some(&JPeerOp::Commit), o.renamed, "witness journal: {phases:?}");
    if o.renamed {
        assert!(o.leader.1 && o.leader.2, "leader journal: EUpdate {} ECommitted {}", o.leader.1, o.leader.2);
    } else {
        assert!(!o.leader.1, "a durable leader update means the rename committed");
    }
    assert!(o.leader.0.is_empty() && !o.witness.1 && !o.witness.2);
    lookups(c, a, f, o.renamed, base);
}

#[test]
fn s6_6_witness_crashes_before_its_prepare_is_safe_and_the_leader_prepares_again() {
    let (mut c, a, f, o) = run(Point::WitnessPrepareUnsafe);
    // The lost prepare left nothing to resolve; the leader re-sent the prep once the witness
    // was active, and the rename went through.
    assert!(o.report.peer_decisions.is_empty());
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_witness_crashes_after_its_ack_and_resolve_commits_what_the_leader_journaled() {
    let (mut c, a, f, o) = run(Point::WitnessAfterAck);
    // The leader journaled (it cannot take that back), so resolve commits the prepare.
    assert_eq!(o.report.peer_decisions.len(), 1);
    assert_eq!(o.report.peer_decisions[0].1, mds_locker::recovery::PeerDecision::Commit);
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_witness_restarts_while_the_leaders_update_is_unsafe_and_resolve_asks_the_live_leader() {
    let (mut c, a, f, o) = run(Point::WitnessAfterAckQuickRestart);
    // Not in the leader's durable journal yet, but submitted: the live leader answers commit
    // (it cannot take the entry back); its FINISH then releases the locks rejoin re-took.
    assert_eq!(o.report.peer_decisions.len(), 1);
    assert_eq!(o.report.peer_decisions[0].1, mds_locker::recovery::PeerDecision::Commit);
    assert!(o.report.rejoined_locks > 0);
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_witness_crashes_before_finish_and_commits_from_its_journal_on_restart() {
    let (mut c, a, f, o) = run(Point::WitnessBeforeFinish);
    assert_eq!(o.report.peer_decisions.len(), 1);
    assert_eq!(o.report.peer_decisions[0].1, mds_locker::recovery::PeerDecision::Commit);
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_leader_crashes_before_its_update_is_safe_and_the_witness_rolls_back() {
    let (mut c, a, f, o) = run_inspecting(Point::LeaderUpdateUnsafe, |c, a, f| {
        // Right after resolve (the re-sent request has not reached the witness yet): the
        // witness dropped its prepared edits and the restarted leader has no /g.
        let r1 = c.rank(1).cache();
        let dn = r1.lookup_dentry(r1.lookup_ino(a).unwrap(), "f").unwrap();
        let d = r1.dentry(dn).unwrap();
        assert_eq!(d.projections().count(), 0);
        assert_eq!(d.linkage(), mds_locker::cache::Linkage::Primary(r1.lookup_ino(f).unwrap()));
        assert!(c.rank(1).twophase_in_progress() == (0, 0));
        let r0 = c.rank(0).cache();
        assert!(
            r0.lookup_dentry(r0.root(), "g")
                .and_then(|dn| r0.dentry(dn))
                .is_none_or(|d| d.linkage() == mds_locker::cache::Linkage::Null)
        );
    });
    // The witness rolled back at the leader's resolve; the client re-sent the rename to the
    // restarted leader, which ran it again from the start.
    assert_eq!(&o.witness.0[..2], &[JPeerOp::Prepare, JPeerOp::Rollback]);
    assert!(o.report.resent >= 1);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_leader_crashes_after_its_update_is_safe_and_the_witness_commits_at_resolve() {
    let (mut c, a, f, o) = run(Point::LeaderUpdateSafe);
    assert!(o.report.replay.uncommitted_leader_updates.iter().any(|(q, _)| q.tid == RENAME));
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_a_committed_witness_update_survives_the_witness_restart() {
    // Replay applies a prepare's metablob at its COMMIT (the witness applies at commit).
    let (mut c, a, f) = setup();
    start_rename(&mut c, a);
    let mut out = Vec::new();
    settle(&mut c, &mut out);
    assert_eq!(safe_reply(&out, RENAME), Some(Ok(Some(f))));
    c.crash(1).unwrap();
    settle(&mut c, &mut out);
    let report = c.restart(1).unwrap();
    assert!(report.replay.uncommitted_peer_updates.is_empty());
    check(&c);
    settle(&mut c, &mut out);
    assert!(settled_namespace(&c, a, f));
    lookups(&mut c, a, f, true, 100);
}

// ---- a crash while the witness freezes the inode it exports ------------------------------

/// Drives the rename until rank 1 (the exporter) recalls the client's caps on `f` to
/// nothing, and returns that batch unanswered: the inode is freezing, the prep waits.
fn drive_to_freezing(c: &mut Cluster, out: &mut Vec<Output>, f: Ino) -> Vec<Output> {
    for _ in 0..10_000 {
        let batch = c.take_outputs();
        let recall = batch.iter().any(|o| {
            o.rank == 1
                && matches!(&o.effect, Effect::Cap(m) if m.op == CapOp::Revoke && m.ino == f && m.caps == 0)
        });
        if recall {
            out.extend(batch.iter().cloned());
            return batch;
        }
        let revoked = answer_revokes(c, &batch);
        out.extend(batch);
        if c.step().unwrap() || revoked {
            check(c);
            continue;
        }
        let pending: Vec<u32> = (0..c.len() as u32).filter(|r| c.unsafe_entries(*r) > 0).collect();
        assert!(!pending.is_empty(), "the exporter never recalled the caps");
        for r in pending {
            c.make_safe(r).unwrap();
            check(c);
        }
    }
    panic!("never froze");
}

/// Crashes `victim` while rank 1 freezes `f` for the rename, restarts it, and settles.
fn crash_while_freezing(victim: u32) -> (Cluster, Ino, Ino, Outcome) {
    let (mut c, a, f) = setup();
    start_rename(&mut c, a);
    let mut out = Vec::new();
    let recall = drive_to_freezing(&mut c, &mut out, f);
    assert!(c.rank(1).exporting(f), "rank 1 freezes f for its export");
    assert!(!submitted(&out, 1, is_prepare), "nothing is prepared while freezing");
    c.crash(victim).unwrap();
    check(&c);
    // The client answers the recall late (to a surviving exporter).
    answer_revokes(&mut c, &recall);
    settle(&mut c, &mut out);
    if victim == 0 {
        // The leader's peer request went with it: the exporter unfroze, nothing moved.
        assert!(!c.rank(1).exporting(f));
        let r1 = c.rank(1).cache();
        assert!(r1.inode(r1.lookup_ino(f).unwrap()).unwrap().is_auth());
    }
    let report = c.restart(victim).unwrap();
    check(&c);
    settle(&mut c, &mut out);
    let renamed = settled_namespace(&c, a, f);
    let witness = journal_story(&c, 1);
    let leader = journal_story(&c, 0);
    (c, a, f, Outcome { out, told_before: None, witness, leader, renamed, report })
}

#[test]
fn s6_6_leader_crashes_while_the_witness_freezes_and_the_resent_rename_migrates() {
    let (mut c, a, f, o) = crash_while_freezing(0);
    // The client re-sent the rename to the restarted leader; it ran again from the start.
    assert!(o.report.resent >= 1);
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

#[test]
fn s6_6_witness_crashes_while_freezing_and_the_leader_prepares_it_again() {
    let (mut c, a, f, o) = crash_while_freezing(1);
    assert!(o.report.peer_decisions.is_empty());
    assert!(o.renamed);
    assert_eq!(o.witness.0, vec![JPeerOp::Prepare, JPeerOp::Commit]);
    common_checks(&mut c, a, f, &o, 100);
    later_ops_work(&mut c, 200);
}

/// After a migrating rename settled either way: a setattr from each rank and an unlink of
/// whichever name the inode has succeed.
fn later_ops_work(c: &mut Cluster, base: u64) {
    let name = if submit(c, 0, base, 9, Op::Getattr { path: path("g"), mask: 0 }).is_ok() {
        path("g")
    } else {
        let a = submit(c, 0, base + 1, 9, Op::Getattr { path: path("a"), mask: 0 }).unwrap().unwrap();
        FilePath::new(a, "f")
    };
    for (k, rank) in [0u32, 1].into_iter().enumerate() {
        let attrs = mds_locker::SetAttr { mode: Some(0o600 + k as u32), ..Default::default() };
        let r = submit(c, rank, base + 2 + k as u64, 9, Op::Setattr { path: name.clone(), attrs });
        assert!(r.is_ok(), "setattr from rank {rank}: {r:?}");
    }
    assert_eq!(submit(c, 0, base + 5, 9, Op::Unlink { path: name }), Ok(None));
}
