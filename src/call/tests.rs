//! One call in virtual time: the real flows and prompts, SIP events in,
//! outputs checked. No sockets, no clock.
use super::*;
use crate::codec::Codec;
use crate::media::DtmfMode;
use std::path::PathBuf;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prompts() -> Arc<PromptCache> {
    static P: OnceLock<Arc<PromptCache>> = OnceLock::new();
    P.get_or_init(|| {
        Arc::new(crate::files::load_prompts(&root().join("prompts/en")).expect("prompts"))
    })
    .clone()
}

fn call(flow: &str, t0: Instant) -> Call {
    let flow = crate::files::load_flow(&root().join(format!("flows/{flow}.yaml"))).expect("flow");
    call_with(flow, t0)
}

fn call_with(flow: crate::flow::model::Flow, t0: Instant) -> Call {
    Call::new(
        t0,
        CallParams {
            pacing: None,
            key: CallKey("c1@test".into()),
            ani: "5550100199".into(),
            dnis: "reset".into(),
            flow_name: "sspr".into(),
            flow: Arc::new(flow),
            media: MediaConfig {
                codec: Codec::Pcmu,
                audio_pt: 0,
                telephone_event_pt: Some(101),
                ptime_ms: 20,
                remote: "127.0.0.1:40000".parse().unwrap(),
                symmetric_rtp: true,
                dtmf_mode: DtmfMode::Auto,
                inactivity_timeout: Duration::from_secs(600),
                hold_timeout: Duration::from_secs(600),
                record: false,
                trust: crate::media::RtpTrust::from_sources(&[
                    crate::media::RtpSource::Sdp,
                    crate::media::RtpSource::Signalling,
                ]),
                signalling_ip: Some("127.0.0.1".parse().unwrap()),
                peer_receives: true,
            },
            prompts: prompts(),
            ssrc: 1,
            seq: 1,
            timestamp: 0,
            max_duration: Duration::from_secs(900),
            transfer_targets: BTreeMap::from([
                ("agent".into(), "sip:agents@127.0.0.1:5070".into()),
                (
                    "account_recovery".into(),
                    "sip:recovery@127.0.0.1:5070".into(),
                ),
            ]),
            reason_header: "X-Transfer-Reason".into(),
            variables: BTreeMap::new(),
            srtp: None,
        },
    )
}

/// Drives a call: time jumps to each deadline; non-RTP outputs are kept.
struct Harness {
    call: Call,
    now: Instant,
    t0: Instant,
    seen: Vec<(Duration, Output)>,
    rtp_packets: usize,
    replied: Vec<u64>,
}

impl Harness {
    fn new(flow: &str) -> Harness {
        let t0 = Instant::now();
        Harness::start(call(flow, t0), t0)
    }

    fn start(call: Call, t0: Instant) -> Harness {
        let mut h = Harness {
            call,
            now: t0,
            t0,
            seen: Vec::new(),
            rtp_packets: 0,
            replied: Vec::new(),
        };
        h.sip(SipEvent::Established {
            call: CallKey("c1@test".into()),
            ack_sdp: None,
        });
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.call.poll_output() {
            self.seen.push((self.now - self.t0, o));
        }
        let mut buf = Vec::new();
        while self.call.poll_transmit(&mut buf).is_some() {
            self.rtp_packets += 1;
        }
    }

    fn sip(&mut self, ev: SipEvent) {
        self.call.handle_sip(self.now, ev);
        self.drain();
    }

