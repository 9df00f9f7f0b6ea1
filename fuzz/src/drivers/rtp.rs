//! `rtp`: the RTP and RFC 4733 parsers on every datagram, and one RFC 4733
//! `Receiver` on the whole sequence in virtual time.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use sspr_ivr::media::rtp::{self, RtpHeader};
use sspr_ivr::media::telephone_event::{self, Receiver, Sender, TelephoneEvent};

use super::{assert_deadline, t0, KEYS, MAX_TIMER_STEPS};

/// The SSRC reserved for well-formed presses ([`RtpStep::Press`]); other steps
/// never use it, so their noise cannot legitimately change a press's outcome.
const PRESS_SSRC: u32 = 0x5353_5052;
const TE_PT: u8 = 101;

/// One step of an `rtp` input.
#[derive(Arbitrary, Clone, Debug)]
pub enum RtpStep {
    /// Arbitrary bytes as an RTP datagram (parsed; fed to the receiver when it is a
    /// telephone-event packet).
    Bytes { delay_ms: u16, data: Vec<u8> },
    /// A telephone-event packet with fuzzer-chosen fields from a small space of
    /// SSRCs and timestamps (so presses collide), repeated `repeat % 4` extra times.
    Event {
        delay_ms: u16,
        ssrc: u8,
        timestamp: u8,
        event: u8,
        end: bool,
        volume: u8,
        duration: u16,
        repeat: u8,
    },
    /// One well-formed key press built by the RFC 4733 [`Sender`], each packet sent
    /// once plus `dup_mask` bit i ⇒ packet i repeated at once.
    Press {
        delay_ms: u16,
        key: u8,
        duration_ms: u16,
        dup_mask: u32,
    },
}

#[derive(Arbitrary, Clone, Debug)]
pub struct RtpInput {
    pub steps: Vec<RtpStep>,
}

struct RtpRun {
    now: Instant,
    rx: Receiver,
    digits: u64,
    last: Option<(Vec<u8>, Instant)>,
    presses_started: u32,
}

impl RtpRun {
    /// Advance virtual time, firing the receiver's timeouts when due, as the media
    /// session does.
    fn advance(&mut self, by: Duration) {
        let to = self.now + by;
        for _ in 0..MAX_TIMER_STEPS {
            match self.rx.poll_timeout() {
                Some(d) if d <= to => {
                    assert!(d >= self.now, "receiver deadline in the past");
                    self.now = d;
                    self.rx.handle_timeout(d);
                }
                _ => {
                    self.now = to;
                    self.rx.handle_timeout(to);
                    assert_deadline("telephone-event receiver", self.rx.poll_timeout(), to);
                    return;
                }
            }
        }
        panic!("receiver deadlines never settle");
    }

    /// Parse a datagram and feed a telephone-event payload to the receiver; returns
    /// the digit it reported.
    fn packet(&mut self, data: &[u8], allow_press_ssrc: bool) -> Option<char> {
        let pkt = rtp::parse(data).ok()?;
        let te = TelephoneEvent::parse(pkt.payload);
        if let Ok(ev) = &te {
            // What we print parses back to the same event (the reserved bit is
            // dropped).
            assert_eq!(TelephoneEvent::parse(&ev.to_bytes()).as_ref(), Ok(ev));
        }
        if pkt.header.payload_type != TE_PT || (pkt.header.ssrc == PRESS_SSRC && !allow_press_ssrc)
        {
            return None;
        }
        let repeat_now = self
            .last
            .as_ref()
            .is_some_and(|(bytes, at)| bytes == data && *at == self.now);
        let got =
            self.rx
                .handle_packet(self.now, pkt.header.ssrc, pkt.header.timestamp, pkt.payload);
        self.last = Some((data.to_vec(), self.now));
        assert_deadline("telephone-event receiver", self.rx.poll_timeout(), self.now);
        match got {
            Ok(Some(d)) => {
                let ev = te.expect("receiver accepted a payload the parser refused");
                assert_eq!(telephone_event::event_to_digit(ev.event), Some(d));
                assert!(
                    !repeat_now,
                    "an identical packet repeated at once gave a second digit"
                );
                self.digits += 1;
                Some(d)
            }
            Ok(None) | Err(_) => None,
        }
    }
}

/// `rtp`: the RTP and RFC 4733 parsers on every datagram, and the RFC 4733
/// [`Receiver`] on the whole sequence in virtual time.
pub fn rtp(input: &RtpInput) {
    let mut run = RtpRun {
        now: t0(),
        rx: Receiver::default(),
        digits: 0,
        last: None,
        presses_started: 0,
    };
    let sender = Sender::new(TE_PT, 20).expect("valid sender");
    for step in input.steps.iter().take(512) {
        match step {
            RtpStep::Bytes { delay_ms, data } => {
                run.advance(Duration::from_millis(u64::from(*delay_ms)));
                run.packet(data, false);
            }
            RtpStep::Event {
                delay_ms,
                ssrc,
                timestamp,
                event,
                end,
                volume,
                duration,
                repeat,
            } => {
                run.advance(Duration::from_millis(u64::from(*delay_ms)));
                let header = RtpHeader {
                    payload_type: TE_PT,
                    marker: false,
                    sequence: 0,
                    timestamp: u32::from(timestamp % 8) * 800,
                    ssrc: u32::from(ssrc % 3) + 1,
                };
                let payload = TelephoneEvent {
                    event: event % 20,
                    end: *end,
                    volume: volume % 64,
                    duration: *duration,
                }
                .to_bytes();
                let bytes = rtp::build(&header, &payload).expect("valid header");
                for _ in 0..=(repeat % 4) {
                    run.packet(&bytes, false);
                }
            }
            RtpStep::Press {
                delay_ms,
                key,
                duration_ms,
                dup_mask,
            } => {
                run.advance(Duration::from_millis(u64::from(*delay_ms)));
                let key = char::from(KEYS[usize::from(key % 16)]);
                let duration = Duration::from_millis(40 + u64::from(duration_ms % 2000));
                let ts = run.presses_started.wrapping_mul(0x0001_0000);
                run.presses_started += 1;
                let packets = sender
                    .press(key, PRESS_SSRC, 0, ts, duration)
                    .expect("a press of at most 2 s");
                let start = run.now;
                let mut got = Vec::new();
                for (i, p) in packets.iter().enumerate() {
                    let at = start + p.offset;
                    run.advance(at.saturating_duration_since(run.now));
                    let bytes = p.to_bytes();
                    got.extend(run.packet(&bytes, true));
                    if dup_mask & (1 << (i % 32)) != 0 {
                        got.extend(run.packet(&bytes, true));
                    }
                }
                assert_eq!(got, vec![key], "one key press must give exactly one digit");
            }
        }
    }
    assert_eq!(
        run.rx.stats().presses,
        run.digits,
        "receiver counted presses it did not report"
    );
}
