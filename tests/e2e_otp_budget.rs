//! One-time code send budgets on the real binary, tried the way an SMS pump
//! would: one caller number dials in again and again with a different
//! employee id each time, hanging up as soon as the code is sent. With
//! `security.otp_sends_per_ani` at 2 and `security.otp_sends_global` at 3,
//! the third send from that number never reaches the OTP backend (its
//! lookup does) and the caller hears the rate-limited apology; another number
//! still gets a code until the global budget is spent, then no one does.
//! The refusals are counted in `sspr_ivr_otp_sends_total{result="refused"}`,
//! logged with the budget's name, and audited as `rate_limited`.

mod common;

use common::configured::*;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// Requests the backend received, as (method, path).
fn requests(backend: SocketAddr) -> Vec<(String, String)> {
    let (_, body) = http_get(backend, "/demo/requests");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    all.iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn otp_sends(backend: SocketAddr) -> Vec<String> {
    requests(backend)
        .into_iter()
        .filter(|(m, p)| m == "POST" && p.ends_with("/otp"))
        .map(|(_, p)| p)
        .collect()
}

fn lookups_of(backend: SocketAddr, employee_id: &str) -> usize {
    let path = format!("/users/{employee_id}");
    requests(backend)
        .iter()
        .filter(|(m, p)| m == "GET" && *p == path)
        .count()
}

fn refused_metric(admin: SocketAddr) -> f64 {
    let (_, text) = http_get_text(admin, "/metrics");
    text.lines()
        .find(|l| l.starts_with("sspr_ivr_otp_sends_total{") && l.contains("result=\"refused\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A caller who types an employee id and hangs up (the dialer is killed)
/// as soon as the backend has been asked for the code.
fn pump_one(server: &Server, backend: SocketAddr, ani: &str, employee_id: &str) {
    let before = otp_sends(backend).len();
    let caller = Dialer::start(
        &server.uri("reset"),
        &[
            "--from",
            ani,
            "--on",
            &format!("enter_employee_id={employee_id}#"),
        ],
    );
    wait_for(
        &format!("the code send for {employee_id} from {ani}"),
        Duration::from_secs(60),
        || (otp_sends(backend).len() == before + 1).then_some(()),
    );
    drop(caller);
}

/// A caller whose send the budget refuses: the call ends by itself after
/// the apology. Returns the prompts heard.
fn refused_call(server: &Server, ani: &str, employee_id: &str) -> Vec<String> {
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &[
            "--from",
            ani,
            "--on",
            &format!("enter_employee_id={employee_id}#"),
        ],
        Duration::from_secs(60),
    );
    assert!(
        ok,
        "{}\n{err}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    prompts_heard(&transcript)
}

#[test]
fn otp_sends_stop_at_the_per_caller_and_global_budgets() {
    let (server, _backend, backend, _dir) = serve_edited(&["--sms-delay", "0s"], |doc, _| {
        doc["security"]["otp_sends_per_ani"] =
            serde_yaml::from_str("{max: 2, window: 1h}").unwrap();
        doc["security"]["otp_sends_global"] = serde_yaml::from_str("{max: 3, window: 1h}").unwrap();
    });
    let admin = server.admin;

    // One number, two accounts: both codes go out.
    pump_one(&server, backend, "5550001111", "123456");
    pump_one(&server, backend, "5550001111", "456789");
    assert_eq!(refused_metric(admin), 0.0);

    // The third account from the same number: looked up, but no code sent.
    let heard = refused_call(&server, "5550001111", "567890");
    assert_eq!(lookups_of(backend, "567890"), 1, "the lookup was made");
    assert_eq!(
        otp_sends(backend),
        ["/users/u-123456/otp", "/users/u-456789/otp"],
        "the third send from one number never reached the backend"
    );
    assert!(
        heard.iter().any(|h| h == "rate_limited"),
        "the caller hears the rate-limited apology: {heard:?}"
    );
    assert!(
        !heard.iter().any(|h| h.starts_with("code_sent")),
        "{heard:?}"
    );
    assert_eq!(refused_metric(admin), 1.0);
    assert!(
        server.wait_output("budget=\"per_ani\"", Duration::from_secs(5)),
        "the refusal is logged with its budget:\n{}",
        server.output_text()
    );

    // Another number gets its code: the third send in all.
    pump_one(&server, backend, "5550002222", "567890");
    // The global budget is spent: a fresh number is refused too.
    let heard = refused_call(&server, "5550003333", "234567");
    assert!(heard.iter().any(|h| h == "rate_limited"), "{heard:?}");
    assert_eq!(lookups_of(backend, "234567"), 1);
    assert_eq!(otp_sends(backend).len(), 3, "{:?}", otp_sends(backend));
    assert_eq!(refused_metric(admin), 2.0);
    assert!(server.wait_output("budget=\"global\"", Duration::from_secs(5)));

    // Both refusals are audited (delivered to the audit receiver).
    wait_for(
        "two rate_limited audit records",
        Duration::from_secs(20),
        || {
            let (_, body) = http_get(backend, "/demo/audit");
            let records: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
            let n = records
                .iter()
                .filter(|r| r["reason"] == "rate_limited")
                .count();
            (n == 2).then_some(())
        },
    );
}
