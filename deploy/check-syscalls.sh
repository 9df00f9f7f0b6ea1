#!/bin/bash
# Runs a command under strace and lists the system calls it made that the unit's
# SystemCallFilter= would refuse. Use it on the real binary (an end-to-end call, a reload, a
# drain) before tightening or after loosening the filter.
#
# Usage: deploy/check-syscalls.sh [-u UNIT_FILE] COMMAND [ARGS...]
# Exit:  0 all calls allowed, 1 some would be refused (listed), 2 missing tools
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
unit="$here/sspr-ivr.service"
if [ "${1:-}" = "-u" ]; then
    unit=$2
    shift 2
fi
[ $# -gt 0 ] || { echo "usage: $0 [-u UNIT] COMMAND [ARGS...]" >&2; exit 2; }
for tool in strace systemd-analyze; do
    command -v "$tool" >/dev/null 2>&1 || { echo "check-syscalls: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Expand a filter item (@group or syscall name) to syscall names.
expand() {
    case "$1" in
    @*)
        systemd-analyze syscall-filter "$1" | sed 's/^ *//' | grep -v -e '^#' -e '^$' | tail -n +2 |
            while read -r s; do expand "$s"; done
        ;;
    *) echo "$1" ;;
    esac
}

: >"$tmp/allow"
: >"$tmp/deny"
while IFS= read -r line; do
    value=${line#SystemCallFilter=}
    target=allow
    case "$value" in "~"*) target=deny; value=${value#\~} ;; esac
    for item in $value; do
        expand "${item#\~}" >>"$tmp/$target"
    done
done < <(grep '^SystemCallFilter=' "$unit")
sort -u "$tmp/allow" -o "$tmp/allow"
sort -u "$tmp/deny" -o "$tmp/deny"
comm -23 "$tmp/allow" "$tmp/deny" >"$tmp/permitted"

status=0
strace -f -qq -o "$tmp/trace" "$@" || status=$?
sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/^([a-z0-9_]+)\(.*/\1/' "$tmp/trace" |
    grep -E '^[a-z0-9_]+$' | sort -u >"$tmp/used"
refused=$(comm -23 "$tmp/used" "$tmp/permitted")
echo "check-syscalls: command exited $status; $(wc -l <"$tmp/used") distinct system calls"
if [ -n "$refused" ]; then
    echo "check-syscalls: refused by $(basename "$unit")'s SystemCallFilter:" >&2
    printf '  %s\n' $refused >&2
    exit 1
fi
echo "check-syscalls: all allowed by $(basename "$unit")'s SystemCallFilter"
