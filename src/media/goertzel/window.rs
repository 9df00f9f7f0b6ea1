//! One 20 ms analysis window: which key it shows, if any.
//!
//! [`InbandDetector::hit`] is the strict test a window must pass to count towards a new
//! digit; [`InbandDetector::holds`] is the looser one that keeps a reported digit alive
//! (hysteresis), so a digit does not break up in noise or at a weak level.

use std::f32::consts::PI;

use super::{
    db_to_power_ratio, dbm0_power, Hit, InbandDetector, C32, RUN_SPAN, SUB, WIN, WIN_SUBS,
};
use crate::codec::SAMPLE_RATE;

/// Largest frequency offset of a hit in one window (the run's average must meet 2 %).
const FREQ_TOLERANCE: f32 = 0.03;
const MIN_TONE_DBM0: f32 = -43.0;
const MAX_TWIST_DB: f32 = 6.0; // high group stronger (reverse twist)
const MIN_TWIST_DB: f32 = -10.0; // high group weaker (normal twist)
const MIN_ENERGY_RATIO: f32 = 0.75;
const MAX_HARMONIC_DB: f32 = -12.0;
/// Twice a row frequency can lie within a bin or two of the column tone (2·770 Hz vs
/// 1477 Hz); there the column tone's onset or end would pass for a harmonic, so the
/// row's harmonic is only judged when at least this far from it.
const HARMONIC_CLEARANCE_HZ: f32 = 120.0;

/// Looser limits for a digit already reported.
const HOLD_FREQ_TOLERANCE: f32 = 0.035;
const HOLD_LEVEL_SLACK_DB: f32 = 6.0;
const HOLD_TWIST_SLACK_DB: f32 = 3.0;
const HOLD_ENERGY_RATIO: f32 = 0.5;

/// Levels of a window's two tones and its total power (mean squares).
struct Levels {
    row: f32,
    col: f32,
    total: f32,
}

impl Levels {
    /// Level, twist and energy-ratio checks; each limit widened by `slack_db` and the
    /// energy ratio required to be `ratio`.
    fn ok(&self, slack_db: f32, twist_slack_db: f32, ratio: f32) -> bool {
        let slack = db_to_power_ratio(slack_db);
        let twist = db_to_power_ratio(twist_slack_db);
        let floor = dbm0_power(MIN_TONE_DBM0) / slack;
        self.row >= floor
            && self.col >= floor
            && self.col <= self.row * db_to_power_ratio(MAX_TWIST_DB) * twist
            && self.col * twist >= self.row * db_to_power_ratio(MIN_TWIST_DB)
            && self.row + self.col >= ratio * self.total
    }
}

impl InbandDetector {
    /// Sub-block bin of frequency `k`, `age` sub-blocks ago (0 = newest).
    fn sub(&self, k: usize, age: usize) -> C32 {
        let b = self.blocks - 1 - age as u64;
        self.subs[(b % (WIN_SUBS as u64 + 1)) as usize][k]
    }

    fn window(&self, k: usize, age: usize) -> C32 {
        (age..age + WIN_SUBS).fold(C32::default(), |a, i| a.add(self.sub(k, i)))
    }

    /// The strongest bin of `range` in the current window.
    fn strongest(&self, range: std::ops::Range<usize>) -> Option<usize> {
        range
            .map(|k| (k, self.window(k, 0).norm2()))
            .fold(None, |best: Option<(usize, f32)>, (k, p)| match best {
                Some((_, q)) if q >= p => best,
                _ if p > 0.0 => Some((k, p)),
                _ => best,
            })
            .map(|(k, _)| k)
    }

