//! The tokio task that drives one [`Call`]: its RTP socket, its timers, the
//! HTTP actions it starts, its audit records and its recording.
//!
//! The loop is the one every sans-IO machine here wants: drain all outputs,
//! then wait for exactly one input (an RTP packet, a SIP event, an action
//! result, or the machine's own deadline), feed it, repeat.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tracing::{debug, info, warn, Instrument};

use crate::call::{Call, CallOutcome, Output};
use crate::ops::metrics::{OtpSendResult, OtpVerifyResult, RtpCounts, RtpRejectReason};
use crate::runtime::channels::{CallInput, SipIn};
use crate::runtime::labels;
use crate::runtime::ports::RtpPort;
use crate::runtime::recorder::Recorder;
use crate::runtime::shared::Shared;
use crate::sip::CallKey;
use crate::vars::Vars;

pub struct CallTask {
    pub call: Call,
    pub rtp: RtpPort,
    pub rx: mpsc::UnboundedReceiver<CallInput>,
    pub tx: mpsc::UnboundedSender<CallInput>,
    pub sip: mpsc::UnboundedSender<SipIn>,
    pub shared: Arc<Shared>,
    pub recorder: Option<Recorder>,
    pub ani: String,
    /// The key of this call's per-caller attempt limit: the ANI, or one of its
    /// own for a withheld number (`security.withheld_callers`).
    pub limit_key: String,
    pub flow_name: String,
    pub flow_version: String,
}

