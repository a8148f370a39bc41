//! rbd §1.6.3, §2.13, §7.5 row 3: qemu owns the lock and its process dies (the embedded
//! cluster's `kill_client`: no more callbacks, no acks, watches linger until the OSD's watch
//! timeout). nova-compute's write waits: the owner looks alive while its watch is listed
//! (§10 fact 9). Once the watch expires (30 s on the simulated clock), nova-compute's acquire
//! blocklists qemu's address, breaks its lock and takes it (§10 fact 13); the write lands.

use std::time::Duration;

use rbd_exclusive_lock::notify::NotifyOp;

use crate::support::rbd::{Env, OBJ, cookie, gid, guarded, settle};

#[tokio::test(start_paused = true)]
async fn rbd_s2_13_dead_owner_is_blocklisted_and_its_lock_broken_after_the_watch_timeout() {
    guarded(async {
        let env = Env::new(11);
        let watch_timeout = env.cluster.config().watch_timeout;
        env.create("vm-disk", 4 * OBJ).await;
        let qemu = env.open("vm-disk").await;
        let nova = env.open("vm-disk").await;
        env.observe(&qemu).await;
        qemu.write_at(0, b"qemu before it died").await.unwrap();
        let qemu_gid = gid(&qemu);
        let qemu_addr = env.cluster.client_addr(qemu_gid).unwrap();
        assert_eq!(env.locker(&qemu).await, Some((qemu_gid, cookie(&qemu))));

        env.cluster.kill_client(qemu_gid).unwrap();
        let task = {
            let nova = nova.clone();
            tokio::spawn(async move { nova.write_at(OBJ, b"nova after").await })
        };
        // Well inside the watch timeout the dead owner still looks alive: no break, no blocklist.
        env.advance(watch_timeout / 2).await;
        assert!(!task.is_finished(), "§10 fact 9: the lock of an owner with a live watch is not broken");
        assert_eq!(env.locker(&qemu).await.map(|l| l.0), Some(qemu_gid));
        assert!(!env.cluster.is_blocklisted(&qemu_addr));
        let seen = env.take_seen();
        assert!(seen.contains(&(gid(&nova), NotifyOp::RequestLock)), "§3.5: nova asked first: {seen:?}");

        let waited = env.run_clock(&task, 120).await;
        assert_eq!(task.await.unwrap().expect("nova's write after the break"), 10);
        assert!(
            watch_timeout / 2 + Duration::from_secs(waited) >= watch_timeout,
            "broken {waited} s after the half-way check, before the {watch_timeout:?} watch timeout"
        );
        settle().await;

        // §2.13: blocklisted first, then broken; nova-compute owns the lock with its cookie.
        assert!(env.cluster.is_blocklisted(&qemu_addr), "§10 fact 13: the dead owner is fenced");
        assert_eq!(env.locker(&nova).await, Some((gid(&nova), cookie(&nova))));
        assert!(nova.is_exclusive_lock_owner().await.unwrap());
        let watchers = nova.watchers().await.unwrap();
        assert!(watchers.iter().all(|w| w.gid != qemu_gid), "the dead watch expired: {watchers:?}");
        assert!(env.take_seen().contains(&(gid(&nova), NotifyOp::AcquiredLock)));

        // The killed process cannot reach the cluster at all, and its address stays on the
        // OSD blocklist (the hung-owner scenario shows a late op failing -EBLOCKLISTED).
        let r = qemu.write_at(0, b"zombie").await;
        assert!(r.is_err(), "a dead client's write must fail: {r:?}");
        let bl = env.cluster.blocklist_list();
        assert!(bl.iter().any(|(a, _)| *a == qemu_addr), "{bl:?}");

        // The data: qemu's acknowledged write and nova-compute's, nothing from the zombie.
        assert_eq!(nova.read_at(0, 19).await.unwrap(), b"qemu before it died");
        assert_eq!(nova.read_at(OBJ, 10).await.unwrap(), b"nova after");
        nova.close().await;
    })
    .await;
}
