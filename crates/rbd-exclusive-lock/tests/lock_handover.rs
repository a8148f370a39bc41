//! Lock ownership and hand-over between image handles on the embedded cluster (rbd spec §8
//! integration scenarios; §1.6, §2.3, §2.8–§2.13, §3.5; real-ceph §3). Every test checks the
//! single-owner invariant at each quiescent point.

mod common;

use std::time::Duration;

use common::{Env, guarded, settle};
use rados_store::cls_lock_client::LockType;
use rados_store::{EntityName, UTime};
use rbd_exclusive_lock::notify::{ClientId, NotifyMessage};
use rbd_exclusive_lock::{LockConfig, LockError, LockMode, Policy, State};

/// rbd §8 "acquire when unlocked"; §10 facts 1, 2, 3, 7, 24: the cls lock `rbd_lock` on the
/// header, tag `internal`, cookie `auto <watch handle>`, no description or expiry, and an
/// ACQUIRED_LOCK announcement with the owner's ClientId that peers record.
#[tokio::test(start_paused = true)]
async fn s8_acquire_when_unlocked() {
    guarded(async {
        let env = Env::new().await;
        let sniffer = env.sniffer().await;
        let a = env.open().await;
        let b = env.open().await;
        env.assert_single_owner(&[&a, &b]).await;
        assert_eq!(a.lock.state(), State::Unlocked);
        assert!(
            a.hooks.require_lock.load(std::sync::atomic::Ordering::SeqCst),
            "§2.1 init requires the lock"
        );

        a.lock.acquire_lock().await.expect("acquire");
        settle().await;
        assert_eq!(a.lock.state(), State::Locked);
        let info = env.lock_info().await;
        assert_eq!(info.lock_type, LockType::Exclusive);
        assert_eq!(info.tag, "internal");
        assert_eq!(info.lockers.len(), 1);
        let (id, locker) = info.lockers.iter().next().unwrap();
        assert_eq!(id.entity, EntityName::client(a.gid()));
        assert_eq!(id.cookie, format!("auto {}", a.watcher.watch_handle()));
        assert_eq!(locker.description, "");
        assert_eq!(locker.expiration, UTime::ZERO);
        assert_eq!(locker.addr.to_string(), a.addr());

        let a_id = ClientId::new(a.gid(), a.watcher.watch_handle());
        assert_eq!(sniffer.ops(), vec![NotifyMessage::AcquiredLock { client_id: a_id }]);
        assert_eq!(b.watcher.owner_client_id(), a_id, "§3.2: peers record the announced owner");
        assert!(!a.hooks.require_lock.load(std::sync::atomic::Ordering::SeqCst), "§2.3 step 7");
        assert!(a.lock.is_exclusive_lock_owner().await.unwrap());
        assert!(!b.lock.is_exclusive_lock_owner().await.unwrap());
        // §10 fact 16: acquiring again completes at once.
        a.lock.acquire_lock().await.unwrap();
        assert_eq!(a.lock.lock_get_owners().await.unwrap(), vec![a.addr()]);
        env.assert_single_owner(&[&a, &b]).await;

        // §10 facts 16, 24: release broadcasts RELEASED_LOCK and unlocks; a second one is a no-op.
        a.lock.release_lock().await.unwrap();
        a.lock.release_lock().await.unwrap();
        settle().await;
        assert!(env.lock_info().await.lockers.is_empty());
        assert_eq!(sniffer.ops().last(), Some(&NotifyMessage::ReleasedLock { client_id: a_id }));
        assert_eq!(b.watcher.owner_client_id(), ClientId::default());
        assert_eq!(a.lock.lock_get_owners().await, Err(LockError::NotFound));
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §8 "acquire while a live peer owns it", §3.5, §2.9, §10 facts 25, 29, 64: B's acquire
/// meets A's live lock, parks in WAITING_FOR_LOCK and sends REQUEST_LOCK; A (automatic policy)
/// acks 0 and releases; RELEASED_LOCK wakes B, which acquires.
#[tokio::test(start_paused = true)]
async fn s8_acquire_while_live_peer_owns_it() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let sniffer = env.sniffer().await;

        let b_lock = b.lock.clone();
        let acquired = tokio::spawn(async move { b_lock.acquire_lock().await });
        b.lock.managed_lock().wait_for_state(|s| s == State::Locked).await;
        acquired.await.unwrap().expect("B acquires after A hands over");
        settle().await;
        assert_eq!(a.lock.state(), State::Unlocked);
        assert!(b.lock.is_exclusive_lock_owner().await.unwrap());
        let codes = sniffer.op_codes();
        assert_eq!(codes, vec![2, 1, 0], "REQUEST_LOCK, RELEASED_LOCK, ACQUIRED_LOCK: {codes:?}");
        let b_id = ClientId::new(b.gid(), b.watcher.watch_handle());
        assert_eq!(sniffer.ops()[0], NotifyMessage::RequestLock { client_id: b_id, force: false });
        assert_eq!(a.watcher.owner_client_id(), b_id);
        assert!(
            a.hooks.events().contains(&"flush_io".to_owned()),
            "§2.4: the owner flushed before releasing"
        );
        env.assert_single_owner(&[&a, &b]).await;

        // No stray REQUEST_LOCK re-send fires later (B owns the lock now).
        env.advance(Duration::from_secs(30)).await;
        assert_eq!(sniffer.op_codes(), vec![2, 1, 0]);
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §2.3 TRY_LOCK, §10 fact 10: a try-lock that meets a live owner "succeeds" without
/// ownership and does not ask the owner to release.
#[tokio::test(start_paused = true)]
async fn s2_3_try_lock_against_live_owner_is_zero_without_ownership() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let sniffer = env.sniffer().await;
        b.lock.try_acquire_lock().await.expect("try-lock reports 0");
        settle().await;
        assert_eq!(b.lock.state(), State::Unlocked);
        assert_eq!(a.lock.state(), State::Locked);
        assert!(sniffer.ops().is_empty(), "no REQUEST_LOCK: {:?}", sniffer.ops());
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §2.8, §2.9, §2.12, §10 facts 28, 29, 31, 36; real-ceph §3 ("another writer gets
/// ReadOnlyImage"): after `lock_acquire(EXCLUSIVE)` the owner answers REQUEST_LOCK with -EROFS and
/// keeps the lock; the requester's acquire fails -EROFS.
#[tokio::test(start_paused = true)]
async fn s8_standard_policy_owner_refuses_handover() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        assert_eq!(a.lock.lock_acquire(LockMode::Shared).await, Err(LockError::NotSupported));
        a.lock.lock_acquire(LockMode::Exclusive).await.expect("exclusive mode");
        assert_eq!(a.lock.policy(), Policy::Standard);
        settle().await;

        assert_eq!(b.lock.acquire_lock().await, Err(LockError::ReadOnly));
        settle().await;
        assert_eq!(b.lock.state(), State::Unlocked);
        assert_eq!(a.lock.state(), State::Locked);
        env.assert_single_owner(&[&a, &b]).await;

        // The same through the public API and through a write (automatic policy on B).
        assert_eq!(b.lock.lock_acquire(LockMode::Exclusive).await, Err(LockError::ReadOnly));
        assert_eq!(b.write("w", b"x").await, Err(LockError::ReadOnly));
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;

        // A standard-policy handle that is not owner fails writes at once (§2.11, fact 36).
        a.lock.lock_release().await.unwrap();
        settle().await;
        assert_eq!(a.write("w", b"x").await, Err(LockError::ReadOnly));
        assert_eq!(a.lock.lock_release().await, Err(LockError::InvalidArgument), "§10 fact 32");
        // ... and the policy stays standard for the handle's life.
        assert_eq!(a.lock.policy(), Policy::Standard);
        a.lock.lock_acquire(LockMode::Exclusive).await.unwrap();
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;
        assert!(env.written().await.is_empty());
    })
    .await;
}

/// rbd §1.6.3, §1.7, §2.13, §10 facts 9, 13, 14; real-ceph §3 ("A killed with -9: the next
/// writer's first write blocked 28.5 s, then it blocklisted A and took the lock"). The dead
/// owner's watch lingers for `osd_client_watch_timeout` (30 s), during which it counts as alive;
/// after that it is blocklisted (for the default hour) and its lock broken.
#[tokio::test(start_paused = true)]
async fn s8_dead_owner_is_blocklisted_and_its_lock_broken() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let a_addr = a.client.addr();
        let killed_at = env.clock.now();
        a.kill(&env);

        let b_lock = b.lock.clone();
        let acquired = tokio::spawn(async move { b_lock.acquire_lock().await });
        let mut waited = Duration::ZERO;
        while !acquired.is_finished() {
            env.advance(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
            env.assert_single_owner(&[&a, &b]).await;
            if waited < Duration::from_secs(30) {
                assert!(!env.cluster.is_blocklisted(&a_addr), "blocklisted while its watch still counted");
                assert!(!b.lock.is_lock_owner());
            }
            assert!(waited <= Duration::from_secs(40), "B never took the dead owner's lock");
        }
        acquired.await.unwrap().expect("B acquires");
        assert!(waited >= Duration::from_secs(30), "lock broken before the watch timed out ({waited:?})");
        assert!(env.cluster.is_blocklisted(&a_addr));
        let (_, expires) =
            env.cluster.blocklist_list().into_iter().find(|(addr, _)| addr.nonce == a_addr.nonce).unwrap();
        assert!(expires >= killed_at.saturating_add(Duration::from_secs(3600)), "default 1 h expiry (§0.2)");
        assert_eq!(b.lock.state(), State::Locked);
        let info = env.lock_info().await;
        assert_eq!(info.lockers.keys().next().unwrap().entity, EntityName::client(b.gid()));
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §0.2, §1.6.3 step 4, §10 fact 14: `rbd_blocklist_expire_seconds` sets the blocklist entry's
/// lifetime; with `rbd_blocklist_on_break_lock` off the dead owner is not blocklisted at all
/// (BreakRequest `BlocklistDisabled`).
#[tokio::test(start_paused = true)]
async fn s1_6_3_blocklist_settings_are_honoured() {
    for (on, expire) in [(true, 120u64), (false, 0)] {
        guarded(async {
            let env = Env::new().await;
            let config = LockConfig {
                blocklist_on_break_lock: on,
                blocklist_expire: Duration::from_secs(expire),
                ..LockConfig::default()
            };
            let a = env.open_with(config.clone()).await;
            let b = env.open_with(config).await;
            a.lock.acquire_lock().await.unwrap();
            settle().await;
            let a_addr = a.client.addr();
            a.kill(&env);
            env.advance(Duration::from_secs(31)).await;
            let t = env.clock.now();
            b.lock.acquire_lock().await.expect("dead owner's lock is broken");
            assert_eq!(env.cluster.is_blocklisted(&a_addr), on);
            if on {
                let (_, expires) = env.cluster.blocklist_list().into_iter().next().unwrap();
                assert_eq!(expires, t.saturating_add(Duration::from_secs(expire)));
            }
            env.assert_single_owner(&[&a, &b]).await;
        })
        .await;
    }
}

/// rbd §2.13, §8 `TestLibRBD.BreakLock`, §10 fact 33; real-ceph §3 (`rbd lock rm` → errno 108):
/// after an explicit break the old owner is blocklisted: its writes fail, `assert_header_locked`
/// reports -EBLOCKLISTED, its re-watch fails, it drops to UNLOCKED and can never re-acquire.
#[tokio::test(start_paused = true)]
async fn s2_13_blocklisted_client_can_neither_write_nor_reacquire() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.write("a0", b"1").await.expect("owner writes");
        settle().await;
        assert_eq!(a.lock.state(), State::Locked);

        assert_eq!(b.lock.lock_break(LockMode::Shared, &a.addr()).await, Err(LockError::NotSupported));
        assert_eq!(b.lock.lock_break(LockMode::Exclusive, "127.0.0.1:0/1").await, Err(LockError::Busy));
        assert_eq!(
            a.lock.lock_break(LockMode::Exclusive, &a.addr()).await,
            Err(LockError::Busy),
            "§10 fact 21"
        );
        b.lock.lock_break(LockMode::Exclusive, &a.addr()).await.expect("forced break");
        assert!(env.cluster.is_blocklisted(&a.client.addr()));
        assert!(env.lock_info().await.lockers.is_empty());

        // Fenced at the OSD straight away, whatever A still believes.
        assert_eq!(a.lock.assert_header_locked().await, Err(LockError::Blocklisted));
        assert_eq!(a.lock.is_exclusive_lock_owner().await, Err(LockError::Blocklisted));
        assert_eq!(a.write("a1", b"2").await.unwrap_err(), LockError::Blocklisted);

        // The watch error reaches A; the re-watch fails; the lock is released and re-acquiring
        // fails with -EBLOCKLISTED (16.2.14+, §1.9).
        settle().await;
        assert!(a.watcher.is_blocklisted());
        assert_eq!(a.watcher.watch_handle(), 0);
        assert_eq!(a.lock.state(), State::Unlocked);
        assert_eq!(a.lock.acquire_lock().await, Err(LockError::Blocklisted));
        assert_eq!(a.write("a2", b"3").await, Err(LockError::Blocklisted));
        env.assert_single_owner(&[&a, &b]).await;

        // B takes the lock and writes; A's one write is all A ever got in.
        b.write("b0", b"4").await.expect("new owner writes");
        settle().await;
        let keys: Vec<String> = env.written().await.into_keys().collect();
        assert_eq!(keys, vec!["a0", "b0"]);
        env.assert_single_owner(&[&a, &b]).await;
        // Even after the blocklist entry expires, A does not recover by itself (§2.13).
        env.advance(Duration::from_secs(3601)).await;
        assert_eq!(a.lock.state(), State::Unlocked);
        assert!(a.watcher.is_blocklisted());
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §2.11, §8 `TestInternal.AioWriteRequestsLock`, §10 facts 4, 5; real-ceph §3 (foreign lock
/// `rbd lock add img adv2`: the writer blocks indefinitely): a lock with another tag, or a cookie
/// that is not `auto <handle>`, is never broken; writers wait until it goes away.
#[tokio::test(start_paused = true)]
async fn s2_11_external_lock_blocks_writers_until_removed() {
    for (cookie, tag) in [("adv2", ""), ("adv2", "internal"), ("auto 77", "other")] {
        guarded(async {
            let env = Env::new().await;
            let a = env.open().await;
            let b = env.open().await;
            let ext = env.external_lock(cookie, tag).await;
            assert_eq!(a.lock.get_locker().await, Err(LockError::Busy));
            assert_eq!(a.lock.lock_get_owners().await, Err(LockError::Busy));

            let a2 = std::sync::Arc::new(a);
            let writer = a2.clone();
            let write = tokio::spawn(async move { writer.write("w", b"1").await });
            a2.lock.managed_lock().wait_for_state(|s| s == State::WaitingForLock).await;
            // Let the request/retry loop run for a while (it needs no simulated time: every watcher
            // acks at once and nobody answers as owner). The write stays blocked.
            // `settle` cannot be used here: the loop never goes idle.
            for _ in 0..200 {
                tokio::task::yield_now().await;
            }
            env.clock.advance(Duration::from_secs(60));
            for _ in 0..200 {
                tokio::task::yield_now().await;
            }
            assert!(!write.is_finished());
            assert!(!a2.lock.is_lock_owner());
            let info = env.lock_info().await;
            assert_eq!(info.lockers.keys().next().unwrap().cookie, cookie);
            env.assert_single_owner(&[&a2, &b]).await;

            rados_store::cls_lock_client::unlock(&ext, &env.oid, "rbd_lock", cookie).await.unwrap();
            write.await.unwrap().expect("write proceeds once the external lock is gone");
            assert_eq!(a2.lock.state(), State::Locked);
            env.assert_single_owner(&[&a2, &b]).await;
            assert!(env.written().await.contains_key("w"));
        })
        .await;
    }
}

/// rbd §2.1, §8 `ShutDownWhileWaiting`: shutting down a handle whose acquire is parked waiting for
/// the lock finishes the acquire (-ESHUTDOWN) and the shutdown, instead of waiting for a lock that
/// may never be handed over.
#[tokio::test(start_paused = true)]
async fn s2_1_shut_down_while_waiting_for_lock() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let _ext = env.external_lock("manual", "").await;
        let acquire = a.lock.acquire_lock();
        a.lock.managed_lock().wait_for_state(|s| s == State::WaitingForLock).await;
        let shut = a.lock.shut_down();
        assert_eq!(acquire.await, Err(LockError::ShutDown));
        shut.await.expect("shutdown completes");
        assert_eq!(a.lock.state(), State::Shutdown);
        assert_eq!(a.lock.acquire_lock().await, Err(LockError::ShutDown), "§10 fact 17");
        assert_eq!(a.lock.release_lock().await, Err(LockError::ShutDown));
        assert_eq!(a.lock.get_locker().await, Err(LockError::ShutDown));
        assert!(a.hooks.events().contains(&"shut_down".to_owned()));
        a.watcher.unregister().await;
        settle().await;
        assert_eq!(env.lock_info().await.lockers.keys().next().unwrap().cookie, "manual");
        env.assert_single_owner(&[&a]).await;
    })
    .await;
}