/// How often a live call adds its RTP counters to the metrics (and once more at its end).
const RTP_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl CallTask {
    /// Run the call to its end. The caller instruments this future with the
    /// call's span ([`crate::ops::logging::call_span`]).
    pub async fn run(mut self) -> CallOutcome {
        let mut buf = vec![0u8; 2048];
        let key: CallKey = self.call.key().clone();
        let mut rejected = (0, 0);
        let mut rtp_reported = RtpCounts::default();
        let mut next_rtp_report = TokioInstant::now() + RTP_REPORT_EVERY;
        let outcome = loop {
            if TokioInstant::now() >= next_rtp_report {
                self.report_rtp(&mut rtp_reported);
                next_rtp_report = TokioInstant::now() + RTP_REPORT_EVERY;
            }
            if let Some(outcome) = self.drain_outputs().await {
                break outcome;
            }
            let deadline = self
                .call
                .poll_timeout()
                .map(TokioInstant::from_std)
                .unwrap_or_else(|| TokioInstant::now() + std::time::Duration::from_secs(3600));
            tokio::select! {
                r = self.rtp.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.call.handle_rtp(now(), from, &buf[..n]);
                        self.report_rejected(&mut rejected);
                    }
                    Err(e) => debug!(error = %e, "rtp receive error"),
                },
                input = self.rx.recv() => match input {
                    Some(CallInput::Sip(ev)) => self.call.handle_sip(now(), ev),
                    Some(CallInput::ActionDone { id, outcome, outputs }) => {
                        self.call.handle_action_result(now(), id, &outcome, outputs)
                    }
                    Some(CallInput::Terminate(outcome)) => self.call.terminate(now(), outcome),
                    None => self.call.terminate(now(), CallOutcome::Shutdown),
                },
                _ = sleep_until(deadline) => self.call.handle_timeout(now()),
            }
        };
        self.report_rtp(&mut rtp_reported);
        if let Some(rec) = self.recorder.take() {
            rec.finish();
        }
        let _ = self.sip.send(SipIn::CallGone(key));
        info!(outcome = outcome.as_str(), "call ended");
        outcome
    }

    /// Carry out every pending output; `Some` when the call has ended.
    async fn drain_outputs(&mut self) -> Option<CallOutcome> {
        while let Some(out) = self.call.poll_output() {
            match out {
                Output::Rtp { to, data } => {
                    if let Err(e) = self.rtp.socket.send_to(&data, to).await {
                        debug!(error = %e, "rtp send error");
                    }
                }
                Output::Sip(cmd) => {
                    let _ = self.sip.send(SipIn::Command(cmd));
                }
                Output::RunAction { id, action, vars } => self.start_action(id, action, vars),
                Output::Audit { result, reason } => {
                    self.shared.audit(
                        &result,
                        &reason,
                        &self.ani,
                        &self.call.key().0,
                        &self.flow_name,
                        &self.flow_version,
                    );
                }
                Output::Record {
                    caller,
                    ivr,
                    suppressed,
                } => {
                    if let Some(rec) = &mut self.recorder {
                        rec.frame(caller, ivr, suppressed);
                    }
                }
                Output::Timeline(ev) => {
                    debug!(event = ?ev, "timeline");
                    if let Some(rec) = &mut self.recorder {
                        rec.timeline(&ev);
                    }
                }
                Output::DigitHeard(source) => self.shared.metrics.dtmf_digit(source),
                Output::Ended(outcome) => return Some(outcome),
            }
        }
        None
    }

    /// Datagrams the media trust dropped, to the metrics as they happen: an attack
    /// on a call's port shows while it lasts.
    /// Adds what the RTP counters gained since the last report.
    fn report_rtp(&self, reported: &mut RtpCounts) {
        let now = labels::rtp_counts(&self.call.media_stats());
        if now != *reported {
            self.shared.metrics.rtp_observed(now.since(reported));
            // Loss can go down (a late packet); what was reported stays reported.
            let lost = reported.lost.max(now.lost);
            *reported = RtpCounts { lost, ..now };
        }
    }

    fn report_rejected(&self, reported: &mut (u64, u64)) {
        let now = self.call.rtp_rejected();
        if now != *reported {
            let m = &self.shared.metrics;
            m.rtp_rejected(RtpRejectReason::UntrustedSource, now.0 - reported.0);
            m.rtp_rejected(RtpRejectReason::NotLatched, now.1 - reported.1);
            *reported = now;
        }
    }

    fn start_action(&self, id: u64, action: String, vars: Vars) {
        if !self.shared.admit_attempt(&action, &self.limit_key, &vars) {
            let _ = self.tx.send(CallInput::ActionDone {
                id,
                outcome: "rate_limited".into(),
                outputs: Vars::new(),
            });
            return;
        }
        let executor = self.shared.executor();
        let (otp_actions, guarded) = {
            let loaded = self.shared.loaded();
            let sec = &loaded.config.security;
            (
                (sec.otp_send_action.clone(), sec.otp_verify_action.clone()),
                sec.reset_action.as_deref() == Some(action.as_str()),
            )
        };
        let tx = self.tx.clone();
        let metrics = self.shared.metrics.clone();
        let span = tracing::Span::current();
        // Fail closed: the reset request goes out only after its write-ahead
        // audit record is on disk.
        let write_ahead = guarded.then(|| {
            let facts = crate::audit::CallFacts {
                ani: &self.ani,
                call_id: &self.call.key().0,
                flow: &self.flow_name,
                flow_version: &self.flow_version,
            };
            let trail = self.shared.audit_trail.clone();
            (trail.started(&facts, &action), trail)
        });
        tokio::spawn(
            async move {
                if let Some((record, trail)) = write_ahead {
                    if !trail.write_ahead(record).await {
                        let _ = tx.send(CallInput::ActionDone {
                            id,
                            outcome: crate::audit::AUDIT_UNAVAILABLE.into(),
                            outputs: Vars::new(),
                        });
                        return;
                    }
                }
                let result = executor.run(&action, &vars).await;
                metrics.action_observed(&action, &result.outcome, result.latency);
                if action == otp_actions.0 {
                    metrics.otp_sent(OtpSendResult::from_outcome(&result.outcome));
                } else if action == otp_actions.1 {
                    metrics.otp_verified(OtpVerifyResult::from_outcome(&result.outcome));
                }
                if result.outcome == "error" || result.outcome == "timeout" {
                    warn!(action = %action, outcome = %result.outcome, "data action failed");
                }
                let _ = tx.send(CallInput::ActionDone {
                    id,
                    outcome: result.outcome,
                    outputs: result.outputs,
                });
            }
            .instrument(span),
        );
    }
}
