//! SIP over TLS against the real binary: `sspr-ivr serve` with a `sip.tls`
//! section whose certificate is made here (rcgen, a private CA), called by the
//! project's `dial` over TLS and by a rustls client in this file that speaks
//! SIP on the connection like a trunk or an attacker would.
//!
//! What a caller or operator would notice: the echo flow reads back digits
//! sent over TLS; Via/Contact/Record-Route follow RFC 3261/5630; a SIGHUP with a
//! new certificate changes what the next handshake sees without dropping a
//! live connection, and a broken one is refused while the old one is kept;
//! with `client_ca_file` only trusted client certificates get in; a peer that
//! never finishes the handshake is cut off.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{install_server_cert, Pki};
use common::*;
use rcgen::ExtendedKeyUsagePurpose;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Bound on every single network wait in this file.
const WAIT: Duration = Duration::from_secs(10);

struct TlsServer {
    server: Server,
    tls: SocketAddr,
}

/// `sspr-ivr serve` routing every call to the echo flow, with TLS on a free
/// port; `tls_extra` is added to the `sip.tls` table.
fn serve_tls(pki: &Pki, tls_extra: &str) -> TlsServer {
    serve_tls_sip(pki, tls_extra, "")
}

/// The same, with `sip_extra` (whole indented lines) added to the `sip` table.
fn serve_tls_sip(pki: &Pki, tls_extra: &str, sip_extra: &str) -> TlsServer {
    let dir = tempfile::tempdir().expect("tempdir");
    install_server_cert(dir.path(), pki, "ivr one");
    let sip: SocketAddr = free_addr();
    let tls: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let min = rtp_block();
    let cfg = format!(
        "sip:\n  listen: \"{sip}\"\n{sip_extra}  tls: {{ listen: \"{tls}\", cert_file: sip.pem, key_file: sip.key{tls_extra} }}\n\
         media: {{ rtp_port_min: {min}, rtp_port_max: {max}, inactivity_timeout: 30s }}\n\
         prompts: {{ dir: {prompts} }}\n\
         flows: {{ echo: {echo} }}\n\
         routes: {{ default: echo }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n\
         recording: {{ enabled: false }}\n",
        max = min + 998,
        prompts = repo().join("prompts").display(),
        echo = repo().join("flows/echo.yaml").display(),
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, cfg).unwrap();
    let args: Vec<String> = vec![
        "--log-level".into(),
        "debug".into(),
        "serve".into(),
        "--config".into(),
        path.display().to_string(),
    ];
    let server = Server::spawn(&args, sip, admin, admin, dir);
    assert!(
        server.wait_output(&format!("sips:{tls} (tls)"), WAIT),
        "the server announces its TLS listener:\n{}",
        server.output_text()
    );
    TlsServer { server, tls }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(roots: RootCertStore, client: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from(pem_der(cert))];
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_der(key)));
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// The DER inside a one-item PEM (what rcgen writes).
fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    if pem.contains("PRIVATE KEY") {
        PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .secret_pkcs8_der()
            .to_vec()
    } else {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connect and finish the handshake (or fail with the reason).
fn connect(at: SocketAddr, config: Arc<ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect_timeout(&at, WAIT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = "127.0.0.1".try_into().unwrap();
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// The server's leaf certificate on this connection.
fn peer_leaf(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Read one SIP message (headers + Content-Length body) from the stream.
fn read_message(tls: &mut Tls) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = Instant::now() + WAIT;
    loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= pos + 4 + len {
                let msg = String::from_utf8_lossy(&buf[..pos + 4 + len]).to_string();
                return Ok(msg);
            }
        }
        if Instant::now() > end {
            return Err("timed out".into());
        }
        match tls.read(&mut chunk) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Read messages until a response to `method` arrives (skipping 100 Trying
/// and requests the server sends).
fn response_to(tls: &mut Tls, method: &str, min_status: u16) -> String {
    loop {
        let msg = read_message(tls).unwrap_or_else(|e| panic!("waiting for {method}: {e}"));
        if !msg.starts_with("SIP/2.0 ") {
            continue;
        }
        let status: u16 = msg[8..11].parse().unwrap();
        let cseq = header(&msg, "CSeq").unwrap_or_default();
        if cseq.ends_with(method) && status >= min_status {
            return msg;
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn options(tls: &mut Tls, n: u32) -> String {
    let local = tls.sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKopt{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p{n}\r\n\
         To: <sip:ivr@127.0.0.1>\r\n\
         Call-ID: opt{n}@test\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).unwrap();
    response_to(tls, "OPTIONS", 200)
}

/// A read that ended because the server closed the connection (end of
/// stream or a reset), not because the read timed out.
fn closed_by_server(r: &std::io::Result<usize>) -> bool {
    match r {
        Ok(n) => *n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn status(resp: &str) -> u16 {
    resp[8..11].parse().unwrap()
}

#[test]
fn dial_over_tls_hears_its_digits_read_back() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, "");
    let ca = pki.write_ca(s.server.dir.path());
    for (uri, mode, digits) in [
        (format!("sips:echo@{}", s.tls), "rfc4733", "4815"),
        // SIP INFO digits travel inside the TLS connection itself.
        (format!("sip:echo@{};transport=tls", s.tls), "info", "2906"),
    ] {
        let (ok, transcript, err) = dial(
            &uri,
            &[
                "--dtmf",
                &format!("{digits}#"),
                "--dtmf-mode",
                mode,
                "--tls-ca",
                ca.to_str().unwrap(),
                "--timeout",
                "60",
            ],
            Duration::from_secs(70),
        );
        let want = echo_readback(digits);
        assert!(
            ok,
            "dial {uri} failed:\n{}\n{err}\nserver:\n{}",
            transcript.join("\n"),
            s.server.output_text()
        );
        assert_eq!(
            prompts_heard(&transcript),
            want,
            "{uri}:\n{}",
            transcript.join("\n")
        );
        assert!(
            transcript.iter().any(|l| l.contains("sip BYE received")),
            "the IVR's BYE comes back over the TLS connection:\n{}",
            transcript.join("\n")
        );
    }
}

#[test]
fn dial_refuses_a_server_its_ca_did_not_sign() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, "");
    let other = Pki::new("other CA");
    let ca = other.write_ca(s.server.dir.path());
    let (ok, transcript, err) = dial(
        &format!("sips:echo@{}", s.tls),
        &["--tls-ca", ca.to_str().unwrap(), "--timeout", "20"],
        Duration::from_secs(30),
    );
    assert!(!ok, "{}", transcript.join("\n"));
    assert!(err.contains("TLS handshake"), "{err}");
}

/// An INVITE with a SIPS Request-URI and a SIPS Record-Route: the 200's
/// Contact is a SIPS URI at the TLS port, Via and Record-Route come back as
/// sent; a `sip:` URI with `transport=tls` gets a `transport=tls` Contact;
/// the IVR's BYE reuses the connection.
#[test]
fn sips_and_transport_tls_in_via_contact_and_record_route() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, "");
    let cases = [
        (
            format!("sips:echo@{}", s.tls),
            "<sip:proxy.example.com;transport=tls;lr>",
            format!("<sips:ivr@{}>", s.tls),
        ),
        // A SIPS top Record-Route makes the dialog SIPS too (RFC 3261 §12.1.1).
        (
            format!("sip:echo@{};transport=tls", s.tls),
            "<sips:proxy.example.com;lr>",
            format!("<sips:ivr@{}>", s.tls),
        ),
        (
            format!("sip:echo@{};transport=tls", s.tls),
            "<sip:proxy.example.com;transport=tls;lr>",
            format!("<sip:ivr@{};transport=tls>", s.tls),
        ),
    ];
    for (i, (ruri, rr, contact)) in cases.iter().enumerate() {
        let mut tls = connect(s.tls, client_config(pki.roots(), None)).unwrap();
        let local = tls.sock.local_addr().unwrap();
        let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rtp_port = rtp.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        );
        let via = format!("SIP/2.0/TLS {local};branch=z9hG4bKinv{i};rport");
        let invite = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Record-Route: {rr}\r\n\
             Max-Forwards: 70\r\n\
             From: <sips:alice@example.com>;tag=a{i}\r\n\
             To: <{ruri}>\r\n\
             Call-ID: tls{i}@test\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sips:alice@{local}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        tls.write_all(invite.as_bytes()).unwrap();
        let ok = response_to(&mut tls, "INVITE", 200);
        assert_eq!(status(&ok), 200, "{ok}");
        assert_eq!(header(&ok, "Contact"), Some(contact.as_str()), "{ok}");
        let via_back = header(&ok, "Via").unwrap();
        assert!(
            via_back.starts_with(&format!("SIP/2.0/TLS {local};branch=z9hG4bKinv{i}")),
            "{ok}"
        );
        assert_eq!(header(&ok, "Record-Route"), Some(*rr), "{ok}");
        let to = header(&ok, "To").unwrap().to_string();
        let ack = format!(
            "ACK {} SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bKack{i}\r\n\
             Max-Forwards: 70\r\n\
             From: <sips:alice@example.com>;tag=a{i}\r\n\
             To: {to}\r\n\
             Call-ID: tls{i}@test\r\n\
             CSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            contact.trim_matches(['<', '>'])
        );
        tls.write_all(ack.as_bytes()).unwrap();
        // The echo flow waits for digits; our BYE ends it, answered on the
        // same connection.
        let bye = format!(
            "BYE {} SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bKbye{i}\r\n\
             Max-Forwards: 70\r\n\
             From: <sips:alice@example.com>;tag=a{i}\r\n\
             To: {to}\r\n\
             Call-ID: tls{i}@test\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            contact.trim_matches(['<', '>'])
        );
        tls.write_all(bye.as_bytes()).unwrap();
        let done = response_to(&mut tls, "BYE", 200);
        assert_eq!(status(&done), 200, "{done}");
    }
    // Out of dialog, OPTIONS over TLS names the TLS port with transport=tls.
    let mut tls = connect(s.tls, client_config(pki.roots(), None)).unwrap();
    let resp = options(&mut tls, 1);
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(
        header(&resp, "Contact"),
        Some(format!("<sip:ivr@{};transport=tls>", s.tls).as_str())
    );
}

/// Certificate rotation: SIGHUP makes the next handshake see the new
/// certificate; a connection made before keeps working; a reload that brings
/// a key not matching the certificate is refused and the last good pair stays.
#[test]
fn sighup_rotates_the_certificate_without_dropping_connections() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, "");
    let cfg = client_config(pki.roots(), None);
    let mut before = connect(s.tls, cfg.clone()).unwrap();
    let first = peer_leaf(&before);
    assert_eq!(status(&options(&mut before, 1)), 200);

    let second = install_server_cert(s.server.dir.path(), &pki, "ivr two");
    s.server.signal("HUP");
    let mut after = wait_for("the new certificate", WAIT, || {
        let t = connect(s.tls, cfg.clone()).ok()?;
        (peer_leaf(&t) == second).then_some(t)
    });
    assert_ne!(first, second);
    assert_eq!(status(&options(&mut after, 2)), 200);
    assert_eq!(
        status(&options(&mut before, 3)),
        200,
        "the connection made before the reload still works"
    );

    // A key that does not belong to the certificate: refused, old pair kept.
    let (_, stray_key, _) = pki.leaf("stray", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(s.server.dir.path().join("sip.key"), stray_key).unwrap();
    let rejected_before = s.server.output_text().matches("reload refused").count();
    s.server.signal("HUP");
    wait_for("the reload to be rejected", WAIT, || {
        (s.server.output_text().matches("reload refused").count() > rejected_before).then_some(())
    });
    let out = s.server.output_text();
    assert!(
        out.contains("sip.tls"),
        "the rejection names sip.tls:\n{out}"
    );
    let third = connect(s.tls, cfg).unwrap();
    assert_eq!(
        peer_leaf(&third),
        second,
        "the last good certificate is still served"
    );
    assert!(
        !out.contains("PRIVATE KEY"),
        "key material never reaches the log"
    );
}

#[test]
fn mutual_tls_lets_in_only_clients_the_ca_signed() {
    let pki = Pki::new("sip test CA");
    let trunks = Pki::new("trunk CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = trunks.write_ca(dir.path());
    let s = serve_tls(&pki, &format!(", client_ca_file: {}", ca.display()));

    let (cert, key, _) = trunks.leaf("trunk", ExtendedKeyUsagePurpose::ClientAuth);
    let mut ok = connect(s.tls, client_config(pki.roots(), Some((&cert, &key)))).unwrap();
    assert_eq!(status(&options(&mut ok, 1)), 200);

    // No certificate, or one from a CA the server does not trust: with TLS 1.3
    // the client learns at its first read at the latest.
    let rogue = Pki::new("rogue CA");
    let (rcert, rkey, _) = rogue.leaf("rogue", ExtendedKeyUsagePurpose::ClientAuth);
    for client in [None, Some((rcert.as_str(), rkey.as_str()))] {
        let refused = match connect(s.tls, client_config(pki.roots(), client)) {
            Err(_) => true,
            Ok(mut t) => {
                let _ = t.write_all(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\n\r\n");
                read_message(&mut t).is_err()
            }
        };
        assert!(refused, "a client without a trusted certificate got in");
    }
}

#[test]
fn a_peer_that_never_finishes_the_handshake_is_cut_off() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, ", handshake_timeout: 1s");
    let mut tcp = TcpStream::connect_timeout(&s.tls, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    // Silent after connect: the server closes (EOF or reset), well before WAIT.
    let r = tcp.read(&mut buf);
    assert!(closed_by_server(&r), "{r:?}");
    assert!(start.elapsed() < WAIT, "closed by the handshake timeout");
    // Plain SIP on the TLS port gets no SIP answer.
    let mut plain = TcpStream::connect_timeout(&s.tls, WAIT).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    let _ = plain.write_all(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("SIP/2.0 200"));
}

/// `untrusted_requests: drop`: a peer outside `trusted_peers` is closed at
/// accept, before any handshake, and counted; a listed peer is served.
#[test]
fn an_untrusted_peer_under_drop_is_closed_before_the_handshake() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls_sip(
        &pki,
        "",
        "  trusted_peers: [127.0.0.1]\n  untrusted_requests: drop\n",
    );
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect_timeout(&s.tls.into(), WAIT).unwrap();
    let mut stranger: TcpStream = sock.into();
    stranger.set_read_timeout(Some(WAIT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let r = stranger.read(&mut buf);
    assert!(
        closed_by_server(&r),
        "127.0.0.2 was not closed at once: {r:?}"
    );
    assert!(start.elapsed() < WAIT);
    let line = "sspr_ivr_sip_tcp_connections_closed_total{reason=\"untrusted\"} 1";
    let end = Instant::now() + WAIT;
    while !http_get(s.server.admin, "/metrics")
        .1
        .lines()
        .any(|l| l == line)
    {
        assert!(Instant::now() < end, "no `{line}`");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut listed = connect(s.tls, client_config(pki.roots(), None)).unwrap();
    assert_eq!(status(&options(&mut listed, 1)), 200);
}

/// `max_connections: 2`: a third connection waits (no handshake) until one
/// of the two closes, then it is served.
#[test]
fn the_connection_limit_holds_a_third_connection_until_one_closes() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, ", max_connections: 2");
    let cfg = client_config(pki.roots(), None);
    let mut one = connect(s.tls, cfg.clone()).unwrap();
    let mut two = connect(s.tls, cfg.clone()).unwrap();
    assert_eq!(status(&options(&mut one, 1)), 200);
    assert_eq!(status(&options(&mut two, 2)), 200);

    // The third gets a TCP connection from the kernel's queue, but no
    // ServerHello while the limit is reached.
    let tcp = TcpStream::connect_timeout(&s.tls, WAIT).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let conn = ClientConnection::new(cfg, "127.0.0.1".try_into().unwrap()).unwrap();
    let mut three = StreamOwned::new(conn, tcp);
    let held = three.conn.complete_io(&mut three.sock).and_then(|_| {
        // The ClientHello went out; now wait for the server's answer.
        three.conn.complete_io(&mut three.sock)
    });
    let kind = held.as_ref().map_err(|e| e.kind());
    assert!(
        matches!(
            kind,
            Err(std::io::ErrorKind::WouldBlock) | Err(std::io::ErrorKind::TimedOut)
        ),
        "the third connection was served past the limit: {held:?}"
    );

    drop(one);
    three.sock.set_read_timeout(Some(WAIT)).unwrap();
    while three.conn.is_handshaking() {
        three.conn.complete_io(&mut three.sock).unwrap();
    }
    assert_eq!(status(&options(&mut three, 3)), 200);
    assert_eq!(status(&options(&mut two, 4)), 200);
}

#[test]
fn config_names_a_missing_or_broken_tls_file() {
    use sspr_ivr::config::{Config, Loaded};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let base = format!(
        "prompts: {{ dir: {} }}\nflows: {{ echo: {} }}\nroutes: {{ default: echo }}\n\
         actions: {{}}\naudit: {{ action: null }}\n",
        repo().join("prompts").display(),
        repo().join("flows/echo.yaml").display()
    );
    let load = |sip: &str| -> Result<(), String> {
        let cfg = Config::from_yaml(&format!("{sip}\n{base}"), &file).map_err(|e| e.to_string())?;
        Loaded::from_config(cfg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = load("sip: { tls: { cert_file: nope.pem, key_file: nope.key } }").unwrap_err();
    assert!(err.contains("sip.tls") && err.contains("nope.pem"), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let err = load("sip: { tls: { cert_file: empty.pem, key_file: nope.key } }").unwrap_err();
    assert!(
        err.contains("empty.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    let pki = Pki::new("sip test CA");
    install_server_cert(dir.path(), &pki, "ivr");
    std::fs::write(
        dir.path().join("bad.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = load("sip: { tls: { cert_file: sip.pem, key_file: bad.key } }").unwrap_err();
    assert!(err.contains("bad.key"), "{err}");
    assert!(!err.contains("AAAA"), "{err}");
    load("sip: { tls: { cert_file: sip.pem, key_file: sip.key } }").unwrap();
    let err = load("sip: { tls: { cert_file: sip.pem, key_file: sip.key, max_connections: 0 } }")
        .unwrap_err();
    assert!(err.contains("max_connections"), "{err}");
    let err = load("sip: { transports: [udp, tls] }").unwrap_err();
    assert!(err.contains("sip.tls"), "{err}");
    let err =
        load("sip: { tls: { cert_file: sip.pem, key_file: sip.key, ciphers: all } }").unwrap_err();
    assert!(err.contains("ciphers"), "{err}");
}

/// baresip (a real softphone, headless: no sound card, silence as its
/// microphone, `sndfile` keeping what it decoded) calls the echo flow over
/// TLS, verifying our certificate against the test CA; what it played out
/// is recognised as the flow's first prompt.
#[test]
fn baresip_calls_over_tls_and_hears_the_flow() {
    let pki = Pki::new("sip test CA");
    let s = serve_tls(&pki, "");
    let dir = s.server.dir.path().join("baresip");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = pki.write_ca(&dir);
    let silence = dir.join("silence.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&silence, spec).unwrap();
    for _ in 0..8000 * 20 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let (up, out, pcm) = common::baresip::call(
        &dir,
        &ca,
        &silence,
        &format!("sip:echo@{};transport=tls", s.tls),
        "",
        10,
    );
    assert!(
        up,
        "baresip did not get the call up over TLS:\n{out}\nserver:\n{}",
        s.server.output_text()
    );
    assert!(!pcm.is_empty(), "baresip kept no decoded audio:\n{out}");
    use sspr_ivr::codec::Codec;
    use sspr_ivr::media::prompts::PromptRecognizer;
    let cache = Arc::new(sspr_ivr::files::load_prompts(&repo().join("prompts/en")).unwrap());
    let mut rec = PromptRecognizer::new(cache, Codec::Pcmu);
    let heard: Vec<String> = pcm
        .chunks(160)
        .filter_map(|frame| rec.push(&sspr_ivr::media::g711::encode(Codec::Pcmu, frame)))
        .collect();
    assert!(
        heard.first().map(String::as_str) == Some("echo_intro"),
        "baresip heard {heard:?}:\n{out}"
    );
}
