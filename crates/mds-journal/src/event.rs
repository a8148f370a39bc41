//! Log events with Ceph's LogEvent type ids (mds §6.1, fact 75) and their encodings.
//!
//! An entry's payload is the event in Ceph's "new encoding" form: a `u32` 0
//! (`EVENT_NEW_ENCODING`), then a versioned(1, 1) envelope holding the `u32` event type and the
//! event's own versioned encoding. The decoder also accepts the older form where the payload
//! starts directly with a non-zero type id. Event bodies follow Ceph's field lists but use
//! cephlock's own struct versions (all 1): the bytes are a cephlock format, not Ceph's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rados_store::encoding::{DecodeResult, Decoder, Encoder, EncodingError};
use rados_store::{EntityAddr, EntityName, UTime};
use serde::Serialize;

use crate::error::EventDecodeError;
use crate::metablob::MetaBlob;
use crate::serde_util;
use crate::types::{
    DirFrag, InoIntervals, InodeNo, MetaReqId, decode_inos, decode_intervals, encode_inos, encode_intervals,
};

/// The marker that introduces the versioned event header (`EVENT_NEW_ENCODING`).
pub const EVENT_NEW_ENCODING: u32 = 0;

/// LogEvent type ids (Ceph's `EVENT_*`). Only the ones this crate encodes are variants of
/// [`LogEvent`]; the rest are listed so the journal tool can name what it cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// 2: first event of every segment; replay starts at one.
    SubtreeMap,
    /// 9: journal reset marker; also starts a segment in replay.
    ResetJournal,
    /// 10: a client session opened or closed.
    Session,
    /// 20: a client or internal metadata mutation.
    Update,
    /// 21: the peer side of a multi-MDS operation.
    PeerUpdate,
    /// 22: keeps open inodes alive in the journal.
    Open,
    /// 23: the leader's "all peers committed".
    Committed,
    /// 51: padding.
    NoOp,
}

impl EventType {
    /// Every type this crate encodes, in id order.
    pub const ALL: [EventType; 8] = [
        EventType::SubtreeMap,
        EventType::ResetJournal,
        EventType::Session,
        EventType::Update,
        EventType::PeerUpdate,
        EventType::Open,
        EventType::Committed,
        EventType::NoOp,
    ];

    /// Ceph's numeric id.
    pub const fn id(self) -> u32 {
        match self {
            EventType::SubtreeMap => 2,
            EventType::ResetJournal => 9,
            EventType::Session => 10,
            EventType::Update => 20,
            EventType::PeerUpdate => 21,
            EventType::Open => 22,
            EventType::Committed => 23,
            EventType::NoOp => 51,
        }
    }

    /// The type for a numeric id, if this crate knows it.
    pub const fn from_id(id: u32) -> Option<EventType> {
        Some(match id {
            2 => EventType::SubtreeMap,
            9 => EventType::ResetJournal,
            10 => EventType::Session,
            20 => EventType::Update,
            21 => EventType::PeerUpdate,
            22 => EventType::Open,
            23 => EventType::Committed,
            51 => EventType::NoOp,
            _ => return None,
        })
    }

    /// Ceph's class name (`ESubtreeMap`...), as `cephfs-journal-tool` prints it; also what
    /// `--type` filters accept.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::SubtreeMap => "ESubtreeMap",
            EventType::ResetJournal => "EResetJournal",
            EventType::Session => "ESession",
            EventType::Update => "EUpdate",
            EventType::PeerUpdate => "EPeerUpdate",
            EventType::Open => "EOpen",
            EventType::Committed => "ECommitted",
            EventType::NoOp => "ENoOp",
        }
    }

    /// Parses a class name (`EUpdate`), a short name (`update`, `UPDATE`) or a numeric id.
    pub fn parse(s: &str) -> Option<EventType> {
        if let Ok(id) = s.parse::<u32>() {
            return EventType::from_id(id);
        }
        let norm = s.trim_start_matches(['E', 'e']).to_ascii_lowercase().replace('_', "");
        EventType::ALL.into_iter().find(|t| t.name()[1..].to_ascii_lowercase() == norm)
    }

    /// The name of any Ceph event id, including those this crate does not decode.
    pub const fn name_of_id(id: u32) -> &'static str {
        match EventType::from_id(id) {
            Some(t) => t.name(),
            None => match id {
                3 => "EExport",
                4 => "EImportStart",
                5 => "EImportFinish",
                6 => "EFragment",
                11 | 12 => "ESessions",
                24 => "EPurged",
                42 => "ETableClient",
                43 => "ETableServer",
                50 => "ESubtreeMap(test)",
                _ => "unknown",
            },
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The subtree authority map: which subtrees this rank is auth for and their bounds. Journaled
/// as the first event of every segment so replay can start at any segment (mds §6.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ESubtreeMap {
    /// The subtree roots' and bounds' dirfrags and ancestry.
    pub metablob: MetaBlob,
    /// Subtree root → its bounds (nested subtrees owned elsewhere). JSON has no struct
    /// keys, so it is dumped as a list of `{"root": …, "bounds": [...]}`.
    #[serde(serialize_with = "serde_util::subtree_list")]
    pub subtrees: BTreeMap<DirFrag, Vec<DirFrag>>,
    /// Subtrees whose authority is being resolved (in-progress imports).
    pub ambiguous_subtrees: BTreeSet<DirFrag>,
    /// The journal's expire position when the map was written.
    pub expire_pos: u64,
    /// The event sequence number of this event (the segment's key).
    pub event_seq: u64,
}

