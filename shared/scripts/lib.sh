#!/bin/bash
# Helpers every VM script starts with: the Run Command script is this file followed by the
# script itself (shared/scripts/__init__.py puts them together), so they share one definition.
#
# How the Linux Run Command handler ends a run decides what follows (azure-facts.md, corrections):
# on its timeout it SIGKILLs the script's own process only, so traps never run and children (cp,
# mount) live on; a reboot ends everything and the handler never reports the run again. So:
# - the script runs in a session of its own, every process of the run carrying AZLIN_RUN, so the
#   next attempt can find and stop what a killed one left behind;
# - it stops itself within TIME_BUDGET_SECONDS (below the run's timeoutInSeconds): long children
#   run under `timeout`, and a run out of time fails and rolls back like any other failure;
# - it prints a heartbeat every HEARTBEAT_SECONDS, so the service can tell a run that stopped
#   reporting (its VM rebooted under it) from one that is still at work;
# - the VM-wide lock is taken over from a run that is dead, and its leftovers ended first.

if [ -z "${AZLIN_RUN:-}" ] && [ -f "$0" ]; then  # once, at the start: a session of our own
    AZLIN_RUN=$(cat /proc/sys/kernel/random/uuid) && export AZLIN_RUN && exec setsid --wait /bin/bash "$0" "$@"
fi
DEADLINE=$(( $(date +%s) + ${TIME_BUDGET_SECONDS:-1200} ))

heartbeat() {  # a line every HEARTBEAT_SECONDS while the script's own process lives
    while kill -0 "$1" 2>/dev/null; do
        printf 'azlin: alive %s\n' "$(date +%s)"
        sleep "${HEARTBEAT_SECONDS:-10}"
    done
}
heartbeat $$ 9>&- &

bounded() {  # bounded CMD...: CMD within what is left of the budget (124: it ran out)
    local left=$(( DEADLINE - $(date +%s) ))
    [ "$left" -gt 0 ] || return 124
    timeout --foreground --kill-after=5 "$left" "$@" 9>&-
}

out_of_time() { [ "$(date +%s)" -ge "$DEADLINE" ]; }

