//! SRTP with SDES keys (RFC 3711, RFC 4568), sans-IO: the `a=crypto` attribute,
//! the master keys it carries, and the per-call transform that protects every RTP
//! packet the call sends and unprotects every one it receives.
//!
//! The transform sits at one point of a call ([`crate::call::Call`]): packets are
//! unprotected before the media session sees them and protected after it wrote them,
//! so DTMF (all three forms), recording and the media-trust rules work on clear RTP
//! exactly as they do without SRTP. Crypto is `webrtc-srtp` (AES-CM-128 with
//! HMAC-SHA1-80 or -32); replay protection is on (a 64-packet window, RFC 3711
//! §3.3.2). A packet that fails authentication or replays is dropped and counted.
//!
//! Keys are secrets: [`MasterKey`] is zeroized when dropped, its `Debug` prints no
//! byte of it, and the SDP line that carries it ([`CryptoAttr::to_sdp`]) is handed
//! out in a [`Zeroizing`] string. The session keys `webrtc-srtp` derives inside its
//! contexts are not zeroized by that crate when a call ends (its types do not
//! allow it); they live only as long as the call. Our own key is drawn by the runtime from a CSPRNG
//! and passed in ([`MasterKey::generate`] takes the generator): nothing here uses a
//! global RNG. Limits, deliberately: no MKI, no key lifetime enforcement (a call is
//! far shorter than 2^31 packets), no session parameters (`UNENCRYPTED_SRTP`...:
//! an attribute carrying any is not accepted), no SRTCP (the server sends and reads
//! no RTCP at all), no AES-256 or GCM suites.

use std::collections::HashSet;
use std::fmt;
use subtle::ConstantTimeEq;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;
use zeroize::Zeroizing;

/// Master key (16 bytes) and master salt (14 bytes), as SDES carries them.
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
const MASTER_LEN: usize = KEY_LEN + SALT_LEN;

/// Replay window in packets (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 64;

/// Distinct SSRCs an unauthenticated packet may make the receive context track.
/// `webrtc-srtp` keeps state per SSRC before it checks the tag; past this many,
/// packets with a new SSRC are dropped unread so a flood of forged SSRCs cannot
/// grow a call's memory.
const MAX_SSRCS: usize = 8;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrtpError {
    #[error("malformed a=crypto attribute: {0}")]
    Malformed(&'static str),
    #[error("SRTP packet rejected: {0}")]
    Rejected(&'static str),
}

/// `media.srtp`: whether calls use SRTP. Keys are offered and accepted only on
/// calls whose INVITE came over TLS (SDES keys travel in the SDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Never: an offer that insists on SRTP (`RTP/SAVP`) gets `488`.
    Off,
    /// SRTP when a TLS call offers a key we can use, plain RTP otherwise; an
    /// `RTP/SAVP` offer over clear signalling gets `488`.
    #[default]
    Optional,
    /// Every call: SRTP over TLS or `488`.
    Required,
}

/// The SRTP crypto suites we speak (RFC 4568 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// An SRTP master key and salt. Zeroized on drop; `Debug` shows no byte of it;
/// compared in constant time (a peer's new key against the one in use, on a
/// re-offer, takes as long whichever bytes differ).
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; MASTER_LEN]>);

impl PartialEq for MasterKey {
    fn eq(&self, other: &MasterKey) -> bool {
        bool::from(self.0[..].ct_eq(&other.0[..]))
    }
}

impl Eq for MasterKey {}

