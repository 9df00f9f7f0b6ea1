//! Media: everything between the RTP socket and the call logic, sans-IO.
//!
//! G.711 (ITU-T G.711, RFC 3551 payload types 0 and 8) encode/decode, RTP header
//! parsing and building (RFC 3550), DTMF in three forms — RFC 4733 telephone-events,
//! in-band tones (Goertzel detector meeting ITU-T Q.24 receiver limits) and SIP INFO
//! digits handed in by the SIP layer — merged into one digit stream, pre-encoded
//! prompts shared by every call, and [`session::MediaSession`], the per-call state
//! machine that paces outbound RTP by absolute deadlines. Nothing here owns a socket,
//! reads a clock or spawns a task: the runtime feeds datagrams and `Instant`s in and
//! drains transmits and events out. SDES-SRTP ([`srtp`]) is a per-call transform the
//! call applies around the session. It deliberately does not do RTCP, jitter
//! buffering, transcoding beyond G.711, or comfort noise generation (silence is sent
//! as encoded zero samples). The media layer never logs a digit value, only counts.

pub mod digits;
pub mod g711;
pub mod goertzel;
pub mod phase_lock;
pub mod prompts;
pub mod recording;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod telephone_event;
pub mod trust;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use digits::DigitMerger;
pub use goertzel::{InbandDetector, ToneGenerator};
pub use prompts::{Prompt, PromptCache, PromptError, PromptRecognizer};
pub use session::{MediaConfig, MediaEvent, MediaSession, MediaStats, PacingGrid};
pub use trust::{RtpSource, RtpTrust};

/// How a call's DTMF is taken: one source, or all of them merged (`auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// RFC 4733 telephone-events only.
    Rfc4733,
    /// In-band tones in the audio only.
    Inband,
    /// SIP INFO only.
    Info,
    /// All three, merged with no double count.
    #[default]
    Auto,
}

/// Where a digit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigitSource {
    Rfc4733,
    Inband,
    Info,
}

/// One item of a playback request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayItem {
    /// A prompt by name (`digit_7`, `welcome`, ...).
    Prompt(String),
    /// Silence, rounded up to whole packets so the next prompt starts on a packet boundary.
    Silence(Duration),
}

/// Errors of [`detect_digits`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("{file}: not a readable WAV file: {source}")]
    Wav {
        file: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("{file}: unsupported audio format: {reason}")]
    Format { file: PathBuf, reason: String },
    #[error(
        "{file}: unknown file type (expected .wav, or raw s16le 8 kHz mono as .raw/.sln/.pcm)"
    )]
    UnknownExtension { file: PathBuf },
}

/// Detect in-band DTMF digits in the bytes of an audio file: a WAV (8 kHz, 16-bit integer
/// PCM, mono or stereo) or raw signed 16-bit little-endian 8 kHz mono (`.raw`, `.sln`,
/// `.pcm`). `path` decides the format by its extension and names the file in errors; the
/// caller reads it (`sspr-ivr dtmf`).
///
/// Stereo files are analysed channel by channel (a recording usually has the caller on
/// one channel and the IVR on the other, and mixing would let one side mask the other);
/// the digits of both channels are merged in the order of their detection time, ties
/// going to the left channel.
pub fn detect_digits(path: &Path, bytes: &[u8]) -> Result<String, MediaError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let channels: Vec<Vec<i16>> = match ext.as_str() {
        "wav" => wav_channels(path, bytes)?,
        "raw" | "sln" | "pcm" => {
            if bytes.len() % 2 != 0 {
                return Err(MediaError::Format {
                    file: path.to_path_buf(),
                    reason: "odd number of bytes in a 16-bit raw file".into(),
                });
            }
            vec![bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()]
        }
        _ => {
            return Err(MediaError::UnknownExtension {
                file: path.to_path_buf(),
            })
        }
    };
    let mut found: Vec<(u64, usize, char)> = Vec::new();
    for (ch, pcm) in channels.iter().enumerate() {
        let mut detector = InbandDetector::new();
        for d in detector.push(pcm) {
            found.push((d.at_sample, ch, d.digit));
        }
    }
    found.sort_by_key(|&(at, ch, _)| (at, ch));
    Ok(found.into_iter().map(|(_, _, d)| d).collect())
}

