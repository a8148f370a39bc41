//! Two ranks; `/proj` is made on rank 0 and pinned to rank 1 (its dirfrag is a subtree root
//! there, its inode stays on rank 0). Clients talk to rank 0:
//! 1. creates in `/proj` are forwarded to rank 1, the dirfrag's auth (mds §5.2, §4.17), and
//!    journaled there as EUpdates; rank 0's journal holds nothing for them;
//! 2. a stat wanting `Fs` on `/proj` makes rank 0 gather IFILE / INEST from rank 1 and fold
//!    the counts into `/proj`'s inode under the scatterlock writebehind (mds §4.13), journaled
//!    on rank 0 as an EUpdate `scatter_writebehind` before the reply;
//! 3. a rename from `/proj` (rank 1) to `/` (rank 0) runs on rank 0 with rank 1 as witness
//!    (mds §4.17 RENAMEPREP): rank 1 journals EPeerUpdate prepare then commit, rank 0 an
//!    EUpdate with peers then ECommitted (mds §6.1);
//! 4. the next `Fs` stat of `/proj` folds the rename's decrement in, once.
//!
//! Every cluster invariant is checked after each delivery round.

use lock_sm::caps::FILE_SHARED;
use mds_locker::cluster::Cluster;
use mds_locker::{FilePath, Ino, LockerConfig, Op};

use crate::support::mds::{
    dirfrag_auth, events_for, forwarded_to, inode_auth, path, run, updates_for, updates_named,
};

const ALICE: u64 = 1;
const BOB: u64 = 2;

fn dirstat(c: &Cluster, rank: u32, ino: Ino) -> (u64, u64) {
    let cache = c.rank(rank).cache();
    let d = cache.inode(cache.lookup_ino(ino).unwrap()).unwrap().data().dirstat;
    (d.nfiles, d.nsubdirs)
}

