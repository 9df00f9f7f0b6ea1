use super::*;
use crate::media::prompts::{Prompt, PromptRecognizer};
use crate::media::recording;
use crate::media::telephone_event::Sender;
use crate::media::ToneGenerator;
use std::path::Path;

mod loss;
mod phase;
mod trust;

const MS: Duration = Duration::from_millis(1);

fn shipped() -> Arc<PromptCache> {
    static CACHE: std::sync::OnceLock<Arc<PromptCache>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            Arc::new(
                crate::files::load_prompts(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en"),
                )
                .unwrap(),
            )
        })
        .clone()
}

fn tiny() -> Arc<PromptCache> {
    // "a": 400 samples (2.5 packets), "b": 320 samples (exactly 2 packets)
    Arc::new(PromptCache::from_prompts([
        Prompt::from_pcm(
            "a",
            (0..400).map(|i| (i * 37 % 2000) as i16 - 1000).collect(),
        ),
        Prompt::from_pcm(
            "b",
            (0..320).map(|i| (i * 53 % 3000) as i16 - 1500).collect(),
        ),
    ]))
}

fn config() -> MediaConfig {
    MediaConfig {
        codec: Codec::Pcmu,
        audio_pt: 0,
        telephone_event_pt: Some(101),
        ptime_ms: 20,
        remote: "127.0.0.1:40000".parse().unwrap(),
        symmetric_rtp: true,
        dtmf_mode: DtmfMode::Auto,
        inactivity_timeout: Duration::from_secs(60),
        hold_timeout: Duration::from_secs(600),
        record: false,
        trust: RtpTrust::from_sources(&[
            crate::media::RtpSource::Sdp,
            crate::media::RtpSource::Signalling,
        ]),
        signalling_ip: Some("127.0.0.1".parse().unwrap()),
        peer_receives: true,
    }
}

struct Sent {
    at: Instant,
    to: SocketAddr,
    header: RtpHeader,
    payload: Vec<u8>,
}

struct Harness {
    s: MediaSession,
    t0: Instant,
    now: Instant,
    sent: Vec<Sent>,
    events: Vec<MediaEvent>,
}

impl Harness {
    /// A session of a confirmed call (ACK received: sending from the start).
    fn new(config: MediaConfig, prompts: Arc<PromptCache>) -> Self {
        let mut h = Self::unconfirmed(config, prompts);
        h.s.start_sending();
        h
    }

