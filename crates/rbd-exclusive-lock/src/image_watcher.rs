//! ImageWatcher (rbd §3): the header watch and the notifications image handles exchange.
//!
//! Every writable image handle watches `rbd_header.<id>`. Through notifies on that object the
//! handles announce lock changes (ACQUIRED_LOCK, RELEASED_LOCK), ask the owner to hand the lock
//! over (REQUEST_LOCK, §3.5), tell each other the header changed (HEADER_UPDATE, §3.6), forward
//! maintenance operations to the owner and hear back about them (ops 4–17 and 20, §3.3, §3.4),
//! and quiesce I/O around snapshots (§3.7). The watch handle is also the lock's identity: the
//! lock cookie is `auto <handle>`, and a re-watch (new handle) forces a reacquire (§3.8).
//!
//! The wire format lives in [`crate::notify`]; the lock decisions in `lock-sm`; this module
//! connects them to the store: it registers and re-registers the watch, decodes and answers
//! incoming notifies, sends the outgoing ones, and keeps the timers (REQUEST_LOCK retries,
//! forwarded-request timeouts, auto-unquiesce) on the cluster [`Clock`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use lock_sm::managed_lock::{RequestLockReply, State, errno};
use rados_store::{Clock, IoCtx, NotifyEvent, NotifyReply, WatchEvent, watch_channel};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::async_requests::{OwnerRequestState, OwnerRequests, PendingHandle, PendingRequests, ProgressFn};
use crate::config::LockConfig;
use crate::error::{LockError, LockResult};
use crate::exclusive_lock::{ElShared, ExclusiveLock, RequestType};
use crate::managed_lock::LockWatcher;
use crate::notify::{
    AsyncRequestId, ClientId, MirrorSnapshotState, NotifyMessage, ResponseMessage, SnapshotNamespace,
    lock_owner_result,
};

/// Ceph's `CEPH_NOSNAP`, the "no snapshot" id an orphan mirror snapshot carries.
const CEPH_NOSNAP: u64 = u64::MAX - 1;

/// What the image layer does when peers talk to this handle (rbd §3.2, §3.3, §3.6, §3.7).
///
/// The defaults fit a handle with no image state: header updates are ignored, forwarded ops are
/// refused with -EOPNOTSUPP (which makes a requester take the lock and run the op itself,
/// rbd §10 fact 51), quiesce succeeds at once.
#[async_trait]
pub trait ImageNotifyHandler: Send + Sync + 'static {
    /// HEADER_UPDATE (or a re-watch): mark the image "refresh required" and tell local update
    /// watchers (rbd §3.6). Must not block.
    fn header_updated(&self) {}

    /// Refresh now if a refresh is pending; runs before a forwarded maintenance op (ops 6–17,
    /// the "chk-refresh" column of rbd §3.2).
    async fn refresh_if_required(&self) {}

    /// Executes a forwarded maintenance op (ops 6–17 and 20) as the lock owner and returns its
    /// result. `progress` sends ASYNC_PROGRESS to the requester. The implementation should run
    /// the op under [`ExclusiveLock::start_op`] so a release waits for it, and must not filter
    /// results the requester filters itself (rbd §5).
    async fn execute_operation(&self, _request: &NotifyMessage, _progress: ProgressReporter) -> i32 {
        -errno::EOPNOTSUPP
    }

    /// QUIESCE: run the local quiesce callbacks; the ack waits for them and carries the result
    /// (rbd §3.7).
    async fn quiesce(&self, _id: AsyncRequestId) -> i32 {
        0
    }

    /// UNQUIESCE (or the automatic timeout): run the unquiesce callbacks.
    async fn unquiesce(&self, _id: AsyncRequestId) {}
}

/// A handler that does nothing beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifyHandler;

impl ImageNotifyHandler for NoNotifyHandler {}

/// Sends ASYNC_PROGRESS for one forwarded op (rbd §3.3). For a legacy request without an id it
/// does nothing, as the requester could not match the progress anyway.
#[derive(Clone)]
pub struct ProgressReporter {
    watcher: Weak<IwShared>,
    id: AsyncRequestId,
}

impl fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressReporter").field("id", &self.id).finish()
    }
}

impl ProgressReporter {
    /// The forwarded request's id (empty for a legacy synchronous request).
    pub fn id(&self) -> AsyncRequestId {
        self.id
    }

    /// Reports `offset` of `total` done. Sent in the background; the owner does not wait.
    pub fn update(&self, offset: u64, total: u64) {
        if self.id.is_empty() {
            return;
        }
        if let Some(shared) = self.watcher.upgrade() {
            let iw = ImageWatcher { shared };
            iw.spawn_tracked_notify(NotifyMessage::AsyncProgress {
                async_request_id: self.id,
                offset,
                total,
            });
        }
    }
}

struct QuiesceEntry {
    /// Set once the quiesce callbacks finished.
    result: Option<i32>,
    /// Notifies waiting for the quiesce result: (notify id, watch handle).
    waiters: Vec<(u64, u64)>,
    /// The automatic unquiesce.
    timer: Option<AbortHandle>,
}

