//! A trivially correct sequential model of the namespace: what mds-locker's randomized tests
//! (tests/random.rs, tests/multirank_random.rs) and the MDS simulator (integration-tests
//! `sim::mds`) check every first reply against. One copy serves all of them, so a fix to the
//! model reaches every suite.
//!
//! Each request takes effect at the moment of its first reply: the early (unsafe) reply of a
//! journaled operation, or the only reply of anything else. Until its journal entry is safe
//! every other client that could observe the change waits on a lock, so the Locker's replies
//! must match running the requests one at a time in first-reply order. `apply` checks one
//! reply against that and advances the model; its error checks follow the order the server
//! operations make them (§5.1 traversal first, then the operation's own checks).

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::caps::FILE_MODE_WR;
use mds_locker::cache::{S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG};
use mds_locker::{
    DirEntry, Errno, FileLock, FileLockKind, FileLockRule, FilePath, Ino, Op, Reply, ReplyData,
};

/// What an inode is, as far as the namespace rules care (rmdir vs unlink, rename type checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A FIFO (mknod).
    Fifo,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

impl Kind {
    /// The `S_IFMT` bits a readdir entry of this kind carries.
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::File => S_IFREG,
            Kind::Fifo => S_IFIFO,
            Kind::Dir => S_IFDIR,
            Kind::Symlink => S_IFLNK,
        }
    }
}

/// One inode of the model.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its type.
    pub kind: Kind,
    /// Its link count, compared with the Locker's after a run.
    pub nlink: u32,
    /// Directories: the directory holding them; `None` for the root and removed ones.
    pub parent: Option<Ino>,
    /// An rmdir'd directory: creates below it fail with ENOENT.
    pub removed: bool,
    /// Directories: name → inode.
    pub entries: BTreeMap<String, Ino>,
    /// Names of the extended attributes set.
    pub xattrs: BTreeSet<String>,
}

impl Node {
    fn new(kind: Kind, parent: Option<Ino>) -> Node {
        Node { kind, nlink: 1, parent, removed: false, entries: BTreeMap::new(), xattrs: BTreeSet::new() }
    }
}

/// The namespace, advanced one first reply at a time. `Clone` lets the simulator rebuild it
/// when a rank failure loses changes that were answered early.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Every inode ever created, by number (removed ones stay with no links).
    pub nodes: BTreeMap<Ino, Node>,
    /// Whole-file flock locks: inode → (client, owner) → kind.
    pub flocks: BTreeMap<Ino, BTreeMap<(u64, u64), FileLockKind>>,
}

type Res = Result<Option<Ino>, Errno>;

impl Model {
    /// An empty namespace with only the root directory.
    pub fn new() -> Model {
        let mut m = Model::default();
        m.nodes.insert(Ino::ROOT, Node::new(Kind::Dir, None));
        m
    }

    /// Adds a node that exists before the workload starts.
    pub fn add_existing(&mut self, dir: Ino, name: &str, ino: Ino, kind: Kind) {
        let parent = (kind == Kind::Dir).then_some(dir);
        self.nodes.insert(ino, Node::new(kind, parent));
        self.nodes.get_mut(&dir).unwrap().entries.insert(name.to_string(), ino);
    }

    fn node(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.node(ino).is_some_and(|n| n.kind == Kind::Dir)
    }

    fn entry(&self, dir: Ino, name: &str) -> Option<Ino> {
        self.node(dir).and_then(|n| n.entries.get(name).copied())
    }

    /// Path traversal without WANT_DENTRY: every component must exist.
    fn resolve(&self, path: &FilePath) -> Result<Ino, Errno> {
        let mut cur = path.base;
        if self.node(cur).is_none() {
            return Err(Errno::ENOENT);
        }
        for c in &path.components {
            if !self.is_dir(cur) {
                return Err(Errno::ENOTDIR);
            }
            cur = self.entry(cur, c).ok_or(Errno::ENOENT)?;
        }
        Ok(cur)
    }

