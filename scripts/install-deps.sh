#!/usr/bin/env bash
# Installs the Debian 12 packages hpcvm needs to build, test and run on a
# hypervisor host: libvirt's daemon and QEMU, the headers cgo needs, and the
# tools the test guest image is built with. Idempotent: only missing packages
# are installed, so a second run costs one dpkg query.
set -euo pipefail

packages=(
  # build: cgo bindings for libvirt
  gcc pkg-config libvirt-dev
  # the hypervisor: libvirtd with its QEMU driver, virsh, QEMU itself
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils
  # virt-xml-validate (libvirt-clients) runs xmllint: tests check every
  # rendered document against libvirt's RelaxNG schemas
  libxml2-utils
  # what libvirt's virtual networks need: dnsmasq for DHCP, iproute2 and
  # iptables for bridges and firewall rules
  dnsmasq-base iproute2 iptables
  # ansible-inventory: tests check that Ansible reads the inventories
  # hpcvm writes (INI and YAML)
  ansible-core
  # headless Chromium: an e2e test opens the embedded Temporal Web UI on a
  # run and checks (and photographs) what an operator sees there
  chromium
  # the bootable test guest image (scripts/make-test-image.sh)
  linux-image-cloud-amd64 busybox-static syslinux syslinux-common mtools dosfstools fdisk cpio gzip
  # PostgreSQL server: tests run hpcvm against a Temporal server with
  # PostgreSQL persistence (scripts/postgres-up.sh starts a project-owned
  # instance; Debian's own cluster is left alone)
  postgresql
  # the guest agent inside the test guest: hpcvm status reads addresses
  # through it (copied into the image; it does not run on the host)
  qemu-guest-agent
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root (or install them with apt-get)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# libvirt-daemon-config-network would define libvirt's "default" NAT network
# on 192.168.122.0/24; hpcvm defines its own networks, so it is kept out.
apt-get update -qq
apt-get install -y -q --no-install-recommends "${missing[@]}" libvirt-daemon-config-network-
