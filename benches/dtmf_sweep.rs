//! The in-band DTMF detector beside spandsp's `dtmf_rx`, on identical G.711 audio: the
//! ITU-T Q.24 limits each one actually has (level, twist, frequency, duration,
//! interruption), noise tolerance, and talk-off per hour on the harmonic-rich material
//! of `media::goertzel::talkoff` and on the real speech and music shipped with the repo.
//!
//! Run it through `bench/dtmf/sweep.sh` (which builds bench/dtmf/spandsp_dtmf.c against
//! libspandsp and passes `--spandsp PATH`); by hand:
//! `cargo bench --bench dtmf_sweep -- [--spandsp PATH] [--minutes N] [--seeds S]
//! [--ablation-minutes N] [--quick]`. The last table turns the talk-off checks off one at
//! a time (and on one at a time) to show what each buys.
//! Without `--spandsp` only this crate's detector is measured. Prints a Markdown report.
//!
//! Every case is μ-law coded and decoded first (what a call delivers), then given to a
//! fresh detector of each kind in 20 ms frames.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use sspr_ivr::codec::Codec;
use sspr_ivr::media::g711;
use sspr_ivr::media::goertzel::talkoff::{white_noise, Material};
use sspr_ivr::media::goertzel::{digit_frequencies, Checks, DBM0_PEAK};
use sspr_ivr::media::{InbandDetector, ToneGenerator};

const ALL: &str = "123A456B789C*0#D";

/// Something that turns audio cases into the digits it heard, one string per case.
trait Receiver {
    fn name(&self) -> &str;
    fn run(&mut self, cases: &[Vec<i16>]) -> Vec<String>;
}

/// This crate's detector, running the talk-off checks in `checks`.
struct Ours {
    name: String,
    checks: Checks,
}

impl Ours {
    fn new() -> Self {
        Ours {
            name: "sspr-ivr".to_string(),
            checks: Checks::ALL,
        }
    }
}

impl Receiver for Ours {
    fn name(&self) -> &str {
        &self.name
    }
    fn run(&mut self, cases: &[Vec<i16>]) -> Vec<String> {
        cases
            .iter()
            .map(|pcm| {
                let mut det = InbandDetector::with_checks(self.checks);
                pcm.chunks(160)
                    .flat_map(|f| det.push(f))
                    .map(|d| d.digit)
                    .collect()
            })
            .collect()
    }
}

/// spandsp's dtmf_rx behind bench/dtmf/spandsp_dtmf.c (records on stdin, lines out).
struct Spandsp {
    path: String,
}

impl Receiver for Spandsp {
    fn name(&self) -> &str {
        "spandsp"
    }
    fn run(&mut self, cases: &[Vec<i16>]) -> Vec<String> {
        let mut child = Command::new(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.path));
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let out = std::thread::scope(|s| {
            s.spawn(move || {
                let mut w = std::io::BufWriter::new(&mut stdin);
                for pcm in cases {
                    w.write_all(&(pcm.len() as u32).to_le_bytes())
                        .expect("write");
                    for x in pcm {
                        w.write_all(&x.to_le_bytes()).expect("write");
                    }
                }
                w.flush().expect("flush");
            });
            BufReader::new(stdout)
                .lines()
                .map(|l| l.expect("read"))
                .collect::<Vec<_>>()
        });
        let status = child.wait().expect("wait");
        assert!(status.success(), "{} failed: {status}", self.path);
        assert_eq!(
            out.len(),
            cases.len(),
            "spandsp answered {} of {} cases",
            out.len(),
            cases.len()
        );
        out
    }
}

fn mulaw(pcm: &[i16]) -> Vec<i16> {
    g711::decode(Codec::Pcmu, &g711::encode(Codec::Pcmu, pcm))
}

fn gen() -> ToneGenerator {
    ToneGenerator::new()
}

