//! SIGHUP / SIGTERM / SIGINT delivered to this test process arrive as `Signal`s.
//!
//! One test per binary: installing the handlers changes process-wide signal dispositions.

use std::time::Duration;

use sspr_ivr::ops::shutdown::{Signal, Signals};

fn kill(sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn unix_signals_map_to_terminate_and_reload() {
    let mut signals = Signals::new().expect("install handlers");
    for (sig, want) in [
        ("-HUP", Signal::Reload),
        ("-TERM", Signal::Terminate),
        ("-HUP", Signal::Reload),
        ("-INT", Signal::Terminate),
    ] {
        kill(sig);
        let got = tokio::time::timeout(Duration::from_secs(5), signals.recv())
            .await
            .expect("signal within 5 s");
        assert_eq!(got, Some(want), "{sig}");
    }
}
