//! `sspr-ivr dial`: a test caller built from the same modules as the server.
//!
//! It places one call (SIP over UDP, or TCP or TLS as the URI says — see
//! [`SipLink`]), sends G.711 silence continuously,
//! presses keys by RFC 4733, in-band tones or SIP INFO, recognises the
//! prompts it hears from the RTP payload bytes against the prompt cache,
//! and prints a transcript: one line per prompt heard and per SIP event,
//! each with the seconds since the call was answered.
//!
//! Digits are sent from three sources: `--dtmf` (after the first prompt
//! finishes), `--on PROMPT=DIGITS` (after that prompt finishes, each rule
//! used once, in order), and lines typed on standard input with `--stdin`.
//! Sent digit values are not printed, only their count: transcripts get
//! pasted into tickets, and the digits may be a real PIN.
//!
//! With `--srtp` (TLS targets only: SDES keys travel in the SDP) the call is
//! SRTP both ways with a fresh key, and `--srtp-rekey-after` offers a new key
//! mid-call in an UPDATE, as a phone or SBC that re-keys does. No key is
//! printed.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

use crate::codec::Codec;
use crate::media::g711;
use crate::media::goertzel::ToneGenerator;
use crate::media::prompts::PromptRecognizer;
use crate::media::rtp;
use crate::media::srtp::{CryptoAttr, MasterKey, SrtpKeys, SrtpTransform, Suite};
use crate::media::telephone_event;
use crate::media::DigitSource;
use crate::runtime::dial_link::{SipLink, TlsArgs};
use crate::sip::message;
use crate::sip::uac::{target_transport, LateAnswer, Uac, UacEvent};
use crate::sip::{sdp, ByeReason, EndpointConfig, Transport, Warning};

/// `--dtmf-mode`: how keys travel, the media layer's [`DigitSource`].
impl clap::ValueEnum for DigitSource {
    fn value_variants<'a>() -> &'a [Self] {
        &[DigitSource::Rfc4733, DigitSource::Inband, DigitSource::Info]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::Inband => "inband",
            DigitSource::Info => "info",
        }))
    }
}

