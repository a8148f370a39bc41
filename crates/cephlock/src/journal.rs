//! `cephlock journal`: look at, repair and stress an MDS journal, modelled on
//! `cephfs-journal-tool` (mds §6.4–§6.6).
//!
//! The journal lives either in a local directory (`--dir`, one file per object) or, as Ceph keeps
//! it, in a pool of a real cluster (`--conf FILE --pool P`, the file system's metadata pool; needs
//! the `ceph` cargo feature). Both hold the same objects under the same names (`<ino hex>.<8
//! hex>`, rank N's journal being inode 0x200 + N, its header `<ino>.00000000`), so every command
//! works the same on either: the device is the only difference.
//!
//! Everything here is a thin layer over `mds_journal::tool`; the library does the reading and
//! the checking, this module parses arguments, picks the output format and turns failures into
//! one line. The tool works on a journal nobody has open: running it while an MDS (or a
//! `write-test`) writes the same rank gives undefined results, as with Ceph's tool.
//!
//! Exit status follows `cephfs-journal-tool`: a command that could read the journal exits 0 and
//! reports what it found, damage included (`inspect` prints "torn tail" or "DAMAGED" and still
//! exits 0); it exits non-zero only when it could not do its job (no such directory or pool, no
//! journal header, an unusable layout, a device error, bad arguments). Scripts decide on damage
//! from `integrity.status` in the JSON output.

#[cfg(feature = "ceph")]
mod cluster;
mod device;
mod write_test;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use mds_journal::metablob::{dir_state, full_state};
use mds_journal::tool::{self, EventFilter, EventListing, Inspection, Integrity};
use mds_journal::{
    CEPH_NOSNAP, DirFrag, EUpdate, EventType, FileLayout, FullDentry, HEADER_FIELDS, Inode, InodeNo,
    JournalHeader, LogEvent, MetaBlob, MetaReqId,
};
use rados_store::{EntityName, UTime};
use serde::Serialize;

use self::device::{Opened, Place, Target};
use crate::CliError;

pub(crate) use write_test::WriteTestArgs;

/// The JSON shapes, printed by `cephlock journal --help` so that the contract travels with the
/// binary. Keep in step with the README section and `tests/journal_cli.rs`.
const JSON_SHAPES: &str = "\
EXIT STATUS
  0 when the journal could be read, even if it is damaged (as cephfs-journal-tool): read
  integrity.status. Non-zero, with one line on stderr, when it could not (missing directory,
  pool or header, unusable layout, device error, unreachable cluster, bad arguments).

DEVICES
  --dir DIR: one file per object in DIR. --conf FILE --pool P (build with the `ceph` feature):
  the objects in pool P (default namespace) of the cluster FILE describes, where an MDS keeps
  its journal. Either way rank N's journal is inode 0x200+N in objects <ino hex>.<8 hex>, the
  header in <ino hex>.00000000; a journal a command creates records the pool's id in its
  layout (-1 for a directory). On a cluster write-test first prints, on stderr,
  \"write-test: writing as client.<gid> addr <addr>\": after killing it, fence <addr> with
  `ceph osd blocklist add` before replaying, as the monitors fence a failed MDS.

