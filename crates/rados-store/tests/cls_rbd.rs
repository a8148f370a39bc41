//! The `rbd` class method by method, every error path it implements, through the embedded
//! cluster (rbd §5.6, §6.1; the sequences follow upstream's `test_cls_rbd.cc`, rbd §8). Each
//! failing call is also checked to leave the object untouched, as an OSD guarantees.

use std::collections::BTreeMap;
use std::sync::Arc;

use rados_store::cls::rbd::{SnapshotRecord, key, rbd_errno};
use rados_store::cls_rbd_client::{
    self as client, CEPH_MAXSNAP, CEPH_NOSNAP, ProtectionStatus, SnapshotNamespace, SnapshotNamespaceType,
    features, method,
};
use rados_store::encoding::encode_to_vec;
use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, IoCtx, Result, SimClock, SnapContext, WriteOp};

const HDR: &str = "rbd_header.abc";
const PREFIX: &str = "rbd_data.abc";
const DIR: &str = "rbd_directory";

fn setup() -> IoCtx {
    let cluster = Cluster::with_clock(Arc::new(SimClock::new()), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    cluster.connect().ioctx("rbd", "").unwrap()
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: Result<T>, code: i32) {
    match r {
        Err(e) => assert_eq!(e.errno(), code, "expected errno {code}, got {e:?}"),
        Ok(v) => panic!("expected errno {code}, got Ok({v:?})"),
    }
}

/// The object's omap, or `None` if the object does not exist.
async fn state(io: &IoCtx, oid: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    io.omap_get_vals(oid, "", 10_000).await.ok().map(|(m, _)| m)
}

/// Runs a raw exec that must fail with `code` and leave `oid` exactly as it was.
async fn fails(io: &IoCtx, oid: &str, m: &str, input: &[u8], code: i32) {
    let before = state(io, oid).await;
    assert_errno(io.exec(oid, "rbd", m, input).await, code);
    assert_eq!(state(io, oid).await, before, "{m} changed {oid} although it failed");
}

async fn header(io: &IoCtx, feats: u64) {
    client::create_image(io, HDR, 4 << 20, 22, feats, PREFIX, -1).await.unwrap();
}

fn snap_add(id: u64, name: &str) -> Vec<u8> {
    client::encode_snapshot_add(id, name, &SnapshotNamespace::User)
}

// ---------------------------------------------------------------------------------------------
// create / size / features / flags / prefix / data pool

#[tokio::test]
async fn s6_1_create_errors_in_cls_rbd_order() {
    let io = setup();
    let enc = client::encode_create;
    // Undecodable input (upstream: exec("create") with an empty input).
    fails(&io, HDR, method::CREATE, &[], errno::EINVAL).await;
    // Unknown feature bits: -ENOSYS, before anything else is looked at.
    fails(&io, HDR, method::CREATE, &enc(0, 22, u64::MAX, "", -1), rbd_errno::ENOSYS).await;
    fails(&io, HDR, method::CREATE, &enc(0, 22, 1 << 12, PREFIX, -1), rbd_errno::ENOSYS).await;
    fails(&io, HDR, method::CREATE, &enc(0, 22, 0, "", -1), errno::EINVAL).await;
    fails(&io, HDR, method::CREATE, &enc(0, 22, features::OPERATIONS, PREFIX, -1), errno::EINVAL).await;
    fails(&io, HDR, method::CREATE, &enc(0, 22, features::DATA_POOL, PREFIX, -1), errno::EINVAL).await;
    fails(&io, HDR, method::CREATE, &enc(0, 22, 0, PREFIX, 123), errno::EINVAL).await;
    assert!(!io.exists(HDR).await.unwrap(), "a failed create must not leave an object behind");

    // The data pool is optional in the input (pre-Luminous clients omit it).
    let mut short = enc(0, 22, 0, PREFIX, -1);
    short.truncate(short.len() - 8);
    io.exec(HDR, "rbd", method::CREATE, &short).await.unwrap();
    assert_eq!(client::get_data_pool(&io, HDR).await.unwrap(), -1);
    // A second create, even with other parameters, finds the object prefix: -EEXIST.
    fails(&io, HDR, method::CREATE, &enc(1, 12, 0, "other", -1), errno::EEXIST).await;
    // The existence check comes after the prefix check.
    fails(&io, HDR, method::CREATE, &enc(1, 12, 0, "", -1), errno::EINVAL).await;

    client::create_image(&io, "rbd_header.dp", 0, 22, features::DATA_POOL, "rbd_data.dp", 12).await.unwrap();
    assert_eq!(client::get_data_pool(&io, "rbd_header.dp").await.unwrap(), 12);
}

#[tokio::test]
async fn s6_1_size_get_and_set() {
    let io = setup();
    assert_errno(client::get_size(&io, HDR, CEPH_NOSNAP).await, errno::ENOENT);
    fails(&io, HDR, method::SET_SIZE, &client::encode_u64(5), errno::ENOENT).await;
    header(&io, 0).await;
    fails(&io, HDR, method::GET_SIZE, &[1, 2], errno::EINVAL).await;
    fails(&io, HDR, method::SET_SIZE, &[], errno::EINVAL).await;
    let s = client::get_size(&io, HDR, CEPH_NOSNAP).await.unwrap();
    assert_eq!((s.size, s.order), (4 << 20, 22));
    client::set_size(&io, HDR, 3 << 22).await.unwrap();
    assert_eq!(client::get_size(&io, HDR, CEPH_NOSNAP).await.unwrap().size, 3 << 22);
    client::set_size(&io, HDR, 0).await.unwrap();
    assert_eq!(client::get_size(&io, HDR, CEPH_NOSNAP).await.unwrap().size, 0);
    // A snapshot that does not exist.
    assert_errno(client::get_size(&io, HDR, 1).await, errno::ENOENT);

    // An object that is not a header: the order is read first, so -ENOENT.
    io.write_full("plain", b"x").await.unwrap();
    assert_errno(client::get_size(&io, "plain", CEPH_NOSNAP).await, errno::ENOENT);
    fails(&io, "plain", method::SET_SIZE, &client::encode_u64(1), errno::ENOENT).await;
    // A stored value that does not decode: -EIO.
    io.omap_set(HDR, &BTreeMap::from([(key::ORDER.to_string(), vec![])])).await.unwrap();
    assert_errno(client::get_size(&io, HDR, CEPH_NOSNAP).await, errno::EIO);
}

#[tokio::test]
async fn s6_1_features_get_and_set() {
    let io = setup();
    assert_errno(client::get_features(&io, HDR, false).await, errno::ENOENT);
    header(&io, features::LAYERING | features::DEEP_FLATTEN).await;
    fails(&io, HDR, method::GET_FEATURES, &[0; 4], errno::EINVAL).await;
    // The read-only flag is optional: without it the read-write subset is reported.
    let out = io.exec(HDR, "rbd", method::GET_FEATURES, &client::encode_snap_id(CEPH_NOSNAP)).await.unwrap();
    assert_eq!(
        client::decode_get_features(&out).unwrap().incompatible,
        features::LAYERING | features::DEEP_FLATTEN
    );
    assert_eq!(client::get_features(&io, HDR, true).await.unwrap().incompatible, features::LAYERING);

    let set = |f: u64, m: u64| client::encode_set_features(f, m);
    fails(&io, HDR, method::SET_FEATURES, &[0; 9], errno::EINVAL).await;
    // Internal features in the mask, enabling an immutable one, disabling one that may not be.
    fails(&io, HDR, method::SET_FEATURES, &set(0, features::OPERATIONS), errno::EINVAL).await;
    fails(&io, HDR, method::SET_FEATURES, &set(features::MIGRATING, features::MIGRATING), errno::EINVAL)
        .await;
    fails(&io, HDR, method::SET_FEATURES, &set(features::STRIPINGV2, features::STRIPINGV2), errno::EINVAL)
        .await;
    fails(&io, HDR, method::SET_FEATURES, &set(0, features::LAYERING), errno::EINVAL).await;
    fails(
        &io,
        HDR,
        method::SET_FEATURES,
        &set(features::DEEP_FLATTEN, features::DEEP_FLATTEN),
        errno::EINVAL,
    )
    .await;
    // Exclusive lock on and off (the update_features op, rbd §5.2); deep-flatten may go off.
    client::set_features(&io, HDR, features::EXCLUSIVE_LOCK, features::EXCLUSIVE_LOCK).await.unwrap();
    assert_eq!(
        client::get_features(&io, HDR, false).await.unwrap().features,
        features::LAYERING | features::DEEP_FLATTEN | features::EXCLUSIVE_LOCK
    );
    client::set_features(&io, HDR, 0, features::EXCLUSIVE_LOCK | features::DEEP_FLATTEN).await.unwrap();
    assert_eq!(client::get_features(&io, HDR, false).await.unwrap().features, features::LAYERING);
    // Mask bits 16.2 does not know are dropped, not refused.
    client::set_features(&io, HDR, 1 << 40, 1 << 40).await.unwrap();
    assert_eq!(client::get_features(&io, HDR, false).await.unwrap().features, features::LAYERING);

    // Without a features key (not a header) set_features starts from 0 and creates the key.
    io.write_full("plain", b"x").await.unwrap();
    client::set_features(&io, "plain", features::EXCLUSIVE_LOCK, features::EXCLUSIVE_LOCK).await.unwrap();
    assert_eq!(client::get_features(&io, "plain", false).await.unwrap().features, features::EXCLUSIVE_LOCK);
}

#[tokio::test]
async fn s6_1_prefix_pool_flags_and_op_features() {
    let io = setup();
    assert_errno(client::get_object_prefix(&io, HDR).await, errno::ENOENT);
    assert_errno(client::get_flags(&io, HDR, CEPH_NOSNAP).await, errno::ENOENT);
    header(&io, 0).await;
    assert_eq!(client::get_object_prefix(&io, HDR).await.unwrap(), PREFIX);
    assert_eq!(client::get_data_pool(&io, HDR).await.unwrap(), -1);
    assert_eq!(client::get_flags(&io, HDR, CEPH_NOSNAP).await.unwrap(), 0);
    assert_eq!(client::op_features_get(&io, HDR).await.unwrap(), 0);
    fails(&io, HDR, method::GET_FLAGS, &[], errno::EINVAL).await;
    assert_errno(client::get_flags(&io, HDR, 10).await, errno::ENOENT);
    // Snapshots capture the head's flags.
    io.omap_set(HDR, &BTreeMap::from([(key::FLAGS.to_string(), 6u64.to_le_bytes().to_vec())])).await.unwrap();
    client::snapshot_add(&io, HDR, 10, "s", &SnapshotNamespace::User).await.unwrap();
    assert_eq!(client::get_flags(&io, HDR, 10).await.unwrap(), 6);
    // get_data_pool on an object that exists but is no header: -1, as upstream tests.
    io.write_full("plain", b"x").await.unwrap();
    assert_eq!(client::get_data_pool(&io, "plain").await.unwrap(), -1);
    assert_errno(client::get_object_prefix(&io, "plain").await, errno::ENOENT);
}

// ---------------------------------------------------------------------------------------------
// snapshots

#[tokio::test]
async fn s5_6_snapshot_add_errors() {
    let io = setup();
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(1, "s"), errno::ENOENT).await;
    header(&io, 0).await;
    fails(&io, HDR, method::SNAPSHOT_ADD, &[1, 0, 0, 0], errno::EINVAL).await;
    let unknown = client::encode_snapshot_add(1, "s", &SnapshotNamespace::Unknown { namespace_type: 7 });
    fails(&io, HDR, method::SNAPSHOT_ADD, &unknown, errno::EINVAL).await;
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(CEPH_NOSNAP, "s"), errno::EINVAL).await;
    // CEPH_MAXSNAP itself is allowed.
    io.exec(HDR, "rbd", method::SNAPSHOT_ADD, &snap_add(CEPH_MAXSNAP, "max")).await.unwrap();
    client::snapshot_remove(&io, HDR, CEPH_MAXSNAP).await.unwrap();

    let io = setup();
    header(&io, 0).await;
    // Without a namespace in the input the snapshot is a user snapshot.
    let mut no_ns = snap_add(0, "snap1");
    no_ns.truncate(no_ns.len() - 10);
    io.exec(HDR, "rbd", method::SNAPSHOT_ADD, &no_ns).await.unwrap();
    assert_eq!(client::snapshot_get(&io, HDR, 0).await.unwrap().snapshot_namespace, SnapshotNamespace::User);
    assert_eq!(client::get_snapcontext(&io, HDR).await.unwrap(), SnapContext { seq: 0, snaps: vec![0] });
    // Same id, different name; different id, same name: -EEXIST.
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(0, "snap2"), errno::EEXIST).await;
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(1, "snap1"), errno::EEXIST).await;
    io.exec(HDR, "rbd", method::SNAPSHOT_ADD, &snap_add(1, "snap2")).await.unwrap();
    assert_eq!(client::get_snapcontext(&io, HDR).await.unwrap(), SnapContext { seq: 1, snaps: vec![1, 0] });
    // An id below snap_seq lost a race: -ESTALE (§5.6 step 7 allocates again).
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(0, "snap3"), errno::ESTALE).await;
    // The same name is fine in another namespace, not in a matching one.
    let group =
        SnapshotNamespace::Group { group_pool: 1, group_id: "g".into(), group_snapshot_id: "gs".into() };
    client::snapshot_add(&io, HDR, 2, "snap1", &group).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_ADD, &client::encode_snapshot_add(3, "snap1", &group), errno::EEXIST)
        .await;
    let other_group =
        SnapshotNamespace::Group { group_pool: 2, group_id: "g".into(), group_snapshot_id: "gs".into() };
    client::snapshot_add(&io, HDR, 3, "snap1", &other_group).await.unwrap();
    // A record that does not decode makes the walk fail with -EIO.
    io.omap_set(HDR, &BTreeMap::from([(key::snapshot(4), vec![9])])).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(5, "x"), errno::EIO).await;
}

