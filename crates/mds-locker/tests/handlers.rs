//! Event handlers: exact effects, refusals, op-tracker flag points and dumps.

mod common;

use common::*;
use lock_sm::LockState as S;
use lock_sm::LockType as T;
use mds_locker::{ClientRequest, Effect, Event, LockFilter, LockOp, LockerError, Op, ReqId};

#[test]
fn refused_events_change_nothing() {
    let mut h = H::new();
    let (dn, f) = h.file("f");
    let before = h.l.dump_locks(LockFilter::All);
    let req = |reqid, client, locks| {
        Event::Request(ClientRequest {
            reqid: ReqId(reqid),
            client,
            op: Op::LockSet { locks, journal: false },
        })
    };
    assert_eq!(h.l.handle(req(1, 9, vec![LockOp::rd(dn_lock(dn))])), Err(LockerError::NoSession(9)));
    let e = h.l.handle(req(1, 1, vec![LockOp::wr(ino_lock(f, T::IAuth))])).unwrap_err();
    assert!(matches!(e, LockerError::UnsupportedLockOp { op: "wrlock", .. }), "{e}");
    let e = h.l.handle(req(1, 1, vec![LockOp::x(ino_lock(f, T::INest))])).unwrap_err();
    assert!(matches!(e, LockerError::UnsupportedLockOp { op: "xlock", .. }), "{e}");
    let e = h.l.handle(req(1, 1, vec![LockOp::rd(ino_lock(f, T::IVersion))])).unwrap_err();
    assert!(matches!(e, LockerError::UnsupportedLockOp { op: "rdlock", .. }), "{e}");
    let bad = mds_locker::LockId::inode(f, T::Dn);
    assert_eq!(h.l.handle(req(1, 1, vec![LockOp::rd(bad)])), Err(LockerError::UnknownLock(bad)));
    assert_eq!(h.l.handle(req(1 << 62, 1, vec![])), Err(LockerError::ReservedRequestId(ReqId(1 << 62))));
    assert_eq!(
        h.l.handle(Event::FinishRequest { reqid: ReqId(5) }),
        Err(LockerError::UnknownRequest(ReqId(5)))
    );
    let from_self = Event::Message {
        from: 0,
        msg: mds_locker::MdsMessage::Replicate(mds_locker::ReplicaBundle::default()),
    };
    assert!(matches!(h.l.handle(from_self), Err(LockerError::BadMessage { from: 0, .. })));
    h.req(1, 1, vec![LockOp::rd(dn_lock(dn))], false);
    // Another client cannot reuse an id in flight (a re-send by the same client waits for
    // the original instead; see server_ops' completed-request tests).
    assert_eq!(h.l.handle(req(1, 2, vec![])), Err(LockerError::DuplicateRequest(ReqId(1))));
    h.finish(1);
    assert_eq!(h.l.dump_locks(LockFilter::All), before);
    h.check();
}

#[test]
fn committing_request_cannot_be_finished_by_the_driver() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let fx = h.req(1, 1, vec![LockOp::x(ino_lock(f, T::IAuth))], true);
    let seq = journal_seq(&fx);
    assert_eq!(
        h.l.handle(Event::FinishRequest { reqid: ReqId(1) }),
        Err(LockerError::RequestCommitting(ReqId(1)))
    );
    h.safe(seq);
}

#[test]
fn fact_58_no_early_reply_means_a_flush_and_xlocks_stay_xlock() {
    let cfg = mds_locker::LockerConfig { early_reply: false, ..Default::default() };
    let mut l = mds_locker::Locker::new(cfg);
    l.handle(Event::SessionOpen { client: 1 }).unwrap();
    let root = l.cache().root();
    let auth = mds_locker::LockId::inode(root, T::IAuth);
    let op = Op::LockSet { locks: vec![LockOp::x(auth)], journal: true };
    let fx = l.handle(Event::Request(ClientRequest { reqid: ReqId(1), client: 1, op })).unwrap();
    assert!(matches!(fx.as_slice(), [Effect::JournalSubmit { .. }, Effect::JournalFlush]), "{fx:?}");
    assert_eq!(l.lock(auth).unwrap().state(), S::Xlock);
    let fx = l.handle(Event::JournalSafe { upto: mds_locker::JournalSeq(1) }).unwrap();
    assert!(matches!(fx.as_slice(), [Effect::Reply(r)] if r.safe), "{fx:?}");
    assert_eq!(l.lock(auth).unwrap().state(), S::Sync);
}

#[test]
fn cancelling_a_waiting_request_backs_out_of_its_xlock_walk() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let file = ino_lock(f, T::IFile);
    h.req(1, 1, vec![LockOp::wr(file)], false);
    h.req(2, 2, vec![LockOp::rd(ino_lock(f, T::ISnap)), LockOp::x(file)], false);
    assert_eq!(h.state(file), S::LockXlock);
    assert_eq!(h.held(2, ino_lock(f, T::ISnap)), Some(mds_locker::mutation::RDLOCK));
    h.finish(2);
    // cancel_locking: LOCK_XLOCK → XLOCKDONE → (filelock next) LOCK, with request 1's wrlock.
    assert_eq!(h.state(file), S::Lock);
    assert!(h.l.lock(file).unwrap().waiters().next().is_none());
    assert_eq!(h.l.lock(ino_lock(f, T::ISnap)).unwrap().num_rdlock(), 0);
    h.finish(1);
    assert_eq!(h.state(file), S::Sync);
}

