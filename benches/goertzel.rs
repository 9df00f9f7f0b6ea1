//! Cost of the in-band DTMF detector per 20 ms frame (160 samples at 8 kHz).
//!
//! Run: `cargo bench --bench goertzel`. Three inputs: a DTMF key (every window is a
//! candidate, so the joint-fit checks run), speech from the shipped prompts, and
//! G.711 silence.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
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
    let mut group = c.benchmark_group("inband_detector_per_20ms_frame");
    group.throughput(Throughput::Elements(1));
    for (name, pcm) in [("dtmf", &tone), ("speech", &speech), ("silence", &silence)] {
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
