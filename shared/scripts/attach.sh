#!/bin/bash
# Sent after lib.sh (json_string, count_files, valid_*, state_path, take_lock, drop_fstab_line).
# Attach: make a user's home directory the shared NFS share, without losing a file.
#
# Runs as root through managed Run Command. Every value arrives as an environment variable (a Run
# Command parameter), never as script text:
#   NFS_ENDPOINT   <account>.file.core.windows.net:/<account>/home
#   MOUNT_POINT    the home to replace, e.g. /home/azureuser
#   OWNER          the home's user; OWNER_UID the UID the storage recorded (empty on first attach)
#   HOME_ROOTS     colon-separated directories besides /home whose <root>/<user> may be shared
#   LOCK_WAIT_SECONDS  how long to wait for the package manager when the NFS client is missing
#   ENCRYPTION     tls: the account requires encryption in transit; mount through aznfs (its TLS
#                  helper, installed when missing). Unset: plain NFS 4.1.
#   NONCE          the operation's secret (a protected parameter), echoed in RESULT: the service
#                  takes a run's output as its operation's only when it carries it
#   TIME_BUDGET_SECONDS, HEARTBEAT_SECONDS  see lib.sh
# The last stdout line is `RESULT {json}`; the exit status is 0 only on success.
#
# Order, so that a failure at any step leaves the VM's home exactly as it was and the share as it
# was: check everything; mount the share at a staging point (proves it is reachable, tells whether
# it is empty); move the home aside to a backup that never overwrites an older one; mount the share
# on the home; if the share was empty, copy the home into a private directory on the share; write
# fstab; verify; merge SSH keys; only then publish the copy on the share. Any failure after the
# home moved rolls back: unmount, put the home back, undo the unpublished copy. A state file on the
# VM's disk lets an attempt killed midway be finished (when it was publishing) or undone by the
# next one. Nothing here deletes anything but this attempt's own incoming directory. Root never
# works through a path inside the home or the share: that is the owner's work (as_owner, lib.sh).
# `A && B || fail ...` is meant: fail when either A or B fails.
# shellcheck disable=SC2015
set -uo pipefail
umask 022

OPTIONS=$(nfs_options)
FSTYPE=nfs
[ "${ENCRYPTION:-}" = tls ] && FSTYPE=aznfs
FSTAB=${FSTAB:-/etc/fstab}
errors=() backup="" backed_up=0 copied=0 rolled_back=false already=false owner_uid=""
stage="" incoming="" moved=false mounted=false fstab_written=false created_keys_dir="" recovering=false
state_file="" attached_file="" share_top="" share_lock_problem=""

result() {  # print the RESULT line and exit with $1
    local status=$1 list="" e
    release_share_lock
    for e in "${errors[@]+"${errors[@]}"}"; do list+="${list:+,}$(json_string "$e")"; done
    printf 'RESULT {"success":%s,"mountPoint":%s,"nfsEndpoint":%s,"encrypted":%s,"backedUpFiles":%d,"copiedFiles":%d,"backupPath":%s,"rolledBack":%s,"alreadyAttached":%s,"ownerUid":%s,"nonce":%s,"errors":[%s]}\n' \
        "$([ "$status" -eq 0 ] && echo true || echo false)" "$(json_string "${MOUNT_POINT:-}")" \
        "$(json_string "${NFS_ENDPOINT:-}")" "$([ "$FSTYPE" = aznfs ] && echo true || echo false)" \
        "$backed_up" "$copied" "$([ -n "$backup" ] && json_string "$backup" || echo null)" "$rolled_back" \
        "$already" "${owner_uid:-null}" "$(json_string "${NONCE:-}")" "$list"
    exit "$status"
}

fail() {  # fail CODE MESSAGE: record, roll back whatever was done, report
    trap '' INT TERM
    errors+=("$2")
    echo "attach: $2" >&2
    rollback
    result "$1"
}

