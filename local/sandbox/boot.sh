#!/bin/bash
# Boots one sandbox VM, in two stages, inside the fabric's mount namespace (see fabric.sh) so the
# VM receives every share the fabric mounts and nothing it mounts reaches the fabric or this
# machine.
# 1. As this machine's root, in new mount and PID namespaces: the VM's root (an overlay of this
#    machine's root), its own /proc (with /proc/sys read-only), /dev, /run and the fabric's shares;
#    then pivot_root, so nothing of this machine is left but the read-only lower layer.
# 2. In a new user namespace (IDs 0-65535 are this machine's, so files keep their owners) with its
#    own mount, UTS, IPC and network namespaces: the VM's root is root there only. It cannot load
#    modules, create devices or change kernel settings, and the mounts of stage 1 are locked.
# Environment: VM_DIR (the VM's own directory), VM_HOSTNAME, FABRIC_DIR, EMULATOR_DIR.
set -euo pipefail
mount --make-rslave /
root="$VM_DIR/merged"
mount -t overlay "azlin-vm" -o "lowerdir=/,upperdir=$VM_DIR/upper,workdir=$VM_DIR/work" "$root"
mount -t proc proc "$root/proc"
for knob in sys sysrq-trigger; do
    [ -e "$root/proc/$knob" ] || continue
    mount --bind "$root/proc/$knob" "$root/proc/$knob"
    mount -o remount,bind,ro "$root/proc/$knob"
done
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
mount -t tmpfs -o mode=0755 run "$root/run"
mkdir -p "$root/run/lock" "$root/run/azlin-emulator/fabric" "$root/run/azlin-emulator/hosts"
mount --rbind "$FABRIC_DIR" "$root/run/azlin-emulator/fabric"
# The emulator's own directory (other VMs' layers, share data) is part of the lower layer: hide it.
if [ -d "$root$EMULATOR_DIR" ]; then mount -t tmpfs -o mode=0700 hidden "$root$EMULATOR_DIR"; fi
cd "$root"
mkdir -p .old-root
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
cd /
# Stage 2. userns.py stays PID 1 of the VM and reaps the orphans that scripts leave behind.
# shellcheck disable=SC2016  # expanded by the inner bash
exec /usr/bin/python3 /usr/local/lib/azlin-emulator/userns.py unshare --mount --uts --net --ipc --propagation unchanged -- /bin/bash -c '
    hostname "$VM_HOSTNAME" 2>/dev/null || echo "$VM_HOSTNAME" > /proc/sys/kernel/hostname
    ip link set lo up 2>/dev/null || true
    trap "exit 0" TERM
    while :; do sleep 86400 & wait $!; done'
