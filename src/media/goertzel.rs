//! In-band DTMF: a Goertzel-style detector on decoded PCM, a tone generator, and
//! harmonic-rich stress material for measuring talk-off.
//!
//! [`InbandDetector`] meets the ITU-T Q.24 receiver limits asked of this IVR: accept
//! frequency deviation within ±1.5 % and reject beyond ±3.5 %; accept tones of 40 ms or
//! more and reject 23 ms or less; accept twist from 8 dB (high group weaker) to 4 dB
//! (high group stronger); accept 0 down to −40 dBm0 per tone; an interruption of 10 ms
//! or less does not split a digit, a pause of 40 ms or more does; no extra digit in
//! white noise down to 7 dB SNR; and no digits from speech, music or harmonic-rich voices.
//!
//! How: the signal is cut into 5 ms sub-blocks; for each of the eight DTMF frequencies a
//! complex single-bin DFT (the Goertzel bin, kept in complex form so its phase is
//! referenced to absolute time) is taken per sub-block. Every 5 ms the last four
//! sub-blocks form a 20 ms analysis window ([`window`](self::window) measures it): the
//! strongest row and column bins are chosen, each tone's frequency offset is measured
//! from the phase advance of the 20 ms bin over 5 ms, and the levels from a joint
//! least-squares fit of both tones. A window is a *hit* when both offsets are within
//! ±3 %, each tone is at least −43 dBm0, the twist is within −10/+6 dB, the two tones
//! carry at least 75 % of the window's energy, and neither tone's second harmonic
//! exceeds −12 dB relative to it.
//!
//! Four hits in a row for the same key (≈ 35 ms of tone: a 40 ms tone yields at least
//! five, a 23 ms tone at most three) make a *candidate*, which is then judged over its
//! whole 35 ms span ([`run`](self::run)), where a single window is too short to tell a
//! key from a voice (a refused candidate is judged again at each of its next three hits,
//! then at every fourth, so a run that is never accepted costs little):
//! - the frequencies, averaged over the run (steadier than one window's), must be
//!   within ±2 % of nominal;
//! - the two tones must not be harmonics of one fundamental (column/row at 4/3, 3/2,
//!   5/3, 9/5, 11/6, 2, 11/5 or 9/4 within 0.3 %: no key within ±1.5 % comes closer
//!   than 0.66 % to any of these, but a voice or a whistle whose harmonics land on a row
//!   and a column is exactly there);
//! - once both tones are fitted and removed from the span, what remains must hold no
//!   spectral peak above −13 dB of the tones (a voice's other harmonics; white noise at
//!   7 dB SNR stays below −15 dB).
//!
//! A digit is reported once, when its candidate passes. It then lasts while each window
//! still shows the same key under looser limits (hysteresis: ±3.5 %, 6 dB lower, 50 %
//! of the energy), so noise cannot split it, and ends after 5 windows in a row without
//! it (a 10 ms interruption costs fewer, a 40 ms pause at least that many).
//!
//! Level reference: 0 dBm0 is a sine whose peak is 3.17 dB below 16-bit full scale
//! (ITU-T G.711: the μ-law maximum is +3.17 dBm0; A-law's +3.14 dBm0 differs by a
//! negligible 0.03 dB), i.e. peak ≈ 22 748. The detector does not do echo cancellation
//! or talk-off training; it works on 8 kHz samples only.

use crate::codec::SAMPLE_RATE;

mod run;
pub mod talkoff;
mod tone_gen;
mod window;

pub use tone_gen::{digit_frequencies, ToneGenerator};

/// Level of a full-scale sine in dBm0 (G.711 μ-law T_max).
pub const FULL_SCALE_DBM0: f64 = 3.17;
/// Peak amplitude of a 0 dBm0 sine in 16-bit PCM.
pub const DBM0_PEAK: f64 = 32768.0 * 0.694_224_7; // 10^(-3.17/20)

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
/// Consecutive hits that make a candidate.
const MIN_HITS: usize = 4;
/// Samples a candidate spans: MIN_HITS windows, 5 ms apart.
const RUN_SPAN: usize = WIN + (MIN_HITS - 1) * SUB;
const _: () = assert!(
    RUN_SPAN % SUB == 0,
    "the history ring holds whole sub-blocks"
);
/// Windows in a row without the key that end a digit.
const END_MISSES: u32 = 5;

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

