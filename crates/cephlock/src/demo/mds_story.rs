//! Story 2 of `cephlock demo`: two MDS ranks, three clients, run for real on the sans-I/O
//! Locker wired into an in-process cluster (`mds_locker::cluster::Cluster`).
//!
//! `/proj` is pinned to rank 1 (its dirfrag is a subtree root there) while its inode stays on
//! rank 0, the classic setup for the scatterlock protocol (mds spec §4.13). Each phase runs one
//! or two requests, delivering inter-rank messages and making journal entries safe in a fixed
//! order, and records what a reader should see: forwards to the auth rank (§5.1), discovers,
//! lock state changes on both ranks, cap revocations (§4.14), and the early (unsafe) reply
//! before the safe one (§4.18). The cluster invariants (`invariants::check_cluster`) are
//! checked after every delivered message.

use std::collections::BTreeMap;

use lock_sm::caps::{AUTH_SHARED, FILE_SHARED, format_caps};
use mds_locker::cluster::{Cluster, ClusterError, Output, Transport};
use mds_locker::cooperative::CooperativeClients;
use mds_locker::{CapOp, ClientRequest, Effect, Event, FilePath, Ino, LockerConfig, ObjRef, Op, ReqId};
use serde::Serialize;

/// A client of the story.
#[derive(Debug, Clone, Copy)]
struct Who {
    id: u64,
    name: &'static str,
}

const ALICE: Who = Who { id: 1, name: "alice" };
const BOB: Who = Who { id: 2, name: "bob" };
const CAROL: Who = Who { id: 3, name: "carol" };

fn who(id: u64) -> &'static str {
    [ALICE, BOB, CAROL].iter().find(|w| w.id == id).map_or("?", |w| w.name)
}

/// One request and what became of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Operation {
    client: &'static str,
    /// The rank the client sent it to.
    sent_to: u32,
    op: String,
    /// Ranks it was forwarded to, in order (§5.1: the auth must do it).
    forwarded_to: Vec<u32>,
    outcome: &'static str,
    errno: Option<i32>,
    ino: Option<String>,
    /// Whether an unsafe reply came before the journal entry was safe (§4.18).
    early_reply: bool,
    safe_reply: bool,
}

/// One phase of the story.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Phase {
    step: u32,
    title: &'static str,
    operations: Vec<Operation>,
    /// Lock state changes, "rank N lock object: FROM -> TO", in order.
    lock_transitions: Vec<String>,
    /// Cap revocations sent to clients, "client: caps -> caps on object".
    cap_revokes: Vec<String>,
    /// Inter-rank messages delivered during the phase, by kind.
    messages: BTreeMap<String, u64>,
    /// A rank restart during the phase (§6.6).
    restart: Option<Restart>,
}

/// What a rank's restart replayed and rejoined.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Restart {
    rank: u32,
    /// EUpdates re-applied from the journal.
    replayed_updates: usize,
    /// ESession events replayed.
    replayed_session_events: usize,
    /// Completed-request table entries rebuilt.
    completed_requests_restored: usize,
    /// Subtree roots the last ESubtreeMap named (the rank is auth for them again).
    subtree_roots: usize,
    /// Survivors' replicas re-registered with the restarted rank.
    rejoined_replicas: usize,
    /// Client requests re-sent to it (they had only an early reply).
    resent_requests: usize,
}

/// The whole story, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MdsStory {
    story: &'static str,
    complete: bool,
    ranks: u32,
    pinned: String,
    phases: Vec<Phase>,
    messages_total: u64,
    invariant_checks: u64,
    pub(crate) invariant_violations: u64,
    violations: Vec<String>,
    /// What the story does not show yet, if anything.
    missing: Option<&'static str>,
}

struct Driver {
    c: Cluster,
    step: u32,
    next_req: u64,
    checks: u64,
    violations: Vec<String>,
    delivered_before: BTreeMap<&'static str, u64>,
    /// Keep journal entries unsafe in the current phase (for `cephlock mds --hold`).
    hold: bool,
    /// alice, bob and carol, answering revokes at once.
    clients: CooperativeClients,
}

