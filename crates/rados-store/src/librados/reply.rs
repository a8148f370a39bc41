//! Pure decoders for what librados hands back as bytes or strings: the notify2 reply buffer,
//! our bridge's snap-set encoding, and client addresses. Kept free of FFI so that every
//! format is unit-tested without a cluster.

use crate::encoding::{DecodeResult, Decoder, EncodingError};
use crate::error::{Error, Result, errno};
use crate::snap::{CloneInfo, SnapSetInfo};
use crate::types::EntityAddr;
use crate::watch::{NotifyAck, NotifyReply, WatcherId};

/// The id librados gives the head in a snap set (`CEPH_NOSNAP`).
const NOSNAP: u64 = u64::MAX - 1;

/// Decodes the buffer `rados_notify2` fills (real-ceph §5):
/// `le32 n_acks { le64 gid, le64 cookie, le32 len, len bytes }` then
/// `le32 n_timeouts { le64 gid, le64 cookie }`. Both lists come back sorted by
/// (gid, cookie), as [`NotifyReply`] promises, whatever order the OSD used.
pub(super) fn decode_notify_reply(buf: &[u8]) -> Result<NotifyReply> {
    let parse = |d: &mut Decoder<'_>| -> DecodeResult<NotifyReply> {
        let acks = d.seq(|d| {
            let gid = d.u64()?;
            let cookie = d.u64()?;
            let reply = d.bytes()?;
            Ok(NotifyAck { gid, cookie, reply })
        })?;
        let timeouts = d.seq(|d| Ok(WatcherId { gid: d.u64()?, cookie: d.u64()? }))?;
        Ok(NotifyReply { acks, timeouts })
    };
    if buf.is_empty() {
        // librados leaves the buffer empty when nothing was collected (no watchers).
        return Ok(NotifyReply::default());
    }
    let mut d = Decoder::new(buf);
    let mut reply = parse(&mut d).map_err(|e| bad_reply("notify reply", e))?;
    reply.acks.sort_by_key(|a| (a.gid, a.cookie));
    reply.timeouts.sort();
    Ok(reply)
}

/// Decodes the snap set our C++ bridge encodes (see `shim.cpp`):
/// `le64 seq, le32 n { le64 clone_id, le32 m { le64 snap }, le64 size }`. The clone whose
/// id is `CEPH_NOSNAP` is the head: it sets `head_exists` and is not listed.
pub(super) fn decode_snap_set(buf: &[u8]) -> Result<SnapSetInfo> {
    let parse = |d: &mut Decoder<'_>| -> DecodeResult<SnapSetInfo> {
        let seq = d.u64()?;
        let all = d.seq(|d| {
            let id = d.u64()?;
            let snaps = d.seq(Decoder::u64)?;
            let size = d.u64()?;
            Ok(CloneInfo { id, snaps, size })
        })?;
        d.expect_end()?;
        let head_exists = all.iter().any(|c| c.id == NOSNAP);
        let mut clones: Vec<CloneInfo> = all.into_iter().filter(|c| c.id != NOSNAP).collect();
        clones.sort_by_key(|c| c.id);
        for c in &mut clones {
            c.snaps.sort_unstable();
        }
        Ok(SnapSetInfo { seq, clones, head_exists })
    };
    parse(&mut Decoder::new(buf)).map_err(|e| bad_reply("snap set", e))
}

/// Parses a client address as librados prints it: a plain `ip:port/nonce`, one typed entry
/// (`v1:...`, `v2:...`, `any:...`), or a vector of them in brackets. The first entry that
/// parses wins; the result is legacy-typed, the form cls_lock records and blocklists use.
pub(super) fn parse_client_addr(s: &str) -> Option<EntityAddr> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner.split(',').find_map(|entry| {
        let entry = entry.trim();
        let bare = ["v1:", "v2:", "any:", "legacy:", "msgr2:"]
            .iter()
            .find_map(|p| entry.strip_prefix(p))
            .unwrap_or(entry);
        bare.parse::<EntityAddr>().ok()
    })
}

