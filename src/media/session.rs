//! `MediaSession`: the sans-IO media side of one call (RFC 3550 sender/receiver for
//! one G.711 stream plus RFC 4733 events).
//!
//! Sending: one RTP packet every ptime (20 ms unless the SDP said otherwise; clamped
//! to 10–120 ms, 0 meaning the default), scheduled by absolute deadlines
//! `start + n·ptime` so the stream never drifts. If the runtime wakes late, every
//! frame that is due goes out at once and the ones more than [`LATE_TOLERANCE`]
//! behind are counted `late`; if it is more
//! than [`MAX_CATCH_UP`] frames behind, the older frames are skipped (timestamps still
//! advance, audio resumes where it was) and counted `skipped`. The stream is
//! continuous: silence (the codec's zero byte) between prompts. Sequence numbers
//! increase by one per packet, timestamps by the samples per packet, and the marker
//! bit is set on the first packet of the stream and of each prompt (talkspurt start).
//! Prompts start on a packet boundary and go out byte-identical to the cache; the
//! last partial packet is padded with silence.
//!
//! Playback: [`MediaSession::play`] replaces whatever was queued;
//! `PlaybackFinished { id }` is emitted when the last item's last packet was sent (at
//! once for an empty list). A playback that is replaced or stopped
//! ([`MediaSession::stop_playback`], barge-in: silence from the next packet) emits no
//! `PlaybackFinished`. A prompt name not in the cache is skipped with a warning.
//!
//! Receiving: a datagram from a source the call does not trust, or not from the
//! latched source, is dropped before it is parsed and counted by reason (see
//! [`super::trust`]: the caller's SDP or signalling IP, one latched address, re-latch
//! within that IP only after [`RELATCH_AFTER`] of quiet). Malformed RTP is counted and
//! ignored; the negotiated telephone-event
//! payload type goes to the RFC 4733 receiver, the audio payload type to the in-band
//! detector (only while the DTMF mode can still use it and a key can matter to the
//! flow: [`MediaSession::set_keys_matter`]) and the recorder; SIP INFO
//! digits come in through [`MediaSession::handle_info_digit`]. With symmetric RTP the
//! session sends to the latched source. No packet for the inactivity timeout →
//! one `RtpTimeout` (again only after traffic resumed and stopped again).
//!
//! Nothing is sent before [`MediaSession::start_sending`] (the call's ACK) or the
//! caller's first valid packet, whichever comes first: a spoofed INVITE cannot aim a
//! stream at a third party. Until then the packet clock runs on without sending.
//!
//! Recording: with `record: true`, every sent packet makes one frame: the caller's
//! audio received since the previous packet and the IVR's audio of that packet,
//! handed out [`recording::LOOKBACK`] late in `Record` events of
//! [`recording::BLOCK_FRAMES`] frames; while `set_secure(true)` or
//! `set_key_guard(true)` both are silence and marked suppressed, reaching back
//! over the frames still held, and after both end suppression waits for the last
//! key's tail ([`crate::media::recording`]). `flush_recording` hands out the rest.
//!
//! It does not do RTCP, jitter buffering or SRTP, and never logs digit values.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::media::digits::DigitMerger;
use crate::media::goertzel::InbandDetector;
use crate::media::phase_lock::PhaseLock;
use crate::media::prompts::{Prompt, PromptCache};
use crate::media::recording::{self, RecordingTap};
use crate::media::rtp::{self, RtpHeader};
use crate::media::telephone_event::{self, Receiver};
pub use crate::media::trust::RELATCH_AFTER;
use crate::media::trust::{Rejected, RtpTrust, SourceGuard};
use crate::media::{g711, DigitSource, DtmfMode, PlayItem};

/// A packet sent later than this after its deadline counts as late.
pub const LATE_TOLERANCE: Duration = Duration::from_millis(2);
/// At most this many overdue packets are sent in one burst; older ones are skipped.
pub const MAX_CATCH_UP: u64 = 10;
/// A SIP INFO digit without a duration is taken to sound this long.
const INFO_DIGIT_DURATION: Duration = Duration::from_millis(250);

/// A grid the runtime puts every call's packet times on: a session's first
/// packet is due at the first grid point at or after its start, so calls'
/// packets fall due together (`step` apart) and a driver serving many calls
/// wakes once per grid point instead of once per call. Each call's own
/// packets stay exactly one ptime apart.
#[derive(Clone, Copy, Debug)]
pub struct PacingGrid {
    pub origin: Instant,
    pub step: Duration,
}

