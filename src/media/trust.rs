//! Whose RTP a call accepts: the caller's, and nobody else's.
//!
//! A host that learns a call's RTP port could otherwise inject DTMF (every RFC 4733
//! event or in-band tone it sends would count as the caller's key) and, by being
//! latched to, hear the prompts. So every datagram on a call's port is checked
//! *before it is parsed*:
//!
//! 1. its source IP must be trusted: the SDP `c=` address ([`RtpSource::Sdp`]) or the
//!    address the INVITE came from ([`RtpSource::Signalling`]) — both by default;
//!    [`RtpSource::Any`] trusts the first sender from anywhere (callers behind NATs
//!    that rewrite media and signalling to different addresses; an attacker who is
//!    quicker than the caller wins that latch);
//! 2. once a source is latched (the first valid packet from a trusted IP), only that
//!    address and port is accepted. It may move to another port of the *same IP*
//!    (NAT rebinding) after being quiet for [`RELATCH_AFTER`]; never to another IP.
//!
//! Everything else is dropped and counted by [`Rejected`] reason. The guard decides;
//! the session ([`super::MediaSession`]) parses and latches its send address.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A latched source may move to another port of its IP after this much quiet.
pub const RELATCH_AFTER: Duration = Duration::from_millis(500);

/// Which addresses a call's RTP may come from (config `media.accept_rtp_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpSource {
    /// The connection address of the caller's SDP (`c=`).
    Sdp,
    /// The IP address the INVITE came from.
    Signalling,
    /// Any address: the first valid packet latches.
    Any,
}

/// The trusted sources of one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtpTrust {
    pub sdp: bool,
    pub signalling: bool,
    pub any: bool,
}

impl RtpTrust {
    pub fn from_sources(sources: &[RtpSource]) -> Self {
        RtpTrust {
            sdp: sources.contains(&RtpSource::Sdp),
            signalling: sources.contains(&RtpSource::Signalling),
            any: sources.contains(&RtpSource::Any),
        }
    }
}

/// Why a datagram was dropped before parsing (a metric label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// From an IP that is neither the SDP nor the signalling address.
    UntrustedSource,
    /// From a trusted IP, but not the latched address (or another port of the
    /// latched IP while the latched port is still active).
    NotLatched,
}

/// The per-call source check. See the module docs.
#[derive(Clone, Debug)]
pub struct SourceGuard {
    trust: RtpTrust,
    sdp_ip: Option<IpAddr>,
    signalling_ip: Option<IpAddr>,
    latched: Option<(SocketAddr, Instant)>,
}

fn usable(ip: IpAddr) -> Option<IpAddr> {
    (!ip.is_unspecified()).then_some(ip)
}

impl SourceGuard {
    /// `sdp` is the offer's (or, late, the answer's) connection address; an
    /// unspecified one (`0.0.0.0`, hold) trusts nothing.
    pub fn new(trust: RtpTrust, sdp: Option<IpAddr>, signalling: Option<IpAddr>) -> Self {
        SourceGuard {
            trust,
            sdp_ip: sdp.and_then(usable),
            signalling_ip: signalling.and_then(usable),
            latched: None,
        }
    }

    /// A late SDP (the answer in the ACK) names the caller's media address.
    pub fn set_sdp(&mut self, ip: IpAddr) {
        self.sdp_ip = usable(ip);
    }

    /// Forget the latched source: the signalling moved the caller's media, and
    /// the next packet from a trusted address latches afresh.
    pub fn unlatch(&mut self) {
        self.latched = None;
    }

