//! mds spec §8 facts about the Locker, one test each, driven through `Locker::handle`.

mod common;

use common::*;
use lock_sm::LockState as S;
use lock_sm::LockType as T;
use lock_sm::caps::{self, caps_for_mode, format_caps};
use mds_locker::mutation::{RDLOCK, WRLOCK, XLOCK};
use mds_locker::{CapOp, Effect, LockOp, ReqId};

#[test]
fn fact_37_leader_xlock_wrlocks_the_versionlock() {
    let mut h = H::new();
    let (dn, f) = h.file("f");
    let fx = h.req(1, 1, vec![LockOp::x(dn_lock(dn)), LockOp::x(ino_lock(f, T::IAuth))], false);
    assert_eq!(fx, vec![Effect::LocksAcquired { reqid: ReqId(1) }]);
    assert_eq!(h.held(1, dn_lock(dn)), Some(XLOCK));
    assert_eq!(h.held(1, mds_locker::LockId::dentry(dn, T::DVersion)), Some(WRLOCK));
    assert_eq!(h.held(1, ino_lock(f, T::IAuth)), Some(XLOCK));
    assert_eq!(h.held(1, ino_lock(f, T::IVersion)), Some(WRLOCK));
    let m = h.l.request(ReqId(1)).unwrap();
    assert_eq!(m.held().len(), 4);
}

#[test]
fn fact_38_xlock_from_sync_completes_in_one_xlock_start() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    let fx = h.req(1, 1, vec![LockOp::x(auth)], false);
    assert_eq!(fx, vec![Effect::LocksAcquired { reqid: ReqId(1) }]);
    assert_eq!(h.walk(auth), vec![S::Sync, S::SyncLock, S::Lock, S::LockXlock, S::PreXlock, S::Xlock]);
    assert_eq!(h.l.request(ReqId(1)).unwrap().locking(), None);
}

#[test]
fn fact_39_prexlock_belongs_to_the_request_that_started_it() {
    // Request 1 holds a wrlock on the filelock (LOCK); request 2 starts xlocking it and waits
    // in LOCK_XLOCK; request 3 (another client) also wants the xlock. When the wrlock goes, the
    // gather reaches PREXLOCK and wakes both in FIFO order: 2 takes XLOCK, 3 keeps waiting.
    let mut h = H::new();
    let (_, f) = h.file("f");
    let file = ino_lock(f, T::IFile);
    h.req(1, 1, vec![LockOp::wr(file)], false);
    assert_eq!(h.state(file), S::Lock);
    h.req(2, 2, vec![LockOp::x(file)], false);
    assert_eq!(h.state(file), S::LockXlock);
    assert_eq!(h.l.request(ReqId(2)).unwrap().locking(), Some(file));
    h.req(3, 3, vec![LockOp::x(file)], false);
    h.l.take_transitions();
    let fx = h.finish(1);
    assert_eq!(
        fx,
        vec![
            Effect::Woken { reqid: ReqId(2), lock: file },
            Effect::Woken { reqid: ReqId(3), lock: file },
            Effect::LocksAcquired { reqid: ReqId(2) },
            // Request 3 now waits behind an xlocked, unstable lock: nudge_log (fact 53).
            Effect::JournalFlush,
        ]
    );
    assert_eq!(h.walk(file), vec![S::LockXlock, S::PreXlock, S::Xlock]);
    assert_eq!(h.held(2, file), Some(XLOCK));
    assert_eq!(h.l.request(ReqId(3)).unwrap().waiting_on(), Some(file));
}

#[test]
fn fact_40_ifile_xlock_is_never_restarted_from_xlockdone() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let file = ino_lock(f, T::IFile);
    let fx = h.req(1, 1, vec![LockOp::x(file)], true);
    let seq = journal_seq(&fx);
    assert_eq!(h.state(file), S::XlockDone);
    // The same client's next request waits instead of re-taking the xlock.
    let fx = h.req(2, 1, vec![LockOp::x(file)], false);
    assert_eq!(fx, vec![Effect::JournalFlush]);
    assert_eq!(h.state(file), S::XlockDone);
    h.l.take_transitions();
    // Once request 1 is safe the filelock heads to LOCK (its `next`). eval_gather wakes the
    // waiter before `try_eval`, so file_eval, seeing no WR waiter left, syncs the idle lock
    // first; the retried request then walks it back (§4.9 order).
    let fx = h.safe(seq);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(2) }), "{fx:?}");
    assert_eq!(
        h.walk(file),
        vec![
            S::XlockDone,
            S::Lock,
            S::LockSync,
            S::Sync,
            S::SyncLock,
            S::Lock,
            S::LockXlock,
            S::PreXlock,
            S::Xlock
        ]
    );
}

