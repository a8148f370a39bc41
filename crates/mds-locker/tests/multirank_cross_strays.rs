//! Inodes in another rank's stray directory (mds spec §5.1 `find_ino_peers`, §5.2, §6.4
//! strays).
//!
//! Finding one: `/t0/f` is rank 0's and has a second, remote link `/t0/l`. Unlinking `/t0/f` moves the
//! inode into rank 0's stray directory, since the remote link still names it. Renaming `/t0/l`
//! to `/t1/x` is led by rank 1, which owns `/t1` and has never seen the inode, so it searches
//! the other ranks for it. Rank 0 used to answer "not under the root", and the rename failed
//! with ENOENT where one rank succeeds (simulator `--cross-subtree`, seeds 2/2856 and 3/1541).
//! Now rank 0 answers with a path from its `~mds0`, which it replicates to rank 1 first, and
//! rank 1 discovers its way down to the inode.
//!
//! Adding to a removed directory: a directory whose inode stayed auth on rank 1 when it was
//! renamed into rank 0's subtree is removed by rank 0, so it ends up in rank 0's stray
//! directory. A create in it sent to rank 1 by inode number must fail with ENOENT, as on one
//! rank, but rank 1 only recognised its own strays and created the file (simulator
//! `--cross-subtree`, seeds 2/2299, 3/1507, 3/1514).

mod multirank_scenario;

use multirank_scenario::*;

/// §5.1, §6.4: the rename of a remote link whose target is in a stray directory succeeds
/// across ranks as on one.
#[test]
fn s5_1_find_ino_answers_with_a_path_from_the_mdsdir() {
    let steps = [
        S::Mk("t0", 0),
        S::Mk("t1", 1),
        S::Send(0, create("t0/f")),
        S::Send(0, link("t0/l", "t0/f")),
        S::Send(0, P::Unlink("t0/f")),
        S::Send(1, rename("t1/x", "t0/l")),
    ];
    let (seen, c, _) = same_as_one_rank(2, &steps);
    assert!(seen.replies.iter().all(|r| r.is_ok()), "replies: {:?}", seen.replies);
    assert!(seen.names.contains_key("t1/x") && !seen.names.contains_key("t0/l"), "{:?}", seen.names);
    let asked: Vec<_> =
        c.transport().msg_log.iter().filter(|(from, _, k)| *from == 1 && *k == "find_ino").collect();
    assert!(!asked.is_empty(), "rank 1 had to search for the inode");
}

/// §5.2, §6.4: no new entry in a directory another rank moved into its stray directory.
#[test]
fn s6_4_no_create_in_a_directory_removed_into_another_ranks_stray() {
    let (mut c, mut cl, tops) = pinned_tops(2, &[1]);
    let (t0, t1) = (tops[0], tops[1]);
    let d = ok_ino(&mut c, &mut cl, 1, 3, Op::Mkdir { path: FilePath::new(t1, "d"), mode: 0o755 });
    let mv = Op::Rename { dest: FilePath::new(t0, "x"), src: FilePath::new(t1, "d") };
    assert!(run_op(&mut c, &mut cl, 0, 4, mv).is_ok());
    assert_eq!(run_op(&mut c, &mut cl, 0, 5, Op::Rmdir { path: FilePath::new(t0, "x") }), Ok(None));
    let cache = c.rank(1).cache();
    let d_id = cache.lookup_ino(d).unwrap();
    assert!(cache.inode(d_id).unwrap().is_auth(), "the removed directory is still auth on rank 1");
    let parent = cache.projected_parent_dir(d_id).map(|p| cache.inode(p).unwrap().ino());
    assert!(parent.is_some_and(|p| p.is_stray()), "its parent is rank 0's stray: {parent:?}");

    let create = Op::Create { path: FilePath::new(d, "f"), mode: 0o644, excl: true, file_mode: 1 };
    assert_eq!(run_op(&mut c, &mut cl, 1, 6, create), Err(Errno::ENOENT));
    let mkdir = Op::Mkdir { path: FilePath::new(d, "g"), mode: 0o755 };
    assert_eq!(run_op(&mut c, &mut cl, 1, 7, mkdir), Err(Errno::ENOENT));
    no_twophase_left(&c);
}
