//! The packet deadlines follow the caller's packets ([`MediaSession::lock_phase`]):
//! a caller's packet is read in the turn right after it arrives, one packet time
//! apart as before, on the pacing grid.

use super::*;

const STEP: Duration = Duration::from_millis(5);

fn audio(seq: u16) -> Vec<u8> {
    rtp::build(
        &RtpHeader {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0x5eed,
        },
        &[0xFF; 160],
    )
    .unwrap()
}

/// A caller whose packets arrive every `every_ms` from `first_ms`, `n` of them;
/// the session's deadlines are served exactly on time between them.
fn call(first_ms: u64, every_ms: u64, n: u16) -> Harness {
    let mut h = Harness::new(config(), tiny());
    h.s.lock_phase(STEP);
    let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for k in 0..n {
        let at = h.at(first_ms + every_ms * u64::from(k));
        h.run_until(at);
        h.s.handle_rtp(at, src, &audio(k));
    }
    h
}

/// How long after the last caller packet the next packet leaves.
fn answer_wait(h: &Harness) -> Duration {
    h.s.poll_timeout().unwrap() - h.now
}

#[test]
fn a_caller_just_after_our_deadlines_is_answered_a_few_ms_after_its_packets() {
    // Its packets arrive 7 ms after each of ours: a key would wait 13 ms.
    let before = call(7, 20, 5);
    assert_eq!(answer_wait(&before), Duration::from_millis(13));
    let h = call(7, 20, 200);
    // Ten packets in, the deadlines moved two steps earlier, once.
    assert_eq!(h.s.stats().phase_moves, 1);
    assert_eq!(answer_wait(&h), Duration::from_millis(3));
    // Still one packet time apart but for the one move, and on the grid.
    let gaps: Vec<Duration> = h.sent.windows(2).map(|w| w[1].at - w[0].at).collect();
    let odd: Vec<_> = gaps.iter().filter(|g| **g != 20 * MS).collect();
    assert_eq!(odd, [&(10 * MS)], "{gaps:?}");
    for s in &h.sent {
        assert_eq!((s.at - h.t0).as_nanos() % STEP.as_nanos(), 0);
    }
    // The media clock runs on as before: 160 samples per packet.
    for w in h.sent.windows(2) {
        assert_eq!(
            w[1].header.timestamp.wrapping_sub(w[0].header.timestamp),
            160
        );
        assert_eq!(w[1].header.sequence, w[0].header.sequence.wrapping_add(1));
    }
}

#[test]
fn a_caller_just_before_our_deadlines_moves_nothing() {
    let h = call(17, 20, 200);
    assert_eq!(h.s.stats().phase_moves, 0);
    assert_eq!(answer_wait(&h), Duration::from_millis(3));
}

#[test]
fn a_caller_with_another_packet_time_moves_nothing() {
    let h = call(7, 30, 200);
    assert_eq!(h.s.stats().phase_moves, 0);
    assert!(h.sent.windows(2).all(|w| w[1].at - w[0].at == 20 * MS));
}

#[test]
fn without_a_lock_the_deadlines_stay_where_they_were() {
    let mut h = Harness::new(config(), tiny());
    let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for k in 0..200u16 {
        let at = h.at(7 + 20 * u64::from(k));
        h.run_until(at);
        h.s.handle_rtp(at, src, &audio(k));
    }
    assert_eq!(h.s.stats().phase_moves, 0);
    assert_eq!(answer_wait(&h), Duration::from_millis(13));
}

/// A stranger spraying packets at the call from another address, three at a
/// time at a steady phase of its own, while the caller is quiet (on hold, or
/// between talkspurts), is refused before the lock sees it: only the caller's
/// packets move the deadlines.
#[test]
fn a_strangers_packets_do_not_move_the_deadlines() {
    let mut h = Harness::new(config(), tiny());
    h.s.lock_phase(STEP);
    let caller: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let stranger: SocketAddr = "127.0.0.9:40000".parse().unwrap();
    for k in 0..200u16 {
        // The caller: 3 ms before each deadline (in the band), then quiet.
        if k < 20 {
            let at = h.at(17 + 20 * u64::from(k));
            h.run_until(at);
            h.s.handle_rtp(at, caller, &audio(k));
        }
        // The stranger: 5-7 ms after each deadline (a lock would move for it).
        for j in 0..3u64 {
            let at = h.at(25 + 20 * u64::from(k) + j);
            h.run_until(at);
            h.s.handle_rtp(at, stranger, &audio(1000 + k));
        }
    }
    assert_eq!(h.s.stats().rejected_untrusted, 600);
    assert_eq!(h.s.stats().phase_moves, 0);
}

/// A caller that jumps its own phase on purpose. Inside a window the jumps
/// spread its slacks too wide to lock to: nothing moves. Timed to the windows,
/// it can move the deadlines at most once per one-second window, so the
/// intervals it disturbs stay a small, bounded share of the call's.
#[test]
fn a_caller_that_jumps_its_phase_moves_the_deadlines_at_most_once_a_window() {
    let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let jumping = |flip: &dyn Fn(u64) -> bool| {
        let mut h = Harness::new(config(), tiny());
        h.s.lock_phase(STEP);
        // 30 s of packets, 2 or 12 ms after our original deadlines.
        for k in 0..1500u64 {
            let at = h.at(if flip(k) { 12 } else { 2 } + 20 * k);
            h.run_until(at);
            h.s.handle_rtp(at, src, &audio(k as u16));
        }
        let odd = h
            .sent
            .windows(2)
            .filter(|w| w[1].at - w[0].at != 20 * MS)
            .count() as u64;
        (h.s.stats().phase_moves, odd)
    };
    // Jumps every 25 packets: after the first lock, no window is steady enough.
    let (moves, odd) = jumping(&|k| k >= 10 && (k / 25) % 2 == 1);
    assert_eq!((moves, odd), (1, 1));
    // Jumps exactly at the window boundaries (10, 60, 110, ...).
    let (moves, odd) = jumping(&|k| k >= 10 && ((k - 10) / 50) % 2 == 0);
    assert!((5..=30).contains(&moves), "{moves} moves in 30 windows");
    assert_eq!(odd, moves, "one irregular interval per move");
}
