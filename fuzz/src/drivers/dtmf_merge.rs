//! `dtmf_merge`: the in-band detector on arbitrary audio, and the `DigitMerger` (one
//! digit stream from RFC 4733, in-band and INFO) in virtual time.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use sspr_ivr::codec::Codec;
use sspr_ivr::media::digits::DigitMerger;
use sspr_ivr::media::g711;
use sspr_ivr::media::goertzel::InbandDetector;
use sspr_ivr::media::{DigitSource, DtmfMode};

use super::{assert_deadline, t0, KEYS};

/// One input of a `dtmf_merge` run.
#[derive(Arbitrary, Clone, Debug)]
pub struct DtmfStep {
    pub delay_ms: u16,
    /// Index into `0123456789*#ABCD`.
    pub key: u8,
    /// 0 = RFC 4733, 1 = in-band, 2 = INFO (mod 3).
    pub source: u8,
}

#[derive(Arbitrary, Clone, Debug)]
pub struct DtmfInput {
    /// 0 = rfc4733, 1 = inband, 2 = info, 3 = auto (mod 4).
    pub mode: u8,
    /// Audio for the in-band detector (PCMU bytes), pushed in 20 ms frames.
    pub audio: Vec<u8>,
    pub steps: Vec<DtmfStep>,
}

/// `dtmf_merge`: the `DigitMerger` (one digit stream from RFC 4733, in-band and
/// INFO) in virtual time, and the in-band detector on arbitrary audio. A mode that
/// takes one source passes exactly that source's digits; same-source repeats are
/// never merged; nothing is invented; no digit stays held at the end.
pub fn dtmf_merge(input: &DtmfInput) {
    let mut det = InbandDetector::new();
    for frame in input.audio.chunks(160).take(500) {
        let pcm = g711::decode(Codec::Pcmu, frame);
        for d in det.push(&pcm) {
            assert!(
                KEYS.contains(&(d.digit as u8)),
                "detector invented key {:?}",
                d.digit
            );
        }
    }

    let mode = match input.mode % 4 {
        0 => DtmfMode::Rfc4733,
        1 => DtmfMode::Inband,
        2 => DtmfMode::Info,
        _ => DtmfMode::Auto,
    };
    let mut m = DigitMerger::new(mode);
    let mut now = t0();
    let mut fed: Vec<(char, DigitSource)> = Vec::new();
    let mut got: Vec<(char, DigitSource)> = Vec::new();
    let fire_until = |m: &mut DigitMerger, now: &mut Instant, to: Instant| {
        while let Some(d) = m.poll_timeout() {
            assert!(d >= *now, "merger deadline in the past");
            if d > to {
                break;
            }
            *now = d;
            m.handle_timeout(d);
        }
        *now = to;
    };
    for step in input.steps.iter().take(512) {
        let to = now + Duration::from_millis(u64::from(step.delay_ms));
        fire_until(&mut m, &mut now, to);
        got.extend(std::iter::from_fn(|| m.poll_digit()));
        let key = char::from(KEYS[usize::from(step.key % 16)]);
        let source = match step.source % 3 {
            0 => DigitSource::Rfc4733,
            1 => DigitSource::Inband,
            _ => DigitSource::Info,
        };
        fed.push((key, source));
        m.handle_digit(now, key, source);
        got.extend(std::iter::from_fn(|| m.poll_digit()));
        assert_deadline("digit merger", m.poll_timeout(), now);
    }
    let end = now + Duration::from_secs(5);
    fire_until(&mut m, &mut now, end);
    got.extend(std::iter::from_fn(|| m.poll_digit()));
    assert_eq!(m.poll_timeout(), None, "a digit is still held at the end");

    let only = |src: DigitSource| -> Vec<char> {
        fed.iter()
            .filter(|(_, s)| *s == src)
            .map(|(d, _)| *d)
            .collect()
    };
    let keys = |v: &[(char, DigitSource)]| -> Vec<char> { v.iter().map(|(d, _)| *d).collect() };
    match mode {
        DtmfMode::Rfc4733 => assert_eq!(keys(&got), only(DigitSource::Rfc4733)),
        DtmfMode::Inband => assert_eq!(keys(&got), only(DigitSource::Inband)),
        DtmfMode::Info => assert_eq!(keys(&got), only(DigitSource::Info)),
        DtmfMode::Auto => {
            assert!(got.len() <= fed.len(), "auto mode invented digits");
            let sources: HashSet<DigitSource> = fed.iter().map(|(_, s)| *s).collect();
            if sources.len() == 1 {
                assert_eq!(got, fed, "auto mode merged same-source repeats");
            }
            for g in &got {
                assert!(fed.contains(g), "auto mode delivered {g:?}, never fed");
            }
        }
    }
    let st = m.stats();
    assert_eq!(
        st.rfc4733 + st.inband + st.info,
        got.len() as u64,
        "stats disagree with delivered digits"
    );
}
