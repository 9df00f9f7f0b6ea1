//! SRTP (SDES, RFC 4568) against the real binary: `sspr-ivr serve` with
//! `sip.tls` and `media.srtp: required`, called by baresip (a real softphone,
//! headless) with `mediaenc=srtp-mand`, while `dumpcap` records the loopback.
//!
//! What a caller or an eavesdropper would notice: the caller's in-band digits
//! are read back to it through SRTP both ways; the capture of that call holds
//! no clear SIP and no RTP payload that decodes as G.711 (it is uniformly
//! random and never a frame of the prompts); a clear call to a flow whose
//! secure part requires encrypted media hears that it cannot be taken on this
//! line and never reaches the code entry — the backend sends no code.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::configured::{self, Backend};
use common::pki::{install_server_cert, Pki};
use common::*;
use sspr_ivr::codec::Codec;
use sspr_ivr::media::prompts::{PromptCache, PromptRecognizer};

/// The tests of this file run one at a time: the capture filters by port, and
/// another test's SIP or RTP on a port in this server's RTP range would land
/// in it (test binaries run one after another, so this is enough).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bound on every single network wait in this file.
const WAIT: Duration = Duration::from_secs(20);

/// The example config (demo backend, both flows) with TLS on and `media.srtp`
/// as given; `sspr` is replaced by a copy of the shipped flow whose whole
/// flow requires encrypted media.
struct SrtpServer {
    server: Server,
    tls: SocketAddr,
    _backend: Backend,
    pki: Pki,
    rtp_min: u16,
    /// The server's RTP address (`media.rtp_ip`): one of its own in 127/8, or ::1.
    rtp_ip: std::net::IpAddr,
}

fn serve(srtp: &str) -> SrtpServer {
    serve_with(srtp, &[])
}

/// [`serve`] with arguments for the demo backend.
fn serve_with(srtp: &str, backend_args: &[&str]) -> SrtpServer {
    serve_on(srtp, backend_args, false)
}

/// [`serve_with`]; `ipv6`: TLS and media on `::1` instead of 127/8.
fn serve_on(srtp: &str, backend_args: &[&str], ipv6: bool) -> SrtpServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("srtp test CA");
    install_server_cert(dir.path(), &pki, "ivr");
    let (backend, backend_addr) = Backend::start(backend_args);
    let (sip, admin, mut tls) = (free_addr(), free_addr(), free_addr());
    if ipv6 {
        tls.set_ip(std::net::Ipv6Addr::LOCALHOST.into());
    }
    let path = dir.path().join("config.yaml");
    configured::write_config(
        &path,
        sip,
        admin,
        backend_addr,
        &format!("http://{backend_addr}/audit"),
        &dir.path().join("spool"),
    );
    // The shipped reset flow, made to require encrypted media, with the path a
    // clear call takes: the prompt that says so, then the help desk.
    let flow = read_to_string(&repo().join("flows/sspr.yaml"))
        .replacen(
            "start: welcome\n",
            "start: welcome\nsecure_media: required\non_insecure_media: insecure_line\n",
            1,
        )
        .replacen(
            "states:\n",
            "states:\n  insecure_line:\n    play: [line_not_secure, helpdesk_number]\n    next: goodbye\n",
            1,
        );
    assert!(
        flow.contains("  goodbye:\n"),
        "the shipped flow has a goodbye state"
    );
    let flow_path = dir.path().join("sspr_secure.yaml");
    std::fs::write(&flow_path, flow).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&read_to_string(&path)).unwrap();
    let rtp_min = doc["media"]["rtp_port_min"].as_u64().unwrap() as u16;
    doc["sip"]["tls"] = serde_yaml::from_str(&format!(
        "{{ listen: \"{tls}\", cert_file: {}, key_file: {} }}",
        dir.path().join("sip.pem").display(),
        dir.path().join("sip.key").display()
    ))
    .unwrap();
    doc["media"]["srtp"] = srtp.into();
    let rtp_ip: std::net::IpAddr = if ipv6 {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::new(
            127,
            83,
            (std::process::id() % 200) as u8,
            10 + rtp_min as u8 % 200,
        )
        .into()
    };
    doc["media"]["rtp_ip"] = rtp_ip.to_string().into();
    doc["media"]["inactivity_timeout"] = "30s".into();
    doc["flows"]["sspr"] = flow_path.display().to_string().into();
    doc["recording"]["enabled"] = false.into();
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let args = vec![
        "--log-level".to_string(),
        "trace".to_string(),
        "serve".to_string(),
        "--config".to_string(),
        path.display().to_string(),
    ];
    let server = Server::spawn(&args, sip, admin, backend_addr, dir);
    assert!(
        server.wait_output(&format!("sips:{tls} (tls)"), WAIT),
        "the server announces its TLS listener:\n{}",
        server.output_text()
    );
    SrtpServer {
        server,
        tls,
        _backend: backend,
        pki,
        rtp_min,
        rtp_ip,
    }
}

