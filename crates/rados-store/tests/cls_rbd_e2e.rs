//! An image's metadata life through the typed `rbd` client on the embedded cluster, as librbd
//! drives it (rbd §0.1, §5.6, §6.1, §7): create the id object, the directory entry and the
//! header; refresh in one compound read; resize; snapshot with self-managed ids (including
//! the lost race); rename, protect, unprotect and remove snapshots; metadata; rename and
//! remove the image in the directory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rados_store::cls_lock_client::{self as lock, LockType};
use rados_store::cls_rbd_client::{
    self as rbd, CEPH_NOSNAP, ProtectionStatus, RBD_LOCK_NAME, SnapshotNamespace, features, oid,
};
use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, IoCtx, ReadOp, Result, SimClock, SnapContext, UTime, WriteOp};

const NAME: &str = "vm-disk";
const ID: &str = "10226b8b4567";
const FEATURES: u64 = features::LAYERING | features::EXCLUSIVE_LOCK;

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: Result<T>, code: i32) {
    match r {
        Err(e) => assert_eq!(e.errno(), code, "expected errno {code}, got {e:?}"),
        Ok(v) => panic!("expected errno {code}, got Ok({v:?})"),
    }
}

struct Setup {
    clock: Arc<SimClock>,
    /// The writer's metadata context (librbd's `md_ctx`: no snap context).
    io: IoCtx,
    /// A second client, as the one that snapshots and resizes in §7.
    peer: IoCtx,
}

fn setup() -> Setup {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    let io = cluster.connect().ioctx("rbd", "").unwrap();
    let peer = cluster.connect().ioctx("rbd", "").unwrap();
    Setup { clock, io, peer }
}

/// librbd's CreateRequest, reduced to its RADOS calls: the id object (exclusive create +
/// set_id), the directory entry, then the header (exclusive create + create).
async fn create_image(io: &IoCtx, name: &str, id: &str, size: u64) -> Result<()> {
    io.operate_write(&oid::id(name), &rbd::write_op_set_id(WriteOp::new().create(true), id)).await?;
    rbd::dir_add_image(io, oid::RBD_DIRECTORY, name, id).await?;
    let op = rbd::write_op_create_image(
        WriteOp::new().create(true),
        size,
        22,
        FEATURES,
        &oid::data_prefix(id),
        -1,
    );
    io.operate_write(&oid::header(id), &op).await
}