#[tokio::test]
async fn s6_1_snap_limit_edquot_and_its_order_against_eexist() {
    let io = setup();
    assert_errno(client::snapshot_get_limit(&io, HDR).await, errno::ENOENT);
    fails(&io, HDR, method::SNAPSHOT_SET_LIMIT, &client::encode_u64(2), errno::ENOENT).await;
    fails(&io, HDR, method::SNAPSHOT_SET_LIMIT, &client::encode_u64(u64::MAX), errno::ENOENT).await;
    header(&io, features::LAYERING).await;
    assert_eq!(client::snapshot_get_limit(&io, HDR).await.unwrap(), u64::MAX);
    fails(&io, HDR, method::SNAPSHOT_SET_LIMIT, &[], errno::EINVAL).await;
    client::snapshot_set_limit(&io, HDR, 2).await.unwrap();
    assert_eq!(client::snapshot_get_limit(&io, HDR).await.unwrap(), 2);
    client::snapshot_add(&io, HDR, 10, "snap1", &SnapshotNamespace::User).await.unwrap();
    client::snapshot_add(&io, HDR, 20, "snap2", &SnapshotNamespace::User).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(30, "snap3"), errno::EDQUOT).await;
    // The walk stops at the first problem in id order: a duplicate of the first snapshot is
    // found before the limit is reached, a duplicate of the second one after.
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(30, "snap1"), errno::EEXIST).await;
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(30, "snap2"), errno::EDQUOT).await;
    // A limit below the number of snapshots: -ERANGE.
    fails(&io, HDR, method::SNAPSHOT_SET_LIMIT, &client::encode_u64(1), errno::ERANGE).await;
    client::snapshot_set_limit(&io, HDR, u64::MAX).await.unwrap();
    assert_eq!(client::snapshot_get_limit(&io, HDR).await.unwrap(), u64::MAX);
    client::snapshot_add(&io, HDR, 30, "snap3", &SnapshotNamespace::User).await.unwrap();

    // cls_rbd only counts snapshots that exist, so with limit 0 the first one still goes in.
    let io = setup();
    header(&io, 0).await;
    client::snapshot_set_limit(&io, HDR, 0).await.unwrap();
    client::snapshot_add(&io, HDR, 1, "a", &SnapshotNamespace::User).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_ADD, &snap_add(2, "b"), errno::EDQUOT).await;
}

