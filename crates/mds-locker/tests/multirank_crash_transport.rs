//! A failed rank's connections are reset (mds spec §6.6): `Transport::drop_rank` removes every
//! message from or to it, and keeps the other connections' messages in order, both in
//! `FifoTransport`'s own version and in the trait's default (used by transports that yield
//! every accepted message from `next`).

use std::collections::VecDeque;

use mds_locker::cluster::{FifoTransport, Transport};
use mds_locker::message::Discover;
use mds_locker::{Ino, MdsMessage, Rank};

/// A transport relying on the default `drop_rank`.
#[derive(Debug, Default)]
struct Plain {
    queue: VecDeque<(Rank, Rank, MdsMessage)>,
}

impl Transport for Plain {
    fn send(&mut self, from: Rank, to: Rank, msg: MdsMessage) {
        self.queue.push_back((from, to, msg));
    }
    fn next(&mut self) -> Option<(Rank, Rank, MdsMessage)> {
        self.queue.pop_front()
    }
    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

const CONNS: [(Rank, Rank); 5] = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2)];

fn fill(t: &mut impl Transport) {
    for i in 0..20u32 {
        let (from, to) = CONNS[i as usize % CONNS.len()];
        t.send(from, to, MdsMessage::Discover(Discover { dir: Ino::ROOT, name: format!("{i}") }));
    }
}

fn drained(t: &mut impl Transport) -> Vec<(Rank, Rank, String)> {
    std::iter::from_fn(|| t.next())
        .map(|(f, to, m)| match m {
            MdsMessage::Discover(d) => (f, to, d.name),
            other => panic!("not sent: {other:?}"),
        })
        .collect()
}

fn survivors_in_order() -> Vec<(Rank, Rank, String)> {
    (0..20u32)
        .filter_map(|i| {
            let (f, to) = CONNS[i as usize % CONNS.len()];
            (f != 1 && to != 1).then(|| (f, to, format!("{i}")))
        })
        .collect()
}

#[test]
fn fifo_transport_drop_rank_mds_s6_6() {
    let mut t = FifoTransport::default();
    fill(&mut t);
    assert_eq!(t.drop_rank(1), 12);
    assert_eq!(drained(&mut t), survivors_in_order());
}

#[test]
fn default_drop_rank_mds_s6_6() {
    let mut t = Plain::default();
    fill(&mut t);
    assert_eq!(t.drop_rank(1), 12);
    assert_eq!(t.in_flight(), 8);
    assert_eq!(drained(&mut t), survivors_in_order());
}
