//! A fault-injecting wrapper: the device a crash test runs the journal on.
//!
//! It models a disk with a volatile write cache in front of the wrapped device: writes are held
//! in memory (visible to reads, as the page cache makes them) and reach the wrapped device only
//! when a sync covers their object. What it can inject:
//!
//! * **crash** ([`FaultDevice::crash`]): power loss. Unsynced writes are lost, or — with
//!   [`CrashMode::TornPrefix`] — a prefix of them in issue order survives, the last one cut
//!   mid-way (a torn write). Every later operation fails with EIO until [`FaultDevice::restart`],
//!   so the journal instance that was running cannot touch the "rebooted" disk;
//! * **EIO** on writes, syncs or header writes after a chosen number of successes. A failed sync
//!   drops the unsynced writes it covered, as Linux drops dirty pages after a failed writeback
//!   (the fsync error that lost data is the only report of it);
//! * **torn write on EIO**: a failing write keeps the first half of its bytes;
//! * **a sync gate** ([`FaultDevice::hold_syncs`]): syncs block until released, so a test can
//!   check that nothing is acknowledged while its sync has not returned.
//!
//! The wrapped device holds exactly what survives a crash: [`FaultDevice::inner`] is the durable
//! view.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::{DeviceResult, JournalDevice, ObjectWrite, apply_write, read_slice};
use crate::error::DeviceError;

/// What survives a simulated crash of the volatile cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost.
    LoseUnsynced,
    /// The first `bytes` bytes of the unsynced writes (in the order they were issued) reach the
    /// disk; the write that straddles the limit is torn.
    TornPrefix {
        /// How many unsynced bytes survive.
        bytes: u64,
    },
    /// Every unsynced write survives (the cache happened to be written back).
    KeepUnsynced,
}

/// Counters of what the wrapper has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Successful writes.
    pub writes: u64,
    /// Successful syncs.
    pub syncs: u64,
    /// Bytes of successful writes.
    pub bytes_written: u64,
    /// Unsynced bytes dropped by crashes and failed syncs.
    pub bytes_lost: u64,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<ObjectWrite>,
    crashed: bool,
    writes_before_failure: Option<u64>,
    syncs_before_failure: Option<u64>,
    fail_write_full: bool,
    torn_on_failure: bool,
    stats: FaultStats,
}

/// Wraps `D` with a volatile cache and injectable faults.
#[derive(Debug)]
pub struct FaultDevice<D> {
    inner: D,
    state: Mutex<State>,
    /// Serialises operations that move data from the cache to `inner`, so that a crash or a
    /// failing sync never races with a half-applied sync.
    apply: tokio::sync::Mutex<()>,
    gate: watch::Sender<bool>,
    blocked_syncs: AtomicU64,
    sync_blocked: Notify,
}

fn crashed_error(op: &'static str, object: &str) -> DeviceError {
    DeviceError::eio(op, object, "device crashed (simulated power loss)")
}