    /// A session before the ACK.
    fn unconfirmed(config: MediaConfig, prompts: Arc<PromptCache>) -> Self {
        let t0 = Instant::now();
        Harness {
            s: MediaSession::new(t0, config, prompts, 0x1234_5678, 65530, 0xFFFF_FF00),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let mut data = Vec::new();
        while let Some(to) = self.s.poll_transmit(&mut data) {
            let p = rtp::parse(&data).unwrap();
            self.sent.push(Sent {
                at: self.now,
                to,
                header: p.header,
                payload: p.payload.to_vec(),
            });
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    /// Wake exactly at every deadline up to `until`.
    fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.s.poll_timeout().filter(|&t| t <= until) {
            self.now = t;
            self.s.handle_timeout(t);
            self.drain();
        }
        self.now = until;
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + MS * ms as u32
    }

    fn digits(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Digit { digit, .. } => Some(*digit),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn pacing_uses_absolute_deadlines_even_when_woken_late() {
    let mut h = Harness::new(config(), tiny());
    // The runtime wakes at irregular, late times; packet n must still be due at t0 + 20n.
    let wakeups = [0u64, 25, 31, 90, 95, 140, 141, 300, 301, 480];
    for &ms in &wakeups {
        h.now = h.at(ms);
        h.s.handle_timeout(h.now);
        h.drain();
        // exactly the packets whose deadline has passed have been sent
        assert_eq!(h.sent.len() as u64, ms / 20 + 1, "at {ms} ms");
        assert_eq!(h.s.poll_timeout(), Some(h.at((ms / 20 + 1) * 20)));
    }
    for (n, p) in h.sent.iter().enumerate() {
        assert!(p.at >= h.at(20 * n as u64), "packet {n} early");
        assert_eq!(p.header.sequence, 65530u16.wrapping_add(n as u16));
        assert_eq!(
            p.header.timestamp,
            0xFFFF_FF00u32.wrapping_add(160 * n as u32)
        );
        assert_eq!(p.header.ssrc, 0x1234_5678);
        assert_eq!(p.header.payload_type, 0);
        assert_eq!(p.header.marker, n == 0);
        assert_eq!(p.payload, vec![0xFF; 160]);
    }
    // late: sent more than 2 ms after the deadline
    let late = h
        .sent
        .iter()
        .enumerate()
        .filter(|(n, p)| p.at > h.at(20 * *n as u64) + 2 * MS)
        .count();
    assert_eq!(h.s.stats().late, late as u64);
    assert!(late > 10);
    assert_eq!(h.s.stats().packets_sent, 25);
    assert_eq!(h.s.stats().skipped, 0);
}

#[test]
fn ten_minutes_without_drift() {
    let mut h = Harness::new(config(), tiny());
    let end = h.at(600_000);
    let mut n = 0u64;
    while let Some(t) = h.s.poll_timeout().filter(|&t| t <= end) {
        // every wake-up is a packet deadline exactly n * 20 ms after the start
        assert_eq!(t, h.at(20 * n));
        h.s.handle_timeout(t);
        while h.s.poll_transmit(&mut Vec::new()).is_some() {}
        n += 1;
    }
    assert_eq!(n, 30_001);
    assert_eq!(h.s.stats().late, 0);
}

#[test]
fn a_long_stall_skips_old_packets_but_keeps_the_clock() {
    let mut h = Harness::new(config(), tiny());
    h.run_until(h.at(100)); // packets 0..=5
    h.now = h.at(1100);
    h.s.handle_timeout(h.now);
    h.drain();
    let st = h.s.stats();
    assert_eq!(st.packets_sent, 6 + MAX_CATCH_UP);
    assert_eq!(st.skipped, 55 - 5 - MAX_CATCH_UP);
    let last = h.sent.last().unwrap();
    assert_eq!(last.header.timestamp, 0xFFFF_FF00u32.wrapping_add(160 * 55));
    assert_eq!(
        last.header.sequence,
        65530u16.wrapping_add(st.packets_sent as u16 - 1)
    );
    assert_eq!(h.s.poll_timeout(), Some(h.at(1120)));
    // The catch-up's packets (queued together) leave in order.
    for w in h.sent.windows(2) {
        assert_eq!(w[1].header.sequence, w[0].header.sequence.wrapping_add(1));
    }
}

#[test]
fn honours_negotiated_ptime() {
    for (ptime, bytes) in [(10u32, 80usize), (30, 240), (60, 480)] {
        let mut h = Harness::new(
            MediaConfig {
                ptime_ms: ptime,
                codec: Codec::Pcma,
                audio_pt: 8,
                ..config()
            },
            tiny(),
        );
        h.run_until(h.at(600));
        assert_eq!(h.sent.len() as u64, 600 / u64::from(ptime) + 1);
        for (n, p) in h.sent.iter().enumerate() {
            assert_eq!(p.at, h.at(u64::from(ptime) * n as u64));
            assert_eq!(p.payload, vec![0xD5; bytes]);
            assert_eq!(p.header.payload_type, 8);
            assert_eq!(
                p.header.timestamp.wrapping_sub(0xFFFF_FF00),
                (bytes * n) as u32
            );
        }
    }
}

#[test]
fn prompts_go_out_byte_identical_on_packet_boundaries() {
    let cache = tiny();
    let mut h = Harness::new(config(), cache.clone());
    h.run_until(h.at(40)); // 3 silence packets
    h.s.play(
        h.now,
        7,
        vec![
            PlayItem::Prompt("a".into()),
            PlayItem::Silence(Duration::from_millis(30)),
            PlayItem::Prompt("b".into()),
        ],
    );
    h.run_until(h.at(400));
    let a = cache.get("a").unwrap().encoded(Codec::Pcmu);
    let b = cache.get("b").unwrap().encoded(Codec::Pcmu);
    let p = &h.sent;
    // packets 3,4,5 = "a" (last padded), 6,7 = 30 ms silence rounded up to 2 packets, 8,9 = "b"
    assert_eq!(p[3].payload, a[..160]);
    assert_eq!(p[4].payload, a[160..320]);
    assert_eq!(p[5].payload[..80], a[320..]);
    assert!(p[5].payload[80..].iter().all(|&x| x == 0xFF));
    assert_eq!(p[6].payload, vec![0xFF; 160]);
    assert_eq!(p[7].payload, vec![0xFF; 160]);
    assert_eq!(p[8].payload, b[..160]);
    assert_eq!(p[9].payload, b[160..]);
    assert_eq!(p[10].payload, vec![0xFF; 160]);
    let markers: Vec<usize> = p
        .iter()
        .enumerate()
        .filter(|(_, x)| x.header.marker)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(markers, [0, 3, 8]);
    // PlaybackFinished right after the last packet of "b" (sent at 9 * 20 ms)
    assert_eq!(h.events, [MediaEvent::PlaybackFinished { id: 7 }]);
    let mut h2 = Harness::new(config(), cache);
    h2.s.play(h2.now, 8, vec![PlayItem::Prompt("b".into())]);
    h2.run_until(h2.at(19));
    assert!(h2.events.is_empty());
    h2.run_until(h2.at(20));
    assert_eq!(h2.events, [MediaEvent::PlaybackFinished { id: 8 }]);
}

#[test]
fn stop_and_replace_playback() {
    let mut h = Harness::new(config(), shipped());
    h.s.play(h.now, 1, vec![PlayItem::Prompt("welcome".into())]);
    h.run_until(h.at(100));
    h.s.stop_playback(h.now);
    h.run_until(h.at(200));
    assert!(h.sent[6..].iter().all(|p| p.payload == vec![0xFF; 160]));
    // replaced playback does not finish; the new one does; an empty one finishes at once
    h.s.play(h.now, 2, vec![PlayItem::Prompt("goodbye".into())]);
    h.run_until(h.at(260));
    h.s.play(
        h.now,
        3,
        vec![
            PlayItem::Prompt("digit_1".into()),
            PlayItem::Prompt("no_such_prompt".into()),
        ],
    );
    h.run_until(h.at(5000));
    h.s.play(h.now, 4, vec![]);
    h.drain();
    assert_eq!(
        h.events,
        [
            MediaEvent::PlaybackFinished { id: 3 },
            MediaEvent::PlaybackFinished { id: 4 }
        ]
    );
    assert_eq!(h.s.stats().missing_prompts, 1);
}

#[test]
fn recognizer_finds_every_prompt_in_session_output() {
    let cache = shipped();
    let names: Vec<String> = cache.names().map(String::from).collect();
    for (codec, pt, ptime) in [(Codec::Pcmu, 0u8, 20u32), (Codec::Pcma, 8, 30)] {
        let mut h = Harness::new(
            MediaConfig {
                codec,
                audio_pt: pt,
                ptime_ms: ptime,
                ..config()
            },
            cache.clone(),
        );
        let mut items = Vec::new();
        for (i, n) in names.iter().enumerate() {
            items.push(PlayItem::Prompt(n.clone()));
            if i % 3 == 0 {
                items.push(PlayItem::Silence(Duration::from_millis(100)));
            }
        }
        h.s.play(h.now, 1, items);
        let total: Duration = names.iter().map(|n| cache.get(n).unwrap().duration()).sum();
        h.run_until(h.t0 + total + Duration::from_secs(3));
        assert_eq!(
            h.events.last(),
            Some(&MediaEvent::PlaybackFinished { id: 1 })
        );
        let mut rec = PromptRecognizer::new(cache.clone(), codec);
        let heard: Vec<String> = h.sent.iter().filter_map(|p| rec.push(&p.payload)).collect();
        assert_eq!(heard, names, "{codec:?}");
        // and what went out is the cache, byte for byte
        let wire: Vec<u8> = h
            .sent
            .iter()
            .flat_map(|p| p.payload.iter().copied())
            .collect();
        for n in &names {
            let enc = cache.get(n).unwrap().encoded(codec);
            assert!(
                wire.windows(enc.len().min(4000))
                    .any(|w| w == &enc[..enc.len().min(4000)]),
                "{n}"
            );
        }
    }
}

fn rtp_bytes(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    rtp::build(
        &RtpHeader {
            payload_type: pt,
            marker: false,
            sequence: seq,
            timestamp: ts,
            ssrc,
        },
        payload,
    )
    .unwrap()
}

#[test]
fn sipp_pcap_digits_through_the_session() {
    let text = include_str!("../testdata/sipp_dtmf_2833.txt");
    let press = |key: &str| -> Vec<(u64, Vec<u8>)> {
        text.lines()
            .filter(|l| l.split_whitespace().next() == Some(key))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let hex = f[2];
                let b = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (f[1].parse::<u64>().unwrap() / 1000, b)
            })
            .collect()
    };
    let mut h = Harness::new(config(), tiny());
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let mut t = 1000u64;
    for key in ["1", "0", "0", "1", "0", "0", "pound"] {
        for (off, data) in press(key) {
            h.run_until(h.at(t + off));
            h.s.handle_rtp(h.now, src, &data);
            h.drain();
        }
        t += 160;
    }
    h.run_until(h.at(t + 1000));
    assert_eq!(h.digits(), "100100#");
    assert!(h.events.iter().all(
        |e| !matches!(e, MediaEvent::Digit { source, .. } if *source != DigitSource::Rfc4733)
    ));
    assert_eq!(h.s.stats().digits_rfc4733, 7);
    // symmetric RTP latched to the pcap's source
    assert_eq!(h.sent.last().unwrap().to, src);
    // a session that negotiated PT 96 does not take PT 101 events
    let mut h = Harness::new(
        MediaConfig {
            telephone_event_pt: Some(96),
            ..config()
        },
        tiny(),
    );
    for (off, data) in press("5") {
        h.s.handle_rtp(h.at(off), src, &data);
    }
    h.drain();
    assert_eq!(h.digits(), "");
    assert_eq!(h.s.stats().unknown_payload_type, 10);
}

#[test]
fn real_sipp_play_dtmf_capture() {
    // sipp's play_dtmf: PT 96, R bit set on some packets, 3 end packets, and 4-byte
    // PT 97 packets before the keys (ignored: not the negotiated event type).
    let text = include_str!("../testdata/sipp_play_dtmf_1p11.txt");
    let src: SocketAddr = "127.0.0.1:16000".parse().unwrap();
    let mut h = Harness::new(
        MediaConfig {
            telephone_event_pt: Some(96),
            ..config()
        },
        tiny(),
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (us, hex) = line.split_once(' ').unwrap();
        let data: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        h.run_until(h.t0 + Duration::from_micros(us.parse().unwrap()));
        h.s.handle_rtp(h.now, src, &data);
        h.drain();
    }
    h.run_until(h.at(5000));
    assert_eq!(h.digits(), "1#11");
    assert_eq!(h.s.stats().unknown_payload_type, 20);
}

/// The caller sends 20 ms audio packets of `pcm` starting at `start_ms`.
fn send_audio(h: &mut Harness, start_ms: u64, pcm: &[i16], seq0: u16, codec: Codec, pt: u8) {
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    for (i, chunk) in pcm.chunks(160).enumerate() {
        h.run_until(h.at(start_ms + 20 * i as u64));
        let data = rtp_bytes(
            pt,
            seq0.wrapping_add(i as u16),
            160 * i as u32,
            99,
            &g711::encode(codec, chunk),
        );
        h.s.handle_rtp(h.now, src, &data);
        h.drain();
    }
}

#[test]
fn inband_digits_and_auto_mode_without_double_count() {
    let g = ToneGenerator::new();
    let tones = g.sequence("159#", 80, 80, -12.0);
    // in-band only
    let mut h = Harness::new(config(), tiny());
    send_audio(&mut h, 0, &tones, 1, Codec::Pcmu, 0);
    h.run_until(h.at(3000));
    assert_eq!(h.digits(), "159#");
    assert_eq!(h.s.stats().digits_inband, 4);
    // a peer sending both RFC 4733 and the tones: each key once
    let mut h = Harness::new(config(), tiny());
    let sender = Sender::new(101, 20).unwrap();
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let mut events: Vec<(u64, Vec<u8>)> = Vec::new();
    for (k, d) in "159#".chars().enumerate() {
        for p in sender
            .press(
                d,
                77,
                k as u16 * 10,
                1280 * k as u32,
                Duration::from_millis(80),
            )
            .unwrap()
        {
            events.push((160 * k as u64 + p.offset.as_millis() as u64, p.to_bytes()));
        }
    }
    let mut audio: Vec<(u64, Vec<u8>)> = tones
        .chunks(160)
        .enumerate()
        .map(|(i, c)| {
            (
                20 * i as u64,
                rtp_bytes(
                    0,
                    i as u16,
                    160 * i as u32,
                    99,
                    &g711::encode(Codec::Pcmu, c),
                ),
            )
        })
        .collect();
    audio.extend(events);
    audio.sort_by_key(|(t, _)| *t);
    for (t, data) in audio {
        h.run_until(h.at(t));
        h.s.handle_rtp(h.now, src, &data);
        h.drain();
    }
    h.run_until(h.at(3000));
    assert_eq!(h.digits(), "159#");
    let st = h.s.stats();
    assert_eq!((st.digits_rfc4733, st.digits_inband), (4, 0));
    // inband mode ignores RFC 4733 and INFO; info mode takes only INFO
    let mut h = Harness::new(
        MediaConfig {
            dtmf_mode: DtmfMode::Info,
            ..config()
        },
        tiny(),
    );
    send_audio(&mut h, 0, &tones, 1, Codec::Pcmu, 0);
    h.s.handle_info_digit(h.now, '7', None);
    h.s.handle_info_digit(h.now, 'x', None);
    h.drain();
    assert_eq!(h.digits(), "7");
    assert_eq!(h.s.stats().digits_info, 1);
    assert_eq!(h.s.stats().malformed, 1);
}

#[test]
fn recording_per_packet_and_secure_suppression() {
    let cache = tiny();
    let mut h = Harness::new(
        MediaConfig {
            record: true,
            ..config()
        },
        cache.clone(),
    );
    let mut x: u32 = 3;
    let speech: Vec<i16> = (0..1600)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) as i16) / 8
        })
        .collect();
    h.s.play(h.now, 1, vec![PlayItem::Prompt("b".into())]);
    send_audio(&mut h, 0, &speech[..800], 0, Codec::Pcmu, 0);
    h.run_until(h.at(600));
    h.s.set_secure(true);
    send_audio(&mut h, 600, &speech[800..], 5, Codec::Pcmu, 0);
    h.s.set_secure(false);
    h.run_until(h.at(1200));
    // Frames come out LOOKBACK late; the rest when the call ends.
    let lag = (recording::LOOKBACK.as_millis() / 20) as usize;
    let frames = |events: &[MediaEvent]| -> Vec<(Vec<i16>, Vec<i16>, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Record(block) => Some(block),
                _ => None,
            })
            .flat_map(|b| b.frames())
            .map(|(f, suppressed)| {
                let decode = |b: &u8| g711::decode_sample(Codec::Pcmu, *b);
                let caller = f.iter().step_by(2).map(decode).collect();
                let ivr = f.iter().skip(1).step_by(2).map(decode).collect();
                (caller, ivr, suppressed)
            })
            .collect()
    };
    // Whole blocks only until the end.
    let before_flush = frames(&h.events).len();
    let blocks = recording::BLOCK_FRAMES;
    assert_eq!(before_flush, (h.sent.len() - lag) / blocks * blocks);
    h.s.flush_recording();
    h.drain();
    let records = frames(&h.events);
    assert_eq!(records.len(), h.sent.len());
    assert!(records
        .iter()
        .all(|(c, i, _)| c.len() == 160 && i.len() == 160));
    // the IVR side is what was sent; the first packets carry prompt "b"
    assert_eq!(
        records[0].1,
        g711::decode(
            Codec::Pcmu,
            &cache.get("b").unwrap().encoded(Codec::Pcmu)[..160]
        )
    );
    // Suppressed: from LOOKBACK before the segment began (the look-back)
    // to its end (no key was pressed, so no tail), one contiguous run.
    let secure_at = h.sent.iter().position(|p| p.at > h.at(600)).unwrap();
    let secure_to = h.sent.iter().position(|p| p.at > h.at(680)).unwrap();
    let first = records.iter().position(|r| r.2).unwrap();
    let last = records.iter().rposition(|r| r.2).unwrap();
    assert_eq!(first, secure_at - lag, "look-back");
    assert_eq!(last + 1, secure_to, "released at once without a key");
    for (n, (caller, ivr, suppressed)) in records.iter().enumerate() {
        assert_eq!(*suppressed, (first..=last).contains(&n), "packet {n}");
        if *suppressed {
            assert!(caller.iter().chain(ivr.iter()).all(|&s| s == 0));
        }
    }
    // some caller audio is recorded outside the secure segment, none of the secure part
    let heard: Vec<i16> = records
        .iter()
        .filter(|r| !r.2)
        .flat_map(|r| r.0.iter().copied())
        .filter(|&s| s != 0)
        .collect();
    assert!(heard.len() >= 600, "{}", heard.len());
    let secret_part = g711::decode(Codec::Pcmu, &g711::encode(Codec::Pcmu, &speech[800..]));
    assert!(!heard
        .windows(40)
        .any(|w| secret_part.windows(40).any(|s| s == w)));
}

