//! The command line as an operator meets it, the real binary each time: one default config
//! path for `serve` and `check`, the start-up banner and its log line, `dial` from any
//! directory printing the keys it sends, error messages that say each thing once and name the
//! key, help text for every argument, completions and man pages generated from the CLI.

mod common;

use clap::CommandFactory;
use common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEFAULT: &str = "/etc/sspr-ivr/config.yaml";

fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    run_with_timeout(
        Command::new(BIN).args(args).current_dir(dir),
        Duration::from_secs(60),
    )
}

/// A small runnable config in `dir`: the echo flow, our ports, a spool in `dir`.
fn echo_config(dir: &Path, sip: SocketAddr, admin: SocketAddr, rtp: u16) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "sip: {{ listen: \"{sip}\" }}\n\
             admin: {{ listen: \"{admin}\" }}\n\
             media: {{ rtp_port_min: {rtp}, rtp_port_max: {} }}\n\
             flows: {{ echo: {} }}\n\
             routes: {{ default: echo }}\n\
             prompts: {{ dir: {} }}\n\
             actions: {{}}\n\
             audit: {{ action: null, spool_dir: spool }}\n",
            rtp + 998,
            repo().join("flows/echo.yaml").display(),
            repo().join("prompts").display()
        ),
    )
    .expect("write config");
    path
}

#[test]
fn serve_and_check_read_the_same_default_config() {
    for cmd in ["serve", "check"] {
        let (ok, out, err) = run_in(&repo(), &[cmd, "--help"]);
        assert!(ok, "{out}{err}");
        assert!(
            out.contains(&format!("[default: {DEFAULT}]")),
            "{cmd} --help: {out}"
        );
    }
    // A config.example.yaml in the working directory is not what `check` reads.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("config.example.yaml"),
        dir.path().join("config.example.yaml"),
    )
    .unwrap();
    let (_, out, err) = run_in(dir.path(), &["check"]);
    let text = format!("{out}{err}");
    assert!(text.contains(DEFAULT), "{text}");
    assert!(!text.contains("config.example.yaml"), "{text}");
}

#[test]
fn serve_prints_a_banner_and_logs_the_same_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let rtp = rtp_block();
    let cfg = echo_config(dir.path(), sip, admin, rtp);
    let args: Vec<String> = ["--log-json", "serve", "--config"]
        .iter()
        .map(|s| s.to_string())
        .chain([cfg.display().to_string()])
        .collect();
    let server = Server::spawn(&args, sip, admin, admin, dir);
    assert!(
        server.wait_output("\"listening\"", Duration::from_secs(30)),
        "{}",
        server.output_text()
    );
    let version = env!("CARGO_PKG_VERSION");
    let rtp_range = format!("127.0.0.1:{rtp}-{}", rtp + 998);
    let banner = [
        format!("sspr-ivr {version} listening on sip:{sip} (udp+tcp)"),
        format!("  rtp         {rtp_range}"),
        format!("  admin       http://{admin}  (/metrics /healthz /readyz)"),
        format!("  config      {}", cfg.display()),
    ];
    // The banner goes to stdout and the log to stderr, read by two threads:
    // the log line can arrive first, so wait for the banner's last line too.
    server.wait_output(&banner[3], Duration::from_secs(10));
    let out = server.output_text();
    for line in banner {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    let log = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON log line"))
        .find(|j| j["fields"]["message"] == "listening")
        .expect("a `listening` log line");
    let f = &log["fields"];
    assert_eq!(f["version"], version, "{log}");
    assert_eq!(f["config"], cfg.display().to_string(), "{log}");
    assert_eq!(f["sip"], sip.to_string(), "{log}");
    assert_eq!(f["transports"], "udp+tcp", "{log}");
    assert_eq!(f["rtp"], rtp_range, "{log}");
    assert_eq!(f["admin"], format!("http://{admin}"), "{log}");
    assert!(
        !out.contains("Some(") && !out.contains("None"),
        "Debug formatting in:\n{out}"
    );
}

