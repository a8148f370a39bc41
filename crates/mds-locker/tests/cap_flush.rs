//! Cap flushes of dirty file data (mds §4.14 `_do_cap_update`, §4.6 `wrlock_force`): the
//! Locker forces a wrlock on the filelock, projects the inode, journals a "cap update", and
//! sends the FLUSH_ACK only once the entry is safe. Exact effects, invariants after every event.

mod common;

use common::*;
use lock_sm::LockState as S;
use lock_sm::LockType as T;
use lock_sm::caps::{self, FILE_EXCL, FILE_WR, caps_for_mode};
use mds_locker::journal::MetaChange;
use mds_locker::mutation::WRLOCK;
use mds_locker::{CapMessage, CapOp, ClientCapMessage, ClientCapOp, Effect, Event, InodeId, LockOp, ReqId};

/// Client 1 opens `f` read-write, becomes the loner and acks, so it holds `Fw` in EXCL.
fn loner_writer(h: &mut H) -> InodeId {
    let (_, f) = h.file("f");
    h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RDWR));
    h.ack(1, f);
    let n = h.l.cache().inode(f).unwrap();
    assert_eq!(n.loner(), Some(1));
    assert_ne!(n.caps()[&1].pending() & FILE_WR, 0, "the loner may write");
    assert_eq!(h.state(ino_lock(f, T::IFile)), S::Excl);
    f
}

/// A flush from `client` keeping its current caps (an UPDATE that carries dirty data).
fn flush(h: &H, client: u64, f: InodeId, tid: u64, dirty: u32, size: u64, mtime_ms: u64) -> Event {
    let n = h.l.cache().inode(f).unwrap();
    let cap = &n.caps()[&client];
    Event::ClientCaps(ClientCapMessage {
        client,
        ino: n.ino(),
        op: ClientCapOp::Flush { tid, dirty, size, mtime_ms },
        seq: cap.last_sent(),
        caps: cap.pending(),
        wanted: cap.wanted(),
    })
}

fn flush_acks(fx: &[Effect]) -> Vec<CapMessage> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Cap(c) if matches!(c.op, CapOp::FlushAck { .. }) => Some(*c),
            _ => None,
        })
        .collect()
}

#[test]
fn section_4_14_flush_journals_and_acks_only_when_safe() {
    let mut h = H::new();
    let f = loner_writer(&mut h);
    let ino = h.l.cache().inode(f).unwrap().ino();
    let file = ino_lock(f, T::IFile);
    let submits_before = h.l.stats().journal_submits;

    let fx = h.ev(flush(&h, 1, f, 7, FILE_WR, 4096, 5_000));
    // Exactly one effect: the journal entry. No ack before the entry is safe.
    assert_eq!(fx.len(), 1, "{fx:?}");
    let Effect::JournalSubmit { seq, entry } = &fx[0] else { panic!("{fx:?}") };
    assert_eq!(entry.description, "cap update");
    assert!(entry.reqid.0 >= ReqId::INTERNAL_BASE, "an internal mutation, no client request");
    let [MetaChange::Inode { id, ino: journaled_ino, data }] = entry.changes.as_slice() else {
        panic!("{:?}", entry.changes)
    };
    assert_eq!((*id, *journaled_ino, data.size, data.mtime_ms), (f, ino, 4096, 5_000));
    assert_eq!(h.l.stats().journal_submits, submits_before + 1);

    // §4.6 wrlock_force: the filelock is wrlocked in EXCL by the internal mutation.
    let lock = h.l.lock(file).unwrap();
    assert_eq!(lock.state(), S::Excl);
    assert_eq!(lock.wrlock_holders().keys().copied().collect::<Vec<_>>(), vec![entry.reqid]);
    assert_eq!(h.l.request(entry.reqid).unwrap().held().get(&file), Some(&WRLOCK));
    // §6.2: projected, not yet applied.
    let n = h.l.cache().inode(f).unwrap();
    assert_eq!((n.data().size, n.projected_data().size), (0, 4096));

    let fx = h.safe(seq.0);
    let acks = flush_acks(&fx);
    assert_eq!(acks.len(), 1, "{fx:?}");
    let ack = acks[0];
    assert_eq!((ack.client, ack.ino, ack.op), (1, ino, CapOp::FlushAck { tid: 7, cleaned: FILE_WR }));
    assert!(fx.iter().all(|e| !matches!(e, Effect::Reply(_))), "a cap flush has no client reply: {fx:?}");
    let n = h.l.cache().inode(f).unwrap();
    assert_eq!((n.data().size, n.data().mtime_ms), (4096, 5_000), "applied once safe");
    assert!(!h.l.lock(file).unwrap().is_wrlocked(), "the forced wrlock drops with the commit");
    assert!(h.l.request(entry.reqid).is_none());
    assert!(h.l.sessions().find(|s| s.client() == 1).unwrap().flush_completed(7));
}

