#!/usr/bin/env bash
# The baseline of `make bench`: the libvirt work of an hpcvm start or destroy
# done by a plain virsh script, the per-VM work 8 VMs at a time (PARALLEL).
#   bench-virsh.sh up   DIR URI   DIR holds network.xml, pool.xml, base.xml,
#                                 base.img (the image), vms (one name a line),
#                                 <vm>-volume.xml and <vm>-domain.xml
#   bench-virsh.sh down DIR URI
set -euo pipefail
mode=$1 dir=$2 uri=$3
v() { virsh -q -c "$uri" "$@" >/dev/null; }
net=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$dir/network.xml" | head -1)
pool=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$dir/pool.xml" | head -1)
base=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$dir/base.xml" | head -1)
mapfile -t vms <"$dir/vms"

# Run the per-VM work PARALLEL at a time, and fail if any of it failed: a
# bare `wait` would report success whatever the background jobs did.
parallel=${PARALLEL:-8}
running=0 failed=0
throttle() {
  if [ "$running" -ge "$parallel" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
}
wait_all() {
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  [ "$failed" -eq 0 ] || { echo "bench-virsh: a per-VM step failed" >&2; exit 1; }
}

case $mode in
up)
  v net-define "$dir/network.xml"; v net-start "$net"; v net-autostart "$net"
  v pool-define "$dir/pool.xml"; v pool-build "$pool"; v pool-start "$pool"; v pool-autostart "$pool"
  v vol-create "$pool" "$dir/base.xml"; v vol-upload --pool "$pool" "$base" "$dir/base.img"
  for vm in "${vms[@]}"; do
    throttle
    ( set -e; v vol-create "$pool" "$dir/$vm-volume.xml"; v define "$dir/$vm-domain.xml"
      v start "$(sed -n 's:^  <name>\(.*\)</name>:\1:p' "$dir/$vm-domain.xml")" ) &
    running=$((running + 1))
  done
  wait_all
  ;;
down)
  for vm in "${vms[@]}"; do
    throttle
    ( set -e; dom=$(sed -n 's:^  <name>\(.*\)</name>:\1:p' "$dir/$vm-domain.xml")
      v destroy "$dom"; v undefine "$dom"
      v vol-delete --pool "$pool" "$vm.qcow2" ) &
    running=$((running + 1))
  done
  wait_all
  v vol-delete --pool "$pool" "$base"
  v pool-destroy "$pool"; v pool-delete "$pool"; v pool-undefine "$pool"
  v net-destroy "$net"; v net-undefine "$net"
  ;;
esac
