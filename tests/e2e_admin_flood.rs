//! End to end: the real binary (`sspr-ivr demo`) while attackers hold its
//! admin port. 127.0.0.2 opens 20 connections and sends nothing; 127.0.0.3
//! opens 20 and sends half a request head (slowloris). Each address keeps at
//! most its share (`admin::MAX_CONNECTIONS_PER_SOURCE`), the rest are closed
//! at accept, the held ones are closed once their request head is overdue
//! (`admin::HEADER_TIMEOUT`), the scraper at 127.0.0.1 is served throughout,
//! and a caller placing a call meanwhile hears exactly its digits.

mod common;

use common::*;
use sspr_ivr::ops::admin;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{ip}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect_timeout(&to.into(), WAIT).unwrap();
    sock.into()
}

/// Whether the server closes `s` within `wait` (end of stream or a reset).
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn attackers_holding_the_admin_port_get_their_share_and_the_caller_is_served() {
    let server = Server::demo(&[]);
    let admin_addr = server.admin;
    wait_for("the admin port", WAIT, || {
        (http_get(admin_addr, "/healthz").0 == 200).then_some(())
    });
    let share = admin::MAX_CONNECTIONS_PER_SOURCE;
    let mut held = Vec::new();
    for (ip, head) in [
        ("127.0.0.2", &b""[..]),
        (
            "127.0.0.3",
            &b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "[..],
        ),
    ] {
        let conns: Vec<TcpStream> = (0..20).map(|_| connect_from(ip, admin_addr)).collect();
        let mut kept = 0;
        for mut c in conns {
            let _ = c.write_all(head);
            if closed_within(&mut c, Duration::from_millis(500)) {
                continue;
            }
            kept += 1;
            held.push(c);
        }
        assert_eq!(
            kept, share,
            "{ip} holds exactly its share of the admin port"
        );
    }
    // The scraper and a caller are served while the attackers hold their share.
    let (status, body) = http_get(admin_addr, "/metrics");
    assert_eq!(status, 200);
    let shed = 2 * (20 - share) as u64;
    assert_eq!(
        admin_closed(&body, "source_limit"),
        Some(shed),
        "every connection shed at accept is counted"
    );
    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "42#"],
        Duration::from_secs(60),
    );
    assert!(ok, "dial failed:\n{}\n{err}", transcript.join("\n"));
    assert_eq!(prompts_heard(&transcript), echo_readback("42"));
    // Silent and slow connections alike are closed once their head is overdue
    // (the call above took longer than that: they are closed by now).
    let started = Instant::now();
    for c in held.iter_mut() {
        assert!(
            closed_within(c, admin::HEADER_TIMEOUT + Duration::from_secs(3)),
            "a held admin connection stayed open ({:?})",
            started.elapsed()
        );
    }
    let (_, body) = http_get(admin_addr, "/metrics");
    assert_eq!(
        admin_closed(&body, "head_timeout"),
        Some(2 * share as u64),
        "every overdue head is counted"
    );
}

/// `sspr_ivr_admin_connections_closed_total{reason}` in a scrape, if present.
fn admin_closed(scrape: &str, reason: &str) -> Option<u64> {
    let prefix = format!("sspr_ivr_admin_connections_closed_total{{reason=\"{reason}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.parse().unwrap()))
}
