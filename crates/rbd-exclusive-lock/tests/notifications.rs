//! What image handles say to each other (rbd §3): forwarded maintenance requests with progress,
//! completion, timeouts, cancellation and duplicate detection (§3.3, §3.4), the receiver rules
//! for unknown, malformed, blocked and header-update notifies (§3.1, §3.2, §3.6), the owner's
//! REQUEST_LOCK replies (§2.9) and quiesce (§3.7).

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, guarded, settle};
use rbd_exclusive_lock::notify::{
    AsyncRequestId, ClientId, NotifyMessage, ResponseMessage, SnapCreateFlags, SnapshotNamespace,
};
use rbd_exclusive_lock::{LockConfig, LockError, State, next_request_id};

fn response(r: i32) -> Vec<u8> {
    ResponseMessage::new(r).to_bytes()
}

fn snap_create(async_request_id: AsyncRequestId) -> NotifyMessage {
    NotifyMessage::SnapCreate {
        snap_name: "s1".into(),
        snap_namespace: SnapshotNamespace::User,
        async_request_id,
        flags: SnapCreateFlags::default(),
    }
}

/// rbd §3.3, §3.4, §7 step 3, §10 fact 46: a non-owner forwards SNAP_CREATE; the owner acks 0 at
/// once, runs it, reports progress and completes; the requester sees progress and the result, and
/// the owner keeps the lock.
#[tokio::test(start_paused = true)]
async fn s3_4_forwarded_op_runs_on_the_owner_with_progress() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        a.handler.progress_steps.store(2, Ordering::SeqCst);
        *a.handler.progress_every.lock().unwrap() = Duration::from_secs(1);
        *a.handler.clock.lock().unwrap() = Some(env.clock.clone());

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let request_id = next_request_id();
        let w = b.watcher.clone();
        let req = tokio::spawn(async move {
            w.notify_async_request(
                request_id,
                snap_create,
                Some(Arc::new(move |o, t| s2.lock().unwrap().push((o, t)))),
            )
            .await
        });
        env.advance(Duration::from_secs(1)).await;
        env.advance(Duration::from_secs(1)).await;
        req.await.unwrap().expect("forwarded snap create");
        assert_eq!(*seen.lock().unwrap(), vec![(1, 2), (2, 2)]);
        let executed = a.handler.executed();
        assert_eq!(executed.len(), 1);
        assert_eq!(executed[0].op, 8);
        assert_eq!(executed[0].id, AsyncRequestId::new(b.watcher.client_id(), request_id));
        assert_eq!(a.lock.state(), State::Locked, "the owner keeps the lock");
        assert_eq!(b.watcher.pending_requests(), 0);
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.4 step 5, §10 fact 48: the requester times out `rbd_request_timed_out_seconds` after the
/// last sign of life; every ASYNC_PROGRESS restarts the timer, so a long op that reports progress
/// completes, and a silent one times out.
#[tokio::test(start_paused = true)]
async fn s3_4_progress_restarts_the_request_timeout() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        *a.handler.clock.lock().unwrap() = Some(env.clock.clone());
        *a.handler.progress_every.lock().unwrap() = Duration::from_secs(20);
        a.handler.progress_steps.store(3, Ordering::SeqCst);

        let w = b.watcher.clone();
        let id = next_request_id();
        let req = tokio::spawn(async move {
            w.notify_async_request(id, |async_request_id| NotifyMessage::Flatten { async_request_id }, None)
                .await
        });
        for _ in 0..3 {
            env.advance(Duration::from_secs(20)).await;
        }
        req.await.unwrap().expect("60 s op with progress every 20 s completes");

        // Silent op: no progress, held at the gate.
        a.handler.progress_steps.store(0, Ordering::SeqCst);
        a.handler.gate.send_replace(false);
        let w = b.watcher.clone();
        let id = next_request_id();
        let req = tokio::spawn(async move {
            w.notify_async_request(id, |async_request_id| NotifyMessage::Flatten { async_request_id }, None)
                .await
        });
        env.advance(Duration::from_secs(29)).await;
        assert!(!req.is_finished());
        env.advance(Duration::from_secs(1)).await;
        assert_eq!(req.await.unwrap(), Err(LockError::TimedOut));
        assert_eq!(b.watcher.pending_requests(), 0);
        a.handler.gate.send_replace(true);
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §8 `NotifyAsyncRequestTimedOut`: with `rbd_request_timed_out_seconds` = 0 the request
/// times out even though the owner accepted it.
#[tokio::test(start_paused = true)]
async fn s8_request_timeout_zero() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b =
            env.open_with(LockConfig { request_timed_out: Duration::ZERO, ..LockConfig::default() }).await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        a.handler.gate.send_replace(false);
        let r = b
            .watcher
            .notify_async_request(
                next_request_id(),
                |async_request_id| NotifyMessage::Migrate { async_request_id },
                None,
            )
            .await;
        assert_eq!(r, Err(LockError::TimedOut));
        a.handler.gate.send_replace(true);
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.4 step 3, §8 `NotifyAsyncTimedOut`, §10 fact 45: without an owner every watcher acks
/// empty and the request fails -ETIMEDOUT at once; an owner whose requests are blocked answers
/// with its block code (§8 `NotifyAsyncError`, fact 65); an owner's failed op is propagated
/// (`NotifyAsyncCompleteError`).
#[tokio::test(start_paused = true)]
async fn s3_4_owner_answers_and_errors() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        let flatten = |async_request_id| NotifyMessage::Flatten { async_request_id };
        assert_eq!(
            b.watcher.notify_async_request(next_request_id(), flatten, None).await,
            Err(LockError::TimedOut)
        );

        a.lock.acquire_lock().await.unwrap();
        settle().await;
        a.lock.block_requests(-30);
        assert_eq!(
            b.watcher.notify_async_request(next_request_id(), flatten, None).await,
            Err(LockError::ReadOnly)
        );
        a.lock.unblock_requests();
        // Blocked with 0: the owner acks empty, which looks like no owner at all.
        a.lock.block_requests(0);
        assert_eq!(
            b.watcher.notify_async_request(next_request_id(), flatten, None).await,
            Err(LockError::TimedOut)
        );
        a.lock.unblock_requests();
        assert_eq!(a.lock.accept_request(rbd_exclusive_lock::RequestType::General), (true, 0));

        a.handler.result.store(-108, Ordering::SeqCst);
        let r = b.watcher.notify_async_request(next_request_id(), flatten, None).await;
        assert_eq!(r.unwrap_err().errno(), 108);
        // The default handler of a handle that cannot run ops refuses with -EOPNOTSUPP (§10 fact 51).
        a.handler.result.store(-95, Ordering::SeqCst);
        assert_eq!(
            b.watcher.notify_async_request(next_request_id(), flatten, None).await,
            Err(LockError::NotSupported)
        );
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.4 step 5, §8 `TestInternal.CancelAsyncResize`, §10 fact 49: when the owner releases the
/// lock, the requester's pending request ends with -ERESTART (and is retried by the caller).
#[tokio::test(start_paused = true)]
async fn s3_4_owner_release_cancels_pending_requests_with_erestart() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        a.handler.gate.send_replace(false);
        let w = b.watcher.clone();
        let req = tokio::spawn(async move {
            w.notify_async_request(
                next_request_id(),
                |async_request_id| NotifyMessage::Resize {
                    size: 1 << 30,
                    async_request_id,
                    allow_shrink: true,
                },
                None,
            )
            .await
        });
        settle().await;
        assert_eq!(b.watcher.pending_requests(), 1);
        a.lock.release_lock().await.unwrap();
        settle().await;
        assert_eq!(req.await.unwrap(), Err(LockError::Restart));
        a.handler.gate.send_replace(true);
        settle().await;
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.3, §10 fact 47: the owner runs a request id once. A duplicate that is still running is
/// acked 0; one completed within 600 s is acked with the stored result; after 600 s without a
/// duplicate it is forgotten. A request carrying the owner's own ClientId is answered -ERESTART.
#[tokio::test(start_paused = true)]
async fn s3_3_duplicate_requests_are_answered_from_memory() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let id = AsyncRequestId::new(ClientId::new(999, 12345), 7);
        let payload = NotifyMessage::Flatten { async_request_id: id }.to_bytes();
        a.handler.gate.send_replace(false);
        a.handler.result.store(-17, Ordering::SeqCst);

        let reply = env.raw_notify(&payload).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()), "new: acked 0 at once");
        let reply = env.raw_notify(&payload).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()), "still running: acked 0");
        a.handler.gate.send_replace(true);
        settle().await;
        assert_eq!(a.handler.executed().len(), 1);
        env.advance(Duration::from_secs(599)).await;
        let reply = env.raw_notify(&payload).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-17).as_slice()), "completed: the stored result");
        env.advance(Duration::from_secs(599)).await;
        let reply = env.raw_notify(&payload).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-17).as_slice()), "the hit restarted the 600 s window");
        settle().await;
        assert_eq!(a.handler.executed().len(), 1, "never run twice");
        env.advance(Duration::from_secs(601)).await;
        let reply = env.raw_notify(&payload).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()), "forgotten: runs again");
        settle().await;
        assert_eq!(a.handler.executed().len(), 2);

        let own = AsyncRequestId::new(a.watcher.client_id(), 8);
        let reply =
            env.raw_notify(&NotifyMessage::Flatten { async_request_id: own }.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-85).as_slice()));
        // A legacy request without an id runs synchronously: the ack carries the result.
        a.handler.result.store(-2, Ordering::SeqCst);
        let legacy =
            NotifyMessage::Rename { image_name: "n".into(), async_request_id: AsyncRequestId::default() };
        let reply = env.raw_notify(&legacy.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-2).as_slice()));
        env.assert_single_owner(&[&a]).await;
    })
    .await;
}

