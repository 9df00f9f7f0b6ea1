//! Fuzz drivers: the body of every fuzz target, as plain functions.
//!
//! This one file is compiled twice: into the cargo-fuzz crate (`fuzz/src/lib.rs`, one
//! thin `fuzz_target!` per function) and into the ordinary test
//! `tests/fuzz_smoke.rs` (via `#[path]`), which runs every seed file and a few
//! thousand pseudo-random inputs through the same functions on every `cargo test`.
//! So the invariants below are checked in CI even where no nightly toolchain or
//! libFuzzer is available.
//!
//! Each driver feeds peer- or config-controlled input to one sans-IO parser or
//! state machine, the way the runtime would (drain every `poll_*` after every
//! input, fire timeouts only when due), and panics when an invariant breaks:
//!
//! - no panic anywhere on any input;
//! - `poll_timeout()` is never earlier than the last `now` fed;
//! - SIP: every datagram we send goes back to the (loopback) source; a message we
//!   parsed without defect prints and re-parses to the same bytes; TCP framing gives
//!   the same messages however the stream is cut;
//! - SDP: an answer we print for a negotiated offer parses and negotiates to the
//!   same codec, payload types and ptime;
//! - RFC 4733: a byte-identical packet repeated at once never yields a digit; a
//!   well-formed key press yields exactly one digit, the right one;
//! - DTMF merging: a single-source mode passes exactly that source's digits;
//!   same-source repeats are never merged; nothing is invented or left held;
//! - flow: a PIN/OTP the interpreter holds as a secret never appears in any logged
//!   command; while the interpreter is secure no timeline text carries a digit and no
//!   action sees a secret outside a secure state; no transfer or hangup leaves while
//!   secure; every `Secure(true)` is closed by `Secure(false)` when the call ends; at
//!   most one `Audit` per reset attempt; nothing happens after the call finished.
//!
//! Nothing here reads a clock: time is a virtual `Instant` advanced by the input.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use sspr_ivr::codec::Codec;
use sspr_ivr::flow::model::AttemptMark;
use sspr_ivr::flow::{self, Catalog, Command, Flow, Interpreter, TimelineEvent};
use sspr_ivr::media::digits::DigitMerger;
use sspr_ivr::media::g711;
use sspr_ivr::media::goertzel::InbandDetector;
use sspr_ivr::media::rtp::{self, RtpHeader};
use sspr_ivr::media::telephone_event::{self, Receiver, Sender, TelephoneEvent};
use sspr_ivr::media::{DigitSource, DtmfMode};
use sspr_ivr::sip::framing::StreamDecoder;
use sspr_ivr::sip::message::{self, Datagram};
use sspr_ivr::sip::{self, sdp, Endpoint, EndpointConfig, Event, Transport};
use sspr_ivr::vars::{Value, Vars};

#[path = "../../tests/golden/catalog.rs"]
mod catalog;

/// Separates datagrams in a `sip_datagram` input (so one input can hold a whole
/// dialog: INVITE, ACK, INFO, BYE).
pub const DATAGRAM_SEPARATOR: &[u8] = b"\n\0\0\n";

/// In a `sip_datagram` input, replaced by the To tag of the last response the
/// endpoint sent (tags are random), so seeds can carry in-dialog requests (ACK, INFO,
/// BYE) the way sipp's `[last_To:]` does.
pub const TAG_PLACEHOLDER: &[u8] = b"$TAG";

const LOCAL: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.1:5070";

/// Bound on virtual-time steps, so a deadline that never advances is reported
/// instead of hanging the fuzzer.
const MAX_TIMER_STEPS: usize = 10_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("constant address")
}

fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn assert_deadline(what: &str, deadline: Option<Instant>, now: Instant) {
    if let Some(d) = deadline {
        assert!(
            d >= now,
            "{what}: poll_timeout is {:?} in the past",
            now.duration_since(d)
        );
    }
}

// ---- SIP ---------------------------------------------------------------

