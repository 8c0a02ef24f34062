#!/usr/bin/env bash
# The "outside world" of the test clusters, for the tests that prove what a
# guest reaches. Everything stays in network namespaces this project made:
#
#   hpcvm-test  (libvirtd, the clusters' bridges)   hpcvm-up0 198.18.0.1/30
#        |  veth
#   hpcvm-world (a host beyond the clusters)        hpcvm-w0  198.18.0.2/30
#
# hpcvm-world has no route to the clusters' networks: a guest's packets
# come back only if libvirt's NAT rewrote them to 198.18.0.1 on the way out.
# 198.18.0.0/15 is the range set aside for benchmark tests (RFC 2544).
#
#   test-uplink.sh up     make it (idempotent); prints the world's address
#   test-uplink.sh down   remove it
set -euo pipefail
exec </dev/null

NETNS=hpcvm-test
WORLD=hpcvm-world
UP=hpcvm-up0
PEER=hpcvm-w0
UP_ADDR=198.18.0.1/30
WORLD_ADDR=198.18.0.2

die() { echo "test-uplink: ERROR: $*" >&2; exit 1; }
has_netns() { [ -e "/run/netns/$1" ]; }

[ "$(id -u)" -eq 0 ] || die "run as root"
case "${1:-}" in
up)
  has_netns "$NETNS" || die "network namespace $NETNS does not exist: start libvirtd with scripts/libvirtd-up.sh first"
  has_netns "$WORLD" || ip netns add "$WORLD"
  ip netns exec "$WORLD" ip link set lo up
  if ! ip netns exec "$NETNS" ip link show "$UP" >/dev/null 2>&1; then
    # Made inside the namespaces: the host's own network never sees it.
    ip netns exec "$NETNS" ip link add "$UP" type veth peer name "$PEER" netns "$WORLD"
  fi
  ip netns exec "$NETNS" ip addr replace "$UP_ADDR" dev "$UP"
  ip netns exec "$NETNS" ip link set "$UP" up
  ip netns exec "$WORLD" ip addr replace "$WORLD_ADDR/30" dev "$PEER"
  ip netns exec "$WORLD" ip link set "$PEER" up
  echo "$WORLD_ADDR"
  ;;
down)
  if has_netns "$NETNS"; then
    ip netns exec "$NETNS" ip link del "$UP" 2>/dev/null || true
  fi
  if has_netns "$WORLD"; then
    ip netns del "$WORLD"
  fi
  ;;
*)
  echo "usage: test-uplink.sh up | down" >&2
  exit 2
  ;;
esac
