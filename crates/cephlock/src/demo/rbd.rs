//! Story 1 of `cephlock demo`: the RBD seed scenario of rbd spec §7, end to end.
//!
//! A VM ("qemu") writes its disk image while the cloud controller ("nova-compute") snapshots and
//! resizes it. Both requests are forwarded to qemu, which owns the exclusive lock and runs them
//! itself (§5.1, §5.6); then nova-compute writes and the lock moves cooperatively (§3.5), and
//! back; then qemu dies, its watch times out, nova-compute blocklists it and breaks its lock
//! (§1.6.3, §2.13), and qemu's late write is refused.
//!
//! Everything runs on the embedded cluster with a simulated clock and paused tokio time on one
//! thread: "let every task finish what it can" is exact (a tokio sleep returns only once all
//! tasks are idle) and the 30 s watch timeout passes in microseconds, so the run is the same
//! every time and the narration can be tested.
//!
//! The facts shown are observed, not asserted by the script: the lock owner is read from the
//! cls lock on the header (as `rbd lock ls` does), and who sent which notify is logged by a
//! fourth client that watches the header (as `rbd watch` does). Every invariant the story relies
//! on is checked as it goes and counted; a violation is reported, not hidden.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rados_store::{
    Cluster, ClusterConfig, Gid, IoCtx, NotifyEvent, SimClock, UTime, WatchCtx, cls_lock_client,
};
use rbd_exclusive_lock::notify::{NotifyMessage, NotifyOp};
use rbd_ops::{CreateOptions, Image, OpenOptions, RbdError, admin};
use serde::Serialize;

use crate::CliError;

const POOL: &str = "rbd";
const IMAGE: &str = "vm-disk";
const SNAP: &str = "before-upgrade";
const GIB: u64 = 1 << 30;
const SIZE: u64 = 10 * GIB;
const NEW_SIZE: u64 = 20 * GIB;
/// qemu's I/O size.
const BLOCK: u64 = 4096;
/// Blocks qemu writes before the snapshot, and again while nova-compute takes it.
const BOOT_BLOCKS: u64 = 16;
const BUSY_BLOCKS: u64 = 16;
/// The part of the disk the story writes; the model of its contents covers exactly this much.
const REGION: u64 = 64 * BLOCK;
/// Give up driving the clock after this long: the watch timeout is 30 s.
const CLOCK_LIMIT_S: u64 = 300;

/// What `cephlock demo --json` reports for this story.
#[derive(Debug, Serialize)]
pub(crate) struct RbdReport {
    story: &'static str,
    backend: &'static str,
    clock: &'static str,
    image: &'static str,
    /// Role name → `client.<gid>`.
    clients: BTreeMap<&'static str, String>,
    phases: Vec<Phase>,
    snapshot: SnapshotReport,
    resize: ResizeReport,
    writes: WriteCounts,
    dead_owner: DeadOwnerReport,
    invariant_checks: u64,
    pub(crate) invariant_violations: usize,
    violations: Vec<String>,
}

