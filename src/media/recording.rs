//! `RecordingTap`: what one call hands the recorder, one frame per sent
//! packet (the caller's audio received since the previous packet and the
//! IVR's audio of this packet), and when both must be silence. Frames go out
//! [`BLOCK_FRAMES`] at a time in a [`RecordBlock`] whose buffer is reused.
//!
//! The recording is suppressed (silence, `suppressed: true`) while the
//! call is in its secure segment or while the flow guards keys typed ahead
//! that may become part of a secret. Two rules keep a secret key's tone out
//! of the file on either side of that window:
//!
//! - **Look-back.** A key is known only after it was detected (an in-band
//!   tone needs ~40 ms, the digit merger may hold it 120 ms more, then the
//!   flow decides), so frames are handed out [`LOOKBACK`] late, and when
//!   suppression begins every frame still held back is blanked too: the
//!   first key that starts it is never heard.
//! - **Tail.** When suppression ends, it stays on until no key is pressed
//!   (no RFC 4733 press open, no tone heard) and the last key activity
//!   (the end event, the tone's end, a SIP INFO digit's duration) is
//!   [`RELEASE_GRACE`] old: a long final tone of a PIN, still sounding when
//!   a fast backend already answered, stays out.
//!
//! The delay keeps both channels aligned; [`RecordingTap::flush`] hands out
//! what is held back when the call ends. Sans-IO like the session: `now`
//! comes in.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::media::g711;

/// How far back suppression reaches when it begins (frames are handed to
/// the recorder this late).
pub const LOOKBACK: Duration = Duration::from_millis(400);

/// How long after the last key activity suppression may end.
pub const RELEASE_GRACE: Duration = Duration::from_millis(400);

/// Caller audio buffered between two frames, at most this many frames'
/// worth (a burst of late packets must not grow it without bound).
const MAX_CALLER_BACKLOG_FRAMES: usize = 10;

/// Frames per [`RecordBlock`]: a recorded call hands the recorder one
/// buffer per this many packets, not one (or two) per packet.
pub const BLOCK_FRAMES: usize = 10;
// A block's suppressed frames are bits of one u64.
const _: () = assert!(BLOCK_FRAMES <= 64);

/// Emptied block buffers kept for reuse, at most this many (a pool sized by
/// the blocks in flight at the busiest moment, never by the call count).
const POOL_MAX: usize = 1024;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Recorded audio handed to the recorder a few frames at a time: per frame,
/// `samples_per_frame` pairs of (caller, IVR) samples, interleaved, as the
/// call's G.711 bytes (decoded by the recorder, off the packet clock's
/// thread), and whether the frame was suppressed (its samples are then all
/// silence). The buffer comes from a shared pool and goes back to it once
/// written ([`RecordBlock::recycle`]), so recording allocates nothing per
/// packet.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBlock {
    codec: Codec,
    samples_per_frame: usize,
    frames: usize,
    /// Bit `i`: frame `i` is suppressed.
    suppressed: u64,
    samples: Vec<u8>,
}

impl std::fmt::Debug for RecordBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The audio itself is never printed.
        f.debug_struct("RecordBlock")
            .field("frames", &self.frames)
            .field("samples_per_frame", &self.samples_per_frame)
            .finish_non_exhaustive()
    }
}

impl RecordBlock {
    /// An empty block, its buffer from the pool when one is there.
    pub fn new(codec: Codec, samples_per_frame: usize) -> RecordBlock {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut samples = pooled.unwrap_or_default();
        samples.clear();
        samples.reserve(2 * samples_per_frame * BLOCK_FRAMES);
        RecordBlock {
            codec,
            samples_per_frame,
            frames: 0,
            suppressed: 0,
            samples,
        }
    }

    /// One block of whole frames of linear PCM, encoded: `(caller, ivr,
    /// suppressed)`, each side `samples_per_frame` long (shorter sides are
    /// padded with silence).
    pub fn from_frames(
        codec: Codec,
        samples_per_frame: usize,
        frames: &[(&[i16], &[i16], bool)],
    ) -> RecordBlock {
        assert!(
            frames.len() <= BLOCK_FRAMES,
            "at most {BLOCK_FRAMES} frames"
        );
        let mut b = RecordBlock::new(codec, samples_per_frame);
        for (caller, ivr, suppressed) in frames {
            for i in 0..samples_per_frame {
                for side in [caller, ivr] {
                    let s = side.get(i).copied().unwrap_or(0);
                    b.samples.push(g711::encode_sample(codec, s));
                }
            }
            b.end_frame(*suppressed);
        }
        b
    }

    fn end_frame(&mut self, suppressed: bool) {
        if suppressed {
            self.suppressed |= 1 << self.frames;
        }
        self.frames += 1;
    }