const ANSWER_SDP: &str = "v=0\r\no=sspr-ivr 9 9 IN IP4 127.0.0.1\r\ns=sspr-ivr\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// Drain the endpoint as the runtime does; remembers the To tag of the last
/// response sent (see [`TAG_PLACEHOLDER`]). What we send must parse, and must be
/// free of defects when what we answered was (a `400` echoes a broken Via as is).
fn drain_endpoint(
    ep: &mut Endpoint,
    now: Instant,
    source: SocketAddr,
    tag: &mut Option<String>,
    input_clean: bool,
) {
    let mut answers = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(t) = ep.poll_transmit() {
            progressed = true;
            assert_eq!(
                t.destination, source,
                "the endpoint sent to an address the peer did not send from"
            );
            assert!(!t.payload.is_empty(), "empty transmit");
            let Ok(Datagram::Message(p)) = message::parse(&t.payload) else {
                panic!("the endpoint sent something that does not parse");
            };
            if input_clean {
                assert_eq!(p.defect, None, "the endpoint sent a defective message");
            }
            {
                if p.message.status().is_some() {
                    if let Some(t) = p
                        .message
                        .header("To")
                        .and_then(message::NameAddr::parse)
                        .and_then(|n| n.tag().map(str::to_string))
                    {
                        *tag = Some(t);
                    }
                }
            }
        }
        while let Some(ev) = ep.poll_event() {
            progressed = true;
            if let Event::IncomingCall(call) = ev {
                assert_eq!(call.source, source);
                answers.push(call.call);
            }
        }
        for call in answers.drain(..) {
            progressed = true;
            // Answer or reject by the Call-ID, so both paths get input.
            let cmd = if call.0.len() % 3 != 0 {
                sip::Command::Answer {
                    call,
                    sdp: ANSWER_SDP.to_string(),
                }
            } else {
                sip::Command::Reject {
                    call,
                    status: 486,
                    retry_after: Some(5),
                }
            };
            ep.handle_command(now, cmd);
        }
        if !progressed {
            break;
        }
    }
    assert_deadline("sip endpoint", ep.poll_timeout(), now);
}

/// The message parser alone: no panic, and print → parse → print is stable for a
/// message parsed without defect.
pub fn sip_message(data: &[u8]) {
    let Ok(Datagram::Message(parsed)) = message::parse(data) else {
        return;
    };
    let _ = parsed.message.method();
    let _ = parsed.message.status();
    for h in &parsed.message.headers {
        match h.name.as_str() {
            "Via" => {
                let _ = message::Via::parse(&h.value).map(|v| v.rfc3261_branch().is_some());
                let _ = message::stamp_via(&h.value, addr(PEER));
            }
            "From" | "To" | "Contact" => {
                let _ = message::NameAddr::parse(&h.value).map(|n| n.tag().is_some());
            }
            "CSeq" => {
                let _ = message::parse_cseq(&h.value);
            }
            "Content-Length" => {
                let _ = message::parse_content_length(&h.value);
            }
            _ => {}
        }
    }
    if parsed.defect.is_some() {
        return;
    }
    let printed = parsed.message.to_bytes();
    match message::parse(&printed) {
        Ok(Datagram::Message(again)) => {
            assert_eq!(
                again.defect, None,
                "a clean message printed by us re-parses with a defect"
            );
            assert_eq!(
                String::from_utf8_lossy(&again.message.to_bytes()),
                String::from_utf8_lossy(&printed),
                "print/parse round trip is not stable"
            );
        }
        other => panic!("a clean message printed by us does not re-parse: {other:?}"),
    }
}

