//! Audit spool + deliverer against the demo backend's audit receiver:
//! delivery, retry with backoff, redelivery after restart, and "exactly
//! once" at the receiver when a crash falls between delivery and ack.

use std::sync::Arc;
use std::time::Duration;

use sspr_ivr::actions::Executor;
use sspr_ivr::audit::{AuditRecord, Backoff, CallFacts, Deliverer, FixedClock, Spool};
use sspr_ivr::demo::{demo_actions, DemoBackend, DemoOptions};
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

fn record(n: u32, result: &str) -> AuditRecord {
    let clock = FixedClock(datetime!(2026-11-26 08:00:00 UTC));
    let ani = format!("+1555010{n:04}");
    let call = format!("call-{n}");
    AuditRecord::new(
        &clock,
        &CallFacts {
            ani: &ani,
            call_id: &call,
            flow: "sspr",
            flow_version: "7",
        },
        result,
        "reset_attempt",
    )
}

const FAST: Backoff = Backoff {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(100),
};

async fn backend() -> (DemoBackend, Arc<Executor>) {
    let b = DemoBackend::start(DemoOptions {
        print_codes: false,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let exec = Executor::with_env(demo_actions(&b.base_url()).unwrap(), |_| None).unwrap();
    (b, Arc::new(exec))
}

/// Poll `f` until true or 5 s pass.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn append_then_deliver_with_retry() {
    let (b, exec) = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let cancel = CancellationToken::new();
    let d = Deliverer::new(spool.clone(), exec.clone(), "audit", FAST).unwrap();
    let task = tokio::spawn(d.run(cancel.clone()));

    b.fail_next_audits(3);
    let r1 = record(1, "success");
    let r2 = record(2, "policy_rejected");
    spool.append(&r1).unwrap();
    spool.append(&r2).unwrap();
    eventually("both records delivered", || b.audit_records().len() == 2).await;
    eventually("both acked", || spool.backlog() == 0).await;

    let got = b.audit_records();
    assert_eq!(got[0]["id"], r1.id.as_str());
    assert_eq!(got[1]["result"], "policy_rejected");
    assert_eq!(got[1]["method"], "IVR-SSPR");
    assert_eq!(got[1]["timestamp"], "2026-11-26T08:00:00Z");
    assert_eq!(got[1]["flow_version"], "7");
    // Three 503s were retried (the action retries, then the deliverer).
    let posts = b.requests().iter().filter(|r| r.path == "/audit").count();
    assert!(posts >= 5, "{posts}");
    let first = &b.requests()[0];
    assert_eq!(first.header("idempotency-key"), Some(r1.id.as_str()));

    // Wakes on a new append after idling.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r3 = record(3, "locked");
    spool.append(&r3).unwrap();
    eventually("third delivered", || b.audit_records().len() == 3).await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("deliverer stops on cancel")
        .unwrap();
}

#[tokio::test]
async fn undelivered_records_survive_a_restart() {
    let (b, exec) = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (record(1, "success"), record(2, "otp_exhausted"));
    {
        // Spooled while the receiver is down; then the process "dies".
        let spool = Spool::open(dir.path()).unwrap();
        spool.append(&r1).unwrap();
        spool.append(&r2).unwrap();
    }
    // The bytes are on disk (read through a fresh handle).
    let text = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    assert!(text.contains(&r1.id) && text.contains(&r2.id));

    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    assert_eq!(spool.pending(), vec![r1.clone(), r2.clone()]);
    let cancel = CancellationToken::new();
    let d = Deliverer::new(spool.clone(), exec, "audit", FAST).unwrap();
    assert_eq!(d.backlog(), 2);
    let task = tokio::spawn(d.run(cancel.clone()));
    eventually("redelivered", || spool.backlog() == 0).await;
    let ids: Vec<_> = b.audit_records().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, [r1.id.clone(), r2.id.clone()]);
    cancel.cancel();
    task.await.unwrap();

    // And nothing is pending after another restart.
    assert!(Spool::open(dir.path()).unwrap().pending().is_empty());
}

#[tokio::test]
async fn crash_between_delivery_and_ack_arrives_exactly_once() {
    let (b, exec) = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let r1 = record(1, "success");
    {
        let spool = Spool::open(dir.path()).unwrap();
        spool.append(&r1).unwrap();
        // Delivered by hand, then the process dies before `ack`.
        let res = exec.run("audit", &r1.to_vars()).await;
        assert_eq!(res.outcome, "success");
    }
    assert_eq!(b.audit_records().len(), 1);

    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    assert_eq!(spool.backlog(), 1, "un-acked record is pending again");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        Deliverer::new(spool.clone(), exec, "audit", FAST)
            .unwrap()
            .run(cancel.clone()),
    );
    eventually("acked after redelivery", || spool.backlog() == 0).await;
    cancel.cancel();
    task.await.unwrap();

    // Sent twice, stored once.
    let posts = b.requests().iter().filter(|r| r.path == "/audit").count();
    assert_eq!(posts, 2);
    assert_eq!(b.audit_records().len(), 1);
    assert_eq!(b.audit_records()[0]["id"], r1.id.as_str());
}

#[tokio::test]
async fn deliverer_needs_a_defined_action() {
    let (_b, exec) = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let err = Deliverer::new(spool, exec, "no_such_audit", FAST).err().unwrap();
    assert!(err.to_string().contains("no_such_audit"));
}