/// A metadata mutation: the changes and who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EUpdate {
    /// When it was journaled.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
    /// The operation name (`mkdir`, `setattr`, `scatter_writebehind`...).
    pub op_type: String,
    /// The changes.
    pub metablob: MetaBlob,
    /// Session map version, for updates that change sessions.
    pub cmapv: u64,
    /// The client request, if any (internal updates have none).
    pub reqid: Option<MetaReqId>,
    /// The operation journaled peers (a multi-MDS op): replay must wait for an ECommitted.
    pub had_peers: bool,
}

/// The three phases of a peer update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerOp {
    /// The peer prepared and journaled its rollback (1).
    Prepare,
    /// The leader committed; the peer applies (2).
    Commit,
    /// The operation is rolled back (3).
    Rollback,
}

impl PeerOp {
    const fn wire(self) -> u8 {
        match self {
            PeerOp::Prepare => 1,
            PeerOp::Commit => 2,
            PeerOp::Rollback => 3,
        }
    }

    fn from_wire(b: u8) -> DecodeResult<PeerOp> {
        match b {
            1 => Ok(PeerOp::Prepare),
            2 => Ok(PeerOp::Commit),
            3 => Ok(PeerOp::Rollback),
            v => Err(EncodingError::InvalidValue { what: "EPeerUpdate op", value: u64::from(v) }),
        }
    }
}

/// Which multi-MDS operation a peer update belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerOrigOp {
    /// A hard link across ranks (1).
    Link,
    /// A rename across ranks (2).
    Rename,
    /// An rmdir of a directory with subtrees on other ranks (3).
    Rmdir,
}

impl PeerOrigOp {
    const fn wire(self) -> u8 {
        match self {
            PeerOrigOp::Link => 1,
            PeerOrigOp::Rename => 2,
            PeerOrigOp::Rmdir => 3,
        }
    }

    fn from_wire(b: u8) -> DecodeResult<PeerOrigOp> {
        match b {
            1 => Ok(PeerOrigOp::Link),
            2 => Ok(PeerOrigOp::Rename),
            3 => Ok(PeerOrigOp::Rmdir),
            v => Err(EncodingError::InvalidValue { what: "EPeerUpdate origop", value: u64::from(v) }),
        }
    }
}

/// The peer side of a multi-MDS operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EPeerUpdate {
    /// When it was journaled.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
    /// The operation name.
    pub op_type: String,
    /// The leader's request.
    pub reqid: MetaReqId,
    /// The leader's rank.
    pub leader: i32,
    /// Prepare, commit or rollback.
    pub op: PeerOp,
    /// Which operation.
    pub origop: PeerOrigOp,
    /// The changes this phase applies.
    pub commit: MetaBlob,
    /// The encoded rollback record (PREPARE only), opaque to the journal.
    #[serde(serialize_with = "serde_util::hex")]
    pub rollback: Vec<u8>,
}

/// Inodes that must stay in the journal because clients hold them open or have caps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EOpen {
    /// When it was journaled.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
    /// The inodes' records and ancestry.
    pub metablob: MetaBlob,
    /// The open head inodes.
    pub inos: Vec<InodeNo>,
    /// Open snapshotted inodes.
    pub snap_inos: Vec<InodeNo>,
}

/// The leader's record that every peer of a request committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ECommitted {
    /// When it was journaled.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
    /// The committed request.
    pub reqid: MetaReqId,
}

