//! Helpers shared by the integration tests: sample events, a temporary directory, a tiny PRNG.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mds_journal::metablob::{dir_state, full_state};
use mds_journal::*;
use rados_store::{EntityAddr, EntityName, UTime};

pub fn t(sec: u32) -> UTime {
    UTime { sec, nsec: 1000 + sec }
}

pub fn reqid(tid: u64) -> MetaReqId {
    MetaReqId { name: EntityName::client(4123), tid }
}

/// A metablob touching every shape of dentry, sized by `n`.
pub fn rich_metablob(n: u64) -> MetaBlob {
    let mut mb = MetaBlob::default();
    let parent = DirFrag::whole(InodeNo(0x1000 + n));
    let fnode = Fnode {
        version: 10 + n,
        fragstat: FragInfo { version: 3, mtime: t(5), nfiles: 2, nsubdirs: 1, change_attr: 9 },
        accounted_fragstat: FragInfo::default(),
        rstat: NestInfo { version: 4, rctime: t(6), rbytes: 4096, rfiles: 2, rsubdirs: 1, rsnaps: 0 },
        accounted_rstat: NestInfo::default(),
    };
    let lump = mb.add_dir(DirFrag::whole(InodeNo::ROOT), Fnode::default(), dir_state::DIRTY);
    lump.full.push(FullDentry {
        name: format!("dir{n}"),
        first: 2,
        last: CEPH_NOSNAP,
        version: 7,
        inode: Inode {
            ino: parent.ino,
            mode: Inode::S_IFDIR | 0o755,
            uid: 1000,
            gid: 1000,
            nlink: 2,
            ctime: t(1),
            mtime: t(2),
            atime: t(3),
            btime: t(4),
            version: 7,
            dirstat: fnode.fragstat,
            rstat: fnode.rstat,
            ..Inode::default()
        },
        dirfragtree: vec![0x0100_0000, 0x0100_0001],
        state: full_state::DIRTY | full_state::DIRTY_PARENT,
        ..FullDentry::default()
    });
    let lump = mb.add_dir(parent, fnode, dir_state::DIRTY | dir_state::COMPLETE);
    let mut xattrs = BTreeMap::new();
    xattrs.insert("user.a".to_owned(), vec![0, 1, 2, 255]);
    lump.full.push(FullDentry {
        name: "file".into(),
        first: 2,
        last: CEPH_NOSNAP,
        version: 11,
        inode: Inode {
            ino: InodeNo(0x10_0000 + n),
            mode: Inode::S_IFREG | 0o644,
            uid: 1000,
            gid: 100,
            nlink: 1,
            size: 12345 + n,
            truncate_seq: 1,
            ctime: t(7),
            mtime: t(8),
            atime: t(9),
            btime: t(10),
            change_attr: 3,
            version: 11,
            xattr_version: 2,
            ..Inode::default()
        },
        xattrs,
        state: full_state::DIRTY | full_state::NEW,
        ..FullDentry::default()
    });
    lump.full.push(FullDentry {
        name: "link".into(),
        first: 2,
        last: CEPH_NOSNAP,
        version: 12,
        inode: Inode {
            ino: InodeNo(0x20_0000 + n),
            mode: Inode::S_IFLNK | 0o777,
            nlink: 1,
            ..Inode::default()
        },
        symlink: "file".into(),
        state: full_state::DIRTY,
        ..FullDentry::default()
    });
    lump.remote.push(RemoteDentry {
        name: "hard".into(),
        first: 2,
        last: CEPH_NOSNAP,
        version: 13,
        ino: InodeNo(0x30_0000),
        d_type: 8,
        dirty: true,
    });
    lump.null.push(NullDentry { name: "gone".into(), first: 2, last: CEPH_NOSNAP, version: 14, dirty: true });
    mb.roots.push(FullDentry {
        inode: Inode { ino: InodeNo::ROOT, mode: Inode::S_IFDIR | 0o755, nlink: 1, ..Inode::default() },
        ..FullDentry::default()
    });
    mb.client_reqs.push((reqid(n), n.saturating_sub(3)));
    mb.allocated_ino = InodeNo(0x10_0000 + n);
    mb.used_preallocated_ino = InodeNo(0x10_0100);
    mb.preallocated_inos = vec![(InodeNo(0x10_0200), 100)];
    mb.client_name = Some(EntityName::client(4123));
    mb.inotable_version = 40 + n;
    mb.sessionmap_version = 50 + n;
    mb.truncate_start = BTreeSet::from([InodeNo(0x99)]);
    mb.truncate_finish = BTreeMap::from([(InodeNo(0x98), 0x40_1000)]);
    mb.destroyed_inodes = vec![InodeNo(0x97)];
    mb.renamed_dirino = InodeNo(0x96);
    mb
}

