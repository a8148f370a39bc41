//! Invariants as code (STYLE.md §4): each check is one function citing the rule it encodes.
//! Tests run `check_all` after every event; a violation names the rule and the object.

use lock_sm::{LockState, Machine, Perm};

use crate::ids::{LockId, ObjRef, ReqId};
use crate::lock::Lock;
use crate::locker::Locker;
use crate::mutation::{Phase, RDLOCK, WRLOCK, XLOCK};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub rule: &'static str,
    /// What was found.
    pub detail: String,
}

fn every_lock(l: &Locker) -> Vec<(LockId, &Lock)> {
    let c = l.cache();
    let mut out = Vec::new();
    for i in c.inode_ids() {
        for id in c.lock_ids(ObjRef::Inode(i)) {
            if let Ok(lock) = c.lock(id) {
                out.push((id, lock));
            }
        }
    }
    for d in c.dentry_ids() {
        for id in c.lock_ids(ObjRef::Dentry(d)) {
            if let Ok(lock) = c.lock(id) {
                out.push((id, lock));
            }
        }
    }
    out
}

/// Runs every check; `Err` lists all violations found.
pub fn check_all(l: &Locker) -> Result<(), Vec<Violation>> {
    let mut v = Vec::new();
    xlock_exclusive(l, &mut v);
    xlock_excludes_others(l, &mut v);
    held_locks_permitted(l, &mut v);
    local_locks_exclusive(l, &mut v);
    auth_pin_iff_transitional(l, &mut v);
    holders_match_mutations(l, &mut v);
    waiters_are_live(l, &mut v);
    caps_within_allowed(l, &mut v);
    locked_means_caps_gathered(l, &mut v);
    primary_links_match_parents(l, &mut v);
    projections_belong_to_live_mutations(l, &mut v);
    inode_auth_follows_primary_dentry(l, &mut v);
    if v.is_empty() { Ok(()) } else { Err(v) }
}

fn push(v: &mut Vec<Violation>, rule: &'static str, l: &Locker, id: LockId, what: String) {
    let name = l.cache().object_name(id.obj);
    v.push(Violation { rule, detail: format!("{name} {}: {what}", id.ty) });
}

/// Never two xlock holders (§4.7): at most one holder is not yet XLOCKDONE, and holders that
/// coexist (same client re-taking an XLOCKDONE lock) share one client.
pub fn xlock_exclusive(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        let holders = lock.xlock_holders();
        let active = holders.iter().filter(|h| !h.done).count();
        if active > 1 {
            push(v, "never two xlock holders", l, id, format!("{active} active holders {holders:?}"));
        }
        if holders.windows(2).any(|w| w[0].client != w[1].client) {
            push(v, "never two xlock holders", l, id, format!("holders of different clients {holders:?}"));
        }
        if holders.is_empty() != lock.xlock_by_client().is_none()
            && holders.iter().any(|h| h.client.is_some())
        {
            push(v, "xlock_by_client tracks holders", l, id, format!("{:?}", lock.xlock_by_client()));
        }
    }
}

/// An xlock excludes other holders (§1.3/§1.5 xlock rows): while a simplelock or filelock is
/// xlocked nobody holds a wrlock, and rdlocks exist only for the xlocking client (XLOCKDONE's
/// XCL column).
pub fn xlock_excludes_others(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        if lock.machine() == Machine::Local || !lock.is_xlocked() {
            continue;
        }
        if lock.is_wrlocked() {
            push(v, "xlock excludes others", l, id, format!("{} wrlocks under an xlock", lock.num_wrlock()));
        }
        for req in lock.rdlock_holders().keys() {
            let client = l.request(*req).and_then(|r| r.client());
            if client.is_none() || client != lock.xlock_by_client() {
                push(
                    v,
                    "xlock excludes others",
                    l,
                    id,
                    format!("rdlock by {req} (client {client:?}) under an xlock"),
                );
            }
        }
    }
}

