//! The hand-off between the threads that change the journal's state and the one flusher task
//! that acts on it: how the flusher parks when there is nothing to do, and how a submitter
//! wakes it without the wake-up ever being lost.
//!
//! # Why a module of its own
//!
//! Group commit (mds §6.4, [`crate::commit`]) is only as good as this hand-off: if a submitter
//! changes the state just after the flusher looked at it and just before it parked, and the
//! wake-up is lost, the entry is never flushed and its waiter hangs — no error, no timeout
//! (a flusher parked without a timer sleeps for ever). Such a race lives in a window of a few
//! instructions that ordinary tests almost never hit, so the protocol is kept small, generic
//! over the state it guards, built only from [`crate::sync`] primitives, and model-checked by
//! loom over every interleaving (`journaler::loom_model`, run with `--cfg loom`).
//!
//! # Why not `tokio::sync::Notify`
//!
//! The flusher used to park on a `Notify` next to a `std` mutex. That is correct, but it
//! splits the protocol over two synchronisation objects, and loom cannot look inside tokio's
//! `Notify` (tokio's own loom facade is switched off for dependents), so a model would have
//! checked a copy. Here the whole protocol sits under the one mutex that already guards the
//! state: the flag saying the flusher is parked, a "rung" flag, and the flusher's [`Waker`].
//! Being a plain future, [`Handoff::rung`] still lets the tokio flusher `select!` between a
//! wake-up and its batch timer, and lets the model drive the very same flusher with
//! `loom::future::block_on`.
//!
//! # The protocol
//!
//! * The flusher looks at the state with [`Handoff::look`], under the lock: the look clears
//!   `rung` (everything rung so far is visible to this look) and records whether the flusher
//!   will park, and until when. It then awaits [`Handoff::rung`].
//! * Everyone else changes the state with [`Handoff::update`], under the same lock; whoever
//!   makes work the parked flusher must see calls [`Bell::ring`], which sets `rung` and takes
//!   the flusher's waker, woken once the lock is released.
//! * [`Handoff::rung`] completes when `rung` is set, and registers the waker otherwise, both
//!   under the lock. So a ring between the look and the first poll is kept in `rung`, and a
//!   ring after the poll finds the waker: no window is left. Spurious wake-ups (a stale waker,
//!   a ring for work the flusher already took) only cost one more look.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::sync::{Mutex, MutexGuard};

/// What the flusher decided when it looked at the state.
#[derive(Debug)]
pub(crate) enum Look<J> {
    /// Work to do now; the flusher looks again afterwards, so it is not parked meanwhile.
    Work(J),
    /// Nothing to do: the flusher parks until rung, or until its timer at `until_ns`.
    Park {
        /// The batch timer's deadline, if any (clock nanoseconds).
        until_ns: Option<u64>,
    },
    /// The journal is closed and drained: the flusher exits.
    Stop,
}

/// The flusher's side of the shared slot: whether it is parked, and how to wake it.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    /// `None` while the flusher runs (it will look at the state again before parking),
    /// `Some(deadline)` while it is parked, so that changes it is not waiting for need not
    /// wake it.
    parked: Option<Option<u64>>,
    /// Rung since the flusher's last look.
    rung: bool,
    /// Registered by a pending [`Handoff::rung`].
    waker: Option<Waker>,
}

impl Bell {
    /// What the flusher is parked on: `None` if it is running, `Some(until_ns)` if parked.
    pub(crate) fn parked(&self) -> Option<Option<u64>> {
        self.parked
    }

    /// Tells the flusher to look at the state again. The caller holds the lock and has
    /// already made the change the flusher must see; the wake-up itself happens when
    /// [`Handoff::update`] releases the lock.
    pub(crate) fn ring(&mut self) {
        self.rung = true;
    }
}

struct Slot<S> {
    state: S,
    bell: Bell,
}

/// A state `S` shared by submitters and one flusher task, with the park/wake protocol of the
/// module documentation.
pub(crate) struct Handoff<S> {
    slot: Mutex<Slot<S>>,
}

/// Read access to the state (and writes that need not wake the flusher).
pub(crate) struct StateGuard<'a, S> {
    slot: MutexGuard<'a, Slot<S>>,
}

impl<S> std::ops::Deref for StateGuard<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.slot.state
    }
}

impl<S> std::ops::DerefMut for StateGuard<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.slot.state
    }
}

