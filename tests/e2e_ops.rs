//! Operations, end to end against the real binary: `sspr-ivr serve` with a
//! config in a temp dir, real signals, real SIP/RTP over loopback UDP, the
//! admin HTTP endpoints. Drain on SIGTERM, reload on SIGHUP, admission
//! (503 + Retry-After, 488, OPTIONS) and the Prometheus metrics after real
//! calls. Every wait is bounded.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// RTP ranges of this test binary: 36000-37998 in blocks of 200 ports.
static RTP_SLOT: AtomicU16 = AtomicU16::new(0);

fn rtp_range() -> (u16, u16) {
    let n = RTP_SLOT.fetch_add(1, Ordering::SeqCst) % 10;
    let min = 36000 + n * 200;
    (min, min + 198)
}

/// `sspr-ivr serve` on a config in a temp dir that routes every call to a
/// copy of flows/echo.yaml (`<dir>/echo.yaml`, editable for reload tests).
/// `extra` is appended to the YAML (top-level sections not set here).
fn serve(limits: &str, drain: &str, extra: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(repo().join("flows/echo.yaml"), dir.path().join("echo.yaml")).unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let (min, max) = rtp_range();
    let cfg = format!(
        "sip: {{ listen: \"{sip}\" }}\n\
         media: {{ rtp_port_min: {min}, rtp_port_max: {max}, inactivity_timeout: 30s }}\n\
         prompts: {{ dir: {prompts} }}\n\
         flows: {{ echo: echo.yaml }}\n\
         routes: {{ default: echo }}\n\
         limits: {{ {limits} }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         drain: {{ timeout: {drain} }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n\
         {extra}",
        prompts = repo().join("prompts").display(),
    );
    serve_config(dir, &cfg, sip, admin)
}

/// `sspr-ivr serve --config <dir>/config.yaml` with `text` as the config.
fn serve_config(dir: tempfile::TempDir, text: &str, sip: SocketAddr, admin: SocketAddr) -> Server {
    serve_config_env(dir, text, sip, admin, &[])
}

fn serve_config_env(
    dir: tempfile::TempDir,
    text: &str,
    sip: SocketAddr,
    admin: SocketAddr,
    env: &[(&str, String)],
) -> Server {
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let args: Vec<String> = vec![
        "--log-level".into(),
        "debug".into(),
        "serve".into(),
        "--config".into(),
        path.display().to_string(),
    ];
    Server::spawn_env(&args, env, sip, admin, dir)
}

