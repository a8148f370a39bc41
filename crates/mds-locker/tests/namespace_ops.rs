//! The remaining server operations on one rank (§5.1, §5.2, §6.2, §6.3, §8 facts 59, 62–65,
//! 68): their lock sets as data, their effects, their POSIX errors (which change nothing),
//! the completed-request table and the cache dumps.

mod common;

use common::*;
use lock_sm::LockState as S;
use lock_sm::LockType as T;
use lock_sm::caps;
use mds_locker::cache::{InodeData, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG};
use mds_locker::mutation::{RDLOCK, WRLOCK, XLOCK};
use mds_locker::{
    ClientRequest, DentryId, DirEntry, Effect, Errno, Event, FileLock, FileLockKind, FileLockRule, FilePath,
    Ino, InodeId, JournalEntry, Linkage, LockFilter, LockId, LockerConfig, Op, ReplyData, ReqId, SetAttr,
    XattrFlags,
};

// ---- fixture and helpers ------------------------------------------------------------------

fn cfg() -> LockerConfig {
    LockerConfig { record_transitions: true, record_lock_sets: true, ..LockerConfig::default() }
}

fn file_data(nlink: u32) -> InodeData {
    InodeData { mode: S_IFREG | 0o644, nlink, version: 1, ..InodeData::default() }
}

fn dir_data() -> InodeData {
    InodeData { mode: S_IFDIR | 0o755, nlink: 1, version: 1, ..InodeData::default() }
}

/// `/f` (with xattr `user.a`), `/g`, `/d/x` (two links), `/e` (empty), `/l` → `/d/x`.
fn fixture() -> H {
    let mut h = H::with_config(cfg());
    let root = h.l.cache().root();
    let mut f = file_data(1);
    f.xattrs.insert("user.a".to_string(), b"1".to_vec());
    h.l.cache_mut().create_committed(root, "f", f);
    h.l.cache_mut().create_committed(root, "g", file_data(1));
    let (_, d) = h.l.cache_mut().create_committed(root, "d", dir_data());
    let (_, x) = h.l.cache_mut().create_committed(d, "x", file_data(2));
    h.l.cache_mut().create_committed(root, "e", dir_data());
    let frag = h.l.cache_mut().dirfrag_of(root);
    let l = h.l.cache_mut().add_null_dentry(frag, "l");
    let x_ino = h.l.cache().inode(x).unwrap().ino();
    h.l.cache_mut().link_remote_now(l, x_ino, S_IFREG);
    for dir in [root, d] {
        h.l.cache_mut().recompute_dir_stats(dir);
    }
    h
}

/// The inode at an absolute path, following the newest (projected) links.
fn inode_at(h: &H, path: &str) -> Option<InodeId> {
    let c = h.l.cache();
    let mut cur = c.root();
    for name in path.split('/').filter(|s| !s.is_empty()) {
        let dn = c.lookup_dentry(cur, name)?;
        cur = match c.dentry(dn)?.projected_linkage() {
            Linkage::Primary(i) => i,
            Linkage::Remote { ino, .. } => c.lookup_ino(ino)?,
            Linkage::Null => return None,
        };
    }
    Some(cur)
}

/// The dentry at an absolute path (it may be null).
fn dentry_at(h: &H, path: &str) -> Option<DentryId> {
    let (dir, name) = path.rsplit_once('/')?;
    let dir = inode_at(h, if dir.is_empty() { "/" } else { dir })?;
    h.l.cache().lookup_dentry(dir, name)
}

fn ino(h: &H, path: &str) -> Ino {
    h.l.cache().inode(inode_at(h, path).unwrap_or_else(|| panic!("no {path}"))).unwrap().ino()
}

/// A depth-1 path: directory `dir` (absolute) and `name`.
fn at(h: &H, dir: &str, name: &str) -> FilePath {
    FilePath { base: ino(h, dir), components: vec![name.to_string()] }
}

/// A path from the root.
fn p(path: &str) -> FilePath {
    FilePath::new(Ino::ROOT, path)
}

/// The stray dentry now holding `victim`'s primary link, if any.
fn stray_dentry_of(h: &H, victim: InodeId) -> Option<(InodeId, DentryId)> {
    let c = h.l.cache();
    for s in c.strays() {
        let frag = *c.inode(*s)?.dirfrags().get(&0)?;
        for dn in c.dirfrag(frag)?.dentries().values() {
            if c.dentry(*dn)?.projected_linkage() == Linkage::Primary(victim) {
                return Some((*s, *dn));
            }
        }
    }
    None
}

fn run(h: &mut H, reqid: u64, client: u64, op: Op) -> Vec<Effect> {
    h.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }))
}

fn run_with(h: &mut H, reqid: u64, client: u64, op: impl FnOnce(&H) -> Op) -> Vec<Effect> {
    let op = op(h);
    run(h, reqid, client, op)
}

/// RENAME `src_dir/src` to `dest_dir/dest` (depth-1 paths).
fn ren(h: &H, dest_dir: &str, dest: &str, src_dir: &str, src: &str) -> Op {
    Op::Rename { dest: at(h, dest_dir, dest), src: at(h, src_dir, src) }
}

fn replies(fx: &[Effect]) -> Vec<(u64, bool, Result<Option<Ino>, Errno>)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some((r.reqid.0, r.safe, r.result)),
            _ => None,
        })
        .collect()
}

fn reply_data(fx: &[Effect], reqid: u64) -> ReplyData {
    fx.iter()
        .find_map(|e| match e {
            Effect::Reply(r) if r.reqid.0 == reqid && r.safe => Some(r.data.clone()),
            _ => None,
        })
        .expect("safe reply")
}

fn entries(fx: &[Effect]) -> Vec<JournalEntry> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::JournalSubmit { entry, .. } => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

/// Every client acknowledges every revoke it was sent; returns the effects.
fn ack_all(h: &mut H) -> Vec<Effect> {
    let mut out = Vec::new();
    let revoking: Vec<(u64, InodeId)> = h
        .l
        .cache()
        .inode_ids()
        .flat_map(|i| {
            let n = h.l.cache().inode(i).unwrap();
            n.caps().iter().filter(|(_, c)| c.is_revoking()).map(move |(c, _)| (*c, i)).collect::<Vec<_>>()
        })
        .collect();
    for (c, i) in revoking {
        out.extend(h.ack(c, i));
    }
    out
}

/// Makes every submitted entry safe.
fn settle(h: &mut H) -> Vec<Effect> {
    match h.l.committing().last() {
        Some((seq, _)) => h.safe(seq.0),
        None => Vec::new(),
    }
}

/// The metadata a failed request must leave unchanged (lock states may differ: a lock the
/// request took may settle in another stable state afterwards), and no lock left held.
fn snapshot(h: &H) -> serde_json::Value {
    let held: Vec<serde_json::Value> = h
        .l
        .dump_locks(LockFilter::Active)
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            ["rdlocks", "wrlocks", "xlocks", "waiters"].iter().any(|k| !l[k].as_array().unwrap().is_empty())
        })
        .cloned()
        .collect();
    serde_json::json!({ "cache": h.l.dump_cache(), "held": held })
}

// ---- §5.2 lock sets, data-driven ------------------------------------------------------------

/// `(object, lock type, mode)`: the object is an absolute path (the inode for inode locks, the
/// dentry for DN / DVERSION) or `stray`: the stray directory (inode locks) or the stray dentry
/// that receives the victim's primary link.
type Expect = &'static [(&'static str, T, char)];