#[tokio::test]
async fn s6_1_snapshot_get_remove_rename_errors() {
    let io = setup();
    assert_errno(client::snapshot_get(&io, HDR, 1).await, errno::ENOENT);
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(1), errno::ENOENT).await;
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(1, "x"), errno::ENOENT).await;
    header(&io, features::LAYERING).await;
    fails(&io, HDR, method::SNAPSHOT_GET, &[], errno::EINVAL).await;
    fails(&io, HDR, method::SNAPSHOT_GET, &client::encode_snap_id(CEPH_NOSNAP), errno::EINVAL).await;
    assert_errno(client::snapshot_get(&io, HDR, 1).await, errno::ENOENT);
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &[], errno::EINVAL).await;
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(1), errno::ENOENT).await;
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_u64(1), errno::EINVAL).await;

    client::snapshot_add(&io, HDR, 1, "a", &SnapshotNamespace::User).await.unwrap();
    client::snapshot_add(&io, HDR, 2, "b", &SnapshotNamespace::User).await.unwrap();
    // Rename: to a name a user snapshot has (even its own): -EEXIST; unknown id: -ENOENT.
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(1, "b"), errno::EEXIST).await;
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(1, "a"), errno::EEXIST).await;
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(9, "c"), errno::ENOENT).await;
    client::snapshot_rename(&io, HDR, 1, "a2").await.unwrap();
    assert_eq!(client::snapshot_get(&io, HDR, 1).await.unwrap().name, "a2");
    // Only user snapshots can be renamed.
    let group =
        SnapshotNamespace::Group { group_pool: 1, group_id: "g".into(), group_snapshot_id: "gs".into() };
    client::snapshot_add(&io, HDR, 3, "g", &group).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(3, "c"), errno::EINVAL).await;
    // A group snapshot's name does not block a user rename.
    client::snapshot_rename(&io, HDR, 2, "g").await.unwrap();

    // Remove: protected / unprotecting / with clone children: -EBUSY.
    client::set_protection_status(&io, HDR, 1, ProtectionStatus::Protected).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(1), errno::EBUSY).await;
    client::set_protection_status(&io, HDR, 1, ProtectionStatus::Unprotecting).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(1), errno::EBUSY).await;
    client::set_protection_status(&io, HDR, 1, ProtectionStatus::Unprotected).await.unwrap();
    let mut rec: SnapshotRecord =
        rados_store::encoding::decode_all(&state(&io, HDR).await.unwrap()[&key::snapshot(2)]).unwrap();
    rec.child_count = 1;
    io.omap_set(HDR, &BTreeMap::from([(key::snapshot(2), encode_to_vec(&rec))])).await.unwrap();
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(2), errno::EBUSY).await;
    client::snapshot_remove(&io, HDR, 1).await.unwrap();
    // snap_seq stays; the id is gone from the context.
    assert_eq!(client::get_snapcontext(&io, HDR).await.unwrap(), SnapContext { seq: 3, snaps: vec![3, 2] });

    // Undecodable records: -EIO from get, remove and rename.
    io.omap_set(HDR, &BTreeMap::from([(key::snapshot(5), vec![1, 2, 3])])).await.unwrap();
    assert_errno(client::snapshot_get(&io, HDR, 5).await, errno::EIO);
    fails(&io, HDR, method::SNAPSHOT_REMOVE, &client::encode_snap_id(5), errno::EIO).await;
    fails(&io, HDR, method::SNAPSHOT_RENAME, &client::encode_snapshot_rename(3, "z"), errno::EIO).await;
}

