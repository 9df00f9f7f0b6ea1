//! One call, sans-IO: the media session and the flow interpreter, glued
//! together and to the SIP dialog through commands.
//!
//! The SIP dialog itself lives in the shared `sip::Endpoint` (one per
//! process, so that retransmissions and stray requests are matched in one
//! place); a call sees the dialog as `sip::Event`s in and `sip::Command`s
//! out. Everything else a call does — play, listen, run an action, audit,
//! record, transfer, hang up — is decided here and carried out by the call
//! task in `runtime`. Like the machines it composes, `Call` never reads a
//! clock, touches a socket or a file.
//!
//! Secrets: digits are handed from media to the flow without being
//! formatted anywhere in this module; the only digit facts that leave it
//! are the flow's own timeline events (masked inside secure segments).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::interp::Interpreter;
use crate::flow::model::Flow;
use crate::flow::{digit_prompt, Command as FlowCommand, Say, TimelineEvent};
use crate::media::prompts::PromptCache;
use crate::media::session::MediaSession;
use crate::media::{DigitSource, MediaConfig, MediaEvent, MediaStats, PlayItem};
use crate::sip::{CallKey, Command as SipCommand, EndReason, Event as SipEvent, ReferStatus};
use crate::vars::Vars;

/// How a call ended, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The flow hung up after finishing.
    Completed,
    /// Transferred by REFER.
    Transferred,
    /// The caller hung up (BYE or CANCEL).
    CallerHangup,
    /// No ACK for our 200 (Timer H).
    AckTimeout,
    /// No RTP from the caller for the inactivity timeout.
    RtpTimeout,
    /// The call reached the configured maximum duration.
    MaxDuration,
    /// The server is shutting down and the drain limit passed.
    Shutdown,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::Transferred => "transferred",
            CallOutcome::CallerHangup => "caller_hangup",
            CallOutcome::AckTimeout => "ack_timeout",
            CallOutcome::RtpTimeout => "rtp_timeout",
            CallOutcome::MaxDuration => "max_duration",
            CallOutcome::Shutdown => "shutdown",
        }
    }
}

/// Everything a new call needs.
pub struct CallParams {
    pub key: CallKey,
    pub ani: String,
    pub dnis: String,
    pub flow_name: String,
    pub flow: Arc<Flow>,
    pub media: MediaConfig,
    pub prompts: Arc<PromptCache>,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub max_duration: Duration,
    /// Transfer target name → SIP URI.
    pub transfer_targets: BTreeMap<String, String>,
    pub reason_header: String,
    /// Variables every call starts with (config `variables`).
    pub variables: BTreeMap<String, String>,
}

/// What the call asks its driver to do. RTP packets are not among them: the
/// driver drains them with [`Call::poll_transmit`] into a buffer it reuses.
#[derive(Debug)]
pub enum Output {
    Sip(SipCommand),
    RunAction {
        id: u64,
        action: String,
        vars: Vars,
    },
    /// An audit record's call-specific fields; the driver stamps the time.
    Audit {
        result: String,
        reason: String,
    },
    Record {
        caller: Vec<i16>,
        ivr: Vec<i16>,
        suppressed: bool,
    },
    Timeline(TimelineEvent),
    /// A digit was heard (the value is deliberately absent).
    DigitHeard(DigitSource),
    /// The call is over; the driver drops it.
    Ended(CallOutcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// 200 OK sent, waiting for ACK; media flowing (silence).
    Answered,
    /// ACK received: the flow runs.
    Running,
    /// We sent BYE (or are waiting for the transfer to settle).
    Ending(CallOutcome),
    /// The dialog is over, but a secure action (the PIN reset) was already
    /// sent: wait for its result so the audit says what really happened.
    Lingering(CallOutcome),
    Ended,
}

/// Wait this long for our BYE to be answered before dropping the call.
const BYE_GUARD: Duration = Duration::from_secs(32);

/// After the dialog ends, wait this long for a secure action already in
/// flight (longer than an action's timeout and retries).
const LINGER: Duration = Duration::from_secs(15);

/// After a 202 to our REFER, wait this long for the NOTIFY with the final
/// result; a peer that never sends one has taken the call (RFC 3515 leaves
/// the transferor free to hang up).
const REFER_NOTIFY_WAIT: Duration = Duration::from_secs(5);

pub struct Call {
    key: CallKey,
    media: MediaSession,
    flow: Interpreter,
    phase: Phase,
    outputs: VecDeque<Output>,
    deadline_max: Instant,
    deadline_bye: Option<Instant>,
    transfer_targets: BTreeMap<String, String>,
    reason_header: String,
    transferring: bool,
    /// Secure actions sent and not yet answered (id → action name).
    secure_in_flight: BTreeMap<u64, String>,
    linger_until: Option<Instant>,
    /// After 202 to our REFER: settle as transferred if no final NOTIFY
    /// arrives by then.
    refer_deadline: Option<Instant>,
    ended_reported: bool,
}

impl Call {
    pub fn new(now: Instant, p: CallParams) -> Call {
        let mut vars = Vars::new();
        for (k, v) in &p.variables {
            vars.set_plain(k.clone(), v.clone());
        }
        vars.set_plain("ani", p.ani.clone());
        vars.set_plain("dnis", p.dnis.clone());
        vars.set_plain("call_id", p.key.0.clone());
        vars.set_plain("flow_name", p.flow_name.clone());
        let media = MediaSession::new(now, p.media, p.prompts, p.ssrc, p.seq, p.timestamp);
        let flow = Interpreter::new(now, p.flow, vars);
        Call {
            key: p.key,
            media,
            flow,
            phase: Phase::Answered,
            outputs: VecDeque::new(),
            deadline_max: now + p.max_duration,
            deadline_bye: None,
            transfer_targets: p.transfer_targets,
            reason_header: p.reason_header,
            transferring: false,
            secure_in_flight: BTreeMap::new(),
            linger_until: None,
            refer_deadline: None,
            ended_reported: false,
        }
    }

