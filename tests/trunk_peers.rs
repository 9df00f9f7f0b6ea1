//! `sip.trusted_peers` against the real binary, with sipp playing the trunk on
//! 127.0.0.1 and somebody else on 127.0.0.2: the caller number (ANI, as the call's
//! recording sidecar states it) comes from `P-Asserted-Identity` only when a listed
//! peer sends the INVITE; an unlisted peer gets `403` (`untrusted_requests:
//! reject`) or no answer at all (`drop`); with no list everybody may call and
//! nobody's assertion is believed. sipp must be installed; every wait is bounded.

mod common;
#[path = "trunk/support.rs"]
mod support;

use common::*;
use support::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// One call from `ip` with this From user and asserted identity; `scenario` is
/// `asserted.xml` (answered) or `untrusted.xml` (403).
fn call(server: &Server, scenario: &str, ip: &str, from_user: &str, asserted: &str) -> String {
    let mut cmd = Command::new(sipp());
    cmd.arg(server.sip.to_string())
        .args([
            "-sf",
            &repo()
                .join("tests/trunk")
                .join(scenario)
                .display()
                .to_string(),
        ])
        .args(["-s", "echo", "-key", "from_user", from_user])
        .args(["-key", "asserted", asserted])
        .args(["-i", ip, "-mi", ip])
        .args(["-p", &free_port().to_string()])
        .args(["-mp", &sipp_media_port().to_string()])
        .args(["-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin"]);
    let (ok, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(25));
    assert!(
        ok,
        "sipp {scenario} from {ip} failed:\n{out}\n{err}\n--- server:\n{}",
        server.output_text()
    );
    format!("{out}\n{err}")
}

/// The `ani` of every finished call's recording sidecar.
fn anis(server: &Server) -> Vec<String> {
    let mut out: Vec<String> = all_files(&server.dir.path().join("rec"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
        .map(|(_, bytes)| {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v["ani"].as_str().unwrap().to_string()
        })
        .collect();
    out.sort();
    out
}

fn wait_anis(server: &Server, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} recording sidecar(s)"),
        Duration::from_secs(15),
        || {
            let a = anis(server);
            (a.len() >= n).then_some(a)
        },
    )
}

fn server(sip: &str, rtp_min: u16) -> Server {
    serve_setup(&Setup {
        sip: sip.to_string(),
        extra: "recording: { enabled: true, dir: rec }\n",
        rtp_min,
        ..Setup::default()
    })
}

#[test]
fn the_asserted_identity_is_believed_from_a_listed_peer_and_others_get_403() {
    let server = server("  trusted_peers: [127.0.0.1]\n", 53100);
    // The trunk withholds the number in From and asserts it (RFC 3325 §9.1).
    call(
        &server,
        "asserted.xml",
        "127.0.0.1",
        "anonymous",
        "+15550100199",
    );
    assert_eq!(wait_anis(&server, 1), ["+15550100199"]);
    // Somebody else asserting the same number is not let in at all.
    call(
        &server,
        "untrusted.xml",
        "127.0.0.2",
        "5550100",
        "+15550100199",
    );
    wait_metric(
        &server,
        "sspr_ivr_call_setup_rejections_total{reason=\"untrusted_peer\",status=\"403\"} 1",
        Duration::from_secs(5),
    );
    wait_metric(
        &server,
        "sspr_ivr_sip_untrusted_requests_total{answer=\"forbidden\"} 1",
        Duration::from_secs(5),
    );
    assert_eq!(anis(&server), ["+15550100199"], "no call from 127.0.0.2");
}

#[test]
fn with_no_list_anybody_may_call_but_the_from_user_is_the_ani() {
    let server = server("", 53200);
    call(
        &server,
        "asserted.xml",
        "127.0.0.2",
        "5550100",
        "+15550100199",
    );
    assert_eq!(wait_anis(&server, 1), ["5550100"]);
}

/// Send an OPTIONS from `ip` and wait up to `wait` for any answer.
fn options_answered(server: &Server, ip: &str, wait: Duration) -> Option<String> {
    let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
    let local: SocketAddr = sock.local_addr().unwrap();
    let to = server.sip;
    let req = format!(
        "OPTIONS sip:echo@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\n\
         From: <sip:probe@{local}>;tag=p\r\nTo: <sip:echo@{to}>\r\nCall-ID: probe{}@test\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    sock.send_to(req.as_bytes(), to).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[test]
fn drop_leaves_an_unlisted_peer_without_any_answer() {
    let server = server(
        "  trusted_peers: [127.0.0.1]\n  untrusted_requests: drop\n",
        53300,
    );
    let listed = options_answered(&server, "127.0.0.1", Duration::from_secs(10));
    assert!(
        listed
            .as_deref()
            .is_some_and(|r| r.starts_with("SIP/2.0 200")),
        "{listed:?}"
    );
    // Nothing comes back to 127.0.0.2, not even to an OPTIONS; the drop is counted.
    assert_eq!(
        options_answered(&server, "127.0.0.2", Duration::from_secs(2)),
        None
    );
    wait_metric(
        &server,
        "sspr_ivr_sip_untrusted_requests_total{answer=\"silence\"} 1",
        Duration::from_secs(5),
    );
    // A call from there (with 500 ms retransmissions) is not answered either.
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    let local = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:echo@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKinv\r\n\
         From: <sip:5550100@{local}>;tag=i\r\nTo: <sip:echo@{to}>\r\nCall-ID: inv@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:5550100@{local}>\r\n\
         P-Asserted-Identity: <sip:+15550100199@trunk.test>\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        to = server.sip
    );
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..3 {
        sock.send_to(invite.as_bytes(), server.sip).unwrap();
        assert!(sock.recv_from(&mut buf).is_err(), "answered from 127.0.0.2");
    }
    wait_metric(
        &server,
        "sspr_ivr_sip_untrusted_requests_total{answer=\"silence\"} 4",
        Duration::from_secs(5),
    );
    assert!(anis(&server).is_empty());

    // Over TCP the unlisted peer is closed at accept, before a byte is read,
    // and counted; the listed peer's connection is served.
    let mut stranger = tcp_from("127.0.0.2", server.sip);
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stranger.write_all(options_over_tcp(&stranger, server.sip).as_bytes());
    let mut buf = [0u8; 4096];
    let got = stranger.read(&mut buf);
    // Closed (end of stream or a reset), not left open in silence (a timeout).
    let closed = match &got {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "127.0.0.2's TCP connection was not closed: {got:?}");
    wait_metric(
        &server,
        "sspr_ivr_sip_tcp_connections_closed_total{reason=\"untrusted\"} 1",
        Duration::from_secs(5),
    );
    let mut listed = tcp_from("127.0.0.1", server.sip);
    listed
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    listed
        .write_all(options_over_tcp(&listed, server.sip).as_bytes())
        .unwrap();
    let n = listed.read(&mut buf).expect("an answer over TCP");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
}

/// A TCP connection to `to` from `ip` (bounded by a 5 s connect timeout).
fn tcp_from(ip: &str, to: SocketAddr) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{ip}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    sock.into()
}

fn options_over_tcp(stream: &std::net::TcpStream, to: SocketAddr) -> String {
    let local = stream.local_addr().unwrap();
    format!(
        "OPTIONS sip:echo@{to} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp{p}\r\n\
         From: <sip:probe@{local}>;tag=t\r\nTo: <sip:echo@{to}>\r\nCall-ID: tcp{p}@test\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = local.port()
    )
}
