//! One rank's journal as bytes on a device, with the faults a real journal device has: the
//! journal the in-process `cluster::Cluster` keeps per rank.
//!
//! Ceph's MDS journals through `Journaler` into a striped RADOS file (mds §6.4): submitted
//! events sit in a write buffer, a flush writes them to the objects, and an event is safe —
//! its client may get the safe reply (§4.18) — once the OSDs acknowledged the write. This
//! module keeps that shape without threads or a runtime, so the cluster stays synchronous and
//! deterministic:
//!
//! * **buffered**: `submit` keeps the encoded event in memory (Ceph's write buffer). A crash
//!   loses it.
//! * **written, unsynced**: the first half of a flush frames the buffered events in the
//!   journal's stream format (`mds_journal::frame::encode_frame`, RESILIENT_CRC) at the write
//!   position. The bytes are in a volatile cache; a crash loses them, keeps them, or keeps a
//!   prefix that ends mid-frame (a torn tail).
//! * **durable**: the second half of a flush (`sync`) puts the bytes on the device — an
//!   `mds_journal::MemDevice` holding the journal's objects (`<0x200+rank>.<n>`, header in
//!   object 0, stream from one layout period on, through `FileLayout::map`) — and rewrites the
//!   header's `write_pos` to the durable end. Only now does `flush` report the events' seqs.
//!
//! Replay (`replay`) reads the device with `mds_journal::tool::inspect`, the same scanner
//! `MdLog::open` replays with: a damaged frame at or past the header's `write_pos` with
//! nothing valid after it is a torn tail, which is truncated (`tool::truncate`) and reported;
//! damage anywhere else refuses replay with the entry's offset.
//!
//! Device errors (EIO) can be armed for the next write or sync. A failed write or sync fails
//! the journal: it reports the error, refuses every later submit and never reports as safe
//! what it did not durably write. Ceph's MDS respawns on a journal write error; the cluster's
//! driver does the same through `Cluster::crash` and `Cluster::restart`.
//!
//! Why not `mds_journal::MdLog` over a `FaultDevice`: `MdLog` runs its flusher as a tokio
//! task, and `FaultDevice` guards its cache with tokio primitives whose futures can return
//! `Pending` inside a runtime (cooperative budgeting) and whose sync gate needs a runtime to
//! wake. The device here is a `MemDevice`, whose futures complete on their first poll; the
//! volatile cache and the fault switches are modelled in this module. What is reused is
//! everything a journal's bytes go through: the framing, the layout and object names, the
//! header, the scanner's torn-tail / corruption verdict and the tail truncation.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use mds_journal::frame::{encode_frame, parse_frame};
use mds_journal::tool::{self, Integrity};
use mds_journal::{
    CrashMode, FileLayout, InodeNo, JournalDevice, JournalHeader, LogEvent, MemDevice, StreamFormat,
    TornTail, header_object, object_name,
};

use crate::ids::{JournalSeq, Rank};

/// What a crash leaves of the unsynced bytes (mds-journal's own fault vocabulary), re-exported
/// so drivers of the cluster need not depend on mds-journal.
pub use mds_journal::CrashMode as FlushCrash;

/// Errors of a rank's journal.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RankJournalError {
    /// Replay found a damaged entry that is not a torn tail: acknowledged data may be behind
    /// it, so nothing is dropped and the rank does not start (Ceph's MDS goes damaged and an
    /// operator runs the journal tool).
    #[error("rank {rank}: journal corrupt at offset {offset:#x}: {reason}")]
    Corrupt {
        /// The rank.
        rank: Rank,
        /// Stream offset of the damaged entry.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The journal failed after a device error and accepts nothing until the rank restarts.
    #[error("rank {rank}: journal failed: {error}")]
    Failed {
        /// The rank.
        rank: Rank,
        /// The device error that failed it.
        error: String,
    },
    /// The rank crashed and its journal has not been replayed yet.
    #[error("rank {0}: journal not replayed since the crash")]
    NotReplayed(Rank),
    /// A device operation failed outside the injected faults (a bug here).
    #[error("rank {rank}: journal device: {error}")]
    Device {
        /// The rank.
        rank: Rank,
        /// The error.
        error: String,
    },
    /// A payload larger than the frame format allows.
    #[error("rank {rank}: journal entry of {len} bytes is too large")]
    TooLarge {
        /// The rank.
        rank: Rank,
        /// The payload's length.
        len: usize,
    },
}