#[test]
fn dial_works_from_any_directory_and_prints_the_keys_it_sends() {
    let server = Server::demo(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let uri = server.uri("echo");
    let (ok, out, err) = run_with_timeout(
        Command::new(BIN)
            .current_dir(elsewhere.path())
            .args(["dial", &uri, "--dtmf", "47#"]),
        Duration::from_secs(60),
    );
    assert!(ok, "{out}\n{err}");
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    let sent: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" dtmf ").map(|(_, k)| k))
        .collect();
    assert_eq!(sent, ["4 sent", "7 sent", "# sent"], "{out}");
    // The prompts are recognised with the built-in set: the read-back is heard.
    let heard = prompts_heard(&lines);
    for p in ["echo_intro", "you_entered", "digit_4", "digit_7", "goodbye"] {
        assert!(
            heard.iter().any(|h| h == p),
            "{p} not heard: {heard:?}\n{out}"
        );
    }
}

#[test]
fn errors_say_each_thing_once_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let missing_text = format!(
        "{}: cannot read: No such file or directory",
        missing.display()
    );
    let (ok, out, err) = run_in(
        dir.path(),
        &["check", "--config", missing.to_str().unwrap()],
    );
    assert!(!ok);
    assert_eq!(format!("{out}{err}").trim(), missing_text);
    let (ok, out, err) = run_in(
        dir.path(),
        &["serve", "--config", missing.to_str().unwrap()],
    );
    assert!(!ok);
    assert_eq!(
        format!("{out}{err}").trim(),
        format!("error: {missing_text}")
    );
    let (ok, _, err) = run_in(dir.path(), &["dtmf", "nothing.wav"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: nothing.wav: cannot read: No such file or directory"
    );

    // A bad value: named by its full key, located once.
    let example = read_to_string(&repo().join("config.example.yaml"));
    for (from, to, key) in [
        (
            "inactivity_timeout: 120s",
            "inactivity_timeout: 5 parsecs",
            "media.inactivity_timeout: duration \"5 parsecs\"",
        ),
        (
            "rtp_port_min: 20000",
            "rtp_port_min: lots",
            "media.rtp_port_min: invalid type: string \"lots\"",
        ),
        // Values that parse but are refused: located the same way.
        (
            "ptime_ms: 20",
            "ptime_ms: 25",
            "media.ptime_ms: use 10, 20, 30 or 40",
        ),
        (
            "hold_timeout: 10m",
            "hold_timeout: 30s",
            "media.hold_timeout: at least media.inactivity_timeout (120s)",
        ),
        // "Bind all", out of habit: it would be every call's SDP c= address.
        (
            "rtp_ip: 127.0.0.1",
            "rtp_ip: 0.0.0.0",
            "media.rtp_ip: 0.0.0.0 is not an address a caller can send to",
        ),
        (
            "rtp_ip: 127.0.0.1",
            "rtp_ip: \"::\"",
            "media.rtp_ip: :: is not an address a caller can send to",
        ),
        (
            "listen: 127.0.0.1:5060",
            "listen: 0.0.0.0:5060",
            "sip.listen: 0.0.0.0:5060 listens on every address, so set sip.advertised_addr",
        ),
    ] {
        assert!(example.contains(from), "config.example.yaml lost `{from}`");
        let cfg = dir.path().join("bad.yaml");
        std::fs::write(&cfg, example.replace(from, to)).unwrap();
        let (ok, out, err) = run_in(&repo(), &["check", "--config", cfg.to_str().unwrap()]);
        let text = format!("{out}{err}");
        assert!(!ok, "{text}");
        let line = example
            .lines()
            .position(|l| l.contains(from))
            .expect("line")
            + 1;
        assert!(
            text.starts_with(&format!("{}:{line}:", cfg.display())),
            "{text}"
        );
        assert!(text.contains(key), "{text}");
        assert!(!text.contains(" at line "), "location twice: {text}");
        assert!(!text.contains("os error"), "{text}");
    }
    // Listening on every address is fine once peers are told where to send
    // (beside the example: its paths are relative to it).
    let cfg = repo().join(format!(".wildcard-{}.yaml", std::process::id()));
    std::fs::write(
        &cfg,
        example
            .replace("listen: 127.0.0.1:5060", "listen: 0.0.0.0:5060")
            .replace("advertised_addr: null", "advertised_addr: 192.0.2.10:5060"),
    )
    .unwrap();
    let (ok, out, err) = run_in(&repo(), &["check", "--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    assert!(ok, "{out}{err}");
    // `serve --sip` with a wildcard and no advertised address: refused at once.
    let (ok, out, err) = run_in(
        &repo(),
        &[
            "serve",
            "--config",
            "config.example.yaml",
            "--sip",
            "0.0.0.0:5060",
        ],
    );
    assert!(!ok, "{out}{err}");
    assert!(err.contains("set sip.advertised_addr"), "{err}");
}

#[test]
fn every_argument_has_help_text() {
    let cmd = sspr_ivr::cli::Cli::command();
    let mut missing = Vec::new();
    let mut check = |owner: &str, c: &clap::Command| {
        for arg in c.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg
                .get_help()
                .is_none_or(|h| h.to_string().trim().is_empty())
            {
                missing.push(format!("{owner} {id}"));
            }
        }
    };
    check("sspr-ivr", &cmd);
    let mut subs = 0;
    for sub in cmd.get_subcommands() {
        assert!(sub.get_about().is_some(), "{} has no about", sub.get_name());
        check(sub.get_name(), sub);
        subs += 1;
    }
    assert!(subs >= 9, "{subs} subcommands");
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
    // And what the binary prints says so too.
    let (ok, out, _) = run_in(&repo(), &["dial", "--help"]);
    assert!(ok && out.contains("How keys are sent"), "{out}");
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    let subcommands = [
        "serve",
        "demo",
        "check",
        "graph",
        "dial",
        "dtmf",
        "completions",
        "man",
    ];
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = run_in(dir.path(), &["completions", shell]);
        assert!(ok, "{shell}: {err}");
        for sub in subcommands {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
        let flag = if shell == "fish" {
            "-l config"
        } else {
            "--config"
        };
        assert!(out.contains(flag), "{shell} completion lacks {flag}");
        if shell == "bash" {
            let script = dir.path().join("sspr-ivr.bash");
            std::fs::write(&script, &out).unwrap();
            let (ok, o, e) = run_with_timeout(
                Command::new("bash").arg("-c").arg(format!(
                    "source {} && complete -p sspr-ivr",
                    script.display()
                )),
                Duration::from_secs(30),
            );
            assert!(ok && o.contains("sspr-ivr"), "{o}{e}");
        }
    }
    let (ok, out, err) = run_in(dir.path(), &["completions", "tcsh"]);
    assert!(!ok && out.is_empty(), "{err}");

    let (ok, page, _) = run_in(dir.path(), &["man"]);
    assert!(ok);
    assert!(page.contains(".TH sspr-ivr 1"), "{page}");
    for sub in subcommands {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    let out_dir = dir.path().join("man");
    let (ok, listed, err) = run_in(dir.path(), &["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    for sub in subcommands {
        let file = out_dir.join(format!("sspr-ivr-{sub}.1"));
        assert!(listed.contains(&file.display().to_string()), "{listed}");
        let text = read_to_string(&file);
        assert!(
            text.contains(&format!(".TH sspr-ivr-{sub} 1")),
            "{}: {text}",
            file.display()
        );
    }
    let serve = read_to_string(&out_dir.join("sspr-ivr-serve.1"));
    assert!(serve.contains("sspr\\-ivr serve"), "{serve}");
    assert!(serve.contains("/etc/sspr\\-ivr/config.yaml"), "{serve}");
}
