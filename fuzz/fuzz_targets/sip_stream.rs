#![no_main]
//! Thin wrapper: see `drivers::sip_stream`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers;

fuzz_target!(|data: &[u8]| drivers::sip_stream(data));
