//! In-band DTMF: a Goertzel-style detector on decoded PCM and a tone generator.
//!
//! [`InbandDetector`] meets the ITU-T Q.24 receiver limits asked of this IVR: accept
//! frequency deviation within ±1.5 % and reject beyond ±3.5 %; accept tones of 40 ms or
//! more and reject 23 ms or less; accept twist from 8 dB (high group weaker) to 4 dB
//! (high group stronger); accept 0 down to −25 dBm0 per tone; an interruption of 10 ms
//! or less does not split a digit, a pause of 40 ms or more does; and no digits from
//! speech or music.
//!
//! How: the signal is cut into 5 ms sub-blocks; for each of the eight DTMF frequencies a
//! complex single-bin DFT (the Goertzel bin, kept in complex form so its phase is
//! referenced to absolute time) is taken per sub-block. Every 5 ms the last four
//! sub-blocks form a 20 ms analysis window. In it the strongest row and column bins
//! are chosen; for each, the frequency offset is measured from the phase advance of
//! the 20 ms bin over 5 ms (precise to a few Hz, where the 50 Hz bin width alone could
//! not separate 1.5 % from 3.5 %), the sub-blocks are re-summed coherently at the
//! measured frequency, and a window counts as a *hit* when: both offsets are within
//! ±2.5 %; each tone is at least −32 dBm0; the twist is within −9/+5 dB; the two tones
//! carry at least 75 % of the window's energy (speech and music spread theirs; this
//! also means a window must be mostly filled by the tone, which gives the duration
//! limits); and neither tone's second harmonic exceeds −12 dB relative to it (voiced
//! speech is harmonic-rich). A digit starts after 4 consecutive hits (≈ 35 ms of tone:
//! a 40 ms tone yields at least 6 hits, a 23 ms tone at most 3) and is reported once,
//! at its start; it ends after 7 consecutive non-hits (a 10 ms gap costs at most 4, a
//! 40 ms pause at least 9).
//!
//! Level reference: 0 dBm0 is a sine whose peak is 3.17 dB below 16-bit full scale
//! (ITU-T G.711: the μ-law maximum is +3.17 dBm0; A-law's +3.14 dBm0 differs by a
//! negligible 0.03 dB), i.e. peak ≈ 22 778. The detector does not do echo cancellation
//! or talk-off training; it works on 8 kHz samples only.

use std::f32::consts::PI;

use crate::codec::SAMPLE_RATE;

/// Level of a full-scale sine in dBm0 (G.711 μ-law T_max).
pub const FULL_SCALE_DBM0: f64 = 3.17;
/// Peak amplitude of a 0 dBm0 sine in 16-bit PCM.
pub const DBM0_PEAK: f64 = 32768.0 * 0.694_386_9; // 10^(-3.17/20)

/// Low ("row") group frequencies in Hz.
pub const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High ("column") group frequencies in Hz.
pub const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

const SUB: usize = 40; // 5 ms sub-block
const WIN_SUBS: usize = 4; // 20 ms window
const WIN: usize = SUB * WIN_SUBS;
const FREQ_TOLERANCE: f32 = 0.025;
const MIN_TONE_DBM0: f32 = -32.0;
const MAX_TWIST_DB: f32 = 5.0; // high group stronger (reverse twist)
const MIN_TWIST_DB: f32 = -9.0; // high group weaker (normal twist)
const MIN_ENERGY_RATIO: f32 = 0.75;
const MAX_HARMONIC_DB: f32 = -12.0;
const MIN_HITS: u32 = 4;
const END_MISSES: u32 = 7;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct C32 {
    re: f32,
    im: f32,
}