#[tokio::test]
async fn s6_1_trash_snapshots_drive_the_op_features() {
    let io = setup();
    header(&io, features::LAYERING).await;
    let trash = SnapshotNamespace::Trash {
        original_name: "old".into(),
        original_namespace_type: SnapshotNamespaceType::User,
    };
    client::snapshot_add(&io, HDR, 1, "uuid-1", &trash).await.unwrap();
    // Adding a trash snapshot sets op feature snap-trash, which sets the operations feature.
    assert_eq!(client::op_features_get(&io, HDR).await.unwrap(), features::OP_SNAP_TRASH);
    assert_eq!(
        client::get_features(&io, HDR, false).await.unwrap().features,
        features::LAYERING | features::OPERATIONS
    );
    // Two trash namespaces always match each other, so the same name is refused.
    let other = SnapshotNamespace::Trash {
        original_name: "x".into(),
        original_namespace_type: SnapshotNamespaceType::Group,
    };
    fails(&io, HDR, method::SNAPSHOT_ADD, &client::encode_snapshot_add(2, "uuid-1", &other), errno::EEXIST)
        .await;
    client::snapshot_remove(&io, HDR, 1).await.unwrap();
    assert_eq!(client::op_features_get(&io, HDR).await.unwrap(), 0);
    assert_eq!(client::get_features(&io, HDR, false).await.unwrap().features, features::LAYERING);
    assert!(!state(&io, HDR).await.unwrap().contains_key(key::OP_FEATURES));
}

