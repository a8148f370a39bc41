//! Object data, xattrs, omap and compound-op atomicity on a real Ceph 16.2 cluster through the
//! librados backend (issue 11; rbd §6.1 relies on compound ops being all-or-nothing).
//!
//! Runs only with `--features librados` and `CEPH_CONF` set (see `librados_support`).
#![cfg(feature = "librados")]

mod librados_support;

use std::collections::BTreeMap;

use librados_support as support;
use rados_store::error::errno;
use rados_store::{Error, ReadOp, ReadResult, WriteOp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_data_ops_behave_as_on_an_osd() {
    let Some(cfg) = support::config("object_data_ops_behave_as_on_an_osd") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("objects"));

    io.write_full("a", b"hello").await.unwrap();
    assert_eq!(io.read("a", 0, 0).await.unwrap(), b"hello");
    assert_eq!(io.read("a", 1, 3).await.unwrap(), b"ell");
    assert_eq!(io.stat("a").await.unwrap().size, 5);
    let mtime = io.stat("a").await.unwrap().mtime;
    let now = client.now();
    assert!(mtime.sec + 60 > now.sec && mtime.sec <= now.sec + 60, "mtime {mtime} vs now {now}");

    io.append("a", b" world").await.unwrap();
    assert_eq!(io.read("a", 0, 0).await.unwrap(), b"hello world");
    // A write past the end zero-fills the gap.
    io.write("a", 13, b"!").await.unwrap();
    assert_eq!(io.read("a", 0, 0).await.unwrap(), b"hello world\0\0!");
    io.zero("a", 0, 5).await.unwrap();
    assert_eq!(io.read("a", 0, 5).await.unwrap(), [0u8; 5]);
    io.truncate("a", 3).await.unwrap();
    assert_eq!(io.stat("a").await.unwrap().size, 3);
    // Reading past the end returns nothing, not an error.
    assert_eq!(io.read("a", 100, 10).await.unwrap(), b"");

    assert_eq!(io.create("a", true).await.unwrap_err().errno(), errno::EEXIST);
    io.create("a", false).await.unwrap();
    io.create("b", true).await.unwrap();
    assert_eq!(io.stat("b").await.unwrap().size, 0);

    assert!(io.exists("a").await.unwrap());
    io.remove("a").await.unwrap();
    assert!(!io.exists("a").await.unwrap());
    assert!(matches!(io.read("a", 0, 0).await, Err(Error::NotFound(_))));
    assert!(matches!(io.remove("a").await, Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_ended_and_oversized_reads_return_the_whole_object() {
    let Some(cfg) = support::config("open_ended_and_oversized_reads_return_the_whole_object") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("bigread"));
    // Larger than the backend's first guess for open-ended reads, so the sizing retry runs.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    io.write_full("big", &data).await.unwrap();
    assert_eq!(io.read("big", 0, 0).await.unwrap(), data);
    assert_eq!(io.read("big", 1000, 0).await.unwrap(), &data[1000..]);
    // A length far beyond the object (and beyond the direct-read bound) is not allocated.
    assert_eq!(io.read("big", 10, 1 << 40).await.unwrap(), &data[10..]);
    assert_eq!(io.read("big", 5, 10).await.unwrap(), &data[5..15]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_per_namespace_and_sorted() {
    let Some(cfg) = support::config("listing_is_per_namespace_and_sorted") else { return };
    let client = support::connect(&cfg).await;
    let ns = support::unique_namespace("list");
    let io = support::ioctx(&client, &ns);
    for name in ["c", "a", "b"] {
        io.write_full(name, b"x").await.unwrap();
    }
    assert_eq!(io.list_objects().await.unwrap(), vec!["a", "b", "c"]);
    let all = io.list_objects_all_namespaces().await.unwrap();
    let ours: Vec<&str> = all.iter().filter(|(n, _)| n == &ns).map(|(_, o)| o.as_str()).collect();
    assert_eq!(ours, vec!["a", "b", "c"]);
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "listing is sorted");

    // Pools: lookup of a missing one, and creating one that exists.
    assert!(matches!(client.ioctx("cephlock-no-such-pool", ""), Err(Error::NotFound(_))));
    assert_eq!(client.pool_create(&support::pool()).await.unwrap_err().errno(), errno::EEXIST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_round_trip() {
    let Some(cfg) = support::config("xattrs_round_trip") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("xattr"));

    assert!(matches!(io.getxattr("o", "k").await, Err(Error::NotFound(_))));
    io.setxattr("o", "k", b"v1").await.unwrap();
    io.setxattr("o", "bin", &[0, 255, 0]).await.unwrap();
    assert_eq!(io.getxattr("o", "k").await.unwrap(), b"v1");
    let all = io.getxattrs("o").await.unwrap();
    assert_eq!(all.get("k").map(Vec::as_slice), Some(&b"v1"[..]));
    assert_eq!(all.get("bin").map(Vec::as_slice), Some(&[0u8, 255, 0][..]));
    assert_eq!(io.getxattr("o", "missing").await.unwrap_err().errno(), errno::ENODATA);
    io.rmxattr("o", "k").await.unwrap();
    assert_eq!(io.getxattr("o", "k").await.unwrap_err().errno(), errno::ENODATA);
    // Setting an xattr created the object, with no data.
    assert_eq!(io.stat("o").await.unwrap().size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omap_paging_prefix_and_removal() {
    let Some(cfg) = support::config("omap_paging_prefix_and_removal") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("omap"));

    let entries: BTreeMap<String, Vec<u8>> = [
        ("snap_a", b"1".to_vec()),
        ("snap_b", vec![0, 1, 2]),
        ("size", b"64".to_vec()),
        ("features", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    io.omap_set("hdr", &entries).await.unwrap();

    let (all, more) = io.omap_get_vals("hdr", "", 100).await.unwrap();
    assert_eq!(all, entries);
    assert!(!more);
    let (page, more) = io.omap_get_vals("hdr", "", 2).await.unwrap();
    assert_eq!(page.keys().collect::<Vec<_>>(), vec!["features", "size"]);
    assert!(more);
    let (page, more) = io.omap_get_vals("hdr", "size", 10).await.unwrap();
    assert_eq!(page.keys().collect::<Vec<_>>(), vec!["snap_a", "snap_b"]);
    assert!(!more);
    let (snaps, _) = io.omap_get_vals_with_prefix("hdr", "", "snap_", 10).await.unwrap();
    assert_eq!(snaps.keys().collect::<Vec<_>>(), vec!["snap_a", "snap_b"]);
    let (keys, more) = io.omap_get_keys("hdr", "features", 10).await.unwrap();
    assert_eq!(keys, vec!["size", "snap_a", "snap_b"]);
    assert!(!more);
    let some = io.omap_get_vals_by_keys("hdr", &["size", "nope"]).await.unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!(some["size"], b"64");

    io.omap_rm_keys("hdr", &["snap_a", "nope"]).await.unwrap();
    assert_eq!(io.omap_get_keys("hdr", "", 10).await.unwrap().0, vec!["features", "size", "snap_b"]);
    io.omap_clear("hdr").await.unwrap();
    assert!(io.omap_get_vals("hdr", "", 10).await.unwrap().0.is_empty());
    assert!(matches!(io.omap_get_vals("missing", "", 10).await, Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sub_op_undoes_the_whole_compound_write() {
    let Some(cfg) = support::config("a_failing_sub_op_undoes_the_whole_compound_write") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("atomic"));
    io.write_full("obj", b"old").await.unwrap();

    // Data, xattr and omap changes followed by a class call that fails (-ENOENT: there is no
    // such lock to release): the OSD applies none of it.
    let op = WriteOp::new()
        .write_full(b"new".to_vec())
        .setxattr("x", b"1".to_vec())
        .omap_set([("k", b"v".to_vec())])
        .exec("lock", "unlock", unlock_input("nolock", "nocookie"));
    let err = io.operate_write("obj", &op).await.unwrap_err();
    assert_eq!(err.errno(), errno::ENOENT, "{err}");
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"old");
    assert!(io.getxattrs("obj").await.unwrap().is_empty());
    assert!(io.omap_get_vals("obj", "", 10).await.unwrap().0.is_empty());

    // assert_exists guards creation.
    let op = WriteOp::new().assert_exists().write_full(b"x".to_vec());
    assert!(matches!(io.operate_write("ghost", &op).await, Err(Error::NotFound(_))));
    assert!(!io.exists("ghost").await.unwrap());

    // An exclusive create fails the vector on an existing object.
    let op = WriteOp::new().create(true).write_full(b"clobbered".to_vec());
    assert_eq!(io.operate_write("obj", &op).await.unwrap_err().errno(), errno::EEXIST);
    assert_eq!(io.read("obj", 0, 0).await.unwrap(), b"old");

    // The successful vector applies every sub-op.
    let op = WriteOp::new()
        .write_full(b"v2".to_vec())
        .setxattr("x", b"2".to_vec())
        .omap_set([("k", b"v".to_vec())]);
    io.operate_write("obj", &op).await.unwrap();

    // And one read vector sees one state of the object, one result per sub-read, in order.
    let rop = ReadOp::new().stat().read(0, 0).getxattr("x").omap_get_vals("", "", 10).assert_exists();
    let results = io.operate_read("obj", &rop).await.unwrap();
    assert_eq!(results.len(), 5);
    assert!(matches!(&results[0], ReadResult::Stat(s) if s.size == 2));
    assert_eq!(results[1], ReadResult::Data(b"v2".to_vec()));
    assert_eq!(results[2], ReadResult::Xattr(b"2".to_vec()));
    assert!(matches!(&results[3], ReadResult::OmapVals { entries, more: false } if entries["k"] == b"v"));
    assert_eq!(results[4], ReadResult::Exists);
    // A missing object fails the whole read vector.
    assert!(matches!(io.operate_read("ghost", &rop).await, Err(Error::NotFound(_))));
    // Empty vectors do nothing.
    io.operate_write("ghost", &WriteOp::new()).await.unwrap();
    assert!(io.operate_read("ghost", &ReadOp::new()).await.unwrap().is_empty());
}

/// `cls_lock_unlock_op` bytes, built with the crate's own typed client.
fn unlock_input(name: &str, cookie: &str) -> Vec<u8> {
    rados_store::cls_lock_client::encode_unlock_op(&rados_store::cls_lock_client::UnlockOp {
        name: name.to_owned(),
        cookie: cookie.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_issued_together_land_in_issue_order() {
    // ClientBackend's contract: calls on one object apply in the order they are first polled.
    // The backend submits to librados inside that first poll, so 64 appends polled in one
    // pass must land in that order even though they complete on other threads.
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    let Some(cfg) = support::config("appends_issued_together_land_in_issue_order") else { return };
    let client = support::connect(&cfg).await;
    let io = support::ioctx(&client, &support::unique_namespace("order"));
    let chunks: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 3]).collect();
    type Append<'a> = Pin<Box<dyn Future<Output = rados_store::Result<()>> + Send + 'a>>;
    let mut pending: Vec<Option<Append<'_>>> =
        chunks.iter().map(|c| Some(Box::pin(io.append("log", c)) as Append<'_>)).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        r.unwrap();
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    assert_eq!(io.read("log", 0, 0).await.unwrap(), chunks.concat());
}
