//! rbd §7: a VM ("qemu", automatic policy) writes its disk while the cloud controller
//! ("nova-compute") snapshots and resizes it. Both maintenance ops are forwarded to qemu, which
//! owns the exclusive lock and runs them itself (§5.1, §5.6, §3.3); qemu keeps the lock
//! throughout (§7.3.6); the snapshot holds a prefix of qemu's writes. Then nova-compute writes
//! and the lock moves to it cooperatively (§3.5, §2.9), and back on qemu's next write (§7.5
//! row 4). What is checked is observed from outside: the owner from the cls lock on the header
//! (§6), who sent which notify from a third client's watch (§3.1), the bytes from reads.

use std::sync::{Arc, Mutex};

use rbd_exclusive_lock::notify::NotifyOp;
use rbd_ops::Image;

use crate::support::rbd::{Env, OBJ, cookie, gid, guarded, pattern, settle};

const BLOCK: u64 = 24 * 1024; // not a divisor of the object size: writes straddle objects
const SIZE: u64 = 8 * OBJ;
const BLOCKS: u64 = SIZE / BLOCK;

fn block(data: &[u8], i: u64) -> &[u8] {
    &data[(i * BLOCK) as usize..((i + 1) * BLOCK) as usize]
}

async fn read_all(img: &Image) -> Vec<u8> {
    img.read_at(0, img.size()).await.expect("read")
}

