//! `sspr-ivr load` (the load caller, BENCHMARKS.md §9) against the real demo server, small:
//! five calls that stream audio, press `100100#` and must each hear the readback, with the
//! server's CPU and RSS read from /proc; and the same caller told to expect a readback the
//! server does not say, which must fail every call. Bounded: a few calls, a 45 s run limit.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn load(server: &Server, extra: &[&str]) -> (bool, String, String) {
    let pid = server.child.id().to_string();
    let uri = server.uri("echo");
    let mut args = vec![
        "load",
        &uri,
        "--rate",
        "10",
        "--first-key-ms",
        "1500",
        "--call-timeout",
        "30",
        "--timeout",
        "45",
        "--server-pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    run_with_timeout(Command::new(BIN).args(&args), Duration::from_secs(60))
}

#[test]
fn five_calls_stream_press_keys_and_each_hears_its_readback() {
    let server = Server::demo(&[]);
    let (ok, out, err) = load(&server, &["--calls", "5"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("calls: placed 5, ok 5 "), "{out}");
    assert!(out.contains("failed 0"), "{out}");
    assert!(out.contains("server: CPU"), "{out}");
    assert!(out.contains("% within 18-22 ms"), "{out}");
    // The server heard every key of every call (7 × 5), by RFC 4733.
    let (_, metrics) = http_get_text(server.admin, "/metrics");
    let digits: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sspr_ivr_dtmf_digits_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(digits, 35.0, "{metrics}");

    // A readback the server does not say fails every call, and the exit code says so.
    let (ok, out, _) = load(
        &server,
        &[
            "--calls",
            "2",
            "--expect",
            "echo_intro,you_entered,digit_9,goodbye",
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("ok 0 "), "{out}");
    assert!(out.contains("\"readback\""), "{out}");
}
