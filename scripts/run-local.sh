#!/usr/bin/env bash
# Brings up what hpcvm needs on one machine and runs a cluster:
#   run-local.sh up                   start the Temporal dev server and the
#                                     host worker (if not running)
#   run-local.sh start CLUSTER.yaml   the same, then `hpcvm start` the cluster
#   run-local.sh stop                 stop the worker and dev server it started
# Processes are recorded in .hpcvm/*.pid and stopped only by those PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.hpcvm
mkdir -p "$state"

alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

wait_for_log() { # file pattern seconds
  local end=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $end ]; then echo "run-local: timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; exit 1; fi
    sleep 0.2
  done
}

up() {
  if ! alive devserver; then
    bin/hpcvm-devserver --db-file "$state/temporal.db" >"$state/devserver.log" 2>&1 &
    echo $! >"$state/devserver.pid"
    wait_for_log "$state/devserver.log" "ready" 120
  fi
  grep -m1 "ready" "$state/devserver.log"
  if ! alive worker; then
    # libvirtd-up.sh runs the test libvirtd in this namespace: the host
    # changes a cluster allows (routing) belong there, not on this machine.
    netns=()
    [ -e /run/netns/hpcvm-test ] && netns=(--netns hpcvm-test)
    bin/hpcvm-worker "${netns[@]}" --audit-log "$PWD/$state/host-changes.jsonl" >"$state/worker.log" 2>&1 &
    echo $! >"$state/worker.pid"
    wait_for_log "$state/worker.log" "Started Worker" 60
  fi
  echo "worker running (pid $(cat "$state/worker.pid")), log in $state/worker.log"
}

case "${1:-}" in
up)
  up
  echo "ready: bin/hpcvm validate -c YOUR.yaml, then bin/hpcvm start -c YOUR.yaml (Web UI http://127.0.0.1:8233); make down stops both"
  ;;
start)
  config=${2:?usage: run-local.sh start CLUSTER.yaml}
  up
  bin/hpcvm start -c "$config"
  bin/hpcvm status -c "$config"
  ;;
stop)
  for p in worker devserver; do
    if alive "$p"; then
      pid=$(cat "$state/$p.pid")
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "stopped $p (pid $pid)"
    fi
    rm -f "$state/$p.pid"
  done
  ;;
*)
  echo "usage: run-local.sh up | start CLUSTER.yaml | stop" >&2
  exit 2
  ;;
esac
