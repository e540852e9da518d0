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
# A /dev of its own: the usual character devices, a private devpts and shm; no disk of this machine.
mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
for device in null zero full random urandom tty; do
    touch "$root/dev/$device"
    mount --bind "/dev/$device" "$root/dev/$device"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"
mount -t tmpfs -o mode=0755 run "$root/run"
mkdir -p "$root/run/lock" "$root/run/azlin-emulator/fabric" "$root/run/azlin-emulator/control"
mount --rbind "$FABRIC_DIR" "$root/run/azlin-emulator/fabric"
mount --bind "$VM_DIR/control" "$root/run/azlin-emulator/control"
mount -o remount,bind,ro "$root/run/azlin-emulator/control"
# The emulator's own directory (other VMs' layers, share data) is part of the lower layer: hide it.
if [ -d "$root$EMULATOR_DIR" ]; then mount -t tmpfs -o mode=0700 hidden "$root$EMULATOR_DIR"; fi
hostname "$VM_HOSTNAME" 2>/dev/null || echo "$VM_HOSTNAME" > /proc/sys/kernel/hostname
ip link set lo up 2>/dev/null || true
# PID 1 of the VM: bash reaps the orphans that Run Command scripts leave behind.
exec chroot "$root" /bin/bash -c 'trap "exit 0" TERM; while :; do sleep 86400 & wait $!; done'
