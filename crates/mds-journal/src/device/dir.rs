//! The local-directory device: one file per object, `fdatasync` for durability.
//!
//! This is the embedded default, so it must be honest about durability: a flush is one
//! positioned write per touched object followed by `fdatasync` of each, and the directory itself
//! is fsynced whenever a file was created or removed since its last sync (otherwise a new
//! object's directory entry could vanish in a crash even though its data was synced). Header
//! replacement writes a temporary file, syncs it and renames it over the old one.
//!
//! All file I/O runs on tokio's blocking pool; a flush is a single hop to it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{DeviceResult, JournalDevice, ObjectWrite, check_extent};
use crate::error::DeviceError;

/// Suffix of the temporary files used for atomic replacement; never listed as objects.
const TMP_SUFFIX: &str = ".tmp";

/// A directory of object files.
#[derive(Debug, Clone)]
pub struct DirDevice {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    files: Mutex<HashMap<String, Arc<File>>>,
    /// A file was created or removed since the directory was last synced.
    dir_dirty: AtomicBool,
}

impl DirDevice {
    /// Uses (and creates, with its parents) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> DeviceResult<DirDevice> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| DeviceError::from_io("open", dir.display().to_string(), &e))?;
        Ok(DirDevice {
            inner: Arc::new(Inner {
                dir,
                files: Mutex::new(HashMap::new()),
                dir_dirty: AtomicBool::new(true),
            }),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> DeviceResult<T> + Send + 'static,
    ) -> DeviceResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| DeviceError::eio("spawn_blocking", inner_dir_name(&self.inner), e.to_string()))?
    }
}

fn inner_dir_name(inner: &Inner) -> String {
    inner.dir.display().to_string()
}

fn check_name(object: &str) -> DeviceResult<()> {
    if object.is_empty()
        || object == "."
        || object == ".."
        || object.contains('/')
        || object.contains('\0')
        || object.ends_with(TMP_SUFFIX)
    {
        return Err(DeviceError::Invalid(format!("{object:?} is not a valid object file name")));
    }
    Ok(())
}

impl Inner {
    fn path(&self, object: &str) -> PathBuf {
        self.dir.join(object)
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<File>>> {
        // The map only caches open handles; a poisoned lock still holds valid ones.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An open handle, creating the file if `create`; `None` if it does not exist.
    fn file(&self, object: &str, create: bool) -> DeviceResult<Option<Arc<File>>> {
        if let Some(f) = self.files().get(object) {
            return Ok(Some(f.clone()));
        }
        let path = self.path(object);
        let existed = path.exists();
        let opened = OpenOptions::new().read(true).write(true).create(create).open(&path);
        let file = match opened {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(DeviceError::from_io("open", object, &e)),
        };
        if !existed {
            self.dir_dirty.store(true, Ordering::SeqCst);
        }
        Ok(Some(self.files().entry(object.to_owned()).or_insert(file).clone()))
    }

    fn write(&self, object: &str, offset: u64, data: &[u8]) -> DeviceResult<()> {
        check_name(object)?;
        check_extent(object, offset, data.len() as u64)?;
        let file = self.file(object, true)?.ok_or_else(|| DeviceError::NotFound(object.to_owned()))?;
        file.write_all_at(data, offset).map_err(|e| DeviceError::from_io("write", object, &e))
    }

    fn sync_objects(&self, objects: &[String]) -> DeviceResult<()> {
        for object in objects {
            if let Some(file) = self.file(object, false)? {
                file.sync_data().map_err(|e| DeviceError::from_io("sync", object.as_str(), &e))?;
            }
        }
        self.sync_dir_if_dirty()
    }

    fn sync_dir_if_dirty(&self) -> DeviceResult<()> {
        if self.dir_dirty.swap(false, Ordering::SeqCst) {
            let res = File::open(&self.dir).and_then(|d| d.sync_all());
            if let Err(e) = res {
                self.dir_dirty.store(true, Ordering::SeqCst);
                return Err(DeviceError::from_io("sync", self.dir.display().to_string(), &e));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl JournalDevice for DirDevice {
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()> {
        let object = object.to_owned();
        self.blocking(move |i| i.write(&object, offset, &data)).await
    }

    async fn sync(&self, objects: &[String]) -> DeviceResult<()> {
        let objects = objects.to_vec();
        self.blocking(move |i| i.sync_objects(&objects)).await
    }

    async fn write_and_sync(&self, writes: Vec<ObjectWrite>) -> DeviceResult<()> {
        self.blocking(move |i| {
            let mut objects: Vec<String> = Vec::new();
            for w in &writes {
                i.write(&w.object, w.offset, &w.data)?;
                if !objects.contains(&w.object) {
                    objects.push(w.object.clone());
                }
            }
            i.sync_objects(&objects)
        })
        .await
    }

    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()> {
        check_name(object)?;
        let object = object.to_owned();
        self.blocking(move |i| {
            let tmp = i.path(&format!("{object}{TMP_SUFFIX}"));
            let res = (|| {
                let f = File::create(&tmp)?;
                f.write_all_at(&data, 0)?;
                f.sync_data()?;
                std::fs::rename(&tmp, i.path(&object))
            })();
            res.map_err(|e| DeviceError::from_io("write_full", object.as_str(), &e))?;
            // The cached handle (if any) names the replaced inode; reopen on next use.
            i.files().remove(&object);
            i.dir_dirty.store(true, Ordering::SeqCst);
            i.sync_dir_if_dirty()
        })
        .await
    }

    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>> {
        check_name(object)?;
        check_extent(object, offset, len)?;
        let object = object.to_owned();
        self.blocking(move |i| {
            let Some(file) = i.file(&object, false)? else { return Ok(None) };
            let size = file.metadata().map_err(|e| DeviceError::from_io("read", object.as_str(), &e))?.len();
            let end = offset.saturating_add(len).min(size);
            let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| DeviceError::from_io("read", object.as_str(), &e))?;
            Ok(Some(buf))
        })
        .await
    }

    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>> {
        check_name(object)?;
        let object = object.to_owned();
        self.blocking(move |i| match std::fs::metadata(i.path(&object)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DeviceError::from_io("stat", object.as_str(), &e)),
        })
        .await
    }

    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()> {
        check_name(object)?;
        check_extent(object, size, 0)?;
        let object = object.to_owned();
        self.blocking(move |i| {
            let Some(file) = i.file(&object, false)? else { return Ok(()) };
            file.set_len(size)
                .and_then(|()| file.sync_all())
                .map_err(|e| DeviceError::from_io("truncate", object.as_str(), &e))
        })
        .await
    }

    async fn remove(&self, object: &str) -> DeviceResult<bool> {
        check_name(object)?;
        let object = object.to_owned();
        self.blocking(move |i| {
            i.files().remove(&object);
            match std::fs::remove_file(i.path(&object)) {
                Ok(()) => {
                    i.dir_dirty.store(true, Ordering::SeqCst);
                    i.sync_dir_if_dirty()?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(DeviceError::from_io("remove", object.as_str(), &e)),
            }
        })
        .await
    }

    async fn list(&self) -> DeviceResult<Vec<String>> {
        self.blocking(|i| {
            let rd =
                std::fs::read_dir(&i.dir).map_err(|e| DeviceError::from_io("list", inner_dir_name(i), &e))?;
            let mut out = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|e| DeviceError::from_io("list", inner_dir_name(i), &e))?;
                if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    continue;
                }
                if let Some(name) = entry.file_name().to_str()
                    && !name.ends_with(TMP_SUFFIX)
                {
                    out.push(name.to_owned());
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}
