//! A rank's journal device fails in each way the simulator injects (issue 9): a crash in the
//! middle of a flush that loses, keeps or tears the unsynced bytes, EIO on a write or a sync,
//! and a corrupt entry. Whatever happens, every reply the client was told is safe survives
//! the restart (mds §4.18, §6.3, §6.6), every unsafe request runs exactly once, and a corrupt
//! journal is refused rather than cut (mds §6.4).

use mds_journal::{CrashMode, LogEvent};
use mds_locker::cluster::{Cluster, ClusterError, Transport};
use mds_locker::invariants::check_cluster;
use mds_locker::rank_journal::{DeviceFault, RankJournalError};
use mds_locker::{ClientRequest, Effect, Errno, Event, FilePath, Ino, LockerConfig, Op, ReqId};

mod multirank_support;
use multirank_support::{drive, open_session, safe_result};

const CLIENT: u64 = 2;

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

fn send(c: &mut Cluster, rank: u32, reqid: u64, op: Op) {
    open_session(c, rank, CLIENT);
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client: CLIENT, op })).unwrap();
}

fn mkdir(name: &str) -> Op {
    Op::Mkdir { path: path(name), mode: 0o755 }
}

fn create(name: &str) -> Op {
    Op::Create { path: path(name), mode: 0o644, excl: true, file_mode: 1 }
}

/// EUpdates journaled (durably) for a client request id.
fn updates_for(c: &Cluster, rank: u32, reqid: u64) -> usize {
    c.journal_events(rank)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, LogEvent::Update(u) if u.reqid.is_some_and(|r| r.tid == reqid)))
        .count()
}

fn getattr(c: &mut Cluster, rank: u32, reqid: u64, p: &str) -> Result<Option<Ino>, Errno> {
    send(c, rank, reqid, Op::Getattr { path: path(p), mask: 0 });
    let out = drive(c, true);
    safe_result(&out, reqid).unwrap_or_else(|| panic!("getattr {p} unanswered"))
}