#[tokio::test]
async fn s6_1_protection_status_errors_as_upstream() {
    let io = setup();
    let oid2 = "rbd_header.nolayering";
    let status = |id| client::encode_set_protection_status(id, ProtectionStatus::Unprotected);
    assert_errno(client::get_protection_status(&io, HDR, CEPH_NOSNAP).await, errno::ENOENT);
    fails(&io, HDR, method::SET_PROTECTION_STATUS, &status(CEPH_NOSNAP), errno::ENOENT).await;
    header(&io, features::LAYERING).await;
    client::create_image(&io, oid2, 0, 22, 0, PREFIX, -1).await.unwrap();
    fails(&io, oid2, method::GET_PROTECTION_STATUS, &client::encode_snap_id(CEPH_NOSNAP), errno::EINVAL)
        .await;
    fails(&io, oid2, method::SET_PROTECTION_STATUS, &status(CEPH_NOSNAP), rbd_errno::ENOEXEC).await;
    fails(&io, HDR, method::GET_PROTECTION_STATUS, &client::encode_snap_id(CEPH_NOSNAP), errno::EINVAL).await;
    fails(&io, HDR, method::SET_PROTECTION_STATUS, &status(CEPH_NOSNAP), errno::EINVAL).await;
    fails(&io, HDR, method::GET_PROTECTION_STATUS, &client::encode_snap_id(2), errno::ENOENT).await;
    fails(&io, HDR, method::SET_PROTECTION_STATUS, &status(2), errno::ENOENT).await;
    fails(&io, HDR, method::GET_PROTECTION_STATUS, &[], errno::EINVAL).await;
    fails(&io, HDR, method::SET_PROTECTION_STATUS, &client::encode_snap_id(2), errno::EINVAL).await;

    client::snapshot_add(&io, HDR, 10, "snap1", &SnapshotNamespace::User).await.unwrap();
    assert_eq!(client::get_protection_status(&io, HDR, 10).await.unwrap(), ProtectionStatus::Unprotected);
    client::set_protection_status(&io, HDR, 10, ProtectionStatus::Protected).await.unwrap();
    assert_eq!(client::get_protection_status(&io, HDR, 10).await.unwrap(), ProtectionStatus::Protected);
    // RBD_PROTECTION_STATUS_LAST (3) is not a status.
    let mut last = client::encode_snap_id(10);
    last.push(3);
    fails(&io, HDR, method::SET_PROTECTION_STATUS, &last, errno::EINVAL).await;
    // A stored byte that is not a status reads as -EIO.
    let mut rec: SnapshotRecord =
        rados_store::encoding::decode_all(&state(&io, HDR).await.unwrap()[&key::snapshot(10)]).unwrap();
    rec.protection_status = 3;
    io.omap_set(HDR, &BTreeMap::from([(key::snapshot(10), encode_to_vec(&rec))])).await.unwrap();
    assert_errno(client::get_protection_status(&io, HDR, 10).await, errno::EIO);
}

