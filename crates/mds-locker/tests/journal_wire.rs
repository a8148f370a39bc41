//! The JournalEntry ↔ EUpdate mapping (`mds_locker::wire`), mds §6.1 / §6.2 step 3: every
//! entry the Locker submits survives the trip to bytes and back, and replaying it onto a fresh
//! cache rebuilds the same committed namespace (§6.6).

mod common;

use common::H;
use mds_journal::LogEvent;
use mds_locker::journal::MetaChange;
use mds_locker::wire::{self, ReplayChange, ReplayLinkage};
use mds_locker::{
    CapMessage, CapOp, ClientCapMessage, ClientCapOp, Effect, Event, FilePath, Ino, JournalEntry, Op, ReqId,
};

fn submit(h: &mut H, reqid: u64, op: Op) -> (JournalEntry, u64) {
    let mut fx = h.ev(Event::Request(mds_locker::ClientRequest { reqid: ReqId(reqid), client: 1, op }));
    // A cooperative client: acknowledge every revoke at once (§4.14), so the request proceeds.
    let mut i = 0;
    while i < fx.len() {
        if let Effect::Cap(CapMessage { client, ino, op: CapOp::Revoke, caps, wanted, seq }) = fx[i].clone() {
            let ack = ClientCapMessage { client, ino, op: ClientCapOp::Update, seq, caps, wanted };
            let more = h.ev(Event::ClientCaps(ack));
            fx.extend(more);
        }
        i += 1;
    }
    fx.iter()
        .find_map(|e| match e {
            Effect::JournalSubmit { seq, entry } => Some((entry.clone(), seq.0)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a write journals an entry: {fx:?}"))
}

fn p(s: &str) -> FilePath {
    FilePath::new(Ino::ROOT, s)
}

/// The inode number a root entry names (committed linkage).
fn ino_of(h: &H, name: &str) -> Ino {
    let c = h.l.cache();
    let dn = c.lookup_dentry(c.root(), name).expect("entry exists");
    match c.dentry(dn).unwrap().linkage() {
        mds_locker::Linkage::Primary(i) => c.inode(i).unwrap().ino(),
        other => panic!("{name} is {other:?}"),
    }
}

fn sorted(mut v: Vec<MetaChange>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|c| format!("{c:?}")).collect();
    s.sort();
    s
}

/// Entry → LogEvent → payload bytes → LogEvent → entry, against the cache that made it.
fn round_trip(h: &H, entry: &JournalEntry) -> (LogEvent, JournalEntry) {
    let ev = wire::to_log_event(entry, h.l.cache(), Some(1)).expect("maps");
    let bytes = ev.to_payload();
    let back = LogEvent::decode_payload(&bytes).expect("decodes");
    assert_eq!(back, ev, "payload round trip");
    let u = wire::from_log_event(&back).expect("an EUpdate");
    assert_eq!(u.reqid, Some((1, entry.reqid)), "§6.6: the client request id travels with the update");
    let again = wire::to_journal_entry(&u, h.l.cache()).expect("maps back");
    (back, again)
}

#[test]
fn mkdir_create_rename_unlink_entries_round_trip_through_bytes() {
    let mut h = H::new();
    type MkOp = fn(&H) -> Op;
    let ops: [MkOp; 6] = [
        |_| Op::Mkdir { path: p("d"), mode: 0o755 },
        |_| Op::Create { path: p("d/f"), mode: 0o644, excl: true, file_mode: 1 },
        |_| Op::Symlink { path: p("s"), target: "d/f".into() },
        |h| Op::Rename { dest: p("g"), src: FilePath { base: ino_of(h, "d"), components: vec!["f".into()] } },
        |_| Op::Link { path: p("h"), target: p("g") },
        |_| Op::Unlink { path: p("g") },
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let op = op(&h);
        let reqid = 10 + i as u64;
        let (entry, seq) = submit(&mut h, reqid, op);
        let (ev, back) = round_trip(&h, &entry);
        let LogEvent::Update(u) = &ev else { panic!("not an EUpdate") };
        assert_eq!(u.op_type, entry.description);
        assert_eq!(back.reqid, entry.reqid);
        assert_eq!(back.description, entry.description);
        assert_eq!(sorted(back.changes), sorted(entry.changes.clone()), "changes of {}", entry.description);
        h.ev(Event::JournalSafe { upto: mds_locker::JournalSeq(seq) });
    }
}

#[test]
fn a_primary_link_carries_its_inode_and_a_null_link_travels_as_a_null_dentry() {
    let mut h = H::new();
    let (entry, seq) = submit(&mut h, 1, Op::Mkdir { path: p("d"), mode: 0o700 });
    h.ev(Event::JournalSafe { upto: mds_locker::JournalSeq(seq) });
    let ev = wire::to_log_event(&entry, h.l.cache(), Some(1)).unwrap();
    let LogEvent::Update(u) = &ev else { panic!() };
    let root_lump = u.metablob.dirs.iter().find(|(df, _)| df.ino.0 == Ino::ROOT.0).expect("root lump");
    let full = root_lump.1.full.iter().find(|f| f.name == "d").expect("d as a full dentry");
    assert!(full.inode.is_dir());
    assert_eq!(full.inode.mode & 0o777, 0o700);
    assert_eq!(u.metablob.client_reqs.len(), 1);

    let (entry, _) = submit(&mut h, 2, Op::Rmdir { path: p("d") });
    let u = wire::from_log_event(&wire::to_log_event(&entry, h.l.cache(), Some(1)).unwrap()).unwrap();
    assert!(u.changes.iter().any(|c| matches!(c,
        ReplayChange::Dentry { dir, name, linkage: ReplayLinkage::Null, .. } if *dir == Ino::ROOT && name == "d")));
}

#[test]
fn internal_updates_carry_no_client_request_id() {
    let mut h = H::new();
    let (entry, _) = submit(&mut h, 1, Op::Mkdir { path: p("d"), mode: 0o755 });
    let ev = wire::to_log_event(&entry, h.l.cache(), None).unwrap();
    let LogEvent::Update(u) = &ev else { panic!() };
    assert!(u.reqid.is_none() && u.metablob.client_reqs.is_empty());
}

#[test]
fn other_event_types_are_not_updates() {
    let ev = LogEvent::NoOp(mds_journal::ENoOp { pad_size: 0 });
    assert!(matches!(wire::from_log_event(&ev), Err(wire::WireError::NotUpdate(_))));
}