#[test]
fn event_debug_never_shows_a_digit() {
    let e = MediaEvent::Digit {
        digit: '7',
        source: DigitSource::Info,
    };
    let text = format!("{e:?}");
    assert!(!text.contains('7') && text.contains("Info"), "{text}");
}

#[test]
fn symmetric_rtp_latching_rules() {
    let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let pkt = rtp_bytes(0, 1, 0, 5, &[0xFF; 160]);
    let mut h = Harness::new(config(), tiny());
    h.run_until(h.at(0));
    assert_eq!(h.sent[0].to, config().remote);
    assert_eq!(h.s.peer(h.at(0)), None, "no packet from the caller yet");
    h.s.handle_rtp(h.at(10), a, &pkt);
    assert_eq!(h.s.remote(), a);
    assert_eq!(
        h.s.peer(h.at(10)),
        Some(a),
        "latched: the socket may connect"
    );
    h.s.handle_rtp(h.at(20), b, &pkt); // a stray packet does not hijack
    assert_eq!(h.s.remote(), a);
    assert_eq!(h.s.rejected(), (0, 1));
    // A stray packet keeps nobody steady: a is quiet from 10 ms on.
    assert_eq!(h.s.peer(h.at(509)), Some(a));
    assert_eq!(h.s.peer(h.at(510)), None, "a quiet: its socket must hear b");
    h.s.handle_rtp(h.at(600), b, &pkt); // a quiet for 500 ms+: NAT rebinding
    assert_eq!(h.s.remote(), b);
    assert_eq!(h.s.peer(h.at(600)), Some(b));
    h.run_until(h.at(620));
    assert_eq!(h.sent.last().unwrap().to, b);
    // without symmetric RTP the SDP address stays
    let mut h = Harness::new(
        MediaConfig {
            symmetric_rtp: false,
            ..config()
        },
        tiny(),
    );
    h.s.handle_rtp(h.at(10), a, &pkt);
    assert_eq!(h.s.remote(), config().remote);
    assert_eq!(h.s.peer(h.at(10)), None, "sends go elsewhere: no one peer");
}

