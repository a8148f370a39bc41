//! ExclusiveLock (rbd §2): the image-specific layer on top of ManagedLock.
//!
//! It fills ManagedLock's hooks with the image work that must happen around an ownership change
//! (block and flush writes, wait for in-flight ops, open and close the object map and journal,
//! announce the change to peers), parks an acquire that meets a live owner and asks that owner to
//! hand over (WAITING_FOR_LOCK + REQUEST_LOCK), applies the hand-over policy, and admits requests
//! and ops only while the lock is really held.
//!
//! The image work itself belongs to the image layer (the `rbd-ops` crate), which implements
//! [`ImageLockHooks`]; every hook has a no-op default so a layer only overrides what it has.
//! Decisions (the post-acquire table, the pre-acquire peer answer, the policies, admission, the
//! REQUEST_LOCK reply) come from `lock_sm::managed_lock`.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use lock_sm::managed_lock::{self as ml, Action, Locker, Policy, PostAcquireHook, State, errno};
use tokio::sync::Notify;

use crate::error::{LockError, LockResult};
use crate::image_watcher::ImageWatcher;
use crate::managed_lock::{ManagedLock, ManagedLockHooks, ManagedLockOptions};
use crate::requests::BreakConfig;

/// The work the image layer does around ownership changes (rbd §2.2–§2.6). Every method has a
/// no-op default that succeeds, so an image without object map, journal or cache only implements
/// what it has (typically [`ImageLockHooks::set_require_lock`] and
/// [`ImageLockHooks::flush_io`]).
///
/// Results are librbd `r` values (0 or a negative errno) because the lock passes them through its
/// decision table unchanged.
#[async_trait]
pub trait ImageLockHooks: Send + Sync + 'static {
    /// Marks the lock as required (true) or not (false) for I/O. Setting it must flush writes in
    /// flight below the lock layer; clearing it restarts I/O queued while waiting for the lock
    /// (rbd §2.1, §2.3 step 7, §2.4 step 2, §2.11).
    async fn set_require_lock(&self, _required: bool) {}
    /// Interlocks with the image state machine so no refresh runs during the transition (rbd §2.2
    /// PreAcquireRequest, §2.4 step 4).
    async fn prepare_lock(&self) {}
    /// Refreshes the image if a refresh is pending (rbd §2.3 step 1). -ERESTART (the feature was
    /// disabled meanwhile) is ignored; other errors fail the acquire.
    async fn refresh_if_required(&self) -> i32 {
        0
    }
    /// Opens the object map for HEAD (rbd §2.3 step 2). -EFBIG is tolerated.
    async fn open_object_map(&self) -> i32 {
        0
    }
    /// Opens the journal and allocates a tag (rbd §2.3 step 4).
    async fn open_journal(&self) -> i32 {
        0
    }
    /// Plugin acquire hooks such as the persistent write-back cache (rbd §2.3 step 5).
    async fn plugin_acquire(&self) -> i32 {
        0
    }
    /// Cancels cancelable maintenance ops running on this handle; they finish with -ERESTART so
    /// remote requesters retry (rbd §2.4 step 1).
    async fn cancel_op_requests(&self) {}
    /// Plugin release hooks (rbd §2.4 step 5). An error aborts the release.
    async fn plugin_release(&self) -> i32 {
        0
    }
    /// Invalidates the cache (rbd §2.4 step 6). An error other than -EBLOCKLISTED or -EBUSY aborts
    /// the release.
    async fn invalidate_cache(&self) -> i32 {
        0
    }
    /// Flushes I/O at the lock layer (rbd §2.4 step 7). Errors are logged only.
    async fn flush_io(&self) -> i32 {
        0
    }
    /// Closes the journal (rbd §2.4 step 9; errors are ignored).
    async fn close_journal(&self) {}
    /// Closes the object map (rbd §2.4 step 9; errors are ignored).
    async fn close_object_map(&self) {}
    /// Shutdown: detach the lock from the image and shut the I/O dispatch layer down, releasing
    /// I/O queued behind the lock (rbd §2.1, §2.5).
    async fn shut_down(&self) {}
}

/// Image hooks that do nothing, for handles without image state (tests, tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoImageHooks;