fn bad_reply(what: &str, e: EncodingError) -> Error {
    Error::from_errno(errno::EBADMSG, format!("librados {what} does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Encoder;

    fn notify_bytes(acks: &[(u64, u64, &[u8])], timeouts: &[(u64, u64)]) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u32(acks.len() as u32);
        for (gid, cookie, payload) in acks {
            e.u64(*gid).u64(*cookie).bytes(payload);
        }
        e.u32(timeouts.len() as u32);
        for (gid, cookie) in timeouts {
            e.u64(*gid).u64(*cookie);
        }
        e.into_vec()
    }

    #[test]
    fn notify_reply_real_ceph_5_shape_decodes() {
        // The shape real-ceph §5 observed: one ack "pong", then a timed-out watcher.
        let buf = notify_bytes(&[(4343, 94038161559408, b"pong")], &[(4357, 94632919752400)]);
        let r = decode_notify_reply(&buf).unwrap();
        assert_eq!(r.acks, vec![NotifyAck { gid: 4343, cookie: 94038161559408, reply: b"pong".to_vec() }]);
        assert_eq!(r.timeouts, vec![WatcherId { gid: 4357, cookie: 94632919752400 }]);
        assert_eq!(r.errno(), -110);
    }

    #[test]
    fn notify_reply_is_sorted_and_empty_buffer_is_empty_reply() {
        let buf = notify_bytes(&[(9, 1, b""), (3, 7, b"x"), (3, 2, b"y")], &[(8, 2), (1, 5)]);
        let r = decode_notify_reply(&buf).unwrap();
        let ids: Vec<(u64, u64)> = r.acks.iter().map(|a| (a.gid, a.cookie)).collect();
        assert_eq!(ids, vec![(3, 2), (3, 7), (9, 1)]);
        assert_eq!(r.timeouts[0], WatcherId { gid: 1, cookie: 5 });
        assert_eq!(decode_notify_reply(&[]).unwrap(), NotifyReply::default());
        assert_eq!(decode_notify_reply(&notify_bytes(&[], &[])).unwrap(), NotifyReply::default());
    }

    #[test]
    fn truncated_notify_reply_is_ebadmsg_not_a_panic() {
        let buf = notify_bytes(&[(1, 2, b"hello")], &[(3, 4)]);
        for cut in 1..buf.len() {
            let err = decode_notify_reply(&buf[..cut]).unwrap_err();
            assert_eq!(err.errno(), errno::EBADMSG, "cut at {cut}");
        }
        // A count far larger than the input must fail cleanly, not allocate.
        let mut huge = Encoder::new();
        huge.u32(u32::MAX);
        assert_eq!(decode_notify_reply(huge.as_slice()).unwrap_err().errno(), errno::EBADMSG);
    }

    #[test]
    fn snap_set_head_is_folded_into_head_exists() {
        let mut e = Encoder::new();
        e.u64(7).u32(2);
        e.u64(5).u32(2).u64(5).u64(4).u64(11);
        e.u64(NOSNAP).u32(0).u64(12);
        let s = decode_snap_set(e.as_slice()).unwrap();
        assert_eq!(s.seq, 7);
        assert!(s.head_exists);
        assert_eq!(s.clones, vec![CloneInfo { id: 5, snaps: vec![4, 5], size: 11 }]);

        let mut e = Encoder::new();
        e.u64(3).u32(0);
        let s = decode_snap_set(e.as_slice()).unwrap();
        assert!(!s.head_exists && s.clones.is_empty());
        assert_eq!(decode_snap_set(&[1, 2]).unwrap_err().errno(), errno::EBADMSG);
    }

    #[test]
    fn client_addresses_in_every_printed_form() {
        let want: EntityAddr = "127.0.0.1:0/3895977888".parse().unwrap();
        for s in [
            "127.0.0.1:0/3895977888",
            "v1:127.0.0.1:0/3895977888",
            "any:127.0.0.1:0/3895977888",
            "[v2:127.0.0.1:0/3895977888,v1:127.0.0.1:0/3895977888]",
            " [any:127.0.0.1:0/3895977888] ",
        ] {
            assert_eq!(parse_client_addr(s), Some(want), "{s}");
        }
        assert_eq!(parse_client_addr("garbage"), None);
        assert_eq!(parse_client_addr("[]"), None);
    }
}
