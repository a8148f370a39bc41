//! Client caps against lock states (mds spec §4.14, §4.2 cap predicates, §1.7).
//!
//! What a client may hold is always computed from the current states of the inode's four
//! cap-bearing locks through `lock-sm`'s `gcaps_allowed`; a transition that shrinks the
//! allowance revokes, and completes only when the clients' acks bring `issued` down.

use lock_sm::caps::{
    ANY, ANY_DIR_OPS, ANY_EXCL, ANY_SHARED, FILE_BUFFER, FILE_LAZYIO, PIN, shift_caps, unshift_caps,
};
use lock_sm::predicates::gcaps_allowed;
use lock_sm::{CapsWho, LockState};

use crate::capability::Capability;
use crate::effects::{CapMessage, CapOp, ClientCapMessage, ClientCapOp, Effect};
use crate::error::LockerError;
use crate::ids::{ClientId, InodeId, LockId, ObjRef};

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
        match msg.op {
            ClientCapOp::Release if msg.seq >= cap.last_sent() => return self.remove_cap(msg.client, inode),
            ClientCapOp::Release => cap.confirm_receipt(msg.seq, 0),
            ClientCapOp::Update => {
                cap.confirm_receipt(msg.seq, msg.caps);
                cap.wanted = msg.wanted;
            }
        }
        self.eval_cap_gather(inode)?;
        self.eval_inode(inode, CAP_LOCKS)?;
        self.need_issue.insert(inode);
        Ok(())
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