struct IwState {
    watch_handle: u64,
    blocklisted: bool,
    /// A re-watch is scheduled or running.
    rewatching: bool,
    /// The known lock owner (rbd §3.2 ACQUIRED/RELEASED_LOCK); our own id while we own it.
    owner_client_id: ClientId,
    /// Incoming notifies are acked empty and not processed (image closing, rbd §3.1).
    blocked: bool,
    unregistered: bool,
    /// Background notifies not yet finished; `flush_notifies` waits for zero.
    notifies_in_flight: usize,
    request_lock_timer: Option<AbortHandle>,
    quiesce: HashMap<AsyncRequestId, QuiesceEntry>,
}

pub(crate) struct IwShared {
    ioctx: IoCtx,
    oid: String,
    image_id: String,
    gid: u64,
    clock: Arc<dyn Clock>,
    config: LockConfig,
    handler: Arc<dyn ImageNotifyHandler>,
    st: Mutex<IwState>,
    exclusive_lock: Mutex<Weak<ElShared>>,
    pending: PendingRequests,
    owner_requests: OwnerRequests,
    notifies_idle: Notify,
    span: tracing::Span,
}

impl IwShared {
    fn st(&self) -> MutexGuard<'_, IwState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LockWatcher for IwShared {
    fn watch_handle(&self) -> u64 {
        self.st().watch_handle
    }

    fn is_blocklisted(&self) -> bool {
        self.st().blocklisted
    }
}

/// The header watch of one image handle and everything sent and received through it.
///
/// Cheap to clone; clones are the same watcher. Register with [`ImageWatcher::register`]; close
/// with [`ImageWatcher::unregister`] after the exclusive lock is shut down.
#[derive(Clone)]
pub struct ImageWatcher {
    shared: Arc<IwShared>,
}

impl fmt::Debug for ImageWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.st();
        f.debug_struct("ImageWatcher")
            .field("oid", &self.shared.oid)
            .field("gid", &self.shared.gid)
            .field("watch_handle", &st.watch_handle)
            .field("blocklisted", &st.blocklisted)
            .field("owner", &st.owner_client_id)
            .finish()
    }
}

/// The header object of an image: `rbd_header.<image id>` (rbd §0.1).
pub fn header_oid(image_id: &str) -> String {
    format!("rbd_header.{image_id}")
}

impl ImageWatcher {
    /// Watches the header of image `image_id` through `ioctx`. `clock` must be the cluster's
    /// clock (every timer of the watcher runs on it). Fails if the header does not exist
    /// (-ENOENT) or the client is blocklisted.
    pub async fn register(
        ioctx: IoCtx,
        image_id: &str,
        clock: Arc<dyn Clock>,
        config: LockConfig,
        handler: Arc<dyn ImageNotifyHandler>,
    ) -> LockResult<ImageWatcher> {
        let gid = ioctx.client_gid();
        let span = tracing::info_span!("image_watcher", image = %image_id, gid);
        let shared = Arc::new(IwShared {
            oid: header_oid(image_id),
            image_id: image_id.to_owned(),
            gid,
            clock,
            config,
            handler,
            st: Mutex::new(IwState {
                watch_handle: 0,
                blocklisted: false,
                rewatching: false,
                owner_client_id: ClientId::default(),
                blocked: false,
                unregistered: false,
                notifies_in_flight: 0,
                request_lock_timer: None,
                quiesce: HashMap::new(),
            }),
            exclusive_lock: Mutex::new(Weak::new()),
            pending: PendingRequests::default(),
            owner_requests: OwnerRequests::default(),
            notifies_idle: Notify::new(),
            span,
            ioctx,
        });
        let iw = ImageWatcher { shared };
        let (ctx, rx) = watch_channel();
        let handle = match iw.shared.ioctx.watch(&iw.shared.oid, ctx).await {
            Ok(h) => h,
            Err(e) => return Err(LockError::from_store(&e)),
        };
        iw.shared.st().watch_handle = handle;
        tracing::debug!(parent: &iw.shared.span, handle, "watch registered");
        iw.spawn_event_loop(handle, rx);
        Ok(iw)
    }

    // ----- accessors ---------------------------------------------------------------------------

    /// The image id.
    pub fn image_id(&self) -> &str {
        &self.shared.image_id
    }

    /// The header object.
    pub fn oid(&self) -> &str {
        &self.shared.oid
    }

    /// The I/O context.
    pub fn ioctx(&self) -> &IoCtx {
        &self.shared.ioctx
    }

    /// The configuration.
    pub fn config(&self) -> &LockConfig {
        &self.shared.config
    }

    /// The clock every timer runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// The current watch handle (0 while not registered).
    pub fn watch_handle(&self) -> u64 {
        self.shared.st().watch_handle
    }

