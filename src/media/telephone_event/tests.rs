use super::*;
use crate::media::rtp;

const MS: Duration = Duration::from_millis(1);

fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .to_bytes()
}

/// One recorded key press: (offset from the first packet, RTP datagram).
type Press = Vec<(Duration, Vec<u8>)>;

fn sipp_fixture() -> Vec<(String, Press)> {
    let text = include_str!("../testdata/sipp_dtmf_2833.txt");
    let mut out: Vec<(String, Press)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split_whitespace();
        let key = f.next().unwrap().to_string();
        let us: u64 = f.next().unwrap().parse().unwrap();
        let hex = f.next().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        match out.last_mut() {
            Some((k, p)) if *k == key => p.push((Duration::from_micros(us), bytes)),
            _ => out.push((key, vec![(Duration::from_micros(us), bytes)])),
        }
    }
    out
}

fn key_char(name: &str) -> char {
    match name {
        "pound" => '#',
        "star" => '*',
        d => d.chars().next().unwrap(),
    }
}

/// Replays presses like sipp's `play_pcap_audio`, each starting `gap` after the
/// previous one's last packet, calling `handle_timeout` every 10 ms in between.
fn replay(rx: &mut Receiver, start: Instant, presses: &[&Press], gap: Duration) -> String {
    let mut out = String::new();
    let mut t0 = start;
    let mut clock = start;
    for press in presses {
        for (off, data) in press.iter() {
            let at = t0 + *off;
            while clock + 10 * MS < at {
                clock += 10 * MS;
                rx.handle_timeout(clock);
            }
            clock = at;
            let p = rtp::parse(data).unwrap();
            if let Some(d) = rx
                .handle_packet(at, p.header.ssrc, p.header.timestamp, p.payload)
                .unwrap()
            {
                out.push(d);
            }
        }
        t0 = t0 + press.last().unwrap().0 + gap;
    }
    out
}

#[test]
fn payload_codec_table() {
    let cases: [(&[u8], TelephoneEvent); 4] = [
        (
            &[1, 0x0a, 0, 0],
            TelephoneEvent {
                event: 1,
                end: false,
                volume: 10,
                duration: 0,
            },
        ),
        (
            &[11, 0x8a, 0x08, 0xc0],
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 2240,
            },
        ),
        (
            &[15, 0xff, 0xff, 0xff],
            TelephoneEvent {
                event: 15,
                end: true,
                volume: 63,
                duration: 0xffff,
            },
        ),
        (
            &[0, 0x40, 0, 160, 9, 9],
            TelephoneEvent {
                event: 0,
                end: false,
                volume: 0,
                duration: 160,
            },
        ),
    ];
    for (bytes, want) in cases {
        let got = TelephoneEvent::parse(bytes).unwrap();
        assert_eq!(got, want);
        assert_eq!(&got.to_bytes()[..2], &[bytes[0], bytes[1] & 0xbf]);
    }
    assert_eq!(
        TelephoneEvent::parse(&[1, 2, 3]),
        Err(TelephoneEventError::TooShort(3))
    );
    assert_eq!(event_to_digit(11), Some('#'));
    assert_eq!(event_to_digit(16), None);
    assert_eq!(digit_to_event('*'), Some(10));
    assert_eq!(digit_to_event('d'), Some(15));
    assert_eq!(digit_to_event('x'), None);
}

#[test]
fn every_sipp_pcap_is_one_digit() {
    let fixture = sipp_fixture();
    assert_eq!(fixture.len(), 12);
    for (key, press) in &fixture {
        let mut rx = Receiver::default();
        let got = replay(&mut rx, Instant::now(), &[press], 200 * MS);
        assert_eq!(got, key_char(key).to_string(), "pcap {key}");
    }
}

#[test]
fn sipp_pcap_pressed_twice_is_two_digits_for_any_gap() {
    let fixture = sipp_fixture();
    for gap in [0, 1, 20, 100, 499, 501, 1000, 5000].map(|ms| ms * MS) {
        for (key, press) in &fixture {
            let mut rx = Receiver::default();
            let got = replay(&mut rx, Instant::now(), &[press, press], gap);
            let k = key_char(key);
            assert_eq!(got, format!("{k}{k}"), "pcap {key} gap {gap:?}");
        }
    }
}

#[test]
fn typing_100100_pound_with_stock_pcaps() {
    let fixture = sipp_fixture();
    let find = |k: &str| &fixture.iter().find(|(n, _)| n == k).unwrap().1;
    let seq: Vec<&Press> = ["1", "0", "0", "1", "0", "0", "pound"]
        .iter()
        .map(|k| find(k))
        .collect();
    for gap in [0, 50, 300].map(|ms| ms * MS) {
        let mut rx = Receiver::default();
        assert_eq!(
            replay(&mut rx, Instant::now(), &seq, gap),
            "100100#",
            "gap {gap:?}"
        );
    }
}

