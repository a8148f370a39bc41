//! Ceph's wire encoding, shared by every format cephlock speaks (cls_lock, the rbd notify
//! payloads, the MDS journal).
//!
//! Everything that crosses a RADOS boundary in Ceph is written with the primitives of
//! `include/encoding.h` / `denc.h`, and a re-implementation that wants to talk to real daemons
//! (or merely keep byte-identical state in the embedded store) has to reproduce them exactly
//! (rbd spec §4.1):
//!
//! * integers are little-endian; `bool` is one byte;
//! * strings and byte lists are a `u32` length followed by the bytes;
//! * vectors, lists, sets and maps are a `u32` count followed by the elements;
//! * `optional<T>` is a presence byte followed by `T` when present;
//! * a *versioned* struct is `u8 struct_v, u8 struct_compat, u32 struct_len` followed by
//!   `struct_len` body bytes. A decoder that understands versions up to `V` rejects
//!   `struct_compat > V`, never reads past `struct_len` and skips whatever it did not read, so
//!   newer peers can append fields;
//! * `utime_t` is `u32 sec, u32 nsec`; `entity_name_t` is `u8 type, i64 num`;
//! * `entity_addr_t` has a modern form (marker byte 1 and a versioned body holding a Linux
//!   `sockaddr`) and a legacy form (marker byte 0, nonce, and a 128-byte
//!   `sockaddr_storage` whose family is big-endian). See [`Encoder::entity_addr`].
//!
//! Decoding never panics and never allocates more than the input could possibly hold: every
//! count is checked against the bytes that remain before anything is reserved.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::error::Error;
use crate::types::{EntityAddr, EntityName, EntityType, UTime};

/// Ceph's `entity_addr_t::TYPE_NONE`: the type of a blank address (no socket address at all).
///
/// [`EntityAddr`] always carries a socket address, so a blank Ceph address is represented as
/// type 0 with `0.0.0.0:0`; the encoders turn exactly that combination back into a blank
/// (`AF_UNSPEC`) address.
pub const ADDR_TYPE_NONE: u32 = 0;