/// A WAV at 8 kHz: `lead` of silence, then each digit as a DTMF tone (120 ms)
/// with 120 ms gaps, then silence to `total`.
fn dtmf_wav(path: &Path, lead: Duration, digits: &str, total: Duration) {
    dtmf_wav_at(path, &[(lead, digits)], total);
}

/// A WAV at 8 kHz: each run of digits starting at its time (DTMF tones of
/// 120 ms, 120 ms apart), silence elsewhere, `total` long.
fn dtmf_wav_at(path: &Path, runs: &[(Duration, &str)], total: Duration) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let ms = |d: Duration| d.as_millis() as usize * 8;
    let mut pcm = Vec::new();
    for (at, digits) in runs {
        assert!(pcm.len() <= ms(*at), "runs in order, apart");
        pcm.resize(ms(*at), 0);
        pcm.extend(sspr_ivr::media::ToneGenerator::new().sequence(digits, 120, 120, -8.0));
    }
    pcm.resize(ms(total), 0);
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// baresip calling `uri` over TLS with mandatory SRTP, its microphone the
/// WAV `mic`; returns (its output, SIP trace included; what it decoded).
fn baresip_call(s: &SrtpServer, user: &str, mic: &Path, quit_after: u32) -> (String, Vec<i16>) {
    let dir = s.server.dir.path().join(format!("baresip-{user}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = s.pki.write_ca(&dir);
    let (up, out, pcm) = common::baresip::call(
        &dir,
        &ca,
        mic,
        &format!("sip:{user}@{};transport=tls", s.tls),
        ";mediaenc=srtp-mand",
        quit_after,
    );
    assert!(
        up,
        "baresip did not get the call up over TLS with SRTP:\n{out}\nserver:\n{}",
        s.server.output_text()
    );
    assert!(!pcm.is_empty(), "baresip kept no decoded audio:\n{out}");
    (out, pcm)
}

fn prompts() -> Arc<PromptCache> {
    Arc::new(sspr_ivr::files::load_prompts(&repo().join("prompts/en")).unwrap())
}

/// The prompts recognised in decoded PCM, in order.
fn heard(pcm: &[i16]) -> Vec<String> {
    let mut rec = PromptRecognizer::new(prompts(), Codec::Pcmu);
    pcm.chunks(160)
        .filter_map(|frame| rec.push(&sspr_ivr::media::g711::encode(Codec::Pcmu, frame)))
        .collect()
}

/// `dumpcap` on the loopback, bounded by its own time limit; stopped with
/// SIGINT so that the file is complete.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, filter: &str) -> Capture {
        let file = dir.join("call.pcap");
        let mut child = Command::new("dumpcap")
            .args([
                "-q",
                "-P",
                "-i",
                "lo",
                "-f",
                filter,
                "-a",
                "duration:90",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap runs");
        // dumpcap says "Capturing on 'Loopback: lo'" once packets are recorded.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.contains("Capturing on") {
                    let _ = tx.send(());
                }
                line.clear();
            }
        });
        rx.recv_timeout(WAIT).expect("dumpcap starts capturing");
        Capture { child, file }
    }

    fn stop(mut self) -> Vec<u8> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        // dumpcap finishes its file on SIGINT: a bounded wait (Drop kills it).
        let end = std::time::Instant::now() + WAIT;
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            assert!(
                std::time::Instant::now() < end,
                "dumpcap did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read(&self.file).expect("the capture file")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP datagram: source address and port, destination port, payload.
type Datagram = ([u8; 4], u16, u16, Vec<u8>);

/// UDP datagrams and TCP payload bytes of a
/// classic pcap of Ethernet frames (what dumpcap -P writes for `lo`).
fn parse_pcap(bytes: &[u8]) -> (Vec<Datagram>, Vec<u8>) {
    assert!(bytes.len() >= 24, "pcap header");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert_eq!(magic, 0xa1b2_c3d4, "little-endian microsecond pcap");
    let link = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(link, 1, "Ethernet link type on lo");
    let (mut udp, mut tcp) = (Vec::new(), Vec::new());
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..(at + 16 + caplen).min(bytes.len())];
        at += 16 + caplen;
        if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let l4 = &ip[ihl..total];
        match ip[9] {
            17 if l4.len() >= 8 => udp.push((
                [ip[12], ip[13], ip[14], ip[15]],
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4[8..].to_vec(),
            )),
            6 if l4.len() >= 20 => {
                let off = usize::from(l4[12] >> 4) * 4;
                tcp.extend_from_slice(&l4[off.min(l4.len())..]);
            }
            _ => {}
        }
    }
    (udp, tcp)
}

