//! The seed scenario of rbd §7: a VM (qemu, automatic policy) writes to an image while a cloud
//! controller (nova-compute) snapshots and resizes it. The requests reach the VM's handle, which
//! owns the lock and runs them; the VM keeps the lock; no write is lost; the snapshot holds
//! exactly the data written before it.

mod common;

use std::sync::{Arc, Mutex};

use common::{Env, OBJ, gid, guarded, pattern, settle};
use rbd_ops::{Image, LockMode, RbdError};

const BLOCK: u64 = 24 * 1024; // not a divisor of the object size: writes straddle objects

async fn read_all(img: &Image) -> Vec<u8> {
    img.read_at(0, img.size()).await.expect("read")
}

/// rbd §7.3 (steps 1–6), §5.6, §8 `SnapCreateViaLockOwner`: the VM owns the lock, nova's
/// snap_create is forwarded, the VM runs it and keeps the lock; the snapshot equals the image as
/// of a cut in the VM's write sequence, and later writes do not change it.
#[tokio::test(start_paused = true)]
async fn s7_seed_vm_writes_while_nova_snapshots() {
    guarded(async {
        let env = Env::new().await;
        let size = 8 * OBJ;
        env.create_default("vm-disk", size).await;
        let vm = env.open("vm-disk").await;
        let nova = env.open("vm-disk").await;

        // §7.1: the VM's first write takes the lock.
        vm.write_at(0, &pattern(1, 0, BLOCK as usize)).await.unwrap();
        assert_eq!(env.locker_gid(&vm).await, Some(gid(&vm)));
        let cookie_before = env.lock_info(&vm).await.lockers.keys().next().unwrap().cookie.clone();

        // The VM keeps writing while nova snapshots.
        let blocks = size / BLOCK;
        let done = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let vm = vm.clone();
            let done = done.clone();
            tokio::spawn(async move {
                for i in 1..blocks {
                    vm.write_at(i * BLOCK, &pattern(1, i, BLOCK as usize)).await.expect("vm write");
                    done.lock().unwrap().push(i);
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        tokio::task::yield_now().await;
        nova.snap_create("before-resize").await.expect("forwarded snap_create");
        writer.await.unwrap();

        // §7.3.6: no lock transfer took place; nova never owned it.
        assert_eq!(env.locker_gid(&vm).await, Some(gid(&vm)));
        assert_eq!(env.lock_info(&vm).await.lockers.keys().next().unwrap().cookie, cookie_before);
        assert!(vm.is_exclusive_lock_owner().await.unwrap());
        assert!(!nova.is_exclusive_lock_owner().await.unwrap());

        // The snapshot is a prefix of the VM's writes: blocks 0..k hold their data, the rest zero.
        let snap = env.open_snap("vm-disk", "before-resize").await;
        let snap_data = read_all(&snap).await;
        let mut k = 0;
        while k < blocks
            && snap_data[(k * BLOCK) as usize..((k + 1) * BLOCK) as usize]
                == pattern(1, k, BLOCK as usize)[..]
        {
            k += 1;
        }
        assert!(k >= 1, "the write before the snapshot is in it");
        eprintln!("snapshot cut after {k} of {blocks} blocks");
        for i in k..blocks {
            let b = &snap_data[(i * BLOCK) as usize..((i + 1) * BLOCK) as usize];
            assert!(b.iter().all(|&x| x == 0), "block {i} is in the snapshot but block {k} is not");
        }
        // No write lost at the head.
        let head = read_all(&nova).await;
        for i in 0..blocks {
            assert_eq!(
                &head[(i * BLOCK) as usize..((i + 1) * BLOCK) as usize],
                &pattern(1, i, BLOCK as usize)[..],
                "block {i}"
            );
        }

        // Later writes do not change the snapshot.
        vm.write_at(0, &vec![0xEE; (3 * OBJ) as usize]).await.unwrap();
        vm.discard(4 * OBJ, 2 * OBJ).await.unwrap();
        assert_eq!(read_all(&snap).await, snap_data);
        assert_eq!(vm.read_at(0, 4).await.unwrap(), vec![0xEE; 4]);
        assert!(vm.read_at(4 * OBJ, 2 * OBJ).await.unwrap().iter().all(|&b| b == 0));

        // nova sees the snapshot after the header update; a second create of the name is -EEXIST.
        assert_eq!(nova.info().await.unwrap().snaps.len(), 1);
        assert!(matches!(nova.snap_create("before-resize").await, Err(RbdError::Exists(_))));
        snap.close().await;
        vm.close().await;
        nova.close().await;
    })
    .await;
}

/// rbd §7.4, §8 `ResizeViaLockOwner`: nova's resize is forwarded; the VM trims on shrink, keeps
/// the lock, and nova sees the new size.
#[tokio::test(start_paused = true)]
async fn s7_4_resize_forwarded_to_owner() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 4 * OBJ).await;
        let vm = env.open("img").await;
        let nova = env.open("img").await;
        vm.write_at(3 * OBJ - 10, &[7u8; 1000]).await.unwrap();
        let progress = Arc::new(Mutex::new(Vec::new()));
        let p2 = progress.clone();
        nova.resize2(8 * OBJ, true, Some(Arc::new(move |o, t| p2.lock().unwrap().push((o, t)))))
            .await
            .unwrap();
        settle().await;
        assert_eq!(vm.size(), 8 * OBJ, "the owner updates its size at once");
        assert_eq!(nova.info().await.unwrap().size, 8 * OBJ);
        assert_eq!(env.locker_gid(&vm).await, Some(gid(&vm)));

        // Shrink through the owner into the written range, trimming objects and the tail.
        nova.resize2(
            3 * OBJ - 5,
            true,
            Some({
                let p = progress.clone();
                Arc::new(move |o, t| p.lock().unwrap().push((o, t)))
            }),
        )
        .await
        .unwrap();
        settle().await;
        assert!(!progress.lock().unwrap().is_empty(), "§3.2 ASYNC_PROGRESS reached the requester");
        assert_eq!(nova.info().await.unwrap().size, 3 * OBJ - 5);
        // Disallowed shrink.
        assert!(matches!(nova.resize2(OBJ, false, None).await, Err(RbdError::InvalidArgument(_))));
        // Grow again: the trimmed bytes read as zeros.
        nova.resize(4 * OBJ).await.unwrap();
        let tail = nova.read_at(3 * OBJ - 10, 1000).await.unwrap();
        assert_eq!(&tail[..5], &[7u8; 5]);
        assert!(tail[5..].iter().all(|&b| b == 0));
        assert_eq!(env.locker_gid(&vm).await, Some(gid(&vm)), "the VM still owns the lock");
        vm.close().await;
        nova.close().await;
    })
    .await;
}