/// `sip_datagram`: every datagram of the input (split at [`DATAGRAM_SEPARATOR`]) goes
/// to the message parser and to one UAS endpoint over UDP from a fixed source; the
/// endpoint answers calls, then its timers run out in virtual time.
pub fn sip_datagram(data: &[u8]) {
    let source = addr(PEER);
    let mut ep = Endpoint::new(
        EndpointConfig::new(addr(LOCAL), "sspr-ivr-fuzz"),
        sip::TokenRng::seeded(0),
    );
    let mut now = t0();
    let mut tag: Option<String> = None;
    for datagram in split(data, DATAGRAM_SEPARATOR) {
        let datagram = match &tag {
            Some(t) => replace(datagram, TAG_PLACEHOLDER, t.as_bytes()),
            None => datagram.to_vec(),
        };
        sip_message(&datagram);
        let clean = matches!(
            message::parse(&datagram),
            Ok(Datagram::Message(message::Parsed { defect: None, .. }))
        );
        ep.handle_datagram(now, Transport::Udp, source, &datagram);
        drain_endpoint(&mut ep, now, source, &mut tag, clean);
        // 10 ms later the next datagram arrives; timers due meanwhile fire first.
        now = fire_endpoint_timers(&mut ep, now, now + Duration::from_millis(10), &mut tag);
    }
    // Let every retransmission and transaction timer run out.
    fire_endpoint_timers(&mut ep, now, now + Duration::from_secs(600), &mut tag);
}

/// Fire the endpoint's deadlines up to `to` as the runtime does; returns `to`.
fn fire_endpoint_timers(
    ep: &mut Endpoint,
    mut now: Instant,
    to: Instant,
    tag: &mut Option<String>,
) -> Instant {
    let source = addr(PEER);
    for _ in 0..MAX_TIMER_STEPS {
        match ep.poll_timeout() {
            Some(d) if d <= to => {
                assert!(d >= now, "sip endpoint deadline in the past");
                now = d;
                ep.handle_timeout(now);
                drain_endpoint(ep, now, source, tag, false);
            }
            _ => return to,
        }
    }
    panic!("sip endpoint timers never settle");
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let parts = split(data, from);
    let mut out = Vec::with_capacity(data.len());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(to);
        }
        out.extend_from_slice(p);
    }
    out
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// `sip_stream`: the first byte says how many cut points follow (0–15), each one byte
/// (a position in 1/256ths of the rest); the rest is the TCP byte stream. Decoding
/// the stream in those chunks must give exactly what decoding it whole gives, and
/// every framed message goes to the parser.
pub fn sip_stream(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(n);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|c| usize::from(*c) * stream.len() / 256)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();

    let whole = decode_stream(&[stream]);
    let mut chunks = Vec::new();
    let mut at = 0;
    for c in cuts {
        chunks.push(&stream[at..c]);
        at = c;
    }
    chunks.push(&stream[at..]);
    let chunked = decode_stream(&chunks);
    assert_eq!(
        whole, chunked,
        "stream framing depends on where the stream was cut"
    );
    if let (messages, None) = &whole {
        for m in messages {
            sip_message(m);
        }
    }
}

type Decoded = (Vec<Vec<u8>>, Option<String>);

fn decode_stream(chunks: &[&[u8]]) -> Decoded {
    let mut dec = StreamDecoder::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.next_message() {
                Ok(Some(m)) => {
                    assert!(!m.is_empty(), "framing returned an empty message");
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => return (messages, Some(e.to_string())),
            }
        }
    }
    (messages, None)
}

/// `sdp`: parse; negotiate against every preference; the answer we would print
/// must parse and negotiate back to the same media.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = sdp::parse(&text) else {
        return;
    };
    let local = addr("127.0.0.1:20000");
    for pref in [
        &[Codec::Pcmu, Codec::Pcma][..],
        &[Codec::Pcma, Codec::Pcmu][..],
        &[Codec::Pcma][..],
        &[][..],
    ] {
        let Ok(neg) = sdp::negotiate(&offer, pref) else {
            continue;
        };
        assert!(
            pref.contains(&neg.codec),
            "negotiated a codec not preferred"
        );
        assert!(neg.ptime_ms > 0, "zero ptime negotiated");
        let answer = sdp::answer(&neg, local, 7);
        let parsed = sdp::parse(&answer)
            .unwrap_or_else(|e| panic!("our answer does not parse ({e}): {answer:?}"));
        let back = sdp::negotiate(&parsed, &[neg.codec])
            .unwrap_or_else(|e| panic!("our answer does not negotiate ({e}): {answer:?}"));
        assert_eq!(back.codec, neg.codec);
        assert_eq!(back.audio_pt, neg.audio_pt);
        assert_eq!(back.telephone_event_pt, neg.telephone_event_pt);
        assert_eq!(back.ptime_ms, neg.ptime_ms);
        assert_eq!(back.remote, local);
    }
}

