//! Migration of a renamed inode to the leader's rank (mds spec §5.2 RENAME, §4.17
//! RENAMEPREP / PREPACK; Ceph's rename-time export of the source inode by the srcdn auth).
//!
//! An inode is auth where the dirfrag holding its primary dentry is auth (authority.rs). A
//! rename whose leader (the destdn auth) is not the srcdn auth moves the primary link to
//! another rank, so the inode must move with it. As in Ceph, the srcdn auth, which is also
//! the source inode's auth, exports it within the rename's two-phase update:
//!
//! * Leader: the srcdn auth is asked last (its RENAMEPREP goes out once every other witness
//!   acked, because it freezes the inode). Its PREPACK carries the export (`InodeExport`:
//!   content, the auth's lock states, the replica set, advisory locks). The leader copies
//!   the content into its replica before it projects the update again, so its EUpdate
//!   journals the inode in full under destdn and its own replay makes it auth there. When
//!   the EUpdate is safe and applied and the request's locks are gone, it imports: auth
//!   here, the exporter and the other replica holders as replicas, the exported lock states
//!   (the rename's xlocks settled to LOCK, which is what a replica of an XLOCK auth sits in),
//!   then evaluates every lock as a new auth would.
//! * Exporter (witness): a RENAMEPREP that links an inode this rank is auth for into a
//!   dirfrag the leader owns freezes the inode before preparing: no new local request may
//!   auth-pin it (they wait and retry at unfreeze), client caps on it are recalled (allowed
//!   caps are zero) and the prep waits until every cap is revoked to nothing, no lock of the
//!   inode is in transition, and only the rename pins it. Then it prepares as any witness
//!   does and puts the export into the PREPACK. While frozen, replicas' lock requests about
//!   the inode are held back and the inode's locks are not evaluated, so nothing the export
//!   described changes. FINISH (commit) applies the rename and demotes the inode to a
//!   replica of the leader: the rename's lock holds are forgotten, every lock takes the
//!   replica state of what the leader now has, client cap records and advisory locks go,
//!   and the held-back lock requests are dropped (their senders retry at the new auth).
//!   FINISH (abort), or resolve rolling the prepare back, unfreezes: caps are issued again,
//!   the held-back requests are handled, waiters retry.
//! * Other replica holders learn the new auth from `MdsMessage::AuthChanged`, which the new
//!   auth sends each replica holder (the old auth too) before any lock message of its own
//!   about the inode (same FIFO connection), so none sees an auth-to-replica message from a
//!   rank it does not think is the auth. It carries the replica lock states of what the new
//!   auth starts from, which every copy adopts (the same states a live replica already has;
//!   a copy rebuilt by a restart during the rename had initial ones). Holders wake the
//!   waiters on the inode's locks, so requests retry against the new auth. Late messages about a moved inode between a replica and the old
//!   auth (a request the old auth held back and dropped, a message sent before the move)
//!   are dropped by whoever receives them instead of being refused as protocol errors: no
//!   gather is open on the inode while it is frozen, so nothing waits for them.
//!
//! Crash safety comes from the journals, not from this state: the exporter's PREPARE
//! metablob links the inode under the leader's dirfrag, the leader's EUpdate holds it in
//! full, so replay and `resolve_authority` (an inode follows its primary dentry's dirfrag)
//! give it one auth whichever way resolve settles the update. In a peer's restart, an
//! exporter does not vouch for the inode's authority and an importer claims it
//! (`Locker::exporting`, `Locker::importing`, `Cluster::restart`'s authority claims): the
//! exporter's replayed copy may have no parent (it held no replica of the new dentry).
//!
//! Deviations from Ceph (by design of this scope):
//! * Caps are recalled, not exported: Ceph moves the client caps with the inode (EXPORT /
//!   IMPORT cap messages, sessions force-opened on the importer). Our clients answer a
//!   revoke only to the rank that sent it, so the old auth revokes every cap to nothing
//!   before it prepares and drops the cap records at commit; clients open caps again at the
//!   new auth.
//! * The leader becomes auth at commit, after its own locks on the inode (held remotely on
//!   the exporter) are released; Ceph imports at prepare (ambiguous auth until commit).
//! * Only non-directories migrate. A renamed directory keeps its inode on the old rank
//!   (the pre-migration behaviour: its auth gets a replica of the new primary dentry).
//! * Freezing against pins (Ceph's `freeze_auth_pin`): the leader's AUTHPIN names the
//!   source inode as its freeze target (§4.4 `auth_pin_freeze`); the exporter acks it once
//!   only the rename pins the inode, and from then until the peer request ends no other
//!   request may pin it: local requests drop their locks and wait, another leader's AUTHPIN
//!   waits and its leader gets a "blocked" ack. This closes the ABBA where a request pinned
//!   the inode after the rename locked it and then waited for the rename's xlocks.
//! * Peer lock requests another leader sends for a frozen inode are not held back (only
//!   local requests, AUTHPINs and replica lock requests are); a rank that
//!   replicates the inode from the old auth during the frozen window, after the export was
//!   taken, is not told about the new auth. Sequential workloads never meet either.
//! * A third rank's replica whose old auth committed the move in resolve (the leader had
//!   failed after journaling) is not told of the new auth: the restarted leader's replica set
//!   for the inode comes from rejoin only.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::{LockAction, LockState, Machine};

