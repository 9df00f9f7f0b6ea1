#!/usr/bin/env bash
# The server's syscalls and CPU profile during a bench/load.sh run (issue 14).
#
#   bench/engine_profile.sh N [SECONDS] [load.sh options]
#
# Runs `bench/load.sh echo N -d 20000 [options]` (14000 with --uac, see below; BIN=…
# picks the executable, as for load.sh), waits until all N calls are up, then attaches
# to the server for SECONDS (default 5):
#   perf stat  -e raw_syscalls:sys_enter and the syscalls that matter, per call-second;
#   perf record -F 999 -g (only with PROFILE=1; perf.data goes to OUT, never commit it;
#   symbols need `cargo build --profile profiling` and BIN=target/profiling/sspr-ivr),
#   then `perf report` shares: kernel vs. user, syscall entry, timers, our code.
# The two are not run together (perf record's own cost would show in the counts).
# Prints (and appends to OUT/summary.txt) the numbers with the load average.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:?usage: bench/engine_profile.sh N [SECONDS] [load.sh options]}
SECS=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
OUT=${OUT:-$ROOT/bench/out/profile-$N-$(date -u +%H%M%S)}
mkdir -p "$OUT"
# Calls held long enough to attach. sipp's scenario waits -d before its keys. The
# project's load caller checks every call's readback, so its first key comes at 14 s:
# the echo flow has said no_input (first-digit timeout 5 s after the 4.7 s intro) and
# is replaying the intro, which the key interrupts; that is what each call must hear.
HOLD=20000
case " $* " in
  *" --uac "*)
    HOLD=14000
    HEARD=echo_intro,no_input,echo_intro,you_entered
    HEARD=$HEARD,digit_1,digit_0,digit_0,digit_1,digit_0,digit_0,goodbye
    export UAC_EXTRA="--expect $HEARD ${UAC_EXTRA:-}" ;;
esac
"$ROOT/bench/load.sh" echo "$N" -d "$HOLD" --out "$OUT" "$@" > "$OUT/load.log" 2>&1 &
LOAD=$!
trap 'kill $LOAD 2>/dev/null || true' EXIT
SERVER=""
for _ in $(seq 1 600); do
  SERVER=$(sed -n 's/^server pid \([0-9]*\):.*/\1/p' "$OUT/summary.txt" 2>/dev/null || true)
  [ -n "$SERVER" ] && break
  sleep 0.1
done
[ -n "$SERVER" ] || { echo "server did not start (see $OUT/load.log)" >&2; exit 1; }
# all N calls up: the last sample's calls_active column
for _ in $(seq 1 1200); do
  a=$(tail -n 1 "$OUT/samples.tsv" 2>/dev/null | cut -f2)
  [ "${a:-0}" -ge "$N" ] 2>/dev/null && break
  sleep 0.25
done
sleep 1
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 999 -g -o "$OUT/perf.data" -p "$SERVER" -- sleep "$SECS" 2> "$OUT/perf-record.log"
else
  perf stat -x, -o "$OUT/perf-stat.csv" -p "$SERVER" \
    -e raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg \
    -e syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg \
    -e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex \
    -e syscalls:sys_enter_io_uring_enter,task-clock \
    -- sleep "$SECS"
fi
wait $LOAD || true
trap - EXIT
{
  echo "# engine_profile: $N calls, ${SECS} s attached, load average at start: $LOADAVG"
  if [ "${PROFILE:-0}" = 1 ]; then
    perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' | head -12
  else
    awk -F, -v n="$N" -v s="$SECS" '$3 != "" && $1 ~ /^[0-9.]+$/ {
      printf "%-34s %12s  %8.2f per call-second\n", $3, $1, $1 / (n * s) }' "$OUT/perf-stat.csv"
  fi
  grep -E "steady window|sipp exit|digit|^calls: placed|^failures" "$OUT/summary.txt" || true
} | tee -a "$OUT/summary.txt"
