//! The deploy/ scripts, run for real: the systemd unit verifies cleanly, the .deb builds from
//! the debug binary and holds the expected paths, the Kamailio example parses.
//!
//! Needs `systemd-analyze` (package `systemd`) and `dpkg-deb` (Debian); the Kamailio check is
//! skipped where `kamailio` is missing, except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/tools.rs"]
mod tools;

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
        "./usr/share/man/man1/sspr-ivr.1.gz",
        "./usr/share/man/man1/sspr-ivr-serve.1.gz",
        "./usr/share/bash-completion/completions/sspr-ivr",
        "./usr/share/zsh/vendor-completions/_sspr-ivr",
        "./usr/share/fish/vendor_completions.d/sspr-ivr.fish",
        "./usr/share/sspr-ivr/grafana/sspr-ivr.json",
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

    install_upgrade_purge(&deb);
}

fn dpkg_in(root: &Path, args: &[&str]) -> (bool, String) {
    // A scratch dpkg database; maintainer scripts run on the host with DPKG_ROOT set, so they
    // must only touch paths under it (and never call systemctl).
    let root_arg = format!("--root={}", root.display());
    let mut cmd = Command::new("dpkg");
    cmd.args([
        root_arg.as_str(),
        "--force-script-chrootless",
        "--force-depends",
        "--log=/dev/null",
    ])
    .args(args);
    run(&mut cmd)
}

/// Installs the package into a scratch root, checks the maintainer scripts' effects, reinstalls
/// over an edited conffile and purges.
fn install_upgrade_purge(deb: &Path) {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("var/lib/dpkg/info")).expect("dpkg dirs");
    std::fs::create_dir_all(r.join("var/lib/dpkg/updates")).expect("dpkg dirs");
    std::fs::write(r.join("var/lib/dpkg/status"), b"").expect("status");
    let deb = deb.to_str().expect("utf-8 path");

    let (ok, out) = dpkg_in(r, &["-i", deb]);
    assert!(ok, "{out}");
    assert!(r.join("usr/bin/sspr-ivr").is_file());
    let secrets = r.join("etc/sspr-ivr/secrets.env");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets)
            .expect("postinst creates secrets.env")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "secrets.env must be root-only");

    // An operator's edits survive a reinstall (conffile) and secrets are not reset.
    let config = r.join("etc/sspr-ivr/config.yaml");
    let mut edited = std::fs::read_to_string(&config).expect("config");
    edited.push_str("# edited by ops\n");
    std::fs::write(&config, &edited).expect("edit");
    std::fs::write(&secrets, b"IDP_TOKEN=x\n").expect("secret");
    let (ok, out) = dpkg_in(r, &["--force-confold", "-i", deb]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);
    assert_eq!(std::fs::read(&secrets).expect("secrets"), b"IDP_TOKEN=x\n");

    let (ok, out) = dpkg_in(r, &["--purge", "sspr-ivr"]);
    assert!(ok, "{out}");
    assert!(
        !r.join("etc/sspr-ivr").exists(),
        "purge leaves /etc/sspr-ivr"
    );
    assert!(!r.join("usr/bin/sspr-ivr").exists());
}

#[test]
fn kamailio_example_parses() {
    if !tools::available("kamailio", "kamailio") {
        return;
    }
    let (ok, out) = run(&mut Command::new(root().join("deploy/kamailio/check.sh")));
    assert!(ok, "{out}");
}
