//! Per-call recording: a WAV file (stereo caller/IVR, or a mono mix), a
//! sidecar JSON (call id, ANI, start, suppression intervals) and the
//! interaction timeline as JSON lines.
//!
//! Frames arrive from the call task in blocks of
//! [`crate::media::recording::BLOCK_FRAMES`] packets, as the call's G.711
//! bytes; the writers decode them, and give each block's buffer back to the
//! pool it came from. The files are written by a few writer threads shared by
//! every recording of the process (not a thread per call), so that disk
//! latency never reaches the RTP clock. A writer is never woken per block: it
//! wakes every [`WRITE_EVERY`] and writes what its recordings sent since.
//! Inside a secure segment the media layer hands us silence marked suppressed;
//! we write zeros (the recording keeps its timeline) and note where suppression
//! began and ended.
//!
//! Writers that fall behind (a stalled disk, an NFS mount that hangs) must not
//! take the process's memory with them: at most [`MAX_BACKLOG`] blocks wait
//! for the writers, process-wide. A block that would go past it is dropped at
//! once (its buffer back to the pool), counted in
//! `sspr_ivr_recording_frames_dropped_total`, and the recording gets that much
//! silence in its place when the writers take its blocks again: its timeline
//! stays true, and its sidecar lists the gaps.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{error, warn};

use crate::codec::Codec;
use crate::config::{RecordingConfig, RecordingMode};
use crate::flow::TimelineEvent;
use crate::media::g711;
use crate::media::recording::RecordBlock;

/// How often a writer thread wakes to write what its recordings sent. A call's
/// frames wait at most this long in memory; its files are closed at most this
/// long after it ends.
pub const WRITE_EVERY: Duration = Duration::from_millis(50);

/// How much nicer than the process the writer threads are: recording yields the
/// CPU to the RTP clock.
const WRITER_NICE: libc::c_int = 10;

/// At most this many blocks wait for the writers, process-wide (about 52 MB
/// of audio at 20 ms: 3.3 s of 1,000 recorded calls, 33 s of 100).
pub const MAX_BACKLOG: usize = 16_384;

/// Blocks sent to the writers and not yet taken by them.
static BACKLOG: AtomicUsize = AtomicUsize::new(0);

/// Bytes of WAV kept in memory per recording between writes to its file.
const WAV_BUFFER: usize = 32 * 1024;

enum Msg {
    /// Create the recording's files (on the writer: a slow disk never holds
    /// up the SIP task that answers calls).
    Create(Box<Create>),
    /// Files already created (the tests hand the writer prepared ones).
    #[cfg_attr(not(test), allow(dead_code))]
    Open(Box<Open>),
    Frames(RecordBlock),
    /// This many samples (per side) were dropped before the writer had them:
    /// silence in the WAV, a gap in the sidecar.
    Gap(u64),
    Timeline(String),
    Finish,
    /// Answered once everything sent before it has been written.
    Barrier(mpsc::Sender<()>),
}

impl Msg {
    /// A block for the writer, counted in [`BACKLOG`] until a writer takes it.
    fn frames(block: RecordBlock) -> Msg {
        BACKLOG.fetch_add(1, Ordering::Relaxed);
        Msg::Frames(block)
    }
}

/// What the writer needs to create a recording's files.
struct Create {
    cfg: RecordingConfig,
    call_id: String,
    ani: String,
    /// When the call was answered (the sidecar's start).
    start: OffsetDateTime,
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
    /// False when a write failed (a full disk): the WAV holds only the first
    /// `duration_ms` of the call.
    complete: bool,
    suppressed: Vec<Interval>,
    /// Where the writers had fallen behind and the audio was dropped: silence
    /// in the WAV.
    gaps: Vec<Interval>,
}

/// A recording's files and what is known of it, as its writer holds it.
struct Open {
    wav: hound::WavWriter<BufWriter<File>>,
    timeline: Option<BufWriter<File>>,
    mode: RecordingMode,
    sidecar_path: PathBuf,
    wav_path: PathBuf,
    timeline_path: Option<PathBuf>,
    call_id: String,
    ani: String,
    start: OffsetDateTime,
    samples: u64,
    intervals: Vec<Interval>,
    in_suppression: bool,
    gaps: Vec<Interval>,
    /// A write failed: the rest of the recording is dropped (logged once).
    failed: bool,
}

/// The process's writer threads, started with the first recording.
struct Writers {
    senders: Vec<mpsc::Sender<(u64, Msg)>>,
    next: AtomicUsize,
    ids: AtomicU64,
}

