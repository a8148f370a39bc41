//! Peer requests between ranks (mds spec §4.17): remote xlocks (§4.7 replica branch), remote
//! wrlocks (§4.6), remote auth pins (§4.4 phase C) and DROPLOCKS (§4.18 `_drop_locks`).
//!
//! The replica ↔ auth MLock protocol (§4.12) is written separately; these tests assert only
//! what the peer protocol itself decides: which rank asks whom, the auth's lock walk and
//! holders, who waits, and the count of each peer message kind (lock messages, if any, are
//! not counted), so they keep holding once replicas follow the auth's state.

use lock_sm::{LockState, LockType};
use mds_locker::cache::{InodeData, S_IFDIR, S_IFREG};
use mds_locker::cluster::{Cluster, Transport};
use mds_locker::mutation::{RDLOCK, REMOTE_WRLOCK, XLOCK};
use mds_locker::{
    ClientRequest, Effect, Event, Ino, LockId, LockKey, LockOp, LockerConfig, MdsMessage, ObjKey, Op,
    PeerMsg, PeerOp, Rank, ReqId,
};

const PEER_KINDS: [&str; 9] = [
    "authpin",
    "authpin_ack",
    "xlock",
    "xlock_ack",
    "unxlock",
    "wrlock",
    "wrlock_ack",
    "unwrlock",
    "drop_locks",
];

fn cluster(n: u32) -> Cluster {
    let mut c = Cluster::new(n, LockerConfig { record_transitions: true, ..LockerConfig::default() });
    for r in 0..n {
        for client in 1..=3 {
            c.handle(r, Event::SessionOpen { client }).unwrap();
        }
    }
    c
}

/// A committed regular file (or directory) created on `rank` in directory `dir` (an inode of
/// that rank's cache), replicated to `to`.
fn make(c: &mut Cluster, rank: Rank, dir: Ino, name: &str, is_dir: bool, to: &[Rank]) -> Ino {
    let mode = if is_dir { S_IFDIR | 0o755 } else { S_IFREG | 0o644 };
    let data = InodeData { mode, nlink: 1, version: 1, ..InodeData::default() };
    let cache = c.rank_mut(rank).cache_mut();
    let d = cache.lookup_ino(dir).unwrap();
    let (_, i) = cache.create_committed(d, name, data);
    let ino = c.rank(rank).cache().inode(i).unwrap().ino();
    for r in to {
        c.replicate(&ObjKey::Inode(ino), *r).unwrap();
    }
    ino
}

fn lock(c: &Cluster, rank: Rank, ino: Ino, ty: LockType) -> LockId {
    LockId::inode(c.rank(rank).cache().lookup_ino(ino).unwrap(), ty)
}

fn state(c: &Cluster, rank: Rank, ino: Ino, ty: LockType) -> LockState {
    c.rank(rank).lock(lock(c, rank, ino, ty)).unwrap().state()
}

fn req(c: &mut Cluster, rank: Rank, reqid: u64, client: u64, locks: Vec<LockOp>, journal: bool) {
    let op = Op::LockSet { locks, journal };
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
}

fn finish(c: &mut Cluster, rank: Rank, reqid: u64) {
    c.handle(rank, Event::FinishRequest { reqid: ReqId(reqid) }).unwrap();
}

/// Runs the cluster to quiescence, checking invariants after every delivery.
fn run(c: &mut Cluster) {
    check(c);
    while c.step().unwrap() {
        check(c);
    }
}

fn acquired(c: &Cluster, rank: Rank, reqid: u64) -> bool {
    c.outputs().iter().any(|o| o.rank == rank && o.effect == Effect::LocksAcquired { reqid: ReqId(reqid) })
}

/// Peer messages delivered so far, by kind (only kinds that occurred).
fn peer_msgs(c: &Cluster) -> Vec<(&'static str, u64)> {
    PEER_KINDS.iter().filter_map(|k| c.delivered().get(k).map(|n| (*k, *n))).collect()
}

