//! Callers' keypad habits (docs/collect-timers.md, "Keypad habits") as
//! tables in virtual time, both sides of every rule. Every prompt item
//! lasts 2 s.

use super::*;

/// A welcome `play`, an ID-like collect `c` that takes the escape as its
/// first key, then a code-like collect `d`, both ending with `#`.
fn two_entries(escape: bool) -> Arc<Flow> {
    let text = format!(
        r##"
flow: t
version: "1"
start: w
escape: {{ key: "0", to: agent }}
states:
  w: {{ play: [welcome], next: c }}
  c:
    collect: {{ into: v, prompt: [p], no_input: [ni], no_match: [nm], first_digit_timeout: 5s,
               inter_digit_timeout: 3s, attempts: 3, min: 1, max: 4, terminator: "#",
               escape: {escape} }}
    next: d
    on_fail: failed
  d:
    collect: {{ into: x, prompt: [q], no_input: [ni], no_match: [nm], first_digit_timeout: 5s,
               inter_digit_timeout: 3s, attempts: 3, min: 1, max: 4, terminator: "#" }}
    next: done
    on_fail: failed
  done: {{ hangup: {{}} }}
  failed: {{ hangup: {{}} }}
  agent: {{ hangup: {{}} }}
"##
    );
    Arc::new(parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}")))
}

/// A comfort loop feeding code entry `code` (4 digits, `#`): music 0–5 s,
/// menu 5–7 s (offered at 5 s), its 3 s timeout to 10 s, round 2 music
/// 10–15 s, menu 15–17 s, ...
fn comfort(secure: bool) -> Arc<Flow> {
    let text = format!(
        r##"
flow: t
version: "1"
start: c
escape: {{ key: "0", to: agent }}
states:
  c:
    secure: {secure}
    comfort_loop: {{ music: hold, seconds: 5s, menu: [menu], options: {{ "1": code, "2": resend }},
                    menu_timeout: 3s, rounds: 3, type_ahead: code }}
    on_exhausted: gone
  code:
    secure: {secure}
    collect: {{ into: otp, prompt: [enter], min: 4, max: 4, terminator: "#" }}
    next: ok
    on_fail: gone
  resend: {{ play: [resent], next: c }}
  ok: {{ hangup: {{}} }}
  gone: {{ hangup: {{}} }}
  agent: {{ hangup: {{}} }}
"##
    );
    Arc::new(parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}")))
}

/// (row, flow, keys, lines expected in order, lines that must not appear)
type Row<'a> = (
    &'a str,
    Arc<Flow>,
    Vec<(u64, char)>,
    Vec<&'a str>,
    Vec<&'a str>,
);

fn check(rows: Vec<Row>) {
    for (row, flow, k, want, never) in rows {
        let log = simulate(flow, &k);
        let mut it = log.iter();
        for w in &want {
            assert!(
                it.any(|l| l == w),
                "row `{row}`: missing `{w}` (in order) in {log:#?}"
            );
        }
        for n in &never {
            assert!(
                !log.iter().any(|l| l.contains(n)),
                "row `{row}`: unexpected `{n}` in {log:#?}"
            );
        }
    }
}

#[test]
fn type_ahead_and_the_escape_key() {
    check(vec![
        (
            "keys typed during a prompt are type-ahead: the next entry's prompt is skipped",
            two_entries(true),
            keys(300, 200, "12#"),
            vec!["2000 collected v=12"],
            vec!["play p"],
        ),
        (
            "0 inside a typed-ahead entry is a digit, not the escape",
            two_entries(true),
            keys(300, 200, "102#"),
            vec!["2000 collected v=102"],
            vec!["state agent"],
        ),
        (
            "0 as the first key typed ahead is the escape, at once",
            two_entries(true),
            keys(500, 0, "0"),
            vec!["500 state agent"],
            vec!["collected"],
        ),
        (
            "0 typed ahead for an entry that does not take the escape is its first digit",
            two_entries(false),
            keys(500, 200, "01#"),
            vec!["2000 collected v=01"],
            vec!["state agent"],
        ),
        (
            "keys beyond the first entry stay type-ahead for the next one",
            two_entries(true),
            keys(300, 150, "12#34#"),
            vec!["2000 collected v=12", "2000 collected x=34"],
            vec!["play q", "no-match"],
        ),
    ]);
}

#[test]
fn a_terminator_after_max_digits_belongs_to_that_entry() {
    check(vec![
        (
            "# right after an entry that ended on max is swallowed",
            two_entries(true),
            [keys(3000, 250, "1234#"), keys(6000, 250, "5678#")].concat(),
            vec!["3750 collected v=1234", "3750 play q", "6750 collected x=5678"],
            vec!["no-match"],
        ),
        (
            "... also when typed ahead with the next entry",
            two_entries(true),
            keys(300, 150, "1234#5678#"),
            vec!["2000 collected v=1234", "2000 collected x=5678"],
            vec!["no-match"],
        ),
        (
            "the other side: # later than the inter-digit timeout is the next entry's (empty: no-match)",
            two_entries(true),
            [keys(3000, 250, "1234"), vec![(6800, '#')]].concat(),
            vec!["3750 collected v=1234", "6800 no-match 1"],
            vec![],
        ),
        (
            "a key other than the terminator ends the wait: a later # is the next entry's",
            two_entries(true),
            [keys(3000, 250, "1234"), keys(4000, 250, "5#")].concat(),
            vec!["3750 collected v=1234", "4250 collected x=5"],
            vec!["no-match"],
        ),
    ]);
}

