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

KEEPING THE JOURNALS
  cephlock demo --data-dir /tmp/demo-journals
  cephlock journal --dir /tmp/demo-journals --rank 1 event get list
  (MDS: \"data_dir\": {\"path\", \"events\"} in the JSON when given)";

/// Arguments of `cephlock demo`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct DemoArgs {
    /// Print a machine-readable summary instead of the narration.
    #[arg(long)]
    json: bool,
    /// Keep the MDS ranks' journals in DIR (created if missing; must not already hold
    /// journals), for inspection with `cephlock journal --dir DIR --rank N`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
}

/// Writes each rank's durable journal (the events the cluster kept for it, in log order)
/// through `mds-journal` onto a local-directory device, so `cephlock journal` can read them.
fn keep_journals(cluster: &mds_locker::cluster::Cluster, dir: &std::path::Path) -> Result<usize, CliError> {
    use mds_journal::{DirDevice, JournalConfig, MdLog};
    std::fs::create_dir_all(dir).map_err(|e| CliError::Failed(format!("demo: {}: {e}", dir.display())))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("demo: {e}")))?;
    let mut total = 0;
    for r in 0..cluster.len() as u32 {
        let events =
            cluster.journal_events(r).map_err(|e| CliError::Failed(format!("demo: rank {r}: {e}")))?;
        let dev = std::sync::Arc::new(
            DirDevice::open(dir).map_err(|e| CliError::Failed(format!("demo: {}: {e}", dir.display())))?,
        );
        rt.block_on(async {
            let log = MdLog::create(dev, JournalConfig::for_rank(r)).await?;
            for ev in events {
                log.submit(ev)?;
                total += 1;
            }
            log.wait_for_safe().await?;
            log.close().await
        })
        .map_err(|e| CliError::Failed(format!("demo: rank {r}'s journal in {}: {e}", dir.display())))?;
    }
    Ok(total)
}

pub(crate) fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let rbd = rbd::run()?;
    let (mds, cluster) =
        mds_story::run_until(None).map_err(|e| CliError::Failed(format!("demo: MDS story: {e}")))?;
    let kept = match &args.data_dir {
        Some(dir) => Some((dir.clone(), keep_journals(&cluster, dir)?)),
        None => None,
    };
    let violations = rbd.invariant_violations + mds.invariant_violations as usize;
    if args.json {
        let mut mds_json = serde_json::to_value(&mds).map_err(|e| CliError::Failed(format!("demo: {e}")))?;
        mds_json["xlock_walk"] = mds::json();
        if let Some((dir, n)) = &kept {
            mds_json["data_dir"] = serde_json::json!({ "path": dir.display().to_string(), "events": n });
        }
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
        if let Some((dir, n)) = &kept {
            writeln!(out, "  The ranks' journals ({n} events) are in {}; look inside with", dir.display())?;
            writeln!(out, "    cephlock journal --dir {} --rank 1 event get summary", dir.display())?;
        }
        writeln!(out)?;
        mds::narrate(out)?;
    }
    if violations > 0 {
        return Err(CliError::Failed(format!("demo: {violations} invariant violation(s), listed above")));
    }
    Ok(())
}