#[tokio::test(start_paused = true)]
async fn rbd_s7_seed_story_forwarded_snapshot_and_resize_then_cooperative_handover() {
    guarded(async {
        let env = Env::new(7);
        env.create("vm-disk", SIZE).await;
        let qemu = env.open("vm-disk").await;
        env.observe(&qemu).await;

        // §7.1: qemu's first write takes the lock; ACQUIRED_LOCK comes from qemu (§3.2 op 0).
        qemu.write_at(0, &pattern(1, 0, BLOCK as usize)).await.unwrap();
        settle().await;
        let qemu_lock = (gid(&qemu), cookie(&qemu));
        assert_eq!(env.locker(&qemu).await, Some(qemu_lock.clone()));
        assert!(qemu_lock.1.starts_with("auto "), "rbd §10 fact 3: {}", qemu_lock.1);
        assert!(env.take_seen().contains(&(gid(&qemu), NotifyOp::AcquiredLock)));

        // §7.2: nova-compute opens the image; it watches but takes no lock.
        let nova = env.open("vm-disk").await;
        assert_eq!(nova.watchers().await.unwrap().len(), 3, "qemu, nova-compute and the observer");
        assert_eq!(env.locker(&nova).await, Some(qemu_lock.clone()));

        // §7.3: qemu keeps writing while nova-compute snapshots.
        let done = Arc::new(Mutex::new(0u64));
        let writer = {
            let (qemu, done) = (qemu.clone(), done.clone());
            tokio::spawn(async move {
                for i in 1..BLOCKS {
                    qemu.write_at(i * BLOCK, &pattern(1, i, BLOCK as usize)).await.expect("qemu write");
                    *done.lock().unwrap() = i;
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = *done.lock().unwrap();
        nova.snap_create("before-resize").await.expect("§7.3.5: the forwarded snap_create returns 0");
        let at_completion = *done.lock().unwrap();
        writer.await.unwrap();
        settle().await;

        // §7.3.3–4: nova-compute sent SNAP_CREATE, qemu ran it (QUIESCE, ASYNC_COMPLETE,
        // HEADER_UPDATE all from qemu), and nobody else did.
        let seen = env.take_seen();
        let from = |op: NotifyOp| seen.iter().filter(|(_, o)| *o == op).map(|(g, _)| *g).collect::<Vec<_>>();
        assert_eq!(from(NotifyOp::SnapCreate), vec![gid(&nova)], "{seen:?}");
        assert_eq!(from(NotifyOp::AsyncComplete), vec![gid(&qemu)], "{seen:?}");
        assert!(from(NotifyOp::Quiesce).iter().all(|g| *g == gid(&qemu)), "§3.7: {seen:?}");
        assert!(from(NotifyOp::HeaderUpdate).contains(&gid(&qemu)), "§5.6 / §3.6: {seen:?}");
        assert!(from(NotifyOp::RequestLock).is_empty(), "§7.3.6 no lock transfer: {seen:?}");
        assert!(from(NotifyOp::ReleasedLock).is_empty(), "§7.3.6 no lock transfer: {seen:?}");
        // §7.3.6: same owner, same cookie; nova-compute never owned it.
        assert_eq!(env.locker(&qemu).await, Some(qemu_lock.clone()));
        assert!(qemu.is_exclusive_lock_owner().await.unwrap());
        assert!(!nova.is_exclusive_lock_owner().await.unwrap());

        // The snapshot is a cut of qemu's write sequence: blocks 0..k, then zeros, with k
        // between what had completed when nova asked and when its call returned (+1 for the
        // write in flight at the cut).
        let snap = env.open_snap("vm-disk", "before-resize").await;
        let snap_data = read_all(&snap).await;
        let k = (0..BLOCKS)
            .take_while(|&i| block(&snap_data, i) == &pattern(1, i, BLOCK as usize)[..])
            .count() as u64;
        assert!(
            k > before && k <= at_completion + 1,
            "cut after {k} blocks, before={before} at={at_completion}"
        );
        for i in k..BLOCKS {
            assert!(block(&snap_data, i).iter().all(|&b| b == 0), "block {i} in the snapshot, block {k} not");
        }
        let head = read_all(&nova).await;
        for i in 0..BLOCKS {
            assert_eq!(block(&head, i), &pattern(1, i, BLOCK as usize)[..], "no write lost: block {i}");
        }

        // §7.4: nova-compute's resize is forwarded as RESIZE and run by qemu, which updates its
        // size at once and keeps the lock; the snapshot keeps its old size and contents.
        nova.resize(2 * SIZE).await.expect("forwarded resize");
        settle().await;
        let seen = env.take_seen();
        assert!(seen.contains(&(gid(&nova), NotifyOp::Resize)), "{seen:?}");
        assert!(seen.contains(&(gid(&qemu), NotifyOp::AsyncComplete)), "{seen:?}");
        assert_eq!(qemu.size(), 2 * SIZE, "§7.4: the owner's in-memory size changes at once");
        assert_eq!(nova.info().await.unwrap().size, 2 * SIZE);
        assert_eq!(env.locker(&qemu).await, Some(qemu_lock.clone()));
        qemu.write_at(SIZE + 5, b"grown").await.expect("qemu writes past the old end");
        assert_eq!(snap.size(), SIZE);
        assert_eq!(read_all(&snap).await, snap_data, "later writes leave the snapshot alone");

        // §7.5 row 4 (§3.5, §2.9 automatic policy): nova-compute writes: REQUEST_LOCK, qemu
        // releases, nova-compute acquires with its own cookie.
        nova.write_at(3 * BLOCK, b"nova was here").await.unwrap();
        settle().await;
        let nova_lock = (gid(&nova), cookie(&nova));
        assert_eq!(env.locker(&nova).await, Some(nova_lock.clone()));
        let seen = env.take_seen();
        assert!(seen.contains(&(gid(&nova), NotifyOp::RequestLock)), "{seen:?}");
        assert!(seen.contains(&(gid(&qemu), NotifyOp::ReleasedLock)), "{seen:?}");
        assert!(seen.contains(&(gid(&nova), NotifyOp::AcquiredLock)), "{seen:?}");
        assert!(!qemu.is_exclusive_lock_owner().await.unwrap());
        assert_eq!(qemu.read_at(3 * BLOCK, 13).await.unwrap(), b"nova was here", "qemu reads nova's write");

        // And back: qemu's next write takes the lock again (a new acquire, qemu's cookie).
        qemu.write_at(4 * BLOCK, b"qemu again").await.unwrap();
        settle().await;
        assert_eq!(env.locker(&qemu).await, Some((gid(&qemu), cookie(&qemu))));
        let seen = env.take_seen();
        assert!(seen.contains(&(gid(&qemu), NotifyOp::RequestLock)), "{seen:?}");
        assert!(seen.contains(&(gid(&nova), NotifyOp::ReleasedLock)), "{seen:?}");
        assert_eq!(nova.read_at(4 * BLOCK, 10).await.unwrap(), b"qemu again");
        assert_eq!(
            nova.read_at(3 * BLOCK, 13).await.unwrap(),
            b"nova was here",
            "nothing lost in the hand-over"
        );
        assert_eq!(nova.read_at(SIZE + 5, 5).await.unwrap(), b"grown");

        snap.close().await;
        nova.close().await;
        qemu.close().await;
        settle().await;
        assert_eq!(env.locker(&qemu).await, None, "§2.1: closing the owner releases the lock");
    })
    .await;
}
