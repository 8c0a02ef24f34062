#!/usr/bin/env bash
# Builds the tiny bootable Linux guest hpcvm's tests run: a qcow2 disk with
# syslinux, Debian's cloud kernel and a busybox-static initramfs. Only Debian
# packages are used; no loop devices, no mounts, no downloads besides apt.
# See --help. Helper files (the guest's /init etc.) live in scripts/testimage/.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/make-test-image.sh [--help] OUT.qcow2

Builds a tiny (~16 MB) bootable test guest image OUT.qcow2:
  MBR (syslinux mbr.bin) + one FAT partition at 1 MiB holding syslinux,
  the kernel of linux-image-cloud-amd64 and a busybox-static initramfs.

The guest prints on its serial console (ttyS0):
  hpcvm-test-guest: up               booted, acpid is listening
  hpcvm-test-guest: lease <ip>       udhcpc got a lease on eth0 (retried forever)
  hpcvm-test-guest: powering off     ACPI power button pressed; then powers off
  hpcvm-test-guest: virtiofs <tag> mounted at <dir>
                                     a share of hpcvm's fw_cfg mount table; a file
                                     hpcvm-probe in it is copied to hpcvm-probe.read
  hpcvm-test-guest: guest agent on <port>
                                     Debian's qemu-ga answers on the virtio-serial
                                     port org.qemu.guest_agent.0 (hpcvm status reads
                                     the guest's addresses through it)

Missing Debian packages are installed with apt-get (needs root). Environment:
  KERNEL_VERSION   kernel to use (default: newest /boot/vmlinuz-*-cloud-amd64)

Idempotent: OUT.qcow2 is rebuilt from scratch and replaced atomically.
EOF
}

log() { echo "make-test-image: $*"; }
die() { echo "make-test-image: error: $*" >&2; exit 1; }

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
  -*) die "unknown option $1 (see --help)" ;;
esac
[ $# -eq 1 ] || { usage >&2; exit 2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
assets=$script_dir/testimage
out=$1
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
[ -d "$(dirname "$out")" ] || die "directory of $out does not exist"

# --- packages ---------------------------------------------------------------
packages=(linux-image-cloud-amd64 busybox-static syslinux syslinux-common
          mtools dosfstools fdisk qemu-utils cpio gzip coreutils qemu-guest-agent)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (install them as root)"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi
export PATH=$PATH:/usr/sbin:/sbin

# --- kernel and modules -----------------------------------------------------
if [ -n "${KERNEL_VERSION:-}" ]; then
  kver=$KERNEL_VERSION
else
  kver=$(find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)
fi
[ -n "$kver" ] && [ -f "/boot/vmlinuz-$kver" ] || die "no cloud kernel in /boot (linux-image-cloud-amd64)"
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || die "$moddir/modules.dep missing"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox (busybox-static) not found"
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "$mbr (syslinux-common) not found"
qemu_ga=/usr/sbin/qemu-ga
[ -x "$qemu_ga" ] || die "$qemu_ga (qemu-guest-agent) not found"
log "kernel $kver"

work=$(mktemp -d "${TMPDIR:-/tmp}/make-test-image.XXXXXX")
tmp_out=$out.tmp.$$
trap 'rm -rf "$work" "$tmp_out"' EXIT
root=$work/root

# Modules the guest needs: virtio-net over virtio-pci for DHCP, the ACPI
# button and evdev for the power button, virtiofs and qemu_fw_cfg for the
# directories hpcvm shares (the mount table comes through fw_cfg),
# virtio_console for the guest agent's virtio-serial port. Built-in ones
# are skipped; deps are resolved from modules.dep and loaded first.
wanted=(virtio_pci virtio_net button evdev virtiofs qemu_fw_cfg virtio_console)
declare -A seen=()
order=()
modpath() { # module name -> path relative to $moddir (empty if built in / absent)
  local n=$1 alt=${1//_/-}
  awk -F: -v a="$n" -v b="$alt" '{ f=$1; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f);
    if (f == a || f == b) { print $1; exit } }' "$moddir/modules.dep"
}
add_module() { # path relative to $moddir
  local p=$1 d
  [ -z "${seen[$p]:-}" ] || return 0
  seen[$p]=1
  for d in $(awk -F: -v p="$p" '$1 == p { print $2; exit }' "$moddir/modules.dep"); do
    add_module "$d"
  done
  order+=("$p")
}
for m in "${wanted[@]}"; do
  p=$(modpath "$m")
  if [ -n "$p" ]; then
    add_module "$p"
  elif grep -Eq "/${m//_/[-_]}\.ko$" "$moddir/modules.builtin"; then
    :
  else
    die "module $m neither built into $kver nor in modules.dep"
  fi
done

mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc/acpi/PWRF,lib/modules,var/log}
: >"$root/lib/modules/load-order"
for p in "${order[@]}"; do
  base=${p##*/}
  dst=$root/lib/modules/${base%.ko*}.ko
  # busybox insmod cannot be trusted with compressed modules: decompress.
  case "$p" in
    *.ko)     cp "$moddir/$p" "$dst" ;;
    *.ko.xz)  xz -dc "$moddir/$p" >"$dst" ;;
    *.ko.zst) zstd -qdc "$moddir/$p" >"$dst" ;;
    *.ko.gz)  gzip -dc "$moddir/$p" >"$dst" ;;
    *) die "unexpected module file $p" ;;
  esac
  echo "${dst##*/}" >>"$root/lib/modules/load-order"
