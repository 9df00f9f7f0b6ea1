//! SIP message framing, normalisation and printing (RFC 3261 §7, §20, §25).
//!
//! Every datagram goes through [`parse`], the normaliser (compact header names, folded
//! header lines and comma-joined Via values are all legal SIP): it drops leading CRLF
//! keepalives, splits the start line, unfolds continuation lines, expands compact
//! names to their full forms, splits comma-joined Via values into one header each (in
//! order), and frames the body by Content-Length. This parser is the source of truth:
//! `validate` checks the normalised request and the endpoint reads its fields through
//! the small typed views here ([`Via`], [`NameAddr`], [`parse_cseq`]). rsip is not used
//! at run time (README, "Dependency notes": it refuses valid RFC 4475 messages and
//! accepts invalid ones); `tests/sip_message.rs` uses it as an independent parser of
//! what we print. Values the endpoint copies into responses (Via, Record-Route, From,
//! To, Call-ID, CSeq) are kept verbatim.
//!
//! It does not decode `%HH` escapes, does not interpret multipart bodies and does not
//! validate header grammar beyond what the endpoint needs (see `validate`).

use thiserror::Error;

/// Compact header forms (RFC 3261 §7.3.3, RFC 3515, RFC 3892, RFC 3903, RFC 4028,
/// RFC 4474, RFC 3841, RFC 6665).
const COMPACT_FORMS: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Canonical spellings of the headers this crate reads or writes, so a printed message
/// looks the same whatever case the peer used.
const CANONICAL_NAMES: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Allow",
    "Allow-Events",
    "Call-ID",
    "Contact",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Max-Forwards",
    "Proxy-Require",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
];

/// Why a datagram could not be used at all (it is dropped and counted).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("no SIP start line")]
    NoStartLine,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("message is not a request that can be answered")]
    Unanswerable,
}

/// A single header field after normalisation: full name, unfolded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: String,
        uri: String,
        version: String,
    },
    Response {
        version: String,
        code: u16,
        reason: String,
    },
}

/// A normalised SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// The result of [`parse`]: the message plus, for a request, the first defect that
/// makes it a `400 Bad Request` (the message is still returned so the 400 can copy
/// Via, From, To, Call-ID and CSeq).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub message: Message,
    pub defect: Option<&'static str>,
}

/// What a datagram turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// Only CRLFs (RFC 5626 keepalive): ignore.
    Keepalive,
    Message(Parsed),
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// The full, canonically spelled name for a header name as received.
pub fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase();
        if let Some((_, full)) = COMPACT_FORMS.iter().find(|(k, _)| *k == c) {
            return (*full).to_string();
        }
    }
    match CANONICAL_NAMES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        Some(known) => (*known).to_string(),
        None => name.to_string(),
    }
}

/// Split a header value on commas that are outside quotes and angle brackets
/// (RFC 3261 §7.3.1: a comma-separated list is equivalent to several header lines).
/// Empty elements are kept, so `a,,b` shows as malformed to the caller.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for ch in value.chars() {
        if escaped {
            escaped = false;
            cur.push(ch);
            continue;
        }
        match ch {
            '\\' if in_quotes => {
                escaped = true;
                cur.push(ch);
            }
            '"' if !in_angle => {
                in_quotes = !in_quotes;
                cur.push(ch);
            }
            '<' if !in_quotes => {
                in_angle = true;
                cur.push(ch);
            }
            '>' if !in_quotes => {
                in_angle = false;
                cur.push(ch);
            }
            ',' if !in_quotes && !in_angle => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Find the end of the header section: the index just past the empty line, and the
/// index where the header block ends. Accepts CRLFCRLF, and bare LFLF as RFC 3261 §7.5
/// asks receivers to tolerate.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            // The previous line ended here; is the next line empty?
            let rest = &data[i + 1..];
            if rest.starts_with(b"\r\n") {
                return Some((i + 1, i + 3));
            }
            if rest.starts_with(b"\n") {
                return Some((i + 1, i + 2));
            }
        }
        i += 1;
    }
    None
}