/// rbd §2.8, §7.5 row 1: an owner in exclusive mode (lock_acquire, standard policy) still runs
/// forwarded ops, but refuses to hand the lock over: nova's write fails -EROFS.
#[tokio::test(start_paused = true)]
async fn s7_5_standard_policy_owner_runs_ops_but_keeps_lock() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 4 * OBJ).await;
        let nbd = env.open("img").await;
        let nova = env.open("img").await;
        nbd.lock_acquire(LockMode::Exclusive).await.unwrap();
        nbd.write_at(0, b"exclusive").await.unwrap();
        nova.snap_create("s").await.expect("forwarded to a standard-policy owner");
        nova.resize(6 * OBJ).await.expect("forwarded resize");
        assert!(
            matches!(nova.write_at(0, b"x").await, Err(RbdError::ReadOnly(_))),
            "§5.7: refused hand-over"
        );
        assert_eq!(env.locker_gid(&nbd).await, Some(gid(&nbd)));
        // §2.8: after lock_release the standard handle's own writes fail -EROFS.
        nbd.lock_release().await.unwrap();
        assert!(matches!(nbd.write_at(0, b"y").await, Err(RbdError::ReadOnly(_))));
        nova.write_at(0, b"nova").await.unwrap();
        assert_eq!(nbd.read_at(0, 9).await.unwrap(), b"novausive");
        nbd.close().await;
        nova.close().await;
    })
    .await;
}

