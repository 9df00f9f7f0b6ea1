//! The service: SIP transports, admission, call tasks, audit delivery,
//! admin HTTP, signals.
//!
//! One SIP task owns the sans-IO `sip::Endpoint` (every transaction and
//! dialog of the process) and the UDP socket; TCP connections are framed by
//! their own small tasks and feed it through a channel. Each accepted call
//! gets its own task (see `call_task`), found by Call-ID. Admission happens
//! here: draining, capacity and per-source INVITE rate answer `503` with
//! `Retry-After`; an offer with no common codec answers `488`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::actions::ratelimit::RateLimiter;
use crate::actions::Executor;
use crate::audit::{
    AuditRecord, AuditTrail, Backoff, CallFacts, Deliverer, DeliveryTarget, Spool, SystemClock,
};
use crate::call::{Call, CallOutcome, CallParams};
use crate::config::{Config, Loaded, TransportName};
use crate::media::MediaConfig;
use crate::ops::admin::Readiness;
use crate::ops::metrics::{
    CallOutcome as CallOutcomeLabel, DtmfTransport, Metrics, RejectReason, ReloadResult,
    ResetResult, RtpCounts, SipMethod,
};
use crate::runtime::call_task::{CallInput, CallTask};
use crate::runtime::ports::PortPool;
use crate::runtime::recorder::Recorder;
use crate::sip::framing::StreamDecoder;
use crate::sip::{
    sdp, CallKey, Command as SipCommand, Endpoint, EndpointConfig, Event as SipEvent, IncomingCall,
    SipStats, Transport,
};

/// Inputs of the SIP task.
#[derive(Debug)]
pub enum SipIn {
    Tcp {
        peer: SocketAddr,
        data: Vec<u8>,
    },
    TcpOpened {
        peer: SocketAddr,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    TcpClosed {
        peer: SocketAddr,
    },
    Command(SipCommand),
    CallGone(CallKey),
    /// Shutdown: end every live call now.
    TerminateAll,
}

/// State shared by the SIP task, call tasks, the admin server and signals.
pub struct Shared {
    loaded: RwLock<Arc<Loaded>>,
    executor: RwLock<Arc<Executor>>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub ports: PortPool,
    pub draining: AtomicBool,
    pub live_calls: AtomicUsize,
    /// The audit spool, with readiness and metrics following its health.
    pub audit_trail: AuditTrail,
    pub config_path: Option<PathBuf>,
    /// Reset attempts per caller number and per account, across calls.
    limits: Mutex<(RateLimiter, RateLimiter)>,
}

impl Shared {
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().expect("config lock").clone()
    }

    pub fn executor(&self) -> Arc<Executor> {
        self.executor.read().expect("executor lock").clone()
    }

    /// Write an audit record to the spool (fsynced) and wake delivery.
    /// Called from call tasks; the append is small and bounded.
    pub fn audit(
        &self,
        result: &str,
        reason: &str,
        ani: &str,
        call_id: &str,
        flow: &str,
        flow_version: &str,
    ) {
        let facts = CallFacts {
            ani,
            call_id,
            flow,
            flow_version,
        };
        let record = AuditRecord::new(&SystemClock, &facts, result, reason);
        info!(result = %record.result, reason = %record.reason, "audit");
        self.metrics
            .reset_finished(reset_metric(&record.result, &record.reason));
        // fsync is blocking work: the trail keeps it off the call task's
        // thread, holds the record if the spool refuses it, and wakes the
        // deliverer.
        self.audit_trail.record(record);
    }

    /// Admit one run of the lookup action for this caller and account, or
    /// refuse it (the flow then takes its `rate_limited` path without the
    /// backend being asked). Only the lookup action is limited.
    pub fn admit_attempt(&self, action: &str, ani: &str, vars: &crate::vars::Vars) -> bool {
        let loaded = self.loaded();
        let sec = &loaded.config.security;
        if action != sec.lookup_action {
            return true;
        }
        let now = TokioInstant::now().into_std();
        let Ok(mut limits) = self.limits.lock() else {
            return true;
        };
        let account = vars.plain(&sec.account_variable).unwrap_or("");
        // Check both before recording either, so one refusal does not use up
        // the other's budget.
        let ani_ok = limits.0.remaining(now, ani) > 0;
        let account_ok = account.is_empty() || limits.1.remaining(now, account) > 0;
        if ani_ok && account_ok {
            limits.0.check_and_record(now, ani);
            if !account.is_empty() {
                limits.1.check_and_record(now, account);
            }
            true
        } else {
            warn!(action, "reset attempt refused by rate limit");
            false
        }
    }