/// No grant the table forbids (§1, §4.2): in a stable state every held rdlock is allowed for
/// its holder's client, and wrlocks, xlocks and leases are of a kind the state permits at all.
/// (A wrlock granted through XCL to the loner may outlive the loner, as in Ceph, so only the
/// column is checked for wrlocks. Transitional states may still be draining holders of the
/// previous state; `lock-sm`'s gather rules decide when they may complete.)
pub fn held_locks_permitted(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        let m = lock.machine();
        if m == Machine::Local || !lock.is_stable() {
            continue;
        }
        let row = m.row(lock.state());
        let permits_some = |p: Perm| match p {
            Perm::Any | Perm::Xcl => true,
            Perm::Auth => lock.is_auth(),
            Perm::Never | Perm::Req => false,
        };
        for req in lock.rdlock_holders().keys() {
            let client = l.request(*req).and_then(|r| r.client());
            if !lock.can_rdlock(client) {
                push(
                    v,
                    "held lock permitted by table",
                    l,
                    id,
                    format!("rdlock by {req} in {}", lock.state()),
                );
            }
        }
        if lock.is_wrlocked() && !permits_some(row.can_wrlock) && !permits_some(row.can_force_wrlock) {
            push(v, "held lock permitted by table", l, id, format!("wrlock in {}", lock.state()));
        }
        // A remote xlock is recorded on the replica copy, which sits in LOCK while the auth
        // holds the real xlock for the leader (§4.7, §4.1 `get_xlock` on a replica).
        let remote_xlock = !lock.is_auth() && lock.state() == LockState::Lock;
        if lock.is_xlocked() && !permits_some(row.can_xlock) && !remote_xlock {
            push(v, "held lock permitted by table", l, id, format!("xlock in {}", lock.state()));
        }
        if lock.is_leased() && !permits_some(row.can_lease) {
            push(v, "held lock permitted by table", l, id, format!("lease in {}", lock.state()));
        }
    }
}

/// Locallocks are a reader/writer lock with wrlock as the shared mode (§1.6): never wrlocked
/// and xlocked at once, at most one xlock, state always LOCK.
pub fn local_locks_exclusive(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        if lock.machine() != Machine::Local {
            continue;
        }
        if lock.num_xlock() > 1 || (lock.is_xlocked() && lock.is_wrlocked()) {
            push(v, "locallock exclusive", l, id, format!("x={} wr={}", lock.num_xlock(), lock.num_wrlock()));
        }
        if lock.state() != LockState::Lock {
            push(v, "locallock exclusive", l, id, format!("state {}", lock.state()));
        }
    }
}

/// A lock auth-pins its parent exactly while transitional on the auth (§4.1).
pub fn auth_pin_iff_transitional(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        if lock.is_auth() && lock.holds_auth_pin() == lock.is_stable() {
            push(
                v,
                "transitional lock auth-pins parent",
                l,
                id,
                format!("{} pinned={}", lock.state(), lock.holds_auth_pin()),
            );
        }
    }
}

/// Lock holder lists and the mutations' held sets describe the same grants.
pub fn holders_match_mutations(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        let check = |req: &ReqId, flag: u8, what: &str, v: &mut Vec<Violation>| {
            if !l.request(*req).is_some_and(|m| m.holds(id, flag)) {
                push(v, "holders match mutations", l, id, format!("{what} holder {req} does not record it"));
            }
        };
        for req in lock.rdlock_holders().keys() {
            check(req, RDLOCK, "rdlock", v);
        }
        for req in lock.wrlock_holders().keys() {
            check(req, WRLOCK, "wrlock", v);
        }
        for h in lock.xlock_holders() {
            check(&h.req, XLOCK, "xlock", v);
        }
    }
    for m in l.requests() {
        for (id, flags) in m.held() {
            let Ok(lock) = l.lock(*id) else {
                v.push(Violation {
                    rule: "holders match mutations",
                    detail: format!("{} holds missing {id:?}", m.reqid()),
                });
                continue;
            };
            let ok = (flags & RDLOCK == 0 || lock.rdlock_holders().contains_key(&m.reqid()))
                && (flags & WRLOCK == 0 || lock.wrlock_holders().contains_key(&m.reqid()))
                && (flags & XLOCK == 0 || lock.xlock_holders().iter().any(|h| h.req == m.reqid()));
            if !ok {
                push(
                    v,
                    "holders match mutations",
                    l,
                    *id,
                    format!("{} records {flags:#x} not on the lock", m.reqid()),
                );
            }
        }
    }
}

