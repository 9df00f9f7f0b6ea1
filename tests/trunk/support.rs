//! Helpers shared by the trunk tests (`tests/trunk_*.rs`): a `serve` config that
//! registers with a trunk, and waiting on the metrics.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;

pub const PASSWORD: &str = "c0rrect horse";

/// The `sip.registrations` YAML (indented under `sip:`) for one trunk.
pub fn registration(registrar: SocketAddr, expires: &str) -> String {
    format!(
        "  registrations:\n    - name: trunk1\n      registrar: \"sip:{registrar}\"\n      \
         aor: \"sip:ivr-line@sspr.test\"\n      password_env: TRUNK1_PASSWORD\n      \
         expires: {expires}\n      retry_min: 1s\n      retry_max: 2s\n"
    )
}

/// What a test server is started with.
pub struct Setup<'a> {
    /// More `sip:` keys, indented by two spaces (e.g. [`registration`]).
    pub sip: String,
    /// `flows:` and `routes:` (default: everything to flows/echo.yaml).
    pub flows: String,
    /// Further top-level sections.
    pub extra: &'a str,
    pub password: &'a str,
    pub rtp_min: u16,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            sip: String::new(),
            flows: format!(
                "flows: {{ echo: {} }}\nroutes: {{ default: echo }}\n",
                repo().join("flows/echo.yaml").display()
            ),
            extra: "",
            password: PASSWORD,
            rtp_min: 54000,
        }
    }
}

/// `sspr-ivr serve` on a minimal config (no data actions, audit spooled only).
pub fn serve_setup(setup: &Setup) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let text = format!(
        "sip:\n  listen: \"{sip}\"\n{}\
         media: {{ rtp_port_min: {}, rtp_port_max: {}, inactivity_timeout: 30s }}\n\
         prompts: {{ dir: {} }}\n{}\
         admin: {{ listen: \"{admin}\" }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n{}",
        setup.sip,
        setup.rtp_min,
        setup.rtp_min + 98,
        repo().join("prompts").display(),
        setup.flows,
        setup.extra,
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let args: Vec<String> = ["--log-level", "debug", "serve", "--config"]
        .iter()
        .map(|s| s.to_string())
        .chain([path.display().to_string()])
        .collect();
    Server::spawn_env(
        &args,
        &[("TRUNK1_PASSWORD", setup.password.to_string())],
        sip,
        admin,
        dir,
    )
}

/// A server registering with `registrar` (expiry 60 s, retries after 1 s).
pub fn serve(registrar: SocketAddr, password: &str, rtp_min: u16) -> Server {
    serve_setup(&Setup {
        sip: registration(registrar, "60s"),
        password,
        rtp_min,
        ..Setup::default()
    })
}

pub fn metrics(server: &Server) -> String {
    http_get(server.admin, "/metrics").1
}

pub fn wait_metric(server: &Server, line: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if metrics(server).lines().any(|l| l == line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no `{line}` within {timeout:?}:\n{}\n--- server output:\n{}",
        metrics(server),
        server.output_text()
    );
}
