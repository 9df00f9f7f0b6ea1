//! `DigitMerger`: one digit stream from RFC 4733, in-band and SIP INFO DTMF.
//!
//! In a single mode (`rfc4733`, `inband`, `info`) only that source passes. In `auto`
//! all three are accepted with no double count when a peer sends the same key press
//! two ways (typically the RFC 4733 event *and* the audible tone):
//! - out-of-band digits (RFC 4733, INFO) pass at once;
//! - an in-band digit is held for [`INBAND_HOLD`]; an out-of-band copy of the same
//!   key arriving meanwhile replaces it;
//! - once a call has delivered any out-of-band digit, in-band detection is suppressed
//!   for the rest of the call (the peer evidently signals out of band, and the tones it
//!   may also leak into the audio must not count again);
//! - a digit equal to one another source delivered within [`CROSS_SOURCE_WINDOW`] is a
//!   duplicate (e.g. INFO and RFC 4733 for one press, or the RFC 4733 event arriving
//!   after the held tone was already released).
//!
//! Same-source repeats are never merged: "11" is two presses. It never logs digit
//! values.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::{DigitSource, DtmfMode};

/// How long an in-band digit waits for an out-of-band copy in `auto` mode.
pub const INBAND_HOLD: Duration = Duration::from_millis(120);
/// Two sources reporting the same key within this window are one press.
pub const CROSS_SOURCE_WINDOW: Duration = Duration::from_millis(400);

/// Per-source counters (no digit values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergerStats {
    pub rfc4733: u64,
    pub inband: u64,
    pub info: u64,
    /// Digits dropped as duplicates or from a source the mode ignores.
    pub suppressed: u64,
}

#[derive(Debug)]
pub struct DigitMerger {
    mode: DtmfMode,
    out_of_band_seen: bool,
    held: Option<(char, Instant)>,
    /// Recently delivered digits: (key, source, when).
    recent: VecDeque<(char, DigitSource, Instant)>,
    ready: VecDeque<(char, DigitSource)>,
    stats: MergerStats,
}

impl DigitMerger {
    pub fn new(mode: DtmfMode) -> Self {
        DigitMerger {
            mode,
            out_of_band_seen: false,
            held: None,
            recent: VecDeque::new(),
            ready: VecDeque::new(),
            stats: MergerStats::default(),
        }
    }

    pub fn mode(&self) -> DtmfMode {
        self.mode
    }

    pub fn stats(&self) -> MergerStats {
        self.stats
    }

    /// Whether in-band detection can still produce a digit (lets the session skip the
    /// detector's cost when it cannot).
    pub fn wants_inband(&self) -> bool {
        match self.mode {
            DtmfMode::Inband => true,
            DtmfMode::Auto => !self.out_of_band_seen,
            DtmfMode::Rfc4733 | DtmfMode::Info => false,
        }
    }

    pub fn handle_digit(&mut self, now: Instant, digit: char, source: DigitSource) {
        self.handle_timeout(now);
        let accepted = match (self.mode, source) {
            (DtmfMode::Rfc4733, DigitSource::Rfc4733)
            | (DtmfMode::Inband, DigitSource::Inband)
            | (DtmfMode::Info, DigitSource::Info) => true,
            (DtmfMode::Auto, _) => true,
            _ => false,
        };
        if !accepted {
            self.stats.suppressed += 1;
            return;
        }
        if self.mode != DtmfMode::Auto {
            self.deliver(now, digit, source);
            return;
        }
        match source {
            DigitSource::Inband => {
                if self.out_of_band_seen || self.is_cross_duplicate(now, digit, source) {
                    self.stats.suppressed += 1;
                    return;
                }
                if let Some((d, _)) = self.held.take() {
                    // a second tone while one is held: release the first now
                    self.deliver(now, d, DigitSource::Inband);
                }
                self.held = Some((digit, now + INBAND_HOLD));
            }
            DigitSource::Rfc4733 | DigitSource::Info => {
                self.out_of_band_seen = true;
                if let Some((d, _)) = self.held {
                    if d == digit {
                        self.held = None;
                        self.stats.suppressed += 1;
                    }
                }
                if self.is_cross_duplicate(now, digit, source) {
                    self.stats.suppressed += 1;
                    return;
                }
                if let Some((d, _)) = self.held.take() {
                    // a different key was held: it came first
                    self.deliver(now, d, DigitSource::Inband);
                }
                self.deliver(now, digit, source);
            }
        }
    }

    fn is_cross_duplicate(&self, now: Instant, digit: char, source: DigitSource) -> bool {
        self.recent.iter().any(|&(d, s, at)| {
            d == digit && s != source && now.saturating_duration_since(at) < CROSS_SOURCE_WINDOW
        })
    }

