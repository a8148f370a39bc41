//! The seam between the journal and where its objects live.
//!
//! Ceph's journaler writes RADOS objects, whose writes are durable when acknowledged. cephlock
//! also journals to a local directory, where a write is only durable after `fdatasync`. The
//! [`JournalDevice`] trait therefore separates *write* (may sit in a volatile cache) from *sync*
//! (durable on return), and the journal never reports an entry safe before the sync covering it
//! has returned. Implementations:
//!
//! * [`DirDevice`]: one file per object in a directory, `fdatasync` on sync — the durable
//!   embedded default;
//! * [`RadosDevice`]: objects in a `rados-store` pool (embedded now, a real cluster later);
//! * [`MemDevice`]: objects in memory, durable at once (unit tests, simulation);
//! * [`FaultDevice`]: wraps any device and injects torn writes, loss of unsynced data on a
//!   simulated crash, and EIO.

mod dir;
mod fault;
mod mem;
mod rados;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::DeviceError;

pub use dir::DirDevice;
pub use fault::{CrashMode, FaultDevice, FaultStats};
pub use mem::MemDevice;
pub use rados::RadosDevice;

/// A device operation's result.
pub type DeviceResult<T> = std::result::Result<T, DeviceError>;

/// One write of a flush: bytes at an offset of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectWrite {
    /// The object.
    pub object: String,
    /// Offset inside the object.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// Object storage for one or more journals. Object names are the journal's
/// (`<ino hex>.<8 hex>`); several ranks may share one device.
///
/// Operations on one object are applied in the order they are issued. A failed operation may
/// have partly happened (a failed write may have written a prefix, a failed sync may have lost
/// data written before it): callers must treat every error as "the state of the object is
/// unknown beyond what was already durable".
#[async_trait]
pub trait JournalDevice: Send + Sync + fmt::Debug {
    /// Writes `data` at `offset` of `object`, creating it (gaps read as zeros). The data may
    /// be volatile until [`JournalDevice::sync`] covers the object.
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()>;

    /// Makes every write to `objects` that completed before this call durable.
    async fn sync(&self, objects: &[String]) -> DeviceResult<()>;

    /// Performs `writes` in order, then makes them durable: one journal flush. Devices that can
    /// do this with fewer round trips (one thread hop for the local directory) override it.
    async fn write_and_sync(&self, writes: Vec<ObjectWrite>) -> DeviceResult<()> {
        let mut objects: Vec<String> = Vec::new();
        for w in writes {
            if !objects.contains(&w.object) {
                objects.push(w.object.clone());
            }
            self.write(&w.object, w.offset, w.data).await?;
        }
        self.sync(&objects).await
    }

    /// Atomically replaces the whole content of `object` (creating it) and makes it durable.
    /// A crash leaves either the old or the new content. Used for the header.
    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()>;

    /// Up to `len` bytes from `offset` (fewer at the end of the object, none past it), or
    /// `None` if the object does not exist.
    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>>;

    /// The object's size, or `None` if it does not exist.
    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>>;

    /// Cuts (or zero-extends) the object to `size` bytes, durably. A missing object is left
    /// missing.
    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()>;

    /// Removes the object durably; `false` if it did not exist.
    async fn remove(&self, object: &str) -> DeviceResult<bool>;

    /// Every object on the device, sorted.
    async fn list(&self) -> DeviceResult<Vec<String>>;
}

#[async_trait]
impl<D: JournalDevice + ?Sized> JournalDevice for std::sync::Arc<D> {
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()> {
        (**self).write(object, offset, data).await
    }
    async fn sync(&self, objects: &[String]) -> DeviceResult<()> {
        (**self).sync(objects).await
    }
    async fn write_and_sync(&self, writes: Vec<ObjectWrite>) -> DeviceResult<()> {
        (**self).write_and_sync(writes).await
    }
    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()> {
        (**self).write_full(object, data).await
    }
    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>> {
        (**self).read(object, offset, len).await
    }
    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>> {
        (**self).stat(object).await
    }
    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()> {
        (**self).truncate(object, size).await
    }
    async fn remove(&self, object: &str) -> DeviceResult<bool> {
        (**self).remove(object).await
    }
    async fn list(&self) -> DeviceResult<Vec<String>> {
        (**self).list().await
    }
}

/// Applies a write to an in-memory object image (shared by the memory and fault devices).
pub(crate) fn apply_write(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// The `[offset, offset + len)` slice of an object image, clipped at its end.
pub(crate) fn read_slice(buf: &[u8], offset: u64, len: u64) -> Vec<u8> {
    let start = (offset.min(buf.len() as u64)) as usize;
    let end = (offset.saturating_add(len).min(buf.len() as u64)) as usize;
    buf[start..end].to_vec()
}

/// Refuses offsets no device could address, so arithmetic on them cannot overflow.
pub(crate) fn check_extent(object: &str, offset: u64, len: u64) -> DeviceResult<()> {
    const MAX_OBJECT_BYTES: u64 = 1 << 40;
    if offset.checked_add(len).is_none_or(|end| end > MAX_OBJECT_BYTES) {
        return Err(DeviceError::Invalid(format!("extent {offset}+{len} of {object} is out of range")));
    }
    Ok(())
}
