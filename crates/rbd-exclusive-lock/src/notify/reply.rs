//! The answering side of a notify: the ack payload a receiver sends (rbd §4.5), the frame in
//! which the OSD returns every ack to the notifier (rbd §3.1, real-ceph §5), and librbd's rule
//! for reading the acks of an owner-directed notify (rbd §3.4).

use std::collections::BTreeMap;

use rados_store::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder};
use rados_store::error::errno;

use super::NotifyError;
use super::ids::ClientId;

/// The version (and compat) of [`ResponseMessage`]'s envelope.
pub const RESPONSE_VERSION: u8 = 1;

/// What a *responsible* receiver puts in its ack: versioned(1, 1) { `i32` result }, 10 bytes.
///
/// Only the lock owner (or a handle whose requests are blocked with an error, or a receiver of
/// HEADER_UPDATE or QUIESCE) answers with one; every other watcher acks with zero bytes. That
/// asymmetry is how a requester finds the single owner among all the watchers (rbd §4.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseMessage {
    /// 0 or a negative errno (`-EROFS` refuses a lock hand-over, `-EOPNOTSUPP` an unknown op).
    pub result: i32,
}

impl ResponseMessage {
    /// The encoded size: a 6-byte envelope header and an `i32`.
    pub const ENCODED_LEN: usize = 10;

    /// A response with this result.
    pub const fn new(result: i32) -> Self {
        ResponseMessage { result }
    }

    /// The ack payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(Self::ENCODED_LEN);
        self.encode(&mut e);
        e.into_vec()
    }

    /// Reads an ack payload. Bytes after the envelope are ignored, as librbd ignores them.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, NotifyError> {
        Decoder::new(buf).get().map_err(NotifyError::decode("response message"))
    }
}

impl Encode for ResponseMessage {
    fn encode(&self, e: &mut Encoder) {
        e.versioned(RESPONSE_VERSION, RESPONSE_VERSION, |e| {
            e.i32(self.result);
        });
    }
}

impl Decode for ResponseMessage {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        d.versioned(RESPONSE_VERSION, |d, _| d.i32().map(ResponseMessage::new))
    }
}

/// The reply buffer of one notify as librados returns it to the notifier (rbd §3.1):
/// a map from each acking watcher to its ack payload, then the watchers that missed the
/// deadline.
///
/// Wire form, observed on a real 16.2 cluster (real-ceph §5): `u32` ack count, then per ack
/// `u64 gid, u64 watch cookie, u32 length, bytes`, in key order; then `u32` count of missed
/// watchers, each `u64 gid, u64 cookie`. A watcher's `(gid, cookie)` is exactly the
/// [`ClientId`] librbd peers use, so the keys are typed as one. The notifier is itself a
/// watcher and appears among the acks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NotifyReplyFrame {
    /// Each acking watcher's payload (possibly empty), keyed and ordered by `(gid, cookie)`.
    pub acks: BTreeMap<ClientId, Vec<u8>>,
    /// Watchers that did not ack in time, in the order the OSD listed them.
    pub missed: Vec<ClientId>,
}

impl NotifyReplyFrame {
    /// The reply buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_vec()
    }

    /// Reads a reply buffer. A repeated watcher keeps its last payload, as a C++ map decode
    /// does; bytes after the missed list are ignored.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, NotifyError> {
        Decoder::new(buf).get().map_err(NotifyError::decode("notify reply"))
    }

    /// librbd's verdict on this reply for a notify aimed at the lock owner; see
    /// [`lock_owner_result`].
    pub fn lock_owner_result(&self) -> i32 {
        lock_owner_result(self.acks.values())
    }
}

impl Encode for NotifyReplyFrame {
    fn encode(&self, e: &mut Encoder) {
        e.map(
            &self.acks,
            |e, k| k.encode(e),
            |e, v| {
                e.bytes(v);
            },
        );
        e.put(&self.missed);
    }
}

impl Decode for NotifyReplyFrame {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        let acks = d.map(ClientId::decode, Decoder::bytes)?;
        let missed = d.get()?;
        Ok(NotifyReplyFrame { acks, missed })
    }
}

/// librbd's NotifyLockOwner rule for the acks of an owner-directed notify (REQUEST_LOCK or a
/// forwarded maintenance op, rbd §3.4 step 3, §10 fact 45), as a negative errno or the owner's
/// result:
///
/// * more than one non-empty ack: `-EINVAL` (two watchers think they own the lock);
/// * no non-empty ack: `-ETIMEDOUT` (no owner answered; REQUEST_LOCK then treats the owner as
///   dead, rbd §3.5);
/// * exactly one: that ack's [`ResponseMessage`] result, or `-EINVAL` if it does not decode.
///
/// The caller first handles a notify that failed outright with an error other than
/// `-ETIMEDOUT`; a timed-out notify still has its acks judged here.
pub fn lock_owner_result<I>(acks: I) -> i32
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut answers = acks.into_iter().filter(|a| !a.as_ref().is_empty());
    let Some(only) = answers.next() else {
        return -errno::ETIMEDOUT;
    };
    if answers.next().is_some() {
        return -errno::EINVAL;
    }
    match ResponseMessage::from_bytes(only.as_ref()) {
        Ok(response) => response.result,
        Err(e) => e.errno(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_rule_counts_only_non_empty_acks_rbd_3_4() {
        let ok = ResponseMessage::new(0).to_bytes();
        let erofs = ResponseMessage::new(-30).to_bytes();
        let empty: Vec<u8> = Vec::new();
        assert_eq!(lock_owner_result(Vec::<Vec<u8>>::new()), -110);
        assert_eq!(lock_owner_result([&empty, &empty]), -110);
        assert_eq!(lock_owner_result([&empty, &erofs, &empty]), -30);
        assert_eq!(lock_owner_result([&ok, &empty]), 0);
        assert_eq!(lock_owner_result([&ok, &erofs]), -22);
        assert_eq!(lock_owner_result([&vec![1u8, 1, 4]]), -22);
    }
}
