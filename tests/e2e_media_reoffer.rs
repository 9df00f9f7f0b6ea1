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
    let (sent, log) = sipp_call_packets_sent_and_log("reinvite_hold.xml");
    // The caller's BYE said why: the end of the call's log says it too.
    assert!(
        log.lines().any(|l| l.contains("call ended")
            && l.contains("outcome=\"caller_hangup\"")
            && l.contains(r#"caller_reason="Q.850;cause=16;text=\"Normal call clearing\"""#)),
        "{log}"
    );
    // ACK to BYE is about 4 s: 200 packets unheld, about 100 with the hold.
    assert!(
        (60.0..=150.0).contains(&sent),
        "the server sent {sent} packets in a 4 s call held for 2 s"
    );
}

/// The same move with a stranger at 127.0.0.3 spraying valid RTP at the call's
/// port from the answer on, 1,000 packets a second: the moment the call drops
/// its latch to follow the new offer must not let the stranger in. The caller
/// (on 127.0.0.2 after the move) still hears its own keys read back, so the
/// stream was never redirected to the stranger, and the server refused the
/// stranger's packets.
#[test]
fn a_stranger_spraying_the_port_does_not_win_the_latch_when_the_media_moves() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let server = Server::demo(&[]);
    let untrusted = "sspr_ivr_rtp_packets_rejected_total{reason=\"untrusted_source\"}";
    let mut caller = Dialer::start(
        &server.uri("echo"),
        &[
            "--media-move-after",
            "0.5",
            "--media-move-ip",
            "127.0.0.2",
            "--during",
            "echo_intro=42#",
        ],
    );
    let target: std::net::SocketAddr = wait_for("the answer", Duration::from_secs(30), || {
        caller.transcript().iter().find_map(|l| {
            l.split(" media ")
                .nth(1)?
                .split(" to ")
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
    });
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let spray = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3");
            let mut packet = [0xFFu8; 172];
            packet[0] = 0x80; // RTP version 2, PCMU
            packet[1] = 0;
            let mut seq = 0u16;
            while !stop.load(Ordering::SeqCst) {
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                seq = seq.wrapping_add(1);
                if sock.send_to(&packet, target).is_ok() {
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let ok = caller.wait(Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    spray.join().unwrap();
    let transcript = caller.transcript();
    let text = transcript.join("\n");
    assert!(ok, "dial failed:\n{text}");
    assert!(
        transcript
            .iter()
            .any(|l| l.contains("rtp moves to 127.0.0.2:")),
        "the caller never moved:\n{text}"
    );
    assert_eq!(prompts_heard(&transcript), echo_readback("42"), "{text}");
    wait_calls_ended(&server);
    let refused = metric_sample(&server_metrics(&server), untrusted).unwrap_or(0.0);
    let sprayed = sent.load(Ordering::SeqCst) as f64;
    assert!(sprayed > 1000.0, "only {sprayed} packets sprayed");
    // Refused by the trust check while the call's socket was unconnected (the
    // rest the kernel dropped); none was taken.
    assert!(
        refused > 0.0,
        "no stranger's packet reached the trust check: {sprayed} sprayed"
    );
    let took = server_sample(&server, "sspr_ivr_rtp_packets_received_total");
    let caller_sent = rtp_sent(&transcript);
    assert!(
        took <= caller_sent,
        "the server took {took} packets, the caller sent {caller_sent}"
    );
}

/// A phone holds the call (`a=inactive`: it sends nothing) for 13 s, longer
/// than the server's 10 s RTP inactivity timeout, while the flow waits for a
/// first key; its caller presses 4 while on hold (SIP INFO), takes the call
/// back and types `2 #` (`tests/sipp/hold_long.xml`). The server must neither hang up during the
/// hold (before, it ended the call as `rtp_timeout` 10 s after the ACK) nor
/// let the flow's timers run while the caller cannot hear it: no `no_input`
/// in the call's timeline, the keys read back, and the call ends `completed`.
/// A server whose calls end after 10 s without RTP (the least
/// `media.inactivity_timeout` the config takes), with debug logs.
fn short_inactivity_server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let sip = free_addr();
    let admin = free_addr();
    let rtp = rtp_block();
    let cfg = format!(
        "sip: {{ listen: \"{sip}\" }}\n\
         media: {{ rtp_port_min: {rtp}, rtp_port_max: {max}, inactivity_timeout: 10s }}\n\
         prompts: {{ dir: {prompts} }}\n\
         flows: {{ echo: {flow} }}\n\
         routes: {{ default: echo }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n",
        max = rtp + 998,
        prompts = repo().join("prompts").display(),
        flow = repo().join("flows/echo.yaml").display(),
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, cfg).unwrap();
    let args: Vec<String> = ["--log-level", "debug", "serve", "--config"]
        .iter()
        .map(|s| s.to_string())
        .chain([path.display().to_string()])
        .collect();
    Server::spawn_env(&args, &[], sip, admin, dir)
}

/// Calls ended with `outcome`, from the server's metrics.
fn finished(server: &Server, outcome: &str) -> f64 {
    metric_sample(
        &server_metrics(server),
        &format!("sspr_ivr_calls_finished_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn a_hold_longer_than_the_inactivity_timeout_keeps_the_call_and_its_place() {
    let server = short_inactivity_server();
    let (ok, out) = run_sipp(
        &server,
        "hold_long.xml",
        "echo",
        &["-m", "1"],
        std::time::Duration::from_secs(60),
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    let log = server.output_text();
    assert_eq!(finished(&server, "completed"), 1.0, "{log}");
    assert_eq!(finished(&server, "timeout"), 0.0, "{log}");
    assert!(!log.contains(r#"outcome="rtp_timeout""#), "{log}");
    assert!(!log.contains("NoInput"), "no_input while held:\n{log}");
    // The 4 pressed on hold and the 2 after it, one entry.
    assert!(
        log.contains(r#"DigitsCollected { var: "entered", shown: "42" }"#),
        "42 was not collected:\n{log}"
    );
}

/// A phone that dies after answering: no RTP, no BYE
/// (`tests/sipp/silent_caller.xml`). The server hangs up after its 10 s
/// inactivity timeout, long before the echo flow's three 10 s attempts would,
/// with `Reason: Q.850 ;cause=102 ;text="No RTP from the caller"` on the BYE
/// (sipp fails the call on a BYE without it), and ends it `rtp_timeout`
/// (counted `timeout`).
#[test]
fn a_caller_whose_phone_goes_silent_is_hung_up_with_a_reason() {
    let server = short_inactivity_server();
    let started = std::time::Instant::now();
    let (ok, out) = run_sipp(
        &server,
        "silent_caller.xml",
        "echo",
        &["-m", "1"],
        std::time::Duration::from_secs(40),
    );
    let took = started.elapsed();
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    assert!(
        took >= std::time::Duration::from_secs(10) && took < std::time::Duration::from_secs(20),
        "hung up after {took:?}, not the 10 s inactivity timeout"
    );
    wait_calls_ended(&server);
    let log = server.output_text();
    assert_eq!(finished(&server, "timeout"), 1.0, "{log}");
    assert_eq!(finished(&server, "completed"), 0.0, "{log}");
    assert!(log.contains(r#"call ended outcome="rtp_timeout""#), "{log}");
}

/// `sspr-ivr dial` against a gateway whose `200` has only G.729
/// (`tests/sipp/uas_g729_only.xml`), as the answer to its offer and as the
/// offer for its late-offer INVITE: it cannot use it, so it ACKs and at once
/// sends BYE with `Reason: SIP ;cause=488 ;text="Incompatible media format"`
/// (sipp fails the call otherwise), says so, and exits with an error. Before,
/// it exited at once without a BYE and left the far end's call up.
#[test]
fn dial_ends_a_call_whose_answer_it_cannot_use_with_a_reason() {
    for late in [false, true] {
        let port = free_port();
        let mut cmd = std::process::Command::new(sipp());
        cmd.current_dir(repo().join("tests/sipp"))
            .args(["-sf", "uas_g729_only.xml"])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-mp", &sipp_media_port().to_string()])
            .args(["-p", &port.to_string()])
            .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"]);
        let uas = std::thread::spawn(move || {
            run_with_timeout(&mut cmd, std::time::Duration::from_secs(30))
        });
        // sipp binds at once; dial's INVITE is retransmitted anyway.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut args = vec!["--timeout", "10"];
        if late {
            args.push("--late-offer");
        }
        let (ok, transcript, err) = dial(
            &format!("sip:gw@127.0.0.1:{port}"),
            &args,
            std::time::Duration::from_secs(20),
        );
        let text = transcript.join("\n");
        let (uas_ok, out, uas_err) = uas.join().unwrap();
        assert!(!ok, "late {late}: dial succeeded:\n{text}");
        assert!(
            transcript
                .iter()
                .any(|l| l.ends_with("media refused: no common codec: BYE")),
            "late {late}:\n{text}\n{err}"
        );
        assert!(
            transcript.iter().any(|l| l.ends_with("sip ended")),
            "late {late}: the BYE was not answered:\n{text}"
        );
        assert!(
            uas_ok,
            "late {late}: sipp:\n{out}\n{uas_err}\ndial:\n{text}\n{err}"
        );
    }
}

/// A hold, then a re-INVITE without an offer (`tests/sipp/reinvite_offerless.xml`:
/// a third-party call controller reconnecting the call): the server's 200
/// offers `sendrecv` (before, it repeated the hold's `recvonly` answer and sipp
/// failed the call) and it follows the answer in the ACK, sending again for the
/// call's last two seconds (before, it stayed on hold: about one second's
/// packets in the whole call).
#[test]
fn a_reinvite_without_an_offer_after_a_hold_takes_the_call_back() {
    let sent = sipp_call_and_packets_sent("reinvite_offerless.xml");
    // ACK to BYE is about 4 s: 1 s sending, 1 s held, 2 s sending again.
    assert!(
        (120.0..=200.0).contains(&sent),
        "the server sent {sent} packets in a 4 s call held for 1 s"
    );
}

/// One sipp call of `scenario` to the echo flow of a fresh demo server, which
/// must succeed; the RTP packets the server sent it.
fn sipp_call_and_packets_sent(scenario: &str) -> f64 {
    sipp_call_packets_sent_and_log(scenario).0
}

/// [`sipp_call_and_packets_sent`], and the server's log.
fn sipp_call_packets_sent_and_log(scenario: &str) -> (f64, String) {
    let server = Server::demo(&[]);
    let (ok, out) = run_sipp(
        &server,
        scenario,
        "echo",
        &["-m", "1"],
        std::time::Duration::from_secs(30),
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    let log = ended_log(&server);
    (
        server_sample(&server, "sspr_ivr_rtp_packets_sent_total"),
        log,
    )
}

/// Late offer (an INVITE without SDP, as some trunks and click-to-dial
/// controllers send): the server offers PCMU and PCMA in its 200 and the
/// caller answers in its ACK. An answer with PCMA, the second codec offered,
/// starts the call (`tests/sipp/late_offer_pcma.xml`: the server sends until
/// the caller hangs up). An answer with only G.729 cannot be refused (it is an
/// ACK), so the server ends the call at once with a BYE whose `Reason` says why
/// (`tests/sipp/late_offer_refused.xml`, which checks the header) and counts it
/// as refused, without starting the flow. Before, it warned and played the whole
/// flow into a session the caller could not decode. A caller whose UPDATE offer
/// crosses the offer in our 200 gets `491` and its call goes on
/// (`tests/sipp/late_offer_update_crossing.xml`).
#[test]
fn a_late_answer_is_taken_or_the_call_is_ended_with_a_reason() {
    let server = Server::demo(&[]);
    let finished = |outcome: &str| {
        metric_sample(
            &server_metrics(&server),
            &format!("sspr_ivr_calls_finished_total{{outcome=\"{outcome}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let timeout = std::time::Duration::from_secs(30);
    let (ok, out) = run_sipp(
        &server,
        "late_offer_pcma.xml",
        "echo",
        &["-m", "1"],
        timeout,
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    let sent = server_sample(&server, "sspr_ivr_rtp_packets_sent_total");
    assert!(
        sent >= 100.0,
        "a 3 s call answered with PCMA: the server sent {sent} packets"
    );
    assert_eq!(finished("caller_hangup"), 1.0);

    let (ok, out) = run_sipp(
        &server,
        "late_offer_refused.xml",
        "echo",
        &["-m", "1"],
        timeout,
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    assert_eq!(finished("rejected"), 1.0, "{}", server.output_text());
    assert_eq!(finished("caller_hangup"), 1.0);
    let log = server.output_text();
    assert!(
        log.contains("late offer: the ACK has no answer the call can use"),
        "{log}"
    );
    // The flow never started: nothing was played into the call.
    let after = server_sample(&server, "sspr_ivr_rtp_packets_sent_total");
    assert!(
        after - sent <= 2.0,
        "the refused call was sent {} packets",
        after - sent
    );

    // An UPDATE with an offer before the ACK would cross the offer in our 200:
    // `491` (sipp fails the call on any other answer), and the ACK's answer
    // still starts the call.
    let (ok, out) = run_sipp(
        &server,
        "late_offer_update_crossing.xml",
        "echo",
        &["-m", "1"],
        timeout,
    );
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    wait_calls_ended(&server);
    assert_eq!(finished("caller_hangup"), 2.0);
    let crossed = server_sample(&server, "sspr_ivr_rtp_packets_sent_total") - after;
    assert!(
        crossed >= 100.0,
        "the call after the 491: the server sent {crossed} packets in 3 s"
    );
}

/// `sspr-ivr dial --late-offer`: the INVITE carries no SDP, the server's 200
/// offers PCMU and PCMA, and dial answers in its ACK with the first of its
/// codecs offered. The caller hears its keys read back, typed over the intro,
/// in the codec it answered (dial recognises the prompts by decoding with that
/// codec, so audio in the other would not be recognised).
#[test]
fn a_late_offer_caller_hears_its_keys_in_the_codec_it_answered() {
    let server = Server::demo(&[]);
    for (codec, mode, name) in [(None, "rfc4733", "PCMU"), (Some("pcma"), "inband", "PCMA")] {
        let mut args = vec![
            "--late-offer",
            "--dtmf-mode",
            mode,
            "--during",
            "echo_intro=42#",
        ];
        args.extend(codec.map(|c| ["--codec", c]).into_iter().flatten());
        let (transcript, text) = dial_echo(&server, &args);
        assert!(
            transcript
                .iter()
                .any(|l| l.contains("late offer: our answer went in the ACK")),
            "{text}"
        );
        assert!(
            transcript
                .iter()
                .any(|l| l.contains(&format!("media {name} "))),
            "{mode}: answered {name}:\n{text}"
        );
        assert_eq!(
            prompts_heard(&transcript),
            echo_readback("42"),
            "{mode}:\n{text}"
        );
    }
}

/// A phone set to "SRTP if possible" offers its stream twice, `RTP/SAVP` with
/// a key and then `RTP/AVP` (`tests/sipp/srtp_if_possible.xml`). Over UDP the
/// server takes no key, so it answers on the plain line with the SRTP one
/// declined in its place and no `a=crypto` (sipp checks the 200 and fails the
/// call otherwise; before, the call got 488), keeps that layout through a
/// hold and a resume in which the phone repeats both lines, and plays to the
/// plain line's port.
#[test]
fn a_phone_offering_srtp_if_possible_is_answered_in_plain_rtp() {
    let sent = sipp_call_and_packets_sent("srtp_if_possible.xml");
    assert!(
        (60.0..=150.0).contains(&sent),
        "the server sent {sent} packets in a 4 s call held for 2 s"
    );
}

/// Session timers (RFC 4028), the caller refreshing
/// (`tests/sipp/session_timer_expiry.xml`): an interval under our Min-SE gets
/// `422` with `Min-SE: 90`; 90 s is granted (`refresher=uac`, `Require:
/// timer`), and so is the hold re-INVITE that refreshes it a second later.
/// Then the caller goes quiet: 60 s after that refresh (the interval less a
/// third) the server sends BYE with `Reason: Q.850 ;cause=102 ;text="Session
/// timer expired"` (sipp checks it), not sooner (the hold keeps the flow and
/// the RTP inactivity timer waiting) and not later.
#[test]
fn a_caller_whose_session_refreshes_stop_is_hung_up_with_a_reason() {
    let log = session_timer_call("session_timer_expiry.xml", 100, 60.0..75.0);
    assert!(log.contains("outcome=\"session_expired\""), "{log}");
}

/// Session timers with the server as the refresher
/// (`tests/sipp/session_timer_refresh.xml`, `refresher=uas`): granted so,
/// the server sends its refresh UPDATE half an interval (45 s) after the last
/// refresh, and when the far end answers `481` (it lost the dialog) the server
/// ends the call at once with the session timer's BYE `Reason`.
#[test]
fn a_session_the_server_refreshes_ends_when_the_far_end_has_lost_it() {
    session_timer_call("session_timer_refresh.xml", 80, 45.0..55.0);
}

/// One sipp call of `scenario` against a demo server (sipp gives up after
/// `sipp_timeout` s) that must succeed and last `lasts` seconds, ended by the
/// server's session timer (counted as a timeout); the server's log once it
/// says the call ended.
fn session_timer_call(scenario: &str, sipp_timeout: u64, lasts: std::ops::Range<f64>) -> String {
    let server = Server::demo(&[]);
    let started = std::time::Instant::now();
    let (ok, out) = run_sipp(
        &server,
        scenario,
        "echo",
        &["-m", "1"],
        std::time::Duration::from_secs(sipp_timeout),
    );
    let took = started.elapsed().as_secs_f64();
    assert!(ok, "sipp:\n{out}\nserver:\n{}", server.output_text());
    assert!(
        lasts.contains(&took),
        "{scenario}: the server's BYE came {took:.1} s into the call, expected {lasts:?}"
    );
    wait_calls_ended(&server);
    assert_eq!(
        finished(&server, "timeout"),
        1.0,
        "{}",
        server.output_text()
    );
    ended_log(&server)
}

/// The server's log once a call's end is in it.
fn ended_log(server: &Server) -> String {
    wait_for(
        "the call's end in the log",
        std::time::Duration::from_secs(10),
        || {
            let log = server.output_text();
            log.contains("call ended").then_some(log)
        },
    )
}