/// e^{jω} for a frequency in Hz: the per-sample rotation of a tone.
fn step(hz: f32) -> C32 {
    C32::cis(2.0 * std::f32::consts::PI * hz / SAMPLE_RATE as f32)
}

/// A least-squares fit of two tones at fixed frequencies over `x`, neither tone's
/// leakage biasing the other's amplitude: fit the column; the row on (signal − column);
/// the column again on (signal − row). Three passes.
struct JointFit {
    /// z = Σ x[n]·e^{-jωn} of each tone, net of the other; the fitted sine is
    /// Re(z·e^{jωn})·2/N.
    row: C32,
    col: C32,
    s_row: C32,
    s_col: C32,
}

impl JointFit {
    fn new(x: &[f32], row_hz: f32, col_hz: f32) -> Self {
        let (s_row, s_col) = (step(row_hz), step(col_hz));
        let scale = 2.0 / x.len() as f32;
        // Σ (x[n] − Re(z_sub·p_sub[n])·scale) · conj(p_fit[n])
        let fit_without = |z_sub: C32, s_sub: C32, s_fit: C32| {
            let (mut p_sub, mut p_fit) = (C32::new(1.0, 0.0), C32::new(1.0, 0.0));
            let mut z = C32::default();
            for &v in x {
                let v = v - scale * z_sub.mul(p_sub).re;
                z = z.add(C32::new(v * p_fit.re, -v * p_fit.im));
                p_sub = p_sub.mul(s_sub);
                p_fit = p_fit.mul(s_fit);
            }
            z
        };
        let col = fit_without(C32::default(), s_col, s_col);
        let row = fit_without(col, s_col, s_row);
        let col = fit_without(row, s_row, s_col);
        JointFit {
            row,
            col,
            s_row,
            s_col,
        }
    }

    /// Calls `each(n, x[n] − both fitted tones, e^{jω_row·n}, e^{jω_col·n})`.
    fn residual(&self, x: &[f32], mut each: impl FnMut(usize, f32, C32, C32)) {
        let scale = 2.0 / x.len() as f32;
        let (mut p_r, mut p_c) = (C32::new(1.0, 0.0), C32::new(1.0, 0.0));
        for (n, &v) in x.iter().enumerate() {
            each(
                n,
                v - scale * (self.row.mul(p_r).re + self.col.mul(p_c).re),
                p_r,
                p_c,
            );
            p_r = p_r.mul(self.s_row);
            p_c = p_c.mul(self.s_col);
        }
    }

