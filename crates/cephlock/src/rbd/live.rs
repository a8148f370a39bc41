//! The `rbd` commands against a real cluster (feature `ceph`): a librados connection wrapped as a
//! rados-store [`Client`], and rbd-ops images on it.
//!
//! Listing commands open nothing writable: `info` and `snap ls` use a read-only handle (no
//! watch, so they do not show up in `status`), `lock ls` and `status` read the header object
//! directly, as the `rbd` tool does. Maintenance commands open a read-write handle, which
//! forwards the op to the lock owner when a live client holds the lock, or takes the lock and
//! runs it locally otherwise (rbd §5.1); closing the handle releases a lock it took.

use std::io::Write;
use std::time::{Duration, Instant};

use rados_store::cls_lock_client::{self as cls_lock, LockInfo};
use rados_store::librados::{LibradosClient, LibradosConfig};
use rados_store::{Client, EntityAddr, IoCtx};
use rbd_ops::{Image, LockMode, OpenOptions, RbdError, admin};
use serde_json::json;

use super::format::{bytes, feature_names, table};
use super::{LockCommand, OutputFormat, Pattern, RbdArgs, RbdCommand, SnapCommand, WriteBenchArgs};
use crate::CliError;

/// librbd's lock name on the header object (rbd §0.1).
const RBD_LOCK_NAME: &str = "rbd_lock";
/// The tag librbd's managed lock uses (rbd §0.1); other tags are foreign, advisory locks.
const INTERNAL_TAG: &str = "internal";

fn rbd_err(what: &str, e: RbdError) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

fn store_err(what: &str, e: rados_store::Error) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

pub(super) fn run(args: &RbdArgs, out: &mut dyn Write) -> Result<(), CliError> {
    // Two workers: librados completions are awaited on blocking threads, and a write-bench must
    // keep answering forwarded ops while it writes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let client = connect(args).await?;
        let io = client.ioctx(&args.pool, "").map_err(|e| store_err(&format!("pool {:?}", args.pool), e))?;
        dispatch(args, &client, &io, out).await
    })
}

async fn connect(args: &RbdArgs) -> Result<Client, CliError> {
    let mut cfg = match &args.conf {
        Some(c) => LibradosConfig::new(c),
        None => LibradosConfig::from_env().unwrap_or_default(),
    };
    if let Some(id) = &args.id {
        cfg = cfg.with_id(id);
    }
    let client =
        LibradosClient::connect(cfg).await.map_err(|e| store_err("cannot connect to the cluster", e))?;
    Ok(client.into_client())
}

async fn dispatch(args: &RbdArgs, client: &Client, io: &IoCtx, out: &mut dyn Write) -> Result<(), CliError> {
    let json = args.format == OutputFormat::Json;
    match &args.cmd {
        RbdCommand::Ls => ls(io, json, out).await,
        RbdCommand::Info { image } => info(io, image, json, out).await,
        RbdCommand::Status { image } => status(io, image, json, out).await,
        RbdCommand::Lock(LockCommand::Ls { image }) => lock_ls(io, image, json, out).await,
        RbdCommand::Lock(LockCommand::Break { image, locker }) => lock_break(client, io, image, locker).await,
        RbdCommand::Snap(SnapCommand::Create { spec: (image, snap) }) => {
            let img = open_rw(io, image).await?;
            let r = img.snap_create(snap).await;
            img.close().await;
            r.map_err(|e| rbd_err(&format!("snap create {image}@{snap}"), e))?;
            eprintln!("Creating snap: 100% complete...done.");
            Ok(())
        }
        RbdCommand::Snap(SnapCommand::Rm { spec: (image, snap) }) => {
            let img = open_rw(io, image).await?;
            let r = img.snap_remove(snap).await;
            img.close().await;
            r.map_err(|e| rbd_err(&format!("snap rm {image}@{snap}"), e))?;
            eprintln!("Removing snap: 100% complete...done.");
            Ok(())
        }
        RbdCommand::Snap(SnapCommand::Ls { image }) => snap_ls(io, image, json, out).await,
        RbdCommand::Resize { image, size, allow_shrink } => {
            let img = open_rw(io, image).await?;
            let cur = img.size();
            if *size < cur && !allow_shrink {
                img.close().await;
                return Err(CliError::Usage(
                    "shrinking an image is only allowed with the --allow-shrink flag".into(),
                ));
            }
            let r = img.resize2(*size, *allow_shrink, None).await;
            img.close().await;
            r.map_err(|e| rbd_err(&format!("resize {image}"), e))?;
            eprintln!("Resizing image: 100% complete...done.");
            Ok(())
        }
        RbdCommand::WriteBench(wb) => write_bench(io, wb, out).await,
        RbdCommand::BenchHandover { image, rounds, peer_cmd, json } => {
            let second = match peer_cmd {
                Some(_) => None,
                None => Some(connect(args).await?),
            };
            let io_b = match &second {
                Some(c) => Some(c.ioctx(&args.pool, "").map_err(|e| store_err("pool", e))?),
                None => None,
            };
            super::bench::handover(io, io_b.as_ref(), image, *rounds, peer_cmd.as_deref(), *json, out).await
        }
        RbdCommand::BenchSnapForward { image, rounds, peer_cmd, json } => match peer_cmd {
            Some(cmd) => super::bench::snap_forward(io, image, *rounds, cmd, *json, out).await,
            None => {
                let second = connect(args).await?;
                let io_b = second.ioctx(&args.pool, "").map_err(|e| store_err("pool", e))?;
                super::bench::snap_forward_ours(io, &io_b, image, *rounds, *json, out).await
            }
        },
        RbdCommand::BenchNotify { rounds, json } => {
            let watcher = connect(args).await?;
            super::bench::notify(io, &watcher, &args.pool, *rounds, *json, out).await
        }
    }
}

