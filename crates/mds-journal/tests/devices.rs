//! Both real devices — a local directory with fdatasync and rados-store objects — and the
//! journal tool's header, export/import and reset (modelled on cephfs-journal-tool).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use mds_journal::tool::{self, Integrity};
use mds_journal::*;
use rados_store::{Cluster, ClusterConfig};

/// The same life cycle on any device: create, write across objects, trim, reopen, replay.
async fn life_cycle(dev: Arc<dyn JournalDevice>) {
    let c = JournalConfig {
        layout: FileLayout::simple(8 << 10),
        events_per_segment: 8,
        max_segments: 2,
        ..JournalConfig::for_rank(1)
    };
    let log = MdLog::create(dev.clone(), c.clone()).await.unwrap();
    assert!(matches!(MdLog::create(dev.clone(), c.clone()).await, Err(JournalError::InvalidArgument(_))));
    let mut last = None;
    for i in 0..60 {
        last = Some(log.submit(update(i)).unwrap());
    }
    log.wait_safe(&last.unwrap()).await.unwrap();
    let before = tool::journal_objects(dev.as_ref(), 1).await.unwrap();
    assert!(before.iter().all(|n| n.starts_with("201.")), "rank 1 uses inode 0x201: {before:?}");
    let r = log.trim().await.unwrap();
    assert!(r.objects_removed > 0);
    let after = tool::journal_objects(dev.as_ref(), 1).await.unwrap();
    assert_eq!(after.len() as u64 + r.objects_removed, before.len() as u64);
    log.close().await.unwrap();
    assert!(matches!(log.submit(update(1000)), Err(JournalError::Closed)));
    let (log, replay) = MdLog::open(dev.clone(), c.clone()).await.unwrap();
    assert!(replay.torn_tail.is_none());
    assert_eq!(tid_of(&replay.events.last().unwrap().event), Some(59));
    assert_eq!(replay.events[0].pos.start, r.expire_pos);
    log.close().await.unwrap();
    assert_eq!(tool::inspect(dev.as_ref(), 1).await.unwrap().integrity, Integrity::Ok);
}

#[tokio::test]
async fn local_directory_device_life_cycle() {
    let dir = TempDir::new("lifecycle");
    let dev = Arc::new(DirDevice::open(dir.path()).unwrap());
    life_cycle(dev.clone()).await;
    // Objects are plain files named like RADOS objects; no temporary files are left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names[0], "201.00000000");
    assert!(names.iter().all(|n| !n.ends_with(".tmp")));
}

#[tokio::test]
async fn rados_store_device_life_cycle() {
    let cluster = Cluster::new(ClusterConfig::default());
    cluster.create_pool("cephfs_metadata").unwrap();
    let ioctx = cluster.connect().ioctx("cephfs_metadata", "").unwrap();
    let dev = Arc::new(RadosDevice::new(ioctx.clone()));
    life_cycle(dev).await;
    // The objects really are in the pool, as a real MDS would leave them.
    let objs = ioctx.list_objects().await.unwrap();
    assert!(objs.contains(&"201.00000000".to_owned()));
}

#[tokio::test]
async fn dir_device_basics() {
    let dir = TempDir::new("basics");
    let dev = DirDevice::open(dir.path().join("nested")).unwrap();
    assert_eq!(dev.stat("200.00000001").await.unwrap(), None);
    assert_eq!(dev.read("200.00000001", 0, 10).await.unwrap(), None);
    dev.write("200.00000001", 4, Bytes::from_static(b"abcd")).await.unwrap();
    dev.sync(&["200.00000001".to_owned()]).await.unwrap();
    assert_eq!(dev.read("200.00000001", 0, 100).await.unwrap().unwrap(), b"\0\0\0\0abcd");
    assert_eq!(dev.read("200.00000001", 6, 1).await.unwrap().unwrap(), b"c");
    assert_eq!(dev.read("200.00000001", 50, 1).await.unwrap().unwrap(), b"");
    dev.write_full("200.00000000", Bytes::from_static(b"head")).await.unwrap();
    dev.write_full("200.00000000", Bytes::from_static(b"h2")).await.unwrap();
    assert_eq!(dev.read("200.00000000", 0, 100).await.unwrap().unwrap(), b"h2");
    dev.truncate("200.00000001", 5).await.unwrap();
    assert_eq!(dev.stat("200.00000001").await.unwrap(), Some(5));
    assert_eq!(dev.list().await.unwrap(), vec!["200.00000000".to_owned(), "200.00000001".to_owned()]);
    assert!(dev.remove("200.00000001").await.unwrap());
    assert!(!dev.remove("200.00000001").await.unwrap());
    assert!(matches!(dev.write("../escape", 0, Bytes::new()).await, Err(DeviceError::Invalid(_))));
    assert!(matches!(dev.write("x.tmp", 0, Bytes::new()).await, Err(DeviceError::Invalid(_))));
}

