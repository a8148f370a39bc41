//! The typed cls_lock client end to end: `IoCtx::exec` on the embedded cluster, the registered
//! `lock` class, and a simulated clock (rbd spec §1.3, §1.6, §6; real-ceph-observed §3, §5).

use std::sync::Arc;
use std::time::Duration;

use rados_store::cls_lock_client::{
    self as cls, AssertOp, LOCK_FLAG_MAY_RENEW, LockOp, LockType, SetCookieOp,
};
use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, EntityAddr, IoCtx, ReadOp, ReadResult, Result, SimClock, WriteOp};

const EXCL: LockType = LockType::Exclusive;

struct Setup {
    clock: Arc<SimClock>,
    cluster: Cluster,
    a: IoCtx,
    b: IoCtx,
}

fn setup() -> Setup {
    let clock = Arc::new(SimClock::new());
    let cluster = Cluster::with_clock(clock.clone(), ClusterConfig::default());
    cluster.create_pool("rbd").unwrap();
    let a = cluster.connect().ioctx("rbd", "").unwrap();
    let b = cluster.connect().ioctx("rbd", "").unwrap();
    Setup { clock, cluster, a, b }
}

#[track_caller]
fn assert_errno<T: std::fmt::Debug>(r: Result<T>, code: i32) {
    match r {
        Err(e) => assert_eq!(e.errno(), code, "expected errno {code}, got {e:?}"),
        Ok(v) => panic!("expected errno {code}, got Ok({v:?})"),
    }
}

async fn lock(io: &IoCtx, cookie: &str, lease: Duration, flags: u8) -> Result<()> {
    cls::lock(io, "obj", "mylock", EXCL, cookie, "", "desc", lease, flags).await
}

#[tokio::test]
async fn real_ceph_s5_lock_sequence() {
    let s = setup();
    let never = Duration::ZERO;
    // A lock_exclusive -> Ok; again -> EEXIST; B -> EBUSY; A with RENEW -> Ok.
    lock(&s.a, "cookieA", never, 0).await.unwrap();
    assert_errno(lock(&s.a, "cookieA", never, 0).await, errno::EEXIST);
    assert_errno(lock(&s.b, "cookieB", never, 0).await, errno::EBUSY);
    lock(&s.a, "cookieA", never, LOCK_FLAG_MAY_RENEW).await.unwrap();
    // B unlock with A's cookie -> ENOENT (keyed by client + cookie, real-ceph §3).
    assert_errno(cls::unlock(&s.b, "obj", "mylock", "cookieA").await, errno::ENOENT);
    cls::unlock(&s.a, "obj", "mylock", "cookieA").await.unwrap();

    // B takes a 2 s lease; A gets the lock only once it has lapsed.
    lock(&s.b, "cookieB", Duration::from_secs(2), 0).await.unwrap();
    s.clock.advance(Duration::from_secs(2));
    assert_errno(lock(&s.a, "cookieA", never, 0).await, errno::EBUSY);
    s.clock.advance(Duration::from_millis(40));
    lock(&s.a, "cookieA", never, 0).await.unwrap();
    // B unlock (expired) -> ENOENT; B break_lock(A) -> Ok.
    assert_errno(cls::unlock(&s.b, "obj", "mylock", "cookieB").await, errno::ENOENT);
    cls::break_lock(&s.b, "obj", "mylock", "cookieA", s.a.entity()).await.unwrap();
    assert!(cls::get_lock_info(&s.a, "obj", "mylock").await.unwrap().lockers.is_empty());
}

#[tokio::test]
async fn s6_get_lock_info_reports_entity_cookie_and_legacy_address() {
    let s = setup();
    assert_errno(cls::get_lock_info(&s.a, "rbd_header.1", "rbd_lock").await, errno::ENOENT);
    let cookie = "auto 94532197312512";
    cls::lock(&s.a, "rbd_header.1", "rbd_lock", EXCL, cookie, "internal", "", Duration::ZERO, 0)
        .await
        .unwrap();
    let info = cls::get_lock_info(&s.b, "rbd_header.1", "rbd_lock").await.unwrap();
    assert_eq!((info.lock_type, info.tag.as_str()), (EXCL, "internal"));
    let (id, l) = info.lockers.iter().next().unwrap();
    assert_eq!(id.entity, s.a.entity());
    assert_eq!(id.entity.to_string(), format!("client.{}", s.a.client_gid()));
    assert_eq!(id.cookie, cookie);
    assert_eq!(l.addr.addr_type, EntityAddr::TYPE_LEGACY);
    assert_eq!(l.addr.to_string(), s.a.addr().to_string(), "librbd compares this string with watchers'");
    assert!(l.expiration.is_zero());
    // The state is where Ceph keeps it.
    assert!(s.b.getxattr("rbd_header.1", "lock.rbd_lock").await.is_ok());
}