/// Every waiter is a live request parked on exactly that lock, and every request still
/// acquiring is parked somewhere (otherwise it would never be retried).
pub fn waiters_are_live(l: &Locker, v: &mut Vec<Violation>) {
    for (id, lock) in every_lock(l) {
        for w in lock.waiters() {
            if l.request(w.req).is_none_or(|m| m.waiting_on() != Some(id)) {
                push(v, "waiters are live", l, id, format!("stale waiter {}", w.req));
            }
        }
    }
    for m in l.requests() {
        if m.phase() == Phase::Locking
            && m.waiting_on().is_none()
            && !l.waits_on_remote(m.reqid())
            && !l.waits_for_unfreeze(m.reqid())
            && m.waiting_on_peer().is_empty()
        {
            v.push(Violation {
                rule: "waiters are live",
                detail: format!("{} is acquiring but parked nowhere", m.reqid()),
            });
        }
    }
}

/// Caps within what the lock states allow (§1.7, §4.14): the MDS never leaves a client
/// `pending` bits its locks forbid, and once the cap-bearing locks are stable and no revoke is
/// outstanding, `issued` is within the allowance too.
pub fn caps_within_allowed(l: &Locker, v: &mut Vec<Violation>) {
    let c = l.cache();
    for i in c.inode_ids() {
        let Some(n) = c.inode(i) else { continue };
        let stable = crate::locker::cap_locks_stable(l, i);
        for (client, cap) in n.caps() {
            let Ok(allowed) = l.allowed_caps(i, *client) else { continue };
            let name = c.object_name(ObjRef::Inode(i));
            if cap.pending() & !allowed != 0 {
                v.push(Violation {
                    rule: "caps within allowed",
                    detail: format!(
                        "{name} client {client}: pending {} allowed {}",
                        lock_sm::caps::format_caps(cap.pending()),
                        lock_sm::caps::format_caps(allowed)
                    ),
                });
            }
            if stable && !cap.is_revoking() && cap.issued() & !allowed != 0 {
                v.push(Violation {
                    rule: "caps within allowed",
                    detail: format!(
                        "{name} client {client}: issued {} allowed {}",
                        lock_sm::caps::format_caps(cap.issued()),
                        lock_sm::caps::format_caps(allowed)
                    ),
                });
            }
        }
    }
}

/// What a gather is for (§1.8 rule 7, §4.7): while a cap-bearing lock has an active (not yet
/// XLOCKDONE) xlock, or is stable and rdlocked, no client may still hold (`issued`, not merely
/// `pending`) caps the current state grants to nobody. A transition that completed without
/// waiting for a revoke would break this. The check is per state rather than per client: the
/// loner may change in the middle of a transition and gathers judge loner mode by the current
/// state (§1.7), so Ceph itself can complete EXCL_XSYN → XSYN with the previous loner still
/// holding the `Fc Fb` that XSYN grants the loner.
pub fn locked_means_caps_gathered(l: &Locker, v: &mut Vec<Violation>) {
    use lock_sm::CapsWho;
    use lock_sm::caps::unshift_caps;
    use lock_sm::predicates::gcaps_allowed;
    let c = l.cache();
    for i in c.inode_ids() {
        let Some(n) = c.inode(i) else { continue };
        for ty in lock_sm::LockType::ALL.into_iter().filter(|t| t.is_cap_bearing()) {
            let id = LockId::inode(i, ty);
            let Ok(lock) = c.lock(id) else { continue };
            if !(lock.xlock_by().is_some() || (lock.is_stable() && lock.is_rdlocked())) {
                continue;
            }
            let (m, s, auth) = (lock.machine(), lock.state(), lock.is_auth());
            let has_x = lock.xlock_by_client().is_some();
            for (client, cap) in n.caps() {
                let mut allowed = gcaps_allowed(m, s, s, CapsWho::Loner, auth, has_x)
                    | gcaps_allowed(m, s, s, CapsWho::Any, auth, has_x);
                if lock.xlock_by_client() == Some(*client) {
                    allowed |= gcaps_allowed(m, s, s, CapsWho::Xlocker, auth, has_x) & ty.xlocker_mask();
                }
                let issued = unshift_caps(cap.issued(), ty);
                if issued & !allowed != 0 {
                    push(
                        v,
                        "locked lock has gathered caps",
                        l,
                        id,
                        format!(
                            "client {client} holds {} in {s}, allowed {}",
                            lock_sm::caps::format_generic(issued),
                            lock_sm::caps::format_generic(allowed)
                        ),
                    );
                }
            }
        }
    }
}