impl Driver {
    fn new() -> Driver {
        let cfg = LockerConfig { record_transitions: true, ..LockerConfig::default() };
        Driver {
            c: Cluster::new(2, cfg),
            step: 0,
            next_req: 1,
            checks: 0,
            violations: Vec::new(),
            delivered_before: BTreeMap::new(),
            clients: CooperativeClients::new(),
            hold: false,
        }
    }

    fn check(&mut self) {
        self.checks += 1;
        if let Err(v) =
            mds_locker::invariants::check_cluster(self.c.lockers(), self.c.transport().in_flight())
        {
            for x in v {
                self.violations.push(format!("step {}: {}: {}", self.step, x.rule, x.detail));
            }
        }
    }

    /// Delivers every message, checking invariants after each.
    fn deliver(&mut self) -> Result<(), ClusterError> {
        while self.c.step()? {
            self.check();
        }
        Ok(())
    }

    /// Runs one request to its safe reply: messages first (so an early reply shows up before
    /// anything is safe), then journal safety, with the client answering every cap revoke at
    /// once, as a cooperative client does.
    fn request(
        &mut self,
        rank: u32,
        w: Who,
        op: Op,
        label: String,
        out: &mut Vec<Output>,
    ) -> Result<Operation, ClusterError> {
        let reqid = ReqId(self.next_req);
        self.next_req += 1;
        if !self.c.rank(rank).sessions().any(|s| s.client() == w.id) {
            self.c.handle(rank, Event::SessionOpen { client: w.id })?;
        }
        self.c.handle(rank, Event::Request(ClientRequest { reqid, client: w.id, op }))?;
        self.check();
        self.pump(reqid, out)?;
        Ok(self.outcome(reqid, rank, w, label, out))
    }

    /// Delivers messages, answers revokes and makes journals safe (unless holding) until
    /// `reqid` has its safe reply.
    fn pump(&mut self, reqid: ReqId, out: &mut Vec<Output>) -> Result<(), ClusterError> {
        for _ in 0..64 {
            self.deliver()?;
            let mut batch = self.c.take_outputs();
            // The clients answer every cap revoke and return every dentry lease (§4.14, §4.15).
            let answers = self.clients.answers(&batch);
            let done =
                batch.iter().any(|o| matches!(&o.effect, Effect::Reply(r) if r.reqid == reqid && r.safe));
            out.append(&mut batch);
            let progressed = !answers.is_empty();
            for (r, ev) in answers {
                self.c.handle(r, ev)?;
                self.check();
            }
            if done {
                break;
            }
            if !progressed {
                if self.hold {
                    // `cephlock mds --hold`: stop with the journal entries unsafe, the request
                    // early-replied and its xlocks and wrlocks still held.
                    break;
                }
                for r in 0..self.c.len() as u32 {
                    self.c.make_safe(r)?;
                    self.check();
                }
            }
        }
        if !self.hold {
            // Leave nothing half-done behind the reply (cap grants, LOCKFLUSHED...).
            self.c.settle()?;
            self.check();
        }
        out.append(&mut self.c.take_outputs());
        Ok(())
    }

    /// What became of `reqid`, from the effects recorded in `out`.
    fn outcome(&self, reqid: ReqId, rank: u32, w: Who, label: String, out: &[Output]) -> Operation {
        let mut op = Operation {
            client: w.name,
            sent_to: rank,
            op: label,
            forwarded_to: Vec::new(),
            outcome: "pending",
            errno: None,
            ino: None,
            early_reply: false,
            safe_reply: false,
        };
        for o in out.iter() {
            match &o.effect {
                Effect::Forward { to, request } if request.reqid == reqid => op.forwarded_to.push(*to),
                Effect::Reply(r) if r.reqid == reqid && !r.safe => op.early_reply = true,
                Effect::Reply(r) if r.reqid == reqid && r.safe && !op.safe_reply => {
                    op.safe_reply = true;
                    match r.result {
                        Ok(ino) => {
                            op.outcome = "ok";
                            op.ino = ino.map(|i| i.to_string());
                        }
                        Err(e) => {
                            op.outcome = "error";
                            op.errno = Some(e.code());
                        }
                    }
                }
                _ => {}
            }
        }
        op
    }