impl PacingGrid {
    /// The first grid point at or after `now` (`now` itself for a zero step).
    #[must_use]
    pub fn align(&self, now: Instant) -> Instant {
        let step = self.step.as_nanos();
        if step == 0 || now <= self.origin {
            return now.max(self.origin);
        }
        let since = now.duration_since(self.origin).as_nanos();
        let points = since.div_ceil(step);
        self.origin + Duration::from_nanos((points * step).min(u128::from(u64::MAX)) as u64)
    }
}

/// Everything a session needs from the SDP negotiation and the config.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    pub codec: Codec,
    pub audio_pt: u8,
    pub telephone_event_pt: Option<u8>,
    pub ptime_ms: u32,
    pub remote: SocketAddr,
    pub symmetric_rtp: bool,
    pub dtmf_mode: DtmfMode,
    pub inactivity_timeout: Duration,
    /// [`Self::inactivity_timeout`] while the caller has the call on hold.
    pub hold_timeout: Duration,
    pub record: bool,
    /// Whose RTP is accepted (see [`super::trust`]).
    pub trust: RtpTrust,
    /// The IP address the call's INVITE came from.
    pub signalling_ip: Option<IpAddr>,
    /// The caller takes our media (false: its offer put the call on hold, see
    /// [`MediaSession::update_remote`]).
    pub peer_receives: bool,
}

/// What the session reports. `Debug` never shows a digit's value (digits typed in a
/// secure segment are secrets, and the media layer cannot tell which ones are).
#[derive(Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        digit: char,
        source: DigitSource,
    },
    PlaybackFinished {
        id: u64,
    },
    RtpTimeout,
    /// Recorded audio, [`recording::BLOCK_FRAMES`] frames at a time.
    Record(recording::RecordBlock),
}

impl std::fmt::Debug for MediaEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaEvent::Digit { source, .. } => f
                .debug_struct("Digit")
                .field("source", source)
                .finish_non_exhaustive(),
            MediaEvent::PlaybackFinished { id } => {
                f.debug_struct("PlaybackFinished").field("id", id).finish()
            }
            MediaEvent::RtpTimeout => f.write_str("RtpTimeout"),
            MediaEvent::Record(block) => block.fmt(f),
        }
    }
}

/// Counters of one session (no digit values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Packets sent more than [`LATE_TOLERANCE`] after their deadline.
    pub late: u64,
    /// Packets never sent because the runtime was too far behind.
    pub skipped: u64,
    /// Packets of the caller's stream that never arrived (sequence gaps; see `SeqTracker`).
    pub lost: u64,
    pub out_of_order: u64,
    pub malformed: u64,
    /// Datagrams dropped unparsed: from an untrusted IP.
    pub rejected_untrusted: u64,
    /// Datagrams dropped unparsed: from a trusted IP but not the latched source.
    pub rejected_not_latched: u64,
    pub unknown_payload_type: u64,
    pub latches: u64,
    pub digits_rfc4733: u64,
    pub digits_inband: u64,
    pub digits_info: u64,
    /// Digits dropped by the merger (duplicates, or a source the mode ignores).
    pub digits_suppressed: u64,
    pub missing_prompts: u64,
    /// Times the packet deadlines moved to follow the caller's packets
    /// ([`MediaSession::lock_phase`]).
    pub phase_moves: u64,
}

#[derive(Debug)]
enum Playing {
    /// The prompt itself (not its name): no lookup per packet.
    Prompt {
        prompt: Arc<Prompt>,
        pos: usize,
    },
    Silence {
        frames_left: u64,
    },
}

/// A packet that is due: its header and where its audio comes from.
struct OutFrame {
    to: SocketAddr,
    header: RtpHeader,
    codec: Codec,
    audio: FrameAudio,
}

/// The due packets, oldest first. A call's turn nearly always has one: it is
/// kept inside the session, next to the state the turn touches anyway; only a
/// catch-up after a stall spills the rest into the deque.
#[derive(Default)]
struct OutQueue {
    first: Option<OutFrame>,
    rest: VecDeque<OutFrame>,
}

impl OutQueue {
    fn push(&mut self, f: OutFrame) {
        if self.first.is_none() {
            self.first = Some(f);
        } else {
            self.rest.push_back(f);
        }
    }

    fn pop(&mut self) -> Option<OutFrame> {
        let f = self.first.take()?;
        self.first = self.rest.pop_front();
        Some(f)
    }
}

