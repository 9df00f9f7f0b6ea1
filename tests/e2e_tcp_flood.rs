//! End to end, a flood of SIP-over-TCP connections against the real binary
//! (`sspr-ivr serve` with the example config) running with 4,096 file
//! descriptors: 4,200 connections from 40 loopback addresses (127.0.0.2 …
//! 127.0.0.41), half of them idle (connected, silent), half slowloris (a request
//! line, then one header byte a second, never a blank line), each reconnecting a
//! second after the server closes it — while a caller at 127.0.0.1 places a call
//! over UDP with `sspr-ivr dial`. Before the flood, one greedy address
//! (127.0.0.250) opens 80 connections, 16 over its per-source cap.
//!
//! The call must complete and hear exactly its digits; the server must hold at
//! most its TCP cap and shed the rest at accept, close slowloris connections at
//! `sip.tcp_message_timeout` and silent ones at `sip.tcp_idle_timeout`, and keep
//! its resident memory bounded (printed: baseline and peak). The attackers need
//! more than 4,200 descriptors: the test raises its own soft limit to the hard
//! one and fails if that is not enough.

mod common;

use common::configured::write_config;
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// The server's descriptor limit (soft and hard).
const SERVER_NOFILE: u64 = 4096;
/// Connections the attackers keep trying to hold, and from how many addresses.
const CONNECTIONS: usize = 4200;
const SOURCES: usize = 40;
/// `sip.tcp_max_connections_per_source` in the example config.
const PER_SOURCE_CAP: usize = 64;
/// Short enough to be seen within the test, long enough for real clients.
const MESSAGE_TIMEOUT: &str = "4s";
const IDLE_TIMEOUT: &str = "12s";

/// What the attackers saw, all connections together.
#[derive(Default)]
struct Tally {
    /// TCP handshakes completed.
    connected: AtomicU64,
    /// Connections the server closed (or reset) while the attacker held them.
    closed_by_server: AtomicU64,
    /// Closed within 500 ms of connecting: shed at accept.
    shed: AtomicU64,
    /// Connect attempts that failed or timed out (the accept queue was full).
    connect_failed: AtomicU64,
    /// Open on the attackers' side right now.
    open: AtomicU64,
}

fn set_nofile(soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct passed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Start the server with a descriptor limit of [`SERVER_NOFILE`], set in the
/// child between fork and exec (as `prlimit --nofile=4096` would).
fn serve_with_4096_descriptors() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    // The echo flow calls no backend; nothing listens here.
    let backend: SocketAddr = free_addr();
    let config = dir.path().join("config.yaml");
    write_config(
        &config,
        sip,
        admin,
        backend,
        "http://127.0.0.1:9/audit",
        &dir.path().join("spool"),
    );
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    doc["sip"]["tcp_message_timeout"] = MESSAGE_TIMEOUT.into();
    doc["sip"]["tcp_idle_timeout"] = IDLE_TIMEOUT.into();
    std::fs::write(&config, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--log-level", "info", "serve", "--config"])
        .arg(&config);
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| set_nofile(SERVER_NOFILE, SERVER_NOFILE));
    }
    Server::spawn_command(cmd, sip, admin, backend, dir)
}

