//! Client capabilities and sessions (mds spec §3, §4.14).
//!
//! A capability is the MDS's promise to one client about one inode. The MDS tracks three
//! masks: `pending` (what it most recently offered), `issued` (what the client may still be
//! using: pending plus anything whose revocation the client has not yet acknowledged) and
//! `wanted` (what the client asked for). Lock transitions wait on `issued`, never on
//! `pending`: a revoke only counts once the client says it let go.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::effects::{Errno, ReplyData};
use crate::ids::{ClientId, Ino, InodeId, ReqId};

/// One outstanding revocation: what the client held (`before`) when we sent `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoke {
    /// The cap message seq that carried the smaller mask.
    pub seq: u64,
    /// What the client could hold before that message.
    pub before: u32,
    /// When it was sent (Locker clock, ms), for the session-timeout eviction.
    pub sent_ms: u64,
}

/// One client's capability on one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub(crate) pending: u32,
    pub(crate) issued: u32,
    pub(crate) wanted: u32,
    pub(crate) last_sent: u64,
    pub(crate) revokes: VecDeque<Revoke>,
}

impl Capability {
    pub(crate) fn new(wanted: u32) -> Capability {
        Capability { pending: 0, issued: 0, wanted, last_sent: 0, revokes: VecDeque::new() }
    }

    /// What the MDS most recently offered.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// What the client may still hold (pending plus unacknowledged revocations).
    pub fn issued(&self) -> u32 {
        self.issued
    }

    /// What the client wants.
    pub fn wanted(&self) -> u32 {
        self.wanted
    }

    /// Seq of the last cap message sent.
    pub fn last_sent(&self) -> u64 {
        self.last_sent
    }

    /// Whether a revocation is outstanding (`issued` has bits beyond `pending`).
    pub fn is_revoking(&self) -> bool {
        self.issued & !self.pending != 0
    }

    /// Outstanding revocations, oldest first.
    pub fn revokes(&self) -> impl Iterator<Item = &Revoke> {
        self.revokes.iter()
    }

    /// Records a new offer. Granting is immediate (the client may use new bits at once);
    /// removing bits is a revocation that stays in `issued` until acknowledged.
    pub(crate) fn issue(&mut self, caps: u32, now_ms: u64) -> u64 {
        self.last_sent += 1;
        if self.pending & !caps != 0 {
            self.revokes.push_back(Revoke { seq: self.last_sent, before: self.issued, sent_ms: now_ms });
        }
        self.pending = caps;
        self.issued |= caps;
        self.last_sent
    }

    /// The client acknowledged cap message `seq`, saying it now holds `caps`. An ack of the
    /// newest message settles everything. An older ack settles the revocations sent before
    /// `seq` and narrows the one sent at `seq` to `caps`; later revocations keep what the
    /// client could hold when they were sent, so `issued` only ever over-estimates.
    pub(crate) fn confirm_receipt(&mut self, seq: u64, caps: u32) {
        if seq >= self.last_sent {
            self.revokes.clear();
            self.pending &= caps;
            self.issued = self.pending;
            return;
        }
        while self.revokes.front().is_some_and(|r| r.seq < seq) {
            self.revokes.pop_front();
        }
        if let Some(front) = self.revokes.front_mut()
            && front.seq == seq
        {
            front.before = caps;
        }
        self.recalc_issued();
    }

    fn recalc_issued(&mut self) {
        self.issued = self.revokes.iter().fold(self.pending, |acc, r| acc | r.before);
    }

    /// Oldest unacknowledged revocation's send time.
    pub(crate) fn oldest_revoke_ms(&self) -> Option<u64> {
        self.revokes.front().map(|r| r.sent_ms)
    }
}

/// What a finished write request replied, kept so that a re-sent copy is answered the same
/// way instead of running twice (Ceph's `session->add_completed_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedRequest {
    /// The reply's result (always `Ok`: failed requests change nothing and may simply re-run).
    pub result: Result<Option<Ino>, Errno>,
    /// The reply's extra content.
    pub data: ReplyData,
}

/// A cap flush whose journal entry is not yet safe: the FLUSH_ACK it is owed (§4.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingFlush {
    /// The inode flushed.
    pub ino: Ino,
    /// The client's flush id.
    pub tid: u64,
    /// The dirty bits the flush carried.
    pub dirty: u32,
    /// The seq of the client's flush message, echoed in the ack.
    pub seq: u64,
}

