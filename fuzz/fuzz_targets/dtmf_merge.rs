#![no_main]
//! Structured: the digit merger over mixed sources in virtual time, and the in-band
//! detector on arbitrary audio, see `drivers::dtmf_merge`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers::{self, DtmfInput};

fuzz_target!(|input: DtmfInput| drivers::dtmf_merge(&input));
