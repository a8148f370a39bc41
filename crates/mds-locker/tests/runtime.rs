//! The one-rank driver on a real `mds-journal` (`mds_locker::runtime::Rank`):
//! journal-before-unlock (mds §6.3) and restart by replay (mds §6.6).

use std::collections::BTreeMap;
use std::sync::Arc;

use mds_journal::{CrashMode, FaultDevice, FileLayout, JournalConfig, JournalDevice, MemDevice};
use mds_locker::runtime::Rank;
use mds_locker::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Event, FilePath, Ino, InodeData,
    InodeId, Linkage, LockerConfig, Op, Reply, ReqId,
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

fn replies(fx: &[Effect]) -> Vec<Reply> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Runs one request to its safe reply and returns the replies.
async fn run(rank: &mut Rank, reqid: u64, op: Op) -> Vec<Reply> {
    let fx = rank.handle(Event::Request(ClientRequest { reqid: ReqId(reqid), client: 1, op })).unwrap();
    let mut fx = ack_revokes(rank, fx);
    while rank.unsafe_entries() > 0 {
        let more = rank.wait_safe().await.unwrap();
        fx.extend(ack_revokes(rank, more));
    }
    replies(&fx)
}

/// Committed namespace below `dir`: path → primary inode content or remote target.
fn walk(rank: &Rank, dir: InodeId, prefix: &str, out: &mut BTreeMap<String, Result<(Ino, InodeData), Ino>>) {
    let c = rank.locker().cache();
    let Some(&frag) = c.inode(dir).unwrap().dirfrags().get(&0) else { return };
    for (name, &dn) in c.dirfrag(frag).unwrap().dentries() {
        let path = format!("{prefix}/{name}");
        match c.dentry(dn).unwrap().linkage() {
            Linkage::Null => {}
            Linkage::Remote { ino, .. } => {
                out.insert(path, Err(ino));
            }
            Linkage::Primary(i) => {
                let n = c.inode(i).unwrap();
                out.insert(path.clone(), Ok((n.ino(), n.data().clone())));
                if n.is_dir() {
                    walk(rank, i, &path, out);
                }
            }
        }
    }
}

fn namespace(rank: &Rank) -> BTreeMap<String, Result<(Ino, InodeData), Ino>> {
    let mut out = BTreeMap::new();
    let c = rank.locker().cache();
    let (root, mdsdir) = (c.root(), c.mdsdir());
    out.insert("/".into(), Ok((Ino::ROOT, c.inode(root).unwrap().data().clone())));
    walk(rank, root, "", &mut out);
    walk(rank, mdsdir, "~mds0", &mut out);
    out
}

