//! Compound ops and object-class `exec`: all or nothing, as an OSD applies one op vector.
//!
//! librbd's refresh reads header fields and `lock.get_info` in one read op (rbd §6.1), and every
//! cls_lock call is a method that must leave the header untouched when it fails (rbd §6). These
//! tests register their own class to check the atomicity promise independently of cls_lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rados_store::cls_lock_client::{self as lockc, LockType};
use rados_store::error::errno;
use rados_store::{
    CLS_METHOD_RD, CLS_METHOD_WR, ClsContext, Cluster, ClusterConfig, Error, IoCtx, ReadOp, ReadResult,
    Result, SimClock, WriteOp,
};

fn setup() -> (Arc<SimClock>, Cluster, IoCtx) {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    register_test_class(&cluster);
    let io = cluster.connect().ioctx("rbd", "").unwrap();
    (clock, cluster, io)
}

/// Changes data, an xattr and omap, then fails: nothing may stick.
fn write_then_fail(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    ctx.write_full(b"scribbled")?;
    ctx.setxattr("x", b"scribbled")?;
    ctx.omap_set_vals(&BTreeMap::from([("k".to_owned(), b"scribbled".to_vec())]))?;
    Err(Error::Busy("test class refuses".into()))
}

/// Appends the input to the omap key "log" and returns the new value.
fn log_append(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let mut v = match ctx.omap_get_val("log") {
        Ok(v) => v,
        Err(e) if e.errno() == errno::ENOENT => Vec::new(),
        Err(e) => return Err(e),
    };
    v.extend_from_slice(input);
    ctx.omap_set_vals(&BTreeMap::from([("log".to_owned(), v.clone())]))?;
    Ok(v)
}

/// Reports who called and when: "client.N|addr|sec".
fn whoami(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    Ok(format!("{}|{}|{}", ctx.caller_entity(), ctx.caller_addr(), ctx.now().sec).into_bytes())
}

/// Registered read-only, but tries to write.
fn sneaky_write(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    ctx.setxattr("sneaky", b"1")?;
    Ok(Vec::new())
}

/// Returns the xattr named by the input.
fn get_attr(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    ctx.getxattr(std::str::from_utf8(input).map_err(|_| Error::InvalidArgument("utf8".into()))?)
}

fn register_test_class(c: &Cluster) {
    c.register_cls_method("test", "write_then_fail", CLS_METHOD_RD | CLS_METHOD_WR, write_then_fail);
    c.register_cls_method("test", "log_append", CLS_METHOD_RD | CLS_METHOD_WR, log_append);
    c.register_cls_method("test", "whoami", CLS_METHOD_RD, whoami);
    c.register_cls_method("test", "sneaky_write", CLS_METHOD_RD, sneaky_write);
    c.register_cls_method("test", "get_attr", CLS_METHOD_RD, get_attr);
}

/// Everything observable about an object, for before/after comparisons.
async fn snapshot(
    io: &IoCtx,
    oid: &str,
) -> Option<(Vec<u8>, BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>)> {
    if !io.exists(oid).await.unwrap() {
        return None;
    }
    Some((
        io.read(oid, 0, 0).await.unwrap(),
        io.getxattrs(oid).await.unwrap(),
        io.omap_get_vals(oid, "", 1000).await.unwrap().0,
    ))
}

