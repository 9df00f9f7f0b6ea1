//! G.711 μ-law and A-law sample conversion (ITU-T G.711; RFC 3551 PCMU/PCMA).
//!
//! Encoding uses `audio-codec-algorithms`; decoding goes through 256-entry tables
//! built once from the same crate. Samples are signed 16-bit linear PCM. This module
//! does no resampling and no packet loss concealment.

use std::sync::LazyLock;

use crate::codec::Codec;

static ULAW_DECODE: LazyLock<[i16; 256]> = LazyLock::new(|| {
    let mut t = [0i16; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = audio_codec_algorithms::decode_ulaw(i as u8);
    }
    t
});

static ALAW_DECODE: LazyLock<[i16; 256]> = LazyLock::new(|| {
    let mut t = [0i16; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = audio_codec_algorithms::decode_alaw(i as u8);
    }
    t
});

/// Encode one sample.
pub fn encode_sample(codec: Codec, sample: i16) -> u8 {
    match codec {
        Codec::Pcmu => audio_codec_algorithms::encode_ulaw(sample),
        Codec::Pcma => audio_codec_algorithms::encode_alaw(sample),
    }
}

/// Decode one sample.
pub fn decode_sample(codec: Codec, byte: u8) -> i16 {
    match codec {
        Codec::Pcmu => ULAW_DECODE[usize::from(byte)],
        Codec::Pcma => ALAW_DECODE[usize::from(byte)],
    }
}

/// Encode linear PCM.
pub fn encode(codec: Codec, pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| encode_sample(codec, s)).collect()
}

/// Decode G.711 bytes into linear PCM.
pub fn decode(codec: Codec, bytes: &[u8]) -> Vec<i16> {
    let mut out = vec![0; bytes.len()];
    decode_to(codec, bytes, &mut out);
    out
}

/// Decode G.711 `bytes` into the start of `out`, one sample per byte (as many as
/// `out` holds): no allocation, so a caller can decode into the stack.
pub fn decode_to(codec: Codec, bytes: &[u8], out: &mut [i16]) {
    let table: &[i16; 256] = match codec {
        Codec::Pcmu => &ULAW_DECODE,
        Codec::Pcma => &ALAW_DECODE,
    };
    for (o, &b) in out.iter_mut().zip(bytes) {
        *o = table[usize::from(b)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_encodes_to_the_codec_silence_byte() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(encode_sample(codec, 0), codec.silence_byte(), "{codec:?}");
            assert!(decode_sample(codec, codec.silence_byte()).abs() <= 8);
        }
    }

    #[test]
    fn round_trip_error_is_within_the_segment_step() {
        // G.711 is logarithmic: the quantisation step grows with amplitude, but the
        // relative error stays below ~1/16 above the first segments.
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for s in (-32000i32..=32000).step_by(37) {
                let s = s as i16;
                let back = decode_sample(codec, encode_sample(codec, s));
                let err = (i32::from(back) - i32::from(s)).abs();
                let bound = (i32::from(s).abs() / 16).max(64);
                assert!(err <= bound, "{codec:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn decode_of_encode_is_stable() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for b in 0..=255u8 {
                let s = decode_sample(codec, b);
                assert_eq!(
                    decode_sample(codec, encode_sample(codec, s)),
                    s,
                    "{codec:?} {b:#x}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        // Maximum positive code points of both laws.
        assert_eq!(decode_sample(Codec::Pcmu, 0x80), 32124);
        assert_eq!(decode_sample(Codec::Pcma, 0xAA), 32256);
        assert_eq!(decode(Codec::Pcmu, &[0xFF, 0x7F]), vec![0, 0]);
    }
}
