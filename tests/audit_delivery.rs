//! Audit spool + deliverer against the demo backend's audit receiver:
//! delivery, retry with backoff, redelivery after restart, and "exactly
//! once" at the receiver when a crash falls between delivery and ack; and
//! against a receiver that rejects one record: dead letter after N
//! rejections, with delivery continuing behind it.

use std::sync::Arc;
use std::time::Duration;

use sspr_ivr::actions::Executor;
use sspr_ivr::audit::{
    AuditRecord, Backoff, CallFacts, Deliverer, DeliveryTarget, FixedClock, Spool, DEAD_LETTERS,
};
use sspr_ivr::demo::{demo_actions, DemoBackend, DemoOptions};
use sspr_ivr::ops::metrics::Metrics;
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
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
    let ids: Vec<_> = b
        .audit_records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
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
    let err = Deliverer::new(spool, exec, "no_such_audit", FAST)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no_such_audit"));
}

/// A real HTTP audit receiver on loopback: stores records, but answers
/// `reject_status` for any record whose `call_id` is `poison`.
struct Receiver {
    addr: std::net::SocketAddr,
    stored: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    posts: Arc<std::sync::atomic::AtomicUsize>,
}

async fn receiver(reject_status: u16) -> Receiver {
    use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
    type St = (
        Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
        Arc<std::sync::atomic::AtomicUsize>,
        u16,
    );
    async fn audit(
        State((stored, posts, reject)): State<St>,
        Json(v): Json<serde_json::Value>,
    ) -> (StatusCode, String) {
        posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if v["call_id"] == "poison" {
            return (
                StatusCode::from_u16(reject).unwrap(),
                "{\"error\":\"no\"}".into(),
            );
        }
        stored.lock().unwrap().push(v);
        (StatusCode::CREATED, "{\"status\":\"stored\"}".into())
    }
    let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = Router::new().route("/audit", post(audit)).with_state((
        stored.clone(),
        posts.clone(),
        reject_status,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        addr,
        stored,
        posts,
    }
}

fn poison() -> AuditRecord {
    let clock = FixedClock(datetime!(2026-11-26 08:00:00 UTC));
    AuditRecord::new(
        &clock,
        &CallFacts {
            ani: "+15550100000",
            call_id: "poison",
            flow: "sspr",
            flow_version: "7",
        },
        "success",
        "reset_attempt",
    )
}

fn metric(m: &Metrics, name: &str) -> f64 {
    m.encode()
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_record_rejected_n_times_is_dead_lettered_and_delivery_continues() {
    let rx = receiver(422).await;
    let exec = Arc::new(
        Executor::with_env(
            demo_actions(&format!("http://{}", rx.addr)).unwrap(),
            |_| None,
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let bad = poison();
    let (r1, r2) = (record(1, "success"), record(2, "locked"));
    spool.append(&bad).unwrap();
    spool.append(&r1).unwrap();
    spool.append(&r2).unwrap();

    let metrics = Arc::new(Metrics::new());
    let cancel = CancellationToken::new();
    let d = Deliverer::following(spool.clone(), FAST, move || DeliveryTarget {
        executor: exec.clone(),
        action: Some("audit".into()),
        dead_letter_after: 3,
    })
    .with_metrics(metrics.clone());
    let task = tokio::spawn(d.run(cancel.clone()));
    eventually("the records behind the rejected one delivered", || {
        rx.stored.lock().unwrap().len() == 2
    })
    .await;
    eventually("nothing pending", || spool.backlog() == 0).await;
    cancel.cancel();
    task.await.unwrap();

    let ids: Vec<String> = rx
        .stored
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [r1.id.clone(), r2.id.clone()],
        "in order, behind the rejected one"
    );
    // Rejected exactly three times, then moved aside.
    assert_eq!(rx.posts.load(std::sync::atomic::Ordering::SeqCst), 3 + 2);
    let dead = std::fs::read_to_string(dir.path().join(DEAD_LETTERS)).unwrap();
    let dead: Vec<AuditRecord> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead, vec![bad.clone()]);
    assert_eq!(
        metric(&metrics, "sspr_ivr_audit_records_delivered_total"),
        2.0
    );
    assert_eq!(
        metric(&metrics, "sspr_ivr_audit_delivery_failures_total"),
        3.0
    );
    assert_eq!(metric(&metrics, "sspr_ivr_audit_spool_backlog"), 0.0);
    assert_eq!(
        metric(&metrics, "sspr_ivr_audit_records_dead_lettered_total"),
        1.0
    );
    // A restart does not bring the dead letter back.
    assert!(Spool::open(dir.path()).unwrap().pending().is_empty());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_not_dead_lettered() {
    // 503 for the record: the receiver's trouble, not the record's.
    let rx = receiver(503).await;
    let exec = Arc::new(
        Executor::with_env(
            demo_actions(&format!("http://{}", rx.addr)).unwrap(),
            |_| None,
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    spool.append(&poison()).unwrap();
    spool.append(&record(1, "success")).unwrap();
    let cancel = CancellationToken::new();
    let d = Deliverer::following(spool.clone(), FAST, move || DeliveryTarget {
        executor: exec.clone(),
        action: Some("audit".into()),
        dead_letter_after: 2,
    });
    let task = tokio::spawn(d.run(cancel.clone()));
    eventually("many attempts", || {
        rx.posts.load(std::sync::atomic::Ordering::SeqCst) >= 8
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(spool.backlog(), 2, "both still pending, in order");
    assert_eq!(spool.front().unwrap().call_id, "poison");
    assert!(rx.stored.lock().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(DEAD_LETTERS)).unwrap(),
        ""
    );
}
