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

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::{
    db_to_power_ratio, step, Checks, Hit, InbandDetector, JointFit, C32, MIN_HITS, RUN_SPAN, WIN,
};
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
/// noise's strongest of the ~90 bins looked at is typically 9 dB above their median, and
/// 15 dB with a probability below 1e-7)...
const TONAL_PEAK_DB: f32 = 15.0;
/// ...and a tonal residual must stay below this, relative to the two tones.
const MAX_TONAL_PEAK_DB: f32 = -20.0;
/// Strongest third harmonic of the row tone allowed, relative to it (2.1–2.8 kHz, always
/// in the band; the column's is not).
const MAX_THIRD_HARMONIC_DB: f32 = -12.0;
/// Residual peaks are looked for in the spectrum (Hann window, 31.25 Hz bins) of the
/// run's last FFT_LEN samples, between these frequencies, skipping the tones'
/// neighbourhood.
const FFT_LEN: usize = 256;
const PROBE_FROM_HZ: f32 = 250.0;
const PROBE_TO_HZ: f32 = 3450.0;
const PROBE_CLEARANCE_HZ: f32 = 80.0;
const BIN_HZ: f32 = SAMPLE_RATE as f32 / FFT_LEN as f32;
/// The frequency re-measurement compares the first and the last WIN samples of the run.
const LAG: usize = RUN_SPAN - WIN;

/// Hann windows, the residual's FFT plan and the limits as power ratios.
struct RunTables {
    hann_fft: [f32; FFT_LEN],
    hann_win: [f32; WIN],
    fft: std::sync::Arc<dyn RealToComplex<f32>>,
    tonal: f32,
    max_tonal_peak: f32,
    max_residual_peak: f32,
    max_third_harmonic: f32,
}

fn hann<const N: usize>() -> [f32; N] {
    std::array::from_fn(|i| {
        let x = (i as f64 + 0.5) / N as f64;
        (0.5 - 0.5 * (2.0 * std::f64::consts::PI * x).cos()) as f32
    })
}

static RUN_TABLES: std::sync::LazyLock<RunTables> = std::sync::LazyLock::new(|| RunTables {
    hann_fft: hann(),
    hann_win: hann(),
    fft: RealFftPlanner::<f32>::new().plan_fft_forward(FFT_LEN),
    tonal: db_to_power_ratio(TONAL_PEAK_DB),
    max_tonal_peak: db_to_power_ratio(MAX_TONAL_PEAK_DB),
    max_residual_peak: db_to_power_ratio(MAX_RESIDUAL_PEAK_DB),
    max_third_harmonic: db_to_power_ratio(MAX_THIRD_HARMONIC_DB),
});

/// True when `col_hz / row_hz` is (nearly) the ratio of two harmonics no key can have.
fn harmonic_pair(row_hz: f32, col_hz: f32) -> bool {
    let ratio = col_hz / row_hz;
    HARMONIC_RATIOS
        .iter()
        .any(|&(m, n, tolerance)| (ratio * n / m - 1.0).abs() < tolerance)
}

/// Σ x[n]·w[n]·e^{-jω(n + start)}, ω from `hz`: the tone's phase referenced to the
/// run's first sample.
fn correlate(x: &[f32], w: &[f32], hz: f32, start: usize) -> C32 {
    let s = step(hz);
    let mut p = C32::cis(2.0 * PI * hz * start as f32 / SAMPLE_RATE as f32);
    let mut z = C32::default();
    for (&v, &w) in x.iter().zip(w) {
        z = z.add(C32::new(v * w * p.re, -v * w * p.im));
        p = p.mul(s);
    }
    z
}

/// Re-measures a tone near `hz` from the phase advance between the run's first and
/// last WIN samples, each Hann-windowed and correlated at `hz` itself.
fn steadier_frequency(x: &[f32; RUN_SPAN], hz: f32) -> f32 {
    let w = &RUN_TABLES.hann_win;
    let first = correlate(&x[..WIN], w, hz, 0);
    let last = correlate(&x[LAG..], w, hz, LAG);
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
        let fit = JointFit::new(x, f_row, f_col);
        // The last FFT_LEN samples of the residual, Hann-windowed, and (on the way) the
        // row's third harmonic in them.
        let mut r = [0.0f32; FFT_LEN];
        let (mut third, mut third_step) = (C32::default(), C32::new(1.0, 0.0));
        let s_third = step(3.0 * f_row);
        fit.residual(x, |n, v, _, _| {
            if let Some(i) = n.checked_sub(RUN_SPAN - FFT_LEN) {
                let w = v * t.hann_fft[i];
                r[i] = w;
                third = third.add(C32::new(w * third_step.re, -w * third_step.im));
                third_step = third_step.mul(s_third);
            }
        });
        // A sine of amplitude A gives |X| = A·N/4 through a Hann window: mean square 8|X|²/N².
        let scale = 8.0 / (FFT_LEN * FFT_LEN) as f32;
        let mut spectrum = [Complex::default(); FFT_LEN / 2 + 1];
        let mut scratch = [Complex::default(); FFT_LEN];
        let scratch = &mut scratch[..t.fft.get_scratch_len()];
        t.fft
            .process_with_scratch(&mut r, &mut spectrum, scratch)
            .expect("buffers sized for the plan");
        let mut probes = [0.0f32; FFT_LEN / 2 + 1];
        let mut count = 0;
        for (k, x) in spectrum.iter().enumerate() {
            let hz = k as f32 * BIN_HZ;
            if (PROBE_FROM_HZ..=PROBE_TO_HZ).contains(&hz)
                && (hz - f_row).abs() >= PROBE_CLEARANCE_HZ
                && (hz - f_col).abs() >= PROBE_CLEARANCE_HZ
            {
                probes[count] = scale * x.norm_sqr();
                count += 1;
            }
        }
        let probes = &mut probes[..count];
        let peak = probes.iter().copied().fold(0.0, f32::max);
        let median = *probes.select_nth_unstable_by(count / 2, f32::total_cmp).1;
        let (row, col) = fit.powers(RUN_SPAN);
        Residual {
            tones: row + col,
            row,
            peak,
            median,
            row_third: scale * third.norm2(),
        }
    }

    fn clean(&self, checks: Checks) -> bool {
        let t = &*RUN_TABLES;
        let limit = if self.peak > self.median * t.tonal {
            t.max_tonal_peak
        } else {
            t.max_residual_peak
        };
        (!checks.residual_peak || self.peak <= self.tones * limit)
            && (!checks.third_harmonic || self.row_third <= self.row * t.max_third_harmonic)
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
        let c = self.checks;
        if c.steadier_frequency
            && (off(f_row, key.row) > RUN_FREQ_TOLERANCE
                || off(f_col, key.col) > RUN_FREQ_TOLERANCE)
        {
            return false;
        }
        if c.harmonic_ratio && harmonic_pair(f_row, f_col) {
            return false;
        }
        if !(c.residual_peak || c.third_harmonic) {
            return true;
        }
        Residual::of(&x, f_row, f_col).clean(c)
    }
}
