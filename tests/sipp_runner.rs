//! `tests/sipp/run.sh`, the scenario runner, as a tester uses it: it judges the
//! outcome a scenario declares (not sipp's exit status), and it refuses to run
//! against a demo whose state it could not reset. The real binary, real sipp
//! calls, the real demo backend; every wait is bounded (sipp 150 s, the runner's
//! own waits 20 s).

mod common;

use common::*;

use std::process::Command;
use std::time::Duration;

/// `run.sh ARGS` with `env`; (exit code, stdout + stderr).
fn runner(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = Command::new(repo().join("tests/sipp/run.sh"));
    cmd.args(args)
        .env("SSPR_IVR", BIN)
        .env_remove("DEMO_SIP")
        .env_remove("DEMO_BACKEND")
        .envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tests/sipp/run.sh (needs python3)");
    let end = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run.sh {args:?} did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_runner_passes_the_happy_path_and_fails_an_outcome_that_differs() {
    // The locked-account caller, declared as if it should have reset a PIN:
    // sipp itself passes (the call goes as scripted), the runner must not.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("sspr_locked_wrong.xml");
    let text = read_to_string(&repo().join("tests/sipp/sspr_locked.xml"));
    assert!(text.contains("expect audit: failure account_locked"));
    std::fs::write(
        &wrong,
        text.replace(
            "expect audit: failure account_locked",
            "expect audit: success pin_reset",
        ),
    )
    .unwrap();
    let wrong = wrong.display().to_string();
    let (happy, failing) = std::thread::scope(|s| {
        let happy = s.spawn(|| runner(&["sspr_happy_rfc4733.xml"], &[]));
        let failing = s.spawn(|| runner(&[&wrong], &[]));
        (happy.join().unwrap(), failing.join().unwrap())
    });
    assert_eq!(happy.0, 0, "{}", happy.1);
    assert!(
        happy
            .1
            .contains("PASS sspr_happy_rfc4733.xml: audit: success pin_reset"),
        "{}",
        happy.1
    );
    assert_eq!(failing.0, 1, "{}", failing.1);
    assert!(
        failing.1.contains(
            "FAIL sspr_locked_wrong.xml: want audit success pin_reset, got failure account_locked"
        ),
        "{}",
        failing.1
    );
}

/// The README's story: the happy caller twice against one running demo. Without
/// the reset the second run sets a PIN already used (`reused`); with it, both pass.
/// A demo the runner cannot reset is refused with exit 3 before any call.
#[test]
fn the_runner_resets_a_running_demo_and_refuses_one_it_cannot_reset() {
    let server = Server::demo(&["--fixed-otp", "246810"]);
    let env = [
        ("DEMO_SIP", server.sip.to_string()),
        ("DEMO_BACKEND", format!("http://{}", server.backend)),
    ];
    for run in 1..=2 {
        let (code, out) = runner(&["sspr_happy_rfc4733.xml"], &env);
        assert_eq!(
            code,
            0,
            "run {run}: {out}\nserver:\n{}",
            server.output_text()
        );
    }
    let nobody = [
        ("DEMO_SIP", server.sip.to_string()),
        ("DEMO_BACKEND", format!("http://127.0.0.1:{}", free_port())),
    ];
    let (code, out) = runner(&["sspr_happy_rfc4733.xml"], &nobody);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("NOT RESET sspr_happy_rfc4733.xml"), "{out}");
    // No call was made: the demo saw exactly the two runs' INVITEs.
    assert_eq!(
        server.output_text().matches("call answered").count(),
        2,
        "{}",
        server.output_text()
    );
}
