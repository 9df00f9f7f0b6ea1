//! Harmonic-rich stress material for measuring DTMF *talk-off* (digits reported where
//! nobody pressed a key), generated from a seed so tests and benchmarks can use hours of
//! it without shipping audio.
//!
//! Real speech and hold music rarely look like a DTMF pair: their energy is spread over
//! many components. What does is a voice or an instrument whose strong harmonics sit on a
//! row and a column frequency at the same time, above all when the pitch glides so the
//! harmonics sweep through every pair. Four materials exercise that, each a sum of
//! partials (one complex rotator per partial, frequencies and amplitudes updated every
//! 5 ms and interpolated in between) at 8 kHz:
//!
//! - [`Material::VowelGlides`]: voiced syllables and sirens from men, women and children
//!   (f0 80–600 Hz), the pitch gliding between random targets while the formants (F1–F4
//!   of ten vowels) glide between vowels; glottal spectrum −12 dB/octave plus radiation,
//!   jitter, shimmer, a little aspiration noise, and half the phrases band-limited to the
//!   telephone band (300–3400 Hz), which removes the fundamental of low voices.
//! - [`Material::SungTones`]: sung phrases on an equal-tempered scale from bass to
//!   soprano and child voices (f0 82–1050 Hz): held notes with delayed vibrato
//!   (4.5–7 Hz, ±0.3–2 %), portamento between notes, a vowel per phrase and, for trained
//!   voices, the singer's formant near 2.8 kHz.
//! - [`Material::Whistles`]: whistled melodies and glides (500–2800 Hz) with vibrato,
//!   a second and third harmonic between −6 and −40 dB, and breath noise.
//! - [`Material::HarmonicMusic`]: two to four equal-tempered voices (melody, bass, chord)
//!   played on instruments with strong harmonics — sawtooth brass and strings, odd-harmonic
//!   reeds, organ registrations, plucked/piano partials with inharmonic stretch — with
//!   vibrato on the sustained ones, occasional detuned tuning and light percussion noise.
//!
//! Levels vary per phrase from −30 to −6 dBm0 (RMS), with pauses of silence and low
//! noise between phrases. The output is linear 16-bit PCM; callers pass it through G.711
//! themselves. The same `(material, seconds, seed)` always gives the same samples.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::DBM0_PEAK;

const FS: f32 = 8000.0;
/// Control rate: frequencies and amplitudes change every BLOCK samples (5 ms).
const BLOCK: usize = 40;
/// Highest partial synthesised (the telephone band ends at 3.4 kHz; 8 kHz sampling at 4).
const MAX_PARTIAL_HZ: f32 = 3800.0;

/// The kinds of harmonic-rich material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Material {
    VowelGlides,
    SungTones,
    Whistles,
    HarmonicMusic,
}

impl Material {
    /// Every material, in report order.
    pub const ALL: [Material; 4] = [
        Material::VowelGlides,
        Material::SungTones,
        Material::Whistles,
        Material::HarmonicMusic,
    ];

    /// A short name for tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            Material::VowelGlides => "vowel glides",
            Material::SungTones => "sung tones",
            Material::Whistles => "whistles",
            Material::HarmonicMusic => "harmonic music",
        }
    }

    /// `seconds` of this material from `seed`, as 8 kHz 16-bit PCM.
    pub fn generate(self, seconds: u32, seed: u64) -> Vec<i16> {
        let n = seconds as usize * FS as usize;
        let mut out = Vec::with_capacity(n + FS as usize * 4);
        let mut rng = StdRng::seed_from_u64(seed ^ (self as u64).wrapping_mul(0x9E37_79B9));
        while out.len() < n {
            let phrase = match self {
                Material::VowelGlides => vowel_glide_phrase(&mut rng),
                Material::SungTones => sung_phrase(&mut rng),
                Material::Whistles => whistle_phrase(&mut rng),
                Material::HarmonicMusic => music_phrase(&mut rng),
            };
            let dbm0 = rng.gen_range(-30.0..-6.0);
            append_at_level(&mut out, &phrase, dbm0);
            let pause = rng.gen_range(0.0..0.4);
            append_pause(&mut out, pause, &mut rng);
        }
        out.truncate(n);
        out
    }
}

