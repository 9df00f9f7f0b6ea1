//! Who is calling, sans-IO: which signalling peers may send us requests, which
//! number is the caller's (the ANI), and what a withheld number means for the
//! per-caller attempt limit.
//!
//! - `sip.trusted_peers` lists the addresses and networks of the proxies (SBC,
//!   trunk) that send us calls. Empty (the default) lets anybody call, as before
//!   the key existed, but then nobody is trusted to assert an identity.
//! - The ANI is the `P-Asserted-Identity` user (RFC 3325; else `Remote-Party-ID`)
//!   only when the INVITE comes from a listed peer; otherwise the From user, which
//!   any caller can write, so it must never be the only thing that proves who calls.
//! - A withheld number (`anonymous`, `withheld`, `restricted`, … or empty) is not
//!   an identity: with `security.withheld_callers: per_call` (the default) each
//!   such call gets its own per-caller budget instead of all of them sharing one,
//!   so one abusive anonymous caller cannot lock out every other; the per-account
//!   budget still applies. `routes.withheld` can send them to a flow of their own
//!   (e.g. straight to an agent).
//! - `sip.proxies` lists the proxies in front (Kamailio's dispatcher): every
//!   INVITE from one of them carries the real source in `X-Forwarded-For`, and
//!   [`limit_source`] counts the per-source limits under it, so they stay per
//!   caller instead of becoming one global limit on the proxy's address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::sip::{CallKey, IncomingCall};

/// One `sip.trusted_peers` entry: an address (`192.0.2.7`, `::1`) or a network
/// (`10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerNet(pub IpNet);

impl FromStr for PeerNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(PeerNet(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| PeerNet(IpNet::from(ip)))
            .map_err(|_| {
                format!(
                    "{s:?} is not an IP address or a network (write e.g. `192.0.2.7` or \
                     `10.0.0.0/8`)"
                )
            })
    }
}

impl<'de> Deserialize<'de> for PeerNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a request from a peer not in `sip.trusted_peers` gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntrustedAnswer {
    /// An INVITE is answered `403 Forbidden` (other requests as usual: OPTIONS
    /// 200, a BYE outside a dialog 481); no call starts.
    #[default]
    Reject,
    /// Every request is dropped unanswered, before it is parsed: a scanner
    /// learns nothing, not even that something listens.
    Drop,
}

/// How a withheld caller number counts against `security.attempts_per_ani_per_hour`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithheldPolicy {
    /// Each call with a withheld number is its own caller.
    #[default]
    PerCall,
    /// All calls with a withheld number share one budget (under the number as
    /// given, e.g. `anonymous`).
    Shared,
}

/// The peers allowed to send us calls, and trusted to assert an identity
/// (`sip.trusted_peers`: a list of [`PeerNet`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct TrustedPeers {
    nets: Vec<PeerNet>,
}

impl TrustedPeers {
    pub fn new(nets: &[PeerNet]) -> Self {
        TrustedPeers {
            nets: nets.to_vec(),
        }
    }

    /// May `ip` send us requests? With no list, everybody may.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.nets.is_empty() || self.lists(ip)
    }

    /// Is `ip` a listed peer, whose `P-Asserted-Identity` we believe?
    pub fn lists(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.0.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 source (`::ffff:192.0.2.7`, a dual-stack socket) is the
/// IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Where the ANI came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AniSource {
    /// `P-Asserted-Identity` or `Remote-Party-ID` of a trusted peer.
    Asserted,
    /// The From user.
    From,
}

impl AniSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AniSource::Asserted => "asserted",
            AniSource::From => "from",
        }
    }
}

/// The caller, as far as this server can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerId {
    pub ani: String,
    pub source: AniSource,
    /// No number: `anonymous`, `withheld`, … or empty.
    pub withheld: bool,
}

/// The caller of a new INVITE. See the module docs.
pub fn identify(call: &IncomingCall, peers: &TrustedPeers) -> CallerId {
    let asserted = call
        .asserted_user
        .as_deref()
        .filter(|_| peers.lists(call.source.ip()));
    let (ani, source) = match asserted {
        Some(user) => (user.to_string(), AniSource::Asserted),
        None => (call.from_user.clone(), AniSource::From),
    };
    CallerId {
        withheld: is_withheld(&ani),
        ani,
        source,
    }
}

/// The address an INVITE counts under for the per-source limits: the one in its
/// `X-Forwarded-For` header when it came from one of `sip.proxies` (the proxy
/// saw the real source; it is not one caller), else its own source address.
/// From anyone else the header is ignored: a caller could write any address.
pub fn limit_source(call: &IncomingCall, proxies: &TrustedPeers) -> IpAddr {
    match call.forwarded_for {
        Some(real) if proxies.lists(call.source.ip()) => canonical(real),
        _ => canonical(call.source.ip()),
    }
}

