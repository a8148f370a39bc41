//! The journal header (object `<ino hex>.00000000`, mds §6.4, fact 74).
//!
//! Encoded as a versioned(2, 2) struct holding, in this order: the magic string
//! `ceph fs volume v011`, `trimmed_pos`, `expire_pos`, an unused `u64`, `write_pos`, the file
//! layout and the `u8` stream format. The layout is written in the legacy 28-byte
//! `ceph_file_layout` form (seven little-endian `u32`s: stripe_unit, stripe_count, object_size,
//! cas_hash, object_stripe_unit, unused, pg_pool), which is what Ceph's journaler writes
//! **[UNCERTAIN: recalled, not re-read]**.
//!
//! The header on disk lags the journal in memory: `write_pos` there is only a hint where to start
//! probing for the real end (the end is found from object sizes at open), and `expire_pos` is
//! advanced by trimming before any object behind it is removed, so that a crash between the two
//! never leaves the header pointing at a removed object.

use rados_store::encoding::{DecodeResult, Decoder, Encoder, EncodingError};
use serde::Serialize;

use crate::error::{JournalError, Result};
use crate::frame::StreamFormat;
use crate::layout::FileLayout;

/// The header's magic string.
pub const HEADER_MAGIC: &str = "ceph fs volume v011";

/// The decoded header. Decoding is structural only (so the journal tool can show and repair a
/// header that breaks the invariants); [`JournalHeader::validate`] checks the invariants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalHeader {
    /// Should be [`HEADER_MAGIC`].
    pub magic: String,
    /// Everything before this stream offset has been removed.
    pub trimmed_pos: u64,
    /// Replay starts here: everything before has been expired (written back elsewhere).
    pub expire_pos: u64,
    /// Unused field kept for the format's sake.
    pub unused: u64,
    /// A lower bound for the end of the written stream.
    pub write_pos: u64,
    /// How the stream is striped.
    pub layout: FileLayout,
    /// The raw stream-format byte (see [`StreamFormat`]).
    pub stream_format: u8,
}

/// The names `header get` / `header set` accept, in display order.
pub const HEADER_FIELDS: [&str; 10] = [
    "magic",
    "trimmed_pos",
    "expire_pos",
    "unused",
    "write_pos",
    "stream_format",
    "layout.stripe_unit",
    "layout.stripe_count",
    "layout.object_size",
    "layout.pool_id",
];

impl JournalHeader {
    /// The header of a fresh, empty journal: every position at the start of object set 1.
    pub fn new(layout: FileLayout, format: StreamFormat) -> JournalHeader {
        let start = layout.period();
        JournalHeader {
            magic: HEADER_MAGIC.to_owned(),
            trimmed_pos: start,
            expire_pos: start,
            unused: 0,
            write_pos: start,
            layout,
            stream_format: format.wire(),
        }
    }

    /// The stream format, if the byte names one.
    pub fn format(&self) -> Option<StreamFormat> {
        StreamFormat::from_wire(self.stream_format)
    }

    /// Checks the invariants replay and appending rely on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.magic != HEADER_MAGIC {
            return Err(format!("magic {:?} is not {:?}", self.magic, HEADER_MAGIC));
        }
        self.layout.validate()?;
        match self.format() {
            Some(f) if f.is_supported() => {}
            Some(f) => return Err(format!("stream format {f:?} is not supported")),
            None => return Err(format!("unknown stream format {}", self.stream_format)),
        }
        if !(self.trimmed_pos <= self.expire_pos && self.expire_pos <= self.write_pos) {
            return Err(format!(
                "positions out of order: trimmed {:#x} expire {:#x} write {:#x}",
                self.trimmed_pos, self.expire_pos, self.write_pos
            ));
        }
        if self.trimmed_pos < self.layout.period() {
            return Err(format!(
                "trimmed_pos {:#x} is inside the header's object set (period {:#x})",
                self.trimmed_pos,
                self.layout.period()
            ));
        }
        Ok(())
    }

    /// Appends the encoding.
    pub fn encode(&self, e: &mut Encoder) {
        e.versioned(2, 2, |e| {
            e.string(&self.magic);
            e.u64(self.trimmed_pos).u64(self.expire_pos).u64(self.unused).u64(self.write_pos);
            let l = &self.layout;
            let pool = u32::try_from(l.pool_id).unwrap_or(u32::MAX);
            e.u32(l.stripe_unit).u32(l.stripe_count).u32(l.object_size);
            e.u32(0).u32(0).u32(0).u32(pool);
            e.u8(self.stream_format);
        });
    }

    /// The encoding as a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_vec()
    }

    /// Decodes a header (structure only). A version-1 header has no stream format and reads as
    /// legacy, as in Ceph.
    pub fn decode(d: &mut Decoder<'_>) -> DecodeResult<JournalHeader> {
        d.versioned(2, |d, v| {
            let magic = d.string()?;
            let trimmed_pos = d.u64()?;
            let expire_pos = d.u64()?;
            let unused = d.u64()?;
            let write_pos = d.u64()?;
            let stripe_unit = d.u32()?;
            let stripe_count = d.u32()?;
            let object_size = d.u32()?;
            let _cas_hash = d.u32()?;
            let _object_stripe_unit = d.u32()?;
            let _unused = d.u32()?;
            let pool = d.u32()?;
            let pool_id = if pool == u32::MAX { -1 } else { i64::from(pool) };
            let stream_format = if v >= 2 { d.u8()? } else { StreamFormat::Legacy.wire() };
            Ok(JournalHeader {
                magic,
                trimmed_pos,
                expire_pos,
                unused,
                write_pos,
                layout: FileLayout { stripe_unit, stripe_count, object_size, pool_id },
                stream_format,
            })
        })
    }

    /// Decodes a whole header object.
    pub fn from_bytes(buf: &[u8]) -> std::result::Result<JournalHeader, EncodingError> {
        let mut d = Decoder::new(buf);
        JournalHeader::decode(&mut d)
    }

    /// One field by name (see [`HEADER_FIELDS`]), formatted as the tool prints it: positions in
    /// hex with `0x`, other numbers in decimal, the magic as is.
    pub fn get_field(&self, name: &str) -> Result<String> {
        Ok(match name {
            "magic" => self.magic.clone(),
            "trimmed_pos" => format!("{:#x}", self.trimmed_pos),
            "expire_pos" => format!("{:#x}", self.expire_pos),
            "unused" => format!("{:#x}", self.unused),
            "write_pos" => format!("{:#x}", self.write_pos),
            "stream_format" => self.stream_format.to_string(),
            "layout.stripe_unit" => self.layout.stripe_unit.to_string(),
            "layout.stripe_count" => self.layout.stripe_count.to_string(),
            "layout.object_size" => self.layout.object_size.to_string(),
            "layout.pool_id" => self.layout.pool_id.to_string(),
            other => return Err(unknown_field(other)),
        })
    }

    /// Sets one field by name from text (decimal or `0x` hex for numbers). Does not validate the
    /// result: the tool exists to repair headers, which may pass through invalid states.
    pub fn set_field(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "magic" => self.magic = value.to_owned(),
            "trimmed_pos" => self.trimmed_pos = parse_u64(name, value)?,
            "expire_pos" => self.expire_pos = parse_u64(name, value)?,
            "unused" => self.unused = parse_u64(name, value)?,
            "write_pos" => self.write_pos = parse_u64(name, value)?,
            "stream_format" => self.stream_format = narrow(name, parse_u64(name, value)?)?,
            "layout.stripe_unit" => self.layout.stripe_unit = narrow(name, parse_u64(name, value)?)?,
            "layout.stripe_count" => self.layout.stripe_count = narrow(name, parse_u64(name, value)?)?,
            "layout.object_size" => self.layout.object_size = narrow(name, parse_u64(name, value)?)?,
            "layout.pool_id" => {
                self.layout.pool_id = value
                    .parse()
                    .map_err(|e| JournalError::InvalidArgument(format!("{name}: {value:?}: {e}")))?;
            }
            other => return Err(unknown_field(other)),
        }
        Ok(())
    }
}