#[tokio::test]
async fn s7_image_metadata_lifecycle() {
    let s = setup();
    let (io, peer) = (&s.io, &s.peer);
    let hdr = oid::header(ID);
    create_image(io, NAME, ID, 1 << 30).await.unwrap();
    // Creating the same image again fails at the id object, before touching anything else.
    assert_errno(create_image(io, NAME, ID, 1 << 30).await, errno::EEXIST);

    // Open: name → id through the id object and through the directory, then refresh.
    assert_eq!(rbd::get_id(peer, &oid::id(NAME)).await.unwrap(), ID);
    assert_eq!(rbd::dir_get_id(peer, oid::RBD_DIRECTORY, NAME).await.unwrap(), ID);
    assert_eq!(rbd::dir_get_name(peer, oid::RBD_DIRECTORY, ID).await.unwrap(), NAME);
    assert_eq!(rbd::get_object_prefix(peer, &hdr).await.unwrap(), "rbd_data.10226b8b4567");
    assert_eq!(oid::data("rbd_data.10226b8b4567", 0x2a), "rbd_data.10226b8b4567.000000000000002a");
    let md = rbd::get_mutable_metadata(peer, &hdr, false).await.unwrap();
    assert_eq!((md.size.size, md.size.order), (1 << 30, 22));
    assert_eq!(md.features.features, FEATURES);
    assert_eq!(md.features.incompatible, FEATURES);
    assert_eq!(md.flags, 0);
    assert_eq!(md.snapc, SnapContext::empty());
    assert!(md.lock.lockers.is_empty());
    assert_eq!(rbd::get_data_pool(peer, &hdr).await.unwrap(), -1);

    // The writer takes the exclusive lock; every refresh sees it (rbd §6.1).
    let cookie = "auto 94532197312512";
    lock::lock(io, &hdr, RBD_LOCK_NAME, LockType::Exclusive, cookie, "internal", "", Duration::ZERO, 0)
        .await
        .unwrap();
    let md = rbd::get_mutable_metadata(peer, &hdr, true).await.unwrap();
    assert_eq!(md.features.incompatible, features::LAYERING);
    assert_eq!((md.lock.lock_type, md.lock.tag.as_str()), (LockType::Exclusive, "internal"));
    assert_eq!(md.lock.lockers.keys().next().unwrap().entity, io.entity());

    // Resize (grow, then shrink).
    rbd::set_size(io, &hdr, 2 << 30).await.unwrap();
    assert_eq!(rbd::get_size(peer, &hdr, CEPH_NOSNAP).await.unwrap().size, 2 << 30);

    // Snapshot create as the owner runs it (§5.6): allocate a self-managed id, record it.
    s.clock.advance(Duration::from_secs(10));
    let s1 = io.selfmanaged_snap_create().await.unwrap();
    rbd::snapshot_add(io, &hdr, s1, "before-resize", &SnapshotNamespace::User).await.unwrap();
    rbd::set_size(io, &hdr, 1 << 30).await.unwrap();
    let snapc = rbd::get_snapcontext(peer, &hdr).await.unwrap();
    assert_eq!(snapc, SnapContext { seq: s1, snaps: vec![s1] });
    // The context is one the store accepts for data writes.
    io.set_snap_write_context(snapc.clone()).unwrap();
    io.set_snap_write_context(SnapContext::empty()).unwrap();
    let info = rbd::snapshot_get(peer, &hdr, s1).await.unwrap();
    assert_eq!((info.id, info.name.as_str(), info.image_size), (s1, "before-resize", 2 << 30));
    assert_eq!(info.timestamp, UTime { sec: 1_700_000_010, nsec: 0 });
    assert_eq!(rbd::get_size(peer, &hdr, s1).await.unwrap().size, 2 << 30);
    assert_eq!(rbd::get_size(peer, &hdr, CEPH_NOSNAP).await.unwrap().size, 1 << 30);

    // Two clients allocate ids; the older one loses the race with -ESTALE and allocates again.
    let stale = peer.selfmanaged_snap_create().await.unwrap();
    let newer = io.selfmanaged_snap_create().await.unwrap();
    assert!(newer > stale);
    rbd::snapshot_add(io, &hdr, newer, "s2", &SnapshotNamespace::User).await.unwrap();
    assert_errno(rbd::snapshot_add(peer, &hdr, stale, "s3", &SnapshotNamespace::User).await, errno::ESTALE);
    let retry = peer.selfmanaged_snap_create().await.unwrap();
    // A retried request whose snapshot already exists under that name sees -EEXIST (§7 3.5).
    assert_errno(rbd::snapshot_add(peer, &hdr, retry, "s2", &SnapshotNamespace::User).await, errno::EEXIST);
    rbd::snapshot_add(peer, &hdr, retry, "s3", &SnapshotNamespace::User).await.unwrap();
    assert_eq!(
        rbd::get_snapcontext(io, &hdr).await.unwrap(),
        SnapContext { seq: retry, snaps: vec![retry, newer, s1] }
    );

    // Rename, protect, try to remove, unprotect, remove.
    rbd::snapshot_rename(io, &hdr, newer, "s2-renamed").await.unwrap();
    assert_eq!(rbd::snapshot_get(peer, &hdr, newer).await.unwrap().name, "s2-renamed");
    assert_errno(rbd::snapshot_rename(io, &hdr, s1, "s3").await, errno::EEXIST);
    rbd::set_protection_status(io, &hdr, s1, ProtectionStatus::Protected).await.unwrap();
    assert_eq!(rbd::get_protection_status(peer, &hdr, s1).await.unwrap(), ProtectionStatus::Protected);
    assert_errno(rbd::snapshot_remove(io, &hdr, s1).await, errno::EBUSY);
    rbd::set_protection_status(io, &hdr, s1, ProtectionStatus::Unprotecting).await.unwrap();
    rbd::set_protection_status(io, &hdr, s1, ProtectionStatus::Unprotected).await.unwrap();
    rbd::snapshot_remove(io, &hdr, s1).await.unwrap();
    assert_errno(rbd::snapshot_get(peer, &hdr, s1).await, errno::ENOENT);
    rbd::snapshot_remove(io, &hdr, newer).await.unwrap();
    rbd::snapshot_remove(io, &hdr, retry).await.unwrap();
    // The snap context forgets the snapshots but never goes back in sequence.
    assert_eq!(rbd::get_snapcontext(peer, &hdr).await.unwrap(), SnapContext { seq: retry, snaps: vec![] });

    // Image metadata.
    let conf = BTreeMap::from([
        ("conf_rbd_cache".to_string(), b"false".to_vec()),
        ("owner".to_string(), b"nova".to_vec()),
    ]);
    rbd::metadata_set(io, &hdr, &conf).await.unwrap();
    assert_eq!(rbd::metadata_get(peer, &hdr, "owner").await.unwrap(), b"nova");
    assert_eq!(rbd::metadata_list(peer, &hdr, "", 0).await.unwrap(), conf);
    assert_eq!(rbd::metadata_list(peer, &hdr, "conf_", 0).await.unwrap().len(), 2);
    rbd::metadata_remove(io, &hdr, "owner").await.unwrap();
    assert_errno(rbd::metadata_get(peer, &hdr, "owner").await, errno::ENOENT);

    // Features: the update_features op turns the exclusive lock off and on again.
    rbd::set_features(io, &hdr, 0, features::EXCLUSIVE_LOCK).await.unwrap();
    assert_eq!(rbd::get_features(peer, &hdr, false).await.unwrap().features, features::LAYERING);
    rbd::set_features(io, &hdr, features::EXCLUSIVE_LOCK, features::EXCLUSIVE_LOCK).await.unwrap();
    assert_eq!(rbd::op_features_get(peer, &hdr).await.unwrap(), 0);
    assert_eq!(rbd::get_flags(peer, &hdr, CEPH_NOSNAP).await.unwrap(), 0);
    assert_eq!(rbd::snapshot_get_limit(peer, &hdr).await.unwrap(), u64::MAX);

    // Rename the image (librbd copies the id object, then renames in the directory).
    let new_name = "vm-disk-renamed";
    io.operate_write(&oid::id(new_name), &rbd::write_op_set_id(WriteOp::new().create(true), ID))
        .await
        .unwrap();
    rbd::dir_rename_image(io, oid::RBD_DIRECTORY, NAME, new_name, ID).await.unwrap();
    io.remove(&oid::id(NAME)).await.unwrap();
    assert_eq!(
        rbd::dir_list(peer, oid::RBD_DIRECTORY, "", 64).await.unwrap(),
        BTreeMap::from([(new_name.to_string(), ID.to_string())])
    );
    // A stale remover (still using the old name) gets -ENOENT; name/id mismatch gets -ESTALE.
    assert_errno(rbd::dir_remove_image(peer, oid::RBD_DIRECTORY, NAME, ID).await, errno::ENOENT);
    rbd::dir_add_image(io, oid::RBD_DIRECTORY, "other", "99").await.unwrap();
    assert_errno(rbd::dir_remove_image(peer, oid::RBD_DIRECTORY, new_name, "99").await, errno::ESTALE);

    // Remove: directory entry, header, id object.
    rbd::dir_remove_image(io, oid::RBD_DIRECTORY, new_name, ID).await.unwrap();
    io.remove(&hdr).await.unwrap();
    io.remove(&oid::id(new_name)).await.unwrap();
    assert_errno(rbd::get_mutable_metadata(peer, &hdr, false).await, errno::ENOENT);
    assert_eq!(rbd::dir_list(peer, oid::RBD_DIRECTORY, "", 64).await.unwrap().len(), 1);
}