#[test]
fn comfort_loop_menu_keys_and_runs() {
    check(vec![
        (
            "before the menu was offered every key is the code, menu keys too",
            comfort(true),
            keys(1000, 300, "2468#"),
            vec!["1000 state code", "1900 collected otp=****"],
            vec!["state resend"],
        ),
        (
            "after the menu, a lone 2 in the music followed by 1.5 s of silence is the choice",
            comfort(true),
            vec![(11000, '2')],
            vec!["11000 stop", "12500 state resend"],
            vec!["state code"],
        ),
        (
            "... the same key with another within 1.5 s is the first digit of the code",
            comfort(true),
            [vec![(11000, '2')], keys(12400, 200, "468")].concat(),
            vec!["12400 state code", "12800 collected otp=****"],
            vec!["state resend"],
        ),
        (
            "... a key 1.6 s later is too late: the choice was made (the key is type-ahead after it)",
            comfort(true),
            vec![(11000, '2'), (12600, '4')],
            vec!["12500 state resend", "12500 play resent", "14500 state code"],
            vec![],
        ),
        (
            "a menu key followed by the code's terminator is the choice at once",
            comfort(true),
            keys(11000, 200, "2#"),
            vec!["11200 state resend", "11200 play resent"],
            vec!["state code", "no-match"],
        ),
        (
            "a lone 1 while the menu plays is the choice: the code prompt plays",
            comfort(true),
            vec![(5500, '1')],
            vec!["5500 stop", "7000 state code", "7000 play enter"],
            vec![],
        ),
        (
            "a key that is no menu option is the code at once, after the menu too",
            comfort(true),
            keys(11000, 300, "4821"),
            vec!["11000 state code", "11900 collected otp=****"],
            vec!["state resend"],
        ),
        (
            "the escape key is held like a menu key in a non-secure loop",
            comfort(false),
            vec![(11000, '0')],
            vec!["12500 state agent"],
            vec!["state code"],
        ),
        (
            "... and is the code's first digit before the menu was offered",
            comfort(false),
            keys(1000, 300, "0482"),
            vec!["1000 state code", "1900 collected otp=0482"],
            vec!["state agent"],
        ),
    ]);
}

#[test]
fn the_key_guard_covers_keys_that_can_reach_a_secure_collect() {
    // A read-back (non-secure) right before a secure code entry.
    let text = r##"
flow: t
version: "1"
start: a
escape: { key: "0", to: agent }
states:
  a: { play: [read_back], next: code }
  code:
    secure: true
    collect: { into: otp, prompt: [enter], min: 4, max: 4, terminator: "#" }
    next: ok
    on_fail: gone
  ok: { hangup: {} }
  gone: { hangup: {} }
  agent: { hangup: {} }
"##;
    let f = Arc::new(parse(text, Path::new("t.yaml")).expect("parse"));
    let log = simulate(Arc::clone(&f), &keys(500, 200, "0482#"));
    let want = [
        "500 key guard true",
        "2000 collected otp=****",
        "2000 key guard false",
    ];
    let mut it = log.iter();
    for w in want {
        assert!(it.any(|l| l == w), "missing `{w}` in {log:#?}");
    }
    assert!(!log.iter().any(|l| l.contains("agent")), "{log:#?}");
    // Keys for a non-secure entry are not guarded.
    let log = simulate(two_entries(true), &keys(300, 200, "12#"));
    assert!(!log.iter().any(|l| l.contains("key guard")), "{log:#?}");
    // What is left over after a non-secure entry and can reach a secure one
    // is guarded from the first such key, not before.
    let text = r##"
flow: t
version: "1"
start: w
states:
  w: { play: [welcome], next: id }
  id:
    collect: { into: v, prompt: [p], min: 1, max: 6, terminator: "#" }
    next: code
    on_fail: gone
  code:
    secure: true
    collect: { into: otp, prompt: [enter], min: 4, max: 4, terminator: "#" }
    next: ok
    on_fail: gone
  ok: { hangup: {} }
  gone: { hangup: {} }
"##;
    let f = Arc::new(parse(text, Path::new("t.yaml")).expect("parse"));
    let log = simulate(f, &keys(100, 150, "123#4821#"));
    let mut it = log.iter();
    for w in [
        "700 key guard true",
        "2000 collected v=123",
        "2000 collected otp=****",
        "2000 key guard false",
    ] {
        assert!(it.any(|l| l == w), "missing `{w}` in {log:#?}");
    }
}
