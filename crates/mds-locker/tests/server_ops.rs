//! Server operations on one rank (§5.1, §5.2, §6.2, §6.3): lock sets, errors, projection,
//! journal-before-unlock.

mod common;

use common::*;
use lock_sm::LockState as S;
use lock_sm::LockType as T;
use lock_sm::caps::{self, format_caps};
use mds_locker::mutation::{RDLOCK, WRLOCK, XLOCK};
use mds_locker::{
    CapOp, ClientRequest, Effect, Errno, Event, FilePath, Ino, JournalEntry, Linkage, LockId, LockOp,
    MetaChange, Op, ReqId,
};

fn op(h: &mut H, reqid: u64, client: u64, op: Op) -> Vec<Effect> {
    h.ev(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op }))
}

fn mkdir(path: &str) -> Op {
    Op::Mkdir { path: FilePath::new(Ino::ROOT, path), mode: 0o755 }
}

fn create(path: &str, excl: bool) -> Op {
    Op::Create { path: FilePath::new(Ino::ROOT, path), mode: 0o644, excl, file_mode: caps::FILE_MODE_RDWR }
}

fn lookup(path: &str, mask: u32) -> Op {
    Op::Lookup { path: FilePath::new(Ino::ROOT, path), mask }
}

fn replies(fx: &[Effect]) -> Vec<(u64, bool, Result<Option<Ino>, Errno>)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some((r.reqid.0, r.safe, r.result)),
            _ => None,
        })
        .collect()
}

fn entry(fx: &[Effect]) -> JournalEntry {
    fx.iter()
        .find_map(|e| match e {
            Effect::JournalSubmit { entry, .. } => Some(entry.clone()),
            _ => None,
        })
        .expect("journal submit")
}

#[test]
fn fact_61_mkdir_lock_set() {
    let cfg = mds_locker::LockerConfig { early_reply: false, ..Default::default() };
    let mut h = H::new();
    h.l = mds_locker::Locker::new(cfg);
    h.ev(Event::SessionOpen { client: 1 });
    let (_, a) = h.dir("a");
    let fx = op(&mut h, 1, 1, Op::Mkdir { path: FilePath::new(Ino::ROOT, "a/b"), mode: 0o755 });
    assert!(
        matches!(fx.as_slice(), [Effect::JournalSubmit { .. }, Effect::Cap(_), Effect::JournalFlush]),
        "{fx:?}"
    );
    let root = h.l.cache().root();
    let da = h.l.cache().lookup_dentry(root, "a").unwrap();
    let db = h.l.cache().lookup_dentry(a, "b").unwrap();
    let held: Vec<(LockId, u8)> =
        h.l.request(ReqId(1)).unwrap().held().iter().map(|(l, f)| (*l, *f)).collect();
    let mut expect = vec![
        (ino_lock(root, T::ISnap), RDLOCK),
        (dn_lock(da), RDLOCK),
        (ino_lock(a, T::ISnap), RDLOCK),
        (ino_lock(a, T::IFile), WRLOCK),
        (ino_lock(a, T::INest), WRLOCK),
        (ino_lock(a, T::IAuth), RDLOCK),
        (dn_lock(db), XLOCK),
        (LockId::dentry(db, T::DVersion), WRLOCK),
    ];
    expect.sort();
    assert_eq!(held, expect);
}