struct Case {
    name: &'static str,
    op: fn(&H) -> Op,
    /// The inode whose primary link goes to a stray directory, for `stray` entries.
    victim: Option<&'static str>,
    expect: Expect,
    /// EUpdate description of the journal entry, or `None` if nothing is journaled.
    journal: Option<&'static str>,
}

const PATH_F: Expect = &[("/", T::ISnap, 'r'), ("/f", T::Dn, 'r'), ("/f", T::ISnap, 'r')];
const CREATE_N: Expect = &[
    ("/", T::ISnap, 'r'),
    ("/", T::IFile, 'w'),
    ("/", T::INest, 'w'),
    ("/", T::IAuth, 'r'),
    ("/n", T::Dn, 'x'),
    ("/n", T::DVersion, 'w'),
];
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "readdir: rd dir filelock + dirfragtreelock (fact 65)",
            op: |_| Op::Readdir { path: p("d") },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/d", T::Dn, 'r'),
                ("/d", T::ISnap, 'r'),
                ("/d", T::IFile, 'r'),
                ("/d", T::IDft, 'r'),
            ],
            journal: None,
        },
        Case {
            name: "open: path locks and the target's snaplock only",
            op: |_| Op::Open {
                path: p("f"),
                file_mode: caps::FILE_MODE_RD,
                trunc: false,
                directory: false,
                mask: 0,
            },
            victim: None,
            expect: PATH_F,
            journal: None,
        },
        Case {
            name: "open O_TRUNC with As: rd authlock, x filelock (+wr versionlock)",
            op: |_| Op::Open {
                path: p("f"),
                file_mode: caps::FILE_MODE_RDWR,
                trunc: true,
                directory: false,
                mask: caps::AUTH_SHARED,
            },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IFile, 'x'),
                ("/f", T::IAuth, 'r'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("open_truncate"),
        },
        Case {
            name: "mknod: as create",
            op: |_| Op::Mknod { path: p("n"), mode: 0o644 },
            victim: None,
            expect: CREATE_N,
            journal: Some("mknod"),
        },
        Case {
            name: "symlink: as mkdir",
            op: |_| Op::Symlink { path: p("n"), target: "f".to_string() },
            victim: None,
            expect: CREATE_N,
            journal: Some("symlink"),
        },
        Case {
            name: "unlink of a primary link (fact 62)",
            op: |_| Op::Unlink { path: p("f") },
            victim: Some("/f"),
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/f", T::Dn, 'x'),
                ("/f", T::DVersion, 'w'),
                ("/f", T::ISnap, 'x'),
                ("/f", T::ILink, 'x'),
                ("/f", T::IVersion, 'w'),
                ("stray", T::IFile, 'w'),
                ("stray", T::INest, 'w'),
                ("stray", T::Dn, 'x'),
                ("stray", T::DVersion, 'w'),
            ],
            journal: Some("unlink_local"),
        },
        Case {
            name: "unlink of a remote link: no stray",
            op: |_| Op::Unlink { path: p("l") },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/l", T::Dn, 'x'),
                ("/l", T::DVersion, 'w'),
                ("/d/x", T::ISnap, 'x'),
                ("/d/x", T::ILink, 'x'),
                ("/d/x", T::IVersion, 'w'),
            ],
            journal: Some("unlink_local"),
        },
        Case {
            name: "rmdir: also rd the victim's filelock (fact 63)",
            op: |_| Op::Rmdir { path: p("e") },
            victim: Some("/e"),
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/e", T::Dn, 'x'),
                ("/e", T::DVersion, 'w'),
                ("/e", T::ISnap, 'x'),
                ("/e", T::IFile, 'r'),
                ("/e", T::ILink, 'x'),
                ("/e", T::IVersion, 'w'),
                ("stray", T::IFile, 'w'),
                ("stray", T::INest, 'w'),
                ("stray", T::Dn, 'x'),
                ("stray", T::DVersion, 'w'),
            ],
            journal: Some("unlink_local"),
        },
        Case {
            name: "link by two paths: rd srcdn, x target snaplock + linklock",
            op: |h| Op::Link { path: at(h, "/", "n"), target: at(h, "/", "f") },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/f", T::Dn, 'r'),
                ("/n", T::Dn, 'x'),
                ("/n", T::DVersion, 'w'),
                ("/f", T::ISnap, 'x'),
                ("/f", T::ILink, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("link_local"),
        },
        Case {
            name: "link by inode: target parent's snap chain, dest without authlock",
            op: |h| Op::Link {
                path: at(h, "/", "n"),
                target: FilePath { base: ino(h, "/d/x"), components: vec![] },
            },
            victim: None,
            expect: &[
                ("/d", T::ISnap, 'r'),
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/n", T::Dn, 'x'),
                ("/n", T::DVersion, 'w'),
                ("/d/x", T::ISnap, 'x'),
                ("/d/x", T::ILink, 'x'),
                ("/d/x", T::IVersion, 'w'),
            ],
            journal: Some("link_local"),
        },
        Case {
            name: "rename across directories (fact 68: the root group first)",
            op: |h| Op::Rename { dest: at(h, "/d", "y"), src: at(h, "/", "f") },
            victim: None,
            expect: &[
                ("/d", T::ISnap, 'r'),
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/f", T::Dn, 'x'),
                ("/f", T::DVersion, 'w'),
                ("/d", T::IFile, 'w'),
                ("/d", T::INest, 'w'),
                ("/d/y", T::Dn, 'x'),
                ("/d/y", T::DVersion, 'w'),
                ("/f", T::ISnap, 'x'),
                ("/f", T::ILink, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("rename"),
        },
        Case {
            name: "rename over an existing primary: x oldin, stray",
            op: |h| Op::Rename { dest: at(h, "/d", "x"), src: at(h, "/", "g") },
            victim: Some("/d/x"),
            expect: &[
                ("/d", T::ISnap, 'r'),
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/g", T::Dn, 'x'),
                ("/g", T::DVersion, 'w'),
                ("/d", T::IFile, 'w'),
                ("/d", T::INest, 'w'),
                ("/d/x", T::Dn, 'x'),
                ("/d/x", T::DVersion, 'w'),
                ("/g", T::ISnap, 'x'),
                ("/g", T::ILink, 'x'),
                ("/g", T::IVersion, 'w'),
                ("/d/x", T::ISnap, 'x'),
                ("/d/x", T::ILink, 'x'),
                ("/d/x", T::IVersion, 'w'),
                ("stray", T::IFile, 'w'),
                ("stray", T::INest, 'w'),
                ("stray", T::Dn, 'x'),
                ("stray", T::DVersion, 'w'),
            ],
            journal: Some("rename"),
        },
        Case {
            name: "rename a directory over an empty one: rd oldin filelock",
            op: |h| Op::Rename { dest: at(h, "/", "e"), src: at(h, "/", "d") },
            victim: Some("/e"),
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/", T::IFile, 'w'),
                ("/", T::INest, 'w'),
                ("/d", T::Dn, 'x'),
                ("/d", T::DVersion, 'w'),
                ("/e", T::Dn, 'x'),
                ("/e", T::DVersion, 'w'),
                ("/d", T::ISnap, 'x'),
                ("/d", T::ILink, 'x'),
                ("/d", T::IVersion, 'w'),
                ("/e", T::ISnap, 'x'),
                ("/e", T::IFile, 'r'),
                ("/e", T::ILink, 'x'),
                ("/e", T::IVersion, 'w'),
                ("stray", T::IFile, 'w'),
                ("stray", T::INest, 'w'),
                ("stray", T::Dn, 'x'),
                ("stray", T::DVersion, 'w'),
            ],
            journal: Some("rename"),
        },
        Case {
            name: "setattr mode: x authlock (fact 64)",
            op: |_| Op::Setattr { path: p("f"), attrs: SetAttr { mode: Some(0o600), ..SetAttr::default() } },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IAuth, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("setattr"),
        },
        Case {
            name: "setattr size + mtime: x filelock (fact 64)",
            op: |_| Op::Setattr {
                path: p("f"),
                attrs: SetAttr { size: Some(5), mtime_ms: Some(9), ..SetAttr::default() },
            },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IFile, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("setattr"),
        },
        Case {
            name: "setattr ctime only: wr versionlock only (fact 64)",
            op: |_| Op::Setattr { path: p("f"), attrs: SetAttr { ctime_ms: Some(3), ..SetAttr::default() } },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("setattr"),
        },
        Case {
            name: "setxattr: x xattrlock",
            op: |_| Op::Setxattr {
                path: p("f"),
                name: "user.b".to_string(),
                value: b"v".to_vec(),
                flags: XattrFlags::Any,
            },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IXattr, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("setxattr"),
        },
        Case {
            name: "removexattr: x xattrlock",
            op: |_| Op::Removexattr { path: p("f"), name: "user.a".to_string() },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IXattr, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: Some("removexattr"),
        },
        Case {
            name: "setfilelock: x flocklock, nothing journaled",
            op: |_| Op::SetFileLock {
                path: p("f"),
                rule: FileLockRule::Fcntl,
                lock: FileLock {
                    kind: FileLockKind::Exclusive,
                    start: 0,
                    length: 10,
                    client: 0,
                    owner: 7,
                    pid: 70,
                },
                wait: false,
            },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IFlock, 'x'),
                ("/f", T::IVersion, 'w'),
            ],
            journal: None,
        },
        Case {
            name: "getfilelock: rd flocklock",
            op: |_| Op::GetFileLock {
                path: p("f"),
                rule: FileLockRule::Flock,
                lock: FileLock {
                    kind: FileLockKind::Shared,
                    start: 0,
                    length: 0,
                    client: 0,
                    owner: 7,
                    pid: 70,
                },
            },
            victim: None,
            expect: &[
                ("/", T::ISnap, 'r'),
                ("/f", T::Dn, 'r'),
                ("/f", T::ISnap, 'r'),
                ("/f", T::IFlock, 'r'),
            ],
            journal: None,
        },
    ]
}

