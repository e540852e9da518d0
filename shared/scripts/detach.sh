#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_*, state_path, take_lock, drop_fstab_line).
# Detach: give a VM back a home on its own disk. Nothing on the share is ever deleted, and the
# copy that is not put in place is kept.
#
# Runs as root through managed Run Command; values arrive as environment variables only:
#   NFS_ENDPOINT   the share the home is attached to
#   MOUNT_POINT    the home, e.g. /home/azureuser
#   OWNER          the home's user: the copy is made as this user, never as root
#   MODE           copy (default): the share's contents become the local home
#                  restore: the home the VM had before attach comes back (BACKUP_PATH)
#   BACKUP_PATH    the backup attach made (restore; kept in copy mode)
#   NONCE          the operation's secret (a protected parameter), echoed in RESULT: the service
#                  takes a run's output as its operation's only when it carries it
#   TIME_BUDGET_SECONDS, HEARTBEAT_SECONDS  see lib.sh
# The last stdout line is `RESULT {json}`; the exit status is 0 only on success.
#
# copy: check the local disk has room (with a margin), copy the share into a new local directory
# as the home's owner (a failure removes only that copy). A device node on the share is never made
# on the VM's disk (the owner cannot make one: each is reported and skipped), and no file keeps a
# setuid or setgid bit: root on another VM may have put them on the share. Then, for both modes: record the swap in a state file, drop
# the fstab line, unmount, and put the replacement in place. A retry of an interrupted detach finds
# the state file and finishes the swap. The directory left by the unmount is empty and is only
# ever removed with rmdir. A VM with nothing of this share on it answers notAttached.
# `A && B || fail ...` is meant: fail when either A or B fails.
# shellcheck disable=SC2015
set -uo pipefail
umask 022

FSTAB=${FSTAB:-/etc/fstab}
errors=() copied=0 kept="" local_copy="" swapping=false not_attached=false lazy=false state_file=""

result() {
    local status=$1 list="" e
    for e in "${errors[@]+"${errors[@]}"}"; do list+="${list:+,}$(json_string "$e")"; done
    printf 'RESULT {"success":%s,"mountPoint":%s,"mode":%s,"copiedFiles":%d,"keptPath":%s,"notAttached":%s,"lazyUnmount":%s,"nonce":%s,"errors":[%s]}\n' \
        "$([ "$status" -eq 0 ] && echo true || echo false)" "$(json_string "${MOUNT_POINT:-}")" \
        "$(json_string "${MODE:-copy}")" "$copied" "$([ -n "$kept" ] && json_string "$kept" || echo null)" \
        "$not_attached" "$lazy" "$(json_string "${NONCE:-}")" "$list"
    exit "$status"
}

fail() {
    trap '' INT TERM
    errors+=("$2")
    echo "detach: $2" >&2
    # Before the swap began, nothing changed but our own local copy: drop it. After, keep all.
    if ! $swapping && [ -n "$local_copy" ] && [ -d "$local_copy" ] && [[ "$local_copy" == "$MOUNT_POINT".azlin-local-* ]]; then
        discard_dir "$local_copy"
        [ -n "$state_file" ] && rm -f "$state_file"
    fi
    result "$1"
}

remember() {  # remember PHASE REPLACEMENT
    mkdir -p "$STATE_DIR" && printf 'mountPoint %s\nphase %s\nreplacement %s\n' "$MOUNT_POINT" "$1" "$2" \
        > "$state_file.tmp" && mv -f "$state_file.tmp" "$state_file"
}

recall() { sed -n "s/^$1 //p" "$state_file"; }

swap_in() {  # swap_in REPLACEMENT: fstab line gone, share unmounted, replacement in place
    swapping=true
    remember swapping "$1"
    echo "detach: swapping the home" >&2
    drop_fstab_line "$FSTAB" "$NFS_ENDPOINT" "$MOUNT_POINT" || fail 74 "$FSTAB could not be written"
    if mountpoint -q "$MOUNT_POINT"; then
        if ! umount "$MOUNT_POINT" 2>/dev/null; then
            umount -l "$MOUNT_POINT" || fail 69 "$MOUNT_POINT could not be unmounted"
            lazy=true
            errors+=("$MOUNT_POINT was busy: unmounted lazily; programs still in it keep writing to the share")
        fi
    fi
    if [ -d "$MOUNT_POINT" ] && ! rmdir "$MOUNT_POINT" 2>/dev/null; then
        mv -T "$MOUNT_POINT" "$MOUNT_POINT.azlin-left-$(date +%s)-$$"
    fi
    mv -T "$1" "$MOUNT_POINT" || fail 73 "could not put $1 in place"
    rm -f "$state_file" "$(state_path attached "$MOUNT_POINT")"
}

trap 'fail 70 "interrupted"' INT TERM

valid_endpoint "${NFS_ENDPOINT:-}" || fail 64 "NFS_ENDPOINT is not an Azure Files NFS address"
valid_mount_point "${MOUNT_POINT:-}" || fail 64 "MOUNT_POINT must be a canonical absolute path"
MODE=${MODE:-copy}
[[ "$MODE" == copy || "$MODE" == restore ]] || fail 64 "MODE must be copy or restore"
if [ -n "${BACKUP_PATH:-}" ] && [[ "$BACKUP_PATH" != "$MOUNT_POINT".azlin-backup-* || "$BACKUP_PATH" == *..* ]]; then
    fail 64 "BACKUP_PATH must be the backup attach made of $MOUNT_POINT"
