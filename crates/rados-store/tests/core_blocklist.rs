//! Blocklisting and client death (rbd §1.6.3, §1.7, §2.13; real-ceph §3).
//!
//! Breaking a dead owner's lock means: wait until its watch is gone, blocklist its address
//! (expiry 0 = the monitor default, one hour), then `break_lock`. A blocklisted client's every
//! op fails with -EBLOCKLISTED (108, real-ceph §3 "ConnectionShutdown: [errno 108]") and its
//! watches break with an error callback (rbd §3.8).

use std::sync::Arc;
use std::time::Duration;

use rados_store::cls_lock_client::{self as lockc, LockType};
use rados_store::error::errno;
use rados_store::{
    Cluster, ClusterConfig, EntityAddr, Error, IoCtx, NotifyReply, ReadOp, SimClock, WatchEvent, WriteOp,
    watch_channel,
};

const OID: &str = "rbd_header.1";

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

/// Every kind of operation, each returning its errno (0 on success).
async fn every_op_errno(io: &IoCtx) -> Vec<(&'static str, i32)> {
    fn e<T>(r: Result<T, Error>) -> i32 {
        r.err().map_or(0, |e| e.errno())
    }
    let (ctx, _rx) = watch_channel();
    vec![
        ("read", e(io.read(OID, 0, 0).await)),
        ("stat", e(io.stat(OID).await)),
        ("write", e(io.write(OID, 0, b"x").await)),
        ("write_op", e(io.operate_write(OID, &WriteOp::new().setxattr("a", b"1".as_slice())).await)),
        ("read_op", e(io.operate_read(OID, &ReadOp::new().stat()).await)),
        ("omap", e(io.omap_get_vals(OID, "", 1).await)),
        ("exec", e(io.exec(OID, "lock", "list_locks", b"").await)),
        ("list", e(io.list_objects().await)),
        // Notify before watching: once this client may watch again, its own watch would be
        // notified too and nobody here acks (the simulated clock never reaches the deadline).
        ("notify", io.notify(OID, b"", Duration::from_secs(1)).await.err().map_or(0, |e| e.errno())),
        ("watch", e(io.watch(OID, ctx).await)),
        ("notify_ack", e(io.notify_ack(OID, 1, 1, b"").await)),
        ("list_watchers", e(io.list_watchers(OID).await)),
        ("snap_create", e(io.selfmanaged_snap_create().await)),
        (
            "blocklist_add",
            e(io.client().blocklist_add(&"10.0.0.1:0/1".parse().unwrap(), Duration::ZERO).await),
        ),
    ]
}

#[tokio::test]
async fn blocklisted_client_fails_every_op_with_108_until_expiry() {
    let (clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let until = c.blocklist_add(&b.addr(), Duration::ZERO);
    assert_eq!(until, clock.now().saturating_add(Duration::from_secs(3600)), "0 = monitor default, 1 h");
    assert_eq!(c.blocklist_list(), [(b.addr(), until)]);
    assert!(c.is_blocklisted(&b.addr()));
    for (op, code) in every_op_errno(&b).await {
        assert_eq!(code, errno::EBLOCKLISTED, "{op}");
    }
    // Others are unaffected.
    a.write_full(OID, b"a is fine").await.unwrap();

    clock.advance(Duration::from_secs(3599));
    assert_eq!(b.stat(OID).await.unwrap_err(), Error::Blocklisted);
    clock.advance(Duration::from_secs(1));
    assert!(c.blocklist_list().is_empty(), "expired entries are dropped");
    for (op, code) in every_op_errno(&b).await {
        assert!(code != errno::EBLOCKLISTED, "{op} still blocklisted");
    }
}

#[tokio::test]
async fn blocklisting_breaks_watches_with_an_error_callback() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    let h = b.watch(OID, ctx).await.unwrap();
    let (ctx_a, _ra) = watch_channel();
    let ha = a.watch(OID, ctx_a).await.unwrap();
    c.blocklist_add(&b.addr(), Duration::from_secs(60));
    match rx.recv().await {
        Some(WatchEvent::Error { handle, error }) => {
            assert_eq!(handle, h);
            // As a real 16.2 cluster reports it (checked by tests/librados_blocklist.rs).
            assert_eq!(error.errno(), errno::ENOTCONN);
        }
        other => panic!("expected a watch error, got {other:?}"),
    }
    let w = a.list_watchers(OID).await.unwrap();
    assert_eq!(w.iter().map(|w| w.cookie).collect::<Vec<_>>(), [ha], "the blocklisted watch is gone at once");
    assert_eq!(b.watch_check(h).await.unwrap_err().errno(), errno::ENOTCONN);
    assert_eq!(b.unwatch(h).await.unwrap_err().errno(), errno::EBLOCKLISTED);
}