fn mode_flag(c: char) -> u8 {
    match c {
        'r' => RDLOCK,
        'w' => WRLOCK,
        'x' => XLOCK,
        _ => panic!("mode {c}"),
    }
}

fn resolve(h: &H, what: &str, ty: T, victim: Option<InodeId>) -> Option<LockId> {
    let dentry_lock = matches!(ty, T::Dn | T::DVersion);
    if what == "stray" {
        let (dir, dn) = stray_dentry_of(h, victim?)?;
        return Some(if dentry_lock { LockId::dentry(dn, ty) } else { LockId::inode(dir, ty) });
    }
    if dentry_lock {
        dentry_at(h, what).map(|d| LockId::dentry(d, ty))
    } else {
        inode_at(h, what).map(|i| LockId::inode(i, ty))
    }
}

#[test]
fn section_5_2_lock_sets_per_operation() {
    for case in cases() {
        let mut h = fixture();
        let victim = case.victim.map(|v| inode_at(&h, v).unwrap());
        // Resolve what exists now (inodes move or vanish from their paths once the op runs),
        // the rest (new dentries, the stray dentry) afterwards.
        let before: Vec<Option<LockId>> =
            case.expect.iter().map(|(w, t, _)| resolve(&h, w, *t, None)).collect();
        let op = (case.op)(&h);
        let fx = run(&mut h, 1, 1, op);
        let mut expect: Vec<(LockId, u8)> = case
            .expect
            .iter()
            .zip(before)
            .map(|((w, t, m), pre)| {
                let id = pre
                    .or_else(|| resolve(&h, w, *t, victim))
                    .unwrap_or_else(|| panic!("{}: cannot resolve {w} {t}", case.name));
                (id, mode_flag(*m))
            })
            .collect();
        let sets = h.l.take_lock_sets();
        let mut got =
            sets.get(&ReqId(1)).unwrap_or_else(|| panic!("{}: no lock set; {fx:?}", case.name)).clone();
        got.sort();
        expect.sort();
        assert_eq!(got, expect, "{}", case.name);
        let r = replies(&fx);
        assert!(r.iter().all(|(_, _, res)| res.is_ok()), "{}: {fx:?}", case.name);
        match case.journal {
            Some(what) => {
                let e = entries(&fx);
                assert_eq!(e.len(), 1, "{}", case.name);
                assert_eq!(e[0].description, what, "{}", case.name);
                assert_eq!(r, vec![(1, false, r[0].2)], "{}: early reply only", case.name);
                let fx = settle(&mut h);
                assert!(replies(&fx).contains(&(1, true, r[0].2)), "{}: safe reply {fx:?}", case.name);
            }
            None => {
                assert!(entries(&fx).is_empty(), "{}", case.name);
                assert_eq!(r.len(), 1, "{}", case.name);
                assert!(r[0].1, "{}: a reply without journal is safe", case.name);
            }
        }
        assert_eq!(h.l.requests().count(), 0, "{}", case.name);
    }
}

#[test]
fn fact_68_rename_locks_the_shallower_directory_group_first_in_both_directions() {
    let mut h = fixture();
    let root = h.l.cache().root();
    let d = inode_at(&h, "/d").unwrap();
    let root_file = LockId::inode(root, T::IFile);
    let d_file = LockId::inode(d, T::IFile);
    let order = |h: &mut H, reqid: u64| -> (usize, usize) {
        let sets = h.l.take_lock_sets();
        let set = &sets[&ReqId(reqid)];
        let pos = |id| set.iter().position(|(l, f)| *l == id && *f == WRLOCK).unwrap();
        (pos(root_file), pos(d_file))
    };
    // Deeper destination: the source group (root) is locked first.
    let op = Op::Rename { dest: at(&h, "/d", "y"), src: at(&h, "/", "f") };
    run(&mut h, 1, 1, op);
    let (r, dd) = order(&mut h, 1);
    assert!(r < dd, "root group first: {r} {dd}");
    settle(&mut h);
    // Shallower destination: the destination group (root) is locked first.
    let op = Op::Rename { dest: at(&h, "/", "f"), src: at(&h, "/d", "y") };
    run(&mut h, 2, 1, op);
    let (r, dd) = order(&mut h, 2);
    assert!(r < dd, "root group first: {r} {dd}");
    settle(&mut h);
    assert!(inode_at(&h, "/f").is_some() && inode_at(&h, "/d/y").is_none());
}

// ---- unlink / rmdir ---------------------------------------------------------------------------

