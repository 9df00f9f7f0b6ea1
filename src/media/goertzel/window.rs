//! One 20 ms analysis window: which key it shows, if any.
//!
//! [`InbandDetector::hit`] is the strict test a window must pass to count towards a new
//! digit; [`InbandDetector::holds`] is the looser one that keeps a reported digit alive
//! (hysteresis), so a digit does not break up in noise or at a weak level.

use std::f32::consts::PI;

use super::{
    db_to_power_ratio, dbm0_power, Hit, InbandDetector, JointFit, C32, RUN_SPAN, SUB, WIN, WIN_SUBS,
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

/// How much the sub-block screening widens the level and twist limits before the
/// joint fit decides.
const SCREEN_SLACK_DB: f32 = 3.0;

/// The limits of a window test as mean squares and power ratios.
struct Limits {
    floor: f32,
    max_twist: f32,
    min_twist: f32,
    energy_ratio: f32,
}

impl Limits {
    /// The limits above, each widened by `slack_db` (level) and `twist_slack_db`, with
    /// `energy_ratio` required of the two tones.
    fn new(slack_db: f32, twist_slack_db: f32, energy_ratio: f32) -> Self {
        Limits {
            floor: dbm0_power(MIN_TONE_DBM0 - slack_db),
            max_twist: db_to_power_ratio(MAX_TWIST_DB + twist_slack_db),
            min_twist: db_to_power_ratio(MIN_TWIST_DB - twist_slack_db),
            energy_ratio,
        }
    }
}

/// (strict, screening, hold) limits, computed once.
static LIMITS: std::sync::LazyLock<(Limits, Limits, Limits)> = std::sync::LazyLock::new(|| {
    (
        Limits::new(0.0, 0.0, MIN_ENERGY_RATIO),
        Limits::new(SCREEN_SLACK_DB, SCREEN_SLACK_DB, MIN_ENERGY_RATIO / 2.0),
        Limits::new(HOLD_LEVEL_SLACK_DB, HOLD_TWIST_SLACK_DB, HOLD_ENERGY_RATIO),
    )
});
static HARMONIC_LIMIT: std::sync::LazyLock<f32> =
    std::sync::LazyLock::new(|| db_to_power_ratio(MAX_HARMONIC_DB));

/// Levels of a window's two tones and its total power (mean squares).
struct Levels {
    row: f32,
    col: f32,
    total: f32,
}

impl Levels {
    /// Level, twist and (when `energy_ratio`) energy-ratio checks.
    fn within(&self, limits: &Limits, energy_ratio: bool) -> bool {
        self.row >= limits.floor
            && self.col >= limits.floor
            && self.col <= self.row * limits.max_twist
            && self.col >= self.row * limits.min_twist
            && (!energy_ratio || self.row + self.col >= limits.energy_ratio * self.total)
    }

    /// For levels that are bounds from above: whether the true levels could pass
    /// [`Levels::within`] (the level floor and the energy ratio; twist needs a bound
    /// from below too, so it is left to the real test).
    fn may_be_within(&self, limits: &Limits, energy_ratio: bool) -> bool {
        self.row >= limits.floor
            && self.col >= limits.floor
            && (!energy_ratio || self.row + self.col >= limits.energy_ratio * self.total)
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

    /// The last `N` (≤ RUN_SPAN) samples in time order.
    pub(super) fn recent<const N: usize>(&self) -> [f32; N] {
        let mut h = [0.0; N];
        // the ring slot of the oldest sample wanted
        let start = ((self.samples + (RUN_SPAN - N) as u64) % RUN_SPAN as u64) as usize;
        let first = (RUN_SPAN - start).min(N);
        let older = &self.history[start..start + first];
        let newer = &self.history[..N - first];
        for (h, &s) in h.iter_mut().zip(older.iter().chain(newer)) {
            *h = f32::from(s);
        }
        h
    }

    /// Joint fit of both tones on the raw window (so neither tone's leakage biases the
    /// other's level), then the second-harmonic powers of the residual.
    /// Returns (row power, column power, row 2nd harmonic, column 2nd harmonic).
    fn refine(&self, f_row: f32, f_col: f32) -> (f32, f32, f32, f32) {
        let h = self.recent::<WIN>();
        let fit = JointFit::new(&h, f_row, f_col);
        let (mut h_r, mut h_c) = (C32::default(), C32::default());
        fit.residual(&h, |_, v, p_r, p_c| {
            let (q_r, q_c) = (p_r.mul(p_r), p_c.mul(p_c)); // e^{j2ωn}
            h_r = h_r.add(C32::new(v * q_r.re, -v * q_r.im));
            h_c = h_c.add(C32::new(v * q_c.re, -v * q_c.im));
        });
        let (row, col) = fit.powers(WIN);
        let harmonic = |z: C32| 2.0 * z.norm2() / (WIN * WIN) as f32;
        (row, col, harmonic(h_r), harmonic(h_c))
    }

    /// More than [`InbandDetector::tone`] can measure for bin `k` within `FREQ_TOLERANCE`:
    /// the window's sub-block powers summed without regard to phase (Cauchy–Schwarz:
    /// no coherent re-sum exceeds that), divided by the smallest gain `tone` can undo
    /// at that tolerance, with 1 % to spare for rounding. Costs eight products, and
    /// lets [`InbandDetector::hit`] refuse a window of speech or noise before measuring
    /// any frequency: it refuses only what the screening below would refuse anyway.
    fn tone_bound(&self, k: usize) -> f32 {
        static GAIN: std::sync::LazyLock<[f32; 8]> = std::sync::LazyLock::new(|| {
            let hz = super::ROW_HZ.iter().chain(super::COL_HZ.iter());
            let mut undo = [0.0; 8];
            for (u, &f) in undo.iter_mut().zip(hz) {
                let x = PI * FREQ_TOLERANCE * f * SUB as f32 / SAMPLE_RATE as f32;
                let g = x.sin() / x;
                *u = 1.01 / (g * g);
            }
            undo
        });
        let incoherent: f32 = (0..WIN_SUBS).map(|i| self.sub(k, i).norm2()).sum();
        2.0 * incoherent / (SUB * WIN) as f32 * GAIN[k]
    }

    /// The strict test: does this window show a key?
    pub(super) fn hit(&self) -> Option<Hit> {
        let row = self.strongest(0..4)?;
        let col = self.strongest(4..8)?;
        let total = self.window_power();
        let bound = Levels {
            row: self.tone_bound(row),
            col: self.tone_bound(col),
            total,
        };
        if !bound.may_be_within(&LIMITS.1, self.checks.energy_ratio) {
            return None;
        }
        let (p_row, f_row) = self.tone(row, FREQ_TOLERANCE)?;
        let (p_col, f_col) = self.tone(col, FREQ_TOLERANCE)?;
        // Cheap screening with the sub-block estimates (3 dB of slack), then the
        // precise checks on the jointly fitted levels.
        let screened = Levels {
            row: p_row,
            col: p_col,
            total,
        };
        if !screened.within(&LIMITS.1, self.checks.energy_ratio) {
            return None;
        }
        let (p_row, p_col, h_row, h_col) = self.refine(f_row, f_col);
        let fitted = Levels {
            row: p_row,
            col: p_col,
            total,
        };
        if !fitted.within(&LIMITS.0, self.checks.energy_ratio) {
            return None;
        }
        let limit = *HARMONIC_LIMIT;
        let row_harmonic_clear = (2.0 * f_row - f_col).abs() >= HARMONIC_CLEARANCE_HZ;
        if self.checks.second_harmonic
            && ((row_harmonic_clear && h_row > limit * p_row) || h_col > limit * p_col)
        {
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
        .within(&LIMITS.2, true)
    }
}
