#!/usr/bin/env bash
# Instructions per 20 ms frame of the in-band DTMF detector, counted by callgrind on the
# inputs of benches/goertzel.rs: exact and unaffected by what else runs on the machine
# (unlike criterion's times on a shared box).
#
#   bench/dtmf/cost.sh [BENCH_EXE...]
# With no argument, builds `cargo bench --bench goertzel` and measures it. Give older
# bench executables (copies of target/release/deps/goertzel-*) to compare side by side.
# For each executable and input, criterion runs the input for 1 s (--profile-time) under
# callgrind; the script sums, over every call of InbandDetector::push (one 160-sample
# frame each), the calls and their inclusive instruction count, and divides.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
exes=("$@")
if [ ${#exes[@]} -eq 0 ]; then
  exe=$(cargo bench --bench goertzel --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
  exes=("$exe")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-40s %-10s %12s %8s\n' executable input instr/frame frames
for exe in "${exes[@]}"; do
  for input in $("$exe" --bench --list 2>/dev/null | sed -n 's|^inband_detector_per_20ms_frame/\([a-z]*\): benchmark$|\1|p'); do
    rm -f "$tmp"/cg.*
    # %p: criterion also starts a child process, which writes a file of its own
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" \
      "$exe" --bench --profile-time 1 --exact "inband_detector_per_20ms_frame/$input" >/dev/null 2>&1
    out=$(ls -S "$tmp"/cg.* | head -1)
    # In callgrind's format a call edge is "cfn=(id)", then "calls=N pos", then
    # "pos inclusive-cost"; the function's id is defined once as "fn=(id) name".
    awk '
      /^c?fn=\([0-9]+\) .*InbandDetector::push$/ { match($0, /\([0-9]+\)/); id = substr($0, RSTART, RLENGTH) }
      /^cfn=/ { edge = (id != "" && index($0, "cfn=" id) == 1) ; next }
      /^calls=/ { if (edge) { split($1, c, "="); calls += c[2]; take = 1 }; next }
      take { cost += $NF; take = 0; edge = 0 }
      END { if (calls == 0) exit 1; printf "%d %d\n", cost / calls, calls }
    ' "$out" | while read -r per calls; do
      printf '%-40s %-10s %12d %8d\n' "$(basename "$exe")" "$input" "$per" "$calls"
    done
  done
done
