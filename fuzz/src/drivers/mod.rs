//! Fuzz drivers: the body of every fuzz target, as plain functions.
//!
//! This one file is compiled twice: into the cargo-fuzz crate (`fuzz/src/lib.rs`, one
//! thin `fuzz_target!` per function) and into the ordinary test
//! `tests/fuzz_smoke.rs` (via `#[path]`), which runs every seed file and a few
//! thousand pseudo-random inputs through the same functions on every `cargo test`.
//! So the invariants below are checked in CI even where no nightly toolchain or
//! libFuzzer is available.
//!
//! Each driver feeds peer- or config-controlled input to one sans-IO parser or
//! state machine, the way the runtime would (drain every `poll_*` after every
//! input, fire timeouts only when due), and panics when an invariant breaks:
//!
//! - no panic anywhere on any input;
//! - `poll_timeout()` is never earlier than the last `now` fed;
//! - SIP: every datagram we send goes back to the (loopback) source; a message we
//!   parsed without defect prints and re-parses to the same bytes; TCP framing gives
//!   the same messages however the stream is cut;
//! - SDP: an answer we print for a negotiated offer parses and negotiates to the
//!   same codec, payload types and ptime;
//! - RFC 4733: a byte-identical packet repeated at once never yields a digit; a
//!   well-formed key press yields exactly one digit, the right one;
//! - DTMF merging: a single-source mode passes exactly that source's digits;
//!   same-source repeats are never merged; nothing is invented or left held;
//! - flow: a PIN/OTP the interpreter holds as a secret never appears in any logged
//!   command; while the interpreter is secure no timeline text carries a digit and no
//!   action sees a secret outside a secure state; no transfer or hangup leaves while
//!   secure; every `Secure(true)` is closed by `Secure(false)` when the call ends; at
//!   most one `Audit` per reset attempt; nothing happens after the call finished.
//!
//! Nothing here reads a clock: time is a virtual `Instant` advanced by the input.
//!
//! One file per kind of target: [`sip`] (`sip_datagram` and the message parser),
//! [`sip_stream`] (TCP framing), [`sdp`], [`rtp`] (RTP and RFC 4733), [`dtmf_merge`]
//! (in-band detector and digit merger), [`flow`] (`flow_yaml` and `flow_run`). This
//! file holds what they share and [`run_target`], the one dispatcher by name.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use arbitrary::Arbitrary;

pub mod dtmf_merge;
pub mod flow;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod sip_stream;

// The targets and their inputs by name, for `fuzz/fuzz_targets/*.rs` and the tests.
pub use dtmf_merge::{dtmf_merge, DtmfInput};
pub use flow::{flow_run, flow_run_report, flow_yaml, FlowOp, FlowReport, FlowRunInput};
pub use rtp::{rtp, RtpInput, RtpStep};
pub use sdp::sdp;
pub use sip::sip_datagram;
pub use sip_stream::sip_stream;

/// The key of each index, as RFC 4733 numbers events 0–15.
pub(crate) const KEYS: &[u8; 16] = b"0123456789*#ABCD";

/// Bound on virtual-time steps, so a deadline that never advances is reported
/// instead of hanging the fuzzer.
pub(crate) const MAX_TIMER_STEPS: usize = 10_000;

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("constant address")
}

pub(crate) fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

pub(crate) fn assert_deadline(what: &str, deadline: Option<Instant>, now: Instant) {
    if let Some(d) = deadline {
        assert!(
            d >= now,
            "{what}: poll_timeout is {:?} in the past",
            now.duration_since(d)
        );
    }
}

/// Every seed folder name and its driver over raw bytes (structured inputs are
/// decoded with `arbitrary`, as cargo-fuzz does).
pub fn run_target(target: &str, data: &[u8]) {
    let u = arbitrary::Unstructured::new(data);
    match target {
        "sip_datagram" => sip_datagram(data),
        "sip_stream" => sip_stream(data),
        "sdp" => sdp(data),
        "rtp" => {
            if let Ok(input) = RtpInput::arbitrary_take_rest(u) {
                rtp(&input);
            }
        }
        "dtmf_merge" => {
            if let Ok(input) = DtmfInput::arbitrary_take_rest(u) {
                dtmf_merge(&input);
            }
        }
        "flow_yaml" => flow_yaml(data),
        "flow_run" => {
            if let Ok(input) = FlowRunInput::arbitrary_take_rest(u) {
                flow_run(&input);
            }
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The target names, as used by `fuzz/fuzz_targets/*.rs` and `fuzz/seeds/*`.
pub const TARGETS: &[&str] = &[
    "sip_datagram",
    "sip_stream",
    "sdp",
    "rtp",
    "dtmf_merge",
    "flow_yaml",
    "flow_run",
];