/// A bank of sinusoidal partials, each a unit complex rotator.
struct Partials {
    re: Vec<f32>,
    im: Vec<f32>,
    amp: Vec<f32>,
}

impl Partials {
    fn new(n: usize, rng: &mut StdRng) -> Self {
        let mut p = Partials {
            re: Vec::with_capacity(n),
            im: Vec::with_capacity(n),
            amp: vec![0.0; n],
        };
        for _ in 0..n {
            let phi: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
            p.re.push(phi.cos());
            p.im.push(phi.sin());
        }
        p
    }

    /// Adds one block of the partials to `out`: partial k at `hz[k]` (0 or above the
    /// band = silent), its amplitude moving linearly from the last block's to `amp[k]`.
    fn block(&mut self, hz: &[f32], amp: &[f32], out: &mut [f32]) {
        let len = out.len() as f32;
        for k in 0..self.re.len().min(hz.len()) {
            let target = if hz[k] > 0.0 && hz[k] < MAX_PARTIAL_HZ {
                amp[k]
            } else {
                0.0
            };
            let a0 = self.amp[k];
            self.amp[k] = target;
            if a0 == 0.0 && target == 0.0 {
                continue;
            }
            let w = std::f32::consts::TAU * hz[k] / FS;
            let (wr, wi) = (w.cos(), w.sin());
            let (mut r, mut i) = (self.re[k], self.im[k]);
            let da = (target - a0) / len;
            let mut a = a0;
            for o in out.iter_mut() {
                *o += a * i;
                let nr = r * wr - i * wi;
                i = r * wi + i * wr;
                r = nr;
                a += da;
            }
            let norm = (r * r + i * i).sqrt();
            self.re[k] = r / norm;
            self.im[k] = i / norm;
        }
    }
}

/// Gain of a two-pole resonance at `f` (unity at DC), an analogue formant.
fn resonance(f: f32, centre: f32, bandwidth: f32) -> f32 {
    let c2 = centre * centre;
    c2 / ((c2 - f * f).powi(2) + (bandwidth * f).powi(2)).sqrt()
}

/// Telephone-band shaping (second-order high-pass at 300 Hz, low-pass at 3400 Hz).
fn telephone_band(f: f32) -> f32 {
    let hp = (f / 300.0).powi(2) / (1.0 + (f / 300.0).powi(4)).sqrt();
    let lp = 1.0 / (1.0 + (f / 3400.0).powi(8)).sqrt();
    hp * lp
}

