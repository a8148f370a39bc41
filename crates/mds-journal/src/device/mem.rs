//! An in-memory device: every write is durable at once. For unit tests, simulation and as the
//! backing store under a [`super::FaultDevice`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{DeviceResult, JournalDevice, apply_write, check_extent, read_slice};

/// Objects held in memory.
#[derive(Debug, Default)]
pub struct MemDevice {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemDevice {
    /// An empty device.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // Every update is a single map operation, so a poisoned lock holds consistent data.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of one object's bytes (tests inspect and damage objects directly).
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().get(name).cloned()
    }

    /// Replaces one object's bytes (tests use it to corrupt a journal).
    pub fn set_object(&self, name: &str, data: Vec<u8>) {
        self.lock().insert(name.to_owned(), data);
    }
}

#[async_trait]
impl JournalDevice for MemDevice {
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()> {
        check_extent(object, offset, data.len() as u64)?;
        apply_write(self.lock().entry(object.to_owned()).or_default(), offset, &data);
        Ok(())
    }

    async fn sync(&self, _objects: &[String]) -> DeviceResult<()> {
        Ok(())
    }

    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()> {
        self.lock().insert(object.to_owned(), data.to_vec());
        Ok(())
    }

    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>> {
        Ok(self.lock().get(object).map(|b| read_slice(b, offset, len)))
    }

    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>> {
        Ok(self.lock().get(object).map(|b| b.len() as u64))
    }

    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()> {
        check_extent(object, size, 0)?;
        if let Some(b) = self.lock().get_mut(object) {
            b.resize(size as usize, 0);
        }
        Ok(())
    }

    async fn remove(&self, object: &str) -> DeviceResult<bool> {
        Ok(self.lock().remove(object).is_some())
    }

    async fn list(&self) -> DeviceResult<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }
}