JSON OUTPUT (--format json; positions are stream offsets as plain integers)
  header:     {\"magic\": str, \"trimmed_pos\": u64, \"expire_pos\": u64, \"unused\": u64,
               \"write_pos\": u64, \"layout\": {\"stripe_unit\": u32, \"stripe_count\": u32,
               \"object_size\": u32, \"pool_id\": i64}, \"stream_format\": u8}
  integrity:  {\"status\": \"ok\"} | {\"status\": \"torn_tail\", \"at\": u64, \"reason\": str}
              | {\"status\": \"corrupt\", \"at\": u64, \"reason\": str}
  inspect:    {\"rank\": u32, \"header\": header, \"header_problem\": str|null, \"integrity\": integrity,
               \"entries\": u64, \"first_entry\": u64|null, \"last_entry\": u64|null,
               \"valid_end\": u64, \"device_end\": u64, \"event_counts\": {\"EUpdate\": u64, ...}}
  header get: header; with FIELD: {\"field\": str, \"value\": str} (value as in text output)
  header set: header (after the change)
  event get json: {\"events\": [{\"offset\": u64, \"len\": u64, \"type_id\": u32,
               \"type_name\": \"EUpdate\", \"summary\": str, \"event\": {\"type\": \"Update\",
               \"event\": {...}}|null, \"error\": str|null}], \"integrity\": integrity}
  export, import: {\"rank\": u32 (the rank in the file), \"header\": header, \"start\": u64,
               \"end\": u64}
  reset:      header (after the reset)
  truncate:   header (after the cut)
  write-test: {\"rank\": u32, \"dir\": str|null, \"pool\": str|null (one of the two),
               \"first_seq\": u64, \"events\": u64, \"submitters\": u64, \"event_bytes\": u64,
               \"seconds\": f64, \"events_per_s\": f64, \"replayed_events\": u64,
               \"torn_tail\": {\"at\": u64, \"end\": u64, \"reason\": str}|null, \"write_pos\": u64}
  write-test events are EUpdates with op_type \"write_test\" whose reqid.tid is the sequence
  number (reqid.name client.<4100 + submitter>); the inode journaled is 0x10000000000 + seq
  (under metablob.dirs[0][1].full[0] for events of 758 bytes or more, as a create of
  wt.<seq, 20 digits>; under metablob.roots[0] below that).";

/// `cephlock journal (--dir DIR | --conf FILE --pool P) [--rank N] <command>`.
#[derive(Args, Debug)]
#[command(after_long_help = JSON_SHAPES)]
pub(crate) struct JournalArgs {
    /// The directory holding the journal objects (the local-directory device). This or --conf.
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A cluster's ceph.conf: use the journal objects in --pool of that cluster instead of a
    /// directory (needs a build with the `ceph` feature). This or --dir.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    conf: Option<PathBuf>,
    /// With --conf: the pool holding the journal (the file system's metadata pool).
    #[arg(long, short = 'p', global = true, value_name = "POOL")]
    pool: Option<String>,
    /// With --conf: the client id to authenticate as (`client.<ID>`; default admin).
    #[arg(long, global = true, value_name = "ID")]
    id: Option<String>,
    /// The MDS rank whose journal (inode 0x200 + rank) to use.
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    rank: u32,
    #[command(subcommand)]
    command: JournalCommand,
}

/// The `journal` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum JournalCommand {
    /// Check every entry from expire_pos to the end: ok, torn tail at X, or corrupt at Y.
    Inspect(FormatArg),
    /// Show or change the journal header (object <ino>.00000000).
    #[command(subcommand)]
    Header(HeaderCommand),
    /// List, dump or count events.
    #[command(subcommand)]
    Event(EventCommand),
    /// Write the header and raw stream (torn tail included) to FILE.
    Export(ExportArgs),
    /// Replace the rank's journal with an export read from FILE.
    Import(ImportArgs),
    /// Start an empty journal past all old data, with an EResetJournal first (destructive).
    Reset(FormatArg),
    /// Cut the stream at OFFSET and set write_pos there: the repair for a corrupt entry.
    Truncate(TruncateArgs),
    /// Append sequence-numbered events and record each one in an ack log once it is durable.
    WriteTest(WriteTestArgs),
}

/// Output formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text.
    Text,
    /// JSON (shapes in `cephlock journal --help`).
    Json,
}

/// The `--format` option shared by most subcommands.
#[derive(Args, Debug)]
pub(crate) struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `journal header ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum HeaderCommand {
    /// Print the header, or one field of it.
    Get(HeaderGetArgs),
    /// Set one field (decimal or 0x hex); no invariant checks, as this is a repair tool.
    Set(HeaderSetArgs),
}

/// Arguments of `journal header get`.
#[derive(Args, Debug)]
pub(crate) struct HeaderGetArgs {
    /// Print only this field (magic, trimmed_pos, expire_pos, unused, write_pos, stream_format,
    /// layout.stripe_unit, layout.stripe_count, layout.object_size, layout.pool_id).
    field: Option<String>,
    #[command(flatten)]
    format: FormatArg,
}

/// Arguments of `journal header set`.
#[derive(Args, Debug)]
pub(crate) struct HeaderSetArgs {
    /// The field (see `header get --help`).
    field: String,
    /// Its new value.
    value: String,
    #[command(flatten)]
    format: FormatArg,
}

/// `journal event ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum EventCommand {
    /// Walk the events from expire_pos (or the range start) in log order.
    Get(EventGetArgs),
}

/// How `event get` prints what it found.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EventOutput {
    /// One line per event: offset, type, length, summary.
    List,
    /// Every event decoded, as JSON (shape in `cephlock journal --help`).
    Json,
    /// Counts per event type.
    Summary,
}

/// Arguments of `journal event get`.
#[derive(Args, Debug)]
pub(crate) struct EventGetArgs {
    /// Only events of this type (EUpdate, update, or the numeric id 20...).
    #[arg(long = "type", value_name = "T", value_parser = parse_event_type)]
    event_type: Option<EventType>,
    /// Only entries starting at an offset in A..B (half open; either end may be omitted;
    /// decimal or 0x hex).
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    range: Option<Range<u64>>,
    /// What to print.
    #[arg(value_enum)]
    output: EventOutput,
}

/// Arguments of `journal export`.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The file to write (replaced if it exists).
    file: PathBuf,
    #[command(flatten)]
    format: FormatArg,
}

/// Arguments of `journal import`.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// A file written by `journal export`.
    file: PathBuf,
    #[command(flatten)]
    format: FormatArg,
}

/// Arguments of `journal truncate`.
#[derive(Args, Debug)]
pub(crate) struct TruncateArgs {
    /// The stream offset to cut at (decimal or 0x hex); not before expire_pos.
    #[arg(value_parser = parse_u64)]
    offset: u64,
    #[command(flatten)]
    format: FormatArg,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not a number: {e}"))
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("{s:?} is not a range A..B"))?;
    let start = if a.is_empty() { 0 } else { parse_u64(a)? };
    let end = if b.is_empty() { u64::MAX } else { parse_u64(b)? };
    if end < start {
        return Err(format!("range {s:?} ends before it starts"));
    }
    Ok(start..end)
}

fn parse_event_type(s: &str) -> Result<EventType, String> {
    EventType::parse(s).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown event type {s:?} (expected one of: {})", known.join(", "))
    })
}

