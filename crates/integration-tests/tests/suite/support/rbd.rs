//! An embedded RADOS cluster on a simulated clock, image handles on separate clients (one
//! process each, as qemu and nova-compute are), and a header observer that records who sent
//! which rbd notify (what `rbd watch` shows).
//!
//! Tests run on a current-thread runtime with paused tokio time. Nothing under test sleeps on
//! tokio's clock, so [`settle`] returns only once every task is idle, and simulated time moves
//! only when a test calls [`Env::advance`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rados_store::cls_lock_client::{self, LockInfo};
use rados_store::{Client, Cluster, ClusterConfig, Gid, IoCtx, NotifyEvent, SimClock, WatchCtx};
use rbd_exclusive_lock::notify::{NotifyMessage, NotifyOp};
use rbd_ops::{CreateOptions, Image, OpenOptions, admin};

pub const POOL: &str = "rbd";
/// 64 KiB objects keep multi-object I/O cheap.
pub const ORDER: u8 = 16;
pub const OBJ: u64 = 1 << ORDER;

/// Lets every runnable task finish what it can (time is paused, so this is exact).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Fails the test instead of hanging if every task blocks (tokio's paused clock jumps to the
/// timeout as soon as nothing can run).
pub async fn guarded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(24 * 3600), body).await.expect("hung: every task is blocked");
}

/// Deterministic bytes for block `i` written by the writer tagged `tag`.
pub fn pattern(tag: u8, i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| tag.wrapping_mul(97) ^ (i as u8).wrapping_mul(31) ^ (j as u8) | 1).collect()
}

pub struct Env {
    pub clock: Arc<SimClock>,
    pub cluster: Cluster,
    pub admin: IoCtx,
    /// Notifies seen on watched headers: (sender gid, op).
    pub seen: Arc<Mutex<Vec<(Gid, NotifyOp)>>>,
    /// Clients kept alive for the handles opened on them.
    clients: Mutex<Vec<Client>>,
}

impl Env {
    pub fn new(seed: u64) -> Env {
        let clock = Arc::new(SimClock::new());
        let cluster = Cluster::with_clock(clock.clone(), ClusterConfig { seed, ..ClusterConfig::default() });
        cluster.create_pool(POOL).expect("pool");
        let admin = cluster.connect().ioctx(POOL, "").expect("ioctx");
        Env { clock, cluster, admin, seen: Arc::default(), clients: Mutex::default() }
    }

    pub async fn create(&self, name: &str, size: u64) {
        admin::create(
            &self.admin,
            name,
            size,
            &CreateOptions { order: ORDER, features: rbd_ops::DEFAULT_FEATURES },
        )
        .await
        .expect("create");
    }

    /// Opens `name` read-write on a new client (a new process).
    pub async fn open(&self, name: &str) -> Image {
        self.open_with(name, OpenOptions::default()).await
    }

    pub async fn open_with(&self, name: &str, opts: OpenOptions) -> Image {
        let c = self.cluster.connect();
        let io = c.ioctx(POOL, "").expect("ioctx");
        self.clients.lock().unwrap().push(c);
        Image::open(&io, name, opts).await.expect("open")
    }

    pub async fn open_snap(&self, name: &str, snap: &str) -> Image {
        self.open_with(
            name,
            OpenOptions { snap_name: Some(snap.into()), read_only: true, ..Default::default() },
        )
        .await
    }

    /// Watches `img`'s header from the admin client and records every notify's sender and op.
    pub async fn observe(&self, img: &Image) {
        let oid = admin::header_oid(img.id());
        let obs = Observer { io: self.admin.clone(), oid: oid.clone(), seen: self.seen.clone() };
        self.admin.watch(&oid, Arc::new(obs)).await.expect("watch header");
    }

    /// The notifies seen since the last call.
    pub fn take_seen(&self) -> Vec<(Gid, NotifyOp)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    pub async fn advance(&self, by: Duration) {
        settle().await;
        self.clock.advance(by);
        settle().await;
    }

    /// Advances simulated time one second at a time until `task` has finished; returns the
    /// simulated seconds that took. Panics after `limit` seconds.
    pub async fn run_clock<T>(&self, task: &tokio::task::JoinHandle<T>, limit: u64) -> u64 {
        settle().await;
        for waited in 0..limit {
            if task.is_finished() {
                return waited;
            }
            self.advance(Duration::from_secs(1)).await;
        }
        assert!(task.is_finished(), "still running after {limit} simulated seconds");
        limit
    }

    pub async fn lock_info(&self, img: &Image) -> LockInfo {
        cls_lock_client::get_lock_info(&self.admin, &admin::header_oid(img.id()), "rbd_lock")
            .await
            .expect("lock info")
    }

    /// The cls lock's single holder as (gid, cookie), read from the header as `rbd lock ls`
    /// does; None when unlocked. Two holders fail the test (rbd §6: the lock is exclusive).
    pub async fn locker(&self, img: &Image) -> Option<(Gid, String)> {
        let info = self.lock_info(img).await;
        assert!(info.lockers.len() <= 1, "two cls lockers: {:?}", info.lockers);
        info.lockers.keys().next().map(|id| (id.entity.num as Gid, id.cookie.clone()))
    }
}

pub fn gid(img: &Image) -> Gid {
    img.watcher().expect("writable handle").ioctx().client_gid()
}

/// The cookie `img`'s managed lock uses (rbd §10 fact 3: `auto <watch handle>`).
pub fn cookie(img: &Image) -> String {
    img.exclusive_lock().expect("exclusive-lock on").managed_lock().cookie()
}

struct Observer {
    io: IoCtx,
    oid: String,
    seen: Arc<Mutex<Vec<(Gid, NotifyOp)>>>,
}

impl WatchCtx for Observer {
    fn handle_notify(&self, ev: NotifyEvent) {
        if let Ok(Some(op)) = NotifyMessage::from_bytes(&ev.payload).map(|m| m.op()) {
            self.seen.lock().unwrap().push((ev.notifier_gid, op));
        }
        let (io, oid) = (self.io.clone(), self.oid.clone());
        tokio::spawn(async move {
            let _ = io.notify_ack(&oid, ev.notify_id, ev.handle, b"").await;
        });
    }

    fn handle_error(&self, _handle: u64, _error: rados_store::Error) {}
}
