//! Cross-subtree replies that must match one rank (issue 6, `sim mds --cross-subtree`, the
//! "first replies match the sequential model" class): a rename or link of a hard link whose
//! target inode the leader has never seen (mds spec §5.1 `path_traverse`: "remote link →
//! open the target inode").

mod multirank_scenario;

use multirank_scenario::{P, S, create, link, rename, same_as_one_rank};

/// §5.1 "remote link → open the target inode" (simulator seed 647 on 3 ranks): the leader
/// of `rename /t0/g /t2/h` (rank 0) replicates `/t2/h`, a hard link to `/t1/f`, whose inode
/// rank 0 has never seen. It must open the inode (here by find_ino) instead of taking the
/// link for nothing (ENOENT); the same goes for a link of it. Results match one rank.
#[test]
fn s5_1_rename_of_a_hard_link_opens_its_remote_target() {
    let steps = [
        S::Mk("t0", 0),
        S::Mk("t1", 1),
        S::Mk("t2", 2),
        S::Send(1, create("t1/f")),
        S::Send(2, link("t2/h", "t1/f")),
        S::Send(0, link("t0/k", "t2/h")),
        S::Send(0, rename("t0/g", "t2/h")),
        S::Send(0, P::Getattr("t0/g")),
    ];
    let (seen, _, _) = same_as_one_rank(3, &steps);
    assert!(seen.replies.iter().all(|r| r.is_ok()), "{:?}", seen.replies);
    assert_eq!(seen.names.get("t0/g"), Some(&3));
}