#[tokio::test]
async fn blocklisting_a_watcher_releases_an_inflight_notify() {
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    b.watch(OID, ctx).await.unwrap();
    let a2 = a.clone();
    let notifier = tokio::spawn(async move { a2.notify(OID, b"x", Duration::from_secs(5)).await });
    let Some(WatchEvent::Notify(ev)) = rx.recv().await else { panic!("no notify") };
    c.blocklist_add(&b.addr(), Duration::ZERO);
    assert_eq!(b.notify_ack(OID, ev.notify_id, ev.handle, b"").await.unwrap_err(), Error::Blocklisted);
    assert_eq!(notifier.await.unwrap().unwrap(), NotifyReply::default());
}

#[tokio::test]
async fn remove_and_custom_expiry() {
    let (clock, c) = setup();
    let b = client_io(&c).await;
    let until = c.blocklist_add(&b.addr(), Duration::from_secs(10));
    assert_eq!(until, clock.now().saturating_add(Duration::from_secs(10)));
    assert!(c.blocklist_remove(&b.addr()));
    assert!(!c.blocklist_remove(&b.addr()));
    b.stat(OID).await.unwrap();
    c.blocklist_add(&b.addr(), Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    b.stat(OID).await.unwrap();
}

#[tokio::test]
async fn whole_ip_entry_blocklists_every_client_on_it() {
    // OSDMap::is_blocklisted also matches the address with port and nonce zeroed.
    let (_clock, c) = setup();
    let (a, b) = (client_io(&c).await, client_io(&c).await);
    let whole: EntityAddr = "127.0.0.1:0/0".parse().unwrap();
    c.blocklist_add(&whole, Duration::ZERO);
    assert_eq!(a.stat(OID).await.unwrap_err(), Error::Blocklisted);
    assert_eq!(b.stat(OID).await.unwrap_err(), Error::Blocklisted);
    let late = c.connect().ioctx("rbd", "").unwrap();
    assert_eq!(late.stat(OID).await.unwrap_err(), Error::Blocklisted);
    // An entry for another address (other nonce) blocks nobody here.
    c.blocklist_remove(&whole);
    c.blocklist_add(&"127.0.0.1:0/1".parse().unwrap(), Duration::ZERO);
    a.stat(OID).await.unwrap();
}

#[tokio::test]
async fn dead_owner_lock_break_sequence() {
    // rbd §1.6.3 with a killed owner (real-ceph §3 "A killed with -9").
    let (clock, c) = setup();
    let (owner, breaker) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    let handle = owner.watch(OID, ctx).await.unwrap();
    let cookie = format!("auto {handle}");
    lockc::lock(&owner, OID, "rbd_lock", LockType::Exclusive, &cookie, "internal", "", Duration::ZERO, 0)
        .await
        .unwrap();
    c.kill_client(owner.client_gid()).unwrap();

    // While the watch lingers the owner looks alive: its (address, cookie) is listed.
    let alive = |w: &[rados_store::WatcherInfo]| {
        w.iter().any(|w| w.addr.to_string() == owner.addr().to_string() && w.cookie == handle)
    };
    assert!(alive(&breaker.list_watchers(OID).await.unwrap()));
    clock.advance(Duration::from_secs(30));
    assert!(!alive(&breaker.list_watchers(OID).await.unwrap()));

    // The lock stayed; blocklist the owner, then break it.
    let info = lockc::get_lock_info(&breaker, OID, "rbd_lock").await.unwrap();
    let (id, _) = info.lockers.iter().next().expect("lock survives its owner's death");
    assert_eq!(id.entity, owner.entity());
    breaker.client().blocklist_add(&owner.addr(), Duration::ZERO).await.unwrap();
    assert!(c.is_blocklisted(&owner.addr()));
    lockc::break_lock(&breaker, OID, "rbd_lock", &cookie, owner.entity()).await.unwrap();
    assert!(lockc::get_lock_info(&breaker, OID, "rbd_lock").await.unwrap().lockers.is_empty());
    lockc::lock(&breaker, OID, "rbd_lock", LockType::Exclusive, "auto 1", "internal", "", Duration::ZERO, 0)
        .await
        .unwrap();
}

/// The hung owner of rbd §7 table 5 / §1.6.3: a client that stops (a paused VM) looks dead once
/// its watch times out, is blocklisted and broken by a peer, and when it wakes up its next
/// operation fails with -EBLOCKLISTED (real-ceph §3: errno 108), not with a lost connection.
/// The watch it lost while hung is reported to it with -ENOTCONN, as 16.2 does.
#[tokio::test]
async fn a_suspended_client_wakes_up_blocklisted() {
    let (clock, c) = setup();
    let (owner, peer) = (client_io(&c).await, client_io(&c).await);
    let (ctx, mut rx) = watch_channel();
    let h = owner.watch(OID, ctx).await.unwrap();
    c.suspend_client(owner.client_gid()).unwrap();
    assert!(!c.is_client_alive(owner.client_gid()));
    assert_eq!(peer.list_watchers(OID).await.unwrap().len(), 1, "the watch outlives the hang for now");
    clock.advance(Duration::from_secs(31));
    assert!(peer.list_watchers(OID).await.unwrap().is_empty(), "gone after the watch timeout");
    c.blocklist_add(&owner.addr(), Duration::from_secs(3600));

    c.resume_client(owner.client_gid()).unwrap();
    assert!(c.is_client_alive(owner.client_gid()));
    assert_eq!(owner.write(OID, 0, b"late").await.unwrap_err(), Error::Blocklisted);
    match rx.recv().await {
        Some(WatchEvent::Error { handle, error }) => {
            assert_eq!(handle, h);
            assert_eq!(error.errno(), errno::ENOTCONN);
        }
        other => panic!("expected the lost watch to be reported, got {other:?}"),
    }
    assert!(c.resume_client(owner.client_gid()).is_err(), "not suspended any more");
}

/// A short hang (shorter than the watch timeout) costs nothing: the watch is still there and the
/// client carries on.
#[tokio::test]
async fn a_short_suspension_keeps_the_watch() {
    let (clock, c) = setup();
    let (owner, peer) = (client_io(&c).await, client_io(&c).await);
    let (ctx, _rx) = watch_channel();
    let h = owner.watch(OID, ctx).await.unwrap();
    c.suspend_client(owner.client_gid()).unwrap();
    // A hung client's operation waits: it reaches the cluster only once the client runs again.
    let stalled = tokio::spawn({
        let owner = owner.clone();
        async move { owner.write(OID, 0, b"sent late").await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!stalled.is_finished(), "a hung client sends nothing");
    assert_eq!(peer.read(OID, 0, 0).await.unwrap(), b"", "nothing reached the object yet");
    clock.advance(Duration::from_secs(10));
    c.resume_client(owner.client_gid()).unwrap();
    stalled.await.unwrap().unwrap();
    assert_eq!(peer.read(OID, 0, 9).await.unwrap(), b"sent late");
    owner.watch_check(h).await.unwrap();
    assert_eq!(peer.list_watchers(OID).await.unwrap().len(), 1);
    owner.write(OID, 0, b"on time").await.unwrap();
    // Its watch no longer expires: advancing far past the timeout keeps it.
    clock.advance(Duration::from_secs(120));
    assert_eq!(peer.list_watchers(OID).await.unwrap().len(), 1);
}
