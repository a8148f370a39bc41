//! What a rank's journal must say about subtree authority, and rebuilding a rank from it
//! (mds §6.1 ESubtreeMap, §6.6 replay).
//!
//! Replay alone cannot tell a restarted rank which dirfrags it is auth for: an EUpdate names
//! a dirfrag, not its owner. Ceph journals an ESubtreeMap at the start of every segment (and
//! EExport / EImportFinish when a subtree moves); its metablob carries each subtree root's
//! ancestry, so replay can attach the root below the base inode, and its `subtrees` list
//! says which roots (and which nested bounds owned elsewhere) are this rank's. Here a rank
//! journals a fresh ESubtreeMap when it starts and whenever its subtree set changes
//! (`Cluster::pin_empty_dir`), which plays the role of the export/import events.
//!
//! `replay_rank` turns a rank's durable journal (encoded `LogEvent`s, exactly the bytes
//! `LogEvent::to_payload` writes) back into a Locker: subtree maps, sessions, updates and the
//! completed-request table, as `runtime::Rank::open` does for one rank. Everything not under
//! one of the rank's own subtree roots is left for `Locker::resolve_authority`, which needs
//! the other ranks' subtree roots (Ceph learns them in the resolve stage).

use std::collections::{BTreeMap, BTreeSet};

use mds_journal::metablob::dir_state;
use mds_journal::{DirFrag, EPeerUpdate, ESubtreeMap, Frag, InodeNo, LogEvent, MetaBlob, MetaReqId};

use crate::cache::{Cache, Linkage};
use crate::ids::{ClientId, DirfragId, Ino, InodeId, Rank, ReqId};
use crate::locker::{Locker, LockerConfig};
use crate::wire::{self, WireError};

/// A dirfrag named across ranks: (directory inode, frag).
pub type FragKey = (Ino, u32);

/// The dirfrag holding `dir`'s committed primary dentry (`None` for base inodes).
fn parent_frag(cache: &Cache, dir: InodeId) -> Option<DirfragId> {
    let dn = cache.inode(dir)?.parent()?;
    cache.dentry(dn).map(|d| d.dir())
}

fn frag_key(cache: &Cache, f: DirfragId) -> Option<FragKey> {
    let d = cache.dirfrag(f)?;
    Some((cache.inode(d.inode())?.ino(), d.frag()))
}

fn all_dirfrags(cache: &Cache) -> Vec<DirfragId> {
    cache.inode_ids().filter_map(|i| cache.inode(i)).flat_map(|n| n.dirfrags().values().copied()).collect()
}

/// The subtree roots this cache's rank is auth for, each with its bounds (nested dirfrags
/// owned by other ranks), as Ceph's subtree map holds them. A root is an auth dirfrag whose
/// parent dirfrag is not auth here, or whose directory is a base inode (root, `~mdsN`).
pub fn subtree_roots(cache: &Cache) -> BTreeMap<FragKey, Vec<FragKey>> {
    let me = cache.rank();
    let auth_here = |f: DirfragId| cache.dirfrag(f).is_some_and(|d| d.auth() == me);
    let mut roots: BTreeMap<FragKey, Vec<FragKey>> = BTreeMap::new();
    let frags = all_dirfrags(cache);
    let is_root = |f: DirfragId| {
        auth_here(f)
            && cache
                .dirfrag(f)
                .map(|d| d.inode())
                .and_then(|i| parent_frag(cache, i))
                .is_none_or(|p| !auth_here(p))
    };
    for f in frags.iter().copied().filter(|f| is_root(*f)) {
        if let Some(k) = frag_key(cache, f) {
            roots.entry(k).or_default();
        }
    }
    // A bound: a frag owned elsewhere directly below one of ours; it belongs to the root
    // found by walking up from its parent frag.
    for g in frags.iter().copied().filter(|g| !auth_here(*g)) {
        let Some(mut p) = cache.dirfrag(g).map(|d| d.inode()).and_then(|i| parent_frag(cache, i)) else {
            continue;
        };
        if !auth_here(p) {
            continue;
        }
        for _ in 0..crate::cache::MAX_DEPTH {
            if is_root(p) {
                break;
            }
            match cache.dirfrag(p).map(|d| d.inode()).and_then(|i| parent_frag(cache, i)) {
                Some(up) => p = up,
                None => break,
            }
        }
        if let (Some(root), Some(bound)) = (frag_key(cache, p), frag_key(cache, g))
            && let Some(b) = roots.get_mut(&root)
        {
            b.push(bound);
        }
    }
    roots
}

fn wire_df((ino, frag): FragKey) -> DirFrag {
    DirFrag { ino: InodeNo(ino.0), frag: Frag(frag) }
}