    /// Whether the watch failed because the client is blocklisted (rbd §2.13).
    pub fn is_blocklisted(&self) -> bool {
        self.shared.st().blocklisted
    }

    /// Whether the watch is registered (not re-watching, not failed).
    pub fn is_registered(&self) -> bool {
        self.watch_handle() != 0
    }

    /// This handle's identity in notifies: (gid, current watch handle) (rbd §0.1).
    pub fn client_id(&self) -> ClientId {
        ClientId::new(self.shared.gid, self.watch_handle())
    }

    /// The lock owner this handle last heard of (invalid if unknown, rbd §3.2).
    pub fn owner_client_id(&self) -> ClientId {
        self.shared.st().owner_client_id
    }

    /// Forwarded requests this handle is waiting for.
    pub fn pending_requests(&self) -> usize {
        self.shared.pending.len()
    }

    pub(crate) fn span(&self) -> tracing::Span {
        self.shared.span.clone()
    }

    pub(crate) fn lock_watcher(&self) -> Arc<dyn LockWatcher> {
        self.shared.clone()
    }

    pub(crate) fn attach_exclusive_lock(&self, el: Weak<ElShared>) {
        *self.shared.exclusive_lock.lock().unwrap_or_else(|e| e.into_inner()) = el;
    }

    /// The exclusive lock attached to this watcher, if any (and still alive). A notify handler
    /// uses it to admit the ops it executes ([`ExclusiveLock::start_op`]).
    pub fn exclusive_lock(&self) -> Option<ExclusiveLock> {
        self.shared
            .exclusive_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .map(ExclusiveLock::from_shared)
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) -> AbortHandle {
        tokio::spawn(fut.instrument(self.shared.span.clone())).abort_handle()
    }

    // ----- lifecycle -----------------------------------------------------------------------------

    /// Stops processing incoming notifies: they are acked empty (rbd §3.1, §10 fact 63), and
    /// forwarded requests still pending are canceled with -ERESTART (rbd §3.4 step 5).
    pub fn block_notifies(&self) {
        let timer = {
            let mut st = self.shared.st();
            st.blocked = true;
            st.request_lock_timer.take()
        };
        if let Some(t) = timer {
            t.abort();
        }
        self.shared.pending.cancel_all(-errno::ERESTART);
    }

    /// Resumes processing incoming notifies.
    pub fn unblock_notifies(&self) {
        self.shared.st().blocked = false;
    }

    /// Closes the watch: blocks notifies, waits for background notifies and unwatches. Call after
    /// the exclusive lock is shut down.
    pub async fn unregister(&self) {
        self.block_notifies();
        self.flush_notifies().await;
        let (handle, timers) = {
            let mut st = self.shared.st();
            st.unregistered = true;
            let timers: Vec<AbortHandle> = st.quiesce.drain().filter_map(|(_, q)| q.timer).collect();
            (std::mem::take(&mut st.watch_handle), timers)
        };
        for t in timers {
            t.abort();
        }
        if handle != 0
            && let Err(e) = self.shared.ioctx.unwatch(handle).await
        {
            tracing::debug!(parent: &self.shared.span, handle, error = %e, "unwatch failed");
        }
    }

    /// Waits until every background notify (ACQUIRED_LOCK, RELEASED_LOCK, progress, ...) has
    /// finished (rbd §2.2, §2.4 step 8).
    pub async fn flush_notifies(&self) {
        loop {
            let idle = self.shared.notifies_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.shared.st().notifies_in_flight == 0 {
                return;
            }
            idle.await;
        }
    }

    // ----- watch errors and re-watch (rbd §3.8) ----------------------------------------------------