    /// Starts the next phase's bookkeeping, holding its journal entries unsafe if `stop` says
    /// so; false if `stop` is already reached (the caller ends the story there).
    fn begin(&mut self, stop: Option<Stop>) -> bool {
        if stop.is_some_and(|s| s.phase <= self.step) {
            return false;
        }
        self.step += 1;
        self.hold = self.holds_at(stop);
        self.delivered_before = self.c.delivered().clone();
        for r in 0..self.c.len() as u32 {
            self.c.rank_mut(r).take_transitions();
        }
        true
    }

    /// Whether the current phase stops before its journal entries are safe (`--hold`).
    fn holds_at(&self, stop: Option<Stop>) -> bool {
        stop.is_some_and(|s| s.hold && s.phase == self.step)
    }

    /// Closes a phase: the transitions and messages since `begin`.
    fn end(&mut self, title: &'static str, operations: Vec<Operation>, out: &[Output]) -> Phase {
        // One line per lock: its states in order, "rank 1 dn /proj/final: SYNC > ... > SYNC".
        let mut chains: Vec<(String, Vec<&'static str>)> = Vec::new();
        for r in 0..self.c.len() as u32 {
            let ts = self.c.rank_mut(r).take_transitions();
            let cache = self.c.rank(r).cache();
            for t in ts {
                let obj = match t.lock.obj {
                    ObjRef::Inode(i) => {
                        cache.inode(i).map_or_else(|| "?".to_string(), |n| path_of(cache, n.ino()))
                    }
                    ObjRef::Dentry(d) => {
                        let dir = cache.dentry_dir_inode(d).and_then(|i| cache.inode(i)).map(|n| n.ino());
                        let name = cache.dentry(d).map(|x| x.name().to_string()).unwrap_or_default();
                        match dir.map(|i| path_of(cache, i)) {
                            Some(p) if p == "/" => format!("/{name}"),
                            Some(p) => format!("{p}/{name}"),
                            None => name,
                        }
                    }
                };
                let key = format!("rank {r} {} {}", t.lock.ty.name(), obj);
                match chains.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, states)) => states.push(t.to.name()),
                    None => chains.push((key, vec![t.from.name(), t.to.name()])),
                }
            }
        }
        let lock_transitions = chains.into_iter().map(|(k, s)| format!("{k}: {}", s.join(" > "))).collect();
        let cap_revokes = out
            .iter()
            .filter_map(|o| match &o.effect {
                Effect::Cap(m) if m.op == CapOp::Revoke => Some(format!(
                    "rank {} tells {}: keep only {} on {}",
                    o.rank,
                    who(m.client),
                    format_caps(m.caps),
                    path_of(self.c.rank(o.rank).cache(), m.ino)
                )),
                _ => None,
            })
            .collect();
        let mut messages = BTreeMap::new();
        for (k, v) in self.c.delivered() {
            let before = self.delivered_before.get(k).copied().unwrap_or(0);
            if *v > before {
                messages.insert((*k).to_string(), v - before);
            }
        }
        Phase { step: self.step, title, operations, lock_transitions, cap_revokes, messages, restart: None }
    }
}

/// The path of a cached inode on one rank, for narration ("/proj/report"); inodes whose
/// parents are not in that rank's cache show their number.
fn path_of(cache: &mds_locker::Cache, ino: Ino) -> String {
    let Some(mut cur) = cache.lookup_ino(ino) else { return ino.to_string() };
    let mut names = Vec::new();
    for _ in 0..64 {
        let Some(dn) = cache.inode(cur).and_then(|n| n.parent()) else { break };
        let Some(d) = cache.dentry(dn) else { break };
        names.push(d.name().to_string());
        match cache.dentry_dir_inode(dn) {
            Some(p) => cur = p,
            None => break,
        }
    }
    if cache.inode(cur).is_some_and(|n| n.ino() == Ino::ROOT) {
        names.reverse();
        format!("/{}", names.join("/"))
    } else {
        ino.to_string()
    }
}

