//! JSON dumps for operators and tests: `dump_locks` (which Ceph lacks), `dump_ops_in_flight`
//! with Ceph's flag points, `session ls`, `dump cache` and `dump inode`.

use serde_json::{Value, json};

use crate::cache::{InodeData, Linkage};
use crate::flock::{FileLock, FileLockRule};
use crate::ids::{DentryId, Ino, InodeId, LockId, ObjRef};
use crate::lock::Lock;
use crate::locker::Locker;
use crate::mutation::Phase;

/// Which locks `dump_locks` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFilter {
    /// Every lock of every cached object.
    All,
    /// Only locks that are held, leased, transitional, waited on or not in their initial state.
    Active,
}

fn is_active(lock: &Lock) -> bool {
    let initial = match lock.machine() {
        lock_sm::Machine::Local => lock_sm::LockState::Lock,
        _ => lock_sm::LockState::Sync,
    };
    lock.is_used() || !lock.is_stable() || lock.waiters().next().is_some() || lock.state() != initial
}

fn lock_json(l: &Locker, id: LockId, lock: &Lock) -> Value {
    let xlocks: Vec<Value> = lock
        .xlock_holders()
        .iter()
        .map(|h| json!({ "req": h.req.0, "client": h.client, "done": h.done }))
        .collect();
    json!({
        "object": l.cache().object_name(id.obj),
        "lock": id.ty.name(),
        "auth": lock.is_auth(),
        "state": lock.state().log_name(),
        "stable": lock.is_stable(),
        "rdlocks": lock.rdlock_holders().iter().map(|(r, n)| json!({ "req": r.0, "count": n })).collect::<Vec<_>>(),
        "wrlocks": lock.wrlock_holders().iter().map(|(r, n)| json!({ "req": r.0, "count": n })).collect::<Vec<_>>(),
        "xlocks": xlocks,
        "xlock_by_client": lock.xlock_by_client(),
        "excl_client": lock.excl_client(),
        "leases": lock.leases().keys().collect::<Vec<_>>(),
        "gather_set": lock.gather_set().iter().collect::<Vec<_>>(),
        "waiters": lock.waiters().map(|w| json!({ "req": w.req.0, "mask": w.mask })).collect::<Vec<_>>(),
    })
}

impl Locker {
    /// Every (or every active) lock as a JSON array: object, lock type, state, holders,
    /// waiters and gather set.
    pub fn dump_locks(&self, filter: LockFilter) -> Value {
        let c = self.cache();
        let mut out = Vec::new();
        let objs = c.inode_ids().map(ObjRef::Inode).chain(c.dentry_ids().map(ObjRef::Dentry));
        for obj in objs {
            for id in c.lock_ids(obj) {
                if let Ok(lock) = c.lock(id)
                    && (filter == LockFilter::All || is_active(lock))
                {
                    out.push(lock_json(self, id, lock));
                }
            }
        }
        Value::Array(out)
    }

