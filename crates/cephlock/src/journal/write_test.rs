//! `cephlock journal write-test`: the process the crash tests kill.
//!
//! It appends sequence-numbered EUpdates from several concurrent submitters and, as soon as
//! each is durable (`wait_safe` returned), appends its sequence number to an ack log. Whatever
//! moment the process is killed at, every number in the ack log must be found intact in the
//! journal afterwards: that is the promise a safe reply makes to an MDS client (mds §6.2).
//!
//! The ack log is written with one `write` per line on a file opened for append, without
//! fsync: it only has to record what was acknowledged before the process died, and a killed
//! process loses nothing it already handed to the kernel. (In a directory the journal itself
//! does fdatasync; losing power, as opposed to the process, is what the library's fault-device
//! tests cover. On a cluster an acknowledged RADOS write is already durable on the OSDs.)
//! The write happens on the submitter's task; a few-byte append to the page cache is short
//! enough not to starve the runtime.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use mds_journal::{FileLayout, JournalConfig, MdLog, TornTail};
use serde::Serialize;

use super::device::{Opened, Place};
use super::{Format, FormatArg, json, sized_update};
use crate::CliError;

/// Arguments of `journal write-test`.
#[derive(Args, Debug)]
pub(crate) struct WriteTestArgs {
    /// How many events to append (sequence numbers FIRST_SEQ .. FIRST_SEQ + N).
    #[arg(long, value_name = "N")]
    events: u64,
    /// Append each event's sequence number to FILE, one per line, once it is durable.
    #[arg(long, value_name = "FILE")]
    ack_log: PathBuf,
    /// Concurrent submitters (tasks), each with one event in flight.
    #[arg(long, value_name = "K", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    submitters: u64,
    /// Approximate encoded size of each event, in bytes (at least about 300).
    #[arg(long, value_name = "B", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(0..=16 << 20))]
    event_bytes: u64,
    /// The first sequence number, so a second run on the same journal can use fresh ones.
    #[arg(long, value_name = "S", default_value_t = 0)]
    first_seq: u64,
    /// Object size of a journal this command creates (an existing journal keeps its layout).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u32).range(4096..))]
    object_size: u32,
    #[command(flatten)]
    format: FormatArg,
}

/// What `write-test` prints at the end (`--format json`).
#[derive(Debug, Serialize)]
struct WriteTestReport {
    rank: u32,
    /// The directory, for the local device.
    dir: Option<String>,
    /// The pool, for a cluster.
    pool: Option<String>,
    first_seq: u64,
    events: u64,
    submitters: u64,
    event_bytes: u64,
    seconds: f64,
    events_per_s: f64,
    /// Events replayed when the journal was opened (0 for a new journal).
    replayed_events: u64,
    /// A torn tail left by an earlier, killed run and truncated at open.
    torn_tail: Option<TornTail>,
    write_pos: u64,
}

pub(super) fn run(
    rt: &tokio::runtime::Runtime,
    opened: &Opened,
    rank: u32,
    args: &WriteTestArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let end = args.first_seq.checked_add(args.events).ok_or_else(|| {
        CliError::Usage(format!("--first-seq {} + --events {} overflows", args.first_seq, args.events))
    })?;
    let ack = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.ack_log)
        .map_err(|e| CliError::file(&args.ack_log, e))?;
    let ack = Arc::new(ack);
    let dev = opened.dev.clone();
    let cfg = JournalConfig {
        layout: opened.layout(FileLayout::simple(args.object_size)),
        ..JournalConfig::for_rank(rank)
    };
    if let Some((entity, addr)) = &opened.client {
        // Before the first write, so whoever kills this process can fence its in-flight writes.
        eprintln!("write-test: writing as {entity} addr {addr}");
    }
    let (dir, pool) = match &opened.place {
        Place::Dir(d) => (Some(d.display().to_string()), None),
        Place::Pool(p) => (None, Some(p.clone())),
    };
    let event_bytes = usize::try_from(args.event_bytes).unwrap_or(usize::MAX);
    let report = rt.block_on(async {
        let (log, replay) = MdLog::open_or_create(dev, cfg).await?;
        let next = Arc::new(AtomicU64::new(args.first_seq));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for submitter in 0..args.submitters {
            let (log, next, ack) = (log.clone(), next.clone(), ack.clone());
            let ack_path = args.ack_log.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= end {
                        return Ok::<(), CliError>(());
                    }
                    let pos = log.submit(sized_update(seq, submitter, event_bytes))?;
                    log.wait_safe(&pos).await?;
                    record_ack(&ack, &ack_path, seq)?;
                }
            }));
        }
        let mut first_err = None;
        for t in tasks {
            let res =
                t.await.unwrap_or_else(|e| Err(CliError::Failed(format!("submitter task failed: {e}"))));
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            log.abandon().await;
            return Err(e);
        }
        let seconds = t0.elapsed().as_secs_f64();
        log.close().await?;
        Ok::<_, CliError>(WriteTestReport {
            rank,
            dir,
            pool,
            first_seq: args.first_seq,
            events: args.events,
            submitters: args.submitters,
            event_bytes: args.event_bytes,
            seconds,
            events_per_s: if seconds > 0.0 { args.events as f64 / seconds } else { 0.0 },
            replayed_events: replay.events.len() as u64,
            torn_tail: replay.torn_tail,
            write_pos: log.status().write_pos,
        })
    })?;
    match args.format.format {
        Format::Json => json(out, &report)?,
        Format::Text => {
            if let Some(t) = &report.torn_tail {
                writeln!(out, "truncated a torn tail at {:#x} ({}) left by an earlier run", t.at, t.reason)?;
            }
            writeln!(
                out,
                "write-test: {} events (seq {}..{}) durable in {:.3} s: {:.0} events/s, {} submitters, \
                 ~{} B each; write_pos {:#x}",
                report.events,
                report.first_seq,
                end,
                report.seconds,
                report.events_per_s,
                report.submitters,
                report.event_bytes,
                report.write_pos
            )?;
        }
    }
    Ok(())
}

/// One `write` per line, so a kill can never leave half a number that parses as another one.
fn record_ack(ack: &File, path: &Path, seq: u64) -> Result<(), CliError> {
    let line = format!("{seq}\n");
    let mut f = ack;
    f.write_all(line.as_bytes()).and_then(|()| f.flush()).map_err(|e| CliError::file(path, e))
}
