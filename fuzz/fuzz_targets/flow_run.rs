#![no_main]
//! Structured: a random caller and backends against the shipped flows, see
//! `drivers::flow_run`.

use libfuzzer_sys::fuzz_target;
use sspr_ivr_fuzz::drivers::{self, FlowRunInput};

fuzz_target!(|input: FlowRunInput| drivers::flow_run(&input));
