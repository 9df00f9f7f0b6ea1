#![no_main]
//! Structured: a sequence of (delay, packet) steps, see `drivers::rtp`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers::{self, RtpInput};

fuzz_target!(|input: RtpInput| drivers::rtp(&input));
