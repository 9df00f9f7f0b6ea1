//! Per-call recording: a WAV file (stereo caller/IVR, or a mono mix), a
//! sidecar JSON (call id, ANI, start, suppression intervals) and the
//! interaction timeline as JSON lines.
//!
//! Frames arrive from the call task every packet time; the files are written
//! by a thread of the recording's own so that disk latency never reaches the
//! RTP clock. Inside a secure segment the media layer hands us silence and
//! `suppressed = true`; we write the silence (the recording keeps its
//! timeline) and note where suppression began and ended.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::error;

use crate::config::{RecordingConfig, RecordingMode};
use crate::flow::TimelineEvent;

enum Msg {
    Frame {
        caller: Vec<i16>,
        ivr: Vec<i16>,
        suppressed: bool,
    },
    Timeline(String),
    Finish,
}

#[derive(Serialize)]
struct Interval {
    start_ms: u64,
    end_ms: Option<u64>,
}

#[derive(Serialize)]
struct Sidecar<'a> {
    call_id: &'a str,
    ani: &'a str,
    start: String,
    end: String,
    mode: &'static str,
    sample_rate: u32,
    wav: String,
    timeline: Option<String>,
    duration_ms: u64,
    suppressed: Vec<Interval>,
}

pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Keep file names to a safe charset: Call-IDs come from the network.
fn safe_name(call_id: &str) -> String {
    let s: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("call_{s}")
    } else {
        s
    }
}

/// Claim `<dir>/<stem>.wav` (then `<stem>-1.wav`, `<stem>-2.wav`, …) with
/// `create_new`, so two Call-IDs that sanitise alike (or a retried Call-ID)
/// never overwrite each other's recording. Returns the stem taken and the file.
fn claim(dir: &Path, stem: &str) -> std::io::Result<(String, File)> {
    for n in 0..10_000u32 {
        let name = if n == 0 {
            stem.to_string()
        } else {
            format!("{stem}-{n}")
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(format!("{name}.wav")))
        {
            Ok(f) => return Ok((name, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free recording name for {stem}"
    )))
}

impl Recorder {
    pub fn create(cfg: &RecordingConfig, call_id: &str, ani: &str) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(&cfg.dir)?;
        // Names are built by appending, never `with_extension` (a Call-ID
        // like `abc@10.0.0.1` would lose its last dotted part).
        let (stem, wav_file) = claim(&cfg.dir, &safe_name(call_id))?;
        let path_of = |ext: &str| cfg.dir.join(format!("{stem}.{ext}"));
        let wav_path = path_of("wav");
        let channels = match cfg.mode {
            RecordingMode::Stereo => 2,
            RecordingMode::Mono => 1,
        };
        let spec = hound::WavSpec {
            channels,
            sample_rate: crate::codec::SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav =
            hound::WavWriter::new(BufWriter::new(wav_file), spec).map_err(std::io::Error::other)?;
        let timeline_path = cfg.timeline.then(|| path_of("timeline.jsonl"));
        let timeline = match &timeline_path {
            Some(p) => Some(BufWriter::new(File::create(p)?)),
            None => None,
        };
        let (tx, rx) = mpsc::channel();
        let call_id = call_id.to_string();
        let ani = ani.to_string();
        let mode = cfg.mode;
        let sidecar_path = path_of("json");
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                write_loop(
                    rx,
                    wav,
                    timeline,
                    mode,
                    &sidecar_path,
                    &wav_path,
                    timeline_path.as_deref(),
                    &call_id,
                    &ani,
                )
            })?;
        Ok(Recorder {
            tx,
            thread: Some(thread),
        })
    }

    pub fn frame(&mut self, caller: Vec<i16>, ivr: Vec<i16>, suppressed: bool) {
        let _ = self.tx.send(Msg::Frame {
            caller,
            ivr,
            suppressed,
        });
    }

    pub fn timeline(&mut self, ev: &TimelineEvent) {
        let mut line = serde_json::to_value(ev).unwrap_or_default();
        line["time"] = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default()
            .into();
        let _ = self.tx.send(Msg::Timeline(line.to_string()));
    }

    /// Close the files (the thread finishes them) without blocking the caller.
    pub fn finish(mut self) {
        let _ = self.tx.send(Msg::Finish);
        self.thread.take();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Finish);
    }
}