/// The ESubtreeMap for this cache's rank: its subtree roots and bounds, and a metablob with
/// each root's ancestry (base inode, then each directory's primary dentry with the committed
/// inode, Ceph's `add_dir_context`), ending with the root dirfrag itself (flagged DIRTY and
/// COMPLETE so replay takes its fnode).
pub fn subtree_map_event(cache: &Cache, event_seq: u64) -> Result<LogEvent, WireError> {
    let roots = subtree_roots(cache);
    let mut blob = MetaBlob::default();
    let mut based: BTreeSet<Ino> = BTreeSet::new();
    let mut in_lump: BTreeSet<(Ino, String)> = BTreeSet::new();
    for (dir, frag) in roots.keys() {
        let id =
            cache.lookup_ino(*dir).ok_or_else(|| WireError::MissingObject(format!("subtree root {dir}")))?;
        // Ancestry, from the root dirfrag's directory up to its base inode.
        let mut chain = vec![id];
        for _ in 0..crate::cache::MAX_DEPTH {
            let last = chain[chain.len() - 1];
            match cache.parent_dir(last) {
                Some(p) => chain.push(p),
                None => break,
            }
        }
        chain.reverse();
        let base = cache.inode(chain[0]).ok_or_else(|| WireError::MissingObject("base inode".into()))?;
        if based.insert(base.ino()) {
            blob.roots.push(wire::full_dentry("", 0, base.ino(), base.data(), 0));
        }
        for pair in chain.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            let (Some(p), Some(c)) = (cache.inode(parent), cache.inode(child)) else { continue };
            let Some(dn) = c.parent().and_then(|d| cache.dentry(d)) else { continue };
            if !in_lump.insert((p.ino(), dn.name().to_string())) {
                continue;
            }
            let fnode = cache.dirfrag_of_existing(parent).and_then(|f| cache.dirfrag(f)).map(|f| *f.fnode());
            let lump = blob.add_dir(wire_df((p.ino(), 0)), wire::wire_fnode(&fnode.unwrap_or_default()), 0);
            lump.full.push(wire::full_dentry(dn.name(), dn.version(), c.ino(), c.data(), 0));
        }
        let f = cache.resolve_dirfrag(*dir, *frag).and_then(|f| cache.dirfrag(f));
        let fnode = f.map(|f| *f.fnode()).unwrap_or_default();
        let lump = blob.add_dir(wire_df((*dir, *frag)), wire::wire_fnode(&fnode), 0);
        lump.state |= dir_state::DIRTY | dir_state::COMPLETE;
    }
    let subtrees = roots
        .into_iter()
        .map(|(root, bounds)| (wire_df(root), bounds.into_iter().map(wire_df).collect()))
        .collect();
    Ok(LogEvent::SubtreeMap(ESubtreeMap {
        metablob: blob,
        subtrees,
        ambiguous_subtrees: BTreeSet::new(),
        expire_pos: 0,
        event_seq,
    }))
}

/// Replays one ESubtreeMap into `cache`: installs the ancestry objects it lacks (never
/// overwriting what earlier events replayed: a map written later than an unsafe update may
/// carry older committed values), takes the newer fnode of each root, and returns the
/// subtree roots it names, which are this rank's.
pub fn replay_subtree_map(cache: &mut Cache, s: &ESubtreeMap) -> Result<Vec<FragKey>, WireError> {
    for r in &s.metablob.roots {
        let (ino, data) = wire::cache_inode(r)?;
        if cache.lookup_ino(ino).is_none() {
            cache.insert_inode(ino, data);
        }
    }
    for (df, lump) in &s.metablob.dirs {
        let dir_ino = Ino(df.ino.0);
        let dir = cache
            .lookup_ino(dir_ino)
            .ok_or_else(|| WireError::MissingObject(format!("directory {dir_ino}")))?;
        let frag = cache.open_dirfrag(dir, false);
        let fnode = wire::cache_fnode(&lump.fnode)?;
        if let Some(f) = cache.dirfrag_mut(frag)
            && fnode.version > f.fnode.version
        {
            f.fnode = fnode;
            f.projected_version = f.projected_version.max(fnode.version);
        }
        for fd in &lump.full {
            let (ino, data) = wire::cache_inode(fd)?;
            let dn = match cache.lookup_dentry(dir, &fd.name) {
                Some(dn) => dn,
                None => cache.add_null_dentry(frag, &fd.name),
            };
            let id = match cache.lookup_ino(ino) {
                Some(id) => id,
                None => cache.insert_inode(ino, data),
            };
            if cache.dentry(dn).is_some_and(|d| d.linkage() == Linkage::Null) {
                cache.link_primary_now(dn, id);
                if let Some(d) = cache.dentry_mut(dn) {
                    d.version = d.version.max(fd.version);
                    d.projected_version = d.projected_version.max(d.version);
                }
            }
        }
    }
    let me = cache.rank();
    let mut mine = Vec::new();
    for root in s.subtrees.keys() {
        let key = (Ino(root.ino.0), root.frag.0);
        let f = cache
            .resolve_dirfrag(key.0, key.1)
            .ok_or_else(|| WireError::MissingObject(format!("subtree root {}", key.0)))?;
        cache.set_dirfrag_auth(f, me);
        if let Some(d) = cache.dirfrag_mut(f) {
            d.complete = true;
        }
        mine.push(key);
    }
    Ok(mine)
}