/// One frame's audio: part of a prompt (padded with silence at its end), or silence.
enum FrameAudio {
    Prompt {
        prompt: Arc<Prompt>,
        start: usize,
        end: usize,
    },
    Silence,
}

impl FrameAudio {
    /// Append the frame's `spf` bytes of `codec` audio to `out`.
    fn payload(&self, codec: Codec, spf: usize, out: &mut Vec<u8>) {
        let from = out.len();
        if let FrameAudio::Prompt { prompt, start, end } = self {
            out.extend_from_slice(&prompt.encoded(codec)[*start..*end]);
        }
        out.resize(from + spf, codec.silence_byte());
    }
}

/// The caller's audio is decoded this many samples at a time (one 20 ms frame).
const DECODE_CHUNK: usize = 160;

/// A forward jump of more than this many sequence numbers is not loss but a new run
/// (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// A packet at most this far behind the highest sequence number is late, not a new run
/// (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;

/// Loss of the caller's stream (RFC 3550 A.1/A.3), over every packet of its SSRC: audio,
/// RFC 4733 events and comfort noise share one sequence space (RFC 3550 §5.1), so an event
/// packet is never a "missing" audio packet.
///
/// Lost = sequence numbers inside a run that never arrived; a late packet fills its gap, a
/// duplicate (RFC 4733 resends its end packet) fills none. A run ends, without counting the
/// gap as loss, where the sender evidently restarted its numbering: a packet with the marker
/// bit (a new talkspurt or event) that jumps ahead, repeats a number already seen, or lies
/// before the run — what sipp sends when it replays one capture after another — or a jump
/// beyond [`MAX_DROPOUT`] confirmed by the next packet.
#[derive(Debug)]
struct SeqTracker {
    ssrc: u32,
    /// Extended sequence number where the current run began.
    base: u64,
    /// Highest extended sequence number of the current run.
    max: u64,
    /// Which of the 128 numbers up to `max` arrived (bit `i`: `max - i`).
    seen: u128,
    /// Distinct packets of the current run received.
    received: u64,
    /// Losses of the runs before this one.
    lost_before: u64,
    /// After an unconfirmed big jump: the sequence number that would confirm it.
    bad_seq: Option<u16>,
}

impl SeqTracker {
    fn new(ssrc: u32, seq: u16) -> Self {
        let base = u64::from(seq) + 0x1_0000;
        SeqTracker {
            ssrc,
            base,
            max: base,
            seen: 1,
            received: 1,
            lost_before: 0,
            bad_seq: None,
        }
    }

    fn restart(&mut self, seq: u16) {
        let lost_before = self.lost_before + self.run_lost();
        *self = SeqTracker {
            lost_before,
            ..SeqTracker::new(self.ssrc, seq)
        };
    }

    /// Counts one packet; true when it arrived out of order (or twice).
    fn update(&mut self, seq: u16, marker: bool) -> bool {
        let max16 = (self.max & 0xFFFF) as u16;
        let ahead = seq.wrapping_sub(max16);
        let behind = max16.wrapping_sub(seq);
        if ahead == 1 || (ahead > 1 && ahead < MAX_DROPOUT && !marker) {
            // In order, or after a gap whose packets are missing (unless they turn up late).
            self.max += u64::from(ahead);
            self.seen = self.seen.checked_shl(u32::from(ahead)).unwrap_or(0) | 1;
            self.received += 1;
            self.bad_seq = None;
            return false;
        }
        if behind < MAX_MISORDER {
            let in_run = u64::from(behind) <= self.max - self.base;
            let bit = 1u128.checked_shl(u32::from(behind)).unwrap_or(0);
            let repeated = self.seen & bit != 0 || (bit == 0 && in_run);
            if marker && (repeated || !in_run) {
                self.restart(seq); // the sender started over (a capture replayed again)
                return false;
            }
            if repeated || !in_run {
                return true; // a duplicate, or older than the run
            }
            self.seen |= bit;
            self.received += 1; // late: fills its gap
            return true;
        }
        if marker {
            self.restart(seq); // a new talkspurt or event, numbered afresh
        } else if self.bad_seq == Some(seq) {
            self.restart(seq); // a very large jump, confirmed by its successor
        } else {
            self.bad_seq = Some(seq.wrapping_add(1));
        }
        false
    }

