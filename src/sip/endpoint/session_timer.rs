//! Session timers (RFC 4028): a caller that asks for them (`Session-Expires`
//! in its INVITE, re-INVITE or UPDATE, and `timer` in its `Supported` or
//! `Require`) gets them, so a dialog whose far end vanished without a BYE ends
//! when its refreshes stop.
//!
//! - A session interval under our `Min-SE` (90 s, the RFC's floor) gets `422`
//!   with `Min-SE: 90`; the caller asks again with a longer one.
//!   (Only from a caller that supports the extension: one that does not
//!   would not understand the `422` either; see the last point.)
//! - Our 2xx carries `Session-Expires` with the caller's interval and
//!   `Require: timer`. The refresher is the caller's choice; when it leaves it
//!   to us it is the caller (`refresher=uac`): an IVR call is short, and every
//!   caller that supports the extension can refresh.
//! - Caller refreshes: each re-INVITE or UPDATE we answer 2xx renegotiates the
//!   interval (one without `Session-Expires` turns the timer off). None by the
//!   interval less a third (at most 32 s): we send BYE with `Reason: Q.850
//!   ;cause=102 ;text="Session timer expired"` (RFC 4028 §10).
//! - We refresh (`refresher=uas`): an UPDATE without a body every half
//!   interval; a `408` or `481` to it, or no answer, ends the call with the
//!   same BYE (§10); a `491` (it crossed one of the caller's) is tried again
//!   2 s later. Any other refusal (an UPDATE the caller does not take)
//!   leaves the session as it is, and we try again at the next half interval.
//! - A caller that does not support the extension (a proxy put the header in
//!   its INVITE) gets no session timer: its answer would carry a refresher it
//!   cannot act on.

use std::time::{Duration, Instant};

use super::super::message::{Header, Message};
use super::super::timer::Timer;
use super::super::transaction::ClientPurpose;
use super::super::{ByeReason, CallKey, EndReason};
use super::{Endpoint, Owner, CONTACT_USER};

/// Our `Min-SE`: the smallest session interval we take (RFC 4028 §5: at
/// least 90 s).
pub const MIN_SE: u32 = 90;

/// The session timer of a dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SessionTimer {
    /// The session interval, in seconds.
    pub interval: u32,
    /// `refresher=uas`: we send the refreshes.
    pub we_refresh: bool,
}

/// What a request's `Session-Expires` asks of us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// No timer (none asked, or a caller that cannot refresh).
    Off,
    On(SessionTimer),
    /// Under our `Min-SE`: `422`.
    TooSmall,
}

/// Read a request's session timer request (RFC 4028 §9).
pub(super) fn ask(msg: &Message) -> Ask {
    let Some(value) = msg.header("Session-Expires") else {
        return Ask::Off;
    };
    let mut parts = value.split(';');
    let Some(interval) = parts.next().and_then(|d| d.trim().parse::<u32>().ok()) else {
        // Unreadable: as if absent (the call goes on without a timer).
        return Ask::Off;
    };
    let supports = msg
        .headers_named("Supported")
        .chain(msg.headers_named("Require"))
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("timer"));
    if !supports {
        // Nor would it understand a 422.
        return Ask::Off;
    }
    if interval < MIN_SE {
        return Ask::TooSmall;
    }
    let we_refresh = parts.any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("refresher") && v.trim().eq_ignore_ascii_case("uas")
        })
    });
    Ask::On(SessionTimer {
        interval,
        we_refresh,
    })
}

impl Ask {
    /// The timer a 2xx to this request grants (none for `TooSmall`, which
    /// gets no 2xx).
    pub(super) fn granted(self) -> Option<SessionTimer> {
        match self {
            Ask::On(t) => Some(t),
            Ask::Off | Ask::TooSmall => None,
        }
    }
}

impl SessionTimer {
    /// The headers of our 2xx that grant it.
    pub(super) fn headers(self) -> [Header; 2] {
        let refresher = if self.we_refresh { "uas" } else { "uac" };
        [
            Header::new(
                "Session-Expires",
                format!("{};refresher={refresher}", self.interval),
            ),
            Header::new("Require", "timer"),
        ]
    }

    /// When its timer fires after a refresh at `now`: our next refresh at
    /// half the interval, or the caller's deadline at the interval less a
    /// third of it, at most 32 s (RFC 4028 §10).
    fn due(self, now: Instant) -> Instant {
        let interval = Duration::from_secs(u64::from(self.interval));
        if self.we_refresh {
            now + interval / 2
        } else {
            now + interval - (interval / 3).min(Duration::from_secs(32))
        }
    }
}

/// The 422 headers: our `Min-SE`.
pub(super) fn too_small() -> Vec<Header> {
    vec![Header::new("Min-SE", MIN_SE.to_string())]
}

impl Endpoint {
    /// A 2xx granting `timer` (or none) went out at `now`: the dialog's
    /// session timer starts over, or stops.
    pub(super) fn restart_session_timer(
        &mut self,
        now: Instant,
        key: &CallKey,
        timer: Option<SessionTimer>,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.session_timer = timer;
        let owner = Owner::Call(key.clone());
        match timer {
            Some(t) => self.timers.set(owner, Timer::Session, t.due(now)),
            None => self.timers.stop(&owner, Timer::Session),
        }
    }

