//! SDP offer/answer for one audio stream (RFC 4566, RFC 3264, RFC 4733 §7).
//!
//! Parses the audio lines of an offer (connection address, static and
//! dynamic payload types, `a=rtpmap`, `a=ptime`, direction), negotiates G.711 by our
//! preference while mirroring the offer's payload type numbers, and prints answers
//! and offers. SDES-SRTP (RFC 4568): the offer's `RTP/SAVP` profile and its
//! `a=crypto` attributes are read (the first one with a suite we speak is kept),
//! and an answer can carry our own attribute; whether to use them is the
//! caller's policy ([`crate::admission`]), which also picks the audio line the
//! call uses when there are several ([`parse_candidates`]: "SRTP if possible"
//! phones offer the stream twice). It does not handle video, multiple
//! audio streams, ICE, DTLS-SRTP or `a=rtcp`: every other media line of an
//! offer (a softphone's video, a second audio stream, BFCP…) is declined in the
//! answer with port 0, in its place, so the answer has as many `m=` lines as
//! the offer (RFC 3264 §6; a PJSIP-based phone drops a call whose answer has
//! fewer).

use std::net::{IpAddr, SocketAddr};

use crate::codec::Codec;
use crate::media::srtp::CryptoAttr;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP has no audio media line")]
    NoAudio,
    #[error("SDP has no usable connection address")]
    NoConnection,
    #[error("malformed SDP line: {0}")]
    Malformed(&'static str),
    #[error("no common codec")]
    NoCommonCodec,
    #[error("malformed a=crypto: {0}")]
    Crypto(#[from] crate::media::srtp::SrtpError),
}

/// The SRTP profile of `m=audio` (RFC 4568 §3.1.4).
pub const SAVP: &str = "RTP/SAVP";
/// The plain RTP profile.
pub const AVP: &str = "RTP/AVP";

/// Media direction attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload format offered on the audio line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    pub name: String,
    pub rate: u32,
}

/// One `m=` line of an offer, as its answer must mirror it (RFC 3264 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MLine {
    /// The audio stream we use.
    Audio,
    /// Any other stream, declined: its answer line (`m=video 0 RTP/AVP 31`).
    Declined(String),
}

/// The audio part of an offer (or of an answer: same shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub addr: IpAddr,
    pub port: u16,
    /// In the order of the m= line.
    pub formats: Vec<Format>,
    pub ptime: Option<u32>,
    pub direction: Direction,
    /// The transport profile of the audio line (`RTP/AVP`, `RTP/SAVP`, ...).
    pub proto: String,
    /// The `a=crypto` attributes we could use, in the offer's order (their keys
    /// are the peer's secrets; `Debug` shows none).
    pub crypto: Vec<CryptoAttr>,
    /// Every `m=` line, in order: the audio one and the ones we decline.
    pub m_lines: Vec<MLine>,
}

/// The result of negotiation: what media should use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub audio_pt: u8,
    pub telephone_event_pt: Option<u8>,
    pub ptime_ms: u32,
    pub remote: SocketAddr,
    /// The offer's profile was `RTP/SAVP` (it insists on SRTP).
    pub savp: bool,
    /// The peer's SDES attribute we answer (its key decrypts what it sends);
    /// `None`: plain RTP.
    pub crypto: Option<CryptoAttr>,
    /// The offer's direction (the answer's is its reverse).
    pub direction: Direction,
    /// The offer's `m=` lines, which the answer mirrors (just the audio one
    /// when we offer).
    pub m_lines: Vec<MLine>,
}

fn static_format(pt: u8) -> Option<Format> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(Format {
        pt,
        name: name.to_string(),
        rate,
    })
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1 (a multicast /ttl suffix is stripped)
    let mut it = value.split_whitespace();
    let (Some(net), Some(_atype), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::Malformed("c="));
    };
    if net != "IN" {
        return Err(SdpError::Malformed("c= network type"));
    }
    let addr = addr.split('/').next().unwrap_or_default();
    addr.parse().map_err(|_| SdpError::NoConnection)
}

/// The most `m=` lines an offer may have (audio and video with a few
/// alternatives is under ten).
const MAX_M_LINES: usize = 16;

/// One `m=` section as written, before we choose which audio line is ours.
struct Section<'a> {
    media: &'a str,
    /// `None`: not a number.
    port: Option<u16>,
    proto: &'a str,
    /// The formats as written (the first is kept when the line is declined).
    fmts: Vec<&'a str>,
    conn: Option<IpAddr>,
    direction: Option<Direction>,
    /// `a=rtpmap`, `a=crypto` and `a=ptime` of an audio section, in order.
    attrs: Vec<(&'a str, &'a str)>,
}

impl Section<'_> {
    /// Its answer line when declined: port 0 and its first format (at least
    /// one must be listed).
    fn declined(&self) -> MLine {
        let proto = if self.proto.is_empty() {
            AVP
        } else {
            self.proto
        };
        let fmt = self.fmts.first().copied().unwrap_or("0");
        MLine::Declined(format!("m={} 0 {proto} {fmt}", self.media))
    }
}

/// Parse an SDP body, keeping its first audio stream with a port other than 0
/// (or the first, when all are: a call on hold): the first of
/// [`parse_candidates`].
pub fn parse(text: &str) -> Result<Offer, SdpError> {
    parse_candidates(text)?
        .into_iter()
        .next()
        .ok_or(SdpError::NoAudio)
}

