//! Golden bytes for every `lock` class input and output (rbd spec §4.8), produced by the typed
//! client's pure encoders and read back by its decoders. Every expected array is written out
//! by hand, field by field; the values are the ones librbd sends (rbd spec §0.1, §1.6) and the
//! ones seen on a real 16.2 cluster (real-ceph-observed §3, §5).

use std::collections::BTreeMap;

use proptest::prelude::*;
use rados_store::cls::lock::{
    AssertOp, BreakOp, GetInfoOp, ListLocksReply, LockInfo, LockOp, LockType, LockerId, LockerInfo,
    SetCookieOp, UnlockOp,
};
use rados_store::cls_lock_client::{self as client, LOCK_FLAG_MUST_RENEW};
use rados_store::encoding::{Decode, Decoder, decode_all, encode_to_vec};
use rados_store::error::errno;
use rados_store::{EntityAddr, EntityName, UTime};

/// librbd's cookie for watch handle 139669987729456 (real-ceph-observed §3).
const COOKIE: &str = "auto 139669987729456";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn golden<T: Decode + PartialEq + std::fmt::Debug>(actual: Vec<u8>, expected: &[u8], value: &T) {
    assert_eq!(hex(&actual), hex(expected));
    assert_eq!(&decode_all::<T>(expected).unwrap(), value);
}

#[test]
fn s4_8_lock_op_as_librbd_sends_it() {
    // §1.6.2: lock(name rbd_lock, EXCLUSIVE, cookie, tag "internal", description "", duration 0, flags 0)
    let op = LockOp {
        name: "rbd_lock".into(),
        lock_type: LockType::Exclusive,
        cookie: COOKIE.into(),
        tag: "internal".into(),
        description: String::new(),
        duration: UTime::ZERO,
        flags: 0,
    };
    let expected = cat(&[
        &[0x01, 0x01, 0x3e, 0, 0, 0], // v1, compat 1, body 62 = 12 + 1 + 24 + 12 + 4 + 8 + 1
        &[0x08, 0, 0, 0],
        b"rbd_lock", // name
        &[0x01],     // type EXCLUSIVE
        &[0x14, 0, 0, 0],
        COOKIE.as_bytes(), // cookie, 20 bytes
        &[0x08, 0, 0, 0],
        b"internal",               // tag
        &[0, 0, 0, 0],             // description ""
        &[0, 0, 0, 0, 0, 0, 0, 0], // duration 0 s 0 ns = never expires
        &[0x00],                   // flags
    ]);
    golden(client::encode_lock_op(&op), &expected, &op);
}

#[test]
fn s4_8_lock_op_with_lease_and_flags() {
    // A shared 2.5 s lease renewal, as real-ceph-observed §5's "B lock_exclusive(2s lease)"
    // but shared and with MUST_RENEW.
    let op = LockOp {
        name: "mylock".into(),
        lock_type: LockType::Shared,
        cookie: "cookieA".into(),
        tag: String::new(),
        description: "A".into(),
        duration: UTime { sec: 2, nsec: 500_000_000 },
        flags: LOCK_FLAG_MUST_RENEW,
    };
    let expected = cat(&[
        &[0x01, 0x01, 0x28, 0, 0, 0], // body 40 = 10 + 1 + 11 + 4 + 5 + 8 + 1
        &[0x06, 0, 0, 0],
        b"mylock",
        &[0x02], // SHARED
        &[0x07, 0, 0, 0],
        b"cookieA",
        &[0, 0, 0, 0], // tag ""
        &[0x01, 0, 0, 0],
        b"A",
        &[0x02, 0, 0, 0, 0x00, 0x65, 0xcd, 0x1d], // 2 s, 500000000 ns (0x1dcd6500)
        &[0x02],                                  // LOCK_FLAG_MUST_RENEW
    ]);
    golden(client::encode_lock_op(&op), &expected, &op);
}

