//! Offline inspection and repair: the library behind `cephlock journal ...` (modelled on
//! `cephfs-journal-tool`).
//!
//! Every function works on a device and a rank without opening the journal for writing, so it
//! can look at a journal that would not open (bad header, corruption). Nothing here must run
//! while an [`crate::MdLog`] has the same rank open.
//!
//! | command | function |
//! |---|---|
//! | `inspect` | [`inspect`] → [`Inspection`] (integrity: ok / torn tail at X / corrupt at Y) |
//! | `header get` | [`read_header`], [`JournalHeader::get_field`], [`crate::HEADER_FIELDS`] |
//! | `header set <field> <value>` | [`header_set`] |
//! | `event get [--type T] [--range A..B] list\|json\|summary` | [`list_events`] with [`EventFilter`] → [`EventRecord`]s |
//! | `export FILE` / `import FILE` | [`export`] / [`import`] (format below) |
//! | `reset` | [`reset`] |
//!
//! All result types implement `serde::Serialize`; their JSON shape (field names as in the Rust
//! structs, positions as plain integers, enums as lowercase tags) is the tool's stable output.
//!
//! **Export format** (version 1): the 24 bytes `cephlock-journal-export\n`, a `u32` version (1),
//! a versioned(1, 1) struct { `u32` rank, the header's own encoding, `u64` start, `u64` end },
//! then the raw stream bytes `[start, end)` — from the header's `trimmed_pos` to the end of the
//! data found on the device, torn tail included, missing objects as zeros. Integers are little
//! endian.

use std::io::{Read, Write};
use std::ops::{ControlFlow, Range};

use bytes::Bytes;
use rados_store::encoding::{Decoder, Encoder};
use serde::Serialize;

use crate::device::{JournalDevice, ObjectWrite};
use crate::error::{FrameError, JournalError, Result};
use crate::event::{EResetJournal, EventType, LogEvent};
use crate::frame::StreamFormat;
use crate::header::JournalHeader;
use crate::layout::{FileLayout, object_name, parse_object_name};
use crate::mdlog::{JournalConfig, MdLog, header_object, truncate_stream};
use crate::scan::{ScanEnd, StreamReader, scan};
use crate::types::InodeNo;

/// Reads and decodes `rank`'s header without checking its invariants (so a damaged header can
/// be shown and repaired). [`JournalError::NotFound`] if there is none.
pub async fn read_header(dev: &dyn JournalDevice, rank: u32) -> Result<JournalHeader> {
    crate::mdlog::read_header(dev, rank).await
}

/// Replaces `rank`'s header (durably, atomically). No invariant checks: this is a repair tool.
pub async fn write_header(dev: &dyn JournalDevice, rank: u32, header: &JournalHeader) -> Result<()> {
    dev.write_full(&header_object(rank), Bytes::from(header.to_bytes())).await?;
    Ok(())
}

/// Sets one header field by name ([`crate::HEADER_FIELDS`]) and writes the header back.
/// Returns the new header.
pub async fn header_set(
    dev: &dyn JournalDevice,
    rank: u32,
    field: &str,
    value: &str,
) -> Result<JournalHeader> {
    let mut h = read_header(dev, rank).await?;
    h.set_field(field, value)?;
    write_header(dev, rank, &h).await?;
    tracing::info!(rank, field, value, "journal header field set");
    Ok(h)
}

