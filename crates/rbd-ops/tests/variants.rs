//! The variants of rbd §7.5 (table 5) and the op error codes of §5.2.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, OBJ, gid, guarded, settle};
use rados_store::cls_rbd_client::features;
use rados_store::{WatchEvent, watch_channel};
use rbd_exclusive_lock::{ExclusiveLock, ImageWatcher, LockConfig, NoImageHooks, NoNotifyHandler};
use rbd_ops::{LockMode, RbdError};

/// Drives simulated time in 1 s steps until `task` finishes (at most `limit` seconds).
async fn run_clock<T>(env: &Env, task: &tokio::task::JoinHandle<T>, limit: u64) {
    for _ in 0..limit {
        if task.is_finished() {
            return;
        }
        env.advance(Duration::from_secs(1)).await;
    }
    assert!(task.is_finished(), "still running after {limit} simulated seconds");
}

/// rbd §7.5 row 3, §3.4, §5.1: the owner dies in the middle of a forwarded snap_create (its
/// quiesce round is stuck on a silent watcher). The requester times out, retries (notify gets no
/// owner ack), and once the dead owner's watch expires it breaks and blocklists the lock, runs the
/// op locally and keeps the lock.
#[tokio::test(start_paused = true)]
async fn s7_5_owner_dies_mid_forwarded_op_requester_completes_locally() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 4 * OBJ).await;
        let vm = env.open("img").await;
        let nova = env.open("img").await;
        vm.write_at(0, b"before").await.unwrap();
        // A silent watcher: it never acks, so the owner's QUIESCE waits out its timeouts.
        let (_silent_client, silent) = env.client();
        let (ctx, mut rx) = watch_channel();
        let header = format!("rbd_header.{}", vm.id());
        let silent_handle = silent.watch(&header, ctx).await.unwrap();
        tokio::spawn(async move { while let Some(WatchEvent::Notify(_)) = rx.recv().await {} });

        let task = {
            let nova = nova.clone();
            tokio::spawn(async move { nova.snap_create("s").await })
        };
        // The owner accepted the request and is now quiescing.
        env.advance(Duration::from_secs(1)).await;
        assert_eq!(nova.watcher().unwrap().pending_requests(), 1, "forwarded and accepted");
        env.cluster.kill_client(gid(&vm)).unwrap();
        silent.unwatch(silent_handle).await.unwrap();
        run_clock(&env, &task, 300).await;
        task.await.unwrap().expect("requester completes the op itself");
        settle().await;
        assert_eq!(env.locker_gid(&nova).await, Some(gid(&nova)), "the requester keeps the lock");
        assert!(
            env.cluster.is_blocklisted(&env.cluster.client_addr(gid(&vm)).unwrap()),
            "§2.13 dead owner fenced"
        );
        let info = nova.info().await.unwrap();
        assert_eq!(info.snaps.len(), 1);
        assert_eq!(info.snaps[0].name, "s");
        nova.write_at(0, b"after!").await.unwrap();
        let snap = env.open_snap("img", "s").await;
        assert_eq!(snap.read_at(0, 6).await.unwrap(), b"before");
        nova.close().await;
    })
    .await;
}

/// rbd §7.5 row 2, §5.1 (-EOPNOTSUPP), §10 fact 51: an owner that cannot run maintenance ops
/// (krbd-style) answers -EOPNOTSUPP; the requester requests the lock, the automatic owner hands
/// it over, and the requester runs the op and keeps the lock.
#[tokio::test(start_paused = true)]
async fn s7_5_owner_without_op_support_hands_lock_over() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 4 * OBJ).await;
        let nova = env.open("img").await;
        let (_krbd_client, krbd_io) = env.client();
        let w = ImageWatcher::register(
            krbd_io,
            nova.id(),
            env.clock.clone(),
            LockConfig::default(),
            Arc::new(NoNotifyHandler),
        )
        .await
        .unwrap();
        let krbd = ExclusiveLock::create(w.clone(), Arc::new(NoImageHooks)).await;
        krbd.acquire_lock().await.unwrap();
        settle().await;
        nova.resize(5 * OBJ).await.expect("run locally after taking the lock");
        settle().await;
        assert_eq!(env.locker_gid(&nova).await, Some(gid(&nova)));
        assert!(!krbd.is_lock_owner());
        assert_eq!(nova.size(), 5 * OBJ);
        nova.close().await;
        krbd.shut_down().await.unwrap();
        w.unregister().await;
    })
    .await;
}