/// The xlock holders of a lock on one rank: (request, client).
fn xholders(c: &Cluster, rank: Rank, id: LockId) -> Vec<(ReqId, Option<u64>)> {
    c.rank(rank).lock(id).unwrap().xlock_holders().iter().map(|h| (h.req, h.client)).collect()
}

/// The state walk of `id` among rank `rank`'s recorded transitions since the last call.
fn walk(c: &mut Cluster, rank: Rank, id: LockId) -> Vec<LockState> {
    let mut out = Vec::new();
    for t in c.rank_mut(rank).take_transitions().into_iter().filter(|t| t.lock == id) {
        if out.is_empty() {
            out.push(t.from);
        }
        out.push(t.to);
    }
    out
}

/// Invariants on every rank (§4.1: a remote xlock is held on the replica copy in LOCK).
fn check(c: &Cluster) {
    for (r, l) in c.lockers().iter().enumerate() {
        if let Err(v) = mds_locker::invariants::check_all(l) {
            panic!("rank {r}: invariants violated: {v:#?}");
        }
    }
}

fn root_setup(n: u32) -> (Cluster, Ino) {
    let mut c = cluster(n);
    let to: Vec<Rank> = (1..n).collect();
    let f = make(&mut c, 0, Ino::ROOT, "f", false, &to);
    c.take_outputs();
    for r in 0..n {
        c.rank_mut(r).take_transitions();
    }
    (c, f)
}

#[test]
fn s4_7_remote_xlock_walks_the_auth_to_xlock_and_acks() {
    let (mut c, f) = root_setup(2);
    let leader_lock = lock(&c, 1, f, LockType::IAuth);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    let auth_ver = lock(&c, 0, f, LockType::IVersion);
    req(&mut c, 1, 10, 1, vec![LockOp::x(leader_lock)], false);
    // §4.4 phase C then §4.7: the leader first auth-pins the inode on its auth, then asks
    // for the xlock; it waits on the peer, not on a lock.
    let m = c.rank(1).request(ReqId(10)).unwrap();
    assert_eq!(m.waiting_on_peer().iter().copied().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m.waiting_on(), None);
    run(&mut c);
    assert_eq!(peer_msgs(&c), vec![("authpin", 1), ("authpin_ack", 1), ("xlock", 1), ("xlock_ack", 1)]);
    assert!(acquired(&c, 1, 10));
    // The auth: SYNC → SYNC_LOCK → LOCK → LOCK_XLOCK → PREXLOCK → XLOCK (§4.7 walk; nothing to
    // gather locally, so each step completes at once).
    assert_eq!(
        walk(&mut c, 0, auth_lock),
        vec![
            LockState::Sync,
            LockState::SyncLock,
            LockState::Lock,
            LockState::LockXlock,
            LockState::PreXlock,
            LockState::Xlock
        ]
    );
    // The peer request: keyed by the leader's id, for the leader's client, serving rank 1; it
    // xlocks the versionlock too (§8 fact 37: a peer xlocks, a leader wrlocks).
    let p = c.rank(0).request(ReqId(10)).unwrap();
    assert_eq!(p.peer_of(), Some(1));
    assert_eq!(p.client(), Some(1));
    assert_eq!(p.held().get(&auth_lock), Some(&XLOCK));
    assert_eq!(p.held().get(&auth_ver), Some(&XLOCK));
    assert_eq!(xholders(&c, 0, auth_lock), vec![(ReqId(10), Some(1))]);
    // The leader: XLOCK recorded and taken on its replica copy; "locking" ended.
    let m = c.rank(1).request(ReqId(10)).unwrap();
    assert_eq!(m.held().get(&leader_lock), Some(&XLOCK));
    assert_eq!(m.locking(), None);
    assert_eq!(m.locking_target(), None);
    assert!(m.waiting_on_peer().is_empty());
    assert_eq!(xholders(&c, 1, leader_lock), vec![(ReqId(10), Some(1))]);
    // The replica copy was put in LOCK by the auth's SYNC → SYNC_LOCK (MLock LOCK, §4.12)
    // before the ack, and the remote xlock is held on it there (§4.1 `get_xlock`).
    assert_eq!(c.rank(1).lock(leader_lock).unwrap().state(), LockState::Lock);
    // Two auth pins on the auth's inode: the peer request's (§4.17 AUTHPIN) and the lock's
    // own, because XLOCK is transitional (its `next` is SYNC, §4.1).
    let finode = c.rank(0).cache().lookup_ino(f).unwrap();
    assert_eq!(c.rank(0).cache().inode(finode).unwrap().auth_pins(), 2);
    assert!(c.rank(0).request(ReqId(10)).unwrap().auth_pins().contains(&mds_locker::ObjRef::Inode(finode)));

    // §4.18: finishing the leader's request sends one DROPLOCKS; the auth's XLOCK heads to
    // its `next` (SYNC) and the peer request is forgotten.
    finish(&mut c, 1, 10);
    run(&mut c);
    assert_eq!(c.delivered().get("drop_locks"), Some(&1));
    assert_eq!(c.delivered().get("unxlock"), None);
    assert!(c.rank(0).request(ReqId(10)).is_none());
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
    assert!(xholders(&c, 0, auth_lock).is_empty());
    assert!(xholders(&c, 1, leader_lock).is_empty());
    assert_eq!(c.rank(0).cache().inode(finode).unwrap().auth_pins(), 0);
    assert!(!c.rank(0).lock(auth_ver).unwrap().is_xlocked());
}

