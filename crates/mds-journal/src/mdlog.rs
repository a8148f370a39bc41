//! MDLog: events, log segments, expiry and trimming, and replay (mds §6.4, §6.6).
//!
//! The metadata server's view of its journal. Every submitted event gets a sequence number and
//! belongs to the current *segment*; a segment starts with an ESubtreeMap (so replay can begin at
//! any segment) and a new one starts every `events_per_segment` events (1024) or when the stream
//! crosses a layout period (an object), so that whole objects can be removed once their
//! segments are gone.
//!
//! A segment can be discarded ("expired") once everything it dirtied has been written back to
//! the metadata objects: the cache registers each dirty item with the segment that dirtied it
//! ([`MdLog::register_dirty`]) and clears it after writeback ([`MdLog::mark_clean`]). Trimming
//! expires the oldest segments in order while there are more than `max_segments` (128), never
//! the newest one, advances `expire_pos` to the start of the oldest segment kept, makes that
//! durable in the header, and removes the objects wholly behind it. More than `max_segments`
//! segments is reported as "behind on trimming".
//!
//! Replay ([`MdLog::open`]) reads from the header's `expire_pos` to the end, checking every
//! entry; a torn tail is reported and truncated, corruption elsewhere stops the open with the
//! offset of the damaged entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rados_store::{Clock, SystemClock};
use serde::Serialize;

use crate::commit::BatchConfig;
use crate::device::JournalDevice;
use crate::error::{FrameError, JournalError, Result};
use crate::event::{ESubtreeMap, LogEvent};
use crate::frame::StreamFormat;
use crate::header::JournalHeader;
use crate::journaler::{JournalId, Journaler};
use crate::layout::{FileLayout, object_name, parse_object_name};
use crate::scan::{ScanEnd, StreamReader, scan};
use crate::types::{DirFrag, InodeNo};

/// Everything that configures one rank's journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The MDS rank; its journal is inode `0x200 + rank`.
    pub rank: u32,
    /// The layout of a journal created by [`MdLog::create`] (an existing journal keeps the one
    /// in its header).
    pub layout: FileLayout,
    /// The stream format of a new journal.
    pub stream_format: StreamFormat,
    /// Events per segment (`mds_log_events_per_segment`, 1024).
    pub events_per_segment: u64,
    /// Segments kept before trimming expires old ones (`mds_log_max_segments`, 128).
    pub max_segments: usize,
    /// Group-commit limits.
    pub batch: BatchConfig,
    /// The time source for the batch timer.
    pub clock: Arc<dyn Clock>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            rank: 0,
            layout: FileLayout::default(),
            stream_format: StreamFormat::ResilientCrc,
            events_per_segment: 1024,
            max_segments: 128,
            batch: BatchConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl JournalConfig {
    /// The default configuration for `rank`.
    pub fn for_rank(rank: u32) -> Self {
        JournalConfig { rank, ..JournalConfig::default() }
    }

    fn validate(&self) -> Result<()> {
        self.layout.validate().map_err(JournalError::InvalidArgument)?;
        if !self.stream_format.is_supported() {
            return Err(JournalError::InvalidArgument(format!(
                "stream format {:?} is not supported",
                self.stream_format
            )));
        }
        if self.events_per_segment == 0 || self.max_segments == 0 {
            return Err(JournalError::InvalidArgument(
                "events_per_segment and max_segments must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Where a submitted event sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LogPosition {
    /// The event's sequence number.
    pub seq: u64,
    /// The segment it belongs to (the sequence number of the segment's first event).
    pub segment: u64,
    /// Stream offset of the entry.
    pub start: u64,
    /// Stream offset just past the entry; the event is safe once the safe position reaches it.
    pub end: u64,
}

/// A cache object a segment must see written back before it can expire (the LogSegment lists
/// of mds §6.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirtyItem {
    /// A dirty inode (stored in its parent dirfrag, or its own object for base inodes).
    Inode(InodeNo),
    /// A dirty or new dirfrag (its object must be committed).
    DirFrag(DirFrag),
    /// A dirty dentry, written when its dirfrag is committed.
    Dentry {
        /// The dentry's dirfrag.
        dir: DirFrag,
        /// Its name.
        name: String,
    },
    /// An inode whose backtrace (`parent` xattr) must be rewritten.
    Backtrace(InodeNo),
    /// Anything else the cache tracks (table versions, open files...), by its own key.
    Other(u64),
}

/// One segment as [`MdLog::segments`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    /// Sequence number of the segment's first event.
    pub seq: u64,
    /// Stream offset of its first event.
    pub start: u64,
    /// Stream offset just past its last event.
    pub end: u64,
    /// Events in it.
    pub events: u64,
    /// Items it still waits to see written back.
    pub dirty: usize,
}

#[derive(Debug)]
struct Segment {
    start: u64,
    end: u64,
    events: u64,
    dirty: BTreeSet<DirtyItem>,
}

/// A segment trimming wanted to expire but could not yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentWait {
    /// The segment.
    pub seq: u64,
    /// Some of its events are not durable yet.
    pub not_safe: bool,
    /// Items still dirty in it: the cache should write these back.
    pub dirty: Vec<DirtyItem>,
}

/// What a trim did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrimReport {
    /// Segments expired, oldest first.
    pub expired: Vec<u64>,
    /// Older-than-allowed segments that must wait, oldest first.
    pub waiting: Vec<SegmentWait>,
    /// The expire position afterwards.
    pub expire_pos: u64,
    /// The trimmed position afterwards.
    pub trimmed_pos: u64,
    /// Objects removed.
    pub objects_removed: u64,
    /// Segments left.
    pub segments: usize,
    /// More segments than `max_segments` remain.
    pub behind_on_trimming: bool,
}