    /// The latched source, if any packet was accepted yet.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched.map(|(a, _)| a)
    }

    fn trusted_ip(&self, ip: IpAddr) -> bool {
        self.trust.any
            || (self.trust.sdp && self.sdp_ip == Some(ip))
            || (self.trust.signalling && self.signalling_ip == Some(ip))
    }

    /// May a datagram from `source` be parsed at all?
    pub fn check(&self, now: Instant, source: SocketAddr) -> Result<(), Rejected> {
        match self.latched {
            Some((addr, _)) if addr == source => Ok(()),
            Some((addr, last)) => {
                let quiet = now.saturating_duration_since(last) >= RELATCH_AFTER;
                if addr.ip() == source.ip() && quiet {
                    Ok(())
                } else if self.trusted_ip(source.ip()) || addr.ip() == source.ip() {
                    Err(Rejected::NotLatched)
                } else {
                    Err(Rejected::UntrustedSource)
                }
            }
            None if self.trusted_ip(source.ip()) => Ok(()),
            None => Err(Rejected::UntrustedSource),
        }
    }

    /// The latched source while it is steady: its last valid packet came less
    /// than [`RELATCH_AFTER`] before `now`, so [`check`](Self::check) takes
    /// nothing from any other address. The one peer a call's socket may be
    /// `connect`ed to: the kernel then drops everyone else's datagrams itself.
    /// `None` before the first latch and once the source is quiet (it may move
    /// to another port, which a connected socket would never hear).
    pub fn steady(&self, now: Instant) -> Option<SocketAddr> {
        let (addr, last) = self.latched?;
        (now.saturating_duration_since(last) < RELATCH_AFTER).then_some(addr)
    }

    /// A datagram that passed [`check`](Self::check) parsed as RTP: latch to its
    /// source. True when the latched address changed (first latch or re-latch).
    pub fn accept(&mut self, now: Instant, source: SocketAddr) -> bool {
        let moved = self.latched.map(|(a, _)| a) != Some(source);
        self.latched = Some((source, now));
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_ips_then_the_latched_address_only() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let trust = RtpTrust::from_sources(&[RtpSource::Sdp, RtpSource::Signalling]);
        let mut g = SourceGuard::new(
            trust,
            Some("192.0.2.10".parse().unwrap()),
            Some("198.51.100.1".parse().unwrap()),
        );
        let attacker = addr("203.0.113.66:4000");
        let caller = addr("192.0.2.10:30000");
        // Before the caller's first packet: a stranger is not trusted.
        assert_eq!(g.check(ms(0), attacker), Err(Rejected::UntrustedSource));
        // The signalling address is trusted too (one port of it, once latched).
        assert_eq!(g.check(ms(0), addr("198.51.100.1:9")), Ok(()));
        assert_eq!(g.check(ms(0), caller), Ok(()));
        assert_eq!(g.steady(ms(0)), None, "nothing latched yet");
        assert!(g.accept(ms(0), caller));
        assert!(!g.accept(ms(20), caller));
        assert_eq!(g.latched(), Some(caller));
        assert_eq!(g.steady(ms(20)), Some(caller));
        assert_eq!(
            g.steady(ms(20) + RELATCH_AFTER - Duration::from_millis(1)),
            Some(caller)
        );
        assert_eq!(g.steady(ms(20) + RELATCH_AFTER), None, "quiet: it may move");
        // Latched: the other trusted IP and other ports of the same IP are refused…
        assert_eq!(
            g.check(ms(30), addr("198.51.100.1:9")),
            Err(Rejected::NotLatched)
        );
        assert_eq!(
            g.check(ms(30), addr("192.0.2.10:30002")),
            Err(Rejected::NotLatched)
        );
        assert_eq!(g.check(ms(30), attacker), Err(Rejected::UntrustedSource));
        // …until the latched port is quiet for RELATCH_AFTER: then the same IP may
        // move (NAT rebinding), another IP never.
        let later = ms(20) + RELATCH_AFTER;
        assert_eq!(
            g.check(later, addr("198.51.100.1:9")),
            Err(Rejected::NotLatched)
        );
        assert_eq!(g.check(later, addr("192.0.2.10:30002")), Ok(()));
        assert!(g.accept(later, addr("192.0.2.10:30002")));
        assert_eq!(g.check(later, caller), Err(Rejected::NotLatched));
    }

    #[test]
    fn each_mode_trusts_what_it_says() {
        let sdp: IpAddr = "192.0.2.10".parse().unwrap();
        let sig: IpAddr = "198.51.100.1".parse().unwrap();
        let t0 = Instant::now();
        let rows: &[(&[RtpSource], [bool; 3])] = &[
            (&[RtpSource::Sdp], [true, false, false]),
            (&[RtpSource::Signalling], [false, true, false]),
            (
                &[RtpSource::Sdp, RtpSource::Signalling],
                [true, true, false],
            ),
            (&[RtpSource::Any], [true, true, true]),
        ];
        for (sources, want) in rows {
            let g = SourceGuard::new(RtpTrust::from_sources(sources), Some(sdp), Some(sig));
            let got = [
                g.check(t0, SocketAddr::new(sdp, 1)).is_ok(),
                g.check(t0, SocketAddr::new(sig, 1)).is_ok(),
                g.check(t0, addr("203.0.113.66:1")).is_ok(),
            ];
            assert_eq!(&got, want, "{sources:?}");
        }
        // A held or late offer (c=0.0.0.0, or none yet) trusts no SDP address until
        // the answer names one.
        let mut g = SourceGuard::new(
            RtpTrust::from_sources(&[RtpSource::Sdp]),
            Some("0.0.0.0".parse().unwrap()),
            Some(sig),
        );
        assert!(g.check(t0, addr("0.0.0.0:1")).is_err());
        assert!(g.check(t0, SocketAddr::new(sdp, 1)).is_err());
        g.set_sdp(sdp);
        assert!(g.check(t0, SocketAddr::new(sdp, 1)).is_ok());
    }
}
