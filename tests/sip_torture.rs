//! RFC 4475 torture corpus against the sans-IO endpoint: every message of
//! `tests/sip-torture/MANIFEST.tsv` is fed as one UDP datagram, and the response is
//! checked against a table derived from the manifest's `expected_handling` column.
//! Afterwards an ordinary call still completes on the same endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sspr_ivr::sip::message::{self, Datagram, StartLine};
use sspr_ivr::sip::uac::{Uac, UacEvent};
use sspr_ivr::sip::{Command, Endpoint, EndpointConfig, Event, TokenRng, Transport};

#[path = "torture_table/mod.rs"]
mod torture_table;
use torture_table::Expect::*;
use torture_table::{NORMAL_HANDLING, TABLE};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sip-torture")
}

struct Row {
    file: String,
    handling: String,
    bytes: usize,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 8, "manifest row {l}");
            Row {
                file: cols[0].to_string(),
                handling: cols[5].to_string(),
                bytes: cols[6].parse().expect("bytes column"),
            }
        })
        .collect()
}

fn config(port: u16) -> EndpointConfig {
    EndpointConfig::new(SocketAddr::from(([127, 0, 0, 1], port)), "sspr-ivr-test")
}

const SOURCE: &str = "127.0.0.1:40000";

/// Feed one message; returns the final statuses sent and whether an IncomingCall came.
fn run_one(ep: &mut Endpoint, now: Instant, data: &[u8]) -> (Vec<u16>, bool) {
    let source: SocketAddr = SOURCE.parse().unwrap();
    ep.handle_datagram(now, Transport::Udp, source, data);
    let mut statuses = Vec::new();
    let mut call = false;
    while let Some(ev) = ep.poll_event() {
        match ev {
            Event::IncomingCall(ic) => {
                call = true;
                ep.handle_command(
                    now,
                    Command::Reject {
                        call: ic.call,
                        status: 603,
                        retry_after: None,
                        warning: None,
                    },
                );
            }
            Event::Terminated { .. } => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    while let Some(t) = ep.poll_transmit() {
        assert_eq!(t.destination, source, "responses go to the source address");
        let Ok(Datagram::Message(p)) = message::parse(&t.payload) else {
            panic!("we sent something unparseable");
        };
        let StartLine::Response { code, .. } = p.message.start else {
            panic!("the endpoint sent a request in reply to a torture message");
        };
        // The top Via is stamped with received and rport (forced rport).
        let via = p.message.header("Via").expect("Via copied");
        assert!(via.ends_with(";received=127.0.0.1;rport=40000"), "{via}");
        if code == 405 || code == 501 {
            assert!(p.message.header("Allow").is_some(), "{code} carries Allow");
        }
        if code == 420 {
            assert!(p.message.header("Unsupported").is_some());
        }
        if code == 415 {
            assert_eq!(p.message.header("Accept"), Some("application/sdp"));
        }
        statuses.push(code);
    }
    (statuses, call)
}

#[test]
fn every_torture_message_is_handled_as_the_manifest_says() {
    let rows = manifest();
    assert_eq!(rows.len(), 49);
    assert_eq!(TABLE.len(), 49);
    let mut failures = Vec::new();
    let t0 = Instant::now();
    for row in &rows {
        let data = std::fs::read(corpus_dir().join(&row.file)).expect("corpus file");
        assert_eq!(data.len(), row.bytes, "{} size", row.file);
        let expect = TABLE
            .iter()
            .find(|(f, _)| *f == row.file)
            .unwrap_or_else(|| panic!("{} not in table", row.file))
            .1;
        // The table agrees with the manifest wording.
        match expect {
            Dropped => assert!(
                row.handling.contains("drop") || row.handling.contains("discard"),
                "{}: {}",
                row.file,
                row.handling
            ),
            Stray => {
                assert!(row.handling.contains("must parse"), "{}", row.file);
                let Ok(Datagram::Message(p)) = message::parse(&data) else {
                    panic!("{} must parse", row.file);
                };
                assert!(
                    p.defect.is_none() && p.message.status().is_some(),
                    "{}",
                    row.file
                );
            }
            Status(code) if !NORMAL_HANDLING.contains(&row.file.as_str()) => assert!(
                row.handling.contains(&code.to_string()),
                "{}: {code} vs {}",
                row.file,
                row.handling
            ),
            _ => {}
        }
        let mut ep = Endpoint::new(config(5060), TokenRng::seeded(1));
        let (statuses, call) = run_one(&mut ep, t0, &data);
        let got = if call {
            if statuses == [100, 603] {
                Call
            } else {
                Status(0)
            }
        } else {
            match statuses.as_slice() {
                [] if matches!(expect, Stray) => Stray,
                [] => Dropped,
                [one] => Status(*one),
                _ => Status(1),
            }
        };
        if got != expect {
            failures.push(format!(
                "{}: expected {expect:?}, got {got:?} ({statuses:?})",
                row.file
            ));
        }
        let stats = ep.stats();
        match expect {
            Dropped | Stray => {
                assert_eq!(stats.garbage_dropped, 1, "{} counted as dropped", row.file)
            }
            Status(400) => assert_eq!(stats.parse_errors, 1, "{} counted as parse error", row.file),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "torture mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn corpus_then_an_ordinary_call_completes() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(config(5060), TokenRng::seeded(1));
    for row in manifest() {
        let data = std::fs::read(corpus_dir().join(&row.file)).unwrap();
        let _ = run_one(&mut ep, t0, &data);
        // Every transaction the corpus started ends within 64*T1.
    }
    let later = t0 + Duration::from_secs(40);
    ep.handle_timeout(later);
    while ep.poll_transmit().is_some() {}
    assert_eq!(ep.active_calls(), 0);

    let ep_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let uac_addr: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let mut uac = Uac::new(
        later,
        config(40002),
        "sip:echo@127.0.0.1:5060",
        "alice",
        offer.into(),
        TokenRng::seeded(2),
    )
    .unwrap();
    let mut answered = false;
    let mut established = false;
    for _ in 0..10 {
        while let Some(t) = uac.poll_transmit() {
            assert_eq!(t.destination, ep_addr);
            ep.handle_datagram(later, Transport::Udp, uac_addr, &t.payload);
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::IncomingCall(ic) => {
                    assert_eq!(ic.request_uri_user, "echo");
                    assert_eq!(ic.from_user, "alice");
                    ep.handle_command(
                        later,
                        Command::Answer {
                            call: ic.call,
                            sdp: offer.into(),
                        },
                    );
                }
                Event::Established { .. } => established = true,
                other => panic!("{other:?}"),
            }
        }
        while let Some(t) = ep.poll_transmit() {
            assert_eq!(t.destination, uac_addr);
            uac.handle_datagram(later, Transport::Udp, ep_addr, &t.payload);
        }
        while let Some(ev) = uac.poll_event() {
            if let UacEvent::Answered { .. } = ev {
                answered = true;
            }
        }
    }
    assert!(answered && established);
}

/// Seeded mutations of every corpus message (truncations, byte flips, CRLF and
/// comma insertions) must never panic the endpoint, the framing decoder or the UAC.
#[test]
fn mutated_corpus_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(4475);
    let t0 = Instant::now();
    let mut ep = Endpoint::new(config(5060), TokenRng::seeded(1));
    let mut uac = Uac::new(
        t0,
        config(40002),
        "sip:echo@127.0.0.1:5060",
        "alice",
        "v=0\r\n".into(),
        TokenRng::seeded(2),
    )
    .unwrap();
    let src: SocketAddr = SOURCE.parse().unwrap();
    let interesting: &[u8] = b"\r\n:;,<>\"\\ =@%\x00\xff/0123456789SIPsip";
    for row in manifest() {
        let data = std::fs::read(corpus_dir().join(&row.file)).unwrap();
        for _ in 0..120 {
            let mut m = data.clone();
            match rng.gen_range(0..4) {
                0 => m.truncate(rng.gen_range(0..=m.len())),
                1 => {
                    for _ in 0..rng.gen_range(1..8) {
                        let i = rng.gen_range(0..m.len());
                        m[i] = interesting[rng.gen_range(0..interesting.len())];
                    }
                }
                2 => {
                    let i = rng.gen_range(0..=m.len());
                    let b = interesting[rng.gen_range(0..interesting.len())];
                    m.insert(i, b);
                }
                _ => {
                    let i = rng.gen_range(0..m.len());
                    m.drain(i..(i + rng.gen_range(1..20)).min(m.len()));
                }
            }
            ep.handle_datagram(t0, Transport::Udp, src, &m);
            uac.handle_datagram(t0, Transport::Udp, src, &m);
            let mut dec = sspr_ivr::sip::framing::StreamDecoder::new();
            dec.push(&m);
            while let Ok(Some(msg)) = dec.next_message() {
                ep.handle_datagram(t0, Transport::Tcp, src, &msg);
            }
            while let Some(ev) = ep.poll_event() {
                if let Event::IncomingCall(ic) = ev {
                    ep.handle_command(
                        t0,
                        Command::Reject {
                            call: ic.call,
                            status: 486,
                            retry_after: None,
                            warning: None,
                        },
                    );
                }
            }
            while ep.poll_transmit().is_some() {}
            while uac.poll_transmit().is_some() {}
        }
    }
    ep.handle_timeout(t0 + Duration::from_secs(60));
    uac.handle_timeout(t0 + Duration::from_secs(60));
}
