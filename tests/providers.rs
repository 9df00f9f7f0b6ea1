//! The documented provider wirings (docs/providers/*.yaml), loaded as
//! shipped, pointed at loopback servers that speak the providers' shapes,
//! and run through the executor.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use sspr_ivr::actions::{ActionConfig, ActionResult, Executor};
use sspr_ivr::demo::{
    demo_actions, DemoBackend, DemoOptions, OktaOptions, OktaShaped, RecordedRequest,
    TwilioOptions, TwilioVerifyShaped,
};
use sspr_ivr::secret::Secret;
use sspr_ivr::vars::Vars;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    actions: BTreeMap<String, ActionConfig>,
}

/// Load a provider file with base URLs replaced; secure actions may then
/// use plain http because every replacement is a loopback address.
fn load(file: &str, replace: &[(&str, &str)]) -> BTreeMap<String, ActionConfig> {
    let path = format!("{}/docs/providers/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{file} does not mention {from}");
        text = text.replace(from, to);
    }
    let mut f: ProviderFile = serde_yaml::from_str(&text).unwrap();
    for a in f.actions.values_mut() {
        a.allow_insecure_http = a.url.starts_with("http://127.0.0.1:");
    }
    f.actions
}

fn merge(vars: &mut Vars, r: &ActionResult) {
    for (k, v) in r.outputs.iter() {
        vars.set(k.clone(), v.clone());
    }
}

fn other_code(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_string()
}

/// Requests whose path, query or body contain `needle`.
fn carrying<'a>(reqs: &'a [RecordedRequest], needle: &str) -> Vec<&'a RecordedRequest> {
    reqs.iter()
        .filter(|r| {
            r.path.contains(needle)
                || r.query.as_deref().unwrap_or("").contains(needle)
                || r.body.to_string().contains(needle)
        })
        .collect()
}

#[test]
fn every_provider_file_keeps_the_flow_contract() {
    let demo = demo_actions("http://127.0.0.1:1").unwrap();
    for file in [
        "okta.yaml",
        "twilio-verify.yaml",
        "microsoft-graph.yaml",
        "custom-rest.yaml",
    ] {
        let actions = load(file, &[]);
        let env = |_: &str| Some("x".to_string());
        Executor::with_env(actions.clone(), env).unwrap_or_else(|e| panic!("{file}: {e}"));
        for name in ["lookup_user", "send_otp", "verify_otp", "reset_pin"] {
            let mut got = actions[name].info().outcomes;
            let mut want = demo[name].info().outcomes;
            got.sort();
            want.sort();
            assert_eq!(got, want, "{file} {name}");
            assert_eq!(
                actions[name].info().secure,
                demo[name].info().secure,
                "{file} {name}"
            );
            assert!(actions[name].url.starts_with("https://"), "{file} {name}");
        }
        let outputs = actions["lookup_user"].info().outputs;
        for var in ["user_id", "mobile", "factor", "status"] {
            assert!(
                outputs.contains(&var.to_string()),
                "{file} lookup_user lacks {var}"
            );
        }
    }
}