#[test]
fn section_4_14_size_only_grows_and_fw_mtime_only_moves_forward() {
    let mut h = H::new();
    let f = loner_writer(&mut h);
    let fx = h.ev(flush(&h, 1, f, 1, FILE_WR, 8192, 9_000));
    h.safe(journal_seq(&fx));
    // An older, smaller flush (e.g. reordered behind a truncate the client saw) changes neither.
    let fx = h.ev(flush(&h, 1, f, 2, FILE_WR, 100, 1_000));
    h.safe(journal_seq(&fx));
    let d = h.l.cache().inode(f).unwrap().data().clone();
    assert_eq!((d.size, d.mtime_ms), (8192, 9_000));
    // With Fx dirty the client's mtime is authoritative.
    let fx = h.ev(flush(&h, 1, f, 3, FILE_EXCL, 0, 2_000));
    h.safe(journal_seq(&fx));
    let d = h.l.cache().inode(f).unwrap().data().clone();
    assert_eq!((d.size, d.mtime_ms), (8192, 2_000));
}

#[test]
fn section_4_14_duplicate_flush_tid_is_acked_at_once_without_journaling() {
    let mut h = H::new();
    let f = loner_writer(&mut h);
    let fx = h.ev(flush(&h, 1, f, 7, FILE_WR, 4096, 5_000));
    h.safe(journal_seq(&fx));
    let submits = h.l.stats().journal_submits;
    // The client did not see the ack and sends the same flush again.
    let fx = h.ev(flush(&h, 1, f, 7, FILE_WR, 4096, 5_000));
    let acks = flush_acks(&fx);
    assert_eq!(acks.len(), 1, "{fx:?}");
    assert_eq!(acks[0].op, CapOp::FlushAck { tid: 7, cleaned: FILE_WR });
    assert!(fx.iter().all(|e| !matches!(e, Effect::JournalSubmit { .. })), "{fx:?}");
    assert_eq!(h.l.stats().journal_submits, submits);
}

#[test]
fn section_4_14_dirty_bits_the_client_never_held_journal_nothing() {
    let mut h = H::new();
    let (_, f) = h.file("f");
    // A reader: no Fw, so it cannot have dirtied file data.
    h.open_cap(1, f, caps_for_mode(caps::FILE_MODE_RD));
    h.ack(1, f);
    assert_eq!(h.l.cache().inode(f).unwrap().caps()[&1].issued() & FILE_WR, 0);
    let fx = h.ev(flush(&h, 1, f, 1, FILE_WR, 4096, 5_000));
    assert_eq!(flush_acks(&fx).len(), 1, "{fx:?}");
    assert!(fx.iter().all(|e| !matches!(e, Effect::JournalSubmit { .. })), "{fx:?}");
    assert_eq!(h.l.cache().inode(f).unwrap().projected_data().size, 0);
}

/// The loner's revoke ack carries its dirty data: the other client's xlock (a setattr's
/// filelock xlock, §5.2) must not be granted before that data is safe, because the forced
/// wrlock holds the filelock's transition back.
#[test]
fn section_4_6_forced_wrlock_holds_a_gather_until_the_flush_is_safe() {
    let mut h = H::new();
    let f = loner_writer(&mut h);
    let file = ino_lock(f, T::IFile);
    let fx = h.req(10, 2, vec![LockOp::x(file)], false);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Cap(c) if c.client == 1 && c.op == CapOp::Revoke)),
        "the loner's file caps are revoked first: {fx:?}"
    );
    assert!(!fx.contains(&Effect::LocksAcquired { reqid: ReqId(10) }));
    // Client 1 acks the revoke and flushes what it wrote under Fw.
    let fx = h.ev(flush(&h, 1, f, 1, FILE_WR, 4096, 5_000));
    let seq = journal_seq(&fx);
    assert!(!fx.contains(&Effect::LocksAcquired { reqid: ReqId(10) }), "granted over unsafe data: {fx:?}");
    assert!(flush_acks(&fx).is_empty(), "{fx:?}");
    assert!(fx.contains(&Effect::JournalFlush), "a gather waits on the forced wrlock: nudge the log: {fx:?}");
    assert_eq!(h.l.lock(file).unwrap().num_wrlock(), 1);

    let fx = h.safe(seq);
    let ack_at =
        fx.iter().position(|e| matches!(e, Effect::Cap(c) if matches!(c.op, CapOp::FlushAck { .. })));
    let granted_at = fx.iter().position(|e| *e == Effect::LocksAcquired { reqid: ReqId(10) });
    assert!(ack_at.is_some() && granted_at.is_some(), "{fx:?}");
    assert!(ack_at < granted_at, "the ack goes out before the locks the flush held are released: {fx:?}");
    assert_eq!(h.l.cache().inode(f).unwrap().data().size, 4096);
    assert_eq!(h.state(file), S::Xlock);
    h.finish(10);
}

#[test]
fn section_4_14_an_evicted_client_gets_no_ack_but_its_flush_still_commits() {
    let mut h = H::new();
    let f = loner_writer(&mut h);
    let fx = h.ev(flush(&h, 1, f, 1, FILE_WR, 4096, 5_000));
    let seq = journal_seq(&fx);
    let fx = h.ev(Event::SessionTimeout { client: 1 });
    assert!(fx.contains(&Effect::Evicted { client: 1 }));
    let fx = h.safe(seq);
    assert!(flush_acks(&fx).is_empty(), "{fx:?}");
    assert_eq!(h.l.cache().inode(f).unwrap().data().size, 4096, "the entry was journaled: it applies");
    assert!(!h.l.lock(ino_lock(f, T::IFile)).unwrap().is_wrlocked());
}
