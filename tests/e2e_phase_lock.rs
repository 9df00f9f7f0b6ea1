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
use std::time::Duration;

fn sample(server: &Server, series: &str) -> f64 {
    metric_sample(&server_metrics(server), series).unwrap_or_else(|| panic!("{series} on /metrics"))
}

fn moves(server: &Server) -> f64 {
    sample(server, "sspr_ivr_rtp_phase_moves_total")
}

/// One echo call whose packets come `phase_ms` after the server's; returns
/// the moves it caused. The readback must be right either way.
fn call(server: &Server, phase_ms: &str) -> f64 {
    let before = moves(server);
    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "42#", "--rtp-phase", phase_ms],
        Duration::from_secs(60),
    );
    let text = transcript.join("\n");
    assert!(
        ok,
        "dial failed:\n{text}\n{err}\nserver:\n{}",
        server.output_text()
    );
    assert!(
        transcript
            .iter()
            .any(|l| l.contains(&format!("rtp phase {phase_ms} ms"))),
        "{text}"
    );
    assert_eq!(
        prompts_heard(&transcript),
        ["echo_intro", "you_entered", "digit_4", "digit_2", "goodbye"],
        "{text}"
    );
    // A call's counters are final once it has ended.
    wait_for("the call to end", Duration::from_secs(20), || {
        (sample(server, "sspr_ivr_calls_active") == 0.0).then_some(())
    });
    moves(server) - before
}

#[test]
fn packet_times_move_for_a_caller_just_behind_them_and_only_for_it() {
    let server = Server::demo(&[]);
    // 12 ms after the server's packets is 8 ms before its next: inside the
    // band the lock keeps ([0, 11) ms), with room for either side's timer to
    // be late by several ms.
    let in_band = call(&server, "12");
    assert_eq!(in_band, 0.0, "a caller already in band was moved");
    // 2 ms after the server's packets is 18 ms before its next: every key
    // would wait most of a packet time, so the deadlines move (by 15 ms, to
    // about 3 ms after the caller's packets), once; the packet clock is the
    // same on both sides, so nothing moves again.
    let behind = call(&server, "2");
    assert!(
        (1.0..=2.0).contains(&behind),
        "{behind} moves for a caller 18 ms ahead of the server's deadlines"
    );
}
