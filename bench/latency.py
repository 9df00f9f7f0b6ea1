#!/usr/bin/env python3
"""Last digit of an entry -> first RTP packet of the next prompt, from a pcap.

    bench/latency.py echo  CAPTURE.pcap [--ports 30000-31998]
    bench/latency.py reset CAPTURE.pcap --timelines REC_DIR [--ports ...]

The capture must hold both directions on lo with full RTP payloads (snaplen
>= 256): the caller's RFC 4733 packets TO the server's RTP port and the
server's audio FROM it. One server RTP port = one call (ports are handed out
round-robin from a range of 1000, so a capture of up to 1000 calls never
reuses one).

Definitions (capture clock on lo):
  t_key    the first packet of the terminating `#` press arriving at the
           server's port. The server reports an RFC 4733 digit on the first
           packet of a press, so this is the moment it can know the entry
           ended. (t_key_end, the press's first end-bit packet, is reported
           too: sipp's stock pcap sends the end packets 140 ms after the start.)
  t_prompt the first outbound packet after t_key with the RTP marker bit (the
           server sets it on the first packet of every prompt); its payload is
           matched against prompts/en/*.wav encoded as PCMU to name the prompt.

echo:  latency = t_prompt - t_key; the prompt must be `you_entered`.
reset: the `#` ends the employee ID; the flow then runs lookup_user (with
       `please_wait` as its processing prompt) and send_otp, then plays
       `code_sent_to_number`. Reported:
       next_prompt = t_prompt - t_key (whatever prompt comes first: please_wait,
                     or code_sent_to_number when both calls answered before
                     the next 20 ms packet);
       after_backend = t(first packet of code_sent_to_number) - t_key, and
       excess = after_backend - (lookup_user + send_otp latency from the call's
       timeline), matched to the call by the wall-clock time of the `#`
       (the capture and the timeline both use the system clock).
"""
import argparse
import array
import datetime
import glob
import json
import os
import re
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaprtp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = os.path.join(HERE, "..", "prompts", "en")
FRAME = 160
MATCH_FRAMES = 12


def ulaw(s):
    """G.711 mu-law of one sample, bit for bit as the server's encoder
    (audio-codec-algorithms 0.8 `encode_ulaw`)."""
    sign = 0 if s >= 0 else 0x80
    lin = (s >> 2) & 0xFFFF
    absval = lin ^ 0xFFFF if sign else lin
    v = absval + 33
    seg = max(0, v.bit_length() - 6)
    code = 0x7F if seg >= 8 else (seg << 4) | ((v >> (seg + 1)) & 0x0F)
    return (sign | code) ^ 0xFF


