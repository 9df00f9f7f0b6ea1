//! End to end: the password-reset flow on the real binary (`sspr-ivr demo`)
//! with the project's `dial` client as the caller, over loopback.
//!
//! Each test asserts what the caller heard (prompts recognised from the RTP
//! bytes), what the backend received, what was audited — and that the PIN
//! and the one-time code appear nowhere they must not: not in any log line
//! (the server logs at trace level here), recording, timeline, spool, or
//! metric.

mod common;

use common::*;
use std::time::Duration;

const NEW_PIN: &str = "835172";

/// The code the demo backend "sent" to `user_id`, once it has.
fn code_for(server: &Server, user_id: &str) -> String {
    wait_for("the demo SMS", Duration::from_secs(40), || {
        let (status, body) = http_get(server.backend, "/demo/codes");
        if status != 200 {
            return None;
        }
        let codes: serde_json::Value = serde_json::from_str(&body).ok()?;
        codes
            .as_array()?
            .iter()
            .rev()
            .find(|c| c["user_id"] == user_id)
            .and_then(|c| c["code"].as_str().map(str::to_string))
    })
}

fn audit_records(server: &Server) -> Vec<serde_json::Value> {
    let (_, body) = http_get(server.backend, "/demo/audit");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Fail if `secret` appears in any log line, file the server wrote, or metric.
fn assert_secret_nowhere(server: &Server, secret: &str, what: &str) {
    // The demo backend prints its "SMS" (`[DEMO SMS] … your code is …`) to
    // the console by design: that line is the demo's phone, not a log line.
    let leaks: Vec<String> = server
        .output
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("[DEMO SMS]") && l.contains(secret))
        .cloned()
        .collect();
    assert!(
        leaks.is_empty(),
        "{what} appears in the server's log output:\n{}",
        leaks.join("\n")
    );
    for (path, bytes) in all_files(server.dir.path()) {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{what} appears in {}",
            path.display()
        );
    }
    let (_, metrics) = http_get(server.admin, "/metrics");
    assert!(metrics.contains("sspr_ivr_"), "metrics are served");
    assert!(!metrics.contains(secret), "{what} appears in /metrics");
}

fn wait_for_prompt(caller: &Dialer, prompt: &str) {
    wait_for(prompt, Duration::from_secs(60), || {
        prompts_heard(&caller.transcript())
            .iter()
            .any(|p| p == prompt)
            .then_some(())
    });
}

fn is_sidecar(p: &std::path::Path) -> bool {
    let s = p.to_string_lossy();
    s.ends_with(".json") && !s.ends_with(".timeline.jsonl")
}

fn ordered_subsequence(heard: &[String], want: &[&str]) -> bool {
    let mut it = heard.iter();
    want.iter().all(|w| it.any(|h| h == w))
}

