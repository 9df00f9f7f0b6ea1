//! Admission of a new call, sans-IO: may this INVITE become a call, and with which
//! media session?
//!
//! The SIP task asks [`Admission::admit`] for every [`IncomingCall`] the endpoint
//! reports, with `now` and the server's load, and carries out the answer: a
//! [`Refusal`] becomes a final response (`503` with `Retry-After` for draining,
//! capacity and per-source limits; `488` for an offer it cannot answer), a
//! [`MediaPlan`] becomes an RTP socket, an SDP body ([`MediaPlan::local_sdp`]) and
//! the call's [`MediaConfig`] ([`MediaPlan::media_config`]). The checks run cheapest
//! first, in this order:
//!
//! 0. [`check_peer`]: the source is not in `sip.trusted_peers` → `403` (with
//!    `sip.untrusted_requests: drop` the SIP task never lets its request this far);
//! 1. draining (SIGTERM) → `503`;
//! 2. `limits.max_calls` live calls → `503`;
//! 3. `limits.invites_per_second_per_source`: new INVITEs from one IP address in a
//!    one-second window (every INVITE counts, admitted or not) → `503`;
//! 4. `limits.max_calls_per_source` live calls from one IP address → `503`;
//! 5. the SDP offer: no codec in common → `488`, unparseable → `488`, a media
//!    address of the other IP family than `media.rtp_ip` → `488`; no offer at
//!    all (late offer, RFC 3261 §13.2.1) → we offer our codecs in the 200 and take
//!    the caller's answer from the ACK;
//! 6. SRTP (`media.srtp`, RFC 4568 SDES): an SDES key is taken only from an INVITE
//!    that came over TLS. `RTP/SAVP` that we cannot or may not answer (not TLS,
//!    `off`, no suite we speak) → `488`; with `required`, anything but SRTP over
//!    TLS → `488` (a late offer too: we do not offer SDES keys ourselves).
//!
//! Steps 5 and 6 run for each audio line of the offer in turn, and the first
//! that passes is the call's (a phone offering SRTP "if possible" lists its
//! stream as `RTP/SAVP` and again as `RTP/AVP`); when none does, the first
//! line's refusal is the answer.
//!
//! An admitted call holds a slot of its source's quota until the runtime calls
//! [`Admission::release`] for it. Nothing here reads a clock, binds a port or draws a
//! random number: the runtime passes `now`, the bound RTP address and the session id.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::caller::TrustedPeers;
use crate::config::{LimitsConfig, MediaSettings};
use crate::media::srtp::{CryptoAttr, MasterKey, SrtpKeys, SrtpPolicy};
use crate::media::{MediaConfig, RtpTrust};
use crate::sip::sdp::{self, Negotiated};
use crate::sip::{IncomingCall, Transport, Warning};

/// Rate windows kept before old ones are swept.
const RATE_TABLE_SWEEP: usize = 10_000;
/// The INVITE rate window.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Why an INVITE does not become a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source is not in `sip.trusted_peers`.
    Untrusted,
    /// The server is draining (SIGTERM).
    Draining,
    /// `limits.max_calls` calls are live.
    Capacity,
    /// The source sent more than `limits.invites_per_second_per_source` INVITEs.
    RateLimited,
    /// The source has `limits.max_calls_per_source` live calls.
    SourceLimit,
    /// No free RTP port (the runtime decides this one).
    NoRtpPort,
    /// The offer has no codec we can use.
    NoCommonCodec,
    /// The offer is not usable SDP.
    BadSdp,
    /// The offer insists on SRTP we may not give it, or `media.srtp: required`
    /// and the call cannot have it (see step 6 of the module docs).
    MediaNotSecure,
    /// The offer's media address is of the other IP family than `media.rtp_ip`
    /// (an IPv6 caller to an IPv4 media address, or the reverse): neither side
    /// could send the other a packet, and the call would sit silent until its
    /// RTP timeout.
    AddressFamily,
}