/// A device error to inject: it strikes the next operation of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceFault {
    /// The next write fails with EIO; nothing of it reaches the cache.
    WriteEio,
    /// The next sync fails with EIO and drops the unsynced bytes it covered, as Linux drops
    /// dirty pages after a failed writeback.
    SyncEio,
}

impl DeviceFault {
    /// The name used in traces.
    pub fn name(self) -> &'static str {
        match self {
            DeviceFault::WriteEio => "write",
            DeviceFault::SyncEio => "sync",
        }
    }
}

/// What a crash did to the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashLoss {
    /// Submitted entries that were never written (all lost).
    pub buffered_entries: usize,
    /// Entries written but not synced when the crash came.
    pub unsynced_entries: usize,
    /// Bytes written but not synced.
    pub unsynced_bytes: u64,
    /// Of those, the bytes that reached the device anyway.
    pub kept_bytes: u64,
}

/// What `RankJournal::replay` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalReplay {
    /// Every valid entry's payload, in log order.
    pub payloads: Vec<Vec<u8>>,
    /// The torn tail that was truncated, if any.
    pub torn_tail: Option<TornTail>,
    /// Where the next entry goes.
    pub write_pos: u64,
}

/// An entry in the volatile cache: its Locker seq (none for entries written durable at once).
#[derive(Debug, Clone, Copy)]
struct Unsynced {
    seq: Option<JournalSeq>,
}

/// One rank's journal device and stream (see the module notes).
#[derive(Debug)]
pub struct RankJournal {
    rank: Rank,
    dev: MemDevice,
    header: JournalHeader,
    format: StreamFormat,
    /// Submitted, not yet written: (Locker seq, encoded event).
    buffered: VecDeque<(JournalSeq, Vec<u8>)>,
    /// Written, not synced: the stream bytes from `durable_end` on.
    cache: Vec<u8>,
    cache_entries: Vec<Unsynced>,
    /// End of the durable stream.
    durable_end: u64,
    /// Durable entries (for an ESubtreeMap's `event_seq`).
    durable_entries: u64,
    /// The highest seq made durable and not yet returned by `flush`.
    unreported: Option<JournalSeq>,
    armed: Vec<DeviceFault>,
    failure: Option<String>,
    crashed: bool,
    refused: u64,
}

/// Drives a device future that completes on its first poll (every `MemDevice` operation and
/// the journal tool's functions over it do: they never wait on anything).
fn at_once<F: Future>(rank: Rank, f: F) -> Result<F::Output, RankJournalError> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => {
            Err(RankJournalError::Device { rank, error: "device operation did not complete at once".into() })
        }
    }
}

impl RankJournal {
    /// A fresh, empty journal for `rank`: a header with every position at the start of object
    /// set 1, as `MdLog::create` writes it.
    pub fn new(rank: Rank) -> RankJournal {
        let format = StreamFormat::ResilientCrc;
        let header = JournalHeader::new(FileLayout::default(), format);
        let dev = MemDevice::new();
        dev.set_object(&header_object(rank), header.to_bytes());
        RankJournal {
            rank,
            durable_end: header.write_pos,
            dev,
            header,
            format,
            buffered: VecDeque::new(),
            cache: Vec::new(),
            cache_entries: Vec::new(),
            durable_entries: 0,
            unreported: None,
            armed: Vec::new(),
            failure: None,
            crashed: false,
            refused: 0,
        }
    }

    fn ino(&self) -> InodeNo {
        InodeNo::journal_of_rank(self.rank)
    }