impl MasterKey {
    /// A fresh key from `rng`, which must be a cryptographic generator.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> MasterKey {
        let mut k = Zeroizing::new([0u8; MASTER_LEN]);
        rng.fill_bytes(&mut k[..]);
        MasterKey(k)
    }

    /// From the base64 of an `inline:` key parameter.
    fn from_base64(text: &str) -> Result<MasterKey, SrtpError> {
        let mut raw = Zeroizing::new(Vec::with_capacity(MASTER_LEN + 2));
        STANDARD
            .decode_vec(text, &mut raw)
            .map_err(|_| SrtpError::Malformed("inline key is not base64"))?;
        if raw.len() != MASTER_LEN {
            return Err(SrtpError::Malformed("inline key is not 30 bytes"));
        }
        let mut k = Zeroizing::new([0u8; MASTER_LEN]);
        k.copy_from_slice(&raw);
        Ok(MasterKey(k))
    }

    fn base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    fn key(&self) -> &[u8] {
        &self.0[..KEY_LEN]
    }

    fn salt(&self) -> &[u8] {
        &self.0[KEY_LEN..]
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// One `a=crypto` attribute: `<tag> <suite> inline:<key||salt>[|lifetime]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoAttr {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

impl CryptoAttr {
    /// Parse the value after `a=crypto:`. `Ok(None)`: well formed, but a suite or
    /// a parameter we do not speak (an MKI, session parameters, several keys) —
    /// the offer may carry another attribute we can take.
    pub fn parse(value: &str) -> Result<Option<CryptoAttr>, SrtpError> {
        let mut it = value.split_whitespace();
        let (Some(tag), Some(suite), Some(params)) = (it.next(), it.next(), it.next()) else {
            return Err(SrtpError::Malformed("needs tag, suite and key parameters"));
        };
        let tag: u32 = tag
            .parse()
            .ok()
            .filter(|t| *t < 1_000_000_000)
            .ok_or(SrtpError::Malformed("tag"))?;
        if it.next().is_some() || params.contains(';') {
            return Ok(None);
        }
        let Some(suite) = Suite::from_name(suite) else {
            return Ok(None);
        };
        let Some(inline) = params.strip_prefix("inline:") else {
            return Err(SrtpError::Malformed("key method is not inline"));
        };
        let mut parts = inline.split('|');
        let key = MasterKey::from_base64(parts.next().unwrap_or_default())?;
        let lifetime = parts.next();
        if parts.next().is_some() || lifetime.is_some_and(|l| l.contains(':')) {
            // An MKI (`|1:4`): every packet would carry one; not supported.
            return Ok(None);
        }
        Ok(Some(CryptoAttr { tag, suite, key }))
    }

    /// The attribute's SDP line (`a=crypto:...\r\n`), a secret itself.
    pub fn to_sdp(&self) -> Zeroizing<String> {
        let key = self.key.base64();
        let mut line = Zeroizing::new(String::with_capacity(80));
        line.push_str("a=crypto:");
        line.push_str(&self.tag.to_string());
        line.push(' ');
        line.push_str(self.suite.name());
        line.push_str(" inline:");
        line.push_str(&key);
        line.push_str("\r\n");
        line
    }
}

/// What a call needs for SRTP: the suite, our key (we send with it) and the
/// peer's (it sends with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: Suite,
    pub local: MasterKey,
    pub remote: MasterKey,
}

/// Packets the transform dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Failed authentication, replayed, or too short to be SRTP.
    pub rejected: u64,
    /// Carried an SSRC past [`MAX_SSRCS`] and were not read.
    pub ssrc_overflow: u64,
}

/// The per-call SRTP transform (one context each way).
pub struct SrtpTransform {
    tx: Context,
    rx: Context,
    suite: Suite,
    /// The key `rx` was made from ([`Self::rekey_remote`] compares).
    remote: MasterKey,
    /// SSRCs the receive context already tracks.
    rx_ssrcs: HashSet<u32>,
    stats: SrtpStats,
}

impl fmt::Debug for SrtpTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpTransform")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn context(suite: Suite, k: &MasterKey) -> Context {
    Context::new(
        k.key(),
        k.salt(),
        suite.profile(),
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .expect("SDES master key and salt have the profile's lengths")
}