/// A client session opened or closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ESession {
    /// When it was journaled.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
    /// The client.
    #[serde(serialize_with = "serde_util::entity_name")]
    pub client: EntityName,
    /// The client's address.
    #[serde(serialize_with = "serde_util::entity_addr")]
    pub addr: EntityAddr,
    /// Opened (true) or closed.
    pub open: bool,
    /// Session map version after the change.
    pub cmapv: u64,
    /// Preallocated inode numbers returned to the inode table on close.
    pub inos_to_free: InoIntervals,
    /// Inode table version after the change.
    pub inotable_version: u64,
    /// Client metadata (hostname, mount point...).
    pub client_metadata: BTreeMap<String, String>,
}

/// Padding, so a segment or object can end where the journal needs it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ENoOp {
    /// Bytes of zero padding carried.
    pub pad_size: u32,
}

/// A journal reset (written by `cephlock journal reset`); replay starts a segment here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EResetJournal {
    /// When the reset happened.
    #[serde(serialize_with = "serde_util::utime")]
    pub stamp: UTime,
}

/// One journal event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "event")]
pub enum LogEvent {
    /// ESubtreeMap (2).
    SubtreeMap(ESubtreeMap),
    /// EResetJournal (9).
    ResetJournal(EResetJournal),
    /// ESession (10).
    Session(ESession),
    /// EUpdate (20).
    Update(EUpdate),
    /// EPeerUpdate (21).
    PeerUpdate(EPeerUpdate),
    /// EOpen (22).
    Open(EOpen),
    /// ECommitted (23).
    Committed(ECommitted),
    /// ENoOp (51).
    NoOp(ENoOp),
}

/// Largest ENoOp padding accepted on decode, so garbage cannot ask for gigabytes of padding.
const MAX_NOOP_PAD: u32 = 16 << 20;

