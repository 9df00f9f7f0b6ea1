//! Judging a candidate over its whole run (four hits, 35 ms of signal), where a single
//! 20 ms window is too short to tell a key from a voice.
//!
//! A key press is two independent, steady sines. What passes the per-window tests
//! without being one is nearly always a voice, a whistle or an instrument whose strong
//! harmonics sit on a row and a column at once. The checks:
//! - a steadier frequency estimate: each tone's frequency is re-measured over the run,
//!   from the phase advance between its first and last 20 ms (Hann-windowed, centred on
//!   the tone rather than on the nominal bin, whose edge pulls a window's estimate
//!   towards the bin centre), and must be within ±2 % of nominal;
//! - the two tones must not stand in a small-integer ratio that no key within ±1.5 %
//!   reaches (they would be two harmonics of one fundamental);
//! - once both tones are fitted over the run and removed, the rest must hold no
//!   spectral peak above −13 dB of the tones, nor a *tonal* one (a peak 15 dB above the
//!   residual's median: a voice's other harmonics, an instrument's partials) above
//!   −20 dB; white noise even at 7 dB SNR spreads its power too thinly for either;
//! - the row tone's third harmonic must be below −12 dB of it (odd-harmonic reeds and
//!   voices pass the per-window second-harmonic test).

use std::f32::consts::PI;

use super::{db_to_power_ratio, Hit, InbandDetector, C32, MIN_HITS, RUN_SPAN, WIN};
use crate::codec::SAMPLE_RATE;

/// Largest deviation of the run's frequencies from nominal.
const RUN_FREQ_TOLERANCE: f32 = 0.02;
/// Column/row ratios of two harmonics of one fundamental that no key within ±1.5 %
/// reaches, each with how close (relative) a measured ratio must come to be rejected:
/// the distance to the nearest key at its ±1.5 % extremes, less 0.35 % for error in
/// the measured frequencies (e.g. 9/5 is 0.66 % from 1209/697 · 1.015/0.985).
const HARMONIC_RATIOS: [(f32, f32, f32); 8] = [
    (4.0, 3.0, 0.0036),
    (3.0, 2.0, 0.0108),
    (5.0, 3.0, 0.0058),
    (9.0, 5.0, 0.0031),
    (11.0, 6.0, 0.0108),
    (2.0, 1.0, 0.0083),
    (11.0, 5.0, 0.0032),
    (9.0, 4.0, 0.0069),
];
/// Strongest residual peak allowed, relative to the two tones' power.
const MAX_RESIDUAL_PEAK_DB: f32 = -13.0;
/// A residual peak this far above the residual's median is a tone, not noise (white
/// noise's strongest of ~115 probes is typically 9 dB above their median, and 15 dB with
/// a probability of about 1e-7)...
const TONAL_PEAK_DB: f32 = 15.0;
/// ...and a tonal residual must stay below this, relative to the two tones.
const MAX_TONAL_PEAK_DB: f32 = -20.0;
/// Strongest third harmonic of the row tone allowed, relative to it (2.1–2.8 kHz, always
/// in the band; the column's is not).
const MAX_THIRD_HARMONIC_DB: f32 = -12.0;
/// Residual peaks are looked for on this grid, skipping the tones' neighbourhood.
const PROBE_FROM_HZ: f32 = 250.0;
const PROBE_TO_HZ: f32 = 3450.0;
const PROBE_STEP_HZ: f32 = 25.0;
const PROBE_CLEARANCE_HZ: f32 = 80.0;
const PROBES: usize = ((PROBE_TO_HZ - PROBE_FROM_HZ) / PROBE_STEP_HZ) as usize + 1;
/// The frequency re-measurement compares the first and the last WIN samples of the run.
const LAG: usize = RUN_SPAN - WIN;

/// Hann windows and the Goertzel coefficients of the probe grid.
struct RunTables {
    hann_run: [f32; RUN_SPAN],
    hann_win: [f32; WIN],
    /// (probe frequency, 2·cos ω)
    probes: [(f32, f32); PROBES],
}

fn hann<const N: usize>() -> [f32; N] {
    std::array::from_fn(|i| {
        let x = (i as f64 + 0.5) / N as f64;
        (0.5 - 0.5 * (2.0 * std::f64::consts::PI * x).cos()) as f32
    })
}

static RUN_TABLES: std::sync::LazyLock<RunTables> = std::sync::LazyLock::new(|| RunTables {
    hann_run: hann(),
    hann_win: hann(),
    probes: std::array::from_fn(|i| {
        let hz = PROBE_FROM_HZ + PROBE_STEP_HZ * i as f32;
        let w = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(SAMPLE_RATE);
        (hz, (2.0 * w.cos()) as f32)
    }),
});

/// True when `col_hz / row_hz` is (nearly) the ratio of two harmonics no key can have.
fn harmonic_pair(row_hz: f32, col_hz: f32) -> bool {
    let ratio = col_hz / row_hz;
    HARMONIC_RATIOS
        .iter()
        .any(|&(m, n, tolerance)| (ratio * n / m - 1.0).abs() < tolerance)
}

fn step(hz: f32) -> C32 {
    C32::cis(2.0 * PI * hz / SAMPLE_RATE as f32)
}