/// rbd §11 (possible livelock): a requester whose wait timed out just before the owner's
/// ASYNC_COMPLETE retries with the same request id; the owner answers from memory and re-sends the
/// completion, so the retry finishes instead of waiting for another timeout.
#[tokio::test(start_paused = true)]
async fn s11_retry_of_a_completed_request_completes() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        a.handler.gate.send_replace(false);
        let request_id = next_request_id();
        let op = |async_request_id| NotifyMessage::RebuildObjectMap { async_request_id };
        let w = b.watcher.clone();
        let first = tokio::spawn(async move { w.notify_async_request(request_id, op, None).await });
        env.advance(Duration::from_secs(30)).await;
        assert_eq!(first.await.unwrap(), Err(LockError::TimedOut));
        a.handler.gate.send_replace(true);
        settle().await;
        // The retry is answered at once with the stored result and completes without a timeout.
        b.watcher.notify_async_request(request_id, op, None).await.expect("retry completes");
        assert_eq!(a.handler.executed().len(), 1);
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.2 "other", §10 fact 44: an unknown op gets ResponseMessage(-EOPNOTSUPP) from the owner
/// and empty acks from everyone else.
#[tokio::test(start_paused = true)]
async fn s3_2_unknown_op_is_refused_by_the_owner_only() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let reply = env.raw_notify(&NotifyMessage::Unknown { op: 77 }.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-95).as_slice()));
        assert_eq!(b.ack_in(&reply), Some(&[][..]));
        // A non-owner whose requests are blocked with an error answers too.
        b.lock.block_requests(-16);
        let reply = env.raw_notify(&NotifyMessage::Unknown { op: 1000 }.to_bytes()).await.unwrap();
        assert_eq!(b.ack_in(&reply), Some(response(-95).as_slice()));
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.2, §10 fact 43: a payload that does not decode is not acked, so the sender sees those
/// watchers time out.
#[tokio::test(start_paused = true)]
async fn s3_2_malformed_payload_is_not_acked() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        let admin = env.admin.clone();
        let oid = env.oid.clone();
        let notify =
            tokio::spawn(async move { admin.notify(&oid, &[7, 1, 0xff], Duration::from_secs(5)).await });
        env.advance(Duration::from_secs(5)).await;
        let err = notify.await.unwrap().unwrap_err();
        let reply = err.reply().expect("timed out with a partial reply");
        assert!(reply.acks.is_empty());
        let mut missed: Vec<u64> = reply.timeouts.iter().map(|w| w.gid).collect();
        missed.sort_unstable();
        assert_eq!(missed, vec![a.gid(), b.gid()]);
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.2 HEADER_UPDATE, §3.6, §10 fact 42: an empty payload (legacy) and a HEADER_UPDATE mark
/// every handle refresh-required and are acked with ResponseMessage(0).
#[tokio::test(start_paused = true)]
async fn s3_6_header_update_marks_refresh_required() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        let reply = env.raw_notify(&[]).await.unwrap();
        for h in [&a, &b] {
            assert_eq!(h.ack_in(&reply), Some(response(0).as_slice()));
            assert_eq!(h.handler.header_updates.load(Ordering::SeqCst), 1);
        }
        a.watcher.notify_header_update().await.unwrap();
        for h in [&a, &b] {
            assert_eq!(h.handler.header_updates.load(Ordering::SeqCst), 2);
        }
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §3.1, §10 fact 63: while notifications are blocked (image closing) incoming notifies are
/// acked empty and not processed.
#[tokio::test(start_paused = true)]
async fn s3_1_blocked_notifications_are_acked_empty() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        a.watcher.block_notifies();
        let reply = env.raw_notify(&NotifyMessage::HeaderUpdate.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(&[][..]));
        assert_eq!(a.handler.header_updates.load(Ordering::SeqCst), 0);
        assert_eq!(b.ack_in(&reply), Some(response(0).as_slice()));
        a.watcher.unblock_notifies();
        let reply = env.raw_notify(&NotifyMessage::HeaderUpdate.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()));
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}

