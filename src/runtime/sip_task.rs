//! The SIP task: owns the sans-IO [`Endpoint`] (every transaction and dialog of
//! the process) and the UDP socket, feeds it datagrams, TCP messages, call
//! commands and its own deadlines, sends what it asks to send, and routes its
//! events: a new INVITE goes to [`Admission`], everything else to the call task
//! that owns the Call-ID. It also drives the trunk registrations ([`Trunks`]) on the
//! same UDP socket: a response to one of their REGISTERs never reaches the endpoint.
//!
//! It decides nothing itself: admission and SDP are [`crate::admission`]'s, the
//! call is [`crate::call`]'s. What it does is IO: bind the RTP port, open the
//! recording, spawn the call task under a supervisor that survives its panic.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::admission::{check_peer, Admission, Load, Refusal};
use crate::call::{Call, CallOutcome, CallParams};
use crate::caller::{identify, limit_source};
use crate::ops::logging::{call_span, sanitize};
use crate::ops::metrics::{self, CallEnd, SipMethod};
use crate::runtime::call_task::CallTask;
use crate::runtime::channels::{CallInput, SipIn, TcpWriter};
use crate::runtime::labels;
use crate::runtime::recorder::Recorder;
use crate::runtime::registration::Trunks;
use crate::runtime::shared::Shared;
use crate::sip::{
    CallKey, Command as SipCommand, Endpoint, Event as SipEvent, IncomingCall, SipStats, Transport,
};

/// A live call as the SIP task sees it: where its inputs go, which source's
/// quota it holds, and the TCP connection it keeps open (if it came over TCP).
struct LiveCall {
    tx: mpsc::UnboundedSender<CallInput>,
    source: IpAddr,
    tcp: Option<TcpWriter>,
}

