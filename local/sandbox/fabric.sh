#!/bin/bash
# The storage fabric: PID 1 of a mount and PID namespace of its own, holding one overlay per NFS
# share, named like the share's NFS address, on a shared tmpfs. VMs are created inside this mount
# namespace as slaves of that tmpfs, so a share mounted here appears in every VM, and all VMs bind
# the same filesystem: a write in one is seen at once in the others, as with a real NFS server.
# Environment: FABRIC_DIR.
set -euo pipefail
mount -t tmpfs -o mode=0700 fabric "$FABRIC_DIR"
mount --make-shared "$FABRIC_DIR"
exec /bin/bash -c 'trap "exit 0" TERM; while :; do sleep 86400 & wait $!; done'
