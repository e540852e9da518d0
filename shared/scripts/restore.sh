#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_endpoint, check_owner, as_owner, nfs_options).
# Restore: put back one path of a shared home from a share snapshot. Nothing is overwritten: a
# path that exists on the share now gets the snapshot's version beside it, as
# <path>.restored-<STAMP>. Azure shows an NFS share's snapshots read-only in its hidden
# .snapshots directory (azure-docs articles/storage/files/storage-snapshots-files.md).
#
# Runs as root through managed Run Command; values arrive as environment variables only:
#   NFS_ENDPOINT    the share, <account>.file.core.windows.net:/<account>/<share>
#   SNAPSHOT_DIR    the snapshot's directory under .snapshots (Azure does not document the NFS
#   SNAPSHOT_TIME   name: the @GMT- token, then the snapshot time itself, are looked for)
#   RESTORE_PATH    relative to the home, no '.' or '..' components
#   STAMP           names the copy put beside a path that exists (the snapshot, compact)
#   OWNER           the home's user: every file operation in the share runs as this user
#   ENCRYPTION      tls: the account requires encryption in transit (mount through aznfs)
#   NONCE           the operation's secret, echoed in RESULT
# Root only mounts: the share and the snapshot, each on a directory of its own under /run/azlin
# that only root may write, so nothing the user controls is ever followed by root.
# The last stdout line is `RESULT {json}`; the exit status is 0 only on success.
# `A && B || fail ...` is meant: fail when either A or B fails.
# shellcheck disable=SC2015
set -uo pipefail
umask 022

errors=() restored="" files=0 work=""

result() {
    local status=$1 list="" e
    for e in "${errors[@]+"${errors[@]}"}"; do list+="${list:+,}$(json_string "$e")"; done
    printf 'RESULT {"success":%s,"path":%s,"restoredTo":%s,"files":%d,"nonce":%s,"errors":[%s]}\n' \
        "$([ "$status" -eq 0 ] && echo true || echo false)" "$(json_string "${RESTORE_PATH:-}")" \
        "$([ -n "$restored" ] && json_string "$restored" || echo null)" "$files" \
        "$(json_string "${NONCE:-}")" "$list"
    exit "$status"
}

fail() {
    errors+=("$2")
    echo "restore: $2" >&2
    result "$1"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    [ -n "$work" ] || return 0
    for dir in "$work/snapshot" "$work/share"; do
        mountpoint -q "$dir" && { umount "$dir" 2>/dev/null || umount -l "$dir"; }
    done
    rmdir "$work/snapshot" "$work/share" "$work" 2>/dev/null
    return 0
}
trap cleanup EXIT

valid_relative() {  # a path inside the home: relative, plain components, no control characters
    local part
    [ -n "$1" ] && [ "${#1}" -le 1024 ] && [[ "$1" != /* ]] && [[ "$1" != *[[:cntrl:]]* ]] || return 1
    IFS=/ read -r -a parts <<< "$1"
    for part in "${parts[@]}"; do
        [ -n "$part" ] && [ "$part" != . ] && [ "$part" != .. ] || return 1
    done
}

# shellcheck disable=SC2317 # run through as_owner
owner_restore() {  # owner_restore SNAPSHOT SHARE PATH STAMP: prints where PATH went, relative
    local from="$1/$3" name="$3" to partial
    [ -e "$from" ] || [ -L "$from" ] || { echo "$3 is not in the snapshot" >&2; return 3; }
    to="$2/$name"
    if [ -e "$to" ] || [ -L "$to" ]; then
        name="$3.restored-$4" to="$2/$3.restored-$4"
        if [ -e "$to" ] || [ -L "$to" ]; then echo "$name"; return 0; fi  # this snapshot's copy: done
    fi
    mkdir -p -- "$(dirname -- "$to")" || return 1
    partial=$(mktemp -d "$(dirname -- "$to")/.azlin-restore.XXXXXX") || return 1
    if cp -a -- "$from" "$partial/copy" && mv -T -- "$partial/copy" "$to"; then
        rmdir -- "$partial"
        echo "$name"
        return 0
    fi
    rm -rf -- "$partial"
    return 1
}

valid_endpoint "${NFS_ENDPOINT:-}" || fail 64 "NFS_ENDPOINT is not an Azure Files NFS address"
valid_relative "${RESTORE_PATH:-}" || fail 64 "RESTORE_PATH must be relative to the home, without '.' or '..'"
[[ "${SNAPSHOT_DIR:-}${SNAPSHOT_TIME:-}" =~ ^[A-Za-z0-9@.:T-]+$ ]] || fail 64 "SNAPSHOT_DIR or SNAPSHOT_TIME is not valid"
[[ "${STAMP:-}" =~ ^[0-9TZ]{1,32}$ ]] || fail 64 "STAMP is not valid"
[[ -z "${ENCRYPTION:-}" || "$ENCRYPTION" == tls ]] || fail 64 "ENCRYPTION must be tls or unset"
FSTYPE=nfs
[ "${ENCRYPTION:-}" = tls ] && FSTYPE=aznfs
OPTIONS=$(nfs_options)

mkdir -p /run/azlin || fail 70 "/run/azlin could not be made"
work=$(mktemp -d /run/azlin/restore.XXXXXX) || fail 70 "no working directory under /run/azlin"
chmod 0711 "$work" && mkdir -m 0755 "$work/share" "$work/snapshot" || fail 70 "no mount points under $work"
# shellcheck disable=SC2034 # read by check_owner: the parents it checks are root's own
MOUNT_POINT=$work/share owner_problem=""
check_owner || fail "${owner_problem%% *}" "${owner_problem#* }"
bounded mount -t "$FSTYPE" -o "$OPTIONS" "$NFS_ENDPOINT" "$work/share" \
    || fail 69 "the share could not be mounted"
found=false
for name in "${SNAPSHOT_DIR:-}" "${SNAPSHOT_TIME:-}"; do
    [ -n "$name" ] || continue
    if bounded mount -t "$FSTYPE" -o "$OPTIONS,ro" "$NFS_ENDPOINT/.snapshots/$name" "$work/snapshot" 2>/dev/null; then
        found=true
        break
    fi
done
$found || fail 66 "the snapshot is not under the share's .snapshots directory"
restored=$(as_owner owner_restore "$work/snapshot" "$work/share" "$RESTORE_PATH" "$STAMP" 2>"$work/error")
status=$?
if [ "$status" -ne 0 ]; then
    restored=""
    [ "$status" -eq 3 ] && fail 66 "$RESTORE_PATH is not in the snapshot"
    fail 73 "the copy failed: $(tail -c 300 "$work/error" 2>/dev/null)"
fi
rm -f "$work/error"
if [ -d "$work/share/$restored" ] && [ ! -L "$work/share/$restored" ]; then
    files=$(as_owner find "$work/share/$restored" -mindepth 1 -printf . | wc -c)
else
    files=1
fi
result 0
