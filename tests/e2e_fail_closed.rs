//! The audit fails closed, on the real binary: with the spool on a full
//! filesystem (a small tmpfs, filled), a caller who completes every step of
//! the reset hears an apology and is transferred to an agent, the identity
//! provider receives no reset request, `/readyz` is 503 and the metrics say
//! why. Once space returns the service is ready again, the record held in
//! memory is written and delivered, a new caller resets their PIN, and no
//! complete record was lost. Needs root for `mount` (CI runs as root).

mod common;

use common::configured::*;
use common::tmpfs::Tmpfs;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const OTP: &str = "246810";
const PIN: &str = "835172";

/// A caller who does everything asked of them: employee id, the code (typed
/// during the hold music), the new PIN twice.
fn complete_every_step(server: &Server) -> (bool, Vec<String>, String) {
    dial(
        &server.uri("reset"),
        &[
            "--on",
            "enter_employee_id=123456#",
            "--during",
            &format!("hold_music={OTP}"),
            "--on",
            &format!("enter_new_pin={PIN}"),
            "--on",
            &format!("confirm_new_pin={PIN}"),
        ],
        Duration::from_secs(120),
    )
}

fn pin_resets(backend: SocketAddr) -> usize {
    let (_, body) = http_get(backend, "/demo/requests");
    let requests: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    requests
        .iter()
        .filter(|r| r["path"] == "/users/u-123456/pin")
        .count()
}

fn delivered(backend: SocketAddr) -> Vec<serde_json::Value> {
    let (_, body) = http_get(backend, "/demo/audit");
    serde_json::from_str(&body).unwrap_or_default()
}

fn metric(admin: SocketAddr, name: &str) -> f64 {
    let (_, text) = http_get_text(admin, "/metrics");
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[test]
fn a_full_audit_spool_stops_resets_until_space_returns() {
    let fs = Tmpfs::mount(1024 * 1024, "fill the filesystem under the audit spool");
    let spool = fs.path().join("spool");
    let dir = tempfile::tempdir().unwrap();
    let (_backend, backend) = Backend::start(&["--fixed-otp", OTP, "--sms-delay", "0s"]);
    let config = dir.path().join("config.yaml");
    let (sip, admin) =
        write_fresh_config(&config, backend, &format!("http://{backend}/audit"), &spool);
    let server = serve(&config, sip, admin, backend);

    // 1. A first call is audited and delivered; once everything is
    //    acknowledged the spool compacts itself to empty files.
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &["--on", "enter_employee_id=345678#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    wait_for(
        "the first record delivered",
        Duration::from_secs(20),
        || (delivered(backend).len() == 1).then_some(()),
    );
    wait_for("the spool compacted", Duration::from_secs(10), || {
        (read_to_string(&spool.join("records.jsonl")).is_empty()).then_some(())
    });
    assert_eq!(http_get(admin, "/readyz").0, 200);

    // 2. The disk fills up.
    let filler = fs.fill("filler");

    // 3. A caller completes every step: the reset is not sent.
    let (ok, transcript, err) = complete_every_step(&server);
    let heard = prompts_heard(&transcript);
    assert!(
        ok,
        "{}\n{err}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    for want in ["code_sent_to_number", "enter_new_pin", "confirm_new_pin"] {
        assert!(
            heard.iter().any(|h| h == want),
            "the caller went through {want}: {heard:?}"
        );
    }
    let tail: Vec<&str> = heard.iter().map(String::as_str).rev().take(2).collect();
    assert_eq!(
        tail,
        ["transfer_agent", "reset_unavailable"],
        "an apology, then the agent transfer: {heard:?}"
    );
    let refer = transcript
        .iter()
        .find(|l| l.contains("sip REFER to"))
        .unwrap_or_else(|| panic!("a REFER:\n{}", transcript.join("\n")));
    assert!(refer.contains("agents"), "{refer}");
    assert!(refer.contains("audit_unavailable"), "{refer}");
    assert!(!heard.iter().any(|h| h == "pin_reset_success"), "{heard:?}");
    assert_eq!(
        pin_resets(backend),
        0,
        "the identity provider got no reset request"
    );
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!((status, body.trim()), (503, "audit spool unavailable"));
    assert_eq!(
        metric(admin, "sspr_ivr_resets_refused_audit_unavailable_total"),
        1.0
    );
    assert!(metric(admin, "sspr_ivr_audit_spool_write_failures_total") >= 2.0);
    assert_eq!(metric(admin, "sspr_ivr_audit_spool_writable"), 0.0);
    assert_eq!(
        metric(admin, "sspr_ivr_audit_spool_held"),
        1.0,
        "the call's failure record waits in memory"
    );
    // Still not ready a few probes later: nothing pretends the disk is fine.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(http_get(admin, "/readyz").0, 503);
    let text = read_to_string(&spool.join("records.jsonl"));
    assert!(text.is_empty(), "nothing partial on disk: {text:?}");

    // 4. Space returns: ready again, the held record written and delivered.
    std::fs::remove_file(&filler).unwrap();
    wait_for("ready again", Duration::from_secs(10), || {
        (http_get(admin, "/readyz").0 == 200).then_some(())
    });
    let records = wait_for("the held record delivered", Duration::from_secs(20), || {
        let r = delivered(backend);
        r.iter()
            .any(|a| a["result"] == "failure" && a["reason"] == "audit_unavailable")
            .then_some(r)
    });
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(metric(admin, "sspr_ivr_audit_spool_writable"), 1.0);
    assert_eq!(metric(admin, "sspr_ivr_audit_spool_held"), 0.0);

    // 5. Service resumes: the next caller's reset goes through, with its
    //    write-ahead record first.
    let (ok, transcript, err) = complete_every_step(&server);
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    let heard = prompts_heard(&transcript);
    assert!(
        heard.iter().any(|h| h == "pin_reset_success"),
        "{heard:?}\n{}",
        server.output_text()
    );
    assert_eq!(pin_resets(backend), 1);
    let records = wait_for("every record delivered", Duration::from_secs(20), || {
        let r = delivered(backend);
        r.iter().any(|a| a["result"] == "success").then_some(r)
    });
    let started = records
        .iter()
        .position(|a| a["result"] == "attempt_started" && a["reason"] == "reset_pin_requested")
        .expect("a write-ahead record");
    let success = records
        .iter()
        .position(|a| a["result"] == "success")
        .unwrap();
    assert!(started < success, "{records:?}");

    // No complete record was lost: everything the server reported written
    // reached the receiver, exactly once.
    let ids: Vec<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
    let spooled = logged_spooled(&server);
    // The first call's record, the held one, the write-ahead and the success.
    assert_eq!(spooled.len(), 4, "{spooled:?}");
    for id in &spooled {
        assert_eq!(
            ids.iter().filter(|d| **d == id.as_str()).count(),
            1,
            "record {id} delivered once: {records:?}"
        );
    }
    assert_eq!(ids.len(), spooled.len());
}