done
log "modules: $(tr '\n' ' ' <"$root/lib/modules/load-order")"

# --- initramfs --------------------------------------------------------------
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
ln -s bin "$root/sbin"
install -m 0755 "$assets/init" "$root/init"
install -m 0755 "$assets/udhcpc.script" "$root/etc/udhcpc.script"
install -m 0755 "$assets/hpcvm-connect" "$root/bin/hpcvm-connect"
install -m 0755 "$assets/power-button" "$root/etc/acpi/PWRF/00000080"
install -m 0644 "$assets/acpid.conf" "$root/etc/acpid.conf"
# The QEMU guest agent and the shared libraries it loads (ldd), each at the
# path the dynamic loader looks for it, symlinks resolved.
install -D -m 0755 "$qemu_ga" "$root/usr/sbin/qemu-ga"
libs=$(ldd "$qemu_ga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || die "ldd found no libraries for $qemu_ga"
for l in $libs; do
  install -D -m 0755 "$(readlink -f "$l")" "$root$l"
done
log "guest agent: $qemu_ga with $(echo $libs | wc -w) libraries"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9n >"$work/initrd.gz"
log "initramfs $(du -h "$work/initrd.gz" | cut -f1)"

# --- disk image: MBR + FAT partition at 1 MiB ---------------------------------
kernel=/boot/vmlinuz-$kver
payload=$(( $(stat -c %s "$kernel") + $(stat -c %s "$work/initrd.gz") ))
part_mib=$(( payload / 1048576 + 4 ))   # contents + slack for FAT and syslinux
disk=$work/disk.img
truncate -s $(( (1 + part_mib) * 1048576 )) "$disk"
log "disk: ${part_mib} MiB FAT partition at 1 MiB"
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk --quiet "$disk"
mkfs.vfat --offset 2048 -F 16 -n HPCVMTEST -i 48504356 "$disk" $(( part_mib * 1024 )) >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$disk@@1M" "$kernel" ::vmlinuz
mcopy -i "$disk@@1M" "$work/initrd.gz" ::initrd.gz
mcopy -i "$disk@@1M" "$assets/syslinux.cfg" ::syslinux.cfg
syslinux --offset 1048576 --install "$disk"
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none

# --- qcow2 ------------------------------------------------------------------
qemu-img convert -c -O qcow2 "$disk" "$tmp_out"
mv -f "$tmp_out" "$out"
log "wrote $out ($(du -h --apparent-size "$out" | cut -f1))"