async fn seed(io: &IoCtx) {
    io.operate_write(
        "o",
        &WriteOp::new()
            .write_full(b"original".as_slice())
            .setxattr("a", b"1".as_slice())
            .omap_set([("k", b"v".to_vec())]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn failing_sub_op_leaves_object_unchanged() {
    let (_clock, _c, io) = setup();
    seed(&io).await;
    let before = snapshot(&io, "o").await;
    let failing: Vec<(WriteOp, i32)> = vec![
        (
            WriteOp::new().write_full(b"new".as_slice()).setxattr("b", b"2".as_slice()).create(true),
            errno::EEXIST,
        ),
        (WriteOp::new().append(b"more".as_slice()).omap_clear().remove().remove(), errno::ENOENT),
        (
            WriteOp::new()
                .omap_set([("k2", b"v2".to_vec())])
                .truncate(1)
                .write(u64::MAX - 1, b"xx".as_slice()),
            errno::EFBIG,
        ),
        (WriteOp::new().rmxattr("a").setxattr("", b"".as_slice()), errno::EINVAL),
        (
            WriteOp::new().write_full(b"x".as_slice()).exec("test", "write_then_fail", b"".as_slice()),
            errno::EBUSY,
        ),
        (WriteOp::new().write_full(b"x".as_slice()).exec("nope", "m", b"".as_slice()), errno::EOPNOTSUPP),
    ];
    for (op, want) in failing {
        let err = io.operate_write("o", &op).await.unwrap_err();
        assert_eq!(err.errno(), want, "{op:?}");
        assert_eq!(snapshot(&io, "o").await, before, "{op:?} left a trace");
    }
}

#[tokio::test]
async fn failing_vector_on_missing_object_does_not_create_it() {
    let (_clock, _c, io) = setup();
    let op = WriteOp::new()
        .setxattr("a", b"1".as_slice())
        .write(0, b"data".as_slice())
        .assert_exists()
        .create(true);
    // The earlier sub-ops create the object, so the exclusive create at the end fails, and the
    // whole vector, creation included, must vanish.
    assert_eq!(io.operate_write("o", &op).await.unwrap_err().errno(), errno::EEXIST);
    assert_eq!(snapshot(&io, "o").await, None);
    assert!(io.list_objects().await.unwrap().is_empty());
}

#[tokio::test]
async fn sub_ops_see_earlier_ones_in_order() {
    let (_clock, _c, io) = setup();
    seed(&io).await;
    // Remove then recreate in one vector: xattrs and omap from before are gone.
    io.operate_write("o", &WriteOp::new().remove().create(true).append(b"fresh".as_slice())).await.unwrap();
    assert_eq!(snapshot(&io, "o").await, Some((b"fresh".to_vec(), BTreeMap::new(), BTreeMap::new())));
    // But a method's omap reads do not see omap keys written earlier in the same vector: an OSD
    // serves omap reads from its object store, not from the transaction being built (the reason
    // cls_rbd methods read before they write). "log" was not committed, so the method starts
    // from nothing and its own write replaces the earlier one.
    io.operate_write(
        "o",
        &WriteOp::new().omap_set([("log", b"ab".to_vec())]).exec("test", "log_append", b"cd".as_slice()),
    )
    .await
    .unwrap();
    assert_eq!(io.omap_get_vals_by_keys("o", &["log"]).await.unwrap()["log"], b"cd");
    // Once committed, the next op's method does see it.
    io.operate_write("o", &WriteOp::new().exec("test", "log_append", b"ef".as_slice())).await.unwrap();
    assert_eq!(io.omap_get_vals_by_keys("o", &["log"]).await.unwrap()["log"], b"cdef");
    // An empty vector changes nothing and does not create.
    io.operate_write("empty", &WriteOp::new()).await.unwrap();
    assert!(!io.exists("empty").await.unwrap());
}

#[tokio::test]
async fn compound_read_is_one_consistent_view() {
    let (_clock, _c, io) = setup();
    seed(&io).await;
    let op = ReadOp::new()
        .stat()
        .read(0, 4)
        .getxattr("a")
        .getxattrs()
        .omap_get_vals("", "", 10)
        .omap_get_keys("", 10)
        .omap_get_vals_by_keys(["k", "zz"])
        .assert_exists()
        .exec("test", "get_attr", b"a".as_slice());
    let r = io.operate_read("o", &op).await.unwrap();
    assert_eq!(r.len(), 9);
    assert!(matches!(r[0], ReadResult::Stat(s) if s.size == 8));
    assert_eq!(r[1], ReadResult::Data(b"orig".to_vec()));
    assert_eq!(r[2], ReadResult::Xattr(b"1".to_vec()));
    assert_eq!(
        r[6],
        ReadResult::OmapVals { entries: BTreeMap::from([("k".into(), b"v".to_vec())]), more: false }
    );
    assert_eq!(r[7], ReadResult::Exists);
    assert_eq!(r[8], ReadResult::Exec(b"1".to_vec()));

    // One failing sub-read fails the vector.
    let bad = ReadOp::new().stat().getxattr("missing");
    assert_eq!(io.operate_read("o", &bad).await.unwrap_err().errno(), errno::ENODATA);
    // A read op on a missing object fails before anything runs.
    assert_eq!(io.operate_read("nope", &ReadOp::new().stat()).await.unwrap_err().errno(), errno::ENOENT);
    // A method that may write is refused inside a read op.
    let w = ReadOp::new().exec("test", "log_append", b"x".as_slice());
    assert_eq!(io.operate_read("o", &w).await.unwrap_err().errno(), errno::EINVAL);
}

#[tokio::test]
async fn exec_failure_has_no_effect() {
    let (_clock, _c, io) = setup();
    seed(&io).await;
    let before = snapshot(&io, "o").await;
    assert_eq!(io.exec("o", "test", "write_then_fail", b"").await.unwrap_err().errno(), errno::EBUSY);
    assert_eq!(snapshot(&io, "o").await, before);
    // On a missing object the failing method must not leave an object behind.
    assert_eq!(io.exec("fresh", "test", "write_then_fail", b"").await.unwrap_err().errno(), errno::EBUSY);
    assert_eq!(snapshot(&io, "fresh").await, None);
}

#[tokio::test]
async fn exec_success_applies_and_returns_output() {
    let (_clock, _c, io) = setup();
    assert_eq!(io.exec("o", "test", "log_append", b"ab").await.unwrap(), b"ab");
    assert_eq!(io.exec("o", "test", "log_append", b"cd").await.unwrap(), b"abcd");
    assert_eq!(io.omap_get_vals_by_keys("o", &["log"]).await.unwrap()["log"], b"abcd");
}

#[tokio::test]
async fn exec_unknown_class_or_method_is_eopnotsupp() {
    let (_clock, _c, io) = setup();
    io.create("o", true).await.unwrap();
    assert_eq!(io.exec("o", "nope", "m", b"").await.unwrap_err().errno(), errno::EOPNOTSUPP);
    assert_eq!(io.exec("o", "test", "nope", b"").await.unwrap_err().errno(), errno::EOPNOTSUPP);
    assert_eq!(io.exec("o", "lock", "nope", b"").await.unwrap_err().errno(), errno::EOPNOTSUPP);
}

#[tokio::test]
async fn read_only_method_rules() {
    let (clock, _c, io) = setup();
    // A read method on a missing object: -ENOENT before it runs (rbd §6: get_info needs the header).
    assert_eq!(io.exec("o", "test", "whoami", b"").await.unwrap_err().errno(), errno::ENOENT);
    io.create("o", true).await.unwrap();
    let out = String::from_utf8(io.exec("o", "test", "whoami", b"").await.unwrap()).unwrap();
    assert_eq!(out, format!("{}|{}|{}", io.entity(), io.addr(), clock.now().sec));
    // A read method that writes gets -EIO and changes nothing.
    assert_eq!(io.exec("o", "test", "sneaky_write", b"").await.unwrap_err().errno(), errno::EIO);
    assert_eq!(io.getxattrs("o").await.unwrap(), BTreeMap::new());
}

#[tokio::test]
async fn builtin_lock_class_expiry_follows_the_cluster_clock() {
    // rbd §6: expired lockers are dropped on every read; "now" is the cluster's clock.
    let (clock, c, a) = setup();
    let b = c.connect().ioctx("rbd", "").unwrap();
    let hdr = "rbd_header.1";
    lockc::lock(&a, hdr, "l", LockType::Exclusive, "ca", "", "", Duration::from_secs(2), 0).await.unwrap();
    assert!(a.exists(hdr).await.unwrap(), "lock creates the object");
    let busy = lockc::lock(&b, hdr, "l", LockType::Exclusive, "cb", "", "", Duration::ZERO, 0).await;
    assert_eq!(busy.unwrap_err().errno(), errno::EBUSY);
    clock.advance(Duration::from_millis(2001));
    lockc::lock(&b, hdr, "l", LockType::Exclusive, "cb", "", "", Duration::ZERO, 0).await.unwrap();
    let info = lockc::get_lock_info(&a, hdr, "l").await.unwrap();
    assert_eq!(info.lockers.len(), 1);
    let (id, locker) = info.lockers.iter().next().unwrap();
    assert_eq!(id.entity, b.entity());
    assert_eq!(locker.addr.to_string(), b.addr().to_string());
}
