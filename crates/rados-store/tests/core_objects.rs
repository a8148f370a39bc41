//! Objects, xattrs and omap on the embedded cluster: OSD semantics and errnos.
//!
//! Errnos are the ones librados returns (rbd spec §6 relies on ENOENT/EEXIST/ENODATA;
//! real-ceph §3, §5 show them from a real 16.2 cluster). Name limits are the OSD's
//! (`osd_max_object_name_len` and friends).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, IoCtx, SimClock};

fn setup_with(config: ClusterConfig) -> (Arc<SimClock>, Cluster, IoCtx) {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), config);
    cluster.create_pool("rbd").unwrap();
    let io = cluster.connect().ioctx("rbd", "").unwrap();
    (clock, cluster, io)
}

fn setup() -> (Arc<SimClock>, Cluster, IoCtx) {
    setup_with(ClusterConfig::default())
}

fn kv(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
}

#[tokio::test]
async fn write_read_stat_and_mtime_follow_the_clock() {
    let (clock, _c, io) = setup();
    io.write_full("o", b"hello world").await.unwrap();
    let st = io.stat("o").await.unwrap();
    assert_eq!(st.size, 11);
    assert_eq!(st.mtime, clock.now());
    assert_eq!(io.read("o", 0, 5).await.unwrap(), b"hello");
    assert_eq!(io.read("o", 6, 100).await.unwrap(), b"world", "short read at the end");
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"hello world", "len 0 reads to the end");
    assert_eq!(io.read("o", 50, 4).await.unwrap(), b"", "read past the end is empty");

    clock.advance(Duration::from_secs(7));
    io.append("o", b"!").await.unwrap();
    assert_eq!(io.stat("o").await.unwrap().mtime, clock.now());
}

#[tokio::test]
async fn write_at_offset_zero_fills_and_write_full_keeps_attrs() {
    let (_clock, _c, io) = setup();
    io.write("o", 4, b"ab").await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"\0\0\0\0ab");
    io.setxattr("o", "a", b"1").await.unwrap();
    io.omap_set("o", &kv(&[("k", "v")])).await.unwrap();
    io.write_full("o", b"x").await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"x");
    assert_eq!(io.getxattr("o", "a").await.unwrap(), b"1", "write_full keeps xattrs");
    assert_eq!(io.omap_get_vals("o", "", 10).await.unwrap().0, kv(&[("k", "v")]), "and omap");
}

#[tokio::test]
async fn truncate_zero_and_their_no_op_cases() {
    let (_clock, _c, io) = setup();
    io.write_full("o", b"abcdef").await.unwrap();
    io.truncate("o", 3).await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"abc");
    io.truncate("o", 5).await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"abc\0\0");
    io.zero("o", 1, 100).await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"a\0\0\0\0", "zero never extends the object");
    io.write_full("o", b"abcdef").await.unwrap();
    io.zero("o", 2, 2).await.unwrap();
    assert_eq!(io.read("o", 0, 0).await.unwrap(), b"ab\0\0ef");

    // On a missing object both are no-ops and do not create it.
    io.truncate("missing", 10).await.unwrap();
    io.zero("missing", 0, 10).await.unwrap();
    assert!(!io.exists("missing").await.unwrap());
}

