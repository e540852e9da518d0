#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_endpoint, valid_mount_point, source_serves).
# Verify: read-only. Reports what is mounted on MOUNT_POINT (source, type, options), whether it is
# encrypted in transit (aznfs's TLS tunnel), and whether /etc/fstab holds the line for NFS_ENDPOINT
# there. Changes nothing on the VM or the share.
# The last stdout line is `RESULT {json}`.
set -uo pipefail

FSTAB=${FSTAB:-/etc/fstab}
if ! valid_endpoint "${NFS_ENDPOINT:-}" || ! valid_mount_point "${MOUNT_POINT:-}"; then
    printf 'RESULT {"success":false,"nonce":%s,"errors":["NFS_ENDPOINT or MOUNT_POINT is not valid"]}\n' "$(json_string "${NONCE:-}")"
    exit 64
fi
mounted=false source="" fstype="" options=""
if mountpoint -q "$MOUNT_POINT"; then  # mounts stacked on it are listed oldest first: the last one shows
    mounted=true
    source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT" | tail -n 1)
    fstype=$(findmnt -n -o FSTYPE --mountpoint "$MOUNT_POINT" | tail -n 1)
    options=$(findmnt -n -o OPTIONS --mountpoint "$MOUNT_POINT" | tail -n 1)
fi
# Run Command keeps 4 KB of output: what the VM's mount table says is clipped so RESULT always fits.
source=${source:0:512} fstype=${fstype:0:64} options=${options:0:512}
encrypted=false  # aznfs's TLS tunnel: the share mounted from a local stunnel port
[[ "$source" == 127.0.0.1:* ]] && encrypted=true
raw_source=$source
source_serves "$source" "$NFS_ENDPOINT" && source=$NFS_ENDPOINT
in_fstab=false
awk -v mp="$MOUNT_POINT" -v ep="$NFS_ENDPOINT" '$1 !~ /^#/ && $2 == mp && $1 == ep {found=1} END {exit !found}' \
    "$FSTAB" 2>/dev/null && in_fstab=true
printf 'RESULT {"success":true,"mounted":%s,"source":%s,"rawSource":%s,"encrypted":%s,"fsType":%s,"options":%s,"inFstab":%s,"nonce":%s}\n' \
    "$mounted" "$(json_string "$source")" "$(json_string "$raw_source")" "$encrypted" "$(json_string "$fstype")" \
    "$(json_string "$options")" "$in_fstab" "$(json_string "${NONCE:-}")"
