//! `sspr-ivr check`, the real binary: exit status 0 / 1 and the messages an
//! operator needs (file:line:column, the unknown key, the state path and a
//! "did you mean" hint); unknown keys are rejected in every table of the
//! shipped configuration and flows; the configuration the .deb installs
//! passes `check` against the packaged flows and prompts.

mod common;

use common::*;
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn check(config: &Path) -> (bool, String) {
    let (ok, out, err) = run_with_timeout(
        Command::new(BIN).arg("check").arg("--config").arg(config),
        Duration::from_secs(60),
    );
    (ok, format!("{out}{err}"))
}

/// A small valid config in `dir` routing everything to a copy of the echo flow.
fn echo_config(dir: &Path) -> PathBuf {
    std::fs::copy(repo().join("flows/echo.yaml"), dir.join("echo.yaml")).expect("copy flow");
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "flows: {{ echo: echo.yaml }}\n\
             routes: {{ default: echo }}\n\
             prompts: {{ dir: {} }}\n\
             actions: {{}}\n\
             audit: {{ action: null, spool_dir: spool }}\n",
            repo().join("prompts").display()
        ),
    )
    .expect("write config");
    path
}

#[test]
fn example_config_passes() {
    let (ok, out) = check(&repo().join("config.example.yaml"));
    assert!(ok, "{out}");
    assert!(out.contains("ok (2 flows"), "{out}");
}

#[test]
fn small_echo_config_passes_and_nothing_is_started_or_created() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let (ok, out) = check(&cfg);
    assert!(ok, "{out}");
    assert!(
        !dir.path().join("spool").exists(),
        "check must not create the audit spool"
    );
}

#[test]
fn broken_yaml_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // Line 6: an unterminated flow mapping.
    text.push_str("limits: { max_calls: 3\n");
    std::fs::write(&cfg, text).unwrap();
    let (ok, out) = check(&cfg);
    assert!(!ok, "broken YAML passed: {out}");
    let want = format!("{}:", cfg.display());
    let pos = out
        .find(&want)
        .unwrap_or_else(|| panic!("no file name: {out}"));
    let rest = &out[pos + want.len()..];
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next().unwrap().parse().expect("line number");
    let column: usize = parts.next().unwrap().parse().expect("column number");
    assert!(line >= 6, "line {line}: {out}");
    assert!(column >= 1, "{out}");
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("drain: { timout: 5s }\n");
    std::fs::write(&cfg, text).unwrap();
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(out.contains("unknown field `timout`"), "{out}");
    assert!(out.contains(&format!("{}:6:", cfg.display())), "{out}");
}

#[test]
fn unknown_state_gives_path_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let flow = dir.path().join("echo.yaml");
    let text = std::fs::read_to_string(&flow).unwrap();
    std::fs::write(&flow, text.replace("next: read_back", "next: read_bak")).unwrap();
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(out.contains("echo.yaml"), "{out}");
    assert!(out.contains("states.get_digits.next"), "{out}");
    assert!(out.contains("unknown state `read_bak`"), "{out}");
    assert!(out.contains("did you mean `read_back`?"), "{out}");
}

#[test]
fn missing_prompt_and_missing_config_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let flow = dir.path().join("echo.yaml");
    let text = std::fs::read_to_string(&flow).unwrap();
    std::fs::write(&flow, text.replace("[goodbye]", "[good_bye]")).unwrap();
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(out.contains("good_bye"), "{out}");

    let (ok, out) = check(&dir.path().join("nope.yaml"));
    assert!(!ok, "{out}");
    assert!(out.contains("nope.yaml"), "{out}");
}

/// Every mapping in `v`, by path (`a.b.0.c`).
fn mappings(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            out.push(path.to_string());
            for (k, child) in m {
                let key = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| serde_yaml::to_string(k).unwrap().trim().to_string());
                let p = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                mappings(child, &p, out);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                mappings(child, &format!("{path}.{i}"), out);
            }
        }
        Value::Tagged(t) => mappings(&t.value, path, out),
        _ => {}
    }
}

fn with_spurious_key(v: &Value, path: &str) -> Value {
    let mut v = v.clone();
    let mut cur = &mut v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Mapping(m) => m.get_mut(seg).expect("path"),
            Value::Sequence(s) => &mut s[seg.parse::<usize>().expect("index")],
            _ => unreachable!("path through a scalar"),
        };
    }
    let m: &mut Mapping = cur.as_mapping_mut().expect("a mapping");
    m.insert(Value::from("spurious_key"), Value::from(1));
    v
}

/// Segment-wise match with `*` for any one segment and a trailing `**` for
/// any depth.
fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = path.split('.').collect();
    for (i, seg) in p.iter().enumerate() {
        if *seg == "**" {
            return true;
        }
        match s.get(i) {
            Some(x) if *seg == "*" || seg == x => {}
            _ => return false,
        }
    }
    p.len() == s.len()
}

