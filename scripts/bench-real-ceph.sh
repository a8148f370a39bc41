#!/usr/bin/env bash
# Latency figures for docs/benchmarks.md: cephlock against real librbd 16.2 on one real cluster.
#
#   scripts/bench-real-ceph.sh [OUT.json]
#
# Uses the cluster named by $CEPH_CONF; without it, starts a throw-away one with
# scripts/ceph-dev-cluster.sh in $BENCH_DIR (default /tmp/cephlock-bench, mon port
# $CEPH_DEV_MON_PORT, default 40100, so it can run beside the test cluster on 40000) and stops it
# with --wipe on exit, even on failure. The default Ceph watch timeout (30 s) is kept: a lowered
# one only matters for tests that kill lock owners.
#
# Measures, all in one run on the same cluster and image:
#   * lock hand-over latency: ours<->ours, librbd<->librbd, ours<->librbd (a 4 KiB write by the
#     non-owner, which includes REQUEST_LOCK, the owner's release and the acquisition);
#   * forwarded snap_create latency: ours requesting from a librbd owner and vice versa (and
#     librbd<->librbd and ours<->ours for reference);
#   * notify round trip through cephlock's librados backend (two connections, one acking);
#   * for comparison, the embedded-backend figures (`cephlock bench rbd-pingpong`,
#     `cephlock bench rbd-snap-forward`).
# Knobs: ROUNDS (hand-overs each way, default 200), SNAPS (snapshots each way, default 10),
# NOTIFIES (default 1000), CEPHLOCK_BIN (default target/release/cephlock, built with
# `cargo build --release -p cephlock --features ceph` if missing).
# Needs /usr/bin/python3 with Debian's python3-rbd (the only Python that has the bindings).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
rounds=${ROUNDS:-200}
snaps=${SNAPS:-10}
notifies=${NOTIFIES:-1000}
pool=${CEPHLOCK_TEST_POOL:-rbd}
bin=${CEPHLOCK_BIN:-$here/target/release/cephlock}
peer_py=$here/crates/integration-tests/tests/ceph_support/librbd_peer.py
python=${CEPHLOCK_PYTHON:-/usr/bin/python3}

if [[ ! -x $bin ]]; then
    (cd "$here" && cargo build --release -p cephlock --features ceph >&2)
fi

work=$(mktemp -d)
started=
cleanup() {
    rm -rf "$work"
    if [[ -n $started ]]; then
        "$here/scripts/ceph-dev-cluster-stop.sh" "$started" --wipe >&2 || true
    fi
}
trap cleanup EXIT

if [[ -z ${CEPH_CONF:-} ]]; then
    dir=${BENCH_DIR:-/tmp/cephlock-bench}
    started=$dir
    export CEPH_DEV_MON_PORT=${CEPH_DEV_MON_PORT:-40100}
    CEPH_CONF=$("$here/scripts/ceph-dev-cluster.sh" "$dir" | tail -1)
    export CEPH_CONF
fi

log() { echo "[bench-real-ceph $(date -u +%H:%M:%S)] $*" >&2; }

# The librbd<->librbd pair: two librbd handles on two connections in one process, the same
# workload as `cephlock rbd bench-handover` without a peer.
cat > "$work/librbd_pair.py" <<'PY'
import json, math, sys, time
import rados, rbd
conf, pool, image, rounds, snaps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def open_handle():
    c = rados.Rados(conffile=conf)
    c.connect()
    io = c.open_ioctx(pool)
    return c, io, rbd.Image(io, image)
ca, ia, a = open_handle()
cb, ib, b = open_handle()
buf = b"\x5a" * 4096
b.write(buf, 4096)
to_a, to_b = [], []
for i in range(rounds):
    t = time.perf_counter(); a.write(buf, 0); to_a.append(time.perf_counter() - t)
    t = time.perf_counter(); b.write(buf, 4096); to_b.append(time.perf_counter() - t)
a.write(buf, 0)
snap = []
for i in range(snaps):
    t = time.perf_counter(); b.create_snap("ll%d" % i); snap.append(time.perf_counter() - t)