#[test]
fn op_tracker_flag_points() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 1, vec![LockOp::rd(auth)], false);
    h.req(2, 2, vec![LockOp::x(auth)], true);
    let events: Vec<String> =
        h.l.request(ReqId(2)).unwrap().events().iter().map(|e| e.what.clone()).collect();
    assert_eq!(events, vec!["initiated", "failed to xlock, waiting"]);
    let ops = h.l.dump_ops_in_flight();
    assert_eq!(ops["num_ops"], 2);
    let waiting = ops["ops"].as_array().unwrap().iter().find(|o| o["reqid"] == 2).unwrap();
    assert_eq!(waiting["phase"], "locking");
    assert!(waiting["waiting_on"].as_str().unwrap().ends_with("iauth"));
    h.finish(1);
    let events: Vec<String> =
        h.l.request(ReqId(2)).unwrap().events().iter().map(|e| e.what.clone()).collect();
    assert_eq!(
        events,
        vec![
            "initiated",
            "failed to xlock, waiting",
            "acquired locks",
            "early_replied",
            "submit entry: journal_and_reply"
        ]
    );
}

#[test]
fn dump_locks_shows_state_holders_waiters() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 1, vec![LockOp::rd(auth)], false);
    h.req(2, 2, vec![LockOp::x(auth)], false);
    let dump = h.l.dump_locks(LockFilter::Active);
    let locks = dump.as_array().unwrap();
    let iauth = locks.iter().find(|l| l["lock"] == "iauth").unwrap();
    assert_eq!(iauth["object"], format!("inode {}", h.l.cache().inode(f).unwrap().ino()));
    assert_eq!(iauth["state"], "sync->lock");
    assert_eq!(iauth["stable"], false);
    assert_eq!(iauth["rdlocks"][0]["req"], 1);
    assert_eq!(iauth["waiters"][0]["req"], 2);
    assert_eq!(iauth["gather_set"].as_array().unwrap().len(), 0);
    // Idle locks in their initial state are not "active".
    assert!(locks.iter().all(|l| l["lock"] != "ixattr"));
    let all = h.l.dump_locks(LockFilter::All);
    assert!(all.as_array().unwrap().len() > locks.len());
    assert_eq!(h.l.session_ls().as_array().unwrap().len(), 3);
}

#[test]
fn waiters_are_woken_in_fifo_order() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 1, vec![LockOp::x(auth)], false);
    h.req(2, 2, vec![LockOp::rd(auth)], false);
    h.req(3, 3, vec![LockOp::x(auth)], false);
    h.req(4, 2, vec![LockOp::rd(auth)], false);
    let fx = h.finish(1);
    let woken: Vec<u64> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Woken { reqid, .. } => Some(reqid.0),
            _ => None,
        })
        .collect();
    assert_eq!(&woken[..3], &[2, 3, 4], "{fx:?}");
    // 2 rdlocks in SYNC; 3 then starts its xlock (SYNC_LOCK, waiting for 2's rdlock), which
    // keeps 4 from overtaking it.
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(2) }));
    assert_eq!(h.state(auth), S::SyncLock);
    assert_eq!(h.l.request(ReqId(3)).unwrap().waiting_on(), Some(auth));
    assert_eq!(h.l.request(ReqId(4)).unwrap().waiting_on(), Some(auth));
    let fx = h.finish(2);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(3) }), "{fx:?}");
    let fx = h.finish(3);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(4) }), "{fx:?}");
}

#[test]
fn retry_keeps_locks_already_held() {
    let mut h = H::new();
    let (da, a) = h.file("a");
    let (_, b) = h.file("b");
    h.req(1, 1, vec![LockOp::x(ino_lock(b, T::IAuth))], false);
    h.req(
        2,
        2,
        vec![LockOp::rd(dn_lock(da)), LockOp::x(ino_lock(a, T::IAuth)), LockOp::rd(ino_lock(b, T::IAuth))],
        false,
    );
    let m = h.l.request(ReqId(2)).unwrap();
    assert_eq!(m.held().len(), 3, "dn rdlock, a's xlock and its versionlock");
    assert_eq!(m.waiting_on(), Some(ino_lock(b, T::IAuth)));
    let transitions_before = h.l.stats().transitions;
    let fx = h.finish(1);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(2) }));
    assert_eq!(h.l.request(ReqId(2)).unwrap().held().len(), 4);
    assert_eq!(h.state(ino_lock(a, T::IAuth)), S::Xlock, "not re-acquired");
    assert!(h.l.stats().transitions > transitions_before);
}
