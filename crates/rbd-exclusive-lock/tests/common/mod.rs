//! Test harness: an embedded cluster on a simulated clock, image handles with recording hooks,
//! a notify sniffer, the write-through-lock model and the "never two owners" check.
//!
//! Tests run on a current-thread tokio runtime with paused time. Nothing in the system under test
//! uses tokio's clock (every timer is on the cluster's `SimClock`), so a short tokio sleep
//! ([`settle`]) completes exactly when every task is idle: it is a "run until quiescent" step, not
//! a wait. Simulated time only moves when a test calls [`Env::advance`].

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rados_store::cls_lock_client::{self as cls, AssertOp, LockInfo, LockType};
use rados_store::{
    Client, Cluster, ClusterConfig, IoCtx, NotifyReply, SimClock, WatchEvent, WriteOp, watch_channel,
};
use rbd_exclusive_lock::notify::{AsyncRequestId, NotifyMessage};
use rbd_exclusive_lock::{
    ExclusiveLock, ImageLockHooks, ImageNotifyHandler, ImageWatcher, LockConfig, LockError, LockResult,
    ProgressReporter, State, header_oid,
};
use tokio::sync::watch;

/// The image every test uses.
pub const IMAGE_ID: &str = "1fc3a9d5e2b7";
pub const POOL: &str = "rbd";

/// Lets every runnable task run until all are blocked (see the module docs).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Installs a tracing subscriber once, when `RUST_LOG` is set, to debug a failing test.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub struct Env {
    pub clock: Arc<SimClock>,
    pub cluster: Cluster,
    /// A client that never watches, for inspecting the header.
    pub admin: IoCtx,
    pub oid: String,
}

impl Env {
    pub async fn new() -> Env {
        init_tracing();
        let clock = Arc::new(SimClock::new());
        let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
        cluster.create_pool(POOL).expect("pool");
        let admin = cluster.connect().ioctx(POOL, "").expect("ioctx");
        let oid = header_oid(IMAGE_ID);
        admin.create(&oid, false).await.expect("header");
        Env { clock, cluster, admin, oid }
    }

    pub async fn open(&self) -> Handle {
        self.open_with(LockConfig::default()).await
    }

    pub async fn open_with(&self, config: LockConfig) -> Handle {
        let client = self.cluster.connect();
        let ioctx = client.ioctx(POOL, "").expect("ioctx");
        let handler = Arc::new(TestHandler::default());
        let hooks = Arc::new(TestHooks::new());
        let watcher =
            ImageWatcher::register(ioctx.clone(), IMAGE_ID, self.clock.clone(), config, handler.clone())
                .await
                .expect("register watch");
        let lock = ExclusiveLock::create(watcher.clone(), hooks.clone()).await;
        Handle { client, ioctx, watcher, lock, hooks, handler, killed: AtomicBool::new(false) }
    }

    /// Advances simulated time, letting the system settle before and after.
    pub async fn advance(&self, by: Duration) {
        settle().await;
        self.clock.advance(by);
        settle().await;
    }

    /// The cls lock on the header as `rados lock info` shows it.
    pub async fn lock_info(&self) -> LockInfo {
        cls::get_lock_info(&self.admin, &self.oid, "rbd_lock").await.expect("get_info")
    }

    /// The single-owner invariant (rbd §10; ARCHITECTURE "at most one RBD lock owner"): the cls
    /// lock has at most one locker; at most one live handle believes it owns the lock; and a live,
    /// unfenced handle in LOCKED holds the cls lock under its own entity and cookie.
    pub async fn assert_single_owner(&self, handles: &[&Handle]) {
        let info = self.lock_info().await;
        assert!(info.lockers.len() <= 1, "two cls lockers: {:?}", info.lockers);
        let owners: Vec<u64> =
            handles.iter().filter(|h| h.is_live() && h.lock.is_lock_owner()).map(|h| h.gid()).collect();
        assert!(owners.len() <= 1, "two handles believe they own the lock: {owners:?}");
        for h in handles
            .iter()
            .filter(|h| h.is_live() && h.lock.state() == State::Locked && !h.watcher.is_blocklisted())
        {
            let cookie = h.lock.managed_lock().cookie();
            assert!(
                info.lockers.keys().any(|id| id.cookie == cookie && id.entity == h.ioctx.entity()),
                "client.{} is LOCKED with cookie {cookie:?} but the cls lock is {:?}",
                h.gid(),
                info.lockers
            );
        }
    }

