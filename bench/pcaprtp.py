"""Minimal pcap reader for RTP over IPv4/UDP (standard library only).

Reads classic libpcap files (micro- or nanosecond timestamps, either byte
order; write them with `dumpcap -F pcap` / `tshark -F pcap`) with link types
Ethernet (1; what Linux `lo` captures as), raw IPv4 (101/228), Linux cooked
SLL (113) and SLL2 (276). Yields one `Packet` per IPv4/UDP datagram whose
payload parses as an RTP version-2 header; everything else is skipped and
counted. The captured length may be short (a snaplen of 64 is enough): only
the 12-byte RTP header is needed, plus the payload where a caller asks for it.
"""
import struct
from collections import namedtuple

Packet = namedtuple(
    "Packet",
    "ts src sport dst dport pt marker seq rtp_ts ssrc payload",
)

_LINK_OFFSETS = {1: 14, 101: 0, 228: 0, 113: 16, 276: 20}


class Stats:
    def __init__(self):
        self.records = 0
        self.rtp = 0
        self.skipped = 0
        self.truncated = 0


def _ip(b):
    return "%d.%d.%d.%d" % tuple(b)


def read(path, stats=None):
    """Iterate the RTP packets of a pcap file in capture order."""
    stats = stats if stats is not None else Stats()
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            raise ValueError(f"{path}: not a pcap file (too short)")
        magic = gh[:4]
        if magic == b"\xd4\xc3\xb2\xa1":
            endian, scale = "<", 1e-6
        elif magic == b"\xa1\xb2\xc3\xd4":
            endian, scale = ">", 1e-6
        elif magic == b"\x4d\x3c\xb2\xa1":
            endian, scale = "<", 1e-9
        elif magic == b"\xa1\xb2\x3c\x4d":
            endian, scale = ">", 1e-9
        elif magic == b"\x0a\x0d\x0d\x0a":
            raise ValueError(f"{path}: pcapng; capture with `-F pcap`")
        else:
            raise ValueError(f"{path}: not a pcap file (magic {magic.hex()})")
        linktype = struct.unpack(endian + "I", gh[20:24])[0] & 0x0FFFFFFF
        if linktype not in _LINK_OFFSETS:
            raise ValueError(f"{path}: unsupported link type {linktype}")
        l2 = _LINK_OFFSETS[linktype]
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _orig = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                stats.truncated += 1
                return
            stats.records += 1
            p = _parse(data, l2, linktype, sec + frac * scale)
            if p is None:
                stats.skipped += 1
                continue
            stats.rtp += 1
            yield p


def _parse(data, l2, linktype, ts):
    if linktype == 1:
        if len(data) < 14 or data[12:14] != b"\x08\x00":
            return None
    elif linktype == 113:
        if len(data) < 16 or data[14:16] != b"\x08\x00":
            return None
    elif linktype == 276:
        if len(data) < 20 or data[0:2] != b"\x08\x00":
            return None
    ip = data[l2:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    if struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
        return None  # a fragment
    ihl = (ip[0] & 0x0F) * 4
    udp = ip[ihl:]
    if len(udp) < 8 + 12:
        return None
    sport, dport = struct.unpack("!HH", udp[0:4])
    rtp = udp[8:]
    if rtp[0] >> 6 != 2:
        return None
    cc = rtp[0] & 0x0F
    seq, rtp_ts, ssrc = struct.unpack("!HII", rtp[2:12])
    return Packet(
        ts=ts,
        src=_ip(ip[12:16]),
        sport=sport,
        dst=_ip(ip[16:20]),
        dport=dport,
        pt=rtp[1] & 0x7F,
        marker=bool(rtp[1] & 0x80),
        seq=seq,
        rtp_ts=rtp_ts,
        ssrc=ssrc,
        payload=rtp[12 + 4 * cc:],
    )


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[k]
