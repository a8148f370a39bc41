//! Two-phase namespace updates with witnesses (mds spec §4.17 LINKPREP / RMDIRPREP /
//! RENAMEPREP, PREPACK, FINISH, COMMITTED; §4.18 "no early reply with journaled peers";
//! §5.2 multi-MDS notes; §6.1 EPeerUpdate / ECommitted).
//!
//! Leader (the rank running the client's request, auth for the destination dentry): it takes
//! every lock, local and remote (remote xlocks and auth pins live in a peer request on the
//! objects' auth ranks), projects the update as on one rank, and turns what it projected
//! into `WitnessEdit`s. If any changed object, or a dirfrag of a removed or renamed
//! directory, is auth on another rank, those ranks are witnesses: the leader drops its
//! projections again, sends each witness a *PREP with every edit, and waits. When every
//! witness acked, the request runs again, projects the same update and journals its EUpdate
//! (with the witness list, `had_peers`) without an early reply. When that entry is safe it
//! applies, sends FINISH (commit) to every witness, replies safe; when every witness answered
//! COMMITTED it journals ECommitted. If a witness refuses, the leader sends FINISH (abort) to
//! all of them and fails the request; nothing changed anywhere.
//!
//! Witness: a *PREP joins the peer request that already holds the leader's remote locks here
//! (same request id), checks the edits against its authoritative objects, projects them,
//! journals EPeerUpdate PREPARE (with the rollback record), and once that is safe installs
//! the inode and fnode projections and acks. FINISH (commit) installs the dentry linkages,
//! journals EPeerUpdate COMMIT and drops the peer request's locks, then answers COMMITTED
//! once COMMIT is safe; FINISH (abort) drops the linkage projections, projects and journals
//! ROLLBACK with the inverse of the installed counts (if it had prepared; an abort before
//! the PREPARE is safe waits for it) and drops the locks. FINISH replaces DROPLOCKS for
//! a witness: the leader never sends DROPLOCKS to a rank it sent a *PREP.
//!
//! Deviations from Ceph, by design of this scope:
//! * The witness installs inode and fnode changes when its PREPARE is safe, as Ceph's does
//!   (local requests under the shared filelock/nestlock wrlocks stack on top of them and
//!   must install after them), but dentry linkages only at COMMIT (the leader's xlocks keep
//!   everyone else off them; a renamed file's primary link moves with its auth). A rollback
//!   undoes counts as deltas and does not turn change/modification times back.
//! * The leader projects before the preps (to compute the edits), drops the projections,
//!   and projects again after the acks; Ceph computes the witness payload before projecting.
//! * A renamed file migrates to the leader with its primary link (`migrate`: the srcdn auth,
//!   which is srci's auth, is asked last, freezes srci, recalls its caps and exports it in
//!   its PREPACK; the leader imports at commit). A renamed directory does not: it stays auth
//!   where it was, and its auth gets a replica of the new primary dentry so that it keeps a
//!   parent: sent before the prep when the leader can send the whole path, else fetched by
//!   the witness before it prepares (`witness_fetch`, as Ceph's witness traverses it). An unlink of such a directory's primary link, or a
//!   rename over it, moves the inode into the leader's stray directory the same way (its
//!   auth witnesses and gets the stray dentry as its parent), where Ceph would find the
//!   inode auth on the leader. Unlink of a remote link whose inode is auth elsewhere is
//!   Ceph's: the inode's auth witnesses through UNLINKPREP.
//! * A witness that has no copy of the inode a replica dentry is to link projects the
//!   dentry null (its old inode left); the DN lock data refresh it when the xlock goes.
//! * The witness set is: the auth of every changed object, the auths of a removed or renamed
//!   directory's dirfrags, and a renamed inode's auth. Replicas of srcdn/destdn that are not
//!   otherwise involved are refreshed by the MLock protocol when the xlocks go, not by a
//!   RENAMEPREP; the srcdn auth's "more witnesses needed" answer does not exist.
//! * A witness's dirfrag statistics change is made under the leader's wrlocks on the
//!   directory's filelock and nestlock (held on the directory inode's auth), not under
//!   wrlocks of its own.
//! * RMDIR leaves the witness's empty dirfrag in place and the witness's replica of the
//!   removed directory without a parent (Ceph trims the non-auth subtree).
//! * Rank failure (§6.6; `Cluster::{crash, restart}` drive it). Replay holds a PREPARE's
//!   metablob aside and applies it at its COMMIT (ROLLBACK drops it); a PREPARE left without
//!   either is settled in resolve: commit iff the leader journaled its EUpdate (durable, or
//!   submitted by a live leader), applying the metablob and journaling COMMIT, else
//!   journaling ROLLBACK. The rollback record is therefore never replayed (there is nothing
//!   to undo); it stays in the PREPARE for dumps and for parity with Ceph. A survivor
//!   witness keeps a prepared update's projections and locks while its leader is down and
//!   commits or rolls back at the leader's resolve; an unprepared one is dropped. A leader
//!   whose witness fails before the leader journaled forgets that witness's ack and re-sends
//!   the prep (after the dentry replicas it needs) once the witness is active, as Ceph's
//!   leader does; after journaling it waits, and re-sends FINISH (commit) at RankActive. A
//!   restarted leader with an EUpdate that has peers and no ECommitted journals ECommitted
//!   once the survivors that still had it prepared answer COMMITTED (at once if none did).
//!   Simplified: the witness list is learned from the survivors in resolve (EUpdate keeps
//!   only `had_peers`); a witness answers a FINISH (commit) for an update it no longer knows
//!   with COMMITTED; both ranks of an update failing together is not handled.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::LockType;

use crate::cache::Linkage;
use crate::effects::{Effect, Errno};
use crate::error::LockerError;
use crate::ids::{DentryId, Ino, InodeId, JournalSeq, LockId, ObjKey, ObjRef, Rank, ReqId};
use crate::journal::{JournalEntry, MetaChange};
use crate::message::{DentryLinkage, MdsMessage, PeerMsg, PeerOp};
use crate::mutation::{Phase, Projection};
use crate::twophase::{OrigOp, PeerPhase, PeerRecord, WitnessEdit, WitnessPrep, rollback_blob};

use super::Locker;

/// The Locker's two-phase bookkeeping, on both sides.
#[derive(Debug, Clone, Default)]
pub(crate) struct TwoPhase {
    /// Leader side, by request.
    leading: BTreeMap<ReqId, Leading>,
    /// Witness side, by the leader's request id.
    witnessing: BTreeMap<ReqId, Witnessing>,
    /// Two-phase journal entries waiting to be safe, and what to do then.
    pending: BTreeMap<JournalSeq, OnSafe>,
    /// Witness side: preps parked while the witness fetches dentries (`witness_fetch`).
    pub(crate) fetching: BTreeMap<ReqId, super::witness_fetch::FetchingPrep>,
}

