//! The executor against real loopback servers: escaping, auth, outcomes,
//! outputs, timeouts, retries, and that secrets never reach a log line.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value as Json};
use sspr_ivr::actions::{ActionConfig, Executor};
use sspr_ivr::demo::{demo_actions, DemoBackend, DemoOptions};
use sspr_ivr::secret::Secret;
use sspr_ivr::vars::Vars;

/// A server with the awkward behaviours: echo, slow, flaky, not JSON, huge.
async fn awkward_server() -> (SocketAddr, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let router = Router::new()
        .route(
            "/echo/*rest",
            any(
                |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                    let hdrs: BTreeMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect();
                    axum::Json(json!({
                        "method": method.as_str(),
                        "path": uri.path(),
                        "query": uri.query(),
                        "headers": hdrs,
                        "body": String::from_utf8_lossy(&body),
                        "profile": {"mobilePhone": "+1 555-010-0199"},
                        "list": [{"n": 1}, {"n": 2}],
                    }))
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/flaky",
            any(|State(h): State<Arc<AtomicU32>>| async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy".to_string())
                } else {
                    (axum::http::StatusCode::OK, format!("{{\"attempt\": {}}}", n + 1))
                }
            }),
        )
        .route("/notjson", get(|| async { "<html>hello</html>" }))
        .route("/huge", get(|| async { "x".repeat(1024 * 1024) }))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, hits)
}

fn actions(yaml: &str, addr: SocketAddr) -> BTreeMap<String, ActionConfig> {
    serde_yaml::from_str(&yaml.replace("BASE", &format!("http://{addr}"))).unwrap()
}

fn env(var: &str) -> Option<String> {
    (var == "ECHO_TOKEN").then(|| "tok-abc".to_string())
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (cap.clone(), tracing::subscriber::set_default(sub))
}

const ECHO: &str = r#"
url_and_headers:
  method: GET
  url: "BASE/echo/users/{{ id }}?q={{ id }}"
  headers: { X-Caller: "{{ ani }}" }
  auth: { header: Authorization, value_env: ECHO_TOKEN, prefix: "SSWS " }
  outputs: { body: /body, path: /path, query: /query, mobile: "$.profile.mobilePhone", second: "$.list[1].n", auth: /headers/authorization, caller: /headers/x-caller }
  outcomes: [ { status: 200, outcome: success } ]
json_body:
  method: POST
  url: "BASE/echo/x"
  body: { json: { login: "{{ id }}", nested: [ "{{ ani }}", 7, true, null ] } }
  outputs: { body: /body, ctype: /headers/content-type }
  outcomes: [ { status: 200, outcome: success } ]
json_template:
  method: POST
  url: "BASE/echo/x"
  body: { json_template: '{"login": {{ id }}, "n": 1}' }
  outputs: { body: /body }
  outcomes: [ { status: 200, outcome: success } ]
form:
  method: POST
  url: "BASE/echo/x"
  auth: { bearer_env: ECHO_TOKEN }
  body: { form: { To: "{{ mobile | e164 }}", Channel: sms, Weird: "{{ id }}" } }
  outputs: { body: /body, ctype: /headers/content-type, auth: /headers/authorization }
  outcomes: [ { status: 200, outcome: success } ]
insecure_uses_secret:
  method: POST
  url: "BASE/echo/x"
  body: { json: { pin: "{{ new_pin }}" } }
  outcomes: [ { status: 200, outcome: success } ]
secure_uses_secret:
  method: POST
  url: "BASE/echo/pin?pin={{ new_pin }}"
  secure: true
  allow_insecure_http: true
  body: { json: { pin: "{{ new_pin }}" } }
  outputs: { body: /body, query: /query }
  outcomes: [ { status: 200, outcome: success } ]
header_injection:
  url: "BASE/echo/x"
  headers: { X-Caller: "{{ ani }}" }
  outcomes: [ { status: 200, outcome: success } ]
slow:
  url: BASE/slow
  timeout: 200ms
  outcomes: [ { status: 200, outcome: success } ]
flaky_get:
  url: BASE/flaky
  retries: 3
  retry_backoff: 10ms
  outputs: { attempt: /attempt }
  outcomes: [ { status: 200, outcome: success } ]
flaky_post:
  method: POST
  url: BASE/flaky
  outcomes: [ { status: 200, outcome: success }, { status: 503, outcome: busy } ]
flaky_post_idempotent:
  method: POST
  url: BASE/flaky
  retries: 3
  retry_backoff: 10ms
  headers: { Idempotency-Key: "{{ id }}" }
  idempotency_header: Idempotency-Key
  outcomes: [ { status: 200, outcome: success } ]
not_json:
  url: BASE/notjson
  outputs: { x: /x }
  outcomes: [ { status: 200, outcome: success } ]
