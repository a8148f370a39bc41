//! Golden bytes for the `rbd` class (rbd §4.1, §4.3, §6.1): method inputs as the typed client
//! encodes them, method outputs as the class produces them, and the header / directory / id
//! object contents the class leaves behind. Every expected array is written out by hand, field
//! by field, from cls_rbd 16.2's encodings; the values are the ones librbd uses (an image id
//! of 12 hex digits, `rbd_data.<id>` prefix, order 22, default features).
//!
//! The last part feeds arbitrary bytes to every decoder and every method (proptest).

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use rados_store::cls::rbd::{self, ParentLink, SnapshotRecord, key, rbd_errno};
use rados_store::cls_rbd_client::{
    self as client, CEPH_NOSNAP, MirrorSnapshotNamespace, MirrorSnapshotState, ProtectionStatus,
    SnapshotInfo, SnapshotNamespace, SnapshotNamespaceType, features, method,
};
use rados_store::encoding::{Decode, Decoder, decode_all, encode_to_vec};
use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, IoCtx, SimClock, SnapContext, UTime};

/// A librbd-style image id and the names derived from it (rbd §0.1).
const ID: &str = "10226b8b4567";
const PREFIX: &str = "rbd_data.10226b8b4567";
const HEADER: &str = "rbd_header.10226b8b4567";
/// The simulated clock's start, 1_700_000_000 s = 0x6553_f100.
const T0: [u8; 8] = [0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0];
/// layering | exclusive-lock | object-map | fast-diff | deep-flatten = 1 + 4 + 8 + 16 + 32.
const DEFAULT_FEATURES: u64 = 0x3d;
/// The user snapshot namespace, versioned(1, 1) { kind 0 } (rbd §4.3).
const USER_NS: [u8; 10] = [0x01, 0x01, 0x04, 0, 0, 0, 0, 0, 0, 0];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn same(actual: &[u8], expected: &[u8]) {
    assert_eq!(hex(actual), hex(expected));
}

fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn setup() -> (Arc<SimClock>, IoCtx) {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    let io = cluster.connect().ioctx("rbd", "").unwrap();
    (clock, io)
}

async fn omap(io: &IoCtx, oid: &str) -> BTreeMap<String, Vec<u8>> {
    io.omap_get_vals(oid, "", 1000).await.unwrap().0
}

// ---------------------------------------------------------------------------------------------
// Inputs

#[test]
fn s6_1_create_input() {
    let bytes = client::encode_create(1 << 30, 22, DEFAULT_FEATURES, PREFIX, -1);
    let expected = cat(&[
        &[0, 0, 0, 0x40, 0, 0, 0, 0], // size 1 GiB
        &[0x16],                      // order 22 (4 MiB objects)
        &[0x3d, 0, 0, 0, 0, 0, 0, 0], // features
        &[0x15, 0, 0, 0],
        PREFIX.as_bytes(), // object_prefix, 21 bytes
        &[0xff; 8],        // data_pool_id -1: no data pool
    ]);
    same(&bytes, &expected);
}

