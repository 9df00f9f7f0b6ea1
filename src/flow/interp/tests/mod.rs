//! Collect timer semantics as a table (docs/collect-timers.md), in
//! virtual time: every prompt item lasts exactly 2 s. The keypad-habit
//! tables are in `keypad`; `compiled` shows a call compiles nothing.
use super::*;
use crate::flow::model::parse;
use std::path::Path;

mod compiled;
mod keypad;

fn flow(params: &str, secure: bool) -> Arc<Flow> {
    let text = format!(
        r##"
flow: t
version: "1"
start: c
escape: {{ key: "0", to: agent }}
states:
  c:
    secure: {secure}
    collect: {{ into: v, prompt: [p], no_input: [ni], no_match: [nm], first_digit_timeout: 5s,
               inter_digit_timeout: 3s, attempts: 3, {params} }}
    next: done
    on_fail: failed
  done: {{ hangup: {{}} }}
  failed: {{ hangup: {{}} }}
  agent: {{ hangup: {{}} }}
"##
    );
    Arc::new(parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}")))
}

/// Run until the call is over; keys at absolute milliseconds. Returns
/// lines `<ms> <what>`.
pub(super) fn simulate(flow: Arc<Flow>, keys: &[(u64, char)]) -> Vec<String> {
    let t0 = Instant::now();
    let ms = |t: Instant| t.duration_since(t0).as_millis();
    let mut it = Interpreter::new(t0, flow, Vars::new());
    let mut now = t0;
    let mut log = Vec::new();
    let mut playing: Option<(u64, Instant)> = None;
    let mut keys: VecDeque<(u64, char)> = keys.iter().copied().collect();
    loop {
        while let Some(c) = it.poll_command() {
            match c {
                Command::Play { id, items, .. } => {
                    let names: Vec<String> = items
                        .iter()
                        .map(|i| match i {
                            Say::Prompt(p) => p.clone(),
                            Say::Digit(d) => digit_prompt(*d),
                            Say::Silence(_) => "-".into(),
                        })
                        .collect();
                    log.push(format!("{} play {}", ms(now), names.join(",")));
                    playing = Some((id, now + Duration::from_secs(2 * items.len() as u64)));
                }
                Command::StopPlayback if playing.take().is_some() => {
                    log.push(format!("{} stop", ms(now)));
                }
                Command::Timeline(TimelineEvent::DigitsCollected { var, shown }) => {
                    log.push(format!("{} collected {var}={shown}", ms(now)))
                }
                Command::Timeline(TimelineEvent::NoInput { attempt, .. }) => {
                    log.push(format!("{} no-input {attempt}", ms(now)))
                }
                Command::Timeline(TimelineEvent::NoMatch { attempt, .. }) => {
                    log.push(format!("{} no-match {attempt}", ms(now)))
                }
                Command::Timeline(TimelineEvent::Mismatch { attempt, .. }) => {
                    log.push(format!("{} mismatch {attempt}", ms(now)))
                }
                Command::Timeline(TimelineEvent::EntryRestarted { .. }) => {
                    log.push(format!("{} restart", ms(now)))
                }
                Command::KeyGuard(on) => log.push(format!("{} key guard {on}", ms(now))),
                Command::Timeline(TimelineEvent::StateEntered { state, .. }) if state != "c" => {
                    log.push(format!("{} state {state}", ms(now)))
                }
                _ => {}
            }
        }
        if it.is_finished() {
            return log;
        }
        let key_at = keys.front().map(|(t, _)| t0 + Duration::from_millis(*t));
        let candidates = [it.poll_timeout(), playing.map(|(_, t)| t), key_at];
        let next = candidates.into_iter().flatten().min().expect("stuck");
        assert!(next >= now, "deadline in the past");
        now = next;
        if key_at == Some(now) {
            let (_, k) = keys.pop_front().expect("key");
            it.handle_digit(now, k);
        } else if let Some((id, t)) = playing.filter(|(_, t)| *t == now) {
            let _ = t;
            playing = None;
            it.handle_play_finished(now, id);
        } else {
            it.handle_timeout(now);
        }
        assert!(ms(now) < 120_000, "ran away: {log:?}");
    }
}

pub(super) fn keys(start: u64, gap: u64, s: &str) -> Vec<(u64, char)> {
    s.chars()
        .enumerate()
        .map(|(i, c)| (start + gap * i as u64, c))
        .collect()
}

