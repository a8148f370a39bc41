//! Ceph encoding primitives (rbd spec §4.1): golden bytes, envelope rules, address forms,
//! and property tests (round trips; arbitrary input never panics).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use rados_store::encoding::{
    ADDR_TYPE_NONE, Decode, Decoder, Encode, Encoder, EncodingError, decode_all, encode_to_vec,
};
use rados_store::error::errno;
use rados_store::{EntityAddr, EntityName, EntityType, Error, UTime};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert_eq!(hex(actual), hex(expected));
}

// ---------------------------------------------------------------------------------------------
// §4.1 primitives, golden bytes

#[test]
fn s4_1_integers_are_little_endian() {
    let mut e = Encoder::new();
    e.u8(0xab)
        .u16(0x1234)
        .u32(0xdead_beef)
        .u64(0x0102_0304_0506_0708)
        .i32(-30)
        .i64(-2)
        .bool(true)
        .bool(false);
    assert_bytes(
        e.as_slice(),
        &[
            0xab, // u8
            0x34, 0x12, // u16 0x1234
            0xef, 0xbe, 0xad, 0xde, // u32 0xdeadbeef
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // u64
            0xe2, 0xff, 0xff, 0xff, // i32 -30 (-EROFS, as in §4.6's ResponseMessage(-30))
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // i64 -2
            0x01, 0x00, // bools
        ],
    );
    let mut d = Decoder::new(e.as_slice());
    assert_eq!(d.u8(), Ok(0xab));
    assert_eq!(d.u16(), Ok(0x1234));
    assert_eq!(d.u32(), Ok(0xdead_beef));
    assert_eq!(d.u64(), Ok(0x0102_0304_0506_0708));
    assert_eq!(d.i32(), Ok(-30));
    assert_eq!(d.i64(), Ok(-2));
    assert_eq!(d.bool(), Ok(true));
    assert_eq!(d.bool(), Ok(false));
    assert!(d.is_empty());
}

#[test]
fn s4_1_any_nonzero_byte_is_true() {
    // Ceph decodes bool (and optional's presence byte) as "byte != 0".
    assert_eq!(Decoder::new(&[7]).bool(), Ok(true));
    assert_eq!(Decoder::new(&[2, 0x2a, 0, 0, 0]).optional(Decoder::u32), Ok(Some(42)));
}

#[test]
fn s4_1_strings_and_byte_lists_have_u32_lengths() {
    let mut e = Encoder::new();
    e.string("s1").bytes(&[0xff, 0x00]).string("");
    assert_bytes(
        e.as_slice(),
        &[
            0x02, 0, 0, 0, b's', b'1', // "s1": length 2, no terminator (§4.6 SNAP_CREATE)
            0x02, 0, 0, 0, 0xff, 0x00, // bufferlist of 2 bytes
            0, 0, 0, 0, // empty string
        ],
    );
    let mut d = Decoder::new(e.as_slice());
    assert_eq!(d.string().as_deref(), Ok("s1"));
    assert_eq!(d.bytes(), Ok(vec![0xff, 0x00]));
    assert_eq!(d.string().as_deref(), Ok(""));
}

#[test]
fn s4_1_containers_are_counted() {
    let mut m = BTreeMap::new();
    m.insert(2u64, 20u64);
    m.insert(1u64, 10u64);
    let set: BTreeSet<String> = ["b".to_owned(), "a".to_owned()].into();
    let list = vec![7u32, 8u32];
    let mut e = Encoder::new();
    e.put(&m).put(&set).put(&list).put(&Some(5u8)).put(&None::<u8>);
    assert_bytes(
        e.as_slice(),
        &[
            2, 0, 0, 0, // map count 2, keys in order:
            1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, // 1 -> 10
            2, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, // 2 -> 20
            2, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b', // set {"a", "b"}
            2, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, // vec [7, 8]
            1, 5, // optional present, 5
            0, // optional absent
        ],
    );
    let mut d = Decoder::new(e.as_slice());
    assert_eq!(d.get::<BTreeMap<u64, u64>>(), Ok(m));
    assert_eq!(d.get::<BTreeSet<String>>(), Ok(set));
    assert_eq!(d.get::<Vec<u32>>(), Ok(list));
    assert_eq!(d.get::<Option<u8>>(), Ok(Some(5)));
    assert_eq!(d.get::<Option<u8>>(), Ok(None));
    assert!(d.is_empty());
}

#[test]
fn s4_1_map_with_repeated_key_keeps_last_value() {
    let bytes = [2, 0, 0, 0, 1, 10, 1, 11];
    assert_eq!(decode_all::<BTreeMap<u8, u8>>(&bytes), Ok([(1, 11)].into()));
}