fn happy_path(mode: &str) {
    let server = Server::demo(&[]);
    let mut caller = Dialer::start(
        &server.uri("reset"),
        &[
            "--dtmf-mode",
            mode,
            "--on",
            "enter_employee_id=123456#",
            "--on",
            &format!("enter_new_pin={NEW_PIN}"),
            "--on",
            &format!("confirm_new_pin={NEW_PIN}"),
        ],
    );
    let otp = code_for(&server, "u-123456");
    // Typed during the hold music: it goes straight to the code entry. (Not
    // earlier: a 0 during the read-back is the agent key.)
    wait_for_prompt(&caller, "hold_music");
    caller.type_digits(&otp);
    let ok = caller.wait(Duration::from_secs(120));
    let transcript = caller.transcript();
    let heard = prompts_heard(&transcript);
    assert!(
        ok,
        "dial failed:\n{}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    assert!(
        ordered_subsequence(
            &heard,
            &[
                "welcome",
                "enter_employee_id",
                "code_sent_to_number",
                "digit_0",
                "digit_1",
                "digit_9",
                "digit_9",
                "enter_new_pin",
                "confirm_new_pin",
                "pin_reset_success",
                "goodbye",
            ]
        ),
        "heard: {heard:?}\n{}",
        transcript.join("\n")
    );
    assert!(transcript.iter().any(|l| l.contains("sip BYE received")));

    // The backend received the new PIN through the secure action.
    let (_, requests) = http_get(server.backend, "/demo/requests");
    assert!(
        requests.contains("/users/u-123456/pin") && requests.contains(NEW_PIN),
        "backend got the reset: {requests}"
    );
    // Audited: success, with the call facts.
    let records = wait_for("the audit record", Duration::from_secs(15), || {
        let r = audit_records(&server);
        r.iter().any(|a| a["result"] == "success").then_some(r)
    });
    let rec = records.iter().find(|a| a["result"] == "success").unwrap();
    assert_eq!(rec["method"], "IVR-SSPR");
    assert_eq!(rec["ani"], "5550100199");
    assert!(rec["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(!rec["call_id"].as_str().unwrap().is_empty());

    assert_secret_nowhere(&server, NEW_PIN, "the new PIN");
    assert_secret_nowhere(&server, &otp, "the one-time code");
}

#[test]
fn happy_path_rfc4733() {
    happy_path("rfc4733");
}

#[test]
fn happy_path_sip_info() {
    happy_path("info");
}

#[test]
fn inband_pin_is_not_in_the_recording() {
    let server = Server::demo(&[]);
    let mut caller = Dialer::start(
        &server.uri("reset"),
        &[
            "--dtmf-mode",
            "inband",
            "--on",
            "enter_employee_id=123456#",
            "--on",
            &format!("enter_new_pin={NEW_PIN}"),
            "--on",
            &format!("confirm_new_pin={NEW_PIN}"),
        ],
    );
    let otp = code_for(&server, "u-123456");
    wait_for_prompt(&caller, "hold_music");
    caller.type_digits(&otp);
    let ok = caller.wait(Duration::from_secs(120));
    assert!(ok, "{}", caller.transcript().join("\n"));
    assert!(prompts_heard(&caller.transcript()).contains(&"pin_reset_success".to_string()));
    // The sidecar is written last, when the recording is complete.
    let wav = wait_for("the recording", Duration::from_secs(10), || {
        let files = all_files(&server.recordings());
        let done = files.iter().any(|(p, _)| is_sidecar(p));
        let wav = files
            .into_iter()
            .find(|(p, _)| p.extension().is_some_and(|e| e == "wav"));
        wav.filter(|_| done).map(|(p, _)| p)
    });
    let (ok, out, err) = run_with_timeout(
        std::process::Command::new(BIN).arg("dtmf").arg(&wav),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    let digits = out.lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(
        digits, "123456#",
        "the recording holds the employee ID and not one digit of the code or PIN"
    );
    let sidecar = all_files(&server.recordings())
        .into_iter()
        .find(|(p, _)| is_sidecar(p))
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .unwrap();
    assert!(sidecar.contains("suppressed"), "{sidecar}");
    assert!(
        sidecar.contains("start_ms"),
        "suppression interval marked: {sidecar}"
    );
    assert_secret_nowhere(&server, NEW_PIN, "the new PIN");
}

#[test]
fn locked_account_is_transferred_to_recovery_by_refer() {
    let server = Server::demo(&[]);
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &["--on", "enter_employee_id=345678#"],
        Duration::from_secs(90),
    );
    assert!(
        ok,
        "{}\n{err}\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    let heard = prompts_heard(&transcript);
    assert!(heard.contains(&"account_locked".to_string()), "{heard:?}");
    let refer = transcript
        .iter()
        .find(|l| l.contains("sip REFER to"))
        .unwrap_or_else(|| panic!("a REFER:\n{}", transcript.join("\n")));
    assert!(refer.contains("account-recovery"), "{refer}");
    assert!(refer.contains("X-Transfer-Reason"), "{refer}");
    assert!(transcript.iter().any(|l| l.contains("sip BYE received")));
    let records = wait_for("the audit record", Duration::from_secs(15), || {
        let r = audit_records(&server);
        (!r.is_empty()).then_some(r)
    });
    assert!(
        records
            .iter()
            .any(|a| a["result"] == "failure" && a["reason"] == "account_locked"),
        "{records:?}"
    );
}

#[test]
fn refused_refer_falls_back_to_the_helpdesk_announcement() {
    let server = Server::demo(&[]);
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &["--on", "enter_employee_id=345678#", "--refuse-refer"],
        Duration::from_secs(90),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    let heard = prompts_heard(&transcript);
    assert!(heard.contains(&"helpdesk_number".to_string()), "{heard:?}");
    assert!(transcript.iter().any(|l| l.contains("sip BYE received")));
}
