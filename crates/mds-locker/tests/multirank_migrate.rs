//! Inode migration on a cross-rank rename (issue 6): the srcdn auth exports the renamed
//! inode to the leader (destdn auth) within the rename's two-phase update (§5.2 RENAME,
//! §4.17 RENAMEPREP / PREPACK / FINISH), so an inode stays auth where its primary dentry's
//! dirfrag is.
//!
//! Scenarios compare every reply and the final namespace with one rank (as
//! multirank_unlink.rs does). Ranks that name a directory by inode number look a path in it
//! up first: there is no discover by inode number yet.

mod multirank_scenario;

use multirank_scenario::*;

fn inode_auth(c: &C, ino: Ino) -> u32 {
    let auths: Vec<u32> = (0..c.len() as u32)
        .filter(|r| {
            let cache = c.rank(*r).cache();
            cache.lookup_ino(ino).and_then(|i| cache.inode(i)).is_some_and(|n| n.is_auth())
        })
        .collect();
    assert_eq!(auths.len(), 1, "inode {ino} has auths {auths:?}");
    auths[0]
}

/// The inode `p` names (walking the auth copies).
fn ino_at(c: &C, p: &str) -> Ino {
    let mut dir = Ino::ROOT;
    let parts: Vec<&str> = p.split('/').collect();
    for (k, name) in parts.iter().enumerate() {
        let r = frag_auth(c, dir);
        let cache = c.rank(r).cache();
        let d = cache.lookup_ino(dir).unwrap();
        let dn = cache.lookup_dentry(d, name).unwrap_or_else(|| panic!("no {p}"));
        let ino = match cache.dentry(dn).unwrap().linkage() {
            Linkage::Primary(i) => cache.inode(i).unwrap().ino(),
            Linkage::Remote { ino, .. } => ino,
            Linkage::Null => panic!("{p} is null"),
        };
        if k + 1 == parts.len() {
            return ino;
        }
        dir = ino;
    }
    unreachable!()
}

/// Every inode auth anywhere is auth where its primary dentry's dirfrag is.
fn auth_follows_dentry(c: &C) {
    for r in 0..c.len() as u32 {
        let cache = c.rank(r).cache();
        for i in cache.inode_ids() {
            let n = cache.inode(i).unwrap();
            if n.is_auth() && !n.is_dir() {
                assert_eq!(
                    cache.derived_inode_auth(i),
                    Some(r),
                    "rank {r}: inode {} auth off its dentry",
                    n.ino()
                );
            }
        }
    }
}

// ---- a renamed file moves to the leader -------------------------------------------------

#[test]
fn s5_2_rename_into_the_leaders_dir_migrates_the_inode_and_a_third_rank_finds_it() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        // Rank 2 names `a` by inode number below (no discover by inode number yet).
        S::Send(2, P::Getattr("a/f")),
        S::Send(2, rename("b/g", "a/f")),
        S::Send(0, P::Getattr("b/g")),
    ];
    let (_, c, _) = same_as_one_rank(3, &steps);
    assert_eq!(inode_auth(&c, ino_at(&c, "b/g")), 2);
    auth_follows_dentry(&c);
}

#[test]
fn s5_2_rename_sent_to_a_third_rank_migrates_the_inode_to_the_destination_rank() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(2, P::Getattr("a/f")),
        S::Send(0, rename("b/g", "a/f")),
        S::Send(1, P::Getattr("b/g")),
        S::Send(1, P::Setattr("b/g", SetAttr { mode: Some(0o600), ..SetAttr::default() })),
        S::Send(0, P::Unlink("b/g")),
    ];
    let (_, c, _) = same_as_one_rank(3, &steps);
    auth_follows_dentry(&c);
}

#[test]
fn s4_17_the_srcdn_auth_prepares_last_and_exports_in_its_prepack() {
    // Rename over a remote link to an inode of rank 1 from rank 0: rank 2 (the srcdn and
    // srci auth) must come after rank 1 (the replaced inode's auth).
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/t")),
        S::Send(0, link("l", "a/t")),
        S::Send(2, create("b/f")),
        S::Send(0, P::Getattr("b/f")),
    ];
    let (_, mut c, mut cl) = same_as_one_rank(3, &steps);
    let f = ino_at(&c, "b/f");
    assert_eq!(inode_auth(&c, f), 2);
    let mark = c.transport().peer_log.len();
    let b = ino_at(&c, "b");
    let (r, out) = submit(&mut c, &mut cl, 0, 50, Op::Rename { dest: path("l"), src: FilePath::new(b, "f") });
    assert_eq!(r, Ok(Some(f)));
    assert_eq!(unsafe_replies(&out, 50), 0, "§4.18: no early reply with journaled peers");
    assert_eq!(entries(&out, 2, 50), vec!["EPeerUpdate(prepare)", "EPeerUpdate(commit)"]);
    assert_eq!(entries(&out, 0, 50).first().map(String::as_str), Some("EUpdate(peers [1, 2])"));
    let ops = twophase_ops(&c, mark);
    let prep_to = |w: u32| ops.iter().position(|o| *o == (0, w, "rename_prep")).unwrap();
    let ack_from = |w: u32| ops.iter().position(|o| *o == (w, 0, "prep_ack")).unwrap();
    assert!(ack_from(1) < prep_to(2), "{ops:?}");
    assert!(prep_to(2) < ack_from(2), "{ops:?}");
    assert_eq!(inode_auth(&c, f), 0);
    auth_follows_dentry(&c);
    no_twophase_left(&c);
    // The inode works at its new auth.
    let (r, _) = submit(&mut c, &mut cl, 2, 51, Op::Getattr { path: path("l"), mask: 0 });
    assert_eq!(r, Ok(Some(f)));
}