/// A vowel's first four formant frequencies (Hz), from Peterson & Barney's averages
/// for men; women's and children's are scaled up.
const VOWELS: [[f32; 4]; 10] = [
    [270.0, 2290.0, 3010.0, 3500.0], // i  (beet)
    [390.0, 1990.0, 2550.0, 3400.0], // ɪ  (bit)
    [530.0, 1840.0, 2480.0, 3400.0], // ɛ  (bet)
    [660.0, 1720.0, 2410.0, 3400.0], // æ  (bat)
    [730.0, 1090.0, 2440.0, 3400.0], // ɑ  (father)
    [570.0, 840.0, 2410.0, 3400.0],  // ɔ  (bought)
    [440.0, 1020.0, 2240.0, 3400.0], // ʊ  (book)
    [300.0, 870.0, 2240.0, 3400.0],  // u  (boot)
    [640.0, 1190.0, 2390.0, 3400.0], // ʌ  (but)
    [490.0, 1350.0, 1690.0, 3400.0], // ɝ  (bird)
];
const FORMANT_BW: [f32; 4] = [80.0, 100.0, 150.0, 200.0];

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Smooth 0→1 ramp.
fn smooth(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Attack/release envelope for a segment of `len` seconds at time `t`.
fn envelope(t: f32, len: f32, attack: f32, release: f32) -> f32 {
    smooth(t / attack) * smooth((len - t) / release)
}

/// A slow random walk (for jitter, shimmer, drifting vibrato): returns values in ±1.
struct Wobble {
    value: f32,
    target: f32,
    rate: f32,
}

impl Wobble {
    fn new(hz: f32) -> Self {
        Wobble {
            value: 0.0,
            target: 0.0,
            rate: hz * BLOCK as f32 / FS,
        }
    }
    fn next(&mut self, rng: &mut StdRng) -> f32 {
        if rng.gen::<f32>() < self.rate {
            self.target = rng.gen_range(-1.0..1.0);
        }
        self.value += (self.target - self.value) * self.rate.min(1.0) * 2.0;
        self.value
    }
}

/// Who is speaking or singing: f0 range and formant scale.
fn speaker(rng: &mut StdRng) -> (f32, f32, f32) {
    match rng.gen_range(0..4) {
        0 => (80.0, 200.0, 1.0),   // man
        1 => (150.0, 350.0, 1.17), // woman
        2 => (220.0, 500.0, 1.3),  // child
        _ => (100.0, 600.0, 1.15), // siren-like glide over a wide range
    }
}

/// Open vowels (æ ɑ ɔ ʊ ʌ ɝ): F1 and F2 near the DTMF row and column groups.
const OPEN_VOWELS: [usize; 6] = [3, 4, 5, 6, 8, 9];

/// One voiced phrase of gliding vowels: either speech-like syllables run together
/// with pitch glides, or (the stress case, 70 % of phrases) one sustained open vowel,
/// slowly changing colour, whose pitch glides along a random path so that its
/// harmonics sweep through the row and column frequencies.
fn vowel_glide_phrase(rng: &mut StdRng) -> Vec<f32> {
    let (lo, hi, scale) = speaker(rng);
    let sustained = rng.gen_bool(0.7);
    let phone = rng.gen_bool(0.5);
    let bw = scale * rng.gen_range(0.6..1.0);
    let pick = |rng: &mut StdRng| {
        if sustained {
            VOWELS[OPEN_VOWELS[rng.gen_range(0..OPEN_VOWELS.len())]]
        } else {
            VOWELS[rng.gen_range(0..VOWELS.len())]
        }
    };
    let segments: Vec<(f32, f32)> = (0..rng.gen_range(1..6))
        .map(|_| {
            let len = if sustained {
                rng.gen_range(0.3..1.5)
            } else {
                rng.gen_range(0.15..1.2)
            };
            (len, rng.gen_range(lo..hi))
        })
        .collect();
    let total: f32 = segments.iter().map(|s| s.0).sum();
    let mut out = Vec::new();
    let mut parts = Partials::new(64, rng);
    let mut jitter = Wobble::new(30.0);
    let mut shimmer = Wobble::new(20.0);
    let mut f0 = (lo * hi).sqrt() * rng.gen_range(0.8..1.25);
    let mut vowel = pick(rng);
    let tilt = rng.gen_range(0.8..1.4); // source slope: amplitude ∝ 1/k^tilt
    let breath = rng.gen_range(0.0..0.03);
    let mut start = 0.0;
    for (len, f0_end) in segments {
        let next_vowel = pick(rng);
        let blocks = (len * FS / BLOCK as f32) as usize;
        let mut hz = vec![0.0f32; 64];
        let mut amp = vec![0.0f32; 64];
        for b in 0..blocks {
            let t = b as f32 / blocks as f32;
            let g = smooth(t);
            let f = f0 * (f0_end / f0).powf(t) * (1.0 + 0.005 * jitter.next(rng));
            let formants: Vec<f32> = (0..4)
                .map(|i| lerp(vowel[i], next_vowel[i], g) * scale)
                .collect();
            let env = if sustained {
                envelope(start + t * len, total, 0.05, 0.08)
            } else {
                envelope(t * len, len, 0.03, 0.04)
            } * (1.0 + 0.08 * shimmer.next(rng));
            for k in 0..64 {
                let fk = f * (k + 1) as f32;
                hz[k] = fk;
                let mut a = env / ((k + 1) as f32).powf(tilt);
                for i in 0..4 {
                    a *= resonance(fk, formants[i], FORMANT_BW[i] * bw);
                }
                if phone {
                    a *= telephone_band(fk);
                }
                amp[k] = a;
            }
            let mut block = [0.0f32; BLOCK];
            parts.block(&hz, &amp, &mut block);
            for s in block.iter_mut() {
                *s += breath * env * rng.gen_range(-1.0..1.0);
            }
            out.extend_from_slice(&block);
        }
        start += len;
        f0 = f0_end;
        vowel = next_vowel;
    }
    out
}

/// Equal-tempered frequency of MIDI note `n` with A4 = `a4` Hz.
fn note_hz(n: i32, a4: f32) -> f32 {
    a4 * 2f32.powf((n - 69) as f32 / 12.0)
}

/// Major-ish scale steps used by the melodies (semitones above the tonic).
const SCALE: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];