    /// Advance virtual time by `d`, waking at every deadline on the way.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.call.poll_timeout() {
            if t > end {
                break;
            }
            assert!(t >= self.now, "deadline in the past");
            self.now = t;
            self.call.handle_timeout(t);
            self.drain();
        }
        self.now = end;
    }

    /// Run until `pred` matches an output seen from now on (max 120 s).
    fn run_until(&mut self, what: &str, pred: impl Fn(&Output) -> bool) -> Duration {
        let from = self.seen.len();
        for _ in 0..120_000 {
            if let Some((at, _)) = self.seen[from..].iter().find(|(_, o)| pred(o)) {
                return *at;
            }
            self.run_for(Duration::from_millis(1));
        }
        panic!("never saw {what}: {:#?}", self.seen);
    }

    fn press(&mut self, digits: &str) {
        for d in digits.chars() {
            self.sip(SipEvent::Dtmf {
                call: CallKey("c1@test".into()),
                digit: d,
                duration_ms: Some(100),
            });
            self.run_for(Duration::from_millis(250));
        }
    }

    /// The id of the newest request for action `name` not yet answered.
    fn action(&mut self, name: &str) -> u64 {
        let find = |h: &Harness| {
            h.seen.iter().rev().find_map(|(_, o)| match o {
                Output::RunAction { id, action, .. }
                    if action == name && !h.replied.contains(id) =>
                {
                    Some(*id)
                }
                _ => None,
            })
        };
        if find(self).is_none() {
            self.run_until(
                name,
                |o| matches!(o, Output::RunAction { action, .. } if action == name),
            );
        }
        find(self).expect("requested")
    }

    fn reply(&mut self, id: u64, outcome: &str, outputs: &[(&str, &str)]) {
        self.replied.push(id);
        let mut vars = Vars::new();
        for (k, v) in outputs {
            vars.set_plain(*k, *v);
        }
        self.call.handle_action_result(self.now, id, outcome, vars);
        self.drain();
    }

    fn refer_sent(&mut self) -> (String, Vec<(String, String)>) {
        self.run_until("REFER", |o| {
            matches!(o, Output::Sip(SipCommand::Refer { .. }))
        });
        self.seen
            .iter()
            .find_map(|(_, o)| match o {
                Output::Sip(SipCommand::Refer {
                    target, headers, ..
                }) => Some((target.clone(), headers.clone())),
                _ => None,
            })
            .unwrap()
    }

    fn hung_up(&self) -> bool {
        self.seen
            .iter()
            .any(|(_, o)| matches!(o, Output::Sip(SipCommand::Hangup { .. })))
    }

    fn audits(&self) -> Vec<(String, String)> {
        self.seen
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Audit { result, reason } => Some((result.clone(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// The caller puts the call on hold (a new offer with `sendonly`), or
    /// takes it back.
    fn hold(&mut self, held: bool) {
        self.sip(SipEvent::MediaUpdate {
            call: CallKey("c1@test".into()),
            remote: "127.0.0.1:40000".parse().unwrap(),
            peer_receives: !held,
            srtp: None,
        });
    }

    /// Every prompt list played so far, each joined with commas.
    fn prompts_played(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Timeline(TimelineEvent::PromptPlayed { prompts }) => {
                    Some(prompts.join(","))
                }
                _ => None,
            })
            .collect()
    }

    fn refer_status(&mut self, status: ReferStatus) {
        self.sip(SipEvent::ReferStatus {
            call: CallKey("c1@test".into()),
            status,
        });
    }
}

/// Known employee, code sent, eight seconds into the hold music (secure).
fn to_comfort_loop(h: &mut Harness) {
    h.run_for(Duration::from_secs(1));
    h.press("123456#");
    let id = h.action("lookup_user");
    h.reply(
        id,
        "success",
        &[
            ("user_id", "u1"),
            ("mobile", "+1 555-010-0199"),
            ("factor", "sms"),
        ],
    );
    let id = h.action("send_otp");
    h.reply(id, "success", &[]);
    h.run_for(Duration::from_secs(8));
}

fn to_locked_refer(h: &mut Harness) -> (String, Vec<(String, String)>) {
    h.run_for(Duration::from_secs(1));
    h.press("345678#");
    let id = h.action("lookup_user");
    h.reply(id, "locked", &[("status", "LOCKED_OUT")]);
    h.refer_sent()
}

#[test]
fn no_media_before_the_ack_then_20_ms_pacing() {
    let t0 = Instant::now();
    let mut c = call("echo", t0);
    let mut sent = Vec::new();
    let mut now = t0;
    let mut run = |c: &mut Call, until: Instant, now: &mut Instant| {
        while *now < until {
            c.handle_timeout(*now);
            while c.poll_output().is_some() {}
            while c.poll_transmit(&mut Vec::new()).is_some() {
                sent.push(*now - t0);
            }
            *now = c.poll_timeout().unwrap();
        }
    };
    // A second without the ACK and without a packet from the caller: nothing
    // (a spoofed INVITE aims no stream at anyone).
    run(&mut c, t0 + Duration::from_secs(1), &mut now);
    c.handle_sip(
        now,
        SipEvent::Established {
            call: CallKey("c1@test".into()),
            ack_sdp: None,
        },
    );
    run(&mut c, t0 + Duration::from_secs(2), &mut now);
    let want: Vec<Duration> = (50..100).map(|n| Duration::from_millis(20 * n)).collect();
    assert_eq!(sent, want);
}

#[test]
fn locked_account_waits_for_the_notify_before_hanging_up() {
    let mut h = Harness::new("sspr");
    let (target, headers) = to_locked_refer(&mut h);
    assert_eq!(target, "sip:recovery@127.0.0.1:5070");
    assert_eq!(
        headers,
        [(
            "X-Transfer-Reason".to_string(),
            "account_locked".to_string()
        )]
    );
    h.refer_status(ReferStatus::Accepted);
    h.run_for(Duration::from_secs(2));
    assert!(!h.hung_up(), "no BYE while the transfer is in progress");
    h.refer_status(ReferStatus::Notify(200));
    assert!(h.hung_up(), "BYE once the NOTIFY says the transfer worked");
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::LocalBye,
    });
    assert!(matches!(
        h.seen.last().map(|(_, o)| o),
        Some(Output::Ended(CallOutcome::Transferred))
    ));
    assert_eq!(
        h.audits(),
        [("failure".to_string(), "account_locked".to_string())]
    );
}

