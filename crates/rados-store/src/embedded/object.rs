//! One object as the embedded OSD stores it, and the op semantics applied to it.
//!
//! Each object name has a [`Slot`]: the current ("head") object, if it exists, plus the clones
//! kept for self-managed snapshots and the snap sequence the head was last written under (Ceph's
//! `SnapSet`). All functions here are pure and synchronous; the caller holds the slot's lock for
//! the duration of one op vector, which is what makes a vector atomic and keeps per-object order.
//!
//! Every single-op primitive validates before it mutates, so a one-op vector can be applied in
//! place; longer vectors and class methods run on a scratch copy that replaces the head only
//! on success.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::RwLock;

use crate::cls::{ClassRegistry, ClsContext};
use crate::error::{Error, Result, errno};
use crate::names;
use crate::ops::{ObjectStat, ReadOpKind, ReadResult, WriteOpKind};
use crate::snap::{CloneInfo, SnapContext, SnapId, SnapSetInfo};
use crate::types::{EntityAddr, EntityName, UTime};

/// The contents of one object version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectData {
    pub data: Vec<u8>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub omap: BTreeMap<String, Vec<u8>>,
    pub mtime: UTime,
}

/// A copy-on-write clone and the snaps it serves.
#[derive(Debug, Clone)]
pub(crate) struct CloneObj {
    pub data: ObjectData,
    pub snaps: BTreeSet<SnapId>,
}

/// Everything stored under one object name.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub head: Option<ObjectData>,
    /// The newest snap context `seq` the object was written under (SnapSet.seq).
    pub snapset_seq: SnapId,
    /// Clones by clone id (the writer's `seq` when the clone was made).
    pub clones: BTreeMap<SnapId, CloneObj>,
}

impl Slot {
    /// Nothing worth keeping: no head and no clones.
    pub fn is_empty(&self) -> bool {
        self.head.is_none() && self.clones.is_empty()
    }

    /// The object as of `snap` (None = head). The caller has already checked that `snap` is a
    /// live snapshot of the pool.
    ///
    /// A snap newer than the last write sees the head (nothing changed since). Otherwise the
    /// first clone made at or after the snap holds the data, if that clone serves the snap;
    /// if not, the object did not exist then.
    pub fn object_at(&self, snap: Option<SnapId>) -> Option<&ObjectData> {
        let Some(s) = snap else { return self.head.as_ref() };
        if s > self.snapset_seq {
            return self.head.as_ref();
        }
        let (_, clone) = self.clones.range(s..).next()?;
        clone.snaps.contains(&s).then_some(&clone.data)
    }

    /// Whether a write under `snapc` must first preserve the head in a clone.
    fn needs_clone(&self, snapc: &SnapContext, live: &BTreeSet<SnapId>) -> bool {
        snapc.seq > self.snapset_seq
            && self.head.is_some()
            && snapc.snaps.iter().any(|s| *s > self.snapset_seq && live.contains(s))
    }

    /// Ceph's `make_writeable`: before the first write after a newer snapshot, clone the head
    /// for the snaps taken since the last write; then remember the writer's `seq`.
    fn make_writeable(&mut self, snapc: &SnapContext, live: &BTreeSet<SnapId>) {
        if snapc.seq <= self.snapset_seq {
            return;
        }
        if let Some(head) = &self.head {
            let snaps: BTreeSet<SnapId> =
                snapc.snaps.iter().copied().filter(|s| *s > self.snapset_seq && live.contains(s)).collect();
            if !snaps.is_empty() {
                tracing::debug!(clone_id = snapc.seq, ?snaps, "copy-on-write clone");
                self.clones.insert(snapc.seq, CloneObj { data: head.clone(), snaps });
            }
        }
        self.snapset_seq = snapc.seq;
    }

    /// Drops `snap` from every clone, deleting clones no live snap needs (the snap trimmer).
    pub fn trim_snap(&mut self, snap: SnapId) {
        self.clones.retain(|_, c| {
            c.snaps.remove(&snap);
            !c.snaps.is_empty()
        });
    }

