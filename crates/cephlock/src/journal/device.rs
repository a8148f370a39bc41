//! Which device a `cephlock journal` command works on: a local directory (`--dir`) or a pool of a
//! real cluster (`--conf FILE --pool P`).
//!
//! The choice is made once, here, so that every subcommand runs the same library code on either
//! device; the rest of the module only sees an `Arc<dyn JournalDevice>` and a name for messages.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mds_journal::{DirDevice, FileLayout, JournalDevice, JournalError};

use super::JournalArgs;
use crate::CliError;

/// Where the journal objects are, as the user named them.
#[derive(Debug)]
pub(super) enum Target<'a> {
    /// A local directory of object files.
    Dir(&'a Path),
    /// A pool of the cluster described by a ceph.conf.
    Cluster {
        /// The ceph.conf.
        conf: &'a Path,
        /// The pool (the file system's metadata pool).
        pool: &'a str,
        /// The client id to authenticate as (`client.<id>`), default admin.
        id: Option<&'a str>,
    },
}

impl<'a> Target<'a> {
    /// Exactly one of `--dir` and `--conf` picks the device; `--pool` and `--id` only make
    /// sense with `--conf`, and `--conf` needs `--pool` (no default: the tool rewrites journals,
    /// and guessing the pool could rewrite the wrong file system's).
    pub(super) fn from_args(args: &'a JournalArgs) -> Result<Target<'a>, CliError> {
        match (&args.dir, &args.conf) {
            (Some(_), Some(_)) => Err(CliError::Usage(
                "journal: give either --dir DIR or --conf FILE --pool P, not both".into(),
            )),
            (None, None) => Err(CliError::Usage(
                "journal: --dir DIR (a local journal) or --conf FILE --pool P (a cluster's metadata pool) \
                 is required"
                    .into(),
            )),
            (Some(dir), None) => {
                if args.pool.is_some() || args.id.is_some() {
                    return Err(CliError::Usage("journal: --pool and --id go with --conf, not --dir".into()));
                }
                Ok(Target::Dir(dir))
            }
            (None, Some(conf)) => {
                let pool = args.pool.as_deref().ok_or_else(|| {
                    CliError::Usage(
                        "journal: --conf needs --pool P (the metadata pool holding the journal)".into(),
                    )
                })?;
                Ok(Target::Cluster { conf, pool, id: args.id.as_deref() })
            }
        }
    }

    /// Whether the device is a cluster's pool (its I/O waits on librados from blocking threads,
    /// so the command needs a multi-threaded runtime).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster { .. })
    }
}

/// Where the objects are, for messages and reports.
#[derive(Debug, Clone)]
pub(super) enum Place {
    /// A directory.
    Dir(PathBuf),
    /// A pool of a cluster (only opened in a build with the `ceph` feature).
    #[cfg_attr(not(feature = "ceph"), allow(dead_code))]
    Pool(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Dir(d) => write!(f, "{}", d.display()),
            Place::Pool(p) => write!(f, "pool {p}"),
        }
    }
}

/// An opened device.
#[derive(Debug)]
pub(super) struct Opened {
    /// The device.
    pub(super) dev: Arc<dyn JournalDevice>,
    /// Where its objects are.
    pub(super) place: Place,
    /// The pool id a journal created here records in its layout, as Ceph records the metadata
    /// pool in the journal header (−1 for a directory, which is in no pool).
    pub(super) pool_id: i64,
    /// On a cluster: who writes, as `client.<gid>` and its address. A writer killed mid-flush
    /// may have writes still in flight; fencing that address (`ceph osd blocklist add`) before
    /// another client replays is what keeps them from landing afterwards, as the monitors
    /// blocklist a failed MDS before a standby replays its journal.
    pub(super) client: Option<(String, String)>,
}

impl Opened {
    /// The layout a journal created on this device gets: `base` placed in this device's pool.
    pub(super) fn layout(&self, base: FileLayout) -> FileLayout {
        FileLayout { pool_id: self.pool_id, ..base }
    }
}

/// Opens the device. A directory must exist unless `create` (only `write-test` creates one: a
/// typo in `--dir` for `inspect` should say so, not inspect a fresh empty directory); a pool must
/// always exist, as the tool never creates pools.
pub(super) async fn open(target: &Target<'_>, create: bool) -> Result<Opened, CliError> {
    match target {
        Target::Dir(dir) => {
            if !create && !dir.is_dir() {
                return Err(CliError::Usage(format!("journal directory {} does not exist", dir.display())));
            }
            let dev = DirDevice::open(dir).map_err(JournalError::from)?;
            Ok(Opened { dev: Arc::new(dev), place: Place::Dir(dir.to_path_buf()), pool_id: -1, client: None })
        }
        Target::Cluster { conf, pool, id } => open_cluster(conf, pool, *id).await,
    }
}

#[cfg(feature = "ceph")]
async fn open_cluster(conf: &Path, pool: &str, id: Option<&str>) -> Result<Opened, CliError> {
    let c = super::cluster::open(conf, pool, id).await?;
    Ok(Opened {
        dev: c.dev,
        place: Place::Pool(pool.to_owned()),
        pool_id: c.pool_id,
        client: Some((c.entity, c.addr)),
    })
}

#[cfg(not(feature = "ceph"))]
async fn open_cluster(_conf: &Path, _pool: &str, _id: Option<&str>) -> Result<Opened, CliError> {
    Err(CliError::Usage(
        "cephlock was built without the `ceph` feature, so `cephlock journal --conf` cannot reach a cluster; \
         rebuild with `cargo build -p cephlock --features ceph` (needs librados-dev, libradospp-dev, g++)"
            .into(),
    ))
}
