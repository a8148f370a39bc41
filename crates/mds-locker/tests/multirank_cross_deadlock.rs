//! Cross-rank renames whose lock waits close a cycle (issue 6, `sim mds --cross-subtree`):
//! mds spec §4.4 (a wait on a lock ordered before held ones drops locks first: the
//! `rdlock_try_set` and Squid+ quiescelock rules), §5.1 step 2 (the snap rdlock chain is
//! taken without waiting), §5.2 RENAME (x srci.snaplock), §4.17 (remote xlocks).
//!
//! Two renames of directories that cross over, `X` into `Y` led by one rank and `Y` into
//! `X` led by the other, each rdlock their destination directory's snaplock in the path
//! traversal and then must xlock the other one's (their source inode's) snaplock. Holding
//! the traversal's rdlocks across that wait deadlocked both (simulator, 2 ranks seed 482,
//! 3 ranks seed 374). The rename now gives back its snap chains before it waits for its
//! inode locks; one rename wins and the other sees a directory moved into its own subtree.

use std::cell::Cell;
use std::rc::Rc;

use lock_sm::LockType;
use mds_locker::cluster::Cluster;
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{Errno, FilePath, Ino, LockerConfig, MdsMessage, Op, PeerOp};

mod multirank_scenario;

use multirank_scenario::{Hold, check, drive, no_twophase_left, run_op, safe_result, send};

/// While the transport's `hold` is set, the remote xlock requests of inode snaplocks are
/// kept back (the first of a rename's source-inode locks, §4.3 order), so both renames get
/// past their traversals and dentry locks before either asks for the other's inode. Each
/// is the last message its rank sends the other before waiting, so the per-pair order is
/// kept. The transport is quiet: `drive` settles with them parked.
fn snaplock_xlock(_: u32, _: u32, msg: &MdsMessage) -> bool {
    matches!(msg, MdsMessage::Peer(p)
        if p.op == PeerOp::Xlock && p.lock.as_ref().is_some_and(|l| l.ty == LockType::ISnap))
}

type C = Cluster<Hold>;

/// `/a` (rank 0) holds directory `X`, `/b` (pinned to rank 1) holds directory `Y`; each
/// rank has looked up the other's directory, so both renames find everything in cache.
/// Returns the cluster and `[a, b, X, Y]`.
fn setup(cl: &mut CooperativeClients, hold: Rc<Cell<bool>>) -> (C, [Ino; 4]) {
    let net = Hold::new(hold, snaplock_xlock, false).quiet();
    let mut c = Cluster::with_transport(2, LockerConfig::default(), net);
    let mkdir = |base: Ino, name: &str| Op::Mkdir { path: FilePath::new(base, name), mode: 0o755 };
    let a = run_op(&mut c, cl, 0, 1, mkdir(Ino::ROOT, "a")).unwrap().unwrap();
    let b = run_op(&mut c, cl, 0, 2, mkdir(Ino::ROOT, "b")).unwrap().unwrap();
    c.pin_empty_dir(b, 1).unwrap();
    check(&c);
    let x = run_op(&mut c, cl, 0, 3, mkdir(a, "X")).unwrap().unwrap();
    let y = run_op(&mut c, cl, 1, 4, mkdir(b, "Y")).unwrap().unwrap();
    assert_eq!(run_op(&mut c, cl, 1, 5, Op::Getattr { path: FilePath::new(a, "X"), mask: 0 }), Ok(Some(x)));
    assert_eq!(run_op(&mut c, cl, 0, 6, Op::Getattr { path: FilePath::new(b, "Y"), mask: 0 }), Ok(Some(y)));
    let auth = |c: &C, r: u32, i: Ino| {
        let cache = c.rank(r).cache();
        cache.lookup_ino(i).and_then(|n| cache.inode(n)).map(|n| n.is_auth())
    };
    assert_eq!(auth(&c, 0, x), Some(true), "X is auth on rank 0");
    assert_eq!(auth(&c, 1, y), Some(true), "Y is auth on rank 1");
    assert_eq!(auth(&c, 1, x), Some(false), "rank 1 replicates X");
    assert_eq!(auth(&c, 0, y), Some(false), "rank 0 replicates Y");
    (c, [a, b, x, y])
}

/// §4.4 / §5.2: `mv /a/X /b/Y/x` led by rank 1 (Y's dirfrag auth) and `mv /b/Y /a/X/y` led
/// by rank 0 (X's dirfrag auth), `first` sent first. Both run until they hold their dentry
/// locks and snap chains and ask for their source inode's locks; those requests cross.
/// Each must xlock the snaplock the other's destination chain rdlocks. Both get a safe
/// reply: exactly one moves its directory, the other is EINVAL (the move would put a
/// directory inside itself), and no request or two-phase state is left behind.
fn crossing_directory_renames(first: u32) {
    let mut cl = CooperativeClients::new();
    let hold = Rc::new(Cell::new(false));
    let (mut c, [a, b, x, y]) = setup(&mut cl, hold.clone());
    let x_into_y = Op::Rename { dest: FilePath::new(y, "x"), src: FilePath::new(a, "X") };
    let y_into_x = Op::Rename { dest: FilePath::new(x, "y"), src: FilePath::new(b, "Y") };
    let mut reqs = [(1u32, 20u64, 2u64, x_into_y), (0, 21, 3, y_into_x)];
    if first == 0 {
        reqs.reverse();
    }
    hold.set(true);
    for (rank, reqid, client, op) in reqs {
        send(&mut c, rank, client, reqid, op);
    }
    let mut out = drive(&mut c, &mut cl);
    assert_eq!(c.transport().parked.len(), 2, "both renames ask for their source inode's locks");
    for (rank, dest) in [(1u32, y), (0, x)] {
        // The rule: a rename waiting for its source inode's locks holds no snap rdlock of its
        // traversals (the old code held its destination's, which the other rename must
        // xlock: neither request was ever answered).
        let cache = c.rank(rank).cache();
        let snap = mds_locker::LockId::inode(cache.lookup_ino(dest).unwrap(), LockType::ISnap);
        let leader = c.rank(rank).requests().find(|m| m.peer_of().is_none()).unwrap();
        assert_eq!(leader.held().get(&snap), None, "rank {rank}: snap rdlock held across the wait");
    }
    hold.set(false);
    out.extend(drive(&mut c, &mut cl));
    let result =
        |reqid: u64| safe_result(&out, reqid).unwrap_or_else(|| panic!("rename {reqid} got no safe reply"));
    let (r20, r21) = (result(20), result(21));
    match (r20, r21) {
        (Ok(Some(i)), Err(Errno::EINVAL)) => assert_eq!(i, x),
        (Err(Errno::EINVAL), Ok(Some(i))) => assert_eq!(i, y),
        other => panic!("exactly one crossing rename must win, got {other:?}"),
    }
    no_twophase_left(&c);
    // The winner's new path resolves from both ranks.
    let (dir, name, moved) = if r20.is_ok() { (y, "x", x) } else { (x, "y", y) };
    for (k, r) in [0u32, 1].into_iter().enumerate() {
        let got = run_op(
            &mut c,
            &mut cl,
            r,
            30 + k as u64,
            Op::Getattr { path: FilePath::new(dir, name), mask: 0 },
        );
        assert_eq!(got, Ok(Some(moved)), "rank {r}");
    }
}

#[test]
fn s4_4_crossing_directory_renames_x_into_y_sent_first() {
    crossing_directory_renames(1);
}

#[test]
fn s4_4_crossing_directory_renames_y_into_x_sent_first() {
    crossing_directory_renames(0);
}
