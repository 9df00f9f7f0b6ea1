#![no_main]
//! Thin wrapper: see `drivers::sip_datagram`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers;

fuzz_target!(|data: &[u8]| drivers::sip_datagram(data));
