#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_endpoint, valid_mount_point).
# Attach: make a user's home directory the shared NFS share, without losing a file.
#
# Runs as root through managed Run Command. Every value arrives as an environment variable (a Run
# Command parameter), never as script text:
#   NFS_ENDPOINT   <account>.file.core.windows.net:/<account>/home
#   MOUNT_POINT    the home to replace, e.g. /home/azureuser
#   OWNER          the home's user; OWNER_UID the UID the storage recorded (empty on first attach)
#   LOCK_WAIT_SECONDS  how long to wait for the package manager when the NFS client is missing
# The last stdout line is `RESULT {json}`; the exit status is 0 only on success.
#
# Order, so that a failure at any step leaves the VM's home exactly as it was and the share as it
# was: check everything; mount the share at a staging point (proves it is reachable, tells whether
# it is empty); move the home aside to a backup that never overwrites an older one; mount the share
# on the home; if the share was empty, copy the home into a private directory on the share; merge
# SSH keys; write fstab (atomically); verify; only then publish the copy on the share. Any failure
# after the home moved rolls back: unmount, put the home back, undo the unpublished copy.
# Nothing here runs `rm -rf` on a mount point or on the share: only on its own incoming directory.
# `A && B || fail ...` is meant: fail when either A or B fails.
# shellcheck disable=SC2015
set -uo pipefail
umask 022

OPTIONS="vers=4,minorversion=1,sec=sys,nconnect=4"
FSTAB=${FSTAB:-/etc/fstab}
errors=() backup="" backed_up=0 copied=0 rolled_back=false already=false owner_uid=""
stage="" incoming="" moved=false mounted=false fstab_saved="" created_keys_dir=""


result() {  # print the RESULT line and exit with $1
    local status=$1 list="" e
    for e in "${errors[@]+"${errors[@]}"}"; do list+="${list:+,}$(json_string "$e")"; done
    printf 'RESULT {"success":%s,"mountPoint":%s,"nfsEndpoint":%s,"backedUpFiles":%d,"copiedFiles":%d,"backupPath":%s,"rolledBack":%s,"alreadyAttached":%s,"ownerUid":%s,"errors":[%s]}\n' \
        "$([ "$status" -eq 0 ] && echo true || echo false)" "$(json_string "${MOUNT_POINT:-}")" \
        "$(json_string "${NFS_ENDPOINT:-}")" "$backed_up" "$copied" \
        "$([ -n "$backup" ] && json_string "$backup" || echo null)" "$rolled_back" "$already" \
        "${owner_uid:-null}" "$list"
    exit "$status"
}

fail() {  # fail CODE MESSAGE: record, roll back whatever was done, report
    errors+=("$2")
    echo "attach: $2" >&2
    rollback
    result "$1"
}


rollback() {
    [ -n "$created_keys_dir" ] && rmdir "$created_keys_dir" 2>/dev/null
    [ -n "$fstab_saved" ] && [ -f "$fstab_saved" ] && cat "$fstab_saved" > "$FSTAB" && rm -f "$fstab_saved"
    discard_incoming
    if $mounted; then
        umount "$MOUNT_POINT" 2>/dev/null || umount -l "$MOUNT_POINT" 2>/dev/null || true
    fi
    if $moved; then
        if mountpoint -q "$MOUNT_POINT"; then
            errors+=("rollback: $MOUNT_POINT is still mounted; the original home stays at $backup")
            return
        fi
        # The directory we created is empty unless something wrote into it: never delete it then.
        if [ -d "$MOUNT_POINT" ] && ! rmdir "$MOUNT_POINT" 2>/dev/null; then
            mv "$MOUNT_POINT" "$MOUNT_POINT.azlin-failed-$(date +%s)-$$"
        fi
        mv -T "$backup" "$MOUNT_POINT" && { rolled_back=true; backup=""; }
    fi
    $rolled_back || ! $moved && [ -n "$state_file" ] && rm -f "$state_file"
    unstage
}