#[test]
fn s6_1_small_inputs() {
    // get_features(read_only = false): CEPH_NOSNAP, then the bool.
    same(&client::encode_get_features(false), &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    same(&client::encode_get_features(true)[8..], &[0x01]);
    // get_size(head) / get_flags(head): just CEPH_NOSNAP.
    same(&client::encode_snap_id(CEPH_NOSNAP), &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    // set_features(exclusive-lock on, mask exclusive-lock).
    same(&client::encode_set_features(4, 4), &cat(&[&le64(4), &le64(4)]));
    // set_protection_status(4, protected).
    same(&client::encode_set_protection_status(4, ProtectionStatus::Protected), &cat(&[&le64(4), &[0x02]]));
    // snapshot_rename(4, "s1-old").
    same(&client::encode_snapshot_rename(4, "s1-old"), &cat(&[&le64(4), &[6, 0, 0, 0], b"s1-old"]));
    // dir_add_image("vm1", id) / dir_remove_image: name, then id.
    same(&client::encode_dir_entry("vm1", ID), &cat(&[&[3, 0, 0, 0], b"vm1", &[12, 0, 0, 0], ID.as_bytes()]));
    // dir_rename_image("vm1", "vm2", id).
    same(
        &client::encode_dir_rename("vm1", "vm2", ID),
        &cat(&[&[3, 0, 0, 0], b"vm1", &[3, 0, 0, 0], b"vm2", &[12, 0, 0, 0], ID.as_bytes()]),
    );
    // dir_list("", 1024) / metadata_list: start_after, then max_return u64.
    same(&client::encode_list("", 1024), &[0, 0, 0, 0, 0x00, 0x04, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn s5_6_snapshot_add_input_user_namespace() {
    // §5.6 step 7: snapshot_add(name "s1", id 4, user namespace), name first.
    let bytes = client::encode_snapshot_add(4, "s1", &SnapshotNamespace::User);
    let expected = cat(&[&[2, 0, 0, 0], b"s1", &le64(4), &USER_NS]);
    same(&bytes, &expected);
}

#[test]
fn s4_3_group_trash_and_mirror_namespaces() {
    let group =
        SnapshotNamespace::Group { group_pool: 3, group_id: "g1".into(), group_snapshot_id: "gs".into() };
    let expected = cat(&[
        &[0x01, 0x01, 0x18, 0, 0, 0], // v1, compat 1, body 24 = 4 + 8 + 6 + 6
        &[1, 0, 0, 0],                // kind group
        &le64(3),                     // group pool
        &[2, 0, 0, 0],
        b"g1",
        &[2, 0, 0, 0],
        b"gs",
    ]);
    same(&encode_to_vec(&group), &expected);
    assert_eq!(decode_all::<SnapshotNamespace>(&expected), Ok(group));

    let trash = SnapshotNamespace::Trash {
        original_name: "s1".into(),
        original_namespace_type: SnapshotNamespaceType::User,
    };
    let expected = cat(&[&[0x01, 0x01, 0x0e, 0, 0, 0], &[2, 0, 0, 0], &[2, 0, 0, 0], b"s1", &[0, 0, 0, 0]]);
    same(&encode_to_vec(&trash), &expected);
    assert_eq!(decode_all::<SnapshotNamespace>(&expected), Ok(trash));

    // Mirror: state u8, complete bool, peers set<string>, primary uuid, primary snap id,
    // last copied object, snap_seqs map<u64,u64>.
    let mirror = SnapshotNamespace::Mirror(MirrorSnapshotNamespace {
        state: MirrorSnapshotState::Primary,
        complete: true,
        mirror_peer_uuids: ["p".to_string()].into(),
        primary_mirror_uuid: String::new(),
        primary_snap_id: CEPH_NOSNAP,
        last_copied_object_number: 0,
        snap_seqs: BTreeMap::from([(1, 2)]),
    });
    let expected = cat(&[
        &[0x01, 0x01, 0x37, 0, 0, 0], // body 55 = 4 + 1 + 1 + 9 + 4 + 8 + 8 + 20
        &[3, 0, 0, 0],                // kind mirror
        &[0x00, 0x01],                // state primary, complete
        &[1, 0, 0, 0, 1, 0, 0, 0],
        b"p",                                              // peer uuids: one, "p"
        &[0, 0, 0, 0],                                     // primary mirror uuid ""
        &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // primary snap id CEPH_NOSNAP
        &le64(0),                                          // last copied object
        &[1, 0, 0, 0],
        &le64(1),
        &le64(2), // snap_seqs {1: 2}
    ]);
    same(&encode_to_vec(&mirror), &expected);
    assert_eq!(decode_all::<SnapshotNamespace>(&expected), Ok(mirror));

    // An unknown kind decodes (body skipped) and is refused by snapshot_add elsewhere.
    let unknown = [0x01, 0x01, 0x06, 0, 0, 0, 9, 0, 0, 0, 0xaa, 0xbb];
    assert_eq!(
        decode_all::<SnapshotNamespace>(&unknown),
        Ok(SnapshotNamespace::Unknown { namespace_type: 9 })
    );
}

#[test]
fn s6_1_metadata_set_input() {
    let data = BTreeMap::from([("conf_rbd_cache".to_string(), b"false".to_vec())]);
    let expected = cat(&[&[1, 0, 0, 0], &[14, 0, 0, 0], b"conf_rbd_cache", &[5, 0, 0, 0], b"false"]);
    same(&client::encode_metadata_set(&data), &expected);
}

// ---------------------------------------------------------------------------------------------
// Stored state and outputs, produced by the class on the embedded cluster

#[tokio::test]
async fn s6_1_header_omap_after_create() {
    let (_clock, io) = setup();
    client::create_image(&io, HEADER, 1 << 30, 22, DEFAULT_FEATURES, PREFIX, -1).await.unwrap();
    let m = omap(&io, HEADER).await;
    let expect: BTreeMap<String, Vec<u8>> = [
        ("access_timestamp", T0.to_vec()), // utime: u32 sec, u32 nsec
        ("create_timestamp", T0.to_vec()),
        ("features", le64(0x3d).to_vec()),
        ("modify_timestamp", T0.to_vec()),
        ("object_prefix", cat(&[&[0x15, 0, 0, 0], PREFIX.as_bytes()])),
        ("order", vec![0x16]),
        ("size", le64(1 << 30).to_vec()),
        ("snap_seq", le64(0).to_vec()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(m, expect);
    // The header object itself has no data; everything is omap.
    assert_eq!(io.stat(HEADER).await.unwrap().size, 0);

    // A data-pool image also records the pool id (i64).
    client::create_image(&io, "rbd_header.dp", 0, 22, features::DATA_POOL, "rbd_data.dp", 7).await.unwrap();
    assert_eq!(omap(&io, "rbd_header.dp").await["data_pool_id"], le64(7));
}

#[tokio::test]
async fn s6_1_getter_outputs() {
    let (_clock, io) = setup();
    client::create_image(&io, HEADER, 1 << 30, 22, DEFAULT_FEATURES, PREFIX, -1).await.unwrap();
    let call = |m: &'static str, input: Vec<u8>| {
        let io = io.clone();
        async move { io.exec(HEADER, "rbd", m, &input).await.unwrap() }
    };
    // get_size: order u8 first, then size.
    same(
        &call(method::GET_SIZE, client::encode_snap_id(CEPH_NOSNAP)).await,
        &cat(&[&[0x16], &le64(1 << 30)]),
    );
    // get_features(rw): features, then features & RW_INCOMPATIBLE (all five defaults are).
    same(
        &call(method::GET_FEATURES, client::encode_get_features(false)).await,
        &cat(&[&le64(0x3d), &le64(0x3d)]),
    );
    // get_features(ro): only layering (of these) is read-incompatible.
    same(
        &call(method::GET_FEATURES, client::encode_get_features(true)).await,
        &cat(&[&le64(0x3d), &le64(1)]),
    );
    same(&call(method::GET_FLAGS, client::encode_snap_id(CEPH_NOSNAP)).await, &le64(0));
    same(&call(method::OP_FEATURES_GET, vec![]).await, &le64(0));
    same(&call(method::GET_DATA_POOL, vec![]).await, &[0xff; 8]);
    same(&call(method::GET_OBJECT_PREFIX, vec![]).await, &cat(&[&[0x15, 0, 0, 0], PREFIX.as_bytes()]));
    same(&call(method::SNAPSHOT_GET_LIMIT, vec![]).await, &[0xff; 8]);
    // get_snapcontext of a new image: seq 0, no snapshots.
    same(&call(method::GET_SNAPCONTEXT, vec![]).await, &cat(&[&le64(0), &[0, 0, 0, 0]]));
}

#[tokio::test]
async fn s5_6_snapshot_record_info_and_snapcontext() {
    let (clock, io) = setup();
    client::create_image(&io, HEADER, 1 << 30, 22, DEFAULT_FEATURES, PREFIX, -1).await.unwrap();
    client::snapshot_add(&io, HEADER, 4, "s1", &SnapshotNamespace::User).await.unwrap();
    clock.advance(std::time::Duration::from_millis(1500));
    client::snapshot_add(&io, HEADER, 7, "s2", &SnapshotNamespace::User).await.unwrap();

    // The stored cls_rbd_snap for id 4, under snapshot_0000000000000004.
    let m = omap(&io, HEADER).await;
    let rec = &m["snapshot_0000000000000004"];
    let expected = cat(&[
        &[0x08, 0x08, 0x36, 0, 0, 0], // v8, compat 8, body 54 = 8 + 6 + 8 + 1 + 8 + 10 + 8 + 4 + 1
        &le64(4),                     // id
        &[2, 0, 0, 0],
        b"s1",          // name
        &le64(1 << 30), // image_size captured from the head
        &[0x00],        // protection: unprotected
        &le64(0),       // flags
        &USER_NS,       // namespace
        &T0,            // timestamp (the OSD's clock)
        &[0, 0, 0, 0],  // child_count
        &[0x00],        // parent_overlap: none
    ]);
    same(rec, &expected);
    let decoded = decode_all::<SnapshotRecord>(&expected).unwrap();
    assert_eq!((decoded.id, decoded.name.as_str(), decoded.image_size), (4, "s1", 1 << 30));
    // snap_seq now holds the newest id.
    assert_eq!(m[key::SNAP_SEQ], le64(7));

    // snapshot_get(7): SnapshotInfo versioned(1, 1).
    let out = io.exec(HEADER, "rbd", method::SNAPSHOT_GET, &client::encode_snap_id(7)).await.unwrap();
    let expected = cat(&[
        &[0x01, 0x01, 0x2c, 0, 0, 0], // body 44 = 8 + 10 + 6 + 8 + 8 + 4
        &le64(7),
        &USER_NS,
        &[2, 0, 0, 0],
        b"s2",
        &le64(1 << 30),
        &[0x01, 0xf1, 0x53, 0x65, 0x00, 0x65, 0xcd, 0x1d], // 1_700_000_001 s, 500_000_000 ns
        &[0, 0, 0, 0],
    ]);
    same(&out, &expected);
    assert_eq!(
        client::decode_snapshot_get(&out).unwrap(),
        SnapshotInfo {
            id: 7,
            snapshot_namespace: SnapshotNamespace::User,
            name: "s2".into(),
            image_size: 1 << 30,
            timestamp: UTime { sec: 1_700_000_001, nsec: 500_000_000 },
            child_count: 0,
        }
    );

    // get_snapcontext: seq 7, ids newest first.
    let out = io.exec(HEADER, "rbd", method::GET_SNAPCONTEXT, &[]).await.unwrap();
    same(&out, &cat(&[&le64(7), &[2, 0, 0, 0], &le64(7), &le64(4)]));
    assert_eq!(client::decode_get_snapcontext(&out).unwrap(), SnapContext { seq: 7, snaps: vec![7, 4] });

    // get_protection_status(4): one byte.
    same(
        &io.exec(HEADER, "rbd", method::GET_PROTECTION_STATUS, &client::encode_snap_id(4)).await.unwrap(),
        &[0],
    );
}

#[tokio::test]
async fn s0_1_id_object_and_directory_contents() {
    let (_clock, io) = setup();
    io.create("rbd_id.vm1", true).await.unwrap();
    client::set_id(&io, "rbd_id.vm1", ID).await.unwrap();
    // rbd_id.<name> holds the id as an encoded string in its data.
    same(&io.read("rbd_id.vm1", 0, 0).await.unwrap(), &cat(&[&[12, 0, 0, 0], ID.as_bytes()]));
    same(
        &io.exec("rbd_id.vm1", "rbd", method::GET_ID, &[]).await.unwrap(),
        &cat(&[&[12, 0, 0, 0], ID.as_bytes()]),
    );

    client::dir_add_image(&io, "rbd_directory", "vm1", ID).await.unwrap();
    let m = omap(&io, "rbd_directory").await;
    assert_eq!(m.len(), 2);
    same(&m["name_vm1"], &cat(&[&[12, 0, 0, 0], ID.as_bytes()]));
    same(&m["id_10226b8b4567"], &cat(&[&[3, 0, 0, 0], b"vm1"]));

    // dir_list: map<string name, string id>.
    let out = io.exec("rbd_directory", "rbd", method::DIR_LIST, &client::encode_list("", 64)).await.unwrap();
    same(&out, &cat(&[&[1, 0, 0, 0], &[3, 0, 0, 0], b"vm1", &[12, 0, 0, 0], ID.as_bytes()]));
}

#[tokio::test]
async fn s6_1_metadata_storage_and_outputs() {
    let (_clock, io) = setup();
    client::create_image(&io, HEADER, 0, 22, 0, PREFIX, -1).await.unwrap();
    let data = BTreeMap::from([("conf_rbd_cache".to_string(), b"false".to_vec())]);
    client::metadata_set(&io, HEADER, &data).await.unwrap();
    // Stored raw (no length prefix) under metadata_<key>.
    same(&omap(&io, HEADER).await["metadata_conf_rbd_cache"], b"false");
    // metadata_get returns it length-prefixed.
    let out =
        io.exec(HEADER, "rbd", method::METADATA_GET, &client::encode_string("conf_rbd_cache")).await.unwrap();
    same(&out, &cat(&[&[5, 0, 0, 0], b"false"]));
    // metadata_list: map<string, bytes> with the prefix stripped.
    let out = io.exec(HEADER, "rbd", method::METADATA_LIST, &client::encode_list("", 0)).await.unwrap();
    same(&out, &cat(&[&[1, 0, 0, 0], &[14, 0, 0, 0], b"conf_rbd_cache", &[5, 0, 0, 0], b"false"]));
}

// ---------------------------------------------------------------------------------------------
// Older encodings the decoders must accept

#[test]
fn s6_1_legacy_snapshot_record_with_embedded_parent() {
    // A Luminous-era record: v6, compat 1, with the unused feature word and a v1 parent.
    let parent_v1 = cat(&[
        &[0x01, 0x01, 0x1f, 0, 0, 0], // body 31 = 8 + 7 + 8 + 8
        &le64(2),                     // parent pool
        &[3, 0, 0, 0],
        b"pid",         // parent image id
        &le64(9),       // parent snapshot
        &le64(1 << 20), // overlap
    ]);
    let body = cat(&[
        &le64(5),
        &[2, 0, 0, 0],
        b"s5",
        &le64(1 << 21),
        &le64(0x3d), // features (unused)
        &parent_v1,
        &[0x02],  // protected
        &le64(1), // flags
        &USER_NS,
        &[1, 0, 0, 0, 2, 0, 0, 0], // timestamp 1 s 2 ns
    ]);
    let bytes = cat(&[&[0x06, 0x01], &(body.len() as u32).to_le_bytes(), &body]);
    let rec = decode_all::<SnapshotRecord>(&bytes).unwrap();
    assert_eq!(rec.id, 5);
    assert_eq!(rec.protection_status, 2);
    assert_eq!(rec.flags, 1);
    assert_eq!(rec.timestamp, UTime { sec: 1, nsec: 2 });
    assert_eq!(rec.child_count, 0);
    assert_eq!(
        rec.legacy_parent,
        ParentLink {
            pool_id: 2,
            pool_namespace: String::new(),
            image_id: "pid".into(),
            snap_id: 9,
            head_overlap: Some(1 << 20)
        }
    );
}

#[test]
fn s6_1_parent_link_v2_bytes() {
    let link = ParentLink {
        pool_id: 2,
        pool_namespace: "ns".into(),
        image_id: "pid".into(),
        snap_id: 9,
        head_overlap: None,
    };
    let expected = cat(&[
        &[0x02, 0x02, 0x1e, 0, 0, 0], // body 30 = 8 + 6 + 7 + 8 + 1
        &le64(2),
        &[2, 0, 0, 0],
        b"ns",
        &[3, 0, 0, 0],
        b"pid",
        &le64(9),
        &[0x00],
    ]);
    same(&encode_to_vec(&link), &expected);
    assert_eq!(decode_all::<ParentLink>(&expected), Ok(link));
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes

fn arb_ns() -> impl Strategy<Value = SnapshotNamespace> {
    prop_oneof![
        Just(SnapshotNamespace::User),
        (any::<i64>(), ".{0,6}", ".{0,6}").prop_map(|(group_pool, group_id, group_snapshot_id)| {
            SnapshotNamespace::Group { group_pool, group_id, group_snapshot_id }
        }),
        (".{0,6}", any::<u32>()).prop_map(|(original_name, t)| SnapshotNamespace::Trash {
            original_name,
            original_namespace_type: SnapshotNamespaceType::from_wire(t),
        }),
        (any::<u8>(), any::<bool>(), proptest::collection::btree_set(".{0,4}", 0..3), any::<u64>()).prop_map(
            |(s, complete, peers, id)| SnapshotNamespace::Mirror(MirrorSnapshotNamespace {
                state: MirrorSnapshotState::from_wire(s),
                complete,
                mirror_peer_uuids: peers,
                primary_snap_id: id,
                ..Default::default()
            })
        ),
        (4u32..).prop_map(|namespace_type| SnapshotNamespace::Unknown { namespace_type }),
    ]
}

const ALL_METHODS: [&str; 30] = [
    method::CREATE,
    method::GET_SIZE,
    method::SET_SIZE,
    method::GET_FEATURES,
    method::SET_FEATURES,
    method::GET_OBJECT_PREFIX,
    method::GET_DATA_POOL,
    method::GET_FLAGS,
    method::OP_FEATURES_GET,
    method::GET_SNAPCONTEXT,
    method::SNAPSHOT_GET,
    method::SNAPSHOT_ADD,
    method::SNAPSHOT_REMOVE,
    method::SNAPSHOT_RENAME,
    method::GET_PROTECTION_STATUS,
    method::SET_PROTECTION_STATUS,
    method::SNAPSHOT_GET_LIMIT,
    method::SNAPSHOT_SET_LIMIT,
    method::METADATA_SET,
    method::METADATA_GET,
    method::METADATA_LIST,
    method::METADATA_REMOVE,
    method::GET_ID,
    method::SET_ID,
    method::DIR_ADD_IMAGE,
    method::DIR_REMOVE_IMAGE,
    method::DIR_RENAME_IMAGE,
    method::DIR_GET_ID,
    method::DIR_GET_NAME,
    method::DIR_LIST,
];

/// Every errno the class may answer with (cls_rbd's own plus the OSD's).
const ALLOWED: [i32; 12] = [
    errno::EINVAL,
    errno::ENOENT,
    errno::EEXIST,
    errno::ESTALE,
    errno::EDQUOT,
    errno::EBUSY,
    errno::ERANGE,
    errno::EIO,
    rbd_errno::ENOEXEC,
    rbd_errno::ENOSYS,
    rbd_errno::EBADF,
    errno::ENODATA,
];

#[test]
fn every_method_is_registered_with_the_builtin_classes() {
    let reg = rados_store::ClassRegistry::with_builtin_classes();
    for m in ALL_METHODS {
        assert!(reg.lookup(rbd::CLASS, m).is_ok(), "rbd.{m}");
    }
    assert!(reg.lookup(rbd::CLASS, method::GET_SIZE).is_ok_and(|e| !e.is_write()));
    assert!(reg.lookup(rbd::CLASS, method::SNAPSHOT_ADD).is_ok_and(|e| e.is_write()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_client_decoders_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = client::decode_get_size(&bytes);
        let _ = client::decode_get_features(&bytes);
        let _ = client::decode_u64(&bytes);
        let _ = client::decode_get_data_pool(&bytes);
        let _ = client::decode_string(&bytes);
        let _ = client::decode_get_snapcontext(&bytes);
        let _ = client::decode_snapshot_get(&bytes);
        let _ = client::decode_get_protection_status(&bytes);
        let _ = client::decode_metadata_get(&bytes);
        let _ = client::decode_metadata_list(&bytes);
        let _ = client::decode_dir_list(&bytes);
        let _ = SnapshotRecord::decode(&mut Decoder::new(&bytes));
        let _ = ParentLink::decode(&mut Decoder::new(&bytes));
        let _ = SnapshotNamespace::decode(&mut Decoder::new(&bytes));
        // Any error a decoder reports for a reply is -EBADMSG.
        if let Err(e) = client::decode_dir_list(&bytes) {
            prop_assert_eq!(e.errno(), errno::EBADMSG);
        }
    }

    #[test]
    fn prop_records_round_trip(
        id in any::<u64>(), name in ".{0,8}", size in any::<u64>(), prot in any::<u8>(), flags in any::<u64>(),
        ns in arb_ns(), sec in any::<u32>(), nsec in any::<u32>(), children in any::<u32>(),
        overlap in proptest::option::of(any::<u64>()),
    ) {
        let rec = SnapshotRecord {
            id, name: name.clone(), image_size: size, protection_status: prot, flags,
            timestamp: UTime { sec, nsec }, snapshot_namespace: ns.clone(), child_count: children,
            parent_overlap: overlap, ..SnapshotRecord::default()
        };
        prop_assert_eq!(decode_all::<SnapshotRecord>(&encode_to_vec(&rec)), Ok(rec.clone()));
        let info = rec.info();
        prop_assert_eq!(client::decode_snapshot_get(&encode_to_vec(&info)).unwrap(), info);
        // The snapshot_add input carries the namespace the record will hold.
        let input = client::encode_snapshot_add(id, &name, &ns);
        let mut d = Decoder::new(&input);
        prop_assert_eq!(d.string().unwrap(), name);
        prop_assert_eq!(d.u64().unwrap(), id);
        prop_assert_eq!(SnapshotNamespace::decode(&mut d).unwrap(), ns);
    }

    #[test]
    fn prop_methods_survive_arbitrary_input(
        which in 0..ALL_METHODS.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..48),
        on_header in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (_clock, io) = setup();
            client::create_image(&io, HEADER, 1 << 22, 22, features::LAYERING, PREFIX, -1).await.unwrap();
            client::snapshot_add(&io, HEADER, 1, "s", &SnapshotNamespace::User).await.unwrap();
            client::dir_add_image(&io, "rbd_directory", "vm1", ID).await.unwrap();
            let oid = if on_header { HEADER } else { "rbd_directory" };
            let before = omap(&io, oid).await;
            match io.exec(oid, "rbd", ALL_METHODS[which], &bytes).await {
                Ok(_) => {}
                Err(e) => {
                    prop_assert!(ALLOWED.contains(&e.errno()), "{} answered {:?}", ALL_METHODS[which], e);
                    // A failed method leaves the object as it was.
                    prop_assert_eq!(omap(&io, oid).await, before);
                }
            }
            Ok(())
        })?;
    }
}