/// `sspr-ivr demo-backend` on a free port, killed on drop.
struct Backend {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Backend {
    fn start() -> Backend {
        use std::io::{BufRead, BufReader};
        let addr: SocketAddr = free_addr();
        let mut child = std::process::Command::new(BIN)
            .args([
                "demo-backend",
                "--listen",
                &addr.to_string(),
                "--sms-delay",
                "0s",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start demo-backend");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("demo-backend did not start");
        Backend { child, addr }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sspr-ivr serve` on config.example.yaml (password reset flow, data
/// actions wired to `backend`), re-rooted into a temp dir, with the
/// audit records kept in the spool and the given drain limit.
fn serve_example(backend: &Backend, drain: &str) -> Server {
    use serde_yaml::Value;
    let dir = tempfile::tempdir().expect("tempdir");
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let (min, max) = rtp_range();
    let text = std::fs::read_to_string(repo().join("config.example.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:8089", &format!("http://{}", backend.addr));
    let mut v: Value = serde_yaml::from_str(&text).unwrap();
    let set = |v: &mut Value, path: &[&str], x: Value| {
        let mut cur = v;
        for k in &path[..path.len() - 1] {
            cur = cur.get_mut(*k).expect("config path");
        }
        cur[path[path.len() - 1]] = x;
    };
    let abs = |p: &str| Value::from(repo().join(p).display().to_string());
    set(&mut v, &["sip", "listen"], Value::from(sip.to_string()));
    set(&mut v, &["admin", "listen"], Value::from(admin.to_string()));
    set(&mut v, &["media", "rtp_port_min"], Value::from(min));
    set(&mut v, &["media", "rtp_port_max"], Value::from(max));
    set(&mut v, &["prompts", "dir"], abs("prompts"));
    set(&mut v, &["flows", "sspr"], abs("flows/sspr.yaml"));
    set(&mut v, &["flows", "echo"], abs("flows/echo.yaml"));
    set(&mut v, &["audit", "action"], Value::Null);
    set(&mut v, &["audit", "spool_dir"], Value::from("spool"));
    set(&mut v, &["drain", "timeout"], Value::from(drain));
    let text = serde_yaml::to_string(&v).unwrap();
    serve_config(dir, &text, sip, admin)
}

/// The value of one sample (`name{labels}` exactly as exposed), or 0.
fn sample(metrics: &str, series: &str) -> f64 {
    metric_sample(metrics, series).unwrap_or(0.0)
}

/// Waits until the server reports `n` active calls.
fn wait_active(server: &Server, n: f64) {
    wait_for(
        &format!("{n} active calls"),
        Duration::from_secs(20),
        || (sample(&server_metrics(server), "sspr_ivr_calls_active") == n).then_some(()),
    );
}

/// Waits until a dial transcript shows `prompt`.
fn wait_heard(d: &Dialer, prompt: &str) {
    let end = Instant::now() + Duration::from_secs(45);
    while !prompts_heard(&d.transcript()).iter().any(|p| p == prompt) {
        assert!(
            Instant::now() < end,
            "timed out waiting for prompt {prompt}; transcript:\n{}",
            d.transcript().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sdp(codecs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP {codecs}\r\na=sendrecv\r\n"
    )
}

/// Sends one raw SIP request over UDP; returns the final response (the first
/// one with a status ≥ 200), after ACKing it if it answers an INVITE.
fn raw_request(to: SocketAddr, method: &str, body: Option<&str>) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let n: u64 = rand::random();
    let branch = format!("z9hG4bK-ops{n:x}");
    let call_id = format!("ops-{n:x}@127.0.0.1");
    let from = format!("<sip:4155550123@127.0.0.1>;tag=t{n:x}");
    let ruri = format!("sip:echo@{to}");
    let (ctype, body) = match body {
        Some(b) => ("Content-Type: application/sdp\r\n", b),
        None => ("", ""),
    };
    let msg = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: <{ruri}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:4155550123@{me}>\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 65_535];
    let mut last_send = Instant::now() - Duration::from_secs(1);
    loop {
        assert!(Instant::now() < end, "no final response to {method}");
        // Retransmit like a UAC would (UDP).
        if last_send.elapsed() >= Duration::from_millis(500) {
            sock.send_to(msg.as_bytes(), to).unwrap();
            last_send = Instant::now();
        }
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code < 200 {
            continue;
        }
        if method == "INVITE" && code >= 300 {
            let to_hdr = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .unwrap_or("To: <sip:echo@127.0.0.1>")
                .trim();
            let ack = format!(
                "ACK {ruri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: {from}\r\n\
                 {to_hdr}\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: 1 ACK\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            sock.send_to(ack.as_bytes(), to).unwrap();
        }
        return text;
    }
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The audit records spooled under `<dir>/spool` (one JSON object a line).
fn spool_text(dir: &Path) -> String {
    read_to_string(&dir.join("spool/records.jsonl"))
}

#[test]
fn sigterm_drains_refuses_new_calls_and_exits_after_the_last_call() {
    let mut server = serve("retry_after_secs: 17", "30s", "");
    let mut live = Dialer::start(&server.uri("echo"), &["--timeout", "60"]);
    wait_heard(&live, "echo_intro");
    wait_active(&server, 1.0);
    assert_eq!(http_get(server.admin, "/readyz").0, 200);

    server.signal("TERM");
    wait_for("/readyz 503", Duration::from_secs(10), || {
        (http_get(server.admin, "/readyz").0 == 503).then_some(())
    });
    let (status, body) = http_get(server.admin, "/healthz");
    assert_eq!(status, 200, "liveness stays up while draining: {body}");

    // A new INVITE is refused for now, with a hint when to come back.
    let resp = raw_request(server.sip, "INVITE", Some(&sdp("0 101")));
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert_eq!(header(&resp, "Retry-After"), Some("17"), "{resp}");

    // The live call is not cut: it finishes normally.
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.child.try_wait().unwrap().is_none(), "exited early");
    live.type_digits("42#");
    assert!(
        live.wait(Duration::from_secs(40)),
        "{:?}",
        live.transcript()
    );
    let heard = prompts_heard(&live.transcript());
    assert_eq!(heard, echo_readback("42"), "{:?}", live.transcript());
    let status = server
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| {
            panic!(
                "still running after the last call:\n{}",
                server.output_text()
            )
        });
    assert!(status.success(), "{status:?}\n{}", server.output_text());
    let out = server.output_text();
    assert!(out.contains("draining"), "{out}");
    assert!(!out.contains("drain limit reached"), "{out}");
}

#[test]
fn drain_limit_ends_a_long_call_with_bye_and_audits_it() {
    let backend = Backend::start();
    let mut server = serve_example(&backend, "2s");
    // A password reset that is waiting for the caller to type the code.
    let mut live = Dialer::start(
        &server.uri("reset"),
        &["--timeout", "60", "--on", "enter_employee_id=123456#"],
    );
    wait_heard(&live, "code_sent_to_number");
    wait_active(&server, 1.0);
    assert!(
        spool_text(server.dir.path()).is_empty(),
        "audited too early"
    );

    let t0 = Instant::now();
    server.signal("TERM");
    // The caller never types the code: the server hangs up at the limit.
    assert!(
        live.wait(Duration::from_secs(20)),
        "{:?}",
        live.transcript()
    );
    let took = t0.elapsed();
    // The caller's BYE says the server is going away (RFC 3326), not that
    // the flow ended.
    assert!(
        live.transcript().iter().any(|l| l.contains(
            r#"sip BYE received (Reason: Q.850 ;cause=41 ;text="Server shutting down")"#
        )),
        "{:?}",
        live.transcript()
    );
    assert!(took >= Duration::from_millis(1800), "BYE after {took:?}");
    assert!(took < Duration::from_secs(10), "BYE after {took:?}");
    let status = server
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running:\n{}", server.output_text()));
    assert!(status.success(), "{status:?}\n{}", server.output_text());
    assert!(server.output_text().contains("drain limit reached"));
    // The open reset attempt was audited before the process exited (spool
    // only: the audit action is switched off here).
    let spool = spool_text(server.dir.path());
    assert!(
        spool.contains("\"flow\":\"sspr\""),
        "no audit record spooled: {spool}"
    );
    // The server ended it (`shutdown`, or `shutdown_in_secure_segment` if
    // the caller had reached the hold music): not "caller_hangup".
    assert!(
        spool.contains("\"reason\":\"shutdown"),
        "audited as the server's doing: {spool}"
    );
    assert!(
        !spool.contains("123456"),
        "the employee id is not audited: {spool}"
    );
    // (The record's reason is currently `caller_hangup`: the call model
    // reports a drained call to the flow as a hangup. Not asserted here.)
}

#[test]
fn sighup_swaps_flows_for_new_calls_and_refuses_an_invalid_one() {
    let server = serve("", "5s", "");
    let flow = server.dir.path().join("echo.yaml");
    let original = std::fs::read_to_string(&flow).unwrap();

    // A call that starts on the old flow.
    let mut old = Dialer::start(&server.uri("echo"), &["--timeout", "60"]);
    wait_heard(&old, "echo_intro");

    // New flow: another intro and another read-back prompt.
    let edited = original
        .replace("prompt: [echo_intro]", "prompt: [welcome]")
        .replace("play: [you_entered,", "play: [thank_you,");
    assert_ne!(edited, original);
    std::fs::write(&flow, &edited).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_output("configuration reloaded", Duration::from_secs(20)),
        "{}",
        server.output_text()
    );
    assert_eq!(
        sample(
            &server_metrics(&server),
            "sspr_ivr_config_reloads_total{result=\"ok\"}"
        ),
        1.0
    );

    // The call that started before the reload reads back now, after it
    // (typed at once: its collect times out after 5 s of silence).
    old.type_digits("7#");
    // A new call hears the new flow...
    let (ok, t, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "5#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{t:?}\n{err}");
    assert_eq!(
        prompts_heard(&t),
        ["welcome", "thank_you", "digit_5", "goodbye"],
        "{t:?}"
    );
    // ...the one that started before keeps its own to the end.
    assert!(old.wait(Duration::from_secs(40)), "{:?}", old.transcript());
    let heard: Vec<String> = prompts_heard(&old.transcript())
        .into_iter()
        .filter(|p| p != "no_input")
        .collect();
    assert_eq!(heard, echo_readback("7"), "{:?}", old.transcript());

    // An invalid flow is refused with its reason; the last good one stays.
    std::fs::write(&flow, edited.replace("next: read_back", "next: nowhere")).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_output("reload refused", Duration::from_secs(20)),
        "{}",
        server.output_text()
    );
    let out = server.output_text();
    let line = out
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap()
        .to_string();
    assert!(
        out.contains("unknown state `nowhere`") && out.contains("states.get_digits.next"),
        "the refusal names the problem:\n{line}\n{out}"
    );
    let m = server_metrics(&server);
    assert_eq!(
        sample(&m, "sspr_ivr_config_reloads_total{result=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "sspr_ivr_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    let (ok, t, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "8#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{t:?}\n{err}");
    assert_eq!(
        prompts_heard(&t),
        ["welcome", "thank_you", "digit_8", "goodbye"],
        "{t:?}"
    );
    assert_eq!(http_get(server.admin, "/readyz").0, 200);
}

#[test]
fn admission_capacity_codec_and_options() {
    let server = serve("max_calls: 1, retry_after_secs: 9", "2s", "");

    // OPTIONS (what Kamailio probes with) is answered 200.
    let resp = raw_request(server.sip, "OPTIONS", None);
    assert_eq!(status_of(&resp), 200, "{resp}");

    // Only G.729 offered: no common codec, and the 488 says so.
    let resp = raw_request(server.sip, "INVITE", Some(&sdp("18")));
    assert_eq!(status_of(&resp), 488, "{resp}");
    assert_eq!(header(&resp, "Retry-After"), None, "{resp}");
    let warning = format!("305 {} \"Incompatible media format\"", server.sip);
    assert_eq!(header(&resp, "Warning"), Some(warning.as_str()), "{resp}");

    // Media on IPv6 to a server whose media address is IPv4: refused at once
    // (not answered and left silent until the RTP timeout).
    let v6 = sdp("0 8 101").replace("IN IP4 127.0.0.1", "IN IP6 ::1");
    let resp = raw_request(server.sip, "INVITE", Some(&v6));
    assert_eq!(status_of(&resp), 488, "{resp}");
    let warning = format!(
        "301 {} \"Incompatible network address formats\"",
        server.sip
    );
    assert_eq!(header(&resp, "Warning"), Some(warning.as_str()), "{resp}");

    // At capacity: 503 with Retry-After.
    let mut live = Dialer::start(&server.uri("echo"), &["--timeout", "60"]);
    wait_heard(&live, "echo_intro");
    wait_active(&server, 1.0);
    let resp = raw_request(server.sip, "INVITE", Some(&sdp("0 8 101")));
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert_eq!(header(&resp, "Retry-After"), Some("9"), "{resp}");

    // Capacity comes back when the call ends.
    live.type_digits("1#");
    assert!(
        live.wait(Duration::from_secs(40)),
        "{:?}",
        live.transcript()
    );
    wait_active(&server, 0.0);
    let (ok, t, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "3#"],
        Duration::from_secs(60),
    );
    assert!(ok, "{t:?}\n{err}");

    let m = server_metrics(&server);
    for (series, want) in [
        ("sspr_ivr_sip_responses_sent_total{code=\"503\"}", 1.0),
        ("sspr_ivr_sip_responses_sent_total{code=\"488\"}", 2.0),
        (
            "sspr_ivr_call_setup_rejections_total{reason=\"capacity\",status=\"503\"}",
            1.0,
        ),
        (
            "sspr_ivr_call_setup_rejections_total{reason=\"no_common_codec\",status=\"488\"}",
            1.0,
        ),
        (
            "sspr_ivr_call_setup_rejections_total{reason=\"address_family\",status=\"488\"}",
            1.0,
        ),
        ("sspr_ivr_calls_finished_total{outcome=\"completed\"}", 2.0),
    ] {
        assert_eq!(sample(&m, series), want, "{series}\n{m}");
    }
    // 200 for OPTIONS and for the two INVITEs answered.
    assert!(sample(&m, "sspr_ivr_sip_responses_sent_total{code=\"200\"}") >= 3.0);
    assert!(
        sample(
            &m,
            "sspr_ivr_sip_requests_received_total{method=\"OPTIONS\"}"
        ) >= 1.0
    );
}

/// SIP on IPv4 and `media.rtp_ip` on IPv6: the server says so when it starts, and
/// an ordinary IPv4 caller is refused `488` with `Warning: 301` at once, not
/// answered into a call whose media could never flow.
#[test]
fn media_of_the_other_family_is_warned_at_start_and_refused_with_301() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(repo().join("flows/echo.yaml"), dir.path().join("echo.yaml")).unwrap();
    let (sip, admin) = (free_addr(), free_addr());
    let (min, max) = rtp_range();
    let cfg = format!(
        "sip: {{ listen: \"{sip}\" }}\n\
         media: {{ rtp_ip: \"::1\", rtp_port_min: {min}, rtp_port_max: {max} }}\n\
         prompts: {{ dir: {prompts} }}\n\
         flows: {{ echo: echo.yaml }}\n\
         routes: {{ default: echo }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n",
        prompts = repo().join("prompts").display(),
    );
    let server = serve_config(dir, &cfg, sip, admin);
    assert!(
        server.wait_output("but media.rtp_ip is ::1 (IPv6)", Duration::from_secs(10)),
        "{}",
        server.output_text()
    );
    let resp = raw_request(server.sip, "INVITE", Some(&sdp("0 8 101")));
    assert_eq!(status_of(&resp), 488, "{resp}");
    assert!(
        header(&resp, "Warning").is_some_and(|w| w.starts_with("301 ")),
        "{resp}"
    );
}

/// Every label value of every sample.
fn label_values(metrics: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, _)) = rest.rsplit_once('}') else {
            continue;
        };
        for pair in labels.split("\",") {
            if let Some((_, v)) = pair.split_once("=\"") {
                out.push(v.trim_end_matches('"').to_string());
            }
        }
    }
    out
}

#[test]
fn metrics_after_real_calls() {
    let server = Server::demo(&[]);
    let uri_echo = server.uri("echo");
    let uri_reset = server.uri("reset");
    let caller = "4155550123";
    // One echo call per DTMF transport, and one short password-reset call
    // (the locked user: lookup, then the locked announcement), concurrently.
    let calls: Vec<_> = [("rfc4733", "3141#"), ("inband", "2718#"), ("info", "1618#")]
        .into_iter()
        .map(|(mode, digits)| {
            let uri = uri_echo.clone();
            std::thread::spawn(move || {
                dial(
                    &uri,
                    &["--dtmf", digits, "--dtmf-mode", mode, "--from", caller],
                    Duration::from_secs(60),
                )
            })
        })
        .chain(std::iter::once(std::thread::spawn(move || {
            dial(
                &uri_reset,
                &["--on", "enter_employee_id=345678#", "--from", caller],
                Duration::from_secs(90),
            )
        })))
        .collect();
    for c in calls {
        let (ok, t, err) = c.join().unwrap();
        assert!(ok, "{t:?}\n{err}\n{}", server.output_text());
    }
    wait_active(&server, 0.0);
    // The audit backlog gauge is refreshed by the main loop's tick.
    std::thread::sleep(Duration::from_millis(1200));
    let m = server_metrics(&server);

    let at_least = |series: &str, n: f64| {
        let v = sample(&m, series);
        assert!(v >= n, "{series} = {v}, want ≥ {n}\n{m}");
    };
    at_least("sspr_ivr_calls_finished_total{outcome=\"completed\"}", 3.0);
    // The locked user is handed to account recovery (REFER, accepted by dial).
    at_least(
        "sspr_ivr_calls_finished_total{outcome=\"transferred\"}",
        1.0,
    );
    // Each echo call typed four digits and #, each on its own transport.
    for t in ["rfc4733", "inband", "info"] {
        let series = format!("sspr_ivr_dtmf_digits_total{{transport=\"{t}\"}}");
        let v = sample(&m, &series);
        assert!(v >= 5.0, "{series} = {v}\n{m}");
    }
    // The reset call's 7 keys went over RFC 4733 too.
    at_least("sspr_ivr_dtmf_digits_total{transport=\"rfc4733\"}", 12.0);
    at_least("sspr_ivr_sip_responses_sent_total{code=\"200\"}", 4.0);
    at_least(
        "sspr_ivr_sip_requests_received_total{method=\"INVITE\"}",
        4.0,
    );
    at_least("sspr_ivr_rtp_packets_sent_total", 100.0);
    at_least("sspr_ivr_rtp_packets_received_total", 100.0);
    at_least(
        "sspr_ivr_action_duration_seconds_count{action=\"lookup_user\",outcome=\"locked\"}",
        1.0,
    );
    assert!(
        m.lines().any(
            |l| l.starts_with("sspr_ivr_action_duration_seconds_bucket{")
                && l.contains("action=\"lookup_user\"")
                && l.contains("le=\"+Inf\"")
                && l.ends_with(" 1")
        ),
        "{m}"
    );
    at_least("sspr_ivr_resets_total{result=\"locked\"}", 1.0);
    assert!(
        m.lines()
            .any(|l| l.starts_with("sspr_ivr_audit_spool_backlog ")),
        "{m}"
    );
    assert_eq!(sample(&m, "sspr_ivr_calls_active"), 0.0);

    // No caller data in any label: not the number (or its last four), not
    // the employee id, not a digit string typed.
    let secrets = [caller, "0123", "345678", "3141", "2718", "1618"];
    for v in label_values(&m) {
        for s in secrets {
            assert!(
                !v.contains(s),
                "label value {v:?} carries caller data {s:?}"
            );
        }
    }
    assert!(!label_values(&m).is_empty());
}

/// The sd_notify protocol as systemd sees it (`Type=notify`, `WatchdogSec`):
/// a datagram socket standing in for systemd's `NOTIFY_SOCKET`.
#[test]
fn systemd_notifications_for_ready_reload_watchdog_and_drain() {
    use std::os::unix::net::UnixDatagram;
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let msgs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (msgs, stop) = (msgs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    msgs.lock().unwrap().push((Instant::now(), text));
                }
            }
        })
    };
    let has = |what: &str| msgs.lock().unwrap().iter().any(|(_, m)| m.contains(what));

    // Like `serve`, with systemd's environment: watchdog every 1 s.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("flows/echo.yaml"), dir.path().join("echo.yaml")).unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let (min, max) = rtp_range();
    let cfg = format!(
        "sip: {{ listen: \"{sip}\" }}\n\
         media: {{ rtp_port_min: {min}, rtp_port_max: {max} }}\n\
         prompts: {{ dir: {} }}\n\
         flows: {{ echo: echo.yaml }}\n\
         routes: {{ default: echo }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         drain: {{ timeout: 4s }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n",
        repo().join("prompts").display()
    );
    let env = [
        ("NOTIFY_SOCKET", sock_path.display().to_string()),
        ("WATCHDOG_USEC", "1000000".to_string()),
    ];
    let mut server = serve_config_env(dir, &cfg, sip, admin, &env);
    wait_for("READY=1", Duration::from_secs(10), || {
        has("READY=1").then_some(())
    });
    wait_for("WATCHDOG=1", Duration::from_secs(10), || {
        has("WATCHDOG=1").then_some(())
    });

    // Reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
    let before = msgs.lock().unwrap().len();
    server.signal("HUP");
    assert!(server.wait_output("configuration reloaded", Duration::from_secs(20)));
    wait_for("READY=1 after reload", Duration::from_secs(10), || {
        let m = msgs.lock().unwrap();
        let after: Vec<&String> = m[before..].iter().map(|(_, t)| t).collect();
        let r = after.iter().position(|t| t.contains("RELOADING=1"))?;
        (after[r].contains("MONOTONIC_USEC=")
            && after[r + 1..].iter().any(|t| t.contains("READY=1")))
        .then_some(())
    });

    // Drain with a live call: STOPPING=1, and the watchdog keeps being fed
    // while the call holds the process up (here 4 s, 4 watchdog periods).
    let mut live = Dialer::start(&server.uri("echo"), &["--timeout", "60"]);
    wait_heard(&live, "echo_intro");
    server.signal("TERM");
    wait_for("STOPPING=1", Duration::from_secs(10), || {
        has("STOPPING=1").then_some(())
    });
    let status = server
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running:\n{}", server.output_text()));
    assert!(status.success(), "{}", server.output_text());
    assert!(
        live.wait(Duration::from_secs(10)),
        "{:?}",
        live.transcript()
    );
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    let m = msgs.lock().unwrap();
    let stopping = m
        .iter()
        .find(|(_, t)| t.contains("STOPPING=1"))
        .map(|(at, _)| *at)
        .unwrap();
    let pings_while_draining = m
        .iter()
        .filter(|(at, t)| *at > stopping && t.contains("WATCHDOG=1"))
        .count();
    assert!(
        pings_while_draining >= 4,
        "{pings_while_draining} WATCHDOG=1 during a 4 s drain: {:?}",
        m.iter().map(|(_, t)| t).collect::<Vec<_>>()
    );
}

/// A reload that renames a data action: its latency is exported under the
/// new name (the metrics' action allowlist follows the configuration), not
/// as `other`.
#[test]
fn reload_updates_the_action_names_in_the_metrics() {
    use serde_yaml::Value;
    let backend = Backend::start();
    let server = serve_example(&backend, "5s");
    let dir = server.dir.path();
    let flow = std::fs::read_to_string(repo().join("flows/sspr.yaml"))
        .unwrap()
        .replace("action: lookup_user", "action: directory_lookup");
    std::fs::write(dir.join("sspr.yaml"), flow).unwrap();
    let cfg_path = dir.join("config.yaml");
    let mut v: Value = serde_yaml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    v["flows"]["sspr"] = Value::from(dir.join("sspr.yaml").display().to_string());
    v["security"]["lookup_action"] = Value::from("directory_lookup");
    let actions = v["actions"].as_mapping_mut().unwrap();
    let lookup = actions.remove("lookup_user").unwrap();
    actions.insert(Value::from("directory_lookup"), lookup);
    std::fs::write(&cfg_path, serde_yaml::to_string(&v).unwrap()).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_output("configuration reloaded", Duration::from_secs(20)),
        "{}",
        server.output_text()
    );

    let (ok, t, err) = dial(
        &server.uri("reset"),
        &["--on", "enter_employee_id=345678#"],
        Duration::from_secs(90),
    );
    assert!(ok, "{t:?}\n{err}");
    assert!(
        prompts_heard(&t).contains(&"account_locked".to_string()),
        "{t:?}"
    );
    let m = server_metrics(&server);
    assert_eq!(
        sample(
            &m,
            "sspr_ivr_action_duration_seconds_count{action=\"directory_lookup\",outcome=\"locked\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(!m.contains("action=\"other\""), "{m}");
}

/// `--log-json`: every line on stderr is one JSON object; every line logged
/// while handling the call carries its Call-ID; the caller's number is not
/// logged.
#[test]
fn json_logs_carry_the_call_id_on_every_call_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("flows/echo.yaml"), dir.path().join("echo.yaml")).unwrap();
    let sip: SocketAddr = free_addr();
    let admin: SocketAddr = free_addr();
    let (min, max) = rtp_range();
    let cfg = format!(
        "sip: {{ listen: \"{sip}\" }}\n\
         media: {{ rtp_port_min: {min}, rtp_port_max: {max} }}\n\
         prompts: {{ dir: {} }}\n\
         flows: {{ echo: echo.yaml }}\n\
         routes: {{ default: echo }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         actions: {{}}\n\
         audit: {{ action: null, spool_dir: spool }}\n",
        repo().join("prompts").display()
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, cfg).unwrap();
    let args: Vec<String> = ["--log-json", "--log-level", "debug", "serve", "--config"]
        .iter()
        .map(|s| s.to_string())
        .chain([path.display().to_string()])
        .collect();
    let mut server = Server::spawn_env(&args, &[], sip, admin, dir);
    let caller = "4155550123";
    let (ok, t, err) = dial(
        &server.uri("echo"),
        &["--dtmf", "86#", "--from", caller],
        Duration::from_secs(60),
    );
    assert!(ok, "{t:?}\n{err}");
    wait_active(&server, 0.0);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
    std::thread::sleep(Duration::from_millis(200));

    let out = server.output_text();
    let mut call_id = None;
    let mut call_lines = 0;
    for line in out.lines() {
        if line.starts_with("sspr-ivr ") || line.starts_with("  ") {
            continue; // the start-up banner on stdout
        }
        let j: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(!line.contains(caller), "caller number logged: {line}");
        let target = j["target"].as_str().unwrap_or("");
        if j["fields"]["message"] == "call answered" {
            // Logged inside the call's span already.
            call_id = j["span"]["call_id"].as_str().map(str::to_string);
        }
        let in_call = [
            "sspr_ivr::runtime::call_task",
            "sspr_ivr::media",
            "sspr_ivr::flow",
            "sspr_ivr::call",
        ]
        .iter()
        .any(|t| target.starts_with(t));
        if in_call {
            let id = call_id
                .as_deref()
                .expect("call lines after `call answered`");
            assert_eq!(j["span"]["call_id"], id, "{line}");
            call_lines += 1;
        }
    }
    assert!(call_id.is_some(), "{out}");
    assert!(call_lines >= 5, "{call_lines} call lines:\n{out}");
}

/// A second SIGTERM during the drain skips the rest of it: the live call
/// gets BYE at once instead of at `drain.timeout`.
#[test]
fn second_sigterm_ends_the_drain_at_once() {
    let mut server = serve("", "60s", "");
    let mut live = Dialer::start(&server.uri("echo"), &["--timeout", "60"]);
    wait_heard(&live, "echo_intro");
    wait_active(&server, 1.0);
    server.signal("TERM");
    wait_for("/readyz 503", Duration::from_secs(10), || {
        (http_get(server.admin, "/readyz").0 == 503).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.child.try_wait().unwrap().is_none(), "exited early");
    let t0 = Instant::now();
    server.signal("TERM");
    assert!(
        live.wait(Duration::from_secs(15)),
        "{:?}",
        live.transcript()
    );
    // The caller's BYE says the server is going away (RFC 3326), not that
    // the flow ended.
    assert!(
        live.transcript().iter().any(|l| l.contains(
            r#"sip BYE received (Reason: Q.850 ;cause=41 ;text="Server shutting down")"#
        )),
        "{:?}",
        live.transcript()
    );
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let status = server
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running:\n{}", server.output_text()));
    assert!(status.success(), "{}", server.output_text());
}