/// Linux `AF_INET`, as it appears on the wire.
const AF_INET: u16 = 2;
/// Linux `AF_INET6`, as it appears on the wire (Ceph maps other platforms' values onto it).
const AF_INET6: u16 = 10;
/// `AF_UNSPEC`: a blank address.
const AF_UNSPEC: u16 = 0;
/// `sizeof(struct sockaddr_in)` on Linux.
const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)` on Linux; also the size of Ceph's address union, which is
/// what a blank address reports as its length.
const SOCKADDR_IN6_LEN: usize = 28;
/// `sizeof(struct sockaddr_storage)`, the fixed size of the legacy address form.
const SOCKADDR_STORAGE_LEN: usize = 128;

/// Why some bytes could not be decoded.
///
/// Offsets are relative to the decoder that failed; inside a versioned struct that is the
/// start of the struct's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// The input ended (or a struct's length ran out) before a value was complete.
    #[error("truncated input: {needed} bytes needed at offset {offset}, {remaining} remain")]
    Truncated {
        /// Where the read started.
        offset: usize,
        /// How many bytes the value needed.
        needed: usize,
        /// How many bytes were left.
        remaining: usize,
    },
    /// A versioned struct demands a newer decoder than this one (`struct_compat > max`).
    #[error("struct compat version {compat} is newer than the version {max} this decoder knows")]
    IncompatibleVersion {
        /// The encoder's `struct_compat`.
        compat: u8,
        /// The newest version this decoder understands.
        max: u8,
    },
    /// A versioned struct claims more body bytes than the input holds.
    #[error("struct length {len} runs past the {remaining} bytes remaining")]
    StructTooLong {
        /// The encoded `struct_len`.
        len: u32,
        /// Bytes left after the header.
        remaining: usize,
    },
    /// A string's bytes are not UTF-8 (Ceph strings are byte strings; cephlock's are text).
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// An `entity_name_t` type byte that Ceph does not define for the entities cephlock knows.
    #[error("unknown entity type byte {0:#04x}")]
    UnknownEntityType(u8),
    /// An `entity_addr_t` whose marker byte is neither 0 (legacy) nor 1 (modern).
    #[error("entity_addr_t marker byte {0} is neither 0 (legacy) nor 1 (modern)")]
    BadAddrMarker(u8),
    /// A socket address family other than IPv4, IPv6 or unspecified.
    #[error("unsupported socket address family {0}")]
    UnsupportedAddrFamily(u16),
    /// A socket address length that does not fit its family.
    #[error("socket address length {len} is invalid for family {family}")]
    BadSockaddrLen {
        /// The family read from the wire.
        family: u16,
        /// The encoded length (including the family).
        len: u32,
    },
    /// A field holds a value outside its domain (an unknown enum value, for instance).
    #[error("{what}: invalid value {value}")]
    InvalidValue {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// [`decode_all`] found bytes after the value.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
}

impl From<EncodingError> for Error {
    /// An undecodable request is the caller's fault, so it maps to `-EINVAL`, which is what
    /// every Ceph object class returns when its input does not decode.
    fn from(e: EncodingError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

/// The result of a decode.
pub type DecodeResult<T> = std::result::Result<T, EncodingError>;

/// A value with a Ceph encoding, so that containers of it can be encoded generically.
pub trait Encode {
    /// Appends this value's encoding.
    fn encode(&self, e: &mut Encoder);
}

/// A value that can be read back from its Ceph encoding.
pub trait Decode: Sized {
    /// Reads one value, leaving the decoder just after it.
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self>;
}

/// Encodes one value into a fresh buffer.
pub fn encode_to_vec<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    value.encode(&mut e);
    e.into_vec()
}

/// Decodes one value that must span the whole buffer (trailing bytes are an error).
///
/// Ceph itself ignores bytes after a top-level value; use [`Decoder`] directly where that
/// leniency matters (object-class inputs, for instance).
pub fn decode_all<T: Decode>(buf: &[u8]) -> DecodeResult<T> {
    let mut d = Decoder::new(buf);
    let v = T::decode(&mut d)?;
    d.expect_end()?;
    Ok(v)
}

/// Where a versioned struct's length must be patched in; returned by
/// [`Encoder::start_versioned`] and consumed by [`Encoder::finish_versioned`].
#[derive(Debug)]
#[must_use = "a versioned struct must be closed with finish_versioned"]
pub struct VersionedToken {
    len_at: usize,
}

/// Appends Ceph-encoded values to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Encoder { buf: Vec::with_capacity(n) }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The finished buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The finished buffer as shareable [`bytes::Bytes`] (for payloads handed to many
    /// receivers, such as notify messages).
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from(self.buf)
    }

    /// Appends any [`Encode`] value.
    pub fn put<T: Encode + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }

    /// Appends bytes as they are (no length prefix).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A little-endian `i32` (Ceph's `int`, used for result codes).
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    /// A bool as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A `u32` length or count prefix.
    ///
    /// # Panics
    /// If `n` does not fit in a `u32`: Ceph cannot express a single item of 4 GiB or more,
    /// so producing one is a programming error, not bad input.
    pub fn len_prefix(&mut self, n: usize) -> &mut Self {
        let n = u32::try_from(n).expect("a Ceph length or count must fit in a u32");
        self.u32(n)
    }

    /// A string: `u32` byte length, then the bytes, no terminator.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A byte list (`bufferlist` as a value): `u32` length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.len_prefix(b.len());
        self.raw(b)
    }

    /// A vector or list: `u32` count, then each element as `f` writes it.
    pub fn seq<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.len_prefix(items.len());
        for item in items {
            f(self, item);
        }
        self
    }

    /// A set: `u32` count, then the elements in order.
    pub fn set<T>(&mut self, items: &BTreeSet<T>, mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.len_prefix(items.len());
        for item in items {
            f(self, item);
        }
        self
    }

    /// A map: `u32` count, then key/value pairs in key order.
    pub fn map<K, V>(
        &mut self,
        m: &BTreeMap<K, V>,
        mut fk: impl FnMut(&mut Self, &K),
        mut fv: impl FnMut(&mut Self, &V),
    ) -> &mut Self {
        self.len_prefix(m.len());
        for (k, v) in m {
            fk(self, k);
            fv(self, v);
        }
        self
    }

    /// An `optional<T>`: a presence byte, then the value if present.
    pub fn optional<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) -> &mut Self {
        match v {
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
            None => {
                self.u8(0);
            }
        }
        self
    }

    /// Opens a versioned struct (Ceph's `ENCODE_START(v, compat, bl)`): writes the version,
    /// the compat version and a placeholder length that [`Self::finish_versioned`] fills in.
    pub fn start_versioned(&mut self, version: u8, compat: u8) -> VersionedToken {
        self.u8(version).u8(compat);
        let len_at = self.buf.len();
        self.u32(0);
        VersionedToken { len_at }
    }

    /// Closes a versioned struct by patching its body length.
    ///
    /// # Panics
    /// If the body reached 4 GiB, which Ceph's `u32` length cannot express (see
    /// [`Self::len_prefix`]).
    pub fn finish_versioned(&mut self, token: VersionedToken) -> &mut Self {
        let body_start = token.len_at + 4;
        let body_len = self.buf.len().saturating_sub(body_start);
        let body_len = u32::try_from(body_len).expect("a Ceph struct body must fit in a u32");
        debug_assert!(body_start <= self.buf.len(), "token from another encoder");
        if let Some(slot) = self.buf.get_mut(token.len_at..body_start) {
            slot.copy_from_slice(&body_len.to_le_bytes());
        }
        self
    }

    /// A versioned struct whose body `f` writes.
    pub fn versioned(&mut self, version: u8, compat: u8, f: impl FnOnce(&mut Self)) -> &mut Self {
        let token = self.start_versioned(version, compat);
        f(self);
        self.finish_versioned(token)
    }

    /// A `utime_t`: `u32` seconds, `u32` nanoseconds.
    pub fn utime(&mut self, t: UTime) -> &mut Self {
        self.u32(t.sec).u32(t.nsec)
    }

    /// An `entity_name_t`: `u8` type, `i64` number.
    pub fn entity_name(&mut self, n: EntityName) -> &mut Self {
        self.u8(n.kind.wire()).i64(n.num)
    }

    /// An `entity_addr_t` in the modern form every Nautilus-or-later peer receives (it has the
    /// `MSG_ADDR2` feature): marker byte 1, then versioned(1, 1) { `u32` type, `u32` nonce,
    /// `u32` sockaddr length, the Linux `sockaddr` with its family as a little-endian `u16` }.
    /// Inside the sockaddr the port and IPv4/IPv6 address are in network byte order, as the
    /// kernel stores them; IPv6 flow info and scope id are stored in host (little-endian) order.
    pub fn entity_addr(&mut self, a: &EntityAddr) -> &mut Self {
        self.u8(1);
        self.versioned(1, 1, |e| {
            e.u32(a.addr_type).u32(a.nonce);
            match sockaddr_of(a) {
                Sockaddr::Blank => {
                    e.len_prefix(SOCKADDR_IN6_LEN).u16(AF_UNSPEC);
                    e.raw(&[0u8; SOCKADDR_IN6_LEN - 2]);
                }
                Sockaddr::V4(body) => {
                    e.len_prefix(SOCKADDR_IN_LEN).u16(AF_INET).raw(&body);
                }
                Sockaddr::V6(body) => {
                    e.len_prefix(SOCKADDR_IN6_LEN).u16(AF_INET6).raw(&body);
                }
            }
        })
    }

    /// An `entity_addr_t` in the legacy form pre-Nautilus peers (without `MSG_ADDR2`) get:
    /// a zero `u32` (marker byte 0 plus three unused bytes), the `u32` nonce, then a 128-byte
    /// `sockaddr_storage` whose family is **big-endian**. The type is not transmitted; a
    /// decoder infers legacy (or none for a blank address).
    pub fn entity_addr_legacy(&mut self, a: &EntityAddr) -> &mut Self {
        self.u32(0).u32(a.nonce);
        let mut storage = [0u8; SOCKADDR_STORAGE_LEN];
        match sockaddr_of(a) {
            Sockaddr::Blank => {}
            Sockaddr::V4(body) => {
                storage[..2].copy_from_slice(&AF_INET.to_be_bytes());
                storage[2..SOCKADDR_IN_LEN].copy_from_slice(&body);
            }
            Sockaddr::V6(body) => {
                storage[..2].copy_from_slice(&AF_INET6.to_be_bytes());
                storage[2..SOCKADDR_IN6_LEN].copy_from_slice(&body);
            }
        }
        self.raw(&storage)
    }
}

/// A socket address split into its family and the bytes after the family field.
enum Sockaddr {
    Blank,
    V4([u8; SOCKADDR_IN_LEN - 2]),
    V6([u8; SOCKADDR_IN6_LEN - 2]),
}

fn sockaddr_of(a: &EntityAddr) -> Sockaddr {
    let blank = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    if a.addr_type == ADDR_TYPE_NONE && a.addr == blank {
        return Sockaddr::Blank;
    }
    match a.addr {
        SocketAddr::V4(v4) => {
            // sockaddr_in after sin_family: sin_port (be16), sin_addr (4 bytes), sin_zero (8).
            let mut body = [0u8; SOCKADDR_IN_LEN - 2];
            body[..2].copy_from_slice(&v4.port().to_be_bytes());
            body[2..6].copy_from_slice(&v4.ip().octets());
            Sockaddr::V4(body)
        }
        SocketAddr::V6(v6) => {
            // sockaddr_in6 after sin6_family: sin6_port (be16), sin6_flowinfo (4),
            // sin6_addr (16), sin6_scope_id (4). Rust keeps flowinfo/scope_id as the raw
            // in-memory values, which a little-endian host (all Ceph targets) stores LE.
            let mut body = [0u8; SOCKADDR_IN6_LEN - 2];
            body[..2].copy_from_slice(&v6.port().to_be_bytes());
            body[2..6].copy_from_slice(&v6.flowinfo().to_le_bytes());
            body[6..22].copy_from_slice(&v6.ip().octets());
            body[22..26].copy_from_slice(&v6.scope_id().to_le_bytes());
            Sockaddr::V6(body)
        }
    }
}

fn blank_addr(addr_type: u32, nonce: u32) -> EntityAddr {
    EntityAddr { addr_type, nonce, addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) }
}

/// Builds a socket address from the bytes after the family field (zero-padded to the
/// family's full size).
fn sockaddr_from(family: u16, body: &[u8]) -> Option<SocketAddr> {
    let be16 = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    let le32 = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    match family {
        AF_INET if body.len() >= SOCKADDR_IN_LEN - 2 => {
            let ip = Ipv4Addr::new(body[2], body[3], body[4], body[5]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, be16(0))))
        }
        AF_INET6 if body.len() >= SOCKADDR_IN6_LEN - 2 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[6..22]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, be16(0), le32(2), le32(22))))
        }
        _ => None,
    }
}

/// Reads Ceph-encoded values from a byte slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`EncodingError::TrailingBytes`] unless everything has been read.
    pub fn expect_end(&self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(EncodingError::TrailingBytes(n)),
        }
    }

    /// Reads any [`Decode`] value.
    pub fn get<T: Decode>(&mut self) -> DecodeResult<T> {
        T::decode(self)
    }

    /// The next `n` bytes, as they are.
    pub fn raw(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(EncodingError::Truncated { offset: self.pos, needed: n, remaining });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> DecodeResult<()> {
        self.raw(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.raw(N)?);
        Ok(out)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> DecodeResult<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> DecodeResult<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> DecodeResult<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self) -> DecodeResult<i32> {
        self.array().map(i32::from_le_bytes)
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self) -> DecodeResult<i64> {
        self.array().map(i64::from_le_bytes)
    }

    /// A bool byte. As in Ceph, any non-zero byte reads as true.
    pub fn bool(&mut self) -> DecodeResult<bool> {
        Ok(self.u8()? != 0)
    }

    /// A `u32` length prefix, checked against the remaining input.
    fn len_prefix(&mut self) -> DecodeResult<usize> {
        let offset = self.pos;
        let n = self.u32()? as usize;
        let remaining = self.remaining();
        if n > remaining {
            return Err(EncodingError::Truncated { offset, needed: n, remaining });
        }
        Ok(n)
    }

    /// A `u32` element count. Not checked against the input (elements may be wider than a
    /// byte); collection decoders cap their preallocation by the remaining bytes instead.
    fn count(&mut self) -> DecodeResult<usize> {
        Ok(self.u32()? as usize)
    }

    /// A byte list, borrowed from the input.
    pub fn bytes_ref(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.len_prefix()?;
        self.raw(n)
    }

    /// A byte list (`u32` length, then the bytes).
    pub fn bytes(&mut self) -> DecodeResult<Vec<u8>> {
        self.bytes_ref().map(<[u8]>::to_vec)
    }

    /// A string (`u32` length, then UTF-8 bytes).
    pub fn string(&mut self) -> DecodeResult<String> {
        let b = self.bytes_ref()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| EncodingError::InvalidUtf8)
    }

    /// A vector or list whose elements `f` reads.
    pub fn seq<T>(&mut self, mut f: impl FnMut(&mut Self) -> DecodeResult<T>) -> DecodeResult<Vec<T>> {
        let n = self.count()?;
        // Reserve no more memory than the input itself occupies; longer (valid) lists grow.
        let cap = self.remaining() / std::mem::size_of::<T>().max(1);
        let mut out = Vec::with_capacity(n.min(cap));
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// A set. Duplicates collapse, as they do in `std::set`.
    pub fn set<T: Ord>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<BTreeSet<T>> {
        let n = self.count()?;
        let mut out = BTreeSet::new();
        for _ in 0..n {
            out.insert(f(self)?);
        }
        Ok(out)
    }

    /// A map. A repeated key keeps its last value, as `std::map` decoding does.
    pub fn map<K: Ord, V>(
        &mut self,
        mut fk: impl FnMut(&mut Self) -> DecodeResult<K>,
        mut fv: impl FnMut(&mut Self) -> DecodeResult<V>,
    ) -> DecodeResult<BTreeMap<K, V>> {
        let n = self.count()?;
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let k = fk(self)?;
            let v = fv(self)?;
            out.insert(k, v);
        }
        Ok(out)
    }

    /// An `optional<T>`: a presence byte (any non-zero value means present), then the value.
    pub fn optional<T>(&mut self, f: impl FnOnce(&mut Self) -> DecodeResult<T>) -> DecodeResult<Option<T>> {
        if self.bool()? { f(self).map(Some) } else { Ok(None) }
    }

    /// A versioned struct (Ceph's `DECODE_START(max_v)` ... `DECODE_FINISH`).
    ///
    /// `f` receives a decoder limited to the struct's body and the encoder's `struct_v`, so
    /// it can gate newer fields on it. Reading past the body is a truncation error; body
    /// bytes `f` leaves unread (fields from a newer encoder) are skipped.
    pub fn versioned<T>(
        &mut self,
        max_v: u8,
        f: impl FnOnce(&mut Decoder<'a>, u8) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        let struct_v = self.u8()?;
        let compat = self.u8()?;
        if compat > max_v {
            return Err(EncodingError::IncompatibleVersion { compat, max: max_v });
        }
        self.bounded_body(struct_v, f)
    }

    /// A versioned struct that may also be in an older, unversioned shape (Ceph's
    /// `DECODE_START_LEGACY_COMPAT_LEN(max_v, compat_v, len_v)`): the compat byte is present
    /// only when `struct_v >= compat_v` and the length only when `struct_v >= len_v`. Without
    /// a length the body is read unbounded, as Ceph does.
    pub fn versioned_legacy<T>(
        &mut self,
        max_v: u8,
        compat_v: u8,
        len_v: u8,
        f: impl FnOnce(&mut Decoder<'a>, u8) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        let struct_v = self.u8()?;
        if struct_v >= compat_v {
            let compat = self.u8()?;
            if compat > max_v {
                return Err(EncodingError::IncompatibleVersion { compat, max: max_v });
            }
        }
        if struct_v >= len_v { self.bounded_body(struct_v, f) } else { f(self, struct_v) }
    }

    fn bounded_body<T>(
        &mut self,
        struct_v: u8,
        f: impl FnOnce(&mut Decoder<'a>, u8) -> DecodeResult<T>,
    ) -> DecodeResult<T> {
        let len = self.u32()?;
        let remaining = self.remaining();
        if len as usize > remaining {
            return Err(EncodingError::StructTooLong { len, remaining });
        }
        let body = self.raw(len as usize)?;
        let mut sub = Decoder::new(body);
        f(&mut sub, struct_v)
    }

    /// A `utime_t`.
    pub fn utime(&mut self) -> DecodeResult<UTime> {
        let sec = self.u32()?;
        let nsec = self.u32()?;
        Ok(UTime { sec, nsec })
    }

    /// An `entity_name_t`.
    pub fn entity_name(&mut self) -> DecodeResult<EntityName> {
        let t = self.u8()?;
        let kind = EntityType::from_wire(t).ok_or(EncodingError::UnknownEntityType(t))?;
        let num = self.i64()?;
        Ok(EntityName { kind, num })
    }

    /// An `entity_addr_t` in either form (see [`Encoder::entity_addr`] and
    /// [`Encoder::entity_addr_legacy`]).
    ///
    /// A legacy address gets type legacy, or none when blank. A blank address (family
    /// `AF_UNSPEC` or no sockaddr) reads as `0.0.0.0:0`. Like Ceph, the legacy decoder treats
    /// an unknown family as blank; the modern one rejects it, since it could not be re-encoded.
    pub fn entity_addr(&mut self) -> DecodeResult<EntityAddr> {
        match self.u8()? {
            0 => self.entity_addr_legacy_after_marker(),
            1 => self.versioned(1, |d, _| {
                let addr_type = d.u32()?;
                let nonce = d.u32()?;
                let elen = d.u32()?;
                if elen == 0 {
                    return Ok(blank_addr(addr_type, nonce));
                }
                if elen < 2 {
                    return Err(EncodingError::BadSockaddrLen { family: AF_UNSPEC, len: elen });
                }
                let family = d.u16()?;
                let full = match family {
                    AF_INET => SOCKADDR_IN_LEN,
                    AF_INET6 | AF_UNSPEC => SOCKADDR_IN6_LEN,
                    other => return Err(EncodingError::UnsupportedAddrFamily(other)),
                };
                if elen as usize > full {
                    return Err(EncodingError::BadSockaddrLen { family, len: elen });
                }
                let mut body = [0u8; SOCKADDR_IN6_LEN - 2];
                let given = d.raw(elen as usize - 2)?;
                body[..given.len()].copy_from_slice(given);
                Ok(match sockaddr_from(family, &body) {
                    Some(addr) => EntityAddr { addr_type, nonce, addr },
                    None => blank_addr(addr_type, nonce),
                })
            }),
            other => Err(EncodingError::BadAddrMarker(other)),
        }
    }

    fn entity_addr_legacy_after_marker(&mut self) -> DecodeResult<EntityAddr> {
        // The second marker byte and the u16 "rest" carry nothing.
        self.skip(3)?;
        let nonce = self.u32()?;
        let storage = self.raw(SOCKADDR_STORAGE_LEN)?;
        let family = u16::from_be_bytes([storage[0], storage[1]]);
        Ok(match sockaddr_from(family, &storage[2..]) {
            Some(addr) => EntityAddr { addr_type: EntityAddr::TYPE_LEGACY, nonce, addr },
            None => blank_addr(ADDR_TYPE_NONE, nonce),
        })
    }
}

macro_rules! int_codec {
    ($($t:ident),*) => {$(
        impl Encode for $t {
            fn encode(&self, e: &mut Encoder) {
                e.$t(*self);
            }
        }
        impl Decode for $t {
            fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
                d.$t()
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, i32, i64, bool);

impl Encode for str {
    fn encode(&self, e: &mut Encoder) {
        e.string(self);
    }
}

impl Encode for String {
    fn encode(&self, e: &mut Encoder) {
        e.string(self);
    }
}

impl Decode for String {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.string()
    }
}

impl Encode for UTime {
    fn encode(&self, e: &mut Encoder) {
        e.utime(*self);
    }
}

impl Decode for UTime {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.utime()
    }
}

impl Encode for EntityName {
    fn encode(&self, e: &mut Encoder) {
        e.entity_name(*self);
    }
}

impl Decode for EntityName {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.entity_name()
    }
}

impl Encode for EntityAddr {
    /// The modern form, as sent to every current peer.
    fn encode(&self, e: &mut Encoder) {
        e.entity_addr(self);
    }
}

impl Decode for EntityAddr {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.entity_addr()
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, e: &mut Encoder) {
        e.seq(self, |e, v| v.encode(e));
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, e: &mut Encoder) {
        self.as_slice().encode(e);
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.seq(T::decode)
    }
}

impl<T: Encode> Encode for BTreeSet<T> {
    fn encode(&self, e: &mut Encoder) {
        e.set(self, |e, v| v.encode(e));
    }
}

impl<T: Decode + Ord> Decode for BTreeSet<T> {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.set(T::decode)
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, e: &mut Encoder) {
        e.map(self, |e, k| k.encode(e), |e, v| v.encode(e));
    }
}

impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.map(K::decode, V::decode)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, e: &mut Encoder) {
        e.optional(self.as_ref(), |e, v| v.encode(e));
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.optional(T::decode)
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    /// `std::pair`: first, then second.
    fn encode(&self, e: &mut Encoder) {
        self.0.encode(e);
        self.1.encode(e);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        let a = A::decode(d)?;
        let b = B::decode(d)?;
        Ok((a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_length_is_patched() {
        let mut e = Encoder::new();
        e.versioned(3, 2, |e| {
            e.u32(7);
        });
        assert_eq!(e.as_slice(), &[3, 2, 4, 0, 0, 0, 7, 0, 0, 0]);
    }

    #[test]
    fn nested_versioned_lengths() {
        let mut e = Encoder::new();
        e.versioned(1, 1, |e| {
            e.u8(0xaa);
            e.versioned(1, 1, |e| {
                e.u16(0xbbcc);
            });
        });
        assert_eq!(e.as_slice(), &[1, 1, 9, 0, 0, 0, 0xaa, 1, 1, 2, 0, 0, 0, 0xcc, 0xbb]);
    }

    #[test]
    fn unread_tail_is_skipped_and_overrun_is_truncation() {
        // A v2 struct with one extra trailing field, read by a v1 decoder, then a sentinel.
        let bytes = [2, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0xee, 0x42];
        let mut d = Decoder::new(&bytes);
        let v = d.versioned(1, |d, v| {
            assert_eq!(v, 2);
            d.u32()
        });
        assert_eq!(v, Ok(9));
        assert_eq!(d.u8(), Ok(0x42));

        let mut d = Decoder::new(&bytes);
        let err = d.versioned(1, |d, _| d.u64()).unwrap_err();
        assert!(matches!(err, EncodingError::Truncated { needed: 8, remaining: 5, .. }), "{err:?}");
    }

    #[test]
    fn huge_counts_do_not_preallocate() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 1];
        let mut d = Decoder::new(&bytes);
        assert!(d.seq(Decoder::u64).is_err());
        let mut d = Decoder::new(&bytes);
        assert!(matches!(d.bytes(), Err(EncodingError::Truncated { .. })));
    }
}