#[test]
fn s4_1_utime_is_sec_then_nsec() {
    let t = UTime { sec: 1_700_000_000, nsec: 500_000_000 };
    // 1_700_000_000 = 0x6553f100, 500_000_000 = 0x1dcd6500
    assert_bytes(&encode_to_vec(&t), &[0x00, 0xf1, 0x53, 0x65, 0x00, 0x65, 0xcd, 0x1d]);
    assert_eq!(decode_all::<UTime>(&encode_to_vec(&t)), Ok(t));
}

#[test]
fn s4_1_entity_name_is_type_byte_and_i64() {
    // client.4176 from real-ceph-observed §3 (`rbd lock ls`): type CLIENT = 0x08, 4176 = 0x1050.
    let n = EntityName::client(4176);
    assert_bytes(&encode_to_vec(&n), &[0x08, 0x50, 0x10, 0, 0, 0, 0, 0, 0]);
    assert_eq!(decode_all::<EntityName>(&encode_to_vec(&n)), Ok(n));
    let osd = EntityName { kind: EntityType::Osd, num: -1 };
    assert_bytes(&encode_to_vec(&osd), &[0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        decode_all::<EntityName>(&[0x03, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(EncodingError::UnknownEntityType(3))
    );
}

// ---------------------------------------------------------------------------------------------
// §4.1 versioned envelopes

#[test]
fn s4_1_versioned_header_and_length() {
    let mut e = Encoder::new();
    e.versioned(7, 1, |e| {
        e.u32(3);
    });
    // §4.6 HEADER_UPDATE: 07 01 04 00 00 00 | 03 00 00 00
    assert_bytes(e.as_slice(), &[0x07, 0x01, 0x04, 0, 0, 0, 0x03, 0, 0, 0]);

    let mut e = Encoder::new();
    let t = e.start_versioned(1, 1);
    e.i32(-30);
    e.finish_versioned(t);
    // §4.6 ResponseMessage(-30): 01 01 04 00 00 00 | e2 ff ff ff
    assert_bytes(e.as_slice(), &[0x01, 0x01, 0x04, 0, 0, 0, 0xe2, 0xff, 0xff, 0xff]);
}

#[test]
fn s4_1_decoder_rejects_compat_above_its_version() {
    let bytes = [0x03, 0x02, 0x00, 0, 0, 0];
    let r = Decoder::new(&bytes).versioned(1, |_, _| Ok(()));
    assert_eq!(r, Err(EncodingError::IncompatibleVersion { compat: 2, max: 1 }));
    // compat == max is fine, whatever struct_v says.
    let bytes = [0x09, 0x01, 0x00, 0, 0, 0];
    assert_eq!(Decoder::new(&bytes).versioned(1, |_, v| Ok(v)), Ok(9));
}

#[test]
fn s4_1_decoder_skips_unread_tail_and_is_bounded_by_length() {
    // A v2 struct (compat 1) carrying an extra u16 a v1 reader does not know, then a sentinel.
    let bytes = [0x02, 0x01, 0x06, 0, 0, 0, 0x2a, 0, 0, 0, 0xbe, 0xef, 0x99];
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.versioned(1, |d, _| d.u32()), Ok(42));
    assert_eq!(d.u8(), Ok(0x99));

    // Reading beyond struct_len fails even though the outer buffer has more bytes.
    let mut d = Decoder::new(&bytes);
    let r = d.versioned(1, |d, _| {
        d.u32()?;
        d.u32()
    });
    assert!(matches!(r, Err(EncodingError::Truncated { needed: 4, remaining: 2, .. })), "{r:?}");

    // A length beyond the input is rejected before the body is read.
    let r = Decoder::new(&[0x01, 0x01, 0x10, 0, 0, 0, 1, 2]).versioned(1, |_, _| Ok(()));
    assert_eq!(r, Err(EncodingError::StructTooLong { len: 16, remaining: 2 }));
}

#[test]
fn s4_8_legacy_compat_len_form_without_header() {
    // DECODE_START_LEGACY_COMPAT_LEN(1, 1, 1): struct_v 0 means no compat byte and no length.
    let bytes = [0x00, 0x05, 0, 0, 0, 0x06];
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.versioned_legacy(1, 1, 1, |d, v| Ok((v, d.u32()?))), Ok((0, 5)));
    assert_eq!(d.u8(), Ok(6));
    // struct_v 1 has both.
    let bytes = [0x01, 0x01, 0x04, 0, 0, 0, 0x05, 0, 0, 0];
    assert_eq!(Decoder::new(&bytes).versioned_legacy(1, 1, 1, |d, _| d.u32()), Ok(5));
    // and still rejects a too-new compat.
    let bytes = [0x03, 0x02, 0x00, 0, 0, 0];
    assert!(matches!(
        Decoder::new(&bytes).versioned_legacy(1, 1, 1, |_, _| Ok(())),
        Err(EncodingError::IncompatibleVersion { compat: 2, max: 1 })
    ));
}

#[test]
fn truncation_and_garbage_are_typed_errors() {
    assert!(matches!(
        Decoder::new(&[1, 2, 3]).u32(),
        Err(EncodingError::Truncated { needed: 4, remaining: 3, .. })
    ));
    assert!(matches!(Decoder::new(&[9, 0, 0, 0, b'a']).string(), Err(EncodingError::Truncated { .. })));
    assert_eq!(Decoder::new(&[2, 0, 0, 0, 0xff, 0xfe]).string(), Err(EncodingError::InvalidUtf8));
    assert_eq!(decode_all::<u8>(&[1, 2]), Err(EncodingError::TrailingBytes(1)));
    // A count of 2^32-1 with two bytes behind it fails without reserving gigabytes.
    assert!(decode_all::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0, 0]).is_err());
    assert!(decode_all::<BTreeMap<u32, u32>>(&[0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn encoding_error_maps_to_einval() {
    let e: Error = EncodingError::InvalidUtf8.into();
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(matches!(e, Error::InvalidArgument(_)));
}

// ---------------------------------------------------------------------------------------------
// §4.8 entity_addr_t

/// 127.0.0.1:0/3895977888, the librbd client address of real-ceph-observed §3.
fn observed_addr() -> EntityAddr {
    "127.0.0.1:0/3895977888".parse().unwrap()
}

#[test]
fn s4_8_entity_addr_modern_ipv4_golden() {
    let a = observed_addr();
    let expected: &[u8] = &[
        0x01, // marker: modern form
        0x01, 0x01, 0x1c, 0, 0, 0, // versioned(v1, compat 1), body length 28
        0x01, 0, 0, 0, // type = TYPE_LEGACY (1)
        0xa0, 0xe7, 0x37, 0xe8, // nonce 3895977888 = 0xe837e7a0
        0x10, 0, 0, 0, // sockaddr length = sizeof(sockaddr_in) = 16
        0x02, 0x00, // sin_family AF_INET as a little-endian u16
        0x00, 0x00, // sin_port 0, network byte order
        0x7f, 0x00, 0x00, 0x01, // sin_addr 127.0.0.1
        0, 0, 0, 0, 0, 0, 0, 0, // sin_zero
    ];
    assert_bytes(&encode_to_vec(&a), expected);
    let back = decode_all::<EntityAddr>(expected).unwrap();
    assert_eq!(back, a);
    assert_eq!(back.to_string(), "127.0.0.1:0/3895977888");
}

#[test]
fn s4_8_entity_addr_legacy_ipv4_golden() {
    let a = EntityAddr::legacy("10.1.2.3:6789".parse().unwrap(), 7);
    let mut expected = vec![
        0x00, 0x00, 0x00, 0x00, // marker 0 + unused marker byte + unused u16
        0x07, 0, 0, 0, // nonce
        0x00, 0x02, // ss_family AF_INET, big-endian in the legacy form
        0x1a, 0x85, // port 6789 = 0x1a85, network byte order
        10, 1, 2, 3, // address
    ];
    expected.resize(4 + 4 + 128, 0); // the rest of sockaddr_storage is zero
    let mut e = Encoder::new();
    e.entity_addr_legacy(&a);
    assert_bytes(e.as_slice(), &expected);
    assert_eq!(decode_all::<EntityAddr>(&expected), Ok(a));
}

#[test]
fn s4_8_entity_addr_ipv6_golden_both_forms() {
    let a = EntityAddr {
        addr_type: EntityAddr::TYPE_MSGR2,
        nonce: 0x0102_0304,
        addr: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 3300, 0, 0)),
    };
    let mut ip = [0u8; 16];
    ip[15] = 1;
    let mut expected = vec![
        0x01, // modern marker
        0x01, 0x01, 0x28, 0, 0, 0, // versioned, body 40 = 4 + 4 + 4 + 28
        0x02, 0, 0, 0, // TYPE_MSGR2
        0x04, 0x03, 0x02, 0x01, // nonce
        0x1c, 0, 0, 0, // sizeof(sockaddr_in6) = 28
        0x0a, 0x00, // AF_INET6 (Linux 10), little-endian
        0x0c, 0xe4, // port 3300 = 0x0ce4, big-endian
        0, 0, 0, 0, // flow info
    ];
    expected.extend_from_slice(&ip); // ::1
    expected.extend_from_slice(&[0, 0, 0, 0]); // scope id
    assert_bytes(&encode_to_vec(&a), &expected);
    assert_eq!(decode_all::<EntityAddr>(&expected), Ok(a));
    assert_eq!(a.to_string(), "[::1]:3300/16909060");

    let mut legacy = vec![0, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x0c, 0xe4, 0, 0, 0, 0];
    legacy.extend_from_slice(&ip);
    legacy.resize(136, 0);
    let mut e = Encoder::new();
    e.entity_addr_legacy(&a);
    assert_bytes(e.as_slice(), &legacy);
    // The legacy form carries no type: it reads back as legacy.
    assert_eq!(decode_all::<EntityAddr>(&legacy), Ok(a.as_legacy()));
}

#[test]
fn s4_8_blank_entity_addr() {
    // A default Ceph entity_addr_t: type none, AF_UNSPEC, whose length is the size of the
    // address union (28).
    let blank: EntityAddr =
        EntityAddr { addr_type: ADDR_TYPE_NONE, nonce: 0, addr: "0.0.0.0:0".parse().unwrap() };
    let mut expected = vec![0x01, 0x01, 0x01, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1c, 0, 0, 0];
    expected.resize(expected.len() + 28, 0);
    assert_bytes(&encode_to_vec(&blank), &expected);
    assert_eq!(decode_all::<EntityAddr>(&expected), Ok(blank));
    // elen 0 is blank too.
    let no_sockaddr = [0x01, 0x01, 0x01, 0x0c, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
    let a = decode_all::<EntityAddr>(&no_sockaddr).unwrap();
    assert_eq!((a.addr_type, a.nonce, a.addr.to_string()), (1, 5, "0.0.0.0:0".to_owned()));
    // Legacy with an unknown family reads as blank with type none, as Ceph's set_sockaddr does.
    let mut odd = vec![0, 0, 0, 0, 9, 0, 0, 0, 0x00, 0x01];
    odd.resize(136, 0);
    let a = decode_all::<EntityAddr>(&odd).unwrap();
    assert_eq!((a.addr_type, a.nonce), (ADDR_TYPE_NONE, 9));
}

#[test]
fn s4_8_bad_entity_addrs_are_errors() {
    assert_eq!(decode_all::<EntityAddr>(&[2]), Err(EncodingError::BadAddrMarker(2)));
    // family 1 (AF_UNIX)
    let unix = [0x01, 0x01, 0x01, 0x0e, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0x01, 0x00];
    assert_eq!(decode_all::<EntityAddr>(&unix), Err(EncodingError::UnsupportedAddrFamily(1)));
    // AF_INET with a 20-byte sockaddr
    let mut long = vec![0x01, 0x01, 0x01, 0x20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x02, 0x00];
    long.resize(long.len() + 18, 0);
    assert_eq!(decode_all::<EntityAddr>(&long), Err(EncodingError::BadSockaddrLen { family: 2, len: 20 }));
    // elen 1 cannot even hold the family
    let short = [0x01, 0x01, 0x01, 0x0d, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x02];
    assert!(matches!(decode_all::<EntityAddr>(&short), Err(EncodingError::BadSockaddrLen { .. })));
    // truncated legacy storage
    assert!(matches!(
        decode_all::<EntityAddr>(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 2]),
        Err(EncodingError::Truncated { .. })
    ));
}

#[test]
fn s4_8_short_ipv4_sockaddr_is_zero_padded() {
    // Ceph copies elen bytes into a zeroed union; a sockaddr cut after the port is 0.0.0.0.
    let bytes =
        [0x01, 0x01, 0x01, 0x10, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0x04, 0, 0, 0, 0x02, 0x00, 0x00, 0x50];
    let a = decode_all::<EntityAddr>(&bytes).unwrap();
    assert_eq!(a.to_string(), "0.0.0.0:80/3");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_entity_type() -> impl Strategy<Value = EntityType> {
    prop_oneof![
        Just(EntityType::Mon),
        Just(EntityType::Mds),
        Just(EntityType::Osd),
        Just(EntityType::Client),
        Just(EntityType::Mgr)
    ]
}

fn arb_entity_name() -> impl Strategy<Value = EntityName> {
    (arb_entity_type(), any::<i64>()).prop_map(|(kind, num)| EntityName { kind, num })
}

fn arb_socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(ip, port, flow, scope)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
        }),
    ]
}

