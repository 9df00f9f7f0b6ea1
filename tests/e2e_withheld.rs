//! The withheld-number policy on the real binary, with the demo backend as a
//! process of its own and callers played by `sspr-ivr dial`: a caller whose
//! From user is `anonymous` (or `withheld`, `Restricted`, …) has no number.
//!
//! - `security.withheld_callers: per_call` (the default): each such call is
//!   its own caller for `attempts_per_ani_per_hour` — with a limit of 1, a
//!   numbered caller's second attempt is refused (no lookup reaches the
//!   backend, the caller hears the rate-limited apology), while anonymous
//!   callers one after another all reach the lookup.
//! - `shared`: all withheld callers share one budget, so the second anonymous
//!   caller is refused like the numbered one.
//! - `routes.withheld: FLOW`: a withheld caller goes to that flow whatever they
//!   dialled — here one that transfers straight to the agent queue (REFER) —
//!   while a numbered caller dialling the same number gets the reset flow.

mod common;

use common::configured::*;
use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn lookups_of(backend: SocketAddr, employee_id: &str) -> usize {
    let (_, body) = http_get(backend, "/demo/requests");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    let path = format!("/users/{employee_id}");
    all.iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path.as_str())
        .count()
}

/// The example config against a fresh demo backend, with one reset attempt
/// per caller number an hour and `edit` applied; the server started on it.
fn start(
    edit: impl FnOnce(&mut serde_yaml::Value, &Path),
) -> (Server, Backend, SocketAddr, tempfile::TempDir) {
    serve_edited(&["--sms-delay", "0s"], |doc, dir| {
        doc["security"]["attempts_per_ani_per_hour"] = 1.into();
        doc["security"]["attempts_per_account_per_hour"] = 100.into();
        edit(doc, dir);
    })
}

/// A caller from `from` who types `employee_id` and stays until the lookup
/// for it reached the backend, then hangs up.
fn reaches_lookup(server: &Server, backend: SocketAddr, from: &str, employee_id: &str) {
    let before = lookups_of(backend, employee_id);
    let caller = Dialer::start(
        &server.uri("reset"),
        &[
            "--from",
            from,
            "--on",
            &format!("enter_employee_id={employee_id}#"),
        ],
    );
    wait_for(
        &format!("the lookup of {employee_id} for a call from `{from}`"),
        Duration::from_secs(60),
        || (lookups_of(backend, employee_id) == before + 1).then_some(()),
    );
    drop(caller);
}

/// A caller from `from` whose attempt the per-caller limit refuses: the call
/// ends by itself after the apology, and no lookup is made.
fn refused(server: &Server, backend: SocketAddr, from: &str, employee_id: &str) {
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &[
            "--from",
            from,
            "--on",
            &format!("enter_employee_id={employee_id}#"),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    let heard = prompts_heard(&transcript);
    assert!(
        heard.iter().any(|p| p == "enter_employee_id") && heard.iter().any(|p| p == "rate_limited"),
        "a call from `{from}` is refused with the apology: {heard:?}\nserver:\n{}",
        server.output_text()
    );
    assert_eq!(
        lookups_of(backend, employee_id),
        0,
        "the refused attempt never reached the directory"
    );
}

#[test]
fn per_call_withheld_callers_each_get_their_own_attempt() {
    let (server, _backend_proc, backend, _dir) = start(|doc, _| {
        doc["security"]["withheld_callers"] = "per_call".into();
    });
    // A number: one attempt, then the limit.
    reaches_lookup(&server, backend, "5550001111", "123456");
    refused(&server, backend, "5550001111", "456789");
    // Withheld callers, one after another, each spelt differently: none is
    // held to the others' attempts.
    reaches_lookup(&server, backend, "anonymous", "567890");
    reaches_lookup(&server, backend, "anonymous", "234567");
    reaches_lookup(&server, backend, "Restricted", "345678");
    assert!(
        server.wait_output("withheld=true", Duration::from_secs(5)),
        "{}",
        server.output_text()
    );
}

#[test]
fn shared_withheld_callers_share_one_attempt_budget() {
    let (server, _backend_proc, backend, _dir) = start(|doc, _| {
        doc["security"]["withheld_callers"] = "shared".into();
    });
    reaches_lookup(&server, backend, "anonymous", "123456");
    refused(&server, backend, "anonymous", "456789");
    // Numbered callers are not held to the withheld callers' budget.
    reaches_lookup(&server, backend, "5550002222", "567890");
}

#[test]
fn routes_withheld_sends_anonymous_callers_straight_to_an_agent() {
    let (server, _backend_proc, backend, _dir) = start(|doc, dir| {
        let flow = dir.join("withheld.yaml");
        std::fs::write(
            &flow,
            "flow: withheld\nversion: \"1\"\nstart: to_agent\nstates:\n  \
             to_agent:\n    transfer: { target: agent, reason: withheld_number }\n    \
             on_refused: bye\n  bye:\n    hangup: { prompt: [goodbye] }\n",
        )
        .unwrap();
        doc["flows"]["withheld"] = flow.display().to_string().into();
        doc["routes"]["withheld"] = "withheld".into();
    });
    for from in ["anonymous", "withheld"] {
        let (ok, transcript, err) = dial(
            &server.uri("reset"),
            &["--from", from, "--on", "enter_employee_id=123456#"],
            Duration::from_secs(60),
        );
        let text = transcript.join("\n");
        assert!(ok, "{text}\n{err}");
        assert!(
            text.contains("sip REFER to sip:agents@127.0.0.1:5070"),
            "a call from `{from}` is transferred to the agent queue:\n{text}\nserver:\n{}",
            server.output_text()
        );
        assert!(
            !prompts_heard(&transcript)
                .iter()
                .any(|p| p == "enter_employee_id"),
            "{text}"
        );
    }
    assert_eq!(lookups_of(backend, "123456"), 0);
    // Somebody with a number dialling the same service gets the reset flow.
    reaches_lookup(&server, backend, "5550003333", "123456");
}
