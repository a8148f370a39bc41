//! Watches and in-flight notifies of the embedded cluster, under one lock.
//!
//! Time-based outcomes are decided from the clock's *value*, not from which task happens to run
//! first: a dead client's watch disappears at exactly `killed_at + watch_timeout`, a notify
//! times out at exactly its deadline, and an event (ack, unwatch, expiry) counts for a notify
//! only if it happened strictly before that deadline. So when a test advances a simulated clock
//! past both an expiry and a deadline at once, the result is the same as if time had moved one
//! step at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::backend::PoolId;
use crate::error::Error;
use crate::types::{EntityAddr, Gid, UTime};
use crate::watch::{NotifyAck, NotifyEvent, NotifyReply, WatchCtx, WatcherId, WatcherInfo};

/// (pool, namespace, object name).
pub(crate) type ObjKey = (PoolId, String, String);

/// A callback to run on a client's delivery task.
pub(crate) enum Delivery {
    Notify(Arc<dyn WatchCtx>, NotifyEvent),
    Error(Arc<dyn WatchCtx>, u64, Error),
}

impl Delivery {
    fn run(self) {
        match self {
            Delivery::Notify(ctx, ev) => ctx.handle_notify(ev),
            Delivery::Error(ctx, handle, err) => ctx.handle_error(handle, err),
        }
    }
}

/// A client's watches as it had them when it stopped: (cookie, callback).
pub(crate) type HeldWatches = Vec<(u64, Arc<dyn WatchCtx>)>;

/// Per-client state the cluster keeps (the OSDs' view of a session).
pub(crate) struct ClientShared {
    pub gid: Gid,
    pub addr: EntityAddr,
    dead: Arc<AtomicBool>,
    /// Since when the client has been silent (killed or suspended): its watches expire one
    /// watch timeout later.
    killed_at: Mutex<Option<UTime>>,
    /// Suspended rather than killed: [`ClientShared::resume`] may bring it back. Holds the
    /// watches it had when it stopped, so that it can be told about the ones it lost.
    suspended: Mutex<Option<HeldWatches>>,
    /// Woken on resume: operations a hung client issued wait here, as a stopped process's
    /// requests sit unsent until it runs again.
    pub resumed: Arc<Notify>,
    /// Feeds the client's callback task; created on first use, dropped when the client dies.
    dispatcher: Mutex<Option<mpsc::UnboundedSender<Delivery>>>,
}

impl ClientShared {
    pub fn new(gid: Gid, addr: EntityAddr) -> Self {
        ClientShared {
            gid,
            addr,
            dead: Arc::new(AtomicBool::new(false)),
            killed_at: Mutex::new(None),
            suspended: Mutex::new(None),
            resumed: Arc::new(Notify::new()),
            dispatcher: Mutex::new(None),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub fn killed_at(&self) -> Option<UTime> {
        *self.killed_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the client dead (a crashed process): no more callbacks, its ops fail. Returns false
    /// if it was already dead.
    pub fn kill(&self, now: UTime) -> bool {
        // A hung client that is then killed: the operations it had stalled die with it (they
        // fail with -ENOTCONN once woken); its watches keep expiring from the hang's start.
        if self.suspended.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
            self.resumed.notify_waiters();
            return true;
        }
        if self.dead.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.killed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        // Dropping the sender ends the callback task once it has skipped what is queued.
        self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()).take();
        true
    }

    /// Stops the client as a hung process stops (a paused VM, a partition): like
    /// [`ClientShared::kill`], but remembering its watches so that [`ClientShared::resume`] can
    /// bring it back. Returns false if it was already dead or suspended.
    pub fn suspend(&self, now: UTime, watches: HeldWatches) -> bool {
        if !self.kill(now) {
            return false;
        }
        *self.suspended.lock().unwrap_or_else(|e| e.into_inner()) = Some(watches);
        true
    }

    /// Whether the client is hung (suspended and not yet resumed).
    pub fn is_suspended(&self) -> bool {
        self.suspended.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Wakes a suspended client and the operations it had issued. Returns the watches it had
    /// when it stopped, or `None` if it was not suspended (a killed client stays dead).
    pub fn resume(&self) -> Option<HeldWatches> {
        let watches = self.suspended.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        *self.killed_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.dead.store(false, Ordering::Release);
        self.resumed.notify_waiters();
        Some(watches)
    }

    /// Queues a callback. Callbacks of one client run one at a time, in order, on a task of
    /// their own (librados' finisher thread), never inside the caller. Without a tokio runtime
    /// there is nowhere to run them later, so they run inline.
    pub fn deliver(&self, d: Delivery) {
        if self.is_dead() {
            return;
        }
        let mut slot = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                drop(slot);
                d.run();
                return;
            };
            let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
            let dead = self.dead.clone();
            rt.spawn(async move {
                while let Some(d) = rx.recv().await {
                    if !dead.load(Ordering::Acquire) {
                        d.run();
                    }
                }
            });
            *slot = Some(tx);
        }
        if let Some(tx) = slot.as_ref() {
            let _ = tx.send(d);
        }
    }
}