static WRITERS: OnceLock<Writers> = OnceLock::new();

fn writers() -> &'static Writers {
    WRITERS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let senders = (0..n)
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("recorder-{i}"))
                    .spawn(move || write_loop(&rx))
                    .map_err(|e| error!(error = %e, "cannot start a recording writer"))
                    .ok()
                    .map(|_| tx)
            })
            .collect();
        Writers {
            senders,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
        }
    })
}

pub struct Recorder {
    id: u64,
    tx: mpsc::Sender<(u64, Msg)>,
    finished: bool,
    /// Samples dropped since the writers last took a block of this recording.
    dropped: u64,
    /// Blocks are dropped while this many wait for the writers ([`MAX_BACKLOG`]).
    limit: usize,
    warned: bool,
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
    /// A recording for this call. Its files are created by a writer thread
    /// (within [`WRITE_EVERY`]); if that fails, the writer logs it and the
    /// call goes on unrecorded. An error here means no writer can take it.
    pub fn create(cfg: &RecordingConfig, call_id: &str, ani: &str) -> std::io::Result<Recorder> {
        let create = Create {
            cfg: cfg.clone(),
            call_id: call_id.to_string(),
            ani: ani.to_string(),
            start: OffsetDateTime::now_utc(),
        };
        let writers = writers();
        let Some(tx) = writers
            .senders
            .get(writers.next.fetch_add(1, Ordering::Relaxed) % writers.senders.len().max(1))
        else {
            return Err(std::io::Error::other("no recording writer thread"));
        };
        let id = writers.ids.fetch_add(1, Ordering::Relaxed);
        tx.send((id, Msg::Create(Box::new(create))))
            .map_err(|_| std::io::Error::other("recording writer thread gone"))?;
        Ok(Recorder {
            id,
            tx: tx.clone(),
            finished: false,
            dropped: 0,
            limit: MAX_BACKLOG,
            warned: false,
        })
    }

    /// A block of frames, written in order after the ones sent before it; or,
    /// while the writers are [`MAX_BACKLOG`] blocks behind, dropped (silence
    /// in the recording). Returns the frames dropped (0 or the block's).
    pub fn frames(&mut self, block: RecordBlock) -> u64 {
        if BACKLOG.load(Ordering::Relaxed) >= self.limit {
            let frames = block.frames().count() as u64;
            self.dropped += block.samples() as u64;
            block.recycle();
            if !self.warned {
                self.warned = true;
                warn!(
                    backlog = MAX_BACKLOG,
                    "recording writers behind (slow disk?): audio dropped, the recording gets silence and a gap"
                );
            }
            return frames;
        }
        self.send_gap();
        if let Err(mpsc::SendError((_, Msg::Frames(block)))) =
            self.tx.send((self.id, Msg::frames(block)))
        {
            BACKLOG.fetch_sub(1, Ordering::Relaxed);
            block.recycle();
        }
        0
    }

    /// What was dropped since the last block, as a gap ahead of the next.
    fn send_gap(&mut self) {
        if self.dropped > 0 {
            let _ = self
                .tx
                .send((self.id, Msg::Gap(std::mem::take(&mut self.dropped))));
        }
    }

    pub fn timeline(&mut self, ev: &TimelineEvent) {
        let mut line = serde_json::to_value(ev).unwrap_or_default();
        line["time"] = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default()
            .into();
        let _ = self.tx.send((self.id, Msg::Timeline(line.to_string())));
    }

    /// Close the files (the writer finishes them) without blocking the caller.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if !self.finished {
            self.finished = true;
            self.send_gap();
            let _ = self.tx.send((self.id, Msg::Finish));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.close();
    }
}

/// Wait (at most `limit`) until every recording message sent so far is written:
/// the files of recordings already finished are then complete. For shutdown.
pub fn flush(limit: Duration) -> bool {
    let Some(writers) = WRITERS.get() else {
        return true; // no recording was ever made
    };
    let deadline = std::time::Instant::now() + limit;
    let (tx, rx) = mpsc::channel();
    let n = writers
        .senders
        .iter()
        .filter(|w| w.send((u64::MAX, Msg::Barrier(tx.clone()))).is_ok())
        .count();
    (0..n).all(|_| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left).is_ok()
    })
}

