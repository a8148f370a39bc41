//! A witness's projections and a local request's projections on the same directory inode
//! (issue 6, `sim mds --cross-subtree`, seeds 219, 292, 428, 616, 835 on 2 ranks, 923 and
//! 949 on 3, 813 with faults): mds spec §4.17 (the witness journals EPeerUpdate PREPARE and
//! applies the update once it is safe), §6.2 (projections are popped oldest-first as their
//! journal entries turn safe, so they must belong to committing requests and install in
//! journal order).
//!
//! Rank 1 witnesses a rename out of `/t1/d` (a directory rank 1 made, so auth for its inode
//! and its dirfrag) and projects `/t1/d`'s statistics; a chmod of `/t1/d` on rank 1 projects
//! the same inode on top and turns safe before the leader's FINISH. The witness used to
//! install its projections only at FINISH, so the chmod, committing first, installed the
//! witness's projection as its own and left its own owned by a finished request.

use std::cell::Cell;
use std::rc::Rc;

use mds_locker::cluster::Cluster;
use mds_locker::cooperative::CooperativeClients;
use mds_locker::message::PeerOp;
use mds_locker::{FilePath, LockerConfig, MdsMessage, Op, ReqId};

mod multirank_scenario;

use multirank_scenario::{Hold, check, drive, ok_ino_settled, path, safe_result, send, settle};

/// PREPACKs are parked while the transport's `hold` is set, so a test can run local requests
/// on a witness between its PREPARE and the leader's FINISH.
fn prep_ack(_: u32, _: u32, msg: &MdsMessage) -> bool {
    matches!(msg, MdsMessage::Peer(p) if p.op == PeerOp::PrepAck)
}

type C = Cluster<Hold>;

fn create(p: &str) -> Op {
    Op::Create { path: path(p), mode: 0o644, excl: true, file_mode: 1 }
}

/// §4.17 / §6.2: a chmod of the source directory on the witness commits between the rename's
/// PREPARE and its FINISH; invariants hold after every step, and the directory ends with
/// the chmod and without the renamed file, on every count.
#[test]
fn witness_prepare_and_local_chmod_install_in_journal_order() {
    let mut cl = CooperativeClients::new();
    let hold = Rc::new(Cell::new(false));
    let net = Hold::new(hold.clone(), prep_ack, false);
    let mut c: C = Cluster::with_transport(2, LockerConfig::default(), net);
    let t0 = ok_ino_settled(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("t0"), mode: 0o755 });
    let t1 = ok_ino_settled(&mut c, &mut cl, 0, 2, Op::Mkdir { path: path("t1"), mode: 0o755 });
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    // `/t1/d` is made by rank 1: its inode and dirfrag are both auth there.
    let d = ok_ino_settled(&mut c, &mut cl, 1, 4, Op::Mkdir { path: path("t1/d"), mode: 0o755 });
    assert!(
        c.rank(1).cache().lookup_ino(d).and_then(|i| c.rank(1).cache().inode(i)).is_some_and(|n| n.is_auth())
    );
    let b = ok_ino_settled(&mut c, &mut cl, 1, 3, create("t1/d/b"));

    // rename /t1/d/b -> /t0/n, led by rank 0 (destdn auth); rank 1 witnesses (and exports b).
    // Its PREPACK is parked: the leader cannot FINISH yet.
    hold.set(true);
    let rename = Op::Rename { dest: FilePath::new(t0, "n"), src: FilePath::new(d, "b") };
    send(&mut c, 0, 1, 10, rename);
    let mut out = settle(&mut c, &mut cl);
    assert_eq!(c.rank(1).twophase_in_progress().1, 1, "rank 1 must have prepared the rename");
    assert_eq!(c.transport().parked.len(), 1, "the PREPACK must be parked");
    let r1 = c.rank(1).cache();
    let by: Vec<ReqId> = r1.inode(r1.lookup_ino(d).unwrap()).unwrap().projections().map(|p| p.by).collect();
    assert!(by.is_empty() || by == vec![ReqId(10)], "only the witness projects /t1/d: {by:?}");

    // A chmod of /t1/d on rank 1 projects the directory inode on top of the witness's projection
    // of it (its dirstat and rstat) and commits first.
    let chmod = Op::Setattr {
        path: FilePath { base: d, components: Vec::new() },
        attrs: mds_locker::SetAttr { mode: Some(0o700), ..mds_locker::SetAttr::default() },
    };
    send(&mut c, 1, 2, 12, chmod);
    out.extend(settle(&mut c, &mut cl));
    assert!(matches!(safe_result(&out, 12), Some(Ok(_))), "chmod: {:?}", safe_result(&out, 12));
    assert_eq!(c.rank(1).twophase_in_progress().1, 1, "the rename must still be prepared");

    hold.set(false);
    out.extend(drive(&mut c, &mut cl));
    assert_eq!(safe_result(&out, 10), Some(Ok(Some(b))), "rename");
    for r in 0..2 {
        let cache = c.rank(r).cache();
        for i in cache.inode_ids() {
            assert_eq!(
                cache.inode(i).unwrap().projections().count(),
                0,
                "rank {r}: inode {i:?} still projected"
            );
        }
    }
    let r1 = c.rank(1).cache();
    let d1 = r1.inode(r1.lookup_ino(d).unwrap()).unwrap();
    let frag = d1.dirfrags().values().next().and_then(|f| r1.dirfrag(*f)).unwrap().fnode();
    assert_eq!(d1.data().mode & 0o7777, 0o700, "the chmod of /t1/d stays");
    assert_eq!(frag.fragstat.nfiles, 0, "/t1/d is empty");
    assert_eq!((d1.data().dirstat.nfiles, d1.data().rstat.rfiles), (0, 0), "/t1/d is empty");
}
