//! librbd's ManagedLock (rbd spec §1) and the small ExclusiveLock decisions around it (§2),
//! as data and pure functions.
//!
//! The `rbd-exclusive-lock` crate drives a real lock over RADOS: it owns the mutex, the queue of
//! waiting callers, the watch and the cls calls. Every *decision* that drive loop makes lives
//! here instead, so that the runtime never re-derives a rule from the spec and every rule is
//! unit-tested without I/O:
//!
//! * [`State`] and [`Action`] with their librbd ordinals (§1.1, §1.2), the owner / transition
//!   predicates and the shutdown predicate ([`is_shutting_down`]);
//! * [`ActionQueue`], the FIFO of (action, callbacks) with librbd's coalescing rules (§1.2),
//!   generic over the callback type so the runtime can store closures or oneshot senders;
//! * [`entry_decision`]: what a public call does right away (§1.3);
//! * [`start_action`] and the `after_*` functions: the transition table of §1.4, one function
//!   per step, each saying which state to enter and what to run next;
//! * the sub-request decisions of §1.6 (GetLocker, AcquireRequest, BreakRequest);
//! * the cookie format of §0.1 and the cls_lock constants;
//! * ExclusiveLock's hook, policy and REQUEST_LOCK decisions (§2.2, §2.3, §2.7–§2.10).
//!
//! # Why results are plain `i32`
//!
//! Everywhere else the project uses typed errors. Here results are librbd's `r` values: `0` or
//! a negative Linux errno (see [`errno`]). That is deliberate. This module is a table that
//! mirrors librbd decision by decision, and those decisions branch on exact errno values
//! ("-EBUSY with a cached locker breaks", "-EBLOCKLISTED or -ENOENT still clears the cookie",
//! "-ECANCELED parks the action"), pass them through hooks unchanged and finally hand them to
//! callers that compare them with the numbers real librbd returns. A typed enum would need a
//! lossless round trip to `i32` at every step for no gain; the runtime crate converts to its
//! own error type at its public boundary.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU64;

/// Linux errno numbers used by librbd's lock code, positive as in `<errno.h>`.
///
/// Results in this module are `0` or the *negated* value (`-errno::EBUSY`), exactly like
/// librbd's `r`. Only the numbers the lock decisions branch on are listed.
pub mod errno {
    /// No such entry: no locker, missing header object.
    pub const ENOENT: i32 = 2;
    /// Try again: the lock owner is alive, or changed during a break.
    pub const EAGAIN: i32 = 11;
    /// Resource busy: locked by someone else, external lock, owner asked to break itself.
    pub const EBUSY: i32 = 16;
    /// Invalid argument, e.g. a break that would blocklist ourselves.
    pub const EINVAL: i32 = 22;
    /// Read-only: a standard-policy owner refused to release, or we are not owner.
    pub const EROFS: i32 = 30;
    /// Restart: feature disabled meanwhile, or a canceled maintenance op.
    pub const ERESTART: i32 = 85;
    /// Not supported, e.g. `set_cookie` on an old OSD.
    pub const EOPNOTSUPP: i32 = 95;
    /// The lock is shutting down.
    pub const ESHUTDOWN: i32 = 108;
    /// The client is blocklisted. librbd defines it as 108, the same number as `ESHUTDOWN`
    /// on Linux, so the two can never be told apart by value (rbd spec provenance notes).
    pub const EBLOCKLISTED: i32 = 108;
    /// A notify timed out.
    pub const ETIMEDOUT: i32 = 110;
    /// Returned by the post-acquire hook when it parked the action (WAITING_FOR_LOCK).
    pub const ECANCELED: i32 = 125;
}

// ---------------------------------------------------------------------------------------------
// §0.1 constants and the cookie
// ---------------------------------------------------------------------------------------------

/// cls_lock name of the managed lock on the image header object (rbd §0.1, §10 fact 1).
pub const LOCK_NAME: &str = "rbd_lock";

/// Tag librbd puts on its lock; a lock with any other tag is "external" (rbd §0.1, fact 2).
pub const LOCK_TAG: &str = "internal";

/// First token of every librbd lock cookie (rbd §0.1).
pub const COOKIE_PREFIX: &str = "auto";

/// cls_lock lock type. librbd images only ever use [`ClsLockType::Exclusive`]; `Shared`
/// exists so that a lock someone else took in shared mode can be recognised (§1.6.1 step 5).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClsLockType {
    /// `LOCK_EXCLUSIVE`, numeric 1: the only type librbd takes.
    Exclusive = 1,
    /// `LOCK_SHARED`, numeric 2: never taken by librbd images.
    Shared = 2,
}

impl ClsLockType {
    /// The wire value cls_lock encodes.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// Inverse of [`ClsLockType::value`]; `None` for anything cls_lock would reject.
    pub const fn from_value(v: u8) -> Option<ClsLockType> {
        match v {
            1 => Some(ClsLockType::Exclusive),
            2 => Some(ClsLockType::Shared),
            _ => None,
        }
    }
}

/// The numeric cls_lock EXCLUSIVE type, for callers that build raw cls requests.
pub const LOCK_TYPE_EXCLUSIVE: u8 = ClsLockType::Exclusive.value();

/// Builds the lock cookie for a watch handle: `auto <decimal handle>` (rbd §0.1, fact 3).
///
/// The handle is non-zero by type because a zero handle means "no watch registered", and
/// librbd never locks without a watch (§1.4 sends it to WAITING_FOR_REGISTER instead).
pub fn encode_cookie(watch_handle: NonZeroU64) -> String {
    format!("{COOKIE_PREFIX} {watch_handle}")
}

/// Parses a lock cookie back into the watch handle it names (rbd §0.1).
///
/// The cookie is split on whitespace; the first token must be exactly `auto` and the second
/// must parse as a decimal u64. Anything else returns `None`, which callers treat as "locked
/// by an external mechanism" (GetLocker answers -EBUSY, §1.6.1). Tokens after the second are
/// ignored: the spec only constrains the first two, and librbd's stream-based parser does not
/// look further either. A handle of 0 parses (the rule does not exclude it) even though
/// [`encode_cookie`] never produces it.
pub fn decode_cookie(cookie: &str) -> Option<u64> {
    let mut tokens = cookie.split_whitespace();
    if tokens.next()? != COOKIE_PREFIX {
        return None;
    }
    tokens.next()?.parse::<u64>().ok()
}

// ---------------------------------------------------------------------------------------------
// §1.1 states
// ---------------------------------------------------------------------------------------------

/// ManagedLock states, with librbd's ordinals (rbd §1.1).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// ExclusiveLock's starting state, before `init`.
    Uninitialized = 0,
    /// ExclusiveLock `init` is registering its I/O dispatch layer.
    Initializing = 1,
    /// Idle, not owner. A plain ManagedLock starts here.
    Unlocked = 2,
    /// Owner, steady state.
    Locked = 3,
    /// Pre-acquire hook, cls lock and break attempts in flight.
    Acquiring = 4,
    /// ExclusiveLock's post-acquire steps after the object map is open; already owner.
    PostAcquiring = 5,
    /// An acquire found no watch handle and waits for `reacquire_lock` (re-watch).
    WaitingForRegister = 6,
    /// A live peer holds the lock and REQUEST_LOCK was sent; the acquire is parked.
    WaitingForLock = 7,
    /// Updating the cookie after a re-watch; still owner.
    Reacquiring = 8,
    /// Pre-release hook running (flushing); still owner.
    PreReleasing = 9,
    /// cls unlock and post-release hook running.
    Releasing = 10,
    /// Shut down while locked: pre-release hook running; still owner.
    PreShuttingDown = 11,
    /// Unlocking and draining tracked operations.
    ShuttingDown = 12,
    /// Terminal.
    Shutdown = 13,
}

impl State {
    /// Number of states.
    pub const COUNT: usize = 14;

    /// Every state in ordinal order, for exhaustive tests and exports.
    pub const ALL: [State; State::COUNT] = [
        State::Uninitialized,
        State::Initializing,
        State::Unlocked,
        State::Locked,
        State::Acquiring,
        State::PostAcquiring,
        State::WaitingForRegister,
        State::WaitingForLock,
        State::Reacquiring,
        State::PreReleasing,
        State::Releasing,
        State::PreShuttingDown,
        State::ShuttingDown,
        State::Shutdown,
    ];

    /// librbd's ordinal (declaration order), which is what its logs print.
    pub const fn ordinal(self) -> u8 {
        self as u8
    }

    /// Inverse of [`State::ordinal`].
    pub const fn from_ordinal(v: u8) -> Option<State> {
        if (v as usize) < State::COUNT { Some(State::ALL[v as usize]) } else { None }
    }

    /// The librbd constant name without its `STATE_` prefix, e.g. `WAITING_FOR_REGISTER`.
    pub const fn name(self) -> &'static str {
        match self {
            State::Uninitialized => "UNINITIALIZED",
            State::Initializing => "INITIALIZING",
            State::Unlocked => "UNLOCKED",
            State::Locked => "LOCKED",
            State::Acquiring => "ACQUIRING",
            State::PostAcquiring => "POST_ACQUIRING",
            State::WaitingForRegister => "WAITING_FOR_REGISTER",
            State::WaitingForLock => "WAITING_FOR_LOCK",
            State::Reacquiring => "REACQUIRING",
            State::PreReleasing => "PRE_RELEASING",
            State::Releasing => "RELEASING",
            State::PreShuttingDown => "PRE_SHUTTING_DOWN",
            State::ShuttingDown => "SHUTTING_DOWN",
            State::Shutdown => "SHUTDOWN",
        }
    }

    /// Parses [`State::name`], case-insensitively; also accepts the `STATE_` prefix.
    pub fn from_name(s: &str) -> Option<State> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("STATE_").unwrap_or(&upper);
        State::ALL.into_iter().find(|st| st.name() == bare)
    }

    /// What `is_lock_owner()` answers in this state (rbd §1.1, §10 fact 20): true in LOCKED,
    /// POST_ACQUIRING, REACQUIRING, PRE_RELEASING and PRE_SHUTTING_DOWN.
    pub const fn is_lock_owner(self) -> bool {
        matches!(
            self,
            State::Locked
                | State::PostAcquiring
                | State::Reacquiring
                | State::PreReleasing
                | State::PreShuttingDown
        )
    }

    /// Transition states make newly queued actions wait instead of starting (rbd §1.1, §1.2
    /// rule 3). Only UNINITIALIZED, UNLOCKED, LOCKED and SHUTDOWN are not transitions.
    pub const fn is_transition(self) -> bool {
        !matches!(self, State::Uninitialized | State::Unlocked | State::Locked | State::Shutdown)
    }

    /// The state part of the shutdown predicate (rbd §1.1); see [`is_shutting_down`] for the
    /// full predicate, which also looks at the queue.
    pub const fn is_shutdown_state(self) -> bool {
        matches!(self, State::PreShuttingDown | State::ShuttingDown | State::Shutdown)
    }

    /// The lock object may only be destroyed in SHUTDOWN, UNLOCKED or UNINITIALIZED (rbd §1.1).
    pub const fn may_destroy(self) -> bool {
        matches!(self, State::Shutdown | State::Unlocked | State::Uninitialized)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a plain ManagedLock starts (rbd §1.1: UNLOCKED).
pub const INITIAL_STATE: State = State::Unlocked;

/// Where an ExclusiveLock starts: its constructor moves the lock from UNLOCKED to
/// UNINITIALIZED, and `init` then goes INITIALIZING → UNLOCKED (rbd §1.1, §2.1).
pub const EXCLUSIVE_LOCK_INITIAL_STATE: State = State::Uninitialized;

/// The states ExclusiveLock `init` walks through, in order (rbd §2.1).
pub const EXCLUSIVE_LOCK_INIT_STATES: [State; 2] = [State::Initializing, State::Unlocked];

// ---------------------------------------------------------------------------------------------
// §1.2 actions and the queue
// ---------------------------------------------------------------------------------------------

/// ManagedLock actions, with librbd's ordinals (rbd §1.2).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Acquire without waiting for a live owner to hand over (a live owner gives 0, not owner).
    TryLock = 0,
    /// Acquire, asking a live owner to release if needed.
    AcquireLock = 1,
    /// Move the lock to a new cookie after a re-watch.
    ReacquireLock = 2,
    /// Release the lock.
    ReleaseLock = 3,
    /// Release if held and shut the lock down for good.
    ShutDown = 4,
}

impl Action {
    /// Number of actions.
    pub const COUNT: usize = 5;

