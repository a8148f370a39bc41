//! The plain ManagedLock runtime (rbd §1) on the embedded cluster, with a stub watcher and
//! scripted hooks, re-creating upstream's ManagedLock mock tests (rbd §8) against real cls_lock.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Env, guarded, settle};
use rados_store::{IoCtx, watch_channel};
use rbd_exclusive_lock::requests::BreakConfig;
use rbd_exclusive_lock::{Action, State};
use rbd_exclusive_lock::{
    LockError, LockWatcher, ManagedLock, ManagedLockHooks, ManagedLockOptions, PassThroughHooks,
};
use tokio::sync::watch;

/// A watcher whose handle and blocklist flag the test sets.
#[derive(Default)]
struct StubWatcher {
    handle: AtomicU64,
    blocklisted: AtomicBool,
}

impl LockWatcher for StubWatcher {
    fn watch_handle(&self) -> u64 {
        self.handle.load(Ordering::SeqCst)
    }
    fn is_blocklisted(&self) -> bool {
        self.blocklisted.load(Ordering::SeqCst)
    }
}

/// Hooks with scripted results and a gate inside post-acquire, recording what ran and in which
/// state.
struct ScriptedHooks {
    /// Replaces post-acquire's pass-through when set.
    post_acquire_r: Mutex<Option<i32>>,
    pre_release_r: AtomicI32,
    gate: watch::Sender<bool>,
    log: Mutex<Vec<String>>,
}