impl ImageLockHooks for NoImageHooks {}

/// Lock modes of the public lock API (rbd §2.12). Images only support EXCLUSIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// `RBD_LOCK_MODE_EXCLUSIVE`.
    Exclusive,
    /// `RBD_LOCK_MODE_SHARED`: refused with -EOPNOTSUPP.
    Shared,
}

/// The kind of a forwarded request, for `accept_request` (rbd §2.7). The standard and automatic
/// policies treat them alike; rbd-mirror's policy lets some through while requests are blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RequestType {
    /// `OPERATION_REQUEST_TYPE_GENERAL` (0).
    #[default]
    General,
    /// `OPERATION_REQUEST_TYPE_TRASH_SNAP_REMOVE` (1): SNAP_REMOVE of a trash-namespace snapshot.
    TrashSnapRemove,
    /// `OPERATION_REQUEST_TYPE_FORCE_PROMOTION` (2): SNAP_CREATE of an orphan mirror snapshot.
    ForcePromotion,
}

struct ElState {
    policy: Policy,
    /// The peer's answer saved by `handle_peer_notification`, consumed by the pre-acquire hook.
    peer_r: i32,
    /// `block_requests` nesting count and the first non-zero code given to it.
    blocked_count: u32,
    blocked_r: i32,
    /// Ops started with `start_op` and not finished; pre-release waits for zero.
    ops_in_flight: usize,
}

pub(crate) struct ElShared {
    ml: ManagedLock,
    watcher: ImageWatcher,
    hooks: Arc<dyn ImageLockHooks>,
    state: Mutex<ElState>,
    ops_idle: Notify,
}

impl ElShared {
    fn st(&self) -> MutexGuard<'_, ElState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librbd's ExclusiveLock for one image handle.
///
/// Cheap to clone; clones are the same lock. Created with [`ExclusiveLock::create`] once the image
/// watcher is registered; shut down with [`ExclusiveLock::shut_down`] before the watcher is
/// unregistered.
#[derive(Clone)]
pub struct ExclusiveLock {
    shared: Arc<ElShared>,
}

impl fmt::Debug for ExclusiveLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExclusiveLock")
            .field("managed_lock", &self.shared.ml)
            .field("policy", &self.policy())
            .finish()
    }
}

/// Keeps one admitted op counted (rbd §2.7 `start_op`); the lock is not released while any
/// guard lives. Drop it when the op finishes.
#[must_use = "the op counts as in flight only while the guard lives"]
pub struct OpGuard {
    shared: Arc<ElShared>,
}

impl fmt::Debug for OpGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpGuard")
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        let mut st = self.shared.st();
        st.ops_in_flight = st.ops_in_flight.saturating_sub(1);
        if st.ops_in_flight == 0 {
            self.shared.ops_idle.notify_waiters();
        }
    }
}

impl ExclusiveLock {
    /// Creates the exclusive lock of an image handle and runs `init` (rbd §2.1): UNINITIALIZED →
    /// INITIALIZING → (lock required for writes) → UNLOCKED. The handle's policy starts automatic
    /// unless `rbd_auto_exclusive_lock_until_manual_request` is off. The image watcher is told
    /// about the lock so it can answer REQUEST_LOCK and forwarded requests.
    pub async fn create(watcher: ImageWatcher, hooks: Arc<dyn ImageLockHooks>) -> ExclusiveLock {
        let config = watcher.config().clone();
        let policy = if config.auto_exclusive_lock_until_manual_request {
            Policy::Automatic
        } else {
            Policy::Standard
        };
        let options = ManagedLockOptions {
            oid: watcher.oid().to_owned(),
            break_config: BreakConfig {
                blocklist_on_break_lock: config.blocklist_on_break_lock,
                blocklist_expire: config.blocklist_expire,
            },
            initial_state: ml::EXCLUSIVE_LOCK_INITIAL_STATE,
            label: watcher.image_id().to_owned(),
        };
        let shared = Arc::new_cyclic(|weak: &Weak<ElShared>| {
            let ml_hooks = Arc::new(ElHooks { el: weak.clone() });
            ElShared {
                ml: ManagedLock::new(watcher.ioctx().clone(), options, watcher.lock_watcher(), ml_hooks),
                watcher: watcher.clone(),
                hooks,
                state: Mutex::new(ElState {
                    policy,
                    peer_r: 0,
                    blocked_count: 0,
                    blocked_r: 0,
                    ops_in_flight: 0,
                }),
                ops_idle: Notify::new(),
            }
        });
        let lock = ExclusiveLock { shared };
        let [initializing, unlocked] = ml::EXCLUSIVE_LOCK_INIT_STATES;
        lock.shared.ml.set_state(initializing);
        lock.shared.hooks.set_require_lock(true).await;
        lock.shared.ml.set_state(unlocked);
        watcher.attach_exclusive_lock(Arc::downgrade(&lock.shared));
        lock
    }