    /// What `list_snaps` reports.
    pub fn snapset_info(&self) -> SnapSetInfo {
        SnapSetInfo {
            seq: self.snapset_seq,
            clones: self
                .clones
                .iter()
                .map(|(id, c)| CloneInfo {
                    id: *id,
                    snaps: c.snaps.iter().copied().collect(),
                    size: c.data.data.len() as u64,
                })
                .collect(),
            head_exists: self.head.is_some(),
        }
    }
}

/// What an op needs besides the object: time, limits, classes and the caller.
pub(crate) struct OpEnv<'a> {
    pub now: UTime,
    pub max_object_size: u64,
    pub registry: &'a RwLock<ClassRegistry>,
    pub caller: EntityName,
    pub addr: EntityAddr,
    pub oid: &'a str,
    /// Live snaps of the pool (for rollback and cloning).
    pub live_snaps: &'a BTreeSet<SnapId>,
}

fn enoent(oid: &str) -> Error {
    Error::NotFound(format!("object {oid:?} does not exist"))
}

fn efbig(oid: &str, end: Option<u64>, max: u64) -> Error {
    let end = end.map_or_else(|| "past u64::MAX".to_owned(), |e| e.to_string());
    Error::Os {
        errno: errno::EFBIG,
        context: format!("object {oid:?}: extent ends at {end}, limit is {max}"),
    }
}

/// Checks that `[offset, offset+len)` fits the object size limit (the OSD's
/// `check_offset_and_length`).
fn check_extent(env: &OpEnv<'_>, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= env.max_object_size => Ok(()),
        end => Err(efbig(env.oid, end, env.max_object_size)),
    }
}

fn to_usize(v: u64, env: &OpEnv<'_>) -> Result<usize> {
    usize::try_from(v).map_err(|_| efbig(env.oid, Some(v), env.max_object_size))
}

fn ensure(head: &mut Option<ObjectData>, now: UTime) -> &mut ObjectData {
    head.get_or_insert_with(|| ObjectData { mtime: now, ..ObjectData::default() })
}

/// Applies one op that needs nothing but the object itself. Validates fully before mutating, so
/// on error `head` is untouched. Returns whether the object changed.
pub(crate) fn apply_simple(head: &mut Option<ObjectData>, op: &WriteOpKind, env: &OpEnv<'_>) -> Result<bool> {
    let now = env.now;
    let changed = match op {
        WriteOpKind::Create { exclusive } => {
            if head.is_some() {
                if *exclusive {
                    return Err(Error::Exists(format!("object {:?} exists", env.oid)));
                }
                false
            } else {
                ensure(head, now);
                true
            }
        }
        WriteOpKind::Write { offset, data } => {
            check_extent(env, *offset, data.len() as u64)?;
            let start = to_usize(*offset, env)?;
            let obj = ensure(head, now);
            let end = start + data.len();
            if obj.data.len() < end {
                obj.data.resize(end, 0);
            }
            obj.data[start..end].copy_from_slice(data);
            true
        }
        WriteOpKind::WriteFull { data } => {
            check_extent(env, 0, data.len() as u64)?;
            ensure(head, now).data = data.clone();
            true
        }
        WriteOpKind::Append { data } => {
            let size = head.as_ref().map_or(0, |o| o.data.len() as u64);
            check_extent(env, size, data.len() as u64)?;
            ensure(head, now).data.extend_from_slice(data);
            true
        }
        WriteOpKind::Truncate { size } => {
            check_extent(env, *size, 0)?;
            let size = to_usize(*size, env)?;
            match head {
                // An OSD treats truncate of a missing object as a no-op.
                None => false,
                Some(obj) => {
                    obj.data.resize(size, 0);
                    true
                }
            }
        }
        WriteOpKind::Zero { offset, len } => {
            check_extent(env, *offset, *len)?;
            match head {
                None => false,
                Some(obj) => {
                    let size = obj.data.len() as u64;
                    let start = (*offset).min(size);
                    let end = offset.saturating_add(*len).min(size);
                    // Both bounds are <= the in-memory length, so they fit usize.
                    let (start, end) = (start as usize, end as usize);
                    obj.data[start..end].fill(0);
                    true
                }
            }
        }
        WriteOpKind::Remove => {
            if head.take().is_none() {
                return Err(enoent(env.oid));
            }
            true
        }
        WriteOpKind::SetXattr { name, value } => {
            names::validate_xattr_name(name)?;
            ensure(head, now).xattrs.insert(name.clone(), value.clone());
            true
        }
        WriteOpKind::RmXattr { name } => {
            names::validate_xattr_name(name)?;
            let obj = head.as_mut().ok_or_else(|| enoent(env.oid))?;
            obj.xattrs.remove(name);
            true
        }
        WriteOpKind::OmapSet { entries } => {
            let obj = ensure(head, now);
            for (k, v) in entries {
                obj.omap.insert(k.clone(), v.clone());
            }
            true
        }
        WriteOpKind::OmapRmKeys { keys } => {
            let obj = head.as_mut().ok_or_else(|| enoent(env.oid))?;
            for k in keys {
                obj.omap.remove(k);
            }
            true
        }
        WriteOpKind::OmapClear => {
            let obj = head.as_mut().ok_or_else(|| enoent(env.oid))?;
            obj.omap.clear();
            true
        }
        WriteOpKind::AssertExists => {
            if head.is_none() {
                return Err(enoent(env.oid));
            }
            false
        }
        WriteOpKind::Rollback { .. } | WriteOpKind::Exec { .. } => {
            return Err(Error::InvalidArgument("rollback and exec need the whole object slot".into()));
        }
    };
    if changed && let Some(obj) = head.as_mut() {
        obj.mtime = now;
    }
    Ok(changed)
}