/// Parse and normalise one datagram (or one framed stream message).
///
/// A message without a blank line after the headers is taken whole as headers with an
/// empty body (RFC 4475 `baddn.dat` is such a datagram).
pub fn parse(data: &[u8]) -> Result<Datagram, ParseError> {
    let start = data
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(data.len());
    let data = &data[start..];
    if data.is_empty() {
        return if start > 0 {
            Ok(Datagram::Keepalive)
        } else {
            Err(ParseError::Empty)
        };
    }
    let (head, rest) = match find_head_end(data) {
        Some((head_end, body_start)) => (&data[..head_end], &data[body_start..]),
        None => (data, &data[data.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(ParseError::NoStartLine)?;
    let mut defect: Option<&'static str> = None;
    let start = parse_start_line(first, &mut defect)?;

    // Unfold continuation lines (RFC 3261 §7.3.1) before splitting name and value.
    let mut raw: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match raw.last_mut() {
                Some(prev) => {
                    prev.push(' ');
                    prev.push_str(line.trim());
                }
                None => defect = defect.or(Some("continuation line before any header")),
            }
        } else {
            raw.push(line.to_string());
        }
    }
    let mut headers = Vec::with_capacity(raw.len());
    for line in raw {
        let Some(colon) = line.find(':') else {
            defect = defect.or(Some("header line without a colon"));
            continue;
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token(name) {
            defect = defect.or(Some("malformed header name"));
            continue;
        }
        let name = canonical_name(name);
        let value = line[colon + 1..].trim_matches([' ', '\t']);
        if name == "Via" {
            for hop in split_list(value) {
                if hop.is_empty() {
                    defect = defect.or(Some("empty Via element"));
                }
                headers.push(Header::new("Via", hop));
            }
        } else {
            headers.push(Header::new(name, value));
        }
    }
    if headers.is_empty() && matches!(start, StartLine::Response { .. }) {
        return Err(ParseError::BadStatusLine);
    }
    let body = frame_body(&headers, rest, &mut defect);
    Ok(Datagram::Message(Parsed {
        message: Message {
            start,
            headers,
            body,
        },
        defect,
    }))
}

fn parse_start_line(
    line: &str,
    defect: &mut Option<&'static str>,
) -> Result<StartLine, ParseError> {
    // SIP-Version is case-insensitive (RFC 3261 §7.1).
    let is_sip_version =
        |v: &str| v.len() >= 4 && v.is_char_boundary(4) && v[..4].eq_ignore_ascii_case("SIP/");
    if is_sip_version(line) {
        let after = &line[4..];
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = after.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default();
        if !valid_version_number(version)
            || code.len() != 3
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ParseError::BadStatusLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::BadStatusLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response {
            version: format!("SIP/{version}"),
            code,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces.
    let parts: Vec<&str> = line.split(' ').collect();
    let method_ok = parts.first().is_some_and(|m| is_token(m));
    if !method_ok {
        return Err(ParseError::NoStartLine);
    }
    let version_guess = parts
        .iter()
        .rev()
        .find(|p| !p.is_empty())
        .copied()
        .unwrap_or_default();
    if !is_sip_version(version_guess) {
        return Err(ParseError::NoStartLine);
    }
    if parts.len() != 3 || parts[1].is_empty() || parts[2] != version_guess {
        *defect = defect.or(Some("malformed Request-Line"));
        let uri = parts[1..]
            .iter()
            .filter(|p| !p.is_empty() && **p != version_guess)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        return Ok(StartLine::Request {
            method: parts[0].to_string(),
            uri,
            version: version_guess.to_string(),
        });
    }
    if !valid_version_number(&parts[2][4..]) {
        *defect = defect.or(Some("malformed SIP-Version"));
    }
    Ok(StartLine::Request {
        method: parts[0].to_string(),
        uri: parts[1].to_string(),
        version: parts[2].to_string(),
    })
}

fn valid_version_number(v: &str) -> bool {
    let mut it = v.split('.');
    let (Some(major), Some(minor), None) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    !major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

/// Frame the body by Content-Length (RFC 3261 §18.3). On a datagram a missing
/// Content-Length means "the rest"; extra octets after Content-Length are ignored.
fn frame_body(headers: &[Header], rest: &[u8], defect: &mut Option<&'static str>) -> Vec<u8> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|h| h.name == "Content-Length")
        .map(|h| h.value.as_str())
        .collect();
    match values.as_slice() {
        [] => rest.to_vec(),
        [one] => match parse_content_length(one) {
            Ok(n) if n <= rest.len() => rest[..n].to_vec(),
            Ok(_) => {
                *defect = defect.or(Some("Content-Length larger than the message"));
                rest.to_vec()
            }
            Err(why) => {
                *defect = defect.or(Some(why));
                rest.to_vec()
            }
        },
        _ => {
            *defect = defect.or(Some("multiple Content-Length values"));
            rest.to_vec()
        }
    }
}

/// Parse a Content-Length value: 1*DIGIT, nothing else.
pub fn parse_content_length(value: &str) -> Result<usize, &'static str> {
    let v = value.trim();
    if v.starts_with('-') {
        return Err("negative Content-Length");
    }
    if v.contains(',') {
        return Err("multiple Content-Length values");
    }
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("malformed Content-Length");
    }
    v.parse::<usize>()
        .map_err(|_| "Content-Length out of range")
}

impl Message {
    /// The first value of a header (full name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// All values of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// How many header lines carry this name.
    pub fn count(&self, name: &str) -> usize {
        self.headers_named(name).count()
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push(Header::new(name, value));
    }

    /// Print the message in canonical form: full header names, one header per line,
    /// Content-Length always present and correct.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => {
                out.push_str(&format!("{method} {uri} {version}\r\n"));
            }
            StartLine::Response {
                version,
                code,
                reason,
            } => {
                out.push_str(&format!("{version} {code} {reason}\r\n"));
            }
        }
        for h in &self.headers {
            if h.name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.push_str(&h.name);
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The reason phrase this crate uses for a status code (RFC 3261 §21).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Parsed `name-addr` / `addr-spec` header (From, To, Contact, Route, Refer-To):
/// display name, URI text, and the header parameters outside the `<>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parse leniently: LWS around `;` and `=` is allowed (RFC 3261 §25.1 SWS).
    /// Fails on an unterminated quote or `<`, or on an empty URI.
    pub fn parse(value: &str) -> Option<NameAddr> {
        let v = value.trim();
        let (display, uri, rest) = if let Some(lt) = find_unquoted(v, '<') {
            let display = v[..lt].trim();
            if display.starts_with('"') && !(display.len() >= 2 && closes_quote(display)) {
                return None;
            }
            if !display.starts_with('"') && !display.is_empty() {
                // An unquoted display name must be tokens separated by LWS.
                if !display.split_whitespace().all(is_token) {
                    return None;
                }
            }
            let after = &v[lt + 1..];
            let gt = after.find('>')?;
            let display = if display.is_empty() {
                None
            } else {
                Some(display.to_string())
            };
            (display, after[..gt].to_string(), &after[gt + 1..])
        } else {
            // An addr-spec with `?` or `,` must be enclosed in `<>` (RFC 3261 §20.10).
            if v.contains(['"', '>', '?', ',']) {
                return None;
            }
            // addr-spec: header params start at the first ';' (RFC 3261 §20.10).
            match v.find(';') {
                Some(semi) => (None, v[..semi].trim().to_string(), &v[semi..]),
                None => (None, v.to_string(), ""),
            }
        };
        if uri.is_empty() || uri.contains(char::is_whitespace) {
            return None;
        }
        let params = parse_params(rest)?;
        Some(NameAddr {
            display,
            uri,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }
}

fn closes_quote(display: &str) -> bool {
    let inner = &display[1..];
    let mut escaped = false;
    for (i, ch) in inner.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '"' => return inner[i + 1..].trim().is_empty(),
            _ => {}
        }
    }
    false
}

fn find_unquoted(v: &str, needle: char) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, ch) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == needle && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// Parse `*( SEMI generic-param )` with optional LWS. Returns `None` on an empty
/// parameter name.
pub fn parse_params(rest: &str) -> Option<Vec<(String, Option<String>)>> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix(';')?;
    let mut out = Vec::new();
    for part in rest.split(';') {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None => (part.trim(), None),
        };
        if !is_token(k) {
            return None;
        }
        out.push((k.to_string(), v));
    }
    Some(out)
}

