//! Watch failures and re-watches (rbd §3.8), the reacquire paths they drive (rbd §1.4
//! REACQUIRE) and the duplicate-owner bug of rbd §9 row 2.

mod common;

use std::time::Duration;

use common::{Env, guarded, settle};
use rados_store::Error;
use rbd_exclusive_lock::notify::{ClientId, NotifyMessage};
use rbd_exclusive_lock::{LockConfig, LockMode, State};

fn connection_reset() -> Error {
    Error::Os { errno: 107, context: "simulated session reset".into() }
}

/// rbd §3.8, §1.4 REACQUIRE (set_cookie path), §2.6, §9 row 3, §10 facts 22, 62: a watch error
/// makes the owner forget the known owner and re-watch; the new handle moves the lock to
/// `auto <new handle>` with cls `set_cookie`, the owner re-announces itself with its new
/// ClientId, and it marks itself refresh-required.
#[tokio::test(start_paused = true)]
async fn s3_8_rewatch_moves_the_lock_to_the_new_cookie() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let sniffer = env.sniffer().await;
        let old = a.watcher.watch_handle();
        let updates_before = a.handler.header_updates.load(std::sync::atomic::Ordering::SeqCst);

        a.watcher.simulate_watch_error(connection_reset());
        settle().await;
        let new = a.watcher.watch_handle();
        assert_ne!(new, 0);
        assert_ne!(new, old);
        assert_eq!(a.lock.state(), State::Locked, "the lock was kept, not released");
        let cookie = format!("auto {new}");
        assert_eq!(a.lock.managed_lock().cookie(), cookie);
        let info = env.lock_info().await;
        assert_eq!(info.lockers.keys().map(|k| k.cookie.clone()).collect::<Vec<_>>(), vec![cookie]);
        let a_id = ClientId::new(a.gid(), new);
        assert_eq!(
            sniffer.ops(),
            vec![NotifyMessage::AcquiredLock { client_id: a_id }],
            "no release happened"
        );
        assert_eq!(b.watcher.owner_client_id(), a_id);
        assert_eq!(a.watcher.owner_client_id(), a_id);
        assert_eq!(a.handler.header_updates.load(std::sync::atomic::Ordering::SeqCst), updates_before + 1);
        env.assert_single_owner(&[&a, &b]).await;

        // The old watch is gone from the header; only the new one is listed for A.
        let cookies: Vec<u64> = env
            .admin
            .list_watchers(&env.oid)
            .await
            .unwrap()
            .iter()
            .filter(|w| w.gid == a.gid())
            .map(|w| w.cookie)
            .collect();
        assert_eq!(cookies, vec![new]);
        // Hand-over still works with the new identity.
        b.lock.acquire_lock().await.unwrap();
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;
        assert_eq!(a.lock.state(), State::Unlocked);
    })
    .await;
}