impl C32 {
    fn new(re: f32, im: f32) -> Self {
        C32 { re, im }
    }
    fn mul(self, o: C32) -> C32 {
        C32::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn conj(self) -> C32 {
        C32::new(self.re, -self.im)
    }
    fn add(self, o: C32) -> C32 {
        C32::new(self.re + o.re, self.im + o.im)
    }
    fn norm2(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
    fn cis(phi: f32) -> C32 {
        C32::new(phi.cos(), phi.sin())
    }
}

fn db_to_power_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Power (mean square) of a sine at `dbm0`.
fn dbm0_power(dbm0: f32) -> f32 {
    let peak = DBM0_PEAK as f32;
    peak * peak / 2.0 * db_to_power_ratio(dbm0)
}

/// A detected key press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InbandDigit {
    pub digit: char,
    /// Index (from the first sample pushed) of the sample that completed detection.
    pub at_sample: u64,
}

/// Per-sample correlation tables for the eight frequencies (shared, computed once).
struct Tables {
    /// e^{-jωm} for m in 0..SUB, split into re/im rows per frequency.
    cos: [[f32; SUB]; 8],
    sin: [[f32; SUB]; 8],
    /// e^{-jω·SUB}: rotation from one sub-block to the next.
    step: [C32; 8],
    hz: [f32; 8],
}

static TABLES: std::sync::LazyLock<Tables> = std::sync::LazyLock::new(|| {
    let mut t = Tables {
        cos: [[0.0; SUB]; 8],
        sin: [[0.0; SUB]; 8],
        step: [C32::default(); 8],
        hz: [0.0; 8],
    };
    for (k, &f) in ROW_HZ.iter().chain(COL_HZ.iter()).enumerate() {
        let w = 2.0 * std::f64::consts::PI * f64::from(f) / f64::from(SAMPLE_RATE);
        for m in 0..SUB {
            t.cos[k][m] = (w * m as f64).cos() as f32;
            t.sin[k][m] = -(w * m as f64).sin() as f32;
        }
        let s = w * SUB as f64;
        t.step[k] = C32::new(s.cos() as f32, -s.sin() as f32);
        t.hz[k] = f;
    }
    t
});

/// In-band DTMF detector; feed decoded 8 kHz PCM in any chunk size.
pub struct InbandDetector {
    tables: &'static Tables,
    acc_re: [f32; 8],
    acc_im: [f32; 8],
    acc_energy: f32,
    pos: usize,
    /// e^{-jω·SUB·b} for the current sub-block b (absolute phase reference).
    rot: [C32; 8],
    /// Last WIN_SUBS + 1 sub-block bins, ring indexed by sub-block number.
    subs: [[C32; 8]; WIN_SUBS + 1],
    energies: [f32; WIN_SUBS],
    blocks: u64,
    /// The last WIN samples, ring indexed by sample number.
    history: [f32; WIN],
    samples: u64,
    candidate: Option<(char, u32)>,
    active: Option<(char, u32)>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InbandDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print digit state.
        f.debug_struct("InbandDetector")
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        InbandDetector {
            tables: &TABLES,
            acc_re: [0.0; 8],
            acc_im: [0.0; 8],
            acc_energy: 0.0,
            pos: 0,
            rot: [C32::new(1.0, 0.0); 8],
            subs: [[C32::default(); 8]; WIN_SUBS + 1],
            energies: [0.0; WIN_SUBS],
            blocks: 0,
            history: [0.0; WIN],
            samples: 0,
            candidate: None,
            active: None,
        }
    }

    /// True while a tone is being heard (after it was reported, until it ends).
    pub fn in_digit(&self) -> bool {
        self.active.is_some()
    }

