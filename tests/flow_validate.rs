//! Validator rejections: each rule, its message and its hint, on a small
//! flow that is valid until one edit breaks it.

#[path = "golden/catalog.rs"]
mod catalog;

use std::path::Path;

use sspr_ivr::flow::model::parse;
use sspr_ivr::flow::{validate, Diagnostic};

const BASE: &str = r##"
flow: t
version: "1"
start: welcome
escape: { key: "0", to: agent }
states:
  welcome:
    play: [welcome]
    next: get_id
  get_id:
    collect: { into: employee_id, prompt: [enter_employee_id], min: 6, max: 10, terminator: "#" }
    next: lookup
    on_fail: goodbye
  lookup:
    attempt: begin
    guard_keys: true
    action: lookup_user
    on: { success: get_otp, not_found: goodbye, locked: check_locked, rate_limited: goodbye,
          timeout: agent, error: agent }
  check_locked:
    audit: { result: failure, reason: account_locked }
    next: agent
  get_otp:
    secure: true
    collect: { into: otp, prompt: [enter_code], min: 6, max: 6 }
    next: verify
    on_fail: goodbye
  verify:
    secure: true
    action: verify_otp
    on: { success: goodbye, invalid: wrong, expired: goodbye, rate_limited: goodbye,
          timeout: agent, error: agent }
  wrong:
    secure: true
    counter: { name: otp_failures, max: 2, on_exceeded: goodbye }
    play: [code_incorrect]
    next: get_otp
  agent:
    transfer: { target: agent, reason: caller_request }
    on_refused: goodbye
  goodbye:
    hangup: { prompt: [goodbye] }
"##;

fn run(text: &str) -> Vec<Diagnostic> {
    let flow = parse(text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    validate(&flow, Path::new("flows/t.yaml"), &catalog::catalog())
}

/// Replace `from` (which must occur exactly once) in BASE, validate, and
/// expect exactly one diagnostic at `at` whose message contains `msg`.
fn rejects(from: &str, to: &str, at: &str, msg: &str, hint: Option<&str>) {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "edit anchor `{from}` must be unique"
    );
    let diags = run(&BASE.replacen(from, to, 1));
    let rendered: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let hit = diags
        .iter()
        .find(|d| d.state == at && d.message.contains(msg));
    let d =
        hit.unwrap_or_else(|| panic!("expected `{msg}` at `{at}`, got:\n{}", rendered.join("\n")));
    assert_eq!(d.file, Path::new("flows/t.yaml"));
    if let Some(h) = hint {
        assert!(
            d.hint.as_deref().is_some_and(|x| x.contains(h)),
            "hint for {msg}: {:?}",
            d.hint
        );
    }
    assert!(
        d.to_string().starts_with(&format!("flows/t.yaml: {at}: ")),
        "{d}"
    );
}

#[test]
fn base_is_valid() {
    let diags = run(BASE);
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn unknown_state_with_hint() {
    rejects(
        "locked: check_locked",
        "locked: chek_locked",
        "states.lookup.on.locked",
        "unknown state `chek_locked`",
        Some("did you mean `check_locked`?"),
    );
    rejects(
        "start: welcome",
        "start: welcom",
        "start",
        "unknown state `welcom`",
        Some("`welcome`"),
    );
}

#[test]
fn type_ahead_into_a_secure_collect_must_be_guarded() {
    // Keys typed while the lookup runs can be the code for `get_otp`.
    rejects(
        "    attempt: begin\n    guard_keys: true\n",
        "    attempt: begin\n",
        "states.lookup",
        "keys typed here can be type-ahead for secure collect `get_otp`",
        Some("guard_keys: true"),
    );
    // ... also the music of a non-secure comfort loop feeding the code entry.
    let text = BASE.replacen("on: { success: get_otp,", "on: { success: wait_code,", 1)
        + "  wait_code:\n    comfort_loop: { music: hold_music, seconds: 10s, menu: [received_code_menu],\n                    options: { \"1\": get_otp }, rounds: 2, type_ahead: get_otp }\n    on_exhausted: goodbye\n";
    let diags = run(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].state, "states.wait_code");
    assert!(
        diags[0].message.contains("secure collect `get_otp`"),
        "{diags:#?}"
    );
    assert!(
        run(&text.replace("  wait_code:\n", "  wait_code:\n    guard_keys: true\n")).is_empty()
    );
    // A declaration where it cannot matter is a mistake too.
    rejects(
        "  welcome:\n    play: [welcome]\n",
        "  welcome:\n    guard_keys: true\n    play: [welcome]\n",
        "states.welcome",
        "`guard_keys` has no effect here",
        Some("remove"),
    );
    rejects(
        "  wrong:\n    secure: true\n",
        "  wrong:\n    secure: true\n    guard_keys: true\n",
        "states.wrong",
        "no effect in a secure state",
        None,
    );
}

