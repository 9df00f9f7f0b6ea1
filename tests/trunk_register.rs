//! Outbound registration, end to end: `sspr-ivr serve` registers with a registrar
//! played by sipp in server mode (`tests/trunk/registrar*.xml`), over real UDP on
//! loopback. The digest answers are checked two independent ways: sipp's own MD5 code
//! (`verifyauth`), and this file recomputing every SHA-256 response from sipp's
//! message log with RustCrypto. `/readyz` and the registration metrics follow the
//! registrar; SIGTERM removes the binding. Every wait is bounded.

mod common;
#[path = "trunk/support.rs"]
mod support;

use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// sipp playing the registrar, with its message log.
struct Registrar {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registrar {
    fn start(port: u16, scenario: &str, extra: &[&str]) -> Registrar {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("messages.log");
        let child = Command::new(sipp())
            .args([
                "-sf",
                &repo()
                    .join("tests/trunk")
                    .join(scenario)
                    .display()
                    .to_string(),
            ])
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
            .args(["-trace_msg", "-message_file", &log.display().to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        Registrar {
            child,
            log,
            _dir: dir,
        }
    }

    /// Wait for sipp to end; true when it counted the scenario as passed.
    fn wait(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Every REGISTER sipp received, as (header name → value) maps, in order.
    fn registers(&self) -> Vec<Vec<(String, String)>> {
        let text = read_to_string(&self.log);
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if !line.starts_with("REGISTER sip:") {
                continue;
            }
            let headers = lines
                .by_ref()
                .take_while(|l| !l.trim().is_empty())
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            out.push(headers);
        }
        out
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(msg: &'a [(String, String)], name: &str) -> Option<&'a str> {
    msg.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Digest parameters of an Authorization value.
fn auth_params(value: &str) -> HashMap<String, String> {
    let rest = value.strip_prefix("Digest ").expect("Digest scheme");
    let mut out = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=').expect("name=value");
        let (v, tail) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"').expect("closing quote");
                (&q[..end], &q[end + 1..])
            }
            None => match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            },
        };
        out.insert(k.trim().to_string(), v.to_string());
        rest = tail.trim_start_matches([',', ' ']);
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// RFC 3261 §22.4 / RFC 8760 with qop=auth, recomputed here.
fn expected_sha256(a: &HashMap<String, String>, password: &str) -> String {
    let ha1 = sha256(&format!("{}:{}:{password}", a["username"], a["realm"]));
    let ha2 = sha256(&format!("REGISTER:{}", a["uri"]));
    sha256(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        a["nonce"], a["nc"], a["cnonce"], a["qop"]
    ))
}

#[test]
fn sha256_challenge_refresh_and_unregister_against_sipp() {
    let port = free_port();
    let registrar: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = serve(registrar, PASSWORD, 54000);
    // No registrar yet: the first REGISTER is unanswered, so not ready.
    let (status, body) = http_get(server.admin, "/readyz");
    assert_eq!((status, body.trim()), (503, "not registered"));
    assert!(metrics(&server)
        .lines()
        .any(|l| l == "sspr_ivr_sip_registration_up{trunk=\"trunk1\"} 0"));

    // The registrar comes up; a retransmission of the REGISTER reaches it.
    let mut sipp = Registrar::start(port, "registrar.xml", &[]);
    wait_metric(
        &server,
        "sspr_ivr_sip_registration_up{trunk=\"trunk1\"} 1",
        Duration::from_secs(20),
    );
    assert_eq!(http_get(server.admin, "/readyz"), (200, "ready\n".into()));
    // Granted 4 s: refreshed after 3.2 s, and again.
    wait_metric(
        &server,
        "sspr_ivr_sip_registrations_total{trunk=\"trunk1\",result=\"registered\"} 3",
        Duration::from_secs(15),
    );

    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "server stopped"
    );
    assert!(
        sipp.wait(Duration::from_secs(10)),
        "sipp saw the un-REGISTER"
    );

    let regs = sipp.registers();
    assert!(regs.len() >= 5, "REGISTERs seen by sipp: {regs:#?}");
    let call_id = header(&regs[0], "Call-ID").unwrap();
    let mut ncs = Vec::new();
    for (i, r) in regs.iter().enumerate() {
        assert_eq!(header(r, "Call-ID"), Some(call_id), "one Call-ID for all");
        assert_eq!(header(r, "To"), Some("<sip:ivr-line@sspr.test>"));
        let contact = header(r, "Contact").unwrap();
        assert!(
            contact.starts_with(&format!("<sip:ivr-line@{}>", server.sip)),
            "{contact}"
        );
        let Some(auth) = header(r, "Authorization") else {
            assert_eq!(i, 0, "only the first REGISTER goes without credentials");
            continue;
        };
        assert!(!auth.contains(PASSWORD), "the password never travels");
        let a = auth_params(auth);
        assert_eq!(a["algorithm"], "SHA-256", "SHA-256 chosen over MD5: {auth}");
        assert_eq!(a["realm"], "sspr.test");
        assert!(a["nonce"].starts_with("sha-"), "{auth}");
        assert_eq!(a["opaque"], "op4que");
        assert_eq!(a["username"], "ivr-line");
        assert_eq!(a["uri"], format!("sip:{registrar}"));
        assert_eq!(a["response"], expected_sha256(&a, PASSWORD), "{auth}");
        ncs.push(a["nc"].clone());
    }
    // One challenge, then every later request signs with the next nc.
    let want: Vec<String> = (1..=ncs.len()).map(|n| format!("{n:08x}")).collect();
    assert_eq!(ncs, want);
    let last = regs.last().unwrap();
    assert_eq!(
        header(last, "Expires"),
        Some("0"),
        "un-REGISTER at shutdown"
    );
    assert!(header(last, "Contact").unwrap().ends_with(";expires=0"));
    let out = server.output_text();
    assert!(!out.contains(PASSWORD), "password in the log");
}

fn md5_registration(password: &str, rtp_min: u16) -> (Server, Registrar) {
    let port = free_port();
    let registrar: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sipp = Registrar::start(port, "registrar_md5.xml", &["-key", "password", PASSWORD]);
    // Give sipp a moment to bind; a REGISTER lost before that is retransmitted anyway.
    std::thread::sleep(Duration::from_millis(200));
    (serve(registrar, password, rtp_min), sipp)
}

#[test]
fn md5_answer_is_accepted_by_sipps_own_digest_check() {
    let (server, mut sipp) = md5_registration(PASSWORD, 54200);
    wait_metric(
        &server,
        "sspr_ivr_sip_registration_up{trunk=\"trunk1\"} 1",
        Duration::from_secs(20),
    );
    assert!(sipp.wait(Duration::from_secs(10)), "sipp: the 200 path");
    let regs = sipp.registers();
    let a = auth_params(header(&regs[1], "Authorization").unwrap());
    // Without qop in the challenge: the RFC 2069 form, MD5.
    assert!(!a.contains_key("qop") && !a.contains_key("cnonce"), "{a:?}");
    assert!(!a.contains_key("algorithm") || a["algorithm"] == "MD5");
}

#[test]
fn wrong_password_is_reported_and_not_ready() {
    let (server, mut sipp) = md5_registration("not the password", 54400);
    wait_metric(
        &server,
        "sspr_ivr_sip_registrations_total{trunk=\"trunk1\",result=\"auth_failed\"} 1",
        Duration::from_secs(20),
    );
    assert!(sipp.wait(Duration::from_secs(10)), "sipp: the refusal path");
    assert_eq!(
        sipp.registers().len(),
        2,
        "no third try on refused credentials"
    );
    let (status, body) = http_get(server.admin, "/readyz");
    assert_eq!((status, body.trim()), (503, "not registered"));
    assert!(metrics(&server)
        .lines()
        .any(|l| l == "sspr_ivr_sip_registration_up{trunk=\"trunk1\"} 0"));
    assert!(server.wait_output("registration failed", Duration::from_secs(5)));
    assert!(!server.output_text().contains("not the password"));
}
