//! The mapping between the Locker's journal payload and `mds-journal`'s `LogEvent::Update`.
//!
//! The Locker stays sans-I/O and speaks `JournalEntry` (a list of `MetaChange`s keyed by cache
//! handles). The journal on the device speaks Ceph's EUpdate with an EMetaBlob (mds §6.1,
//! §6.2 step 3). This module is the one place where the two meet, so the mapping is explicit:
//!
//! | `MetaChange`                         | EMetaBlob                                                   |
//! |--------------------------------------|-------------------------------------------------------------|
//! | `Dirfrag { dir, fnode }`             | dir lump `(dir, frag)` with the fnode, state `DIRTY`        |
//! | `Dentry { linkage: Null }`           | `NullDentry` in the dir's lump                              |
//! | `Dentry { linkage: Remote }`         | `RemoteDentry` (d_type = `mode >> 12`, Ceph's `IFTODT`)     |
//! | `Dentry { linkage: Primary(i) }`     | `FullDentry` with `i`'s inode, state `DIRTY | DIRTY_PARENT` |
//! | `Inode` of a non-base inode          | `FullDentry` under its (projected) primary dentry, `DIRTY`  |
//! | `Inode` of a base inode (root, ~mds) | `roots` entry (empty name), `DIRTY`                         |
//! | ancestry of a lump's directory whose dirfrag is another rank's | `FullDentry` per ancestor up to the root, state `0` (clean: context only) |
//! | request id / client                  | `EUpdate.reqid` and `client_reqs` (so replay can re-register it, §6.6) |
//! | inode a client request created       | `used_preallocated_ino` + `client_name` (the Locker allocates as from the client's preallocated range) |
//!
//! Directory context (Ceph's `EMetaBlob::add_dir_context`): a change in a directory whose
//! dirfrag is another rank's (a replica dentry a rename or link relinks, the primary dentry of
//! a renamed directory whose inode stayed auth here) is journaled with the dentries that lead
//! to that directory from the root, clean (state `0`). A restarted rank's replay has no other
//! way to place the directory: its subtree map only names the ancestry of its own subtree
//! roots (simulator `--cross-subtree`, 2 ranks, faults `all,torn,eio,rank-crash`, seed 1060:
//! a link leader's journal named the target's directory `/t0`, another rank's, and replay
//! stopped with "names a cache object that is gone"). Replay uses a clean entry only to create
//! what is missing (`ReplayChange::Context`); it never overwrites. Ceph adds the context for
//! every lump up to a subtree root; here lumps in this rank's own dirfrags get none, as their
//! ancestry is in the journal already (the subtree map and the updates that made them).
//!
//! Two-phase updates across ranks (`JournalEntry::peer`, mds §4.17, §6.1): the leader's entry
//! is an EUpdate with `had_peers`; a witness's PREPARE / COMMIT / ROLLBACK is an EPeerUpdate
//! with the leader's request id (client `0` when the entry has no client), the leader's rank,
//! the operation, the same metablob mapping as an EUpdate (`commit`) and, for PREPARE, the
//! rollback record; the leader's "all witnesses committed" is an ECommitted. That is what
//! replay of an uncommitted peer update (§6.6) needs; `recovery` replays and resolves them.
//!
//! Sessions travel as ESession events (`session_event`): open when a client's session opens,
//! close when it is evicted. With `client_reqs` and the created inode, that is what replay
//! needs to rebuild every session's completed-request table (`completed_requests`).
//!
//! Ceph journals a dirty inode together with its primary dentry (`journal_dirty_inode`), so an
//! inode change always travels inside a `FullDentry`; `DIRTY_PARENT` (Ceph: "the backtrace
//! changed", which is exactly when the primary linkage changed) marks the ones whose linkage is
//! itself part of the update. Times are kept in milliseconds in the cache and as `utime` on
//! the wire; a symlink target of `""` means "not a symlink" (POSIX forbids empty targets).

use mds_journal::metablob::{dir_state, full_state};
use mds_journal::{
    CEPH_NOSNAP, DirFrag, ESession, EUpdate, Frag, FragInfo, FullDentry, InodeNo, LogEvent, MetaBlob,
    MetaReqId, NestInfo, NullDentry, RemoteDentry,
};
use rados_store::{EntityAddr, EntityName, EntityType, UTime};