use crate::authority::replica_state_of;
use crate::error::LockerError;
use crate::ids::{Ino, InodeId, LockId, ObjRef, Rank, ReqId};
use crate::journal::{JournalEntry, MetaChange};
use crate::lock::{WAIT_FLOCK, WAIT_RD, WAIT_REMOTEXLOCK, WAIT_STABLE, WAIT_WR};
use crate::message::{AuthChanged, DentryLinkage, InodeExport, LockMsg, MdsMessage, PeerMsg};
use crate::mutation::{RDLOCK, WRLOCK, XLOCK};
use crate::twophase::{OrigOp, WitnessEdit};

use super::Locker;

/// Every waiter mask a lock keeps.
const WAIT_ALL: u8 = WAIT_RD | WAIT_WR | WAIT_STABLE | WAIT_REMOTEXLOCK | WAIT_FLOCK;

/// The Locker's migration bookkeeping, exporter and importer side.
#[derive(Debug, Clone, Default)]
pub(crate) struct MigrateState {
    /// Exporter side, by the leader's request id.
    exporting: BTreeMap<ReqId, Export>,
    /// Local requests that met a frozen inode: re-dispatched when it unfreezes or moves.
    frozen_waiters: BTreeMap<InodeId, Vec<ReqId>>,
    /// Replica-to-auth lock messages about a frozen inode, held until it unfreezes (handled)
    /// or moves (dropped).
    deferred: Vec<(Rank, LockMsg)>,
    /// Importer side: the export each PREPACK carried, with its sender, imported at commit.
    importing: BTreeMap<ReqId, (Rank, InodeExport)>,
    /// Inodes whose auth moved while this rank knew them, with their old auth: late lock
    /// messages between a replica and the old auth are dropped.
    moved: BTreeMap<Ino, Rank>,
    /// Exporter side, by the leader's request id: the rename's source inode frozen against
    /// new auth pins since the leader pinned it (§4.4 `auth_pin_freeze`).
    pin_frozen: BTreeMap<ReqId, PinFreeze>,
    /// Other leaders' AUTHPINs that named an inode frozen against pins: re-run at unfreeze.
    pin_waiters: BTreeMap<InodeId, Vec<(Rank, PeerMsg)>>,
}

impl MigrateState {
    /// Whether this rank exports the inode the rename `reqid` moves (freezing or frozen).
    pub(crate) fn exports_for(&self, reqid: ReqId) -> bool {
        self.exporting.contains_key(&reqid)
    }
}

/// A freeze of an inode against new auth pins, taken by a rename's AUTHPIN on the source
/// inode's auth. Ceph's `freeze_auth_pin`: without it another request could pin the inode
/// after the rename locked it and then wait for one of the rename's locks, and the
/// RENAMEPREP's full freeze would wait for that pin forever (an ABBA deadlock).
#[derive(Debug, Clone)]
struct PinFreeze {
    inode: InodeId,
    leader: Rank,
    /// The AUTHPIN, while its ack waits for the other pins to go (freezing); `None` once
    /// frozen and acked.
    pending: Option<PeerMsg>,
}

#[derive(Debug, Clone)]
struct Export {
    inode: InodeId,
    leader: Rank,
    /// The RENAMEPREP, held until the inode is frozen; `None` once it ran.
    held: Option<PeerMsg>,
}

/// The state an auth lock settles in once the rename's xlock on it is gone: LOCK, the
/// state a replica of an xlocked auth already sits in (§1.1 replica_state).
fn settled(state: LockState) -> LockState {
    match state {
        LockState::PreXlock
        | LockState::Xlock
        | LockState::XlockDone
        | LockState::XlockSnap
        | LockState::LockXlock => LockState::Lock,
        s => s,
    }
}

impl Locker {
    // ---- queries -------------------------------------------------------------------------

    /// Whether this rank is exporting `ino` to a rename's leader (freezing or frozen): its
    /// own authority over it is not to be vouched for to a restarting peer
    /// (`Cluster::restart`'s authority claims); the rename's resolve decides.
    pub fn exporting(&self, ino: Ino) -> bool {
        let inode = self.cache.lookup_ino(ino);
        self.migrate.exporting.values().any(|e| Some(e.inode) == inode)
    }

    /// Whether this rank holds an export of `ino` that it imports when its rename's
    /// journaled update commits: it will be the inode's auth.
    pub fn importing(&self, ino: Ino) -> bool {
        self.migrate.importing.values().any(|(_, x)| x.ino == ino)
    }