fn is_simple(op: &WriteOpKind) -> bool {
    !matches!(op, WriteOpKind::Rollback { .. } | WriteOpKind::Exec { .. })
}

/// Applies a write op vector to a slot atomically, under a snap context.
pub(crate) fn apply_write_ops(
    slot: &mut Slot,
    ops: &[WriteOpKind],
    snapc: &SnapContext,
    env: &OpEnv<'_>,
) -> Result<()> {
    // One plain op with no clone to make: apply it in place (it validates before mutating).
    if let [op] = ops
        && is_simple(op)
        && !slot.needs_clone(snapc, env.live_snaps)
    {
        if apply_simple(&mut slot.head, op, env)? {
            slot.snapset_seq = slot.snapset_seq.max(snapc.seq);
        }
        return Ok(());
    }
    let mut scratch = slot.head.clone();
    let committed = slot.head.as_ref();
    let mut changed = false;
    for op in ops {
        changed |= match op {
            WriteOpKind::Rollback { snap } => {
                if !env.live_snaps.contains(snap) {
                    return Err(Error::NotFound(format!("snap {snap} does not exist")));
                }
                let mut target = slot.object_at(Some(*snap)).cloned();
                if let Some(obj) = target.as_mut() {
                    obj.mtime = env.now;
                }
                scratch = target;
                true
            }
            WriteOpKind::Exec { class, method, input } => {
                let entry = env.registry.read().unwrap_or_else(|e| e.into_inner()).lookup(class, method)?;
                let mut ctx = ObjCtx::new(HeadRef::Rw(&mut scratch), committed, entry.is_write(), env);
                (entry.func)(&mut ctx, input)?;
                ctx.modified
            }
            simple => apply_simple(&mut scratch, simple, env)?,
        };
    }
    if changed {
        slot.make_writeable(snapc, env.live_snaps);
        slot.head = scratch;
    }
    Ok(())
}

/// Runs one class method as a write: on a scratch copy, committed only on success. Returns the
/// method's output.
pub(crate) fn exec_write(
    slot: &mut Slot,
    func: crate::cls::ClsMethod,
    input: &[u8],
    snapc: &SnapContext,
    env: &OpEnv<'_>,
) -> Result<Vec<u8>> {
    let mut scratch = slot.head.clone();
    let committed = slot.head.as_ref();
    let mut ctx = ObjCtx::new(HeadRef::Rw(&mut scratch), committed, true, env);
    let out = func(&mut ctx, input)?;
    if ctx.modified {
        slot.make_writeable(snapc, env.live_snaps);
        slot.head = scratch;
    }
    Ok(out)
}

