//! The ManagedLock runtime (rbd §1): librbd's generic lock state machine over RADOS.
//!
//! `lock_sm::managed_lock` decides everything: what a public call does at once
//! ([`entry_decision`]), how the active action starts ([`start_action`]), what follows each hook
//! and sub-request (`after_*`), and the action queue with its coalescing ([`ActionQueue`]). This
//! module is the thin runtime around those decisions: it owns the mutex, the queue of waiting
//! callers (oneshot senders), the cookie and the tasks that run hooks and RADOS calls.
//!
//! # How an action runs
//!
//! Every decision is taken under the internal mutex, and the state it enters is stored before the
//! mutex is released, so two callers can never start the same action: whoever sees a
//! non-transition state and starts the active action has already moved the state into a
//! transition state when the next caller looks. The asynchronous part (hooks, cls calls) then runs
//! on a spawned task, which takes the mutex again to record each step and finally completes the
//! action and starts the next one. Parked actions (WAITING_FOR_REGISTER, WAITING_FOR_LOCK) have no
//! task at all; the kick that un-parks them ([`ManagedLock::reacquire_lock`],
//! `ExclusiveLock::handle_peer_notification`) starts a fresh one.
//!
//! Callers get their result through a oneshot channel. The public calls enqueue *synchronously*
//! and return a future for the result, so the order in which a program calls them is the order in
//! which they are queued, whatever the order in which the futures are later polled.
//!
//! [`entry_decision`]: lock_sm::managed_lock::entry_decision
//! [`start_action`]: lock_sm::managed_lock::start_action
//! [`ActionQueue`]: lock_sm::managed_lock::ActionQueue

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use lock_sm::managed_lock::{
    self as ml, AcquireFinish, Action, ActionQueue, AfterPreAcquire, AfterPreRelease, EntryDecision,
    EntryPoint, Locker, ReacquireFinish, ShutDownStep, StartConditions, StartOutcome, State, errno,
};
use rados_store::IoCtx;
use tokio::sync::{Notify, oneshot, watch};
use tracing::Instrument;

use crate::error::{LockError, LockResult};
use crate::requests::{self, BreakConfig};

/// What the managed lock needs to know about the header watch (rbd §1.4, §1.9).
///
/// The lock cookie is derived from the watch handle, and an acquire without a registered watch
/// waits for one, so the lock asks its watcher every time an action starts. The image watcher
/// implements this; tests may supply a stub.
pub trait LockWatcher: Send + Sync + 'static {
    /// The current watch handle on the header; 0 while no watch is registered (before the first
    /// watch, or during a re-watch).
    fn watch_handle(&self) -> u64;
    /// Whether the last watch (or re-watch) failed because the client is blocklisted.
    fn is_blocklisted(&self) -> bool;
}

/// The hooks a lock layer above ManagedLock overrides (rbd §1.8). Each receives the lock itself so
/// that the layer can inspect it (active action, shutdown predicate) and use the state setters
/// ExclusiveLock needs.
///
/// Every default passes its input through, as the base class does.
#[async_trait]
pub trait ManagedLockHooks: Send + Sync + 'static {
    /// Runs when SHUT_DOWN starts from UNLOCKED; returns the shutdown result.
    async fn shutdown(&self, _lock: &ManagedLock, r: i32) -> i32 {
        r
    }
    /// Runs before the cls lock step of an acquire; a negative result skips the cls lock and
    /// finishes the acquire with it.
    async fn pre_acquire(&self, _lock: &ManagedLock) -> i32 {
        0
    }
    /// Runs with the result `r` of the cls lock phase; its result `r'` decides how the acquire
    /// ends (rbd §1.4: -ECANCELED parks the action).
    async fn post_acquire(&self, _lock: &ManagedLock, r: i32) -> i32 {
        r
    }
    /// Runs before the cls unlock of a release (or shutdown); a negative result skips the unlock.
    async fn pre_release(&self, _lock: &ManagedLock, _shutting_down: bool) -> i32 {
        0
    }
    /// Runs after the release with its result; returns the result delivered to the callers.
    async fn post_release(&self, _lock: &ManagedLock, _shutting_down: bool, r: i32) -> i32 {
        r
    }
    /// Runs after the cookie update of a reacquire with the OSD's result; a negative return forces
    /// a release-then-acquire.
    async fn post_reacquire(&self, _lock: &ManagedLock, r: i32) -> i32 {
        r
    }
}