    /// Whether `reqid` is parked until an inode unfreezes (it is retried then): the
    /// invariants count it as waiting.
    pub fn waits_for_unfreeze(&self, reqid: ReqId) -> bool {
        self.migrate.frozen_waiters.values().any(|w| w.contains(&reqid))
    }

    /// Whether `inode` is frozen or freezing for an export, or against auth pins, and not by
    /// `reqid`.
    fn frozen_for_other(&self, inode: InodeId, reqid: ReqId) -> bool {
        self.migrate.exporting.iter().any(|(r, e)| e.inode == inode && *r != reqid)
            || self.migrate.pin_frozen.iter().any(|(r, f)| f.inode == inode && *r != reqid)
    }

    /// Whether `inode` is frozen (its export is prepared or preparing): nothing about it may
    /// change until commit or abort.
    pub(crate) fn export_frozen(&self, inode: InodeId) -> bool {
        self.migrate.exporting.values().any(|e| e.inode == inode && e.held.is_none())
    }

    /// Whether `inode` is freezing or frozen: clients may hold no caps on it.
    pub(crate) fn export_freezing(&self, inode: InodeId) -> bool {
        self.migrate.exporting.values().any(|e| e.inode == inode)
    }

    // ---- leader --------------------------------------------------------------------------

    /// The witness that will export the renamed inode to this leader, if any: the auth of a
    /// non-directory inode whose new primary dentry is auth here.
    pub(crate) fn import_source(&self, origop: OrigOp, entry: &JournalEntry) -> Option<Rank> {
        if origop != OrigOp::Rename {
            return None;
        }
        let me = self.cache.rank();
        entry.changes.iter().find_map(|c| {
            let MetaChange::Dentry { id, linkage: crate::cache::Linkage::Primary(i), .. } = c else {
                return None;
            };
            let n = self.cache.inode(*i)?;
            let ia = n.auth();
            (ia != me && !n.is_dir() && self.cache.auth_of(ObjRef::Dentry(*id)) == Some(me)).then_some(ia)
        })
    }

    /// PREPACK with an export: remember it for the commit, and take its content into the
    /// replica so the update about to be projected and journaled carries the inode in full.
    pub(crate) fn stash_import(&mut self, reqid: ReqId, from: Rank, export: InodeExport) {
        if let Some(i) = self.cache.lookup_ino(export.ino)
            && let Some(n) = self.cache.inode_mut(i)
            && !n.is_auth
        {
            n.data = export.data.clone();
        }
        tracing::debug!(%reqid, from, ino = %export.ino, "rename: holding the exported inode for commit");
        self.migrate.importing.insert(reqid, (from, export));
    }

    /// The rank whose export `reqid` holds, if any.
    pub(crate) fn migrate_import_from(&self, reqid: ReqId) -> Option<Rank> {
        self.migrate.importing.get(&reqid).map(|(r, _)| *r)
    }

    /// The update will not commit (aborted, or the exporter failed before the leader
    /// journaled and will export again): forget its export.
    pub(crate) fn drop_import(&mut self, reqid: ReqId) {
        self.migrate.importing.remove(&reqid);
    }

    /// The leader's request committed and dropped its locks: become the inode's auth.
    pub(crate) fn import_committed(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some((from, ex)) = self.migrate.importing.remove(&reqid) else {
            return Ok(());
        };
        let me = self.cache.rank();
        let Some(i) = self.cache.lookup_ino(ex.ino) else {
            tracing::warn!(%reqid, ino = %ex.ino, "imported inode not in cache; not imported");
            return Ok(());
        };
        if self.cache.derived_inode_auth(i) != Some(me) || self.cache.inode(i).is_none_or(|n| n.is_auth()) {
            tracing::warn!(%reqid, ino = %ex.ino, "imported inode's primary dentry is not ours; not imported");
            return Ok(());
        }
        let obj = ObjRef::Inode(i);
        self.cache.set_auth(obj, me);
        let mut replicas: BTreeSet<Rank> = ex.replicas.clone();
        replicas.insert(from);
        replicas.remove(&me);
        replicas.retain(|r| !self.peers_down.contains(r));
        let states: BTreeMap<u16, LockState> = ex.locks.iter().copied().collect();
        for id in self.cache.lock_ids(obj) {
            let Ok(lock) = self.lkm(id) else { continue };
            if lock.machine() == Machine::Local {
                continue;
            }
            if let Some(s) = states.get(&id.ty.value()) {
                lock.state = settled(*s);
            }
            lock.auth_pinned = false;
            lock.gather_set.clear();
        }
        if let Some(n) = self.cache.inode_mut(i) {
            n.replicas = replicas.clone();
            n.flocks = ex.flocks;
            n.fcntl_locks = ex.fcntl_locks;
        }
        self.migrate.moved.insert(ex.ino, from);
        tracing::debug!(%reqid, ino = %ex.ino, from, ?replicas, "rename: imported the inode; auth here now");
        let mut locks = Vec::new();
        for id in self.cache.lock_ids(obj) {
            if let Ok(l) = self.lk(id)
                && l.machine() != Machine::Local
            {
                locks.push((id.ty.value(), replica_state_of(l.machine(), l.state())));
            }
        }
        for r in &replicas {
            let m = AuthChanged { ino: ex.ino, old_auth: from, locks: locks.clone() };
            self.send(*r, MdsMessage::AuthChanged(m));
        }
        self.wake_inode(i)?;
        self.eval_inode(i, super::eval::EVAL_ALL)?;
        self.need_issue.insert(i);
        Ok(())
    }

