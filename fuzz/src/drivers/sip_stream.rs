//! `sip_stream`: TCP framing (`StreamDecoder`) must not depend on where the stream
//! was cut, and every framed message goes to the parser.

use sspr_ivr::sip::framing::StreamDecoder;

use super::sip::sip_message;

/// `sip_stream`: the first byte says how many cut points follow (0–15), each one byte
/// (a position in 1/256ths of the rest); the rest is the TCP byte stream. Decoding
/// the stream in those chunks must give exactly what decoding it whole gives, and
/// every framed message goes to the parser.
pub fn sip_stream(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(n);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|c| usize::from(*c) * stream.len() / 256)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();

    let whole = decode_stream(&[stream]);
    let mut chunks = Vec::new();
    let mut at = 0;
    for c in cuts {
        chunks.push(&stream[at..c]);
        at = c;
    }
    chunks.push(&stream[at..]);
    let chunked = decode_stream(&chunks);
    assert_eq!(
        whole, chunked,
        "stream framing depends on where the stream was cut"
    );
    if let (messages, None) = &whole {
        for m in messages {
            sip_message(m);
        }
    }
}

type Decoded = (Vec<Vec<u8>>, Option<String>);

fn decode_stream(chunks: &[&[u8]]) -> Decoded {
    let mut dec = StreamDecoder::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.next_message() {
                Ok(Some(m)) => {
                    assert!(!m.is_empty(), "framing returned an empty message");
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => return (messages, Some(e.to_string())),
            }
        }
    }
    (messages, None)
}
