//! RFC 4733 telephone-events (DTMF digits carried in RTP).
//!
//! [`TelephoneEvent`] encodes and decodes the 4-byte payload of §2.3. [`Receiver`]
//! turns a stream of event packets into exactly one digit per key press, reported on
//! the first packet seen for the press (low latency), never again for the same press.
//! It does not trust the marker bit or sequence numbers (sipp's stock pcaps repeat
//! them and run durations at twice real time); a press is identified by SSRC + RTP
//! timestamp + event code. Quirks it handles: the end packet repeated three times; end
//! packets lost (the press is forced to end after [`ReceiverConfig::force_end_after`]
//! without packets, or when the same SSRC starts another event); duration wrap past
//! 0xFFFF and §2.5.1.3 long-event segments (a new timestamp that continues a long
//! press is not a new digit); and a byte-identical replay of a press that has already
//! ended (a fresh start: duration back at or below the press's first duration, or a
//! restart after [`ReceiverConfig::reorder_guard`]) is a new press. Dedupe state
//! expires after [`ReceiverConfig::expiry`]. [`Sender`] builds the packets of one key
//! press for the test caller. Events other than the 16 DTMF keys are ignored; RFC 2198
//! redundancy is not supported.

use std::time::{Duration, Instant};

use crate::media::rtp::{self, RtpHeader};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelephoneEventError {
    #[error("telephone-event payload of {0} bytes, need 4")]
    TooShort(usize),
    #[error("not a DTMF key")]
    NotADigit,
    #[error("event duration of {0} samples exceeds one segment")]
    TooLong(u64),
    #[error("packetisation interval must be 1..=200 ms")]
    Ptime,
}

const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// RFC 4733 §3.2 event code → key.
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// Key → RFC 4733 §3.2 event code (`a`–`d` accepted in either case).
pub fn digit_to_event(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&c| c == d).map(|i| i as u8)
}

/// The payload of one telephone-event packet (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in −dBm0 (0..=63).
    pub volume: u8,
    /// Duration in timestamp units (samples at 8 kHz) since the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Decode a payload; bytes past the first four are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, TelephoneEventError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3f,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(TelephoneEventError::TooShort(payload.len())),
        }
    }

    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// Timing knobs of the [`Receiver`].
#[derive(Clone, Copy, Debug)]
pub struct ReceiverConfig {
    /// A press with no packets for this long is over (its end packets were lost).
    pub force_end_after: Duration,
    /// Dedupe state of a press is forgotten this long after its last packet.
    pub expiry: Duration,
    /// Packets of an ended press arriving later than this after its end, or a restart
    /// this long after the press began, belong to a new press (not reordering).
    pub reorder_guard: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            force_end_after: Duration::from_millis(500),
            expiry: Duration::from_secs(4),
            reorder_guard: Duration::from_millis(80),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    ByPacket,
    Forced,
}

#[derive(Debug)]
struct Press {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    first_seen: Instant,
    last_seen: Instant,
    ended: Option<(Ended, Instant)>,
    /// Smallest duration of a non-end packet of this press (its start).
    min_duration: u16,
    last_raw: u16,
    wraps: u32,
}

impl Press {
    fn new(now: Instant, ssrc: u32, timestamp: u32, ev: &TelephoneEvent) -> Self {
        Press {
            ssrc,
            timestamp,
            event: ev.event,
            first_seen: now,
            last_seen: now,
            ended: ev.end.then_some((Ended::ByPacket, now)),
            min_duration: if ev.end { 0 } else { ev.duration },
            last_raw: ev.duration,
            wraps: 0,
        }
    }

    fn extended_duration(&self) -> u64 {
        u64::from(self.wraps) * 0x1_0000 + u64::from(self.last_raw)
    }

    fn update_duration(&mut self, raw: u16) {
        if raw < self.last_raw && self.last_raw - raw > 0x8000 {
            self.wraps += 1;
            self.last_raw = raw;
        } else if raw > self.last_raw || self.last_raw - raw > 0x8000 {
            self.last_raw = raw;
        }
    }
}

