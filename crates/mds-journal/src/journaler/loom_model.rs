//! Loom model of group commit's flush hand-off (issue 4: "group-commit ordering under
//! concurrency"; mds §6.4; anchors §3.4, §3.7 item 8).
//!
//! What runs is the shipped code: the real [`Journaler`] (append, `on_safe`, `wait_safe`,
//! shutdown), the real [`flusher`] future, the real [`State::step`] and
//! [`crate::commit::GroupCommit`] policy, and [`crate::handoff`] whose mutex is loom's (through
//! [`crate::sync`]). Only `tokio::spawn` is replaced: the flusher future is driven by
//! `loom::future::block_on` on a model thread, whose waker parks and unparks that thread under
//! loom's control. The device is a [`MemDevice`] (durable at once) and the clock is frozen, so
//! the batch timer never fires: every flush must be started by a submitter's ring, which is
//! exactly the path a lost wake-up breaks.
//!
//! Loom explores every interleaving of the lock acquisitions and park/unpark points (bounded
//! in preemptions, see [`builder`]) and fails if:
//!
//! * all threads block (a submitter waits for a flush that the parked flusher never hears
//!   about — loom reports the deadlock);
//! * a completion runs before its entry's bytes are on the device, or reports an error;
//! * completions are not in strictly increasing log order, or one is missing.
//!
//! Run it (release, own target dir so the `--cfg loom` rebuild does not evict the normal one):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p mds-journal --release --lib journaler::loom_model
//! ```
//!
//! The record of completions and the device use `std` mutexes on purpose: they are never held
//! across a loom operation, so they never contend, and keeping them out of loom's view keeps
//! the explored space to the protocol itself.

use std::sync::{Arc, Mutex};

use loom::future::block_on;
use rados_store::clock::SleepFuture;
use rados_store::{Clock, UTime};

use super::*;
use crate::device::MemDevice;
use crate::frame::parse_frame;

/// A clock that never moves: timers never fire, so progress relies on wake-ups alone.
#[derive(Debug)]
struct FrozenClock;

impl Clock for FrozenClock {
    fn now(&self) -> UTime {
        UTime::ZERO
    }

    fn sleep_until(&self, _deadline: UTime) -> SleepFuture {
        Box::pin(std::future::pending())
    }
}

const FORMAT: StreamFormat = StreamFormat::ResilientCrc;
const LAYOUT: FileLayout = FileLayout::simple(4096);

/// Whether the entry `[start, end)` carrying `payload` is on the device, intact.
fn on_device(dev: &MemDevice, start: u64, end: u64, payload: &[u8]) -> bool {
    let ino = InodeNo::journal_of_rank(0);
    let mut bytes = Vec::new();
    for ext in LAYOUT.map(start, end - start) {
        let Some(obj) = dev.object(&object_name(ino, ext.object)) else { return false };
        let (at, to) = (ext.offset as usize, (ext.offset + ext.len) as usize);
        let Some(part) = obj.get(at..to) else { return false };
        bytes.extend_from_slice(part);
    }
    parse_frame(FORMAT, start, &bytes).is_ok_and(|f| f.payload == payload)
}

/// `submitters` threads each append `entries` entries, register a completion for each, then
/// wait until their last one is safe; one thread runs the flusher.
fn scenario(submitters: u8, entries: u8) {
    let dev = Arc::new(MemDevice::new());
    let id = JournalId { rank: 0, ino: InodeNo::journal_of_rank(0), layout: LAYOUT, format: FORMAT };
    let header = JournalHeader::new(LAYOUT, FORMAT);
    let start_pos = LAYOUT.period();
    let (j, task) =
        Journaler::new(id, dev.clone(), Arc::new(FrozenClock), BatchConfig::default(), &header, start_pos);
    let j = Arc::new(j);
    let completed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let flusher = loom::thread::spawn(move || block_on(task));

    let threads: Vec<_> = (0..submitters)
        .map(|s| {
            let (j, dev, completed) = (j.clone(), dev.clone(), completed.clone());
            loom::thread::spawn(move || {
                let mut last = 0;
                for e in 0..entries {
                    let payload = [s, e];
                    let (dev, completed) = (dev.clone(), completed.clone());
                    let (_, end) = j
                        .append_with(&payload, move |start, end| {
                            Box::new(move |r| {
                                assert!(r.is_ok(), "entry at {start:#x} failed: {r:?}");
                                assert!(
                                    on_device(&dev, start, end, &payload),
                                    "entry at {start:#x} completed before it was on the device"
                                );
                                completed.lock().unwrap().push(start);
                            })
                        })
                        .expect("append");
                    last = end;
                }
                block_on(j.wait_safe(last)).expect("wait_safe");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let order = completed.lock().unwrap().clone();
    assert_eq!(order.len(), usize::from(submitters) * usize::from(entries), "a completion is missing");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "completions out of log order: {order:?}");
    assert_eq!(j.safe_pos(), j.write_pos());
    block_on(j.shutdown());
    flusher.join().unwrap();
}

/// Every interleaving with at most `preemptions` preemptions (most concurrency bugs need no
/// more than 2, per loom's documentation), unless `LOOM_MAX_PREEMPTIONS` says otherwise. The
/// bounds below keep the whole model under a minute in release on the 2-core CI machine.
fn builder(preemptions: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b
}

#[test]
fn two_submitters_two_entries_each_are_all_flushed_and_completed_in_log_order() {
    builder(2).check(|| scenario(2, 2));
}

#[test]
fn one_submitter_three_entries_races_only_with_the_flusher() {
    builder(3).check(|| scenario(1, 3));
}
