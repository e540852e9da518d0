#!/bin/bash
# Boots one sandbox VM: runs as PID 1 of new mount, PID, UTS and network namespaces created inside
# the fabric's mount namespace (see fabric.sh), so the VM receives every share the fabric mounts
# and nothing it mounts reaches the fabric or this machine.
# Environment: VM_DIR (the VM's own directory), VM_HOSTNAME, FABRIC_DIR, EMULATOR_DIR.
set -euo pipefail
mount --make-rslave /
root="$VM_DIR/merged"
mount -t overlay "azlin-vm" -o "lowerdir=/,upperdir=$VM_DIR/upper,workdir=$VM_DIR/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=0755 run "$root/run"
mkdir -p "$root/run/lock" "$root/run/azlin-emulator/fabric" "$root/run/azlin-emulator/control"
mount --rbind "$FABRIC_DIR" "$root/run/azlin-emulator/fabric"
mount --bind "$VM_DIR/control" "$root/run/azlin-emulator/control"
mount -o remount,bind,ro "$root/run/azlin-emulator/control"
# The emulator's own directory (other VMs' layers, share data) is part of the lower layer: hide it.
if [ -d "$root$EMULATOR_DIR" ]; then mount -t tmpfs -o mode=0700 hidden "$root$EMULATOR_DIR"; fi
hostname "$VM_HOSTNAME"
ip link set lo up 2>/dev/null || true
# PID 1 of the VM: bash reaps the orphans that Run Command scripts leave behind.
exec chroot "$root" /bin/bash -c 'trap "exit 0" TERM; while :; do sleep 86400 & wait $!; done'