    /// In-flight requests with their op-tracker flag points (Ceph's `dump_ops_in_flight`).
    pub fn dump_ops_in_flight(&self) -> Value {
        let ops: Vec<Value> = self
            .requests()
            .map(|m| {
                let phase = match m.phase() {
                    Phase::Locking => "locking".to_string(),
                    Phase::Holding => "holding".to_string(),
                    Phase::Committing(s) => format!("committing seq {}", s.0),
                };
                json!({
                    "reqid": m.reqid().0,
                    "client": m.client(),
                    "phase": phase,
                    "locking": m.locking().map(|l| format!("{} {}", self.cache().object_name(l.obj), l.ty)),
                    "waiting_on": m.waiting_on().map(|l| format!("{} {}", self.cache().object_name(l.obj), l.ty)),
                    "held": m.held().iter().map(|(l, f)| json!({
                        "lock": format!("{} {}", self.cache().object_name(l.obj), l.ty),
                        "flags": f,
                    })).collect::<Vec<_>>(),
                    "events": m.events().iter().map(|e| json!({ "time_ms": e.at_ms, "event": e.what })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "ops": ops, "num_ops": self.requests().count() })
    }

    /// Open sessions (Ceph's `session ls`, reduced to what the Locker tracks).
    pub fn session_ls(&self) -> Value {
        Value::Array(
            self.sessions()
                .map(|s| {
                    json!({
                        "client": s.client(),
                        "num_caps": s.caps().len(),
                        "num_requests": s.requests().len(),
                        "last_seen_ms": s.last_seen_ms(),
                    })
                })
                .collect(),
        )
    }

    /// Every cached inode, dentry and dirfrag (Ceph's `dump cache`): committed and projected
    /// content side by side, so an operator sees what is durable and what is in flight.
    pub fn dump_cache(&self) -> Value {
        let c = self.cache();
        let inodes: Vec<Value> = c.inode_ids().filter_map(|i| self.inode_summary(i)).collect();
        let dentries: Vec<Value> = c.dentry_ids().filter_map(|d| self.dentry_json(d)).collect();
        let mut dirfrags = Vec::new();
        for i in c.inode_ids() {
            let Some(n) = c.inode(i) else { continue };
            for (frag, id) in n.dirfrags() {
                let Some(f) = c.dirfrag(*id) else { continue };
                let fnode = f.fnode();
                let pf = f.projected_fnode();
                dirfrags.push(json!({
                    "dir": n.ino().to_string(),
                    "frag": frag,
                    "complete": f.is_complete(),
                    "num_dentries": f.dentries().len(),
                    "version": fnode.version,
                    "projected_version": pf.version,
                    "fragstat": { "nfiles": fnode.fragstat.nfiles, "nsubdirs": fnode.fragstat.nsubdirs },
                    "projected_fragstat": { "nfiles": pf.fragstat.nfiles, "nsubdirs": pf.fragstat.nsubdirs },
                }));
            }
        }
        json!({ "inodes": inodes, "dentries": dentries, "dirfrags": dirfrags })
    }

    /// One inode in detail (Ceph's `dump inode <ino>`): content, projections, path, every
    /// lock with its holders and waiters, caps per client and advisory locks. `None` if the
    /// inode is not cached.
    pub fn dump_inode(&self, ino: Ino) -> Option<Value> {
        let c = self.cache();
        let id = c.lookup_ino(ino)?;
        let n = c.inode(id)?;
        let locks: Vec<Value> = c
            .lock_ids(ObjRef::Inode(id))
            .into_iter()
            .filter_map(|l| c.lock(l).ok().map(|lock| lock_json(self, l, lock)))
            .collect();
        let caps: Vec<Value> = n
            .caps()
            .iter()
            .map(|(client, cap)| {
                json!({
                    "client": client,
                    "pending": lock_sm::caps::format_caps(cap.pending()),
                    "issued": lock_sm::caps::format_caps(cap.issued()),
                    "wanted": lock_sm::caps::format_caps(cap.wanted()),
                    "last_sent": cap.last_sent(),
                    "revoking": cap.is_revoking(),
                })
            })
            .collect();
        let flocks = |rule| n.file_locks(rule).held().iter().map(file_lock_json).collect::<Vec<_>>();
        Some(json!({
            "ino": ino.to_string(),
            "path": self.path_of(id),
            "projected_path": self.projected_path_of(id),
            "auth": n.is_auth(),
            "inode": inode_data_json(n.data()),
            "projected": n.projections().map(|p| json!({ "by": p.by.0, "inode": inode_data_json(&p.data) })).collect::<Vec<_>>(),
            "parent": n.parent().map(|d| c.object_name(ObjRef::Dentry(d))),
            "projected_parent": n.projected_parent().map(|d| c.object_name(ObjRef::Dentry(d))),
            "dirfrags": n.dirfrags().keys().collect::<Vec<_>>(),
            "loner": n.loner(),
            "want_loner": n.want_loner(),
            "auth_pins": n.auth_pins(),
            "caps": caps,
            "locks": locks,
            "flocks": flocks(FileLockRule::Flock),
            "fcntl_locks": flocks(FileLockRule::Fcntl),
        }))
    }

    fn inode_summary(&self, id: InodeId) -> Option<Value> {
        let n = self.cache().inode(id)?;
        let d = n.data();
        Some(json!({
            "ino": n.ino().to_string(),
            "path": self.path_of(id),
            "mode": format!("{:o}", d.mode),
            "nlink": d.nlink,
            "size": d.size,
            "version": d.version,
            "projected_version": n.projected_data().version,
            "num_projected": n.projections().count(),
            "num_caps": n.caps().len(),
            "loner": n.loner(),
            "auth_pins": n.auth_pins(),
        }))
    }

    fn dentry_json(&self, id: DentryId) -> Option<Value> {
        let c = self.cache();
        let d = c.dentry(id)?;
        let dir = c.dentry_dir_inode(id).and_then(|i| c.inode(i)).map(|i| i.ino().to_string());
        Some(json!({
            "dir": dir,
            "name": d.name(),
            "linkage": self.linkage_json(d.linkage()),
            "projected_linkage": self.linkage_json(d.projected_linkage()),
            "version": d.version(),
            "projected_version": d.projected_version(),
            "auth_pins": d.auth_pins(),
        }))
    }

    fn linkage_json(&self, l: Linkage) -> Value {
        match l {
            Linkage::Null => json!("null"),
            Linkage::Primary(i) => json!({ "primary": self.cache().inode(i).map(|n| n.ino().to_string()) }),
            Linkage::Remote { ino, d_type } => {
                json!({ "remote": ino.to_string(), "d_type": format!("{d_type:o}") })
            }
        }
    }

    /// `/a/b` for an inode under the root, `~mds0/stray3/10000000002` under the private
    /// directory, following committed primary links.
    fn path_of(&self, id: InodeId) -> String {
        self.path_by(id, false)
    }

    /// The same, following projected primary links (where in-flight renames put it).
    fn projected_path_of(&self, id: InodeId) -> String {
        self.path_by(id, true)
    }

    fn path_by(&self, id: InodeId, projected: bool) -> String {
        let c = self.cache();
        let mut parts = Vec::new();
        let mut cur = id;
        for _ in 0..4096 {
            let Some(n) = c.inode(cur) else { break };
            let parent = if projected { n.projected_parent() } else { n.parent() };
            let Some(dn) = parent else {
                let base = if cur == c.root() {
                    String::new()
                } else if cur == c.mdsdir() {
                    format!("~mds{}", c.rank())
                } else {
                    format!("#{}", n.ino())
                };
                parts.push(base);
                break;
            };
            parts.push(c.dentry(dn).map(|d| d.name().to_string()).unwrap_or_default());
            match c.dentry_dir_inode(dn) {
                Some(p) => cur = p,
                None => break,
            }
        }
        parts.reverse();
        let joined = parts.join("/");
        if joined.is_empty() { "/".to_string() } else { joined }
    }
}

fn inode_data_json(d: &InodeData) -> Value {
    json!({
        "version": d.version,
        "mode": format!("{:o}", d.mode),
        "uid": d.uid,
        "gid": d.gid,
        "size": d.size,
        "mtime_ms": d.mtime_ms,
        "ctime_ms": d.ctime_ms,
        "nlink": d.nlink,
        "xattrs": d.xattrs.keys().collect::<Vec<_>>(),
        "xattr_version": d.xattr_version,
        "dirstat": { "nfiles": d.dirstat.nfiles, "nsubdirs": d.dirstat.nsubdirs },
        "rstat": { "rfiles": d.rstat.rfiles, "rsubdirs": d.rstat.rsubdirs },
        "symlink": d.symlink,
    })
}

fn file_lock_json(l: &FileLock) -> Value {
    json!({
        "kind": format!("{:?}", l.kind),
        "start": l.start,
        "length": l.length,
        "client": l.client,
        "owner": l.owner,
        "pid": l.pid,
    })
}