rollback() {
    [ -n "$created_keys_dir" ] && as_owner rmdir -- "$created_keys_dir" 2>/dev/null
    $fstab_written && ! drop_fstab_line "$FSTAB" "$NFS_ENDPOINT" "$MOUNT_POINT" \
        && errors+=("rollback: the fstab line for $MOUNT_POINT could not be removed")
    discard_incoming
    $mounted && restore_share_top "$MOUNT_POINT"
    release_share_lock  # the share is as it was
    if $mounted; then
        umount "$MOUNT_POINT" 2>/dev/null || umount -l "$MOUNT_POINT" 2>/dev/null || true
    fi
    if $moved; then
        if mountpoint -q "$MOUNT_POINT"; then
            errors+=("rollback: $MOUNT_POINT is still mounted; the original home stays at $backup")
            unstage
            return
        fi
        # The directory we created is empty unless something wrote into it: never delete it then.
        if [ -d "$MOUNT_POINT" ] && ! rmdir "$MOUNT_POINT" 2>/dev/null; then
            mv -T "$MOUNT_POINT" "$MOUNT_POINT.azlin-failed-$(date +%s)-$$"
        fi
        mv -T "$backup" "$MOUNT_POINT" && { rolled_back=true; backup=""; }
    fi
    # The state goes only once nothing is left to finish or undo.
    if [ -n "$state_file" ] && { $rolled_back || { ! $moved && ! $recovering; }; }; then rm -f "$state_file"; fi
    unstage
}

unstage() {
    release_share_lock
    if [ -n "$stage" ] && mountpoint -q "$stage"; then umount "$stage" 2>/dev/null || umount -l "$stage"; fi
    [ -n "$stage" ] && rmdir "$stage" 2>/dev/null
    stage=""
}

is_incoming() { [[ "${1##*/}" =~ ^\.azlin-incoming-[A-Za-z0-9.-]+$ ]]; }

discard_incoming() {  # only the directory this attempt created on the share, never the share itself
    if [ -n "$incoming" ] && is_incoming "$incoming" && [ -d "$incoming" ] && ! mountpoint -q "$incoming"; then
        discard_dir "$incoming"
    fi
    incoming=""
}

restore_share_top() {  # restore_share_top ROOT: the share's top directory (mounted at ROOT) owned
    # and moded as before this attempt gave it to the home's owner, while nobody published on it
    local owner mode
    [ -n "$share_top" ] || return 0
    share_is_empty "$1" || { share_top=""; return 0; }
    read -r owner mode <<< "$share_top"
    chown "$owner" "$1" && chmod "$mode" "$1" && share_top=""
}

share_is_empty() {  # $1: where the share is mounted; another attempt's incoming directory and the
    # service's own directory do not count
    local entry
    for entry in "$1"/.[!.]* "$1"/..?* "$1"/*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        [ "${entry##*/}" = "$SERVICE_DIR" ] && continue
        is_incoming "$entry" || return 1
    done
    return 0
}

stage_share() {  # mount the share at a fresh staging point
    mkdir -p /run/azlin && stage=$(mktemp -d /run/azlin/stage.XXXXXX) || return 1
    bounded mount -t "$FSTYPE" -o "$OPTIONS" "$NFS_ENDPOINT" "$stage" 2>"$stage.error"
}

remember() {  # remember PHASE: what the next attempt needs to finish or undo this one
    mkdir -p "$STATE_DIR" && printf 'mountPoint %s\nphase %s\nbackup %s\nincoming %s\nsharetop %s\n' "$MOUNT_POINT" \
        "$1" "$backup" "$incoming" "$share_top" > "$state_file.tmp" && mv -f "$state_file.tmp" "$state_file"
}

recall() { sed -n "s/^$1 //p" "$state_file"; }

# shellcheck disable=SC2317 # run through as_owner
owner_move() {  # owner_move FROM TO: one rename (a directory the owner may not write is opened for it)
    local mode
    if [ -d "$1" ] && [ ! -L "$1" ] && [ ! -w "$1" ]; then
        mode=$(stat -c %a -- "$1") && chmod u+w -- "$1" && mv -T -- "$1" "$2" && chmod "$mode" -- "$2"
    else
        mv -T -- "$1" "$2"
    fi
}

