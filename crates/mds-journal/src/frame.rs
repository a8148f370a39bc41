//! Entry framing: how one event payload sits in the journal's byte stream.
//!
//! Ceph's RESILIENT format (stream format 1, mds §6.4, fact 73) frames each entry as
//!
//! ```text
//! u64 sentinel 0x3141592653589793 | u32 payload length L | L payload bytes | u64 start offset
//! ```
//!
//! so a scanner can find entry boundaries again in a damaged journal (look for the sentinel,
//! check that the trailing start offset names the sentinel's own position). It has no checksum,
//! so a torn or bit-rotted payload of the right length goes unnoticed. cephlock therefore writes
//! stream format **2, RESILIENT_CRC**, which appends a crc32c (Castagnoli) of every preceding
//! byte of the entry:
//!
//! ```text
//! off 0      u64  sentinel 0x3141592653589793   (little-endian)
//! off 8      u32  payload length L               (little-endian)
//! off 12     L    payload (the event, see crate::event)
//! off 12+L   u64  start offset of this entry in the stream (little-endian)
//! off 20+L   u32  crc32c over bytes [0, 20+L) of the entry, initial value 0
//!                 (the `crc32c` crate's convention: standard CRC-32C, reflected,
//!                 with the usual ~0 pre- and post-conditioning)
//! total 24 + L bytes
//! ```
//!
//! The checksum comes last so that an entry whose final bytes never reached the disk fails it,
//! and covers the start offset so that a stale entry copied to another position does too.
//! Format 1 is still readable and writable (for journals made by other tools); format 0
//! (LEGACY: `u32` length + payload) is recognised but refused, since it cannot tell a torn tail
//! from data.

use serde::Serialize;

use crate::error::FrameError;

/// The resilient-format sentinel that starts every entry.
pub const SENTINEL: u64 = 0x3141_5926_5358_9793;

/// The largest payload the journal writes or accepts when reading: larger lengths in a frame
/// header are garbage. Events are far smaller (Ceph's largest, a subtree map, is kilobytes to
/// a few megabytes).
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// Bytes before the payload in the resilient formats: sentinel + length.
pub const PREFIX_LEN: u64 = 12;

/// How entries are framed (`stream_format` in the header, mds §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFormat {
    /// 0: `u32` length + payload. Readable by Ceph's oldest MDS; not supported here.
    Legacy,
    /// 1: Ceph's current format: sentinel, length, payload, start offset.
    Resilient,
    /// 2: cephlock's format: format 1 plus a trailing crc32c. The default.
    ResilientCrc,
}

impl StreamFormat {
    /// The header byte.
    pub const fn wire(self) -> u8 {
        match self {
            StreamFormat::Legacy => 0,
            StreamFormat::Resilient => 1,
            StreamFormat::ResilientCrc => 2,
        }
    }

    /// The format for a header byte.
    pub const fn from_wire(b: u8) -> Option<StreamFormat> {
        match b {
            0 => Some(StreamFormat::Legacy),
            1 => Some(StreamFormat::Resilient),
            2 => Some(StreamFormat::ResilientCrc),
            _ => None,
        }
    }

    /// Whether this crate can read and write journals in this format.
    pub const fn is_supported(self) -> bool {
        !matches!(self, StreamFormat::Legacy)
    }

    /// Framing bytes added to a payload.
    pub const fn overhead(self) -> u64 {
        match self {
            StreamFormat::Legacy => 4,
            StreamFormat::Resilient => PREFIX_LEN + 8,
            StreamFormat::ResilientCrc => PREFIX_LEN + 12,
        }
    }

    /// The whole entry's length for a payload of `payload_len` bytes.
    pub const fn frame_len(self, payload_len: u64) -> u64 {
        self.overhead() + payload_len
    }
}