impl<D: JournalDevice> FaultDevice<D> {
    /// Wraps `inner`, with no faults armed.
    pub fn new(inner: D) -> Self {
        FaultDevice {
            inner,
            state: Mutex::new(State::default()),
            apply: tokio::sync::Mutex::new(()),
            gate: watch::channel(false).0,
            blocked_syncs: AtomicU64::new(0),
            sync_blocked: Notify::new(),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent; recover from poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wrapped device: what is durable, i.e. what would survive a crash now.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Counters so far.
    pub fn stats(&self) -> FaultStats {
        self.st().stats
    }

    /// Bytes written but not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.st().pending.iter().map(|w| w.data.len() as u64).sum()
    }

    /// After `n` more successful writes, every write fails with EIO (`None` disarms).
    pub fn fail_writes_after(&self, n: Option<u64>) {
        self.st().writes_before_failure = n;
    }

    /// After `n` more successful syncs, every sync fails with EIO and drops the unsynced data it
    /// covered (`None` disarms).
    pub fn fail_syncs_after(&self, n: Option<u64>) {
        self.st().syncs_before_failure = n;
    }

    /// Makes header writes (`write_full`) fail with EIO.
    pub fn fail_write_full(&self, fail: bool) {
        self.st().fail_write_full = fail;
    }

    /// A failing write keeps the first half of its bytes in the cache (a torn write).
    pub fn torn_on_failure(&self, torn: bool) {
        self.st().torn_on_failure = torn;
    }

    /// Simulates power loss: applies `mode` to the unsynced writes and fails every later
    /// operation until [`FaultDevice::restart`]. Waits for a sync in progress to finish applying
    /// first, so the durable state is never half a sync.
    pub async fn crash(&self, mode: CrashMode) {
        let _apply = self.apply.lock().await;
        let pending = {
            let mut st = self.st();
            st.crashed = true;
            std::mem::take(&mut st.pending)
        };
        let total: u64 = pending.iter().map(|w| w.data.len() as u64).sum();
        let mut budget = match mode {
            CrashMode::LoseUnsynced => 0,
            CrashMode::TornPrefix { bytes } => bytes,
            CrashMode::KeepUnsynced => u64::MAX,
        };
        let mut kept = 0u64;
        for w in pending {
            if budget == 0 {
                break;
            }
            let take = (w.data.len() as u64).min(budget);
            budget -= take;
            kept += take;
            // Best effort: the inner device is the "platter"; its own errors are ignored here
            // as a real power cut would not report them either.
            let _ = self.inner.write(&w.object, w.offset, w.data.slice(..take as usize)).await;
            let _ = self.inner.sync(std::slice::from_ref(&w.object)).await;
        }
        self.st().stats.bytes_lost += total - kept;
        tracing::debug!(lost = total - kept, kept, "fault device crashed");
    }

    /// Brings a crashed device back (the machine rebooted); faults stay as they were armed.
    pub fn restart(&self) {
        self.st().crashed = false;
    }

    /// Makes syncs block until [`FaultDevice::release_syncs`].
    pub fn hold_syncs(&self) {
        self.gate.send_replace(true);
    }

    /// Unblocks held syncs.
    pub fn release_syncs(&self) {
        self.gate.send_replace(false);
    }

    /// Waits until at least `n` syncs have blocked at the gate since the device was made.
    pub async fn wait_for_blocked_syncs(&self, n: u64) {
        loop {
            let notified = self.sync_blocked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.blocked_syncs.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    async fn pass_gate(&self) {
        let mut rx = self.gate.subscribe();
        if *rx.borrow_and_update() {
            self.blocked_syncs.fetch_add(1, Ordering::SeqCst);
            self.sync_blocked.notify_waiters();
            while *rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Moves the cached writes of `objects` to the inner device (without syncing it).
    async fn drain(&self, objects: &[String]) -> DeviceResult<()> {
        let mine: Vec<ObjectWrite> = {
            let mut st = self.st();
            let (mine, rest) =
                std::mem::take(&mut st.pending).into_iter().partition(|w| objects.contains(&w.object));
            st.pending = rest;
            mine
        };
        for w in mine {
            self.inner.write(&w.object, w.offset, w.data).await?;
        }
        Ok(())
    }

    fn overlay(&self, object: &str, base: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let st = self.st();
        let mut buf = base;
        for w in st.pending.iter().filter(|w| w.object == object) {
            apply_write(buf.get_or_insert_with(Vec::new), w.offset, &w.data);
        }
        buf
    }
}

#[async_trait]
impl<D: JournalDevice> JournalDevice for FaultDevice<D> {
    async fn write(&self, object: &str, offset: u64, data: Bytes) -> DeviceResult<()> {
        let mut st = self.st();
        if st.crashed {
            return Err(crashed_error("write", object));
        }
        if let Some(n) = st.writes_before_failure {
            if n == 0 {
                if st.torn_on_failure {
                    let half = data.slice(..data.len() / 2);
                    st.pending.push(ObjectWrite { object: object.to_owned(), offset, data: half });
                }
                return Err(DeviceError::eio("write", object, "injected write failure"));
            }
            st.writes_before_failure = Some(n - 1);
        }
        st.stats.writes += 1;
        st.stats.bytes_written += data.len() as u64;
        st.pending.push(ObjectWrite { object: object.to_owned(), offset, data });
        Ok(())
    }

    async fn sync(&self, objects: &[String]) -> DeviceResult<()> {
        self.pass_gate().await;
        let _apply = self.apply.lock().await;
        let first = objects.first().map(String::as_str).unwrap_or("");
        {
            let mut st = self.st();
            if st.crashed {
                return Err(crashed_error("sync", first));
            }
            if let Some(n) = st.syncs_before_failure {
                if n == 0 {
                    let before: u64 = st.pending.iter().map(|w| w.data.len() as u64).sum();
                    st.pending.retain(|w| !objects.contains(&w.object));
                    let after: u64 = st.pending.iter().map(|w| w.data.len() as u64).sum();
                    st.stats.bytes_lost += before - after;
                    return Err(DeviceError::eio("sync", first, "injected sync failure"));
                }
                st.syncs_before_failure = Some(n - 1);
            }
        }
        self.drain(objects).await?;
        self.inner.sync(objects).await?;
        self.st().stats.syncs += 1;
        Ok(())
    }

    async fn write_full(&self, object: &str, data: Bytes) -> DeviceResult<()> {
        {
            let st = self.st();
            if st.crashed {
                return Err(crashed_error("write_full", object));
            }
            if st.fail_write_full {
                return Err(DeviceError::eio("write_full", object, "injected header write failure"));
            }
        }
        let _apply = self.apply.lock().await;
        // A full replacement supersedes cached partial writes of the same object.
        self.st().pending.retain(|w| w.object != object);
        self.inner.write_full(object, data).await
    }

    async fn read(&self, object: &str, offset: u64, len: u64) -> DeviceResult<Option<Vec<u8>>> {
        if self.st().crashed {
            return Err(crashed_error("read", object));
        }
        let base = match self.inner.stat(object).await? {
            Some(size) => self.inner.read(object, 0, size).await?,
            None => None,
        };
        Ok(self.overlay(object, base).map(|b| read_slice(&b, offset, len)))
    }

    async fn stat(&self, object: &str) -> DeviceResult<Option<u64>> {
        if self.st().crashed {
            return Err(crashed_error("stat", object));
        }
        let base = self.inner.stat(object).await?;
        let st = self.st();
        let cached =
            st.pending.iter().filter(|w| w.object == object).map(|w| w.offset + w.data.len() as u64).max();
        Ok(match (base, cached) {
            (None, None) => None,
            (b, c) => Some(b.unwrap_or(0).max(c.unwrap_or(0))),
        })
    }

    async fn truncate(&self, object: &str, size: u64) -> DeviceResult<()> {
        if self.st().crashed {
            return Err(crashed_error("truncate", object));
        }
        let _apply = self.apply.lock().await;
        let objects = [object.to_owned()];
        self.drain(&objects).await?;
        self.inner.truncate(object, size).await
    }

    async fn remove(&self, object: &str) -> DeviceResult<bool> {
        if self.st().crashed {
            return Err(crashed_error("remove", object));
        }
        let _apply = self.apply.lock().await;
        let had_cached = {
            let mut st = self.st();
            let before = st.pending.len();
            st.pending.retain(|w| w.object != object);
            before != st.pending.len()
        };
        Ok(self.inner.remove(object).await? || had_cached)
    }

    async fn list(&self) -> DeviceResult<Vec<String>> {
        if self.st().crashed {
            return Err(crashed_error("list", ""));
        }
        let mut names = self.inner.list().await?;
        names.extend(self.st().pending.iter().map(|w| w.object.clone()));
        names.sort();
        names.dedup();
        Ok(names)
    }
}