fn wav_channels(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<i16>>, MediaError> {
    let wav_err = |source| MediaError::Wav {
        file: path.to_path_buf(),
        source,
    };
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(wav_err)?;
    let spec = reader.spec();
    if spec.sample_rate != crate::codec::SAMPLE_RATE {
        return Err(MediaError::Format {
            file: path.to_path_buf(),
            reason: format!("sample rate {} Hz, expected 8000 Hz", spec.sample_rate),
        });
    }
    if spec.channels == 0 || spec.channels > 2 {
        return Err(MediaError::Format {
            file: path.to_path_buf(),
            reason: format!("{} channels, expected mono or stereo", spec.channels),
        });
    }
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(MediaError::Format {
            file: path.to_path_buf(),
            reason: format!(
                "{} bit {:?} samples, expected 16-bit integer PCM",
                spec.bits_per_sample, spec.sample_format
            ),
        });
    }
    let n = usize::from(spec.channels);
    let mut channels = vec![Vec::with_capacity(reader.len() as usize / n); n];
    for (i, s) in reader.into_samples::<i16>().enumerate() {
        channels[i % n].push(s.map_err(wav_err)?);
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sspr-ivr dtmf` does: read the file, detect in its bytes.
    fn detect(path: &Path) -> Result<String, MediaError> {
        detect_digits(path, &std::fs::read(path).unwrap())
    }

    fn write_wav(path: &Path, rate: u32, channels: &[Vec<i16>]) {
        let spec = hound::WavSpec {
            channels: channels.len() as u16,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = channels.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..n {
            for ch in channels {
                w.write_sample(ch.get(i).copied().unwrap_or(0)).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn detect_file_mono_stereo_and_raw() {
        let g = ToneGenerator::new();
        let dir = tempfile::tempdir().unwrap();
        let mono = g.sequence("0123456789*#", 70, 70, -15.0);
        let p = dir.path().join("mono.wav");
        write_wav(&p, 8000, std::slice::from_ref(&mono));
        assert_eq!(detect(&p).unwrap(), "0123456789*#");

        // stereo: the caller's keys on the left, the right channel's interleaved in time
        let mut left = g.sequence("1", 80, 320, -10.0);
        left.extend(g.sequence("3", 80, 320, -10.0));
        let mut right = g.silence(200);
        right.extend(g.sequence("2", 80, 320, -10.0));
        right.extend(g.sequence("4", 80, 320, -10.0));
        let p = dir.path().join("stereo.WAV");
        write_wav(&p, 8000, &[left, right]);
        assert_eq!(detect(&p).unwrap(), "1234");

        for ext in ["raw", "sln", "pcm"] {
            let p = dir.path().join(format!("x.{ext}"));
            let bytes: Vec<u8> = mono.iter().flat_map(|s| s.to_le_bytes()).collect();
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(detect(&p).unwrap(), "0123456789*#", "{ext}");
        }
        // speech: nothing
        let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en/welcome.wav");
        assert_eq!(detect(&speech).unwrap(), "");
    }

    #[test]
    fn detect_file_on_tones_made_by_sox() {
        // An independent generator (see testdata/README): 70 ms tones, 80 ms pauses.
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/media/testdata/sox_dtmf_159_pound.wav");
        assert_eq!(detect(&p).unwrap(), "159#");
    }

    #[test]
    fn detect_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("wide.wav");
        write_wav(&wide, 16000, &[vec![0; 100]]);
        let odd = dir.path().join("odd.raw");
        std::fs::write(&odd, [1u8, 2, 3]).unwrap();
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not a wav").unwrap();
        std::fs::write(dir.path().join("song.mp3"), b"ID3").unwrap();
        let cases = [
            (wide, "8000 Hz"),
            (odd, "odd number"),
            (junk, "not a readable WAV"),
            (dir.path().join("song.mp3"), "unknown file type"),
        ];
        for (path, want) in cases {
            let err = detect(&path).unwrap_err().to_string();
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(err.contains(name) && err.contains(want), "{err}");
        }
    }

    #[test]
    fn dtmf_mode_deserialises_lowercase() {
        for (text, mode) in [
            ("rfc4733", DtmfMode::Rfc4733),
            ("inband", DtmfMode::Inband),
            ("info", DtmfMode::Info),
            ("auto", DtmfMode::Auto),
        ] {
            assert_eq!(serde_yaml::from_str::<DtmfMode>(text).unwrap(), mode);
        }
        assert!(serde_yaml::from_str::<DtmfMode>("Auto").is_err());
    }
}
