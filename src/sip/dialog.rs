//! Dialog state (RFC 3261 §12) and in-dialog request construction.
//!
//! A dialog is identified by Call-ID plus local and remote tags; the local tag is
//! random. The route set is the Record-Route list of the dialog-creating request — in
//! order for a UAS (§12.1.1), reversed for a UAC (§12.1.2) — and the remote target is
//! the peer's Contact. Requests we send go to the route set's first hop when it is an
//! IP literal; otherwise, with symmetric signalling (the default), to the address the
//! dialog-creating message came from; otherwise to the Contact if it is an IP literal,
//! and as a last resort to the source again. No DNS is ever used. Only loose routing
//! (`;lr`) is supported: Route headers are sent as is and the Request-URI is the
//! remote target.

use std::net::SocketAddr;

use super::message::{
    hostport_addr, split_list, uri_hostport, Header, Message, NameAddr, StartLine,
};
use super::Transport;

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From/To value, with our tag.
    pub local_party: String,
    /// The peer's From/To value, with its tag.
    pub remote_party: String,
    /// The peer's Contact URI (Request-URI of our requests).
    pub remote_target: Option<String>,
    /// Route header values (URI in `<>` with params), in the order we send them.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Highest CSeq seen from the peer.
    pub remote_cseq: u32,
    /// Where the dialog-creating message came from.
    pub source: SocketAddr,
    pub transport: Transport,
    /// The dialog-creating request reached us over TLS with a SIPS Request-URI
    /// (or a SIPS top Record-Route): our Contact must be a SIPS URI too
    /// (RFC 3261 §12.1.1, RFC 5630 §4.1).
    pub secure: bool,
}

impl Dialog {
    /// Whether a dialog created by `msg` (the INVITE we received or sent) over
    /// `transport` is a SIPS dialog: TLS, and a SIPS Request-URI or top
    /// Record-Route (RFC 3261 §12.1.1).
    pub fn is_secure(msg: &Message, transport: Transport) -> bool {
        if transport != Transport::Tls {
            return false;
        }
        let sips = |uri: &str| {
            uri.trim_start()
                .trim_start_matches('<')
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        };
        let request_uri = match &msg.start {
            StartLine::Request { uri, .. } => sips(uri),
            _ => false,
        };
        let top_record_route = msg
            .headers_named("Record-Route")
            .flat_map(split_list)
            .next()
            .and_then(|v| NameAddr::parse(&v).map(|n| sips(&n.uri)))
            .unwrap_or(false);
        request_uri || top_record_route
    }

    /// Our Contact in this dialog, at `local` (our address on the dialog's transport).
    pub fn contact(&self, user: &str, local: SocketAddr) -> String {
        if self.secure {
            format!("<sips:{user}@{local}>")
        } else {
            contact_value(user, local, self.transport)
        }
    }

    /// Route set from Record-Route values of a message (split on commas).
    pub fn route_set_from(msg: &Message, reverse: bool) -> Vec<String> {
        let mut set: Vec<String> = msg
            .headers_named("Record-Route")
            .flat_map(split_list)
            .filter(|v| !v.is_empty())
            .collect();
        if reverse {
            set.reverse();
        }
        set
    }

    /// Where requests in this dialog go (see the module docs).
    pub fn destination(&self, symmetric: bool) -> SocketAddr {
        if let Some(first) = self.route_set.first() {
            if let Some(addr) = NameAddr::parse(first)
                .and_then(|n| uri_hostport(&n.uri).map(str::to_string))
                .and_then(|hp| hostport_addr(&hp))
            {
                return addr;
            }
        }
        if symmetric {
            return self.source;
        }
        self.remote_target
            .as_deref()
            .and_then(uri_hostport)
            .and_then(hostport_addr)
            .unwrap_or(self.source)
    }

    /// Build an in-dialog request with this (new) branch. Increments the local
    /// CSeq unless `cseq` is given (ACK and CANCEL reuse the INVITE's).
    pub fn request(
        &mut self,
        method: &str,
        branch: String,
        local: SocketAddr,
        user_agent: &str,
        cseq: Option<u32>,
        extra: Vec<Header>,
    ) -> (Message, String) {
        let cseq = match cseq {
            Some(c) => c,
            None => {
                self.local_cseq = self.local_cseq.wrapping_add(1) & 0x7fff_ffff;
                self.local_cseq
            }
        };
        let uri = self
            .remote_target
            .clone()
            .or_else(|| NameAddr::parse(&self.remote_party).map(|n| n.uri))
            .unwrap_or_else(|| format!("sip:{}", self.source));
        let mut headers = vec![
            Header::new(
                "Via",
                format!(
                    "SIP/2.0/{} {local};branch={branch};rport",
                    self.transport.via_name()
                ),
            ),
            Header::new("Max-Forwards", "70"),
            Header::new("From", self.local_party.clone()),
            Header::new("To", self.remote_party.clone()),
            Header::new("Call-ID", self.call_id.clone()),
            Header::new("CSeq", format!("{cseq} {method}")),
        ];
        for r in &self.route_set {
            headers.push(Header::new("Route", r.clone()));
        }
        headers.extend(extra);
        headers.push(Header::new("User-Agent", user_agent));
        (
            Message {
                start: StartLine::Request {
                    method: method.to_string(),
                    uri,
                    version: "SIP/2.0".to_string(),
                },
                headers,
                body: Vec::new(),
            },
            branch,
        )
    }
}

