//! Peer requests between ranks (mds spec §4.17): remote xlocks and wrlocks, remote auth pins
//! and DROPLOCKS, on both the leader side (the rank running the client's request) and the
//! peer side (the auth rank doing the locking on the leader's behalf).
//!
//! A peer request is an ordinary `Mutation` on the peer, keyed by the leader's `ReqId`, with
//! the leader's client and `peer_of` set to the leader's rank. It runs the same
//! `acquire_locks` as any request, over every lock the leader asked it for so far, and owes
//! the leader one ack once they are all held. Request ids are assumed unique across the
//! cluster, as Ceph's `metareqid_t` (client entity + tid) is; a peer message whose id names a
//! request this rank runs for someone else is dropped with an error log.
//!
//! Decisions where the spec leaves room, or where this scope is narrower than Ceph:
//! * DROPLOCKS makes the peer drop everything and forget the peer request (auth pins too).
//!   Ceph keeps the peer request until the leader's FINISH. Here FINISH is sent only to
//!   witnesses of a two-phase update (`witness`); every other peer gets DROPLOCKS when the
//!   leader's request ends (`release_peers`), and the leader forgets what it held for it.
//! * A peer waits to auth-pin only an inode frozen for another request's rename (`migrate`:
//!   frozen against pins since that rename's AUTHPIN, or for its export). It then always
//!   sends a "blocked" AUTHPINACK (`flag`) at once, as Ceph does under NOTIFY_BLOCKING, and
//!   the real ack after the unfreeze; NONBLOCKING is not used. The leader drops its locks
//!   on a blocked ack and keeps waiting for the real one.
//! * Early reply (§4.18): only journaled peers (witnesses) forbid it. A request holding remote
//!   xlocks or remote wrlocks may early-reply, as in Ceph; `set_xlocks_done` then marks the
//!   replica copy's holder done but leaves the auth's lock in XLOCK, so only the auth's
//!   journal-safe release (via DROPLOCKS / UNXLOCK) lets others in. Peer requests never
//!   journal and never reply to a client.
//! * An XLOCKACK carries the auth's state and `encode_lock_data` (the MLock code's encoder);
//!   applying it on the leader (`decode_locked_state`) is left to the MLock protocol, which
//!   refreshes replicas anyway.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::Machine;

use crate::error::LockerError;
use crate::ids::{LockId, ObjRef, Rank, ReqId};
use crate::lock::{WAIT_RD, WAIT_STABLE, WAIT_WR};
use crate::message::{MdsMessage, PeerMsg, PeerOp};
use crate::mutation::{LockOp, Mutation, Phase, REMOTE_WRLOCK, WRLOCK, XLOCK};

use super::Locker;

impl Locker {
    /// Handles an `MMDSPeerRequest` from `from`.
    pub(crate) fn handle_peer_message(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        tracing::debug!(rank = self.cache.rank(), from, op = msg.op.name(), reqid = %msg.reqid, "peer request");
        match msg.op {
            PeerOp::Xlock | PeerOp::Wrlock => self.peer_lock(from, msg),
            PeerOp::Unxlock | PeerOp::Unwrlock => self.peer_unlock(from, msg),
            PeerOp::AuthPin => self.peer_auth_pin(from, msg),
            PeerOp::DropLocks => self.peer_drop_locks(from, msg),
            PeerOp::XlockAck | PeerOp::WrlockAck => self.leader_lock_ack(from, msg),
            PeerOp::AuthPinAck => self.leader_auth_pin_ack(from, msg),
            PeerOp::LinkPrep
            | PeerOp::UnlinkPrep
            | PeerOp::RmdirPrep
            | PeerOp::RenamePrep
            | PeerOp::PrepAck
            | PeerOp::Finish
            | PeerOp::Committed => self.handle_twophase_message(from, msg),
        }
    }

    // ---- leader side ---------------------------------------------------------------------