#[derive(Debug, Clone)]
struct Leading {
    origop: OrigOp,
    witnesses: BTreeSet<Rank>,
    acked: BTreeSet<Rank>,
    failed: Option<Errno>,
    journaled: bool,
    /// FINISH (abort) already went out.
    aborted: bool,
    /// The EUpdate is safe and FINISH (commit) went out: ECommitted may follow once every
    /// witness answered COMMITTED (not before: a witness that resolved to commit while it
    /// was down may answer before the leader's own entry is safe).
    finished: bool,
    committed: BTreeSet<Rank>,
    /// What the witnesses were sent, kept to prepare again on a witness that failed before
    /// the leader journaled (Ceph's leader re-sends the prep once the peer is active).
    prep: Option<WitnessPrep>,
    /// Dentry replicas that had to reach each witness before its prep.
    replicate: Vec<(ObjKey, Rank)>,
    /// Witnesses that failed before the leader journaled: prepare again at RankActive.
    reprep: BTreeSet<Rank>,
    /// The witness that exports the renamed inode, while its prep waits for every other
    /// witness's ack (Ceph asks the srcdn auth last: it freezes the inode).
    held_prep: Option<Rank>,
}

#[derive(Debug, Clone)]
struct Witnessing {
    leader: Rank,
    origop: OrigOp,
    prepared: bool,
    /// The PREPARE is safe and its projections are installed (Ceph's witness applies the
    /// update once the prepare is journaled, `_logged_peer_*`).
    applied: bool,
    /// FINISH (abort) came while the PREPARE was still unsafe: apply, then roll back, once
    /// it is safe (the projections cannot be dropped from under later requests' ones).
    abort_requested: bool,
    /// The edits that undo this update on this rank (Ceph's rollback blob, `rollback_blob`),
    /// computed before projecting.
    inverse: Vec<WitnessEdit>,
}

#[derive(Debug, Clone, Copy)]
enum OnSafe {
    /// A witness's PREPARE: install its projections and ack the leader (`ack` is false once
    /// the leader failed or aborted: resolve or the abort decides instead).
    Prepared { reqid: ReqId, leader: Rank, ack: bool },

    /// A witness's COMMIT: tell the leader.
    Committed { reqid: ReqId, leader: Rank },
}

impl TwoPhase {
    /// Whether `rank` is a witness of the leader request `reqid` (it gets FINISH, never
    /// DROPLOCKS).
    pub(crate) fn is_witness(&self, reqid: ReqId, rank: Rank) -> bool {
        self.leading.get(&reqid).is_some_and(|l| l.witnesses.contains(&rank))
    }

    /// Whether this rank, as a witness, prepared the leader request `reqid`.
    pub(crate) fn is_prepared(&self, reqid: ReqId) -> bool {
        self.witnessing.get(&reqid).is_some_and(|w| w.prepared)
    }

    /// Whether the request has journaled peers (§4.18: no early reply).
    pub(crate) fn has_witnesses(&self, reqid: ReqId) -> bool {
        self.leading.get(&reqid).is_some_and(|l| !l.witnesses.is_empty())
    }

    /// Requests this rank leads with witnesses that have not all committed.
    pub(crate) fn leading_count(&self) -> usize {
        self.leading.len()
    }

    /// Requests this rank witnesses and has not finished.
    pub(crate) fn witnessing_count(&self) -> usize {
        self.witnessing.len()
    }
}

fn link_of(l: Linkage, key: impl Fn(InodeId) -> Option<Ino>) -> DentryLinkage {
    match l {
        Linkage::Null => DentryLinkage::Null,
        Linkage::Primary(i) => key(i).map_or(DentryLinkage::Null, DentryLinkage::Primary),
        Linkage::Remote { ino, d_type } => DentryLinkage::Remote { ino, d_type },
    }
}

impl Locker {
    // ---- leader --------------------------------------------------------------------------

    /// `journal_and_reply` for an operation that may need witnesses. `extra` lists ranks
    /// that must witness although none of the projected objects is theirs (a dirfrag of a
    /// removed or renamed directory), with edits only they check.
    pub(crate) fn journal_and_reply_witnessed(
        &mut self,
        reqid: ReqId,
        origop: OrigOp,
        mut entry: JournalEntry,
        result: Result<Option<Ino>, Errno>,
        extra: Vec<(Rank, Option<WitnessEdit>)>,
    ) -> Result<(), LockerError> {
        if let Some(l) = self.twophase.leading.get_mut(&reqid) {
            if l.acked.len() == l.witnesses.len() && l.failed.is_none() && !l.journaled {
                l.journaled = true;
                entry.peer =
                    Some(PeerRecord::Leader { witnesses: l.witnesses.iter().copied().collect(), origop });
                tracing::debug!(%reqid, "every witness prepared; journaling the leader's update");
                self.mark_event(reqid, "witnesses prepared");
                return self.journal_and_reply(reqid, entry, result);
            }
            // Re-run while the witnesses are still preparing: nothing to do yet.
            self.discard_projections(reqid)?;
            return Ok(());
        }
        let (witnesses, edits, mut replicate) = self.witness_plan(reqid, &entry, &extra)?;
        // The exporter of a renamed inode needs no replica of its new primary dentry: the
        // inode it keeps is a replica of this rank's, found by inode number.
        let exporter = self.import_source(origop, &entry);
        replicate.retain(|(_, to)| Some(*to) != exporter);
        if witnesses.is_empty() {
            return self.journal_and_reply(reqid, entry, result);
        }
        // Ceph's order: nothing is projected on the leader until every witness prepared.
        self.discard_projections(reqid)?;
        for (key, to) in &replicate {
            // Else the witness discovers the path itself (`witness_fetch`).
            self.replicate_if_attachable(key, *to)?;
        }
        let client = self.mutation(reqid)?.client;
        let prep = WitnessPrep { origop, edits };
        // The exporter of the renamed inode prepares last, once the others acked.
        let held_prep = exporter.filter(|x| witnesses.contains(x) && witnesses.len() > 1);
        for w in &witnesses {
            if Some(*w) == held_prep {
                continue;
            }
            let mut msg = PeerMsg::new(prep.prep_op(), reqid, client);
            msg.prep = Some(Box::new(prep.clone()));
            self.send(*w, MdsMessage::Peer(msg));
        }
        let prep = Some(prep);
        tracing::debug!(%reqid, ?witnesses, op = origop.name(), "sent preps to witnesses");
        let m = self.mutation_mut(reqid)?;
        m.peers.extend(witnesses.iter().copied());
        m.phase = Phase::Holding;
        self.twophase.leading.insert(
            reqid,
            Leading {
                origop,
                witnesses,
                acked: BTreeSet::new(),
                failed: None,
                journaled: false,
                aborted: false,
                finished: false,
                committed: BTreeSet::new(),
                prep,
                replicate,
                reprep: BTreeSet::new(),
                held_prep,
            },
        );
        self.mark_event(reqid, "waiting for witnesses to prepare");
        Ok(())
    }