/// `--codec`: the [`Codec`] to offer, by its lower-case encoding name.
impl clap::ValueEnum for Codec {
    fn value_variants<'a>() -> &'a [Self] {
        &[Codec::Pcmu, Codec::Pcma]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }))
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct DialArgs {
    /// Who to call, e.g. `sip:echo@127.0.0.1:5060`.
    pub uri: String,
    /// Digits to press once the first prompt has finished (`,` pauses 1 s).
    #[arg(long)]
    pub dtmf: Option<String>,
    /// Press DIGITS when PROMPT has finished playing: `--on enter_code=123456`.
    /// Repeat for several prompts; each rule is used once, in order.
    #[arg(long = "on", value_name = "PROMPT=DIGITS")]
    pub on: Vec<String>,
    /// Press DIGITS one second after PROMPT starts (barge-in, or typing
    /// during hold music): `--during hold_music=246810`.
    #[arg(long = "during", value_name = "PROMPT=DIGITS")]
    pub during: Vec<String>,
    /// Also read digits to press from standard input, one line at a time.
    #[arg(long)]
    pub stdin: bool,
    /// How keys are sent: RFC 4733 telephone events, in-band tones, or SIP INFO.
    #[arg(long, value_enum, default_value = "rfc4733")]
    pub dtmf_mode: DigitSource,
    /// Hang up (BYE) this many seconds after the answer.
    #[arg(long)]
    pub hangup_after: Option<f64>,
    /// Send no RTP until this many seconds after the answer (a phone whose media
    /// starts late; the server's media trust must not let anyone else in first).
    #[arg(long, value_name = "SECONDS")]
    pub rtp_after: Option<f64>,
    /// Send each RTP packet MS milliseconds after one of the server's arrives
    /// (0 up to the packet time): the first packet heard sets the schedule,
    /// which then keeps its own clock, as a phone's does. Without it packets
    /// go out from the answer on. For testing how the server lines its packet
    /// times up with the caller's (docs/operations.md, "phase lock").
    #[arg(long, value_name = "MS", conflicts_with = "rtp_after")]
    pub rtp_phase: Option<f64>,
    /// Send RTP N packets at a time, back to back, every N packet times (a
    /// jittery path, or a gateway that batches): each packet and telephone
    /// event leaves with the burst it falls in, in order. For testing that the
    /// server reads a burst whole and hears every key in it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rtp_burst: Option<u32>,
    /// This many seconds after the answer, fall quiet for 0.7 s and then send
    /// and receive RTP from a new port of the same IP, closing the old one: a
    /// NAT that rebinds the caller's mapping. The stream (SSRC, sequence,
    /// clock) goes on. For testing that the server follows the caller there.
    #[arg(long, value_name = "SECONDS")]
    pub rtp_move_after: Option<f64>,
    /// This many seconds after the answer, move the call's media to a new port
    /// on `--media-move-ip` the way a gateway that re-anchors its media does:
    /// an UPDATE offers the new address, and once it is answered RTP is sent
    /// and received there (same SSRC, sequence and clock). For testing that
    /// the server follows a new offer.
    #[arg(long, value_name = "SECONDS", requires = "media_move_ip")]
    pub media_move_after: Option<f64>,
    /// The IP the media moves to with `--media-move-after`.
    #[arg(long, value_name = "IP")]
    pub media_move_ip: Option<IpAddr>,
    /// Offer SRTP (SDES, RFC 4568; AES_CM_128_HMAC_SHA1_80) with a fresh key
    /// and insist on it: the offer is `RTP/SAVP`, every packet both ways is
    /// protected, and an answer without a key ends the call. The key travels
    /// in the SDP, so the target must be TLS (`sips:` or `;transport=tls`).
    #[arg(long)]
    pub srtp: bool,
    /// This many seconds after the answer, offer a new SRTP key for the same
    /// media in an UPDATE (RFC 4568 §7.1.4) and send with it once the UPDATE
    /// is answered: a phone or SBC that re-keys. For testing that the server
    /// follows the new key.
    #[arg(long, value_name = "SECONDS", requires = "srtp")]
    pub srtp_rekey_after: Option<f64>,
    /// Send the INVITE without SDP (a late offer, RFC 3261 §13.2.1, as some
    /// trunks and click-to-dial controllers do): the server offers in its 200
    /// and the answer goes in the ACK, with the first of our codecs it offered
    /// (`--codec pcma` to answer PCMA). An offer with none of them is still
    /// answered (an ACK must be), then the call is ended with BYE and `Reason:
    /// SIP ;cause=488`, and dial exits with an error, as for any answer it
    /// cannot use.
    #[arg(long, conflicts_with = "srtp")]
    pub late_offer: bool,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Prompt directory used to recognise what is heard [default: the English prompts
    /// built into the binary].
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Caller number (From user).
    #[arg(long, default_value = "5550100199")]
    pub from: String,
    /// Offer only this codec.
    #[arg(long, value_enum)]
    pub codec: Option<Codec>,
    /// Packet time to offer (`a=ptime`, ms): the server answers with it, and
    /// both sides send a packet every PTIME ms (a trunk on 30 ms).
    #[arg(long, value_name = "MS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(10..=60))]
    pub ptime: u32,
    /// Answer a REFER with 603 Decline instead of accepting it.
    #[arg(long)]
    pub refuse_refer: bool,
    /// Local IP to use for SIP and RTP.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: std::net::IpAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// One step of the send queue: a key to press, or a pause.
#[derive(Clone, Copy, Debug)]
enum SendStep {
    Key(char),
    Pause(Duration),
}

fn parse_presses(s: &str) -> anyhow::Result<Vec<SendStep>> {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '0'..='9' | '*' | '#' | 'A'..='D' => Ok(SendStep::Key(c)),
            ',' => Ok(SendStep::Pause(Duration::from_secs(1))),
            other => bail!("`{other}` is not a DTMF key (use 0-9 * # A-D, and , to pause)"),
        })
        .collect()
}

