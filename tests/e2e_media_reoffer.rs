//! A gateway that re-anchors its media mid-call: an UPDATE offers a new
//! address on another IP (`sspr-ivr dial --media-move-after S --media-move-ip
//! IP`), and once it is answered the caller's RTP comes from there and must go
//! there. The signalling moved the media, so the server must follow it: before,
//! the endpoint answered the new offer with the old session and the media trust
//! refused the new IP as a stranger's for the rest of the call (keys lost, the
//! readback sent to the old address, the call silent until its caller gave up).
//!
//! Keys are typed after the move, as RFC 4733 events and as in-band tones.

mod common;

use common::*;

#[test]
fn a_caller_whose_media_moves_to_another_ip_is_followed_there() {
    let server = Server::demo(&[]);
    let untrusted = "sspr_ivr_rtp_packets_rejected_total{reason=\"untrusted_source\"}";
    let received = "sspr_ivr_rtp_packets_received_total";
    for mode in ["rfc4733", "inband"] {
        let rejected_before = metric_sample(&server_metrics(&server), untrusted).unwrap_or(0.0);
        let received_before = server_sample(&server, received);
        let (transcript, text) = dial_echo(
            &server,
            &[
                "--media-move-after",
                "0.5",
                "--media-move-ip",
                "127.0.0.2",
                "--dtmf-mode",
                mode,
                "--during",
                "echo_intro=42#",
            ],
        );
        let answered = transcript
            .iter()
            .position(|l| l.contains("sip UPDATE answered 200"))
            .unwrap_or_else(|| panic!("{mode}: the UPDATE was not answered 200:\n{text}"));
        let moved = transcript
            .iter()
            .position(|l| l.contains("rtp moves to 127.0.0.2:"))
            .unwrap_or_else(|| panic!("{mode}: the caller never moved:\n{text}"));
        let first_key = transcript
            .iter()
            .position(|l| l.contains("dtmf 4 sent"))
            .unwrap_or_else(|| panic!("{mode}: no key sent:\n{text}"));
        assert!(
            answered < moved && moved < first_key,
            "{mode}: keys typed before the move:\n{text}"
        );
        // Heard from the new address, and answered to it.
        assert_eq!(
            prompts_heard(&transcript),
            echo_readback("42"),
            "{mode}:\n{text}"
        );
        wait_calls_ended(&server);
        let rejected =
            metric_sample(&server_metrics(&server), untrusted).unwrap_or(0.0) - rejected_before;
        assert_eq!(
            rejected, 0.0,
            "{mode}: packets from the new address refused:\n{text}"
        );
        let took = server_sample(&server, received) - received_before;
        let sent = rtp_sent(&transcript);
        assert!(
            took <= sent && took >= sent - 2.0,
            "{mode}: the caller sent {sent} packets, the server took {took}"
        );
    }
}

/// sipp puts the call on hold by re-INVITE (`a=sendonly`) a second in, and takes
/// it back two seconds later (`tests/sipp/reinvite_hold.xml`): each re-INVITE is
/// answered with the direction RFC 3264 asks (`recvonly`, then `sendrecv`; sipp
/// fails the call on anything else, as it did when every new offer got the
/// first answer, `sendrecv`), and the server sends no RTP while held: about
/// two of the call's four seconds.
#[test]
fn a_hold_by_reinvite_is_answered_recvonly_and_silences_the_server() {
    let server = Server::demo(&[]);
    let (ok, out) = run_sipp(
        &server,
        "reinvite_hold.xml",
        "echo",
        &["-m", "1"],
        std::time::Duration::from_secs(30),
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    let sent = server_sample(&server, "sspr_ivr_rtp_packets_sent_total");
    // ACK to BYE is about 4 s: 200 packets unheld, about 100 with the hold.
    assert!(
        (60.0..=150.0).contains(&sent),
        "the server sent {sent} packets in a 4 s call held for 2 s"
    );
}
