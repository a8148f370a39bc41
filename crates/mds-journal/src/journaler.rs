//! The journaler: one framed byte stream over a device, with group commit (the runtime around
//! [`crate::commit::GroupCommit`]), the header, and trimming. The layer Ceph calls `Journaler`
//! (mds §6.4); [`crate::MdLog`] builds events and segments on top.
//!
//! Appending is synchronous and cheap: the entry is framed into an in-memory buffer at the
//! current write position and the policy is told. One flusher task per journal executes the
//! policy's effects: it takes the bytes of a flush out of the buffer, writes them to the objects
//! they map to, syncs, and feeds the completion back; waiters are completed in position order
//! from that task. A device error is sticky: the error is recorded, every waiter fails, and no
//! later append or wait succeeds, so nothing the device may have lost is ever acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rados_store::{Clock, UTime};
use tokio::sync::{Notify, oneshot};
use tracing::Instrument;

use crate::commit::{BatchConfig, Effect, GroupCommit, Input};
use crate::device::{JournalDevice, ObjectWrite};
use crate::error::{DeviceError, JournalError, Result};
use crate::frame::{MAX_PAYLOAD, SENTINEL, StreamFormat};
use crate::header::JournalHeader;
use crate::layout::{FileLayout, object_name};
use crate::types::InodeNo;

/// A completion to run once a position is safe (or the journal failed).
pub(crate) type SafeCallback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

enum Waiter {
    Channel(oneshot::Sender<Result<()>>),
    Callback(SafeCallback),
}

impl Waiter {
    fn complete(self, r: Result<()>) {
        match self {
            Waiter::Channel(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Callback(f) => f(r),
        }
    }
}

struct State {
    gc: GroupCommit,
    /// Framed bytes not yet handed to the device: stream range `[buf_start, gc.appended())`.
    buf: BytesMut,
    buf_start: u64,
    next_flush: Option<(u64, u64)>,
    timer_ns: Option<u64>,
    /// What the flusher task is parked on: `None` while it runs (it will look at the state
    /// again before parking), `Some(deadline)` while parked. Lets appends skip waking it when
    /// nothing it waits for changed.
    flusher_parked: Option<Option<u64>>,
    /// Completions keyed by the position that must be safe, fired in key order.
    waiters: BTreeMap<u64, Vec<Waiter>>,
    error: Option<DeviceError>,
    closed: bool,
    trimmed_pos: u64,
    expire_pos: u64,
    scratch: Vec<Effect>,
}

impl State {
    fn refuse(&self) -> Option<JournalError> {
        if let Some(e) = &self.error {
            return Some(JournalError::Failed(e.clone()));
        }
        self.closed.then_some(JournalError::Closed)
    }

    /// Feeds one input and applies the effects that only touch state. Completions to run after
    /// the lock is released go to `done`; returns whether the flusher must look again.
    fn step(&mut self, input: Input, done: &mut Vec<(Waiter, Result<()>)>) -> bool {
        let mut fx = std::mem::take(&mut self.scratch);
        self.gc.step(input, &mut fx);
        let mut wake = false;
        for effect in fx.drain(..) {
            match effect {
                Effect::Flush { from, to } => {
                    self.next_flush = Some((from, to));
                    wake |= self.flusher_parked.is_some();
                }
                Effect::ArmTimer { at_ns } => {
                    wake |= match self.flusher_parked {
                        Some(None) => true,
                        Some(Some(parked_until)) => at_ns < parked_until,
                        None => false,
                    }
                }
                Effect::Safe { up_to } => {
                    let later = self.waiters.split_off(&(up_to + 1));
                    let ready = std::mem::replace(&mut self.waiters, later);
                    done.extend(ready.into_values().flatten().map(|w| (w, Ok(()))));
                }
                Effect::Failed => {
                    let err = self.refuse().unwrap_or(JournalError::Closed);
                    let all = std::mem::take(&mut self.waiters);
                    done.extend(all.into_values().flatten().map(|w| (w, Err(err.clone()))));
                    self.next_flush = None;
                    self.timer_ns = None;
                }
            }
        }
        self.scratch = fx;
        // Mirror the policy's timer rather than trusting effects alone, so a tick that arrives
        // before the deadline (clocks disagree) cannot lose the timer.
        self.timer_ns = self.gc.timer();
        wake
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // State updates are small and complete before any call that could panic; a poisoned lock
        // therefore still guards consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn run_completions(done: Vec<(Waiter, Result<()>)>) {
    for (w, r) in done {
        w.complete(r);
    }
}

fn now_ns(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.now().as_duration().as_nanos()).unwrap_or(u64::MAX)
}

/// Static facts about one journal.
#[derive(Debug, Clone)]
pub(crate) struct JournalId {
    pub rank: u32,
    pub ino: InodeNo,
    pub layout: FileLayout,
    pub format: StreamFormat,
}

impl JournalId {
    pub fn header_object(&self) -> String {
        object_name(self.ino, 0)
    }
}

/// The byte-stream journal of one rank.
pub(crate) struct Journaler {
    id: JournalId,
    dev: Arc<dyn JournalDevice>,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    /// Serialises header writes and trims, so an older header never overwrites a newer one.
    head_lock: tokio::sync::Mutex<()>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Journaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaler")
            .field("rank", &self.id.rank)
            .field("write_pos", &self.write_pos())
            .finish()
    }
}

