//! The RADOS device: journal objects in a `rados-store` pool, as Ceph keeps them in the
//! metadata pool. An acknowledged RADOS write is durable, so `sync` has nothing to do.

use async_trait::async_trait;
use bytes::Bytes;
use rados_store::IoCtx;

use super::{DeviceResult, JournalDevice, check_extent};
use crate::error::DeviceError;

/// Journal objects in one pool and namespace of a RADOS cluster.
#[derive(Debug, Clone)]
pub struct RadosDevice {
    ioctx: IoCtx,
}

impl RadosDevice {
    /// Uses the pool and namespace of `ioctx`.
    pub fn new(ioctx: IoCtx) -> Self {
        RadosDevice { ioctx }
    }

    /// The I/O context.
    pub fn ioctx(&self) -> &IoCtx {
        &self.ioctx
    }
}

#[async_trait]
impl JournalDevice for RadosDevice {
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()> {
        check_extent(object, offset, data.len() as u64)?;
        self.ioctx
            .write(object, offset, &data)
            .await
            .map_err(|e| DeviceError::from_rados("write", object, &e))
    }

    async fn sync(&self, _objects: &[String]) -> DeviceResult<()> {
        Ok(())
    }

    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()> {
        self.ioctx
            .write_full(object, &data)
            .await
            .map_err(|e| DeviceError::from_rados("write_full", object, &e))
    }

    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>> {
        check_extent(object, offset, len)?;
        if len == 0 {
            // librados reads "to the end" for a zero length; ask stat instead.
            return Ok(self.stat(object).await?.map(|_| Vec::new()));
        }
        match self.ioctx.read(object, offset, len).await {
            Ok(d) => Ok(Some(d)),
            Err(rados_store::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(DeviceError::from_rados("read", object, &e)),
        }
    }

    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>> {
        match self.ioctx.stat(object).await {
            Ok(s) => Ok(Some(s.size)),
            Err(rados_store::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(DeviceError::from_rados("stat", object, &e)),
        }
    }

    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()> {
        check_extent(object, size, 0)?;
        self.ioctx.truncate(object, size).await.map_err(|e| DeviceError::from_rados("truncate", object, &e))
    }

    async fn remove(&self, object: &str) -> DeviceResult<bool> {
        match self.ioctx.remove(object).await {
            Ok(()) => Ok(true),
            Err(rados_store::Error::NotFound(_)) => Ok(false),
            Err(e) => Err(DeviceError::from_rados("remove", object, &e)),
        }
    }

    async fn list(&self) -> DeviceResult<Vec<String>> {
        self.ioctx
            .list_objects()
            .await
            .map_err(|e| DeviceError::from_rados("list", self.ioctx.pool_name(), &e))
    }
}
