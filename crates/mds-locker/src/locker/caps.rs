//! Client caps against lock states (mds spec §4.14, §4.2 cap predicates, §1.7).
//!
//! What a client may hold is always computed from the current states of the inode's four
//! cap-bearing locks through `lock-sm`'s `gcaps_allowed`; a transition that shrinks the
//! allowance revokes, and completes only when the clients' acks bring `issued` down.

use lock_sm::caps::{
    ANY, ANY_DIR_OPS, ANY_EXCL, ANY_SHARED, FILE_BUFFER, FILE_EXCL, FILE_LAZYIO, FILE_WR, PIN, shift_caps,
    unshift_caps,
};
use lock_sm::predicates::gcaps_allowed;
use lock_sm::{CapsWho, LockState, LockType};

use crate::capability::{Capability, PendingFlush};
use crate::effects::{CapMessage, CapOp, ClientCapMessage, ClientCapOp, Effect};
use crate::error::LockerError;
use crate::ids::{ClientId, InodeId, JournalSeq, LockId, ObjRef, ReqId};
use crate::journal::JournalEntry;
use crate::mutation::{Mutation, Phase, Projection, WRLOCK};

use super::Locker;
use super::eval::CAP_LOCK_TYPES;

/// Generic caps issued on one lock, bucketed as Ceph's `get_caps_issued` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IssuedBuckets {
    pub(crate) loner: u32,
    pub(crate) other: u32,
    pub(crate) xlocker: u32,
    pub(crate) any_fb: bool,
}

/// `CEPH_CAP_LOCKS` as an `eval` mask.
const CAP_LOCKS: u16 = lock_sm::LockType::CAP_LOCKS;

impl Locker {
    /// The lock's generic bits issued to the loner, to everyone else, and to the xlocking
    /// client (masked by its xlocker mask), plus whether anyone holds `Fb`.
    pub(crate) fn caps_issued(&self, id: LockId) -> Result<IssuedBuckets, LockerError> {
        let mut b = IssuedBuckets::default();
        let Some(n) = id.inode_id().and_then(|i| self.cache.inode(i)) else {
            return Ok(b);
        };
        let lock = self.lk(id)?;
        let loner = if n.is_auth() { n.loner() } else { None };
        for (c, cap) in n.caps() {
            let bits = unshift_caps(cap.issued(), id.ty);
            if Some(*c) == loner {
                b.loner |= bits;
            } else {
                b.other |= bits;
            }
            if Some(*c) == lock.xlock_by_client() {
                b.xlocker |= bits & id.ty.xlocker_mask();
            }
            b.any_fb |= cap.issued() & FILE_BUFFER != 0;
        }
        Ok(b)
    }

    /// Whether any bucket holds bits that state `evaluated` does not allow (loner mode taken
    /// from the current state, §1.7).
    pub(crate) fn caps_exceed(
        &self,
        id: LockId,
        evaluated: LockState,
        b: &IssuedBuckets,
    ) -> Result<bool, LockerError> {
        let lock = self.lk(id)?;
        let (m, cur, auth) = (lock.machine(), lock.state(), lock.is_auth());
        let has_x = lock.xlock_by_client().is_some();
        let allowed = |who| gcaps_allowed(m, cur, evaluated, who, auth, has_x);
        Ok(b.loner & !allowed(CapsWho::Loner) != 0
            || b.other & !allowed(CapsWho::Any) != 0
            || b.xlocker & !allowed(CapsWho::Xlocker) != 0)
    }

    /// `issued_caps_need_gather` (§4.2): clients hold more than the current state allows.
    pub(crate) fn issued_caps_need_gather(&self, id: LockId) -> Result<bool, LockerError> {
        if !id.ty.is_cap_bearing() {
            return Ok(false);
        }
        let b = self.caps_issued(id)?;
        let state = self.lk(id)?.state();
        self.caps_exceed(id, state, &b)
    }

