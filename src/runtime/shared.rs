//! The state every task of the server shares: the loaded configuration and
//! flows (swapped on SIGHUP), the action executor, metrics, readiness, the drain
//! state, the RTP port pool, the audit spool and the cross-call attempt limits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};

use crate::actions::budget::SendBudget;
use crate::actions::ratelimit::RateLimiter;
use crate::actions::Executor;
use crate::audit::{AuditRecord, AuditTrail, CallFacts, SystemClock};
use crate::config::{Config, Loaded};
use crate::ops::admin::Readiness;
use crate::ops::metrics::{Metrics, OtpSendResult, ReloadResult};
use crate::ops::shutdown::Drain;
use crate::runtime::call_shard::Shards;
use crate::runtime::labels;
use crate::runtime::ports::PortPool;

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
    /// Reset attempts per caller number and per account, across calls.
    pub(super) limits: Mutex<(RateLimiter, RateLimiter)>,
    /// One-time code sends per caller number and in all, across calls.
    pub(super) otp_budget: Mutex<SendBudget>,
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
    /// being asked). Other actions are not limited here.
    pub fn admit_attempt(&self, action: &str, ani: &str, vars: &crate::vars::Vars) -> bool {
        let loaded = self.loaded();
        let sec = &loaded.config.security;
        if action == sec.otp_send_action {
            return self.admit_otp_send(sec, ani);
        }
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

    /// Forget every caller's and account's attempts and code sends (`demo`'s
    /// `POST /demo/reset`).
    pub fn reset_attempt_limits(&self) {
        if let Ok(mut limits) = self.limits.lock() {
            limits.0.clear();
            limits.1.clear();
        }
        if let Ok(mut budget) = self.otp_budget.lock() {
            budget.clear();
        }
    }

    /// Spend one OTP send from the caller's and the global budget, or count
    /// and log the refusal (the budget's name, never the number).
    fn admit_otp_send(&self, sec: &crate::config::SecurityConfig, ani: &str) -> bool {
        let now = TokioInstant::now().into_std();
        let Ok(mut budget) = self.otp_budget.lock() else {
            return false;
        };
        budget.configure(&sec.otp_sends_per_ani, &sec.otp_sends_global);
        match budget.admit(now, ani) {
            Ok(()) => true,
            Err(spent) => {
                drop(budget);
                self.metrics.otp_sent(OtpSendResult::Refused);
                warn!(
                    budget = spent.as_str(),
                    "one-time code send refused: send budget spent"
                );
                false
            }
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