    /// SIGHUP: load and validate everything again; swap only if it is all
    /// good. Live calls keep the flow they started with (they hold an Arc).
    pub fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload (demo mode)".into());
        };
        let result = Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| Loaded::from_config(cfg).map_err(|e| e.to_string()))
            .and_then(|loaded| {
                let exec =
                    Executor::new(loaded.config.actions.clone()).map_err(|e| e.to_string())?;
                Ok((loaded, exec))
            });
        match result {
            Ok((loaded, exec)) => {
                // Action names and outcomes allowed as metric labels follow the config.
                self.metrics.set_action_catalog(
                    exec.infos()
                        .into_iter()
                        .map(|(name, info)| (name, info.outcomes)),
                );
                *self.loaded.write().expect("config lock") = Arc::new(loaded);
                *self.executor.write().expect("executor lock") = Arc::new(exec);
                self.metrics.config_reloaded(ReloadResult::Ok);
                info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.config_reloaded(ReloadResult::Rejected);
                warn!(reason = %e, "reload refused; keeping the running configuration");
                Err(e)
            }
        }
    }
}

/// What `serve` was started with, and where it ended up listening.
pub struct Bound {
    pub sip: SocketAddr,
    pub admin: Option<SocketAddr>,
}

/// Start everything; returns when `shutdown` completes the drain.
pub async fn serve(
    loaded: Loaded,
    config_path: Option<PathBuf>,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(&Bound),
) -> anyhow::Result<()> {
    let cfg = loaded.config.clone();
    let metrics = Arc::new(Metrics::new());
    let executor = Executor::new(cfg.actions.clone()).context("actions")?;
    let spool = Arc::new(
        Spool::open(&cfg.audit.spool_dir)
            .with_context(|| format!("audit spool {}", cfg.audit.spool_dir.display()))?,
    );
    metrics.set_action_catalog(
        executor
            .infos()
            .into_iter()
            .map(|(name, info)| (name, info.outcomes)),
    );
    let readiness = Arc::new(Readiness::new());
    let shared = Arc::new(Shared {
        loaded: RwLock::new(Arc::new(loaded)),
        executor: RwLock::new(Arc::new(executor)),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        ports: PortPool::new(
            cfg.media.rtp_ip,
            cfg.media.rtp_port_min,
            cfg.media.rtp_port_max,
        ),
        draining: AtomicBool::new(false),
        live_calls: AtomicUsize::new(0),
        audit_trail: AuditTrail::new(spool.clone(), metrics.clone(), readiness.clone()),
        limits: Mutex::new((
            RateLimiter::new(
                cfg.security.attempts_per_ani_per_hour,
                Duration::from_secs(3600),
                100_000,
            ),
            RateLimiter::new(
                cfg.security.attempts_per_account_per_hour,
                Duration::from_secs(3600),
                100_000,
            ),
        )),
        config_path,
    });

    let udp = Arc::new(
        UdpSocket::bind(cfg.sip.listen)
            .await
            .with_context(|| format!("bind SIP UDP {}", cfg.sip.listen))?,
    );
    let sip_addr = udp.local_addr()?;
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    let tasks = tokio_util::task::TaskTracker::new();
    let hard_stop = CancellationToken::new();

    if cfg.sip.transports.contains(&TransportName::Tcp) {
        let listener = TcpListener::bind(sip_addr)
            .await
            .with_context(|| format!("bind SIP TCP {sip_addr}"))?;
        tasks.spawn(tcp_accept(listener, sip_tx.clone(), hard_stop.clone()));
    }

    let admin_addr = if cfg.admin.enabled {
        let listener = TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("bind admin HTTP {}", cfg.admin.listen))?;
        let addr = listener.local_addr()?;
        tasks.spawn(crate::ops::admin::serve(
            listener,
            metrics.clone(),
            readiness.clone(),
            hard_stop.clone(),
        ));
        Some(addr)
    } else {
        None
    };

    // Audit delivery: through the configured action (as of the last
    // reload), with backoff; what is not acknowledged stays in the spool for
    // the next start.
    let target = shared.clone();
    let deliverer = Deliverer::following(spool.clone(), Backoff::default(), move || {
        let loaded = target.loaded();
        DeliveryTarget {
            executor: target.executor(),
            action: loaded.config.audit.action.clone(),
            dead_letter_after: loaded.config.audit.dead_letter_after,
        }
    })
    .with_metrics(metrics.clone());
    let audit_wake = deliverer.waker();
    tasks.spawn(deliverer.run(hard_stop.clone()));

    let advertised = cfg.sip.advertised_addr.unwrap_or(sip_addr);
    let mut sip_cfg = EndpointConfig::new(advertised, cfg.sip.user_agent.clone());
    sip_cfg.symmetric_signalling = cfg.sip.symmetric_signalling;
    let endpoint = Endpoint::new(sip_cfg);
    let driver = SipDriver {
        endpoint,
        udp: udp.clone(),
        tcp: HashMap::new(),
        calls: HashMap::new(),
        shared: shared.clone(),
        sip_tx: sip_tx.clone(),
        rate: HashMap::new(),
        tasks: tasks.clone(),
        reported: SipStats::default(),
    };
    let sip_task = tasks.spawn(driver.run(sip_rx, hard_stop.clone()));

    readiness.set_listening(true);
    let bound = Bound {
        sip: sip_addr,
        admin: admin_addr,
    };
    on_bound(&bound);
    info!(sip = %sip_addr, admin = ?admin_addr, "listening");
    let _ = crate::ops::systemd::notify_ready();

    // Watchdog: ping from the main loop while it is alive.
    let watchdog = crate::ops::systemd::watchdog_interval();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(
        watchdog
            .map(|w| w / 2)
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1)),
    );
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                // systemd shows the unit as `reloading` until READY=1 again.
                let _ = crate::ops::systemd::notify_reloading();
                let s = shared.clone();
                let _ = tokio::task::spawn_blocking(move || s.reload()).await;
                audit_wake.notify_one();
                let _ = crate::ops::systemd::notify_ready();
            }
            _ = tick.tick() => {
                readiness.beat();
                shared.audit_trail.tick();
                if watchdog.is_some() {
                    let _ = crate::ops::systemd::notify_watchdog();
                }
            }
        }
    }

    // Drain: refuse new calls, let live ones finish up to the limit.
    info!("draining: new calls get 503");
    let _ = crate::ops::systemd::notify_stopping();
    shared.draining.store(true, Ordering::SeqCst);
    readiness.set_draining();
    let drain_limit = shared.loaded().config.drain.timeout;
    let deadline = TokioInstant::now() + drain_limit;
    while shared.live_calls.load(Ordering::SeqCst) > 0 && TokioInstant::now() < deadline {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = term.recv() => break,
            // Still alive while draining: keep /healthz up and the systemd
            // watchdog fed, or a drain longer than WatchdogSec is killed.
            _ = tick.tick() => {
                readiness.beat();
                shared.audit_trail.tick();
                if watchdog.is_some() {
                    let _ = crate::ops::systemd::notify_watchdog();
                }
            }
        }
    }
    if shared.live_calls.load(Ordering::SeqCst) > 0 {
        warn!(
            calls = shared.live_calls.load(Ordering::SeqCst),
            "drain limit reached; ending live calls"
        );
        let _ = sip_tx.send(SipIn::TerminateAll);
        let bye_deadline = TokioInstant::now() + Duration::from_secs(5);
        while shared.live_calls.load(Ordering::SeqCst) > 0 && TokioInstant::now() < bye_deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Give the audit deliverer a moment to flush what the last calls wrote.
    tokio::time::sleep(Duration::from_millis(200)).await;
    hard_stop.cancel();
    let _ = sip_task.await;
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    info!("stopped");
    Ok(())
}

