//! Send budgets for one-time codes, sans-IO: per caller number (ANI) and for
//! the whole service, each a sliding window (`security.otp_sends_per_ani`,
//! `security.otp_sends_global`).
//!
//! Every code sent costs money and lands on somebody's phone, and a line
//! that sends codes is a tool for pumping SMS. The per-account limit on
//! lookups bounds what one account receives; these bound what one caller
//! number can trigger across accounts, and — since the ANI is the From user
//! and can be spoofed — what all callers together can. A send the budget
//! refuses never reaches the OTP backend: the flow takes the action's
//! `rate_limited` path. Refused sends are not counted, so a caller who waits
//! gets in.

use std::time::Instant;

use super::ratelimit::{RateLimitConfig, RateLimiter};

/// The send action's outcome when a budget refuses it.
pub const RATE_LIMITED: &str = "rate_limited";

/// Which budget refused a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// The caller number's (`security.otp_sends_per_ani`).
    PerAni,
    /// The whole service's (`security.otp_sends_global`).
    Global,
}

impl Spent {
    pub fn as_str(self) -> &'static str {
        match self {
            Spent::PerAni => "per_ani",
            Spent::Global => "global",
        }
    }
}

/// The two budgets; state is per process.
pub struct SendBudget {
    per_ani: RateLimiter,
    global: RateLimiter,
}

/// The single key of the global budget.
const ALL: &str = "";

impl SendBudget {
    pub fn new(per_ani: &RateLimitConfig, global: &RateLimitConfig) -> Self {
        SendBudget {
            per_ani: RateLimiter::from_config(per_ani),
            global: RateLimiter::new(global.max, global.window, 1),
        }
    }

    /// Follow the configuration (it may have been reloaded); what was
    /// already spent stays spent.
    /// Forget every send (the demo's reset).
    pub fn clear(&mut self) {
        self.per_ani.clear();
        self.global.clear();
    }

    pub fn configure(&mut self, per_ani: &RateLimitConfig, global: &RateLimitConfig) {
        self.per_ani.reconfigure(per_ani);
        self.global.reconfigure(&RateLimitConfig {
            max_keys: 1,
            ..global.clone()
        });
    }

    /// Spend one send for `ani` at `now`, or say which budget is spent (and
    /// spend nothing).
    pub fn admit(&mut self, now: Instant, ani: &str) -> Result<(), Spent> {
        if self.per_ani.remaining(now, ani) == 0 {
            return Err(Spent::PerAni);
        }
        if self.global.remaining(now, ALL) == 0 {
            return Err(Spent::Global);
        }
        self.per_ani.check_and_record(now, ani);
        self.global.check_and_record(now, ALL);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(max: u32, secs: u64) -> RateLimitConfig {
        RateLimitConfig {
            max,
            window: Duration::from_secs(secs),
            max_keys: 100,
        }
    }

    #[test]
    fn per_ani_then_global() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut b = SendBudget::new(&cfg(2, 3600), &cfg(3, 60));
        // (time, ani, result)
        let steps = [
            (0, "a", Ok(())),
            (1, "a", Ok(())),
            (2, "a", Err(Spent::PerAni)),
            (3, "b", Ok(())),
            (4, "c", Err(Spent::Global)), // 3 sends in the last minute
            (5, "a", Err(Spent::PerAni)), // refusals were not counted …
            (61, "c", Ok(())),            // … the global window moved on
            (61, "b", Ok(())),
            (62, "d", Err(Spent::Global)),
        ];
        for (t, ani, want) in steps {
            assert_eq!(b.admit(at(t), ani), want, "t={t} {ani}");
        }
    }

    #[test]
    fn a_reload_keeps_what_was_spent() {
        let t0 = Instant::now();
        let mut b = SendBudget::new(&cfg(5, 3600), &cfg(100, 3600));
        for _ in 0..3 {
            assert_eq!(b.admit(t0, "a"), Ok(()));
        }
        b.configure(&cfg(3, 3600), &cfg(100, 3600));
        assert_eq!(b.admit(t0, "a"), Err(Spent::PerAni));
        b.configure(&cfg(5, 3600), &cfg(3, 3600));
        assert_eq!(b.admit(t0, "b"), Err(Spent::Global));
        b.configure(&cfg(5, 3600), &cfg(0, 3600));
        assert_eq!(b.admit(t0, "b"), Err(Spent::Global), "0: no sends at all");
    }
}
