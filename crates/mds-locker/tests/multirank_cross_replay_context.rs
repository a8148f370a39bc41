//! A rank whose journal names another rank's directory replays it (mds spec §6.1 EMetaBlob
//! dir context, §6.6 replay).
//!
//! `/t1` is pinned to rank 1. Rank 1 leads `ln /t0/f /t1/l`: the new dentry is its own and
//! the target, `/t0/f`, is rank 0's. Rank 1's entry carries the target inode's new link
//! count under its primary dentry in `/t0`, a directory rank 1 only holds a replica of. Its
//! subtree map journals the ancestry of `/t1` only. So when rank 1 restarts, its replay could
//! not place `/t0` and the restart failed with "journal entry names a cache object that is
//! gone" (simulator `--cross-subtree`, 2 ranks, faults `all,torn,eio,rank-crash`, seed 1060;
//! 3 ranks, seed 2215). As Ceph's `add_dir_context` does, the entry now carries the path to
//! `/t0` as clean context, and replay creates what it lacks from it.

mod multirank_scenario;

use multirank_scenario::*;

/// §6.1, §6.6: the link leader restarts and replays its entry; the link is still there and
/// every rank resolves it.
#[test]
fn s6_6_leader_replays_an_entry_naming_another_ranks_directory() {
    let mut cl = CooperativeClients::new();
    let mut c: C = Cluster::with_transport(2, LockerConfig::default(), Recording::default());
    let t0 = submit(&mut c, &mut cl, 0, 1, Op::Mkdir { path: path("t0"), mode: 0o755 }).0.unwrap().unwrap();
    let t1 = submit(&mut c, &mut cl, 0, 2, Op::Mkdir { path: path("t1"), mode: 0o755 }).0.unwrap().unwrap();
    c.pin_empty_dir(t1, 1).unwrap();
    check(&c);
    let create = Op::Create { path: FilePath::new(t0, "f"), mode: 0o644, excl: true, file_mode: 1 };
    let f = submit(&mut c, &mut cl, 0, 3, create).0.unwrap().unwrap();

    let link = Op::Link { path: FilePath::new(t1, "l"), target: FilePath::new(t0, "f") };
    let (r, _) = submit(&mut c, &mut cl, 1, 4, link);
    assert!(r.is_ok(), "link: {r:?}");

    c.crash(1).unwrap();
    c.restart(1).expect("rank 1 replays its journal");
    drive(&mut c, &mut cl);
    check(&c);

    for (rank, reqid) in [(1u32, 5u64), (0, 6)] {
        let (r, _) =
            submit(&mut c, &mut cl, rank, reqid, Op::Getattr { path: FilePath::new(t1, "l"), mask: 0 });
        assert_eq!(r, Ok(Some(f)), "rank {rank} resolves /t1/l");
    }
    assert_eq!(auth_nlink(&c, f), 2, "f has both links");
    let ns = namespace(&c);
    assert_eq!((ns.get("t0/f"), ns.get("t1/l")), (Some(&2), Some(&2)), "namespace: {ns:?}");
}