#[test]
fn mkdir_early_reply_journal_then_visible_after_safe() {
    let mut h = H::new();
    let root = h.l.cache().root();
    let fx = op(&mut h, 1, 1, mkdir("d"));
    let r = replies(&fx);
    assert_eq!(r.len(), 1);
    let (_, safe, result) = r[0];
    assert!(!safe);
    let ino = result.unwrap().unwrap();
    let e = entry(&fx);
    assert_eq!(e.description, "mkdir");
    assert!(
        e.changes.iter().any(
            |c| matches!(c, MetaChange::Dentry { name, linkage: Linkage::Primary(_), .. } if name == "d")
        )
    );
    assert!(e.changes.iter().any(|c| matches!(c, MetaChange::Inode { ino: i, .. } if *i == ino)));
    // The creator gets its directory caps with the reply.
    let cap = fx.iter().find_map(|e| match e {
        Effect::Cap(c) => Some(*c),
        _ => None,
    });
    let cap = cap.expect("cap for the new dir");
    assert_eq!((cap.client, cap.ino, cap.op), (1, ino, CapOp::Grant));
    // Dir "liked" caps are wanted: the creator is loner, so ILINK goes EXCL too.
    assert_eq!(format_caps(cap.caps), "pAsxLsxXsxFsx");
    // Not yet committed: the dentry is projected and the parent's stats too.
    let dn = h.l.cache().lookup_dentry(root, "d").unwrap();
    assert_eq!(h.l.cache().dentry(dn).unwrap().linkage(), Linkage::Null);
    assert_eq!(h.state(dn_lock(dn)), S::XlockDone);
    assert_eq!(h.l.cache().inode(root).unwrap().data().dirstat.nsubdirs, 0);
    assert_eq!(h.l.cache().inode(root).unwrap().projected_data().dirstat.nsubdirs, 1);
    // The creator sees it at once; another client waits for the journal.
    let fx = op(&mut h, 2, 1, lookup("d", 0));
    assert_eq!(replies(&fx), vec![(2, true, Ok(Some(ino)))]);
    let fx = op(&mut h, 3, 2, lookup("d", 0));
    assert!(replies(&fx).is_empty(), "{fx:?}");
    let fx = h.safe(journal_seq(&entry_fx(&h, 1)));
    let r = replies(&fx);
    assert_eq!(r, vec![(1, true, Ok(Some(ino))), (3, true, Ok(Some(ino)))], "{fx:?}");
    assert_eq!(
        h.l.cache().dentry(dn).unwrap().linkage(),
        Linkage::Primary(h.l.cache().lookup_ino(ino).unwrap())
    );
    let rootd = h.l.cache().inode(root).unwrap().data();
    assert_eq!((rootd.dirstat.nsubdirs, rootd.rstat.rsubdirs), (1, 1));
    assert_eq!(h.state(dn_lock(dn)), S::Sync);
}

/// The journal seq of request `reqid`'s pending entry.
fn entry_fx(h: &H, reqid: u64) -> Vec<Effect> {
    let (seq, _) = h.l.committing().find(|(_, r)| r.0 == reqid).unwrap();
    vec![Effect::JournalSubmit { seq, entry: JournalEntry::update(ReqId(reqid), "", vec![]) }]
}

#[test]
fn mkdir_errors_change_nothing() {
    let mut h = H::new();
    h.file("f");
    op(&mut h, 1, 1, mkdir("d"));
    let seq = h.l.committing().next().unwrap().0;
    h.safe(seq.0);
    let before = h.l.dump_locks(mds_locker::LockFilter::All);
    let cases = [
        (mkdir("d"), Errno::EEXIST),
        (mkdir("f/x"), Errno::ENOTDIR),
        (mkdir("nope/x"), Errno::ENOENT),
        (mkdir(""), Errno::EINVAL),
        (mkdir(&"n".repeat(256)), Errno::ENAMETOOLONG),
        (Op::Mkdir { path: FilePath::new(Ino::mdsdir(0), "x"), mode: 0o755 }, Errno::EROFS),
    ];
    for (n, (o, errno)) in cases.into_iter().enumerate() {
        let fx = op(&mut h, 10 + n as u64, 1, o);
        assert_eq!(replies(&fx), vec![(10 + n as u64, true, Err(errno))], "{fx:?}");
        assert!(fx.iter().all(|e| !matches!(e, Effect::JournalSubmit { .. })));
    }
    assert_eq!(h.l.requests().count(), 0);
    assert_eq!(h.l.dump_locks(mds_locker::LockFilter::All), before);
}

#[test]
fn create_gives_the_writer_exclusive_caps() {
    let mut h = H::new();
    let fx = op(&mut h, 1, 1, create("f", true));
    let ino = replies(&fx)[0].2.unwrap().unwrap();
    assert_eq!(entry(&fx).description, "openc");
    let f = h.l.cache().lookup_ino(ino).unwrap();
    let cap = fx.iter().find_map(|e| match e {
        Effect::Cap(c) if c.ino == ino => Some(*c),
        _ => None,
    });
    assert_eq!(cap.map(|c| format_caps(c.caps)), Some("pAsxLsXsxFsxcrwb".to_string()));
    assert_eq!(h.state(ino_lock(f, T::IAuth)), S::Excl);
    assert_eq!(h.state(ino_lock(f, T::IXattr)), S::Excl);
    assert_eq!(h.state(ino_lock(f, T::IFile)), S::Excl, "reached through file_eval");
    assert_eq!(h.l.cache().inode(f).unwrap().loner(), Some(1));
    h.safe(journal_seq(&fx));
    assert_eq!(h.l.cache().inode(h.l.cache().root()).unwrap().data().dirstat.nfiles, 1);
}

