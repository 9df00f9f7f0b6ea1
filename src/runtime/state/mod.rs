//! The state that must hold across calls — and, with several instances, across
//! machines: reset attempts per caller number and per account (the lookup limit,
//! which is also the enumeration guard: it bounds how many account ids one caller
//! can try, and how often one account can be tried from anywhere), and the OTP send
//! budgets per caller number and for the whole service.
//!
//! One [`StateStore`] per process, chosen by `state.backend`:
//!
//! - `memory` (the default, one machine): sliding windows in this process
//!   ([`RateLimiter`], sans-IO), lost on restart.
//! - `redis`: the same sliding windows in Redis ([`redis_store`]), one sorted set
//!   per key, checked and recorded by one Lua script so that two instances admitting
//!   at the same moment cannot both take the last slot.
//!
//! Every check is "all limits have room, then record in all": a refusal by one
//! limit spends nothing of the others, and a refused attempt is not counted (a
//! caller who waits gets in). A store that cannot answer within `state.timeout` is
//! an [`StateError`]: the caller of [`StateStore::admit`] fails closed.
//!
//! The clock is the runtime's: `now` (monotonic, the memory backend) and the wall
//! clock in milliseconds (Redis, shared by every instance: keep their clocks in
//! NTP sync; a skew of a second is nothing against windows of an hour) come in.

pub mod redis_store;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::actions::ratelimit::RateLimiter;

/// `state:` in the config file. Its `Debug` masks a password in `url`
/// (`redis://user:secret@host` prints as `redis://user:***@host`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `memory` (one instance) or `redis` (several instances share the limits).
    pub backend: Backend,
    /// The Redis server (`redis://host:6379/0`, `rediss://…` is not built in).
    pub url: String,
    /// Put before every key this server writes, so several services can share one
    /// Redis database.
    pub key_prefix: String,
    /// The longest one check may take (connecting included) before the attempt
    /// is refused (fail closed).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("backend", &self.backend)
            .field("url", &masked_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` with the password of its userinfo (if any) replaced by `***`.
fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".into()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[host_start..])
        }
        None => url.to_string(),
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Memory,
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "sspr-ivr:".into(),
            timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Memory,
    Redis,
}

/// Which limit a key counts against; part of the key in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// Reset attempts (lookups) per caller number.
    AttemptsPerAni,
    /// Reset attempts (lookups) per account.
    AttemptsPerAccount,
    /// One-time code sends per caller number.
    OtpSendsPerAni,
    /// One-time code sends by the whole service (one key).
    OtpSendsGlobal,
}

impl Space {
    pub fn as_str(self) -> &'static str {
        match self {
            Space::AttemptsPerAni => "attempts:ani",
            Space::AttemptsPerAccount => "attempts:account",
            Space::OtpSendsPerAni => "otp_sends:ani",
            Space::OtpSendsGlobal => "otp_sends:all",
        }
    }
}

/// One limit to check: `max` events for `key` within any `window`.
#[derive(Clone, Debug)]
pub struct Limit<'a> {
    pub space: Space,
    pub key: &'a str,
    pub max: u32,
    pub window: Duration,
    /// Keys the memory backend tracks at once for this space (Redis expires
    /// them instead).
    pub max_keys: usize,
}

/// The answer of [`StateStore::admit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit had room; the event is recorded in each.
    Admitted,
    /// This limit (an index into the slice given) is reached; nothing recorded.
    Refused(usize),
}

/// The store could not answer: unreachable, too slow, or an error reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("state store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("state store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("state store gave an unexpected answer: {0}")]
    Protocol(String),
}

/// The limits' state, in this process or in Redis. See the module docs.
pub enum StateStore {
    Memory(MemoryStore),
    Redis(Box<redis_store::RedisStore>),
}

impl StateStore {
    /// The store `state` names. Fails only on a malformed Redis URL; an
    /// unreachable server is found (and reported) by the first check or probe.
    pub fn from_config(state: &StateConfig) -> Result<Self, StateError> {
        Ok(match state.backend {
            Backend::Memory => StateStore::Memory(MemoryStore::default()),
            Backend::Redis => StateStore::Redis(Box::new(redis_store::RedisStore::new(state)?)),
        })
    }

    /// Check every limit at `now` (`wall` for the shared clock); if all have
    /// room, record one event in each.
    pub async fn admit(
        &self,
        now: Instant,
        wall: SystemTime,
        limits: &[Limit<'_>],
    ) -> Result<Verdict, StateError> {
        match self {
            StateStore::Memory(m) => Ok(m.admit(now, limits)),
            StateStore::Redis(r) => r.admit(wall, limits).await,
        }
    }

    /// Is the store there? (Always, in memory; a `PING` for Redis.)
    pub async fn probe(&self) -> Result<(), StateError> {
        match self {
            StateStore::Memory(_) => Ok(()),
            StateStore::Redis(r) => r.ping().await,
        }
    }

    /// Forget every key (the demo's `POST /demo/reset`).
    pub async fn clear(&self) -> Result<(), StateError> {
        match self {
            StateStore::Memory(m) => {
                m.clear();
                Ok(())
            }
            StateStore::Redis(r) => r.clear().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            StateStore::Memory(_) => Backend::Memory,
            StateStore::Redis(_) => Backend::Redis,
        }
    }
}

/// How often [`probe`] asks Redis whether it is there.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// While the server runs: `PING` the store every second, so `/readyz` and
/// `sspr_ivr_state_store_available` show an outage (and the recovery) even
/// when no call is asking.
pub async fn probe(
    shared: std::sync::Arc<crate::runtime::shared::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ok = shared.state.probe().await;
        if let Err(e) = &ok {
            tracing::debug!(error = %e, "state store probe failed");
        }
        shared.state_answered(ok.is_ok());
    }
}

