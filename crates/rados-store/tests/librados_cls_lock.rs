//! The real OSD's `lock` object class driven through our typed `cls_lock_client` (rbd §4.8,
//! §6): every request is encoded by this crate and every reply decoded by it, so a pass here
//! means our cls_lock encoding is the OSD's. The `rados lock` CLI (a real C++ client) is used
//! as an independent witness in both directions when it is installed.
//!
//! Runs only with `--features librados` and `CEPH_CONF` set (see `librados_support`).
#![cfg(feature = "librados")]

mod librados_support;

use std::time::Duration;

use librados_support as support;
use rados_store::cls_lock_client::{self as cls, AssertOp, LockType};
use rados_store::error::errno;
use rados_store::types::{EntityName, EntityType};
use rados_store::{Error, WriteOp};

const LOCK: &str = "rbd_lock";
const TAG: &str = "internal";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_lock_lifecycle_matches_the_osd_rbd_4_8() {
    let Some(cfg) = support::config("exclusive_lock_lifecycle_matches_the_osd_rbd_4_8") else { return };
    let ns = support::unique_namespace("clslock");
    let a = support::connect(&cfg).await;
    let b = support::connect(&cfg).await;
    let (ia, ib) = (support::ioctx(&a, &ns), support::ioctx(&b, &ns));
    let oid = "rbd_header.1234";
    let cookie_a = "auto 139789844098304";

    // lock creates the object, as on an OSD.
    cls::lock(&ia, oid, LOCK, LockType::Exclusive, cookie_a, TAG, "", Duration::ZERO, 0).await.unwrap();
    assert!(ia.exists(oid).await.unwrap());

    // The OSD's get_info reply decodes into exactly what we asked for: locker client.<gid>,
    // the cookie, the tag, and our address (legacy form).
    let info = cls::get_lock_info(&ib, oid, LOCK).await.unwrap();
    assert_eq!(info.lock_type, LockType::Exclusive);
    assert_eq!(info.tag, TAG);
    assert_eq!(info.lockers.len(), 1);
    let (id, who) = info.lockers.iter().next().unwrap();
    assert_eq!(id.entity, EntityName::client(a.gid()));
    assert_eq!(id.cookie, cookie_a);
    assert!(who.expiration.is_zero());
    assert_eq!(who.addr.to_string(), a.addr().to_string(), "locker address is the client's address");
    assert_eq!(cls::list_locks(&ib, oid).await.unwrap(), vec![LOCK]);

    // Same client and cookie again: EEXIST; another client: EBUSY (real-ceph §3).
    let again = cls::lock(&ia, oid, LOCK, LockType::Exclusive, cookie_a, TAG, "", Duration::ZERO, 0).await;
    assert_eq!(again.unwrap_err().errno(), errno::EEXIST);
    let other = cls::lock(&ib, oid, LOCK, LockType::Exclusive, "auto 1", TAG, "", Duration::ZERO, 0).await;
    assert_eq!(other.unwrap_err().errno(), errno::EBUSY);
    // A lock is keyed by (client, cookie): b cannot unlock a's cookie.
    assert_eq!(cls::unlock(&ib, oid, LOCK, cookie_a).await.unwrap_err().errno(), errno::ENOENT);

    // assert_locked fences writes: the holder's guarded write lands, b's does not.
    let guard = AssertOp {
        name: LOCK.to_owned(),
        lock_type: LockType::Exclusive,
        cookie: cookie_a.to_owned(),
        tag: TAG.to_owned(),
    };
    cls::assert_locked(&ia, oid, LOCK, LockType::Exclusive, cookie_a, TAG).await.unwrap();
    let guarded = cls::write_op_assert_locked(WriteOp::new(), &guard).write_full(b"owner data".to_vec());
    ia.operate_write(oid, &guarded).await.unwrap();
    let intruder = cls::write_op_assert_locked(WriteOp::new(), &guard).write_full(b"x".to_vec());
    assert_eq!(ib.operate_write(oid, &intruder).await.unwrap_err().errno(), errno::EBUSY);
    assert_eq!(ia.read(oid, 0, 0).await.unwrap(), b"owner data");

    // set_cookie re-keys the hold (librbd does this on a watch re-registration).
    let cookie_a2 = "auto 42";
    cls::set_cookie(&ia, oid, LOCK, LockType::Exclusive, cookie_a, TAG, cookie_a2).await.unwrap();
    let info = cls::get_lock_info(&ia, oid, LOCK).await.unwrap();
    assert_eq!(info.lockers.keys().next().unwrap().cookie, cookie_a2);

    // b breaks a's lock (rbd §1.6.3 step 5) and then takes it.
    cls::break_lock(&ib, oid, LOCK, cookie_a2, EntityName::client(a.gid())).await.unwrap();
    assert!(cls::get_lock_info(&ib, oid, LOCK).await.unwrap().lockers.is_empty());
    cls::lock(&ib, oid, LOCK, LockType::Exclusive, "auto 7", TAG, "", Duration::ZERO, 0).await.unwrap();
    cls::unlock(&ib, oid, LOCK, "auto 7").await.unwrap();
    // Unlocking what nobody holds, and asking about a missing object.
    assert_eq!(cls::unlock(&ib, oid, LOCK, "auto 7").await.unwrap_err().errno(), errno::ENOENT);
    assert!(matches!(cls::get_lock_info(&ib, "missing", LOCK).await, Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_locks_tags_and_expiry() {
    let Some(cfg) = support::config("shared_locks_tags_and_expiry") else { return };
    let ns = support::unique_namespace("clsshared");
    let a = support::connect(&cfg).await;
    let b = support::connect(&cfg).await;
    let (ia, ib) = (support::ioctx(&a, &ns), support::ioctx(&b, &ns));

    cls::lock(&ia, "o", "s", LockType::Shared, "ca", "t1", "A", Duration::ZERO, 0).await.unwrap();
    cls::lock(&ib, "o", "s", LockType::Shared, "cb", "t1", "B", Duration::ZERO, 0).await.unwrap();
    // A different tag, or an exclusive request, is refused while shared holders exist.
    let wrong_tag = cls::lock(&ib, "o", "s", LockType::Shared, "cc", "t2", "", Duration::ZERO, 0).await;
    assert_eq!(wrong_tag.unwrap_err().errno(), errno::EBUSY);
    let excl = cls::lock(&ib, "o", "s", LockType::Exclusive, "cd", "t1", "", Duration::ZERO, 0).await;
    assert_eq!(excl.unwrap_err().errno(), errno::EBUSY);
    let info = cls::get_lock_info(&ia, "o", "s").await.unwrap();
    assert_eq!(info.lock_type, LockType::Shared);
    let holders: Vec<(EntityType, i64, &str)> =
        info.lockers.keys().map(|k| (k.entity.kind, k.entity.num, k.cookie.as_str())).collect();
    let mut want =
        vec![(EntityType::Client, a.gid() as i64, "ca"), (EntityType::Client, b.gid() as i64, "cb")];
    want.sort();
    assert_eq!(holders, want, "lockers come back in Ceph's (entity, cookie) order");
    let descs: Vec<&str> = info.lockers.values().map(|v| v.description.as_str()).collect();
    assert!(descs.contains(&"A") && descs.contains(&"B"));

    // A timed lock carries an expiration the OSD computed from its clock.
    cls::lock(&ia, "timed", "t", LockType::Exclusive, "c", "", "", Duration::from_secs(600), 0)
        .await
        .unwrap();
    let info = cls::get_lock_info(&ia, "timed", "t").await.unwrap();
    let exp = info.lockers.values().next().unwrap().expiration;
    let now = a.now();
    assert!(exp.sec >= now.sec + 590 && exp.sec <= now.sec + 610, "expiration {exp} vs now {now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rados_cli_agrees_with_our_encoding_both_ways() {
    let Some(cfg) = support::config("the_rados_cli_agrees_with_our_encoding_both_ways") else { return };
    let ns = support::unique_namespace("clscli");
    let a = support::connect(&cfg).await;
    let io = support::ioctx(&a, &ns);
    let pool = support::pool();
    let cookie = "auto 94038161559408";
    cls::lock(&io, "hdr", LOCK, LockType::Exclusive, cookie, TAG, "ours", Duration::ZERO, 0).await.unwrap();

    // Our lock, read by the C++ tool.
    let Some(json) =
        support::cli("rados", &["-p", &pool, "-N", &ns, "lock", "info", "hdr", LOCK, "--format", "json"])
    else {
        eprintln!("rados CLI not installed: skipping the cross-check");
        return;
    };
    let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
    for needle in [
        r#""type":"exclusive""#.to_owned(),
        format!(r#""tag":"{TAG}""#),
        format!(r#""name":"client.{}""#, a.gid()),
        format!(r#""cookie":"{}""#, cookie.replace(' ', "")),
        r#""description":"ours""#.to_owned(),
        format!(r#""addr":"{}""#, a.addr()),
    ] {
        assert!(compact.contains(&needle), "`rados lock info` lacks {needle}: {json}");
    }

    // A lock taken by the C++ tool, decoded by us.
    support::cli(
        "rados",
        &["-p", &pool, "-N", &ns, "lock", "get", "other", "l2", "--lock-cookie", "cli", "--lock-tag", "tg"],
    );
    let info = cls::get_lock_info(&io, "other", "l2").await.unwrap();
    assert_eq!(info.lock_type, LockType::Exclusive);
    assert_eq!(info.tag, "tg");
    let (id, who) = info.lockers.iter().next().unwrap();
    assert_eq!(id.cookie, "cli");
    assert_eq!(id.entity.kind, EntityType::Client);
    assert_ne!(id.entity.num, a.gid() as i64, "held by the CLI's own client");
    assert_eq!(who.addr.addr.ip().to_string(), "127.0.0.1");
}