    /// `get_caps_allowed_by_type`: PIN plus every cap-bearing lock's allowance for `who`.
    pub(crate) fn allowed_by_type(&self, inode: InodeId, who: CapsWho) -> Result<u32, LockerError> {
        let mut allowed = PIN;
        for ty in CAP_LOCK_TYPES {
            let lock = self.lk(LockId::inode(inode, ty))?;
            let s = lock.state();
            let has_x = lock.xlock_by_client().is_some();
            allowed |= shift_caps(gcaps_allowed(lock.machine(), s, s, who, lock.is_auth(), has_x), ty);
        }
        Ok(allowed)
    }

    /// `get_allowed_caps(inode, client)` (§4.14): the loner's or everyone's allowance, plus the
    /// xlocker's extra bits on locks this client xlocks; directories never get ANY_DIR_OPS
    /// (no lock caches yet).
    pub fn allowed_caps(&self, inode: InodeId, client: ClientId) -> Result<u32, LockerError> {
        let n = self
            .cache
            .inode(inode)
            .ok_or(LockerError::UnknownLock(LockId::inode(inode, lock_sm::LockType::IFile)))?;
        if self.export_freezing(inode) {
            // Recalled while the inode freezes for a rename's export (see `migrate`).
            return Ok(0);
        }
        let who = if n.loner() == Some(client) { CapsWho::Loner } else { CapsWho::Any };
        let mut allowed = self.allowed_by_type(inode, who)?;
        for ty in CAP_LOCK_TYPES {
            let lock = self.lk(LockId::inode(inode, ty))?;
            if lock.xlock_by_client() == Some(client) {
                let s = lock.state();
                let g = gcaps_allowed(lock.machine(), s, s, CapsWho::Xlocker, lock.is_auth(), true);
                allowed |= shift_caps(g & ty.xlocker_mask(), ty);
            }
        }
        if n.is_dir() {
            allowed &= !ANY_DIR_OPS;
        }
        Ok(allowed)
    }

    /// `issue_caps(inode)`: bring every client's pending caps in line with what is allowed and
    /// wanted. While a revoke is outstanding nothing is added (§4.14).
    pub(crate) fn issue_caps(&mut self, inode: InodeId) -> Result<(), LockerError> {
        let Some(n) = self.cache.inode(inode) else {
            return Ok(());
        };
        let ino = n.ino();
        let liked = if n.is_dir() { PIN | ANY_EXCL | ANY_SHARED } else { ANY & !FILE_LAZYIO };
        let clients: Vec<ClientId> = n.caps().keys().copied().collect();
        for client in clients {
            let allowed = self.allowed_caps(inode, client)?;
            let now = self.now_ms();
            let Some(cap) = self.cache.inode_mut(inode).and_then(|n| n.caps.get_mut(&client)) else {
                continue;
            };
            let (pending, wanted) = (cap.pending(), cap.wanted());
            if pending & !allowed == 0 && wanted & allowed & !pending == 0 {
                continue;
            }
            let mut caps = (wanted | liked) & allowed;
            if cap.is_revoking() {
                caps &= pending;
            }
            if caps == pending {
                continue;
            }
            let op = if pending & !caps != 0 { CapOp::Revoke } else { CapOp::Grant };
            let seq = cap.issue(caps, now);
            self.stats.cap_messages += 1;
            tracing::debug!(client, %ino, ?op, caps = %lock_sm::caps::format_caps(caps), seq, "issue caps");
            self.fx.push(Effect::Cap(CapMessage { client, ino, op, caps, wanted, seq }));
        }
        Ok(())
    }

    /// `issue_new_caps`: add (or widen) the client's cap, then evaluate the inode.
    pub(crate) fn add_cap(
        &mut self,
        client: ClientId,
        inode: InodeId,
        wanted: u32,
    ) -> Result<(), LockerError> {
        let Some(n) = self.cache.inode_mut(inode) else {
            return Ok(());
        };
        n.caps.entry(client).and_modify(|c| c.wanted |= wanted).or_insert_with(|| Capability::new(wanted));
        if let Some(s) = self.sessions.get_mut(&client) {
            s.caps.insert(inode);
        }
        self.eval_inode(inode, CAP_LOCKS)?;
        self.need_issue.insert(inode);
        Ok(())
    }

