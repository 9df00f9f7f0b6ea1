//! Cost of the in-band DTMF detector per 20 ms frame (160 samples at 8 kHz).
//!
//! Run: `cargo bench --bench goertzel`. Four inputs: a held DTMF key, speech from the
//! shipped prompts, G.711 silence, and a minute of sung tones from the talk-off stress
//! material (where windows often pass the per-window tests, so the joint fit and the
//! run checks of a candidate are computed most often), and the worst case: a key with a
//! third tone 12 dB below it, which every window's run check refuses. `bench/dtmf/cost.sh` counts the
//! instructions per frame of the same inputs under callgrind.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sspr_ivr::media::goertzel::talkoff::Material;
use sspr_ivr::media::{InbandDetector, ToneGenerator};

fn frames_of(pcm: &[i16]) -> Vec<Vec<i16>> {
    pcm.chunks_exact(160).map(<[i16]>::to_vec).collect()
}

fn bench(c: &mut Criterion) {
    let tone = ToneGenerator::new().digit('5', 2000, -10.0).expect("a key");
    let speech: Vec<i16> = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/prompts/en/welcome.wav"
    ))
    .expect("shipped prompt")
    .into_samples::<i16>()
    .map(|s| s.expect("sample"))
    .collect();
    let silence = vec![0i16; 16_000];
    let sung = Material::SungTones.generate(60, 1);
    // The worst case: a key with a third tone 12 dB below it passes every window, and
    // every window's candidate is judged (and refused) over its whole run.
    let refused: Vec<i16> = tone
        .iter()
        .zip(ToneGenerator::new().dual(2000.0, 300.0, -22.0, -90.0, 2000))
        .map(|(a, b)| a.saturating_add(b))
        .collect();
    let mut group = c.benchmark_group("inband_detector_per_20ms_frame");
    group.throughput(Throughput::Elements(1));
    for (name, pcm) in [
        ("dtmf", &tone),
        ("speech", &speech),
        ("silence", &silence),
        ("sung", &sung),
        ("refused", &refused),
    ] {
        let frames = frames_of(pcm);
        group.bench_function(name, |b| {
            let mut det = InbandDetector::new();
            let mut i = 0;
            b.iter(|| {
                let out = det.push(black_box(&frames[i % frames.len()]));
                i += 1;
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
