//! The group-commit policy as a sans-I/O state machine (STYLE §1).
//!
//! Durability costs one device sync (an `fdatasync`, ~0.4 ms on the CI disk, anchors §1.5) no
//! matter how many entries it covers, so the journal shares each sync among every entry appended
//! before it starts — leader/follower group commit as RocksDB and PostgreSQL do it (anchors
//! §1.5), and as Ceph's submit thread does by flushing everything pending when asked (mds §6.4).
//!
//! [`GroupCommit`] decides *when* to flush and *what*; it does no I/O and reads no clock. The
//! journal's runtime feeds it [`Input`]s (an entry was appended, someone waits for a position, a
//! flush finished or failed, a timer fired) and executes the [`Effect`]s it returns (start a
//! flush of a byte range, arm a timer, report a new safe position, fail everything). Rules:
//!
//! * at most one flush is in flight; entries appended meanwhile form the next batch, so
//!   concurrent submitters share one flush and at most one batch is ever unsynced; the next
//!   batch is cut only after the completed one's submitters had a chance to append again
//!   (see [`Input::FlushDone`]);
//! * a flush starts when someone waits for unflushed data (after `commit_delay`, 0 by default:
//!   no proactive delay, as RocksDB), when `max_batch_bytes` are pending, or when the oldest
//!   pending byte has waited `max_batch_delay` (so data nobody waits for still becomes durable);
//! * a flush carries at most `max_batch_bytes`, cut at an entry boundary (at least one entry);
//! * the safe position only moves forward, only to the end of a completed flush, and so
//!   completions fire in log order; after a failure nothing is ever flushed or reported safe.

use std::collections::VecDeque;
use std::time::Duration;

/// Batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Largest flush, in bytes; also the pending amount that triggers a flush by itself.
    pub max_batch_bytes: u64,
    /// Longest a pending byte waits before a flush starts even if nobody waits for it.
    pub max_batch_delay: Duration,
    /// How long a flush requested by a waiter is held back to gather more entries
    /// (PostgreSQL's `commit_delay`). Zero flushes as soon as the device is idle.
    pub commit_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch_bytes: 1 << 20,
            max_batch_delay: Duration::from_millis(5),
            commit_delay: Duration::ZERO,
        }
    }
}

/// Something that happened, fed to [`GroupCommit::step`]. Times are nanoseconds on the
/// runtime's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// An entry was appended; the stream now ends at `end`.
    Appended {
        /// New end of the appended stream.
        end: u64,
        /// Current time.
        now_ns: u64,
    },
    /// Someone waits for everything before `pos` to be durable.
    SafeWanted {
        /// The position that must become safe.
        pos: u64,
        /// Current time.
        now_ns: u64,
    },
    /// The flush in flight completed: everything before `to` is durable. The next flush is
    /// not decided here: the runtime delivers the completions, lets the woken submitters run
    /// (one scheduler yield) and then sends a [`Input::Tick`]. Entries those submitters append
    /// in between join the next batch; deciding at once would leave them for the batch after,
    /// halving the batch size of closed-loop submitters (a ping-pong between two groups).
    FlushDone {
        /// End of the flushed range.
        to: u64,
    },
    /// The flush in flight failed.
    FlushFailed,
    /// The timer armed by [`Effect::ArmTimer`] fired (or any time passed).
    Tick {
        /// Current time.
        now_ns: u64,
    },
}

/// Something the runtime must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Write stream range `[from, to)` and sync it; report [`Input::FlushDone`] or
    /// [`Input::FlushFailed`].
    Flush {
        /// Start of the range (the previous flush's end).
        from: u64,
        /// End of the range (an entry boundary).
        to: u64,
    },
    /// Deliver an [`Input::Tick`] at (or after) this time. Replaces any earlier request.
    ArmTimer {
        /// Deadline in nanoseconds.
        at_ns: u64,
    },
    /// Everything before `up_to` is durable: complete the waiters up to it, in order.
    Safe {
        /// The new safe position.
        up_to: u64,
    },
    /// The device failed: fail every waiter and refuse further work.
    Failed,
}

/// The policy's state. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    cfg: BatchConfig,
    appended: u64,
    flushed: u64,
    safe: u64,
    in_flight: bool,
    /// A flush just completed and the runtime has not ticked since: hold the next batch open
    /// so the completed submitters' next entries can join it.
    regrouping: bool,
    wanted: u64,
    /// Ends of appended entries beyond `flushed`, to cut batches at entry boundaries.
    entry_ends: VecDeque<u64>,
    /// When the oldest unflushed byte was appended.
    pending_since_ns: Option<u64>,
    /// When the oldest unsatisfied flush request was made.
    wanted_since_ns: Option<u64>,
    timer_ns: Option<u64>,
    failed: bool,
}

