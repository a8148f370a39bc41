//! The journaler: one framed byte stream over a device, with group commit (the runtime around
//! [`crate::commit::GroupCommit`]), the header, and trimming. The layer Ceph calls `Journaler`
//! (mds §6.4); [`crate::MdLog`] builds events and segments on top.
//!
//! Appending is synchronous and cheap: the entry is framed into an in-memory buffer at the
//! current write position and the policy is told. One flusher task per journal executes the
//! policy's effects: it takes the bytes of a flush out of the buffer, writes them to the objects
//! they map to, syncs, and feeds the completion back; waiters are completed in position order
//! from that task. How submitters wake the parked flusher is [`crate::handoff`]'s protocol,
//! model-checked by loom in `loom_model` (built only with `--cfg loom`). A device error is sticky: the error is recorded, every waiter fails, and no
//! later append or wait succeeds, so nothing the device may have lost is ever acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rados_store::{Clock, UTime};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::commit::{BatchConfig, Effect, GroupCommit, Input};
use crate::device::{JournalDevice, ObjectWrite};
use crate::error::{DeviceError, JournalError, Result};
use crate::frame::{MAX_PAYLOAD, SENTINEL, StreamFormat};
use crate::handoff::{Bell, Handoff, Look};
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
    /// the lock is released go to `done`; rings `bell` if the parked flusher must look again
    /// (new work, or a timer earlier than the one it sleeps on). Changes it does not wait for
    /// leave it parked, so a busy journal does not pay a wake-up per append.
    fn step(&mut self, input: Input, bell: &mut Bell, done: &mut Vec<(Waiter, Result<()>)>) {
        let mut fx = std::mem::take(&mut self.scratch);
        self.gc.step(input, &mut fx);
        for effect in fx.drain(..) {
            match effect {
                Effect::Flush { from, to } => {
                    self.next_flush = Some((from, to));
                    if bell.parked().is_some() {
                        bell.ring();
                    }
                }
                Effect::ArmTimer { at_ns } => {
                    let sooner = match bell.parked() {
                        Some(None) => true,
                        Some(Some(parked_until)) => at_ns < parked_until,
                        None => false,
                    };
                    if sooner {
                        bell.ring();
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
    }
}

/// The state shared by submitters and the flusher task, with the park/wake protocol.
type Shared = Handoff<State>;

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
        let span = tracing::info_span!("journal_flusher", rank = id.rank);
        let (journaler, flusher) = Journaler::new(id, dev, clock, batch, header, write_pos);
        let task = tokio::spawn(flusher.instrument(span));
        *journaler.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        journaler
    }

    /// The journal and its flusher, not yet running: [`Journaler::start`] spawns it on tokio,
    /// the loom model drives it on a model thread.
    fn new(
        id: JournalId,
        dev: Arc<dyn JournalDevice>,
        clock: Arc<dyn Clock>,
        batch: BatchConfig,
        header: &JournalHeader,
        write_pos: u64,
    ) -> (Journaler, impl Future<Output = ()> + Send + 'static) {
        let state = State {
            gc: GroupCommit::new(batch, write_pos),
            buf: BytesMut::new(),
            buf_start: write_pos,
            next_flush: None,
            timer_ns: None,
            waiters: BTreeMap::new(),
            error: None,
            closed: false,
            trimmed_pos: header.trimmed_pos,
            expire_pos: header.expire_pos,
            scratch: Vec::new(),
        };
        let shared = Arc::new(Shared::new(state));
        let task = flusher(shared.clone(), dev.clone(), clock.clone(), id.ino, id.layout);
        let journaler = Journaler {
            id,
            dev,
            clock,
            shared,
            head_lock: tokio::sync::Mutex::new(()),
            flusher: Mutex::new(None),
        };
        (journaler, task)
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
        self.append_inner(payload, None::<fn(u64, u64) -> SafeCallback>)
    }

    /// Like [`Journaler::append`], and registers the completion `on_safe(start, end)` builds
    /// in the same critical section, so it fires in log order with every other completion.
    /// Registering a callback after the append cannot promise that: another
    /// submitter's later entry may be flushed and completed before the registration, which then
    /// finds this entry already safe and fires after it (found by `loom_model`).
    pub fn append_with(
        &self,
        payload: &[u8],
        on_safe: impl FnOnce(u64, u64) -> SafeCallback,
    ) -> Result<(u64, u64)> {
        self.append_inner(payload, Some(on_safe))
    }

    fn append_inner(
        &self,
        payload: &[u8],
        on_safe: Option<impl FnOnce(u64, u64) -> SafeCallback>,
    ) -> Result<(u64, u64)> {
        let len = payload.len() as u64;
        if len > MAX_PAYLOAD {
            return Err(JournalError::EventTooLarge { len, max: MAX_PAYLOAD });
        }
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        let (start, end) = self.shared.update(|st, bell| {
            if let Some(e) = st.refuse() {
                return Err(e);
            }
            let start = st.gc.appended();
            frame_into(&mut st.buf, self.id.format, start, payload);
            let end = start + self.id.format.frame_len(len);
            st.step(Input::Appended { end, now_ns: now }, bell, &mut done);
            if let Some(make) = on_safe {
                st.waiters.entry(end).or_default().push(Waiter::Callback(make(start, end)));
                st.step(Input::SafeWanted { pos: end, now_ns: now }, bell, &mut done);
            }
            Ok((start, end))
        })?;
        run_completions(done);
        tracing::trace!(rank = self.id.rank, start, end, "entry appended");
        Ok((start, end))
    }

    /// Registers `waiter` for `pos` and asks for a flush. Completes it at once if `pos` is
    /// already safe or the journal has failed.
    fn wait_with(&self, pos: u64, waiter: Waiter) {
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        self.shared.update(|st, bell| {
            if let Some(e) = &st.error {
                done.push((waiter, Err(JournalError::Failed(e.clone()))));
            } else if pos <= st.gc.safe() {
                done.push((waiter, Ok(())));
            } else if pos > st.gc.appended() {
                let appended = st.gc.appended();
                let err = JournalError::InvalidArgument(format!(
                    "position {pos:#x} is beyond the write position {appended:#x}"
                ));
                done.push((waiter, Err(err)));
            } else {
                st.waiters.entry(pos).or_default().push(waiter);
                st.step(Input::SafeWanted { pos, now_ns: now }, bell, &mut done);
            }
        });
        run_completions(done);
    }

    /// Waits until everything before `pos` is durable.
    pub async fn wait_safe(&self, pos: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.wait_with(pos, Waiter::Channel(tx));
        rx.await.unwrap_or(Err(JournalError::Closed))
    }

    /// Asks for everything appended so far to be flushed, without waiting.
    pub fn flush(&self) {
        let now = now_ns(self.clock.as_ref());
        let mut done = Vec::new();
        self.shared.update(|st, bell| {
            let pos = st.gc.appended();
            st.step(Input::SafeWanted { pos, now_ns: now }, bell, &mut done);
        });
        run_completions(done);
    }

    /// Records a device error outside the flush path (header writes, trimming): the journal
    /// fails exactly as if a flush had.
    fn fail(&self, e: DeviceError) -> JournalError {
        let mut done = Vec::new();
        self.shared.update(|st, bell| {
            if st.error.is_none() {
                st.error = Some(e.clone());
            }
            st.step(Input::FlushFailed, bell, &mut done);
            bell.ring();
        });
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
        self.shared.update(|st, bell| {
            st.closed = true;
            let all = std::mem::take(&mut st.waiters);
            let in_flight = st.gc.in_flight();
            // Waiters of a flush in flight are completed by it; the rest can never be.
            if in_flight {
                st.waiters = all;
            } else {
                done.extend(all.into_values().flatten().map(|w| (w, Err(JournalError::Closed))));
            }
            bell.ring();
        });
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
        let look = shared.look(|st| {
            if let Some((from, to)) = st.next_flush.take() {
                debug_assert_eq!(from, st.buf_start, "flushes are contiguous");
                let bytes = st.buf.split_to((to - from) as usize).freeze();
                st.buf_start = to;
                return Look::Work((from, to, bytes));
            }
            if st.closed { Look::Stop } else { Look::Park { until_ns: st.timer_ns } }
        });
        match look {
            Look::Work((from, to, bytes)) => {
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
                shared.update(|st, bell| match res {
                    Ok(()) => {
                        tracing::trace!(from, to, "flush safe");
                        st.step(Input::FlushDone { to }, bell, &mut done);
                    }
                    Err(e) => {
                        tracing::error!(from, to, error = %e, "journal flush failed");
                        if st.error.is_none() {
                            st.error = Some(e);
                        }
                        st.step(Input::FlushFailed, bell, &mut done);
                    }
                });
                run_completions(done);
                if ok {
                    // Let the submitters just completed run (and append their next entries)
                    // before the next batch is cut; see `Input::FlushDone`.
                    tokio::task::yield_now().await;
                    tick(&shared, clock.as_ref());
                }
            }
            Look::Stop => {
                // Completes nothing further: waiters were failed by close, or are served above.
                let all = std::mem::take(&mut shared.lock().waiters);
                run_completions(
                    all.into_values().flatten().map(|w| (w, Err(JournalError::Closed))).collect(),
                );
                return;
            }
            Look::Park { until_ns: Some(at_ns) } => {
                let deadline = UTime::from_duration(Duration::from_nanos(at_ns));
                tokio::select! {
                    _ = shared.rung() => {}
                    _ = clock.sleep_until(deadline) => tick(&shared, clock.as_ref()),
                }
            }
            Look::Park { until_ns: None } => shared.rung().await,
        }
    }
}

/// Tells the policy what time it is (after a completion, or when its timer fired).
fn tick(shared: &Shared, clock: &dyn Clock) {
    let now = now_ns(clock);
    let mut done = Vec::new();
    shared.update(|st, bell| st.step(Input::Tick { now_ns: now }, bell, &mut done));
    run_completions(done);
}

#[cfg(all(test, loom))]
mod loom_model;