    pub fn key(&self) -> &CallKey {
        &self.key
    }

    pub fn is_secure(&self) -> bool {
        self.flow.is_secure()
    }

    pub fn media_stats(&self) -> MediaStats {
        self.media.stats()
    }

    /// RTP datagrams dropped unparsed so far: (untrusted IP, not the latched source).
    pub fn rtp_rejected(&self) -> (u64, u64) {
        self.media.rejected()
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    pub fn handle_rtp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        if matches!(self.phase, Phase::Ended | Phase::Lingering(_)) {
            return;
        }
        self.media.handle_rtp(now, source, data);
        self.pump(now);
    }

    pub fn handle_sip(&mut self, now: Instant, event: SipEvent) {
        if matches!(self.phase, Phase::Ended | Phase::Lingering(_)) {
            return;
        }
        match event {
            SipEvent::Established { ack_sdp, .. } => {
                if let Some(answer) = ack_sdp {
                    self.apply_late_answer(&answer);
                }
                self.media.start_sending();
                if self.phase == Phase::Answered {
                    self.phase = Phase::Running;
                    // The flow's clock starts when the caller can hear us.
                    self.flow.handle_timeout(now);
                }
            }
            SipEvent::Dtmf {
                digit, duration_ms, ..
            } => {
                let duration = duration_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                self.media.handle_info_digit(now, digit, duration);
            }
            SipEvent::ReferStatus { status, .. } => {
                match status {
                    // 202: the peer took the REFER. Wait for the NOTIFY that
                    // says how the transfer went (RFC 3515 §2.4.5): a failed
                    // transfer leaves the caller with us, on the fallback path.
                    ReferStatus::Accepted => {
                        if self.transferring && self.refer_deadline.is_none() {
                            self.refer_deadline = Some(now + REFER_NOTIFY_WAIT);
                        }
                    }
                    ReferStatus::Notify(code) if code < 200 => {}
                    ReferStatus::Notify(code) => {
                        self.settle_transfer(now, (200..300).contains(&code))
                    }
                    ReferStatus::Rejected(_) => self.settle_transfer(now, false),
                }
            }
            SipEvent::Terminated { reason, .. } => {
                let outcome = match (self.phase, reason) {
                    (Phase::Ending(o), _) => o,
                    (_, EndReason::AckTimeout) => CallOutcome::AckTimeout,
                    (_, EndReason::LocalBye) => CallOutcome::Completed,
                    _ => CallOutcome::CallerHangup,
                };
                if !matches!(self.phase, Phase::Ending(_)) {
                    self.flow.handle_hangup(now);
                }
                self.drain_flow(now);
                self.finish(now, outcome);
            }
            SipEvent::IncomingCall(_) => {}
        }
        self.pump(now);
    }

    pub fn handle_action_result(&mut self, now: Instant, id: u64, outcome: &str, outputs: Vars) {
        let action = self.secure_in_flight.remove(&id);
        if let Phase::Lingering(ended) = self.phase {
            if let Some(action) = action {
                let result = if outcome == "success" {
                    "success"
                } else {
                    "failure"
                };
                self.outputs.push_back(Output::Audit {
                    result: result.into(),
                    reason: format!("{action}_{outcome}_after_hangup"),
                });
            }
            if self.secure_in_flight.is_empty() {
                self.finish(now, ended);
            }
            return;
        }
        if self.phase == Phase::Ended {
            return;
        }
        self.flow.handle_action_result(now, id, outcome, outputs);
        self.pump(now);
    }

