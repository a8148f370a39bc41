//! Path traversal (mds spec §5.1), `rdlock_path_xlock_dentry`, and the server operations that
//! create inodes or only read, with their §5.2 lock sets: LOOKUP, GETATTR, MKDIR, CREATE,
//! MKNOD, SYMLINK. Each operation follows the §6.2 lifecycle: lock, validate, project, journal
//! (early reply first, §4.18), apply when safe. The other operations live in `ops_read`
//! (READDIR, OPEN), `ops_link` (UNLINK, RMDIR, LINK, RENAME), `ops_attr` (SETATTR, xattrs)
//! and `flock_ops` (advisory locks).
//!
//! An operation is re-run from the top whenever its request is woken; locks it already holds
//! are skipped by `acquire_locks`, so a re-run costs one cache walk. Every check that decides
//! the result is made after the locks protecting what it reads are held, in the same dispatch
//! that then projects and journals, so a request's result is that of running it alone at the
//! moment it replies.

use lock_sm::caps::{
    ANY_EXCL, ANY_SHARED, AUTH_EXCL, AUTH_SHARED, FILE_EXCL, FILE_SHARED, LINK_EXCL, LINK_SHARED, PIN,
    XATTR_EXCL, XATTR_SHARED, caps_for_mode,
};
use lock_sm::{LockState, LockType};

use crate::cache::{InodeData, Linkage, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::effects::{Errno, FilePath, ReplyData};
use crate::error::LockerError;
use crate::ids::{ClientId, DentryId, Ino, InodeId, LockId, ReqId};
use crate::journal::{JournalEntry, MetaChange};
use crate::lock::WAIT_RD;
use crate::mutation::{LockOp, Projection, REMOTE_WRLOCK, SNAP_LOCKED, WRLOCK};

use super::Locker;

/// Longest name a dentry may have (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Longest symlink target (PATH_MAX).
pub const PATH_MAX: usize = 4096;

/// How far an operation got on this dispatch.
pub(crate) enum Step<T> {
    /// Everything needed is held.
    Done(T),
    /// Parked on a waiter list; will be re-dispatched.
    Wait,
    /// The request fails with this error (nothing was changed).
    Fail(Errno),
}

/// What a traversal should lock at the last component (§5.1 flags).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Want {
    /// XLOCK_DENTRY: wrlock the parent's filelock and nestlock and xlock the last dentry.
    pub(crate) xlock_dentry: bool,
    /// RDLOCK_AUTHLOCK: also rdlock the parent's authlock (creates).
    pub(crate) rdlock_authlock: bool,
    /// WANT_DENTRY: return the last dentry even if it is null (creating it if missing).
    pub(crate) want_dentry: bool,
    /// `want_auth` (§5.2 `rdlock_path_pin_ref(want_auth)`): the target inode must be auth
    /// here; otherwise the request is forwarded to its auth rank.
    pub(crate) want_auth: bool,
}

/// The result of a traversal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traversed {
    /// Directory holding the last dentry (none for a depth-0 path).
    pub(crate) dir: Option<InodeId>,
    /// The last dentry (none for a depth-0 path).
    pub(crate) dn: Option<DentryId>,
    /// The target inode, if the path resolved to one.
    pub(crate) target: Option<InodeId>,
}

impl Locker {
    /// `rdlock_try`: take a rdlock if allowed now, kicking a stable auth lock once; never waits.
    pub(crate) fn rdlock_try(&mut self, id: LockId, reqid: ReqId) -> Result<bool, LockerError> {
        if self.mutation(reqid)?.holds(id, crate::mutation::RDLOCK) {
            return Ok(true);
        }
        let client = self.mutation(reqid)?.client;
        if !self.lk(id)?.can_rdlock(client) {
            let lock = self.lk(id)?;
            if lock.is_stable() && lock.is_auth() {
                self.simple_sync(id)?;
            }
        }
        if self.lk(id)?.can_rdlock(client) {
            let facts = self.grant_facts(id, false, false)?;
            self.lkm(id)?.get_rdlock(reqid);
            self.mutation_mut(reqid)?.add_held(id, crate::mutation::RDLOCK);
            self.note_grant(id, reqid, client, crate::lock_events::HoldKind::Rd, facts);
            return Ok(true);
        }
        Ok(false)
    }