    fn spawn_event_loop(&self, handle: u64, mut rx: tokio::sync::mpsc::UnboundedReceiver<WatchEvent>) {
        let weak = Arc::downgrade(&self.shared);
        self.spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(shared) = weak.upgrade() else { return };
                let iw = ImageWatcher { shared };
                match ev {
                    WatchEvent::Notify(n) => iw.handle_notify(n).await,
                    WatchEvent::Error { handle: h, error } => iw.on_watch_error(h, &error),
                }
            }
            tracing::trace!(handle, "watch event loop ended");
        });
    }

    /// Injects a failure of the current watch, as the store reports one when a connection drops:
    /// the known owner is forgotten and a re-watch starts. Simulators and tests use it to force
    /// the re-watch paths of rbd §3.8 (the embedded cluster breaks watches only by blocklisting).
    pub fn simulate_watch_error(&self, error: rados_store::Error) {
        let handle = self.watch_handle();
        self.on_watch_error(handle, &error);
    }

    fn on_watch_error(&self, handle: u64, error: &rados_store::Error) {
        {
            let mut st = self.shared.st();
            if st.unregistered || st.rewatching || handle == 0 || handle != st.watch_handle {
                return;
            }
            tracing::warn!(parent: &self.shared.span, handle, %error, "watch failed: re-watching");
            st.owner_client_id = ClientId::default();
            if matches!(error, rados_store::Error::Blocklisted) {
                st.blocklisted = true;
            }
            st.rewatching = true;
        }
        let iw = self.clone();
        self.spawn(async move { iw.rewatch().await });
    }

    async fn rewatch(&self) {
        let old = std::mem::take(&mut self.shared.st().watch_handle);
        if old != 0
            && let Err(e) = self.shared.ioctx.unwatch(old).await
        {
            tracing::debug!(old, error = %e, "unwatch of the failed watch");
        }
        let r = loop {
            if self.shared.st().unregistered {
                return;
            }
            let (ctx, rx) = watch_channel();
            match self.shared.ioctx.watch(&self.shared.oid, ctx).await {
                Ok(handle) => {
                    {
                        let mut st = self.shared.st();
                        st.watch_handle = handle;
                        st.blocklisted = false;
                        st.rewatching = false;
                    }
                    tracing::info!(old, handle, "re-watched");
                    self.spawn_event_loop(handle, rx);
                    break 0;
                }
                Err(rados_store::Error::Blocklisted) => {
                    let mut st = self.shared.st();
                    st.blocklisted = true;
                    st.rewatching = false;
                    tracing::warn!("re-watch failed: client is blocklisted");
                    break -errno::EBLOCKLISTED;
                }
                Err(rados_store::Error::NotFound(_)) => {
                    self.shared.st().rewatching = false;
                    tracing::warn!("re-watch failed: header object is gone");
                    break -errno::ENOENT;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-watch failed: retrying");
                    self.shared.clock.sleep(self.shared.config.rewatch_retry_delay).await;
                }
            }
        };
        self.handle_rewatch_complete(r);
    }

    /// After a re-watch (rbd §3.8): move the lock to the new cookie (or release and re-acquire
    /// it), wake an acquire parked for the lock if the client turned out blocklisted (16.2.15,
    /// rbd §1.9), and assume the header changed meanwhile.
    fn handle_rewatch_complete(&self, r: i32) {
        tracing::debug!(parent: &self.shared.span, r, "re-watch complete");
        if let Some(el) = self.exclusive_lock() {
            drop(el.reacquire_lock());
            if self.is_blocklisted() {
                el.handle_peer_notification(0);
            }
        }
        self.shared.handler.header_updated();
    }

    // ----- sending -----------------------------------------------------------------------------------

    async fn send_notify(&self, msg: &NotifyMessage) -> Result<NotifyReply, rados_store::NotifyError> {
        tracing::debug!(parent: &self.shared.span, op = msg.op_code(), "notify");
        self.shared.ioctx.notify(&self.shared.oid, &msg.to_bytes(), self.shared.config.notify_timeout).await
    }

    /// Sends a notify meant for the lock owner and reads its acks with librbd's NotifyLockOwner
    /// rule (rbd §3.4 step 3): the owner's ResponseMessage result, -ETIMEDOUT if nobody answered,
    /// -EINVAL if more than one watcher answered, or the notify's own error.
    pub async fn notify_lock_owner(&self, msg: &NotifyMessage) -> i32 {
        let r = match self.send_notify(msg).await {
            Ok(reply) => lock_owner_result(reply.acks.iter().map(|a| a.reply.as_slice())),
            Err(rados_store::NotifyError::TimedOut(reply)) => {
                lock_owner_result(reply.acks.iter().map(|a| a.reply.as_slice()))
            }
            Err(rados_store::NotifyError::Failed(e)) => -e.errno(),
        };
        if r == -errno::EINVAL {
            tracing::warn!(parent: &self.shared.span, op = msg.op_code(), "duplicate lock owners detected");
        }
        r
    }

    /// Sends `msg` to every watcher in the background; [`ImageWatcher::flush_notifies`] waits for
    /// it.
    fn spawn_tracked_notify(&self, msg: NotifyMessage) {
        self.shared.st().notifies_in_flight += 1;
        let iw = self.clone();
        self.spawn(async move {
            if let Err(e) = iw.send_notify(&msg).await {
                tracing::debug!(op = msg.op_code(), error = %e, "background notify incomplete");
            }
            let mut st = iw.shared.st();
            st.notifies_in_flight = st.notifies_in_flight.saturating_sub(1);
            if st.notifies_in_flight == 0 {
                iw.shared.notifies_idle.notify_waiters();
            }
        });
    }

    /// Announces this handle as the new owner (rbd §2.3 step 7, §2.6) and remembers itself as the
    /// known owner.
    pub(crate) fn notify_acquired_lock(&self) {
        let id = self.client_id();
        self.shared.st().owner_client_id = id;
        tracing::info!(parent: &self.shared.span, client_id = %id, "acquired lock");
        self.spawn_tracked_notify(NotifyMessage::AcquiredLock { client_id: id });
    }

    /// Announces that this handle released the lock (rbd §2.5).
    pub(crate) fn notify_released_lock(&self) {
        let id = self.client_id();
        self.shared.st().owner_client_id = ClientId::default();
        tracing::info!(parent: &self.shared.span, client_id = %id, "released lock");
        self.spawn_tracked_notify(NotifyMessage::ReleasedLock { client_id: id });
    }

    /// Broadcasts HEADER_UPDATE after changing the header (rbd §3.6) and returns the notify's
    /// result (callers usually ignore -ETIMEDOUT and -ENOENT).
    pub async fn notify_header_update(&self) -> LockResult {
        let r = match self.send_notify(&NotifyMessage::HeaderUpdate).await {
            Ok(_) => 0,
            Err(e) => -e.errno(),
        };
        LockError::check(r, self.is_blocklisted())
    }

    // ----- the lock request protocol (rbd §3.5) ----------------------------------------------

    /// Sends REQUEST_LOCK in the background (from the post-acquire hook that parked the acquire).
    pub(crate) fn spawn_request_lock(&self) {
        let iw = self.clone();
        self.spawn(async move { iw.notify_request_lock().await });
    }

    async fn notify_request_lock(&self) {
        let Some(el) = self.exclusive_lock() else { return };
        // librbd only checks that it is not the owner. A re-send timer can also fire after the
        // parked acquire was restarted, failed or shut down; asking the owner to release then
        // would take the lock away for nobody, so only a handle still waiting asks.
        if el.state() != State::WaitingForLock {
            return;
        }
        let msg = NotifyMessage::RequestLock { client_id: self.client_id(), force: false };
        let r = self.notify_lock_owner(&msg).await;
        tracing::debug!(parent: &self.shared.span, r, "REQUEST_LOCK answered");
        if r == -errno::ETIMEDOUT {
            // Nobody answered as owner: treat it as dead and retry the acquire now.
            el.handle_peer_notification(0);
        } else if r == -errno::EROFS {
            el.handle_peer_notification(r);
        } else if r < 0 {
            self.schedule_request_lock(self.shared.config.request_lock_retry_delay);
        } else {
            // The owner will release; ask again if RELEASED_LOCK does not arrive in time.
            self.schedule_request_lock(self.shared.config.client_notify_timeout);
        }
    }

    /// Schedules a REQUEST_LOCK re-send after `delay`; at most one is pending (rbd §3.5 step 6).
    fn schedule_request_lock(&self, delay: Duration) {
        let Some(el) = self.exclusive_lock() else { return };
        if el.is_lock_owner() {
            return;
        }
        let mut st = self.shared.st();
        if st.watch_handle == 0
            || st.blocked
            || st.request_lock_timer.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let iw = self.clone();
        let timer = self.shared.clock.sleep(delay);
        st.request_lock_timer = Some(self.spawn(async move {
            timer.await;
            iw.shared.st().request_lock_timer = None;
            iw.notify_request_lock().await;
        }));
    }

    fn cancel_request_lock_timer(&self) {
        if let Some(t) = self.shared.st().request_lock_timer.take() {
            t.abort();
        }
    }

    // ----- forwarded requests, requester side (rbd §3.4) ----------------------------------------

    /// Forwards a maintenance op to the lock owner and waits for its completion (rbd §3.4).
    ///
    /// `request_id` comes from [`crate::async_requests::next_request_id`], reserved once per API
    /// call and reused on every retry; `build` makes the op's message for the AsyncRequestId of
    /// this attempt. Returns the op's result; -ETIMEDOUT if no owner answered or the op did not
    /// complete within `rbd_request_timed_out_seconds` of the last progress; -ERESTART if the
    /// owner released or changed meanwhile; the owner's refusal (-EOPNOTSUPP, ...) otherwise.
    pub async fn notify_async_request(
        &self,
        request_id: u64,
        build: impl FnOnce(AsyncRequestId) -> NotifyMessage,
        progress: Option<ProgressFn>,
    ) -> LockResult {
        let id = AsyncRequestId::new(self.client_id(), request_id);
        let timeout = self.shared.config.request_timed_out;
        let PendingHandle { mut done, progressed } = self.shared.pending.register(id, progress);
        let mut deadline = self.shared.clock.now().saturating_add(timeout);
        let msg = build(id);
        let r = self.notify_lock_owner(&msg).await;
        if r < 0 {
            self.shared.pending.remove(&id);
            return LockError::check(r, self.is_blocklisted());
        }
        tracing::debug!(parent: &self.shared.span, %id, op = msg.op_code(), "owner accepted forwarded request");
        let r = loop {
            let sleep = self.shared.clock.sleep_until(deadline);
            tokio::select! {
                biased;
                r = &mut done => break r.unwrap_or(-errno::ERESTART),
                _ = progressed.notified() => {
                    deadline = self.shared.clock.now().saturating_add(timeout);
                }
                _ = sleep => {
                    if self.shared.pending.remove(&id) {
                        break -errno::ETIMEDOUT;
                    }
                    // Completed just now: the next pass reads the result.
                }
            }
        };
        LockError::check(r, self.is_blocklisted())
    }

    // ----- receiving (rbd §3.2) ------------------------------------------------------------------

    async fn ack(&self, ev: &NotifyEvent, reply: &[u8]) {
        if let Err(e) = self.shared.ioctx.notify_ack(&self.shared.oid, ev.notify_id, ev.handle, reply).await {
            tracing::debug!(parent: &self.shared.span, notify_id = ev.notify_id, error = %e, "ack failed");
        }
    }

    async fn ack_response(&self, ev: &NotifyEvent, r: i32) {
        self.ack(ev, &ResponseMessage::new(r).to_bytes()).await;
    }

    async fn handle_notify(&self, ev: NotifyEvent) {
        if self.shared.st().blocked {
            self.ack(&ev, &[]).await;
            return;
        }
        let msg = match NotifyMessage::from_bytes(&ev.payload) {
            Ok(m) => m,
            Err(e) => {
                // librbd does not ack what it cannot decode (rbd §10 fact 43).
                tracing::warn!(parent: &self.shared.span, notify_id = ev.notify_id, error = %e, "undecodable notify");
                return;
            }
        };
        tracing::trace!(parent: &self.shared.span, op = msg.op_code(), notifier = ev.notifier_gid, "notify received");
        match msg {
            NotifyMessage::AcquiredLock { client_id } => {
                self.handle_acquired_lock(client_id);
                self.ack(&ev, &[]).await;
            }
            NotifyMessage::ReleasedLock { client_id } => {
                self.handle_released_lock(client_id);
                self.ack(&ev, &[]).await;
            }
            NotifyMessage::RequestLock { client_id, force } => {
                let reply = self.handle_request_lock(client_id, force);
                match reply {
                    RequestLockReply::EmptyAck => self.ack(&ev, &[]).await,
                    RequestLockReply::Response { r, .. } => self.ack_response(&ev, r).await,
                }
            }
            NotifyMessage::HeaderUpdate => {
                self.shared.handler.header_updated();
                self.ack_response(&ev, 0).await;
            }
            NotifyMessage::AsyncProgress { async_request_id, offset, total } => {
                self.shared.pending.progress(&async_request_id, offset, total);
                self.ack(&ev, &[]).await;
            }
            NotifyMessage::AsyncComplete { async_request_id, result } => {
                self.shared.pending.complete(&async_request_id, result);
                self.ack(&ev, &[]).await;
            }
            NotifyMessage::Quiesce { async_request_id } => self.handle_quiesce(async_request_id, &ev).await,
            NotifyMessage::Unquiesce { async_request_id } => {
                self.handle_unquiesce(async_request_id);
                self.ack(&ev, &[]).await;
            }
            NotifyMessage::Unknown { op } => {
                let answer = self.exclusive_lock().is_some_and(|el| {
                    let (accepted, r) = el.accept_request(RequestType::General);
                    accepted || r < 0
                });
                tracing::debug!(parent: &self.shared.span, op, answer, "unknown notify op");
                if answer {
                    self.ack_response(&ev, -errno::EOPNOTSUPP).await;
                } else {
                    self.ack(&ev, &[]).await;
                }
            }
            op_request => {
                let iw = self.clone();
                self.spawn(async move { iw.handle_operation_request(op_request, ev).await });
            }
        }
    }

    /// ACQUIRED_LOCK (rbd §3.2 row 0).
    fn handle_acquired_lock(&self, client_id: ClientId) {
        let mut cancel = true;
        if client_id.is_valid() {
            let mut st = self.shared.st();
            if client_id == st.owner_client_id {
                cancel = false;
            }
            st.owner_client_id = client_id;
        }
        let el = self.exclusive_lock();
        if let Some(el) = &el {
            el.handle_peer_notification(0);
        }
        if cancel && !el.as_ref().is_some_and(ExclusiveLock::is_lock_owner) {
            self.shared.pending.cancel_all(-errno::ERESTART);
        }
    }

    /// RELEASED_LOCK (rbd §3.2 row 1, §10 fact 64).
    fn handle_released_lock(&self, client_id: ClientId) {
        let mut cancel = true;
        if client_id.is_valid() {
            let mut st = self.shared.st();
            if client_id != st.owner_client_id {
                cancel = false;
            } else {
                st.owner_client_id = ClientId::default();
            }
        }
        let el = self.exclusive_lock();
        let owner = el.as_ref().is_some_and(ExclusiveLock::is_lock_owner);
        if cancel && !owner {
            self.shared.pending.cancel_all(-errno::ERESTART);
        }
        if let Some(el) = el
            && !owner
        {
            self.cancel_request_lock_timer();
            el.handle_peer_notification(0);
        }
    }

    /// REQUEST_LOCK (rbd §2.9).
    fn handle_request_lock(&self, client_id: ClientId, force: bool) -> RequestLockReply {
        let Some(el) = self.exclusive_lock() else { return RequestLockReply::EmptyAck };
        let (from_self, known) = {
            let st = self.shared.st();
            (client_id == ClientId::new(self.shared.gid, st.watch_handle), st.owner_client_id.is_valid())
        };
        el.handle_request_lock(from_self, known, force)
    }

    // ----- forwarded requests, owner side (rbd §3.3) -------------------------------------------

    async fn handle_operation_request(&self, msg: NotifyMessage, ev: NotifyEvent) {
        let Some(el) = self.exclusive_lock() else {
            self.ack(&ev, &[]).await;
            return;
        };
        if msg.check_for_refresh() {
            self.shared.handler.refresh_if_required().await;
        }
        let (accepted, r) = el.accept_request(request_type(&msg));
        if !accepted {
            if r < 0 {
                self.ack_response(&ev, r).await;
            } else {
                self.ack(&ev, &[]).await;
            }
            return;
        }
        let id = msg.async_request_id().copied().unwrap_or_default();
        let reporter = ProgressReporter { watcher: Arc::downgrade(&self.shared), id };
        if id.is_empty() {
            // Legacy synchronous request: the ack carries the final result.
            let r = self.shared.handler.execute_operation(&msg, reporter).await;
            self.ack_response(&ev, r).await;
            return;
        }
        if id.client_id == self.client_id() {
            // We sent it ourselves before becoming owner: the requester should run it locally.
            self.ack_response(&ev, -errno::ERESTART).await;
            return;
        }
        let retention = self.shared.config.async_request_retention;
        match self.shared.owner_requests.begin(id, self.shared.clock.now(), retention) {
            OwnerRequestState::New => {
                self.ack_response(&ev, 0).await;
                tracing::info!(%id, op = msg.op_code(), "executing forwarded request");
                let r = self.shared.handler.execute_operation(&msg, reporter).await;
                self.notify_async_complete(id, r).await;
                self.shared.owner_requests.finish(id, r, self.shared.clock.now(), retention);
            }
            OwnerRequestState::Pending => self.ack_response(&ev, 0).await,
            OwnerRequestState::Complete(r) => {
                self.ack_response(&ev, r).await;
                // The requester evidently missed the completion (its wait timed out before the
                // ASYNC_COMPLETE arrived, rbd §11): tell it again instead of letting it wait for a
                // completion that would never come.
                self.spawn_tracked_notify(NotifyMessage::AsyncComplete { async_request_id: id, result: r });
            }
        }
    }

    /// ASYNC_COMPLETE, re-sent while it times out and the watch is registered (rbd §3.3).
    async fn notify_async_complete(&self, id: AsyncRequestId, result: i32) {
        let msg = NotifyMessage::AsyncComplete { async_request_id: id, result };
        // Progress reports go out first, as librbd queues both on one finisher: a completion that
        // overtook them would leave the requester's last progress unseen.
        self.flush_notifies().await;
        loop {
            match self.send_notify(&msg).await {
                Err(rados_store::NotifyError::TimedOut(_))
                    if self.is_registered() && !self.shared.st().unregistered =>
                {
                    tracing::debug!(%id, "ASYNC_COMPLETE timed out: re-sending");
                }
                _ => return,
            }
        }
    }

    // ----- quiesce (rbd §3.7) ----------------------------------------------------------------------

    async fn handle_quiesce(&self, id: AsyncRequestId, ev: &NotifyEvent) {
        let (start, done_r) = {
            let mut st = self.shared.st();
            let entry = st.quiesce.entry(id).or_insert_with(|| QuiesceEntry {
                result: None,
                waiters: Vec::new(),
                timer: None,
            });
            let start = entry.result.is_none() && entry.waiters.is_empty();
            if entry.result.is_none() {
                entry.waiters.push((ev.notify_id, ev.handle));
            }
            (start, entry.result)
        };
        self.arm_unquiesce_timer(id);
        if let Some(r) = done_r {
            self.ack_response(ev, r).await;
            return;
        }
        if start {
            let iw = self.clone();
            self.spawn(async move {
                let r = iw.shared.handler.quiesce(id).await;
                let waiters = {
                    let mut st = iw.shared.st();
                    match st.quiesce.get_mut(&id) {
                        Some(q) => {
                            q.result = Some(r);
                            std::mem::take(&mut q.waiters)
                        }
                        None => Vec::new(),
                    }
                };
                let reply = ResponseMessage::new(r).to_bytes();
                for (notify_id, handle) in waiters {
                    let _ = iw.shared.ioctx.notify_ack(&iw.shared.oid, notify_id, handle, &reply).await;
                }
            });
        }
    }

    fn arm_unquiesce_timer(&self, id: AsyncRequestId) {
        let iw = self.clone();
        let sleep = self.shared.clock.sleep(self.shared.config.quiesce_timeout);
        let timer = self.spawn(async move {
            sleep.await;
            let removed = iw.shared.st().quiesce.remove(&id).is_some();
            if removed {
                tracing::warn!(%id, "no UNQUIESCE received: un-quiescing");
                iw.shared.handler.unquiesce(id).await;
            }
        });
        let old = self.shared.st().quiesce.get_mut(&id).and_then(|q| q.timer.replace(timer));
        if let Some(old) = old {
            old.abort();
        }
    }

    fn handle_unquiesce(&self, id: AsyncRequestId) {
        let entry = self.shared.st().quiesce.remove(&id);
        if let Some(entry) = entry {
            if let Some(t) = entry.timer {
                t.abort();
            }
            let iw = self.clone();
            self.spawn(async move { iw.shared.handler.unquiesce(id).await });
        }
    }

    /// Asks every watcher to quiesce I/O before a snapshot (rbd §3.7), retrying on -ETIMEDOUT up
    /// to `rbd_quiesce_notification_attempts` times. Returns the first error a watcher reported
    /// (-EOPNOTSUPP from pre-16.2 owners is ignored).
    pub async fn notify_quiesce(&self, request_id: u64) -> LockResult<AsyncRequestId> {
        let id = AsyncRequestId::new(self.client_id(), request_id);
        let msg = NotifyMessage::Quiesce { async_request_id: id };
        let attempts = self.shared.config.quiesce_notification_attempts.max(1);
        let mut r = 0;
        for attempt in 1..=attempts {
            let reply = match self.send_notify(&msg).await {
                Ok(reply) => reply,
                Err(rados_store::NotifyError::TimedOut(_)) if attempt < attempts => continue,
                Err(rados_store::NotifyError::TimedOut(reply)) => {
                    r = -errno::ETIMEDOUT;
                    reply
                }
                Err(rados_store::NotifyError::Failed(e)) => return Err(LockError::from_r(-e.errno(), true)),
            };
            for ack in reply.acks.iter().filter(|a| !a.reply.is_empty()) {
                let ack_r = match ResponseMessage::from_bytes(&ack.reply) {
                    Ok(resp) => resp.result,
                    Err(e) => e.errno(),
                };
                if ack_r < 0 && ack_r != -errno::EOPNOTSUPP {
                    r = ack_r;
                    break;
                }
            }
            break;
        }
        LockError::check(r, self.is_blocklisted()).map(|()| id)
    }

    /// Releases the quiesce of `id` on every watcher (rbd §3.7).
    pub async fn notify_unquiesce(&self, id: AsyncRequestId) -> LockResult {
        let r = match self.send_notify(&NotifyMessage::Unquiesce { async_request_id: id }).await {
            Ok(_) => 0,
            Err(e) => -e.errno(),
        };
        LockError::check(r, self.is_blocklisted())
    }
}

