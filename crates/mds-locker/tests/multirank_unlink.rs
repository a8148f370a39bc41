//! Unlink and rename-over of links whose inode is auth on another rank (issue 6: every
//! single-rank operation gives the same result on two and three ranks).
//!
//! Spec: §5.2 UNLINK (x in.linklock, in.snaplock; a primary link moves the inode to a stray
//! dentry) and RENAME ("remote inode auths get RENAMEPREP"); §4.17 LINKPREP / UNLINKPREP,
//! RENAMEPREP, PREPACK, FINISH, COMMITTED; §4.18 no early reply with journaled peers; §6.1
//! EUpdate (had_peers), EPeerUpdate, ECommitted.
//!
//! Each scenario runs the same client operations on one rank and on a multi-rank cluster
//! with pinned subtrees, and compares every reply (inode numbers mapped to "the n-th inode
//! created") and the final namespace: names, link counts, and the link counts of the inodes
//! left in stray directories.
//!
//! Known limit the scenarios step around: a rank resolves a directory named by inode number
//! only if it has it in cache (no discover by inode number), so such ranks look a path in it
//! up first. (A renamed file migrates to its new dentry's rank, see multirank_migrate.rs;
//! some scenarios below still look inodes up at their old place first, as they did before
//! that existed: multirank_migrate.rs runs one without.)

mod multirank_scenario;

use multirank_scenario::*;

#[test]
fn s4_17_unlink_of_a_remote_link_sends_unlinkprep_to_the_inode_auth() {
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, link("l", "a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, Op::Unlink { path: path("l") });
    assert_eq!(r, Ok(None));
    // §4.18: a journaled peer forbids the early reply.
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_ops(&c, mark),
        vec![(0, 1, "unlink_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(entries(&out, 0, 10), vec!["EUpdate(peers [1])", "ECommitted"]);
    assert_eq!(entries(&out, 1, 10), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    no_twophase_left(&c);
    // The inode survives with its primary link; its auth counts one link.
    let names = namespace(&c);
    assert_eq!(names.get("a/f"), Some(&1));
    assert!(!names.contains_key("l"));
}

#[test]
fn s5_2_unlink_of_a_remote_link_matches_one_rank_on_two_and_three_ranks() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, link("b/m", "a/f")),
        S::Send(0, P::Unlink("l")),
        S::Send(2, P::Unlink("b/m")),
        S::Send(1, P::Getattr("a/f")),
        S::Send(0, P::Unlink("l")),
    ];
    let (seen, _, _) = same_as_one_rank(2, &steps);
    assert_eq!(seen.names.get("a/f"), Some(&1));
    let (seen, _, _) = same_as_one_rank(3, &steps);
    assert_eq!(seen.names.get("a/f"), Some(&1));
    assert_eq!(seen.replies.last(), Some(&Err(Errno::ENOENT)));
}

#[test]
fn s5_2_unlink_of_the_last_remote_link_leaves_the_inode_in_a_stray_with_no_links() {
    // The primary link goes first (the inode moves to its auth's stray directory with one
    // link left), then the remote one on another rank: the inode's auth drops it to zero.
    let steps = [
        S::Mk("a", 1),
        S::Send(1, create("a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(1, P::Unlink("a/f")),
        S::Send(0, P::Getattr("l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.strays, vec![0]);
        assert!(seen.names.keys().all(|n| n == "a"));
    }
}

// ---- rename over a remote link to an inode auth elsewhere --------------------------------

#[test]
fn s5_2_rename_over_a_remote_link_makes_the_replaced_inodes_auth_a_witness() {
    let steps =
        [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, link("l", "a/f")), S::Send(0, create("h"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, op(&rename("l", "h"), &BTreeMap::new()));
    assert!(matches!(r, Ok(Some(_))));
    assert_eq!(unsafe_replies(&out, 10), 0);
    assert_eq!(
        twophase_ops(&c, mark),
        vec![(0, 1, "rename_prep"), (1, 0, "prep_ack"), (0, 1, "finish"), (1, 0, "committed")]
    );
    assert_eq!(entries(&out, 1, 10), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    let names = namespace(&c);
    assert_eq!((names.get("a/f"), names.get("l"), names.get("h")), (Some(&1), Some(&1), None));
}

#[test]
fn s5_2_rename_over_a_remote_link_matches_one_rank_on_two_and_three_ranks() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        // A rank resolves a directory named by inode number only once it has it in cache
        // (there is no discover by inode number here): rank 2 looks the path up first.
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, link("b/l", "a/f")),
        S::Send(0, link("l", "a/f")),
        S::Send(2, create("b/h")),
        // Same directory (rank 2 leads alone apart from f's auth).
        S::Send(2, rename("b/l", "b/h")),
        // Across directories: the source on rank 2, the destination and leader rank 0.
        S::Send(0, create("b/k")),
        S::Send(0, rename("l", "b/k")),
        S::Send(0, P::Getattr("a/f")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.names.get("a/f"), Some(&1));
    }
}

// ---- a file renamed across ranks, then used at its new place -----------------------------

#[test]
fn s5_2_a_file_renamed_across_ranks_can_be_unlinked_renamed_and_changed_at_its_new_place() {
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    // On two ranks `b` is an ordinary directory of rank 0; on three it is rank 2's.
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(1, create("a/g")),
        S::Send(2, create("b/h")),
        // Rank 2 replicates g and m from their auth before they move (see the module notes).
        S::Send(2, P::Getattr("a/g")),
        S::Send(0, rename("f", "a/f")),
        S::Send(0, rename("g", "a/g")),
        // setattr at the new place (forwarded to the inode's auth).
        S::Send(0, P::Setattr("f", attrs)),
        S::Send(2, P::Setattr("g", attrs)),
        // rename within the new directory, then onto the other renamed file (a primary link
        // whose inode came from another rank: it goes to a stray with no links).
        S::Send(0, rename("f2", "f")),
        S::Send(0, rename("g", "f2")),
        // a file of a third rank renamed over the renamed one.
        S::Send(0, rename("g", "b/h")),
        S::Send(0, create("k")),
        S::Send(1, create("a/k")),
        S::Send(0, rename("k2", "a/k")),
        S::Send(0, rename("k2", "k")),
        // links to, and unlink of, a renamed file.
        S::Send(1, create("a/m")),
        S::Send(2, P::Getattr("a/m")),
        S::Send(0, rename("m", "a/m")),
        S::Send(0, link("l", "m")),
        S::Send(2, link("b/l", "m")),
        S::Send(0, P::Unlink("m")),
        S::Send(0, P::Getattr("l")),
        S::Send(2, P::Unlink("b/l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, _, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(
            seen.strays,
            vec![0, 0, 0, 0],
            "{ranks} ranks: four inodes lost their last link: {seen:?}"
        );
    }
}

#[test]
fn s5_2_unlink_of_a_file_renamed_across_ranks_is_local_to_its_new_auth() {
    // The rename migrated the inode to rank 0 with its new primary dentry (see
    // multirank_migrate.rs), so the unlink needs no witness.
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f")), S::Send(0, rename("g", "a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let mark = c.transport().peer_log.len();
    let (r, out) = submit(&mut c, &mut cl, 0, 10, Op::Unlink { path: path("g") });
    assert_eq!(r, Ok(None));
    assert_eq!(twophase_ops(&c, mark), vec![]);
    assert!(entries(&out, 1, 10).is_empty());
    assert_eq!(strays(&c), vec![0]);
    assert!(namespace(&c).keys().all(|n| n == "a"));
}