#[tokio::test]
async fn header_get_and_set_by_field_name() {
    let dev = Arc::new(MemDevice::new());
    let log = MdLog::create(dev.clone(), small_cfg(0, 16 << 10)).await.unwrap();
    let p = log.submit(update(1)).unwrap();
    log.close().await.unwrap();
    let h = tool::read_header(dev.as_ref(), 0).await.unwrap();
    assert_eq!(h.get_field("magic").unwrap(), "ceph fs volume v011");
    assert_eq!(h.get_field("write_pos").unwrap(), format!("{:#x}", p.end));
    assert_eq!(h.get_field("layout.object_size").unwrap(), "16384");
    assert_eq!(h.get_field("stream_format").unwrap(), "2");
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["expire_pos"], 16384);
    let h2 = tool::header_set(dev.as_ref(), 0, "expire_pos", &format!("{:#x}", p.start)).await.unwrap();
    assert_eq!(h2.expire_pos, p.start);
    assert_eq!(tool::read_header(dev.as_ref(), 0).await.unwrap(), h2);
    assert!(tool::header_set(dev.as_ref(), 0, "bogus", "1").await.is_err());
    // The replay now starts at the EUpdate, which is not a segment start.
    let (_log, replay) = MdLog::open(dev, small_cfg(0, 16 << 10)).await.unwrap();
    assert_eq!(replay.skipped, 1);
}

#[tokio::test]
async fn export_then_import_reproduces_the_journal_on_another_device() {
    let dir = TempDir::new("export");
    let src = Arc::new(DirDevice::open(dir.path()).unwrap());
    let c = small_cfg(0, 8 << 10);
    let log = MdLog::create(src.clone(), c.clone()).await.unwrap();
    for i in 0..25 {
        log.submit(update(i)).unwrap();
    }
    log.close().await.unwrap();
    let mut file = Vec::new();
    let summary = tool::export(src.as_ref(), 0, &mut file).await.unwrap();
    assert!(file.starts_with(tool::EXPORT_MAGIC));
    assert_eq!(summary.end, tool::read_header(src.as_ref(), 0).await.unwrap().write_pos);

    let dst = Arc::new(MemDevice::new());
    // Pre-existing junk of the target rank is replaced.
    dst.set_object("202.00000040", vec![1, 2, 3]);
    let imported = tool::import(dst.as_ref(), 2, &mut file.as_slice()).await.unwrap();
    assert_eq!(imported, summary, "the file records the source rank");
    assert!(dst.object("202.00000040").is_none());
    let a = tool::list_events(src.as_ref(), 0, &Default::default()).await.unwrap();
    let b = tool::list_events(dst.as_ref(), 2, &Default::default()).await.unwrap();
    assert_eq!(a, b);
    assert!(tool::import(dst.as_ref(), 2, &mut &b"not an export at all, really"[..]).await.is_err());
}

#[tokio::test]
async fn reset_moves_past_old_data_and_journals_a_reset_event() {
    let dev = Arc::new(MemDevice::new());
    let c = small_cfg(0, 8 << 10);
    let log = MdLog::create(dev.clone(), c.clone()).await.unwrap();
    for i in 0..30 {
        log.submit(update(i)).unwrap();
    }
    log.close().await.unwrap();
    let old = tool::read_header(dev.as_ref(), 0).await.unwrap();
    // Damage the header: reset must still work.
    dev.set_object("200.00000000", vec![0xde, 0xad]);
    let h = tool::reset(dev.clone(), 0, FileLayout::simple(8 << 10)).await.unwrap();
    assert!(h.trimmed_pos >= old.write_pos && h.trimmed_pos % (8 << 10) == 0);
    assert_eq!(h.expire_pos, h.trimmed_pos);
    assert!(h.write_pos > h.expire_pos, "the reset event was journaled");
    let objs = tool::journal_objects(dev.as_ref(), 0).await.unwrap();
    assert_eq!(objs.len(), 2, "old data objects are gone: {objs:?}");
    let (_log, replay) = MdLog::open(dev, c).await.unwrap();
    assert_eq!(replay.events.len(), 1);
    assert!(matches!(replay.events[0].event, LogEvent::ResetJournal(_)));
}

#[tokio::test]
async fn two_ranks_share_one_device_independently() {
    let dev = Arc::new(MemDevice::new());
    let a = MdLog::create(dev.clone(), small_cfg(0, 8 << 10)).await.unwrap();
    let b = MdLog::create(dev.clone(), small_cfg(3, 8 << 10)).await.unwrap();
    for i in 0..10 {
        a.submit(update(i)).unwrap();
        b.submit(update(100 + i)).unwrap();
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    let (_a, ra) = MdLog::open(dev.clone(), small_cfg(0, 8 << 10)).await.unwrap();
    let (_b, rb) = MdLog::open(dev.clone(), small_cfg(3, 8 << 10)).await.unwrap();
    assert_eq!(
        ra.events.iter().filter_map(|e| tid_of(&e.event)).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        rb.events.iter().filter_map(|e| tid_of(&e.event)).collect::<Vec<_>>(),
        (100..110).collect::<Vec<_>>()
    );
    assert!(tool::journal_objects(dev.as_ref(), 3).await.unwrap().iter().all(|n| n.starts_with("203.")));
}

#[tokio::test]
async fn create_removes_headerless_leftovers_of_the_same_rank() {
    let dev = Arc::new(MemDevice::new());
    let c = small_cfg(0, 8 << 10);
    let log = MdLog::create(dev.clone(), c.clone()).await.unwrap();
    for i in 0..20 {
        log.submit(update(i)).unwrap();
    }
    log.close().await.unwrap();
    // Lose only the header, then create afresh: the old entries sit at the same positions.
    assert!(dev.remove("200.00000000").await.unwrap());
    let log = MdLog::create(dev.clone(), c.clone()).await.unwrap();
    log.submit(update(1000)).unwrap();
    log.close().await.unwrap();
    let (_log, replay) = MdLog::open(dev, c).await.unwrap();
    assert_eq!(replay.events.iter().filter_map(|e| tid_of(&e.event)).collect::<Vec<_>>(), vec![1000]);
}
