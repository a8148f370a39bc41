//! Watch/notify: the values that cross the seam between a backend and its callers.
//!
//! librbd's image watcher (rbd §3.1) is built on these: every writable image handle watches the
//! header object, lock requests and header updates travel as notifies, and the lock owner's
//! liveness is judged by whether its (address, watch cookie) still appears in `list_watchers`
//! (rbd §1.6.3). The semantics follow librados `watch2`/`notify2`:
//!
//! * a watch is identified by a non-zero u64 *handle* (the "cookie" the OSD reports);
//! * every watcher of the object, including the notifier's own watch, gets the notify and
//!   answers with `notify_ack(reply)`, possibly later and from another task;
//! * the notifier gets every ack as `(gid, cookie, reply)` plus the watchers that missed the
//!   deadline, and -ETIMEDOUT if there were any, *together with* the acks that did arrive
//!   (real-ceph §5: `ret=-110 ... reply=([], [(4357, ...)])`). [`NotifyError::TimedOut`] carries
//!   that partial reply so callers cannot lose it.

use std::fmt;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, errno};
use crate::types::{EntityAddr, Gid};

/// A notify as one watcher receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyEvent {
    /// Identifies this notify; pass it back to `notify_ack`.
    pub notify_id: u64,
    /// The watch handle (cookie) the notify arrived on.
    pub handle: u64,
    /// The notifying client's gid.
    pub notifier_gid: Gid,
    /// The notify payload.
    pub payload: Bytes,
}

/// What a watch can report, for callers that prefer a channel to callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A notify to acknowledge.
    Notify(NotifyEvent),
    /// The watch is broken (the client was blocklisted, or the watch timed out); the caller
    /// should re-watch (rbd §3.8).
    Error {
        /// The broken watch's handle.
        handle: u64,
        /// Why (e.g. [`Error::Blocklisted`]).
        error: Error,
    },
}

/// The callbacks of one watch, as librados' `WatchCtx2`.
///
/// Callbacks run on a delivery task, one at a time and in order per client, never inside the
/// notifier's call, so they may take locks the notifier holds. They must not block for long: the
/// usual pattern is to hand the event to a task that later calls `notify_ack`.
pub trait WatchCtx: Send + Sync + 'static {
    /// A notify arrived on this watch.
    fn handle_notify(&self, event: NotifyEvent);
    /// The watch broke; no more notifies will arrive on it.
    fn handle_error(&self, handle: u64, error: Error);
}

impl WatchCtx for mpsc::UnboundedSender<WatchEvent> {
    fn handle_notify(&self, event: NotifyEvent) {
        // A closed receiver means the watcher stopped listening; nothing to deliver to.
        let _ = self.send(WatchEvent::Notify(event));
    }

    fn handle_error(&self, handle: u64, error: Error) {
        let _ = self.send(WatchEvent::Error { handle, error });
    }
}

/// A watch context that forwards events into a channel, and the receiving end.
///
/// Unbounded because the store must never block a notifier on a slow watcher, as an OSD does not;
/// each notify's timeout bounds how long an unanswered event matters.
pub fn watch_channel() -> (std::sync::Arc<dyn WatchCtx>, mpsc::UnboundedReceiver<WatchEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (std::sync::Arc::new(tx), rx)
}

/// Identifies one watch of one client (Ceph's `(gid, cookie)` pairs in a notify reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId {
    /// The watching client's gid.
    pub gid: Gid,
    /// The watch handle.
    pub cookie: u64,
}

/// One acknowledgement in a notify reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAck {
    /// The acknowledging client's gid.
    pub gid: Gid,
    /// The watch handle it acknowledged on.
    pub cookie: u64,
    /// The reply payload it passed to `notify_ack` (may be empty).
    pub reply: Vec<u8>,
}

/// Everything a notify collected: the acks, sorted by (gid, cookie) as the OSD's reply map is,
/// and the watchers that did not ack in time, sorted the same way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyReply {
    /// Acks received before the deadline.
    pub acks: Vec<NotifyAck>,
    /// Watchers that missed the deadline.
    pub timeouts: Vec<WatcherId>,
}

impl NotifyReply {
    /// The errno librados would return with this reply: 0, or -ETIMEDOUT if anyone timed out.
    pub fn errno(&self) -> i32 {
        if self.timeouts.is_empty() { 0 } else { -errno::ETIMEDOUT }
    }
}

/// Why a notify did not fully succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Some watchers missed the deadline (-ETIMEDOUT). The reply still holds every ack that
    /// arrived and lists the watchers that did not.
    #[error("notify timed out waiting for {} watcher(s)", .0.timeouts.len())]
    TimedOut(NotifyReply),
    /// The notify could not be sent at all (missing object, blocklisted client, ...).
    #[error(transparent)]
    Failed(#[from] Error),
}

impl NotifyError {
    /// The positive errno (110 for a timeout).
    pub fn errno(&self) -> i32 {
        match self {
            NotifyError::TimedOut(_) => errno::ETIMEDOUT,
            NotifyError::Failed(e) => e.errno(),
        }
    }

    /// The partial reply of a timed-out notify.
    pub fn reply(&self) -> Option<&NotifyReply> {
        match self {
            NotifyError::TimedOut(r) => Some(r),
            NotifyError::Failed(_) => None,
        }
    }
}

impl From<NotifyError> for Error {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::TimedOut(r) => {
                let who: Vec<String> = r.timeouts.iter().map(|w| format!("{}/{}", w.gid, w.cookie)).collect();
                Error::TimedOut(format!("notify: no ack from {}", who.join(", ")))
            }
            NotifyError::Failed(e) => e,
        }
    }
}

/// One entry of `list_watchers`: enough to decide whether a lock owner is alive (rbd §1.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherInfo {
    /// The watcher's address (compare its `Display` form with a locker's, as librbd does).
    pub addr: EntityAddr,
    /// The watcher's gid (`client.<gid>`).
    pub gid: Gid,
    /// The watch handle.
    pub cookie: u64,
}

impl fmt::Display for WatcherInfo {
    /// The `rados listwatchers` form: `watcher=<addr> client.<gid> cookie=<cookie>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watcher={} client.{} cookie={}", self.addr, self.gid, self.cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_out_notify_keeps_reply_and_maps_to_etimedout() {
        let reply = NotifyReply {
            acks: vec![NotifyAck { gid: 1, cookie: 2, reply: b"pong".to_vec() }],
            timeouts: vec![WatcherId { gid: 3, cookie: 4 }],
        };
        assert_eq!(reply.errno(), -110);
        let err = NotifyError::TimedOut(reply.clone());
        assert_eq!(err.errno(), 110);
        assert_eq!(err.reply(), Some(&reply));
        let plain: Error = err.into();
        assert_eq!(plain.errno(), 110);
        assert_eq!(NotifyError::from(Error::Blocklisted).errno(), 108);
    }

    #[test]
    fn watcher_display_matches_rados_listwatchers() {
        let w = WatcherInfo { addr: "127.0.0.1:0/1675076772".parse().unwrap(), gid: 4275, cookie: 624509136 };
        assert_eq!(w.to_string(), "watcher=127.0.0.1:0/1675076772 client.4275 cookie=624509136");
    }
}
