#!/usr/bin/env bash
# Stops the cluster scripts/ceph-dev-cluster.sh started in DIR.
#
#   scripts/ceph-dev-cluster-stop.sh [DIR] [--wipe]
#
# Only the pids recorded in DIR/pids are signalled, and only while each still runs a ceph
# daemon binary (never by process name, so other clusters and reused pids are safe). The OSD,
# manager and MDS get SIGTERM first while the monitor can still acknowledge the OSD's
# "marking myself down" (otherwise the OSD waits 5 s for it); the monitor goes last.
# Anything still alive 10 s after its SIGTERM gets SIGKILL. --wipe also deletes DIR.
# Safe to run twice, or on a DIR that never started.
set -euo pipefail

DIR=${CEPH_DEV_DIR:-/tmp/cephlock-ceph}
WIPE=0
for arg in "$@"; do
  case $arg in
    --wipe) WIPE=1 ;;
    -*) echo "usage: $0 [DIR] [--wipe]" >&2; exit 2 ;;
    *) DIR=$arg ;;
  esac
done
PIDFILE=$DIR/pids
say() { printf '[ceph-dev-stop] %s\n' "$*" >&2; }

is_ceph_daemon() {
  local pid=$1 cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd =~ (^|/)ceph-(mon|osd|mgr|mds)\  ]]
}

# Stops the recorded daemons whose names match a regex, waiting for them to exit.
stop_matching() {
  local pattern=$1 name pid any left
  local -a group=()
  while read -r name pid; do
    [[ $name =~ $pattern ]] && group+=("$name $pid")
  done <"$PIDFILE"
  [ "${#group[@]}" -gt 0 ] || return 0
  any=0
  for entry in "${group[@]}"; do
    read -r name pid <<<"$entry"
    if is_ceph_daemon "$pid"; then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      any=1
    fi
  done
  [ "$any" = 1 ] || return 0
  for _ in $(seq 100); do
    left=0
    for entry in "${group[@]}"; do
      read -r name pid <<<"$entry"
      is_ceph_daemon "$pid" && left=1
    done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  for entry in "${group[@]}"; do
    read -r name pid <<<"$entry"
    if is_ceph_daemon "$pid"; then
      say "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

if [ -f "$PIDFILE" ]; then
  stop_matching '^(osd|mgr|mds)\.'
  stop_matching '^mon\.'
  rm -f "$DIR/ready"
  : >"$PIDFILE"
else
  say "nothing recorded in $PIDFILE; nothing to stop"
fi
if [ "$WIPE" = 1 ]; then
  rm -rf "$DIR"
  say "removed $DIR"
fi
