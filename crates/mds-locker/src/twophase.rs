//! Two-phase updates across ranks (mds spec §4.17 LINKPREP / RMDIRPREP / RENAMEPREP, FINISH,
//! COMMITTED; §6.1 EPeerUpdate and ECommitted): what a leader tells its witnesses, and what
//! both sides journal.
//!
//! The leader names every change by cross-rank names (`Ino`, directory + dentry name), because
//! cache handles mean nothing on the witness. A witness applies each edit to the copy it has:
//! objects it is auth for are validated against what the leader saw (so a witness whose view
//! diverged refuses to prepare), dentry linkages also on replicas (so the inode a witness is
//! auth for keeps a parent), and dirfrag statistics only where the witness is the frag's auth
//! (replicas' frag stats travel through the scatterlocks, §4.13).

use crate::effects::Errno;
use crate::ids::{Ino, Rank};
use crate::message::DentryLinkage;

/// Which multi-rank operation a two-phase update belongs to (EPeerUpdate's `origop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrigOp {
    /// LINK, and UNLINK of a link whose inode is auth on another rank (Ceph journals both
    /// as a LINK peer update; the prep op says which direction, see `WitnessPrep::prep_op`).
    Link,
    /// RENAME.
    Rename,
    /// RMDIR of a directory whose dirfrag is a subtree root elsewhere.
    Rmdir,
}

impl OrigOp {
    /// The EUpdate / EPeerUpdate type string.
    pub const fn name(self) -> &'static str {
        match self {
            OrigOp::Link => "link_remote",
            OrigOp::Rename => "rename",
            OrigOp::Rmdir => "rmdir",
        }
    }

    /// The peer op that prepares it.
    pub const fn prep_op(self) -> crate::message::PeerOp {
        match self {
            OrigOp::Link => crate::message::PeerOp::LinkPrep,
            OrigOp::Rename => crate::message::PeerOp::RenamePrep,
            OrigOp::Rmdir => crate::message::PeerOp::RmdirPrep,
        }
    }
}

/// One change a witness must make, in cross-rank names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessEdit {
    /// A dentry's new linkage. `expect` is the linkage the leader saw under its xlock: the
    /// dentry's auth refuses to prepare (ENOENT) if its own view differs.
    Link {
        /// Directory.
        dir: Ino,
        /// Name.
        name: String,
        /// New linkage.
        linkage: DentryLinkage,
        /// Linkage before the update.
        expect: DentryLinkage,
    },
    /// An inode's link count and change time (applied by the inode's auth).
    Inode {
        /// The inode.
        ino: Ino,
        /// Link count change.
        nlink_delta: i64,
        /// New change time.
        ctime_ms: u64,
    },
    /// A dirfrag's statistics change (applied by the frag's auth; the directory inode's
    /// dirstat follows where that rank is also the inode's auth).
    Frag {
        /// Directory.
        dir: Ino,
        /// Files change.
        nfiles: i64,
        /// Subdirectories change.
        nsubdirs: i64,
        /// Recursive files change.
        rfiles: i64,
        /// Recursive subdirectories change.
        rsubdirs: i64,
        /// New mtime.
        mtime_ms: u64,
    },
    /// RMDIRPREP: the directory's dirfrags this rank is auth for must be empty.
    Rmdir {
        /// The directory being removed.
        dir: Ino,
    },
}

/// What a *PREP message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPrep {
    /// The operation.
    pub origop: OrigOp,
    /// Every change of the update; each witness applies those it has objects for.
    pub edits: Vec<WitnessEdit>,
}

impl WitnessPrep {
    /// The peer op that carries this prep: a LINK update that takes a link away (an unlink
    /// of a remote link, or a rename over one) is UNLINKPREP (§4.17 "LINKPREP / UNLINKPREP"),
    /// as Ceph's `_link_remote` sends for `inc = false`; the EPeerUpdate's origop stays LINK.
    pub fn prep_op(&self) -> crate::message::PeerOp {
        let drops_a_link = self
            .edits
            .iter()
            .any(|e| matches!(e, WitnessEdit::Inode { nlink_delta, .. } if *nlink_delta < 0));
        match self.origop {
            OrigOp::Link if drops_a_link => crate::message::PeerOp::UnlinkPrep,
            o => o.prep_op(),
        }
    }
}

/// Which phase an EPeerUpdate records (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerPhase {
    /// Prepared: the changes are projected and the rollback is recorded.
    Prepare,
    /// The leader committed: the changes are applied.
    Commit,
    /// The leader aborted: the projection is dropped.
    Rollback,
}

/// The two-phase part of a journal entry: what replay (§6.6) needs to re-register the update
/// and resolve it with the other ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRecord {
    /// The leader's EUpdate of an update with witnesses (`had_peers`): replay must find an
    /// ECommitted for it or ask the witnesses.
    Leader {
        /// The witnesses.
        witnesses: Vec<Rank>,
        /// The operation.
        origop: OrigOp,
    },
    /// A witness's EPeerUpdate.
    Peer {
        /// The leader rank (replay asks it whether the update committed).
        leader: Rank,
        /// The phase.
        phase: PeerPhase,
        /// The operation.
        origop: OrigOp,
        /// PREPARE only: the values before the update, as JSON (`rollback_blob`), opaque to the
        /// journal. Not needed by replay here: a witness applies at commit, so a rolled-back
        /// prepare has nothing to undo (Ceph's witness applies at prepare and undoes with it).
        rollback: Vec<u8>,
    },
    /// The leader's ECommitted: every witness committed, the update is done everywhere.
    Committed,
}

/// Encodes the rollback record of a prepare: the edits with their old values (`expect` of
/// each linkage; the inverse of each count change), as JSON so it stays readable in dumps.
pub fn rollback_blob(edits: &[WitnessEdit]) -> Vec<u8> {
    let link = |l: &DentryLinkage| match l {
        DentryLinkage::Null => serde_json::json!({"null": true}),
        DentryLinkage::Primary(i) => serde_json::json!({"primary": i.0}),
        DentryLinkage::Remote { ino, d_type } => serde_json::json!({"remote": ino.0, "d_type": d_type}),
    };
    let items: Vec<serde_json::Value> = edits
        .iter()
        .map(|e| match e {
            WitnessEdit::Link { dir, name, expect, .. } => {
                serde_json::json!({"dentry": {"dir": dir.0, "name": name, "restore": link(expect)}})
            }
            WitnessEdit::Inode { ino, nlink_delta, .. } => {
                serde_json::json!({"inode": {"ino": ino.0, "nlink_delta": -nlink_delta}})
            }
            WitnessEdit::Frag { dir, nfiles, nsubdirs, rfiles, rsubdirs, .. } => serde_json::json!({
                "frag": {"dir": dir.0, "nfiles": -nfiles, "nsubdirs": -nsubdirs,
                         "rfiles": -rfiles, "rsubdirs": -rsubdirs}
            }),
            WitnessEdit::Rmdir { dir } => serde_json::json!({"rmdir": dir.0}),
        })
        .collect();
    serde_json::to_vec(&items).unwrap_or_default()
}

/// A witness's answer to a prep, carried in `PeerMsg::prep_result`.
pub type PrepResult = Result<(), Errno>;
