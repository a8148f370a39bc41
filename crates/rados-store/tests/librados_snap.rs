//! Self-managed snapshots on a real Ceph 16.2 cluster: snap ids from the monitors, write snap
//! contexts, copy-on-write clones made by the OSD, reads at a snapshot, `list_snaps` through
//! the C++ bridge, and rollback (rbd §6.1 `snap_seq`; the model the embedded backend follows).
//!
//! Runs only with `--features librados` and `CEPH_CONF` set (see `librados_support`).
#![cfg(feature = "librados")]

mod librados_support;

use librados_support as support;
use rados_store::error::errno;
use rados_store::{CloneInfo, Error, SnapContext};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_a_snap_context_clone_the_object_once() {
    let Some(cfg) = support::config("writes_under_a_snap_context_clone_the_object_once") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("snap"));

    io.write_full("obj", b"v1").await.unwrap();
    let s1 = io.selfmanaged_snap_create().await.unwrap();
    let s2_unused = io.selfmanaged_snap_create().await.unwrap();
    assert!(s2_unused > s1, "snap ids increase");
    io.selfmanaged_snap_remove(s2_unused).await.unwrap();

    // The first write after the snapshot clones the object; the head moves on.
    io.set_snap_write_context(SnapContext::new(s1, vec![s1]).unwrap()).unwrap();
    io.write_full("obj", b"v2-longer").await.unwrap();
    let set = io.list_snaps("obj").await.unwrap();
    assert!(set.head_exists);
    assert_eq!(set.clones, vec![CloneInfo { id: s1, snaps: vec![s1], size: 2 }]);
    // A second write under the same context does not clone again.
    io.write_full("obj", b"v2").await.unwrap();
    assert_eq!(io.list_snaps("obj").await.unwrap().clones.len(), 1);

    // Reads at the snapshot see the clone; the head sees the latest write.
    io.set_read_snap(Some(s1));
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v1");
    assert_eq!(io.stat("obj").await.unwrap().size, 2);
    // While reading at a snapshot the I/O context refuses writes (as librados does).
    assert_eq!(io.write_full("obj", b"no").await.unwrap_err().errno(), errno::EROFS);
    io.set_read_snap(None);
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v2");

    // A second snapshot, a third version.
    let s2 = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s2, vec![s2, s1]).unwrap()).unwrap();
    io.write_full("obj", b"v3").await.unwrap();
    let set = io.list_snaps("obj").await.unwrap();
    let ids: Vec<u64> = set.clones.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![s1, s2]);
    assert!(set.seq >= s2);
    io.set_read_snap(Some(s2));
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v2");
    io.set_read_snap(Some(s1));
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v1");
    io.set_read_snap(None);

    // An object born after a snapshot does not exist at it.
    io.write_full("young", b"new").await.unwrap();
    io.set_read_snap(Some(s1));
    assert!(matches!(io.read("young", 0, 0).await, Err(Error::NotFound(_))));
    io.set_read_snap(None);

    // Rollback restores the snapshot's content at the head.
    io.selfmanaged_snap_rollback("obj", s1).await.unwrap();
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v1");

    // A removed object keeps its clones for the live snapshots.
    io.remove("obj").await.unwrap();
    let set = io.list_snaps("obj").await.unwrap();
    assert!(!set.head_exists);
    assert!(!set.clones.is_empty());
    io.set_read_snap(Some(s2));
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"v2");
    io.set_read_snap(None);

    io.selfmanaged_snap_remove(s1).await.unwrap();
    io.selfmanaged_snap_remove(s2).await.unwrap();
    assert!(matches!(io.list_snaps("never").await, Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_inside_a_compound_write_is_refused_not_misapplied() {
    let Some(cfg) = support::config("rollback_inside_a_compound_write_is_refused_not_misapplied") else {
        return;
    };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("snaprb"));
    io.write_full("o", b"x").await.unwrap();
    let s = io.selfmanaged_snap_create().await.unwrap();
    let op = rados_store::WriteOp::new().rollback(s).setxattr("a", b"b".to_vec());
    assert_eq!(io.operate_write("o", &op).await.unwrap_err().errno(), errno::EOPNOTSUPP);
    assert!(io.getxattrs("o").await.unwrap().is_empty(), "nothing was applied");
    io.selfmanaged_snap_remove(s).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_different_snapshots_do_not_mix() {
    // librados keeps the read snapshot and the write snap context inside its I/O context; the
    // backend lends each call its own native context. Interleave many reads at the head and
    // at a snapshot, plus writes under two snap contexts, on clones of one connection.
    let Some(cfg) = support::config("concurrent_calls_with_different_snapshots_do_not_mix") else { return };
    let client = support::connect(&cfg).await;
    let head = support::ioctx(&client, &support::unique_namespace("snapmix"));
    head.write_full("o", b"old").await.unwrap();
    let s = head.selfmanaged_snap_create().await.unwrap();
    head.set_snap_write_context(SnapContext::new(s, vec![s]).unwrap()).unwrap();
    head.write_full("o", b"new").await.unwrap();
    let at_snap = head.dup();
    at_snap.set_read_snap(Some(s));
    let unsnapped = head.dup();
    unsnapped.set_snap_write_context(SnapContext::empty()).unwrap();

    let mut tasks = Vec::new();
    for i in 0..40 {
        let (h, a, u) = (head.clone(), at_snap.clone(), unsnapped.clone());
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => assert_eq!(h.read("o", 0, 0).await.unwrap(), b"new"),
                1 => assert_eq!(a.read("o", 0, 0).await.unwrap(), b"old"),
                _ => u.write_full(&format!("plain{i}"), b"p").await.unwrap(),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Objects written without a snap context have no clones and nothing at the snapshot's
    // seq; the snapshot still reads "old".
    let plain = head.list_snaps("plain2").await.unwrap();
    assert!(plain.clones.is_empty() && plain.head_exists);
    assert_eq!(at_snap.read("o", 0, 0).await.unwrap(), b"old");
    head.selfmanaged_snap_remove(s).await.unwrap();
}