#[test]
fn unreachable_state() {
    let text = format!("{BASE}  orphan:\n    hangup: {{}}\n");
    let diags = run(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].state, "states.orphan");
    assert!(diags[0].message.contains("never reached"));
}

#[test]
fn collect_and_menu_need_failure_paths() {
    rejects(
        "    next: lookup\n    on_fail: goodbye\n",
        "    next: lookup\n",
        "states.get_id.on_fail",
        "a collect needs a failure path",
        Some("on_fail"),
    );
    rejects(
        "  welcome:\n    play: [welcome]\n    next: get_id\n",
        "  welcome:\n    menu: { prompt: [welcome], options: { \"1\": get_id } }\n",
        "states.welcome.on_fail",
        "a menu needs a failure path",
        None,
    );
}

#[test]
fn action_outcomes() {
    rejects(
        "locked: check_locked, ",
        "",
        "states.lookup.on",
        "outcome `locked` of action `lookup_user` is not handled",
        Some("add `locked: <state>`"),
    );
    rejects(
        "invalid: wrong,",
        "invalid: wrong, invalide: wrong,",
        "states.verify.on.invalide",
        "action `verify_otp` never produces outcome `invalide`",
        Some("did you mean `invalid`?"),
    );
    rejects(
        "action: lookup_user",
        "action: lookup_usr",
        "states.lookup.action",
        "action `lookup_usr` is not defined",
        Some("did you mean `lookup_user`?"),
    );
}

#[test]
fn unbounded_loops() {
    // Without its counter the wrong-OTP retry loop is still bounded: it waits
    // for a completed entry each round. A loop with no input and no counter
    // is not.
    rejects(
        "    next: agent\n  get_otp:",
        "    next: lookup\n  get_otp:",
        "states.check_locked",
        "unbounded loop through `check_locked`, `lookup`",
        Some("counter"),
    );
    // A counter reset inside the same loop does not bound it.
    let text = BASE
        .replace("    next: agent\n  get_otp:", "    next: again\n  get_otp:")
        .replace(
            "  agent:\n",
            "  again:\n    counter: { name: n, max: 2, on_exceeded: goodbye }\n    set: { reset_counters: [n] }\n    next: lookup\n  agent:\n",
        );
    let diags = run(&text);
    assert!(
        diags
            .iter()
            .any(|d| d.message.starts_with("unbounded loop")),
        "{diags:#?}"
    );
    let text = text.replace("reset_counters: [n]", "reset_counters: []");
    assert!(run(&text).is_empty());
}

#[test]
fn prompts_and_targets_must_exist() {
    rejects(
        "play: [code_incorrect]",
        "play: [code_incorect]",
        "states.wrong.play.0",
        "prompt `code_incorect` does not exist",
        Some("did you mean `code_incorrect`?"),
    );
    rejects(
        "prompt: [goodbye]",
        "prompt: [adios]",
        "states.goodbye.hangup.prompt.0",
        "prompt `adios` does not exist",
        None,
    );
    rejects(
        "target: agent",
        "target: agnet",
        "states.agent.transfer.target",
        "transfer target `agnet` is not in the config",
        Some("did you mean `agent`?"),
    );
}

#[test]
fn secure_values_stay_in_the_segment() {
    // Spoken, even inside the segment.
    rejects(
        "play: [code_incorrect]",
        "play: [code_incorrect, { digits: \"{{ otp }}\" }]",
        "states.wrong.play.1.digits",
        "secure value `otp` would be spoken",
        None,
    );
    // Given to a non-secure action (lookup_user reads employee_id).
    rejects(
        "into: otp",
        "into: employee_id",
        "states.lookup.action",
        "secure value `employee_id` would reach non-secure action `lookup_user`",
        Some("secure: true"),
    );
    // Examined by a branch outside the segment.
    rejects(
        "    audit: { result: failure, reason: account_locked }\n    next: agent\n",
        "    branch: [{ var: otp, equals: \"123456\", to: agent }]\n    default: agent\n",
        "states.check_locked.branch.0.var",
        "secure value `otp` is examined outside the secure segment",
        None,
    );
    // Copied out of the segment by `set`.
    rejects(
        "    audit: { result: failure, reason: account_locked }\n    next: agent\n",
        "    set: { vars: { copy: \"{{ otp }}\" } }\n    next: agent\n",
        "states.check_locked.set.vars.copy",
        "secure value `otp` is copied outside",
        None,
    );
    // Transfer and audit reasons are fixed tokens: no templates, no data.
    rejects(
        "reason: caller_request",
        "reason: \"{{ otp }}\"",
        "states.agent.transfer.reason",
        "fixed token",
        None,
    );
    rejects(
        "reason: account_locked",
        "reason: \"locked {{ otp }}\"",
        "states.check_locked.audit.reason",
        "fixed token",
        None,
    );
}