/// A current-thread runtime: the tool commands are sequential, and the device does its file
/// I/O on tokio's blocking pool anyway.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn run(args: &JournalArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let target = Target::from_args(args)?;
    let rank = args.rank;
    let write_test = matches!(args.command, JournalCommand::WriteTest(_));
    // write-test's submitters run in parallel; librados completions are awaited on blocking
    // threads, and a lookup of a pool name may use `block_in_place`, which needs workers.
    let rt = if write_test || target.is_cluster() { multi_thread_runtime()? } else { runtime()? };
    let opened = rt.block_on(device::open(&target, write_test))?;
    let result = run_on(&rt, &opened, rank, &args.command, out);
    // The device holds the cluster connection, whose shutdown blocks for a moment: let it
    // happen here, after the command, rather than inside a runtime worker.
    drop(opened);
    result
}

/// A runtime with two workers, for commands that overlap device I/O.
fn multi_thread_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

fn run_on(
    rt: &tokio::runtime::Runtime,
    opened: &Opened,
    rank: u32,
    command: &JournalCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if let JournalCommand::WriteTest(wt) = command {
        return write_test::run(rt, opened, rank, wt, out);
    }
    let dev = &opened.dev;
    let dev_ref = dev.as_ref();
    match command {
        JournalCommand::Inspect(f) => {
            let insp = rt.block_on(tool::inspect(dev_ref, rank))?;
            match f.format {
                Format::Json => json(out, &insp)?,
                Format::Text => inspect_text(out, &opened.place, &insp)?,
            }
        }
        JournalCommand::Header(HeaderCommand::Get(a)) => {
            let h = rt.block_on(tool::read_header(dev_ref, rank))?;
            match (&a.field, a.format.format) {
                (Some(field), Format::Json) => {
                    json(out, &FieldValue { field: field.clone(), value: h.get_field(field)? })?
                }
                (Some(field), Format::Text) => writeln!(out, "{}", h.get_field(field)?)?,
                (None, Format::Json) => json(out, &h)?,
                (None, Format::Text) => header_text(out, &h)?,
            }
        }
        JournalCommand::Header(HeaderCommand::Set(a)) => {
            let h = rt.block_on(tool::header_set(dev_ref, rank, &a.field, &a.value))?;
            match a.format.format {
                Format::Json => json(out, &h)?,
                Format::Text => {
                    writeln!(out, "{} set to {}", a.field, h.get_field(&a.field)?)?;
                    if let Err(problem) = h.validate() {
                        writeln!(out, "note: the header now fails its invariants: {problem}")?;
                    }
                }
            }
        }
        JournalCommand::Event(EventCommand::Get(a)) => {
            let filter = EventFilter { event_type: a.event_type, range: a.range.clone() };
            let listing = rt.block_on(tool::list_events(dev_ref, rank, &filter))?;
            match a.output {
                EventOutput::Json => json(out, &listing)?,
                EventOutput::List => events_list(out, &listing)?,
                EventOutput::Summary => events_summary(out, &listing)?,
            }
        }
        JournalCommand::Export(a) => {
            let file = File::create(&a.file).map_err(|e| CliError::file(&a.file, e))?;
            let mut w = BufWriter::new(file);
            let summary = rt.block_on(tool::export(dev_ref, rank, &mut w))?;
            let file = w.into_inner().map_err(|e| CliError::file(&a.file, e.into_error()))?;
            // The export is a backup: make it durable before saying it was written.
            file.sync_all().map_err(|e| CliError::file(&a.file, e))?;
            match a.format.format {
                Format::Json => json(out, &summary)?,
                Format::Text => writeln!(
                    out,
                    "exported rank {} ({:#x}..{:#x}, {} bytes of stream) to {}",
                    rank,
                    summary.start,
                    summary.end,
                    summary.end - summary.start,
                    a.file.display()
                )?,
            }
        }
        JournalCommand::Import(a) => {
            let file = File::open(&a.file).map_err(|e| CliError::file(&a.file, e))?;
            let mut r = BufReader::new(file);
            let summary = rt.block_on(tool::import(dev_ref, rank, &mut r))?;
            match a.format.format {
                Format::Json => json(out, &summary)?,
                Format::Text => writeln!(
                    out,
                    "imported {} (taken from rank {}, {:#x}..{:#x}) into rank {}",
                    a.file.display(),
                    summary.rank,
                    summary.start,
                    summary.end,
                    rank
                )?,
            }
        }
        JournalCommand::Reset(f) => {
            let h = rt.block_on(tool::reset(dev.clone(), rank, opened.layout(FileLayout::default())))?;
            match f.format {
                Format::Json => json(out, &h)?,
                Format::Text => writeln!(
                    out,
                    "journal of rank {rank} reset: new start {:#x}, write_pos {:#x} (an EResetJournal was journaled)",
                    h.expire_pos, h.write_pos
                )?,
            }
        }
        JournalCommand::Truncate(a) => {
            let h = rt.block_on(tool::truncate(dev_ref, rank, a.offset))?;
            match a.format.format {
                Format::Json => json(out, &h)?,
                Format::Text => writeln!(out, "journal of rank {rank} truncated at {:#x}", h.write_pos)?,
            }
        }
        JournalCommand::WriteTest(_) => unreachable!("handled above"),
    }
    Ok(())
}

