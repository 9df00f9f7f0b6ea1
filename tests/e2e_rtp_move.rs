//! A caller whose NAT rebinds mid-call: its RTP falls quiet for 0.7 s and
//! comes back from another port of the same IP, the old port closed (`sspr-ivr
//! dial --rtp-move-after`). While a caller's stream is steady the server keeps
//! the call's socket `connect`ed to it (`runtime::call_task::follow_peer`): the
//! kernel then drops every other sender's datagrams, the new port's too. So the
//! socket must be unconnected again once the caller has been quiet long enough
//! to move (`media::RELATCH_AFTER`), or the call goes deaf: the caller's keys
//! from its new port would never reach the server, and the readback would go
//! to the closed port.
//!
//! Keys are typed after the move, once after the intro and once ahead of it
//! (during the intro), as RFC 4733 events and as in-band tones.

mod common;

use common::*;

/// One echo call that moves its RTP `after` seconds into the call, typing `42#`
/// (`typed`: dial's `--dtmf` or `--during` rule) with `mode`.
fn call(server: &Server, after: &str, typed: [&str; 2], mode: &str) {
    let (transcript, text) = dial_echo(
        server,
        &[
            "--rtp-move-after",
            after,
            "--dtmf-mode",
            mode,
            typed[0],
            typed[1],
        ],
    );
    let moved = transcript
        .iter()
        .position(|l| l.contains("rtp moves to port"))
        .unwrap_or_else(|| panic!("the caller never moved:\n{text}"));
    let first_key = transcript
        .iter()
        .position(|l| l.contains("dtmf 4 sent"))
        .unwrap_or_else(|| panic!("no key sent:\n{text}"));
    assert!(moved < first_key, "keys typed before the move:\n{text}");
    assert_eq!(
        prompts_heard(&transcript),
        echo_readback("42"),
        "{mode}, moved after {after} s, {typed:?}: {text}"
    );
    wait_calls_ended(server);
}

#[test]
fn a_caller_whose_rtp_moves_port_is_followed_there() {
    let server = Server::demo(&[]);
    let not_latched = "sspr_ivr_rtp_packets_rejected_total{reason=\"not_latched\"}";
    // (A labelled series appears with its first count.)
    let refused = || metric_sample(&server_metrics(&server), not_latched).unwrap_or(0.0);
    let before = refused();
    for mode in ["rfc4733", "inband"] {
        // Moved during the intro; keys after it.
        call(&server, "1.0", ["--dtmf", "42#"], mode);
        // Moved at once; keys typed ahead, a second into the intro, from the
        // new port.
        call(&server, "0.2", ["--during", "echo_intro=42#"], mode);
    }
    // Nothing from the new ports was refused: the server was listening for
    // them (unconnected) when they came.
    assert_eq!(refused() - before, 0.0);
}
