//! The trunk keys (`sip.registrations`, `sip.trusted_peers`, `sip.untrusted_requests`,
//! `security.withheld_callers`, `routes.withheld`) as an operator writes them: what
//! loads, and what is refused with the key that holds the mistake.

mod common;

use common::*;
use sspr_ivr::caller::{UntrustedAnswer, WithheldPolicy};
use sspr_ivr::config::Config;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn load(sip_extra: &str) -> Result<Config, String> {
    let text = format!(
        "sip:\n  listen: 127.0.0.1:5060\n{sip_extra}\
         flows: {{ echo: flows/echo.yaml }}\nroutes: {{ default: echo }}\n\
         audit: {{ action: null }}\n"
    );
    Config::from_yaml(&text, Path::new("/etc/sspr-ivr/config.yaml")).map_err(|e| e.to_string())
}

const ONE: &str =
    "  registrations:\n    - name: carrier1\n      registrar: sip:sip.carrier.example\n      \
                   aor: sip:+15550100@sip.carrier.example\n      password_env: CARRIER1_PASSWORD\n";

#[test]
fn a_registration_loads_with_its_defaults() {
    let cfg = load(ONE).unwrap();
    let r = &cfg.sip.registrations[0];
    assert_eq!(r.name, "carrier1");
    assert_eq!(r.expires, Duration::from_secs(3600));
    assert_eq!(
        (r.retry_min, r.retry_max),
        (Duration::from_secs(5), Duration::from_secs(300))
    );
    assert!(r.required);
    assert_eq!((r.contact.as_deref(), r.username.as_deref()), (None, None));
    assert!(
        load("").unwrap().sip.registrations.is_empty(),
        "none by default"
    );
}

#[test]
fn mistakes_are_named_by_key() {
    let cases = [
        (
            format!("{ONE}      pasword: hunter2\n"),
            "unknown field `pasword`",
        ),
        (
            ONE.replace("carrier1", "carrier one"),
            "sip.registrations[0].name",
        ),
        (
            format!("{ONE}{}", ONE.replace("  registrations:\n", "")),
            "`carrier1` is used twice",
        ),
        (
            ONE.replace("aor: sip:+15550100@", "aor: sip:"),
            "sip.registrations[0].aor",
        ),
        (
            ONE.replace("registrar: sip:", "registrar: http://"),
            "sip.registrations[0].registrar",
        ),
        (
            format!("{ONE}      expires: 5s\n"),
            "sip.registrations[0].expires",
        ),
        (format!("{ONE}      expires: 3600\n"), "needs a unit"),
        (
            format!("{ONE}      retry_min: 10m\n"),
            "retry_max at least retry_min",
        ),
        (
            ONE.replace("      password_env: CARRIER1_PASSWORD\n", ""),
            "missing field `password_env`",
        ),
    ];
    for (yaml, want) in cases {
        let err = load(&yaml).expect_err(&yaml);
        assert!(err.contains(want), "{want:?} not in {err:?}");
        assert!(err.contains("/etc/sspr-ivr/config.yaml"), "{err}");
    }
}

/// The password lives in the environment: `serve` without it stops at once and
/// names the variable (and `check` is content with the file alone).
#[test]
fn serve_without_the_password_variable_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text =
        format!(
        "sip:\n  listen: 127.0.0.1:{}\n{}media: {{ rtp_port_min: 55000, rtp_port_max: 55098 }}\n\
         prompts: {{ dir: {} }}\nflows: {{ echo: {} }}\nroutes: {{ default: echo }}\n\
         admin: {{ enabled: false }}\nactions: {{}}\naudit: {{ action: null, spool_dir: spool }}\n",
        free_port(),
        ONE.replace("registrar: sip:sip.carrier.example", "registrar: sip:127.0.0.1:9"),
        repo().join("prompts").display(),
        repo().join("flows/echo.yaml").display(),
    );
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", &path.display().to_string()])
        .env_remove("CARRIER1_PASSWORD");
    let (ok, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(!ok, "serve must not start:\n{out}{err}");
    assert!(
        err.contains("sip.registrations `carrier1`: the environment variable CARRIER1_PASSWORD"),
        "{err}"
    );
}

#[test]
fn trusted_peers_and_the_withheld_policy_load_and_bad_values_are_named() {
    let cfg = load("").unwrap();
    let anyone = "203.0.113.9".parse().unwrap();
    assert!(
        cfg.sip.trusted_peers.admits(anyone),
        "no list: anybody may call"
    );
    assert!(!cfg.sip.trusted_peers.lists(anyone), "… and nobody asserts");
    assert_eq!(cfg.sip.untrusted_requests, UntrustedAnswer::Reject);
    assert_eq!(cfg.security.withheld_callers, WithheldPolicy::PerCall);
    assert_eq!(cfg.routes.withheld, None);

    let cfg = load(
        "  trusted_peers: [192.0.2.10, 10.20.0.0/16]\n  untrusted_requests: drop\n\
         security: { withheld_callers: shared }\n",
    )
    .unwrap();
    assert!(cfg.sip.trusted_peers.lists("10.20.3.4".parse().unwrap()));
    assert!(!cfg.sip.trusted_peers.admits(anyone));
    assert_eq!(cfg.sip.untrusted_requests, UntrustedAnswer::Drop);
    assert_eq!(cfg.security.withheld_callers, WithheldPolicy::Shared);

    for (extra, want) in [
        (
            "  trusted_peers: [192.0.2.10, sbc.example.net]\n",
            "\"sbc.example.net\" is not an IP address or a network",
        ),
        ("  trusted_peers: [10.0.0.0/40]\n", "not an IP address"),
        ("  untrusted_requests: ignore\n", "unknown variant `ignore`"),
        (
            "security: { withheld_callers: agent }\n",
            "unknown variant `agent`",
        ),
    ] {
        let err = load(extra).expect_err(extra);
        assert!(err.contains(want), "{want:?} not in {err:?}");
        assert!(err.contains("/etc/sspr-ivr/config.yaml:"), "{err}");
    }
    let text = "sip:\n  listen: 127.0.0.1:5060\nflows: { echo: flows/echo.yaml }\n\
                routes: { default: echo, withheld: agent }\naudit: { action: null }\n";
    let err = Config::from_yaml(text, Path::new("/etc/sspr-ivr/config.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes.withheld: flow `agent` is not listed under `flows`"),
        "{err}"
    );
}

/// `routes.withheld` sends a caller with no number to its flow whatever they
/// dialled; everybody else is routed as before.
#[test]
fn withheld_callers_take_their_own_route() {
    let r = repo();
    let text = format!(
        "prompts: {{ dir: {} }}\nflows: {{ echo: {}, agent_only: {} }}\n\
         routes: {{ default: echo, by_user: {{ reset: echo }}, withheld: agent_only }}\n\
         audit: {{ action: null }}\n",
        r.join("prompts").display(),
        r.join("flows/echo.yaml").display(),
        r.join("flows/echo.yaml").display(),
    );
    let cfg = Config::from_yaml(&text, &r.join("config.yaml")).unwrap();
    let loaded = sspr_ivr::config::Loaded::from_config(cfg).unwrap();
    assert_eq!(loaded.route("reset", false).0, "echo");
    assert_eq!(loaded.route("anything", false).0, "echo");
    assert_eq!(loaded.route("reset", true).0, "agent_only");
    assert_eq!(loaded.route("anything", true).0, "agent_only");
}