use crate::cache::{Cache, DirStat, Fnode, InodeData, Linkage, NestStat};
use crate::ids::{ClientId, Ino, ReqId};
use crate::journal::{JournalEntry, MetaChange};
use crate::twophase::{OrigOp, PeerPhase, PeerRecord};
use mds_journal::{ECommitted, EPeerUpdate, PeerOp as JPeerOp, PeerOrigOp};

/// Why a journal event could not be mapped to or from the Locker's view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The change names a cache object that no longer exists.
    #[error("journal entry names a cache object that is gone: {0}")]
    MissingObject(String),
    /// The event is not an EUpdate.
    #[error("not an EUpdate: {0}")]
    NotUpdate(String),
    /// A counter on the wire is negative where the cache keeps it unsigned.
    #[error("negative {field} in journaled metadata: {value}")]
    Negative {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
}

fn ms_to_utime(ms: u64) -> UTime {
    UTime::from_duration(std::time::Duration::from_millis(ms))
}

fn utime_to_ms(t: UTime) -> u64 {
    u64::try_from(t.as_duration().as_millis()).unwrap_or(u64::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(field: &'static str, value: i64) -> Result<u64, WireError> {
    u64::try_from(value).map_err(|_| WireError::Negative { field, value })
}

fn frag_info(s: &DirStat) -> FragInfo {
    FragInfo {
        version: 0,
        mtime: ms_to_utime(s.mtime_ms),
        nfiles: to_i64(s.nfiles),
        nsubdirs: to_i64(s.nsubdirs),
        change_attr: s.change_attr,
    }
}

fn dir_stat(f: &FragInfo) -> Result<DirStat, WireError> {
    Ok(DirStat {
        nfiles: to_u64("nfiles", f.nfiles)?,
        nsubdirs: to_u64("nsubdirs", f.nsubdirs)?,
        mtime_ms: utime_to_ms(f.mtime),
        change_attr: f.change_attr,
    })
}

fn nest_info(s: &NestStat) -> NestInfo {
    NestInfo {
        version: 0,
        rctime: ms_to_utime(s.rctime_ms),
        rbytes: to_i64(s.rbytes),
        rfiles: to_i64(s.rfiles),
        rsubdirs: to_i64(s.rsubdirs),
        rsnaps: 0,
    }
}

fn nest_stat(n: &NestInfo) -> Result<NestStat, WireError> {
    Ok(NestStat {
        rbytes: to_u64("rbytes", n.rbytes)?,
        rfiles: to_u64("rfiles", n.rfiles)?,
        rsubdirs: to_u64("rsubdirs", n.rsubdirs)?,
        rctime_ms: utime_to_ms(n.rctime),
    })
}

pub(crate) fn wire_fnode(f: &Fnode) -> mds_journal::Fnode {
    mds_journal::Fnode {
        version: f.version,
        fragstat: frag_info(&f.fragstat),
        accounted_fragstat: frag_info(&f.accounted_fragstat),
        rstat: nest_info(&f.rstat),
        accounted_rstat: nest_info(&f.accounted_rstat),
    }
}

/// The cache's fnode for a journaled one.
pub fn cache_fnode(f: &mds_journal::Fnode) -> Result<Fnode, WireError> {
    Ok(Fnode {
        version: f.version,
        fragstat: dir_stat(&f.fragstat)?,
        accounted_fragstat: dir_stat(&f.accounted_fragstat)?,
        rstat: nest_stat(&f.rstat)?,
        accounted_rstat: nest_stat(&f.accounted_rstat)?,
    })
}

fn wire_inode(ino: Ino, d: &InodeData) -> mds_journal::Inode {
    mds_journal::Inode {
        ino: InodeNo(ino.0),
        mode: d.mode,
        uid: d.uid,
        gid: d.gid,
        nlink: d.nlink,
        size: d.size,
        truncate_seq: 0,
        ctime: ms_to_utime(d.ctime_ms),
        mtime: ms_to_utime(d.mtime_ms),
        atime: UTime::ZERO,
        btime: UTime::ZERO,
        change_attr: 0,
        version: d.version,
        xattr_version: d.xattr_version,
        dirstat: frag_info(&d.dirstat),
        rstat: nest_info(&d.rstat),
        accounted_rstat: NestInfo::default(),
    }
}

/// The cache's inode content for a journaled `FullDentry` (inode, xattrs, symlink).
pub fn cache_inode(f: &FullDentry) -> Result<(Ino, InodeData), WireError> {
    let i = &f.inode;
    let data = InodeData {
        version: i.version,
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        mtime_ms: utime_to_ms(i.mtime),
        ctime_ms: utime_to_ms(i.ctime),
        nlink: i.nlink,
        xattrs: f.xattrs.clone(),
        xattr_version: i.xattr_version,
        dirstat: dir_stat(&i.dirstat)?,
        rstat: nest_stat(&i.rstat)?,
        symlink: if f.symlink.is_empty() { None } else { Some(f.symlink.clone()) },
    };
    Ok((Ino(i.ino.0), data))
}

pub(crate) fn full_dentry(name: &str, version: u64, ino: Ino, d: &InodeData, state: u32) -> FullDentry {
    FullDentry {
        name: name.to_string(),
        first: 2,
        last: CEPH_NOSNAP,
        version,
        inode: wire_inode(ino, d),
        xattrs: d.xattrs.clone(),
        symlink: d.symlink.clone().unwrap_or_default(),
        dirfragtree: Vec::new(),
        state,
    }
}

fn dirfrag_key(dir: Ino) -> DirFrag {
    // One frag per directory (frag 0 = the whole directory) is all the cache opens today.
    DirFrag { ino: InodeNo(dir.0), frag: Frag(0) }
}

/// The dir lump for `dir`, created with the directory's current projected fnode when the entry
/// does not carry a fnode change of its own (Ceph always journals the parent dirfrag of a
/// journaled dentry).
fn lump<'a>(blob: &'a mut MetaBlob, cache: &Cache, dir: Ino) -> &'a mut mds_journal::DirLump {
    let key = dirfrag_key(dir);
    if let Some(i) = blob.dirs.iter().position(|(df, _)| *df == key) {
        return &mut blob.dirs[i].1;
    }
    let fnode = cache
        .lookup_ino(dir)
        .and_then(|i| cache.inode(i))
        .and_then(|i| i.dirfrags().get(&0).copied())
        .and_then(|f| cache.dirfrag(f))
        .map(|f| wire_fnode(f.projected_fnode()))
        .unwrap_or_default();
    blob.dirs.push((key, mds_journal::DirLump { fnode, state: 0, ..Default::default() }));
    let last = blob.dirs.len() - 1;
    &mut blob.dirs[last].1
}

