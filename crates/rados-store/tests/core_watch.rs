//! Watch/notify on the embedded cluster, driven by a simulated clock (no sleeping).
//!
//! rbd §3.1: every writable image handle watches the header; notifies reach every watcher
//! including the sender's own; the reply holds `(gid, cookie) → payload` for acks and the
//! watchers that missed the deadline, with -ETIMEDOUT if there were any (real-ceph §5 shows
//! `ret=-110 ... reply=([], [(gid, cookie)])`). rbd §0.2 / §1.7: a dead client's watch stays
//! listed for `osd_client_watch_timeout` (30 s), which is what delays lock breaking.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rados_store::error::errno;
use rados_store::{
    Cluster, ClusterConfig, Error, IoCtx, NotifyError, NotifyEvent, NotifyReply, SimClock, WatchCtx,
    WatchEvent, WatcherId, watch_channel,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const OID: &str = "rbd_header.abc";
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

fn setup() -> (Arc<SimClock>, Cluster) {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    (clock, cluster)
}

async fn client_io(c: &Cluster) -> IoCtx {
    let io = c.connect().ioctx("rbd", "").unwrap();
    io.create(OID, false).await.unwrap();
    io
}

/// Watches `OID` and acks every notify with `reply`; each ack is reported on the returned
/// channel once the cluster has recorded it.
async fn acking_watcher(io: &IoCtx, reply: &'static [u8]) -> (u64, mpsc::UnboundedReceiver<u64>) {
    let (ctx, mut rx) = watch_channel();
    let handle = io.watch(OID, ctx).await.unwrap();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let io = io.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let WatchEvent::Notify(n) = ev {
                io.notify_ack(OID, n.notify_id, n.handle, reply).await.unwrap();
                let _ = done_tx.send(n.notify_id);
            }
        }
    });
    (handle, done_rx)
}

fn spawn_notify(
    io: &IoCtx,
    payload: &'static [u8],
    timeout: Duration,
) -> JoinHandle<Result<NotifyReply, NotifyError>> {
    let io = io.clone();
    tokio::spawn(async move { io.notify(OID, payload, timeout).await })
}

async fn next_notify(rx: &mut mpsc::UnboundedReceiver<WatchEvent>) -> NotifyEvent {
    match rx.recv().await {
        Some(WatchEvent::Notify(n)) => n,
        other => panic!("expected a notify, got {other:?}"),
    }
}

fn timed_out(r: Result<NotifyReply, NotifyError>) -> NotifyReply {
    match r {
        Err(NotifyError::TimedOut(reply)) => reply,
        other => panic!("expected -ETIMEDOUT, got {other:?}"),
    }
}

#[tokio::test]
async fn zero_watchers_completes_at_once() {
    let (_clock, c) = setup();
    let a = client_io(&c).await;
    let reply = a.notify(OID, b"hello", NOTIFY_TIMEOUT).await.unwrap();
    assert_eq!(reply, NotifyReply::default());
    assert_eq!(reply.errno(), 0);
}

#[tokio::test]
async fn one_watcher_gets_payload_and_notifier_gets_reply() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    let handle = b.watch(OID, ctx).await.unwrap();
    assert_ne!(handle, 0);
    let notifier = spawn_notify(&a, b"ping", NOTIFY_TIMEOUT);
    let ev = next_notify(&mut rx).await;
    assert_eq!((ev.handle, ev.notifier_gid, &ev.payload[..]), (handle, a.client_gid(), &b"ping"[..]));
    b.notify_ack(OID, ev.notify_id, ev.handle, b"pong").await.unwrap();
    let reply = notifier.await.unwrap().unwrap();
    assert_eq!(reply.acks.len(), 1);
    assert_eq!((reply.acks[0].gid, reply.acks[0].cookie), (b.client_gid(), handle));
    assert_eq!(reply.acks[0].reply, b"pong");
    assert!(reply.timeouts.is_empty());
}