// ---- RTP and RFC 4733 ------------------------------------------------------

/// The SSRC reserved for well-formed presses ([`RtpStep::Press`]); other steps
/// never use it, so their noise cannot legitimately change a press's outcome.
const PRESS_SSRC: u32 = 0x5353_5052;
const TE_PT: u8 = 101;
const KEYS: &[u8; 16] = b"0123456789*#ABCD";

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

/// One input of a `dtmf_merge` run.
#[derive(Arbitrary, Clone, Debug)]
pub struct DtmfStep {
    pub delay_ms: u16,
    /// Index into `0123456789*#ABCD`.
    pub key: u8,
    /// 0 = RFC 4733, 1 = in-band, 2 = INFO (mod 3).
    pub source: u8,
}

#[derive(Arbitrary, Clone, Debug)]
pub struct DtmfInput {
    /// 0 = rfc4733, 1 = inband, 2 = info, 3 = auto (mod 4).
    pub mode: u8,
    /// Audio for the in-band detector (PCMU bytes), pushed in 20 ms frames.
    pub audio: Vec<u8>,
    pub steps: Vec<DtmfStep>,
}

/// `dtmf_merge`: the `DigitMerger` (one digit stream from RFC 4733, in-band and
/// INFO) in virtual time, and the in-band detector on arbitrary audio. A mode that
/// takes one source passes exactly that source's digits; same-source repeats are
/// never merged; nothing is invented; no digit stays held at the end.
pub fn dtmf_merge(input: &DtmfInput) {
    let mut det = InbandDetector::new();
    for frame in input.audio.chunks(160).take(500) {
        let pcm = g711::decode(Codec::Pcmu, frame);
        for d in det.push(&pcm) {
            assert!(
                KEYS.contains(&(d.digit as u8)),
                "detector invented key {:?}",
                d.digit
            );
        }
    }

    let mode = match input.mode % 4 {
        0 => DtmfMode::Rfc4733,
        1 => DtmfMode::Inband,
        2 => DtmfMode::Info,
        _ => DtmfMode::Auto,
    };
    let mut m = DigitMerger::new(mode);
    let mut now = t0();
    let mut fed: Vec<(char, DigitSource)> = Vec::new();
    let mut got: Vec<(char, DigitSource)> = Vec::new();
    let fire_until = |m: &mut DigitMerger, now: &mut Instant, to: Instant| {
        while let Some(d) = m.poll_timeout() {
            assert!(d >= *now, "merger deadline in the past");
            if d > to {
                break;
            }
            *now = d;
            m.handle_timeout(d);
        }
        *now = to;
    };
    for step in input.steps.iter().take(512) {
        let to = now + Duration::from_millis(u64::from(step.delay_ms));
        fire_until(&mut m, &mut now, to);
        got.extend(std::iter::from_fn(|| m.poll_digit()));
        let key = char::from(KEYS[usize::from(step.key % 16)]);
        let source = match step.source % 3 {
            0 => DigitSource::Rfc4733,
            1 => DigitSource::Inband,
            _ => DigitSource::Info,
        };
        fed.push((key, source));
        m.handle_digit(now, key, source);
        got.extend(std::iter::from_fn(|| m.poll_digit()));
        assert_deadline("digit merger", m.poll_timeout(), now);
    }
    let end = now + Duration::from_secs(5);
    fire_until(&mut m, &mut now, end);
    got.extend(std::iter::from_fn(|| m.poll_digit()));
    assert_eq!(m.poll_timeout(), None, "a digit is still held at the end");

    let only = |src: DigitSource| -> Vec<char> {
        fed.iter()
            .filter(|(_, s)| *s == src)
            .map(|(d, _)| *d)
            .collect()
    };
    let keys = |v: &[(char, DigitSource)]| -> Vec<char> { v.iter().map(|(d, _)| *d).collect() };
    match mode {
        DtmfMode::Rfc4733 => assert_eq!(keys(&got), only(DigitSource::Rfc4733)),
        DtmfMode::Inband => assert_eq!(keys(&got), only(DigitSource::Inband)),
        DtmfMode::Info => assert_eq!(keys(&got), only(DigitSource::Info)),
        DtmfMode::Auto => {
            assert!(got.len() <= fed.len(), "auto mode invented digits");
            let sources: HashSet<DigitSource> = fed.iter().map(|(_, s)| *s).collect();
            if sources.len() == 1 {
                assert_eq!(got, fed, "auto mode merged same-source repeats");
            }
            for g in &got {
                assert!(fed.contains(g), "auto mode delivered {g:?}, never fed");
            }
        }
    }
    let st = m.stats();
    assert_eq!(
        st.rfc4733 + st.inband + st.info,
        got.len() as u64,
        "stats disagree with delivered digits"
    );
}