#[test]
fn a_202_without_notify_settles_as_transferred_after_five_seconds() {
    let mut h = Harness::new("sspr");
    to_locked_refer(&mut h);
    h.refer_status(ReferStatus::Accepted);
    let accepted_at = h.now - h.t0;
    let bye_at = h.run_until("BYE", |o| {
        matches!(o, Output::Sip(SipCommand::Hangup { .. }))
    });
    assert_eq!(bye_at - accepted_at, REFER_NOTIFY_WAIT);
}

#[test]
fn a_failed_transfer_takes_the_fallback_path() {
    let mut h = Harness::new("sspr");
    to_locked_refer(&mut h);
    h.refer_status(ReferStatus::Accepted);
    h.refer_status(ReferStatus::Notify(486));
    assert!(!h.hung_up(), "the caller is still with us");
    h.run_until("BYE after the help-desk announcement", |o| {
        matches!(o, Output::Sip(SipCommand::Hangup { .. }))
    });
    let timeline = h.prompts_played();
    assert!(
        timeline.iter().any(|p| p.contains("helpdesk_number")),
        "{timeline:?}"
    );
}

#[test]
fn caller_hangup_inside_the_secure_segment_is_audited_and_unsecures() {
    let mut h = Harness::new("sspr");
    // Into the comfort loop (secure), type half a code, hang up.
    to_comfort_loop(&mut h);
    assert!(h.call.is_secure(), "comfort loop is secure");
    h.press("246");
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::RemoteBye {
            reason: Some("Q.850;cause=16".into()),
        },
    });
    assert_eq!(h.call.caller_reason(), Some("Q.850;cause=16"));
    assert!(!h.call.is_secure());
    assert_eq!(
        h.audits(),
        [(
            "abandoned".to_string(),
            "caller_hangup_in_secure_segment".to_string()
        )]
    );
    assert!(matches!(
        h.seen.last().map(|(_, o)| o),
        Some(Output::Ended(CallOutcome::CallerHangup))
    ));
    let debug = format!("{:?}", h.seen);
    assert!(!debug.contains("246"), "typed code digits never in outputs");
}

/// The endpoint ended a dialog whose session refreshes stopped (RFC 4028):
/// the caller's BYE `Reason` is not theirs to give, and the open attempt is
/// audited as the server's doing, not as the caller hanging up.
#[test]
fn an_expired_session_is_audited_as_the_servers_doing() {
    let mut h = Harness::new("sspr");
    to_comfort_loop(&mut h);
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::SessionExpired,
    });
    assert!(!h.call.is_secure());
    assert_eq!(
        h.audits(),
        [(
            "abandoned".to_string(),
            "session_expired_in_secure_segment".to_string()
        )]
    );
    assert!(matches!(
        h.seen.last().map(|(_, o)| o),
        Some(Output::Ended(CallOutcome::SessionExpired))
    ));
    assert_eq!(h.call.caller_reason(), None);
    // No BYE of our own: the endpoint sent it.
    assert!(!h
        .seen
        .iter()
        .any(|(_, o)| matches!(o, Output::Sip(SipCommand::Hangup { .. }))));
}

#[test]
fn shutdown_at_the_drain_limit_is_audited_as_the_servers_doing() {
    let mut h = Harness::new("sspr");
    to_comfort_loop(&mut h);
    assert!(h.call.is_secure());
    h.call.terminate(h.now, CallOutcome::Shutdown);
    h.drain();
    assert!(h.hung_up(), "BYE");
    assert!(!h.call.is_secure(), "recording re-armed");
    assert_eq!(
        h.audits(),
        [(
            "abandoned".to_string(),
            "shutdown_in_secure_segment".to_string()
        )]
    );
}