#[tokio::test]
async fn many_watchers_all_ack_sorted_by_gid_and_cookie() {
    let (_clock, c) = setup();
    let a = client_io(&c).await;
    let mut expect = Vec::new();
    let mut watchers = Vec::new();
    for _ in 0..6 {
        let io = client_io(&c).await;
        let (h, done) = acking_watcher(&io, b"ok").await;
        expect.push(WatcherId { gid: io.client_gid(), cookie: h });
        watchers.push((io, done));
    }
    // A second watch by the same client is a separate watcher (two image handles, rbd §6).
    let (h2, _done2) = acking_watcher(&watchers[0].0, b"ok").await;
    expect.push(WatcherId { gid: watchers[0].0.client_gid(), cookie: h2 });
    expect.sort();
    let reply = a.notify(OID, b"x", NOTIFY_TIMEOUT).await.unwrap();
    let got: Vec<WatcherId> = reply.acks.iter().map(|k| WatcherId { gid: k.gid, cookie: k.cookie }).collect();
    assert_eq!(got, expect);
    assert_eq!(a.list_watchers(OID).await.unwrap().len(), 7);
}

#[tokio::test]
async fn notifier_own_watch_receives_its_notify() {
    let (_clock, c) = setup();
    let a = client_io(&c).await;
    let (h, _done) = acking_watcher(&a, b"self").await;
    let reply = a.notify(OID, b"x", NOTIFY_TIMEOUT).await.unwrap();
    assert_eq!(reply.acks.len(), 1);
    assert_eq!(
        (reply.acks[0].gid, reply.acks[0].cookie, &reply.acks[0].reply[..]),
        (a.client_gid(), h, &b"self"[..])
    );
}

#[tokio::test]
async fn slow_watcher_acking_before_the_deadline_counts() {
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    b.watch(OID, ctx).await.unwrap();
    let start = clock.now();
    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    let ev = next_notify(&mut rx).await;
    clock.wait_for_sleepers(1).await;
    clock.advance(Duration::from_millis(4999));
    assert_eq!(clock.next_deadline(), Some(start.saturating_add(NOTIFY_TIMEOUT)), "still waiting");
    b.notify_ack(OID, ev.notify_id, ev.handle, b"late but in time").await.unwrap();
    let reply = notifier.await.unwrap().unwrap();
    assert_eq!(reply.acks[0].reply, b"late but in time");
}

#[tokio::test]
async fn ack_after_the_deadline_is_ignored() {
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    let h = b.watch(OID, ctx).await.unwrap();
    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    let ev = next_notify(&mut rx).await;
    clock.wait_for_sleepers(1).await;
    clock.advance(NOTIFY_TIMEOUT);
    // Whether or not the notifier has looked yet, an ack at the deadline is too late.
    b.notify_ack(OID, ev.notify_id, ev.handle, b"too late").await.unwrap();
    let reply = timed_out(notifier.await.unwrap());
    assert!(reply.acks.is_empty());
    assert_eq!(reply.timeouts, [WatcherId { gid: b.client_gid(), cookie: h }]);
}

#[tokio::test]
async fn dead_watcher_times_out_and_partial_acks_are_kept() {
    let (clock, c) = setup();
    let (a, live, dead) = (client_io(&c).await, client_io(&c).await, client_io(&c).await);
    let (live_h, mut acked) = acking_watcher(&live, b"alive").await;
    let (ctx, mut dead_rx) = watch_channel();
    let dead_h = dead.watch(OID, ctx).await.unwrap();
    c.kill_client(dead.client_gid()).unwrap();

    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    acked.recv().await.unwrap();
    clock.wait_for_sleepers(1).await;
    clock.advance(NOTIFY_TIMEOUT);
    let err = notifier.await.unwrap().unwrap_err();
    assert_eq!(err.errno(), errno::ETIMEDOUT);
    let reply = err.reply().unwrap();
    assert_eq!(reply.errno(), -errno::ETIMEDOUT);
    assert_eq!(reply.acks.len(), 1);
    assert_eq!((reply.acks[0].gid, reply.acks[0].cookie), (live.client_gid(), live_h));
    assert_eq!(reply.timeouts, [WatcherId { gid: dead.client_gid(), cookie: dead_h }]);
    // The dead client's callbacks never ran.
    assert!(dead_rx.try_recv().is_err());
    // Converting to the plain error keeps the errno for `?` users.
    assert_eq!(Error::from(err).errno(), errno::ETIMEDOUT);
}

