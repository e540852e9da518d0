#!/bin/bash
# Helpers every VM script starts with: the Run Command script is this file followed by the
# script itself (shared/scripts/__init__.py puts them together), so they share one definition.

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

STATE_DIR=/var/lib/azlin

state_path() {  # state_path KIND MOUNT_POINT: one file per kind and mount point, on the VM's disk
    printf '%s/%s-%s.state' "$STATE_DIR" "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}

take_lock() {  # one attach or detach at a time on this VM: a second waits, then gives up
    mkdir -p "$STATE_DIR" && exec 9>"$STATE_DIR/lock" && flock -w "${1:-120}" 9
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