    fn run_lost(&self) -> u64 {
        (self.max + 1 - self.base).saturating_sub(self.received)
    }

    fn lost(&self) -> u64 {
        self.lost_before + self.run_lost()
    }
}

/// The media side of one call. See the module docs.
pub struct MediaSession {
    config: MediaConfig,
    prompts: Arc<PromptCache>,
    ptime: Duration,
    samples_per_frame: usize,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    start: Instant,
    /// Moves `start` to follow the caller's packets ([`MediaSession::lock_phase`]).
    phase: Option<PhaseLock>,
    /// A move the lock asked for, made after the next packet is sent (ns).
    phase_shift: i64,
    next_frame: u64,
    first_packet: bool,
    current: Option<Playing>,
    queue: VecDeque<PlayItem>,
    play_id: Option<u64>,
    remote: SocketAddr,
    guard: SourceGuard,
    /// False until the ACK or the caller's first valid packet.
    sending: bool,
    /// The caller put the call on hold (its offer was `sendonly`, `inactive`
    /// or to `0.0.0.0`): nothing goes out, and the prompt waits where it was.
    held: bool,
    last_rx: Instant,
    timed_out: bool,
    rfc4733: Receiver,
    inband: InbandDetector,
    merger: DigitMerger,
    /// The flow can use a key pressed now ([`MediaSession::set_keys_matter`]).
    keys_matter: bool,
    tap: RecordingTap,
    seq_tracker: Option<SeqTracker>,
    /// Packets due and not yet handed out, as header and audio: each is built
    /// straight into the driver's buffer by [`MediaSession::poll_transmit`] (the
    /// call writes no packet memory of its own, which would be out of cache when a
    /// shard holds thousands of calls).
    out_frames: OutQueue,
    /// Scratch payload of a frame for the recording (recorded calls only).
    frame: Vec<u8>,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    lost_before: u64,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("remote", &self.remote)
            .field("ssrc", &self.ssrc)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    pub fn new(
        now: Instant,
        config: MediaConfig,
        prompts: Arc<PromptCache>,
        ssrc: u32,
        seq: u16,
        ts: u32,
    ) -> Self {
        let ptime_ms = match config.ptime_ms {
            0 => 20,
            p => p.clamp(10, 120),
        };
        let samples_per_frame = (ptime_ms * crate::codec::SAMPLE_RATE / 1000) as usize;
        MediaSession {
            ptime: Duration::from_millis(u64::from(ptime_ms)),
            samples_per_frame,
            ssrc,
            seq,
            timestamp: ts,
            start: now,
            phase: None,
            phase_shift: 0,
            next_frame: 0,
            first_packet: true,
            current: None,
            queue: VecDeque::new(),
            play_id: None,
            remote: config.remote,
            guard: SourceGuard::new(
                config.trust.clone(),
                Some(config.remote.ip()),
                config.signalling_ip,
            ),
            sending: false,
            held: !config.peer_receives,
            last_rx: now,
            timed_out: false,
            rfc4733: Receiver::default(),
            inband: InbandDetector::new(),
            merger: DigitMerger::new(config.dtmf_mode),
            keys_matter: true,
            tap: RecordingTap::new(
                config.codec,
                samples_per_frame,
                Duration::from_millis(u64::from(ptime_ms)),
            ),
            seq_tracker: None,
            out_frames: OutQueue::default(),
            frame: Vec::new(),
            events: VecDeque::new(),
            stats: MediaStats::default(),
            lost_before: 0,
            prompts,
            config,
        }
    }

    /// Where packets are sent now (the SDP address, or the latched source).
    /// Late offer (INVITE without SDP): the caller's answer, carried in the
    /// ACK, fixes the codec, payload types and address after the session
    /// started. A latched source (symmetric RTP) keeps precedence.
    pub fn apply_answer(
        &mut self,
        codec: crate::codec::Codec,
        audio_pt: u8,
        telephone_event_pt: Option<u8>,
        remote: SocketAddr,
    ) {
        self.config.codec = codec;
        self.config.audio_pt = audio_pt;
        self.config.telephone_event_pt = telephone_event_pt;
        self.config.remote = remote;
        self.guard.set_sdp(remote.ip());
        if self.guard.latched().is_none() || !self.config.symmetric_rtp {
            self.remote = remote;
        }
    }