    /// Every action in ordinal order.
    pub const ALL: [Action; Action::COUNT] =
        [Action::TryLock, Action::AcquireLock, Action::ReacquireLock, Action::ReleaseLock, Action::ShutDown];

    /// librbd's ordinal.
    pub const fn ordinal(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Action::ordinal`].
    pub const fn from_ordinal(v: u8) -> Option<Action> {
        if (v as usize) < Action::COUNT { Some(Action::ALL[v as usize]) } else { None }
    }

    /// The librbd constant name without its `ACTION_` prefix, e.g. `ACQUIRE_LOCK`.
    pub const fn name(self) -> &'static str {
        match self {
            Action::TryLock => "TRY_LOCK",
            Action::AcquireLock => "ACQUIRE_LOCK",
            Action::ReacquireLock => "REACQUIRE_LOCK",
            Action::ReleaseLock => "RELEASE_LOCK",
            Action::ShutDown => "SHUT_DOWN",
        }
    }

    /// Parses [`Action::name`], case-insensitively; also accepts the `ACTION_` prefix.
    pub fn from_name(s: &str) -> Option<Action> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("ACTION_").unwrap_or(&upper);
        Action::ALL.into_iter().find(|a| a.name() == bare)
    }

    /// TRY_LOCK and ACQUIRE_LOCK run the same acquire path (§1.4) and only differ in the
    /// ExclusiveLock post-acquire hook (§2.3).
    pub const fn is_acquire(self) -> bool {
        matches!(self, Action::TryLock | Action::AcquireLock)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shutdown predicate (rbd §1.1): the state is PRE_SHUTTING_DOWN, SHUTTING_DOWN or
/// SHUTDOWN, or the last queued action is SHUT_DOWN.
///
/// Taking the last queued action rather than the whole queue matters: it is why a caller that
/// arrives after `shut_down()` is refused at once even though SHUT_DOWN has not run yet.
pub fn is_shutting_down(state: State, last_queued: Option<Action>) -> bool {
    state.is_shutdown_state() || last_queued == Some(Action::ShutDown)
}

/// One queue entry: an action and every caller waiting for its result (rbd §1.2 rule 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAction<C> {
    /// The action to run.
    pub action: Action,
    /// Callers to complete with the action's result, in arrival order. May be empty (librbd
    /// queues callback-less RELEASE/ACQUIRE entries for release-then-acquire, §1.4).
    pub callbacks: Vec<C>,
}

/// What [`ActionQueue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The callback joined an existing entry of the same action type (rbd §1.2 rule 2).
    pub coalesced: bool,
    /// The runtime must now start the *active* (front) action, because the lock is not in a
    /// transition state (rbd §1.2 rule 3). The active action is not necessarily the one just
    /// queued. When false the new entry waits for the running action to complete.
    pub start_active: bool,
}

/// What [`ActionQueue::complete_active`] did (rbd §1.2 rule 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<C> {
    /// The action that completed.
    pub action: Action,
    /// The state the lock is now in; the runtime stores it before running callbacks.
    pub state: State,
    /// Callers to complete with the result, outside the runtime's mutex.
    pub callbacks: Vec<C>,
    /// Start the new active action: the queue is not empty and `state` is not a transition.
    pub start_next: bool,
}

/// librbd's action queue (rbd §1.2), generic over the callback type.
///
/// The queue is pure bookkeeping: it never runs callbacks or actions, it tells the caller
/// when to. Coalescing joins a caller to *any* entry of the same action type, the active
/// (in-flight) one included, so a caller that asks to acquire while an acquire runs gets that
/// acquire's result (mock test ConcurrentRequests). TRY_LOCK and ACQUIRE_LOCK are different
/// types and never coalesce with each other (rule 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionQueue<C> {
    entries: VecDeque<QueuedAction<C>>,
}

impl<C> Default for ActionQueue<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> ActionQueue<C> {
    /// An empty queue.
    pub const fn new() -> Self {
        ActionQueue { entries: VecDeque::new() }
    }

    /// No action queued or running.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries (not callbacks).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The front entry's action: the one running (or about to start).
    pub fn active(&self) -> Option<Action> {
        self.entries.front().map(|e| e.action)
    }

    /// The last entry's action; the shutdown predicate looks at it.
    pub fn last(&self) -> Option<Action> {
        self.entries.back().map(|e| e.action)
    }

    /// The entries, front (active) first.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedAction<C>> {
        self.entries.iter()
    }

    /// The queued actions, front first; handy for logs and assertions.
    pub fn actions(&self) -> Vec<Action> {
        self.entries.iter().map(|e| e.action).collect()
    }

    /// [`is_shutting_down`] for this queue in `state`.
    pub fn is_shutting_down(&self, state: State) -> bool {
        is_shutting_down(state, self.last())
    }

    /// A SHUT_DOWN is the last queued action. When an acquire finds no watch this decides
    /// between parking in WAITING_FOR_REGISTER and failing with -ESHUTDOWN (§1.4).
    pub fn shutdown_queued(&self) -> bool {
        self.last() == Some(Action::ShutDown)
    }

    /// Queues `action` for a caller, coalescing with any entry of the same action type
    /// (rbd §1.2 rules 2, 3, 5). `callback` may be `None`, which still creates the entry if
    /// none exists. `state` is the lock's current state and only decides `start_active`.
    pub fn enqueue(&mut self, action: Action, callback: Option<C>, state: State) -> Enqueued {
        let coalesced = self.push(action, callback);
        Enqueued { coalesced, start_active: !state.is_transition() }
    }

    fn push(&mut self, action: Action, callback: Option<C>) -> bool {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.action == action) {
            entry.callbacks.extend(callback);
            true
        } else {
            self.entries.push_back(QueuedAction { action, callbacks: callback.into_iter().collect() });
            false
        }
    }

    /// Completes the active action: pops it, records `new_state`, hands back its callbacks and
    /// says whether to start the next entry (rbd §1.2 rule 4). `None` if the queue is empty,
    /// which a correct runtime never asks for.
    pub fn complete_active(&mut self, new_state: State) -> Option<Completed<C>> {
        let entry = self.entries.pop_front()?;
        Some(Completed {
            action: entry.action,
            state: new_state,
            callbacks: entry.callbacks,
            start_next: !self.entries.is_empty() && !new_state.is_transition(),
        })
    }

    /// REACQUIRE's "release-then-acquire" (rbd §1.4): queue a RELEASE_LOCK without callbacks,
    /// then move every callback of the active entry onto ACQUIRE_LOCK entries (an ACQUIRE is
    /// queued even when there is no callback, so the lock is always re-taken).
    ///
    /// Both pushes follow the normal coalescing rule, as librbd's do: an ACQUIRE_LOCK that was
    /// already waiting *before* the new RELEASE absorbs the moved callbacks and runs first.
    /// The caller then completes the active REACQUIRE with ([`State::Locked`], 0), which now
    /// has no callbacks left.
    pub fn release_then_acquire(&mut self) {
        self.push(Action::ReleaseLock, None);
        let moved = self.entries.front_mut().map(|e| std::mem::take(&mut e.callbacks)).unwrap_or_default();
        if moved.is_empty() {
            self.push(Action::AcquireLock, None);
        }
        for cb in moved {
            self.push(Action::AcquireLock, Some(cb));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §1.3 entry points
// ---------------------------------------------------------------------------------------------

/// ManagedLock's public calls (rbd §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryPoint {
    /// `acquire_lock(cb)`.
    Acquire,
    /// `try_acquire_lock(cb)`.
    TryAcquire,
    /// `release_lock(cb)`.
    Release,
    /// `reacquire_lock(cb)`, called after every re-watch.
    Reacquire,
    /// `shut_down(cb)`.
    ShutDown,
    /// `get_locker(out, cb)`.
    GetLocker,
    /// `break_lock(locker, force, cb)`.
    BreakLock,
}

/// What a public call does right away (rbd §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDecision {
    /// Complete the caller's callback now with this result; nothing is queued.
    Complete(i32),
    /// Queue this action with the caller's callback ([`ActionQueue::enqueue`]) and start the
    /// active action if the enqueue says so.
    Enqueue(Action),
    /// reacquire in WAITING_FOR_REGISTER: the watch is back, so start the active TRY/ACQUIRE
    /// again from the top ([`start_action`]) and complete the caller at once with `r` (0).
    RestartActiveAndComplete(i32),
    /// shut_down in WAITING_FOR_REGISTER: first complete the stalled acquire with
    /// (`state`, `r`) = (UNLOCKED, -ESHUTDOWN) via [`ActionQueue::complete_active`] (starting
    /// the next entry if told to), then enqueue `then` like [`EntryDecision::Enqueue`].
    CompleteActiveThenEnqueue {
        /// State the aborted acquire completes in.
        state: State,
        /// Result delivered to the aborted acquire's callers.
        r: i32,
        /// The action to queue afterwards.
        then: Action,
    },
    /// Run the sub-request now, outside the queue, tracked so that shutdown waits for it
    /// (get_locker, break_lock).
    RunTracked,
}