    /// End the call from outside (shutdown after the drain limit).
    pub fn terminate(&mut self, now: Instant, outcome: CallOutcome) {
        self.force_end(now, outcome);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        if let Phase::Lingering(ended) = self.phase {
            if self.linger_until.is_some_and(|t| now >= t) {
                for action in std::mem::take(&mut self.secure_in_flight).into_values() {
                    self.outputs.push_back(Output::Audit {
                        result: "unknown".into(),
                        reason: format!("{action}_no_result_after_hangup"),
                    });
                }
                self.finish(now, ended);
            }
            return;
        }
        if now >= self.deadline_max && !matches!(self.phase, Phase::Ending(_)) {
            self.force_end(now, CallOutcome::MaxDuration);
        }
        if self.refer_deadline.is_some_and(|t| now >= t) {
            self.settle_transfer(now, true);
        }
        if let Some(t) = self.deadline_bye {
            if now >= t {
                let outcome = match self.phase {
                    Phase::Ending(o) => o,
                    _ => CallOutcome::Completed,
                };
                self.finish(now, outcome);
                return;
            }
        }
        self.media.handle_timeout(now);
        if self.phase == Phase::Running {
            self.flow.handle_timeout(now);
        }
        self.pump(now);
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next RTP packet for the caller, written into `buf` (its old content
    /// is replaced); its destination is returned. Nothing once the call has
    /// ended or only lingers for a secure action's result.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if matches!(self.phase, Phase::Ended | Phase::Lingering(_)) {
            return None;
        }
        self.media.poll_transmit(buf)
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ended => return None,
            Phase::Lingering(_) => return self.linger_until,
            _ => {}
        }
        // Once the BYE is on its way the call limit has done its job; keeping
        // it would return a deadline in the past forever.
        let limit = self.deadline_bye.is_none().then_some(self.deadline_max);
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        consider(limit);
        consider(self.media.poll_timeout());
        if self.phase == Phase::Running {
            consider(self.flow.poll_timeout());
        }
        consider(self.deadline_bye);
        consider(self.refer_deadline);
        t
    }

    /// A limit hit or the server is stopping: let the flow audit (with the
    /// reason, not as a caller hangup), then BYE.
    fn force_end(&mut self, now: Instant, outcome: CallOutcome) {
        if self.phase == Phase::Ended || self.deadline_bye.is_some() {
            return;
        }
        self.flow.handle_abort(now, outcome.as_str());
        self.drain_flow(now);
        self.hangup(now, outcome);
    }

    fn hangup(&mut self, now: Instant, outcome: CallOutcome) {
        // Once: a BYE already on its way has set the guard deadline.
        if self.phase == Phase::Ended || self.deadline_bye.is_some() {
            return;
        }
        self.media.set_secure(false);
        self.phase = Phase::Ending(outcome);
        self.deadline_bye = Some(now + BYE_GUARD);
        self.outputs.push_back(Output::Sip(SipCommand::Hangup {
            call: self.key.clone(),
        }));
    }

    fn finish(&mut self, now: Instant, outcome: CallOutcome) {
        self.media.set_secure(false);
        self.flush_recording();
        if !self.secure_in_flight.is_empty() && self.linger_until.is_none() {
            self.phase = Phase::Lingering(outcome);
            self.linger_until = Some(now + LINGER);
            return;
        }
        self.phase = Phase::Ended;
        if !self.ended_reported {
            self.ended_reported = true;
            self.outputs.push_back(Output::Ended(outcome));
        }
    }

    /// The dialog is over: hand the recorder the frames the media layer
    /// still holds back (its look-back); nothing else goes out any more.
    fn flush_recording(&mut self) {
        self.media.flush_recording();
        while let Some(ev) = self.media.poll_event() {
            if let MediaEvent::Record {
                caller,
                ivr,
                suppressed,
            } = ev
            {
                self.outputs.push_back(Output::Record {
                    caller,
                    ivr,
                    suppressed,
                });
            }
        }
    }