/// `lead` samples of silence, the body, 100 ms of silence; μ-law coded.
fn framed(lead: usize, body: &[i16]) -> Vec<i16> {
    let mut v = vec![0; lead];
    v.extend_from_slice(body);
    v.extend(gen().silence(100));
    mulaw(&v)
}

/// One key's tone pair with deviations (%) and levels (dBm0).
fn pair(key: char, dev_lo: f64, dev_hi: f64, lo_dbm0: f64, hi_dbm0: f64, ms: u32) -> Vec<i16> {
    let (lo, hi) = digit_frequencies(key).expect("key");
    gen().dual(
        f64::from(lo) * (1.0 + dev_lo / 100.0),
        f64::from(hi) * (1.0 + dev_hi / 100.0),
        lo_dbm0,
        hi_dbm0,
        ms,
    )
}

const LEADS: [usize; 3] = [0, 13, 29];

/// True when every case of a grid point gave exactly `want(key)`.
fn all_match(
    rx: &mut dyn Receiver,
    cases: &[(char, Vec<i16>)],
    want: impl Fn(char) -> String,
) -> bool {
    let pcm: Vec<Vec<i16>> = cases.iter().map(|(_, p)| p.clone()).collect();
    rx.run(&pcm)
        .iter()
        .zip(cases)
        .all(|(got, (k, _))| *got == want(*k))
}

fn accepted(rx: &mut dyn Receiver, cases: &[(char, Vec<i16>)]) -> bool {
    all_match(rx, cases, |k| k.to_string())
}

fn rejected(rx: &mut dyn Receiver, cases: &[(char, Vec<i16>)]) -> bool {
    all_match(rx, cases, |_| String::new())
}