#[test]
fn s4_8_unlock_op() {
    // §1.6.4: unlock(name, cookie)
    let op = UnlockOp { name: "rbd_lock".into(), cookie: COOKIE.into() };
    let expected = cat(&[
        &[0x01, 0x01, 0x24, 0, 0, 0], // body 36 = 12 + 24
        &[0x08, 0, 0, 0],
        b"rbd_lock",
        &[0x14, 0, 0, 0],
        COOKIE.as_bytes(),
    ]);
    golden(client::encode_unlock_op(&op), &expected, &op);
}

#[test]
fn s4_8_break_op() {
    // §1.6.3 step 5: break_lock(name, locker entity, cookie) for client.4196
    let op = BreakOp { name: "rbd_lock".into(), locker: EntityName::client(4196), cookie: COOKIE.into() };
    let expected = cat(&[
        &[0x01, 0x01, 0x2d, 0, 0, 0], // body 45 = 12 + 9 + 24
        &[0x08, 0, 0, 0],
        b"rbd_lock",
        &[0x08, 0x64, 0x10, 0, 0, 0, 0, 0, 0], // entity_name_t: CLIENT (8), num 4196 = 0x1064
        &[0x14, 0, 0, 0],
        COOKIE.as_bytes(),
    ]);
    golden(client::encode_break_op(&op), &expected, &op);
}

#[test]
fn s4_8_get_info_op() {
    let op = GetInfoOp { name: "rbd_lock".into() };
    let expected = cat(&[&[0x01, 0x01, 0x0c, 0, 0, 0], &[0x08, 0, 0, 0], b"rbd_lock"]);
    golden(client::encode_get_info_op(&op), &expected, &op);
}

#[test]
fn s4_8_list_locks_input_is_empty() {
    assert!(client::encode_list_locks_op().is_empty());
}

#[test]
fn s4_8_assert_op() {
    // §1.3 assert_header_locked: (rbd_lock, EXCLUSIVE, own cookie, "internal")
    let op = AssertOp {
        name: "rbd_lock".into(),
        lock_type: LockType::Exclusive,
        cookie: COOKIE.into(),
        tag: "internal".into(),
    };
    let expected = cat(&[
        &[0x01, 0x01, 0x31, 0, 0, 0], // body 49 = 12 + 1 + 24 + 12
        &[0x08, 0, 0, 0],
        b"rbd_lock",
        &[0x01],
        &[0x14, 0, 0, 0],
        COOKIE.as_bytes(),
        &[0x08, 0, 0, 0],
        b"internal",
    ]);
    golden(client::encode_assert_op(&op), &expected, &op);
}

#[test]
fn s4_8_set_cookie_op() {
    // §1.6.5: set_cookie(name, EXCLUSIVE, old cookie, "internal", new cookie)
    let op = SetCookieOp {
        name: "rbd_lock".into(),
        lock_type: LockType::Exclusive,
        cookie: "auto 1".into(),
        tag: "internal".into(),
        new_cookie: "auto 2".into(),
    };
    let expected = cat(&[
        &[0x01, 0x01, 0x2d, 0, 0, 0], // body 45 = 12 + 1 + 10 + 12 + 10
        &[0x08, 0, 0, 0],
        b"rbd_lock",
        &[0x01],
        &[0x06, 0, 0, 0],
        b"auto 1",
        &[0x08, 0, 0, 0],
        b"internal",
        &[0x06, 0, 0, 0],
        b"auto 2",
    ]);
    golden(client::encode_set_cookie_op(&op), &expected, &op);
}

#[test]
fn s4_8_list_locks_reply() {
    let reply = ListLocksReply { locks: vec!["a".into(), "rbd_lock".into()] };
    let expected = cat(&[
        &[0x01, 0x01, 0x15, 0, 0, 0], // body 21 = 4 + 5 + 12
        &[0x02, 0, 0, 0],             // list of 2
        &[0x01, 0, 0, 0],
        b"a",
        &[0x08, 0, 0, 0],
        b"rbd_lock",
    ]);
    golden(encode_to_vec(&reply), &expected, &reply);
    assert_eq!(client::decode_list_locks_reply(&expected), Ok(reply));
}