#[test]
fn s4_7_remote_xlock_waits_for_a_conflicting_rdlock_on_the_auth() {
    let (mut c, f) = root_setup(2);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    // A local reader on the auth.
    req(&mut c, 0, 5, 2, vec![LockOp::rd(auth_lock)], false);
    assert!(acquired(&c, 0, 5));
    let l = lock(&c, 1, f, LockType::IAuth);
    req(&mut c, 1, 10, 1, vec![LockOp::x(l)], false);
    run(&mut c);
    // The peer started the walk (SYNC → SYNC_LOCK) and waits for the rdlock to drain; no ack.
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::SyncLock);
    assert_eq!(c.rank(0).request(ReqId(10)).unwrap().waiting_on(), Some(auth_lock));
    assert_eq!(c.rank(1).request(ReqId(10)).unwrap().waiting_on_peer().len(), 1);
    assert_eq!(c.delivered().get("xlock_ack"), None);
    assert!(!acquired(&c, 1, 10));
    // The reader finishes: the walk completes and the leader gets its ack.
    finish(&mut c, 0, 5);
    run(&mut c);
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Xlock);
    assert_eq!(xholders(&c, 0, auth_lock), vec![(ReqId(10), Some(1))]);
    assert_eq!(c.delivered().get("xlock_ack"), Some(&1));
    assert!(acquired(&c, 1, 10));
    // And a new local reader now waits behind the remote xlock (simplelock XLOCK: rdlock 0).
    req(&mut c, 0, 6, 2, vec![LockOp::rd(auth_lock)], false);
    assert!(!acquired(&c, 0, 6));
    finish(&mut c, 1, 10);
    run(&mut c);
    assert!(acquired(&c, 0, 6));
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
}