#[test]
fn s4_14_caps_on_the_renamed_inode_are_recalled_and_dropped_by_the_old_auth() {
    let steps = [S::Mk("a", 1), S::Send(1, create("a/f"))];
    let (_, mut c, mut cl) = same_as_one_rank(2, &steps);
    let f = ino_at(&c, "a/f");
    let a = ino_at(&c, "a");
    {
        let cache = c.rank(1).cache();
        let n = cache.inode(cache.lookup_ino(f).unwrap()).unwrap();
        assert!(n.caps().values().any(|cap| cap.issued() != 0), "the creating client holds caps");
    }
    let (r, out) = submit(&mut c, &mut cl, 0, 60, Op::Rename { dest: path("g"), src: FilePath::new(a, "f") });
    assert_eq!(r, Ok(Some(f)));
    let revoked_to_nothing =
        out.iter().any(|o| o.rank == 1 && matches!(&o.effect, Effect::Cap(m) if m.ino == f && m.caps == 0));
    assert!(revoked_to_nothing, "the old auth recalls the caps before it prepares");
    let cache = c.rank(1).cache();
    let n = cache.inode(cache.lookup_ino(f).unwrap()).unwrap();
    assert!(!n.is_auth());
    assert!(n.caps().is_empty());
    assert!(c.rank(1).sessions().all(|s| !s.caps().contains(&cache.lookup_ino(f).unwrap())));
    assert_eq!(inode_auth(&c, f), 0);
    auth_follows_dentry(&c);
}

#[test]
fn s4_12_a_third_ranks_replica_learns_the_new_auth() {
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(0, P::Getattr("a/f")),
        S::Send(2, P::Getattr("a/f")),
    ];
    let (_, mut c, mut cl) = same_as_one_rank(3, &steps);
    let f = ino_at(&c, "a/f");
    let (a, b) = (ino_at(&c, "a"), ino_at(&c, "b"));
    let mark = c.transport().msg_log.len();
    let (r, _) = submit(
        &mut c,
        &mut cl,
        2,
        70,
        Op::Rename { dest: FilePath::new(b, "g"), src: FilePath::new(a, "f") },
    );
    assert_eq!(r, Ok(Some(f)));
    let log = &c.transport().msg_log[mark..];
    let told: Vec<_> = log.iter().filter(|m| m.2 == "auth_changed").collect();
    assert_eq!(told, vec![&(2, 0, "auth_changed"), &(2, 1, "auth_changed")]);
    // The new auth's lock messages to rank 0 after the commit come after it.
    let finish = log.iter().position(|m| *m == (2, 1, "finish")).unwrap();
    let told = log.iter().position(|m| *m == (2, 0, "auth_changed")).unwrap();
    assert!(finish < told, "{log:?}");
    assert!(
        log[finish..told].iter().all(|m| !(m.0 == 2 && m.1 == 0 && ["sync", "mix", "lock"].contains(&m.2)))
    );
    let cache = c.rank(0).cache();
    assert_eq!(cache.inode(cache.lookup_ino(f).unwrap()).unwrap().auth(), 2);
    // Rank 0 reads and changes it through the new auth.
    let (r, _) = submit(&mut c, &mut cl, 0, 71, Op::Getattr { path: path("b/g"), mask: 0 });
    assert_eq!(r, Ok(Some(f)));
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    let (r, _) = submit(&mut c, &mut cl, 0, 72, Op::Setattr { path: path("b/g"), attrs });
    assert!(r.is_ok());
    let (r, _) = submit(&mut c, &mut cl, 1, 73, Op::Setattr { path: path("b/g"), attrs });
    assert!(r.is_ok());
    auth_follows_dentry(&c);
    no_twophase_left(&c);
}

#[test]
fn s5_2_a_file_renamed_across_ranks_is_used_at_its_new_place_without_lookups_first() {
    // multirank_unlink.rs's scenario of the same name without "Rank 2 replicates g and m
    // from their auth before they move".
    let attrs = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    let steps = [
        S::Mk("a", 1),
        S::Mk("b", 2),
        S::Send(1, create("a/f")),
        S::Send(1, create("a/g")),
        S::Send(2, create("b/h")),
        S::Send(0, rename("f", "a/f")),
        S::Send(0, rename("g", "a/g")),
        S::Send(0, P::Setattr("f", attrs)),
        S::Send(2, P::Setattr("g", attrs)),
        S::Send(0, rename("f2", "f")),
        S::Send(0, rename("g", "f2")),
        S::Send(0, rename("g", "b/h")),
        S::Send(0, create("k")),
        S::Send(1, create("a/k")),
        S::Send(0, rename("k2", "a/k")),
        S::Send(0, rename("k2", "k")),
        S::Send(1, create("a/m")),
        S::Send(0, rename("m", "a/m")),
        S::Send(0, link("l", "m")),
        S::Send(2, link("b/l", "m")),
        S::Send(0, P::Unlink("m")),
        S::Send(0, P::Getattr("l")),
        S::Send(2, P::Unlink("b/l")),
        S::Send(0, P::Unlink("l")),
    ];
    for ranks in [2, 3] {
        let (seen, c, _) = same_as_one_rank(ranks, &steps);
        assert_eq!(seen.strays, vec![0, 0, 0, 0], "{ranks} ranks: {seen:?}");
        auth_follows_dentry(&c);
    }
}