pub struct SipDriver {
    endpoint: Endpoint,
    udp: Arc<UdpSocket>,
    /// Open TCP and TLS connections by transport and peer: responses and
    /// in-dialog requests reuse the connection the dialog came in on.
    tcp: HashMap<(Transport, SocketAddr), TcpWriter>,
    calls: HashMap<CallKey, LiveCall>,
    admission: Admission,
    trunks: Trunks,
    shared: Arc<Shared>,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    tasks: tokio_util::task::TaskTracker,
    /// Endpoint counters already added to the metrics (they are cumulative).
    reported: SipStats,
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl SipDriver {
    pub fn new(
        endpoint: Endpoint,
        trunks: Trunks,
        udp: Arc<UdpSocket>,
        shared: Arc<Shared>,
        sip_tx: mpsc::UnboundedSender<SipIn>,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        SipDriver {
            endpoint,
            udp,
            tcp: HashMap::new(),
            calls: HashMap::new(),
            admission: Admission::new(),
            trunks,
            shared,
            sip_tx,
            tasks,
            reported: SipStats::default(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SipIn>, stop: CancellationToken) {
        let mut buf = vec![0u8; 65_535];
        self.trunks.start(now());
        loop {
            self.flush().await;
            let deadline = [self.endpoint.poll_timeout(), self.trunks.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map(TokioInstant::from_std)
                .unwrap_or_else(|| TokioInstant::now() + Duration::from_secs(3600));
            let udp = self.udp.clone();
            tokio::select! {
                _ = stop.cancelled() => return,
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        trace_sip("in", Transport::Udp, from, &buf[..n]);
                        if !self.trunks.handle_datagram(now(), &buf[..n]) && self.let_in(from) {
                            self.follow_drain();
                            self.endpoint.handle_datagram(now(), Transport::Udp, from, &buf[..n]);
                        }
                    }
                    Err(e) => debug!(error = %e, "SIP UDP receive error"),
                },
                msg = rx.recv() => match msg {
                    Some(m) => self.on_input(m),
                    None => return,
                },
                _ = sleep_until(deadline) => {
                    self.endpoint.handle_timeout(now());
                    self.trunks.handle_timeout(now());
                }
            }
        }
    }

    fn on_input(&mut self, m: SipIn) {
        match m {
            SipIn::Tcp {
                transport,
                peer,
                data,
                ..
            } => {
                trace_sip("in", transport, peer, &data);
                if self.let_in(peer) {
                    self.follow_drain();
                    self.endpoint.handle_datagram(now(), transport, peer, &data)
                }
            }
            SipIn::TcpOpened {
                transport,
                peer,
                writer,
            } => {
                self.tcp.insert((transport, peer), writer);
            }
            SipIn::TcpClosed {
                transport,
                peer,
                id,
            } => {
                if self.tcp.get(&(transport, peer)).is_some_and(|w| w.id == id) {
                    self.tcp.remove(&(transport, peer));
                }
            }
            SipIn::Command(cmd) => self.endpoint.handle_command(now(), cmd),
            SipIn::CallGone(key) => {
                if let Some(call) = self.calls.remove(&key) {
                    self.admission.release(call.source);
                    if let Some(w) = call.tcp {
                        w.call_ended();
                    }
                }
            }
            SipIn::TerminateAll => {
                for call in self.calls.values() {
                    let _ = call.tx.send(CallInput::Terminate(CallOutcome::Shutdown));
                }
            }
            SipIn::Unregister(done) => self.trunks.unregister(now(), done),
        }
    }

    /// Draining: a balancer's OPTIONS probe gets 503 (the endpoint answers it).
    fn follow_drain(&mut self) {
        self.endpoint
            .set_accepting_calls(!self.shared.drain.is_draining());
    }

    /// `sip.untrusted_requests: drop`: a message from a peer not in
    /// `sip.trusted_peers` never reaches the endpoint (no answer at all).
    fn let_in(&self, from: SocketAddr) -> bool {
        if self.shared.loaded().config.sip.serves(from.ip()) {
            return true;
        }
        self.shared
            .metrics
            .untrusted_requests(metrics::UntrustedAnswer::Silence, 1);
        debug!(from = %from, "SIP message from an untrusted peer dropped");
        false
    }

    /// Send what the endpoint wants sent; route its events.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.trunks.poll_transmit() {
                progressed = true;
                trace_sip("out", t.transport, t.destination, &t.payload);
                if let Err(e) = self.udp.send_to(&t.payload, t.destination).await {
                    debug!(error = %e, to = %t.destination, "SIP UDP send error (REGISTER)");
                }
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                trace_sip("out", t.transport, t.destination, &t.payload);
                match t.transport {
                    Transport::Udp => {
                        if let Err(e) = self.udp.send_to(&t.payload, t.destination).await {
                            debug!(error = %e, to = %t.destination, "SIP UDP send error");
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        match self.tcp.get(&(t.transport, t.destination)) {
                            Some(w) => {
                                if !w.send(t.payload) {
                                    debug!(to = %t.destination, "TCP write queue full; closing");
                                }
                            }
                            None => debug!(
                                to = %t.destination,
                                transport = t.transport.via_name(),
                                "no connection for message"
                            ),
                        }
                    }
                }
            }
            while let Some(ev) = self.endpoint.poll_event() {
                progressed = true;
                self.on_event(ev);
            }
            if !progressed {
                break;
            }
        }
        self.report_stats();
    }

    fn on_event(&mut self, ev: SipEvent) {
        let key = match &ev {
            SipEvent::IncomingCall(inc) => {
                let inc = inc.clone();
                self.admit(inc);
                return;
            }
            SipEvent::Established { call, .. }
            | SipEvent::Dtmf { call, .. }
            | SipEvent::ReferStatus { call, .. }
            | SipEvent::MediaUpdate { call, .. }
            | SipEvent::Terminated { call, .. } => call.clone(),
        };
        if let Some(call) = self.calls.get(&key) {
            let _ = call.tx.send(CallInput::Sip(ev));
        }
    }

