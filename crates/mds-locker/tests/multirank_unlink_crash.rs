//! A rank crashes in the middle of an unlink of a remote link, or of a rename over one, whose
//! inode is auth on the other rank (mds spec §4.17 UNLINKPREP / RENAMEPREP, PREPACK, FINISH,
//! COMMITTED; §6.1 EPeerUpdate, ECommitted; §6.6 replay and resolve).
//!
//! Rank 1 is auth for `/a` and `/a/f`; `/l` is a remote link to `f` in rank 0's root, so `f`
//! has two links. Rank 0 leads `unlink /l` (or `rename /h -> /l`, `/h` a file of rank 0) and
//! rank 1 witnesses: it drops `f`'s link count. Each test crashes one rank at one point of the
//! protocol, restarts it, settles, and checks that both ranks show entirely the old namespace
//! (`/l` names `f`, two links) or entirely the new one (`f` has one link), matching what the
//! client was told. The invariants are checked after every delivery.

use mds_journal::LogEvent;
use mds_journal::event::PeerOp as JPeerOp;
use mds_locker::cache::Linkage;
use mds_locker::cluster::{Cluster, Output, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::twophase::{PeerPhase, PeerRecord};
use mds_locker::{ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig, ObjRef, Op, ReqId};

const OP: u64 = 10;

fn check(c: &Cluster) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), c.transport().in_flight()) {
        panic!("invariants violated: {v:#?}");
    }
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// Answers revokes among `batch` for the ranks that are up; true if there were any.
fn answer(c: &mut Cluster, cl: &mut CooperativeClients, batch: &[Output]) -> bool {
    let mut any = false;
    for (r, ev) in cl.answers(batch) {
        if c.is_down(r) {
            continue;
        }
        c.handle(r, ev).unwrap();
        check(c);
        any = true;
    }
    any
}

/// Drives the cluster one action at a time until `stop` holds (true) or nothing is left to
/// do (false); journals of live ranks are made safe only when the network is quiet.
fn drive_until(
    c: &mut Cluster,
    cl: &mut CooperativeClients,
    out: &mut Vec<Output>,
    stop: impl Fn(&Cluster, &[Output]) -> bool,
) -> bool {
    for _ in 0..10_000 {
        let batch = c.take_outputs();
        let answered = answer(c, cl, &batch);
        out.extend(batch);
        if stop(c, out) {
            return true;
        }
        if c.step().unwrap() || answered {
            check(c);
            continue;
        }
        let pending: Vec<u32> =
            (0..c.len() as u32).filter(|r| !c.is_down(*r) && c.unsafe_entries(*r) > 0).collect();
        if pending.is_empty() {
            let batch = c.take_outputs();
            let answered = answer(c, cl, &batch);
            out.extend(batch);
            if !answered && c.transport().in_flight() == 0 {
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

fn settle(c: &mut Cluster, cl: &mut CooperativeClients, out: &mut Vec<Output>) {
    drive_until(c, cl, out, |_, _| false);
}

fn safe_reply(out: &[Output], reqid: u64) -> Option<Result<Option<Ino>, Errno>> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
        _ => None,
    })
}

fn submit(
    c: &mut Cluster,
    cl: &mut CooperativeClients,
    rank: u32,
    reqid: u64,
    op: Op,
) -> Result<Option<Ino>, Errno> {
    if !c.rank(rank).sessions().any(|s| s.client() == 1) {
        c.handle(rank, Event::SessionOpen { client: 1 }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client: 1, op })).unwrap();
    check(c);
    let mut out = Vec::new();
    settle(c, cl, &mut out);
    safe_reply(&out, reqid).unwrap_or_else(|| panic!("request {reqid} got no safe reply"))
}

fn submitted(out: &[Output], r: u32, want: impl Fn(&PeerRecord) -> bool) -> bool {
    out.iter().any(|o| {
        o.rank == r
            && matches!(&o.effect, Effect::JournalSubmit { entry, .. }
                if entry.reqid == ReqId(OP) && entry.peer.as_ref().is_some_and(&want))
    })
}

fn is_prepare(p: &PeerRecord) -> bool {
    matches!(p, PeerRecord::Peer { phase: PeerPhase::Prepare, .. })
}

fn is_leader_update(p: &PeerRecord) -> bool {
    matches!(p, PeerRecord::Leader { .. })
}

/// Which operation rank 0 leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// `unlink /l` (UNLINKPREP).
    Unlink,
    /// `rename /h -> /l` (RENAMEPREP to f's auth).
    RenameOver,
}

struct Setup {
    c: Cluster,
    cl: CooperativeClients,
    a: Ino,
    f: Ino,
    h: Option<Ino>,
}