    /// A new offer from the caller in the established call (re-INVITE or
    /// UPDATE): its media is now at `remote`, and it takes ours only while
    /// `peer_receives`. The signalling moved it, so the trust moves with it: a
    /// new address becomes the call's SDP address and the next trusted packet
    /// latches afresh (before, a gateway that re-anchored its media on another
    /// IP was refused as a stranger for the rest of the call). The same
    /// address again (a session refresh) changes nothing. On hold nothing is
    /// sent: the packet clock runs on and the prompt resumes where it was.
    ///
    /// While held, the caller's silence may last [`MediaConfig::hold_timeout`]
    /// instead of the inactivity timeout, and it counts afresh from `now`
    /// when the caller takes the call back.
    pub fn update_remote(&mut self, now: Instant, remote: SocketAddr, peer_receives: bool) {
        let usable = !remote.ip().is_unspecified() && remote.port() != 0;
        if usable && remote != self.config.remote {
            tracing::debug!(from = %self.config.remote, to = %remote, "the caller's media moved (new offer)");
            self.config.remote = remote;
            self.guard.set_sdp(remote.ip());
            self.guard.unlatch();
            self.remote = remote;
        }
        if self.held == peer_receives {
            tracing::debug!(held = !peer_receives, "hold changed (new offer)");
            if peer_receives {
                self.last_rx = self.last_rx.max(now);
            }
        }
        self.held = !peer_receives;
    }

    /// Whether the caller has put the call on hold ([`Self::update_remote`]).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Keep the packet deadlines just after the caller's packets arrive,
    /// moving them by whole `step`s of the driver's pacing grid
    /// ([`super::phase_lock`]): a driver that reads the socket in the call's
    /// packet turns then hears a key in the turn right after its packet, and
    /// the answer leaves in that turn, instead of up to a packet time later.
    /// For a driver whose turns come at the deadlines (the runtime's shards);
    /// a step that does not fit in a packet time leaves the deadlines alone.
    pub fn lock_phase(&mut self, step: Duration) {
        self.phase = PhaseLock::new(step, self.ptime);
    }

