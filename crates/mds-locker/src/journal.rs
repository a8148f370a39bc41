//! The seam between the Locker and the journal.
//!
//! The Locker only needs to hand the journal "what this mutation changed" and later hear "safe
//! up to seq N". The payload stays this crate's own `JournalEntry` (keyed by cache handles, so
//! the sans-I/O Locker needs no encoder); `crate::wire` is the single mapping to and from
//! `mds-journal`'s `LogEvent::Update`, and `crate::runtime` carries it to the device.

use crate::cache::{Fnode, InodeData, Linkage};
use crate::effects::Errno;
use crate::ids::{ClientId, DentryId, DirfragId, Ino, InodeId, ReqId};

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
    /// For a two-phase update across ranks: which record this is (the leader's EUpdate with
    /// peers, a witness's EPeerUpdate, the leader's ECommitted). `None` for a plain EUpdate.
    pub peer: Option<crate::twophase::PeerRecord>,
}

impl JournalEntry {
    /// An EUpdate-like entry.
    pub fn update(reqid: ReqId, description: &str, changes: Vec<MetaChange>) -> JournalEntry {
        JournalEntry { reqid, description: description.to_string(), changes, peer: None }
    }
}

/// What a journaled client write's safe reply will say: what the driver journals with the
/// entry so the completed-request table can be rebuilt by replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournaledReply {
    /// The client that sent the request.
    pub client: ClientId,
    /// The request id.
    pub reqid: ReqId,
    /// The reply's result as the Locker will send it.
    pub result: Result<Option<Ino>, Errno>,
    /// The inode the request created (create, mkdir, mknod, symlink), which is all of the
    /// reply that replay restores besides success.
    pub created: Option<Ino>,
}