/// What a peer must do with an update it prepared (EPeerUpdate PREPARE) but whose COMMIT or
/// ROLLBACK is not in its journal (§6.6 "uncommitted leader/peer updates (resolved later with
/// peers in the resolve stage)").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDecision {
    /// The leader's update is durable: apply the prepared change.
    Commit,
    /// The leader never journaled the update: undo the prepared change.
    Rollback,
}

/// The resolve stage's decision for each uncommitted peer update: commit if the leader's
/// journal holds its EUpdate for the request, roll back otherwise (Ceph's leader answers the
/// peer's resolve the same way: committed iff it journaled the operation).
///
/// `Cluster::restart` passes a leader that is committed if its durable journal has the
/// EUpdate or, when it is alive, it has submitted it; `Locker::resolve_replayed_prepare`
/// applies the decision (and `RestartReport::peer_decisions` reports it).
pub fn decide_peer_updates(
    uncommitted: &[EPeerUpdate],
    leader_committed: impl Fn(Rank, &MetaReqId) -> bool,
) -> Vec<(MetaReqId, PeerDecision)> {
    uncommitted
        .iter()
        .map(|p| {
            let leader = Rank::try_from(p.leader).unwrap_or(Rank::MAX);
            let d = if leader_committed(leader, &p.reqid) {
                PeerDecision::Commit
            } else {
                PeerDecision::Rollback
            };
            (p.reqid, d)
        })
        .collect()
}

/// Whether a journal holds a leader's EUpdate for `reqid`.
///
/// Matched by transaction id: a witness's entries name the request by the leader's request
/// id, and the Locker keys requests by that id alone (the client part of a COMMIT written
/// after the peer request went is 0).
pub fn journal_has_update(events: &[LogEvent], reqid: &MetaReqId) -> bool {
    events.iter().any(|e| matches!(e, LogEvent::Update(u) if u.reqid.is_some_and(|r| r.tid == reqid.tid)))
}

/// Applies the metablob of a witness's EPeerUpdate to `cache` as committed state: a
/// PREPARE's at replay of its COMMIT, or when resolve decides an uncommitted prepare
/// committed; a ROLLBACK's (the inverse counts) at its replay. Replay holds prepares aside
/// until the outcome is known, so the metablob is the change; a dirfrag or dentry a later
/// journaled update already wrote newer is left alone (its entry was stacked on this
/// update's projections and already includes it).
pub fn apply_peer_prepare(cache: &mut Cache, prepare: &EPeerUpdate) -> Result<(), WireError> {
    let as_update = LogEvent::Update(mds_journal::EUpdate {
        stamp: prepare.stamp,
        op_type: prepare.op_type.clone(),
        metablob: prepare.commit.clone(),
        cmapv: 0,
        reqid: None,
        had_peers: false,
    });
    let mut u = wire::from_log_event(&as_update)?;
    u.changes.retain(|c| match c {
        wire::ReplayChange::Dirfrag { dir, fnode } => cache
            .lookup_ino(*dir)
            .and_then(|d| cache.dirfrag_of_existing(d))
            .and_then(|f| cache.dirfrag(f))
            .is_none_or(|f| f.fnode().version <= fnode.version),
        wire::ReplayChange::Dentry { dir, name, version, .. } => cache
            .lookup_ino(*dir)
            .and_then(|d| cache.lookup_dentry(d, name))
            .and_then(|dn| cache.dentry(dn))
            .is_none_or(|d| d.version() <= *version),
        wire::ReplayChange::Root { .. } | wire::ReplayChange::Context { .. } => true,
    });
    wire::apply_replayed(cache, &u)
}