/// The immediate decision for a public call (rbd §1.3, §10 facts 16, 17, 19, 21).
///
/// `last_queued` is [`ActionQueue::last`]; an empty queue is `None`.
///
/// `shut_down` while already shutting down is a bug in the caller (librbd asserts). This
/// crate never panics on bad input, so that caller gets `Complete(-ESHUTDOWN)` instead.
///
/// `reacquire_lock` follows the 16.2.6 table of §1.3: in WAITING_FOR_LOCK it queues a
/// REACQUIRE_LOCK. The 16.2.15 backport that additionally kicks a parked acquire when the
/// client was blocklisted (§1.9, PR 53295) is known only from its description and is left to
/// the runtime (it can call `handle_peer_notification`, see [`peer_notification_applies`]).
pub fn entry_decision(call: EntryPoint, state: State, last_queued: Option<Action>) -> EntryDecision {
    let shutting_down = is_shutting_down(state, last_queued);
    let queue_empty = last_queued.is_none();
    match call {
        EntryPoint::Acquire | EntryPoint::TryAcquire => {
            if shutting_down {
                EntryDecision::Complete(-errno::ESHUTDOWN)
            } else if state == State::Locked && queue_empty {
                EntryDecision::Complete(0)
            } else if call == EntryPoint::Acquire {
                EntryDecision::Enqueue(Action::AcquireLock)
            } else {
                EntryDecision::Enqueue(Action::TryLock)
            }
        }
        EntryPoint::Release => {
            if shutting_down {
                EntryDecision::Complete(-errno::ESHUTDOWN)
            } else if state == State::Unlocked && queue_empty {
                EntryDecision::Complete(0)
            } else {
                EntryDecision::Enqueue(Action::ReleaseLock)
            }
        }
        EntryPoint::Reacquire => {
            if state == State::WaitingForRegister {
                EntryDecision::RestartActiveAndComplete(0)
            } else if !shutting_down
                && matches!(
                    state,
                    State::Locked | State::Acquiring | State::PostAcquiring | State::WaitingForLock
                )
            {
                EntryDecision::Enqueue(Action::ReacquireLock)
            } else {
                EntryDecision::Complete(0)
            }
        }
        EntryPoint::ShutDown => {
            if shutting_down {
                EntryDecision::Complete(-errno::ESHUTDOWN)
            } else if state == State::WaitingForRegister {
                EntryDecision::CompleteActiveThenEnqueue {
                    state: State::Unlocked,
                    r: -errno::ESHUTDOWN,
                    then: Action::ShutDown,
                }
            } else {
                EntryDecision::Enqueue(Action::ShutDown)
            }
        }
        EntryPoint::GetLocker => {
            if shutting_down {
                EntryDecision::Complete(-errno::ESHUTDOWN)
            } else {
                EntryDecision::RunTracked
            }
        }
        EntryPoint::BreakLock => {
            if shutting_down {
                EntryDecision::Complete(-errno::ESHUTDOWN)
            } else if state.is_lock_owner() {
                EntryDecision::Complete(-errno::EBUSY)
            } else {
                EntryDecision::RunTracked
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §1.4 the transition table
// ---------------------------------------------------------------------------------------------

/// Everything outside the lock's own state that §1.4 branches on when an action starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartConditions<'a> {
    /// The header watch's current handle; 0 means not registered (or re-watch in progress).
    pub watch_handle: u64,
    /// The watcher reported the client blocklisted (16.2.14+ fails fast, §1.9).
    pub watcher_blocklisted: bool,
    /// [`ActionQueue::shutdown_queued`]: the last queued action is SHUT_DOWN.
    pub shutdown_queued: bool,
    /// The cookie the lock is currently held with (REACQUIRE compares against it).
    pub current_cookie: &'a str,
    /// `rbd_blocklist_on_break_lock` (default true, rbd §0.2).
    pub blocklist_on_break_lock: bool,
}

/// How the active action starts (rbd §1.4). Outcomes that enter a state name it in
/// [`StartOutcome::entered_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Complete the active action now: new state and result.
    Complete {
        /// The state to complete in.
        state: State,
        /// The result for the callbacks.
        r: i32,
    },
    /// TRY/ACQUIRE without a watch: enter WAITING_FOR_REGISTER and leave the action active
    /// until `reacquire_lock` restarts it or `shut_down` aborts it.
    WaitForRegister,
    /// TRY/ACQUIRE: enter ACQUIRING, store `cookie`, run the pre-acquire hook and then
    /// continue with [`after_pre_acquire`].
    BeginAcquire {
        /// `auto <watch handle>`.
        cookie: String,
    },
    /// REACQUIRE without a watch (state REACQUIRING): call
    /// [`ActionQueue::release_then_acquire`], then complete (LOCKED, 0).
    ReleaseThenAcquire,
    /// REACQUIRE with an unchanged cookie and blocklisting on: enter REACQUIRING, run the
    /// post-reacquire hook with 0, complete (LOCKED, 0); the OSD is not contacted.
    SkipSameCookie,
    /// REACQUIRE: enter REACQUIRING, run cls `set_cookie(old → new_cookie)`, pass its result
    /// to the post-reacquire hook and continue with [`after_post_reacquire`].
    SetCookie {
        /// `auto <new watch handle>`.
        new_cookie: String,
    },
    /// RELEASE: enter PRE_RELEASING, run the pre-release hook (shutting_down = false) and
    /// continue with [`after_pre_release`].
    BeginRelease,
    /// SHUT_DOWN: run the [`shut_down_steps`] for `from_locked`.
    BeginShutDown {
        /// The lock was held (the LOCKED sequence) rather than not (the UNLOCKED sequence).
        from_locked: bool,
    },
}

impl StartOutcome {
    /// The state the runtime stores when this outcome begins, if it enters one before any
    /// completion (REACQUIRE's release-then-acquire passes through REACQUIRING).
    pub fn entered_state(&self) -> Option<State> {
        match self {
            StartOutcome::Complete { .. } => None,
            StartOutcome::WaitForRegister => Some(State::WaitingForRegister),
            StartOutcome::BeginAcquire { .. } => Some(State::Acquiring),
            StartOutcome::ReleaseThenAcquire
            | StartOutcome::SkipSameCookie
            | StartOutcome::SetCookie { .. } => Some(State::Reacquiring),
            StartOutcome::BeginRelease => Some(State::PreReleasing),
            StartOutcome::BeginShutDown { from_locked: true } => Some(State::PreShuttingDown),
            StartOutcome::BeginShutDown { from_locked: false } => Some(State::ShuttingDown),
        }
    }
}

/// "Action `action` starting in state `state` under `cond` leads to …" (rbd §1.4).
///
/// SHUT_DOWN only starts in a non-transition state; librbd asserts LOCKED or UNLOCKED. Any
/// state other than LOCKED takes the UNLOCKED sequence here, because nothing is held that
/// could be released.
pub fn start_action(action: Action, state: State, cond: &StartConditions<'_>) -> StartOutcome {
    match action {
        Action::TryLock | Action::AcquireLock => start_acquire(state, cond),
        Action::ReacquireLock => start_reacquire(state, cond),
        Action::ReleaseLock => {
            if state == State::Unlocked {
                StartOutcome::Complete { state: State::Unlocked, r: 0 }
            } else {
                StartOutcome::BeginRelease
            }
        }
        Action::ShutDown => StartOutcome::BeginShutDown { from_locked: state == State::Locked },
    }
}

fn start_acquire(state: State, cond: &StartConditions<'_>) -> StartOutcome {
    if state == State::Locked {
        return StartOutcome::Complete { state: State::Locked, r: 0 };
    }
    match NonZeroU64::new(cond.watch_handle) {
        None if cond.watcher_blocklisted => {
            StartOutcome::Complete { state: State::Unlocked, r: -errno::EBLOCKLISTED }
        }
        // The state passes through WAITING_FOR_REGISTER; a queued SHUT_DOWN makes the shutdown
        // predicate true there, so the acquire is failed instead of parked.
        None if cond.shutdown_queued => {
            StartOutcome::Complete { state: State::Unlocked, r: -errno::ESHUTDOWN }
        }
        None => StartOutcome::WaitForRegister,
        Some(handle) => StartOutcome::BeginAcquire { cookie: encode_cookie(handle) },
    }
}

fn start_reacquire(state: State, cond: &StartConditions<'_>) -> StartOutcome {
    if state != State::Locked {
        return StartOutcome::Complete { state, r: 0 };
    }
    let Some(handle) = NonZeroU64::new(cond.watch_handle) else {
        return StartOutcome::ReleaseThenAcquire;
    };
    let new_cookie = encode_cookie(handle);
    if new_cookie == cond.current_cookie && cond.blocklist_on_break_lock {
        StartOutcome::SkipSameCookie
    } else {
        StartOutcome::SetCookie { new_cookie }
    }
}

/// After the pre-acquire hook (rbd §1.4 ACQUIRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPreAcquire {
    /// Run AcquireRequest (§1.6.2); its result goes to [`acquired_next_state`] /
    /// [`after_post_acquire`].
    RunAcquireRequest,
    /// The hook failed: skip the cls lock and treat the acquire as finished with this `r`.
    Acquired(i32),
}

/// The pre-acquire hook returned `r` (rbd §1.4): a failure skips the cls lock step.
pub const fn after_pre_acquire(r: i32) -> AfterPreAcquire {
    if r < 0 { AfterPreAcquire::Acquired(r) } else { AfterPreAcquire::RunAcquireRequest }
}

/// `next` for acquired(r): UNLOCKED if the cls lock phase failed, else LOCKED (rbd §1.4).
pub const fn acquired_next_state(r: i32) -> State {
    if r < 0 { State::Unlocked } else { State::Locked }
}

/// How an acquire ends once the post-acquire hook turned `r` into `r'` (rbd §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireFinish {
    /// The lock was taken but post-acquire failed: cls unlock with our cookie (errors
    /// ignored), then complete (UNLOCKED, `r`).
    UnlockThenComplete {
        /// The post-acquire hook's error.
        r: i32,
    },
    /// -ECANCELED: the hook parked the action (ExclusiveLock set WAITING_FOR_LOCK); complete
    /// nothing and leave the action active.
    Parked,
    /// Complete the action in `state` with `r`.
    Complete {
        /// `next` from [`acquired_next_state`].
        state: State,
        /// The post-acquire hook's result.
        r: i32,
    },
}

/// The three-way rule after the post-acquire hook (rbd §1.4). `r` is the cls lock phase's
/// result (or the pre-acquire error), `r_post` what the post-acquire hook returned.
///
/// The "taken but post-acquire failed" test comes first, so a hook returning -ECANCELED after
/// a successful lock unlocks rather than parks.
pub const fn after_post_acquire(r: i32, r_post: i32) -> AcquireFinish {
    let next = acquired_next_state(r);
    if r_post < 0 && matches!(next, State::Locked) {
        AcquireFinish::UnlockThenComplete { r: r_post }
    } else if r_post == -errno::ECANCELED {
        AcquireFinish::Parked
    } else {
        AcquireFinish::Complete { state: next, r: r_post }
    }
}

/// How a REACQUIRE ends after `set_cookie` and the post-reacquire hook (rbd §1.4). Both
/// variants complete the action with (LOCKED, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReacquireFinish {
    /// r >= 0: the stored cookie becomes the new one.
    AdoptNewCookie,
    /// r < 0 (-EOPNOTSUPP from old OSDs, -EBUSY for an unchanged cookie, …): call
    /// [`ActionQueue::release_then_acquire`]; the stored cookie is kept until that release.
    ReleaseThenAcquire,
}

/// The post-reacquire hook returned `r` (rbd §1.4, §10 fact 22).
pub const fn after_post_reacquire(r: i32) -> ReacquireFinish {
    if r < 0 { ReacquireFinish::ReleaseThenAcquire } else { ReacquireFinish::AdoptNewCookie }
}

/// The state and result every REACQUIRE completes with once it has run (rbd §1.4).
pub const REACQUIRE_COMPLETION: (State, i32) = (State::Locked, 0);

/// After the pre-release hook (rbd §1.4 RELEASE). The state becomes RELEASING either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPreRelease {
    /// Run cls `unlock(rbd_lock, cookie)` (ReleaseRequest, which always reports 0).
    Unlock,
    /// The hook failed: skip the unlock; `r` is the hook's error.
    SkipUnlock(i32),
}

/// The pre-release hook returned `r` (rbd §1.4).
pub const fn after_pre_release(r: i32) -> AfterPreRelease {
    if r < 0 { AfterPreRelease::SkipUnlock(r) } else { AfterPreRelease::Unlock }
}

/// The state a release (normal or shutdown) is in while unlocking (rbd §1.4).
pub const RELEASING_STATE: State = State::Releasing;

/// The release result `r`: the pre-release hook's error if it failed, otherwise the unlock
/// step's result, which ReleaseRequest makes 0 in practice (rbd §1.4, §1.6.4).
pub const fn release_result(pre_release_r: i32, unlock_r: i32) -> i32 {
    if pre_release_r < 0 { pre_release_r } else { unlock_r }
}

/// Where a RELEASE goes for its result `r` (rbd §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseOutcome {
    /// `next`: UNLOCKED, or LOCKED when the release is aborted and the lock stays held.
    pub next: State,
    /// Clear the stored cookie.
    pub clear_cookie: bool,
}

/// The RELEASE result rule (rbd §1.4): r >= 0, -EBLOCKLISTED or -ENOENT mean the lock is gone,
/// so the cookie is cleared and the action completes UNLOCKED; any other error aborts the
/// release and the lock stays LOCKED (mock test ReleaseLockError). The runtime then runs the
/// post-release hook (false, r) and completes (`next`, r).
///
/// -ESHUTDOWN has the same value as -EBLOCKLISTED, so it also ends UNLOCKED.
pub const fn release_outcome(r: i32) -> ReleaseOutcome {
    let gone = r >= 0 || r == -errno::EBLOCKLISTED || r == -errno::ENOENT;
    ReleaseOutcome { next: if gone { State::Unlocked } else { State::Locked }, clear_cookie: gone }
}

/// One step of the SHUT_DOWN sequence (rbd §1.4), run in order by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutDownStep {
    /// Store this state.
    EnterState(State),
    /// Run the shutdown hook.
    ShutdownHook,
    /// Run the pre-release hook with shutting_down = true.
    PreReleaseHook,
    /// cls unlock with our cookie (ReleaseRequest, always 0).
    ClsUnlock,
    /// Run the post-release hook with shutting_down = true and the result so far.
    PostReleaseHook,
    /// Wait for the tracked get_locker / break_lock calls to finish.
    WaitTrackedOps,
    /// Complete SHUT_DOWN in SHUTDOWN with the result so far.
    CompleteShutdown,
}

/// The SHUT_DOWN sequence from UNLOCKED (rbd §1.4).
pub const SHUT_DOWN_FROM_UNLOCKED: [ShutDownStep; 4] = [
    ShutDownStep::EnterState(State::ShuttingDown),
    ShutDownStep::ShutdownHook,
    ShutDownStep::WaitTrackedOps,
    ShutDownStep::CompleteShutdown,
];

/// The SHUT_DOWN sequence from LOCKED (rbd §1.4).
pub const SHUT_DOWN_FROM_LOCKED: [ShutDownStep; 7] = [
    ShutDownStep::EnterState(State::PreShuttingDown),
    ShutDownStep::PreReleaseHook,
    ShutDownStep::EnterState(State::ShuttingDown),
    ShutDownStep::ClsUnlock,
    ShutDownStep::PostReleaseHook,
    ShutDownStep::WaitTrackedOps,
    ShutDownStep::CompleteShutdown,
];

/// The steps for [`StartOutcome::BeginShutDown`].
///
/// The result delivered at the end is the last hook's result (the shutdown hook's, or the
/// post-release hook's). The spec does not say whether a failed pre-release hook skips the
/// unlock during shutdown; the unlock is listed unconditionally here, and the post-release
/// hook gets [`release_result`] of the two, as for a normal release.
pub const fn shut_down_steps(from_locked: bool) -> &'static [ShutDownStep] {
    if from_locked { &SHUT_DOWN_FROM_LOCKED } else { &SHUT_DOWN_FROM_UNLOCKED }
}