    /// The session timer fired: refresh, or end the call whose refreshes
    /// stopped.
    pub(super) fn on_session_timer(&mut self, now: Instant, key: &CallKey) {
        let Some(timer) = self.calls.get(key).and_then(|c| c.session_timer) else {
            return;
        };
        if !timer.we_refresh {
            tracing::info!(call = %key, interval = timer.interval, "no session refresh from the caller, sending BYE");
            self.end_expired_session(now, key);
            return;
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let local = self.config.local_for(call.dialog.transport);
        let contact = call.dialog.contact(CONTACT_USER, local);
        let extra = vec![
            Header::new("Contact", contact),
            Header::new(
                "Session-Expires",
                format!("{};refresher=uas", timer.interval),
            ),
            Header::new("Supported", "timer"),
        ];
        self.send_request(now, key, "UPDATE", ClientPurpose::Refresh, extra);
        // The next one half an interval on; a 2xx to this one resets it.
        self.timers
            .set(Owner::Call(key.clone()), Timer::Session, timer.due(now));
    }

    /// The answer to our refresh (`None`: none came, Timer F).
    pub(super) fn on_refresh_result(
        &mut self,
        now: Instant,
        key: &CallKey,
        code: Option<u16>,
        response: Option<&Message>,
    ) {
        if !self.calls.contains_key(key) {
            // The call ended while the refresh was out.
            return;
        }
        match code {
            Some(200..=299) => {
                // The caller may have shortened it (RFC 4028 §10).
                let interval = response
                    .and_then(|r| r.header("Session-Expires"))
                    .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
                    .filter(|i| *i >= MIN_SE);
                let timer = self.calls.get(key).and_then(|c| c.session_timer);
                if let (Some(mut t), Some(interval)) = (timer, interval) {
                    t.interval = interval;
                    self.restart_session_timer(now, key, Some(t));
                }
            }
            None | Some(408) | Some(481) => {
                tracing::info!(call = %key, status = code, "session refresh failed, sending BYE");
                self.end_expired_session(now, key);
            }
            // Our UPDATE crossed one of the caller's (RFC 3261 §14.1): try
            // again shortly, well before the interval is out.
            Some(491) => {
                self.timers.set(
                    Owner::Call(key.clone()),
                    Timer::Session,
                    now + Duration::from_secs(2),
                );
            }
            Some(_) => {}
        }
    }

    fn end_expired_session(&mut self, now: Instant, key: &CallKey) {
        self.send_bye(now, key, Some(ByeReason::SESSION_EXPIRED));
        self.end_call(key, EndReason::SessionExpired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Datagram};

    fn invite(headers: &str) -> Message {
        let text = format!(
            "INVITE sip:ivr@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n\
             From: <sip:a@192.0.2.7>;tag=1\r\nTo: <sip:ivr@192.0.2.1>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()).expect("parses") {
            Datagram::Message(m) => m.message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_callers_request_is_read_as_rfc_4028_says() {
        let on = |interval, we_refresh| {
            Ask::On(SessionTimer {
                interval,
                we_refresh,
            })
        };
        let cases = [
            ("", Ask::Off),
            ("Supported: timer\r\n", Ask::Off),
            (
                "Session-Expires: 1800\r\nSupported: timer\r\n",
                on(1800, false),
            ),
            (
                "x: 1800;refresher=uac\r\nSupported: 100rel, timer\r\n",
                on(1800, false),
            ),
            (
                "Session-Expires: 600 ; refresher = UAS\r\nRequire: timer\r\n",
                on(600, true),
            ),
            ("Session-Expires: 90\r\nSupported: timer\r\n", on(90, false)),
            ("Session-Expires: 89\r\nSupported: timer\r\n", Ask::TooSmall),
            // A proxy's header, a caller that cannot refresh: no timer.
            ("Session-Expires: 1800;refresher=uas\r\n", Ask::Off),
            ("Session-Expires: 30\r\n", Ask::Off),
            ("Session-Expires: soon\r\nSupported: timer\r\n", Ask::Off),
        ];
        for (headers, want) in cases {
            assert_eq!(ask(&invite(headers)), want, "{headers:?}");
        }
    }

    #[test]
    fn the_timer_fires_to_refresh_at_half_or_to_end_a_third_early() {
        let t0 = Instant::now();
        let t = |interval, we_refresh| SessionTimer {
            interval,
            we_refresh,
        };
        assert_eq!(t(1800, true).due(t0), t0 + Duration::from_secs(900));
        assert_eq!(t(1800, false).due(t0), t0 + Duration::from_secs(1768));
        assert_eq!(t(90, false).due(t0), t0 + Duration::from_secs(60));
        let [se, require] = t(600, false).headers();
        assert_eq!(
            (se.value.as_str(), require.value.as_str()),
            ("600;refresher=uac", "timer")
        );
    }
}