    /// `xlock_start` on a replica (§4.7): only simplelocks, never for a peer request. Marks
    /// the request "locking" the lock with the auth as target, sends XLOCK and waits for the
    /// ack. Always returns `false`.
    pub(crate) fn remote_xlock_start(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        let m = self.mutation(reqid)?;
        if m.peer_of.is_some() {
            return Err(LockerError::Precondition("a peer request never xlocks a replica (§4.7)"));
        }
        if !self.lk(id)?.machine().def().can_remote_xlock {
            return Err(LockerError::UnsupportedLockOp {
                op: "xlock",
                lock: id,
                why: "only simplelocks can be xlocked through their auth (§1.2 can_remote_xlock)",
            });
        }
        let auth = self.cache.auth_of(id.obj).ok_or(LockerError::Precondition("replica without an auth"))?;
        if m.locking == Some(id) && m.locking_target == Some(auth) && m.waiting_on_peer.contains(&auth) {
            return Ok(false);
        }
        let key =
            self.cache.lock_key(id).ok_or(LockerError::Precondition("lock without a cross-rank name"))?;
        let client = m.client;
        let m = self.mutation_mut(reqid)?;
        m.peers.insert(auth);
        m.locking = Some(id);
        m.locking_target = Some(auth);
        m.waiting_on_peer.insert(auth);
        let mut msg = PeerMsg::new(PeerOp::Xlock, reqid, client);
        msg.lock = Some(key);
        self.send(auth, MdsMessage::Peer(msg));
        tracing::debug!(%reqid, lock = ?id, auth, "remote xlock requested");
        Ok(false)
    }

    /// Releases our copy of a remote xlock without telling the auth (the caller sends UNXLOCK
    /// or DROPLOCKS), waking local waiters. Returns the auth rank.
    pub(crate) fn release_remote_xlock(
        &mut self,
        id: LockId,
        reqid: ReqId,
    ) -> Result<Option<Rank>, LockerError> {
        self.lkm(id)?.put_xlock(reqid);
        self.mutation_mut(reqid)?.remove_held(id, XLOCK);
        self.note_release(id, reqid, crate::lock_events::HoldKind::X);
        self.wake(id, WAIT_STABLE | WAIT_WR | WAIT_RD)?;
        Ok(self.cache.auth_of(id.obj))
    }

