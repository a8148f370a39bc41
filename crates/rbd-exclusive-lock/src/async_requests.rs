//! Bookkeeping for maintenance requests forwarded to the lock owner (rbd §3.3, §3.4).
//!
//! A non-owner that wants a snapshot, a resize, ... asks the owner to run it: it sends the op with
//! an [`AsyncRequestId`], the owner acks at once and later reports ASYNC_PROGRESS and
//! ASYNC_COMPLETE. Both ends need a table:
//!
//! * the requester ([`PendingRequests`]) waits for the completion of each request it forwarded,
//!   restarting its timeout on every progress report and giving up with -ERESTART when the owner
//!   goes away;
//! * the owner ([`OwnerRequests`]) remembers which ids it is running and which it finished (for
//!   600 s), so a retried request is answered from memory instead of running twice.
//!
//! Both are plain synchronous tables; the image watcher drives them from notifies and the clock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rados_store::UTime;
use tokio::sync::{Notify, oneshot};

use crate::notify::AsyncRequestId;

/// The per-process counter that request ids come from (rbd §3.4 step 1). It starts at 1 because
/// an all-zero id means "no id".
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Reserves a request id for one API call. Every retry of that call must reuse it, so the owner
/// recognises duplicates (rbd §3.4 step 1).
pub fn next_request_id() -> u64 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
}

/// Progress of a forwarded op as the owner reports it: (offset, total).
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

struct Pending {
    done: oneshot::Sender<i32>,
    progress: Option<ProgressFn>,
    /// Signalled on every ASYNC_PROGRESS so the waiter restarts its timeout.
    progressed: Arc<Notify>,
}

/// What a requester holds while waiting for one forwarded request.
pub struct PendingHandle {
    /// Resolves with the ASYNC_COMPLETE result, or -ERESTART on cancellation.
    pub done: oneshot::Receiver<i32>,
    /// Signalled whenever the owner reports progress.
    pub progressed: Arc<Notify>,
}

impl fmt::Debug for PendingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingHandle")
    }
}

/// The requester's table of forwarded requests awaiting completion (rbd §3.4).
#[derive(Default)]
pub struct PendingRequests {
    map: Mutex<HashMap<AsyncRequestId, Pending>>,
}

impl fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRequests").field("len", &self.len()).finish()
    }
}

impl PendingRequests {
    fn map(&self) -> MutexGuard<'_, HashMap<AsyncRequestId, Pending>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `id` before its notify is sent, so a completion that overtakes the ack is not
    /// lost. A stale entry with the same id (an earlier attempt) is canceled with -ERESTART.
    pub fn register(&self, id: AsyncRequestId, progress: Option<ProgressFn>) -> PendingHandle {
        let (tx, rx) = oneshot::channel();
        let progressed = Arc::new(Notify::new());
        let old = self.map().insert(id, Pending { done: tx, progress, progressed: progressed.clone() });
        if let Some(old) = old {
            let _ = old.done.send(-lock_sm::managed_lock::errno::ERESTART);
        }
        PendingHandle { done: rx, progressed }
    }

    /// Forgets `id` (its notify failed, or the waiter timed out).
    pub fn remove(&self, id: &AsyncRequestId) -> bool {
        self.map().remove(id).is_some()
    }

    /// ASYNC_PROGRESS: restarts the timeout and reports the progress. False if `id` is unknown.
    pub fn progress(&self, id: &AsyncRequestId, offset: u64, total: u64) -> bool {
        let (progress, progressed) = {
            let map = self.map();
            let Some(p) = map.get(id) else { return false };
            (p.progress.clone(), p.progressed.clone())
        };
        progressed.notify_one();
        if let Some(f) = progress {
            f(offset, total);
        }
        true
    }

    /// ASYNC_COMPLETE: completes `id` with `result`. False if `id` is unknown.
    pub fn complete(&self, id: &AsyncRequestId, result: i32) -> bool {
        match self.map().remove(id) {
            Some(p) => {
                let _ = p.done.send(result);
                true
            }
            None => false,
        }
    }

    /// Completes every pending request with `r` (-ERESTART when the owner released or changed,
    /// or notifications were blocked, rbd §3.4 step 5). Returns how many there were.
    pub fn cancel_all(&self, r: i32) -> usize {
        let drained: Vec<Pending> = self.map().drain().map(|(_, p)| p).collect();
        let n = drained.len();
        for p in drained {
            let _ = p.done.send(r);
        }
        n
    }

    /// Number of pending requests.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No pending request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a forwarded request stands on the owner (rbd §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRequestState {
    /// Not seen before (or forgotten): it is now recorded as running; run it.
    New,
    /// Already running: ack 0 and do not run it again.
    Pending,
    /// Finished within the retention window with this result: ack it (the window restarts).
    Complete(i32),
}

