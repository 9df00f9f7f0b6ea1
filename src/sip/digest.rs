//! Digest authentication for the requests this server sends (RFC 3261 §22.2–§22.4,
//! RFC 8760): read the challenges of a `401` (`WWW-Authenticate`) or `407`
//! (`Proxy-Authenticate`), pick one, and answer it with an `Authorization` or
//! `Proxy-Authorization` header.
//!
//! Choice: the strongest algorithm offered — SHA-512-256, then SHA-256, then MD5 (the
//! `-sess` variants count as their base) — and among equals the topmost header, as
//! RFC 8760 §2.4 asks. With `qop` offered, `auth` is used (with `nc` and a `cnonce`);
//! `auth-int` only when it is the only choice (over the empty REGISTER body); without
//! `qop`, the RFC 2069 form. The hash arithmetic is the `digest_auth` crate's (on
//! RustCrypto's `md-5` and `sha2`); this module parses the SIP header grammar itself,
//! case-insensitively and without panicking on any input, because that crate's HTTP
//! parser is neither.
//!
//! The client nonce comes from the caller (the registration's [`TokenRng`](super::TokenRng)),
//! so nothing here draws a random number. The password arrives as a [`Secret`] and is
//! only handed to the hash; `Debug` of a [`Challenge`] shows no secret because it holds none.

use digest_auth::{
    Algorithm, AlgorithmType, AuthContext, Charset, HttpMethod, Qop, WwwAuthenticateHeader,
};

use super::message::{split_list, Header, Message};
use crate::secret::Secret;

/// Longest challenge value considered; longer ones are ignored.
const MAX_CHALLENGE: usize = 4096;

/// Why a `401`/`407` cannot be answered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    #[error("the response has no Digest challenge with an algorithm and qop this server supports")]
    NoUsableChallenge,
}

/// One Digest challenge, ready to be answered (and answered again with the next `nc`).
#[derive(Clone, Debug)]
pub struct Challenge {
    inner: WwwAuthenticateHeader,
    /// From `Proxy-Authenticate` (a `407`): answered with `Proxy-Authorization`.
    proxy: bool,
}

impl Challenge {
    /// The challenge to answer in a `401` or `407` response: every `WWW-Authenticate`
    /// (or `Proxy-Authenticate`) value is read, and the strongest supported one wins.
    pub fn from_response(msg: &Message) -> Result<Challenge, DigestError> {
        let proxy = msg.status() == Some(407);
        let name = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let mut best: Option<Challenge> = None;
        for value in msg.headers_named(name) {
            for one in split_challenges(value) {
                let Some(c) = Challenge::parse(&one, proxy) else {
                    continue;
                };
                if best.as_ref().is_none_or(|b| c.strength() > b.strength()) {
                    best = Some(c);
                }
            }
        }
        best.ok_or(DigestError::NoUsableChallenge)
    }

    /// Parse one challenge (`Digest realm="…", nonce="…", …`). `None` when it is not
    /// Digest, lacks realm or nonce, or names an algorithm or qop we cannot do.
    pub fn parse(value: &str, proxy: bool) -> Option<Challenge> {
        if value.len() > MAX_CHALLENGE {
            return None;
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = false;
        let mut algorithm = Algorithm::new(AlgorithmType::MD5, false);
        let mut qop = None;
        let mut userhash = false;
        let mut charset = Charset::ASCII;
        for item in split_list(rest) {
            let (name, raw) = item.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            let v = unquote(raw.trim())?;
            match name.as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                "algorithm" => algorithm = parse_algorithm(&v)?,
                "qop" => qop = Some(parse_qop(&v)?),
                "userhash" => userhash = v.eq_ignore_ascii_case("true"),
                "charset" if v.eq_ignore_ascii_case("UTF-8") => charset = Charset::UTF8,
                _ => {}
            }
        }
        Some(Challenge {
            inner: WwwAuthenticateHeader {
                domain: None,
                realm: realm?,
                nonce: nonce?,
                opaque,
                stale,
                algorithm,
                qop,
                userhash,
                charset,
                nc: 0,
            },
            proxy,
        })
    }

    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    pub fn nonce(&self) -> &str {
        &self.inner.nonce
    }