// ---- flows -----------------------------------------------------------------

/// The catalog the shipped flows are written against (as `tests/golden.rs`).
pub fn shipped_catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(catalog::catalog)
}

fn shipped_flow(name: &str) -> Arc<Flow> {
    static SSPR: OnceLock<Arc<Flow>> = OnceLock::new();
    static ECHO: OnceLock<Arc<Flow>> = OnceLock::new();
    let cell = if name == "echo" { &ECHO } else { &SSPR };
    cell.get_or_init(|| {
        // The main crate's root, whether compiled into the fuzz crate or the tests.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = if root.join("flows").is_dir() {
            root.to_path_buf()
        } else {
            root.join("..")
        };
        let path = root.join("flows").join(format!("{name}.yaml"));
        Arc::new(flow::load(&path).unwrap_or_else(|e| panic!("{e}")))
    })
    .clone()
}

/// `flow_yaml`: flow text → parser → validator (against the shipped catalog) →
/// graph printers; a flow the validator passes is also run with a fixed caller.
pub fn flow_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(flow) = flow::model::parse(text, path) else {
        return;
    };
    let diags = flow::validate(&flow, path, shipped_catalog());
    for d in &diags {
        let _ = d.to_string();
    }
    let _ = flow::to_dot(&flow);
    let _ = flow::to_mermaid(&flow);
    if diags.is_empty() {
        let ops = [
            FlowOp::Digit(1),
            FlowOp::PlayFinished,
            FlowOp::Digit(11),
            FlowOp::ActionResult {
                outcome: 0,
                outputs: 0xff,
            },
            FlowOp::AdvanceToDeadline,
            FlowOp::PlayFinished,
            FlowOp::TransferResult(false),
            FlowOp::AdvanceToDeadline,
            FlowOp::Advance(60_000),
        ];
        let _ = run_flow(Arc::new(flow), Vars::new(), &ops, false);
    }
}

/// One caller/runtime input to the interpreter.
#[derive(Arbitrary, Clone, Debug)]
pub enum FlowOp {
    /// A key: index into `0123456789*#ABCD`.
    Digit(u8),
    /// The last `Play` finished.
    PlayFinished,
    /// A play id `n` before the last one finished (stale or bogus ids).
    PlayFinishedStale(u8),
    /// The running action answers: outcome index into its outcome set (one past the
    /// end is an outcome the flow does not know); `outputs` bits choose outputs.
    ActionResult {
        outcome: u8,
        outputs: u8,
    },
    /// An action result for an id nobody asked for.
    ActionResultStale(u8),
    TransferResult(bool),
    Hangup,
    /// Jump to the next deadline and fire it.
    AdvanceToDeadline,
    /// Let this many milliseconds pass, firing deadlines when due.
    Advance(u16),
    /// A spurious wake-up: `handle_timeout(now)` with nothing due.
    SpuriousTimeout,
}

