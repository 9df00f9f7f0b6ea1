#![no_main]
//! Thin wrapper: see `drivers::sdp`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers;

fuzz_target!(|data: &[u8]| drivers::sdp(data));
