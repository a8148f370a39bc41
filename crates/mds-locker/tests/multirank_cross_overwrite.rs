//! Cross-subtree renames that overwrite a destination another rank holds a replica of
//! (issue 6, `sim mds --cross-subtree`): mds spec §4.17 RENAMEPREP on a witness, §5.2 RENAME
//! (the overwritten inode's primary link moves to the leader's stray directory), §2.4 / §6.2
//! one primary link per inode, on every rank's copy, committed and projected.
//!
//! The leader is the destdn auth; the srcdn auth witnesses (and exports the renamed file).
//! When the srcdn auth also holds replicas of the destination dentry and of the inode it
//! links, its RENAMEPREP projects the replica dentry onto the renamed inode. The overwritten
//! inode loses that primary link there; its new one (the leader's stray dentry) is not
//! replicated to this witness, so it must have no projected parent on it, not one that no
//! longer links it.

use mds_locker::cache::Linkage;
use mds_locker::cluster::{Cluster, FifoTransport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{FilePath, Ino, LockerConfig, Op};

mod multirank_scenario;

use multirank_scenario::{check, no_twophase_left, run_op};

type C = Cluster<FifoTransport>;

fn at_root(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// `/t0` (rank 0) holds file `c`, `/t1` (rank 1) holds file `b`; rank 1 has replicas of
/// `/t0/c` (dentry and inode) from a lookup through it. Returns the cluster, the two
/// directories and the two files.
fn setup(cl: &mut CooperativeClients) -> (C, [Ino; 2], [Ino; 2]) {
    let mut c = Cluster::new(2, LockerConfig::default());
    let t0 = run_op(&mut c, cl, 0, 1, Op::Mkdir { path: at_root("t0"), mode: 0o755 }).unwrap().unwrap();
    let t1 = run_op(&mut c, cl, 0, 2, Op::Mkdir { path: at_root("t1"), mode: 0o755 }).unwrap().unwrap();
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    let create = |p| Op::Create { path: at_root(p), mode: 0o644, excl: true, file_mode: 1 };
    let dst = run_op(&mut c, cl, 0, 3, create("t0/c")).unwrap().unwrap();
    let src = run_op(&mut c, cl, 1, 4, create("t1/b")).unwrap().unwrap();
    run_op(&mut c, cl, 1, 5, Op::Getattr { path: at_root("t0/c"), mask: 0 }).unwrap();
    let r1 = c.rank(1).cache();
    let replica = r1.lookup_ino(dst).and_then(|i| r1.inode(i));
    assert!(replica.is_some_and(|n| !n.is_auth() && n.parent().is_some()), "rank 1 must replicate /t0/c");
    (c, [t0, t1], [dst, src])
}

/// §4.17 / §5.2: `rename /t1/b /t0/c` led by rank 0 (the destdn auth), witnessed and
/// exported by rank 1, which replicates the overwritten `/t0/c`. Invariants hold after every
/// message; afterwards `/t0/c` is the renamed inode everywhere it is cached, and rank 1's
/// copy of the overwritten inode no longer claims `/t0/c` as its (projected) parent.
fn overwrite_replicated_destination(client_rank: u32) {
    let mut cl = CooperativeClients::new();
    let (mut c, [t0, t1], [dst, src]) = setup(&mut cl);
    let op = Op::Rename { dest: FilePath::new(t0, "c"), src: FilePath::new(t1, "b") };
    assert_eq!(run_op(&mut c, &mut cl, client_rank, 10, op), Ok(Some(src)));
    for r in 0..2 {
        let cache = c.rank(r).cache();
        let Some(dn) = cache.lookup_ino(t0).and_then(|d| cache.lookup_dentry(d, "c")) else { continue };
        let d = cache.dentry(dn).unwrap();
        let linked = |l: Linkage| match l {
            Linkage::Primary(i) => cache.inode(i).map(|n| n.ino()),
            _ => None,
        };
        assert_eq!(linked(d.linkage()), Some(src), "rank {r}: /t0/c links the renamed inode");
        assert_eq!(linked(d.projected_linkage()), Some(src), "rank {r}");
        if let Some(old) = cache.lookup_ino(dst).and_then(|i| cache.inode(i)) {
            assert_ne!(old.parent(), Some(dn), "rank {r}: overwritten inode still under /t0/c");
            assert_ne!(old.projected_parent(), Some(dn), "rank {r}");
        }
    }
    no_twophase_left(&c);
    // The renamed file is usable through its new name from either rank.
    assert_eq!(run_op(&mut c, &mut cl, 1, 11, Op::Getattr { path: at_root("t0/c"), mask: 0 }), Ok(Some(src)));
    assert_eq!(run_op(&mut c, &mut cl, 0, 12, Op::Getattr { path: at_root("t0/c"), mask: 0 }), Ok(Some(src)));
}

#[test]
fn s4_17_rename_over_replicated_destination_sent_to_leader() {
    overwrite_replicated_destination(0);
}

#[test]
fn s4_17_rename_over_replicated_destination_sent_to_srcdn_auth() {
    overwrite_replicated_destination(1);
}