#[derive(Arbitrary, Clone, Debug)]
pub struct FlowRunInput {
    pub echo: bool,
    pub enumeration_safe: bool,
    pub ops: Vec<FlowOp>,
}

/// `flow_run`: the interpreter over `flows/sspr.yaml` or `flows/echo.yaml` with a
/// random caller and random backends.
pub fn flow_run(input: &FlowRunInput) {
    flow_run_report(input);
}

/// What one `flow_run` went through (so tests can check that seeds reach deep).
#[derive(Clone, Debug, Default)]
pub struct FlowReport {
    pub states: Vec<String>,
    pub audits: Vec<(String, String)>,
    pub secure_segments: u32,
    pub transfers: Vec<String>,
    /// Secret values checked against the logged commands.
    pub secrets_checked: usize,
}

/// [`flow_run`], returning what happened.
pub fn flow_run_report(input: &FlowRunInput) -> FlowReport {
    let flow = shipped_flow(if input.echo { "echo" } else { "sspr" });
    let mut vars = Vars::new();
    vars.set_plain("ani", "+15551234567");
    vars.set_plain("dnis", "sspr");
    vars.set_plain("call_id", "fuzz-call");
    vars.set_plain(
        "enumeration_safe",
        if input.enumeration_safe {
            "true"
        } else {
            "false"
        },
    );
    run_flow(flow, vars, &input.ops, true)
}

struct FlowRun {
    flow: Arc<Flow>,
    it: Interpreter,
    now: Instant,
    /// Secure state as told by the command stream.
    secure: bool,
    last_play: Option<u64>,
    action: Option<(u64, String)>,
    audits_in_attempt: u32,
    check_audits: bool,
    finished_seen: bool,
    report: FlowReport,
    /// Debug text of every logged command so far.
    log: Vec<String>,
    secrets: Vec<String>,
}

impl FlowRun {
    fn drain(&mut self) {
        let was_finished = self.finished_seen;
        while let Some(c) = self.it.poll_command() {
            assert!(!was_finished, "command after the call finished: {c:?}");
            // Everything but audio and actions is logged by the runtime.
            if !matches!(c, Command::Play { .. } | Command::StopPlayback) {
                let line = format!("{c:?}");
                self.check_secrets_absent(&line);
                self.log.push(line);
            }
            match c {
                Command::Secure(on) => {
                    assert_ne!(on, self.secure, "redundant Secure({on})");
                    self.secure = on;
                    self.report.secure_segments += u32::from(on);
                }
                Command::Timeline(TimelineEvent::DigitsCollected { var, shown }) => {
                    if self.secure {
                        assert!(
                            !shown.chars().any(|c| c.is_ascii_digit()),
                            "digits of `{var}` shown in a secure segment"
                        );
                    }
                }
                Command::Timeline(TimelineEvent::StateEntered { state, secure }) => {
                    assert_eq!(secure, self.secure, "state `{state}` entered out of step");
                    let begins = self
                        .flow
                        .states
                        .get(&state)
                        .is_some_and(|s| s.attempt == Some(AttemptMark::Begin));
                    if begins {
                        self.audits_in_attempt = 0;
                    }
                    self.report.states.push(state);
                }
                Command::Timeline(_) => {}
                Command::Audit { result, reason } => {
                    self.audits_in_attempt += 1;
                    self.report.audits.push((result.clone(), reason.clone()));
                    if self.check_audits {
                        assert!(
                            self.audits_in_attempt <= 1,
                            "second audit ({result}/{reason}) in one reset attempt"
                        );
                    }
                }
                Command::Play { id, items, .. } => {
                    assert!(!items.is_empty(), "empty Play");
                    self.last_play = Some(id);
                }
                Command::StopPlayback => {}
                Command::RunAction { id, action, vars } => {
                    if !self.secure {
                        assert!(
                            vars.iter().all(|(_, v)| !v.is_secret()),
                            "action `{action}` outside a secure state got a secret"
                        );
                    }
                    self.action = Some((id, action));
                }
                Command::Transfer { target, .. } => {
                    assert!(!self.secure, "transfer while secure");
                    self.report.transfers.push(target);
                }
                Command::Hangup => {
                    assert!(!self.secure, "hangup while secure");
                    self.finished_seen = true;
                }
            }
        }
        self.learn_secrets();
        assert_eq!(self.it.is_secure(), self.secure, "is_secure() out of step");
        if self.finished_seen {
            assert!(
                self.it.is_finished(),
                "Hangup sent but interpreter not finished"
            );
        }
        if self.it.is_finished() {
            self.finished_seen = true;
            assert!(!self.secure, "finished inside a secure segment");
            assert_eq!(self.it.poll_timeout(), None, "finished but wants a wake-up");
        }
        assert_deadline("interpreter", self.it.poll_timeout(), self.now);
    }