/// Adds the clean ancestry of every lump whose dirfrag is not this rank's (module notes).
fn add_dir_context(blob: &mut MetaBlob, cache: &Cache) {
    let me = cache.rank();
    let foreign: Vec<Ino> = blob
        .dirs
        .iter()
        .map(|(df, _)| Ino(df.ino.0))
        .filter(|dir| {
            cache
                .lookup_ino(*dir)
                .and_then(|i| cache.dirfrag_of_existing(i))
                .and_then(|f| cache.dirfrag_auth(f))
                .is_some_and(|a| a != me)
        })
        .collect();
    for dir in foreign {
        let mut cur = cache.lookup_ino(dir);
        for _ in 0..crate::cache::MAX_DEPTH {
            let Some(id) = cur else { break };
            let Some(n) = cache.inode(id) else { break };
            let Some(dn) = n.parent().or(n.projected_parent()) else { break };
            let (Some(d), Some(pdir)) =
                (cache.dentry(dn), cache.dentry_dir_inode(dn).and_then(|p| cache.inode(p)).map(|p| p.ino()))
            else {
                break;
            };
            let l = lump(blob, cache, pdir);
            let named = l.full.iter().any(|f| f.name == d.name())
                || l.remote.iter().any(|r| r.name == d.name())
                || l.null.iter().any(|x| x.name == d.name());
            if !named {
                l.full.push(full_dentry(d.name(), d.version(), n.ino(), n.data(), 0));
            }
            cur = cache.dentry_dir_inode(dn);
        }
    }
}

