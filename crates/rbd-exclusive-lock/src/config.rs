//! The lock's tunables: librbd 16.2's configuration options and its hard-coded timings.
//!
//! librbd reads some of these from `ceph.conf` and hard-codes the rest (rbd §0.2). Here every one
//! is a field, because tests run on a simulated clock and must be able to shrink or stretch each
//! timeout independently, and because a deployment may want the Ceph options without a Ceph
//! config file. [`LockConfig::default`] is exactly 16.2's behaviour.

use std::time::Duration;

/// Every option and timing the exclusive lock, the managed lock and the image watcher use.
///
/// All durations run on the cluster's [`rados_store::Clock`], never on the system clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    /// `rbd_blocklist_on_break_lock` (default true): blocklist a dead or force-broken owner before
    /// breaking its lock. It also decides whether a reacquire with an unchanged cookie may skip the
    /// OSD (rbd §1.4 REACQUIRE, §9 row 2).
    pub blocklist_on_break_lock: bool,
    /// `rbd_blocklist_expire_seconds` (default 0): how long a broken owner stays blocklisted; zero
    /// means the monitor default (`mon_osd_blocklist_default_expire`, one hour).
    pub blocklist_expire: Duration,
    /// `rbd_request_timed_out_seconds` (default 30 s): how long a requester waits for a forwarded
    /// op to complete; every ASYNC_PROGRESS restarts it (rbd §3.4).
    pub request_timed_out: Duration,
    /// `rbd_auto_exclusive_lock_until_manual_request` (default true): new handles start with the
    /// automatic policy; false starts them with the standard one (rbd §2.8).
    pub auto_exclusive_lock_until_manual_request: bool,
    /// `client_notify_timeout` (default 10 s): after the owner acked a REQUEST_LOCK positively,
    /// re-send it after this long if no RELEASED_LOCK arrived (rbd §3.5 step 5).
    pub client_notify_timeout: Duration,
    /// The timeout of every notify the image watcher sends (hard-coded 5 s in librbd's Notifier).
    pub notify_timeout: Duration,
    /// Retry delay of REQUEST_LOCK after an error answer (hard-coded 1 s, rbd §3.5 step 4).
    pub request_lock_retry_delay: Duration,
    /// How long an owner remembers a completed forwarded request for duplicate detection
    /// (hard-coded 600 s, restarted on each duplicate hit, rbd §3.3).
    pub async_request_retention: Duration,
    /// How long a quiesced handle waits for UNQUIESCE before un-quiescing by itself (hard-coded as
    /// twice the notify timeout, 10 s, rbd §3.7).
    pub quiesce_timeout: Duration,
    /// `rbd_quiesce_notification_attempts` (default 10, minimum 1): QUIESCE notify attempts on
    /// -ETIMEDOUT (rbd §3.7).
    pub quiesce_notification_attempts: u32,
    /// Delay before retrying a re-watch that failed with an error other than -EBLOCKLISTED or
    /// -ENOENT (those two are final, rbd §3.8). librbd retries through its work queue; a delay on
    /// the clock keeps a persistently failing re-watch from spinning.
    pub rewatch_retry_delay: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            blocklist_on_break_lock: true,
            blocklist_expire: Duration::ZERO,
            request_timed_out: Duration::from_secs(30),
            auto_exclusive_lock_until_manual_request: true,
            client_notify_timeout: Duration::from_secs(10),
            notify_timeout: Duration::from_secs(5),
            request_lock_retry_delay: Duration::from_secs(1),
            async_request_retention: Duration::from_secs(600),
            quiesce_timeout: Duration::from_secs(10),
            quiesce_notification_attempts: 10,
            rewatch_retry_delay: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_16_2_rbd_0_2() {
        let c = LockConfig::default();
        assert!(c.blocklist_on_break_lock);
        assert_eq!(c.blocklist_expire, Duration::ZERO);
        assert_eq!(c.request_timed_out, Duration::from_secs(30));
        assert!(c.auto_exclusive_lock_until_manual_request);
        assert_eq!(c.client_notify_timeout, Duration::from_secs(10));
        assert_eq!(c.notify_timeout, Duration::from_millis(5000));
        assert_eq!(c.request_lock_retry_delay, Duration::from_secs(1));
        assert_eq!(c.async_request_retention, Duration::from_secs(600));
        assert_eq!(c.quiesce_timeout, 2 * c.notify_timeout);
        assert_eq!(c.quiesce_notification_attempts, 10);
    }
}