/// The transcript printer: seconds since answer, one line per event.
struct Transcript {
    answered: Option<Instant>,
    start: Instant,
}

impl Transcript {
    fn line(&self, what: &str) {
        let base = self.answered.unwrap_or(self.start);
        let t = Instant::now().saturating_duration_since(base).as_secs_f64();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{t:8.3} {what}");
        let _ = out.flush();
    }
}

struct Media {
    remote: SocketAddr,
    codec: Codec,
    audio_pt: u8,
    te_pt: Option<u8>,
    ptime: Duration,
    samples: u32,
    ssrc: u32,
    seq: u16,
    ts: u32,
    next: Instant,
    /// Packets per burst (`--rtp-burst`; 1: each at its time).
    burst: u32,
    /// RTP packets sent (audio and telephone events).
    sent: u64,
    /// Audio samples (tones) still to send, replacing silence.
    tone: VecDeque<i16>,
    /// RFC 4733 datagrams still to send, with their due times (clear).
    events: VecDeque<(Instant, Vec<u8>)>,
    /// `--srtp`: protects what is sent, unprotects what is received.
    srtp: Option<SrtpTransform>,
    /// Received datagrams that failed SRTP authentication.
    srtp_rejected: u64,
}

/// Our offer for media at `local`, as version `version` of the session, with
/// our SDES attribute when the call is SRTP.
fn our_offer(
    local: SocketAddr,
    codecs: &[Codec],
    ptime: u32,
    session_id: u64,
    version: u64,
    srtp: Option<&CryptoAttr>,
) -> String {
    sdp::offer_version(local, codecs, 101, ptime, session_id, version, srtp)
}

/// A fresh SDES attribute (tag 1, the suite every SRTP peer speaks).
fn fresh_crypto() -> CryptoAttr {
    CryptoAttr {
        tag: 1,
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::generate(&mut rand::rngs::OsRng),
    }
}

