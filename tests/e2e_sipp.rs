//! The sipp scenarios a tester uses (`tests/sipp/`), run against the real
//! binary in demo mode. sipp decides pass/fail on the SIP side (the IVR hangs
//! up, or transfers by REFER, before the timeout); the test then checks what
//! the backend received, what was audited and, for in-band keys, what the
//! recording holds.
//!
//! The keypad-habit callers (docs/collect-timers.md, "Keypad habits") run
//! once per DTMF transport. Each caller gets a fresh demo server (its own
//! directory, rate limits and PIN history, so the tests do not depend on
//! order) started with the flags its scenario names, and the callers of one
//! transport run at the same time to keep the suite short.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PIN: &str = "835172";

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

/// The `demo flags:` line of a generated scenario (generate.py is the one
/// place that says what a caller needs).
fn scenario_flags(scenario: &str) -> Vec<String> {
    let text = read_to_string(&repo().join("tests/sipp").join(scenario));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("demo flags:"))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Run one scenario against a fresh server; Err with everything a reader
/// needs when sipp fails.
fn run(scenario: &str, flags: &[String]) -> Result<Server, String> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::demo(&flags);
    let (ok, out) = run_sipp(
        &server,
        scenario,
        "reset",
        &["-m", "1"],
        Duration::from_secs(120),
    );
    if ok {
        Ok(server)
    } else {
        Err(format!(
            "sipp {scenario} failed:\n{out}\nserver:\n{}",
            server.output_text()
        ))
    }
}

fn audited(server: &Server, result: &str, reason: &str) -> Result<(), String> {
    let records = wait_for("the audit record", Duration::from_secs(15), || {
        let r = audit(server);
        (!r.is_empty()).then_some(r)
    });
    if records
        .iter()
        .any(|a| a["result"] == result && a["reason"] == reason)
    {
        Ok(())
    } else {
        Err(format!("want audit {result}/{reason}: {records:?}"))
    }
}

fn posts(server: &Server, path: &str) -> Vec<serde_json::Value> {
    requests(server)
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == path)
        .map(|r| r["body"].clone())
        .collect()
}

fn pins_sent(server: &Server, user: &str) -> Vec<String> {
    posts(server, &format!("/users/{user}/pin"))
        .iter()
        .filter_map(|b| b["pin"].as_str().map(str::to_string))
        .collect()
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// A reset that went through: audited, one PIN reset with `PIN`, the code
/// sent `sends` times and checked once, and not one extra prompt (no
/// invalid entry, no "I did not hear anything", no mismatch).
fn reset_done(server: &Server, user: &str, sends: usize) -> Result<(), String> {
    audited(server, "success", "pin_reset")?;
    let out = server.output_text();
    for failure in ["NoMatch {", "NoInput {", "Mismatch {"] {
        if out.contains(failure) {
            return Err(format!("an entry failed ({failure}..) on the way"));
        }
    }
    expect("PINs sent", pins_sent(server, user), vec![PIN.to_string()])?;
    expect(
        "codes sent",
        posts(server, &format!("/users/{user}/otp")).len(),
        sends,
    )?;
    expect(
        "code checks",
        posts(server, &format!("/users/{user}/otp/verify")).len(),
        1,
    )
}

fn is_sidecar(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".timeline.jsonl")
}