unstage() {
    if [ -n "$stage" ] && mountpoint -q "$stage"; then umount "$stage" 2>/dev/null || umount -l "$stage"; fi
    [ -n "$stage" ] && rmdir "$stage" 2>/dev/null
    stage=""
}

discard_incoming() {  # only the directory this run created on the share, never the share itself
    if [ -n "$incoming" ] && [ -d "$incoming" ] && [ "$(basename "$incoming")" = ".azlin-incoming-$$" ] \
        && ! mountpoint -q "$incoming"; then
        rm -rf --one-file-system -- "$incoming"
    fi
    incoming=""
}

# Progress of an attempt, on the VM's own disk, so that one killed midway (Run Command timeout, VM
# restart) is finished or undone by the next: `phase moved` (home aside, share not yet published:
# undo) or `phase publishing` (everything checked: finish moving the copy into place).
state_dir=/var/lib/azlin
state_file=""

remember() {  # remember [PHASE]: what the next attempt needs to finish or undo this one
    mkdir -p "$state_dir" && printf 'phase %s\nbackup %s\nincoming %s\nfstab %s\n' "${1:-moved}" "$backup" \
        "$incoming" "$fstab_saved" > "$state_file.tmp" && mv -f "$state_file.tmp" "$state_file"
}

recall() { sed -n "s/^$1 //p" "$state_file"; }

publish() {  # move the copy's entries into place; a rename cannot run out of space
    local entry
    for entry in "$incoming"/.[!.]* "$incoming"/..?* "$incoming"/*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        mv -n -- "$entry" "$MOUNT_POINT/" || return 1
    done
    rmdir "$incoming"
}

recover_interrupted() {
    local phase old_fstab
    phase=$(recall phase) backup=$(recall backup) incoming=$(recall incoming) old_fstab=$(recall fstab)
    echo "attach: finishing an interrupted attempt (phase $phase)" >&2
    if [ "$phase" = publishing ] && mountpoint -q "$MOUNT_POINT" && [ -d "$incoming" ]; then
        publish || fail 71 "could not finish publishing the interrupted copy"
        incoming="" backup=""
        rm -f "$old_fstab" "$state_file"
        return
    fi
    [ -n "$incoming" ] && [ "${incoming%/*}" = "$MOUNT_POINT" ] && mountpoint -q "$MOUNT_POINT" \
        && incoming_name=${incoming##*/} && [[ "$incoming_name" =~ ^\.azlin-incoming-[0-9]+$ ]] \
        && [ -d "$incoming" ] && rm -rf --one-file-system -- "$incoming"
    incoming=""
    [ -n "$old_fstab" ] && [ -f "$old_fstab" ] && cat "$old_fstab" > "$FSTAB" && rm -f "$old_fstab"
    if mountpoint -q "$MOUNT_POINT"; then umount "$MOUNT_POINT" 2>/dev/null || umount -l "$MOUNT_POINT"; fi
    if [ -n "$backup" ] && [ -d "$backup" ]; then
        if [ -d "$MOUNT_POINT" ] && ! rmdir "$MOUNT_POINT" 2>/dev/null; then
            mv "$MOUNT_POINT" "$MOUNT_POINT.azlin-failed-$(date +%s)-$$"
        fi
        mv -T "$backup" "$MOUNT_POINT" || fail 73 "could not put the home back from $backup"
    fi
    backup=""
    rm -f "$state_file"
}

trap 'fail 70 "interrupted"' INT TERM

# -- 1. check the request and the VM, changing nothing --------------------------------------------
valid_endpoint "${NFS_ENDPOINT:-}" || fail 64 "NFS_ENDPOINT is not an Azure Files NFS address"
valid_mount_point "${MOUNT_POINT:-}" || fail 64 "MOUNT_POINT must be an absolute path without '..'"
case "$MOUNT_POINT" in
    /|/home|/root|/etc|/usr|/var|/tmp|/opt|/srv|/mnt|/boot|/bin|/sbin|/lib|/lib64|/proc|/sys|/dev|/run)
        fail 64 "MOUNT_POINT $MOUNT_POINT is a system directory" ;;