/// The get_info reply for real-ceph-observed §5's Rust test after "B lock_exclusive(2s lease)":
/// two shared holders would be listed in entity order; here one exclusive holder with a
/// lease, an msgr-legacy IPv4 address and a description.
#[test]
fn s4_8_get_info_reply_with_expiring_locker() {
    let mut lockers = BTreeMap::new();
    lockers.insert(
        LockerId { entity: EntityName::client(4337), cookie: "cookieB".into() },
        LockerInfo {
            expiration: UTime { sec: 1_700_000_002, nsec: 40_000_000 },
            addr: "127.0.0.1:0/4121206346".parse::<EntityAddr>().unwrap(),
            description: "B".into(),
        },
    );
    let reply = LockInfo { lockers, lock_type: LockType::Exclusive, tag: String::new() };
    let expected = cat(&[
        &[0x01, 0x01, 0x59, 0, 0, 0],          // body 89 = 4 + 26 + 54 + 1 + 4
        &[0x01, 0, 0, 0],                      // one locker
        &[0x01, 0x01, 0x14, 0, 0, 0],          // locker_id_t, body 20 = 9 + 11
        &[0x08, 0xf1, 0x10, 0, 0, 0, 0, 0, 0], // client.4337 (0x10f1)
        &[0x07, 0, 0, 0],
        b"cookieB",
        &[0x01, 0x01, 0x30, 0, 0, 0], // locker_info_t, body 48 = 8 + 35 + 5
        &[0x02, 0xf1, 0x53, 0x65, 0x00, 0x5a, 0x62, 0x02], // 1700000002 s (0x6553f102), 40000000 ns (0x02625a00)
        &[0x01, 0x01, 0x01, 0x1c, 0, 0, 0],                // entity_addr_t: marker 1, v1 compat 1, body 28
        &[0x01, 0, 0, 0],                                  // TYPE_LEGACY
        &[0x4a, 0x9e, 0xa4, 0xf5],                         // nonce 4121206346 = 0xf5a49e4a
        &[0x10, 0, 0, 0, 0x02, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x01, 0, 0, 0],
        b"B",          // description
        &[0x01],       // EXCLUSIVE
        &[0, 0, 0, 0], // tag ""
    ]);
    golden(encode_to_vec(&reply), &expected, &reply);
    assert_eq!(client::decode_get_info_reply(&expected), Ok(reply));
}

#[test]
fn s4_8_empty_get_info_reply() {
    // §6: no locks -> lockers empty, type NONE, tag "".
    let expected = [0x01, 0x01, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x00, 0, 0, 0, 0];
    golden(encode_to_vec(&LockInfo::default()), &expected, &LockInfo::default());
}

#[test]
fn s4_8_undecodable_reply_is_ebadmsg() {
    // Ceph's cls_lock client answers -EBADMSG for a reply it cannot decode.
    assert_eq!(
        client::decode_get_info_reply(&[1, 1, 200]).unwrap_err().errno(),
        rados_store::error::errno::EBADMSG
    );
    assert_eq!(client::decode_list_locks_reply(b"").unwrap_err().errno(), rados_store::error::errno::EBADMSG);
    assert_eq!(rados_store::error::errno::EBADMSG, 74);
    assert_ne!(rados_store::error::errno::EBADMSG, errno::EINVAL);
}

#[test]
fn s4_8_reply_decoders_accept_the_legacy_unversioned_form() {
    // struct_v 0: no compat, no length, for the reply and for its nested structs.
    let bytes = cat(&[
        &[0x00],                                                       // lock_info v0
        &[0x01, 0, 0, 0],                                              // one locker
        &[0x00, 0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, b'c'], // locker_id v0: client.1, "c"
        &[0x00, 0, 0, 0, 0, 0, 0, 0, 0], // locker_info v0: expiration 0, then the address:
        &[0x01, 0x01, 0x01, 0x1c, 0, 0, 0, 0x01, 0, 0, 0, 0x05, 0, 0, 0, 0x10, 0, 0, 0],
        &[0x02, 0x00, 0x1a, 0x85, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], // 10.0.0.1:6789
        &[0, 0, 0, 0],                                                  // description
        &[0x02],                                                        // SHARED
        &[0x01, 0, 0, 0, b't'],
    ]);
    let info = client::decode_get_info_reply(&bytes).unwrap();
    assert_eq!(info.lock_type, LockType::Shared);
    assert_eq!(info.tag, "t");
    let (id, l) = info.lockers.iter().next().unwrap();
    assert_eq!((id.entity, id.cookie.as_str()), (EntityName::client(1), "c"));
    assert_eq!(l.addr.to_string(), "10.0.0.1:6789/5");
}