kept = a.is_exclusive_lock_owner()
for i in range(snaps):
    a.remove_snap("ll%d" % i)
def summ(v):
    ms = sorted(x * 1e3 for x in v)
    pk = lambda q: ms[min(len(ms), max(1, math.ceil(q * len(ms)))) - 1]
    return {"samples": len(ms), "min_ms": round(ms[0], 3), "p50_ms": round(pk(0.5), 3),
            "p99_ms": round(pk(0.99), 3), "max_ms": round(ms[-1], 3),
            "mean_ms": round(sum(ms) / len(ms), 3)}
print(json.dumps({"pair": "librbd<->librbd", "rounds": rounds, "handover": summ(to_a + to_b),
                  "b_to_a": summ(to_a), "a_to_b": summ(to_b),
                  "librbd_requests_librbd_owner_snap_create": summ(snap), "owner_kept_lock": kept}))
for h in (a, b):
    h.close()
for i in (ia, ib):
    i.close()
for c in (ca, cb):
    c.shutdown()
PY

img=bench-real-ceph-$$
rbd -c "$CEPH_CONF" -p "$pool" create --size 64M --image-feature layering,exclusive-lock "$img"
trap 'rbd -c "$CEPH_CONF" -p "$pool" snap purge --no-progress "$img" >/dev/null 2>&1 || true;
      rbd -c "$CEPH_CONF" -p "$pool" rm --no-progress "$img" >/dev/null 2>&1 || true; cleanup' EXIT
peer="$python $peer_py $CEPH_CONF $pool $img"
rbdc=("$bin" rbd --conf "$CEPH_CONF" --pool "$pool")

log "hand-over ours<->ours ($rounds each way)"
"${rbdc[@]}" bench-handover "$img" --rounds "$rounds" --json > "$work/oo.json"
log "hand-over librbd<->librbd ($rounds each way) + librbd<->librbd snap_create ($snaps)"
"$python" "$work/librbd_pair.py" "$CEPH_CONF" "$pool" "$img" "$rounds" "$snaps" > "$work/ll.json"
log "hand-over ours<->librbd ($rounds each way)"
"${rbdc[@]}" bench-handover "$img" --rounds "$rounds" --peer-cmd "$peer" --json > "$work/ol.json"
log "forwarded snap_create both ways ($snaps each way)"
"${rbdc[@]}" bench-snap-forward "$img" --rounds "$snaps" --peer-cmd "$peer" --json > "$work/snap.json"
log "forwarded snap_create ours<->ours ($snaps)"
"${rbdc[@]}" bench-snap-forward "$img" --rounds "$snaps" --json > "$work/snap_oo.json"
log "notify round trip ($notifies)"
"${rbdc[@]}" bench-notify --rounds "$notifies" --json > "$work/notify.json"
log "embedded backend: bench rbd-pingpong, bench rbd-snap-forward"
"$bin" bench rbd-pingpong --json > "$work/emb_pingpong.json"
"$bin" bench rbd-snap-forward --json > "$work/emb_snap.json"

result=$("$python" - "$work" <<'PY'
import json, os, platform, subprocess, sys, time
w = sys.argv[1]
load = lambda n: json.load(open(os.path.join(w, n)))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ver = subprocess.run(["ceph", "--version"], capture_output=True, text=True).stdout.strip()
print(json.dumps({
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "ceph": ver},
    "handover_ours_ours": load("oo.json"), "handover_librbd_librbd": load("ll.json"),
    "handover_ours_librbd": load("ol.json"), "snap_forward": load("snap.json"), "snap_forward_ours_ours": load("snap_oo.json"),
    "notify": load("notify.json"),
    "embedded": {"rbd_pingpong": load("emb_pingpong.json"), "rbd_snap_forward": load("emb_snap.json")},
}, indent=1))
PY
)
if [[ -n $out ]]; then
    printf '%s\n' "$result" > "$out"
    log "wrote $out"
else
    printf '%s\n' "$result"
fi