/// One step of the story and the lock as it stood afterwards.
#[derive(Debug, Serialize)]
struct Phase {
    step: usize,
    title: String,
    /// Simulated seconds since the story began.
    t_s: f64,
    operations: Vec<Operation>,
    /// The role holding the cls lock `rbd_lock` on the header afterwards (None: unlocked).
    lock_owner: Option<String>,
    lock_cookie: Option<String>,
    /// The notifies the observer saw during the step, as "OP from role".
    notifies: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Operation {
    client: &'static str,
    op: String,
    /// "ok" or "refused".
    outcome: &'static str,
    /// The positive errno when refused.
    errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct SnapshotReport {
    name: &'static str,
    requested_by: &'static str,
    /// The role that sent ASYNC_COMPLETE for nova-compute's request, i.e. the one that ran it.
    run_by: Option<String>,
    forwarded: bool,
    exists: bool,
    /// qemu's writes that completed before nova-compute asked / when the snapshot returned, and
    /// how many of them the snapshot holds (it must be a prefix of qemu's write sequence).
    writes_done_before_request: u64,
    writes_done_at_completion: u64,
    writes_in_snapshot: Option<u64>,
    contents_verified: bool,
    owner_kept_lock: bool,
}

#[derive(Debug, Default, Serialize)]
struct ResizeReport {
    from: u64,
    to: u64,
    requested_by: &'static str,
    run_by: Option<String>,
    forwarded: bool,
    owner_kept_lock: bool,
}

#[derive(Debug, Default, Serialize)]
struct WriteCounts {
    accepted: u64,
    refused: u64,
}

#[derive(Debug, Default, Serialize)]
struct DeadOwnerReport {
    watch_timeout_s: f64,
    /// Simulated seconds nova-compute's write waited after qemu hung.
    nova_write_blocked_s: f64,
    blocklisted: Vec<String>,
    qemu_blocklisted: bool,
    lock_broken: bool,
    late_write_refused: bool,
    late_write_errno: Option<i32>,
}

/// qemu's background writes during the snapshot: block number and result, in completion order.
type WriterLog = Arc<Mutex<Vec<(u64, Result<(), RbdError>)>>>;

/// A notify as the observer saw it.
#[derive(Debug, Clone)]
struct Seen {
    from: Gid,
    op: &'static str,
}

/// The observer's watch: records every notify on the header and acks it at once with an empty
/// payload, as any idle watcher does (a watcher that never acks would stall every notify).
struct Observer {
    io: IoCtx,
    oid: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl WatchCtx for Observer {
    fn handle_notify(&self, ev: NotifyEvent) {
        let op = match NotifyMessage::from_bytes(&ev.payload) {
            Ok(m) => m.op().map_or("UNKNOWN", op_name),
            Err(_) => "UNDECODABLE",
        };
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(Seen { from: ev.notifier_gid, op });
        let (io, oid) = (self.io.clone(), self.oid.clone());
        tokio::spawn(async move {
            let _ = io.notify_ack(&oid, ev.notify_id, ev.handle, b"").await;
        });
    }

    fn handle_error(&self, _handle: u64, _error: rados_store::Error) {}
}

/// librbd's names for the notify ops (rbd §3.2).
fn op_name(op: NotifyOp) -> &'static str {
    match op {
        NotifyOp::AcquiredLock => "ACQUIRED_LOCK",
        NotifyOp::ReleasedLock => "RELEASED_LOCK",
        NotifyOp::RequestLock => "REQUEST_LOCK",
        NotifyOp::HeaderUpdate => "HEADER_UPDATE",
        NotifyOp::AsyncProgress => "ASYNC_PROGRESS",
        NotifyOp::AsyncComplete => "ASYNC_COMPLETE",
        NotifyOp::Flatten => "FLATTEN",
        NotifyOp::Resize => "RESIZE",
        NotifyOp::SnapCreate => "SNAP_CREATE",
        NotifyOp::SnapRemove => "SNAP_REMOVE",
        NotifyOp::RebuildObjectMap => "REBUILD_OBJECT_MAP",
        NotifyOp::SnapRename => "SNAP_RENAME",
        NotifyOp::SnapProtect => "SNAP_PROTECT",
        NotifyOp::SnapUnprotect => "SNAP_UNPROTECT",
        NotifyOp::Rename => "RENAME",
        NotifyOp::UpdateFeatures => "UPDATE_FEATURES",
        NotifyOp::Migrate => "MIGRATE",
        NotifyOp::Sparsify => "SPARSIFY",
        NotifyOp::Quiesce => "QUIESCE",
        NotifyOp::Unquiesce => "UNQUIESCE",
        NotifyOp::MetadataUpdate => "METADATA_UPDATE",
    }
}

/// The bytes qemu (tag 1) or nova-compute (tag 2) writes as its `i`-th block.
fn block_data(tag: u8, i: u64) -> Vec<u8> {
    (0..BLOCK).map(|j| tag.wrapping_mul(97) ^ (i as u8).wrapping_mul(31) ^ (j as u8) | 1).collect()
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("demo (rbd): {what}: {e}"))
}

/// Lets every task run until all are idle. Tokio time is paused and nothing in the libraries
/// uses tokio's clock, so this sleep completes exactly when nothing else can make progress.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs the story on a fresh embedded cluster and returns what happened.
pub(crate) fn run() -> Result<RbdReport, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| failed("starting the runtime", e))?;
    rt.block_on(Story::play())
}

/// The state of one run: the cluster, the roles' handles, and what has been seen and checked.
struct Story {
    clock: Arc<SimClock>,
    cluster: Cluster,
    t0: UTime,
    names: BTreeMap<Gid, &'static str>,
    /// The `rbd` CLI's pool context: it creates nothing, only lists locks and opens snapshots.
    cli: IoCtx,
    header: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    seen_upto: usize,
    phases: Vec<Phase>,
    checks: u64,
    violations: Vec<String>,
    writes: WriteCounts,
    /// What the first REGION bytes of the image must hold.
    model: Vec<u8>,
}

