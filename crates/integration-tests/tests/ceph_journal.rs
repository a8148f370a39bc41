//! The MDS journal on a real Ceph 16.2 cluster (issue 11, interop item 6): a writer killed with
//! SIGKILL never loses an event it acknowledged, and the journal tool works on the objects in a
//! metadata pool (mds §6.2: a safe reply means the update survives a crash; §6.4: objects
//! `<ino hex>.<8 hex>`, header in object 0; §6.6: replay truncates a torn tail and refuses to
//! guess about corruption).
//!
//! Runs only with `--features ceph` and `CEPH_CONF` set (see `ceph_support`); otherwise each test
//! prints a note and passes. The writer is `cephlock journal --conf ... write-test` (the binary
//! from `CEPHLOCK_BIN`, built with `--features ceph`), the checks use the same binary's
//! `inspect` / `event get` and mds-journal's replay on a librados connection of our own.
//!
//! **Pools.** `scripts/ceph-dev-cluster.sh` makes no metadata pool (only `rbd`, and `cephfs_metadata`
//! with `CEPH_DEV_MDS=1`, which a running MDS would own). Each test therefore creates a pool of
//! its own (8 PGs, application `cephfs`, as a metadata pool is tagged) and removes it when it
//! passes; a failing test leaves its pool behind for a look and says its name. Inside one pool,
//! crash runs use one rank each, so no run ever sees another's journal, and a rerun of the suite
//! starts from empty pools. The journal sits in the default namespace, where an MDS keeps it.
//!
//! **Fencing.** A killed writer may have a write in flight: sent, but not yet applied by the OSD.
//! Ceph's monitors blocklist a failed MDS before a standby replays its journal, so that such a
//! write cannot land after the replay has read the log. The tests do the same with the address
//! `write-test` announces on stderr (`ceph osd blocklist add`), before anything reads the journal;
//! the entries are removed when the test ends.
#![cfg(feature = "ceph")]

mod ceph_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ceph_support as support;
use mds_journal::metablob::full_state;
use mds_journal::tool::{self, Integrity};
use mds_journal::{
    CEPH_NOSNAP, EUpdate, FileLayout, FullDentry, Inode, InodeNo, JournalConfig, JournalDevice, LogEvent,
    MdLog, MetaBlob, MetaReqId, RadosDevice, parse_object_name,
};
use rados_store::{EntityName, UTime};
use serde_json::Value;

/// write-test's event `seq` journals inode `TEST_INO_BASE + seq` (`cephlock journal --help`).
const TEST_INO_BASE: u64 = 0x100_0000_0000;

/// The `ceph` tool against the cluster; panics with its stderr on failure.
fn ceph(conf: &str, args: &[&str]) -> String {
    let out = Command::new("ceph")
        .arg("-c")
        .arg(conf)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the ceph tool is installed (Debian package ceph-common)");
    assert!(out.status.success(), "ceph {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A metadata pool of one test, removed (with the blocklist entries the test added) when the
/// test passes.
struct MetaPool {
    conf: String,
    name: String,
    fenced: Mutex<Vec<String>>,
}

impl MetaPool {
    fn create(conf: &str, test: &str) -> MetaPool {
        let name = support::unique_image(&format!("journal-{test}"));
        let t = Instant::now();
        ceph(conf, &["osd", "pool", "create", &name, "8", "8"]);
        ceph(conf, &["osd", "pool", "application", "enable", &name, "cephfs"]);
        support::timing(test, "create the metadata pool", t.elapsed());
        MetaPool { conf: conf.to_owned(), name, fenced: Mutex::new(Vec::new()) }
    }

    /// The pool's id, as the journal header's layout records it.
    fn id(&self) -> i64 {
        let detail = ceph(&self.conf, &["osd", "pool", "ls", "detail", "--format", "json"]);
        let pools: Value = serde_json::from_str(&detail).expect("pool list JSON");
        pools
            .as_array()
            .and_then(|a| a.iter().find(|p| p["pool_name"] == self.name.as_str()))
            .and_then(|p| p["pool_id"].as_i64())
            .unwrap_or_else(|| panic!("pool {} is not in {detail}", self.name))
    }

    /// Blocklists a dead writer's address, so none of its in-flight writes can land later.
    fn fence(&self, addr: &str) {
        ceph(&self.conf, &["osd", "blocklist", "add", addr, "3600"]);
        self.fenced.lock().unwrap_or_else(|e| e.into_inner()).push(addr.to_owned());
    }

    /// The names of the pool's objects, by the real `rados` tool.
    fn rados_ls(&self) -> Vec<String> {
        let out = Command::new("rados")
            .args(["-c", &self.conf, "-p", &self.name, "ls"])
            .stdin(Stdio::null())
            .output()
            .expect("the rados tool is installed (Debian package ceph-common)");
        assert!(out.status.success(), "rados ls: {}", String::from_utf8_lossy(&out.stderr));
        let mut names: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        names.sort();
        names
    }
}

impl Drop for MetaPool {
    fn drop(&mut self) {
        for addr in self.fenced.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = Command::new("ceph")
                .args(["-c", &self.conf, "osd", "blocklist", "rm", addr])
                .stdin(Stdio::null())
                .output();
        }
        if std::thread::panicking() {
            eprintln!("note: kept metadata pool {} of the failed test for a look", self.name);
            return;
        }
        let _ = Command::new("ceph")
            .args(["-c", &self.conf, "osd", "pool", "rm", &self.name, &self.name])
            .arg("--yes-i-really-really-mean-it")
            .stdin(Stdio::null())
            .output();
    }
}

/// The cephlock binary, checked once per test binary.
fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(support::cephlock_bin)
}

