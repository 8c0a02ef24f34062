#!/usr/bin/env bash
# Stops the libvirtd and virtlogd that scripts/libvirtd-up.sh started, and
# only those: it signals the PIDs recorded under /run/hpcvm-test/, never
# processes found by name. The network namespace is left in place (cheap,
# and anything libvirt left there stays confined).
#
# Idempotent; needs root; reads nothing from standard input.
set -euo pipefail
exec </dev/null

STATE_DIR=/run/hpcvm-test
GRACE_SECONDS=15

log() { echo "libvirtd-down: $*"; }

alive() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# stop NAME: TERM the recorded PID, wait, then KILL.
stop() {
  local name="$1" f="$STATE_DIR/$1.pid" pid end
  if [ ! -f "$f" ]; then
    log "$name: no recorded PID, nothing to stop"
    return
  fi
  pid="$(cat "$f" 2>/dev/null || true)"
  if ! alive "$pid" "$name"; then
    log "$name: recorded pid ${pid:-?} is not running"
    rm -f "$f"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + GRACE_SECONDS))
  while alive "$pid" "$name" && [ "$SECONDS" -lt "$end" ]; do
    sleep 0.2
  done
  if alive "$pid" "$name"; then
    log "$name pid $pid ignored TERM for ${GRACE_SECONDS}s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid" "$name"; do sleep 0.1; done
  fi
  # A daemon killed hard leaves its pid file behind; remove it only if it
  # still names the process just stopped.
  if [ "$(cat "/run/$name.pid" 2>/dev/null || true)" = "$pid" ]; then
    rm -f "/run/$name.pid"
  fi
  rm -f "$f"
  log "stopped $name pid $pid"
}

[ "$(id -u)" -eq 0 ] || { echo "libvirtd-down: ERROR: run as root" >&2; exit 1; }

# libvirtd first: it talks to virtlogd while shutting down.
stop libvirtd
stop virtlogd