#[tokio::test]
async fn s6_1_snapcontext_errors() {
    let io = setup();
    assert_errno(client::get_snapcontext(&io, HDR).await, errno::ENOENT);
    io.write_full("plain", b"x").await.unwrap();
    assert_errno(client::get_snapcontext(&io, "plain").await, errno::ENOENT);
    header(&io, 0).await;
    io.omap_set(HDR, &BTreeMap::from([("snapshot_zz".to_string(), vec![])])).await.unwrap();
    assert_errno(client::get_snapcontext(&io, HDR).await, errno::EIO);
}

// ---------------------------------------------------------------------------------------------
// metadata

#[tokio::test]
async fn s6_1_metadata_methods() {
    let io = setup();
    assert_errno(client::metadata_list(&io, HDR, "", 0).await, errno::ENOENT);
    assert_errno(client::metadata_get(&io, HDR, "k").await, errno::ENOENT);
    fails(&io, HDR, method::METADATA_REMOVE, &client::encode_string("k"), errno::ENOENT).await;
    header(&io, 0).await;
    assert!(client::metadata_list(&io, HDR, "", 0).await.unwrap().is_empty());
    fails(&io, HDR, method::METADATA_SET, &[1, 0, 0, 0], errno::EINVAL).await;
    fails(&io, HDR, method::METADATA_GET, &[], errno::EINVAL).await;
    fails(&io, HDR, method::METADATA_REMOVE, &[9], errno::EINVAL).await;
    fails(&io, HDR, method::METADATA_LIST, &[0, 0, 0, 0], errno::EINVAL).await;

    let pairs: BTreeMap<String, Vec<u8>> =
        [("key1", "value1"), ("key2", "value2")].map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).into();
    client::metadata_set(&io, HDR, &pairs).await.unwrap();
    assert_eq!(client::metadata_get(&io, HDR, "key1").await.unwrap(), b"value1");
    assert_eq!(client::metadata_list(&io, HDR, "", 0).await.unwrap(), pairs);
    // Removing a key that is not set is not an error.
    client::metadata_remove(&io, HDR, "key1").await.unwrap();
    client::metadata_remove(&io, HDR, "key3").await.unwrap();
    assert_errno(client::metadata_get(&io, HDR, "key1").await, errno::ENOENT);
    assert_eq!(client::metadata_list(&io, HDR, "", 0).await.unwrap().len(), 1);

    // Paging: 0 means 64; start_after is exclusive; header keys never leak in.
    let many: BTreeMap<String, Vec<u8>> = (0..70).map(|i| (format!("k{i:02}"), vec![i as u8])).collect();
    client::metadata_set(&io, HDR, &many).await.unwrap();
    let first = client::metadata_list(&io, HDR, "", 0).await.unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(first.keys().next().unwrap(), "k00");
    let rest = client::metadata_list(&io, HDR, first.keys().next_back().unwrap(), 1000).await.unwrap();
    assert_eq!(rest.len(), 71 - 64);
    assert!(rest.contains_key("key2") && !rest.contains_key("size"));
    assert_eq!(
        client::metadata_list(&io, HDR, "k05", 2).await.unwrap().keys().collect::<Vec<_>>(),
        ["k06", "k07"]
    );

    // metadata_set does not check for a header: it creates the object (as cls_rbd does).
    client::metadata_set(&io, "rbd_header.none", &pairs).await.unwrap();
    assert!(io.exists("rbd_header.none").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// rbd_id and rbd_directory

#[tokio::test]
async fn s0_1_get_and_set_id_as_upstream() {
    let io = setup();
    let oid = "rbd_id.img";
    assert_errno(client::get_id(&io, oid).await, errno::ENOENT);
    fails(&io, oid, method::SET_ID, &client::encode_string("0123abcxyzZYXCBA"), errno::ENOENT).await;
    io.create(oid, true).await.unwrap();
    fails(&io, oid, method::SET_ID, &client::encode_string(".abc"), errno::EINVAL).await;
    fails(&io, oid, method::SET_ID, &client::encode_string(""), errno::EINVAL).await;
    fails(&io, oid, method::SET_ID, &[7], errno::EINVAL).await;
    assert_errno(client::get_id(&io, oid).await, errno::ENOENT);
    client::set_id(&io, oid, "0123abcxyzZYXCBA").await.unwrap();
    fails(&io, oid, method::SET_ID, &client::encode_string("0123abcxyzZYXCBA"), errno::EEXIST).await;
    fails(&io, oid, method::SET_ID, &client::encode_string("other"), errno::EEXIST).await;
    assert_eq!(client::get_id(&io, oid).await.unwrap(), "0123abcxyzZYXCBA");
    // Data that is not an encoded string: -EIO.
    io.write_full(oid, &[0xff, 0xff, 0xff, 0x7f]).await.unwrap();
    assert_errno(client::get_id(&io, oid).await, errno::EIO);

    // librbd's create: exclusive create and set_id in one op.
    let op = client::write_op_set_id(WriteOp::new().create(true), "abc");
    io.operate_write("rbd_id.new", &op).await.unwrap();
    assert_eq!(client::get_id(&io, "rbd_id.new").await.unwrap(), "abc");
    assert_errno(io.operate_write("rbd_id.new", &op).await, errno::EEXIST);
}

#[tokio::test]
async fn s0_1_directory_methods_as_upstream() {
    let io = setup();
    let (img, img2, img3) = ("image1", "image2", "image3");
    let (valid, valid2) = ("0123abcxyzZYXCBA", "5");
    assert_errno(client::dir_get_id(&io, DIR, img).await, errno::ENOENT);
    assert_errno(client::dir_get_name(&io, DIR, valid).await, errno::ENOENT);
    fails(&io, DIR, method::DIR_REMOVE_IMAGE, &client::encode_dir_entry(img, valid), errno::ENOENT).await;
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry(img, ".abc"), errno::EINVAL).await;
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry(img, ""), errno::EINVAL).await;
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry("", valid), errno::EINVAL).await;
    fails(&io, DIR, method::DIR_ADD_IMAGE, &[], errno::EINVAL).await;
    assert_errno(client::dir_list(&io, DIR, "", 30).await, errno::ENOENT);
    io.create(DIR, true).await.unwrap();
    assert!(client::dir_list(&io, DIR, "", 30).await.unwrap().is_empty());
    io.remove(DIR).await.unwrap();

    client::dir_add_image(&io, DIR, img, valid).await.unwrap();
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry(img, valid2), errno::EEXIST).await;
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry(img2, valid), rbd_errno::EBADF).await;
    assert_eq!(
        client::dir_list(&io, DIR, "", 30).await.unwrap(),
        BTreeMap::from([(img.into(), valid.into())])
    );
    assert!(client::dir_list(&io, DIR, "", 0).await.unwrap().is_empty());
    assert_eq!(client::dir_get_name(&io, DIR, valid).await.unwrap(), img);
    assert_eq!(client::dir_get_id(&io, DIR, img).await.unwrap(), valid);

    client::dir_add_image(&io, DIR, img2, valid2).await.unwrap();
    assert_eq!(client::dir_list(&io, DIR, "", 30).await.unwrap().len(), 2);
    assert!(client::dir_list(&io, DIR, img, 0).await.unwrap().is_empty());
    assert_eq!(
        client::dir_list(&io, DIR, img, 2).await.unwrap(),
        BTreeMap::from([(img2.into(), valid2.into())])
    );

    let rename = |s: &str, d: &str, id: &str| client::encode_dir_rename(s, d, id);
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &rename(img, img2, valid2), errno::ESTALE).await;
    fails(&io, DIR, method::DIR_REMOVE_IMAGE, &client::encode_dir_entry(img, valid2), errno::ESTALE).await;
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &rename(img, img2, valid), errno::EEXIST).await;
    // The method's own removal is invisible to its checks on Ceph: renaming to the same name fails.
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &rename(img, img, valid), errno::EEXIST).await;
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &rename(img, "", valid), errno::EINVAL).await;
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &rename("nope", img3, valid), errno::ENOENT).await;
    fails(&io, DIR, method::DIR_RENAME_IMAGE, &[], errno::EINVAL).await;
    assert_eq!(client::dir_get_id(&io, DIR, img).await.unwrap(), valid);
    assert_eq!(client::dir_get_name(&io, DIR, valid2).await.unwrap(), img2);

    client::dir_rename_image(&io, DIR, img, img3, valid).await.unwrap();
    assert_eq!(client::dir_get_id(&io, DIR, img3).await.unwrap(), valid);
    assert_eq!(client::dir_get_name(&io, DIR, valid).await.unwrap(), img3);
    assert_errno(client::dir_get_id(&io, DIR, img).await, errno::ENOENT);
    client::dir_rename_image(&io, DIR, img3, img, valid).await.unwrap();

    client::dir_remove_image(&io, DIR, img, valid).await.unwrap();
    assert_eq!(
        client::dir_list(&io, DIR, "", 30).await.unwrap(),
        BTreeMap::from([(img2.into(), valid2.into())])
    );
    assert!(client::dir_list(&io, DIR, img2, 30).await.unwrap().is_empty());
    assert_errno(client::dir_get_name(&io, DIR, valid).await, errno::ENOENT);
    assert_errno(client::dir_get_id(&io, DIR, img).await, errno::ENOENT);
    client::dir_add_image(&io, DIR, img, valid).await.unwrap();
    client::dir_remove_image(&io, DIR, img, valid).await.unwrap();
    fails(&io, DIR, method::DIR_REMOVE_IMAGE, &client::encode_dir_entry(img, valid), errno::ENOENT).await;
    client::dir_remove_image(&io, DIR, img2, valid2).await.unwrap();
    assert!(client::dir_list(&io, DIR, "", 30).await.unwrap().is_empty());
    fails(&io, DIR, method::DIR_GET_ID, &[], errno::EINVAL).await;
    fails(&io, DIR, method::DIR_GET_NAME, &[], errno::EINVAL).await;
    fails(&io, DIR, method::DIR_LIST, &[], errno::EINVAL).await;
}

