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
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or an error
    /// after which the connection must be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let skip = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(FramingError::TooLarge);
            }
            return Ok(None);
        };
        if head_end > MAX_HEADER_BYTES {
            return Err(FramingError::TooLarge);
        }
        let body_len = content_length(&self.buf[..head_end])?;
        if body_len > MAX_BODY_BYTES {
            return Err(FramingError::TooLarge);
        }
        let total = head_end + 4 + body_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
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
}
