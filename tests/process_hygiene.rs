//! The running server cannot be dumped or read by its own user: `sspr-ivr
//! demo` runs as `nobody` with a secret in its environment (as
//! `secrets.env` puts one there), and another process of `nobody` — what an
//! attacker who got code running as the service user would have — cannot
//! read its `/proc/<pid>/environ` or `/proc/<pid>/mem`, whose files belong
//! to root; its core file limit is 0. A plain process of `nobody` with the
//! same environment is readable, so the check can fail. Needs root (to run
//! processes as another user); CI runs as root.

mod common;

use common::configured::http_get_opt;
use common::*;
use std::net::SocketAddr;
use std::os::unix::fs::{chown, MetadataExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NOBODY: u32 = 65534;
const SECRET_VAR: &str = "SSPR_IVR_TEST_API_TOKEN";
const SECRET: &str = "tok-5f1e9a0c7d";

/// A child process, killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn as_nobody(cmd: &mut Command) -> &mut Command {
    // std drops root's supplementary groups when it sets the uid.
    cmd.uid(NOBODY).gid(NOBODY)
}

/// What `nobody` gets reading `path`: the bytes, or the error.
fn read_as_nobody(path: &str) -> Result<Vec<u8>, String> {
    let out = as_nobody(Command::new("dd").args([
        &format!("if={path}"),
        "bs=4096",
        "count=1",
        "status=none",
    ]))
    .stdin(Stdio::null())
    .output()
    .expect("run dd");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn core_limit(pid: u32) -> String {
    let limits = read_to_string(std::path::Path::new(&format!("/proc/{pid}/limits")));
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit in /proc/{pid}/limits:\n{limits}"))
        .to_string();
    line.split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn uid_of(pid: u32) -> u32 {
    let status = read_to_string(std::path::Path::new(&format!("/proc/{pid}/status")));
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status"))
}

#[test]
fn the_server_is_not_dumpable_even_by_its_own_user() {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test runs processes as nobody: run it as root (CI does)"
    );
    let dir = tempfile::tempdir().unwrap();
    chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let backend: SocketAddr = free_addr();
    let server = Killed(
        as_nobody(
            Command::new(BIN)
                .current_dir(repo())
                .env(SECRET_VAR, SECRET)
                .args(["demo", "--sip", &sip.to_string()])
                .args(["--admin", &admin.to_string()])
                .args(["--backend", &backend.to_string()])
                .args(["--rtp-port-min", &rtp_block().to_string()])
                .args(["--spool", &dir.path().join("spool").display().to_string()]),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sspr-ivr demo as nobody"),
    );
    // Serving: it is the running server, not a process that gave up.
    wait_for(
        "the server ready as nobody",
        Duration::from_secs(60),
        || {
            http_get_opt(admin, "/readyz")
                .is_some()
                .then(|| http_get(admin, "/readyz").0 == 200)
                .filter(|ready| *ready)
        },
    );
    let pid = server.0.id();
    assert_eq!(uid_of(pid), NOBODY, "the server runs as nobody");

    // The control: a plain process of nobody with the same environment is
    // readable by nobody, secret and all.
    let plain = Killed(
        as_nobody(Command::new("sleep").arg("60").env(SECRET_VAR, SECRET))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep as nobody"),
    );
    let plain_pid = plain.0.id();
    wait_for("sleep to run as nobody", Duration::from_secs(10), || {
        (uid_of(plain_pid) == NOBODY).then_some(())
    });
    let environ = read_as_nobody(&format!("/proc/{plain_pid}/environ"))
        .expect("nobody reads its own plain process's environment");
    assert!(
        String::from_utf8_lossy(&environ).contains(SECRET),
        "the control process's environment holds the secret"
    );
    let meta = std::fs::metadata(format!("/proc/{plain_pid}/environ")).unwrap();
    assert_eq!(meta.uid(), NOBODY);
    assert_ne!(core_limit(plain_pid), "0 0", "the control may dump core");

    // The server: its /proc files belong to root, nobody cannot read its
    // environment or memory, and it writes no core file.
    for file in ["environ", "mem", "maps"] {
        let path = format!("/proc/{pid}/{file}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} belongs to root");
    }
    match read_as_nobody(&format!("/proc/{pid}/environ")) {
        Ok(bytes) => panic!(
            "nobody read the server's environment ({} bytes, secret inside: {})",
            bytes.len(),
            String::from_utf8_lossy(&bytes).contains(SECRET)
        ),
        Err(e) => assert!(e.contains("Permission denied"), "{e}"),
    }
    let maps = read_as_nobody(&format!("/proc/{pid}/maps"));
    assert!(
        maps.as_ref().map_or(true, |b| b.is_empty()),
        "nobody read the server's memory map"
    );
    assert_eq!(core_limit(pid), "0 0", "no core file, soft or hard");
    drop(plain);
    drop(server);
}
