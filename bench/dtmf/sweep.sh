#!/usr/bin/env bash
# The in-band DTMF detector beside spandsp's dtmf_rx (libspandsp-dev), on identical
# μ-law audio: Q.24 limits, white-noise tolerance, and talk-off per hour on the
# harmonic-rich material of src/media/goertzel/talkoff.rs and on the repo's real speech
# and music. Prints a Markdown report (the detector section of BENCHMARKS.md) and keeps
# a copy in bench/results/dtmf-sweep.md.
#
#   bench/dtmf/sweep.sh [--minutes N] [--seeds S] [--quick]
#     --minutes N  minutes of each talk-off material per seed (default 60)
#     --seeds S    seeds 1..S (default 4: 4 hours of each material)
#     --ablation-minutes N  minutes per seed for the table of what each talk-off
#                  check buys (13 detector variants; default: --minutes)
#     --quick      coarser Q.24 grids and fewer noisy presses (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/dtmf
mkdir -p "$out" bench/results
# spandsp's headers and a C compiler: installed here when missing (Debian, as root).
need=()
if ! command -v cc >/dev/null 2>&1; then
  need+=(gcc libc6-dev libspandsp-dev)
elif ! echo '#include <spandsp.h>' | cc -E -x c - >/dev/null 2>&1; then
  need+=(libspandsp-dev) # the header is under /usr/include/<multiarch>/ on Debian
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "needs ${need[*]} (apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cc -O2 -Wall -Wextra -o "$out/spandsp_dtmf" bench/dtmf/spandsp_dtmf.c -lspandsp
cargo bench --bench dtmf_sweep -- --spandsp "$out/spandsp_dtmf" "$@" | tee bench/results/dtmf-sweep.md