/// rbd §7.5 row 5, §5.2, §9 row 10: snap_rollback is never forwarded: -EROFS while the VM owns
/// the lock; once the VM is gone, it rolls the image back (data and size).
#[tokio::test(start_paused = true)]
async fn s7_5_rollback_not_forwarded() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 3 * OBJ).await;
        let vm = env.open("img").await;
        let nova = env.open("img").await;
        vm.write_at(OBJ - 3, b"original").await.unwrap();
        nova.snap_create("s").await.unwrap();
        vm.write_at(OBJ - 3, b"CHANGED!").await.unwrap();
        vm.write_at(2 * OBJ, b"new object").await.unwrap();
        nova.resize(5 * OBJ).await.unwrap();
        assert!(matches!(nova.snap_rollback("s").await, Err(RbdError::ReadOnly(_))));
        assert!(matches!(nova.snap_rollback("nope").await, Err(RbdError::NotFound(_))));
        vm.close().await;
        nova.snap_rollback("s").await.expect("no owner: rollback runs");
        assert_eq!(nova.size(), 3 * OBJ);
        assert_eq!(nova.read_at(OBJ - 3, 8).await.unwrap(), b"original");
        assert!(nova.read_at(2 * OBJ, 10).await.unwrap().iter().all(|&b| b == 0));
        assert_eq!(env.locker_gid(&nova).await, Some(gid(&nova)));
        nova.close().await;
    })
    .await;
}

/// rbd §7.5 row 6, §2.12, §2.13, §8 `TestLibRBD.BreakLock`: `rbd lock break` blocklists the VM;
/// its later writes fail -EBLOCKLISTED and it does not recover by itself.
#[tokio::test(start_paused = true)]
async fn s7_5_lock_break_fences_the_vm() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 2 * OBJ).await;
        let vm = env.open("img").await;
        let op = env.open("img").await;
        vm.write_at(0, b"vm").await.unwrap();
        let owners = op.lock_get_owners().await.unwrap();
        assert_eq!(owners.len(), 1);
        assert!(matches!(op.lock_break(LockMode::Exclusive, "1.2.3.4:0/1").await, Err(RbdError::Busy(_))));
        assert!(matches!(op.lock_break(LockMode::Shared, &owners[0]).await, Err(RbdError::NotSupported(_))));
        op.lock_break(LockMode::Exclusive, &owners[0]).await.unwrap();
        settle().await;
        assert!(matches!(op.lock_get_owners().await, Err(RbdError::NotFound(_))));
        env.advance(Duration::from_secs(1)).await;
        let r = vm.write_at(0, b"xx").await;
        assert_eq!(r.as_ref().map_err(RbdError::errno), Err(108), "{r:?}");
        op.write_at(0, b"op").await.unwrap();
        assert_eq!(op.read_at(0, 2).await.unwrap(), b"op");
        op.close().await;
    })
    .await;
}

/// rbd §7.5 row 8: with exclusive-lock off both clients run ops locally, nobody takes the lock.
/// Then rbd §2.1 dynamic enable / disable through update_features.
#[tokio::test(start_paused = true)]
async fn s7_5_feature_off_runs_locally_then_toggle() {
    guarded(async {
        let env = Env::new().await;
        env.create("img", 2 * OBJ, features::LAYERING).await;
        let a = env.open("img").await;
        let b = env.open("img").await;
        a.write_at(0, b"a").await.unwrap();
        b.write_at(1, b"b").await.unwrap();
        b.snap_create("s").await.unwrap();
        a.resize(3 * OBJ).await.unwrap();
        assert_eq!(env.locker_gid(&a).await, None);
        assert!(!a.is_exclusive_lock_owner().await.unwrap());
        assert!(matches!(a.lock_acquire(LockMode::Exclusive).await, Err(RbdError::InvalidArgument(_))));
        assert_eq!(b.info().await.unwrap().size, 3 * OBJ);
        assert_eq!(a.info().await.unwrap().snaps.len(), 1);

        // Enable exclusive-lock: every handle gets a lock; the next write takes it.
        a.update_features(features::EXCLUSIVE_LOCK, true).await.unwrap();
        assert!(matches!(
            a.update_features(features::EXCLUSIVE_LOCK, true).await,
            Err(RbdError::InvalidArgument(_))
        ));
        settle().await;
        b.write_at(0, b"B").await.unwrap();
        assert_eq!(env.locker_gid(&b).await, Some(gid(&b)));
        // Disable it through the non-owner: forwarded to b, whose lock then shuts down.
        a.update_features(features::EXCLUSIVE_LOCK, false).await.unwrap();
        settle().await;
        assert_eq!(env.locker_gid(&b).await, None);
        a.write_at(0, b"A").await.unwrap();
        assert_eq!(b.read_at(0, 2).await.unwrap(), b"Ab");
        a.close().await;
        b.close().await;
    })
    .await;
}

