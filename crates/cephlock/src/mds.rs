//! `cephlock mds`: look inside the MDS ranks of the demo's two-rank cluster while it runs.
//!
//! Ceph's admin socket answers `dump_ops_in_flight`, `session ls`, `dump cache` and `dump inode`
//! for a live MDS, and has no command that lists lock state. cephlock's ranks live in one
//! process, so this command runs the demo's MDS story (deterministically) up to a chosen phase,
//! optionally stopping that phase before its journal entries are safe, and then prints the
//! same views, plus `dump-locks`, for one rank or every rank.

use std::io::Write;

use clap::{Args, Subcommand};
use mds_locker::{Ino, LockFilter, Locker};
use serde_json::{Value, json};

use crate::CliError;
use crate::demo::mds_story::{self, Stop};

const AFTER_HELP: &str = "\
WHAT IT SHOWS
  The ranks of `cephlock demo`'s MDS story (2 ranks, /proj pinned to rank 1, clients alice,
  bob and carol), stopped after --phase N (1-6; default: the end). With --hold the request of
  phase N is stopped right after its early reply, before its journal entry is safe: its
  xlocks (XLOCKDONE) and wrlocks are still held, as they are in a live MDS at that moment.

EXAMPLES
  cephlock mds dump-locks --phase 5 --hold      the rename's dentry xlocks, mid-flight
  cephlock mds ops --phase 5 --hold --rank 1    the rename in dump_ops_in_flight
  cephlock mds sessions                         who has a session on which rank
  cephlock mds inode 0x20000000000 --json       one inode, with its locks and caps
  cephlock mds cache --rank 0 --json            everything rank 0 has in cache