impl Story {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violations.push(what());
        }
    }

    fn name(&self, gid: Gid) -> String {
        self.names.get(&gid).map_or_else(|| format!("client.{gid}"), |n| (*n).to_owned())
    }

    fn sim_seconds(&self) -> f64 {
        let now = self.clock.now().as_duration();
        now.saturating_sub(self.t0.as_duration()).as_secs_f64()
    }

    /// The cls lock on the header, as `rbd lock ls` shows it: (owner gid, cookie) per locker.
    async fn lockers(&self) -> Result<Vec<(Gid, String)>, CliError> {
        let info = cls_lock_client::get_lock_info(&self.cli, &self.header, "rbd_lock")
            .await
            .map_err(|e| failed("reading the lock", e))?;
        Ok(info.lockers.keys().map(|id| (id.entity.num as Gid, id.cookie.clone())).collect())
    }

    /// Notifies seen since the last call.
    fn take_seen(&mut self) -> Vec<Seen> {
        let log = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let new = log[self.seen_upto..].to_vec();
        self.seen_upto = log.len();
        new
    }

    /// Closes a step: settles, reads the lock, checks "one owner at most, and it is the handle
    /// that believes it owns the lock" over the live handles, and records the step.
    async fn end_step(
        &mut self,
        title: &str,
        operations: Vec<Operation>,
        live: &[(&'static str, &Image)],
    ) -> Result<Vec<Seen>, CliError> {
        settle().await;
        let lockers = self.lockers().await?;
        self.check(lockers.len() <= 1, || format!("{title}: {} cls lockers on the header", lockers.len()));
        let mut believers = Vec::new();
        for (role, img) in live {
            if img.exclusive_lock().is_some_and(|l| l.is_lock_owner()) {
                believers.push((*role, gid_of(img), cookie_of(img)));
            }
        }
        self.check(believers.len() <= 1, || {
            format!("{title}: two handles think they own the lock: {believers:?}")
        });
        if let Some((role, gid, cookie)) = believers.first() {
            let matches = lockers.first().is_some_and(|(g, c)| g == gid && c == cookie);
            self.check(matches, || {
                format!("{title}: {role} thinks it owns the lock, the header says {lockers:?}")
            });
        }
        let seen = self.take_seen();
        let notifies = seen.iter().map(|s| format!("{} from {}", s.op, self.name(s.from))).collect();
        let (owner, cookie) = match lockers.first() {
            Some((g, c)) => (Some(self.name(*g)), Some(c.clone())),
            None => (None, None),
        };
        self.phases.push(Phase {
            step: self.phases.len() + 1,
            title: title.to_owned(),
            t_s: self.sim_seconds(),
            operations,
            lock_owner: owner,
            lock_cookie: cookie,
            notifies,
        });
        Ok(seen)
    }

    /// One write by `role`, counted and, when accepted, applied to the model.
    async fn write(&mut self, role: &'static str, img: &Image, off: u64, data: &[u8]) -> Operation {
        let r = img.write_at(off, data).await;
        self.record_write(role, off, data, r.map(drop))
    }

    fn record_write(
        &mut self,
        role: &'static str,
        off: u64,
        data: &[u8],
        r: Result<(), RbdError>,
    ) -> Operation {
        let op = format!("write {} KiB at {} KiB", data.len() / 1024, off / 1024);
        match r {
            Ok(()) => {
                self.writes.accepted += 1;
                let (o, n) = (off as usize, data.len());
                if off + data.len() as u64 <= REGION {
                    self.model[o..o + n].copy_from_slice(data);
                }
                Operation { client: role, op, outcome: "ok", errno: None, error: None }
            }
            Err(e) => {
                self.writes.refused += 1;
                Operation {
                    client: role,
                    op,
                    outcome: "refused",
                    errno: Some(e.errno()),
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// Reads the region back through `img` and checks it against the model.
    async fn verify_head(&mut self, what: &str, img: &Image) -> Result<(), CliError> {
        let data = img.read_at(0, REGION).await.map_err(|e| failed("reading back", e))?;
        let first_bad = data.iter().zip(&self.model).position(|(a, b)| a != b);
        self.check(first_bad.is_none(), || {
            format!("{what}: image differs from what was written at byte {first_bad:?}")
        });
        Ok(())
    }

    async fn play() -> Result<RbdReport, CliError> {
        let clock = Arc::new(SimClock::new());
        let config = ClusterConfig::default();
        let watch_timeout = config.watch_timeout;
        let cluster = Cluster::with_clock(clock.clone(), config);
        cluster.create_pool(POOL).map_err(|e| failed("creating the pool", e))?;
        let connect = |c: &Cluster| c.connect().ioctx(POOL, "").map_err(|e| failed("connecting", e));
        let qemu_io = connect(&cluster)?;
        let nova_io = connect(&cluster)?;
        let cli = connect(&cluster)?;
        let mut names = BTreeMap::new();
        names.insert(qemu_io.client_gid(), "qemu");
        names.insert(nova_io.client_gid(), "nova-compute");
        names.insert(cli.client_gid(), "rbd-cli");
        let mut story = Story {
            t0: clock.now(),
            clock,
            cluster,
            names,
            cli,
            header: String::new(),
            seen: Arc::new(Mutex::new(Vec::new())),
            seen_upto: 0,
            phases: Vec::new(),
            checks: 0,
            violations: Vec::new(),
            writes: WriteCounts::default(),
            model: vec![0; REGION as usize],
        };

        // 1. qemu creates the image and writes its first blocks: the first write takes the lock
        //    (§7.1, automatic policy).
        admin::create(&qemu_io, IMAGE, SIZE, &CreateOptions::default())
            .await
            .map_err(|e| failed("creating the image", e))?;
        let qemu =
            Image::open(&qemu_io, IMAGE, OpenOptions::default()).await.map_err(|e| failed("qemu open", e))?;
        story.header = admin::header_oid(qemu.id());
        let observer = Observer { io: story.cli.clone(), oid: story.header.clone(), log: story.seen.clone() };
        story
            .cli
            .watch(&story.header, Arc::new(observer))
            .await
            .map_err(|e| failed("watching the header", e))?;
        let mut ops = vec![Operation {
            client: "qemu",
            op: format!("create {IMAGE} ({} GiB)", SIZE / GIB),
            outcome: "ok",
            errno: None,
            error: None,
        }];
        for i in 0..BOOT_BLOCKS {
            ops.push(story.write("qemu", &qemu, i * BLOCK, &block_data(1, i)).await);
        }
        let ops = merge_writes(ops);
        story.end_step("qemu creates vm-disk and writes 64 KiB", ops, &[("qemu", &qemu)]).await?;
        let qemu_cookie = cookie_of(&qemu);
        let first_owner = story.phases[0].lock_cookie.clone();
        story.check(first_owner.as_deref() == Some(&qemu_cookie), || {
            format!("qemu's first write did not take the lock: {first_owner:?}")
        });

        // 2. nova-compute opens the image read-write: it watches the header, takes no lock (§7.2).
        let nova =
            Image::open(&nova_io, IMAGE, OpenOptions::default()).await.map_err(|e| failed("nova open", e))?;
        let open_op = Operation {
            client: "nova-compute",
            op: format!("open {IMAGE}"),
            outcome: "ok",
            errno: None,
            error: None,
        };
        story
            .end_step(
                "nova-compute opens vm-disk",
                vec![open_op],
                &[("qemu", &qemu), ("nova-compute", &nova)],
            )
            .await?;

        // 3. nova-compute snapshots while qemu keeps writing (§7.3): forwarded to qemu.
        let snapshot = story.snapshot_step(&qemu, &nova, &qemu_cookie).await?;

        // 4. nova-compute grows the disk (§7.4): forwarded too.
        let resize = story.resize_step(&qemu, &nova, &qemu_cookie).await?;

        // 5. nova-compute writes: REQUEST_LOCK, qemu releases, nova-compute acquires (§7.5 row 4).
        let op = story.write("nova-compute", &nova, 40 * BLOCK, &block_data(2, 0)).await;
        story
            .end_step(
                "nova-compute writes 4 KiB: the lock moves to it",
                vec![op],
                &[("qemu", &qemu), ("nova-compute", &nova)],
            )
            .await?;
        let nova_cookie = cookie_of(&nova);
        let owner = story.phases.last().and_then(|p| p.lock_cookie.clone());
        story.check(owner.as_deref() == Some(&nova_cookie), || {
            format!("after nova's write the lock is {owner:?}")
        });
        story.verify_head("after nova-compute's write, read by qemu", &qemu).await?;

        // 6. qemu writes again and takes the lock back, with the same cookie as before.
        let op = story.write("qemu", &qemu, 41 * BLOCK, &block_data(1, 41)).await;
        story
            .end_step(
                "qemu writes again: the lock moves back",
                vec![op],
                &[("qemu", &qemu), ("nova-compute", &nova)],
            )
            .await?;
        let owner = story.phases.last().and_then(|p| p.lock_cookie.clone());
        story.check(owner.as_deref() == Some(&qemu_cookie), || {
            format!("after qemu's write the lock is {owner:?}")
        });
        story.verify_head("after qemu's write, read by nova-compute", &nova).await?;

        // 7–9. qemu dies; nova-compute's next write waits out qemu's watch, then fences it.
        let dead_owner = story.dead_owner_steps(&qemu, &nova, watch_timeout).await?;

        // The data at the end: nova's view of the head equals every accepted write.
        story.verify_head("at the end, read by nova-compute", &nova).await?;
        nova.close().await;

        let clients = story.names.iter().map(|(g, n)| (*n, format!("client.{g}"))).collect();
        Ok(RbdReport {
            story: "rbd",
            backend: "embedded",
            clock: "simulated",
            image: IMAGE,
            clients,
            phases: story.phases,
            snapshot,
            resize,
            writes: story.writes,
            dead_owner,
            invariant_checks: story.checks,
            invariant_violations: story.violations.len(),
            violations: story.violations,
        })
    }

    async fn snapshot_step(
        &mut self,
        qemu: &Image,
        nova: &Image,
        qemu_cookie: &str,
    ) -> Result<SnapshotReport, CliError> {
        let done: WriterLog = Arc::default();
        let writer = {
            let (qemu, done) = (qemu.clone(), done.clone());
            tokio::spawn(async move {
                for i in BOOT_BLOCKS..BOOT_BLOCKS + BUSY_BLOCKS {
                    let r = qemu.write_at(i * BLOCK, &block_data(1, i)).await.map(drop);
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                    tokio::task::yield_now().await;
                }
            })
        };
        // Let qemu get a few writes in first, as a running VM would have.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let count = |d: &WriterLog| d.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let before = BOOT_BLOCKS + count(&done);
        let r = nova.snap_create(SNAP).await;
        let at_completion = BOOT_BLOCKS + count(&done);
        writer.await.map_err(|e| failed("qemu's writer task", e))?;
        let mut ops = vec![op_result("nova-compute", format!("snap_create {IMAGE}@{SNAP}"), &r)];
        let finished = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
        let mut writes = Vec::new();
        for (i, r) in finished {
            writes.push(self.record_write("qemu", i * BLOCK, &block_data(1, i), r));
        }
        ops.extend(merge_writes(writes));
        let seen = self
            .end_step(
                "nova-compute snapshots vm-disk while qemu keeps writing",
                ops,
                &[("qemu", qemu), ("nova-compute", nova)],
            )
            .await?;
        let (forwarded, run_by) = self.forwarded_and_run_by(&seen, nova, "SNAP_CREATE", "snapshot");
        let owner_kept_lock = self.owner_kept(qemu, qemu_cookie, &seen, "snapshot");
        self.check(r.is_ok(), || format!("snap_create failed: {r:?}"));

        // The snapshot exists (nova-compute sees it after the HEADER_UPDATE refresh) ...
        let info = nova.info().await.map_err(|e| failed("image info", e))?;
        let exists = info.snaps.iter().any(|s| s.name == SNAP);
        self.check(exists, || format!("snapshot {SNAP} is not in the header: {:?}", info.snaps));
        // ... and holds exactly qemu's writes up to some cut between request and completion.
        let snap_img = Image::open(
            &self.cli,
            IMAGE,
            OpenOptions { snap_name: Some(SNAP.into()), read_only: true, ..Default::default() },
        )
        .await
        .map_err(|e| failed("opening the snapshot", e))?;
        let data = snap_img.read_at(0, REGION).await.map_err(|e| failed("reading the snapshot", e))?;
        snap_img.close().await;
        let in_snap = prefix_blocks(&data, BOOT_BLOCKS + BUSY_BLOCKS);
        let rest_zero = data[(in_snap * BLOCK) as usize..].iter().all(|&b| b == 0);
        let verified = rest_zero && (before..=at_completion).contains(&in_snap);
        self.check(verified, || {
            format!("snapshot holds {in_snap} of qemu's blocks (zeros after: {rest_zero}); qemu had written {before} before the request and {at_completion} at completion")
        });
        self.verify_head("after the snapshot, read by nova-compute", nova).await?;
        Ok(SnapshotReport {
            name: SNAP,
            requested_by: "nova-compute",
            run_by,
            forwarded,
            exists,
            writes_done_before_request: before,
            writes_done_at_completion: at_completion,
            writes_in_snapshot: Some(in_snap),
            contents_verified: verified,
            owner_kept_lock,
        })
    }

    async fn resize_step(
        &mut self,
        qemu: &Image,
        nova: &Image,
        qemu_cookie: &str,
    ) -> Result<ResizeReport, CliError> {
        let r = nova.resize(NEW_SIZE).await;
        let op =
            op_result("nova-compute", format!("resize {} GiB -> {} GiB", SIZE / GIB, NEW_SIZE / GIB), &r);
        self.check(r.is_ok(), || format!("resize failed: {r:?}"));
        let seen = self
            .end_step("nova-compute resizes vm-disk", vec![op], &[("qemu", qemu), ("nova-compute", nova)])
            .await?;
        let (forwarded, run_by) = self.forwarded_and_run_by(&seen, nova, "RESIZE", "resize");
        let owner_kept_lock = self.owner_kept(qemu, qemu_cookie, &seen, "resize");
        // §7.4: the owner updates its size at once; the requester sees it after refreshing.
        self.check(qemu.size() == NEW_SIZE, || format!("qemu's size is {} after the resize", qemu.size()));
        let nova_size = nova.info().await.map_err(|e| failed("image info", e))?.size;
        self.check(nova_size == NEW_SIZE, || format!("nova-compute sees size {nova_size} after the resize"));
        Ok(ResizeReport {
            from: SIZE,
            to: NEW_SIZE,
            requested_by: "nova-compute",
            run_by,
            forwarded,
            owner_kept_lock,
        })
    }

    /// Whether the request went out as a notify from nova-compute, and who completed it.
    fn forwarded_and_run_by(
        &mut self,
        seen: &[Seen],
        nova: &Image,
        op: &str,
        what: &str,
    ) -> (bool, Option<String>) {
        let nova_gid = gid_of(nova);
        let forwarded = seen.iter().any(|s| s.op == op && s.from == nova_gid);
        self.check(forwarded, || format!("{what}: no {op} notify from nova-compute"));
        let completers: Vec<Gid> = seen.iter().filter(|s| s.op == "ASYNC_COMPLETE").map(|s| s.from).collect();
        let run_by = completers.first().map(|g| self.name(*g));
        self.check(completers.len() == 1 && run_by.as_deref() == Some("qemu"), || {
            format!("{what}: ASYNC_COMPLETE sent by {completers:?}, expected qemu once")
        });
        (forwarded, run_by)
    }

    /// qemu still holds the lock with its original cookie, and nobody released or took it.
    fn owner_kept(&mut self, qemu: &Image, qemu_cookie: &str, seen: &[Seen], what: &str) -> bool {
        let now = self.phases.last().and_then(|p| p.lock_cookie.clone());
        let same = now.as_deref() == Some(qemu_cookie) && cookie_of(qemu) == qemu_cookie;
        self.check(same, || format!("{what}: the lock is {now:?}, qemu's cookie was {qemu_cookie}"));
        let moved = seen.iter().any(|s| matches!(s.op, "RELEASED_LOCK" | "ACQUIRED_LOCK" | "REQUEST_LOCK"));
        self.check(!moved, || format!("{what}: the lock changed hands during a forwarded op"));
        same && !moved
    }

    async fn dead_owner_steps(
        &mut self,
        qemu: &Image,
        nova: &Image,
        watch_timeout: Duration,
    ) -> Result<DeadOwnerReport, CliError> {
        let qemu_gid = gid_of(qemu);
        let qemu_addr =
            self.cluster.client_addr(qemu_gid).ok_or_else(|| failed("qemu's address", "unknown"))?;
        // 7. qemu hangs (kill -STOP, a paused VM): it stops answering, but its watch stays
        //    listed until the watch timeout, and its lock stays until someone breaks it.
        self.cluster.suspend_client(qemu_gid).map_err(|e| failed("stopping qemu", e))?;
        let hung_at = self.sim_seconds();
        self.end_step(
            "qemu hangs (kill -STOP); its lock and watch remain for now",
            Vec::new(),
            &[("nova-compute", nova)],
        )
        .await?;

        // 8. nova-compute writes. Its REQUEST_LOCK gets no answer and the lock cannot be broken
        //    while qemu's watch is listed; once the watch times out, nova-compute blocklists qemu,
        //    breaks the lock and takes it (§1.6.3, §7.5 row 3).
        let task = {
            let nova = nova.clone();
            let data = block_data(2, 42);
            tokio::spawn(async move { nova.write_at(42 * BLOCK, &data).await.map(drop) })
        };
        let mut waited = 0;
        while !task.is_finished() && waited < CLOCK_LIMIT_S {
            settle().await;
            self.clock.advance(Duration::from_secs(1));
            waited += 1;
            settle().await;
        }
        if !task.is_finished() {
            return Err(failed(
                "nova-compute's write",
                format!("still blocked after {CLOCK_LIMIT_S} simulated seconds"),
            ));
        }
        let r = task.await.map_err(|e| failed("nova-compute's write task", e))?;
        let blocked = self.sim_seconds() - hung_at;
        let write_ok = r.is_ok();
        let op = self.record_write("nova-compute", 42 * BLOCK, &block_data(2, 42), r);
        self.check(write_ok, || format!("nova-compute's write after qemu hung: {:?}", op.error));
        self.end_step(
            "nova-compute writes: qemu's watch times out, nova-compute blocklists qemu and breaks its lock",
            vec![op],
            &[("nova-compute", nova)],
        )
        .await?;
        let owner = self.phases.last().and_then(|p| p.lock_owner.clone());
        let lock_broken = owner.as_deref() == Some("nova-compute");
        self.check(lock_broken, || format!("after qemu hung the lock is held by {owner:?}"));
        let qemu_blocklisted = self.cluster.is_blocklisted(&qemu_addr);
        self.check(qemu_blocklisted, || format!("qemu ({qemu_addr}) is not blocklisted"));
        // The watch had to expire first: nova-compute cannot have broken the lock earlier.
        self.check(blocked >= watch_timeout.as_secs_f64(), || {
            format!(
                "the lock was broken {blocked} s after qemu hung, before its {watch_timeout:?} watch timeout"
            )
        });
        let watchers =
            self.cli.list_watchers(&self.header).await.map_err(|e| failed("listing watchers", e))?;
        self.check(watchers.iter().all(|w| w.gid != qemu_gid), || {
            format!("qemu still watches the header: {watchers:?}")
        });
        let blocklisted = self.cluster.blocklist_list().iter().map(|(a, _)| a.to_string()).collect();

        // 9. qemu wakes up (kill -CONT) still believing it owns the lock; the write it had
        //    queued reaches the cluster and is refused: its address is fenced (§2.13).
        self.cluster.resume_client(qemu_gid).map_err(|e| failed("waking qemu", e))?;
        let op = self.write("qemu", qemu, 43 * BLOCK, &block_data(1, 43)).await;
        let late_write_refused = op.outcome == "refused";
        let late_write_errno = op.errno;
        self.check(late_write_refused, || "qemu's late write was accepted".into());
        self.end_step(
            "qemu wakes up (kill -CONT): its late write is refused",
            vec![op],
            &[("nova-compute", nova)],
        )
        .await?;

        Ok(DeadOwnerReport {
            watch_timeout_s: watch_timeout.as_secs_f64(),
            nova_write_blocked_s: blocked,
            blocklisted,
            qemu_blocklisted,
            lock_broken,
            late_write_refused,
            late_write_errno,
        })
    }
}

fn gid_of(img: &Image) -> Gid {
    img.watcher().map_or(0, |w| w.ioctx().client_gid())
}

/// librbd's lock cookie for a handle: `auto <watch handle>` (real-ceph §3).
fn cookie_of(img: &Image) -> String {
    img.exclusive_lock().map_or_else(String::new, |l| l.managed_lock().cookie())
}

fn op_result(client: &'static str, op: String, r: &Result<(), RbdError>) -> Operation {
    match r {
        Ok(()) => Operation { client, op, outcome: "ok", errno: None, error: None },
        Err(e) => {
            Operation { client, op, outcome: "refused", errno: Some(e.errno()), error: Some(e.to_string()) }
        }
    }
}

/// Folds runs of accepted 4 KiB writes by one client into one line ("16 writes of 4 KiB ...").
fn merge_writes(ops: Vec<Operation>) -> Vec<Operation> {
    let mut out: Vec<(Operation, u64)> = Vec::new();
    for op in ops {
        let is_write = op.op.starts_with("write ") && op.outcome == "ok";
        match out.last_mut() {
            Some((last, n))
                if is_write
                    && last.client == op.client
                    && last.op.starts_with("write ")
                    && last.outcome == "ok" =>
            {
                *n += 1;
            }
            _ => out.push((op, 1)),
        }
    }
    out.into_iter()
        .map(|(mut op, n)| {
            if n > 1
                && let Some(first) =
                    op.op.strip_prefix("write 4 KiB at ").and_then(|k| k.strip_suffix(" KiB"))
                && let Ok(first) = first.parse::<u64>()
            {
                op.op = format!("{n} writes of 4 KiB, {first}..{} KiB", first + n * BLOCK / 1024);
            }
            op
        })
        .collect()
}

/// How many leading blocks of `data` hold qemu's block pattern, up to `max`.
fn prefix_blocks(data: &[u8], max: u64) -> u64 {
    let mut k = 0;
    while k < max {
        let range = (k * BLOCK) as usize..((k + 1) * BLOCK) as usize;
        if data.get(range).is_none_or(|b| b != block_data(1, k).as_slice()) {
            break;
        }
        k += 1;
    }
    k
}

/// Prints the story: a lock timeline (one block per step), then what it showed.
pub(crate) fn narrate(r: &RbdReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let client = |role: &str| r.clients.get(role).cloned().unwrap_or_default();
    writeln!(
        out,
        "Story 1: RBD (rbd spec §7): a VM keeps its disk while the cloud snapshots and resizes it"
    )?;
    writeln!(
        out,
        "  Embedded cluster, simulated clock. qemu = {}, nova-compute = {};",
        client("qemu"),
        client("nova-compute")
    )?;
    writeln!(
        out,
        "  rbd-cli = {} reads the lock (like `rbd lock ls`) and logs every notify on the",
        client("rbd-cli")
    )?;
    writeln!(out, "  image header (like `rbd watch`). The lock owner column is the cls lock on the header.")?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<4} {:>5}  {:<13} {:<21} what happened",
        "step", "t (s)", "lock owner", "lock cookie"
    )?;
    for p in &r.phases {
        writeln!(
            out,
            "  {:<4} {:>5.1}  {:<13} {:<21} {}",
            p.step,
            p.t_s,
            p.lock_owner.as_deref().unwrap_or("(none)"),
            p.lock_cookie.as_deref().unwrap_or("-"),
            p.title
        )?;
        for op in &p.operations {
            let outcome = match (op.outcome, op.errno) {
                ("ok", _) => "ok".to_owned(),
                (_, Some(e)) => format!("REFUSED, -{} ({e})", errno_name(e)),
                (o, None) => o.to_owned(),
            };
            writeln!(out, "  {:<48} {}: {} -> {}", "", op.client, op.op, outcome)?;
        }
        if !p.notifies.is_empty() {
            writeln!(out, "  {:<48} notifies: {}", "", compress(&p.notifies).join(", "))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "  What this showed:")?;
    let s = &r.snapshot;
    let cookie = r.phases.first().and_then(|p| p.lock_cookie.as_deref()).unwrap_or("-");
    writeln!(
        out,
        "  - nova-compute's snapshot and resize were {} to the lock owner and run by it",
        if s.forwarded && r.resize.forwarded {
            "forwarded (SNAP_CREATE, RESIZE notifies)"
        } else {
            "NOT FORWARDED"
        }
    )?;
    writeln!(
        out,
        "    (snapshot run by {}, resize run by {}: it sent ASYNC_COMPLETE). qemu {} its lock,",
        s.run_by.as_deref().unwrap_or("nobody"),
        r.resize.run_by.as_deref().unwrap_or("nobody"),
        if s.owner_kept_lock && r.resize.owner_kept_lock { "kept" } else { "DID NOT keep" }
    )?;
    writeln!(out, "    cookie \"{cookie}\" throughout; nova-compute never took it.")?;
    match s.writes_in_snapshot {
        Some(k) if s.contents_verified => writeln!(
            out,
            "  - {IMAGE}@{SNAP} exists and holds exactly qemu's first {k} writes, byte for byte: the {} done\n    before nova-compute asked, plus {} that qemu made while the request was on its way.",
            s.writes_done_before_request,
            k - s.writes_done_before_request
        )?,
        _ => writeln!(out, "  - {IMAGE}@{SNAP}: contents NOT verified (exists: {})", s.exists)?,
    }
    writeln!(
        out,
        "  - When nova-compute wrote, the lock moved to it cooperatively (REQUEST_LOCK, RELEASED_LOCK,"
    )?;
    writeln!(
        out,
        "    ACQUIRED_LOCK), and back when qemu wrote again; every write read back from the other side."
    )?;
    let d = &r.dead_owner;
    writeln!(
        out,
        "  - After qemu hung, nova-compute's write waited {:.0} s (simulated) until qemu's watch timed",
        d.nova_write_blocked_s
    )?;
    writeln!(
        out,
        "    out ({:.0} s), then nova-compute blocklisted qemu ({}) and broke its lock.",
        d.watch_timeout_s,
        if d.blocklisted.is_empty() { "NOT BLOCKLISTED".to_owned() } else { d.blocklisted.join(", ") }
    )?;
    match (d.late_write_refused, d.late_write_errno) {
        (true, Some(108)) => writeln!(
            out,
            "  - qemu's late write was refused with -EBLOCKLISTED (108): its address is fenced."
        )?,
        (true, Some(e)) => writeln!(out, "  - qemu's late write was refused with -{} ({e}).", errno_name(e))?,
        _ => writeln!(out, "  - qemu's late write was NOT refused.")?,
    }
    writeln!(
        out,
        "  - Writes: {} accepted, {} refused. Invariant checks: {}, violations: {}.",
        r.writes.accepted, r.writes.refused, r.invariant_checks, r.invariant_violations
    )?;
    for v in &r.violations {
        writeln!(out, "    VIOLATION: {v}")?;
    }
    writeln!(
        out,
        "  On real Ceph 16.2 (one host, real-ceph §3) the same snapshot stalls the owner's writes for"
    )?;
    writeln!(
        out,
        "  100-350 ms, and a killed owner's lock is taken over after about 28.5 s (30 s watch timeout)."
    )?;
    Ok(())
}

fn errno_name(e: i32) -> &'static str {
    match e {
        108 => "EBLOCKLISTED",
        107 => "ENOTCONN",
        30 => "EROFS",
        _ => "see errno(3)",
    }
}

/// Folds repeats of one notify into "OP from role x N", so a retry loop stays one entry.
fn compress(notifies: &[String]) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for n in notifies {
        match out.last_mut() {
            Some((last, k)) if last == n => *k += 1,
            _ => out.push((n.clone(), 1)),
        }
    }
    out.into_iter().map(|(n, k)| if k > 1 { format!("{n} x{k}") } else { n }).collect()
}