#[tokio::test]
async fn s6_list_locks_and_lease_expiry_follow_the_cluster_clock() {
    let s = setup();
    assert_errno(cls::list_locks(&s.a, "obj").await, errno::ENOENT);
    cls::lock(&s.a, "obj", "b", LockType::Shared, "c", "", "", Duration::from_secs(10), 0).await.unwrap();
    cls::lock(&s.b, "obj", "b", LockType::Shared, "c", "", "", Duration::ZERO, 0).await.unwrap();
    cls::lock(&s.a, "obj", "a", EXCL, "c", "", "", Duration::ZERO, 0).await.unwrap();
    assert_eq!(cls::list_locks(&s.b, "obj").await.unwrap(), vec!["a".to_owned(), "b".to_owned()]);
    let info = cls::get_lock_info(&s.b, "obj", "b").await.unwrap();
    let exp = info.lockers.iter().find(|(id, _)| id.entity == s.a.entity()).unwrap().1.expiration;
    assert_eq!(exp, s.clock.now().saturating_add(Duration::from_secs(10)));
    s.clock.advance(Duration::from_secs(11));
    let info = cls::get_lock_info(&s.b, "obj", "b").await.unwrap();
    assert_eq!(info.lockers.keys().map(|k| k.entity).collect::<Vec<_>>(), vec![s.b.entity()]);
}

#[tokio::test]
async fn s1_3_assert_locked_and_set_cookie_through_the_client() {
    let s = setup();
    let oid = "rbd_header.2";
    cls::lock(&s.a, oid, "rbd_lock", EXCL, "auto 1", "internal", "", Duration::ZERO, 0).await.unwrap();
    cls::assert_locked(&s.a, oid, "rbd_lock", EXCL, "auto 1", "internal").await.unwrap();
    assert_errno(cls::assert_locked(&s.b, oid, "rbd_lock", EXCL, "auto 1", "internal").await, errno::EBUSY);
    assert_errno(
        cls::assert_locked(&s.a, "missing", "rbd_lock", EXCL, "auto 1", "internal").await,
        errno::ENOENT,
    );
    // §1.6.5 reacquire after a re-watch.
    cls::set_cookie(&s.a, oid, "rbd_lock", EXCL, "auto 1", "internal", "auto 2").await.unwrap();
    assert_errno(cls::assert_locked(&s.a, oid, "rbd_lock", EXCL, "auto 1", "internal").await, errno::EBUSY);
    cls::assert_locked(&s.a, oid, "rbd_lock", EXCL, "auto 2", "internal").await.unwrap();
    assert_errno(
        cls::set_cookie(&s.b, oid, "rbd_lock", EXCL, "auto 2", "internal", "auto 3").await,
        errno::EBUSY,
    );
}

#[tokio::test]
async fn s1_3_assert_locked_guards_a_compound_write() {
    let s = setup();
    let oid = "rbd_header.3";
    cls::lock(&s.a, oid, "rbd_lock", EXCL, "auto 1", "internal", "", Duration::ZERO, 0).await.unwrap();
    let guard = |cookie: &str| AssertOp {
        name: "rbd_lock".into(),
        lock_type: EXCL,
        cookie: cookie.into(),
        tag: "internal".into(),
    };
    let write = |cookie: &str, data: &[u8]| {
        cls::write_op_assert_locked(WriteOp::new(), &guard(cookie)).write_full(data.to_vec())
    };
    s.a.operate_write(oid, &write("auto 1", b"owner")).await.unwrap();
    assert_errno(s.b.operate_write(oid, &write("auto 1", b"intruder")).await, errno::EBUSY);
    assert_eq!(s.a.read(oid, 0, 0).await.unwrap(), b"owner");
    // The same guard in a read op, together with get_info (librbd's refresh reads both).
    let read =
        cls::read_op_get_lock_info(cls::read_op_assert_locked(ReadOp::new(), &guard("auto 1")), "rbd_lock");
    let results = s.a.operate_read(oid, &read).await.unwrap();
    let Some(ReadResult::Exec(out)) = results.last() else { panic!("{results:?}") };
    let info = cls::decode_get_info_reply(out).unwrap();
    assert_eq!(info.lockers.keys().next().map(|k| k.cookie.as_str()), Some("auto 1"));
}

