//! Prompt audio: loaded once at start-up, pre-encoded for PCMU and PCMA, shared by
//! every call through an `Arc<PromptCache>`.
//!
//! [`PromptCache::from_wav_files`] decodes every `*.wav` of one language directory
//! (`prompts/<lang>/`, read by `crate::files::load_prompts`: this module touches no
//! file); the file stem is the prompt name. A file that is unreadable or
//! not 8 kHz mono 16-bit integer PCM (or has no samples) is an error naming the file —
//! never a silent skip. Prompts are used exactly as recorded (no trimming), so what
//! goes out on the wire is the cached encoding byte for byte.
//!
//! [`PromptRecognizer`] is the listening side used by the `dial` test caller: given
//! the RTP payloads a peer receives (any packet size), it names each prompt that
//! starts. It relies on the sender's guarantees: each prompt starts on a packet
//! boundary, is sent byte-identical to its cached encoding, and its final partial
//! packet is padded with the codec's silence byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{Codec, SAMPLE_RATE};
use crate::media::g711;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    #[error("{}: cannot read prompt directory: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read prompt: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no *.wav prompts in this directory", dir.display())]
    NoPrompts { dir: PathBuf },
    #[error("{}: cannot read prompt: {source}", file.display())]
    Wav {
        file: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("{}: wrong prompt format: {reason} (need 8 kHz mono 16-bit PCM)", file.display())]
    Format { file: PathBuf, reason: String },
    #[error("{}: prompt file name must be [A-Za-z0-9_-]+.wav", file.display())]
    Name { file: PathBuf },
}

/// One prompt: its PCM and its encodings.
#[derive(Debug)]
pub struct Prompt {
    name: String,
    pcm: Vec<i16>,
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
}