#[test]
fn secure_action_outputs_are_secure() {
    let mut cat = catalog::catalog();
    cat.actions
        .get_mut("verify_otp")
        .expect("present")
        .outputs
        .push("session_token".into());
    let text = BASE.replace(
        "play: [code_incorrect]",
        "play: [{ digits: \"{{ session_token }}\" }]",
    );
    let flow = parse(&text, Path::new("t.yaml")).expect("parses");
    let diags = validate(&flow, Path::new("flows/t.yaml"), &cat);
    assert!(
        diags
            .iter()
            .any(|d| d.message == "secure value `session_token` would be spoken"),
        "{diags:#?}"
    );
}

#[test]
fn malformed_values() {
    rejects(
        "min: 6, max: 10",
        "min: 12, max: 10",
        "states.get_id.collect.min",
        "min is larger than max",
        None,
    );
    rejects(
        "min: 6, max: 10",
        "min: 6, max: 100",
        "states.get_id.collect.max",
        "max must be 1 to 32",
        None,
    );
    rejects(
        "terminator: \"#\"",
        "terminator: \"##\"",
        "states.get_id.collect.terminator.##",
        "not a single DTMF key",
        None,
    );
    rejects(
        "max: 6 }",
        "max: 6, pattern: \"[0-9\" }",
        "states.get_otp.collect.pattern",
        "not a valid regular expression",
        None,
    );
    // Templates and patterns are compiled when the flow is read; one that
    // does not compile is still reported by the validator, at its key.
    rejects(
        "play: [code_incorrect]",
        "play: [code_incorrect, { digits: \"{{ employee_id | last4 \" }]",
        "states.wrong.play.1.digits",
        "bad template: template syntax: syntax error",
        None,
    );
    rejects(
        "audit: { result: failure, reason: account_locked }\n    next: agent",
        "set: { vars: { shown: \"{% if %}\" } }\n    next: agent",
        "states.check_locked.set.vars.shown",
        "bad template: template syntax: syntax error",
        None,
    );
    rejects(
        "audit: { result: failure, reason: account_locked }\n    next: agent",
        "branch: [ { var: employee_id, matches: \"(1\", to: agent } ]\n    default: agent",
        "states.check_locked.branch.0.matches",
        "not a valid regular expression",
        None,
    );
    rejects(
        "max: 6 }",
        "max: 6, escape: true }",
        "states.get_otp.collect.escape",
        "never honoured in a secure state",
        None,
    );
}

#[test]
fn required_encrypted_media_needs_an_existing_path() {
    // On a state, without a path for clear calls.
    rejects(
        "  get_otp:\n    secure: true\n",
        "  get_otp:\n    secure: true\n    secure_media: required\n",
        "states.get_otp.secure_media",
        "no `on_insecure_media` state",
        Some("on_insecure_media"),
    );
    // On the flow, with a path that does not exist.
    rejects(
        "start: welcome\n",
        "start: welcome\nsecure_media: required\non_insecure_media: not_here\n",
        "on_insecure_media",
        "unknown state `not_here`",
        None,
    );
    // The path may not need encryption itself.
    rejects(
        "start: welcome\n",
        "start: welcome\nsecure_media: required\non_insecure_media: welcome\n",
        "on_insecure_media",
        "itself requires encrypted media",
        None,
    );
    // With a path that exists, the flow is valid; the path counts as reached.
    let ok = BASE.replacen(
        "start: welcome\n",
        "start: welcome\nsecure_media: required\non_insecure_media: agent\n",
        1,
    );
    let diags = run(&ok);
    assert!(diags.is_empty(), "{diags:#?}");
    // An unknown value is a parse error naming it.
    let err = parse(
        &BASE.replacen("start: welcome\n", "start: welcome\nsecure_media: yes\n", 1),
        Path::new("t.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("t.yaml:") && err.contains("secure_media"),
        "{err}"
    );
}
