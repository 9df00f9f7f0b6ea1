//! `limits.max_calls_per_source` on the real binary, against callers who lie:
//! a caller that writes its own `X-Forwarded-For` (a different address on every
//! INVITE, to look like many callers) is counted under its own address all the
//! same, and gets `503` once it holds the limit's calls; the proxy listed in
//! `sip.proxies` (Kamailio's dispatcher, here a UDP socket on 127.0.0.9) is
//! counted per real caller, the address in its header, so its callers do not
//! share one limit — but two calls it forwards for one caller do.

mod common;

use common::configured::*;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Bound on every single network wait in this file.
const WAIT: Duration = Duration::from_secs(10);

/// Live calls per source in this file's server.
const LIMIT: usize = 2;

/// An INVITE for the echo flow from `sock`, with `X-Forwarded-For: xff`.
fn invite(sock: &UdpSocket, server: SocketAddr, call_id: &str, xff: &str) {
    let local = sock.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        ip = local.ip()
    );
    let msg = format!(
        "INVITE sip:echo@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:5550100{n}@example.com>;tag=f{call_id}\r\n\
         To: <sip:echo@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         X-Forwarded-For: {xff}\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        n = call_id.len(),
        len = sdp.len(),
    );
    sock.send_to(msg.as_bytes(), server).unwrap();
}

/// The final status the server gives `call_id` (provisional ones skipped).
fn final_status(sock: &UdpSocket, call_id: &str) -> u16 {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let mine = text
            .lines()
            .any(|l| l.trim() == format!("Call-ID: {call_id}"));
        if !mine || !text.starts_with("SIP/2.0 ") {
            continue;
        }
        let status: u16 = text[8..11].parse().unwrap();
        if status >= 200 {
            return status;
        }
    }
    panic!("no final response to {call_id} in {WAIT:?}");
}

fn socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

#[test]
fn a_forged_forwarded_for_buys_no_calls_and_the_proxys_callers_count_apart() {
    let (server, _backend_proc, _, _dir) = serve_edited(&[], |doc, _| {
        doc["limits"]["max_calls_per_source"] = LIMIT.into();
        doc["sip"]["proxies"] = serde_yaml::from_str("[\"127.0.0.9\"]").unwrap();
    });
    let sip = server.sip;
    assert!(
        answers_options(sip, WAIT),
        "the server did not come up:\n{}",
        server.output_text()
    );

    // A caller that forges a new address on every INVITE.
    let liar = socket("127.0.0.1");
    let statuses: Vec<u16> = (0..LIMIT + 2)
        .map(|i| {
            let id = format!("liar{i}");
            invite(&liar, sip, &id, &format!("198.51.100.{}", i + 1));
            final_status(&liar, &id)
        })
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "the forged X-Forwarded-For must not count:\n{}",
        server.output_text()
    );

    // The listed proxy: one call each for LIMIT + 1 callers, all taken…
    let proxy = socket("127.0.0.9");
    for i in 0..=LIMIT {
        let id = format!("proxied{i}");
        invite(&proxy, sip, &id, &format!("203.0.113.{}", i + 1));
        assert_eq!(
            final_status(&proxy, &id),
            200,
            "caller {i} behind the proxy:\n{}",
            server.output_text()
        );
    }
    // …and the first of them, calling again until it holds more than LIMIT.
    let mut again = Vec::new();
    for i in 0..LIMIT {
        let id = format!("again{i}");
        invite(&proxy, sip, &id, "203.0.113.1");
        again.push(final_status(&proxy, &id));
    }
    assert_eq!(
        again,
        [200, 503],
        "one caller behind the proxy, {LIMIT} calls"
    );

    let metrics = server_metrics(&server);
    let refused = metrics
        .lines()
        .filter(|l| l.contains("reason=\"source_limit\"") && l.contains("status=\"503\""))
        .find_map(|l| l.split_whitespace().last()?.parse::<f64>().ok());
    assert_eq!(refused, Some(3.0), "{metrics}");
}