    /// `try_rdlock_snap_layout`: rdlock every snaplock from `base` up to the root without
    /// waiting. These locks go against the depth order, so on any failure the request drops
    /// everything and waits (§5.1 step 2).
    pub(crate) fn rdlock_snap_chain(
        &mut self,
        reqid: ReqId,
        base: InodeId,
        bit: u8,
    ) -> Result<bool, LockerError> {
        if self.mutation(reqid)?.locking_state & bit != 0 {
            return Ok(true);
        }
        let mut cur = Some(base);
        let mut depth = 0;
        while let Some(i) = cur {
            let id = LockId::inode(i, LockType::ISnap);
            if !self.rdlock_try(id, reqid)? {
                self.add_waiter(id, WAIT_RD, reqid)?;
                self.drop_locks(reqid)?;
                self.mark_event(reqid, "failed to rdlock, waiting");
                return Ok(false);
            }
            cur = self.cache.projected_parent_dir(i);
            depth += 1;
            if depth > 4096 {
                return Err(LockerError::Precondition("directory loop above base"));
            }
        }
        self.mutation_mut(reqid)?.locking_state |= bit;
        Ok(true)
    }

    /// The linkage this request may see: the projected one when it may read projected values
    /// of the dentry (it holds the xlock, or XLOCKDONE for its client), else the committed one.
    pub(crate) fn visible_linkage(&self, dn: DentryId, reqid: ReqId) -> Result<Linkage, LockerError> {
        let id = LockId::dentry(dn, LockType::Dn);
        let m = self.mutation(reqid)?;
        let d = self.cache.dentry(dn).ok_or(LockerError::UnknownLock(id))?;
        let projected = m.holds(id, crate::mutation::XLOCK) || self.lk(id)?.can_read_projected(m.client);
        Ok(if projected { d.projected_linkage() } else { d.linkage() })
    }