    /// A cap UPDATE (ack, new wanted) or RELEASE from a client.
    pub(crate) fn handle_client_caps(&mut self, msg: ClientCapMessage) -> Result<(), LockerError> {
        let now = self.now_ms();
        let Some(session) = self.sessions.get_mut(&msg.client) else {
            return Err(LockerError::NoSession(msg.client));
        };
        session.last_seen_ms = now;
        let inode = self.cache.lookup_ino(msg.ino).ok_or(LockerError::UnknownInode(msg.ino))?;
        let Some(cap) = self.cache.inode_mut(inode).and_then(|n| n.caps.get_mut(&msg.client)) else {
            // Ceph drops messages about caps it does not know (e.g. already released).
            return Ok(());
        };
        // What the client could have dirtied: the caps it held before this message.
        let issued_before = cap.issued();
        match msg.op {
            ClientCapOp::Release if msg.seq >= cap.last_sent() => return self.remove_cap(msg.client, inode),
            ClientCapOp::Release => cap.confirm_receipt(msg.seq, 0),
            ClientCapOp::Update | ClientCapOp::Flush { .. } => {
                cap.confirm_receipt(msg.seq, msg.caps);
                cap.wanted = msg.wanted;
            }
        }
        if let ClientCapOp::Flush { tid, dirty, size, mtime_ms } = msg.op {
            // Before the gathers are re-evaluated: the forced wrlock keeps a transition that
            // this ack would otherwise complete waiting until the flushed data is safe.
            let flush = PendingFlush { ino: msg.ino, tid, dirty, seq: msg.seq };
            self.start_cap_flush(msg.client, inode, flush, issued_before, size, mtime_ms)?;
        }
        self.eval_cap_gather(inode)?;
        self.eval_inode(inode, CAP_LOCKS)?;
        self.need_issue.insert(inode);
        Ok(())
    }

