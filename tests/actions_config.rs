//! Load-time validation of action configs: every mistake an integrator can
//! make is refused with a message naming the action and the problem.

use std::collections::BTreeMap;

use sspr_ivr::actions::{ActionConfig, ActionError, Executor};
use sspr_ivr::demo::demo_actions;

fn parse(yaml: &str) -> Result<BTreeMap<String, ActionConfig>, String> {
    serde_yaml::from_str(yaml).map_err(|e| e.to_string())
}

fn env(var: &str) -> Option<String> {
    match var {
        "TOKEN" => Some("t0ken".into()),
        "USER" => Some("u".into()),
        "PASS" => Some("p".into()),
        _ => None,
    }
}

/// Parse + validate; the error text either way.
fn load(yaml: &str) -> Result<Executor, String> {
    let map = parse(yaml)?;
    Executor::with_env(map, env).map_err(|e| e.to_string())
}

#[test]
fn rejections_table() {
    let cases: &[(&str, &str)] = &[
        // (yaml, expected fragment of the error)
        ("a: { url: 'https://x/{{ id }}', bogus: 1 }", "unknown field `bogus`"),
        ("a: { url: 'https://x', auth: { bearer_env: TOKEN, extra: 1 } }", "unknown field `extra`"),
        ("a: { url: 'https://x', outcomes: [ { status: 200, outcome: ok, colour: red } ] }", "unknown field `colour`"),
        ("a: { url: 'https://x', body: { xml: '<a/>' } }", "unknown field `xml`"),
        ("a: { url: 'https://x', body: { json: {}, form: {} } }", "exactly one of `json`"),
        ("a: { url: 'https://x', timeout: 5 }", "duration \"5\" needs a unit"),
        ("a: { url: 'https://x', timeout: 5 parsecs }", "unknown time unit \"parsecs\""),
        ("a: { url: 'ftp://x' }", "https:// or http://"),
        ("a: { url: '{{ base }}/users' }", "https:// or http://"),
        ("a: { url: 'https://{{ host }}/users' }", "must be literal"),
        ("a: { url: 'https://user:pw@x/' }", "credentials"),
        ("a: { url: 'http://idp.example.com/', secure: true }", "must use https"),
        ("a: { url: 'http://idp.example.com/', secure: true, allow_insecure_http: true }", "loopback"),
        ("a: { url: 'http://10.0.0.1/', allow_insecure_http: true }", "loopback"),
        ("a: { url: 'https://x/{{ id ' }", "url"),
        ("a: { url: 'https://x', headers: { 'Bad Header': v } }", "not a valid HTTP header name"),
        ("a: { url: 'https://x', body: { json: { a: '{% if %}' } } }", "body.json.a"),
        ("a: { url: 'https://x', auth: { bearer_env: NOPE } }", "NOPE is not set"),
        ("a: { url: 'https://x', auth: { basic: { username_env: USER, password_env: NOPE2 } } }", "NOPE2"),
        ("a: { url: 'https://x', auth: { bearer_env: TOKEN, value_env: TOKEN } }", "exactly one of"),
        ("a: { url: 'https://x', auth: { header: Authorization } }", "exactly one of"),
        ("a: { url: 'https://x', method: POST, retries: 2 }", "idempotency_header"),
        ("a: { url: 'https://x', method: POST, retries: 1, idempotency_header: Idempotency-Key }", "must also be set in `headers`"),
        ("a: { url: 'https://x', outputs: { mobile: 'profile.mobilePhone' } }", "neither a JSON pointer"),
        ("a: { url: 'https://x', outputs: { mobile: '$[' } }", "bad JSONPath"),
        ("a: { url: 'https://x', outputs: { 'my var': /x } }", "not an identifier"),
        ("a: { url: 'https://x', outcomes: [ { status: 200, outcome: Success } ] }", "lower-case"),
        ("a: { url: 'https://x', outcomes: [ { status: 200, outcome: timeout } ] }", "built in"),
        ("a: { url: 'https://x', outcomes: [ { status: 700, outcome: ok } ] }", "not an HTTP status"),
        ("a: { url: 'https://x', outcomes: [ { status: '2yy', outcome: ok } ] }", "class"),
        ("a: { url: 'https://x', outcomes: [ { field: /s, outcome: ok } ] }", "exactly one of equals"),
        ("a: { url: 'https://x', outcomes: [ { field: /s, equals: A, exists: true, outcome: ok } ] }", "exactly one of equals"),
        ("a: { url: 'https://x', outcomes: [ { equals: A, outcome: ok } ] }", "need a `field`"),
        ("a: { url: 'https://x', timeout: 0s }", "greater than zero"),
        ("a: { url: 'https://x', auth: { bearer_env: TOKEN }, headers: { authorization: 'Bearer x' } }", "set by `auth`"),
        ("a: { url: 'https://x', auth: { header: X-Api-Key, value_env: TOKEN }, headers: { x-api-key: k } }", "set by `auth`"),
    ];
    for (yaml, want) in cases {
        match load(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => assert!(e.contains(want), "{yaml}\n  error: {e}\n  wanted: {want}"),
        }
    }
}

