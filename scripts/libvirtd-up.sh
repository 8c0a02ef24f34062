#!/usr/bin/env bash
# Makes a libvirtd answer on qemu:///system for hpcvm's tests and local runs.
#
# If one already answers it is reused (there is one libvirtd per machine).
# Otherwise virtlogd and libvirtd are started inside the network namespace
# "hpcvm-test", so every bridge, dnsmasq and firewall rule libvirt creates
# lives there and never on the host's own network. The PIDs of the daemons
# this script starts are recorded under /run/hpcvm-test/ so that
# scripts/libvirtd-down.sh stops exactly those and nothing else.
#
# Idempotent; needs root; reads nothing from standard input.
set -euo pipefail
exec </dev/null

NETNS=hpcvm-test
STATE_DIR=/run/hpcvm-test
URI=qemu:///system
DEADLINE_SECONDS=30
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "libvirtd-up: $*"; }
die() { echo "libvirtd-up: ERROR: $*" >&2; exit 1; }

virsh_answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

# alive PID NAME: the process exists and is really NAME (guards against a
# recycled PID in a stale pid file).
alive() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

netns_inode() { stat -L -c %i "/run/netns/$NETNS" 2>/dev/null || true; }

# proc_netns_inode PID: inode of the network namespace the process is in.
proc_netns_inode() {
  local l
  l="$(readlink "/proc/$1/ns/net" 2>/dev/null || true)" # net:[4026532177]
  l="${l#net:[}"
  echo "${l%]}"
}

find_libvirtd_pid() {
  local p
  for f in "$STATE_DIR/libvirtd.pid" /run/libvirtd.pid /var/run/libvirtd.pid; do
    p="$(cat "$f" 2>/dev/null || true)"
    if alive "$p" libvirtd; then echo "$p"; return; fi
  done
  for d in /proc/[0-9]*; do
    if [ "$(cat "$d/comm" 2>/dev/null)" = libvirtd ]; then echo "${d#/proc/}"; return; fi
  done
}

summary() {
  local ver hv kvm pid where caps
  ver="$(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Using library: libvirt //p')"
  hv="$(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p')"
  # libvirt offers the "kvm" domain type only when /dev/kvm is usable. The
  # output is captured first: with pipefail, grep -q closing the pipe early
  # would make virsh's SIGPIPE read as "no KVM".
  caps="$(virsh -c "$URI" capabilities 2>/dev/null || true)"
  if grep -q "<domain type='kvm'" <<<"$caps"; then kvm="KVM usable"; else kvm="no KVM (TCG emulation)"; fi
  pid="$(find_libvirtd_pid)"
  where="netns unknown"
  if [ -n "$pid" ]; then
    if [ "$(proc_netns_inode "$pid")" = "$(netns_inode)" ] && [ -n "$(netns_inode)" ]; then
      where="netns $NETNS"
    elif [ "$(proc_netns_inode "$pid")" = "$(proc_netns_inode 1)" ]; then
      where="HOST network namespace"
    else
      where="netns net:[$(proc_netns_inode "$pid")] (not $NETNS)"
    fi
  fi
  log "ready: libvirt ${ver:-?}, ${hv:-hypervisor ?}, $kvm, libvirtd pid ${pid:-?} in $where"
}

[ "$(id -u)" -eq 0 ] || die "run as root (it creates a network namespace and starts system daemons)"

