#!/bin/sh
# Parses deploy/kamailio/kamailio.cfg with the installed Kamailio (`kamailio -c`), pointing it at
# the example dispatcher.list next to it. Exit 2 when kamailio is not installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v kamailio >/dev/null 2>&1; then
    echo "kamailio/check: kamailio not installed (apt-get install kamailio)" >&2
    exit 2
fi
out=$(kamailio -c -f "$here/kamailio.cfg" -A "DISPATCHER_LIST=\"$here/dispatcher.list\"" 2>&1) || {
    printf '%s\n' "$out" >&2
    exit 1
}
printf '%s\n' "$out" | grep -q "config file ok" || {
    printf '%s\n' "$out" >&2
    exit 1
}
echo "kamailio/check: $(kamailio -v | head -n 1): config file ok"
