//! `sip.registrations` (and, later, the other trunk keys) as an operator writes them:
//! what loads, and what is refused with the key that holds the mistake.

mod common;

use common::*;
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