    /// Mean squares of the fitted row and column tones over `n` samples.
    fn powers(&self, n: usize) -> (f32, f32) {
        let p = |z: C32| 2.0 * z.norm2() / (n * n) as f32;
        (p(self.row), p(self.col))
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
    /// e^{-jωm} for m in 0..SUB, split into re/im; row m holds the eight
    /// frequencies side by side, so a sample's update of all eight bins is one
    /// 8-wide multiply-add (the compiler vectorizes it; see [`Sums`]).
    cos: [[f32; 8]; SUB],
    sin: [[f32; 8]; SUB],
    /// e^{-jω·SUB·b} for sub-block b (mod [`ROT_PERIOD`]): each sub-block's
    /// phase reference, exact from f64 rather than carried from block to block.
    rot: [[C32; 8]; ROT_PERIOD],
    hz: [f32; 8],
}

/// Sub-blocks after which every DTMF frequency (a whole number of hertz) is back in
/// phase: one second.
const ROT_PERIOD: usize = SAMPLE_RATE as usize / SUB;
const _: () = assert!(ROT_PERIOD * SUB == SAMPLE_RATE as usize);

static TABLES: std::sync::LazyLock<Tables> = std::sync::LazyLock::new(|| {
    let mut t = Tables {
        cos: [[0.0; 8]; SUB],
        sin: [[0.0; 8]; SUB],
        rot: [[C32::default(); 8]; ROT_PERIOD],
        hz: [0.0; 8],
    };
    for (k, &f) in ROW_HZ.iter().chain(COL_HZ.iter()).enumerate() {
        let w = 2.0 * std::f64::consts::PI * f64::from(f) / f64::from(SAMPLE_RATE);
        for m in 0..SUB {
            t.cos[m][k] = (w * m as f64).cos() as f32;
            t.sin[m][k] = -(w * m as f64).sin() as f32;
        }
        for (b, rot) in t.rot.iter_mut().enumerate() {
            let s = w * (SUB * b) as f64;
            rot[k] = C32::new(s.cos() as f32, -s.sin() as f32);
        }
        t.hz[k] = f;
    }
    t
});

/// A sub-block's correlation sums and energy in two sets, by sample parity.
#[derive(Clone, Copy, Default)]
struct Sums {
    re: [[f32; 8]; 2],
    im: [[f32; 8]; 2],
    energy: [f32; 2],
}

impl Sums {
    /// Add `pcm` (whose first sample is at position `at` of the sub-block) with
    /// the table rows of its positions. The sums live in locals (registers) here.
    fn add(&mut self, pcm: &[i16], cos: &[[f32; 8]], sin: &[[f32; 8]], at: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: this CPU has AVX (checked just above).
            unsafe { self.add_avx(pcm, cos, sin, at) };
            return;
        }
        self.add_any(pcm, cos, sin, at);
    }

    /// [`Sums::add`] with the eight bins in one 256-bit register: the same
    /// multiplications and additions in the same order (no fused multiply-add), so
    /// the same result to the bit, in half the instructions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn add_avx(&mut self, pcm: &[i16], cos: &[[f32; 8]], sin: &[[f32; 8]], at: usize) {
        self.add_any(pcm, cos, sin, at);
    }

    #[inline(always)]
    fn add_any(&mut self, pcm: &[i16], cos: &[[f32; 8]], sin: &[[f32; 8]], at: usize) {
        #[inline(always)]
        fn one(
            re: &mut [f32; 8],
            im: &mut [f32; 8],
            e: &mut f32,
            x: i16,
            c: &[f32; 8],
            s: &[f32; 8],
        ) {
            let x = f32::from(x);
            for k in 0..8 {
                re[k] += x * c[k];
                im[k] += x * s[k];
            }
            *e += x * x;
        }
        let [mut re0, mut re1] = self.re;
        let [mut im0, mut im1] = self.im;
        let [mut e0, mut e1] = self.energy;
        let skip = (at % 2).min(pcm.len());
        if skip == 1 {
            one(&mut re1, &mut im1, &mut e1, pcm[0], &cos[0], &sin[0]);
        }
        let (pcm, cos, sin) = (&pcm[skip..], &cos[skip..], &sin[skip..]);
        let pairs = pcm
            .chunks_exact(2)
            .zip(cos.chunks_exact(2).zip(sin.chunks_exact(2)));
        for (x, (c, s)) in pairs {
            one(&mut re0, &mut im0, &mut e0, x[0], &c[0], &s[0]);
            one(&mut re1, &mut im1, &mut e1, x[1], &c[1], &s[1]);
        }
        if pcm.len() % 2 == 1 {
            let last = pcm.len() - 1;
            one(
                &mut re0, &mut im0, &mut e0, pcm[last], &cos[last], &sin[last],
            );
        }
        *self = Sums {
            re: [re0, re1],
            im: [im0, im1],
            energy: [e0, e1],
        };
    }

    /// The sub-block's sums: (re, im, energy).
    fn total(&self) -> ([f32; 8], [f32; 8], f32) {
        let (mut re, mut im) = ([0.0; 8], [0.0; 8]);
        for k in 0..8 {
            re[k] = self.re[0][k] + self.re[1][k];
            im[k] = self.im[0][k] + self.im[1][k];
        }
        (re, im, self.energy[0] + self.energy[1])
    }
}

