//! `lost` counts packets of the caller's stream that never arrived: events and audio share
//! one sequence space, duplicates do not hide a gap, and a sender that restarts its numbering
//! (sipp replaying one capture after another) loses nothing.

use super::*;

const SSRC: u32 = 0x5eed;

fn packet(pt: u8, seq: u16, marker: bool) -> Vec<u8> {
    let payload: &[u8] = if pt == 101 {
        &[5, 0x0a, 0, 160]
    } else {
        &[0xFF; 160]
    };
    rtp::build(
        &RtpHeader {
            payload_type: pt,
            marker,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: SSRC,
        },
        payload,
    )
    .unwrap()
}

/// Feeds `(payload type, sequence, marker)` packets from one caller; returns the stats.
fn feed(packets: impl IntoIterator<Item = (u8, u16, bool)>) -> MediaStats {
    let mut h = Harness::new(config(), tiny());
    let src: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    for (pt, seq, marker) in packets {
        h.s.handle_rtp(h.now, src, &packet(pt, seq, marker));
    }
    h.s.stats()
}

fn audio(seqs: impl IntoIterator<Item = u16>) -> Vec<(u8, u16, bool)> {
    seqs.into_iter().map(|s| (0, s, false)).collect()
}

#[test]
fn events_between_audio_packets_are_not_lost_audio() {
    // A phone: audio 100..=109, a key as 8 event packets 110..=117 (marker on the first),
    // audio again from 118.
    let mut p = audio(100..=109);
    p.extend((110..=117).map(|s| (101, s, s == 110)));
    p.extend(audio(118..=140));
    let st = feed(p);
    assert_eq!(st.packets_received, 41);
    assert_eq!(st.lost, 0);
    assert_eq!(st.out_of_order, 0);
}

#[test]
fn a_gap_inside_a_stream_is_loss_until_the_packets_turn_up() {
    let mut p = audio(1..=10);
    p.extend(audio(14..=20)); // 11, 12, 13 missing
    assert_eq!(feed(p.clone()).lost, 3);
    p.extend(audio([12])); // one of them late
    let st = feed(p);
    assert_eq!(st.lost, 2);
    assert_eq!(st.out_of_order, 1);
}

#[test]
fn duplicates_do_not_make_up_for_a_missing_packet() {
    let st = feed(audio([1, 2, 2, 2, 4, 5]));
    assert_eq!(st.lost, 1);
    assert_eq!(st.out_of_order, 2);
}

#[test]
fn captures_replayed_one_after_another_lose_nothing() {
    // sipp's dtmf_2833_1.pcap (7984..=7991), dtmf_2833_2.pcap (8042..=8049), then 1 again:
    // each capture keeps its own numbers; its first packet has the marker bit.
    let capture = |first: u16| (first..first + 8).map(move |s| (101, s, s == first));
    let p: Vec<_> = capture(7984)
        .chain(capture(8042))
        .chain(capture(7984))
        .chain(capture(12080))
        .collect();
    let st = feed(p);
    assert_eq!(st.packets_received, 32);
    assert_eq!(st.lost, 0);
    assert_eq!(st.out_of_order, 0);
}

#[test]
fn a_very_large_jump_is_a_new_run_once_confirmed() {
    // No marker, but 20000 numbers ahead and followed by its successor: the sender restarted.
    let mut p = audio(1..=5);
    p.extend(audio(25_000..=25_010));
    assert_eq!(feed(p).lost, 0);
    // One stray far-off packet, then the stream goes on: nothing lost either.
    let mut p = audio(1..=5);
    p.extend(audio([40_000]));
    p.extend(audio(6..=9));
    assert_eq!(feed(p).lost, 0);
    // Loss before a restart still counts.
    let mut p = audio([1, 2, 5]);
    p.extend(audio(25_000..=25_002));
    assert_eq!(feed(p).lost, 2);
}

#[test]
fn sequence_numbers_wrap() {
    let mut p = audio(65_530..=65_535);
    p.extend(audio(0..=3));
    p.extend(audio(5..=9)); // 4 missing
    let st = feed(p);
    assert_eq!(st.lost, 1);
    assert_eq!(st.out_of_order, 0);
}

#[test]
fn events_numbered_ahead_of_the_audio_that_overtakes_them_are_not_lost() {
    // `sspr-ivr dial`: a key press reserves 6..=13 for its events, which go out over 100 ms
    // while the audio carries on from 14; the first event (marker) arrives after audio 14.
    let mut p = audio(1..=5);
    p.extend(audio([14]));
    p.push((101, 6, true));
    p.extend(audio([15]));
    p.extend((7..=13).map(|s| (101, s, false)));
    p.extend(audio(16..=30));
    let st = feed(p);
    assert_eq!(st.lost, 0);
    assert_eq!(st.out_of_order, 8);
}