    /// Feed samples; returns the digits whose start was detected in this chunk.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<InbandDigit> {
        let mut out = Vec::new();
        let t = self.tables;
        for &s in pcm {
            let x = f32::from(s);
            let m = self.pos;
            for k in 0..8 {
                self.acc_re[k] += x * t.cos[k][m];
                self.acc_im[k] += x * t.sin[k][m];
            }
            self.acc_energy += x * x;
            self.history[(self.samples % WIN as u64) as usize] = x;
            self.samples += 1;
            self.pos += 1;
            if self.pos == SUB {
                self.pos = 0;
                self.end_sub_block(&mut out);
            }
        }
        out
    }

    fn end_sub_block(&mut self, out: &mut Vec<InbandDigit>) {
        let slot = (self.blocks % (WIN_SUBS as u64 + 1)) as usize;
        for k in 0..8 {
            let local = C32::new(self.acc_re[k], self.acc_im[k]);
            self.subs[slot][k] = self.rot[k].mul(local);
            let r = self.rot[k].mul(self.tables.step[k]);
            let n = r.norm2().sqrt();
            self.rot[k] = C32::new(r.re / n, r.im / n);
        }
        self.energies[(self.blocks % WIN_SUBS as u64) as usize] = self.acc_energy;
        self.acc_re = [0.0; 8];
        self.acc_im = [0.0; 8];
        self.acc_energy = 0.0;
        self.blocks += 1;
        if self.blocks <= WIN_SUBS as u64 {
            return;
        }
        let hit = self.evaluate_window();
        self.step_state(hit, out);
    }

    /// Sub-block bin of frequency `k`, `age` sub-blocks ago (0 = newest).
    fn sub(&self, k: usize, age: usize) -> C32 {
        let b = self.blocks - 1 - age as u64;
        self.subs[(b % (WIN_SUBS as u64 + 1)) as usize][k]
    }

    fn window(&self, k: usize, age: usize) -> C32 {
        (age..age + WIN_SUBS).fold(C32::default(), |a, i| a.add(self.sub(k, i)))
    }

    /// Measured (power, frequency) of the tone near bin `k`, or None if off frequency.
    fn tone(&self, k: usize) -> Option<(f32, f32)> {
        let now = self.window(k, 0);
        let before = self.window(k, 1);
        let q = now.mul(before.conj());
        if q.norm2() == 0.0 {
            return None;
        }
        let phi = q.im.atan2(q.re); // phase advance per sub-block
        let hz = self.tables.hz[k];
        let offset = phi * SAMPLE_RATE as f32 / (2.0 * PI * SUB as f32);
        if offset.abs() > FREQ_TOLERANCE * hz {
            return None;
        }
        // Re-sum the sub-blocks coherently at the measured frequency.
        let mut w = C32::default();
        for i in 0..WIN_SUBS {
            w = w.add(self.sub(k, i).mul(C32::cis(phi * i as f32)));
        }
        // Undo the attenuation of the offset within one sub-block.
        let x = PI * offset * SUB as f32 / SAMPLE_RATE as f32;
        let g = if x.abs() < 1e-6 { 1.0 } else { x.sin() / x };
        let amp2 = w.norm2() / (g * g);
        let power = 2.0 * amp2 / (WIN * WIN) as f32;
        Some((power, hz + offset))
    }

    /// The last WIN samples in time order.
    fn history(&self) -> [f32; WIN] {
        let mut h = [0.0; WIN];
        for (i, v) in h.iter_mut().enumerate() {
            *v = self.history[((self.samples + i as u64) % WIN as u64) as usize];
        }
        h
    }

    /// Least-squares fit of a sine at `hz` to `sig`: Σ sig[n]·e^{-jωn} (the
    /// sine is Re(z·e^{jωn})·2/N).
    fn fit(sig: &[f32; WIN], hz: f32) -> C32 {
        let w = 2.0 * PI * hz / SAMPLE_RATE as f32;
        let (mut ph, step) = (C32::new(1.0, 0.0), C32::cis(-w));
        let mut z = C32::default();
        for &v in sig {
            z = z.add(C32::new(v * ph.re, v * ph.im));
            ph = ph.mul(step);
        }
        z
    }

    /// `sig` minus the fitted sine.
    fn without(sig: &[f32; WIN], hz: f32, z: C32) -> [f32; WIN] {
        let w = 2.0 * PI * hz / SAMPLE_RATE as f32;
        let scale = 2.0 / WIN as f32;
        let (mut ph, step) = (C32::new(1.0, 0.0), C32::cis(w));
        let mut out = *sig;
        for v in out.iter_mut() {
            *v -= scale * z.mul(ph).re;
            ph = ph.mul(step);
        }
        out
    }

    fn power_of(z: C32) -> f32 {
        2.0 * z.norm2() / (WIN * WIN) as f32
    }

    /// Joint fit of both tones on the raw window (so neither tone's leakage biases the
    /// other's level), then the second-harmonic powers of the residual.
    /// Returns (row power, column power, row 2nd harmonic, column 2nd harmonic).
    fn refine(&self, f_row: f32, f_col: f32) -> (f32, f32, f32, f32) {
        let h = self.history();
        let zc0 = Self::fit(&h, f_col);
        let zr = Self::fit(&Self::without(&h, f_col, zc0), f_row);
        let no_row = Self::without(&h, f_row, zr);
        let zc = Self::fit(&no_row, f_col);
        let residual = Self::without(&no_row, f_col, zc);
        (
            Self::power_of(zr),
            Self::power_of(zc),
            Self::power_of(Self::fit(&residual, 2.0 * f_row)),
            Self::power_of(Self::fit(&residual, 2.0 * f_col)),
        )
    }

    fn evaluate_window(&self) -> Option<char> {
        let strongest = |range: std::ops::Range<usize>| {
            range
                .map(|k| (k, self.window(k, 0).norm2()))
                .fold(
                    (usize::MAX, 0.0f32),
                    |best, (k, p)| if p > best.1 { (k, p) } else { best },
                )
                .0
        };
        let r = strongest(0..4);
        let c = strongest(4..8);
        if r == usize::MAX || c == usize::MAX {
            return None;
        }
        let (p_row, f_row) = self.tone(r)?;
        let (p_col, f_col) = self.tone(c)?;
        let total: f32 = self.energies.iter().sum::<f32>() / WIN as f32;
        // Cheap screening with the sub-block estimates (3 dB of slack), then the
        // precise checks on the jointly fitted levels.
        if !Self::levels_ok(p_row, p_col, total, 2.0) {
            return None;
        }
        let (p_row, p_col, h_row, h_col) = self.refine(f_row, f_col);
        if !Self::levels_ok(p_row, p_col, total, 1.0) {
            return None;
        }
        let limit = db_to_power_ratio(MAX_HARMONIC_DB);
        if h_row > limit * p_row || h_col > limit * p_col {
            return None;
        }
        Some(KEYPAD[r][c - 4])
    }

    /// Level, twist and energy-ratio checks; `slack` widens every limit (power ratio).
    fn levels_ok(p_row: f32, p_col: f32, total: f32, slack: f32) -> bool {
        let floor = dbm0_power(MIN_TONE_DBM0) / slack;
        p_row >= floor
            && p_col >= floor
            && p_col <= p_row * db_to_power_ratio(MAX_TWIST_DB) * slack
            && p_col * slack >= p_row * db_to_power_ratio(MIN_TWIST_DB)
            && (p_row + p_col) * slack >= MIN_ENERGY_RATIO * total
    }

    fn step_state(&mut self, hit: Option<char>, out: &mut Vec<InbandDigit>) {
        if let Some((digit, misses)) = self.active {
            if hit == Some(digit) {
                self.active = Some((digit, 0));
            } else if misses + 1 >= END_MISSES {
                self.active = None;
                self.candidate = None;
            } else {
                self.active = Some((digit, misses + 1));
            }
            return;
        }
        self.candidate = match (hit, self.candidate) {
            (Some(d), Some((c, n))) if d == c => Some((d, n + 1)),
            (Some(d), _) => Some((d, 1)),
            (None, _) => None,
        };
        if let Some((d, n)) = self.candidate {
            if n >= MIN_HITS {
                self.active = Some((d, 0));
                self.candidate = None;
                out.push(InbandDigit {
                    digit: d,
                    at_sample: self.samples,
                });
            }
        }
    }
}

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

#[cfg(test)]
mod tests;