/// The user parts carriers and phones write for a number they do not give.
const WITHHELD: &[&str] = &[
    "anonymous",
    "withheld",
    "restricted",
    "private",
    "unknown",
    "unavailable",
];

/// Is this "number" a way of saying there is none?
pub fn is_withheld(user: &str) -> bool {
    let u = user.trim();
    u.is_empty() || WITHHELD.iter().any(|w| u.eq_ignore_ascii_case(w))
}

impl CallerId {
    /// The key this call's attempts count under in the per-caller limit.
    pub fn limit_key(&self, call: &CallKey, policy: WithheldPolicy) -> String {
        match (self.withheld, policy) {
            (true, WithheldPolicy::PerCall) => format!("withheld call {}", call.0),
            _ => self.ani.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{self, asserted_user, Datagram};
    use crate::sip::Transport;

    fn peers(list: &[&str]) -> TrustedPeers {
        let nets: Vec<PeerNet> = list.iter().map(|s| s.parse().unwrap()).collect();
        TrustedPeers::new(&nets)
    }

    fn invite(source: &str, from_user: &str, asserted: Option<&str>) -> IncomingCall {
        IncomingCall {
            call: CallKey("c1@test".into()),
            request_uri_user: "reset".into(),
            from_user: from_user.into(),
            asserted_user: asserted.map(str::to_string),
            forwarded_for: None,
            source: source.parse().unwrap(),
            transport: Transport::Udp,
            offer: None,
        }
    }

    #[test]
    fn peer_entries_parse_addresses_and_networks_and_name_bad_ones() {
        let p = peers(&["192.0.2.7", "10.1.0.0/16", "2001:db8::/32", " ::1 "]);
        for (ip, listed) in [
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("10.1.255.3", true),
            ("10.2.0.1", false),
            ("2001:db8::5", true),
            ("::1", true),
            ("::ffff:192.0.2.7", true),
            ("::ffff:192.0.2.9", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(p.lists(ip), listed, "{ip}");
            assert_eq!(p.admits(ip), listed, "{ip}");
        }
        // Host bits of a network entry are ignored, as routers do.
        assert_eq!(
            "10.1.2.3/16".parse::<PeerNet>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        for bad in ["10.0.0.0/33", "example.net", "", "10.0.0"] {
            let err = bad.parse::<PeerNet>().unwrap_err();
            assert!(err.contains("not an IP address"), "{bad}: {err}");
        }
    }

    #[test]
    fn no_list_admits_everybody_and_trusts_nobody() {
        let p = TrustedPeers::default();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(p.admits(ip));
        assert!(!p.lists(ip));
        let c = identify(
            &invite("203.0.113.9:5060", "5550100", Some("+15559999")),
            &p,
        );
        assert_eq!((c.ani.as_str(), c.source), ("5550100", AniSource::From));
    }

    #[test]
    fn the_asserted_identity_counts_only_from_a_trusted_peer() {
        let p = peers(&["127.0.0.1"]);
        let rows = [
            // (source, From user, asserted, ANI, source, withheld)
            (
                "127.0.0.1:5060",
                "5550100",
                Some("+15550100199"),
                "+15550100199",
                AniSource::Asserted,
                false,
            ),
            (
                "127.0.0.2:5060",
                "5550100",
                Some("+15550100199"),
                "5550100",
                AniSource::From,
                false,
            ),
            // A trusted peer without an assertion: the From user.
            (
                "127.0.0.1:5060",
                "5550100",
                None,
                "5550100",
                AniSource::From,
                false,
            ),
            // Privacy: From anonymous, the network still asserts the number.
            (
                "127.0.0.1:5060",
                "anonymous",
                Some("+15550100199"),
                "+15550100199",
                AniSource::Asserted,
                false,
            ),
            // An untrusted caller cannot undo a withheld From by asserting.
            (
                "127.0.0.2:5060",
                "Anonymous",
                Some("+15550100199"),
                "Anonymous",
                AniSource::From,
                true,
            ),
            ("127.0.0.2:5060", "", None, "", AniSource::From, true),
            (
                "127.0.0.1:5060",
                "5550100",
                Some("withheld"),
                "withheld",
                AniSource::Asserted,
                true,
            ),
        ];
        for (i, (src, from, asserted, ani, source, withheld)) in rows.into_iter().enumerate() {
            let c = identify(&invite(src, from, asserted), &p);
            assert_eq!(
                (c.ani.as_str(), c.source, c.withheld),
                (ani, source, withheld),
                "row {i}"
            );
        }
    }

    #[test]
    fn withheld_callers_get_a_bucket_per_call_unless_shared() {
        let anon = CallerId {
            ani: "anonymous".into(),
            source: AniSource::From,
            withheld: true,
        };
        let (a, b) = (CallKey("a@x".into()), CallKey("b@x".into()));
        let per_call = WithheldPolicy::PerCall;
        assert_ne!(anon.limit_key(&a, per_call), anon.limit_key(&b, per_call));
        let shared = WithheldPolicy::Shared;
        assert_eq!(anon.limit_key(&a, shared), "anonymous");
        assert_eq!(anon.limit_key(&b, shared), "anonymous");
        // A real number is one caller whatever the policy.
        let known = CallerId {
            ani: "+15550100199".into(),
            source: AniSource::Asserted,
            withheld: false,
        };
        assert_eq!(known.limit_key(&a, per_call), "+15550100199");
        assert_eq!(known.limit_key(&b, per_call), "+15550100199");
        for w in [
            "anonymous",
            "ANONYMOUS",
            "Withheld",
            "restricted",
            " ",
            "unknown",
        ] {
            assert!(is_withheld(w), "{w:?}");
        }
        for n in ["+15550100199", "5550100", "anon"] {
            assert!(!is_withheld(n), "{n:?}");
        }
    }

    fn request(headers: &str) -> message::Message {
        let text = format!(
            "INVITE sip:reset@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
             From: <sip:anonymous@anonymous.invalid>;tag=1\r\nTo: <sip:reset@127.0.0.1>\r\n\
             Call-ID: pai@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()).unwrap() {
            Datagram::Message(p) => p.message,
            other => panic!("not a message: {other:?}"),
        }
    }

    /// Behind Kamailio every INVITE comes from the proxy: its `X-Forwarded-For`
    /// counts, but only from a listed proxy.
    #[test]
    fn limit_source_believes_forwarded_for_only_from_a_proxy() {
        let proxies = peers(&["10.0.0.5"]);
        // (headers, INVITE source, counted under)
        let rows = [
            (
                "X-Forwarded-For: 203.0.113.9\r\n",
                "10.0.0.5:5060",
                "203.0.113.9",
            ),
            ("", "10.0.0.5:5060", "10.0.0.5"),
            // A caller writing the header itself gains nothing.
            (
                "X-Forwarded-For: 198.51.100.1\r\n",
                "203.0.113.9:5060",
                "203.0.113.9",
            ),
            // Several hops: the address the nearest proxy (ours) wrote, last.
            (
                "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 192.0.2.1, 203.0.113.7\r\n",
                "10.0.0.5:5060",
                "203.0.113.7",
            ),
            (
                "X-Forwarded-For: [2001:db8::7]\r\n",
                "10.0.0.5:5060",
                "2001:db8::7",
            ),
            // Not an address: the proxy's own.
            ("X-Forwarded-For: unknown\r\n", "10.0.0.5:5060", "10.0.0.5"),
        ];
        for (headers, source, want) in rows {
            let mut call = invite(source, "5550100", None);
            call.forwarded_for = message::forwarded_for(&request(headers));
            let want: IpAddr = want.parse().unwrap();
            assert_eq!(
                limit_source(&call, &proxies),
                want,
                "{headers:?} from {source}"
            );
            assert_eq!(
                limit_source(&call, &TrustedPeers::default()),
                call.source.ip(),
                "no proxies: never believed"
            );
        }
    }

    #[test]
    fn asserted_user_reads_pai_then_rpid() {
        let rows = [
            ("", None),
            (
                "P-Asserted-Identity: \"Alice\" <sip:+15550100199@carrier.example;user=phone>\r\n",
                Some("+15550100199"),
            ),
            // A list: the first value with a user part (RFC 3325 allows sip + tel).
            (
                "P-Asserted-Identity: <sip:carrier.example>, <tel:+15550100188;npdi>\r\n",
                Some("+15550100188"),
            ),
            (
                "Remote-Party-ID: <sip:5550100177@gw.example>;party=calling;privacy=full\r\n",
                Some("5550100177"),
            ),
            // PAI wins over RPID.
            (
                "Remote-Party-ID: <sip:5550100177@gw.example>;party=calling\r\n\
                 P-Asserted-Identity: <sip:5550100166@gw.example>\r\n",
                Some("5550100166"),
            ),
            // Garbage is ignored, not trusted.
            ("P-Asserted-Identity: <sip:unterminated\r\n", None),
        ];
        for (headers, want) in rows {
            assert_eq!(
                asserted_user(&request(headers)).as_deref(),
                want,
                "{headers:?}"
            );
        }
    }
}