/// Shannon entropy of a byte string, in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The echo flow over TLS + SRTP: baresip types 4 2 7 # in-band (through
/// SRTP) and hears them read back; the capture shows neither SIP nor G.711.
#[test]
fn baresip_over_tls_with_mandatory_srtp_hears_its_digits_and_the_wire_shows_nothing() {
    let _alone = one_at_a_time();
    let s = serve("required");
    let work = s.server.dir.path().to_path_buf();
    let mic = work.join("digits.wav");
    dtmf_wav(
        &mic,
        Duration::from_millis(1500),
        "427#",
        Duration::from_secs(30),
    );
    let rtp_min = s.rtp_min;
    let capture = common::tools::available("dumpcap", "wireshark-common").then(|| {
        Capture::start(
            &work,
            &format!(
                "tcp port {} or (udp and host {} and portrange {}-{})",
                s.tls.port(),
                s.rtp_ip,
                rtp_min,
                rtp_min + 998
            ),
        )
    });
    let (out, pcm) = baresip_call(&s, "echo", &mic, 18);
    let wire = capture.map(Capture::stop);
    let heard = heard(&pcm);
    assert!(
        heard.iter().any(|p| p == "you_entered")
            && heard
                .iter()
                .skip_while(|p| *p != "you_entered")
                .take(4)
                .eq(["you_entered", "digit_4", "digit_2", "digit_7"].iter()),
        "baresip heard {heard:?}:\n{out}\nserver:\n{}",
        s.server.output_text()
    );
    let log = s.server.output_text();
    assert!(
        log.lines()
            .any(|l| l.contains("call answered") && l.contains("TLS") && l.contains("srtp=true")),
        "the server logs the call as TLS + SRTP:\n{log}"
    );

    // The SDES keys travel only inside TLS: no log line (the server logs at
    // trace level), no file the server wrote, no metric carries a key line.
    // (baresip 1.0 prints no SIP trace, so the keys' values are not known here;
    // `media::srtp` tests that `Debug` never shows one.)
    for needle in ["inline:", "a=crypto", "AES_CM_128"] {
        assert!(!log.contains(needle), "`{needle}` in the server's log");
        for (path, bytes) in all_files(s.server.dir.path()) {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "`{needle}` in {}",
                path.display()
            );
        }
    }
    let (_, metrics) = http_get(s.server.admin, "/metrics");
    assert!(!metrics.contains("inline:"));

    // The wire: TLS records only, and RTP whose payload is not G.711.
    let Some(wire) = wire else {
        return;
    };
    let (udp, tcp) = parse_pcap(&wire);
    assert!(tcp.len() > 1000, "the capture holds the TLS signalling");
    // The call's own RTP: from the server's RTP address (an address of its own
    // in 127/8: the machine's loopback is shared), the stream with the most
    // packets.
    let in_range = |p: u16| (rtp_min..=rtp_min + 998).contains(&p);
    let mut streams: std::collections::BTreeMap<(u16, u16), Vec<&[u8]>> = Default::default();
    for (ip, src, dst, p) in &udp {
        if std::net::IpAddr::from(*ip) == s.rtp_ip
            && in_range(*src)
            && p.len() > 12
            && p[0] >> 6 == 2
        {
            streams.entry((*src, *dst)).or_default().push(&p[12..]);
        }
    }
    let sent = streams
        .into_values()
        .max_by_key(Vec::len)
        .unwrap_or_default();
    assert!(
        sent.len() > 100,
        "the server's RTP was captured ({})",
        sent.len()
    );
    let signalling_and_media: Vec<u8> = tcp.iter().copied().chain(sent.concat()).collect();
    for clear in [
        &b"SIP/2.0"[..],
        b"INVITE",
        b"a=crypto",
        b"m=audio",
        b"echo@",
    ] {
        assert!(
            !signalling_and_media
                .windows(clear.len())
                .any(|w| w == clear),
            "`{}` in clear on the wire",
            String::from_utf8_lossy(clear)
        );
    }
    let bytes: Vec<u8> = sent.concat();
    let e = entropy(&bytes);
    eprintln!(
        "captured {} RTP packets from the server, {} payload bytes, entropy {e:.3} bits/byte",
        sent.len(),
        bytes.len()
    );
    assert!(
        e > 7.9,
        "payload entropy {e:.3} bits/byte: not uniformly random"
    );
    // What the same prompts look like in clear G.711: far from random, and
    // none of their frames is on the wire.
    let cache = prompts();
    let clear: Vec<u8> = ["echo_intro", "you_entered", "goodbye"]
        .iter()
        .flat_map(|n| cache.get(n).unwrap().encoded(Codec::Pcmu).to_vec())
        .collect();
    assert!(entropy(&clear) < 7.5, "clear G.711 is recognisable");
    for frame in clear.chunks(160).filter(|f| f.len() == 160) {
        assert!(
            !sent.iter().any(|p| p.windows(160).any(|w| w == frame)),
            "a clear G.711 prompt frame is on the wire"
        );
    }
}

