//! rbd §2.13, §7.5 row 3, §9 rows 4, 5 and 9: qemu owns the lock and hangs (a paused VM:
//! `suspend_client`) with a write in flight. Its watch expires, nova-compute blocklists it,
//! breaks the lock and writes. When qemu wakes (`resume_client`) it is fenced: the write it
//! issued before the hang fails -EBLOCKLISTED instead of landing over nova-compute's data, its
//! later writes fail too, it does not get the lock back by itself, and asking the OSD whether it
//! owns the lock does not say yes (§9 row 9).

use rbd_exclusive_lock::notify::NotifyOp;
use rbd_ops::RbdError;

use crate::support::rbd::{Env, OBJ, cookie, gid, guarded, settle};

const EBLOCKLISTED: i32 = 108;

#[tokio::test(start_paused = true)]
async fn rbd_s2_13_hung_owner_wakes_fenced_and_its_stale_write_never_lands() {
    guarded(async {
        let env = Env::new(13);
        let watch_timeout = env.cluster.config().watch_timeout;
        env.create("vm-disk", 4 * OBJ).await;
        let qemu = env.open("vm-disk").await;
        let nova = env.open("vm-disk").await;
        env.observe(&qemu).await;
        qemu.write_at(0, b"AAAAAAAA").await.unwrap();
        let qemu_gid = gid(&qemu);
        let qemu_addr = env.cluster.client_addr(qemu_gid).unwrap();
        let qemu_cookie = cookie(&qemu);
        settle().await;
        env.take_seen();

        // qemu hangs with a write on its way to the OSD.
        env.cluster.suspend_client(qemu_gid).unwrap();
        let stale = {
            let qemu = qemu.clone();
            tokio::spawn(async move { qemu.write_at(0, b"STALE!!!").await })
        };
        settle().await;
        assert!(!stale.is_finished(), "a stopped process sends nothing");

        // nova-compute writes the same bytes; it waits out qemu's watch, then breaks the lock.
        let task = {
            let nova = nova.clone();
            tokio::spawn(async move { nova.write_at(0, b"nova-new").await })
        };
        let waited = env.run_clock(&task, 120).await;
        task.await.unwrap().expect("nova's write after breaking the hung owner's lock");
        assert!(
            waited >= watch_timeout.as_secs(),
            "broken after {waited} s, watch timeout {watch_timeout:?}"
        );
        settle().await;
        assert!(env.cluster.is_blocklisted(&qemu_addr), "§2.13: blocklisted before the break");
        assert_eq!(env.locker(&nova).await, Some((gid(&nova), cookie(&nova))));
        // qemu still believes it owns the lock: it has heard nothing while it hung.
        assert!(qemu.exclusive_lock().unwrap().is_lock_owner(), "no callback reached the hung client");

        // qemu wakes.
        env.cluster.resume_client(qemu_gid).unwrap();
        settle().await;
        let r = stale.await.unwrap();
        assert_eq!(r.as_ref().map_err(RbdError::errno), Err(EBLOCKLISTED), "the stale write: {r:?}");
        assert_eq!(nova.read_at(0, 8).await.unwrap(), b"nova-new", "the stale write never landed");

        // Later writes fail -EBLOCKLISTED as well (rbd §2.13: no recovery by itself, §9 row 4:
        // no hang either), and the OSD never confirms qemu as owner (§9 row 9).
        let r = qemu.write_at(OBJ, b"late").await;
        assert_eq!(r.as_ref().map_err(RbdError::errno), Err(EBLOCKLISTED), "late write: {r:?}");
        env.advance(watch_timeout).await;
        let r = qemu.write_at(OBJ, b"later").await;
        assert_eq!(r.as_ref().map_err(RbdError::errno), Err(EBLOCKLISTED), "still fenced: {r:?}");
        let owner = qemu.is_exclusive_lock_owner().await;
        assert!(!matches!(owner, Ok(true)), "§9 row 9: a fenced client is not the owner: {owner:?}");
        assert!(
            !qemu.exclusive_lock().unwrap().is_lock_owner(),
            "§3.8, §9 row 5: the watch error dropped the lock"
        );
        let (g, c) = env.locker(&nova).await.unwrap();
        assert_eq!(g, gid(&nova));
        assert_ne!(c, qemu_cookie);
        let seen = env.take_seen();
        assert!(seen.iter().all(|(g, op)| *g != qemu_gid || *op != NotifyOp::AcquiredLock), "{seen:?}");

        // nova-compute keeps working; what it reads is its own data and none of qemu's late bytes.
        nova.write_at(OBJ, b"nova-2").await.unwrap();
        assert_eq!(nova.read_at(OBJ, 6).await.unwrap(), b"nova-2");
        assert_eq!(nova.read_at(0, 8).await.unwrap(), b"nova-new");
        nova.close().await;
    })
    .await;
}