#[test]
fn fact_40_contrast_simplelock_same_client_retakes_from_xlockdone() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    let fx = h.req(1, 1, vec![LockOp::x(auth)], true);
    let seq = journal_seq(&fx);
    h.l.take_transitions();
    let fx = h.req(2, 1, vec![LockOp::x(auth)], false);
    assert_eq!(fx, vec![Effect::LocksAcquired { reqid: ReqId(2) }]);
    assert_eq!(h.walk(auth), vec![S::XlockDone, S::LockXlock, S::PreXlock, S::Xlock]);
    // Two holders of the same client, the older one done (§4.7 step 3).
    let holders = h.l.lock(auth).unwrap().xlock_holders().to_vec();
    assert_eq!(holders.len(), 2);
    assert!(holders[0].done && !holders[1].done);
    // A different client still cannot.
    let fx = h.req(3, 2, vec![LockOp::x(auth)], false);
    assert_eq!(fx, vec![Effect::JournalFlush]);
    h.safe(seq);
    assert_eq!(h.state(auth), S::Xlock, "request 2 still holds it");
    let fx = h.finish(2);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(3) }), "{fx:?}");
}

/// Gives client 1 a write open on `f` so it becomes the loner, and acks everything.
fn make_loner(h: &mut H, f: mds_locker::InodeId) {
    h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RDWR));
    h.ack(1, f);
    assert_eq!(h.l.cache().inode(f).unwrap().loner(), Some(1));
}

#[test]
fn fact_41_last_xlock_release_goes_straight_to_excl_for_the_loner() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    make_loner(&mut h, f);
    let auth = ino_lock(f, T::IAuth);
    assert_eq!(h.state(auth), S::Excl, "the loner wants Ax");
    // The loner chmods: EXCL → EXCL_LOCK revokes Ax/As from itself first.
    let fx = h.req(1, 1, vec![LockOp::x(auth)], false);
    assert!(matches!(fx.as_slice(), [Effect::Cap(c)] if c.op == CapOp::Revoke), "{fx:?}");
    let fx = h.ack(1, f);
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(1) }), "{fx:?}");
    h.l.take_transitions();
    h.finish(1);
    let walk = h.walk(auth);
    assert_eq!(&walk[..2], &[S::Xlock, S::Excl], "no detour through SYNC: {walk:?}");
}

#[test]
fn fact_41_other_clients_xlock_does_not_go_to_excl() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    make_loner(&mut h, f);
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 2, vec![LockOp::x(auth)], false);
    h.ack(1, f);
    assert_eq!(h.held(1, auth), Some(XLOCK));
    h.l.take_transitions();
    h.finish(1);
    let walk = h.walk(auth);
    assert_eq!(&walk[..2], &[S::Xlock, S::Sync], "{walk:?}");
}

#[test]
fn fact_41_dn_isnap_ipolicy_never_jump_to_excl() {
    let mut h = H::new();
    let (dn, f) = h.file("f");
    make_loner(&mut h, f);
    for (n, lock) in [dn_lock(dn), ino_lock(f, T::ISnap), ino_lock(f, T::IPolicy)].into_iter().enumerate() {
        let r = 10 + n as u64;
        h.req(r, 1, vec![LockOp::x(lock)], false);
        assert_eq!(h.state(lock), S::Xlock);
        h.l.take_transitions();
        h.finish(r);
        assert_eq!(h.walk(lock), vec![S::Xlock, S::Sync], "{lock:?}");
    }
    // IFLOCK is not exempt.
    let flock = ino_lock(f, T::IFlock);
    h.req(20, 1, vec![LockOp::x(flock)], false);
    h.l.take_transitions();
    h.finish(20);
    assert_eq!(&h.walk(flock)[..2], &[S::Xlock, S::Excl]);
}