    fn is_full(&self) -> bool {
        self.frames == BLOCK_FRAMES
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Its frames in order: the interleaved (caller, IVR) G.711 bytes and
    /// whether the frame is suppressed.
    pub fn frames(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        self.samples
            .chunks(2 * self.samples_per_frame.max(1))
            .take(self.frames)
            .enumerate()
            .map(|(i, f)| (f, self.suppressed & (1 << i) != 0))
    }

    /// Samples per side it holds (frames × samples per frame).
    pub fn samples(&self) -> usize {
        self.frames * self.samples_per_frame
    }

    /// The codec of its bytes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Give the buffer back for another block to use.
    pub fn recycle(self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(self.samples);
        }
    }
}

#[derive(Debug)]
pub struct RecordingTap {
    codec: Codec,
    samples_per_frame: usize,
    lookback_frames: usize,
    /// The caller's G.711 bytes received since the last frame.
    caller: VecDeque<u8>,
    /// The frames held back for the look-back, oldest first: each is
    /// `samples_per_frame` interleaved (caller, IVR) pairs of G.711 bytes.
    held: VecDeque<u8>,
    held_suppressed: VecDeque<bool>,
    /// Where a frame is put together before it joins `held`.
    scratch: Vec<u8>,
    /// The block being filled with frames that left the look-back.
    block: Option<RecordBlock>,
    secure: bool,
    guard: bool,
    /// Suppression ended on request but waits for the keys' tail.
    releasing: bool,
    /// The latest instant a key was heard active.
    last_key: Option<Instant>,
}

impl RecordingTap {
    pub fn new(codec: Codec, samples_per_frame: usize, ptime: Duration) -> Self {
        let lookback_frames = LOOKBACK.as_micros().div_ceil(ptime.as_micros().max(1)) as usize;
        RecordingTap {
            codec,
            samples_per_frame,
            lookback_frames,
            caller: VecDeque::new(),
            held: VecDeque::new(),
            held_suppressed: VecDeque::new(),
            scratch: Vec::new(),
            block: None,
            secure: false,
            guard: false,
            releasing: false,
            last_key: None,
        }
    }

    /// Caller audio (the payload's G.711 bytes, in the call's codec) as it
    /// arrives.
    pub fn push_caller(&mut self, payload: &[u8]) {
        self.caller.extend(payload); // by reference: copied a slice at a time
        let cap = self.samples_per_frame * MAX_CALLER_BACKLOG_FRAMES;
        if self.caller.len() > cap {
            let excess = self.caller.len() - cap;
            self.caller.drain(..excess);
        }
    }

    /// A key is active until `until` (now, for a press or tone being heard;
    /// later, for a SIP INFO digit with a duration).
    pub fn key_active(&mut self, until: Instant) {
        self.last_key = Some(self.last_key.map_or(until, |t| t.max(until)));
    }

    /// The secure segment began or ended.
    pub fn set_secure(&mut self, on: bool) {
        self.switch(on, self.guard);
    }

    /// Keys that may become a secret are (no longer) waiting.
    pub fn set_guard(&mut self, on: bool) {
        self.switch(self.secure, on);
    }

    fn switch(&mut self, secure: bool, guard: bool) {
        let was = self.secure || self.guard;
        self.secure = secure;
        self.guard = guard;
        let now_on = secure || guard;
        if now_on && !was {
            // Look back: what is still held may hold the first key's start.
            let silence = self.codec.silence_byte();
            self.held.iter_mut().for_each(|s| *s = silence);
            self.held_suppressed.iter_mut().for_each(|s| *s = true);
            self.releasing = false;
        } else if was && !now_on {
            self.releasing = true;
        }
        // Audio buffered on either side of a switch belongs to the other mode.
        self.caller.clear();
    }

    /// Whether frames are silenced now. `pressing`: a key is being pressed
    /// (an RFC 4733 press is open or a tone is heard).
    pub fn is_suppressed(&mut self, now: Instant, pressing: bool) -> bool {
        if self.secure || self.guard {
            return true;
        }
        if self.releasing {
            if pressing {
                self.key_active(now);
            }
            let quiet = !pressing && self.last_key.is_none_or(|t| now >= t + RELEASE_GRACE);
            if quiet {
                self.releasing = false;
            }
        }
        self.releasing
    }

    /// The frame of one sent packet (`ivr` is its payload, padded or cut to
    /// the frame). The frame [`LOOKBACK`] older leaves the look-back; once
    /// [`BLOCK_FRAMES`] have left, they are returned as one block.
    pub fn frame(&mut self, now: Instant, ivr: &[u8], pressing: bool) -> Option<RecordBlock> {
        let spf = self.samples_per_frame;
        let suppressed = self.is_suppressed(now, pressing);
        // The frame is built in a buffer of the tap's own, then copied whole.
        let frame = &mut self.scratch;
        frame.clear();
        frame.resize(2 * spf, self.codec.silence_byte());
        let take = self.caller.len().min(spf);
        let caller = self.caller.drain(..take);
        if suppressed {
            drop(caller);
        } else {
            for (pair, c) in frame.chunks_exact_mut(2).zip(caller) {
                pair[0] = c;
            }
            for (pair, &v) in frame.chunks_exact_mut(2).zip(ivr) {
                pair[1] = v;
            }
        }
        self.held.extend(frame.iter()); // by reference: copied a slice at a time
        self.held_suppressed.push_back(suppressed);
        if self.held_suppressed.len() <= self.lookback_frames {
            return None;
        }
        self.release_oldest();
        if self.block.as_ref().is_some_and(RecordBlock::is_full) {
            self.block.take()
        } else {
            None
        }
    }