async fn open_rw(io: &IoCtx, image: &str) -> Result<Image, CliError> {
    Image::open(io, image, OpenOptions::default()).await.map_err(|e| rbd_err(&format!("open {image}"), e))
}

async fn open_ro(io: &IoCtx, image: &str) -> Result<Image, CliError> {
    Image::open(io, image, OpenOptions { read_only: true, ..OpenOptions::default() })
        .await
        .map_err(|e| rbd_err(&format!("open {image}"), e))
}

async fn header_of(io: &IoCtx, image: &str) -> Result<String, CliError> {
    let id = admin::image_id(io, image).await.map_err(|e| rbd_err(&format!("image {image}"), e))?;
    Ok(admin::header_oid(&id))
}

async fn ls(io: &IoCtx, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let images = admin::list(io).await.map_err(|e| rbd_err("list images", e))?;
    if json {
        writeln!(out, "{}", json!(images.keys().collect::<Vec<_>>()))?;
    } else {
        for name in images.keys() {
            writeln!(out, "{name}")?;
        }
    }
    Ok(())
}

async fn info(io: &IoCtx, image: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let img = open_ro(io, image).await?;
    let info = img.info().await;
    img.close().await;
    let info = info.map_err(|e| rbd_err(&format!("info {image}"), e))?;
    let feats = feature_names(info.features);
    if json {
        let v = json!({
            "name": image,
            "id": img.id(),
            "size": info.size,
            "objects": info.num_objs,
            "order": info.order,
            "object_size": info.obj_size,
            "snapshot_count": info.snaps.len(),
            "block_name_prefix": info.block_name_prefix,
            "format": 2,
            "features": feats,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "rbd image '{image}':")?;
    writeln!(out, "\tsize {} in {} objects", bytes(info.size), info.num_objs)?;
    writeln!(out, "\torder {} ({} objects)", info.order, bytes(info.obj_size))?;
    writeln!(out, "\tsnapshot_count: {}", info.snaps.len())?;
    writeln!(out, "\tid: {}", img.id())?;
    writeln!(out, "\tblock_name_prefix: {}", info.block_name_prefix)?;
    writeln!(out, "\tformat: 2")?;
    writeln!(out, "\tfeatures: {}", feats.join(", "))?;
    Ok(())
}

async fn status(io: &IoCtx, image: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let header = header_of(io, image).await?;
    let watchers = io.list_watchers(&header).await.map_err(|e| store_err(&format!("status {image}"), e))?;
    if json {
        let ws: Vec<_> = watchers
            .iter()
            .map(|w| json!({"address": w.addr.to_string(), "client": w.gid, "cookie": w.cookie}))
            .collect();
        writeln!(out, "{}", json!({ "watchers": ws }))?;
    } else if watchers.is_empty() {
        writeln!(out, "Watchers: none")?;
    } else {
        writeln!(out, "Watchers:")?;
        for w in &watchers {
            writeln!(out, "\t{w}")?;
        }
    }
    Ok(())
}

async fn lock_info(io: &IoCtx, image: &str) -> Result<(String, LockInfo), CliError> {
    let header = header_of(io, image).await?;
    let info = cls_lock::get_lock_info(io, &header, RBD_LOCK_NAME)
        .await
        .map_err(|e| store_err(&format!("lock ls {image}"), e))?;
    Ok((header, info))
}

async fn lock_ls(io: &IoCtx, image: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let (_, info) = lock_info(io, image).await?;
    let rows: Vec<Vec<String>> = info
        .lockers
        .iter()
        .map(|(id, li)| vec![id.entity.to_string(), id.cookie.clone(), li.addr.to_string()])
        .collect();
    if json {
        let v: Vec<_> = rows.iter().map(|r| json!({"id": r[1], "locker": r[0], "address": r[2]})).collect();
        writeln!(out, "{}", json!(v))?;
        return Ok(());
    }
    if rows.is_empty() {
        return Ok(());
    }
    let kind = if info.lock_type == cls_lock::LockType::Shared { "shared" } else { "exclusive" };
    let (verb, noun) = if rows.len() == 1 { ("is", "lock") } else { ("are", "locks") };
    writeln!(out, "There {verb} {} {kind} {noun} on this image.", rows.len())?;
    if kind == "shared" && !info.tag.is_empty() {
        writeln!(out, "Lock tag: {}", info.tag)?;
    }
    write!(out, "{}", table(&["Locker", "ID", "Address"], &rows, &[]))?;
    Ok(())
}

/// Breaks one locker's lock. librbd's own lock (`auto <handle>`, tag `internal`) goes through
/// the exclusive-lock path of `rbd_lock_break` (blocklist the owner, then break, rbd §2.12,
/// §2.13); a foreign advisory lock is broken the way `rbd lock rm` does it: blocklist its
/// address, then cls `break_lock`.
async fn lock_break(client: &Client, io: &IoCtx, image: &str, locker: &str) -> Result<(), CliError> {
    let (header, info) = lock_info(io, image).await?;
    let found = info.lockers.iter().find(|(id, li)| {
        id.entity.to_string() == locker || id.cookie == locker || li.addr.to_string() == locker
    });
    let Some((id, li)) = found else {
        return Err(CliError::Usage(format!("image {image} has no locker {locker:?}")));
    };
    let managed = info.tag == INTERNAL_TAG && id.cookie.starts_with("auto ");
    if managed {
        let img = open_rw(io, image).await?;
        let r = img.lock_break(LockMode::Exclusive, &li.addr.to_string()).await;
        img.close().await;
        return r.map_err(|e| rbd_err(&format!("lock break {image}"), e));
    }
    blocklist(client, &li.addr).await?;
    cls_lock::break_lock(io, &header, RBD_LOCK_NAME, &id.cookie, id.entity)
        .await
        .map_err(|e| store_err(&format!("lock break {image}"), e))
}

async fn blocklist(client: &Client, addr: &EntityAddr) -> Result<(), CliError> {
    client
        .blocklist_add(addr, Duration::ZERO)
        .await
        .map(drop)
        .map_err(|e| store_err(&format!("blocklist {addr}"), e))
}

async fn snap_ls(io: &IoCtx, image: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let img = open_ro(io, image).await?;
    let info = img.info().await;
    img.close().await;
    let mut snaps = info.map_err(|e| rbd_err(&format!("snap ls {image}"), e))?.snaps;
    snaps.sort_by_key(|s| s.id);
    let protected = |s: &rbd_ops::SnapInfo| {
        !matches!(s.protection, rados_store::cls_rbd_client::ProtectionStatus::Unprotected)
    };
    if json {
        let v: Vec<_> = snaps
            .iter()
            .map(|s| json!({"id": s.id, "name": s.name, "size": s.size, "protected": protected(s).to_string()}))
            .collect();
        writeln!(out, "{}", json!(v))?;
        return Ok(());
    }
    if snaps.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|s| {
            let p = if protected(s) { "yes" } else { "" };
            vec![s.id.to_string(), s.name.clone(), bytes(s.size), p.to_owned()]
        })
        .collect();
    write!(out, "{}", table(&["SNAPID", "NAME", "SIZE", "PROTECTED"], &rows, &[0]))?;
    Ok(())
}

/// A small xorshift generator: random offsets without a dependency, repeatable across runs.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The qemu-like writer of rbd §7: one handle on the automatic policy (its first write acquires
/// the lock; a peer's REQUEST_LOCK makes it release, and its next write takes the lock back),
/// writing continuously. Forwarded ops (snapshot, resize, ...) are run by the handle's watch
/// callbacks while this loop writes; a snapshot pauses the writes, which shows as the longest
/// write latency. A write error ends the run with a failure.
async fn write_bench(io: &IoCtx, wb: &WriteBenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let img = open_rw(io, &wb.image).await?;
    let pattern = match wb.pattern {
        Pattern::Seq => "sequential",
        Pattern::Rand => "random",
    };
    writeln!(
        out,
        "bench  type write io_size {} io_threads 1 duration {} s pattern {pattern}",
        wb.io_size, wb.duration
    )?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; wb.io_size as usize];
    let run_for = Duration::from_secs_f64(wb.duration);
    let start = Instant::now();
    let mut next_tick = Duration::from_secs(1);
    let (mut ops, mut ops_at_tick, mut off) = (0u64, 0u64, 0u64);
    let mut max_lat = Duration::ZERO;
    let mut failure = None;
    let mut announced = false;
    writeln!(out, "  SEC       OPS   OPS/SEC   BYTES/SEC")?;
    while start.elapsed() < run_for {
        let size = img.size();
        let blocks = size / wb.io_size;
        if blocks == 0 {
            failure = Some(CliError::Usage(format!("image {} is smaller than one write", wb.image)));
            break;
        }
        let block = match wb.pattern {
            Pattern::Seq => {
                let b = off % blocks;
                off = b + 1;
                b
            }
            Pattern::Rand => rng.next() % blocks,
        };
        // Each write carries its op number, so a dump of the image shows progress.
        buf[..8].copy_from_slice(&ops.to_le_bytes());
        let t = Instant::now();
        match img.write_at(block * wb.io_size, &buf).await {
            Ok(_) => {}
            Err(e) => {
                failure = Some(rbd_err(&format!("write {} at block {block}", wb.image), e));
                break;
            }
        }
        let lat = t.elapsed();
        max_lat = max_lat.max(lat);
        ops += 1;
        if !announced {
            announced = true;
            let cookie = img.watcher().map(|w| w.watch_handle()).unwrap_or_default();
            writeln!(
                out,
                "lock acquired: client.{} cookie \"auto {cookie}\" after {:.1} ms",
                io.client_gid(),
                lat.as_secs_f64() * 1e3
            )?;
        }
        let el = start.elapsed();
        if el >= next_tick {
            let n = ops - ops_at_tick;
            writeln!(
                out,
                "{:5} {:9} {:9.2} {:>11}/s",
                next_tick.as_secs(),
                ops,
                n as f64,
                bytes(n * wb.io_size)
            )?;
            ops_at_tick = ops;
            next_tick += Duration::from_secs(1);
        }
    }
    let el = start.elapsed().as_secs_f64();
    let owner = img.is_exclusive_lock_owner().await.unwrap_or(false);
    let snaps = img.snaps().len();
    let size = img.size();
    img.close().await;
    writeln!(
        out,
        "elapsed: {el:.1}   ops: {ops}   ops/sec: {:.2}   bytes/sec: {}/s",
        ops as f64 / el.max(1e-9),
        bytes(((ops * wb.io_size) as f64 / el.max(1e-9)) as u64)
    )?;
    writeln!(out, "max write latency: {:.1} ms", max_lat.as_secs_f64() * 1e3)?;
    writeln!(out, "lock owner at end: {}", if owner { "yes" } else { "no" })?;
    writeln!(out, "image at end: size {} snapshots {snaps}", bytes(size))?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
