//! `cephlock rbd bench-handover | bench-snap-forward | bench-notify`: latency figures on a real
//! cluster, comparable with a real librbd peer on the same cluster (issue 11, docs/benchmarks.md).
//!
//! The librbd side is an external process speaking the line protocol of the interop suite's
//! python3-rbd peer (`w OFF TAG`, `s NAME`, `q`; it prints `ready` first), started with
//! `--peer-cmd`. Keeping librbd out of this binary means cephlock links only librados, and the
//! same peer serves the tests and the figures. Every figure is timed around one call on our side,
//! so the peer's figures include one pipe round trip (a few µs, far below the ms measured).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rados_store::{Client, IoCtx, WatchEvent, watch_channel};
use rbd_ops::{Image, OpenOptions};
use serde_json::{Value, json};

use crate::CliError;

/// Latency summary in milliseconds.
fn summary(samples: &[Duration]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if ms.is_empty() {
            return 0.0;
        }
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    let mean = if ms.is_empty() { 0.0 } else { ms.iter().sum::<f64>() / ms.len() as f64 };
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "samples": ms.len(),
        "min_ms": r(pick(0.0)),
        "p50_ms": r(pick(0.5)),
        "p99_ms": r(pick(0.99)),
        "max_ms": r(pick(1.0)),
        "mean_ms": r(mean),
    })
}

/// A running librbd peer (see the module docs).
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(cmd: &str) -> Result<Peer, CliError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::Failed(format!("cannot start the peer {cmd:?}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(CliError::Failed("the peer has no pipes".into()));
        };
        let mut p = Peer { child, stdin, stdout: BufReader::new(stdout) };
        let first = p.line()?;
        if first != "ready" {
            return Err(CliError::Failed(format!("the peer said {first:?} instead of \"ready\"")));
        }
        Ok(p)
    }

    fn line(&mut self) -> Result<String, CliError> {
        let mut l = String::new();
        self.stdout.read_line(&mut l)?;
        if l.is_empty() {
            return Err(CliError::Failed("the peer exited".into()));
        }
        Ok(l.trim_end().to_owned())
    }

    /// Sends one command and returns the answer; an answer not starting with `ok` is an error.
    fn ask(&mut self, cmd: &str) -> Result<String, CliError> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        let a = self.line()?;
        if !a.starts_with("ok") {
            return Err(CliError::Failed(format!("peer answered {cmd:?} with {a:?}")));
        }
        Ok(a)
    }

    fn quit(mut self) {
        let _ = writeln!(self.stdin, "q");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// Runs a blocking peer command off the async workers: while librbd waits for our handle to
/// hand the lock over or run a forwarded op, our handle's watch callbacks must keep running.
async fn ask(peer: Peer, cmd: String) -> Result<(Peer, String), CliError> {
    tokio::task::spawn_blocking(move || {
        let mut peer = peer;
        let a = peer.ask(&cmd);
        a.map(|a| (peer, a))
    })
    .await
    .map_err(|e| CliError::Failed(format!("peer task: {e}")))?
}

fn rbd_err(what: &str, e: rbd_ops::RbdError) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

fn print(out: &mut dyn Write, v: &Value, json_out: bool) -> Result<(), CliError> {
    if json_out {
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(v).unwrap_or_default())?;
    }
    Ok(())
}

/// Lock hand-over latency (rbd §3.5): each sample is one 4 KiB write by the side that does not
/// own the lock, so it includes REQUEST_LOCK, the owner's release and the acquisition. Without
/// a peer, two cephlock handles on two connections alternate; with one, ours and librbd do.
pub(super) async fn handover(
    io_a: &IoCtx,
    io_b: Option<&IoCtx>,
    image: &str,
    rounds: u32,
    peer_cmd: Option<&str>,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let a = Image::open(io_a, image, OpenOptions::default()).await.map_err(|e| rbd_err("open", e))?;
    let buf = vec![0x5au8; 4096];
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    let v = if let Some(cmd) = peer_cmd {
        let mut peer = Peer::start(cmd)?;
        (peer, _) = ask(peer, "w 4096 1".into()).await?;
        for i in 0..rounds {
            let t = Instant::now();
            a.write_at(0, &buf).await.map_err(|e| rbd_err("our write", e))?;
            to_a.push(t.elapsed());
            let t = Instant::now();
            (peer, _) = ask(peer, format!("w 4096 {}", i % 250)).await?;
            to_b.push(t.elapsed());
        }
        peer.quit();
        json!({"pair": "ours<->librbd", "rounds": rounds,
               "librbd_to_ours": summary(&to_a), "ours_to_librbd": summary(&to_b)})
    } else {
        let Some(io_b) = io_b else {
            return Err(CliError::Failed("bench-handover needs a second connection".into()));
        };
        let b = Image::open(io_b, image, OpenOptions::default()).await.map_err(|e| rbd_err("open", e))?;
        b.write_at(4096, &buf).await.map_err(|e| rbd_err("write", e))?;
        for _ in 0..rounds {
            let t = Instant::now();
            a.write_at(0, &buf).await.map_err(|e| rbd_err("write A", e))?;
            to_a.push(t.elapsed());
            let t = Instant::now();
            b.write_at(4096, &buf).await.map_err(|e| rbd_err("write B", e))?;
            to_b.push(t.elapsed());
        }
        b.close().await;
        let all: Vec<Duration> = to_a.iter().chain(&to_b).copied().collect();
        json!({"pair": "ours<->ours", "rounds": rounds, "handover": summary(&all),
               "b_to_a": summary(&to_a), "a_to_b": summary(&to_b)})
    };
    a.close().await;
    print(out, &v, json_out)
}