#[allow(clippy::too_many_arguments)]
fn write_loop(
    rx: mpsc::Receiver<Msg>,
    mut wav: hound::WavWriter<BufWriter<File>>,
    mut timeline: Option<BufWriter<File>>,
    mode: RecordingMode,
    sidecar_path: &Path,
    wav_path: &Path,
    timeline_path: Option<&Path>,
    call_id: &str,
    ani: &str,
) {
    let start = OffsetDateTime::now_utc();
    let mut samples: u64 = 0;
    let mut intervals: Vec<Interval> = Vec::new();
    let mut in_suppression = false;
    let ms = |samples: u64| samples / 8;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Frame {
                caller,
                ivr,
                suppressed,
            } => {
                if suppressed != in_suppression {
                    if suppressed {
                        intervals.push(Interval {
                            start_ms: ms(samples),
                            end_ms: None,
                        });
                    } else if let Some(last) = intervals.last_mut() {
                        last.end_ms = Some(ms(samples));
                    }
                    in_suppression = suppressed;
                }
                let n = caller.len().max(ivr.len());
                for i in 0..n {
                    // Belt and braces: the media layer already sends silence
                    // while suppressed; never trust a caller sample then.
                    let c = if suppressed {
                        0
                    } else {
                        caller.get(i).copied().unwrap_or(0)
                    };
                    let v = if suppressed {
                        0
                    } else {
                        ivr.get(i).copied().unwrap_or(0)
                    };
                    let r = match mode {
                        RecordingMode::Stereo => {
                            wav.write_sample(c).and_then(|_| wav.write_sample(v))
                        }
                        RecordingMode::Mono => {
                            wav.write_sample(((i32::from(c) + i32::from(v)) / 2) as i16)
                        }
                    };
                    if let Err(e) = r {
                        error!(error = %e, "recording write failed");
                        return;
                    }
                }
                samples += n as u64;
            }
            Msg::Timeline(line) => {
                if let Some(t) = &mut timeline {
                    let _ = writeln!(t, "{line}");
                }
            }
            Msg::Finish => break,
        }
    }
    if in_suppression {
        if let Some(last) = intervals.last_mut() {
            last.end_ms = Some(ms(samples));
        }
    }
    if let Err(e) = wav.finalize() {
        error!(error = %e, "recording finalize failed");
    }
    if let Some(mut t) = timeline {
        let _ = t.flush();
    }
    let sidecar = Sidecar {
        call_id,
        ani,
        start: start.format(&Rfc3339).unwrap_or_default(),
        end: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        mode: match mode {
            RecordingMode::Stereo => "stereo",
            RecordingMode::Mono => "mono",
        },
        sample_rate: crate::codec::SAMPLE_RATE,
        wav: file_name(wav_path),
        timeline: timeline_path.map(file_name),
        duration_ms: ms(samples),
        suppressed: intervals,
    };
    match serde_json::to_vec_pretty(&sidecar) {
        Ok(bytes) => {
            if let Err(e) = std::fs::write(sidecar_path, bytes) {
                error!(error = %e, "recording sidecar write failed");
            }
        }
        Err(e) => error!(error = %e, "recording sidecar encode failed"),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(p).display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_that_sanitise_alike_get_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RecordingConfig {
            dir: dir.path().to_path_buf(),
            timeline: true,
            ..RecordingConfig::default()
        };
        // Both become `a_b_10.0.0.1`; the dotted host must survive whole.
        for id in ["a@b@10.0.0.1", "a#b#10.0.0.1"] {
            let mut r = Recorder::create(&cfg, id, "100").unwrap();
            r.frame(vec![0; 160], vec![0; 160], false);
            r.finish();
        }
        // The writer threads finish the files on their own time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !(dir.path().join("a_b_10.0.0.1.json").exists()
            && dir.path().join("a_b_10.0.0.1-1.json").exists())
        {
            assert!(std::time::Instant::now() < deadline, "sidecars not written");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "a_b_10.0.0.1-1.json",
                "a_b_10.0.0.1-1.timeline.jsonl",
                "a_b_10.0.0.1-1.wav",
                "a_b_10.0.0.1.json",
                "a_b_10.0.0.1.timeline.jsonl",
                "a_b_10.0.0.1.wav",
            ]
        );
        let first = std::fs::read_to_string(dir.path().join("a_b_10.0.0.1.json")).unwrap();
        let second = std::fs::read_to_string(dir.path().join("a_b_10.0.0.1-1.json")).unwrap();
        assert!(first.contains("a@b@10.0.0.1"), "{first}");
        assert!(second.contains("a#b#10.0.0.1"), "{second}");
    }
}