#[test]
fn create_existing_with_and_without_o_excl() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let ino = h.l.cache().inode(f).unwrap().ino();
    let fx = op(&mut h, 1, 2, create("f", true));
    assert_eq!(replies(&fx), vec![(1, true, Err(Errno::EEXIST))]);
    let fx = op(&mut h, 2, 2, create("f", false));
    assert_eq!(replies(&fx), vec![(2, true, Ok(Some(ino)))], "opened, not journaled: {fx:?}");
    assert!(fx.iter().all(|e| !matches!(e, Effect::JournalSubmit { .. })));
    assert!(h.l.cache().inode(f).unwrap().caps().contains_key(&2));
    let (_, d) = h.dir("d");
    let _ = d;
    let fx = op(&mut h, 3, 2, create("d", false));
    assert_eq!(replies(&fx), vec![(3, true, Err(Errno::EISDIR))]);
}

#[test]
fn getattr_waits_for_an_xlock_held_by_another_client() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let ino = h.l.cache().inode(f).unwrap().ino();
    // Client 1's chmod is early-replied but not safe: IAUTH in XLOCKDONE.
    let fx = h.req(1, 1, vec![LockOp::x(ino_lock(f, T::IAuth))], true);
    let seq = journal_seq(&fx);
    let getattr = |mask| Op::Getattr { path: FilePath::new(ino, ""), mask };
    let fx = op(&mut h, 2, 1, getattr(caps::AUTH_SHARED));
    assert_eq!(replies(&fx), vec![(2, true, Ok(Some(ino)))], "same client reads XLOCKDONE");
    let fx = op(&mut h, 3, 2, getattr(caps::AUTH_SHARED));
    assert!(replies(&fx).is_empty());
    let fx = op(&mut h, 4, 2, getattr(caps::LINK_SHARED));
    assert_eq!(replies(&fx), vec![(4, true, Ok(Some(ino)))], "other locks are free");
    let fx = h.safe(seq);
    assert!(replies(&fx).contains(&(3, true, Ok(Some(ino)))), "{fx:?}");
}

#[test]
fn fact_66_getattr_skips_a_readable_unstable_filelock() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let ino = h.l.cache().inode(f).unwrap().ino();
    let file = ino_lock(f, T::IFile);
    // A rdlock keeps SYNC_LOCK (readable by anyone) from completing under a pending xlock.
    h.req(1, 1, vec![LockOp::rd(file)], false);
    h.req(2, 2, vec![LockOp::x(file)], false);
    assert_eq!(h.state(file), S::SyncLock);
    let fx = op(&mut h, 3, 3, Op::Getattr { path: FilePath::new(ino, ""), mask: caps::FILE_SHARED });
    assert_eq!(replies(&fx), vec![(3, true, Ok(Some(ino)))]);
}

#[test]
fn fact_67_rdlock_snap_covers_ancestors_and_descended_inodes() {
    let mut h = H::new();
    let root = h.l.cache().root();
    let (da, a) = h.dir("a");
    let data =
        mds_locker::InodeData { mode: mds_locker::cache::S_IFREG | 0o644, nlink: 1, ..Default::default() };
    let (dx, x) = h.l.cache_mut().create_committed(a, "x", data.clone());
    let (_, _y) = h.l.cache_mut().create_committed(a, "y", data);
    // Park a lookup on its last step by xlocking x's authlock for another client.
    h.req(1, 1, vec![LockOp::x(ino_lock(x, T::IAuth))], false);
    // Base a (depth 1): the snap chain covers a and root; then dn x and x's snaplock.
    let a_ino = h.l.cache().inode(a).unwrap().ino();
    op(&mut h, 2, 2, Op::Lookup { path: FilePath::new(a_ino, "x"), mask: caps::AUTH_SHARED });
    let held: Vec<LockId> = h.l.request(ReqId(2)).unwrap().held().keys().copied().collect();
    let mut expect =
        vec![ino_lock(root, T::ISnap), ino_lock(a, T::ISnap), dn_lock(dx), ino_lock(x, T::ISnap)];
    expect.sort();
    assert_eq!(held, expect);
    assert!(!held.contains(&dn_lock(da)), "the base's own dentry is not path-locked");
    assert_eq!(h.l.request(ReqId(2)).unwrap().waiting_on(), Some(ino_lock(x, T::IAuth)));
}

