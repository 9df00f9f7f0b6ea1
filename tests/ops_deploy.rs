//! The deploy/ scripts, run for real: the systemd unit verifies cleanly, the .deb builds from
//! the debug binary and holds the expected paths, the Kamailio example parses.
//!
//! Needs `systemd-analyze` (package `systemd`) and `dpkg-deb` (Debian); the Kamailio check runs
//! only where `kamailio` is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn unit_file_verifies_and_keeps_exposure_low() {
    assert!(
        have("systemd-analyze"),
        "install the systemd package for systemd-analyze"
    );
    let (ok, out) = run(&mut Command::new(root().join("deploy/check-unit.sh")));
    assert!(ok, "{out}");
    assert!(out.contains("verify: clean"), "{out}");

    // The check must be able to fail: a misspelt directive is reported.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(root().join("deploy/sspr-ivr.service")).expect("unit");
    let broken = unit.replace("ProtectSystem=strict", "ProtectSytem=strict");
    let path = dir.path().join("sspr-ivr.service");
    std::fs::write(&path, broken).expect("write");
    let (ok, out) = run(Command::new(root().join("deploy/check-unit.sh")).arg(&path));
    assert!(!ok, "a broken unit passed: {out}");
}

fn write(path: &Path, text: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn deb_builds_with_expected_layout() {
    assert!(have("dpkg-deb"), "dpkg-deb is needed");
    let out_dir = tempfile::tempdir().expect("tempdir");
    // The project tree when its assets exist, else a scratch tree with stand-ins.
    let scratch = tempfile::tempdir().expect("tempdir");
    let real = root();
    let source = if real.join("config.example.yaml").exists()
        && real.join("flows").is_dir()
        && real.join("prompts").is_dir()
    {
        real.clone()
    } else {
        let s = scratch.path();
        write(&s.join("config.example.yaml"), b"# stand-in\n");
        write(&s.join("flows/sspr.yaml"), b"# stand-in\n");
        write(&s.join("prompts/en/welcome.wav"), b"RIFF");
        s.to_path_buf()
    };
    let (ok, out) = run(Command::new(root().join("deploy/build-deb.sh"))
        .env("SSPR_IVR_BIN", env!("CARGO_BIN_EXE_sspr-ivr"))
        .env("SOURCE_DIR", &source)
        .env("OUT_DIR", out_dir.path()));
    assert!(ok, "{out}");
    let deb = std::fs::read_dir(out_dir.path())
        .expect("out dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let (ok, listing) = run(Command::new("dpkg").arg("-c").arg(&deb));
    assert!(ok, "{listing}");
    for path in [
        "./usr/bin/sspr-ivr",
        "./lib/systemd/system/sspr-ivr.service",
        "./etc/sspr-ivr/config.yaml",
        "./usr/share/sspr-ivr/flows/sspr.yaml",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing:\n{listing}"
        );
    }
    let (ok, conffiles) = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert!(
        ok && conffiles.trim() == "/etc/sspr-ivr/config.yaml",
        "{conffiles}"
    );
    let (ok, control) = run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .arg("Package")
        .arg("Depends"));
    assert!(
        ok && control.contains("Package: sspr-ivr") && control.contains("libc6"),
        "{control}"
    );
}

#[test]
fn kamailio_example_parses_where_kamailio_is_installed() {
    if !have("kamailio") {
        eprintln!(
            "kamailio not installed: skipping the parse check of deploy/kamailio/kamailio.cfg"
        );
        return;
    }
    let (ok, out) = run(&mut Command::new(root().join("deploy/kamailio/check.sh")));
    assert!(ok, "{out}");
}