fn setup(which: Which) -> Setup {
    let mut c = Cluster::new(2, LockerConfig::default());
    let mut cl = CooperativeClients::new();
    let a = submit(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("a"), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    check(&c);
    let create = |p: &str| Op::Create { path: path(p), mode: 0o644, excl: true, file_mode: 1 };
    let f = submit(&mut c, &mut cl, 1, 2, create("a/f")).unwrap().unwrap();
    let l = submit(&mut c, &mut cl, 0, 3, Op::Link { path: path("l"), target: FilePath::new(a, "f") });
    assert_eq!(l, Ok(Some(f)));
    let h =
        (which == Which::RenameOver).then(|| submit(&mut c, &mut cl, 0, 4, create("h")).unwrap().unwrap());
    Setup { c, cl, a, f, h }
}

fn start(s: &mut Setup, which: Which) {
    let op = match which {
        Which::Unlink => Op::Unlink { path: path("l") },
        Which::RenameOver => Op::Rename { dest: path("l"), src: path("h") },
    };
    s.c.handle(0, Event::Request(ClientRequest { reqid: ReqId(OP), client: 1, op })).unwrap();
    check(&s.c);
}

/// The phases of the op's EPeerUpdates in rank `r`'s durable journal, and whether it holds
/// the leader's EUpdate (with peers) and an ECommitted.
fn journal_story(c: &Cluster, r: u32) -> (Vec<JPeerOp>, bool, bool) {
    let mut phases = Vec::new();
    let (mut update, mut committed) = (false, false);
    for ev in c.journal_events(r).unwrap() {
        match ev {
            LogEvent::PeerUpdate(p) if p.reqid.tid == OP => phases.push(p.op),
            LogEvent::Update(u) if u.reqid.is_some_and(|q| q.tid == OP) => {
                assert!(u.had_peers, "the leader's update names its peers");
                update = true;
            }
            LogEvent::Committed(e) if e.reqid.tid == OP => committed = true,
            _ => {}
        }
    }
    (phases, update, committed)
}

/// Checks that nothing is half-applied or left over, and returns whether the op took effect:
/// `/l` on rank 0 and `f`'s link count on rank 1 must tell the same story.
fn settled(s: &Setup, which: Which) -> bool {
    let c = &s.c;
    for l in c.lockers() {
        let r = l.cache().rank();
        assert_eq!(l.twophase_in_progress(), (0, 0), "rank {r} still has two-phase state");
        assert_eq!(l.requests().count(), 0, "rank {r} still has requests");
        let cache = l.cache();
        for i in cache.inode_ids() {
            for id in cache.lock_ids(ObjRef::Inode(i)) {
                assert!(l.lock(id).unwrap().is_stable(), "rank {r}: {id:?} not stable");
            }
            assert_eq!(cache.inode(i).unwrap().projections().count(), 0, "rank {r}: projected inode");
        }
    }
    let r0 = c.rank(0).cache();
    let l = r0.lookup_dentry(r0.root(), "l").and_then(|dn| r0.dentry(dn)).map(|d| d.linkage());
    let r1 = c.rank(1).cache();
    let fnode = r1.inode(r1.lookup_ino(s.f).unwrap()).unwrap();
    assert!(fnode.is_auth());
    let nlink = fnode.data().nlink;
    let adir = r1.lookup_ino(s.a).unwrap();
    let af = r1.lookup_dentry(adir, "f").and_then(|dn| r1.dentry(dn)).map(|d| d.linkage());
    assert!(matches!(af, Some(Linkage::Primary(_))), "f keeps its primary link");
    let old = matches!(l, Some(Linkage::Remote { ino, .. }) if ino == s.f);
    let done = match which {
        Which::Unlink => l.is_none_or(|x| x == Linkage::Null),
        Which::RenameOver => {
            matches!(l, Some(Linkage::Primary(i)) if Some(r0.inode(i).unwrap().ino()) == s.h)
        }
    };
    assert!(old != done, "/l is neither old nor new: {l:?}");
    assert_eq!(nlink, if done { 1 } else { 2 }, "f's link count on its auth (done {done})");
    done
}

#[derive(Debug, Clone, Copy)]
enum Point {
    WitnessPrepareUnsafe,
    WitnessAfterAck,
    WitnessBeforeFinish,
    LeaderUpdateUnsafe,
    LeaderUpdateSafe,
}

fn run(which: Which, point: Point) {
    let mut s = setup(which);
    start(&mut s, which);
    let mut out = Vec::new();
    let (victim, hit) = match point {
        Point::WitnessPrepareUnsafe => {
            (1, drive_until(&mut s.c, &mut s.cl, &mut out, |_, o| submitted(o, 1, is_prepare)))
        }
        Point::WitnessAfterAck | Point::LeaderUpdateUnsafe => {
            let v = if matches!(point, Point::WitnessAfterAck) { 1 } else { 0 };
            (v, drive_until(&mut s.c, &mut s.cl, &mut out, |_, o| submitted(o, 0, is_leader_update)))
        }
        Point::WitnessBeforeFinish | Point::LeaderUpdateSafe => {
            let v = if matches!(point, Point::LeaderUpdateSafe) { 0 } else { 1 };
            (v, drive_until(&mut s.c, &mut s.cl, &mut out, |_, o| safe_reply(o, OP).is_some()))
        }
    };
    assert!(hit, "{which:?} {point:?}: the crash point was never reached");
    let told_before = safe_reply(&out, OP);
    s.c.crash(victim).unwrap();
    check(&s.c);
    settle(&mut s.c, &mut s.cl, &mut out);
    s.c.restart(victim).unwrap();
    check(&s.c);
    settle(&mut s.c, &mut s.cl, &mut out);
    let done = settled(&s, which);
    let told = told_before.or_else(|| safe_reply(&out, OP));
    match told {
        Some(Ok(_)) => assert!(done, "{which:?} {point:?}: the client was told it happened"),
        Some(e) => panic!("{which:?} {point:?}: unexpected answer {e:?}"),
        None => assert!(!done, "{which:?} {point:?}: done without telling the client"),
    }
    // The witness ends every PREPARE with COMMIT or ROLLBACK; a done op has the leader's
    // EUpdate and ECommitted, an undone one no durable leader update.
    let (phases, _, _) = journal_story(&s.c, 1);
    assert!(!phases.is_empty() && phases.len().is_multiple_of(2), "witness journal: {phases:?}");
    for pair in phases.chunks(2) {
        assert_eq!(pair[0], JPeerOp::Prepare, "witness journal: {phases:?}");
        assert!(matches!(pair[1], JPeerOp::Commit | JPeerOp::Rollback), "witness journal: {phases:?}");
    }
    assert_eq!(phases.last() == Some(&JPeerOp::Commit), done, "witness journal: {phases:?}");
    let (_, update, committed) = journal_story(&s.c, 0);
    if done {
        assert!(update && committed, "leader journal: EUpdate {update} ECommitted {committed}");
    } else {
        assert!(!update, "a durable leader update means the op committed");
    }
    // And the client's view from both ranks.
    for (rank, reqid) in [(0u32, 100u64), (1, 110)] {
        let r = submit(&mut s.c, &mut s.cl, rank, reqid, Op::Getattr { path: path("l"), mask: 0 });
        let want = if !done {
            Ok(Some(s.f))
        } else if which == Which::Unlink {
            Err(Errno::ENOENT)
        } else {
            Ok(s.h)
        };
        assert_eq!(r, want, "{which:?} {point:?}: getattr /l on rank {rank}");
        let r = submit(
            &mut s.c,
            &mut s.cl,
            rank,
            reqid + 1,
            Op::Getattr { path: FilePath::new(s.a, "f"), mask: 0 },
        );
        assert_eq!(r, Ok(Some(s.f)));
    }
}

#[test]
fn s6_6_unlink_remote_witness_crashes_before_its_prepare_is_safe() {
    run(Which::Unlink, Point::WitnessPrepareUnsafe);
}

#[test]
fn s6_6_unlink_remote_witness_crashes_after_its_ack() {
    run(Which::Unlink, Point::WitnessAfterAck);
}

#[test]
fn s6_6_unlink_remote_witness_crashes_before_finish() {
    run(Which::Unlink, Point::WitnessBeforeFinish);
}

#[test]
fn s6_6_unlink_remote_leader_crashes_before_its_update_is_safe() {
    run(Which::Unlink, Point::LeaderUpdateUnsafe);
}

#[test]
fn s6_6_unlink_remote_leader_crashes_after_its_update_is_safe() {
    run(Which::Unlink, Point::LeaderUpdateSafe);
}

#[test]
fn s6_6_rename_over_remote_witness_crashes_before_its_prepare_is_safe() {
    run(Which::RenameOver, Point::WitnessPrepareUnsafe);
}

#[test]
fn s6_6_rename_over_remote_witness_crashes_after_its_ack() {
    run(Which::RenameOver, Point::WitnessAfterAck);
}

#[test]
fn s6_6_rename_over_remote_witness_crashes_before_finish() {
    run(Which::RenameOver, Point::WitnessBeforeFinish);
}

#[test]
fn s6_6_rename_over_remote_leader_crashes_before_its_update_is_safe() {
    run(Which::RenameOver, Point::LeaderUpdateUnsafe);
}

#[test]
fn s6_6_rename_over_remote_leader_crashes_after_its_update_is_safe() {
    run(Which::RenameOver, Point::LeaderUpdateSafe);
}