fn path(p: &str) -> FilePath {
    FilePath::new(Ino::ROOT, p)
}

/// Where `cephlock mds` stops the story to show its live state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stop {
    /// The last phase to run (1-based).
    pub(crate) phase: u32,
    /// Stop that phase before its journal entries are safe.
    pub(crate) hold: bool,
}

/// Number of phases the story has.
pub(crate) const PHASES: u32 = 8;

/// Runs the story up to `stop` (all of it without one) and returns it with the live cluster.
pub(crate) fn run_until(stop: Option<Stop>) -> Result<(MdsStory, Cluster), ClusterError> {
    let mut d = Driver::new();
    let mut phases = Vec::new();

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let mkdir =
        d.request(0, ALICE, Op::Mkdir { path: path("proj"), mode: 0o755 }, "mkdir /proj".into(), &mut out)?;
    let proj_ino = d.c.rank(0).cache().lookup_dentry(d.c.rank(0).cache().root(), "proj").and_then(|dn| {
        d.c.rank(0).cache().primary_of(dn).and_then(|i| d.c.rank(0).cache().inode(i)).map(|n| n.ino())
    });
    let Some(proj_ino) = proj_ino else {
        return Err(ClusterError::Setup("mkdir /proj did not create it".into()));
    };
    d.c.pin_empty_dir(proj_ino, 1)?;
    d.check();
    phases.push(d.end("alice makes /proj on rank 0, then /proj is pinned to rank 1", vec![mkdir], &out));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let create = Op::Create { path: path("proj/report"), mode: 0o644, excl: true, file_mode: 3 };
    let op = d.request(0, ALICE, create, "create /proj/report (read-write)".into(), &mut out)?;
    phases.push(d.end(
        "alice creates /proj/report through rank 0: forwarded to rank 1, which asks rank 0 to scatter /proj",
        vec![op],
        &out,
    ));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let op = d.request(
        1,
        ALICE,
        Op::Mkdir { path: path("proj/data"), mode: 0o755 },
        "mkdir /proj/data".into(),
        &mut out,
    )?;
    phases.push(d.end("alice makes /proj/data on rank 1: /proj's locks are already in MIX", vec![op], &out));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let stat = Op::Getattr { path: path("proj/report"), mask: FILE_SHARED | AUTH_SHARED };
    let op = d.request(0, BOB, stat, "stat /proj/report (wants Fs As)".into(), &mut out)?;
    phases.push(d.end(
        "bob stats /proj/report on rank 0: discover, a rdlock request to rank 1, and alice's caps revoked",
        vec![op],
        &out,
    ));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let rename =
        Op::Rename { dest: FilePath::new(proj_ino, "final"), src: FilePath::new(proj_ino, "report") };
    let op = d.request(1, CAROL, rename, "rename /proj/report -> /proj/final".into(), &mut out)?;
    phases.push(d.end(
        "carol renames the file on rank 1: dentry xlocks, early reply, safe reply once journaled",
        vec![op],
        &out,
    ));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let op = d.request(0, BOB, Op::Readdir { path: path("proj") }, "readdir /proj".into(), &mut out)?;
    phases.push(d.end("bob lists /proj from rank 0", vec![op], &out));

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    // The create is early-replied, then rank 1 dies before its journal entry is safe.
    d.hold = true;
    let create = Op::Create { path: path("proj/draft"), mode: 0o644, excl: true, file_mode: 3 };
    let first =
        d.request(1, ALICE, create, "create /proj/draft (rank 1 dies before it is safe)".into(), &mut out)?;
    d.hold = d.holds_at(stop);
    let draft = ReqId(d.next_req - 1);
    d.c.crash(1)?;
    let report = d.c.restart(1)?;
    d.check();
    d.pump(draft, &mut out)?;
    let resent = d.outcome(draft, 1, ALICE, "create /proj/draft (re-sent after the restart)".into(), &out);
    let mut phase = d.end(
        "rank 1 crashes with alice's create unsafe, restarts, replays its journal and rejoins; alice re-sends",
        vec![first, resent],
        &out,
    );
    phase.restart = Some(Restart {
        rank: 1,
        replayed_updates: report.replay.updates,
        replayed_session_events: report.replay.session_events,
        completed_requests_restored: report.replay.completed_restored,
        subtree_roots: report.replay.subtree_roots.len(),
        rejoined_replicas: report.rejoined_replicas,
        resent_requests: report.resent,
    });
    phases.push(phase);

    if !d.begin(stop) {
        return Ok((d.story(phases), d.c));
    }
    let mut out = Vec::new();
    let a = d.request(
        0,
        BOB,
        Op::Getattr { path: path("proj/final"), mask: 0 },
        "stat /proj/final".into(),
        &mut out,
    )?;
    let b = d.request(
        0,
        BOB,
        Op::Getattr { path: path("proj/draft"), mask: 0 },
        "stat /proj/draft".into(),
        &mut out,
    )?;
    phases.push(d.end(
        "nothing acknowledged was lost: bob finds the renamed file and the re-sent create",
        vec![a, b],
        &out,
    ));

    Ok((d.story(phases), d.c))
}

