//! Request validation: which status a UAS owes a request before any transaction or
//! dialog logic sees it (RFC 3261 §8.2, RFC 4475 §3).
//!
//! Order of checks: SIP version (505); structure — mandatory headers present exactly
//! once, Content-Length, CSeq range, Via, From/To syntax, Request-URI (400); CSeq method = request method (400, or 501
//! for an unknown method); unknown method (501) or one we do not serve (405);
//! Request-URI scheme other than sip/sips/tel (416); `Require` option tags other
//! than `timer` (RFC 4028, [`super::SUPPORTED`]) (420); an INVITE or UPDATE body that is not SDP (415); an INVITE whose Accept
//! excludes SDP (406). Max-Forwards is checked for syntax only: an endpoint processes
//! `Max-Forwards: 0` normally (RFC 4475 §3.3.11).

use super::message::{parse_cseq, Header, Message, NameAddr, StartLine, Via};
use super::{ACCEPT, ALLOW, SUPPORTED};

/// Methods answered with 405 and Allow: known SIP methods this endpoint does not serve.
const NOT_SERVED: &[&str] = &["REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"];
/// Methods this endpoint serves.
const SERVED: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REFER", "NOTIFY",
];

/// The typed view of a valid request.
#[derive(Clone, Debug)]
pub struct Request {
    pub msg: Message,
    pub method: String,
    pub uri: String,
    pub call_id: String,
    pub cseq: u32,
    pub from: NameAddr,
    pub to: NameAddr,
    pub via: Via,
    pub contact: Option<NameAddr>,
}

impl Request {
    pub fn content_type(&self) -> Option<String> {
        self.msg.header("Content-Type").map(media_type)
    }

    pub fn body_text(&self) -> Option<String> {
        if self.msg.body.is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(&self.msg.body).into_owned())
        }
    }
}

/// A status the request must be answered with instead of being processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub why: &'static str,
    pub extra: Vec<Header>,
}

impl Rejection {
    fn new(status: u16, why: &'static str) -> Self {
        Rejection {
            status,
            why,
            extra: Vec::new(),
        }
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extra.push(Header::new(name, value));
        self
    }
}

/// The lower-cased `type/subtype` of a Content-Type value, parameters dropped.
pub fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .replace(' ', "")
}

fn bad(why: &'static str) -> Rejection {
    Rejection::new(400, why)
}

fn exactly_one<'a>(
    msg: &'a Message,
    name: &'static str,
    why: &'static str,
) -> Result<&'a str, Rejection> {
    let mut it = msg.headers_named(name);
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(bad(why)),
    }
}

/// Validate a request. `defect` is the normaliser's verdict on framing.
pub fn validate(
    msg: Message,
    defect: Option<&'static str>,
) -> Result<Request, Box<(Message, Rejection)>> {
    match check(&msg, defect) {
        Ok(parts) => Ok(Request {
            method: parts.0,
            uri: parts.1,
            call_id: parts.2,
            cseq: parts.3,
            from: parts.4,
            to: parts.5,
            via: parts.6,
            contact: parts.7,
            msg,
        }),
        Err(r) => Err(Box::new((msg, r))),
    }
}

type Parts = (
    String,
    String,
    String,
    u32,
    NameAddr,
    NameAddr,
    Via,
    Option<NameAddr>,
);

