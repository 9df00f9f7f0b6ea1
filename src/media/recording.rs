//! `RecordingTap`: what one call hands the recorder, one frame per sent
//! packet (the caller's audio received since the previous packet and the
//! IVR's audio of this packet), and when both must be silence.
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
use std::time::{Duration, Instant};

/// How far back suppression reaches when it begins (frames are handed to
/// the recorder this late).
pub const LOOKBACK: Duration = Duration::from_millis(400);

/// How long after the last key activity suppression may end.
pub const RELEASE_GRACE: Duration = Duration::from_millis(400);

/// Caller audio buffered between two frames, at most this many frames'
/// worth (a burst of late packets must not grow it without bound).
const MAX_CALLER_BACKLOG_FRAMES: usize = 10;

/// One frame for the recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFrame {
    pub caller: Vec<i16>,
    pub ivr: Vec<i16>,
    pub suppressed: bool,
}

#[derive(Debug)]
pub struct RecordingTap {
    samples_per_frame: usize,
    lookback_frames: usize,
    caller: VecDeque<i16>,
    held: VecDeque<RecordFrame>,
    secure: bool,
    guard: bool,
    /// Suppression ended on request but waits for the keys' tail.
    releasing: bool,
    /// The latest instant a key was heard active.
    last_key: Option<Instant>,
}

impl RecordingTap {
    pub fn new(samples_per_frame: usize, ptime: Duration) -> Self {
        let lookback_frames = LOOKBACK.as_micros().div_ceil(ptime.as_micros().max(1)) as usize;
        RecordingTap {
            samples_per_frame,
            lookback_frames,
            caller: VecDeque::new(),
            held: VecDeque::new(),
            secure: false,
            guard: false,
            releasing: false,
            last_key: None,
        }
    }

    /// Caller audio (decoded PCM) as it arrives.
    pub fn push_caller(&mut self, pcm: &[i16]) {
        self.caller.extend(pcm.iter().copied());
        let cap = self.samples_per_frame * MAX_CALLER_BACKLOG_FRAMES;
        while self.caller.len() > cap {
            self.caller.pop_front();
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
            for f in &mut self.held {
                blank(f);
            }
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

    /// The frame of one sent packet (`ivr` is its decoded audio); returns
    /// the frame [`LOOKBACK`] older, once there is one.
    pub fn frame(&mut self, now: Instant, ivr: Vec<i16>, pressing: bool) -> Option<RecordFrame> {
        let spf = self.samples_per_frame;
        let take = self.caller.len().min(spf);
        let mut caller: Vec<i16> = self.caller.drain(..take).collect();
        caller.resize(spf, 0);
        let mut f = RecordFrame {
            caller,
            ivr,
            suppressed: false,
        };
        if self.is_suppressed(now, pressing) {
            blank(&mut f);
        }
        self.held.push_back(f);
        if self.held.len() > self.lookback_frames {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// Everything held back (the call is over).
    pub fn flush(&mut self) -> Vec<RecordFrame> {
        self.held.drain(..).collect()
    }
}

fn blank(f: &mut RecordFrame) {
    f.caller.iter_mut().for_each(|s| *s = 0);
    f.ivr.iter_mut().for_each(|s| *s = 0);
    f.suppressed = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Frames of constant caller level `n`, one per 20 ms from `t0`.
    fn run(tap: &mut RecordingTap, t0: Instant, from: u32, to: u32, pressing: bool) -> Vec<bool> {
        let mut out = Vec::new();
        for n in from..to {
            tap.push_caller(&[1; 160]);
            if let Some(f) = tap.frame(t0 + MS20 * n, vec![2; 160], pressing) {
                assert!(f.suppressed || (f.caller[0] == 1 && f.ivr[0] == 2));
                assert!(!f.suppressed || f.caller.iter().chain(&f.ivr).all(|s| *s == 0));
                out.push(f.suppressed);
            }
        }
        out
    }

    #[test]
    fn suppression_reaches_back_and_waits_for_the_tail() {
        let t0 = Instant::now();
        let mut tap = RecordingTap::new(160, MS20);
        let held = LOOKBACK.as_millis() as usize / 20;
        // 1 s of clear audio: the first frames come out `held` frames late.
        let clear = run(&mut tap, t0, 0, 50, false);
        assert_eq!(clear.len(), 50 - held);
        // The guard goes on at 1 s: the 400 ms still held are blanked.
        tap.set_guard(true);
        let during = run(&mut tap, t0, 50, 100, false);
        assert!(during.iter().all(|s| *s), "{during:?}");
        // Off at 2 s while a key is still pressed until 2.5 s.
        tap.set_guard(false);
        let mut after = run(&mut tap, t0, 100, 125, true);
        after.extend(run(&mut tap, t0, 125, 200, false));
        after.extend(tap.flush().iter().map(|f| f.suppressed));
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
        let mut tap = RecordingTap::new(160, MS20);
        tap.set_secure(true);
        tap.key_active(t0 + Duration::from_millis(600));
        tap.set_secure(false);
        assert!(tap.is_suppressed(t0 + Duration::from_millis(900), false));
        assert!(!tap.is_suppressed(t0 + Duration::from_millis(1000), false));
        // Once released it stays released.
        assert!(!tap.is_suppressed(t0 + Duration::from_millis(1020), true));
    }
}
