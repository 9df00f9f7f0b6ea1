//! The phase lock on the wire (docs/operations.md): the server moves its packet
//! times for a caller whose packets arrive just after its own, so that a key is
//! answered a few ms after it comes instead of most of a packet time, and leaves
//! a caller alone whose packets already come a few ms before its own.
//!
//! `sspr-ivr dial --rtp-phase MS` times the caller's packets MS ms after the
//! server's (the first one heard sets the schedule; then the caller keeps its
//! own clock, as a phone does). The server counts its moves on `/metrics`.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sspr_ivr::media::rtp;

fn moves(server: &Server) -> f64 {
    server_sample(server, "sspr_ivr_rtp_phase_moves_total")
}

/// A stranger at 127.0.0.2 sending a steady stream of valid RTP (PCMU
/// silence, one packet every 20 ms, at a phase of its own) at `target`, from
/// the answer until stopped. Returns the stop flag and the thread.
fn spray(target: SocketAddr) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let (mut seq, mut ts, mut sent) = (1u16, 0u32, 0u64);
        let mut next = Instant::now();
        while !s.load(Ordering::SeqCst) {
            let header = rtp::RtpHeader {
                payload_type: 0,
                marker: false,
                sequence: seq,
                timestamp: ts,
                ssrc: 0x5EED_0001,
            };
            if sock
                .send_to(&rtp::build(&header, &[0xFF; 160]).unwrap(), target)
                .is_ok()
            {
                sent += 1;
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            next += Duration::from_millis(20);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        sent
    });
    (stop, thread)
}

/// One echo call whose packets come `phase_ms` after the server's, pressing
/// `42#` as `keys` says (`--dtmf`: after the intro; `--during`: a second into
/// it, typing ahead); with `sprayed`, a stranger sends RTP at the call's port
/// from the answer on. Returns the moves the call caused. The readback must be
/// right either way.
fn call(server: &Server, phase_ms: &str, keys: &[&str], sprayed: bool) -> f64 {
    let before = moves(server);
    let received = "sspr_ivr_rtp_packets_received_total";
    let received_before = server_sample(server, received);
    let mut args = vec!["--rtp-phase", phase_ms];
    args.extend_from_slice(keys);
    let mut d = Dialer::start(&server.uri("echo"), &args);
    let sprayer = sprayed.then(|| {
        let target = wait_for("the answer", Duration::from_secs(30), || {
            d.transcript().iter().find_map(|l| {
                let addr = l.split(" media ").nth(1)?.split(" to ").nth(1)?;
                addr.trim().parse::<SocketAddr>().ok()
            })
        });
        spray(target)
    });
    let ok = d.wait(Duration::from_secs(60));
    let transcript = d.transcript();
    let text = transcript.join("\n");
    if let Some((stop, thread)) = sprayer {
        stop.store(true, Ordering::SeqCst);
        let sent = thread.join().unwrap();
        assert!(sent > 100, "the stranger sent only {sent} packets");
    }
    assert!(
        ok,
        "dial failed:\n{text}\nserver:\n{}",
        server.output_text()
    );
    assert!(
        transcript
            .iter()
            .any(|l| l.contains(&format!("rtp phase {phase_ms} ms"))),
        "{text}"
    );
    let heard = prompts_heard(&transcript);
    assert_eq!(heard, echo_readback("42"), "{text}");
    wait_calls_ended(server);
    // The server took no packet but the caller's: the stranger's were refused
    // (by the trust check, or, once the call's socket is connected to the
    // caller, by the kernel).
    let caller_sent = rtp_sent(&transcript);
    let took = server_sample(server, received) - received_before;
    assert!(
        took <= caller_sent,
        "the server took {took} packets, the caller sent {caller_sent}"
    );
    moves(server) - before
}

#[test]
fn packet_times_move_for_a_caller_just_behind_them_and_only_for_it() {
    let server = Server::demo(&[]);
    // 12 ms after the server's packets is 8 ms before its next: inside the
    // band the lock keeps ([0, 11) ms), with room for either side's timer to
    // be late by several ms. A stranger sprays the call's port at a steady
    // phase of its own all the while: the call is not moved, the server takes
    // none of the stranger's packets, and the caller hears only its own keys. (That the
    // lock sees no packet before the trust check is tested in
    // `media::session::tests::phase`; this test cannot catch that on its own:
    // feeding the lock both streams spreads the window's slacks over 8 ms, which
    // keeps it still anyway. Tried: 3 of 3 runs passed with the check moved.)
    let in_band = call(&server, "12", &["--dtmf", "42#"], true);
    assert_eq!(in_band, 0.0, "a caller already in band was moved");
    // 2 ms after the server's packets is 18 ms before its next: every key
    // would wait most of a packet time, so the deadlines move (by 15 ms, to
    // about 3 ms after the caller's packets), once; the packet clock is the
    // same on both sides, so nothing moves again. This caller types ahead:
    // `42#` a second into the intro, while the call is moving.
    let behind = call(&server, "2", &["--during", "echo_intro=42#"], false);
    assert!(
        (1.0..=2.0).contains(&behind),
        "{behind} moves for a caller 18 ms ahead of the server's deadlines"
    );
}