    /// `path_traverse` with RDLOCK_PATH | RDLOCK_SNAP (§5.1).
    pub(crate) fn path_traverse(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        want: Want,
    ) -> Result<Step<Traversed>, LockerError> {
        let Some(base) = self.cache.lookup_ino(path.base) else {
            // Another rank may have it: ask them all (`find_ino`); alone, ENOENT.
            return self.find_ino_for(reqid, path.base);
        };
        if !self.rdlock_snap_chain(reqid, base, SNAP_LOCKED)? {
            return Ok(Step::Wait);
        }
        let mut locks: Vec<LockOp> = Vec::new();
        let mut cur = base;
        let mut out = Traversed { dir: None, dn: None, target: Some(base) };
        let n = path.components.len();
        for (i, name) in path.components.iter().enumerate() {
            let last = i + 1 == n;
            if !self.cache.inode(cur).is_some_and(|c| c.is_dir()) {
                return Ok(Step::Fail(Errno::ENOTDIR));
            }
            if name.len() > NAME_MAX {
                return Ok(Step::Fail(Errno::ENAMETOOLONG));
            }
            let me = self.cache.rank();
            let frag = self.cache.dirfrag_of_existing(cur);
            let frag_auth = frag.and_then(|f| self.cache.dirfrag_auth(f));
            let cached = self.cache.lookup_dentry(cur, name);
            if cached.is_some_and(|d| self.cache.dentry(d).is_some_and(|x| x.pending_primary.is_none())) {
                // A discover reply's "no such name" answered the miss it was sent for; once
                // the dentry is in cache its (replicated) lock says what it links.
                let cur_ino = self.ino_of(cur);
                if self.discover_missing.get(&reqid).is_some_and(|(d, n)| *d == cur_ino && n == name) {
                    self.discover_missing.remove(&reqid);
                }
            }
            if cached.is_none() && !(frag_auth == Some(me) && frag.is_some_and(|f| self.frag_complete(f))) {
                // Not ours to decide (§5.1): the dentry must be xlocked on its auth, so send
                // the request there; a read asks the auth for a replica first.
                if let (true, Some(a)) = (last && want.xlock_dentry, frag_auth)
                    && a != me
                {
                    self.forward_request(reqid, a)?;
                    return Ok(Step::Wait);
                }
                return self.discover_dentry(reqid, cur, name);
            }
            if let (true, Some(d)) = (last && want.xlock_dentry, cached) {
                let auth = self.cache.auth_of(crate::ids::ObjRef::Dentry(d));
                if let Some(a) = auth.filter(|a| *a != me) {
                    self.forward_request(reqid, a)?;
                    return Ok(Step::Wait);
                }
            }
            let dn = match cached {
                Some(d) => d,
                // One complete, auth dirfrag per directory: a miss is real. Keep a null
                // dentry only if the caller wants to lock it.
                None if last && want.want_dentry => self.add_null_dentry_for(reqid, cur, name)?,
                None => return Ok(Step::Fail(Errno::ENOENT)),
            };
            let dn_lock = LockId::dentry(dn, LockType::Dn);
            if last && want.xlock_dentry {
                locks.push(LockOp::wr(LockId::inode(cur, LockType::IFile)));
                locks.push(LockOp::wr(LockId::inode(cur, LockType::INest)));
                if want.rdlock_authlock {
                    locks.push(LockOp::rd(LockId::inode(cur, LockType::IAuth)));
                }
                locks.push(LockOp::x(dn_lock));
            } else {
                locks.push(LockOp::rd(dn_lock));
            }
            if !self.acquire_locks(reqid, &locks)? {
                return Ok(Step::Wait);
            }
            let mut linkage = self.visible_linkage(dn, reqid)?;
            if linkage == Linkage::Null && self.resolve_pending_primary(dn) {
                linkage = self.visible_linkage(dn, reqid)?;
            }
            if linkage == Linkage::Null && self.cache.dentry(dn).is_some_and(|d| d.pending_primary.is_some())
            {
                // A replica dentry the auth linked (its lock data named the inode) to an
                // inode this rank has no replica of: ask the auth for it (§5.1 discover).
                // If the auth answered that the name links nothing (our rdlock keeps it from
                // changing meanwhile), the pending link is stale: the dentry is null.
                let cur_ino = self.ino_of(cur);
                if self.discover_missing.get(&reqid).is_some_and(|(d, n)| *d == cur_ino && n == name) {
                    self.discover_missing.remove(&reqid);
                    if let Some(d) = self.cache.dentry_mut(dn) {
                        d.pending_primary = None;
                    }
                } else {
                    return self.discover_dentry(reqid, cur, name);
                }
            }
            out.dir = Some(cur);
            out.dn = Some(dn);
            if last && want.want_dentry {
                out.target = match linkage {
                    Linkage::Primary(t) => Some(t),
                    Linkage::Remote { ino, .. } => self.cache.lookup_ino(ino),
                    Linkage::Null => None,
                };
                return Ok(Step::Done(out));
            }
            let child = match linkage {
                Linkage::Null => return Ok(Step::Fail(Errno::ENOENT)),
                Linkage::Primary(t) => t,
                Linkage::Remote { ino, .. } => match self.cache.lookup_ino(ino) {
                    Some(t) => t,
                    None => {
                        // A replica of a remote link whose target this rank has never seen:
                        // Ceph opens the inode by number (open_remote_dentry). Not built;
                        // the dentry's auth has the target in cache, so the request goes
                        // there. On the auth itself a missing target is a dangling link.
                        let me = self.cache.rank();
                        if let Some(a) =
                            self.cache.auth_of(crate::ids::ObjRef::Dentry(dn)).filter(|a| *a != me)
                        {
                            self.forward_request(reqid, a)?;
                            return Ok(Step::Wait);
                        }
                        return Ok(Step::Fail(Errno::ENOENT));
                    }
                },
            };
            locks.push(LockOp::rd(LockId::inode(child, LockType::ISnap)));
            if !self.acquire_locks(reqid, &locks)? {
                return Ok(Step::Wait);
            }
            cur = child;
            out.target = Some(child);
        }
        if want.want_auth
            && let Some(t) = out.target
            && let Some(a) =
                self.cache.auth_of(crate::ids::ObjRef::Inode(t)).filter(|a| *a != self.cache.rank())
        {
            self.forward_request(reqid, a)?;
            return Ok(Step::Wait);
        }
        Ok(Step::Done(out))
    }

    fn frag_complete(&self, f: crate::ids::DirfragId) -> bool {
        self.cache.dirfrag(f).is_some_and(|x| x.is_complete())
    }

    /// Adds a negative dentry for a name the request is about to lock, remembering it so the
    /// request trims it again if it ends without using it.
    pub(crate) fn add_null_dentry_for(
        &mut self,
        reqid: ReqId,
        dir: InodeId,
        name: &str,
    ) -> Result<DentryId, LockerError> {
        let frag = self.cache.dirfrag_of(dir);
        let dn = self.cache.add_null_dentry(frag, name);
        let m = self.mutation_mut(reqid)?;
        if !m.new_dentries.contains(&dn) {
            m.new_dentries.push(dn);
        }
        Ok(dn)
    }

