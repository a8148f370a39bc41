//! A rename's witness that lacks the dentry about to become the primary link of an inode it
//! is auth for: it discovers that dentry before it prepares (mds spec §4.17, §5.1).
//!
//! A renamed directory stays auth where it was (`witness` module notes), so its auth must
//! end up with a replica of its new primary dentry, or it keeps an inode with no parent.
//! The leader sends that replica ahead of the prep when it can (`replicate_if_attachable`).
//! It cannot when a parent on the path is another rank's object the witness may lack: a
//! replica can only come from its auth, and the leader does not know what the witness
//! holds. Typically the destination directory's dirfrag is a subtree root whose inode is
//! auth on a third rank, and the witness restarted and lost its replicas. Sending the
//! dirfrag anyway made the witness fail with "dirfrag replica before its inode" (simulator
//! `--cross-subtree`, 3 ranks, faults `all,torn,eio,rank-crash`, seeds 610 and 875).
//!
//! Ceph's witness traverses the destination path itself with discover, and if it lacks the
//! path's base inode it searches for it with `find_ino_peers`, retrying the prep when the
//! answers come. Here the witness does the same. It finds the directory inode with the
//! `find_ino` search and the dentry with a §5.1 discover to its dirfrag's auth. The prep
//! waits in `TwoPhase::fetching` meanwhile, and it is handled again, as if it had just
//! arrived, each time the peer request is woken.
//!
//! Every wait ends: a discover is answered, and a search is bounded. A prep is re-run at
//! most `MAX_FETCH_RUNS` times. After that, or when the search or discover fails, the
//! witness prepares without the dentry, as it did before this existed (`witness_project`
//! skips a dentry it does not have), and says so in a warning.

use crate::error::LockerError;
use crate::ids::{ObjRef, Rank, ReqId};
use crate::message::{DentryLinkage, PeerMsg};
use crate::twophase::WitnessEdit;

use super::Locker;
use super::server::Step;

/// Times one prep may be handled again while its witness fetches dentries. Each run either
/// parks on an answer still to come or moves on, so this is far more than a fetch needs.
pub(crate) const MAX_FETCH_RUNS: u32 = 32;

/// A prep that waits for its witness to fetch dentries.
#[derive(Debug, Clone)]
pub(crate) struct FetchingPrep {
    from: Rank,
    msg: PeerMsg,
    runs: u32,
}

impl Locker {
    /// Before a prep is checked: if the witness lacks the new primary dentry of an inode it
    /// is auth for, starts fetching it, parks the prep, and returns true.
    pub(crate) fn witness_fetch_parents(
        &mut self,
        reqid: ReqId,
        from: Rank,
        msg: &PeerMsg,
        edits: &[WitnessEdit],
    ) -> Result<bool, LockerError> {
        // An exported inode becomes a replica of the leader's, which links it by number.
        if self.migrate.exports_for(reqid) {
            return Ok(false);
        }
        let runs = self.twophase.fetching.remove(&reqid).map_or(0, |f| f.runs);
        if runs >= MAX_FETCH_RUNS {
            tracing::warn!(rank = self.cache.rank(), %reqid, "gave up fetching the renamed inode's new parent; preparing without it");
            return Ok(false);
        }
        for e in edits {
            let WitnessEdit::Link { dir, name, linkage: DentryLinkage::Primary(ino), .. } = e else {
                continue;
            };
            let ours = self.cache.lookup_ino(*ino).is_some_and(|i| self.cache.is_auth_obj(ObjRef::Inode(i)));
            if !ours {
                continue;
            }
            let step = match self.cache.lookup_ino(*dir) {
                Some(d) if self.cache.lookup_dentry(d, name).is_some() => continue,
                Some(d) => self.discover_dentry::<()>(reqid, d, name)?,
                None => self.find_ino_for::<()>(reqid, *dir)?,
            };
            match step {
                Step::Wait => {
                    tracing::debug!(rank = self.cache.rank(), %reqid, %dir, name = %name, "witness fetches the new parent of an inode it is auth for");
                    self.mark_event(reqid, "witness fetching new parent dentry");
                    self.twophase
                        .fetching
                        .insert(reqid, FetchingPrep { from, msg: msg.clone(), runs: runs + 1 });
                    return Ok(true);
                }
                Step::Fail(e) => {
                    tracing::warn!(rank = self.cache.rank(), %reqid, %dir, name = %name, errno = ?e, "could not fetch the renamed inode's new parent; preparing without it");
                }
                Step::Done(()) => {}
            }
        }
        Ok(false)
    }

    /// The peer request `reqid` was woken: if its prep waits for a fetch, handle the prep
    /// again. Returns whether it did.
    pub(crate) fn retry_fetching_prep(&mut self, reqid: ReqId) -> Result<bool, LockerError> {
        let Some(f) = self.twophase.fetching.get(&reqid) else {
            return Ok(false);
        };
        let (from, msg) = (f.from, f.msg.clone());
        if self.requests.get(&reqid).is_none_or(|m| m.peer_of != Some(from)) {
            self.twophase.fetching.remove(&reqid);
            return Ok(true);
        }
        self.mark_event(reqid, "witness fetch woke; preparing again");
        self.witness_prep(from, msg)?;
        Ok(true)
    }
}
