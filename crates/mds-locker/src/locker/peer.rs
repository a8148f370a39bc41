//! Peer requests between ranks (mds spec §4.17): remote xlocks and wrlocks, auth pins,
//! DROPLOCKS.

use crate::error::LockerError;
use crate::ids::Rank;
use crate::message::PeerMsg;

use super::Locker;

impl Locker {
    /// Handles an `MMDSPeerRequest` from `from`.
    pub(crate) fn handle_peer_message(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        tracing::debug!(rank = self.cache.rank(), from, op = msg.op.name(), reqid = %msg.reqid, "peer request");
        Err(LockerError::BadMessage {
            from,
            why: "peer requests are being written (multi-rank work in progress)",
        })
    }
}
