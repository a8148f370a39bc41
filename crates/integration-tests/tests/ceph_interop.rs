//! Interop with real librbd 16.2 clients on a real Ceph cluster (issue 11; rbd §4, §7;
//! real-ceph §3).
//!
//! Runs only with `--features ceph` and `CEPH_CONF` set (see `ceph_support`); otherwise each test
//! prints a note and passes. The real side is the `rbd` tool (librbd 16.2); our side is rbd-ops
//! on the librados backend, in-process or through the `cephlock rbd` binary.
#![cfg(feature = "ceph")]

mod ceph_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ceph_support as support;
use rbd_ops::{Image, OpenOptions};

/// rbd §0.1, §6.1 and real-ceph §3: an image made by the real `rbd create` opens through our
/// cls_rbd calls on a real OSD; our writes take the lock in librbd's format (`auto <watch
/// handle>`, which `rbd lock ls` shows) and the real tool reads back exactly what we wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_image_opens_and_round_trips_data() {
    let Some(conf) = support::conf("real_image_opens_and_round_trips_data") else { return };
    let name = support::unique_image("rw");
    support::rbd(&conf, &["create", "--size", "64M", "--image-feature", "layering,exclusive-lock", &name]);
    let client = support::connect(&conf).await;
    let io = support::ioctx(&client);
    let t = Instant::now();
    let img = Image::open(&io, &name, OpenOptions::default()).await.expect("open an rbd-created image");
    support::timing("rw", "open", t.elapsed());
    assert_eq!(img.size(), 64 << 20);
    let info = img.info().await.expect("info");
    assert_eq!(info.order, 22);
    // Blocks in the first object, across an object boundary, and in the last object.
    let offsets = [0u64, 4096 * 7, (4 << 20) - 2048, (64 << 20) - 4096];
    let t = Instant::now();
    for (i, &off) in offsets.iter().enumerate() {
        let data = support::pattern(0x5a, i as u64, 4096);
        assert_eq!(img.write_at(off, &data).await.expect("write"), 4096);
    }
    support::timing("rw", "first write (acquire) + 3 writes", t.elapsed());
    for (i, &off) in offsets.iter().enumerate() {
        assert_eq!(img.read_at(off, 4096).await.expect("read"), support::pattern(0x5a, i as u64, 4096));
    }
    // The real tool sees our lock in librbd's own format.
    let handle = img.watcher().expect("writable handle").watch_handle();
    let lockers = support::rbd_lockers(&conf, &name);
    assert_eq!(lockers.len(), 1, "{lockers:?}");
    assert_eq!(lockers[0].0, format!("client.{}", io.client_gid()));
    assert_eq!(lockers[0].1, format!("auto {handle}"));
    img.close().await;
    assert!(support::rbd_lockers(&conf, &name).is_empty(), "close releases the lock");
    // And reads the data back through librbd.
    let dump = std::env::temp_dir().join(format!("{name}.raw"));
    support::rbd(&conf, &["export", &name, &dump.to_string_lossy()]);
    let raw = std::fs::read(&dump).expect("exported image");
    let _ = std::fs::remove_file(&dump);
    assert_eq!(raw.len(), 64 << 20);
    for (i, &off) in offsets.iter().enumerate() {
        let off = off as usize;
        assert_eq!(&raw[off..off + 4096], &support::pattern(0x5a, i as u64, 4096)[..], "block {i}");
    }
    support::rbd(&conf, &["rm", "--no-progress", &name]);
}

/// Creates a 64 MiB image with the real tool, with the features the scenarios use.
fn create_image(conf: &str, test: &str) -> String {
    let name = support::unique_image(test);
    support::rbd(conf, &["create", "--size", "64M", "--image-feature", "layering,exclusive-lock", &name]);
    name
}