fn arb_lock_type() -> impl Strategy<Value = LockType> {
    (0u8..=3).prop_map(|b| LockType::from_wire(b).unwrap())
}

fn arb_utime() -> impl Strategy<Value = UTime> {
    (any::<u32>(), any::<u32>()).prop_map(|(sec, nsec)| UTime { sec, nsec })
}

fn arb_info() -> impl Strategy<Value = LockInfo> {
    let locker =
        (any::<u64>(), ".{0,8}", arb_utime(), any::<[u8; 4]>(), any::<u16>(), any::<u32>(), ".{0,8}")
            .prop_map(|(gid, cookie, expiration, ip, port, nonce, description)| {
                (
                    LockerId { entity: EntityName::client(gid), cookie },
                    LockerInfo {
                        expiration,
                        addr: EntityAddr::legacy((ip, port).into(), nonce),
                        description,
                    },
                )
            });
    (proptest::collection::vec(locker, 0..4), arb_lock_type(), ".{0,8}").prop_map(
        |(lockers, lock_type, tag)| LockInfo { lockers: lockers.into_iter().collect(), lock_type, tag },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_ops_round_trip(
        name in ".{0,10}", t in arb_lock_type(), cookie in ".{0,10}", tag in ".{0,10}",
        desc in ".{0,10}", duration in arb_utime(), flags in any::<u8>(), gid in any::<u64>(), new in ".{0,10}",
    ) {
        let lock = LockOp { name: name.clone(), lock_type: t, cookie: cookie.clone(), tag: tag.clone(), description: desc, duration, flags };
        prop_assert_eq!(decode_all::<LockOp>(&client::encode_lock_op(&lock)), Ok(lock));
        let unlock = UnlockOp { name: name.clone(), cookie: cookie.clone() };
        prop_assert_eq!(decode_all::<UnlockOp>(&client::encode_unlock_op(&unlock)), Ok(unlock));
        let brk = BreakOp { name: name.clone(), locker: EntityName::client(gid), cookie: cookie.clone() };
        prop_assert_eq!(decode_all::<BreakOp>(&client::encode_break_op(&brk)), Ok(brk));
        let info = GetInfoOp { name: name.clone() };
        prop_assert_eq!(decode_all::<GetInfoOp>(&client::encode_get_info_op(&info)), Ok(info));
        let assert = AssertOp { name: name.clone(), lock_type: t, cookie: cookie.clone(), tag: tag.clone() };
        prop_assert_eq!(decode_all::<AssertOp>(&client::encode_assert_op(&assert)), Ok(assert));
        let set = SetCookieOp { name, lock_type: t, cookie, tag, new_cookie: new };
        prop_assert_eq!(decode_all::<SetCookieOp>(&client::encode_set_cookie_op(&set)), Ok(set));
    }

    #[test]
    fn prop_replies_round_trip(info in arb_info(), locks in proptest::collection::vec(".{0,8}", 0..5)) {
        prop_assert_eq!(client::decode_get_info_reply(&encode_to_vec(&info)), Ok(info));
        let reply = ListLocksReply { locks };
        prop_assert_eq!(client::decode_list_locks_reply(&encode_to_vec(&reply)), Ok(reply));
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = LockOp::decode(&mut Decoder::new(&bytes));
        let _ = UnlockOp::decode(&mut Decoder::new(&bytes));
        let _ = BreakOp::decode(&mut Decoder::new(&bytes));
        let _ = GetInfoOp::decode(&mut Decoder::new(&bytes));
        let _ = AssertOp::decode(&mut Decoder::new(&bytes));
        let _ = SetCookieOp::decode(&mut Decoder::new(&bytes));
        let _ = client::decode_get_info_reply(&bytes);
        let _ = client::decode_list_locks_reply(&bytes);
    }
}
