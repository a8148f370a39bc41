//! Helpers shared by the multi-rank restart tests: sessions, driving a cluster with a
//! cooperative client, and finding a request's safe reply.
#![allow(dead_code)]

use mds_locker::cluster::{Cluster, Output};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{Effect, Errno, Event, Ino, ReqId};

/// Opens `client`'s session on `rank` unless it has one.
pub fn open_session(c: &mut Cluster, rank: u32, client: u64) {
    if !c.rank(rank).sessions().any(|s| s.client() == client) {
        c.handle(rank, Event::SessionOpen { client }).unwrap();
    }
}

/// Delivers messages (and makes journal entries safe with `safe`), answering cap revokes and
/// returning leases as a cooperative client does; returns every output.
pub fn drive(c: &mut Cluster, safe: bool) -> Vec<Output> {
    let mut out = Vec::new();
    let mut clients = CooperativeClients::new();
    for _ in 0..100 {
        if safe {
            c.settle().unwrap();
        } else {
            c.run().unwrap();
        }
        let batch = c.take_outputs();
        let answers = clients.answers(&batch);
        out.extend(batch);
        if answers.is_empty() {
            break;
        }
        for (r, ev) in answers {
            c.handle(r, ev).unwrap();
        }
    }
    out
}

/// The result of request `reqid`'s safe reply, if it came.
pub fn safe_result(out: &[Output], reqid: u64) -> Option<Result<Option<Ino>, Errno>> {
    out.iter().find_map(|o| match &o.effect {
        Effect::Reply(r) if r.safe && r.reqid == ReqId(reqid) => Some(r.result),
        _ => None,
    })
}