/// rbd §2.8 last bullet, §7 variants: a standard-policy owner still executes forwarded
/// maintenance ops; only hand-over is refused.
#[tokio::test(start_paused = true)]
async fn s2_8_standard_owner_still_runs_forwarded_ops() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.lock_acquire(LockMode::Exclusive).await.unwrap();
        settle().await;
        let id = rbd_exclusive_lock::next_request_id();
        b.watcher
            .notify_async_request(id, |async_request_id| NotifyMessage::Flatten { async_request_id }, None)
            .await
            .expect("owner runs the flatten");
        assert_eq!(a.handler.executed().len(), 1);
        assert!(a.lock.is_lock_owner());
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §8 `TestLibRBD.ExclusiveLock` (two threads passing the lock back and forth) and
/// `ExclusiveLockTransition`, §9 row 1, real-ceph §3 ping-pong: two automatic-policy writers keep
/// taking the lock from each other; every write lands exactly once, each under the lock.
#[tokio::test(start_paused = true)]
async fn s9_row1_two_automatic_writers_ping_pong_and_converge() {
    guarded(async {
        let env = std::sync::Arc::new(Env::new().await);
        let sniffer = env.sniffer().await;
        let a = std::sync::Arc::new(env.open().await);
        let b = std::sync::Arc::new(env.open().await);
        const WRITES: usize = 12;
        let mut tasks = Vec::new();
        for (name, h) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                for i in 0..WRITES {
                    // Retry transient refusals the way an application would.
                    let key = format!("{name}{i:02}");
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match h.write(&key, b"v").await {
                            Ok(()) => break,
                            Err(e) => assert!(attempts < 50, "{key}: {e}"),
                        }
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for _ in 0..600 {
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            env.assert_single_owner(&[&a, &b]).await;
            env.advance(Duration::from_millis(500)).await;
        }
        for t in tasks {
            assert!(t.is_finished(), "writers did not converge");
            t.await.unwrap();
        }
        let written = env.written().await;
        assert_eq!(written.len(), 2 * WRITES, "{:?}", written.keys().collect::<Vec<_>>());
        for name in ["a", "b"] {
            for i in 0..WRITES {
                assert!(written.contains_key(&format!("{name}{i:02}")));
            }
        }
        let handovers =
            sniffer.ops().iter().filter(|m| matches!(m, NotifyMessage::ReleasedLock { .. })).count();
        assert!(handovers >= 1, "the lock never changed hands");
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}