fn scale_note(tonic: i32, degree: i32) -> i32 {
    let oct = degree.div_euclid(7);
    tonic + 12 * oct + SCALE[degree.rem_euclid(7) as usize]
}

/// One sung phrase: held notes with vibrato and portamento, one vowel.
fn sung_phrase(rng: &mut StdRng) -> Vec<f32> {
    // (lowest, highest MIDI note, formant scale, trained?)
    let (lo, hi, scale) = match rng.gen_range(0..5) {
        0 => (40, 64, 1.0),  // bass E2..E4
        1 => (48, 72, 1.0),  // tenor C3..C5
        2 => (53, 77, 1.17), // alto F3..F5
        3 => (60, 84, 1.17), // soprano C4..C6
        _ => (59, 79, 1.3),  // child B3..G5
    };
    let trained = rng.gen_bool(0.6);
    let phone = rng.gen_bool(0.5);
    let a4 = if rng.gen_bool(0.8) {
        440.0
    } else {
        rng.gen_range(425.0..455.0)
    };
    let vowel = VOWELS[rng.gen_range(0..VOWELS.len())];
    let tilt = rng.gen_range(0.6..1.2);
    let tonic = rng.gen_range(lo..lo + 12);
    let mut degree = rng.gen_range(0..8);
    let notes = rng.gen_range(2..9);
    let mut parts = Partials::new(64, rng);
    let mut jitter = Wobble::new(25.0);
    let mut out = Vec::new();
    let mut prev = note_hz(scale_note(tonic, degree), a4);
    for _ in 0..notes {
        degree = (degree + rng.gen_range(-3..=3)).clamp(0, ((hi - tonic) * 7 / 12).max(1));
        let target = note_hz(scale_note(tonic, degree), a4);
        let len = rng.gen_range(0.25..1.5);
        let vib_rate = rng.gen_range(4.5..7.0);
        let vib_depth = rng.gen_range(0.003..0.02);
        let vib_delay = rng.gen_range(0.1..0.3);
        let glide = rng.gen_range(0.03..0.08);
        let blocks = (len * FS / BLOCK as f32) as usize;
        let mut hz = vec![0.0f32; 64];
        let mut amp = vec![0.0f32; 64];
        for b in 0..blocks {
            let t = b as f32 * BLOCK as f32 / FS;
            let base = prev * (target / prev).powf(smooth(t / glide));
            let vib = vib_depth
                * smooth((t - vib_delay) / 0.2)
                * (std::f32::consts::TAU * vib_rate * t).sin();
            let f = base * (1.0 + vib + 0.003 * jitter.next(rng));
            let env = envelope(t, len, 0.04, 0.06);
            for k in 0..64 {
                let fk = f * (k + 1) as f32;
                hz[k] = fk;
                let mut a = env / ((k + 1) as f32).powf(tilt);
                for i in 0..4 {
                    // a sung vowel's F1 rises to meet a high f0 (formant tuning)
                    let centre = if i == 0 {
                        (vowel[0] * scale).max(f * 1.05)
                    } else {
                        vowel[i] * scale
                    };
                    a *= resonance(fk, centre, FORMANT_BW[i] * scale);
                }
                if trained {
                    // the singer's formant: up to about +10 dB near 2.8 kHz
                    a *= 1.0 + 0.3 * resonance(fk, 2800.0, 300.0);
                }
                if phone {
                    a *= telephone_band(fk);
                }
                amp[k] = a;
            }
            let mut block = [0.0f32; BLOCK];
            parts.block(&hz, &amp, &mut block);
            out.extend_from_slice(&block);
        }
        prev = target;
    }
    out
}