# has_hugetlbfs PID: a hugetlbfs is mounted where the process sees it.
has_hugetlbfs() { awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' "/proc/$1/mounts" 2>/dev/null; }

if virsh_answers; then
  pid="$(find_libvirtd_pid)"
  if [ -n "$pid" ] && ! has_hugetlbfs "$pid"; then
    echo "libvirtd-up: WARNING: libvirtd pid $pid sees no hugetlbfs mount: hugepage-backed guests fail at start" >&2
    echo "libvirtd-up: WARNING: (\"hugetlbfs filesystem is not mounted\"). Restart it with this script when no test runs:" >&2
    echo "libvirtd-up: WARNING: make libvirtd-down && make libvirtd" >&2
  fi
  if [ -z "$pid" ]; then
    log "reusing a libvirtd that answers on $URI (its PID could not be found)"
  elif [ -n "$(netns_inode)" ] && [ "$(proc_netns_inode "$pid")" = "$(netns_inode)" ]; then
    log "reusing libvirtd pid $pid, already running in netns $NETNS"
  elif [ "$(proc_netns_inode "$pid")" = "$(proc_netns_inode 1)" ]; then
    echo "libvirtd-up: WARNING: WARNING: the libvirtd that answers (pid $pid) runs in the HOST network namespace." >&2
    echo "libvirtd-up: WARNING: bridges, DHCP and NAT it creates land on the host's network. Stop it and rerun this script" >&2
    echo "libvirtd-up: WARNING: to get one confined to netns $NETNS." >&2
  else
    log "reusing libvirtd pid $pid, running in another network namespace (not $NETNS)"
  fi
  summary
  exit 0
fi

if ! command -v libvirtd >/dev/null 2>&1 || ! command -v virtlogd >/dev/null 2>&1; then
  log "libvirtd not installed; running scripts/install-deps.sh"
  bash "$here/install-deps.sh"
fi

# libvirt's QEMU driver refuses to initialise unless the user and group it
# runs guests as exist; Debian creates them in libvirt-daemon-system, which
# hpcvm does not install (it would start a libvirtd in the host namespace).
qemu_user=libvirt-qemu
if ! getent group "$qemu_user" >/dev/null; then
  groupadd --system "$qemu_user"
fi
getent group kvm >/dev/null || groupadd --system kvm
if ! getent passwd "$qemu_user" >/dev/null; then
  useradd --system --gid "$qemu_user" --groups kvm --home-dir /var/lib/libvirt \
    --no-create-home --shell /usr/sbin/nologin --comment "Libvirt Qemu" "$qemu_user"
  log "created system user $qemu_user (groups $qemu_user, kvm)"
elif ! id -nG "$qemu_user" | tr ' ' '\n' | grep -qx kvm; then
  usermod -a -G kvm "$qemu_user"
fi
# Directories libvirtd expects from its packaging; it will not create its
# log directory by itself.
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt /var/cache/libvirt

if [ -e /dev/kvm ]; then
  chgrp kvm /dev/kvm && chmod 660 /dev/kvm
fi

# Hugepage-backed guests: libvirt looks for hugetlbfs mounts once, when it
# starts, and refuses hugepages without one. systemd mounts /dev/hugepages
# on an ordinary host; where nothing did, this does the same.
if ! has_hugetlbfs self; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs hugetlbfs /dev/hugepages
  log "mounted hugetlbfs at /dev/hugepages (libvirt backs hugepage guests with it)"
fi

if ! ip netns list | awk '{print $1}' | grep -qx "$NETNS"; then
  ip netns add "$NETNS"
  log "created network namespace $NETNS"
fi
ip netns exec "$NETNS" ip link set lo up

mkdir -p "$STATE_DIR"

# wait_pidfile FILE NAME: echoes the PID once FILE names a live NAME.
wait_pidfile() {
  local p end=$((SECONDS + DEADLINE_SECONDS))
  while [ "$SECONDS" -lt "$end" ]; do
    p="$(cat "$1" 2>/dev/null || true)"
    if alive "$p" "$2"; then echo "$p"; return 0; fi
    sleep 0.2
  done
  return 1
}

vl_pid="$(cat "$STATE_DIR/virtlogd.pid" 2>/dev/null || true)"
if alive "$vl_pid" virtlogd; then
  log "virtlogd pid $vl_pid (started earlier by this script) still running"
elif alive "$(cat /run/virtlogd.pid 2>/dev/null || true)" virtlogd; then
  log "reusing virtlogd pid $(cat /run/virtlogd.pid) not started by this script (not recorded)"
else
  rm -f /run/virtlogd.pid
  ip netns exec "$NETNS" virtlogd -d
  vl_pid="$(wait_pidfile /run/virtlogd.pid virtlogd)" || die "virtlogd did not start; see /var/log/libvirt/virtlogd.log"
  echo "$vl_pid" >"$STATE_DIR/virtlogd.pid"
  log "started virtlogd pid $vl_pid in netns $NETNS"
fi

rm -f /run/libvirtd.pid
if ! ip netns exec "$NETNS" libvirtd -d; then
  tail -n 20 /var/log/libvirt/libvirtd.log >&2 || true
  die "libvirtd failed to start; its log is above (/var/log/libvirt/libvirtd.log)"
fi

end=$((SECONDS + DEADLINE_SECONDS))
lv_pid=""
until virsh_answers; do
  if [ -z "$lv_pid" ]; then
    p="$(cat /run/libvirtd.pid 2>/dev/null || true)"
    if alive "$p" libvirtd; then
      lv_pid="$p"
      echo "$lv_pid" >"$STATE_DIR/libvirtd.pid"
    fi
  elif ! alive "$lv_pid" libvirtd; then
    tail -n 20 /var/log/libvirt/libvirtd.log >&2 || true
    die "libvirtd pid $lv_pid exited during startup; its log is above"
  fi
  if [ "$SECONDS" -ge "$end" ]; then
    tail -n 20 /var/log/libvirt/libvirtd.log >&2 || true
    die "libvirtd did not answer on $URI within ${DEADLINE_SECONDS}s; its log is above (/var/log/libvirt/libvirtd.log)"
  fi
  sleep 0.2
done
if [ -z "$lv_pid" ]; then
  lv_pid="$(wait_pidfile /run/libvirtd.pid libvirtd)" || die "libvirtd answers but wrote no /run/libvirtd.pid; cannot record its PID"
  echo "$lv_pid" >"$STATE_DIR/libvirtd.pid"
fi
log "started libvirtd pid $lv_pid in netns $NETNS"
summary
