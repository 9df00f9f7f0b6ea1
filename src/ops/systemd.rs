//! systemd service-manager notifications (`sd_notify(3)`) over the `sd-notify` crate.
//!
//! `Type=notify` units expect `READY=1` once the service is usable, `WATCHDOG=1` at least every
//! `WatchdogSec` (systemd passes the interval as `WATCHDOG_USEC`) and `STOPPING=1` when shutdown
//! begins; `STATUS=` is a free-form line shown by `systemctl status`. `RELOADING=1` (with
//! `MONOTONIC_USEC`) followed by `READY=1` brackets a configuration reload.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every function is a no-op returning `Ok`. These
//! wrappers never unset the environment, so the variables stay visible for the whole process.
//! They do not pass file descriptors (no fd store) and do not run a watchdog timer themselves:
//! the main loop calls [`notify_watchdog`] every [`watchdog_interval`] / 2.

use std::time::Duration;

use sd_notify::NotifyState;

/// Errors from sending a notification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// The datagram to `NOTIFY_SOCKET` could not be sent.
    #[error("sd_notify failed: {0}")]
    Notify(#[from] std::io::Error),
}

fn send(states: &[NotifyState<'_>]) -> Result<(), SystemdError> {
    sd_notify::notify(false, states)?;
    Ok(())
}

/// True when running under a service manager that listens for notifications.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
}

/// `READY=1`: start-up is finished (listeners bound, config loaded), or a reload is done.
pub fn notify_ready() -> Result<(), SystemdError> {
    send(&[NotifyState::Ready])
}

/// `RELOADING=1` with `MONOTONIC_USEC`: a reload started; send [`notify_ready`] when done.
pub fn notify_reloading() -> Result<(), SystemdError> {
    if !under_systemd() {
        return Ok(());
    }
    let now = NotifyState::monotonic_usec_now()?;
    send(&[NotifyState::Reloading, now])
}

/// `STOPPING=1`: shutdown (drain) has begun.
pub fn notify_stopping() -> Result<(), SystemdError> {
    send(&[NotifyState::Stopping])
}

/// `STATUS=…`: one line for `systemctl status`. Newlines are replaced, since the protocol is
/// line-based and a newline would start a new (bogus) assignment.
pub fn notify_status(status: &str) -> Result<(), SystemdError> {
    let line: String = status
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    send(&[NotifyState::Status(&line)])
}

/// `WATCHDOG=1`: the main loop is alive.
pub fn notify_watchdog() -> Result<(), SystemdError> {
    send(&[NotifyState::Watchdog])
}

/// The watchdog timeout systemd expects to be kept (from `WATCHDOG_USEC`), if the watchdog is
/// enabled for this process. Like `sd_watchdog_enabled(3)`: ignored when `WATCHDOG_PID` names
/// another process; zero or unparsable values mean disabled. Ping at half this interval.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        let pid: u32 = pid.trim().parse().ok()?;
        if pid != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Paces `WATCHDOG=1` from the main loop: ticks every half of the watchdog timeout (the
/// recommendation of `sd_watchdog_enabled(3)`), first tick immediately. Select on
/// [`tick`](Self::tick) in the loop that must prove it is alive, and call [`notify_watchdog`]
/// (and `Readiness::beat`) on each tick; a separate task would only prove the runtime is alive.
#[derive(Debug)]
pub struct Watchdog {
    interval: tokio::time::Interval,
    period: Duration,
}

impl Watchdog {
    /// A watchdog for the timeout systemd set, or `None` when it is not enabled.
    pub fn from_env() -> Option<Self> {
        watchdog_interval().map(Self::new)
    }

    /// A watchdog for a given timeout (needs a tokio runtime). Late ticks are not bunched up.
    pub fn new(timeout: Duration) -> Self {
        let period = (timeout / 2).max(Duration::from_millis(1));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog { interval, period }
    }

    /// Time between pings.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Completes at the next ping time. Cancel-safe, so it can sit in a `select!`.
    pub async fn tick(&mut self) {
        self.interval.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn watchdog_ticks_at_half_the_timeout() {
        let mut wd = Watchdog::new(Duration::from_secs(30));
        assert_eq!(wd.period(), Duration::from_secs(15));
        let start = tokio::time::Instant::now();
        wd.tick().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "first ping immediately");
        wd.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        // A loop that was busy for 40 s pings once, then keeps the period from there.
        tokio::time::sleep(Duration::from_secs(40)).await;
        wd.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(55));
        wd.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(70));
    }
}
