//! `cephlock journal` and `cephlock bench journal` as a user runs them, and the crash test: a
//! `journal write-test` child killed with SIGKILL at seeded random moments must never lose an
//! event it acknowledged (mds §6.2: a safe reply means the update survives a crash; §6.6:
//! replay truncates a torn tail and refuses to guess about corruption in the middle).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Inode number of write-test event `seq` is this plus `seq` (see `sized_update`).
const TEST_INO_BASE: u64 = 0x100_0000_0000;
/// First stream offset of a fresh journal with the default 4 MiB layout (object set 1).
const STREAM_START: u64 = 4 << 20;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cephlock"))
}

fn cephlock(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// Runs `cephlock journal --dir DIR <args>`, asserts success, returns stdout.
fn journal(dir: &Path, args: &[&str]) -> String {
    let out = bin().arg("journal").arg("--dir").arg(dir).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "journal {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

fn journal_json(dir: &Path, args: &[&str]) -> Value {
    let text = journal(dir, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("journal {args:?} printed invalid JSON: {e}"))
}

/// A fresh directory for one test under cargo's per-target temp dir (on the same disk as the
/// build, so fdatasync is real). Removed when the test passes, kept for a look when it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("journal_cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes `events` events of `bytes` bytes into `dir/j` and returns the journal directory.
fn journal_with_events(base: &Path, events: u64, bytes: u64) -> PathBuf {
    let dir = base.join("j");
    let ack = base.join("ack");
    journal(
        &dir,
        &[
            "write-test",
            "--events",
            &events.to_string(),
            "--ack-log",
            ack.to_str().expect("utf-8 path"),
            "--submitters",
            "3",
            "--event-bytes",
            &bytes.to_string(),
        ],
    );
    dir
}

/// The complete lines of an ack log as numbers. A last line without its newline would be a
/// write cut short, which one `write` per line rules out; it is ignored rather than misread.
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

fn hex_byte(b: u8) -> String {
    format!("{b:02x}")
}

/// Every write-test EUpdate in the journal, by sequence number, after checking that each one is
/// intact: decodable, and carrying its sequence number consistently in the request id, the
/// completed-request list and the inode number, with padding bytes that match it. Duplicates
/// are a failure. `ctx` names the seed in failure messages.
fn journal_seqs(dir: &Path, ctx: &str) -> BTreeMap<u64, u64> {
    let listing = journal_json(dir, &["event", "get", "--type", "EUpdate", "json"]);
    assert_ne!(listing["integrity"]["status"], "corrupt", "{ctx}: {}", listing["integrity"]);
    let mut seqs = BTreeMap::new();
    for rec in listing["events"].as_array().expect("events array") {
        let offset = rec["offset"].as_u64().expect("offset");
        assert!(rec["error"].is_null(), "{ctx}: entry at {offset:#x} does not decode: {}", rec["error"]);
        assert_eq!(rec["type_name"], "EUpdate", "{ctx}");
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
            "{ctx}: inode of seq {seq}"
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

#[test]
fn write_test_acknowledges_every_event_and_inspect_is_ok() {
    let base = Scratch::new("complete");
    let dir = journal_with_events(&base, 120, 600);
    let mut acks = acked(&base.join("ack"));
    acks.sort_unstable();
    assert_eq!(acks, (0..120).collect::<Vec<_>>());
    let seqs = journal_seqs(&dir, "complete run");
    assert_eq!(seqs.keys().copied().collect::<Vec<_>>(), acks);

    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "ok");
    assert_eq!(insp["rank"], 0);
    assert!(insp["header_problem"].is_null());
    // One segment: its ESubtreeMap, then the updates (§6.4: a segment starts with one).
    assert_eq!(insp["entries"], 121);
    assert_eq!(insp["event_counts"]["EUpdate"], 120);
    assert_eq!(insp["event_counts"]["ESubtreeMap"], 1);
    assert_eq!(insp["first_entry"], STREAM_START);
    assert_eq!(insp["valid_end"], insp["device_end"]);
    assert_eq!(insp["header"]["write_pos"], insp["valid_end"], "close wrote the header");
    assert_eq!(insp["header"]["magic"], "ceph fs volume v011");

    let text = journal(&dir, &["inspect"]);
    assert!(text.contains("Overall journal integrity: OK\n"), "{text}");
    assert!(text.contains("events: ESubtreeMap 1, EUpdate 120"), "{text}");

    // A second run on the same journal replays it and continues after it.
    let ack = base.join("ack");
    let out = journal(
        &dir,
        &[
            "write-test",
            "--events",
            "5",
            "--first-seq",
            "1000",
            "--ack-log",
            ack.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_str(&out).expect("write-test JSON");
    assert_eq!(report["replayed_events"], 121);
    assert!(report["torn_tail"].is_null());
    assert_eq!(journal_seqs(&dir, "second run").len(), 125);
}

#[test]
fn header_get_and_set_round_trip() {
    let base = Scratch::new("header");
    let dir = journal_with_events(&base, 3, 512);
    let h = journal_json(&dir, &["header", "get", "--format", "json"]);
    assert_eq!(h["trimmed_pos"], STREAM_START);
    assert_eq!(h["expire_pos"], STREAM_START);
    assert_eq!(h["layout"]["object_size"], 4 << 20);
    assert_eq!(h["layout"]["pool_id"], -1);
    assert_eq!(h["stream_format"], 2);
    let write_pos = h["write_pos"].as_u64().expect("write_pos");

    let text = journal(&dir, &["header", "get"]);
    assert!(text.contains(&format!("write_pos: {write_pos:#x}\n")), "{text}");
    assert_eq!(text.lines().count(), 10, "one line per field: {text}");
    assert_eq!(journal(&dir, &["header", "get", "write_pos"]), format!("{write_pos:#x}\n"));
    let one = journal_json(&dir, &["header", "get", "expire_pos", "--format", "json"]);
    assert_eq!(one, serde_json::json!({"field": "expire_pos", "value": "0x400000"}));

    let set = journal(&dir, &["header", "set", "unused", "0x1234"]);
    assert_eq!(set, "unused set to 0x1234\n");
    assert_eq!(journal(&dir, &["header", "get", "unused"]), "0x1234\n");
    let after = journal_json(&dir, &["header", "set", "unused", "7", "--format", "json"]);
    assert_eq!(after["unused"], 7);
    assert_eq!(after["write_pos"], write_pos, "other fields untouched");

    // Setting a field to something that breaks an invariant is allowed (repair tool) and noted.
    let set = journal(&dir, &["header", "set", "magic", "nonsense"]);
    assert!(set.contains("note: the header now fails its invariants"), "{set}");
    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert!(insp["header_problem"].as_str().is_some_and(|p| p.contains("magic")), "{insp}");
    journal(&dir, &["header", "set", "magic", "ceph fs volume v011"]);
    assert!(journal_json(&dir, &["inspect", "--format", "json"])["header_problem"].is_null());
}

#[test]
fn event_get_filters_by_type_and_range() {
    let base = Scratch::new("events");
    let dir = journal_with_events(&base, 10, 512);
    let all = journal_json(&dir, &["event", "get", "json"]);
    assert_eq!(all["integrity"]["status"], "ok");
    let events = all["events"].as_array().expect("events");
    assert_eq!(events.len(), 11);
    assert_eq!(events[0]["type_name"], "ESubtreeMap");
    assert_eq!(events[0]["type_id"], 2);
    assert_eq!(events[0]["offset"], STREAM_START);
    let offsets: Vec<u64> = events.iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a["offset"].as_u64().unwrap() + a["len"].as_u64().unwrap(), b["offset"].as_u64().unwrap());
    }

    let updates = journal_json(&dir, &["event", "get", "--type", "update", "json"]);
    assert_eq!(updates["events"].as_array().unwrap().len(), 10);
    let maps = journal_json(&dir, &["event", "get", "--type", "2", "json"]);
    assert_eq!(maps["events"].as_array().unwrap().len(), 1);
    let none = journal_json(&dir, &["event", "get", "--type", "ECommitted", "json"]);
    assert_eq!(none["events"].as_array().unwrap().len(), 0);

    // [offsets[3], offsets[6]) holds exactly entries 3, 4 and 5; hex and decimal both work.
    let range = format!("{:#x}..{}", offsets[3], offsets[6]);
    let some = journal_json(&dir, &["event", "get", "--range", &range, "json"]);
    let got: Vec<u64> =
        some["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    assert_eq!(got, offsets[3..6]);
    let tail = journal_json(&dir, &["event", "get", "--range", &format!("{}..", offsets[9]), "json"]);
    assert_eq!(tail["events"].as_array().unwrap().len(), 2);

    let list = journal(&dir, &["event", "get", "--type", "EUpdate", "--range", &range, "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.starts_with(&format!("{:#x} EUpdate", offsets[3])), "{list}");
    assert!(list.contains("write_test req client.41"), "{list}");

    let summary = journal(&dir, &["event", "get", "summary"]);
    assert!(summary.contains("  EUpdate: 10\n"), "{summary}");
    assert!(summary.contains("  ESubtreeMap: 1\n"), "{summary}");
    assert!(summary.contains("Total: 11\n") && summary.contains("Integrity: OK"), "{summary}");
}

#[test]
fn export_import_and_reset() {
    let base = Scratch::new("export");
    let dir = journal_with_events(&base, 8, 700);
    let file = base.join("rank0.bin");
    let before = journal_json(&dir, &["event", "get", "json"]);
    let exp = journal_json(&dir, &["export", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(exp["rank"], 0);
    assert_eq!(exp["start"], STREAM_START);
    assert_eq!(exp["end"], journal_json(&dir, &["header", "get", "--format", "json"])["write_pos"]);

    // Into another directory and another rank: the same events at the same offsets.
    let other = base.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let imp = journal_json(&other, &["--rank", "1", "import", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(imp["rank"], 0, "the rank recorded in the file");
    assert_eq!(journal_json(&other, &["--rank", "1", "event", "get", "json"]), before);
    assert!(other.join("201.00000001").exists(), "rank 1 is inode 0x201");

    // Reset throws the events away and journals an EResetJournal past all old data.
    let reset = journal_json(&dir, &["reset", "--format", "json"]);
    let new_start = reset["expire_pos"].as_u64().unwrap();
    assert!(new_start > exp["end"].as_u64().unwrap(), "{reset}");
    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "ok");
    assert_eq!(insp["event_counts"], serde_json::json!({"EResetJournal": 1}));
    assert!(!dir.join("200.00000001").exists(), "old data objects removed");
    let text = journal(&dir, &["event", "get", "list"]);
    assert!(text.contains("EResetJournal"), "{text}");

    // And the export brings them back.
    let text = journal(&dir, &["import", file.to_str().unwrap()]);
    assert!(text.starts_with("imported "), "{text}");
    assert_eq!(journal_json(&dir, &["event", "get", "json"]), before);
}

/// A torn tail (bytes after the last entry that are no entry) is reported but is no damage;
/// a bad entry in the middle is, and `truncate` repairs it (§6.6).
#[test]
fn torn_tail_and_corruption_are_reported_and_truncate_repairs() {
    let base = Scratch::new("damage");
    let dir = journal_with_events(&base, 6, 512);
    let object = dir.join("200.00000001");
    let end = journal_json(&dir, &["inspect", "--format", "json"])["valid_end"].as_u64().unwrap();

    // A partial entry at the end: a crash in the middle of a write.
    let mut bytes = std::fs::read(&object).unwrap();
    bytes.extend_from_slice(&[0x97, 0x93, 0x58, 0x53, 0x26, 0x59, 0x41]);
    std::fs::write(&object, &bytes).unwrap();
    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "torn_tail", "{insp}");
    assert_eq!(insp["integrity"]["at"], end);
    assert_eq!(insp["device_end"], end + 7);
    assert_eq!(insp["entries"], 7, "every whole entry is still valid");
    let text = journal(&dir, &["inspect"]);
    assert!(text.contains(&format!("torn tail at {end:#x}")), "{text}");

    // A flipped byte inside the third entry, with valid entries after it.
    let listing = journal_json(&dir, &["event", "get", "json"]);
    let third = listing["events"][2]["offset"].as_u64().unwrap();
    let len = listing["events"][2]["len"].as_u64().unwrap();
    let at = (third - STREAM_START + len / 2) as usize;
    bytes.truncate((end - STREAM_START) as usize);
    bytes[at] ^= 0x40;
    std::fs::write(&object, &bytes).unwrap();
    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "corrupt", "{insp}");
    assert_eq!(insp["integrity"]["at"], third);
    assert!(insp["integrity"]["reason"].as_str().unwrap().contains("crc32c"), "{insp}");
    let text = journal(&dir, &["inspect"]);
    assert!(text.contains(&format!("DAMAGED: corrupt entry at {third:#x}")), "{text}");
    let walk = journal(&dir, &["event", "get", "list"]);
    assert_eq!(walk.lines().count(), 3, "two entries, then the reason the walk stopped: {walk}");
    assert!(
        walk.ends_with(&format!(
            "# walk ended at a corrupt entry at {third:#x}: {}\n",
            insp["integrity"]["reason"].as_str().unwrap()
        )),
        "{walk}"
    );

    let h = journal_json(&dir, &["truncate", &format!("{third:#x}"), "--format", "json"]);
    assert_eq!(h["write_pos"], third);
    let insp = journal_json(&dir, &["inspect", "--format", "json"]);
    assert_eq!(insp["integrity"]["status"], "ok");
    assert_eq!(insp["entries"], 2);
    assert_eq!(insp["device_end"], third);
}

/// Bad input of every kind: one line on stderr, nothing on stdout, a non-zero exit.
#[test]
fn bad_arguments_give_one_line_errors() {
    let base = Scratch::new("errors");
    let dir = journal_with_events(&base, 2, 512);
    let d = dir.to_str().unwrap();
    let missing = base.join("nope");
    let m = missing.to_str().unwrap();
    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let garbage = base.join("garbage.bin");
    std::fs::write(&garbage, b"this is not an export").unwrap();
    let g = garbage.to_str().unwrap();
    for args in [
        &["journal", "inspect"][..],
        &["journal", "--dir", m, "inspect"],
        &["journal", "--dir", e, "inspect"],
        &["journal", "--dir", e, "--rank", "3", "event", "get", "list"],
        &["journal", "--dir", d, "--rank", "1", "header", "get"],
        &["journal", "--dir", d, "inspect", "--format", "xml"],
        &["journal", "--dir", d, "frobnicate"],
        &["journal", "--dir", d, "header", "get", "no_such_field"],
        &["journal", "--dir", d, "header", "set", "no_such_field", "1"],
        &["journal", "--dir", d, "header", "set", "write_pos", "lots"],
        &["journal", "--dir", d, "header", "set", "layout.object_size", "0x1000000000"],
        &["journal", "--dir", d, "event", "get", "--type", "EBogus", "list"],
        &["journal", "--dir", d, "event", "get", "--range", "5", "list"],
        &["journal", "--dir", d, "event", "get", "--range", "9..3", "list"],
        &["journal", "--dir", d, "event", "get", "xml"],
        &["journal", "--dir", d, "import", m],
        &["journal", "--dir", d, "import", g],
        &["journal", "--dir", d, "export", "/nonexistent-dir/x.bin"],
        &["journal", "--dir", d, "truncate", "0x10"],
        &["journal", "--dir", d, "write-test", "--ack-log", "/tmp/x"],
        &["journal", "--dir", d, "write-test", "--events", "1", "--ack-log", "/nonexistent-dir/ack"],
        &["journal", "--dir", d, "write-test", "--events", "1", "--ack-log", g, "--submitters", "0"],
        &["bench", "journal", "--duration", "0"],
        &["bench", "journal", "--clients", "0"],
        &["bench", "journal", "--dir", m],
        &["bench", "nosuchworkload"],
    ] {
        let out = cephlock(args);
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(err.lines().count(), 1, "{args:?} printed: {err}");
        assert!(err.starts_with("cephlock: error: "), "{args:?} printed: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    // Nothing above created the missing directory or damaged the journal.
    assert!(!missing.exists());
    assert_eq!(journal_json(&dir, &["inspect", "--format", "json"])["integrity"]["status"], "ok");
}

/// `--conf FILE --pool P` picks a cluster's metadata pool instead of a directory: exactly one of
/// the two devices, each with its own options; one line and a non-zero exit otherwise. A build
/// without the `ceph` feature says that it cannot reach a cluster (and touches nothing, not even
/// the ack log); a build with it says that it could not connect to the cluster named.
#[test]
fn conf_selects_a_cluster_device_and_says_when_it_cannot() {
    let base = Scratch::new("conf");
    let dir = journal_with_events(&base, 2, 512);
    let d = dir.to_str().unwrap();
    let ack = base.join("never-created");
    let a = ack.to_str().unwrap();
    let conf = "/nonexistent-cephlock-test/ceph.conf";
    let cluster_cmds: [&[&str]; 4] = [
        &["journal", "--conf", conf, "--pool", "cephfs_metadata", "inspect"],
        &["journal", "-c", conf, "-p", "cephfs_metadata", "--rank", "2", "header", "get"],
        &["journal", "--conf", conf, "--pool", "m", "reset"],
        &["journal", "--conf", conf, "--pool", "m", "write-test", "--events", "1", "--ack-log", a],
    ];
    for args in cluster_cmds {
        let out = cephlock(args);
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(err.lines().count(), 1, "{args:?} printed: {err}");
        assert!(err.starts_with("cephlock: error: "), "{args:?} printed: {err}");
        if cfg!(feature = "ceph") {
            assert!(err.contains("cannot connect to the cluster"), "{args:?} printed: {err}");
        } else {
            assert!(err.contains("without the `ceph` feature"), "{args:?} printed: {err}");
            assert!(err.contains("--features ceph"), "{args:?} says how to get a build: {err}");
        }
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    assert!(!ack.exists(), "write-test opens the ack log only once it has a device");
    for (args, why) in [
        (&["journal", "--dir", d, "--conf", conf, "--pool", "m", "inspect"][..], "not both"),
        (&["journal", "--conf", conf, "inspect"], "needs --pool"),
        (&["journal", "--dir", d, "--pool", "m", "inspect"], "go with --conf"),
        (&["journal", "--dir", d, "--id", "admin", "inspect"], "go with --conf"),
        (&["journal", "--pool", "m", "inspect"], "is required"),
    ] {
        let out = cephlock(args);
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(err.lines().count(), 1, "{args:?} printed: {err}");
        assert!(
            err.starts_with("cephlock: error: journal: ") && err.contains(why),
            "{args:?} printed: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    // The directory device is untouched by all of the above.
    assert_eq!(journal_json(&dir, &["inspect", "--format", "json"])["integrity"]["status"], "ok");
}

#[test]
fn bench_journal_json_has_the_documented_shape() {
    let base = Scratch::new("bench");
    let out = cephlock(&[
        "bench",
        "journal",
        "--json",
        "--duration",
        "0.1",
        "--clients",
        "1,3",
        "--sizes",
        "600",
        "--dir",
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "no progress bar when stderr is not a terminal");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(v["workload"], "journal");
    assert_eq!(v["device"]["kind"], "dir");
    assert_eq!(v["window"], 1);
    assert_eq!(v["baseline"].as_array().unwrap().len(), 1);
    let b = &v["baseline"][0];
    assert_eq!(b["event_bytes"], 600);
    assert!(b["events_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(b["flushes_per_op"], 1.0);
    let runs = v["journal"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["clients"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    for r in runs {
        let lat = &r["latency_us"];
        assert!(lat["samples"].as_u64().unwrap() > 0, "{r}");
        let (p50, p99, p999, max) = (
            lat["p50"].as_f64().unwrap(),
            lat["p99"].as_f64().unwrap(),
            lat["p999"].as_f64().unwrap(),
            lat["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max * 1.001, "{r}");
        assert!(r["flushes"].as_u64().unwrap() > 0);
        // Every flush carries at least one event, and one client cannot share flushes.
        let per_flush = r["events_per_flush"].as_f64().unwrap();
        assert!(per_flush >= 1.0, "{r}");
        assert!(r["vs_baseline"].as_f64().unwrap().is_finite());
    }
    assert!(runs[0]["events_per_flush"].as_f64().unwrap() < 1.5, "{}", runs[0]);
    let leftovers: Vec<_> = std::fs::read_dir(&*base).unwrap().collect();
    assert!(leftovers.is_empty(), "the bench removes its scratch directory");
}

/// A small deterministic generator (splitmix64), so each seed names one exact crash schedule.
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

/// How one phase of a crash run kills its child.
#[derive(Debug)]
enum Kill {
    /// Once this many further acks appeared after the first `warm` ones.
    AfterAcks(usize),
    /// This long after the first `warm` acks appeared (bounded: the randomness under test).
    AfterDelay(Duration),
}

/// Waits until the ack log has at least `lines` lines; fails if the child exits or it takes
/// absurdly long. Polling the file's growth is the synchronisation; the pause between polls
/// only keeps the poll from competing with the child for the two cores.
fn wait_for_acks(ack: &Path, lines: usize, child: &mut std::process::Child, ctx: &str) {
    let t0 = Instant::now();
    while ack_lines(ack) < lines {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{ctx}: write-test exited early ({status}) before {lines} acks: {err}");
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{ctx}: no {lines} acks after 60 s");
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// One seeded crash run: two phases on the same journal, each a write-test killed with SIGKILL
/// at a seeded moment; the second phase first replays (and truncates) what the first left.
/// After each kill every acknowledged sequence number must be in the journal, intact, and the
/// journal must be ok or have a torn tail, never corruption.
fn crash_run(seed: u64) {
    let mut rng = Rng(seed);
    let base = Scratch::new(&format!("crash-{seed}"));
    let dir = base.join("j");
    let ack = base.join("ack");
    let submitters = 1 + rng.below(8);
    let event_bytes = [487, 600, 1500, 4000][rng.below(4) as usize];
    // Small objects make the stream cross object boundaries (new files, new segments) often.
    let object_size = [16u64 << 10, 64 << 10, 4 << 20][rng.below(3) as usize];
    let mut acked_so_far = 0;
    for phase in 0..2u64 {
        let warm = 1 + rng.below(20) as usize;
        let kill = if rng.below(2) == 0 {
            Kill::AfterAcks(rng.below(300) as usize)
        } else {
            Kill::AfterDelay(Duration::from_micros(rng.below(30_000)))
        };
        let ctx = format!(
            "seed {seed} phase {phase} ({submitters} submitters, {event_bytes} B events, \
             {object_size} B objects, warm {warm}, kill {kill:?}; dir {})",
            base.display()
        );
        let mut child = bin()
            .arg("journal")
            .arg("--dir")
            .arg(&dir)
            .args(["write-test", "--events", "1000000000", "--ack-log"])
            .arg(&ack)
            .args(["--submitters", &submitters.to_string(), "--event-bytes", &event_bytes.to_string()])
            .args(["--object-size", &object_size.to_string()])
            .args(["--first-seq", &(phase * 1_000_000_000).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn write-test");
        wait_for_acks(&ack, acked_so_far + warm, &mut child, &ctx);
        match kill {
            Kill::AfterAcks(n) => wait_for_acks(&ack, acked_so_far + warm + n, &mut child, &ctx),
            Kill::AfterDelay(d) => std::thread::sleep(d),
        }
        // SIGKILL on Unix: no destructor, no flush, no header write.
        child.kill().expect("kill write-test");
        let status = child.wait().expect("reap write-test");
        assert!(!status.success(), "{ctx}: write-test finished a billion events?");

        let acks = acked(&ack);
        acked_so_far = acks.len();
        let insp = journal_json(&dir, &["inspect", "--format", "json"]);
        let integrity = insp["integrity"]["status"].as_str().unwrap_or("?");
        assert!(integrity == "ok" || integrity == "torn_tail", "{ctx}: integrity {}", insp["integrity"]);
        assert!(insp["header_problem"].is_null(), "{ctx}: {}", insp["header_problem"]);
        let seqs = journal_seqs(&dir, &ctx);
        let lost: Vec<u64> = acks.iter().copied().filter(|s| !seqs.contains_key(s)).collect();
        assert!(lost.is_empty(), "{ctx}: acknowledged but not in the journal: {lost:?}");
        assert!(seqs.len() >= acks.len(), "{ctx}");
        eprintln!("{ctx}: {} acked, {} journaled, {integrity}", acks.len(), seqs.len());
    }
}

/// SIGKILL at seeded random moments never loses an acknowledged event (the crash
/// test). Set CEPHLOCK_CRASH_SEEDS=1,2,3 to replay particular seeds.
#[test]
fn sigkill_never_loses_an_acknowledged_event() {
    let seeds: Vec<u64> = match std::env::var("CEPHLOCK_CRASH_SEEDS") {
        Ok(s) => s.split(',').map(|x| x.trim().parse().expect("seed")).collect(),
        Err(_) => (1..=16).collect(),
    };
    for seed in seeds {
        eprintln!("crash run seed {seed}");
        crash_run(seed);
    }
}