#[test]
fn concurrent_mkdirs_in_one_directory_share_the_parent_wrlocks() {
    let mut h = H::new();
    let root = h.l.cache().root();
    let fx1 = op(&mut h, 1, 1, mkdir("a"));
    let fx2 = op(&mut h, 2, 2, mkdir("b"));
    assert_eq!(replies(&fx1).len(), 1);
    assert_eq!(replies(&fx2).len(), 1, "no waiting: IFILE/INEST wrlocks are shared in LOCK");
    assert_eq!(h.l.lock(ino_lock(root, T::IFile)).unwrap().num_wrlock(), 2);
    assert_eq!(h.l.cache().inode(root).unwrap().projected_data().dirstat.nsubdirs, 2);
    h.safe(journal_seq(&fx2));
    let d = h.l.cache().inode(root).unwrap().data();
    assert_eq!(d.dirstat.nsubdirs, 2, "both projections applied in FIFO order");
    assert!(h.l.requests().next().is_none());
}

#[test]
fn fact_80_dentry_lease_only_when_dir_filelock_does_not_allow_one() {
    let mut h = H::new();
    let (_, d) = h.dir("d");
    let d_ino = h.l.cache().inode(d).unwrap().ino();
    let data =
        mds_locker::InodeData { mode: mds_locker::cache::S_IFREG | 0o644, nlink: 1, ..Default::default() };
    let (dx, x) = h.l.cache_mut().create_committed(d, "x", data);
    let x_ino = h.l.cache().inode(x).unwrap().ino();
    let look = || Op::Lookup { path: FilePath::new(d_ino, "x"), mask: 0 };
    // d's filelock is SYNC: shared dir caps cover the dentry, no lease.
    let fx = op(&mut h, 1, 1, look());
    assert_eq!(
        fx,
        vec![Effect::Reply(mds_locker::Reply {
            reqid: ReqId(1),
            client: 1,
            safe: true,
            result: Ok(Some(x_ino)),
            data: mds_locker::ReplyData::None,
        })]
    );
    // Client 2 holds d as the loner: d's filelock goes EXCL, where nobody else may lease.
    h.open_cap(2, d, caps::PIN | caps::ANY_SHARED | caps::ANY_EXCL);
    assert_eq!(h.state(ino_lock(d, T::IFile)), S::Excl);
    let fx = op(&mut h, 2, 1, look());
    let Effect::LeaseGrant { client: 1, dir, ref name, seq } = fx[0] else { panic!("{fx:?}") };
    assert_eq!((dir, name.as_str()), (d_ino, "x"));
    assert!(matches!(fx[1], Effect::Reply(_)));
    // The loner itself has Fs/Fx pending on d: no lease for it.
    let fx = op(&mut h, 3, 2, look());
    assert_eq!(fx.len(), 1, "{fx:?}");
    // An xlock on the dentry must revoke client 1's lease and wait for it.
    let fx = h.req(4, 3, vec![LockOp::x(dn_lock(dx))], false);
    assert_eq!(fx, vec![Effect::LeaseRevoke { client: 1, dir: d_ino, name: "x".to_string() }]);
    assert_eq!(h.state(dn_lock(dx)), S::SyncLock);
    let stale = Event::LeaseRelease { client: 1, dir: d_ino, name: "x".to_string(), seq: seq + 1 };
    assert!(h.ev(stale).is_empty(), "a wrong seq releases nothing");
    let fx = h.ev(Event::LeaseRelease { client: 1, dir: d_ino, name: "x".to_string(), seq });
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(4) }), "{fx:?}");
}