    /// Add what the endpoint counted since the last report to the metrics.
    fn report_stats(&mut self) {
        let now = self.endpoint.stats();
        let m = &self.shared.metrics;
        for (method, n) in &now.requests_received {
            let before = self
                .reported
                .requests_received
                .get(method)
                .copied()
                .unwrap_or(0);
            if *n > before {
                m.sip_requests_received(SipMethod::from_name(method), n - before);
            }
        }
        for (code, n) in &now.responses_sent {
            let before = self.reported.responses_sent.get(code).copied().unwrap_or(0);
            if *n > before {
                m.sip_responses_sent(*code, n - before);
            }
        }
        m.sip_parse_errors(now.parse_errors - self.reported.parse_errors);
        m.sip_garbage_dropped(now.garbage_dropped - self.reported.garbage_dropped);
        m.sip_retransmissions(now.retransmits_sent - self.reported.retransmits_sent);
        m.sip_transactions_shed(now.shed_no_room - self.reported.shed_no_room);
        self.reported = now.clone();
    }

    fn refuse(&mut self, call: CallKey, refusal: Refusal) {
        let status = refusal.status();
        let retry_after = refusal.retry_after(&self.shared.loaded().config.limits);
        self.shared
            .metrics
            .call_rejected(labels::refusal(refusal), status);
        self.endpoint.handle_command(
            now(),
            SipCommand::Reject {
                call,
                status,
                retry_after,
                warning: refusal.warning(),
            },
        );
    }

