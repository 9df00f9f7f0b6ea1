//! The SIP layer's randomness: To/From tags, Via branches and Call-IDs.
//!
//! Each [`Endpoint`](super::Endpoint) and [`Uac`](super::uac::Uac) holds its own
//! [`TokenRng`] instead of reaching for a global generator, so the layer stays sans-IO
//! and a test can seed it and get the same tags every run. The runtime seeds it once
//! from the OS CSPRNG ([`TokenRng::from_seed`] with `rand::random()`); the generator is
//! `StdRng` (ChaCha), so tags and branches stay unguessable to a peer.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Letters and digits: valid in tags, branches and Call-IDs without escaping.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A seeded generator of SIP tokens. `Debug` does not show its state.
pub struct TokenRng(StdRng);

impl std::fmt::Debug for TokenRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenRng")
    }
}

impl TokenRng {
    /// From 32 bytes of seed: in production, bytes from the OS CSPRNG.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        TokenRng(StdRng::from_seed(seed))
    }

    /// From a small seed, for tests that want the same tokens every run.
    pub fn seeded(seed: u64) -> Self {
        TokenRng(StdRng::seed_from_u64(seed))
    }

    /// `len` random letters and digits.
    pub fn token(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| ALPHABET[self.0.gen_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// A To/From tag.
    pub fn tag(&mut self) -> String {
        self.token(12)
    }

    /// A fresh RFC 3261 branch (with the `z9hG4bK` magic cookie).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_tokens_repeat_and_differ() {
        let (mut a, mut b) = (TokenRng::seeded(7), TokenRng::seeded(7));
        assert_eq!(a.tag(), b.tag());
        assert_eq!(a.branch(), b.branch());
        let t = a.tag();
        assert_eq!(t.len(), 12);
        assert!(t.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(t, a.tag(), "consecutive tags differ");
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_ne!(TokenRng::seeded(8).tag(), TokenRng::seeded(7).tag());
    }
}