#[test]
fn s4_17_two_leaders_on_different_ranks_never_both_hold_the_xlock() {
    let (mut c, f) = root_setup(3);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    let l = lock(&c, 1, f, LockType::ILink);
    req(&mut c, 1, 10, 1, vec![LockOp::x(l)], false);
    let l = lock(&c, 2, f, LockType::ILink);
    req(&mut c, 2, 20, 2, vec![LockOp::x(l)], false);
    let auth_link = lock(&c, 0, f, LockType::ILink);
    let _ = auth_lock;
    run(&mut c);
    assert!(c.rank(0).lock(auth_link).unwrap().xlock_holders().len() <= 1);
    // Rank 1's XLOCK reached the auth first: it holds; rank 2's peer request waits.
    assert_eq!(xholders(&c, 0, auth_link), vec![(ReqId(10), Some(1))]);
    assert!(acquired(&c, 1, 10));
    assert!(!acquired(&c, 2, 20));
    assert_eq!(c.rank(0).request(ReqId(20)).unwrap().waiting_on(), Some(auth_link));
    assert_eq!(c.delivered().get("xlock"), Some(&2));
    assert_eq!(c.delivered().get("xlock_ack"), Some(&1));
    c.rank_mut(0).take_transitions();
    // Rank 1 finishes; DROPLOCKS releases; rank 2's peer walks XLOCK → SYNC → … → XLOCK.
    finish(&mut c, 1, 10);
    check(&c);
    while c.step().unwrap() {
        check(&c);
        assert!(c.rank(0).lock(auth_link).unwrap().xlock_holders().len() <= 1, "two xlock holders");
    }
    assert_eq!(xholders(&c, 0, auth_link), vec![(ReqId(20), Some(2))]);
    assert!(acquired(&c, 2, 20));
    assert_eq!(
        walk(&mut c, 0, auth_link),
        vec![
            LockState::Xlock,
            LockState::Sync,
            LockState::SyncLock,
            LockState::Lock,
            LockState::LockXlock,
            LockState::PreXlock,
            LockState::Xlock
        ]
    );
    assert_eq!(c.delivered().get("xlock_ack"), Some(&2));
    finish(&mut c, 2, 20);
    run(&mut c);
    assert!(c.rank(0).requests().next().is_none());
    assert_eq!(state(&c, 0, f, LockType::ILink), LockState::Sync);
}

#[test]
fn s4_18_cancel_while_waiting_for_the_xlock_ack_drops_the_peer_request() {
    let (mut c, f) = root_setup(2);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    req(&mut c, 0, 5, 2, vec![LockOp::rd(auth_lock)], false);
    let l = lock(&c, 1, f, LockType::IAuth);
    req(&mut c, 1, 10, 1, vec![LockOp::x(l)], false);
    run(&mut c);
    assert_eq!(c.rank(0).request(ReqId(10)).unwrap().waiting_on(), Some(auth_lock));
    // The leader's request is cancelled while it waits for XLOCKACK.
    finish(&mut c, 1, 10);
    run(&mut c);
    assert_eq!(c.delivered().get("drop_locks"), Some(&1));
    assert!(c.rank(0).request(ReqId(10)).is_none(), "the peer request is forgotten");
    assert!(c.rank(0).lock(auth_lock).unwrap().waiters().next().is_none());
    // The reader finishes; nobody takes the xlock, the lock settles back to SYNC.
    finish(&mut c, 0, 5);
    run(&mut c);
    assert!(xholders(&c, 0, auth_lock).is_empty());
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
    assert_eq!(c.delivered().get("xlock_ack"), None);
    let finode = c.rank(0).cache().lookup_ino(f).unwrap();
    assert_eq!(c.rank(0).cache().inode(finode).unwrap().auth_pins(), 0);
}