/// The wire request id: Ceph's `metareqid_t` is `(client.N, tid)`; the Locker's request ids
/// are already unique per rank, so the tid is the `ReqId` itself.
pub fn meta_reqid(client: ClientId, reqid: ReqId) -> MetaReqId {
    MetaReqId { name: EntityName::client(client), tid: reqid.0 }
}

/// Builds the EUpdate for `entry` (see the module table). `cache` must still hold the entry's
/// projections (call before `Event::JournalSafe` for it), because a primary linkage names its
/// inode by handle and an inode change needs its primary dentry's name. `client` is `None`
/// for the Locker's internal mutations, which carry no client request id.
pub fn to_log_event(
    entry: &JournalEntry,
    cache: &Cache,
    client: Option<ClientId>,
) -> Result<LogEvent, WireError> {
    let mut blob = MetaBlob::default();
    // Inode contents in this entry, by handle: a primary linkage takes its inode from here
    // (the projected value this mutation made) before falling back to the cache.
    let inode_of = |id| {
        entry.changes.iter().rev().find_map(|c| match c {
            MetaChange::Inode { id: i, ino, data } if *i == id => Some((*ino, data.clone())),
            _ => None,
        })
    };
    let mut primary_written = Vec::new();
    for c in &entry.changes {
        match c {
            MetaChange::Dirfrag { dir, fnode, .. } => {
                blob.add_dir(dirfrag_key(*dir), wire_fnode(fnode), dir_state::DIRTY);
            }
            MetaChange::Dentry { dir, name, linkage, version, .. } => match *linkage {
                Linkage::Null => lump(&mut blob, cache, *dir).null.push(NullDentry {
                    name: name.clone(),
                    first: 2,
                    last: CEPH_NOSNAP,
                    version: *version,
                    dirty: true,
                }),
                Linkage::Remote { ino, d_type } => lump(&mut blob, cache, *dir).remote.push(RemoteDentry {
                    name: name.clone(),
                    first: 2,
                    last: CEPH_NOSNAP,
                    version: *version,
                    ino: InodeNo(ino.0),
                    d_type: u8::try_from(d_type >> 12).unwrap_or(0),
                    dirty: true,
                }),
                Linkage::Primary(id) => {
                    let (ino, data) = match inode_of(id) {
                        Some(x) => x,
                        None => {
                            let n =
                                cache.inode(id).ok_or_else(|| WireError::MissingObject(format!("{id:?}")))?;
                            (n.ino(), n.projected_data().clone())
                        }
                    };
                    let fd =
                        full_dentry(name, *version, ino, &data, full_state::DIRTY | full_state::DIRTY_PARENT);
                    lump(&mut blob, cache, *dir).full.push(fd);
                    primary_written.push(id);
                }
            },
            MetaChange::Inode { .. } => {}
        }
    }
    for c in &entry.changes {
        let MetaChange::Inode { id, ino, data } = c else { continue };
        if primary_written.contains(id) {
            continue;
        }
        primary_written.push(*id);
        let n = cache.inode(*id).ok_or_else(|| WireError::MissingObject(format!("{id:?}")))?;
        match n.projected_parent().and_then(|dn| cache.dentry(dn).map(|d| (dn, d))) {
            Some((dn, d)) => {
                let dir = cache
                    .dentry_dir_inode(dn)
                    .and_then(|i| cache.inode(i))
                    .map(|i| i.ino())
                    .ok_or_else(|| WireError::MissingObject(format!("{dn:?}")))?;
                let fd = full_dentry(d.name(), d.projected_version(), *ino, data, full_state::DIRTY);
                lump(&mut blob, cache, dir).full.push(fd);
            }
            None => blob.roots.push(full_dentry("", 0, *ino, data, full_state::DIRTY)),
        }
    }
    add_dir_context(&mut blob, cache);
    let reqid = client.map(|c| meta_reqid(c, entry.reqid));
    match &entry.peer {
        Some(PeerRecord::Peer { leader, phase, origop, rollback }) => {
            return Ok(LogEvent::PeerUpdate(EPeerUpdate {
                stamp: UTime::ZERO,
                op_type: entry.description.clone(),
                reqid: reqid.unwrap_or_else(|| meta_reqid(0, entry.reqid)),
                leader: i32::try_from(*leader).unwrap_or(i32::MAX),
                op: match phase {
                    PeerPhase::Prepare => JPeerOp::Prepare,
                    PeerPhase::Commit => JPeerOp::Commit,
                    PeerPhase::Rollback => JPeerOp::Rollback,
                },
                origop: wire_origop(*origop),
                commit: blob,
                rollback: rollback.clone(),
            }));
        }
        Some(PeerRecord::Committed) => {
            return Ok(LogEvent::Committed(ECommitted {
                stamp: UTime::ZERO,
                reqid: reqid.unwrap_or_else(|| meta_reqid(0, entry.reqid)),
            }));
        }
        Some(PeerRecord::Leader { .. }) | None => {}
    }
    if let Some(r) = reqid {
        blob.client_reqs.push((r, 0));
    }
    Ok(LogEvent::Update(EUpdate {
        stamp: UTime::ZERO,
        op_type: entry.description.clone(),
        metablob: blob,
        cmapv: 0,
        reqid,
        had_peers: matches!(entry.peer, Some(PeerRecord::Leader { .. })),
    }))
}