impl LogEvent {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            LogEvent::SubtreeMap(_) => EventType::SubtreeMap,
            LogEvent::ResetJournal(_) => EventType::ResetJournal,
            LogEvent::Session(_) => EventType::Session,
            LogEvent::Update(_) => EventType::Update,
            LogEvent::PeerUpdate(_) => EventType::PeerUpdate,
            LogEvent::Open(_) => EventType::Open,
            LogEvent::Committed(_) => EventType::Committed,
            LogEvent::NoOp(_) => EventType::NoOp,
        }
    }

    /// Whether replay starts a new log segment at this event (mds §6.6).
    pub fn starts_segment(&self) -> bool {
        matches!(self, LogEvent::SubtreeMap(_) | LogEvent::ResetJournal(_))
    }

    /// The event's metablob, if its type has one.
    pub fn metablob(&self) -> Option<&MetaBlob> {
        match self {
            LogEvent::SubtreeMap(e) => Some(&e.metablob),
            LogEvent::Update(e) => Some(&e.metablob),
            LogEvent::PeerUpdate(e) => Some(&e.commit),
            LogEvent::Open(e) => Some(&e.metablob),
            _ => None,
        }
    }

    /// A one-line description for `event get summary` / `list`.
    pub fn summary(&self) -> String {
        match self {
            LogEvent::SubtreeMap(e) => {
                format!(
                    "ESubtreeMap seq {} subtrees {} expire_pos {:#x}",
                    e.event_seq,
                    e.subtrees.len(),
                    e.expire_pos
                )
            }
            LogEvent::ResetJournal(_) => "EResetJournal".to_owned(),
            LogEvent::Session(e) => {
                format!("ESession {} {}", e.client, if e.open { "open" } else { "close" })
            }
            LogEvent::Update(e) => {
                let req = e.reqid.map(|r| r.to_string()).unwrap_or_else(|| "-".to_owned());
                format!(
                    "EUpdate {} req {} dirs {}{}",
                    e.op_type,
                    req,
                    e.metablob.dirs.len(),
                    peers(e.had_peers)
                )
            }
            LogEvent::PeerUpdate(e) => {
                format!(
                    "EPeerUpdate {} {:?} {:?} req {} leader mds.{}",
                    e.op_type, e.op, e.origop, e.reqid, e.leader
                )
            }
            LogEvent::Open(e) => format!("EOpen inos {} snap_inos {}", e.inos.len(), e.snap_inos.len()),
            LogEvent::Committed(e) => format!("ECommitted req {}", e.reqid),
            LogEvent::NoOp(e) => format!("ENoOp pad {}", e.pad_size),
        }
    }

    /// Appends the entry payload: the new-encoding marker and the versioned event.
    pub fn encode_payload(&self, e: &mut Encoder) {
        e.u32(EVENT_NEW_ENCODING);
        e.versioned(1, 1, |e| {
            e.u32(self.event_type().id());
            self.encode_body(e);
        });
    }

    /// The entry payload as a fresh buffer.
    pub fn to_payload(&self) -> Vec<u8> {
        // Most events (an EUpdate of a create or rename) fit in 1 KiB: sizing the buffer once
        // saves the doubling reallocations that otherwise dominate encoding time.
        let mut e = Encoder::with_capacity(1024);
        self.encode_payload(&mut e);
        e.into_vec()
    }

    /// Decodes an entry payload. Never panics; trailing bytes after the event are an error,
    /// since a payload is exactly one event.
    pub fn decode_payload(buf: &[u8]) -> Result<LogEvent, EventDecodeError> {
        let header_err = |source| EventDecodeError::Encoding { event: "event header", source };
        let mut d = Decoder::new(buf);
        let first = d.u32().map_err(header_err)?;
        let ev = if first == EVENT_NEW_ENCODING {
            let mut inner = None;
            d.versioned(1, |d, _| {
                let ty = d.u32()?;
                inner = Some(Self::decode_body(ty, d));
                Ok(())
            })
            .map_err(header_err)?;
            match inner {
                Some(r) => r?,
                None => {
                    return Err(header_err(EncodingError::InvalidValue { what: "event header", value: 0 }));
                }
            }
        } else {
            Self::decode_body(first, &mut d)?
        };
        d.expect_end().map_err(header_err)?;
        Ok(ev)
    }

    fn decode_body(ty: u32, d: &mut Decoder<'_>) -> Result<LogEvent, EventDecodeError> {
        let t = EventType::from_id(ty).ok_or(EventDecodeError::UnknownType(ty))?;
        let wrap = |source| EventDecodeError::Encoding { event: t.name(), source };
        let ev = match t {
            EventType::SubtreeMap => LogEvent::SubtreeMap(decode_subtree_map(d).map_err(wrap)?),
            EventType::ResetJournal => LogEvent::ResetJournal(
                d.versioned(1, |d, _| Ok(EResetJournal { stamp: d.utime()? })).map_err(wrap)?,
            ),
            EventType::Session => LogEvent::Session(decode_session(d).map_err(wrap)?),
            EventType::Update => LogEvent::Update(decode_update(d).map_err(wrap)?),
            EventType::PeerUpdate => LogEvent::PeerUpdate(decode_peer_update(d).map_err(wrap)?),
            EventType::Open => LogEvent::Open(
                d.versioned(1, |d, _| {
                    Ok(EOpen {
                        stamp: d.utime()?,
                        metablob: MetaBlob::decode(d)?,
                        inos: decode_inos(d)?,
                        snap_inos: decode_inos(d)?,
                    })
                })
                .map_err(wrap)?,
            ),
            EventType::Committed => LogEvent::Committed(
                d.versioned(1, |d, _| Ok(ECommitted { stamp: d.utime()?, reqid: MetaReqId::decode(d)? }))
                    .map_err(wrap)?,
            ),
            EventType::NoOp => LogEvent::NoOp(decode_noop(d).map_err(wrap)?),
        };
        Ok(ev)
    }

    fn encode_body(&self, e: &mut Encoder) {
        match self {
            LogEvent::SubtreeMap(s) => {
                e.versioned(1, 1, |e| {
                    s.metablob.encode(e);
                    e.map(
                        &s.subtrees,
                        |e, k| k.encode(e),
                        |e, v| {
                            e.seq(v, |e, b| b.encode(e));
                        },
                    );
                    e.set(&s.ambiguous_subtrees, |e, df| df.encode(e));
                    e.u64(s.expire_pos).u64(s.event_seq);
                });
            }
            LogEvent::ResetJournal(r) => {
                e.versioned(1, 1, |e| {
                    e.utime(r.stamp);
                });
            }
            LogEvent::Session(s) => {
                e.versioned(1, 1, |e| {
                    e.utime(s.stamp).entity_name(s.client).entity_addr(&s.addr).bool(s.open).u64(s.cmapv);
                    encode_intervals(e, &s.inos_to_free);
                    e.u64(s.inotable_version);
                    e.map(
                        &s.client_metadata,
                        |e, k| {
                            e.string(k);
                        },
                        |e, v| {
                            e.string(v);
                        },
                    );
                });
            }
            LogEvent::Update(u) => {
                e.versioned(1, 1, |e| {
                    e.utime(u.stamp).string(&u.op_type);
                    u.metablob.encode(e);
                    e.u64(u.cmapv);
                    e.optional(u.reqid.as_ref(), |e, r| r.encode(e));
                    e.bool(u.had_peers);
                });
            }
            LogEvent::PeerUpdate(p) => {
                e.versioned(1, 1, |e| {
                    e.utime(p.stamp).string(&p.op_type);
                    p.reqid.encode(e);
                    e.i32(p.leader).u8(p.op.wire()).u8(p.origop.wire());
                    p.commit.encode(e);
                    e.bytes(&p.rollback);
                });
            }
            LogEvent::Open(o) => {
                e.versioned(1, 1, |e| {
                    e.utime(o.stamp);
                    o.metablob.encode(e);
                    encode_inos(e, &o.inos);
                    encode_inos(e, &o.snap_inos);
                });
            }
            LogEvent::Committed(c) => {
                e.versioned(1, 1, |e| {
                    e.utime(c.stamp);
                    c.reqid.encode(e);
                });
            }
            LogEvent::NoOp(n) => {
                e.versioned(1, 1, |e| {
                    e.u32(n.pad_size);
                    e.raw(&vec![0u8; n.pad_size as usize]);
                });
            }
        }
    }
}

