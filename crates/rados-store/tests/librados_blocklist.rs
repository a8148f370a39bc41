//! Fencing on a real Ceph 16.2 cluster: `osd blocklist add` through a monitor command makes
//! every later operation of the victim fail with -EBLOCKLISTED (108) and breaks its watches
//! (rbd §1.6.3 step 4; real-ceph §3: the broken owner's next call fails with errno 108).
//!
//! Runs only with `--features librados` and `CEPH_CONF` set (see `librados_support`).
#![cfg(feature = "librados")]

mod librados_support;

use std::time::{Duration, Instant};

use librados_support as support;
use rados_store::error::errno;
use rados_store::{Error, WatchEvent, watch_channel};

const OID: &str = "rbd_header.fenced";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklisted_client_gets_eblocklisted_and_loses_its_watch() {
    let Some(cfg) = support::config("a_blocklisted_client_gets_eblocklisted_and_loses_its_watch") else {
        return;
    };
    let ns = support::unique_namespace("blocklist");
    let victim = support::connect(&cfg).await;
    let breaker = support::connect(&cfg).await;
    let (iv, ib) = (support::ioctx(&victim, &ns), support::ioctx(&breaker, &ns));
    iv.write_full(OID, b"before").await.unwrap();
    let (ctx, mut events) = watch_channel();
    let handle = iv.watch(OID, ctx).await.unwrap();
    assert_ne!(victim.addr(), breaker.addr());

    let t = Instant::now();
    let until = breaker.blocklist_add(&victim.addr(), Duration::from_secs(300)).await.unwrap();
    let blocklist_ms = t.elapsed().as_secs_f64() * 1e3;
    let now = breaker.now();
    assert!(until.sec >= now.sec + 290 && until.sec <= now.sec + 310, "expiry {until} vs now {now}");

    // The breaker waited for the map that carries the entry, so the OSD refuses the victim's
    // very next write.
    let err = iv.write_full(OID, b"after").await.unwrap_err();
    assert_eq!(err, Error::Blocklisted, "{err}");
    assert_eq!(err.errno(), errno::EBLOCKLISTED);
    // Reads, class calls and notifies fail the same way.
    assert_eq!(iv.read(OID, 0, 0).await.unwrap_err().errno(), errno::EBLOCKLISTED);
    assert_eq!(iv.exec(OID, "lock", "list_locks", &[]).await.unwrap_err().errno(), errno::EBLOCKLISTED);
    assert_eq!(iv.notify(OID, b"x", Duration::from_secs(2)).await.unwrap_err().errno(), errno::EBLOCKLISTED);

    // The victim's watch breaks: its callback reports the error and watch_check returns it.
    let broke = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Some(WatchEvent::Error { handle: h, error }) => break (h, error),
                Some(WatchEvent::Notify(_)) => continue,
                None => panic!("watch channel closed"),
            }
        }
    })
    .await
    .expect("the watch error callback fired");
    assert_eq!(broke.0, handle);
    // librados 16.2 reports the OSD dropping the fenced client's watch as a disconnect
    // (-ENOTCONN); what matters to a lock owner is that the watch is gone (rbd §3.8).
    assert!([errno::ENOTCONN, errno::EBLOCKLISTED].contains(&broke.1.errno()), "{}", broke.1);
    let check = iv.watch_check(handle).await.unwrap_err();
    eprintln!("watch error callback: {}; watch_check: {check}", broke.1);
    assert!([errno::ENOTCONN, errno::EBLOCKLISTED].contains(&check.errno()), "{check}");

    // Everyone else is unaffected, and the object kept the data written before the fence.
    assert_eq!(ib.read(OID, 0, 0).await.unwrap(), b"before");
    eprintln!("blocklist_add (mon command + wait for the new OSD map) took {blocklist_ms:.1} ms");

    // The monitors list the victim's address, as `ceph osd blocklist ls` shows it.
    if let Some(out) = support::cli("ceph", &["osd", "blocklist", "ls"]) {
        let addr = victim.addr().to_string();
        assert!(out.lines().any(|l| l.starts_with(&addr)), "`ceph osd blocklist ls` lacks {addr}: {out}");
        support::cli("ceph", &["osd", "blocklist", "rm", &addr]);
    }
}