#[tokio::test]
async fn create_remove_exists_errnos() {
    let (_clock, _c, io) = setup();
    assert_eq!(io.stat("o").await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(io.read("o", 0, 1).await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(io.remove("o").await.unwrap_err().errno(), errno::ENOENT);
    assert!(!io.exists("o").await.unwrap());
    io.create("o", true).await.unwrap();
    assert!(io.exists("o").await.unwrap());
    assert_eq!(io.stat("o").await.unwrap().size, 0);
    assert_eq!(io.create("o", true).await.unwrap_err().errno(), errno::EEXIST);
    io.create("o", false).await.unwrap();
    io.remove("o").await.unwrap();
    assert!(!io.exists("o").await.unwrap());
}

#[tokio::test]
async fn object_size_limit_is_efbig() {
    let (_clock, _c, io) = setup_with(ClusterConfig { max_object_size: 16, ..ClusterConfig::default() });
    io.write_full("o", &[1; 16]).await.unwrap();
    for e in [
        io.write("o", 15, b"ab").await,
        io.append("o", b"x").await,
        io.write_full("o", &[0; 17]).await,
        io.truncate("o", 17).await,
        io.zero("o", u64::MAX, 2).await,
        io.write("o", u64::MAX, b"a").await,
    ] {
        assert_eq!(e.unwrap_err().errno(), errno::EFBIG);
    }
    assert_eq!(io.read("o", 0, 0).await.unwrap(), [1; 16]);
}

#[tokio::test]
async fn bad_names_are_typed_errors() {
    let (_clock, c, io) = setup();
    assert_eq!(io.write_full("", b"x").await.unwrap_err().errno(), errno::EINVAL);
    assert_eq!(io.write_full("a\0b", b"x").await.unwrap_err().errno(), errno::EINVAL);
    let long = "o".repeat(2049);
    assert_eq!(io.write_full(&long, b"x").await.unwrap_err().errno(), errno::ENAMETOOLONG);
    assert!(io.write_full(&"o".repeat(2048), b"x").await.is_ok());
    assert_eq!(io.setxattr("o", "", b"x").await.unwrap_err().errno(), errno::EINVAL);
    assert_eq!(io.setxattr("o", &"x".repeat(101), b"x").await.unwrap_err().errno(), errno::ENAMETOOLONG);
    assert_eq!(io.exec("o", "", "m", b"").await.unwrap_err().errno(), errno::EINVAL);
    let client = c.connect();
    assert_eq!(client.ioctx("rbd", "n\0s").unwrap_err().errno(), errno::EINVAL);
    assert_eq!(client.ioctx("rbd", &"n".repeat(257)).unwrap_err().errno(), errno::ENAMETOOLONG);
    assert_eq!(client.ioctx("nopool", "").unwrap_err().errno(), errno::ENOENT);
    assert_eq!(c.create_pool("rbd").unwrap_err().errno(), errno::EEXIST);
    assert_eq!(client.pool_create("").await.unwrap_err().errno(), errno::EINVAL);
}

#[tokio::test]
async fn namespaces_and_pools_isolate_objects_and_listing_is_sorted() {
    let (_clock, c, io) = setup();
    c.create_pool("other").unwrap();
    let client = io.client();
    let ns = client.ioctx("rbd", "ns1").unwrap();
    let other = client.ioctx("other", "").unwrap();
    for name in ["b", "a", "c"] {
        io.write_full(name, b"default").await.unwrap();
    }
    ns.write_full("a", b"ns1").await.unwrap();
    other.write_full("z", b"other").await.unwrap();
    assert_eq!(io.read("a", 0, 0).await.unwrap(), b"default");
    assert_eq!(ns.read("a", 0, 0).await.unwrap(), b"ns1");
    assert_eq!(ns.stat("b").await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(io.list_objects().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(ns.list_objects().await.unwrap(), ["a"]);
    assert_eq!(other.list_objects().await.unwrap(), ["z"]);
    let all = io.list_objects_all_namespaces().await.unwrap();
    let expect: Vec<(String, String)> = [("", "a"), ("", "b"), ("", "c"), ("ns1", "a")]
        .iter()
        .map(|(n, o)| (n.to_string(), o.to_string()))
        .collect();
    assert_eq!(all, expect);
    io.remove("b").await.unwrap();
    assert_eq!(io.list_objects().await.unwrap(), ["a", "c"]);
}

#[tokio::test]
async fn xattr_semantics() {
    let (_clock, _c, io) = setup();
    assert_eq!(io.getxattr("o", "a").await.unwrap_err().errno(), errno::ENOENT, "missing object");
    assert_eq!(io.getxattrs("o").await.unwrap_err().errno(), errno::ENOENT);
    io.setxattr("o", "a", b"1").await.unwrap();
    assert!(io.exists("o").await.unwrap(), "setxattr creates the object");
    assert_eq!(io.getxattr("o", "b").await.unwrap_err().errno(), errno::ENODATA, "missing attribute");
    io.setxattr("o", "b", b"").await.unwrap();
    assert_eq!(io.getxattrs("o").await.unwrap(), kv(&[("a", "1"), ("b", "")]));
    io.rmxattr("o", "a").await.unwrap();
    io.rmxattr("o", "a").await.unwrap();
    assert_eq!(io.getxattrs("o").await.unwrap(), kv(&[("b", "")]));
    // librados' RmXattr test: rmxattr on a removed object is ENOENT.
    io.remove("o").await.unwrap();
    assert_eq!(io.rmxattr("o", "b").await.unwrap_err().errno(), errno::ENOENT);
}

#[tokio::test]
async fn omap_semantics_and_paging() {
    let (_clock, _c, io) = setup();
    assert_eq!(io.omap_get_vals("o", "", 10).await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(io.omap_rm_keys("o", &["a"]).await.unwrap_err().errno(), errno::ENOENT);
    assert_eq!(io.omap_clear("o").await.unwrap_err().errno(), errno::ENOENT);
    io.omap_set("o", &kv(&[("snapshot_01", "s1"), ("snapshot_02", "s2"), ("size", "64"), ("features", "4")]))
        .await
        .unwrap();
    assert!(io.exists("o").await.unwrap(), "omap_set creates the object");

    let (page, more) = io.omap_get_vals("o", "", 2).await.unwrap();
    assert_eq!(page, kv(&[("features", "4"), ("size", "64")]));
    assert!(more);
    let (page, more) = io.omap_get_vals("o", "size", 2).await.unwrap();
    assert_eq!(page, kv(&[("snapshot_01", "s1"), ("snapshot_02", "s2")]));
    assert!(!more);
    let (page, more) = io.omap_get_vals_with_prefix("o", "", "snapshot_", 10).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(!more);
    let (keys, more) = io.omap_get_keys("o", "features", 10).await.unwrap();
    assert_eq!(keys, ["size", "snapshot_01", "snapshot_02"]);
    assert!(!more);
    assert_eq!(io.omap_get_vals_by_keys("o", &["size", "nope"]).await.unwrap(), kv(&[("size", "64")]));

    io.omap_rm_keys("o", &["size", "nope"]).await.unwrap();
    assert_eq!(io.omap_get_keys("o", "", 10).await.unwrap().0, ["features", "snapshot_01", "snapshot_02"]);
    io.omap_clear("o").await.unwrap();
    assert_eq!(io.omap_get_vals("o", "", 10).await.unwrap(), (BTreeMap::new(), false));
}

#[tokio::test]
async fn clients_see_each_others_writes_and_identities_are_distinct() {
    let (_clock, c, a) = setup();
    let b = c.connect().ioctx("rbd", "").unwrap();
    a.write_full("o", b"from a").await.unwrap();
    assert_eq!(b.read("o", 0, 0).await.unwrap(), b"from a");
    assert_ne!(a.client_gid(), b.client_gid());
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.entity().to_string(), format!("client.{}", a.client_gid()));
    // real-ceph §3: clients show as 127.0.0.1:0/<nonce>.
    assert!(a.addr().to_string().starts_with("127.0.0.1:0/"), "{}", a.addr());
    assert_eq!(c.client_addr(a.client_gid()), Some(a.addr()));
}

#[tokio::test]
async fn same_seed_gives_same_identities() {
    let ids = |_: ()| {
        let c =
            Cluster::with_clock(Arc::new(SimClock::new()), ClusterConfig { seed: 42, ..Default::default() });
        (0..3).map(|_| c.connect()).map(|cl| (cl.gid(), cl.addr())).collect::<Vec<_>>()
    };
    assert_eq!(ids(()), ids(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_stay_whole_and_in_each_clients_order() {
    let (_clock, c, io) = setup();
    io.create("log", true).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8u8 {
        let io = c.connect().ioctx("rbd", "").unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u8 {
                // A record is 4 bytes: writer, index, and two check bytes.
                io.append("log", &[w, i, w ^ 0xAA, i ^ 0x55]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = io.read("log", 0, 0).await.unwrap();
    assert_eq!(log.len(), 8 * 50 * 4);
    let mut next = [0u8; 8];
    for rec in log.chunks(4) {
        let (w, i) = (rec[0], rec[1]);
        assert_eq!([rec[2], rec[3]], [w ^ 0xAA, i ^ 0x55], "torn record");
        assert_eq!(i, next[w as usize], "writer {w} out of order");
        next[w as usize] += 1;
    }
}