impl Refusal {
    /// The final response status.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Untrusted => 403,
            Refusal::NoCommonCodec
            | Refusal::BadSdp
            | Refusal::MediaNotSecure
            | Refusal::AddressFamily => 488,
            _ => 503,
        }
    }

    /// The `Warning` for a `488` (RFC 3261 §20.43), so that the trunk's engineer
    /// reads in the capture why the offer was refused; none on other refusals.
    pub fn warning(self) -> Option<Warning> {
        Some(match self {
            Refusal::AddressFamily => Warning::ADDRESS_FAMILY,
            Refusal::MediaNotSecure => Warning::TRANSPORT,
            Refusal::NoCommonCodec => Warning::MEDIA_FORMAT,
            Refusal::BadSdp => Warning::UNUSABLE_SDP,
            _ => return None,
        })
    }

    /// `Retry-After` seconds: on every `503`, never on a `488` (trying again will not
    /// help an offer we cannot answer).
    pub fn retry_after(self, limits: &LimitsConfig) -> Option<u32> {
        (self.status() == 503).then_some(limits.retry_after_secs)
    }
}

/// What the rest of the server knows about its load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub live_calls: usize,
    pub draining: bool,
}

/// The media side of an admitted call, decided before its RTP port is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaPlan {
    /// Early offer: negotiated now; the 200 carries our answer.
    Answer(Negotiated),
    /// Late offer: the 200 carries our offer; until the ACK brings the caller's
    /// answer the session uses our first codec and learns the caller's address from
    /// its packets (symmetric RTP, from the signalling source's IP).
    Offer(Negotiated),
}

impl MediaPlan {
    /// What is negotiated so far.
    pub fn negotiated(&self) -> &Negotiated {
        match self {
            MediaPlan::Answer(n) | MediaPlan::Offer(n) => n,
        }
    }

    /// Whether the call uses SRTP (an SDES key was taken from the offer).
    pub fn is_srtp(&self) -> bool {
        self.negotiated().crypto.is_some()
    }

    /// With SRTP: our SDES attribute for the answer (the offer's tag and suite,
    /// `key` — fresh from the runtime's CSPRNG) and the call's keys.
    pub fn sdes(&self, key: MasterKey) -> Option<(CryptoAttr, SrtpKeys)> {
        let theirs = self.negotiated().crypto.as_ref()?;
        let ours = CryptoAttr {
            tag: theirs.tag,
            suite: theirs.suite,
            key,
        };
        let keys = SrtpKeys {
            suite: theirs.suite,
            local: ours.key.clone(),
            remote: theirs.key.clone(),
        };
        Some((ours, keys))
    }

    /// The SDP body of our 200: an answer or an offer, for the RTP socket at `rtp`;
    /// `ours` is our SDES attribute when the call uses SRTP ([`Self::sdes`]).
    pub fn local_sdp(
        &self,
        rtp: SocketAddr,
        session_id: u64,
        media: &MediaSettings,
        ours: Option<&CryptoAttr>,
    ) -> String {
        match self {
            MediaPlan::Answer(n) => sdp::answer(n, rtp, session_id, ours),
            MediaPlan::Offer(_) => sdp::offer(
                rtp,
                &media.codecs,
                media.telephone_event_pt,
                media.ptime_ms,
                session_id,
            ),
        }
    }

    /// The call's media session settings; `signalling` is the INVITE's source IP.
    pub fn media_config(
        &self,
        media: &MediaSettings,
        signalling: IpAddr,
        record: bool,
    ) -> MediaConfig {
        let n = self.negotiated();
        MediaConfig {
            codec: n.codec,
            audio_pt: n.audio_pt,
            telephone_event_pt: n.telephone_event_pt,
            ptime_ms: n.ptime_ms,
            remote: n.remote,
            // With no address to send to yet (late offer), the caller's packets say.
            symmetric_rtp: media.symmetric_rtp || n.remote.port() == 0,
            dtmf_mode: media.dtmf_mode,
            inactivity_timeout: media.inactivity_timeout,
            hold_timeout: media.hold_timeout,
            record,
            trust: RtpTrust::from_sources(&media.accept_rtp_from),
            signalling_ip: Some(signalling),
            // An offer on hold from the start (sendonly, inactive, 0.0.0.0).
            peer_receives: n.direction.peer_receives() && !n.remote.ip().is_unspecified(),
        }
    }
}

/// Per-source INVITE rate and live-call counts. See the module docs.
#[derive(Debug, Default)]
pub struct Admission {
    /// INVITEs per source in the current one-second window.
    rate: HashMap<IpAddr, (Instant, u32)>,
    /// Live (admitted, not yet released) calls per source.
    calls: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide on one new INVITE. On `Ok` the call holds a slot of its source's quota
    /// until [`release`](Self::release).
    pub fn admit(
        &mut self,
        now: Instant,
        call: &IncomingCall,
        load: Load,
        limits: &LimitsConfig,
        media: &MediaSettings,
    ) -> Result<MediaPlan, Refusal> {
        self.admit_from(now, call, call.source.ip(), load, limits, media)
    }