#[tokio::test]
async fn s6_lock_ops_in_write_op_vectors() {
    let s = setup();
    let req = LockOp { name: "l".into(), lock_type: EXCL, cookie: "c".into(), ..LockOp::default() };
    // Lock and write atomically; a failing lock (EEXIST) aborts the write too.
    s.a.operate_write("obj", &cls::write_op_lock(WriteOp::new(), &req).write_full(b"one".to_vec()))
        .await
        .unwrap();
    assert_errno(
        s.a.operate_write("obj", &cls::write_op_lock(WriteOp::new(), &req).write_full(b"two".to_vec())).await,
        errno::EEXIST,
    );
    assert_eq!(s.a.read("obj", 0, 0).await.unwrap(), b"one");
    let set = SetCookieOp {
        name: "l".into(),
        lock_type: EXCL,
        cookie: "c".into(),
        tag: String::new(),
        new_cookie: "d".into(),
    };
    s.a.operate_write("obj", &cls::write_op_set_cookie(WriteOp::new(), &set)).await.unwrap();
    assert_errno(
        s.a.operate_write("obj", &cls::write_op_unlock(WriteOp::new(), "l", "c")).await,
        errno::ENOENT,
    );
    s.b.operate_write("obj", &cls::write_op_break_lock(WriteOp::new(), "l", "d", s.a.entity()))
        .await
        .unwrap();
    assert!(cls::get_lock_info(&s.a, "obj", "l").await.unwrap().lockers.is_empty());
}

#[tokio::test]
async fn s6_ephemeral_lock_object_disappears_on_unlock() {
    let s = setup();
    cls::lock(&s.a, "tmp", "l", LockType::ExclusiveEphemeral, "c", "", "", Duration::ZERO, 0).await.unwrap();
    assert!(s.a.exists("tmp").await.unwrap());
    assert_errno(
        cls::lock(&s.b, "tmp", "l", LockType::ExclusiveEphemeral, "d", "", "", Duration::ZERO, 0).await,
        errno::EBUSY,
    );
    cls::unlock(&s.a, "tmp", "l", "c").await.unwrap();
    assert!(!s.a.exists("tmp").await.unwrap());
}

#[tokio::test]
async fn s6_expired_ephemeral_lock_cannot_be_read_but_can_be_retaken() {
    let s = setup();
    cls::lock(&s.a, "tmp", "l", LockType::ExclusiveEphemeral, "c", "", "", Duration::from_secs(5), 0)
        .await
        .unwrap();
    s.a.write("tmp", 0, b"scratch").await.unwrap();
    s.clock.advance(Duration::from_secs(6));
    // get_info is registered RD only; deleting the object from it fails the call with EIO.
    assert_errno(cls::get_lock_info(&s.b, "tmp", "l").await, errno::EIO);
    assert_errno(cls::unlock(&s.a, "tmp", "l", "c").await, errno::ENOENT);
    assert_eq!(s.a.read("tmp", 0, 0).await.unwrap(), b"scratch", "failed calls change nothing");
    cls::lock(&s.b, "tmp", "l", EXCL, "d", "", "", Duration::ZERO, 0).await.unwrap();
    assert_eq!(s.a.read("tmp", 0, 0).await.unwrap(), b"", "the expired ephemeral object was removed first");
}

#[tokio::test]
async fn s1_7_a_dead_clients_lock_stays_until_broken() {
    let s = setup();
    lock(&s.a, "auto 7", Duration::ZERO, 0).await.unwrap();
    s.cluster.kill_client(s.a.client_gid()).unwrap();
    s.clock.advance(Duration::from_secs(3600));
    let info = cls::get_lock_info(&s.b, "obj", "mylock").await.unwrap();
    assert_eq!(info.lockers.keys().next().map(|k| k.entity), Some(s.a.entity()));
    assert_errno(lock(&s.b, "auto 8", Duration::ZERO, 0).await, errno::EBUSY);
    cls::break_lock(&s.b, "obj", "mylock", "auto 7", s.a.entity()).await.unwrap();
    lock(&s.b, "auto 8", Duration::ZERO, 0).await.unwrap();
}

#[tokio::test]
async fn unknown_lock_method_is_eopnotsupp() {
    let s = setup();
    assert_errno(s.a.exec("obj", "lock", "steal", &[]).await, errno::EOPNOTSUPP);
    assert_errno(s.a.exec("obj", "nolock", "lock", &[]).await, errno::EOPNOTSUPP);
    // Garbage input to a real method is EINVAL and creates nothing.
    assert_errno(s.a.exec("obj", "lock", "lock", b"\x01\x01\xff").await, errno::EINVAL);
    assert!(!s.a.exists("obj").await.unwrap());
}
