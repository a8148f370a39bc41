//! A rename's witness that lacks the path to the renamed directory's new primary dentry
//! fetches it itself (mds spec §4.17 RENAMEPREP, §5.1 discover).
//!
//! `/t1` is pinned to rank 1 and `/t2` to rank 2, so `/t1`'s inode is auth on rank 0 and its
//! dirfrag on rank 1. Rank 2 owns the directory `/t2/d` and has restarted, so it has no
//! replica of `/t1`. Renaming `/t2/d` to `/t1/x` is led by rank 1, which owns the new dentry.
//! Rank 2 witnesses the rename, because the directory's inode stays auth there, and it must
//! end up with a replica of `/t1/x` as the inode's parent. Rank 1 cannot hand rank 2 the
//! path, because `/t1`'s inode is rank 0's. Before the fix, rank 1 sent the dirfrag and
//! dentry anyway, and rank 2 failed with "dirfrag replica before its inode" (simulator
//! `--cross-subtree`, 3 ranks, faults `all,torn,eio,rank-crash`, seeds 610 and 875). Now
//! rank 2 finds `/t1` and discovers `x`, as Ceph's witness traverses the destination path,
//! and only then prepares.

mod multirank_scenario;

use multirank_scenario::*;

/// The cluster of the module notes, just before the rename: (cluster, clients, /t1, /t2,
/// /t2/d).
fn setup() -> (C, CooperativeClients, Ino, Ino, Ino) {
    let mut cl = CooperativeClients::new();
    let mut c: C = Cluster::with_transport(3, LockerConfig::default(), Recording::default());
    let mkdir = |dir: Ino, name: &str| Op::Mkdir { path: FilePath::new(dir, name), mode: 0o755 };
    let t1 = ok_ino(&mut c, &mut cl, 0, 1, mkdir(Ino::ROOT, "t1"));
    let t2 = ok_ino(&mut c, &mut cl, 0, 2, mkdir(Ino::ROOT, "t2"));
    c.pin_empty_dir(t1, 1).unwrap();
    c.pin_empty_dir(t2, 2).unwrap();
    check(&c);
    let d = ok_ino(&mut c, &mut cl, 2, 3, mkdir(t2, "d"));
    c.crash(2).unwrap();
    c.restart(2).unwrap();
    drive(&mut c, &mut cl);
    (c, cl, t1, t2, d)
}

/// `mv /t2/d /t1/x`, led by rank 1.
fn rename_d_to_x(c: &mut C, cl: &mut CooperativeClients, t1: Ino, t2: Ino) -> Result<Option<Ino>, Errno> {
    run_op(c, cl, 1, 10, Op::Rename { dest: FilePath::new(t1, "x"), src: FilePath::new(t2, "d") })
}

/// §4.17, §5.1: the witness fetches the new parent dentry before it prepares; the rename
/// succeeds and the directory's auth links it under its new name.
#[test]
fn s4_17_witness_fetches_the_new_parent_it_lacks() {
    let (mut c, mut cl, t1, t2, d) = setup();
    assert!(
        c.rank(2).cache().lookup_ino(t1).is_none(),
        "rank 2 must start without /t1 for this test to mean anything"
    );
    let mark = c.transport().msg_log.len();

    let r = rename_d_to_x(&mut c, &mut cl, t1, t2);
    assert!(r.is_ok(), "rename /t2/d -> /t1/x: {r:?}");

    // Rank 2 asked for the path itself: a find_ino for /t1, then discovers.
    let asked: Vec<_> = c.transport().msg_log[mark..]
        .iter()
        .filter(|(from, _, _)| *from == 2)
        .map(|(_, to, k)| (*to, *k))
        .collect();
    assert!(asked.iter().any(|(_, k)| *k == "find_ino"), "rank 2 searched for /t1: {asked:?}");
    assert!(
        asked.iter().any(|(to, k)| *to == 1 && *k == "discover"),
        "rank 2 discovered x from rank 1: {asked:?}"
    );

    // The directory's auth links it under its new name.
    let cache = c.rank(2).cache();
    let t1_id = cache.lookup_ino(t1).expect("rank 2 has /t1 now");
    let x = cache.lookup_dentry(t1_id, "x").expect("rank 2 has the dentry /t1/x");
    let d_id = cache.lookup_ino(d).unwrap();
    assert!(cache.inode(d_id).unwrap().is_auth(), "the renamed directory stays auth on rank 2");
    assert_eq!(cache.inode(d_id).unwrap().parent(), Some(x), "its parent is /t1/x");
    assert!(matches!(cache.dentry(x).unwrap().linkage(), Linkage::Primary(i) if i == d_id));

    let ns = namespace(&c);
    assert!(ns.contains_key("t1/x") && !ns.contains_key("t2/d"), "namespace: {ns:?}");
    no_twophase_left(&c);
}

/// §4.17, §6.6: the same rename with the witness's path already in cache sends the
/// replicas ahead of the prep, as before: no search.
#[test]
fn s4_17_witness_with_the_path_gets_the_replicas_ahead_of_the_prep() {
    let (mut c, mut cl, t1, t2, _) = setup();
    // A lookup through /t1 on rank 2 gives it the path.
    let (r, _) = submit(&mut c, &mut cl, 2, 9, Op::Lookup { path: FilePath::new(t1, "none"), mask: 0 });
    assert_eq!(r, Err(Errno::ENOENT));
    assert!(c.rank(2).cache().lookup_ino(t1).is_some());
    let mark = c.transport().msg_log.len();

    let r = rename_d_to_x(&mut c, &mut cl, t1, t2);
    assert!(r.is_ok(), "{r:?}");
    let log = &c.transport().msg_log[mark..];
    assert!(!log.iter().any(|(from, _, k)| *from == 2 && *k == "find_ino"), "no search: {log:?}");
    let x = c.rank(2).cache().lookup_ino(t1).and_then(|t| c.rank(2).cache().lookup_dentry(t, "x"));
    assert!(x.is_some(), "rank 2 has /t1/x");
}