#[test]
fn collect_timer_table() {
    // (row, collect params, keys, expected log lines in order)
    type Row<'a> = (&'a str, &'a str, Vec<(u64, char)>, Vec<&'a str>);
    let rows: Vec<Row> = vec![
        (
            "first-digit timeout starts when the prompt ends: re-prompt after exactly 5 s",
            "min: 1, max: 4",
            vec![],
            vec!["0 play p", "7000 no-input 1", "7000 play ni,p"],
        ),
        (
            "no input on every attempt: on_fail after the third",
            "min: 1, max: 4",
            vec![],
            vec![
                "7000 no-input 1",
                "16000 no-input 2",
                "25000 no-input 3",
                "25000 state failed",
            ],
        ),
        (
            "inter-digit timeout with >= min digits accepts",
            "min: 2, max: 4",
            keys(3000, 500, "12"),
            vec!["6500 collected v=12", "6500 state done"],
        ),
        (
            "inter-digit timeout restarts on each digit",
            "min: 1, max: 9",
            keys(3000, 2500, "123"),
            vec!["11000 collected v=123"],
        ),
        (
            "inter-digit timeout with < min digits is no-match",
            "min: 4, max: 6",
            keys(3000, 500, "12"),
            vec!["6500 no-match 1", "6500 play nm,p"],
        ),
        (
            "terminator ends entry and is not included",
            "min: 1, max: 6, terminator: \"#\"",
            keys(3000, 250, "123#"),
            vec!["3750 collected v=123"],
        ),
        (
            "terminator with < min digits is no-match at once",
            "min: 4, max: 6, terminator: \"#\"",
            keys(3000, 250, "12#"),
            vec!["3500 no-match 1"],
        ),
        (
            "terminator alone is no-match",
            "min: 1, max: 6, terminator: \"#\"",
            keys(3000, 0, "#"),
            vec!["3000 no-match 1"],
        ),
        (
            "max digits ends entry without waiting",
            "min: 1, max: 3, terminator: \"#\"",
            keys(3000, 250, "123"),
            vec!["3500 collected v=123"],
        ),
        (
            "barge-in: a key stops the prompt and starts the inter-digit timer",
            "min: 1, max: 4",
            keys(1000, 0, "7"),
            vec!["1000 stop", "4000 collected v=7"],
        ),
        (
            "no barge-in: keys during the prompt are kept, timer from the prompt end",
            "min: 1, max: 4, barge_in: false",
            keys(1000, 0, "7"),
            vec!["0 play p", "5000 collected v=7"],
        ),
        (
            "pattern mismatch is no-match",
            "min: 1, max: 4, pattern: \"[1-9][0-9]*\"",
            keys(3000, 250, "0123"),
            vec!["3750 no-match 1"],
        ),
        (
            "no-input and no-match share the attempts",
            "min: 2, max: 4",
            vec![(3000, '1'), (16000, '1')],
            vec![
                "6000 no-match 1",
                "15000 no-input 2",
                "19000 no-match 3",
                "19000 state failed",
            ],
        ),
        (
            "keys beyond max are type-ahead, not part of the value",
            "min: 1, max: 2",
            keys(3000, 100, "123"),
            vec!["3100 collected v=12"],
        ),
        (
            "escape: first key of an opted-in collect goes to the agent",
            "min: 1, max: 4, escape: true",
            keys(3000, 0, "0"),
            vec!["3000 state agent"],
        ),
        (
            "escape: not a later key",
            "min: 1, max: 4, escape: true",
            keys(3000, 250, "10"),
            vec!["6250 collected v=10"],
        ),
        (
            "escape: not honoured without opt-in",
            "min: 1, max: 4",
            keys(3000, 0, "0"),
            vec!["6000 collected v=0"],
        ),
        (
            "`*` starts the entry again: the prompt plays again, no attempt is used",
            "min: 1, max: 6, terminator: \"#\"",
            keys(3000, 250, "12*34#"),
            vec![
                "3500 restart",
                "3500 play p",
                "3750 stop",
                "4250 collected v=34",
            ],
        ),
        (
            "`*` as an ordinary key with `restart: false`",
            "min: 1, max: 6, terminator: \"#\", restart: false",
            keys(3000, 250, "1*2#"),
            vec!["3750 collected v=1*2"],
        ),
        (
            "`*` in the confirmation restarts the confirmation only",
            "min: 2, max: 2, confirm: { prompt: [cp], mismatch: [mm] }",
            [keys(3000, 100, "12"), keys(4000, 100, "1*12")].concat(),
            vec![
                "4100 restart",
                "4100 play cp",
                "4200 stop",
                "4300 collected v=12",
            ],
        ),
        (
            "confirm by re-entry: equal entries accepted",
            "min: 2, max: 2, confirm: { prompt: [cp], mismatch: [mm] }",
            [keys(3000, 100, "12"), keys(4000, 100, "12")].concat(),
            vec!["3100 play cp", "4000 stop", "4100 collected v=12"],
        ),
        (
            "confirm mismatch counts as an attempt and restarts the entry",
            "min: 2, max: 2, confirm: { prompt: [cp], mismatch: [mm] }",
            [keys(3000, 100, "12"), keys(4000, 100, "13")].concat(),
            vec!["4100 mismatch 1", "4100 play mm,p"],
        ),
    ];
    for (row, params, k, want) in rows {
        let log = simulate(flow(params, false), &k);
        let mut it = log.iter();
        for w in &want {
            assert!(
                it.any(|l| l == w),
                "row `{row}`: missing `{w}` (in order) in {log:#?}"
            );
        }
    }
}

