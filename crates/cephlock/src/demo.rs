//! `cephlock demo`: the first thing a newcomer runs.
//!
//! The full demo (a VM writing an RBD image while a controller snapshots it, and MDS ranks
//! serving metadata) needs the RBD and MDS crates, which have not landed yet. Until they do,
//! the demo shows the part that exists, the lock state machines themselves, and says plainly
//! what is still to come rather than pretending.

use std::io::Write;

use clap::Args;
use lock_sm::predicates::{CapsWho, LockCtx, can_rdlock, can_xlock, gcaps_allowed};
use lock_sm::{LockState, LockType};

use crate::CliError;

/// Arguments of `cephlock demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Print a machine-readable summary instead of the narration.
    #[arg(long)]
    json: bool,
}

/// One walk through a lock's life, each step a state and what it permits a client.
struct Step {
    state: LockState,
    story: &'static str,
}

/// An xlock on an inode's authlock taken from SYNC, as `chmod` does (mds spec §4.7 and §8 fact
/// 38): the walk the Locker takes when nothing needs gathering.
const XLOCK_WALK: &[Step] = &[
    Step { state: LockState::Sync, story: "everyone may read the mode; clients may cache As" },
    Step { state: LockState::SyncLock, story: "chmod arrives: stop new readers, revoke As" },
    Step { state: LockState::Lock, story: "only the auth MDS may read; nobody holds caps" },
    Step { state: LockState::LockXlock, story: "reserve the xlock for this request" },
    Step { state: LockState::PreXlock, story: "the reserving request may take the xlock" },
    Step { state: LockState::Xlock, story: "chmod holds the xlock and projects the new mode" },
    Step { state: LockState::XlockDone, story: "early reply: the same client may read again" },
    Step { state: LockState::Sync, story: "journal safe, xlock dropped: back to shared reads" },
];

pub(crate) fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let m = LockType::IAuth.machine();
    let chmod_client = Some(7);
    let other_client = Some(8);
    if args.json {
        let steps: Vec<serde_json::Value> = XLOCK_WALK
            .iter()
            .map(|step| {
                let ctx = LockCtx {
                    is_auth: true,
                    xlock_by_client: xlocker(step.state, chmod_client),
                    excl_client: None,
                };
                serde_json::json!({
                    "state": step.state.name(),
                    "other_client_can_rdlock": can_rdlock(m, step.state, &ctx, other_client),
                    "xlocker_can_rdlock": can_rdlock(m, step.state, &ctx, chmod_client),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "available": ["sm export", "sm show", "sm diagram"],
            "coming": ["rbd story: qemu writes while nova-compute snapshots and resizes",
                       "mds story: two ranks, path locks, caps, journal replay"],
            "xlock_walk": steps,
        });
        writeln!(out, "{summary:#}")?;
        return Ok(());
    }

    writeln!(out, "cephlock demo")?;
    writeln!(out, "=============")?;
    writeln!(out)?;
    writeln!(out, "What exists today: Ceph's four MDS lock state machines as data (crate lock-sm).")?;
    writeln!(out, "Here is the walk an inode's authlock takes when `chmod` xlocks it on the auth")?;
    writeln!(out, "MDS with no replicas and no caps to revoke (mds spec §4.7, §8 fact 38).")?;
    writeln!(out, "Client 7 runs chmod; client 8 only wants to stat.")?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<11} {:>9} {:>9} {:>9} {:>7}  what happens",
        "state", "c8 rdlock", "c7 rdlock", "c7 xlock", "c8 caps"
    )?;
    for step in XLOCK_WALK {
        let ctx =
            LockCtx { is_auth: true, xlock_by_client: xlocker(step.state, chmod_client), excl_client: None };
        let any = gcaps_allowed(m, step.state, step.state, CapsWho::Any, true, ctx.xlock_by_client.is_some());
        writeln!(
            out,
            "  {:<11} {:>9} {:>9} {:>9} {:>7}  {}",
            step.state.name(),
            yes_no(can_rdlock(m, step.state, &ctx, other_client)),
            yes_no(can_rdlock(m, step.state, &ctx, chmod_client)),
            yes_no(can_xlock(m, step.state, &ctx, chmod_client)),
            lock_sm::caps::format_caps(lock_sm::caps::shift_caps(any, LockType::IAuth)),
            step.story,
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Explore the tables yourself:")?;
    writeln!(out, "  cephlock sm show filelock")?;
    writeln!(out, "  cephlock sm export --format csv")?;
    writeln!(out, "  cephlock sm diagram scatterlock --format mermaid")?;
    writeln!(out)?;
    writeln!(out, "Not built yet (each is an open issue, and this demo will grow into them):")?;
    writeln!(out, "  - RBD: a 'qemu' client writes an image while 'nova-compute' snapshots and")?;
    writeln!(out, "    resizes it through the lock owner; then the lock moves, and a dead owner")?;
    writeln!(out, "    is blocklisted and its lock broken.")?;
    writeln!(out, "  - MDS: two ranks and several clients run mkdir/create/rename/stat, with")?;
    writeln!(out, "    rd/wr/xlocks, cap revocations, early vs safe replies and journal replay.")?;
    Ok(())
}

/// Who holds the xlock in `state` during the walk: the chmod client from XLOCK onwards.
fn xlocker(state: LockState, client: Option<u64>) -> Option<u64> {
    matches!(state, LockState::Xlock | LockState::XlockDone).then_some(client).flatten()
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

// The walk must stay a real path through the simplelock table, or the demo would teach a lie.
#[cfg(test)]
mod tests {
    use super::*;
    use lock_sm::Machine;

    #[test]
    fn walk_follows_the_simplelock_table() {
        assert_eq!(LockType::IAuth.machine(), Machine::Simple);
        for pair in XLOCK_WALK.windows(2) {
            let (from, to) = (pair[0].state, pair[1].state);
            let m = Machine::Simple;
            assert!(m.has_row(from) && m.has_row(to), "{from} or {to} has no simplelock row");
            let by_next = m.row(from).next == to;
            let by_initiator = lock_sm::transitions::initiated_edges(m).any(|e| e.from == from && e.to == to);
            // XLOCKDONE heads to SYNC once the xlock is released (§1.3: next = SYNC).
            assert!(by_next || by_initiator, "{from} -> {to} is not an edge of the simplelock");
        }
    }
}
