//! Shared support for end-to-end tests: start the real binary, find free
//! ports, run sipp and `dial` with timeouts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod tools;

pub const BIN: &str = env!("CARGO_BIN_EXE_sspr-ivr");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static FREE_NEXT: AtomicU16 = AtomicU16::new(0);

/// A UDP+TCP port that is free right now, from 10000–19999: below the kernel's
/// ephemeral range (32768–60999) and the servers' RTP blocks. A port the kernel
/// hands out for `:0` (as this did before) is one it may hand again, between the
/// check and the server's bind, to any other test's outgoing connection: a CI
/// run failed once with "bind SIP TCP 127.0.0.1:57493: Address already in use".
/// Each test binary starts at its own offset, and takes ports in turn from there.
pub fn free_port() -> u16 {
    const FIRST: u32 = 10000;
    const COUNT: u32 = 10000;
    // On ::1 too (a test may listen there); a host without IPv6 does not count.
    let v6_free =
        |e: std::io::Result<()>| !matches!(e, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse);
    let start = std::process::id() % 8 * (COUNT / 8);
    for _ in 0..COUNT {
        let n = u32::from(FREE_NEXT.fetch_add(1, Ordering::SeqCst));
        let port = (FIRST + (start + n) % COUNT) as u16;
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && v6_free(UdpSocket::bind(("::1", port)).map(drop))
            && v6_free(TcpListener::bind(("::1", port)).map(drop));
        if free {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

static SIPP_MEDIA_NEXT: AtomicU16 = AtomicU16::new(0);

/// A base port for sipp's media (`-mp`): sipp binds it and the next three (audio
/// and video RTP and RTCP), so all four must be free. Taken from 61000–65535, above
/// the kernel's ephemeral range and the servers' RTP blocks, so that another test's
/// socket cannot land on `+2` between the check and sipp's bind (a bare
/// [`free_port`] checked only the first).
pub fn sipp_media_port() -> u16 {
    const SLOTS: u16 = (65532 - 61000) / 4;
    let bin = (std::process::id() % 8) as u16 * (SLOTS / 8);
    loop {
        let n = SIPP_MEDIA_NEXT.fetch_add(1, Ordering::SeqCst);
        let base = 61000 + 4 * ((bin + n) % SLOTS);
        let free = (base..base + 4).all(|p| {
            UdpSocket::bind(("0.0.0.0", p)).is_ok() && TcpListener::bind(("0.0.0.0", p)).is_ok()
        });
        if free {
            return base;
        }
    }
}

/// `127.0.0.1` at a [`free_port`].
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

static RTP_BASE: AtomicU16 = AtomicU16::new(0);

/// A block of 1000 RTP ports for one server in this test binary.
pub fn rtp_block() -> u16 {
    let n = RTP_BASE.fetch_add(1, Ordering::SeqCst);
    // Distinct per test binary too: spread by process id.
    let bin = (std::process::id() % 8) as u16;
    20000 + bin * 4000 + (n % 4) * 1000
}

/// The running server; killed on drop. Its stdout and stderr are kept.
pub struct Server {
    pub child: Child,
    pub sip: SocketAddr,
    pub admin: SocketAddr,
    pub backend: SocketAddr,
    pub dir: tempfile::TempDir,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `sspr-ivr demo` with recordings and a spool in a temp dir.
    pub fn demo(extra: &[&str]) -> Server {
        Server::demo_at(free_addr(), extra)
    }

    /// [`Server::demo`] with SIP (and so media) on `sip`, e.g. `[::1]:PORT`.
    pub fn demo_at(sip: SocketAddr, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin: SocketAddr = free_addr();
        let backend: SocketAddr = free_addr();
        let rtp = rtp_block().to_string();
        let rec = dir.path().join("recordings");
        let spool = dir.path().join("spool");
        let mut args: Vec<String> = vec![
            "--log-level".into(),
            "trace".into(),
            "demo".into(),
            "--sip".into(),
            sip.to_string(),
            "--admin".into(),
            admin.to_string(),
            "--backend".into(),
            backend.to_string(),
            "--record".into(),
            rec.display().to_string(),
            "--spool".into(),
            spool.display().to_string(),
            "--rtp-port-min".into(),
            rtp,
            "--sms-delay".into(),
            "0s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn(&args, sip, admin, backend, dir)
    }

    pub fn spawn(
        args: &[String],
        sip: SocketAddr,
        admin: SocketAddr,
        backend: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Server {
        Server::spawn_with(args, &[], sip, admin, backend, dir)
    }

    fn spawn_with(
        args: &[String],
        env: &[(&str, String)],
        sip: SocketAddr,
        admin: SocketAddr,
        backend: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        Server::spawn_command(cmd, sip, admin, backend, dir)
    }

    /// Start `cmd` (the binary with its arguments, set up as the caller likes:
    /// limits, environment) as the server; returns once it listens.
    pub fn spawn_command(
        mut cmd: Command,
        sip: SocketAddr,
        admin: SocketAddr,
        backend: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Server {
        let mut child = cmd
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sspr-ivr");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("listening on") || line.starts_with("sspr-ivr demo") {
                        let _ = ready_tx.send(());
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        let server = Server {
            child,
            sip,
            admin,
            backend,
            dir,
            output,
        };
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!(
                "server did not start within 60 s; output:\n{}",
                server.output_text()
            );
        }
        server
    }

    pub fn output_text(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Wait until the output contains `needle` (or time out).
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.output_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip)
    }

    pub fn recordings(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// Wait for the process to exit (after a signal); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a command with a hard timeout; returns (success, stdout, stderr).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    (
        status.map(|s| s.success()).unwrap_or(false),
        stdout,
        stderr
            + if status.is_none() {
                "\n[killed: timeout]"
            } else {
                ""
            },
    )
}

/// `sspr-ivr dial` against `uri`; returns the transcript lines.
pub fn dial(uri: &str, args: &[&str], timeout: Duration) -> (bool, Vec<String>, String) {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(repo()).arg("dial").arg(uri).args(args);
    let (ok, out, err) = run_with_timeout(&mut cmd, timeout);
    (ok, out.lines().map(str::to_string).collect(), err)
}

/// The prompt names in a dial transcript, in order.
pub fn prompts_heard(transcript: &[String]) -> Vec<String> {
    transcript
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .get(1..3)
                .and_then(|w| (w[0] == "prompt").then(|| w[1].to_string()))
        })
        .collect()
}

/// What the echo flow plays to a caller who types `digits` and `#`: the
/// intro, the read-back of every digit, and goodbye.
pub fn echo_readback(digits: &str) -> Vec<String> {
    let mut want = vec!["echo_intro".to_string(), "you_entered".to_string()];
    want.extend(digits.chars().map(|c| format!("digit_{c}")));
    want.push("goodbye".into());
    want
}

/// sipp must be installed: these tests fail, never skip, without it.
pub fn sipp() -> &'static str {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "sipp is not installed: apt-get install -y sip-tester");
    "sipp"
}

/// Run a sipp scenario from tests/sipp against `server` (one call unless
/// `extra` says otherwise); returns (sipp exited 0, its output).
pub fn run_sipp(
    server: &Server,
    scenario: &str,
    service: &str,
    extra: &[&str],
    timeout: Duration,
) -> (bool, String) {
    let scen = repo().join("tests/sipp").join(scenario);
    let mut cmd = Command::new(sipp());
    cmd.current_dir(repo().join("tests/sipp"))
        .arg(server.sip.to_string())
        .args(["-sf", &scen.display().to_string()])
        .args(["-s", service])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-mp", &sipp_media_port().to_string()])
        .args(["-p", &free_port().to_string()])
        .args([
            "-timeout",
            &format!("{}s", timeout.as_secs()),
            "-timeout_error",
        ])
        .arg("-nostdin")
        .args(extra);
    let (ok, out, err) = run_with_timeout(&mut cmd, timeout + Duration::from_secs(10));
    (ok, format!("{out}\n{err}"))
}

pub fn read_to_string(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A minimal HTTP/1.1 GET over loopback with a timeout; returns (status,
/// body), the body de-chunked.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_text(addr, path)
}

/// Poll `f` until it returns Some, or panic after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file under `dir`, recursively, as bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

/// A running `dial` with piped stdin, for tests that type digits later.
pub struct Dialer {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Dialer {
    pub fn start(uri: &str, args: &[&str]) -> Dialer {
        let mut child = Command::new(BIN)
            .current_dir(repo())
            .arg("dial")
            .arg(uri)
            .arg("--stdin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dial");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Dialer { child, lines }
    }

    pub fn type_digits(&mut self, digits: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{digits}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn transcript(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait for the call to end; true if dial exited 0.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Let the reader threads drain.
                std::thread::sleep(Duration::from_millis(100));
                return st.success();
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dialer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sample of a `/metrics` text (`name{labels}` exactly as exposed), if present.
pub fn metric_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then(|| v.parse().ok()).flatten()
        })
}

/// One series of the server's `/metrics` (`name{labels}` exactly as exposed),
/// which must be there.
pub fn server_sample(server: &Server, series: &str) -> f64 {
    metric_sample(&server_metrics(server), series).unwrap_or_else(|| panic!("{series} on /metrics"))
}

/// Wait (20 s at most) until the server has no call up: a call's counters are
/// final once it has ended.
pub fn wait_calls_ended(server: &Server) {
    wait_for("the calls to end", Duration::from_secs(20), || {
        (server_sample(server, "sspr_ivr_calls_active") == 0.0).then_some(())
    });
}

/// An echo call with `dial` and `args` (60 s at most) that must succeed;
/// returns its transcript, as lines and as text.
pub fn dial_echo(server: &Server, args: &[&str]) -> (Vec<String>, String) {
    let (ok, transcript, err) = dial(&server.uri("echo"), args, Duration::from_secs(60));
    let text = transcript.join("\n");
    assert!(
        ok,
        "dial failed:\n{text}\n{err}\nserver:\n{}",
        server.output_text()
    );
    (transcript, text)
}

/// The RTP packets a `dial` transcript says the caller sent (`rtp sent N packets`).
pub fn rtp_sent(transcript: &[String]) -> f64 {
    transcript
        .iter()
        .find_map(|l| l.split("rtp sent ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in:\n{}", transcript.join("\n")))
}

/// The server's `/metrics` text (asserting a 200).
pub fn server_metrics(server: &Server) -> String {
    let (status, body) = http_get_text(server.admin, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// Like [`http_get`], but returns the whole body as text, de-chunked
/// (for `/metrics`, whose text must not be cut to a JSON-looking part).
pub fn http_get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (status, String::new());
    };
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    (status, out)
}

impl Server {
    /// [`Server::spawn`] with extra environment variables for the child
    /// (e.g. `NOTIFY_SOCKET` and `WATCHDOG_USEC` for the systemd protocol).
    pub fn spawn_env(
        args: &[String],
        env: &[(&str, String)],
        sip: SocketAddr,
        admin: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Server {
        Server::spawn_with(args, env, sip, admin, admin, dir)
    }
}
pub mod baresip;
pub mod configured;
pub mod netns;
pub mod pki;
pub mod tmpfs;

/// Whether a SIP server at `addr` answers an out-of-dialog OPTIONS over UDP
/// with `200` within `timeout` (sent again every 200 ms): how the tests wait
/// for Kamailio to come up.
pub fn answers_options(addr: SocketAddr, timeout: Duration) -> bool {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe\r\n\
         From: <sip:probe@{local}>;tag=p\r\nTo: <sip:{addr}>\r\nCall-ID: probe@{local}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let _ = probe.send_to(options.as_bytes(), addr);
        if let Ok((n, _)) = probe.recv_from(&mut buf) {
            if buf[..n].starts_with(b"SIP/2.0 200") {
                return true;
            }
        }
    }
    false
}
