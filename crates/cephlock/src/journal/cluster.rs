//! The journal device on a real cluster (feature `ceph`): mds-journal's `RadosDevice` over an
//! I/O context of rados-store's librados backend.
//!
//! The MDS keeps its journal in the file system's metadata pool, in the default namespace; the
//! tool therefore opens the pool without a namespace, so the objects it reads and writes are the
//! ones a real MDS and `cephfs-journal-tool` use. The connection lives as long as the device
//! (the I/O context holds it) and closes when the command drops the device.

use std::path::Path;
use std::sync::Arc;

use mds_journal::{JournalDevice, RadosDevice};
use rados_store::librados::{LibradosClient, LibradosConfig};

use crate::CliError;

/// The device on a pool, and what the rest of the command reports about it.
pub(super) struct ClusterDevice {
    /// The device.
    pub(super) dev: Arc<dyn JournalDevice>,
    /// The pool's id.
    pub(super) pool_id: i64,
    /// This connection's entity, `client.<gid>`.
    pub(super) entity: String,
    /// This connection's address (what `ceph osd blocklist add` takes).
    pub(super) addr: String,
}

/// Connects with `conf` (as `client.<id>`, default admin) and opens the device on `pool`.
pub(super) async fn open(conf: &Path, pool: &str, id: Option<&str>) -> Result<ClusterDevice, CliError> {
    let mut cfg = LibradosConfig::new(conf);
    if let Some(id) = id {
        cfg = cfg.with_id(id);
    }
    let client = LibradosClient::connect(cfg)
        .await
        .map_err(|e| CliError::Failed(format!("cannot connect to the cluster in {}: {e}", conf.display())))?
        .into_client();
    let io = client.ioctx(pool, "").map_err(|e| CliError::Failed(format!("pool {pool:?}: {e}")))?;
    Ok(ClusterDevice {
        pool_id: io.pool_id(),
        entity: format!("client.{}", io.client_gid()),
        addr: io.addr().to_string(),
        dev: Arc::new(RadosDevice::new(io)),
    })
}
