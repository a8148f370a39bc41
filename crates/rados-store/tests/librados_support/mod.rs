//! Shared set-up for the real-Ceph suites (`librados_*.rs`).
//!
//! The suites run only with the `librados` feature and only when `CEPH_CONF` names a cluster
//! (e.g. one started by `scripts/ceph-dev-cluster.sh`); otherwise every test prints why it
//! skipped and passes, so `cargo test --features librados` works on a machine without Ceph.
//! Each test works in its own RADOS namespace, so tests share one pool without seeing each
//! other's objects, and reruns never collide.

#![allow(dead_code)]

use std::io::Write;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use rados_store::librados::{LibradosClient, LibradosConfig};
use rados_store::{Client, IoCtx};

/// The pool the suites use (`CEPHLOCK_TEST_POOL`, default `rbd`, the script's pool).
pub fn pool() -> String {
    std::env::var("CEPHLOCK_TEST_POOL").unwrap_or_else(|_| "rbd".to_owned())
}

/// The cluster to test against, or None (with a note on stderr) when `CEPH_CONF` is unset.
pub fn config(test: &str) -> Option<LibradosConfig> {
    match LibradosConfig::from_env() {
        Some(c) => Some(c.with_option("client_mount_timeout", "20")),
        None => {
            // Straight to the process's stderr, past libtest's capture, so the skip is visible
            // in a normal `cargo test` run; once per test binary is enough.
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: skipping the real-Ceph tests in this binary (first: {test}): CEPH_CONF is not set; \
                     start a cluster with scripts/ceph-dev-cluster.sh and export CEPH_CONF"
                );
            });
            None
        }
    }
}

/// A fresh connection.
pub async fn connect(cfg: &LibradosConfig) -> Client {
    LibradosClient::connect(cfg.clone())
        .await
        .expect("connect to the cluster named by CEPH_CONF")
        .into_client()
}

/// A namespace no other test (or earlier run) uses.
pub fn unique_namespace(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("cephlock-{test}-{}-{nanos}", std::process::id())
}

/// An I/O context on the test pool in `namespace`.
pub fn ioctx(client: &Client, namespace: &str) -> IoCtx {
    client.ioctx(&pool(), namespace).expect("test pool exists (CEPHLOCK_TEST_POOL, default rbd)")
}

/// Runs a Ceph CLI tool against the same cluster; None if the tool is not installed.
pub fn cli(tool: &str, args: &[&str]) -> Option<String> {
    let conf = std::env::var("CEPH_CONF").ok()?;
    let out = std::process::Command::new(tool).arg("-c").arg(conf).args(args).output().ok()?;
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The p-th percentile (0..=100) of some durations in milliseconds.
pub fn percentile_ms(sorted_ms: &[f64], p: usize) -> f64 {
    if sorted_ms.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted_ms.len() - 1) * p.min(100)) / 100;
    sorted_ms[idx]
}
