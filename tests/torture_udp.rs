//! The RFC 4475 torture corpus over real UDP against the running server:
//! every message is sent as one datagram to `sspr-ivr demo`, the answer is
//! checked against the manifest-derived table, the server keeps running,
//! and an ordinary call completes afterwards.
//!
//! The messages address documentation networks; `192.0.2.` is rewritten to
//! `127.0.0.` (same length, so Content-Length still holds) so that any media
//! or in-dialog request the server sends stays on this machine. Nothing
//! else in a message is changed.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[path = "torture_table/mod.rs"]
mod torture_table;
use torture_table::{Expect, TABLE};

fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = data.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Final responses (status, full text) received within `wait`.
fn collect(sock: &UdpSocket, wait: Duration) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(code) = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
            {
                if code >= 200 && !out.iter().any(|(c, _)| *c == code) {
                    out.push((code, text));
                }
            }
        }
    }
    out
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// ACK a 200 and hang up with BYE, so the call ends cleanly.
fn ack_and_bye(sock: &UdpSocket, ok: &str) {
    let local = sock.local_addr().unwrap();
    let contact = header(ok, "Contact").expect("Contact in 200");
    let target = contact
        .trim_start_matches(|c| c != '<')
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let (from, to, call_id) = (
        header(ok, "From").unwrap(),
        header(ok, "To").unwrap(),
        header(ok, "Call-ID").unwrap(),
    );
    let cseq: u32 = header(ok, "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    for (method, n) in [("ACK", cseq), ("BYE", cseq + 1)] {
        let msg = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            rand_hex()
        );
        sock.send(msg.as_bytes()).unwrap();
    }
    let answers = collect(sock, Duration::from_millis(500));
    assert!(
        answers.iter().any(|(c, t)| *c == 200 && t.contains("BYE")),
        "BYE answered 200: {answers:?}"
    );
}

fn rand_hex() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn rfc4475_corpus_over_udp_then_an_ordinary_call() {
    let server = Server::demo(&[]);
    let dir = repo().join("tests/sip-torture");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let files: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .filter(|f| !f.is_empty())
        .collect();
    assert_eq!(files.len(), 49, "the whole corpus");
    let mut failures = Vec::new();
    for file in files {
        let expect = TABLE
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, e)| *e)
            .unwrap_or_else(|| panic!("{file} missing from TABLE"));
        let raw = std::fs::read(dir.join(file)).unwrap();
        let data = replace_all(&raw, b"192.0.2.", b"127.0.0.");
        // A fresh socket per message: each gets its own source port.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(server.sip).unwrap();
        sock.send(&data).unwrap();
        let silent = matches!(expect, Expect::Dropped | Expect::Stray);
        let wait = if silent {
            Duration::from_millis(400)
        } else {
            Duration::from_millis(700)
        };
        let got = collect(&sock, wait);
        let codes: Vec<u16> = got.iter().map(|(c, _)| *c).collect();
        match expect {
            Expect::Status(code) if codes != [code] => {
                failures.push(format!("{file}: want {code}, got {codes:?}"))
            }
            Expect::Dropped | Expect::Stray if !codes.is_empty() => {
                failures.push(format!("{file}: want silence, got {codes:?}"))
            }
            Expect::Call => match got.iter().find(|(c, _)| *c == 200) {
                // The real server answers a valid INVITE: 200 with SDP.
                Some((_, ok)) => ack_and_bye(&sock, ok),
                None => failures.push(format!("{file}: want a 200 answer, got {codes:?}")),
            },
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "torture failures:\n{}\nserver output:\n{}",
        failures.join("\n"),
        server.output_text()
    );
    // The server survived and still answers an ordinary call.
    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "42#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    assert!(
        prompts_heard(&transcript).contains(&"goodbye".to_string()),
        "{}",
        transcript.join("\n")
    );
    assert!(
        !server.output_text().contains("panicked"),
        "no panic:\n{}",
        server.output_text()
    );
}