/// One whistled phrase: a near-sine melody or glide with weak harmonics and breath.
fn whistle_phrase(rng: &mut StdRng) -> Vec<f32> {
    let h2 = 10f32.powf(rng.gen_range(-40.0..-6.0) / 20.0);
    let h3 = h2 * 10f32.powf(rng.gen_range(-20.0..-6.0) / 20.0);
    let breath = 10f32.powf(rng.gen_range(-40.0..-20.0) / 20.0);
    let (lo, hi) = if rng.gen_bool(0.3) {
        (500.0, 1000.0)
    } else {
        (900.0, 2800.0)
    };
    let notes = rng.gen_range(2..10);
    let mut parts = Partials::new(3, rng);
    let mut out = Vec::new();
    let mut prev: f32 = rng.gen_range(lo..hi);
    let mut noise_state = [0.0f32; 2];
    for _ in 0..notes {
        let target: f32 = rng.gen_range(lo..hi);
        let len = rng.gen_range(0.1..0.9);
        let glide = if rng.gen_bool(0.3) {
            len
        } else {
            rng.gen_range(0.02..0.1)
        };
        let vib_rate = rng.gen_range(4.0..8.0);
        let vib_depth = rng.gen_range(0.0..0.03);
        let blocks = (len * FS / BLOCK as f32) as usize;
        for b in 0..blocks {
            let t = b as f32 * BLOCK as f32 / FS;
            let f = prev
                * (target / prev).powf(smooth(t / glide))
                * (1.0 + vib_depth * (std::f32::consts::TAU * vib_rate * t).sin());
            let env = envelope(t, len, 0.03, 0.05);
            let hz = [f, 2.0 * f, 3.0 * f];
            let amp = [env, env * h2, env * h3];
            let mut block = [0.0f32; BLOCK];
            parts.block(&hz, &amp, &mut block);
            // breath: white noise through a resonance near the whistle
            let w = std::f32::consts::TAU * f / FS;
            let r = 0.97f32;
            for s in block.iter_mut() {
                let x = rng.gen_range(-1.0f32..1.0) * breath * env;
                let y = x + 2.0 * r * w.cos() * noise_state[0] - r * r * noise_state[1];
                noise_state = [y, noise_state[0]];
                *s += y * (1.0 - r);
            }
            out.extend_from_slice(&block);
        }
        prev = target;
    }
    out
}

/// An instrument's partials: relative amplitudes and an inharmonicity coefficient.
struct Instrument {
    /// Amplitude of partial k (0-based) before the per-note decay.
    amps: Vec<f32>,
    /// Piano-like stretch: partial k at (k+1)·f0·√(1 + B(k+1)²).
    stretch: f32,
    /// Seconds for partial k's amplitude to fall by e, or infinite for sustained.
    decay: Vec<f32>,
    vibrato: f32,
}

fn instrument(rng: &mut StdRng) -> Instrument {
    let n = 32;
    let mut amps = vec![0.0f32; n];
    let mut decay = vec![f32::INFINITY; n];
    let mut stretch = 0.0;
    let mut vibrato = 0.0;
    match rng.gen_range(0..5) {
        0 => {
            // sawtooth brass / bowed strings
            for (k, a) in amps.iter_mut().enumerate() {
                *a = 1.0 / (k + 1) as f32;
            }
            vibrato = rng.gen_range(0.0..0.012);
        }
        1 => {
            // reed (clarinet-like): odd harmonics strong, even weak
            for (k, a) in amps.iter_mut().enumerate() {
                *a = if k % 2 == 0 {
                    1.0 / (k + 1) as f32
                } else {
                    0.05 / (k + 1) as f32
                };
            }
        }
        2 => {
            // organ registration: a few drawbars among harmonics 1,2,3,4,5,6,8
            for k in [0usize, 1, 2, 3, 4, 5, 7] {
                if k == 0 || rng.gen_bool(0.6) {
                    amps[k] = rng.gen_range(0.3..1.0);
                }
            }
        }
        3 => {
            // plucked string / piano: bright attack, upper partials die first
            stretch = rng.gen_range(0.0..0.0004);
            for (k, a) in amps.iter_mut().enumerate() {
                *a = 1.0 / (k + 1) as f32;
                decay[k] = 1.5 / (1.0 + 0.5 * k as f32);
            }
        }
        _ => {
            // double reed (oboe-like): strong partials around 1–1.5 kHz chosen per note
            for (k, a) in amps.iter_mut().enumerate() {
                *a = 0.4 + 0.6 / (k + 1) as f32;
            }
            vibrato = rng.gen_range(0.0..0.008);
        }
    }
    Instrument {
        amps,
        stretch,
        decay,
        vibrato,
    }
}

