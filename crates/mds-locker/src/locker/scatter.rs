//! Scatter-gather of directory statistics across ranks (mds spec §4.13, §4.9 auth step 2,
//! §4.12 LOCKFLUSHED and REQRDLOCK, §4.6 `wrlock_force`, §6.2 projection).
//!
//! A directory's entry counts (IFILE: `dirstat`) and recursive stats (INEST: `rstat`) live on
//! the inode's auth, but a dirfrag may be authoritative on another rank, which counts its own
//! entries in the frag's `fragstat` / `rstat`. The part already folded into the inode is the
//! frag's `accounted_*`. When the inode's auth gathers a scatterlock out of MIX, the replicas'
//! frag values arrive with their acks (SYNCACK, LOCKACK) and mark the lock dirty; before the
//! gather may complete, `scatter_writebehind` folds every frag's unaccounted difference into a
//! projected inode and journals it, and only when that entry is safe does the gather finish
//! (and the replicas hear LOCKFLUSHED). A replica that is auth for a frag learns from the next
//! lock data it receives that its difference was folded and journals `accounted := folded`
//! (`finish_scatter_update`). Ranks whose frags changed remember the lock on an "updated
//! scatterlocks" list; `scatter_tick` nudges locks that stayed dirty longer than
//! `scatter_nudge_interval_ms`, so stats converge without any client asking.
//!
//! Deviations, chosen for this model:
//! * Stats carry no version numbers (Ceph stamps `dirstat.version` and each frag's accounted
//!   version, and skips "stale" frags whose accounted version is not the inode's). Here the
//!   inode's auth sets its own copy of a non-auth frag to `accounted := fragstat` when it folds
//!   it, and the frag's auth compares its accounted values with the auth's copy in the lock
//!   data it receives next; a difference means the auth folded more than we have accounted,
//!   and we adopt the auth's accounted values. A replica only ships frag values when leaving
//!   MIX, and the data it received on entering MIX already brought its accounted values up to
//!   date, so a value is never folded twice.
//! * The writebehind does not propagate the folded rstat to the grandparent
//!   (`predirty_journal_parents(PRIMARY)`): recursive stats stop at the parent, as everywhere
//!   else in this crate.
//! * The auth's `start_scatter` (entering MIX) has nothing to do: a frag the inode's auth is
//!   also auth for is folded at once by `predirty_parent`, so its accounted values are never
//!   behind.
//! * `scatter_tick` asks for a journal flush only when it nudged something, so an idle rank's
//!   tick produces no effects (Ceph flushes unconditionally; a flush of an empty journal is a
//!   no-op there).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lock_sm::{LockAction, LockState, LockType};

use crate::cache::{DirStat, NestStat};
use crate::effects::Effect;
use crate::error::LockerError;
use crate::ids::{DirfragId, InodeId, JournalSeq, LockId, ObjRef, Rank, ReqId};
use crate::journal::JournalEntry;
use crate::lock::WAIT_STABLE;
use crate::mutation::{Mutation, Phase, Projection, WRLOCK};

use super::Locker;

/// The Locker's scatter bookkeeping: which locks have unfolded frag changes (and since when),
/// which internal mutations are writebehinds, and replica REQRDLOCKs parked until the auth
/// lock is stable again.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScatterState {
    /// Ceph's `updated_scatterlocks`: locks marked updated, with the time they were added,
    /// oldest first.
    updated: VecDeque<(LockId, u64)>,
    /// Writebehind mutations in flight and the lock each flushes.
    writebehinds: BTreeMap<ReqId, LockId>,
    /// REQRDLOCKs that reached the auth while its lock was unstable: the asking ranks, by lock.
    parked_rdlock: BTreeMap<LockId, BTreeSet<Rank>>,
    /// Parked REQRDLOCKs whose lock became stable, to be handled again before the event ends.
    retry_rdlock: VecDeque<(LockId, Rank)>,
}