    /// A raw watcher that records every decoded notify and acks empty, like a bystander handle.
    pub async fn sniffer(&self) -> Sniffer {
        let client = self.cluster.connect();
        let ioctx = client.ioctx(POOL, "").expect("ioctx");
        let (ctx, mut rx) = watch_channel();
        ioctx.watch(&self.oid, ctx).await.expect("sniffer watch");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let io2 = ioctx.clone();
        let oid = self.oid.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let WatchEvent::Notify(n) = ev {
                    if let Ok(m) = NotifyMessage::from_bytes(&n.payload) {
                        s2.lock().unwrap().push(m);
                    }
                    let _ = io2.notify_ack(&oid, n.notify_id, n.handle, &[]).await;
                }
            }
        });
        Sniffer { seen, _client: client }
    }

    /// Takes the managed lock's cls lock the way a foreign tool does (`rbd lock add`, real-ceph
    /// §3): another client, its own cookie and tag.
    pub async fn external_lock(&self, cookie: &str, tag: &str) -> IoCtx {
        let io = self.cluster.connect().ioctx(POOL, "").expect("ioctx");
        cls::lock(&io, &self.oid, "rbd_lock", LockType::Exclusive, cookie, tag, "", Duration::ZERO, 0)
            .await
            .expect("external lock");
        io
    }

    /// Sends a raw notify on the header from the (non-watching) admin client, as a peer or a
    /// foreign tool would, with librbd's 5 s timeout.
    pub async fn raw_notify(&self, payload: &[u8]) -> Result<NotifyReply, rados_store::NotifyError> {
        self.admin.notify(&self.oid, payload, Duration::from_secs(5)).await
    }

    /// The omap of the header (where the write model stores its writes).
    pub async fn written(&self) -> BTreeMap<String, Vec<u8>> {
        self.admin.omap_get_vals(&self.oid, "", 100_000).await.expect("omap").0
    }
}

pub struct Sniffer {
    pub seen: Arc<Mutex<Vec<NotifyMessage>>>,
    _client: Client,
}

impl Sniffer {
    pub fn ops(&self) -> Vec<NotifyMessage> {
        self.seen.lock().unwrap().clone()
    }

    pub fn op_codes(&self) -> Vec<u32> {
        self.ops().iter().map(NotifyMessage::op_code).collect()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// One image handle: a client, its watcher and its exclusive lock.
pub struct Handle {
    pub client: Client,
    pub ioctx: IoCtx,
    pub watcher: ImageWatcher,
    pub lock: ExclusiveLock,
    pub hooks: Arc<TestHooks>,
    pub handler: Arc<TestHandler>,
    pub killed: AtomicBool,
}

impl Handle {
    pub fn gid(&self) -> u64 {
        self.client.gid()
    }

    /// The ack this handle gave in a notify reply (None if it did not ack).
    pub fn ack_in<'a>(&self, reply: &'a NotifyReply) -> Option<&'a [u8]> {
        let cookie = self.watcher.watch_handle();
        reply.acks.iter().find(|a| a.gid == self.gid() && a.cookie == cookie).map(|a| a.reply.as_slice())
    }

    pub fn addr(&self) -> String {
        self.client.addr().to_string()
    }

    pub fn is_live(&self) -> bool {
        !self.killed.load(Ordering::SeqCst)
    }

    /// Crashes the handle's process (kill -9): its watch lingers until the watch timeout.
    pub fn kill(&self, env: &Env) {
        self.killed.store(true, Ordering::SeqCst);
        env.cluster.kill_client(self.gid()).expect("kill");
    }

    /// The write-through-lock model of an image write (rbd §2.11): admit the write through the
    /// lock (acquiring it under the automatic policy), then store it in the header's omap in one
    /// atomic op guarded by `assert_locked` on our cookie, so a write by a non-owner, or by a
    /// fenced owner, cannot land.
    pub async fn write(&self, key: &str, value: &[u8]) -> LockResult {
        let guard = self.lock.start_op_acquiring().await?;
        let assert = AssertOp {
            name: "rbd_lock".into(),
            lock_type: LockType::Exclusive,
            cookie: self.lock.managed_lock().cookie(),
            tag: "internal".into(),
        };
        let op =
            cls::write_op_assert_locked(WriteOp::new(), &assert).omap_set([(key.to_owned(), value.to_vec())]);
        let res = self.ioctx.operate_write(&header_oid(IMAGE_ID), &op).await;
        drop(guard);
        res.map_err(|e| LockError::from_store(&e))
    }
}