    /// [`admit`](Self::admit), counting the per-source limits under `ip` (the
    /// real source behind a proxy, `caller::limit_source`).
    pub fn admit_from(
        &mut self,
        now: Instant,
        call: &IncomingCall,
        ip: IpAddr,
        load: Load,
        limits: &LimitsConfig,
        media: &MediaSettings,
    ) -> Result<MediaPlan, Refusal> {
        if load.draining {
            return Err(Refusal::Draining);
        }
        if load.live_calls >= limits.max_calls {
            return Err(Refusal::Capacity);
        }
        if !self.count_invite(now, ip, limits.invites_per_second_per_source) {
            return Err(Refusal::RateLimited);
        }
        if self.calls.get(&ip).copied().unwrap_or(0) >= limits.max_calls_per_source {
            return Err(Refusal::SourceLimit);
        }
        let plan = plan_media(call, media)?;
        *self.calls.entry(ip).or_default() += 1;
        Ok(plan)
    }

    /// A call admitted from `source` ended (or never started): free its slot.
    pub fn release(&mut self, source: IpAddr) {
        if let Some(n) = self.calls.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.calls.remove(&source);
            }
        }
    }

    /// Live calls admitted from `source`.
    pub fn calls_from(&self, source: IpAddr) -> usize {
        self.calls.get(&source).copied().unwrap_or(0)
    }

    /// Count one INVITE; false when the source is over its rate.
    fn count_invite(&mut self, now: Instant, ip: IpAddr, per_second: u32) -> bool {
        let entry = self.rate.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= RATE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let ok = entry.1 <= per_second;
        if self.rate.len() > RATE_TABLE_SWEEP {
            self.rate
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < RATE_WINDOW);
        }
        ok
    }
}

/// Step 0, before [`Admission::admit`]: may this source send us calls at all?
/// A refused INVITE does not count against the source's rate: it never gets
/// near a quota.
pub fn check_peer(call: &IncomingCall, peers: &TrustedPeers) -> Result<(), Refusal> {
    if peers.admits(call.source.ip()) {
        Ok(())
    } else {
        Err(Refusal::Untrusted)
    }
}