    /// Fails a request: safe error reply, locks dropped, nothing changed.
    pub(crate) fn reply_error(&mut self, reqid: ReqId, errno: Errno) -> Result<(), LockerError> {
        tracing::debug!(%reqid, ?errno, "request failed");
        self.send_safe_reply(reqid, Err(errno), ReplyData::None)?;
        self.cleanup_request(reqid)
    }

    /// Replies to a request that journals nothing and finishes it.
    pub(crate) fn reply_done(
        &mut self,
        reqid: ReqId,
        ino: Option<Ino>,
        data: ReplyData,
    ) -> Result<(), LockerError> {
        self.send_safe_reply(reqid, Ok(ino), data)?;
        self.cleanup_request(reqid)
    }

    /// Replies to a read-only request and finishes it.
    fn reply_read(&mut self, reqid: ReqId, ino: Ino) -> Result<(), LockerError> {
        self.reply_done(reqid, Some(ino), ReplyData::None)
    }

    /// The inode a linkage names (a remote link's target by number).
    pub(crate) fn linkage_target(&self, linkage: Linkage) -> Option<InodeId> {
        match linkage {
            Linkage::Primary(t) => Some(t),
            Linkage::Remote { ino, .. } => self.cache.lookup_ino(ino),
            Linkage::Null => None,
        }
    }

    /// The inode number of a cached inode (0 if the handle is stale, which callers rule out).
    pub(crate) fn ino_of(&self, id: InodeId) -> Ino {
        self.cache.inode(id).map(|n| n.ino()).unwrap_or(Ino(0))
    }

    /// The caps this client holds on an inode (for the "lacks Ax" style rules of §5.2).
    pub(crate) fn client_issued(&self, inode: InodeId, client: Option<ClientId>) -> u32 {
        let Some(c) = client else { return 0 };
        self.cache.inode(inode).and_then(|n| n.caps().get(&c)).map(|cap| cap.issued()).unwrap_or(0)
    }

