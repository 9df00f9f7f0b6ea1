//! Inputs the fuzz targets found that break an invariant, kept as plain tests. Each is
//! `#[ignore]`d until its bug is fixed; then drop the `#[ignore]` (and add the input
//! to `fuzz/seeds/<target>/` so the smoke test and the fuzzer start from it).
//! See `docs/fuzzing.md`.

use std::net::SocketAddr;
use std::time::Instant;

use sspr_ivr::sip::message::{self, Datagram};
use sspr_ivr::sip::{Endpoint, EndpointConfig, TokenRng, Transport};

/// Was a bug (sip::message::parse_start_line): a Request-Line
/// with a single trailing space after the version, `OPTIONS SIP/2.0 `, splits into
/// exactly three parts with an empty third one. The last non-empty part passes the
/// `SIP/` check, so `&parts[2][4..]` slices an empty string and panics: "start byte
/// index 4 is out of bounds". Any UDP peer can send it. Found by `sip_datagram`
/// (tests/fuzz_smoke.rs, FUZZ_SMOKE_ITERS=200000, input #190776).
/// Fixed in the SIP layer's strict Request-Line check; kept as a regression.
#[test]
fn request_line_with_trailing_space_after_version_does_not_panic() {
    for data in [
        &b"OPTIONS SIP/2.0 \r\n\r\n"[..],
        b"INVITE SIP/2.0 \r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\r\n",
        // The input as the fuzzer found it (a torture message, mutated).
        b"OPTample.com SIP/2.00 \r\nVia: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\r\nTo: <sip:remote-target@example.com>\r\nFrom\xd5: <sip:local-resource@example.com>;tag=329429089\r\nCall-ID: trws.oicu34958239neffasdhr2345r\r\nAccept: application/sdp\r\nCSeq: 238923 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    ] {
        let parsed = message::parse(data);
        // Whatever the verdict, it is a verdict: no panic. The
        // endpoint must answer or drop it, not crash.
        if let Ok(Datagram::Message(p)) = &parsed {
            assert!(p.defect.is_some(), "`{:?}` is not a valid Request-Line", p.message.start);
        }
        let source: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut ep = Endpoint::new(
            EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "sspr-ivr-test"),
            TokenRng::seeded(1),
        );
        ep.handle_datagram(Instant::now(), Transport::Udp, source, data);
        while ep.poll_transmit().is_some() {}
    }
}
