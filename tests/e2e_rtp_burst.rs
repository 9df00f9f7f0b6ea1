//! A caller whose RTP arrives in bursts (a jittery path, a gateway that
//! batches): five packets back to back every 100 ms instead of one every 20.
//! A call's turn reads one datagram and reads the rest of its socket only when
//! there may be more (`runtime::call_task`): a burst must still be read whole,
//! in order, with nothing lost, and every key in it heard — typed ahead during
//! the intro, as RFC 4733 events and as in-band tones (whose frames the
//! detector needs one after another).
//!
//! `sspr-ivr dial --rtp-burst N` sends the bursts and reports how many packets
//! it sent; the server counts what it received and lost on `/metrics`.

mod common;

use common::*;

/// One echo call in bursts of `burst`, typing `42#` a second into the intro
/// with `mode`; returns the packets the caller sent and the server received.
fn call(server: &Server, burst: &str, mode: &str) -> (f64, f64) {
    let received = "sspr_ivr_rtp_packets_received_total";
    let lost = "sspr_ivr_rtp_packets_lost_total";
    let (received_before, lost_before) =
        (server_sample(server, received), server_sample(server, lost));
    let (transcript, text) = dial_echo(
        server,
        &[
            "--rtp-burst",
            burst,
            "--dtmf-mode",
            mode,
            "--during",
            "echo_intro=42#",
        ],
    );
    assert!(
        transcript
            .iter()
            .any(|l| l.contains(&format!("rtp in bursts of {burst} packets"))),
        "{text}"
    );
    let heard = prompts_heard(&transcript);
    assert_eq!(
        heard,
        echo_readback("42"),
        "{mode} keys in bursts of {burst}: {text}"
    );
    let sent = rtp_sent(&transcript);
    wait_calls_ended(server);
    assert_eq!(
        server_sample(server, lost) - lost_before,
        0.0,
        "{mode}: the server counted packets of the bursts as lost"
    );
    (sent, server_sample(server, received) - received_before)
}

#[test]
fn bursts_of_packets_are_read_whole_and_every_key_in_them_is_heard() {
    let server = Server::demo(&[]);
    for mode in ["rfc4733", "inband"] {
        let (sent, received) = call(&server, "5", mode);
        // Everything but what was still in flight when the call ended (the
        // last burst at most) arrived and was counted.
        assert!(sent > 100.0, "{mode}: only {sent} packets sent");
        assert!(
            received >= sent - 5.0 && received <= sent,
            "{mode}: the caller sent {sent} packets, the server received {received}"
        );
    }
}