    /// From `Proxy-Authenticate` (answered with `Proxy-Authorization`).
    pub fn is_proxy(&self) -> bool {
        self.proxy
    }

    /// `stale=true`: the nonce expired, the credentials were fine.
    pub fn is_stale(&self) -> bool {
        self.inner.stale
    }

    /// The algorithm token, as sent back (`MD5`, `SHA-256`, …).
    pub fn algorithm(&self) -> String {
        self.inner.algorithm.to_string()
    }

    /// Answer the challenge for a request `method` to `uri` (the Request-URI, verbatim).
    /// Each answer counts `nc` up, so a cached challenge can sign the next request too.
    pub fn authorize(
        &mut self,
        method: &str,
        uri: &str,
        username: &str,
        password: &Secret,
        cnonce: &str,
    ) -> Header {
        let body: Option<&[u8]> = match &self.inner.qop {
            Some(q) if !q.contains(&Qop::AUTH) => Some(b""),
            _ => None,
        };
        let mut ctx = AuthContext::new_with_method(
            username,
            password.expose(),
            uri,
            body,
            HttpMethod::from(method),
        );
        ctx.set_custom_cnonce(cnonce);
        // Answer with `auth` whenever it is offered (the crate would prefer auth-int).
        let mut prompt = self.inner.clone();
        if prompt.qop.as_ref().is_some_and(|q| q.contains(&Qop::AUTH)) {
            prompt.qop = Some(vec![Qop::AUTH]);
        }
        let value = match prompt.respond(&ctx) {
            Ok(h) => h.to_header_string(),
            // Only a qop list without auth or auth-int fails, and parse() refuses those.
            Err(_) => unreachable!("qop validated at parse"),
        };
        self.inner.nc = prompt.nc;
        let name = if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        Header::new(name, value)
    }

    fn strength(&self) -> u8 {
        match self.inner.algorithm.algo {
            AlgorithmType::MD5 => 1,
            AlgorithmType::SHA2_256 => 2,
            AlgorithmType::SHA2_512_256 => 3,
        }
    }
}

/// A header value may hold several challenges (`Digest a=1, b=2, Digest c=3`): a new
/// one starts at a list element of the form `scheme name=value`.
fn split_challenges(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in split_list(value) {
        let starts_new = item
            .split_once(|c: char| c.is_ascii_whitespace())
            .is_some_and(|(first, _)| !first.contains('='));
        match out.last_mut() {
            Some(cur) if !starts_new => {
                cur.push_str(", ");
                cur.push_str(&item);
            }
            _ => out.push(item),
        }
    }
    out
}