/// The integrity verdict of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Integrity {
    /// Every entry from `expire_pos` to the end checks out.
    Ok,
    /// The last entry is partial or damaged and nothing valid follows it: it was never
    /// acknowledged and the next open will truncate it.
    TornTail {
        /// Offset of the partial entry.
        at: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A damaged entry before the end (or before the header's `write_pos`): the journal will not
    /// open until repaired.
    Corrupt {
        /// Offset of the damaged entry.
        at: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// The rank.
    pub rank: u32,
    /// The header as stored.
    pub header: JournalHeader,
    /// Why the header fails its invariants, if it does.
    pub header_problem: Option<String>,
    /// The verdict.
    pub integrity: Integrity,
    /// Valid entries from `expire_pos` to the first problem (or the end).
    pub entries: u64,
    /// Offset of the first valid entry.
    pub first_entry: Option<u64>,
    /// Offset of the last valid entry.
    pub last_entry: Option<u64>,
    /// End of the last valid entry (where the next entry would go).
    pub valid_end: u64,
    /// End of the data found on the device.
    pub device_end: u64,
    /// Valid entries per event type name (undecodable payloads count as `undecodable`).
    pub event_counts: std::collections::BTreeMap<String, u64>,
}

fn usable_layout(h: &JournalHeader) -> Result<(FileLayout, StreamFormat)> {
    h.layout
        .validate()
        .map_err(|reason| JournalError::BadHeader { object: String::from("header layout"), reason })?;
    match h.format() {
        Some(f) if f.is_supported() => Ok((h.layout, f)),
        _ => Err(JournalError::BadHeader {
            object: String::from("header stream_format"),
            reason: format!("unsupported stream format {}", h.stream_format),
        }),
    }
}

/// Checks every entry of `rank`'s journal from `expire_pos` to the end, as replay would, and
/// reports the verdict without changing anything. A header whose layout or format is unusable
/// is an error ([`JournalError::BadHeader`]); other header problems are reported in
/// [`Inspection::header_problem`].
pub async fn inspect(dev: &dyn JournalDevice, rank: u32) -> Result<Inspection> {
    let header = read_header(dev, rank).await?;
    let (layout, format) = usable_layout(&header)?;
    let reader = StreamReader { dev, ino: InodeNo::journal_of_rank(rank), layout };
    let device_end = reader.probe_end(header.write_pos).await?;
    let mut counts = std::collections::BTreeMap::new();
    let mut entries = 0u64;
    let mut first = None;
    let mut last = None;
    let outcome =
        scan(&reader, format, header.expire_pos, device_end, header.write_pos, |start, _len, payload| {
            let name = match LogEvent::decode_payload(payload) {
                Ok(ev) => ev.event_type().name().to_owned(),
                Err(e) => return Err(FrameError::Event(e)),
            };
            *counts.entry(name).or_insert(0) += 1;
            entries += 1;
            first.get_or_insert(start);
            last = Some(start);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    let (integrity, valid_end) = match outcome {
        ScanEnd::Clean { end } => (Integrity::Ok, end),
        ScanEnd::TornTail { at, reason } => (Integrity::TornTail { at, reason: reason.to_string() }, at),
        ScanEnd::Corrupt { at, reason } => (Integrity::Corrupt { at, reason: reason.to_string() }, at),
    };
    Ok(Inspection {
        rank,
        header_problem: header.validate().err(),
        header,
        integrity,
        entries,
        first_entry: first,
        last_entry: last,
        valid_end,
        device_end,
        event_counts: counts,
    })
}

/// Which events [`list_events`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this type (`--type`).
    pub event_type: Option<EventType>,
    /// Only entries starting in this offset range (`--range A..B`).
    pub range: Option<Range<u64>>,
}

/// One entry as [`list_events`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// Stream offset of the entry.
    pub offset: u64,
    /// Entry length including framing.
    pub len: u64,
    /// The LogEvent type id read from the payload (0 if unreadable).
    pub type_id: u32,
    /// Its name (`EUpdate`...).
    pub type_name: String,
    /// One-line summary (or the decode error).
    pub summary: String,
    /// The decoded event; `None` if the payload does not decode (see `error`).
    pub event: Option<LogEvent>,
    /// Why the payload does not decode.
    pub error: Option<String>,
}

/// [`list_events`]' result: the entries and how the walk ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventListing {
    /// Matching entries in log order.
    pub events: Vec<EventRecord>,
    /// How the walk over the stream ended.
    pub integrity: Integrity,
}

/// The type id of a payload, read without decoding the event.
fn payload_type_id(payload: &[u8]) -> u32 {
    let mut d = Decoder::new(payload);
    match d.u32() {
        Ok(0) => d.skip(6).and_then(|()| d.u32()).unwrap_or(0),
        Ok(t) => t,
        Err(_) => 0,
    }
}

/// Lists the entries of `rank`'s journal from `expire_pos` (or the filter's range start, if
/// later) that match `filter`. Undecodable payloads with intact frames are listed with their
/// error and the walk goes on; framing damage ends the walk (see [`EventListing::integrity`]).
pub async fn list_events(dev: &dyn JournalDevice, rank: u32, filter: &EventFilter) -> Result<EventListing> {
    let header = read_header(dev, rank).await?;
    let (layout, format) = usable_layout(&header)?;
    let reader = StreamReader { dev, ino: InodeNo::journal_of_rank(rank), layout };
    let device_end = reader.probe_end(header.write_pos).await?;
    let range = filter.range.clone().unwrap_or(0..u64::MAX);
    let mut events = Vec::new();
    let outcome =
        scan(&reader, format, header.expire_pos, device_end, header.write_pos, |offset, len, payload| {
            if offset >= range.end {
                return Ok(ControlFlow::Break(()));
            }
            if offset < range.start {
                return Ok(ControlFlow::Continue(()));
            }
            let type_id = payload_type_id(payload);
            if filter.event_type.is_some_and(|t| t.id() != type_id) {
                return Ok(ControlFlow::Continue(()));
            }
            let type_name = EventType::name_of_id(type_id).to_owned();
            let rec = match LogEvent::decode_payload(payload) {
                Ok(ev) => EventRecord {
                    offset,
                    len,
                    type_id,
                    type_name,
                    summary: ev.summary(),
                    event: Some(ev),
                    error: None,
                },
                Err(e) => EventRecord {
                    offset,
                    len,
                    type_id,
                    type_name,
                    summary: format!("undecodable: {e}"),
                    event: None,
                    error: Some(e.to_string()),
                },
            };
            events.push(rec);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    let integrity = match outcome {
        ScanEnd::Clean { .. } => Integrity::Ok,
        ScanEnd::TornTail { at, reason } => Integrity::TornTail { at, reason: reason.to_string() },
        ScanEnd::Corrupt { at, reason } => Integrity::Corrupt { at, reason: reason.to_string() },
    };
    Ok(EventListing { events, integrity })
}

/// The first bytes of an export file.
pub const EXPORT_MAGIC: &[u8; 24] = b"cephlock-journal-export\n";
/// The export format version written.
pub const EXPORT_VERSION: u32 = 1;

/// What [`export`] wrote or [`import`] read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The rank the export was taken from (as recorded in the file).
    pub rank: u32,
    /// The header carried.
    pub header: JournalHeader,
    /// First stream offset carried.
    pub start: u64,
    /// End of the stream bytes carried.
    pub end: u64,
}

fn io_err(what: &str, e: std::io::Error) -> JournalError {
    JournalError::InvalidArgument(format!("{what}: {e}"))
}

/// Writes `rank`'s header and raw stream (from `trimmed_pos` to the end of the data on the
/// device) to `out` in the export format (module documentation).
pub async fn export(
    dev: &dyn JournalDevice,
    rank: u32,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary> {
    let header = read_header(dev, rank).await?;
    let (layout, _) = usable_layout(&header)?;
    let reader = StreamReader { dev, ino: InodeNo::journal_of_rank(rank), layout };
    let start = header.trimmed_pos;
    let end = reader.probe_end(header.write_pos).await?.max(start);
    let mut e = Encoder::new();
    e.raw(EXPORT_MAGIC).u32(EXPORT_VERSION);
    e.versioned(1, 1, |e| {
        e.u32(rank);
        header.encode(e);
        e.u64(start).u64(end);
    });
    out.write_all(e.as_slice()).map_err(|e| io_err("export", e))?;
    let chunk = layout.period().max(1 << 20);
    let mut pos = start;
    while pos < end {
        let len = chunk.min(end - pos);
        let data = reader.read(pos, len).await?;
        out.write_all(&data).map_err(|e| io_err("export", e))?;
        pos += len;
    }
    out.flush().map_err(|e| io_err("export", e))?;
    tracing::info!(rank, start, end, "journal exported");
    Ok(ExportSummary { rank, header, start, end })
}

/// Replaces `rank`'s journal with an export read from `input`: removes the rank's existing
/// journal objects, writes the stream bytes through the exported layout, syncs them, and then
/// writes the exported header. The rank recorded in the file is reported but not enforced, so an
/// export can be imported into another rank.
pub async fn import(
    dev: &dyn JournalDevice,
    rank: u32,
    input: &mut (dyn Read + Send),
) -> Result<ExportSummary> {
    let mut prefix = vec![0u8; EXPORT_MAGIC.len() + 4 + 6];
    input.read_exact(&mut prefix).map_err(|e| io_err("import header", e))?;
    if &prefix[..EXPORT_MAGIC.len()] != EXPORT_MAGIC {
        return Err(JournalError::InvalidArgument("not a cephlock journal export (bad magic)".into()));
    }
    let mut d = Decoder::new(&prefix[EXPORT_MAGIC.len()..]);
    let bad = |e: rados_store::encoding::EncodingError| {
        JournalError::InvalidArgument(format!("export header: {e}"))
    };
    let version = d.u32().map_err(bad)?;
    if version != EXPORT_VERSION {
        return Err(JournalError::InvalidArgument(format!(
            "export version {version} is not {EXPORT_VERSION}"
        )));
    }
    let _v = d.u8().map_err(bad)?;
    let _compat = d.u8().map_err(bad)?;
    let body_len = d.u32().map_err(bad)? as usize;
    if body_len > 1 << 20 {
        return Err(JournalError::InvalidArgument(format!("export header length {body_len} is implausible")));
    }
    let mut body = vec![0u8; body_len];
    input.read_exact(&mut body).map_err(|e| io_err("import header", e))?;
    let mut d = Decoder::new(&body);
    let from_rank = d.u32().map_err(bad)?;
    let header = JournalHeader::decode(&mut d).map_err(bad)?;
    let start = d.u64().map_err(bad)?;
    let end = d.u64().map_err(bad)?;
    let (layout, _) = usable_layout(&header)?;
    if end < start {
        return Err(JournalError::InvalidArgument(format!("export range {start:#x}..{end:#x} is reversed")));
    }
    let ino = InodeNo::journal_of_rank(rank);
    remove_journal_objects(dev, ino, false).await?;
    let chunk = layout.period().max(1 << 20);
    let mut pos = start;
    while pos < end {
        let len = chunk.min(end - pos);
        let mut data = vec![0u8; len as usize];
        input.read_exact(&mut data).map_err(|e| io_err("import data", e))?;
        let data = Bytes::from(data);
        let writes = layout
            .map(pos, len)
            .into_iter()
            .map(|ext| {
                let at = (ext.stream_offset - pos) as usize;
                ObjectWrite {
                    object: object_name(ino, ext.object),
                    offset: ext.offset,
                    data: data.slice(at..at + ext.len as usize),
                }
            })
            .collect();
        dev.write_and_sync(writes).await?;
        pos += len;
    }
    write_header(dev, rank, &header).await?;
    tracing::info!(rank, from_rank, start, end, "journal imported");
    Ok(ExportSummary { rank: from_rank, header, start, end })
}

/// Removes the journal objects of `ino` (all, or all but the header).
async fn remove_journal_objects(dev: &dyn JournalDevice, ino: InodeNo, keep_header: bool) -> Result<u64> {
    let mut removed = 0;
    let doomed = dev.list().await?.into_iter().filter(|name| match parse_object_name(ino, name) {
        Some(0) => !keep_header,
        Some(_) => true,
        None => false,
    });
    for name in doomed {
        if dev.remove(&name).await? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Resets `rank`'s journal as `cephfs-journal-tool journal reset` does: every position moves to
/// the first object set past all old data (so nothing old can be replayed), old data objects
/// are removed, the header is rewritten, and an EResetJournal is journaled as the first event.
/// Works with a missing or undecodable header, using `layout_if_unknown` then. Returns the new
/// header.
pub async fn reset(
    dev: std::sync::Arc<dyn JournalDevice>,
    rank: u32,
    layout_if_unknown: FileLayout,
) -> Result<JournalHeader> {
    let ino = InodeNo::journal_of_rank(rank);
    let old = match read_header(dev.as_ref(), rank).await {
        Ok(h) if h.layout.validate().is_ok() => Some(h),
        Ok(_) | Err(JournalError::NotFound { .. }) | Err(JournalError::BadHeader { .. }) => None,
        Err(e) => return Err(e),
    };
    let layout = old.as_ref().map(|h| h.layout).unwrap_or(layout_if_unknown);
    layout.validate().map_err(JournalError::InvalidArgument)?;
    let period = layout.period();
    // The end of everything old: the largest stream offset any object of this journal holds.
    let mut old_end = old.as_ref().map(|h| h.write_pos).unwrap_or(0);
    for name in dev.list().await? {
        if let Some(n) = parse_object_name(ino, &name).filter(|&n| n > 0)
            && let Some(size) = dev.stat(&name).await?
            && size > 0
        {
            old_end = old_end.max(layout.stream_offset(n, size.min(u64::from(layout.object_size)) - 1) + 1);
        }
    }
    let new_start = old_end.div_ceil(period).max(1) * period;
    remove_journal_objects(dev.as_ref(), ino, true).await?;
    let mut header = JournalHeader::new(layout, StreamFormat::ResilientCrc);
    header.trimmed_pos = new_start;
    header.expire_pos = new_start;
    header.write_pos = new_start;
    write_header(dev.as_ref(), rank, &header).await?;
    // Journal the reset marker through the normal path, so it is framed and synced as any event.
    let cfg = JournalConfig { rank, layout, ..JournalConfig::default() };
    let (log, _) = MdLog::open(dev.clone(), cfg).await?;
    let pos = log.submit(LogEvent::ResetJournal(EResetJournal {
        stamp: rados_store::Clock::now(&rados_store::SystemClock),
    }))?;
    log.wait_safe(&pos).await?;
    log.close().await?;
    let header = read_header(dev.as_ref(), rank).await?;
    tracing::warn!(rank, new_start, "journal reset");
    Ok(header)
}

/// Truncates `rank`'s stream at `at` (dropping everything from there on) and sets the header's
/// `write_pos` to it: the repair for corruption that replay refuses to guess about. Refuses to
/// cut before `expire_pos`.
pub async fn truncate(dev: &dyn JournalDevice, rank: u32, at: u64) -> Result<JournalHeader> {
    let mut header = read_header(dev, rank).await?;
    let (layout, _) = usable_layout(&header)?;
    if at < header.expire_pos {
        return Err(JournalError::InvalidArgument(format!(
            "cannot truncate at {at:#x}, before expire_pos {:#x}",
            header.expire_pos
        )));
    }
    let ino = InodeNo::journal_of_rank(rank);
    let reader = StreamReader { dev, ino, layout };
    let end = reader.probe_end(header.write_pos).await?;
    truncate_stream(dev, ino, &layout, at, end).await?;
    header.write_pos = at;
    write_header(dev, rank, &header).await?;
    tracing::warn!(rank, at, "journal truncated");
    Ok(header)
}

/// The object names of `rank`'s journal present on the device (header first), for listings.
pub async fn journal_objects(dev: &dyn JournalDevice, rank: u32) -> Result<Vec<String>> {
    let ino = InodeNo::journal_of_rank(rank);
    let mut objs: Vec<(u64, String)> =
        dev.list().await?.into_iter().filter_map(|n| parse_object_name(ino, &n).map(|k| (k, n))).collect();
    objs.sort();
    Ok(objs.into_iter().map(|(_, n)| n).collect())
}
