//! Journal device faults on the in-process cluster (issue 9's seeded faults): a rank that dies
//! in the middle of a journal flush, and journal device errors.
//!
//! A flush is a write of the buffered entries followed by a sync; a crash between the two leaves
//! the written bytes unsynced, and what the device keeps of them decides what replay finds:
//! nothing (lost unsynced data), all of them (entries durable though never acknowledged, which
//! replay applies and clients' re-sends then find in the completed-request table), or a prefix
//! cut mid-frame (a torn tail, truncated at replay). None of those entries was acknowledged, so
//! nothing a client was told is safe can be lost.
//!
//! A device error (EIO on a write or a sync) fails the rank's journal: it acknowledges nothing
//! more and refuses submits. Ceph's MDS treats a journal write error as fatal and respawns
//! (MDLog's write-error handler); here the driver sees `journal_failure` and runs the normal
//! `crash` / `restart`, whose replay clears the fault.

use mds_journal::CrashMode;

use super::{Cluster, ClusterError, Transport};
use crate::ids::Rank;
use crate::rank_journal::{CrashLoss, DeviceFault};

impl<T: Transport> Cluster<T> {
    /// Arms a device error on rank `r`'s journal: the next write or sync fails with EIO.
    pub fn arm_journal_fault(&mut self, r: Rank, fault: DeviceFault) -> Result<(), ClusterError> {
        if self.is_down(r) {
            return Err(ClusterError::RankDown(r));
        }
        self.journals.get_mut(r as usize).ok_or(ClusterError::NoRank(r))?.arm(fault);
        Ok(())
    }

    /// The device error that failed rank `r`'s journal, if one did and the rank is still up:
    /// the rank must be failed (`crash`) and restarted.
    pub fn journal_failure(&self, r: Rank) -> Option<&str> {
        if self.is_down(r) {
            return None;
        }
        self.journals.get(r as usize).and_then(|j| j.failure())
    }

    /// Bytes rank `r`'s next flush would write (what a crash in its middle can tear).
    pub fn journal_flush_bytes(&self, r: Rank) -> u64 {
        self.journals.get(r as usize).map_or(0, |j| j.flush_bytes())
    }

    /// Rank `r` dies in the middle of a journal flush: its buffered entries are written but not
    /// synced, the device keeps what `mode` says of them, and then the rank fails as `crash`
    /// makes it. A journal that fails the write itself keeps only what it wrote before.
    pub fn crash_during_flush(&mut self, r: Rank, mode: CrashMode) -> Result<CrashLoss, ClusterError> {
        if r as usize >= self.ranks.len() {
            return Err(ClusterError::NoRank(r));
        }
        if self.is_down(r) {
            return Err(ClusterError::RankDown(r));
        }
        let j = &mut self.journals[r as usize];
        if let Err(e) = j.write_buffered() {
            tracing::warn!(rank = r, error = %e, "flush write failed before the crash");
        }
        let loss = j.crash(mode);
        self.crash(r)?;
        Ok(loss)
    }

    /// Flips one bit of a durable byte of rank `r`'s journal at stream offset `offset` (bit
    /// rot, for tests of replay's corruption check). False if no durable byte is there.
    pub fn damage_journal(&mut self, r: Rank, offset: u64) -> bool {
        self.journals.get_mut(r as usize).is_some_and(|j| j.damage(offset))
    }
}