    fn deliver(&mut self, now: Instant, digit: char, source: DigitSource) {
        match source {
            DigitSource::Rfc4733 => self.stats.rfc4733 += 1,
            DigitSource::Inband => self.stats.inband += 1,
            DigitSource::Info => self.stats.info += 1,
        }
        self.recent.push_back((digit, source, now));
        self.ready.push_back((digit, source));
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((d, due)) = self.held {
            if now >= due {
                self.held = None;
                self.deliver(due, d, DigitSource::Inband);
            }
        }
        while let Some(&(_, _, at)) = self.recent.front() {
            if now.saturating_duration_since(at) >= CROSS_SOURCE_WINDOW {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.map(|(_, due)| due)
    }

    #[must_use]
    pub fn poll_digit(&mut self) -> Option<(char, DigitSource)> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DigitSource::{Inband as B, Info as I, Rfc4733 as R};

    /// Feeds (ms, digit, source) and drains, advancing time through every deadline.
    fn run(mode: DtmfMode, input: &[(u64, char, DigitSource)]) -> String {
        let t0 = Instant::now();
        let mut m = DigitMerger::new(mode);
        let mut out = String::new();
        let mut drain = |m: &mut DigitMerger| {
            while let Some((d, _)) = m.poll_digit() {
                out.push(d);
            }
        };
        for &(ms, d, s) in input {
            let at = t0 + Duration::from_millis(ms);
            while let Some(due) = m.poll_timeout().filter(|&due| due <= at) {
                m.handle_timeout(due);
                drain(&mut m);
            }
            m.handle_digit(at, d, s);
            drain(&mut m);
        }
        m.handle_timeout(t0 + Duration::from_secs(3600));
        drain(&mut m);
        out
    }

    #[test]
    fn merge_table() {
        let cases: &[(DtmfMode, &[(u64, char, DigitSource)], &str)] = &[
            // single modes pass only their own source
            (
                DtmfMode::Rfc4733,
                &[(0, '1', R), (10, '2', B), (20, '3', I)],
                "1",
            ),
            (
                DtmfMode::Inband,
                &[(0, '1', R), (10, '2', B), (20, '3', I)],
                "2",
            ),
            (
                DtmfMode::Info,
                &[(0, '1', R), (10, '2', B), (20, '3', I)],
                "3",
            ),
            (DtmfMode::Inband, &[(0, '5', B), (100, '5', B)], "55"),
            // auto: each source alone
            (
                DtmfMode::Auto,
                &[(0, '1', R), (200, '1', R), (400, '#', R)],
                "11#",
            ),
            (
                DtmfMode::Auto,
                &[(0, '1', B), (200, '1', B), (400, '#', B)],
                "11#",
            ),
            (DtmfMode::Auto, &[(0, '1', I), (100, '1', I)], "11"),
            // auto: RFC 4733 and the audible tone for one press
            (DtmfMode::Auto, &[(0, '7', R), (40, '7', B)], "7"),
            (DtmfMode::Auto, &[(0, '7', B), (30, '7', R)], "7"),
            (DtmfMode::Auto, &[(0, '7', B), (300, '7', R)], "7"),
            // after RFC 4733 was seen, in-band stays off for the call
            (
                DtmfMode::Auto,
                &[(0, '7', R), (5000, '8', B), (6000, '9', R)],
                "79",
            ),
            // different keys from two sources are both real
            (DtmfMode::Auto, &[(0, '1', B), (50, '2', R)], "12"),
            // INFO and RFC 4733 for one press
            (DtmfMode::Auto, &[(0, '4', R), (150, '4', I)], "4"),
            (
                DtmfMode::Auto,
                &[(0, '4', I), (90, '4', R), (1000, '4', I)],
                "44",
            ),
            // two held tones in a row are released in order
            (DtmfMode::Auto, &[(0, '1', B), (60, '2', B)], "12"),
        ];
        for (mode, input, want) in cases {
            assert_eq!(run(*mode, input), *want, "{mode:?} {input:?}");
        }
    }

    #[test]
    fn inband_hold_is_released_on_time_and_counted() {
        let t0 = Instant::now();
        let mut m = DigitMerger::new(DtmfMode::Auto);
        m.handle_digit(t0, '3', B);
        assert_eq!(m.poll_digit(), None);
        assert_eq!(m.poll_timeout(), Some(t0 + INBAND_HOLD));
        m.handle_timeout(t0 + INBAND_HOLD - Duration::from_millis(1));
        assert_eq!(m.poll_digit(), None);
        m.handle_timeout(t0 + INBAND_HOLD);
        assert_eq!(m.poll_digit(), Some(('3', B)));
        assert!(m.wants_inband());
        m.handle_digit(t0 + Duration::from_secs(1), '3', R);
        assert!(!m.wants_inband());
        m.handle_digit(t0 + Duration::from_secs(2), '3', B);
        assert_eq!(
            m.stats(),
            MergerStats {
                rfc4733: 1,
                inband: 1,
                info: 0,
                suppressed: 1
            }
        );
    }
}