/// An EUpdate with a realistic metablob; `tid` identifies it in tests.
pub fn update(tid: u64) -> LogEvent {
    LogEvent::Update(EUpdate {
        stamp: t(100),
        op_type: "mkdir".into(),
        metablob: rich_metablob(tid),
        cmapv: 0,
        reqid: Some(reqid(tid)),
        had_peers: false,
    })
}

/// A small EUpdate padded with an xattr so that its payload is about `bytes` long.
pub fn update_sized(tid: u64, bytes: usize) -> LogEvent {
    let mut mb = MetaBlob::default();
    let lump = mb.add_dir(DirFrag::whole(InodeNo::ROOT), Fnode::default(), dir_state::DIRTY);
    let mut xattrs = BTreeMap::new();
    xattrs.insert("user.pad".to_owned(), vec![0xab; bytes.saturating_sub(700)]);
    lump.full.push(FullDentry {
        name: format!("f{tid}"),
        inode: Inode {
            ino: InodeNo(0x10_0000 + tid),
            mode: Inode::S_IFREG | 0o644,
            nlink: 1,
            ..Inode::default()
        },
        xattrs,
        state: full_state::DIRTY | full_state::NEW,
        ..FullDentry::default()
    });
    LogEvent::Update(EUpdate {
        stamp: t(1),
        op_type: "create".into(),
        metablob: mb,
        cmapv: 0,
        reqid: Some(reqid(tid)),
        had_peers: false,
    })
}

/// The tid of an EUpdate made by [`update`] / [`update_sized`].
pub fn tid_of(ev: &LogEvent) -> Option<u64> {
    match ev {
        LogEvent::Update(u) => u.reqid.map(|r| r.tid),
        _ => None,
    }
}

/// One event of every type, with non-default fields.
pub fn one_of_each() -> Vec<LogEvent> {
    vec![
        LogEvent::SubtreeMap(ESubtreeMap {
            metablob: rich_metablob(1),
            subtrees: BTreeMap::from([(
                DirFrag::whole(InodeNo::ROOT),
                vec![DirFrag::whole(InodeNo(0x1001))],
            )]),
            ambiguous_subtrees: BTreeSet::from([DirFrag { ino: InodeNo(0x1002), frag: Frag::new(1, 1) }]),
            expire_pos: 0x40_0000,
            event_seq: 77,
        }),
        LogEvent::ResetJournal(EResetJournal { stamp: t(3) }),
        LogEvent::Session(ESession {
            stamp: t(4),
            client: EntityName::client(4123),
            addr: "127.0.0.1:0/3895977888".parse::<EntityAddr>().unwrap(),
            open: true,
            cmapv: 5,
            inos_to_free: vec![(InodeNo(0x10_0000), 1000)],
            inotable_version: 6,
            client_metadata: BTreeMap::from([("hostname".to_owned(), "node1".to_owned())]),
        }),
        update(2),
        LogEvent::Update(EUpdate {
            stamp: t(5),
            op_type: "scatter_writebehind".into(),
            metablob: MetaBlob::default(),
            cmapv: 9,
            reqid: None,
            had_peers: true,
        }),
        LogEvent::PeerUpdate(EPeerUpdate {
            stamp: t(6),
            op_type: "rename".into(),
            reqid: MetaReqId { name: EntityName { kind: rados_store::EntityType::Mds, num: 1 }, tid: 44 },
            leader: 1,
            op: PeerOp::Prepare,
            origop: PeerOrigOp::Rename,
            commit: rich_metablob(3),
            rollback: vec![1, 2, 3, 4, 5],
        }),
        LogEvent::PeerUpdate(EPeerUpdate {
            stamp: t(6),
            op_type: "link".into(),
            reqid: reqid(45),
            leader: 2,
            op: PeerOp::Commit,
            origop: PeerOrigOp::Link,
            commit: MetaBlob::default(),
            rollback: vec![],
        }),
        LogEvent::PeerUpdate(EPeerUpdate {
            stamp: t(6),
            op_type: "rmdir".into(),
            reqid: reqid(46),
            leader: 0,
            op: PeerOp::Rollback,
            origop: PeerOrigOp::Rmdir,
            commit: MetaBlob::default(),
            rollback: vec![9],
        }),
        LogEvent::Open(EOpen {
            stamp: t(7),
            metablob: rich_metablob(4),
            inos: vec![InodeNo(0x10_0004), InodeNo(0x10_0005)],
            snap_inos: vec![InodeNo(0x10_0006)],
        }),
        LogEvent::Committed(ECommitted { stamp: t(8), reqid: reqid(44) }),
        LogEvent::NoOp(ENoOp { pad_size: 17 }),
    ]
}

/// A unique directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mds-journal-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic schedules without a rand dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A journal configuration with small objects (so tests cross object boundaries and trim).
pub fn small_cfg(rank: u32, object_size: u32) -> JournalConfig {
    JournalConfig { layout: FileLayout::simple(object_size), ..JournalConfig::for_rank(rank) }
}