/// Every audio stream of an SDP body we could make ours, in the order we
/// prefer them: those with a port other than 0 in the order of the offer,
/// then (only when there are none) the first. Each comes with the layout its
/// answer mirrors: itself as [`MLine::Audio`], every other line declined in
/// its place. A stream removed in a new offer stays as `m=audio 0 …` and a new
/// one may follow it (RFC 3264 §8.2); a phone that offers SRTP "if it can"
/// lists the same stream twice, `RTP/SAVP` first and `RTP/AVP` after it, and
/// is answered on the one the call's policy takes ([`crate::admission`]).
///
/// The first candidate's errors are the body's; a later audio line that
/// cannot be read is declined instead.
pub fn parse_candidates(text: &str) -> Result<Vec<Offer>, SdpError> {
    let mut session_conn: Option<IpAddr> = None;
    let mut session_dir = Direction::SendRecv;
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(SdpError::Malformed("line without '='"));
        };
        match kind {
            "m" => {
                if sections.len() == MAX_M_LINES {
                    // Each is mirrored in the answer (and the 200 resent
                    // until ACK): no offer sizes our answer without bound.
                    return Err(SdpError::Malformed("more than 16 m= lines"));
                }
                let mut it = value.split_whitespace();
                let media = it.next().unwrap_or_default();
                let port = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok());
                let proto = it.next().unwrap_or_default();
                sections.push(Section {
                    media,
                    port,
                    proto,
                    fmts: it.collect(),
                    conn: None,
                    direction: None,
                    attrs: Vec::new(),
                });
            }
            "c" => {
                let ip = parse_connection(value);
                match sections.last_mut() {
                    None => session_conn = Some(ip?),
                    // A bad address under a line we decline is not ours to read.
                    Some(s) if s.media == "audio" => s.conn = Some(ip?),
                    Some(_) => {}
                }
            }
            "a" => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a)),
                    None => (value, None),
                };
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (sections.last_mut(), dir, arg) {
                    (None, Some(d), _) => session_dir = d,
                    (Some(s), Some(d), _) => s.direction = Some(d),
                    (Some(s), None, Some(arg))
                        if s.media == "audio" && matches!(name, "rtpmap" | "crypto" | "ptime") =>
                    {
                        s.attrs.push((name, arg));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let audio = |s: &&Section| s.media == "audio";
    let with_port: Vec<usize> = sections
        .iter()
        .enumerate()
        .filter(|(_, s)| audio(s) && s.port.is_some_and(|p| p != 0))
        .map(|(i, _)| i)
        .collect();
    let order = if with_port.is_empty() {
        sections
            .iter()
            .position(|s| audio(&s))
            .into_iter()
            .collect()
    } else {
        with_port
    };
    let mut candidates = Vec::with_capacity(order.len());
    for (n, &i) in order.iter().enumerate() {
        let m_lines = sections
            .iter()
            .enumerate()
            .map(|(j, s)| if j == i { MLine::Audio } else { s.declined() })
            .collect();
        match audio_offer(&sections[i], session_conn, session_dir, m_lines) {
            Ok(offer) => candidates.push(offer),
            Err(e) if n == 0 => return Err(e),
            Err(_) => {}
        }
    }
    if candidates.is_empty() {
        return Err(SdpError::NoAudio);
    }
    Ok(candidates)
}

/// One audio section read as the call's stream.
fn audio_offer(
    s: &Section,
    session_conn: Option<IpAddr>,
    session_dir: Direction,
    m_lines: Vec<MLine>,
) -> Result<Offer, SdpError> {
    let port = s.port.ok_or(SdpError::Malformed("m= port"))?;
    if s.proto.is_empty() {
        return Err(SdpError::Malformed("m= proto"));
    }
    let pts = s
        .fmts
        .iter()
        .map(|p| p.parse::<u8>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SdpError::Malformed("m= payload type"))?;
    if pts.iter().any(|pt| *pt > 127) {
        return Err(SdpError::Malformed("m= payload type"));
    }
    let mut rtpmaps: Vec<Format> = Vec::new();
    let mut crypto = Vec::new();
    let mut ptime = None;
    for &(name, arg) in &s.attrs {
        match name {
            "rtpmap" => {
                let (pt, enc) = arg.split_once(' ').ok_or(SdpError::Malformed("a=rtpmap"))?;
                let pt: u8 = pt
                    .trim()
                    .parse()
                    .map_err(|_| SdpError::Malformed("a=rtpmap payload type"))?;
                let mut parts = enc.trim().split('/');
                let name = parts.next().unwrap_or_default().to_string();
                let rate = parts
                    .next()
                    .and_then(|r| r.parse::<u32>().ok())
                    .ok_or(SdpError::Malformed("a=rtpmap clock rate"))?;
                rtpmaps.push(Format { pt, name, rate });
            }
            "crypto" => {
                if let Some(c) = CryptoAttr::parse(arg)? {
                    crypto.push(c);
                }
            }
            "ptime" => {
                ptime = arg
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p > 0 && *p <= 200);
            }
            _ => {}
        }
    }
    let addr = s.conn.or(session_conn).ok_or(SdpError::NoConnection)?;
    let formats = pts
        .iter()
        .filter_map(|pt| {
            rtpmaps
                .iter()
                .find(|f| f.pt == *pt)
                .cloned()
                .or_else(|| static_format(*pt))
        })
        .collect();
    Ok(Offer {
        addr,
        port,
        formats,
        ptime,
        direction: s.direction.unwrap_or(session_dir),
        proto: s.proto.to_string(),
        crypto,
        m_lines,
    })
}