pub async fn run(args: DialArgs) -> anyhow::Result<()> {
    let mut presses: VecDeque<SendStep> = VecDeque::new();
    let mut first_prompt_presses = match &args.dtmf {
        Some(d) => Some(parse_presses(d)?),
        None => None,
    };
    let parse_rules =
        |list: &[String], flag: &str| -> anyhow::Result<Vec<(String, Vec<SendStep>)>> {
            list.iter()
                .map(|r| {
                    let (p, d) = r
                        .split_once('=')
                        .with_context(|| format!("{flag} `{r}`: expected PROMPT=DIGITS"))?;
                    Ok((p.to_string(), parse_presses(d)?))
                })
                .collect()
        };
    let mut rules = parse_rules(&args.on, "--on")?;
    let mut during_rules = parse_rules(&args.during, "--during")?;
    let cache = Arc::new(match &args.prompts {
        Some(dir) => crate::files::load_prompts(dir)?,
        None => crate::files::embedded_prompts()?,
    });
    let transport = target_transport(args.uri.trim())
        .with_context(|| format!("{}: not a sip: or sips: URI", args.uri))?;
    let target = message::uri_hostport(args.uri.trim())
        .and_then(message::hostport_addr)
        .with_context(|| format!("{}: the host must be an IP address", args.uri))?;
    if args.srtp && transport != Transport::Tls {
        bail!(
            "--srtp: the key travels in the SDP, so it needs a TLS target \
             (sips:… or ;transport=tls), not {}",
            args.uri
        );
    }
    let mut sip = SipLink::open(transport, args.local_ip, target, &args.tls).await?;
    let mut rtp_sock = UdpSocket::bind(SocketAddr::new(args.local_ip, 0)).await?;
    let sip_local = sip.local_addr()?;
    let rtp_local = rtp_sock.local_addr()?;
    let codecs: Vec<Codec> = match args.codec {
        Some(codec) => vec![codec],
        None => vec![Codec::Pcmu, Codec::Pcma],
    };
    let session_id = rand::random::<u32>() as u64;
    // Our SDES attribute (its key is what we send with); a re-key replaces it.
    let mut our_crypto = args.srtp.then(fresh_crypto);
    let mut sdp_version = session_id;
    let offer = our_offer(
        rtp_local,
        &codecs,
        args.ptime,
        session_id,
        sdp_version,
        our_crypto.as_ref(),
    );
    let start = Instant::now();
    let config = EndpointConfig::new(
        sip_local,
        concat!("sspr-ivr-dial/", env!("CARGO_PKG_VERSION")),
    );
    let rng = crate::sip::TokenRng::from_seed(rand::random());
    let mut uac = if args.late_offer {
        let prefs = codecs.clone();
        // The answer to the server's offer: the first of our codecs in it.
        // An offer with none of them still gets a valid answer (ours); the
        // call is then ended with BYE as soon as it is answered (below).
        let answer =
            move |theirs: &str| match sdp::parse(theirs).and_then(|o| sdp::negotiate(&o, &prefs)) {
                Ok(neg) => sdp::answer(&neg, rtp_local, session_id, None),
                Err(_) => offer.clone(),
            };
        Uac::new_late_offer(
            start.into_std(),
            config,
            &args.uri,
            &args.from,
            LateAnswer(Box::new(answer)),
            rng,
        )
    } else {
        Uac::new(start.into_std(), config, &args.uri, &args.from, offer, rng)
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    uac.refuse_refer(args.refuse_refer);
    let mut tr = Transcript {
        answered: None,
        start,
    };
    let overall = start + Duration::from_secs_f64(args.timeout);
    let mut media: Option<Media> = None;
    let mut recognizer: Option<PromptRecognizer> = None;
    // (prompt name, when it will have finished playing)
    let mut playing: Option<(String, Instant)> = None;
    let mut hangup_at: Option<Instant> = None;
    // --rtp-move-after: when the caller's RTP falls quiet and moves port.
    let mut move_at: Option<Instant> = None;
    // --media-move-after: when to offer the new address, and its socket until
    // the offer is answered.
    let mut media_move_at: Option<Instant> = None;
    let mut media_moving: Option<UdpSocket> = None;
    // --srtp-rekey-after: when to offer the new key, and the key until the
    // offer is answered.
    let mut rekey_at: Option<Instant> = None;
    let mut rekeying: Option<CryptoAttr> = None;
    // The answer could not be used (no codec of ours, not SDP, no SRTP key in
    // our suite): we sent BYE, and the call fails (exit status 1).
    let mut media_refused = false;
    let mut next_press_at: Option<Instant> = None;
    let mut stdin_lines = if args.stdin {
        Some(tokio::io::BufReader::new(tokio::io::stdin()).lines())
    } else {
        None
    };
    let mut sip_buf = vec![0u8; 65_535];
    let mut rtp_buf = vec![0u8; 2048];
    let mut clear: Vec<u8> = Vec::with_capacity(2048);
    let mut exit_code: Option<i32> = None;
    // --rtp-phase: no packet until the server's first one sets the schedule.
    let mut phase_from_first: Option<Duration> = None;

    loop {
        while let Some(t) = uac.poll_transmit() {
            sip.send(&t.payload, t.destination).await?;
        }
        while let Some(ev) = uac.poll_event() {
            match ev {
                UacEvent::Provisional(code) => tr.line(&format!("sip {code}")),
                UacEvent::Answered { sdp: answer } => {
                    tr.answered = Some(Instant::now());
                    tr.line(if args.late_offer {
                        "sip answered (late offer: our answer went in the ACK)"
                    } else {
                        "sip answered"
                    });
                    // An answer (or, late offer, an offer) we cannot use: the
                    // call is up, so end it with a BYE that says why
                    // (RFC 3261 §13.2.2.4) rather than leave the server
                    // playing to nobody until its RTP timeout.
                    let usable = sdp::parse(&answer)
                        .and_then(|p| sdp::negotiate(&p, &codecs).map(|neg| (p, neg)));
                    let (parsed, neg) = match usable {
                        Ok(usable) => usable,
                        Err(e) => {
                            tr.line(&format!("media refused: {e}: BYE"));
                            let warning = match e {
                                sdp::SdpError::NoCommonCodec => Warning::MEDIA_FORMAT,
                                _ => Warning::UNUSABLE_SDP,
                            };
                            uac.hangup_with(
                                Instant::now().into_std(),
                                Some(ByeReason::refused(warning)),
                            );
                            media_refused = true;
                            continue;
                        }
                    };
                    tr.line(&format!(
                        "media {} pt {} telephone-event {} ptime {} to {}",
                        neg.codec.encoding_name(),
                        neg.audio_pt,
                        neg.telephone_event_pt
                            .map(|p| p.to_string())
                            .unwrap_or("-".into()),
                        neg.ptime_ms,
                        neg.remote
                    ));
                    let srtp = match (&our_crypto, &parsed.crypto.first()) {
                        (None, _) => None,
                        (Some(ours), Some(theirs))
                            if parsed.proto == sdp::SAVP && theirs.suite == ours.suite =>
                        {
                            tr.line(&format!("srtp {}", ours.suite.name()));
                            Some(SrtpTransform::new(&SrtpKeys {
                                suite: ours.suite,
                                local: ours.key.clone(),
                                remote: theirs.key.clone(),
                            }))
                        }
                        (Some(_), _) => {
                            tr.line("srtp refused: the answer has no key in our suite");
                            uac.hangup_with(
                                Instant::now().into_std(),
                                Some(ByeReason::refused(Warning::TRANSPORT)),
                            );
                            media_refused = true;
                            None
                        }
                    };
                    if media_refused {
                        // Not one clear packet: no media at all.
                        continue;
                    }
                    recognizer = Some(PromptRecognizer::new(cache.clone(), neg.codec));
                    let ptime = Duration::from_millis(u64::from(neg.ptime_ms));
                    let mut first_send = Instant::now()
                        + Duration::from_secs_f64(args.rtp_after.unwrap_or(0.0).max(0.0));
                    if let Some(ms) = args.rtp_phase {
                        let phase = Duration::from_secs_f64(ms.max(0.0) / 1000.0).min(ptime);
                        phase_from_first = Some(phase);
                        first_send = overall;
                    }
                    media = Some(Media {
                        remote: neg.remote,
                        codec: neg.codec,
                        audio_pt: neg.audio_pt,
                        te_pt: neg.telephone_event_pt,
                        ptime,
                        samples: neg.ptime_ms * 8,
                        ssrc: rand::random(),
                        seq: rand::random(),
                        ts: rand::random(),
                        next: first_send,
                        burst: args.rtp_burst.unwrap_or(1),
                        sent: 0,
                        tone: VecDeque::new(),
                        events: VecDeque::new(),
                        srtp,
                        srtp_rejected: 0,
                    });
                    if let Some(n) = args.rtp_burst.filter(|n| *n > 1) {
                        tr.line(&format!("rtp in bursts of {n} packets"));
                    }
                    if let Some(s) = args.hangup_after {
                        hangup_at = Some(Instant::now() + Duration::from_secs_f64(s));
                    }
                    if let Some(s) = args.media_move_after {
                        media_move_at = Some(Instant::now() + Duration::from_secs_f64(s.max(0.0)));
                    }
                    if let Some(s) = args.srtp_rekey_after {
                        rekey_at = Some(Instant::now() + Duration::from_secs_f64(s.max(0.0)));
                    }
                    if let Some(s) = args.rtp_move_after {
                        move_at = Some(Instant::now() + Duration::from_secs_f64(s.max(0.0)));
                    }
                }
                UacEvent::Failed(code) => {
                    tr.line(&format!("sip failed {code}"));
                    exit_code = Some(2);
                }
                UacEvent::ReferReceived { target, headers } => {
                    let hs: Vec<String> =
                        headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    tr.line(&format!(
                        "sip REFER to {target} ({}){}",
                        hs.join(", "),
                        if args.refuse_refer { " refused" } else { "" }
                    ));
                }
                UacEvent::ByeReceived { reason: None } => tr.line("sip BYE received"),
                UacEvent::ByeReceived {
                    reason: Some(reason),
                } => tr.line(&format!("sip BYE received (Reason: {reason})")),
                UacEvent::Info { status } => tr.line(&format!("sip INFO answered {status}")),
                UacEvent::Updated {
                    status,
                    sdp: answer,
                } => {
                    tr.line(&format!("sip UPDATE answered {status}"));
                    if let Some(new) = rekeying.take() {
                        let answered = (200..300).contains(&status);
                        if let (true, Some(t)) =
                            (answered, media.as_mut().and_then(|m| m.srtp.as_mut()))
                        {
                            t.rekey_local(&new.key);
                            // The answer may carry a new key of the server's too.
                            let theirs = answer
                                .as_deref()
                                .and_then(|a| sdp::parse(a).ok())
                                .and_then(|a| a.crypto.into_iter().find(|c| c.suite == new.suite));
                            if let Some(theirs) = theirs {
                                t.rekey_remote(&theirs.key);
                            }
                            our_crypto = Some(new);
                            tr.line("srtp sends with the new key");
                        }
                    }
                    if let Some(sock) = media_moving.take().filter(|_| (200..300).contains(&status))
                    {
                        rtp_sock = sock;
                        tr.line(&format!("rtp moves to {}", rtp_sock.local_addr()?));
                    }
                }
                UacEvent::Terminated => {
                    if let Some(m) = &media {
                        tr.line(&format!("rtp sent {} packets", m.sent));
                        if m.srtp.is_some() {
                            tr.line(&format!(
                                "srtp rejected {} packets received",
                                m.srtp_rejected
                            ));
                        }
                    }
                    tr.line("sip ended");
                    exit_code.get_or_insert(if media_refused { 2 } else { 0 });
                }
            }
        }
        if let Some(code) = exit_code {
            if code != 0 {
                bail!("call failed");
            }
            return Ok(());
        }
        let now = Instant::now();
        if now >= overall {
            tr.line("timeout");
            bail!("gave up after {} s", args.timeout);
        }

        // A prompt that finished playing may trigger presses.
        if let Some((name, done_at)) = &playing {
            if now >= *done_at {
                if let Some(p) = first_prompt_presses.take() {
                    presses.extend(p);
                }
                if let Some(i) = rules.iter().position(|(p, _)| p == name) {
                    let (_, p) = rules.remove(i);
                    presses.extend(p);
                }
                playing = None;
                next_press_at.get_or_insert(now + Duration::from_millis(200));
            }
        }
        if let (Some(m), Some(at)) = (&mut media, next_press_at) {
            if now >= at && m.tone.is_empty() && m.events.is_empty() {
                match presses.pop_front() {
                    Some(SendStep::Key(k)) => {
                        press(&mut uac, m, k, args.dtmf_mode, now);
                        tr.line(&format!("dtmf {k} sent"));
                        next_press_at = Some(now + Duration::from_millis(250));
                    }
                    Some(SendStep::Pause(d)) => next_press_at = Some(now + d),
                    None => next_press_at = None,
                }
            }
        }
        if let Some(at) = hangup_at {
            if now >= at {
                hangup_at = None;
                tr.line("sip hangup");
                uac.hangup(now.into_std());
                continue;
            }
        }
        if let (Some(at), Some(ip)) = (media_move_at, args.media_move_ip) {
            if now >= at {
                media_move_at = None;
                let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
                let local = sock.local_addr()?;
                // The same session, its next version (RFC 3264 §8).
                sdp_version += 1;
                let offer = our_offer(
                    local,
                    &codecs,
                    args.ptime,
                    session_id,
                    sdp_version,
                    our_crypto.as_ref(),
                );
                tr.line(&format!("sip UPDATE offers media at {local}"));
                uac.update(now.into_std(), offer);
                media_moving = Some(sock);
                continue;
            }
        }
        if rekey_at.is_some_and(|at| now >= at) {
            rekey_at = None;
            // The same media, a new key: the next version of the session.
            let new = fresh_crypto();
            sdp_version += 1;
            let offer = our_offer(
                rtp_sock.local_addr()?,
                &codecs,
                args.ptime,
                session_id,
                sdp_version,
                Some(&new),
            );
            tr.line("sip UPDATE offers a new SRTP key");
            uac.update(now.into_std(), offer);
            rekeying = Some(new);
            continue;
        }
        if let (Some(at), Some(m)) = (move_at, &mut media) {
            if now >= at {
                move_at = None;
                // The phone's clock runs on through the pause; its packets do not.
                let quiet = Duration::from_millis(MOVE_QUIET_MS);
                let skipped = (quiet.as_millis() / m.ptime.as_millis().max(1)) as u32;
                m.next = now + quiet;
                m.ts = m.ts.wrapping_add(m.samples * skipped);
                rtp_sock = UdpSocket::bind(SocketAddr::new(args.local_ip, 0)).await?;
                tr.line(&format!(
                    "rtp moves to port {} after {MOVE_QUIET_MS} ms quiet",
                    rtp_sock.local_addr()?.port()
                ));
            }
        }
        // Media: send every frame that is due (absolute schedule); with
        // --rtp-burst, nothing until the last packet of a burst is due, then
        // the whole burst.
        if let Some(m) = &mut media {
            let burst_due = m.next + m.hold() <= now;
            if burst_due {
                while m.next <= now {
                    send_frame(&rtp_sock, m).await;
                    m.next += m.ptime;
                }
            }
            if m.burst == 1 || burst_due {
                while m.events.front().is_some_and(|(due, _)| *due <= now) {
                    if let Some((_, pkt)) = m.events.pop_front() {
                        send_packet(&rtp_sock, m, pkt).await;
                    }
                }
            }
        }

        let mut wake = overall;
        let mut soon = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        soon(uac.poll_timeout().map(Instant::from_std));
        soon(media.as_ref().map(|m| m.next + m.hold()));
        // In bursts, events wait for theirs.
        soon(
            media
                .as_ref()
                .filter(|m| m.burst == 1)
                .and_then(|m| m.events.front().map(|e| e.0)),
        );
        soon(playing.as_ref().map(|p| p.1));
        soon(next_press_at);
        soon(hangup_at);
        soon(move_at);
        soon(media_move_at);
        soon(rekey_at);

        tokio::select! {
            r = sip.recv(&mut sip_buf) => {
                let (data, from) = r?;
                uac.handle_datagram(Instant::now().into_std(), transport, from, &data);
            }
            r = rtp_sock.recv_from(&mut rtp_buf) => {
                let (mut n, _from) = r?;
                if let Some(m) = &mut media {
                    if let Some(t) = &mut m.srtp {
                        if t.unprotect(&rtp_buf[..n], &mut clear).is_err() {
                            m.srtp_rejected += 1;
                            continue;
                        }
                        n = clear.len();
                        rtp_buf[..n].copy_from_slice(&clear);
                    }
                }
                if let (Some(m), Some(phase)) = (&mut media, phase_from_first.take()) {
                    m.next = Instant::now() + phase;
                    tr.line(&format!("rtp phase {} ms after the server's packets", phase.as_millis()));
                }
                if let (Some(rec), Ok(pkt)) = (&mut recognizer, rtp::parse(&rtp_buf[..n])) {
                    if let Some(name) = rec.push(pkt.payload) {
                        tr.line(&format!("prompt {name}"));
                        let len = cache.get(&name).map(|p| p.duration()).unwrap_or_default();
                        if let Some(i) = during_rules.iter().position(|(p, _)| *p == name) {
                            let (_, p) = during_rules.remove(i);
                            presses.push_back(SendStep::Pause(Duration::from_secs(1)));
                            presses.extend(p);
                            next_press_at.get_or_insert(Instant::now());
                        }
                        playing = Some((name, Instant::now() + len));
                    }
                }
            }
            line = async {
                match &mut stdin_lines {
                    Some(l) => l.next_line().await,
                    None => std::future::pending().await,
                }
            } => {
                match line {
                    Ok(Some(l)) => {
                        presses.extend(parse_presses(&l)?);
                        next_press_at.get_or_insert(Instant::now());
                    }
                    _ => stdin_lines = None,
                }
            }
            _ = sleep_until(wake) => {
                uac.handle_timeout(Instant::now().into_std());
            }
        }
    }
}

/// How long `--rtp-move-after` keeps quiet before the new port: longer than
/// the server's re-latch wait (`media::RELATCH_AFTER`).
const MOVE_QUIET_MS: u64 = 700;
const _: () = assert!(MOVE_QUIET_MS as u128 > crate::media::trust::RELATCH_AFTER.as_millis());

/// Start one key press in the chosen way.
fn press(uac: &mut Uac, m: &mut Media, key: char, mode: DigitSource, now: Instant) {
    match mode {
        DigitSource::Info => uac.send_info(now.into_std(), key, 100),
        DigitSource::Inband => {
            if let Some(samples) = ToneGenerator::new().digit(key, 100, -10.0) {
                m.tone.extend(samples);
            }
        }
        DigitSource::Rfc4733 => {
            // The event's timestamp is the audio clock at the start of the
            // press; the packets follow every ptime with growing duration.
            let Some(pt) = m.te_pt else { return };
            let Ok(sender) = telephone_event::Sender::new(pt, m.ptime.as_millis() as u32) else {
                return;
            };
            let first_seq = m.seq.wrapping_add(1);
            if let Ok(packets) =
                sender.press(key, m.ssrc, first_seq, m.ts, Duration::from_millis(100))
            {
                m.seq = m.seq.wrapping_add(packets.len() as u16);
                for p in packets {
                    m.events.push_back((now + p.offset, p.to_bytes()));
                }
            }
        }
    }
}

impl Media {
    /// How long a packet waits for the last of its burst (`--rtp-burst`).
    fn hold(&self) -> Duration {
        self.ptime * (self.burst - 1)
    }
}

async fn send_frame(sock: &UdpSocket, m: &mut Media) {
    let mut pcm = Vec::with_capacity(m.samples as usize);
    for _ in 0..m.samples {
        pcm.push(m.tone.pop_front().unwrap_or(0));
    }
    let payload = g711::encode(m.codec, &pcm);
    m.seq = m.seq.wrapping_add(1);
    let header = rtp::RtpHeader {
        payload_type: m.audio_pt,
        marker: false,
        sequence: m.seq,
        timestamp: m.ts,
        ssrc: m.ssrc,
    };
    m.ts = m.ts.wrapping_add(m.samples);
    if let Ok(pkt) = rtp::build(&header, &payload) {
        send_packet(sock, m, pkt).await;
    }
}

/// Send one clear RTP packet, protected first on an SRTP call.
async fn send_packet(sock: &UdpSocket, m: &mut Media, mut pkt: Vec<u8>) {
    if let Some(t) = &mut m.srtp {
        if t.protect(&mut pkt).is_err() {
            return;
        }
    }
    if sock.send_to(&pkt, m.remote).await.is_ok() {
        m.sent += 1;
    }
}