#[test]
fn fact_62_unlink_moves_the_inode_to_a_stray_dir_and_both_stats_follow() {
    let mut h = fixture();
    let root = h.l.cache().root();
    let f = inode_at(&h, "/f").unwrap();
    let dn = dentry_at(&h, "/f").unwrap();
    let files_before = h.l.cache().inode(root).unwrap().data().dirstat.nfiles;
    let fx = run(&mut h, 1, 1, Op::Unlink { path: p("f") });
    assert_eq!(replies(&fx), vec![(1, false, Ok(None))]);
    let (stray, sdn) = stray_dentry_of(&h, f).expect("projected into a stray dentry");
    let f_ino = h.l.cache().inode(f).unwrap().ino();
    assert_eq!(h.l.cache().dentry(sdn).unwrap().name(), format!("{:x}", f_ino.0));
    // Nothing is applied before the journal says safe.
    assert_eq!(h.l.cache().dentry(dn).unwrap().linkage(), Linkage::Primary(f));
    assert_eq!(h.l.cache().inode(f).unwrap().data().nlink, 1);
    // The unlinking client already sees the name gone; another client waits (fact 59).
    let fx = run(&mut h, 2, 1, Op::Lookup { path: p("f"), mask: 0 });
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::ENOENT))]);
    let fx = run(&mut h, 3, 2, Op::Lookup { path: p("f"), mask: 0 });
    assert!(replies(&fx).is_empty());
    let fx = settle(&mut h);
    assert_eq!(replies(&fx), vec![(1, true, Ok(None)), (3, true, Err(Errno::ENOENT))]);
    let c = h.l.cache();
    assert_eq!(c.dentry(dn).unwrap().linkage(), Linkage::Null);
    assert_eq!(c.dentry(sdn).unwrap().linkage(), Linkage::Primary(f));
    assert_eq!(c.inode(f).unwrap().parent(), Some(sdn));
    assert_eq!(c.inode(f).unwrap().data().nlink, 0);
    assert_eq!(c.inode(root).unwrap().data().dirstat.nfiles, files_before - 1);
    assert_eq!(c.inode(stray).unwrap().data().dirstat.nfiles, 1);
    assert_eq!(c.inode(stray).unwrap().data().rstat.rfiles, 1);
    assert!(h.l.dump_inode(f_ino).unwrap()["path"].as_str().unwrap().starts_with("~mds0/stray"));
}

#[test]
fn unlink_and_rmdir_errors_change_nothing() {
    let mut h = fixture();
    // Give /e a child so rmdir /e can fail too, and make it durable first.
    run(&mut h, 100, 1, Op::Mknod { path: p("e/c"), mode: 0o644 });
    settle(&mut h);
    let before = snapshot(&h);
    let cases = [
        (Op::Unlink { path: p("nope") }, Errno::ENOENT),
        (Op::Unlink { path: p("d") }, Errno::EISDIR),
        (Op::Rmdir { path: p("f") }, Errno::ENOTDIR),
        (Op::Rmdir { path: p("d") }, Errno::ENOTEMPTY),
        (Op::Rmdir { path: p("e") }, Errno::ENOTEMPTY),
        (Op::Unlink { path: p("") }, Errno::EINVAL),
        (Op::Rmdir { path: p("d/..") }, Errno::ENOTEMPTY),
        (Op::Unlink { path: p("f/x") }, Errno::ENOTDIR),
        (Op::Unlink { path: p(&"n".repeat(256)) }, Errno::ENAMETOOLONG),
        (Op::Unlink { path: FilePath::new(Ino::mdsdir(0), "stray0") }, Errno::EROFS),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}: {fx:?}");
        assert!(entries(&fx).is_empty());
        assert_eq!(snapshot(&h), before, "{op:?} changed something");
    }
}

#[test]
fn fact_63_rmdir_checks_emptiness_under_the_victims_filelock() {
    let mut h = fixture();
    let e = inode_at(&h, "/e").unwrap();
    // Client 1 creates /e/c: early reply, not safe. The unlocked check already sees it.
    let fx = run(&mut h, 1, 1, Op::Mknod { path: p("e/c"), mode: 0o644 });
    assert_eq!(replies(&fx).len(), 1);
    let fx = run(&mut h, 2, 2, Op::Rmdir { path: p("e") });
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::ENOTEMPTY))]);
    settle(&mut h);
    // Client 1 removes it again (not safe yet): its wrlock on /e's filelock keeps client 2's
    // rmdir waiting for the rdlock, which then finds the directory empty.
    // The creator holds `Ls` on /e/c, which the linklock xlock revokes first (§4.14).
    let fx = run(&mut h, 3, 1, Op::Unlink { path: p("e/c") });
    assert!(replies(&fx).is_empty());
    let fx = ack_all(&mut h);
    assert_eq!(replies(&fx), vec![(3, false, Ok(None))]);
    let fx = run(&mut h, 4, 2, Op::Rmdir { path: p("e") });
    assert!(replies(&fx).is_empty(), "{fx:?}");
    let waiting = h.l.request(ReqId(4)).unwrap().waiting_on().unwrap();
    assert_eq!(waiting.obj, mds_locker::ObjRef::Inode(e), "waits on the victim behind the unlink");
    let fx = settle(&mut h);
    let r = replies(&fx);
    assert!(r.contains(&(3, true, Ok(None))) && r.contains(&(4, false, Ok(None))), "{fx:?}");
    settle(&mut h);
    assert!(inode_at(&h, "/e").is_none());
}

// ---- link ------------------------------------------------------------------------------------

#[test]
fn link_adds_a_remote_dentry_and_a_link_count() {
    let mut h = fixture();
    let root = h.l.cache().root();
    let f = inode_at(&h, "/f").unwrap();
    let f_ino = h.l.cache().inode(f).unwrap().ino();
    let stat_before = h.l.cache().inode(root).unwrap().data().clone();
    let op = Op::Link { path: at(&h, "/d", "hard"), target: at(&h, "/", "f") };
    let fx = run(&mut h, 1, 1, op);
    assert_eq!(replies(&fx), vec![(1, false, Ok(Some(f_ino)))]);
    settle(&mut h);
    let c = h.l.cache();
    let dn = dentry_at(&h, "/d/hard").unwrap();
    assert_eq!(c.dentry(dn).unwrap().linkage(), Linkage::Remote { ino: f_ino, d_type: S_IFREG });
    assert_eq!(c.inode(f).unwrap().data().nlink, 2);
    let d = c.inode(inode_at(&h, "/d").unwrap()).unwrap().data();
    assert_eq!((d.dirstat.nfiles, d.rstat.rfiles), (2, 1), "remote links count as entries, not in rstat");
    assert_eq!(c.inode(root).unwrap().data().dirstat, stat_before.dirstat);
    // Lookup through the remote link reaches the inode.
    let fx = run(&mut h, 2, 2, Op::Lookup { path: p("d/hard"), mask: 0 });
    assert_eq!(replies(&fx), vec![(2, true, Ok(Some(f_ino)))]);
}

#[test]
fn link_errors_change_nothing() {
    let mut h = fixture();
    let before = snapshot(&h);
    let cases = [
        (Op::Link { path: at(&h, "/", "g"), target: at(&h, "/", "f") }, Errno::EEXIST),
        (Op::Link { path: at(&h, "/", "n"), target: at(&h, "/", "d") }, Errno::EINVAL),
        (Op::Link { path: at(&h, "/", "n"), target: at(&h, "/", "nope") }, Errno::ENOENT),
        (Op::Link { path: p("d/n"), target: at(&h, "/", "f") }, Errno::EINVAL),
        (Op::Link { path: at(&h, "/f", "n"), target: at(&h, "/", "f") }, Errno::ENOTDIR),
        (
            Op::Link { path: at(&h, "/", "n"), target: FilePath { base: Ino::ROOT, components: vec![] } },
            Errno::EINVAL,
        ),
        (Op::Link { path: FilePath::new(Ino::mdsdir(0), "n"), target: at(&h, "/", "f") }, Errno::EROFS),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}: {fx:?}");
        assert_eq!(snapshot(&h), before, "{op:?} changed something");
    }
}

// ---- rename ------------------------------------------------------------------------------------

