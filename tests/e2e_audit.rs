//! Audit durability on the real binary: records are fsynced to the spool
//! before delivery; a `kill -9` while the audit receiver is unreachable loses
//! nothing, and after a restart every record arrives exactly once; a
//! `kill -9` in the middle of a stream of spool writes loses no record the
//! server had reported written, and a torn tail is cut off at the next start.

mod common;

use common::configured::*;
use common::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn kill_9_between_spooling_and_delivery_loses_nothing_and_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_backend, backend) = Backend::start(&[]);

    // 1. The audit receiver is unreachable: records stay in the spool.
    let dead = free_port();
    let config = dir.path().join("config.yaml");
    let (sip, admin) = write_fresh_config(
        &config,
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
    let (sip, admin) =
        write_fresh_config(&config, backend, &format!("http://{backend}/audit"), &spool);
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

/// A flow that writes an audit record every 20 ms for a few seconds: a
/// steady stream of spool writes to kill the server in the middle of.
const BURST_FLOW: &str = r#"
flow: burst
version: "1"
language: en
start: pause
states:
  pause:
    counter: { name: n, max: 400, on_exceeded: done }
    play: [{ silence: 20ms }]
    next: write
  write:
    audit: { result: failure, reason: burst }
    next: pause
  done:
    hangup: { prompt: [goodbye] }
"#;

/// Add the burst flow to a config written by [`write_config`], routed from
/// the user `burst`.
fn add_burst_flow(config: &Path, dir: &Path) {
    let flow = dir.join("burst.yaml");
    std::fs::write(&flow, BURST_FLOW).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&read_to_string(config)).unwrap();
    doc["flows"]["burst"] = flow.display().to_string().into();
    doc["routes"]["by_user"]["burst"] = "burst".into();
    std::fs::write(config, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

#[test]
fn kill_9_during_a_stream_of_spool_writes_loses_no_complete_record() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_backend, backend) = Backend::start(&[]);

    // 1. Three callers each make the server spool a record every 20 ms; the
    //    audit receiver is down, so everything stays in the spool.
    let config = dir.path().join("config.yaml");
    let dead = free_port();
    let (sip, admin) = write_fresh_config(
        &config,
        backend,
        &format!("http://127.0.0.1:{dead}/audit"),
        &spool,
    );
    add_burst_flow(&config, dir.path());
    let mut first = serve(&config, sip, admin, backend);
    let callers: Vec<Dialer> = (0..3)
        .map(|_| Dialer::start(&first.uri("burst"), &[]))
        .collect();
    wait_for("a stream of spool writes", Duration::from_secs(30), || {
        (logged_spooled(&first).len() >= 60).then_some(())
    });
    // kill -9 while the writes keep coming.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(callers);
    // Let the log readers reach the end of the pipe.
    let mut seen = 0;
    let logged = wait_for("the end of the log", Duration::from_secs(5), || {
        let ids = logged_spooled(&first);
        let stable = ids.len() == seen;
        seen = ids.len();
        std::thread::sleep(Duration::from_millis(200));
        stable.then_some(ids)
    });
    assert!(logged.len() >= 60, "{}", logged.len());
    let on_disk = spool_ids(&spool);
    for id in &logged {
        assert!(
            on_disk.contains(id),
            "record {id} was reported spooled but is gone"
        );
    }
    // What a crash in the middle of the next write (power loss) leaves: a
    // torn last line.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(spool.join("records.jsonl"))
            .unwrap();
        f.write_all(br#"{"id":"0123456789abcdef","result":"fail"#)
            .unwrap();
    }

    // 2. Restart with the receiver reachable: the torn tail is cut, every
    //    complete record arrives exactly once, and new records append cleanly.
    let (sip, admin) =
        write_fresh_config(&config, backend, &format!("http://{backend}/audit"), &spool);
    add_burst_flow(&config, dir.path());
    let second = serve(&config, sip, admin, backend);
    assert!(
        second.wait_output("dropping a torn last line", Duration::from_secs(10)),
        "{}",
        second.output_text()
    );
    let (ok, transcript, err) = dial(
        &second.uri("reset"),
        &["--on", "enter_employee_id=345678#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    let delivered = wait_for("redelivery", Duration::from_secs(60), || {
        let (_, body) = http_get(backend, "/demo/audit");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        let locked = v.iter().any(|r| r["reason"] == "account_locked");
        (v.len() > on_disk.len() && locked).then_some(v)
    });
    let ids: Vec<&str> = delivered.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in &on_disk {
        assert_eq!(
            ids.iter().filter(|d| **d == id.as_str()).count(),
            1,
            "record {id} delivered once"
        );
    }
    assert!(
        !ids.contains(&"0123456789abcdef"),
        "the torn record is not delivered"
    );
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
}

#[test]
fn a_reload_sends_the_spooled_records_through_the_new_audit_action() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_backend, backend) = Backend::start(&[]);
    // Started with the audit action pointing nowhere.
    let config = dir.path().join("config.yaml");
    let dead = free_port();
    let (sip, admin) = write_fresh_config(
        &config,
        backend,
        &format!("http://127.0.0.1:{dead}/audit"),
        &spool,
    );
    let server = serve(&config, sip, admin, backend);
    let (ok, transcript, err) = dial(
        &server.uri("reset"),
        &["--on", "enter_employee_id=345678#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{}\n{err}", transcript.join("\n"));
    let ids = wait_for("the spooled record", Duration::from_secs(10), || {
        let ids = spool_ids(&spool);
        (ids.len() == 1).then_some(ids)
    });
    // Let delivery fail a few times so that it is deep in its backoff.
    assert!(
        server.wait_output("audit delivery failed", Duration::from_secs(20)),
        "{}",
        server.output_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(http_get(backend, "/demo/audit").1.trim(), "[]");

    // The operator fixes the URL and reloads: the record goes out at once.
    write_config(
        &config,
        sip,
        admin,
        backend,
        &format!("http://{backend}/audit"),
        &spool,
    );
    server.signal("HUP");
    assert!(
        server.wait_output("configuration reloaded", Duration::from_secs(20)),
        "{}",
        server.output_text()
    );
    let delivered = wait_for("delivery after the reload", Duration::from_secs(10), || {
        let (_, body) = http_get(backend, "/demo/audit");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        (!v.is_empty()).then_some(v)
    });
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["id"], ids[0].as_str());
    let (_, metrics) = http_get_text(admin, "/metrics");
    assert!(
        metrics.contains("sspr_ivr_audit_records_delivered_total 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("sspr_ivr_audit_delivery_failures_total 0"),
        "failures were counted: {metrics}"
    );
}