#[test]
fn inactivity_timeout_fires_once_and_rearms_on_traffic() {
    let mut h = Harness::new(
        MediaConfig {
            inactivity_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(600),
            ..config()
        },
        tiny(),
    );
    h.run_until(h.at(59_999));
    assert!(!h.events.contains(&MediaEvent::RtpTimeout));
    h.run_until(h.at(60_000));
    assert_eq!(
        h.events
            .iter()
            .filter(|e| **e == MediaEvent::RtpTimeout)
            .count(),
        1
    );
    h.run_until(h.at(130_000));
    assert_eq!(
        h.events
            .iter()
            .filter(|e| **e == MediaEvent::RtpTimeout)
            .count(),
        1
    );
    h.s.handle_rtp(
        h.now,
        "127.0.0.1:7000".parse().unwrap(),
        &rtp_bytes(0, 1, 0, 5, &[0xFF; 160]),
    );
    h.run_until(h.at(190_000));
    assert_eq!(
        h.events
            .iter()
            .filter(|e| **e == MediaEvent::RtpTimeout)
            .count(),
        2
    );
}

/// A caller that holds the call sends nothing: its silence may last the hold
/// timeout, not the inactivity timeout, and counts afresh once it takes the
/// call back.
#[test]
fn a_held_call_may_be_silent_for_the_hold_timeout() {
    let count = |h: &Harness| {
        h.events
            .iter()
            .filter(|e| **e == MediaEvent::RtpTimeout)
            .count()
    };
    let remote = config().remote;
    let mut h = Harness::new(
        MediaConfig {
            inactivity_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(300),
            ..config()
        },
        tiny(),
    );
    h.run_until(h.at(10_000));
    h.s.update_remote(h.now, remote, false);
    h.run_until(h.at(299_999));
    assert_eq!(
        count(&h),
        0,
        "held 290 s, silent 300 s: within the hold timeout"
    );
    // Taken back at 299.999 s: 60 s of silence from then, not from the start.
    h.s.update_remote(h.now, remote, true);
    h.run_until(h.at(359_998));
    assert_eq!(count(&h), 0, "taken back 59.999 s ago");
    h.run_until(h.at(360_000));
    assert_eq!(count(&h), 1, "60 s after it was taken back");

    // Held and silent for longer than the hold timeout: it ends.
    let mut h = Harness::new(
        MediaConfig {
            inactivity_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(300),
            peer_receives: false,
            ..config()
        },
        tiny(),
    );
    h.run_until(h.at(299_999));
    assert_eq!(count(&h), 0);
    h.run_until(h.at(300_000));
    assert_eq!(count(&h), 1, "300 s of silence on hold");
}