/// Adds `spurious_key: 1` to every mapping of `file` in turn and asserts
/// that `load` rejects it, naming the key, except for maps whose keys are data.
fn every_table_rejects_spurious_key(
    file: &Path,
    data_maps: &[&str],
    load: impl Fn(&str) -> Result<(), String>,
) {
    let text = std::fs::read_to_string(file).unwrap();
    load(&text).unwrap_or_else(|e| panic!("{} itself fails: {e}", file.display()));
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let mut paths = Vec::new();
    mappings(&doc, "", &mut paths);
    let mut tried = 0;
    let mut failures = Vec::new();
    for path in &paths {
        if data_maps.iter().any(|p| path_matches(p, path)) {
            continue;
        }
        tried += 1;
        let changed = serde_yaml::to_string(&with_spurious_key(&doc, path)).unwrap();
        match load(&changed) {
            Ok(()) => failures.push(format!("`{path}` accepted spurious_key")),
            Err(e) if !e.contains("spurious_key") => {
                failures.push(format!("`{path}` rejected without naming the key: {e}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        file.display(),
        failures.join("\n")
    );
    assert!(
        tried >= 5,
        "only {tried} tables tried in {}",
        file.display()
    );
}

#[test]
fn every_config_table_rejects_unknown_keys() {
    let file = repo().join("config.example.yaml");
    // Maps whose keys are names chosen by the operator, not schema keys:
    let data_maps = [
        "flows",                  // flow name -> file
        "routes.by_user",         // Request-URI user -> flow
        "transfer.targets",       // target name -> URI
        "variables",              // variable name -> value
        "actions",                // action name -> action
        "actions.*.headers",      // HTTP header name -> template
        "actions.*.outputs",      // variable name -> JSON pointer
        "actions.*.defaults",     // variable name -> default
        "actions.*.body.json.**", // the JSON body sent, verbatim
        "actions.*.body.form",    // form field name -> template
    ];
    every_table_rejects_spurious_key(&file, &data_maps, |text| {
        sspr_ivr::config::Config::from_yaml(text, &file)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn every_flow_table_rejects_unknown_keys() {
    // Maps whose keys are names chosen by the flow author:
    let data_maps = [
        "variables",                     // variable name -> default
        "states",                        // state name -> state
        "states.*.on",                   // action outcome -> state
        "states.*.menu.options",         // key -> state
        "states.*.comfort_loop.options", // key -> state
        "states.*.set.vars",             // variable name -> template
    ];
    for name in ["flows/sspr.yaml", "flows/echo.yaml"] {
        let file = repo().join(name);
        every_table_rejects_spurious_key(&file, &data_maps, |text| {
            sspr_ivr::flow::model::parse(text, &file)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }
}

/// The layout the .deb installs: `/etc/sspr-ivr/config.yaml` must find the
/// packaged flows and prompts. Stages the package tree with
/// `deploy/build-deb.sh` (STAGE_DIR: no dpkg-deb needed), re-roots the
/// absolute paths of the staged config into the stage, and runs `check`.
#[test]
fn packaged_config_checks_against_packaged_flows_and_prompts() {
    let stage = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_with_timeout(
        Command::new("sh")
            .arg(repo().join("deploy/build-deb.sh"))
            .env("SSPR_IVR_BIN", BIN)
            .env("STAGE_DIR", stage.path())
            .env("STRIP", "0"),
        Duration::from_secs(120),
    );
    assert!(ok, "staging failed:\n{out}{err}");
    let s = stage.path();
    let etc = s.join("etc/sspr-ivr/config.yaml");
    let text = std::fs::read_to_string(&etc).expect("staged config");
    for want in [
        "/usr/share/sspr-ivr/flows/sspr.yaml",
        "/usr/share/sspr-ivr/flows/echo.yaml",
        "dir: /usr/share/sspr-ivr/prompts",
        "spool_dir: /var/lib/sspr-ivr/audit",
        "dir: /var/lib/sspr-ivr/recordings",
    ] {
        assert!(text.contains(want), "staged config lacks `{want}`:\n{text}");
    }
    // deploy/config.yaml (the asset for `cargo deb`) is the same file.
    let committed = std::fs::read_to_string(repo().join("deploy/config.yaml")).unwrap();
    assert!(
        committed == text,
        "deploy/config.yaml is stale: run `deploy/build-deb.sh --print-config > deploy/config.yaml`"
    );
    // Everything else is the example config, comments included.
    let example = std::fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    assert_eq!(text.lines().count(), example.lines().count());

    let rerooted = text
        .replace(
            "/usr/share/sspr-ivr",
            &s.join("usr/share/sspr-ivr").display().to_string(),
        )
        .replace(
            "/var/lib/sspr-ivr",
            &s.join("var/lib/sspr-ivr").display().to_string(),
        );
    let cfg = s.join("etc/sspr-ivr/rerooted.yaml");
    std::fs::write(&cfg, rerooted).unwrap();
    let (ok, out) = check(&cfg);
    assert!(ok, "{out}");
    assert!(out.contains("ok (2 flows"), "{out}");

    // And the unmodified example, installed as-is, would not have worked:
    // its relative paths resolve under /etc/sspr-ivr.
    let naive = s.join("etc/sspr-ivr/naive.yaml");
    std::fs::write(&naive, &example).unwrap();
    let (ok, out) = check(&naive);
    assert!(!ok, "{out}");
}

/// `serve` refuses to start on an invalid configuration: exit 1 with the
/// same message as `check` (systemd then reports the failed start).
#[test]
fn serve_refuses_an_invalid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = echo_config(dir.path());
    let flow = dir.path().join("echo.yaml");
    let text = std::fs::read_to_string(&flow).unwrap();
    std::fs::write(&flow, text.replace("next: read_back", "next: read_bak")).unwrap();
    let (ok, out, err) = run_with_timeout(
        Command::new(BIN).arg("serve").arg("--config").arg(&cfg),
        Duration::from_secs(30),
    );
    assert!(!ok, "{out}{err}");
    assert!(
        !err.contains("[killed: timeout]"),
        "serve kept running: {err}"
    );
    assert!(
        err.contains("states.get_digits.next: unknown state `read_bak`"),
        "{err}"
    );
    assert!(!out.contains("listening on"), "{out}");
}

/// The operations guide names only flags the binary has and configuration
/// keys the example configuration has.
#[test]
fn operations_guide_uses_real_flags_and_config_keys() {
    let guide = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let mut help = String::new();
    for cmd in [
        &[][..],
        &["serve"],
        &["check"],
        &["graph"],
        &["demo"],
        &["demo-backend"],
        &["dial"],
        &["dtmf"],
        &["completions"],
        &["man"],
    ] {
        let (_, out, err) = run_with_timeout(
            Command::new(BIN).args(cmd).arg("--help"),
            Duration::from_secs(30),
        );
        help.push_str(&out);
        help.push_str(&err);
    }
    let mut flags = Vec::new();
    let bytes = guide.as_bytes();
    let mut i = 0;
    while let Some(pos) = guide[i..].find("--") {
        let start = i + pos;
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'-') {
            end += 1;
        }
        let before = start.checked_sub(1).map(|b| bytes[b]);
        // Command-line flags only: not `---` rules, not `--force-…` of dpkg.
        if end > start + 2 && before.is_none_or(|c| c == b' ' || c == b'`' || c == b'(') {
            flags.push(guide[start..end].trim_end_matches('-').to_string());
        }
        i = end;
    }
    let foreign = [
        "--now",
        "--since",
        "--offline",
        "--root",
        "--force",
        "--purge",
        "--print-config",
        "--release",
        "--test",
        "--nocapture",
        "--serve",
        "--cpu",
        "--uac",
    ];
    for flag in flags {
        if foreign.iter().any(|f| flag.starts_with(f)) {
            continue; // systemctl, journalctl, systemd-analyze, dpkg, build-deb.sh, cargo, bench/load.sh
        }
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "docs/operations.md mentions `{flag}`, which sspr-ivr does not have"
        );
    }

    let example: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("config.example.yaml")).unwrap())
            .unwrap();
    let mut checked = 0;
    for span in guide.split('`').skip(1).step_by(2) {
        let span = span.split(':').next().unwrap().trim();
        let Some((section, key)) = span.split_once('.') else {
            continue;
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '*' || c == '.')
        };
        if !plain(section) || !plain(key) || example.get(section).is_none() {
            continue;
        }
        let key = key.split('.').next().unwrap();
        if key.contains('*') {
            let (pre, post) = key.split_once('*').unwrap();
            let m = example[section].as_mapping().unwrap();
            assert!(
                m.keys()
                    .filter_map(|k| k.as_str())
                    .any(|k| k.starts_with(pre) && k.ends_with(post)),
                "docs/operations.md names `{span}`, which config.example.yaml lacks"
            );
        } else {
            assert!(
                example[section].get(key).is_some(),
                "docs/operations.md names `{span}`, which config.example.yaml lacks"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} config keys found in the guide"
    );
}

/// The example configuration and its flows, copied into `dir`; prompts are
/// read from the repository.
fn example_copy(dir: &Path) -> PathBuf {
    std::fs::create_dir(dir.join("flows")).unwrap();
    for f in ["sspr.yaml", "echo.yaml"] {
        std::fs::copy(repo().join("flows").join(f), dir.join("flows").join(f)).unwrap();
    }
    let text = std::fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    let prompts = format!("  dir: {}\n", repo().join("prompts").display());
    let text = text.replacen("  dir: prompts\n", &prompts, 1);
    assert!(
        text.contains(&prompts),
        "config.example.yaml moved its prompts"
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replaces `from` by `to` (once, it must be there) in `file`; the 1-based
/// line it is on.
fn misspell(file: &Path, from: &str, to: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{} lacks `{from}`", file.display()));
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    text[..at].matches('\n').count() + 1
}

/// `check` and `serve` output for `cfg` (both must refuse it).
fn check_and_serve(cfg: &Path) -> [String; 2] {
    let (ok, checked) = check(cfg);
    assert!(!ok, "check passed:\n{checked}");
    let (ok, out, served) = run_with_timeout(
        Command::new(BIN).arg("serve").arg("--config").arg(cfg),
        Duration::from_secs(30),
    );
    assert!(
        !ok && !served.contains("[killed: timeout]"),
        "{out}{served}"
    );
    [checked, served]
}

/// An action outcome spelt one way in the actions config and another in the
/// flow: either file may hold the typo, so both are named with their line and
/// key, each message naming the other — whichever direction the typo goes,
/// the file that has it is named with the line to edit.
#[test]
fn action_outcome_typo_names_file_line_and_key_in_either_file() {
    // The config misspells the outcome the flow handles.
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_copy(dir.path());
    let flow = dir.path().join("flows/sspr.yaml");
    let line = misspell(
        &cfg,
        "{ status: 404, outcome: not_found }",
        "{ status: 404, outcome: not_fund }",
    );
    let flow_line = 1 + std::fs::read_to_string(&flow)
        .unwrap()
        .lines()
        .position(|l| l.trim() == "not_found: unknown_branch")
        .expect("sspr.yaml handles not_found");
    for out in check_and_serve(&cfg) {
        let at = format!(
            "{}:{line}:24: actions.lookup_user.outcomes.2.outcome: outcome `not_fund` of action `lookup_user` is not handled by {}:{flow_line}:7 states.lookup.on.not_found",
            cfg.display(),
            flow.display()
        );
        assert!(out.contains(&at), "want `{at}` in:\n{out}");
        let at = format!(
            "{}:{flow_line}:7: states.lookup.on.not_found: action `lookup_user` never produces outcome `not_found` (hint: did you mean `not_fund`, which {}:{line}:24 actions.lookup_user.outcomes.2.outcome declares?",
            flow.display(),
            cfg.display()
        );
        assert!(out.contains(&at), "want `{at}` in:\n{out}");
        assert_eq!(
            out.lines().filter(|l| l.contains("not_fund")).count(),
            2,
            "{out}"
        );
    }

    // The flow misspells the outcome the config declares.
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_copy(dir.path());
    let flow = dir.path().join("flows/sspr.yaml");
    let flow_line = misspell(
        &flow,
        "not_found: unknown_branch",
        "not_fond: unknown_branch",
    );
    let line = 1 + std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .position(|l| l.contains("{ status: 404, outcome: not_found }"))
        .unwrap();
    for out in check_and_serve(&cfg) {
        let at = format!(
            "{}:{flow_line}:7: states.lookup.on.not_fond: action `lookup_user` never produces outcome `not_fond` (hint: did you mean `not_found`, which {}:{line}:24 actions.lookup_user.outcomes.2.outcome declares?",
            flow.display(),
            cfg.display()
        );
        assert!(out.contains(&at), "want `{at}` in:\n{out}");
        let at = format!(
            "{}:{line}:24: actions.lookup_user.outcomes.2.outcome: outcome `not_found` of action `lookup_user` is not handled by {}:{flow_line}:7 states.lookup.on.not_fond",
            cfg.display(),
            flow.display()
        );
        assert!(out.contains(&at), "want `{at}` in:\n{out}");
        // Not blamed elsewhere: no "not handled" finding on the state as a whole.
        assert!(!out.contains("states.lookup.on: "), "{out}");
    }

    // A typo of a built-in outcome is the flow's alone.
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_copy(dir.path());
    let flow = dir.path().join("flows/sspr.yaml");
    let flow_line = misspell(
        &flow,
        "      timeout: backend_trouble\n      error: backend_trouble\n\n  send_code:",
        "      timout: backend_trouble\n      error: backend_trouble\n\n  send_code:",
    );
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    let at = format!(
        "{}:{flow_line}:7: states.lookup.on.timout: action `lookup_user` never produces outcome `timout` (hint: did you mean `timeout`?)",
        flow.display()
    );
    assert!(out.contains(&at), "want `{at}` in:\n{out}");
    assert!(!out.contains(&cfg.display().to_string()), "{out}");
}