#[tokio::test]
async fn s0_1_directory_paging_and_corrupt_entries() {
    let io = setup();
    for i in 0..150 {
        client::dir_add_image(&io, DIR, &format!("img{i:03}"), &format!("id{i}")).await.unwrap();
    }
    let all = client::dir_list(&io, DIR, "", 1000).await.unwrap();
    assert_eq!(all.len(), 150);
    assert_eq!(all["img042"], "id42");
    let page = client::dir_list(&io, DIR, "img099", 70).await.unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page.keys().next().unwrap(), "img100");
    assert_eq!(client::dir_list(&io, DIR, "", 100).await.unwrap().len(), 100);
    // A name entry whose id does not decode: -EIO from dir_list, and the name counts as taken.
    io.omap_set(DIR, &BTreeMap::from([("name_bad".to_string(), vec![1])])).await.unwrap();
    assert_errno(client::dir_list(&io, DIR, "", 1000).await, errno::EIO);
    assert_errno(client::dir_get_id(&io, DIR, "bad").await, errno::EIO);
    fails(&io, DIR, method::DIR_ADD_IMAGE, &client::encode_dir_entry("bad", "fresh"), errno::EEXIST).await;
}

#[tokio::test]
async fn unknown_rbd_method_is_eopnotsupp() {
    let io = setup();
    header(&io, 0).await;
    assert_errno(io.exec(HDR, "rbd", "parent_get", &[]).await, errno::EOPNOTSUPP);
}