/// A writer thread: every [`WRITE_EVERY`], write what its recordings sent.
fn write_loop(rx: &mpsc::Receiver<(u64, Msg)>) {
    // Background work: the scheduler lets the call shards (which keep the RTP
    // clock) run first when both want the CPU. On Linux a thread has its own
    // nice value.
    // SAFETY: plain syscalls on this thread's own id.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + WRITER_NICE).min(19))
    };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "recording writer keeps its priority");
    }
    let mut open: HashMap<u64, Box<Open>> = HashMap::new();
    loop {
        std::thread::sleep(WRITE_EVERY);
        loop {
            match rx.try_recv() {
                Ok((id, Msg::Create(c))) => {
                    let created = catch_unwind(AssertUnwindSafe(|| {
                        Open::create_at(&c.cfg, &c.call_id, &c.ani, c.start)
                    }));
                    match created {
                        Ok(Ok(o)) => {
                            open.insert(id, Box::new(o));
                        }
                        Ok(Err(e)) => error!(
                            call_id = %c.call_id,
                            error = %e,
                            "cannot create recording; call continues unrecorded"
                        ),
                        Err(_) => error!(
                            call_id = %c.call_id,
                            "recording writer failed while creating a recording; call continues unrecorded"
                        ),
                    }
                }
                Ok((id, Msg::Open(o))) => {
                    open.insert(id, o);
                }
                Ok((_, Msg::Barrier(done))) => {
                    let _ = done.send(());
                }
                // A writer serves many recordings: a panic while writing one
                // ends that recording only (its files are left as they are).
                Ok((id, Msg::Finish)) => {
                    if let Some(o) = open.remove(&id) {
                        if catch_unwind(AssertUnwindSafe(|| o.finish())).is_err() {
                            error!("recording writer failed while closing a recording");
                        }
                    }
                }
                Ok((id, msg)) => {
                    if matches!(msg, Msg::Frames(_)) {
                        BACKLOG.fetch_sub(1, Ordering::Relaxed);
                    }
                    match open.get_mut(&id) {
                        Some(o) => {
                            if catch_unwind(AssertUnwindSafe(|| o.write(msg))).is_err() {
                                error!("recording writer failed; the recording is dropped");
                                open.remove(&id);
                            }
                        }
                        // A recording that could not be created (or has failed):
                        // its blocks' buffers still go back to the pool.
                        None => {
                            if let Msg::Frames(block) = msg {
                                block.recycle();
                            }
                        }
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
    }
}

fn ms(samples: u64) -> u64 {
    samples / 8
}

fn channels(mode: RecordingMode) -> u16 {
    match mode {
        RecordingMode::Stereo => 2,
        RecordingMode::Mono => 1,
    }
}

impl Open {
    /// Claim the recording's files (WAV, and timeline when asked) in `cfg.dir`.
    #[cfg(test)]
    fn create(cfg: &RecordingConfig, call_id: &str, ani: &str) -> std::io::Result<Open> {
        Open::create_at(cfg, call_id, ani, OffsetDateTime::now_utc())
    }

    /// The same, for a call answered at `start`.
    fn create_at(
        cfg: &RecordingConfig,
        call_id: &str,
        ani: &str,
        start: OffsetDateTime,
    ) -> std::io::Result<Open> {
        std::fs::create_dir_all(&cfg.dir)?;
        // Names are built by appending, never `with_extension` (a Call-ID
        // like `abc@10.0.0.1` would lose its last dotted part).
        let (stem, wav_file) = claim(&cfg.dir, &safe_name(call_id))?;
        let path_of = |ext: &str| cfg.dir.join(format!("{stem}.{ext}"));
        let spec = hound::WavSpec {
            channels: channels(cfg.mode),
            sample_rate: crate::codec::SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav = hound::WavWriter::new(BufWriter::with_capacity(WAV_BUFFER, wav_file), spec)
            .map_err(std::io::Error::other)?;
        let timeline_path = cfg.timeline.then(|| path_of("timeline.jsonl"));
        let timeline = match &timeline_path {
            Some(p) => Some(BufWriter::new(File::create(p)?)),
            None => None,
        };
        Ok(Open {
            wav,
            timeline,
            mode: cfg.mode,
            sidecar_path: path_of("json"),
            wav_path: path_of("wav"),
            timeline_path,
            call_id: call_id.to_string(),
            ani: ani.to_string(),
            start,
            samples: 0,
            intervals: Vec::new(),
            in_suppression: false,
            gaps: Vec::new(),
            failed: false,
        })
    }

    /// One frame of interleaved (caller, IVR) G.711 bytes; false once the
    /// file has failed.
    fn write_frame(&mut self, codec: Codec, frame: &[u8], suppressed: bool) -> bool {
        if self.failed {
            return false;
        }
        if suppressed != self.in_suppression {
            if suppressed {
                self.intervals.push(Interval {
                    start_ms: ms(self.samples),
                    end_ms: None,
                });
            } else if let Some(last) = self.intervals.last_mut() {
                last.end_ms = Some(ms(self.samples));
            }
            self.in_suppression = suppressed;
        }
        let n = frame.len() / 2;
        // One buffered block per frame (the spec is 16-bit integer PCM).
        let mut w = self
            .wav
            .get_i16_writer(n as u32 * u32::from(channels(self.mode)));
        for pair in frame.chunks_exact(2) {
            // Belt and braces: the media layer already sends silence while
            // suppressed; never trust a caller sample then.
            let (c, v) = if suppressed {
                (0, 0)
            } else {
                let decode = |b| g711::decode_sample(codec, b);
                (decode(pair[0]), decode(pair[1]))
            };
            match self.mode {
                RecordingMode::Stereo => {
                    w.write_sample(c);
                    w.write_sample(v);
                }
                RecordingMode::Mono => w.write_sample(((i32::from(c) + i32::from(v)) / 2) as i16),
            }
        }
        if let Err(e) = w.flush() {
            error!(error = %e, "recording write failed");
            self.failed = true;
            return false;
        }
        self.samples += n as u64;
        true
    }

    /// `samples` (per side) of silence where audio was dropped, noted as a gap.
    fn write_gap(&mut self, samples: u64) {
        if self.failed || samples == 0 {
            return;
        }
        let start_ms = ms(self.samples);
        let per_sample = u32::from(channels(self.mode));
        let mut left = samples;
        while left > 0 {
            let n = left.min(1600);
            let mut w = self.wav.get_i16_writer(n as u32 * per_sample);
            for _ in 0..n * u64::from(per_sample) {
                w.write_sample(0);
            }
            if let Err(e) = w.flush() {
                error!(error = %e, "recording write failed");
                self.failed = true;
                return;
            }
            self.samples += n;
            left -= n;
        }
        self.gaps.push(Interval {
            start_ms,
            end_ms: Some(ms(self.samples)),
        });
    }

    fn write(&mut self, msg: Msg) {
        match msg {
            Msg::Gap(samples) => self.write_gap(samples),
            Msg::Frames(block) => {
                for (frame, suppressed) in block.frames() {
                    if !self.write_frame(block.codec(), frame, suppressed) {
                        break;
                    }
                }
                block.recycle();
            }
            Msg::Timeline(line) => {
                if let Some(t) = &mut self.timeline {
                    let _ = writeln!(t, "{line}");
                }
            }
            Msg::Create(_) | Msg::Open(_) | Msg::Finish | Msg::Barrier(_) => {}
        }
    }

    /// The call is over: finalize the WAV, flush the timeline, write the sidecar.
    fn finish(self: Box<Self>) {
        let Open {
            wav,
            timeline,
            mode,
            sidecar_path,
            wav_path,
            timeline_path,
            call_id,
            ani,
            start,
            samples,
            mut intervals,
            in_suppression,
            gaps,
            failed,
        } = *self;
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
            call_id: &call_id,
            ani: &ani,
            start: start.format(&Rfc3339).unwrap_or_default(),
            end: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            mode: match mode {
                RecordingMode::Stereo => "stereo",
                RecordingMode::Mono => "mono",
            },
            sample_rate: crate::codec::SAMPLE_RATE,
            wav: file_name(&wav_path),
            timeline: timeline_path.as_deref().map(file_name),
            duration_ms: ms(samples),
            complete: !failed,
            suppressed: intervals,
            gaps,
        };
        match serde_json::to_vec_pretty(&sidecar) {
            Ok(bytes) => {
                if let Err(e) = std::fs::write(&sidecar_path, bytes) {
                    error!(error = %e, "recording sidecar write failed");
                }
            }
            Err(e) => error!(error = %e, "recording sidecar encode failed"),
        }
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

    /// A block of one 160-sample frame: the caller at level `c`, the IVR at `v`.
    fn one_frame(c: i16, v: i16, suppressed: bool) -> RecordBlock {
        RecordBlock::from_frames(Codec::Pcmu, 160, &[(&[c; 160], &[v; 160], suppressed)])
    }

    /// What the recording holds for sample `s`: it travels as μ-law.
    fn g711(s: i16) -> i16 {
        g711::decode_sample(Codec::Pcmu, g711::encode_sample(Codec::Pcmu, s))
    }

    /// Files are created on the writer, not by the caller of `create`: a
    /// recording whose directory cannot be made is refused there, its frames
    /// are dropped, and the recordings beside it on the same writers are whole.
    #[test]
    fn a_recording_that_cannot_be_created_is_dropped_on_the_writer_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let bad = RecordingConfig {
            dir: blocker.join("recordings"),
            ..RecordingConfig::default()
        };
        let good = RecordingConfig {
            dir: dir.path().join("ok"),
            ..RecordingConfig::default()
        };
        let mut recs: Vec<Recorder> = (0..8)
            .map(|i| {
                let cfg = if i % 2 == 0 { &bad } else { &good };
                Recorder::create(cfg, &format!("mixed-{i}"), "100").expect("handed to a writer")
            })
            .collect();
        for n in 0..50i16 {
            for r in recs.iter_mut() {
                r.frames(one_frame(n, n, false));
            }
        }
        for r in recs {
            r.finish();
        }
        assert!(flush(Duration::from_secs(10)), "writers did not catch up");
        assert!(!blocker.join("recordings").exists());
        for i in (1..8).step_by(2) {
            let wav = dir.path().join("ok").join(format!("mixed-{i}.wav"));
            let reader = hound::WavReader::open(&wav).expect("the good recording");
            assert_eq!(reader.duration(), 50 * 160, "{}", wav.display());
        }
    }

    #[test]
    fn shared_writers_keep_each_recordings_frames_in_order_and_flush_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RecordingConfig {
            dir: dir.path().to_path_buf(),
            ..RecordingConfig::default()
        };
        // More recordings than writer threads, their frames interleaved.
        let mut recs: Vec<Recorder> = (0..9)
            .map(|i| Recorder::create(&cfg, &format!("call-{i}"), "100").unwrap())
            .collect();
        for frame in 0..30i16 {
            for (i, r) in recs.iter_mut().enumerate() {
                let secure = (10..20).contains(&frame);
                let v = i as i16 * 100 + frame;
                r.frames(one_frame(v, -v, secure));
            }
        }
        for r in recs {
            r.finish();
        }
        assert!(flush(Duration::from_secs(10)), "writers did not catch up");
        for i in 0..9i16 {
            let wav = dir.path().join(format!("call-{i}.wav"));
            let samples: Vec<i16> = hound::WavReader::open(&wav)
                .unwrap()
                .into_samples::<i16>()
                .map(Result::unwrap)
                .collect();
            assert_eq!(samples.len(), 30 * 160 * 2, "{wav:?}");
            for (frame, chunk) in samples.chunks(320).enumerate() {
                let frame = frame as i16;
                let v = if (10..20).contains(&frame) {
                    0
                } else {
                    i * 100 + frame
                };
                assert_eq!(chunk[0], g711(v), "caller, frame {frame} of {wav:?}");
                assert_eq!(chunk[1], g711(-v), "ivr, frame {frame} of {wav:?}");
            }
            let sidecar: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.path().join(format!("call-{i}.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(sidecar["duration_ms"], 600);
            assert_eq!(
                sidecar["suppressed"],
                serde_json::json!([{ "start_ms": 200, "end_ms": 400 }])
            );
        }
    }

    /// Writers too far behind: a call's blocks are dropped at the call (none
    /// waits in memory), and when the writers take its blocks again, the
    /// recording gets silence for exactly what was lost, and its sidecar says
    /// where. A recording that ends while dropping gets its tail too.
    #[test]
    fn audio_dropped_while_the_writers_are_behind_becomes_silence_and_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RecordingConfig {
            dir: dir.path().to_path_buf(),
            ..RecordingConfig::default()
        };
        let mut mid = Recorder::create(&cfg, "mid", "100").unwrap();
        let mut tail = Recorder::create(&cfg, "tail", "100").unwrap();
        let mut dropped = 0;
        for frame in 0..20i16 {
            // The backlog limit stands in for writers that are this far behind.
            mid.limit = if (5..15).contains(&frame) {
                0
            } else {
                usize::MAX
            };
            tail.limit = if frame < 3 { usize::MAX } else { 0 };
            dropped += mid.frames(one_frame(frame + 1, -(frame + 1), false));
            if frame < 7 {
                dropped += tail.frames(one_frame(frame + 1, 0, false));
            }
        }
        assert_eq!(dropped, 10 + 4, "frames reported dropped");
        mid.finish();
        tail.finish();
        assert!(flush(Duration::from_secs(10)), "writers did not catch up");
        let samples = |name: &str| -> Vec<i16> {
            hound::WavReader::open(dir.path().join(format!("{name}.wav")))
                .unwrap()
                .into_samples::<i16>()
                .map(Result::unwrap)
                .collect()
        };
        let sidecar = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(dir.path().join(format!("{name}.json"))).unwrap())
                .unwrap()
        };
        let wav = samples("mid");
        assert_eq!(wav.len(), 20 * 160 * 2);
        for (frame, chunk) in wav.chunks(320).enumerate() {
            let v = if (5..15).contains(&frame) {
                0
            } else {
                frame as i16 + 1
            };
            assert!(
                chunk[..2] == [g711(v), g711(-v)],
                "frame {frame}: {:?}",
                &chunk[..2]
            );
            assert!(chunk.chunks(2).all(|p| *p == chunk[..2]), "frame {frame}");
        }
        let s = sidecar("mid");
        assert_eq!(s["duration_ms"], 400);
        assert_eq!(s["complete"], true);
        assert_eq!(
            s["gaps"],
            serde_json::json!([{ "start_ms": 100, "end_ms": 300 }])
        );
        assert_eq!(s["suppressed"], serde_json::json!([]));
        let wav = samples("tail");
        assert_eq!(wav.len(), 7 * 160 * 2);
        assert!(wav[3 * 320..].iter().all(|&x| x == 0));
        assert_eq!(
            sidecar("tail")["gaps"],
            serde_json::json!([{ "start_ms": 60, "end_ms": 140 }])
        );
    }

    #[test]
    fn a_full_disk_ends_one_recording_and_the_writer_goes_on_with_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RecordingConfig {
            dir: dir.path().to_path_buf(),
            ..RecordingConfig::default()
        };
        // The first recording's WAV goes to /dev/full: every write to it fails
        // with ENOSPC once its buffer is flushed.
        let mut full = Open::create(&cfg, "full", "100").unwrap();
        let spec = full.wav.spec();
        let dev_full = File::options().write(true).open("/dev/full").unwrap();
        full.wav =
            hound::WavWriter::new(BufWriter::with_capacity(WAV_BUFFER, dev_full), spec).unwrap();
        let fine = Open::create(&cfg, "fine", "100").unwrap();
        // A writer of its own, so the test sees exactly what it did.
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::spawn(move || write_loop(&rx));
        tx.send((1, Msg::Open(Box::new(full)))).unwrap();
        tx.send((2, Msg::Open(Box::new(fine)))).unwrap();
        // 3 s of frames: far more than the WAV buffer holds.
        for n in 0..150i16 {
            for id in [1, 2] {
                let frame = Msg::frames(one_frame(n, -n, false));
                tx.send((id, frame)).unwrap();
            }
        }
        tx.send((1, Msg::Finish)).unwrap();
        tx.send((2, Msg::Finish)).unwrap();
        drop(tx);
        writer.join().expect("the writer survives a full disk");
        // The good recording is whole.
        let samples: Vec<i16> = hound::WavReader::open(dir.path().join("fine.wav"))
            .unwrap()
            .into_samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(samples.len(), 150 * 160 * 2);
        assert_eq!((samples[0], samples[samples.len() - 1]), (0, g711(-149)));
        // The failed one stopped at its first failed write, and its sidecar says
        // how much audio it has, not how long the call was.
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("full.json")).unwrap()).unwrap();
        let ms = sidecar["duration_ms"].as_u64().unwrap();
        assert!(ms < 3000, "a failed recording claims {ms} ms");
        assert_eq!(sidecar["complete"], false);
        let fine: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("fine.json")).unwrap()).unwrap();
        assert_eq!(
            (fine["duration_ms"].as_u64(), &fine["complete"]),
            (Some(3000), &true.into())
        );
    }

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
            r.frames(one_frame(0, 0, false));
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
        // Each call has its own sidecar. Which one gets the plain name is not
        // fixed: the files are created by the writer threads, and the two
        // calls may land on different ones.
        let first = std::fs::read_to_string(dir.path().join("a_b_10.0.0.1.json")).unwrap();
        let second = std::fs::read_to_string(dir.path().join("a_b_10.0.0.1-1.json")).unwrap();
        let (at, hash) = ("\"a@b@10.0.0.1\"", "\"a#b#10.0.0.1\"");
        assert!(
            (first.contains(at) && second.contains(hash))
                || (first.contains(hash) && second.contains(at)),
            "{first}\n{second}"
        );
    }
}
