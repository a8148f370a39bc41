//! `cephlock rbd --conf FILE --pool P <cmd>`: RBD images on a real Ceph cluster, through the
//! rbd-ops crate on rados-store's librados backend (issue 11).
//!
//! The point of the command is interoperability: it acts on images made by the real `rbd` tool,
//! takes their exclusive lock in librbd's own format, forwards maintenance ops to a librbd lock
//! owner and answers the ones a librbd client forwards to it (rbd §7). Its output follows the
//! real `rbd` tool's, so an operator can read both side by side.
//!
//! The cluster connection needs the system librados, so the commands only work in a build with
//! the `ceph` cargo feature. Without it the subcommand still parses (so scripts and `--help`
//! behave the same everywhere) but refuses to run, saying how to get a build that can.

#[cfg(feature = "ceph")]
mod bench;
pub(crate) mod format;
#[cfg(feature = "ceph")]
mod live;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::CliError;

/// Options shared by every `rbd` command, as the real tool spells them.
#[derive(Args, Debug)]
pub(crate) struct RbdArgs {
    /// The cluster's ceph.conf (default: `$CEPH_CONF`, then librados' search path).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    conf: Option<PathBuf>,
    /// The pool holding the images.
    #[arg(long, short = 'p', value_name = "POOL", default_value = "rbd", global = true)]
    pool: String,
    /// The client id to authenticate as (`client.<ID>`; default admin).
    #[arg(long, value_name = "ID", global = true)]
    id: Option<String>,
    /// Output format of the listing commands.
    #[arg(long, value_enum, default_value_t = OutputFormat::Plain, global = true)]
    format: OutputFormat,
    #[command(subcommand)]
    cmd: RbdCommand,
}

/// How listings are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// The `rbd` tool's human-readable tables.
    Plain,
    /// One JSON document, in the `rbd` tool's `--format json` shape.
    Json,
}

/// The `rbd` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum RbdCommand {
    /// List the images of the pool.
    Ls,
    /// Show an image's size, layout, features and snapshot count.
    Info {
        /// The image.
        image: String,
    },
    /// Show the clients that have the image open read-write (its header's watchers).
    Status {
        /// The image.
        image: String,
    },
    /// Show or break the image's lock.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Create, list or remove snapshots (forwarded to the lock owner when there is one).
    #[command(subcommand)]
    Snap(SnapCommand),
    /// Change the image size (forwarded to the lock owner when there is one).
    Resize {
        /// The image.
        image: String,
        /// The new size: bytes with a K/M/G/T suffix, or a plain number of MiB (as `rbd`).
        #[arg(long, short = 's', value_parser = format::parse_size)]
        size: u64,
        /// Permit shrinking (data past the new end is lost).
        #[arg(long)]
        allow_shrink: bool,
    },
    /// Write continuously while holding the lock the way qemu does (automatic policy),
    /// answering the maintenance ops other clients forward meanwhile.
    WriteBench(WriteBenchArgs),
    /// Measure lock hand-over latency: two cephlock handles on two connections alternate
    /// 4 KiB writes, or (with --peer-cmd) one cephlock handle and a librbd peer do.
    BenchHandover {
        /// The image (it is written to).
        image: String,
        /// Hand-overs each way.
        #[arg(long, default_value_t = 50)]
        rounds: u32,
        /// A librbd peer speaking the interop suite's line protocol (run with `sh -c`).
        #[arg(long, value_name = "CMD")]
        peer_cmd: Option<String>,
        /// One JSON document instead of indented JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure forwarded snap_create latency both ways against a librbd peer (which owns the
    /// lock first, then we do), or without --peer-cmd between two cephlock handles; the
    /// snapshots are removed afterwards.
    BenchSnapForward {
        /// The image.
        image: String,
        /// Snapshots each way.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
        /// The librbd peer (see bench-handover).
        #[arg(long, value_name = "CMD")]
        peer_cmd: Option<String>,
        /// One JSON document instead of indented JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the notify round trip (watch on one connection, notify2 from another) through
    /// cephlock's librados backend.
    BenchNotify {
        /// Notifies.
        #[arg(long, default_value_t = 500)]
        rounds: u32,
        /// One JSON document instead of indented JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `rbd lock ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum LockCommand {
    /// List the image's lockers (locker, cookie, address).
    Ls {
        /// The image.
        image: String,
    },
    /// Break a locker's lock and blocklist it (as `rbd lock rm`).
    Break {
        /// The image.
        image: String,
        /// The locker: `client.<gid>`, its address, or its lock cookie (`auto <handle>`).
        locker: String,
    },
}

/// `rbd snap ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum SnapCommand {
    /// Create a snapshot.
    Create {
        /// `IMAGE@SNAP`.
        #[arg(value_parser = format::parse_image_snap)]
        spec: (String, String),
    },
    /// List the image's snapshots.
    Ls {
        /// The image.
        image: String,
    },
    /// Remove a snapshot.
    Rm {
        /// `IMAGE@SNAP`.
        #[arg(value_parser = format::parse_image_snap)]
        spec: (String, String),
    },
}

/// `rbd write-bench`: the qemu-like writer of rbd §7.
#[derive(Args, Debug)]
pub(crate) struct WriteBenchArgs {
    /// The image.
    image: String,
    /// How long to write, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = format::parse_seconds)]
    duration: f64,
    /// Bytes per write.
    #[arg(long, value_name = "N", default_value = "4K", value_parser = format::parse_io_size)]
    io_size: u64,
    /// Offsets: sequential (wrapping at the image end) or random.
    #[arg(long, value_enum, default_value_t = Pattern::Seq)]
    pattern: Pattern,
}

/// Write offsets of `write-bench`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// One block after the other, wrapping at the end.
    Seq,
    /// Uniformly random blocks (a fixed-seed generator, so runs are repeatable).
    Rand,
}

/// Runs one `rbd` command.
pub(crate) fn run(args: &RbdArgs, out: &mut dyn Write) -> Result<(), CliError> {
    #[cfg(feature = "ceph")]
    {
        live::run(args, out)
    }
    #[cfg(not(feature = "ceph"))]
    {
        let _ = (args, out);
        Err(CliError::Usage(
            "cephlock was built without the `ceph` feature, so `cephlock rbd` cannot reach a cluster; \
             rebuild with `cargo build -p cephlock --features ceph` (needs librados-dev, libradospp-dev, g++)"
                .into(),
        ))
    }
}