    /// Secret values (PIN, OTP) the interpreter holds that cannot be told apart from
    /// plain data (at least 6 characters, not inside any plain variable): once one
    /// is known, no logged command may contain it, before or after.
    fn learn_secrets(&mut self) {
        let plain: Vec<&str> = self
            .it
            .vars()
            .iter()
            .filter_map(|(_, v)| v.as_plain())
            .collect();
        let mut new = Vec::new();
        for (_, v) in self.it.vars().iter() {
            if let Value::Secret(s) = v {
                let s = s.expose();
                if s.len() >= 6
                    && !plain.iter().any(|p| p.contains(s))
                    && !self.secrets.iter().any(|k| k == s)
                {
                    new.push(s.to_string());
                }
            }
        }
        for s in new {
            for line in &self.log {
                assert!(
                    !line.contains(&s),
                    "a secret the caller typed appears in a logged command: {line}"
                );
            }
            self.secrets.push(s);
        }
    }

    fn check_secrets_absent(&self, line: &str) {
        for s in &self.secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret the caller typed appears in a logged command: {line}"
            );
        }
    }

    fn fire_until(&mut self, to: Instant) {
        for _ in 0..MAX_TIMER_STEPS {
            match self.it.poll_timeout() {
                Some(d) if d <= to => {
                    self.now = self.now.max(d);
                    self.it.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = to;
                    return;
                }
            }
        }
        panic!("interpreter deadlines never settle");
    }

    fn op(&mut self, op: &FlowOp) {
        match op {
            FlowOp::Digit(k) => {
                let d = char::from(KEYS[usize::from(k % 16)]);
                self.it.handle_digit(self.now, d);
            }
            FlowOp::PlayFinished => {
                if let Some(id) = self.last_play {
                    self.it.handle_play_finished(self.now, id);
                }
            }
            FlowOp::PlayFinishedStale(n) => {
                let id = self.last_play.unwrap_or(0).wrapping_sub(u64::from(*n) + 1);
                self.it.handle_play_finished(self.now, id);
            }
            FlowOp::ActionResult { outcome, outputs } => {
                let Some((id, name)) = self.action.take() else {
                    return;
                };
                let info = shipped_catalog().actions.get(&name);
                let outcomes = info.map(|i| i.outcomes.clone()).unwrap_or_default();
                let idx = usize::from(*outcome) % (outcomes.len() + 1);
                let outcome = outcomes.get(idx).map_or("no_such_outcome", String::as_str);
                let mut vars = Vars::new();
                if let Some(info) = info {
                    for (i, name) in info.outputs.iter().enumerate() {
                        if outputs & (1 << (i % 8)) != 0 {
                            vars.set_plain(name.clone(), output_value(name, *outputs));
                        }
                    }
                }
                self.it.handle_action_result(self.now, id, outcome, vars);
            }
            FlowOp::ActionResultStale(n) => {
                let id = self
                    .action
                    .as_ref()
                    .map_or(0, |(id, _)| *id)
                    .wrapping_add(u64::from(*n) + 1);
                self.it
                    .handle_action_result(self.now, id, "success", Vars::new());
            }
            FlowOp::TransferResult(accepted) => {
                self.it.handle_transfer_result(self.now, *accepted);
            }
            FlowOp::Hangup => self.it.handle_hangup(self.now),
            FlowOp::AdvanceToDeadline => {
                if let Some(d) = self.it.poll_timeout() {
                    self.fire_until(d);
                }
            }
            FlowOp::Advance(ms) => {
                let to = self.now + Duration::from_millis(u64::from(*ms));
                self.fire_until(to);
            }
            FlowOp::SpuriousTimeout => self.it.handle_timeout(self.now),
        }
        self.drain();
    }
}