    /// Move media and flow outputs into ours until both are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            if matches!(self.phase, Phase::Ended | Phase::Lingering(_)) {
                // Nothing more goes to the caller; the flow is over.
                break;
            }
            while let Some(ev) = self.media.poll_event() {
                progressed = true;
                self.on_media_event(now, ev);
            }
            if self.drain_flow(now) {
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::Digit { digit, source } => {
                self.outputs.push_back(Output::DigitHeard(source));
                if self.phase == Phase::Running {
                    self.flow.handle_digit(now, digit);
                }
            }
            MediaEvent::PlaybackFinished { id } => {
                self.flow.handle_play_finished(now, id);
            }
            MediaEvent::RtpTimeout => {
                self.force_end(now, CallOutcome::RtpTimeout);
            }
            MediaEvent::Record {
                caller,
                ivr,
                suppressed,
            } => {
                self.outputs.push_back(Output::Record {
                    caller,
                    ivr,
                    suppressed,
                });
            }
        }
    }

    /// Carry out the flow's commands; true if there were any.
    fn drain_flow(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(cmd) = self.flow.poll_command() {
            any = true;
            match cmd {
                FlowCommand::Play { id, items, .. } => {
                    self.media
                        .play(now, id, items.into_iter().map(media_item).collect())
                }
                FlowCommand::StopPlayback => self.media.stop_playback(now),
                FlowCommand::RunAction { id, action, vars } => {
                    if self.flow.is_secure() {
                        self.secure_in_flight.insert(id, action.clone());
                    }
                    self.outputs
                        .push_back(Output::RunAction { id, action, vars });
                }
                FlowCommand::Transfer { target, reason } => self.transfer(now, &target, &reason),
                FlowCommand::Hangup => {
                    let outcome = match self.phase {
                        Phase::Ending(o) => o,
                        _ => CallOutcome::Completed,
                    };
                    self.hangup(now, outcome);
                }
                FlowCommand::Audit { result, reason } => {
                    self.outputs.push_back(Output::Audit { result, reason });
                }
                FlowCommand::Secure(on) => self.media.set_secure(on),
                FlowCommand::KeyGuard(on) => self.media.set_key_guard(on),
                FlowCommand::Timeline(ev) => self.outputs.push_back(Output::Timeline(ev)),
            }
        }
        any
    }

    /// Late offer: we offered in the 200; the caller answered in the ACK.
    fn apply_late_answer(&mut self, answer: &str) {
        let negotiated = crate::sip::sdp::parse(answer).and_then(|offer| {
            crate::sip::sdp::negotiate(
                &offer,
                &[crate::codec::Codec::Pcmu, crate::codec::Codec::Pcma],
            )
        });
        match negotiated {
            Ok(n) => self
                .media
                .apply_answer(n.codec, n.audio_pt, n.telephone_event_pt, n.remote),
            // Keep what we have: symmetric RTP latches to the caller's packets.
            Err(e) => tracing::warn!(error = %e, "unusable SDP answer in ACK"),
        }
    }

    /// The transfer's final result reaches the flow once.
    fn settle_transfer(&mut self, now: Instant, accepted: bool) {
        if !self.transferring {
            return;
        }
        self.transferring = false;
        self.refer_deadline = None;
        if accepted {
            self.phase = Phase::Ending(CallOutcome::Transferred);
        }
        self.flow.handle_transfer_result(now, accepted);
    }

    fn transfer(&mut self, now: Instant, target: &str, reason: &str) {
        let Some(uri) = self.transfer_targets.get(target).cloned() else {
            // The validator checks targets against the config; a reload
            // that removed one leaves the flow's refusal path.
            self.flow.handle_transfer_result(now, false);
            return;
        };
        // The reason is a flow token; keep it to a header-safe charset so it
        // can never carry caller input.
        let reason: String = reason
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(64)
            .collect();
        self.transferring = true;
        self.media.set_secure(false);
        self.outputs.push_back(Output::Sip(SipCommand::Refer {
            call: self.key.clone(),
            target: uri,
            headers: vec![(self.reason_header.clone(), reason)],
        }));
    }
}

/// A flow's play item in the media layer's terms (a digit is its prompt).
fn media_item(item: Say) -> PlayItem {
    match item {
        Say::Prompt(p) => PlayItem::Prompt(p),
        Say::Digit(d) => PlayItem::Prompt(digit_prompt(d)),
        Say::Silence(d) => PlayItem::Silence(d),
    }
}

#[cfg(test)]
mod tests {
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
        let flow =
            crate::files::load_flow(&root().join(format!("flows/{flow}.yaml"))).expect("flow");
        Call::new(
            t0,
            CallParams {
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
                    record: false,
                    trust: crate::media::RtpTrust::from_sources(&[
                        crate::media::RtpSource::Sdp,
                        crate::media::RtpSource::Signalling,
                    ]),
                    signalling_ip: Some("127.0.0.1".parse().unwrap()),
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
            let mut h = Harness {
                call: call(flow, t0),
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
        let timeline: Vec<String> = h
            .seen
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Timeline(TimelineEvent::PromptPlayed { prompts }) => {
                    Some(prompts.join(","))
                }
                _ => None,
            })
            .collect();
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
            reason: EndReason::RemoteBye,
        });
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
            reason: EndReason::RemoteBye,
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
            reason: EndReason::RemoteBye,
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
}