#[test]
fn lost_end_packets_force_an_end_and_a_replay_counts_again() {
    let fixture = sipp_fixture();
    let press: Press = fixture[5].1.iter().take(7).cloned().collect(); // no end packets
    let key = key_char(&fixture[5].0);
    for gap in [20, 200, 600, 2000].map(|ms| ms * MS) {
        let mut rx = Receiver::default();
        let t = Instant::now();
        let got = replay(&mut rx, t, &[&press, &press], gap);
        assert_eq!(got, format!("{key}{key}"), "gap {gap:?}");
        // the open press is forced to end after 500 ms without packets
        let deadline = rx.poll_timeout().expect("open press has a deadline");
        rx.handle_timeout(deadline);
        assert!(!rx.is_pressing());
        assert_eq!(rx.poll_timeout(), None);
    }
}

#[test]
fn retransmitted_and_reordered_packets_are_not_new_presses() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    let feed = |rx: &mut Receiver, ms: u32, p: [u8; 4]| {
        rx.handle_packet(t + MS * ms, 7, 1000, &p).unwrap()
    };
    // first packet arrives after the second
    assert_eq!(feed(&mut rx, 0, ev(3, false, 320)), Some('3'));
    assert_eq!(feed(&mut rx, 1, ev(3, false, 160)), None);
    assert_eq!(feed(&mut rx, 20, ev(3, false, 480)), None);
    assert_eq!(feed(&mut rx, 40, ev(3, true, 640)), None);
    assert_eq!(feed(&mut rx, 41, ev(3, false, 560)), None); // late update after the end
    assert_eq!(feed(&mut rx, 60, ev(3, true, 640)), None);
    assert_eq!(feed(&mut rx, 80, ev(3, true, 640)), None);
    assert_eq!(feed(&mut rx, 300, ev(3, true, 640)), None); // very late retransmission
    assert_eq!(rx.stats().presses, 1);
}

#[test]
fn end_only_press_is_reported_once() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    let mut got = String::new();
    for ms in [0, 20, 40] {
        if let Some(d) = rx
            .handle_packet(t + MS * ms, 1, 5, &ev(9, true, 800))
            .unwrap()
        {
            got.push(d);
        }
    }
    assert_eq!(got, "9");
}

#[test]
fn new_event_from_same_ssrc_ends_the_previous_press() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    assert_eq!(
        rx.handle_packet(t, 1, 100, &ev(1, false, 160)).unwrap(),
        Some('1')
    );
    // end of '1' lost; '2' starts
    assert_eq!(
        rx.handle_packet(t + 100 * MS, 1, 900, &ev(2, false, 160))
            .unwrap(),
        Some('2')
    );
    // '1' pressed again with a new timestamp: a new press even though its end was lost
    assert_eq!(
        rx.handle_packet(t + 200 * MS, 1, 1700, &ev(1, false, 160))
            .unwrap(),
        Some('1')
    );
    // the same key with the same timestamp from another SSRC is another stream
    assert_eq!(
        rx.handle_packet(t + 210 * MS, 2, 1700, &ev(1, false, 160))
            .unwrap(),
        Some('1')
    );
    assert_eq!(rx.stats().forced_ends, 2);
}

#[test]
fn duration_wrap_and_long_event_segments_are_one_press() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    let mut got = String::new();
    let mut push = |d: Option<char>| got.extend(d);
    // 10 s press, one update every 50 ms (400 samples), raw duration wrapping
    let mut dur: u32 = 400;
    let mut ms = 0;
    while dur <= 80_000 {
        push(
            rx.handle_packet(t + MS * ms as u32, 3, 0, &ev(5, false, dur as u16))
                .unwrap(),
        );
        dur += 400;
        ms += 50;
        rx.handle_timeout(t + ms * MS);
    }
    push(
        rx.handle_packet(t + MS * ms as u32, 3, 0, &ev(5, true, 80_000u32 as u16))
            .unwrap(),
    );
    assert_eq!(got, "5");

    // RFC 4733 §2.5.1.3 segments: second segment starts at timestamp + 0xFFFF
    let mut rx = Receiver::default();
    let mut got = String::new();
    let base = 0xFFFF_0000u32;
    got.extend(rx.handle_packet(t, 3, base, &ev(8, false, 400)).unwrap());
    for k in 1..=163u32 {
        got.extend(
            rx.handle_packet(t + MS * (50 * k), 3, base, &ev(8, false, (400 * k) as u16))
                .unwrap(),
        );
    }
    got.extend(
        rx.handle_packet(t + 8191 * MS, 3, base, &ev(8, false, 0xFFFF))
            .unwrap(),
    );
    got.extend(
        rx.handle_packet(t + 8192 * MS, 3, base, &ev(8, true, 0xFFFF))
            .unwrap(),
    );
    got.extend(
        rx.handle_packet(
            t + 8200 * MS,
            3,
            base.wrapping_add(0xFFFF),
            &ev(8, false, 400),
        )
        .unwrap(),
    );
    got.extend(
        rx.handle_packet(
            t + 8300 * MS,
            3,
            base.wrapping_add(0xFFFF),
            &ev(8, true, 1200),
        )
        .unwrap(),
    );
    assert_eq!(got, "8");
}