/// Compound ops. On a real OSD a class method's omap reads do not see omap writes made
/// earlier in the same op, so every op below combines only sub-ops whose outcome does not
/// depend on that (the embedded store would show the earlier writes).
#[tokio::test]
async fn s6_1_compound_ops_are_atomic() {
    let s = setup();
    let io = &s.io;
    let hdr = oid::header(ID);
    create_image(io, NAME, ID, 1 << 20).await.unwrap();
    // A failing sub-op undoes the ones before it: nothing of this op lands.
    let op = rbd::write_op_snapshot_add(WriteOp::new(), 5, "a", &SnapshotNamespace::User);
    let op = rbd::write_op_set_size(op, 7 << 20);
    let op = rbd::write_op_set_protection_status(op, 9, ProtectionStatus::Protected);
    assert_errno(io.operate_write(&hdr, &op).await, errno::ENOENT);
    assert_eq!(rbd::get_snapcontext(io, &hdr).await.unwrap(), SnapContext::empty());
    assert_eq!(rbd::get_size(io, &hdr, CEPH_NOSNAP).await.unwrap().size, 1 << 20);

    // Without the failing step both land; the snapshot captures the size before the resize.
    let op = rbd::write_op_snapshot_add(WriteOp::new(), 5, "a", &SnapshotNamespace::User);
    io.operate_write(&hdr, &rbd::write_op_set_size(op, 7 << 20)).await.unwrap();
    assert_eq!(rbd::get_size(io, &hdr, 5).await.unwrap().size, 1 << 20);
    assert_eq!(rbd::get_size(io, &hdr, CEPH_NOSNAP).await.unwrap().size, 7 << 20);
    let op = rbd::write_op_set_protection_status(WriteOp::new(), 5, ProtectionStatus::Protected);
    io.operate_write(&hdr, &op).await.unwrap();

    // Reads compose as the refresh composes them: per-snapshot getters in one read op.
    let rop = rbd::read_op_snapshot_get(ReadOp::new(), 5);
    let rop = rbd::read_op_get_protection_status(rop, 5);
    let rop = rbd::read_op_get_flags(rop, 5);
    let results = io.operate_read(&hdr, &rop).await.unwrap();
    let out = |i: usize| match &results[i] {
        rados_store::ReadResult::Exec(b) => b.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(rbd::decode_snapshot_get(&out(0)).unwrap().name, "a");
    assert_eq!(rbd::decode_get_protection_status(&out(1)).unwrap(), ProtectionStatus::Protected);
    assert_eq!(rbd::decode_u64(&out(2)).unwrap(), 0);
    // One missing snapshot fails the whole read with -ENOENT (librbd then refreshes again).
    assert_errno(io.operate_read(&hdr, &rbd::read_op_snapshot_get(rop, 6)).await, errno::ENOENT);
    // The mutable-metadata decoder wants its five results.
    assert_errno(rbd::decode_mutable_metadata(&results), errno::EBADMSG);

    // The remaining write helpers, each sub-op reading only what was there before the op.
    let meta = BTreeMap::from([("k".to_string(), b"v".to_vec())]);
    let hop = rbd::write_op_metadata_set(WriteOp::new(), &meta);
    let hop = rbd::write_op_set_features(hop, 0, features::EXCLUSIVE_LOCK);
    let hop = rbd::write_op_snapshot_rename(hop, 5, "a2");
    let hop = rbd::write_op_snapshot_set_limit(hop, 10);
    io.operate_write(&hdr, &hop).await.unwrap();
    assert_eq!(rbd::metadata_list(io, &hdr, "", 0).await.unwrap(), meta);
    assert_eq!(rbd::get_features(io, &hdr, false).await.unwrap().features, features::LAYERING);
    assert_eq!(rbd::snapshot_get(io, &hdr, 5).await.unwrap().name, "a2");
    assert_eq!(rbd::snapshot_get_limit(io, &hdr).await.unwrap(), 10);
    io.operate_write(&hdr, &rbd::write_op_metadata_remove(WriteOp::new(), "k")).await.unwrap();
    assert!(rbd::metadata_list(io, &hdr, "", 0).await.unwrap().is_empty());
    let hop = rbd::write_op_set_protection_status(WriteOp::new(), 5, ProtectionStatus::Unprotected);
    io.operate_write(&hdr, &hop).await.unwrap();
    io.operate_write(&hdr, &rbd::write_op_snapshot_remove(WriteOp::new(), 5)).await.unwrap();
    assert_eq!(rbd::get_snapcontext(io, &hdr).await.unwrap(), SnapContext { seq: 5, snaps: vec![] });

    let dir = oid::RBD_DIRECTORY;
    io.operate_write(dir, &rbd::write_op_dir_add_image(WriteOp::new(), "x", "1")).await.unwrap();
    io.operate_write(dir, &rbd::write_op_dir_rename_image(WriteOp::new(), "x", "y", "1")).await.unwrap();
    assert_eq!(rbd::dir_get_id(io, dir, "y").await.unwrap(), "1");
    io.operate_write(dir, &rbd::write_op_dir_remove_image(WriteOp::new(), "y", "1")).await.unwrap();
    assert_eq!(rbd::dir_list(io, dir, "", 64).await.unwrap(), BTreeMap::from([(NAME.into(), ID.into())]));
}

#[tokio::test]
async fn s6_1_header_reads_at_a_snapshot_see_the_old_header() {
    // Reads of the header through a context reading at a pool snapshot see the header as it was
    // (the store's copy-on-write applies to every object), and writing methods are refused there.
    let s = setup();
    let io = &s.io;
    let hdr = oid::header(ID);
    create_image(io, NAME, ID, 1 << 20).await.unwrap();
    let snap = io.selfmanaged_snap_create().await.unwrap();
    let writer = io.dup();
    writer.set_snap_write_context(SnapContext { seq: snap, snaps: vec![snap] }).unwrap();
    rbd::set_size(&writer, &hdr, 9 << 20).await.unwrap();
    let reader = io.dup();
    reader.set_read_snap(Some(snap));
    assert_eq!(rbd::get_size(&reader, &hdr, CEPH_NOSNAP).await.unwrap().size, 1 << 20);
    assert_errno(rbd::set_size(&reader, &hdr, 1).await, errno::EROFS);
    assert_eq!(rbd::get_size(io, &hdr, CEPH_NOSNAP).await.unwrap().size, 9 << 20);
}
