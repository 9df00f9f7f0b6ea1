//! Several instances behind Kamailio with their limits in Redis, all real
//! processes: `redis-server` on a free port in its own directory, the demo
//! backend, two `sspr-ivr serve` instances (`state.backend: redis`,
//! `sip.proxies: [127.0.0.1]`) and Kamailio running `deploy/kamailio/kamailio.cfg`
//! (the shipped file, only its defines overridden: ports, probe interval, pike
//! density). Then, the way an operator would see it:
//!
//! 1. 20 sipp calls (from 127.0.0.3) to Kamailio's address spread over both
//!    instances and every one completes (the ACK and the IVR's BYE go through
//!    Kamailio's Record-Route); the instances count each call under 127.0.0.3,
//!    the address Kamailio forwards in X-Forwarded-For;
//! 2. two lookups of one employee id on instance B; the callers stay on;
//! 3. SIGTERM to B: it answers Kamailio's OPTIONS probes with 503;
//! 4. the third lookup of that id, on instance A, is refused (the
//!    per-account limit reached on B holds on A) and the directory never sees it;
//! 5. 10 more calls through Kamailio all complete on A, Kamailio does not try
//!    B, B's two calls (past their check) carry on, then B exits 0;
//! 6. Redis stops: A fails closed — `/readyz` 503, the gauge 0, a new caller
//!    hears the apology and is transferred, the directory is not asked, the
//!    refusal is counted.
//!
//! Needs kamailio, redis-server and sipp (`.ci/run` installs them); fails, never
//! skips, without them. Every wait is bounded.

mod common;