impl CliError {
    /// A failure reading or writing a file the user named.
    pub(crate) fn file(path: &Path, source: std::io::Error) -> CliError {
        CliError::File { path: path.display().to_string(), source }
    }
}

#[derive(Serialize)]
struct FieldValue {
    field: String,
    value: String,
}

fn json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| CliError::Io(e.into()))?;
    writeln!(out)?;
    Ok(())
}

fn header_text(out: &mut dyn Write, h: &JournalHeader) -> Result<(), CliError> {
    for field in HEADER_FIELDS {
        writeln!(out, "{field}: {}", h.get_field(field)?)?;
    }
    if let Err(problem) = h.validate() {
        writeln!(out, "problem: {problem}")?;
    }
    Ok(())
}

fn inspect_text(out: &mut dyn Write, place: &Place, i: &Inspection) -> Result<(), CliError> {
    let h = &i.header;
    writeln!(out, "journal of rank {} (inode {}) in {}", i.rank, InodeNo::journal_of_rank(i.rank), place)?;
    writeln!(
        out,
        "header: trimmed_pos {:#x}, expire_pos {:#x}, write_pos {:#x}, stream_format {}",
        h.trimmed_pos, h.expire_pos, h.write_pos, h.stream_format
    )?;
    writeln!(
        out,
        "layout: stripe_unit {}, stripe_count {}, object_size {}, pool_id {}",
        h.layout.stripe_unit, h.layout.stripe_count, h.layout.object_size, h.layout.pool_id
    )?;
    if let Some(p) = &i.header_problem {
        writeln!(out, "header problem: {p}")?;
    }
    let span = match (i.first_entry, i.last_entry) {
        (Some(a), Some(b)) => format!(", first at {a:#x}, last at {b:#x}"),
        _ => String::new(),
    };
    writeln!(
        out,
        "entries: {} valid{span}, valid end {:#x}, device end {:#x}",
        i.entries, i.valid_end, i.device_end
    )?;
    let counts: Vec<String> = i.event_counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "events: {}", if counts.is_empty() { "none".into() } else { counts.join(", ") })?;
    match &i.integrity {
        Integrity::Ok => writeln!(out, "Overall journal integrity: OK")?,
        Integrity::TornTail { at, reason } => writeln!(
            out,
            "Overall journal integrity: OK except a torn tail at {at:#x}: {reason} \
             (never acknowledged; the next open truncates it)"
        )?,
        Integrity::Corrupt { at, reason } => writeln!(
            out,
            "Overall journal integrity: DAMAGED: corrupt entry at {at:#x}: {reason} \
             (the journal will not open; see `journal truncate`, `journal reset`)"
        )?,
    }
    Ok(())
}

