//! JSON dumps for operators and tests: `dump_locks` (which Ceph lacks), `dump_ops_in_flight`
//! with Ceph's flag points, and `session ls`.

use serde_json::{Value, json};

use crate::ids::{LockId, ObjRef};
use crate::lock::Lock;
use crate::locker::Locker;
use crate::mutation::Phase;

/// Which locks `dump_locks` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFilter {
    /// Every lock of every cached object.
    All,
    /// Only locks that are held, leased, transitional, waited on or not in their initial state.
    Active,
}

fn is_active(lock: &Lock) -> bool {
    let initial = match lock.machine() {
        lock_sm::Machine::Local => lock_sm::LockState::Lock,
        _ => lock_sm::LockState::Sync,
    };
    lock.is_used() || !lock.is_stable() || lock.waiters().next().is_some() || lock.state() != initial
}

fn lock_json(l: &Locker, id: LockId, lock: &Lock) -> Value {
    let xlocks: Vec<Value> = lock
        .xlock_holders()
        .iter()
        .map(|h| json!({ "req": h.req.0, "client": h.client, "done": h.done }))
        .collect();
    json!({
        "object": l.cache().object_name(id.obj),
        "lock": id.ty.name(),
        "state": lock.state().log_name(),
        "stable": lock.is_stable(),
        "rdlocks": lock.rdlock_holders().iter().map(|(r, n)| json!({ "req": r.0, "count": n })).collect::<Vec<_>>(),
        "wrlocks": lock.wrlock_holders().iter().map(|(r, n)| json!({ "req": r.0, "count": n })).collect::<Vec<_>>(),
        "xlocks": xlocks,
        "xlock_by_client": lock.xlock_by_client(),
        "excl_client": lock.excl_client(),
        "leases": lock.leases().keys().collect::<Vec<_>>(),
        "gather_set": lock.gather_set().iter().collect::<Vec<_>>(),
        "waiters": lock.waiters().map(|w| json!({ "req": w.req.0, "mask": w.mask })).collect::<Vec<_>>(),
    })
}

impl Locker {
    /// Every (or every active) lock as a JSON array: object, lock type, state, holders,
    /// waiters and gather set.
    pub fn dump_locks(&self, filter: LockFilter) -> Value {
        let c = self.cache();
        let mut out = Vec::new();
        let objs = c.inode_ids().map(ObjRef::Inode).chain(c.dentry_ids().map(ObjRef::Dentry));
        for obj in objs {
            for id in c.lock_ids(obj) {
                if let Ok(lock) = c.lock(id)
                    && (filter == LockFilter::All || is_active(lock))
                {
                    out.push(lock_json(self, id, lock));
                }
            }
        }
        Value::Array(out)
    }

    /// In-flight requests with their op-tracker flag points (Ceph's `dump_ops_in_flight`).
    pub fn dump_ops_in_flight(&self) -> Value {
        let ops: Vec<Value> = self
            .requests()
            .map(|m| {
                let phase = match m.phase() {
                    Phase::Locking => "locking".to_string(),
                    Phase::Holding => "holding".to_string(),
                    Phase::Committing(s) => format!("committing seq {}", s.0),
                };
                json!({
                    "reqid": m.reqid().0,
                    "client": m.client(),
                    "phase": phase,
                    "locking": m.locking().map(|l| format!("{} {}", self.cache().object_name(l.obj), l.ty)),
                    "waiting_on": m.waiting_on().map(|l| format!("{} {}", self.cache().object_name(l.obj), l.ty)),
                    "held": m.held().iter().map(|(l, f)| json!({
                        "lock": format!("{} {}", self.cache().object_name(l.obj), l.ty),
                        "flags": f,
                    })).collect::<Vec<_>>(),
                    "events": m.events().iter().map(|e| json!({ "time_ms": e.at_ms, "event": e.what })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "ops": ops, "num_ops": self.requests().count() })
    }

    /// Open sessions (Ceph's `session ls`, reduced to what the Locker tracks).
    pub fn session_ls(&self) -> Value {
        Value::Array(
            self.sessions()
                .map(|s| {
                    json!({
                        "client": s.client(),
                        "num_caps": s.caps().len(),
                        "num_requests": s.requests().len(),
                        "last_seen_ms": s.last_seen_ms(),
                    })
                })
                .collect(),
        )
    }
}
