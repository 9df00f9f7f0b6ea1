//! The registration machine in virtual time: a scripted registrar answers each
//! REGISTER it sends, and the digest it computes is checked against RFC 3261 §22.4 /
//! RFC 8760 arithmetic written out here with RustCrypto directly.

use super::*;
use crate::sip::message::{parse, Datagram};

const REGISTRAR: &str = "127.0.0.1:5080";

fn params() -> RegisterParams {
    RegisterParams {
        name: "trunk1".into(),
        registrar: "sip:127.0.0.1:5080".into(),
        destination: REGISTRAR.parse().unwrap(),
        aor: "sip:ivr-line@example.net".into(),
        contact: "sip:ivr@127.0.0.1:5060".into(),
        username: "ivr-line".into(),
        password: Secret::new("s3cret pass"),
        expires: 60,
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(40),
    }
}

struct Harness {
    reg: Registration,
    now: Instant,
    t0: Instant,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        let cfg = EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "sspr-ivr-test");
        let mut reg = Registration::new(params(), &cfg, TokenRng::seeded(1));
        reg.start(now);
        Harness { reg, now, t0: now }
    }

    /// Every REGISTER sent since the last call.
    fn sent(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(t) = self.reg.poll_transmit() {
            assert_eq!(t.destination, REGISTRAR.parse().unwrap());
            assert_eq!(t.transport, Transport::Udp);
            match parse(&t.payload) {
                Ok(Datagram::Message(p)) => out.push(p.message),
                other => panic!("unparseable REGISTER: {other:?}"),
            }
        }
        out
    }

    fn one(&mut self) -> Message {
        let mut all = self.sent();
        assert_eq!(all.len(), 1, "exactly one REGISTER");
        all.remove(0)
    }

    fn events(&mut self) -> Vec<RegistrationEvent> {
        std::iter::from_fn(|| self.reg.poll_event()).collect()
    }

    fn answer(&mut self, req: &Message, status: u16, extra: &[(&str, &str)]) -> bool {
        let mut resp = Message {
            start: StartLine::Response {
                version: "SIP/2.0".into(),
                code: status,
                reason: "Whatever".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            resp.push(name, req.header(name).unwrap());
        }
        resp.push("To", format!("{};tag=reg1", req.header("To").unwrap()));
        for (n, v) in extra {
            resp.push(n, *v);
        }
        let bytes = resp.to_bytes();
        let Ok(Datagram::Message(p)) = parse(&bytes) else {
            panic!("bad response");
        };
        self.reg.handle_response(self.now, &p.message)
    }

    fn advance_to(&mut self, at: Instant) {
        while let Some(t) = self.reg.poll_timeout().filter(|t| *t <= at) {
            self.now = self.now.max(t);
            self.reg.handle_timeout(self.now);
        }
        self.now = at;
    }

    fn secs(&self, s: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(s)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn h(alg: &str, data: &str) -> String {
    use sha2::Digest as _;
    match alg {
        "MD5" => hex(&md5::Md5::digest(data.as_bytes())),
        "SHA-256" => hex(&sha2::Sha256::digest(data.as_bytes())),
        other => panic!("no test hash for {other}"),
    }
}

/// The parameters of an Authorization value.
fn auth_params(value: &str) -> std::collections::HashMap<String, String> {
    let rest = value.strip_prefix("Digest ").expect("Digest scheme");
    split_list(rest)
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.trim().to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// RFC 3261 §22.4 with qop=auth (RFC 2617 §3.2.2), any RFC 8760 algorithm.
fn check_digest(req: &Message, realm: &str, nonce: &str, alg: &str) -> String {
    let value = req.header("Authorization").expect("Authorization header");
    let a = auth_params(value);
    assert_eq!(a["username"], "ivr-line");
    assert_eq!(a["realm"], realm);
    assert_eq!(a["nonce"], nonce);
    assert_eq!(a["uri"], "sip:127.0.0.1:5080", "the Request-URI verbatim");
    assert_eq!(a["algorithm"], alg);
    assert_eq!(a["qop"], "auth");
    let ha1 = h(alg, &format!("ivr-line:{realm}:s3cret pass"));
    let ha2 = h(alg, "REGISTER:sip:127.0.0.1:5080");
    let want = h(
        alg,
        &format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", a["nc"], a["cnonce"]),
    );
    assert_eq!(a["response"], want, "digest response");
    assert!(!value.contains("s3cret"), "the password never travels");
    a["nc"].clone()
}

const CHALLENGE_MD5: &str =
    "Digest realm=\"example.net\", nonce=\"n-md5\", algorithm=MD5, qop=\"auth\"";
const CHALLENGE_SHA: &str =
    "Digest realm=\"example.net\", nonce=\"n-sha\", algorithm=SHA-256, qop=\"auth,auth-int\"";

#[test]
fn challenge_answered_with_sha256_then_refreshed_before_expiry() {
    let mut hs = Harness::new();
    let first = hs.one();
    assert_eq!(first.method(), Some("REGISTER"));
    assert!(first.header("Authorization").is_none());
    assert_eq!(first.header("To"), Some("<sip:ivr-line@example.net>"));
    assert_eq!(
        first.header("Contact"),
        Some("<sip:ivr@127.0.0.1:5060>;expires=60")
    );
    assert_eq!(first.header("Expires"), Some("60"));
    assert_eq!(first.header("CSeq"), Some("1 REGISTER"));
    assert_eq!(hs.reg.state(), RegistrationState::Registering);

    // MD5 listed first, SHA-256 second: SHA-256 is answered (RFC 8760).
    let ch = [
        ("WWW-Authenticate", CHALLENGE_MD5),
        ("WWW-Authenticate", CHALLENGE_SHA),
    ];
    assert!(hs.answer(&first, 401, &ch));
    let second = hs.one();
    assert_eq!(second.header("CSeq"), Some("2 REGISTER"));
    assert_eq!(second.header("Call-ID"), first.header("Call-ID"));
    assert_eq!(second.header("From"), first.header("From"));
    assert_ne!(second.header("Via"), first.header("Via"), "a new branch");
    assert_eq!(
        check_digest(&second, "example.net", "n-sha", "SHA-256"),
        "00000001"
    );

    // The registrar grants 30 s in our Contact (less than asked).
    let granted = "<sip:ivr@127.0.0.1:5060>;expires=30, <sip:other@192.0.2.1>;expires=999";
    assert!(hs.answer(&second, 200, &[("Contact", granted), ("Expires", "60")]));
    assert_eq!(hs.events(), [RegistrationEvent::Registered { expires: 30 }]);
    assert!(hs.reg.is_registered());
    // A retransmitted 200 is absorbed, and changes nothing.
    assert!(hs.answer(&second, 200, &[("Contact", granted)]));
    assert!(hs.events().is_empty());

    // Refresh at 80 % of 30 s, with the cached challenge and the next nc.
    assert_eq!(hs.reg.poll_timeout(), Some(hs.secs(24.0)));
    hs.advance_to(hs.secs(24.0));
    let refresh = hs.one();
    assert_eq!(refresh.header("CSeq"), Some("3 REGISTER"));
    assert_eq!(
        check_digest(&refresh, "example.net", "n-sha", "SHA-256"),
        "00000002"
    );
    // The nonce went stale: answered again at once with the new one.
    let stale =
        "Digest realm=\"example.net\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\", stale=true";
    assert!(hs.answer(&refresh, 401, &[("WWW-Authenticate", stale)]));
    let again = hs.one();
    assert_eq!(
        check_digest(&again, "example.net", "n2", "SHA-256"),
        "00000001"
    );
    assert!(hs.answer(&again, 200, &[("Expires", "30")]));
    assert_eq!(hs.events(), [RegistrationEvent::Registered { expires: 30 }]);

    // Shutdown: the binding is removed with expires=0, credentials included.
    hs.reg.unregister(hs.now);
    let bye = hs.one();
    assert_eq!(
        bye.header("Contact"),
        Some("<sip:ivr@127.0.0.1:5060>;expires=0")
    );
    assert_eq!(bye.header("Expires"), Some("0"));
    check_digest(&bye, "example.net", "n2", "SHA-256");
    assert_eq!(hs.reg.state(), RegistrationState::Unregistering);
    assert!(hs.answer(&bye, 200, &[]));
    assert_eq!(
        hs.events(),
        [RegistrationEvent::Unregistered { status: 200 }]
    );
    assert_eq!(hs.reg.poll_timeout(), None, "nothing more to do");
}

#[test]
fn md5_when_only_md5_is_offered_and_407_gets_proxy_authorization() {
    let mut hs = Harness::new();
    let first = hs.one();
    assert!(hs.answer(&first, 401, &[("WWW-Authenticate", CHALLENGE_MD5)]));
    let second = hs.one();
    check_digest(&second, "example.net", "n-md5", "MD5");
    // A proxy on the way challenges too: both credentials go in the next request.
    let proxy = "Digest realm=\"proxy\", nonce=\"p1\", qop=\"auth\"";
    assert!(hs.answer(&second, 407, &[("Proxy-Authenticate", proxy)]));
    let third = hs.one();
    let pa = auth_params(
        third
            .header("Proxy-Authorization")
            .expect("Proxy-Authorization"),
    );
    assert_eq!(pa["realm"], "proxy");
    assert_eq!(pa["nonce"], "p1");
    assert_eq!(
        check_digest(&third, "example.net", "n-md5", "MD5"),
        "00000002",
        "the registrar's credentials ride along"
    );
    // Both answered: the proxy's credentials now count as refused if challenged again.
    assert!(hs.answer(&third, 407, &[("Proxy-Authenticate", proxy)]));
    assert!(matches!(
        hs.events().as_slice(),
        [RegistrationEvent::Failed { status: 407, .. }]
    ));
}

#[test]
fn wrong_password_fails_and_retries_with_doubling_backoff() {
    let mut hs = Harness::new();
    let mut expected_retry = [5u64, 10, 20, 40, 40].into_iter();
    for round in 0..5 {
        let first = hs.one();
        assert!(first.header("Authorization").is_none(), "round {round}");
        assert!(hs.answer(&first, 401, &[("WWW-Authenticate", CHALLENGE_SHA)]));
        let with_creds = hs.one();
        assert!(with_creds.header("Authorization").is_some());
        // Refused again, not stale: the credentials are wrong. No third try now.
        assert!(hs.answer(&with_creds, 401, &[("WWW-Authenticate", CHALLENGE_SHA)]));
        let retry = Duration::from_secs(expected_retry.next().unwrap());
        assert_eq!(
            hs.events(),
            [RegistrationEvent::Failed {
                status: 401,
                retry_in: retry
            }]
        );
        assert!(hs.sent().is_empty());
        assert!(!hs.reg.is_registered());
        let at = hs.reg.poll_timeout().unwrap();
        assert_eq!(at, hs.now + retry);
        hs.advance_to(at);
    }
}

#[test]
fn unanswered_register_is_retransmitted_then_times_out() {
    let mut hs = Harness::new();
    let first = hs.one();
    let mut sent_at = Vec::new();
    while hs.now < hs.secs(40.0) {
        let Some(at) = hs.reg.poll_timeout() else {
            break;
        };
        hs.advance_to(at);
        let n = hs.sent().len();
        if n > 0 {
            sent_at.push((at - hs.t0).as_secs_f64());
        }
        if !hs.events().is_empty() {
            break;
        }
    }
    // Timer E: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s; Timer F at 64*T1 = 32 s.
    assert_eq!(
        sent_at,
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    assert_eq!(
        hs.reg.state(),
        RegistrationState::Failed {
            status: 408,
            retry_at: hs.secs(37.0)
        }
    );
    // A late answer to the abandoned request is absorbed, not acted upon.
    assert!(hs.answer(&first, 200, &[]));
    assert!(hs.events().is_empty());
    assert!(!hs.reg.is_registered());
}

#[test]
fn provisional_response_slows_retransmissions_to_t2() {
    let mut hs = Harness::new();
    let first = hs.one();
    assert!(hs.answer(&first, 100, &[]));
    hs.advance_to(hs.secs(0.5));
    assert_eq!(hs.sent().len(), 1);
    hs.advance_to(hs.secs(4.4));
    assert!(hs.sent().is_empty(), "next retransmission only T2 later");
    hs.advance_to(hs.secs(4.5));
    assert_eq!(hs.sent().len(), 1);
}

#[test]
fn interval_too_brief_and_retry_after() {
    let mut hs = Harness::new();
    let first = hs.one();
    assert!(hs.answer(&first, 423, &[("Min-Expires", "600")]));
    let second = hs.one();
    assert_eq!(second.header("Expires"), Some("600"));
    assert_eq!(
        second.header("Contact"),
        Some("<sip:ivr@127.0.0.1:5060>;expires=600")
    );
    assert!(hs.answer(&second, 503, &[("Retry-After", "120 (maintenance)")]));
    assert_eq!(
        hs.events(),
        [RegistrationEvent::Failed {
            status: 503,
            retry_in: Duration::from_secs(120)
        }]
    );
    hs.advance_to(hs.secs(120.0));
    let third = hs.one();
    assert_eq!(
        third.header("Expires"),
        Some("600"),
        "the raised expiry is kept"
    );
    // No expiry in the 200 at all: the asked one is granted.
    assert!(hs.answer(&third, 200, &[]));
    assert_eq!(
        hs.events(),
        [RegistrationEvent::Registered { expires: 600 }]
    );
}

#[test]
fn strangers_responses_are_not_ours_and_unregister_without_binding_sends_nothing() {
    let mut hs = Harness::new();
    let first = hs.one();
    let mut other = first.clone();
    for h in &mut other.headers {
        if h.name == "Via" {
            h.value = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsomeoneelse".into();
        }
    }
    assert!(
        !hs.answer(&other, 200, &[]),
        "another transaction's response"
    );
    assert!(hs.events().is_empty());
    hs.reg.unregister(hs.now);
    assert!(hs.sent().is_empty());
    assert_eq!(hs.events(), [RegistrationEvent::Unregistered { status: 0 }]);
    assert_eq!(hs.reg.poll_timeout(), None);
    // Its request is gone; a late 200 changes nothing.
    assert!(hs.answer(&first, 200, &[]));
    assert_eq!(hs.reg.state(), RegistrationState::Unregistered);
}
