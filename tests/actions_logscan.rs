//! A whole reset through the demo backend with every log line of every
//! crate captured at TRACE (tracing and the `log` facade, which reqwest
//! uses): no PIN, no code, no credential, no URL of a secure action.
//! One test per binary because the subscriber is global.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sspr_ivr::actions::{AuthConfig, Executor};
use sspr_ivr::demo::{demo_actions, DemoBackend, DemoOptions};
use sspr_ivr::secret::Secret;
use sspr_ivr::vars::Vars;
use tracing_subscriber::util::SubscriberInitExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_log_line() {
    let cap = Capture::default();
    let writer = cap.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
        .try_init()
        .expect("global subscriber (and log bridge) installed");

    let backend = DemoBackend::start(DemoOptions {
        print_codes: false,
        sms_delay: Duration::ZERO,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let mut actions = demo_actions(&backend.base_url()).unwrap();
    // Put the PIN in a secure action's query string too.
    let reset = actions.get_mut("reset_pin").unwrap();
    reset.url.push_str("?pin={{ new_pin }}");
    // And a credential on the lookup.
    actions.get_mut("lookup_user").unwrap().auth = Some(AuthConfig {
        bearer_env: Some("DEMO_TOKEN".into()),
        ..AuthConfig::default()
    });
    // An insecure action that tries to read the PIN.
    let mut leaky = actions["send_otp"].clone();
    leaky.body = None;
    leaky.url.push_str("?pin={{ new_pin }}");
    actions.insert("leaky".into(), leaky);
    let exec = Executor::with_env(actions, |v| {
        (v == "DEMO_TOKEN").then(|| "tok-very-secret".to_string())
    })
    .unwrap();

    let mut v = Vars::new();
    v.set_plain("employee_id", "456789");
    let r = exec.run("lookup_user", &v).await;
    for (k, val) in r.outputs.iter() {
        v.set(k.clone(), val.clone());
    }
    assert_eq!(exec.run("send_otp", &v).await.outcome, "success");
    let code = backend.last_code("u-456789").unwrap();
    v.set_secret("otp", Secret::new(code.clone()));
    assert_eq!(exec.run("verify_otp", &v).await.outcome, "success");
    v.set_secret("new_pin", Secret::new("864209"));
    assert_eq!(exec.run("reset_pin", &v).await.outcome, "success");
    assert_eq!(exec.run("leaky", &v).await.outcome, "error");
    assert_eq!(
        backend.requests()[0].header("authorization"),
        Some("Bearer tok-very-secret")
    );

    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("data action finished"), "capture works");
    assert!(logs.contains("reset_pin"));
    assert!(
        logs.contains("starting new connection"),
        "reqwest's `log` records are captured too:\n{logs}"
    );
    assert!(logs.contains("leaky"));
    for needle in [
        "864209",
        code.as_str(),
        "/pin",
        "/otp/verify",
        "tok-very-secret",
    ] {
        assert!(!logs.contains(needle), "{needle:?} found in logs:\n{logs}");
    }
}