#[test]
fn safe_reply_only_after_the_journal_sync_returns_6_3() {
    rt().block_on(async {
        let dev = Arc::new(FaultDevice::new(MemDevice::new()));
        let mut rank = Rank::create(dev.clone(), jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();
        dev.hold_syncs();
        let op = Op::Mkdir { path: p("d"), mode: 0o755 };
        let fx = rank.handle(Event::Request(ClientRequest { reqid: ReqId(1), client: 1, op })).unwrap();
        let r = replies(&fx);
        assert_eq!(r.len(), 1);
        assert!(!r[0].safe, "only the early reply before the entry is durable");
        assert_eq!(rank.unsafe_entries(), 1);
        // The flush reaches the device's sync and blocks there: no JournalSafe, no safe reply.
        tokio::select! {
            biased;
            _ = rank.wait_safe() => panic!("safe reported while the sync is held"),
            _ = dev.wait_for_blocked_syncs(1) => {}
        }
        assert_eq!(rank.unsafe_entries(), 1);
        assert!(rank.locker().request(ReqId(1)).is_some(), "the mutation still holds its locks");
        dev.release_syncs();
        let r = replies(&rank.wait_safe().await.unwrap());
        assert!(r.len() == 1 && r[0].safe && r[0].result.is_ok(), "{r:?}");
        assert!(rank.locker().request(ReqId(1)).is_none());
        rank.close().await.unwrap();
    });
}

#[test]
fn restart_replays_everything_that_got_a_safe_reply_6_6() {
    rt().block_on(async {
        let dev = Arc::new(FaultDevice::new(MemDevice::new()));
        let as_dev: Arc<dyn JournalDevice> = dev.clone();
        let mut rank = Rank::create(as_dev.clone(), jcfg(), LockerConfig::default()).await.unwrap();
        rank.handle(Event::SessionOpen { client: 1 }).unwrap();
        let d_ino = {
            let r = run(&mut rank, 1, Op::Mkdir { path: p("d"), mode: 0o755 }).await;
            assert!(r.last().unwrap().safe);
            r.last().unwrap().result.unwrap().unwrap()
        };
        let ops = vec![
            Op::Create { path: p("d/f"), mode: 0o644, excl: true, file_mode: 1 },
            Op::Create { path: p("d/old"), mode: 0o600, excl: true, file_mode: 1 },
            Op::Mkdir { path: p("d/sub"), mode: 0o700 },
            Op::Symlink { path: p("s"), target: "d/f".into() },
            Op::Rename {
                dest: FilePath { base: Ino::ROOT, components: vec!["g".into()] },
                src: FilePath { base: d_ino, components: vec!["f".into()] },
            },
            Op::Link { path: p("h"), target: p("g") },
            Op::Unlink { path: p("d/old") },
            Op::Rmdir { path: p("d/sub") },
            Op::Setattr {
                path: p("g"),
                attrs: mds_locker::SetAttr { mode: Some(0o640), ..Default::default() },
            },
        ];
        for (i, op) in ops.into_iter().enumerate() {
            let what = format!("{op:?}");
            let r = run(&mut rank, 2 + i as u64, op).await;
            let last = r.last().unwrap_or_else(|| panic!("no reply to {what}"));
            assert!(last.safe && last.result.is_ok(), "{what}: {r:?}");
        }
        let safe_ns = namespace(&rank);
        assert!(safe_ns.contains_key("/g") && safe_ns.contains_key("/h") && !safe_ns.contains_key("/d/old"));

        // One more write that gets only its early reply: its sync is held, then the power goes.
        dev.hold_syncs();
        let fx = rank
            .handle(Event::Request(ClientRequest {
                reqid: ReqId(100),
                client: 1,
                op: Op::Mkdir { path: p("lost"), mode: 0o755 },
            }))
            .unwrap();
        assert!(replies(&fx).iter().all(|r| !r.safe));
        dev.crash(CrashMode::LoseUnsynced).await;
        dev.release_syncs();
        rank.abandon().await;
        dev.restart();

        let (rank, report) = Rank::open(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
        assert_eq!(report.updates, 10, "{report:?}");
        assert_eq!(report.client_reqs.len(), 10);
        let replayed = namespace(&rank);
        for (path, v) in &safe_ns {
            assert_eq!(replayed.get(path), Some(v), "§6.6: {path} got a safe reply and must survive replay");
        }
        // The crash lost only the unsafe mkdir.
        assert_eq!(replayed, safe_ns);
        mds_locker::invariants::check_all(rank.locker()).unwrap();
        rank.close().await.unwrap();
    });
}

/// A tiny deterministic generator, so every seed replays the same operation stream.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn random_op(g: &mut Lcg) -> Op {
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    let name = |g: &mut Lcg| NAMES[g.next(4) as usize];
    let path = |g: &mut Lcg| if g.next(2) == 0 { p(name(g)) } else { p(&format!("{}/{}", name(g), name(g))) };
    match g.next(6) {
        0 => Op::Mkdir { path: path(g), mode: 0o755 },
        1 => Op::Create { path: path(g), mode: 0o644, excl: false, file_mode: 1 },
        2 => Op::Unlink { path: path(g) },
        3 => Op::Rmdir { path: path(g) },
        4 => Op::Rename { dest: p(name(g)), src: p(name(g)) },
        _ => Op::Setattr {
            path: path(g),
            attrs: mds_locker::SetAttr { mode: Some(0o600), ..Default::default() },
        },
    }
}

#[test]
fn random_streams_survive_a_crash_and_the_restarted_rank_keeps_working_6_6() {
    for seed in 0..12u64 {
        rt().block_on(async {
            let mut g = Lcg(seed);
            let dev = Arc::new(FaultDevice::new(MemDevice::new()));
            let as_dev: Arc<dyn JournalDevice> = dev.clone();
            let mut rank = Rank::create(as_dev.clone(), jcfg(), LockerConfig::default()).await.unwrap();
            rank.handle(Event::SessionOpen { client: 1 }).unwrap();
            let mut ok = 0;
            for reqid in 1..=40 {
                let r = run(&mut rank, reqid, random_op(&mut g)).await;
                assert!(r.last().is_some_and(|r| r.safe), "seed {seed} req {reqid}: {r:?}");
                ok += usize::from(r.last().is_some_and(|r| r.result.is_ok()));
                mds_locker::invariants::check_all(rank.locker()).unwrap();
            }
            assert!(ok >= 8, "seed {seed}: only {ok} writes succeeded; the stream tests too little");
            let safe_ns = namespace(&rank);
            dev.hold_syncs();
            let op = Op::Mkdir { path: p("unsafe"), mode: 0o755 };
            rank.handle(Event::Request(ClientRequest { reqid: ReqId(99), client: 1, op })).unwrap();
            dev.crash(CrashMode::LoseUnsynced).await;
            dev.release_syncs();
            rank.abandon().await;
            dev.restart();

            let (mut rank, _) = Rank::open(as_dev, jcfg(), LockerConfig::default()).await.unwrap();
            assert_eq!(namespace(&rank), safe_ns, "seed {seed}: §6.6 replay restores every safe change");
            mds_locker::invariants::check_all(rank.locker()).unwrap();
            // The rebuilt cache serves new writes, and new inode numbers do not collide with
            // replayed ones.
            rank.handle(Event::SessionOpen { client: 1 }).unwrap();
            let r = run(&mut rank, 200, Op::Mkdir { path: p("after"), mode: 0o755 }).await;
            let ino = r.last().unwrap().result.unwrap().unwrap();
            assert!(safe_ns.values().all(|v| v.as_ref().map(|(i, _)| *i) != Ok(ino)), "seed {seed}");
            rank.close().await.unwrap();
        });
    }
}