#[test]
fn rename_within_a_directory_and_across_and_over_a_file() {
    let mut h = fixture();
    let root = h.l.cache().root();
    let f = inode_at(&h, "/f").unwrap();
    let g = inode_at(&h, "/g").unwrap();
    let x = inode_at(&h, "/d/x").unwrap();
    // Same directory.
    let fx = run_with(&mut h, 1, 1, |h| ren(h, "/", "f2", "/", "f"));
    assert_eq!(entries(&fx)[0].description, "rename");
    settle(&mut h);
    assert_eq!(inode_at(&h, "/f2"), Some(f));
    assert_eq!(inode_at(&h, "/f"), None);
    assert_eq!(h.l.cache().inode(f).unwrap().parent(), dentry_at(&h, "/f2"));
    // Across directories.
    let root_files = h.l.cache().inode(root).unwrap().data().dirstat.nfiles;
    run_with(&mut h, 2, 1, |h| ren(h, "/d", "f3", "/", "f2"));
    settle(&mut h);
    assert_eq!(inode_at(&h, "/d/f3"), Some(f));
    assert_eq!(h.l.cache().inode(root).unwrap().data().dirstat.nfiles, root_files - 1);
    // Over an existing file: the old one goes to a stray dir, one link fewer.
    run_with(&mut h, 3, 1, |h| ren(h, "/d", "x", "/", "g"));
    settle(&mut h);
    assert_eq!(inode_at(&h, "/d/x"), Some(g));
    assert_eq!(h.l.cache().inode(x).unwrap().data().nlink, 1, "the hard link /l remains");
    assert!(stray_dentry_of(&h, x).is_some());
    assert_eq!(inode_at(&h, "/l"), Some(x), "the remote link still reaches it");
}

#[test]
fn fact_59_rename_early_reply_keeps_dentry_xlocks() {
    let mut h = fixture();
    let f = inode_at(&h, "/f").unwrap();
    let src = dentry_at(&h, "/f").unwrap();
    run_with(&mut h, 1, 1, |h| ren(h, "/d", "y", "/", "f"));
    let dest = dentry_at(&h, "/d/y").unwrap();
    assert_eq!(h.state(dn_lock(src)), S::Xlock);
    assert_eq!(h.state(dn_lock(dest)), S::Xlock);
    assert_eq!(h.state(ino_lock(f, T::ILink)), S::XlockDone);
    settle(&mut h);
    assert_eq!(h.state(dn_lock(dest)), S::Sync);
}

#[test]
fn rename_errors_and_no_ops() {
    let mut h = fixture();
    let d = inode_at(&h, "/d").unwrap();
    h.l.cache_mut().create_committed(d, "sub", dir_data());
    let before = snapshot(&h);
    let cases = [
        (Op::Rename { dest: at(&h, "/d", "in"), src: at(&h, "/", "d") }, Errno::EINVAL),
        (Op::Rename { dest: at(&h, "/d/sub", "z"), src: at(&h, "/", "d") }, Errno::EINVAL),
        (Op::Rename { dest: at(&h, "/", "d"), src: at(&h, "/", "e") }, Errno::ENOTEMPTY),
        (Op::Rename { dest: at(&h, "/", "e"), src: at(&h, "/", "f") }, Errno::EISDIR),
        (Op::Rename { dest: at(&h, "/", "f"), src: at(&h, "/", "e") }, Errno::ENOTDIR),
        (Op::Rename { dest: at(&h, "/", "z"), src: at(&h, "/", "nope") }, Errno::ENOENT),
        (Op::Rename { dest: p("d/z"), src: at(&h, "/", "f") }, Errno::EINVAL),
        (Op::Rename { dest: at(&h, "/", "."), src: at(&h, "/", "f") }, Errno::EINVAL),
        (Op::Rename { dest: FilePath::new(Ino::mdsdir(0), "z"), src: at(&h, "/", "f") }, Errno::EROFS),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}: {fx:?}");
        assert_eq!(snapshot(&h), before, "{op:?} changed something");
    }
    // Renaming onto itself, or onto another link of the same inode, journals nothing.
    let before = snapshot(&h);
    let x = ino(&h, "/d/x");
    let fx = run_with(&mut h, 30, 1, |h| ren(h, "/", "f", "/", "f"));
    assert_eq!(replies(&fx), vec![(30, true, Ok(Some(ino(&h, "/f"))))]);
    let fx = run_with(&mut h, 31, 1, |h| ren(h, "/d", "x", "/", "l"));
    assert_eq!(replies(&fx), vec![(31, true, Ok(Some(x)))]);
    assert!(entries(&fx).is_empty());
    assert_eq!(snapshot(&h), before);
}

#[test]
fn renamed_directory_cannot_then_swallow_its_new_parent() {
    // Client 1 moves /d under /e (early reply), then tries to move /e under /e/d before the
    // first rename is safe: the ancestry check follows projected links, so this is EINVAL
    // rather than a loop.
    let mut h = fixture();
    let fx = run_with(&mut h, 1, 1, |h| ren(h, "/e", "d", "/", "d"));
    assert_eq!(replies(&fx).len(), 1);
    let d_ino = ino(&h, "/e/d");
    let op = Op::Rename {
        dest: FilePath { base: d_ino, components: vec!["e".to_string()] },
        src: at(&h, "/", "e"),
    };
    let fx = run(&mut h, 2, 1, op);
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::EINVAL))]);
    settle(&mut h);
    assert_eq!(inode_at(&h, "/e/d").map(|i| h.l.cache().inode(i).unwrap().ino()), Some(d_ino));
}

// ---- readdir, open, mknod, symlink --------------------------------------------------------------

#[test]
fn readdir_lists_entries_and_waits_behind_another_clients_create() {
    let mut h = fixture();
    let fx = run(&mut h, 1, 1, Op::Readdir { path: p("") });
    let ReplyData::Entries(list) = reply_data(&fx, 1) else { panic!("{fx:?}") };
    let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["d", "e", "f", "g", "l"]);
    let l = list.iter().find(|e| e.name == "l").unwrap();
    assert_eq!(*l, DirEntry { name: "l".to_string(), ino: ino(&h, "/d/x"), d_type: S_IFREG });
    assert_eq!(list.iter().find(|e| e.name == "d").unwrap().d_type, S_IFDIR);
    // Client 1 creates /d/new; client 2's listing of /d waits for it to be durable.
    run(&mut h, 2, 1, Op::Mknod { path: p("d/new"), mode: 0o644 });
    let fx = run(&mut h, 3, 2, Op::Readdir { path: p("d") });
    assert!(replies(&fx).is_empty(), "{fx:?}");
    let fx = settle(&mut h);
    let ReplyData::Entries(list) = reply_data(&fx, 3) else { panic!("{fx:?}") };
    assert_eq!(list.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["new", "x"]);
    let fx = run(&mut h, 4, 1, Op::Readdir { path: p("f") });
    assert_eq!(replies(&fx), vec![(4, true, Err(Errno::ENOTDIR))]);
    let fx = run(&mut h, 5, 1, Op::Readdir { path: p("nope") });
    assert_eq!(replies(&fx), vec![(5, true, Err(Errno::ENOENT))]);
}

