//! One duration grammar: the server config, a data action and a flow accept the same
//! strings, refuse the same strings with the same words, and keep the YAML location.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sspr_ivr::actions::ActionConfig;
use sspr_ivr::config::Config;
use sspr_ivr::flow::model::{self, Kind, PlayItem};

fn config(d: &str) -> Result<Duration, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config.example.yaml")).unwrap();
    let drain = "drain:\n  # After SIGTERM, live calls may continue this long; then they get BYE.\n  timeout: 60s\n";
    assert!(
        example.contains(drain),
        "config.example.yaml changed its drain section"
    );
    let yaml = example.replace(drain, &format!("drain:\n  timeout: {d}\n"));
    Config::from_yaml(&yaml, &root.join("config.example.yaml"))
        .map(|c| c.drain.timeout)
        .map_err(|e| e.to_string())
}

fn action(d: &str) -> Result<Duration, String> {
    let yaml = format!("lookup:\n  url: https://idp.example.com/\n  timeout: {d}\n");
    serde_yaml::from_str::<BTreeMap<String, ActionConfig>>(&yaml)
        .map(|m| m["lookup"].timeout)
        .map_err(|e| e.to_string())
}

fn flow(d: &str) -> Result<Duration, String> {
    let yaml = format!(
        "flow: t\nversion: '1'\nstart: a\nstates:\n  a:\n    play: [{{ silence: {d} }}]\n    next: b\n  b: {{ hangup: {{}} }}\n"
    );
    let f = model::parse(&yaml, Path::new("t.yaml")).map_err(|e| e.to_string())?;
    match &f.states["a"].kind {
        Kind::Play { items, .. } => match items.first() {
            Some(PlayItem::Silence(d)) => Ok(*d),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_actions_and_flows_read_durations_alike() {
    for (text, want) in [
        ("250ms", Duration::from_millis(250)),
        ("1.5s", Duration::from_millis(1500)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("1h 30m", Duration::from_secs(5400)),
    ] {
        assert_eq!(config(text), Ok(want), "config {text}");
        assert_eq!(action(text), Ok(want), "action {text}");
        assert_eq!(flow(text), Ok(want), "flow {text}");
    }
    for (text, words) in [
        ("5", "duration \"5\" needs a unit"),
        ("5 parsecs", "unknown time unit \"parsecs\""),
        ("400d", "longer than 365 days"),
    ] {
        for (kind, result) in [
            ("config", config(text)),
            ("action", action(text)),
            ("flow", flow(text)),
        ] {
            let err = result.expect_err(text);
            assert!(err.contains(words), "{kind} {text}: {err}");
            if kind == "config" {
                // `file:line:column: key: message`, the location said once.
                assert!(
                    err.contains("config.example.yaml:") && err.contains(": drain.timeout: "),
                    "{kind} {text}: no location or key in {err}"
                );
                assert!(!err.contains(" at line "), "location twice: {err}");
            } else {
                assert!(
                    err.contains("line ") && err.contains("column "),
                    "{kind} {text}: no location in {err}"
                );
            }
        }
    }
}