async fn tcp_accept(
    listener: TcpListener,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    tokio::spawn(tcp_connection(stream, peer, sip_tx.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One SIP-over-TCP connection: Content-Length framing in, a writer queue
/// out. A framing error closes the connection (RFC 3261 §18.3).
async fn tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    stop: CancellationToken,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    let _ = sip_tx.send(SipIn::TcpOpened { peer, writer: wtx });
    let writer = tokio::spawn(async move {
        while let Some(buf) = wrx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = rd.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    let _ = sip_tx.send(SipIn::Tcp { peer, data: msg });
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "SIP TCP framing error; closing");
                    let _ = sip_tx.send(SipIn::TcpClosed { peer });
                    writer.abort();
                    return;
                }
            }
        }
    }
    let _ = sip_tx.send(SipIn::TcpClosed { peer });
    writer.abort();
}

struct SipDriver {
    endpoint: Endpoint,
    udp: Arc<UdpSocket>,
    tcp: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    calls: HashMap<CallKey, mpsc::UnboundedSender<CallInput>>,
    shared: Arc<Shared>,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    /// INVITEs per source per one-second window.
    rate: HashMap<IpAddr, (TokioInstant, u32)>,
    tasks: tokio_util::task::TaskTracker,
    /// Endpoint counters already added to the metrics (they are cumulative).
    reported: SipStats,
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl SipDriver {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SipIn>, stop: CancellationToken) {
        let mut buf = vec![0u8; 65_535];
        loop {
            self.flush().await;
            let deadline = self
                .endpoint
                .poll_timeout()
                .map(TokioInstant::from_std)
                .unwrap_or_else(|| TokioInstant::now() + Duration::from_secs(3600));
            let udp = self.udp.clone();
            tokio::select! {
                _ = stop.cancelled() => return,
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        trace_sip("in", Transport::Udp, from, &buf[..n]);
                        self.endpoint.handle_datagram(now(), Transport::Udp, from, &buf[..n]);
                    }
                    Err(e) => debug!(error = %e, "SIP UDP receive error"),
                },
                msg = rx.recv() => match msg {
                    Some(m) => self.on_input(m),
                    None => return,
                },
                _ = sleep_until(deadline) => self.endpoint.handle_timeout(now()),
            }
        }
    }

    fn on_input(&mut self, m: SipIn) {
        match m {
            SipIn::Tcp { peer, data } => {
                trace_sip("in", Transport::Tcp, peer, &data);
                self.endpoint
                    .handle_datagram(now(), Transport::Tcp, peer, &data)
            }
            SipIn::TcpOpened { peer, writer } => {
                self.tcp.insert(peer, writer);
            }
            SipIn::TcpClosed { peer } => {
                self.tcp.remove(&peer);
            }
            SipIn::Command(cmd) => self.endpoint.handle_command(now(), cmd),
            SipIn::CallGone(key) => {
                self.calls.remove(&key);
            }
            SipIn::TerminateAll => {
                for tx in self.calls.values() {
                    let _ = tx.send(CallInput::Terminate(CallOutcome::Shutdown));
                }
            }
        }
    }

    /// Send what the endpoint wants sent; route its events.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                trace_sip("out", t.transport, t.destination, &t.payload);
                match t.transport {
                    Transport::Udp => {
                        if let Err(e) = self.udp.send_to(&t.payload, t.destination).await {
                            debug!(error = %e, to = %t.destination, "SIP UDP send error");
                        }
                    }
                    Transport::Tcp => match self.tcp.get(&t.destination) {
                        Some(w) => {
                            let _ = w.send(t.payload);
                        }
                        None => debug!(to = %t.destination, "no TCP connection for response"),
                    },
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
            | SipEvent::Terminated { call, .. } => call.clone(),
        };
        if let Some(tx) = self.calls.get(&key) {
            let _ = tx.send(CallInput::Sip(ev));
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
        self.reported = now.clone();
    }

    fn reject(
        &mut self,
        call: CallKey,
        reason: RejectReason,
        status: u16,
        retry_after: Option<u32>,
    ) {
        self.shared.metrics.call_rejected(reason, status);
        self.endpoint.handle_command(
            now(),
            SipCommand::Reject {
                call,
                status,
                retry_after,
            },
        );
    }

    /// Admission and answer for a new INVITE.
    fn admit(&mut self, inc: IncomingCall) {
        let loaded = self.shared.loaded();
        let cfg = &loaded.config;
        let retry = Some(cfg.limits.retry_after_secs);
        if self.shared.draining.load(Ordering::SeqCst) {
            return self.reject(inc.call, RejectReason::Draining, 503, retry);
        }
        if self.shared.live_calls.load(Ordering::SeqCst) >= cfg.limits.max_calls {
            return self.reject(inc.call, RejectReason::Capacity, 503, retry);
        }
        let t = TokioInstant::now();
        let entry = self.rate.entry(inc.source.ip()).or_insert((t, 0));
        if t.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (t, 0);
        }
        entry.1 += 1;
        if entry.1 > cfg.limits.invites_per_second_per_source {
            return self.reject(inc.call, RejectReason::RateLimited, 503, retry);
        }
        if self.rate.len() > 10_000 {
            self.rate
                .retain(|_, (start, _)| t.duration_since(*start) < Duration::from_secs(1));
        }

        let rtp = match self.shared.ports.bind() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "no RTP port");
                return self.reject(inc.call, RejectReason::Capacity, 503, retry);
            }
        };
        let session_id = rand::random::<u32>() as u64;
        // Early offer: negotiate now. Late offer: offer ours and take the
        // answer from the ACK (the media session latches to the caller's
        // packets meanwhile).
        let (negotiated, answer_sdp) = match inc.offer.as_deref().map(sdp::parse) {
            Some(Ok(offer)) => match sdp::negotiate(&offer, &cfg.media.codecs) {
                Ok(n) => {
                    let answer = sdp::answer(&n, rtp.local, session_id);
                    (n, answer)
                }
                Err(_) => return self.reject(inc.call, RejectReason::NoCommonCodec, 488, None),
            },
            Some(Err(_)) => return self.reject(inc.call, RejectReason::BadSdp, 488, None),
            None => {
                let offer = sdp::offer(
                    rtp.local,
                    &cfg.media.codecs,
                    cfg.media.telephone_event_pt,
                    cfg.media.ptime_ms,
                    session_id,
                );
                let n = sdp::Negotiated {
                    codec: cfg.media.codecs[0],
                    audio_pt: cfg.media.codecs[0].static_payload_type(),
                    telephone_event_pt: Some(cfg.media.telephone_event_pt),
                    ptime_ms: cfg.media.ptime_ms,
                    remote: SocketAddr::new(inc.source.ip(), 0),
                };
                (n, offer)
            }
        };
        let (flow_name, flow) = loaded.route(&inc.request_uri_user);
        let flow_name = flow_name.to_string();
        let flow_version = flow.version.clone();
        let media = MediaConfig {
            codec: negotiated.codec,
            audio_pt: negotiated.audio_pt,
            telephone_event_pt: negotiated.telephone_event_pt,
            ptime_ms: negotiated.ptime_ms,
            remote: negotiated.remote,
            symmetric_rtp: cfg.media.symmetric_rtp || negotiated.remote.port() == 0,
            dtmf_mode: cfg.media.dtmf_mode,
            inactivity_timeout: cfg.media.inactivity_timeout,
            record: cfg.recording.enabled,
        };
        let params = CallParams {
            key: inc.call.clone(),
            ani: inc.from_user.clone(),
            dnis: inc.request_uri_user.clone(),
            flow_name: flow_name.clone(),
            flow,
            media,
            prompts: loaded.prompts.clone(),
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            max_duration: cfg.limits.max_call_duration,
            transfer_targets: cfg.transfer.targets.clone(),
            reason_header: cfg.transfer.reason_header.clone(),
            variables: cfg.variables.clone(),
        };
        let recorder = if cfg.recording.enabled {
            match Recorder::create(&cfg.recording, &inc.call.0, &inc.from_user) {
                Ok(r) => Some(r),
                Err(e) => {
                    error!(error = %e, "cannot create recording; call continues unrecorded");
                    None
                }
            }
        } else {
            None
        };
        let call = Call::new(now(), params);
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls.insert(inc.call.clone(), tx.clone());
        self.shared.live_calls.fetch_add(1, Ordering::SeqCst);
        let active = self.shared.metrics.call_started();
        let task = CallTask {
            call,
            rtp,
            rx,
            tx,
            sip: self.sip_tx.clone(),
            shared: self.shared.clone(),
            recorder,
            ani: inc.from_user.clone(),
            flow_name,
            flow_version,
        };
        info!(call_id = %inc.call.0, source = %inc.source, flow = %task.flow_name, "call answered");
        self.endpoint.handle_command(
            now(),
            SipCommand::Answer {
                call: inc.call.clone(),
                sdp: answer_sdp,
            },
        );
        // A panic inside one call must not take the process down: the call
        // runs in its own task, and this supervisor counts it and hangs up.
        let shared = self.shared.clone();
        let sip_tx = self.sip_tx.clone();
        let key = inc.call;
        let handle = tokio::spawn(task.run());
        self.tasks.spawn(async move {
            let _active = active;
            let outcome = match handle.await {
                Ok(outcome) => metric_outcome(outcome),
                Err(e) if e.is_panic() => {
                    error!(call_id = %key.0, "call task panicked; hanging up");
                    shared.metrics.call_panicked();
                    let _ = sip_tx.send(SipIn::Command(SipCommand::Hangup { call: key.clone() }));
                    let _ = sip_tx.send(SipIn::CallGone(key));
                    CallOutcomeLabel::Panicked
                }
                Err(_) => CallOutcomeLabel::Failed,
            };
            shared.metrics.call_finished(outcome);
            shared.live_calls.fetch_sub(1, Ordering::SeqCst);
        });
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
        call_id = %crate::ops::logging::sanitize(call_id, 128),
        cseq = %crate::ops::logging::sanitize(cseq, 64),
        "sip"
    );
}

