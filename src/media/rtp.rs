//! RTP fixed header read and build (RFC 3550 §5.1) on top of `rtp-rs`.
//!
//! Parsing validates version 2, the CSRC list, the header extension and padding, and
//! refuses RTCP that arrives on the RTP port (RFC 5761 §4: payload types 72–76 with
//! the marker bit are RTCP SR/RR/SDES/BYE/APP). It never panics on any input. It does
//! not interpret header extensions or CSRCs.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError};

/// The RTP fixed header fields this IVR uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A parsed packet borrowing its payload from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("packet of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("unsupported RTP version {0}")]
    Version(u8),
    #[error("RTP header runs past the end of the packet")]
    Truncated,
    #[error("invalid RTP padding length {0}")]
    Padding(u8),
    #[error("RTCP packet type {0} on the RTP port")]
    Rtcp(u8),
    #[error("payload type {0} does not fit in 7 bits")]
    PayloadType(u8),
}

/// Parse and validate an RTP packet.
pub fn parse(data: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if data.len() >= 2 && (200..=204).contains(&data[1]) && data[0] >> 6 == 2 {
        return Err(RtpError::Rtcp(data[1]));
    }
    let reader = RtpReader::new(data).map_err(|e| match e {
        RtpReaderError::BufferTooShort(n) => RtpError::TooShort(n),
        RtpReaderError::UnsupportedVersion(v) => RtpError::Version(v),
        RtpReaderError::HeadersTruncated { .. } => RtpError::Truncated,
        RtpReaderError::PaddingLengthInvalid(p) => RtpError::Padding(p),
    })?;
    Ok(RtpPacket {
        header: RtpHeader {
            payload_type: reader.payload_type(),
            marker: reader.mark(),
            sequence: reader.sequence_number().into(),
            timestamp: reader.timestamp(),
            ssrc: reader.ssrc(),
        },
        payload: reader.payload(),
    })
}

/// Build a packet with no CSRCs, extension or padding.
pub fn build(header: &RtpHeader, payload: &[u8]) -> Result<Vec<u8>, RtpError> {
    let mut out = Vec::with_capacity(12 + payload.len());
    append(header, payload, &mut out)?;
    Ok(out)
}

/// A payload type fits the header's 7 bits.
pub fn check_payload_type(pt: u8) -> Result<(), RtpError> {
    if pt > 127 {
        return Err(RtpError::PayloadType(pt));
    }
    Ok(())
}

/// [`build`] onto the end of `out`, which the caller reuses: no allocation once
/// `out` has grown to its working size (the media hot path).
pub fn append(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RtpError> {
    check_payload_type(header.payload_type)?;
    let start = out.len();
    out.resize(start + 12 + payload.len(), 0);
    let n = RtpPacketBuilder::new()
        .payload_type(header.payload_type)
        .marked(header.marker)
        .sequence(header.sequence.into())
        .timestamp(header.timestamp)
        .ssrc(header.ssrc)
        .payload(payload)
        .build_into(&mut out[start..]);
    match n {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(RtpError::PayloadType(header.payload_type))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            payload_type: 101,
            marker: true,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
        }
    }

    #[test]
    fn build_then_parse_round_trips() {
        for (pt, marker, payload) in [
            (0u8, false, &b""[..]),
            (8, true, &[0xd5u8; 160][..]),
            (101, true, &[1, 0x8a, 0, 0xa0][..]),
        ] {
            let h = RtpHeader {
                payload_type: pt,
                marker,
                ..header()
            };
            let bytes = build(&h, payload).unwrap();
            assert_eq!(bytes.len(), 12 + payload.len());
            let p = parse(&bytes).unwrap();
            assert_eq!(p.header, h);
            assert_eq!(p.payload, payload);
        }
    }

    #[test]
    fn append_writes_after_what_is_there() {
        let mut out = vec![7u8, 7];
        append(&header(), &[1, 2, 3], &mut out).unwrap();
        assert_eq!(&out[..2], &[7, 7]);
        assert_eq!(&out[2..], &build(&header(), &[1, 2, 3]).unwrap()[..]);
        let bad = RtpHeader {
            payload_type: 200,
            ..header()
        };
        assert_eq!(
            append(&bad, &[1], &mut out),
            Err(RtpError::PayloadType(200))
        );
        assert_eq!(out.len(), 2 + 15);
    }

    #[test]
    fn wire_layout_matches_rfc3550() {
        let bytes = build(&header(), &[9]).unwrap();
        assert_eq!(
            &bytes[..12],
            &[0x80, 0xe5, 0xff, 0xfe, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        let good = build(&header(), &[1, 2, 3, 4]).unwrap();
        let mut v1 = good.clone();
        v1[0] = 0x40;
        let mut csrc = good.clone();
        csrc[0] |= 0x0f; // 15 CSRCs announced, none present
        let mut ext = good.clone();
        ext[0] |= 0x10; // extension announced, header runs into payload
        ext.extend_from_slice(&[0, 0, 0, 9]);
        let mut pad0 = good.clone();
        pad0[0] |= 0x20;
        let last = pad0.len() - 1;
        pad0[last] = 0;
        let mut pad_big = good.clone();
        pad_big[0] |= 0x20;
        pad_big[last] = 200;
        let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
        let cases: [(&[u8], RtpError); 8] = [
            (&[], RtpError::TooShort(0)),
            (&good[..11], RtpError::TooShort(11)),
            (&v1, RtpError::Version(1)),
            (&csrc, RtpError::Truncated),
            (&ext, RtpError::Truncated),
            (&pad0, RtpError::Padding(0)),
            (&pad_big, RtpError::Padding(200)),
            (&rtcp, RtpError::Rtcp(200)),
        ];
        for (data, want) in cases {
            assert_eq!(parse(data), Err(want));
        }
    }

    #[test]
    fn padding_is_stripped() {
        let mut p = build(&header(), &[1, 2, 3, 4]).unwrap();
        p[0] |= 0x20;
        p.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(parse(&p).unwrap().payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 12345;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&data);
            let mut v2 = data.clone();
            if let Some(b) = v2.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let _ = parse(&v2);
        }
    }
}
