//! UNLINK, RMDIR, LINK and RENAME (mds spec §5.1 `rdlock_two_paths_xlock_destdn`, §5.2,
//! §8 facts 62, 63, 68): the operations that remove or move links.
//!
//! Removing an inode's primary link does not free it: the inode moves to a stray directory
//! of the rank (a dentry named after its inode number in `~mdsN/strayK`), where it stays
//! while clients still hold it open or other (remote) links point at it. That move is why an
//! unlink also wrlocks the stray directory and xlocks the stray dentry, and why both
//! directories' statistics change in one journal entry.
//!
//! LINK and RENAME name two dentries. Both paths are depth 1 (directory inode + name), as
//! clients send them; traversal takes only snaplock rdlocks, and the dentries and their
//! directories are then locked in one vector whose order avoids deadlocks between renames
//! crossing in opposite directions: the shallower directory group first (§8 fact 68), the
//! smaller name first within one directory.

use std::cmp::Ordering;

use lock_sm::LockType;

use crate::cache::{InodeData, Linkage};
use crate::effects::{Errno, FilePath, ReplyData};
use crate::error::LockerError;
use crate::ids::{DentryId, Ino, InodeId, LockId, ObjRef, ReqId};
use crate::journal::JournalEntry;
use crate::lock::WAIT_RD;
use crate::mutation::{LockOp, Projection, RDLOCK, SNAP_LOCKED, SNAP2_LOCKED, XLOCK};
use crate::twophase::{OrigOp, WitnessEdit};

use super::Locker;
use super::server::{NAME_MAX, Step};

/// One dentry of a two-path operation: its directory and itself.
#[derive(Debug, Clone, Copy)]
struct Named {
    dir: InodeId,
    dn: DentryId,
}

impl Locker {
    /// Projects `inode` for this mutation, applies `f`, and gives it its next version from
    /// `via` (the primary dentry it will have) or, if `None`, from its projected parent.
    pub(crate) fn project_inode_with(
        &mut self,
        reqid: ReqId,
        inode: InodeId,
        via: Option<DentryId>,
        f: impl FnOnce(&mut InodeData),
    ) -> Result<(), LockerError> {
        let pi = self.cache.project_inode(inode, reqid).ok_or(LockerError::Precondition("inode vanished"))?;
        f(pi);
        match via {
            Some(dn) => self.cache.pre_dirty_inode_via(inode, Some(dn)),
            None => self.cache.pre_dirty_inode(inode),
        };
        self.note_projection(reqid, Projection::Inode(inode))
    }

    /// Projects a dentry's new linkage at its next version.
    pub(crate) fn project_linkage(
        &mut self,
        reqid: ReqId,
        dn: DentryId,
        linkage: Linkage,
    ) -> Result<(), LockerError> {
        self.cache.pre_dirty_dentry(dn, 0).ok_or(LockerError::Precondition("dentry vanished"))?;
        self.project_linkage_at_current(reqid, dn, linkage)
    }

    /// Projects a dentry's new linkage at the version `pre_dirty_inode_via` just gave it.
    pub(crate) fn project_linkage_at_current(
        &mut self,
        reqid: ReqId,
        dn: DentryId,
        linkage: Linkage,
    ) -> Result<(), LockerError> {
        self.cache
            .push_projected_linkage(dn, reqid, linkage)
            .ok_or(LockerError::Precondition("dentry vanished"))?;
        self.note_projection(reqid, Projection::Linkage(dn))
    }

    /// `prepare_stray_dentry`: the null dentry in one of the rank's stray directories that
    /// will take `inode`'s primary link. Named after the inode number; the stray directory is
    /// chosen by inode number (Ceph rotates through them per log segment; any spread works).
    fn prepare_stray_dentry(&mut self, reqid: ReqId, inode: InodeId) -> Result<DentryId, LockerError> {
        let ino = self.ino_of(inode);
        let strays = self.cache.strays();
        let stray = strays
            .get((ino.0 % strays.len().max(1) as u64) as usize)
            .copied()
            .ok_or(LockerError::Precondition("no stray directories"))?;
        let name = format!("{:x}", ino.0);
        let dn = match self.cache.lookup_dentry(stray, &name) {
            Some(dn) => dn,
            None => self.add_null_dentry_for(reqid, stray, &name)?,
        };
        if self.cache.dentry(dn).is_some_and(|d| d.projected_linkage() != Linkage::Null) {
            return Err(LockerError::Precondition("stray dentry already linked"));
        }
        Ok(dn)
    }

