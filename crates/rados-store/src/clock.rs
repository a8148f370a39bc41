//! The one seam through which the store learns the time and waits for it.
//!
//! Lock expiry (cls_lock, rbd §6), the watch timeout of a dead client (rbd §0.2
//! `osd_client_watch_timeout`), notify timeouts (rbd §3.1) and blocklist expiry (rbd §1.6.3) are
//! all time-based. If any of them read the system clock directly, a simulator could not replay a
//! run from a seed, and tests would have to sleep. So everything asks a [`Clock`]:
//! [`SystemClock`] in production, [`SimClock`] in tests and simulation, where time only moves
//! when the test says so.
//!
//! Waiting is the subtle part: with a manual clock, a timer must complete exactly when the clock
//! is advanced past its deadline and never on its own. [`Clock::sleep_until`] registers the
//! deadline *when it is called* (not when first polled), so a test that calls
//! [`SimClock::advance`] after an operation has started waiting cannot miss the wake-up, and
//! [`SimClock::wait_for_sleepers`] lets a test wait (without sleeping) until an operation is
//! parked on the clock.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot};

use crate::types::UTime;

/// A boxed timer future. It is `'static` so that a waiter can hold it across other awaits without
/// borrowing the clock.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of "now" and of timers, shared by every part of a cluster.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time, as the OSD would stamp it (cls `now`, mtimes, expiries).
    fn now(&self) -> UTime;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    ///
    /// Implementations register the deadline before returning, so time that passes between this
    /// call and the first poll is not lost.
    fn sleep_until(&self, deadline: UTime) -> SleepFuture;

    /// A future that completes after `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.sleep_until(self.now().saturating_add(duration))
    }
}