impl SrtpTransform {
    pub fn new(keys: &SrtpKeys) -> SrtpTransform {
        SrtpTransform {
            tx: context(keys.suite, &keys.local),
            rx: context(keys.suite, &keys.remote),
            suite: keys.suite,
            remote: keys.remote.clone(),
            rx_ssrcs: HashSet::new(),
            stats: SrtpStats::default(),
        }
    }

    /// The peer sends with `key` from now on (a new offer carried it, RFC
    /// 4568 §7.1.4): a fresh receive context (rollover counters and replay
    /// windows start again) if it is not the key in use. Whether it changed.
    pub fn rekey_remote(&mut self, key: &MasterKey) -> bool {
        if *key == self.remote {
            return false;
        }
        self.rx = context(self.suite, key);
        self.remote = key.clone();
        self.rx_ssrcs.clear();
        true
    }

    /// Send with `key` from now on (we offered it and the offer was
    /// answered): a fresh send context.
    pub fn rekey_local(&mut self, key: &MasterKey) {
        self.tx = context(self.suite, key);
    }

    /// Protect the RTP packet in `buf`, in place (the buffer is reused).
    pub fn protect(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let out = self
            .tx
            .encrypt_rtp(buf)
            .map_err(|_| SrtpError::Rejected("cannot protect"))?;
        buf.clear();
        buf.extend_from_slice(&out);
        Ok(())
    }

    /// Unprotect one received datagram into `out` (its old content replaced).
    pub fn unprotect(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        let Some(ssrc) = data.get(8..12) else {
            self.stats.rejected += 1;
            return Err(SrtpError::Rejected("too short"));
        };
        let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
        if !self.rx_ssrcs.contains(&ssrc) {
            if self.rx_ssrcs.len() >= MAX_SSRCS {
                self.stats.ssrc_overflow += 1;
                return Err(SrtpError::Rejected("too many SSRCs"));
            }
            self.rx_ssrcs.insert(ssrc);
        }
        match self.rx.decrypt_rtp(data) {
            Ok(clear) => {
                out.extend_from_slice(&clear);
                Ok(())
            }
            Err(_) => {
                self.stats.rejected += 1;
                Err(SrtpError::Rejected("authentication or replay check failed"))
            }
        }
    }

    pub fn stats(&self) -> SrtpStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn pair(suite: Suite) -> (SrtpTransform, SrtpTransform) {
        let mut rng = StdRng::seed_from_u64(7);
        let a = MasterKey::generate(&mut rng);
        let b = MasterKey::generate(&mut rng);
        let us = SrtpKeys {
            suite,
            local: a.clone(),
            remote: b.clone(),
        };
        let them = SrtpKeys {
            suite,
            local: b,
            remote: a,
        };
        (SrtpTransform::new(&us), SrtpTransform::new(&them))
    }

    #[test]
    fn parses_and_prints_crypto_attributes() {
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let cases: &[(String, Option<(u32, Suite)>)] = &[
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}"),
                Some((1, Suite::AesCm128HmacSha1_80)),
            ),
            (
                format!("2 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^20"),
                Some((2, Suite::AesCm128HmacSha1_32)),
            ),
            // An MKI, session parameters, an unknown suite: not for us.
            (
                format!("3 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4"),
                None,
            ),
            (
                format!("4 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
                None,
            ),
            (format!("5 AES_256_CM_HMAC_SHA1_80 inline:{key}"), None),
        ];
        for (text, want) in cases {
            let got = CryptoAttr::parse(text).unwrap();
            assert_eq!(got.as_ref().map(|c| (c.tag, c.suite)), *want, "{text}");
            if let Some(c) = got {
                let line = c.to_sdp();
                let back = line
                    .strip_prefix("a=crypto:")
                    .and_then(|l| l.strip_suffix("\r\n"))
                    .unwrap();
                assert_eq!(CryptoAttr::parse(back).unwrap(), Some(c));
            }
        }
        for bad in [
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
        ] {
            assert!(CryptoAttr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_both_suites_and_reject_forgery_and_replay() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let (mut us, mut them) = pair(suite);
            let payload = [0xffu8; 160];
            let mut buf = rtp(1, &payload);
            us.protect(&mut buf).unwrap();
            let tag = if suite == Suite::AesCm128HmacSha1_80 {
                10
            } else {
                4
            };
            assert_eq!(buf.len(), 12 + 160 + tag);
            assert_ne!(&buf[12..172], &payload[..], "payload is encrypted");
            let mut out = Vec::new();
            them.unprotect(&buf, &mut out).unwrap();
            assert_eq!(out, rtp(1, &payload));
            // The same packet again: a replay.
            assert!(them.unprotect(&buf, &mut out).is_err());
            // A flipped payload bit: fails authentication.
            let mut next = rtp(2, &payload);
            us.protect(&mut next).unwrap();
            next[20] ^= 1;
            assert!(them.unprotect(&next, &mut out).is_err());
            // Clear RTP is not SRTP.
            assert!(them.unprotect(&rtp(3, &payload), &mut out).is_err());
            assert_eq!(them.stats().rejected, 3);
        }
    }