// ---------------------------------------------------------------------------------------------
// §1.6 sub-requests
// ---------------------------------------------------------------------------------------------

/// A cls_lock locker entry as GetLocker reads it (rbd §1.6.1), borrowed from the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockerEntry<'a> {
    /// Entity name, e.g. `client.4123`.
    pub entity: &'a str,
    /// The locker's cookie.
    pub cookie: &'a str,
    /// Legacy address string `ip:port/nonce`.
    pub address: &'a str,
}

/// A lock owner as ManagedLock identifies it (rbd §1.6.1, §1.7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Locker {
    /// Entity name, e.g. `client.4123`.
    pub entity: String,
    /// The full cookie, `auto <handle>`.
    pub cookie: String,
    /// Legacy address string `ip:port/nonce`.
    pub address: String,
    /// The watch handle parsed from the cookie.
    pub handle: u64,
}

/// GetLocker's classification of a `lock.get_info("rbd_lock")` answer (rbd §1.6.1, §10 facts
/// 4–6). `lockers` must be in cls_lock's map order (the first one is used); `tag` and
/// `lock_type` are the lock-level fields. `exclusive_manager` is true for librbd's managed
/// lock (it rejects a SHARED lock; a shared manager would reject an EXCLUSIVE one).
pub fn get_locker(
    lockers: &[LockerEntry<'_>],
    tag: &str,
    lock_type: ClsLockType,
    exclusive_manager: bool,
) -> Result<Locker, i32> {
    let Some(first) = lockers.first() else {
        return Err(-errno::ENOENT);
    };
    if tag != LOCK_TAG {
        return Err(-errno::EBUSY);
    }
    let wanted = if exclusive_manager { ClsLockType::Exclusive } else { ClsLockType::Shared };
    if lock_type != wanted {
        return Err(-errno::EBUSY);
    }
    let Some(handle) = decode_cookie(first.cookie) else {
        return Err(-errno::EBUSY);
    };
    if first.cookie.is_empty() || first.address.is_empty() {
        return Err(-errno::ENOENT);
    }
    Ok(Locker {
        entity: first.entity.to_owned(),
        cookie: first.cookie.to_owned(),
        address: first.address.to_owned(),
        handle,
    })
}

/// AcquireRequest after GetLocker (rbd §1.6.2 step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireAfterGetLocker {
    /// r == 0: cache the locker, then try cls lock.
    CacheLockerThenLock,
    /// -ENOENT: forget any cached locker, then try cls lock.
    ForgetLockerThenLock,
    /// Any other error (including -EBUSY): finish the AcquireRequest with it.
    Finish(i32),
}

/// AcquireRequest step 1 decision.
pub const fn acquire_after_get_locker(r: i32) -> AcquireAfterGetLocker {
    if r == 0 {
        AcquireAfterGetLocker::CacheLockerThenLock
    } else if r == -errno::ENOENT {
        AcquireAfterGetLocker::ForgetLockerThenLock
    } else {
        AcquireAfterGetLocker::Finish(r)
    }
}

/// AcquireRequest after cls `lock.lock` (rbd §1.6.2 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireAfterLock {
    /// Finish the AcquireRequest with this result (0 on success).
    Finish(i32),
    /// -EBUSY with no cached locker: the lock appeared since GetLocker; start over (fact 8).
    RetryGetLocker,
    /// -EBUSY with a cached locker: run BreakRequest (force = false).
    Break,
}

/// AcquireRequest step 2 decision.
pub const fn acquire_after_lock(r: i32, have_cached_locker: bool) -> AcquireAfterLock {
    if r == -errno::EBUSY {
        if have_cached_locker { AcquireAfterLock::Break } else { AcquireAfterLock::RetryGetLocker }
    } else {
        AcquireAfterLock::Finish(r)
    }
}

/// AcquireRequest after BreakRequest (rbd §1.6.2 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireAfterBreak {
    /// 0: clear the cached locker and retry cls lock.
    ClearLockerThenLock,
    /// Finish with this error (-EAGAIN when the owner is alive or changed).
    Finish(i32),
}

/// AcquireRequest step 3 decision.
pub const fn acquire_after_break(r: i32) -> AcquireAfterBreak {
    if r == 0 { AcquireAfterBreak::ClearLockerThenLock } else { AcquireAfterBreak::Finish(r) }
}

/// BreakRequest's liveness rule (rbd §1.6.3 step 2, §10 fact 9): the owner is alive iff some
/// header watcher has the locker's address string and a watch cookie equal to the handle in
/// the lock cookie. `watchers` yields (address, watch cookie) pairs from `list_watchers`.
pub fn owner_is_alive<'a>(locker: &Locker, watchers: impl IntoIterator<Item = (&'a str, u64)>) -> bool {
    watchers.into_iter().any(|(addr, cookie)| addr == locker.address && cookie == locker.handle)
}

/// BreakRequest after `list_watchers`: a live owner without `force` stops the break with
/// -EAGAIN; `force` skips the check (rbd §1.6.3 step 2). `None` means continue.
pub const fn break_after_liveness(alive: bool, force: bool) -> Option<i32> {
    if alive && !force { Some(-errno::EAGAIN) } else { None }
}

/// BreakRequest after re-reading the locker (rbd §1.6.3 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakAfterGetLocker {
    /// Go on to blocklisting (if enabled) and break_lock.
    Proceed,
    /// Finish the BreakRequest with this result.
    Finish(i32),
}

/// BreakRequest step 3 (§10 fact 11). `refreshed` is GetLocker's locker when `r == 0`.
/// -ENOENT finishes 0 (nothing left to break); -EBUSY counts as an empty locker, which like
/// any locker other than `expected` gives -EAGAIN; other errors finish with themselves.
pub fn break_after_get_locker(r: i32, refreshed: Option<&Locker>, expected: &Locker) -> BreakAfterGetLocker {
    if r == -errno::ENOENT {
        return BreakAfterGetLocker::Finish(0);
    }
    if r < 0 && r != -errno::EBUSY {
        return BreakAfterGetLocker::Finish(r);
    }
    let current = if r == -errno::EBUSY { None } else { refreshed };
    match current {
        Some(l) if *l != Locker::default() && l == expected => BreakAfterGetLocker::Proceed,
        _ => BreakAfterGetLocker::Finish(-errno::EAGAIN),
    }
}

/// BreakRequest step 4 pre-checks when blocklisting is enabled (§10 fact 12): never blocklist
/// our own entity, and the address must parse. `Err(-EINVAL)` otherwise.
pub fn break_blocklist_precheck(
    locker_entity: &str,
    own_entity: &str,
    address_parses: bool,
) -> Result<(), i32> {
    if locker_entity == own_entity || !address_parses { Err(-errno::EINVAL) } else { Ok(()) }
}

/// BreakRequest step 5: cls `break_lock` returning -ENOENT counts as success (§10 fact 13).
pub const fn break_lock_result(r: i32) -> i32 {
    if r == -errno::ENOENT { 0 } else { r }
}

/// ReleaseRequest's result: it logs unlock errors and always reports 0 (rbd §1.6.4, fact 15).
pub const fn release_request_result(_cls_unlock_r: i32) -> i32 {
    0
}

// ---------------------------------------------------------------------------------------------
// §2 ExclusiveLock decisions
// ---------------------------------------------------------------------------------------------

/// ExclusiveLock's pre-acquire hook (rbd §2.2): the saved peer answer is consumed (reset to 0
/// by the caller); -EROFS fails the acquire, anything else lets it proceed (PreAcquireRequest
/// always succeeds).
pub const fn pre_acquire_hook(saved_peer_r: i32) -> i32 {
    if saved_peer_r == -errno::EROFS { -errno::EROFS } else { 0 }
}

/// ExclusiveLock's post-acquire hook decision for the cls lock result `r` (rbd §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostAcquireHook {
    /// Return this value unchanged (-EROFS, -EBUSY on TRY_LOCK, any other error).
    Return(i32),
    /// ACQUIRE_LOCK met a live or external owner: enter WAITING_FOR_LOCK, send REQUEST_LOCK
    /// and return -ECANCELED so the action stays parked.
    WaitForLock,
    /// TRY_LOCK met a live owner (-EAGAIN): return 0; the acquire completes UNLOCKED with 0.
    TryLockWithoutOwnership,
    /// r == 0: run PostAcquireRequest (refresh, object map, POST_ACQUIRING, journal, …).
    RunPostAcquire,
}

/// The post-acquire hook table (rbd §2.3, §10 facts 10, 25).
pub const fn post_acquire_hook(r: i32, active: Action) -> PostAcquireHook {
    if r == 0 {
        PostAcquireHook::RunPostAcquire
    } else if r == -errno::EROFS {
        PostAcquireHook::Return(r)
    } else if (r == -errno::EBUSY || r == -errno::EAGAIN) && matches!(active, Action::AcquireLock) {
        PostAcquireHook::WaitForLock
    } else if r == -errno::EAGAIN && matches!(active, Action::TryLock) {
        PostAcquireHook::TryLockWithoutOwnership
    } else {
        PostAcquireHook::Return(r)
    }
}

/// What the post-acquire hook returns for [`PostAcquireHook::WaitForLock`].
pub const PARKED_RESULT: i32 = -errno::ECANCELED;

/// The state ExclusiveLock parks an ACQUIRE_LOCK in (rbd §2.3).
pub const PARKED_STATE: State = State::WaitingForLock;

/// `handle_peer_notification(r)` only acts in WAITING_FOR_LOCK (rbd §2.10): it stores `r` for
/// the pre-acquire hook and restarts the parked ACQUIRE_LOCK from the top.
pub const fn peer_notification_applies(state: State) -> bool {
    matches!(state, State::WaitingForLock)
}

/// The result `shut_down` passes to `handle_peer_notification` right after queueing SHUT_DOWN,
/// so an acquire parked in WAITING_FOR_LOCK moves again (rbd §2.1).
pub const SHUT_DOWN_PEER_NOTIFICATION: i32 = 0;

/// Lock handover policy (rbd §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Default while `rbd_auto_exclusive_lock_until_manual_request` is true: own I/O
    /// auto-acquires and the owner hands the lock over on request.
    #[default]
    Automatic,
    /// After `lock_acquire(EXCLUSIVE)` for the rest of the handle's life: never hand over,
    /// never auto-acquire.
    Standard,
}

/// The owner's answer to a REQUEST_LOCK under its policy (rbd §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRequested {
    /// ResponseMessage result: 0 (automatic) or -EROFS (standard).
    pub r: i32,
    /// Queue `release_lock()` (automatic only).
    pub release: bool,
}

impl Policy {
    /// Whether this handle's own I/O may acquire the lock by itself (rbd §2.8, §2.11).
    pub const fn may_auto_request_lock(self) -> bool {
        matches!(self, Policy::Automatic)
    }

    /// `lock_requested(force)`: `force` is ignored by both policies (rbd §2.8, §10 fact 29).
    pub const fn lock_requested(self, _force: bool) -> LockRequested {
        match self {
            Policy::Automatic => LockRequested { r: 0, release: true },
            Policy::Standard => LockRequested { r: -errno::EROFS, release: false },
        }
    }

    /// The standard and automatic policies never accept requests while requests are blocked
    /// (rbd §2.7); only rbd-mirror's policy may, and it is not modelled here.
    pub const fn accepts_blocked_request(self) -> bool {
        false
    }
}

/// `accept_request(type, &r)` (rbd §2.7): accepted iff not shutting down, state exactly LOCKED
/// and no request block is active (or the policy accepts this type while blocked). `blocked_r`
/// is the value stored by the first active `block_requests(r)`, `None` when none is active.
/// Returns (accepted, r) with r = 0 when accepted, else the stored block value (or 0).
pub const fn accept_request(
    state: State,
    shutting_down: bool,
    blocked_r: Option<i32>,
    policy_accepts_blocked: bool,
) -> (bool, i32) {
    let unblocked = match blocked_r {
        None => true,
        Some(_) => policy_accepts_blocked,
    };
    if !shutting_down && matches!(state, State::Locked) && unblocked {
        (true, 0)
    } else {
        match blocked_r {
            Some(r) => (false, r),
            None => (false, 0),
        }
    }
}

/// `accept_ops()` (rbd §2.7): not shutting down and LOCKED or POST_ACQUIRING.
pub const fn accept_ops(state: State, shutting_down: bool) -> bool {
    !shutting_down && matches!(state, State::Locked | State::PostAcquiring)
}

/// The error a refused op gets (`get_unlocked_op_error`, rbd §2.7).
pub const fn unlocked_op_error(watcher_blocklisted: bool) -> i32 {
    if watcher_blocklisted { -errno::EBLOCKLISTED } else { -errno::EROFS }
}

