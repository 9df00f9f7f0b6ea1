//! End to end, an attacker on the media path: a host at 127.0.0.2 that learns a
//! live call's RTP port (here from the caller's own transcript: knowing it must
//! give nothing) sprays RFC 4733 events and in-band tones of `9` at it, from
//! before the caller's first RTP packet until the call ends. The real binary
//! (`sspr-ivr demo`) must hear only the caller, and send the attacker nothing.
//!
//! The caller is the project's `dial` with `--rtp-after 3`: its RTP starts three
//! seconds after the answer, so the attack provably starts first (the test
//! checks the attacker's first packet left before that).
//!
//! Over IPv6 the attacker is `fd00:5eed::2`, in a network namespace of the
//! test's own (`common::netns`; root, as CI runs).

mod common;

use common::*;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sspr_ivr::codec::Codec;
use sspr_ivr::media::goertzel::ToneGenerator;
use sspr_ivr::media::telephone_event::Sender;
use sspr_ivr::media::{g711, rtp};

/// The attacker's address: this host, but not the caller's.
const ATTACKER_IP: &str = "127.0.0.2";

/// Seconds after the answer before the caller sends RTP.
const CALLER_RTP_AFTER: f64 = 3.0;

/// A third party spraying `9`s at one RTP port, counting what comes back.
struct Attacker {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    first_sent: Arc<Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Attacker {
    /// Every 20 ms, `burst` audio packets of the tone (1: as fast as a phone;
    /// more: a flood, faster than a call's turn reads in one batch).
    /// The attacker sends from `from`, an address of this host other than
    /// the caller's.
    fn start_from(from: IpAddr, target: SocketAddr, burst: usize) -> Attacker {
        let sock = UdpSocket::bind((from, 0)).unwrap_or_else(|e| panic!("bind {from}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let first_sent = Arc::new(Mutex::new(None));
        let (s, n, r, f) = (
            stop.clone(),
            sent.clone(),
            received.clone(),
            first_sent.clone(),
        );
        let thread = std::thread::spawn(move || {
            // In-band: 80 ms of `9`, 80 ms of silence, over and over.
            let tones = ToneGenerator::new().sequence("9", 80, 80, -10.0);
            let events = Sender::new(101, 20).unwrap();
            let (mut seq, mut ts, mut frame) = (7u16, 0u32, 0usize);
            let mut pending: Vec<(Instant, Vec<u8>)> = Vec::new();
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            let mut next = start;
            while !s.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= next {
                    // One audio packet of the tone every 20 ms…
                    let chunk = tones.chunks(160).nth(frame % (tones.len() / 160)).unwrap();
                    let header = rtp::RtpHeader {
                        payload_type: 0,
                        marker: false,
                        sequence: seq,
                        timestamp: ts,
                        ssrc: 0xBAD0_0001,
                    };
                    for k in 0..burst {
                        let header = rtp::RtpHeader {
                            sequence: seq.wrapping_add(k as u16),
                            ..header
                        };
                        pending.push((
                            now,
                            rtp::build(&header, &g711::encode(Codec::Pcmu, chunk)).unwrap(),
                        ));
                    }
                    // …and a fresh RFC 4733 press of `9` every 160 ms.
                    if frame % 8 == 0 {
                        for p in events
                            .press('9', 0xBAD0_0002, seq, ts, Duration::from_millis(80))
                            .unwrap()
                        {
                            pending.push((now + p.offset, p.to_bytes()));
                        }
                    }
                    seq = seq.wrapping_add(burst as u16);
                    ts = ts.wrapping_add(160);
                    frame += 1;
                    next += Duration::from_millis(20);
                }
                pending.sort_by_key(|(t, _)| *t);
                while pending.first().is_some_and(|(t, _)| *t <= Instant::now()) {
                    let (_, pkt) = pending.remove(0);
                    if sock.send_to(&pkt, target).is_ok() {
                        n.fetch_add(1, Ordering::SeqCst);
                        f.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                }
                // Anything the server sends here is a failure of media trust.
                if let Ok((_, source)) = sock.recv_from(&mut buf) {
                    if source.ip() != from {
                        r.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        Attacker {
            stop,
            sent,
            received,
            first_sent,
            thread: Some(thread),
        }
    }

    /// Stop; returns (packets sent, datagrams received from the server).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.sent.load(Ordering::SeqCst),
            self.received.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Wait for the caller's `media … to ADDR` line (printed at the answer) and start
/// the attack on that address at once.
fn attack_when_answered(caller: &Dialer, burst: usize) -> (Attacker, Instant) {
    attack_when_answered_from(ATTACKER_IP.parse().unwrap(), caller, burst)
}

/// [`attack_when_answered`] from `from`.
fn attack_when_answered_from(from: IpAddr, caller: &Dialer, burst: usize) -> (Attacker, Instant) {
    let (target, seen) = wait_for("the answer", Duration::from_secs(30), || {
        caller.transcript().iter().find_map(|l| {
            let addr = l.split(" media ").nth(1)?.split(" to ").nth(1)?;
            Some((addr.trim().parse::<SocketAddr>().ok()?, Instant::now()))
        })
    });
    (Attacker::start_from(from, target, burst), seen)
}

/// The attack started before the caller's first RTP packet could have left.
fn assert_attack_came_first(attacker: &Attacker, answer_seen: Instant) {
    let first = wait_for("the attack's first packet", Duration::from_secs(5), || {
        *attacker.first_sent.lock().unwrap()
    });
    assert!(
        first.saturating_duration_since(answer_seen)
            < Duration::from_secs_f64(CALLER_RTP_AFTER - 1.0),
        "the attack started {:?} after the answer",
        first.saturating_duration_since(answer_seen)
    );
}

/// `sspr_ivr_rtp_packets_rejected_total{reason="untrusted_source"}`.
fn rejected_untrusted(server: &Server) -> u64 {
    let (_, metrics) = http_get_text(server.admin, "/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with("sspr_ivr_rtp_packets_rejected_total{reason=\"untrusted_source\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// The echo flow under an attack of `burst` forged audio packets per 20 ms:
/// the caller hears exactly its own digits read back, the attacker gets
/// nothing, and the server counts what it refused until the caller's stream
/// is up. From then on the call's socket is connected to the caller, and the
/// kernel refuses the attacker's packets: the server never sees them.
fn echo_under_attack(burst: usize, min_sent: u64, extra: &[&str]) {
    let server = Server::demo(&[]);
    echo_under_attack_on(
        &server,
        ATTACKER_IP.parse().unwrap(),
        burst,
        min_sent,
        extra,
    );
}

/// [`echo_under_attack`] on `server`, the attacker at `from`.
fn echo_under_attack_on(
    server: &Server,
    from: IpAddr,
    burst: usize,
    min_sent: u64,
    extra: &[&str],
) {
    let rtp_after = CALLER_RTP_AFTER.to_string();
    let mut args = vec!["--dtmf", "100100#", "--rtp-after", &rtp_after];
    args.extend(extra);
    let mut caller = Dialer::start(&server.uri("echo"), &args);
    let (attacker, seen) = attack_when_answered_from(from, &caller, burst);
    assert_attack_came_first(&attacker, seen);
    // A second into the caller's stream (its keys come after the intro,
    // seconds later).
    std::thread::sleep(
        (seen + Duration::from_secs_f64(CALLER_RTP_AFTER + 1.0))
            .saturating_duration_since(Instant::now()),
    );
    let streaming = (
        attacker.sent.load(Ordering::SeqCst),
        rejected_untrusted(server),
    );
    let ok = caller.wait(Duration::from_secs(60));
    let (sent, received) = attacker.stop();
    let transcript = caller.transcript();
    assert!(
        ok,
        "dial failed:\n{}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    let heard = prompts_heard(&transcript);
    assert_eq!(heard, echo_readback("100100"), "{}", transcript.join("\n"));
    assert!(sent > min_sent, "the attacker sent {sent} packets");
    assert_eq!(received, 0, "server RTP went to the attacker");
    let rejected = wait_for("the rejections metric", Duration::from_secs(5), || {
        let n = rejected_untrusted(server);
        (n > 0).then_some(n)
    });
    assert!(rejected <= sent, "{rejected} rejected of {sent} sent");
    assert!(
        streaming.1 > 0,
        "nothing refused before the caller's stream"
    );
    // While the caller streams, the attacker's packets do not reach the
    // server at all (a few may be in the socket from before the connect).
    let (sent_since, rejected_since) = (sent - streaming.0, rejected - streaming.1);
    assert!(
        sent_since >= min_sent / 4 && rejected_since * 20 <= sent_since,
        "{rejected_since} of the {sent_since} packets sent while the caller streamed reached the \
         server: its socket was not connected to the caller"
    );
}

#[test]
fn echo_reads_back_only_the_callers_digits_under_attack() {
    echo_under_attack(1, 200, &[]);
}

/// The same attack over IPv6: the server, its media and the caller on `::1`,
/// the attacker at another address of the host, `fd00:5eed::2` (in a network
/// namespace of this test's own: the host's `lo` has only `::1`). The trust
/// check and the connected call socket must work for IPv6 sources as for
/// IPv4 ones: the caller hears only its own keys, the attacker gets nothing,
/// and is refused by the server, then by the kernel.
#[test]
fn an_ipv6_call_under_attack_hears_only_its_callers_digits() {
    const ATTACKER_V6: &str = "fd00:5eed::2";
    common::netns::enter_private_network(&[ATTACKER_V6]);
    let sip: SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    let server = Server::demo_at(sip, &[]);
    assert!(
        server.wait_output("rtp         [::1]:", Duration::from_secs(10)),
        "{}",
        server.output_text()
    );
    echo_under_attack_on(
        &server,
        ATTACKER_V6.parse().unwrap(),
        1,
        200,
        &["--local-ip", "::1"],
    );
}

/// The same attack on a late-offer call (`dial --late-offer`: the INVITE has
/// no SDP, the port is in the server's 200, the caller's address only in its
/// ACK): until the ACK only the signalling address is trusted, and the
/// attacker, who starts at the answer, is refused all along.
#[test]
fn a_late_offer_call_under_attack_hears_only_its_callers_digits() {
    echo_under_attack(1, 200, &["--late-offer"]);
}

/// 40 forged packets per 20 ms (2,000 a second) at one call: more than a call's
/// turn reads in one batch, so the call keeps coming back for the rest, and its
/// caller's own packets and keys still get through.
#[test]
fn echo_reads_back_only_the_callers_digits_under_a_flood() {
    echo_under_attack(40, 10_000, &[]);
}

#[test]
fn a_pin_typed_under_attack_is_the_callers() {
    const NEW_PIN: &str = "835172";
    let server = Server::demo(&[]);
    let mut caller = Dialer::start(
        &server.uri("reset"),
        &[
            "--dtmf-mode",
            "inband",
            "--rtp-after",
            &CALLER_RTP_AFTER.to_string(),
            "--on",
            "enter_employee_id=123456#",
            "--on",
            &format!("enter_new_pin={NEW_PIN}"),
            "--on",
            &format!("confirm_new_pin={NEW_PIN}"),
        ],
    );
    let (attacker, seen) = attack_when_answered(&caller, 1);
    assert_attack_came_first(&attacker, seen);
    let otp = wait_for("the demo SMS", Duration::from_secs(60), || {
        let (status, body) = http_get(server.backend, "/demo/codes");
        let codes: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200).then_some(())?;
        codes
            .as_array()?
            .iter()
            .rev()
            .find(|c| c["user_id"] == "u-123456")
            .and_then(|c| c["code"].as_str().map(str::to_string))
    });
    wait_for("the hold music", Duration::from_secs(60), || {
        prompts_heard(&caller.transcript())
            .iter()
            .any(|p| p == "hold_music")
            .then_some(())
    });
    caller.type_digits(&otp);
    let ok = caller.wait(Duration::from_secs(120));
    let (sent, received) = attacker.stop();
    let transcript = caller.transcript();
    assert!(
        ok,
        "dial failed:\n{}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    assert!(
        prompts_heard(&transcript).contains(&"pin_reset_success".to_string()),
        "{}",
        transcript.join("\n")
    );
    assert!(sent > 500, "the attacker sent {sent} packets");
    assert_eq!(received, 0, "server RTP went to the attacker");
    // What the identity provider received is exactly what the caller typed.
    let (_, body) = http_get(server.backend, "/demo/requests");
    let requests: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let paths: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["path"].as_str())
        .filter(|p| p.starts_with("/users/"))
        .collect();
    assert_eq!(
        paths,
        [
            "/users/123456",
            "/users/u-123456/otp",
            "/users/u-123456/otp/verify",
            "/users/u-123456/pin"
        ],
        "{body}"
    );
    let body_of = |path: &str| {
        requests
            .iter()
            .find(|r| r["path"] == path)
            .map(|r| r["body"].clone())
            .unwrap()
    };
    assert_eq!(body_of("/users/u-123456/otp/verify")["code"], otp.as_str());
    assert_eq!(body_of("/users/u-123456/pin")["pin"], NEW_PIN);
    assert!(rejected_untrusted(&server) > 0);
}
