//! The fuzz targets without cargo-fuzz: every seed under `fuzz/seeds/<target>/`, then
//! pseudo-random inputs (seed mutations and raw noise from a fixed-seed `StdRng`),
//! through the very driver functions the fuzz targets call (`fuzz/src/drivers/`,
//! compiled in here with `#[path]`). The drivers assert the invariants (no panic,
//! deadlines never in the past, nothing secret shown while secure, one digit per
//! key press, stable print/parse, ...); see `docs/fuzzing.md`.
//!
//! `FUZZ_SMOKE_ITERS=N` sets the random inputs per target (default 1500, sized to
//! keep the whole file well under 20 s in a debug build); `FUZZ_SMOKE_SEED=S`
//! changes the generator seed; `FUZZ_SMOKE_KEEP_GOING=1` runs on past failures and
//! lists the distinct ones at the end. A failing input is written to
//! `target/fuzz-smoke-failures/<target>-<n>.bin` so it can be replayed with
//! `cargo +nightly fuzz run <target> <file>` or added as a regression.

#[path = "../fuzz/src/drivers/mod.rs"]
mod drivers;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(seeds_dir(target))
        .unwrap_or_else(|e| panic!("seed folder for {target}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read seed"))
        })
        .collect();
    out.sort();
    out
}

/// Run one input; on a panic, keep the input and fail with where it is. With
/// `keep_going` (`FUZZ_SMOKE_KEEP_GOING=1`, for long exploratory runs) the failure is
/// returned instead, so one known bug does not hide the next.
fn run_one_inner(target: &str, what: &str, data: &[u8], keep_going: bool) -> Option<String> {
    let result = catch_unwind(AssertUnwindSafe(|| drivers::run_target(target, data)));
    let Err(payload) = result else {
        return None;
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke-failures");
    let _ = std::fs::create_dir_all(&dir);
    let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let file = dir.join(format!("{target}-{n}.bin"));
    if n < 200 {
        let _ = std::fs::write(&file, data);
    }
    let report = format!(
        "fuzz target {target} failed on {what} ({} bytes): {message}; input saved to {}",
        data.len(),
        file.display()
    );
    if keep_going {
        return Some(message);
    }
    panic!("{report}");
}

fn run_one(target: &str, what: &str, data: &[u8]) {
    run_one_inner(target, what, data, false);
}

/// Byte strings parsers like to see (separators, numbers at the edges).
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n\0\0\n",
    b":",
    b";",
    b",",
    b" ",
    b"\t",
    b"=",
    b"<",
    b">",
    b"\"",
    b"%00",
    b"0",
    b"-1",
    b"65536",
    b"4294967296",
    b"99999999999999999999",
    b"Content-Length: ",
    b"l: 7\r\n",
    b"SIP/2.0",
    b"$TAG",
    b"m=audio ",
    b"a=rtpmap:",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"secure: true\n",
    b"  - ",
    b"{{ ",
    b" }}",
];

