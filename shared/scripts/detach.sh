#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_endpoint, valid_mount_point).
# Detach: give a VM back a home on its own disk. Nothing on the share is ever deleted, and the
# copy that is not put in place is kept.
#
# Runs as root through managed Run Command; values arrive as environment variables only:
#   NFS_ENDPOINT   the share the home is attached to
#   MOUNT_POINT    the home, e.g. /home/azureuser
#   MODE           copy (default): the share's contents become the local home
#                  restore: the home the VM had before attach comes back (BACKUP_PATH)
#   BACKUP_PATH    the backup attach made (restore only)
# The last stdout line is `RESULT {json}`; the exit status is 0 only on success.
#
# copy: check the local disk has room, copy the share into a new local directory (any failure:
# the copy is removed, nothing else changed), unmount, drop the fstab line, put the copy in place.
# restore: unmount, drop the fstab line, put the backup in place. A VM that is not attached is
# success. The directory left by the unmount is empty and only ever removed with rmdir.
# `A && B || fail ...` is meant: fail when either A or B fails.
# shellcheck disable=SC2015
set -uo pipefail
umask 022

FSTAB=${FSTAB:-/etc/fstab}
errors=() copied=0 kept="" local_copy="" unmounted=false


result() {
    local status=$1 list="" e
    for e in "${errors[@]+"${errors[@]}"}"; do list+="${list:+,}$(json_string "$e")"; done
    printf 'RESULT {"success":%s,"mountPoint":%s,"mode":%s,"copiedFiles":%d,"keptPath":%s,"errors":[%s]}\n' \
        "$([ "$status" -eq 0 ] && echo true || echo false)" "$(json_string "${MOUNT_POINT:-}")" \
        "$(json_string "${MODE:-copy}")" "$copied" "$([ -n "$kept" ] && json_string "$kept" || echo null)" "$list"
    exit "$status"
}

fail() {
    errors+=("$2")
    echo "detach: $2" >&2
    # Before the unmount nothing changed but our own local copy: drop it. After it, keep everything.
    if ! $unmounted && [ -n "$local_copy" ] && [ -d "$local_copy" ] && [[ "$local_copy" == "$MOUNT_POINT".azlin-local-* ]]; then
        rm -rf --one-file-system -- "$local_copy"
    fi
    result "$1"
}


drop_fstab_line() {  # atomically, leaving every other line as it was
    local next
    grep -qsF " $MOUNT_POINT " "$FSTAB" || return 0
    next=$(mktemp "$FSTAB.azlin-new.XXXXXX") || return 1
    awk -v mp="$MOUNT_POINT" '!($1 !~ /^#/ && $2 == mp)' "$FSTAB" > "$next" && chmod --reference="$FSTAB" "$next" \
        && mv -f "$next" "$FSTAB" || { rm -f "$next"; return 1; }
}

trap 'fail 70 "interrupted"' INT TERM

valid_endpoint "${NFS_ENDPOINT:-}" || fail 64 "NFS_ENDPOINT is not an Azure Files NFS address"
valid_mount_point "${MOUNT_POINT:-}" || fail 64 "MOUNT_POINT must be an absolute path without '..'"
MODE=${MODE:-copy}
[[ "$MODE" == copy || "$MODE" == restore ]] || fail 64 "MODE must be copy or restore"

if ! mountpoint -q "$MOUNT_POINT"; then  # not attached (or detached before): only tidy fstab
    drop_fstab_line || fail 74 "$FSTAB could not be written"
    result 0
fi
source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
[ "$source" = "$NFS_ENDPOINT" ] || fail 66 "$MOUNT_POINT is mounted from $source, not $NFS_ENDPOINT: left alone"

if [ "$MODE" = restore ]; then
    [[ "${BACKUP_PATH:-}" == "$MOUNT_POINT".azlin-backup-* && "$BACKUP_PATH" != *..* ]] \
        || fail 64 "BACKUP_PATH must be the backup attach made of $MOUNT_POINT"
    [ -d "$BACKUP_PATH" ] || fail 65 "the pre-attach home $BACKUP_PATH is not on this VM"
    replacement=$BACKUP_PATH
else
    needed=$(du -s --block-size=1 -x "$MOUNT_POINT" | cut -f1)
    available=$(df --output=avail --block-size=1 "$(dirname "$MOUNT_POINT")" | tail -1 | tr -d ' ')
    [ "$needed" -lt "$available" ] || fail 71 "the local disk has $available bytes free; the home needs $needed"
    local_copy="$MOUNT_POINT.azlin-local-$(date -u +%Y%m%dT%H%M%SZ)-$$"
    mkdir "$local_copy" || fail 73 "could not create $local_copy"
    cp -a "$MOUNT_POINT/." "$local_copy/" || fail 71 "copying the share to the local disk failed"
    copied=$(count_files "$local_copy")
    [ "$copied" -eq "$(count_files "$MOUNT_POINT")" ] || fail 71 "the share changed while it was copied"
    chmod --reference="$MOUNT_POINT" "$local_copy" && chown --reference="$MOUNT_POINT" "$local_copy"
    replacement=$local_copy
fi

umount "$MOUNT_POINT" 2>/dev/null || umount -l "$MOUNT_POINT" || fail 69 "$MOUNT_POINT could not be unmounted"
unmounted=true
drop_fstab_line || fail 74 "$FSTAB could not be written; the home is unmounted and $replacement is ready"
rmdir "$MOUNT_POINT" 2>/dev/null || mv "$MOUNT_POINT" "$MOUNT_POINT.azlin-left-$(date +%s)-$$"
mv -T "$replacement" "$MOUNT_POINT" || fail 73 "could not put $replacement in place"
[ "$MODE" = copy ] && [ -n "${BACKUP_PATH:-}" ] && kept=$BACKUP_PATH  # the pre-attach home is kept
trap - INT TERM
result 0
