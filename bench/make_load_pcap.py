#!/usr/bin/env python3
"""Make the caller's side of a load call for sipp's play_pcap_audio: one RTP
stream (PCMU, payload type 0, 20 ms packets, one SSRC) that lasts the whole
call and carries the key presses as RFC 4733 events in the same stream, the way
a phone sends them: the caller talks (speech, looped) from the first packet, and
while a key is down its event packets replace the audio packets.

    bench/make_load_pcap.py OUT.pcap [--keys 100100#] [--first-key-ms 8000]
        [--key-gap-ms 400] [--seconds 30] [--wav SPEECH.wav] [--pt 101]

sipp plays a pcap with one thread per call and stops it when a new
play_pcap_audio starts or the call ends, so audio and keys must be one file
(a key pcap played on its own would silence the audio). Timing follows the
pcap's timestamps: key k goes down at first_key_ms + k * key_gap_ms after the
play starts (the scenario starts it right after its ACK), is held 100 ms (five
event updates, the first with the marker bit), then the end packet is sent
three times 20 ms apart (RFC 4733 §2.5.1.4). Audio resumes after the last end
packet. The stream runs for --seconds in all; the IVR ends the call earlier
(BYE), and sipp stops the thread then.

Speech: --wav (8 kHz mono 16-bit; else espeak-ng | sox make one, so both must
be installed) is encoded to mu-law and looped. No other dependencies.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import wave

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
SPEECH = ("Hello, I am calling about my password. I would like to reset it please. "
          "My employee number is on my badge, give me a second to find it.")


def ulaw(sample):
    """G.711 mu-law encode one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent, mask = 7, 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    return ~(sign | (exponent << 4) | ((sample >> (exponent + 3)) & 0x0F)) & 0xFF


def ip_udp(payload):
    """Ethernet + IPv4 + UDP around payload (sipp replaces addresses and ports)."""
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    s = sum(struct.unpack("!10H", ip))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", 10000, 20000, udp_len, 0) + payload


def speech_pcm(wav_path):
    if wav_path is None:
        tmp = tempfile.mkdtemp()
        raw, wav_path = os.path.join(tmp, "espeak.wav"), os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-w", raw, SPEECH], check=True)
        subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-b", "16", wav_path], check=True)
    with wave.open(wav_path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
            sys.exit(f"{wav_path}: need 8 kHz mono 16-bit PCM")
        data = w.readframes(w.getnframes())
    pcm = struct.unpack(f"<{len(data) // 2}h", data)
    if len(pcm) < 160:
        sys.exit(f"{wav_path}: shorter than one packet")
    return bytes(ulaw(s) for s in pcm)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--keys", default="100100#")
    ap.add_argument("--first-key-ms", type=int, default=8000)
    ap.add_argument("--key-gap-ms", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--wav")
    ap.add_argument("--pt", type=int, default=101)
    a = ap.parse_args()
    if any(k not in EVENTS for k in a.keys):
        sys.exit(f"--keys {a.keys!r}: only 0-9 * # A-D")
    if a.key_gap_ms < 180 or a.first_key_ms % 20 or a.key_gap_ms % 20:
        sys.exit("--first-key-ms and --key-gap-ms must be multiples of 20, the gap >= 180")
    speech = speech_pcm(a.wav)
    # Packet slot i (every 20 ms) -> ('audio',) or ('event', key, update index k).
    # A press: 5 updates (0..80 ms), then the end packet 3 times (100..140 ms).
    slots = int(a.seconds * 50)
    plan = {}
    for n, key in enumerate(a.keys):
        first = (a.first_key_ms + n * a.key_gap_ms) // 20
        for k in range(8):
            plan[first + k] = (key, k, first)
    ssrc, seq, ts = 0x10ADCA11, 1000, 0
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    pos = 0
    for i in range(slots):
        if i in plan:
            key, k, first = plan[i]
            end = k >= 5
            duration = min(k + 1, 5) * 160
            payload = struct.pack("!BBH", EVENTS[key], (0x80 if end else 0) | 10, duration)
            # All packets of a press carry the timestamp of its first packet.
            rtp = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | a.pt, seq,
                              (ts - (i - first) * 160) & 0xFFFFFFFF, ssrc) + payload
        else:
            frame = bytes(speech[(pos + j) % len(speech)] for j in range(160))
            pos = (pos + 160) % len(speech)
            rtp = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, seq, ts, ssrc) + frame
        seq = (seq + 1) & 0xFFFF
        ts = (ts + 160) & 0xFFFFFFFF
        pkt = ip_udp(rtp)
        usec = i * 20000
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
    with open(a.out, "wb") as f:
        f.write(b"".join(out))
    print(f"{a.out}: {slots} packets, {a.seconds:g} s, keys {len(a.keys)} from {a.first_key_ms} ms")


if __name__ == "__main__":
    main()
