//! Lock hand-over between two automatic-policy handles on the embedded cluster (rbd §3.5,
//! real-ceph §3: about 20 ms on a loopback cluster). One iteration is one complete hand-over:
//! REQUEST_LOCK, the owner's release (RELEASED_LOCK) and the requester's acquire
//! (ACQUIRED_LOCK). No simulated time passes: a live hand-over needs no timer.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use rados_store::{Cluster, ClusterConfig, SimClock};
use rbd_exclusive_lock::{ExclusiveLock, ImageWatcher, LockConfig, NoImageHooks, NoNotifyHandler};

async fn open(cluster: &Cluster, clock: Arc<SimClock>) -> ExclusiveLock {
    let ioctx = cluster.connect().ioctx("rbd", "").expect("ioctx");
    let watcher =
        ImageWatcher::register(ioctx, "bench", clock, LockConfig::default(), Arc::new(NoNotifyHandler))
            .await
            .expect("watch");
    ExclusiveLock::create(watcher, Arc::new(NoImageHooks)).await
}

fn handover(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (a, b) = rt.block_on(async {
        let clock = Arc::new(SimClock::new());
        let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
        cluster.create_pool("rbd").expect("pool");
        cluster
            .connect()
            .ioctx("rbd", "")
            .expect("ioctx")
            .create("rbd_header.bench", false)
            .await
            .expect("header");
        let a = open(&cluster, clock.clone()).await;
        let b = open(&cluster, clock).await;
        a.acquire_lock().await.expect("first owner");
        (a, b)
    });
    let mut next_is_b = true;
    c.bench_function("rbd_lock_handover_embedded", |bench| {
        bench.iter(|| {
            let taker = if next_is_b { &b } else { &a };
            rt.block_on(async { taker.acquire_lock().await }).expect("hand-over");
            next_is_b = !next_is_b;
        })
    });
}

criterion_group!(benches, handover);
criterion_main!(benches);
