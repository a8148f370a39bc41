#!/usr/bin/env bash
# Starts a throw-away, single-host Ceph 16.2 cluster on loopback for cephlock's real-Ceph tests
# (issue 11): one monitor, an optional manager, one OSD (memstore unless told otherwise) and
# an RBD pool of size 1. Nothing listens beyond 127.0.0.1; everything lives under DIR.
#
#   export CEPH_CONF=$(scripts/ceph-dev-cluster.sh [DIR] | tail -1)
#   ... cargo test -p rados-store --features librados ...
#   scripts/ceph-dev-cluster-stop.sh [DIR] [--wipe]
#
# The last line on stdout is the path of the generated ceph.conf; progress goes to stderr.
# Running it again while the cluster in DIR is healthy only prints that path. A DIR left by a
# crash or a failed start is torn down (recorded pids only) and rebuilt: its data is
# disposable by design.
#
# Settings (environment):
#   CEPH_DEV_DIR            default DIR                                   (/tmp/cephlock-ceph)
#   CEPH_DEV_MON_PORT       monitor msgr2 port; msgr1 is the next one     (40000)
#   CEPH_DEV_POOL           RBD pool to create                            (rbd)
#   CEPH_DEV_STORE          memstore | bluestore (sparse 10 GiB file)     (memstore)
#   CEPH_DEV_MGR            1 starts a ceph-mgr (pg stats, rbd status)   (1)
#   CEPH_DEV_MDS            1 also starts a ceph-mds with fs "cephfs"    (0)
#   CEPH_DEV_WATCH_TIMEOUT  osd_client_watch_timeout in seconds; lower it for tests that kill a
#                           lock owner (Ceph's 30 s otherwise delays the next owner)  (unset)
#   CEPH_DEV_EXTRA_CONF     extra [global] lines, '\n'-separated          (none)
#   CEPH_DEV_INSTALL        1 installs missing packages with apt-get      (1)
#   CEPH_DEV_TIMEOUT        seconds allowed for each startup stage        (120)
#
# Facts behind the choices (../shared/spec/real-ceph-observed.md §1, §2): Debian's packages
# need no systemd; the CLI's `admin socket` must stay out of [global] or every client fights
# over one socket; the monitor's disk-space and pool-redundancy warnings are relaxed so a
# small disk still reports HEALTH_OK; stopping the monitor last avoids a 5 s OSD wait.
set -euo pipefail

DIR=${1:-${CEPH_DEV_DIR:-/tmp/cephlock-ceph}}
MON_PORT=${CEPH_DEV_MON_PORT:-40000}
POOL=${CEPH_DEV_POOL:-rbd}
STORE=${CEPH_DEV_STORE:-memstore}
WITH_MGR=${CEPH_DEV_MGR:-1}
WITH_MDS=${CEPH_DEV_MDS:-0}
INSTALL=${CEPH_DEV_INSTALL:-1}
STAGE_TIMEOUT=${CEPH_DEV_TIMEOUT:-120}

START=$(date +%s.%N)
say() { printf '[ceph-dev %s +%ss] %s\n' "$(date +%T)" "$(since_start)" "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
since_start() { awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

case $STORE in memstore | bluestore) ;; *) fail "CEPH_DEV_STORE must be memstore or bluestore, not '$STORE'" ;; esac
case $MON_PORT in '' | *[!0-9]*) fail "CEPH_DEV_MON_PORT must be a port number" ;; esac

mkdir -p "$(dirname "$DIR")"
DIR=$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")
CONF=$DIR/ceph.conf
PIDFILE=$DIR/pids

# ------------------------------------------------------------------ packages
ensure_packages() {
  local missing=0 tool
  for tool in ceph-mon ceph-osd ceph-authtool monmaptool ceph rados rbd; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  if [ "$WITH_MGR" = 1 ]; then command -v ceph-mgr >/dev/null 2>&1 || missing=1; fi
  if [ "$WITH_MDS" = 1 ]; then command -v ceph-mds >/dev/null 2>&1 || missing=1; fi
  # The librados backend builds against these headers (C and C++).
  [ -e /usr/include/rados/librados.h ] && [ -e /usr/include/rados/librados.hpp ] || missing=1
  [ "$missing" = 1 ] || return 0
  [ "$INSTALL" = 1 ] || fail "Ceph packages are missing and CEPH_DEV_INSTALL=0"
  local pkgs="ceph-mon ceph-osd ceph-common librados-dev libradospp-dev librbd-dev python3-rados python3-rbd"
  [ "$WITH_MGR" = 1 ] && pkgs="$pkgs ceph-mgr"
  [ "$WITH_MDS" = 1 ] && pkgs="$pkgs ceph-mds"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing $pkgs"
  # The postinst scripts try to reach systemd and fail harmlessly; no daemon starts.
  # shellcheck disable=SC2086
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs >&2; then
    $sudo apt-get update >&2
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs >&2
  fi
}
ensure_packages

