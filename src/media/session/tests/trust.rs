//! Media trust through the whole session: nothing before the ACK or the caller's
//! first packet, and a third party's events, tones and packets change nothing.

use super::*;

const CALLER: &str = "127.0.0.1:6000";
const ATTACKER: &str = "127.0.0.2:6666";

/// RFC 4733 events for `keys` (80 ms each, one every 160 ms from `start_ms`), and
/// 20 ms audio packets of the same keys as in-band tones, in time order.
fn keys_as_events_and_tones(keys: &str, start_ms: u64, ssrc: u32) -> Vec<(u64, Vec<u8>)> {
    let sender = Sender::new(101, 20).unwrap();
    let mut out = Vec::new();
    for (k, d) in keys.chars().enumerate() {
        let at = start_ms + 160 * k as u64;
        for p in sender
            .press(d, ssrc, 1000 + k as u16 * 10, 1280 * k as u32, 80 * MS)
            .unwrap()
        {
            out.push((at + p.offset.as_millis() as u64, p.to_bytes()));
        }
    }
    let tones = ToneGenerator::new().sequence(keys, 80, 80, -10.0);
    for (i, c) in tones.chunks(160).enumerate() {
        let data = rtp_bytes(
            0,
            i as u16,
            160 * i as u32,
            ssrc,
            &g711::encode(Codec::Pcmu, c),
        );
        out.push((start_ms + 20 * i as u64, data));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

#[test]
fn nothing_is_sent_before_the_ack_or_the_callers_first_packet() {
    let caller: SocketAddr = CALLER.parse().unwrap();
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    let pkt = rtp_bytes(0, 1, 0, 5, &[0xFF; 160]);
    // Waiting for the ACK: a second of silence goes nowhere.
    let mut h = Harness::unconfirmed(config(), tiny());
    h.run_until(h.at(1000));
    assert!(h.sent.is_empty());
    // A stranger's packet opens nothing.
    h.s.handle_rtp(h.at(1000), attacker, &pkt);
    h.run_until(h.at(1500));
    assert!(h.sent.is_empty());
    assert_eq!(h.s.rejected(), (1, 0));
    // The caller's first valid packet does: the stream starts on the next packet
    // deadline, to the caller, on the original clock.
    h.s.handle_rtp(h.at(1510), caller, &pkt);
    h.run_until(h.at(1600));
    assert_eq!(h.sent.len(), 5, "1520, 1540, …, 1600 ms");
    assert!(h.sent.iter().all(|p| p.to == caller));
    assert!(h.sent[0].header.marker);
    assert_eq!(h.sent[0].header.sequence, 65530);
    assert_eq!(
        h.sent[0].header.timestamp,
        0xFFFF_FF00u32.wrapping_add(160 * 76)
    );
    // Or the ACK, with the caller silent: to the SDP address.
    let mut h = Harness::unconfirmed(config(), tiny());
    h.run_until(h.at(990));
    h.s.start_sending();
    h.run_until(h.at(1040));
    assert_eq!(h.sent.len(), 3);
    assert!(h.sent.iter().all(|p| p.to == config().remote));
}

#[test]
fn a_third_partys_events_and_tones_change_nothing() {
    let caller: SocketAddr = CALLER.parse().unwrap();
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    let mut h = Harness::unconfirmed(config(), tiny());
    // The attacker sprays from the start, before the caller's first packet; the
    // caller presses 100100# from 500 ms.
    let mut script: Vec<(u64, SocketAddr, Vec<u8>)> = Vec::new();
    for round in 0..6 {
        for (t, d) in keys_as_events_and_tones("9999999999", round * 1700, 0xBAD) {
            script.push((t, attacker, d));
        }
    }
    for (t, d) in keys_as_events_and_tones("100100#", 500, 77) {
        script.push((t, caller, d));
    }
    script.sort_by_key(|(t, _, _)| *t);
    let attack_packets = script.iter().filter(|(_, s, _)| *s == attacker).count() as u64;
    for (t, source, data) in script {
        h.run_until(h.at(t));
        h.s.handle_rtp(h.now, source, &data);
        h.drain();
    }
    h.run_until(h.at(11_000));
    assert_eq!(h.digits(), "100100#");
    assert_eq!(h.s.rejected(), (attack_packets, 0));
    assert!(!h.sent.is_empty());
    assert!(
        h.sent.iter().all(|p| p.to == caller),
        "nothing to the attacker"
    );
    assert_eq!(h.s.stats().latches, 1);
}

#[test]
fn the_latch_moves_within_the_callers_ip_only() {
    let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let other_ip: SocketAddr = "127.0.0.3:7000".parse().unwrap();
    let pkt = rtp_bytes(0, 1, 0, 5, &[0xFF; 160]);
    // `any`: the first sender from anywhere latches, but then only its IP.
    let mut h = Harness::new(
        MediaConfig {
            trust: RtpTrust::from_sources(&[crate::media::RtpSource::Any]),
            ..config()
        },
        tiny(),
    );
    h.s.handle_rtp(h.at(10), other_ip, &pkt);
    assert_eq!(h.s.remote(), other_ip);
    h.s.handle_rtp(h.at(2000), a, &pkt);
    assert_eq!(h.s.remote(), other_ip, "another IP never takes over");
    assert_eq!(h.s.rejected(), (0, 1));
    // `sdp`/`signalling`: a malformed datagram from the caller latches nothing.
    let mut h = Harness::new(config(), tiny());
    h.s.handle_rtp(h.at(10), a, &[0x80, 0]);
    h.s.handle_rtp(h.at(20), b, &pkt);
    assert_eq!(h.s.remote(), b);
    assert_eq!(h.s.stats().malformed, 1);
}

/// A gateway that re-anchors its media on another IP (a re-INVITE or UPDATE
/// the endpoint answered): before the new offer its packets are a stranger's;
/// after it they latch, its keys are heard and the stream goes to it, while the
/// old address is refused. A hold stops the stream without losing its place;
/// taking the call back resumes it on the same sequence.
#[test]
fn a_new_offer_moves_the_trust_and_a_hold_pauses_the_stream() {
    let old: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let new: SocketAddr = "127.0.0.3:50000".parse().unwrap();
    let mut h = Harness::new(config(), tiny());
    let audio = |seq: u16| rtp_bytes(0, seq, 160 * u32::from(seq), 7, &[0xFF; 160]);
    h.s.handle_rtp(h.at(5), old, &audio(1));
    h.run_until(h.at(100));
    assert!(!h.sent.is_empty() && h.sent.iter().all(|p| p.to == old));
    // Media from the new address before the offer that names it: refused.
    h.s.handle_rtp(h.at(105), new, &audio(2));
    assert_eq!(h.s.rejected(), (1, 0));
    h.s.update_remote(h.now, new, true);
    let before = h.sent.len();
    // Its packets latch now, and its key is heard.
    let sender = Sender::new(101, 20).unwrap();
    for p in sender.press('7', 9, 500, 16_000, 80 * MS).unwrap() {
        h.run_until(h.at(110 + p.offset.as_millis() as u64));
        h.s.handle_rtp(h.now, new, &p.to_bytes());
    }
    h.run_until(h.at(400));
    h.drain();
    assert_eq!(h.digits(), "7");
    assert!(
        h.sent[before..].iter().all(|p| p.to == new),
        "the stream follows the new offer"
    );
    // The old address is refused now (trusted as the signalling IP, not latched).
    h.s.handle_rtp(h.at(405), old, &audio(3));
    assert_eq!(h.s.rejected(), (1, 1));
    // On hold: nothing goes out for a second.
    h.s.update_remote(h.now, new, false);
    assert!(h.s.is_held());
    let held_at = h.sent.len();
    h.run_until(h.at(1400));
    assert_eq!(h.sent.len(), held_at, "nothing is sent on hold");
    // Taken back: the stream resumes, its sequence numbers where they were.
    h.s.update_remote(h.now, new, true);
    h.run_until(h.at(1500));
    assert_eq!(h.sent.len(), held_at + 5, "1420 … 1500 ms");
    let last = h.sent[held_at - 1].header.sequence;
    assert_eq!(h.sent[held_at].header.sequence, last.wrapping_add(1));
    assert!(h.sent[held_at..].iter().all(|p| p.to == new));
}

/// A call whose first offer was on hold sends nothing, whatever the caller
/// sends it, until a new offer takes it back.
#[test]
fn a_call_offered_on_hold_sends_nothing_until_taken_back() {
    let caller: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let held = MediaConfig {
        peer_receives: false,
        ..config()
    };
    let mut h = Harness::new(held, tiny());
    h.s.handle_rtp(h.at(5), caller, &rtp_bytes(0, 1, 0, 7, &[0xFF; 160]));
    h.run_until(h.at(500));
    assert!(h.s.is_held());
    assert!(h.sent.is_empty(), "{} packets sent on hold", h.sent.len());
    h.s.update_remote(h.now, caller, true);
    h.run_until(h.at(600));
    assert_eq!(h.sent.len(), 5, "520 … 600 ms");
}
