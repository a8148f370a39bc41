//! Peer requests that reach a rank while it still holds the same request id as a peer of
//! another leader: parked until that older peer request ends.
//!
//! A request forwarded from one rank to another (`forward_request`) keeps its id. The old
//! leader's cleanup sends DROPLOCKS to its peers, but the new leader's first AUTHPIN travels
//! on another channel and may reach a common peer first. That peer then still runs the old
//! leader's peer request under the same id; dropping the new message (as this crate used to)
//! left the new leader waiting for an AUTHPINACK forever (simulator `--cross-subtree`, 3
//! ranks, seed 375: a setattr forwarded from rank 2 to rank 0, both auth-pinning on rank 1).
//! Ceph tells the two apart by the request's attempt number (`MMDSPeerRequest::attempt`, the
//! client request's forward count): a newer attempt closes the older peer request out.
//! Deviation: cephlock's messages carry no attempt, and a message alone cannot tell which
//! leader is the newer one, so the peer waits instead: the message is parked until the older
//! peer request is gone (its leader's DROPLOCKS or FINISH, or that leader failing), and then
//! handled as if it had just arrived. A parked message from a leader that failed meanwhile is
//! dropped, as the messages still in flight from it are.

use crate::error::LockerError;
use crate::ids::Rank;
use crate::message::{MdsMessage, PeerMsg, PeerOp};

use super::Locker;

impl Locker {
    /// Parks a peer request from `from` whose id names another leader's peer request here.
    pub(crate) fn park_peer_message(&mut self, from: Rank, msg: PeerMsg) {
        tracing::debug!(from, reqid = %msg.reqid, op = msg.op.name(), "peer request id held by another leader's peer request; parked");
        self.parked_peer_msgs.push((from, msg));
    }

    /// Handles one parked peer message whose conflict is gone (or drops one whose leader
    /// failed); false if none can go.
    pub(crate) fn unpark_peer_message(&mut self) -> Result<bool, LockerError> {
        let ready = self.parked_peer_msgs.iter().position(|(from, msg)| {
            self.peers_down.contains(from)
                || self.requests.get(&msg.reqid).is_none_or(|m| m.peer_of == Some(*from))
        });
        let Some(i) = ready else {
            return Ok(false);
        };
        let (from, msg) = self.parked_peer_msgs.remove(i);
        if self.peers_down.contains(&from) {
            tracing::debug!(from, reqid = %msg.reqid, "parked peer request of a failed leader; dropped");
            return Ok(true);
        }
        tracing::debug!(from, reqid = %msg.reqid, op = msg.op.name(), "re-handling parked peer request");
        self.handle_peer_message(from, msg)?;
        Ok(true)
    }

    /// An AUTHPINACK for a request this rank no longer runs: the peer pinned (and may have
    /// frozen) for nobody, so it is told to drop the peer request.
    ///
    /// A peer that was still freezing the rename's source inode when the leader's request
    /// ended runs the held AUTHPIN again once DROPLOCKS removed its peer request (`migrate`
    /// `poll_pin_freezes`: the same DROPLOCKS is also what a leader sends when it only drops
    /// its locks and keeps waiting for the ack, and the peer cannot tell the two apart), and
    /// acks it. Ceph's leader ignores such a reply, but its peer never re-runs the AUTHPIN
    /// of a finished request. Simulator `--cross-subtree`, 2 ranks, faults
    /// `all,torn,eio,rank-crash`, seed 108: a peer request (with its freeze of the inode)
    /// was left on rank 0 for good.
    pub(crate) fn drop_orphan_auth_pin(&mut self, from: Rank, msg: &PeerMsg) -> Result<(), LockerError> {
        if self.requests.contains_key(&msg.reqid) || msg.flag {
            // Ours for another role, or a "blocked" ack: the real ack follows and is the one
            // answered.
            return Ok(());
        }
        tracing::debug!(from, reqid = %msg.reqid, "auth pin ack for a request that is gone; telling the peer to drop it");
        self.send(from, MdsMessage::Peer(PeerMsg::new(PeerOp::DropLocks, msg.reqid, msg.client)));
        Ok(())
    }
}