#[test]
fn dedupe_state_expires() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    assert_eq!(
        rx.handle_packet(t, 1, 100, &ev(4, true, 800)).unwrap(),
        Some('4')
    );
    assert_eq!(
        rx.handle_packet(t + 3 * Duration::from_secs(1), 1, 100, &ev(4, true, 800))
            .unwrap(),
        None
    );
    // long after expiry the same packet is a new press
    assert_eq!(
        rx.handle_packet(t + Duration::from_secs(10), 1, 100, &ev(4, true, 800))
            .unwrap(),
        Some('4')
    );
}

#[test]
fn non_dtmf_events_and_short_payloads() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    assert_eq!(
        rx.handle_packet(t, 1, 1, &ev(32, false, 160)).unwrap(),
        None
    );
    assert!(rx.handle_packet(t, 1, 1, &[1, 2]).is_err());
    assert_eq!(rx.stats().non_dtmf_events, 1);
}

#[test]
fn flood_of_random_packets_is_bounded_and_never_panics() {
    let t = Instant::now();
    let mut rx = Receiver::default();
    let mut x: u32 = 99;
    for i in 0..5000u64 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let b = x.to_be_bytes();
        let _ = rx.handle_packet(t + MS * i as u32, x >> 30, x.rotate_left(7), &b);
        rx.handle_timeout(t + MS * i as u32);
    }
    assert!(rx.presses.len() <= MAX_PRESSES);
}

#[test]
fn sender_packets_table() {
    let s = Sender::new(96, 20).unwrap();
    let pkts = s
        .press('#', 0xabcd, 65534, 4000, Duration::from_millis(100))
        .unwrap();
    let want: [(u64, u16, bool, bool, u16); 8] = [
        (0, 65534, true, false, 160),
        (20, 65535, false, false, 320),
        (40, 0, false, false, 480),
        (60, 1, false, false, 640),
        (80, 2, false, false, 800),
        (100, 3, false, true, 800),
        (120, 4, false, true, 800),
        (140, 5, false, true, 800),
    ];
    assert_eq!(pkts.len(), want.len());
    for (p, (off, seq, marker, end, dur)) in pkts.iter().zip(want) {
        assert_eq!(p.offset, Duration::from_millis(off));
        assert_eq!(p.header.sequence, seq);
        assert_eq!(p.header.marker, marker);
        assert_eq!(p.header.timestamp, 4000);
        assert_eq!(p.header.ssrc, 0xabcd);
        assert_eq!(p.header.payload_type, 96);
        let e = TelephoneEvent::parse(&p.payload).unwrap();
        assert_eq!((e.event, e.end, e.duration), (11, end, dur));
        let parsed = rtp::parse(&p.to_bytes()).unwrap().header;
        assert_eq!(parsed, p.header);
    }
    assert!(s.press('x', 1, 1, 1, Duration::from_millis(100)).is_err());
    assert!(s.press('1', 1, 1, 1, Duration::from_secs(9)).is_err());
    assert!(Sender::new(101, 0).is_err());
}

#[test]
fn sender_to_receiver_one_digit_per_press() {
    let s = Sender::new(101, 20).unwrap();
    let t = Instant::now();
    let mut rx = Receiver::default();
    let mut got = String::new();
    let mut start = t;
    let mut ts = 160u32;
    for d in "0123456789*#ABCD11".chars() {
        for p in s.press(d, 42, 0, ts, Duration::from_millis(120)).unwrap() {
            got.extend(
                rx.handle_packet(start + p.offset, 42, p.header.timestamp, &p.payload)
                    .unwrap(),
            );
        }
        start += Duration::from_millis(300);
        ts = ts.wrapping_add(2400);
    }
    assert_eq!(got, "0123456789*#ABCD11");
}

/// The committed fixture is exactly what the stock pcaps contain (when sipp is installed).
#[test]
fn fixture_matches_installed_sipp_pcaps() {
    let dir = std::path::Path::new("/usr/share/sip-tester");
    if !dir.exists() {
        return;
    }
    for (key, press) in sipp_fixture() {
        let data = std::fs::read(dir.join(format!("dtmf_2833_{key}.pcap"))).unwrap();
        let packets = parse_pcap_udp_payloads(&data);
        let want: Vec<&Vec<u8>> = press.iter().map(|(_, b)| b).collect();
        let got: Vec<&Vec<u8>> = packets.iter().collect();
        assert_eq!(got, want, "pcap {key}");
    }
}

/// Minimal pcap reader: classic little-endian pcap, Ethernet + IPv4 + UDP.
fn parse_pcap_udp_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian pcap magic"
    );
    let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    assert_eq!(u32le(&data[20..24]), 1, "Ethernet link type");
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= data.len() {
        let incl = u32le(&data[pos + 8..pos + 12]);
        let frame = &data[pos + 16..pos + 16 + incl];
        pos += 16 + incl;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        assert_eq!(frame[14 + 9], 17, "UDP");
        let udp = &frame[14 + ihl..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(udp[8..len].to_vec());
    }
    out
}
