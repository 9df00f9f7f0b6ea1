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
use std::time::Duration;

fn sample(server: &Server, series: &str) -> f64 {
    metric_sample(&server_metrics(server), series).unwrap_or_else(|| panic!("{series} on /metrics"))
}

/// One echo call in bursts of `burst`, typing `42#` a second into the intro
/// with `mode`; returns the packets the caller sent and the server received.
fn call(server: &Server, burst: &str, mode: &str) -> (f64, f64) {
    let received = "sspr_ivr_rtp_packets_received_total";
    let lost = "sspr_ivr_rtp_packets_lost_total";
    let (received_before, lost_before) = (sample(server, received), sample(server, lost));
    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &[
            "--rtp-burst",
            burst,
            "--dtmf-mode",
            mode,
            "--during",
            "echo_intro=42#",
        ],
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
            .any(|l| l.contains(&format!("rtp in bursts of {burst} packets"))),
        "{text}"
    );
    let heard = prompts_heard(&transcript);
    assert_eq!(
        heard,
        echo_readback("42"),
        "{mode} keys in bursts of {burst}: {text}"
    );
    let sent: f64 = transcript
        .iter()
        .find_map(|l| l.split("rtp sent ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in:\n{text}"));
    // A call's counters are final once it has ended.
    wait_for("the call to end", Duration::from_secs(20), || {
        (sample(server, "sspr_ivr_calls_active") == 0.0).then_some(())
    });
    assert_eq!(
        sample(server, lost) - lost_before,
        0.0,
        "{mode}: the server counted packets of the bursts as lost"
    );
    (sent, sample(server, received) - received_before)
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