/// The base class's hooks: everything passes through (a plain ManagedLock, rbd §8
/// `AcquireLockAlreadyLocked`: -EAGAIN fails the acquire instead of parking it).
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughHooks;

impl ManagedLockHooks for PassThroughHooks {}

type Waiter = oneshot::Sender<i32>;

struct Inner {
    state: State,
    queue: ActionQueue<Waiter>,
    /// `auto <handle>` while an acquire is running or the lock is held; empty otherwise.
    cookie: String,
    /// get_locker / break_lock calls in flight; shutdown waits for them (rbd §1.3).
    tracked_ops: usize,
}

struct Shared {
    ioctx: IoCtx,
    oid: String,
    break_cfg: BreakConfig,
    watcher: Arc<dyn LockWatcher>,
    hooks: Arc<dyn ManagedLockHooks>,
    inner: Mutex<Inner>,
    state_tx: watch::Sender<State>,
    tracked_idle: Notify,
    span: tracing::Span,
}

/// librbd's ManagedLock on one object (for images, `rbd_lock` on `rbd_header.<id>`).
///
/// Cheap to clone; clones are the same lock. Must be used inside a tokio runtime: actions run on
/// spawned tasks.
#[derive(Clone)]
pub struct ManagedLock {
    shared: Arc<Shared>,
}

impl fmt::Debug for ManagedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock_inner();
        f.debug_struct("ManagedLock")
            .field("oid", &self.shared.oid)
            .field("state", &inner.state)
            .field("queue", &inner.queue.actions())
            .field("cookie", &inner.cookie)
            .finish()
    }
}

/// Settings of one managed lock.
#[derive(Debug, Clone)]
pub struct ManagedLockOptions {
    /// The object the lock lives on (`rbd_header.<id>`).
    pub oid: String,
    /// Blocklisting when breaking a dead owner's lock.
    pub break_config: BreakConfig,
    /// The state the lock starts in: UNLOCKED for a plain ManagedLock, UNINITIALIZED for an
    /// ExclusiveLock (rbd §1.1).
    pub initial_state: State,
    /// A label for tracing spans (the image id).
    pub label: String,
}

impl ManagedLock {
    /// A lock on `options.oid` through `ioctx`, asking `watcher` for the watch handle and running
    /// `hooks` around each transition.
    pub fn new(
        ioctx: IoCtx,
        options: ManagedLockOptions,
        watcher: Arc<dyn LockWatcher>,
        hooks: Arc<dyn ManagedLockHooks>,
    ) -> ManagedLock {
        let span = tracing::info_span!(
            "managed_lock",
            image = %options.label,
            gid = ioctx.client_gid(),
            state = options.initial_state.name()
        );
        let (state_tx, _) = watch::channel(options.initial_state);
        ManagedLock {
            shared: Arc::new(Shared {
                ioctx,
                oid: options.oid,
                break_cfg: options.break_config,
                watcher,
                hooks,
                inner: Mutex::new(Inner {
                    state: options.initial_state,
                    queue: ActionQueue::new(),
                    cookie: String::new(),
                    tracked_ops: 0,
                }),
                state_tx,
                tracked_idle: Notify::new(),
                span,
            }),
        }
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before it can panic, so a poisoned
        // mutex still holds a usable state.
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- observers -------------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.lock_inner().state
    }

    /// `is_lock_owner()` (rbd §1.1, §10 fact 20): LOCKED, POST_ACQUIRING, REACQUIRING,
    /// PRE_RELEASING or PRE_SHUTTING_DOWN. This is the handle's own belief; the OSD's view is
    /// [`ManagedLock::assert_header_locked`].
    pub fn is_lock_owner(&self) -> bool {
        self.state().is_lock_owner()
    }

    /// The shutdown predicate (rbd §1.1).
    pub fn is_shutting_down(&self) -> bool {
        let inner = self.lock_inner();
        inner.queue.is_shutting_down(inner.state)
    }

    /// The cookie the lock is (being) taken with; empty when not locked.
    pub fn cookie(&self) -> String {
        self.lock_inner().cookie.clone()
    }

    /// The queued actions, active first.
    pub fn queued_actions(&self) -> Vec<Action> {
        self.lock_inner().queue.actions()
    }