/// Σ x[n]·w[n]·e^{-jωn} for n from `start`, ω from `hz`; w = 1 when `window` is None.
fn correlate(x: &[f32], window: Option<&[f32]>, hz: f32, start: usize) -> C32 {
    let s = step(hz);
    let mut p = C32::cis(2.0 * PI * hz * start as f32 / SAMPLE_RATE as f32);
    let mut z = C32::default();
    for (i, &v) in x.iter().enumerate() {
        let v = window.map_or(v, |w| v * w[i]);
        z = z.add(C32::new(v * p.re, -v * p.im));
        p = p.mul(s);
    }
    z
}

/// Re-measures a tone near `hz` from the phase advance between the run's first and
/// last WIN samples, each Hann-windowed and correlated at `hz` itself.
fn steadier_frequency(x: &[f32; RUN_SPAN], hz: f32) -> f32 {
    let w = &RUN_TABLES.hann_win;
    let first = correlate(&x[..WIN], Some(w), hz, 0);
    let last = correlate(&x[LAG..], Some(w), hz, LAG);
    let q = last.mul(first.conj());
    if q.norm2() == 0.0 {
        return hz;
    }
    // unambiguous within ±SAMPLE_RATE/(2·LAG) = ±33 Hz of `hz`
    hz + q.im.atan2(q.re) * SAMPLE_RATE as f32 / (2.0 * PI * LAG as f32)
}

/// What is left of a run once both tones are fitted and removed (mean squares).
struct Residual {
    /// The two tones' power.
    tones: f32,
    row: f32,
    /// The strongest probe, and the median one.
    peak: f32,
    median: f32,
    /// At three times the row frequency.
    row_third: f32,
}

impl Residual {
    fn of(x: &[f32; RUN_SPAN], f_row: f32, f_col: f32) -> Residual {
        let t = &*RUN_TABLES;
        let n = RUN_SPAN as f32;
        let remove = |v: &mut [f32; RUN_SPAN], z: C32, hz: f32| {
            let s = step(hz);
            let mut p = C32::new(1.0, 0.0);
            for x in v.iter_mut() {
                *x -= 2.0 / n * z.mul(p).re;
                p = p.mul(s);
            }
        };
        // column, row on (signal − column), column again on (signal − row)
        let mut v = *x;
        remove(&mut v, correlate(x, None, f_col, 0), f_col);
        let z_row = correlate(&v, None, f_row, 0);
        let mut v = *x;
        remove(&mut v, z_row, f_row);
        let z_col = correlate(&v, None, f_col, 0);
        remove(&mut v, z_col, f_col);
        let power = |z: C32| 2.0 * z.norm2() / (n * n);
        for (r, h) in v.iter_mut().zip(&t.hann_run) {
            *r *= h;
        }
        // A sine of amplitude A gives |X| = A·N/4 through a Hann window: mean square 8|X|²/N².
        let goertzel = |coeff: f32| {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &r in &v {
                let s0 = r + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            8.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)
        };
        let mut probes = [0.0f32; PROBES];
        let mut count = 0;
        for &(hz, coeff) in &t.probes {
            if (hz - f_row).abs() >= PROBE_CLEARANCE_HZ && (hz - f_col).abs() >= PROBE_CLEARANCE_HZ
            {
                probes[count] = goertzel(coeff);
                count += 1;
            }
        }
        let probes = &mut probes[..count];
        let peak = probes.iter().copied().fold(0.0, f32::max);
        let median = *probes.select_nth_unstable_by(count / 2, f32::total_cmp).1;
        Residual {
            tones: power(z_row) + power(z_col),
            row: power(z_row),
            peak,
            median,
            row_third: goertzel(2.0 * (2.0 * PI * 3.0 * f_row / SAMPLE_RATE as f32).cos()),
        }
    }

    fn clean(&self) -> bool {
        let tonal = self.peak > self.median * db_to_power_ratio(TONAL_PEAK_DB);
        let limit = if tonal {
            MAX_TONAL_PEAK_DB
        } else {
            MAX_RESIDUAL_PEAK_DB
        };
        self.peak <= self.tones * db_to_power_ratio(limit)
            && self.row_third <= self.row * db_to_power_ratio(MAX_THIRD_HARMONIC_DB)
    }
}

impl InbandDetector {
    /// Does a candidate's run of hits (all for one key) show a key press?
    pub(super) fn run_passes(&self, run: &[Hit; MIN_HITS]) -> bool {
        let key = run[0];
        let x = self.recent::<RUN_SPAN>();
        let mean = |f: fn(&Hit) -> f32| run.iter().map(f).sum::<f32>() / MIN_HITS as f32;
        let f_row = steadier_frequency(&x, mean(|h| h.f_row));
        let f_col = steadier_frequency(&x, mean(|h| h.f_col));
        let off = |f: f32, k: usize| (f / self.tables.hz[k] - 1.0).abs();
        if off(f_row, key.row) > RUN_FREQ_TOLERANCE
            || off(f_col, key.col) > RUN_FREQ_TOLERANCE
            || harmonic_pair(f_row, f_col)
        {
            return false;
        }
        let residual = Residual::of(&x, f_row, f_col);
        residual.clean()
    }
}