#[tokio::test]
async fn okta_wiring_against_okta_shaped_server() {
    let okta = OktaShaped::start(OktaOptions::default()).await.unwrap();
    let base = okta.base_url();
    let actions = load("okta.yaml", &[("https://example.okta.com", &base)]);
    let token = okta.api_token().to_string();
    let exec = Executor::with_env(actions.clone(), |v| {
        (v == "OKTA_API_TOKEN").then(|| token.clone())
    })
    .unwrap();
    let mut v = Vars::new();

    for (id, outcome) in [("999999", "not_found"), ("345678", "locked")] {
        v.set_plain("employee_id", id);
        assert_eq!(exec.run("lookup_user", &v).await.outcome, outcome, "{id}");
    }
    v.set_plain("employee_id", "234567");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outputs.plain("factor"), Some("email"));

    v.set_plain("employee_id", "123456");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.outputs.plain("user_id"), Some("00u123456demo"));
    assert_eq!(r.outputs.plain("mobile"), Some("+1 555-010-0199"));
    assert_eq!(r.outputs.plain("factor"), Some("sms"));
    assert_eq!(r.outputs.plain("factor_id"), Some("mbl123456demo"));
    merge(&mut v, &r);

    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    assert_eq!(
        exec.run("send_otp", &v).await.outcome,
        "rate_limited",
        "E0000109"
    );
    let code = okta.last_code("00u123456demo").unwrap();
    v.set_secret("otp", Secret::new(other_code(&code)));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "invalid");
    v.set_secret("otp", Secret::new(code.clone()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");

    for (pin, outcome) in [
        ("222222", "too_simple"),
        ("250814", "reused"),
        ("739164", "success"),
    ] {
        v.set_secret("new_pin", Secret::new(pin));
        assert_eq!(exec.run("reset_pin", &v).await.outcome, outcome, "{pin}");
    }
    assert_eq!(
        okta.password_history("123456")
            .unwrap()
            .last()
            .map(String::as_str),
        Some("739164")
    );
    v.set_plain("user_id", "00u345678demo");
    assert_eq!(
        exec.run("reset_pin", &v).await.outcome,
        "locked",
        "E0000069"
    );

    // What Okta received: SSWS on every request; the PIN only in the body of
    // the secure reset call; the code only in the secure verify call.
    let reqs = okta.requests();
    assert!(reqs
        .iter()
        .all(|r| r.header("authorization") == Some(format!("SSWS {token}").as_str())));
    let pin = carrying(&reqs, "739164");
    assert_eq!(pin.len(), 2, "the success and the locked attempt");
    assert_eq!(pin[0].method, "POST");
    assert_eq!(pin[0].path, "/api/v1/users/00u123456demo");
    assert_eq!(
        pin[0].body,
        json!({"credentials": {"password": {"value": "739164"}}})
    );
    let otp = carrying(&reqs, &code);
    assert!(!otp.is_empty());
    assert!(otp.iter().all(|r| r.path
        == "/api/v1/users/00u123456demo/factors/mbl123456demo/verify"
        && r.body == json!({"passCode": code})));

    // A wrong token is refused by Okta (E0000011) and ends in `error`.
    let exec = Executor::with_env(actions, |_| Some("wrong".into())).unwrap();
    v.set_plain("employee_id", "123456");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!((r.outcome.as_str(), r.status), ("error", Some(401)));
}

#[tokio::test]
async fn twilio_verify_wiring_against_twilio_shaped_server() {
    let twilio = TwilioVerifyShaped::start(TwilioOptions::default())
        .await
        .unwrap();
    let dir = DemoBackend::start(DemoOptions {
        print_codes: false,
        require_verified_code: false,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let opts = twilio.options().clone();
    let actions = load(
        "twilio-verify.yaml",
        &[
            ("https://verify.twilio.com", &twilio.base_url()),
            ("https://directory.example.com", &dir.base_url()),
            ("VAxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &opts.service_sid),
        ],
    );
    let (sid, token) = (opts.account_sid.clone(), opts.auth_token.clone());
    let exec = Executor::with_env(actions, |v| match v {
        "TWILIO_ACCOUNT_SID" => Some(sid.clone()),
        "TWILIO_AUTH_TOKEN" => Some(token.clone()),
        "DIRECTORY_TOKEN" => Some("dir-token".into()),
        _ => None,
    })
    .unwrap();

    // The user whose number was typed with brackets.
    let mut v = Vars::new();
    v.set_plain("employee_id", "456789");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outcome, "success");
    assert_eq!(r.outputs.plain("mobile"), Some("+1 (555) 010-0316"));
    merge(&mut v, &r);
    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    let sent = &twilio.requests()[0];
    assert_eq!(
        sent.path,
        format!("/v2/Services/{}/Verifications", opts.service_sid)
    );
    assert_eq!(sent.body, json!({"To": "+15550100316", "Channel": "sms"}));
    assert!(sent
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert!(sent.header("authorization").unwrap().starts_with("Basic "));

    let code = twilio.last_code("+15550100316").unwrap();
    v.set_secret("otp", Secret::new(other_code(&code)));
    assert_eq!(
        exec.run("verify_otp", &v).await.outcome,
        "invalid",
        "200 pending"
    );
    v.set_secret("otp", Secret::new(code.clone()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
    assert_eq!(
        exec.run("verify_otp", &v).await.outcome,
        "expired",
        "404 once approved"
    );
    v.set_secret("new_pin", Secret::new("905172"));
    assert_eq!(exec.run("reset_pin", &v).await.outcome, "success");

    // The UK user: five wrong checks, then 429 (60202).
    let mut uk = Vars::new();
    uk.set_plain("employee_id", "567890");
    let r = exec.run("lookup_user", &uk).await;
    merge(&mut uk, &r);
    assert_eq!(exec.run("send_otp", &uk).await.outcome, "success");
    let code_uk = twilio.last_code("+447700900123").unwrap();
    uk.set_secret("otp", Secret::new(other_code(&code_uk)));
    for _ in 0..5 {
        assert_eq!(exec.run("verify_otp", &uk).await.outcome, "invalid");
    }
    uk.set_secret("otp", Secret::new(code_uk));
    assert_eq!(exec.run("verify_otp", &uk).await.outcome, "rate_limited");

    // The email-factor user gets the email channel.
    let mut em = Vars::new();
    em.set_plain("employee_id", "234567");
    let r = exec.run("lookup_user", &em).await;
    merge(&mut em, &r);
    assert_eq!(exec.run("send_otp", &em).await.outcome, "success");
    let last = twilio.requests().last().cloned().unwrap();
    assert_eq!(
        last.body,
        json!({"To": "blake.example@example.com", "Channel": "email"})
    );

    // Codes reached Twilio only in VerificationCheck; the PIN only the directory.
    let reqs = twilio.requests();
    for r in carrying(&reqs, &code) {
        assert!(r.path.ends_with("/VerificationCheck"), "{}", r.path);
    }
    assert!(carrying(&reqs, "905172").is_empty());
    let dreqs = dir.requests();
    let pin = carrying(&dreqs, "905172");
    assert_eq!(pin.len(), 1);
    assert_eq!(pin[0].path, "/users/u-456789/pin");
    assert_eq!(pin[0].header("authorization"), Some("Bearer dir-token"));
}

#[tokio::test]
async fn custom_rest_wiring_against_demo_backend() {
    let dir = DemoBackend::start(DemoOptions {
        print_codes: false,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let actions = load(
        "custom-rest.yaml",
        &[("https://directory.example.com", &dir.base_url())],
    );
    let exec = Executor::with_env(actions, |_| Some("dir-token".into())).unwrap();
    let mut v = Vars::new();
    v.set_plain("employee_id", "123456");
    let r = exec.run("lookup_user", &v).await;
    assert_eq!(r.outcome, "success");
    merge(&mut v, &r);
    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    v.set_secret("otp", Secret::new(dir.last_code("u-123456").unwrap()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
    v.set_secret("new_pin", Secret::new("739164"));
    assert_eq!(exec.run("reset_pin", &v).await.outcome, "success");
    assert!(dir
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer dir-token")));
}

/// `POST /demo/reset` (what `tests/sipp/run.sh` calls before every scenario):
/// after a complete reset through the actions, the directory, the codes, the
/// audit and the request log are as at start-up, the hooks ran (`demo` clears
/// the IVR's attempt limits there), and the same PIN can be set again.
#[tokio::test]
async fn demo_reset_puts_everything_back_as_at_start() {
    let dir = DemoBackend::start(DemoOptions {
        print_codes: false,
        resend_window: std::time::Duration::ZERO,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let hooks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hooks.clone();
    dir.on_reset(move || {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let actions = load(
        "custom-rest.yaml",
        &[("https://directory.example.com", &dir.base_url())],
    );
    let exec = Executor::with_env(actions, |_| Some("dir-token".into())).unwrap();
    let reset_once = |pin: &'static str| {
        let (exec, dir) = (&exec, &dir);
        async move {
            let mut v = Vars::new();
            v.set_plain("employee_id", "123456");
            let r = exec.run("lookup_user", &v).await;
            merge(&mut v, &r);
            assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
            v.set_secret("otp", Secret::new(dir.last_code("u-123456").unwrap()));
            assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
            v.set_secret("new_pin", Secret::new(pin));
            exec.run("reset_pin", &v).await.outcome
        }
    };
    assert_eq!(reset_once("739164").await, "success");
    assert_eq!(reset_once("739164").await, "reused", "the demo keeps state");
    let http = reqwest::Client::new();
    let post = |path: &str| http.post(format!("{}{path}", dir.base_url())).send();
    let answer: serde_json::Value = post("/demo/reset").await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({ "reset": true, "users": 5 }));
    assert_eq!(hooks.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(dir.pin_history("123456").unwrap(), ["250814"]);
    assert!(dir.sent_codes().is_empty());
    assert!(dir.audit_records().is_empty());
    assert!(
        dir.requests().iter().all(|r| r.path == "/demo/reset"),
        "{:?}",
        dir.requests()
    );
    // The PIN is new again.
    assert_eq!(reset_once("739164").await, "success");
}