/// A token or a quoted-string (with `\` escapes) as its plain value.
fn unquote(raw: &str) -> Option<String> {
    let Some(inner) = raw.strip_prefix('"') else {
        return (!raw.is_empty() && !raw.contains(char::is_whitespace)).then(|| raw.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

fn parse_algorithm(v: &str) -> Option<Algorithm> {
    let upper = v.to_ascii_uppercase();
    let (base, sess) = match upper.strip_suffix("-SESS") {
        Some(b) => (b, true),
        None => (upper.as_str(), false),
    };
    let algo = match base {
        "MD5" => AlgorithmType::MD5,
        "SHA-256" => AlgorithmType::SHA2_256,
        "SHA-512-256" => AlgorithmType::SHA2_512_256,
        _ => return None,
    };
    Some(Algorithm::new(algo, sess))
}

/// `qop="auth,auth-int"`: the options we can do; `None` when there is none.
fn parse_qop(v: &str) -> Option<Vec<Qop>> {
    let qops: Vec<Qop> = v
        .split(',')
        .filter_map(|q| match q.trim().to_ascii_lowercase().as_str() {
            "auth" => Some(Qop::AUTH),
            "auth-int" => Some(Qop::AUTH_INT),
            _ => None,
        })
        .collect();
    (!qops.is_empty()).then_some(qops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Datagram, Message};

    fn param<'a>(header: &'a str, name: &str) -> &'a str {
        let key = format!("{name}=");
        let start = header.find(&key).expect(name) + key.len();
        let rest = &header[start..];
        let rest = rest.trim_start_matches('"');
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        &rest[..end]
    }

    /// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn rfc7616_vectors() {
        let password = Secret::new("Circle of Life");
        for (alg, want) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let v = format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            );
            let mut c = Challenge::parse(&v, false).expect("parses");
            let h = c.authorize(
                "GET",
                "/dir/index.html",
                "Mufasa",
                &password,
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            );
            assert_eq!(h.name, "Authorization");
            assert_eq!(param(&h.value, "response"), want, "{alg}");
            assert_eq!(param(&h.value, "qop"), "auth");
            assert_eq!(param(&h.value, "nc"), "00000001");
            assert_eq!(param(&h.value, "algorithm"), alg);
            assert_eq!(
                param(&h.value, "opaque"),
                "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
            );
            let again = c.authorize("GET", "/dir/index.html", "Mufasa", &password, "x");
            assert_eq!(param(&again.value, "nc"), "00000002", "nc counts up");
        }
    }

    fn response(text: &str) -> Message {
        match crate::sip::message::parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(Datagram::Message(p)) => p.message,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn strongest_challenge_wins_topmost_among_equals() {
        let msg = response(
            "SIP/2.0 401 Unauthorized\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"md5\", algorithm=MD5, qop=\"auth\"\n\
             www-authenticate: digest REALM=\"r\", NONCE=\"sha\", algorithm=sha-256, qop=\"auth\"\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"sha2\", algorithm=SHA-256\n\
             WWW-Authenticate: Digest realm=\"r\", nonce=\"new\", algorithm=SHA-999\n\
             Content-Length: 0\n\n",
        );
        let c = Challenge::from_response(&msg).unwrap();
        assert_eq!((c.nonce(), c.algorithm().as_str()), ("sha", "SHA-256"));
        // Two challenges joined in one header line.
        let msg = response(
            "SIP/2.0 407 Proxy Authentication Required\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\n\
             Proxy-Authenticate: Digest realm=\"r\", nonce=\"a\", Digest realm=\"r\", nonce=\"b\", algorithm=SHA-512-256-sess\n\
             Content-Length: 0\n\n",
        );
        let mut c = Challenge::from_response(&msg).unwrap();
        assert_eq!(c.nonce(), "b");
        let h = c.authorize("REGISTER", "sip:r", "u", &Secret::new("p"), "cn");
        assert_eq!(h.name, "Proxy-Authorization");
        assert_eq!(param(&h.value, "algorithm"), "SHA-512-256-sess");
        // RFC 2069 form without qop: no nc, no cnonce.
        assert!(!h.value.contains("cnonce"), "{}", h.value);
    }

    #[test]
    fn hostile_and_unusable_challenges() {
        for bad in [
            "Basic realm=\"r\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"r\"",
            "Digest realm=\"r, nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
            "Digest",
            "",
        ] {
            assert!(Challenge::parse(bad, false).is_none(), "{bad}");
        }
        // Non-ASCII and escapes: parsed, never a panic.
        let c = Challenge::parse(
            "Digest realm=\"é\\\"x\", nonce=\"ñ\", qop=auth-int, stale=TRUE",
            false,
        )
        .unwrap();
        assert_eq!(c.realm(), "é\"x");
        assert!(c.is_stale());
        let mut c = c;
        let h = c.authorize("REGISTER", "sip:x", "u", &Secret::new("p"), "cn");
        assert_eq!(param(&h.value, "qop"), "auth-int");
        let long = format!("Digest realm=\"{}\", nonce=\"n\"", "r".repeat(5000));
        assert!(Challenge::parse(&long, false).is_none());
    }
}