/// One attacker connection, reconnecting a second after each close.
async fn attacker(
    source: IpAddr,
    target: SocketAddr,
    slowloris: bool,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(source, 0)).unwrap();
        let mut stream =
            match tokio::time::timeout(Duration::from_secs(3), sock.connect(target)).await {
                Ok(Ok(s)) => s,
                _ => {
                    tally.connect_failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
        let opened = Instant::now();
        tally.connected.fetch_add(1, Ordering::Relaxed);
        tally.open.fetch_add(1, Ordering::Relaxed);
        if slowloris {
            let _ = stream
                .write_all(
                    format!("INVITE sip:echo@{target} SIP/2.0\r\nVia: SIP/2.0/TCP ").as_bytes(),
                )
                .await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut buf = [0u8; 512];
        let closed = loop {
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        break false;
                    }
                    if slowloris && stream.write_all(b"x").await.is_err() {
                        break true;
                    }
                }
            }
        };
        tally.open.fetch_sub(1, Ordering::Relaxed);
        if closed {
            tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
            if opened.elapsed() < Duration::from_millis(500) {
                tally.shed.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Resident set size of `pid` in KiB: (now, peak).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Raise this process's soft descriptor limit to the hard one; it must reach `need`.
fn raise_own_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert!(
        lim.rlim_max >= need,
        "the attackers need {need} descriptors; the hard limit is {}",
        lim.rlim_max
    );
    set_nofile(lim.rlim_max, lim.rlim_max).unwrap();
}

/// A sample from the server's /metrics: the value of the line starting with `name`.
fn metric(server: &Server, name: &str) -> u64 {
    let (_, body) = http_get_text(server.admin, "/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn closed(server: &Server, reason: &str) -> u64 {
    metric(
        server,
        &format!("sspr_ivr_sip_tcp_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

#[test]
fn a_udp_call_completes_while_4200_tcp_connections_flood_a_4096_descriptor_server() {
    raise_own_nofile(CONNECTIONS as u64 + 1024);
    let server = serve_with_4096_descriptors();
    let pid = server.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert!(
        nofile.split_whitespace().nth(3) == Some("4096"),
        "server limit: {nofile}"
    );
    // The cap the server chose for its descriptors: 256 + 2 per call kept.
    let cap: u64 = wait_for("the TCP cap in the log", Duration::from_secs(10), || {
        let out = server.output_text();
        let line = out
            .lines()
            .find(|l| l.contains("SIP over TCP"))?
            .to_string();
        line.split("tcp_max_connections=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    assert_eq!(cap, 4096 - 256 - 2 * 1000, "{}", server.output_text());
    let (baseline, _) = rss_kib(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flood_start = Instant::now();
    // One greedy address first, 16 over its per-source cap of 64, while the
    // global cap still has room: its surplus must be shed by the per-source
    // cap. (In the flood itself, spread evenly over 40 addresses, which cap
    // trips first depends on timing.)
    let greedy = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 250));
    for _ in 0..PER_SOURCE_CAP + 16 {
        rt.spawn(attacker(
            greedy,
            server.sip,
            false,
            tally.clone(),
            stop.clone(),
        ));
    }
    wait_for(
        "the per-source cap to shed the greedy address's surplus",
        Duration::from_secs(20),
        || (closed(&server, "source_limit") > 0).then_some(()),
    );
    for i in 0..CONNECTIONS {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8));
        rt.spawn(attacker(
            source,
            server.sip,
            i % 2 == 1,
            tally.clone(),
            stop.clone(),
        ));
    }
    // The flood is up when the server holds its cap.
    let held = wait_for(
        "the server to hold its TCP cap",
        Duration::from_secs(20),
        || {
            let n = metric(&server, "sspr_ivr_sip_tcp_connections");
            (n >= cap).then_some(n)
        },
    );
    eprintln!(
        "flood up after {:?}: server holds {held}, attackers connected {} times",
        flood_start.elapsed(),
        tally.connected.load(Ordering::Relaxed)
    );

    // Peak memory and descriptors, sampled while the call runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let (mut rss, mut fds) = (0, 0);
            while sampling.load(Ordering::Relaxed) {
                rss = rss.max(rss_kib(pid).0);
                fds = fds.max(open_descriptors(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            (rss, fds)
        })
    };

    let (ok, transcript, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "4711#"],
        Duration::from_secs(40),
    );
    let call_done = flood_start.elapsed();
    let held_during_call = metric(&server, "sspr_ivr_sip_tcp_connections");
    assert!(
        ok,
        "dial failed under the flood:\n{}\n{err}\nserver:\n{}",
        transcript.join("\n"),
        server.output_text()
    );
    assert_eq!(
        prompts_heard(&transcript),
        echo_readback("4711"),
        "{}",
        transcript.join("\n")
    );
    assert!(
        held_during_call <= cap,
        "{held_during_call} connections held, cap {cap}"
    );

    // Slowloris connections go at the message timeout, silent ones at the
    // idle timeout: both happen while the flood goes on.
    wait_for(
        "slowloris and idle connections to be closed",
        Duration::from_secs(30),
        || (closed(&server, "slow_message") > 0 && closed(&server, "idle") > 0).then_some(()),
    );
    let by_reason: Vec<(&str, u64)> = ["limit", "source_limit", "slow_message", "idle"]
        .into_iter()
        .map(|r| (r, closed(&server, r)))
        .collect();
    sampling.store(false, Ordering::Relaxed);
    let (peak_rss, peak_fds) = sampler.join().unwrap();
    let (_, hwm) = rss_kib(pid);
    stop.store(true, Ordering::Relaxed);
    rt.shutdown_timeout(Duration::from_secs(5));

    eprintln!(
        "server RSS: baseline {} MiB, peak {} MiB (VmHWM {} MiB); peak descriptors {peak_fds} of {SERVER_NOFILE}; \
         TCP cap {cap}, held during the call {held_during_call}; call done {call_done:?} into the flood; \
         closed by reason {by_reason:?}; attackers: {} connects, {} closed by the server ({} shed at accept), {} connects failed",
        baseline / 1024,
        peak_rss / 1024,
        hwm / 1024,
        tally.connected.load(Ordering::Relaxed),
        tally.closed_by_server.load(Ordering::Relaxed),
        tally.shed.load(Ordering::Relaxed),
        tally.connect_failed.load(Ordering::Relaxed),
    );
    // Shed at accept, by both caps: the greedy address by its own, the flood
    // (40 × 105 connections) by the global one.
    assert!(by_reason[0].1 > 0 && by_reason[1].1 > 0, "{by_reason:?}");
    assert!(tally.shed.load(Ordering::Relaxed) > 0);
    // Never out of descriptors: the call's RTP socket always had one.
    assert!(peak_fds < SERVER_NOFILE as usize, "{peak_fds} descriptors");
    // Bounded memory: about 40 kB per held connection at most, over the baseline.
    let bound_kib = baseline + cap * 40;
    assert!(
        hwm <= bound_kib,
        "peak RSS {hwm} KiB over the bound {bound_kib} KiB (baseline {baseline} KiB)"
    );
}