impl GroupCommit {
    /// A policy for a stream whose durable data ends at `pos`.
    pub fn new(cfg: BatchConfig, pos: u64) -> Self {
        GroupCommit {
            cfg,
            appended: pos,
            flushed: pos,
            safe: pos,
            in_flight: false,
            regrouping: false,
            wanted: pos,
            entry_ends: VecDeque::new(),
            pending_since_ns: None,
            wanted_since_ns: None,
            timer_ns: None,
            failed: false,
        }
    }

    /// End of everything appended (the journal's write position).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// End of everything handed to the device.
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// End of everything durable.
    pub fn safe(&self) -> u64 {
        self.safe
    }

    /// Whether a flush is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The deadline of the timer the policy wants, if any.
    pub fn timer(&self) -> Option<u64> {
        self.timer_ns
    }

    /// Whether the policy has seen a failure.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Feeds one input and appends the resulting effects to `out`.
    pub fn step(&mut self, input: Input, out: &mut Vec<Effect>) {
        match input {
            Input::Appended { end, now_ns } => {
                if self.failed || end <= self.appended {
                    return;
                }
                self.appended = end;
                self.entry_ends.push_back(end);
                self.pending_since_ns.get_or_insert(now_ns);
                self.decide(now_ns, out);
            }
            Input::SafeWanted { pos, now_ns } => {
                let pos = pos.min(self.appended);
                if self.failed || pos <= self.safe {
                    return;
                }
                if pos > self.wanted {
                    self.wanted = pos;
                }
                if self.wanted > self.flushed {
                    self.wanted_since_ns.get_or_insert(now_ns);
                }
                self.decide(now_ns, out);
            }
            Input::FlushDone { to } => {
                if self.failed {
                    return;
                }
                if !self.in_flight || to != self.flushed {
                    // Not the flush we started: a runtime bug. Fail rather than report anything
                    // safe that we cannot vouch for.
                    tracing::error!(
                        to,
                        flushed = self.flushed,
                        "completion does not match the flush in flight"
                    );
                    self.fail(out);
                    return;
                }
                self.in_flight = false;
                self.regrouping = true;
                self.safe = to;
                out.push(Effect::Safe { up_to: to });
            }
            Input::FlushFailed => {
                if !self.failed {
                    self.fail(out);
                }
            }
            Input::Tick { now_ns } => {
                self.regrouping = false;
                if self.timer_ns.is_some_and(|t| now_ns >= t) {
                    self.timer_ns = None;
                }
                self.decide(now_ns, out);
            }
        }
    }

    fn fail(&mut self, out: &mut Vec<Effect>) {
        self.failed = true;
        self.in_flight = false;
        self.timer_ns = None;
        out.push(Effect::Failed);
    }

    fn decide(&mut self, now_ns: u64, out: &mut Vec<Effect>) {
        if self.failed || self.in_flight || self.regrouping || self.appended == self.flushed {
            return;
        }
        let pending = self.appended - self.flushed;
        let waited = self.wanted > self.flushed;
        let commit_at = self.wanted_since_ns.map(|t| t.saturating_add(dur_ns(self.cfg.commit_delay)));
        let age_at = self.pending_since_ns.map(|t| t.saturating_add(dur_ns(self.cfg.max_batch_delay)));
        let due = pending >= self.cfg.max_batch_bytes
            || (waited && commit_at.is_some_and(|t| now_ns >= t))
            || age_at.is_some_and(|t| now_ns >= t);
        if due {
            self.start_flush(out);
            return;
        }
        let deadline = [if waited { commit_at } else { None }, age_at].into_iter().flatten().min();
        if let Some(at_ns) = deadline
            && self.timer_ns != Some(at_ns)
        {
            self.timer_ns = Some(at_ns);
            out.push(Effect::ArmTimer { at_ns });
        }
    }

    fn start_flush(&mut self, out: &mut Vec<Effect>) {
        let limit = self.flushed.saturating_add(self.cfg.max_batch_bytes.max(1));
        let mut to = self.flushed;
        while let Some(&end) = self.entry_ends.front() {
            if end > limit && to > self.flushed {
                break;
            }
            to = end;
            self.entry_ends.pop_front();
        }
        debug_assert!(to > self.flushed, "a pending flush always has an entry");
        let from = self.flushed;
        self.flushed = to;
        self.in_flight = true;
        if self.flushed == self.appended {
            self.pending_since_ns = None;
        }
        if self.wanted <= self.flushed {
            self.wanted_since_ns = None;
        }
        out.push(Effect::Flush { from, to });
    }
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg() -> BatchConfig {
        BatchConfig {
            max_batch_bytes: 1000,
            max_batch_delay: Duration::from_millis(5),
            commit_delay: Duration::ZERO,
        }
    }

