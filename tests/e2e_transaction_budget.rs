//! `sip.max_server_transactions` on the real binary: with room for two live
//! server transactions, two INVITEs that are never acknowledged hold both
//! slots (their 200 OK is retransmitted until Timer H), so a third INVITE is
//! answered `503` with `Retry-After` and no state — and the refusal is counted
//! in `sspr_ivr_sip_transactions_shed_total`, as docs/operations.md says.

mod common;
#[path = "trunk/support.rs"]
mod support;

use support::*;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn invite(to: std::net::SocketAddr, local: std::net::SocketAddr, n: u32) -> String {
    let sdp = format!(
        "v=0\r\no=caller {n} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        40000 + 2 * n
    );
    format!(
        "INVITE sip:echo@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbudget{n}\r\n\
         From: <sip:5550100@{local}>;tag=b{n}\r\nTo: <sip:echo@{to}>\r\nCall-ID: budget{n}@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:5550100@{local}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The first final response to Call-ID `budget{n}` within `wait`.
fn final_response(sock: &UdpSocket, n: u32, wait: Duration) -> Option<String> {
    let end = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    while Instant::now() < end {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let final_ = !text.starts_with("SIP/2.0 1");
            if final_ && text.contains(&format!("Call-ID: budget{n}@test")) {
                return Some(text);
            }
        }
    }
    None
}

#[test]
fn a_full_transaction_budget_answers_503_and_is_counted() {
    let server = serve_setup(&Setup {
        sip: "  max_server_transactions: 2\n".into(),
        rtp_min: 53400,
        ..Setup::default()
    });
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    for n in 1..=2 {
        sock.send_to(invite(server.sip, local, n).as_bytes(), server.sip)
            .unwrap();
        let answer = final_response(&sock, n, Duration::from_secs(10));
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("SIP/2.0 200")),
            "INVITE {n}: {answer:?}\n{}",
            server.output_text()
        );
    }
    wait_metric(
        &server,
        "sspr_ivr_sip_transactions_shed_total 0",
        Duration::from_secs(5),
    );
    // Neither 200 OK is acknowledged: both transactions are still live.
    sock.send_to(invite(server.sip, local, 3).as_bytes(), server.sip)
        .unwrap();
    let answer = final_response(&sock, 3, Duration::from_secs(10)).expect("an answer to INVITE 3");
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");
    assert!(answer.contains("Retry-After:"), "{answer}");
    wait_metric(
        &server,
        "sspr_ivr_sip_transactions_shed_total 1",
        Duration::from_secs(5),
    );
}