/// EPeerUpdate's `origop` for a two-phase update.
fn wire_origop(o: OrigOp) -> PeerOrigOp {
    match o {
        OrigOp::Link => PeerOrigOp::Link,
        OrigOp::Rename => PeerOrigOp::Rename,
        OrigOp::Rmdir => PeerOrigOp::Rmdir,
    }
}

/// `to_log_event` plus what the completed-request table keeps of the reply (mds §6.6): the
/// inode a client request created goes into `used_preallocated_ino` with the client as
/// `client_name`, as Ceph journals an inode taken from the client's preallocated range (the
/// Locker's allocation is modelled as that range, so early replies stay allowed, §8 fact 58).
pub fn to_log_event_with_created(
    entry: &JournalEntry,
    cache: &Cache,
    client: Option<ClientId>,
    created: Option<Ino>,
) -> Result<LogEvent, WireError> {
    let mut ev = to_log_event(entry, cache, client)?;
    if let (LogEvent::Update(u), Some(c), Some(ino)) = (&mut ev, client, created) {
        u.metablob.used_preallocated_ino = InodeNo(ino.0);
        u.metablob.client_name = Some(EntityName::client(c));
    }
    Ok(ev)
}

/// The ESession that records `client`'s session opening (`open`) or closing. Clients here
/// have no network address, so the address is the unspecified one.
pub fn session_event(client: ClientId, open: bool) -> LogEvent {
    LogEvent::Session(ESession {
        stamp: UTime::ZERO,
        client: EntityName::client(client),
        addr: EntityAddr { addr_type: 0, nonce: 0, addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)) },
        open,
        cmapv: 0,
        inos_to_free: Default::default(),
        inotable_version: 0,
        client_metadata: Default::default(),
    })
}

fn client_of(name: &EntityName) -> Option<ClientId> {
    (name.kind == EntityType::Client).then(|| u64::try_from(name.num).ok()).flatten()
}

/// A session change an ESession records: the client and whether it opened. `None` for other
/// events and for sessions of non-client entities.
pub fn session_change(ev: &LogEvent) -> Option<(ClientId, bool)> {
    let LogEvent::Session(s) = ev else { return None };
    Some((client_of(&s.client)?, s.open))
}

/// One client request an EUpdate completed, as replay re-registers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedReq {
    /// The client.
    pub client: ClientId,
    /// Its request id.
    pub reqid: ReqId,
    /// The inode the request created, if any.
    pub created: Option<Ino>,
}