/// Steps 1–3 of the story; returns the cluster and /proj.
fn story_until_rename() -> (Cluster, Ino) {
    let mut c = Cluster::new(2, LockerConfig::default());
    let (r, _) = run(&mut c, 0, 1, ALICE, Op::Mkdir { path: path("proj"), mode: 0o755 });
    let proj = r.unwrap().unwrap();
    c.pin_empty_dir(proj, 1).unwrap();
    assert_eq!(dirfrag_auth(&c, 0, proj), Some(1));
    assert_eq!(dirfrag_auth(&c, 1, proj), Some(1));
    assert_eq!(inode_auth(&c, proj), Some(0));

    // 1. Creates through rank 0 are forwarded to rank 1 and journaled there.
    let mut files = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let reqid = 10 + i as u64;
        let op = Op::Create { path: path(&format!("proj/{name}")), mode: 0o644, excl: true, file_mode: 1 };
        let (r, out) = run(&mut c, 0, reqid, ALICE, op);
        let ino = r.unwrap().unwrap();
        assert_eq!(forwarded_to(&out, reqid), vec![1], "mds §5.2: {name} goes to the dirfrag's auth");
        assert_eq!(inode_auth(&c, ino), Some(1), "the new inode is rank 1's");
        assert_eq!(events_for(&c, 1, reqid), vec!["EUpdate(openc)".to_owned()], "request {reqid}");
        assert!(events_for(&c, 0, reqid).is_empty(), "rank 0 journals nothing for a forwarded create");
        files.push(ino);
    }
    let (r, out) = run(&mut c, 0, 13, ALICE, Op::Mkdir { path: path("proj/sub"), mode: 0o755 });
    r.unwrap().unwrap();
    assert_eq!(forwarded_to(&out, 13), vec![1]);
    // Rank 1's frag counts them; rank 0's inode does not know yet (mds §4.13: scattered).
    let cache1 = c.rank(1).cache();
    let frag = cache1.dirfrag(cache1.resolve_dirfrag(proj, 0).unwrap()).unwrap().fnode().fragstat;
    assert_eq!((frag.nfiles, frag.nsubdirs), (3, 1));
    assert_eq!(dirstat(&c, 0, proj), (0, 0));

    // 2. bob's stat wanting Fs gathers the stats into /proj's inode on rank 0.
    let wb_before = updates_named(&c, 0, "scatter_writebehind");
    let (r, _) = run(&mut c, 0, 20, BOB, Op::Getattr { path: path("proj"), mask: FILE_SHARED });
    assert_eq!(r, Ok(Some(proj)));
    assert!(
        updates_named(&c, 0, "scatter_writebehind") > wb_before,
        "mds §4.13 writebehind journaled on rank 0"
    );
    assert_eq!(dirstat(&c, 0, proj), (3, 1), "mds §4.13: the frag's counts folded into the inode");

    // 3. Rename /proj/a → /moved through rank 0: rank 1 witnesses.
    let op = Op::Rename { dest: path("moved"), src: FilePath::new(proj, "a") };
    let (r, _) = run(&mut c, 0, 30, ALICE, op);
    assert_eq!(r, Ok(Some(files[0])));
    let leader = events_for(&c, 0, 30);
    let witness = events_for(&c, 1, 30);
    assert_eq!(leader.len(), 2, "rank 0: {leader:?}");
    assert!(leader[0].starts_with("EUpdate(") && leader[0].ends_with(", peers)"), "mds §6.1: {leader:?}");
    assert_eq!(leader[1], "ECommitted", "mds §6.1: the leader's ECommitted ends it: {leader:?}");
    assert_eq!(witness.len(), 2, "rank 1: {witness:?}");
    assert!(witness[0].starts_with("EPeerUpdate(") && witness[0].ends_with(", prepare)"), "{witness:?}");
    assert!(witness[1].starts_with("EPeerUpdate(") && witness[1].ends_with(", commit)"), "{witness:?}");
    assert_eq!(updates_for(&c, 1, 30), 0, "the witness journals peer updates, not an EUpdate");
    for rank in [0, 1] {
        let (r, _) =
            run(&mut c, rank, 40 + u64::from(rank), BOB, Op::Getattr { path: path("moved"), mask: 0 });
        assert_eq!(r, Ok(Some(files[0])), "rank {rank} resolves /moved");
        let (r, _) =
            run(&mut c, rank, 42 + u64::from(rank), BOB, Op::Getattr { path: path("proj/a"), mask: 0 });
        assert_eq!(r, Err(mds_locker::Errno::ENOENT), "rank {rank}: /proj/a is gone");
    }
    (c, proj)
}

#[test]
fn mds_s5_2_forwarded_create_scatter_writebehind_and_witnessed_rename_on_two_ranks() {
    // Every step asserts as it goes.
    story_until_rename();
}

/// Step 4, a regression test: the leader of the witnessed rename used to decrement `/proj`'s
/// inode dirstat directly (3 -> 2) while rank 1's frag still held the unaccounted -1
/// (fragstat 2, accounted 3), so the next gather folded the -1 in again and `/proj` ended at
/// nfiles 1 with two files in it. Only a frag's auth changes its stats; the inode learns
/// them from the fold (§4.13).
#[test]
fn mds_s4_13_witnessed_rename_decrement_is_folded_once() {
    let (mut c, proj) = story_until_rename();
    // 4. The rename's decrement reaches /proj's inode on the next gather; / counts the new entry.
    let (r, _) = run(&mut c, 0, 50, BOB, Op::Getattr { path: path("proj"), mask: FILE_SHARED });
    assert_eq!(r, Ok(Some(proj)));
    assert_eq!(dirstat(&c, 0, proj), (2, 1), "mds §4.13: /proj lost one file");
    let (r, _) = run(
        &mut c,
        0,
        51,
        BOB,
        Op::Getattr { path: FilePath { base: Ino::ROOT, components: vec![] }, mask: FILE_SHARED },
    );
    assert_eq!(r, Ok(Some(Ino::ROOT)));
    assert_eq!(dirstat(&c, 0, Ino::ROOT), (1, 1), "/ holds /proj and /moved");
}