#[test]
fn fact_53_nudge_log_flushes_when_waiting_behind_a_locked_transition() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 1, vec![LockOp::rd(auth)], false);
    // Request 2's xlock puts the lock in SYNC_LOCK, which is unstable and rdlocked: flush.
    let fx = h.req(2, 2, vec![LockOp::x(auth)], false);
    assert_eq!(fx, vec![Effect::JournalFlush]);
    assert_eq!(h.state(auth), S::SyncLock);
    // A waiter behind an unstable lock nobody holds (only caps) does not flush.
    let (_, g) = h.file("g");
    h.open_cap(3, g, caps_for_mode(caps::FILE_MODE_RD));
    h.ack(3, g);
    let fx = h.req(3, 2, vec![LockOp::x(ino_lock(g, T::IAuth))], false);
    assert!(fx.iter().all(|e| !matches!(e, Effect::JournalFlush)), "{fx:?}");
    assert!(matches!(fx.as_slice(), [Effect::Cap(c)] if c.op == CapOp::Revoke));
}

#[test]
fn fact_56_no_loner_when_two_clients_qualify() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RD));
    assert_eq!(h.l.cache().inode(f).unwrap().loner(), Some(1));
    h.open_cap(2, f, caps_for_mode(caps::FILE_MODE_RD));
    let n = h.l.cache().inode(f).unwrap();
    assert_eq!(n.want_loner(), None);
    assert_eq!(n.loner(), None, "the loner held nothing beyond what others may hold, so it was dropped");
}

#[test]
fn fact_57_early_reply_keeps_only_isnap_and_ipolicy_rdlocks() {
    let mut h = H::new();
    let (dn, f) = h.file("f");
    let root = h.l.cache().root();
    let locks = vec![
        LockOp::rd(ino_lock(root, T::ISnap)),
        LockOp::rd(ino_lock(root, T::IPolicy)),
        LockOp::rd(ino_lock(root, T::IAuth)),
        LockOp::rd(dn_lock(dn)),
        LockOp::x(ino_lock(f, T::IXattr)),
    ];
    let fx = h.req(1, 1, locks, true);
    assert!(matches!(&fx[0], Effect::Reply(r) if !r.safe));
    assert!(matches!(&fx[1], Effect::JournalSubmit { .. }));
    let held: Vec<_> = h.l.request(ReqId(1)).unwrap().held().iter().map(|(l, f)| (*l, *f)).collect();
    assert_eq!(
        held,
        vec![
            (ino_lock(root, T::ISnap), RDLOCK),
            (ino_lock(root, T::IPolicy), RDLOCK),
            (ino_lock(f, T::IXattr), XLOCK),
            (ino_lock(f, T::IVersion), WRLOCK),
        ]
    );
}

#[test]
fn fact_59_early_reply_moves_xlocks_to_xlockdone_for_the_same_client() {
    let mut h = H::new();
    let (dn, f) = h.file("f");
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 1, vec![LockOp::x(dn_lock(dn)), LockOp::x(auth)], true);
    assert_eq!(h.state(auth), S::XlockDone);
    assert_eq!(h.state(dn_lock(dn)), S::XlockDone);
    assert_eq!(h.l.lock(auth).unwrap().xlock_by_client(), Some(1));
    // The same client reads at once; another client waits for the journal.
    let fx = h.req(2, 1, vec![LockOp::rd(auth)], false);
    assert_eq!(fx, vec![Effect::LocksAcquired { reqid: ReqId(2) }]);
    let fx = h.req(3, 2, vec![LockOp::rd(auth)], false);
    assert_eq!(fx, vec![Effect::JournalFlush], "unstable and locked: nudge_log");
    assert_eq!(h.l.request(ReqId(3)).unwrap().waiting_on(), Some(auth));
}

#[test]
fn fact_60_safe_reply_after_non_rdlocks_are_dropped() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let root = h.l.cache().root();
    let snap = ino_lock(root, T::ISnap);
    let auth = ino_lock(f, T::IAuth);
    let fx = h.req(1, 1, vec![LockOp::rd(snap), LockOp::x(auth)], true);
    let seq = journal_seq(&fx);
    // Request 2 waits for the xlock, request 3 for an xlock on the kept snap rdlock.
    h.req(2, 2, vec![LockOp::rd(auth)], false);
    h.req(3, 2, vec![LockOp::x(snap)], false);
    let fx = essential_with_wakes(&h.safe(seq));
    let reply = fx.iter().position(|e| matches!(e, Effect::Reply(r) if r.safe)).unwrap();
    let woke2 = fx.iter().position(|e| *e == Effect::Woken { reqid: ReqId(2), lock: auth }).unwrap();
    let woke3 = fx.iter().position(|e| matches!(e, Effect::Woken { reqid: ReqId(3), .. })).unwrap();
    assert!(woke2 < reply, "xlock dropped before the safe reply: {fx:?}");
    assert!(reply < woke3, "rdlocks dropped after the safe reply: {fx:?}");
    assert!(h.l.request(ReqId(1)).is_none());
}