/// Forwarded snap_create latency (rbd §5.1, §7): the lock owner runs each snapshot another
/// client asks for. Both directions against a librbd peer: librbd owns and we request, then we
/// own and librbd requests. The snapshots are removed afterwards by the owner.
pub(super) async fn snap_forward(
    io: &IoCtx,
    image: &str,
    rounds: u32,
    peer_cmd: &str,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut peer = Peer::start(peer_cmd)?;
    // librbd owns: its write takes the lock; our handle forwards.
    (peer, _) = ask(peer, "w 0 1".into()).await?;
    let ours = Image::open(io, image, OpenOptions::default()).await.map_err(|e| rbd_err("open", e))?;
    let mut ours_req = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        ours.snap_create(&format!("bo{i}")).await.map_err(|e| rbd_err("forwarded snap create", e))?;
        ours_req.push(t.elapsed());
    }
    let still_librbd = !ours.is_exclusive_lock_owner().await.unwrap_or(true);
    // We own: our write takes the lock (librbd hands it over); librbd forwards.
    ours.write_at(0, &[1u8; 4096]).await.map_err(|e| rbd_err("our write", e))?;
    let mut librbd_req = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        (peer, _) = ask(peer, format!("s bl{i}")).await?;
        librbd_req.push(t.elapsed());
    }
    let still_ours = ours.is_exclusive_lock_owner().await.unwrap_or(false);
    for i in 0..rounds {
        for n in [format!("bo{i}"), format!("bl{i}")] {
            ours.snap_remove(&n).await.map_err(|e| rbd_err("snap rm", e))?;
        }
    }
    peer.quit();
    ours.close().await;
    let v = json!({"rounds": rounds,
        "ours_requests_librbd_owner": summary(&ours_req), "librbd_owner_kept_lock": still_librbd,
        "librbd_requests_our_owner": summary(&librbd_req), "our_owner_kept_lock": still_ours});
    print(out, &v, json_out)
}

/// Forwarded snap_create latency between two cephlock handles on two connections: `a` owns
/// the lock (it wrote) and `b` asks it for each snapshot, the same workload as `snap_forward`
/// without librbd on either side.
pub(super) async fn snap_forward_ours(
    io_a: &IoCtx,
    io_b: &IoCtx,
    image: &str,
    rounds: u32,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let a = Image::open(io_a, image, OpenOptions::default()).await.map_err(|e| rbd_err("open", e))?;
    let b = Image::open(io_b, image, OpenOptions::default()).await.map_err(|e| rbd_err("open", e))?;
    a.write_at(0, &[1u8; 4096]).await.map_err(|e| rbd_err("owner write", e))?;
    let mut req = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        b.snap_create(&format!("oo{i}")).await.map_err(|e| rbd_err("forwarded snap create", e))?;
        req.push(t.elapsed());
    }
    let kept = a.is_exclusive_lock_owner().await.unwrap_or(false);
    for i in 0..rounds {
        a.snap_remove(&format!("oo{i}")).await.map_err(|e| rbd_err("snap rm", e))?;
    }
    b.close().await;
    a.close().await;
    let v = json!({"rounds": rounds, "ours_requests_our_owner": summary(&req), "owner_kept_lock": kept});
    print(out, &v, json_out)
}

/// Notify round trip through our librados backend (rados-store): one connection watches an
/// object and acks every notify from a task, the other notifies; each sample is one notify2
/// until its reply (one ack) arrives.
pub(super) async fn notify(
    notifier: &IoCtx,
    watcher_client: &Client,
    pool: &str,
    rounds: u32,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let err = |what: &str, e: rados_store::Error| CliError::Failed(format!("{what}: {e}"));
    let oid = format!("cephlock-bench-notify.{}", std::process::id());
    notifier.create(&oid, false).await.map_err(|e| err("create", e))?;
    let wio = watcher_client.ioctx(pool, "").map_err(|e| err("ioctx", e))?;
    let (ctx, mut rx) = watch_channel();
    let handle = wio.watch(&oid, ctx).await.map_err(|e| err("watch", e))?;
    let acker = {
        let wio = wio.dup();
        let oid = oid.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let WatchEvent::Notify(n) = ev {
                    let _ = wio.notify_ack(&oid, n.notify_id, n.handle, b"pong").await;
                }
            }
        })
    };
    let mut samples = Vec::new();
    let mut acks_ok = true;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = notifier.notify(&oid, b"ping", Duration::from_secs(5)).await;
        samples.push(t.elapsed());
        acks_ok &= matches!(&r, Ok(rep) if rep.acks.len() == 1 && rep.acks[0].reply == b"pong");
    }
    let _ = wio.unwatch(handle).await;
    acker.abort();
    let _ = notifier.remove(&oid).await;
    let v =
        json!({"rounds": rounds, "every_reply_had_the_ack": acks_ok, "notify_round_trip": summary(&samples)});
    print(out, &v, json_out)
}