#[test]
fn secure_collect_masks_and_ignores_escape() {
    let log = simulate(
        flow("min: 1, max: 4, escape: false", true),
        &keys(3000, 250, "0412#"),
    );
    assert!(
        log.contains(&"3750 collected v=****".to_string()),
        "{log:#?}"
    );
}

#[test]
fn secure_exits_and_auto_audit() {
    let text = r##"
flow: t
version: "1"
start: a
states:
  a:
    attempt: begin
    secure: true
    collect: { into: pin, prompt: [p], min: 4, max: 4 }
    next: done
    on_fail: done
  done: { hangup: {} }
"##;
    let f = Arc::new(parse(text, Path::new("t.yaml")).expect("parse"));
    let t0 = Instant::now();
    let mut it = Interpreter::new(t0, f, Vars::new());
    it.handle_digit(t0, '4');
    it.handle_hangup(t0 + Duration::from_secs(1));
    let cmds: Vec<Command> = std::iter::from_fn(|| it.poll_command()).collect();
    let pos = |c: &Command| cmds.iter().position(|x| x == c);
    let on = pos(&Command::Secure(true)).expect("secure on");
    let off = pos(&Command::Secure(false)).expect("secure off");
    let audit = pos(&Command::Audit {
        result: "abandoned".into(),
        reason: "caller_hangup_in_secure_segment".into(),
    })
    .expect("audit");
    assert!(on < off && off < audit, "{cmds:?}");
    assert!(it.is_finished() && !it.is_secure() && it.poll_timeout().is_none());
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Command::Audit { .. }))
            .count(),
        1
    );
}

#[test]
fn a_state_that_needs_encrypted_media_is_never_entered_on_a_clear_call() {
    let text = r##"
flow: t
version: "1"
start: hello
on_insecure_media: not_here
states:
  hello:
    play: [hi]
    next: pin
  pin:
    secure: true
    secure_media: required
    collect: { into: pin, prompt: [enter_pin], min: 4, max: 4 }
    next: done
    on_fail: done
  not_here:
    play: [cannot_take_this_line]
    next: done
  done: { hangup: {} }
"##;
    let f = Arc::new(parse(text, Path::new("t.yaml")).expect("parse"));
    let t0 = Instant::now();
    for encrypted in [false, true] {
        let mut it = Interpreter::with_media(t0, f.clone(), Vars::new(), encrypted);
        let mut played = Vec::new();
        let mut secure = false;
        for _ in 0..4 {
            while let Some(c) = it.poll_command() {
                match c {
                    Command::Play { id, items, .. } => {
                        played.extend(items.into_iter().map(|s| format!("{s:?}")));
                        it.handle_play_finished(t0, id);
                    }
                    Command::Secure(on) => secure |= on,
                    _ => {}
                }
            }
        }
        let asked = played.iter().any(|p| p.contains("enter_pin"));
        let refused = played.iter().any(|p| p.contains("cannot_take_this_line"));
        assert_eq!(
            (asked, refused, secure),
            (encrypted, !encrypted, encrypted),
            "{played:?}"
        );
    }
}
