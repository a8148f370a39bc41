//! A replica that missed an inode's migration learns the new auth from its next replica
//! bundle (mds spec §4.12, §5.2; rename-time export of the source inode).
//!
//! Rank 1 holds a replica of `/t0/f`, which rank 0 owns. Rank 0's replica list has lost rank
//! 1, as happens when rank 0 restarts and rejoin does not bring every replica back. The test
//! removes the entry directly to get that state. Renaming `/t0/f` to `/t2/x` is led by rank 2,
//! so the file migrates there, and only the ranks on rank 0's list get `AuthChanged`. Rank 1
//! still names rank 0 as the auth. When rank 2 later replicates the inode to rank 1, rank 1
//! used to keep its stale copy. It then refused rank 2's lock messages as coming from a rank
//! that is not the auth (simulator `--cross-subtree`, 3 ranks, faults
//! `all,torn,eio,rank-crash`, seed 1918). Now the bundle moves the replica to the new auth.

mod multirank_scenario;

use multirank_scenario::*;

/// §4.12, §5.2: the replica follows the inode to its new auth and keeps working.
#[test]
fn s4_12_replica_with_a_stale_auth_adopts_the_new_one() {
    let (mut c, mut cl, tops) = pinned_tops(3, &[2]);
    let (t0, t2) = (tops[0], tops[1]);
    let create = Op::Create { path: FilePath::new(t0, "f"), mode: 0o644, excl: true, file_mode: 1 };
    let f = ok_ino(&mut c, &mut cl, 0, 3, create);
    assert_eq!(
        run_op(&mut c, &mut cl, 1, 4, Op::Getattr { path: FilePath::new(t0, "f"), mask: 0 }),
        Ok(Some(f))
    );
    let on = |c: &C, r: u32| {
        c.rank(r).cache().lookup_ino(f).map(|i| c.rank(r).cache().auth_of(mds_locker::ObjRef::Inode(i)))
    };
    assert_eq!(on(&c, 1), Some(Some(0)), "rank 1 replicates f from rank 0");

    // Rank 0 forgets that rank 1 has a replica.
    let cache = c.rank_mut(0).cache_mut();
    let fi = cache.lookup_ino(f).unwrap();
    cache.remove_replica(mds_locker::ObjRef::Inode(fi), 1);

    let mv = Op::Rename { dest: FilePath::new(t2, "x"), src: FilePath::new(t0, "f") };
    assert!(run_op(&mut c, &mut cl, 2, 5, mv).is_ok());
    assert_eq!(on(&c, 2), Some(Some(2)), "f migrated to rank 2");
    assert_eq!(on(&c, 1), Some(Some(0)), "rank 1 missed the migration");

    // Rank 1 reads and changes the file at its new place: it needs rank 2's replica, and
    // then takes rank 2's lock messages.
    assert_eq!(
        run_op(&mut c, &mut cl, 1, 6, Op::Getattr { path: FilePath::new(t2, "x"), mask: 0 }),
        Ok(Some(f))
    );
    assert_eq!(on(&c, 1), Some(Some(2)), "rank 1 follows the new auth");
    let chmod = Op::Setattr {
        path: FilePath::new(t2, "x"),
        attrs: SetAttr { mode: Some(0o600), ..SetAttr::default() },
    };
    assert!(run_op(&mut c, &mut cl, 1, 7, chmod).is_ok());
    assert_eq!(
        run_op(&mut c, &mut cl, 0, 8, Op::Getattr { path: FilePath::new(t2, "x"), mask: 0 }),
        Ok(Some(f))
    );
    no_twophase_left(&c);
}
