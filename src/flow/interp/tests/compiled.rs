//! Templates and patterns are compiled, and the key routes worked out, when
//! the flow is parsed; a call only renders, matches and reads them (compiles
//! are counted per thread by `template` and `pattern`, so tests running in
//! parallel do not disturb the count).

use super::*;
use crate::flow::pattern;
use crate::template;

const FLOW: &str = r#"
flow: t
version: "1"
start: greet
variables: { mobile: "+1 (555) 010-0316" }
states:
  greet:
    set: { vars: { masked: "{{ mobile | last4 }}" } }
    next: read
  read: { play: [{ digits: "{{ masked }}" }], next: code }
  code:
    collect: { into: code, prompt: [p], max: 4, attempts: 1, pattern: "[1-9][0-9]*" }
    next: route
    on_fail: failed
  route:
    branch: [ { var: code, matches: "1.*", to: one } ]
    default: other
  one: { hangup: {} }
  other: { hangup: {} }
  failed: { hangup: {} }
"#;

fn compiles() -> (usize, usize) {
    (
        template::compiles_on_this_thread(),
        pattern::compiles_on_this_thread(),
    )
}

#[test]
fn calls_render_and_match_without_compiling() {
    let before = compiles();
    let flow = Arc::new(parse(FLOW, Path::new("t.yaml")).unwrap());
    let loaded = compiles();
    assert_eq!(
        (loaded.0 - before.0, loaded.1 - before.1),
        (2, 2),
        "two templates and two patterns, each compiled once at load"
    );
    let cases = [
        ("1234", "state one"),
        ("2345", "state other"),
        // `0…` fails the collect pattern.
        ("0123", "state failed"),
    ];
    for i in 0..300 {
        let (typed, end) = cases[i % cases.len()];
        let log = simulate(Arc::clone(&flow), &keys(3_000, 100, typed));
        assert!(
            log.iter()
                .any(|l| l.ends_with("play digit_0,digit_3,digit_1,digit_6")),
            "{log:?}"
        );
        assert!(log.iter().any(|l| l.ends_with(end)), "{typed}: {log:?}");
    }
    assert_eq!(
        compiles(),
        loaded,
        "a call compiled a template or a pattern"
    );
}

/// Where typed-ahead keys can go depends on the flow alone: it is worked
/// out when the flow is parsed and every call shares it.
#[test]
fn calls_share_the_key_routes_of_their_flow() {
    let flow = Arc::new(parse(FLOW, Path::new("t.yaml")).unwrap());
    let loaded = Arc::clone(flow.key_routes());
    let t0 = Instant::now();
    for _ in 0..3 {
        let call = Interpreter::new(t0, Arc::clone(&flow), Vars::new());
        assert!(Arc::ptr_eq(&call.routes, &loaded));
    }
    assert_eq!(*loaded, crate::flow::keys::KeyRoutes::new(&flow));
    assert!(!loaded.get("read").consumers.is_empty());
}