# shellcheck disable=SC2317 # run through as_owner
owner_publish() {  # owner_publish INCOMING HOME SERVICE_DIR: the copy's entries moved into place, as the
    # owner (a rename cannot run out of space). Any failure moves back what was moved: the share as it was.
    local entry name done=()
    for entry in "$1"/.[!.]* "$1"/..?* "$1"/*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name=${entry##*/}
        if [ "$name" = "$3" ]; then  # a copy of the service's directory (a home once shared): not a file of the home
            owner_empty "$entry" && rmdir -- "$entry" && continue
        elif [ -e "$2/$name" ] || [ -L "$2/$name" ]; then
            echo "$name appeared on the share while publishing" >&2
        elif owner_move "$entry" "$2/$name"; then
            done+=("$name")
            continue
        fi
        owner_unpublish "$1" "$2" "${done[@]+"${done[@]}"}"
        return 1
    done
    rmdir -- "$1" && return 0
    echo "something was added to the copy while it was published" >&2
    owner_unpublish "$1" "$2" "${done[@]+"${done[@]}"}"
    return 1
}

# shellcheck disable=SC2317 # run through as_owner
owner_unpublish() {  # owner_unpublish INCOMING HOME NAMES...: the published NAMES back into INCOMING
    local from=$1 to=$2 name
    shift 2
    for name in "$@"; do owner_move "$to/$name" "$from/$name" || echo "could not take $name back" >&2; done
}

publish() {
    as_owner owner_publish "$incoming" "$MOUNT_POINT" "$SERVICE_DIR" 2>"/run/azlin/publish-error.$$" \
        || { errors+=("$(tail -1 "/run/azlin/publish-error.$$")"); rm -f "/run/azlin/publish-error.$$"; return 1; }
    rm -f "/run/azlin/publish-error.$$"
}