    // ---- exporter ------------------------------------------------------------------------

    /// The inode a RENAMEPREP makes this rank export: one it is auth for (not a directory)
    /// that an edit links into a dirfrag the leader owns (or that this rank does not have:
    /// the leader does not replicate the destination to the exporter).
    fn export_candidate(&self, leader: Rank, msg: &PeerMsg) -> Option<InodeId> {
        let prep = msg.prep.as_ref()?;
        if prep.origop != OrigOp::Rename {
            return None;
        }
        prep.edits.iter().find_map(|e| {
            let WitnessEdit::Link { dir, linkage: DentryLinkage::Primary(ino), .. } = e else { return None };
            let i = self.cache.lookup_ino(*ino)?;
            let n = self.cache.inode(i)?;
            // The new primary dentry is the leader's; this rank may hold no replica of it.
            let frag_auth = self
                .cache
                .lookup_ino(*dir)
                .and_then(|d| self.cache.dirfrag_of_existing(d))
                .and_then(|f| self.cache.dirfrag_auth(f));
            let elsewhere = frag_auth.is_none_or(|a| a == leader);
            (n.is_auth() && !n.is_dir() && elsewhere).then_some(i)
        })
    }

    /// Called by `witness_prep` first: `true` if the prep must wait for the inode it
    /// exports to freeze (it is held and re-run by `poll_exports`).
    pub(crate) fn export_gate(&mut self, from: Rank, msg: &PeerMsg) -> Result<bool, LockerError> {
        if let Some(e) = self.migrate.exporting.get(&msg.reqid) {
            // Re-run once frozen: prepare now. A duplicate while freezing: keep waiting.
            return Ok(e.held.is_some());
        }
        let Some(inode) = self.export_candidate(from, msg) else {
            return Ok(false);
        };
        tracing::debug!(reqid = %msg.reqid, ?inode, "rename: freezing the inode to export it");
        self.mark_event(msg.reqid, "freezing inode for export");
        self.migrate.exporting.insert(msg.reqid, Export { inode, leader: from, held: Some(msg.clone()) });
        // Recall every cap (allowed caps are nothing while freezing).
        self.need_issue.insert(inode);
        Ok(true)
    }

    /// Whether the inode `reqid` exports can freeze: no client holds or is being revoked
    /// any cap, every lock is stable or xlocked by the rename alone, and nothing but the
    /// rename (and its xlocked locks) auth-pins it.
    fn freezable(&self, reqid: ReqId, i: InodeId) -> bool {
        let Some(n) = self.cache.inode(i) else { return false };
        if n.caps().values().any(|c| c.issued() != 0 || c.pending() != 0) {
            return false;
        }
        let mut lock_pins = 0u32;
        for id in self.cache.lock_ids(ObjRef::Inode(i)) {
            let Ok(l) = self.lk(id) else { continue };
            let others = l.rdlock_holders().keys().any(|r| *r != reqid)
                || l.wrlock_holders().keys().any(|r| *r != reqid)
                || l.xlock_holders().iter().any(|h| h.req != reqid)
                || !l.gather_set().is_empty();
            if others {
                return false;
            }
            if !l.is_stable() && !l.is_xlocked() {
                return false;
            }
            if l.holds_auth_pin() {
                lock_pins += 1;
            }
        }
        let own = self.requests.get(&reqid).is_some_and(|m| m.auth_pins.contains(&ObjRef::Inode(i)));
        n.auth_pins() == lock_pins + u32::from(own)
    }

    // ---- freezing against auth pins (exporter, §4.4 `auth_pin_freeze`) --------------------

