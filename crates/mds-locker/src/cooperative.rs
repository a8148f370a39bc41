//! The client side a well-behaved CephFS client plays, for drivers of a `Cluster`.
//!
//! The Locker waits for clients: a gather that revokes caps finishes only when the client
//! acknowledges (§4.14), and a DN lock leaving SYNC waits for dentry leases to come back
//! (§4.15). Tests, the demo, benchmarks and the simulator all need a client that answers at
//! once, so the answer logic lives here once: feed it the effects a cluster produced and it
//! returns the events the clients send back, each with the rank to send it to. The simulator
//! answers late or never on purpose; it can hold the returned events back.

use std::collections::BTreeMap;

use crate::cluster::Output;
use crate::effects::{CapOp, ClientCapMessage, ClientCapOp, Effect, Event};
use crate::ids::{ClientId, Ino, Rank};

/// Clients that acknowledge every cap revoke and return every dentry lease as soon as they
/// are asked. Remembers the leases it was granted, since a release must quote the lease seq.
#[derive(Debug, Default, Clone)]
pub struct CooperativeClients {
    leases: BTreeMap<(Rank, ClientId, Ino, String), u32>,
}

impl CooperativeClients {
    /// Clients holding no leases yet.
    pub fn new() -> CooperativeClients {
        CooperativeClients::default()
    }

    /// The answers to `outputs`, in order: a cap UPDATE acknowledging each revoke with exactly
    /// the caps the MDS left (and the same wanted set), and a lease release for each revoked
    /// lease this client was granted. Grants are remembered as they go by.
    pub fn answers(&mut self, outputs: &[Output]) -> Vec<(Rank, Event)> {
        let mut out = Vec::new();
        for o in outputs {
            match &o.effect {
                Effect::Cap(m) if m.op == CapOp::Revoke => {
                    let ack = ClientCapMessage {
                        client: m.client,
                        ino: m.ino,
                        op: ClientCapOp::Update,
                        seq: m.seq,
                        caps: m.caps,
                        wanted: m.wanted,
                    };
                    out.push((o.rank, Event::ClientCaps(ack)));
                }
                Effect::LeaseGrant { client, dir, name, seq } => {
                    self.leases.insert((o.rank, *client, *dir, name.clone()), *seq);
                }
                Effect::LeaseRevoke { client, dir, name } => {
                    if let Some(seq) = self.leases.remove(&(o.rank, *client, *dir, name.clone())) {
                        out.push((
                            o.rank,
                            Event::LeaseRelease { client: *client, dir: *dir, name: name.clone(), seq },
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Forgets a client's leases (it crashed or was evicted: the MDS dropped them too).
    pub fn forget_client(&mut self, client: ClientId) {
        self.leases.retain(|(_, c, _, _), _| *c != client);
    }

    /// Leases currently held.
    pub fn leases_held(&self) -> usize {
        self.leases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::CapMessage;

    fn out(rank: Rank, effect: Effect) -> Output {
        Output { rank, effect }
    }

    #[test]
    fn answers_revokes_and_returns_granted_leases_only() {
        let mut c = CooperativeClients::new();
        let revoke = CapMessage { client: 3, ino: Ino(9), op: CapOp::Revoke, caps: 1, wanted: 5, seq: 7 };
        let grant = CapMessage { op: CapOp::Grant, ..revoke };
        let fx = vec![
            out(1, Effect::Cap(grant)),
            out(1, Effect::Cap(revoke)),
            out(0, Effect::LeaseGrant { client: 3, dir: Ino(1), name: "a".into(), seq: 4 }),
            out(0, Effect::LeaseRevoke { client: 3, dir: Ino(1), name: "a".into() }),
            out(0, Effect::LeaseRevoke { client: 3, dir: Ino(1), name: "never-granted".into() }),
        ];
        let a = c.answers(&fx);
        assert_eq!(a.len(), 2);
        assert!(matches!(&a[0], (1, Event::ClientCaps(m)) if m.seq == 7 && m.caps == 1 && m.wanted == 5));
        assert!(matches!(&a[1], (0, Event::LeaseRelease { seq: 4, .. })));
        assert_eq!(c.leases_held(), 0);
    }
}