fn integrity_line(integrity: &Integrity) -> Option<String> {
    match integrity {
        Integrity::Ok => None,
        Integrity::TornTail { at, reason } => Some(format!("walk ended at a torn tail at {at:#x}: {reason}")),
        Integrity::Corrupt { at, reason } => {
            Some(format!("walk ended at a corrupt entry at {at:#x}: {reason}"))
        }
    }
}

fn events_list(out: &mut dyn Write, l: &EventListing) -> Result<(), CliError> {
    for e in &l.events {
        writeln!(out, "{:#x} {:<13} {:>7}  {}", e.offset, e.type_name, e.len, e.summary)?;
    }
    if let Some(line) = integrity_line(&l.integrity) {
        writeln!(out, "# {line}")?;
    }
    Ok(())
}

fn events_summary(out: &mut dyn Write, l: &EventListing) -> Result<(), CliError> {
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    let mut undecodable = 0u64;
    for e in &l.events {
        *counts.entry(e.type_name.as_str()).or_default() += 1;
        undecodable += u64::from(e.error.is_some());
    }
    writeln!(out, "Events by type:")?;
    for (name, n) in &counts {
        writeln!(out, "  {name}: {n}")?;
    }
    writeln!(out, "Total: {}", l.events.len())?;
    writeln!(out, "Undecodable: {undecodable}")?;
    match integrity_line(&l.integrity) {
        Some(line) => writeln!(out, "Integrity: {line}")?,
        None => writeln!(out, "Integrity: OK")?,
    }
    Ok(())
}

/// The first client id write-test and the journal bench use (`client.4100`, `client.4101`...).
pub(crate) const TEST_CLIENT_BASE: u64 = 4100;

