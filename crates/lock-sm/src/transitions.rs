//! Which state changes the Locker starts, as data.
//!
//! The state tables only say where a transitional state is heading (`next`). How a lock gets
//! *into* a transitional state is decided by the Locker's transition initiators (mds spec
//! §4.10), the xlock path (§4.7) and the staged gathers of `eval_gather` (§4.9). Keeping those
//! edges here, next to the tables, lets the diagrams (and any checker) be generated from one
//! source instead of being drawn by hand, and lets tests confirm that every edge starts and
//! ends in a state the machine actually has.

use crate::{LockState, Machine};

/// What moves a lock along an edge. The names are the Locker functions (or steps) that do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Initiator {
    /// `simple_sync`: towards SYNC (§4.10).
    SimpleSync,
    /// `simple_lock`: towards LOCK (§4.10).
    SimpleLock,
    /// `simple_excl`: towards EXCL for a simplelock (§4.10).
    SimpleExcl,
    /// `simple_xlock`: LOCK or XLOCKDONE towards PREXLOCK (§4.10).
    SimpleXlock,
    /// `scatter_mix`: towards MIX (§4.10); from LOCK it goes to MIX directly.
    ScatterMix,
    /// `file_excl`: towards EXCL for the filelock (§4.10).
    FileExcl,
    /// `file_xsyn`: EXCL towards XSYN (§4.10).
    FileXsyn,
    /// `file_recover`: PRE_SCAN to SCAN (§4.10).
    FileRecover,
    /// `xlock_start` granting the xlock: PREXLOCK to XLOCK, or LOCK_XLOCK to XLOCK when the same
    /// client re-takes it through XCL (§4.7 step 1).
    XlockGrant,
    /// `set_xlocks_done` at early reply: XLOCK to XLOCKDONE (§4.7).
    XlockDone,
    /// `set_xlock_snap_sync`: XLOCK or XLOCKDONE to XLOCKSNAP for a filelock (§4.1).
    XlockSnapSync,
    /// `_finish_xlock` jumping straight to EXCL when the target loner is the xlocker (§4.7).
    FinishXlockToExcl,
    /// `cancel_locking` backing out of LOCK_XLOCK into XLOCKDONE (§4.7).
    CancelLocking,
    /// `eval_gather` staging: MIX_LOCK to MIX_LOCK2 on a replicated auth, SYNC_MIX to SYNC_MIX2 and
    /// MIX_SYNC to MIX_SYNC2 on a replica (§4.9).
    GatherStage,
}

impl Initiator {
    /// The Locker function's name, as diagrams label the edge.
    pub const fn name(self) -> &'static str {
        match self {
            Initiator::SimpleSync => "simple_sync",
            Initiator::SimpleLock => "simple_lock",
            Initiator::SimpleExcl => "simple_excl",
            Initiator::SimpleXlock => "simple_xlock",
            Initiator::ScatterMix => "scatter_mix",
            Initiator::FileExcl => "file_excl",
            Initiator::FileXsyn => "file_xsyn",
            Initiator::FileRecover => "file_recover",
            Initiator::XlockGrant => "xlock_start",
            Initiator::XlockDone => "set_xlock_done",
            Initiator::XlockSnapSync => "set_xlock_snap_sync",
            Initiator::FinishXlockToExcl => "_finish_xlock",
            Initiator::CancelLocking => "cancel_locking",
            Initiator::GatherStage => "eval_gather",
        }
    }

    /// The machines whose locks this initiator is ever applied to.
    const fn machines(self) -> &'static [Machine] {
        use Machine::*;
        match self {
            // Locallocks never change state (§1.6).
            Initiator::SimpleSync | Initiator::SimpleLock => &[Simple, Scatter, File],
            // The filelock goes to EXCL through file_excl instead (§4.10).
            Initiator::SimpleExcl => &[Simple],
            // No request xlocks INEST or IDFT (§1.4: the scatterlock's LOCK xlock=ANY is unused).
            Initiator::SimpleXlock
            | Initiator::XlockGrant
            | Initiator::XlockDone
            | Initiator::FinishXlockToExcl
            | Initiator::CancelLocking => &[Simple, File],
            Initiator::ScatterMix | Initiator::GatherStage => &[Scatter, File],
            Initiator::FileExcl | Initiator::FileXsyn | Initiator::FileRecover | Initiator::XlockSnapSync => {
                &[File]
            }
        }
    }
}

/// One state change the Locker can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The state the lock is in.
    pub from: LockState,
    /// The state the initiator puts it in.
    pub to: LockState,
    /// Who does it.
    pub via: Initiator,
}

const fn e(from: LockState, to: LockState, via: Initiator) -> Edge {
    Edge { from, to, via }
}

