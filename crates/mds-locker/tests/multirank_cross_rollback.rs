//! A witness's rollback after its prepare was installed, across a restart of the witness
//! (mds spec §4.17: the witness applies its update once the PREPARE is safe and undoes it
//! with the rollback record if the leader aborts; §6.6: replay and resolve of peer updates).
//!
//! Rank 1 witnesses a rename out of `/t1/d`; its PREPARE is safe and installed, and a chmod
//! of `/t1/d` on rank 1 stacks on it and is journaled with statistics that include the
//! rename. The leader (rank 0) then fails before it journaled the rename, so resolve rolls
//! the witness back: the ROLLBACK entry carries the inverse counts. Replaying rank 1's journal
//! must give the same directory as before the restart: the chmod's entry holds the counts with
//! the rename, and only the ROLLBACK's counts undo it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use mds_locker::cluster::{Cluster, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::message::PeerOp;
use mds_locker::{FilePath, Ino, Linkage, LockerConfig, MdsMessage, Op};

mod multirank_scenario;

use multirank_scenario::{check, drive, ok_ino, path, safe_result, send};

/// FIFO transport that drops PREPACKs while `hold` is set: the leader never hears its
/// witness agree, so it never journals the rename.
#[derive(Debug, Default)]
struct DropPrepAck {
    queue: VecDeque<(u32, u32, MdsMessage)>,
    hold: Rc<Cell<bool>>,
}

impl Transport for DropPrepAck {
    fn send(&mut self, from: u32, to: u32, msg: MdsMessage) {
        let prep_ack = matches!(&msg, MdsMessage::Peer(p) if p.op == PeerOp::PrepAck);
        if !(prep_ack && self.hold.get()) {
            self.queue.push_back((from, to, msg));
        }
    }
    fn next(&mut self) -> Option<(u32, u32, MdsMessage)> {
        self.queue.pop_front()
    }
    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

type C = Cluster<DropPrepAck>;

/// What rank 1 knows of `/t1/d`: mode, the inode's dirstat and rstat file counts, its
/// dirfrag's fragstat file count, and the primary entries linked in the dirfrag.
fn dir_state(c: &C, d: Ino) -> (u32, u64, u64, u64, u64) {
    let cache = c.rank(1).cache();
    let id = cache.lookup_ino(d).unwrap();
    let n = cache.inode(id).unwrap();
    let f = n.dirfrags().values().next().copied().unwrap();
    let frag = cache.dirfrag(f).unwrap();
    let linked = frag
        .dentries()
        .values()
        .filter(|dn| cache.dentry(**dn).is_some_and(|x| !matches!(x.linkage(), Linkage::Null)))
        .count() as u64;
    (
        n.data().mode & 0o7777,
        n.data().dirstat.nfiles,
        n.data().rstat.rfiles,
        frag.fnode().fragstat.nfiles,
        linked,
    )
}

/// §4.17, §6.6: the rollback of an installed prepare survives the witness's restart.
#[test]
fn s4_17_rollback_of_an_installed_prepare_replays_to_the_same_directory() {
    let mut cl = CooperativeClients::new();
    let hold = Rc::new(Cell::new(false));
    let net = DropPrepAck { hold: hold.clone(), ..DropPrepAck::default() };
    let mut c: C = Cluster::with_transport(2, LockerConfig::default(), net);
    let t0 = ok_ino(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("t0"), mode: 0o755 });
    let t1 = ok_ino(&mut c, &mut cl, 0, 2, Op::Mkdir { path: path("t1"), mode: 0o755 });
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    let d = ok_ino(&mut c, &mut cl, 1, 3, Op::Mkdir { path: path("t1/d"), mode: 0o755 });
    ok_ino(&mut c, &mut cl, 1, 4, Op::Create { path: path("t1/d/b"), mode: 0o644, excl: true, file_mode: 1 });
    let before = dir_state(&c, d);
    assert_eq!((before.1, before.3, before.4), (1, 1, 1), "/t1/d holds b: {before:?}");

    // rename /t1/d/b -> /t0/n by client 3, led by rank 0; rank 1 prepares (and installs), its ack is lost.
    hold.set(true);
    send(&mut c, 0, 3, 10, Op::Rename { dest: FilePath::new(t0, "n"), src: FilePath::new(d, "b") });
    drive(&mut c, &mut cl);
    assert_eq!(c.rank(1).twophase_in_progress().1, 1, "rank 1 must have prepared the rename");
    let installed = dir_state(&c, d);
    assert_eq!((installed.1, installed.3), (0, 0), "the prepare is installed on rank 1: {installed:?}");

    // A chmod of /t1/d on rank 1 is journaled on top of the installed prepare.
    let chmod = Op::Setattr {
        path: FilePath { base: d, components: Vec::new() },
        attrs: mds_locker::SetAttr { mode: Some(0o700), ..mds_locker::SetAttr::default() },
    };
    send(&mut c, 1, 2, 12, chmod);
    let out = drive(&mut c, &mut cl);
    assert!(matches!(safe_result(&out, 12), Some(Ok(_))), "chmod: {:?}", safe_result(&out, 12));

    // The leader fails before journaling the rename, and the rename's client goes too (it
    // would re-send the rename): resolve rolls the witness back.
    hold.set(false);
    c.crash(0).unwrap();
    c.client_gone(3);
    check(&c);
    c.restart(0).unwrap();
    drive(&mut c, &mut cl);
    assert_eq!(c.rank(1).twophase_in_progress().1, 0, "the witness's update is resolved");
    let live = dir_state(&c, d);
    assert_eq!(live.0, 0o700, "the chmod stays: {live:?}");
    assert_eq!((live.1, live.2, live.3), (live.4, live.4, live.4), "counts agree: {live:?}");

    // Replaying rank 1's journal gives the same directory.
    c.crash(1).unwrap();
    c.restart(1).unwrap();
    drive(&mut c, &mut cl);
    let replayed = dir_state(&c, d);
    assert_eq!(replayed, live, "rank 1 after replay");
}