/// Appends one framed entry starting at stream offset `start` to `out`.
///
/// # Panics
/// If `format` is [`StreamFormat::Legacy`] or the payload exceeds [`MAX_PAYLOAD`]; the journal
/// checks both before framing, so either is a programming error.
pub fn encode_frame(format: StreamFormat, start: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(format.is_supported(), "the legacy stream format is not written");
    assert!(payload.len() as u64 <= MAX_PAYLOAD, "payload length checked by the caller");
    let begin = out.len();
    out.reserve(format.frame_len(payload.len() as u64) as usize);
    out.extend_from_slice(&SENTINEL.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&start.to_le_bytes());
    if format == StreamFormat::ResilientCrc {
        let crc = crc32c::crc32c(&out[begin..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// One entry found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame<'a> {
    /// The payload.
    pub payload: &'a [u8],
    /// The entry's total length (framing included).
    pub len: u64,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Parses the entry that starts at stream offset `start`, given `buf` = the stream's bytes from
/// `start` up to the end of the readable data. Checks everything the format can check
/// (sentinel, length bound, start offset, crc) but does not decode the payload.
///
/// `format` must be a supported one; `Legacy` reports every entry as a bad sentinel.
pub fn parse_frame(format: StreamFormat, start: u64, buf: &[u8]) -> Result<ParsedFrame<'_>, FrameError> {
    let available = buf.len() as u64;
    if available < PREFIX_LEN {
        return Err(FrameError::Truncated { needed: PREFIX_LEN, available });
    }
    let sentinel = le_u64(buf);
    if sentinel != SENTINEL || !format.is_supported() {
        return Err(FrameError::BadSentinel { found: sentinel });
    }
    let payload_len = u64::from(le_u32(&buf[8..]));
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLong { len: payload_len, max: MAX_PAYLOAD });
    }
    let len = format.frame_len(payload_len);
    if available < len {
        return Err(FrameError::Truncated { needed: len, available });
    }
    let ptr_at = (PREFIX_LEN + payload_len) as usize;
    if format == StreamFormat::ResilientCrc {
        let crc_at = ptr_at + 8;
        let stored = le_u32(&buf[crc_at..]);
        let computed = crc32c::crc32c(&buf[..crc_at]);
        if stored != computed {
            return Err(FrameError::BadCrc { stored, computed });
        }
    }
    let found = le_u64(&buf[ptr_at..]);
    if found != start {
        return Err(FrameError::BadStartPointer { found, expected: start });
    }
    Ok(ParsedFrame { payload: &buf[PREFIX_LEN as usize..ptr_at], len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_resilient_crc_frame() {
        // mds §6.4 / fact 73 framing plus the crc32c trailer, for payload "ab" at 0x400000.
        let mut out = Vec::new();
        encode_frame(StreamFormat::ResilientCrc, 0x40_0000, b"ab", &mut out);
        let mut expected = vec![0x93, 0x97, 0x58, 0x53, 0x26, 0x59, 0x41, 0x31, 2, 0, 0, 0, b'a', b'b'];
        expected.extend_from_slice(&[0, 0, 0x40, 0, 0, 0, 0, 0]);
        let crc = crc32c::crc32c(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(out, expected);
        assert_eq!(out.len() as u64, StreamFormat::ResilientCrc.frame_len(2));
        let p = parse_frame(StreamFormat::ResilientCrc, 0x40_0000, &out).unwrap();
        assert_eq!(p.payload, b"ab");
        assert_eq!(p.len, 26);
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard CRC-32C check value: crc32c("123456789") = 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn resilient_frame_without_crc_round_trips() {
        let mut out = Vec::new();
        encode_frame(StreamFormat::Resilient, 7, b"xyz", &mut out);
        assert_eq!(out.len(), 23);
        assert_eq!(parse_frame(StreamFormat::Resilient, 7, &out).unwrap().payload, b"xyz");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut out = Vec::new();
        encode_frame(StreamFormat::ResilientCrc, 4096, b"payload bytes", &mut out);
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(parse_frame(StreamFormat::ResilientCrc, 4096, &bad).is_err(), "flip at {i} undetected");
        }
    }

    #[test]
    fn truncation_and_wrong_position_are_errors() {
        let mut out = Vec::new();
        encode_frame(StreamFormat::ResilientCrc, 100, b"hello", &mut out);
        for cut in 0..out.len() {
            assert!(matches!(
                parse_frame(StreamFormat::ResilientCrc, 100, &out[..cut]),
                Err(FrameError::Truncated { .. })
            ));
        }
        // Same bytes at another position: the crc still matches, the start pointer does not.
        assert!(matches!(
            parse_frame(StreamFormat::ResilientCrc, 200, &out),
            Err(FrameError::BadStartPointer { found: 100, expected: 200 })
        ));
        let mut resilient = Vec::new();
        encode_frame(StreamFormat::Resilient, 100, b"hello", &mut resilient);
        assert!(matches!(
            parse_frame(StreamFormat::Resilient, 200, &resilient),
            Err(FrameError::BadStartPointer { .. })
        ));
    }

    #[test]
    fn huge_length_is_rejected_before_reading() {
        let mut buf = SENTINEL.to_le_bytes().to_vec();
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_frame(StreamFormat::ResilientCrc, 0, &buf), Err(FrameError::TooLong { .. })));
    }
}
