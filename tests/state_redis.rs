//! The Redis state store (`state.backend: redis`) against a real
//! `redis-server` on a free port: two stores (two instances) admitting at the
//! same moment share one window and never both take the last slot; keys are
//! hashed and expire with their window; a refused event is not counted; a
//! server that is gone is an error within `state.timeout` (the caller fails
//! closed). Needs redis-server (`.ci/run` installs it). Every wait is bounded.

mod common;

use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sspr_ivr::runtime::state::{Backend, Limit, Space, StateConfig, StateStore, Verdict};

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn limit(key: &str, max: u32, window: Duration) -> Limit<'_> {
    Limit {
        space: Space::AttemptsPerAccount,
        key,
        max,
        window,
        max_keys: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_atomic_expiring_window() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let redis = Redis(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--dir", &dir.path().display().to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: apt-get install redis-server"),
    );
    let end = Instant::now() + Duration::from_secs(15);
    while !ping(addr) {
        assert!(Instant::now() < end, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cfg = StateConfig {
        backend: Backend::Redis,
        url: format!("redis://{addr}/0"),
        key_prefix: "t:".into(),
        timeout: Duration::from_secs(2),
    };
    let stores: Vec<Arc<StateStore>> = (0..2)
        .map(|_| Arc::new(StateStore::from_config(&cfg).unwrap()))
        .collect();

    // 40 attempts on one account at once, 20 through each store: exactly 7 in.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let now = Instant::now();
            store
                .admit(
                    now,
                    SystemTime::now(),
                    &[limit("1001", 7, Duration::from_secs(3600))],
                )
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap() == Verdict::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 7, "the last slot is taken once");

    // The key names no account id and expires with its window.
    let client = redis::Client::open(cfg.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("t:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("t:attempts:account:"), "{keys:?}");
    assert!(!keys[0].contains("1001"), "hashed: {keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 3_500_000 && ttl <= 3_600_000,
        "expires with the window: {ttl}"
    );

    // Two limits: a refusal by the second spends nothing of the first.
    let short = Duration::from_millis(400);
    let both = |ani| [limit(ani, 5, short), limit("2002", 1, short)];
    let s = &stores[0];
    let v = s
        .admit(Instant::now(), SystemTime::now(), &both("a"))
        .await
        .unwrap();
    assert_eq!(v, Verdict::Admitted);
    let v = s
        .admit(Instant::now(), SystemTime::now(), &both("b"))
        .await
        .unwrap();
    assert_eq!(v, Verdict::Refused(1));
    let v = stores[1]
        .admit(Instant::now(), SystemTime::now(), &[limit("b", 1, short)])
        .await
        .unwrap();
    assert_eq!(v, Verdict::Admitted, "b was not charged for the refusal");
    // The window slides.
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    let v = s
        .admit(Instant::now(), SystemTime::now(), &both("c"))
        .await
        .unwrap();
    assert_eq!(v, Verdict::Admitted, "2002's event left its window");
    assert!(s.probe().await.is_ok());

    // The server goes away: an error, within the timeout.
    drop(redis);
    let start = Instant::now();
    assert!(s.probe().await.is_err());
    let r = s.admit(Instant::now(), SystemTime::now(), &both("d")).await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