    /// LOOKUP and GETATTR (§5.2).
    pub(crate) fn handle_getattr(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        mask: u32,
    ) -> Result<(), LockerError> {
        let t = match self.path_traverse(reqid, path, Want::default())? {
            Step::Done(t) => t,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let Some(target) = t.target else {
            return self.reply_error(reqid, Errno::ENOENT);
        };
        let client = self.mutation(reqid)?.client;
        let issued = self.client_issued(target, client);
        let mut locks = Vec::new();
        let lk = |ty| LockId::inode(target, ty);
        if mask & LINK_SHARED != 0 && issued & LINK_EXCL == 0 {
            locks.push(LockOp::rd(lk(LockType::ILink)));
        }
        if mask & AUTH_SHARED != 0 && issued & AUTH_EXCL == 0 {
            locks.push(LockOp::rd(lk(LockType::IAuth)));
        }
        if mask & XATTR_SHARED != 0 && issued & XATTR_EXCL == 0 {
            locks.push(LockOp::rd(lk(LockType::IXattr)));
        }
        if mask & FILE_SHARED != 0 && issued & FILE_EXCL == 0 {
            // Skip the filelock rdlock when this client can already read it (§8 fact 66).
            let file = self.lk(lk(LockType::IFile))?;
            let skip = !file.is_stable() && !file.is_wrlocked() && file.can_read(client);
            if !skip {
                locks.push(LockOp::rd(lk(LockType::IFile)));
            }
        }
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        if let (Some(dn), Some(dir), Some(client)) = (t.dn, t.dir, client) {
            self.issue_client_lease(dn, dir, client)?;
        }
        let ino = self.cache.inode(target).map(|n| n.ino()).unwrap_or(Ino(0));
        self.reply_read(reqid, ino)
    }

    /// `issue_client_lease` (§4.15, §8 fact 80): a dentry lease goes with the reply only if the
    /// DN lock allows it for this client, the directory is not a stray, the directory's filelock
    /// does *not* allow this client a lease (then its shared dir caps cover the dentry), and the
    /// client has no `Fs`/`Fx` pending on the directory.
    fn issue_client_lease(
        &mut self,
        dn: DentryId,
        dir: InodeId,
        client: ClientId,
    ) -> Result<(), LockerError> {
        let dn_lock = LockId::dentry(dn, LockType::Dn);
        let dir_pending =
            self.cache.inode(dir).and_then(|n| n.caps().get(&client)).map(|c| c.pending()).unwrap_or(0);
        let ok = self.lk(dn_lock)?.can_lease(Some(client))
            && !self.cache.is_stray(dir)
            && !self.lk(LockId::inode(dir, LockType::IFile))?.can_lease(Some(client))
            && dir_pending & (FILE_SHARED | FILE_EXCL) == 0;
        if !ok {
            return Ok(());
        }
        self.next_lease_seq = self.next_lease_seq.wrapping_add(1);
        let seq = self.next_lease_seq;
        self.lkm(dn_lock)?.leases.insert(client, seq);
        let dir_ino = self.cache.inode(dir).map(|n| n.ino()).unwrap_or(Ino(0));
        let name = self.cache.dentry(dn).map(|d| d.name().to_string()).unwrap_or_default();
        self.fx.push(crate::effects::Effect::LeaseGrant { client, dir: dir_ino, name, seq });
        Ok(())
    }

    /// A client released a dentry lease (or acknowledged its revoke): drop it if `seq` is
    /// current and let a DN transition waiting on leases complete.
    pub(crate) fn handle_lease_release(
        &mut self,
        client: ClientId,
        dir: Ino,
        name: &str,
        seq: u32,
    ) -> Result<(), LockerError> {
        if !self.sessions.contains_key(&client) {
            return Err(LockerError::NoSession(client));
        }
        let dir = self.cache.lookup_ino(dir).ok_or(LockerError::UnknownInode(dir))?;
        let Some(dn) = self.cache.lookup_dentry(dir, name) else {
            return Ok(());
        };
        let id = LockId::dentry(dn, LockType::Dn);
        let lock = self.lkm(id)?;
        if lock.leases.get(&client).is_some_and(|s| *s == seq) {
            lock.leases.remove(&client);
            if !self.lk(id)?.is_stable() {
                self.eval_gather(id, false)?;
            }
        }
        Ok(())
    }

    /// `rdlock_path_xlock_dentry(create, okexist)` (§5.1): path rdlocks, then wrlock the
    /// parent's filelock and nestlock (and rdlock its authlock when creating) and xlock the
    /// last dentry. The null/existing checks are left to the caller, which holds the xlock.
    pub(crate) fn rdlock_path_xlock_dentry(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        create: bool,
    ) -> Result<Step<(InodeId, DentryId)>, LockerError> {
        let Some(name) = path.components.last() else {
            return Ok(Step::Fail(Errno::EINVAL));
        };
        if name == "." || name == ".." {
            return Ok(Step::Fail(if create { Errno::EEXIST } else { Errno::ENOTEMPTY }));
        }
        if self.cache.lookup_ino(path.base).is_some_and(|b| self.is_system_dir(b)) {
            return Ok(Step::Fail(Errno::EROFS));
        }
        let want = Want { xlock_dentry: true, rdlock_authlock: create, want_dentry: true, want_auth: false };
        match self.path_traverse(reqid, path, want)? {
            Step::Done(Traversed { dir: Some(dir), dn: Some(dn), .. }) => {
                if let Some(e) = self.dir_update_error(dir) {
                    return Ok(Step::Fail(e));
                }
                Ok(Step::Done((dir, dn)))
            }
            Step::Done(_) => Ok(Step::Fail(Errno::EINVAL)),
            Step::Wait => Ok(Step::Wait),
            Step::Fail(e) => Ok(Step::Fail(e)),
        }
    }

    /// Why entries of `dir` may not be added or removed: the rank's private directories are
    /// read-only (EROFS), and a directory already unlinked into a stray directory takes no new
    /// entries (ENOENT), judged by where pending unlinks and renames put it.
    pub(crate) fn dir_update_error(&self, dir: InodeId) -> Option<Errno> {
        if self.is_system_dir(dir) {
            return Some(Errno::EROFS);
        }
        // Any rank's stray: a directory auth here may have been removed by a leader on
        // another rank, which moved it into that rank's stray directory (simulator
        // `--cross-subtree`, 2 ranks, seed 2299: a rename into such a directory succeeded).
        if self.cache.projected_parent_dir(dir).is_some_and(|p| self.ino_of(p).is_stray()) {
            return Some(Errno::ENOENT);
        }
        None
    }

    /// Some rank's `~mdsN` or stray directory.
    pub(crate) fn is_system_dir(&self, dir: InodeId) -> bool {
        let ino = self.ino_of(dir);
        ino.is_mdsdir() || ino.is_stray()
    }

    /// MKDIR (§5.2, §8 fact 61).
    pub(crate) fn handle_mkdir(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        mode: u32,
    ) -> Result<(), LockerError> {
        let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        if self.cache.dentry(dn).is_some_and(|d| d.projected_linkage() != Linkage::Null) {
            return self.reply_error(reqid, Errno::EEXIST);
        }
        let data = InodeData { mode: S_IFDIR | (mode & 0o7777), nlink: 1, ..InodeData::default() };
        let newi = self.create_linked_inode(reqid, dir, dn, data)?;
        // The new directory starts with its cap-bearing locks in EXCL for its creator.
        self.init_new_inode_caps(
            reqid,
            newi,
            &[LockType::IFile, LockType::IAuth, LockType::IXattr],
            PIN | ANY_SHARED | ANY_EXCL,
        )?;
        self.journal_new_inode(reqid, "mkdir", newi)
    }

    /// CREATE / openc (§5.2): a new file, or (without O_EXCL) an OPEN of an existing one.
    pub(crate) fn handle_create(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        mode: u32,
        excl: bool,
        file_mode: u32,
    ) -> Result<(), LockerError> {
        let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let existing = self.cache.dentry(dn).map(|d| d.projected_linkage()).unwrap_or(Linkage::Null);
        if existing != Linkage::Null {
            if excl {
                return self.reply_error(reqid, Errno::EEXIST);
            }
            return self.open_existing(reqid, existing, file_mode);
        }
        let data = InodeData { mode: S_IFREG | (mode & 0o7777), nlink: 1, ..InodeData::default() };
        let newi = self.create_linked_inode(reqid, dir, dn, data)?;
        // authlock and xattrlock start in EXCL; the filelock gets there through eval (§5.2).
        self.init_new_inode_caps(
            reqid,
            newi,
            &[LockType::IAuth, LockType::IXattr],
            caps_for_mode(file_mode),
        )?;
        self.journal_new_inode(reqid, "openc", newi)
    }

    /// MKNOD (§5.2): like CREATE with `okexist = false`. A regular file's creator gets an
    /// RDWR cap with the new inode's filelock, authlock and xattrlock in EXCL (Ceph expects it
    /// to write next, e.g. when re-exporting over NFS); other types get no cap.
    pub(crate) fn handle_mknod(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        mode: u32,
    ) -> Result<(), LockerError> {
        let ty = if mode & S_IFMT == 0 { S_IFREG } else { mode & S_IFMT };
        if ty == S_IFDIR || ty == S_IFLNK {
            // mkdir and symlink have their own operations.
            return self.reply_error(reqid, Errno::EINVAL);
        }
        let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        if self.cache.dentry(dn).is_some_and(|d| d.projected_linkage() != Linkage::Null) {
            return self.reply_error(reqid, Errno::EEXIST);
        }
        let data = InodeData { mode: ty | (mode & 0o7777), nlink: 1, ..InodeData::default() };
        let newi = self.create_linked_inode(reqid, dir, dn, data)?;
        if ty == S_IFREG {
            self.init_new_inode_caps(
                reqid,
                newi,
                &[LockType::IFile, LockType::IAuth, LockType::IXattr],
                caps_for_mode(lock_sm::caps::FILE_MODE_RDWR),
            )?;
        }
        self.journal_new_inode(reqid, "mknod", newi)
    }

    /// SYMLINK (§5.2): the lock set of MKDIR; the new inode holds the target and gets no cap.
    pub(crate) fn handle_symlink(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        target: &str,
    ) -> Result<(), LockerError> {
        if target.is_empty() {
            return self.reply_error(reqid, Errno::ENOENT);
        }
        if target.len() > PATH_MAX {
            return self.reply_error(reqid, Errno::ENAMETOOLONG);
        }
        let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        if self.cache.dentry(dn).is_some_and(|d| d.projected_linkage() != Linkage::Null) {
            return self.reply_error(reqid, Errno::EEXIST);
        }
        let data = InodeData {
            mode: S_IFLNK | 0o777,
            nlink: 1,
            size: target.len() as u64,
            symlink: Some(target.to_string()),
            ..InodeData::default()
        };
        let newi = self.create_linked_inode(reqid, dir, dn, data)?;
        self.journal_new_inode(reqid, "symlink", newi)
    }

    /// The non-O_EXCL create of an existing file becomes an OPEN: it already holds the path
    /// locks (here the dentry's xlock, which only orders it behind concurrent creates), gets a
    /// cap for the open mode and replies.
    fn open_existing(&mut self, reqid: ReqId, linkage: Linkage, file_mode: u32) -> Result<(), LockerError> {
        let target = self.linkage_target(linkage);
        let Some(target) = target else {
            return self.reply_error(reqid, Errno::ENOENT);
        };
        if self.cache.inode(target).is_some_and(|n| n.is_dir()) {
            return self.reply_error(reqid, Errno::EISDIR);
        }
        if let Some(client) = self.mutation(reqid)?.client {
            self.add_cap(client, target, caps_for_mode(file_mode))?;
        }
        let ino = self.cache.inode(target).map(|n| n.ino()).unwrap_or(Ino(0));
        self.reply_read(reqid, ino)
    }

    /// Allocates the new inode, projects its link into `dn` and the parent's stats
    /// (`predirty_journal_parents` with PREDIRTY_DIR and a link-count change, one level).
    pub(crate) fn create_linked_inode(
        &mut self,
        reqid: ReqId,
        dir: InodeId,
        dn: DentryId,
        mut data: InodeData,
    ) -> Result<InodeId, LockerError> {
        let is_dir = data.mode & S_IFMT == S_IFDIR;
        let now = self.now_ms();
        // Modelled as the client's preallocated inode range, so early reply stays allowed
        // (§8 fact 58 forbids it only for inode-table allocations).
        // A replayed request gets the number its unsafe reply carried (`expect_replay`).
        let replayed =
            self.replay_inos.get(&reqid).copied().flatten().and_then(|i| self.cache.take_reserved_ino(i));
        let ino = replayed.unwrap_or_else(|| self.cache.alloc_ino());
        data.ctime_ms = now;
        data.mtime_ms = now;
        data.version =
            self.cache.pre_dirty_dentry(dn, 0).ok_or(LockerError::Precondition("dentry vanished"))?;
        let newi = self.cache.insert_inode(ino, data);
        if is_dir {
            self.cache.open_dirfrag(newi, true);
        }
        self.cache.push_projected_linkage(dn, reqid, Linkage::Primary(newi));
        self.note_projection(reqid, Projection::Linkage(dn))?;
        self.predirty_parent(reqid, dir, is_dir, 1, true)?;
        Ok(newi)
    }

    /// `predirty_journal_parents` for one level: the parent dirfrag's fragstat (every entry,
    /// PREDIRTY_DIR) and, for a `primary` link, its rstat (PREDIRTY_PRIMARY), and the parent
    /// inode's dirstat and rstat, folded at once (one auth dirfrag, §4.13). Requires the
    /// parent's filelock and nestlock wrlocks (§8 fact 71). Recursive stats are not propagated
    /// past the parent yet.
    pub(crate) fn predirty_parent(
        &mut self,
        reqid: ReqId,
        dir: InodeId,
        is_dir: bool,
        delta: i64,
        primary: bool,
    ) -> Result<(), LockerError> {
        let m = self.mutation(reqid)?;
        // A rename's source directory whose dirfrag is auth on another rank is wrlocked there
        // (remote wrlocks, `srcdir_wrlocks`).
        let wr = WRLOCK | REMOTE_WRLOCK;
        let local_wr = m.holds(LockId::inode(dir, LockType::IFile), WRLOCK);
        if !m.holds(LockId::inode(dir, LockType::IFile), wr)
            || !m.holds(LockId::inode(dir, LockType::INest), wr)
        {
            return Err(LockerError::Precondition(
                "predirty_journal_parents needs the parent's filelock and nestlock wrlocks",
            ));
        }
        let now = self.now_ms();
        let add = |v: u64| v.saturating_add_signed(delta);
        let frag = self.cache.dirfrag_of(dir);
        // §4.13: the inode's dirstat / rstat are changed directly only when both the inode and
        // the frag are auth here. A leader touching a directory whose frag lives on a witness
        // projects the frag change (the witness's edit is computed from it) but leaves the
        // inode to the fold: folding here too counted the change twice (found by the
        // integration suite: a cross-rank rename out of a pinned directory lowered nfiles by 2).
        let frag_is_auth = self
            .cache
            .dirfrag_of_existing(dir)
            .and_then(|f| self.cache.dirfrag_auth(f))
            .is_none_or(|a| a == self.cache.rank());
        let dir_is_auth = frag_is_auth && self.cache.inode(dir).is_some_and(|n| n.is_auth());
        let fnode =
            self.cache.project_fnode(frag, reqid).ok_or(LockerError::Precondition("dirfrag vanished"))?;
        match (is_dir, primary) {
            (true, true) => {
                fnode.fragstat.nsubdirs = add(fnode.fragstat.nsubdirs);
                fnode.rstat.rsubdirs = add(fnode.rstat.rsubdirs);
            }
            (false, true) => {
                fnode.fragstat.nfiles = add(fnode.fragstat.nfiles);
                fnode.rstat.rfiles = add(fnode.rstat.rfiles);
            }
            // A remote link counts as an entry of its directory, not in recursive stats.
            (true, false) => fnode.fragstat.nsubdirs = add(fnode.fragstat.nsubdirs),
            (false, false) => fnode.fragstat.nfiles = add(fnode.fragstat.nfiles),
        }
        fnode.fragstat.mtime_ms = now;
        fnode.fragstat.change_attr += 1;
        fnode.rstat.rctime_ms = now;
        if !dir_is_auth {
            // §4.13: the directory inode lives on another rank. Its dirstat and rstat are
            // folded there, when the auth gathers this frag's stats through the scatterlocks
            // (SYNCACK / LOCKACK carry them); here the frag only records its own change and
            // marks both scatterlocks dirty so the change is gathered (and nudged).
            self.note_projection(reqid, Projection::Fnode(frag))?;
            // Under remote wrlocks the frag's auth (a witness) marks its own copies; this
            // rank's copies are not wrlocked and its frag copy is never shipped.
            if local_wr {
                for ty in [LockType::IFile, LockType::INest] {
                    self.mark_updated_scatterlock(LockId::inode(dir, ty))?;
                }
            }
            return Ok(());
        }
        fnode.accounted_fragstat = fnode.fragstat;
        fnode.accounted_rstat = fnode.rstat;
        let (fragstat, rstat) = (fnode.fragstat, fnode.rstat);
        self.note_projection(reqid, Projection::Fnode(frag))?;
        let pi = self.cache.project_inode(dir, reqid).ok_or(LockerError::Precondition("parent vanished"))?;
        pi.dirstat = fragstat;
        pi.rstat = rstat;
        pi.mtime_ms = now;
        pi.ctime_ms = now;
        self.cache.pre_dirty_inode(dir);
        self.note_projection(reqid, Projection::Inode(dir))
    }

    /// Puts a new inode's `excl` locks in EXCL with the creator as loner and gives the creator
    /// a cap wanting `wanted` (issued at the end of the event, i.e. with the early reply).
    pub(crate) fn init_new_inode_caps(
        &mut self,
        reqid: ReqId,
        newi: InodeId,
        excl: &[LockType],
        wanted: u32,
    ) -> Result<(), LockerError> {
        let Some(client) = self.mutation(reqid)?.client else {
            return Ok(());
        };
        if let Some(n) = self.cache.inode_mut(newi) {
            n.want_loner = Some(client);
        }
        self.set_loner(newi, Some(client))?;
        for ty in excl {
            // A brand-new inode's initial state, not a transition (both ends stable).
            self.lkm(LockId::inode(newi, *ty))?.state = LockState::Excl;
        }
        self.add_cap(client, newi, wanted)
    }

    /// Journals a create: the parent and dirfrag projections, the dentry link and the new
    /// inode, then early reply / submit (§4.18).
    pub(crate) fn journal_new_inode(
        &mut self,
        reqid: ReqId,
        what: &str,
        newi: InodeId,
    ) -> Result<(), LockerError> {
        let mut changes = self.projected_changes(reqid)?;
        let n = self.cache.inode(newi).ok_or(LockerError::Precondition("new inode vanished"))?;
        let ino = n.ino();
        changes.push(MetaChange::Inode { id: newi, ino, data: n.data().clone() });
        let entry = JournalEntry::update(reqid, what, changes);
        self.journal_and_reply(reqid, entry, Ok(Some(ino)))
    }
}