impl ScriptedHooks {
    fn new() -> Arc<ScriptedHooks> {
        Arc::new(ScriptedHooks {
            post_acquire_r: Mutex::new(None),
            pre_release_r: AtomicI32::new(0),
            gate: watch::Sender::new(true),
            log: Mutex::new(Vec::new()),
        })
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

#[async_trait]
impl ManagedLockHooks for ScriptedHooks {
    async fn shutdown(&self, lock: &ManagedLock, r: i32) -> i32 {
        self.push(format!("shutdown@{}", lock.state()));
        r
    }
    async fn pre_acquire(&self, lock: &ManagedLock) -> i32 {
        self.push(format!("pre_acquire@{}", lock.state()));
        0
    }
    async fn post_acquire(&self, lock: &ManagedLock, r: i32) -> i32 {
        self.push(format!("post_acquire({r})@{}", lock.state()));
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        self.post_acquire_r.lock().unwrap().unwrap_or(r)
    }
    async fn pre_release(&self, lock: &ManagedLock, shutting_down: bool) -> i32 {
        self.push(format!("pre_release({shutting_down})@{}", lock.state()));
        self.pre_release_r.load(Ordering::SeqCst)
    }
    async fn post_release(&self, lock: &ManagedLock, shutting_down: bool, r: i32) -> i32 {
        self.push(format!("post_release({shutting_down},{r})@{}", lock.state()));
        r
    }
    async fn post_reacquire(&self, lock: &ManagedLock, r: i32) -> i32 {
        self.push(format!("post_reacquire({r})@{}", lock.state()));
        r
    }
}

struct Fixture {
    env: Env,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture { env: Env::new().await }
    }

    fn ioctx(&self) -> IoCtx {
        self.env.cluster.connect().ioctx(common::POOL, "").unwrap()
    }

    /// A real watch on the header, so liveness checks see the handle.
    async fn watch(&self, io: &IoCtx) -> u64 {
        let (ctx, rx) = watch_channel();
        let h = io.watch(&self.env.oid, ctx).await.unwrap();
        // Keep the receiver alive so the watch context stays usable; events are ignored.
        std::mem::forget(rx);
        h
    }

    fn lock(
        &self,
        io: IoCtx,
        watcher: Arc<StubWatcher>,
        hooks: Arc<dyn ManagedLockHooks>,
        blocklist_on_break_lock: bool,
    ) -> ManagedLock {
        let options = ManagedLockOptions {
            oid: self.env.oid.clone(),
            break_config: BreakConfig { blocklist_on_break_lock, blocklist_expire: Duration::ZERO },
            initial_state: State::Unlocked,
            label: common::IMAGE_ID.into(),
        };
        ManagedLock::new(io, options, watcher, hooks)
    }

    /// An io context with a real watch and a plain lock using it.
    async fn watched_lock(
        &self,
        hooks: Arc<dyn ManagedLockHooks>,
        blocklist_on_break_lock: bool,
    ) -> (ManagedLock, Arc<StubWatcher>, IoCtx) {
        let io = self.ioctx();
        let w = Arc::new(StubWatcher::default());
        w.handle.store(self.watch(&io).await, Ordering::SeqCst);
        (self.lock(io.clone(), w.clone(), hooks, blocklist_on_break_lock), w, io)
    }

    /// The single-owner invariant for plain locks: at most one cls locker, at most one lock that
    /// believes it owns, and a LOCKED lock holds the cls lock under its own entity and cookie.
    async fn assert_single_owner(&self, locks: &[&ManagedLock]) {
        let info = self.env.lock_info().await;
        assert!(info.lockers.len() <= 1, "two cls lockers: {:?}", info.lockers);
        assert!(locks.iter().filter(|l| l.is_lock_owner()).count() <= 1, "two owners");
        for l in locks.iter().filter(|l| l.state() == State::Locked) {
            assert!(
                info.lockers.keys().any(|k| k.cookie == l.cookie() && k.entity == l.ioctx().entity()),
                "LOCKED without holding the cls lock: {l:?} vs {:?}",
                info.lockers
            );
        }
    }

    async fn cls_cookies(&self) -> Vec<String> {
        self.env.lock_info().await.lockers.keys().map(|k| k.cookie.clone()).collect()
    }
}

/// rbd §8 ManagedLock `StateTransitions`, §10 fact 20: acquire, release, acquire, shut down, with
/// the owner flag at each step; shutdown from LOCKED runs pre-release in PRE_SHUTTING_DOWN and
/// post-release in SHUTTING_DOWN, then unlocks (rbd §1.4 SHUT_DOWN).
#[tokio::test(start_paused = true)]
async fn s8_state_transitions() {
    guarded(async {
        let fx = Fixture::new().await;
        let hooks = ScriptedHooks::new();
        let (ml, w, _io) = fx.watched_lock(hooks.clone(), true).await;
        assert!(!ml.is_lock_owner());
        ml.acquire_lock().await.unwrap();
        assert!(ml.is_lock_owner());
        fx.assert_single_owner(&[&ml]).await;
        let cookie = format!("auto {}", w.handle.load(Ordering::SeqCst));
        assert_eq!(ml.cookie(), cookie);
        assert_eq!(fx.cls_cookies().await, vec![cookie.clone()]);
        ml.release_lock().await.unwrap();
        assert!(!ml.is_lock_owner());
        assert_eq!(ml.cookie(), "");
        assert!(fx.cls_cookies().await.is_empty());
        ml.acquire_lock().await.unwrap();
        assert!(ml.is_lock_owner());
        ml.shut_down().await.unwrap();
        assert_eq!(ml.state(), State::Shutdown);
        assert!(!ml.is_lock_owner());
        assert!(fx.cls_cookies().await.is_empty());
        let log = hooks.log();
        assert_eq!(
            log,
            vec![
                "pre_acquire@ACQUIRING",
                "post_acquire(0)@ACQUIRING",
                "pre_release(false)@PRE_RELEASING",
                "post_release(false,0)@RELEASING",
                "pre_acquire@ACQUIRING",
                "post_acquire(0)@ACQUIRING",
                "pre_release(true)@PRE_SHUTTING_DOWN",
                "post_release(true,0)@SHUTTING_DOWN",
            ]
        );
        // §10 fact 17.
        assert_eq!(ml.acquire_lock().await, Err(LockError::ShutDown));
        assert_eq!(ml.try_acquire_lock().await, Err(LockError::ShutDown));
        assert_eq!(ml.release_lock().await, Err(LockError::ShutDown));
        assert_eq!(ml.shut_down().await, Err(LockError::ShutDown));
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §1.2 rule 2, §8 `ConcurrentRequests`, §10 fact 18; rbd §1.4 "taken but post-acquire
/// failed": acquires requested while an acquire is in flight join it and receive its error (the
/// lock taken meanwhile is given back); a release queued behind runs afterwards.
#[tokio::test(start_paused = true)]
async fn s1_2_concurrent_requests_join_the_failing_acquire() {
    guarded(async {
        let fx = Fixture::new().await;
        let hooks = ScriptedHooks::new();
        *hooks.post_acquire_r.lock().unwrap() = Some(-22);
        hooks.gate.send_replace(false);
        let (ml, _w, _io) = fx.watched_lock(hooks.clone(), true).await;

        let a1 = ml.acquire_lock();
        settle().await;
        assert_eq!(ml.state(), State::Acquiring);
        assert_eq!(fx.cls_cookies().await.len(), 1, "the cls lock is taken, post-acquire is running");
        let a2 = ml.acquire_lock();
        let a3 = ml.acquire_lock();
        let r1 = ml.release_lock();
        let a4 = ml.acquire_lock();
        let t1 = ml.try_acquire_lock();
        assert_eq!(ml.queued_actions(), vec![Action::AcquireLock, Action::ReleaseLock, Action::TryLock]);

        hooks.gate.send_replace(true);
        for f in [a1, a2, a3, a4] {
            assert_eq!(f.await, Err(LockError::InvalidArgument));
        }
        r1.await.expect("the release runs afterwards, from UNLOCKED");
        // The try-lock is a separate action (rule 5); it fails the same way here.
        assert_eq!(t1.await, Err(LockError::InvalidArgument));
        assert_eq!(ml.state(), State::Unlocked);
        assert!(fx.cls_cookies().await.is_empty(), "the lock taken by the failed acquire was given back");
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §1.2 rule 2: acquire(A), release(R), acquire(B) queue as [ACQUIRE{A,B}, RELEASE{R}], so B
/// completes with A (owner) before R releases.
#[tokio::test(start_paused = true)]
async fn s1_2_acquire_release_acquire_coalesces_into_the_first_acquire() {
    guarded(async {
        let fx = Fixture::new().await;
        let hooks = ScriptedHooks::new();
        hooks.gate.send_replace(false);
        let (ml, _w, _io) = fx.watched_lock(hooks.clone(), true).await;
        let a = ml.acquire_lock();
        settle().await;
        let r = ml.release_lock();
        let b = ml.acquire_lock();
        assert_eq!(ml.queued_actions(), vec![Action::AcquireLock, Action::ReleaseLock]);
        hooks.gate.send_replace(true);
        a.await.unwrap();
        b.await.unwrap();
        r.await.unwrap();
        assert_eq!(ml.state(), State::Unlocked, "B did not re-acquire after R");
        assert!(fx.cls_cookies().await.is_empty());
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §8 ManagedLock `AcquireLockAlreadyLocked`: in the plain ManagedLock an acquire that meets a
/// live owner fails with -EAGAIN and is not parked.
#[tokio::test(start_paused = true)]
async fn s8_plain_managed_lock_reports_eagain_for_a_live_owner() {
    guarded(async {
        let fx = Fixture::new().await;
        let (owner, _, _) = fx.watched_lock(Arc::new(PassThroughHooks), true).await;
        owner.acquire_lock().await.unwrap();
        let (other, _, _) = fx.watched_lock(Arc::new(PassThroughHooks), true).await;
        assert_eq!(other.acquire_lock().await, Err(LockError::OwnerAlive));
        assert_eq!(other.state(), State::Unlocked);
        // §10 fact 21: the owner cannot break its own lock; a non-owner sees the owner.
        let locker = other.get_locker().await.unwrap();
        assert_eq!(locker.cookie, owner.cookie());
        assert_eq!(owner.break_lock(&locker, true).await, Err(LockError::Busy));
        // A non-forced break of a live owner is refused with -EAGAIN (§10 fact 10).
        assert_eq!(other.break_lock(&locker, false).await, Err(LockError::OwnerAlive));
        assert!(owner.assert_header_locked().await.is_ok());
        assert_eq!(other.assert_header_locked().await, Err(LockError::Busy));
        fx.assert_single_owner(&[&owner, &other]).await;
    })
    .await;
}

/// rbd §8 `ReleaseLockError` / `ReleaseLockBlocklist`, rbd §1.4 RELEASE: a pre-release failure
/// skips the unlock; -EINVAL keeps the lock LOCKED, -EBLOCKLISTED ends UNLOCKED.
#[tokio::test(start_paused = true)]
async fn s8_release_lock_error_and_blocklist() {
    guarded(async {
        let fx = Fixture::new().await;
        let hooks = ScriptedHooks::new();
        let (ml, _w, _io) = fx.watched_lock(hooks.clone(), true).await;
        ml.acquire_lock().await.unwrap();
        hooks.pre_release_r.store(-22, Ordering::SeqCst);
        assert_eq!(ml.release_lock().await, Err(LockError::InvalidArgument));
        assert_eq!(ml.state(), State::Locked);
        assert_eq!(fx.cls_cookies().await, vec![ml.cookie()]);

        hooks.pre_release_r.store(-108, Ordering::SeqCst);
        assert_eq!(ml.release_lock().await.unwrap_err().errno(), 108);
        assert_eq!(ml.state(), State::Unlocked);
        assert_eq!(ml.cookie(), "", "the cookie is cleared");
        assert_eq!(fx.cls_cookies().await.len(), 1, "the unlock was skipped");
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §8 `ShutDownWhileWaiting`, §10 fact 19: without a watch the acquire parks in
/// WAITING_FOR_REGISTER; shut_down fails it with -ESHUTDOWN and completes.
#[tokio::test(start_paused = true)]
async fn s8_shut_down_while_waiting_for_register() {
    guarded(async {
        let fx = Fixture::new().await;
        let w = Arc::new(StubWatcher::default());
        let ml = fx.lock(fx.ioctx(), w, Arc::new(PassThroughHooks), true);
        let acquire = ml.acquire_lock();
        settle().await;
        assert_eq!(ml.state(), State::WaitingForRegister);
        let shut = ml.shut_down();
        assert_eq!(acquire.await, Err(LockError::ShutDown));
        shut.await.unwrap();
        assert_eq!(ml.state(), State::Shutdown);
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §1.3 `reacquire_lock`, §1.5: the watch comes back; reacquire restarts the waiting acquire
/// (and completes at once), which then takes the lock with the new handle's cookie.
#[tokio::test(start_paused = true)]
async fn s1_5_reacquire_wakes_an_acquire_waiting_for_register() {
    guarded(async {
        let fx = Fixture::new().await;
        let io = fx.ioctx();
        let w = Arc::new(StubWatcher::default());
        let ml = fx.lock(io.clone(), w.clone(), Arc::new(PassThroughHooks), true);
        let acquire = ml.acquire_lock();
        settle().await;
        assert_eq!(ml.state(), State::WaitingForRegister);
        let h = fx.watch(&io).await;
        w.handle.store(h, Ordering::SeqCst);
        ml.reacquire_lock().await.unwrap();
        acquire.await.unwrap();
        assert_eq!(ml.state(), State::Locked);
        assert_eq!(fx.cls_cookies().await, vec![format!("auto {h}")]);
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §1.4, §1.9 (PR 50630, in 16.2.15), §9 row 4: acquiring without a watch while blocklisted
/// fails fast with -EBLOCKLISTED instead of hanging in WAITING_FOR_REGISTER.
#[tokio::test(start_paused = true)]
async fn s1_9_blocklisted_without_watch_fails_fast() {
    guarded(async {
        let fx = Fixture::new().await;
        let w = Arc::new(StubWatcher::default());
        w.blocklisted.store(true, Ordering::SeqCst);
        let ml = fx.lock(fx.ioctx(), w, Arc::new(PassThroughHooks), true);
        assert_eq!(ml.acquire_lock().await, Err(LockError::Blocklisted));
        assert_eq!(ml.state(), State::Unlocked);
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §8 `ReacquireLock`, §10 fact 22: a new watch handle moves the lock to the new cookie
/// through cls `set_cookie`; the post-reacquire hook sees 0.
#[tokio::test(start_paused = true)]
async fn s8_reacquire_lock_updates_the_cookie() {
    guarded(async {
        let fx = Fixture::new().await;
        let hooks = ScriptedHooks::new();
        let (ml, w, io) = fx.watched_lock(hooks.clone(), true).await;
        ml.acquire_lock().await.unwrap();
        let h2 = fx.watch(&io).await;
        w.handle.store(h2, Ordering::SeqCst);
        ml.reacquire_lock().await.unwrap();
        assert_eq!(ml.state(), State::Locked);
        assert_eq!(ml.cookie(), format!("auto {h2}"));
        assert_eq!(fx.cls_cookies().await, vec![format!("auto {h2}")]);
        assert_eq!(hooks.log().last().unwrap(), "post_reacquire(0)@REACQUIRING");
        // Reacquire outside a lock-related state is ignored (rbd §1.3).
        ml.release_lock().await.unwrap();
        ml.reacquire_lock().await.unwrap();
        assert_eq!(ml.state(), State::Unlocked);
        fx.assert_single_owner(&[&ml]).await;
    })
    .await;
}

/// rbd §8 `ReacquireWithSameCookie`, §10 fact 23, §9 rows 2–3: with blocklisting on, a reacquire
/// with an unchanged cookie skips the OSD but still runs the post-reacquire hook (which
/// re-announces ownership); with blocklisting off it goes to the OSD, whose `set_cookie` refuses
/// (-EBUSY), forcing a real release and re-acquire.
#[tokio::test(start_paused = true)]
async fn s8_reacquire_with_same_cookie() {
    for blocklist in [true, false] {
        guarded(async {
            let fx = Fixture::new().await;
            let hooks = ScriptedHooks::new();
            let (ml, _w, _io) = fx.watched_lock(hooks.clone(), blocklist).await;
            ml.acquire_lock().await.unwrap();
            let cookie = ml.cookie();
            hooks.log.lock().unwrap().clear();
            ml.reacquire_lock().await.unwrap();
            settle().await;
            assert_eq!(ml.state(), State::Locked);
            assert_eq!(ml.cookie(), cookie);
            assert_eq!(fx.cls_cookies().await, vec![cookie.clone()]);
            let expected: Vec<&str> = if blocklist {
                vec!["post_reacquire(0)@REACQUIRING"]
            } else {
                vec![
                    "post_reacquire(-16)@REACQUIRING",
                    "pre_release(false)@PRE_RELEASING",
                    "post_release(false,0)@RELEASING",
                    "pre_acquire@ACQUIRING",
                    "post_acquire(0)@ACQUIRING",
                ]
            };
            assert_eq!(hooks.log(), expected, "blocklist_on_break_lock = {blocklist}");
            fx.assert_single_owner(&[&ml]).await;
        })
        .await;
    }
}
