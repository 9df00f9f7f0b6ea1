//! The media hot path allocates nothing per packet (issue 14, item 2). A call's
//! media session plays a prompt, hears the caller's speech (the in-band
//! detector running, as in a collect) and records both sides; driven packet by
//! packet as a shard drives it, it makes no heap allocation at all in 10 s of
//! steady state. Not a polite caller: in the counted window the caller types
//! a PIN in-band over the prompt (`1234#`, heard as digits), the flow opens and
//! closes a secure segment around it, and a stranger sprays an RTP packet at
//! the call's port from another address with every packet the caller sends.
//! What it allows: nothing — not per packet and not per key (the detector hands
//! each digit over as it hears it). The recording's blocks go back to their pool, as the
//! recorder's writer gives them back. A control run that allocates one buffer
//! per packet is counted, so the count can fail.
//!
//! The counter is per thread (the test harness runs tests on threads of its
//! own), and armed only around the measured packets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sspr_ivr::codec::Codec;
use sspr_ivr::media::{
    g711, DtmfMode, MediaConfig, MediaEvent, MediaSession, PlayItem, Prompt, PromptCache,
    RtpSource, RtpTrust, ToneGenerator,
};

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    if ARMED.with(Cell::get) {
        ALLOCS.with(|n| n.set(n.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PTIME: Duration = Duration::from_millis(20);

fn session(record: bool, t0: Instant) -> MediaSession {
    // A prompt longer than the run: every packet carries prompt audio.
    let prompt: Vec<i16> = (0..8000 * 15)
        .map(|i| ((i * 37 % 4000) as i16) - 2000)
        .collect();
    let prompts = Arc::new(PromptCache::from_prompts([Prompt::from_pcm(
        "long", prompt,
    )]));
    let config = MediaConfig {
        codec: Codec::Pcmu,
        audio_pt: 0,
        telephone_event_pt: Some(101),
        ptime_ms: 20,
        remote: "127.0.0.1:40000".parse().unwrap(),
        symmetric_rtp: true,
        dtmf_mode: DtmfMode::Auto,
        inactivity_timeout: Duration::from_secs(60),
        hold_timeout: Duration::from_secs(600),
        record,
        trust: RtpTrust::from_sources(&[RtpSource::Sdp, RtpSource::Signalling]),
        signalling_ip: Some("127.0.0.1".parse().unwrap()),
        peer_receives: true,
    };
    let mut s = MediaSession::new(t0, config, prompts, 0x1234_5678, 100, 0);
    s.start_sending();
    s.play(t0, 1, vec![PlayItem::Prompt("long".into())]);
    s
}

/// From this packet (3 s) the caller types `KEYS` in-band.
const KEYS_FROM: usize = 150;
const KEYS: &str = "1234#";
/// A key typed during the warm-up (packet 5): the detector's tables are
/// built on the first key the process ever hears, and the digit queues
/// reach their working size, once per process and once per call.
const WARM_KEY_AT: usize = 5;

/// The caller's packets: speech-like noise, PCMU, 20 ms each, with `KEYS` as
/// tones from packet `KEYS_FROM`.
fn caller_packets(n: usize) -> Vec<Vec<u8>> {
    let mut x: u32 = 1;
    let g = ToneGenerator::new();
    let tones = g.sequence(KEYS, 80, 80, -10.0);
    let warm = g.sequence("9", 80, 80, -10.0);
    (0..n)
        .map(|i| {
            let pcm: Vec<i16> = (0..160)
                .map(|k| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let at = |from: usize, seq: &[i16]| {
                        (i * 160 + k)
                            .checked_sub(from * 160)
                            .and_then(|t| seq.get(t).copied())
                    };
                    at(KEYS_FROM, &tones)
                        .or(at(WARM_KEY_AT, &warm))
                        .unwrap_or(((x >> 16) as i16) / 6)
                })
                .collect();
            let mut p = vec![0x80, 0];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&(160 * i as u32).to_be_bytes());
            p.extend_from_slice(&99u32.to_be_bytes());
            p.extend_from_slice(&g711::encode(Codec::Pcmu, &pcm));
            p
        })
        .collect()
}

struct Run {
    allocations: u64,
    sent: u64,
    recorded_frames: u64,
    digits: usize,
    rejected: u64,
}

/// 1 s of warm-up, then 10 s counted. `per_packet_vec`: the control, one
/// allocation per packet on top of the session's work.
fn run(record: bool, per_packet_vec: bool) -> Run {
    let t0 = Instant::now();
    let mut s = session(record, t0);
    let packets = caller_packets(550);
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let stranger: SocketAddr = "127.0.0.9:6000".parse().unwrap();
    let mut digits = 0;
    let mut buf = Vec::with_capacity(2048);
    let (mut sent, mut recorded_frames) = (0, 0);
    let mut arm_at = None;
    for (i, p) in packets.iter().enumerate() {
        if i == 50 {
            arm_at = Some((sent, recorded_frames, digits));
            ALLOCS.with(|n| n.set(0));
            ARMED.with(|a| a.set(true));
        }
        let now = t0 + PTIME * i as u32;
        while let Some(t) = s.poll_timeout().filter(|&t| t <= now) {
            s.handle_timeout(t);
            while s.poll_transmit(&mut buf).is_some() {
                sent += 1;
            }
        }
        s.handle_rtp(now, src, p);
        s.handle_rtp(now, stranger, p);
        // The flow guards the PIN: secure from the first key to 1 s after `#`.
        match i {
            _ if i == KEYS_FROM => s.set_secure(true),
            _ if i == KEYS_FROM + 100 => s.set_secure(false),
            _ => {}
        }
        if per_packet_vec {
            std::hint::black_box(p.to_vec());
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                MediaEvent::Record(block) => {
                    recorded_frames += block.frames().count() as u64;
                    block.recycle();
                }
                MediaEvent::Digit { .. } => digits += 1,
                _ => {}
            }
        }
    }
    ARMED.with(|a| a.set(false));
    let (sent0, rec0, digits0) = arm_at.unwrap();
    Run {
        allocations: ALLOCS.with(Cell::get),
        sent: sent - sent0,
        recorded_frames: recorded_frames - rec0,
        digits: digits - digits0,
        rejected: s.rejected().0,
    }
}

#[test]
fn a_recorded_call_with_keys_a_secure_segment_and_a_sprayer_allocates_nothing_per_packet() {
    for record in [false, true] {
        let r = run(record, false);
        assert!(
            (499..=501).contains(&r.sent),
            "record {record}: {} packets sent in 10 s",
            r.sent
        );
        if record {
            assert!(
                (490..=510).contains(&r.recorded_frames),
                "{} frames recorded",
                r.recorded_frames
            );
        } else {
            assert_eq!(r.recorded_frames, 0);
        }
        assert_eq!(r.digits, KEYS.len(), "record {record}: the PIN was heard");
        assert!(r.rejected >= 500, "the stranger's packets were refused");
        // None per packet, none per key.
        assert_eq!(
            r.allocations,
            0,
            "record {record}: allocations in 500 packets and {} keys",
            KEYS.len()
        );
    }
}

#[test]
fn the_count_sees_one_allocation_per_packet() {
    let r = run(true, true);
    assert!(r.allocations >= 500, "{} allocations", r.allocations);
}