pub(crate) struct WatchRecord {
    pub obj: ObjKey,
    pub client: Arc<ClientShared>,
    pub ctx: Arc<dyn WatchCtx>,
}

struct NotifyRecord {
    obj: ObjKey,
    deadline: UTime,
    /// Watchers still owed an ack: cookie → gid.
    pending: BTreeMap<u64, Gid>,
    acks: BTreeMap<(Gid, u64), Vec<u8>>,
    wake: Arc<Notify>,
}

/// The outcome of looking at an in-flight notify.
pub(crate) enum NotifyPoll {
    Done(NotifyReply),
    /// Not finished; nothing can change before this time unless someone acks or unwatches.
    WaitUntil(UTime),
}

#[derive(Default)]
pub(crate) struct WatchHub {
    watches: HashMap<u64, WatchRecord>,
    by_object: HashMap<ObjKey, BTreeSet<u64>>,
    notifies: HashMap<u64, NotifyRecord>,
    /// Removed watches, dropped only after the hub's lock is released: a watch context may own
    /// the last handle of its client, whose drop takes the hub's lock again.
    graveyard: Vec<WatchRecord>,
}

impl WatchHub {
    fn expiry_of(rec: &WatchRecord, timeout: Duration) -> Option<UTime> {
        rec.client.killed_at().map(|t| t.saturating_add(timeout))
    }

    pub fn add_watch(&mut self, cookie: u64, rec: WatchRecord) {
        self.by_object.entry(rec.obj.clone()).or_default().insert(cookie);
        self.watches.insert(cookie, rec);
    }

    pub fn get(&self, cookie: u64) -> Option<&WatchRecord> {
        self.watches.get(&cookie)
    }

    /// Takes the removed watches, for the caller to drop once the lock is released.
    pub fn take_graveyard(&mut self) -> Vec<WatchRecord> {
        std::mem::take(&mut self.graveyard)
    }

    /// Removes a watch that went away at time `at`, returning its client and context. In-flight
    /// notifies stop waiting for it if that was before their deadline (the OSD's
    /// `complete_watcher_remove`); after the deadline it already counts as timed out.
    pub fn remove_watch(&mut self, cookie: u64, at: UTime) -> Option<(Arc<ClientShared>, Arc<dyn WatchCtx>)> {
        let rec = self.watches.remove(&cookie)?;
        if let Some(set) = self.by_object.get_mut(&rec.obj) {
            set.remove(&cookie);
            if set.is_empty() {
                self.by_object.remove(&rec.obj);
            }
        }
        for n in self.notifies.values_mut() {
            if at < n.deadline && n.pending.remove(&cookie).is_some() {
                n.wake.notify_one();
            }
        }
        let out = (rec.client.clone(), rec.ctx.clone());
        self.graveyard.push(rec);
        Some(out)
    }

    /// Drops the watches of dead clients whose timeout has passed, each at its own expiry time.
    pub fn purge_expired(&mut self, now: UTime, timeout: Duration) {
        let expired: Vec<(u64, UTime)> = self
            .watches
            .iter()
            .filter_map(|(c, w)| Self::expiry_of(w, timeout).filter(|e| *e <= now).map(|e| (*c, e)))
            .collect();
        for (cookie, at) in expired {
            tracing::debug!(cookie, %at, "watch of dead client timed out");
            self.remove_watch(cookie, at);
        }
    }

