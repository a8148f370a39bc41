//! Reading the stream back: probing its end, walking its entries, and telling a torn tail from
//! corruption.
//!
//! After a crash the device holds every acknowledged entry plus, possibly, part of the batch
//! whose sync never returned. The scanner walks entries from a start offset to the probed end
//! and stops at the first one that does not check out. Whether that is harmless depends on
//! where it is:
//!
//! * **clean end**: nothing but zero bytes from there on (nothing of the lost batch reached the
//!   disk, or the file system zero-filled it);
//! * **torn tail**: the bad entry is at or after the header's `write_pos` (which is only ever
//!   written from the safe position, so nothing acknowledged lies beyond it) *and* no valid entry
//!   can be found anywhere after it. Only unacknowledged bytes are affected; replay truncates them;
//! * **corrupt**: anything else — a bad entry before the header's `write_pos`, or followed by a
//!   valid entry. Data after it may have been acknowledged, so it must not be dropped silently;
//!   replay stops with the entry's offset and an operator decides (the journal tool).
//!
//! Because flushes are never pipelined (see [`crate::commit`]), the only bytes that can be lost
//! are those of one batch; if a crash persisted a later entry of that batch but not an earlier
//! one, the scanner reports corruption rather than guess — the safe direction.

use std::ops::ControlFlow;

use crate::device::JournalDevice;
use crate::error::{DeviceError, FrameError};
use crate::frame::{PREFIX_LEN, SENTINEL, StreamFormat, parse_frame};
use crate::layout::{FileLayout, object_name};
use crate::types::InodeNo;

/// How much of the stream the scanner reads at a time.
const CHUNK: u64 = 4 << 20;

/// Reads ranges of one journal's stream through its layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamReader<'a> {
    pub dev: &'a dyn JournalDevice,
    pub ino: InodeNo,
    pub layout: FileLayout,
}

impl StreamReader<'_> {
    /// The stream's bytes in `[offset, offset + len)`. Missing objects and bytes past an
    /// object's end read as zeros, as holes do in Ceph's striped files.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, DeviceError> {
        let mut out = vec![0u8; len as usize];
        for ext in self.layout.map(offset, len) {
            let name = object_name(self.ino, ext.object);
            if let Some(data) = self.dev.read(&name, ext.offset, ext.len).await? {
                let at = (ext.stream_offset - offset) as usize;
                out[at..at + data.len()].copy_from_slice(&data);
            }
        }
        Ok(out)
    }

    /// The end of the data present on the device: the largest stream offset just past a byte
    /// held by an object, searching object sets from the one holding `from` until a whole set
    /// is missing. Never less than `from`.
    pub async fn probe_end(&self, from: u64) -> Result<u64, DeviceError> {
        let sc = u64::from(self.layout.stripe_count);
        let mut end = from;
        let mut set = from / self.layout.period();
        loop {
            let mut any = false;
            for object in set * sc..(set + 1) * sc {
                if let Some(size) = self.dev.stat(&object_name(self.ino, object)).await? {
                    any = true;
                    if size > 0 {
                        let last = self
                            .layout
                            .stream_offset(object, size.min(u64::from(self.layout.object_size)) - 1);
                        end = end.max(last + 1);
                    }
                }
            }
            if !any {
                return Ok(end);
            }
            set += 1;
        }
    }
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every entry checked out; the valid stream ends at `end`.
    Clean { end: u64 },
    /// A partial or damaged last entry at `at`, with only unacknowledged bytes after it.
    TornTail { at: u64, reason: FrameError },
    /// A damaged entry at `at` that is not a torn tail.
    Corrupt { at: u64, reason: FrameError },
}

/// Walks the stream from `from` to `end`, calling `on_entry(offset, length, payload)` for each
/// valid entry. The callback may stop the scan early (`Break`) or reject an entry whose frame
/// is intact but whose payload is not acceptable (`Err`), which ends the scan as corruption.
/// `durable_floor` is the header's `write_pos`: damage before it is always corruption.
pub(crate) async fn scan<F>(
    reader: &StreamReader<'_>,
    format: StreamFormat,
    from: u64,
    end: u64,
    durable_floor: u64,
    mut on_entry: F,
) -> Result<ScanEnd, DeviceError>
where
    F: FnMut(u64, u64, &[u8]) -> Result<ControlFlow<()>, FrameError>,
{
    let mut window_start = from;
    let mut window: Vec<u8> = Vec::new();
    let mut pos = from;
    loop {
        if pos >= end {
            return Ok(ScanEnd::Clean { end: pos });
        }
        let rel = (pos - window_start) as usize;
        let window_end = window_start + window.len() as u64;
        let parsed = if rel <= window.len() {
            parse_frame(format, pos, &window[rel..])
        } else {
            Err(FrameError::Truncated { needed: PREFIX_LEN, available: 0 })
        };
        match parsed {
            Ok(frame) => {
                match on_entry(pos, frame.len, frame.payload) {
                    Ok(ControlFlow::Continue(())) => {}
                    Ok(ControlFlow::Break(())) => return Ok(ScanEnd::Clean { end: pos + frame.len }),
                    Err(reason) => return Ok(ScanEnd::Corrupt { at: pos, reason }),
                }
                pos += frame.len;
            }
            Err(FrameError::Truncated { needed, .. }) if window_end < end => {
                // Slide the window to `pos` and read at least the whole entry.
                let want = needed.max(CHUNK).min(end - pos);
                let keep = window.split_off(rel.min(window.len()));
                window = keep;
                window_start = pos;
                let have = window.len() as u64;
                if want > have {
                    let more = reader.read(pos + have, want - have).await?;
                    window.extend_from_slice(&more);
                }
            }
            Err(reason) => return classify(reader, format, pos, end, durable_floor, reason).await,
        }
    }
}

/// Decides what a bad entry at `at` means (see the module documentation).
async fn classify(
    reader: &StreamReader<'_>,
    format: StreamFormat,
    at: u64,
    end: u64,
    durable_floor: u64,
    reason: FrameError,
) -> Result<ScanEnd, DeviceError> {
    if at < durable_floor {
        return Ok(ScanEnd::Corrupt { at, reason });
    }
    let mut all_zero = true;
    let mut chunk_start = at;
    let sentinel = SENTINEL.to_le_bytes();
    while chunk_start < end {
        // Overlap chunks by 7 bytes so a sentinel straddling two chunks is still seen.
        let read_from = chunk_start.saturating_sub(7).max(at);
        let len = CHUNK.min(end - read_from);
        let buf = reader.read(read_from, len).await?;
        all_zero &= buf.iter().all(|&b| b == 0);
        for (i, w) in buf.windows(8).enumerate() {
            let q = read_from + i as u64;
            if q <= at || w != sentinel {
                continue;
            }
            if valid_entry_at(reader, format, q, end).await? {
                return Ok(ScanEnd::Corrupt { at, reason });
            }
        }
        chunk_start = read_from + len;
    }
    if all_zero { Ok(ScanEnd::Clean { end: at }) } else { Ok(ScanEnd::TornTail { at, reason }) }
}

async fn valid_entry_at(
    reader: &StreamReader<'_>,
    format: StreamFormat,
    at: u64,
    end: u64,
) -> Result<bool, DeviceError> {
    if end - at < PREFIX_LEN {
        return Ok(false);
    }
    let head = reader.read(at, PREFIX_LEN).await?;
    let len = u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
    let total = format.frame_len(len);
    if total > end - at || len > crate::frame::MAX_PAYLOAD {
        return Ok(false);
    }
    let buf = reader.read(at, total).await?;
    Ok(parse_frame(format, at, &buf).is_ok())
}