fn peers(had_peers: bool) -> &'static str {
    if had_peers { " had_peers" } else { "" }
}

fn decode_subtree_map(d: &mut Decoder<'_>) -> DecodeResult<ESubtreeMap> {
    d.versioned(1, |d, _| {
        Ok(ESubtreeMap {
            metablob: MetaBlob::decode(d)?,
            subtrees: d.map(DirFrag::decode, |d| d.seq(DirFrag::decode))?,
            ambiguous_subtrees: d.set(DirFrag::decode)?,
            expire_pos: d.u64()?,
            event_seq: d.u64()?,
        })
    })
}

fn decode_session(d: &mut Decoder<'_>) -> DecodeResult<ESession> {
    d.versioned(1, |d, _| {
        Ok(ESession {
            stamp: d.utime()?,
            client: d.entity_name()?,
            addr: d.entity_addr()?,
            open: d.bool()?,
            cmapv: d.u64()?,
            inos_to_free: decode_intervals(d)?,
            inotable_version: d.u64()?,
            client_metadata: d.map(Decoder::string, Decoder::string)?,
        })
    })
}

fn decode_update(d: &mut Decoder<'_>) -> DecodeResult<EUpdate> {
    d.versioned(1, |d, _| {
        Ok(EUpdate {
            stamp: d.utime()?,
            op_type: d.string()?,
            metablob: MetaBlob::decode(d)?,
            cmapv: d.u64()?,
            reqid: d.optional(MetaReqId::decode)?,
            had_peers: d.bool()?,
        })
    })
}

fn decode_peer_update(d: &mut Decoder<'_>) -> DecodeResult<EPeerUpdate> {
    d.versioned(1, |d, _| {
        Ok(EPeerUpdate {
            stamp: d.utime()?,
            op_type: d.string()?,
            reqid: MetaReqId::decode(d)?,
            leader: d.i32()?,
            op: PeerOp::from_wire(d.u8()?)?,
            origop: PeerOrigOp::from_wire(d.u8()?)?,
            commit: MetaBlob::decode(d)?,
            rollback: d.bytes()?,
        })
    })
}

fn decode_noop(d: &mut Decoder<'_>) -> DecodeResult<ENoOp> {
    d.versioned(1, |d, _| {
        let pad_size = d.u32()?;
        if pad_size > MAX_NOOP_PAD {
            return Err(EncodingError::InvalidValue { what: "ENoOp pad_size", value: u64::from(pad_size) });
        }
        d.skip(pad_size as usize)?;
        Ok(ENoOp { pad_size })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df(ino: u64) -> DirFrag {
        DirFrag::whole(InodeNo(ino))
    }

    /// A subtree map with subtrees dumps as JSON (a map keyed by `DirFrag` cannot: JSON keys
    /// are strings), as a list of root/bounds pairs in root order, and still round-trips
    /// through the binary encoding.
    #[test]
    fn subtree_map_with_subtrees_serializes_as_a_root_bounds_list() {
        let mut subtrees = BTreeMap::new();
        subtrees.insert(df(1), vec![df(0x1000), df(0x1001)]);
        subtrees.insert(df(0x100), Vec::new());
        let ev = LogEvent::SubtreeMap(ESubtreeMap { subtrees, event_seq: 7, ..ESubtreeMap::default() });
        let v = serde_json::to_value(&ev).expect("subtree map serializes");
        let list = v["event"]["subtrees"].as_array().expect("subtrees is a list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["root"], serde_json::to_value(df(1)).unwrap());
        assert_eq!(list[0]["bounds"].as_array().map(Vec::len), Some(2));
        assert_eq!(list[1]["root"], serde_json::to_value(df(0x100)).unwrap());
        assert_eq!(list[1]["bounds"], serde_json::json!([]));
        assert_eq!(LogEvent::decode_payload(&ev.to_payload()).unwrap(), ev);
    }
}