    /// `xlock_finish` of a remote xlock (§4.7): release our copy, send UNXLOCK (no ack).
    pub(crate) fn remote_xlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        let client = self.mutation(reqid)?.client;
        if let Some(auth) = self.release_remote_xlock(id, reqid)?
            && let Some(key) = self.cache.lock_key(id)
        {
            let mut msg = PeerMsg::new(PeerOp::Unxlock, reqid, client);
            msg.lock = Some(key);
            self.send(auth, MdsMessage::Peer(msg));
        }
        Ok(())
    }

    /// `remote_wrlock_start` (§4.6): mark "locking" with `target`, send WRLOCK, wait.
    pub(crate) fn remote_wrlock_start(
        &mut self,
        id: LockId,
        target: Rank,
        reqid: ReqId,
    ) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        if m.locking == Some(id) && m.locking_target == Some(target) && m.waiting_on_peer.contains(&target) {
            return Ok(());
        }
        let key =
            self.cache.lock_key(id).ok_or(LockerError::Precondition("lock without a cross-rank name"))?;
        let client = m.client;
        let m = self.mutation_mut(reqid)?;
        m.peers.insert(target);
        m.locking = Some(id);
        m.locking_target = Some(target);
        m.waiting_on_peer.insert(target);
        let mut msg = PeerMsg::new(PeerOp::Wrlock, reqid, client);
        msg.lock = Some(key);
        self.send(target, MdsMessage::Peer(msg));
        tracing::debug!(%reqid, lock = ?id, target, "remote wrlock requested");
        Ok(())
    }

    /// Forgets a remote wrlock without telling its rank (the caller sends UNWRLOCK or
    /// DROPLOCKS). Returns the rank that held it.
    pub(crate) fn forget_remote_wrlock(
        &mut self,
        id: LockId,
        reqid: ReqId,
    ) -> Result<Option<Rank>, LockerError> {
        let m = self.mutation_mut(reqid)?;
        m.remove_held(id, REMOTE_WRLOCK);
        Ok(m.remote_wrlocks.remove(&id))
    }

    /// `remote_wrlock_finish` (§4.6): forget it and send UNWRLOCK (no ack). Ceph calls it when
    /// a merged local+remote wrlock entry must restart; no op here builds such an entry yet.
    #[cfg_attr(not(test), expect(dead_code, reason = "no op releases a single remote wrlock yet"))]
    pub(crate) fn remote_wrlock_finish(&mut self, id: LockId, reqid: ReqId) -> Result<(), LockerError> {
        let client = self.mutation(reqid)?.client;
        if let Some(target) = self.forget_remote_wrlock(id, reqid)?
            && let Some(key) = self.cache.lock_key(id)
        {
            let mut msg = PeerMsg::new(PeerOp::Unwrlock, reqid, client);
            msg.lock = Some(key);
            self.send(target, MdsMessage::Peer(msg));
        }
        Ok(())
    }

    /// Phase C of `acquire_locks` for objects other ranks are auth for (§4.4): one AUTHPIN per
    /// rank listing the new objects plus those already pinned there, then wait for the acks.
    pub(crate) fn request_remote_auth_pins(
        &mut self,
        reqid: ReqId,
        mut want: BTreeMap<Rank, BTreeSet<ObjRef>>,
    ) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        let client = m.client;
        for (obj, rank) in &m.remote_auth_pins {
            if let Some(set) = want.get_mut(rank) {
                set.insert(*obj);
            }
        }
        let freeze = m.auth_pin_freeze.filter(|o| m.remote_frozen != Some(*o));
        for (rank, objs) in want {
            let mut msg = PeerMsg::new(PeerOp::AuthPin, reqid, client);
            msg.objects = objs.iter().filter_map(|o| self.cache.obj_key(*o)).collect();
            msg.freeze = freeze.filter(|o| objs.contains(o)).and_then(|o| self.cache.obj_key(o));
            let m = self.mutation_mut(reqid)?;
            m.peers.insert(rank);
            m.waiting_on_peer.insert(rank);
            self.send(rank, MdsMessage::Peer(msg));
        }
        Ok(())
    }

    /// Sends DROPLOCKS to each of `ranks` (§4.18 `_drop_locks`). The peer forgets the request
    /// entirely (see the module notes), so the leader forgets what those ranks pinned for it.
    pub(crate) fn send_drop_locks(&mut self, reqid: ReqId, ranks: BTreeSet<Rank>) -> Result<(), LockerError> {
        if ranks.is_empty() {
            return Ok(());
        }
        let m = self.mutation_mut(reqid)?;
        let client = m.client;
        m.remote_auth_pins.retain(|_, r| !ranks.contains(r));
        for r in &ranks {
            m.peers.remove(r);
        }
        // A witness's peer request ends with FINISH, never DROPLOCKS (see `witness`).
        let ranks: Vec<Rank> = ranks.into_iter().filter(|r| !self.twophase.is_witness(reqid, *r)).collect();
        for r in ranks {
            self.send(r, MdsMessage::Peer(PeerMsg::new(PeerOp::DropLocks, reqid, client)));
        }
        Ok(())
    }

    /// At request cleanup: every peer still involved (one we asked for a lock or a pin and
    /// have not yet told to drop) gets DROPLOCKS, so a lock acquired or being acquired for a
    /// cancelled request is released (Ceph sends FINISH here; see the module notes).
    pub(crate) fn release_peers(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let m = self.mutation_mut(reqid)?;
        if m.peer_of.is_some() {
            return Ok(());
        }
        m.waiting_on_peer.clear();
        m.locking_target = None;
        let ranks = m.peers.clone();
        self.send_drop_locks(reqid, ranks)?;
        self.abort_unjournaled_witnesses(reqid)
    }

    /// The leader's copy of a request a peer message names, if it is still running.
    fn leader_request(&self, from: Rank, msg: &PeerMsg) -> Option<ReqId> {
        match self.requests.get(&msg.reqid) {
            Some(m) if m.peer_of.is_none() => Some(msg.reqid),
            _ => {
                tracing::debug!(from, op = msg.op.name(), reqid = %msg.reqid, "ack for a request that is gone; ignored");
                None
            }
        }
    }

    /// Marks `from` as answered and re-dispatches the request once no peer ack is pending.
    fn peer_answered(&mut self, reqid: ReqId, from: Rank) -> Result<(), LockerError> {
        let m = self.mutation_mut(reqid)?;
        m.waiting_on_peer.remove(&from);
        if m.waiting_on_peer.is_empty() && m.waiting_on.is_none() && m.phase == Phase::Locking {
            self.requeue(reqid);
        }
        Ok(())
    }

    /// XLOCKACK / WRLOCKACK on the leader (§4.6, §4.7): record the lock, end "locking",
    /// re-dispatch. For an xlock, the replica copy takes the xlock too (held for the request's
    /// client), so local readers keep waiting while the request holds it.
    fn leader_lock_ack(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let Some(reqid) = self.leader_request(from, &msg) else {
            return Ok(());
        };
        let key =
            msg.lock.as_ref().ok_or(LockerError::BadMessage { from, why: "lock ack without a lock" })?;
        let Some(id) = self.cache.resolve_lock(key) else {
            tracing::warn!(from, %reqid, lock = %key, "ack for a lock not in cache; ignored");
            return Ok(());
        };
        let m = self.mutation(reqid)?;
        if !m.waiting_on_peer.contains(&from) {
            tracing::warn!(from, %reqid, lock = %key, "unexpected lock ack; ignored");
            return Ok(());
        }
        let client = m.client;
        if msg.op == PeerOp::XlockAck {
            let state = self.lk(id)?.state();
            if state != lock_sm::LockState::Lock {
                // The MLock protocol puts the replica copy in LOCK before the auth can xlock.
                tracing::debug!(%reqid, lock = ?id, state = state.log_name(), "remote xlock granted; replica copy not in LOCK");
            }
            let facts = self.grant_facts(id, false, true)?;
            self.lkm(id)?.get_xlock(reqid, client);
            self.mutation_mut(reqid)?.add_held(id, XLOCK);
            self.note_grant(id, reqid, client, crate::lock_events::HoldKind::X, facts);
        } else {
            let m = self.mutation_mut(reqid)?;
            m.add_held(id, REMOTE_WRLOCK);
            m.remote_wrlocks.insert(id, from);
        }
        let m = self.mutation_mut(reqid)?;
        m.peers.insert(from);
        if m.locking == Some(id) {
            m.locking = None;
            m.locking_target = None;
        }
        tracing::debug!(%reqid, lock = ?id, from, op = msg.op.name(), "remote lock granted");
        self.mark_event(
            reqid,
            if msg.op == PeerOp::XlockAck { "remote xlock acked" } else { "remote wrlock acked" },
        );
        self.peer_answered(reqid, from)
    }

    /// AUTHPINACK on the leader (§4.4 phase C): note what is pinned there and re-dispatch; a
    /// "blocked" ack (NOTIFY_BLOCKING) makes the leader drop its locks while it keeps waiting,
    /// so the peer's wait cannot deadlock against them.
    fn leader_auth_pin_ack(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let Some(reqid) = self.leader_request(from, &msg) else {
            return self.drop_orphan_auth_pin(from, &msg);
        };
        if !self.mutation(reqid)?.waiting_on_peer.contains(&from) {
            tracing::warn!(from, %reqid, "unexpected authpin ack; ignored");
            return Ok(());
        }
        if msg.flag {
            tracing::debug!(from, %reqid, "peer blocked on auth pins; dropping our locks");
            return self.drop_locks(reqid);
        }
        let pinned: BTreeSet<ObjRef> = msg.objects.iter().filter_map(|k| self.cache.resolve_obj(k)).collect();
        let frozen = msg.freeze.as_ref().and_then(|k| self.cache.resolve_obj(k));
        let m = self.mutation_mut(reqid)?;
        m.remote_auth_pins.retain(|o, r| *r != from || pinned.contains(o));
        for o in pinned {
            m.remote_auth_pins.insert(o, from);
        }
        if frozen.is_some() {
            m.remote_frozen = frozen;
        }
        m.peers.insert(from);
        self.mark_event(reqid, "remote authpins acked");
        self.peer_answered(reqid, from)
    }

    // ---- peer side -----------------------------------------------------------------------

    /// The peer request for `msg`, created if `create` and absent. `None` (after logging) if
    /// the id belongs to a request this rank runs for someone else.
    pub(crate) fn peer_request(&mut self, from: Rank, msg: &PeerMsg, create: bool) -> Option<ReqId> {
        match self.requests.get(&msg.reqid) {
            Some(m) if m.peer_of == Some(from) => Some(msg.reqid),
            Some(m) if create && m.peer_of.is_some() => {
                // Another leader's peer request (the request was forwarded): `peer_park`.
                self.park_peer_message(from, msg.clone());
                None
            }
            Some(_) => {
                tracing::error!(from, reqid = %msg.reqid, op = msg.op.name(), "peer request id already in use here; dropped");
                None
            }
            None if create => {
                let mut m = Mutation::new(msg.reqid, msg.client, self.now_ms());
                m.peer_of = Some(from);
                m.phase = Phase::Holding;
                self.requests.insert(msg.reqid, m);
                Some(msg.reqid)
            }
            None => {
                tracing::debug!(from, reqid = %msg.reqid, op = msg.op.name(), "no such peer request; ignored");
                None
            }
        }
    }

    /// XLOCK / WRLOCK on the peer: add the lock to what the peer request acquires and run it.
    /// An XLOCK for an object this rank is not auth for is dropped (§4.17).
    fn peer_lock(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let key =
            msg.lock.as_ref().ok_or(LockerError::BadMessage { from, why: "lock request without a lock" })?;
        let Some(id) = self.cache.resolve_lock(key) else {
            tracing::warn!(from, reqid = %msg.reqid, lock = %key, "peer lock request for an object not in cache; dropped");
            return Ok(());
        };
        let lock = self.lk(id)?;
        let op = if msg.op == PeerOp::Xlock {
            if !lock.is_auth() {
                tracing::warn!(from, reqid = %msg.reqid, lock = %key, "XLOCK for an object we are not auth for; dropped (§4.17)");
                return Ok(());
            }
            if !lock.machine().def().can_remote_xlock {
                return Err(LockerError::BadMessage {
                    from,
                    why: "remote xlock of a lock that is not a simplelock",
                });
            }
            LockOp::x(id)
        } else {
            if matches!(lock.machine(), Machine::Simple | Machine::Local) {
                return Err(LockerError::BadMessage {
                    from,
                    why: "remote wrlock of a simplelock or locallock",
                });
            }
            LockOp::wr(id)
        };
        let Some(reqid) = self.peer_request(from, &msg, true) else {
            return Ok(());
        };
        let ack = if msg.op == PeerOp::Xlock { PeerOp::XlockAck } else { PeerOp::WrlockAck };
        let m = self.mutation_mut(reqid)?;
        if !m.peer_locks.contains(&op) {
            m.peer_locks.push(op);
        }
        m.peer_ack = Some((ack, id));
        if m.waiting_on.is_some() {
            // Already parked on a lock; the wake-up runs the whole set again.
            return Ok(());
        }
        m.phase = Phase::Locking;
        self.dispatch_peer(reqid)
    }

    /// Runs a peer request: acquire everything asked so far, then send the owed ack.
    pub(crate) fn dispatch_peer(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        let Some(leader) = m.peer_of else {
            return Ok(());
        };
        let locks = m.peer_locks.clone();
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        let m = self.mutation_mut(reqid)?;
        m.phase = Phase::Holding;
        let client = m.client;
        let Some((op, id)) = m.peer_ack.take() else {
            return Ok(());
        };
        let mut msg = PeerMsg::new(op, reqid, client);
        msg.lock = self.cache.lock_key(id);
        if op == PeerOp::XlockAck {
            msg.lock_state = Some((self.lk(id)?.state(), self.encode_lock_data(id)?));
        }
        self.mark_event(reqid, if op == PeerOp::XlockAck { "peer xlocked" } else { "peer wrlocked" });
        self.send(leader, MdsMessage::Peer(msg));
        Ok(())
    }

    /// UNXLOCK / UNWRLOCK on the peer: release that one lock (its implicit versionlock xlock
    /// stays until DROPLOCKS, as Ceph keeps it until the request finishes).
    fn peer_unlock(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let Some(reqid) = self.peer_request(from, &msg, false) else {
            return Ok(());
        };
        let key = msg.lock.as_ref().ok_or(LockerError::BadMessage { from, why: "unlock without a lock" })?;
        let Some(id) = self.cache.resolve_lock(key) else {
            tracing::warn!(from, %reqid, lock = %key, "unlock of a lock not in cache; ignored");
            return Ok(());
        };
        let (flag, op) =
            if msg.op == PeerOp::Unxlock { (XLOCK, LockOp::x(id)) } else { (WRLOCK, LockOp::wr(id)) };
        self.mutation_mut(reqid)?.peer_locks.retain(|o| *o != op);
        if !self.mutation(reqid)?.holds(id, flag) {
            tracing::warn!(from, %reqid, lock = %key, op = msg.op.name(), "unlock of a lock the peer request does not hold; ignored");
            return Ok(());
        }
        if flag == XLOCK { self.xlock_finish(id, reqid) } else { self.wrlock_finish(id, reqid) }
    }

    /// AUTHPIN on the peer: pin every listed object we are auth for and ack with everything
    /// pinned for the request. Nothing freezes here, so pinning never waits.
    fn peer_auth_pin(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        if self.requests.get(&msg.reqid).is_some_and(|m| m.peer_of != Some(from)) {
            // `peer_request` parks it (another leader's peer request) or logs and drops it.
            let _ = self.peer_request(from, &msg, true);
            return Ok(());
        }
        if self.pin_gate(from, &msg)? {
            return Ok(());
        }
        let Some(reqid) = self.peer_request(from, &msg, true) else {
            return Ok(());
        };
        for key in &msg.objects {
            match self.cache.resolve_obj(key) {
                Some(obj) if self.cache.is_auth_obj(obj) => {
                    if self.mutation_mut(reqid)?.auth_pins.insert(obj) {
                        self.cache.add_auth_pin(obj, 1);
                    }
                }
                _ => {
                    tracing::warn!(from, %reqid, obj = %key, "asked to auth-pin an object we are not auth for")
                }
            }
        }
        let Some(freeze) = self.start_pin_freeze(from, &msg)? else {
            // Acked once only this request pins the inode (`poll_pin_freezes`).
            return Ok(());
        };
        self.send_auth_pin_ack(from, reqid, freeze)
    }

    /// AUTHPINACK: everything pinned here for the request, and the inode frozen for it.
    pub(crate) fn send_auth_pin_ack(
        &mut self,
        to: Rank,
        reqid: ReqId,
        freeze: Option<crate::ids::ObjKey>,
    ) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        let mut ack = PeerMsg::new(PeerOp::AuthPinAck, reqid, m.client);
        ack.objects = m.auth_pins.iter().filter_map(|o| self.cache.obj_key(*o)).collect();
        ack.freeze = freeze;
        self.mark_event(reqid, "auth pinned for peer");
        self.send(to, MdsMessage::Peer(ack));
        Ok(())
    }

    /// DROPLOCKS on the peer: drop every lock and pin of the peer request and forget it.
    fn peer_drop_locks(&mut self, from: Rank, msg: PeerMsg) -> Result<(), LockerError> {
        let Some(reqid) = self.peer_request(from, &msg, false) else {
            return Ok(());
        };
        self.cleanup_request(reqid)
    }
}