    /// `_do_cap_update` for dirty file data (§4.14): a flush of `Fw` / `Fx` data the client
    /// held journals the new size / mtime as an internal "cap update" mutation that holds a
    /// forced wrlock on the filelock (§4.6 `wrlock_force`: journaling must not wait for the
    /// lock's state) until the entry is safe; the FLUSH_ACK goes out then
    /// (`cap_flush_committed`). A re-sent flush already acknowledged, or one carrying nothing
    /// the client could have dirtied, is acked at once and journals nothing.
    ///
    /// Fields follow Ceph's rules for `Fw`/`Fx` dirtiness: the size only grows; `Fx` sets the
    /// mtime, `Fw` only moves it forward. The message carries no ctime, so ctime is moved up to
    /// the new mtime when that is later (a data write changes both on the client).
    fn start_cap_flush(
        &mut self,
        client: ClientId,
        inode: InodeId,
        flush: PendingFlush,
        issued_before: u32,
        size: u64,
        mtime_ms: u64,
    ) -> Result<(), LockerError> {
        let max = self.config().max_completed_requests;
        let Some(session) = self.sessions.get_mut(&client) else {
            return Err(LockerError::NoSession(client));
        };
        let file_dirty = flush.dirty & (FILE_WR | FILE_EXCL) & issued_before;
        if session.flush_completed(flush.tid) || file_dirty == 0 {
            session.add_completed_flush(flush.tid, max);
            tracing::debug!(client, ino = %flush.ino, tid = flush.tid, "cap flush needs no journaling; ack now");
            self.send_flush_ack(client, flush);
            return Ok(());
        }
        let seq = JournalSeq(self.next_seq);
        self.next_seq += 1;
        // Internal mutations take ids above INTERNAL_BASE; the journal seq makes them unique.
        let reqid = ReqId(ReqId::INTERNAL_BASE + seq.0);
        let now = self.now_ms();
        self.requests.insert(reqid, Mutation::new(reqid, None, now));
        let obj = ObjRef::Inode(inode);
        if self.mutation_mut(reqid)?.auth_pins.insert(obj) {
            self.cache.add_auth_pin(obj, 1);
        }
        let filelock = LockId::inode(inode, LockType::IFile);
        let facts = self.grant_facts(filelock, true, false)?;
        self.lkm(filelock)?.get_wrlock(reqid, Some(client));
        self.mutation_mut(reqid)?.add_held(filelock, WRLOCK);
        self.note_grant(filelock, reqid, Some(client), crate::lock_events::HoldKind::Wr, facts);
        tracing::debug!(%reqid, lock = ?filelock, state = %self.lk(filelock)?.state(), "wrlock_force");
        let pi = self.cache.project_inode(inode, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        pi.size = pi.size.max(size);
        if file_dirty & FILE_EXCL != 0 {
            pi.mtime_ms = mtime_ms;
        } else {
            pi.mtime_ms = pi.mtime_ms.max(mtime_ms);
        }
        pi.ctime_ms = pi.ctime_ms.max(pi.mtime_ms);
        self.cache.pre_dirty_inode(inode);
        self.note_projection(reqid, Projection::Inode(inode))?;
        let entry = JournalEntry::update(reqid, "cap update", self.projected_changes(reqid)?);
        self.stats.journal_submits += 1;
        self.fx.push(Effect::JournalSubmit { seq, entry });
        self.committing.insert(seq, reqid);
        self.mutation_mut(reqid)?.phase = Phase::Committing(seq);
        self.mark_event(reqid, "submit entry: cap update");
        if let Some(s) = self.sessions.get_mut(&client) {
            s.flushing.insert(reqid, flush);
        }
        // A gather held up by this wrlock should not wait for the journal's batching.
        self.nudge_log(filelock)
    }

    /// Called by `commit` once a mutation's entry is safe and its projections are applied,
    /// before its locks drop (Ceph's `file_update_finish` order): a cap flush's FLUSH_ACK goes
    /// out now. Other mutations are left alone.
    pub(crate) fn cap_flush_committed(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        if reqid.0 < ReqId::INTERNAL_BASE {
            return Ok(());
        }
        let max = self.config().max_completed_requests;
        // An evicted session took its pending flushes with it: nobody is left to ack.
        let found = self.sessions.iter_mut().find_map(|(c, s)| {
            let f = s.flushing.remove(&reqid)?;
            s.add_completed_flush(f.tid, max);
            Some((*c, f))
        });
        if let Some((client, flush)) = found {
            self.send_flush_ack(client, flush);
        }
        Ok(())
    }

    fn send_flush_ack(&mut self, client: ClientId, f: PendingFlush) {
        let (caps, wanted) = self
            .cache
            .lookup_ino(f.ino)
            .and_then(|i| self.cache.inode(i))
            .and_then(|n| n.caps().get(&client))
            .map_or((0, 0), |c| (c.pending(), c.wanted()));
        self.stats.cap_messages += 1;
        tracing::debug!(client, ino = %f.ino, tid = f.tid, "flush ack");
        let op = CapOp::FlushAck { tid: f.tid, cleaned: f.dirty };
        self.fx.push(Effect::Cap(CapMessage { client, ino: f.ino, op, caps, wanted, seq: f.seq }));
    }

    /// Drops a client's cap and lets the inode re-evaluate (gathers waiting on it complete).
    pub(crate) fn remove_cap(&mut self, client: ClientId, inode: InodeId) -> Result<(), LockerError> {
        if let Some(n) = self.cache.inode_mut(inode) {
            n.caps.remove(&client);
        }
        if let Some(s) = self.sessions.get_mut(&client) {
            s.caps.remove(&inode);
        }
        self.eval_cap_gather(inode)?;
        self.eval_inode(inode, CAP_LOCKS)?;
        self.need_issue.insert(inode);
        Ok(())
    }

    /// Forgets every dentry lease of an evicted client and lets the DN locks that were waiting
    /// for them complete.
    pub(crate) fn drop_client_leases(&mut self, client: ClientId) -> Result<(), LockerError> {
        let dentries: Vec<_> = self.cache.dentry_ids().collect();
        for d in dentries {
            let id = LockId { obj: ObjRef::Dentry(d), ty: lock_sm::LockType::Dn };
            if self.lkm(id)?.leases.remove(&client).is_some() && !self.lk(id)?.is_stable() {
                self.eval_gather(id, false)?;
            }
        }
        Ok(())
    }
}
