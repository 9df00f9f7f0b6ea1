#!/bin/sh
# Regenerates every prompt WAV under prompts/en/ from prompts.tsv, reproducibly.
#
#   speech:     espeak-ng, voice en-us, speed 155 wpm, pitch 45, amplitude 100
#   conversion: sox -> 8 kHz, mono, 16-bit signed PCM, no dither (-D), repeatable (-R);
#               leading/trailing silence trimmed, then 50 ms of digital silence padded
#               on each side; level set so speech RMS is about -16 dBFS with peaks
#               kept at or below -1 dBFS.
#   hold_music: a ~10 s plucked chord progression (C Am F G C Am Dm G) synthesised by sox.
#
# Requires espeak-ng and sox (Debian: apt-get install -y espeak-ng sox).
set -eu
cd "$(dirname "$0")"
out=en
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Apply a gain that brings the RMS level to -16 dBFS without peaks above -1 dBFS.
level() {
    stats=$(sox "$1" -n stats 2>&1)
    rms=$(printf '%s\n' "$stats" | awk '/^RMS lev dB/ {print $4}')
    pk=$(printf '%s\n' "$stats" | awk '/^Pk lev dB/ {print $4}')
    gain=$(awk -v r="$rms" -v p="$pk" 'BEGIN { g = -16 - r; if (p + g > -1) g = -1 - p; printf "%.2f", g }')
    sox -D -R "$1" -b 16 -e signed-integer "$2" gain "$gain"
}

tab=$(printf '\t')
while IFS="$tab" read -r name text; do
    case "$name" in '' | '#'*) continue ;; esac
    espeak-ng -v en-us -s 155 -p 45 -a 100 -w "$tmp/raw.wav" "$text"
    sox -D -R "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/trim.wav" \
        gain -6 highpass 100 \
        silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse \
        pad 0.05 0.05
    level "$tmp/trim.wav" "$out/$name.wav"
done < prompts.tsv

# Hold music: each chord 1.25 s, three plucked strings mixed to mono.
i=0
for chord in "%-9 %-5 %-2" "%-12 %-9 %-5" "%-16 %-12 %-9" "%-14 %-10 %-7" \
             "%-9 %-5 %-2" "%-12 %-9 %-5" "%-19 %-15 %-12" "%-14 %-10 %-7"; do
    set -- $chord
    sox -D -R -n -r 8000 -c 3 -b 16 -e signed-integer "$tmp/strings.wav" \
        synth 1.25 pluck "$1" pluck "$2" pluck "$3"
    sox -D -R "$tmp/strings.wav" -c 1 "$tmp/chord$i.wav" remix - gain -6 fade t 0.01 1.25 0.2
    i=$((i + 1))
done
sox -D -R "$tmp"/chord?.wav "$tmp/music.wav"
level "$tmp/music.wav" "$out/hold_music.wav"