/// What one window showed for the key it is a hit for.
#[derive(Clone, Copy, Debug, Default)]
struct Hit {
    /// Row bin 0..4 and column bin 4..8.
    row: usize,
    col: usize,
    f_row: f32,
    f_col: f32,
}

impl Hit {
    fn digit(&self) -> char {
        KEYPAD[self.row][self.col - 4]
    }
}

/// Where the detector is between key presses.
#[derive(Clone, Copy, Debug)]
enum State {
    /// No key: looking for hits.
    Idle,
    /// `hits` consecutive hits for one key, the last MIN_HITS of them in `run`
    /// (ring indexed by hit number).
    Candidate { hits: usize, run: [Hit; MIN_HITS] },
    /// A key reported and still held; `misses` windows in a row without it.
    Active { key: Hit, misses: u32 },
}

/// Which of the detector's talk-off checks run. [`InbandDetector::new`] runs them all;
/// turning one off is only for measuring what it buys (benches/dtmf_sweep.rs).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Window: the two tones carry at least 75 % of the window's energy.
    pub energy_ratio: bool,
    /// Window: neither tone's second harmonic above −12 dB of it.
    pub second_harmonic: bool,
    /// Run: the steadier (re-measured) frequencies within ±2 % of nominal.
    pub steadier_frequency: bool,
    /// Run: the tones not two harmonics of one fundamental.
    pub harmonic_ratio: bool,
    /// Run: no residual peak above −13 dB of the tones, no tonal one above −20 dB.
    pub residual_peak: bool,
    /// Run: the row tone's third harmonic below −12 dB of it.
    pub third_harmonic: bool,
}

impl Checks {
    pub const ALL: Checks = Checks {
        energy_ratio: true,
        second_harmonic: true,
        steadier_frequency: true,
        harmonic_ratio: true,
        residual_peak: true,
        third_harmonic: true,
    };
}

/// Whether a candidate with `hits` hits in a row has its run judged now: at each of its
/// first MIN_HITS chances, then at every MIN_HITS-th hit. A run that keeps passing every
/// window yet keeps failing the run checks (a chord, a key over a strong third tone) is
/// then judged once per 20 ms rather than every 5 ms, which keeps the detector's worst
/// case per frame within 2× of the window tests alone; a real key is nearly always
/// accepted at one of its first chances, and a late one is still tried every 20 ms.
fn judged_at(hits: usize) -> bool {
    hits >= MIN_HITS && (hits < 2 * MIN_HITS || hits % MIN_HITS == 0)
}