/// The client requests an EUpdate's `client_reqs` lists, each with the inode it created
/// (`allocated_ino` or `used_preallocated_ino`, as Ceph's replay reads them). Empty for other
/// events.
pub fn completed_requests(ev: &LogEvent) -> Vec<CompletedReq> {
    let LogEvent::Update(u) = ev else { return Vec::new() };
    let b = &u.metablob;
    let created = [b.allocated_ino, b.used_preallocated_ino].into_iter().find(|i| *i != InodeNo::NONE);
    b.client_reqs
        .iter()
        .filter_map(|(r, _oldest)| {
            Some(CompletedReq {
                client: client_of(&r.name)?,
                reqid: ReqId(r.tid),
                created: created.map(|i| Ino(i.0)),
            })
        })
        .collect()
}

/// One replayed change, keyed by inode number and name rather than by cache handle (a
/// fresh cache has no handles yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayChange {
    /// A dirfrag's fnode.
    Dirfrag {
        /// Directory inode number.
        dir: Ino,
        /// The fnode.
        fnode: Fnode,
    },
    /// A dentry: its linkage (`Primary` carries the inode content), version.
    Dentry {
        /// Directory inode number.
        dir: Ino,
        /// Name.
        name: String,
        /// Linkage.
        linkage: ReplayLinkage,
        /// Dentry version.
        version: u64,
        /// Whether the linkage itself changed (`DIRTY_PARENT`), not only the inode.
        relinked: bool,
    },
    /// A clean dentry of a directory's context (module notes): creates the inode and the
    /// primary link where replay lacks them, never changes what is there.
    Context {
        /// Directory inode number.
        dir: Ino,
        /// Name.
        name: String,
        /// The linked inode.
        ino: Ino,
        /// Its content when journaled.
        data: Box<InodeData>,
        /// Dentry version.
        version: u64,
    },
    /// A base inode (no parent dentry).
    Root {
        /// Inode number.
        ino: Ino,
        /// Content.
        data: InodeData,
    },
}

/// A dentry linkage as the journal states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayLinkage {
    /// Negative.
    Null,
    /// Remote link.
    Remote {
        /// Target.
        ino: Ino,
        /// `mode & S_IFMT` of the target.
        d_type: u32,
    },
    /// Primary link with the inode's content.
    Primary {
        /// Inode number.
        ino: Ino,
        /// Content.
        data: Box<InodeData>,
    },
}

/// A decoded EUpdate in the Locker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedUpdate {
    /// The request id, if a client request.
    pub reqid: Option<(ClientId, ReqId)>,
    /// The EUpdate type string.
    pub description: String,
    /// Changes in blob order: lumps in order (fnode, then full, remote, null dentries), then
    /// roots.
    pub changes: Vec<ReplayChange>,
}

/// Decodes an EUpdate. Other event types are the caller's to skip (`NotUpdate`).
pub fn from_log_event(ev: &LogEvent) -> Result<ReplayedUpdate, WireError> {
    let LogEvent::Update(u) = ev else {
        return Err(WireError::NotUpdate(ev.summary()));
    };
    let mut changes = Vec::new();
    for (df, l) in &u.metablob.dirs {
        let dir = Ino(df.ino.0);
        if l.has_state(dir_state::DIRTY) {
            changes.push(ReplayChange::Dirfrag { dir, fnode: cache_fnode(&l.fnode)? });
        }
        for f in &l.full {
            let (ino, data) = cache_inode(f)?;
            if !f.has_state(full_state::DIRTY) {
                changes.push(ReplayChange::Context {
                    dir,
                    name: f.name.clone(),
                    ino,
                    data: Box::new(data),
                    version: f.version,
                });
                continue;
            }
            changes.push(ReplayChange::Dentry {
                dir,
                name: f.name.clone(),
                linkage: ReplayLinkage::Primary { ino, data: Box::new(data) },
                version: f.version,
                relinked: f.has_state(full_state::DIRTY_PARENT),
            });
        }
        for r in &l.remote {
            changes.push(ReplayChange::Dentry {
                dir,
                name: r.name.clone(),
                linkage: ReplayLinkage::Remote { ino: Ino(r.ino.0), d_type: u32::from(r.d_type) << 12 },
                version: r.version,
                relinked: true,
            });
        }
        for n in &l.null {
            changes.push(ReplayChange::Dentry {
                dir,
                name: n.name.clone(),
                linkage: ReplayLinkage::Null,
                version: n.version,
                relinked: true,
            });
        }
    }
    for r in &u.metablob.roots {
        let (ino, data) = cache_inode(r)?;
        changes.push(ReplayChange::Root { ino, data });
    }
    let reqid = u.reqid.map(|r| (u64::try_from(r.name.num).unwrap_or(0), ReqId(r.tid)));
    Ok(ReplayedUpdate { reqid, description: u.op_type.clone(), changes })
}