/// Requests the demo backend received from the IVR (not the test's own
/// `/demo/` look-ups), as `METHOD path`.
fn backend_requests(backend: SocketAddr) -> Vec<String> {
    let (_, body) = http_get(backend, "/demo/requests");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    all.iter()
        .filter(|r| !r["path"].as_str().unwrap_or("").starts_with("/demo/"))
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The reset flow with `secure_media: required`, called in clear (UDP, RTP)
/// by a caller that types its ID anyway: it hears that the request cannot be
/// taken on this line and the help desk number, never the ID, code or PIN
/// prompts; the backend is asked nothing, so no code is sent. With
/// `media.srtp: required` the same clear INVITE is refused with 488.
#[test]
fn a_clear_call_never_reaches_the_code_or_pin_of_a_flow_that_requires_encryption() {
    let _alone = one_at_a_time();
    let s = serve("optional");
    let (ok, transcript, err) = dial(
        &s.server.uri("reset"),
        &["--on", "line_not_secure=123456#"],
        Duration::from_secs(60),
    );
    let heard = prompts_heard(&transcript);
    assert!(
        ok,
        "dial failed: {err}\n{}\nserver:\n{}",
        transcript.join("\n"),
        s.server.output_text()
    );
    assert_eq!(
        heard,
        ["line_not_secure", "helpdesk_number", "goodbye"],
        "{}",
        transcript.join("\n")
    );
    let requests = backend_requests(s.server.backend);
    assert!(requests.is_empty(), "the backend was asked: {requests:?}");
    let (_, codes) = http_get(s.server.backend, "/demo/codes");
    assert_eq!(codes.trim(), "[]", "no code was sent");
    assert!(
        s.server.output_text().contains("srtp=false"),
        "the call is logged as clear"
    );
    drop(s);

    let strict = serve("required");
    let (ok, transcript, _) = dial(&strict.server.uri("reset"), &[], Duration::from_secs(30));
    assert!(!ok, "a clear call is refused: {}", transcript.join("\n"));
    assert!(prompts_heard(&transcript).is_empty());
    let (_, metrics) = http_get(strict.server.admin, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("reason=\"media_not_secure\"") && l.contains("status=\"488\"")),
        "{metrics}"
    );
}