#[test]
fn accepted_forms() {
    let ok = r#"
okta_like:
  method: POST
  url: "https://idp.example.com:8443/api/v1/users/{{ user_id }}?x=1"
  auth: { header: Authorization, value_env: TOKEN, prefix: "SSWS " }
  secure: true
  body: { json: { credentials: { password: { value: "{{ new_pin }}" } }, active: true, n: 3 } }
  outcomes:
    - { status: ["2xx", 304], outcome: success }
    - { status: "4XX", field: "$.errorCauses[0].errorSummary", contains: recently, outcome: reused }
    - { status: 403, field: /errorCode, in: [E0000080, E0000001], outcome: too_simple }
    - { field: /n, equals: 5, outcome: five }
twilio_like:
  method: POST
  url: https://verify.example.com/v2/Services/VA1/Verifications
  auth: { basic: { username_env: USER, password_env: PASS } }
  body: { form: { To: "{{ mobile | e164 }}", Channel: sms } }
loopback_secure:
  method: PUT
  url: "http://[::1]:9000/pin"
  secure: true
  allow_insecure_http: true
  retries: 3
  retry_backoff: 50ms
  timeout: 1.5s
  headers: { X-Request-Id: "{{ call_id }}" }
  body: { json_template: '{"pin": {{ new_pin }}}' }
localhost_secure:
  url: "http://localhost:9000/"
  secure: true
  allow_insecure_http: true
  auth: { bearer_env: TOKEN }
"#;
    let exec = load(ok).unwrap();
    let info = exec.info("okta_like").unwrap();
    assert_eq!(
        info.outcomes,
        [
            "success",
            "reused",
            "too_simple",
            "five",
            "timeout",
            "error"
        ]
    );
    assert!(info.secure);
    assert_eq!(info.inputs, ["new_pin", "user_id"]);
    let info = exec.info("twilio_like").unwrap();
    assert_eq!(info.inputs, ["mobile"]);
    assert!(!info.secure);
    assert_eq!(
        exec.info("loopback_secure").unwrap().inputs,
        ["call_id", "new_pin"]
    );
    assert_eq!(exec.infos().len(), 4);
}

#[test]
fn demo_wiring_has_the_flow_contract() {
    let map = demo_actions("http://127.0.0.1:1").unwrap();
    let want: &[(&str, &[&str], bool)] = &[
        (
            "lookup_user",
            &[
                "success",
                "not_found",
                "locked",
                "rate_limited",
                "timeout",
                "error",
            ],
            false,
        ),
        (
            "send_otp",
            &["success", "rate_limited", "timeout", "error"],
            false,
        ),
        (
            "verify_otp",
            &[
                "success",
                "invalid",
                "expired",
                "rate_limited",
                "timeout",
                "error",
            ],
            true,
        ),
        (
            "reset_pin",
            &[
                "success",
                "too_simple",
                "reused",
                "locked",
                "timeout",
                "error",
            ],
            true,
        ),
    ];
    for (name, outcomes, secure) in want {
        let info = map[*name].info();
        let mut got = info.outcomes.clone();
        got.sort();
        let mut expect: Vec<String> = outcomes.iter().map(|s| s.to_string()).collect();
        expect.sort();
        assert_eq!(got, expect, "{name}");
        assert_eq!(info.secure, *secure, "{name}");
    }
    let lookup = map["lookup_user"].info();
    assert_eq!(
        lookup.outputs,
        ["email", "factor", "mobile", "status", "user_id"]
    );
    assert_eq!(lookup.inputs, ["employee_id"]);
    assert_eq!(map["verify_otp"].info().inputs, ["otp", "user_id"]);
    assert_eq!(map["reset_pin"].info().inputs, ["new_pin", "user_id"]);
    // The audit action can be delivered with or without a receiver's dedupe.
    assert!(map["audit"]
        .info()
        .outcomes
        .contains(&"duplicate".to_string()));
    Executor::with_env(map, |_| None).unwrap();
}

#[test]
fn missing_env_error_names_variable_not_value() {
    let map = parse("a: { url: 'https://x', auth: { bearer_env: SSPR_TEST_UNSET_VAR } }").unwrap();
    let err = Executor::with_env(map, |_| None).err().unwrap();
    assert!(matches!(err, ActionError::MissingEnv { ref var, .. } if var == "SSPR_TEST_UNSET_VAR"));
}

#[test]
fn readme_schema_example_loads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/providers/README.md"
    ))
    .unwrap();
    let start = text.find("```yaml\n").unwrap() + 8;
    let end = start + text[start..].find("```").unwrap();
    #[derive(serde::Deserialize)]
    struct File {
        actions: BTreeMap<String, ActionConfig>,
    }
    let f: File = serde_yaml::from_str(&text[start..end]).unwrap();
    let exec = Executor::with_env(f.actions, |_| Some("x".into())).unwrap();
    let info = exec.info("reset_pin").unwrap();
    assert_eq!(
        info.outcomes,
        [
            "success",
            "too_simple",
            "reused",
            "locked",
            "timeout",
            "error"
        ]
    );
    assert_eq!(info.inputs, ["call_id", "new_pin", "user_id"]);
    assert_eq!(info.outputs, ["factor", "phone", "status"]);
}