/// Maps a decoded update back onto `cache`'s handles: the inverse of `to_log_event` for a
/// cache that holds every object the update names (the round trip). Changes come out in
/// canonical order: dirfrags, then dentries (with the inode change of each primary dentry
/// right after it; inode-only entries give only the inode change), then base inodes.
pub fn to_journal_entry(u: &ReplayedUpdate, cache: &Cache) -> Result<JournalEntry, WireError> {
    let missing = |what: String| WireError::MissingObject(what);
    let inode_id = |ino: Ino| cache.lookup_ino(ino).ok_or_else(|| missing(format!("inode {ino}")));
    let mut out = Vec::new();
    for c in &u.changes {
        match c {
            ReplayChange::Dirfrag { dir, fnode } => {
                let id = inode_id(*dir)?;
                let frag = cache
                    .inode(id)
                    .and_then(|i| i.dirfrags().get(&0).copied())
                    .ok_or_else(|| missing(format!("dirfrag of {dir}")))?;
                out.push(MetaChange::Dirfrag { id: frag, dir: *dir, fnode: *fnode });
            }
            ReplayChange::Dentry { dir, name, linkage, version, relinked } => {
                let dn = cache
                    .lookup_dentry(inode_id(*dir)?, name)
                    .ok_or_else(|| missing(format!("dentry {dir}/{name}")))?;
                let linkage_now = match linkage {
                    ReplayLinkage::Null => Linkage::Null,
                    ReplayLinkage::Remote { ino, d_type } => Linkage::Remote { ino: *ino, d_type: *d_type },
                    ReplayLinkage::Primary { ino, .. } => Linkage::Primary(inode_id(*ino)?),
                };
                if *relinked {
                    out.push(MetaChange::Dentry {
                        id: dn,
                        dir: *dir,
                        name: name.clone(),
                        linkage: linkage_now,
                        version: *version,
                    });
                }
                if let ReplayLinkage::Primary { ino, data } = linkage {
                    out.push(MetaChange::Inode { id: inode_id(*ino)?, ino: *ino, data: (**data).clone() });
                }
            }
            ReplayChange::Root { ino, data } => {
                out.push(MetaChange::Inode { id: inode_id(*ino)?, ino: *ino, data: data.clone() });
            }
            // Context is not part of the change.
            ReplayChange::Context { .. } => {}
        }
    }
    Ok(JournalEntry {
        reqid: u.reqid.map(|r| r.1).unwrap_or(ReqId(0)),
        description: u.description.clone(),
        changes: out,
        peer: None,
    })
}

fn install_inode(cache: &mut Cache, ino: Ino, data: &InodeData) -> crate::ids::InodeId {
    match cache.lookup_ino(ino) {
        Some(id) => {
            if let Some(n) = cache.inode_mut(id) {
                n.data = data.clone();
            }
            id
        }
        None => {
            let id = cache.insert_inode(ino, data.clone());
            if data.is_dir() {
                cache.open_dirfrag(id, true);
            }
            id
        }
    }
}

