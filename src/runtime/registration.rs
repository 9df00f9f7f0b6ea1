//! The runtime side of outbound registration: builds one sans-IO [`Registration`] per
//! `sip.registrations` entry and reports what they do.
//!
//! [`Trunks::from_config`] reads each password from its environment variable and
//! resolves each registrar (or outbound proxy) once, at start-up (A/AAAA records of
//! the URI's host, port 5060 by default; no SRV or NAPTR). The SIP task owns the
//! result and drives it on the SIP UDP socket — a REGISTER must leave from the port
//! the trunk will send calls to — offering it every response first
//! ([`Trunks::handle_datagram`]). Each state change becomes a log line, the
//! `sspr_ivr_sip_registration_up` gauge and `sspr_ivr_sip_registrations_total`
//! counter, and `/readyz` (not ready while a `required` registration is missing).
//! [`Trunks::unregister`] removes every binding at shutdown and reports when done.
//!
//! Registrations are not changed by a reload (SIGHUP); a restart applies new ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::config::{RegistrationConfig, SipConfig};
use crate::ops::admin::Readiness;
use crate::ops::metrics::{Metrics, RegistrationResult};
use crate::secret::Secret;
use crate::sip::message::{self, hostport_addr, uri_hostport, uri_user, Datagram};
use crate::sip::register::{RegisterParams, Registration, RegistrationEvent};
use crate::sip::{EndpointConfig, TokenRng, Transmit};

/// Why the registrations cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrunkError {
    #[error(
        "sip.registrations `{name}`: the environment variable {var} (password_env) is not set"
    )]
    MissingPassword { name: String, var: String },
    #[error("sip.registrations `{name}`: cannot resolve `{host}`: {reason}")]
    Resolve {
        name: String,
        host: String,
        reason: String,
    },
}

struct Trunk {
    reg: Registration,
    required: bool,
}

/// Every registration of the process. See the module docs.
pub struct Trunks {
    trunks: Vec<Trunk>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    unregistered: Option<oneshot::Sender<()>>,
}