/// Inputs of the owner's REQUEST_LOCK handling (rbd §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLockContext {
    /// The payload's ClientId equals our own.
    pub from_self: bool,
    /// An exclusive lock exists and `is_lock_owner()` is true.
    pub is_owner: bool,
    /// `accept_request(GENERAL)` as computed by [`accept_request`].
    pub accept: (bool, i32),
    /// We know our own owner ClientId (cleared after a watch error).
    pub own_client_id_known: bool,
    /// The handle's policy.
    pub policy: Policy,
    /// The REQUEST_LOCK's `force` flag (ignored by both policies).
    pub force: bool,
}

/// The owner's reply to a peer's REQUEST_LOCK (rbd §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLockReply {
    /// Ack with an empty payload. A requester that sees only empty acks treats the owner as
    /// dead (§10 fact 26).
    EmptyAck,
    /// Ack with ResponseMessage(`r`); queue `release_lock()` if `release`.
    Response {
        /// The ResponseMessage result.
        r: i32,
        /// Queue `release_lock()` after answering.
        release: bool,
    },
}

/// `ImageWatcher::handle_payload(RequestLock)` (rbd §2.9, §10 facts 29, 30, 65).
pub const fn request_lock_reply(ctx: &RequestLockContext) -> RequestLockReply {
    if ctx.from_self || !ctx.is_owner {
        return RequestLockReply::EmptyAck;
    }
    let (accepted, blocked_r) = ctx.accept;
    if !accepted {
        return RequestLockReply::Response { r: blocked_r, release: false };
    }
    if !ctx.own_client_id_known {
        return RequestLockReply::EmptyAck;
    }
    let answer = ctx.policy.lock_requested(ctx.force);
    RequestLockReply::Response { r: answer.r, release: answer.release }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librbd-style negative result for an errno.
    fn neg(e: i32) -> i32 {
        -e
    }

    fn cond(handle: u64) -> StartConditions<'static> {
        StartConditions {
            watch_handle: handle,
            watcher_blocklisted: false,
            shutdown_queued: false,
            current_cookie: "",
            blocklist_on_break_lock: true,
        }
    }

    // ----- §0.1 constants and cookie -----

    #[test]
    fn s0_1_constants() {
        assert_eq!(LOCK_NAME, "rbd_lock");
        assert_eq!(LOCK_TAG, "internal");
        assert_eq!(LOCK_TYPE_EXCLUSIVE, 1);
        assert_eq!(ClsLockType::Shared.value(), 2);
        assert_eq!(ClsLockType::from_value(1), Some(ClsLockType::Exclusive));
        assert_eq!(ClsLockType::from_value(2), Some(ClsLockType::Shared));
        assert_eq!(ClsLockType::from_value(0), None);
        assert_eq!(ClsLockType::from_value(3), None);
        assert_eq!(errno::EBLOCKLISTED, errno::ESHUTDOWN);
        assert_eq!(errno::EBLOCKLISTED, 108);
        assert_eq!(errno::ENOENT, 2);
    }

    #[test]
    fn s0_1_cookie_format_is_auto_space_decimal() {
        let h = NonZeroU64::new(94_532_197_312_512).unwrap();
        assert_eq!(encode_cookie(h), "auto 94532197312512");
        assert_eq!(encode_cookie(NonZeroU64::MAX), format!("auto {}", u64::MAX));
    }

    #[test]
    fn s0_1_cookie_parse_rule() {
        assert_eq!(decode_cookie("auto 94532197312512"), Some(94_532_197_312_512));
        assert_eq!(decode_cookie("auto 18446744073709551615"), Some(u64::MAX));
        // Split on whitespace: any run of whitespace separates tokens.
        assert_eq!(decode_cookie("  auto\t\t42 "), Some(42));
        // First token must be exactly `auto`.
        assert_eq!(decode_cookie("Auto 42"), None);
        assert_eq!(decode_cookie("auto42"), None);
        assert_eq!(decode_cookie("manual 42"), None);
        // Second token must parse as u64.
        assert_eq!(decode_cookie("auto"), None);
        assert_eq!(decode_cookie("auto -1"), None);
        assert_eq!(decode_cookie("auto 0x10"), None);
        assert_eq!(decode_cookie("auto 18446744073709551616"), None);
        assert_eq!(decode_cookie(""), None);
        // Zero parses; trailing tokens are ignored (documented choice).
        assert_eq!(decode_cookie("auto 0"), Some(0));
        assert_eq!(decode_cookie("auto 7 extra"), Some(7));
    }

    #[test]
    fn s0_1_cookie_round_trip() {
        for v in [1u64, 9, 10, 4096, 1 << 40, u64::MAX - 1, u64::MAX] {
            let h = NonZeroU64::new(v).unwrap();
            assert_eq!(decode_cookie(&encode_cookie(h)), Some(v), "handle {v}");
        }
    }

    // ----- §1.1 states -----

    #[test]
    fn s1_1_state_ordinals_and_names() {
        let expected = [
            (0, "UNINITIALIZED"),
            (1, "INITIALIZING"),
            (2, "UNLOCKED"),
            (3, "LOCKED"),
            (4, "ACQUIRING"),
            (5, "POST_ACQUIRING"),
            (6, "WAITING_FOR_REGISTER"),
            (7, "WAITING_FOR_LOCK"),
            (8, "REACQUIRING"),
            (9, "PRE_RELEASING"),
            (10, "RELEASING"),
            (11, "PRE_SHUTTING_DOWN"),
            (12, "SHUTTING_DOWN"),
            (13, "SHUTDOWN"),
        ];
        assert_eq!(State::ALL.len(), expected.len());
        for (st, (ord, name)) in State::ALL.into_iter().zip(expected) {
            assert_eq!(st.ordinal(), ord, "{name}");
            assert_eq!(st.name(), name);
            assert_eq!(st.to_string(), name);
            assert_eq!(State::from_ordinal(ord), Some(st));
            assert_eq!(State::from_name(name), Some(st));
            assert_eq!(State::from_name(&name.to_lowercase()), Some(st));
            assert_eq!(State::from_name(&format!("STATE_{name}")), Some(st));
        }
        assert_eq!(State::from_ordinal(14), None);
        assert_eq!(State::from_ordinal(255), None);
        assert_eq!(State::from_name("WAITING_FOR_PEER"), None);
    }

    #[test]
    fn s1_1_owner_and_transition_columns() {
        // (state, owner, transition) exactly as the §1.1 table.
        let table = [
            (State::Uninitialized, false, false),
            (State::Initializing, false, true),
            (State::Unlocked, false, false),
            (State::Locked, true, false),
            (State::Acquiring, false, true),
            (State::PostAcquiring, true, true),
            (State::WaitingForRegister, false, true),
            (State::WaitingForLock, false, true),
            (State::Reacquiring, true, true),
            (State::PreReleasing, true, true),
            (State::Releasing, false, true),
            (State::PreShuttingDown, true, true),
            (State::ShuttingDown, false, true),
            (State::Shutdown, false, false),
        ];
        for (st, owner, transition) in table {
            assert_eq!(st.is_lock_owner(), owner, "§1.1 owner column for {st}");
            assert_eq!(st.is_transition(), transition, "§1.1 transition column for {st}");
        }
    }

    #[test]
    fn s1_1_shutdown_predicate() {
        for st in State::ALL {
            let by_state = matches!(st, State::PreShuttingDown | State::ShuttingDown | State::Shutdown);
            assert_eq!(is_shutting_down(st, None), by_state, "{st} empty queue");
            assert!(is_shutting_down(st, Some(Action::ShutDown)), "{st} last=SHUT_DOWN");
            for a in [Action::TryLock, Action::AcquireLock, Action::ReacquireLock, Action::ReleaseLock] {
                assert_eq!(is_shutting_down(st, Some(a)), by_state, "{st} last={a}");
            }
        }
        // Only the *last* entry counts.
        let mut q: ActionQueue<u8> = ActionQueue::new();
        q.enqueue(Action::ShutDown, Some(1), State::Acquiring);
        assert!(q.is_shutting_down(State::Acquiring));
        let mut q: ActionQueue<u8> = ActionQueue::new();
        q.enqueue(Action::AcquireLock, Some(1), State::Acquiring);
        assert!(!q.is_shutting_down(State::Acquiring));
    }

    #[test]
    fn s1_1_destroy_and_initial_states() {
        for st in State::ALL {
            assert_eq!(
                st.may_destroy(),
                matches!(st, State::Shutdown | State::Unlocked | State::Uninitialized),
                "{st}"
            );
        }
        assert_eq!(INITIAL_STATE, State::Unlocked);
        assert_eq!(EXCLUSIVE_LOCK_INITIAL_STATE, State::Uninitialized);
        assert_eq!(EXCLUSIVE_LOCK_INIT_STATES, [State::Initializing, State::Unlocked]);
    }

    // ----- §1.2 actions and the queue -----

    #[test]
    fn s1_2_action_ordinals_and_names() {
        let expected = [
            (0, "TRY_LOCK"),
            (1, "ACQUIRE_LOCK"),
            (2, "REACQUIRE_LOCK"),
            (3, "RELEASE_LOCK"),
            (4, "SHUT_DOWN"),
        ];
        for (a, (ord, name)) in Action::ALL.into_iter().zip(expected) {
            assert_eq!(a.ordinal(), ord);
            assert_eq!(a.name(), name);
            assert_eq!(Action::from_ordinal(ord), Some(a));
            assert_eq!(Action::from_name(name), Some(a));
            assert_eq!(Action::from_name(&format!("action_{name}")), Some(a));
        }
        assert_eq!(Action::from_ordinal(5), None);
        assert!(Action::TryLock.is_acquire() && Action::AcquireLock.is_acquire());
        assert!(!Action::ReacquireLock.is_acquire());
    }

    #[test]
    fn s1_2_rule2_acquire_release_acquire_coalesces_into_first_entry() {
        // acquire(A), release(R), acquire(B) → [ACQUIRE{A,B}, RELEASE{R}].
        let mut q = ActionQueue::new();
        let e = q.enqueue(Action::AcquireLock, Some('A'), State::Unlocked);
        assert_eq!(e, Enqueued { coalesced: false, start_active: true });
        // The acquire started: state is now ACQUIRING.
        let e = q.enqueue(Action::ReleaseLock, Some('R'), State::Acquiring);
        assert_eq!(e, Enqueued { coalesced: false, start_active: false });
        let e = q.enqueue(Action::AcquireLock, Some('B'), State::Acquiring);
        assert_eq!(e, Enqueued { coalesced: true, start_active: false });
        let entries: Vec<_> = q.iter().cloned().collect();
        assert_eq!(
            entries,
            vec![
                QueuedAction { action: Action::AcquireLock, callbacks: vec!['A', 'B'] },
                QueuedAction { action: Action::ReleaseLock, callbacks: vec!['R'] },
            ]
        );
        // B completes with A, before R runs.
        let c = q.complete_active(State::Locked).unwrap();
        assert_eq!(c.callbacks, vec!['A', 'B']);
        assert!(c.start_next);
        assert_eq!(q.active(), Some(Action::ReleaseLock));
    }

    #[test]
    fn s1_2_concurrent_requests_join_the_failing_active_acquire() {
        // Mock test ConcurrentRequests: two callers added during a failing acquire both
        // receive its -EINVAL.
        let mut q = ActionQueue::new();
        q.enqueue(Action::AcquireLock, Some(1), State::Unlocked);
        assert!(q.enqueue(Action::AcquireLock, Some(2), State::Acquiring).coalesced);
        assert!(q.enqueue(Action::AcquireLock, Some(3), State::Acquiring).coalesced);
        assert_eq!(q.len(), 1);
        let finish = after_post_acquire(neg(errno::EINVAL), neg(errno::EINVAL));
        assert_eq!(finish, AcquireFinish::Complete { state: State::Unlocked, r: neg(errno::EINVAL) });
        let c = q.complete_active(State::Unlocked).unwrap();
        assert_eq!(c.callbacks, vec![1, 2, 3]);
        assert!(!c.start_next);
        assert!(q.is_empty());
    }

    #[test]
    fn s1_2_rule5_try_lock_and_acquire_never_coalesce() {
        let mut q = ActionQueue::new();
        q.enqueue(Action::TryLock, Some(1), State::Unlocked);
        assert!(!q.enqueue(Action::AcquireLock, Some(2), State::Acquiring).coalesced);
        assert!(!q.enqueue(Action::ReleaseLock, Some(3), State::Acquiring).coalesced);
        assert!(q.enqueue(Action::TryLock, Some(4), State::Acquiring).coalesced);
        assert!(q.enqueue(Action::AcquireLock, Some(5), State::Acquiring).coalesced);
        assert_eq!(q.actions(), vec![Action::TryLock, Action::AcquireLock, Action::ReleaseLock]);
        let cbs: Vec<Vec<i32>> = q.iter().map(|e| e.callbacks.clone()).collect();
        assert_eq!(cbs, vec![vec![1, 4], vec![2, 5], vec![3]]);
    }

    #[test]
    fn s1_2_rule3_start_only_outside_transition_states() {
        for st in State::ALL {
            let mut q: ActionQueue<()> = ActionQueue::new();
            let e = q.enqueue(Action::ReleaseLock, Some(()), st);
            assert_eq!(e.start_active, !st.is_transition(), "{st}");
        }
    }

    #[test]
    fn s1_2_none_callback_still_creates_entry() {
        let mut q: ActionQueue<u8> = ActionQueue::new();
        q.enqueue(Action::ReleaseLock, None, State::Locked);
        assert_eq!(q.actions(), vec![Action::ReleaseLock]);
        assert!(q.iter().next().unwrap().callbacks.is_empty());
        assert!(q.enqueue(Action::ReleaseLock, None, State::PreReleasing).coalesced);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn s1_2_rule4_completion_pops_and_decides_next() {
        let mut q = ActionQueue::new();
        q.enqueue(Action::AcquireLock, Some(1), State::Unlocked);
        q.enqueue(Action::ReleaseLock, Some(2), State::Acquiring);
        // Parked in a transition state: the next action must not start.
        let c = q.complete_active(State::WaitingForLock).unwrap();
        assert_eq!(c.action, Action::AcquireLock);
        assert_eq!(c.state, State::WaitingForLock);
        assert!(!c.start_next);
        let c = q.complete_active(State::Unlocked).unwrap();
        assert_eq!(c.action, Action::ReleaseLock);
        assert_eq!(c.callbacks, vec![2]);
        assert!(!c.start_next, "queue empty");
        assert!(q.complete_active(State::Unlocked).is_none());
    }

    // ----- §1.3 entry points -----

    #[test]
    fn s1_3_acquire_and_try_acquire() {
        for (call, action) in
            [(EntryPoint::Acquire, Action::AcquireLock), (EntryPoint::TryAcquire, Action::TryLock)]
        {
            // Fact 16: LOCKED with an empty queue completes 0 at once.
            assert_eq!(entry_decision(call, State::Locked, None), EntryDecision::Complete(0));
            // LOCKED with something queued: queue behind it.
            assert_eq!(
                entry_decision(call, State::Locked, Some(Action::ReleaseLock)),
                EntryDecision::Enqueue(action)
            );
            assert_eq!(entry_decision(call, State::Unlocked, None), EntryDecision::Enqueue(action));
            // Fact 17: shutdown queued or in progress → -ESHUTDOWN.
            assert_eq!(
                entry_decision(call, State::Locked, Some(Action::ShutDown)),
                EntryDecision::Complete(neg(errno::ESHUTDOWN))
            );
            for st in [State::PreShuttingDown, State::ShuttingDown, State::Shutdown] {
                assert_eq!(
                    entry_decision(call, st, None),
                    EntryDecision::Complete(neg(errno::ESHUTDOWN)),
                    "{st}"
                );
            }
        }
    }

    #[test]
    fn s1_3_release() {
        assert_eq!(entry_decision(EntryPoint::Release, State::Unlocked, None), EntryDecision::Complete(0));
        assert_eq!(
            entry_decision(EntryPoint::Release, State::Unlocked, Some(Action::AcquireLock)),
            EntryDecision::Enqueue(Action::ReleaseLock)
        );
        assert_eq!(
            entry_decision(EntryPoint::Release, State::Locked, None),
            EntryDecision::Enqueue(Action::ReleaseLock)
        );
        assert_eq!(
            entry_decision(EntryPoint::Release, State::Unlocked, Some(Action::ShutDown)),
            EntryDecision::Complete(neg(errno::ESHUTDOWN))
        );
        assert_eq!(
            entry_decision(EntryPoint::Release, State::ShuttingDown, None),
            EntryDecision::Complete(neg(errno::ESHUTDOWN))
        );
    }

    #[test]
    fn s1_3_reacquire_in_every_state() {
        for st in State::ALL {
            let d = entry_decision(EntryPoint::Reacquire, st, None);
            let want = match st {
                State::WaitingForRegister => EntryDecision::RestartActiveAndComplete(0),
                State::Locked | State::Acquiring | State::PostAcquiring | State::WaitingForLock => {
                    EntryDecision::Enqueue(Action::ReacquireLock)
                }
                _ => EntryDecision::Complete(0),
            };
            assert_eq!(d, want, "§1.3 reacquire in {st}");
            // Shutdown queued: ignored with 0, except WAITING_FOR_REGISTER which is checked first.
            let d = entry_decision(EntryPoint::Reacquire, st, Some(Action::ShutDown));
            let want = if st == State::WaitingForRegister {
                EntryDecision::RestartActiveAndComplete(0)
            } else {
                EntryDecision::Complete(0)
            };
            assert_eq!(d, want, "§1.3 reacquire in {st} with SHUT_DOWN queued");
        }
    }

    #[test]
    fn s1_3_shut_down() {
        assert_eq!(
            entry_decision(EntryPoint::ShutDown, State::Locked, None),
            EntryDecision::Enqueue(Action::ShutDown)
        );
        assert_eq!(
            entry_decision(EntryPoint::ShutDown, State::Acquiring, Some(Action::AcquireLock)),
            EntryDecision::Enqueue(Action::ShutDown)
        );
        // Fact 19: WAITING_FOR_REGISTER's stalled acquire fails -ESHUTDOWN first.
        assert_eq!(
            entry_decision(EntryPoint::ShutDown, State::WaitingForRegister, Some(Action::AcquireLock)),
            EntryDecision::CompleteActiveThenEnqueue {
                state: State::Unlocked,
                r: neg(errno::ESHUTDOWN),
                then: Action::ShutDown
            }
        );
        // A second shut_down (librbd asserts) is refused without panicking.
        assert_eq!(
            entry_decision(EntryPoint::ShutDown, State::Locked, Some(Action::ShutDown)),
            EntryDecision::Complete(neg(errno::ESHUTDOWN))
        );
        assert_eq!(
            entry_decision(EntryPoint::ShutDown, State::Shutdown, None),
            EntryDecision::Complete(neg(errno::ESHUTDOWN))
        );
    }

    #[test]
    fn s1_3_get_locker_and_break_lock() {
        for st in State::ALL {
            let sd = st.is_shutdown_state();
            let d = entry_decision(EntryPoint::GetLocker, st, None);
            assert_eq!(
                d,
                if sd { EntryDecision::Complete(neg(errno::ESHUTDOWN)) } else { EntryDecision::RunTracked },
                "get_locker {st}"
            );
            // Fact 21: break_lock by the owner → -EBUSY.
            let d = entry_decision(EntryPoint::BreakLock, st, None);
            let want = if sd {
                EntryDecision::Complete(neg(errno::ESHUTDOWN))
            } else if st.is_lock_owner() {
                EntryDecision::Complete(neg(errno::EBUSY))
            } else {
                EntryDecision::RunTracked
            };
            assert_eq!(d, want, "break_lock {st}");
        }
        assert_eq!(
            entry_decision(EntryPoint::BreakLock, State::Unlocked, Some(Action::ShutDown)),
            EntryDecision::Complete(neg(errno::ESHUTDOWN))
        );
    }

    // ----- §1.4 ACQUIRE / TRY_LOCK -----

    #[test]
    fn s1_4_acquire_in_locked_completes_zero() {
        for a in [Action::AcquireLock, Action::TryLock] {
            assert_eq!(
                start_action(a, State::Locked, &cond(0)),
                StartOutcome::Complete { state: State::Locked, r: 0 }
            );
        }
    }

    #[test]
    fn s1_4_acquire_sets_cookie_from_watch_handle() {
        let out = start_action(Action::AcquireLock, State::Unlocked, &cond(1234));
        assert_eq!(out, StartOutcome::BeginAcquire { cookie: "auto 1234".into() });
        assert_eq!(out.entered_state(), Some(State::Acquiring));
        // A blocklisted flag with a live watch does not matter.
        let c = StartConditions { watcher_blocklisted: true, ..cond(5) };
        assert_eq!(
            start_action(Action::TryLock, State::Unlocked, &c),
            StartOutcome::BeginAcquire { cookie: "auto 5".into() }
        );
    }

    #[test]
    fn s1_4_waiting_for_register_behaviours() {
        // No watch: park in WAITING_FOR_REGISTER.
        let out = start_action(Action::AcquireLock, State::Unlocked, &cond(0));
        assert_eq!(out, StartOutcome::WaitForRegister);
        assert_eq!(out.entered_state(), Some(State::WaitingForRegister));
        // No watch and blocklisted (16.2.14+): fail -EBLOCKLISTED.
        let c = StartConditions { watcher_blocklisted: true, ..cond(0) };
        assert_eq!(
            start_action(Action::TryLock, State::Unlocked, &c),
            StartOutcome::Complete { state: State::Unlocked, r: neg(errno::EBLOCKLISTED) }
        );
        // No watch and SHUT_DOWN queued: fail -ESHUTDOWN instead of parking.
        let c = StartConditions { shutdown_queued: true, ..cond(0) };
        assert_eq!(
            start_action(Action::AcquireLock, State::Unlocked, &c),
            StartOutcome::Complete { state: State::Unlocked, r: neg(errno::ESHUTDOWN) }
        );
        // The whole cycle: park, reacquire restarts it with a watch, shut_down aborts it.
        let mut q = ActionQueue::new();
        assert!(q.enqueue(Action::AcquireLock, Some('A'), State::Unlocked).start_active);
        let mut state = start_action(Action::AcquireLock, State::Unlocked, &cond(0)).entered_state().unwrap();
        assert_eq!(state, State::WaitingForRegister);
        assert!(!q.enqueue(Action::ReleaseLock, Some('R'), state).start_active);
        assert_eq!(
            entry_decision(EntryPoint::Reacquire, state, q.last()),
            EntryDecision::RestartActiveAndComplete(0)
        );
        let restarted = start_action(q.active().unwrap(), state, &cond(77));
        assert_eq!(restarted, StartOutcome::BeginAcquire { cookie: "auto 77".into() });
        // Park again and shut down instead.
        state = State::WaitingForRegister;
        match entry_decision(EntryPoint::ShutDown, state, q.last()) {
            EntryDecision::CompleteActiveThenEnqueue { state: s, r, then } => {
                let c = q.complete_active(s).unwrap();
                assert_eq!(
                    (c.action, c.callbacks, r),
                    (Action::AcquireLock, vec!['A'], neg(errno::ESHUTDOWN))
                );
                // RELEASE runs next in UNLOCKED (completes 0 at once), then SHUT_DOWN queues.
                assert!(c.start_next);
                assert_eq!(
                    start_action(q.active().unwrap(), s, &cond(0)),
                    StartOutcome::Complete { state: State::Unlocked, r: 0 }
                );
                q.complete_active(State::Unlocked).unwrap();
                let e = q.enqueue(then, Some('S'), State::Unlocked);
                assert!(e.start_active);
                assert_eq!(
                    start_action(q.active().unwrap(), State::Unlocked, &cond(0)),
                    StartOutcome::BeginShutDown { from_locked: false }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn s1_4_pre_acquire_failure_skips_cls_lock() {
        assert_eq!(after_pre_acquire(0), AfterPreAcquire::RunAcquireRequest);
        assert_eq!(after_pre_acquire(neg(errno::EROFS)), AfterPreAcquire::Acquired(neg(errno::EROFS)));
        assert_eq!(acquired_next_state(0), State::Locked);
        assert_eq!(acquired_next_state(neg(errno::EBUSY)), State::Unlocked);
    }

    #[test]
    fn s1_4_post_acquire_rules() {
        // Lock taken, post-acquire failed: unlock then complete UNLOCKED with r'.
        assert_eq!(
            after_post_acquire(0, neg(errno::EINVAL)),
            AcquireFinish::UnlockThenComplete { r: neg(errno::EINVAL) }
        );
        // Ordering: r = 0 and r' = -ECANCELED unlocks rather than parks.
        assert_eq!(
            after_post_acquire(0, neg(errno::ECANCELED)),
            AcquireFinish::UnlockThenComplete { r: neg(errno::ECANCELED) }
        );
        // -ECANCELED parks the action.
        assert_eq!(after_post_acquire(neg(errno::EBUSY), neg(errno::ECANCELED)), AcquireFinish::Parked);
        assert_eq!(after_post_acquire(neg(errno::EAGAIN), PARKED_RESULT), AcquireFinish::Parked);
        // Otherwise complete(next, r').
        assert_eq!(after_post_acquire(0, 0), AcquireFinish::Complete { state: State::Locked, r: 0 });
        assert_eq!(
            after_post_acquire(neg(errno::EROFS), neg(errno::EROFS)),
            AcquireFinish::Complete { state: State::Unlocked, r: neg(errno::EROFS) }
        );
        // TRY_LOCK against a live owner: -EAGAIN turned into 0, still UNLOCKED.
        assert_eq!(
            after_post_acquire(neg(errno::EAGAIN), 0),
            AcquireFinish::Complete { state: State::Unlocked, r: 0 }
        );
    }

    #[test]
    fn s1_4_ecanceled_parks_the_action_in_waiting_for_lock() {
        // ACQUIRE_LOCK meets a live owner: hook parks it, the action stays active and
        // later arrivals queue behind it without starting.
        let mut q = ActionQueue::new();
        q.enqueue(Action::AcquireLock, Some(1), State::Unlocked);
        let hook = post_acquire_hook(neg(errno::EAGAIN), Action::AcquireLock);
        assert_eq!(hook, PostAcquireHook::WaitForLock);
        let state = PARKED_STATE;
        assert_eq!(after_post_acquire(neg(errno::EAGAIN), PARKED_RESULT), AcquireFinish::Parked);
        assert_eq!(q.active(), Some(Action::AcquireLock));
        assert!(state.is_transition());
        assert!(!q.enqueue(Action::ReleaseLock, Some(2), state).start_active);
        // §2.10: a peer notification restarts it from the top.
        assert!(peer_notification_applies(state));
        assert_eq!(
            start_action(q.active().unwrap(), state, &cond(9)),
            StartOutcome::BeginAcquire { cookie: "auto 9".into() }
        );
    }

    // ----- §1.4 REACQUIRE -----

    #[test]
    fn s1_4_reacquire_not_locked_completes_in_same_state() {
        for st in State::ALL.into_iter().filter(|s| *s != State::Locked) {
            assert_eq!(
                start_action(Action::ReacquireLock, st, &cond(3)),
                StartOutcome::Complete { state: st, r: 0 },
                "{st}"
            );
        }
    }

    #[test]
    fn s1_4_reacquire_same_cookie_skipped_only_with_blocklist_on_break_lock() {
        let c = StartConditions { current_cookie: "auto 42", ..cond(42) };
        let out = start_action(Action::ReacquireLock, State::Locked, &c);
        assert_eq!(out, StartOutcome::SkipSameCookie);
        assert_eq!(out.entered_state(), Some(State::Reacquiring));
        // PR 30955: without blocklisting, a same-cookie reacquire goes to the OSD, whose
        // set_cookie fails -EBUSY, forcing release-then-acquire.
        let c = StartConditions { blocklist_on_break_lock: false, ..c };
        assert_eq!(
            start_action(Action::ReacquireLock, State::Locked, &c),
            StartOutcome::SetCookie { new_cookie: "auto 42".into() }
        );
        assert_eq!(after_post_reacquire(neg(errno::EBUSY)), ReacquireFinish::ReleaseThenAcquire);
    }

    #[test]
    fn s1_4_reacquire_new_cookie_uses_set_cookie() {
        let c = StartConditions { current_cookie: "auto 42", ..cond(43) };
        assert_eq!(
            start_action(Action::ReacquireLock, State::Locked, &c),
            StartOutcome::SetCookie { new_cookie: "auto 43".into() }
        );
        assert_eq!(after_post_reacquire(0), ReacquireFinish::AdoptNewCookie);
        assert_eq!(after_post_reacquire(neg(errno::EOPNOTSUPP)), ReacquireFinish::ReleaseThenAcquire);
        assert_eq!(REACQUIRE_COMPLETION, (State::Locked, 0));
    }

    #[test]
    fn s1_4_reacquire_without_watch_releases_then_acquires() {
        let c = StartConditions { current_cookie: "auto 42", ..cond(0) };
        let out = start_action(Action::ReacquireLock, State::Locked, &c);
        assert_eq!(out, StartOutcome::ReleaseThenAcquire);
        assert_eq!(out.entered_state(), Some(State::Reacquiring));

        let mut q = ActionQueue::new();
        q.enqueue(Action::ReacquireLock, Some(1), State::Locked);
        q.enqueue(Action::ReacquireLock, Some(2), State::Reacquiring);
        q.release_then_acquire();
        assert_eq!(q.actions(), vec![Action::ReacquireLock, Action::ReleaseLock, Action::AcquireLock]);
        let c = q.complete_active(REACQUIRE_COMPLETION.0).unwrap();
        assert!(c.callbacks.is_empty(), "callbacks moved to the ACQUIRE entry");
        assert!(c.start_next);
        let rest: Vec<_> = q.iter().cloned().collect();
        assert_eq!(
            rest,
            vec![
                QueuedAction { action: Action::ReleaseLock, callbacks: vec![] },
                QueuedAction { action: Action::AcquireLock, callbacks: vec![1, 2] },
            ]
        );
    }

    #[test]
    fn s1_4_release_then_acquire_without_callbacks_still_queues_acquire() {
        let mut q: ActionQueue<u8> = ActionQueue::new();
        q.enqueue(Action::ReacquireLock, None, State::Locked);
        q.release_then_acquire();
        assert_eq!(q.actions(), vec![Action::ReacquireLock, Action::ReleaseLock, Action::AcquireLock]);
    }

    #[test]
    fn s1_4_release_then_acquire_coalesces_like_librbd() {
        // An ACQUIRE already waiting before the new RELEASE absorbs the moved callbacks.
        let mut q = ActionQueue::new();
        q.enqueue(Action::ReacquireLock, Some(1), State::Locked);
        q.enqueue(Action::AcquireLock, Some(2), State::Reacquiring);
        q.release_then_acquire();
        let entries: Vec<_> = q.iter().cloned().collect();
        assert_eq!(
            entries,
            vec![
                QueuedAction { action: Action::ReacquireLock, callbacks: vec![] },
                QueuedAction { action: Action::AcquireLock, callbacks: vec![2, 1] },
                QueuedAction { action: Action::ReleaseLock, callbacks: vec![] },
            ]
        );
    }

    // ----- §1.4 RELEASE -----

    #[test]
    fn s1_4_release_start() {
        assert_eq!(
            start_action(Action::ReleaseLock, State::Unlocked, &cond(1)),
            StartOutcome::Complete { state: State::Unlocked, r: 0 }
        );
        let out = start_action(Action::ReleaseLock, State::Locked, &cond(1));
        assert_eq!(out, StartOutcome::BeginRelease);
        assert_eq!(out.entered_state(), Some(State::PreReleasing));
        assert_eq!(after_pre_release(0), AfterPreRelease::Unlock);
        assert_eq!(after_pre_release(neg(errno::EBUSY)), AfterPreRelease::SkipUnlock(neg(errno::EBUSY)));
        assert_eq!(RELEASING_STATE, State::Releasing);
    }

    #[test]
    fn s1_4_release_result_rule() {
        let unlocked = ReleaseOutcome { next: State::Unlocked, clear_cookie: true };
        let locked = ReleaseOutcome { next: State::Locked, clear_cookie: false };
        assert_eq!(release_outcome(0), unlocked);
        assert_eq!(release_outcome(5), unlocked);
        assert_eq!(release_outcome(neg(errno::EBLOCKLISTED)), unlocked);
        assert_eq!(release_outcome(-108), unlocked);
        assert_eq!(release_outcome(neg(errno::ENOENT)), unlocked);
        assert_eq!(release_outcome(-2), unlocked);
        for r in
            [neg(errno::EINVAL), neg(errno::EBUSY), neg(errno::EROFS), neg(errno::ETIMEDOUT), -1, i32::MIN]
        {
            assert_eq!(release_outcome(r), locked, "r = {r}");
        }
    }

    #[test]
    fn s1_4_release_lock_error_keeps_locked() {
        // Mock test ReleaseLockError: the pre-release hook fails, unlock is skipped, the
        // release is aborted and the lock stays LOCKED with the cookie kept.
        let pre = neg(errno::EINVAL);
        let AfterPreRelease::SkipUnlock(r) = after_pre_release(pre) else { panic!("unlock must be skipped") };
        let r = release_result(r, 0);
        assert_eq!(r, pre);
        assert_eq!(release_outcome(r), ReleaseOutcome { next: State::Locked, clear_cookie: false });
        // A successful pre-release with a failing cls unlock still reports 0 (§1.6.4).
        let r = release_result(0, release_request_result(neg(errno::ENOENT)));
        assert_eq!(r, 0);
        assert_eq!(release_outcome(r).next, State::Unlocked);
    }

    // ----- §1.4 SHUT_DOWN -----

    #[test]
    fn s1_4_shut_down_sequences() {
        let out = start_action(Action::ShutDown, State::Unlocked, &cond(1));
        assert_eq!(out, StartOutcome::BeginShutDown { from_locked: false });
        assert_eq!(out.entered_state(), Some(State::ShuttingDown));
        assert_eq!(
            shut_down_steps(false),
            &[
                ShutDownStep::EnterState(State::ShuttingDown),
                ShutDownStep::ShutdownHook,
                ShutDownStep::WaitTrackedOps,
                ShutDownStep::CompleteShutdown,
            ]
        );
        let out = start_action(Action::ShutDown, State::Locked, &cond(1));
        assert_eq!(out, StartOutcome::BeginShutDown { from_locked: true });
        assert_eq!(out.entered_state(), Some(State::PreShuttingDown));
        let steps = shut_down_steps(true);
        assert_eq!(steps.first(), Some(&ShutDownStep::EnterState(State::PreShuttingDown)));
        let pos = |s: ShutDownStep| steps.iter().position(|x| *x == s).unwrap();
        assert!(pos(ShutDownStep::PreReleaseHook) < pos(ShutDownStep::EnterState(State::ShuttingDown)));
        assert!(pos(ShutDownStep::EnterState(State::ShuttingDown)) < pos(ShutDownStep::ClsUnlock));
        assert!(pos(ShutDownStep::ClsUnlock) < pos(ShutDownStep::PostReleaseHook));
        assert!(pos(ShutDownStep::PostReleaseHook) < pos(ShutDownStep::WaitTrackedOps));
        assert_eq!(steps.last(), Some(&ShutDownStep::CompleteShutdown));
        // Every EnterState in both sequences is a shutdown state, so the predicate holds
        // throughout; PRE_SHUTTING_DOWN is still owner, SHUTTING_DOWN is not.
        for s in shut_down_steps(true).iter().chain(shut_down_steps(false)) {
            if let ShutDownStep::EnterState(st) = s {
                assert!(st.is_shutdown_state());
            }
        }
        assert!(State::PreShuttingDown.is_lock_owner());
        assert!(!State::ShuttingDown.is_lock_owner());
    }

    // ----- §1.6 sub-requests -----

    fn entry<'a>(entity: &'a str, cookie: &'a str, address: &'a str) -> LockerEntry<'a> {
        LockerEntry { entity, cookie, address }
    }

    #[test]
    fn s1_6_1_get_locker_classification() {
        let ok = [entry("client.4123", "auto 99", "10.0.0.1:0/3141")];
        let l = get_locker(&ok, LOCK_TAG, ClsLockType::Exclusive, true).unwrap();
        assert_eq!(
            l,
            Locker {
                entity: "client.4123".into(),
                cookie: "auto 99".into(),
                address: "10.0.0.1:0/3141".into(),
                handle: 99
            }
        );
        // Fact 6: no lockers → -ENOENT (checked before the tag).
        assert_eq!(get_locker(&[], "other", ClsLockType::Shared, true), Err(neg(errno::ENOENT)));
        // Fact 5: foreign tag → -EBUSY.
        assert_eq!(get_locker(&ok, "", ClsLockType::Exclusive, true), Err(neg(errno::EBUSY)));
        // Step 5: wrong lock type for the manager → -EBUSY.
        assert_eq!(get_locker(&ok, LOCK_TAG, ClsLockType::Shared, true), Err(neg(errno::EBUSY)));
        assert_eq!(get_locker(&ok, LOCK_TAG, ClsLockType::Exclusive, false), Err(neg(errno::EBUSY)));
        // Fact 4: external cookie → -EBUSY.
        let ext = [entry("client.1", "my-own-lock", "10.0.0.1:0/1")];
        assert_eq!(get_locker(&ext, LOCK_TAG, ClsLockType::Exclusive, true), Err(neg(errno::EBUSY)));
        let empty_cookie = [entry("client.1", "", "10.0.0.1:0/1")];
        assert_eq!(
            get_locker(&empty_cookie, LOCK_TAG, ClsLockType::Exclusive, true),
            Err(neg(errno::EBUSY)),
            "an empty cookie fails the parse first"
        );
        // Step 7: empty address → -ENOENT.
        let no_addr = [entry("client.1", "auto 5", "")];
        assert_eq!(get_locker(&no_addr, LOCK_TAG, ClsLockType::Exclusive, true), Err(neg(errno::ENOENT)));
        // Step 6: the first locker is used.
        let two = [entry("client.1", "auto 1", "a:0/1"), entry("client.2", "bad", "b:0/2")];
        assert_eq!(get_locker(&two, LOCK_TAG, ClsLockType::Exclusive, true).unwrap().handle, 1);
    }

    #[test]
    fn s1_6_2_acquire_request_steps() {
        assert_eq!(acquire_after_get_locker(0), AcquireAfterGetLocker::CacheLockerThenLock);
        assert_eq!(acquire_after_get_locker(neg(errno::ENOENT)), AcquireAfterGetLocker::ForgetLockerThenLock);
        assert_eq!(
            acquire_after_get_locker(neg(errno::EBUSY)),
            AcquireAfterGetLocker::Finish(neg(errno::EBUSY))
        );
        assert_eq!(
            acquire_after_get_locker(neg(errno::EINVAL)),
            AcquireAfterGetLocker::Finish(neg(errno::EINVAL))
        );
        assert_eq!(acquire_after_lock(0, true), AcquireAfterLock::Finish(0));
        assert_eq!(acquire_after_lock(neg(errno::EBUSY), false), AcquireAfterLock::RetryGetLocker);
        assert_eq!(acquire_after_lock(neg(errno::EBUSY), true), AcquireAfterLock::Break);
        assert_eq!(acquire_after_lock(-17, true), AcquireAfterLock::Finish(-17));
        assert_eq!(acquire_after_break(0), AcquireAfterBreak::ClearLockerThenLock);
        assert_eq!(acquire_after_break(neg(errno::EAGAIN)), AcquireAfterBreak::Finish(neg(errno::EAGAIN)));
    }

    #[test]
    fn s1_6_3_break_request_steps() {
        let l = Locker {
            entity: "client.7".into(),
            cookie: "auto 55".into(),
            address: "10.0.0.7:0/77".into(),
            handle: 55,
        };
        // Fact 9: alive iff same address and watch cookie == handle.
        assert!(owner_is_alive(&l, [("10.0.0.8:0/1", 55), ("10.0.0.7:0/77", 55)]));
        assert!(!owner_is_alive(&l, [("10.0.0.7:0/77", 56)]));
        assert!(!owner_is_alive(&l, [("10.0.0.7:0/78", 55)]));
        assert!(!owner_is_alive(&l, []));
        assert_eq!(break_after_liveness(true, false), Some(neg(errno::EAGAIN)));
        assert_eq!(break_after_liveness(true, true), None);
        assert_eq!(break_after_liveness(false, false), None);
        // Fact 11: re-read locker.
        assert_eq!(break_after_get_locker(0, Some(&l), &l), BreakAfterGetLocker::Proceed);
        assert_eq!(break_after_get_locker(neg(errno::ENOENT), None, &l), BreakAfterGetLocker::Finish(0));
        assert_eq!(
            break_after_get_locker(neg(errno::EBUSY), Some(&l), &l),
            BreakAfterGetLocker::Finish(neg(errno::EAGAIN))
        );
        let other = Locker { handle: 56, cookie: "auto 56".into(), ..l.clone() };
        assert_eq!(
            break_after_get_locker(0, Some(&other), &l),
            BreakAfterGetLocker::Finish(neg(errno::EAGAIN))
        );
        assert_eq!(break_after_get_locker(0, None, &l), BreakAfterGetLocker::Finish(neg(errno::EAGAIN)));
        let empty = Locker::default();
        assert_eq!(
            break_after_get_locker(0, Some(&empty), &empty),
            BreakAfterGetLocker::Finish(neg(errno::EAGAIN)),
            "an empty refreshed locker never proceeds"
        );
        assert_eq!(
            break_after_get_locker(neg(errno::EINVAL), Some(&l), &l),
            BreakAfterGetLocker::Finish(neg(errno::EINVAL))
        );
        // Fact 12: never blocklist ourselves.
        assert_eq!(break_blocklist_precheck("client.7", "client.7", true), Err(neg(errno::EINVAL)));
        assert_eq!(break_blocklist_precheck("client.7", "client.8", false), Err(neg(errno::EINVAL)));
        assert_eq!(break_blocklist_precheck("client.7", "client.8", true), Ok(()));
        // Fact 13: break_lock -ENOENT counts as success.
        assert_eq!(break_lock_result(neg(errno::ENOENT)), 0);
        assert_eq!(break_lock_result(neg(errno::EBUSY)), neg(errno::EBUSY));
        assert_eq!(break_lock_result(0), 0);
        // Fact 15: ReleaseRequest always reports 0.
        assert_eq!(release_request_result(neg(errno::EBLOCKLISTED)), 0);
    }

    // ----- §2 ExclusiveLock -----

    #[test]
    fn s2_2_pre_acquire_hook_consumes_erofs_peer_answer() {
        assert_eq!(pre_acquire_hook(neg(errno::EROFS)), neg(errno::EROFS));
        assert_eq!(pre_acquire_hook(0), 0);
        assert_eq!(pre_acquire_hook(neg(errno::ETIMEDOUT)), 0);
    }

    #[test]
    fn s2_3_post_acquire_hook_table() {
        use PostAcquireHook::*;
        let rows = [
            (neg(errno::EROFS), Action::AcquireLock, Return(neg(errno::EROFS))),
            (neg(errno::EROFS), Action::TryLock, Return(neg(errno::EROFS))),
            (neg(errno::EBUSY), Action::AcquireLock, WaitForLock),
            (neg(errno::EAGAIN), Action::AcquireLock, WaitForLock),
            (neg(errno::EAGAIN), Action::TryLock, TryLockWithoutOwnership),
            (neg(errno::EBUSY), Action::TryLock, Return(neg(errno::EBUSY))),
            (neg(errno::EINVAL), Action::AcquireLock, Return(neg(errno::EINVAL))),
            (0, Action::AcquireLock, RunPostAcquire),
            (0, Action::TryLock, RunPostAcquire),
        ];
        for (r, a, want) in rows {
            assert_eq!(post_acquire_hook(r, a), want, "§2.3 r={r} {a}");
        }
        assert_eq!(PARKED_RESULT, neg(errno::ECANCELED));
        assert_eq!(PARKED_STATE, State::WaitingForLock);
    }

    #[test]
    fn s2_8_policies() {
        assert!(Policy::Automatic.may_auto_request_lock());
        assert!(!Policy::Standard.may_auto_request_lock());
        for force in [false, true] {
            assert_eq!(Policy::Automatic.lock_requested(force), LockRequested { r: 0, release: true });
            assert_eq!(
                Policy::Standard.lock_requested(force),
                LockRequested { r: neg(errno::EROFS), release: false }
            );
        }
        assert_eq!(Policy::default(), Policy::Automatic);
    }

    #[test]
    fn s2_7_admission() {
        assert_eq!(accept_request(State::Locked, false, None, false), (true, 0));
        assert_eq!(accept_request(State::PostAcquiring, false, None, false), (false, 0));
        assert_eq!(accept_request(State::Locked, true, None, false), (false, 0));
        assert_eq!(
            accept_request(State::Locked, false, Some(neg(errno::EBUSY)), false),
            (false, neg(errno::EBUSY))
        );
        assert_eq!(accept_request(State::Locked, false, Some(0), true), (true, 0));
        for st in State::ALL {
            assert_eq!(accept_ops(st, false), matches!(st, State::Locked | State::PostAcquiring), "{st}");
            assert!(!accept_ops(st, true));
        }
        assert_eq!(unlocked_op_error(true), neg(errno::EBLOCKLISTED));
        assert_eq!(unlocked_op_error(false), neg(errno::EROFS));
    }

    #[test]
    fn s2_9_request_lock_reply() {
        let base = RequestLockContext {
            from_self: false,
            is_owner: true,
            accept: (true, 0),
            own_client_id_known: true,
            policy: Policy::Automatic,
            force: false,
        };
        assert_eq!(request_lock_reply(&base), RequestLockReply::Response { r: 0, release: true });
        let std = RequestLockContext { policy: Policy::Standard, ..base };
        assert_eq!(
            request_lock_reply(&std),
            RequestLockReply::Response { r: neg(errno::EROFS), release: false }
        );
        assert_eq!(
            request_lock_reply(&RequestLockContext { from_self: true, ..base }),
            RequestLockReply::EmptyAck
        );
        assert_eq!(
            request_lock_reply(&RequestLockContext { is_owner: false, ..base }),
            RequestLockReply::EmptyAck
        );
        assert_eq!(
            request_lock_reply(&RequestLockContext { own_client_id_known: false, ..base }),
            RequestLockReply::EmptyAck
        );
        assert_eq!(
            request_lock_reply(&RequestLockContext { accept: (false, 0), ..base }),
            RequestLockReply::Response { r: 0, release: false }
        );
        assert_eq!(
            request_lock_reply(&RequestLockContext { accept: (false, neg(errno::EBUSY)), ..base }),
            RequestLockReply::Response { r: neg(errno::EBUSY), release: false }
        );
    }

    #[test]
    fn s2_10_peer_notification_only_in_waiting_for_lock() {
        for st in State::ALL {
            assert_eq!(peer_notification_applies(st), st == State::WaitingForLock, "{st}");
        }
        assert_eq!(SHUT_DOWN_PEER_NOTIFICATION, 0);
    }

    /// §1.4 exhaustively: whatever action starts in whatever state under whatever
    /// conditions, an outcome that enters a state enters a transition state (so nothing else
    /// starts meanwhile, §1.2 rule 3), and an immediate completion lands in LOCKED or UNLOCKED,
    /// except REACQUIRE outside LOCKED, which completes in the state it found.
    #[test]
    fn s1_4_start_action_exhaustive_invariants() {
        for action in Action::ALL {
            for state in State::ALL {
                for handle in [0u64, 42] {
                    for watcher_blocklisted in [false, true] {
                        for shutdown_queued in [false, true] {
                            for blocklist_on_break_lock in [false, true] {
                                for current_cookie in ["", "auto 42", "auto 41"] {
                                    let c = StartConditions {
                                        watch_handle: handle,
                                        watcher_blocklisted,
                                        shutdown_queued,
                                        current_cookie,
                                        blocklist_on_break_lock,
                                    };
                                    let out = start_action(action, state, &c);
                                    let ctx = format!("{action} in {state} with {c:?}: {out:?}");
                                    if let Some(entered) = out.entered_state() {
                                        assert!(entered.is_transition(), "{ctx}");
                                    }
                                    match out {
                                        StartOutcome::Complete { state: s, r } => {
                                            if action == Action::ReacquireLock {
                                                assert_eq!((s, r), (state, 0), "{ctx}");
                                            } else {
                                                assert!(
                                                    matches!(s, State::Locked | State::Unlocked),
                                                    "{ctx}"
                                                );
                                            }
                                        }
                                        StartOutcome::WaitForRegister | StartOutcome::BeginAcquire { .. } => {
                                            assert!(action.is_acquire(), "{ctx}");
                                            assert_ne!(state, State::Locked, "{ctx}");
                                            assert_eq!(
                                                matches!(out, StartOutcome::WaitForRegister),
                                                handle == 0,
                                                "{ctx}"
                                            );
                                        }
                                        StartOutcome::ReleaseThenAcquire
                                        | StartOutcome::SkipSameCookie
                                        | StartOutcome::SetCookie { .. } => {
                                            assert_eq!(
                                                (action, state),
                                                (Action::ReacquireLock, State::Locked),
                                                "{ctx}"
                                            );
                                        }
                                        StartOutcome::BeginRelease => {
                                            assert_eq!(action, Action::ReleaseLock, "{ctx}");
                                            assert_ne!(state, State::Unlocked, "{ctx}");
                                        }
                                        StartOutcome::BeginShutDown { from_locked } => {
                                            assert_eq!(action, Action::ShutDown, "{ctx}");
                                            assert_eq!(from_locked, state == State::Locked, "{ctx}");
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
