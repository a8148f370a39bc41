//! Cross-subtree renames that migrate a file while another rename needs the same inode
//! (issue 6, `sim mds --cross-subtree`, found by seed 118 on 2 ranks with no faults).
//!
//! mds spec §4.4 phase C (`auth_pin_freeze`), §4.17 AUTHPIN (freeze target, NOTIFY_BLOCKING),
//! §5.1 RENAME: the srcdn auth freezes the renamed inode when the leader pins it, before the
//! rename takes its locks, so no other request can pin the inode afterwards. Without that, a
//! second rename (here one that overwrites a remote link to the same file, so it xlocks the
//! file's linklock and snaplock and auth-pins it on its auth) could pin the inode after the
//! first rename xlocked it and then wait for those xlocks, while the first rename's
//! RENAMEPREP waited for that pin to go before freezing for the export: a deadlock.

use mds_locker::cluster::{Cluster, FifoTransport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{FilePath, Ino, LockerConfig, Op};

mod multirank_scenario;

use multirank_scenario::{check, drive, run_op, safe_result, send};

type C = Cluster<FifoTransport>;

fn at_root(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// `/t0` (rank 0) and `/t1` (rank 1, pinned there); files `/t1/b` and `/t1/c` on rank 1,
/// and `/t0/l`, a remote link on rank 0 to `/t1/b`'s inode.
fn setup(cl: &mut CooperativeClients) -> (C, [Ino; 2], [Ino; 2]) {
    let mut c = Cluster::new(2, LockerConfig::default());
    let t0 = run_op(&mut c, cl, 0, 1, Op::Mkdir { path: at_root("t0"), mode: 0o755 }).unwrap().unwrap();
    let t1 = run_op(&mut c, cl, 0, 2, Op::Mkdir { path: at_root("t1"), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    let create = |p| Op::Create { path: at_root(p), mode: 0o644, excl: true, file_mode: 1 };
    let b = run_op(&mut c, cl, 1, 3, create("t1/b")).unwrap().unwrap();
    let cc = run_op(&mut c, cl, 1, 4, create("t1/c")).unwrap().unwrap();
    let link = Op::Link { path: FilePath::new(t0, "l"), target: FilePath::new(t1, "b") };
    assert_eq!(run_op(&mut c, cl, 0, 5, link), Ok(Some(b)));
    (c, [t0, t1], [b, cc])
}

/// Both renames are led by rank 0 (the destdn auth) and need `/t1/b`'s inode on rank 1:
/// the first moves it (export), the second replaces the remote link `/t0/l` to it. Sent
/// together, in either order and to either rank, both finish and agree with the sequential
/// outcome; the invariants hold after every message.
fn concurrent_renames_of_one_inode(first_rank: u32, second_rank: u32, move_first: bool) {
    let mut cl = CooperativeClients::new();
    let (mut c, [t0, t1], [b, cc]) = setup(&mut cl);
    let mv = Op::Rename { dest: FilePath::new(t0, "b"), src: FilePath::new(t1, "b") };
    let over = Op::Rename { dest: FilePath::new(t0, "l"), src: FilePath::new(t1, "c") };
    let (first, second) = if move_first { (mv, over) } else { (over, mv) };
    send(&mut c, first_rank, 1, 10, first);
    send(&mut c, second_rank, 2, 11, second);
    let out = drive(&mut c, &mut cl);
    let (mv_req, over_req) = if move_first { (10, 11) } else { (11, 10) };
    assert_eq!(safe_result(&out, mv_req), Some(Ok(Some(b))), "the rename moving /t1/b");
    assert_eq!(safe_result(&out, over_req), Some(Ok(Some(cc))), "the rename over /t0/l");
    // The file moved to rank 0 with its primary link; nothing stays frozen or pinned.
    let r0 = c.rank(0).cache();
    let n = r0.lookup_ino(b).and_then(|i| r0.inode(i)).expect("rank 0 has the moved file");
    assert!(n.is_auth(), "the moved file is auth on the leader");
    for r in 0..2u32 {
        assert!(!c.rank(r).exporting(b), "rank {r} still exports the file");
        let cache = c.rank(r).cache();
        if let Some(n) = cache.lookup_ino(b).and_then(|i| cache.inode(i)) {
            assert_eq!(n.auth_pins(), 0, "rank {r}: the file is still auth-pinned");
        }
    }
    // A later request on the moved file is served (it would hang on a leaked freeze).
    let get = Op::Getattr { path: FilePath::new(t0, "b"), mask: 0 };
    assert_eq!(run_op(&mut c, &mut cl, 1, 12, get), Ok(Some(b)));
}

#[test]
fn s4_1_rename_export_vs_rename_over_remote_link_move_first() {
    concurrent_renames_of_one_inode(0, 0, true);
}

#[test]
fn s4_1_rename_export_vs_rename_over_remote_link_overwrite_first() {
    concurrent_renames_of_one_inode(0, 0, false);
}

#[test]
fn s4_1_rename_export_vs_rename_over_remote_link_forwarded() {
    concurrent_renames_of_one_inode(1, 1, true);
    concurrent_renames_of_one_inode(1, 0, false);
}
