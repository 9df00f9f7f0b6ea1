#!/bin/sh
# Checks deploy/sspr-ivr.service with `systemd-analyze verify` (and reports the offline
# `systemd-analyze security` exposure). Used by CI; needs the `systemd` package's tools, not a
# running systemd.
#
# verify insists that ExecStart's binary exists, so the unit is checked as a copy whose
# ExecStart points at a throw-away executable in a temporary directory: nothing is installed.
#
# Usage: deploy/check-unit.sh [UNIT_FILE]   (exit 0 = clean; non-zero = verify output shown)
# Env:   MAX_EXPOSURE  fail if the security exposure is above this (default 2.0)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
unit=${1:-"$here/sspr-ivr.service"}
max_exposure=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-unit: systemd-analyze not found (apt-get install systemd)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

printf '#!/bin/sh\nexit 0\n' >"$tmp/sspr-ivr"
chmod 0755 "$tmp/sspr-ivr"
# The unit must keep its name: verify derives the service name from the file name.
sed "s|/usr/bin/sspr-ivr|$tmp/sspr-ivr|g" "$unit" >"$tmp/sspr-ivr.service"

grep -q "^ExecStart=$tmp/sspr-ivr " "$tmp/sspr-ivr.service" || {
    echo "check-unit: ExecStart does not start /usr/bin/sspr-ivr" >&2
    exit 1
}

# verify prints problems but does not always fail on them: any output is a failure.
out=$(systemd-analyze verify "$tmp/sspr-ivr.service" 2>&1) || {
    printf '%s\n' "$out" >&2
    echo "check-unit: systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "check-unit: systemd-analyze verify reported problems" >&2
    exit 1
fi
echo "check-unit: systemd-analyze verify: clean"

# Exposure score (offline mode needs no running systemd; available since systemd 250).
if sec=$(systemd-analyze security --offline=true --no-pager "$tmp/sspr-ivr.service" 2>&1); then
    level=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for sspr-ivr.service: \([0-9.]*\).*/\1/p')
    echo "check-unit: systemd-analyze security exposure: ${level:-unknown}"
    if [ -n "$level" ] && awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l > m) }'; then
        printf '%s\n' "$sec" | grep '✗' >&2 || true
        echo "check-unit: exposure $level is above $max_exposure" >&2
        exit 1
    fi
else
    echo "check-unit: systemd-analyze security --offline unavailable here; exposure not checked" >&2
fi