/// The real wall clock, with tokio timers for waiting.
///
/// Its timers need a tokio runtime with the time driver enabled, as any tokio sleep does.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UTime {
        UTime::from_duration(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    fn sleep_until(&self, deadline: UTime) -> SleepFuture {
        let wait = deadline.as_duration().saturating_sub(self.now().as_duration());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to, so whole-cluster runs are reproducible and tests never
/// sleep.
///
/// Timers registered with [`Clock::sleep_until`] complete when [`SimClock::advance`] (or
/// [`SimClock::advance_to`]) moves the time to or past their deadline. Time never goes backwards.
pub struct SimClock {
    state: Mutex<SimState>,
    /// Signalled whenever a new timer is registered, for [`SimClock::wait_for_sleepers`].
    registered: Notify,
}

#[derive(Debug)]
struct SimState {
    now: UTime,
    next_seq: u64,
    /// Pending timers, ordered by deadline and then registration order (deterministic firing).
    sleepers: BTreeMap<(UTime, u64), oneshot::Sender<()>>,
}

impl SimState {
    /// Forgets timers whose futures were dropped, so counts only show live waiters.
    fn prune(&mut self) {
        self.sleepers.retain(|_, tx| !tx.is_closed());
    }
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SimClock").field("now", &st.now).field("sleepers", &st.sleepers.len()).finish()
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SimClock {
    /// Where a new simulated clock starts: a fixed, non-zero instant (2023-11-14), because a zero
    /// time means "never expires" to cls_lock (rbd §6) and must not be "now".
    pub const DEFAULT_START: UTime = UTime { sec: 1_700_000_000, nsec: 0 };

    /// A simulated clock at [`SimClock::DEFAULT_START`].
    pub fn new() -> Self {
        Self::starting_at(Self::DEFAULT_START)
    }

    /// A simulated clock at a chosen instant.
    pub fn starting_at(start: UTime) -> Self {
        SimClock {
            state: Mutex::new(SimState { now: start, next_seq: 0, sleepers: BTreeMap::new() }),
            registered: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters (every update is a single insert/remove), so recover from poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current simulated time (also available through [`Clock::now`]; inherent so tests need
    /// not import the trait).
    pub fn now(&self) -> UTime {
        self.lock().now
    }

    /// Moves time forward by `by` and fires every timer that is now due. Returns the new time.
    pub fn advance(&self, by: Duration) -> UTime {
        let target = self.now().saturating_add(by);
        self.advance_to(target)
    }

    /// Moves time forward to `t` (no-op if `t` is in the past) and fires every timer that is now
    /// due, earliest first. Returns the new time.
    pub fn advance_to(&self, t: UTime) -> UTime {
        let due = {
            let mut st = self.lock();
            if t > st.now {
                st.now = t;
            }
            let now = st.now;
            // Split off everything with a deadline after `now`; what remains is due.
            let later = st.sleepers.split_off(&(now, u64::MAX));
            std::mem::replace(&mut st.sleepers, later)
        };
        let now = self.now();
        tracing::trace!(%now, fired = due.len(), "sim clock advanced");
        for (_, tx) in due {
            let _ = tx.send(());
        }
        now
    }

    /// Advances to the earliest pending deadline, if any, and returns it. Lets a simulator run
    /// "until the next timer" without knowing what is waiting.
    pub fn advance_to_next_deadline(&self) -> Option<UTime> {
        let next = self.next_deadline()?;
        Some(self.advance_to(next))
    }

    /// The earliest deadline anyone is still waiting for.
    pub fn next_deadline(&self) -> Option<UTime> {
        let mut st = self.lock();
        st.prune();
        st.sleepers.keys().next().map(|(t, _)| *t)
    }

    /// How many timers are pending (dropped timers are not counted).
    pub fn sleepers(&self) -> usize {
        let mut st = self.lock();
        st.prune();
        st.sleepers.len()
    }

    /// Waits until at least `n` timers are pending. Tests use it to know that an operation (a
    /// notify, say) is parked on the clock before they advance it, instead of sleeping.
    pub async fn wait_for_sleepers(&self, n: usize) {
        loop {
            let notified = self.registered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.sleepers() >= n {
                return;
            }
            notified.await;
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> UTime {
        SimClock::now(self)
    }

    fn sleep_until(&self, deadline: UTime) -> SleepFuture {
        let rx = {
            let mut st = self.lock();
            if deadline <= st.now {
                return Box::pin(std::future::ready(()));
            }
            let (tx, rx) = oneshot::channel();
            let seq = st.next_seq;
            st.next_seq += 1;
            st.sleepers.insert((deadline, seq), tx);
            rx
        };
        self.registered.notify_waiters();
        Box::pin(async move {
            // A dropped clock can never reach the deadline, so a closed channel means "never".
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn sim_timer_fires_only_when_advanced_past_deadline() {
        let clock = Arc::new(SimClock::new());
        let start = clock.now();
        let mut timer = clock.sleep(Duration::from_secs(5));
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::from_secs(4));
        assert!(futures_poll_once(&mut timer).is_pending());
        clock.advance(Duration::from_secs(1));
        assert!(futures_poll_once(&mut timer).is_ready());
        assert_eq!(clock.now(), start.saturating_add(Duration::from_secs(5)));
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn sim_past_deadline_is_immediately_ready_and_time_never_goes_back() {
        let clock = SimClock::new();
        let now = clock.now();
        let mut timer = clock.sleep_until(now);
        assert!(futures_poll_once(&mut timer).is_ready());
        clock.advance_to(UTime { sec: 1, nsec: 0 });
        assert_eq!(clock.now(), now);
    }

    #[tokio::test]
    async fn sim_next_deadline_and_dropped_timers() {
        let clock = SimClock::new();
        let a = clock.sleep(Duration::from_secs(3));
        let _b = clock.sleep(Duration::from_secs(7));
        assert_eq!(clock.next_deadline(), Some(clock.now().saturating_add(Duration::from_secs(3))));
        drop(a);
        assert_eq!(clock.sleepers(), 1);
        let t = clock.advance_to_next_deadline().expect("one timer left");
        assert_eq!(t, SimClock::DEFAULT_START.saturating_add(Duration::from_secs(7)));
        assert_eq!(clock.next_deadline(), None);
    }

    #[tokio::test]
    async fn wait_for_sleepers_returns_once_a_task_parks() {
        let clock = Arc::new(SimClock::new());
        let c2 = clock.clone();
        let task = tokio::spawn(async move { c2.sleep(Duration::from_secs(1)).await });
        clock.wait_for_sleepers(1).await;
        clock.advance(Duration::from_secs(1));
        task.await.expect("timer task");
    }

    fn futures_poll_once(f: &mut SleepFuture) -> std::task::Poll<()> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.as_mut().poll(&mut cx)
    }
}