/// The same flow over TLS + SRTP, a whole reset: baresip types its employee
/// ID, the code and the new PIN twice, in-band through SRTP, at times that fit
/// the flow's prompts (keys typed early are kept: the ID during the welcome,
/// the code during the announcement or the hold music). It is welcomed, never
/// told the line is not secure, hears the reset succeed; the backend looked
/// the ID up, sent the code, set the PIN; the PIN is in no log line.
#[test]
fn over_tls_and_srtp_the_flow_that_requires_encryption_resets_the_pin() {
    let _alone = one_at_a_time();
    const OTP: &str = "314159";
    const PIN: &str = "835172";
    let s = serve_with("required", &["--fixed-otp", OTP, "--sms-delay", "0s"]);
    let mic = s.server.dir.path().join("reset.wav");
    let at = Duration::from_millis;
    dtmf_wav_at(
        &mic,
        &[
            (at(1500), "123456#"),
            (at(16000), &format!("{OTP}#")),
            (at(21000), &format!("{PIN}#")),
            (at(26000), &format!("{PIN}#")),
        ],
        Duration::from_secs(45),
    );
    let (out, pcm) = baresip_call(&s, "reset", &mic, 40);
    let heard = heard(&pcm);
    let log = s.server.output_text();
    assert_eq!(
        heard.first().map(String::as_str),
        Some("welcome"),
        "baresip heard {heard:?}:\n{out}"
    );
    assert!(!heard.iter().any(|p| p == "line_not_secure"), "{heard:?}");
    let requests = backend_requests(s.server.backend);
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST") && r.ends_with("/otp")),
        "the code is sent over the secure line: {requests:?}\nheard {heard:?}\nserver:\n{log}"
    );
    let mut rest = heard.iter();
    for want in ["enter_new_pin", "confirm_new_pin", "pin_reset_success"] {
        assert!(
            rest.any(|p| p == want),
            "`{want}` not heard in order: {heard:?}\nbackend: {requests:?}\nserver:\n{log}"
        );
    }
    assert!(
        requests.iter().any(|r| r == "POST /users/u-123456/pin"),
        "{requests:?}"
    );
    assert!(
        !log.contains(PIN) && !log.contains(OTP),
        "a secret in the log"
    );
}