    /// Feeds inputs and returns all effects, one `check(inputs, expected)` helper for the area.
    fn run(gc: &mut GroupCommit, inputs: &[Input]) -> Vec<Effect> {
        let mut out = Vec::new();
        for i in inputs {
            gc.step(*i, &mut out);
        }
        out
    }

    fn app(end: u64, now_ns: u64) -> Input {
        Input::Appended { end, now_ns }
    }

    fn want(pos: u64, now_ns: u64) -> Input {
        Input::SafeWanted { pos, now_ns }
    }

    fn done(to: u64) -> Input {
        Input::FlushDone { to }
    }

    fn tick(now_ns: u64) -> Input {
        Input::Tick { now_ns }
    }

    #[test]
    fn a_waiter_flushes_at_once_and_completion_reports_safe() {
        let mut gc = GroupCommit::new(cfg(), 100);
        let fx = run(&mut gc, &[app(150, 0), want(150, 0), done(150), tick(1)]);
        assert_eq!(
            fx,
            vec![
                Effect::ArmTimer { at_ns: 5 * MS },
                Effect::Flush { from: 100, to: 150 },
                Effect::Safe { up_to: 150 }
            ]
        );
        assert_eq!(gc.safe(), 150);
    }

    #[test]
    fn concurrent_submitters_share_the_next_flush() {
        let mut gc = GroupCommit::new(cfg(), 0);
        let mut fx = run(&mut gc, &[app(10, 0), want(10, 0)]);
        assert_eq!(fx.pop(), Some(Effect::Flush { from: 0, to: 10 }));
        // While the first flush is in flight three more entries arrive and wait.
        let fx = run(&mut gc, &[app(20, 1), want(20, 1), app(30, 1), want(30, 1), app(40, 2), want(40, 2)]);
        assert_eq!(fx, vec![], "no second flush while one is in flight");
        let fx = run(&mut gc, &[done(10), tick(3)]);
        assert_eq!(fx, vec![Effect::Safe { up_to: 10 }, Effect::Flush { from: 10, to: 40 }]);
        // The completion alone does not cut the next batch; the tick after it does.
        let mut gc2 = GroupCommit::new(cfg(), 0);
        run(&mut gc2, &[app(10, 0), want(10, 0), app(20, 0), want(20, 0)]);
        assert_eq!(run(&mut gc2, &[done(10)]), vec![Effect::Safe { up_to: 10 }]);
        // A completed submitter appends again before the tick: it joins the next batch.
        assert_eq!(run(&mut gc2, &[app(30, 1), want(30, 1)]), vec![]);
        assert_eq!(run(&mut gc2, &[tick(1)]), vec![Effect::Flush { from: 10, to: 30 }]);
        let fx = run(&mut gc, &[done(40), tick(4)]);
        assert_eq!(fx, vec![Effect::Safe { up_to: 40 }]);
    }

    #[test]
    fn batches_are_cut_at_entry_boundaries_by_bytes() {
        let mut gc = GroupCommit::new(cfg(), 0);
        // Three 400-byte entries: 1200 pending ≥ 1000 → flush, cut after two entries.
        let fx = run(&mut gc, &[app(400, 0), app(800, 0), app(1200, 0)]);
        assert_eq!(fx, vec![Effect::ArmTimer { at_ns: 5 * MS }, Effect::Flush { from: 0, to: 800 }]);
        // The rest is flushed when the first completes only if due: it is not (no waiter, young).
        let fx = run(&mut gc, &[done(800), tick(1)]);
        // The timer armed for the first entry still stands, so none is re-armed.
        assert_eq!(fx, vec![Effect::Safe { up_to: 800 }]);
        let fx = run(&mut gc, &[Input::Tick { now_ns: 5 * MS }]);
        assert_eq!(fx, vec![Effect::Flush { from: 800, to: 1200 }]);
    }

    #[test]
    fn an_entry_larger_than_a_batch_is_flushed_alone() {
        let mut gc = GroupCommit::new(cfg(), 0);
        let fx = run(&mut gc, &[app(5000, 0)]);
        assert_eq!(fx, vec![Effect::Flush { from: 0, to: 5000 }]);
    }

    #[test]
    fn unwaited_data_is_flushed_after_max_batch_delay() {
        let mut gc = GroupCommit::new(cfg(), 0);
        let fx = run(&mut gc, &[app(10, 0), Input::Tick { now_ns: 4 * MS }]);
        assert_eq!(fx, vec![Effect::ArmTimer { at_ns: 5 * MS }]);
        let fx = run(&mut gc, &[Input::Tick { now_ns: 5 * MS }]);
        assert_eq!(fx, vec![Effect::Flush { from: 0, to: 10 }]);
    }