/// A snapshot of the log's positions and segment count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogStatus {
    /// The rank.
    pub rank: u32,
    /// End of everything submitted.
    pub write_pos: u64,
    /// End of everything durable.
    pub safe_pos: u64,
    /// Replay would start here.
    pub expire_pos: u64,
    /// Objects before this are gone.
    pub trimmed_pos: u64,
    /// Live segments.
    pub segments: usize,
    /// The configured limit.
    pub max_segments: usize,
    /// `segments > max_segments`.
    pub behind_on_trimming: bool,
    /// Next event sequence number.
    pub next_seq: u64,
    /// The device error that failed the journal, if it failed.
    pub error: Option<String>,
}

/// One event handed back by replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayedEvent {
    /// Where it is.
    pub pos: LogPosition,
    /// The event.
    pub event: LogEvent,
}

/// A torn tail found (and truncated) at open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// Where the partial entry started: the new write position.
    pub at: u64,
    /// Where the readable data ended.
    pub end: u64,
    /// What was wrong with the entry.
    pub reason: String,
}

/// The result of replay at open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    /// The header as found.
    pub header: JournalHeader,
    /// Events from the first segment start on, in log order.
    pub events: Vec<ReplayedEvent>,
    /// Events before the first ESubtreeMap / EResetJournal, skipped as Ceph does.
    pub skipped: u64,
    /// A torn tail that was truncated.
    pub torn_tail: Option<TornTail>,
    /// Bytes of entries read.
    pub bytes: u64,
    /// The write position after replay.
    pub write_pos: u64,
}

type PositionCallback = Box<dyn FnOnce(Result<LogPosition>) + Send + 'static>;

/// Builds the subtree map for each new segment; the journal fills in `event_seq` and
/// `expire_pos`.
pub type SubtreeMapFn = dyn Fn() -> ESubtreeMap + Send + Sync;

struct Segs {
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    dirty: HashMap<DirtyItem, u64>,
}

struct Inner {
    j: Journaler,
    cfg: JournalConfig,
    segs: Mutex<Segs>,
    subtree_map: Mutex<Option<Box<SubtreeMapFn>>>,
    trim_lock: tokio::sync::Mutex<()>,
}

