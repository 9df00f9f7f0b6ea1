//! How a `load` caller ([`super::load`]) tells which prompts it hears: the same
//! guarantees as [`crate::media::prompts::PromptRecognizer`] (a prompt starts on a
//! packet boundary and is sent byte for byte as cached, its last packet padded with
//! the codec's silence byte), but cheap enough for thousands of calls on one core.
//! The recogniser tries every prompt at every packet while nothing is playing
//! (about 60 % of the load caller's CPU at 500 calls in a `perf` profile); here an
//! index built once maps the first eight bytes of each prompt's first non-silent
//! packet to that prompt, so a packet costs one hash lookup, or one comparison
//! while a prompt is being followed.
//!
//! A prompt is *heard* once [`CONFIRM`] packets in a row matched it (or all of it,
//! for a shorter one). Fully silent packets between prompts are skipped. What this
//! cannot tell apart: two prompts whose opening packets are identical (the first
//! listed wins; the shipped prompts have none).

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::Codec;
use crate::media::prompts::PromptCache;

/// Packets in a row that must match before a prompt counts as heard.
pub const CONFIRM: usize = 3;
const PACKET: usize = 160;

/// Every prompt's encoding and where its sound starts, shared by all calls.
pub struct PromptIndex {
    names: Vec<String>,
    encoded: Vec<Vec<u8>>,
    /// First 8 bytes of a prompt's first non-silent packet -> (prompt, that packet's offset).
    by_opening: HashMap<u64, Vec<(usize, usize)>>,
    silence: u8,
}

fn key(b: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    let n = b.len().min(8);
    k[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(k)
}

impl PromptIndex {
    pub fn new(cache: &PromptCache, codec: Codec) -> Arc<Self> {
        let silence = codec.silence_byte();
        let mut names = Vec::new();
        let mut encoded = Vec::new();
        let mut by_opening: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        for name in cache.names() {
            let Some(p) = cache.get(name) else { continue };
            let enc = p.encoded(codec).to_vec();
            if let Some(off) = (0..enc.len()).step_by(PACKET).find(|&o| {
                enc[o..(o + PACKET).min(enc.len())]
                    .iter()
                    .any(|&b| b != silence)
            }) {
                by_opening
                    .entry(key(&enc[off..]))
                    .or_default()
                    .push((names.len(), off));
            }
            names.push(name.to_string());
            encoded.push(enc);
        }
        Arc::new(PromptIndex {
            names,
            encoded,
            by_opening,
            silence,
        })
    }

    /// Does `payload` continue prompt `p` at `offset`?
    fn continues(&self, p: usize, offset: usize, payload: &[u8]) -> bool {
        let enc = &self.encoded[p];
        if offset >= enc.len() {
            return false;
        }
        let expected = &enc[offset..enc.len().min(offset + payload.len())];
        payload.len() >= expected.len()
            && payload[..expected.len()] == *expected
            && payload[expected.len()..].iter().all(|&b| b == self.silence)
    }
}

/// One call's listening state: the prompt being followed and the names heard.
#[derive(Default)]
pub struct Listener {
    /// (prompt, bytes matched so far, packets matched, already reported)
    current: Option<(usize, usize, usize, bool)>,
    pub heard: Vec<String>,
    /// When the prompt heard last began: the receive time (ns) of its first
    /// non-silent packet, less 20 ms per silent packet before it in the prompt.
    pub last_start_ns: u64,
    started_ns: u64,
}

impl Listener {
    /// Feed the payload of the next received audio packet.
    pub fn push(&mut self, index: &PromptIndex, payload: &[u8], at_ns: u64) {
        if let Some((p, off, n, reported)) = self.current.take() {
            if index.continues(p, off, payload) {
                let (off, n) = (off + payload.len(), n + 1);
                let done = off >= index.encoded[p].len();
                if !reported && (n >= CONFIRM || done) {
                    self.heard.push(index.names[p].clone());
                    self.last_start_ns = self.started_ns;
                }
                if !done {
                    self.current = Some((p, off, n, reported || n >= CONFIRM));
                }
                return;
            }
        }
        if payload.iter().all(|&b| b == index.silence) {
            return;
        }
        let Some(cands) = index.by_opening.get(&key(payload)) else {
            return;
        };
        if let Some(&(p, off)) = cands
            .iter()
            .find(|&&(p, off)| index.continues(p, off, payload))
        {
            self.started_ns = at_ns.saturating_sub((off / PACKET) as u64 * 20_000_000);
            let off = off + payload.len();
            if off >= index.encoded[p].len() {
                self.heard.push(index.names[p].clone());
                self.last_start_ns = self.started_ns;
            } else {
                self.current = Some((p, off, 1, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(listener: &mut Listener, index: &PromptIndex, enc: &[u8]) {
        for chunk in enc.chunks(PACKET) {
            let mut pkt = chunk.to_vec();
            pkt.resize(PACKET, index.silence);
            listener.push(index, &pkt, 0);
        }
    }

    #[test]
    fn hears_the_readback_in_order_and_nothing_from_silence_or_cut_prompts() {
        let cache = crate::files::embedded_prompts().unwrap();
        let index = PromptIndex::new(&cache, Codec::Pcmu);
        let enc = |n: &str| cache.get(n).unwrap().encoded(Codec::Pcmu).to_vec();
        let silence = vec![index.silence; PACKET * 10];
        let mut l = Listener::default();
        play(&mut l, &index, &silence);
        // A prompt cut after two packets of sound (barge-in) is not heard.
        let intro = enc("echo_intro");
        let first = (0..intro.len())
            .step_by(PACKET)
            .find(|&o| intro[o..o + PACKET].iter().any(|&b| b != index.silence))
            .unwrap();
        play(&mut l, &index, &intro[..first + 2 * PACKET]);
        assert!(l.heard.is_empty(), "{:?}", l.heard);
        for n in ["you_entered", "digit_1", "digit_0", "digit_0", "goodbye"] {
            play(&mut l, &index, &enc(n));
            play(&mut l, &index, &silence[..PACKET * 2]);
        }
        assert_eq!(
            l.heard,
            ["you_entered", "digit_1", "digit_0", "digit_0", "goodbye"]
        );
        // Back to back without silence, repeated: each playback is heard.
        let mut l = Listener::default();
        let mut both = enc("digit_0");
        both.resize(both.len().div_ceil(PACKET) * PACKET, index.silence);
        both.extend(enc("digit_0"));
        play(&mut l, &index, &both);
        assert_eq!(l.heard, ["digit_0", "digit_0"]);
    }
}
