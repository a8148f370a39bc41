//! Cluster setup across ranks: discover (replicas along a path) and pinning an empty
//! directory to another rank (mds spec §4.12, §5.1).

use lock_sm::{LockState, LockType};
use mds_locker::cluster::Cluster;
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{ClientRequest, Effect, Event, FilePath, Ino, LockerConfig, ObjKey, Op, ReqId};

fn mkdir(c: &mut Cluster, rank: u32, reqid: u64, path: &str) -> Ino {
    c.handle(rank, Event::SessionOpen { client: 1 }).unwrap();
    let op = Op::Mkdir { path: FilePath::new(Ino::ROOT, path), mode: 0o755 };
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client: 1, op })).unwrap();
    let mut out = Vec::new();
    let mut clients = CooperativeClients::new();
    for _ in 0..100 {
        c.settle().unwrap();
        let batch = c.take_outputs();
        let answers = clients.answers(&batch);
        out.extend(batch);
        if answers.is_empty() {
            break;
        }
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
        }
    }
    out.iter()
        .find_map(|o| match &o.effect {
            Effect::Reply(r) if r.safe => r.result.ok().flatten(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("mkdir {path} failed: {out:?}"))
}

#[test]
fn non_zero_ranks_start_with_a_root_replica_and_disjoint_ino_ranges() {
    let c = Cluster::new(3, LockerConfig::default());
    let r0 = c.rank(0).cache();
    let root0 = r0.inode(r0.root()).unwrap();
    assert!(root0.is_auth());
    assert_eq!(root0.replicas().iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    for r in 1..3 {
        let cache = c.rank(r).cache();
        let root = cache.inode(cache.root()).unwrap();
        assert!(!root.is_auth());
        assert_eq!(root.auth(), 0);
        // Each rank is auth for its own ~mdsN.
        assert!(cache.inode(cache.mdsdir()).unwrap().is_auth());
    }
    assert_ne!(mds_locker::cache::ino_range_start(0), mds_locker::cache::ino_range_start(1));
}

#[test]
fn discover_replicates_the_path_with_replica_lock_states() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let a = mkdir(&mut c, 0, 1, "a");
    let b = mkdir(&mut c, 0, 2, "a/b");
    c.replicate(&ObjKey::Inode(b), 1).unwrap();
    let r1 = c.rank(1).cache();
    let bi = r1.lookup_ino(b).expect("b replicated");
    assert!(!r1.inode(bi).unwrap().is_auth());
    let ai = r1.lookup_ino(a).expect("a replicated on the way");
    assert_eq!(r1.lookup_dentry(ai, "b"), r1.inode(bi).unwrap().parent());
    // The auth remembers rank 1 as a replica holder of every object it sent.
    let r0 = c.rank(0).cache();
    for ino in [a, b] {
        let i = r0.lookup_ino(ino).unwrap();
        assert!(r0.inode(i).unwrap().replicas().contains(&1));
    }
    // §1.1: each replica lock is in the `replica_state` of the auth's state: the new
    // directory's IAUTH is EXCL for its creator on the auth (§5.2 MKDIR), LOCK on a replica;
    // the root's, in SYNC, is SYNC; locallocks are LOCK.
    let auth_b = r0.inode(r0.lookup_ino(b).unwrap()).unwrap();
    assert_eq!(auth_b.lock(LockType::IAuth).unwrap().state(), LockState::Excl);
    let bl = r1.inode(bi).unwrap();
    assert_eq!(bl.lock(LockType::IAuth).unwrap().state(), LockState::Lock);
    assert_eq!(bl.lock(LockType::IVersion).unwrap().state(), LockState::Lock);
    let ar = r1.inode(ai).unwrap();
    assert_eq!(ar.lock(LockType::ISnap).unwrap().state(), LockState::Sync);
    assert!(!bl.lock(LockType::IAuth).unwrap().is_auth());
    // Discovering again sends nothing new.
    let before = c.delivered_total();
    c.replicate(&ObjKey::Inode(b), 1).unwrap();
    assert_eq!(c.delivered_total(), before);
}

#[test]
fn pinning_an_empty_dir_moves_its_dirfrag_auth() {
    let mut c = Cluster::new(2, LockerConfig::default());
    let a = mkdir(&mut c, 0, 1, "a");
    c.pin_empty_dir(a, 1).unwrap();
    let r1 = c.rank(1).cache();
    let f1 = r1.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r1.dirfrag(f1).unwrap().auth(), 1);
    assert!(r1.dirfrag(f1).unwrap().is_complete());
    let r0 = c.rank(0).cache();
    let f0 = r0.resolve_dirfrag(a, 0).unwrap();
    assert_eq!(r0.dirfrag(f0).unwrap().auth(), 1);
    // The inode itself stays with rank 0.
    assert!(r0.inode(r0.lookup_ino(a).unwrap()).unwrap().is_auth());
}