JSON OUTPUT (--json)
  [{\"rank\": r, \"<view>\": <the Locker's JSON for that view>}] for each rank shown;
  dump-locks: [{\"object\", \"lock\", \"auth\", \"state\", \"stable\", \"rdlocks\": [{\"req\",
  \"count\"}], \"wrlocks\": [...], \"xlocks\": [{\"req\", \"client\", \"done\"}], \"xlock_by_client\",
  \"excl_client\", \"leases\", \"gather_set\", \"waiters\": [{\"req\", \"mask\"}]}]";

/// Arguments of `cephlock mds`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct MdsArgs {
    #[command(subcommand)]
    view: View,
    /// Run the story up to this phase (1-6).
    #[arg(long, global = true)]
    phase: Option<u32>,
    /// Stop the phase before its journal entries are safe.
    #[arg(long, global = true)]
    hold: bool,
    /// Only this rank (default: every rank).
    #[arg(long, global = true)]
    rank: Option<u32>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum View {
    /// Locks that are held, waited on, transitional or not in their initial state.
    DumpLocks {
        /// Every lock of every cached object.
        #[arg(long)]
        all: bool,
    },
    /// Requests in flight (Ceph's dump_ops_in_flight).
    Ops,
    /// Client sessions (Ceph's session ls).
    Sessions,
    /// Every cached inode, dentry and dirfrag (Ceph's dump cache).
    Cache,
    /// One inode (Ceph's dump inode), by number (0x.. or decimal).
    Inode {
        /// Inode number.
        ino: String,
    },
}

pub(crate) fn run(args: &MdsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let stop = match args.phase {
        Some(p) if p == 0 || p > mds_story::PHASES => {
            return Err(CliError::Usage(format!("--phase must be 1..={}, not {p}", mds_story::PHASES)));
        }
        Some(p) => Some(Stop { phase: p, hold: args.hold }),
        None if args.hold => return Err(CliError::Usage("--hold needs --phase".into())),
        None => None,
    };
    let (_story, cluster) =
        mds_story::run_until(stop).map_err(|e| CliError::Failed(format!("mds: the story failed: {e}")))?;
    let ranks: Vec<u32> = match args.rank {
        Some(r) if r as usize >= cluster.len() => {
            return Err(CliError::Usage(format!("no rank {r}: the cluster has {} ranks", cluster.len())));
        }
        Some(r) => vec![r],
        None => (0..cluster.len() as u32).collect(),
    };
    let ino = match &args.view {
        View::Inode { ino } => Some(parse_ino(ino)?),
        _ => None,
    };
    let mut docs = Vec::new();
    for r in ranks {
        let l = cluster.rank(r);
        let (key, v) = view(&args.view, l, ino);
        docs.push((r, key, v));
    }
    if let (Some(ino), true) = (ino, docs.iter().all(|(_, _, v)| v.is_null())) {
        return Err(CliError::Usage(format!("inode {ino} is not in cache on the rank(s) shown")));
    }
    if args.json {
        let arr: Vec<Value> = docs.into_iter().map(|(r, k, v)| json!({ "rank": r, k: v })).collect();
        writeln!(out, "{:#}", Value::Array(arr))?;
        return Ok(());
    }
    for (r, key, v) in docs {
        writeln!(out, "rank {r}: {key}")?;
        match &args.view {
            View::DumpLocks { .. } => locks_table(&v, out)?,
            View::Ops => ops_table(&v, out)?,
            View::Sessions => sessions_table(&v, out)?,
            View::Cache | View::Inode { .. } => writeln!(out, "{v:#}")?,
        }
        writeln!(out)?;
    }
    Ok(())
}

fn view(v: &View, l: &Locker, ino: Option<Ino>) -> (&'static str, Value) {
    match v {
        View::DumpLocks { all } => {
            ("dump_locks", l.dump_locks(if *all { LockFilter::All } else { LockFilter::Active }))
        }
        View::Ops => ("dump_ops_in_flight", l.dump_ops_in_flight()),
        View::Sessions => ("session_ls", l.session_ls()),
        View::Cache => ("dump_cache", l.dump_cache()),
        View::Inode { .. } => ("dump_inode", ino.and_then(|i| l.dump_inode(i)).unwrap_or(Value::Null)),
    }
}

fn parse_ino(s: &str) -> Result<Ino, CliError> {
    let v = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.map(Ino).map_err(|_| CliError::Usage(format!("not an inode number: {s:?} (use 0x.. or decimal)")))
}

fn holders(v: &Value, key: &str) -> String {
    let list: Vec<String> = v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| match key {
                    "xlocks" => format!(
                        "req{}{}",
                        h["req"],
                        if h["done"].as_bool() == Some(true) { "(done)" } else { "" }
                    ),
                    "waiters" => format!("req{}", h["req"]),
                    _ => format!("req{}", h["req"]),
                })
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() { "-".into() } else { list.join(",") }
}

fn locks_table(v: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return writeln!(out, "  (no active locks)");
    }
    writeln!(
        out,
        "  {:<28} {:<9} {:<5} {:<14} {:<10} {:<10} {:<14} {:<10} gather",
        "object", "lock", "auth", "state", "rd", "wr", "x", "waiters"
    )?;
    for l in rows {
        let gather: Vec<String> =
            l["gather_set"].as_array().map_or_else(Vec::new, |a| a.iter().map(|r| r.to_string()).collect());
        writeln!(
            out,
            "  {:<28} {:<9} {:<5} {:<14} {:<10} {:<10} {:<14} {:<10} {}",
            l["object"].as_str().unwrap_or("?"),
            l["lock"].as_str().unwrap_or("?"),
            if l["auth"].as_bool() == Some(true) { "auth" } else { "rep" },
            l["state"].as_str().unwrap_or("?"),
            holders(&l, "rdlocks"),
            holders(&l, "wrlocks"),
            holders(&l, "xlocks"),
            holders(&l, "waiters"),
            if gather.is_empty() { "-".to_string() } else { gather.join(",") },
        )?;
    }
    Ok(())
}

fn ops_table(v: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let ops = v["ops"].as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        return writeln!(out, "  (no requests in flight)");
    }
    for o in ops {
        writeln!(out, "  req {} client {} {}", o["reqid"], o["client"], o["phase"].as_str().unwrap_or("?"))?;
        for h in o["held"].as_array().cloned().unwrap_or_default() {
            writeln!(out, "    holds {} (flags {})", h["lock"].as_str().unwrap_or("?"), h["flags"])?;
        }
        if let Some(w) = o["waiting_on"].as_str() {
            writeln!(out, "    waiting on {w}")?;
        }
        let events: Vec<&str> = o["events"]
            .as_array()
            .map_or_else(Vec::new, |a| a.iter().filter_map(|e| e["event"].as_str()).collect());
        writeln!(out, "    events: {}", events.join(" | "))?;
    }
    Ok(())
}

fn sessions_table(v: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return writeln!(out, "  (no sessions)");
    }
    writeln!(out, "  {:<8} {:>8} {:>12}", "client", "caps", "requests")?;
    for s in rows {
        writeln!(
            out,
            "  {:<8} {:>8} {:>12}",
            s["client"].to_string(),
            s["num_caps"].to_string(),
            s["num_requests"].to_string()
        )?;
    }
    Ok(())
}