/// Up to the moment `reset_pin` has been sent; returns its action id.
fn to_reset_in_flight(h: &mut Harness) -> u64 {
    to_comfort_loop(h);
    h.press("246810");
    let id = h.action("verify_otp");
    h.reply(id, "success", &[]);
    h.run_for(Duration::from_secs(1));
    h.press("835172");
    h.run_for(Duration::from_secs(1));
    h.press("835172");
    h.action("reset_pin")
}

#[test]
fn a_reset_in_flight_when_the_caller_hangs_up_is_audited_with_its_result() {
    let mut h = Harness::new("sspr");
    let id = to_reset_in_flight(&mut h);
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::RemoteBye { reason: None },
    });
    assert!(
        !h.seen.iter().any(|(_, o)| matches!(o, Output::Ended(_))),
        "the call waits for the reset it already sent"
    );
    let before = h.rtp_packets;
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.rtp_packets, before, "no RTP after the caller left");
    h.reply(id, "success", &[]);
    assert_eq!(
        h.audits(),
        [
            (
                "abandoned".to_string(),
                "caller_hangup_in_secure_segment".to_string()
            ),
            (
                "success".to_string(),
                "reset_pin_success_after_hangup".to_string()
            ),
        ]
    );
    assert!(matches!(
        h.seen.last().map(|(_, o)| o),
        Some(Output::Ended(CallOutcome::CallerHangup))
    ));
}

#[test]
fn a_reset_that_never_answers_after_hangup_is_audited_as_unknown() {
    let mut h = Harness::new("sspr");
    to_reset_in_flight(&mut h);
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::RemoteBye { reason: None },
    });
    let at = h.now;
    let ended = h.run_until("the end", |o| matches!(o, Output::Ended(_)));
    assert_eq!(ended, at - h.t0 + LINGER);
    assert!(h.audits().contains(&(
        "unknown".to_string(),
        "reset_pin_no_result_after_hangup".to_string()
    )));
}

#[test]
fn late_offer_takes_the_answer_from_the_ack() {
    let t0 = Instant::now();
    let mut c = call("echo", t0);
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 41000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                  a=rtpmap:101 telephone-event/8000\r\n";
    c.handle_sip(
        t0,
        SipEvent::Established {
            call: CallKey("c1@test".into()),
            ack_sdp: Some(answer.into()),
        },
    );
    let mut now = t0;
    let mut data = Vec::new();
    let to = loop {
        if let Some(to) = c.poll_transmit(&mut data) {
            break to;
        }
        now = c.poll_timeout().unwrap().max(now);
        c.handle_timeout(now);
    };
    assert_eq!(to, "127.0.0.1:41000".parse().unwrap());
    assert_eq!(data[1] & 0x7f, 8, "PCMA, as the answer chose");
}