    /// AUTHPIN on the peer, before anything is pinned: an object that is an inode frozen or
    /// freezing for another request (against pins or for its export) cannot be pinned. As in
    /// Ceph's peer, the message waits for the unfreeze and the leader is told at once that
    /// the peer blocked (a "blocked" AUTHPINACK, NOTIFY_BLOCKING), so it drops its locks
    /// meanwhile: a rename that is freezing the inode may need one of them. Objects the
    /// request has already pinned here do not wait. Returns whether the message was held.
    pub(crate) fn pin_gate(&mut self, from: Rank, msg: &PeerMsg) -> Result<bool, LockerError> {
        let pinned: BTreeSet<ObjRef> = self
            .requests
            .get(&msg.reqid)
            .filter(|m| m.peer_of == Some(from))
            .map(|m| m.auth_pins.clone())
            .unwrap_or_default();
        let frozen = msg.objects.iter().find_map(|k| match self.cache.resolve_obj(k) {
            Some(o @ ObjRef::Inode(i))
                if !pinned.contains(&o)
                    && self.cache.is_auth_obj(o)
                    && self.frozen_for_other(i, msg.reqid) =>
            {
                Some(i)
            }
            _ => None,
        });
        let Some(i) = frozen else { return Ok(false) };
        tracing::debug!(from, reqid = %msg.reqid, ?i, "authpin of a frozen inode; waiting for the unfreeze");
        self.migrate.pin_waiters.entry(i).or_default().push((from, msg.clone()));
        let mut blocked = PeerMsg::new(crate::message::PeerOp::AuthPinAck, msg.reqid, msg.client);
        blocked.flag = true;
        self.send(from, MdsMessage::Peer(blocked));
        Ok(true)
    }

    /// AUTHPIN on the peer, once its objects are pinned: if it names the rename's source
    /// inode to freeze, freeze it against new pins (Ceph's `freeze_auth_pin`). Returns the
    /// frozen inode's key to echo in the ack, or `None` with the ack held back while other
    /// requests still pin the inode (`poll_pin_freezes` sends it once they are gone).
    pub(crate) fn start_pin_freeze(
        &mut self,
        from: Rank,
        msg: &PeerMsg,
    ) -> Result<Option<Option<crate::ids::ObjKey>>, LockerError> {
        let Some(key) = msg.freeze.clone() else { return Ok(Some(None)) };
        let Some(o @ ObjRef::Inode(i)) = self.cache.resolve_obj(&key) else { return Ok(Some(None)) };
        if !self.cache.is_auth_obj(o) || self.cache.inode(i).is_none_or(|n| n.is_dir()) {
            return Ok(Some(None));
        }
        match self.migrate.pin_frozen.get_mut(&msg.reqid) {
            Some(f) if f.inode == i => {
                if f.pending.is_some() {
                    // A newer AUTHPIN while still freezing: it is the one to answer.
                    f.pending = Some(msg.clone());
                    return Ok(None);
                }
                return Ok(Some(Some(key)));
            }
            Some(_) => self.end_pin_freeze(msg.reqid)?,
            None => {}
        }
        let frozen = self.pinned_only_by(msg.reqid, i);
        tracing::debug!(reqid = %msg.reqid, ?i, frozen, "rename: freezing the source inode against auth pins");
        self.mark_event(msg.reqid, if frozen { "frozen auth pin" } else { "freezing auth pin" });
        let pending = (!frozen).then(|| msg.clone());
        self.migrate.pin_frozen.insert(msg.reqid, PinFreeze { inode: i, leader: from, pending });
        Ok(frozen.then_some(Some(key)))
    }

    /// Whether only `reqid` pins `i`: its own auth pin, and the pins of locks in transition
    /// that only its xlocks hold.
    fn pinned_only_by(&self, reqid: ReqId, i: InodeId) -> bool {
        let Some(n) = self.cache.inode(i) else { return false };
        let mut ours = 0u32;
        for id in self.cache.lock_ids(ObjRef::Inode(i)) {
            let Ok(l) = self.lk(id) else { continue };
            let only_us = !l.xlock_holders().is_empty()
                && l.xlock_holders().iter().all(|h| h.req == reqid)
                && l.rdlock_holders().keys().all(|r| *r == reqid)
                && l.wrlock_holders().keys().all(|r| *r == reqid);
            if l.holds_auth_pin() && only_us {
                ours += 1;
            }
        }
        let own = self.requests.get(&reqid).is_some_and(|m| m.auth_pins.contains(&ObjRef::Inode(i)));
        n.auth_pins() == ours + u32::from(own)
    }

    /// Ends `reqid`'s freeze against pins: requests and AUTHPINs that waited run again.
    fn end_pin_freeze(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(f) = self.migrate.pin_frozen.remove(&reqid) else { return Ok(()) };
        tracing::debug!(%reqid, inode = ?f.inode, "auth pin freeze ended");
        self.thaw_pin_waiters(f.inode)
    }

    /// Re-runs what waited for `i` to accept pins again (they wait anew if it still does not).
    fn thaw_pin_waiters(&mut self, i: InodeId) -> Result<(), LockerError> {
        self.release_frozen_waiters(i);
        for (from, msg) in self.migrate.pin_waiters.remove(&i).unwrap_or_default() {
            if !self.peers_down.contains(&from) {
                self.handle_peer_message(from, msg)?;
            }
        }
        Ok(())
    }