/// The EUpdate type string of a writebehind (§4.13).
pub const WRITEBEHIND_EVENT: &str = "scatter_writebehind";

/// Adds `cur − acc` to `into`, clamping at zero (§4.13: a negative count is an accounting bug
/// that Ceph logs and clamps rather than wrapping).
fn add_delta(into: u64, cur: u64, acc: u64, what: &str) -> u64 {
    let v = i128::from(into) + i128::from(cur) - i128::from(acc);
    if v < 0 {
        tracing::error!(what, into, cur, acc, "scatter fold would go negative; clamped to 0");
        0
    } else {
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

/// `frag_info_t::add_delta`: counts move by the frag's unaccounted difference; mtime and
/// change_attr only move forward. Returns whether the mtime moved.
fn fold_dirstat(into: &mut DirStat, cur: &DirStat, acc: &DirStat) -> bool {
    into.nfiles = add_delta(into.nfiles, cur.nfiles, acc.nfiles, "nfiles");
    into.nsubdirs = add_delta(into.nsubdirs, cur.nsubdirs, acc.nsubdirs, "nsubdirs");
    into.change_attr = into.change_attr.max(cur.change_attr);
    if cur.mtime_ms > into.mtime_ms {
        into.mtime_ms = cur.mtime_ms;
        true
    } else {
        false
    }
}

/// `nest_info_t::add_delta` for the modelled fields; rctime only moves forward.
fn fold_rstat(into: &mut NestStat, cur: &NestStat, acc: &NestStat) {
    into.rbytes = add_delta(into.rbytes, cur.rbytes, acc.rbytes, "rbytes");
    into.rfiles = add_delta(into.rfiles, cur.rfiles, acc.rfiles, "rfiles");
    into.rsubdirs = add_delta(into.rsubdirs, cur.rsubdirs, acc.rsubdirs, "rsubdirs");
    into.rctime_ms = into.rctime_ms.max(cur.rctime_ms);
}

impl Locker {
    // ---- public views ---------------------------------------------------------------------

    /// Locks on this rank's "updated scatterlocks" list with the time each was added (what
    /// `scatter_tick` will nudge once they are old enough).
    pub fn updated_scatterlocks(&self) -> impl Iterator<Item = (LockId, u64)> + '_ {
        self.scatter.updated.iter().copied()
    }

    /// Replica REQRDLOCKs parked on this (auth) rank until the lock is stable: (lock, asker).
    pub fn parked_rdlock_requests(&self) -> impl Iterator<Item = (LockId, Rank)> + '_ {
        self.scatter.parked_rdlock.iter().flat_map(|(l, rs)| rs.iter().map(move |r| (*l, *r)))
    }

    /// Writebehind mutations whose journal entry is not safe yet, with the lock each flushes.
    pub fn writebehinds(&self) -> impl Iterator<Item = (ReqId, LockId)> + '_ {
        self.scatter.writebehinds.iter().map(|(r, l)| (*r, *l))
    }

    // ---- marking ----------------------------------------------------------------------------

    /// `mark_updated_scatterlock` (§4.13): the lock has frag changes not yet folded into the
    /// inode; remember when, so the periodic tick nudges it if nobody else gathers it first.
    pub(crate) fn mark_updated_scatterlock(&mut self, id: LockId) -> Result<(), LockerError> {
        self.lkm(id)?.scatter.dirty = true;
        if !self.scatter.updated.iter().any(|(l, _)| *l == id) {
            let now = self.now_ms();
            self.scatter.updated.push_back((id, now));
        }
        Ok(())
    }

    // ---- internal mutations -------------------------------------------------------------------

    /// Starts an internal mutation (no client), with an id from the Locker's internal range
    /// made unique by the journal sequence it will be submitted under.
    fn start_internal_mutation(&mut self) -> (JournalSeq, ReqId) {
        let seq = JournalSeq(self.next_seq);
        self.next_seq += 1;
        let reqid = ReqId(ReqId::INTERNAL_BASE + seq.0);
        let now = self.now_ms();
        self.requests.insert(reqid, Mutation::new(reqid, None, now));
        (seq, reqid)
    }

    /// Submits an internal mutation's entry; its projections apply when it is safe (`commit`).
    fn submit_internal(&mut self, seq: JournalSeq, reqid: ReqId, what: &str) -> Result<(), LockerError> {
        let entry = JournalEntry::update(reqid, what, self.projected_changes(reqid)?);
        self.stats.journal_submits += 1;
        self.fx.push(Effect::JournalSubmit { seq, entry });
        self.committing.insert(seq, reqid);
        self.mutation_mut(reqid)?.phase = Phase::Committing(seq);
        self.mark_event(reqid, &format!("submit entry: {what}"));
        Ok(())
    }

    // ---- auth: writebehind --------------------------------------------------------------------

    /// `scatter_writebehind` (§4.13): fold the gathered frag stats into a projected inode under
    /// a forced wrlock (§4.6 `wrlock_force`: the journal must not wait for the lock's state),
    /// move the lock DIRTY → FLUSHING (which keeps its gather from completing, §4.9) and
    /// journal the result. `scatter_writebehind_committed` finishes it.
    pub(crate) fn scatter_writebehind(&mut self, id: LockId) -> Result<(), LockerError> {
        let Some(inode) = id.inode_id() else {
            return Err(LockerError::Precondition("scatter writebehind on a dentry lock"));
        };
        let (seq, reqid) = self.start_internal_mutation();
        let obj = ObjRef::Inode(inode);
        if self.mutation_mut(reqid)?.auth_pins.insert(obj) {
            self.cache.add_auth_pin(obj, 1);
        }
        self.lkm(id)?.get_wrlock(reqid, None);
        self.mutation_mut(reqid)?.add_held(id, WRLOCK);
        tracing::debug!(%reqid, lock = ?id, state = %self.lk(id)?.state(), "wrlock_force (scatter writebehind)");
        self.cache.project_inode(inode, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        self.cache.pre_dirty_inode(inode);
        self.finish_scatter_gather_update(id, inode, reqid)?;
        self.note_projection(reqid, Projection::Inode(inode))?;
        // start_flush: DIRTY → FLUSHING.
        let l = self.lkm(id)?;
        l.scatter.flushing = true;
        l.scatter.dirty = false;
        self.scatter.writebehinds.insert(reqid, id);
        self.submit_internal(seq, reqid, WRITEBEHIND_EVENT)?;
        self.need_flush = true;
        Ok(())
    }

    /// `finish_scatter_gather_update` (§4.13): every dirfrag's unaccounted difference goes into
    /// the inode's projected dirstat (IFILE) or rstat (INEST), and the frag's accounted values
    /// become its current ones. Frags this rank is auth for are projected and journaled with
    /// the writebehind; our copies of other ranks' frags are updated in place (they are not
    /// ours to journal; see the module doc for how their auth catches up).
    fn finish_scatter_gather_update(
        &mut self,
        id: LockId,
        inode: InodeId,
        reqid: ReqId,
    ) -> Result<(), LockerError> {
        if !matches!(id.ty, LockType::IFile | LockType::INest) {
            return Ok(()); // IDFT: nothing to fold.
        }
        let me = self.cache.rank();
        let frags: Vec<DirfragId> =
            self.cache.inode(inode).map(|n| n.dirfrags().values().copied().collect()).unwrap_or_default();
        let mut dirstat = self.cache.inode(inode).map(|n| n.projected_data().dirstat).unwrap_or_default();
        let mut rstat = self.cache.inode(inode).map(|n| n.projected_data().rstat).unwrap_or_default();
        let mut touched_mtime = false;
        for f in frags {
            let Some(auth) = self.cache.dirfrag(f).map(|d| d.auth()) else { continue };
            let fnode = if auth == me {
                self.note_projection(reqid, Projection::Fnode(f))?;
                self.cache.project_fnode(f, reqid).ok_or(LockerError::Precondition("dirfrag vanished"))?
            } else {
                match self.cache.dirfrag_mut(f) {
                    Some(df) => &mut df.fnode,
                    None => continue,
                }
            };
            if id.ty == LockType::IFile {
                touched_mtime |= fold_dirstat(&mut dirstat, &fnode.fragstat, &fnode.accounted_fragstat);
                fnode.accounted_fragstat = fnode.fragstat;
            } else {
                fold_rstat(&mut rstat, &fnode.rstat, &fnode.accounted_rstat);
                fnode.accounted_rstat = fnode.rstat;
            }
        }
        let pi = self.cache.project_inode(inode, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        if id.ty == LockType::IFile {
            pi.dirstat = dirstat;
            if touched_mtime {
                pi.mtime_ms = dirstat.mtime_ms;
                pi.ctime_ms = pi.ctime_ms.max(dirstat.mtime_ms);
            }
        } else {
            pi.rstat = rstat;
        }
        tracing::debug!(lock = ?id, ?dirstat, ?rstat, "scatter fold");
        Ok(())
    }

    /// `scatter_writebehind_finish`, called by `commit` once the entry is safe and the
    /// projections are applied, before the mutation's locks drop: FLUSHING → FLUSHED, and the
    /// replicas that shipped their data with a LOCKACK hear LOCKFLUSHED (§4.12) — now, not
    /// earlier. Dropping the forced wrlock then re-runs `eval_gather`, which the FLUSHED flag
    /// lets complete. Other mutations are left alone.
    pub(crate) fn scatter_writebehind_committed(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(id) = self.scatter.writebehinds.remove(&reqid) else {
            return Ok(());
        };
        let l = self.lkm(id)?;
        if l.scatter.flushing {
            l.scatter.flushing = false;
            l.scatter.flushed = true;
        }
        let state = l.state();
        if self.lock_replicated(id)
            && matches!(
                state,
                LockState::MixLock | LockState::MixLock2 | LockState::MixExcl | LockState::MixTsyn
            )
        {
            self.send_lock_to_replicas(id, LockAction::LockFlushed, false)?;
        }
        if self.lk(id)?.is_stable() {
            self.wake(id, WAIT_STABLE)?;
        }
        Ok(())
    }

    // ---- replica: finish_scatter_update -------------------------------------------------------

    /// `finish_scatter_update` (§4.13) on a rank that is auth for dirfrag `f` of a directory
    /// whose inode lives elsewhere: the inode's auth says (in its lock data) what it has
    /// accounted for the frag. If that differs from our accounted values the auth has folded
    /// our changes, so journal a small fnode update adopting its accounted values. Whatever
    /// difference remains unfolded keeps the lock on the updated list.
    pub(crate) fn finish_scatter_update(
        &mut self,
        id: LockId,
        f: DirfragId,
        auth_accounted: ScatterAccounted,
    ) -> Result<(), LockerError> {
        let Some(df) = self.cache.dirfrag(f) else { return Ok(()) };
        let pf = df.projected_fnode();
        let same = match auth_accounted {
            ScatterAccounted::File(a) => pf.accounted_fragstat == a,
            ScatterAccounted::Nest(a) => pf.accounted_rstat == a,
        };
        if same {
            return Ok(());
        }
        let (seq, reqid) = self.start_internal_mutation();
        self.note_projection(reqid, Projection::Fnode(f))?;
        let fnode =
            self.cache.project_fnode(f, reqid).ok_or(LockerError::Precondition("dirfrag vanished"))?;
        let (what, still_dirty) = match auth_accounted {
            ScatterAccounted::File(a) => {
                fnode.accounted_fragstat = a;
                ("lock ifile accounted scatter stat update", fnode.fragstat != a)
            }
            ScatterAccounted::Nest(a) => {
                fnode.accounted_rstat = a;
                ("lock inest accounted scatter stat update", fnode.rstat != a)
            }
        };
        tracing::debug!(%reqid, lock = ?id, frag = ?f, still_dirty, "finish_scatter_update");
        self.submit_internal(seq, reqid, what)?;
        if still_dirty {
            self.mark_updated_scatterlock(id)?;
        }
        Ok(())
    }

    // ---- tick ---------------------------------------------------------------------------------

    /// `scatter_tick` (§4.13): walk the updated list once over its current length; forget
    /// locks no longer dirty, stop at the first one updated less than
    /// `scatter_nudge_interval_ms` ago, and nudge the rest (a replica sends NUDGE and keeps
    /// the lock queued while it stays dirty). Then flush the journal if anything was nudged.
    pub(crate) fn scatter_tick(&mut self) -> Result<(), LockerError> {
        let interval = self.config().scatter_nudge_interval_ms;
        let now = self.now_ms();
        let mut n = self.scatter.updated.len();
        let mut nudged = false;
        while let Some(&(id, stamp)) = self.scatter.updated.front() {
            if n == 0 {
                break;
            }
            n -= 1;
            let Some((dirty, is_auth)) = self.lk(id).ok().map(|l| (l.scatter_flags().dirty, l.is_auth()))
            else {
                self.scatter.updated.pop_front();
                continue;
            };
            if !dirty {
                self.scatter.updated.pop_front();
                continue;
            }
            if now.saturating_sub(stamp) < interval {
                break;
            }
            self.scatter.updated.pop_front();
            tracing::debug!(lock = ?id, is_auth, "scatter_tick nudges");
            self.scatter_nudge(id)?;
            nudged = true;
            if !is_auth && self.lk(id)?.scatter_flags().dirty {
                // Ceph re-queues a replica's lock with its old stamp ("not ideal").
                self.scatter.updated.push_back((id, stamp));
            }
        }
        if nudged {
            self.need_flush = true;
        }
        Ok(())
    }

    // ---- REQRDLOCK parking --------------------------------------------------------------------

    /// Parks a REQRDLOCK that reached an unstable auth lock (Ceph's wait on STABLE with a
    /// retry of the message), so the asking replica is never left waiting on a copy whose
    /// state the auth would not otherwise change.
    pub(crate) fn park_reqrdlock(&mut self, id: LockId, from: Rank) {
        self.scatter.parked_rdlock.entry(id).or_default().insert(from);
    }

    /// Called whenever a lock changes state: an auth lock that just became stable hands its
    /// parked REQRDLOCKs back for handling before the event ends.
    pub(crate) fn lock_state_changed(&mut self, id: LockId, was_stable: bool, now_stable: bool) {
        if was_stable || !now_stable {
            return;
        }
        if let Some(ranks) = self.scatter.parked_rdlock.remove(&id) {
            self.scatter.retry_rdlock.extend(ranks.into_iter().map(|r| (id, r)));
        }
    }

    /// Handles one parked REQRDLOCK whose lock became stable; false if none is waiting.
    pub(crate) fn retry_parked_reqrdlock(&mut self) -> Result<bool, LockerError> {
        let Some((id, from)) = self.scatter.retry_rdlock.pop_front() else {
            return Ok(false);
        };
        tracing::debug!(lock = ?id, from, "re-processing parked REQRDLOCK");
        if self.lk(id).is_ok_and(|l| l.is_auth()) {
            self.handle_reqrdlock(from, id)?;
        }
        Ok(true)
    }
}

/// The inode auth's accounted values for one frag, as its lock data carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScatterAccounted {
    /// IFILE: accounted fragstat.
    File(DirStat),
    /// INEST: accounted rstat.
    Nest(NestStat),
}
