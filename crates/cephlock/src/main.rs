//! `cephlock`: the command line for people who want to see, measure and inspect Ceph's locking.
//!
//! Each subcommand is a thin layer over a library crate; this file only parses arguments and
//! turns every failure into one line on stderr and a non-zero exit, so scripts can rely on it.

mod bench;
mod demo;
mod journal;
mod mds;
mod rbd;
mod sim;
mod sm;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

/// Ceph's MDS locker and librbd's exclusive lock, re-implemented in Rust.
#[derive(Parser, Debug)]
#[command(name = "cephlock", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what cephlock does, on the embedded backend.
    Demo(demo::DemoArgs),
    /// Inspect the MDS lock state machines: export the tables, show them, draw them.
    #[command(subcommand)]
    Sm(sm::SmCommand),
    /// Inspect, repair and stress an MDS journal in a local directory or a cluster pool (like cephfs-journal-tool).
    Journal(journal::JournalArgs),
    /// Look inside the demo's two MDS ranks: dump-locks, ops, sessions, cache, inode.
    Mds(mds::MdsArgs),
    /// Measure a workload and print a table or JSON.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// RBD images on a real Ceph cluster, interoperating with librbd (needs the `ceph` feature).
    Rbd(rbd::RbdArgs),
    /// Run the seeded, deterministic simulator; any invariant violation exits non-zero.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

/// A failure the user should see as one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The user named something that does not exist (machine, state, format...).
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed (other than a closed pipe, which is not an error).
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
    /// The journal library refused or failed (no header, corrupt header, device error...).
    #[error("{0}")]
    Journal(#[from] mds_journal::JournalError),
    /// Reading or writing a file the user named failed.
    #[error("{path}: {source}")]
    File {
        /// The file, as given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Anything else that stops a command (the runtime would not start, a task died...).
    #[error("{0}")]
    Failed(String),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report_clap_error(&err),
    };
    // The demo, the simulator and the benches break clients on purpose: the warnings those
    // faults cause are the story, not news. Everywhere else a warning is worth seeing.
    let quiet = matches!(cli.command, Command::Demo(_) | Command::Sim(_) | Command::Bench(_));
    init_tracing(if quiet { "error" } else { "warn" });
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Sm(cmd) => sm::run(&cmd, &mut out),
        Command::Journal(args) => journal::run(&args, &mut out),
        Command::Mds(args) => mds::run(&args, &mut out),
        Command::Bench(cmd) => bench::run(&cmd, &mut out),
        Command::Rbd(args) => rbd::run(&args, &mut out),
        Command::Sim(cmd) => sim::run(&cmd, &mut out),
    };
    let result = result.and_then(|()| out.flush().map_err(CliError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `cephlock sm export | head` closes the pipe early; that is the reader's choice.
        Err(CliError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cephlock: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Library crates report through `tracing`: on stderr (never stdout, which carries the
/// command's output) at `default_level`, or as `RUST_LOG` says, e.g.
/// `RUST_LOG=rbd_exclusive_lock=debug`; colours only on a terminal.
fn init_tracing(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// Prints help and version as clap does, and every other parse error as a single line that
/// still names the accepted values, instead of clap's multi-line block.
fn report_clap_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        _ => {}
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.trim_start_matches("error: ");
    let valid = err.get(ContextKind::ValidValue).and_then(|v| match v {
        ContextValue::Strings(vs) if !vs.is_empty() => Some(vs.join(", ")),
        _ => None,
    });
    match valid {
        Some(valid) => eprintln!("cephlock: error: {first} (expected one of: {valid})"),
        None => eprintln!("cephlock: error: {first}"),
    }
    ExitCode::from(2)
}
