//! The identities carried in notify payloads (rbd §0.1, §4.2).

use std::fmt;

use rados_store::encoding::{Decode, DecodeResult, Decoder, Encode, Encoder};

/// One image handle as its peers know it: the RADOS client's global id plus the handle's
/// current watch cookie on the header.
///
/// This, not the lock cookie, is how librbd peers name each other in notifies: the owner
/// announces itself with it (ACQUIRED_LOCK), requesters stamp their requests with it, and a
/// handle recognises its own notifies by it. It changes whenever the watch is re-registered,
/// which is why a re-watch forces a reacquire (rbd §3.8). On the wire: `gid u64, handle u64`,
/// no envelope. `(0, 0)` means "nobody" ([`ClientId::is_valid`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// The RADOS client's instance (global) id, the `N` of `client.N`.
    pub gid: u64,
    /// The handle's watch cookie on the image header.
    pub handle: u64,
}

impl ClientId {
    /// The encoded size: two `u64`s.
    pub const ENCODED_LEN: usize = 16;

    /// A client id from its two parts.
    pub const fn new(gid: u64, handle: u64) -> Self {
        ClientId { gid, handle }
    }

    /// False for the `(0, 0)` placeholder that pre-v2 lock payloads decode to and that librbd
    /// uses for "owner unknown"; a receiver must not record such an id as the owner (rbd §3.2).
    pub const fn is_valid(&self) -> bool {
        self.gid != 0 || self.handle != 0
    }
}

impl fmt::Display for ClientId {
    /// librbd's log form, `[gid,handle]`, so logs can be compared with a real client's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{}]", self.gid, self.handle)
    }
}

impl Encode for ClientId {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.gid).u64(self.handle);
    }
}

impl Decode for ClientId {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        let gid = d.u64()?;
        let handle = d.u64()?;
        Ok(ClientId { gid, handle })
    }
}

/// Names one forwarded maintenance request across retries, owners and re-watches.
///
/// The requester reserves `request_id` once per API call and reuses it on every retry, so the
/// owner can recognise a duplicate and answer it from memory instead of running the op twice
/// (rbd §3.3, §3.4). The all-zero id is "empty": pre-v7 peers send no id for the snapshot ops,
/// RENAME and UPDATE_FEATURES, which puts the owner in the legacy synchronous mode
/// ([`AsyncRequestId::is_empty`]). On the wire: ClientId then `request_id u64`, 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsyncRequestId {
    /// The requester's identity when it sent this attempt.
    pub client_id: ClientId,
    /// The requester's per-process sequence number for the API call.
    pub request_id: u64,
}

impl AsyncRequestId {
    /// The encoded size: a ClientId and a `u64`.
    pub const ENCODED_LEN: usize = ClientId::ENCODED_LEN + 8;

    /// An id from its parts.
    pub const fn new(client_id: ClientId, request_id: u64) -> Self {
        AsyncRequestId { client_id, request_id }
    }

    /// True for the all-zero id, which librbd treats as "no id" (the legacy synchronous path
    /// of rbd §3.3). Note that librbd looks at every field, not just `request_id`.
    pub const fn is_empty(&self) -> bool {
        !self.client_id.is_valid() && self.request_id == 0
    }
}

impl fmt::Display for AsyncRequestId {
    /// librbd's log form, `[gid,handle,request_id]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{},{}]", self.client_id.gid, self.client_id.handle, self.request_id)
    }
}

impl Encode for AsyncRequestId {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.client_id).u64(self.request_id);
    }
}

impl Decode for AsyncRequestId {
    fn decode(d: &mut Decoder<'_>) -> DecodeResult<Self> {
        let client_id = d.get()?;
        let request_id = d.u64()?;
        Ok(AsyncRequestId { client_id, request_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rados_store::encoding::{decode_all, encode_to_vec};

    #[test]
    fn client_id_is_two_le_u64s_rbd_4_2() {
        let id = ClientId::new(0x1234, 0x5678);
        let bytes = encode_to_vec(&id);
        assert_eq!(bytes, [0x34, 0x12, 0, 0, 0, 0, 0, 0, 0x78, 0x56, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes.len(), ClientId::ENCODED_LEN);
        assert_eq!(decode_all::<ClientId>(&bytes), Ok(id));
    }

    #[test]
    fn async_request_id_is_24_bytes_and_empty_only_when_all_zero() {
        let id = AsyncRequestId::new(ClientId::new(1, 2), 3);
        let bytes = encode_to_vec(&id);
        assert_eq!(bytes.len(), AsyncRequestId::ENCODED_LEN);
        assert_eq!(decode_all::<AsyncRequestId>(&bytes), Ok(id));
        assert!(AsyncRequestId::default().is_empty());
        assert!(!AsyncRequestId::new(ClientId::new(1, 0), 0).is_empty());
        assert!(!AsyncRequestId::new(ClientId::default(), 1).is_empty());
        assert_eq!(id.to_string(), "[1,2,3]");
        assert!(!ClientId::default().is_valid());
        assert!(ClientId::new(0, 7).is_valid());
    }
}
