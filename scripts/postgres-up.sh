#!/usr/bin/env bash
# Makes a PostgreSQL answer on loopback for the tests that run hpcvm against
# a production-shaped Temporal server (PostgreSQL persistence, mTLS).
#
# The instance is the project's own: its data directory, unix socket and log
# live under $HPCVM_POSTGRES_DIR (default /var/tmp/hpcvm-postgres), it runs as
# the postgres OS user, listens on 127.0.0.1 only, on a port that was free
# when it started. Debian's own clusters (pg_lsclusters) are never started,
# stopped or changed. One that answers is reused. What it is, how to reach
# it and the PID it runs as are written to $HPCVM_POSTGRES_DIR/postgres.env
# (shell syntax, mode 0600): the tests read it, scripts/postgres-down.sh
# stops exactly that PID.
#
# A role that may create databases (the tests create and drop their own)
# and a database of the same name are made for Temporal.
#
# Idempotent; needs root; reads nothing from standard input.
set -euo pipefail
exec </dev/null

STATE_DIR="${HPCVM_POSTGRES_DIR:-/var/tmp/hpcvm-postgres}"
DATA="$STATE_DIR/data"
SOCK="$STATE_DIR/run"
LOG="$STATE_DIR/postgres.log"
ENV_FILE="$STATE_DIR/postgres.env"
ROLE=hpcvm_temporal
LISTEN=127.0.0.1
# Ports tried, in order: away from 5432 (Debian's clusters) and from the
# ephemeral range.
PORT_FIRST=25432
PORT_LAST=25531

log() { echo "postgres-up: $*"; }
die() { echo "postgres-up: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it runs PostgreSQL as the postgres user and writes $STATE_DIR)"
getent passwd postgres >/dev/null || die "no postgres OS user: install Debian's postgresql package (make deps)"

# The newest PostgreSQL server Debian installed.
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[ -x "$BIN/postgres" ] || die "no PostgreSQL server under /usr/lib/postgresql: install Debian's postgresql package (make deps)"

as_pg() { runuser -u postgres -- "$@"; }

# alive PID: the process exists and is a postgres server (guards against a
# recycled PID in a stale file).
alive() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = postgres ]
}

answers() { as_pg "$BIN/pg_isready" -q -h "$LISTEN" -p "$1" -t 5; }

# sql STATEMENT: run as the superuser over the instance's own unix socket.
sql() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres -tAc "$1"; }

port_free() { ! ss -Htln "sport = :$1" | grep -q .; }

write_env() {
  local tmp="$ENV_FILE.tmp"
  umask 077
  cat >"$tmp" <<EOF
# Written by scripts/postgres-up.sh: the project's PostgreSQL for tests.
HPCVM_PG_HOST=$LISTEN
HPCVM_PG_PORT=$PORT
HPCVM_PG_USER=$ROLE
HPCVM_PG_PASSWORD=$PASSWORD
HPCVM_PG_DATABASE=$ROLE
HPCVM_PG_PID=$PID
HPCVM_PG_DATA=$DATA
EOF
  mv "$tmp" "$ENV_FILE"
}

ensure_role() {
  if [ "$(sql "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    sql "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
    log "created role $ROLE"
  else
    sql "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
  fi
  if [ "$(sql "SELECT 1 FROM pg_database WHERE datname = '$ROLE'")" != 1 ]; then
    sql "CREATE DATABASE $ROLE OWNER $ROLE"
    log "created database $ROLE"
  fi
}

mkdir -p "$STATE_DIR"
chmod 755 "$STATE_DIR"
# Two checkouts' `make test` at once: one starts it, the other reuses it.
# (PostgreSQL is started with fd 9 closed, or it would hold the lock.)
exec 9>"$STATE_DIR/.lock"
flock 9

PORT="" PID="" PASSWORD=""
if [ -f "$ENV_FILE" ]; then
  PORT="$(sed -n 's/^HPCVM_PG_PORT=//p' "$ENV_FILE")"
  PID="$(sed -n 's/^HPCVM_PG_PID=//p' "$ENV_FILE")"
  PASSWORD="$(sed -n 's/^HPCVM_PG_PASSWORD=//p' "$ENV_FILE")"
fi
[ -n "$PASSWORD" ] || PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"

if alive "$PID" && [ -n "$PORT" ] && answers "$PORT"; then
  ensure_role
  write_env
  log "reusing PostgreSQL pid $PID on $LISTEN:$PORT ($ENV_FILE)"
  exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initdb $DATA"
  rm -rf "$DATA"
  install -d -o postgres -g postgres -m 700 "$DATA"
  # Local (socket) connections: only the postgres OS user as itself. TCP:
  # passwords, scram. Nothing else is allowed.
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$STATE_DIR/initdb.log" 2>&1 ||
    die "initdb failed, see $STATE_DIR/initdb.log"
fi
# A data directory left by a killed instance: its postmaster.pid names a
# dead process; pg_ctl copes with that itself.
install -d -o postgres -g postgres -m 700 "$SOCK"
touch "$LOG" && chown postgres:postgres "$LOG"

PORT=""
for p in $(seq "$PORT_FIRST" "$PORT_LAST"); do
  if port_free "$p"; then PORT="$p"; break; fi
done
[ -n "$PORT" ] || die "no free TCP port in $PORT_FIRST..$PORT_LAST on $LISTEN"

log "starting PostgreSQL ($BIN) on $LISTEN:$PORT, socket $SOCK"
# Settings on the command line, not in the data directory: the port is
# chosen anew at each start. fsync off: a test database that a crash may
# lose is fine, and it makes Temporal's many small commits cheap on a
# shared machine.
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
  "-c listen_addresses=$LISTEN -c port=$PORT -c unix_socket_directories=$SOCK -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  >/dev/null 9>&- || die "PostgreSQL did not start, see $LOG"
PID="$(head -n1 "$DATA/postmaster.pid")"
alive "$PID" || die "PostgreSQL started but pid $PID from $DATA/postmaster.pid is not running; see $LOG"
answers "$PORT" || die "PostgreSQL pid $PID does not answer on $LISTEN:$PORT; see $LOG"
ensure_role
write_env
log "PostgreSQL pid $PID answers on $LISTEN:$PORT ($ENV_FILE)"