/// An inode has one primary link (§2.4, §6.2): a dentry whose committed linkage is primary
/// for an inode is that inode's `parent` and vice versa, and likewise for the newest
/// (projected) linkage and `projected_parent`, so unlinks and renames in flight never leave an
/// inode in two places or none.
pub fn primary_links_match_parents(l: &Locker, v: &mut Vec<Violation>) {
    use crate::cache::Linkage;
    let c = l.cache();
    let bad = |v: &mut Vec<Violation>, what: String| {
        v.push(Violation { rule: "one primary link per inode", detail: what });
    };
    for d in c.dentry_ids() {
        let Some(dn) = c.dentry(d) else { continue };
        if let Linkage::Primary(i) = dn.linkage()
            && c.inode(i).is_none_or(|n| n.parent() != Some(d))
        {
            bad(v, format!("{} links {i:?} whose parent differs", c.object_name(ObjRef::Dentry(d))));
        }
        if let Linkage::Primary(i) = dn.projected_linkage()
            && c.inode(i).is_none_or(|n| n.projected_parent() != Some(d))
        {
            bad(
                v,
                format!("{} projects {i:?} whose projected parent differs", c.object_name(ObjRef::Dentry(d))),
            );
        }
    }
    for i in c.inode_ids() {
        let Some(n) = c.inode(i) else { continue };
        if let Some(d) = n.parent()
            && c.dentry(d).is_none_or(|dn| dn.linkage() != Linkage::Primary(i))
        {
            bad(v, format!("{}: parent dentry does not link it", c.object_name(ObjRef::Inode(i))));
        }
        if let Some(d) = n.projected_parent()
            && c.dentry(d).is_none_or(|dn| dn.projected_linkage() != Linkage::Primary(i))
        {
            bad(v, format!("{}: projected parent does not link it", c.object_name(ObjRef::Inode(i))));
        }
    }
}

/// Every pending projection belongs to a request that is waiting for its journal entry
/// (§6.2): projections are made right before the journal submit and popped when it is safe,
/// so nothing else may own one.
pub fn projections_belong_to_live_mutations(l: &Locker, v: &mut Vec<Violation>) {
    let c = l.cache();
    let committing = |r: ReqId| l.request(r).is_some_and(|m| matches!(m.phase(), Phase::Committing(_)));
    for i in c.inode_ids() {
        let Some(n) = c.inode(i) else { continue };
        for p in n.projections() {
            if !committing(p.by) {
                v.push(Violation {
                    rule: "projections belong to committing requests",
                    detail: format!("{} projected by {}", c.object_name(ObjRef::Inode(i)), p.by),
                });
            }
        }
    }
    for d in c.dentry_ids() {
        let Some(dn) = c.dentry(d) else { continue };
        for p in dn.projections() {
            if !committing(p.by) {
                v.push(Violation {
                    rule: "projections belong to committing requests",
                    detail: format!("{} projected by {}", c.object_name(ObjRef::Dentry(d)), p.by),
                });
            }
        }
    }
}

/// An inode is auth where the dirfrag holding its primary dentry is auth (authority.rs; a
/// cross-rank rename migrates the inode with its primary link, `locker::migrate`). Base
/// inodes and parentless copies have no dentry to follow. Directories are exempt: a renamed
/// directory's inode does not migrate yet.
pub fn inode_auth_follows_primary_dentry(l: &Locker, v: &mut Vec<Violation>) {
    let c = l.cache();
    for i in c.inode_ids() {
        let Some(n) = c.inode(i) else { continue };
        if !n.is_auth() || n.is_dir() || n.parent().is_none() {
            continue;
        }
        if c.derived_inode_auth(i) != Some(c.rank()) {
            v.push(Violation {
                rule: "an inode is auth with its primary dentry's dirfrag",
                detail: format!(
                    "rank {}: inode {} auth here, its primary dentry's dirfrag is rank {:?}'s",
                    c.rank(),
                    n.ino(),
                    c.derived_inode_auth(i)
                ),
            });
        }
    }
}

// ---- across ranks (§4.12) -------------------------------------------------------------------