/// A client session (§4.14): the unit of liveness. A session that stops answering revokes is
/// evicted, and its caps, leases and requests go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub(crate) client: ClientId,
    pub(crate) last_seen_ms: u64,
    pub(crate) caps: BTreeSet<InodeId>,
    pub(crate) requests: BTreeSet<ReqId>,
    pub(crate) completed: BTreeMap<ReqId, CompletedRequest>,
    /// Cap flushes being journaled, by the internal mutation that journals each.
    pub(crate) flushing: BTreeMap<ReqId, PendingFlush>,
    /// Flush tids already acknowledged, so a re-sent flush is acked, not journaled again
    /// (Ceph's `completed_flushes`).
    pub(crate) completed_flushes: BTreeSet<u64>,
}

impl Session {
    pub(crate) fn new(client: ClientId, now_ms: u64) -> Session {
        Session {
            client,
            last_seen_ms: now_ms,
            caps: BTreeSet::new(),
            requests: BTreeSet::new(),
            completed: BTreeMap::new(),
            flushing: BTreeMap::new(),
            completed_flushes: BTreeSet::new(),
        }
    }

    /// Cap flushes whose journal entry is not safe yet, by internal mutation id.
    pub fn flushing(&self) -> &BTreeMap<ReqId, PendingFlush> {
        &self.flushing
    }

    /// Whether the flush `tid` was already acknowledged.
    pub fn flush_completed(&self, tid: u64) -> bool {
        self.completed_flushes.contains(&tid)
    }

    /// Records an acknowledged flush tid, forgetting the oldest beyond `max` (the bound stands
    /// in for Ceph's trimming by the client's oldest flush tid, which messages here lack).
    pub(crate) fn add_completed_flush(&mut self, tid: u64, max: usize) {
        self.completed_flushes.insert(tid);
        while self.completed_flushes.len() > max.max(1) {
            self.completed_flushes.pop_first();
        }
    }

    /// The completed-request table: successful writes by request id.
    pub fn completed(&self) -> &BTreeMap<ReqId, CompletedRequest> {
        &self.completed
    }

    /// Records a completed write, forgetting the oldest ids beyond `max` (Ceph trims by the
    /// client's oldest unacknowledged tid; without that field in requests a bound stands in).
    pub(crate) fn add_completed(&mut self, reqid: ReqId, done: CompletedRequest, max: usize) {
        self.completed.insert(reqid, done);
        while self.completed.len() > max.max(1) {
            self.completed.pop_first();
        }
    }

    /// The client.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// Inodes this client holds caps on.
    pub fn caps(&self) -> &BTreeSet<InodeId> {
        &self.caps
    }

    /// Requests in flight.
    pub fn requests(&self) -> &BTreeSet<ReqId> {
        &self.requests
    }

    /// Last time the client was heard from.
    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_is_immediate_revoke_waits_for_ack() {
        let mut c = Capability::new(0);
        let s1 = c.issue(0b1111, 0);
        assert_eq!((c.pending(), c.issued(), s1), (0b1111, 0b1111, 1));
        let s2 = c.issue(0b0011, 5);
        assert_eq!((c.pending(), c.issued()), (0b0011, 0b1111));
        assert!(c.is_revoking());
        assert_eq!(c.oldest_revoke_ms(), Some(5));
        c.confirm_receipt(s2, 0b0011);
        assert_eq!((c.pending(), c.issued()), (0b0011, 0b0011));
        assert!(!c.is_revoking());
    }

    #[test]
    fn old_ack_only_settles_older_revokes() {
        let mut c = Capability::new(0);
        c.issue(0b1111, 0);
        let s2 = c.issue(0b0111, 0);
        let _s3 = c.issue(0b0011, 0);
        c.confirm_receipt(s2, 0b0111);
        // The revoke sent at seq 3 recorded what the client could hold then (bit 3 included,
        // its revocation was not yet acknowledged), so issued stays conservative.
        assert_eq!(c.issued(), 0b1111);
        c.confirm_receipt(3, 0b0011);
        assert_eq!(c.issued(), 0b0011);
    }

    #[test]
    fn client_may_drop_more_than_asked() {
        let mut c = Capability::new(0);
        let s = c.issue(0b111, 0);
        c.confirm_receipt(s, 0b001);
        assert_eq!((c.pending(), c.issued()), (0b001, 0b001));
    }
}
