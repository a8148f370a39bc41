//! Waiting for the cluster to recover before a snaplock or policylock xlock (mds spec §4.4
//! phase A; Ceph's `wait_for_cluster_recovered`).
//!
//! While a rank is down or has not finished client replay, the cluster is *degraded*. In that
//! state a leader's request that must xlock an inode's ISNAP or IPOLICY lock, and is not a
//! replayed request, drops every lock and local auth pin it holds and waits for the cluster to
//! recover, when:
//! * this rank is the inode's auth, the request does not hold the xlock yet, and a rank that
//!   replicates the inode is not active; or
//! * another rank is the inode's auth and the request does not hold the xlock yet.
//!
//! This is what lets a restarted rank's client replays run before the surviving ranks' requests
//! that were cut off by the failure. Example: a rename led by a survivor moves `/t1/b`, and the
//! xlock it held on `/t1/b`'s dentry is re-taken in rejoin. A `mkdir /t1/b/a` that the failed
//! rank had answered early was lost with its journal, so its client replays it. The replay
//! waits on that dentry xlock. Without this wait the rename went on, moved the directory and
//! committed, and the replay then answered ENOENT where the early reply had said the directory
//! was made (simulator `--cross-subtree`, 2 ranks, faults `all,torn,eio,rank-crash`, seeds
//! 2277 and 2350). A rename always xlocks its source inode's snaplock, so it now gives its
//! locks back and the replay goes first.
//!
//! A rank learns that the cluster is degraded from `Event::RankDown`, and that it has
//! recovered from `Event::RankRecovered` (the failed rank finished client replay, Ceph's
//! ACTIVE). Deviation: Ceph also waits when the xlock is held and was the request's most
//! recent lock, because a peer may have granted it while ranks were recovering. Here a held
//! xlock never waits.

use std::collections::BTreeSet;

use lock_sm::LockType;

use crate::error::LockerError;
use crate::ids::{Rank, ReqId};
use crate::mutation::{LockOp, XLOCK};

use super::Locker;

/// Which ranks are not active yet, and who waits for all of them to be.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterRecovery {
    /// Ranks that failed and have not finished client replay.
    recovering: BTreeSet<Rank>,
    /// Requests that gave their locks back until the cluster has recovered, in arrival order.
    waiters: Vec<ReqId>,
}

impl Locker {
    /// Whether some rank is down or still replaying its clients' requests.
    pub(crate) fn cluster_degraded(&self) -> bool {
        !self.recovery.recovering.is_empty() || !self.peers_down.is_empty()
    }

    /// `Event::RankDown`: the cluster is degraded until `rank` has recovered.
    pub(crate) fn recovery_rank_down(&mut self, rank: Rank) {
        self.recovery.recovering.insert(rank);
    }

    /// `Event::RankRecovered`: `rank` is active; once no rank is still recovering, the
    /// requests that waited run again.
    pub(crate) fn rank_recovered(&mut self, rank: Rank) {
        self.recovery.recovering.remove(&rank);
        if self.cluster_degraded() {
            return;
        }
        let waiters = std::mem::take(&mut self.recovery.waiters);
        for reqid in waiters {
            if self.requests.contains_key(&reqid) {
                self.mark_event(reqid, "cluster recovered");
                self.requeue(reqid);
            }
        }
    }

    /// Whether the request gave its locks back until the cluster has recovered.
    pub(crate) fn waits_for_recovery(&self, reqid: ReqId) -> bool {
        self.recovery.waiters.contains(&reqid)
    }

    /// The request is gone: it waits for nothing.
    pub(crate) fn recovery_forget(&mut self, reqid: ReqId) {
        self.recovery.waiters.retain(|r| *r != reqid);
    }

    /// §4.4 phase A: whether `reqid`, about to acquire `ops`, must first wait for the cluster
    /// to recover (module notes). If so, its locks and local auth pins are dropped and it is
    /// parked; returns true.
    pub(crate) fn wait_for_cluster_recovered(
        &mut self,
        reqid: ReqId,
        ops: &[LockOp],
    ) -> Result<bool, LockerError> {
        if !self.cluster_degraded() || self.replay_inos.contains_key(&reqid) {
            return Ok(false);
        }
        let m = self.mutation(reqid)?;
        if m.peer_of.is_some() || m.client.is_none() {
            return Ok(false);
        }
        let not_active = |r: &Rank| self.recovery.recovering.contains(r) || self.peers_down.contains(r);
        let must_wait = ops.iter().find(|op| {
            if op.flags & XLOCK == 0 || !matches!(op.lock.ty, LockType::ISnap | LockType::IPolicy) {
                return false;
            }
            if m.holds(op.lock, XLOCK) {
                return false;
            }
            !self.cache.is_auth_obj(op.lock.obj) || self.cache.replicas_of(op.lock.obj).iter().any(not_active)
        });
        let Some(op) = must_wait else {
            return Ok(false);
        };
        tracing::debug!(rank = self.cache.rank(), %reqid, lock = ?op.lock, "must xlock while the cluster is degraded; waiting for it to recover");
        self.drop_locks(reqid)?;
        self.drop_local_auth_pins(reqid)?;
        if !self.recovery.waiters.contains(&reqid) {
            self.recovery.waiters.push(reqid);
        }
        self.mark_event(reqid, "waiting for cluster recovered");
        Ok(true)
    }
}