fn essential_with_wakes(fx: &[Effect]) -> Vec<Effect> {
    fx.to_vec()
}

#[test]
fn section_4_14_caps_revoked_by_xlock_and_granted_back() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let fx = h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RD));
    let [Effect::Cap(c)] = fx.as_slice() else { panic!("{fx:?}") };
    assert_eq!((c.op, format_caps(c.caps).as_str()), (CapOp::Grant, "pAsLsXsFscr"));
    // Client 2's chmod needs As back from client 1.
    let auth = ino_lock(f, T::IAuth);
    let fx = h.req(1, 2, vec![LockOp::x(auth)], true);
    let [Effect::Cap(c)] = fx.as_slice() else { panic!("{fx:?}") };
    assert_eq!((c.op, format_caps(c.caps).as_str()), (CapOp::Revoke, "pLsXsFscr"));
    assert_eq!(h.state(auth), S::SyncLock);
    // The ack lets SYNC_LOCK finish; the request runs to its early reply.
    let fx = h.ack(1, f);
    assert!(fx.iter().any(|e| matches!(e, Effect::Reply(r) if !r.safe)), "{fx:?}");
    assert_eq!(h.state(auth), S::XlockDone);
    let seq = journal_seq(&fx);
    // When safe, IAUTH returns to SYNC. Client 1's wanted caps are all pending, so nothing is
    // re-offered (§4.14: issue only when pending exceeds allowed or wanted is not pending)…
    let fx = h.safe(seq);
    assert!(fx.iter().all(|e| !matches!(e, Effect::Cap(_))), "{fx:?}");
    assert_eq!(h.state(auth), S::Sync);
    // …until it asks for As, which SYNC allows.
    let ino = h.l.cache().inode(f).unwrap().ino();
    let msg = mds_locker::ClientCapMessage {
        client: 1,
        ino,
        op: mds_locker::ClientCapOp::Update,
        seq: 2,
        caps: caps::PIN | caps::LINK_SHARED | caps::XATTR_SHARED | caps::ANY_FILE_RD,
        wanted: caps_for_mode(caps::FILE_MODE_RD) | caps::AUTH_SHARED,
    };
    let fx = h.ev(mds_locker::Event::ClientCaps(msg));
    let [Effect::Cap(c)] = fx.as_slice() else { panic!("{fx:?}") };
    assert_eq!((c.op, format_caps(c.caps).as_str()), (CapOp::Grant, "pAsLsXsFscr"));
}

#[test]
fn section_4_14_loner_gets_exclusive_caps() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    let fx = h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RDWR));
    let [Effect::Cap(c)] = fx.as_slice() else { panic!("{fx:?}") };
    assert_eq!(format_caps(c.caps), "pAsxLsXsxFsxcrwb");
    assert_eq!(h.state(ino_lock(f, T::IFile)), S::Excl);
    assert_eq!(h.state(ino_lock(f, T::IAuth)), S::Excl);
    assert_eq!(h.state(ino_lock(f, T::IXattr)), S::Excl);
    assert_eq!(h.state(ino_lock(f, T::ILink)), S::Sync, "nobody wants Lx");
}

#[test]
fn section_4_14_unresponsive_client_is_evicted_and_the_gather_completes() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RD));
    h.ack(1, f);
    let auth = ino_lock(f, T::IAuth);
    h.req(1, 2, vec![LockOp::x(auth)], false);
    assert_eq!(h.state(auth), S::SyncLock);
    let fx = h.ev(mds_locker::Event::Tick { now_ms: 59_999 });
    assert!(fx.is_empty());
    let fx = h.ev(mds_locker::Event::Tick { now_ms: 60_000 });
    assert!(fx.contains(&Effect::Evicted { client: 1 }), "{fx:?}");
    assert!(fx.contains(&Effect::LocksAcquired { reqid: ReqId(1) }), "{fx:?}");
    assert!(h.l.cache().inode(f).unwrap().caps().is_empty());
    assert!(h.l.sessions().all(|s| s.client() != 1));
}