/// A parsed Via hop (RFC 3261 §20.42): `SIP/2.0/UDP host[:port];params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub sent_by: String,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn parse(value: &str) -> Option<Via> {
        let (proto, rest) = match value.find(';') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        // sent-protocol = name SLASH version SLASH transport, LWS allowed around '/'.
        let mut slash = proto.splitn(3, '/');
        let name = slash.next()?.trim();
        let version = slash.next()?.trim();
        let tail = slash.next()?.trim();
        if !name.eq_ignore_ascii_case("SIP") || !is_token(version) {
            return None;
        }
        let mut words = tail.split_whitespace();
        let transport = words.next()?;
        let sent_by: String = words.collect::<Vec<_>>().join("");
        if !is_token(transport) || sent_by.is_empty() {
            return None;
        }
        let params = parse_params(rest)?;
        Some(Via {
            transport: transport.to_string(),
            sent_by,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The RFC 3261 branch, if it carries the magic cookie and something after it.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.param("branch")
            .filter(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }
}

/// Rewrite a Via value for a response (RFC 3581 §4 and RFC 3261 §18.2.1): add
/// `received=<ip>` and set `rport=<port>`, always (forced rport). Everything else of the
/// value is kept verbatim.
pub fn stamp_via(value: &str, source: std::net::SocketAddr) -> String {
    let (head, params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    let mut out = head.trim_end().to_string();
    for p in params.split(';') {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.is_empty()
            || name.eq_ignore_ascii_case("rport")
            || name.eq_ignore_ascii_case("received")
        {
            continue;
        }
        out.push(';');
        out.push_str(p.trim());
    }
    out.push_str(&format!(
        ";received={};rport={}",
        source.ip(),
        source.port()
    ));
    out
}

/// Parse a CSeq value: `1*DIGIT LWS Method`, the number below 2**31 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(value: &str) -> Option<(u32, String)> {
    let mut parts = value.split_whitespace();
    let num = parts.next()?;
    let method = parts.next()?;
    if parts.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    if n >= 1 << 31 {
        return None;
    }
    Some((n as u32, method.to_string()))
}

/// The user part of a sip/sips URI, or the number of a tel URI, with `%HH` escapes
/// decoded (RFC 3261 §19.1.4: `sip:%65cho@host` is user `echo`). If decoding would
/// yield control characters or invalid UTF-8 (`%00`), the raw text is kept.
pub fn uri_user(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return String::new();
    };
    let raw = if scheme.eq_ignore_ascii_case("tel") {
        rest.split(';').next().unwrap_or_default()
    } else {
        match rest.rfind('@') {
            Some(at) => rest[..at].split(':').next().unwrap_or_default(),
            None => "",
        }
    };
    match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(decoded) if !decoded.chars().any(char::is_control) => decoded.into_owned(),
        _ => raw.to_string(),
    }
}

