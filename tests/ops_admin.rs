//! Admin HTTP over loopback: content types, readiness transitions, liveness and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sspr_ivr::ops::admin::{self, Readiness};
use sspr_ivr::ops::metrics::{CallEnd, Metrics, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Server {
    base: String,
    client: reqwest::Client,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), admin::AdminError>>,
}

async fn start(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Server {
    let listener = admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(admin::serve(listener, metrics, readiness, cancel.clone()));
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .expect("client");
    Server {
        base: format!("http://{addr}"),
        client,
        cancel,
        task,
    }
}

impl Server {
    async fn get(&self, path: &str) -> (u16, String, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.expect("body");
        (status, ctype, body)
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("admin server stops on cancel")
            .expect("join")
            .expect("serve result");
    }
}

#[tokio::test]
async fn metrics_endpoint_serves_openmetrics_text() {
    let metrics = Arc::new(Metrics::new());
    metrics.call_finished(CallEnd::Transferred);
    let _active = metrics.call_started();
    let server = start(metrics.clone(), Arc::new(Readiness::new())).await;

    let (status, ctype, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, CONTENT_TYPE);
    assert!(body.contains("sspr_ivr_calls_finished_total{outcome=\"transferred\"} 1\n"));
    assert!(body.contains("sspr_ivr_calls_active 1\n"));
    assert!(body.ends_with("# EOF\n"));

    // Live values, not a snapshot taken at start-up.
    metrics.call_finished(CallEnd::Transferred);
    let (_, _, body) = server.get("/metrics").await;
    assert!(body.contains("sspr_ivr_calls_finished_total{outcome=\"transferred\"} 2\n"));

    let (status, _, _) = server.get("/nope").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn readyz_follows_listening_and_draining() {
    let readiness = Arc::new(Readiness::new());
    let server = start(Arc::new(Metrics::new()), readiness.clone()).await;

    let (status, ctype, body) = server.get("/readyz").await;
    assert_eq!((status, body.as_str()), (503, "not listening\n"));
    assert!(ctype.starts_with("text/plain"));

    readiness.set_listening(true);
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    readiness.set_draining();
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!((status, body.as_str()), (503, "draining\n"));

    // Draining does not make the process unhealthy.
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn healthz_fails_when_main_loop_stalls() {
    let readiness = Arc::new(Readiness::with_liveness_limit(Duration::from_secs(10)));
    let server = start(Arc::new(Metrics::new()), readiness.clone()).await;

    readiness.beat();
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A last beat a minute ago: the loop is stuck.
    let past = Instant::now()
        .checked_sub(Duration::from_secs(60))
        .expect("monotonic clock older than a minute");
    readiness.beat_at(past);
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 503);

    readiness.beat();
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn cancel_stops_accepting_connections() {
    let server = start(Arc::new(Metrics::new()), Arc::new(Readiness::new())).await;
    let base = server.base.clone();
    server.stop().await;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .expect("client");
    let result = client.get(format!("{base}/healthz")).send().await;
    assert!(result.is_err(), "server must be gone after cancel");
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = admin::bind(addr).await.expect_err("port in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// Whether the server closed `stream` within `wait` (end of stream or a reset),
/// rather than leaving it open.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

#[tokio::test]
async fn idle_connections_cannot_take_the_admin_port() {
    let metrics = Arc::new(Metrics::new());
    let server = start(metrics.clone(), Arc::new(Readiness::new())).await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // One address opens 20 connections and sends nothing.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(
            tokio::time::timeout(TIMEOUT, sock.connect(addr))
                .await
                .expect("connect in time")
                .expect("connect"),
        );
    }
    let mut shed = 0;
    let mut held = Vec::new();
    for mut s in idle {
        if closed_within(&mut s, Duration::from_millis(500)).await {
            shed += 1;
        } else {
            held.push(s);
        }
    }
    assert_eq!(
        (held.len(), shed),
        (
            admin::MAX_CONNECTIONS_PER_SOURCE,
            20 - admin::MAX_CONNECTIONS_PER_SOURCE
        ),
        "one address holds at most its share; the rest are closed at accept"
    );
    assert_eq!(admin_closed(&metrics, "source_limit"), Some(shed as u64));
    assert_eq!(admin_closed(&metrics, "head_timeout"), None);
    // The scraper, from another address, is served meanwhile.
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // The silent ones are closed once their request head is overdue.
    let started = Instant::now();
    for s in held.iter_mut() {
        assert!(
            closed_within(s, admin::HEADER_TIMEOUT + Duration::from_secs(3)).await,
            "an idle admin connection stayed open {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        admin_closed(&metrics, "head_timeout"),
        Some(admin::MAX_CONNECTIONS_PER_SOURCE as u64)
    );
    server.stop().await;
}

/// `sspr_ivr_admin_connections_closed_total{reason}` as scraped, if present.
fn admin_closed(metrics: &Metrics, reason: &str) -> Option<u64> {
    let prefix = format!("sspr_ivr_admin_connections_closed_total{{reason=\"{reason}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.parse().unwrap()))
}