not_json_no_outputs:
  url: BASE/notjson
  outcomes: [ { status: 200, outcome: success } ]
huge:
  url: BASE/huge
  outcomes: [ { status: 200, outcome: success } ]
"#;

fn vars() -> Vars {
    let mut v = Vars::new();
    v.set_plain("id", "12 34/../&x=\"y\"");
    v.set_plain("ani", "+15550100199");
    v.set_plain("mobile", "+1 (555) 010-0316");
    v.set_secret("new_pin", Secret::new("739164"));
    v
}

#[tokio::test]
async fn escaping_auth_and_outputs() {
    let (addr, _) = awkward_server().await;
    let exec = Executor::with_env(actions(ECHO, addr), env).unwrap();
    let v = vars();

    let r = exec.run("url_and_headers", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.status, Some(200));
    // Caller input cannot climb out of its path segment or add parameters.
    assert_eq!(
        r.outputs.plain("path"),
        Some("/echo/users/12%2034%2F..%2F%26x%3D%22y%22")
    );
    assert_eq!(r.outputs.plain("query"), Some("q=12%2034%2F..%2F%26x%3D%22y%22"));
    assert_eq!(r.outputs.plain("mobile"), Some("+1 555-010-0199"));
    assert_eq!(r.outputs.plain("second"), Some("2"));
    assert_eq!(r.outputs.plain("auth"), Some("SSWS tok-abc"));
    assert_eq!(r.outputs.plain("caller"), Some("+15550100199"));

    let r = exec.run("json_body", &v).await;
    assert_eq!(r.outcome, "success");
    let sent: Json = serde_json::from_str(r.outputs.plain("body").unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"login": "12 34/../&x=\"y\"", "nested": ["+15550100199", 7, true, null]})
    );
    assert_eq!(r.outputs.plain("ctype"), Some("application/json"));

    let r = exec.run("json_template", &v).await;
    let sent: Json = serde_json::from_str(r.outputs.plain("body").unwrap()).unwrap();
    assert_eq!(sent, json!({"login": "12 34/../&x=\"y\"", "n": 1}));

    let r = exec.run("form", &v).await;
    assert_eq!(r.outcome, "success");
    let sent: Vec<(String, String)> =
        serde_urlencoded::from_str(r.outputs.plain("body").unwrap()).unwrap();
    assert!(sent.contains(&("To".into(), "+15550100316".into())));
    assert!(sent.contains(&("Weird".into(), "12 34/../&x=\"y\"".into())));
    assert_eq!(sent.len(), 3, "no field injected by the & in the input");
    assert_eq!(r.outputs.plain("ctype"), Some("application/x-www-form-urlencoded"));
    assert_eq!(r.outputs.plain("auth"), Some("Bearer tok-abc"));
}

#[tokio::test]
async fn secrets_only_in_secure_actions_and_never_logged() {
    let (cap, _guard) = capture_logs();
    let (addr, _) = awkward_server().await;
    let exec = Executor::with_env(actions(ECHO, addr), env).unwrap();
    let mut v = vars();

    let r = exec.run("insecure_uses_secret", &v).await;
    assert_eq!(r.outcome, "error", "a secret must not render into an insecure action");
    assert_eq!(r.status, None, "nothing was sent");

    let r = exec.run("secure_uses_secret", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.outputs.plain("query"), Some("pin=739164"));
    assert!(r.outputs.plain("body").unwrap().contains("739164"));

    // CR/LF from a caller cannot split headers.
    v.set_plain("ani", "1\r\nX-Evil: 1");
    let r = exec.run("header_injection", &v).await;
    assert_eq!(r.outcome, "error");
    assert_eq!(r.status, None);

    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("data action finished"), "logs were captured: {logs}");
    assert!(logs.contains("secure_uses_secret"));
    assert!(!logs.contains("739164"), "PIN in logs:\n{logs}");
    assert!(!logs.contains("tok-abc"), "credential in logs:\n{logs}");
    assert!(!logs.contains("/echo/pin"), "URL of a secure action in logs:\n{logs}");
}

