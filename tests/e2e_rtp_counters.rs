//! The RTP counters on `/metrics`, after real calls over loopback: nothing is lost where
//! nothing was lost (a phone's audio and RFC 4733 events share one sequence space; sipp
//! replays stock captures with their own numbering), and the counters move while a call is
//! still running, not only when it ends.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn sample(server: &Server, series: &str) -> f64 {
    metric_sample(&server_metrics(server), series).unwrap_or(0.0)
}

fn wait_heard(d: &Dialer, prompt: &str) {
    let end = Instant::now() + Duration::from_secs(45);
    while !prompts_heard(&d.transcript()).iter().any(|p| p == prompt) {
        assert!(
            Instant::now() < end,
            "timed out waiting for {prompt}:\n{}",
            d.transcript().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_loopback_call_with_audio_and_events_loses_nothing_and_counts_live() {
    let server = Server::demo(&[]);
    let mut d = Dialer::start(&server.uri("echo"), &["--dtmf-mode", "rfc4733"]);
    wait_heard(&d, "echo_intro");
    // Live: the call is still up and its packets are already counted.
    wait_for("live RTP counters", Duration::from_secs(20), || {
        (sample(&server, "sspr_ivr_calls_active") == 1.0
            && sample(&server, "sspr_ivr_rtp_packets_received_total") > 0.0
            && sample(&server, "sspr_ivr_rtp_packets_sent_total") > 0.0)
            .then_some(())
    });
    // Keys as RFC 4733 events between the audio packets, one sequence space.
    d.type_digits("1234567#");
    assert!(d.wait(Duration::from_secs(60)), "{:?}", d.transcript());
    let transcript = d.transcript();
    assert!(
        transcript.iter().any(|l| l.ends_with(" dtmf # sent")),
        "{transcript:?}"
    );
    wait_for("the call to end", Duration::from_secs(20), || {
        (sample(&server, "sspr_ivr_calls_active") == 0.0).then_some(())
    });
    let received = sample(&server, "sspr_ivr_rtp_packets_received_total");
    assert!(received > 100.0, "{received} packets received");
    assert_eq!(
        sample(&server, "sspr_ivr_rtp_packets_lost_total"),
        0.0,
        "loss reported on loopback ({received} received)"
    );
}

#[test]
fn a_sipp_replay_of_stock_captures_loses_nothing() {
    let server = Server::demo(&[]);
    // 1 0 0 1 0 0 #: each capture keeps its own sequence numbers, repeated ones replayed
    // byte for byte.
    let (ok, out) = run_sipp(
        &server,
        "echo_rfc4733.xml",
        "echo",
        &["-m", "1"],
        Duration::from_secs(60),
    );
    assert!(ok, "sipp failed:\n{out}\nserver:\n{}", server.output_text());
    wait_for("the call to end", Duration::from_secs(20), || {
        (sample(&server, "sspr_ivr_calls_active") == 0.0).then_some(())
    });
    let received = sample(&server, "sspr_ivr_rtp_packets_received_total");
    assert!(received >= 7.0 * 8.0, "{received} packets received");
    assert_eq!(sample(&server, "sspr_ivr_rtp_packets_lost_total"), 0.0);
}
