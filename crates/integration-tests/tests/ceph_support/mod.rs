//! Shared set-up for the real-Ceph interop suite (`ceph_interop.rs`).
//!
//! The suite needs the `ceph` feature *and* a cluster: `CEPH_CONF` names its ceph.conf (e.g. the
//! one `scripts/ceph-dev-cluster.sh` prints). Without `CEPH_CONF` every test prints one note and
//! passes, so `cargo test -p integration-tests --features ceph` works on a machine without Ceph.
//! Each test makes its own image with a name no other test or earlier run uses, in one pool
//! (`CEPHLOCK_TEST_POOL`, default `rbd`, the script's pool).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rados_store::librados::{LibradosClient, LibradosConfig};
use rados_store::{Client, IoCtx};

/// The pool the suite uses.
pub fn pool() -> String {
    std::env::var("CEPHLOCK_TEST_POOL").unwrap_or_else(|_| "rbd".to_owned())
}

/// The cluster's conf, or None (with a note on stderr, once per binary) when `CEPH_CONF` is unset.
pub fn conf(test: &str) -> Option<String> {
    match std::env::var("CEPH_CONF") {
        Ok(c) if !c.is_empty() => Some(c),
        _ => {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                // Past libtest's capture, so a plain `cargo test` shows why nothing ran.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: skipping the real-Ceph interop tests (first: {test}): CEPH_CONF is not set; \
                     start a cluster with scripts/ceph-dev-cluster.sh and export CEPH_CONF"
                );
            });
            None
        }
    }
}

/// A fresh librados connection to the cluster in `conf`.
pub async fn connect(conf: &str) -> Client {
    LibradosClient::connect(LibradosConfig::new(conf).with_option("client_mount_timeout", "20"))
        .await
        .expect("connect to the cluster named by CEPH_CONF")
        .into_client()
}

/// An I/O context on the test pool.
pub fn ioctx(client: &Client) -> IoCtx {
    client.ioctx(&pool(), "").expect("test pool exists (CEPHLOCK_TEST_POOL, default rbd)")
}

/// An image name no other test or earlier run uses.
pub fn unique_image(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("interop-{test}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Runs the real `rbd` tool against the cluster and pool; panics with its stderr on failure.
pub fn rbd(conf: &str, args: &[&str]) -> String {
    let out = rbd_output(conf, args);
    assert!(
        out.status.success(),
        "rbd {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the real `rbd` tool and returns whatever it did.
pub fn rbd_output(conf: &str, args: &[&str]) -> Output {
    Command::new("rbd")
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(pool())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the rbd tool is installed (Debian package ceph-common)")
}

/// The real `rbd` tool's view of the lock: (locker, cookie, address) of each locker.
pub fn rbd_lockers(conf: &str, image: &str) -> Vec<(String, String, String)> {
    let out = rbd(conf, &["lock", "ls", image, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
    // 16.2 prints a JSON array of {id, locker, address}.
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let f = |k: &str| l.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                    (f("locker"), f("id"), f("address"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The snapshot names `rbd snap ls` prints.
pub fn rbd_snap_names(conf: &str, image: &str) -> Vec<String> {
    let out = rbd(conf, &["snap", "ls", image, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.get("name").and_then(|n| n.as_str()).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The `cephlock` binary built with the `ceph` feature: `CEPHLOCK_BIN`, else the one in this
/// target directory (`cargo build -p cephlock --features ceph` must have run first).
pub fn cephlock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CEPHLOCK_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test binary> -> target/<profile>/cephlock
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target directory");
    let bin = dir.join("cephlock");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p cephlock --features ceph` first or set CEPHLOCK_BIN",
        bin.display()
    );
    // A later plain `cargo build` in the same target directory replaces it with a build that
    // cannot reach a cluster; say so instead of failing obscurely.
    let probe =
        Command::new(&bin).args(["rbd", "--conf", "/nonexistent", "ls"]).output().expect("run cephlock");
    assert!(
        !String::from_utf8_lossy(&probe.stderr).contains("without the `ceph` feature"),
        "{} was built without the `ceph` feature: run `cargo build -p cephlock --features ceph` \
         (or point CEPHLOCK_BIN at such a build)",
        bin.display()
    );
    bin
}

/// `cephlock rbd --conf CONF --pool POOL <args>`, as a command to run or spawn.
pub fn cephlock_rbd(conf: &str, args: &[&str]) -> Command {
    let mut c = Command::new(cephlock_bin());
    c.arg("rbd").arg("--conf").arg(conf).arg("--pool").arg(pool()).args(args).stdin(Stdio::null());
    c
}

/// Polls `f` every 50 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints a timing line past libtest's capture, for the report and CI logs.
pub fn timing(test: &str, what: &str, d: Duration) {
    let _ = writeln!(std::io::stderr(), "timing: {test}: {what}: {:.1} ms", d.as_secs_f64() * 1e3);
}

/// Deterministic bytes for block `i`.
pub fn pattern(tag: u8, i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| tag ^ (i as u8).wrapping_mul(31) ^ (j as u8)).collect()
}

/// `ceph osd blocklist ls` (the entries, one a line: `ADDR EXPIRY`).
pub fn blocklist_ls(conf: &str) -> String {
    let out = Command::new("ceph")
        .arg("-c")
        .arg(conf)
        .args(["osd", "blocklist", "ls"])
        .stdin(Stdio::null())
        .output()
        .expect("the ceph tool is installed (Debian package ceph-common)");
    assert!(out.status.success(), "ceph osd blocklist ls: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `addr` (as `rbd lock ls` prints it, `127.0.0.1:0/NONCE`) is blocklisted.
pub fn is_blocklisted(conf: &str, addr: &str) -> bool {
    blocklist_ls(conf).lines().any(|l| l.split_whitespace().next().is_some_and(|a| a.ends_with(addr)))
}

/// Sends a signal (`-STOP`, `-CONT`, `-9`) to a process through the `kill` binary.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill").arg(sig).arg(pid.to_string()).status().expect("run kill");
    assert!(st.success(), "kill {sig} {pid} failed");
}