#[test]
fn open_truncate_journals_and_flushes_and_plain_open_issues_caps() {
    let mut h = fixture();
    let f = inode_at(&h, "/f").unwrap();
    let f_ino = ino(&h, "/f");
    let mut data = h.l.cache().inode(f).unwrap().data().clone();
    data.size = 100;
    let root = h.l.cache().root();
    // A file with data to truncate.
    let (_, big) = h.l.cache_mut().create_committed(root, "big", data);
    let big_ino = h.l.cache().inode(big).unwrap().ino();
    let open = |path: &str, mode, trunc, directory| Op::Open {
        path: p(path),
        file_mode: mode,
        trunc,
        directory,
        mask: 0,
    };
    let fx = run(&mut h, 1, 1, open("f", caps::FILE_MODE_RD, false, false));
    assert_eq!(replies(&fx), vec![(1, true, Ok(Some(f_ino)))]);
    assert!(fx.iter().any(|e| matches!(e, Effect::Cap(c) if c.ino == f_ino && c.client == 1)), "{fx:?}");
    let fx = run(&mut h, 2, 2, open("big", caps::FILE_MODE_RDWR, true, false));
    let e = entries(&fx);
    assert_eq!(e[0].description, "open_truncate");
    assert!(fx.contains(&Effect::JournalFlush), "open_truncate flushes at once: {fx:?}");
    assert_eq!(replies(&fx), vec![(2, false, Ok(Some(big_ino)))]);
    settle(&mut h);
    assert_eq!(h.l.cache().inode(big).unwrap().data().size, 0);
    let cases = [
        (open("d", caps::FILE_MODE_RD, true, false), Errno::EISDIR),
        (open("d", caps::FILE_MODE_WR, false, false), Errno::EISDIR),
        (open("f", caps::FILE_MODE_RD, false, true), Errno::ENOTDIR),
        (open("nope", caps::FILE_MODE_RD, false, false), Errno::ENOENT),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op);
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{fx:?}");
    }
    // A directory opens pin-only.
    let fx = run(&mut h, 20, 3, open("d", caps::FILE_MODE_RD, false, true));
    assert_eq!(replies(&fx), vec![(20, true, Ok(Some(ino(&h, "/d"))))]);
    let d = inode_at(&h, "/d").unwrap();
    assert_eq!(h.l.cache().inode(d).unwrap().caps()[&3].wanted(), caps::PIN);
}

#[test]
fn mknod_regular_file_starts_exclusive_and_other_types_get_no_cap() {
    let mut h = fixture();
    let fx = run(&mut h, 1, 1, Op::Mknod { path: p("r"), mode: 0o600 });
    let r_ino = replies(&fx)[0].2.unwrap().unwrap();
    let r = h.l.cache().lookup_ino(r_ino).unwrap();
    for ty in [T::IFile, T::IAuth, T::IXattr] {
        assert_eq!(h.state(ino_lock(r, ty)), S::Excl, "{ty}");
    }
    assert_eq!(h.l.cache().inode(r).unwrap().loner(), Some(1));
    let fx = run(&mut h, 2, 1, Op::Mknod { path: p("fifo"), mode: S_IFIFO | 0o600 });
    let fifo = h.l.cache().lookup_ino(replies(&fx)[0].2.unwrap().unwrap()).unwrap();
    assert!(h.l.cache().inode(fifo).unwrap().caps().is_empty());
    assert_eq!(h.l.cache().inode(fifo).unwrap().projected_data().mode & S_IFMT, S_IFIFO);
    settle(&mut h);
    let cases = [
        (Op::Mknod { path: p("x"), mode: S_IFDIR | 0o755 }, Errno::EINVAL),
        (Op::Mknod { path: p("y"), mode: S_IFLNK | 0o777 }, Errno::EINVAL),
        (Op::Mknod { path: p("f"), mode: 0o644 }, Errno::EEXIST),
        (Op::Mknod { path: p("."), mode: 0o644 }, Errno::EEXIST),
        (Op::Symlink { path: p("g"), target: "f".to_string() }, Errno::EEXIST),
        (Op::Symlink { path: p("s"), target: String::new() }, Errno::ENOENT),
        (Op::Symlink { path: p("s"), target: "t".repeat(4097) }, Errno::ENAMETOOLONG),
        (Op::Symlink { path: p("nope/s"), target: "f".to_string() }, Errno::ENOENT),
    ];
    let before = snapshot(&h);
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}: {fx:?}");
        assert_eq!(snapshot(&h), before, "{op:?} changed something");
    }
    let fx = run(&mut h, 30, 1, Op::Symlink { path: p("s"), target: "d/x".to_string() });
    settle(&mut h);
    let s = h.l.cache().lookup_ino(replies(&fx)[0].2.unwrap().unwrap()).unwrap();
    let data = h.l.cache().inode(s).unwrap().data();
    assert_eq!((data.mode & S_IFMT, data.size, data.symlink.as_deref()), (S_IFLNK, 3, Some("d/x")));
}

#[test]
fn create_in_a_removed_directory_is_enoent() {
    // The parent was rmdir'ed by the same client and is not yet safe: its projected parent is
    // a stray directory (§5.1 "parent inside stray → ENOENT").
    let mut h = fixture();
    let e_ino = ino(&h, "/e");
    run(&mut h, 1, 1, Op::Rmdir { path: p("e") });
    let fx = run(&mut h, 2, 1, Op::Mkdir { path: FilePath::new(e_ino, "z"), mode: 0o755 });
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::ENOENT))]);
    settle(&mut h);
    let fx = run(&mut h, 3, 2, Op::Mknod { path: FilePath::new(e_ino, "z"), mode: 0o644 });
    assert_eq!(replies(&fx), vec![(3, true, Err(Errno::ENOENT))]);
}

// ---- setattr, xattrs -----------------------------------------------------------------------------

#[test]
fn fact_64_setattr_applies_fields_and_refuses_bad_ones() {
    let mut h = fixture();
    let f = inode_at(&h, "/f").unwrap();
    let attrs = SetAttr { mode: Some(0o4700), uid: Some(5), gid: Some(6), ..SetAttr::default() };
    let fx = run(&mut h, 1, 1, Op::Setattr { path: p("f"), attrs });
    assert_eq!(h.state(ino_lock(f, T::IAuth)), S::XlockDone);
    let e = &entries(&fx)[0];
    assert!(
        e.changes.iter().any(|c| matches!(c, mds_locker::MetaChange::Inode { data, .. } if data.uid == 5))
    );
    settle(&mut h);
    let d = h.l.cache().inode(f).unwrap().data();
    assert_eq!((d.mode, d.uid, d.gid), (S_IFREG | 0o4700, 5, 6));
    let fx = run(
        &mut h,
        2,
        1,
        Op::Setattr { path: p("f"), attrs: SetAttr { size: Some(42), ..SetAttr::default() } },
    );
    settle(&mut h);
    assert_eq!(replies(&fx).len(), 1);
    assert_eq!(h.l.cache().inode(f).unwrap().data().size, 42);
    let fx = run(
        &mut h,
        3,
        1,
        Op::Setattr { path: p("f"), attrs: SetAttr { ctime_ms: Some(77), ..SetAttr::default() } },
    );
    assert_eq!(h.state(ino_lock(f, T::IFile)), S::Sync, "ctime only takes no filelock");
    settle(&mut h);
    assert_eq!(replies(&fx).len(), 1);
    assert_eq!(h.l.cache().inode(f).unwrap().data().ctime_ms, 77);
    let before = snapshot(&h);
    let cases = [
        (Op::Setattr { path: p("d"), attrs: SetAttr { size: Some(0), ..SetAttr::default() } }, Errno::EISDIR),
        (Op::Setattr { path: p("f"), attrs: SetAttr::default() }, Errno::EINVAL),
        (
            Op::Setattr { path: p("nope"), attrs: SetAttr { uid: Some(1), ..SetAttr::default() } },
            Errno::ENOENT,
        ),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}");
        assert_eq!(snapshot(&h), before);
    }
}

