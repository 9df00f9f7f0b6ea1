//! Message framing on stream transports (RFC 3261 §18.3): bytes in, whole messages
//! out, delimited by the empty line and Content-Length.
//!
//! Check-then-parse, as mini-redis does it: nothing is consumed until a whole message
//! is in the buffer. Content-Length is mandatory on streams; a missing, negative,
//! malformed or repeated Content-Length, or a header section or body beyond the size
//! limit, is a [`FramingError`] and the runtime must close the connection (the stream
//! cannot be resynchronised). CRLF keepalives between messages (RFC 5626 §3.5.1) are
//! skipped. It does not parse the message: feed the output to
//! [`crate::sip::Endpoint::handle_datagram`].

use super::message::{canonical_name, parse_content_length};

/// Largest header section accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    #[error("message on a stream without Content-Length")]
    MissingContentLength,
    #[error("invalid Content-Length on a stream: {0}")]
    BadContentLength(&'static str),
    #[error("message larger than the limit")]
    TooLarge,
}

/// Accumulates stream bytes and pops complete messages.
///
/// The work is linear in the bytes received: the search for the end of the header
/// section resumes where the previous read left it, Content-Length is read once per
/// message, and consumed bytes are dropped in amortised O(1) (the buffer is compacted
/// only when the consumed part is at least half of it).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    start: usize,
    /// Bytes after `start` already searched for the blank line.
    scanned: usize,
    /// Once the header section is complete: its length and the body's.
    head: Option<(usize, usize)>,
    /// Bytes looked at by the header search, for tests of the linear bound.
    examined: u64,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True while part of a message (not just keepalive CRLFs) is buffered.
    pub fn in_message(&self) -> bool {
        self.head.is_some() || self.scanned > 0 || self.buffered() > 0
    }

    /// Bytes the header search has looked at so far (each byte about once).
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or an error
    /// after which the connection must be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        if self.head.is_none() && self.scanned == 0 {
            // CRLF keepalives between messages.
            let skip = self.buf[self.start..]
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len() - self.start);
            self.start += skip;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            return Ok(None);
        }
        let (head_len, body_len) = match self.head {
            Some(h) => h,
            None => {
                // Resume the search three bytes back: the blank line may straddle reads.
                let from = self.start + self.scanned.saturating_sub(3);
                let window = &self.buf[from..];
                let found = find(window, b"\r\n\r\n");
                self.examined += found.map_or(window.len(), |i| i + 4) as u64;
                match found {
                    None => {
                        self.scanned = self.buf.len() - self.start;
                        if self.scanned > MAX_HEADER_BYTES {
                            return Err(FramingError::TooLarge);
                        }
                        return Ok(None);
                    }
                    Some(i) => {
                        let head_len = from + i - self.start;
                        if head_len > MAX_HEADER_BYTES {
                            return Err(FramingError::TooLarge);
                        }
                        let body_len =
                            content_length(&self.buf[self.start..self.start + head_len])?;
                        if body_len > MAX_BODY_BYTES {
                            return Err(FramingError::TooLarge);
                        }
                        self.head = Some((head_len, body_len));
                        (head_len, body_len)
                    }
                }
            }
        };
        let total = head_len + 4 + body_len;
        if self.buffered() < total {
            return Ok(None);
        }
        let msg = self.buf[self.start..self.start + total].to_vec();
        self.start += total;
        self.scanned = 0;
        self.head = None;
        Ok(Some(msg))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let head = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if canonical_name(name.trim()) != "Content-Length" {
            continue;
        }
        if found.is_some() {
            return Err(FramingError::BadContentLength("multiple values"));
        }
        found = Some(parse_content_length(value).map_err(FramingError::BadContentLength)?);
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut d = StreamDecoder::new();
        // Byte by byte: nothing until the last byte.
        for (i, b) in OPTIONS.iter().enumerate() {
            d.push(&[*b]);
            let got = d.next_message().unwrap();
            if i + 1 < OPTIONS.len() {
                assert_eq!(got, None, "at byte {i}");
            } else {
                assert_eq!(got.as_deref(), Some(OPTIONS));
            }
        }
        // Keepalives and two messages in one read.
        let mut both = b"\r\n\r\n".to_vec();
        both.extend_from_slice(OPTIONS);
        both.extend_from_slice(OPTIONS);
        d.push(&both);
        assert_eq!(d.next_message().unwrap().as_deref(), Some(OPTIONS));
        assert_eq!(d.next_message().unwrap().as_deref(), Some(OPTIONS));
        assert_eq!(d.next_message().unwrap(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn errors_close_the_connection() {
        let cases: &[(&[u8], FramingError)] = &[
            (
                b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n",
                FramingError::MissingContentLength,
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n",
                FramingError::BadContentLength("negative Content-Length"),
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n",
                FramingError::BadContentLength("multiple values"),
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",
                FramingError::TooLarge,
            ),
        ];
        for (input, err) in cases {
            let mut d = StreamDecoder::new();
            d.push(input);
            assert_eq!(d.next_message().unwrap_err(), *err);
        }
        let mut d = StreamDecoder::new();
        d.push(&vec![b'a'; MAX_HEADER_BYTES + 1]);
        assert_eq!(d.next_message().unwrap_err(), FramingError::TooLarge);
    }

    #[test]
    fn work_is_linear_in_the_bytes_received() {
        // A slowloris header trickled one byte per read, then many pipelined
        // messages in one read: each byte is looked at about once, not once per read.
        let mut d = StreamDecoder::new();
        let head = b"INVITE sip:a@127.0.0.1 SIP/2.0\r\nVia: x\r\n".repeat(300);
        for b in &head {
            d.push(&[*b]);
            assert_eq!(d.next_message().unwrap(), None);
        }
        assert!(d.in_message());
        assert!(
            d.bytes_examined() <= 4 * head.len() as u64,
            "{}",
            d.bytes_examined()
        );
        let mut d = StreamDecoder::new();
        let many = OPTIONS.repeat(2000);
        d.push(&many);
        let mut n = 0;
        while let Some(m) = d.next_message().unwrap() {
            assert_eq!(m, OPTIONS);
            n += 1;
        }
        assert_eq!(n, 2000);
        assert!(
            d.bytes_examined() <= 2 * many.len() as u64,
            "{}",
            d.bytes_examined()
        );
        assert!(!d.in_message());
    }
}