/// rbd §1.4 REACQUIRE failure → release-then-acquire, §8 `ReacquireLockError`: the owner's lock
/// was broken (without blocklisting) while it was cut off and a peer took it. When the owner's
/// re-watch completes, `set_cookie` fails (-EBUSY: it no longer holds the lock), so it releases
/// and re-acquires through the normal protocol instead of believing it still owns the lock.
#[tokio::test(start_paused = true)]
async fn s1_4_rewatch_after_the_lock_was_taken_releases_then_acquires() {
    guarded(async {
        let env = Env::new().await;
        let config = LockConfig { blocklist_on_break_lock: false, ..LockConfig::default() };
        let a = env.open_with(config.clone()).await;
        let b = env.open_with(config).await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;

        // A is cut off: an operator breaks its lock and B takes it.
        b.lock.lock_break(LockMode::Exclusive, &a.addr()).await.unwrap();
        assert!(!env.cluster.is_blocklisted(&a.client.addr()));
        b.lock.acquire_lock().await.unwrap();
        settle().await;
        let sniffer = env.sniffer().await;

        // A's connection comes back.
        a.watcher.simulate_watch_error(connection_reset());
        settle().await;
        // set_cookie failed → release (RELEASED_LOCK) → acquire → REQUEST_LOCK → B hands over.
        let codes = sniffer.op_codes();
        assert_eq!(codes, vec![1, 2, 1, 0], "RELEASED(A), REQUEST(A), RELEASED(B), ACQUIRED(A): {codes:?}");
        assert_eq!(a.lock.state(), State::Locked);
        assert_eq!(b.lock.state(), State::Unlocked);
        assert_eq!(a.lock.managed_lock().cookie(), format!("auto {}", a.watcher.watch_handle()));
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §9 row 2 (PR 30955), §1.4, §10 fact 23, 45: with blocklisting disabled, a client whose lock
/// was broken while it was away comes back with the *same* cookie. Skipping the reacquire would
/// leave two handles believing they own the lock, and a forwarded op would see two owner answers
/// (-EINVAL, "duplicate lock owners"). Because a same-cookie reacquire is only skipped with
/// blocklisting on, it goes to the OSD, fails, and the client releases and re-acquires properly.
#[tokio::test(start_paused = true)]
async fn s9_row2_duplicate_lock_owners_do_not_happen() {
    guarded(async {
        let env = Env::new().await;
        let config = LockConfig { blocklist_on_break_lock: false, ..LockConfig::default() };
        let a = env.open_with(config.clone()).await;
        let b = env.open_with(config.clone()).await;
        let c = env.open_with(config).await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        b.lock.lock_break(LockMode::Exclusive, &a.addr()).await.unwrap();
        b.lock.acquire_lock().await.unwrap();
        settle().await;

        // A's network returns and its watch (same handle) is re-established: reacquire.
        let handle = a.watcher.watch_handle();
        a.lock.reacquire_lock().await.unwrap();
        settle().await;
        assert_eq!(a.watcher.watch_handle(), handle, "same watch, same cookie");
        env.assert_single_owner(&[&a, &b, &c]).await;
        assert!(a.lock.is_lock_owner() ^ b.lock.is_lock_owner());

        // A third client's forwarded op finds exactly one owner.
        let id = rbd_exclusive_lock::next_request_id();
        c.watcher
            .notify_async_request(
                id,
                |async_request_id| NotifyMessage::RebuildObjectMap { async_request_id },
                None,
            )
            .await
            .expect("exactly one owner answered");
        let ran = a.handler.executed().len() + b.handler.executed().len();
        assert_eq!(ran, 1);
        env.assert_single_owner(&[&a, &b, &c]).await;
        env.advance(Duration::from_secs(60)).await;
        env.assert_single_owner(&[&a, &b, &c]).await;
    })
    .await;
}

/// rbd §3.8, §1.9 (PR 53295), §9 row 5: a client blocklisted while its acquire is parked in
/// WAITING_FOR_LOCK is woken by the failed re-watch and fails with -EBLOCKLISTED instead of
/// waiting forever. The owner here has its requests blocked (§2.7), so it answers REQUEST_LOCK
/// with 0 without releasing and nothing else would ever wake the parked acquire.
#[tokio::test(start_paused = true)]
async fn s9_row5_blocklisted_while_waiting_for_lock_fails_instead_of_hanging() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        a.lock.block_requests(0);
        settle().await;
        let acquire = b.lock.acquire_lock();
        settle().await;
        assert_eq!(b.lock.state(), State::WaitingForLock);
        env.cluster.blocklist_add(&b.client.addr(), Duration::ZERO);
        settle().await;
        assert_eq!(acquire.await, Err(rbd_exclusive_lock::LockError::Blocklisted));
        assert_eq!(b.lock.state(), State::Unlocked);
        assert!(b.watcher.is_blocklisted());
        assert_eq!(a.lock.state(), State::Locked);
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}