/// In-band DTMF detector; feed decoded 8 kHz PCM in any chunk size.
pub struct InbandDetector {
    tables: &'static Tables,
    checks: Checks,
    /// The current sub-block's sums so far, one set for even and one for odd
    /// sample positions (two independent chains of additions per bin, so the
    /// loop is not held up by each addition's latency; the sets are added at the
    /// sub-block's end, and a sample's set depends only on its position, so the
    /// result does not depend on how the input is cut into chunks).
    acc: Sums,
    pos: usize,
    /// Last WIN_SUBS + 1 sub-block bins, ring indexed by sub-block number.
    subs: [[C32; 8]; WIN_SUBS + 1],
    energies: [f32; WIN_SUBS],
    blocks: u64,
    /// The last RUN_SPAN samples, ring indexed by sample number.
    history: [i16; RUN_SPAN],
    /// `samples % RUN_SPAN`: where the next sample goes in `history`.
    history_pos: usize,
    samples: u64,
    state: State,
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
        Self::with_checks(Checks::ALL)
    }

    /// A detector running only the talk-off checks in `checks` (for measurement).
    #[doc(hidden)]
    pub fn with_checks(checks: Checks) -> Self {
        InbandDetector {
            tables: &TABLES,
            checks,
            acc: Sums::default(),
            pos: 0,
            subs: [[C32::default(); 8]; WIN_SUBS + 1],
            energies: [0.0; WIN_SUBS],
            blocks: 0,
            history: [0; RUN_SPAN],
            history_pos: 0,
            samples: 0,
            state: State::Idle,
        }
    }

    /// True while a tone is being heard (after it was reported, until it ends).
    pub fn in_digit(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// Feed samples; returns the digits whose start was detected in this chunk.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<InbandDigit> {
        let mut out = Vec::new();
        self.push_each(pcm, |d| out.push(d));
        out
    }

    /// Feed samples; `heard` gets each digit whose start was detected in this
    /// chunk, as it is detected (nothing is allocated: the media session's
    /// per-packet path).
    pub fn push_each(&mut self, pcm: &[i16], mut heard: impl FnMut(InbandDigit)) {
        let t = self.tables;
        let mut rest = pcm;
        while !rest.is_empty() {
            // Up to the end of the current sub-block.
            let (chunk, tail) = rest.split_at((SUB - self.pos).min(rest.len()));
            rest = tail;
            let n = chunk.len();
            self.acc.add(
                chunk,
                &t.cos[self.pos..self.pos + n],
                &t.sin[self.pos..self.pos + n],
                self.pos,
            );
            // A chunk ends at a sub-block boundary at the latest, and the ring is a
            // whole number of sub-blocks long: it never wraps inside a chunk.
            let at = self.history_pos;
            self.history[at..at + chunk.len()].copy_from_slice(chunk);
            self.history_pos = (at + chunk.len()) % RUN_SPAN;
            self.samples += chunk.len() as u64;
            self.pos += chunk.len();
            if self.pos == SUB {
                self.pos = 0;
                self.end_sub_block(&mut heard);
            }
        }
    }

    fn end_sub_block(&mut self, out: &mut impl FnMut(InbandDigit)) {
        let slot = (self.blocks % (WIN_SUBS as u64 + 1)) as usize;
        let rot = &self.tables.rot[(self.blocks % ROT_PERIOD as u64) as usize];
        let (re, im, energy) = self.acc.total();
        for k in 0..8 {
            self.subs[slot][k] = rot[k].mul(C32::new(re[k], im[k]));
        }
        self.energies[(self.blocks % WIN_SUBS as u64) as usize] = energy;
        self.acc = Sums::default();
        self.blocks += 1;
        if self.blocks <= WIN_SUBS as u64 {
            return;
        }
        self.step_state(out);
    }

    fn step_state(&mut self, out: &mut impl FnMut(InbandDigit)) {
        self.state = match self.state {
            State::Active { key, misses } => {
                if self.holds(&key) {
                    State::Active { key, misses: 0 }
                } else if misses + 1 >= END_MISSES {
                    State::Idle
                } else {
                    State::Active {
                        key,
                        misses: misses + 1,
                    }
                }
            }
            State::Idle => match self.hit() {
                Some(h) => State::Candidate {
                    hits: 1,
                    run: [h; MIN_HITS],
                },
                None => State::Idle,
            },
            State::Candidate { hits, mut run } => match self.hit() {
                Some(h) if h.digit() == run[(hits - 1) % MIN_HITS].digit() => {
                    run[hits % MIN_HITS] = h;
                    let hits = hits + 1;
                    if judged_at(hits) && self.run_passes(&run) {
                        out(InbandDigit {
                            digit: h.digit(),
                            at_sample: self.samples,
                        });
                        State::Active { key: h, misses: 0 }
                    } else {
                        State::Candidate { hits, run }
                    }
                }
                Some(h) => State::Candidate {
                    hits: 1,
                    run: [h; MIN_HITS],
                },
                None => State::Idle,
            },
        };
    }
}

#[cfg(test)]
mod tests;