    fn device_error(&self, e: impl std::fmt::Display) -> RankJournalError {
        RankJournalError::Device { rank: self.rank, error: e.to_string() }
    }

    fn accepting(&self) -> Result<(), RankJournalError> {
        if self.crashed {
            return Err(RankJournalError::NotReplayed(self.rank));
        }
        match &self.failure {
            Some(error) => Err(RankJournalError::Failed { rank: self.rank, error: error.clone() }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: String) -> RankJournalError {
        tracing::warn!(rank = self.rank, %error, "journal device error: the journal fails");
        self.failure = Some(error.clone());
        RankJournalError::Failed { rank: self.rank, error }
    }

    /// Takes an armed fault of this kind, if any.
    fn strikes(&mut self, kind: DeviceFault) -> bool {
        match self.armed.iter().position(|f| *f == kind) {
            Some(i) => {
                self.armed.remove(i);
                true
            }
            None => false,
        }
    }

    /// Keeps an event the Locker submitted (encoded) until the next flush. Refused once the
    /// journal failed or while it awaits replay; a refused entry is never written, so it can
    /// never be reported safe.
    pub fn submit(&mut self, seq: JournalSeq, payload: Vec<u8>) -> Result<(), RankJournalError> {
        if let Err(e) = self.accepting() {
            self.refused += 1;
            return Err(e);
        }
        if payload.len() as u64 > mds_journal::frame::MAX_PAYLOAD {
            return Err(RankJournalError::TooLarge { rank: self.rank, len: payload.len() });
        }
        self.buffered.push_back((seq, payload));
        Ok(())
    }

    /// Writes one event and syncs it at once (a session event, a subtree map). It goes after
    /// whatever is already written and before the buffered entries, as the cluster journals
    /// these ahead of the updates still waiting for a flush.
    pub fn append_durable(&mut self, payload: &[u8]) -> Result<(), RankJournalError> {
        self.accepting()?;
        self.write_entry(None, payload)?;
        self.sync().map(|_| ())
    }

    fn write_entry(&mut self, seq: Option<JournalSeq>, payload: &[u8]) -> Result<(), RankJournalError> {
        if payload.len() as u64 > mds_journal::frame::MAX_PAYLOAD {
            return Err(RankJournalError::TooLarge { rank: self.rank, len: payload.len() });
        }
        if self.strikes(DeviceFault::WriteEio) {
            let at = self.durable_end + self.cache.len() as u64;
            return Err(self.fail(format!("EIO writing the journal at {at:#x} (injected)")));
        }
        let start = self.durable_end + self.cache.len() as u64;
        encode_frame(self.format, start, payload, &mut self.cache);
        self.cache_entries.push(Unsynced { seq });
        Ok(())
    }

    /// The first half of a flush: frames every buffered entry into the volatile cache. Returns
    /// the bytes written. On a write error the journal fails.
    pub fn write_buffered(&mut self) -> Result<u64, RankJournalError> {
        self.accepting()?;
        let before = self.cache.len();
        while let Some((seq, payload)) = self.buffered.pop_front() {
            if let Err(e) = self.write_entry(Some(seq), &payload) {
                self.buffered.push_front((seq, payload));
                return Err(e);
            }
        }
        Ok((self.cache.len() - before) as u64)
    }

    /// The second half of a flush: puts the cached bytes on the device and moves the header's
    /// `write_pos` to the new durable end. On a sync error the cached bytes are lost and the
    /// journal fails; nothing of them is ever reported safe.
    pub fn sync(&mut self) -> Result<Option<JournalSeq>, RankJournalError> {
        self.accepting()?;
        if self.cache.is_empty() {
            return Ok(self.unreported.take());
        }
        if self.strikes(DeviceFault::SyncEio) {
            self.cache.clear();
            self.cache_entries.clear();
            let at = self.durable_end;
            return Err(self.fail(format!("EIO syncing the journal from {at:#x} (injected)")));
        }
        let bytes = std::mem::take(&mut self.cache);
        self.put(self.durable_end, &bytes)?;
        self.durable_end += bytes.len() as u64;
        let mut header = self.header.clone();
        header.write_pos = self.durable_end;
        at_once(self.rank, self.dev.write_full(&header_object(self.rank), Bytes::from(header.to_bytes())))?
            .map_err(|e| self.device_error(e))?;
        self.header = header;
        for e in self.cache_entries.drain(..) {
            self.durable_entries += 1;
            if let Some(s) = e.seq {
                self.unreported = Some(self.unreported.map_or(s, |u| u.max(s)));
            }
        }
        Ok(self.unreported.take())
    }

    /// Writes and syncs everything buffered. Returns the highest Locker seq now durable that
    /// was not reported before: what the Locker may be told is safe.
    pub fn flush(&mut self) -> Result<Option<JournalSeq>, RankJournalError> {
        self.write_buffered()?;
        self.sync()
    }

    /// Writes stream bytes at `offset` to the device, through the layout.
    fn put(&self, offset: u64, bytes: &[u8]) -> Result<(), RankJournalError> {
        let data = Bytes::copy_from_slice(bytes);
        for ext in self.header.layout.map(offset, bytes.len() as u64) {
            let at = (ext.stream_offset - offset) as usize;
            let piece = data.slice(at..at + ext.len as usize);
            at_once(self.rank, self.dev.write(&object_name(self.ino(), ext.object), ext.offset, piece))?
                .map_err(|e| self.device_error(e))?;
        }
        Ok(())
    }

    /// Reads stream bytes `[offset, offset + len)` from the device (holes read as zeros).
    fn get(&self, offset: u64, len: u64) -> Result<Vec<u8>, RankJournalError> {
        let mut out = vec![0u8; len as usize];
        for ext in self.header.layout.map(offset, len) {
            let got =
                at_once(self.rank, self.dev.read(&object_name(self.ino(), ext.object), ext.offset, ext.len))?
                    .map_err(|e| self.device_error(e))?;
            if let Some(data) = got {
                let at = (ext.stream_offset - offset) as usize;
                out[at..at + data.len()].copy_from_slice(&data);
            }
        }
        Ok(out)
    }

    /// Arms a device error for the next operation of its kind.
    pub fn arm(&mut self, fault: DeviceFault) {
        self.armed.push(fault);
    }

    /// The device error that failed the journal, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Whether the journal crashed and awaits replay.
    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    /// Submits refused since the journal was made (after a failure or a crash).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Entries submitted and not yet durable (buffered or written but unsynced).
    pub fn unsafe_entries(&self) -> usize {
        self.buffered.len() + self.cache_entries.iter().filter(|e| e.seq.is_some()).count()
    }

    /// Bytes the next flush would leave unsynced before its sync: the framed buffered entries
    /// plus what is already written.
    pub fn flush_bytes(&self) -> u64 {
        let framed: u64 = self.buffered.iter().map(|(_, p)| self.format.frame_len(p.len() as u64)).sum();
        framed + self.cache.len() as u64
    }

    /// Bytes written and not synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.cache.len() as u64
    }

    /// End of the durable stream.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// Durable entries.
    pub fn durable_entries(&self) -> u64 {
        self.durable_entries
    }

    /// The header as last written.
    pub fn header(&self) -> &JournalHeader {
        &self.header
    }

    /// The device, for `mds_journal::tool` (inspect, list events) or to damage objects in tests.
    pub fn device(&self) -> &MemDevice {
        &self.dev
    }

    /// The rank dies (process or host): buffered entries are lost, and the unsynced bytes meet
    /// `mode` — all lost, all kept, or a prefix kept that may end mid-frame (a torn tail).
    /// Armed faults and a failure stay until `replay`, which the journal needs before it
    /// accepts anything again.
    pub fn crash(&mut self, mode: CrashMode) -> CrashLoss {
        let unsynced_bytes = self.cache.len() as u64;
        let keep = match mode {
            CrashMode::LoseUnsynced => 0,
            CrashMode::TornPrefix { bytes } => bytes.min(unsynced_bytes),
            CrashMode::KeepUnsynced => unsynced_bytes,
        };
        let loss = CrashLoss {
            buffered_entries: self.buffered.len(),
            unsynced_entries: self.cache_entries.len(),
            unsynced_bytes,
            kept_bytes: keep,
        };
        if keep > 0 {
            let bytes = std::mem::take(&mut self.cache);
            // A power cut does not report errors; nothing here can fail on a MemDevice.
            if let Err(e) = self.put(self.durable_end, &bytes[..keep as usize]) {
                tracing::error!(rank = self.rank, error = %e, "crash: kept bytes not written");
            }
        }
        self.buffered.clear();
        self.cache.clear();
        self.cache_entries.clear();
        self.unreported = None;
        self.crashed = true;
        tracing::debug!(rank = self.rank, ?loss, "journal crashed");
        loss
    }

    /// Replays the journal after a crash (or at any time): checks every entry from the
    /// header's `expire_pos` as `MdLog::open` does, truncates a torn tail (reporting it) and
    /// returns every valid entry's payload. A damaged entry that is not a torn tail is an error
    /// naming its offset, and the journal is left as it was. On success the journal accepts
    /// submits again, with no fault armed (the respawned daemon finds a working device).
    pub fn replay(&mut self) -> Result<JournalReplay, RankJournalError> {
        let report =
            at_once(self.rank, tool::inspect(&self.dev, self.rank))?.map_err(|e| self.device_error(e))?;
        let torn_tail = match report.integrity {
            Integrity::Ok => None,
            Integrity::Corrupt { at, reason } => {
                tracing::error!(rank = self.rank, at, %reason, "journal corrupt: replay refused");
                return Err(RankJournalError::Corrupt { rank: self.rank, offset: at, reason });
            }
            Integrity::TornTail { at, reason } => {
                tracing::warn!(rank = self.rank, at, end = report.device_end, %reason, "torn journal tail truncated");
                let h = at_once(self.rank, tool::truncate(&self.dev, self.rank, at))?
                    .map_err(|e| self.device_error(e))?;
                self.header = h;
                Some(TornTail { at, end: report.device_end, reason })
            }
        };
        let start = report.header.expire_pos;
        let end = report.valid_end;
        let payloads: Vec<Vec<u8>> = self.entries_between(start, end)?.into_iter().map(|(_, p)| p).collect();
        self.header.write_pos = end;
        self.durable_end = end;
        self.durable_entries = payloads.len() as u64;
        self.buffered.clear();
        self.cache.clear();
        self.cache_entries.clear();
        self.unreported = None;
        self.armed.clear();
        self.failure = None;
        self.crashed = false;
        Ok(JournalReplay { payloads, torn_tail, write_pos: end })
    }

    /// The valid entries in `[start, end)` (offset, payload), stopping at the first entry that
    /// does not check out.
    fn entries_between(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, RankJournalError> {
        let stream = self.get(start, end.saturating_sub(start))?;
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < stream.len() {
            match parse_frame(self.format, start + pos as u64, &stream[pos..]) {
                Ok(f) => {
                    out.push((start + pos as u64, f.payload.to_vec()));
                    pos += f.len as usize;
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The durable entries' payloads in log order, read back from the device (every entry
    /// that checks out, up to the first that does not).
    pub fn durable_payloads(&self) -> Result<Vec<Vec<u8>>, RankJournalError> {
        Ok(self.durable_entries_at()?.into_iter().map(|(_, p)| p).collect())
    }

    fn durable_entries_at(&self) -> Result<Vec<(u64, Vec<u8>)>, RankJournalError> {
        let end = self.durable_end.max(self.header.write_pos);
        self.entries_between(self.header.expire_pos, end)
    }

    /// The durable entries, decoded.
    pub fn durable_events(&self) -> Result<Vec<LogEvent>, RankJournalError> {
        self.durable_entries_at()?
            .iter()
            .map(|(offset, p)| {
                LogEvent::decode_payload(p).map_err(|e| RankJournalError::Corrupt {
                    rank: self.rank,
                    offset: *offset,
                    reason: format!("payload does not decode: {e}"),
                })
            })
            .collect()
    }

    /// Flips one bit of the durable byte at stream offset `offset` (bit rot, for tests).
    /// False if the byte is not on the device.
    pub fn damage(&mut self, offset: u64) -> bool {
        if offset < self.header.expire_pos || offset >= self.durable_end.max(self.header.write_pos) {
            return false;
        }
        let Ok(mut b) = self.get(offset, 1) else { return false };
        b[0] ^= 0x01;
        self.put(offset, &b).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use mds_journal::ENoOp;

    use super::*;

    /// A distinct, decodable payload per `n` (replay decodes every entry it checks).
    fn ev(n: u32) -> Vec<u8> {
        LogEvent::NoOp(ENoOp { pad_size: n }).to_payload()
    }

    fn frame_len(n: u32) -> u64 {
        StreamFormat::ResilientCrc.frame_len(ev(n).len() as u64)
    }

    fn submit_all(j: &mut RankJournal, ns: &[u32]) {
        for n in ns {
            j.submit(JournalSeq(u64::from(*n)), ev(*n)).unwrap();
        }
    }

    #[test]
    fn flush_reports_seqs_only_after_sync_and_replay_reads_them_back() {
        let mut j = RankJournal::new(1);
        submit_all(&mut j, &[1, 2, 3]);
        assert_eq!(j.unsafe_entries(), 3);
        let written = j.write_buffered().unwrap();
        assert_eq!(written, frame_len(1) + frame_len(2) + frame_len(3));
        assert_eq!(j.unsafe_entries(), 3, "written is not safe");
        assert!(j.durable_payloads().unwrap().is_empty());
        assert_eq!(j.sync().unwrap(), Some(JournalSeq(3)));
        assert_eq!(j.unsafe_entries(), 0);
        assert_eq!(j.header().write_pos, j.durable_end(), "header write_pos follows the durable end");
        assert_eq!(j.durable_payloads().unwrap(), vec![ev(1), ev(2), ev(3)]);
        // The objects are the journal's: header 201.00000000, stream in 201.00000001.
        assert!(j.device().object("201.00000000").is_some());
        assert!(j.device().object("201.00000001").is_some());
        j.crash(CrashMode::LoseUnsynced);
        let r = j.replay().unwrap();
        assert_eq!(r.payloads, vec![ev(1), ev(2), ev(3)]);
        assert_eq!(r.torn_tail, None);
    }

    #[test]
    fn mds_s6_6_crash_loses_unsynced_entries_only() {
        let mut j = RankJournal::new(0);
        submit_all(&mut j, &[1, 2]);
        assert_eq!(j.flush().unwrap(), Some(JournalSeq(2)));
        submit_all(&mut j, &[3, 4]);
        j.write_buffered().unwrap();
        submit_all(&mut j, &[5]);
        let loss = j.crash(CrashMode::LoseUnsynced);
        assert_eq!(loss.buffered_entries, 1);
        assert_eq!(loss.unsynced_entries, 2);
        assert_eq!(loss.kept_bytes, 0);
        assert!(matches!(j.submit(JournalSeq(6), ev(6)), Err(RankJournalError::NotReplayed(0))));
        let r = j.replay().unwrap();
        assert_eq!(r.payloads, vec![ev(1), ev(2)]);
        assert_eq!(r.torn_tail, None, "nothing of the lost flush reached the device");
        // The journal goes on where the durable data ends.
        submit_all(&mut j, &[7]);
        assert_eq!(j.flush().unwrap(), Some(JournalSeq(7)));
        assert_eq!(j.durable_payloads().unwrap(), vec![ev(1), ev(2), ev(7)]);
    }

    #[test]
    fn mds_s6_4_torn_tail_is_truncated_and_reported() {
        let mut j = RankJournal::new(2);
        submit_all(&mut j, &[1]);
        j.flush().unwrap();
        let durable_end = j.durable_end();
        submit_all(&mut j, &[2, 3]);
        j.write_buffered().unwrap();
        // The device keeps entry 2 whole and half of entry 3.
        let keep = frame_len(2) + frame_len(3) / 2;
        let loss = j.crash(CrashMode::TornPrefix { bytes: keep });
        assert_eq!(loss.kept_bytes, keep);
        let r = j.replay().unwrap();
        // Entry 2 was never acknowledged but is intact: replay keeps it, as Ceph's would.
        assert_eq!(r.payloads, vec![ev(1), ev(2)]);
        let torn = r.torn_tail.expect("torn tail reported");
        assert_eq!(torn.at, durable_end + frame_len(2));
        assert_eq!(torn.end, durable_end + keep);
        assert_eq!(r.write_pos, torn.at);
        assert_eq!(j.header().write_pos, torn.at, "the header moved to the truncation point");
        // New entries overwrite the torn bytes and replay is clean again.
        submit_all(&mut j, &[4]);
        j.flush().unwrap();
        j.crash(CrashMode::LoseUnsynced);
        let again = j.replay().unwrap();
        assert_eq!(again.payloads, vec![ev(1), ev(2), ev(4)]);
        assert_eq!(again.torn_tail, None);
    }

    #[test]
    fn mds_s6_4_torn_sentinel_alone_is_a_torn_tail() {
        let mut j = RankJournal::new(0);
        submit_all(&mut j, &[1]);
        j.flush().unwrap();
        submit_all(&mut j, &[2]);
        j.write_buffered().unwrap();
        j.crash(CrashMode::TornPrefix { bytes: 3 });
        let r = j.replay().unwrap();
        assert_eq!(r.payloads, vec![ev(1)]);
        assert!(r.torn_tail.is_some());
    }

    #[test]
    fn mds_s6_4_corrupt_middle_entry_is_refused_with_its_offset() {
        let mut j = RankJournal::new(3);
        let start = j.durable_end();
        submit_all(&mut j, &[1, 2, 3]);
        j.flush().unwrap();
        let second = start + frame_len(1);
        assert!(j.damage(second + 14), "a payload byte of entry 2");
        j.crash(CrashMode::LoseUnsynced);
        match j.replay() {
            Err(RankJournalError::Corrupt { rank: 3, offset, reason }) => {
                assert_eq!(offset, second);
                assert!(reason.contains("crc"), "{reason}");
            }
            other => panic!("corruption not refused: {other:?}"),
        }
        let msg = j.replay().unwrap_err().to_string();
        assert!(msg.contains(&format!("{second:#x}")), "the error names the offset: {msg}");
        assert!(j.is_crashed(), "a refused replay leaves the journal down");
    }

    #[test]
    fn mds_s6_4_damaged_last_acknowledged_entry_is_corruption_not_a_torn_tail() {
        // The header's write_pos covers every synced entry, so damage to the last one cannot
        // be mistaken for a torn tail and silently dropped.
        let mut j = RankJournal::new(0);
        let start = j.durable_end();
        submit_all(&mut j, &[1, 2]);
        j.flush().unwrap();
        let last = start + frame_len(1);
        assert!(j.damage(last + 2));
        j.crash(CrashMode::LoseUnsynced);
        assert!(matches!(j.replay(), Err(RankJournalError::Corrupt { offset, .. }) if offset == last));
    }

    #[test]
    fn eio_on_write_fails_the_journal_and_acknowledges_nothing() {
        let mut j = RankJournal::new(0);
        submit_all(&mut j, &[1]);
        j.flush().unwrap();
        j.arm(DeviceFault::WriteEio);
        submit_all(&mut j, &[2, 3]);
        let e = j.flush().unwrap_err();
        assert!(matches!(e, RankJournalError::Failed { .. }), "{e}");
        assert!(j.failure().is_some_and(|f| f.contains("EIO")));
        assert!(matches!(j.submit(JournalSeq(4), ev(4)), Err(RankJournalError::Failed { .. })));
        assert!(j.append_durable(&ev(5)).is_err());
        assert!(j.flush().is_err(), "no later flush reports anything");
        assert_eq!(j.refused(), 1);
        assert_eq!(j.unsafe_entries(), 2, "the unwritten entries stay unsafe");
        j.crash(CrashMode::KeepUnsynced);
        let r = j.replay().unwrap();
        assert_eq!(r.payloads, vec![ev(1)]);
        assert_eq!(j.failure(), None, "the respawned rank starts clean");
        submit_all(&mut j, &[6]);
        assert_eq!(j.flush().unwrap(), Some(JournalSeq(6)));
    }

    #[test]
    fn eio_on_sync_drops_the_unsynced_bytes_and_acknowledges_nothing() {
        let mut j = RankJournal::new(0);
        submit_all(&mut j, &[1]);
        j.flush().unwrap();
        j.arm(DeviceFault::SyncEio);
        submit_all(&mut j, &[2]);
        assert!(matches!(j.flush(), Err(RankJournalError::Failed { .. })));
        assert_eq!(j.unsynced_bytes(), 0, "a failed sync loses what it covered");
        // Even if the "cache" would have been written back, nothing of it is left.
        let loss = j.crash(CrashMode::KeepUnsynced);
        assert_eq!(loss.kept_bytes, 0);
        assert_eq!(j.replay().unwrap().payloads, vec![ev(1)]);
    }

    #[test]
    fn eio_on_a_durable_append_fails_the_journal() {
        let mut j = RankJournal::new(0);
        j.arm(DeviceFault::SyncEio);
        assert!(j.append_durable(&ev(1)).is_err());
        assert!(j.failure().is_some());
        assert!(j.durable_payloads().unwrap().is_empty());
    }

    /// Small deterministic generator for the fault sequence below.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// mds §6.3: whatever the faults, every entry ever reported safe is replayed, in order,
    /// after every crash.
    #[test]
    fn mds_s6_3_safe_entries_survive_every_fault() {
        let (mut torn, mut failed, mut checked) = (0, 0, 0);
        for seed in 0..32u64 {
            let mut rng = Lcg(seed);
            let mut j = RankJournal::new(0);
            let mut next = 1u32;
            let mut submitted: Vec<u32> = Vec::new();
            let mut safe: Vec<u32> = Vec::new();
            for _ in 0..120 {
                match rng.below(10) {
                    0..=3 => {
                        if j.submit(JournalSeq(u64::from(next)), ev(next)).is_ok() {
                            submitted.push(next);
                        }
                        next += 1;
                    }
                    4..=5 => {
                        if let Ok(Some(upto)) = j.flush() {
                            safe.extend(submitted.iter().filter(|n| u64::from(**n) <= upto.0));
                            submitted.retain(|n| u64::from(*n) > upto.0);
                        }
                    }
                    6 => j.arm(if rng.below(2) == 0 { DeviceFault::WriteEio } else { DeviceFault::SyncEio }),
                    _ => {
                        if rng.below(2) == 0 {
                            let _ = j.write_buffered();
                        }
                        failed += usize::from(j.failure().is_some());
                        let mode = match rng.below(3) {
                            0 => CrashMode::LoseUnsynced,
                            1 => CrashMode::KeepUnsynced,
                            _ => CrashMode::TornPrefix { bytes: rng.below(j.unsynced_bytes() + 1) },
                        };
                        j.crash(mode);
                        let r = j.replay().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                        torn += usize::from(r.torn_tail.is_some());
                        let mut it = r.payloads.iter();
                        for n in &safe {
                            assert!(
                                it.any(|p| *p == ev(*n)),
                                "seed {seed}: safe entry {n} lost or out of order"
                            );
                            checked += 1;
                        }
                        submitted.clear();
                    }
                }
            }
        }
        assert!(torn > 5 && failed > 5 && checked > 1000, "torn {torn}, failed {failed}, checked {checked}");
    }
}