    /// Who must witness the update `entry` describes, the edits they get, and which dentry
    /// replicas must reach which rank first (a renamed inode's auth needs its new parent).
    #[allow(clippy::type_complexity)]
    fn witness_plan(
        &self,
        reqid: ReqId,
        entry: &JournalEntry,
        extra: &[(Rank, Option<WitnessEdit>)],
    ) -> Result<(BTreeSet<Rank>, Vec<WitnessEdit>, Vec<(ObjKey, Rank)>), LockerError> {
        let me = self.cache.rank();
        let key = |i: InodeId| self.cache.inode(i).map(|n| n.ino());
        let mut witnesses = BTreeSet::new();
        let mut edits = Vec::new();
        let mut replicate = Vec::new();
        // Per directory: the entry counts the linkage changes add up to (what
        // `predirty_parent` did), sent as deltas: the leader's copy of another rank's
        // dirfrag may be stale (its stats travel by the scatterlocks), so a difference of two
        // of its fnodes is not the change.
        let mut frag_deltas: BTreeMap<Ino, [i64; 4]> = BTreeMap::new();
        let counts = |l: Linkage| -> [i64; 4] {
            match l {
                Linkage::Null => [0; 4],
                Linkage::Primary(i) if self.cache.inode(i).is_some_and(|n| n.is_dir()) => [0, 1, 0, 1],
                Linkage::Primary(_) => [1, 0, 1, 0],
                Linkage::Remote { d_type, .. } if d_type & crate::cache::S_IFMT == crate::cache::S_IFDIR => {
                    [0, 1, 0, 0]
                }
                Linkage::Remote { .. } => [1, 0, 0, 0],
            }
        };
        for c in &entry.changes {
            match c {
                MetaChange::Dentry { id, dir, name, linkage, .. } => {
                    let Some(d) = self.cache.dentry(*id) else { continue };
                    let prior = {
                        let ps: Vec<_> = d.projections().collect();
                        match ps.iter().rposition(|p| p.by == reqid) {
                            Some(k) if k > 0 => ps[k - 1].linkage,
                            _ => d.linkage(),
                        }
                    };
                    let auth = self.cache.auth_of(ObjRef::Dentry(*id)).unwrap_or(me);
                    if auth != me {
                        witnesses.insert(auth);
                    }
                    let (new_c, old_c) = (counts(*linkage), counts(prior));
                    let acc = frag_deltas.entry(*dir).or_default();
                    for k in 0..4 {
                        acc[k] += new_c[k] - old_c[k];
                    }
                    if let Linkage::Primary(i) = linkage
                        && let Some(ia) = self.cache.auth_of(ObjRef::Inode(*i)).filter(|a| *a != me)
                    {
                        witnesses.insert(ia);
                        if auth == me && !self.cache.replicas_of(ObjRef::Dentry(*id)).contains(&ia) {
                            replicate.push((ObjKey::Dentry { dir: *dir, name: name.clone() }, ia));
                        }
                    }
                    edits.push(WitnessEdit::Link {
                        dir: *dir,
                        name: name.clone(),
                        linkage: link_of(*linkage, key),
                        expect: link_of(prior, key),
                    });
                }
                MetaChange::Inode { id, ino, data } => {
                    let Some(n) = self.cache.inode(*id) else { continue };
                    let prior = {
                        let ps: Vec<_> = n.projections().collect();
                        match ps.iter().rposition(|p| p.by == reqid) {
                            Some(k) if k > 0 => ps[k - 1].data.clone(),
                            _ => n.data().clone(),
                        }
                    };
                    let auth = n.auth();
                    let nlink_delta = i64::from(data.nlink) - i64::from(prior.nlink);
                    if auth != me && (nlink_delta != 0 || !n.is_dir()) {
                        witnesses.insert(auth);
                    }
                    edits.push(WitnessEdit::Inode { ino: *ino, nlink_delta, ctime_ms: data.ctime_ms });
                }
                MetaChange::Dirfrag { .. } => {}
            }
        }
        for c in &entry.changes {
            let MetaChange::Dirfrag { id, dir, fnode } = c else { continue };
            let Some(f) = self.cache.dirfrag(*id) else { continue };
            if f.auth() != me {
                witnesses.insert(f.auth());
            }
            let [nfiles, nsubdirs, rfiles, rsubdirs] = frag_deltas.get(dir).copied().unwrap_or_default();
            edits.push(WitnessEdit::Frag {
                dir: *dir,
                nfiles,
                nsubdirs,
                rfiles,
                rsubdirs,
                mtime_ms: fnode.fragstat.mtime_ms,
            });
        }
        for (r, e) in extra {
            if *r != me {
                witnesses.insert(*r);
            }
            if let Some(e) = e
                && !edits.contains(e)
            {
                edits.push(e.clone());
            }
        }
        Ok((witnesses, edits, replicate))
    }

    /// PREPACK on the leader: note the answer; once all are in, either abort everywhere and
    /// fail the request, or run it again to project and journal.
    fn leader_prep_ack(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let reqid = msg.reqid;
        let Some(l) = self.twophase.leading.get_mut(&reqid) else {
            tracing::debug!(from, %reqid, "prep ack for an update that is gone; ignored");
            return Ok(());
        };
        if !l.witnesses.contains(&from) || l.journaled {
            tracing::warn!(from, %reqid, "unexpected prep ack; ignored");
            return Ok(());
        }
        l.acked.insert(from);
        if let Some(Err(e)) = msg.prep_result {
            l.failed.get_or_insert(e);
        }
        if let Some(x) = l.held_prep
            && l.failed.is_none()
            && l.acked.len() + 1 == l.witnesses.len()
            && !l.acked.contains(&x)
        {
            // Every other witness prepared: now the exporter.
            l.held_prep = None;
            let prep = l.prep.clone();
            let client = self.requests.get(&reqid).and_then(|m| m.client);
            let op = prep.as_ref().map_or(OrigOp::Rename.prep_op(), WitnessPrep::prep_op);
            let mut m = PeerMsg::new(op, reqid, client);
            m.prep = prep.map(Box::new);
            self.send(x, MdsMessage::Peer(m));
            return Ok(());
        }
        if let Some(ex) = msg.inode_export {
            self.stash_import(reqid, from, *ex);
        }
        let Some(l) = self.twophase.leading.get(&reqid) else { return Ok(()) };
        // A refusal while the exporter's prep is still held ends the update without it.
        if l.acked.len() + usize::from(l.held_prep.is_some()) < l.witnesses.len() {
            return Ok(());
        }
        if let Some(e) = l.failed {
            tracing::debug!(%reqid, ?e, "a witness could not prepare; aborting everywhere");
            self.drop_import(reqid);
            self.send_finish(reqid, true)?;
            if let Some(l) = self.twophase.leading.get_mut(&reqid) {
                l.aborted = true;
            }
            if self.requests.contains_key(&reqid) {
                // The state stays until cleanup, so no DROPLOCKS goes to the witnesses.
                self.mark_event(reqid, "witness refused; aborted");
                return self.reply_error(reqid, e);
            }
            self.twophase.leading.remove(&reqid);
            return Ok(());
        }
        if self.requests.contains_key(&reqid) {
            self.mark_event(reqid, "all witnesses prepared");
            self.mutation_mut(reqid)?.phase = Phase::Locking;
            self.requeue(reqid);
        }
        Ok(())
    }

