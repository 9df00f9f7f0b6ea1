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
//! SRTP: on a call with SDES keys ([`CallParams::srtp`]) every datagram is
//! unprotected here, after the media-trust check and before the media session
//! sees it, and every packet the session writes is protected in the driver's
//! buffer before it leaves: the one point where RTP enters and leaves the call,
//! so DTMF, recording and the trust rules see clear RTP either way.
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
use crate::media::srtp::{SrtpKeys, SrtpTransform};
use crate::media::{DigitSource, MediaConfig, MediaEvent, MediaStats, PacingGrid, PlayItem};
use crate::sip::{
    ByeReason, CallKey, Command as SipCommand, EndReason, Event as SipEvent, ReferStatus,
};
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
    /// Late offer: the caller's ACK had no answer the call could use, so the
    /// endpoint ended it with BYE before the flow started.
    MediaRefused,
    /// The session timer ran out (RFC 4028): the caller stopped refreshing
    /// the dialog, or our refresh failed; the endpoint sent BYE.
    SessionExpired,
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
            CallOutcome::MediaRefused => "media_refused",
            CallOutcome::SessionExpired => "session_expired",
        }
    }

    /// The `Reason` our BYE carries when this outcome is why we hang up: none
    /// when the flow ended the call as written.
    pub fn bye_reason(self) -> Option<ByeReason> {
        match self {
            CallOutcome::RtpTimeout => Some(ByeReason::RTP_TIMEOUT),
            CallOutcome::SessionExpired => Some(ByeReason::SESSION_EXPIRED),
            CallOutcome::MaxDuration => Some(ByeReason::MAX_DURATION),
            CallOutcome::Shutdown => Some(ByeReason::SHUTDOWN),
            CallOutcome::AckTimeout => Some(ByeReason::ACK_TIMEOUT),
            CallOutcome::Completed
            | CallOutcome::Transferred
            | CallOutcome::CallerHangup
            | CallOutcome::MediaRefused => None,
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
    /// SDES-SRTP keys, on a call that came over TLS and negotiated SRTP. Such a
    /// call's media counts as encrypted (`secure_media: required` states run).
    pub srtp: Option<SrtpKeys>,
    /// The packet-time grid the runtime lines its calls up on (`None`: the
    /// first packet is due at once).
    pub pacing: Option<PacingGrid>,
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
    /// Recorded audio for the recorder ([`crate::media::recording::RecordBlock`]).
    Record(crate::media::recording::RecordBlock),
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
    /// The caller's BYE `Reason` (RFC 3326), if it hung up with one.
    caller_reason: Option<String>,
    srtp: Option<SrtpTransform>,
    /// A received datagram, unprotected (reused).
    srtp_clear: Vec<u8>,
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
        let encrypted = p.srtp.is_some();
        vars.set_plain("media_encrypted", encrypted.to_string());
        let start = p.pacing.map_or(now, |g| g.align(now));
        let mut media = MediaSession::new(start, p.media, p.prompts, p.ssrc, p.seq, p.timestamp);
        if let Some(grid) = p.pacing {
            media.lock_phase(grid.step);
        }
        let flow = Interpreter::with_media(now, p.flow, vars, encrypted);
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
            caller_reason: None,
            srtp: p.srtp.as_ref().map(SrtpTransform::new),
            srtp_clear: Vec::new(),
        }
    }

    pub fn key(&self) -> &CallKey {
        &self.key
    }

    pub fn is_secure(&self) -> bool {
        self.flow.is_secure()
    }

    /// The call's packet time: its caller's packets come this far apart.
    pub fn ptime(&self) -> Duration {
        self.media.ptime()
    }

    /// The media counters; SRTP packets that failed authentication or replayed
    /// count as malformed.
    pub fn media_stats(&self) -> MediaStats {
        let mut stats = self.media.stats();
        if let Some(srtp) = &self.srtp {
            let s = srtp.stats();
            stats.malformed += s.rejected + s.ssrc_overflow;
        }
        stats
    }

    /// The caller's RTP address while it both sends from and is sent to it,
    /// steadily ([`MediaSession::peer`](crate::media::MediaSession::peer)):
    /// what the driver may `connect` the call's socket to. `None` once the call
    /// has ended.
    pub fn rtp_peer(&self, now: Instant) -> Option<SocketAddr> {
        if self.phase == Phase::Ended {
            return None;
        }
        self.media.peer(now)
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
        match &mut self.srtp {
            None => self.media.handle_rtp(now, source, data),
            Some(srtp) => {
                if self.media.admit_source(now, source)
                    && srtp.unprotect(data, &mut self.srtp_clear).is_ok()
                {
                    self.media.handle_admitted(now, source, &self.srtp_clear);
                }
            }
        }
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
                    self.flow_hold(now);
                }
            }
            SipEvent::MediaUpdate {
                remote,
                peer_receives,
                srtp,
                ..
            } => {
                if let (Some(transform), Some(attr)) = (&mut self.srtp, srtp) {
                    if transform.rekey_remote(&attr.key) {
                        // Its packets under the old key fail from now on.
                        tracing::debug!("srtp: the caller's key changed (new offer)");
                    }
                }
                self.media.update_remote(now, remote, peer_receives);
                self.flow_hold(now);
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
                if let EndReason::RemoteBye { reason } = &reason {
                    self.caller_reason.clone_from(reason);
                }
                let outcome = match (self.phase, reason) {
                    (Phase::Ending(o), _) => o,
                    (_, EndReason::AckTimeout) => CallOutcome::AckTimeout,
                    (_, EndReason::LocalBye) => CallOutcome::Completed,
                    (_, EndReason::MediaRefused) => CallOutcome::MediaRefused,
                    (_, EndReason::SessionExpired) => CallOutcome::SessionExpired,
                    _ => CallOutcome::CallerHangup,
                };
                match (self.phase, outcome) {
                    (Phase::Ending(_), _) => {}
                    // The endpoint ended a dialog whose refreshes stopped:
                    // the server's doing, audited as such.
                    (_, CallOutcome::SessionExpired) => {
                        self.flow.handle_abort(now, outcome.as_str());
                    }
                    _ => self.flow.handle_hangup(now),
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

    /// The `Reason` of the caller's BYE (RFC 3326; control characters shown
    /// as `?`), if it hung up and gave one: a trunk's words for why the call
    /// ended on its side (`Q.850 ;cause=16`, or a media timeout that says it
    /// heard nothing from us).
    pub fn caller_reason(&self) -> Option<&str> {
        self.caller_reason.as_deref()
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
    /// ended or only lingers for a secure action's result. On an SRTP call the
    /// packet is protected; one that cannot be is never sent in clear.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if matches!(self.phase, Phase::Ended | Phase::Lingering(_)) {
            return None;
        }
        loop {
            let to = self.media.poll_transmit(buf)?;
            match &mut self.srtp {
                None => return Some(to),
                Some(srtp) => {
                    if srtp.protect(buf).is_ok() {
                        return Some(to);
                    }
                    buf.clear();
                }
            }
        }
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

    /// Hold the flow's timers while the caller holds the call, and let them
    /// run on when it takes it back ([`Interpreter::pause`]).
    fn flow_hold(&mut self, now: Instant) {
        if self.media.is_held() {
            self.flow.pause(now);
        } else {
            self.flow.resume(now);
        }
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
            reason: outcome.bye_reason(),
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
            if let MediaEvent::Record(block) = ev {
                self.outputs.push_back(Output::Record(block));
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
        // In-band detection only where a key can matter (settled per state).
        let keys = matches!(self.phase, Phase::Answered | Phase::Running) && self.flow.reads_keys();
        self.media.set_keys_matter(keys);
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
            MediaEvent::Record(block) => self.outputs.push_back(Output::Record(block)),
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
            // The endpoint ends a call whose answer it cannot use
            // (`sdp::accept_late_answer`) before this point; should one get
            // here, symmetric RTP still latches to the caller's packets.
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
mod tests;
