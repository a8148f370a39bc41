//! The seam between the Locker and the journal.
//!
//! The Locker only needs to hand the journal "what this mutation changed" and later hear "safe
//! up to seq N". Until `mds-journal`'s `LogEvent` is wired in, the payload is this crate's own
//! `JournalEntry`, built in one place (`JournalEntry::update`) so replacing it is a local change:
//! swap the type behind `Effect::JournalSubmit` and the constructor.

use crate::cache::{Fnode, InodeData, Linkage};
use crate::ids::{DentryId, DirfragId, Ino, InodeId, ReqId};

/// One metadata change carried by a journal entry (the EMetaBlob's role, §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaChange {
    /// An inode's new content.
    Inode {
        /// Cache handle.
        id: InodeId,
        /// Inode number.
        ino: Ino,
        /// New content (version included).
        data: InodeData,
    },
    /// A dentry's new linkage.
    Dentry {
        /// Cache handle.
        id: DentryId,
        /// Directory inode number.
        dir: Ino,
        /// Name.
        name: String,
        /// New linkage.
        linkage: Linkage,
        /// Dentry version.
        version: u64,
    },
    /// A dirfrag's new fnode.
    Dirfrag {
        /// Cache handle.
        id: DirfragId,
        /// Directory inode number.
        dir: Ino,
        /// New fnode.
        fnode: Fnode,
    },
}

/// The journal payload for one mutation (EUpdate-like, §6.1 type 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The client request or internal mutation.
    pub reqid: ReqId,
    /// Ceph's EUpdate type string ("mkdir", "openc", "cap update", …).
    pub description: String,
    /// What changed, in the order it was projected.
    pub changes: Vec<MetaChange>,
}

impl JournalEntry {
    /// An EUpdate-like entry.
    pub fn update(reqid: ReqId, description: &str, changes: Vec<MetaChange>) -> JournalEntry {
        JournalEntry { reqid, description: description.to_string(), changes }
    }
}