/// Re-applies one replayed update to `cache` as committed state (mds §6.6: "every event's
/// `replay()` re-applies its metablob to the cache, creating inodes/dentries/dirfrags"). The
/// cache is expected to have no projections (a rank that is replaying serves no requests).
///
/// Inodes are installed first, so a dirfrag or dentry naming a directory created by the same
/// update finds it whatever the lump order; then fnodes, then linkages. A directory created by
/// replay starts complete: on one rank with no dirfrag store, the journal is the whole truth.
pub fn apply_replayed(cache: &mut Cache, u: &ReplayedUpdate) -> Result<(), WireError> {
    for c in &u.changes {
        match c {
            ReplayChange::Dentry { linkage: ReplayLinkage::Primary { ino, data }, .. } => {
                install_inode(cache, *ino, data);
            }
            ReplayChange::Root { ino, data } => {
                install_inode(cache, *ino, data);
            }
            ReplayChange::Context { ino, data, .. } if cache.lookup_ino(*ino).is_none() => {
                // Another rank's directory, or one on the way to it: what this rank knows of
                // it is not the whole of it.
                let id = cache.insert_inode(*ino, (**data).clone());
                if data.is_dir() {
                    cache.open_dirfrag(id, false);
                }
            }
            _ => {}
        }
    }
    let dir_id = |cache: &Cache, dir: Ino| {
        cache.lookup_ino(dir).ok_or_else(|| WireError::MissingObject(format!("directory {dir}")))
    };
    for c in &u.changes {
        if let ReplayChange::Dirfrag { dir, fnode } = c {
            let d = dir_id(cache, *dir)?;
            let frag = cache.open_dirfrag(d, true);
            if let Some(f) = cache.dirfrag_mut(frag) {
                f.fnode = *fnode;
                f.projected_version = f.projected_version.max(fnode.version);
            }
        }
    }
    // Context first, parents before children (the blob lists a lump's ancestors after it):
    // a missing dentry is created and linked to an inode that has no parent yet.
    let mut context: Vec<_> = u
        .changes
        .iter()
        .filter_map(|c| match c {
            ReplayChange::Context { dir, name, ino, version, .. } => Some((*dir, name, *ino, *version)),
            _ => None,
        })
        .collect();
    for _ in 0..=context.len() {
        let before = context.len();
        context.retain(|(dir, name, ino, version)| {
            let Some(d) = cache.lookup_ino(*dir) else { return true };
            if cache.lookup_dentry(d, name).is_none()
                && let Some(i) = cache.lookup_ino(*ino)
                && cache.inode(i).is_some_and(|n| n.parent.is_none())
            {
                let frag = cache.open_dirfrag(d, false);
                let dn = cache.add_null_dentry(frag, name);
                cache.link_primary_now(dn, i);
                if let Some(x) = cache.dentry_mut(dn) {
                    x.version = *version;
                    x.projected_version = *version;
                }
            }
            false
        });
        if context.len() == before {
            break;
        }
    }
    for c in &u.changes {
        let ReplayChange::Dentry { dir, name, linkage, version, .. } = c else { continue };
        let d = dir_id(cache, *dir)?;
        let frag = cache.open_dirfrag(d, true);
        let dn = match cache.lookup_dentry(d, name) {
            Some(dn) => dn,
            None => cache.add_null_dentry(frag, name),
        };
        match linkage {
            ReplayLinkage::Null => {
                let old = cache.dentry(dn).map(|x| x.linkage);
                if let Some(Linkage::Primary(i)) = old
                    && let Some(n) = cache.inode_mut(i)
                    && n.parent == Some(dn)
                {
                    n.parent = None;
                    n.projected_parent = None;
                }
                if let Some(x) = cache.dentry_mut(dn) {
                    x.linkage = Linkage::Null;
                }
            }
            ReplayLinkage::Remote { ino, d_type } => cache.link_remote_now(dn, *ino, *d_type),
            ReplayLinkage::Primary { ino, .. } => {
                let id = dir_id(cache, *ino)?;
                // A rename moves the primary link: the old dentry gets its null linkage from
                // the same update, but only clear it here if it still points at this inode.
                if let Some(old) = cache.inode(id).and_then(|n| n.parent)
                    && old != dn
                    && let Some(x) = cache.dentry_mut(old)
                    && x.linkage == Linkage::Primary(id)
                {
                    x.linkage = Linkage::Null;
                }
                cache.link_primary_now(dn, id);
            }
        }
        if let Some(x) = cache.dentry_mut(dn) {
            x.version = x.version.max(*version);
            x.projected_version = x.projected_version.max(x.version);
        }
    }
    Ok(())
}