use common::configured::*;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child in its own process group, its output kept; the group is stopped on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(name: &'static str, cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} is not installed ({e}): see .ci/run"));
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Daemon {
            name,
            child,
            output,
        }
    }

    fn log(&self) -> String {
        format!(
            "--- {} ---\n{}",
            self.name,
            self.output.lock().unwrap().join("\n")
        )
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let group = format!("-{}", self.child.id());
        for sig in ["TERM", "KILL"] {
            let _ = Command::new("kill")
                .args(["-s", sig, "--", &group])
                .status();
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `redis-server` on a free loopback port, no persistence, its own directory.
fn start_redis(dir: &Path) -> (Daemon, SocketAddr) {
    let addr = free_addr();
    let redis = Daemon::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--dir", &dir.display().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]),
    );
    wait_for(
        "redis-server to answer PING",
        Duration::from_secs(15),
        || redis_ping(addr).then_some(()),
    );
    (redis, addr)
}

fn redis_ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Kamailio with the shipped configuration, on `addr`, dispatching to `instances`.
fn start_kamailio(dir: &Path, addr: SocketAddr, instances: &[SocketAddr]) -> Daemon {
    let list = dir.join("dispatcher.list");
    let mut text = String::new();
    for (i, a) in instances.iter().enumerate() {
        text.push_str(&format!("1 sip:{a};transport=udp 0 0 duid=ivr-{i}\n"));
    }
    std::fs::write(&list, text).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let k = Daemon::spawn(
        "kamailio",
        Command::new("kamailio")
            .arg("-f")
            .arg(repo().join("deploy/kamailio/kamailio.cfg"))
            .args(["-DD", "-E", "-Y", &run.display().to_string()])
            .args(["-A", &format!("LISTEN=udp:{addr}")])
            .args(["-A", "NO_TCP"])
            .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
            .args(["-A", "PING_INTERVAL=1"])
            // Every sipp call comes from 127.0.0.3: one source, as far as pike can tell.
            .args(["-A", "PIKE_DENSITY=400"]),
    );
    assert!(
        answers_options(addr, Duration::from_secs(15)),
        "kamailio did not start:\n{}",
        k.log()
    );
    k
}

/// One instance: the example config with its limits in Redis and Kamailio
/// (127.0.0.1) as its proxy.
fn start_instance(dir: &Path, name: &str, backend: SocketAddr, redis: SocketAddr) -> Server {
    let config = dir.join(format!("{name}.yaml"));
    let (sip, admin) = write_fresh_config(
        &config,
        backend,
        &format!("http://{backend}/audit"),
        &dir.join(format!("spool-{name}")),
    );
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&read_to_string(&config)).unwrap();
    doc["state"] = serde_yaml::from_str(&format!(
        "{{backend: redis, url: \"redis://{redis}/0\", key_prefix: \"cluster-test:\", timeout: 300ms}}"
    ))
    .unwrap();
    doc["sip"]["proxies"] = serde_yaml::from_str("[127.0.0.1]").unwrap();
    doc["security"]["attempts_per_account_per_hour"] = 2.into();
    doc["drain"]["timeout"] = "40s".into();
    std::fs::write(&config, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let server = serve(&config, sip, admin, backend);
    wait_for(&format!("{name} ready"), Duration::from_secs(15), || {
        (http_get(admin, "/readyz").0 == 200).then_some(())
    });
    server
}

/// The value of one sample in an instance's `/metrics` (0 when absent).
fn metric(server: &Server, name: &str, label: &str) -> f64 {
    let (_, text) = http_get_text(server.admin, "/metrics");
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn completed(server: &Server) -> f64 {
    metric(
        server,
        "sspr_ivr_calls_finished_total{",
        "outcome=\"completed\"",
    )
}

fn lookups_of(backend: SocketAddr, employee_id: &str) -> usize {
    let (_, body) = http_get(backend, "/demo/requests");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    let path = format!("/users/{employee_id}");
    all.iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path.as_str())
        .count()
}

/// `calls` echo calls through Kamailio (tests/sipp/cluster_echo.xml); panics
/// with every log if one fails.
fn calls_through(kamailio: SocketAddr, calls: u32, logs: &dyn Fn() -> String) {
    let mut cmd = Command::new(sipp());
    cmd.current_dir(repo().join("tests/sipp"))
        .arg(kamailio.to_string())
        .args([
            "-sf",
            &repo()
                .join("tests/sipp/cluster_echo.xml")
                .display()
                .to_string(),
        ])
        .args(["-s", "echo", "-m", &calls.to_string(), "-l", "10"])
        .args(["-r", "5", "-rp", "1000"])
        // A caller Kamailio sees as 127.0.0.3, while it is 127.0.0.1 to the instances.
        .args(["-i", "127.0.0.3", "-mi", "127.0.0.3"])
        .args(["-p", &free_port().to_string()])
        .args(["-mp", &sipp_media_port().to_string()])
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"]);
    let (ok, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(75));
    assert!(ok, "sipp through kamailio:\n{out}\n{err}\n{}", logs());
}

#[test]
fn two_instances_behind_kamailio_share_their_limits_in_redis() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let (mut redis, redis_addr) = start_redis(&redis_dir);
    let (_backend, backend) = Backend::start(&["--sms-delay", "0s"]);
    let a = start_instance(dir.path(), "a", backend, redis_addr);
    let mut b = start_instance(dir.path(), "b", backend, redis_addr);
    let k_addr = free_addr();
    let kamailio = start_kamailio(dir.path(), k_addr, &[a.sip, b.sip]);
    let b_output = b.output.clone();
    let logs = || {
        format!(
            "{}\n--- a ---\n{}\n--- b ---\n{}",
            kamailio.log(),
            a.output_text(),
            b_output.lock().unwrap().join("\n")
        )
    };

    // 1. 20 calls to Kamailio's one address: both instances take calls and
    //    every call completes.
    calls_through(k_addr, 20, &logs);
    let (on_a, on_b) = (completed(&a), completed(&b));
    assert_eq!(on_a + on_b, 20.0, "every call completed\n{}", logs());
    assert!(
        on_a >= 1.0 && on_b >= 1.0,
        "both instances took calls: a {on_a}, b {on_b}"
    );

    // Kamailio passed each caller's real address (127.0.0.3, sipp) on in
    // X-Forwarded-For, and the instances counted it, not Kamailio's.
    assert!(
        a.output_text().contains("limit_source=127.0.0.3"),
        "{}",
        logs()
    );

    // 2. Two lookups of one employee id through B, from two numbers (so only
    //    the per-account limit of 2 applies); the callers stay on the line.
    let mut live_on_b = Vec::new();
    for ani in ["5550003001", "5550003002"] {
        let before = lookups_of(backend, "123456");
        live_on_b.push(Dialer::start(
            &b.uri("reset"),
            &[
                "--from",
                ani,
                "--on",
                "enter_employee_id=123456#",
                // Past the lookup the code is sent and hold music plays while
                // the caller waits for it; then this caller hangs up.
                "--hangup-after",
                "25",
            ],
        ));
        wait_for(
            &format!("the lookup from {ani} on b"),
            Duration::from_secs(30),
            || (lookups_of(backend, "123456") == before + 1).then_some(()),
        );
    }

    // 3. SIGTERM to B while those two calls are live: it answers Kamailio's
    //    OPTIONS probes with 503, which takes it out of the dispatcher set.
    b.signal("TERM");
    let end = Instant::now() + Duration::from_secs(15);
    while metric(&b, "sspr_ivr_sip_responses_sent_total{", "code=\"503\"") < 2.0 {
        assert!(
            Instant::now() < end,
            "b did not answer Kamailio's probes with 503:\n{}\n{}",
            http_get_text(b.admin, "/metrics").1,
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(b.admin, "/readyz").0, 503);

    // 4. The third lookup of that employee id, through A, is refused: the
    //    limit reached on B holds on A.
    let (ok, transcript, err) = dial(
        &a.uri("reset"),
        &["--from", "5550003003", "--on", "enter_employee_id=123456#"],
        Duration::from_secs(60),
    );
    let heard = prompts_heard(&transcript);
    assert!(ok, "{}\n{err}\n{}", transcript.join("\n"), logs());
    assert!(
        heard.iter().any(|h| h == "rate_limited"),
        "the caller on a hears the rate-limited apology: {heard:?}"
    );
    assert_eq!(
        lookups_of(backend, "123456"),
        2,
        "the directory was not asked a third time"
    );

    // 5. Calls keep coming through Kamailio: all go to A and complete;
    //    Kamailio did not even try B (no failover away from it).
    let tried_b = |k: &Daemon| {
        k.log()
            .matches(&format!("sspr-ivr at sip:{}", b.sip))
            .count()
    };
    let tried_b_before = tried_b(&kamailio);
    let before_a = completed(&a);
    calls_through(k_addr, 10, &logs);
    assert_eq!(
        completed(&a) - before_a,
        10.0,
        "every call went to a and completed\n{}",
        logs()
    );
    assert_eq!(
        tried_b(&kamailio),
        tried_b_before,
        "kamailio sent b no INVITE once its probe failed\n{}",
        logs()
    );
    // B's calls, past their check, carry on while it drains until their
    // callers hang up; then B exits cleanly.
    for mut d in live_on_b {
        assert!(
            d.wait(Duration::from_secs(60)),
            "{}",
            d.transcript().join("\n")
        );
        let heard = prompts_heard(&d.transcript());
        assert!(
            heard.iter().any(|h| h == "hold_music"),
            "a call past its check on the draining instance carried on: {heard:?}"
        );
    }
    let status = b.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "b exits 0 once drained: {status:?}\n{}",
        logs()
    );

    // 6. Redis goes away: A fails closed.
    redis.stop();
    wait_for("a not ready without redis", Duration::from_secs(10), || {
        (http_get(a.admin, "/readyz").0 == 503).then_some(())
    });
    let (_, body) = http_get(a.admin, "/readyz");
    assert!(body.contains("state store"), "{body}");
    assert_eq!(
        metric(&a, "sspr_ivr_state_store_available", ""),
        0.0,
        "the gauge shows it"
    );
    let (ok, transcript, err) = dial(
        &a.uri("reset"),
        &["--from", "5550003004", "--on", "enter_employee_id=234567#"],
        Duration::from_secs(60),
    );
    let heard = prompts_heard(&transcript);
    assert!(ok, "{}\n{err}\n{}", transcript.join("\n"), logs());
    assert!(
        heard.iter().any(|h| h == "backend_trouble"),
        "an apology: {heard:?}"
    );
    assert!(
        transcript.iter().any(|l| l.contains("sip REFER to")),
        "then a transfer:\n{}",
        transcript.join("\n")
    );
    assert_eq!(lookups_of(backend, "234567"), 0, "no new reset attempt");
    assert!(metric(&a, "sspr_ivr_attempts_refused_state_unavailable_total", "") >= 1.0);
    eprintln!("e2e_cluster: {:?}", started.elapsed());
}
