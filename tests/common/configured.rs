//! `sspr-ivr serve` with `config.example.yaml` made runnable from a temp
//! dir (absolute data paths, free ports), and the demo backend as a process
//! of its own — for tests that restart the server, reload it, or watch what
//! the backend received.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// The demo backend process; killed on drop.
pub struct Backend(pub Child);

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example config, made runnable from a temp dir: absolute data paths,
/// our ports, the demo backend at `backend`, the audit action at `audit_url`.
pub fn write_config(
    path: &Path,
    sip: SocketAddr,
    admin: SocketAddr,
    backend: SocketAddr,
    audit_url: &str,
    spool: &Path,
) {
    let text = read_to_string(&repo().join("config.example.yaml"))
        .replace("http://127.0.0.1:8089/audit", audit_url)
        .replace("http://127.0.0.1:8089", &format!("http://{backend}"));
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let set = |doc: &mut serde_yaml::Value, keys: &[&str], v: serde_yaml::Value| {
        let mut node = doc;
        for k in &keys[..keys.len() - 1] {
            node = node.get_mut(*k).unwrap();
        }
        node[keys[keys.len() - 1]] = v;
    };
    let s = |v: String| serde_yaml::Value::String(v);
    set(&mut doc, &["sip", "listen"], s(sip.to_string()));
    set(&mut doc, &["admin", "listen"], s(admin.to_string()));
    let rtp = rtp_block();
    set(&mut doc, &["media", "rtp_port_min"], rtp.into());
    set(&mut doc, &["media", "rtp_port_max"], (rtp + 998).into());
    set(
        &mut doc,
        &["prompts", "dir"],
        s(repo().join("prompts").display().to_string()),
    );
    for flow in ["sspr", "echo"] {
        set(
            &mut doc,
            &["flows", flow],
            s(repo()
                .join(format!("flows/{flow}.yaml"))
                .display()
                .to_string()),
        );
    }
    set(
        &mut doc,
        &["audit", "spool_dir"],
        s(spool.display().to_string()),
    );
    std::fs::write(path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

pub fn serve(config: &Path, sip: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> Server {
    let args = vec![
        "--log-level".to_string(),
        "info,sspr_ivr::runtime=debug,sspr_ivr::audit=debug".to_string(),
        "serve".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    Server::spawn(&args, sip, admin, backend, tempfile::tempdir().unwrap())
}

/// [`write_config`] on fresh SIP and admin addresses, which it returns.
pub fn write_fresh_config(
    path: &Path,
    backend: SocketAddr,
    audit_url: &str,
    spool: &Path,
) -> (SocketAddr, SocketAddr) {
    let (sip, admin) = (free_addr(), free_addr());
    write_config(path, sip, admin, backend, audit_url, spool);
    (sip, admin)
}

/// The example config against a fresh demo backend (started with
/// `backend_args`), with `edit` applied to the YAML (given the temp dir), and
/// the server started on it. The temp dir (config, spool, flows) is returned
/// to live as long as the server.
pub fn serve_edited(
    backend_args: &[&str],
    edit: impl FnOnce(&mut serde_yaml::Value, &Path),
) -> (Server, Backend, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (backend_proc, backend) = Backend::start(backend_args);
    let config = dir.path().join("config.yaml");
    let (sip, admin) = write_fresh_config(
        &config,
        backend,
        &format!("http://{backend}/audit"),
        &dir.path().join("spool"),
    );
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&read_to_string(&config)).unwrap();
    edit(&mut doc, dir.path());
    std::fs::write(&config, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let server = serve(&config, sip, admin, backend);
    (server, backend_proc, backend, dir)
}

pub fn spool_ids(spool: &Path) -> Vec<String> {
    read_to_string(&spool.join("records.jsonl"))
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

impl Backend {
    /// Start `sspr-ivr demo-backend` on a free port with `args`; returns once
    /// it answers.
    pub fn start(args: &[&str]) -> (Backend, SocketAddr) {
        let addr: SocketAddr = free_addr();
        let backend = Backend(
            Command::new(BIN)
                .args(["demo-backend", "--listen", &addr.to_string()])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for("the demo backend", Duration::from_secs(20), || {
            http_get_opt(addr, "/demo/audit").is_some().then_some(())
        });
        (backend, addr)
    }
}

pub fn http_get_opt(addr: SocketAddr, path: &str) -> Option<String> {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    Some(http_get(addr, path).1)
}

/// Ids the server logged as written to its audit spool (fsynced), in order
/// (needs `sspr_ivr::audit=debug`, as [`serve`] sets).
pub fn logged_spooled(server: &Server) -> Vec<String> {
    server
        .output_text()
        .lines()
        .filter(|l| l.contains("audit record spooled"))
        .filter_map(|l| l.rsplit(" id=").next())
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}
