//! End to end: the real binary (`sspr-ivr demo`) answers the echo flow;
//! the project's `dial` client and sipp call it over loopback.

mod common;

use common::*;
use std::time::Duration;

fn expect_echo(mode: &str, digits: &str) {
    let server = Server::demo(&[]);
    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &["--dtmf", &format!("{digits}#"), "--dtmf-mode", mode],
        Duration::from_secs(60),
    );
    let heard = prompts_heard(&transcript);
    let want = echo_readback(digits);
    assert!(
        ok,
        "dial failed ({mode}):\n{}\n{err}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    assert_eq!(
        heard,
        want,
        "transcript ({mode}):\n{}",
        transcript.join("\n")
    );
    // An ordinary goodbye: a BYE with no Reason (one is only for timers and
    // the server's own trouble).
    assert!(
        transcript.iter().any(|l| l.ends_with("sip BYE received")),
        "the IVR hangs up with a plain BYE:\n{}",
        transcript.join("\n")
    );
}

#[test]
fn echo_reads_back_rfc4733_digits() {
    expect_echo("rfc4733", "4815");
}

#[test]
fn echo_reads_back_inband_digits() {
    expect_echo("inband", "2906");
}

#[test]
fn echo_reads_back_sip_info_digits() {
    expect_echo("info", "7733");
}

/// A softphone with its camera on offers audio and video
/// (`tests/sipp/video_offer.xml`): the answer keeps both `m=` lines in the
/// offer's order, the video one declined with port 0 (sipp checks the 200 and
/// fails the call otherwise; before, the answer had only the audio line and a
/// PJSIP-based phone would have dropped the call), and the call goes on: the
/// caller's seven keys are heard and the IVR hangs up after the readback.
#[test]
fn a_video_phone_is_answered_with_its_video_declined() {
    let server = Server::demo(&[]);
    let (ok, out) = run_sipp(
        &server,
        "video_offer.xml",
        "echo",
        &["-m", "1"],
        Duration::from_secs(60),
    );
    assert!(ok, "sipp failed:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    let digits = server_sample(&server, "sspr_ivr_dtmf_digits_total{transport=\"rfc4733\"}");
    assert_eq!(digits, 7.0, "{}", server.output_text());
    assert_eq!(
        server_sample(
            &server,
            "sspr_ivr_calls_finished_total{outcome=\"completed\"}"
        ),
        1.0
    );
}

#[test]
fn sipp_stock_pcaps_repeated_keys_count_once_each() {
    let server = Server::demo(&[]);
    let (ok, out) = run_sipp(
        &server,
        "echo_rfc4733.xml",
        "echo",
        &["-m", "1"],
        Duration::from_secs(60),
    );
    assert!(ok, "sipp failed:\n{out}\nserver:\n{}", server.output_text());
    // What the IVR understood, from its own timeline: 100100, not 1010.
    let timeline = wait_for("the timeline", Duration::from_secs(10), || {
        let files = all_files(&server.recordings());
        // The sidecar is written last, when the call's files are complete.
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with(".json"))
            .then(|| {
                files
                    .into_iter()
                    .find(|(p, _)| p.to_string_lossy().ends_with(".timeline.jsonl"))
                    .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            })
            .flatten()
    });
    let collected: Vec<String> = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "digits_collected")
        .filter_map(|v| v["shown"].as_str().map(str::to_string))
        .collect();
    assert_eq!(collected, ["100100"], "timeline:\n{timeline}");
}

#[test]
fn sipp_over_tcp() {
    let server = Server::demo(&[]);
    let (ok, out) = run_sipp(
        &server,
        "echo_rfc4733.xml",
        "echo",
        &["-m", "1", "-t", "t1"],
        Duration::from_secs(60),
    );
    assert!(
        ok,
        "sipp over TCP failed:\n{out}\nserver:\n{}",
        server.output_text()
    );
}

/// A telephony engineer tries the demo over IPv6: `demo --sip [::1]:PORT` offers
/// its media on `::1` too, and a caller on `::1` hears its keys read back, sent
/// as RFC 4733 events and as in-band tones, after the intro and typed ahead
/// during it. (Before, the demo kept media on
/// 127.0.0.1 and the call was refused `488`: the caller's media was IPv6.)
#[test]
fn echo_over_ipv6() {
    let sip: std::net::SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    let server = Server::demo_at(sip, &[]);
    // The banner's lines may still be on their way when the server is ready.
    assert!(
        server.wait_output("rtp         [::1]:", Duration::from_secs(10)),
        "{}",
        server.output_text()
    );
    // After the intro, and typed ahead a second into it (the caller who knows
    // the menu), as RFC 4733 events and as in-band tones.
    for mode in ["rfc4733", "inband"] {
        for keys in [["--dtmf", "42#"], ["--during", "echo_intro=42#"]] {
            let mut args = vec!["--local-ip", "::1", "--dtmf-mode", mode];
            args.extend(keys);
            let (transcript, text) = dial_echo(&server, &args);
            assert_eq!(
                prompts_heard(&transcript),
                echo_readback("42"),
                "{mode} {keys:?}\n{text}"
            );
        }
    }
}

/// A trunk on 30 ms packets (`a=ptime:30`): the server answers with 30 ms and
/// sends a packet every 30 ms, and a caller who types ahead during the intro
/// hears the keys read back. (A server pacing at 20 ms regardless would send
/// 50 packets a second instead of 33.)
#[test]
fn a_caller_on_30_ms_packets_is_answered_and_paced_at_30_ms() {
    let server = Server::demo(&[]);
    let (transcript, text) = dial_echo(&server, &["--ptime", "30", "--during", "echo_intro=42#"]);
    assert_eq!(prompts_heard(&transcript), echo_readback("42"), "{text}");
    assert!(
        transcript.iter().any(|l| l.contains(" ptime 30 to ")),
        "the answer keeps the offer's ptime:\n{text}"
    );
    // Seconds from the answer to the server's BYE (the transcript's clock).
    let secs: f64 = transcript
        .iter()
        .find(|l| l.contains("sip BYE received"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no BYE in:\n{text}"));
    wait_calls_ended(&server);
    let sent = server_sample(&server, "sspr_ivr_rtp_packets_sent_total");
    let per_second = sent / secs;
    assert!(
        (28.0..38.0).contains(&per_second),
        "{sent} packets in {secs:.2} s = {per_second:.1}/s, not one per 30 ms:\n{text}"
    );
    // Every packet the caller sent was taken (none left unread in a turn),
    // but for one in flight when the call ended.
    let (received, caller_sent) = (
        server_sample(&server, "sspr_ivr_rtp_packets_received_total"),
        rtp_sent(&transcript),
    );
    assert!(
        received <= caller_sent && received >= caller_sent - 2.0,
        "the caller sent {caller_sent} packets, the server received {received}:\n{text}"
    );
}
