//! The sequential model of the namespace the MDS simulator compares against (sled's approach,
//! STYLE.md), adapted from mds-locker's randomized test (tests/model): a request takes effect
//! at its first reply (the early reply of a journaled operation, §4.18, or the only reply of a
//! read), because until its journal entry is safe everyone who could observe the change waits
//! on a lock. `apply` checks a reply against the model, with errors in the order the server
//! operations check them (§5.1 traversal first), and advances it.

use std::collections::{BTreeMap, BTreeSet};

use lock_sm::caps::FILE_MODE_WR;
use mds_locker::cache::{S_IFDIR, S_IFREG};
use mds_locker::{DirEntry, Errno, FilePath, Ino, Op, Reply, ReplyData};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

impl Kind {
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::File => S_IFREG,
            Kind::Dir => S_IFDIR,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub nlink: u32,
    /// Directories: the directory holding them; `None` for the root and removed ones.
    pub parent: Option<Ino>,
    pub removed: bool,
    pub entries: BTreeMap<String, Ino>,
    pub xattrs: BTreeSet<String>,
}

impl Node {
    fn new(kind: Kind, parent: Option<Ino>) -> Node {
        Node { kind, nlink: 1, parent, removed: false, entries: BTreeMap::new(), xattrs: BTreeSet::new() }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Model {
    pub nodes: BTreeMap<Ino, Node>,
}

type Res = Result<Option<Ino>, Errno>;

impl Model {
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
    pub fn apply(&mut self, op: &Op, reply: &Reply) -> Result<(), String> {
        let got = reply.result;
        match op {
            Op::Mkdir { path, .. } => self.create(path, Kind::Dir, got),
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
                        _ => Ok(Some(t)),
                    }
                });
                expect(got, want)
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

fn expect(got: Res, want: Res) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("got {got:?}, model says {want:?}")) }
}
