//! Self-managed snapshots: copy-on-write clones, reads at a snap, trimming.
//!
//! RBD images take self-managed snapshots (rbd §5.6, §6.1 `snap_seq`): the client allocates an
//! id, then sends `SnapContext { seq, snaps }` with every write. The first write to an object
//! after a newer snap clones it; reads at a snap id see the object as it was then; a removed
//! object's clones stay until their snaps are removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use rados_store::error::errno;
use rados_store::{
    CLS_METHOD_RD, CloneInfo, ClsContext, Cluster, ClusterConfig, Error, IoCtx, Result, SimClock, SnapContext,
};

fn setup() -> (Cluster, IoCtx) {
    let cluster = Cluster::with_clock(Arc::new(SimClock::new()), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    let io = cluster.connect().ioctx("rbd", "").unwrap();
    (cluster, io)
}

async fn read_at(io: &IoCtx, oid: &str, snap: Option<u64>) -> Result<Vec<u8>> {
    io.set_read_snap(snap);
    let r = io.read(oid, 0, 0).await;
    io.set_read_snap(None);
    r
}

#[tokio::test]
async fn first_write_after_a_snap_clones_and_reads_at_snap_see_the_old_data() {
    let (_c, io) = setup();
    io.write_full("o", b"v0").await.unwrap();
    let s1 = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s1, vec![s1]).unwrap()).unwrap();
    io.write_full("o", b"v1").await.unwrap();
    io.write_full("o", b"v1b").await.unwrap(); // no second clone for the same snap
    let info = io.list_snaps("o").await.unwrap();
    assert_eq!(info.seq, s1);
    assert_eq!(info.clones, [CloneInfo { id: s1, snaps: vec![s1], size: 2 }]);
    assert!(info.head_exists);

    let s2 = io.selfmanaged_snap_create().await.unwrap();
    assert!(s2 > s1);
    io.set_snap_write_context(SnapContext::new(s2, vec![s2, s1]).unwrap()).unwrap();
    io.append("o", b"+").await.unwrap();

    assert_eq!(read_at(&io, "o", Some(s1)).await.unwrap(), b"v0");
    assert_eq!(read_at(&io, "o", Some(s2)).await.unwrap(), b"v1b");
    assert_eq!(read_at(&io, "o", None).await.unwrap(), b"v1b+");
    assert_eq!(io.list_snaps("o").await.unwrap().clones.len(), 2);
}

#[tokio::test]
async fn xattrs_and_omap_are_cloned_too() {
    let (_c, io) = setup();
    io.setxattr("o", "a", b"old").await.unwrap();
    io.omap_set("o", &BTreeMap::from([("k".to_owned(), b"old".to_vec())])).await.unwrap();
    let s = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s, vec![s]).unwrap()).unwrap();
    io.setxattr("o", "a", b"new").await.unwrap();
    io.omap_set("o", &BTreeMap::from([("k".to_owned(), b"new".to_vec())])).await.unwrap();
    io.set_read_snap(Some(s));
    assert_eq!(io.getxattr("o", "a").await.unwrap(), b"old");
    assert_eq!(io.omap_get_vals("o", "", 10).await.unwrap().0["k"], b"old");
    io.set_read_snap(None);
    assert_eq!(io.getxattr("o", "a").await.unwrap(), b"new");
}

#[tokio::test]
async fn removed_object_keeps_clones_until_their_snaps_go() {
    let (_c, io) = setup();
    io.write_full("o", b"v0").await.unwrap();
    let s1 = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s1, vec![s1]).unwrap()).unwrap();
    io.remove("o").await.unwrap();

    assert_eq!(io.stat("o").await.unwrap_err().errno(), errno::ENOENT);
    assert!(io.list_objects().await.unwrap().is_empty());
    assert_eq!(read_at(&io, "o", Some(s1)).await.unwrap(), b"v0", "the clone survives");
    let info = io.list_snaps("o").await.unwrap();
    assert!(!info.head_exists);
    assert_eq!(info.clones.len(), 1);

    // Recreating the head does not disturb the clone.
    io.write_full("o", b"new").await.unwrap();
    assert_eq!(read_at(&io, "o", Some(s1)).await.unwrap(), b"v0");
    io.remove("o").await.unwrap();

    io.selfmanaged_snap_remove(s1).await.unwrap();
    assert_eq!(read_at(&io, "o", Some(s1)).await.unwrap_err().errno(), errno::ENOENT, "snap is gone");
    assert_eq!(io.list_snaps("o").await.unwrap_err().errno(), errno::ENOENT, "clone trimmed, nothing left");
    assert_eq!(io.selfmanaged_snap_remove(s1).await.unwrap_err().errno(), errno::ENOENT);
}

#[tokio::test]
async fn trimming_one_snap_keeps_clones_other_snaps_need() {
    let (_c, io) = setup();
    io.write_full("o", b"v0").await.unwrap();
    let s1 = io.selfmanaged_snap_create().await.unwrap();
    let s2 = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s2, vec![s2, s1]).unwrap()).unwrap();
    io.write_full("o", b"v1").await.unwrap();
    // One clone serves both snaps.
    assert_eq!(
        io.list_snaps("o").await.unwrap().clones,
        [CloneInfo { id: s2, snaps: vec![s1, s2], size: 2 }]
    );
    io.selfmanaged_snap_remove(s1).await.unwrap();
    assert_eq!(read_at(&io, "o", Some(s2)).await.unwrap(), b"v0");
    assert_eq!(io.list_snaps("o").await.unwrap().clones[0].snaps, [s2]);
    io.selfmanaged_snap_remove(s2).await.unwrap();
    assert!(io.list_snaps("o").await.unwrap().clones.is_empty());
}

