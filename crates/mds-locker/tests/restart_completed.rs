//! The completed-request table and sessions survive a rank restart (mds §6.6: replay
//! "re-registers ... client request ids (so retried client requests get their replies from the
//! completed-request table), sessions"), and cap flushes are journaled (§4.14): driven through
//! `runtime::Rank` on a fault-injecting device, crashing it and reopening from the device.

use std::sync::Arc;

use lock_sm::caps::{self, FILE_WR, caps_for_mode};
use mds_journal::{
    CrashMode, FaultDevice, FileLayout, JournalConfig, JournalDevice, LogEvent, MdLog, MemDevice,
};
use mds_locker::runtime::Rank;
use mds_locker::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Event, FilePath, Ino,
    LockerConfig, Op, Reply, ReqId, wire,
};

fn jcfg() -> JournalConfig {
    JournalConfig { layout: FileLayout::simple(64 << 10), ..JournalConfig::for_rank(0) }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn p(s: &str) -> FilePath {
    FilePath::new(Ino::ROOT, s)
}

fn replies(fx: &[Effect]) -> Vec<Reply> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn submits(fx: &[Effect]) -> usize {
    fx.iter().filter(|e| matches!(e, Effect::JournalSubmit { .. })).count()
}

/// Feeds `fx`'s cap revokes back as immediate acknowledgements (a cooperative client, §4.14),
/// returning everything that followed.
fn ack_revokes(rank: &mut Rank, mut fx: Vec<Effect>) -> Vec<Effect> {
    let mut i = 0;
    while i < fx.len() {
        if let Effect::Cap(CapMessage { client, ino, op: CapOp::Revoke, caps, wanted, seq }) = fx[i].clone() {
            let ack = ClientCapMessage { client, ino, op: ClientCapOp::Update, seq, caps, wanted };
            let more = rank.handle(Event::ClientCaps(ack)).expect("ack accepted");
            fx.extend(more);
        }
        i += 1;
    }
    fx
}

/// Runs one request of `client` until nothing is unsafe, clients acking every revoke;
/// returns every effect.
async fn run(rank: &mut Rank, client: u64, reqid: u64, op: Op) -> Vec<Effect> {
    let fx = rank.handle(Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
    let mut fx = ack_revokes(rank, fx);
    while rank.unsafe_entries() > 0 {
        let more = rank.wait_safe().await.unwrap();
        fx.extend(ack_revokes(rank, more));
    }
    fx
}

/// The one safe reply of `fx`.
fn safe_reply(fx: &[Effect]) -> Reply {
    let r: Vec<Reply> = replies(fx).into_iter().filter(|r| r.safe).collect();
    assert_eq!(r.len(), 1, "{fx:?}");
    r[0].clone()
}

fn inode_count(rank: &Rank) -> usize {
    rank.locker().cache().inode_ids().count()
}

fn lookup(rank: &Rank, dir: Ino, name: &str) -> Option<Ino> {
    let c = rank.locker().cache();
    let d = c.lookup_dentry(c.lookup_ino(dir)?, name)?;
    match c.dentry(d)?.linkage() {
        mds_locker::Linkage::Primary(i) => c.inode(i).map(|n| n.ino()),
        mds_locker::Linkage::Remote { ino, .. } => Some(ino),
        mds_locker::Linkage::Null => None,
    }
}

/// Crashes the device (unsynced writes lost), drops the rank and reopens it from the device.
async fn crash_and_reopen(
    dev: &Arc<FaultDevice<MemDevice>>,
    rank: Rank,
) -> (Rank, mds_locker::runtime::ReplayReport) {
    dev.crash(CrashMode::LoseUnsynced).await;
    dev.release_syncs();
    rank.abandon().await;
    dev.restart();
    let as_dev: Arc<dyn JournalDevice> = dev.clone();
    Rank::open(as_dev, jcfg(), LockerConfig::default()).await.unwrap()
}

#[test]
fn section_6_6_resent_requests_after_restart_are_answered_from_the_table() {
    rt().block_on(async {
        let dev = Arc::new(FaultDevice::new(MemDevice::new()));
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let mut rank = Rank::create(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();

        let mkdir = Op::Mkdir { path: p("d"), mode: 0o755 };
        let r1 = safe_reply(&run(&mut rank, 1, 1, mkdir.clone()).await);
        let d_ino = r1.result.unwrap().unwrap();
        let create = Op::Create { path: p("d/f"), mode: 0o644, excl: true, file_mode: 1 };
        let r2 = safe_reply(&run(&mut rank, 1, 2, create.clone()).await);
        let f_ino = r2.result.unwrap().unwrap();
        let rename = Op::Rename {
            dest: FilePath { base: Ino::ROOT, components: vec!["g".into()] },
            src: FilePath { base: d_ino, components: vec!["f".into()] },
        };
        let r3 = safe_reply(&run(&mut rank, 1, 3, rename.clone()).await);
        assert!(r3.result.is_ok());

        // Request 4 gets only its early reply: its journal sync never returns before the crash.
        dev.hold_syncs();
        let lost = Op::Mkdir { path: p("lost"), mode: 0o755 };
        let fx = rank
            .handle(Event::Request(ClientRequest { reqid: ReqId(4), client: 1, op: lost.clone() }))
            .unwrap();
        assert!(replies(&fx).iter().all(|r| !r.safe) && !replies(&fx).is_empty(), "{fx:?}");

        let (mut rank, report) = crash_and_reopen(&dev, rank).await;
        assert_eq!(report.session_events, 1, "{report:?}");
        assert_eq!(report.completed_restored, 3, "{report:?}");
        let session = rank.locker().sessions().find(|s| s.client() == 1).expect("§6.6: the session is back");
        assert_eq!(
            session.completed().keys().copied().collect::<Vec<_>>(),
            vec![ReqId(1), ReqId(2), ReqId(3)]
        );
        mds_locker::invariants::check_all(rank.locker()).unwrap();
        let inodes = inode_count(&rank);

        // The client reconnects (its session is already open again) and re-sends everything it
        // has no safe reply for, and, not knowing, the ones whose safe reply it missed.
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();
        for (reqid, op, want) in
            [(1, mkdir, Ok(Some(d_ino))), (2, create, Ok(Some(f_ino))), (3, rename, Ok(None))]
        {
            let fx = run(&mut rank, 1, reqid, op).await;
            let r = replies(&fx);
            assert_eq!(r.len(), 1, "req {reqid}: one reply, from the table: {fx:?}");
            assert!(r[0].safe, "req {reqid}: {fx:?}");
            // mkdir would say EEXIST and rename ENOENT if they ran again; the create would make
            // a second inode (d/f is gone). A created inode's number is what the table keeps;
            // other writes get a bare success (Ceph's traceless reply).
            assert_eq!(r[0].result, want, "req {reqid}");
            assert_eq!(submits(&fx), 0, "req {reqid} ran twice: {fx:?}");
        }
        assert_eq!(inode_count(&rank), inodes, "nothing was created twice");
        assert_eq!(lookup(&rank, d_ino, "f"), None);
        assert_eq!(lookup(&rank, Ino::ROOT, "g"), Some(f_ino));

        // The early-replied mkdir is not in the journal: it is absent, and runs normally.
        assert_eq!(lookup(&rank, Ino::ROOT, "lost"), None);
        let fx = run(&mut rank, 1, 4, lost).await;
        let r = replies(&fx);
        assert_eq!(r.len(), 2, "early then safe: {fx:?}");
        assert!(!r[0].safe && r[1].safe);
        let lost_ino = r[1].result.unwrap().unwrap();
        assert_eq!(lookup(&rank, Ino::ROOT, "lost"), Some(lost_ino));
        assert_eq!(inode_count(&rank), inodes + 1);
        mds_locker::invariants::check_all(rank.locker()).unwrap();

        // And a second restart still knows all four.
        let (rank, report) = crash_and_reopen(&dev, rank).await;
        assert_eq!(report.completed_restored, 4, "{report:?}");
        rank.close().await.unwrap();
    });
}

#[test]
fn section_6_6_an_evicted_session_takes_its_table_with_it() {
    rt().block_on(async {
        let dev = Arc::new(FaultDevice::new(MemDevice::new()));
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let mut rank = Rank::create(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();
        rank.handle(Event::SessionOpen { client: 2 }).unwrap();
        let mkdir = |name: &str| Op::Mkdir { path: p(name), mode: 0o755 };
        assert!(safe_reply(&run(&mut rank, 1, 1, mkdir("a")).await).result.is_ok());
        assert!(safe_reply(&run(&mut rank, 2, 2, mkdir("b")).await).result.is_ok());
        let fx = rank.handle(Event::SessionTimeout { client: 2 }).unwrap();
        assert!(fx.contains(&Effect::Evicted { client: 2 }));
        rank.wait_safe().await.unwrap();

        let (mut rank, report) = crash_and_reopen(&dev, rank).await;
        assert_eq!(report.session_events, 3, "two opens and the eviction's close: {report:?}");
        assert_eq!(report.completed_restored, 2, "both were restored while their sessions were open");
        let clients: Vec<u64> = rank.locker().sessions().map(|s| s.client()).collect();
        assert_eq!(clients, vec![1], "the close replays too");
        // A new session of client 2 starts with an empty table, as it did before the restart:
        // its old request runs again (and fails, the directory exists).
        rank.handle(Event::SessionOpen { client: 2 }).unwrap();
        let r = safe_reply(&run(&mut rank, 2, 2, mkdir("b")).await);
        assert_eq!(r.result, Err(mds_locker::Errno::EEXIST));
        let r = safe_reply(&run(&mut rank, 1, 1, mkdir("a")).await);
        assert!(r.result.is_ok(), "client 1's entry survived");
        rank.close().await.unwrap();
    });
}

#[test]
fn section_6_6_the_journal_carries_sessions_request_ids_and_created_inodes() {
    rt().block_on(async {
        let dev: Arc<dyn JournalDevice> = Arc::new(MemDevice::new());
        let mut rank = Rank::create(dev.clone(), jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 5 }).unwrap();
        let r = safe_reply(&run(&mut rank, 5, 9, Op::Mkdir { path: p("d"), mode: 0o755 }).await);
        let d_ino = r.result.unwrap().unwrap();
        let r = safe_reply(
            &run(
                &mut rank,
                5,
                10,
                Op::Setattr {
                    path: p("d"),
                    attrs: mds_locker::SetAttr { mode: Some(0o700), ..Default::default() },
                },
            )
            .await,
        );
        assert!(r.result.is_ok());
        rank.close().await.unwrap();

        let (log, replay) = MdLog::open(dev, jcfg()).await.unwrap();
        let events: Vec<&LogEvent> = replay.events.iter().map(|e| &e.event).collect();
        let sessions: Vec<_> = events.iter().filter_map(|e| wire::session_change(e)).collect();
        assert_eq!(sessions, vec![(5, true)]);
        let completed: Vec<_> = events.iter().flat_map(|e| wire::completed_requests(e)).collect();
        assert_eq!(
            completed,
            vec![
                wire::CompletedReq { client: 5, reqid: ReqId(9), created: Some(d_ino) },
                wire::CompletedReq { client: 5, reqid: ReqId(10), created: None },
            ]
        );
        // The session event comes before the client's first update.
        let first_session = events.iter().position(|e| matches!(e, LogEvent::Session(_))).unwrap();
        let first_update = events.iter().position(|e| matches!(e, LogEvent::Update(_))).unwrap();
        assert!(first_session < first_update);
        log.close().await.unwrap();
    });
}

/// §4.14 through the driver: the FLUSH_ACK comes only out of `wait_safe` (after the device
/// sync), and the flushed size is in the journal for replay.
#[test]
fn section_4_14_flushed_size_survives_a_restart() {
    rt().block_on(async {
        let dev = Arc::new(FaultDevice::new(MemDevice::new()));
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let mut rank = Rank::create(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();
        let create = Op::Create { path: p("f"), mode: 0o644, excl: true, file_mode: caps::FILE_MODE_RDWR };
        let fx = run(&mut rank, 1, 1, create).await;
        let f_ino = safe_reply(&fx).result.unwrap().unwrap();
        let f = rank.locker().cache().lookup_ino(f_ino).unwrap();
        let cap = rank.locker().cache().inode(f).unwrap().caps()[&1].clone();
        assert_ne!(cap.pending() & FILE_WR, 0, "the creator is the loner and may write");
        assert_eq!(cap.wanted() & caps_for_mode(caps::FILE_MODE_RDWR), caps_for_mode(caps::FILE_MODE_RDWR));

        dev.hold_syncs();
        let msg = ClientCapMessage {
            client: 1,
            ino: f_ino,
            op: ClientCapOp::Flush { tid: 1, dirty: FILE_WR, size: 1 << 20, mtime_ms: 42_000 },
            seq: cap.last_sent(),
            caps: cap.pending(),
            wanted: cap.wanted(),
        };
        let fx = rank.handle(Event::ClientCaps(msg)).unwrap();
        assert_eq!(submits(&fx), 1, "{fx:?}");
        assert!(!fx.iter().any(|e| matches!(e, Effect::Cap(CapMessage { op: CapOp::FlushAck { .. }, .. }))));
        assert_eq!(rank.unsafe_entries(), 1);
        // The sync is held: no ack can come out.
        tokio::select! {
            biased;
            _ = rank.wait_safe() => panic!("safe while the sync is held"),
            _ = dev.wait_for_blocked_syncs(1) => {}
        }
        dev.release_syncs();
        let fx = rank.wait_safe().await.unwrap();
        let acks: Vec<_> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Cap(c @ CapMessage { op: CapOp::FlushAck { .. }, .. }) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(acks.len(), 1, "{fx:?}");
        assert_eq!(
            (acks[0].client, acks[0].ino, acks[0].op),
            (1, f_ino, CapOp::FlushAck { tid: 1, cleaned: FILE_WR })
        );

        let (rank, _) = crash_and_reopen(&dev, rank).await;
        let f = rank.locker().cache().lookup_ino(f_ino).expect("replayed");
        let d = rank.locker().cache().inode(f).unwrap().data().clone();
        assert_eq!((d.size, d.mtime_ms), (1 << 20, 42_000), "§6.6: the cap update replays");
        rank.close().await.unwrap();
    });
}