/// An EUpdate of about `bytes` encoded bytes that carries `seq` three ways: the request id's
/// tid, the inode number (`0x10000000000 + seq`) and the `client_reqs` entry. That is how
/// `write-test`'s events are mapped back to its ack log. Padding goes into a `user.pad` xattr
/// filled with `seq % 251`, so a reader can check the bytes as well as the crc.
///
/// From [`CREATE_EVENT_MIN`] bytes up the event is shaped like a file create (a dirty dir lump
/// of the root with a new primary dentry `wt.<seq, 20 digits>` and its inode); below that it
/// journals the inode on its own, as an update of a base inode does (the metablob's `roots`),
/// which is as small as an EUpdate carrying a whole inode gets (487 bytes).
/// Requests below that come out at that size.
pub(crate) fn sized_update(seq: u64, submitter: u64, bytes: usize) -> LogEvent {
    let create = bytes >= CREATE_EVENT_MIN;
    let base = build_update(seq, submitter, 0, create).to_payload().len();
    build_update(seq, submitter, bytes.saturating_sub(base), create)
}

/// Test event `seq` carries inode number `TEST_INO_BASE + seq` (wrapping).
pub(crate) const TEST_INO_BASE: u64 = 0x100_0000_0000;
/// The payload size of an unpadded create-shaped test event.
pub(crate) const CREATE_EVENT_MIN: usize = 758;

fn build_update(seq: u64, submitter: u64, pad: usize, create: bool) -> LogEvent {
    let reqid = MetaReqId { name: EntityName::client(TEST_CLIENT_BASE + submitter), tid: seq };
    let mut dentry = FullDentry {
        name: String::new(),
        inode: Inode {
            ino: InodeNo(TEST_INO_BASE.wrapping_add(seq)),
            mode: Inode::S_IFREG | 0o644,
            nlink: 1,
            ..Inode::default()
        },
        xattrs: [("user.pad".to_owned(), vec![(seq % 251) as u8; pad])].into_iter().collect(),
        state: full_state::DIRTY,
        last: CEPH_NOSNAP,
        ..FullDentry::default()
    };
    let mut mb = MetaBlob::default();
    if create {
        dentry.name = format!("wt.{seq:020}");
        dentry.state |= full_state::NEW;
        let lump = mb.add_dir(DirFrag::whole(InodeNo::ROOT), Default::default(), dir_state::DIRTY);
        lump.full.push(dentry);
    } else {
        mb.roots.push(dentry);
    }
    mb.client_reqs.push((reqid, seq));
    LogEvent::Update(EUpdate {
        stamp: UTime { sec: 1, nsec: 0 },
        op_type: "write_test".into(),
        metablob: mb,
        cmapv: 0,
        reqid: Some(reqid),
        had_peers: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload size of the smallest test event.
    const SMALL_EVENT_MIN: usize = 487;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("1..0x10"), Ok(1..16));
        assert_eq!(parse_range("..5"), Ok(0..5));
        assert_eq!(parse_range("0x400000.."), Ok(0x40_0000..u64::MAX));
        assert!(parse_range("5").is_err());
        assert!(parse_range("9..3").is_err());
        assert!(parse_range("x..3").is_err());
    }

    #[test]
    fn sized_updates_hit_the_requested_size_and_carry_the_seq() {
        assert_eq!(build_update(9, 1, 0, true).to_payload().len(), CREATE_EVENT_MIN);
        assert_eq!(build_update(9, 1, 0, false).to_payload().len(), SMALL_EVENT_MIN);
        for bytes in [SMALL_EVENT_MIN, 512, CREATE_EVENT_MIN - 1, CREATE_EVENT_MIN, 4096] {
            for seq in [0, 7, 123_456_789, u64::MAX] {
                let ev = sized_update(seq, 3, bytes);
                assert_eq!(ev.to_payload().len(), bytes, "seq {seq}");
                let LogEvent::Update(u) = &ev else { panic!("not an EUpdate") };
                assert_eq!(u.reqid.map(|r| r.tid), Some(seq));
                assert_eq!(LogEvent::decode_payload(&ev.to_payload()).as_ref(), Ok(&ev));
            }
        }
        // Too small a request gives the smallest event, not an error.
        assert_eq!(sized_update(1, 0, 10).to_payload().len(), SMALL_EVENT_MIN);
    }
}
