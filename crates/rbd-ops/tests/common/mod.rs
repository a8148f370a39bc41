//! Test harness: an embedded cluster on a simulated clock and image handles on separate clients.
//!
//! Tests run on a current-thread runtime with paused tokio time; nothing under test uses tokio's
//! clock, so [`settle`] (a short tokio sleep) returns once every task is idle, and simulated time
//! only moves when a test calls [`Env::advance`].

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rados_store::cls_lock_client::{self as cls_lock, LockInfo};
use rados_store::{Client, Cluster, ClusterConfig, IoCtx, SimClock};
use rbd_ops::{CreateOptions, Image, OpenOptions, admin};

pub const POOL: &str = "rbd";
/// 64 KiB objects keep multi-object I/O cheap.
pub const ORDER: u8 = 16;
pub const OBJ: u64 = 1 << ORDER;

pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

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
    pub admin: IoCtx,
}

impl Env {
    pub async fn new() -> Env {
        init_tracing();
        let clock = Arc::new(SimClock::new());
        let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
        cluster.create_pool(POOL).expect("pool");
        let admin = cluster.connect().ioctx(POOL, "").expect("ioctx");
        Env { clock, cluster, admin }
    }

    /// Creates image `name` of `size` bytes with 64 KiB objects and `features`.
    pub async fn create(&self, name: &str, size: u64, features: u64) {
        admin::create(&self.admin, name, size, &CreateOptions { order: ORDER, features })
            .await
            .expect("create");
    }

    pub async fn create_default(&self, name: &str, size: u64) {
        self.create(name, size, rbd_ops::DEFAULT_FEATURES).await;
    }

    /// A new client (process) and its ioctx.
    pub fn client(&self) -> (Client, IoCtx) {
        let c = self.cluster.connect();
        let io = c.ioctx(POOL, "").expect("ioctx");
        (c, io)
    }

    pub async fn open(&self, name: &str) -> Image {
        self.open_with(name, OpenOptions::default()).await
    }

    pub async fn open_with(&self, name: &str, opts: OpenOptions) -> Image {
        let (_c, io) = self.client();
        Image::open(&io, name, opts).await.expect("open")
    }

    pub async fn open_snap(&self, name: &str, snap: &str) -> Image {
        self.open_with(
            name,
            OpenOptions { snap_name: Some(snap.into()), read_only: true, ..Default::default() },
        )
        .await
    }

    pub async fn advance(&self, by: Duration) {
        settle().await;
        self.clock.advance(by);
        settle().await;
    }

    pub async fn lock_info(&self, img: &Image) -> LockInfo {
        cls_lock::get_lock_info(&self.admin, &format!("rbd_header.{}", img.id()), "rbd_lock")
            .await
            .expect("info")
    }

    /// The gid of the cls lock's single holder (None when unlocked).
    pub async fn locker_gid(&self, img: &Image) -> Option<u64> {
        let info = self.lock_info(img).await;
        assert!(info.lockers.len() <= 1, "two lockers: {:?}", info.lockers);
        info.lockers
            .keys()
            .next()
            .map(|id| id.entity.to_string().trim_start_matches("client.").parse().unwrap())
    }
}

pub fn gid(img: &Image) -> u64 {
    img.watcher().expect("writable handle").ioctx().client_gid()
}

/// Runs a test body with a hang guard (fires as soon as every task is blocked, time is paused).
pub async fn guarded<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(24 * 3600), body)
        .await
        .expect("test hung: every task is blocked");
}

/// Deterministic bytes for block `i` of a writer tagged `tag`.
pub fn pattern(tag: u8, i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| tag ^ (i as u8).wrapping_mul(31) ^ (j as u8)).collect()
}