/// Two ranks, `/a` pinned to rank 1, three changes on rank 1 answered safe (returned with
/// their names and results), and two more early-replied whose journal entries are unsafe.
struct Setup {
    c: Cluster,
    safe: Vec<(u64, &'static str, Option<Ino>)>,
    unsafe_reqs: Vec<(u64, &'static str)>,
}

fn setup() -> Setup {
    let mut c = Cluster::new(2, LockerConfig::default());
    send(&mut c, 0, 1, mkdir("a"));
    let out = drive(&mut c, true);
    let a = safe_result(&out, 1).unwrap().unwrap().unwrap();
    c.pin_empty_dir(a, 1).unwrap();
    let mut safe = Vec::new();
    for (reqid, name, op) in
        [(10, "a/s1", mkdir("a/s1")), (11, "a/s2", create("a/s2")), (12, "a/s3", mkdir("a/s3"))]
    {
        send(&mut c, 1, reqid, op);
        let out = drive(&mut c, true);
        let got = safe_result(&out, reqid).unwrap_or_else(|| panic!("{name} not safe"));
        safe.push((reqid, name, got.unwrap()));
    }
    let unsafe_reqs = vec![(20, "a/u1"), (21, "a/u2")];
    send(&mut c, 1, 20, mkdir("a/u1"));
    send(&mut c, 1, 21, create("a/u2"));
    let out = drive(&mut c, false);
    for (reqid, _) in &unsafe_reqs {
        assert!(safe_result(&out, *reqid).is_none());
        assert!(
            out.iter().any(|o| matches!(&o.effect, Effect::Reply(r) if !r.safe && r.reqid == ReqId(*reqid)))
        );
    }
    assert_eq!(c.unsafe_entries(1), 2);
    Setup { c, safe, unsafe_reqs }
}

/// After the restart: every safe reply's object is there with the same result, seen from both
/// ranks; every unsafe request ran exactly once and is visible; the cluster is consistent.
fn check_after_restart(s: &mut Setup) {
    let out = drive(&mut s.c, true);
    for (reqid, _) in &s.unsafe_reqs {
        assert!(safe_result(&out, *reqid).is_some_and(|r| r.is_ok()), "unsafe request {reqid} not answered");
        assert_eq!(updates_for(&s.c, 1, *reqid), 1, "request {reqid} must have run exactly once");
    }
    let mut q = 100;
    for (reqid, name, ino) in s.safe.clone() {
        assert_eq!(updates_for(&s.c, 1, reqid), 1, "safe request {reqid} lost or rerun");
        for rank in [0, 1] {
            q += 1;
            assert_eq!(getattr(&mut s.c, rank, q, name), Ok(ino), "{name} on rank {rank}");
        }
    }
    for (_, name) in s.unsafe_reqs.clone() {
        q += 1;
        assert!(getattr(&mut s.c, 0, q, name).is_ok(), "{name}");
    }
    assert_eq!(s.c.transport().in_flight(), 0);
    if let Err(v) = check_cluster(s.c.lockers(), 0) {
        panic!("invariants violated after the restart: {v:#?}");
    }
}

#[test]
fn mds_s6_6_crash_mid_flush_losing_the_unsynced_bytes() {
    let mut s = setup();
    let loss = s.c.crash_during_flush(1, CrashMode::LoseUnsynced).unwrap();
    assert_eq!(loss.unsynced_entries, 2);
    assert_eq!(loss.kept_bytes, 0);
    assert!(s.c.is_down(1));
    let report = s.c.restart(1).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.resent, 2);
    check_after_restart(&mut s);
}

#[test]
fn mds_s6_4_crash_mid_flush_leaves_a_torn_tail_that_replay_truncates() {
    let mut s = setup();
    let bytes = s.c.journal_flush_bytes(1);
    let durable_end = s.c.rank_journal(1).unwrap().durable_end();
    // The first entry reaches the device whole, the second loses its last bytes.
    let loss = s.c.crash_during_flush(1, CrashMode::TornPrefix { bytes: bytes - 5 }).unwrap();
    assert_eq!(loss.kept_bytes, bytes - 5);
    let report = s.c.restart(1).unwrap();
    let torn = report.torn_tail.clone().expect("the torn tail is reported");
    assert!(torn.at > durable_end, "the cut is after the first, whole entry: {torn:?}");
    assert_eq!(torn.end, durable_end + bytes - 5);
    assert!(s.c.rank_journal(1).unwrap().header().write_pos > torn.at, "new entries follow the cut");
    // The whole first entry was replayed: its re-send is answered from the completed table.
    assert_eq!(updates_for(&s.c, 1, 20), 1);
    assert_eq!(report.resent, 2);
    check_after_restart(&mut s);
}

#[test]
fn mds_s6_6_crash_mid_flush_keeping_the_unsynced_bytes() {
    let mut s = setup();
    let loss = s.c.crash_during_flush(1, CrashMode::KeepUnsynced).unwrap();
    assert_eq!(loss.kept_bytes, loss.unsynced_bytes);
    let report = s.c.restart(1).unwrap();
    assert_eq!(report.torn_tail, None);
    // Durable though never acknowledged: replayed, and the re-sends do not run them again.
    assert_eq!(updates_for(&s.c, 1, 20), 1);
    assert_eq!(updates_for(&s.c, 1, 21), 1);
    check_after_restart(&mut s);
}

fn eio_then_respawn(fault: DeviceFault) {
    let mut s = setup();
    s.c.arm_journal_fault(1, fault).unwrap();
    s.c.make_safe(1).unwrap();
    let failure = s.c.journal_failure(1).expect("the journal failed").to_string();
    assert!(failure.contains("EIO"), "{failure}");
    let out = s.c.take_outputs();
    for (reqid, _) in &s.unsafe_reqs {
        assert!(safe_result(&out, *reqid).is_none(), "request {reqid} acknowledged after EIO");
    }
    // The failed journal refuses new entries and never acknowledges them either.
    send(&mut s.c, 1, 30, mkdir("a/late"));
    let out = drive(&mut s.c, true);
    assert!(safe_result(&out, 30).is_none());
    assert!(s.c.rank_journal(1).unwrap().refused() > 0);
    assert!(s.c.journal_events(1).unwrap().iter().all(
        |e| !matches!(e, LogEvent::Update(u) if u.reqid.is_some_and(|r| [20, 21, 30].contains(&r.tid)))
    ));
    // The rank respawns through the normal path.
    s.c.crash(1).unwrap();
    assert_eq!(s.c.journal_failure(1), None);
    let report = s.c.restart(1).unwrap();
    assert_eq!(report.resent, 3);
    assert_eq!(s.c.rank_journal(1).unwrap().failure(), None);
    s.unsafe_reqs.push((30, "a/late"));
    check_after_restart(&mut s);
}

#[test]
fn mds_s6_3_eio_on_journal_write_fails_the_rank_and_loses_nothing_safe() {
    eio_then_respawn(DeviceFault::WriteEio);
}

#[test]
fn mds_s6_3_eio_on_journal_sync_fails_the_rank_and_loses_nothing_safe() {
    eio_then_respawn(DeviceFault::SyncEio);
}

#[test]
fn mds_s6_4_corrupt_entry_refuses_the_restart_with_its_offset() {
    let mut s = setup();
    let first = s.c.rank_journal(1).unwrap().header().expire_pos;
    assert!(s.c.damage_journal(1, first + 20), "a byte of rank 1's first entry");
    s.c.crash(1).unwrap();
    match s.c.restart(1) {
        Err(ClusterError::Journal(RankJournalError::Corrupt { rank: 1, offset, .. })) => {
            assert_eq!(offset, first)
        }
        other => panic!("a corrupt journal must not replay: {other:?}"),
    }
    assert!(s.c.is_down(1), "the rank stays down");
}