#[test]
fn max_duration_ends_the_call_with_bye() {
    let t0 = Instant::now();
    let mut h = Harness::new("echo");
    h.call.deadline_max = t0 + Duration::from_secs(3);
    let at = h.run_until("BYE", |o| {
        matches!(o, Output::Sip(SipCommand::Hangup { .. }))
    });
    // The BYE says why (RFC 3326), so the far end's trace does not read as a
    // flow that ended early.
    let reasons: Vec<_> = h
        .seen
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Sip(SipCommand::Hangup { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [Some(crate::sip::ByeReason::MAX_DURATION)]);
    assert!(at <= Duration::from_secs(3), "{at:?}");
    h.sip(SipEvent::Terminated {
        call: CallKey("c1@test".into()),
        reason: EndReason::LocalBye,
    });
    assert!(matches!(
        h.seen.last().map(|(_, o)| o),
        Some(Output::Ended(CallOutcome::MaxDuration))
    ));
}

/// A flow without an escape key: a prompt whose keys are type-ahead for an
/// entry, a read-back, and a goodbye where no key can matter.
const TYPE_AHEAD_FLOW: &str = r##"
flow: typeahead
version: "1"
start: welcome
states:
  welcome:
    play: [echo_intro]
    next: get_id
  get_id:
    collect: { into: id, prompt: [enter_employee_id], max: 6, terminator: "#" }
    next: read_back
    on_fail: bye
  read_back:
    play: [you_entered, { digits: "{{ id }}" }]
    next: bye
  bye:
    hangup: { prompt: [goodbye] }
"##;

impl Harness {
    /// The caller's phone streams PCMU every 20 ms for `d`, with the DTMF tones
    /// of `keys` (100 ms each, 100 ms apart) at the start: no RFC 4733, no INFO.
    fn stream_tones(&mut self, keys: &str, d: Duration) {
        let gen = crate::media::goertzel::ToneGenerator::new();
        let mut pcm = Vec::new();
        for k in keys.chars() {
            pcm.extend(gen.digit(k, 100, -10.0).expect("a DTMF key"));
            pcm.extend([0i16; 800]);
        }
        let frames = (d.as_millis() / 20) as usize;
        pcm.resize(pcm.len().max(frames * 160), 0);
        let mut packet = Vec::new();
        for (n, frame) in pcm.chunks(160).take(frames).enumerate() {
            let header = crate::media::rtp::RtpHeader {
                payload_type: 0,
                marker: n == 0,
                sequence: n as u16,
                timestamp: n as u32 * 160,
                ssrc: 0x5eed,
            };
            packet.clear();
            let payload = crate::media::g711::encode(Codec::Pcmu, frame);
            crate::media::rtp::append(&header, &payload, &mut packet).expect("rtp");
            let from = "127.0.0.1:40000".parse().unwrap();
            self.call.handle_rtp(self.now, from, &packet);
            self.drain();
            self.run_for(Duration::from_millis(20));
        }
    }

    fn entered(&self, state: &str) -> bool {
        self.seen.iter().any(|(_, o)| {
            matches!(o, Output::Timeline(TimelineEvent::StateEntered { state: s, .. }) if s == state)
        })
    }
}

#[test]
fn in_band_keys_typed_ahead_during_a_prompt_are_heard_and_skipped_only_where_none_can_matter() {
    let flow =
        crate::flow::model::parse(TYPE_AHEAD_FLOW, std::path::Path::new("t.yaml")).expect("flow");
    let t0 = Instant::now();
    let mut h = Harness::start(call_with(flow, t0), t0);
    // Tones typed during the welcome prompt (a `play`): type-ahead for the entry.
    h.run_for(Duration::from_millis(500));
    h.stream_tones("42#", Duration::from_secs(1));
    assert_eq!(h.call.media_stats().digits_inband, 3, "{:#?}", h.seen);
    h.run_until("the entry", |o| {
        matches!(o, Output::Timeline(TimelineEvent::DigitsCollected { shown, .. }) if shown == "42")
    });
    // The kept keys answered the entry: its prompt never played.
    assert!(!h.seen.iter().any(|(_, o)| matches!(o,
        Output::Timeline(TimelineEvent::PromptPlayed { prompts }) if prompts.iter().any(|p| p == "enter_employee_id"))));
    // Keys during the read-back and the goodbye go nowhere: not decoded at all.
    assert!(h.entered("read_back"));
    h.stream_tones("77", Duration::from_millis(600));
    h.run_until("the goodbye", |o| {
        matches!(o, Output::Timeline(TimelineEvent::StateEntered { state, .. }) if state == "bye")
    });
    h.stream_tones("9", Duration::from_millis(400));
    assert_eq!(h.call.media_stats().digits_inband, 3);
    h.run_until("BYE", |o| {
        matches!(o, Output::Sip(SipCommand::Hangup { .. }))
    });
}

/// The caller holds the call (a new offer with `sendonly`) and takes it back
/// a minute later, at either moment of a collect: while its prompt plays, or
/// while the flow waits for keys. The flow loses no time to the hold: no
/// `no_input` reprompt, no hangup while held, and the first-key timer has
/// the time it had left when the call was held.
#[test]
fn a_held_call_keeps_its_place_in_the_flow() {
    let no_input = |o: &Output| matches!(o, Output::Timeline(TimelineEvent::NoInput { .. }));
    // Not held: the intro plays, then 5 s without a key.
    let mut h = Harness::new("echo");
    let first = h.run_until("no_input", no_input);

    // Held 2 s before that, for 60 s.
    let mut h = Harness::new("echo");
    h.run_for(first - Duration::from_secs(2));
    h.hold(true);
    h.run_for(Duration::from_secs(60));
    assert!(!h.seen.iter().any(|(_, o)| no_input(o)), "{:#?}", h.seen);
    assert!(!h.hung_up());
    h.hold(false);
    let at = h.run_until("no_input", no_input);
    assert_eq!(
        at,
        first + Duration::from_secs(60),
        "2 s left after the hold"
    );

    // Held during the intro for 60 s: taken back, the intro goes on, and the
    // caller's keys are read back.
    let mut h = Harness::new("echo");
    h.run_for(Duration::from_millis(500));
    h.hold(true);
    let packets = h.rtp_packets;
    h.run_for(Duration::from_secs(60));
    assert_eq!(h.rtp_packets, packets, "nothing sent on hold");
    assert!(!h.seen.iter().any(|(_, o)| no_input(o)));
    h.hold(false);
    h.run_for(first - Duration::from_millis(600));
    h.press("42#");
    h.run_until("BYE after the readback", |o| {
        matches!(o, Output::Sip(SipCommand::Hangup { reason: None, .. }))
    });
    let played = h.prompts_played();
    assert!(!h.seen.iter().any(|(_, o)| no_input(o)), "{played:?}");
    assert!(
        played.iter().any(|p| p.contains("you_entered")),
        "{played:?}"
    );
}

/// A key the caller sends while the call is held (SIP INFO reaches the
/// server whatever the media does) arms the between-keys timer; that timer
/// gets all of its 3 s from the moment the call is taken back, not from the
/// key, and not 3 s plus the part of the hold before the key.
#[test]
fn a_timer_armed_during_a_hold_runs_from_the_taking_back() {
    let collected =
        |o: &Output| matches!(o, Output::Timeline(TimelineEvent::DigitsCollected { .. }));
    let mut h = Harness::new("echo");
    // The intro has played: the flow waits for a first key.
    h.run_for(Duration::from_secs(6));
    h.hold(true);
    h.run_for(Duration::from_secs(10));
    h.sip(SipEvent::Dtmf {
        call: CallKey("c1@test".into()),
        digit: '4',
        duration_ms: Some(100),
    });
    h.run_for(Duration::from_secs(50));
    assert!(
        !h.seen.iter().any(|(_, o)| collected(o)),
        "collected while held"
    );
    h.hold(false);
    let back = h.now - h.t0;
    let at = h.run_until("the entry to end", collected);
    assert_eq!(
        at - back,
        Duration::from_secs(3),
        "3 s after the taking back"
    );
}

/// An SRTP call whose caller re-keys in a new offer (RFC 4568 §7.1.4): its
/// packets under the new key are heard from then on, the old key's refused.
#[test]
fn an_srtp_caller_that_changes_its_key_in_a_new_offer_is_still_heard() {
    use crate::media::srtp::{CryptoAttr, MasterKey, SrtpKeys, SrtpTransform, Suite};
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (ours, first, second) = (
        MasterKey::generate(&mut rng),
        MasterKey::generate(&mut rng),
        MasterKey::generate(&mut rng),
    );
    let suite = Suite::AesCm128HmacSha1_80;
    let t0 = Instant::now();
    let mut c = call("echo", t0);
    c.srtp = Some(SrtpTransform::new(&SrtpKeys {
        suite,
        local: ours.clone(),
        remote: first.clone(),
    }));
    let mut h = Harness::start(c, t0);
    let caller = |key: &MasterKey| {
        SrtpTransform::new(&SrtpKeys {
            suite,
            local: key.clone(),
            remote: ours.clone(),
        })
    };
    let (mut before, mut after) = (caller(&first), caller(&second));
    let from: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let send = |h: &mut Harness, phone: &mut SrtpTransform, seq: u16| {
        let mut p = Vec::new();
        let header = crate::media::rtp::RtpHeader {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0x5eed,
        };
        crate::media::rtp::append(&header, &[0xFF; 160], &mut p).unwrap();
        phone.protect(&mut p).unwrap();
        h.call.handle_rtp(h.now, from, &p);
        h.run_for(Duration::from_millis(20));
    };
    for seq in 1..=5 {
        send(&mut h, &mut before, seq);
    }
    let stats = h.call.media_stats();
    assert_eq!((stats.packets_received, stats.malformed), (5, 0));
    h.sip(SipEvent::MediaUpdate {
        call: CallKey("c1@test".into()),
        remote: from,
        peer_receives: true,
        srtp: Some(CryptoAttr {
            tag: 1,
            suite,
            key: second,
        }),
    });
    for seq in 6..=10 {
        send(&mut h, &mut after, seq);
    }
    send(&mut h, &mut before, 11);
    let stats = h.call.media_stats();
    assert_eq!(
        (stats.packets_received, stats.malformed),
        (10, 1),
        "the new key's five heard, the old key's one refused"
    );
}
