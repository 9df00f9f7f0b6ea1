//! Audit durability on the real binary: records are fsynced to the spool
//! before delivery; a `kill -9` while the audit receiver is unreachable loses
//! nothing, and after a restart every record arrives exactly once.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Backend(Child);

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example config, made runnable from a temp dir: absolute data paths,
/// our ports, the demo backend at `backend`, the audit action at `audit_url`.
fn write_config(
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

fn serve(config: &Path, sip: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> Server {
    let args = vec![
        "serve".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    Server::spawn(&args, sip, admin, backend, tempfile::tempdir().unwrap())
}

fn spool_ids(spool: &Path) -> Vec<String> {
    read_to_string(&spool.join("records.jsonl"))
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn kill_9_between_spooling_and_delivery_loses_nothing_and_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let backend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _backend = Backend(
        Command::new(BIN)
            .args(["demo-backend", "--listen", &backend.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the demo backend", Duration::from_secs(20), || {
        (http_get_opt(backend, "/demo/audit").is_some()).then_some(())
    });

    // 1. The audit receiver is unreachable: records stay in the spool.
    let dead = free_port();
    let config = dir.path().join("config.yaml");
    let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    write_config(
        &config,
        sip,
        admin,
        backend,
        &format!("http://127.0.0.1:{dead}/audit"),
        &spool,
    );
    let mut first = serve(&config, sip, admin, backend);
    for _ in 0..2 {
        let (ok, transcript, err) = dial(
            &first.uri("reset"),
            &["--on", "enter_employee_id=345678#"],
            Duration::from_secs(60),
        );
        assert!(ok, "{}\n{err}", transcript.join("\n"));
    }
    let ids = wait_for("two spooled records", Duration::from_secs(10), || {
        let ids = spool_ids(&spool);
        (ids.len() == 2).then_some(ids)
    });
    // kill -9: no chance to flush or deliver anything.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let (_, received) = http_get(backend, "/demo/audit");
    assert_eq!(
        received.trim(),
        "[]",
        "nothing was delivered before the kill"
    );

    // 2. Restart with the receiver reachable: each record arrives once.
    let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    write_config(
        &config,
        sip,
        admin,
        backend,
        &format!("http://{backend}/audit"),
        &spool,
    );
    let _second = serve(&config, sip, admin, backend);
    let delivered = wait_for("redelivery", Duration::from_secs(30), || {
        let (_, body) = http_get(backend, "/demo/audit");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        (v.len() >= 2).then_some(v)
    });
    // Give a duplicate time to show up, if there were one.
    std::thread::sleep(Duration::from_secs(2));
    let (_, body) = http_get(backend, "/demo/audit");
    let after: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(after.len(), 2, "exactly once: {after:?}");
    let mut got: Vec<String> = delivered
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut want = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for r in &after {
        assert_eq!(r["method"], "IVR-SSPR");
        assert_eq!(r["result"], "failure");
        assert_eq!(r["reason"], "account_locked");
    }
    // And the spool knows they are delivered.
    wait_for("acks", Duration::from_secs(10), || {
        let a = read_to_string(&spool.join("acked.log"));
        let records = read_to_string(&spool.join("records.jsonl"));
        (ids.iter().all(|id| a.contains(id.as_str())) || records.trim().is_empty()).then_some(())
    });
}

fn http_get_opt(addr: SocketAddr, path: &str) -> Option<String> {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    Some(http_get(addr, path).1)
}