/// The digits `sspr-ivr dtmf` hears in the call's recording (0-9 only).
fn digits_in_recording(server: &Server) -> Result<String, String> {
    // The sidecar is written last, when the recording is complete.
    let wav: PathBuf = wait_for("the recording", Duration::from_secs(15), || {
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
    if !ok {
        return Err(format!("sspr-ivr dtmf {}: {err}", wav.display()));
    }
    Ok(out
        .lines()
        .last()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect())
}

/// One keypad-habit caller: its scenario (without the transport), what the
/// backend must have seen, and the digits its recording may hold when the
/// keys are in-band tones (the employee ID; never a code or PIN digit).
struct Row {
    scenario: &'static str,
    check: fn(&Server) -> Result<(), String>,
    heard_inband: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        scenario: "sspr_reset",
        check: |s| {
            expect(
                "looked up",
                requests(s)
                    .iter()
                    .filter(|r| r["path"] == "/users/567890")
                    .count(),
                1,
            )?;
            reset_done(s, "u-567890", 2)
        },
        heard_inband: "567890",
    },
    Row {
        scenario: "sspr_menu_one",
        check: |s| reset_done(s, "u-123456", 1),
        heard_inband: "123456",
    },
    Row {
        scenario: "sspr_menu_two_hash",
        check: |s| reset_done(s, "u-123456", 2),
        heard_inband: "123456",
    },
    Row {
        scenario: "sspr_code_run",
        check: |s| reset_done(s, "u-123456", 1),
        heard_inband: "123456",
    },
    Row {
        scenario: "sspr_zero_first",
        check: |s| {
            let directory: Vec<_> = requests(s)
                .into_iter()
                .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/users")))
                .collect();
            expect("directory requests", directory, vec![])?;
            let out = s.output_text();
            if out.contains("Escape { from: \"welcome\" }") && out.contains("caller_request") {
                Ok(())
            } else {
                Err("no escape from the welcome to the agent in the server log".into())
            }
        },
        heard_inband: "0",
    },
    Row {
        scenario: "sspr_code_in_read_back",
        check: |s| {
            reset_done(s, "u-123456", 1)?;
            let codes: Vec<_> = posts(s, "/users/u-123456/otp/verify")
                .iter()
                .map(|b| b["code"].as_str().unwrap_or_default().to_string())
                .collect();
            expect(
                "the code checked (its 0 kept)",
                codes,
                vec!["024681".into()],
            )
        },
        heard_inband: "123456",
    },
    Row {
        scenario: "sspr_star_restart",
        check: |s| {
            reset_done(s, "u-123456", 1)?;
            if !s.output_text().contains("EntryRestarted") {
                return Err("`*` did not restart the PIN".into());
            }
            Ok(())
        },
        heard_inband: "123456",
    },
];

/// Every row in one transport, at the same time; one report of all failures.
fn keypad_rows(transport: &str) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = ROWS
            .iter()
            .map(|row| {
                let scenario = format!("{}_{transport}.xml", row.scenario);
                scope.spawn(move || {
                    let server = run(&scenario, &scenario_flags(&scenario))?;
                    (row.check)(&server).map_err(|e| {
                        format!("{scenario}: {e}\nserver:\n{}", server.output_text())
                    })?;
                    if transport == "inband" {
                        expect(
                            &format!("{scenario}: digits in the recording"),
                            digits_in_recording(&server)?,
                            row.heard_inband.to_string(),
                        )?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())).err())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn keypad_habits_rfc4733() {
    keypad_rows("rfc4733");
}

#[test]
fn keypad_habits_inband() {
    keypad_rows("inband");
}

#[test]
fn keypad_habits_sip_info() {
    keypad_rows("info");
}

/// Deliverable: a PIN whose last key is held down while the backend already
/// answers; the recording keeps the employee ID and no code or PIN digit.
#[test]
fn a_long_final_pin_tone_stays_out_of_the_recording() {
    let scenario = "sspr_long_pin_tone_inband.xml";
    let server = run(scenario, &scenario_flags(scenario)).unwrap_or_else(|e| panic!("{e}"));
    reset_done(&server, "u-123456", 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        digits_in_recording(&server).unwrap_or_else(|e| panic!("{e}")),
        "123456",
        "the recording holds the employee ID and not one digit of the code or PIN"
    );
}

#[test]
fn sipp_happy_path_rfc4733() {
    let scenario = "sspr_happy_rfc4733.xml";
    let flags = ["--fixed-otp", "246810"].map(String::from);
    let server = run(scenario, &flags).unwrap_or_else(|e| panic!("{e}"));
    reset_done(&server, "u-123456", 1).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn sipp_weak_pin_then_a_good_one() {
    let flags = ["--fixed-otp", "246810"].map(String::from);
    let server = run("sspr_weak_pin.xml", &flags).unwrap_or_else(|e| panic!("{e}"));
    audited(&server, "success", "pin_reset").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pins_sent(&server, "u-123456"), ["111111", PIN]);
}

#[test]
fn sipp_locked_account_refer() {
    let server = run("sspr_locked.xml", &[]).unwrap_or_else(|e| panic!("{e}"));
    audited(&server, "failure", "account_locked").unwrap_or_else(|e| panic!("{e}"));
    assert!(pins_sent(&server, "u-345678").is_empty());
}
