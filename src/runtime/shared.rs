//! The state every task of the server shares: the loaded configuration and
//! flows (swapped on SIGHUP), the action executor, metrics, readiness, the drain
//! state, the RTP port pool, the audit spool and the cross-call attempt limits.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};

use crate::actions::budget::Spent;
use crate::actions::Executor;
use crate::audit::{AuditRecord, AuditTrail, CallFacts, SystemClock};
use crate::config::{Config, Loaded};
use crate::ops::admin::Readiness;
use crate::ops::metrics::{Metrics, OtpSendResult, ReloadResult};
use crate::ops::shutdown::Drain;
use crate::runtime::call_shard::Shards;
use crate::runtime::labels;
use crate::runtime::ports::PortPool;
use crate::runtime::state::{Limit, Space, StateStore, Verdict};

/// What [`Shared::admit_attempt`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Admitted,
    /// A limit is reached: the action's `rate_limited` outcome.
    Refused,
    /// The state store could not answer: refused, the action's `error` outcome
    /// (the flow apologises and transfers, as for any backend failure).
    Unavailable,
}

/// State shared by the SIP task, call tasks, the admin server and signals.
pub struct Shared {
    pub(super) loaded: RwLock<Arc<Loaded>>,
    pub(super) executor: RwLock<Arc<Executor>>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub ports: PortPool,
    /// Draining flag and the live-call count (each call task holds a guard).
    pub drain: Drain,
    /// The audit spool, with readiness and metrics following its health.
    pub audit_trail: AuditTrail,
    pub config_path: Option<PathBuf>,
    /// Reset attempts per caller number and per account and one-time code
    /// sends, across calls (and instances, with `state.backend: redis`).
    pub(super) state: StateStore,
    /// The tasks that drive the calls (started with the first call, on its runtime).
    pub(super) shards: OnceLock<Shards>,
}

impl Shared {
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().expect("config lock").clone()
    }

    /// The call shards; the first call starts them on the current runtime.
    pub fn shards(&self) -> &Shards {
        self.shards.get_or_init(Shards::per_cpu)
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
            .reset_finished(labels::reset_result(&record.result, &record.reason));
        // fsync is blocking work: the trail keeps it off the call task's
        // thread, holds the record if the spool refuses it, and wakes the
        // deliverer.
        self.audit_trail.record(record);
    }

    /// Admit one run of the lookup action for this caller and account, or
    /// one run of the OTP send action within its send budgets, or refuse it
    /// (the flow then takes its `rate_limited` path without the backend
    /// being asked). Other actions are not limited here. A state store that
    /// cannot answer refuses too ([`Attempt::Unavailable`]: fail closed).
    pub async fn admit_attempt(
        &self,
        action: &str,
        ani: &str,
        vars: &crate::vars::Vars,
    ) -> Attempt {
        let loaded = self.loaded();
        let sec = &loaded.config.security;
        let hour = Duration::from_secs(3600);
        let account = vars.plain(&sec.account_variable).unwrap_or("");
        let mut limits = Vec::with_capacity(2);
        if action == sec.otp_send_action {
            for (space, key, c) in [
                (Space::OtpSendsPerAni, ani, &sec.otp_sends_per_ani),
                (Space::OtpSendsGlobal, "", &sec.otp_sends_global),
            ] {
                limits.push(Limit {
                    space,
                    key,
                    max: c.max,
                    window: c.window,
                    max_keys: c.max_keys,
                });
            }
        } else if action == sec.lookup_action {
            limits.push(Limit {
                space: Space::AttemptsPerAni,
                key: ani,
                max: sec.attempts_per_ani_per_hour,
                window: hour,
                max_keys: 100_000,
            });
            if !account.is_empty() {
                limits.push(Limit {
                    space: Space::AttemptsPerAccount,
                    key: account,
                    max: sec.attempts_per_account_per_hour,
                    window: hour,
                    max_keys: 100_000,
                });
            }
        } else {
            return Attempt::Admitted;
        }
        let now = TokioInstant::now().into_std();
        match self.state.admit(now, SystemTime::now(), &limits).await {
            Ok(Verdict::Admitted) => {
                self.state_answered(true);
                Attempt::Admitted
            }
            Ok(Verdict::Refused(i)) => {
                self.state_answered(true);
                let space = limits[i].space;
                let budget = match space {
                    Space::OtpSendsPerAni => Some(Spent::PerAni),
                    Space::OtpSendsGlobal => Some(Spent::Global),
                    _ => None,
                };
                if let Some(spent) = budget {
                    self.metrics.otp_sent(OtpSendResult::Refused);
                    warn!(
                        budget = spent.as_str(),
                        "one-time code send refused: send budget spent"
                    );
                } else {
                    warn!(
                        action,
                        limit = space.as_str(),
                        "reset attempt refused by rate limit"
                    );
                }
                Attempt::Refused
            }
            Err(e) => {
                self.state_answered(false);
                self.metrics.attempt_refused_state_unavailable();
                warn!(action, error = %e, "shared state store unavailable: attempt refused (fail closed)");
                Attempt::Unavailable
            }
        }
    }

    /// Follow the state store's health: `/readyz` and the metric.
    pub fn state_answered(&self, ok: bool) {
        if self.readiness.is_state_available() != ok {
            if ok {
                info!("shared state store available again");
            } else {
                warn!("shared state store unavailable: new reset attempts are refused");
            }
        }
        self.readiness.set_state_available(ok);
        self.metrics.state_store_available(ok);
    }

    /// Forget every caller's and account's attempts and code sends (`demo`'s
    /// `POST /demo/reset`).
    /// In memory at once; in Redis in the background (within `state.timeout`).
    pub fn reset_attempt_limits(self: &Arc<Self>) {
        if let StateStore::Memory(m) = &self.state {
            return m.clear();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let s = self.clone();
        runtime.spawn(async move {
            if let Err(e) = s.state.clear().await {
                warn!(error = %e, "could not clear the shared state store");
            }
        });
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
                if loaded.config.state != self.loaded().config.state {
                    warn!("state: changed in the file; the running store is kept until a restart");
                }
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
