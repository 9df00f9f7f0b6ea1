//! The service: start-up, the main loop (signals, watchdog, readiness), and the
//! drain on shutdown.
//!
//! [`serve`] binds the SIP listeners (UDP always, TCP when configured, TLS when
//! `sip.tls` is set — see [`tls`]) and the
//! admin HTTP server, starts audit delivery and the SIP task ([`SipDriver`]),
//! reports `READY=1`, then waits for signals ([`Signals`]): SIGHUP reloads,
//! SIGTERM/SIGINT drain ([`Drain`]: new INVITEs get 503, live calls finish up to
//! `drain.timeout`, then they are ended with BYE). The main loop proves it is alive
//! on every [`Watchdog`] tick: `/healthz`'s beat, and `WATCHDOG=1` when systemd
//! asked for it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::actions::Executor;
use crate::audit::{AuditTrail, Backoff, Deliverer, DeliveryTarget, Spool};
use crate::config::Loaded;
use crate::ops::admin::Readiness;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{Drain, Signal, Signals};
use crate::ops::systemd::{self, Watchdog};
pub use crate::runtime::bound::{AttemptLimitsReset, Bound};
use crate::runtime::channels::SipIn;
use crate::runtime::ports::PortPool;
use crate::runtime::registration::Trunks;
use crate::runtime::shared::Shared;
use crate::runtime::sip_task::SipDriver;
use crate::runtime::state::{self, StateStore};
use crate::runtime::{tcp, tls};
use crate::sip::{Endpoint, EndpointConfig, TokenRng, Transport};

/// How often the main loop proves it is alive when systemd asks for nothing
/// shorter (`/healthz`'s beat, the audit spool's state and recovery).
const BEAT: Duration = Duration::from_secs(1);
/// After the drain limit, how long the BYEs to the calls still live may take.
const BYE_GRACE: Duration = Duration::from_secs(5);
/// After the drain, how long the un-REGISTERs may still take.
const UNREGISTER_GRACE: Duration = Duration::from_secs(5);

