#!/bin/bash
# Helpers every VM script starts with: the Run Command script is this file followed by the
# script itself (shared/scripts/__init__.py puts them together), so they share one definition.

json_string() {  # $1 as a JSON string (backslash, quote and control characters escaped)
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    printf '"%s"' "$s"
}

count_files() { find "$1" -mindepth 1 -printf . 2>/dev/null | wc -c; }  # names may hold newlines

valid_endpoint() {  # an Azure Files NFS address: <account>.file.core.windows.net:/<account>/<share>
    local re='^[a-z0-9]{3,24}\.file\.core\.windows\.net:/[a-z0-9]{3,24}/[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'
    [[ "$1" =~ $re ]]
}

valid_mount_point() {  # absolute, plain characters, no '..', no trailing '/'
    [[ "$1" =~ ^/[A-Za-z0-9._/-]+$ && "$1" != *..* && "$1" != */ ]]
}