/// One rank's metadata journal. Cheap to clone; clones share the journal.
#[derive(Clone)]
pub struct MdLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MdLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdLog").field("status", &self.status()).finish()
    }
}

/// The header object of `rank`'s journal.
pub fn header_object(rank: u32) -> String {
    object_name(InodeNo::journal_of_rank(rank), 0)
}

pub(crate) async fn read_header(dev: &dyn JournalDevice, rank: u32) -> Result<JournalHeader> {
    let object = header_object(rank);
    let bytes = dev
        .read(&object, 0, 1 << 20)
        .await?
        .ok_or_else(|| JournalError::NotFound { object: object.clone() })?;
    JournalHeader::from_bytes(&bytes).map_err(|e| JournalError::BadHeader { object, reason: e.to_string() })
}

/// Removes stream bytes at and after `at`: the objects of `at`'s object set are cut to what
/// lies before it, and every later object of the journal is removed — up to `end` and beyond
/// (found by listing), so that no stale entry from an earlier incarnation can ever be read as a
/// continuation of the log.
pub(crate) async fn truncate_stream(
    dev: &dyn JournalDevice,
    ino: InodeNo,
    layout: &FileLayout,
    at: u64,
    end: u64,
) -> Result<()> {
    let sc = u64::from(layout.stripe_count);
    let period = layout.period();
    let first_set = at / period;
    let last_set = end.max(at + 1).div_ceil(period);
    let mut doomed: BTreeSet<u64> = BTreeSet::new();
    for set in first_set..last_set {
        for object in set * sc..(set + 1) * sc {
            let name = object_name(ino, object);
            let keep = layout.object_bytes_before(object, at);
            if keep == 0 {
                doomed.insert(object);
            } else if dev.stat(&name).await?.is_some_and(|size| size > keep) {
                dev.truncate(&name, keep).await?;
            }
        }
    }
    for name in dev.list().await? {
        if let Some(n) = parse_object_name(ino, &name)
            && n >= (first_set + 1) * sc
        {
            doomed.insert(n);
        }
    }
    for object in doomed {
        dev.remove(&object_name(ino, object)).await?;
    }
    Ok(())
}

impl MdLog {
    fn segs(&self) -> MutexGuard<'_, Segs> {
        // Segment bookkeeping updates are single map operations; poisoning leaves it consistent.
        self.inner.segs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a new, empty journal for `cfg.rank` on `dev` and opens it. Fails if the rank
    /// already has a journal header; removes data objects of the rank left without one.
    pub async fn create(dev: Arc<dyn JournalDevice>, cfg: JournalConfig) -> Result<MdLog> {
        cfg.validate()?;
        let object = header_object(cfg.rank);
        if dev.stat(&object).await?.is_some() {
            return Err(JournalError::InvalidArgument(format!("journal header {object} already exists")));
        }
        // Data objects without a header are leftovers of a lost journal; entries in them carry
        // the very positions the new journal will use, so they must not survive.
        let ino = InodeNo::journal_of_rank(cfg.rank);
        for name in dev.list().await? {
            if parse_object_name(ino, &name).is_some() {
                tracing::warn!(rank = cfg.rank, object = %name, "removing a headerless journal object");
                dev.remove(&name).await?;
            }
        }
        let header = JournalHeader::new(cfg.layout, cfg.stream_format);
        dev.write_full(&object, Bytes::from(header.to_bytes())).await?;
        tracing::info!(rank = cfg.rank, start = header.write_pos, "journal created");
        let write_pos = header.write_pos;
        Ok(MdLog::start(dev, cfg, &header, write_pos, 1, BTreeMap::new()))
    }