/// `sspr_ivr_rtp_packets_malformed_total` (SRTP packets that fail
/// authentication count there).
fn malformed(s: &SrtpServer) -> u64 {
    let (_, metrics) = http_get(s.server.admin, "/metrics");
    metrics
        .lines()
        .find(|l| l.starts_with("sspr_ivr_rtp_packets_malformed_total"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// `sspr-ivr dial --srtp` to the echo flow over TLS, typing `digits` and `#`
/// over the intro, with `extra` arguments: asserts the call succeeded, was
/// SRTP both ways (the caller decrypted every packet the server sent), heard
/// its keys read back, and printed no key. Returns the transcript and its text.
fn dial_srtp_echo(
    s: &SrtpServer,
    extra: &[&str],
    digits: &str,
    what: &str,
) -> (Vec<String>, String) {
    let ca = s.pki.write_ca(s.server.dir.path());
    let during = format!("echo_intro={digits}#");
    let mut args = vec![
        "--srtp",
        "--during",
        &during,
        "--tls-ca",
        ca.to_str().unwrap(),
        "--timeout",
        "60",
    ];
    args.extend(extra);
    let (ok, transcript, err) = dial(
        &format!("sips:echo@{}", s.tls),
        &args,
        Duration::from_secs(70),
    );
    let text = transcript.join("\n");
    assert!(
        ok,
        "dial --srtp failed ({what}):\n{text}\n{err}\nserver:\n{}",
        s.server.output_text()
    );
    let has = |what: &str| transcript.iter().any(|l| l.contains(what));
    assert!(has("srtp AES_CM_128_HMAC_SHA1_80"), "{text}");
    assert_eq!(
        prompts_heard(&transcript),
        echo_readback(digits),
        "{what}:\n{text}"
    );
    assert!(
        has("srtp rejected 0 packets received"),
        "the caller decrypts all the server sends ({what}):\n{text}"
    );
    assert!(!text.contains("inline:"), "a key in dial's transcript");
    (transcript, text)
}

/// The project's own caller with SRTP (`dial --srtp`, over TLS) re-keys
/// 0.3 s into the call, during the intro, the way a phone or SBC that
/// refreshes its keys does: an UPDATE offers the same media with a new key,
/// and once it is answered the caller sends with it. The keys it then types
/// over the intro (barge-in, `#` at the end), as RFC 4733 events and as
/// in-band tones (both inside SRTP), must be read back: the server decrypts with the new key from the offer on. A
/// server that kept the old key fails every packet after the re-key (the
/// readback is missing and the malformed count runs into the hundreds); one
/// that refused the offer leaves the caller on its old key (no "new key"
/// line). The caller decrypts every packet the server sends.
#[test]
fn a_caller_that_rekeys_mid_call_is_still_heard() {
    let _alone = one_at_a_time();
    let s = serve("required");
    for (mode, digits) in [("rfc4733", "4815"), ("inband", "2906")] {
        let before = malformed(&s);
        // Typed over the intro, as callers who know the menu do.
        let extra = ["--srtp-rekey-after", "0.3", "--dtmf-mode", mode];
        let (transcript, text) = dial_srtp_echo(&s, &extra, digits, mode);
        let line = |what: &str| transcript.iter().position(|l| l.contains(what));
        let rekeyed = line("srtp sends with the new key")
            .unwrap_or_else(|| panic!("the re-key offer was not taken ({mode}):\n{text}"));
        assert!(line("sip UPDATE answered 200").is_some(), "{text}");
        let first_key = line("dtmf ").expect("keys were sent");
        assert!(
            rekeyed < first_key,
            "the keys must come after the re-key ({mode}):\n{text}"
        );
        let failed = malformed(&s) - before;
        assert!(
            failed <= 5,
            "{failed} of the caller's packets failed authentication at the server ({mode}): \
             it did not take the new key"
        );
    }
    // The new keys came in UPDATEs: no line of the server's log (at trace
    // level) carries one, nor does a metric.
    let log = s.server.output_text();
    for needle in ["inline:", "a=crypto"] {
        assert!(!log.contains(needle), "`{needle}` in the server's log");
    }
    let (_, metrics) = http_get(s.server.admin, "/metrics");
    assert!(!metrics.contains("inline:"));
}

/// `dial --srtp` insists: it refuses a clear target (SDES keys in clear SIP
/// would give them away), and a server with `media.srtp: off` refuses its
/// `RTP/SAVP` offer with `488`, which fails the call.
#[test]
fn dial_srtp_insists_on_encryption() {
    let (ok, transcript, err) = dial(
        "sip:echo@127.0.0.1:9",
        &["--srtp", "--timeout", "5"],
        Duration::from_secs(10),
    );
    assert!(!ok, "{}", transcript.join("\n"));
    assert!(err.contains("--srtp") && err.contains("TLS"), "{err}");

    let _alone = one_at_a_time();
    let s = serve("off");
    let ca = s.pki.write_ca(s.server.dir.path());
    let (ok, transcript, _) = dial(
        &format!("sips:echo@{}", s.tls),
        &[
            "--srtp",
            "--tls-ca",
            ca.to_str().unwrap(),
            "--timeout",
            "20",
        ],
        Duration::from_secs(30),
    );
    assert!(!ok, "{}", transcript.join("\n"));
    assert!(
        transcript.iter().any(|l| l.contains("sip failed 488")),
        "{}",
        transcript.join("\n")
    );
    assert!(prompts_heard(&transcript).is_empty());
}

/// The same over IPv6: TLS on `[::1]` and the server's media on `::1`. A caller
/// on `::1` with `dial --srtp` gets an `IP6` answer with a key, types its keys
/// over the intro and hears them read back through SRTP both ways; no key is
/// in the server's trace log.
#[test]
fn srtp_over_ipv6_is_heard_both_ways() {
    let _alone = one_at_a_time();
    let s = serve_on("required", &[], true);
    assert!(s.tls.is_ipv6(), "{}", s.tls);
    let (transcript, text) = dial_srtp_echo(&s, &["--local-ip", "::1"], "42", "IPv6");
    assert!(
        transcript.iter().any(|l| l.contains(" to [::1]:")),
        "media on ::1:\n{text}"
    );
    assert!(
        malformed(&s) <= 5,
        "the caller's packets failed at the server"
    );
    let log = s.server.output_text();
    for needle in ["inline:", "a=crypto"] {
        assert!(!log.contains(needle), "`{needle}` in the server's log");
    }
}