#[test]
fn s4_18_cancel_after_the_peer_acked_releases_the_xlock() {
    let (mut c, f) = root_setup(2);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    let l = lock(&c, 1, f, LockType::IAuth);
    req(&mut c, 1, 10, 1, vec![LockOp::x(l)], false);
    // Deliver until the auth holds the xlock (AUTHPIN, AUTHPINACK, XLOCK, and whatever the
    // MLock protocol exchanges on the way): the XLOCKACK is then in flight, undelivered.
    while xholders(&c, 0, auth_lock).is_empty() {
        assert!(c.step().unwrap());
        check(&c);
    }
    assert_eq!(xholders(&c, 0, auth_lock), vec![(ReqId(10), Some(1))]);
    assert_eq!(c.delivered().get("xlock_ack"), None);
    assert!(c.transport().in_flight() >= 1);
    finish(&mut c, 1, 10);
    run(&mut c);
    // The late XLOCKACK finds no request (ignored); DROPLOCKS, sent after it was asked for,
    // releases the auth's xlock.
    assert_eq!(c.delivered().get("xlock_ack"), Some(&1));
    assert_eq!(c.delivered().get("drop_locks"), Some(&1));
    assert!(c.rank(0).request(ReqId(10)).is_none());
    assert!(c.rank(1).request(ReqId(10)).is_none());
    assert!(xholders(&c, 0, auth_lock).is_empty());
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
}

#[test]
fn s4_17_an_xlock_sent_to_a_rank_that_is_not_auth_is_dropped() {
    let (mut c, f) = root_setup(2);
    let key = LockKey { obj: ObjKey::Inode(f), ty: LockType::IAuth };
    let mut msg = PeerMsg::new(PeerOp::Xlock, ReqId(10), Some(1));
    msg.lock = Some(key);
    // Rank 1 holds only a replica of f.
    c.handle(1, Event::Message { from: 0, msg: MdsMessage::Peer(msg) }).unwrap();
    assert_eq!(c.transport().in_flight(), 0, "no ack, nothing sent");
    assert!(c.rank(1).request(ReqId(10)).is_none());
    assert!(!c.rank(1).lock(lock(&c, 1, f, LockType::IAuth)).unwrap().is_xlocked());
    assert_eq!(state(&c, 1, f, LockType::IAuth), LockState::Sync);
}

#[test]
fn s4_18_remote_xlock_is_held_until_the_leaders_journal_is_safe_and_early_reply_is_allowed() {
    let (mut c, f) = root_setup(2);
    let auth_lock = lock(&c, 0, f, LockType::IAuth);
    let l = lock(&c, 1, f, LockType::IAuth);
    req(&mut c, 1, 10, 1, vec![LockOp::x(l)], true);
    run(&mut c);
    // Only journaled peers (witnesses) forbid an early reply (§4.18); a remote xlock does not.
    let unsafe_reply = c
        .outputs()
        .iter()
        .any(|o| o.rank == 1 && matches!(&o.effect, Effect::Reply(r) if r.reqid == ReqId(10) && !r.safe));
    assert!(unsafe_reply);
    assert_eq!(c.unsafe_entries(1), 1);
    // Until the leader's entry is safe the auth keeps the xlock (XLOCK, not XLOCKDONE: the
    // auth's holder is the peer request, which never early-replies).
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Xlock);
    assert_eq!(xholders(&c, 0, auth_lock), vec![(ReqId(10), Some(1))]);
    c.make_safe(1).unwrap();
    run(&mut c);
    assert_eq!(c.delivered().get("drop_locks"), Some(&1));
    assert!(xholders(&c, 0, auth_lock).is_empty());
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
    assert!(c.rank(1).request(ReqId(10)).is_none());
}

