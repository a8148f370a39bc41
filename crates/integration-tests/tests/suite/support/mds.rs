//! Drivers for the MDS stories: a multi-rank `Cluster` run request by request with a
//! cooperative client (it answers every cap revoke and returns every dentry lease at once, as
//! a well-behaved ceph-fuse does), and journal-event helpers.

use mds_journal::{LogEvent, PeerOp};
use mds_locker::cluster::{Cluster, Output};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{ClientRequest, Effect, Errno, Event, FilePath, Ino, ObjRef, Op, ReqId};

pub type OpResult = Result<Option<Ino>, Errno>;

pub fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// Checks every rank's invariants and the cross-rank ones (mds §4.12: replica states follow
/// the auth's).
pub fn check(c: &Cluster) {
    if let Err(v) = mds_locker::invariants::check_cluster(c.lockers(), 0) {
        panic!("cluster invariants violated: {v:#?}");
    }
}

/// Opens `client`'s session on `rank` (if needed) and sends the request.
pub fn send(c: &mut Cluster, rank: u32, reqid: u64, client: u64, op: Op) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
    c.handle(rank, Event::Request(ClientRequest { reqid: ReqId(reqid), client, op })).unwrap();
}

/// Delivers messages (making journal entries safe when `safe`), answering revokes and
/// returning leases, until nothing more happens. Returns every output.
pub fn drive(c: &mut Cluster, safe: bool) -> Vec<Output> {
    let mut out = Vec::new();
    let mut clients = CooperativeClients::new();
    for _ in 0..200 {
        if safe {
            c.settle().unwrap();
        } else {
            c.run().unwrap();
        }
        check(c);
        let batch = c.take_outputs();
        let answers = clients.answers(&batch);
        out.extend(batch);
        if answers.is_empty() {
            return out;
        }
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
        }
    }
    panic!("the cluster kept producing work after 200 rounds");
}

/// The safe reply's result for `reqid`, if it came.
pub fn safe_result(out: &[Output], reqid: u64) -> Option<OpResult> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
        _ => None,
    })
}

/// Runs one request to its safe reply; returns the result and every output meanwhile.
pub fn run(c: &mut Cluster, rank: u32, reqid: u64, client: u64, op: Op) -> (OpResult, Vec<Output>) {
    send(c, rank, reqid, client, op);
    let out = drive(c, true);
    let r = safe_result(&out, reqid).unwrap_or_else(|| panic!("request {reqid} got no safe reply: {out:#?}"));
    (r, out)
}

/// Ranks the request was forwarded to, in order (mds §5.2 multi-MDS: a request goes to the
/// auth of what it changes).
pub fn forwarded_to(out: &[Output], reqid: u64) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match &o.effect {
            Effect::Forward { to, request } if request.reqid == ReqId(reqid) => Some(*to),
            _ => None,
        })
        .collect()
}

/// The rank that is auth for inode `ino`, if any rank is.
pub fn inode_auth(c: &Cluster, ino: Ino) -> Option<u32> {
    (0..c.len() as u32).find(|r| {
        let cache = c.rank(*r).cache();
        cache.lookup_ino(ino).is_some_and(|i| cache.is_auth_obj(ObjRef::Inode(i)))
    })
}

/// The rank that is auth for `dir`'s (only) dirfrag, as rank `seen_from` believes.
pub fn dirfrag_auth(c: &Cluster, seen_from: u32, dir: Ino) -> Option<u32> {
    let cache = c.rank(seen_from).cache();
    cache.resolve_dirfrag(dir, 0).and_then(|f| cache.dirfrag(f)).map(|f| f.auth())
}

/// One journal event in short form: `EUpdate(op)`, `EUpdate(op, peers)`, `EPeerUpdate(op,
/// prepare|commit|rollback)`, `ECommitted`, for the events carrying client request `tid`.
pub fn events_for(c: &Cluster, rank: u32, tid: u64) -> Vec<String> {
    c.journal_events(rank)
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            LogEvent::Update(u) if u.reqid.is_some_and(|q| q.tid == tid) => Some(if u.had_peers {
                format!("EUpdate({}, peers)", u.op_type)
            } else {
                format!("EUpdate({})", u.op_type)
            }),
            LogEvent::PeerUpdate(p) if p.reqid.tid == tid => {
                let phase = match p.op {
                    PeerOp::Prepare => "prepare",
                    PeerOp::Commit => "commit",
                    PeerOp::Rollback => "rollback",
                };
                Some(format!("EPeerUpdate({}, {phase})", p.op_type))
            }
            LogEvent::Committed(x) if x.reqid.tid == tid => Some("ECommitted".to_owned()),
            _ => None,
        })
        .collect()
}

/// How many EUpdates on `rank`'s journal carry client request `tid` (how often it ran to
/// durability).
pub fn updates_for(c: &Cluster, rank: u32, tid: u64) -> usize {
    c.journal_events(rank)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, LogEvent::Update(u) if u.reqid.is_some_and(|q| q.tid == tid)))
        .count()
}

/// EUpdates on `rank`'s journal with operation name `op_type`.
pub fn updates_named(c: &Cluster, rank: u32, op_type: &str) -> usize {
    c.journal_events(rank)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, LogEvent::Update(u) if u.op_type == op_type))
        .count()
}