fn unknown_field(name: &str) -> JournalError {
    JournalError::InvalidArgument(format!(
        "unknown header field {name:?}; known fields: {}",
        HEADER_FIELDS.join(", ")
    ))
}

/// Parses decimal or `0x`-prefixed hex.
pub(crate) fn parse_u64(what: &str, s: &str) -> Result<u64> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| JournalError::InvalidArgument(format!("{what}: {s:?} is not a number: {e}")))
}

fn narrow<T: TryFrom<u64>>(what: &str, v: u64) -> Result<T> {
    T::try_from(v).map_err(|_| JournalError::InvalidArgument(format!("{what}: {v} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_header_fact_74() {
        let h = JournalHeader::new(FileLayout::simple(0x1000), StreamFormat::ResilientCrc);
        let bytes = h.to_bytes();
        let mut expected = vec![2u8, 2];
        let body_len: u32 = 4 + 19 + 8 * 4 + 28 + 1;
        expected.extend_from_slice(&body_len.to_le_bytes());
        expected.extend_from_slice(&19u32.to_le_bytes());
        expected.extend_from_slice(b"ceph fs volume v011");
        for v in [0x1000u64, 0x1000, 0, 0x1000] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0x1000u32, 1, 0x1000, 0, 0, 0, u32::MAX] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        expected.push(2);
        assert_eq!(bytes, expected);
        assert_eq!(JournalHeader::from_bytes(&bytes).unwrap(), h);
        h.validate().unwrap();
    }

    #[test]
    fn fields_by_name() {
        let mut h = JournalHeader::new(FileLayout::default(), StreamFormat::ResilientCrc);
        for f in HEADER_FIELDS {
            let v = h.get_field(f).unwrap();
            h.set_field(f, &v).unwrap();
        }
        assert_eq!(h, JournalHeader::new(FileLayout::default(), StreamFormat::ResilientCrc));
        h.set_field("write_pos", "0x500000").unwrap();
        assert_eq!(h.write_pos, 0x50_0000);
        h.set_field("expire_pos", "4194305").unwrap();
        assert_eq!(h.expire_pos, 0x40_0001);
        assert!(h.set_field("nope", "1").is_err());
        assert!(h.set_field("write_pos", "zz").is_err());
        assert!(h.set_field("stream_format", "256").is_err());
        h.set_field("expire_pos", "0x600000").unwrap();
        assert!(h.validate().is_err(), "expire beyond write must not validate");
    }

    #[test]
    fn version_1_header_reads_as_legacy() {
        let h = JournalHeader::new(FileLayout::default(), StreamFormat::ResilientCrc);
        let mut bytes = h.to_bytes();
        bytes.pop();
        bytes[0] = 1;
        let body_len = (bytes.len() - 6) as u32;
        bytes[2..6].copy_from_slice(&body_len.to_le_bytes());
        let back = JournalHeader::from_bytes(&bytes).unwrap();
        assert_eq!(back.format(), Some(StreamFormat::Legacy));
        assert!(back.validate().is_err());
    }
}