/// rbd §2.9, §10 facts 29, 30, 65: the owner's REQUEST_LOCK replies: its own request is ignored;
/// with requests blocked it answers the block code and keeps the lock; otherwise the automatic
/// policy answers 0 and releases.
#[tokio::test(start_paused = true)]
async fn s2_9_request_lock_replies() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        a.lock.acquire_lock().await.unwrap();
        settle().await;
        let own = NotifyMessage::RequestLock { client_id: a.watcher.client_id(), force: false };
        let reply = env.raw_notify(&own.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(&[][..]));
        let peer = NotifyMessage::RequestLock { client_id: ClientId::new(4242, 99), force: true };
        a.lock.block_requests(0);
        let reply = env.raw_notify(&peer.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()));
        a.lock.block_requests(-16);
        let reply = env.raw_notify(&peer.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(-16).as_slice()), "the first non-zero block code");
        settle().await;
        assert_eq!(a.lock.state(), State::Locked);
        env.assert_single_owner(&[&a]).await;
        a.lock.unblock_requests();
        a.lock.unblock_requests();
        let reply = env.raw_notify(&peer.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(response(0).as_slice()));
        settle().await;
        assert_eq!(a.lock.state(), State::Unlocked, "the automatic policy released");
        // A non-owner acks empty.
        let reply = env.raw_notify(&peer.to_bytes()).await.unwrap();
        assert_eq!(a.ack_in(&reply), Some(&[][..]));
        env.assert_single_owner(&[&a]).await;
    })
    .await;
}