    /// The peer re-keys in a new offer: its packets under the new key are
    /// read from then on (sequence numbers starting anywhere), the old key's
    /// are refused; the same key again changes nothing.
    #[test]
    fn a_new_remote_key_takes_over_the_receive_side() {
        let (mut us, mut them) = pair(Suite::AesCm128HmacSha1_80);
        let payload = [0x55u8; 160];
        let mut out = Vec::new();
        let mut old = rtp(100, &payload);
        them.protect(&mut old).unwrap();
        us.unprotect(&old, &mut out).unwrap();
        let same = us.remote.clone();
        assert!(!us.rekey_remote(&same), "the same key: no change");
        // The peer's new sending key, and a fresh context on its side.
        let new_key = MasterKey::generate(&mut StdRng::seed_from_u64(9));
        let mut peer = SrtpTransform::new(&SrtpKeys {
            suite: Suite::AesCm128HmacSha1_80,
            local: new_key.clone(),
            remote: new_key.clone(),
        });
        let mut fresh = rtp(7, &payload);
        peer.protect(&mut fresh).unwrap();
        assert!(us.unprotect(&fresh, &mut out).is_err(), "unknown key yet");
        assert!(us.rekey_remote(&new_key));
        us.unprotect(&fresh, &mut out).unwrap();
        assert_eq!(out, rtp(7, &payload));
        let mut stale = rtp(101, &payload);
        them.protect(&mut stale).unwrap();
        assert!(
            us.unprotect(&stale, &mut out).is_err(),
            "the old key's packet"
        );
        // Our sending side is untouched: the peer's old context still reads us.
        let mut ours = rtp(1, &payload);
        us.protect(&mut ours).unwrap();
        them.unprotect(&ours, &mut out).unwrap();
    }

    #[test]
    fn forged_ssrcs_are_bounded() {
        let (_, mut them) = pair(Suite::AesCm128HmacSha1_80);
        let mut out = Vec::new();
        for ssrc in 0..100u32 {
            let mut p = rtp(1, &[0; 20]);
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            assert!(them.unprotect(&p, &mut out).is_err());
        }
        assert_eq!(them.stats().ssrc_overflow, 100 - MAX_SSRCS as u64);
    }

    #[test]
    fn keys_never_show_in_debug() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = MasterKey::generate(&mut rng);
        let b64 = key.base64().to_string();
        let attr = CryptoAttr {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: key.clone(),
        };
        let keys = SrtpKeys {
            suite: attr.suite,
            local: key.clone(),
            remote: key,
        };
        let shown = format!("{attr:?} {keys:?} {:?}", SrtpTransform::new(&keys));
        assert!(!shown.contains(&b64), "{shown}");
        assert!(!shown.contains(&b64[..8]), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