    /// Measured (power, frequency) of the tone near bin `k`, if within `tolerance`.
    fn tone(&self, k: usize, tolerance: f32) -> Option<(f32, f32)> {
        let now = self.window(k, 0);
        let before = self.window(k, 1);
        let q = now.mul(before.conj());
        if q.norm2() == 0.0 {
            return None;
        }
        let phi = q.im.atan2(q.re); // phase advance per sub-block
        let hz = self.tables.hz[k];
        let offset = phi * SAMPLE_RATE as f32 / (2.0 * PI * SUB as f32);
        if offset.abs() > tolerance * hz {
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

    /// Mean power of the current window.
    fn window_power(&self) -> f32 {
        self.energies.iter().sum::<f32>() / WIN as f32
    }

    /// The last `N` samples in time order.
    pub(super) fn recent<const N: usize>(&self) -> [f32; N] {
        let mut h = [0.0; N];
        let start = self.samples + RUN_SPAN as u64 - N as u64;
        for (i, v) in h.iter_mut().enumerate() {
            *v = self.history[((start + i as u64) % RUN_SPAN as u64) as usize];
        }
        h
    }

    fn power_of(z: C32) -> f32 {
        2.0 * z.norm2() / (WIN * WIN) as f32
    }

    /// Joint fit of both tones on the raw window (so neither tone's leakage biases the
    /// other's level), then the second-harmonic powers of the residual.
    /// Returns (row power, column power, row 2nd harmonic, column 2nd harmonic).
    /// Four passes over the window: fit column; fit row on (signal − column); refit
    /// column on (signal − row); residual harmonics.
    fn refine(&self, f_row: f32, f_col: f32) -> (f32, f32, f32, f32) {
        let h = self.recent::<WIN>();
        let step = |hz: f32| C32::cis(2.0 * PI * hz / SAMPLE_RATE as f32);
        let (s_row, s_col) = (step(f_row), step(f_col));
        let scale = 2.0 / WIN as f32;
        // Σ (h[n] − Re(z_sub·p_sub[n])·scale) · conj(p_fit[n])
        let fit_without = |z_sub: C32, s_sub: C32, s_fit: C32| {
            let (mut p_sub, mut p_fit) = (C32::new(1.0, 0.0), C32::new(1.0, 0.0));
            let mut z = C32::default();
            for &x in &h {
                let v = x - scale * z_sub.mul(p_sub).re;
                z = z.add(C32::new(v * p_fit.re, -v * p_fit.im));
                p_sub = p_sub.mul(s_sub);
                p_fit = p_fit.mul(s_fit);
            }
            z
        };
        let zc0 = fit_without(C32::default(), s_col, s_col);
        let zr = fit_without(zc0, s_col, s_row);
        let zc = fit_without(zr, s_row, s_col);
        let (mut p_r, mut p_c) = (C32::new(1.0, 0.0), C32::new(1.0, 0.0));
        let (mut h_r, mut h_c) = (C32::default(), C32::default());
        for &x in &h {
            let v = x - scale * (zr.mul(p_r).re + zc.mul(p_c).re);
            let (q_r, q_c) = (p_r.mul(p_r), p_c.mul(p_c)); // e^{j2ωn}
            h_r = h_r.add(C32::new(v * q_r.re, -v * q_r.im));
            h_c = h_c.add(C32::new(v * q_c.re, -v * q_c.im));
            p_r = p_r.mul(s_row);
            p_c = p_c.mul(s_col);
        }
        (
            Self::power_of(zr),
            Self::power_of(zc),
            Self::power_of(h_r),
            Self::power_of(h_c),
        )
    }

    /// The strict test: does this window show a key?
    pub(super) fn hit(&self) -> Option<Hit> {
        let row = self.strongest(0..4)?;
        let col = self.strongest(4..8)?;
        let (p_row, f_row) = self.tone(row, FREQ_TOLERANCE)?;
        let (p_col, f_col) = self.tone(col, FREQ_TOLERANCE)?;
        let total = self.window_power();
        // Cheap screening with the sub-block estimates (3 dB of slack), then the
        // precise checks on the jointly fitted levels.
        let screened = Levels {
            row: p_row,
            col: p_col,
            total,
        };
        if !screened.ok(3.0, 3.0, MIN_ENERGY_RATIO / 2.0) {
            return None;
        }
        let (p_row, p_col, h_row, h_col) = self.refine(f_row, f_col);
        let fitted = Levels {
            row: p_row,
            col: p_col,
            total,
        };
        if !fitted.ok(0.0, 0.0, MIN_ENERGY_RATIO) {
            return None;
        }
        let limit = db_to_power_ratio(MAX_HARMONIC_DB);
        let row_harmonic_clear = (2.0 * f_row - f_col).abs() >= HARMONIC_CLEARANCE_HZ;
        if (row_harmonic_clear && h_row > limit * p_row) || h_col > limit * p_col {
            return None;
        }
        Some(Hit {
            row,
            col,
            f_row,
            f_col,
        })
    }

    /// The loose test: does this window still show the reported `key`?
    pub(super) fn holds(&self, key: &Hit) -> bool {
        if self.strongest(0..4) != Some(key.row) || self.strongest(4..8) != Some(key.col) {
            return false;
        }
        let (Some((row, _)), Some((col, _))) = (
            self.tone(key.row, HOLD_FREQ_TOLERANCE),
            self.tone(key.col, HOLD_FREQ_TOLERANCE),
        ) else {
            return false;
        };
        Levels {
            row,
            col,
            total: self.window_power(),
        }
        .ok(HOLD_LEVEL_SLACK_DB, HOLD_TWIST_SLACK_DB, HOLD_ENERGY_RATIO)
    }
}
