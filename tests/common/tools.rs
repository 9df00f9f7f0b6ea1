//! External tools a test drives (graphviz `dot`, `kamailio`, …).
//!
//! Outside CI a missing tool skips that one check with a message saying what to install.
//! With `CI` set (`.ci/run` sets `CI=1` after installing every tool the tests use), a
//! missing tool fails the test instead: in CI a check can never pass by not running.

use std::process::{Command, Stdio};

/// True when `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether `tool` is on the PATH. When it is not: panics in CI, else prints why the
/// check is skipped (install `package`) and returns false.
pub fn available(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !in_ci(),
            "`{tool}` is not installed and CI is set: apt-get install -y {package}"
        );
        eprintln!("`{tool}` is not installed: check skipped (apt-get install -y {package})");
    }
    found
}