    /// Path traversal with WANT_DENTRY, then `dir_update_error`: the directory and the name.
    fn resolve_parent<'a>(&self, path: &'a FilePath) -> Result<(Ino, &'a str), Errno> {
        let (last, init) = path.components.split_last().ok_or(Errno::EINVAL)?;
        let mut cur = path.base;
        for c in init {
            if !self.is_dir(cur) {
                return Err(Errno::ENOTDIR);
            }
            cur = self.entry(cur, c).ok_or(Errno::ENOENT)?;
        }
        if !self.is_dir(cur) {
            return Err(Errno::ENOTDIR);
        }
        if self.node(cur).is_some_and(|n| n.removed) {
            return Err(Errno::ENOENT);
        }
        Ok((cur, last))
    }

    /// A depth-1 name of LINK / RENAME.
    fn named<'a>(&self, path: &'a FilePath) -> Result<(Ino, &'a str), Errno> {
        if path.components.len() != 1 {
            return Err(Errno::EINVAL);
        }
        // An inode number nobody has (a lost unsafe mkdir's, after its rank failed): the
        // server cannot find the base (Ceph answers a stale ino with an error, not ENOTDIR).
        if self.node(path.base).is_none() {
            return Err(Errno::ENOENT);
        }
        if !self.is_dir(path.base) {
            return Err(Errno::ENOTDIR);
        }
        Ok((path.base, &path.components[0]))
    }

    fn is_ancestor_or_self(&self, anc: Ino, mut of: Ino) -> bool {
        for _ in 0..10_000 {
            if of == anc {
                return true;
            }
            match self.node(of).and_then(|n| n.parent) {
                Some(p) => of = p,
                None => return false,
            }
        }
        false
    }

    fn unlink_name(&mut self, dir: Ino, name: &str) {
        let Some(ino) = self.nodes.get_mut(&dir).unwrap().entries.remove(name) else { return };
        let n = self.nodes.get_mut(&ino).unwrap();
        n.nlink = n.nlink.saturating_sub(1);
        if n.kind == Kind::Dir {
            n.removed = true;
            n.parent = None;
        }
    }

    fn link_name(&mut self, dir: Ino, name: &str, ino: Ino) {
        self.nodes.get_mut(&dir).unwrap().entries.insert(name.to_string(), ino);
        let n = self.nodes.get_mut(&ino).unwrap();
        if n.kind == Kind::Dir {
            n.parent = Some(dir);
        }
    }

    fn create(&mut self, path: &FilePath, kind: Kind, got: Res) -> Result<(), String> {
        let (dir, name) = match self.resolve_parent(path) {
            Ok(x) => x,
            Err(e) => return expect(got, Err(e)),
        };
        if self.entry(dir, name).is_some() {
            return expect(got, Err(Errno::EEXIST));
        }
        let Ok(Some(ino)) = got else { return Err(format!("expected a new inode, got {got:?}")) };
        if self.nodes.contains_key(&ino) {
            return Err(format!("new inode {ino} already exists"));
        }
        let parent = (kind == Kind::Dir).then_some(dir);
        self.nodes.insert(ino, Node::new(kind, parent));
        self.link_name(dir, name, ino);
        Ok(())
    }

    /// Checks a request's first reply against the model and applies the request.
    pub fn apply(&mut self, client: u64, op: &Op, reply: &Reply) -> Result<(), String> {
        let got = reply.result;
        match op {
            Op::Mkdir { path, .. } => self.create(path, Kind::Dir, got),
            Op::Mknod { path, mode } => {
                let kind = if mode & S_IFMT == S_IFIFO { Kind::Fifo } else { Kind::File };
                self.create(path, kind, got)
            }
            Op::Symlink { path, .. } => self.create(path, Kind::Symlink, got),
            Op::Create { path, excl, .. } => {
                if let Ok((dir, name)) = self.resolve_parent(path)
                    && let Some(existing) = self.entry(dir, name)
                {
                    let want = match (*excl, self.is_dir(existing)) {
                        (true, _) => Err(Errno::EEXIST),
                        (false, true) => Err(Errno::EISDIR),
                        (false, false) => Ok(Some(existing)),
                    };
                    return expect(got, want);
                }
                self.create(path, Kind::File, got)
            }
            Op::Unlink { path } | Op::Rmdir { path } => {
                let rmdir = matches!(op, Op::Rmdir { .. });
                let (dir, name) = match self.resolve_parent(path) {
                    Ok(x) => x,
                    Err(e) => return expect(got, Err(e)),
                };
                let Some(victim) = self.entry(dir, name) else { return expect(got, Err(Errno::ENOENT)) };
                let is_dir = self.is_dir(victim);
                let want = if rmdir && !is_dir {
                    Err(Errno::ENOTDIR)
                } else if !rmdir && is_dir {
                    Err(Errno::EISDIR)
                } else if rmdir && !self.nodes[&victim].entries.is_empty() {
                    Err(Errno::ENOTEMPTY)
                } else {
                    Ok(None)
                };
                expect(got, want)?;
                if want.is_ok() {
                    let name = name.to_string();
                    self.unlink_name(dir, &name);
                }
                Ok(())
            }
            Op::Link { path, target } => {
                let want = self.link_outcome(path, target);
                expect(got, want)?;
                if let Ok(Some(t)) = want {
                    self.nodes.get_mut(&t).unwrap().nlink += 1;
                    self.link_name(path.base, &path.components[0], t);
                }
                Ok(())
            }
            Op::Rename { dest, src } => {
                let want = self.rename_outcome(dest, src);
                expect(got, want.map(|x| x.map(|(srci, _)| srci)))?;
                if let Ok(Some((srci, true))) = want {
                    let (d, n) = (dest.base, dest.components[0].clone());
                    let (s, m) = (src.base, src.components[0].clone());
                    self.nodes.get_mut(&s).unwrap().entries.remove(&m);
                    if self.entry(d, &n).is_some() {
                        self.unlink_name(d, &n);
                    }
                    self.link_name(d, &n, srci);
                }
                Ok(())
            }
            Op::Setattr { path, attrs } => {
                let want = self.resolve(path).and_then(|t| {
                    let kind = self.nodes[&t].kind;
                    match (attrs.size.is_some(), kind) {
                        (true, Kind::Dir) => Err(Errno::EISDIR),
                        (true, Kind::Fifo | Kind::Symlink) => Err(Errno::EINVAL),
                        _ => Ok(Some(t)),
                    }
                });
                expect(got, want)
            }
            Op::Setxattr { path, name, flags, .. } => {
                let want = self.resolve(path).and_then(|t| {
                    let exists = self.nodes[&t].xattrs.contains(name);
                    match flags {
                        mds_locker::XattrFlags::Create if exists => Err(Errno::EEXIST),
                        mds_locker::XattrFlags::Replace if !exists => Err(Errno::ENODATA),
                        _ => Ok(Some(t)),
                    }
                });
                expect(got, want)?;
                if let Ok(Some(t)) = want {
                    self.nodes.get_mut(&t).unwrap().xattrs.insert(name.clone());
                }
                Ok(())
            }
            Op::Removexattr { path, name } => {
                let want = self.resolve(path).and_then(|t| {
                    if self.nodes[&t].xattrs.contains(name) { Ok(Some(t)) } else { Err(Errno::ENODATA) }
                });
                expect(got, want)?;
                if let Ok(Some(t)) = want {
                    self.nodes.get_mut(&t).unwrap().xattrs.remove(name);
                }
                Ok(())
            }
            Op::Lookup { path, .. } | Op::Getattr { path, .. } => expect(got, self.resolve(path).map(Some)),
            Op::Readdir { path } => {
                let want = self
                    .resolve(path)
                    .and_then(|t| if self.is_dir(t) { Ok(Some(t)) } else { Err(Errno::ENOTDIR) });
                expect(got, want)?;
                if let Ok(Some(t)) = want {
                    let model: Vec<DirEntry> = self.nodes[&t]
                        .entries
                        .iter()
                        .map(|(name, ino)| DirEntry {
                            name: name.clone(),
                            ino: *ino,
                            d_type: self.nodes[ino].kind.type_bits(),
                        })
                        .collect();
                    if reply.data != ReplyData::Entries(model.clone()) {
                        return Err(format!("readdir: got {:?}, model {model:?}", reply.data));
                    }
                }
                Ok(())
            }
            Op::Open { path, file_mode, trunc, .. } => {
                let want = self.resolve(path).and_then(|t| {
                    let kind = self.nodes[&t].kind;
                    if kind == Kind::Dir && file_mode & FILE_MODE_WR != 0 {
                        return Err(Errno::EISDIR);
                    }
                    match (*trunc, kind) {
                        (true, Kind::Dir) => Err(Errno::EISDIR),
                        (true, Kind::Fifo) => Err(Errno::EINVAL),
                        _ => Ok(Some(t)),
                    }
                });
                expect(got, want)
            }
            Op::SetFileLock { path, rule: FileLockRule::Flock, lock, wait } => {
                let t = match self.resolve(path) {
                    Ok(t) => t,
                    Err(e) => return expect(got, Err(e)),
                };
                let me = (client, lock.owner);
                let table = self.flocks.entry(t).or_default();
                if lock.kind == FileLockKind::Unlock {
                    table.remove(&me);
                    return expect(got, Ok(Some(t)));
                }
                let conflict = conflicting(table, me, lock.kind).is_some();
                match (conflict, *wait) {
                    (true, false) => expect(got, Err(Errno::EAGAIN)),
                    (true, true) => Err(format!("blocking flock granted over a conflict: {table:?}")),
                    (false, _) => {
                        table.insert(me, lock.kind);
                        expect(got, Ok(Some(t)))
                    }
                }
            }
            Op::GetFileLock { path, rule: FileLockRule::Flock, lock } => {
                let t = match self.resolve(path) {
                    Ok(t) => t,
                    Err(e) => return expect(got, Err(e)),
                };
                expect(got, Ok(Some(t)))?;
                let table = self.flocks.entry(t).or_default();
                let conflict = conflicting(table, (client, lock.owner), lock.kind);
                match (&reply.data, conflict) {
                    (ReplyData::FileLock(None), None) => Ok(()),
                    (ReplyData::FileLock(Some(FileLock { client: c, owner: o, kind, .. })), Some(_)) => {
                        match table.get(&(*c, *o)) {
                            Some(k) if k == kind && (*c, *o) != (client, lock.owner) => Ok(()),
                            _ => Err(format!("getfilelock reported {:?}, model {table:?}", reply.data)),
                        }
                    }
                    _ => Err(format!("getfilelock reported {:?}, model {table:?}", reply.data)),
                }
            }
            other => Err(format!("op not modelled: {other:?}")),
        }
    }

    fn link_outcome(&self, path: &FilePath, target: &FilePath) -> Res {
        let (d, n) = self.named(path)?;
        let (s, m) = self.named(target)?;
        let t = self.entry(s, m).ok_or(Errno::ENOENT)?;
        if self.nodes[&d].removed {
            return Err(Errno::ENOENT);
        }
        if self.entry(d, n).is_some() {
            return Err(Errno::EEXIST);
        }
        if self.is_dir(t) {
            return Err(Errno::EINVAL);
        }
        Ok(Some(t))
    }

    /// `Ok(Some((srci, changes)))`.
    fn rename_outcome(&self, dest: &FilePath, src: &FilePath) -> Result<Option<(Ino, bool)>, Errno> {
        let (d, n) = self.named(dest)?;
        let (s, m) = self.named(src)?;
        let srci = self.entry(s, m).ok_or(Errno::ENOENT)?;
        if self.nodes[&d].removed {
            return Err(Errno::ENOENT);
        }
        let oldin = self.entry(d, n);
        if (d == s && n == m) || oldin == Some(srci) {
            return Ok(Some((srci, false)));
        }
        let src_dir = self.is_dir(srci);
        if src_dir && self.is_ancestor_or_self(srci, d) {
            return Err(Errno::EINVAL);
        }
        if let Some(o) = oldin {
            let old_dir = self.is_dir(o);
            if old_dir && !src_dir {
                return Err(Errno::EISDIR);
            }
            if !old_dir && src_dir {
                return Err(Errno::ENOTDIR);
            }
            if old_dir && !self.nodes[&o].entries.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
        }
        Ok(Some((srci, true)))
    }

    /// A client's session ended: its advisory locks go.
    pub fn evict(&mut self, client: u64) {
        for t in self.flocks.values_mut() {
            t.retain(|(c, _), _| *c != client);
        }
    }

    /// Every (dir, name, ino) reachable from the root.
    pub fn reachable(&self) -> Vec<(Ino, String, Ino)> {
        let mut out = Vec::new();
        let mut stack = vec![Ino::ROOT];
        let mut seen = BTreeSet::new();
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir) {
                continue;
            }
            for (name, ino) in &self.nodes[&dir].entries {
                out.push((dir, name.clone(), *ino));
                if self.is_dir(*ino) {
                    stack.push(*ino);
                }
            }
        }
        out
    }
}

fn conflicting(
    table: &BTreeMap<(u64, u64), FileLockKind>,
    me: (u64, u64),
    kind: FileLockKind,
) -> Option<(u64, u64)> {
    table
        .iter()
        .find(|(owner, k)| {
            **owner != me && (**k == FileLockKind::Exclusive || kind == FileLockKind::Exclusive)
        })
        .map(|(o, _)| *o)
}

fn expect(got: Res, want: Res) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("got {got:?}, model says {want:?}")) }
}