    /// The active (front) action, if any.
    pub fn active_action(&self) -> Option<Action> {
        self.lock_inner().queue.active()
    }

    /// A receiver that sees every state change, for callers that wait for a transition.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.shared.state_tx.subscribe()
    }

    /// Waits until the state satisfies `pred` (checked at once and on every change).
    pub async fn wait_for_state(&self, mut pred: impl FnMut(State) -> bool) -> State {
        let mut rx = self.subscribe();
        match rx.wait_for(|s| pred(*s)).await {
            Ok(s) => *s,
            // The sender lives as long as the lock, which `self` keeps alive.
            Err(_) => self.state(),
        }
    }

    /// The object the lock lives on.
    pub fn oid(&self) -> &str {
        &self.shared.oid
    }

    /// The I/O context the lock works through.
    pub fn ioctx(&self) -> &IoCtx {
        &self.shared.ioctx
    }

    /// Whether the watcher reports the client blocklisted.
    pub fn is_blocklisted(&self) -> bool {
        self.shared.watcher.is_blocklisted()
    }

    // ----- public entry points (rbd §1.3) ------------------------------------------------------

    /// `acquire_lock`: take the lock, waiting for an ongoing action first. Queued at call time;
    /// the returned future resolves with the result.
    pub fn acquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.entry(EntryPoint::Acquire)
    }

    /// `try_acquire_lock`: like acquire, but a live peer owner makes it succeed *without* taking
    /// the lock (rbd §2.3) instead of asking the peer to release.
    pub fn try_acquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.entry(EntryPoint::TryAcquire)
    }

    /// `release_lock`.
    pub fn release_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.entry(EntryPoint::Release)
    }

    /// `reacquire_lock`: the watch was re-registered; move the lock to the new cookie (or wake an
    /// acquire waiting for a watch). Called by the image watcher after every re-watch (rbd §3.8).
    pub fn reacquire_lock(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.entry(EntryPoint::Reacquire)
    }

    /// `shut_down`: release if held and stop for good.
    pub fn shut_down(&self) -> impl Future<Output = LockResult> + Send + 'static {
        self.entry(EntryPoint::ShutDown)
    }

    /// Raw form of the entry points: enqueues now, resolves with librbd's `r`.
    pub(crate) fn entry_r(&self, call: EntryPoint) -> impl Future<Output = i32> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock_inner();
            let decision = ml::entry_decision(call, inner.state, inner.queue.last());
            tracing::debug!(parent: &self.shared.span, ?call, state = %inner.state, ?decision, "entry");
            match decision {
                EntryDecision::Complete(r) => {
                    let _ = tx.send(r);
                }
                EntryDecision::Enqueue(action) => {
                    let state = inner.state;
                    let enq = inner.queue.enqueue(action, Some(tx), state);
                    if enq.start_active {
                        self.execute_next(&mut inner);
                    }
                }
                EntryDecision::RestartActiveAndComplete(r) => {
                    self.execute_next(&mut inner);
                    let _ = tx.send(r);
                }
                EntryDecision::CompleteActiveThenEnqueue { state, r, then } => {
                    // The stalled acquire fails first. Unlike librbd, the next entry is not
                    // started before SHUT_DOWN is queued: with SHUT_DOWN last, an acquire that
                    // starts without a watch fails with -ESHUTDOWN instead of parking in
                    // WAITING_FOR_REGISTER again, which would hang the shutdown.
                    self.complete_active(&mut inner, state, r);
                    let now_state = inner.state;
                    inner.queue.enqueue(then, Some(tx), now_state);
                    if !inner.state.is_transition() {
                        self.execute_next(&mut inner);
                    }
                }
                EntryDecision::RunTracked => {
                    // Only get_locker / break_lock run tracked; they have their own methods.
                    let _ = tx.send(-errno::EINVAL);
                }
            }
        }
        async move { rx.await.unwrap_or(-errno::ESHUTDOWN) }
    }

    fn entry(&self, call: EntryPoint) -> impl Future<Output = LockResult> + Send + 'static {
        let fut = self.entry_r(call);
        let watcher = self.shared.watcher.clone();
        async move {
            let r = fut.await;
            LockError::check(r, watcher.is_blocklisted())
        }
    }

    /// `get_locker` (rbd §1.3, §1.6.1): the current managed-lock owner. -ENOENT when nobody holds
    /// it, -EBUSY for an external lock, -ESHUTDOWN once shutting down.
    pub async fn get_locker(&self) -> LockResult<Locker> {
        let guard = self.track(EntryPoint::GetLocker)?;
        let res = requests::get_locker(&self.shared.ioctx, &self.shared.oid).await;
        drop(guard);
        res.map_err(|r| LockError::from_r(r, self.is_blocklisted()))
    }

    /// `break_lock` (rbd §1.3, §1.6.3): break `locker`'s lock; `force` skips the liveness check.
    /// -EBUSY if this handle is the owner itself.
    pub async fn break_lock(&self, locker: &Locker, force: bool) -> LockResult {
        let guard = self.track(EntryPoint::BreakLock)?;
        let r =
            requests::break_lock(&self.shared.ioctx, &self.shared.oid, locker, force, &self.shared.break_cfg)
                .instrument(self.shared.span.clone())
                .await;
        drop(guard);
        LockError::check(r, self.is_blocklisted())
    }

    /// `assert_header_locked` (rbd §1.3): asks the OSD whether this handle's cookie holds the
    /// lock. Ok, or -EBUSY (not the holder), -ENOENT (no header), -EBLOCKLISTED (fenced).
    pub async fn assert_header_locked(&self) -> LockResult {
        let cookie = self.cookie();
        let r = requests::assert_locked(&self.shared.ioctx, &self.shared.oid, &cookie).await;
        // The OSD's -108 here can only mean the client is blocklisted.
        LockError::check(r, true)
    }

    fn track(&self, call: EntryPoint) -> LockResult<TrackedOp> {
        let mut inner = self.lock_inner();
        match ml::entry_decision(call, inner.state, inner.queue.last()) {
            EntryDecision::RunTracked => {
                inner.tracked_ops += 1;
                Ok(TrackedOp { shared: self.shared.clone() })
            }
            EntryDecision::Complete(r) => Err(LockError::from_r(r, self.shared.watcher.is_blocklisted())),
            other => {
                tracing::error!(parent: &self.shared.span, ?call, ?other, "unexpected decision for a tracked call");
                Err(LockError::InvalidArgument)
            }
        }
    }

    // ----- state setters for the ExclusiveLock layer (rbd §2.1, §2.3) --------------------------

    /// Stores a state the ExclusiveLock layer moves the lock to (UNINITIALIZED → INITIALIZING →
    /// UNLOCKED at init, POST_ACQUIRING and WAITING_FOR_LOCK inside the post-acquire hook).
    pub(crate) fn set_state(&self, state: State) {
        let mut inner = self.lock_inner();
        self.store_state(&mut inner, state);
    }

    /// Runs `f` with (state, shutdown predicate) under the lock's mutex, so that a decision on
    /// them (ExclusiveLock's `accept_ops` and `start_op`) cannot race with a transition.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(State, bool) -> R) -> R {
        let inner = self.lock_inner();
        f(inner.state, inner.queue.is_shutting_down(inner.state))
    }

    /// `handle_peer_notification`'s kick (rbd §1.5, §2.10): only in WAITING_FOR_LOCK, run
    /// `before_restart` (which stores the peer's answer) and restart the parked acquire, all
    /// under the mutex so the check and the restart cannot be separated. Returns whether it acted.
    pub(crate) fn restart_waiting_for_lock(&self, before_restart: impl FnOnce()) -> bool {
        let mut inner = self.lock_inner();
        if !ml::peer_notification_applies(inner.state) {
            return false;
        }
        before_restart();
        self.execute_next(&mut inner);
        true
    }

    // ----- the engine --------------------------------------------------------------------------

    fn store_state(&self, inner: &mut Inner, state: State) {
        if inner.state != state {
            tracing::debug!(parent: &self.shared.span, from = %inner.state, to = %state, "state");
        }
        inner.state = state;
        self.shared.span.record("state", state.name());
        self.shared.state_tx.send_replace(state);
    }

    /// Completes the active action in `state` with `r`; returns whether the next one should start.
    fn complete_active(&self, inner: &mut Inner, state: State, r: i32) -> bool {
        let Some(done) = inner.queue.complete_active(state) else {
            tracing::error!(parent: &self.shared.span, %state, r, "completion without an active action");
            return false;
        };
        self.store_state(inner, state);
        tracing::debug!(parent: &self.shared.span, action = %done.action, %state, r, waiters = done.callbacks.len(),
            "action complete");
        // Oneshot sends never block, so completing under the mutex is safe; the waiters run later.
        for w in done.callbacks {
            let _ = w.send(r);
        }
        done.start_next
    }

    /// Completes the active action and starts the next one if told to.
    fn finish_active(&self, inner: &mut Inner, state: State, r: i32) {
        if self.complete_active(inner, state, r) {
            self.execute_next(inner);
        }
    }

    /// REACQUIRE's release-then-acquire (rbd §1.4). librbd skips it once a shutdown is queued:
    /// the shutdown releases the lock anyway, and SHUT_DOWN must stay the last action.
    fn release_then_acquire(&self, inner: &mut Inner) {
        if !inner.queue.is_shutting_down(inner.state) {
            inner.queue.release_then_acquire();
        }
    }

    /// Starts the active action (rbd §1.4), completing immediate outcomes in a loop and handing
    /// the first asynchronous one to a task.
    fn execute_next(&self, inner: &mut Inner) {
        loop {
            let Some(action) = inner.queue.active() else { return };
            let watch_handle = self.shared.watcher.watch_handle();
            let cond = StartConditions {
                watch_handle,
                watcher_blocklisted: self.shared.watcher.is_blocklisted(),
                shutdown_queued: inner.queue.shutdown_queued(),
                current_cookie: &inner.cookie,
                blocklist_on_break_lock: self.shared.break_cfg.blocklist_on_break_lock,
            };
            let outcome = ml::start_action(action, inner.state, &cond);
            tracing::debug!(parent: &self.shared.span, %action, state = %inner.state, watch_handle, ?outcome, "start");
            if let Some(s) = outcome.entered_state() {
                self.store_state(inner, s);
            }
            match outcome {
                StartOutcome::Complete { state, r } => {
                    if !self.complete_active(inner, state, r) {
                        return;
                    }
                }
                StartOutcome::WaitForRegister => return,
                StartOutcome::ReleaseThenAcquire => {
                    self.release_then_acquire(inner);
                    let (state, r) = ml::REACQUIRE_COMPLETION;
                    if !self.complete_active(inner, state, r) {
                        return;
                    }
                }
                StartOutcome::BeginAcquire { cookie } => {
                    inner.cookie = cookie.clone();
                    self.spawn(self.clone().run_acquire(action, cookie));
                    return;
                }
                StartOutcome::SkipSameCookie => {
                    self.spawn(self.clone().run_skip_reacquire());
                    return;
                }
                StartOutcome::SetCookie { new_cookie } => {
                    let old = inner.cookie.clone();
                    self.spawn(self.clone().run_set_cookie(old, new_cookie));
                    return;
                }
                StartOutcome::BeginRelease => {
                    let cookie = inner.cookie.clone();
                    self.spawn(self.clone().run_release(cookie));
                    return;
                }
                StartOutcome::BeginShutDown { from_locked } => {
                    self.spawn(self.clone().run_shut_down(from_locked));
                    return;
                }
            }
        }
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(fut.instrument(self.shared.span.clone()));
    }

    /// TRY_LOCK / ACQUIRE_LOCK after entering ACQUIRING (rbd §1.4).
    async fn run_acquire(self, action: Action, cookie: String) {
        let hooks = self.shared.hooks.clone();
        let r_pre = hooks.pre_acquire(&self).await;
        let r = match ml::after_pre_acquire(r_pre) {
            AfterPreAcquire::RunAcquireRequest => {
                requests::acquire(&self.shared.ioctx, &self.shared.oid, &cookie, &self.shared.break_cfg).await
            }
            AfterPreAcquire::Acquired(r) => r,
        };
        tracing::debug!(%action, r, "acquire request finished");
        let r_post = hooks.post_acquire(&self, r).await;
        match ml::after_post_acquire(r, r_post) {
            AcquireFinish::UnlockThenComplete { r } => {
                // Taken but unusable: give it back without the release hooks.
                requests::release(&self.shared.ioctx, &self.shared.oid, &cookie).await;
                let mut inner = self.lock_inner();
                self.finish_active(&mut inner, State::Unlocked, r);
            }
            AcquireFinish::Parked => {
                tracing::debug!(%action, "acquire parked");
            }
            AcquireFinish::Complete { state, r } => {
                let mut inner = self.lock_inner();
                self.finish_active(&mut inner, state, r);
            }
        }
    }

    /// REACQUIRE with an unchanged cookie and blocklisting on: no OSD call (rbd §1.4).
    async fn run_skip_reacquire(self) {
        let r = self.shared.hooks.post_reacquire(&self, 0).await;
        if r < 0 {
            tracing::warn!(r, "post-reacquire hook failed on a no-op reacquire");
        }
        let (state, r) = ml::REACQUIRE_COMPLETION;
        let mut inner = self.lock_inner();
        self.finish_active(&mut inner, state, r);
    }

    /// REACQUIRE through cls `set_cookie` (rbd §1.4, §1.6.5).
    async fn run_set_cookie(self, old_cookie: String, new_cookie: String) {
        let r = requests::reacquire(&self.shared.ioctx, &self.shared.oid, &old_cookie, &new_cookie).await;
        tracing::debug!(old = %old_cookie, new = %new_cookie, r, "set_cookie");
        let r = self.shared.hooks.post_reacquire(&self, r).await;
        let mut inner = self.lock_inner();
        match ml::after_post_reacquire(r) {
            ReacquireFinish::AdoptNewCookie => inner.cookie = new_cookie,
            ReacquireFinish::ReleaseThenAcquire => self.release_then_acquire(&mut inner),
        }
        let (state, r) = ml::REACQUIRE_COMPLETION;
        self.finish_active(&mut inner, state, r);
    }

    /// RELEASE_LOCK after entering PRE_RELEASING (rbd §1.4).
    async fn run_release(self, cookie: String) {
        let hooks = self.shared.hooks.clone();
        let r_pre = hooks.pre_release(&self, false).await;
        self.set_state(ml::RELEASING_STATE);
        let r = match ml::after_pre_release(r_pre) {
            AfterPreRelease::Unlock => {
                let unlock_r = requests::release(&self.shared.ioctx, &self.shared.oid, &cookie).await;
                ml::release_result(r_pre, unlock_r)
            }
            AfterPreRelease::SkipUnlock(r) => r,
        };
        let outcome = ml::release_outcome(r);
        if outcome.clear_cookie {
            self.lock_inner().cookie.clear();
        }
        let r = hooks.post_release(&self, false, r).await;
        let mut inner = self.lock_inner();
        self.finish_active(&mut inner, outcome.next, r);
    }

    /// SHUT_DOWN (rbd §1.4), step by step as lock-sm lists them.
    async fn run_shut_down(self, from_locked: bool) {
        let hooks = self.shared.hooks.clone();
        let mut r = 0;
        let mut pre_release_r = 0;
        for step in ml::shut_down_steps(from_locked) {
            match *step {
                ShutDownStep::EnterState(s) => self.set_state(s),
                ShutDownStep::ShutdownHook => r = hooks.shutdown(&self, r).await,
                ShutDownStep::PreReleaseHook => {
                    pre_release_r = hooks.pre_release(&self, true).await;
                    r = pre_release_r;
                }
                ShutDownStep::ClsUnlock => {
                    let cookie = self.cookie();
                    let unlock_r = requests::release(&self.shared.ioctx, &self.shared.oid, &cookie).await;
                    r = ml::release_result(pre_release_r, unlock_r);
                }
                ShutDownStep::PostReleaseHook => r = hooks.post_release(&self, true, r).await,
                ShutDownStep::WaitTrackedOps => self.wait_tracked_ops().await,
                ShutDownStep::CompleteShutdown => {
                    let mut inner = self.lock_inner();
                    inner.cookie.clear();
                    self.finish_active(&mut inner, State::Shutdown, r);
                }
            }
        }
    }

    async fn wait_tracked_ops(&self) {
        loop {
            let idle = self.shared.tracked_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lock_inner().tracked_ops == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Keeps a get_locker / break_lock call counted until it finishes, so shutdown can wait for it.
struct TrackedOp {
    shared: Arc<Shared>,
}

impl Drop for TrackedOp {
    fn drop(&mut self) {
        let mut inner = self.shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tracked_ops = inner.tracked_ops.saturating_sub(1);
        if inner.tracked_ops == 0 {
            self.shared.tracked_idle.notify_waiters();
        }
    }
}