    /// A new INVITE: ask admission, then do the IO it implies — bind the RTP port,
    /// open the recording, answer, start the call task.
    fn admit(&mut self, inc: IncomingCall) {
        let loaded = self.shared.loaded();
        let cfg = &loaded.config;
        let load = Load {
            live_calls: self.shared.drain.live_calls(),
            draining: self.shared.drain.is_draining(),
        };
        if let Err(refusal) = check_peer(&inc, &cfg.sip.trusted_peers) {
            debug!(source = %inc.source, "INVITE from an untrusted peer refused");
            self.shared
                .metrics
                .untrusted_requests(metrics::UntrustedAnswer::Forbidden, 1);
            return self.refuse(inc.call, refusal);
        }
        // Behind a proxy (`sip.proxies`), the real source it forwards.
        let source = limit_source(&inc, &cfg.sip.proxies);
        let plan =
            match self
                .admission
                .admit_from(now(), &inc, source, load, &cfg.limits, &cfg.media)
            {
                Ok(plan) => plan,
                Err(refusal) => return self.refuse(inc.call, refusal),
            };
        let (Some(live), Ok(rtp)) = (self.shared.drain.try_enter(), self.shared.ports.bind())
        else {
            self.admission.release(source);
            let refusal = if self.shared.drain.is_draining() {
                Refusal::Draining
            } else {
                warn!("no free RTP port");
                Refusal::NoRtpPort
            };
            return self.refuse(inc.call, refusal);
        };
        let span = call_span(&inc.call.0);
        // SRTP: our own master key, fresh from the OS CSPRNG for this call.
        let sdes = plan.is_srtp().then(|| {
            plan.sdes(crate::media::srtp::MasterKey::generate(
                &mut rand::rngs::OsRng,
            ))
        });
        let (ours, srtp) = sdes.flatten().unzip();
        let local_sdp = plan.local_sdp(
            rtp.local,
            rand::random::<u32>().into(),
            &cfg.media,
            ours.as_ref(),
        );
        drop(ours);
        let caller = identify(&inc, &cfg.sip.trusted_peers);
        let limit_key = caller.limit_key(&inc.call, cfg.security.withheld_callers);
        let (flow_name, flow) = loaded.route(&inc.request_uri_user, caller.withheld);
        let flow_name = flow_name.to_string();
        let flow_version = flow.version.clone();
        let params = CallParams {
            key: inc.call.clone(),
            ani: caller.ani.clone(),
            dnis: inc.request_uri_user.clone(),
            flow_name: flow_name.clone(),
            flow,
            media: plan.media_config(&cfg.media, source, cfg.recording.enabled),
            prompts: loaded.prompts.clone(),
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            max_duration: cfg.limits.max_call_duration,
            transfer_targets: cfg.transfer.targets.clone(),
            reason_header: cfg.transfer.reason_header.clone(),
            variables: cfg.variables.clone(),
            srtp,
            pacing: Some(crate::runtime::call_shard::pacing_grid()),
        };
        let recorder = if cfg.recording.enabled {
            match Recorder::create(&cfg.recording, &inc.call.0, &caller.ani) {
                Ok(r) => Some(r),
                Err(e) => {
                    span.in_scope(
                        || error!(error = %e, "cannot start recording; call continues unrecorded"),
                    );
                    None
                }
            }
        } else {
            None
        };
        let call = Call::new(now(), params);
        let (tx, rx) = mpsc::unbounded_channel();
        let tcp = match inc.transport {
            Transport::Tcp | Transport::Tls => self.tcp.get(&(inc.transport, inc.source)).cloned(),
            Transport::Udp => None,
        };
        if let Some(w) = &tcp {
            w.call_started();
        }
        self.calls.insert(
            inc.call.clone(),
            LiveCall {
                tx: tx.clone(),
                source,
                tcp,
            },
        );
        let active = self.shared.metrics.call_started();
        span.in_scope(|| {
            info!(
                source = %inc.source,
                limit_source = %source,
                flow = %flow_name,
                ani_from = caller.source.as_str(),
                withheld = caller.withheld,
                transport = inc.transport.via_name(),
                srtp = plan.is_srtp(),
                "call answered"
            )
        });
        let task = CallTask {
            call,
            rtp,
            rx,
            tx,
            sip: self.sip_tx.clone(),
            shared: self.shared.clone(),
            recorder,
            ani: caller.ani,
            limit_key,
            flow_name,
            flow_version,
        };
        self.endpoint.handle_command(
            now(),
            SipCommand::Answer {
                call: inc.call.clone(),
                sdp: local_sdp,
            },
        );
        // A panic inside one call must not take the process down: the call
        // runs in its own task, and this supervisor counts it and hangs up.
        let shared = self.shared.clone();
        let sip_tx = self.sip_tx.clone();
        let key = inc.call;
        let handle = tokio::spawn(task.run().instrument(span.clone()));
        self.tasks.spawn(
            async move {
                let _active = active;
                let _live = live;
                let outcome = match handle.await {
                    Ok(outcome) => CallEnd::from(outcome),
                    Err(e) if e.is_panic() => {
                        error!("call task panicked; hanging up");
                        shared.metrics.call_panicked();
                        let _ = sip_tx.send(SipIn::Command(SipCommand::Hangup {
                            call: key.clone(),
                            reason: Some(crate::sip::ByeReason::INTERNAL_ERROR),
                        }));
                        let _ = sip_tx.send(SipIn::CallGone(key));
                        CallEnd::Panicked
                    }
                    Err(_) => CallEnd::Failed,
                };
                shared.metrics.call_finished(outcome);
            }
            .instrument(span),
        );
    }
}

/// SIP on the wire at trace level: the start line, Call-ID and CSeq only.
/// Never headers beyond those, never bodies — an INFO body is a DTMF digit,
/// and inside the secure segment that digit is part of a PIN.
fn trace_sip(dir: &str, transport: Transport, peer: SocketAddr, data: &[u8]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let text = String::from_utf8_lossy(&data[..data.len().min(2048)]);
    let mut lines = text.lines();
    let start: String = lines
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let mut call_id = "";
    let mut cseq = "";
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => call_id = value.trim(),
            "cseq" => cseq = value.trim(),
            _ => {}
        }
    }
    tracing::trace!(
        dir,
        transport = transport.via_name(),
        %peer,
        bytes = data.len(),
        start = %start,
        call_id = %sanitize(call_id, 128),
        cseq = %sanitize(cseq, 64),
        "sip"
    );
}