    /// Acks AUTHPINs whose inode froze, and ends freezes whose peer request is gone (an
    /// AUTHPIN still unanswered then runs again: its leader waits for the ack). Returns
    /// whether it did anything (the caller loops).
    fn poll_pin_freezes(&mut self) -> Result<bool, LockerError> {
        let list: Vec<(ReqId, InodeId, Rank, bool)> = self
            .migrate
            .pin_frozen
            .iter()
            .map(|(r, f)| (*r, f.inode, f.leader, f.pending.is_some()))
            .collect();
        for (reqid, inode, leader, pending) in list {
            let alive = self.requests.get(&reqid).is_some_and(|m| m.peer_of == Some(leader));
            let still_auth = self.cache.inode(inode).is_some_and(|n| n.is_auth());
            if !alive || !still_auth {
                let msg = self.migrate.pin_frozen.get_mut(&reqid).and_then(|f| f.pending.take());
                self.end_pin_freeze(reqid)?;
                if let Some(msg) = msg.filter(|_| !self.peers_down.contains(&leader)) {
                    self.handle_peer_message(leader, msg)?;
                }
                return Ok(true);
            }
            if pending && self.pinned_only_by(reqid, inode) {
                let Some(msg) = self.migrate.pin_frozen.get_mut(&reqid).and_then(|f| f.pending.take()) else {
                    continue;
                };
                self.mark_event(reqid, "frozen auth pin");
                self.send_auth_pin_ack(leader, reqid, msg.freeze)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The leader `down` failed: its AUTHPINs waiting here are void.
    pub(crate) fn pin_freeze_rank_down(&mut self, down: Rank) {
        for f in self.migrate.pin_frozen.values_mut().filter(|f| f.leader == down) {
            f.pending = None;
        }
        for w in self.migrate.pin_waiters.values_mut() {
            w.retain(|(from, _)| *from != down);
        }
    }

    /// Runs held preps whose inode froze, and forgets exports whose peer request is gone.
    /// Returns whether it did anything (the caller loops).
    pub(crate) fn poll_exports(&mut self) -> Result<bool, LockerError> {
        if self.poll_pin_freezes()? {
            return Ok(true);
        }
        let waiting: Vec<(ReqId, InodeId)> = self
            .migrate
            .exporting
            .iter()
            .filter(|(_, e)| e.held.is_some())
            .map(|(r, e)| (*r, e.inode))
            .collect();
        for (reqid, inode) in waiting {
            let alive = self.requests.get(&reqid).is_some_and(|m| m.peer_of.is_some());
            let still_auth = self.cache.inode(inode).is_some_and(|n| n.is_auth());
            if !alive || !still_auth {
                tracing::debug!(%reqid, "export abandoned before the prep ran");
                self.unfreeze(reqid)?;
                return Ok(true);
            }
            if !self.freezable(reqid, inode) {
                continue;
            }
            let Some(e) = self.migrate.exporting.get_mut(&reqid) else { continue };
            let from = e.leader;
            let Some(msg) = e.held.take() else { continue };
            self.mark_event(reqid, "inode frozen for export");
            self.witness_prep(from, msg)?;
            if !self.twophase.is_prepared(reqid) {
                // Refused: nothing moves.
                self.unfreeze(reqid)?;
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// The export that goes into the PREPACK of `reqid`, if this rank exports.
    pub(crate) fn export_payload(&self, reqid: ReqId) -> Option<InodeExport> {
        let e = self.migrate.exporting.get(&reqid).filter(|e| e.held.is_none())?;
        let n = self.cache.inode(e.inode)?;
        let mut locks = Vec::new();
        for id in self.cache.lock_ids(ObjRef::Inode(e.inode)) {
            if let Ok(l) = self.lk(id) {
                locks.push((id.ty.value(), l.state()));
            }
        }
        Some(InodeExport {
            ino: n.ino(),
            data: n.data().clone(),
            locks,
            replicas: n.replicas().clone(),
            flocks: n.flocks.clone(),
            fcntl_locks: n.fcntl_locks.clone(),
        })
    }

    /// The exporter's PREPACK goes out with the export: the rename's xlocks on the inode are
    /// handed to the leader with it (Ceph's `xlock_export`, run when the peer prepare is
    /// logged). The leader keeps its copies of them and, once it is auth at commit, is the
    /// only rank whose holders count; here the locks settle to LOCK with no holder (what the
    /// export told the leader), and the inode stays frozen, so no request of this rank or of
    /// another leader can take them before FINISH. Keeping them until FINISH instead would
    /// leave this rank holding an xlock while the new auth grants the same lock to its next
    /// request (the FINISH still in flight): two xlock holders across ranks (simulator, 2
    /// ranks, cross-subtree, seed 21). The versionlock is local and stays with the prepare.
    pub(crate) fn export_xlocks(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(i) = self.migrate.exporting.get(&reqid).filter(|e| e.held.is_none()).map(|e| e.inode) else {
            return Ok(());
        };
        for id in self.cache.lock_ids(ObjRef::Inode(i)) {
            let Ok(l) = self.lk(id) else { continue };
            if l.machine() == Machine::Local || !l.xlock_holders().iter().any(|h| h.req == reqid) {
                continue;
            }
            let lock = self.lkm(id)?;
            while lock.put_xlock(reqid).is_some() {}
            if let Some(m) = self.requests.get_mut(&reqid) {
                m.remove_held(id, XLOCK);
                m.peer_locks.retain(|o| o.lock != id);
            }
            self.note_release(id, reqid, crate::lock_events::HoldKind::X);
            let state = self.lk(id)?.state();
            if settled(state) != state {
                self.set_state(id, settled(state))?;
            }
        }
        tracing::debug!(%reqid, inode = ?i, "rename: xlocks on the exported inode handed to the leader");
        Ok(())
    }

    /// FINISH (commit) on the exporter, after the rename's projections were applied and
    /// before its peer request drops its locks: the inode becomes a replica of the leader.
    pub(crate) fn export_committed(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(e) = self.migrate.exporting.remove(&reqid) else {
            return Ok(());
        };
        let (i, leader) = (e.inode, e.leader);
        let obj = ObjRef::Inode(i);
        let Some(ino) = self.cache.inode(i).map(|n| n.ino()) else { return Ok(()) };
        // The rename's holds on the inode end here without a release (nothing evaluates).
        for id in self.cache.lock_ids(obj) {
            let Ok(l) = self.lkm(id) else { continue };
            while l.put_xlock(reqid).is_some() {}
            l.rdlocks.remove(&reqid);
            l.wrlocks.remove(&reqid);
            if let Some(m) = self.requests.get_mut(&reqid) {
                m.remove_held(id, XLOCK | WRLOCK | RDLOCK);
            }
        }
        // Settle as the leader does, while still auth (drops the transitional pins, also
        // those of the rename's versionlock xlock).
        let mut states = Vec::new();
        for id in self.cache.lock_ids(obj) {
            let Ok(l) = self.lk(id) else { continue };
            let (s, local) = (settled(l.state()), l.machine() == Machine::Local);
            if s != l.state() {
                self.set_state(id, s)?;
            }
            if !local {
                states.push((id, s));
            }
        }
        self.cache.set_auth(obj, leader);
        for (id, s) in states {
            if let Ok(l) = self.lkm(id) {
                l.state = replica_state_of(l.machine(), s);
                l.gather_set.clear();
            }
        }
        let clients: Vec<_> =
            self.cache.inode(i).map(|n| n.caps().keys().copied().collect()).unwrap_or_default();
        for c in clients {
            if let Some(s) = self.sessions.get_mut(&c) {
                s.caps.remove(&i);
            }
        }
        if let Some(n) = self.cache.inode_mut(i) {
            n.caps.clear();
            n.loner = None;
            n.want_loner = None;
            n.flocks = Default::default();
            n.fcntl_locks = Default::default();
        }
        self.migrate.moved.insert(ino, self.cache.rank());
        tracing::debug!(%reqid, %ino, leader, "rename: exported the inode; replica of the leader now");
        // Held-back requests about it were meant for the old auth: their senders retry at
        // the new one once they learn of it.
        let key_ino = ino;
        self.migrate
            .deferred
            .retain(|(_, m)| !matches!(&m.lock.obj, crate::ids::ObjKey::Inode(x) if *x == key_ino));
        self.release_frozen_waiters(i);
        self.migrate.pin_frozen.remove(&reqid);
        self.thaw_pin_waiters(i)?;
        self.wake_inode(i)
    }

    /// FINISH (abort), or resolve rolling the prepare back: unfreeze, nothing moved.
    pub(crate) fn export_aborted(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        self.unfreeze(reqid)
    }

    fn unfreeze(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let Some(e) = self.migrate.exporting.remove(&reqid) else {
            return Ok(());
        };
        tracing::debug!(%reqid, "rename: export abandoned; inode unfrozen");
        let i = e.inode;
        self.release_frozen_waiters(i);
        // The freeze against pins lasts as long as the peer request (a retried prep freezes
        // again); AUTHPINs held back by the full freeze may run now if nothing else blocks.
        let pins: Vec<(Rank, PeerMsg)> = self.migrate.pin_waiters.remove(&i).unwrap_or_default();
        for (from, msg) in pins {
            if !self.peers_down.contains(&from) {
                self.handle_peer_message(from, msg)?;
            }
        }
        let ino = self.cache.inode(i).map(|n| n.ino());
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.migrate.deferred)
            .into_iter()
            .partition(|(_, m)| matches!(&m.lock.obj, crate::ids::ObjKey::Inode(x) if Some(*x) == ino));
        self.migrate.deferred = rest;
        for (from, m) in mine {
            self.handle_lock_message(from, m)?;
        }
        if self.cache.inode(i).is_some_and(|n| n.is_auth()) {
            self.eval_inode(i, super::eval::EVAL_ALL)?;
        }
        self.need_issue.insert(i);
        self.wake_inode(i)
    }

    fn release_frozen_waiters(&mut self, i: InodeId) {
        for r in self.migrate.frozen_waiters.remove(&i).unwrap_or_default() {
            if self.requests.contains_key(&r) {
                self.requeue(r);
            }
        }
    }

    fn wake_inode(&mut self, i: InodeId) -> Result<(), LockerError> {
        for id in self.cache.lock_ids(ObjRef::Inode(i)) {
            self.wake(id, WAIT_ALL)?;
        }
        Ok(())
    }

    /// `acquire_locks` phase C: a request (other than the exporting rename) that must
    /// auth-pin a freezing or frozen inode waits until it unfreezes or moves. Returns
    /// whether it must wait.
    pub(crate) fn wait_if_frozen(&mut self, reqid: ReqId, objs: &BTreeSet<ObjRef>) -> bool {
        // An object the request already pins does not stop it (§4.4 phase C): the freeze
        // waits for that pin instead.
        let pinned = self.requests.get(&reqid).map(|m| m.auth_pins.clone()).unwrap_or_default();
        let Some(i) = objs.iter().find_map(|o| match o {
            ObjRef::Inode(i)
                if !pinned.contains(o) && self.frozen_for_other(*i, reqid) && self.cache.is_auth_obj(*o) =>
            {
                Some(*i)
            }
            _ => None,
        }) else {
            return false;
        };
        let w = self.migrate.frozen_waiters.entry(i).or_default();
        if !w.contains(&reqid) {
            w.push(reqid);
        }
        self.mark_event(reqid, "waiting for a frozen inode");
        true
    }

    /// The front of `handle_lock_message`: `true` if the message was dealt with here. A
    /// replica's request about a frozen inode is held back; a late message about an inode
    /// that moved (to the old auth from a replica, or from the old auth to a replica) is
    /// dropped.
    pub(crate) fn migrate_filter_lock_msg(
        &mut self,
        from: Rank,
        id: LockId,
        msg: &LockMsg,
    ) -> Result<bool, LockerError> {
        let ObjRef::Inode(i) = id.obj else { return Ok(false) };
        let to_replica = msg.action.value() < 0;
        let is_auth = self.lk(id)?.is_auth();
        let ino = self.cache.inode(i).map(|n| n.ino());
        let moved = ino.and_then(|x| self.migrate.moved.get(&x).copied());
        if is_auth && !to_replica && self.export_frozen(i) && is_request(msg.action) {
            tracing::debug!(from, lock = %msg.lock, "lock request for a frozen inode; held back");
            self.migrate.deferred.push((from, msg.clone()));
            return Ok(true);
        }
        if moved.is_some() && !is_auth && !to_replica {
            tracing::debug!(from, lock = %msg.lock, "lock request for an inode that moved away; dropped");
            return Ok(true);
        }
        if moved == Some(from) && !is_auth && to_replica && self.cache.auth_of(id.obj) != Some(from) {
            tracing::debug!(from, lock = %msg.lock, "late message from an inode's old auth; dropped");
            return Ok(true);
        }
        Ok(false)
    }

    /// `MdsMessage::AuthChanged` on a replica holder: the sender is the inode's auth now.
    pub(crate) fn handle_auth_changed(&mut self, from: Rank, m: AuthChanged) -> Result<(), LockerError> {
        let Some(i) = self.cache.lookup_ino(m.ino) else {
            tracing::debug!(from, ino = %m.ino, "auth change for an inode not in cache; ignored");
            return Ok(());
        };
        if self.cache.inode(i).is_some_and(|n| n.is_auth()) {
            tracing::warn!(from, ino = %m.ino, "auth change for an inode we are auth for; ignored");
            return Ok(());
        }
        tracing::debug!(from, ino = %m.ino, old = m.old_auth, "replica: the inode's auth moved");
        let obj = ObjRef::Inode(i);
        if self.cache.auth_of(obj) != Some(from) {
            self.cache.set_auth(obj, from);
        }
        for (ty, state) in m.locks {
            let Some(ty) = lock_sm::LockType::from_value(ty) else { continue };
            let id = LockId { obj, ty };
            if self.lk(id).is_ok_and(|l| l.state() != state) {
                self.set_state(id, state)?;
            }
        }
        if m.old_auth != self.cache.rank() {
            self.migrate.moved.insert(m.ino, m.old_auth);
        }
        self.wake_inode(i)
    }
}

/// Replica-to-auth actions that ask the auth to change state (held back while frozen);
/// acks answer a gather, and a frozen inode has none open.
fn is_request(a: LockAction) -> bool {
    matches!(a, LockAction::ReqRdlock | LockAction::ReqScatter | LockAction::ReqUnscatter | LockAction::Nudge)
}
