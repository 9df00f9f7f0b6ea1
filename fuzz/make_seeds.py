#!/usr/bin/env python3
"""Writes the structured seeds (fuzz/seeds/flow_run, fuzz/seeds/rtp) in the byte
format `arbitrary` 1.x decodes them from (what cargo-fuzz and tests/fuzz_smoke.rs
feed to `FlowRunInput` / `RtpInput`): enum variant = u32 LE scaled by
(x * variants) >> 32, bool = byte & 1, integers little-endian, a trailing Vec =
(1, element)* then a 0 byte. Re-run after changing the enums in
fuzz/src/drivers/flow.rs and rtp.rs (variant order matters).  Usage: python3 fuzz/make_seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def variant(idx, count):
    x = (idx * 2**32 + count - 1) // count
    assert (x * count) >> 32 == idx
    return struct.pack("<I", x)


# FlowOp, in declaration order.
FLOW_OPS = ["Digit", "PlayFinished", "PlayFinishedStale", "ActionResult",
            "ActionResultStale", "TransferResult", "Hangup", "AdvanceToDeadline",
            "Advance", "SpuriousTimeout"]
KEYS = "0123456789*#ABCD"


def op(name, *fields):
    out = variant(FLOW_OPS.index(name), len(FLOW_OPS))
    for f in fields:
        out += f
    return out


def digits(s):
    return [op("Digit", bytes([KEYS.index(c)])) for c in s]


def flow_input(echo, enumeration_safe, ops):
    out = bytes([int(echo), int(enumeration_safe)])
    for o in ops:
        out += b"\x01" + o
    return out + b"\x00"


P = op("PlayFinished")
OK = op("ActionResult", b"\x00", b"\x3f")
DL = op("AdvanceToDeadline")


def result(i, bits=0x3f):
    return op("ActionResult", bytes([i]), bytes([bits]))


def happy():
    ops = [P, P] + digits("123456#") + [OK, OK, P, P, P, P]
    ops += digits("918273") + [OK, P, P] + digits("246813#") + [P, P] + digits("246813#")
    ops += [OK, P, P, P, DL, DL]
    return ops


SEEDS = {
    "flow_run": {
        "happy_path": flow_input(False, False, happy()),
        "happy_path_enumeration_safe": flow_input(False, True, happy()),
        "silent_caller": flow_input(False, False, [DL] * 40),
        "hangup_in_secure": flow_input(False, False, happy()[:30] + [op("Hangup")]),
        "agent_escape": flow_input(False, False, [P] + digits("0") + [P, op("TransferResult", b"\x00"), P, P, DL]),
        "transfer_accepted": flow_input(False, False, [P] + digits("0") + [P, op("TransferResult", b"\x01")]),
        "backend_outcomes": flow_input(False, False, [P, P] + digits("123456#") + [result(2), P, P, op("TransferResult", b"\x00"), P, DL]),
        "bad_outcome": flow_input(False, False, [P, P] + digits("123456#") + [result(200), P, P, DL]),
        "wrong_codes": flow_input(False, False, [P, P] + digits("123456#") + [OK, OK, P, P, P] + (digits("111111") + [result(1), P, P]) * 4 + [DL] * 5),
        "slow_keys": flow_input(False, False, [P, op("Advance", struct.pack("<H", 2500))] + sum(([d, op("Advance", struct.pack("<H", 2900))] for d in digits("123456")), []) + [DL, OK]),
        "echo_digits": flow_input(True, False, [P] + digits("4711#") + [P, P, P, P, P, P]),
        "echo_no_input": flow_input(True, False, [DL] * 12),
    },
}

# RtpStep, in declaration order: Bytes, Event, Press.
RTP_STEPS = 3


def press(delay, key, dur_ms, dup_mask):
    return variant(2, RTP_STEPS) + struct.pack("<HBHI", delay, key, dur_ms, dup_mask)


def event(delay, ssrc, ts, ev, end, volume, duration, repeat):
    return variant(1, RTP_STEPS) + struct.pack("<HBBBBBHB", delay, ssrc, ts, ev, int(end), volume, duration, repeat)


def rtp_input(steps):
    out = b""
    for s in steps:
        out += b"\x01" + s
    return out + b"\x00"


SEEDS["rtp"] = {
    "one_press": rtp_input([press(0, 1, 160, 0)]),
    "presses_with_duplicates": rtp_input([press(0, 5, 100, 0xFFFFFFFF), press(30, 11, 400, 0x5), press(0, 5, 60, 0)]),
    "lost_end_packets": rtp_input([event(0, 0, 1, 3, False, 10, 160, 0), event(20, 0, 1, 3, False, 10, 320, 0), event(600, 0, 1, 3, False, 10, 480, 0), event(5000, 0, 1, 3, False, 10, 160, 0)]),
    "replayed_press": rtp_input([event(0, 1, 2, 7, False, 10, 160, 0), event(20, 1, 2, 7, True, 10, 320, 2), event(300, 1, 2, 7, False, 10, 160, 0), event(20, 1, 2, 7, True, 10, 320, 2)]),
    "long_event_wrap": rtp_input([event(0, 2, 0, 9, False, 10, 0xFF00, 0), event(20, 2, 0, 9, False, 10, 0x0100, 0), event(20, 2, 3, 9, False, 10, 0x0200, 0), event(20, 2, 3, 9, True, 10, 0x0300, 2)]),
    "interleaved": rtp_input([event(0, 0, 0, 1, False, 10, 160, 0), press(10, 2, 200, 0), event(10, 0, 0, 1, True, 10, 320, 3), event(0, 1, 0, 16, False, 10, 160, 0)]),
}

# DtmfInput: mode u8, audio Vec<u8> (not last: (1, byte)* 0, here empty), steps.
def dtmf_step(delay, key, source):
    return struct.pack("<HBB", delay, KEYS.index(key), source)


def dtmf_input(mode, steps, audio=b""):
    out = bytes([mode])
    for b in audio:
        out += bytes([1, b])
    out += b"\x00"
    for s in steps:
        out += b"\x01" + s
    return out + b"\x00"


SEEDS["dtmf_merge"] = {
    "rfc4733_only": dtmf_input(0, [dtmf_step(0, "1", 0), dtmf_step(100, "1", 0), dtmf_step(100, "#", 2)]),
    "inband_only": dtmf_input(1, [dtmf_step(0, "5", 1), dtmf_step(50, "5", 1), dtmf_step(300, "7", 0)]),
    "info_only": dtmf_input(2, [dtmf_step(0, "9", 2), dtmf_step(10, "9", 2)]),
    "auto_mixed": dtmf_input(3, [dtmf_step(0, "4", 1), dtmf_step(30, "4", 0), dtmf_step(200, "4", 2), dtmf_step(500, "8", 1), dtmf_step(150, "8", 1), dtmf_step(50, "2", 0)]),
    "auto_same_source": dtmf_input(3, [dtmf_step(0, "3", 1), dtmf_step(10, "3", 1), dtmf_step(10, "3", 1)]),
    # 40 ms of a PCMU tone-ish pattern for the in-band detector.
    "auto_with_audio": dtmf_input(3, [dtmf_step(0, "6", 1)], bytes((0x80 + (i * 37) % 64) & 0xFF for i in range(320))),
}


for target, seeds in SEEDS.items():
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