/// Runs one class method as a read against an existing object version.
pub(crate) fn exec_read(
    obj: &ObjectData,
    func: crate::cls::ClsMethod,
    input: &[u8],
    env: &OpEnv<'_>,
) -> Result<Vec<u8>> {
    let mut ctx = ObjCtx::new(HeadRef::Ro(Some(obj)), Some(obj), false, env);
    func(&mut ctx, input)
}

/// `len` 0 means "to the end", as on an OSD.
fn read_range(obj: &ObjectData, offset: u64, len: u64) -> Vec<u8> {
    let size = obj.data.len() as u64;
    let start = offset.min(size);
    let end = if len == 0 { size } else { offset.saturating_add(len).min(size) };
    obj.data[start as usize..end as usize].to_vec()
}

fn omap_range<'a>(
    obj: &'a ObjectData,
    start_after: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Vec<u8>)> + 'a {
    // Start after `start_after`, but no earlier than the prefix itself.
    let lower = if !prefix.is_empty() && prefix > start_after {
        Bound::Included(prefix.to_owned())
    } else if start_after.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(start_after.to_owned())
    };
    obj.omap.range::<String, _>((lower, Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(prefix))
}

/// Up to `max` omap entries after `start_after` with `prefix`, and whether more matching ones
/// follow.
pub(crate) fn omap_page(
    obj: &ObjectData,
    start_after: &str,
    prefix: &str,
    max: u64,
) -> (BTreeMap<String, Vec<u8>>, bool) {
    let mut it = omap_range(obj, start_after, prefix);
    let mut out = BTreeMap::new();
    while (out.len() as u64) < max {
        match it.next() {
            Some((k, v)) => {
                out.insert(k.clone(), v.clone());
            }
            None => return (out, false),
        }
    }
    let more = it.next().is_some();
    (out, more)
}

/// Evaluates one read against an existing object version.
pub(crate) fn apply_read(obj: &ObjectData, op: &ReadOpKind, env: &OpEnv<'_>) -> Result<ReadResult> {
    Ok(match op {
        ReadOpKind::Stat => ReadResult::Stat(ObjectStat { size: obj.data.len() as u64, mtime: obj.mtime }),
        ReadOpKind::Read { offset, len } => ReadResult::Data(read_range(obj, *offset, *len)),
        ReadOpKind::GetXattr { name } => {
            names::validate_xattr_name(name)?;
            let v = obj
                .xattrs
                .get(name)
                .ok_or_else(|| Error::NoData(format!("object {:?} has no xattr {name:?}", env.oid)))?;
            ReadResult::Xattr(v.clone())
        }
        ReadOpKind::GetXattrs => ReadResult::Xattrs(obj.xattrs.clone()),
        ReadOpKind::OmapGetVals { start_after, filter_prefix, max } => {
            let (entries, more) = omap_page(obj, start_after, filter_prefix, *max);
            ReadResult::OmapVals { entries, more }
        }
        ReadOpKind::OmapGetKeys { start_after, max } => {
            let (entries, more) = omap_page(obj, start_after, "", *max);
            ReadResult::OmapKeys { keys: entries.into_keys().collect(), more }
        }
        ReadOpKind::OmapGetValsByKeys { keys } => {
            let entries =
                keys.iter().filter_map(|k| obj.omap.get(k).map(|v| (k.clone(), v.clone()))).collect();
            ReadResult::OmapVals { entries, more: false }
        }
        ReadOpKind::AssertExists => ReadResult::Exists,
        ReadOpKind::Exec { class, method, input } => {
            let entry = env.registry.read().unwrap_or_else(|e| e.into_inner()).lookup(class, method)?;
            if entry.is_write() {
                return Err(Error::InvalidArgument(format!(
                    "{class}.{method} may write; call it with exec or in a write op"
                )));
            }
            ReadResult::Exec(exec_read(obj, entry.func, input, env)?)
        }
    })
}