#[test]
fn s4_6_remote_wrlock_on_the_auths_filelock() {
    let mut c = cluster(2);
    let d = make(&mut c, 0, Ino::ROOT, "d", true, &[1]);
    c.take_outputs();
    let auth_file = lock(&c, 0, d, LockType::IFile);
    let leader_file = lock(&c, 1, d, LockType::IFile);
    req(&mut c, 1, 10, 1, vec![LockOp::remote_wr(leader_file, 0)], false);
    run(&mut c);
    assert_eq!(peer_msgs(&c), vec![("authpin", 1), ("authpin_ack", 1), ("wrlock", 1), ("wrlock_ack", 1)]);
    assert!(acquired(&c, 1, 10));
    // The peer took an ordinary wrlock on the auth (SYNC → LOCK; filelock LOCK allows the
    // auth to wrlock, §1.5); the leader recorded REMOTE_WRLOCK(0) and no local wrlock.
    assert_eq!(state(&c, 0, d, LockType::IFile), LockState::Lock);
    assert!(c.rank(0).lock(auth_file).unwrap().wrlock_holders().contains_key(&ReqId(10)));
    let m = c.rank(1).request(ReqId(10)).unwrap();
    assert_eq!(m.held().get(&leader_file), Some(&REMOTE_WRLOCK));
    assert_eq!(m.remote_wrlocks().get(&leader_file), Some(&0));
    assert!(!c.rank(1).lock(leader_file).unwrap().is_wrlocked());
    // A local rdlock on the auth waits behind the remote wrlock (filelock LOCK: rdlock REQ,
    // never granted on the auth; the lock must go back to SYNC, which waits for the wrlock).
    req(&mut c, 0, 5, 2, vec![LockOp::rd(auth_file)], false);
    assert!(!acquired(&c, 0, 5));
    finish(&mut c, 1, 10);
    run(&mut c);
    assert_eq!(c.delivered().get("drop_locks"), Some(&1));
    assert!(!c.rank(0).lock(auth_file).unwrap().is_wrlocked());
    assert!(c.rank(0).request(ReqId(10)).is_none());
    assert!(acquired(&c, 0, 5));
    let held = c.rank(0).request(ReqId(5)).unwrap().held().get(&auth_file).copied();
    assert_eq!(held, Some(RDLOCK));
}

#[test]
fn s4_6_two_remote_wrlocks_from_two_ranks_share_the_auths_lock() {
    let mut c = cluster(3);
    let d = make(&mut c, 0, Ino::ROOT, "d", true, &[1, 2]);
    let auth_file = lock(&c, 0, d, LockType::IFile);
    let l = lock(&c, 1, d, LockType::IFile);
    req(&mut c, 1, 10, 1, vec![LockOp::remote_wr(l, 0)], false);
    let l = lock(&c, 2, d, LockType::IFile);
    req(&mut c, 2, 20, 2, vec![LockOp::remote_wr(l, 0)], false);
    run(&mut c);
    assert!(acquired(&c, 1, 10) && acquired(&c, 2, 20));
    let holders: Vec<ReqId> = c.rank(0).lock(auth_file).unwrap().wrlock_holders().keys().copied().collect();
    assert_eq!(holders, vec![ReqId(10), ReqId(20)]);
    assert_eq!(c.delivered().get("wrlock_ack"), Some(&2));
    finish(&mut c, 1, 10);
    finish(&mut c, 2, 20);
    run(&mut c);
    assert!(!c.rank(0).lock(auth_file).unwrap().is_wrlocked());
    assert_eq!(c.delivered().get("drop_locks"), Some(&2));
}