#[tokio::test]
async fn object_created_after_a_snap_did_not_exist_at_it() {
    let (_c, io) = setup();
    let s = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s, vec![s]).unwrap()).unwrap();
    io.write_full("late", b"x").await.unwrap();
    assert_eq!(read_at(&io, "late", Some(s)).await.unwrap_err().errno(), errno::ENOENT);
    // Deleted before the snap and recreated after: still absent at the snap.
    io.write_full("gone", b"x").await.unwrap();
    io.remove("gone").await.unwrap();
    let s2 = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s2, vec![s2, s]).unwrap()).unwrap();
    io.write_full("gone", b"again").await.unwrap();
    assert_eq!(read_at(&io, "gone", Some(s2)).await.unwrap_err().errno(), errno::ENOENT);
}

#[tokio::test]
async fn a_writer_unaware_of_new_snaps_does_not_clone() {
    let (c, io) = setup();
    io.write_full("o", b"v0").await.unwrap();
    let s = io.selfmanaged_snap_create().await.unwrap();
    let stale = c.connect().ioctx("rbd", "").unwrap(); // empty snap context
    stale.write_full("o", b"v1").await.unwrap();
    assert!(io.list_snaps("o").await.unwrap().clones.is_empty());
    // As on an OSD, the snap then sees the head.
    assert_eq!(read_at(&io, "o", Some(s)).await.unwrap(), b"v1");
}

#[tokio::test]
async fn rollback_restores_the_snapshot_state() {
    let (_c, io) = setup();
    io.write_full("o", b"v0").await.unwrap();
    io.setxattr("o", "a", b"0").await.unwrap();
    let s = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s, vec![s]).unwrap()).unwrap();
    io.write_full("o", b"v1-longer").await.unwrap();
    io.setxattr("o", "a", b"1").await.unwrap();
    io.selfmanaged_snap_rollback("o", s).await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"v0");
    assert_eq!(io.getxattr("o", "a").await.unwrap(), b"0");
    // Rolling back an object that did not exist at the snap removes it.
    io.write_full("new", b"x").await.unwrap();
    io.selfmanaged_snap_rollback("new", s).await.unwrap();
    assert!(!io.exists("new").await.unwrap());
    assert_eq!(io.selfmanaged_snap_rollback("o", 999).await.unwrap_err().errno(), errno::ENOENT);
}

#[tokio::test]
async fn snap_context_and_read_snap_rules() {
    let (c, io) = setup();
    io.write_full("o", b"x").await.unwrap();
    assert_eq!(
        io.set_snap_write_context(SnapContext { seq: 1, snaps: vec![2] }).unwrap_err().errno(),
        errno::EINVAL
    );
    assert_eq!(
        io.set_snap_write_context(SnapContext { seq: 3, snaps: vec![1, 2] }).unwrap_err().errno(),
        errno::EINVAL
    );
    let s = io.selfmanaged_snap_create().await.unwrap();
    io.set_read_snap(Some(s));
    assert_eq!(io.read_snap(), Some(s));
    // Writes through a context reading at a snap: -EROFS, as librados.
    assert_eq!(io.write_full("o", b"y").await.unwrap_err().errno(), errno::EROFS);
    assert_eq!(io.exec("o", "lock", "lock", b"").await.unwrap_err().errno(), errno::EROFS);
    // dup() gives an independent context; clones share the settings.
    let d = io.dup();
    d.set_read_snap(None);
    assert_eq!(io.read_snap(), Some(s));
    assert_eq!(io.clone().read_snap(), Some(s));
    io.set_read_snap(Some(12345));
    assert_eq!(io.read("o", 0, 0).await.unwrap_err().errno(), errno::ENOENT, "unknown snap");
    // Snap ids are per pool.
    c.create_pool("other").unwrap();
    let other = io.client().ioctx("other", "").unwrap();
    assert_eq!(other.selfmanaged_snap_create().await.unwrap(), 1);
}

/// Reads xattr "a" from inside a read-only class method.
fn get_a(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    ctx.getxattr("a").map_err(|e: Error| e)
}

#[tokio::test]
async fn read_only_exec_runs_at_the_read_snap() {
    let (c, io) = setup();
    c.register_cls_method("t", "get_a", CLS_METHOD_RD, get_a);
    io.setxattr("o", "a", b"old").await.unwrap();
    let s = io.selfmanaged_snap_create().await.unwrap();
    io.set_snap_write_context(SnapContext::new(s, vec![s]).unwrap()).unwrap();
    io.setxattr("o", "a", b"new").await.unwrap();
    assert_eq!(io.exec("o", "t", "get_a", b"").await.unwrap(), b"new");
    io.set_read_snap(Some(s));
    assert_eq!(io.exec("o", "t", "get_a", b"").await.unwrap(), b"old");
}