/// rbd §5.2 pre-checks and ignore-sets for the snapshot ops, rename and metadata, through a
/// non-owner while the VM owns the lock (rbd §8 `*ViaLockOwner`, qa notify_slave).
#[tokio::test(start_paused = true)]
async fn s5_2_snapshot_ops_rename_metadata_error_codes() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 2 * OBJ).await;
        let vm = env.open("img").await;
        let nova = env.open("img").await;
        vm.write_at(0, b"x").await.unwrap();
        nova.snap_create("a").await.unwrap();
        assert!(matches!(nova.snap_create("a").await, Err(RbdError::Exists(_))));
        nova.snap_create("b").await.unwrap();
        assert!(matches!(nova.snap_rename("zz", "c").await, Err(RbdError::NotFound(_))));
        assert!(matches!(nova.snap_rename("a", "b").await, Err(RbdError::Exists(_))));
        nova.snap_rename("a", "c").await.unwrap();
        nova.snap_protect("c").await.unwrap();
        assert!(matches!(nova.snap_protect("c").await, Err(RbdError::Busy(_))));
        assert!(matches!(nova.snap_remove("c").await, Err(RbdError::Busy(_))));
        nova.snap_unprotect("c").await.unwrap();
        assert!(matches!(nova.snap_unprotect("c").await, Err(RbdError::InvalidArgument(_))));
        nova.snap_remove("c").await.unwrap();
        assert!(matches!(nova.snap_remove("c").await, Err(RbdError::NotFound(_))));
        let names: Vec<String> = vm.info().await.unwrap().snaps.into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["b".to_owned()]);

        nova.metadata_set("conf_rbd_cache", "false").await.unwrap();
        assert_eq!(vm.metadata_get("conf_rbd_cache").await.unwrap(), "false");
        nova.metadata_remove("conf_rbd_cache").await.unwrap();
        assert!(matches!(nova.metadata_remove("conf_rbd_cache").await, Err(RbdError::NotFound(_))));

        rbd_ops::create(&env.admin, "other", OBJ, &Default::default()).await.unwrap();
        assert!(matches!(nova.rename("other").await, Err(RbdError::Exists(_))));
        nova.rename("renamed").await.unwrap();
        let names: Vec<String> = rbd_ops::list(&env.admin).await.unwrap().into_keys().collect();
        assert_eq!(names, vec!["other".to_owned(), "renamed".to_owned()]);
        assert_eq!(env.locker_gid(&vm).await, Some(gid(&vm)), "the VM kept the lock through all of it");
        vm.close().await;
        nova.close().await;
    })
    .await;
}

/// rbd §0.1, §6.1: image objects, I/O bounds (librbd clip_io), remove rules.
#[tokio::test(start_paused = true)]
async fn s6_1_image_objects_bounds_and_remove() {
    guarded(async {
        let env = Env::new().await;
        env.create_default("img", 2 * OBJ + 100).await;
        assert!(matches!(
            rbd_ops::create(&env.admin, "img", OBJ, &Default::default()).await,
            Err(RbdError::Exists(_))
        ));
        let img = env.open("img").await;
        let id = img.id().to_owned();
        assert_eq!(img.info().await.unwrap().block_name_prefix, format!("rbd_data.{id}"));
        assert_eq!(img.write_at(2 * OBJ + 90, &[1; 50]).await.unwrap(), 10, "clipped at the end");
        assert!(matches!(img.write_at(2 * OBJ + 100, &[1]).await, Err(RbdError::InvalidArgument(_))));
        assert!(matches!(img.read_at(3 * OBJ, 1).await, Err(RbdError::InvalidArgument(_))));
        assert_eq!(img.write_at(5, &[]).await.unwrap(), 0);
        img.write_at(OBJ - 2, &[9; 4]).await.unwrap();
        let objs = env.admin.list_objects().await.unwrap();
        for o in [
            "rbd_id.img".to_string(),
            format!("rbd_header.{id}"),
            "rbd_directory".into(),
            format!("rbd_data.{id}.0000000000000000"),
            format!("rbd_data.{id}.0000000000000001"),
            format!("rbd_data.{id}.0000000000000002"),
        ] {
            assert!(objs.contains(&o), "{o} missing from {objs:?}");
        }
        assert!(
            matches!(rbd_ops::remove(&env.admin, "img").await, Err(RbdError::Busy(_))),
            "open read-write"
        );
        img.close().await;
        rbd_ops::remove(&env.admin, "img").await.unwrap();
        assert!(env.admin.list_objects().await.unwrap().iter().all(|o| o == "rbd_directory"));
        assert!(matches!(rbd_ops::remove(&env.admin, "img").await, Err(RbdError::NotFound(_))));
        assert!(rbd_ops::list(&env.admin).await.unwrap().is_empty());
    })
    .await;
}