#[test]
fn s4_4_authpins_go_to_each_auth_rank_then_xlocks_one_by_one() {
    // Three ranks: f is auth on rank 0, g (in ~mds1) on rank 1; rank 2 leads.
    let (mut c, f) = root_setup(3);
    let g = make(&mut c, 1, Ino::mdsdir(1), "g", false, &[2]);
    let g_auth =
        c.rank(2).cache().auth_of(mds_locker::ObjRef::Inode(c.rank(2).cache().lookup_ino(g).unwrap()));
    assert_eq!(g_auth, Some(1));
    let locks = vec![LockOp::x(lock(&c, 2, f, LockType::IAuth)), LockOp::x(lock(&c, 2, g, LockType::IXattr))];
    req(&mut c, 2, 30, 3, locks, false);
    // Phase C: one AUTHPIN per auth rank, both outstanding at once.
    let m = c.rank(2).request(ReqId(30)).unwrap();
    assert_eq!(m.waiting_on_peer().iter().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(c.transport().in_flight(), 2);
    run(&mut c);
    assert_eq!(peer_msgs(&c), vec![("authpin", 2), ("authpin_ack", 2), ("xlock", 2), ("xlock_ack", 2)]);
    assert!(acquired(&c, 2, 30));
    let m = c.rank(2).request(ReqId(30)).unwrap();
    assert_eq!(m.remote_auth_pins().values().copied().collect::<Vec<_>>().len(), 2);
    assert_eq!(m.peers().iter().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Xlock);
    assert_eq!(state(&c, 1, g, LockType::IXattr), LockState::Xlock);
    for (r, ino) in [(0, f), (1, g)] {
        let i = c.rank(r).cache().lookup_ino(ino).unwrap();
        // The peer request's pin plus the transitional XLOCK's own (§4.1).
        assert_eq!(c.rank(r).cache().inode(i).unwrap().auth_pins(), 2, "rank {r} pins for the peer");
        assert_eq!(c.rank(r).request(ReqId(30)).unwrap().auth_pins().len(), 1);
    }
    finish(&mut c, 2, 30);
    run(&mut c);
    assert_eq!(c.delivered().get("drop_locks"), Some(&2));
    for (r, ino) in [(0, f), (1, g)] {
        let i = c.rank(r).cache().lookup_ino(ino).unwrap();
        assert_eq!(c.rank(r).cache().inode(i).unwrap().auth_pins(), 0);
        assert!(c.rank(r).request(ReqId(30)).is_none());
    }
    assert_eq!(state(&c, 0, f, LockType::IAuth), LockState::Sync);
    assert_eq!(state(&c, 1, g, LockType::IXattr), LockState::Sync);
}

#[test]
fn s4_17_authpin_ack_lists_every_object_pinned_and_droplocks_unpins() {
    let (mut c, f) = root_setup(2);
    let h = make(&mut c, 0, Ino::ROOT, "h", false, &[1]);
    c.take_outputs();
    let acks = |fx: &[Effect]| -> Vec<(Rank, PeerMsg)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg: MdsMessage::Peer(p) } => Some((*to, p.clone())),
                _ => None,
            })
            .collect()
    };
    let mut msg = PeerMsg::new(PeerOp::AuthPin, ReqId(40), Some(1));
    msg.objects = vec![ObjKey::Inode(f)];
    let fx = c.rank_mut(0).handle(Event::Message { from: 1, msg: MdsMessage::Peer(msg.clone()) }).unwrap();
    let sent = acks(&fx);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0, sent[0].1.op, sent[0].1.objects.clone()),
        (1, PeerOp::AuthPinAck, vec![ObjKey::Inode(f)])
    );
    assert!(!sent[0].1.flag, "pinning never blocks here, so the ack is never a 'blocked' one");
    msg.objects = vec![ObjKey::Inode(h)];
    let fx = c.rank_mut(0).handle(Event::Message { from: 1, msg: MdsMessage::Peer(msg) }).unwrap();
    // §4.17: the ack lists every object pinned for the request.
    let sent = acks(&fx);
    let mut objs = sent[0].1.objects.clone();
    objs.sort();
    let mut want = vec![ObjKey::Inode(f), ObjKey::Inode(h)];
    want.sort();
    assert_eq!(objs, want);
    let p = c.rank(0).request(ReqId(40)).unwrap();
    assert_eq!(p.peer_of(), Some(1));
    assert_eq!(p.auth_pins().len(), 2);
    check(&c);
    // Rank 1 has no such request: the acks it receives are ignored.
    c.route(0, fx).unwrap();
    run(&mut c);
    let drop = PeerMsg::new(PeerOp::DropLocks, ReqId(40), Some(1));
    c.handle(0, Event::Message { from: 1, msg: MdsMessage::Peer(drop) }).unwrap();
    assert!(c.rank(0).request(ReqId(40)).is_none());
    for ino in [f, h] {
        let i = c.rank(0).cache().lookup_ino(ino).unwrap();
        assert_eq!(c.rank(0).cache().inode(i).unwrap().auth_pins(), 0);
    }
}