    #[test]
    fn commit_delay_holds_a_requested_flush_to_gather_company() {
        let mut gc = GroupCommit::new(BatchConfig { commit_delay: Duration::from_millis(1), ..cfg() }, 0);
        let fx = run(&mut gc, &[app(10, 0), want(10, 0), app(20, MS / 2), want(20, MS / 2)]);
        assert_eq!(fx, vec![Effect::ArmTimer { at_ns: 5 * MS }, Effect::ArmTimer { at_ns: MS }]);
        let fx = run(&mut gc, &[Input::Tick { now_ns: MS }]);
        assert_eq!(fx, vec![Effect::Flush { from: 0, to: 20 }]);
    }

    #[test]
    fn failure_is_final_and_nothing_after_it_is_safe() {
        let mut gc = GroupCommit::new(cfg(), 0);
        let fx =
            run(&mut gc, &[app(10, 0), want(10, 0), Input::FlushFailed, app(20, 1), want(20, 1), done(10)]);
        assert_eq!(
            fx,
            vec![Effect::ArmTimer { at_ns: 5 * MS }, Effect::Flush { from: 0, to: 10 }, Effect::Failed]
        );
        assert_eq!(gc.safe(), 0);
        assert!(gc.failed());
    }

    #[test]
    fn a_mismatched_completion_fails_instead_of_acknowledging() {
        let mut gc = GroupCommit::new(cfg(), 0);
        let mut out = Vec::new();
        gc.step(app(10, 0), &mut out);
        gc.step(want(10, 0), &mut out);
        out.clear();
        gc.step(done(99), &mut out);
        assert_eq!(out, vec![Effect::Failed]);
        assert_eq!(gc.safe(), 0);
    }

    #[test]
    fn waiting_for_already_safe_data_does_nothing() {
        let mut gc = GroupCommit::new(cfg(), 50);
        assert_eq!(run(&mut gc, &[want(50, 0), want(10, 0)]), vec![]);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Append(u64),
            WantLatest,
            Complete,
            Tick(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1u64..600).prop_map(Op::Append),
                Just(Op::WantLatest),
                Just(Op::Complete),
                (0u64..3 * MS).prop_map(Op::Tick),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Safety and liveness of the policy against a random schedule.
            #[test]
            fn flushes_are_contiguous_safe_is_monotone_and_waiters_are_served(ops in proptest::collection::vec(op(), 1..80)) {
                let mut gc = GroupCommit::new(cfg(), 4096);
                let mut now = 0u64;
                let mut flushing: Option<(u64, u64)> = None;
                let mut next_from = 4096u64;
                let mut last_safe = 4096u64;
                let mut out = Vec::new();
                for op in ops {
                    let input = match op {
                        Op::Append(n) => app(gc.appended() + n, now),
                        Op::WantLatest => want(gc.appended(), now),
                        Op::Complete => match flushing.take() {
                            Some((_, to)) => done(to),
                            None => Input::Tick { now_ns: now },
                        },
                        Op::Tick(dt) => { now += dt; Input::Tick { now_ns: now } }
                    };
                    gc.step(input, &mut out);
                    for fx in out.drain(..) {
                        match fx {
                            Effect::Flush { from, to } => {
                                prop_assert!(flushing.is_none(), "two flushes in flight");
                                prop_assert_eq!(from, next_from, "flushes must be contiguous");
                                prop_assert!(to > from && to <= gc.appended());
                                next_from = to;
                                flushing = Some((from, to));
                            }
                            Effect::Safe { up_to } => {
                                prop_assert!(up_to > last_safe, "safe must move forward");
                                last_safe = up_to;
                            }
                            Effect::ArmTimer { .. } => {}
                            Effect::Failed => prop_assert!(false, "no failure was injected"),
                        }
                    }
                    prop_assert!(gc.safe() <= gc.flushed() && gc.flushed() <= gc.appended());
                }
                // Liveness: with the device completing every flush and the runtime ticking after
                // each completion, a waiter for everything is served.
                gc.step(want(gc.appended(), now), &mut out);
                gc.step(tick(now), &mut out);
                for _ in 0..1000 {
                    let mut progressed = false;
                    for fx in std::mem::take(&mut out) {
                        if let Effect::Flush { from, to } = fx {
                            prop_assert!(flushing.is_none());
                            prop_assert_eq!(from, next_from);
                            next_from = to;
                            flushing = Some((from, to));
                        }
                    }
                    if let Some((_, to)) = flushing.take() {
                        gc.step(done(to), &mut out);
                        gc.step(tick(now), &mut out);
                        progressed = true;
                    }
                    if !progressed { break; }
                }
                prop_assert_eq!(gc.safe(), gc.appended());
            }
        }
    }
}