#[tokio::test]
async fn zero_timeout_means_the_client_default() {
    let (clock, c) = setup();
    let (a, dead) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    dead.watch(OID, ctx).await.unwrap();
    c.kill_client(dead.client_gid()).unwrap();
    let start = clock.now();
    let notifier = spawn_notify(&a, b"x", Duration::ZERO);
    clock.wait_for_sleepers(1).await;
    assert_eq!(clock.next_deadline(), Some(start.saturating_add(Duration::from_secs(10))));
    clock.advance(Duration::from_secs(10));
    assert_eq!(timed_out(notifier.await.unwrap()).timeouts.len(), 1);
}

#[tokio::test]
async fn unwatch_stops_delivery_and_releases_an_inflight_notify() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    let h = b.watch(OID, ctx).await.unwrap();
    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    next_notify(&mut rx).await;
    // The watcher goes away instead of acking: the notify stops waiting for it (no timeout).
    b.unwatch(h).await.unwrap();
    assert_eq!(notifier.await.unwrap().unwrap(), NotifyReply::default());
    assert!(a.list_watchers(OID).await.unwrap().is_empty());
    assert_eq!(a.notify(OID, b"y", NOTIFY_TIMEOUT).await.unwrap(), NotifyReply::default());
    assert!(rx.try_recv().is_err());
    assert_eq!(b.unwatch(h).await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(b.watch_check(h).await.unwrap_err().errno(), errno::ENOTCONN);
}

#[tokio::test]
async fn list_watchers_reports_address_gid_and_cookie() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx_a, _ra) = watch_channel();
    let (ctx_b, _rb) = watch_channel();
    let ha = a.watch(OID, ctx_a).await.unwrap();
    let hb = b.watch(OID, ctx_b).await.unwrap();
    assert!(ha > u64::from(u32::MAX) && hb > u64::from(u32::MAX), "handles need all 64 bits");
    let w = b.list_watchers(OID).await.unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!((w[0].addr, w[0].gid, w[0].cookie), (a.addr(), a.client_gid(), ha));
    assert_eq!((w[1].addr, w[1].gid, w[1].cookie), (b.addr(), b.client_gid(), hb));
    assert_eq!(w[0].to_string(), format!("watcher={} client.{} cookie={}", a.addr(), a.client_gid(), ha));
    a.watch_check(ha).await.unwrap();
    assert_eq!(a.watch_check(hb).await.unwrap_err().errno(), errno::ENOTCONN, "not a's watch");
    assert_eq!(
        a.unwatch(hb).await.unwrap_err().errno(),
        errno::ENOENT,
        "cannot unwatch another client's watch"
    );
}