/// Choose the first codec of `preference` the offer carries (at 8 kHz), mirroring
/// the offer's payload type number, plus telephone-event/8000 if offered.
pub fn negotiate(offer: &Offer, preference: &[Codec]) -> Result<Negotiated, SdpError> {
    let (codec, audio_pt) = preference
        .iter()
        .find_map(|codec| {
            offer
                .formats
                .iter()
                .find(|f| {
                    f.rate == crate::codec::SAMPLE_RATE
                        && Codec::from_encoding_name(&f.name) == Some(*codec)
                })
                .map(|f| (*codec, f.pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event_pt = offer
        .formats
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("telephone-event") && f.rate == 8000)
        .map(|f| f.pt);
    Ok(Negotiated {
        codec,
        audio_pt,
        telephone_event_pt,
        ptime_ms: offer.ptime.unwrap_or(20),
        remote: SocketAddr::new(offer.addr, offer.port),
        savp: offer.proto == SAVP,
        crypto: offer.crypto.first().cloned(),
        direction: offer.direction,
        m_lines: offer.m_lines.clone(),
    })
}

fn ip_kind(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(local: SocketAddr, session_id: u64) -> String {
    versioned_header(local, session_id, session_id)
}

fn versioned_header(local: SocketAddr, session_id: u64, version: u64) -> String {
    let kind = ip_kind(local.ip());
    let ip = local.ip();
    format!(
        "v=0\r\no=sspr-ivr {session_id} {version} IN {kind} {ip}\r\ns=sspr-ivr\r\nc=IN {kind} {ip}\r\nt=0 0\r\n"
    )
}

/// Print the answer for a negotiated session. `session_id` also serves as the
/// version, so answering a refresh with the same id gives byte-identical SDP.
/// `ours`: our SDES attribute (same tag and suite as the one taken from the
/// offer, our own key) when the call uses SRTP; the profile mirrors the offer's.
pub fn answer(
    neg: &Negotiated,
    local: SocketAddr,
    session_id: u64,
    ours: Option<&CryptoAttr>,
) -> String {
    let mut s = session_header(local, session_id);
    let mut pts = vec![neg.audio_pt.to_string()];
    if let Some(te) = neg.telephone_event_pt {
        pts.push(te.to_string());
    }
    let proto = if neg.savp && ours.is_some() {
        SAVP
    } else {
        AVP
    };
    s.push_str(&format!(
        "m=audio {} {proto} {}\r\n",
        local.port(),
        pts.join(" ")
    ));
    if let Some(c) = ours {
        s.push_str(&c.to_sdp());
    }
    s.push_str(&format!(
        "a=rtpmap:{} {}/8000\r\n",
        neg.audio_pt,
        neg.codec.encoding_name()
    ));
    if let Some(te) = neg.telephone_event_pt {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        ));
    }
    s.push_str(&format!("a=ptime:{}\r\n", neg.ptime_ms));
    s.push_str(&format!("a={}\r\n", neg.direction.reversed().attr()));
    lay_out(&s, &neg.m_lines)
}

/// `sdp` (a session part and one audio `m=` section, ours) with its sections
/// in the order of `m_lines`: the audio one where the offer had it, each other
/// line declined in its place (RFC 3264 §6). Declined lines `sdp` already has
/// are dropped first, so a description can be laid out afresh for a new offer.
fn lay_out(sdp: &str, m_lines: &[MLine]) -> String {
    let mut session = String::new();
    let mut audio = String::new();
    let mut section: Option<bool> = None; // Some(true): in our audio section
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            let declined = line.split_whitespace().nth(1) == Some("0");
            section = Some(line.starts_with("m=audio ") && !declined && audio.is_empty());
        }
        match section {
            None => session.push_str(line),
            Some(true) => audio.push_str(line),
            Some(false) => {}
        }
    }
    if m_lines.iter().all(|m| *m == MLine::Audio) {
        return session + &audio;
    }
    let mut out = session;
    for m in m_lines {
        match m {
            MLine::Audio => out.push_str(&audio),
            MLine::Declined(line) => {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
    }
    out
}

impl Direction {
    /// The answer's direction to an offer with this one (RFC 3264 §6.1): a
    /// `sendonly` offer (the peer puts us on hold) is answered `recvonly`.
    #[must_use]
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the peer takes our media with this direction in its offer.
    #[must_use]
    pub fn peer_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Why a new offer in an established session is refused (RFC 3264 §8; the
/// session goes on as it was): the `Warning` code and text of the `488`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReofferError {
    /// Not usable SDP (399).
    Unusable,
    /// The session's codec is not in it (305).
    Codec,
    /// Media of the other IP family than ours (301).
    AddressFamily,
    /// Plain RTP for an SRTP call, no key in our suite, or SRTP insisted on
    /// (`RTP/SAVP`) for a plain call (302).
    Srtp,
}

impl ReofferError {
    pub fn warning(self) -> super::Warning {
        match self {
            ReofferError::Unusable => super::Warning::UNUSABLE_SDP,
            ReofferError::Codec => super::Warning::MEDIA_FORMAT,
            ReofferError::AddressFamily => super::Warning::ADDRESS_FAMILY,
            ReofferError::Srtp => super::Warning::TRANSPORT,
        }
    }
}

/// Answer a new offer in an established session (a re-INVITE or UPDATE with a
/// body, RFC 3264 §8) from our description `local`: the same address, port,
/// codec and keys; the direction the offer's reversed; the origin's version one
/// higher when that changed the description (an unchanged one is answered
/// byte for byte). Returns the answer and the offer. The codec cannot change
/// mid-call, so an offer without the one in `local` is refused, as is one whose
/// media is of the other IP family.
///
/// On an SRTP call the offer must carry a key in the call's suite: the one it
/// carries is returned (the peer sends with it from now on; RFC 4568 §7.1.4
/// lets it change its key in any new offer), and our answer keeps our key
/// under the offer's tag. A plain call refuses an offer that insists on SRTP.
pub fn reanswer(
    local: &str,
    offer_text: &str,
) -> Result<(String, Offer, Option<CryptoAttr>), ReofferError> {
    let (offer, crypto) = fits(local, offer_text)?;
    let direction = offer.direction.reversed();
    let rewritten = rewrite(local, direction, crypto.as_ref().map(|c| c.tag));
    // A new offer may add streams (never remove them, RFC 3264 §8): the
    // answer mirrors its lines, and a changed layout is a changed
    // description, so a new version.
    let mut answer = lay_out(&rewritten, &offer.m_lines);
    if answer != rewritten && rewritten == local {
        answer = next_version(&answer);
    }
    Ok((answer, offer, crypto))
}

/// The peer's description `theirs` (a new offer, or the answer to ours),
/// parsed, if the session can take it: it carries our session's codec, media
/// of our IP family (or none, `0.0.0.0`), and on an SRTP call a key in its
/// suite (returned).
///
/// The stream is the one in our stream's place (RFC 3264 §8: a new offer
/// keeps every line where it was), else the first one that fits: a phone that
/// offered SRTP "if it can" on two lines repeats both in its hold, and our
/// call is on the second.
fn fits(local: &str, theirs: &str) -> Result<(Offer, Option<CryptoAttr>), ReofferError> {
    let ours = parse(local).map_err(|_| ReofferError::Unusable)?;
    let mut candidates = parse_candidates(theirs).map_err(|_| ReofferError::Unusable)?;
    let place = |o: &Offer| o.m_lines.iter().position(|m| *m == MLine::Audio);
    if let Some(i) = candidates.iter().position(|o| place(o) == place(&ours)) {
        candidates[..=i].rotate_right(1);
    }
    let mut first = None;
    for offer in candidates {
        match fits_stream(&ours, offer) {
            Ok(fit) => return Ok(fit),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or(ReofferError::Unusable))
}

/// [`fits`] for one audio stream of their description.
fn fits_stream(ours: &Offer, offer: Offer) -> Result<(Offer, Option<CryptoAttr>), ReofferError> {
    let crypto = match ours.crypto.first() {
        Some(key) => Some(
            offer
                .crypto
                .iter()
                .find(|c| c.suite == key.suite)
                .cloned()
                .ok_or(ReofferError::Srtp)?,
        ),
        None if offer.proto.to_ascii_uppercase().contains("SAVP") => {
            return Err(ReofferError::Srtp)
        }
        None => None,
    };
    let codec = ours.formats.first().ok_or(ReofferError::Unusable)?;
    if !offer
        .formats
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(&codec.name) && f.rate == codec.rate)
    {
        return Err(ReofferError::Codec);
    }
    if !offer.addr.is_unspecified() && offer.addr.is_ipv4() != ours.addr.is_ipv4() {
        return Err(ReofferError::AddressFamily);
    }
    Ok((offer, crypto))
}

/// Our offer in the 2xx to a re-INVITE without one (RFC 3264 §8, RFC 6337
/// §5.3: a third-party call controller reconnecting the call, often after a
/// hold): our description as it is, `sendrecv`, since we want the call's
/// media both ways whatever the last offer said (the origin's version one
/// higher when that changed it). The peer answers in its ACK
/// ([`accept_answer`]).
pub fn reoffer(local: &str) -> String {
    rewrite(local, Direction::SendRecv, None)
}

/// The peer's answer (in an ACK) to [`reoffer`]'s offer `local`: parsed, if
/// the session can take it (our codec, our IP family, a key in our suite on
/// an SRTP call: returned).
pub fn accept_answer(
    local: &str,
    answer: &str,
) -> Result<(Offer, Option<CryptoAttr>), ReofferError> {
    fits(local, answer)
}

/// The caller's answer, in its ACK, to the offer `local` we put in our 200 to
/// an INVITE without one (late offer, RFC 3261 §13.2.1): usable if it accepts
/// the audio stream (a port other than 0) with one of the codecs we offered, in
/// our IP family and in plain RTP (a late offer never carries our keys). One
/// the call cannot use ends it: the caller cannot take back an ACK, so we send
/// BYE, as RFC 3261 §13.2.2.4 has a caller do with an offer it cannot take.
pub fn accept_late_answer(local: &str, answer: &str) -> Result<Offer, ReofferError> {
    let theirs = parse(answer).map_err(|_| ReofferError::Unusable)?;
    let ours = parse(local).map_err(|_| ReofferError::Unusable)?;
    if theirs.proto.to_ascii_uppercase().contains("SAVP") {
        return Err(ReofferError::Srtp);
    }
    let audio = |f: &Format| {
        f.rate == crate::codec::SAMPLE_RATE && Codec::from_encoding_name(&f.name).is_some()
    };
    let common = theirs.formats.iter().filter(|f| audio(f)).any(|f| {
        ours.formats
            .iter()
            .any(|o| audio(o) && o.name.eq_ignore_ascii_case(&f.name))
    });
    if theirs.port == 0 || !common {
        return Err(ReofferError::Codec);
    }
    if !theirs.addr.is_unspecified() && theirs.addr.is_ipv4() != ours.addr.is_ipv4() {
        return Err(ReofferError::AddressFamily);
    }
    Ok(theirs)
}

/// `local` with its direction attribute set to `direction` and, given
/// `crypto_tag`, its `a=crypto` line under that tag (its key unchanged), and
/// its origin's version one higher if that changed it (an unchanged
/// description comes back byte for byte, RFC 3264 §8).
fn rewrite(local: &str, direction: Direction, crypto_tag: Option<u32>) -> String {
    let retag =
        |ours: &Offer| crypto_tag.filter(|t| ours.crypto.first().is_some_and(|c| c.tag != *t));
    let retag = match parse(local) {
        Ok(ours) if ours.direction == direction && retag(&ours).is_none() => {
            return local.to_string()
        }
        Ok(ours) => retag(&ours),
        Err(_) => None,
    };
    let mut out = String::with_capacity(local.len());
    for line in next_version(local).split_inclusive("\r\n") {
        let body = line.trim_end_matches("\r\n");
        if matches!(
            body,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            out.push_str(&format!("a={}\r\n", direction.attr()));
        } else if let (Some(tag), Some(rest)) = (retag, body.strip_prefix("a=crypto:")) {
            // `a=crypto:<tag> <suite> inline:<key>`: only the tag changes.
            let rest = rest.split_once(' ').map_or("", |(_, r)| r);
            out.push_str(&format!("a=crypto:{tag} {rest}\r\n"));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `sdp` with its origin's version one higher.
fn next_version(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive("\r\n") {
        let body = line.trim_end_matches("\r\n");
        if let Some(o) = body.strip_prefix("o=") {
            // o=<user> <id> <version> IN <kind> <addr>
            let mut f: Vec<String> = o.split(' ').map(str::to_string).collect();
            if let Some(v) = f.get_mut(2) {
                *v = v
                    .parse::<u64>()
                    .map_or_else(|_| v.clone(), |n| n.wrapping_add(1).to_string());
            }
            out.push_str(&format!("o={}\r\n", f.join(" ")));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Print an offer with our codecs (static payload types) and telephone-event.
pub fn offer(
    local: SocketAddr,
    preference: &[Codec],
    te_pt: u8,
    ptime_ms: u32,
    session_id: u64,
) -> String {
    offer_version(
        local, preference, te_pt, ptime_ms, session_id, session_id, None,
    )
}

/// [`offer`] as version `version` of session `session_id` (a new offer in
/// the same session carries the next version, RFC 3264 §8), and with `crypto`
/// an SRTP offer: `RTP/SAVP` and that SDES attribute (a caller's; the
/// server offers no keys of its own).
pub fn offer_version(
    local: SocketAddr,
    preference: &[Codec],
    te_pt: u8,
    ptime_ms: u32,
    session_id: u64,
    version: u64,
    crypto: Option<&CryptoAttr>,
) -> String {
    let mut s = versioned_header(local, session_id, version);
    let mut pts: Vec<String> = preference
        .iter()
        .map(|c| c.static_payload_type().to_string())
        .collect();
    pts.push(te_pt.to_string());
    let proto = if crypto.is_some() { SAVP } else { AVP };
    s.push_str(&format!(
        "m=audio {} {proto} {}\r\n",
        local.port(),
        pts.join(" ")
    ));
    if let Some(c) = crypto {
        s.push_str(&c.to_sdp());
    }
    for c in preference {
        s.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.static_payload_type(),
            c.encoding_name()
        ));
    }
    s.push_str(&format!(
        "a=rtpmap:{te_pt} telephone-event/8000\r\na=fmtp:{te_pt} 0-16\r\n"
    ));
    s.push_str(&format!("a=ptime:{ptime_ms}\r\n"));
    s.push_str(&format!("a={}\r\n", Direction::SendRecv.attr()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";

    #[test]
    fn parses_offers() {
        struct Case {
            sdp: &'static str,
            addr: &'static str,
            port: u16,
            pts: &'static [u8],
            ptime: Option<u32>,
            dir: Direction,
        }
        let cases = [
            Case {
                sdp: SIPP,
                addr: "127.0.0.1",
                port: 6000,
                pts: &[8, 0, 96],
                ptime: None,
                dir: Direction::SendRecv,
            },
            // Static PTs without rtpmap, media-level c=, ptime, sendonly (hold).
            Case {
                sdp: "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\nc=IN IP4 10.0.0.2\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendonly\r\n",
                addr: "10.0.0.2",
                port: 4000,
                pts: &[0, 8, 101],
                ptime: Some(30),
                dir: Direction::SendOnly,
            },
            // Video first, audio second; LF line ends.
            Case {
                sdp: "v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=video 5000 RTP/AVP 31\nm=audio 5002 RTP/AVP 18 0\n",
                addr: "::1",
                port: 5002,
                pts: &[18, 0],
                ptime: None,
                dir: Direction::SendRecv,
            },
        ];
        for c in cases {
            let o = parse(c.sdp).expect(c.sdp);
            assert_eq!(o.addr, c.addr.parse::<IpAddr>().unwrap());
            assert_eq!(o.port, c.port);
            assert_eq!(o.formats.iter().map(|f| f.pt).collect::<Vec<_>>(), c.pts);
            assert_eq!(o.ptime, c.ptime);
            assert_eq!(o.direction, c.dir);
        }
    }

    #[test]
    fn rejects_broken_offers() {
        let cases: &[(&str, SdpError)] = &[
            (
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 1 RTP/AVP 31\r\n",
                SdpError::NoAudio,
            ),
            ("v=0\r\nm=audio 1 RTP/AVP 0\r\n", SdpError::NoConnection),
            (
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
                SdpError::Malformed("m= port"),
            ),
            (
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 300\r\n",
                SdpError::Malformed("m= payload type"),
            ),
            ("garbage", SdpError::Malformed("line without '='")),
        ];
        let many = format!(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n{}",
            "m=video 0 RTP/AVP 31\r\n".repeat(16)
        );
        assert_eq!(
            parse(&many).unwrap_err(),
            SdpError::Malformed("more than 16 m= lines")
        );
        assert!(parse(&many.replacen("m=video 0 RTP/AVP 31\r\n", "", 1)).is_ok());
        for (sdp, err) in cases {
            assert_eq!(parse(sdp).unwrap_err(), *err, "{sdp}");
        }
    }

    #[test]
    fn negotiates_by_preference_and_mirrors_pts() {
        let o = parse(SIPP).unwrap();
        let n = negotiate(&o, &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(
            (n.codec, n.audio_pt, n.telephone_event_pt),
            (Codec::Pcmu, 0, Some(96))
        );
        let n = negotiate(&o, &[Codec::Pcma]).unwrap();
        assert_eq!((n.codec, n.audio_pt), (Codec::Pcma, 8));
        assert_eq!(n.remote, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(n.ptime_ms, 20);
        // A dynamic PT for PCMU is mirrored too.
        let dynamic = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7 RTP/AVP 112 113\r\na=rtpmap:112 pcmu/8000\r\na=rtpmap:113 telephone-event/8000\r\n";
        let n = negotiate(&parse(dynamic).unwrap(), &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(
            (n.codec, n.audio_pt, n.telephone_event_pt),
            (Codec::Pcmu, 112, Some(113))
        );
        let g729 = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7 RTP/AVP 18\r\n";
        assert_eq!(
            negotiate(&parse(g729).unwrap(), &[Codec::Pcmu]).unwrap_err(),
            SdpError::NoCommonCodec
        );
    }

    #[test]
    fn answer_and_offer_round_trip() {
        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let n = negotiate(&parse(SIPP).unwrap(), &[Codec::Pcmu]).unwrap();
        let a = answer(&n, local, 42, None);
        assert!(a.contains("m=audio 20000 RTP/AVP 0 96\r\n"), "{a}");
        assert!(a.contains("a=fmtp:96 0-16\r\n"));
        assert!(a.contains("o=sspr-ivr 42 42 IN IP4 127.0.0.1\r\n"));
        let back = parse(&a).unwrap();
        assert_eq!(back.port, 20000);
        assert_eq!(
            negotiate(&back, &[Codec::Pcmu]).unwrap().telephone_event_pt,
            Some(96)
        );
        assert_eq!(a, answer(&n, local, 42, None), "same session, same bytes");

        let o = offer(local, &[Codec::Pcma, Codec::Pcmu], 101, 20, 7);
        let parsed = parse(&o).unwrap();
        assert_eq!(
            parsed.formats.iter().map(|f| f.pt).collect::<Vec<_>>(),
            [8, 0, 101]
        );
        assert_eq!(parsed.ptime, Some(20));
        let n = negotiate(&parsed, &[Codec::Pcmu]).unwrap();
        assert_eq!((n.audio_pt, n.telephone_event_pt), (0, Some(101)));
    }

    /// A softphone with video on (Linphone, Zoiper, a PJSIP phone) offers a
    /// video stream around its audio: the answer declines each other stream
    /// with port 0 in its place, so it has as many `m=` lines as the offer
    /// (RFC 3264 §6; PJSIP ends a call whose answer has fewer).
    #[test]
    fn other_streams_are_declined_in_place() {
        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=video 5000 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\na=sendrecv\r\n\
            m=audio 5002 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=audio 5004 RTP/AVP 8\r\n\
            m=application 5006 UDP/BFCP *\r\n";
        let parsed = parse(offer).unwrap();
        assert_eq!(parsed.port, 5002, "the first audio stream is ours");
        let n = negotiate(&parsed, &[Codec::Pcmu]).unwrap();
        let a = answer(&n, local, 42, None);
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            [
                "m=video 0 RTP/AVP 96",
                "m=audio 20000 RTP/AVP 0 101",
                "m=audio 0 RTP/AVP 8",
                "m=application 0 UDP/BFCP *",
            ],
            "{a}"
        );
        // Our attributes stay in our section, none under a declined line.
        let ours = a.split("m=audio 20000").nth(1).unwrap();
        let ours = ours.split("m=audio 0").next().unwrap();
        assert!(ours.contains("a=rtpmap:0 PCMU/8000\r\n") && ours.contains("a=sendrecv\r\n"));
        assert!(
            a.ends_with("m=audio 0 RTP/AVP 8\r\nm=application 0 UDP/BFCP *\r\n"),
            "{a}"
        );
        let back = parse(&a).unwrap();
        assert_eq!((back.port, back.m_lines.len()), (20000, 4));

        // A plain offer still gets a plain answer.
        let plain = answer(
            &negotiate(&parse(SIPP).unwrap(), &[Codec::Pcmu]).unwrap(),
            local,
            42,
            None,
        );
        assert_eq!(plain.matches("m=").count(), 1);
    }

    /// A gateway that replaces the audio stream in a new offer: the old one
    /// stays as `m=audio 0` (removed) and the new one follows (RFC 3264
    /// §8.2). The call's stream is the new one; the old line is declined in
    /// the answer, in its place.
    #[test]
    fn a_removed_audio_stream_gives_way_to_the_one_after_it() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:30\r\na=sendonly\r\n\
            m=audio 7000 RTP/AVP 0 101\r\nc=IN IP4 10.0.0.2\r\na=rtpmap:101 telephone-event/8000\r\n";
        let o = parse(offer).unwrap();
        assert_eq!((o.addr, o.port), ("10.0.0.2".parse().unwrap(), 7000));
        assert_eq!(o.formats.iter().map(|f| f.pt).collect::<Vec<_>>(), [0, 101]);
        assert_eq!((o.ptime, o.direction), (None, Direction::SendRecv));
        assert_eq!(
            o.m_lines,
            [MLine::Declined("m=audio 0 RTP/AVP 8".into()), MLine::Audio]
        );
        // Only removed streams: the first is still ours (all on hold).
        let removed = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\nm=audio 0 RTP/AVP 8\r\n";
        let o = parse(removed).unwrap();
        assert_eq!((o.port, o.formats[0].pt), (0, 0));
        assert_eq!(o.m_lines[0], MLine::Audio);
    }

    /// A phone that offers SRTP "if it can" lists the stream twice,
    /// `RTP/SAVP` then `RTP/AVP`: both are candidates, in that order, each
    /// laid out with the other declined; its hold repeats both lines, and a
    /// plain call on the second is answered there (the SRTP line cannot fit
    /// it).
    #[test]
    fn a_stream_offered_with_and_without_srtp_is_answered_on_the_one_taken() {
        let key = crate::media::srtp::MasterKey::generate(&mut rand::rngs::OsRng);
        let offer = format!(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 7000 RTP/SAVP 0 101\r\n{}a=rtpmap:101 telephone-event/8000\r\n\
             m=audio 7002 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            CryptoAttr {
                tag: 1,
                suite: crate::media::srtp::Suite::AesCm128HmacSha1_80,
                key
            }
            .to_sdp()
            .as_str()
        );
        let c = parse_candidates(&offer).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].proto.as_str(), c[0].port, c[0].crypto.len()),
            (SAVP, 7000, 1)
        );
        assert_eq!(
            (c[1].proto.as_str(), c[1].port, c[1].crypto.len()),
            (AVP, 7002, 0)
        );
        assert_eq!(c[1].formats, c[0].formats);
        assert_eq!(
            c[1].m_lines,
            [MLine::Declined("m=audio 0 RTP/SAVP 0".into()), MLine::Audio]
        );
        assert_eq!(parse(&offer).unwrap(), c[0]);

        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let plain = answer(&negotiate(&c[1], &[Codec::Pcmu]).unwrap(), local, 42, None);
        assert!(
            plain.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 20000 RTP/AVP 0 101\r\n"),
            "{plain}"
        );
        let hold = offer.replace(
            "telephone-event/8000\r\n",
            "telephone-event/8000\r\na=sendonly\r\n",
        );
        let (held, theirs, crypto) = reanswer(&plain, &hold).unwrap();
        assert_eq!((theirs.port, crypto), (7002, None));
        assert!(held.contains("o=sspr-ivr 42 43 IN IP4"), "{held}");
        assert!(
            held.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 20000 RTP/AVP 0 101\r\n"),
            "{held}"
        );
        assert!(held.ends_with("a=recvonly\r\n"), "{held}");

        // A later audio line that cannot be read is declined, not fatal.
        let broken = format!("{offer}m=audio 7004 RTP/AVP x\r\n");
        assert_eq!(parse_candidates(&broken).unwrap().len(), 2);
        assert_eq!(parse(&broken).unwrap().m_lines.len(), 3);
    }

    /// A new offer that adds video to an audio call (a softphone's user turns
    /// the camera on): the answer mirrors the new layout under a new version;
    /// the same offer again is answered byte for byte (RFC 3264 §8).
    #[test]
    fn a_new_offer_adding_video_is_answered_with_it_declined() {
        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let first = answer(
            &negotiate(&parse(SIPP).unwrap(), &[Codec::Pcmu]).unwrap(),
            local,
            42,
            None,
        );
        let with_video = format!("{SIPP}m=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
        let (a, _, _) = reanswer(&first, &with_video).unwrap();
        assert!(a.contains("o=sspr-ivr 42 43 IN IP4"), "{a}");
        assert!(a.ends_with("a=sendrecv\r\nm=video 0 RTP/AVP 96\r\n"), "{a}");
        let (again, _, _) = reanswer(&a, &with_video).unwrap();
        assert_eq!(again, a, "an unchanged description, byte for byte");
        // A hold in the same layout: one version more, the layout kept.
        let hold = with_video.replace(
            "m=audio 6000 RTP/AVP 8 0 96\r\n",
            "m=audio 6000 RTP/AVP 8 0 96\r\na=sendonly\r\n",
        );
        let (held, _, _) = reanswer(&a, &hold).unwrap();
        assert!(held.contains("o=sspr-ivr 42 44 IN IP4"), "{held}");
        assert!(
            held.contains("a=recvonly\r\nm=video 0 RTP/AVP 96\r\n"),
            "{held}"
        );
        // Our offer to a re-INVITE without one keeps the declined line.
        let ours = reoffer(&held);
        assert!(
            ours.contains("a=sendrecv\r\nm=video 0 RTP/AVP 96\r\n"),
            "{ours}"
        );
    }

    /// A caller's later offer in the same session: the next version, and
    /// with a key `RTP/SAVP` and the attribute, which read back as sent.
    #[test]
    fn a_versioned_offer_with_a_key_reads_back() {
        use crate::media::srtp::{MasterKey, Suite};
        let local: SocketAddr = "127.0.0.1:30000".parse().unwrap();
        let attr = CryptoAttr {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::generate(&mut rand::rngs::OsRng),
        };
        let o = offer_version(local, &[Codec::Pcmu], 101, 20, 7, 9, Some(&attr));
        assert!(o.contains("o=sspr-ivr 7 9 IN IP4 127.0.0.1\r\n"), "{o}");
        let parsed = parse(&o).unwrap();
        assert_eq!(parsed.proto, SAVP);
        assert_eq!(parsed.crypto, vec![attr]);
        assert_eq!(
            offer_version(local, &[Codec::Pcmu], 101, 20, 7, 7, None),
            offer(local, &[Codec::Pcmu], 101, 20, 7)
        );
    }

    #[test]
    fn a_new_offer_on_an_srtp_call_keeps_our_key_and_returns_theirs() {
        use crate::media::srtp::MasterKey;
        let gen = || MasterKey::generate(&mut rand::rngs::OsRng);
        let theirs = |tag: u32, suite: &str, key: &MasterKey, proto: &str| {
            let attr = CryptoAttr {
                tag,
                suite: crate::media::srtp::Suite::from_name(suite).unwrap(),
                key: key.clone(),
            };
            format!(
                "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 7000 {proto} 0 101\r\n{}a=rtpmap:101 telephone-event/8000\r\n",
                attr.to_sdp().as_str()
            )
        };
        let first_key = gen();
        let o = parse(&theirs(1, "AES_CM_128_HMAC_SHA1_80", &first_key, SAVP)).unwrap();
        let n = negotiate(&o, &[Codec::Pcmu]).unwrap();
        let ours = CryptoAttr {
            key: gen(),
            ..n.crypto.clone().unwrap()
        };
        let local = answer(&n, "127.0.0.1:20000".parse().unwrap(), 1, Some(&ours));
        let suite = "AES_CM_128_HMAC_SHA1_80";
        // The same key again (a refresh), and a new one: the same answer,
        // byte for byte; the offer's key is returned either way.
        for key in [first_key, gen()] {
            let (a, _, got) = reanswer(&local, &theirs(1, suite, &key, SAVP)).unwrap();
            assert_eq!(a, local);
            assert_eq!(got.map(|c| c.key), Some(key));
        }
        // Under another tag: our key under the offer's tag, version raised.
        let (a, _, got) = reanswer(&local, &theirs(5, suite, &gen(), SAVP)).unwrap();
        assert_eq!(got.map(|c| c.tag), Some(5));
        let back = parse(&a).unwrap();
        assert_eq!(
            back.crypto,
            vec![CryptoAttr {
                tag: 5,
                ..ours.clone()
            }]
        );
        assert!(a.contains("o=sspr-ivr 1 2 "), "{a}");
        // No key in our suite, or plain RTP: refused, the session as it was.
        for offer in [
            theirs(1, "AES_CM_128_HMAC_SHA1_32", &gen(), SAVP),
            OFFER_PLAIN.to_string(),
        ] {
            assert_eq!(reanswer(&local, &offer).err(), Some(ReofferError::Srtp));
        }
        assert_eq!(ReofferError::Srtp.warning().code, 302);
        // A plain call: an offer that insists on SRTP is refused; one that
        // merely carries keys is answered plain.
        let plain = answer(&n, "127.0.0.1:20000".parse().unwrap(), 1, None);
        assert!(!plain.contains("a=crypto"));
        assert_eq!(
            reanswer(&plain, &theirs(1, suite, &gen(), SAVP)).err(),
            Some(ReofferError::Srtp)
        );
        let (a, _, got) = reanswer(&plain, &theirs(1, suite, &gen(), "RTP/AVP")).unwrap();
        assert_eq!((a, got), (plain.clone(), None));
    }

    const OFFER_PLAIN: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn sdes_offers_are_read_and_answered_with_our_key() {
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let offer = format!(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 7000 RTP/SAVP 0 101\r\n\
             a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{key}{key}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^31\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n\
             a=rtpmap:101 telephone-event/8000\r\n"
        );
        let o = parse(&offer).unwrap();
        assert_eq!(o.proto, SAVP);
        assert_eq!(o.crypto.iter().map(|c| c.tag).collect::<Vec<_>>(), [2, 3]);
        let n = negotiate(&o, &[Codec::Pcmu]).unwrap();
        assert!(n.savp);
        let theirs = n.crypto.clone().unwrap();
        assert_eq!(theirs.tag, 2);
        let ours = CryptoAttr {
            key: crate::media::srtp::MasterKey::generate(&mut rand::rngs::OsRng),
            ..theirs
        };
        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let a = answer(&n, local, 1, Some(&ours));
        assert!(a.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{a}");
        assert!(
            a.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{a}"
        );
        assert!(!a.contains(key), "our key, never the caller's");
        let back = parse(&a).unwrap();
        assert_eq!(back.crypto, vec![ours]);
        assert!(!format!("{o:?} {n:?}").contains(key));
        // A broken attribute is a broken offer.
        let bad = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:@@\r\n";
        assert!(matches!(parse(bad), Err(SdpError::Crypto(_))));
    }

    #[test]
    fn a_late_answer_may_pick_any_codec_we_offered() {
        let local: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let ours = offer(local, &[Codec::Pcmu, Codec::Pcma], 101, 20, 7);
        let answer = |m: &str| {
            format!(
                "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio {m}\r\na=rtpmap:101 telephone-event/8000\r\n"
            )
        };
        let pcma = accept_late_answer(&ours, &answer("41000 RTP/AVP 8 101")).unwrap();
        assert_eq!(pcma.port, 41000);
        assert_eq!(
            negotiate(&pcma, &[Codec::Pcmu, Codec::Pcma]).unwrap().codec,
            Codec::Pcma
        );
        for (m, e) in [
            ("41000 RTP/AVP 18 101", ReofferError::Codec),
            ("41000 RTP/AVP 101", ReofferError::Codec),
            ("0 RTP/AVP 0 101", ReofferError::Codec),
            ("41000 RTP/SAVP 0 101", ReofferError::Srtp),
        ] {
            assert_eq!(accept_late_answer(&ours, &answer(m)).err(), Some(e), "{m}");
        }
        let v6 = answer("41000 RTP/AVP 0").replace("IP4 127.0.0.1", "IP6 ::1");
        assert_eq!(
            accept_late_answer(&ours, &v6).err(),
            Some(ReofferError::AddressFamily)
        );
        assert_eq!(
            accept_late_answer(&ours, "nonsense").err(),
            Some(ReofferError::Unusable)
        );
    }
}
