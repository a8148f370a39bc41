//! watch2 / notify2 / notify_ack / unwatch2 / watch_check and list_watchers on a real Ceph
//! 16.2 cluster (rbd §3.1, §1.6.3; real-ceph §5: the reply buffer, -ETIMEDOUT with the
//! partial reply, round-trip p50 of 0.6–0.96 ms measured from Python and Rust).
//!
//! Runs only with `--features librados` and `CEPH_CONF` set (see `librados_support`). The
//! measured round trip is printed (`--nocapture` shows it).
#![cfg(feature = "librados")]

mod librados_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use librados_support as support;
use rados_store::error::errno;
use rados_store::{
    Error, IoCtx, NotifyAck, NotifyError, WatchCtx, WatchEvent, WatcherId, WatcherInfo, watch_channel,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const OID: &str = "rbd_header.w";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Watches OID and acks every notify with `reply`, forwarding each event it saw.
async fn acking_watcher(
    io: &IoCtx,
    reply: &'static [u8],
) -> (u64, mpsc::UnboundedReceiver<WatchEvent>, JoinHandle<()>) {
    let (ctx, mut rx) = watch_channel();
    let handle = io.watch(OID, ctx).await.unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let io = io.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let WatchEvent::Notify(n) = &ev {
                io.notify_ack(OID, n.notify_id, n.handle, reply).await.unwrap();
            }
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    (handle, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_round_trip_between_two_connections_real_ceph_5() {
    let Some(cfg) = support::config("notify_round_trip_between_two_connections_real_ceph_5") else { return };
    let ns = support::unique_namespace("notify");
    let watcher = support::connect(&cfg).await;
    let notifier = support::connect(&cfg).await;
    let (iw, inot) = (support::ioctx(&watcher, &ns), support::ioctx(&notifier, &ns));
    iw.create(OID, false).await.unwrap();
    let (handle, mut seen, task) = acking_watcher(&iw, b"pong").await;
    assert_ne!(handle, 0);

    let reply = inot.notify(OID, b"ping", TIMEOUT).await.unwrap();
    assert_eq!(reply.acks, vec![NotifyAck { gid: watcher.gid(), cookie: handle, reply: b"pong".to_vec() }]);
    assert!(reply.timeouts.is_empty());
    // What the watcher saw: our payload, our gid as the notifier, its own handle.
    match seen.recv().await.unwrap() {
        WatchEvent::Notify(ev) => {
            assert_eq!(&ev.payload[..], b"ping");
            assert_eq!(ev.notifier_gid, notifier.gid());
            assert_eq!(ev.handle, handle);
        }
        other => panic!("expected a notify, got {other:?}"),
    }

    // A notify reaches the notifier's own watches too (rbd §3.1).
    let (own, _own_seen, own_task) = acking_watcher(&inot, b"self").await;
    let reply = inot.notify(OID, b"both", TIMEOUT).await.unwrap();
    let mut got: Vec<(u64, u64, Vec<u8>)> =
        reply.acks.into_iter().map(|a| (a.gid, a.cookie, a.reply)).collect();
    got.sort();
    let mut want = vec![(watcher.gid(), handle, b"pong".to_vec()), (notifier.gid(), own, b"self".to_vec())];
    want.sort();
    assert_eq!(got, want);

    // Round-trip latency over 100 notifies (real-ceph §5: p50 0.6–0.96 ms, p99 1.2–3.8 ms).
    inot.unwatch(own).await.unwrap();
    own_task.abort();
    let mut ms = Vec::new();
    for i in 0..100u32 {
        let t = Instant::now();
        let r = inot.notify(OID, &i.to_le_bytes(), TIMEOUT).await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.acks.len(), 1);
    }
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "notify round trip over {} notifies (1 watcher, other connection): min={:.2} p50={:.2} p90={:.2} p99={:.2} max={:.2} ms",
        ms.len(),
        ms[0],
        support::percentile_ms(&ms, 50),
        support::percentile_ms(&ms, 90),
        support::percentile_ms(&ms, 99),
        ms[ms.len() - 1]
    );
    assert!(support::percentile_ms(&ms, 50) < 250.0, "notify p50 is implausibly slow");

    iw.unwatch(handle).await.unwrap();
    task.abort();
    // A notify on a missing object fails as a whole.
    let missing = inot.notify("missing", b"x", TIMEOUT).await.unwrap_err();
    assert!(matches!(missing, NotifyError::Failed(Error::NotFound(_))), "{missing}");
    // No watchers: an empty reply, at once.
    let reply = inot.notify(OID, b"nobody", TIMEOUT).await.unwrap();
    assert!(reply.acks.is_empty() && reply.timeouts.is_empty());
}

/// A watch context that swallows notifies without acking.
struct Deaf;

impl WatchCtx for Deaf {
    fn handle_notify(&self, _event: rados_store::NotifyEvent) {}
    fn handle_error(&self, _handle: u64, _error: Error) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_acking_watcher_times_the_notify_out_with_the_partial_reply() {
    let Some(cfg) = support::config("a_non_acking_watcher_times_the_notify_out_with_the_partial_reply")
    else {
        return;
    };
    let ns = support::unique_namespace("timeout");
    let deaf = support::connect(&cfg).await;
    let good = support::connect(&cfg).await;
    let notifier = support::connect(&cfg).await;
    let (id, ig, inot) =
        (support::ioctx(&deaf, &ns), support::ioctx(&good, &ns), support::ioctx(&notifier, &ns));
    id.create(OID, false).await.unwrap();
    let deaf_handle = id.watch(OID, Arc::new(Deaf)).await.unwrap();
    let (good_handle, _seen, task) = acking_watcher(&ig, b"ok").await;

    let t = Instant::now();
    let err = inot.notify(OID, b"hello?", Duration::from_secs(1)).await.unwrap_err();
    let waited = t.elapsed();
    assert_eq!(err.errno(), errno::ETIMEDOUT);
    let NotifyError::TimedOut(reply) = err else { panic!("expected a timeout") };
    assert_eq!(reply.acks, vec![NotifyAck { gid: good.gid(), cookie: good_handle, reply: b"ok".to_vec() }]);
    assert_eq!(reply.timeouts, vec![WatcherId { gid: deaf.gid(), cookie: deaf_handle }]);
    eprintln!("notify with a 1 s timeout and one deaf watcher returned after {waited:?}");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(8), "waited {waited:?}");

    id.unwatch(deaf_handle).await.unwrap();
    ig.unwatch(good_handle).await.unwrap();
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watchers_unwatch_and_watch_check_rbd_1_6_3() {
    let Some(cfg) = support::config("list_watchers_unwatch_and_watch_check_rbd_1_6_3") else { return };
    let ns = support::unique_namespace("watchers");
    let a = support::connect(&cfg).await;
    let b = support::connect(&cfg).await;
    let (ia, ib) = (support::ioctx(&a, &ns), support::ioctx(&b, &ns));

    // Watching a missing object fails.
    let (ctx, _rx) = watch_channel();
    assert!(matches!(ia.watch("missing", ctx).await, Err(Error::NotFound(_))));

    ia.create(OID, false).await.unwrap();
    let (ca, _ra) = watch_channel();
    let (cb, _rb) = watch_channel();
    let ha = ia.watch(OID, ca).await.unwrap();
    let hb = ib.watch(OID, cb).await.unwrap();

    // Both watchers, as (address, gid, cookie), sorted by cookie; the address is the one the
    // client reports, which is what librbd compares with a locker's.
    let mut want = vec![
        WatcherInfo { addr: a.addr(), gid: a.gid(), cookie: ha },
        WatcherInfo { addr: b.addr(), gid: b.gid(), cookie: hb },
    ];
    want.sort_by_key(|w| w.cookie);
    assert_eq!(ib.list_watchers(OID).await.unwrap(), want);

    // The C++ tool lists the same watchers in the same words.
    if let Some(out) = support::cli("rados", &["-p", &support::pool(), "-N", &ns, "listwatchers", OID]) {
        for w in &want {
            assert!(out.lines().any(|l| l.trim() == w.to_string()), "`rados listwatchers` lacks {w}: {out}");
        }
    }

    ia.watch_check(ha).await.unwrap();
    assert_eq!(ia.watch_check(12345).await.unwrap_err().errno(), errno::ENOTCONN);
    // A handle belongs to its connection.
    assert_eq!(ib.watch_check(ha).await.unwrap_err().errno(), errno::ENOTCONN);
    assert!(matches!(ib.unwatch(ha).await, Err(Error::NotFound(_))));

    ia.unwatch(ha).await.unwrap();
    assert!(matches!(ia.unwatch(ha).await, Err(Error::NotFound(_))));
    assert_eq!(ia.watch_check(ha).await.unwrap_err().errno(), errno::ENOTCONN);
    assert_eq!(
        ib.list_watchers(OID).await.unwrap(),
        vec![WatcherInfo { addr: b.addr(), gid: b.gid(), cookie: hb }]
    );
    assert!(matches!(ib.list_watchers("missing").await, Err(Error::NotFound(_))));
    ib.unwatch(hb).await.unwrap();
    assert!(ia.list_watchers(OID).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_connection_with_live_watches_removes_them() {
    let Some(cfg) = support::config("dropping_a_connection_with_live_watches_removes_them") else { return };
    let ns = support::unique_namespace("dropwatch");
    let keeper = support::connect(&cfg).await;
    let ik = support::ioctx(&keeper, &ns);
    ik.create(OID, false).await.unwrap();
    {
        let short = support::connect(&cfg).await;
        let is = support::ioctx(&short, &ns);
        let (ctx, _rx) = watch_channel();
        is.watch(OID, ctx).await.unwrap();
        assert_eq!(ik.list_watchers(OID).await.unwrap().len(), 1);
        // Dropping the last handle unwatches, drains callbacks and shuts the client down.
        drop(is);
        drop(short);
    }
    assert!(ik.list_watchers(OID).await.unwrap().is_empty(), "the watch left with its connection");
    let reply = ik.notify(OID, b"anyone?", TIMEOUT).await.unwrap();
    assert!(reply.acks.is_empty() && reply.timeouts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_finish_safely_in_the_background() {
    // A caller may drop its future while librados still owns the op's buffers: the backend
    // must keep them (and the connection) alive until librados is done.
    let Some(cfg) = support::config("abandoned_calls_finish_safely_in_the_background") else { return };
    let ns = support::unique_namespace("abandon");
    let deaf = support::connect(&cfg).await;
    let id = support::ioctx(&deaf, &ns);
    id.create(OID, false).await.unwrap();
    let h = id.watch(OID, Arc::new(Deaf)).await.unwrap();
    {
        let notifier = support::connect(&cfg).await;
        let inot = support::ioctx(&notifier, &ns);
        inot.write_full("data", &vec![7u8; 200_000]).await.unwrap();
        // Give up on a notify (1 s timeout) and on some reads long before they finish, then
        // drop the connection too.
        let n =
            tokio::time::timeout(Duration::from_millis(50), inot.notify(OID, b"x", Duration::from_secs(1)))
                .await;
        assert!(n.is_err(), "the notify cannot finish before its 1 s timeout");
        for _ in 0..20 {
            let _ = tokio::time::timeout(Duration::from_micros(1), inot.read("data", 0, 0)).await;
        }
        drop(inot);
        drop(notifier);
    }
    // The background completions ran to the end; the cluster and this process are fine.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    id.watch_check(h).await.unwrap();
    assert_eq!(id.list_watchers(OID).await.unwrap().len(), 1);
    id.unwatch(h).await.unwrap();
}