#[test]
fn xattr_create_replace_and_remove_semantics() {
    let mut h = fixture();
    let f = inode_at(&h, "/f").unwrap();
    let set = |name: &str, flags| Op::Setxattr {
        path: p("f"),
        name: name.to_string(),
        value: b"v".to_vec(),
        flags,
    };
    let before = snapshot(&h);
    let cases = [
        (set("user.a", XattrFlags::Create), Errno::EEXIST),
        (set("user.zz", XattrFlags::Replace), Errno::ENODATA),
        (Op::Removexattr { path: p("f"), name: "user.zz".to_string() }, Errno::ENODATA),
        (set("", XattrFlags::Any), Errno::EINVAL),
        (set("ceph.dir.layout", XattrFlags::Any), Errno::EINVAL),
    ];
    for (n, (op, errno)) in cases.into_iter().enumerate() {
        let reqid = 10 + n as u64;
        let fx = run(&mut h, reqid, 1, op.clone());
        assert_eq!(replies(&fx), vec![(reqid, true, Err(errno))], "{op:?}");
        assert_eq!(snapshot(&h), before);
    }
    run(&mut h, 1, 1, set("user.a", XattrFlags::Replace));
    run(&mut h, 2, 1, set("user.b", XattrFlags::Create));
    run(&mut h, 3, 1, Op::Removexattr { path: p("f"), name: "user.a".to_string() });
    settle(&mut h);
    let d = h.l.cache().inode(f).unwrap().data();
    assert_eq!(d.xattrs.keys().collect::<Vec<_>>(), vec!["user.b"]);
    assert_eq!(d.xattr_version, 3);
}

// ---- advisory locks -----------------------------------------------------------------------------

fn flk(kind: FileLockKind, start: u64, length: u64, owner: u64) -> FileLock {
    FileLock { kind, start, length, client: 0, owner, pid: owner * 10 }
}

fn setlk(rule: FileLockRule, lock: FileLock, wait: bool) -> Op {
    Op::SetFileLock { path: p("f"), rule, lock, wait }
}

#[test]
fn setfilelock_conflicts_wait_and_wake_on_release() {
    let mut h = fixture();
    let f = inode_at(&h, "/f").unwrap();
    let f_ino = ino(&h, "/f");
    let ex = flk(FileLockKind::Exclusive, 0, 0, 1);
    let fx = run(&mut h, 1, 1, setlk(FileLockRule::Flock, ex, false));
    assert_eq!(replies(&fx), vec![(1, true, Ok(Some(f_ino)))]);
    // Non-blocking conflict: EAGAIN.
    let fx = run(&mut h, 2, 2, setlk(FileLockRule::Flock, flk(FileLockKind::Shared, 0, 0, 1), false));
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::EAGAIN))]);
    // The fcntl family is independent.
    let fx = run(&mut h, 3, 2, setlk(FileLockRule::Fcntl, flk(FileLockKind::Exclusive, 0, 0, 1), false));
    assert_eq!(replies(&fx), vec![(3, true, Ok(Some(f_ino)))]);
    // GETFILELOCK reports the holder.
    let probe =
        Op::GetFileLock { path: p("f"), rule: FileLockRule::Flock, lock: flk(FileLockKind::Shared, 0, 0, 9) };
    let fx = run(&mut h, 4, 2, probe.clone());
    let ReplyData::FileLock(Some(holder)) = reply_data(&fx, 4) else { panic!("{fx:?}") };
    assert_eq!((holder.client, holder.owner, holder.kind), (1, 1, FileLockKind::Exclusive));
    // Blocking conflict: parked on the flocklock holding nothing.
    let fx = run(&mut h, 5, 2, setlk(FileLockRule::Flock, flk(FileLockKind::Shared, 0, 0, 1), true));
    assert!(replies(&fx).is_empty());
    let m = h.l.request(ReqId(5)).unwrap();
    assert_eq!(m.waiting_on(), Some(ino_lock(f, T::IFlock)));
    assert!(m.held().is_empty() && m.auth_pins().is_empty());
    // Releasing wakes it and it gets the lock.
    let fx = run(&mut h, 6, 1, setlk(FileLockRule::Flock, flk(FileLockKind::Unlock, 0, 0, 1), false));
    assert_eq!(replies(&fx), vec![(6, true, Ok(Some(f_ino))), (5, true, Ok(Some(f_ino)))]);
    let held = h.l.cache().inode(f).unwrap().file_locks(FileLockRule::Flock).held().to_vec();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].client, held[0].kind), (2, FileLockKind::Shared));
    let fx = run(&mut h, 7, 1, probe);
    assert_eq!(reply_data(&fx, 7), ReplyData::FileLock(None), "shared vs shared: no conflict");
    // Nothing about advisory locks is journaled.
    assert!(h.l.committing().next().is_none());
}

#[test]
fn fcntl_ranges_deadlock_detection_and_eviction() {
    let mut h = fixture();
    let f_ino = ino(&h, "/f");
    let r = FileLockRule::Fcntl;
    run(&mut h, 1, 1, setlk(r, flk(FileLockKind::Exclusive, 0, 10, 1), false));
    let fx = run(&mut h, 2, 2, setlk(r, flk(FileLockKind::Exclusive, 10, 10, 1), false));
    assert_eq!(replies(&fx), vec![(2, true, Ok(Some(f_ino)))], "disjoint ranges");
    // Client 2 waits for client 1's range...
    let fx = run(&mut h, 3, 2, setlk(r, flk(FileLockKind::Exclusive, 5, 1, 1), true));
    assert!(replies(&fx).is_empty());
    // ...so client 1 waiting for client 2's range would deadlock.
    let fx = run(&mut h, 4, 1, setlk(r, flk(FileLockKind::Exclusive, 15, 1, 1), true));
    assert_eq!(replies(&fx), vec![(4, true, Err(Errno::EDEADLK))]);
    // Client 1 goes away: its locks go and client 2's waiter is granted.
    let fx = h.ev(Event::SessionTimeout { client: 1 });
    assert!(replies(&fx).contains(&(3, true, Ok(Some(f_ino)))), "{fx:?}");
    let f = inode_at(&h, "/f").unwrap();
    assert!(h.l.cache().inode(f).unwrap().file_locks(r).held().iter().all(|l| l.client == 2));
}

// ---- completed-request table ------------------------------------------------------------------

#[test]
fn resent_completed_request_gets_the_recorded_reply_and_runs_once() {
    let mut h = fixture();
    let fx = run(&mut h, 1, 1, Op::Mkdir { path: p("m"), mode: 0o755 });
    let ino_m = replies(&fx)[0].2.unwrap();
    // Re-sent while in flight: it waits for the original, then is answered from the table.
    let fx = run(&mut h, 1, 1, Op::Mkdir { path: p("m"), mode: 0o755 });
    assert!(fx.is_empty(), "{fx:?}");
    let fx = settle(&mut h);
    assert_eq!(replies(&fx), vec![(1, true, Ok(ino_m)), (1, true, Ok(ino_m))]);
    // Re-sent after completion: the same answer, no second mkdir (no EEXIST, no journal).
    let inodes = h.l.cache().inode_ids().count();
    let fx = run(&mut h, 1, 1, Op::Mkdir { path: p("m"), mode: 0o755 });
    assert_eq!(
        fx,
        vec![Effect::Reply(mds_locker::Reply {
            reqid: ReqId(1),
            client: 1,
            safe: true,
            result: Ok(ino_m),
            data: ReplyData::None
        })]
    );
    assert_eq!(h.l.cache().inode_ids().count(), inodes);
    let s = h.l.sessions().find(|s| s.client() == 1).unwrap();
    assert!(s.completed().contains_key(&ReqId(1)));
    // A failed request is not recorded: re-sending runs it again.
    let fx = run(&mut h, 2, 1, Op::Unlink { path: p("nope") });
    assert_eq!(replies(&fx), vec![(2, true, Err(Errno::ENOENT))]);
    run(&mut h, 9, 1, Op::Mknod { path: p("nope"), mode: 0o644 });
    settle(&mut h);
    let mut fx = run(&mut h, 2, 1, Op::Unlink { path: p("nope") });
    fx.extend(ack_all(&mut h));
    assert_eq!(replies(&fx), vec![(2, false, Ok(None))], "ran for real this time");
    // Reads are never recorded.
    run(&mut h, 3, 1, Op::Lookup { path: p("f"), mask: 0 });
    let s = h.l.sessions().find(|s| s.client() == 1).unwrap();
    assert!(!s.completed().contains_key(&ReqId(3)));
    // Another client's request id is its own.
    let fx = run(&mut h, 1, 2, Op::Lookup { path: p("m"), mask: 0 });
    assert_eq!(replies(&fx), vec![(1, true, Ok(ino_m))]);
}

