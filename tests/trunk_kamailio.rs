//! A trunk played by Kamailio (`tests/trunk/kamailio.cfg`, on 127.0.0.2): its auth
//! module checks our SHA-256 digest with the password it was given, its registrar
//! keeps the binding, and a caller (sipp on 127.0.0.3) reaches the IVR only through
//! that binding. Kamailio must be installed (`.ci/run` installs it); these tests fail,
//! never skip, without it. Every wait is bounded.

mod common;
#[path = "trunk/support.rs"]
mod support;

use common::*;
use support::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kamailio on `127.0.0.2:<port>`, in its own process group, stopped on drop.
struct Kamailio {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    fn start(password: &str) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().unwrap();
        let mut child = Command::new("kamailio")
            .args([
                "-f",
                &repo()
                    .join("tests/trunk/kamailio.cfg")
                    .display()
                    .to_string(),
            ])
            .args(["-DD", "-E", "-Y", &dir.path().display().to_string()])
            .args(["-A", &format!("LISTEN=udp:{addr}")])
            .args(["-A", &format!("TRUNK_PASSWORD=\"{password}\"")])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kamailio is not installed: apt-get install -y kamailio");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        let k = Kamailio {
            child,
            addr,
            output,
            _dir: dir,
        };
        // Up when it answers OPTIONS.
        assert!(
            answers_options(addr, Duration::from_secs(15)),
            "kamailio did not start:\n{}",
            k.log()
        );
        k
    }

    fn log(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM to its group: the main process stops its children.
        let pgid = self.child.id().to_string();
        let group = format!("-{pgid}");
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

/// One call from 127.0.0.3 through the trunk to `user` (tests/trunk/caller.xml).
fn call_through(trunk: SocketAddr, user: &str, from_user: &str) -> (bool, String) {
    let mut cmd = Command::new(sipp());
    cmd.arg(trunk.to_string())
        .args([
            "-sf",
            &repo().join("tests/trunk/caller.xml").display().to_string(),
        ])
        .args(["-s", user, "-key", "from_user", from_user])
        .args(["-i", "127.0.0.3", "-mi", "127.0.0.3"])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &sipp_media_port().to_string(),
        ])
        .args(["-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin"]);
    let (ok, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(25));
    (ok, format!("{out}\n{err}"))
}

#[test]
fn kamailio_checks_the_sha256_digest_and_routes_calls_to_the_binding() {
    let kam = Kamailio::start(PASSWORD);
    let mut server = serve(kam.addr, PASSWORD, 54600);
    wait_metric(
        &server,
        "sspr_ivr_sip_registration_up{trunk=\"trunk1\"} 1",
        Duration::from_secs(20),
    );
    assert_eq!(http_get(server.admin, "/readyz"), (200, "ready\n".into()));
    assert!(
        kam.wait_log(
            "TRUNK REGISTER accepted from 127.0.0.1",
            Duration::from_secs(5)
        ),
        "{}",
        kam.log()
    );
    assert!(
        kam.log().contains("TRUNK REGISTER challenged"),
        "{}",
        kam.log()
    );

    // The trunk finds the IVR through the binding alone.
    let (ok, out) = call_through(kam.addr, "ivr-line", "5550100");
    assert!(ok, "call through the trunk failed:\n{out}\n{}", kam.log());
    assert!(kam
        .log()
        .contains("TRUNK INVITE for ivr-line routed to sip:ivr-line@127.0.0.1"));
    assert!(server.wait_output("call answered source=127.0.0.2", Duration::from_secs(5)));

    // SIGTERM removes the binding: the trunk has nowhere to send the next call.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        kam.wait_log("user=ivr-line expires=0", Duration::from_secs(5)),
        "no un-REGISTER:\n{}",
        kam.log()
    );
    let (ok, _) = call_through(kam.addr, "ivr-line", "5550100");
    assert!(!ok, "a call after the un-REGISTER must fail");
    assert!(kam
        .log()
        .contains("TRUNK INVITE for ivr-line: not registered"));
}