    /// The caller's packet arrived at `now`: how far before the next deadline,
    /// and move the deadlines if the lock says so.
    fn follow_phase(&mut self, now: Instant) {
        let next = self.deadline(self.next_frame);
        let Some(lock) = &mut self.phase else {
            return;
        };
        let slack = if next >= now {
            i64::try_from(next.duration_since(now).as_nanos()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from(now.duration_since(next).as_nanos()).unwrap_or(i64::MAX)
        };
        if let Some(shift) = lock.observe(slack) {
            self.phase_shift = shift;
        }
    }

    /// Make the move the lock asked for, between two packets: the next
    /// deadline moves, never to before `now`.
    fn move_phase(&mut self, now: Instant) {
        let Some(lock) = &self.phase else {
            return;
        };
        let next = self.deadline(self.next_frame);
        let room = next
            .checked_duration_since(now)
            .map_or(0, |d| d.as_nanos() as i64);
        let shift = lock.fit(std::mem::take(&mut self.phase_shift), room);
        if shift > 0 {
            self.start += Duration::from_nanos(shift as u64);
        } else if shift < 0 {
            self.start -= Duration::from_nanos(shift.unsigned_abs());
        }
        if shift != 0 {
            self.stats.phase_moves += 1;
        }
    }

    /// The call is confirmed (ACK): start sending, if the caller's first packet has
    /// not started it already.
    pub fn start_sending(&mut self) {
        self.sending = true;
    }

    /// Datagrams dropped before parsing: (untrusted IP, not the latched source).
    pub fn rejected(&self) -> (u64, u64) {
        (
            self.stats.rejected_untrusted,
            self.stats.rejected_not_latched,
        )
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The packet time both sides use (the offer's `a=ptime`, 20 ms without one).
    pub fn ptime(&self) -> Duration {
        self.ptime
    }

    /// The one address this call both takes RTP from and sends it to, while
    /// that holds steady ([`SourceGuard::steady`]): the address the driver may
    /// `connect` the call's socket to, so the kernel keeps the route for its
    /// sends and drops every other sender's datagrams without waking it.
    /// `None` before the caller's first valid packet, when the caller has been
    /// quiet long enough to move to another port, and when packets go
    /// somewhere else than they come from (symmetric RTP off).
    pub fn peer(&self, now: Instant) -> Option<SocketAddr> {
        self.guard.steady(now).filter(|a| *a == self.remote)
    }

    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats;
        s.lost = self.lost_before + self.seq_tracker.as_ref().map_or(0, SeqTracker::lost);
        let m = self.merger.stats();
        s.digits_rfc4733 = m.rfc4733;
        s.digits_inband = m.inband;
        s.digits_info = m.info;
        s.digits_suppressed = m.suppressed;
        s
    }

    fn deadline(&self, frame: u64) -> Instant {
        self.start + Duration::from_micros(self.ptime.as_micros() as u64 * frame)
    }

    pub fn handle_rtp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        if self.admit_source(now, source) {
            self.handle_admitted(now, source, data);
        }
    }

    /// The media-trust check alone ([`handle_rtp`](Self::handle_rtp) = this, then
    /// [`handle_admitted`](Self::handle_admitted)): false, counted, for a source
    /// the call does not take RTP from. The SRTP transform runs between the two,
    /// so a stranger's packets are dropped before any crypto is spent on them.
    pub fn admit_source(&mut self, now: Instant, source: SocketAddr) -> bool {
        match self.guard.check(now, source) {
            Ok(()) => true,
            Err(why) => {
                match why {
                    Rejected::UntrustedSource => self.stats.rejected_untrusted += 1,
                    Rejected::NotLatched => self.stats.rejected_not_latched += 1,
                }
                false
            }
        }
    }

    /// A datagram from a source [`admit_source`](Self::admit_source) accepted
    /// (unprotected already, on an SRTP call).
    pub fn handle_admitted(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let packet = match rtp::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::trace!(error = %e, "malformed RTP ignored");
                return;
            }
        };
        self.stats.packets_received += 1;
        self.last_rx = now;
        self.timed_out = false;
        self.latch(now, source);
        self.follow_phase(now);
        let h = packet.header;
        self.track_sequence(h.ssrc, h.sequence, h.marker);
        if Some(h.payload_type) == self.config.telephone_event_pt {
            // Any event packet is key activity (the recording's tail rule).
            self.tap.key_active(now);
            match self
                .rfc4733
                .handle_packet(now, h.ssrc, h.timestamp, packet.payload)
            {
                Ok(Some(digit)) => self.merger.handle_digit(now, digit, DigitSource::Rfc4733),
                Ok(None) => {}
                Err(_) => self.stats.malformed += 1,
            }
        } else if h.payload_type == self.config.audio_pt {
            self.hear_audio(now, packet.payload);
        } else if h.payload_type != 13 {
            // 13 = comfort noise (RFC 3389): fine to ignore.
            self.stats.unknown_payload_type += 1;
        }
        self.drain_digits();
    }

    /// A valid packet from a source the guard let through: latch to it, and let
    /// the stream start.
    fn latch(&mut self, now: Instant, source: SocketAddr) {
        self.sending = true;
        if !self.guard.accept(now, source) {
            return;
        }
        self.stats.latches += 1;
        if self.config.symmetric_rtp && self.remote != source {
            tracing::debug!(from = %self.remote, to = %source, "symmetric RTP: latched");
            self.remote = source;
        }
    }

    fn track_sequence(&mut self, ssrc: u32, seq: u16, marker: bool) {
        match &mut self.seq_tracker {
            Some(t) if t.ssrc == ssrc => {
                if t.update(seq, marker) {
                    self.stats.out_of_order += 1;
                }
            }
            other => {
                self.lost_before += other.as_ref().map_or(0, SeqTracker::lost);
                *other = Some(SeqTracker::new(ssrc, seq));
            }
        }
    }

    /// A digit from SIP INFO (already parsed by the SIP layer), with the
    /// key's duration if the INFO said it.
    pub fn handle_info_digit(&mut self, now: Instant, digit: char, duration: Option<Duration>) {
        if telephone_event::digit_to_event(digit).is_none() {
            self.stats.malformed += 1;
            return;
        }
        self.tap
            .key_active(now + duration.unwrap_or(INFO_DIGIT_DURATION));
        self.merger
            .handle_digit(now, digit.to_ascii_uppercase(), DigitSource::Info);
        self.drain_digits();
    }

    /// The caller's audio: kept for the recording (as it came), and decoded
    /// for the in-band detector when a key can matter.
    fn hear_audio(&mut self, now: Instant, payload: &[u8]) {
        if self.config.record {
            // Kept as G.711: the recorder decodes it, off this thread.
            self.tap.push_caller(payload);
        }
        if !self.wants_inband() {
            return;
        }
        // Decoded a frame's worth at a time into the stack, which is in cache (a
        // buffer of the call's own is not, when a shard holds thousands of calls).
        let mut pcm = [0i16; DECODE_CHUNK];
        for bytes in payload.chunks(DECODE_CHUNK) {
            let pcm = &mut pcm[..bytes.len()];
            g711::decode_to(self.config.codec, bytes, pcm);
            let merger = &mut self.merger;
            self.inband.push_each(pcm, |d| {
                merger.handle_digit(now, d.digit, DigitSource::Inband);
            });
            if self.inband.in_digit() {
                self.tap.key_active(now);
            }
        }
    }

    fn drain_digits(&mut self) {
        while let Some((digit, source)) = self.merger.poll_digit() {
            tracing::debug!(source = ?source, "digit received");
            self.events.push_back(MediaEvent::Digit { digit, source });
        }
    }

    /// Send every packet that is due, run DTMF timers and the inactivity check.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline(self.next_frame) <= now {
            let elapsed = now.saturating_duration_since(self.start);
            let due_through = (elapsed.as_micros() / self.ptime.as_micros()) as u64;
            let due = due_through + 1 - self.next_frame;
            if !self.sending || self.held {
                // Not yet, or on hold: the clock runs on, nothing goes out.
                self.next_frame += due;
                self.timestamp = self
                    .timestamp
                    .wrapping_add((self.samples_per_frame as u64 * due) as u32);
            } else if due > MAX_CATCH_UP {
                let skip = due - MAX_CATCH_UP;
                self.next_frame += skip;
                self.timestamp = self
                    .timestamp
                    .wrapping_add((self.samples_per_frame as u64 * skip) as u32);
                self.stats.skipped += skip;
            }
            while self.deadline(self.next_frame) <= now {
                let deadline = self.deadline(self.next_frame);
                if now.saturating_duration_since(deadline) > LATE_TOLERANCE {
                    self.stats.late += 1;
                }
                self.send_frame(now);
            }
            if self.phase_shift != 0 {
                self.move_phase(now);
            }
        }
        self.rfc4733.handle_timeout(now);
        self.merger.handle_timeout(now);
        self.drain_digits();
        if !self.timed_out && now.saturating_duration_since(self.last_rx) >= self.silence_limit() {
            self.timed_out = true;
            tracing::info!(
                timeout_s = self.silence_limit().as_secs(),
                held = self.held,
                "RTP inactivity timeout"
            );
            self.events.push_back(MediaEvent::RtpTimeout);
        }
    }

    fn send_frame(&mut self, now: Instant) {
        let spf = self.samples_per_frame;
        let mut marker = self.first_packet;
        let mut from_item = false;
        let audio = loop {
            match &mut self.current {
                None => match self.queue.pop_front() {
                    Some(PlayItem::Prompt(name)) => {
                        from_item = true;
                        if let Some(prompt) = self.prompts.shared(&name) {
                            self.current = Some(Playing::Prompt { prompt, pos: 0 });
                            marker = true;
                        } else {
                            self.stats.missing_prompts += 1;
                            tracing::warn!(prompt = %name, "prompt not in the cache, skipped");
                        }
                    }
                    Some(PlayItem::Silence(d)) => {
                        from_item = true;
                        let frames = (d.as_micros() as u64).div_ceil(self.ptime.as_micros() as u64);
                        if frames > 0 {
                            self.current = Some(Playing::Silence {
                                frames_left: frames,
                            });
                        }
                    }
                    None => break FrameAudio::Silence,
                },
                Some(Playing::Prompt { prompt, pos }) => {
                    from_item = true;
                    let len = prompt.encoded(self.config.codec).len();
                    let start = (*pos).min(len);
                    let end = len.min(start + spf);
                    *pos = end;
                    if end >= len {
                        let Some(Playing::Prompt { prompt, .. }) = self.current.take() else {
                            unreachable!("playing a prompt")
                        };
                        break FrameAudio::Prompt { prompt, start, end };
                    }
                    break FrameAudio::Prompt {
                        prompt: prompt.clone(),
                        start,
                        end,
                    };
                }
                Some(Playing::Silence { frames_left }) => {
                    from_item = true;
                    *frames_left -= 1;
                    if *frames_left == 0 {
                        self.current = None;
                    }
                    break FrameAudio::Silence;
                }
            }
        };
        let header = RtpHeader {
            payload_type: self.config.audio_pt,
            marker,
            sequence: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        if self.config.record {
            let mut payload = std::mem::take(&mut self.frame);
            payload.clear();
            audio.payload(self.config.codec, spf, &mut payload);
            self.record_frame(now, &payload);
            self.frame = payload;
        }
        if let Err(e) = rtp::check_payload_type(header.payload_type) {
            tracing::error!(error = %e, "cannot build RTP packet");
        } else {
            self.out_frames.push(OutFrame {
                to: self.remote,
                header,
                codec: self.config.codec,
                audio,
            });
            self.stats.packets_sent += 1;
        }
        self.first_packet = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(spf as u32);
        self.next_frame += 1;
        if from_item && self.current.is_none() && self.queue.is_empty() {
            if let Some(id) = self.play_id.take() {
                self.events.push_back(MediaEvent::PlaybackFinished { id });
            }
        }
    }

    fn record_frame(&mut self, now: Instant, payload: &[u8]) {
        let pressing = self.rfc4733.is_pressing() || self.inband.in_digit();
        if let Some(block) = self.tap.frame(now, payload, pressing) {
            self.events.push_back(MediaEvent::Record(block));
        }
    }

    /// Hand out the recording frames still held back (the call is over).
    pub fn flush_recording(&mut self) {
        for block in self.tap.flush() {
            self.events.push_back(MediaEvent::Record(block));
        }
    }

    /// Replace whatever is playing or queued with `items`, starting at the next packet.
    pub fn play(&mut self, _now: Instant, id: u64, items: Vec<PlayItem>) {
        self.current = None;
        self.queue = items.into();
        if self.queue.is_empty() {
            self.play_id = None;
            self.events.push_back(MediaEvent::PlaybackFinished { id });
        } else {
            self.play_id = Some(id);
        }
    }

    /// Barge-in: silence from the next packet; the stopped playback reports nothing.
    pub fn stop_playback(&mut self, _now: Instant) {
        self.current = None;
        self.queue.clear();
        self.play_id = None;
    }

    /// The secure segment: while true (and for the keys' tail after it),
    /// recorded frames are silence, marked suppressed.
    pub fn set_secure(&mut self, secure: bool) {
        self.tap.set_secure(secure);
    }

    /// Whether a key pressed now can matter to the call (the flow decides, per
    /// state: [`crate::flow::interp::Interpreter::reads_keys`]). While it
    /// cannot, and the call is not recorded, the audio is not decoded and the
    /// in-band detector does not run; every change starts the detector afresh
    /// (no tone half-heard before counts, none is left "being heard"). RFC 4733
    /// and SIP INFO digits are unaffected. A recorded call keeps detecting: a
    /// tone's tail extends the recording's suppression after a secure segment.
    pub fn set_keys_matter(&mut self, on: bool) {
        if on != self.keys_matter {
            self.keys_matter = on;
            self.inband = InbandDetector::new();
        }
    }

    fn wants_inband(&self) -> bool {
        (self.keys_matter || self.config.record) && self.merger.wants_inband()
    }

    /// Keys that may become a secret are waiting: suppress like
    /// `set_secure`, reaching back [`recording::LOOKBACK`].
    pub fn set_key_guard(&mut self, on: bool) {
        self.tap.set_guard(on);
    }

    /// The next packet to send: its bytes replace `buf`'s content (the driver
    /// reuses `buf`; nothing is allocated per packet), and its destination is
    /// returned.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        while let Some(f) = self.out_frames.pop() {
            buf.clear();
            // The payload type was checked when the frame was made; a frame that
            // still cannot be built is skipped, never sent half-built.
            match rtp::append(&f.header, &[], buf) {
                Ok(()) => {
                    f.audio.payload(f.codec, self.samples_per_frame, buf);
                    return Some(f.to);
                }
                Err(e) => tracing::error!(error = %e, "cannot build RTP packet"),
            }
        }
        None
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next packet deadline, DTMF timer, or inactivity deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.deadline(self.next_frame);
        for other in [self.rfc4733.poll_timeout(), self.merger.poll_timeout()]
            .into_iter()
            .flatten()
        {
            t = t.min(other);
        }
        if !self.timed_out {
            t = t.min(self.last_rx + self.silence_limit());
        }
        Some(t)
    }

    /// How long the caller may send nothing: longer while it holds the call.
    fn silence_limit(&self) -> Duration {
        if self.held {
            self.config.hold_timeout
        } else {
            self.config.inactivity_timeout
        }
    }
}

#[cfg(test)]
mod tests;