json_string() {  # $1 as a JSON string: backslash, quote and every control character escaped
    local s=${1//\\/\\\\} code char
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    for code in {1..31}; do
        printf -v char '%b' "\\$(printf '%03o' "$code")"
        [[ "$s" == *"$char"* ]] && s=${s//"$char"/$(printf '\\u%04x' "$code")}
    done
    printf '"%s"' "$s"
}

count_files() { find "$1" -mindepth 1 -printf . 2>/dev/null | wc -c; }  # names may hold newlines

valid_endpoint() {  # an Azure Files NFS address: <account>.file.core.windows.net:/<account>/<share>
    local re='^[a-z0-9]{3,24}\.file\.core\.windows\.net:/[a-z0-9]{3,24}/[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'
    [[ "$1" =~ $re ]]
}

valid_mount_point() {  # absolute and canonical: plain characters, no '//', '.', '..' or trailing '/'
    [[ "$1" =~ ^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ && "$1" != */./* && "$1" != */../* \
        && "$1" != */. && "$1" != */.. ]]
}

valid_home() {  # valid_home MOUNT_POINT OWNER: the one rule for a shared home, the same as the
    # service's (mount_point in shared/domain/validation.py): <root>/<owner>, for /home or a root the
    # operator added (HOME_ROOTS, colon-separated); nothing deeper and nothing else
    local root roots
    valid_mount_point "$1" && [[ "$2" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] && [ "${1##*/}" = "$2" ] || return 1
    IFS=: read -ra roots <<< "/home:${HOME_ROOTS:-}"
    for root in "${roots[@]}"; do
        [ -n "$root" ] && valid_mount_point "$root" && [ "$root" = "${1%/*}" ] && return 0
    done
    return 1
}

root_only() {  # root_only DIR: DIR and every directory above it belong to root and only root may
    # write them, so no user can rename or replace a path the script works through
    local dir=$1 uid mode
    while :; do
        [ -d "$dir" ] && [ ! -L "$dir" ] || return 1
        read -r uid mode <<< "$(stat -c '%u %a' -- "$dir")" || return 1
        [ "$uid" = 0 ] && (( (8#$mode & 8#022) == 0 )) || return 1
        [ "$dir" = / ] && return 0
        dir=${dir%/*} && dir=${dir:-/}
    done
}

check_owner() {  # check_owner: OWNER is a normal user (UID 1000-60000, never a system account) and
    # only root may write above MOUNT_POINT; sets owner_uid and owner_gid, else owner_problem="CODE why"
    owner_problem=""
    if [[ ! "${OWNER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; then owner_problem="64 OWNER is not a valid user name"
    elif ! owner_uid=$(id -u "$OWNER" 2>/dev/null); then owner_problem="65 user $OWNER does not exist on this VM"
    elif [ "$owner_uid" -lt 1000 ] || [ "$owner_uid" -gt 60000 ]; then
        owner_problem="65 user $OWNER has UID $owner_uid, outside the range of normal users (1000-60000): a system account's home is never shared"
    elif ! root_only "${MOUNT_POINT%/*}"; then
        owner_problem="65 ${MOUNT_POINT%/*} or a directory above it is writable by someone other than root: a user could swap the home under this script"
    fi
    # shellcheck disable=SC2034 # read by the script this file is sent with
    [ -z "$owner_problem" ] && owner_gid=$(id -g "$OWNER")
}

STATE_DIR=/var/lib/azlin

state_path() {  # state_path KIND MOUNT_POINT: one file per kind and mount point, on the VM's disk
    printf '%s/%s-%s.state' "$STATE_DIR" "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}

run_alive() {  # run_alive TOKEN PID: that run's own script process still runs
    [ -n "$2" ] && tr '\0' '\n' 2>/dev/null < "/proc/$2/environ" | grep -qx "AZLIN_RUN=$1"
}

end_run() {  # end_run TOKEN: every process a dead run left behind (they may hold the lock)
    local pids tries=0
    grep -qlzx "AZLIN_RUN=$1" /proc/[0-9]*/environ 2>/dev/null \
        && echo "azlin: ending what the killed run $1 left behind" >&2
    while :; do  # grep fails on processes that end while it reads: only its output counts
        pids=$(grep -lzx "AZLIN_RUN=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3)
        [ -n "$pids" ] || return 0
        # shellcheck disable=SC2086 # a list of PIDs
        kill -KILL $pids 2>/dev/null
        tries=$((tries + 1)) && [ "$tries" -le 50 ] || return 1
        sleep 0.1
    done
}

take_lock() {  # one attach or detach at a time on this VM: a second waits, then gives up; a lock
    # whose run is dead (killed by its timeout, its children still at work) is taken over
    local waited=0 token pid
    mkdir -p "$STATE_DIR" && exec 9>"$STATE_DIR/lock" || return 1
    until flock -n 9; do
        read -r token pid 2>/dev/null < "$STATE_DIR/runner" || token=""
        if [ -n "$token" ] && ! run_alive "$token" "$pid"; then
            end_run "$token" || return 1
            continue
        fi
        [ "$waited" -lt "${1:-120}" ] && ! out_of_time || return 1
        sleep 1 && waited=$((waited + 1))
    done
    read -r token pid 2>/dev/null < "$STATE_DIR/runner" || token=""
    [ -z "$token" ] || [ "$token" = "$AZLIN_RUN" ] || run_alive "$token" "$pid" || end_run "$token"
    printf '%s %s\n' "${AZLIN_RUN:-none}" "$$" > "$STATE_DIR/runner"
}

# -- inside a home or a share, work as its owner, never as root ---------------------------------
# The user controls every path inside their home and their share, and may swap any of them for a
# link while a script runs: root following one could chown /etc/shadow or write into /etc, the
# owner following one can do nothing the owner could not do anyway. So every file operation in
# there runs through as_owner, and root only touches the mount point itself and paths under
# directories nobody but root may write (root_only).

as_owner() {  # as_owner COMMAND ARGS...: a command or an owner_* function, as OWNER, within the
    # time budget; values travel as arguments, never as shell text
    local names
    mapfile -t names < <(compgen -A function owner_)
    # shellcheck disable=SC2016 # "$@" expands in the owner's shell, to the arguments given here
    bounded runuser -u "$OWNER" -- /bin/bash -c "$(declare -f "${names[@]}")"$'\n''"$@"' azlin "$@"
}

owner_keys() {  # owner_keys FILE: a regular authorized_keys file, every line ended; never a link
    [ -f "$1" ] && [ ! -L "$1" ] || return 0
    # shellcheck disable=SC1003
    sed -e '$a\' -- "$1"
}

owner_merge_keys() {  # owner_merge_keys DIR KEYS: KEYS' lines join DIR/authorized_keys, none removed;
    # prints "created" when DIR was made. Replaced atomically, by rename (a link there is replaced).
    local shared=$1/authorized_keys merged
    if [ -L "$1" ] || [ -L "$shared" ]; then
        echo "$1 or its authorized_keys is a symbolic link: refusing to write through it" >&2
        return 2
    fi
    if [ ! -d "$1" ]; then mkdir -m 0700 -- "$1" && echo created || return 1; fi
    merged=$(mktemp "$1/.authorized_keys.XXXXXX") || return 1
    if { owner_keys "$shared" && { grep -vxF -f <(owner_keys "$shared") <(owner_keys "$2") || true; }; } > "$merged" \
        && chmod 0600 -- "$merged" && mv -fT -- "$merged" "$shared"; then
        return 0
    fi
    rm -f -- "$merged"
    return 1
}

# -- the share's own lock ------------------------------------------------------------------------
# What two VMs must not do at once on one share (publish the first home onto an empty share, merge
# SSH keys into the shared authorized_keys) takes the lock of SERVICE_DIR/share.lock on the share.
# It is an NFS 4.1 lock: the server frees it when a VM stops renewing its lease (a VM that died), and
# the holding process ends with the script that asked for it, at its release, or at the end of the
# run's time budget, so no killed run can keep it. The holder runs as the share's owner: root never
# opens a path on the share that a user controls.
SERVICE_DIR=.azlin-storage  # the service's own directory on the share; never a user's file
share_lock_pid="" share_lock_flag=""

# shellcheck disable=SC2317 # run through as_owner
owner_hold_share_lock() {  # owner_hold_share_lock DIR WAIT PID FLAG SAID: hold DIR/share.lock (waiting
    # up to WAIT seconds) while PID runs and FLAG exists; writes "locked" to SAID once held (a file
    # root made for it: no pipe can hold the word back), else why not
    if [ -L "$1" ]; then echo "refused: $1 is a symbolic link" > "$5"; return 2; fi
    [ -d "$1" ] || mkdir -m 0700 -- "$1" 2>/dev/null || [ -d "$1" ] \
        || { echo "refused: cannot create $1" > "$5"; return 1; }
    exec 8>>"$1/share.lock" || { echo "refused: cannot open $1/share.lock" > "$5"; return 1; }
    if ! flock -w "$2" 8; then
        echo "busy: held by $(head -c 200 -- "$1/holder" 2>/dev/null || echo 'an unknown VM')" > "$5"
        return 75
    fi
    printf '%s since %s\n' "$(hostname 2>/dev/null || echo a VM)" "$(date -u +%FT%TZ)" > "$1/holder"
    echo locked > "$5"
    while [ -d "/proc/$3" ] && [ -e "$4" ]; do sleep 0.2; done
}

take_share_lock() {  # take_share_lock ROOT: lock the share mounted at ROOT for this run (waits up
    # to SHARE_LOCK_WAIT_SECONDS, default 600, within the budget); share_lock_problem says why not
    local dir=$1/$SERVICE_DIR uid mode wait line out
    # shellcheck disable=SC2034 # read by the script this file is sent with
    share_lock_problem=""
    [ -z "$share_lock_pid" ] || return 0
    read -r uid mode <<< "$(stat -c '%u %a' -- "$1")" || { share_lock_problem="cannot read $1"; return 1; }
    if [ "$uid" = 0 ] && (( (8#$mode & 8#022) == 0 )) && [ ! -e "$dir" ]; then
        # An empty share's top belongs to root, and only root writes there: the service's directory
        # is made for the owner, who takes the lock in it.
        if ! { mkdir -m 0700 -- "$dir" && chown "$owner_uid:$owner_gid" -- "$dir"; }; then
            share_lock_problem="cannot create $dir"
            return 1
        fi
    elif [ "$uid" = 0 ] && [ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %u -- "$dir")" = 0 ]; then
        chown "$owner_uid:$owner_gid" -- "$dir" || { share_lock_problem="cannot give $dir to $OWNER"; return 1; }
    fi
    wait=$(( DEADLINE - $(date +%s) - 60 ))
    [ "$wait" -le "${SHARE_LOCK_WAIT_SECONDS:-600}" ] || wait=${SHARE_LOCK_WAIT_SECONDS:-600}
    [ "$wait" -gt 0 ] || { share_lock_problem="no time left in the budget to wait for the share's lock"; return 1; }
    mkdir -p /run/azlin
    share_lock_flag=/run/azlin/share-lock.$$ out=/run/azlin/share-lock-out.$$
    { : > "$share_lock_flag" && rm -f "$out" && : > "$out" && chown "$owner_uid" "$out"; } || return 1
    as_owner owner_hold_share_lock "$dir" "$wait" "$$" "$share_lock_flag" "$out" > /dev/null 2>&1 < /dev/null &
    share_lock_pid=$!
    while :; do
        line=$(head -1 "$out")
        [ -n "$line" ] && break
        if ! kill -0 "$share_lock_pid" 2>/dev/null; then line=$(head -1 "$out"); break; fi
        sleep 0.1
    done
    rm -f "$out"
    [ "$line" = locked ] && return 0
    # shellcheck disable=SC2034 # read by the script this file is sent with
    share_lock_problem=${line:-the lock holder ended without a word}
    release_share_lock
    return 1
}

release_share_lock() {  # the holder ends (its lock with it) once the flag is gone
    [ -n "$share_lock_pid" ] || return 0
    rm -f "$share_lock_flag"
    wait "$share_lock_pid" 2>/dev/null
    share_lock_pid="" share_lock_flag=""
}

owner_empty() {  # owner_empty DIR: everything in DIR deleted (read-only directories opened first)
    [ -d "$1" ] && [ ! -L "$1" ] || return 0
    find "$1" -xdev -mindepth 1 -type d ! -perm -u+wx -exec chmod u+wx -- {} + 2>/dev/null
    find "$1" -xdev -mindepth 1 -delete
}

discard_dir() {  # discard_dir DIR: emptied as its owner; the empty directory removed (never a link)
    as_owner owner_empty "$1" && rmdir -- "$1"
}

source_serves() {  # source_serves SOURCE ENDPOINT: a mount of that share, plain or through aznfs's
    # TLS tunnel (aznfs mounts from a local stunnel port: the kernel shows 127.0.0.1:/<acct>/<share>)
    [ "$1" = "$2" ] || [ "$1" = "127.0.0.1:/${2#*:/}" ]
}

nfs_options() {  # Azure's NFS 4.1 options; nconnect needs kernel 5.3 or later (nfs-performance.md).
    # nosuid,nodev: a setuid binary or a device node that root on another VM put on the share
    # gives nobody here root or a device.
    local major minor
    IFS=.- read -r major minor _ <<< "$(uname -r)"
    if [ "${major:-0}" -gt 5 ] || { [ "${major:-0}" -eq 5 ] && [ "${minor:-0}" -ge 3 ]; }; then
        echo "vers=4,minorversion=1,sec=sys,nconnect=4,nosuid,nodev"
    else
        echo "vers=4,minorversion=1,sec=sys,nosuid,nodev"
    fi
}

drop_fstab_line() {  # drop_fstab_line FSTAB ENDPOINT MOUNT_POINT: only that NFS line, atomically
    local next
    awk -v ep="$2" -v mp="$3" '$1 !~ /^#/ && $1 == ep && $2 == mp {found=1} END {exit !found}' "$1" \
        2>/dev/null || return 0
    next=$(mktemp "$1.azlin-new.XXXXXX") || return 1
    if awk -v ep="$2" -v mp="$3" '!($1 !~ /^#/ && $1 == ep && $2 == mp)' "$1" > "$next" \
        && chmod --reference="$1" "$next" && mv -f "$next" "$1"; then
        return 0
    fi
    rm -f "$next"
    return 1
}