    /// Move the oldest held frame into the block being filled.
    fn release_oldest(&mut self) {
        let Some(suppressed) = self.held_suppressed.pop_front() else {
            return;
        };
        let (codec, spf) = (self.codec, self.samples_per_frame);
        let n = 2 * spf;
        let block = self
            .block
            .get_or_insert_with(|| RecordBlock::new(codec, spf));
        let (a, b) = self.held.as_slices();
        let from_a = a.len().min(n);
        block.samples.extend_from_slice(&a[..from_a]);
        block.samples.extend_from_slice(&b[..n - from_a]);
        self.held.drain(..n);
        block.end_frame(suppressed);
    }

    /// Everything held back (the call is over), in blocks.
    pub fn flush(&mut self) -> Vec<RecordBlock> {
        let mut out = Vec::new();
        while !self.held_suppressed.is_empty() {
            self.release_oldest();
            if self.block.as_ref().is_some_and(RecordBlock::is_full) {
                out.extend(self.block.take());
            }
        }
        out.extend(self.block.take().filter(|b| !b.is_empty()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Frames of constant caller byte 0x11 and IVR byte 0x22 (silence is 0xFF), one per 20 ms from
    /// `t0`: whether each frame that came out was suppressed.
    fn run(tap: &mut RecordingTap, t0: Instant, from: u32, to: u32, pressing: bool) -> Vec<bool> {
        let mut out = Vec::new();
        for n in from..to {
            tap.push_caller(&[0x11; 160]);
            if let Some(b) = tap.frame(t0 + MS20 * n, &[0x22; 160], pressing) {
                out.extend(check(&b));
            }
        }
        out
    }

    fn check(b: &RecordBlock) -> Vec<bool> {
        assert_eq!(b.frames().count(), BLOCK_FRAMES);
        b.frames()
            .map(|(f, suppressed)| {
                assert_eq!(f.len(), 320);
                let want: &[u8] = if suppressed {
                    &[0xFF, 0xFF]
                } else {
                    &[0x11, 0x22]
                };
                assert!(f.chunks(2).all(|p| p == want), "{suppressed}");
                suppressed
            })
            .collect()
    }

    #[test]
    fn suppression_reaches_back_and_waits_for_the_tail() {
        let t0 = Instant::now();
        let mut tap = RecordingTap::new(Codec::Pcmu, 160, MS20);
        let held = LOOKBACK.as_millis() as usize / 20;
        // 1 s of clear audio: the first frames come out `held` frames late,
        // in whole blocks.
        let clear = run(&mut tap, t0, 0, 50, false);
        assert_eq!(clear.len(), (50 - held) / BLOCK_FRAMES * BLOCK_FRAMES);
        // The guard goes on at 1 s: the 400 ms still held are blanked.
        tap.set_guard(true);
        let during = run(&mut tap, t0, 50, 100, false);
        assert!(during.iter().all(|s| *s), "{during:?}");
        // Off at 2 s while a key is still pressed until 2.5 s.
        tap.set_guard(false);
        let mut after = run(&mut tap, t0, 100, 125, true);
        after.extend(run(&mut tap, t0, 125, 200, false));
        let flushed = tap.flush();
        let (last, whole) = flushed.split_last().unwrap();
        after.extend(whole.iter().flat_map(check));
        after.extend(last.frames().map(|(_, s)| s));
        // Frames 30..=49 were blanked by the look-back; the release comes
        // RELEASE_GRACE after the last pressing frame (2.48 s).
        let all: Vec<bool> = clear.into_iter().chain(during).chain(after).collect();
        assert_eq!(all.len(), 200);
        let first = all.iter().position(|s| *s).unwrap();
        let last = all.iter().rposition(|s| *s).unwrap();
        assert_eq!(first, 50 - held, "look-back start");
        assert_eq!(
            last,
            124 + RELEASE_GRACE.as_millis() as usize / 20 - 1,
            "tail end"
        );
        assert!(all[first..=last].iter().all(|s| *s));
    }

    #[test]
    fn an_info_digit_duration_holds_the_release() {
        let t0 = Instant::now();
        let mut tap = RecordingTap::new(Codec::Pcmu, 160, MS20);
        tap.set_secure(true);
        tap.key_active(t0 + Duration::from_millis(600));
        tap.set_secure(false);
        assert!(tap.is_suppressed(t0 + Duration::from_millis(900), false));
        assert!(!tap.is_suppressed(t0 + Duration::from_millis(1000), false));
        // Once released it stays released.
        assert!(!tap.is_suppressed(t0 + Duration::from_millis(1020), true));
    }
}
