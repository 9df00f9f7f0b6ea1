#!/usr/bin/env python3
"""Outbound RTP inter-packet intervals from a pcap (standard library only).

    bench/rtp_jitter.py CAPTURE.pcap [--ports 30000-31998] [--json]

Takes the audio packets (payload type 0 or 8) sent FROM the server's RTP port
range, groups them per stream (source port + SSRC), and for every pair of
packets with consecutive sequence numbers computes the capture-time delta.
Pairs across a sequence gap (a packet the capture dropped) are not counted but
the gaps are reported. Prints p50 / p99 / p99.9 / max of the deltas and the
fraction within 18-22 ms, and the per-packet offset from each stream's ideal
20 ms schedule (arrival - (first arrival + n x ptime), shifted so the
stream's earliest packet is 0), which separates jitter from drift.

The timestamps are the capture's (dumpcap on lo): on a loaded machine they
include the scheduling delay of the capture process too.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaprtp  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap")
    ap.add_argument("--ports", default="30000-31998", help="server RTP port range (source ports)")
    ap.add_argument("--ptime-ms", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.ports.split("-"))

    streams = {}
    st = pcaprtp.Stats()
    for p in pcaprtp.read(args.pcap, st):
        if not (lo <= p.sport <= hi) or p.pt not in (0, 8):
            continue
        streams.setdefault((p.sport, p.ssrc), []).append(p)

    deltas = []
    offsets = []
    bins_all, bins_late = {}, {}
    gaps = 0
    reorder = 0
    packets = 0
    ptime = args.ptime_ms / 1000.0
    for pkts in streams.values():
        packets += len(pkts)
        first = pkts[0]
        offs = []
        for prev, cur in zip(pkts, pkts[1:]):
            d = (cur.seq - prev.seq) & 0xFFFF
            if d == 1:
                deltas.append((cur.ts - prev.ts) * 1000.0)
            elif d == 0 or d > 0x8000:
                reorder += 1
            else:
                gaps += d - 1
        for p in pkts:
            n = ((p.rtp_ts - first.rtp_ts) & 0xFFFFFFFF) / (ptime * 8000)
            offs.append((p.ts - first.ts - n * ptime) * 1000.0)
        m = min(offs)
        offsets.extend(o - m for o in offs)
        for p, o in zip(pkts, offs):
            b = int(p.ts * 10)
            bins_all[b] = bins_all.get(b, 0) + 1
            if o - m > 8.0:
                bins_late[b] = bins_late.get(b, 0) + 1

    deltas.sort()
    offsets.sort()
    within = sum(1 for d in deltas if 18.0 <= d <= 22.0)
    pc = pcaprtp.percentile
    stall_bins = sorted(b for b in bins_all if bins_late.get(b, 0) > 0.05 * bins_all[b])
    res = {
        "bins_100ms": len(bins_all),
        "stall_bins_100ms": len(stall_bins),
        "pcap": args.pcap,
        "records": st.records,
        "streams": len(streams),
        "packets": packets,
        "deltas": len(deltas),
        "capture_gaps_packets": gaps,
        "reordered_or_duplicate": reorder,
        "capture_span_s": round(max((s[-1].ts for s in streams.values()), default=0)
                                - min((s[0].ts for s in streams.values()), default=0), 3),
        "delta_ms": {
            "min": round(deltas[0], 3) if deltas else None,
            "p50": round(pc(deltas, 50), 3),
            "p99": round(pc(deltas, 99), 3),
            "p99.9": round(pc(deltas, 99.9), 3),
            "max": round(deltas[-1], 3) if deltas else None,
            "p1": round(pc(deltas, 1), 3),
        },
        "fraction_18_22ms": round(within / len(deltas), 5) if deltas else None,
        "schedule_offset_ms": {
            "p50": round(pc(offsets, 50), 3),
            "p99": round(pc(offsets, 99), 3),
            "p99.9": round(pc(offsets, 99.9), 3),
            "max": round(offsets[-1], 3) if offsets else None,
        },
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"pcap {args.pcap}: {st.records} records, {len(streams)} outbound streams, "
          f"{packets} packets over {res['capture_span_s']} s, {gaps} packets missing from the capture")
    print(f"inter-packet delta (ms), {len(deltas)} consecutive pairs: "
          f"min {res['delta_ms']['min']}  p1 {res['delta_ms']['p1']}  p50 {res['delta_ms']['p50']}  "
          f"p99 {res['delta_ms']['p99']}  p99.9 {res['delta_ms']['p99.9']}  max {res['delta_ms']['max']}")
    print(f"within 18-22 ms: {within}/{len(deltas)} = {100.0 * within / max(1, len(deltas)):.3f} %")
    so = res["schedule_offset_ms"]
    print(f"offset from ideal 20 ms schedule (ms): p50 {so['p50']}  p99 {so['p99']}  "
          f"p99.9 {so['p99.9']}  max {so['max']}")
    print(f"100 ms bins where > 5 % of packets were > 8 ms behind schedule (stalls hitting all calls at once): "
          f"{len(stall_bins)} of {len(bins_all)}")


if __name__ == "__main__":
    main()