/// Removes the image and its snapshots (best effort: a failed test leaves no clutter behind).
fn remove_image(conf: &str, name: &str) {
    let _ = support::rbd_output(conf, &["snap", "purge", "--no-progress", name]);
    let _ = support::rbd_output(conf, &["rm", "--no-progress", name]);
}

/// Removes the image on drop, so a failing test leaves nothing behind.
struct ImageGuard<'a> {
    conf: &'a str,
    name: String,
}

impl Drop for ImageGuard<'_> {
    fn drop(&mut self) {
        remove_image(self.conf, &self.name);
    }
}

/// Kills a child on drop, so a failing assertion does not leave a writer running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Waits (up to 20 s) until somebody holds the image's lock and returns that locker.
fn wait_for_locker(conf: &str, image: &str) -> (String, String, String) {
    support::wait_for(Duration::from_secs(20), || support::rbd_lockers(conf, image).into_iter().next())
        .expect("a writer took the exclusive lock within 20 s")
}

/// Interop 1 (issue 11; rbd §7 steps 3.2–3.6 with the roles reversed): a real `rbd bench` owns
/// the lock; `cephlock rbd snap create` forwards SNAP_CREATE to it, librbd runs it and answers
/// ASYNC_COMPLETE; the real writer still holds the lock and `rbd snap ls` lists the snapshot.
#[test]
fn real_writer_runs_our_forwarded_snap_create() {
    let Some(conf) = support::conf("real_writer_runs_our_forwarded_snap_create") else { return };
    let name = create_image(&conf, "fwd-snap");
    let _cleanup = ImageGuard { conf: &conf, name: name.clone() };
    // 4 threads of random 4K writes: the real-ceph §3 workload, long enough (~20 s on memstore)
    // for the forwarded op to land while the writer runs.
    let bench = Command::new("rbd")
        .args(["-c", &conf, "-p", &support::pool(), "bench", "--io-type", "write", "--io-size", "4K"])
        .args(["--io-threads", "4", "--io-total", "200M", "--io-pattern", "rand", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rbd bench");
    let mut bench = Reap(bench);
    let t = Instant::now();
    let owner = wait_for_locker(&conf, &name);
    support::timing("fwd-snap", "rbd bench took the lock", t.elapsed());
    assert!(owner.1.starts_with("auto "), "librbd's cookie format: {owner:?}");

    // Our lock listing agrees with the real tool's.
    let ours = support::cephlock_rbd(&conf, &["--format", "json", "lock", "ls", &name]).output().unwrap();
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    let ours: serde_json::Value = serde_json::from_slice(&ours.stdout).expect("json");
    assert_eq!(ours[0]["locker"], owner.0.as_str());
    assert_eq!(ours[0]["id"], owner.1.as_str());
    assert_eq!(ours[0]["address"], owner.2.as_str());

    let t = Instant::now();
    let snap = support::cephlock_rbd(&conf, &["snap", "create", &format!("{name}@s1")]).output().unwrap();
    let took = t.elapsed();
    support::timing("fwd-snap", "cephlock rbd snap create (forwarded, process wall time)", took);
    assert!(snap.status.success(), "snap create failed: {}", String::from_utf8_lossy(&snap.stderr));
    assert!(
        bench.0.try_wait().unwrap().is_none(),
        "rbd bench finished before the snapshot was checked; the test proves nothing"
    );
    let after = support::rbd_lockers(&conf, &name);
    assert_eq!(after, vec![owner.clone()], "the real writer keeps the lock (rbd §7 step 3.6)");
    assert_eq!(support::rbd_snap_names(&conf, &name), vec!["s1".to_owned()]);

    let status = bench.0.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = bench.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "rbd bench failed: {err}");
}

/// Interop 2 (issue 11; rbd §7 as written): our `cephlock rbd write-bench` owns the lock like a
/// qemu guest; the real `rbd snap create` and `rbd resize` forward to it, our handle runs both,
/// and it keeps the lock throughout.
#[test]
fn our_writer_runs_real_forwarded_snap_create_and_resize() {
    let Some(conf) = support::conf("our_writer_runs_real_forwarded_snap_create_and_resize") else { return };
    let name = create_image(&conf, "our-writer");
    let _cleanup = ImageGuard { conf: &conf, name: name.clone() };
    let wb = support::cephlock_rbd(&conf, &["write-bench", &name, "--duration", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cephlock rbd write-bench");
    let mut wb = Reap(wb);
    let t = Instant::now();
    let owner = wait_for_locker(&conf, &name);
    support::timing("our-writer", "write-bench took the lock", t.elapsed());
    assert!(owner.1.starts_with("auto "), "librbd's cookie format: {owner:?}");
    // Our watch handle is the cookie, as with librbd (real-ceph §3).
    let status = support::rbd(&conf, &["status", &name]);
    let handle = owner.1.trim_start_matches("auto ");
    assert!(status.contains(&format!("cookie={handle}")), "{status}");

    let t = Instant::now();
    support::rbd(&conf, &["snap", "create", "--no-progress", &format!("{name}@s1")]);
    support::timing("our-writer", "rbd snap create (forwarded to cephlock, process wall time)", t.elapsed());
    assert_eq!(
        support::rbd_lockers(&conf, &name),
        vec![owner.clone()],
        "we keep the lock after the snapshot"
    );
    let t = Instant::now();
    support::rbd(&conf, &["resize", "--no-progress", "--size", "128M", &name]);
    support::timing("our-writer", "rbd resize (forwarded to cephlock, process wall time)", t.elapsed());
    assert_eq!(support::rbd_lockers(&conf, &name), vec![owner.clone()], "we keep the lock after the resize");
    assert_eq!(support::rbd_snap_names(&conf, &name), vec!["s1".to_owned()]);
    let info: serde_json::Value =
        serde_json::from_str(&support::rbd(&conf, &["info", "--format", "json", &name])).unwrap();
    assert_eq!(info["size"], 128u64 << 20);
    assert!(
        wb.0.try_wait().unwrap().is_none(),
        "write-bench ended before the checks; the test proves nothing"
    );

    let status = wb.0.wait().unwrap();
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = wb.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    if let Some(mut e) = wb.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "write-bench failed: {err}\n{out}");
    assert!(out.contains("lock owner at end: yes"), "{out}");
    assert!(out.contains("image at end: size 128 MiB snapshots 1"), "{out}");
    if let Some(l) = out.lines().find(|l| l.starts_with("max write latency")) {
        let _ = writeln!(std::io::stderr(), "timing: our-writer: write-bench {l}");
    }
}

/// The python3-rbd peer (`ceph_support/librbd_peer.py`), one command and answer at a time.
struct LibrbdPeer {
    child: Reap,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl LibrbdPeer {
    /// Starts the peer; Debian's bindings exist only for `/usr/bin/python3` (real-ceph §1).
    fn start(conf: &str, image: &str) -> LibrbdPeer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ceph_support/librbd_peer.py");
        let python = std::env::var("CEPHLOCK_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_owned());
        let mut child = Command::new(python)
            .args([script, conf, &support::pool(), image])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the python3-rbd peer (Debian package python3-rbd)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut peer = LibrbdPeer { child: Reap(child), stdin, stdout };
        assert_eq!(peer.read_line(), "ready");
        peer
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("peer output");
        assert!(!line.is_empty(), "the python3-rbd peer exited");
        line.trim_end().to_owned()
    }

    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("peer input");
        self.stdin.flush().unwrap();
        self.read_line()
    }

    fn quit(mut self) {
        let _ = writeln!(self.stdin, "q");
        let _ = self.stdin.flush();
        let _ = self.child.0.wait();
    }
}

/// Runs a peer command off the async workers: while librbd waits for our handle to hand the
/// lock over, our handle must keep running.
async fn ask(peer: LibrbdPeer, cmd: String) -> (LibrbdPeer, String) {
    tokio::task::spawn_blocking(move || {
        let mut peer = peer;
        let answer = peer.ask(&cmd);
        (peer, answer)
    })
    .await
    .expect("peer task")
}

/// Interop 3 (issue 11; rbd §3.5, §7.5 "the second client writes"): cooperative hand-over both
/// ways between a real librbd writer (python3-rbd, automatic policy) and ours. Each side's write
/// sends REQUEST_LOCK to the other, which releases; every write reads back on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_hands_over_both_ways_with_librbd() {
    let Some(conf) = support::conf("lock_hands_over_both_ways_with_librbd") else { return };
    let name = create_image(&conf, "handover");
    let _cleanup = ImageGuard { conf: &conf, name: name.clone() };
    let client = support::connect(&conf).await;
    let io = support::ioctx(&client);
    let ours = Image::open(&io, &name, OpenOptions::default()).await.expect("open");
    let mut peer = LibrbdPeer::start(&conf, &name);
    let ours_locker = format!("client.{}", io.client_gid());
    let mut written: Vec<(u64, u8)> = Vec::new();
    let (mut to_librbd, mut to_ours) = (Vec::new(), Vec::new());
    const ROUNDS: u64 = 5;
    for round in 0..ROUNDS {
        // Ours writes: takes the lock (from librbd after round 0).
        let (off, tag) = (round * 2 * 4096, (2 * round) as u8 + 1);
        let t = Instant::now();
        ours.write_at(off, &support::pattern(tag, 0, 4096)).await.expect("our write");
        to_ours.push(t.elapsed());
        assert!(
            ours.is_exclusive_lock_owner().await.unwrap(),
            "round {round}: we own the lock after writing"
        );
        let lockers = support::rbd_lockers(&conf, &name);
        assert_eq!(lockers.len(), 1);
        assert_eq!(lockers[0].0, ours_locker, "round {round}");
        written.push((off, tag));

        // librbd writes: asks us for the lock, we release, it acquires.
        let (off, tag) = (off + 4096, tag + 1);
        let t = Instant::now();
        let (p, answer) = ask(peer, format!("w {off} {tag}")).await;
        peer = p;
        to_librbd.push(t.elapsed());
        assert_eq!(answer, "ok True", "round {round}: librbd owns the lock after writing");
        assert!(!ours.is_exclusive_lock_owner().await.unwrap(), "round {round}: we released");
        written.push((off, tag));

        // Every write so far reads back on both sides.
        for &(o, tg) in &written {
            let want = support::pattern(tg, 0, 4096);
            assert_eq!(ours.read_at(o, 4096).await.unwrap(), want, "our read of {o}");
            let (p, answer) = ask(peer, format!("r {o}")).await;
            peer = p;
            let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(answer, format!("data {hex}"), "librbd's read of {o}");
        }
    }
    let ms = |v: &[Duration]| {
        v.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(" ")
    };
    let _ = writeln!(
        std::io::stderr(),
        "timing: handover: librbd->ours write incl. hand-over (ms): {}",
        ms(&to_ours)
    );
    let _ = writeln!(
        std::io::stderr(),
        "timing: handover: ours->librbd write incl. hand-over (ms): {}",
        ms(&to_librbd)
    );
    peer.quit();
    ours.close().await;
}

/// The cluster's watch timeout as the suite expects it (`CEPH_DEV_WATCH_TIMEOUT=5`): the limits
/// below leave room for it plus librbd's retry interval, and fail rather than hang past it.
const DEAD_OWNER_LIMIT: Duration = Duration::from_secs(30);

/// Interop 4 (issue 11; rbd §1.6.3, §2.12, §2.13; real-ceph §3 "A killed with -9"): a real librbd
/// writer (python3-rbd) owns the lock and is killed with -9. Our next write asks the dead owner
/// for the lock, gets no answer, and once the OSD drops its watch (the cluster's watch timeout,
/// 5 s here) blocklists the owner's address, breaks its lock and takes it. The blocklist shows
/// the dead client's address and the block it acknowledged before dying reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_real_writer_is_blocklisted_and_broken_by_us() {
    let Some(conf) = support::conf("dead_real_writer_is_blocklisted_and_broken_by_us") else { return };
    let name = create_image(&conf, "dead-librbd");
    let _cleanup = ImageGuard { conf: &conf, name: name.clone() };
    let mut peer = LibrbdPeer::start(&conf, &name);
    assert_eq!(peer.ask("w 0 7"), "ok True", "the real writer takes the lock");
    let dead = support::rbd_lockers(&conf, &name);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.starts_with("auto "), "{dead:?}");
    assert!(!support::is_blocklisted(&conf, &dead[0].2), "not blocklisted before the test");
    peer.child.0.kill().expect("kill -9 the real writer");
    let _ = peer.child.0.wait();

    let client = support::connect(&conf).await;
    let io = support::ioctx(&client);
    let ours = Image::open(&io, &name, OpenOptions::default()).await.expect("open");
    let t = Instant::now();
    let w = tokio::time::timeout(DEAD_OWNER_LIMIT, ours.write_at(4096, &support::pattern(8, 0, 4096))).await;
    let took = t.elapsed();
    support::timing("dead-librbd", "our write incl. waiting out the dead owner's watch + break", took);
    assert_eq!(
        w.expect("our write finished within 30 s").expect("our write after breaking the dead lock"),
        4096
    );
    assert!(ours.is_exclusive_lock_owner().await.unwrap(), "we own the lock");
    let lockers = support::rbd_lockers(&conf, &name);
    assert_eq!(lockers.len(), 1, "{lockers:?}");
    assert_eq!(lockers[0].0, format!("client.{}", io.client_gid()), "the real tool sees our lock");
    assert!(
        support::is_blocklisted(&conf, &dead[0].2),
        "`ceph osd blocklist ls` lists the dead writer {}:\n{}",
        dead[0].2,
        support::blocklist_ls(&conf)
    );
    // Not broken before the OSD dropped the dead watch (rbd §1.6.3: a live watch means a live owner).
    assert!(
        took >= Duration::from_secs(1),
        "the lock was broken at once ({took:?}) although its watch was alive"
    );
    assert_eq!(
        ours.read_at(0, 4096).await.unwrap(),
        support::pattern(7, 0, 4096),
        "acknowledged write survives"
    );
    assert_eq!(ours.read_at(4096, 4096).await.unwrap(), support::pattern(8, 0, 4096));
    ours.close().await;
}