/// Our Contact value.
pub fn contact_value(user: &str, local: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:{user}@{local}>"),
        Transport::Tcp => format!("<sip:{user}@{local};transport=tcp>"),
        Transport::Tls => format!("<sip:{user}@{local};transport=tls>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog(route: &[&str], contact: Option<&str>) -> Dialog {
        Dialog {
            call_id: "c".into(),
            local_tag: "l".into(),
            remote_tag: "r".into(),
            local_party: "<sip:ivr@127.0.0.1>;tag=l".into(),
            remote_party: "<sip:alice@127.0.0.1>;tag=r".into(),
            remote_target: contact.map(str::to_string),
            route_set: route.iter().map(|s| s.to_string()).collect(),
            local_cseq: 0,
            remote_cseq: 1,
            source: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            secure: false,
        }
    }

    #[test]
    fn sips_dialogs() {
        let msg = |ruri: &str, rr: Option<&str>| {
            let mut headers = Vec::new();
            if let Some(rr) = rr {
                headers.push(Header::new("Record-Route", rr));
            }
            Message {
                start: StartLine::Request {
                    method: "INVITE".into(),
                    uri: ruri.into(),
                    version: "SIP/2.0".into(),
                },
                headers,
                body: Vec::new(),
            }
        };
        let cases = [
            ("sips:ivr@h", None, Transport::Tls, true),
            ("SIPS:ivr@h", None, Transport::Tls, true),
            ("sip:ivr@h;transport=tls", None, Transport::Tls, false),
            (
                "sip:ivr@h;transport=tls",
                Some("<sips:p1;lr>, <sip:p2;lr>"),
                Transport::Tls,
                true,
            ),
            (
                "sip:ivr@h;transport=tls",
                Some("<sip:p1;lr>, <sips:p2;lr>"),
                Transport::Tls,
                false,
            ),
            // Never over a transport that is not TLS.
            ("sips:ivr@h", None, Transport::Tcp, false),
        ];
        for (ruri, rr, transport, want) in cases {
            assert_eq!(
                Dialog::is_secure(&msg(ruri, rr), transport),
                want,
                "{ruri} {rr:?} {transport:?}"
            );
        }
        let mut d = dialog(&[], None);
        let local = "127.0.0.1:5061".parse().unwrap();
        d.transport = Transport::Tls;
        assert_eq!(
            d.contact("ivr", local),
            "<sip:ivr@127.0.0.1:5061;transport=tls>"
        );
        d.secure = true;
        assert_eq!(d.contact("ivr", local), "<sips:ivr@127.0.0.1:5061>");
    }

    #[test]
    fn destination_rules() {
        let cases: &[(&[&str], Option<&str>, bool, &str)] = &[
            // IP first hop wins, symmetric or not.
            (
                &["<sip:127.0.0.2:5080;lr>"],
                Some("sip:a@127.0.0.3:5090"),
                true,
                "127.0.0.2:5080",
            ),
            (&["<sip:127.0.0.2;lr>"], None, false, "127.0.0.2:5060"),
            // A hostname first hop is never resolved.
            (
                &["<sip:proxy.example.com;lr>"],
                Some("sip:a@127.0.0.3:5090"),
                true,
                "127.0.0.1:5070",
            ),
            // Symmetric: the source, not the Contact.
            (&[], Some("sip:a@127.0.0.3:5090"), true, "127.0.0.1:5070"),
            // Not symmetric: the Contact if it is an IP literal, else the source.
            (&[], Some("sip:a@127.0.0.3:5090"), false, "127.0.0.3:5090"),
            (&[], Some("sip:a@host.example.com"), false, "127.0.0.1:5070"),
            (&[], None, false, "127.0.0.1:5070"),
        ];
        for (route, contact, sym, want) in cases {
            let d = dialog(route, *contact);
            assert_eq!(
                d.destination(*sym),
                want.parse().unwrap(),
                "{route:?} {contact:?} {sym}"
            );
        }
    }

    #[test]
    fn in_dialog_request_headers() {
        let mut d = dialog(
            &["<sip:127.0.0.2:5080;lr>", "<sip:p2.example.com;lr>"],
            Some("sip:a@127.0.0.3"),
        );
        let mut rng = super::super::TokenRng::seeded(1);
        let (m, branch) = d.request(
            "BYE",
            rng.branch(),
            "127.0.0.1:5060".parse().unwrap(),
            "ua",
            None,
            vec![],
        );
        assert!(branch.starts_with("z9hG4bK"));
        assert!(m.header("Via").unwrap().contains(&branch));
        assert_eq!(m.header("CSeq"), Some("1 BYE"));
        assert_eq!(
            m.headers_named("Route").collect::<Vec<_>>(),
            ["<sip:127.0.0.2:5080;lr>", "<sip:p2.example.com;lr>"]
        );
        assert!(matches!(&m.start, StartLine::Request { uri, .. } if uri == "sip:a@127.0.0.3"));
        let (m2, _) = d.request(
            "REFER",
            rng.branch(),
            "127.0.0.1:5060".parse().unwrap(),
            "ua",
            None,
            vec![],
        );
        assert_eq!(m2.header("CSeq"), Some("2 REFER"));
    }
}