/// One bar-structured phrase of 2–4 voices on harmonic-rich instruments.
fn music_phrase(rng: &mut StdRng) -> Vec<f32> {
    let a4 = if rng.gen_bool(0.85) {
        440.0
    } else {
        rng.gen_range(430.0..450.0)
    };
    let beat = 60.0 / rng.gen_range(70.0..170.0f32);
    let beats = rng.gen_range(8..24);
    let len = beat * beats as f32;
    let tonic = rng.gen_range(55..67);
    let voices = rng.gen_range(2..5);
    let n = (len * FS) as usize;
    let mut out = vec![0.0f32; n + BLOCK];
    for v in 0..voices {
        let inst = instrument(rng);
        // voice 0 melody, 1 bass, others chord tones
        let (base, step_beats) = match v {
            0 => (tonic + 12, rng.gen_range(1..3)),
            1 => (tonic - 12, rng.gen_range(2..5)),
            _ => (tonic + [4, 7, 11][v % 3], rng.gen_range(2..9)),
        };
        let level = if v == 0 { 1.0 } else { rng.gen_range(0.3..0.8) };
        let mut parts = Partials::new(inst.amps.len(), rng);
        let mut hz = vec![0.0f32; inst.amps.len()];
        let mut amp = vec![0.0f32; inst.amps.len()];
        let mut t_note = 0.0f32;
        let mut note_len = beat * step_beats as f32;
        let mut degree = rng.gen_range(0..7);
        let mut pos = 0;
        while pos < n {
            let t = pos as f32 / FS;
            if t >= t_note + note_len {
                t_note = t;
                note_len = beat * rng.gen_range(1..=step_beats.max(1)) as f32;
                degree = (degree + rng.gen_range(-2..=2)).clamp(-3, 10);
            }
            let f0 = note_hz(scale_note(base, degree), a4);
            let tn = t - t_note;
            let vib = 1.0 + inst.vibrato * (std::f32::consts::TAU * 5.5 * tn).sin();
            let env = envelope(tn, note_len, 0.015, 0.03) * level;
            for k in 0..inst.amps.len() {
                let kk = (k + 1) as f32;
                hz[k] = f0 * vib * kk * (1.0 + inst.stretch * kk * kk).sqrt();
                amp[k] = env * inst.amps[k] * (-tn / inst.decay[k]).exp();
            }
            parts.block(&hz, &amp, &mut out[pos..pos + BLOCK]);
            pos += BLOCK;
        }
    }
    // light percussion: noise bursts on the beats
    let hat = 10f32.powf(rng.gen_range(-40.0..-15.0) / 20.0);
    for b in 0..beats {
        let start = (b as f32 * beat * FS) as usize;
        for i in 0..(0.05 * FS) as usize {
            if let Some(s) = out.get_mut(start + i) {
                *s += hat * rng.gen_range(-1.0..1.0) * (-(i as f32) / 80.0).exp();
            }
        }
    }
    out.truncate(n);
    out
}

/// Scales `phrase` to an RMS level of `dbm0` and appends it as 16-bit PCM.
fn append_at_level(out: &mut Vec<i16>, phrase: &[f32], dbm0: f32) {
    let energy: f64 = phrase.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if phrase.is_empty() || energy == 0.0 {
        return;
    }
    let rms = (energy / phrase.len() as f64).sqrt();
    let target = DBM0_PEAK / std::f64::consts::SQRT_2 * 10f64.powf(f64::from(dbm0) / 20.0);
    let g = (target / rms) as f32;
    out.extend(
        phrase
            .iter()
            .map(|&x| (x * g).round().clamp(-32768.0, 32767.0) as i16),
    );
}

/// Appends `seconds` of low background noise (about −65 dBm0).
fn append_pause(out: &mut Vec<i16>, seconds: f32, rng: &mut StdRng) {
    let n = (seconds * FS) as usize;
    out.extend((0..n).map(|_| rng.gen_range(-12i16..=12)));
}

/// `n` samples of white Gaussian noise of RMS `rms` (to add to test tones), from `seed`.
pub fn white_noise(n: usize, rms: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // Box–Muller
            let u: f64 = 1.0 - rng.gen::<f64>();
            let v: f64 = rng.gen();
            rms * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}
