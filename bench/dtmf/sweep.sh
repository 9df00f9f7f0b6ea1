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
#     --quick      coarser Q.24 grids and fewer noisy presses (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/dtmf
mkdir -p "$out" bench/results
if ! [ -e /usr/include/spandsp.h ]; then
  echo "needs libspandsp-dev (apt-get install -y libspandsp-dev)" >&2
  exit 1
fi
cc -O2 -Wall -Wextra -o "$out/spandsp_dtmf" bench/dtmf/spandsp_dtmf.c -lspandsp
cargo bench --bench dtmf_sweep -- --spandsp "$out/spandsp_dtmf" "$@" | tee bench/results/dtmf-sweep.md