/// The limits of one process: one [`RateLimiter`] per [`Space`].
#[derive(Default)]
pub struct MemoryStore {
    spaces: Mutex<HashMap<Space, RateLimiter>>,
}

impl MemoryStore {
    pub fn admit(&self, now: Instant, limits: &[Limit<'_>]) -> Verdict {
        let Ok(mut spaces) = self.spaces.lock() else {
            // A panic while holding the lock: refuse rather than guess.
            return Verdict::Refused(0);
        };
        for l in limits {
            let cfg = crate::actions::ratelimit::RateLimitConfig {
                max: l.max,
                window: l.window,
                max_keys: l.max_keys,
            };
            // Follow the configuration (it may have been reloaded); what was
            // already recorded stays.
            spaces
                .entry(l.space)
                .or_insert_with(|| RateLimiter::from_config(&cfg))
                .reconfigure(&cfg);
        }
        if let Some(i) = limits
            .iter()
            .position(|l| spaces[&l.space].remaining(now, l.key) == 0)
        {
            return Verdict::Refused(i);
        }
        for l in limits {
            if let Some(rl) = spaces.get_mut(&l.space) {
                rl.check_and_record(now, l.key);
            }
        }
        Verdict::Admitted
    }

    pub fn clear(&self) {
        if let Ok(mut spaces) = self.spaces.lock() {
            spaces.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(space: Space, key: &str, max: u32, secs: u64) -> Limit<'_> {
        Limit {
            space,
            key,
            max,
            window: Duration::from_secs(secs),
            max_keys: 100,
        }
    }

    /// The OTP send budgets: per caller number, then the whole service.
    #[test]
    fn send_budgets_per_ani_then_global() {
        let m = MemoryStore::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let send = |t: u64, ani: &str| {
            m.admit(
                at(t),
                &[
                    limit(Space::OtpSendsPerAni, ani, 2, 3600),
                    limit(Space::OtpSendsGlobal, "", 3, 60),
                ],
            )
        };
        use Verdict::*;
        // (time, ani, verdict)
        let steps = [
            (0, "a", Admitted),
            (1, "a", Admitted),
            (2, "a", Refused(0)),
            (3, "b", Admitted),
            (4, "c", Refused(1)), // 3 sends in the last minute
            (5, "a", Refused(0)), // refusals were not counted …
            (61, "c", Admitted),  // … the global window moved on
            (61, "b", Admitted),
            (62, "d", Refused(1)),
        ];
        for (t, ani, want) in steps {
            assert_eq!(send(t, ani), want, "t={t} {ani}");
        }
    }

    /// A lookup is refused by either limit, and the refusal spends nothing of
    /// the other.
    #[test]
    fn attempts_per_ani_and_account() {
        let m = MemoryStore::default();
        let t0 = Instant::now();
        let look = |ani: &str, account: &str| {
            m.admit(
                t0,
                &[
                    limit(Space::AttemptsPerAni, ani, 3, 3600),
                    limit(Space::AttemptsPerAccount, account, 2, 3600),
                ],
            )
        };
        assert_eq!(look("a", "1001"), Verdict::Admitted);
        assert_eq!(look("b", "1001"), Verdict::Admitted);
        assert_eq!(look("c", "1001"), Verdict::Refused(1), "account spent");
        assert_eq!(look("c", "1002"), Verdict::Admitted, "c was not charged");
        assert_eq!(look("a", "1003"), Verdict::Admitted);
        assert_eq!(look("a", "1004"), Verdict::Admitted);
        assert_eq!(look("a", "1005"), Verdict::Refused(0), "ani spent");
        assert_eq!(look("d", "1005"), Verdict::Admitted, "1005 was not charged");
        m.clear();
        assert_eq!(look("c", "1001"), Verdict::Admitted, "clear forgets all");
    }

    #[test]
    fn a_reload_keeps_what_was_spent() {
        let m = MemoryStore::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            let v = m.admit(t0, &[limit(Space::OtpSendsPerAni, "a", 5, 3600)]);
            assert_eq!(v, Verdict::Admitted);
        }
        let v = m.admit(t0, &[limit(Space::OtpSendsPerAni, "a", 3, 3600)]);
        assert_eq!(v, Verdict::Refused(0), "a lower max applies at once");
        let v = m.admit(t0, &[limit(Space::OtpSendsGlobal, "", 0, 3600)]);
        assert_eq!(v, Verdict::Refused(0), "0: none at all");
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_redis_password() {
        for (url, want) in [
            (
                "redis://:s3cret@10.0.0.5:6379/0",
                "redis://:***@10.0.0.5:6379/0",
            ),
            ("redis://ivr:s3cret@redis/1", "redis://ivr:***@redis/1"),
            ("redis://s3cret@redis", "redis://***@redis"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ] {
            let cfg = StateConfig {
                url: url.into(),
                ..StateConfig::default()
            };
            let text = format!("{cfg:?}");
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains(want), "{text}");
        }
    }
}