/// The caller's number as an upstream proxy asserts it: the user part of the first
/// `P-Asserted-Identity` value (RFC 3325) that has one, else of the first
/// `Remote-Party-ID` (draft-ietf-sip-privacy-04, still sent by many trunks).
/// Whether to believe it is not this function's business: only a request from a
/// trusted peer may set the ANI this way (see `crate::caller`).
pub fn asserted_user(msg: &Message) -> Option<String> {
    ["P-Asserted-Identity", "Remote-Party-ID"]
        .iter()
        .find_map(|name| {
            msg.headers_named(name)
                .flat_map(split_list)
                .filter_map(|v| NameAddr::parse(&v))
                .map(|na| uri_user(&na.uri))
                .find(|user| !user.is_empty())
        })
}

/// The last address of the last `X-Forwarded-For` header (the one the nearest
/// proxy wrote), if it is an IP address (`192.0.2.7`, `2001:db8::1`, `[2001:db8::1]`).
pub fn forwarded_for(msg: &Message) -> Option<std::net::IpAddr> {
    let last = msg.headers_named("X-Forwarded-For").last()?;
    let ip = last.rsplit(',').next()?.trim();
    ip.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The `host[:port]` part of a sip/sips URI, without params or headers.
pub fn uri_hostport(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let rest = match rest.rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// An IP literal `host[:port]` as a socket address (default port 5060).
pub fn hostport_addr(hostport: &str) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, SocketAddr};
    if let Ok(sa) = hostport.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Ok(ip) = hostport
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(SocketAddr::new(ip, 5060));
    }
    None
}