/// Reads a child's remaining stdout and stderr after it exited.
fn drain(child: &mut Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (out, err)
}

/// Starts `cephlock rbd write-bench` and waits until it holds the lock (a locker other than
/// `not`); returns the process and its locker.
fn start_our_writer(conf: &str, name: &str, not: Option<&str>) -> (Reap, (String, String, String)) {
    let wb = support::cephlock_rbd(conf, &["write-bench", name, "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cephlock rbd write-bench");
    let wb = Reap(wb);
    let owner = support::wait_for(Duration::from_secs(20), || {
        support::rbd_lockers(conf, name).into_iter().find(|l| Some(l.0.as_str()) != not)
    })
    .expect("write-bench took the lock within 20 s");
    (wb, owner)
}

/// Interop 5 (issue 11; rbd §2.12, §2.13; real-ceph §3 "rbd lock rm"): our owner dies or hangs,
/// a real librbd client breaks our lock, and a fenced handle of ours never writes again.
///
/// Part 1: a `cephlock rbd write-bench` owner is killed with -9; the real writer's next write
/// waits out our watch, blocklists our address and takes the lock. Part 2 (the hung owner a
/// restart cannot show, since a new process has a new address): a second write-bench takes the
/// lock back cooperatively, is suspended with SIGSTOP, the real writer breaks its lock the same
/// way, and after SIGCONT our process finds itself blocklisted: its next write fails
/// -EBLOCKLISTED (108), write-bench exits with that error, the real writer keeps the lock and
/// its data is not overwritten.
#[test]
fn real_writer_breaks_our_dead_or_hung_owner_which_stays_fenced() {
    let Some(conf) = support::conf("real_writer_breaks_our_dead_or_hung_owner_which_stays_fenced") else {
        return;
    };
    let name = create_image(&conf, "dead-ours");
    let _cleanup = ImageGuard { conf: &conf, name: name.clone() };

    // Part 1: our owner killed with -9.
    let (mut a, owner_a) = start_our_writer(&conf, &name, None);
    assert!(owner_a.1.starts_with("auto "), "{owner_a:?}");
    a.0.kill().expect("kill -9 our writer");
    let _ = a.0.wait();
    let mut peer = LibrbdPeer::start(&conf, &name);
    let t = Instant::now();
    assert_eq!(peer.ask("w 0 21"), "ok True", "the real writer takes the dead owner's lock");
    support::timing("dead-ours", "librbd write incl. breaking our killed owner", t.elapsed());
    assert!(
        support::is_blocklisted(&conf, &owner_a.2),
        "librbd blocklisted our dead writer {}:\n{}",
        owner_a.2,
        support::blocklist_ls(&conf)
    );
    let peer_lock = support::rbd_lockers(&conf, &name);
    assert_eq!(peer_lock.len(), 1, "{peer_lock:?}");
    assert_ne!(peer_lock[0].0, owner_a.0);

    // Part 2: a second owner of ours hangs (SIGSTOP) and wakes up fenced (SIGCONT).
    let (mut b, owner_b) = start_our_writer(&conf, &name, Some(&peer_lock[0].0));
    let pid_b = b.0.id();
    support::signal(pid_b, "-STOP");
    let t = Instant::now();
    assert_eq!(peer.ask("w 0 22"), "ok True", "the real writer breaks the hung owner's lock");
    support::timing("dead-ours", "librbd write incl. breaking our suspended owner", t.elapsed());
    assert!(
        support::is_blocklisted(&conf, &owner_b.2),
        "librbd blocklisted our hung writer {}:\n{}",
        owner_b.2,
        support::blocklist_ls(&conf)
    );
    let peer_lock2 = support::rbd_lockers(&conf, &name);
    assert_eq!(peer_lock2.len(), 1, "{peer_lock2:?}");
    assert_eq!(peer_lock2[0].0, peer_lock[0].0, "the real writer owns the lock");

    support::signal(pid_b, "-CONT");
    let t = Instant::now();
    let exited = support::wait_for(Duration::from_secs(20), || b.0.try_wait().unwrap());
    support::timing("dead-ours", "resumed write-bench gave up", t.elapsed());
    let status = exited.expect("the resumed, fenced write-bench stops writing and exits within 20 s");
    let (out, err) = drain(&mut b.0);
    assert!(!status.success(), "a fenced writer must fail, not finish: {out}");
    assert!(
        err.contains("blocklisted") || err.contains("EBLOCKLISTED"),
        "the resumed writer's write fails -EBLOCKLISTED (108): {err}\n{out}"
    );
    let _ = writeln!(std::io::stderr(), "timing: dead-ours: fenced write-bench said: {}", err.trim());
    // The real writer still owns the lock and its block was not overwritten by the woken writer
    // (whose sequential writes start at block 0).
    assert_eq!(support::rbd_lockers(&conf, &name), peer_lock2);
    assert_eq!(peer.ask("o"), "owner True");
    let want: String = support::pattern(22, 0, 4096).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(peer.ask("r 0"), format!("data {want}"), "the fenced writer wrote nothing");
    peer.quit();
}