CEPH=(ceph -c "$CONF" --connect-timeout 15)

# ------------------------------------------------------------------ pid bookkeeping
# A recorded pid counts as ours only while it runs a ceph daemon binary: zombies have an empty
# cmdline, and a recycled pid runs something else.
is_ceph_daemon() {
  local pid=$1 cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd =~ (^|/)ceph-(mon|osd|mgr|mds)\  ]]
}

recorded_alive() {
  local name pid
  [ -s "$PIDFILE" ] || return 1
  while read -r name pid; do is_ceph_daemon "$pid" || return 1; done <"$PIDFILE"
}

kill_recorded() { # signal
  local name pid
  [ -f "$PIDFILE" ] || return 0
  while read -r name pid; do
    if is_ceph_daemon "$pid"; then kill "-$1" "$pid" 2>/dev/null || true; fi
  done <"$PIDFILE"
}

# ------------------------------------------------------------------ already running?
if [ -f "$DIR/ready" ] && recorded_alive && timeout 20 "${CEPH[@]}" health >/dev/null 2>&1; then
  say "cluster in $DIR is already up ($(timeout 20 "${CEPH[@]}" health 2>/dev/null))"
  echo "$CONF"
  exit 0
fi
if [ -e "$DIR" ]; then
  say "tearing down the stale cluster in $DIR"
  kill_recorded TERM
  for _ in $(seq 50); do
    alive=0
    if [ -f "$PIDFILE" ]; then
      while read -r _name pid; do is_ceph_daemon "$pid" && alive=1; done <"$PIDFILE"
    fi
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  kill_recorded KILL
  rm -rf "$DIR"
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$MON_PORT") 2>/dev/null; then
  fail "127.0.0.1:$MON_PORT is taken; set CEPH_DEV_MON_PORT to a free port"
fi

mkdir -p "$DIR"/{run,log,crash,mon,osd,mgr,mds}
: >"$PIDFILE"
# From here on, a failure stops what this run started and keeps the logs.
cleanup_on_failure() {
  local rc=$?
  [ "$rc" = 0 ] && return
  say "start failed (exit $rc): stopping the daemons it started; logs are in $DIR/log"
  kill_recorded KILL
  : >"$PIDFILE"
}
trap cleanup_on_failure EXIT

# ------------------------------------------------------------------ configuration
FSID=$(cat /proc/sys/kernel/random/uuid)
MON_ADDRV="[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]"
{
  cat <<EOF
[global]
fsid = $FSID
mon host = $MON_ADDRV
mon initial members = a
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/ceph.client.admin.keyring
run dir = $DIR/run
crash dir = $DIR/crash
mon cluster log file = $DIR/log/\$cluster.\$channel.log
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon max pg per osd = 1000
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mgr stats period = 1
osd op num shards = 1
osd op num threads per shard = 2
ms async op threads = 2
EOF
  # Without a manager the monitor would report MGR_DOWN after two minutes.
  [ "$WITH_MGR" = 1 ] || echo "mon mgr mkfs grace = 31536000"
  [ -z "${CEPH_DEV_WATCH_TIMEOUT:-}" ] || echo "osd client watch timeout = $CEPH_DEV_WATCH_TIMEOUT"
  [ -z "${CEPH_DEV_EXTRA_CONF:-}" ] || printf '%b\n' "$CEPH_DEV_EXTRA_CONF"
  for daemon in mon osd mgr mds; do
    # Sockets, pid files and logs per daemon only: in [global] they would also apply to
    # every CLI client.
    cat <<EOF
[$daemon]
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
$daemon data = $DIR/$daemon/\$cluster-\$id
EOF
    [ "$daemon" = mon ] || echo "keyring = \$${daemon}_data/keyring"
    # memstore keeps everything in the OSD's memory; bluestore writes a sparse file.
    [ "$daemon" != osd ] || cat <<EOF
osd objectstore = $STORE
memstore device bytes = 4294967296
bluestore block create = true
bluestore block size = 10737418240
bluestore cache size = 134217728
osd memory target = 939524096
EOF
  done
} >"$CONF"

ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDRV" "$DIR/monmap" >/dev/null