#[derive(Default)]
struct OwnerState {
    pending: HashSet<AsyncRequestId>,
    /// Result and the time the memory of it expires.
    complete: HashMap<AsyncRequestId, (i32, UTime)>,
}

/// The owner's memory of forwarded requests, for duplicate detection (rbd §3.3).
///
/// Expiry is judged from the cluster clock's value on every access, so no timer is needed and a
/// simulated clock decides it exactly.
#[derive(Default)]
pub struct OwnerRequests {
    state: Mutex<OwnerState>,
}

impl fmt::Debug for OwnerRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.st();
        f.debug_struct("OwnerRequests")
            .field("pending", &st.pending.len())
            .field("complete", &st.complete.len())
            .finish()
    }
}

impl OwnerRequests {
    fn st(&self) -> MutexGuard<'_, OwnerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `id` up at time `now`, recording it as running if it is new. A hit on a completed id
    /// restarts its `retention` window, as librbd does.
    pub fn begin(&self, id: AsyncRequestId, now: UTime, retention: Duration) -> OwnerRequestState {
        let mut st = self.st();
        st.complete.retain(|_, (_, expires)| now < *expires);
        if st.pending.contains(&id) {
            return OwnerRequestState::Pending;
        }
        if let Some((r, expires)) = st.complete.get_mut(&id) {
            *expires = now.saturating_add(retention);
            return OwnerRequestState::Complete(*r);
        }
        st.pending.insert(id);
        OwnerRequestState::New
    }

    /// Records that `id` finished with `r`; it is remembered until `now + retention`.
    pub fn finish(&self, id: AsyncRequestId, r: i32, now: UTime, retention: Duration) {
        let mut st = self.st();
        st.pending.remove(&id);
        st.complete.insert(id, (r, now.saturating_add(retention)));
    }

    /// Drops `id` from the running set without remembering a result (the op could not be
    /// started).
    pub fn abandon(&self, id: &AsyncRequestId) {
        self.st().pending.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::ClientId;

    fn id(n: u64) -> AsyncRequestId {
        AsyncRequestId::new(ClientId::new(4100, 77), n)
    }

    #[test]
    fn request_ids_are_never_zero_and_increase() {
        let a = next_request_id();
        let b = next_request_id();
        assert!(a >= 1 && b > a);
    }

    #[tokio::test]
    async fn pending_complete_progress_and_cancel_rbd_3_4() {
        let t = PendingRequests::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let h = t.register(id(1), Some(Arc::new(move |o, n| s2.lock().unwrap().push((o, n)))));
        assert!(t.progress(&id(1), 1, 10));
        assert_eq!(*seen.lock().unwrap(), vec![(1, 10)]);
        assert!(!t.progress(&id(2), 1, 10));
        assert!(t.complete(&id(1), -5));
        assert_eq!(h.done.await, Ok(-5));
        assert!(!t.complete(&id(1), 0), "completion is delivered once");

        let h2 = t.register(id(2), None);
        let h3 = t.register(id(3), None);
        assert_eq!(t.cancel_all(-85), 2);
        assert_eq!(h2.done.await, Ok(-85));
        assert_eq!(h3.done.await, Ok(-85));
        assert!(t.is_empty());

        let stale = t.register(id(4), None);
        let _fresh = t.register(id(4), None);
        assert_eq!(stale.done.await, Ok(-85), "a re-registered id cancels the stale waiter");
    }

    #[test]
    fn owner_duplicate_detection_for_600_s_rbd_3_3() {
        let o = OwnerRequests::default();
        let ret = Duration::from_secs(600);
        let t0 = UTime { sec: 1000, nsec: 0 };
        assert_eq!(o.begin(id(1), t0, ret), OwnerRequestState::New);
        assert_eq!(o.begin(id(1), t0, ret), OwnerRequestState::Pending);
        o.finish(id(1), -17, t0, ret);
        let t1 = t0.saturating_add(Duration::from_secs(599));
        assert_eq!(o.begin(id(1), t1, ret), OwnerRequestState::Complete(-17));
        // The hit restarted the window: still remembered 599 s after the hit.
        let t2 = t1.saturating_add(Duration::from_secs(599));
        assert_eq!(o.begin(id(1), t2, ret), OwnerRequestState::Complete(-17));
        // 600 s without a hit: forgotten, so it runs again.
        let t3 = t2.saturating_add(Duration::from_secs(600));
        assert_eq!(o.begin(id(1), t3, ret), OwnerRequestState::New);
        o.abandon(&id(1));
        assert_eq!(o.begin(id(1), t3, ret), OwnerRequestState::New);
    }
}