/// The request type `accept_request` is asked about for a forwarded op (rbd §2.7, §3.2): a
/// SNAP_REMOVE in the trash namespace and a SNAP_CREATE of an orphan mirror snapshot (forced
/// promotion) are special; everything else is general.
pub fn request_type(msg: &NotifyMessage) -> RequestType {
    match msg {
        NotifyMessage::SnapRemove { snap_namespace: SnapshotNamespace::Trash { .. }, .. } => {
            RequestType::TrashSnapRemove
        }
        NotifyMessage::SnapCreate { snap_namespace: SnapshotNamespace::Mirror(m), .. }
            if matches!(
                m.state,
                MirrorSnapshotState::NonPrimary | MirrorSnapshotState::NonPrimaryDemoted
            ) && m.primary_mirror_uuid.is_empty()
                && m.primary_snap_id == CEPH_NOSNAP =>
        {
            RequestType::ForcePromotion
        }
        _ => RequestType::General,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{MirrorSnapshotNamespace, SnapCreateFlags, SnapshotNamespaceType};

    #[test]
    fn header_object_name_rbd_0_1() {
        assert_eq!(header_oid("104897c58821"), "rbd_header.104897c58821");
    }

    #[test]
    fn request_types_rbd_3_2() {
        let id = AsyncRequestId::default();
        let trash = NotifyMessage::SnapRemove {
            snap_name: "s".into(),
            snap_namespace: SnapshotNamespace::Trash {
                original_name: "s".into(),
                original_namespace_type: SnapshotNamespaceType::User,
            },
            async_request_id: id,
        };
        assert_eq!(request_type(&trash), RequestType::TrashSnapRemove);
        let orphan = NotifyMessage::SnapCreate {
            snap_name: "m".into(),
            snap_namespace: SnapshotNamespace::Mirror(MirrorSnapshotNamespace::default()),
            async_request_id: id,
            flags: SnapCreateFlags::default(),
        };
        assert_eq!(request_type(&orphan), RequestType::ForcePromotion);
        let primary = MirrorSnapshotNamespace { state: MirrorSnapshotState::Primary, ..Default::default() };
        let not_orphan = NotifyMessage::SnapCreate {
            snap_name: "m".into(),
            snap_namespace: SnapshotNamespace::Mirror(primary),
            async_request_id: id,
            flags: SnapCreateFlags::default(),
        };
        assert_eq!(request_type(&not_orphan), RequestType::General);
        assert_eq!(request_type(&NotifyMessage::Flatten { async_request_id: id }), RequestType::General);
    }
}