fn arb_entity_addr() -> impl Strategy<Value = EntityAddr> {
    (1u32..=4, any::<u32>(), arb_socket_addr()).prop_map(|(addr_type, nonce, addr)| EntityAddr {
        addr_type,
        nonce,
        addr,
    })
}

fn arb_utime() -> impl Strategy<Value = UTime> {
    (any::<u32>(), any::<u32>()).prop_map(|(sec, nsec)| UTime { sec, nsec })
}

/// A struct exercising most primitives, to round-trip through the generic traits.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    a: u64,
    b: i32,
    flag: bool,
    name: String,
    blob: Vec<u8>,
    when: UTime,
    who: EntityName,
    addr: EntityAddr,
    tags: BTreeSet<String>,
    counters: BTreeMap<String, u32>,
    maybe: Option<i64>,
}

impl Encode for Sample {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(2, 1, |e| {
            e.u64(self.a).i32(self.b).bool(self.flag).string(&self.name).bytes(&self.blob);
            e.utime(self.when).entity_name(self.who).entity_addr(&self.addr);
            e.put(&self.tags).put(&self.counters).put(&self.maybe);
        });
    }
}

impl Decode for Sample {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, EncodingError> {
        d.versioned(2, |d, _| {
            Ok(Sample {
                a: d.u64()?,
                b: d.i32()?,
                flag: d.bool()?,
                name: d.string()?,
                blob: d.bytes()?,
                when: d.utime()?,
                who: d.entity_name()?,
                addr: d.entity_addr()?,
                tags: d.get()?,
                counters: d.get()?,
                maybe: d.get()?,
            })
        })
    }
}

