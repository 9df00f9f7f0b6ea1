//! The sipp scenarios a tester uses (`tests/sipp/`), run against the real
//! binary in demo mode. sipp decides pass/fail on the SIP side (the IVR hangs
//! up, or transfers by REFER, before the timeout); the test then checks what
//! the backend received and what was audited.

mod common;

use common::*;
use std::time::Duration;

const PIN: &str = "835172";

fn demo() -> Server {
    Server::demo(&["--fixed-otp", "246810", "--resend-window", "0s"])
}

fn audit(server: &Server) -> Vec<serde_json::Value> {
    let (_, body) = http_get(server.backend, "/demo/audit");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn requests(server: &Server) -> Vec<serde_json::Value> {
    let (_, body) = http_get(server.backend, "/demo/requests");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Run one scenario against a fresh server; returns the server for checks.
fn run(scenario: &str) -> Server {
    let server = demo();
    let (ok, out) = run_sipp(
        &server,
        scenario,
        "reset",
        &["-m", "1"],
        Duration::from_secs(100),
    );
    assert!(
        ok,
        "sipp {scenario} failed:\n{out}\nserver:\n{}",
        server.output_text()
    );
    server
}

fn audited(server: &Server, result: &str, reason: &str) {
    let records = wait_for("the audit record", Duration::from_secs(15), || {
        let r = audit(server);
        (!r.is_empty()).then_some(r)
    });
    assert!(
        records
            .iter()
            .any(|a| a["result"] == result && a["reason"] == reason),
        "want {result}/{reason}: {records:?}\nserver:\n{}",
        server.output_text()
    );
}

fn pins_sent(server: &Server) -> Vec<String> {
    requests(server)
        .iter()
        .filter(|r| r["path"] == "/users/u-123456/pin")
        .filter_map(|r| r["body"]["pin"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sipp_happy_path_rfc4733() {
    let server = run("sspr_happy_rfc4733.xml");
    audited(&server, "success", "pin_reset");
    assert_eq!(pins_sent(&server), [PIN]);
}

#[test]
fn sipp_happy_path_inband() {
    let server = run("sspr_happy_inband.xml");
    audited(&server, "success", "pin_reset");
    assert_eq!(pins_sent(&server), [PIN]);
}

#[test]
fn sipp_weak_pin_then_a_good_one() {
    let server = run("sspr_weak_pin.xml");
    audited(&server, "success", "pin_reset");
    assert_eq!(pins_sent(&server), ["111111", PIN]);
}

#[test]
fn sipp_resend() {
    let server = run("sspr_resend.xml");
    audited(&server, "success", "pin_reset");
    let sends = requests(&server)
        .iter()
        .filter(|r| r["path"] == "/users/u-123456/otp")
        .count();
    assert_eq!(sends, 2, "the code was sent, then sent again");
}

#[test]
fn sipp_locked_account_refer() {
    let server = run("sspr_locked.xml");
    audited(&server, "failure", "account_locked");
    assert!(pins_sent(&server).is_empty());
}