/// rbd §5.7, §7.5 row 4, §8 `TestLibRBD.ExclusiveLock` (ping-pong): two automatic-policy writers
/// take the lock from each other; every write reads back from both handles.
#[tokio::test(start_paused = true)]
async fn s5_7_two_writers_ping_pong() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 4 * OBJ).await;
        let a = env.open("img").await;
        let b = env.open("img").await;
        for i in 0..10u64 {
            let (w, other, tag) = if i % 2 == 0 { (&a, &b, 1) } else { (&b, &a, 2) };
            let off = i * (OBJ / 3);
            let data = pattern(tag, i, 5000);
            assert_eq!(w.write_at(off, &data).await.unwrap(), 5000);
            assert_eq!(env.locker_gid(w).await, Some(gid(w)), "write {i}: the writer owns the lock");
            assert_eq!(w.read_at(off, 5000).await.unwrap(), data);
            assert_eq!(other.read_at(off, 5000).await.unwrap(), data);
        }
        for i in 0..10u64 {
            let tag = if i % 2 == 0 { 1 } else { 2 };
            assert_eq!(
                a.read_at(i * (OBJ / 3), 5000).await.unwrap(),
                pattern(tag, i, 5000),
                "write {i} kept"
            );
        }
        a.close().await;
        b.close().await;
    })
    .await;
}

/// rbd §2.1, §3.1, §7.5 row 7: a read-only handle has no watch and no lock: writes and ops fail
/// -EROFS, lock_acquire -EINVAL (no lock), and it is never an owner.
#[tokio::test(start_paused = true)]
async fn s2_1_read_only_open_cannot_write_or_own() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 2 * OBJ).await;
        let rw = env.open("img").await;
        rw.write_at(10, b"data").await.unwrap();
        let ro = env.open_with("img", rbd_ops::OpenOptions { read_only: true, ..Default::default() }).await;
        assert!(ro.watcher().is_none());
        assert_eq!(rw.watchers().await.unwrap().len(), 1, "§3.1 read-only handles do not watch");
        assert!(matches!(ro.write_at(0, b"x").await, Err(RbdError::ReadOnly(_))));
        assert!(matches!(ro.discard(0, 10).await, Err(RbdError::ReadOnly(_))));
        assert!(matches!(ro.snap_create("s").await, Err(RbdError::ReadOnly(_))));
        assert!(matches!(ro.resize(OBJ).await, Err(RbdError::ReadOnly(_))));
        assert!(matches!(ro.lock_acquire(LockMode::Exclusive).await, Err(RbdError::InvalidArgument(_))));
        assert!(matches!(ro.lock_break(LockMode::Exclusive, "x").await, Err(RbdError::ReadOnly(_))));
        assert!(!ro.is_exclusive_lock_owner().await.unwrap());
        assert_eq!(ro.read_at(10, 4).await.unwrap(), b"data");
        assert_eq!(env.locker_gid(&rw).await, Some(gid(&rw)));
        ro.close().await;
        rw.close().await;
    })
    .await;
}

/// rbd §5.6 step 9: the owner switches to the new snap context as part of the snapshot itself,
/// before writes are unblocked, not on a later refresh; so its very next write copies-on-write.
#[tokio::test(start_paused = true)]
async fn s5_6_owner_updates_snap_context_at_once() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 2 * OBJ).await;
        let vm = env.open("img").await;
        let nova = env.open("img").await;
        vm.write_at(0, b"one").await.unwrap();
        assert!(vm.snap_context().snaps.is_empty());
        nova.snap_create("s").await.unwrap();
        // No call on `vm` in between: the cached context was updated by the snapshot itself.
        let snapc = vm.snap_context();
        assert_eq!(snapc.snaps.len(), 1, "owner's in-memory snap context after the snapshot");
        assert_eq!(snapc.seq, snapc.snaps[0]);
        vm.write_at(0, b"two").await.unwrap();
        let snap = env.open_snap("img", "s").await;
        assert_eq!(snap.read_at(0, 3).await.unwrap(), b"one");
        vm.close().await;
        nova.close().await;
    })
    .await;
}
