#!/usr/bin/env bash
# Load runs of sspr-ivr demo with sipp, bounded in calls and time, loopback only.
#
#   bench/load.sh echo  N [options]   N echo calls (tests/sipp/load_echo_stream.xml): talk
#                                     (PCMU speech every 20 ms for the whole call) and press
#                                     100100# as RFC 4733 events in that stream, hear it read
#                                     back, get BYE. The caller's stream is made for the run by
#                                     bench/make_load_pcap.py into OUT/load_caller.pcap.
#   bench/load.sh reset N [options]   N full password resets (tests/sipp/sspr_happy_rfc4733.xml)
#                                     against `demo --fixed-otp 246810`
# options:
#   -l L           at most L calls at once (default N: all N concurrent)
#   -r R           new calls per second (default: echo 100, reset 20)
#   -d MS          echo only: how long the caller talks before pressing keys (default 8000)
#   --rtpstream    echo only: sipp callers that stream speech through rtp_stream (plain UDP
#                  sockets; tests/sipp/load_echo_rtpstream.xml) and press the keys as SIP INFO,
#                  instead of the pcap player, whose raw socket per call the kernel walks for
#                  every datagram on the host (BENCHMARKS.md §10)
#   --silent       echo only: the old caller (tests/sipp/load_echo.xml) that sends no audio,
#                  only the stock RFC 4733 key pcaps after -d ms (BENCHMARKS.md §1-§8)
#   --record       run demo with --record (per-call WAV + timeline): every call's digits and
#                  readback prompts are checked from its timeline. Not the default: recording
#                  costs about as much server CPU as the rest of the call (BENCHMARKS.md §3),
#                  so CPU figures come from runs without it (`sspr-ivr load` checks every
#                  readback from the audio it hears instead, with no help from the server)
#   --jitter S     capture the server's outbound RTP for S seconds once L calls are up
#                  (snaplen 64) -> OUT/jitter.pcap, then run bench/rtp_jitter.py on it
#   --capture-all  capture both RTP directions with payloads for the whole run
#                  -> OUT/all.pcap, then run bench/latency.py on it
#   --serve        instead of `demo`, run `sspr-ivr demo-backend --fixed-otp 246810` and
#                  `sspr-ivr serve` with OUT/config.yaml: config.example.yaml with the ports
#                  above, absolute paths, and the per-ANI / per-account attempt limits and the
#                  OTP send budgets (per ANI, global) raised to 1000000 (the stock 10 and 5
#                  attempts and 6 sends per hour stop a load test from one caller number
#                  after a few calls)
#   --stub-backend with --serve: bench/load_backend.py instead of demo-backend (every
#                  employee ID its own account, no resend window / code consumption / PIN
#                  history), so each concurrent call of the stock scenario can complete a reset;
#                  LOOKUP_DELAY_MS=300 makes its directory lookup that slow
#   --cpu LIST     run the server under `taskset -c LIST` (e.g. --cpu 1: one core)
#   --uac CPUS     echo only: callers are `sspr-ivr load` (the project's UAC, one thread) instead
#                  of sipp, under `taskset -c CPUS` (`any`: not pinned); same call shape (-d),
#                  and it checks every call's readback from the prompts it hears. Its own
#                  report (steady window, server CPU/RSS, RTP intervals at the receiver) is in
#                  OUT/load.out and the summary
#   --sipp-cpu L   run sipp under `taskset -c L`
#   --rt           run the server under `chrt -f 10` (SCHED_FIFO): separates the server's own
#                  pacing from CPU contention with sipp, dumpcap and whatever else runs
#   --out DIR      where to put everything (default bench/out/MODE-N-HHMMSS)
# More than 1000 calls at once need --serve: `demo` stops at 1000 (limits.max_calls and 2000 RTP
# ports); with --serve the config gets max_calls / max_calls_per_source = max(1000, L + 100),
# invites_per_second_per_source = max(200, 2 R) and an RTP range of 2 (L + 100) ports from RTP_MIN
# (at least the stock 2000).
# Prints (and writes to OUT/summary.txt): sipp's successful/failed calls, the server's
# calls by outcome and DTMF digits by transport, the digit check, CPU-seconds per
# call-minute over the window where all L calls were up, RSS idle / at L calls / per call.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:?usage: bench/load.sh echo|reset N [options]}
N=${2:?usage: bench/load.sh echo|reset N [options]}
shift 2
L=$N RATE="" HOLD_MS=8000 RECORD=0 JITTER=0 CAPALL=0 OUT="" SERVE=0 STUB=0 WRAP=() SILENT=0 PIN=() UAC="" UAC_PIN=() SIPP_PIN=()
while [ $# -gt 0 ]; do
  case $1 in
    -l) L=$2; shift 2 ;;
    -r) RATE=$2; shift 2 ;;
    -d) HOLD_MS=$2; shift 2 ;;
    --record) RECORD=1; shift ;;
    --jitter) JITTER=$2; shift 2 ;;
    --capture-all) CAPALL=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --serve) SERVE=1; shift ;;
    --rt) WRAP=(chrt -f 10); shift ;;
    --cpu) PIN=(taskset -c "$2"); shift 2 ;;
    --silent) SILENT=1; shift ;;
    --rtpstream) SILENT=2; shift ;;
    --sipp-cpu) SIPP_PIN=(taskset -c "$2"); shift 2 ;;
    --uac) UAC=1; [ "$2" != any ] && UAC_PIN=(taskset -c "$2"); shift 2 ;;
    --stub-backend) STUB=1; SERVE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case $MODE in
  echo) SCEN=$ROOT/tests/sipp/load_echo_stream.xml SERVICE=echo RATE=${RATE:-100} PER_CALL=30
    [ "$SILENT" = 1 ] && SCEN=$ROOT/tests/sipp/load_echo.xml
    [ "$SILENT" = 2 ] && SCEN=$ROOT/tests/sipp/load_echo_rtpstream.xml ;;
  reset) SCEN=$ROOT/tests/sipp/sspr_happy_rfc4733.xml SERVICE=reset RATE=${RATE:-20} PER_CALL=90 ;;
  *) echo "mode must be echo or reset" >&2; exit 2 ;;