#[test]
fn malformed_packets_and_loss_statistics() {
    let mut h = Harness::new(config(), tiny());
    let src: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    for bad in [&[][..], &[0x80, 0][..], &[0x40; 20][..], &[0xBF; 12][..]] {
        h.s.handle_rtp(h.now, src, bad);
    }
    // A short event payload (malformed), then audio 10, 11, 13, 12, 16 in the same
    // sequence space: 2 lost (14, 15), 1 out of order.
    h.s.handle_rtp(h.now, src, &rtp_bytes(101, 9, 0, 5, &[1, 2]));
    for seq in [10u16, 11, 13, 12, 16] {
        h.s.handle_rtp(h.now, src, &rtp_bytes(0, seq, 0, 5, &[0xFF; 160]));
    }
    let st = h.s.stats();
    assert_eq!(st.malformed, 5);
    assert_eq!(st.packets_received, 6);
    assert_eq!(st.lost, 2);
    assert_eq!(st.out_of_order, 1);
    // random bytes never panic
    let mut x: u32 = 1;
    for len in 0..400 {
        let data: Vec<u8> = (0..len % 200)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let mut d = data.clone();
        if let Some(b) = d.first_mut() {
            *b = 0x80;
        }
        if d.len() > 1 {
            d[1] = [0u8, 101, 8][len % 3];
        }
        h.s.handle_rtp(h.now, src, &data);
        h.s.handle_rtp(h.now, src, &d);
    }
}

#[test]
fn a_pacing_grid_puts_the_first_packet_on_the_next_grid_point_and_keeps_ptime_after_it() {
    let origin = Instant::now();
    let grid = PacingGrid {
        origin,
        step: Duration::from_millis(5),
    };
    let ms = |n: u64| Duration::from_millis(n);
    assert_eq!(grid.align(origin), origin);
    assert_eq!(grid.align(origin + ms(5)), origin + ms(5));
    assert_eq!(
        grid.align(origin + ms(5) + Duration::from_nanos(1)),
        origin + ms(10)
    );
    assert_eq!(grid.align(origin + ms(123)), origin + ms(125));
    let zero = PacingGrid {
        origin,
        step: Duration::ZERO,
    };
    assert_eq!(zero.align(origin + ms(7)), origin + ms(7));

    // A session started between grid points sends its first packet on the next
    // one and then every 20 ms from there.
    let start = grid.align(origin + ms(12));
    let mut s = MediaSession::new(start, config(), tiny(), 1, 0, 0);
    s.start_sending();
    assert_eq!(s.poll_timeout(), Some(origin + ms(15)));
    s.handle_timeout(origin + ms(15));
    assert_eq!(s.poll_timeout(), Some(origin + ms(35)));
}