/// Counters of the [`Receiver`] (safe to log: no digit values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub packets: u64,
    pub presses: u64,
    pub forced_ends: u64,
    pub stale: u64,
    pub non_dtmf_events: u64,
}

/// Upper bound on tracked presses (a flood of random timestamps cannot grow memory).
const MAX_PRESSES: usize = 64;

/// RFC 4733 receiver: one digit per key press. See the module docs.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    presses: Vec<Press>,
    stats: ReceiverStats,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new(ReceiverConfig::default())
    }
}

impl Receiver {
    pub fn new(config: ReceiverConfig) -> Self {
        Receiver {
            config,
            presses: Vec::new(),
            stats: ReceiverStats::default(),
        }
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// True while some press has started and not yet ended.
    pub fn is_pressing(&self) -> bool {
        self.presses.iter().any(|p| p.ended.is_none())
    }

    /// Feed the payload of one telephone-event packet. Returns the key when this packet
    /// starts a new press.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<char>, TelephoneEventError> {
        let ev = TelephoneEvent::parse(payload)?;
        self.stats.packets += 1;
        self.expire(now);
        let Some(digit) = event_to_digit(ev.event) else {
            self.stats.non_dtmf_events += 1;
            return Ok(None);
        };
        let guard = self.config.reorder_guard;
        if let Some(i) = self
            .presses
            .iter()
            .position(|p| p.ssrc == ssrc && p.timestamp == timestamp && p.event == ev.event)
        {
            let p = &mut self.presses[i];
            let new_press = match p.ended {
                None => {
                    // A restart of the same press while the old one never ended (its
                    // end packets were lost): the duration is back at the beginning,
                    // long enough after the start that it is not reordering.
                    !ev.end
                        && p.wraps == 0
                        && ev.duration <= p.min_duration
                        && ev.duration < p.last_raw
                        && p.last_raw - ev.duration <= 0x8000 // not a wrap
                        && now.saturating_duration_since(p.first_seen) >= guard
                }
                Some((_, _)) if ev.end => false,
                Some((how, at)) => {
                    let continues = how == Ended::Forced && ev.duration > p.last_raw;
                    ev.duration <= p.min_duration
                        || (!continues && now.saturating_duration_since(at) >= guard)
                }
            };
            if new_press {
                *p = Press::new(now, ssrc, timestamp, &ev);
                self.stats.presses += 1;
                self.end_others(now, ssrc, i);
                return Ok(Some(digit));
            }
            let p = &mut self.presses[i];
            match p.ended {
                Some((Ended::ByPacket, _)) => {
                    p.last_seen = now;
                    if !ev.end {
                        self.stats.stale += 1;
                    }
                }
                Some((Ended::Forced, _)) if !ev.end && ev.duration <= p.last_raw => {
                    self.stats.stale += 1;
                }
                _ => {
                    // Still pressing, or a forced end that turns out to continue (or to
                    // end properly now).
                    p.last_seen = now;
                    p.update_duration(ev.duration);
                    if !ev.end && p.wraps == 0 {
                        p.min_duration = p.min_duration.min(ev.duration);
                    }
                    p.ended = ev.end.then_some((Ended::ByPacket, now));
                }
            }
            return Ok(None);
        }

        // First packet with this timestamp. A long event continued in a new segment
        // (RFC 4733 §2.5.1.3: next timestamp = previous + previous duration) is the
        // same press.
        let segment = self.presses.iter().position(|p| {
            let gap = u64::from(timestamp.wrapping_sub(p.timestamp));
            let dur = p.extended_duration();
            p.ssrc == ssrc
                && p.event == ev.event
                && dur >= 0x8000
                && gap + 1600 >= dur
                && gap <= dur + 1600
                && p.ended
                    .is_none_or(|(_, at)| now.saturating_duration_since(at) < guard)
        });
        if let Some(i) = segment {
            self.presses[i].ended = Some((Ended::ByPacket, now));
            let mut p = Press::new(now, ssrc, timestamp, &ev);
            p.min_duration = 0;
            self.insert(p);
            return Ok(None);
        }
        let idx = self.insert(Press::new(now, ssrc, timestamp, &ev));
        self.stats.presses += 1;
        self.end_others(now, ssrc, idx);
        Ok(Some(digit))
    }