    /// FINISH to every witness of `reqid`.
    fn send_finish(&mut self, reqid: ReqId, abort: bool) -> Result<(), LockerError> {
        let Some(l) = self.twophase.leading.get(&reqid) else { return Ok(()) };
        let witnesses: Vec<Rank> = l.witnesses.iter().copied().collect();
        let client = self.requests.get(&reqid).and_then(|m| m.client);
        for w in witnesses {
            let mut msg = PeerMsg::new(PeerOp::Finish, reqid, client);
            msg.flag = abort;
            self.send(w, MdsMessage::Peer(msg));
        }
        Ok(())
    }

    /// The leader's EUpdate is safe and applied: FINISH (commit) to the witnesses. Called
    /// before the leader drops its locks, so the FINISH precedes every lock message.
    pub(crate) fn commit_witnesses(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(l) = self.twophase.leading.get_mut(&reqid).filter(|l| l.journaled) else {
            return Ok(());
        };
        l.finished = true;
        self.send_finish(reqid, false)?;
        self.mark_event(reqid, "sent finish (commit) to witnesses");
        // Witnesses that resolved to commit while this entry was still unsafe have answered.
        self.log_committed_if_done(reqid);
        Ok(())
    }

    /// Request cleanup on the leader: an update whose EUpdate was never journaled is aborted
    /// on every witness that still has its prep (a cancelled or failed request). A journaled
    /// one stays until every witness committed.
    pub(crate) fn abort_unjournaled_witnesses(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(l) = self.twophase.leading.get(&reqid) else { return Ok(()) };
        if !l.journaled {
            if !l.aborted {
                self.send_finish(reqid, true)?;
            }
            self.twophase.leading.remove(&reqid);
            self.drop_import(reqid);
        }
        Ok(())
    }

    /// COMMITTED on the leader: once every witness committed, journal ECommitted.
    fn leader_committed(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let reqid = msg.reqid;
        let Some(l) = self.twophase.leading.get_mut(&reqid) else {
            tracing::debug!(from, %reqid, "committed for an update that is gone; ignored");
            return Ok(());
        };
        if !l.witnesses.contains(&from) {
            tracing::warn!(from, %reqid, "committed from a rank that is not a witness; ignored");
            return Ok(());
        }
        l.committed.insert(from);
        self.log_committed_if_done(reqid);
        Ok(())
    }

    /// Journals ECommitted once the leader's update is finished and every witness
    /// committed; the update is then done everywhere.
    fn log_committed_if_done(&mut self, reqid: ReqId) {
        let Some(l) = self.twophase.leading.get(&reqid) else { return };
        if !l.finished || l.committed.len() < l.witnesses.len() {
            return;
        }
        let origop = l.origop;
        self.twophase.leading.remove(&reqid);
        tracing::debug!(%reqid, "every witness committed; journaling ECommitted");
        self.submit_committed(reqid, origop);
    }

    fn submit_committed(&mut self, reqid: ReqId, origop: OrigOp) {
        let entry = JournalEntry {
            reqid,
            description: format!("{}_committed", origop.name()),
            changes: Vec::new(),
            peer: Some(PeerRecord::Committed),
        };
        self.submit_twophase(entry, None);
    }

    // ---- witness -------------------------------------------------------------------------

    /// LINKPREP / RMDIRPREP / RENAMEPREP on a witness.
    pub(crate) fn witness_prep(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let Some(prep) = msg.prep.clone() else {
            return Err(LockerError::BadMessage { from, why: "prep without a payload" });
        };
        if self.twophase.witnessing.contains_key(&msg.reqid) {
            tracing::warn!(from, reqid = %msg.reqid, "duplicate prep; ignored");
            return Ok(());
        }
        if self.export_gate(from, &msg)? {
            // Waits for the inode it exports to freeze (`poll_exports` runs it again).
            return Ok(());
        }
        let Some(reqid) = self.peer_request(from, &msg, true) else {
            return Ok(());
        };
        if self.witness_fetch_parents(reqid, from, &msg, &prep.edits)? {
            return Ok(());
        }
        let origop = prep.origop;
        let mut w = Witnessing {
            leader: from,
            origop,
            prepared: false,
            applied: false,
            abort_requested: false,
            inverse: Vec::new(),
        };
        if let Err(e) = self.witness_check(&prep.edits) {
            tracing::debug!(%reqid, ?e, "cannot prepare");
            self.mark_event(reqid, "witness refused prep");
            self.twophase.witnessing.insert(reqid, w);
            let mut ack = PeerMsg::new(PeerOp::PrepAck, reqid, msg.client);
            ack.prep_result = Some(Err(e));
            self.send(from, MdsMessage::Peer(ack));
            return Ok(());
        }
        w.inverse = Self::witness_inverse(&prep.edits);
        self.witness_project(reqid, &prep.edits)?;
        let changes = self.projected_changes(reqid)?;
        let entry = JournalEntry {
            reqid,
            description: origop.name().to_string(),
            changes,
            peer: Some(PeerRecord::Peer {
                leader: from,
                phase: PeerPhase::Prepare,
                origop,
                rollback: rollback_blob(&prep.edits),
            }),
        };
        let seq = self.submit_twophase(entry, Some(OnSafe::Prepared { reqid, leader: from, ack: true }));
        self.mutation_mut(reqid)?.phase = Phase::Committing(seq);
        w.prepared = true;
        self.twophase.witnessing.insert(reqid, w);
        self.mark_event(reqid, "journaled peer prepare");
        Ok(())
    }

