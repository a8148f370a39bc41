#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

//! In-process throughput and latency of the embedded cluster.
//!
//! The issue asks for operations per second and the notify round trip. A real 16.2 cluster on
//! loopback takes about 0.7 ms per notify (real-ceph §5); the embedded one should be in the
//! microseconds, which is what lets simulations run thousands of lock hand-overs per second.
//! Each iteration is one operation, so criterion's "thrpt" line reads as ops/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rados_store::cls_lock_client::get_lock_info;
use rados_store::{Cluster, ClusterConfig, IoCtx, WatchEvent, watch_channel};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn setup(rt: &Runtime) -> (Cluster, IoCtx) {
    let cluster = Cluster::new(ClusterConfig::default());
    cluster.create_pool("bench").expect("pool");
    let io = cluster.connect().ioctx("bench", "").expect("ioctx");
    rt.block_on(io.write_full("obj", &vec![0u8; 4 << 20])).expect("seed object");
    (cluster, io)
}

fn objects(c: &mut Criterion) {
    let rt = runtime();
    let (_cluster, io) = setup(&rt);
    let block = vec![0xabu8; 4096];
    let mut g = c.benchmark_group("objects");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("write_4k", |b| {
        b.iter(|| {
            i = (i + 1) % 1024;
            rt.block_on(io.write("obj", i * 4096, &block)).expect("write");
        })
    });
    g.bench_function("read_4k", |b| {
        b.iter(|| {
            i = (i + 1) % 1024;
            black_box(rt.block_on(io.read("obj", i * 4096, 4096)).expect("read"));
        })
    });
    let mut n = 0u64;
    g.bench_function("omap_set_1", |b| {
        b.iter(|| {
            n += 1;
            let kv = [(format!("key{:08}", n % 10_000), n.to_le_bytes().to_vec())].into_iter().collect();
            rt.block_on(io.omap_set("omap_obj", &kv)).expect("omap set");
        })
    });
    g.bench_function("exec_lock_get_info", |b| {
        rt.block_on(io.create("hdr", false)).expect("create");
        b.iter(|| {
            // The whole exec path: encode, method lookup, decode, xattr read, encode, decode.
            black_box(rt.block_on(get_lock_info(&io, "hdr", "rbd_lock")).expect("get_info"));
        })
    });
    g.finish();
}

fn notify_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let (cluster, notifier) = setup(&rt);
    let watcher = cluster.connect().ioctx("bench", "").expect("ioctx");
    let (ctx, mut rx) = watch_channel();
    rt.block_on(watcher.watch("obj", ctx)).expect("watch");
    let w = watcher.clone();
    rt.spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let WatchEvent::Notify(n) = ev {
                let _ = w.notify_ack("obj", n.notify_id, n.handle, b"pong").await;
            }
        }
    });
    let mut g = c.benchmark_group("notify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip_1_watcher", |b| {
        b.iter(|| {
            let reply = rt.block_on(notifier.notify("obj", b"ping", Duration::from_secs(5))).expect("notify");
            black_box(reply);
        })
    });
    g.bench_function("round_trip_0_watchers", |b| {
        rt.block_on(notifier.create("lonely", false)).expect("create");
        b.iter(|| {
            black_box(
                rt.block_on(notifier.notify("lonely", b"ping", Duration::from_secs(5))).expect("notify"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, objects, notify_round_trip);
criterion_main!(benches);