/// What replaying a rank's journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// ESubtreeMaps replayed.
    pub subtree_maps: usize,
    /// The subtree roots the last map named (this rank's authority).
    pub subtree_roots: Vec<FragKey>,
    /// EUpdates re-applied.
    pub updates: usize,
    /// ESession events replayed.
    pub session_events: usize,
    /// Completed-request table entries restored.
    pub completed_restored: usize,
    /// Client request ids in replayed updates, in log order.
    pub client_reqs: Vec<(ClientId, ReqId)>,
    /// EPeerUpdate PREPAREs with no later COMMIT or ROLLBACK for the same request.
    pub uncommitted_peer_updates: Vec<EPeerUpdate>,
    /// EUpdates with peers (`had_peers`) and no later ECommitted: the request id and the
    /// operation name. Resolve finds out which witnesses still have them prepared.
    pub uncommitted_leader_updates: Vec<(MetaReqId, String)>,
}

/// Rebuilds a rank from its durable journal (each element one `LogEvent` payload, in log
/// order): a fresh Locker, then each event replayed through `mds-journal`'s decoder and
/// `wire`'s mapping (mds §6.6).
pub fn replay_rank(cfg: LockerConfig, journal: &[Vec<u8>]) -> Result<(Locker, ReplayOutcome), ReplayError> {
    let mut locker = Locker::new(cfg);
    let mut out = ReplayOutcome::default();
    // Keyed by transaction id (see `journal_has_update`).
    let mut prepared: BTreeMap<u64, EPeerUpdate> = BTreeMap::new();
    let mut leading: BTreeMap<u64, (MetaReqId, String)> = BTreeMap::new();
    for (i, bytes) in journal.iter().enumerate() {
        let ev = LogEvent::decode_payload(bytes)
            .map_err(|e| ReplayError::Decode { index: i, why: e.to_string() })?;
        match &ev {
            LogEvent::SubtreeMap(s) => {
                out.subtree_roots = replay_subtree_map(locker.cache_mut(), s)?;
                out.subtree_maps += 1;
            }
            LogEvent::Session(_) => {
                if let Some((client, open)) = wire::session_change(&ev) {
                    locker.replay_session(client, open);
                    out.session_events += 1;
                }
            }
            LogEvent::Update(e) => {
                if let (true, Some(r)) = (e.had_peers, e.reqid) {
                    leading.insert(r.tid, (r, e.op_type.clone()));
                }
                let u = wire::from_log_event(&ev)?;
                wire::apply_replayed(locker.cache_mut(), &u)?;
                out.updates += 1;
                if let Some(r) = u.reqid {
                    out.client_reqs.push(r);
                }
                for c in wire::completed_requests(&ev) {
                    if locker.replay_completed(c.client, c.reqid, c.created) {
                        out.completed_restored += 1;
                    }
                }
            }
            // Replay holds a prepare aside until its COMMIT (apply its metablob) or ROLLBACK
            // (apply the rollback's own metablob, the inverse of what the witness installed);
            // what is left waits for resolve. The witness installed its inode and fnode
            // changes at prepare safe, but an update journaled after the PREPARE already
            // carries them, and `apply_peer_prepare` never writes over a newer version.
            LogEvent::PeerUpdate(p) => match p.op {
                mds_journal::event::PeerOp::Prepare => {
                    prepared.insert(p.reqid.tid, p.clone());
                }
                mds_journal::event::PeerOp::Commit => {
                    if let Some(prep) = prepared.remove(&p.reqid.tid) {
                        apply_peer_prepare(locker.cache_mut(), &prep)?;
                    }
                }
                // A witness that had installed its prepare (at prepare safe) journals the
                // inverse counts with the ROLLBACK; later updates stacked on the prepare wrote
                // values that include it, so the inverse is what undoes it here too.
                mds_journal::event::PeerOp::Rollback => {
                    prepared.remove(&p.reqid.tid);
                    apply_peer_prepare(locker.cache_mut(), p)?;
                }
            },
            LogEvent::Committed(c) => {
                leading.remove(&c.reqid.tid);
            }
            _ => {}
        }
    }
    out.uncommitted_peer_updates = prepared.into_values().collect();
    out.uncommitted_leader_updates = leading.into_values().collect();
    Ok((locker, out))
}

/// Why a rank's journal could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// An entry did not decode (the rank would be marked damaged, §6.6).
    #[error("journal entry {index} does not decode: {why}")]
    Decode {
        /// Position in the journal.
        index: usize,
        /// The decoder's complaint.
        why: String,
    },
    /// An event names objects replay cannot place.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// A remote lock a survivor's leader request holds on the restarted rank's object, as the
/// survivor reports it in rejoin (Ceph's strong rejoin lists xlocks and wrlocks with their
/// request ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejoinLock {
    /// The leader's request.
    pub reqid: ReqId,
    /// The request's client.
    pub client: Option<ClientId>,
    /// The lock.
    pub lock: crate::ids::LockKey,
    /// An xlock (true) or a wrlock.
    pub xlock: bool,
    /// The leader had marked its xlock done (early reply went out).
    pub done: bool,
}