    /// Whether the edits fit what this rank is authoritative for.
    fn witness_check(&self, edits: &[WitnessEdit]) -> Result<(), Errno> {
        let me = self.cache.rank();
        for e in edits {
            match e {
                WitnessEdit::Link { dir, name, expect, .. } => {
                    let Some(d) = self.cache.lookup_ino(*dir) else { continue };
                    let frag_auth =
                        self.cache.dirfrag_of_existing(d).and_then(|f| self.cache.dirfrag_auth(f));
                    match self.cache.lookup_dentry(d, name) {
                        Some(dn) if self.cache.auth_of(ObjRef::Dentry(dn)) == Some(me) => {
                            let now = self.cache.dentry(dn).map_or(Linkage::Null, |x| x.projected_linkage());
                            if self.linkage_key(now) != *expect {
                                return Err(Errno::ENOENT);
                            }
                        }
                        None if frag_auth == Some(me) && *expect != DentryLinkage::Null => {
                            return Err(Errno::ENOENT);
                        }
                        _ => {}
                    }
                }
                WitnessEdit::Inode { ino, .. } => {
                    // An inode the leader changes must still exist here if we are its auth;
                    // if we know nothing of it, another witness is.
                    if let Some(i) = self.cache.lookup_ino(*ino)
                        && self.cache.inode(i).is_some_and(|n| n.is_auth() && n.projected_data().nlink == 0)
                    {
                        return Err(Errno::ENOENT);
                    }
                }
                WitnessEdit::Frag { .. } => {}
                WitnessEdit::Rmdir { dir } => {
                    let Some(d) = self.cache.lookup_ino(*dir) else { continue };
                    let frags: Vec<_> = self
                        .cache
                        .inode(d)
                        .map(|n| n.dirfrags().values().copied().collect())
                        .unwrap_or_default();
                    for f in frags {
                        let Some(df) = self.cache.dirfrag(f) else { continue };
                        if df.auth() != me {
                            continue;
                        }
                        let busy = df.dentries().values().any(|dn| {
                            self.cache.dentry(*dn).is_some_and(|x| x.projected_linkage() != Linkage::Null)
                        });
                        if busy {
                            return Err(Errno::ENOTEMPTY);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Projects the edits on the copies this rank has: linkages everywhere (parents stay
    /// right), inode counts where auth, frag stats where the frag is auth.
    fn witness_project(&mut self, reqid: ReqId, edits: &[WitnessEdit]) -> Result<(), LockerError> {
        let me = self.cache.rank();
        for e in edits {
            let WitnessEdit::Link { dir, name, linkage, .. } = e else { continue };
            let Some(dn) = self.cache.lookup_ino(*dir).and_then(|d| self.cache.lookup_dentry(d, name)) else {
                continue;
            };
            let new = match *linkage {
                DentryLinkage::Null => Linkage::Null,
                DentryLinkage::Remote { ino, d_type } => Linkage::Remote { ino, d_type },
                // A replica dentry that is to link an inode this rank has no copy of: what
                // this rank can record is that its old inode left (it must not keep a
                // projected primary link to it); the DN lock data refresh the linkage when
                // the leader's xlock goes (§4.12).
                DentryLinkage::Primary(ino) => match self.cache.lookup_ino(ino) {
                    Some(i) => Linkage::Primary(i),
                    None => Linkage::Null,
                },
            };
            let old = self.cache.dentry(dn).map_or(Linkage::Null, |d| d.projected_linkage());
            if let Linkage::Primary(i) = new {
                self.project_inode_with(reqid, i, Some(dn), |_| {})?;
                self.project_linkage_at_current(reqid, dn, new)?;
            } else {
                self.project_linkage(reqid, dn, new)?;
            }
            if old != new {
                self.unparent_projected(old, dn);
            }
        }
        for e in edits {
            let WitnessEdit::Inode { ino, nlink_delta, ctime_ms } = *e else { continue };
            let Some(i) =
                self.cache.lookup_ino(ino).filter(|i| self.cache.inode(*i).is_some_and(|n| n.is_auth()))
            else {
                continue;
            };
            self.project_inode_with(reqid, i, None, |pi| {
                pi.nlink = pi.nlink.saturating_add_signed(i32::try_from(nlink_delta).unwrap_or(0));
                pi.ctime_ms = pi.ctime_ms.max(ctime_ms);
            })?;
        }
        for e in edits {
            let WitnessEdit::Frag { dir, nfiles, nsubdirs, rfiles, rsubdirs, mtime_ms } = *e else {
                continue;
            };
            let Some(d) = self.cache.lookup_ino(dir) else { continue };
            let Some(f) =
                self.cache.dirfrag_of_existing(d).filter(|f| self.cache.dirfrag_auth(*f) == Some(me))
            else {
                continue;
            };
            let dir_is_auth = self.cache.inode(d).is_some_and(|n| n.is_auth());
            let fnode =
                self.cache.project_fnode(f, reqid).ok_or(LockerError::Precondition("dirfrag vanished"))?;
            fnode.fragstat.nfiles = fnode.fragstat.nfiles.saturating_add_signed(nfiles);
            fnode.fragstat.nsubdirs = fnode.fragstat.nsubdirs.saturating_add_signed(nsubdirs);
            fnode.rstat.rfiles = fnode.rstat.rfiles.saturating_add_signed(rfiles);
            fnode.rstat.rsubdirs = fnode.rstat.rsubdirs.saturating_add_signed(rsubdirs);
            fnode.fragstat.mtime_ms = fnode.fragstat.mtime_ms.max(mtime_ms);
            fnode.fragstat.change_attr += 1;
            fnode.rstat.rctime_ms = fnode.rstat.rctime_ms.max(mtime_ms);
            if dir_is_auth {
                fnode.accounted_fragstat = fnode.fragstat;
                fnode.accounted_rstat = fnode.rstat;
            }
            let (fragstat, rstat) = (fnode.fragstat, fnode.rstat);
            self.note_projection(reqid, Projection::Fnode(f))?;
            if dir_is_auth {
                self.project_inode_with(reqid, d, None, |pi| {
                    pi.dirstat = fragstat;
                    pi.rstat = rstat;
                    pi.mtime_ms = pi.mtime_ms.max(mtime_ms);
                    pi.ctime_ms = pi.ctime_ms.max(mtime_ms);
                })?;
            } else {
                // §4.13: the directory inode's auth folds this frag's change when it gathers.
                for ty in [LockType::IFile, LockType::INest] {
                    self.lkm(LockId::inode(d, ty))?.scatter.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// The inode `old` linked primary through `dn` loses that link (§4.17: a RENAMEPREP that
    /// overwrites a destination, or unlinks a source, on a rank holding a replica dentry).
    /// Its new primary link, the leader's stray dentry or a dentry elsewhere, may be one this
    /// rank has no replica of; until an edit links it again it has no projected parent here,
    /// rather than one that no longer links it.
    fn unparent_projected(&mut self, old: Linkage, dn: DentryId) {
        if let Linkage::Primary(i) = old
            && let Some(n) = self.cache.inode_mut(i)
            && n.projected_parent == Some(dn)
        {
            n.projected_parent = None;
        }
    }

    /// FINISH on a witness: commit (apply, journal COMMIT, drop the locks) or abort (drop the
    /// projections, journal ROLLBACK if prepared, drop the locks).
    fn witness_finish(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let reqid = msg.reqid;
        let abort = msg.flag;
        let Some(w) = self.twophase.witnessing.remove(&reqid) else {
            // A peer that only held locks for the request (a witness whose update resolve
            // already settled keeps only the locks rejoin re-took): FINISH ends it as
            // DROPLOCKS would.
            if let Some(r) = self.peer_request(from, &msg, false) {
                self.cleanup_request(r)?;
            }
            // A FINISH (commit) re-sent after this rank restarted: the update was committed
            // here (a prepare is only acked once safe, and resolve commits a safe prepare
            // whose leader journaled). Answer COMMITTED unless the COMMIT is still unsafe,
            // which answers once it is.
            let commit_pending = self
                .twophase
                .pending
                .values()
                .any(|a| matches!(a, OnSafe::Committed { reqid: r, .. } if *r == reqid));
            if !abort && !commit_pending {
                self.send(from, MdsMessage::Peer(PeerMsg::new(PeerOp::Committed, reqid, None)));
            }
            return Ok(());
        };
        if w.leader != from || w.abort_requested {
            tracing::warn!(from, %reqid, "finish from a rank that is not the leader, or again; ignored");
            self.twophase.witnessing.insert(reqid, w);
            return Ok(());
        }
        if w.prepared && abort {
            return self.witness_abort_prepared(reqid, w);
        }
        if w.prepared {
            // The PREPARE is safe (the leader commits only after every ack, resolve only a
            // safe prepare): its projections are already installed.
            self.twophase
                .pending
                .retain(|_, a| !matches!(a, OnSafe::Prepared { reqid: r, .. } if *r == reqid));
            self.apply_projections(reqid)?;
            self.export_committed(reqid)?;
            let phase = PeerPhase::Commit;
            let entry = JournalEntry {
                reqid,
                description: w.origop.name().to_string(),
                changes: Vec::new(),
                peer: Some(PeerRecord::Peer { leader: from, phase, origop: w.origop, rollback: Vec::new() }),
            };
            self.submit_twophase(entry, Some(OnSafe::Committed { reqid, leader: from }));
        }
        if self.requests.get(&reqid).is_some_and(|m| m.peer_of == Some(from)) {
            self.mark_event(reqid, if abort { "peer update rolled back" } else { "peer update committed" });
            self.mutation_mut(reqid)?.phase = Phase::Holding;
            self.cleanup_request(reqid)?;
        }
        Ok(())
    }

    /// The edits that undo the installed part of `edits` on this rank (§4.17: Ceph's witness
    /// keeps a rollback record and, on abort after applying, journals and applies the
    /// inverse update). Counts and statistics are undone as deltas, so later requests'
    /// changes on the same objects (under shared wrlocks) survive the rollback. Linkages are
    /// not installed before FINISH (`witness_prepare_safe`), so they have no inverse: an
    /// abort drops their projections. Deviation: change and modification times are not
    /// turned back (Ceph restores them when nothing else moved them).
    fn witness_inverse(edits: &[WitnessEdit]) -> Vec<WitnessEdit> {
        let mut out = Vec::new();
        for e in edits {
            match e {
                WitnessEdit::Link { .. } => {}
                WitnessEdit::Inode { ino, nlink_delta, .. } => {
                    out.push(WitnessEdit::Inode { ino: *ino, nlink_delta: -*nlink_delta, ctime_ms: 0 });
                }
                WitnessEdit::Frag { dir, nfiles, nsubdirs, rfiles, rsubdirs, .. } => {
                    out.push(WitnessEdit::Frag {
                        dir: *dir,
                        nfiles: -*nfiles,
                        nsubdirs: -*nsubdirs,
                        rfiles: -*rfiles,
                        rsubdirs: -*rsubdirs,
                        mtime_ms: 0,
                    })
                }
                WitnessEdit::Rmdir { .. } => {}
            }
        }
        out
    }

    /// The witness's PREPARE is safe: install its inode and fnode projections now, as Ceph's
    /// witness applies the update once the prepare is journaled (§4.17). Projections are made
    /// right before their journal entry and entries turn safe in order, so a local request
    /// that projected the same object afterwards (a directory's filelock and nestlock
    /// wrlocks are shared with the leader's) stacks on top and installs after it. Installing
    /// at FINISH instead let such a request, committing first, install this update's
    /// projection as its own and leave its own behind (simulator, cross-subtree, seeds 219,
    /// 616, 835, 813). Deviation: the dentry linkages stay projected until FINISH (commit);
    /// the leader's xlocks keep every other request off those dentries, so nothing stacks on
    /// them, and a renamed file's primary link moves with its auth at commit (`migrate`),
    /// where Ceph's exporter relinks at prepare and exports at commit.
    /// Returns whether the leader is to be acked.
    fn witness_prepare_safe(&mut self, reqid: ReqId) -> Result<bool, LockerError> {
        let Some(w) = self.twophase.witnessing.get_mut(&reqid) else { return Ok(true) };
        if w.applied || !self.requests.contains_key(&reqid) {
            return Ok(true);
        }
        w.applied = true;
        let abort = w.abort_requested;
        let projections = std::mem::take(&mut self.mutation_mut(reqid)?.projections);
        let (links, now): (Vec<_>, Vec<_>) =
            projections.into_iter().partition(|p| matches!(p, Projection::Linkage(_)));
        self.mutation_mut(reqid)?.projections = now;
        self.apply_projections(reqid)?;
        self.mutation_mut(reqid)?.projections = links;
        self.mark_event(reqid, "peer prepare safe; applied");
        if abort && let Some(mut w) = self.twophase.witnessing.remove(&reqid) {
            w.abort_requested = false;
            self.witness_start_rollback(reqid, w)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// FINISH (abort) for a prepared update: once its PREPARE is safe (and applied), undo it
    /// with a ROLLBACK; before that, ack it no more and roll back when it is safe.
    fn witness_abort_prepared(&mut self, reqid: ReqId, mut w: Witnessing) -> Result<(), LockerError> {
        if !w.applied {
            for a in self.twophase.pending.values_mut() {
                if let OnSafe::Prepared { reqid: r, ack, .. } = a
                    && *r == reqid
                {
                    *ack = false;
                }
            }
            w.abort_requested = true;
            self.twophase.witnessing.insert(reqid, w);
            return Ok(());
        }
        self.witness_start_rollback(reqid, w)
    }

    /// Undoes an applied update: drops its linkage projections, projects the inverse counts
    /// under an internal mutation that journals EPeerUpdate ROLLBACK with them and installs
    /// them when that is safe (like any entry, after the entries journaled before it), and
    /// ends the peer request. Deviation: Ceph's peer keeps its locks until the rollback is
    /// logged; here the peer request goes at once, as a restarted leader re-runs the request
    /// under the same id and must find no old peer request (later requests stack on the
    /// rollback's projections in journal order, so nothing is lost).
    fn witness_start_rollback(&mut self, reqid: ReqId, w: Witnessing) -> Result<(), LockerError> {
        let seq = JournalSeq(self.next_seq);
        self.next_seq += 1;
        let rb = ReqId(ReqId::INTERNAL_BASE + seq.0);
        let now = self.now_ms();
        self.requests.insert(rb, crate::mutation::Mutation::new(rb, None, now));
        if self.requests.contains_key(&reqid) {
            self.discard_projections(reqid)?;
        }
        self.witness_project(rb, &w.inverse)?;
        let entry = JournalEntry {
            reqid,
            description: w.origop.name().to_string(),
            changes: self.projected_changes(rb)?,
            peer: Some(PeerRecord::Peer {
                leader: w.leader,
                phase: PeerPhase::Rollback,
                origop: w.origop,
                rollback: Vec::new(),
            }),
        };
        self.stats.journal_submits += 1;
        self.fx.push(Effect::JournalSubmit { seq, entry });
        self.committing.insert(seq, rb);
        self.mutation_mut(rb)?.phase = Phase::Committing(seq);
        self.mark_event(rb, "submit entry: peer rollback");
        self.need_flush = true;
        self.export_aborted(reqid)?;
        if self.requests.get(&reqid).is_some_and(|m| m.peer_of == Some(w.leader)) {
            self.mark_event(reqid, "peer update rolled back");
            self.mutation_mut(reqid)?.phase = Phase::Holding;
            self.cleanup_request(reqid)?;
        }
        Ok(())
    }

    // ---- journal and projections ---------------------------------------------------------

    /// Submits a two-phase journal entry (not a request's own EUpdate) and remembers what to
    /// do once it is safe.
    fn submit_twophase(&mut self, entry: JournalEntry, on_safe: Option<OnSafe>) -> JournalSeq {
        let seq = JournalSeq(self.next_seq);
        self.next_seq += 1;
        self.stats.journal_submits += 1;
        self.fx.push(Effect::JournalSubmit { seq, entry });
        if let Some(a) = on_safe {
            self.twophase.pending.insert(seq, a);
        }
        self.need_flush = true;
        seq
    }

    /// `journal_safe` for the two-phase entries up to `upto`.
    pub(crate) fn twophase_safe(&mut self, upto: JournalSeq) -> Result<(), LockerError> {
        let done: Vec<JournalSeq> = self.twophase.pending.range(..=upto).map(|(s, _)| *s).collect();
        self.twophase_safe_seqs(done)
    }

    /// `journal_safe` for the two-phase entries before `seq`: run before the request whose
    /// entry is `seq` commits, so that entries turn safe (and projections install) in
    /// journal order.
    pub(crate) fn twophase_safe_below(&mut self, seq: JournalSeq) -> Result<(), LockerError> {
        let done: Vec<JournalSeq> = self.twophase.pending.range(..seq).map(|(s, _)| *s).collect();
        self.twophase_safe_seqs(done)
    }

    fn twophase_safe_seqs(&mut self, done: Vec<JournalSeq>) -> Result<(), LockerError> {
        for seq in done {
            let Some(a) = self.twophase.pending.remove(&seq) else { continue };
            match a {
                OnSafe::Prepared { reqid, leader, ack } => {
                    if !self.witness_prepare_safe(reqid)? || !ack {
                        continue;
                    }
                    let client = self.requests.get(&reqid).and_then(|m| m.client);
                    if self.requests.contains_key(&reqid) {
                        self.mark_event(reqid, "peer prepare safe; acking");
                    }
                    let mut ack = PeerMsg::new(PeerOp::PrepAck, reqid, client);
                    ack.prep_result = Some(Ok(()));
                    ack.inode_export = self.export_payload(reqid).map(Box::new);
                    if ack.inode_export.is_some() {
                        self.export_xlocks(reqid)?;
                    }
                    self.send(leader, MdsMessage::Peer(ack));
                }
                OnSafe::Committed { reqid, leader } => {
                    self.send(leader, MdsMessage::Peer(PeerMsg::new(PeerOp::Committed, reqid, None)));
                }
            }
        }
        Ok(())
    }

    /// Installs the request's projections oldest-first (as `commit` does for a leader).
    fn apply_projections(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let projections = std::mem::take(&mut self.mutation_mut(reqid)?.projections);
        for p in projections {
            match p {
                Projection::Inode(i) => {
                    self.cache.pop_projected_inode(i);
                }
                Projection::Linkage(d) => {
                    self.cache.pop_projected_linkage(d);
                }
                Projection::Fnode(f) => {
                    self.cache.pop_projected_fnode(f);
                }
            }
        }
        Ok(())
    }

    /// Drops the request's projections without installing them (abort, or the leader's
    /// trial projection before its preps). Dentry and frag version counters keep their bumps:
    /// versions only have to grow.
    pub(crate) fn discard_projections(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let projections = std::mem::take(&mut self.mutation_mut(reqid)?.projections);
        let mut relinked: Vec<InodeId> = Vec::new();
        for p in projections {
            match p {
                Projection::Inode(i) => {
                    if let Some(n) = self.cache.inode_mut(i) {
                        n.projected.retain(|x| x.by != reqid);
                    }
                }
                Projection::Linkage(d) => {
                    if let Some(dn) = self.cache.dentry_mut(d) {
                        if let Linkage::Primary(i) = dn.linkage {
                            relinked.push(i);
                        }
                        for pl in dn.projected.iter() {
                            if let Linkage::Primary(i) = pl.linkage {
                                relinked.push(i);
                            }
                        }
                        dn.projected.retain(|x| x.by != reqid);
                    }
                }
                Projection::Fnode(f) => {
                    if let Some(df) = self.cache.dirfrag_mut(f) {
                        df.projected.retain(|x| x.0 != reqid);
                    }
                }
            }
        }
        for i in relinked {
            self.restore_projected_parent(i);
        }
        Ok(())
    }

    /// An inode's projected parent after a projection naming it was dropped: the newest
    /// remaining projected primary link to it, else its parent.
    fn restore_projected_parent(&mut self, i: InodeId) {
        let mut best: Option<DentryId> = None;
        for d in self.cache.dentry_ids().collect::<Vec<_>>() {
            if self.cache.dentry(d).is_some_and(|x| x.projections().any(|p| p.linkage == Linkage::Primary(i)))
            {
                best = Some(d);
            }
        }
        if let Some(n) = self.cache.inode_mut(i) {
            n.projected_parent = best.or(n.parent);
        }
    }

    // ---- routing ---------------------------------------------------------------------------

    /// Routes the two-phase peer ops.
    pub(crate) fn handle_twophase_message(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        match msg.op {
            PeerOp::LinkPrep | PeerOp::UnlinkPrep | PeerOp::RmdirPrep | PeerOp::RenamePrep => {
                self.witness_prep(from, msg)
            }
            PeerOp::PrepAck => self.leader_prep_ack(from, msg),
            PeerOp::Finish => self.witness_finish(from, msg),
            PeerOp::Committed => self.leader_committed(from, msg),
            _ => Err(LockerError::BadMessage { from, why: "not a two-phase op" }),
        }
    }

    /// Requests this rank leads with witnesses not yet all committed, and peer updates it
    /// witnesses and has not finished: for tests and invariants (nothing may linger).
    pub fn twophase_in_progress(&self) -> (usize, usize) {
        (self.twophase.leading_count(), self.twophase.witnessing_count())
    }
}

/// Rank failure and resolve for two-phase updates (mds §6.6 "uncommitted leader/peer updates
/// (resolved later with peers in the resolve stage)"; Ceph's `handle_mds_failure` and
/// `handle_resolve` for leader and peer requests).
impl Locker {
    /// `Event::RankDown` for the two-phase state. Leader side: a witness that fails before
    /// the leader journaled forgets its ack and must prepare again once it is active (its
    /// own resolve rolls back a prepare that reached its journal, since this leader had not
    /// journaled); after the leader journaled, the update waits for the witness to come back
    /// and commit. Witness side: an update
    /// whose leader failed and that this rank never prepared (it refused) is forgotten; a
    /// prepared one keeps its projections and locks until the leader's resolve says commit
    /// or roll back (`resolve_witnessed`). Returns the peer requests that must survive the
    /// failure of their leader.
    pub(crate) fn twophase_rank_down(&mut self, down: Rank) -> BTreeSet<ReqId> {
        let mut reexport = Vec::new();
        for (reqid, l) in self.twophase.leading.iter_mut() {
            if l.journaled || l.aborted || !l.witnesses.contains(&down) {
                continue;
            }
            tracing::debug!(%reqid, down, "witness failed before the leader journaled; will prepare again");
            l.acked.remove(&down);
            l.reprep.insert(down);
            reexport.push(*reqid);
        }
        // An export from the failed witness is sent again with its new ack.
        for reqid in reexport {
            if self.migrate_import_from(reqid) == Some(down) {
                self.drop_import(reqid);
            }
        }
        self.twophase.witnessing.retain(|_, w| w.leader != down || w.prepared);
        // A prepare that turns safe while its leader is down is acked by the resolve instead
        // (it still installs its projections then).
        for a in self.twophase.pending.values_mut() {
            if let OnSafe::Prepared { leader, ack, .. } = a
                && *leader == down
            {
                *ack = false;
            }
        }
        self.twophase.witnessing.iter().filter(|(_, w)| w.leader == down).map(|(r, _)| *r).collect()
    }

    /// `Event::RankActive` for the two-phase state: re-send the prep (after the dentry
    /// replicas it needs) to a witness that failed before the leader journaled, and FINISH
    /// (commit) to one that failed after the leader finished without answering COMMITTED.
    pub(crate) fn twophase_rank_active(&mut self, up: Rank) -> Result<(), LockerError> {
        let reqids: Vec<ReqId> = self.twophase.leading.keys().copied().collect();
        for reqid in reqids {
            let Some(l) = self.twophase.leading.get_mut(&reqid) else { continue };
            if l.reprep.remove(&up) && !l.journaled && !l.aborted {
                let (origop, prep) = (l.origop, l.prep.clone());
                let replicate: Vec<ObjKey> =
                    l.replicate.iter().filter(|(_, to)| *to == up).map(|(k, _)| k.clone()).collect();
                for key in replicate {
                    self.replicate_if_attachable(&key, up)?;
                }
                let client = self.requests.get(&reqid).and_then(|m| m.client);
                let op = prep.as_ref().map_or(origop.prep_op(), WitnessPrep::prep_op);
                let mut msg = PeerMsg::new(op, reqid, client);
                msg.prep = prep.map(Box::new);
                self.send(up, MdsMessage::Peer(msg));
                if self.requests.contains_key(&reqid) {
                    self.mark_event(reqid, "witness recovered; prepared again");
                }
            } else if l.finished && l.witnesses.contains(&up) && !l.committed.contains(&up) {
                let mut msg = PeerMsg::new(PeerOp::Finish, reqid, None);
                msg.flag = false;
                self.send(up, MdsMessage::Peer(msg));
            }
        }
        Ok(())
    }

    /// Whether this rank leads `reqid` and has journaled its EUpdate (submitted, safe or not):
    /// a surviving leader's answer to a restarted witness's resolve (Ceph answers commit for
    /// every request in `uncommitted_leaders`, which it adds when it submits the EUpdate).
    pub fn leader_journaled(&self, reqid: ReqId) -> bool {
        self.twophase.leading.get(&reqid).is_some_and(|l| l.journaled)
    }

    /// Survivor witness side of a leader's resolve: the updates `leader` leads that this rank
    /// prepared and has not finished (Ceph's peer lists them in its MMDSResolve).
    pub fn prepared_for(&self, leader: Rank) -> Vec<(ReqId, OrigOp)> {
        self.twophase
            .witnessing
            .iter()
            .filter(|(_, w)| w.leader == leader && w.prepared && !w.abort_requested)
            .map(|(r, w)| (*r, w.origop))
            .collect()
    }

    /// Survivor witness side of a leader's resolve: commit (apply, COMMIT, COMMITTED once
    /// safe) or roll back (drop the projections, ROLLBACK) an update the restarted `leader`
    /// led, as a FINISH would, and release the peer request's locks.
    pub fn resolve_witnessed(
        &mut self,
        leader: Rank,
        reqid: ReqId,
        commit: bool,
    ) -> Result<Vec<Effect>, LockerError> {
        self.run_direct(|me| {
            let mut msg = PeerMsg::new(PeerOp::Finish, reqid, None);
            msg.flag = !commit;
            me.witness_finish(leader, msg)
        })
        .map(|((), fx)| fx)
    }

    /// Restarted witness side of resolve: an EPeerUpdate PREPARE replay found without COMMIT
    /// or ROLLBACK. Replay holds prepares aside until their outcome, so commit applies the
    /// prepare's metablob (where no later entry wrote newer) and journals COMMIT (answering
    /// COMMITTED to the leader once safe); rollback only journals ROLLBACK. Known gap: a
    /// later local update of the same directory journaled counts that include the prepare
    /// (the live witness had installed it), and this rollback does not undo them.
    pub fn resolve_replayed_prepare(
        &mut self,
        prepare: &mds_journal::EPeerUpdate,
        commit: bool,
    ) -> Result<Vec<Effect>, LockerError> {
        let reqid = ReqId(prepare.reqid.tid);
        let leader =
            Rank::try_from(prepare.leader).map_err(|_| LockerError::Precondition("bad leader rank"))?;
        let origop = match prepare.origop {
            mds_journal::PeerOrigOp::Link => OrigOp::Link,
            mds_journal::PeerOrigOp::Rmdir => OrigOp::Rmdir,
            mds_journal::PeerOrigOp::Rename => OrigOp::Rename,
        };
        if commit {
            crate::recovery::apply_peer_prepare(&mut self.cache, prepare)
                .map_err(|_| LockerError::Precondition("prepared update does not apply"))?;
        }
        let phase = if commit { PeerPhase::Commit } else { PeerPhase::Rollback };
        let entry = JournalEntry {
            reqid,
            description: prepare.op_type.clone(),
            changes: Vec::new(),
            peer: Some(PeerRecord::Peer { leader, phase, origop, rollback: Vec::new() }),
        };
        let on_safe = commit.then_some(OnSafe::Committed { reqid, leader });
        self.submit_twophase(entry, on_safe);
        self.run_direct(|_| Ok(())).map(|((), fx)| fx)
    }

    /// Restarted leader side of resolve: an EUpdate with peers that replay found without
    /// ECommitted. `witnesses` are the survivors that still had it prepared and were told to
    /// commit: ECommitted follows their COMMITTED. With none (every witness had committed and
    /// only the COMMITTED was lost) ECommitted is journaled at once.
    pub fn resolve_uncommitted_leader(
        &mut self,
        reqid: ReqId,
        origop: OrigOp,
        witnesses: BTreeSet<Rank>,
    ) -> Result<Vec<Effect>, LockerError> {
        if witnesses.is_empty() {
            self.submit_committed(reqid, origop);
        } else {
            self.twophase.leading.insert(
                reqid,
                Leading {
                    origop,
                    acked: witnesses.clone(),
                    witnesses,
                    failed: None,
                    journaled: true,
                    aborted: false,
                    finished: true,
                    committed: BTreeSet::new(),
                    prep: None,
                    replicate: Vec::new(),
                    reprep: BTreeSet::new(),
                    held_prep: None,
                },
            );
        }
        self.run_direct(|_| Ok(())).map(|((), fx)| fx)
    }
}