fi
owner_uid="" owner_gid="" owner_problem=""
check_owner || fail "${owner_problem%% *}" "${owner_problem#* }"
take_lock 600 || fail 75 "another attach or detach is still running on this VM"
state_file=$(state_path detach "$MOUNT_POINT")

if [ -f "$state_file" ]; then  # an interrupted detach: finish what it started
    [ "$(recall mountPoint)" = "$MOUNT_POINT" ] || fail 73 "state file $state_file belongs to another mount point"
    replacement=$(recall replacement)
    if [ "$(recall phase)" = swapping ] && [ -d "$replacement" ]; then
        swap_in "$replacement"
        [ "$MODE" = copy ] && kept=${BACKUP_PATH:-}
        result 0
    fi
    [ "$(recall phase)" = copying ] && [[ "$replacement" == "$MOUNT_POINT".azlin-local-* ]] && [ -d "$replacement" ] \
        && discard_dir "$replacement"  # an unfinished copy: start again
    rm -f "$state_file"
fi

if ! mountpoint -q "$MOUNT_POINT"; then
    has_line=false
    awk -v ep="$NFS_ENDPOINT" -v mp="$MOUNT_POINT" '$1 !~ /^#/ && $1 == ep && $2 == mp {f=1} END {exit !f}' \
        "$FSTAB" 2>/dev/null && has_line=true
    if ! $has_line; then not_attached=true; result 0; fi
    # Attached but not mounted now (the storage was unreachable at boot): restore still can.
    [ "$MODE" = restore ] || fail 69 "$MOUNT_POINT is not mounted now, so the share cannot be copied; mount it (mount $MOUNT_POINT) or detach with mode=restore"
fi
source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT" 2>/dev/null)
[ -z "$source" ] || source_serves "$source" "$NFS_ENDPOINT" || fail 66 "$MOUNT_POINT is mounted from $source, not $NFS_ENDPOINT: left alone"

if [ "$MODE" = restore ]; then
    [ -n "${BACKUP_PATH:-}" ] || fail 65 "this VM had no home before attach, so there is nothing to restore: detach with mode=copy"
    [ -d "$BACKUP_PATH" ] || fail 65 "the pre-attach home $BACKUP_PATH is not on this VM"
    swap_in "$BACKUP_PATH"
    result 0
fi

needed=$(du -s --block-size=1 -x "$MOUNT_POINT" | cut -f1)
available=$(df --output=avail --block-size=1 "$(dirname "$MOUNT_POINT")" | tail -1 | tr -d ' ')
margin=$(( needed / 10 > 1073741824 ? needed / 10 : 1073741824 ))
[ $((needed + margin)) -le "$available" ] \
    || fail 71 "the local disk has $available bytes free; the home needs $needed plus a margin of $margin"
local_copy="$MOUNT_POINT.azlin-local-$(date -u +%Y%m%dT%H%M%SZ)-$$"
remember copying "$local_copy"
mkdir -m 0700 "$local_copy" && chown "$owner_uid:$owner_gid" "$local_copy" || fail 73 "could not create $local_copy"
echo "detach: copying the share to the local disk" >&2
mkdir -p /run/azlin
if ! as_owner cp -a -- "$MOUNT_POINT/." "$local_copy/" 2>"/run/azlin/copy-error.$$"; then
    out_of_time && fail 79 "the copy did not finish within the time budget of ${TIME_BUDGET_SECONDS:-1200}s; the home is still the share"
    # The only failure that is no failure: device nodes, which the owner may not make.
    specials=$(grep -c "cannot create special file" "/run/azlin/copy-error.$$")
    if [ "$specials" -eq 0 ] || grep -v "cannot create special file" "/run/azlin/copy-error.$$" | grep -q .; then
        fail 71 "copying the share to the local disk (as $OWNER) failed: $(grep -v "cannot create special file" "/run/azlin/copy-error.$$" | tail -1)"
    fi
    errors+=("$specials device files on the share were not copied: a device node from the share is never made on the VM's disk")
fi
rm -f "/run/azlin/copy-error.$$"
if [ -d "$local_copy/$SERVICE_DIR" ] && [ ! -L "$local_copy/$SERVICE_DIR" ]; then  # the share's lock: not the home's
    discard_dir "$local_copy/$SERVICE_DIR" || fail 71 "could not leave the service's $SERVICE_DIR out of the copy"
fi
as_owner find "$local_copy" -xdev -type f -perm /6000 -exec chmod ug-s -- {} + \
    || fail 71 "could not clear setuid and setgid bits in the copy"
copied=$(count_files "$local_copy")
chmod --reference="$MOUNT_POINT" "$local_copy" || fail 71 "could not give the copy the home's mode"
swap_in "$local_copy"
kept=${BACKUP_PATH:-}  # the pre-attach home is kept, never removed
trap - INT TERM
result 0