esac
[[ "${OWNER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail 64 "OWNER is not a valid user name"
[[ -z "${OWNER_UID:-}" || "$OWNER_UID" =~ ^[0-9]{1,10}$ ]] || fail 64 "OWNER_UID must be a number"
owner_uid=$(id -u "$OWNER" 2>/dev/null) || fail 65 "user $OWNER does not exist on this VM"
owner_gid=$(id -g "$OWNER")
if [ -n "${OWNER_UID:-}" ] && [ "$owner_uid" != "$OWNER_UID" ]; then
    fail 65 "user $OWNER has UID $owner_uid here, but the storage's files belong to UID $OWNER_UID: a different UID would make every file unreadable"
fi

state_file="$state_dir/attach$(printf '%s' "$MOUNT_POINT" | tr '/' '_').state"
[ -f "$state_file" ] && recover_interrupted

if mountpoint -q "$MOUNT_POINT"; then
    source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
    [ "$source" = "$NFS_ENDPOINT" ] || fail 66 "$MOUNT_POINT is already mounted from $source"
    already=true
fi

# -- 2. the NFS client, installed only when missing -----------------------------------------------
if ! command -v mount.nfs >/dev/null 2>&1 && [ ! -x /sbin/mount.nfs ]; then
    waited=0
    while pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1; do
        [ "$waited" -ge "${LOCK_WAIT_SECONDS:-300}" ] && fail 75 "the package manager stayed busy for ${waited}s"
        sleep 5; waited=$((waited + 5))
    done
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout="${LOCK_WAIT_SECONDS:-300}" nfs-common >&2 \
            || fail 75 "installing nfs-common failed"
    elif command -v dnf >/dev/null 2>&1; then dnf install -y nfs-utils >&2 || fail 75 "installing nfs-utils failed"
    else fail 75 "no NFS client and no known package manager"
    fi
fi

write_fstab() {  # exactly one line for the mount point, written atomically
    local line="$NFS_ENDPOINT $MOUNT_POINT nfs $OPTIONS,_netdev,nofail 0 0" next
    fstab_saved=$(mktemp "$FSTAB.azlin-saved.XXXXXX") && cat "$FSTAB" > "$fstab_saved" || return 1
    next=$(mktemp "$FSTAB.azlin-new.XXXXXX") || return 1
    awk -v mp="$MOUNT_POINT" '!($1 !~ /^#/ && $2 == mp)' "$FSTAB" > "$next" && echo "$line" >> "$next" \
        && chmod --reference="$FSTAB" "$next" && mv -f "$next" "$FSTAB" || { rm -f "$next"; return 1; }
}

if $already; then  # attached before (a redelivered message): make sure fstab says so, nothing else
    grep -qsF "$NFS_ENDPOINT $MOUNT_POINT nfs " "$FSTAB" || write_fstab || fail 74 "$FSTAB could not be written"
    rm -f "$fstab_saved"; fstab_saved=""
    result 0
fi

# -- 3. reach the share before touching the home -------------------------------------------------
mkdir -p /run/azlin
stage=$(mktemp -d /run/azlin/stage.XXXXXX)
mount -t nfs -o "$OPTIONS" "$NFS_ENDPOINT" "$stage" 2>/tmp/azlin-mount-error.$$ \
    || fail 69 "the share could not be mounted: $(cat /tmp/azlin-mount-error.$$)"
rm -f /tmp/azlin-mount-error.$$
share_empty=false
[ -z "$(ls -A "$stage")" ] && share_empty=true
unstage

# -- 4. move the home aside, mount the share on it ------------------------------------------------
if [ -e "$MOUNT_POINT" ] || [ -L "$MOUNT_POINT" ]; then
    [ -d "$MOUNT_POINT" ] && [ ! -L "$MOUNT_POINT" ] || fail 66 "$MOUNT_POINT is not a directory"
    base="$MOUNT_POINT.azlin-backup-$(date -u +%Y%m%dT%H%M%SZ)" candidate="" n=0
    candidate=$base
    while [ -e "$candidate" ] || [ -L "$candidate" ]; do n=$((n + 1)); candidate="$base-$n"; done
    backup=$candidate  # never an older backup's name
    backed_up=$(count_files "$MOUNT_POINT")
    remember
    mv -T "$MOUNT_POINT" "$backup" || fail 73 "the home could not be moved aside"
    moved=true
    mkdir "$MOUNT_POINT" && chmod --reference="$backup" "$MOUNT_POINT" && chown --reference="$backup" "$MOUNT_POINT" \
        || fail 73 "the mount point could not be created"
else
    mkdir -p "$MOUNT_POINT" && chown "$owner_uid:$owner_gid" "$MOUNT_POINT" && chmod 0755 "$MOUNT_POINT" \
        || fail 73 "the mount point could not be created"
fi
mount -t nfs -o "$OPTIONS" "$NFS_ENDPOINT" "$MOUNT_POINT" || fail 69 "the share could not be mounted on $MOUNT_POINT"
mounted=true

# -- 5. an empty share receives the home, in a private directory first ---------------------------
if $share_empty && [ -n "$backup" ]; then
    incoming="$MOUNT_POINT/.azlin-incoming-$$"
    mkdir "$incoming" || fail 73 "could not write to the share"
    remember
    cp -a "$backup/." "$incoming/" || fail 71 "copying the home onto the share failed (is the share full?)"
    copied=$(count_files "$incoming")
    [ "$copied" -eq "$backed_up" ] || fail 71 "the copy holds $copied entries, the home $backed_up"
    chmod --reference="$backup" "$MOUNT_POINT" && chown --reference="$backup" "$MOUNT_POINT"
fi

# -- 7. fstab, then verify ------------------------------------------------------------------------
write_fstab || fail 74 "$FSTAB could not be written"
remember
source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
[ "$source" = "$NFS_ENDPOINT" ] || fail 67 "$MOUNT_POINT is mounted from '$source', not $NFS_ENDPOINT"

# -- 8. SSH keys: the VM's keys join the shared ones; none is ever removed. Replaced atomically.
vm_keys="${backup:+$backup/.ssh/authorized_keys}"
if [ -n "$vm_keys" ] && [ -s "$vm_keys" ]; then
    keys_dir="${incoming:-$MOUNT_POINT}/.ssh"
    if [ ! -d "$keys_dir" ]; then
        mkdir "$keys_dir" && chown "$owner_uid:$owner_gid" "$keys_dir" && chmod 0700 "$keys_dir" \
            || fail 72 "could not create $keys_dir"
        created_keys_dir=$keys_dir
    fi
    shared="$keys_dir/authorized_keys"
    merged=$(mktemp "$keys_dir/.authorized_keys.XXXXXX") || fail 72 "could not write $keys_dir"
    {
        [ -f "$shared" ] && cat "$shared"
        grep -vxF -f <(cat "$shared" 2>/dev/null || true) "$vm_keys" || true
    } > "$merged"
    chown "$owner_uid:$owner_gid" "$merged" && chmod 0600 "$merged" && mv -f "$merged" "$shared" \
        || { rm -f "$merged"; fail 72 "could not write $shared"; }
fi

# -- 9. publish the copy: from here on an interrupted attempt is finished, not undone ------------
if [ -n "$incoming" ]; then
    remember publishing
    publish || fail 71 "could not move the copy into place on the share"
    incoming=""
fi
rm -f "$fstab_saved" "$state_file"
fstab_saved=""
trap - INT TERM
result 0