/// `cephlock journal --conf CONF --pool POOL --rank RANK`, ready for a command.
fn journal_cmd(pool: &MetaPool, rank: u32) -> Command {
    let mut c = Command::new(bin());
    c.args(["journal", "--conf", &pool.conf, "--pool", &pool.name, "--rank", &rank.to_string()]);
    c.stdin(Stdio::null());
    c
}

/// Runs a journal command to completion; panics with its stderr on failure.
fn journal(pool: &MetaPool, rank: u32, args: &[&str]) -> String {
    let out = journal_cmd(pool, rank).args(args).output().expect("run cephlock");
    assert!(
        out.status.success(),
        "journal --rank {rank} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn journal_json(pool: &MetaPool, rank: u32, args: &[&str]) -> Value {
    let text = journal(pool, rank, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("journal {args:?} printed invalid JSON ({e}): {text}"))
}

fn hex_byte(b: u8) -> String {
    format!("{b:02x}")
}

/// Every write-test EUpdate in rank `rank`'s journal, by sequence number (to its offset), after
/// checking each is intact: it decodes, and carries its sequence number consistently in the
/// request id, the completed-request list and the inode number, with padding bytes derived from
/// it. A duplicate or an entry that does not decode fails the test.
fn journal_seqs(pool: &MetaPool, rank: u32, ctx: &str) -> BTreeMap<u64, u64> {
    let listing = journal_json(pool, rank, &["event", "get", "--type", "EUpdate", "json"]);
    assert_ne!(listing["integrity"]["status"], "corrupt", "{ctx}: {}", listing["integrity"]);
    let mut seqs = BTreeMap::new();
    for rec in listing["events"].as_array().expect("events array") {
        let offset = rec["offset"].as_u64().expect("offset");
        assert!(rec["error"].is_null(), "{ctx}: entry at {offset:#x} does not decode: {}", rec["error"]);
        let u = &rec["event"]["event"];
        assert_eq!(u["op_type"], "write_test", "{ctx}: entry at {offset:#x}");
        let seq = u["reqid"]["tid"].as_u64().expect("reqid.tid");
        let mb = &u["metablob"];
        assert_eq!(mb["client_reqs"][0][0]["tid"].as_u64(), Some(seq), "{ctx}: client_reqs of seq {seq}");
        let dentry = match mb["roots"].as_array().and_then(|r| r.first()) {
            Some(root) => root,
            None => &mb["dirs"][0][1]["full"][0],
        };
        assert_eq!(
            dentry["inode"]["ino"].as_u64(),
            Some(TEST_INO_BASE.wrapping_add(seq)),
            "{ctx}: seq {seq}"
        );
        let pad = dentry["xattrs"]["user.pad"].as_str().expect("pad xattr");
        let want = hex_byte((seq % 251) as u8);
        assert!(
            pad.len() % 2 == 0 && pad.as_bytes().chunks(2).all(|c| c == want.as_bytes()),
            "{ctx}: padding of seq {seq} is not {want} repeated"
        );
        if let Some(prev) = seqs.insert(seq, offset) {
            panic!("{ctx}: seq {seq} journaled twice, at {prev:#x} and {offset:#x}");
        }
    }
    seqs
}

/// A small deterministic generator (splitmix64): each seed names one exact crash schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// When a phase kills its writer, counted from its first `warm` acks.
#[derive(Debug)]
enum Kill {
    /// Once this many further acks appeared.
    AfterAcks(usize),
    /// After this long.
    AfterDelay(Duration),
}

/// The complete lines of an ack log as numbers (one `write` per line: a cut-off last line cannot
/// happen, and would be ignored rather than misread).
fn acked(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(|l| l.parse().unwrap_or_else(|e| panic!("ack line {l:?}: {e}"))).collect()
}

fn ack_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

/// A running write-test: the child, its address, and its stderr collected by a thread.
struct Writer {
    child: Child,
    addr: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Writer {
    /// Spawns the writer and waits for the line that names its address (printed before the
    /// first write).
    fn spawn(mut cmd: Command, ctx: &str) -> Writer {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn write-test");
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr"));
        // Warnings (tracing on stderr) may come first; the announcement is the line that says so.
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{ctx}: write-test did not announce its address: {seen}");
            }
            if let Some(rest) = line.trim_end().strip_prefix("write-test: writing as ")
                && let Some((_, addr)) = rest.rsplit_once(" addr ")
            {
                break addr.to_owned();
            }
            seen.push_str(&line);
        };
        let stderr = std::thread::spawn(move || drain(err));
        Writer { child, addr, stderr }
    }

    /// Waits until the ack log has `lines` lines; fails if the writer exits first or it takes
    /// absurdly long. Polling the file is the synchronisation; the pause only keeps the poll
    /// from competing with the writer for the cores.
    fn wait_for_acks(&mut self, ack: &Path, lines: usize, ctx: &str) {
        let t0 = Instant::now();
        while ack_lines(ack) < lines {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("{ctx}: write-test exited early ({status}) before {lines} acks");
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{ctx}: no {lines} acks after 60 s");
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// SIGKILL: no destructor, no flush, no header write. Returns what it printed on stderr.
    fn kill(mut self, ctx: &str) -> String {
        self.child.kill().expect("kill write-test");
        let status = self.child.wait().expect("reap write-test");
        assert!(!status.success(), "{ctx}: write-test finished a billion events?");
        self.stderr.join().unwrap_or_default()
    }
}

fn drain(mut r: BufReader<ChildStderr>) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// One seeded crash run on rank `rank`: two phases, each a write-test killed with SIGKILL at a
/// seeded moment, then fenced; the second phase first replays (and truncates a torn tail of)
/// what the first left. After each kill every acknowledged sequence number must be in the
/// journal, intact, and the journal must be ok or have a torn tail, never corruption. At the end
/// mds-journal replays the log on a connection of its own and finds the same.
fn crash_run(pool: &MetaPool, seed: u64, rank: u32) {
    let mut rng = Rng(seed);
    let scratch = std::env::temp_dir().join(format!("cephlock-ceph-journal-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let ack = scratch.join("ack");
    let submitters = 1 + rng.below(8);
    let event_bytes = [487, 600, 1500, 4000][rng.below(4) as usize];
    // Small objects make the stream cross object boundaries (new RADOS objects) often.
    // Every size in turn over consecutive seeds, so the default seeds cover all three.
    let object_size = [16u64 << 10, 64 << 10, 4 << 20][(seed % 3) as usize];
    for phase in 0..2u64 {
        let before = acked(&ack).len();
        let warm = 1 + rng.below(20) as usize;
        let kill = if rng.below(2) == 0 {
            Kill::AfterAcks(rng.below(300) as usize)
        } else {
            Kill::AfterDelay(Duration::from_micros(rng.below(30_000)))
        };
        let ctx = format!(
            "seed {seed} rank {rank} phase {phase} ({submitters} submitters, {event_bytes} B events, \
             {object_size} B objects, warm {warm}, kill {kill:?}; pool {})",
            pool.name
        );
        let mut cmd = journal_cmd(pool, rank);
        cmd.args(["write-test", "--events", "1000000000", "--ack-log"])
            .arg(&ack)
            .args(["--submitters", &submitters.to_string(), "--event-bytes", &event_bytes.to_string()])
            .args(["--object-size", &object_size.to_string()])
            .args(["--first-seq", &(phase * 1_000_000_000).to_string()]);
        let mut writer = Writer::spawn(cmd, &ctx);
        writer.wait_for_acks(&ack, before + warm, &ctx);
        match kill {
            Kill::AfterAcks(n) => writer.wait_for_acks(&ack, before + warm + n, &ctx),
            Kill::AfterDelay(d) => std::thread::sleep(d),
        }
        let addr = writer.addr.clone();
        let stderr = writer.kill(&ctx);
        pool.fence(&addr);

        let acks = acked(&ack);
        let insp = journal_json(pool, rank, &["inspect", "--format", "json"]);
        let integrity = insp["integrity"]["status"].as_str().unwrap_or("?");
        assert!(
            integrity == "ok" || integrity == "torn_tail",
            "{ctx}: integrity {}; writer said: {stderr}",
            insp["integrity"]
        );
        assert!(insp["header_problem"].is_null(), "{ctx}: {}", insp["header_problem"]);
        assert_eq!(insp["rank"], rank);
        let seqs = journal_seqs(pool, rank, &ctx);
        let lost: Vec<u64> = acks.iter().copied().filter(|s| !seqs.contains_key(s)).collect();
        assert!(lost.is_empty(), "{ctx}: acknowledged but not in the journal: {lost:?}");
        eprintln!("{ctx}: {} acked, {} journaled, {integrity}", acks.len(), seqs.len());
    }

    // Replay through the library, as an MDS taking over the rank would.
    let acks = acked(&ack);
    let rt = runtime();
    rt.block_on(async {
        let client = support::connect(&pool.conf).await;
        let io = client.ioctx(&pool.name, "").expect("the test's pool");
        let dev: Arc<dyn JournalDevice> = Arc::new(RadosDevice::new(io.clone()));
        let (log, replay) = MdLog::open(dev.clone(), JournalConfig::for_rank(rank)).await.expect("replay");
        assert_eq!(replay.header.layout.pool_id, io.pool_id(), "seed {seed}: the header records the pool");
        assert_eq!(replay.header.layout.object_size as u64, object_size);
        let mut replayed = BTreeMap::new();
        for e in &replay.events {
            if let LogEvent::Update(u) = &e.event {
                let seq = u.reqid.map(|r| r.tid).expect("write-test events carry a reqid");
                assert_eq!(u.op_type, "write_test");
                let dentry = u
                    .metablob
                    .roots
                    .first()
                    .or_else(|| u.metablob.dirs.first().and_then(|d| d.1.full.first()));
                let dentry = dentry.expect("a journaled inode");
                assert_eq!(dentry.inode.ino, InodeNo(TEST_INO_BASE.wrapping_add(seq)), "seed {seed}");
                assert!(dentry.xattrs["user.pad"].iter().all(|&b| b == (seq % 251) as u8), "seed {seed}");
                assert!(replayed.insert(seq, e.pos.start).is_none(), "seed {seed}: seq {seq} twice");
            }
        }
        let lost: Vec<u64> = acks.iter().copied().filter(|s| !replayed.contains_key(s)).collect();
        assert!(lost.is_empty(), "seed {seed}: replay lacks acknowledged {lost:?}");
        log.close().await.expect("close after replay");
        let insp = tool::inspect(dev.as_ref(), rank).await.expect("inspect");
        assert_eq!(insp.integrity, Integrity::Ok, "seed {seed}: after replay and close");
    });
    let _ = std::fs::remove_dir_all(&scratch);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Interop 6 (issue 11; mds §6.2, §6.6): `cephlock journal write-test` on a real cluster's
/// metadata pool, killed with SIGKILL at seeded moments, never loses an event it acknowledged.
/// Set CEPHLOCK_CEPH_JOURNAL_SEEDS=5,6 to replay particular seeds.
#[test]
fn killed_writer_loses_no_acknowledged_event_on_the_cluster() {
    let Some(conf) = support::conf("killed_writer_loses_no_acknowledged_event_on_the_cluster") else {
        return;
    };
    let seeds: Vec<u64> = match std::env::var("CEPHLOCK_CEPH_JOURNAL_SEEDS") {
        Ok(s) => s.split(',').map(|x| x.trim().parse().expect("seed")).collect(),
        Err(_) => (1..=4).collect(),
    };
    let pool = MetaPool::create(&conf, "crash");
    for (rank, seed) in seeds.into_iter().enumerate() {
        let t = Instant::now();
        crash_run(&pool, seed, rank as u32);
        support::timing("journal-crash", &format!("seed {seed} (two kills, replay)"), t.elapsed());
    }
}

/// Every `cephlock journal` command on the cluster's pool, and the objects they leave checked
/// with the real `rados` tool: Ceph's names (`200.00000000` header, `200.0000000N` data), the
/// header magic in object 0 (mds §6.4).
#[test]
fn journal_tool_commands_work_on_a_cluster_pool() {
    let Some(conf) = support::conf("journal_tool_commands_work_on_a_cluster_pool") else { return };
    let pool = MetaPool::create(&conf, "tool");
    let scratch = std::env::temp_dir().join(format!("cephlock-ceph-journal-tool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let ack = scratch.join("ack");
    let ack_s = ack.to_str().expect("utf-8 path");

    // A complete run: 60 events of 1500 B in 16 KiB objects (several data objects).
    let t = Instant::now();
    let out = journal(
        &pool,
        0,
        &["write-test", "--events", "60", "--ack-log", ack_s, "--submitters", "3"]
            .into_iter()
            .chain(["--event-bytes", "1500", "--object-size", "16384", "--format", "json"])
            .collect::<Vec<_>>(),
    );
    support::timing("journal-tool", "write-test of 60 events", t.elapsed());
    let report: Value = serde_json::from_str(&out).expect("write-test JSON");
    assert_eq!(report["pool"], pool.name.as_str());
    assert!(report["dir"].is_null());
    assert_eq!(report["replayed_events"], 0);
    let mut acks = acked(&ack);
    acks.sort_unstable();
    assert_eq!(acks, (0..60).collect::<Vec<_>>());
    assert_eq!(journal_seqs(&pool, 0, "complete run").keys().copied().collect::<Vec<_>>(), acks);

    // The real rados tool sees Ceph's object names, and the header magic in object 0.
    let objs = pool.rados_ls();
    assert_eq!(objs.first().map(String::as_str), Some("200.00000000"), "{objs:?}");
    assert!(objs.iter().all(|n| parse_object_name(InodeNo(0x200), n).is_some()), "{objs:?}");
    assert!(objs.len() >= 6, "60 x 1500 B in 16 KiB objects span several objects: {objs:?}");
    let head = scratch.join("head.bin");
    let got = Command::new("rados")
        .args(["-c", &conf, "-p", &pool.name, "get", "200.00000000"])
        .arg(&head)
        .status()
        .expect("run rados");
    assert!(got.success());
    let head = std::fs::read(&head).expect("header object");
    assert!(head.windows(19).any(|w| w == b"ceph fs volume v011"), "header magic in {head:?}");

    let insp = journal_json(&pool, 0, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "ok");
    // A segment (with its ESubtreeMap first) begins at each object set the stream enters
    // (mds §6.4), so 16 KiB objects give several.
    let maps = insp["event_counts"]["ESubtreeMap"].as_u64().expect("subtree maps");
    assert!(maps > 1, "{insp}");
    assert_eq!(insp["entries"], 60 + maps);
    assert_eq!(insp["event_counts"]["EUpdate"], 60);
    assert_eq!(insp["first_entry"], 16384, "the stream starts one object set in");
    assert_eq!(insp["header"]["layout"]["object_size"], 16384);
    assert_eq!(insp["header"]["layout"]["pool_id"], pool.id(), "the header records the metadata pool");
    assert_eq!(insp["header"]["write_pos"], insp["valid_end"], "write-test closed the journal");
    let text = journal(&pool, 0, &["inspect"]);
    assert!(text.contains(&format!("journal of rank 0 (inode 0x200) in pool {}", pool.name)), "{text}");
    assert!(text.contains("Overall journal integrity: OK\n"), "{text}");

    // header get / set.
    let write_pos = insp["header"]["write_pos"].as_u64().expect("write_pos");
    assert_eq!(journal(&pool, 0, &["header", "get", "write_pos"]), format!("{write_pos:#x}\n"));
    assert_eq!(journal_json(&pool, 0, &["header", "get", "--format", "json"]), insp["header"]);
    journal(&pool, 0, &["header", "set", "unused", "0x5"]);
    assert_eq!(journal(&pool, 0, &["header", "get", "unused"]), "0x5\n");
    journal(&pool, 0, &["header", "set", "unused", "0"]);
    assert_eq!(journal_json(&pool, 0, &["header", "get", "--format", "json"]), insp["header"]);

    // event get.
    let summary = journal(&pool, 0, &["event", "get", "summary"]);
    assert!(summary.contains("EUpdate: 60") && summary.contains("Integrity: OK"), "{summary}");
    let list = journal(&pool, 0, &["event", "get", "--type", "ESubtreeMap", "list"]);
    assert_eq!(list.lines().count() as u64, maps, "{list}");

    // export rank 0, import as rank 1: the same events at the same offsets, in objects 201.*.
    let file = scratch.join("rank0.bin");
    let file_s = file.to_str().expect("utf-8 path");
    let exported = journal_json(&pool, 0, &["export", file_s, "--format", "json"]);
    assert_eq!(exported["end"], write_pos);
    let imported = journal_json(&pool, 1, &["import", file_s, "--format", "json"]);
    assert_eq!(imported["rank"], 0, "the file records the rank it came from");
    let events0 = journal_json(&pool, 0, &["event", "get", "json"]);
    let events1 = journal_json(&pool, 1, &["event", "get", "json"]);
    assert_eq!(events0, events1);
    assert!(pool.rados_ls().contains(&"201.00000000".to_owned()));

    // truncate rank 1 before its 31st update: the entries before it remain.
    let updates1 = journal_json(&pool, 1, &["event", "get", "--type", "EUpdate", "json"]);
    let cut = updates1["events"][30]["offset"].as_u64().expect("offset of the 31st update");
    let kept = events1["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["offset"].as_u64().is_some_and(|o| o < cut))
        .count();
    let h = journal_json(&pool, 1, &["truncate", &format!("{cut:#x}"), "--format", "json"]);
    assert_eq!(h["write_pos"], cut);
    let insp1 = journal_json(&pool, 1, &["inspect", "--format", "json"]);
    assert_eq!(insp1["integrity"]["status"], "ok");
    assert_eq!(insp1["entries"], kept);
    assert_eq!(insp1["device_end"], cut);

    // reset rank 1: a fresh start past the old data, with an EResetJournal first.
    let h = journal_json(&pool, 1, &["reset", "--format", "json"]);
    let start = h["expire_pos"].as_u64().expect("expire_pos");
    assert!(start >= cut && start.is_multiple_of(16384), "reset starts at an object set past {cut:#x}: {h}");
    let insp1 = journal_json(&pool, 1, &["inspect", "--format", "json"]);
    assert_eq!(insp1["integrity"]["status"], "ok");
    assert_eq!(insp1["entries"], 1);
    assert_eq!(insp1["event_counts"]["EResetJournal"], 1);
    assert_eq!(insp1["first_entry"], start);

    // Rank 0 was never touched by any of it.
    assert_eq!(journal_json(&pool, 0, &["inspect", "--format", "json"]), insp);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The event `seq` of the in-process test: an EUpdate journaling inode `TEST_INO_BASE + seq`
/// under request id `client.4200:seq`, padded to a size that varies with `seq`.
fn numbered_update(seq: u64) -> LogEvent {
    let reqid = MetaReqId { name: EntityName::client(4200), tid: seq };
    let pad = (seq * 373 % 3000) as usize;
    let mut mb = MetaBlob::default();
    mb.roots.push(FullDentry {
        inode: Inode {
            ino: InodeNo(TEST_INO_BASE + seq),
            mode: Inode::S_IFREG | 0o644,
            nlink: 1,
            ..Inode::default()
        },
        xattrs: [("user.pad".to_owned(), vec![(seq % 251) as u8; pad])].into_iter().collect(),
        state: full_state::DIRTY,
        last: CEPH_NOSNAP,
        ..FullDentry::default()
    });
    mb.client_reqs.push((reqid, seq));
    LogEvent::Update(EUpdate {
        stamp: UTime { sec: 1, nsec: 0 },
        op_type: "interop".into(),
        metablob: mb,
        cmapv: 0,
        reqid: Some(reqid),
        had_peers: false,
    })
}

/// The sequence numbers of the replayed test events, in log order, each checked to be exactly
/// the event that was submitted.
fn replayed_seqs(events: &[mds_journal::ReplayedEvent]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for e in events {
        if let LogEvent::Update(u) = &e.event {
            let seq = u.reqid.map(|r| r.tid).expect("reqid");
            assert_eq!(e.event, numbered_update(seq), "event {seq} came back different");
            seqs.push(seq);
        }
    }
    seqs
}

/// mds §6.2, §6.6 in-process: an MdLog on a RadosDevice over a real cluster's pool appends in
/// 64 KiB objects and small segments, its writer dies with events in flight (its runtime and
/// connection dropped, its address fenced), and a new connection's MdLog replays every
/// acknowledged event, exactly as submitted and in order, then carries on from there.
#[test]
fn mdlog_on_a_cluster_pool_replays_what_it_acknowledged_after_a_crash() {
    let Some(conf) = support::conf("mdlog_on_a_cluster_pool_replays_what_it_acknowledged_after_a_crash")
    else {
        return;
    };
    let pool = MetaPool::create(&conf, "mdlog");
    let cfg = |pool_id: i64| JournalConfig {
        layout: FileLayout { pool_id, ..FileLayout::simple(64 << 10) },
        events_per_segment: 64,
        ..JournalConfig::for_rank(3)
    };
    const ACKED: u64 = 300;

    // The writer: 30 batches of 10, each waited for, then 40 more it never waits for.
    let writer = runtime();
    let t = Instant::now();
    let (log, client, addr) = writer.block_on(async {
        let client = support::connect(&conf).await;
        let io = client.ioctx(&pool.name, "").expect("the test's pool");
        let dev: Arc<dyn JournalDevice> = Arc::new(RadosDevice::new(io.clone()));
        let log = MdLog::create(dev, cfg(io.pool_id())).await.expect("create the journal");
        for batch in 0..ACKED / 10 {
            let mut last = None;
            for seq in batch * 10..batch * 10 + 10 {
                last = Some(log.submit(numbered_update(seq)).expect("submit"));
            }
            log.wait_safe(&last.expect("a batch")).await.expect("safe");
        }
        for seq in ACKED..ACKED + 40 {
            log.submit(numbered_update(seq)).expect("submit");
        }
        (log, client, io.addr().to_string())
    });
    support::timing("journal-mdlog", "300 events acknowledged in batches of 10", t.elapsed());
    // The crash: the writer's tasks stop wherever they are; then fence it and hang up.
    drop(writer);
    pool.fence(&addr);
    drop(log);
    drop(client);

    runtime().block_on(async {
        let client = support::connect(&conf).await;
        let io = client.ioctx(&pool.name, "").expect("the test's pool");
        let dev: Arc<dyn JournalDevice> = Arc::new(RadosDevice::new(io.clone()));
        let t = Instant::now();
        let (log, replay) = MdLog::open(dev.clone(), cfg(io.pool_id())).await.expect("replay");
        support::timing("journal-mdlog", "open and replay", t.elapsed());
        assert_eq!(replay.header.layout.pool_id, io.pool_id());
        let seqs = replayed_seqs(&replay.events);
        let n = seqs.len() as u64;
        assert!(n >= ACKED, "only {n} of the {ACKED} acknowledged events replayed");
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "one submitter: a prefix, in order");
        let maps = replay.events.iter().filter(|e| matches!(e.event, LogEvent::SubtreeMap(_))).count();
        assert!(maps as u64 >= ACKED / 64, "a segment (and its ESubtreeMap) every 64 events: {maps}");

        // Carry on after the replay, close cleanly, and replay again: nothing lost or doubled.
        let mut last = None;
        for seq in n..n + 20 {
            last = Some(log.submit(numbered_update(seq)).expect("submit after replay"));
        }
        log.wait_safe(&last.expect("events")).await.expect("safe");
        log.close().await.expect("close");
        let (log, replay) = MdLog::open(dev.clone(), cfg(io.pool_id())).await.expect("second replay");
        assert_eq!(replayed_seqs(&replay.events), (0..n + 20).collect::<Vec<_>>());
        assert!(replay.torn_tail.is_none(), "a clean close leaves no torn tail");
        log.close().await.expect("close");
        assert_eq!(tool::inspect(dev.as_ref(), 3).await.expect("inspect").integrity, Integrity::Ok);
        // All of it in rank 3's objects (inode 0x203), several of them.
        let objs = io.list_objects().await.expect("list");
        assert!(objs.iter().all(|o| parse_object_name(InodeNo(0x203), o).is_some()), "{objs:?}");
        assert!(objs.len() > 3, "{objs:?}");
    });
}