    /// The locks that move `inode`'s primary link into `straydn` (§5.2 UNLINK, RENAME): wrlock
    /// the stray directory's filelock and nestlock, xlock the stray dentry. They come after
    /// everything under the fs root (§4.3 rule 1).
    fn stray_locks(&self, straydn: DentryId) -> Result<Vec<LockOp>, LockerError> {
        let stray = self
            .cache
            .dentry_dir_inode(straydn)
            .ok_or(LockerError::Precondition("stray dentry has no dir"))?;
        Ok(vec![
            LockOp::wr(LockId::inode(stray, LockType::IFile)),
            LockOp::wr(LockId::inode(stray, LockType::INest)),
            LockOp::x(LockId::dentry(straydn, LockType::Dn)),
        ])
    }

    /// UNLINK and RMDIR (§5.2, §8 facts 62, 63): `rdlock_path_xlock_dentry(create = false,
    /// okexist = true)`, then xlock the victim's linklock and snaplock, for RMDIR rdlock its
    /// filelock (its fragstat says whether it is empty), and for a primary link the stray
    /// directory's locks. Project: the dentry goes null, the inode loses a link (and moves to
    /// the stray dentry if this was its primary link), both directories' stats change.
    pub(crate) fn handle_unlink(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        rmdir: bool,
    ) -> Result<(), LockerError> {
        let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, false)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        // The dentry is xlocked by us: its projected linkage is ours to read.
        let linkage = self.cache.dentry(dn).map(|d| d.projected_linkage()).unwrap_or(Linkage::Null);
        let Some(inode) = self.linkage_target(linkage) else {
            return self.reply_error(reqid, Errno::ENOENT);
        };
        let is_dir = self.cache.inode(inode).is_some_and(|n| n.is_dir());
        if rmdir && !is_dir {
            return self.reply_error(reqid, Errno::ENOTDIR);
        }
        if !rmdir && is_dir {
            return self.reply_error(reqid, Errno::EISDIR);
        }
        // An inode another rank is auth for loses its link there: that rank witnesses
        // (UNLINKPREP for a remote link, Ceph's `_link_remote(inc = false)`, §4.17; for a
        // primary link the inode also moves into this rank's stray directory and its auth
        // gets a replica of the stray dentry as its new parent). An rmdir of a directory
        // whose dirfrag is auth elsewhere takes that rank as a witness (RMDIRPREP).
        let inode_elsewhere = !self.cache.inode(inode).is_some_and(|n| n.is_auth());
        let frag_witnesses = if rmdir { self.dirfrag_witnesses(inode) } else { Vec::new() };
        if rmdir && self.cache.dir_has_projected_entries(inode) {
            return self.reply_error(reqid, Errno::ENOTEMPTY);
        }
        let primary = matches!(linkage, Linkage::Primary(_));
        let straydn = if primary { Some(self.prepare_stray_dentry(reqid, inode)?) } else { None };
        let lk = |ty| LockId::inode(inode, ty);
        let mut locks = vec![LockOp::x(lk(LockType::ILink)), LockOp::x(lk(LockType::ISnap))];
        if rmdir {
            locks.push(LockOp::rd(lk(LockType::IFile)));
        }
        if let Some(s) = straydn {
            locks.extend(self.stray_locks(s)?);
        }
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        // Under the filelock rdlock nobody can be adding entries (§7.2 tracker 18708: the
        // fragstat is read only when the lock is readable).
        if rmdir && self.cache.dir_projected_fragstat_nonzero(inode) {
            return self.reply_error(reqid, Errno::ENOTEMPTY);
        }
        let now = self.now_ms();
        tracing::debug!(%reqid, ?inode, primary, rmdir, "unlink: projecting");
        self.project_linkage(reqid, dn, Linkage::Null)?;
        self.project_inode_with(reqid, inode, straydn, |pi| {
            pi.nlink = pi.nlink.saturating_sub(1);
            pi.ctime_ms = now;
        })?;
        if let Some(s) = straydn {
            self.project_linkage_at_current(reqid, s, Linkage::Primary(inode))?;
        }
        self.predirty_parent(reqid, dir, is_dir, -1, primary)?;
        if let Some(stray) = straydn.and_then(|s| self.cache.dentry_dir_inode(s)) {
            self.predirty_parent(reqid, stray, is_dir, 1, true)?;
        }
        let changes = self.projected_changes(reqid)?;
        if !frag_witnesses.is_empty() || inode_elsewhere {
            let dir_ino = self.ino_of(inode);
            let extra =
                frag_witnesses.into_iter().map(|r| (r, Some(WitnessEdit::Rmdir { dir: dir_ino }))).collect();
            let (origop, what) =
                if rmdir { (OrigOp::Rmdir, "rmdir") } else { (OrigOp::Link, "unlink_remote") };
            let entry = JournalEntry::update(reqid, what, changes);
            return self.journal_and_reply_witnessed(reqid, origop, entry, Ok(None), extra);
        }
        self.journal_and_reply(reqid, JournalEntry::update(reqid, "unlink_local", changes), Ok(None))
    }

    /// Traverses one depth-1 path of a two-path operation without path dentry locks (§5.1:
    /// RDLOCK_SNAP or RDLOCK_SNAP2, WANT_DENTRY): rdlock the snaplocks from the directory up,
    /// find (or, for a destination, create a null) dentry, and wait until the dentry is
    /// readable unless this request already locks it. A missing source is ENOENT.
    fn traverse_named(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        snap_bit: u8,
        is_src: bool,
    ) -> Result<Step<Named>, LockerError> {
        let Some(dir) = self.cache.lookup_ino(path.base) else {
            // The search may wait on a dentry lock (`find_ino_unreadable`): not with the other
            // path's snap chain held (simulator `--cross-subtree`, 2 ranks, seed 2624: a rename
            // held the destination's chain while its source's search waited behind a rename
            // that had to xlock a snaplock in that chain).
            let step = self.find_ino_for(reqid, path.base)?;
            if matches!(step, Step::Wait) {
                self.drop_snap_chains(reqid)?;
            }
            return Ok(step);
        };
        if !self.rdlock_snap_chain(reqid, dir, snap_bit)? {
            return Ok(Step::Wait);
        }
        if !self.cache.inode(dir).is_some_and(|n| n.is_dir()) {
            return Ok(Step::Fail(Errno::ENOTDIR));
        }
        let name = &path.components[0];
        if name.len() > NAME_MAX {
            return Ok(Step::Fail(Errno::ENAMETOOLONG));
        }
        let me = self.cache.rank();
        let frag = self.cache.dirfrag_of_existing(dir);
        let frag_is_ours = frag.is_some_and(|f| {
            self.cache.dirfrag_auth(f) == Some(me) && self.cache.dirfrag(f).is_some_and(|x| x.is_complete())
        });
        let dn = match self.cache.lookup_dentry(dir, name) {
            Some(dn) => dn,
            // A source in another rank's dirfrag: ask its auth for a replica (§5.1 discover).
            None if is_src && !frag_is_ours => return self.discover_dentry(reqid, dir, name),
            None if is_src => return Ok(Step::Fail(Errno::ENOENT)),
            None => self.add_null_dentry_for(reqid, dir, name)?,
        };
        if is_src
            && self
                .cache
                .dentry(dn)
                .is_some_and(|d| d.pending_primary.is_some() && d.linkage() == Linkage::Null)
            && !self.resolve_pending_primary(dn)
        {
            // A replica dentry linking an inode this rank has no replica of.
            return self.discover_dentry(reqid, dir, name);
        }
        let dn_lock = LockId::dentry(dn, LockType::Dn);
        let m = self.mutation(reqid)?;
        let client = m.client;
        if !m.holds(dn_lock, RDLOCK | XLOCK) && !self.lk(dn_lock)?.can_read(client) {
            self.drop_snap_chains(reqid)?;
            self.add_waiter(dn_lock, WAIT_RD, reqid)?;
            self.nudge_log(dn_lock)?;
            self.mark_event(reqid, "failed to read dentry, waiting");
            return Ok(Step::Wait);
        }
        let linkage = self.visible_linkage(dn, reqid)?;
        if is_src && linkage == Linkage::Null {
            return Ok(Step::Fail(Errno::ENOENT));
        }
        if let Linkage::Remote { ino, .. } = linkage
            && self.cache.lookup_ino(ino).is_none()
        {
            return self.open_remote_target(reqid, ino);
        }
        Ok(Step::Done(Named { dir, dn }))
    }

    /// §5.1 `path_traverse`: a remote link whose target this rank has no copy of is opened
    /// by inode number (Ceph's `open_remote_dentry`; here `find_ino`, which discovers the
    /// target's primary path). Without it a rename or link of a hard link whose inode lives
    /// in another rank's subtree saw no target and answered ENOENT (simulator,
    /// `--cross-subtree`, 3 ranks, seed 647), and a rename onto such a link would have
    /// replaced it as if it were null. The request waits without its snap chains, as for
    /// any other wait of a two-path traversal (`drop_snap_chains`), and runs again once
    /// the inode is here; a target no rank can find (only linked from a stray) stays
    /// ENOENT, find_ino's documented deviation.
    fn open_remote_target(&mut self, reqid: ReqId, ino: Ino) -> Result<Step<Named>, LockerError> {
        match self.find_ino_for::<Named>(reqid, ino)? {
            Step::Fail(e) => Ok(Step::Fail(e)),
            Step::Done(_) | Step::Wait => {
                self.drop_snap_chains(reqid)?;
                self.mark_event(reqid, "opening a remote link's target");
                Ok(Step::Wait)
            }
        }
    }

    /// The other ranks auth for a directory's dirfrags: witnesses of an rmdir or a rename of
    /// that directory (§5.2: RMDIRPREP / RENAMEPREP to the subtree's ranks).
    pub(crate) fn dirfrag_witnesses(&self, inode: InodeId) -> Vec<crate::ids::Rank> {
        let me = self.cache.rank();
        let mut out: Vec<crate::ids::Rank> = self
            .cache
            .inode(inode)
            .map(|n| n.dirfrags().values().filter_map(|f| self.cache.dirfrag_auth(*f)).collect())
            .unwrap_or_default();
        out.retain(|r| *r != me);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Where a rename or link's destination dentry lives: forward there if that is known
    /// and elsewhere. The source may be on any rank: its auth becomes a witness.
    fn cross_rank_two_paths(
        &mut self,
        reqid: ReqId,
        dest: &FilePath,
    ) -> Result<Option<Step<(Named, Named)>>, LockerError> {
        let me = self.cache.rank();
        let frag_auth = |l: &Locker, dir: Ino| {
            let d = l.cache.lookup_ino(dir)?;
            match l.cache.dirfrag_of_existing(d) {
                Some(f) => l.cache.dirfrag_auth(f),
                None => l.cache.inode(d).map(|n| n.auth()),
            }
        };
        match frag_auth(self, dest.base) {
            Some(a) if a != me => {
                self.forward_request(reqid, a)?;
                return Ok(Some(Step::Wait));
            }
            // Not in cache: the traversal answers ENOENT as on one rank.
            _ => {}
        }
        Ok(None)
    }

    /// Ceph's `compare_paths` for the two directories: by the base their projected walk ends
    /// at (the fs root before `~mdsN`), then by depth.
    fn compare_dirs(&self, a: InodeId, b: InodeId) -> Ordering {
        let (ra, da) = self.cache.projected_root_and_depth(a);
        let (rb, db) = self.cache.projected_root_and_depth(b);
        (self.ino_of(ra), da).cmp(&(self.ino_of(rb), db))
    }

    /// `rdlock_two_paths_xlock_destdn` (§5.1): both traversals, then one lock vector: the
    /// directories' filelock and nestlock wrlocks with the dentry xlocks (the source only
    /// rdlocked for LINK), the shallower directory group first (§8 fact 68).
    fn rdlock_two_paths_xlock_destdn(
        &mut self,
        reqid: ReqId,
        dest: &FilePath,
        src: &FilePath,
        xlock_srcdn: bool,
    ) -> Result<Step<(Named, Named)>, LockerError> {
        if dest.depth() != 1 || src.depth() != 1 {
            return Ok(Step::Fail(Errno::EINVAL));
        }
        let names = [&dest.components[0], &src.components[0]];
        if names.iter().any(|n| *n == "." || *n == "..") {
            return Ok(Step::Fail(if xlock_srcdn { Errno::EINVAL } else { Errno::EEXIST }));
        }
        if let Some(step) = self.cross_rank_two_paths(reqid, dest)? {
            return Ok(step);
        }
        let d = match self.traverse_named(reqid, dest, SNAP_LOCKED, false)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(Step::Wait),
            Step::Fail(e) => return Ok(Step::Fail(e)),
        };
        let s = match self.traverse_named(reqid, src, SNAP2_LOCKED, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(Step::Wait),
            Step::Fail(e) => return Ok(Step::Fail(e)),
        };
        if let Some(e) = self.dir_update_error(d.dir) {
            return Ok(Step::Fail(e));
        }
        if xlock_srcdn && self.is_system_dir(s.dir) {
            return Ok(Step::Fail(Errno::EROFS));
        }
        let dn_x = |n: Named| LockOp::x(LockId::dentry(n.dn, LockType::Dn));
        let src_dn = if xlock_srcdn { dn_x(s) } else { LockOp::rd(LockId::dentry(s.dn, LockType::Dn)) };
        let dir_wr = |dir: InodeId| {
            [LockOp::wr(LockId::inode(dir, LockType::IFile)), LockOp::wr(LockId::inode(dir, LockType::INest))]
        };
        let mut locks = Vec::new();
        if d.dir == s.dir {
            locks.extend(dir_wr(d.dir));
            let dest_name = &dest.components[0];
            let src_name = &src.components[0];
            if dest_name <= src_name {
                locks.extend([dn_x(d), src_dn]);
            } else {
                locks.extend([src_dn, dn_x(d)]);
            }
        } else {
            let mut dest_group = dir_wr(d.dir).to_vec();
            dest_group.push(dn_x(d));
            let mut src_group = if xlock_srcdn { self.srcdir_wrlocks(s).to_vec() } else { Vec::new() };
            src_group.push(src_dn);
            let dest_first = match self.compare_dirs(d.dir, s.dir) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => self.ino_of(d.dir) < self.ino_of(s.dir),
            };
            if dest_first {
                locks.extend(dest_group);
                locks.extend(src_group);
            } else {
                locks.extend(src_group);
                locks.extend(dest_group);
            }
        }
        if !self.acquire_locks(reqid, &locks)? {
            self.drop_snap_chains(reqid)?;
            return Ok(Step::Wait);
        }
        Ok(Step::Done((d, s)))
    }

    /// The source directory's filelock and nestlock wrlocks of a rename (§5.1
    /// `rdlock_two_paths_xlock_destdn`, different directories). Ceph takes them as **remote**
    /// wrlocks on the srcdn's dirfrag auth whenever that is another rank. Only that rank
    /// lists the directory (readdir is served by the dirfrag auth), and the unlink of the
    /// source becomes visible there at the FINISH; a wrlock on this rank's copy instead let
    /// the dirfrag auth's copy return to SYNC through the directory inode's auth (a third
    /// rank) before the FINISH reached it, so a readdir there listed the renamed entry after
    /// the rename was answered (simulator, `--cross-subtree`, 3 ranks, seeds 206, 434, 812).
    /// The UNWRLOCK / DROPLOCKS follows the FINISH on the same connection.
    ///
    /// Deviation: when this rank or the dirfrag auth is also the inode's auth, the wrlocks
    /// stay on this rank's copy. The dirfrag auth's copy then only returns to SYNC by a
    /// message sent after this rank dropped its wrlock, and so after its FINISH (same
    /// connection), which gives the same ordering; and a remote wrlock on the inode's auth
    /// lets that rank's own requests project the directory inode under the shared wrlock
    /// while the witness's projection of it waits for the FINISH, the known flaw of applying
    /// a witness's update at commit (ARCHITECTURE.md), which the sweeps hit far more often
    /// that way (2 ranks, seeds 51, 361, 362).
    fn srcdir_wrlocks(&self, s: Named) -> [LockOp; 2] {
        let me = self.cache.rank();
        let file = LockId::inode(s.dir, LockType::IFile);
        let nest = LockId::inode(s.dir, LockType::INest);
        let dir_auth = self.cache.inode(s.dir).map(|n| n.auth());
        let remote = self
            .cache
            .auth_of(ObjRef::Dentry(s.dn))
            .filter(|a| *a != me && dir_auth.is_some_and(|d| d != me && d != *a));
        match remote {
            Some(auth) => [LockOp::remote_wr(file, auth), LockOp::remote_wr(nest, auth)],
            None => [LockOp::wr(file), LockOp::wr(nest)],
        }
    }

    /// A two-path request does not wait for its dentries and directories while holding its
    /// snaplock rdlocks. They cover the ancestors of *two* directories, so some are deeper
    /// than locks of the other path it waits for: holding them across that wait is out of the
    /// §4.3 order and closes cycles with a rename or unlink that holds the awaited lock and
    /// must xlock one of those snaplocks (directly, or through a traversal queued behind such
    /// an xlock). The chains are re-taken, without waiting, on the retry. The dentry and
    /// directory locks already held are kept: they are taken in order, and giving them back
    /// would let client caps that had to be revoked for them be granted again, so a rename
    /// needing two directories' filelocks could chase revokes forever.
    fn drop_snap_chains(&mut self, reqid: ReqId) -> Result<(), LockerError> {
        let chains: Vec<LockId> = self
            .mutation(reqid)?
            .held()
            .iter()
            .filter(|(l, f)| l.ty == LockType::ISnap && **f & RDLOCK != 0)
            .map(|(l, _)| *l)
            .collect();
        for id in chains {
            self.rdlock_finish(id, reqid)?;
        }
        self.mutation_mut(reqid)?.locking_state &= !(SNAP_LOCKED | SNAP2_LOCKED);
        Ok(())
    }

    /// LINK (§5.2): a remote link at `path` to the inode `target` names. Two-path form: wrlock
    /// the destination directory's filelock and nestlock, xlock the new dentry, rdlock the
    /// source dentry; by-inode form (`target` depth 0): the target's parent snap chain and
    /// `rdlock_path_xlock_dentry` for the destination. Then xlock the target's snaplock and
    /// linklock (its link count changes).
    pub(crate) fn handle_link(
        &mut self,
        reqid: ReqId,
        path: &FilePath,
        target: &FilePath,
    ) -> Result<(), LockerError> {
        if path.depth() != 1 || target.depth() > 1 {
            return self.reply_error(reqid, Errno::EINVAL);
        }
        let (dest, targeti) = if target.depth() == 0 {
            let Some(t) = self.cache.lookup_ino(target.base) else {
                return match self.find_ino_for::<()>(reqid, target.base)? {
                    Step::Fail(e) => self.reply_error(reqid, e),
                    Step::Done(()) | Step::Wait => Ok(()),
                };
            };
            let Some(parent) = self.cache.projected_parent_dir(t) else {
                // A base directory has no parent to link from (and is a directory anyway).
                return self.reply_error(reqid, Errno::EINVAL);
            };
            let (dir, dn) = match self.rdlock_path_xlock_dentry(reqid, path, false)? {
                Step::Done(x) => x,
                Step::Wait => return Ok(()),
                Step::Fail(e) => return self.reply_error(reqid, e),
            };
            // Ceph takes the target's snap chain first; taking it last, and never waiting
            // for it while holding anything (it drops all on failure), keeps these
            // out-of-order rdlocks out of every wait of the destination's locks.
            if !self.rdlock_snap_chain(reqid, parent, SNAP2_LOCKED)? {
                return Ok(());
            }
            (Named { dir, dn }, t)
        } else {
            let (d, s) = match self.rdlock_two_paths_xlock_destdn(reqid, path, target, false)? {
                Step::Done(x) => x,
                Step::Wait => return Ok(()),
                Step::Fail(e) => return self.reply_error(reqid, e),
            };
            let Some(t) = self.linkage_target(self.visible_linkage(s.dn, reqid)?) else {
                return self.reply_error(reqid, Errno::ENOENT);
            };
            (d, t)
        };
        if self.cache.dentry(dest.dn).is_some_and(|d| d.projected_linkage() != Linkage::Null) {
            return self.reply_error(reqid, Errno::EEXIST);
        }
        let Some(tdata) = self.cache.inode(targeti).map(|n| n.projected_data().clone()) else {
            return self.reply_error(reqid, Errno::ENOENT);
        };
        if tdata.is_dir() {
            return self.reply_error(reqid, Errno::EINVAL);
        }
        if tdata.nlink == 0 {
            // Already unlinked everywhere (only reachable by inode number).
            return self.reply_error(reqid, Errno::ENOENT);
        }
        if let Some(e) = self.dir_update_error(dest.dir) {
            return self.reply_error(reqid, e);
        }
        let locks = [
            LockOp::x(LockId::inode(targeti, LockType::ISnap)),
            LockOp::x(LockId::inode(targeti, LockType::ILink)),
        ];
        if !self.acquire_locks(reqid, &locks)? {
            return Ok(());
        }
        let now = self.now_ms();
        let ino = self.ino_of(targeti);
        let d_type = tdata.mode & crate::cache::S_IFMT;
        tracing::debug!(%reqid, %ino, "link: projecting");
        self.project_linkage(reqid, dest.dn, Linkage::Remote { ino, d_type })?;
        self.project_inode_with(reqid, targeti, None, |pi| {
            pi.nlink += 1;
            pi.ctime_ms = now;
        })?;
        self.predirty_parent(reqid, dest.dir, false, 1, false)?;
        let changes = self.projected_changes(reqid)?;
        // LINKPREP to the target's auth if it is elsewhere (§5.2 LINK).
        let entry = JournalEntry::update(reqid, "link_local", changes);
        self.journal_and_reply_witnessed(reqid, OrigOp::Link, entry, Ok(Some(ino)), Vec::new())
    }

    /// §5.1 RENAME `auth_pin_freeze`: a file whose primary link moves here from a dentry
    /// another rank is auth for migrates with it (`migrate`), so its auth freezes it when it
    /// pins it for us; a later pin by another request could otherwise wait for one of our
    /// locks while our RENAMEPREP waits for that pin to go.
    fn note_auth_pin_freeze(
        &mut self,
        reqid: ReqId,
        srclink: Linkage,
        srci: InodeId,
        destdn: DentryId,
    ) -> Result<(), LockerError> {
        let migrates = matches!(srclink, Linkage::Primary(_))
            && self.cache.inode(srci).is_some_and(|n| !n.is_dir() && !n.is_auth())
            && self.cache.is_auth_obj(ObjRef::Dentry(destdn));
        let m = self.mutation_mut(reqid)?;
        m.auth_pin_freeze = migrates.then_some(ObjRef::Inode(srci));
        Ok(())
    }

    /// RENAME (§5.2, §8 facts 59, 68): `rdlock_two_paths_xlock_destdn(xlock_srcdn = true)`,
    /// then xlock the source inode's linklock and snaplock, and if the destination exists its
    /// linklock and snaplock too (plus a filelock rdlock to check that a directory being
    /// replaced is empty), in path order for directories and inode order for files; if the
    /// destination was a primary link its inode moves to a stray dentry. Moving a directory
    /// into its own subtree is EINVAL; renaming a name onto itself, or onto another link of
    /// the same inode, does nothing.
    pub(crate) fn handle_rename(
        &mut self,
        reqid: ReqId,
        dest: &FilePath,
        src: &FilePath,
    ) -> Result<(), LockerError> {
        let same_dentry = dest.base == src.base && dest.components == src.components;
        let (d, s) = match self.rdlock_two_paths_xlock_destdn(reqid, dest, src, true)? {
            Step::Done(x) => x,
            Step::Wait => return Ok(()),
            Step::Fail(e) => return self.reply_error(reqid, e),
        };
        let srclink = self.cache.dentry(s.dn).map(|x| x.projected_linkage()).unwrap_or(Linkage::Null);
        let Some(srci) = self.linkage_target(srclink) else {
            tracing::debug!(%reqid, ?srclink, pending = ?self.cache.dentry(s.dn).and_then(|x| x.pending_primary), "rename: the source links nothing");
            return self.reply_error(reqid, Errno::ENOENT);
        };
        let destlink = self.cache.dentry(d.dn).map(|x| x.projected_linkage()).unwrap_or(Linkage::Null);
        let oldin = self.linkage_target(destlink);
        if same_dentry || oldin == Some(srci) {
            let ino = self.ino_of(srci);
            return self.reply_done(reqid, Some(ino), ReplyData::None);
        }
        let src_is_dir = self.cache.inode(srci).is_some_and(|n| n.is_dir());
        if src_is_dir && self.cache.is_projected_ancestor(srci, d.dir) {
            return self.reply_error(reqid, Errno::EINVAL);
        }
        // A replaced inode auth on another rank loses its link there: that rank witnesses
        // (Ceph adds `oldin->authority().first` to the witnesses of a rename over a remote
        // link; over a primary link the inode also moves into this rank's stray directory and
        // its auth gets a replica of the stray dentry, see `witness_plan`).
        let old_is_dir = oldin.is_some_and(|o| self.cache.inode(o).is_some_and(|n| n.is_dir()));
        if let Some(o) = oldin {
            if old_is_dir && !src_is_dir {
                return self.reply_error(reqid, Errno::EISDIR);
            }
            if !old_is_dir && src_is_dir {
                return self.reply_error(reqid, Errno::ENOTDIR);
            }
            if old_is_dir && self.cache.dir_has_projected_entries(o) {
                return self.reply_error(reqid, Errno::ENOTEMPTY);
            }
        }
        let dest_primary = matches!(destlink, Linkage::Primary(_));
        let straydn = match oldin {
            Some(o) if dest_primary => Some(self.prepare_stray_dentry(reqid, o)?),
            _ => None,
        };
        let inode_locks = |i: InodeId| {
            [LockOp::x(LockId::inode(i, LockType::ILink)), LockOp::x(LockId::inode(i, LockType::ISnap))]
        };
        let mut locks: Vec<LockOp> = inode_locks(srci).to_vec();
        if let Some(o) = oldin {
            let mut old = inode_locks(o).to_vec();
            if old_is_dir {
                old.push(LockOp::rd(LockId::inode(o, LockType::IFile)));
            }
            let old_first = if old_is_dir {
                match self.compare_dirs(d.dir, s.dir) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => self.ino_of(o) < self.ino_of(srci),
                }
            } else {
                self.ino_of(o) < self.ino_of(srci)
            };
            if old_first {
                old.extend(locks);
                locks = old;
            } else {
                locks.extend(old);
            }
        }
        if let Some(sdn) = straydn {
            locks.extend(self.stray_locks(sdn)?);
        }
        self.note_auth_pin_freeze(reqid, srclink, srci, d.dn)?;
        if !self.acquire_locks(reqid, &locks)? {
            if src_is_dir {
                // A rename that must wait for the renamed (or replaced) inode's linklock / snaplock
                // xlock gives back its two traversals' snaplock rdlocks first, as it does for every
                // other wait of a two-path request (`drop_snap_chains`). The destination chain holds
                // the destination directory's snaplock, which is deeper than the source inode whose
                // snaplock we now wait for whenever the two directories are siblings: two renames
                // crossing over (X into Y and Y into X, each led by a different rank) each held the
                // other's awaited snaplock rdlocked and waited for ever (simulator `--cross-subtree`,
                // 2 ranks seed 482, 3 ranks seed 374). Ceph breaks such out-of-order waits the same
                // way: a non-blocking snap rdlock that fails drops everything and waits (§4.4
                // `rdlock_try_set`, §5.1 step 2), and Squid+ drops all locks before waiting on a lock
                // ordered before held ones (§4.4 phase D quiescelock rule). The chains are re-taken
                // without waiting on the retry; a failure there drops all locks (`rdlock_snap_chain`).
                // Only a directory's snaplock can be in another request's chain, so a file rename
                // keeps its chains (and its behaviour) as before. Deviation (smaller than Ceph's
                // drop-all): the dentry and directory locks stay held, for the reason given at
                // `drop_snap_chains`.
                self.drop_snap_chains(reqid)?;
            }
            return Ok(());
        }
        if let Some(o) = oldin
            && old_is_dir
            && self.cache.dir_projected_fragstat_nonzero(o)
        {
            return self.reply_error(reqid, Errno::ENOTEMPTY);
        }
        let now = self.now_ms();
        let src_primary = matches!(srclink, Linkage::Primary(_));
        tracing::debug!(%reqid, ?srci, ?oldin, "rename: projecting");
        self.project_linkage(reqid, s.dn, Linkage::Null)?;
        if let Some(o) = oldin {
            self.project_inode_with(reqid, o, straydn, |pi| {
                pi.nlink = pi.nlink.saturating_sub(1);
                pi.ctime_ms = now;
            })?;
            if let Some(sdn) = straydn {
                self.project_linkage_at_current(reqid, sdn, Linkage::Primary(o))?;
            }
        }
        if src_primary {
            self.project_inode_with(reqid, srci, Some(d.dn), |pi| pi.ctime_ms = now)?;
            self.project_linkage_at_current(reqid, d.dn, srclink)?;
        } else {
            self.project_linkage(reqid, d.dn, srclink)?;
            self.project_inode_with(reqid, srci, None, |pi| pi.ctime_ms = now)?;
        }
        self.predirty_parent(reqid, s.dir, src_is_dir, -1, src_primary)?;
        self.predirty_parent(reqid, d.dir, src_is_dir, 1, src_primary)?;
        if oldin.is_some() {
            self.predirty_parent(reqid, d.dir, old_is_dir, -1, dest_primary)?;
        }
        if let Some(stray) = straydn.and_then(|x| self.cache.dentry_dir_inode(x)) {
            self.predirty_parent(reqid, stray, old_is_dir, 1, true)?;
        }
        let ino = self.ino_of(srci);
        let changes = self.projected_changes(reqid)?;
        // RENAMEPREP to the srcdn / srci auths and the renamed directory's subtree ranks; a
        // replaced directory's subtree ranks check that it is empty.
        let mut extra: Vec<(crate::ids::Rank, Option<WitnessEdit>)> =
            self.dirfrag_witnesses(srci).into_iter().map(|r| (r, None)).collect();
        if let Some(o) = oldin.filter(|_| old_is_dir) {
            let dir = self.ino_of(o);
            extra
                .extend(self.dirfrag_witnesses(o).into_iter().map(|r| (r, Some(WitnessEdit::Rmdir { dir }))));
        }
        let entry = JournalEntry::update(reqid, "rename", changes);
        self.journal_and_reply_witnessed(reqid, OrigOp::Rename, entry, Ok(Some(ino)), extra)
    }
}