#[test]
fn completed_table_is_bounded_per_session() {
    let mut h = H::with_config(LockerConfig { max_completed_requests: 2, ..cfg() });
    for n in 1..=3 {
        run(&mut h, n, 1, Op::Mknod { path: p(&format!("f{n}")), mode: 0o644 });
    }
    settle(&mut h);
    let s = h.l.sessions().find(|s| s.client() == 1).unwrap();
    assert_eq!(s.completed().keys().copied().collect::<Vec<_>>(), vec![ReqId(2), ReqId(3)]);
}

// ---- dumps ----------------------------------------------------------------------------------------

#[test]
fn dump_cache_and_dump_inode_show_committed_and_projected_state() {
    let mut h = fixture();
    let f_ino = ino(&h, "/f");
    run(&mut h, 1, 1, Op::Setattr { path: p("f"), attrs: SetAttr { uid: Some(9), ..SetAttr::default() } });
    let v = h.l.dump_inode(f_ino).unwrap();
    assert_eq!(v["path"], "/f");
    assert_eq!(v["inode"]["uid"], 0);
    assert_eq!(v["projected"][0]["inode"]["uid"], 9);
    assert_eq!(v["projected"][0]["by"], 1);
    let auth = v["locks"].as_array().unwrap().iter().find(|l| l["lock"] == "iauth").unwrap();
    assert_eq!(auth["state"], "xlockdone");
    assert_eq!(v["inode"]["xattrs"], serde_json::json!(["user.a"]));
    let cache = h.l.dump_cache();
    let inode = cache["inodes"].as_array().unwrap().iter().find(|i| i["ino"] == f_ino.to_string()).unwrap();
    assert_eq!(inode["num_projected"], 1);
    let l = cache["dentries"].as_array().unwrap().iter().find(|d| d["name"] == "l").unwrap();
    assert_eq!(l["linkage"]["remote"], ino(&h, "/d/x").to_string());
    assert!(cache["dirfrags"].as_array().unwrap().iter().any(|f| f["dir"] == "0x1"));
    assert!(h.l.dump_inode(Ino(0xdead)).is_none());
    settle(&mut h);
    let v = h.l.dump_inode(f_ino).unwrap();
    assert_eq!(v["inode"]["uid"], 9);
    assert!(v["projected"].as_array().unwrap().is_empty());
}

#[test]
fn invariant_one_primary_link_per_inode_detects_a_second_primary() {
    let mut h = fixture();
    assert!(mds_locker::invariants::check_all(&h.l).is_ok());
    let f = inode_at(&h, "/f").unwrap();
    let root = h.l.cache().root();
    let frag = h.l.cache_mut().dirfrag_of(root);
    let second = h.l.cache_mut().add_null_dentry(frag, "f-again");
    h.l.cache_mut().link_primary_now(second, f);
    let v = mds_locker::invariants::check_all(&h.l).unwrap_err();
    assert!(v.iter().any(|v| v.rule == "one primary link per inode"), "{v:?}");
}

#[test]
fn two_path_requests_wait_without_their_snaplock_rdlocks() {
    // X links into /d naming /d itself as the target, so its snap chains cover /d, and it
    // must wait for /d's dentry, which Y (renaming /d away) xlocks. Y then needs /d's
    // snaplock xlock: X must not be sitting on its rdlock meanwhile (§5.1 snap chains run
    // against the lock order), or neither could proceed.
    let mut h = fixture();
    let root = h.l.cache().root();
    let frag = h.l.cache_mut().dirfrag_of(root);
    let e2 = h.l.cache_mut().add_null_dentry(frag, "e2");
    let d = inode_at(&h, "/d").unwrap();
    // Z (client 3) rdlocks /e2's dentry, so Y stops after xlocking /d's dentry ("d" < "e2").
    h.req(1, 3, vec![mds_locker::LockOp::rd(dn_lock(e2))], false);
    let fx = run_with(&mut h, 2, 1, |h| ren(h, "/", "e2", "/", "d"));
    assert!(replies(&fx).is_empty(), "{fx:?}");
    let y = h.l.request(ReqId(2)).unwrap();
    assert_eq!(y.waiting_on(), Some(dn_lock(e2)));
    assert!(y.holds(dn_lock(dentry_at(&h, "/d").unwrap()), XLOCK), "keeps what it took in order");
    assert!(!y.holds(ino_lock(root, T::ISnap), RDLOCK), "but not its snap chain");
    let fx = run_with(&mut h, 3, 2, |h| Op::Link { path: at(h, "/d", "g"), target: at(h, "/", "d") });
    assert!(replies(&fx).is_empty());
    let x = h.l.request(ReqId(3)).unwrap();
    assert_eq!(x.waiting_on(), Some(dn_lock(dentry_at(&h, "/d").unwrap())));
    assert!(!x.holds(ino_lock(d, T::ISnap), RDLOCK));
    let fx = h.finish(1);
    let r = replies(&fx);
    assert!(r.contains(&(2, false, Ok(Some(ino(&h, "/e2"))))), "{fx:?}");
    // Once Y is durable, X finds /d gone.
    let fx = settle(&mut h);
    assert!(replies(&fx).contains(&(3, true, Err(Errno::ENOENT))), "{fx:?}");
    assert_eq!(h.l.requests().count(), 0);
}

#[test]
fn rename_keeps_one_directorys_filelock_while_revoking_the_others_caps() {
    // Client 1 holds shared caps on both / and /d. A rename from /d to / needs both
    // filelocks wrlocked, each after revoking client 1's caps: the first stays held while
    // the second revoke is acknowledged, so one round of acks is enough.
    let mut h = fixture();
    let root = h.l.cache().root();
    let d = inode_at(&h, "/d").unwrap();
    let dir_caps = caps::PIN | caps::ANY_SHARED;
    h.open_cap(1, root, dir_caps);
    h.open_cap(1, d, dir_caps);
    h.open_cap(2, root, dir_caps);
    h.open_cap(2, d, dir_caps);
    let fx = run_with(&mut h, 1, 3, |h| ren(h, "/", "y", "/d", "x"));
    assert!(replies(&fx).is_empty());
    let mut rounds = 0;
    while h.l.request(ReqId(1)).is_some_and(|m| !m.early_replied()) {
        rounds += 1;
        assert!(rounds < 4, "rename keeps chasing revokes");
        ack_all(&mut h);
    }
    assert!(h.l.lock(ino_lock(root, T::IFile)).unwrap().wrlock_holders().contains_key(&ReqId(1)));
    settle(&mut h);
}