/// Every initiated edge, for all machines; [`initiated_edges`] filters by machine. TSYN edges are
/// left out on purpose: `scatter_tempsync` is not implemented in Ceph and nothing enters TSYN
/// (§1.4, §4.10, §8 fact 52).
const EDGES: &[Edge] = {
    use Initiator as I;
    use LockState::*;
    &[
        // §4.10 simple_sync
        e(Mix, MixSync, I::SimpleSync),
        e(Lock, LockSync, I::SimpleSync),
        e(Xsyn, XsynSync, I::SimpleSync),
        e(Excl, ExclSync, I::SimpleSync),
        // §4.10 simple_lock
        e(Sync, SyncLock, I::SimpleLock),
        e(Xsyn, XsynLock, I::SimpleLock),
        e(Excl, ExclLock, I::SimpleLock),
        e(Mix, MixLock, I::SimpleLock),
        // §4.10 simple_excl
        e(Lock, LockExcl, I::SimpleExcl),
        e(Sync, SyncExcl, I::SimpleExcl),
        // §4.10 simple_xlock
        e(Lock, LockXlock, I::SimpleXlock),
        e(XlockDone, LockXlock, I::SimpleXlock),
        // §4.10 scatter_mix (from LOCK directly to MIX)
        e(Lock, Mix, I::ScatterMix),
        e(Sync, SyncMix, I::ScatterMix),
        e(Excl, ExclMix, I::ScatterMix),
        e(Xsyn, XsynMix, I::ScatterMix),
        // §4.10 file_excl
        e(Sync, SyncExcl, I::FileExcl),
        e(Mix, MixExcl, I::FileExcl),
        e(Lock, LockExcl, I::FileExcl),
        e(Xsyn, XsynExcl, I::FileExcl),
        // §4.10 file_xsyn, file_recover
        e(Excl, ExclXsyn, I::FileXsyn),
        e(PreScan, Scan, I::FileRecover),
        // §4.7 the xlock path
        e(PreXlock, Xlock, I::XlockGrant),
        e(LockXlock, Xlock, I::XlockGrant),
        e(Xlock, XlockDone, I::XlockDone),
        e(Xlock, Excl, I::FinishXlockToExcl),
        e(XlockDone, Excl, I::FinishXlockToExcl),
        // cancel_locking in PREXLOCK hands the lock to _finish_xlock, which may jump to EXCL.
        e(PreXlock, Excl, I::FinishXlockToExcl),
        e(LockXlock, XlockDone, I::CancelLocking),
        // §4.1 set_xlock_snap_sync
        e(Xlock, XlockSnap, I::XlockSnapSync),
        e(XlockDone, XlockSnap, I::XlockSnapSync),
        // §4.9 staged gathers
        e(MixLock, MixLock2, I::GatherStage),
        e(SyncMix, SyncMix2, I::GatherStage),
        e(MixSync, MixSync2, I::GatherStage),
    ]
};

/// The initiated edges that exist for `m`: the initiator applies to the machine and both ends
/// are states with a row in its table.
///
/// One deliberate consequence: the scatterlock has no MIX_SYNC2 row (a quirk noted in §1.4),
/// so its replica-side MIX_SYNC to MIX_SYNC2 step does not appear for it.
pub fn initiated_edges(m: Machine) -> impl Iterator<Item = Edge> {
    EDGES.iter().copied().filter(move |edge| {
        let applies = edge.via.machines().contains(&m);
        applies && m.has_row(edge.from) && m.has_row(edge.to)
    })
}

/// The `next` edges of `m`'s table: every transitional state with a row, to where it heads.
pub fn next_edges(m: Machine) -> impl Iterator<Item = (LockState, LockState)> {
    m.states_with_rows().filter_map(move |s| {
        let row = m.row(s);
        (!row.is_stable()).then_some((s, row.next))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_edge_appears_for_some_machine() {
        for edge in EDGES {
            let used = Machine::ALL.iter().any(|&m| initiated_edges(m).any(|x| x == *edge));
            // MIX_SYNC2 exists only in the filelock table; everything else must be reachable.
            assert!(used, "edge {edge:?} applies to no machine");
        }
    }

    #[test]
    fn locallock_has_no_edges() {
        assert_eq!(initiated_edges(Machine::Local).count(), 0);
        assert_eq!(next_edges(Machine::Local).count(), 0);
    }

    #[test]
    fn initiators_leave_stable_states_or_known_transitional_ones() {
        // §4.10: initiators start from a stable state, except simple_xlock from XLOCKDONE and the
        // xlock-path and gather-stage steps, which start from the transitional states they name.
        for m in Machine::ALL {
            for edge in initiated_edges(m) {
                let from_stable = m.row(edge.from).is_stable();
                let allowed_unstable = matches!(
                    edge.via,
                    Initiator::SimpleXlock
                        | Initiator::XlockGrant
                        | Initiator::XlockDone
                        | Initiator::FinishXlockToExcl
                        | Initiator::CancelLocking
                        | Initiator::XlockSnapSync
                        | Initiator::GatherStage
                        | Initiator::FileRecover
                );
                assert!(from_stable || allowed_unstable, "{}: {edge:?}", m.name());
            }
        }
    }

    #[test]
    fn scatterlock_edges_match_section_4_10() {
        let got: Vec<_> = initiated_edges(Machine::Scatter).map(|e| (e.from, e.to)).collect();
        use LockState::*;
        assert!(got.contains(&(Lock, Mix)), "scatter_mix goes LOCK→MIX directly");
        assert!(got.contains(&(Sync, SyncMix)));
        assert!(got.contains(&(MixLock, MixLock2)));
        assert!(!got.iter().any(|&(_, to)| to == Excl), "scatterlock has no EXCL");
    }
}