impl Driver {
    fn story(&self, phases: Vec<Phase>) -> MdsStory {
        MdsStory {
            story: "mds",
            complete: true,
            ranks: self.c.len() as u32,
            pinned: "/proj -> rank 1".into(),
            phases,
            messages_total: self.c.delivered_total(),
            invariant_checks: self.checks,
            invariant_violations: self.violations.len() as u64,
            violations: self.violations.clone(),
            missing: None,
        }
    }
}

/// Narrates the story for a terminal.
pub(crate) fn narrate(s: &MdsStory, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "Story 2: two MDS ranks share a namespace (mds spec §4.12, §4.13, §4.18, §5.1)")?;
    writeln!(out, "  {} ranks; {}. Clients: alice, bob, carol.", s.ranks, s.pinned)?;
    for p in &s.phases {
        writeln!(out)?;
        writeln!(out, "  {}. {}", p.step, p.title)?;
        for o in &p.operations {
            let fwd = if o.forwarded_to.is_empty() {
                String::new()
            } else {
                format!(
                    ", forwarded to rank {}",
                    o.forwarded_to.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                )
            };
            let result = match (o.outcome, o.errno, &o.ino) {
                ("ok", _, Some(ino)) => format!("ok ({ino})"),
                ("ok", _, None) => "ok".to_string(),
                (_, Some(e), _) => format!("error {e}"),
                (other, _, _) => other.to_string(),
            };
            let replies = match (o.early_reply, o.safe_reply) {
                (true, true) => "early (unsafe) reply, then safe reply",
                (false, true) => "safe reply only",
                (true, false) => "early (unsafe) reply only, never made safe",
                _ => "no reply",
            };
            writeln!(
                out,
                "     {} sends `{}` to rank {}{}: {}; {}",
                o.client, o.op, o.sent_to, fwd, result, replies
            )?;
        }
        if let Some(r) = &p.restart {
            writeln!(
                out,
                "     rank {} replayed {} updates and {} session events, rebuilt {} completed requests, is auth for \
                 {} subtree(s) again, re-registered {} replicas; {} request(s) re-sent",
                r.rank,
                r.replayed_updates,
                r.replayed_session_events,
                r.completed_requests_restored,
                r.subtree_roots,
                r.rejoined_replicas,
                r.resent_requests
            )?;
        }
        if !p.messages.is_empty() {
            let m: Vec<String> = p.messages.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            writeln!(out, "     messages between ranks: {}", m.join(", "))?;
        }
        for r in &p.cap_revokes {
            writeln!(out, "     cap revoke: {r}")?;
        }
        for t in &p.lock_transitions {
            writeln!(out, "     {t}")?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {} messages between ranks; {} invariant checks, {} violations.",
        s.messages_total, s.invariant_checks, s.invariant_violations
    )?;
    for v in &s.violations {
        writeln!(out, "  VIOLATION: {v}")?;
    }
    if let Some(m) = s.missing {
        writeln!(out, "  Not shown yet: {m}.")?;
    }
    Ok(())
}