fn metric_outcome(o: CallOutcome) -> CallOutcomeLabel {
    match o {
        CallOutcome::Completed => CallOutcomeLabel::Completed,
        CallOutcome::Transferred => CallOutcomeLabel::Transferred,
        CallOutcome::CallerHangup => CallOutcomeLabel::CallerHangup,
        CallOutcome::AckTimeout | CallOutcome::RtpTimeout | CallOutcome::MaxDuration => {
            CallOutcomeLabel::Timeout
        }
        CallOutcome::Shutdown => CallOutcomeLabel::Drained,
    }
}

/// The metrics label for a digit's transport.
pub fn dtmf_transport(source: crate::media::DigitSource) -> DtmfTransport {
    match source {
        crate::media::DigitSource::Rfc4733 => DtmfTransport::Rfc4733,
        crate::media::DigitSource::Inband => DtmfTransport::Inband,
        crate::media::DigitSource::Info => DtmfTransport::Info,
    }
}

/// Media counters as metrics counts.
pub fn rtp_counts(stats: &crate::media::MediaStats) -> RtpCounts {
    RtpCounts {
        sent: stats.packets_sent,
        received: stats.packets_received,
        late: stats.late,
        lost: stats.lost,
        malformed: stats.malformed,
    }
}

/// The reset-result metric for an audit record: flows write `failure` with
/// a reason token, so the reason says which failure it was.
fn reset_metric(result: &str, reason: &str) -> ResetResult {
    if result == "success" {
        return ResetResult::Success;
    }
    match reason {
        "account_locked" => ResetResult::Locked,
        "otp_exhausted" | "otp_not_entered" => ResetResult::OtpExhausted,
        "pin_mismatch_exhausted" => ResetResult::MismatchExhausted,
        "pin_policy_rejected" => ResetResult::TooSimple,
        "backend_error" | "backend_unavailable" => ResetResult::BackendError,
        "unknown_id" => ResetResult::NotFound,
        "rate_limited" => ResetResult::RateLimited,
        "audit_unavailable" => ResetResult::AuditUnavailable,
        r if r.starts_with("caller_hangup") || r.contains("abandon") => ResetResult::Abandoned,
        r if r.contains("transfer") => ResetResult::Transferred,
        _ => ResetResult::from_audit(result),
    }
}