/// SDP offer/answer for a new call (RFC 3264): negotiate an early offer, or prepare
/// our own offer for a late one.
fn plan_media(call: &IncomingCall, media: &MediaSettings) -> Result<MediaPlan, Refusal> {
    match call.offer.as_deref() {
        Some(text) => {
            // The first audio stream the policy lets us answer: a phone that
            // offers SRTP "if it can" lists it twice, `RTP/SAVP` then
            // `RTP/AVP`, and a plain call takes the second. None: the first
            // stream's reason.
            let candidates = sdp::parse_candidates(text).map_err(|_| Refusal::BadSdp)?;
            let mut first = None;
            for offer in &candidates {
                match answerable(offer, call, media) {
                    Ok(n) => return Ok(MediaPlan::Answer(n)),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(first.unwrap_or(Refusal::BadSdp))
        }
        None if media.srtp == SrtpPolicy::Required => Err(Refusal::MediaNotSecure),
        None => {
            let codec = media.codecs[0];
            Ok(MediaPlan::Offer(Negotiated {
                codec,
                audio_pt: codec.static_payload_type(),
                telephone_event_pt: Some(media.telephone_event_pt),
                ptime_ms: media.ptime_ms,
                remote: SocketAddr::new(call.source.ip(), 0),
                savp: false,
                crypto: None,
                direction: sdp::Direction::SendRecv,
                m_lines: vec![sdp::MLine::Audio],
            }))
        }
    }
}

/// The negotiated session for one audio stream of an offer, if this call may
/// answer it: a codec in common, our IP family, and SRTP as the policy and the
/// signalling's transport allow.
fn answerable(
    offer: &sdp::Offer,
    call: &IncomingCall,
    media: &MediaSettings,
) -> Result<Negotiated, Refusal> {
    let mut n = sdp::negotiate(offer, &media.codecs).map_err(|_| Refusal::NoCommonCodec)?;
    let (theirs, ours) = (n.remote.ip(), media.rtp_ip);
    if !theirs.is_unspecified() && !ours.is_unspecified() && theirs.is_ipv4() != ours.is_ipv4() {
        return Err(Refusal::AddressFamily);
    }
    let over_tls = call.transport == Transport::Tls;
    let may = over_tls && media.srtp != SrtpPolicy::Off;
    if !may {
        // Never take (or answer with) a key that crossed the network in clear.
        n.crypto = None;
    }
    let must = n.savp || media.srtp == SrtpPolicy::Required;
    if must && n.crypto.is_none() {
        return Err(Refusal::MediaNotSecure);
    }
    if !offer.proto.is_empty() && offer.proto != sdp::SAVP && offer.proto != sdp::AVP {
        // DTLS-SRTP (`UDP/TLS/RTP/SAVP`), `RTP/SAVPF`...: not ours to answer.
        return Err(Refusal::MediaNotSecure);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::sip::{CallKey, Transport};

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n";
    const G729_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";

    fn incoming(n: u32, source: &str, offer: Option<&str>) -> IncomingCall {
        IncomingCall {
            call: CallKey(format!("c{n}@test")),
            request_uri_user: "reset".into(),
            from_user: "5550100".into(),
            asserted_user: None,
            forwarded_for: None,
            source: source.parse().unwrap(),
            transport: Transport::Udp,
            offer: offer.map(str::to_string),
        }
    }

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_calls: 4,
            max_calls_per_source: 2,
            invites_per_second_per_source: 3,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn refusals_in_order_with_their_status_and_retry_after() {
        let (l, m) = (limits(), MediaSettings::default());
        let t0 = Instant::now();
        let a = "192.0.2.1:5060";
        let idle = Load::default();
        let cases: &[(Load, Option<&str>, Option<Refusal>)] = &[
            (
                Load {
                    draining: true,
                    live_calls: 4,
                },
                Some(OFFER),
                Some(Refusal::Draining),
            ),
            (
                Load {
                    draining: false,
                    live_calls: 4,
                },
                Some(OFFER),
                Some(Refusal::Capacity),
            ),
            (idle, Some(G729_ONLY), Some(Refusal::NoCommonCodec)),
            (idle, Some("not sdp"), Some(Refusal::BadSdp)),
        ];
        for (i, (load, offer, want)) in cases.iter().enumerate() {
            // A fresh table per row, so the rate limit stays out of the way.
            let mut adm = Admission::new();
            let got = adm.admit(t0, &incoming(i as u32, a, *offer), *load, &l, &m);
            assert_eq!(got.err(), *want, "row {i}");
            assert_eq!(adm.calls_from("192.0.2.1".parse().unwrap()), 0, "row {i}");
        }
        assert_eq!(Refusal::Capacity.retry_after(&l), Some(l.retry_after_secs));
        assert_eq!(Refusal::SourceLimit.status(), 503);
        assert_eq!(Refusal::NoCommonCodec.status(), 488);
        assert_eq!(Refusal::BadSdp.retry_after(&l), None);
    }

    #[test]
    fn an_untrusted_source_is_forbidden_without_retry_after() {
        let l = limits();
        let nets: Vec<crate::caller::PeerNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peers = TrustedPeers::new(&nets);
        let inside = incoming(1, "10.9.8.7:5060", Some(OFFER));
        let outside = incoming(2, "192.0.2.1:5060", Some(OFFER));
        assert_eq!(check_peer(&inside, &peers), Ok(()));
        assert_eq!(check_peer(&outside, &peers), Err(Refusal::Untrusted));
        assert_eq!(Refusal::Untrusted.status(), 403);
        assert_eq!(Refusal::Untrusted.retry_after(&l), None);
        // No list: everybody may call.
        assert_eq!(check_peer(&outside, &TrustedPeers::default()), Ok(()));
    }

    #[test]
    fn per_source_calls_are_capped_apart_from_the_rate() {
        let (l, m) = (limits(), MediaSettings::default());
        let t0 = Instant::now();
        let mut adm = Admission::new();
        let load = Load::default();
        let a = "192.0.2.1:5060";
        assert!(adm
            .admit(t0, &incoming(1, a, Some(OFFER)), load, &l, &m)
            .is_ok());
        assert!(adm.admit(t0, &incoming(2, a, None), load, &l, &m).is_ok());
        // A third live call from the same address: over its call quota.
        let third = adm.admit(t0, &incoming(3, a, Some(OFFER)), load, &l, &m);
        assert_eq!(third.err(), Some(Refusal::SourceLimit));
        // Another address is not affected.
        let b = "192.0.2.2:5060";
        assert!(adm
            .admit(t0, &incoming(4, b, Some(OFFER)), load, &l, &m)
            .is_ok());
        // One call ends: a slot is free again, but this window's rate is used up
        // (three INVITEs already counted), so the next one second later.
        adm.release("192.0.2.1".parse().unwrap());
        let fourth = adm.admit(t0, &incoming(5, a, Some(OFFER)), load, &l, &m);
        assert_eq!(fourth.err(), Some(Refusal::RateLimited));
        let later = t0 + Duration::from_secs(1);
        assert!(adm
            .admit(later, &incoming(6, a, Some(OFFER)), load, &l, &m)
            .is_ok());
        assert_eq!(adm.calls_from("192.0.2.1".parse().unwrap()), 2);
        adm.release("192.0.2.1".parse().unwrap());
        adm.release("192.0.2.1".parse().unwrap());
        adm.release("192.0.2.1".parse().unwrap());
        assert_eq!(adm.calls_from("192.0.2.1".parse().unwrap()), 0);
    }

    #[test]
    fn rate_counts_every_invite_per_one_second_window() {
        let (mut l, m) = (limits(), MediaSettings::default());
        l.max_calls_per_source = 100;
        l.max_calls = 100;
        let t0 = Instant::now();
        let mut adm = Admission::new();
        let load = Load::default();
        let a = "192.0.2.1:5060";
        // Refused offers count against the rate too.
        for i in 0..3 {
            let _ = adm.admit(t0, &incoming(i, a, Some(G729_ONLY)), load, &l, &m);
        }
        let over = adm.admit(
            t0 + Duration::from_millis(999),
            &incoming(9, a, None),
            load,
            &l,
            &m,
        );
        assert_eq!(over.err(), Some(Refusal::RateLimited));
        let next = adm.admit(
            t0 + Duration::from_secs(1),
            &incoming(10, a, None),
            load,
            &l,
            &m,
        );
        assert!(next.is_ok());
    }

    /// An offer whose media is of the other IP family than ours gets a `488`
    /// at once, not an answer and a silent call; a hold address of either
    /// family (`0.0.0.0`, `::`) is answered.
    #[test]
    fn an_offer_from_the_other_ip_family_is_refused() {
        let v6 = OFFER.replace("IN IP4 192.0.2.7", "IN IP6 2001:db8::7");
        let hold6 = OFFER.replace("IN IP4 192.0.2.7", "IN IP6 ::");
        let v4_media = MediaSettings::default();
        let v6_media = MediaSettings {
            rtp_ip: "::1".parse().unwrap(),
            ..MediaSettings::default()
        };
        let plan = |offer: &str, m: &MediaSettings| {
            plan_media(&incoming(1, "192.0.2.1:5060", Some(offer)), m).map(|_| ())
        };
        assert_eq!(plan(&v6, &v4_media), Err(Refusal::AddressFamily));
        assert_eq!(plan(OFFER, &v6_media), Err(Refusal::AddressFamily));
        assert_eq!(Refusal::AddressFamily.status(), 488);
        assert_eq!(Refusal::AddressFamily.retry_after(&limits()), None);
        assert_eq!(Refusal::AddressFamily.warning().map(|w| w.code), Some(301));
        assert_eq!(Refusal::Capacity.warning(), None);
        assert_eq!(plan(OFFER, &v4_media), Ok(()));
        assert_eq!(plan(&v6, &v6_media), Ok(()));
        assert_eq!(plan(&hold6, &v4_media), Ok(()));
    }

    #[test]
    fn early_offer_is_answered_with_the_offers_payload_types() {
        let m = MediaSettings::default();
        let plan = plan_media(&incoming(1, "192.0.2.1:5060", Some(OFFER)), &m).unwrap();
        let MediaPlan::Answer(n) = &plan else {
            panic!("early offer gives an answer: {plan:?}");
        };
        // Our preference (PCMU first) wins over the offer's order; numbers mirrored.
        assert_eq!((n.codec, n.audio_pt), (Codec::Pcmu, 0));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.ptime_ms, 30);
        assert_eq!(n.remote, "192.0.2.7:30000".parse().unwrap());
        let rtp: SocketAddr = "127.0.0.1:20002".parse().unwrap();
        let body = plan.local_sdp(rtp, 42, &m, None);
        assert!(body.contains("m=audio 20002 RTP/AVP 0 101\r\n"), "{body}");
        assert!(body.contains("a=ptime:30\r\n"), "{body}");
        let cfg = plan.media_config(&m, "192.0.2.1".parse().unwrap(), true);
        assert_eq!(cfg.remote, n.remote);
        assert!(cfg.record);
        // By default the caller's RTP may come from its SDP or its signalling IP.
        assert_eq!(cfg.signalling_ip, Some("192.0.2.1".parse().unwrap()));
        assert!(cfg.trust.sdp && cfg.trust.signalling && !cfg.trust.any);
        assert!(
            body.contains("a=sendrecv\r\n") && cfg.peer_receives,
            "{body}"
        );
    }

    /// An offer that starts on hold is answered as RFC 3264 §6.1 asks, and its
    /// call sends nothing until a new offer takes it back (before, every
    /// answer said `sendrecv`, and a `0.0.0.0` offer was sent packets).
    #[test]
    fn an_offer_on_hold_is_answered_so_and_its_call_does_not_send() {
        let m = MediaSettings::default();
        let rtp: SocketAddr = "127.0.0.1:20002".parse().unwrap();
        let cases = [
            (
                OFFER.replace("a=ptime:30", "a=ptime:30\r\na=sendonly"),
                "recvonly",
                false,
            ),
            (
                OFFER.replace("a=ptime:30", "a=ptime:30\r\na=inactive"),
                "inactive",
                false,
            ),
            (
                OFFER.replace("a=ptime:30", "a=ptime:30\r\na=recvonly"),
                "sendonly",
                true,
            ),
            (
                OFFER.replace("IN IP4 192.0.2.7", "IN IP4 0.0.0.0"),
                "sendrecv",
                false,
            ),
        ];
        for (offer, answer, receives) in cases {
            let plan = plan_media(&incoming(1, "192.0.2.1:5060", Some(&offer)), &m).unwrap();
            let body = plan.local_sdp(rtp, 42, &m, None);
            assert!(body.contains(&format!("a={answer}\r\n")), "{offer}\n{body}");
            let cfg = plan.media_config(&m, "192.0.2.1".parse().unwrap(), false);
            assert_eq!(cfg.peer_receives, receives, "{offer}");
        }
    }

    #[test]
    fn late_offer_offers_our_codecs_and_latches_to_the_caller() {
        let m = MediaSettings {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            symmetric_rtp: false,
            ..MediaSettings::default()
        };
        let plan = plan_media(&incoming(1, "192.0.2.1:5070", None), &m).unwrap();
        let MediaPlan::Offer(n) = &plan else {
            panic!("late offer gives an offer: {plan:?}");
        };
        assert_eq!((n.codec, n.audio_pt), (Codec::Pcma, 8));
        assert_eq!(n.remote, "192.0.2.1:0".parse().unwrap());
        let body = plan.local_sdp("127.0.0.1:20004".parse().unwrap(), 7, &m, None);
        assert!(body.contains("m=audio 20004 RTP/AVP 8 0 101\r\n"), "{body}");
        // No address to send to until the caller's packets (or the ACK) say.
        assert!(
            plan.media_config(&m, "192.0.2.1".parse().unwrap(), false)
                .symmetric_rtp
        );
    }

    #[test]
    fn sdes_keys_only_over_tls_and_as_the_policy_says() {
        const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let savp = format!("v=0\r\nc=IN IP4 192.0.2.7\r\nm=audio 30000 RTP/SAVP 0\r\na=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n");
        let best_effort = savp.replace("RTP/SAVP", "RTP/AVP");
        let dtls = savp.replace("RTP/SAVP", "UDP/TLS/RTP/SAVP");
        // SRTP "if you can": the stream twice, `RTP/SAVP` first.
        let either =
            format!("{savp}m=audio 30002 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
        use SrtpPolicy::*;
        // (policy, transport, offer) → SRTP used, or the refusal.
        type Case<'a> = (
            SrtpPolicy,
            Transport,
            Option<&'a str>,
            Result<bool, Refusal>,
        );
        let cases: &[Case] = &[
            (Optional, Transport::Tls, Some(&savp), Ok(true)),
            (Optional, Transport::Tls, Some(&best_effort), Ok(true)),
            (Optional, Transport::Tls, Some(OFFER), Ok(false)),
            (
                Optional,
                Transport::Udp,
                Some(&savp),
                Err(Refusal::MediaNotSecure),
            ),
            (Optional, Transport::Tcp, Some(&best_effort), Ok(false)),
            (
                Optional,
                Transport::Tls,
                Some(&dtls),
                Err(Refusal::MediaNotSecure),
            ),
            (Optional, Transport::Tls, None, Ok(false)),
            (Required, Transport::Tls, Some(&savp), Ok(true)),
            (Required, Transport::Tls, Some(&best_effort), Ok(true)),
            (
                Required,
                Transport::Tls,
                Some(OFFER),
                Err(Refusal::MediaNotSecure),
            ),
            (
                Required,
                Transport::Udp,
                Some(&savp),
                Err(Refusal::MediaNotSecure),
            ),
            (Required, Transport::Tls, None, Err(Refusal::MediaNotSecure)),
            (
                Off,
                Transport::Tls,
                Some(&savp),
                Err(Refusal::MediaNotSecure),
            ),
            (Off, Transport::Tls, Some(&best_effort), Ok(false)),
            (Optional, Transport::Tls, Some(&either), Ok(true)),
            (Optional, Transport::Udp, Some(&either), Ok(false)),
            (Off, Transport::Tls, Some(&either), Ok(false)),
            (Required, Transport::Tls, Some(&either), Ok(true)),
            (
                Required,
                Transport::Udp,
                Some(&either),
                Err(Refusal::MediaNotSecure),
            ),
        ];
        for (i, (policy, transport, offer, want)) in cases.iter().enumerate() {
            let m = MediaSettings {
                srtp: *policy,
                ..MediaSettings::default()
            };
            let mut call = incoming(1, "192.0.2.1:5061", *offer);
            call.transport = *transport;
            let got = plan_media(&call, &m).map(|p| p.is_srtp());
            assert_eq!(got, *want, "row {i}");
        }
        assert_eq!(Refusal::MediaNotSecure.status(), 488);
        // The answer carries our key, not the caller's, in the offer's profile.
        let mut call = incoming(1, "192.0.2.1:5061", Some(&savp));
        call.transport = Transport::Tls;
        let plan = plan_media(&call, &MediaSettings::default()).unwrap();
        let (ours, keys) = plan
            .sdes(MasterKey::generate(&mut rand::rngs::OsRng))
            .unwrap();
        assert_eq!(keys.local, ours.key);
        assert_ne!(keys.local, keys.remote);
        let body = plan.local_sdp(
            "127.0.0.1:20002".parse().unwrap(),
            1,
            &MediaSettings::default(),
            Some(&ours),
        );
        assert!(body.contains("m=audio 20002 RTP/SAVP 0\r\n"), "{body}");
        assert!(body.contains("a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(!body.contains(KEY));

        // The two-line offer over clear signalling: answered on its plain
        // line, the SRTP one declined in its place.
        let plan = plan_media(
            &incoming(2, "192.0.2.1:5060", Some(&either)),
            &MediaSettings::default(),
        )
        .unwrap();
        assert_eq!(plan.negotiated().remote.port(), 30002);
        let body = plan.local_sdp(
            "127.0.0.1:20004".parse().unwrap(),
            1,
            &MediaSettings::default(),
            None,
        );
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            lines,
            ["m=audio 0 RTP/SAVP 0", "m=audio 20004 RTP/AVP 0 101"]
        );
        assert!(!body.contains("a=crypto"), "{body}");
        // Over TLS: the SRTP line, the plain one declined.
        let mut call = incoming(3, "192.0.2.1:5061", Some(&either));
        call.transport = Transport::Tls;
        let plan = plan_media(&call, &MediaSettings::default()).unwrap();
        let (ours, _) = plan
            .sdes(MasterKey::generate(&mut rand::rngs::OsRng))
            .unwrap();
        let body = plan.local_sdp(
            "127.0.0.1:20006".parse().unwrap(),
            1,
            &MediaSettings::default(),
            Some(&ours),
        );
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(lines, ["m=audio 20006 RTP/SAVP 0", "m=audio 0 RTP/AVP 0"]);
    }
}
