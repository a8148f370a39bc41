//! The MDS journal: log events, their encoding, a group-committing journaler, segments,
//! trimming, replay, and the inspection behind `cephlock journal`.
//!
//! In the MDS a mutation is journaled before it is applied and before its write locks are
//! released (mds §6.2, §6.3): the journal is what makes an acknowledged metadata change survive
//! a crash. This crate is that journal for one rank:
//!
//! * [`LogEvent`] — Ceph's event types with their type ids (mds §6.1) and an [`MetaBlob`]
//!   payload, each in a versioned envelope from `rados_store::encoding`;
//! * [`frame`] — how entries sit in the byte stream (Ceph's resilient framing plus crc32c);
//! * [`MdLog`] — submit events, wait until they are safe, segments with dirty-item tracking,
//!   trimming, and replay at open;
//! * [`commit::GroupCommit`] — the group-commit policy, a sans-I/O state machine;
//! * [`device`] — where objects live: a local directory with `fdatasync`, a `rados-store` pool,
//!   memory, or a fault-injecting wrapper;
//! * [`tool`] — inspect, header get/set, event listing, export/import, reset, truncate.
//!
//! # Layout on the device
//!
//! Rank `r`'s journal is inode `0x200 + r`, striped over objects `<ino hex>.<n as 8 hex>`
//! (`200.00000000`, `200.00000001`, ...). Object 0 is the [`JournalHeader`]; the stream starts
//! one layout period in (mds §6.4, facts 72–74). Positions are stream offsets.
//!
//! # Invariants
//!
//! * An entry is reported safe only after a device sync covering it returned successfully;
//!   completions fire in log order.
//! * After any device error the journal fails: every waiter gets the error, and it accepts and
//!   acknowledges nothing more.
//! * The on-disk `write_pos` never exceeds the durable end; `expire_pos` is durable before any
//!   object behind it is removed.
//! * This crate never blocks a tokio worker on file I/O (it uses the blocking pool) and never
//!   reads the system clock except through the configured `Clock`.
//!
//! # Walkthrough
//!
//! **1. Journal before you reply.** An MDS rank submits each mutation as an event and sends the
//! client its *safe* reply only once [`MdLog::wait_safe`] returns, i.e. once a device sync
//! covering the entry succeeded. A new journal starts with an [`ESubtreeMap`], the first event
//! of every segment.
//!
//! **2. Replay after a restart.** Opening the journal again replays every event from the
//! header's `expire_pos`, in log order, with its stream position.
//!
//! ```
//! use std::sync::Arc;
//! use mds_journal::{MdLog, JournalConfig, LogEvent, EUpdate, MetaBlob, MemDevice, FileLayout};
//! use rados_store::UTime;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dev = Arc::new(MemDevice::new());
//! let cfg = JournalConfig { layout: FileLayout::simple(64 << 10), ..JournalConfig::for_rank(0) };
//! let log = MdLog::create(dev.clone(), cfg.clone()).await?;
//! let pos = log.submit(LogEvent::Update(EUpdate {
//!     stamp: UTime::ZERO,
//!     op_type: "mkdir".into(),
//!     metablob: MetaBlob::default(),
//!     cmapv: 0,
//!     reqid: None,
//!     had_peers: false,
//! }))?;
//! log.wait_safe(&pos).await?; // durable: the safe reply may go out now
//! log.close().await?;
//!
//! let (_log, replay) = MdLog::open(dev, cfg).await?;
//! // The segment's ESubtreeMap, then our EUpdate.
//! assert_eq!(replay.events.len(), 2);
//! assert_eq!(replay.events[1].pos, pos);
//! # Ok::<(), mds_journal::JournalError>(())
//! # }).unwrap();
//! ```
//!
//! **3. Inspect it offline.** [`tool`] reads a journal nobody has open, checks every entry and
//! lists the events; `cephlock journal` is a thin command line over it.
//!
//! ```
//! use std::sync::Arc;
//! use mds_journal::tool::{self, EventFilter, Integrity};
//! use mds_journal::{ENoOp, FileLayout, JournalConfig, LogEvent, MdLog, MemDevice};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dev = Arc::new(MemDevice::new());
//! let cfg = JournalConfig { layout: FileLayout::simple(64 << 10), ..JournalConfig::for_rank(0) };
//! let log = MdLog::create(dev.clone(), cfg).await?;
//! let pos = log.submit(LogEvent::NoOp(ENoOp { pad_size: 16 }))?;
//! log.wait_safe(&pos).await?;
//! log.close().await?;
//!
//! let report = tool::inspect(&*dev, 0).await?;
//! assert_eq!(report.integrity, Integrity::Ok);
//! assert_eq!(report.entries, 2);
//! assert_eq!(report.header.expire_pos, 64 << 10, "the stream starts one object set in");
//! let listing = tool::list_events(&*dev, 0, &EventFilter::default()).await?;
//! let names: Vec<_> = listing.events.iter().map(|e| e.type_name.as_str()).collect();
//! assert_eq!(names, ["ESubtreeMap", "ENoOp"]);
//! # Ok::<(), mds_journal::JournalError>(())
//! # }).unwrap();
//! ```
//!
//! **4. The bytes.** Each event is framed in the stream with a sentinel, its length, its own
//! start offset and a crc32c ([`frame`]); a frame that fails any check is a torn tail at the
//! end of the journal and corruption anywhere else. `docs/journal-format.md` describes every
//! byte.
//!
//! ```
//! use mds_journal::frame::{encode_frame, parse_frame};
//! use mds_journal::{ENoOp, LogEvent, StreamFormat};
//!
//! let payload = LogEvent::NoOp(ENoOp { pad_size: 0 }).to_payload();
//! let mut stream = Vec::new();
//! encode_frame(StreamFormat::ResilientCrc, 0x40_0000, &payload, &mut stream);
//! assert_eq!(stream.len(), payload.len() + 24);
//! let entry = parse_frame(StreamFormat::ResilientCrc, 0x40_0000, &stream).unwrap();
//! assert_eq!(LogEvent::decode_payload(entry.payload).unwrap(), LogEvent::NoOp(ENoOp { pad_size: 0 }));
//!
//! stream[14] ^= 1; // one flipped bit in the payload
//! assert!(parse_frame(StreamFormat::ResilientCrc, 0x40_0000, &stream).is_err());
//! ```