/// Runs the cross-rank checks over every rank's Locker (`lockers[r]` is rank `r`), plus
/// `check_all` on each rank. `in_flight` is the number of messages sent and not yet
/// delivered: the replica-state agreement only holds once the protocol is quiet.
pub fn check_cluster(lockers: &[Locker], in_flight: usize) -> Result<(), Vec<Violation>> {
    let mut v = Vec::new();
    for l in lockers {
        if let Err(mut more) = check_all(l) {
            for x in &mut more {
                x.detail = format!("rank {}: {}", l.cache().rank(), x.detail);
            }
            v.extend(more);
        }
    }
    gather_sets_are_replicas(lockers, &mut v);
    replica_holds_permitted(lockers, &mut v);
    if in_flight == 0 {
        replicas_follow_stable_auth(lockers, &mut v);
    }
    if v.is_empty() { Ok(()) } else { Err(v) }
}

fn push_rank(v: &mut Vec<Violation>, rule: &'static str, l: &Locker, id: LockId, what: String) {
    let name = l.cache().object_name(id.obj);
    v.push(Violation { rule, detail: format!("rank {}: {name} {}: {what}", l.cache().rank(), id.ty) });
}

/// Only the auth gathers, and only from ranks that replicate the object (§4.1 `init_gather`).
pub fn gather_sets_are_replicas(lockers: &[Locker], v: &mut Vec<Violation>) {
    for l in lockers {
        for (id, lock) in every_lock(l) {
            if lock.gather_set().is_empty() {
                continue;
            }
            let replicas = l.cache().replicas_of(id.obj);
            if !lock.is_auth() || !lock.gather_set().is_subset(&replicas) {
                push_rank(
                    v,
                    "gather set is a subset of the replicas",
                    l,
                    id,
                    format!("gather {:?} replicas {replicas:?} auth {}", lock.gather_set(), lock.is_auth()),
                );
            }
        }
    }
}

/// A replica never holds a rdlock or wrlock its stable state forbids a replica (§1.1: on a
/// replica only ANY counts; AUTH and REQ never do). Transitional replica states may still be
/// draining holders of the previous state, which their gather waits for.
pub fn replica_holds_permitted(lockers: &[Locker], v: &mut Vec<Violation>) {
    for l in lockers {
        for (id, lock) in every_lock(l) {
            let m = lock.machine();
            if lock.is_auth() || m == Machine::Local || !lock.is_stable() {
                continue;
            }
            let row = m.row(lock.state());
            if lock.is_rdlocked() && !matches!(row.can_rdlock, Perm::Any | Perm::Xcl) {
                push_rank(
                    v,
                    "replica holds only what its state permits",
                    l,
                    id,
                    format!("rdlock in {}", lock.state()),
                );
            }
            if lock.is_wrlocked() && !matches!(row.can_wrlock, Perm::Any | Perm::Xcl) {
                push_rank(
                    v,
                    "replica holds only what its state permits",
                    l,
                    id,
                    format!("wrlock in {}", lock.state()),
                );
            }
        }
    }
}

/// Once an auth lock is stable and no message is in flight, every replica's copy is in the
/// `replica_state` of the auth's state (§1.1, §4.12), and its own gather is finished.
pub fn replicas_follow_stable_auth(lockers: &[Locker], v: &mut Vec<Violation>) {
    for auth in lockers {
        for (id, lock) in every_lock(auth) {
            if !lock.is_auth() || lock.machine() == Machine::Local || !lock.is_stable() {
                continue;
            }
            let Some(key) = auth.cache().lock_key(id) else { continue };
            let want = crate::authority::replica_state_of(lock.machine(), lock.state());
            for r in auth.cache().replicas_of(id.obj) {
                let Some(rl) = lockers.get(r as usize) else {
                    push_rank(
                        v,
                        "replicas follow a stable auth",
                        auth,
                        id,
                        format!("replica rank {r} does not exist"),
                    );
                    continue;
                };
                let Some(rid) = rl.cache().resolve_lock(&key) else {
                    push_rank(
                        v,
                        "replicas follow a stable auth",
                        auth,
                        id,
                        format!("rank {r} has no replica"),
                    );
                    continue;
                };
                let Ok(rlock) = rl.lock(rid) else { continue };
                if rlock.state() != want {
                    push_rank(
                        v,
                        "replicas follow a stable auth",
                        auth,
                        id,
                        format!("auth {} but rank {r} is {} (want {want})", lock.state(), rlock.state()),
                    );
                }
            }
        }
    }
}