fn arb_sample() -> impl Strategy<Value = Sample> {
    (
        (any::<u64>(), any::<i32>(), any::<bool>(), ".{0,12}", proptest::collection::vec(any::<u8>(), 0..24)),
        (arb_utime(), arb_entity_name(), arb_entity_addr()),
        (
            proptest::collection::btree_set("[a-z]{0,6}", 0..4),
            proptest::collection::btree_map("[a-z]{0,6}", any::<u32>(), 0..4),
            any::<Option<i64>>(),
        ),
    )
        .prop_map(|((a, b, flag, name, blob), (when, who, addr), (tags, counters, maybe))| Sample {
            a,
            b,
            flag,
            name,
            blob,
            when,
            who,
            addr,
            tags,
            counters,
            maybe,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_sample_round_trips(s in arb_sample()) {
        let bytes = encode_to_vec(&s);
        prop_assert_eq!(decode_all::<Sample>(&bytes), Ok(s));
    }

    #[test]
    fn prop_entity_addr_round_trips_in_both_forms(a in arb_entity_addr()) {
        prop_assert_eq!(decode_all::<EntityAddr>(&encode_to_vec(&a)), Ok(a));
        let mut e = Encoder::new();
        e.entity_addr_legacy(&a);
        prop_assert_eq!(e.len(), 136);
        prop_assert_eq!(decode_all::<EntityAddr>(e.as_slice()), Ok(a.as_legacy()));
    }

    #[test]
    fn prop_newer_encoder_fields_are_skipped(s in arb_sample(), extra in proptest::collection::vec(any::<u8>(), 0..16)) {
        // Re-wrap the body as a v9 (compat 1) struct with unknown trailing bytes appended.
        let bytes = encode_to_vec(&s);
        let body = &bytes[6..];
        let mut e = Encoder::new();
        e.versioned(9, 1, |e| { e.raw(body).raw(&extra); });
        e.u8(0x5a);
        let mut d = Decoder::new(e.as_slice());
        prop_assert_eq!(Sample::decode(&mut d), Ok(s));
        prop_assert_eq!(d.u8(), Ok(0x5a));
    }

    #[test]
    fn prop_truncated_input_is_an_error(s in arb_sample(), cut in any::<proptest::sample::Index>()) {
        let bytes = encode_to_vec(&s);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_all::<Sample>(&bytes[..cut]).is_err());
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_all::<Sample>(&bytes);
        let _ = decode_all::<EntityAddr>(&bytes);
        let _ = decode_all::<EntityName>(&bytes);
        let _ = decode_all::<Vec<String>>(&bytes);
        let _ = decode_all::<BTreeMap<String, Vec<u8>>>(&bytes);
        let _ = decode_all::<BTreeSet<u64>>(&bytes);
        let _ = decode_all::<Option<(u32, String)>>(&bytes);
        let _ = Decoder::new(&bytes).versioned_legacy(1, 1, 1, |d, _| d.string());
    }

    #[test]
    fn prop_mutated_encodings_never_panic(s in arb_sample(), flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = encode_to_vec(&s);
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let _ = decode_all::<Sample>(&bytes);
    }
}