def load_prompts(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.wav"))):
        w = wave.open(f)
        pcm = array.array("h", w.readframes(min(w.getnframes(), FRAME * MATCH_FRAMES)))
        if sys.byteorder == "big":
            pcm.byteswap()
        enc = bytes(ulaw(x) for x in pcm)
        frames = [enc[i:i + FRAME] for i in range(0, len(enc), FRAME)]
        frames[-1] = frames[-1] + b"\xff" * (FRAME - len(frames[-1]))
        out[os.path.basename(f)[:-4]] = frames[:MATCH_FRAMES]
    return out


def classify(prompts, payloads):
    """Name the prompt whose leading frames match the longest prefix of
    `payloads` (PCMU bytes; a frame matches when >= 90 % of its bytes agree).
    A prompt stopped early (barge-in, or a processing prompt stopped when its
    action answered) is followed by silence, so only a prefix can match. All
    prompts start with two near-silent frames: a match of <= 2 frames shared
    by several prompts is ambiguous and gives None."""
    def eq(a, b):
        return len(b) >= len(a) and sum(1 for x, y in zip(a, b) if x == y) >= 0.9 * len(a)
    best, best_m, tie = None, 0, False
    for name, frames in prompts.items():
        m = 0
        for a, b in zip(frames, payloads):
            if not eq(a, b):
                break
            m += 1
        if m > best_m:
            best, best_m, tie = name, m, False
        elif m == best_m and m > 0:
            tie = True
    if best_m == 0 or (tie and best_m <= 2):
        return None, best_m
    return best, best_m


def presses(events):
    """Group telephone-event packets (ts, code, end) into key presses."""
    out = []
    for ts, code, end in events:
        cur = out[-1] if out else None
        if cur is None or cur["code"] != code or ts - cur["last"] > 0.06:
            cur = {"code": code, "first": ts, "last": ts, "end": None}
            out.append(cur)
        cur["last"] = ts
        if end and cur["end"] is None:
            cur["end"] = ts
    return out


def load_calls(pcap, lo, hi):
    calls = {}
    st = pcaprtp.Stats()
    for p in pcaprtp.read(pcap, st):
        if lo <= p.dport <= hi and p.pt not in (0, 8) and len(p.payload) >= 4:
            c = calls.setdefault(p.dport, {"ev": [], "out": [], "ssrcs": set()})
            c["ev"].append((p.ts, p.payload[0], bool(p.payload[1] & 0x80)))
        elif lo <= p.sport <= hi and p.pt in (0, 8):
            c = calls.setdefault(p.sport, {"ev": [], "out": [], "ssrcs": set()})
            c["out"].append(p)
            c["ssrcs"].add(p.ssrc)
    return calls, st


def next_prompt(prompts, out, t):
    """First marker packet after t: (time, prompt name); out is in capture order."""
    for i, p in enumerate(out):
        if p.ts > t and p.marker:
            payloads = [out[i].payload]
            for q in out[i + 1:i + MATCH_FRAMES]:
                if q.marker:
                    break
                payloads.append(q.payload)
            name, m = classify(prompts, payloads)
            if name is None:
                name = f"(unidentified: {m} leading silent packets, then not a prompt)"
            return p.ts, name, i
    return None, None, None


def parse_duration_ms(s):
    m = re.match(r"([0-9.]+)(ns|µs|us|ms|s)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}[m.group(2)]


def load_timelines(d):
    """Per call: wall time of lookup_user's start and the two action latencies."""
    out = []
    for f in glob.glob(os.path.join(d, "*.timeline.jsonl")):
        rec = {"file": os.path.basename(f), "lookup_start": None, "lat": {}}
        with open(f) as fh:
            for line in fh:
                j = json.loads(line)
                ev = j["event"]
                t = datetime.datetime.fromisoformat(j["time"].replace("Z", "+00:00")).timestamp()
                m = re.match(r'ActionStarted \{ action: "(\w+)"', ev)
                if m and m.group(1) == "lookup_user" and rec["lookup_start"] is None:
                    rec["lookup_start"] = t
                m = re.match(r'ActionFinished \{ action: "(\w+)", outcome: "(\w+)", latency: ([^ ]+) \}', ev)
                if m and m.group(1) not in rec["lat"]:
                    rec["lat"][m.group(1)] = parse_duration_ms(m.group(3))
        if rec["lookup_start"] is not None:
            out.append(rec)
    return out


def summary(name, xs):
    xs = sorted(xs)
    pc = pcaprtp.percentile
    if not xs:
        return f"{name}: no samples"
    return (f"{name} (ms, n={len(xs)}): min {xs[0]:.2f}  p50 {pc(xs, 50):.2f}  "
            f"p90 {pc(xs, 90):.2f}  p99 {pc(xs, 99):.2f}  max {xs[-1]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["echo", "reset"])
    ap.add_argument("pcap")
    ap.add_argument("--ports", default="30000-31998")
    ap.add_argument("--prompts", default=PROMPTS)
    ap.add_argument("--timelines", help="demo --record directory (reset mode)")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.ports.split("-"))
    prompts = load_prompts(args.prompts)
    calls, st = load_calls(args.pcap, lo, hi)
    timelines = load_timelines(args.timelines) if args.timelines else []

    lat, lat_end, after_backend, excess, backend = [], [], [], [], []
    names = {}
    problems = []
    multi_ssrc = 0
    for port, c in sorted(calls.items()):
        if len(c["ssrcs"]) > 1:
            multi_ssrc += 1
        pr = [x for x in presses(c["ev"]) if x["code"] == 11]
        if not pr or not c["out"]:
            problems.append(f"port {port}: no '#' press or no outbound audio in the capture")
            continue
        key = pr[-1] if args.mode == "echo" else pr[0]
        t, name, idx = next_prompt(prompts, c["out"], key["first"])
        if t is None:
            problems.append(f"port {port}: no prompt after '#' in the capture")
            continue
        names[name] = names.get(name, 0) + 1
        lat.append((t - key["first"]) * 1000)
        if key["end"] is not None:
            lat_end.append((t - key["end"]) * 1000)
        if args.mode == "reset":
            tt = t
            nm = name
            j = idx
            while nm != "code_sent_to_number" and j is not None:
                tt, nm, j = next_prompt(prompts, c["out"][j + 1:], tt)
                if j is not None:
                    j += idx + 1
                    idx = j
            if tt is None:
                problems.append(f"port {port}: code_sent_to_number not in the capture")
                continue
            ab = (tt - key["first"]) * 1000
            after_backend.append(ab)
            if timelines:
                tl = min(timelines, key=lambda r: abs(r["lookup_start"] - key["first"]))
                if abs(tl["lookup_start"] - key["first"]) > 0.5:
                    problems.append(f"port {port}: no timeline within 0.5 s of its '#'")
                    continue
                b = (tl["lat"].get("lookup_user") or 0) + (tl["lat"].get("send_otp") or 0)
                backend.append(b)
                excess.append(ab - b)

    print(f"pcap {args.pcap}: {st.records} records, {len(calls)} calls (server RTP ports)"
          + (f", {multi_ssrc} ports with more than one SSRC (reused port!)" if multi_ssrc else ""))
    print(f"first prompt after '#': {names}")
    if args.mode == "echo":
        print(summary("'#' first packet -> first packet of the next prompt", lat))
        print(summary("'#' first end packet -> first packet of the next prompt", lat_end))
    else:
        print(summary("'#' first packet -> first packet of the next prompt (please_wait or later)", lat))
        print(summary("'#' first packet -> first packet of code_sent_to_number", after_backend))
        if timelines:
            print(summary("backend latency lookup_user + send_otp (timeline)", backend))
            print(summary("excess = after_backend - backend latency", excess))
    for p in problems[:20]:
        print("problem:", p)
    if problems:
        print(f"{len(problems)} problems")


if __name__ == "__main__":
    main()