    /// The watches of one client, e.g. to break them when it is blocklisted.
    pub fn cookies_of(&self, gid: Gid) -> Vec<u64> {
        let mut v: Vec<u64> =
            self.watches.iter().filter(|(_, w)| w.client.gid == gid).map(|(c, _)| *c).collect();
        v.sort_unstable();
        v
    }

    pub fn list_watchers(&self, obj: &ObjKey) -> Vec<WatcherInfo> {
        let Some(set) = self.by_object.get(obj) else { return Vec::new() };
        set.iter()
            .filter_map(|c| {
                self.watches.get(c).map(|w| WatcherInfo {
                    addr: w.client.addr,
                    gid: w.client.gid,
                    cookie: *c,
                })
            })
            .collect()
    }

    /// Registers a notify to every current watcher of `obj` and returns the callbacks to
    /// deliver (dead clients get none, but are still waited for).
    pub fn start_notify(
        &mut self,
        id: u64,
        obj: &ObjKey,
        deadline: UTime,
        wake: Arc<Notify>,
    ) -> Vec<(Arc<ClientShared>, Arc<dyn WatchCtx>, u64)> {
        let mut pending = BTreeMap::new();
        let mut deliveries = Vec::new();
        for cookie in self.by_object.get(obj).into_iter().flatten() {
            let Some(w) = self.watches.get(cookie) else { continue };
            pending.insert(*cookie, w.client.gid);
            if !w.client.is_dead() {
                deliveries.push((w.client.clone(), w.ctx.clone(), *cookie));
            }
        }
        self.notifies
            .insert(id, NotifyRecord { obj: obj.clone(), deadline, pending, acks: BTreeMap::new(), wake });
        deliveries
    }

    /// Records an ack. Ignored (as by an OSD) if the notify is over, the watch is not owed one,
    /// or the deadline has passed. Returns whether it counted.
    pub fn ack(&mut self, id: u64, obj: &ObjKey, cookie: u64, gid: Gid, reply: &[u8], now: UTime) -> bool {
        let Some(n) = self.notifies.get_mut(&id) else { return false };
        if &n.obj != obj || now >= n.deadline || n.pending.get(&cookie) != Some(&gid) {
            return false;
        }
        n.pending.remove(&cookie);
        n.acks.insert((gid, cookie), reply.to_vec());
        n.wake.notify_one();
        true
    }

    /// Decides whether a notify is finished at `now`; removes it if so.
    pub fn poll_notify(&mut self, id: u64, now: UTime, timeout: Duration) -> NotifyPoll {
        self.purge_expired(now, timeout);
        let Some(n) = self.notifies.get(&id) else {
            // Only the owner removes its record, so this cannot happen; report "done, empty".
            return NotifyPoll::Done(NotifyReply::default());
        };
        if !n.pending.is_empty() && now < n.deadline {
            let mut next = n.deadline;
            for cookie in n.pending.keys() {
                if let Some(e) = self.watches.get(cookie).and_then(|w| Self::expiry_of(w, timeout)) {
                    next = next.min(e);
                }
            }
            return NotifyPoll::WaitUntil(next);
        }
        let Some(n) = self.notifies.remove(&id) else { return NotifyPoll::Done(NotifyReply::default()) };
        let acks =
            n.acks.into_iter().map(|((gid, cookie), reply)| NotifyAck { gid, cookie, reply }).collect();
        let mut timeouts: Vec<WatcherId> =
            n.pending.into_iter().map(|(cookie, gid)| WatcherId { gid, cookie }).collect();
        timeouts.sort();
        NotifyPoll::Done(NotifyReply { acks, timeouts })
    }

    /// Forgets a notify whose caller went away.
    pub fn cancel_notify(&mut self, id: u64) {
        self.notifies.remove(&id);
    }

    /// Wakes every in-flight notify so it re-evaluates (e.g. a watcher's client just died, so its
    /// expiry time is now known).
    pub fn wake_all(&self) {
        for n in self.notifies.values() {
            n.wake.notify_one();
        }
    }
}
