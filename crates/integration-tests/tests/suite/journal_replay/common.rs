//! Driving one `Rank` and reading its namespace back.

use std::collections::BTreeMap;

use mds_journal::{FileLayout, JournalConfig};
use mds_locker::runtime::Rank;
use mds_locker::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, ClientRequest, Effect, Event, FilePath, Ino, InodeData,
    InodeId, Linkage, Op, Reply, ReqId,
};

pub const CLIENT: u64 = 1;

/// Small journal objects, so a handful of updates spans several of them.
pub fn jcfg() -> JournalConfig {
    JournalConfig { layout: FileLayout::simple(64 << 10), ..JournalConfig::for_rank(0) }
}

pub fn p(s: &str) -> FilePath {
    FilePath::new(Ino::ROOT, s)
}

/// Answers cap revokes at once (a cooperative client, mds §4.14); returns everything.
pub fn ack_revokes(rank: &mut Rank, mut fx: Vec<Effect>) -> Vec<Effect> {
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

pub fn replies(fx: &[Effect]) -> Vec<Reply> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn open_session(rank: &mut Rank) {
    if !rank.locker().sessions().any(|s| s.client() == CLIENT) {
        rank.handle(Event::SessionOpen { client: CLIENT }).unwrap();
    }
}

/// Sends one request without waiting for the journal; returns its effects.
pub fn submit(rank: &mut Rank, reqid: u64, op: Op) -> Vec<Effect> {
    let fx = rank.handle(Event::Request(ClientRequest { reqid: ReqId(reqid), client: CLIENT, op })).unwrap();
    ack_revokes(rank, fx)
}

/// Runs one request to its safe reply; returns the safe reply.
pub async fn run_safe(rank: &mut Rank, reqid: u64, op: Op) -> Reply {
    let mut fx = submit(rank, reqid, op);
    while rank.unsafe_entries() > 0 {
        let more = rank.wait_safe().await.unwrap();
        fx.extend(ack_revokes(rank, more));
    }
    let r = replies(&fx);
    let last = r.last().unwrap_or_else(|| panic!("request {reqid}: no reply"));
    assert!(last.safe, "request {reqid}: {r:?}");
    last.clone()
}

/// Namespace entry: primary inode (number and content) or a remote link's target.
pub type Entry = Result<(Ino, InodeData), Ino>;

fn walk(rank: &Rank, dir: InodeId, prefix: &str, out: &mut BTreeMap<String, Entry>) {
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

/// The committed namespace under `/` and the rank's own `~mds0` (strays).
pub fn namespace(rank: &Rank) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let c = rank.locker().cache();
    let (root, mdsdir) = (c.root(), c.mdsdir());
    out.insert("/".into(), Ok((Ino::ROOT, c.inode(root).unwrap().data().clone())));
    walk(rank, root, "", &mut out);
    walk(rank, mdsdir, "~mds0", &mut out);
    out
}

/// The namespace without inode versions: after a replay, re-run requests may bump versions a
/// different number of times than the uninterrupted run did (that run's cache also held the
/// client's caps, which replay does not restore: clients reconnect them, mds §6.6), so
/// comparisons across a re-run look at names, inode numbers and contents only.
pub fn without_versions(mut ns: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    for (_, d) in ns.values_mut().flatten() {
        d.version = 0;
    }
    ns
}

/// A fixed workload: mkdirs, creates, a rename, a link, an unlink and a setattr. (RENAME and
/// LINK take a directory and one name per side, as Ceph clients send them.)
pub fn workload() -> Vec<Op> {
    vec![
        Op::Mkdir { path: p("d"), mode: 0o755 },
        Op::Create { path: p("d/f"), mode: 0o644, excl: true, file_mode: 1 },
        Op::Create { path: p("d/old"), mode: 0o600, excl: true, file_mode: 1 },
        Op::Create { path: p("f0"), mode: 0o644, excl: true, file_mode: 1 },
        Op::Rename { dest: p("g"), src: p("f0") },
        Op::Link { path: p("h"), target: p("g") },
        Op::Unlink { path: p("d/old") },
        Op::Setattr { path: p("g"), attrs: mds_locker::SetAttr { mode: Some(0o640), ..Default::default() } },
        Op::Mkdir { path: p("d/sub"), mode: 0o755 },
        Op::Create { path: p("d/sub/x"), mode: 0o644, excl: true, file_mode: 1 },
    ]
}
