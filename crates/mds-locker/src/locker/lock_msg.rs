//! The replica ↔ auth lock protocol (mds spec §4.12): handling `MLock` on either side.

use crate::error::LockerError;
use crate::ids::Rank;
use crate::message::LockMsg;

use super::Locker;

impl Locker {
    /// Handles an `MLock` from `from`.
    pub(crate) fn handle_lock_message(&mut self, from: Rank, msg: LockMsg) -> Result<(), LockerError> {
        tracing::debug!(rank = self.cache.rank(), from, action = msg.action.name(), lock = %msg.lock, "MLock");
        Err(LockerError::BadMessage {
            from,
            why: "MLock handling is being written (multi-rank work in progress)",
        })
    }
}
