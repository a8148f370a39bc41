//! A readdir on a directory's dirfrag auth after a cross-rank rename out of it (issue 6,
//! `sim mds --cross-subtree`, 3 ranks, seeds 206, 415, 434, 812, 957): mds spec §5.1
//! `rdlock_two_paths_xlock_destdn` (the source directory's filelock and nestlock are
//! wrlocked on the srcdn's dirfrag auth when that is another rank, REMOTE_WRLOCK) and §5.2
//! (readdir is served by the dirfrag auth under a filelock rdlock).
//!
//! `/t1/d`'s inode is auth on rank 1 and its dirfrag on rank 2; rank 0 leads
//! `rename /t0/n <- /t1/d/b`. With the wrlocks on rank 0's own copy, the leader dropped
//! them after replying, rank 1 (the inode's auth) took the filelock back to SYNC, and its
//! SYNC reached rank 2 before the leader's FINISH (another connection): a readdir on rank 2
//! listed `b` although the rename had been answered.

use std::cell::Cell;
use std::rc::Rc;

use mds_locker::cluster::Cluster;
use mds_locker::cooperative::CooperativeClients;
use mds_locker::effects::ReplyData;
use mds_locker::message::PeerOp;
use mds_locker::{FilePath, LockerConfig, MdsMessage, Op};

mod multirank_scenario;

use multirank_scenario::{Hold, check, drive, ok_ino_settled, path, safe_reply, send, settle};

/// FINISHes to rank 2 are parked while the transport's `hold` is set (and everything after
/// them on the same connection): the leader's FINISH arriving late at the dirfrag auth,
/// after messages of the other ranks.
fn finish_to_rank_2(_: u32, to: u32, msg: &MdsMessage) -> bool {
    to == 2 && matches!(msg, MdsMessage::Peer(p) if p.op == PeerOp::Finish)
}

type C = Cluster<Hold>;

/// §5.1 / §5.2: once the rename is answered, a readdir of the source directory on its
/// dirfrag auth does not list the moved entry, even when the leader's FINISH reaches that
/// rank after the directory inode's auth took the filelock back to SYNC.
#[test]
fn s5_1_readdir_on_srcdir_frag_auth_after_rename_omits_the_moved_entry() {
    let mut cl = CooperativeClients::new();
    let hold = Rc::new(Cell::new(false));
    let net = Hold::new(hold.clone(), finish_to_rank_2, true);
    let mut c: C = Cluster::with_transport(3, LockerConfig::default(), net);
    let mkdir = |p: &str| Op::Mkdir { path: path(p), mode: 0o755 };
    let t0 = ok_ino_settled(&mut c, &mut cl, 0, 1, mkdir("t0"));
    let t1 = ok_ino_settled(&mut c, &mut cl, 0, 2, mkdir("t1"));
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    // `/t1/d`'s inode is auth on rank 1 (which made it), its dirfrag on rank 2.
    let d = ok_ino_settled(&mut c, &mut cl, 1, 3, mkdir("t1/d"));
    c.pin_empty_dir(d, 2).unwrap();
    check(&c);
    let create = Op::Create { path: FilePath::new(d, "b"), mode: 0o644, excl: true, file_mode: 1 };
    let b = ok_ino_settled(&mut c, &mut cl, 2, 4, create);

    hold.set(true);
    let rename = Op::Rename { dest: FilePath::new(t0, "n"), src: FilePath::new(d, "b") };
    send(&mut c, 0, 1, 10, rename);
    let mut out = settle(&mut c, &mut cl);
    assert_eq!(safe_reply(&out, 10).map(|r| r.result), Some(Ok(Some(b))), "rename answered");
    assert!(!c.transport().parked.is_empty(), "the leader's FINISH to rank 2 must be parked");

    // A readdir on rank 2 (the dirfrag auth) after the rename's reply.
    send(&mut c, 2, 2, 11, Op::Readdir { path: FilePath { base: d, components: Vec::new() } });
    out.extend(settle(&mut c, &mut cl));
    hold.set(false);
    out.extend(drive(&mut c, &mut cl));
    let reply = safe_reply(&out, 11).expect("readdir answered");
    assert_eq!(reply.result, Ok(Some(d)));
    let ReplyData::Entries(entries) = &reply.data else {
        panic!("readdir without entries: {:?}", reply.data)
    };
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert!(names.is_empty(), "the moved entry is still listed: {names:?}");
}