/// `sip.untrusted_requests: drop` for SIP over TCP and TLS: a connection from
/// a peer outside `sip.trusted_peers` is closed at accept, under the
/// configuration in force when it connects (a reload applies to the next one).
fn untrusted_gate(shared: &Arc<Shared>) -> tcp::Gate {
    let shared = Arc::downgrade(shared);
    Box::new(move |ip| {
        shared
            .upgrade()
            .is_none_or(|s| s.loaded().config.sip.serves(ip))
    })
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
        drain: Drain::new(),
        audit_trail: AuditTrail::new(spool.clone(), metrics.clone(), readiness.clone()),
        state: StateStore::from_config(&cfg.state).context("state.url")?,
        config_path,
        shards: OnceLock::new(),
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

    if cfg.sip.transports.contains(&Transport::Tcp) {
        let listener = TcpListener::bind(sip_addr)
            .await
            .with_context(|| format!("bind SIP TCP {sip_addr}"))?;
        // Every call's descriptors come first: TCP gets what is left.
        let nofile = tcp::raise_descriptor_limit();
        let cap = tcp::connection_cap(nofile, cfg.limits.max_calls, cfg.recording.enabled);
        let limits = tcp::TcpLimits::new(&cfg.sip, cap);
        if limits.max_connections < cfg.sip.tcp_max_connections {
            warn!(
                descriptors = nofile,
                max_calls = cfg.limits.max_calls,
                tcp_max_connections = limits.max_connections,
                "descriptor limit too low for sip.tcp_max_connections next to limits.max_calls; TCP connections capped lower"
            );
        }
        info!(
            descriptors = nofile,
            tcp_max_connections = limits.max_connections,
            "SIP over TCP"
        );
        let ctx = tcp::Context::new(
            Transport::Tcp,
            sip_tx.clone(),
            limits,
            metrics.clone(),
            hard_stop.clone(),
            Some(untrusted_gate(&shared)),
        );
        tasks.spawn(tcp::accept(listener, ctx));
    }

    let tls_addr = match &cfg.sip.tls {
        Some(tls_cfg) => {
            let at = tls_cfg.listen_addr(cfg.sip.listen);
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("bind SIP TLS {at}"))?;
            let addr = listener.local_addr()?;
            let nofile = tcp::raise_descriptor_limit();
            let cap = tcp::connection_cap(nofile, cfg.limits.max_calls, cfg.recording.enabled);
            let ctx = tcp::Context::new(
                Transport::Tls,
                sip_tx.clone(),
                tcp::TcpLimits::new(&cfg.sip, cap),
                metrics.clone(),
                hard_stop.clone(),
                Some(untrusted_gate(&shared)),
            );
            tasks.spawn(tls::accept(
                listener,
                tls_cfg.max_connections,
                shared.clone(),
                ctx,
                hard_stop.clone(),
            ));
            Some(addr)
        }
        None => None,
    };

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
    sip_cfg.max_server_transactions = cfg.sip.max_server_transactions;
    sip_cfg.max_server_transaction_bytes = cfg.sip.max_server_transaction_bytes;
    sip_cfg.retry_after_secs = cfg.limits.retry_after_secs;
    // TLS's own advertised address, else the SIP one's IP with the TLS port.
    sip_cfg.tls_addr = tls_addr.map(|addr| {
        let public = cfg
            .sip
            .advertised_addr
            .map(|a| std::net::SocketAddr::new(a.ip(), addr.port()));
        cfg.sip
            .tls
            .as_ref()
            .and_then(|t| t.advertised_addr)
            .or(public)
            .unwrap_or(addr)
    });
    let trunks = Trunks::from_config(
        &cfg.sip,
        &sip_cfg,
        metrics.clone(),
        readiness.clone(),
        |var| std::env::var(var).ok(),
    )
    .await?;
    let endpoint = Endpoint::new(sip_cfg, TokenRng::from_seed(rand::random()));
    let driver = SipDriver::new(
        endpoint,
        trunks,
        udp.clone(),
        shared.clone(),
        sip_tx.clone(),
        tasks.clone(),
    );
    let sip_task = tasks.spawn(driver.run(sip_rx, hard_stop.clone()));

    if shared.state.backend() == state::Backend::Redis {
        tasks.spawn(state::probe(shared.clone(), hard_stop.clone()));
    }
    readiness.set_listening(true);
    let limits_of = shared.clone();
    let bound = Bound {
        sip: sip_addr,
        transports: cfg.sip.transports.clone(),
        advertised: cfg.sip.advertised_addr,
        rtp_ip: cfg.media.rtp_ip,
        rtp_ports: cfg.media.rtp_port_min..=cfg.media.rtp_port_max,
        sip_tls: tls_addr,
        admin: admin_addr,
        config: shared.config_path.clone(),
        reset_attempt_limits: AttemptLimitsReset::new(move || limits_of.reset_attempt_limits()),
    };
    on_bound(&bound);
    info!(
        version = bound.version(),
        config = %bound.config_text(),
        sip = %sip_addr,
        sip_tls = %bound.tls_text(),
        transports = %bound.transports_text(),
        rtp = %bound.rtp_text(),
        admin = %bound.admin_text(),
        "listening"
    );
    if let Some(w) = bound.media_family_warning() {
        warn!("{w}");
    }
    let _ = systemd::notify_ready();

    let mut signals = Signals::new()?;
    // Ping at half of systemd's watchdog timeout, and at least every BEAT.
    let systemd_watchdog = systemd::watchdog_interval();
    let mut watchdog = Watchdog::new(systemd_watchdog.unwrap_or(BEAT * 2).min(BEAT * 2));
    let alive = || {
        readiness.beat();
        shared.audit_trail.tick();
        if systemd_watchdog.is_some() {
            let _ = systemd::notify_watchdog();
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = watchdog.tick() => alive(),
            signal = signals.recv() => match signal {
                Some(Signal::Reload) => {
                    // systemd shows the unit as `reloading` until READY=1 again.
                    let _ = systemd::notify_reloading();
                    let s = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reload()).await;
                    audit_wake.notify_one();
                    let _ = systemd::notify_ready();
                }
                Some(Signal::Terminate) | None => break,
            },
        }
    }

    // Drain: refuse new calls, let live ones finish up to the limit.
    info!("draining: new calls get 503");
    let _ = systemd::notify_stopping();
    shared.drain.start();
    readiness.set_draining();
    // Trunks stop sending new calls once our bindings are gone; calls already up keep
    // their dialogs.
    let (unregistered_tx, unregistered) = tokio::sync::oneshot::channel();
    let _ = sip_tx.send(SipIn::Unregister(unregistered_tx));
    let deadline = TokioInstant::now() + shared.loaded().config.drain.timeout;
    let idle = loop {
        tokio::select! {
            idle = shared.drain.wait_idle(deadline) => break idle,
            // Still alive while draining: keep /healthz up and the systemd
            // watchdog fed, or a drain longer than WatchdogSec is killed.
            _ = watchdog.tick() => alive(),
            // A second SIGTERM: stop waiting.
            signal = signals.recv() => match signal {
                Some(Signal::Reload) => {}
                Some(Signal::Terminate) | None => break shared.drain.live_calls() == 0,
            },
        }
    };
    if !idle {
        warn!(
            calls = shared.drain.live_calls(),
            "drain limit reached; ending live calls"
        );
        let _ = sip_tx.send(SipIn::TerminateAll);
        shared
            .drain
            .wait_idle(TokioInstant::now() + BYE_GRACE)
            .await;
    }
    // Give the audit deliverer a moment to flush what the last calls wrote, and the
    // un-REGISTERs their answers (Timer F bounds them anyway).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tokio::time::timeout(UNREGISTER_GRACE, unregistered).await;
    hard_stop.cancel();
    let _ = sip_task.await;
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    // The last calls' recordings: written and closed before the process exits.
    let _ = tokio::task::spawn_blocking(|| crate::runtime::recorder::flush(Duration::from_secs(5)))
        .await;
    info!("stopped");
    Ok(())
}