fn mutate(rng: &mut StdRng, seed: &[u8], pool: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.gen_range(1..=8) {
        let len = data.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                data.insert(i, rng.gen());
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                data.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                let chunk = data[a..b].to_vec();
                let at = rng.gen_range(0..=data.len());
                data.splice(at..at, chunk);
            }
            5 => {
                let tok = TOKENS[rng.gen_range(0..TOKENS.len())];
                let at = rng.gen_range(0..=len);
                data.splice(at..at, tok.iter().copied());
            }
            6 if !pool.is_empty() => {
                // Splice the tail of another seed.
                let other = &pool[rng.gen_range(0..pool.len())].1;
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    data
}

fn noise(rng: &mut StdRng) -> Vec<u8> {
    let mut data = vec![0u8; rng.gen_range(0..512)];
    rng.fill_bytes(&mut data);
    data
}

fn random_inputs(target: &str, default_iters: u64) {
    let iters = env_num("FUZZ_SMOKE_ITERS", default_iters);
    let seed = env_num("FUZZ_SMOKE_SEED", 0x5350_5352);
    let mut rng = StdRng::seed_from_u64(seed ^ fnv(target));
    let pool = seeds(target);
    assert!(!pool.is_empty(), "no seeds for {target}");
    let keep_going = env_num("FUZZ_SMOKE_KEEP_GOING", 0) != 0;
    let mut failures: Vec<(String, u64)> = Vec::new();
    let started = Instant::now();
    for i in 0..iters {
        let data = if rng.gen_ratio(1, 5) {
            noise(&mut rng)
        } else {
            let base = &pool[rng.gen_range(0..pool.len())].1;
            mutate(&mut rng, base, &pool)
        };
        let what = format!("random input #{i} (seed {seed})");
        if let Some(message) = run_one_inner(target, &what, &data, keep_going) {
            match failures.iter_mut().find(|(m, _)| *m == message) {
                Some((_, n)) => *n += 1,
                None => failures.push((message, 1)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: distinct failures (message, count), inputs in target/fuzz-smoke-failures: {failures:#?}"
    );
    eprintln!(
        "fuzz smoke {target}: {iters} random inputs in {:.1?}",
        started.elapsed()
    );
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn every_target_has_seeds_and_they_pass() {
    for target in drivers::TARGETS {
        let seeds = seeds(target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (name, data) in &seeds {
            run_one(target, name, data);
        }
    }
}

#[test]
fn every_fuzz_target_file_is_a_known_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("fuzz_targets")
        .map(|e| {
            e.expect("entry")
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut known: Vec<String> = drivers::TARGETS.iter().map(|t| t.to_string()).collect();
    known.sort();
    assert_eq!(files, known);
}

/// The structured seeds really reach deep into the flow: the happy-path seed must
/// decode to a long op sequence (guards against `make_seeds.py` drifting from the
/// `FlowOp` enum, which would silently turn seeds into noise).
#[test]
fn structured_seeds_decode() {
    use arbitrary::Arbitrary;
    let data = std::fs::read(seeds_dir("flow_run").join("happy_path.bin")).expect("seed");
    let input = drivers::FlowRunInput::arbitrary_take_rest(arbitrary::Unstructured::new(&data))
        .expect("decodes");
    assert!(!input.echo);
    assert!(input.ops.len() > 30, "{input:?}");
    assert!(matches!(input.ops[0], drivers::FlowOp::PlayFinished));
    let data = std::fs::read(seeds_dir("rtp").join("one_press.bin")).expect("seed");
    let input =
        drivers::RtpInput::arbitrary_take_rest(arbitrary::Unstructured::new(&data)).expect("rtp");
    assert!(
        matches!(
            input.steps.as_slice(),
            [drivers::RtpStep::Press { key: 1, .. }]
        ),
        "{input:?}"
    );
    let data = std::fs::read(seeds_dir("dtmf_merge").join("auto_mixed.bin")).expect("seed");
    let input =
        drivers::DtmfInput::arbitrary_take_rest(arbitrary::Unstructured::new(&data)).expect("dtmf");
    assert_eq!(
        (input.mode, input.audio.len(), input.steps.len()),
        (3, 0, 6)
    );
    let data = std::fs::read(seeds_dir("dtmf_merge").join("auto_with_audio.bin")).expect("seed");
    let input =
        drivers::DtmfInput::arbitrary_take_rest(arbitrary::Unstructured::new(&data)).expect("dtmf");
    assert_eq!((input.audio.len(), input.steps.len()), (320, 1));
}

#[test]
fn random_sip_datagram() {
    random_inputs("sip_datagram", 1500);
}

#[test]
fn random_sip_stream() {
    random_inputs("sip_stream", 1500);
}

#[test]
fn random_sdp() {
    random_inputs("sdp", 1500);
}

#[test]
fn random_rtp() {
    random_inputs("rtp", 1500);
}

#[test]
fn random_flow_yaml() {
    random_inputs("flow_yaml", 1500);
}

#[test]
fn random_flow_run() {
    random_inputs("flow_run", 1500);
}

fn report(seed: &str) -> drivers::FlowReport {
    use arbitrary::Arbitrary;
    let data = std::fs::read(seeds_dir("flow_run").join(seed)).expect("seed");
    let input = drivers::FlowRunInput::arbitrary_take_rest(arbitrary::Unstructured::new(&data))
        .expect("decodes");
    drivers::flow_run_report(&input)
}

/// The hand-written flow seeds get where their names say, so the fuzzer starts from
/// the secure segment and the audit paths rather than from the welcome prompt.
#[test]
fn flow_seeds_reach_the_secure_segment_and_the_audits() {
    let r = report("happy_path.bin");
    assert!(r.secure_segments >= 1, "{r:?}");
    assert_eq!(r.audits, [("success".into(), "pin_reset".into())], "{r:?}");
    // The OTP and the new PIN were both held as secrets and checked against the log.
    assert_eq!(r.secrets_checked, 2, "{r:?}");

    let r = report("hangup_in_secure.bin");
    assert!(r.secure_segments >= 1, "{r:?}");
    assert_eq!(
        r.audits,
        [("abandoned".into(), "caller_hangup_in_secure_segment".into())],
        "{r:?}"
    );

    let r = report("transfer_accepted.bin");
    assert_eq!(r.transfers, ["agent"], "{r:?}");

    let r = report("echo_digits.bin");
    assert!(r.states.iter().any(|s| s == "read_back"), "{r:?}");
}

#[test]
fn random_dtmf_merge() {
    random_inputs("dtmf_merge", 1500);
}
