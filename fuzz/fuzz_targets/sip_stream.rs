//! Arbitrary bytes, split at arbitrary points, into the TCP framing decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sspr_ivr::sip::framing::StreamDecoder;

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (data, cuts) = input;
    let mut dec = StreamDecoder::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(u16::MAX)) {
        let end = (start + cut as usize).min(data.len());
        dec.push(&data[start..end]);
        start = end;
        loop {
            match dec.next_message() {
                Ok(Some(msg)) => assert!(!msg.is_empty()),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if start == data.len() {
            break;
        }
    }
});
