//! `cephlock demo`: the first thing a newcomer runs.
//!
//! Story 1 ([`rbd`]) is the RBD seed scenario of rbd spec §7, run for real on the embedded
//! cluster: a VM keeps its disk's exclusive lock while the cloud controller snapshots and
//! resizes the disk through it, the lock moves when the controller writes, and a dead VM is
//! fenced. Story 2 ([`mds_story`]) runs two MDS ranks and three clients on the sans-I/O Locker:
//! forwards, discovers, the scatterlock protocol between ranks, cap revocations, early and safe
//! replies; then [`mds`] shows one lock's xlock walk through the simplelock table. Narration goes
//! to stdout; `--json` prints the same facts for scripts. Any violated invariant makes the
//! command fail after printing.

mod mds;
pub(crate) mod mds_story;
mod rbd;

use std::io::Write;

use clap::Args;

use crate::CliError;

/// Shown after `cephlock demo --help`.
const AFTER_HELP: &str = "\
EXAMPLES
  cephlock demo            narrate both stories
  cephlock demo --json     the same facts as one JSON document

JSON OUTPUT (--json)
  {\"backend\": \"embedded\", \"invariant_violations\": u64,
   \"stories\": [RBD, MDS]}
  RBD = {\"story\": \"rbd\", \"clock\": \"simulated\", \"image\": \"vm-disk\",
         \"clients\": {role: \"client.<gid>\"},
         \"phases\": [{\"step\", \"title\", \"t_s\" (simulated s), \"operations\": [{\"client\", \"op\",
                      \"outcome\": \"ok\"|\"refused\", \"errno\", \"error\"?}],
                     \"lock_owner\": role|null, \"lock_cookie\": \"auto <watch handle>\"|null,
                     \"notifies\": [\"OP from role\"]}],
         \"snapshot\": {\"name\", \"requested_by\", \"run_by\", \"forwarded\", \"exists\",
                      \"writes_done_before_request\", \"writes_done_at_completion\",
                      \"writes_in_snapshot\", \"contents_verified\", \"owner_kept_lock\"},
         \"resize\": {\"from\", \"to\", \"requested_by\", \"run_by\", \"forwarded\", \"owner_kept_lock\"},
         \"writes\": {\"accepted\", \"refused\"},
         \"dead_owner\": {\"watch_timeout_s\", \"nova_write_blocked_s\", \"blocklisted\": [addr],
                        \"qemu_blocklisted\", \"lock_broken\", \"late_write_refused\",
                        \"late_write_errno\"},
         \"invariant_checks\", \"invariant_violations\", \"violations\": [text]}
  MDS = {\"story\": \"mds\", \"complete\": bool, \"ranks\": 2, \"pinned\": text,
         \"phases\": [{\"step\", \"title\", \"operations\": [{\"client\", \"sent_to\" (rank), \"op\",
                      \"forwarded_to\": [rank], \"outcome\": \"ok\"|\"error\", \"errno\", \"ino\",
                      \"early_reply\", \"safe_reply\"}],
                     \"lock_transitions\": [text], \"cap_revokes\": [text], \"messages\": {kind: n}}],
         \"messages_total\", \"invariant_checks\", \"invariant_violations\", \"violations\": [text],
         \"missing\": text|null, \"xlock_walk\": [{\"state\", \"other_client_can_rdlock\",
         \"xlocker_can_rdlock\"}]}

NOT YET
  --data-dir (keep the MDS journals for `cephlock journal`) and the rank restart of the MDS
  story arrive with journaled ranks in the cluster.";

/// Arguments of `cephlock demo`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct DemoArgs {
    /// Print a machine-readable summary instead of the narration.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let rbd = rbd::run()?;
    let mds = mds_story::run().map_err(|e| CliError::Failed(format!("demo: MDS story: {e}")))?;
    let violations = rbd.invariant_violations + mds.invariant_violations as usize;
    if args.json {
        let mut mds_json = serde_json::to_value(&mds).map_err(|e| CliError::Failed(format!("demo: {e}")))?;
        mds_json["xlock_walk"] = mds::json();
        let summary = serde_json::json!({
            "backend": "embedded",
            "invariant_violations": violations,
            "stories": [
                serde_json::to_value(&rbd).map_err(|e| CliError::Failed(format!("demo: {e}")))?,
                mds_json,
            ],
        });
        writeln!(out, "{summary:#}")?;
    } else {
        writeln!(out, "cephlock demo")?;
        writeln!(out, "=============")?;
        writeln!(out)?;
        rbd::narrate(&rbd, out)?;
        writeln!(out)?;
        mds_story::narrate(&mds, out)?;
        writeln!(out)?;
        mds::narrate(out)?;
    }
    if violations > 0 {
        return Err(CliError::Failed(format!("demo: {violations} invariant violation(s), listed above")));
    }
    Ok(())
}