    /// Opens `cfg.rank`'s journal and replays it (mds §6.6). See [`Replay`]. A torn tail is
    /// truncated (and the header rewritten) before the journal accepts new events.
    pub async fn open(dev: Arc<dyn JournalDevice>, cfg: JournalConfig) -> Result<(MdLog, Replay)> {
        cfg.validate()?;
        let rank = cfg.rank;
        let header = read_header(dev.as_ref(), rank).await?;
        header
            .validate()
            .map_err(|reason| JournalError::BadHeader { object: header_object(rank), reason })?;
        let format = header.format().unwrap_or(StreamFormat::ResilientCrc);
        let ino = InodeNo::journal_of_rank(rank);
        let reader = StreamReader { dev: dev.as_ref(), ino, layout: header.layout };
        let end = reader.probe_end(header.write_pos).await?;

        let mut builder = ReplayBuilder::default();
        let outcome =
            scan(&reader, format, header.expire_pos, end, header.write_pos, |start, len, payload| {
                let event = LogEvent::decode_payload(payload).map_err(FrameError::Event)?;
                builder.push(start, start + len, event);
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        let (write_pos, torn_tail) = match outcome {
            ScanEnd::Clean { end: e } => (e, None),
            ScanEnd::TornTail { at, reason } => {
                tracing::warn!(rank, at, end, %reason, "torn journal tail truncated");
                truncate_stream(dev.as_ref(), ino, &header.layout, at, end).await?;
                (at, Some(TornTail { at, end, reason: reason.to_string() }))
            }
            ScanEnd::Corrupt { at, reason } => {
                tracing::error!(rank, at, %reason, "journal corrupt");
                return Err(JournalError::Corrupt { offset: at, reason });
            }
        };
        let cfg = JournalConfig { layout: header.layout, stream_format: format, ..cfg };
        let ReplayBuilder { events, skipped, segments, next_seq, bytes, .. } = builder;
        let log = MdLog::start(dev, cfg, &header, write_pos, next_seq, segments);
        if write_pos != header.write_pos {
            log.inner.j.write_head().await?;
        }
        tracing::info!(rank, events = events.len(), skipped, write_pos, "journal replayed");
        Ok((log, Replay { header, events, skipped, torn_tail, bytes, write_pos }))
    }

    /// Opens the journal if it exists, else creates it (with an empty replay).
    pub async fn open_or_create(dev: Arc<dyn JournalDevice>, cfg: JournalConfig) -> Result<(MdLog, Replay)> {
        match MdLog::open(dev.clone(), cfg.clone()).await {
            Err(JournalError::NotFound { .. }) => {
                let log = MdLog::create(dev, cfg).await?;
                let header = log.inner.j.current_header();
                let write_pos = header.write_pos;
                Ok((
                    log,
                    Replay { header, events: Vec::new(), skipped: 0, torn_tail: None, bytes: 0, write_pos },
                ))
            }
            other => other,
        }
    }

    fn start(
        dev: Arc<dyn JournalDevice>,
        cfg: JournalConfig,
        header: &JournalHeader,
        write_pos: u64,
        next_seq: u64,
        segments: BTreeMap<u64, Segment>,
    ) -> MdLog {
        let id = JournalId {
            rank: cfg.rank,
            ino: InodeNo::journal_of_rank(cfg.rank),
            layout: cfg.layout,
            format: cfg.stream_format,
        };
        let j = Journaler::start(id, dev, cfg.clock.clone(), cfg.batch, header, write_pos);
        MdLog {
            inner: Arc::new(Inner {
                j,
                cfg,
                segs: Mutex::new(Segs { next_seq, segments, dirty: HashMap::new() }),
                subtree_map: Mutex::new(None),
                trim_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Sets what each new segment's ESubtreeMap contains (the cache's subtree authority map).
    /// Without one, segments start with an empty map.
    pub fn set_subtree_map_provider(&self, f: Box<SubtreeMapFn>) {
        *self.inner.subtree_map.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    fn make_subtree_map(&self) -> ESubtreeMap {
        let provider = self.inner.subtree_map.lock().unwrap_or_else(|e| e.into_inner());
        provider.as_ref().map(|f| f()).unwrap_or_default()
    }

    /// Journals `event` and returns its position at once; it is durable when
    /// [`MdLog::wait_safe`] on that position returns (mds §6.2 step 3). Starts a new segment
    /// (with an ESubtreeMap first) when the current one is full or the stream crossed an
    /// object boundary. An ESubtreeMap or EResetJournal submitted here starts a segment itself;
    /// its `event_seq` and `expire_pos` are filled in by the journal.
    pub fn submit(&self, event: LogEvent) -> Result<LogPosition> {
        self.submit_inner(event, None)
    }

    /// As [`MdLog::submit`], and runs `on_safe` once the event is durable (or with the error
    /// that made that impossible). Callbacks run on the journal's flusher task, strictly in log
    /// order, and must not block.
    pub fn submit_with(
        &self,
        event: LogEvent,
        on_safe: impl FnOnce(Result<LogPosition>) + Send + 'static,
    ) -> Result<LogPosition> {
        self.submit_inner(event, Some(Box::new(on_safe)))
    }

    fn submit_inner(&self, mut event: LogEvent, on_safe: Option<PositionCallback>) -> Result<LogPosition> {
        let period = self.inner.cfg.layout.period();
        // Encode outside the lock; only a subtree map needs its sequence number first.
        let encoded = match &event {
            LogEvent::SubtreeMap(_) => None,
            other => {
                let payload = other.to_payload();
                let len = payload.len() as u64;
                if len > crate::frame::MAX_PAYLOAD {
                    return Err(JournalError::EventTooLarge { len, max: crate::frame::MAX_PAYLOAD });
                }
                Some(payload)
            }
        };
        let pos = {
            let mut segs = self.segs();
            let j = &self.inner.j;
            let need_new = event.starts_segment()
                || match segs.segments.values().next_back() {
                    None => true,
                    Some(cur) => {
                        cur.events >= self.inner.cfg.events_per_segment
                            || j.write_pos() / period != cur.start / period
                    }
                };
            if need_new && !event.starts_segment() {
                let mut map = self.make_subtree_map();
                map.event_seq = segs.next_seq;
                map.expire_pos = j.expire_pos();
                let payload = LogEvent::SubtreeMap(map).to_payload();
                let (start, end) = j.append(&payload)?;
                let seq = segs.next_seq;
                segs.next_seq += 1;
                segs.segments.insert(seq, Segment { start, end, events: 1, dirty: BTreeSet::new() });
                tracing::debug!(rank = self.inner.cfg.rank, seq, start, "new log segment");
            }
            let seq = segs.next_seq;
            if let LogEvent::SubtreeMap(map) = &mut event {
                map.event_seq = seq;
                map.expire_pos = j.expire_pos();
            }
            let payload = match encoded {
                Some(p) => p,
                None => event.to_payload(),
            };
            // The segment this event lands in is known before the append: its own if it starts
            // one, otherwise the newest (one was ensured above).
            let segment = match segs.segments.keys().next_back() {
                Some(&last) if !event.starts_segment() => last,
                _ => seq,
            };
            // The callback is registered in the same critical section as the append, so that
            // completions fire strictly in log order (a registration after the append can lose
            // that race; found by the loom model of the flush hand-off).
            let (start, end) = match on_safe {
                Some(cb) => j.append_with(&payload, move |start, end| {
                    Box::new(move |r| cb(r.map(|()| LogPosition { seq, segment, start, end })))
                })?,
                None => j.append(&payload)?,
            };
            segs.next_seq += 1;
            if event.starts_segment() {
                segs.segments.insert(seq, Segment { start, end, events: 0, dirty: BTreeSet::new() });
            }
            let cur = segs.segments.get_mut(&segment).expect("the event's segment exists");
            cur.events += 1;
            cur.end = end;
            LogPosition { seq, segment, start, end }
        };
        tracing::trace!(rank = self.inner.cfg.rank, seq = pos.seq, start = pos.start, end = pos.end, ty = %event.event_type(), "event submitted");
        Ok(pos)
    }

    /// Waits until the event at `pos` (and everything before it) is durable. Asks for a flush.
    pub async fn wait_safe(&self, pos: &LogPosition) -> Result<()> {
        self.inner.j.wait_safe(pos.end).await
    }

    /// Waits until everything submitted so far is durable (Ceph's `wait_for_safe`).
    pub async fn wait_for_safe(&self) -> Result<()> {
        let pos = self.inner.j.write_pos();
        self.inner.j.wait_safe(pos).await
    }

    /// Asks for everything submitted so far to be flushed, without waiting (Ceph's `flush`,
    /// called by `nudge_log` and friends, mds §6.3).
    pub fn flush(&self) {
        self.inner.j.flush();
    }

    /// Records that `item` was dirtied by an event of `segment` and must be written back before
    /// the segment expires. An item already dirty in an older segment moves to the newer one.
    pub fn register_dirty(&self, segment: u64, item: DirtyItem) -> Result<()> {
        let mut segs = self.segs();
        if !segs.segments.contains_key(&segment) {
            return Err(JournalError::InvalidArgument(format!("no live segment {segment}")));
        }
        if let Some(&old) = segs.dirty.get(&item) {
            if old >= segment {
                return Ok(());
            }
            if let Some(s) = segs.segments.get_mut(&old) {
                s.dirty.remove(&item);
            }
        }
        segs.dirty.insert(item.clone(), segment);
        if let Some(s) = segs.segments.get_mut(&segment) {
            s.dirty.insert(item);
        }
        Ok(())
    }

    /// Records that `item` was written back. Returns the segment it was dirty in, if any.
    pub fn mark_clean(&self, item: &DirtyItem) -> Option<u64> {
        let mut segs = self.segs();
        let seg = segs.dirty.remove(item)?;
        if let Some(s) = segs.segments.get_mut(&seg) {
            s.dirty.remove(item);
        }
        Some(seg)
    }

    /// The segment `item` is dirty in, if it is dirty.
    pub fn dirty_segment(&self, item: &DirtyItem) -> Option<u64> {
        self.segs().dirty.get(item).copied()
    }

    /// The live segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segs()
            .segments
            .iter()
            .map(|(&seq, s)| SegmentInfo {
                seq,
                start: s.start,
                end: s.end,
                events: s.events,
                dirty: s.dirty.len(),
            })
            .collect()
    }

    /// Positions and counts.
    pub fn status(&self) -> LogStatus {
        let (segments, next_seq) = {
            let s = self.segs();
            (s.segments.len(), s.next_seq)
        };
        let j = &self.inner.j;
        LogStatus {
            rank: self.inner.cfg.rank,
            write_pos: j.write_pos(),
            safe_pos: j.safe_pos(),
            expire_pos: j.expire_pos(),
            trimmed_pos: j.trimmed_pos(),
            segments,
            max_segments: self.inner.cfg.max_segments,
            behind_on_trimming: segments > self.inner.cfg.max_segments,
            next_seq,
            error: j.error().map(|e| e.to_string()),
        }
    }

    /// Whether more than `max_segments` segments are live (Ceph's "behind on trimming").
    pub fn is_behind_on_trimming(&self) -> bool {
        self.segs().segments.len() > self.inner.cfg.max_segments
    }

    /// Expires the oldest segments while more than `max_segments` are live (mds §6.4 trim,
    /// facts 76): each must be fully durable and have no dirty items left. Stops at the first
    /// that cannot expire (expiry is in order) and lists what every over-limit segment still
    /// waits for, so the cache can write it back.
    pub async fn trim(&self) -> Result<TrimReport> {
        self.trim_keeping(self.inner.cfg.max_segments).await
    }

    /// Expires every expirable segment except the newest (Ceph's `trim_all`, used before a
    /// clean shutdown).
    pub async fn trim_all(&self) -> Result<TrimReport> {
        self.trim_keeping(1).await
    }

    async fn trim_keeping(&self, keep: usize) -> Result<TrimReport> {
        let _g = self.inner.trim_lock.lock().await;
        if let Some(e) = self.inner.j.error() {
            return Err(JournalError::Failed(e));
        }
        let keep = keep.max(1);
        let safe = self.inner.j.safe_pos();
        let (expired, waiting, new_expire) = {
            let mut segs = self.segs();
            let seqs: Vec<u64> = segs.segments.keys().copied().collect();
            let over = seqs.len().saturating_sub(keep);
            let mut expired = Vec::new();
            let mut waiting = Vec::new();
            let mut blocked = false;
            for i in 0..over {
                let seg = &segs.segments[&seqs[i]];
                // The newest segment is never a candidate (keep ≥ 1), so a successor exists.
                let end = segs.segments[&seqs[i + 1]].start;
                let not_safe = end > safe;
                if not_safe || !seg.dirty.is_empty() {
                    blocked = true;
                    waiting.push(SegmentWait {
                        seq: seqs[i],
                        not_safe,
                        dirty: seg.dirty.iter().cloned().collect(),
                    });
                } else if !blocked {
                    expired.push(seqs[i]);
                }
            }
            for seq in &expired {
                segs.segments.remove(seq);
            }
            let new_expire = segs.segments.values().next().map(|s| s.start);
            (expired, waiting, new_expire)
        };
        let mut removed = 0;
        if let Some(expire) = new_expire
            && expire > self.inner.j.expire_pos()
        {
            removed = self.inner.j.trim_to(expire).await?;
        }
        let status = self.status();
        let report = TrimReport {
            expired,
            waiting,
            expire_pos: status.expire_pos,
            trimmed_pos: status.trimmed_pos,
            objects_removed: removed,
            segments: status.segments,
            behind_on_trimming: status.behind_on_trimming,
        };
        if report.behind_on_trimming {
            tracing::warn!(
                rank = status.rank,
                segments = report.segments,
                max = status.max_segments,
                "behind on trimming"
            );
        }
        Ok(report)
    }

    /// Writes the header now (it is otherwise written at trims, at open and at close).
    pub async fn write_head(&self) -> Result<()> {
        self.inner.j.write_head().await
    }

    /// The device error that failed the journal, if any.
    pub fn error(&self) -> Option<crate::DeviceError> {
        self.inner.j.error()
    }

    /// Flushes everything, writes the header and stops the journal. Other clones fail with
    /// [`JournalError::Closed`] afterwards.
    pub async fn close(&self) -> Result<()> {
        self.inner.j.close().await
    }

    /// Stops the journal without flushing or writing the header, as a crash would (tests and
    /// the simulator use it; unflushed events are not acknowledged and may be lost).
    pub async fn abandon(&self) {
        self.inner.j.shutdown().await;
    }
}

/// Rebuilds segments and sequence numbers from replayed events, as `MDLog::_replay` does.
struct ReplayBuilder {
    events: Vec<ReplayedEvent>,
    skipped: u64,
    segments: BTreeMap<u64, Segment>,
    next_seq: u64,
    bytes: u64,
    started: bool,
}

impl Default for ReplayBuilder {
    fn default() -> Self {
        ReplayBuilder {
            events: Vec::new(),
            skipped: 0,
            segments: BTreeMap::new(),
            next_seq: 1,
            bytes: 0,
            started: false,
        }
    }
}

impl ReplayBuilder {
    fn push(&mut self, start: u64, end: u64, event: LogEvent) {
        self.bytes += end - start;
        if let LogEvent::SubtreeMap(m) = &event {
            self.next_seq = m.event_seq.max(self.next_seq);
        }
        if event.starts_segment() {
            self.started = true;
            self.segments.insert(self.next_seq, Segment { start, end, events: 0, dirty: BTreeSet::new() });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.started {
            self.skipped += 1;
            return;
        }
        let (&segment, cur) = self.segments.iter_mut().next_back().expect("started implies a segment");
        cur.events += 1;
        cur.end = end;
        self.events.push(ReplayedEvent { pos: LogPosition { seq, segment, start, end }, event });
    }
}