#[tokio::test]
async fn timeouts_retries_and_bad_responses() {
    let (addr, hits) = awkward_server().await;
    let exec = Executor::with_env(actions(ECHO, addr), env).unwrap();
    let v = vars();

    let r = exec.run("slow", &v).await;
    assert_eq!(r.outcome, "timeout");
    assert!(r.latency < Duration::from_secs(2), "{:?}", r.latency);

    // GET is retried through two 503s.
    let r = exec.run("flaky_get", &v).await;
    assert_eq!((r.outcome.as_str(), r.outputs.plain("attempt")), ("success", Some("3")));
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // POST without an idempotency key: exactly one attempt.
    hits.store(0, Ordering::SeqCst);
    let r = exec.run("flaky_post", &v).await;
    assert_eq!(r.outcome, "busy");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // POST with an idempotency key: retried.
    hits.store(0, Ordering::SeqCst);
    let r = exec.run("flaky_post_idempotent", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    assert_eq!(exec.run("not_json", &v).await.outcome, "error");
    assert_eq!(exec.run("not_json_no_outputs", &v).await.outcome, "success");
    assert_eq!(exec.run("huge", &v).await.outcome, "error");
    assert_eq!(exec.run("no_such_action", &v).await.outcome, "error");
}

#[tokio::test]
async fn connection_refused_is_error_and_connect_timeout_is_bounded() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let exec = Executor::with_env(
        actions("a: { url: BASE/x, timeout: 1s, outcomes: [ { status: 200, outcome: success } ] }", addr),
        env,
    )
    .unwrap();
    let r = exec.run("a", &Vars::new()).await;
    assert_eq!((r.outcome.as_str(), r.status), ("error", None));
}

#[tokio::test]
async fn demo_backend_end_to_end() {
    let backend = DemoBackend::start(DemoOptions {
        print_codes: false,
        resend_window: Duration::from_secs(60),
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let exec = Executor::with_env(demo_actions(&backend.base_url()).unwrap(), |_| None).unwrap();
    let mut v = Vars::new();

    for (id, outcome) in [("999999", "not_found"), ("345678", "locked"), ("12/34", "not_found")] {
        v.set_plain("employee_id", id);
        assert_eq!(exec.run("lookup_user", &v).await.outcome, outcome, "{id}");
    }
    v.set_plain("employee_id", "234567");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.outputs.plain("factor"), Some("email"));
    assert!(r.outputs.get("mobile").is_none());

    v.set_plain("employee_id", "123456");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.outputs.plain("mobile"), Some("+1 555-010-0199"));
    assert_eq!(r.outputs.plain("status"), Some("ACTIVE"));
    for (k, val) in r.outputs.iter() {
        v.set(k.clone(), val.clone());
    }
    assert_eq!(v.plain("user_id"), Some("u-123456"));

    // Reset before verifying: refused by the backend (maps to error).
    v.set_secret("new_pin", Secret::new("739164"));
    assert_eq!(exec.run("reset_pin", &v).await.outcome, "error");

    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    assert_eq!(exec.run("send_otp", &v).await.outcome, "rate_limited", "resend window");
    let code = backend.last_code("u-123456").unwrap();
    assert_eq!(code.len(), 6);

    let wrong = if code == "000000" { "000001" } else { "000000" };
    v.set_secret("otp", Secret::new(wrong));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "invalid");
    v.set_secret("otp", Secret::new(code.clone()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
    // A code is single-use.
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "expired");

    for (pin, outcome) in [("111111", "too_simple"), ("123456", "too_simple"), ("250814", "reused"), ("739164", "success")] {
        v.set_secret("new_pin", Secret::new(pin));
        assert_eq!(exec.run("reset_pin", &v).await.outcome, outcome, "{pin}");
    }
    assert_eq!(backend.pin_history("123456").unwrap().last().map(String::as_str), Some("739164"));

    // The backend saw the PIN only on the reset path, in a JSON body.
    let reqs = backend.requests();
    let pin_reqs: Vec<_> = reqs
        .iter()
        .filter(|r| r.body.to_string().contains("739164") || r.path.contains("739164"))
        .collect();
    assert!(pin_reqs.iter().all(|r| r.path == "/users/u-123456/pin" && r.method == "POST"));
    assert_eq!(pin_reqs.len(), 2);
    assert_eq!(pin_reqs[1].body, json!({"pin": "739164"}));
    assert_eq!(reqs[0].path, "/users/999999");
    assert!(reqs.iter().any(|r| r.path == "/users/12%2F34"));
}

#[tokio::test]
async fn demo_otp_limits() {
    let backend = DemoBackend::start(DemoOptions {
        print_codes: false,
        resend_window: Duration::ZERO,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let exec = Executor::with_env(demo_actions(&backend.base_url()).unwrap(), |_| None).unwrap();
    let mut v = Vars::new();
    v.set_plain("user_id", "u-567890");
    v.set_plain("factor", "sms");
    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    let code = backend.last_code("u-567890").unwrap();
    let wrong = if code == "999999" { "999998" } else { "999999" };
    v.set_secret("otp", Secret::new(wrong));
    for _ in 0..5 {
        assert_eq!(exec.run("verify_otp", &v).await.outcome, "invalid");
    }
    v.set_secret("otp", Secret::new(code));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "rate_limited", "6th check");
    // A fresh code resets the count.
    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    v.set_secret("otp", Secret::new(backend.last_code("u-567890").unwrap()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
    // Locked users cannot reset.
    v.set_plain("user_id", "u-345678");
    v.set_secret("new_pin", Secret::new("739164"));
    assert_eq!(exec.run("reset_pin", &v).await.outcome, "locked");
}