impl Journaler {
    /// Starts the runtime for a journal whose valid stream ends at `write_pos`, with the
    /// header's trim and expire positions. Must be called inside a tokio runtime.
    pub fn start(
        id: JournalId,
        dev: Arc<dyn JournalDevice>,
        clock: Arc<dyn Clock>,
        batch: BatchConfig,
        header: &JournalHeader,
        write_pos: u64,
    ) -> Journaler {
        let state = State {
            gc: GroupCommit::new(batch, write_pos),
            buf: BytesMut::new(),
            buf_start: write_pos,
            next_flush: None,
            timer_ns: None,
            flusher_parked: None,
            waiters: BTreeMap::new(),
            error: None,
            closed: false,
            trimmed_pos: header.trimmed_pos,
            expire_pos: header.expire_pos,
            scratch: Vec::new(),
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Notify::new() });
        let span = tracing::info_span!("journal_flusher", rank = id.rank);
        let task = tokio::spawn(
            flusher(shared.clone(), dev.clone(), clock.clone(), id.ino, id.layout).instrument(span),
        );
        Journaler {
            id,
            dev,
            clock,
            shared,
            head_lock: tokio::sync::Mutex::new(()),
            flusher: Mutex::new(Some(task)),
        }
    }

    pub fn write_pos(&self) -> u64 {
        self.shared.lock().gc.appended()
    }

    pub fn safe_pos(&self) -> u64 {
        self.shared.lock().gc.safe()
    }

    pub fn expire_pos(&self) -> u64 {
        self.shared.lock().expire_pos
    }

    pub fn trimmed_pos(&self) -> u64 {
        self.shared.lock().trimmed_pos
    }

    /// The device error that failed the journal, if any.
    pub fn error(&self) -> Option<DeviceError> {
        self.shared.lock().error.clone()
    }

    /// Frames `payload` at the write position. Returns the entry's `(start, end)`.
    pub fn append(&self, payload: &[u8]) -> Result<(u64, u64)> {
        let len = payload.len() as u64;
        if len > MAX_PAYLOAD {
            return Err(JournalError::EventTooLarge { len, max: MAX_PAYLOAD });
        }
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        let (start, end, wake) = {
            let mut st = self.shared.lock();
            if let Some(e) = st.refuse() {
                return Err(e);
            }
            let start = st.gc.appended();
            frame_into(&mut st.buf, self.id.format, start, payload);
            let end = start + self.id.format.frame_len(len);
            let wake = st.step(Input::Appended { end, now_ns: now }, &mut done);
            (start, end, wake)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        run_completions(done);
        tracing::trace!(rank = self.id.rank, start, end, "entry appended");
        Ok((start, end))
    }

    /// Registers `waiter` for `pos` and asks for a flush. Completes it at once if `pos` is
    /// already safe or the journal has failed.
    fn wait_with(&self, pos: u64, waiter: Waiter) {
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        let wake = {
            let mut st = self.shared.lock();
            if let Some(e) = &st.error {
                done.push((waiter, Err(JournalError::Failed(e.clone()))));
                false
            } else if pos <= st.gc.safe() {
                done.push((waiter, Ok(())));
                false
            } else if pos > st.gc.appended() {
                let appended = st.gc.appended();
                let err = JournalError::InvalidArgument(format!(
                    "position {pos:#x} is beyond the write position {appended:#x}"
                ));
                done.push((waiter, Err(err)));
                false
            } else {
                st.waiters.entry(pos).or_default().push(waiter);
                st.step(Input::SafeWanted { pos, now_ns: now }, &mut done)
            }
        };
        if wake {
            self.shared.wake.notify_one();
        }
        run_completions(done);
    }

    /// Waits until everything before `pos` is durable.
    pub async fn wait_safe(&self, pos: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.wait_with(pos, Waiter::Channel(tx));
        rx.await.unwrap_or(Err(JournalError::Closed))
    }

    /// Runs `f` (from the flusher task, in position order) once everything before `pos` is
    /// durable, or with the error that made that impossible.
    pub fn on_safe(&self, pos: u64, f: SafeCallback) {
        self.wait_with(pos, Waiter::Callback(f));
    }

    /// Asks for everything appended so far to be flushed, without waiting.
    pub fn flush(&self) {
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        let wake = {
            let mut st = self.shared.lock();
            let pos = st.gc.appended();
            st.step(Input::SafeWanted { pos, now_ns: now }, &mut done)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        run_completions(done);
    }

    /// Records a device error outside the flush path (header writes, trimming): the journal
    /// fails exactly as if a flush had.
    fn fail(&self, e: DeviceError) -> JournalError {
        let mut done = Vec::new();
        {
            let mut st = self.shared.lock();
            if st.error.is_none() {
                st.error = Some(e.clone());
            }
            st.step(Input::FlushFailed, &mut done);
        }
        self.shared.wake.notify_one();
        run_completions(done);
        tracing::error!(rank = self.id.rank, error = %e, "journal failed");
        JournalError::Failed(e)
    }

    /// The header as it should be written now: `write_pos` is the safe position, since the
    /// header must never point past durable data.
    pub fn current_header(&self) -> JournalHeader {
        let st = self.shared.lock();
        let mut h = JournalHeader::new(self.id.layout, self.id.format);
        h.trimmed_pos = st.trimmed_pos;
        h.expire_pos = st.expire_pos;
        h.write_pos = st.gc.safe();
        h
    }

    /// Writes the header durably (mds §6.4: the on-disk header lags the in-memory one).
    pub async fn write_head(&self) -> Result<()> {
        let _g = self.head_lock.lock().await;
        self.write_head_locked().await
    }

    async fn write_head_locked(&self) -> Result<()> {
        if let Some(e) = self.shared.lock().refuse() {
            return Err(e);
        }
        let h = self.current_header();
        match self.dev.write_full(&self.id.header_object(), Bytes::from(h.to_bytes())).await {
            Ok(()) => {
                tracing::debug!(
                    rank = self.id.rank,
                    trimmed = h.trimmed_pos,
                    expire = h.expire_pos,
                    write = h.write_pos,
                    "header written"
                );
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Advances `expire_pos` to `expire`, makes the header carrying it durable, then removes
    /// every object set wholly before it and advances `trimmed_pos` (mds §6.4: objects are only
    /// removed behind a durable expire position). Returns how many objects were removed.
    pub async fn trim_to(&self, expire: u64) -> Result<u64> {
        let _g = self.head_lock.lock().await;
        {
            let mut st = self.shared.lock();
            if expire > st.gc.safe() {
                return Err(JournalError::InvalidArgument(format!(
                    "cannot expire to {expire:#x}: only {:#x} is safe",
                    st.gc.safe()
                )));
            }
            if expire > st.expire_pos {
                st.expire_pos = expire;
            }
        }
        self.write_head_locked().await?;
        let (old_trimmed, expire_pos) = {
            let st = self.shared.lock();
            (st.trimmed_pos, st.expire_pos)
        };
        let period = self.id.layout.period();
        let new_trimmed = (expire_pos / period) * period;
        if new_trimmed <= old_trimmed {
            return Ok(0);
        }
        let sc = u64::from(self.id.layout.stripe_count);
        let mut removed = 0;
        for set in old_trimmed / period..new_trimmed / period {
            for object in set * sc..(set + 1) * sc {
                match self.dev.remove(&object_name(self.id.ino, object)).await {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) => return Err(self.fail(e)),
                }
            }
        }
        self.shared.lock().trimmed_pos = new_trimmed;
        self.write_head_locked().await?;
        tracing::debug!(rank = self.id.rank, trimmed = new_trimmed, removed, "journal trimmed");
        Ok(removed)
    }

    /// Flushes everything, writes the header and stops the flusher. Further appends fail with
    /// [`JournalError::Closed`].
    pub async fn close(&self) -> Result<()> {
        let pos = self.write_pos();
        let flushed = self.wait_safe(pos).await;
        let head = if flushed.is_ok() { self.write_head().await } else { Ok(()) };
        self.shutdown().await;
        flushed.and(head)
    }

    /// Stops the flusher without flushing (what a crash or a drop does).
    pub async fn shutdown(&self) {
        self.mark_closed();
        let task = self.flusher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn mark_closed(&self) {
        let mut done = Vec::new();
        {
            let mut st = self.shared.lock();
            st.closed = true;
            let all = std::mem::take(&mut st.waiters);
            let in_flight = st.gc.in_flight();
            // Waiters of a flush in flight are completed by it; the rest can never be.
            if in_flight {
                st.waiters = all;
            } else {
                done.extend(all.into_values().flatten().map(|w| (w, Err(JournalError::Closed))));
            }
        }
        self.shared.wake.notify_one();
        run_completions(done);
    }
}

impl Drop for Journaler {
    fn drop(&mut self) {
        self.mark_closed();
    }
}

/// Frames one entry into the append buffer (see [`crate::frame`] for the layout); the same
/// bytes [`crate::frame::encode_frame`] produces, written without an intermediate copy.
fn frame_into(buf: &mut BytesMut, format: StreamFormat, start: u64, payload: &[u8]) {
    let begin = buf.len();
    buf.reserve(format.frame_len(payload.len() as u64) as usize);
    buf.extend_from_slice(&SENTINEL.to_le_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&start.to_le_bytes());
    if format == StreamFormat::ResilientCrc {
        let crc = crc32c::crc32c(&buf[begin..]);
        buf.extend_from_slice(&crc.to_le_bytes());
    }
    debug_assert_eq!((buf.len() - begin) as u64, format.frame_len(payload.len() as u64));
}

/// The flusher task: executes flushes and timer ticks for one journal until it is closed.
async fn flusher(
    shared: Arc<Shared>,
    dev: Arc<dyn JournalDevice>,
    clock: Arc<dyn Clock>,
    ino: InodeNo,
    layout: FileLayout,
) {
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let (job, timer, closed) = {
            let mut st = shared.lock();
            let job = st.next_flush.take().map(|(from, to)| {
                debug_assert_eq!(from, st.buf_start, "flushes are contiguous");
                let bytes = st.buf.split_to((to - from) as usize).freeze();
                st.buf_start = to;
                (from, to, bytes)
            });
            st.flusher_parked = if job.is_none() && !st.closed { Some(st.timer_ns) } else { None };
            (job, st.timer_ns, st.closed)
        };

        if let Some((from, to, bytes)) = job {
            let writes = layout
                .map(from, to - from)
                .into_iter()
                .map(|ext| {
                    let at = (ext.stream_offset - from) as usize;
                    ObjectWrite {
                        object: object_name(ino, ext.object),
                        offset: ext.offset,
                        data: bytes.slice(at..at + ext.len as usize),
                    }
                })
                .collect();
            let res = dev.write_and_sync(writes).await;
            let ok = res.is_ok();
            let mut done = Vec::new();
            {
                let mut st = shared.lock();
                match res {
                    Ok(()) => {
                        tracing::trace!(from, to, "flush safe");
                        st.step(Input::FlushDone { to }, &mut done);
                    }
                    Err(e) => {
                        tracing::error!(from, to, error = %e, "journal flush failed");
                        if st.error.is_none() {
                            st.error = Some(e);
                        }
                        st.step(Input::FlushFailed, &mut done);
                    }
                }
            }
            run_completions(done);
            if ok {
                // Let the submitters just completed run (and append their next entries) before
                // the next batch is cut; see `Input::FlushDone`.
                tokio::task::yield_now().await;
                let now = now_ns(clock.as_ref());
                let mut done = Vec::new();
                shared.lock().step(Input::Tick { now_ns: now }, &mut done);
                run_completions(done);
            }
            continue;
        }

        if closed {
            // Completes nothing further: waiters were failed by close, or are served above.
            let mut st = shared.lock();
            let all = std::mem::take(&mut st.waiters);
            drop(st);
            run_completions(all.into_values().flatten().map(|w| (w, Err(JournalError::Closed))).collect());
            return;
        }

        match timer {
            Some(at_ns) => {
                let deadline = UTime::from_duration(Duration::from_nanos(at_ns));
                tokio::select! {
                    _ = &mut notified => {}
                    _ = clock.sleep_until(deadline) => {
                        let now = now_ns(clock.as_ref());
                        let mut done = Vec::new();
                        shared.lock().step(Input::Tick { now_ns: now }, &mut done);
                        run_completions(done);
                    }
                }
            }
            None => notified.await,
        }
    }
}