impl Prompt {
    /// Build from 8 kHz samples (encodes for both codecs).
    pub fn from_pcm(name: impl Into<String>, pcm: Vec<i16>) -> Self {
        Prompt {
            name: name.into(),
            pcmu: g711::encode(Codec::Pcmu, &pcm),
            pcma: g711::encode(Codec::Pcma, &pcm),
            pcm,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// The G.711 bytes sent for this prompt.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.pcm.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }
}

/// All prompts of one language, by name.
#[derive(Debug, Default)]
pub struct PromptCache {
    /// `Arc` so a call's playback holds the prompt it plays (no lookup by name
    /// per packet).
    prompts: BTreeMap<String, Arc<Prompt>>,
}

impl PromptCache {
    /// Decode the WAV files of one prompt directory, given as (path, bytes); `dir` names
    /// the directory in the error when there are none.
    pub fn from_wav_files(
        dir: &Path,
        files: impl IntoIterator<Item = (PathBuf, Vec<u8>)>,
    ) -> Result<Self, PromptError> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = files.into_iter().collect();
        if files.is_empty() {
            return Err(PromptError::NoPrompts {
                dir: dir.to_path_buf(),
            });
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut cache = PromptCache::default();
        for (file, bytes) in files {
            let prompt = Prompt::from_wav(&file, &bytes)?;
            cache.prompts.insert(prompt.name.clone(), Arc::new(prompt));
        }
        Ok(cache)
    }

    /// A cache from prompts built in memory (tests, tools).
    pub fn from_prompts(prompts: impl IntoIterator<Item = Prompt>) -> Self {
        PromptCache {
            prompts: prompts
                .into_iter()
                .map(|p| (p.name.clone(), Arc::new(p)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name).map(|p| &**p)
    }

    /// The prompt itself, to hold while it plays.
    pub fn shared(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    /// Prompt names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.prompts.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

impl Prompt {
    /// Decode one prompt from the bytes of its WAV file (8 kHz mono 16-bit PCM); `file`
    /// gives the prompt its name (the stem) and names it in errors.
    pub fn from_wav(file: &Path, bytes: &[u8]) -> Result<Prompt, PromptError> {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .ok_or_else(|| PromptError::Name {
                file: file.to_path_buf(),
            })?
            .to_string();
        let wav_err = |source| PromptError::Wav {
            file: file.to_path_buf(),
            source,
        };
        let format_err = |reason: String| PromptError::Format {
            file: file.to_path_buf(),
            reason,
        };
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE {
            return Err(format_err(format!("{} Hz", spec.sample_rate)));
        }
        if spec.channels != 1 {
            return Err(format_err(format!("{} channels", spec.channels)));
        }
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(format_err(format!(
                "{}-bit {:?} samples",
                spec.bits_per_sample, spec.sample_format
            )));
        }
        let pcm = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(wav_err)?;
        if pcm.is_empty() {
            return Err(format_err("no samples".into()));
        }
        Ok(Prompt::from_pcm(name, pcm))
    }
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    prompt: usize,
    /// Packet number where the candidate prompt started.
    start: u64,
    /// Bytes of the prompt matched so far.
    offset: usize,
    content_frames: u32,
    content_bytes: usize,
}

/// Names the prompts heard in a received RTP payload stream. See the module docs.
#[derive(Debug)]
pub struct PromptRecognizer {
    cache: Arc<PromptCache>,
    names: Vec<String>,
    codec: Codec,
    candidates: Vec<Candidate>,
    /// The recognised prompt still playing: (prompt, bytes matched). While it keeps
    /// matching no new prompt can start (music may repeat its own opening bars).
    current: Option<(usize, usize)>,
    packets: u64,
}

/// A candidate is confirmed after this much non-silent audio matched (or the whole
/// prompt), so a prompt is never named from leading silence alone.
const CONFIRM_FRAMES: u32 = 2;
const CONFIRM_BYTES: usize = 240;

impl PromptRecognizer {
    pub fn new(cache: Arc<PromptCache>, codec: Codec) -> Self {
        let names = cache.names().map(str::to_string).collect();
        PromptRecognizer {
            cache,
            names,
            codec,
            candidates: Vec::new(),
            current: None,
            packets: 0,
        }
    }

    fn encoded(&self, idx: usize) -> &[u8] {
        self.cache
            .get(&self.names[idx])
            .map(|p| p.encoded(self.codec))
            .unwrap_or_default()
    }

    /// Does `payload` continue prompt `idx` at byte `offset`?
    fn matches(&self, idx: usize, offset: usize, payload: &[u8]) -> bool {
        let enc = self.encoded(idx);
        if offset >= enc.len() {
            return false;
        }
        let expected = &enc[offset..enc.len().min(offset + payload.len())];
        let silence = self.codec.silence_byte();
        payload[..expected.len()] == *expected
            && payload[expected.len()..].iter().all(|&b| b == silence)
    }

    /// Feed the payload of the next received audio packet; returns the name of a
    /// prompt once it is recognised (once per playback, in start order).
    pub fn push(&mut self, payload: &[u8]) -> Option<String> {
        if payload.is_empty() {
            return None;
        }
        let packet = self.packets;
        self.packets += 1;
        let silence = self.codec.silence_byte();
        let content = payload.iter().filter(|&&b| b != silence).count();
        if let Some((idx, offset)) = self.current.take() {
            if self.matches(idx, offset, payload) {
                let offset = offset + payload.len();
                if offset < self.encoded(idx).len() {
                    self.current = Some((idx, offset));
                }
                return None;
            }
        }

        let mut alive = std::mem::take(&mut self.candidates);
        alive.retain(|c| self.matches(c.prompt, c.offset, payload));
        for idx in 0..self.names.len() {
            if self.matches(idx, 0, payload) {
                alive.push(Candidate {
                    prompt: idx,
                    start: packet,
                    offset: 0,
                    content_frames: 0,
                    content_bytes: 0,
                });
            }
        }
        for c in &mut alive {
            c.offset += payload.len();
            if content > 0 {
                c.content_frames += 1;
                c.content_bytes += content;
            }
        }
        let confirmed = alive
            .iter()
            .find(|c| c.offset >= self.encoded(c.prompt).len())
            .or_else(|| {
                alive.iter().find(|c| {
                    c.content_frames >= CONFIRM_FRAMES
                        && c.content_bytes >= CONFIRM_BYTES
                        && !alive
                            .iter()
                            .any(|o| o.start == c.start && o.prompt != c.prompt)
                })
            })
            .copied();
        match confirmed {
            Some(c) => {
                self.candidates.clear();
                if c.offset < self.encoded(c.prompt).len() {
                    self.current = Some((c.prompt, c.offset));
                }
                Some(self.names[c.prompt].clone())
            }
            None => {
                self.candidates = alive;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en")
    }

    #[test]
    fn shipped_prompts_load_and_are_complete() {
        let cache = crate::files::load_prompts(&prompts_dir()).unwrap();
        let mut required: Vec<String> = (0..10).map(|d| format!("digit_{d}")).collect();
        required.extend(
            [
                "star",
                "pound",
                "echo_intro",
                "you_entered",
                "no_input",
                "invalid_entry",
                "goodbye",
                "welcome",
                "enter_employee_id",
                "please_wait",
                "code_sent_to_number",
                "code_sent_to_email",
                "code_sent_if_registered",
                "hold_music",
                "received_code_menu",
                "code_resent",
                "resend_limit",
                "enter_code",
                "code_incorrect",
                "code_expired",
                "too_many_attempts",
                "enter_new_pin",
                "confirm_new_pin",
                "pin_mismatch",
                "pin_too_simple",
                "pin_reused",
                "pin_reset_success",
                "account_locked",
                "transfer_agent",
                "backend_trouble",
                "reset_unavailable",
                "helpdesk_number",
                "unknown_id",
                "rate_limited",
                "invalid_employee_id",
                "thank_you",
                "line_not_secure",
            ]
            .map(String::from),
        );
        for name in &required {
            let p = cache
                .get(name)
                .unwrap_or_else(|| panic!("missing prompt {name}"));
            assert!(
                p.duration() >= Duration::from_millis(250),
                "{name} too short"
            );
            assert_eq!(p.encoded(Codec::Pcmu).len(), p.pcm().len());
            assert_eq!(p.encoded(Codec::Pcma), g711::encode(Codec::Pcma, p.pcm()));
        }
        assert_eq!(cache.len(), required.len());
        let music = cache.get("hold_music").unwrap().duration();
        assert!(music >= Duration::from_secs(9) && music <= Duration::from_secs(11));
    }

    #[test]
    fn tsv_lists_every_spoken_prompt() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let tsv = std::fs::read_to_string(root.join("prompts.tsv")).unwrap();
        let cache = crate::files::load_prompts(&root.join("en")).unwrap();
        let mut listed: Vec<&str> = tsv
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        listed.push("hold_music");
        listed.sort_unstable();
        assert_eq!(listed, cache.names().collect::<Vec<_>>());
    }

    fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, n: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..n * usize::from(channels) {
            if bits == 16 {
                w.write_sample((i % 100) as i16).unwrap();
            } else {
                w.write_sample((i % 100) as i8).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn bad_prompts_are_errors_naming_the_file() {
        type Make = Box<dyn Fn(&Path)>;
        let cases: [(&str, Make, &str); 6] = [
            (
                "rate.wav",
                Box::new(|p| write_wav(p, 16000, 1, 16, 800)),
                "16000 Hz",
            ),
            (
                "stereo.wav",
                Box::new(|p| write_wav(p, 8000, 2, 16, 800)),
                "2 channels",
            ),
            (
                "eight.wav",
                Box::new(|p| write_wav(p, 8000, 1, 8, 800)),
                "8-bit",
            ),
            (
                "empty.wav",
                Box::new(|p| write_wav(p, 8000, 1, 16, 0)),
                "no samples",
            ),
            (
                "junk.wav",
                Box::new(|p| std::fs::write(p, b"RIFF....nonsense").unwrap()),
                "cannot read",
            ),
            (
                "bad name.wav",
                Box::new(|p| write_wav(p, 8000, 1, 16, 800)),
                "file name",
            ),
        ];
        for (file, make, reason) in cases {
            let dir = tempfile::tempdir().unwrap();
            write_wav(&dir.path().join("ok.wav"), 8000, 1, 16, 800);
            std::fs::write(dir.path().join("README.txt"), "ignored").unwrap();
            make(&dir.path().join(file));
            let err = crate::files::load_prompts(dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(file), "{err}");
            assert!(err.contains(reason), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            crate::files::load_prompts(dir.path()),
            Err(PromptError::NoPrompts { .. })
        ));
        assert!(matches!(
            crate::files::load_prompts(&dir.path().join("missing")),
            Err(PromptError::Dir { .. })
        ));
        write_wav(&dir.path().join("ok.wav"), 8000, 1, 16, 800);
        let cache = crate::files::load_prompts(dir.path()).unwrap();
        assert_eq!(cache.names().collect::<Vec<_>>(), ["ok"]);
    }

    /// Packetise prompts the way the session does: whole packets, last one padded.
    fn packetise(
        cache: &PromptCache,
        codec: Codec,
        names: &[&str],
        ptime_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let silence = vec![codec.silence_byte(); ptime_bytes];
        let mut out = vec![silence.clone(), silence.clone()];
        for name in names {
            for chunk in cache.get(name).unwrap().encoded(codec).chunks(ptime_bytes) {
                let mut p = chunk.to_vec();
                p.resize(ptime_bytes, codec.silence_byte());
                out.push(p);
            }
            out.push(silence.clone());
        }
        out
    }

    #[test]
    fn recognizer_names_every_prompt_at_any_ptime() {
        let cache = Arc::new(crate::files::load_prompts(&prompts_dir()).unwrap());
        let names: Vec<&str> = cache.names().collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for ptime_bytes in [80, 160, 240, 480] {
                let mut rec = PromptRecognizer::new(cache.clone(), codec);
                let mut heard = Vec::new();
                for p in packetise(&cache, codec, &names, ptime_bytes) {
                    heard.extend(rec.push(&p));
                }
                assert_eq!(heard, names, "{codec:?} {ptime_bytes}");
            }
        }
    }

    #[test]
    fn recognizer_back_to_back_and_interrupted() {
        let cache = Arc::new(crate::files::load_prompts(&prompts_dir()).unwrap());
        let codec = Codec::Pcmu;
        let seq = [
            "you_entered",
            "digit_1",
            "digit_1",
            "digit_0",
            "pound",
            "goodbye",
        ];
        let mut packets = Vec::new();
        for name in seq {
            for chunk in cache.get(name).unwrap().encoded(codec).chunks(160) {
                let mut p = chunk.to_vec();
                p.resize(160, codec.silence_byte());
                packets.push(p);
            }
        }
        // an interrupted prompt: its first 3 packets, then silence
        let welcome = cache.get("welcome").unwrap().encoded(codec);
        for chunk in welcome.chunks(160).take(40) {
            packets.push(chunk.to_vec());
        }
        packets.push(vec![codec.silence_byte(); 160]);
        let mut rec = PromptRecognizer::new(cache, codec);
        let heard: Vec<String> = packets.iter().filter_map(|p| rec.push(p)).collect();
        let mut want: Vec<&str> = seq.to_vec();
        want.push("welcome");
        assert_eq!(heard, want);
        // garbage and silence are never a prompt
        assert_eq!(rec.push(&[0x12; 160]), None);
        assert_eq!(rec.push(&[0xff; 160]), None);
        assert_eq!(rec.push(&[]), None);
    }
}