# Runs a daemon in the foreground of its own session, in the background of ours.
launch() { # name binary args...
  local name=$1
  shift
  setsid "$@" -f </dev/null >>"$DIR/log/$name.stdout" 2>&1 &
  echo "$name $!" >>"$PIDFILE"
}

wait_until() { # description command...
  local what=$1 deadline=$((SECONDS + STAGE_TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "gave up waiting for $what after ${STAGE_TIMEOUT}s (logs: $DIR/log)"
    sleep 0.2
  done
}

# ------------------------------------------------------------------ monitor
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
  >>"$DIR/log/mon.a.mkfs" 2>&1 || fail "ceph-mon --mkfs (see $DIR/log/mon.a.mkfs)"
launch mon.a ceph-mon -c "$CONF" -i a
wait_until "the monitor" timeout 20 "${CEPH[@]}" mon stat
say "monitor up"

# ------------------------------------------------------------------ manager
if [ "$WITH_MGR" = 1 ]; then
  mkdir -p "$DIR/mgr/ceph-x"
  "${CEPH[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$DIR/mgr/ceph-x/keyring" >/dev/null 2>&1
  launch mgr.x ceph-mgr -c "$CONF" -i x
fi

# ------------------------------------------------------------------ OSD
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID" 2>/dev/null)
mkdir -p "$DIR/osd/ceph-$OSD_ID"
"${CEPH[@]}" auth get-or-create "osd.$OSD_ID" mon 'allow profile osd' mgr 'allow profile osd' osd 'allow *' \
  -o "$DIR/osd/ceph-$OSD_ID/keyring" >/dev/null 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/osd.$OSD_ID.mkfs" 2>&1 \
  || fail "ceph-osd --mkfs (see $DIR/log/osd.$OSD_ID.mkfs)"
launch "osd.$OSD_ID" ceph-osd -c "$CONF" -i "$OSD_ID"
osd_is_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q "^osd.$OSD_ID up"; }
wait_until "osd.$OSD_ID to come up" osd_is_up
say "osd.$OSD_ID up ($STORE)"

# ------------------------------------------------------------------ pool
"${CEPH[@]}" osd pool create "$POOL" 8 8 >/dev/null 2>&1
rbd -c "$CONF" pool init "$POOL"
if [ "$WITH_MGR" = 1 ]; then
  mgr_ready() { "${CEPH[@]}" mgr stat 2>/dev/null | grep -q '"available": true'; }
  pgs_clean() { "${CEPH[@]}" pg stat 2>/dev/null | grep -Eq '^[0-9]+ pgs: [0-9]+ active\+clean;'; }
  wait_until "the manager" mgr_ready
  wait_until "every PG active+clean" pgs_clean
fi
# One real write and delete proves the pool serves I/O (the only proof without a manager).
probe=ceph-dev-probe-$$
echo probe | rados -c "$CONF" -p "$POOL" put "$probe" - || fail "probe write to pool $POOL"
rados -c "$CONF" -p "$POOL" rm "$probe" || fail "probe delete in pool $POOL"

# ------------------------------------------------------------------ CephFS (optional)
if [ "$WITH_MDS" = 1 ]; then
  mkdir -p "$DIR/mds/ceph-a"
  "${CEPH[@]}" auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow *' \
    mgr 'allow profile mds' -o "$DIR/mds/ceph-a/keyring" >/dev/null 2>&1
  "${CEPH[@]}" osd pool create cephfs_metadata 8 8 >/dev/null 2>&1
  "${CEPH[@]}" osd pool create cephfs_data 8 8 >/dev/null 2>&1
  "${CEPH[@]}" fs new cephfs cephfs_metadata cephfs_data >/dev/null 2>&1
  launch mds.a ceph-mds -c "$CONF" -i a
  mds_active() { "${CEPH[@]}" mds stat 2>/dev/null | grep -q 'up:active'; }
  wait_until "the MDS to become active" mds_active
fi

touch "$DIR/ready"
trap - EXIT
say "ready: $("${CEPH[@]}" health 2>/dev/null); daemons: $(tr '\n' ' ' <"$PIDFILE")"
echo "$CONF"