#[tokio::test]
async fn missing_object_errors() {
    let (_clock, c) = setup();
    let a = c.connect().ioctx("rbd", "").unwrap();
    let (ctx, _rx) = watch_channel();
    assert_eq!(a.watch("nope", ctx).await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(a.list_watchers("nope").await.unwrap_err().errno(), errno::ENOENT);
    let err = a.notify("nope", b"", NOTIFY_TIMEOUT).await.unwrap_err();
    assert!(matches!(err, NotifyError::Failed(Error::NotFound(_))), "{err:?}");
}

#[tokio::test]
async fn killed_clients_watch_lingers_for_the_watch_timeout() {
    // rbd §0.2 osd_client_watch_timeout = 30 s; real-ceph §3: the next writer waited ~28.5 s.
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    let h = b.watch(OID, ctx).await.unwrap();
    c.kill_client(b.client_gid()).unwrap();
    assert!(!c.is_client_alive(b.client_gid()));
    assert_eq!(b.read(OID, 0, 0).await.unwrap_err().errno(), errno::ENOTCONN);
    clock.advance(Duration::from_millis(29_999));
    let w = a.list_watchers(OID).await.unwrap();
    assert_eq!((w.len(), w[0].cookie), (1, h), "still listed just before the timeout");
    clock.advance(Duration::from_millis(1));
    assert!(a.list_watchers(OID).await.unwrap().is_empty(), "gone at the timeout");
    // Notifies no longer wait for it.
    assert_eq!(a.notify(OID, b"x", NOTIFY_TIMEOUT).await.unwrap(), NotifyReply::default());
    assert_eq!(c.kill_client(999_999).unwrap_err().errno(), errno::ENOENT);
}

#[tokio::test]
async fn watch_expiry_before_the_deadline_releases_the_notify() {
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    b.watch(OID, ctx).await.unwrap();
    let killed_at = clock.now();
    c.kill_client(b.client_gid()).unwrap();
    clock.advance(Duration::from_secs(28));
    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    clock.wait_for_sleepers(1).await;
    // The notifier wakes at the watch expiry (t+30 s), before its own deadline (t+33 s).
    assert_eq!(clock.next_deadline(), Some(killed_at.saturating_add(Duration::from_secs(30))));
    // One big jump past both: the expiry came first, so nobody timed out.
    clock.advance(Duration::from_secs(10));
    assert_eq!(notifier.await.unwrap().unwrap(), NotifyReply::default());
}

#[tokio::test]
async fn deadline_before_watch_expiry_is_a_timeout_even_after_a_big_jump() {
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    let h = b.watch(OID, ctx).await.unwrap();
    c.kill_client(b.client_gid()).unwrap();
    let notifier = spawn_notify(&a, b"x", NOTIFY_TIMEOUT);
    clock.wait_for_sleepers(1).await;
    clock.advance(Duration::from_secs(40));
    let reply = timed_out(notifier.await.unwrap());
    assert_eq!(reply.timeouts, [WatcherId { gid: b.client_gid(), cookie: h }]);
    assert!(a.list_watchers(OID).await.unwrap().is_empty());
}

#[tokio::test]
async fn dropping_every_handle_is_a_crash_not_an_unwatch() {
    let (clock, c) = setup();
    let a = client_io(&c).await;
    let gid = {
        let b = client_io(&c).await;
        let (ctx, _rx) = watch_channel();
        b.watch(OID, ctx).await.unwrap();
        b.client_gid()
    };
    assert!(!c.is_client_alive(gid));
    assert_eq!(a.list_watchers(OID).await.unwrap().len(), 1);
    clock.advance(Duration::from_secs(30));
    assert!(a.list_watchers(OID).await.unwrap().is_empty());
}

/// A callback-style watch context that hands each notify to a spawned task, which acks later.
struct SpawningAcker {
    io: IoCtx,
    seen: Mutex<Vec<NotifyEvent>>,
}

impl WatchCtx for SpawningAcker {
    fn handle_notify(&self, event: NotifyEvent) {
        self.seen.lock().unwrap().push(event.clone());
        let io = self.io.clone();
        tokio::spawn(async move {
            let reply = [&b"re:"[..], &event.payload[..]].concat();
            io.notify_ack(OID, event.notify_id, event.handle, &reply).await.unwrap();
        });
    }

    fn handle_error(&self, _handle: u64, _error: Error) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_context_acks_from_another_task() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let ctx = Arc::new(SpawningAcker { io: b.clone(), seen: Mutex::new(Vec::new()) });
    b.watch(OID, ctx.clone()).await.unwrap();
    for i in 0..20u8 {
        let reply = a.notify(OID, &[i], NOTIFY_TIMEOUT).await.unwrap();
        assert_eq!(reply.acks[0].reply, [b'r', b'e', b':', i]);
    }
    let seen = ctx.seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|e| e.payload[0]).collect::<Vec<_>>(),
        (0..20).collect::<Vec<u8>>(),
        "in order"
    );
}

/// The embedded cluster counts accepted notifies, so benchmarks can report messages per op.
#[tokio::test]
async fn notify_count_counts_accepted_notifies() {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock, ClusterConfig::default());
    cluster.create_pool("p").unwrap();
    let io = cluster.connect().ioctx("p", "").unwrap();
    io.create("o", false).await.unwrap();
    assert_eq!(cluster.notify_count(), 0);
    io.notify("o", b"x", Duration::from_secs(1)).await.unwrap();
    io.notify("o", b"y", Duration::from_secs(1)).await.unwrap();
    // A notify on a missing object is refused and not counted.
    assert!(io.notify("missing", b"z", Duration::from_secs(1)).await.is_err());
    assert_eq!(cluster.notify_count(), 2);
}
