//! DTMF tone generation: a key's nominal frequencies and a generator of dual tones as
//! 8 kHz PCM, for the tests, the benchmarks and the `dial` test caller's in-band mode.

use super::{COL_HZ, DBM0_PEAK, KEYPAD, ROW_HZ};
use crate::codec::SAMPLE_RATE;

/// Nominal (low, high) frequencies of a key.
pub fn digit_frequencies(digit: char) -> Option<(f32, f32)> {
    let d = digit.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|&c| c == d)
            .map(|c| (ROW_HZ[r], COL_HZ[c]))
    })
}

/// Generates DTMF (and other dual) tones as 8 kHz PCM, for tests and the test caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct ToneGenerator;

impl ToneGenerator {
    pub fn new() -> Self {
        ToneGenerator
    }

    /// A key's tone pair, each tone at `dbm0`, lasting `ms`.
    pub fn digit(&self, digit: char, ms: u32, dbm0: f64) -> Option<Vec<i16>> {
        let (lo, hi) = digit_frequencies(digit)?;
        Some(self.dual(f64::from(lo), f64::from(hi), dbm0, dbm0, ms))
    }

    /// Two sines at the given frequencies and levels, lasting `ms`, clipped to 16 bits.
    pub fn dual(
        &self,
        low_hz: f64,
        high_hz: f64,
        low_dbm0: f64,
        high_dbm0: f64,
        ms: u32,
    ) -> Vec<i16> {
        let n = (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
        let a_lo = DBM0_PEAK * 10f64.powf(low_dbm0 / 20.0);
        let a_hi = DBM0_PEAK * 10f64.powf(high_dbm0 / 20.0);
        let w_lo = 2.0 * std::f64::consts::PI * low_hz / f64::from(SAMPLE_RATE);
        let w_hi = 2.0 * std::f64::consts::PI * high_hz / f64::from(SAMPLE_RATE);
        (0..n)
            .map(|i| {
                let t = i as f64;
                let v = a_lo * (w_lo * t).sin() + a_hi * (w_hi * t).sin();
                v.round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    /// `ms` of digital silence.
    pub fn silence(&self, ms: u32) -> Vec<i16> {
        vec![0; (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize]
    }

    /// A key sequence: each tone `on_ms`, followed by `off_ms` of silence.
    pub fn sequence(&self, digits: &str, on_ms: u32, off_ms: u32, dbm0: f64) -> Vec<i16> {
        let mut out = Vec::new();
        for d in digits.chars() {
            if let Some(t) = self.digit(d, on_ms, dbm0) {
                out.extend(t);
                out.extend(self.silence(off_ms));
            }
        }
        out
    }
}
