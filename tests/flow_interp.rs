//! Interpreter behaviour beyond collect timers: menus, the comfort loop,
//! actions (processing prompt, escape while waiting, unknown outcome),
//! transfers, branches, `set`, counters and flow errors — each in virtual
//! time through the public sans-IO API.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sspr_ivr::flow::model::parse;
use sspr_ivr::flow::{Command, Interpreter, Say, TimelineEvent};
use sspr_ivr::vars::Vars;

enum Input {
    Key(char),
    Action(&'static str),
    Transfer(bool),
    Hangup,
}

/// Drive a flow: every prompt item lasts 2 s, actions answer `latency`
/// after they start with the next scripted outcome, inputs at absolute ms.
fn drive(text: &str, vars: Vars, script: &[(u64, Input)]) -> Vec<String> {
    let flow = Arc::new(parse(text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}")));
    let t0 = Instant::now();
    let ms = |t: Instant| t.duration_since(t0).as_millis();
    let mut it = Interpreter::new(t0, flow, vars);
    let mut now = t0;
    let mut log = Vec::new();
    let mut playing: Option<(u64, Instant)> = None;
    let mut action: Option<u64> = None;
    let mut script: VecDeque<&(u64, Input)> = script.iter().collect();
    loop {
        while let Some(c) = it.poll_command() {
            let t = ms(now);
            match c {
                Command::Play { id, items, .. } => {
                    let n: Vec<String> = items
                        .iter()
                        .map(|i| match i {
                            Say::Silence(d) => format!("silence{}", d.as_millis()),
                            other => other.prompt_name().unwrap_or_default(),
                        })
                        .collect();
                    log.push(format!("{t} play {}", n.join(",")));
                    playing = Some((id, now + Duration::from_secs(2 * items.len() as u64)));
                }
                Command::StopPlayback => {
                    playing = None;
                }
                Command::RunAction { id, action: a, .. } => {
                    log.push(format!("{t} action {a}"));
                    action = Some(id);
                }
                Command::Transfer { target, reason } => {
                    log.push(format!("{t} transfer {target} {reason}"))
                }
                Command::Hangup => log.push(format!("{t} hangup")),
                Command::Audit { result, reason } => {
                    log.push(format!("{t} audit {result} {reason}"))
                }
                Command::Secure(on) => log.push(format!("{t} secure {on}")),
                Command::KeyGuard(on) => log.push(format!("{t} key guard {on}")),
                Command::Timeline(TimelineEvent::StateEntered { state, .. }) => {
                    log.push(format!("{t} state {state}"))
                }
                Command::Timeline(TimelineEvent::FlowError { .. }) => {
                    log.push(format!("{t} flow-error"))
                }
                Command::Timeline(TimelineEvent::DigitsCollected { var, shown }) => {
                    log.push(format!("{t} collected {var}={shown}"))
                }
                Command::Timeline(_) => {}
            }
        }
        if it.is_finished() {
            assert!(it.poll_timeout().is_none());
            return log;
        }
        let s_at = script.front().map(|(t, _)| t0 + Duration::from_millis(*t));
        let next = [it.poll_timeout(), playing.map(|(_, t)| t), s_at]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return log };
        assert!(next >= now, "deadline in the past");
        assert!(ms(next) < 600_000, "ran away: {log:#?}");
        now = next;
        if s_at == Some(now) {
            match &script.pop_front().expect("step").1 {
                Input::Key(k) => it.handle_digit(now, *k),
                Input::Action(o) => {
                    it.handle_action_result(now, action.expect("action running"), o, Vars::new())
                }
                Input::Transfer(ok) => it.handle_transfer_result(now, *ok),
                Input::Hangup => it.handle_hangup(now),
            }
        } else if let Some((id, _)) = playing.filter(|(_, t)| *t == now) {
            playing = None;
            it.handle_play_finished(now, id);
        } else {
            it.handle_timeout(now);
        }
    }
}

fn has_in_order(log: &[String], want: &[&str]) {
    let mut it = log.iter();
    for w in want {
        assert!(it.any(|l| l == w), "missing `{w}` (in order) in {log:#?}");
    }
}

const MENU: &str = r#"
flow: t
version: "1"
start: m
escape: { key: "0", to: agent }
states:
  m:
    menu: { prompt: [menu], options: { "1": one, "2": two }, timeout: 4s, attempts: 2,
            no_input: [ni], no_match: [nm] }
    on_fail: failed
  one: { hangup: {} }
  two: { hangup: {} }
  failed: { hangup: {} }
  agent: { hangup: {} }
"#;

#[test]
fn menu_keys_timeouts_and_escape() {
    has_in_order(
        &drive(MENU, Vars::new(), &[(500, Input::Key('2'))]),
        &["500 state two", "500 hangup"],
    );
    has_in_order(
        &drive(MENU, Vars::new(), &[(500, Input::Key('0'))]),
        &["500 state agent"],
    );
    // timeout after the prompt, re-prompt with no_input, then on_fail
    has_in_order(
        &drive(MENU, Vars::new(), &[]),
        &["0 play menu", "6000 play ni,menu", "14000 state failed"],
    );
    has_in_order(
        &drive(MENU, Vars::new(), &[(3000, Input::Key('7'))]),
        &["3000 play nm,menu"],
    );
}

const COMFORT: &str = r#"
flow: t
version: "1"
start: c
states:
  c:
    comfort_loop: { music: hold, seconds: 5s, menu: [menu], options: { "1": code, "2": resend },
                    menu_timeout: 3s, rounds: 2, type_ahead: code }
    on_exhausted: gone
  resend: { hangup: {} }
  code:
    collect: { into: otp, prompt: [enter], min: 3, max: 3 }
    next: ok
    on_fail: gone
  ok: { hangup: {} }
  gone: { hangup: {} }
"#;

#[test]
fn comfort_loop_rounds_music_and_type_ahead() {
    // Music (2 s item) repeats until 5 s, menu at 5 s, 3 s timeout after it.
    has_in_order(
        &drive(COMFORT, Vars::new(), &[]),
        &[
            "0 play hold",
            "2000 play hold",
            "4000 play hold",
            "5000 play menu",
            "10000 play hold",
            "15000 play menu",
            "20000 state gone",
        ],
    );
    // Menu option: once the menu was offered, a lone option key is the
    // choice when the default 1.5 s pause follows it.
    has_in_order(
        &drive(COMFORT, Vars::new(), &[(6000, Input::Key('2'))]),
        &["7500 state resend"],
    );
    // Keys during the music go to the code entry as type-ahead.
    has_in_order(
        &drive(
            COMFORT,
            Vars::new(),
            &[
                (1000, Input::Key('2')),
                (1200, Input::Key('4')),
                (1400, Input::Key('6')),
            ],
        ),
        &["1000 state code", "1400 collected otp=246"],
    );
}

const ACTION: &str = r#"
flow: t
version: "1"
start: a
escape: { key: "0", to: agent }
states:
  a:
    attempt: begin
    action: lookup
    processing: [wait]
    on: { success: ok, error: bad }
  ok: { hangup: { prompt: [bye] } }
  bad: { hangup: {} }
  agent:
    transfer: { target: agent, reason: caller_request }
    on_refused: help
  help: { hangup: { prompt: [helpdesk] } }
"#;

#[test]
fn action_processing_prompt_loops_and_outcomes() {
    has_in_order(
        &drive(ACTION, Vars::new(), &[(5000, Input::Action("success"))]),
        &[
            "0 action lookup",
            "0 play wait",
            "2000 play wait",
            "4000 play wait",
            "5000 state ok",
            "5000 audit incomplete flow_ended_without_result",
            "5000 play bye",
            "7000 hangup",
        ],
    );
    // An outcome the flow does not map is treated as `error`.
    has_in_order(
        &drive(ACTION, Vars::new(), &[(100, Input::Action("weird"))]),
        &["100 state bad"],
    );
}

#[test]
fn escape_while_waiting_and_transfer_outcomes() {
    // Accepted: transferred audit, then hangup. A late action result is ignored.
    let log = drive(
        ACTION,
        Vars::new(),
        &[
            (500, Input::Key('0')),
            (700, Input::Transfer(true)),
            (900, Input::Action("success")),
        ],
    );
    has_in_order(
        &log,
        &[
            "500 state agent",
            "500 transfer agent caller_request",
            "700 audit transferred caller_request",
            "700 hangup",
        ],
    );
    // Refused: fallback; the attempt is audited when the flow hangs up.
    let log = drive(
        ACTION,
        Vars::new(),
        &[(500, Input::Key('0')), (700, Input::Transfer(false))],
    );
    has_in_order(
        &log,
        &[
            "700 state help",
            "700 audit failure caller_request_transfer_refused",
            "700 play helpdesk",
            "2700 hangup",
        ],
    );
    assert_eq!(log.iter().filter(|l| l.contains(" audit ")).count(), 1);
}

#[test]
fn branch_set_counter_and_flow_errors() {
    let text = r#"
flow: t
version: "1"
start: s
variables: { mode: "a" }
states:
  s:
    set: { vars: { greeting: "{{ mode }}x" } }
    next: b
  b:
    counter: { name: n, max: 2, on_exceeded: stop }
    branch:
      - { var: greeting, equals: "bx", to: stop }
      - { var: greeting, matches: "a.", to: say }
    default: stop
  say:
    play: [{ digits: "{{ missing }}" }]
    next: b
  stop: { hangup: {} }
"#;
    // The preset wins over the flow default; branch matches `b`.
    let mut v = Vars::new();
    v.set_plain("mode", "b");
    has_in_order(&drive(text, v, &[]), &["0 state b", "0 state stop"]);
    // Default `a` → `ax` matches → `say`, whose template is undefined: flow error, hangup.
    has_in_order(
        &drive(text, Vars::new(), &[]),
        &["0 state say", "0 flow-error", "0 hangup"],
    );
}

#[test]
fn caller_hangup_outside_secure_and_secure_boundaries() {
    let text = r#"
flow: t
version: "1"
start: a
states:
  a:
    attempt: begin
    play: [hello]
    next: s
  s:
    secure: true
    collect: { into: pin, prompt: [pin], min: 4, max: 4 }
    next: out
    on_fail: out
  out:
    play: [done]
    next: bye
  bye: { hangup: {} }
"#;
    let log = drive(text, Vars::new(), &[(1000, Input::Hangup)]);
    has_in_order(&log, &["1000 audit abandoned caller_hangup"]);
    let keys = [
        (2500, Input::Key('1')),
        (2600, Input::Key('2')),
        (2700, Input::Key('3')),
        (2800, Input::Key('4')),
    ];
    let log = drive(text, Vars::new(), &keys);
    has_in_order(
        &log,
        &[
            "2000 secure true",
            "2800 collected pin=****",
            "2800 secure false",
            "2800 state out",
            "4800 audit incomplete flow_ended_without_result",
            "4800 hangup",
        ],
    );
}
