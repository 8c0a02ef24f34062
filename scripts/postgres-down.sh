#!/usr/bin/env bash
# Stops the PostgreSQL that scripts/postgres-up.sh started, and only that
# one: it signals the PID recorded in $HPCVM_POSTGRES_DIR/postgres.env (a
# fast shutdown), never a process found by name. The data directory is
# kept, so the next postgres-up.sh starts quickly; remove
# $HPCVM_POSTGRES_DIR to forget everything.
#
# Idempotent; needs root; reads nothing from standard input.
set -euo pipefail
exec </dev/null

STATE_DIR="${HPCVM_POSTGRES_DIR:-/var/tmp/hpcvm-postgres}"
ENV_FILE="$STATE_DIR/postgres.env"
GRACE_SECONDS=30

log() { echo "postgres-down: $*"; }

alive() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = postgres ]
}

PID="$(sed -n 's/^HPCVM_PG_PID=//p' "$ENV_FILE" 2>/dev/null || true)"
if [ -z "$PID" ]; then
  log "no recorded PostgreSQL ($ENV_FILE), nothing to stop"
  exit 0
fi
if ! alive "$PID"; then
  log "recorded pid $PID is not running"
  exit 0
fi
# SIGINT is PostgreSQL's fast shutdown: sessions are ended, data is kept.
kill -INT "$PID"
end=$((SECONDS + GRACE_SECONDS))
while alive "$PID" && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
if alive "$PID"; then
  # Immediate shutdown; the next start recovers from the WAL.
  kill -QUIT "$PID" || true
  log "pid $PID did not stop within ${GRACE_SECONDS}s: sent SIGQUIT"
else
  log "stopped PostgreSQL pid $PID"
fi