fn output_value(name: &str, bits: u8) -> String {
    match name {
        "mobile" => "+15557654321".into(),
        "email" => "j.doe@example.com".into(),
        "factor" if bits & 0x80 != 0 => "email".into(),
        "factor" => "sms".into(),
        "status" if bits & 0x40 != 0 => "LOCKED_OUT".into(),
        "status" => "ACTIVE".into(),
        _ => "00u1fuzz".into(),
    }
}

/// Drive one call through `flow` with `ops`, checking the invariants after every
/// input, then hang up and check the call ended cleanly.
fn run_flow(flow: Arc<Flow>, vars: Vars, ops: &[FlowOp], check_audits: bool) -> FlowReport {
    let now = t0();
    let it = Interpreter::new(now, flow.clone(), vars);
    let mut run = FlowRun {
        flow,
        it,
        now,
        secure: false,
        last_play: None,
        action: None,
        audits_in_attempt: 0,
        check_audits,
        finished_seen: false,
        report: FlowReport::default(),
        log: Vec::new(),
        secrets: Vec::new(),
    };
    run.drain();
    for op in ops.iter().take(1024) {
        run.op(op);
    }
    // The caller hangs up (or already has): the call must end outside the secure
    // segment, and nothing may follow.
    let finished_before = run.finished_seen;
    run.it.handle_hangup(run.now);
    if finished_before {
        assert!(
            run.it.poll_command().is_none(),
            "hangup after the call finished produced commands"
        );
    }
    run.drain();
    assert!(
        run.it.is_finished(),
        "not finished after the caller hung up"
    );
    assert!(!run.secure, "call ended inside a secure segment");
    run.report.secrets_checked = run.secrets.len();
    run.report
}

/// Every seed folder name and its driver over raw bytes (structured inputs are
/// decoded with `arbitrary`, as cargo-fuzz does).
pub fn run_target(target: &str, data: &[u8]) {
    let u = arbitrary::Unstructured::new(data);
    match target {
        "sip_datagram" => sip_datagram(data),
        "sip_stream" => sip_stream(data),
        "sdp" => sdp(data),
        "rtp" => {
            if let Ok(input) = RtpInput::arbitrary_take_rest(u) {
                rtp(&input);
            }
        }
        "dtmf_merge" => {
            if let Ok(input) = DtmfInput::arbitrary_take_rest(u) {
                dtmf_merge(&input);
            }
        }
        "flow_yaml" => flow_yaml(data),
        "flow_run" => {
            if let Ok(input) = FlowRunInput::arbitrary_take_rest(u) {
                flow_run(&input);
            }
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The target names, as used by `fuzz/fuzz_targets/*.rs` and `fuzz/seeds/*`.
pub const TARGETS: &[&str] = &[
    "sip_datagram",
    "sip_stream",
    "sdp",
    "rtp",
    "dtmf_merge",
    "flow_yaml",
    "flow_run",
];