pub mod commit;
pub mod device;
mod error;
pub mod event;
pub mod frame;
mod handoff;
mod header;
mod journaler;
mod layout;
mod mdlog;
pub mod metablob;
mod scan;
mod serde_util;
mod sync;
pub mod tool;
mod types;

pub use commit::BatchConfig;
pub use device::{CrashMode, DirDevice, FaultDevice, JournalDevice, MemDevice, RadosDevice};
pub use error::{DeviceError, EventDecodeError, FrameError, JournalError, Result};
pub use event::{
    ECommitted, ENoOp, EOpen, EPeerUpdate, EResetJournal, ESession, ESubtreeMap, EUpdate, EventType,
    LogEvent, PeerOp, PeerOrigOp,
};
pub use frame::StreamFormat;
pub use header::{HEADER_FIELDS, HEADER_MAGIC, JournalHeader};
pub use layout::{Extent, FileLayout, object_name, parse_object_name};
pub use mdlog::{
    DirtyItem, JournalConfig, LogPosition, LogStatus, MdLog, Replay, ReplayedEvent, SegmentInfo, SegmentWait,
    SubtreeMapFn, TornTail, TrimReport, header_object,
};
pub use metablob::{DirLump, FullDentry, MetaBlob, NullDentry, RemoteDentry};
pub use types::{
    CEPH_NOSNAP, DirFrag, Fnode, Frag, FragInfo, InoIntervals, Inode, InodeNo, MetaReqId, NestInfo,
};