#[cfg(test)]
mod tests {
    //! UNXLOCK and UNWRLOCK are sent by a leader releasing one remote lock on its own
    //! (`xlock_finish` / `remote_wrlock_finish`), which no request op does yet; these tests
    //! call them directly on the leader.

    use lock_sm::{LockState, LockType};

    use crate::cache::{InodeData, S_IFDIR, S_IFREG};
    use crate::cluster::Cluster;
    use crate::effects::{ClientRequest, Effect, Event, Op};
    use crate::ids::{Ino, LockId, ObjKey, Rank, ReqId};
    use crate::locker::{Locker, LockerConfig};
    use crate::mutation::{LockOp, REMOTE_WRLOCK, XLOCK};

    fn setup(is_dir: bool) -> (Cluster, Ino) {
        let mut c = Cluster::new(2, LockerConfig::default());
        c.handle(1, Event::SessionOpen { client: 1 }).unwrap();
        let mode = if is_dir { S_IFDIR | 0o755 } else { S_IFREG | 0o644 };
        let data = InodeData { mode, nlink: 1, version: 1, ..InodeData::default() };
        let cache = c.rank_mut(0).cache_mut();
        let root = cache.root();
        let (_, i) = cache.create_committed(root, "x", data);
        let ino = c.rank(0).cache().inode(i).unwrap().ino();
        c.replicate(&ObjKey::Inode(ino), 1).unwrap();
        (c, ino)
    }