/// Cases for every key and lead from `body(key)`.
fn every_key(body: impl Fn(char) -> Vec<i16>) -> Vec<(char, Vec<i16>)> {
    ALL.chars()
        .flat_map(|k| {
            let b = body(k);
            LEADS
                .iter()
                .map(move |&l| (k, framed(l, &b)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Walks `grid` in order; returns the last value before the first failure of `ok`.
fn reach<T: Copy>(grid: &[T], mut ok: impl FnMut(T) -> bool) -> Option<T> {
    let mut last = None;
    for &g in grid {
        if !ok(g) {
            break;
        }
        last = Some(g);
    }
    last
}

fn fmt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| "none".to_string(), |v| format!("{v}{unit}"))
}

fn steps(from: f64, to: f64, step: f64) -> Vec<f64> {
    let n = ((to - from) / step).abs().round() as usize;
    (0..=n)
        .map(|i| from + (to - from).signum() * step * i as f64)
        .collect()
}

/// One row of the Q.24 table: (what, requirement, value per receiver).
type Row = (String, String, Vec<String>);

fn q24_rows(rxs: &mut [Box<dyn Receiver>], quick: bool) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |what: &str, req: &str, f: &mut dyn FnMut(&mut dyn Receiver) -> String| {
        let vals = rxs.iter_mut().map(|rx| f(rx.as_mut())).collect();
        rows.push((what.to_string(), req.to_string(), vals));
    };
    let coarse = if quick { 2.0 } else { 1.0 };

    // Level: the weakest level at which every key (equal tones, 60 ms) is heard, walking
    // down from −20 dBm0; and the strongest at which none is.
    let levels = steps(-20.0, -50.0, coarse);
    row(
        "weakest level, all 16 keys (60 ms, per tone)",
        "≤ −40 dBm0",
        &mut |rx| {
            fmt(
                reach(&levels, |l| {
                    accepted(rx, &every_key(|k| pair(k, 0.0, 0.0, l, l, 60)))
                }),
                " dBm0",
            )
        },
    );
    row(
        "strongest level with no key heard",
        "(none required)",
        &mut |rx| {
            fmt(
                levels
                    .iter()
                    .copied()
                    .find(|&l| rejected(rx, &every_key(|k| pair(k, 0.0, 0.0, l, l, 60)))),
                " dBm0",
            )
        },
    );
    for (name, strong) in [("−10", -10.0), ("−32 (weak tone at −40)", -32.0)] {
        let twists = steps(0.0, 16.0, coarse / 2.0);
        row(
            &format!("normal twist accepted, low group at {name} dBm0"),
            "≥ 8 dB",
            &mut |rx| {
                fmt(
                    reach(&twists, |t| {
                        accepted(
                            rx,
                            &every_key(|k| pair(k, 0.0, 0.0, strong, strong - t, 60)),
                        )
                    }),
                    " dB",
                )
            },
        );
        if strong > -20.0 {
            row(
                "normal twist rejected from",
                "(12 dB in the tests)",
                &mut |rx| {
                    fmt(
                        twists.iter().copied().find(|&t| {
                            rejected(
                                rx,
                                &every_key(|k| pair(k, 0.0, 0.0, strong, strong - t, 60)),
                            )
                        }),
                        " dB",
                    )
                },
            );
        }
        let twists = steps(0.0, 12.0, coarse / 2.0);
        let weak = if strong > -20.0 { strong } else { -36.0 };
        row(
            &format!("reverse twist accepted, high group at {weak} dBm0"),
            "≥ 4 dB",
            &mut |rx| {
                fmt(
                    reach(&twists, |t| {
                        accepted(rx, &every_key(|k| pair(k, 0.0, 0.0, weak - t, weak, 60)))
                    }),
                    " dB",
                )
            },
        );
        if strong > -20.0 {
            row(
                "reverse twist rejected from",
                "(8 dB in the tests)",
                &mut |rx| {
                    fmt(
                        twists.iter().copied().find(|&t| {
                            rejected(rx, &every_key(|k| pair(k, 0.0, 0.0, weak - t, weak, 60)))
                        }),
                        " dB",
                    )
                },
            );
        }
    }

    // Frequency: each tone alone and both together, both signs.
    let devs = steps(0.0, 6.0, if quick { 0.2 } else { 0.1 });
    let patterns: [(f64, f64); 6] = [
        (1.0, 0.0),
        (-1.0, 0.0),
        (0.0, 1.0),
        (0.0, -1.0),
        (1.0, -1.0),
        (-1.0, 1.0),
    ];
    for level in [-10.0, -35.0] {
        row(
            &format!("frequency deviation accepted, {level} dBm0"),
            "≥ ±1.5 %",
            &mut |rx| {
                fmt(
                    reach(&devs, |d| {
                        patterns.iter().all(|&(a, b)| {
                            accepted(rx, &every_key(|k| pair(k, a * d, b * d, level, level, 60)))
                        })
                    })
                    .map(|d| format!("{d:.1}")),
                    " %",
                )
            },
        );
        row(
            &format!("frequency deviation rejected from, {level} dBm0"),
            "≤ ±3.5 %",
            &mut |rx| {
                let mut from = None;
                for &d in devs.iter().rev() {
                    if patterns.iter().all(|&(a, b)| {
                        rejected(rx, &every_key(|k| pair(k, a * d, b * d, level, level, 60)))
                    }) {
                        from = Some(d);
                    } else {
                        break;
                    }
                }
                fmt(from.map(|d| format!("{d:.1}")), " %")
            },
        );
    }

    // Duration: shortest tone always heard and longest never heard, leads of 0–33 samples.
    let ms_grid: Vec<u32> = (10..=60).collect();
    for level in [-10.0, -35.0] {
        let dur_cases = |ms: u32| {
            ALL.chars()
                .flat_map(|k| {
                    let b = pair(k, 0.0, 0.0, level, level, ms);
                    [0usize, 7, 19, 33]
                        .iter()
                        .map(move |&l| (k, framed(l, &b)))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        row(
            &format!("shortest tone always accepted, {level} dBm0"),
            "≤ 40 ms",
            &mut |rx| {
                let mut shortest = None;
                for &ms in ms_grid.iter().rev() {
                    if accepted(rx, &dur_cases(ms)) {
                        shortest = Some(ms);
                    } else {
                        break;
                    }
                }
                fmt(shortest, " ms")
            },
        );
        row(
            &format!("longest tone always rejected, {level} dBm0"),
            "≥ 23 ms",
            &mut |rx| fmt(reach(&ms_grid, |ms| rejected(rx, &dur_cases(ms))), " ms"),
        );
    }

    // Interruption: tone 60 ms, gap, tone 60 ms.
    let gaps: Vec<u32> = (0..=50).collect();
    for level in [-10.0, -35.0] {
        let gap_cases = |gap: u32| {
            every_key(|k| {
                let mut b = pair(k, 0.0, 0.0, level, level, 60);
                b.extend(gen().silence(gap));
                b.extend(pair(k, 0.0, 0.0, level, level, 60));
                b
            })
        };
        row(
            &format!("longest gap bridged (one digit), {level} dBm0"),
            "≥ 10 ms",
            &mut |rx| fmt(reach(&gaps, |g| accepted(rx, &gap_cases(g))), " ms"),
        );
        row(
            &format!("shortest pause always splitting (two digits), {level} dBm0"),
            "≤ 40 ms",
            &mut |rx| {
                let mut from = None;
                for &g in gaps.iter().rev() {
                    if all_match(rx, &gap_cases(g), |k| format!("{k}{k}")) {
                        from = Some(g);
                    } else {
                        break;
                    }
                }
                fmt(from, " ms")
            },
        );
    }
    rows
}

/// Every key pressed `presses` times (tone 60 ms, pause 60 ms) at `lo`/`hi` dBm0, in
/// white noise at `snr_db` (both tones' power over the noise power, 0–4 kHz).
fn noisy_sequences(lo: f64, hi: f64, snr_db: f64, presses: usize, seed: u64) -> Vec<Vec<i16>> {
    let power = |dbm0: f64| (DBM0_PEAK * 10f64.powf(dbm0 / 20.0)).powi(2) / 2.0;
    let sigma = ((power(lo) + power(hi)) / 10f64.powf(snr_db / 10.0)).sqrt();
    (0..presses)
        .map(|p| {
            let mut v: Vec<i16> = gen().silence(60);
            for k in ALL.chars() {
                v.extend(pair(k, 0.0, 0.0, lo, hi, 60));
                v.extend(gen().silence(60));
            }
            let noise = white_noise(v.len(), sigma, seed ^ (p as u64) << 32);
            let noisy: Vec<i16> = v
                .iter()
                .zip(noise)
                .map(|(&s, n)| (f64::from(s) + n).round().clamp(-32768.0, 32767.0) as i16)
                .collect();
            mulaw(&noisy)
        })
        .collect()
}

const SNRS: [f64; 10] = [20.0, 15.0, 12.0, 10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0];

/// Per tone levels and receiver: "% heard / extra digits" at each SNR.
fn noise_table(rxs: &mut [Box<dyn Receiver>], presses: usize) {
    println!(
        "| tones (low/high dBm0) | receiver | {} |",
        SNRS.map(|s| format!("{s} dB")).join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(SNRS.len()));
    for (lo, hi) in [
        (-20.0, -20.0),
        (-35.0, -35.0),
        (-12.0, -20.0),
        (-24.0, -20.0),
        (-32.0, -40.0),
        (-40.0, -36.0),
    ] {
        for rx in rxs.iter_mut() {
            let cells: Vec<String> = SNRS
                .iter()
                .map(|&snr| {
                    let cases = noisy_sequences(
                        lo,
                        hi,
                        snr,
                        presses,
                        0x5eed ^ snr.to_bits() ^ (lo as i64 as u64) << 8,
                    );
                    let (mut hit, mut extra) = (0, 0);
                    for got in rx.run(&cases) {
                        let (h, e) = score(ALL, &got);
                        hit += h;
                        extra += e;
                    }
                    let pct = 100.0 * hit as f64 / (presses * ALL.len()) as f64;
                    if extra == 0 {
                        format!("{pct:.0} %")
                    } else {
                        format!("{pct:.0} % **+{extra}**")
                    }
                })
                .collect();
            println!("| {lo}/{hi} | {} | {} |", rx.name(), cells.join(" | "));
        }
    }
}

/// Longest-common-subsequence score of a heard string against the pressed one:
/// (digits heard in order, digits heard that were not pressed or were doubled).
fn score(pressed: &str, heard: &str) -> (usize, usize) {
    let (a, b): (Vec<char>, Vec<char>) = (pressed.chars().collect(), heard.chars().collect());
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 0..a.len() {
        for j in 0..b.len() {
            t[i + 1][j + 1] = if a[i] == b[j] {
                t[i][j] + 1
            } else {
                t[i][j + 1].max(t[i + 1][j])
            };
        }
    }
    let common = t[a.len()][b.len()];
    (common, b.len() - common)
}

fn wav(path: &std::path::Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// The real speech and music shipped in the repo: every prompt and the test voices.
fn real_audio() -> Vec<i16> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("prompts/en"))
        .expect("prompts")
        .map(|e| e.expect("entry").path())
        .chain(
            [
                "speech_en_gb_f.wav",
                "speech_en_us_fast.wav",
                "speech_en_us_whisper.wav",
            ]
            .iter()
            .map(|n| root.join("src/media/testdata").join(n)),
        )
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        all.extend(wav(&f));
        all.extend(gen().silence(200));
    }
    all
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let minutes: u32 = opt("--minutes").map_or(60, |m| m.parse().expect("--minutes N"));
    let seeds: u64 = opt("--seeds").map_or(4, |s| s.parse().expect("--seeds S"));
    let mut rxs: Vec<Box<dyn Receiver>> = vec![Box::new(Ours::new())];
    if let Some(path) = opt("--spandsp") {
        rxs.push(Box::new(Spandsp { path }));
    }
    let names: Vec<String> = rxs.iter().map(|r| r.name().to_string()).collect();
    let header = |first: &str| {
        println!("| {first} | target | {} |", names.join(" | "));
        println!("|---|---|{}", "---|".repeat(names.len()));
    };
    let print = |rows: &[Row]| {
        for (what, req, vals) in rows {
            println!("| {what} | {req} | {} |", vals.join(" | "));
        }
    };

    println!("### Q.24 limits (μ-law, every key, leads of 0–33 samples)\n");
    header("limit");
    print(&q24_rows(&mut rxs, quick));

    let presses = if quick { 3 } else { 20 };
    println!(
        "\n### White noise: keys heard and **extra digits** (every key pressed {presses} times, 60 ms on / 60 ms off; SNR = both tones over the noise, 0–4 kHz)\n"
    );
    noise_table(&mut rxs, presses);

    println!(
        "\n### Talk-off: digits heard per hour ({seeds} × {minutes} min of each material, seeds 1–{seeds})\n"
    );
    println!("| material | hours | target | {} |", names.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(names.len()));
    for m in Material::ALL {
        let mut heard = vec![String::new(); rxs.len()];
        for seed in 1..=seeds {
            let pcm = mulaw(&m.generate(minutes * 60, seed));
            for (rx, h) in rxs.iter_mut().zip(heard.iter_mut()) {
                h.push_str(&rx.run(std::slice::from_ref(&pcm)).remove(0));
            }
        }
        talkoff_row(
            m.name(),
            f64::from(minutes) * seeds as f64 / 60.0,
            "≤ ¼ of spandsp",
            &heard,
        );
    }
    let real = mulaw(&real_audio());
    let ablation_minutes: u32 =
        opt("--ablation-minutes").map_or(minutes, |m| m.parse().expect("--ablation-minutes N"));

    let heard: Vec<String> = rxs
        .iter_mut()
        .map(|rx| rx.run(std::slice::from_ref(&real)).remove(0))
        .collect();
    talkoff_row(
        "real speech and music (every prompt, testdata voices)",
        real.len() as f64 / 8000.0 / 3600.0,
        "0",
        &heard,
    );
    ablation(seeds, ablation_minutes, &real);
}

/// The detector with some talk-off checks off: (label, checks).
fn variants() -> Vec<(&'static str, Checks)> {
    let all = Checks::ALL;
    let window_only = Checks {
        steadier_frequency: false,
        harmonic_ratio: false,
        residual_peak: false,
        third_harmonic: false,
        ..all
    };
    vec![
        ("all checks (as shipped)", all),
        (
            "without energy ratio",
            Checks {
                energy_ratio: false,
                ..all
            },
        ),
        (
            "without 2nd harmonic",
            Checks {
                second_harmonic: false,
                ..all
            },
        ),
        (
            "without steadier frequency",
            Checks {
                steadier_frequency: false,
                ..all
            },
        ),
        (
            "without harmonic ratio",
            Checks {
                harmonic_ratio: false,
                ..all
            },
        ),
        (
            "without residual peak",
            Checks {
                residual_peak: false,
                ..all
            },
        ),
        (
            "without 3rd harmonic",
            Checks {
                third_harmonic: false,
                ..all
            },
        ),
        ("window tests only (no run check)", window_only),
        (
            "window tests + steadier frequency",
            Checks {
                steadier_frequency: true,
                ..window_only
            },
        ),
        (
            "window tests + harmonic ratio",
            Checks {
                harmonic_ratio: true,
                ..window_only
            },
        ),
        (
            "window tests + residual peak",
            Checks {
                residual_peak: true,
                ..window_only
            },
        ),
        (
            "window tests + 3rd harmonic",
            Checks {
                third_harmonic: true,
                ..window_only
            },
        ),
        (
            "no talk-off check (level, twist, frequency only)",
            Checks {
                energy_ratio: false,
                second_harmonic: false,
                ..window_only
            },
        ),
    ]
}

/// What each talk-off check buys: digits per hour on each material (and on the real
/// audio) with checks turned off one at a time, and with the run checks one at a time.
fn ablation(seeds: u64, minutes: u32, real: &[i16]) {
    let hours = f64::from(minutes) * seeds as f64 / 60.0;
    println!(
        "\n### What each talk-off check buys: digits per hour ({seeds} × {minutes} min of each material; real audio {:.2} h)\n",
        real.len() as f64 / 8000.0 / 3600.0
    );
    let names: Vec<&str> = Material::ALL.iter().map(|m| m.name()).collect();
    println!(
        "| detector | {} | real speech and music (digits) |",
        names.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(names.len()));
    let material: Vec<Vec<i16>> = Material::ALL
        .iter()
        .flat_map(|m| (1..=seeds).map(move |seed| mulaw(&m.generate(minutes * 60, seed))))
        .collect();
    for (label, checks) in variants() {
        let mut rx = Ours {
            name: label.to_string(),
            checks,
        };
        let heard = rx.run(&material);
        let mut cells: Vec<String> = heard
            .chunks(seeds as usize)
            .map(|h| {
                let n: usize = h.iter().map(|d| d.chars().count()).sum();
                format!("{:.1}", n as f64 / hours)
            })
            .collect();
        let n = rx.run(&[real.to_vec()]).remove(0).chars().count();
        cells.push(n.to_string());
        println!("| {label} | {} |", cells.join(" | "));
    }
}

/// One talk-off line: per receiver, the digits heard and the rate per hour.
fn talkoff_row(name: &str, hours: f64, target: &str, heard: &[String]) {
    let cells: Vec<String> = heard
        .iter()
        .map(|h| {
            let n = h.chars().count();
            let shown = if n == 0 || n > 12 {
                String::new()
            } else {
                format!(" (`{h}`)")
            };
            format!("{n} = **{:.1}/h**{shown}", n as f64 / hours)
        })
        .collect();
    println!("| {name} | {hours:.2} | {target} | {} |", cells.join(" | "));
}