    fn insert(&mut self, p: Press) -> usize {
        if self.presses.len() >= MAX_PRESSES {
            if let Some(oldest) = self
                .presses
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(i, _)| i)
            {
                self.presses.swap_remove(oldest);
            }
        }
        self.presses.push(p);
        self.presses.len() - 1
    }

    /// A new press from an SSRC ends whatever that SSRC was pressing before.
    fn end_others(&mut self, now: Instant, ssrc: u32, keep: usize) {
        for (i, p) in self.presses.iter_mut().enumerate() {
            if i != keep && p.ssrc == ssrc && p.ended.is_none() {
                p.ended = Some((Ended::Forced, now));
                self.stats.forced_ends += 1;
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let expiry = self.config.expiry;
        self.presses
            .retain(|p| now.saturating_duration_since(p.last_seen) < expiry);
    }

    /// Force-end presses whose packets stopped; forget old state.
    pub fn handle_timeout(&mut self, now: Instant) {
        let limit = self.config.force_end_after;
        for p in &mut self.presses {
            if p.ended.is_none() && now.saturating_duration_since(p.last_seen) >= limit {
                p.ended = Some((Ended::Forced, now));
                self.stats.forced_ends += 1;
            }
        }
        self.expire(now);
    }

    /// The next forced end, if a press is open.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.presses
            .iter()
            .filter(|p| p.ended.is_none())
            .map(|p| p.last_seen + self.config.force_end_after)
            .min()
    }
}

/// One packet of a key press produced by [`Sender`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPacket {
    /// When to send it, relative to the start of the press.
    pub offset: Duration,
    pub header: RtpHeader,
    pub payload: [u8; 4],
}

impl EventPacket {
    /// The complete RTP datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        // The payload type was range-checked when the sender was built.
        rtp::build(&self.header, &self.payload).unwrap_or_default()
    }
}

/// Builds the packets of one key press (for the `dial` test caller).
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    payload_type: u8,
    ptime_ms: u32,
    /// Reported power in −dBm0.
    pub volume: u8,
}

impl Sender {
    pub fn new(payload_type: u8, ptime_ms: u32) -> Result<Self, TelephoneEventError> {
        if !(1..=200).contains(&ptime_ms) || payload_type > 127 {
            return Err(TelephoneEventError::Ptime);
        }
        Ok(Sender {
            payload_type,
            ptime_ms,
            volume: 10,
        })
    }

    /// The packets of one press lasting `duration`: an update every ptime (the first
    /// with the marker bit), each carrying the duration so far, then the end packet
    /// three times at ptime intervals (RFC 4733 §2.5.1.4). Sequence numbers increase
    /// by one per packet; all packets carry the press's timestamp.
    pub fn press(
        &self,
        digit: char,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        duration: Duration,
    ) -> Result<Vec<EventPacket>, TelephoneEventError> {
        let event = digit_to_event(digit).ok_or(TelephoneEventError::NotADigit)?;
        let step = u64::from(self.ptime_ms) * 8;
        let total = (duration.as_micros() as u64 * 8 / 1000).max(step);
        if total > 0xFFFF {
            return Err(TelephoneEventError::TooLong(total));
        }
        let updates = total.div_ceil(step);
        let mut out = Vec::new();
        let mut seq = sequence;
        let mut push = |k: u64, end: bool, dur: u64, seq: &mut u16| {
            out.push(EventPacket {
                offset: Duration::from_millis(k * u64::from(self.ptime_ms)),
                header: RtpHeader {
                    payload_type: self.payload_type,
                    marker: k == 0,
                    sequence: *seq,
                    timestamp,
                    ssrc,
                },
                payload: TelephoneEvent {
                    event,
                    end,
                    volume: self.volume,
                    duration: dur as u16,
                }
                .to_bytes(),
            });
            *seq = seq.wrapping_add(1);
        };
        for k in 0..updates {
            push(k, false, ((k + 1) * step).min(total), &mut seq);
        }
        for k in updates..updates + 3 {
            push(k, true, total, &mut seq);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