    fn lock(c: &Cluster, r: Rank, ino: Ino, ty: LockType) -> LockId {
        LockId::inode(c.rank(r).cache().lookup_ino(ino).unwrap(), ty)
    }

    fn lockset(c: &mut Cluster, reqid: u64, op: LockOp) {
        let req = ClientRequest {
            reqid: ReqId(reqid),
            client: 1,
            op: Op::LockSet { locks: vec![op], journal: false },
        };
        c.handle(1, Event::Request(req)).unwrap();
        c.run().unwrap();
        assert!(c.outputs().iter().any(|o| o.effect == Effect::LocksAcquired { reqid: ReqId(reqid) }));
    }

    /// Runs `f` on rank `r` as if inside an event, and routes what it produced.
    fn on(c: &mut Cluster, r: Rank, f: impl FnOnce(&mut Locker)) {
        let l = c.rank_mut(r);
        f(l);
        l.finish_event().unwrap();
        let fx = std::mem::take(&mut l.fx);
        c.route(r, fx).unwrap();
        c.run().unwrap();
    }

    #[test]
    fn s4_7_unxlock_releases_the_auths_xlock_and_droplocks_the_rest() {
        let (mut c, x) = setup(false);
        let leader = lock(&c, 1, x, LockType::ILink);
        let auth = lock(&c, 0, x, LockType::ILink);
        let auth_ver = lock(&c, 0, x, LockType::IVersion);
        lockset(&mut c, 10, LockOp::x(leader));
        assert_eq!(c.rank(0).lock(auth).unwrap().state(), LockState::Xlock);
        on(&mut c, 1, |l| l.xlock_finish(leader, ReqId(10)).unwrap());
        assert_eq!(c.delivered().get("unxlock"), Some(&1));
        // The auth: XLOCK → SYNC, no holder; the peer request stays, still xlocking the
        // versionlock (released with the request, §4.8).
        assert_eq!(c.rank(0).lock(auth).unwrap().state(), LockState::Sync);
        assert!(!c.rank(0).lock(auth).unwrap().is_xlocked());
        let p = c.rank(0).request(ReqId(10)).unwrap();
        assert_eq!(p.held().get(&auth_ver), Some(&XLOCK));
        assert!(!c.rank(1).lock(leader).unwrap().is_xlocked());
        assert!(!c.rank(1).request(ReqId(10)).unwrap().holds(leader, XLOCK));
        c.handle(1, Event::FinishRequest { reqid: ReqId(10) }).unwrap();
        c.run().unwrap();
        assert_eq!(c.delivered().get("drop_locks"), Some(&1));
        assert!(c.rank(0).request(ReqId(10)).is_none());
        assert!(!c.rank(0).lock(auth_ver).unwrap().is_xlocked());
    }

    #[test]
    fn s4_6_unwrlock_releases_the_peers_wrlock() {
        let (mut c, d) = setup(true);
        let leader = lock(&c, 1, d, LockType::INest);
        let auth = lock(&c, 0, d, LockType::INest);
        lockset(&mut c, 10, LockOp::remote_wr(leader, 0));
        assert!(c.rank(0).lock(auth).unwrap().wrlock_holders().contains_key(&ReqId(10)));
        on(&mut c, 1, |l| l.remote_wrlock_finish(leader, ReqId(10)).unwrap());
        assert_eq!(c.delivered().get("unwrlock"), Some(&1));
        assert!(!c.rank(0).lock(auth).unwrap().is_wrlocked());
        let m = c.rank(1).request(ReqId(10)).unwrap();
        assert!(!m.holds(leader, REMOTE_WRLOCK));
        assert!(m.remote_wrlocks().is_empty());
        // The peer request (with its auth pin) lives until the leader's request ends.
        assert!(c.rank(0).request(ReqId(10)).is_some());
        c.handle(1, Event::FinishRequest { reqid: ReqId(10) }).unwrap();
        c.run().unwrap();
        assert!(c.rank(0).request(ReqId(10)).is_none());
    }
}