impl Trunks {
    /// Build the registrations of `sip` for an endpoint at `endpoint.local_addr`, with
    /// the environment supplied by `env` (tests pass their own).
    pub async fn from_config(
        sip: &SipConfig,
        endpoint: &EndpointConfig,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Trunks, TrunkError> {
        let mut trunks = Vec::new();
        for r in &sip.registrations {
            let password = env(&r.password_env).map(Secret::new).ok_or_else(|| {
                TrunkError::MissingPassword {
                    name: r.name.clone(),
                    var: r.password_env.clone(),
                }
            })?;
            let destination = resolve(r, endpoint.local_addr).await?;
            let params = params(r, endpoint.local_addr, destination, password);
            let reg = Registration::new(params, endpoint, TokenRng::from_seed(rand::random()));
            metrics.registration_up(&r.name, false);
            trunks.push(Trunk {
                reg,
                required: r.required,
            });
        }
        let t = Trunks {
            trunks,
            metrics,
            readiness,
            unregistered: None,
        };
        t.update_readiness();
        Ok(t)
    }

    /// No registrations at all (tests, and a server without `sip.registrations`).
    pub fn none(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Trunks {
        Trunks {
            trunks: Vec::new(),
            metrics,
            readiness,
            unregistered: None,
        }
    }

    pub fn start(&mut self, now: Instant) {
        for t in &mut self.trunks {
            info!(trunk = t.reg.name(), "registering");
            t.reg.start(now);
        }
    }

    /// Offer a datagram: `true` when it was a response to one of our REGISTERs.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> bool {
        if self.trunks.is_empty() || !data.starts_with(b"SIP/2.0 ") {
            return false;
        }
        let Ok(Datagram::Message(parsed)) = message::parse(data) else {
            return false;
        };
        if parsed.defect.is_some() {
            return false;
        }
        let mine = self
            .trunks
            .iter_mut()
            .any(|t| t.reg.handle_response(now, &parsed.message));
        if mine {
            self.report();
        }
        mine
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in &mut self.trunks {
            if t.reg.poll_timeout().is_some_and(|at| at <= now) {
                t.reg.handle_timeout(now);
            }
        }
        self.report();
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .filter_map(|t| t.reg.poll_timeout())
            .min()
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.trunks.iter_mut().find_map(|t| t.reg.poll_transmit())
    }

    /// Remove every binding; `done` fires once each un-REGISTER has been answered (or
    /// given up on after Timer F).
    pub fn unregister(&mut self, now: Instant, done: oneshot::Sender<()>) {
        self.unregistered = Some(done);
        for t in &mut self.trunks {
            t.reg.unregister(now);
        }
        self.report();
    }

    /// Turn the machines' events into logs, metrics and readiness.
    fn report(&mut self) {
        for t in &mut self.trunks {
            let name = t.reg.name().to_string();
            while let Some(ev) = t.reg.poll_event() {
                match ev {
                    RegistrationEvent::Registered { expires } => {
                        info!(trunk = %name, expires, "registered");
                        self.metrics
                            .registration_attempt(&name, RegistrationResult::Registered);
                    }
                    RegistrationEvent::Failed { status, retry_in } => {
                        warn!(trunk = %name, status, retry_in = ?retry_in, "registration failed");
                        let result = match status {
                            401 | 407 => RegistrationResult::AuthFailed,
                            408 => RegistrationResult::Timeout,
                            _ => RegistrationResult::Rejected,
                        };
                        self.metrics.registration_attempt(&name, result);
                    }
                    RegistrationEvent::Unregistered { status } => {
                        info!(trunk = %name, status, "unregistered");
                        if status != 0 {
                            self.metrics
                                .registration_attempt(&name, RegistrationResult::Unregistered);
                        }
                    }
                }
                self.metrics.registration_up(&name, t.reg.is_registered());
            }
        }
        self.update_readiness();
        let all_done = self
            .trunks
            .iter()
            .all(|t| t.reg.state() == crate::sip::register::RegistrationState::Unregistered);
        if all_done {
            if let Some(done) = self.unregistered.take() {
                let _ = done.send(());
            }
        }
    }

    fn update_readiness(&self) {
        let ok = self
            .trunks
            .iter()
            .all(|t| !t.required || t.reg.is_registered());
        self.readiness.set_registered(ok);
    }
}

/// The sans-IO parameters of one configured registration.
fn params(
    r: &RegistrationConfig,
    local: SocketAddr,
    destination: SocketAddr,
    password: Secret,
) -> RegisterParams {
    let user = uri_user(&r.aor);
    RegisterParams {
        name: r.name.clone(),
        registrar: r.registrar.clone(),
        destination,
        aor: r.aor.clone(),
        contact: r
            .contact
            .clone()
            .unwrap_or_else(|| format!("sip:{user}@{local}")),
        username: r.username.clone().unwrap_or(user),
        password,
        expires: u32::try_from(r.expires.as_secs()).unwrap_or(u32::MAX),
        retry_min: r.retry_min,
        retry_max: r.retry_max,
    }
}

/// Where the REGISTER goes: the outbound proxy or the registrar URI's host, resolved
/// to an address of the same family as our socket.
async fn resolve(r: &RegistrationConfig, local: SocketAddr) -> Result<SocketAddr, TrunkError> {
    let target = match &r.outbound_proxy {
        Some(p) => p.clone(),
        None => uri_hostport(&r.registrar).unwrap_or_default().to_string(),
    };
    if let Some(addr) = hostport_addr(&target) {
        return Ok(addr);
    }
    let error = |reason: String| TrunkError::Resolve {
        name: r.name.clone(),
        host: target.clone(),
        reason,
    };
    let with_port = if target
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        target.clone()
    } else {
        format!("{target}:5060")
    };
    let addrs = tokio::net::lookup_host(with_port)
        .await
        .map_err(|e| error(e.to_string()))?;
    addrs
        .into_iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| error("no address of the SIP socket's family".into()))
}