/// rbd §3.7: the snapshot creator quiesces every watcher (each acks with its quiesce result) and
/// un-quiesces them; a watcher that never hears UNQUIESCE un-quiesces itself after 10 s.
#[tokio::test(start_paused = true)]
async fn s3_7_quiesce_and_unquiesce() {
    guarded(async {
        let env = Env::new().await;
        let a = env.open().await;
        let b = env.open().await;
        let id = a.watcher.notify_quiesce(next_request_id()).await.expect("quiesce");
        for h in [&a, &b] {
            assert_eq!(h.handler.quiesced.load(Ordering::SeqCst), 1);
        }
        a.watcher.notify_unquiesce(id).await.unwrap();
        settle().await;
        for h in [&a, &b] {
            assert_eq!(h.handler.unquiesced.load(Ordering::SeqCst), 1);
        }
        env.advance(Duration::from_secs(10)).await;
        assert_eq!(a.handler.unquiesced.load(Ordering::SeqCst), 1, "the timer was canceled");

        a.watcher.notify_quiesce(next_request_id()).await.unwrap();
        env.advance(Duration::from_secs(9)).await;
        assert_eq!(b.handler.unquiesced.load(Ordering::SeqCst), 1);
        env.advance(Duration::from_secs(1)).await;
        assert_eq!(b.handler.unquiesced.load(Ordering::SeqCst), 2, "auto-unquiesce after 10 s");
        env.assert_single_owner(&[&a, &b]).await;
    })
    .await;
}
