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
//!
//! The windows themselves live in the state store (`runtime::state`: this
//! process, or Redis shared by several instances).

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