/// The object a class method sees: either a read-only version or the scratch copy of a write.
pub(crate) enum HeadRef<'a> {
    Ro(Option<&'a ObjectData>),
    Rw(&'a mut Option<ObjectData>),
}

/// The [`ClsContext`] of the embedded OSD.
///
/// Omap reads go to `committed`, the object as it was before the op started, not to the scratch
/// copy being written: an OSD serves omap reads from its object store, so a method (or a later
/// step of the same op vector) never sees omap keys written earlier in the same transaction.
/// Data and xattr reads see the scratch copy.
pub(crate) struct ObjCtx<'a> {
    head: HeadRef<'a>,
    committed: Option<&'a ObjectData>,
    writable: bool,
    env: &'a OpEnv<'a>,
    /// Set by any successful mutation, so a WR method that changed nothing does not bump the
    /// mtime or clone.
    pub modified: bool,
}

impl<'a> ObjCtx<'a> {
    /// A context over `head`; omap reads see `committed` (the pre-op object).
    pub fn new(
        head: HeadRef<'a>,
        committed: Option<&'a ObjectData>,
        writable: bool,
        env: &'a OpEnv<'a>,
    ) -> Self {
        ObjCtx { head, committed, writable, env, modified: false }
    }

    /// The object omap reads are served from: the committed object, which must still exist.
    fn omap_source(&self) -> Result<&ObjectData> {
        self.existing()?;
        self.committed.ok_or_else(|| enoent(self.env.oid))
    }

    fn get(&self) -> Option<&ObjectData> {
        match &self.head {
            HeadRef::Ro(o) => *o,
            HeadRef::Rw(o) => o.as_ref(),
        }
    }

    fn existing(&self) -> Result<&ObjectData> {
        self.get().ok_or_else(|| enoent(self.env.oid))
    }

    fn mutate(&mut self, op: &WriteOpKind) -> Result<()> {
        let HeadRef::Rw(head) = &mut self.head else {
            return Err(Error::from_errno(errno::EIO, "read-only cls method tried to modify the object"));
        };
        if !self.writable {
            return Err(Error::from_errno(errno::EIO, "cls method not marked WR tried to modify the object"));
        }
        if apply_simple(head, op, self.env)? {
            self.modified = true;
        }
        Ok(())
    }
}