esac
BIN=${BIN:-$ROOT/target/release/sspr-ivr}
SIP_PORT=${SIP_PORT:-25060}
ADMIN=127.0.0.1:${ADMIN_PORT:-29090}
BACKEND=127.0.0.1:${BACKEND_PORT:-28089}
RTP_MIN=${RTP_MIN:-30000}
PORTS=$(( 2 * (L + 100) > 2000 ? 2 * (L + 100) : 2000 ))
RTP_MAX=$((RTP_MIN + PORTS - 2))
MAX_CALLS=$(( L + 100 > 1000 ? L + 100 : 1000 ))
if [ "$L" -gt 1000 ] && [ "$SERVE" = 0 ]; then
  echo "more than 1000 calls at once need --serve (demo stops at 1000 calls)" >&2; exit 2
fi
SIPP_PORT=${SIPP_PORT:-25070}
SIPP_MEDIA=${SIPP_MEDIA:-26000}
OUT=${OUT:-$ROOT/bench/out/$MODE-$N-$(date -u +%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Bound on the whole sipp run: ramp + per-call time for every batch of L calls.
BATCHES=$(( (N + L - 1) / L ))
SIPP_TIMEOUT=$(( N / RATE + 5 + BATCHES * (PER_CALL + HOLD_MS / 1000) ))
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" || true

log() { echo "$*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
# With --cpu, this script and everything it starts without a pin of its own (the
# 0.25 s sampler's curl/awk, the backend, dumpcap) stay off the server's CPUs:
# unpinned, they landed on the server's core a few times a second and delayed a
# pass of its calls' packets (BENCHMARKS.md §15: |interval - 20| p99 at 1,000
# calls 5.7-10.9 ms unpinned, 2.9-3.2 ms pinned). The server, and the callers
# under --uac/--sipp-cpu, keep their own taskset.
HELPER_CPUS=""
if [ ${#PIN[@]} -gt 0 ]; then
  HELPER_CPUS=$(python3 -c '
import os, sys
def cpus(spec):
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
rest = sorted(os.sched_getaffinity(0) - cpus(sys.argv[1]))
print(",".join(map(str, rest)))' "${PIN[2]}")
  [ -n "$HELPER_CPUS" ] && taskset -pc "$HELPER_CPUS" $$ > /dev/null
fi
log "# bench/load.sh $MODE $N -l $L -r $RATE -d $HOLD_MS record=$RECORD jitter=$JITTER capture_all=$CAPALL serve=$SERVE stub_backend=$STUB lookup_delay_ms=${LOOKUP_DELAY_MS:-0} wrap=${WRAP[*]:-none} cpu=${PIN[*]:-any} scenario=$(basename "$SCEN")"
log "date: $(date -u +%FT%TZ)  uptime:$(uptime)"
log "out: $OUT"
log "bench helpers (sampler, backend, captures) on CPUs: ${HELPER_CPUS:-any}"

for p in "$SIP_PORT" "${ADMIN#*:}" "${BACKEND#*:}"; do
  if ss -Hlnu "sport = :$p" | grep -q . || ss -Hlnt "sport = :$p" | grep -q .; then
    echo "port $p is in use; set SIP_PORT/ADMIN_PORT/BACKEND_PORT" >&2; exit 2
  fi
done

BACKEND_PID=""
if [ "$SERVE" = 1 ]; then
  python3 - "$ROOT" "$OUT" "$BACKEND" "$RTP_MIN" "$RTP_MAX" "$RECORD" "$MAX_CALLS" "$RATE" <<'PY'
import re, sys
root, out, backend, lo, hi, record, max_calls, rate = sys.argv[1:]
s = open(f"{root}/config.example.yaml").read()
subs = [
    (r"127\.0\.0\.1:8089", backend),
    (r"(?m)^(  rtp_port_min:) \d+", rf"\1 {lo}"),
    (r"(?m)^(  rtp_port_max:) \d+", rf"\1 {hi}"),
    (r"(?m)^(  attempts_per_ani_per_hour:) \d+", r"\1 1000000"),
    (r"(?m)^(  otp_sends_per_ani: \{ max:) \d+", r"\1 1000000"),
    (r"(?m)^(  otp_sends_global: \{ max:) \d+", r"\1 1000000"),
    (r"(?m)^(  max_calls:) \d+", rf"\1 {max_calls}"),
    (r"(?m)^(  max_calls_per_source:) \d+", rf"\1 {max_calls}"),
    (r"(?m)^(  invites_per_second_per_source:) \d+", rf"\1 {max(200, 2 * int(rate))}"),
    (r"(?m)^(  attempts_per_account_per_hour:) \d+", r"\1 1000000"),
    (r"(?m)^(  dir:) prompts$", rf"\1 {root}/prompts"),
    (r"(?m)^(  \w+:) flows/", rf"\1 {root}/flows/"),
    (r"(?m)^(  spool_dir:) .*$", rf"\1 {out}/spool"),
    (r"(?m)^(  dir:) var/recordings$", rf"\1 {out}/rec"),
]
if record == "1":
    subs.append((r"(?m)^(recording:\n  enabled:) false", r"\1 true"))
for pat, rep in subs:
    s, n = re.subn(pat, rep, s)
    if n == 0:
        sys.exit(f"config.example.yaml: no match for {pat}")
open(f"{out}/config.yaml", "w").write(s)
PY
  if [ "$STUB" = 1 ]; then
    python3 "$ROOT/bench/load_backend.py" --listen "$BACKEND" --otp 246810 \
      --lookup-delay-ms "${LOOKUP_DELAY_MS:-0}" > "$OUT/backend.log" 2>&1 &
  else
    "$BIN" demo-backend --listen "$BACKEND" --fixed-otp 246810 > "$OUT/backend.log" 2>&1 &
  fi
  BACKEND_PID=$!
  "${PIN[@]}" "${WRAP[@]}" "$BIN" serve --config "$OUT/config.yaml" --sip "127.0.0.1:$SIP_PORT" --admin "$ADMIN" \
    > "$OUT/server.log" 2>&1 &
else
  DEMO_ARGS=(demo --sip "127.0.0.1:$SIP_PORT" --admin "$ADMIN" --backend "$BACKEND"
    --rtp-port-min "$RTP_MIN" --spool "$OUT/spool" --fixed-otp 246810 --resend-window 0s)
  [ "$RECORD" = 1 ] && DEMO_ARGS+=(--record "$OUT/rec")
  "${PIN[@]}" "${WRAP[@]}" "$BIN" "${DEMO_ARGS[@]}" > "$OUT/server.log" 2>&1 &
fi
SERVER=$!
CAP=""
SIPP=""
cleanup() {
  [ -n "$SIPP" ] && kill "$SIPP" 2>/dev/null || true
  [ -n "$CAP" ] && kill "$CAP" 2>/dev/null || true
  if kill -0 "$SERVER" 2>/dev/null; then
    kill -TERM "$SERVER" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER" 2>/dev/null || true
  fi
  [ -n "$BACKEND_PID" ] && kill "$BACKEND_PID" 2>/dev/null || true
}
trap cleanup EXIT

metric() { # metric NAME [LABELMATCH] -> sum of matching samples
  curl -sf "http://$ADMIN/metrics" | awk -v n="$1" -v m="${2:-}" '
    $1 ~ "^"n"({|$)" && index($1, m) { s += $2 } END { printf "%d\n", s }'
}
for _ in $(seq 100); do curl -sf "http://$ADMIN/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$ADMIN/metrics" >/dev/null || { echo "server did not start:"; cat "$OUT/server.log"; exit 1; }
sleep 1
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
IDLE_RSS=$(rss_kb)
log "server pid $SERVER: idle VmRSS ${IDLE_RSS} kB, threads $(awk '/^Threads/ {print $2}' /proc/$SERVER/status)"

if [ "$CAPALL" = 1 ]; then
  timeout $((SIPP_TIMEOUT + 30)) dumpcap -q -i lo -s 256 -P -B 64 -w "$OUT/all.pcap" \
    -f "udp and portrange $RTP_MIN-$RTP_MAX" > "$OUT/dumpcap.log" 2>&1 &
  CAP=$!
  sleep 1
fi

SIPP_ARGS=(127.0.0.1:"$SIP_PORT" -sf "$SCEN" -s "$SERVICE" -l "$L" -m "$N" -r "$RATE" -rp 1000
  -d "$HOLD_MS" -i 127.0.0.1 -mi 127.0.0.1 -p "$SIPP_PORT" -mp "$SIPP_MEDIA" -max_socket 4096
  -timeout "${SIPP_TIMEOUT}s" -timeout_error -nostdin -trace_stat -stf "$OUT/sipp_stat.csv" -fd 1
  -trace_err -error_file "$OUT/sipp_errors.log" -trace_screen -screen_file "$OUT/sipp_screen.log")
if [ -n "$UAC" ]; then
  # The project's own load caller instead of sipp (same server, same sampling).
  UAC_ARGS=(load "sip:echo@127.0.0.1:$SIP_PORT" --calls "$L" --total "$N" --rate "$RATE"
    --first-key-ms "$HOLD_MS" --server-pid "$SERVER" --call-timeout 60 --timeout "$SIPP_TIMEOUT"
    ${UAC_EXTRA:-})
  log "${UAC_PIN[*]} $BIN ${UAC_ARGS[*]}"
  "${UAC_PIN[@]}" "$BIN" "${UAC_ARGS[@]}" > "$OUT/load.out" 2>&1 &
  SIPP=$!
else
log "sipp ${SIPP_ARGS[*]}"
if [ "$MODE" = echo ] && [ "$SILENT" = 2 ]; then
  # rtp_stream's audio: PCMU speech, looped by sipp for the whole call.
  espeak-ng -s 150 -w "$OUT/speech.wav" "I would like to reset my password please, one moment while I find my account number" 2>/dev/null
  sox "$OUT/speech.wav" -r 8000 -c 1 -e u-law "$OUT/caller.wav"
fi
if [ "$MODE" = echo ] && [ "$SILENT" = 0 ]; then
  python3 "$ROOT/bench/make_load_pcap.py" "$OUT/load_caller.pcap" --first-key-ms "$HOLD_MS" \
    --seconds $(( HOLD_MS / 1000 + 25 )) | tee -a "$OUT/summary.txt"
fi
# sipp runs in OUT: load_echo_stream.xml plays load_caller.pcap from its working directory.
( cd "$OUT" && exec "${SIPP_PIN[@]}" sipp "${SIPP_ARGS[@]}" > "$OUT/sipp.out" 2>&1 ) &
SIPP=$!
fi

# Sample the server every 0.25 s: time, calls_active, CPU ticks, VmRSS.
echo -e "t\tactive\tcpu_ticks\trss_kb\tsipp_cpu_ticks\tsteal_ticks" > "$OUT/samples.tsv"
# Steal per CPU (/proc/stat, cpuN's eighth value): time the hypervisor ran something else.
steal_ticks() { awk '/^cpu[0-9]/ { printf "%s%s", s, $9; s = "," }' /proc/stat; }
JSTARTED=0
while kill -0 "$SIPP" 2>/dev/null; do
  a=$(metric sspr_ivr_calls_active || echo 0)
  echo -e "$(date +%s.%N)\t$a\t$(cpu_ticks)\t$(rss_kb)\t$(awk '{print $14 + $15}' "/proc/$SIPP/stat" 2>/dev/null || echo 0)\t$(steal_ticks)" >> "$OUT/samples.tsv"
  if [ "$JITTER" != 0 ] && [ "$JSTARTED" = 0 ] && [ "$a" -ge "$L" ]; then
    JSTARTED=1
    timeout $((JITTER + 10)) dumpcap -q -i lo -s 64 -P -B 64 -a "duration:$JITTER" \
      -w "$OUT/jitter.pcap" -f "udp and src portrange $RTP_MIN-$RTP_MAX" > "$OUT/dumpcap.log" 2>&1 &
    CAP=$!
  fi
  sleep "${SAMPLE_S:-0.25}"
done
set +e
wait "$SIPP"; SIPP_RC=$?
SIPP=""
set -e
sleep 1
if ! curl -sf "http://$ADMIN/metrics" > "$OUT/metrics.txt"; then
  log "WARNING: the server is gone before the end of the run (see $OUT/server.log)"
fi
kill -0 "$SERVER" 2>/dev/null || log "WARNING: server process $SERVER exited during the run"
if [ -n "$CAP" ]; then
  if [ "$CAPALL" = 1 ]; then kill -INT "$CAP" 2>/dev/null || true; fi
  wait "$CAP" 2>/dev/null || true
  CAP=""
fi

if [ -n "$UAC" ]; then
  log "sspr-ivr load exit code $SIPP_RC (0 = every call succeeded and heard its readback)"
  tee -a "$OUT/summary.txt" < "$OUT/load.out"
else
  log "sipp exit code $SIPP_RC (0 = every call succeeded)"
fi
python3 - "$OUT" "$N" "$L" "$TCK" "$IDLE_RSS" "$MODE" "$RECORD" <<'PY' | tee -a "$OUT/summary.txt"
import csv, glob, json, os, re, sys
out, n, l, tck, idle_rss, mode, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7] == "1"
stat_file = os.path.join(out, "sipp_stat.csv")
rows = list(csv.reader(open(stat_file), delimiter=";")) if os.path.exists(stat_file) else []
if rows and len(rows) > 1:
    h, last = rows[0], rows[-1]
    g = lambda k: last[h.index(k)] if k in h else "?"
    print(f"sipp: calls created {g('TotalCallCreated')}, successful {g('SuccessfulCall(C)')}, failed {g('FailedCall(C)')}, "
          f"retransmissions {g('Retransmissions(C)')}, dead calls {g('DeadCallMsgs(C)')}")
else:
    print("sipp: no statistics file")
m = {}
for line in open(os.path.join(out, "metrics.txt")):
    if line.startswith("sspr_ivr_") and " " in line:
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
def pick(prefix):
    return {k[len(prefix):]: int(v) for k, v in m.items() if k.startswith(prefix) and "_bucket" not in k}
print("server calls finished:", pick("sspr_ivr_calls_finished_total"))
print("server setup rejections:", pick("sspr_ivr_call_setup_rejections_total"), " task panics:", pick("sspr_ivr_call_task_panics_total"))
digits = pick("sspr_ivr_dtmf_digits_total")
print("server dtmf digits:", digits)
print("server rtp sent/late/lost/malformed:", pick("sspr_ivr_rtp_packets_sent_total"), pick("sspr_ivr_rtp_packets_late_total"),
      pick("sspr_ivr_rtp_packets_lost_total"), pick("sspr_ivr_rtp_packets_malformed_total"))
total_digits = sum(digits.values())
expect = {"echo": 7, "reset": 7 + 6 + 6 + 6}[mode]
print(f"digits: server counted {total_digits}, expected {expect} x {n} calls = {expect * n}: "
      + ("OK" if total_digits == expect * n else "MISMATCH"))
if record:
    # Each timeline is JSON lines: digits_collected {var, shown} and prompt_played {prompts}.
    tls = glob.glob(os.path.join(out, "rec", "*.timeline.jsonl"))
    want = {"echo": "digits ['100100'] and prompts echo_intro, you_entered 1 0 0 1 0 0, goodbye",
            "reset": "digits ['123456', otp masked, new_pin masked] and pin_reset_success"}[mode]
    echo_prompts = ["echo_intro", "you_entered"] + [f"digit_{d}" for d in "100100"] + ["goodbye"]
    good, bad = 0, []
    for f in tls:
        evs = [json.loads(line) for line in open(f) if line.strip()]
        shown = [e.get("shown") for e in evs if e.get("event") == "digits_collected"]
        played = [p for e in evs if e.get("event") == "prompt_played" for p in e.get("prompts", [])]
        ok = (shown == ["100100"] and played == echo_prompts) if mode == "echo" else (
            len(shown) == 3 and shown[0] == "123456" and all(x and set(x) == {"*"} for x in shown[1:])
            and "pin_reset_success" in played)
        if ok:
            good += 1
        else:
            bad.append((os.path.basename(f), shown, played))
    print(f"timelines: {len(tls)} calls, {good} as expected ({want}), {len(bad)} not"
          + (f": {bad[:3]}" if bad else "") + ("" if len(tls) == n else f"; MISSING {n - len(tls)} timelines"))
else:
    print("timelines: not checked (no --record); the digit total above is the only correctness check")
# steady window: samples with calls_active >= l
s = [r for r in csv.reader(open(os.path.join(out, "samples.tsv")), delimiter="\t")][1:]
s = [(float(t), int(a), int(c), int(r or 0), int(sp or 0), [int(v) for v in st.split(",") if v])
     for t, a, c, r, sp, st in s]
full = [i for i, x in enumerate(s) if x[1] >= l]
if len(full) >= 2:
    i, j = full[0], full[-1]
    win = s[i:j + 1]
    call_s = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(win, win[1:]))
    cpu = (s[j][2] - s[i][2]) / tck
    dur = s[j][0] - s[i][0]
    peak_rss = max(x[3] for x in win)
    print(f"steady window: {dur:.2f} s with >= {l} calls up (mean {call_s / dur:.1f}), {call_s / 60:.2f} call-minutes, "
          f"server CPU {cpu:.2f} s ({100 * cpu / dur:.0f} % of one core) -> {cpu / (call_s / 60):.4f} CPU-s per call-minute; "
          f"sipp CPU {(s[j][4] - s[i][4]) / tck:.2f} s")
    print(f"RSS: idle {idle_rss} kB, peak in window {peak_rss} kB -> {(peak_rss - idle_rss) / l:.1f} kB per call")
    stolen = [(b - a) / tck for a, b in zip(s[i][5], s[j][5])]
    if any(stolen):
        print("host steal in window (the hypervisor ran something else on these CPUs): "
              + ", ".join(f"cpu{k} {v:.2f} s ({100 * v / dur:.1f} %)" for k, v in enumerate(stolen)))
    else:
        print("host steal in window: none")
else:
    print(f"steady window: never saw {l} calls up at once (max {max((x[1] for x in s), default=0)})")
PY
if [ "$MODE" = reset ]; then
  for _ in $(seq 20); do  # audit delivery to the backend is asynchronous
    curl -sf "http://$BACKEND/demo/audit" > "$OUT/audit.json" || true
    python3 -c 'import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))) >= int(sys.argv[2]) else 1)' \
      "$OUT/audit.json" "$N" 2>/dev/null && break
    sleep 0.5
  done
  python3 -c '
import json, sys, collections
a = json.load(open(sys.argv[1]))
print("backend audit records:", len(a), dict(collections.Counter(str(r.get("result", r.get("Result"))) for r in a)))
' "$OUT/audit.json" | tee -a "$OUT/summary.txt"
fi
if [ "$JITTER" != 0 ] && [ -f "$OUT/jitter.pcap" ]; then
  log "python3 bench/rtp_jitter.py $OUT/jitter.pcap --ports $RTP_MIN-$RTP_MAX"
  python3 "$ROOT/bench/rtp_jitter.py" "$OUT/jitter.pcap" --ports "$RTP_MIN-$RTP_MAX" | tee -a "$OUT/summary.txt"
fi
if [ "$CAPALL" = 1 ] && [ -f "$OUT/all.pcap" ]; then
  TL=()
  [ "$RECORD" = 1 ] && TL=(--timelines "$OUT/rec")
  log "python3 bench/latency.py $MODE $OUT/all.pcap --ports $RTP_MIN-$RTP_MAX ${TL[*]}"
  python3 "$ROOT/bench/latency.py" "$MODE" "$OUT/all.pcap" --ports "$RTP_MIN-$RTP_MAX" "${TL[@]}" | tee -a "$OUT/summary.txt"
fi
log "dumpcap: $(cat "$OUT/dumpcap.log" 2>/dev/null | tr '\n' ' ')"
log "uptime at end:$(uptime)"
exit "$SIPP_RC"