impl<S> Handoff<S> {
    /// Guards `state`; the flusher counts as running until its first look.
    pub(crate) fn new(state: S) -> Self {
        Handoff { slot: Mutex::new(Slot { state, bell: Bell::default() }) }
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot<S>> {
        // State updates are small and complete before any call that could panic; a poisoned
        // lock therefore still guards consistent state.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the state for a change that never needs the flusher's attention (a read, or a
    /// field only others look at). Anything the flusher acts on goes through
    /// [`Handoff::update`].
    pub(crate) fn lock(&self) -> StateGuard<'_, S> {
        StateGuard { slot: self.lock_slot() }
    }

    /// Runs `f` on the state under the lock; if `f` rang the bell, wakes the parked flusher
    /// after the lock is released (so it does not wake only to block on the lock).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S, &mut Bell) -> R) -> R {
        let (r, waker) = {
            let mut slot = self.lock_slot();
            let Slot { state, bell } = &mut *slot;
            let r = f(state, bell);
            // A ring with no waker registered stays in `rung` for the flusher's next poll.
            let waker = if bell.rung { bell.waker.take() } else { None };
            (r, waker)
        };
        if let Some(w) = waker {
            w.wake();
        }
        r
    }

    /// The flusher looks at the state: `f` takes the work there is, or says why not. Rings
    /// before this look are answered by it; the bell remembers whether the flusher parks.
    pub(crate) fn look<J>(&self, f: impl FnOnce(&mut S) -> Look<J>) -> Look<J> {
        let mut slot = self.lock_slot();
        slot.bell.rung = false;
        // A waker left by a rung future dropped in a `select!` is stale; the next poll
        // registers a fresh one.
        slot.bell.waker = None;
        let look = f(&mut slot.state);
        slot.bell.parked = match look {
            Look::Park { until_ns } => Some(until_ns),
            Look::Work(_) | Look::Stop => None,
        };
        look
    }

    /// Completes once the bell has rung since the flusher's last [`Handoff::look`]; the
    /// flusher then counts as running again.
    pub(crate) fn rung(&self) -> Rung<'_, S> {
        Rung { handoff: self }
    }
}

/// The future returned by [`Handoff::rung`].
pub(crate) struct Rung<'a, S> {
    handoff: &'a Handoff<S>,
}

impl<S> Future for Rung<'_, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.handoff.lock_slot();
        let bell = &mut slot.bell;
        if bell.rung {
            bell.rung = false;
            bell.parked = None;
            return Poll::Ready(());
        }
        match &mut bell.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(h: &Handoff<u32>, counter: &Arc<Counter>) -> Poll<()> {
        let waker = Waker::from(counter.clone());
        let mut fut = h.rung();
        Pin::new(&mut fut).poll(&mut Context::from_waker(&waker))
    }

    /// The lost-wake-up window: a ring between the look and the first poll is kept.
    #[test]
    fn a_ring_before_the_first_poll_is_not_lost() {
        let h = Handoff::new(0u32);
        let c = Arc::new(Counter::default());
        assert!(matches!(h.look(|_| Look::<()>::Park { until_ns: None }), Look::Park { .. }));
        h.update(|s, bell| {
            *s += 1;
            assert_eq!(bell.parked(), Some(None));
            bell.ring();
        });
        assert_eq!(poll(&h, &c), Poll::Ready(()));
        assert_eq!(h.update(|_, bell| bell.parked()), None, "woken: counts as running");
    }

    #[test]
    fn a_ring_after_the_poll_wakes_the_registered_waker_once() {
        let h = Handoff::new(0u32);
        let c = Arc::new(Counter::default());
        h.look(|_| Look::<()>::Park { until_ns: Some(7) });
        assert_eq!(poll(&h, &c), Poll::Pending);
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
        h.update(|_, bell| bell.ring());
        h.update(|_, bell| bell.ring());
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "the waker is taken by the first ring");
        assert_eq!(poll(&h, &c), Poll::Ready(()));
    }

    #[test]
    fn a_look_answers_earlier_rings_and_updates_without_ring_do_not_wake() {
        let h = Handoff::new(0u32);
        let c = Arc::new(Counter::default());
        h.update(|_, bell| {
            assert_eq!(bell.parked(), None, "running until the first look");
            bell.ring();
        });
        assert!(matches!(h.look(|s| Look::Work(*s)), Look::Work(0)));
        h.look(|_| Look::<()>::Park { until_ns: None });
        assert_eq!(poll(&h, &c), Poll::Pending, "the ring before the look was answered by it");
        *h.lock() += 1;
        h.update(|s, _| *s += 1);
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
        assert_eq!(*h.lock(), 2);
        assert!(matches!(h.look(|_| Look::<()>::Stop), Look::Stop));
        assert_eq!(h.update(|_, bell| bell.parked()), None);
    }
}