fn check(msg: &Message, defect: Option<&'static str>) -> Result<Parts, Rejection> {
    let StartLine::Request {
        method,
        uri,
        version,
    } = &msg.start
    else {
        return Err(bad("not a request"));
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") && defect != Some("malformed Request-Line") {
        return Err(Rejection::new(505, "SIP version not supported"));
    }
    if let Some(why) = defect {
        return Err(bad(why));
    }
    let via_value = msg.header("Via").ok_or(bad("missing Via"))?;
    let via = Via::parse(via_value).ok_or(bad("malformed Via"))?;
    for hop in msg.headers_named("Via").skip(1) {
        Via::parse(hop).ok_or(bad("malformed Via"))?;
    }
    let call_id = exactly_one(msg, "Call-ID", "missing or repeated Call-ID")?.to_string();
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(bad("malformed Call-ID"));
    }
    let cseq_value = exactly_one(msg, "CSeq", "missing or repeated CSeq")?;
    let (cseq, cseq_method) = parse_cseq(cseq_value).ok_or(bad("malformed CSeq"))?;
    let from = NameAddr::parse(exactly_one(msg, "From", "missing or repeated From")?)
        .ok_or(bad("malformed From"))?;
    let to = NameAddr::parse(exactly_one(msg, "To", "missing or repeated To")?)
        .ok_or(bad("malformed To"))?;
    if msg.count("Max-Forwards") > 1 {
        return Err(bad("repeated Max-Forwards"));
    }
    if let Some(mf) = msg.header("Max-Forwards") {
        if mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) || mf.parse::<u8>().is_err() {
            return Err(bad("malformed Max-Forwards"));
        }
    }
    let contacts: Vec<&str> = msg.headers_named("Contact").collect();
    let contact = match contacts.as_slice() {
        [] => None,
        [one] if one.trim() == "*" => None,
        [one] => Some(NameAddr::parse(one).ok_or(bad("malformed Contact"))?),
        _ if method == "INVITE" => return Err(bad("repeated Contact")),
        [first, ..] => NameAddr::parse(first),
    };
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let Some(scheme) = scheme.filter(|s| {
        !s.is_empty()
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    }) else {
        return Err(bad("malformed Request-URI"));
    };
    let is_sip = scheme == "sip" || scheme == "sips";
    if is_sip && !valid_sip_request_uri(uri) {
        return Err(bad("malformed Request-URI"));
    }

    let served = SERVED.contains(&method.as_str());
    let known = served || NOT_SERVED.contains(&method.as_str());
    if !known {
        return Err(Rejection::new(501, "unknown method").with("Allow", ALLOW));
    }
    if &cseq_method != method {
        return Err(bad("CSeq method does not match the Request-Line"));
    }
    if !served {
        return Err(Rejection::new(405, "method not allowed").with("Allow", ALLOW));
    }
    if !(is_sip || scheme == "tel") {
        return Err(Rejection::new(416, "unsupported URI scheme"));
    }
    let unsupported: Vec<String> = msg
        .headers_named("Require")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| {
            !t.is_empty()
                && !SUPPORTED
                    .split(',')
                    .any(|s| s.trim().eq_ignore_ascii_case(t))
        })
        .collect();
    if !unsupported.is_empty() && method != "ACK" && method != "CANCEL" {
        return Err(Rejection::new(420, "unsupported extension")
            .with("Unsupported", unsupported.join(", ")));
    }
    if (method == "INVITE" || method == "UPDATE") && !msg.body.is_empty() {
        let ct = msg.header("Content-Type").map(media_type);
        if ct.as_deref() != Some("application/sdp") {
            return Err(
                Rejection::new(415, "unsupported body type").with("Accept", "application/sdp")
            );
        }
    }
    if method == "INVITE" && !accepts_sdp(msg) {
        return Err(Rejection::new(406, "Accept excludes application/sdp").with("Accept", ACCEPT));
    }
    Ok((
        method.clone(),
        uri.clone(),
        call_id,
        cseq,
        from,
        to,
        via,
        contact,
    ))
}

/// RFC 3261 §20.1: no Accept means application/sdp.
fn accepts_sdp(msg: &Message) -> bool {
    let values: Vec<&str> = msg.headers_named("Accept").collect();
    if values.is_empty() {
        return true;
    }
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(media_type)
        .any(|t| t == "application/sdp" || t == "application/*" || t == "*/*" || t.is_empty())
}

/// A sip/sips Request-URI (RFC 3261 §19.1.1, §25.1): `scheme:[userinfo@]host[:port][;params]`.
/// Headers (`?`) are not allowed in a Request-URI; raw whitespace, `<`, `>` and `"`
/// never are.
pub fn valid_sip_request_uri(uri: &str) -> bool {
    if uri.bytes().any(|b| {
        b.is_ascii_whitespace() || b == b'<' || b == b'>' || b == b'"' || !(0x20..0x7f).contains(&b)
    }) {
        return false;
    }
    let Some((_, rest)) = uri.split_once(':') else {
        return false;
    };
    let hostpart = match rest.rfind('@') {
        Some(at) => {
            if at == 0 {
                return false;
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    if hostpart.contains('?') {
        return false;
    }
    let hostport = hostpart.split(';').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        ("v6", after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}
