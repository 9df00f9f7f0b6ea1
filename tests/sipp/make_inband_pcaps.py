#!/usr/bin/env python3
"""Make in-band DTMF pcaps for sipp's play_pcap_audio: one file per key,
RTP PCMU (payload type 0), 20 ms packets, 100 ms of the key's two tones at
-10 dBm0 each followed by 100 ms of silence (`inband_<key>.pcap`); and a
long press of the keys in LONG, 1200 ms of tone then 100 ms of silence
(`inband_long_<key>.pcap`: a PIN's last key held down while the backend
already answers). The files are committed; run this only to change them. No
dependencies beyond the standard library.
"""
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770,
        "B": 770, "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941,
        "#": 941, "D": 941}
COLS = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336,
        "8": 1336, "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477,
        "A": 1633, "B": 1633, "C": 1633, "D": 1633}
NAMES = {"#": "pound", "*": "star"}


def ulaw(sample):
    """G.711 mu-law encode one 16-bit sample."""
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, CLIP) + BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data)//2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def packet(payload):
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", 10000, 20000, udp_len, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\0" * 12 + b"\x08\x00"
    return eth + ip + udp


LONG = "2"


def make(key, tone_ms=100, prefix="inband"):
    # 0 dBm0 is 3.14 dB below a full-scale mu-law sine: amplitude 32124/1.434
    amp = 32124 / math.sqrt(2) * 10 ** ((-10 - 3.14) / 20) * math.sqrt(2)
    n_tone, n_total = tone_ms * 8, (tone_ms + 100) * 8  # then 100 ms of silence
    pcm = []
    for n in range(n_total):
        if n < n_tone:
            v = amp * (math.sin(2 * math.pi * ROWS[key] * n / 8000)
                       + math.sin(2 * math.pi * COLS[key] * n / 8000))
        else:
            v = 0.0
        pcm.append(int(max(-32768, min(32767, round(v)))))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    ssrc = 0x5EED0000 | ord(key)
    for i in range(n_total // 160):
        payload = bytes(ulaw(s) for s in pcm[i * 160:(i + 1) * 160])
        rtp = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, 1000 + i, 160 * i, ssrc)
        frame = packet(rtp + payload)
        usec = i * 20000
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    name = NAMES.get(key, key)
    with open(os.path.join(HERE, "pcap", f"{prefix}_{name}.pcap"), "wb") as f:
        f.write(b"".join(out))


for k in "0123456789*#":
    make(k)
for k in LONG:
    make(k, tone_ms=1200, prefix="inband_long")
print("made")