recover_interrupted() {  # finish (publishing) or undo (anything before) an attempt that was killed
    local phase name
    recovering=true
    [ "$(recall mountPoint)" = "$MOUNT_POINT" ] || fail 73 "state file $state_file belongs to another mount point"
    phase=$(recall phase) backup=$(recall backup) incoming=$(recall incoming) share_top=$(recall sharetop)
    echo "attach: finishing an interrupted attempt (phase $phase)" >&2
    if [ "$phase" = publishing ] && mountpoint -q "$MOUNT_POINT" && [ -d "$incoming" ]; then
        take_share_lock "$MOUNT_POINT" || fail 75 "the share's lock: $share_lock_problem"
        publish || fail 71 "could not finish publishing the interrupted copy"
        release_share_lock
        incoming=""
        printf '%s\n' "$backup" > "$attached_file"
        rm -f "$state_file"
        recovering=false
        return
    fi
    drop_fstab_line "$FSTAB" "$NFS_ENDPOINT" "$MOUNT_POINT" || fail 74 "$FSTAB could not be written"
    if [ -n "$incoming" ] && is_incoming "$incoming"; then  # remove it where the share is now
        name=${incoming##*/}
        if mountpoint -q "$MOUNT_POINT"; then incoming="$MOUNT_POINT/$name" && discard_incoming
        elif stage_share && take_share_lock "$stage"; then
            incoming="$stage/$name" && discard_incoming; restore_share_top "$stage"; release_share_lock; unstage
        else release_share_lock; unstage
        fi
    fi
    if mountpoint -q "$MOUNT_POINT" && [ -n "$share_top" ]; then
        take_share_lock "$MOUNT_POINT" && restore_share_top "$MOUNT_POINT"
        release_share_lock
    fi
    incoming=""
    if mountpoint -q "$MOUNT_POINT"; then umount "$MOUNT_POINT" 2>/dev/null || umount -l "$MOUNT_POINT"; fi
    if [ -n "$backup" ] && [ -d "$backup" ]; then
        if [ -d "$MOUNT_POINT" ] && ! rmdir "$MOUNT_POINT" 2>/dev/null; then
            mv -T "$MOUNT_POINT" "$MOUNT_POINT.azlin-failed-$(date +%s)-$$"
        fi
        mv -T "$backup" "$MOUNT_POINT" || fail 73 "could not put the home back from $backup"
    fi
    backup=""
    rm -f "$state_file"
    recovering=false
}

trap 'fail 70 "interrupted"' INT TERM
mkdir -p /run/azlin

# -- 1. check the request and the VM, changing nothing --------------------------------------------
valid_endpoint "${NFS_ENDPOINT:-}" || fail 64 "NFS_ENDPOINT is not an Azure Files NFS address"
valid_mount_point "${MOUNT_POINT:-}" || fail 64 "MOUNT_POINT must be a canonical absolute path"
[[ "${OWNER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail 64 "OWNER is not a valid user name"
valid_home "$MOUNT_POINT" "$OWNER" \
    || fail 64 "MOUNT_POINT $MOUNT_POINT is not a user's home: a shared home is /home/$OWNER (or <root>/$OWNER for a root in HOME_ROOTS), nothing deeper and nothing else"
[[ -z "${OWNER_UID:-}" || "$OWNER_UID" =~ ^[0-9]{1,10}$ ]] || fail 64 "OWNER_UID must be a number"
[[ -z "${ENCRYPTION:-}" || "$ENCRYPTION" == tls ]] || fail 64 "ENCRYPTION must be tls or unset"
owner_uid="" owner_gid="" owner_problem=""
check_owner || fail "${owner_problem%% *}" "${owner_problem#* }"
if [ -n "${OWNER_UID:-}" ] && [ "$owner_uid" != "$OWNER_UID" ]; then
    fail 65 "user $OWNER has UID $owner_uid here, but the storage's files belong to UID $OWNER_UID: a different UID would make every file unreadable"
fi
take_lock 600 || fail 75 "another attach or detach is still running on this VM"

state_file=$(state_path attach "$MOUNT_POINT")
attached_file=$(state_path attached "$MOUNT_POINT")  # the backup of the attach that succeeded
[ -f "$state_file" ] && recover_interrupted

if mountpoint -q "$MOUNT_POINT"; then
    source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
    source_serves "$source" "$NFS_ENDPOINT" || fail 66 "$MOUNT_POINT is already mounted from $source"
    already=true
fi

# -- 2. the NFS client (and aznfs for TLS), installed only when missing ---------------------------
install_aznfs() {  # Microsoft's package repository, then the aznfs package (AZNFS-mount README)
    local id version
    id=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"') version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
    if command -v apt-get >/dev/null 2>&1; then
        bounded curl -fsSL -o /run/azlin/packages-microsoft-prod.deb \
            "https://packages.microsoft.com/config/$id/$version/packages-microsoft-prod.deb" \
            && dpkg -i /run/azlin/packages-microsoft-prod.deb >&2 && bounded apt-get update >&2 \
            && AZNFS_NONINTERACTIVE_INSTALL=1 DEBIAN_FRONTEND=noninteractive bounded apt-get install -y aznfs >&2
    elif command -v dnf >/dev/null 2>&1; then
        bounded rpm -Uvh "https://packages.microsoft.com/config/$id/${version%%.*}/packages-microsoft-prod.rpm" >&2 \
            && AZNFS_NONINTERACTIVE_INSTALL=1 bounded dnf install -y aznfs >&2
    else
        return 1
    fi
}
if [ "$FSTYPE" = aznfs ] && ! command -v mount.aznfs >/dev/null 2>&1 && [ ! -x /sbin/mount.aznfs ]; then
    mkdir -p /run/azlin
    install_aznfs 2>"/run/azlin/aznfs-error.$$" || fail 76 "this storage requires encryption in transit, which needs the aznfs mount helper, and it could not be installed on this VM ($(tail -1 "/run/azlin/aznfs-error.$$" 2>/dev/null)): install aznfs (https://github.com/Azure/AZNFS-mount), or use a storage created with encryptionInTransit=off"
    rm -f "/run/azlin/aznfs-error.$$"
fi
if ! command -v mount.nfs >/dev/null 2>&1 && [ ! -x /sbin/mount.nfs ]; then
    waited=0
    while pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1; do
        [ "$waited" -ge "${LOCK_WAIT_SECONDS:-300}" ] && fail 75 "the package manager stayed busy for ${waited}s"
        sleep 1; waited=$((waited + 1))
    done
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive bounded apt-get install -y -o DPkg::Lock::Timeout="${LOCK_WAIT_SECONDS:-300}" \
            nfs-common >&2 || fail 75 "installing nfs-common failed"
    elif command -v dnf >/dev/null 2>&1; then bounded dnf install -y nfs-utils >&2 || fail 75 "installing nfs-utils failed"
    else fail 75 "no NFS client and no known package manager"
    fi
fi

write_fstab() {  # exactly one line for the mount point, written atomically
    local line="$NFS_ENDPOINT $MOUNT_POINT $FSTYPE $OPTIONS,_netdev,nofail 0 0" next
    next=$(mktemp "$FSTAB.azlin-new.XXXXXX") || return 1
    if awk -v mp="$MOUNT_POINT" '!($1 !~ /^#/ && $2 == mp)' "$FSTAB" > "$next" && echo "$line" >> "$next" \
        && chmod --reference="$FSTAB" "$next" && mv -f "$next" "$FSTAB"; then
        return 0
    fi
    rm -f "$next"
    return 1
}

if $already; then  # attached before (a redelivered message): make sure fstab says so, nothing else
    grep -qsF "$NFS_ENDPOINT $MOUNT_POINT $FSTYPE " "$FSTAB" || write_fstab || fail 74 "$FSTAB could not be written"
    backup=$(cat "$attached_file" 2>/dev/null)
    result 0
fi

# -- 3. reach the share before touching the home -------------------------------------------------
stage_share || fail 69 "the share could not be mounted: $(cat "$stage.error" 2>/dev/null)"
rm -f "$stage.error"
# Whether the share is empty is asked under its lock, and an empty share stays locked until this
# home is published on it: of VMs attaching at once, exactly one publishes its home.
take_share_lock "$stage" || fail 75 "the share's lock: $share_lock_problem"
top_uid=$(stat -c %u -- "$stage") || fail 69 "could not read the share's top directory"
if [ "$top_uid" != 0 ] && [ "$top_uid" != "$owner_uid" ]; then
    fail 65 "the share's files belong to UID $top_uid, but user $OWNER has UID $owner_uid here: a different UID would make every file unreadable"
fi
share_empty=false
share_is_empty "$stage" && share_empty=true
$share_empty || unstage

# -- 4. move the home aside, mount the share on it ------------------------------------------------
if [ -e "$MOUNT_POINT" ] || [ -L "$MOUNT_POINT" ]; then
    [ -d "$MOUNT_POINT" ] && [ ! -L "$MOUNT_POINT" ] || fail 66 "$MOUNT_POINT is not a directory"
    base="$MOUNT_POINT.azlin-backup-$(date -u +%Y%m%dT%H%M%SZ)" n=0
    candidate=$base
    while [ -e "$candidate" ] || [ -L "$candidate" ]; do n=$((n + 1)); candidate="$base-$n"; done
    backup=$candidate  # never an older backup's name
    backed_up=$(count_files "$MOUNT_POINT")
    echo "attach: moving the home aside" >&2
    remember moved
    mv -T "$MOUNT_POINT" "$backup" || fail 73 "the home could not be moved aside"
    moved=true
    mkdir "$MOUNT_POINT" && chmod --reference="$backup" "$MOUNT_POINT" && chown --reference="$backup" "$MOUNT_POINT" \
        || fail 73 "the mount point could not be created"
else
    mkdir -p "$MOUNT_POINT" && chown "$owner_uid:$owner_gid" "$MOUNT_POINT" && chmod 0755 "$MOUNT_POINT" \
        || fail 73 "the mount point could not be created"
fi
bounded mount -t "$FSTYPE" -o "$OPTIONS" "$NFS_ENDPOINT" "$MOUNT_POINT" || fail 69 "the share could not be mounted on $MOUNT_POINT"
mounted=true

# -- 5. an empty share becomes the owner's, and receives the home in a private directory first --
# Root changes only the share's top directory (the mount point); everything inside it is the
# owner's work (as_owner): the copy, its directory, and later the keys and the publishing.
if $share_empty; then
    share_top=$(stat -c '%u:%g %a' "$MOUNT_POINT") || fail 73 "could not read the share's top directory"
    remember moved
    if [ -n "$backup" ]; then chown --reference="$backup" "$MOUNT_POINT" && chmod --reference="$backup" "$MOUNT_POINT"
    else chown "$owner_uid:$owner_gid" "$MOUNT_POINT" && chmod 0755 "$MOUNT_POINT"
    fi || fail 71 "could not give the share's top directory the home's owner and mode"
fi
if $share_empty && [ -n "$backup" ]; then
    created=$(as_owner mktemp -d "$MOUNT_POINT/.azlin-incoming-$(hostname 2>/dev/null || echo vm)-XXXXXX") \
        || fail 73 "could not write to the share"
    incoming=$created
    remember moved
    echo "attach: copying the home onto the share" >&2
    if ! as_owner cp -a -- "$backup/." "$incoming/" 2>"/run/azlin/copy-error.$$"; then
        out_of_time && fail 79 "the copy did not finish within the time budget of ${TIME_BUDGET_SECONDS:-1200}s; the home was put back"
        if grep -q "Operation not supported" "/run/azlin/copy-error.$$" \
            && as_owner cp -a --no-preserve=xattr -- "$backup/." "$incoming/" 2>"/run/azlin/copy-error.$$"; then
            errors+=("extended attributes (ACLs) are not kept: NFS 4.1 on Azure Files has none")
        else
            out_of_time && fail 79 "the copy did not finish within the time budget of ${TIME_BUDGET_SECONDS:-1200}s; the home was put back"
            fail 71 "copying the home onto the share (as $OWNER) failed: $(tail -1 "/run/azlin/copy-error.$$")"
        fi
    fi
    rm -f "/run/azlin/copy-error.$$"
    copied=$(count_files "$incoming")
    [ "$copied" -eq "$backed_up" ] || fail 71 "the copy holds $copied entries, the home $backed_up"
fi

# -- 6. fstab, then verify ------------------------------------------------------------------------
fstab_written=true
write_fstab || fail 74 "$FSTAB could not be written"
source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT")
source_serves "$source" "$NFS_ENDPOINT" || fail 67 "$MOUNT_POINT is mounted from '$source', not $NFS_ENDPOINT"

# -- 7. SSH keys: the VM's keys join the shared ones; none is ever removed. Written as the owner.
vm_keys="${backup:+$backup/.ssh/authorized_keys}"
if [ -n "$vm_keys" ] && [ -f "$vm_keys" ] && [ ! -L "$vm_keys" ]; then
    keys_dir="${incoming:-$MOUNT_POINT}/.ssh"
    echo "attach: adding this VM's SSH keys to the shared ones" >&2
    take_share_lock "$MOUNT_POINT" || fail 75 "the share's lock: $share_lock_problem"
    made=$(as_owner owner_merge_keys "$keys_dir" "$vm_keys" 2>"/run/azlin/keys-error.$$")
    merged=$?
    $share_empty || release_share_lock
    [ "$made" = created ] && created_keys_dir=$keys_dir
    [ "$merged" -eq 0 ] || fail 72 "could not merge the SSH keys into $keys_dir: $(tail -1 "/run/azlin/keys-error.$$")"
    rm -f "/run/azlin/keys-error.$$"
fi

# -- 8. publish the copy: from here on an interrupted attempt is finished, not undone ------------
if [ -n "$incoming" ]; then
    remember publishing
    echo "attach: publishing the copy" >&2
    publish || fail 71 "could not move the copy into place on the share: ${errors[-1]:-}"
    incoming=""
fi
unstage
printf '%s\n' "$backup" > "$attached_file"
rm -f "$state_file"
trap - INT TERM
result 0