/// Image hooks that record what ran, with an optional gate and failure in the object-map step
/// (the step between the cls lock and ownership, rbd §2.3 step 2).
pub struct TestHooks {
    pub events: Mutex<Vec<String>>,
    pub require_lock: AtomicBool,
    /// While false, `open_object_map` waits.
    pub gate: watch::Sender<bool>,
    pub object_map_r: AtomicI32,
    pub pre_release_r: AtomicI32,
}

impl TestHooks {
    pub fn new() -> TestHooks {
        TestHooks {
            events: Mutex::new(Vec::new()),
            require_lock: AtomicBool::new(false),
            gate: watch::Sender::new(true),
            object_map_r: AtomicI32::new(0),
            pre_release_r: AtomicI32::new(0),
        }
    }

    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn record(&self, e: &str) {
        self.events.lock().unwrap().push(e.to_owned());
    }
}

#[async_trait]
impl ImageLockHooks for TestHooks {
    async fn set_require_lock(&self, required: bool) {
        self.require_lock.store(required, Ordering::SeqCst);
        self.record(if required { "require_lock" } else { "unrequire_lock" });
    }
    async fn open_object_map(&self) -> i32 {
        self.record("open_object_map");
        let mut rx = self.gate.subscribe();
        let _ = rx.wait_for(|open| *open).await;
        self.object_map_r.load(Ordering::SeqCst)
    }
    async fn plugin_release(&self) -> i32 {
        self.pre_release_r.load(Ordering::SeqCst)
    }
    async fn flush_io(&self) -> i32 {
        self.record("flush_io");
        0
    }
    async fn close_object_map(&self) {
        self.record("close_object_map");
    }
    async fn shut_down(&self) {
        self.record("shut_down");
    }
}

/// What an operation handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub op: u32,
    pub id: AsyncRequestId,
}

/// An image-layer notify handler: counts header updates and runs forwarded ops with a scripted
/// result, optional progress reports spaced on the simulated clock, and an optional gate.
pub struct TestHandler {
    pub header_updates: AtomicUsize,
    pub executed: Mutex<Vec<Executed>>,
    pub result: AtomicI32,
    /// Progress reports to send, each after this much simulated time (none if zero steps).
    pub progress_steps: AtomicUsize,
    pub progress_every: Mutex<Duration>,
    pub clock: Mutex<Option<Arc<SimClock>>>,
    pub gate: watch::Sender<bool>,
    pub quiesced: AtomicUsize,
    pub unquiesced: AtomicUsize,
}

impl Default for TestHandler {
    fn default() -> Self {
        TestHandler {
            header_updates: AtomicUsize::new(0),
            executed: Mutex::new(Vec::new()),
            result: AtomicI32::new(0),
            progress_steps: AtomicUsize::new(0),
            progress_every: Mutex::new(Duration::ZERO),
            clock: Mutex::new(None),
            gate: watch::Sender::new(true),
            quiesced: AtomicUsize::new(0),
            unquiesced: AtomicUsize::new(0),
        }
    }
}

impl TestHandler {
    pub fn executed(&self) -> Vec<Executed> {
        self.executed.lock().unwrap().clone()
    }
}

#[async_trait]
impl ImageNotifyHandler for TestHandler {
    fn header_updated(&self) {
        self.header_updates.fetch_add(1, Ordering::SeqCst);
    }

    async fn execute_operation(&self, request: &NotifyMessage, progress: ProgressReporter) -> i32 {
        self.executed.lock().unwrap().push(Executed { op: request.op_code(), id: progress.id() });
        let steps = self.progress_steps.load(Ordering::SeqCst);
        let every = *self.progress_every.lock().unwrap();
        let clock = self.clock.lock().unwrap().clone();
        for i in 0..steps {
            if let Some(c) = &clock {
                rados_store::Clock::sleep(c.as_ref(), every).await;
            }
            progress.update(i as u64 + 1, steps as u64);
        }
        let mut rx = self.gate.subscribe();
        let _ = rx.wait_for(|open| *open).await;
        self.result.load(Ordering::SeqCst)
    }

    async fn quiesce(&self, _id: AsyncRequestId) -> i32 {
        self.quiesced.fetch_add(1, Ordering::SeqCst);
        0
    }

    async fn unquiesce(&self, _id: AsyncRequestId) {
        self.unquiesced.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs a test body with a hang guard. With paused time the guard fires as soon as the whole
/// system is stuck, instead of after a real hour.
pub async fn guarded<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(24 * 3600), body)
        .await
        .expect("test hung: every task is blocked");
}