    pub(crate) fn from_shared(shared: Arc<ElShared>) -> ExclusiveLock {
        ExclusiveLock { shared }
    }

    /// The underlying managed lock (state, cookie, raw entry points).
    pub fn managed_lock(&self) -> &ManagedLock {
        &self.shared.ml
    }

    /// The image watcher this lock announces itself through.
    pub fn watcher(&self) -> &ImageWatcher {
        &self.shared.watcher
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.ml.state()
    }

    /// Whether this handle believes it owns the lock (rbd §1.1).
    pub fn is_lock_owner(&self) -> bool {
        self.shared.ml.is_lock_owner()
    }

    /// The hand-over policy in force (rbd §2.8).
    pub fn policy(&self) -> Policy {
        self.shared.st().policy
    }

    // ----- ManagedLock entry points ----------------------------------------------------------

    /// Acquires the lock; a live owner is asked to hand over (rbd §2.3, §3.5). Resolves to
    /// -EROFS if a standard-policy owner refuses.
    pub fn acquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.shared.ml.acquire_lock()
    }

    /// Tries to acquire; a live owner makes it succeed without ownership (rbd §2.3).
    pub fn try_acquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.shared.ml.try_acquire_lock()
    }

    /// Releases the lock.
    pub fn release_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.shared.ml.release_lock()
    }

    /// Moves the lock to the current watch handle (rbd §1.4 REACQUIRE). The image watcher calls
    /// this after every re-watch.
    pub fn reacquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.shared.ml.reacquire_lock()
    }

    /// Shuts the lock down (rbd §2.1): queues SHUT_DOWN, then wakes an acquire parked in
    /// WAITING_FOR_LOCK so that it finishes instead of waiting for the peer.
    pub fn shut_down(&self) -> impl Future<Output = LockResult> + Send + 'static {
        let fut = self.shared.ml.shut_down();
        self.handle_peer_notification(ml::SHUT_DOWN_PEER_NOTIFICATION);
        fut
    }

    /// `handle_peer_notification(r)` (rbd §2.10): in WAITING_FOR_LOCK, save the peer's answer for
    /// the pre-acquire hook and re-run the parked acquire. Returns whether it acted.
    pub fn handle_peer_notification(&self, r: i32) -> bool {
        let shared = &self.shared;
        shared.ml.restart_waiting_for_lock(|| shared.st().peer_r = r)
    }

    /// The current managed-lock owner (rbd §1.6.1).
    pub async fn get_locker(&self) -> LockResult<Locker> {
        self.shared.ml.get_locker().await
    }

    /// Breaks `locker`'s lock (rbd §1.6.3); `force` skips the liveness check.
    pub async fn break_lock(&self, locker: &Locker, force: bool) -> LockResult {
        self.shared.ml.break_lock(locker, force).await
    }

    /// Asks the OSD whether this handle holds the lock (rbd §1.3).
    pub async fn assert_header_locked(&self) -> LockResult {
        self.shared.ml.assert_header_locked().await
    }

    // ----- the public lock API (rbd §2.12) ------------------------------------------------------

    /// `rbd_lock_acquire(mode)`: switches this handle to the standard policy for the rest of its
    /// life (it will never hand the lock over on request, and its own I/O stops auto-acquiring),
    /// then acquires. -EOPNOTSUPP for SHARED; -EROFS if a standard-policy owner refuses; if the
    /// acquire ends without ownership, the unlocked-op error (-EROFS or -EBLOCKLISTED).
    pub async fn lock_acquire(&self, mode: LockMode) -> LockResult {
        if mode != LockMode::Exclusive {
            return Err(LockError::NotSupported);
        }
        {
            let mut st = self.shared.st();
            if st.policy != Policy::Standard {
                tracing::info!(parent: &self.shared.watcher.span(), "switching to the standard lock policy");
                st.policy = Policy::Standard;
            }
        }
        if self.is_lock_owner() {
            return Ok(());
        }
        self.acquire_lock().await?;
        if !self.is_lock_owner() {
            return Err(self.unlocked_op_error());
        }
        Ok(())
    }

    /// `rbd_lock_release()`: -EINVAL unless this handle owns the lock.
    pub async fn lock_release(&self) -> LockResult {
        if !self.is_lock_owner() {
            return Err(LockError::InvalidArgument);
        }
        self.release_lock().await
    }

    /// `rbd_lock_get_owners()`: the owner's address (`ip:port/nonce`); -ENOENT if nobody holds the
    /// lock, -EBUSY for an external lock (rbd §10 fact 34).
    pub async fn lock_get_owners(&self) -> LockResult<Vec<String>> {
        let locker = self.get_locker().await?;
        Ok(vec![locker.address])
    }

    /// `rbd_lock_break(mode, owner)`: force-breaks the lock of the owner at address `owner`,
    /// blocklisting it first if configured. -EOPNOTSUPP for SHARED, -ENOENT without a lock, -EBUSY
    /// if `owner` is not the current owner's address or this handle owns the lock (rbd §2.12).
    pub async fn lock_break(&self, mode: LockMode, owner: &str) -> LockResult {
        if mode != LockMode::Exclusive {
            return Err(LockError::NotSupported);
        }
        let locker = self.get_locker().await?;
        if locker.address != owner {
            return Err(LockError::Busy);
        }
        self.break_lock(&locker, true).await
    }

    /// `rbd_is_exclusive_lock_owner()`: asks the OSD (rbd §9 row 9). -EBUSY and -ENOENT mean
    /// false; other errors (-EBLOCKLISTED) are returned.
    pub async fn is_exclusive_lock_owner(&self) -> LockResult<bool> {
        match self.assert_header_locked().await {
            Ok(()) => Ok(true),
            Err(LockError::Busy | LockError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ----- admission (rbd §2.7) --------------------------------------------------------------

    /// `accept_request(type, &r)`: whether this handle answers a forwarded request as owner.
    /// Returns (accepted, r); r is 0 when accepted, else the code of the first active
    /// `block_requests` (often 0).
    ///
    /// The request type only matters to a policy that lets some types through while requests are
    /// blocked (rbd-mirror's); the automatic and standard policies let none through, so it is
    /// accepted for interface fidelity and otherwise unused.
    pub fn accept_request(&self, _request_type: RequestType) -> (bool, i32) {
        let shared = &self.shared;
        shared.ml.with_state(|state, shutting_down| {
            let st = shared.st();
            let blocked = (st.blocked_count > 0).then_some(st.blocked_r);
            ml::accept_request(state, shutting_down, blocked, st.policy.accepts_blocked_request())
        })
    }

    /// `accept_ops()`: whether ops may start (LOCKED or POST_ACQUIRING, not shutting down).
    pub fn accept_ops(&self) -> bool {
        self.shared.ml.with_state(ml::accept_ops)
    }

    /// `start_op()`: admits an op that needs the lock, or fails with the unlocked-op error
    /// (-EROFS, or -EBLOCKLISTED when fenced). A release waits until every guard is dropped.
    pub fn start_op(&self) -> LockResult<OpGuard> {
        let shared = &self.shared;
        let admitted = shared.ml.with_state(|state, shutting_down| {
            let ok = ml::accept_ops(state, shutting_down);
            if ok {
                shared.st().ops_in_flight += 1;
            }
            ok
        });
        if admitted { Ok(OpGuard { shared: self.shared.clone() }) } else { Err(self.unlocked_op_error()) }
    }

    /// Admits an op for this handle's own I/O the way the lock's I/O dispatch layer does
    /// (rbd §2.11): if not owner, the standard policy fails at once with the unlocked-op error,
    /// the automatic policy acquires the lock (asking the owner to hand over) and tries again.
    ///
    /// An acquire that fails with -ESHUTDOWN means the lock is going away (image closing or the
    /// feature being disabled); it is returned so the caller can re-dispatch without the lock.
    pub async fn start_op_acquiring(&self) -> LockResult<OpGuard> {
        loop {
            match self.start_op() {
                Ok(guard) => return Ok(guard),
                Err(LockError::Blocklisted) => return Err(LockError::Blocklisted),
                Err(e) if !self.policy().may_auto_request_lock() => return Err(e),
                Err(_) => {}
            }
            // Each pass waits for a whole acquire, which either makes this handle the owner (and
            // the next start_op succeeds unless a peer took it back in between) or fails.
            self.acquire_lock().await?;
        }
    }

    /// `get_unlocked_op_error()`: -EBLOCKLISTED when the watcher is blocklisted, else -EROFS.
    pub fn unlocked_op_error(&self) -> LockError {
        let blocklisted = self.shared.watcher.is_blocklisted();
        LockError::from_r(ml::unlocked_op_error(blocklisted), blocklisted)
    }

    /// `block_requests(r)`: stop accepting forwarded requests; the first non-zero `r` is what
    /// refused requests are answered with. Nests with [`ExclusiveLock::unblock_requests`].
    pub fn block_requests(&self, r: i32) {
        let mut st = self.shared.st();
        st.blocked_count += 1;
        if st.blocked_r == 0 {
            st.blocked_r = r;
        }
    }

    /// `unblock_requests()`: undoes one `block_requests`.
    pub fn unblock_requests(&self) {
        let mut st = self.shared.st();
        st.blocked_count = st.blocked_count.saturating_sub(1);
        if st.blocked_count == 0 {
            st.blocked_r = 0;
        }
    }

    /// The owner's answer to a peer's REQUEST_LOCK under this handle's state and policy (rbd §2.9),
    /// queuing the release if the policy hands the lock over.
    pub(crate) fn handle_request_lock(
        &self,
        from_self: bool,
        own_client_id_known: bool,
        force: bool,
    ) -> ml::RequestLockReply {
        let ctx = ml::RequestLockContext {
            from_self,
            is_owner: self.is_lock_owner(),
            accept: self.accept_request(RequestType::General),
            own_client_id_known,
            policy: self.policy(),
            force,
        };
        let reply = ml::request_lock_reply(&ctx);
        if let ml::RequestLockReply::Response { release: true, .. } = reply {
            tracing::info!(parent: &self.shared.watcher.span(), "peer requested the lock: releasing");
            // Queued now; the release runs after the ack is sent.
            drop(self.release_lock());
        }
        reply
    }

    async fn wait_for_ops(&self) {
        loop {
            let idle = self.shared.ops_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.shared.st().ops_in_flight == 0 {
                return;
            }
            idle.await;
        }
    }

    fn take_peer_r(&self) -> i32 {
        std::mem::take(&mut self.shared.st().peer_r)
    }
}

/// ManagedLock's hooks as ExclusiveLock fills them. Holds the lock weakly: the managed lock owns
/// its hooks, and the hooks must not keep the exclusive lock alive.
struct ElHooks {
    el: Weak<ElShared>,
}

impl ElHooks {
    fn el(&self) -> Option<ExclusiveLock> {
        self.el.upgrade().map(ExclusiveLock::from_shared)
    }
}

#[async_trait]
impl ManagedLockHooks for ElHooks {
    async fn shutdown(&self, _lock: &ManagedLock, r: i32) -> i32 {
        let Some(el) = self.el() else { return r };
        el.shared.hooks.shut_down().await;
        el.shared.watcher.flush_notifies().await;
        r
    }

    /// rbd §2.2.
    async fn pre_acquire(&self, _lock: &ManagedLock) -> i32 {
        let Some(el) = self.el() else { return 0 };
        let r = ml::pre_acquire_hook(el.take_peer_r());
        if r < 0 {
            tracing::debug!(r, "peer refused to release the lock");
            return r;
        }
        el.shared.hooks.prepare_lock().await;
        el.shared.watcher.flush_notifies().await;
        0
    }

    /// rbd §2.3.
    async fn post_acquire(&self, lock: &ManagedLock, r: i32) -> i32 {
        let Some(el) = self.el() else { return r };
        let active = lock.active_action().unwrap_or(Action::AcquireLock);
        match ml::post_acquire_hook(r, active) {
            PostAcquireHook::Return(r) => r,
            PostAcquireHook::TryLockWithoutOwnership => 0,
            PostAcquireHook::WaitForLock => {
                if lock.is_shutting_down() {
                    // A shutdown is queued behind this acquire and kicked it: do not park again
                    // (that would wait for a peer that may never answer) but let the shutdown run.
                    return -errno::ESHUTDOWN;
                }
                lock.set_state(ml::PARKED_STATE);
                el.shared.watcher.spawn_request_lock();
                ml::PARKED_RESULT
            }
            PostAcquireHook::RunPostAcquire => post_acquire_steps(&el, lock).await,
        }
    }

    /// rbd §2.4.
    async fn pre_release(&self, _lock: &ManagedLock, shutting_down: bool) -> i32 {
        let Some(el) = self.el() else { return 0 };
        let hooks = &el.shared.hooks;
        hooks.cancel_op_requests().await;
        hooks.set_require_lock(true).await;
        el.wait_for_ops().await;
        if !shutting_down {
            hooks.prepare_lock().await;
        }
        let r = hooks.plugin_release().await;
        if r < 0 {
            tracing::warn!(r, "plugin release failed: release aborted");
            hooks.set_require_lock(false).await;
            return r;
        }
        let r = hooks.invalidate_cache().await;
        if r < 0 && r != -errno::EBLOCKLISTED && r != -errno::EBUSY {
            tracing::warn!(r, "cache invalidation failed: release aborted");
            hooks.set_require_lock(false).await;
            return r;
        }
        let r = hooks.flush_io().await;
        if r < 0 {
            tracing::warn!(r, "flush before release failed");
        }
        el.shared.watcher.flush_notifies().await;
        hooks.close_journal().await;
        hooks.close_object_map().await;
        0
    }

    /// rbd §2.5.
    async fn post_release(&self, _lock: &ManagedLock, shutting_down: bool, r: i32) -> i32 {
        let Some(el) = self.el() else { return r };
        if shutting_down {
            el.shared.hooks.shut_down().await;
            el.shared.watcher.notify_released_lock();
            el.shared.watcher.flush_notifies().await;
        } else if r >= 0 {
            el.shared.watcher.notify_released_lock();
        }
        r
    }

    /// rbd §2.6.
    async fn post_reacquire(&self, _lock: &ManagedLock, r: i32) -> i32 {
        let Some(el) = self.el() else { return r };
        if r >= 0 {
            el.shared.watcher.notify_acquired_lock();
        }
        r
    }
}

/// PostAcquireRequest (rbd §2.3): refresh, object map, POST_ACQUIRING, journal and plugins,
/// then announce the new owner and let queued I/O through.
async fn post_acquire_steps(el: &ExclusiveLock, lock: &ManagedLock) -> i32 {
    let hooks = &el.shared.hooks;
    let r = hooks.refresh_if_required().await;
    if r < 0 && r != -errno::ERESTART {
        tracing::warn!(r, "refresh after acquire failed");
        return r;
    }
    let r = hooks.open_object_map().await;
    if r < 0 && r != -rados_store::error::errno::EFBIG {
        tracing::warn!(r, "opening the object map failed");
        return r;
    }
    lock.set_state(State::PostAcquiring);
    let mut r = hooks.open_journal().await;
    if r >= 0 {
        r = hooks.plugin_acquire().await;
    }
    if r < 0 {
        tracing::warn!(r, "post-acquire failed: reverting");
        let _ = hooks.plugin_release().await;
        hooks.close_journal().await;
        hooks.close_object_map().await;
        return r;
    }
    el.shared.watcher.notify_acquired_lock();
    hooks.set_require_lock(false).await;
    0
}
