//! mds §6.6 takeover on real devices: the journal lives where Ceph keeps it, as objects in a
//! RADOS pool (mds-journal's `RadosDevice` on rados-store's embedded cluster), or in a local
//! directory (`DirDevice`). The active rank dies without closing its journal (no final flush,
//! no header update); a standby on a different RADOS client (another process) opens the same
//! journal, replays it, answers the client's re-sent requests from the completed-request table
//! and carries on.

use std::sync::Arc;

use mds_journal::{DirDevice, JournalDevice, RadosDevice};
use mds_locker::runtime::Rank;
use mds_locker::{LockerConfig, ReqId};
use rados_store::{Cluster, ClusterConfig, SimClock};

use super::common::{CLIENT, jcfg, namespace, open_session, p, replies, run_safe, submit, workload};

/// Runs the workload to safe replies on `dev`, abandons the rank, and checks that a rank
/// opened on `dev2` (the same journal seen from elsewhere) replays all of it.
async fn takeover(dev: Arc<dyn JournalDevice>, dev2: Arc<dyn JournalDevice>) {
    let mut rank = Rank::create(dev, jcfg(), LockerConfig::default()).await.unwrap();
    open_session(&mut rank);
    let mut results = Vec::new();
    for (i, op) in workload().into_iter().enumerate() {
        let r = run_safe(&mut rank, i as u64 + 1, op).await;
        assert!(r.result.is_ok(), "request {}: {r:?}", i + 1);
        results.push(r.result);
    }
    let before = namespace(&rank);
    rank.abandon().await;

    let (mut standby, report) = Rank::open(dev2.clone(), jcfg(), LockerConfig::default()).await.unwrap();
    let n = workload().len();
    assert_eq!(report.updates, n, "{report:?}");
    assert_eq!(
        report.client_reqs.iter().map(|(_, q)| q.0).collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>()
    );
    assert_eq!(namespace(&standby), before, "mds §6.6: every safe-replied update survives the takeover");
    mds_locker::invariants::check_all(standby.locker()).unwrap();
    // The client re-sends its last request (it may have missed the reply): answered, not re-run.
    open_session(&mut standby);
    let last = workload().pop().unwrap();
    let fx = submit(&mut standby, n as u64, last);
    let r = replies(&fx);
    assert!(r.len() == 1 && r[0].safe && r[0].result == results[n - 1], "{r:?}");
    assert_eq!(standby.unsafe_entries(), 0);
    // And the standby serves new work, durable on the same journal.
    let r =
        run_safe(&mut standby, 100, mds_locker::Op::Mkdir { path: p("after-takeover"), mode: 0o755 }).await;
    assert!(r.result.is_ok(), "{r:?}");
    let expected = namespace(&standby);
    standby.close().await.unwrap();
    let (again, report) = Rank::open(dev2, jcfg(), LockerConfig::default()).await.unwrap();
    assert_eq!(report.client_reqs.last(), Some(&(CLIENT, ReqId(100))));
    assert_eq!(namespace(&again), expected);
    again.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn mds_s6_6_standby_on_another_rados_client_replays_the_journal_in_the_metadata_pool() {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock, ClusterConfig { seed: 66, ..ClusterConfig::default() });
    cluster.create_pool("cephfs_metadata").unwrap();
    let active = cluster.connect().ioctx("cephfs_metadata", "").unwrap();
    let standby = cluster.connect().ioctx("cephfs_metadata", "").unwrap();
    assert_ne!(active.client_gid(), standby.client_gid());
    takeover(Arc::new(RadosDevice::new(active.clone())), Arc::new(RadosDevice::new(standby.clone()))).await;
    // The journal is rank 0's: header object 200.00000000 and its data objects (mds §6.5).
    let objs = standby.list_objects().await.unwrap();
    assert!(objs.iter().any(|o| o == "200.00000000"), "{objs:?}");
    assert!(objs.iter().any(|o| o == "200.00000001"), "{objs:?}");
}

#[tokio::test]
async fn mds_s6_6_restart_on_a_directory_device_replays_every_safe_update() {
    let dir = std::env::temp_dir().join(format!("cephlock-suite-dirdev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dev: Arc<dyn JournalDevice> = Arc::new(DirDevice::open(&dir).unwrap());
    let dev2: Arc<dyn JournalDevice> = Arc::new(DirDevice::open(&dir).unwrap());
    takeover(dev, dev2).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