impl ClsContext for ObjCtx<'_> {
    fn object_name(&self) -> &str {
        self.env.oid
    }

    fn exists(&self) -> bool {
        self.get().is_some()
    }

    fn create(&mut self, exclusive: bool) -> Result<()> {
        self.mutate(&WriteOpKind::Create { exclusive })
    }

    fn stat(&self) -> Result<(u64, UTime)> {
        let o = self.existing()?;
        Ok((o.data.len() as u64, o.mtime))
    }

    fn read(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        Ok(read_range(self.existing()?, off, len))
    }

    fn write_full(&mut self, data: &[u8]) -> Result<()> {
        self.mutate(&WriteOpKind::WriteFull { data: data.to_vec() })
    }

    fn remove(&mut self) -> Result<()> {
        self.mutate(&WriteOpKind::Remove)
    }

    fn getxattr(&self, name: &str) -> Result<Vec<u8>> {
        names::validate_xattr_name(name)?;
        let o = self.existing()?;
        o.xattrs.get(name).cloned().ok_or_else(|| Error::NoData(format!("no xattr {name:?}")))
    }

    fn getxattrs(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        Ok(self.existing()?.xattrs.clone())
    }

    fn setxattr(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.mutate(&WriteOpKind::SetXattr { name: name.to_owned(), value: value.to_vec() })
    }

    fn rmxattr(&mut self, name: &str) -> Result<()> {
        self.mutate(&WriteOpKind::RmXattr { name: name.to_owned() })
    }

    fn omap_get_val(&self, key: &str) -> Result<Vec<u8>> {
        let o = self.omap_source()?;
        o.omap.get(key).cloned().ok_or_else(|| Error::NotFound(format!("no omap key {key:?}")))
    }

    fn omap_get_vals(&self, start_after: &str, max: u64) -> Result<(BTreeMap<String, Vec<u8>>, bool)> {
        Ok(omap_page(self.omap_source()?, start_after, "", max))
    }

    fn omap_set_vals(&mut self, kv: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        self.mutate(&WriteOpKind::OmapSet { entries: kv.clone() })
    }

    fn omap_remove_keys(&mut self, keys: &[String]) -> Result<()> {
        self.mutate(&WriteOpKind::OmapRmKeys { keys: keys.iter().cloned().collect() })
    }

    fn now(&self) -> UTime {
        self.env.now
    }

    fn caller_entity(&self) -> EntityName {
        self.env.caller
    }

    fn caller_addr(&self) -> EntityAddr {
        self.env.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(reg: &'a RwLock<ClassRegistry>, live: &'a BTreeSet<SnapId>) -> OpEnv<'a> {
        OpEnv {
            now: UTime { sec: 100, nsec: 0 },
            max_object_size: 64,
            registry: reg,
            caller: EntityName::client(1),
            addr: "127.0.0.1:0/1".parse().unwrap(),
            oid: "o",
            live_snaps: live,
        }
    }

    #[test]
    fn primitives_leave_the_object_untouched_on_error() {
        let reg = RwLock::new(ClassRegistry::new());
        let live = BTreeSet::new();
        let env = env(&reg, &live);
        let mut head = None;
        apply_simple(&mut head, &WriteOpKind::Write { offset: 2, data: b"ab".to_vec() }, &env).unwrap();
        let before = head.clone();
        for bad in [
            WriteOpKind::Write { offset: 63, data: b"ab".to_vec() },
            WriteOpKind::Write { offset: u64::MAX, data: b"a".to_vec() },
            WriteOpKind::Append { data: vec![0; 61] },
            WriteOpKind::Truncate { size: 65 },
            WriteOpKind::Zero { offset: u64::MAX, len: 2 },
            WriteOpKind::Create { exclusive: true },
            WriteOpKind::SetXattr { name: String::new(), value: vec![] },
        ] {
            assert!(apply_simple(&mut head, &bad, &env).is_err(), "{bad:?}");
            assert_eq!(head, before, "{bad:?} changed the object");
        }
        assert_eq!(head.unwrap().data, b"\0\0ab");
    }

    #[test]
    fn object_at_follows_clones() {
        let reg = RwLock::new(ClassRegistry::new());
        let live: BTreeSet<SnapId> = [1, 2].into();
        let env = env(&reg, &live);
        let mut slot = Slot::default();
        let v = |d: &[u8]| vec![WriteOpKind::WriteFull { data: d.to_vec() }];
        apply_write_ops(&mut slot, &v(b"v0"), &SnapContext::empty(), &env).unwrap();
        apply_write_ops(&mut slot, &v(b"v1"), &SnapContext { seq: 1, snaps: vec![1] }, &env).unwrap();
        apply_write_ops(&mut slot, &v(b"v2"), &SnapContext { seq: 2, snaps: vec![2, 1] }, &env).unwrap();
        assert_eq!(slot.object_at(Some(1)).unwrap().data, b"v0");
        assert_eq!(slot.object_at(Some(2)).unwrap().data, b"v1");
        assert_eq!(slot.object_at(None).unwrap().data, b"v2");
        slot.trim_snap(1);
        assert_eq!(slot.clones.len(), 1);
    }

    #[test]
    fn omap_page_respects_prefix_and_more() {
        let mut o = ObjectData::default();
        for k in ["a1", "a2", "a3", "b1"] {
            o.omap.insert(k.into(), k.as_bytes().to_vec());
        }
        let (m, more) = omap_page(&o, "", "a", 2);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a1", "a2"]);
        assert!(more);
        let (m, more) = omap_page(&o, "a2", "a", 10);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a3"]);
        assert!(!more);
        let (m, more) = omap_page(&o, "", "", 0);
        assert!(m.is_empty() && more);
    }
}
