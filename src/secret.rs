//! `Secret`: a value collected inside a secure segment (a new PIN, an OTP),
//! and [`SecretBuf`], the buffer secret-bearing text is rendered into.
//!
//! A `Secret`'s `Debug` and `Display` print a fixed mask, it does not
//! implement `Serialize`, and the only way to read it is [`Secret::expose`],
//! which is called from a few places: the template engine when rendering a
//! request for an action marked `secure: true`, equality checks for
//! confirm-by-re-entry, and the collect pattern check. Grep for `expose(` to
//! audit every use.
//!
//! Memory: both types overwrite their whole allocation with zeros (the
//! `zeroize` crate, which the optimiser cannot remove) when dropped, and
//! when they grow — the old, smaller allocation is zeroed before it is
//! freed, so typing a PIN key by key leaves no partial copies behind. Keys
//! typed ahead and still waiting for the entry that reads them (maybe a
//! code's first digits) sit in a fixed ring that is zeroed the same way
//! (`flow::interp::typeahead::KeptKeys`). Copies
//! made elsewhere (a `String` a secret was built from, an HTTP library's
//! buffers) are outside their reach; the code that renders secure requests
//! avoids making them where it can (see `template` and `actions::executor`).

use std::fmt;
use std::io;

use zeroize::Zeroize;

/// A string that must never reach a log line, recording, metric, audit
/// record or panic message. Zeroed when dropped.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// What `Debug`/`Display` print instead of the value.
pub const MASK: &str = "[secret]";

/// Room for a PIN or a code without growing.
const MIN_CAPACITY: usize = 16;

impl Secret {
    /// Take ownership of `value`'s buffer (it is zeroed with the secret).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The cleartext. Call only where the value is handed to a secure action
    /// or compared; never format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Number of characters, safe to log.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Append a character (digit collection builds secrets one key at a
    /// time). Growing moves the value to a bigger allocation and zeroes the
    /// old one first.
    pub fn push(&mut self, c: char) {
        if self.0.len() + c.len_utf8() > self.0.capacity() {
            let mut bigger = String::with_capacity((self.0.capacity() * 2).max(MIN_CAPACITY));
            bigger.push_str(&self.0);
            self.0.zeroize();
            self.0 = bigger;
        }
        self.0.push(c);
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// A growable byte buffer for text that may hold secrets (a rendered
/// request body, URL or header): zeroed on drop, and its old allocation
/// zeroed whenever it grows. Implements `io::Write` and `fmt::Write`.
#[derive(Default)]
pub struct SecretBuf(Vec<u8>);

impl SecretBuf {
    pub fn with_capacity(n: usize) -> Self {
        SecretBuf(Vec::with_capacity(n))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The contents as text, if they are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let need = self.0.len() + bytes.len();
        if need > self.0.capacity() {
            let mut bigger = Vec::with_capacity(need.max(self.0.capacity() * 2).max(64));
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
    }

    /// The contents as a [`Secret`] (no copy), if they are UTF-8.
    pub fn into_secret(mut self) -> Option<Secret> {
        let bytes = std::mem::take(&mut self.0);
        match String::from_utf8(bytes) {
            Ok(s) => Some(Secret(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                None
            }
        }
    }
}

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl io::Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Write for SecretBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask() {
        let s = Secret::new("482913");
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{:?}", Some(s.clone())), format!("Some({MASK})"));
        assert_eq!(s.expose(), "482913");
        assert_eq!(s.len(), 6);
        assert_eq!(format!("{:?}", SecretBuf::default()), MASK);
    }

    #[test]
    fn push_grows_and_keeps_the_value() {
        let mut s = Secret::default();
        for c in "12345678901234567890123456789012345".chars() {
            s.push(c);
        }
        assert_eq!(s.expose(), "12345678901234567890123456789012345");
        let mut z = s.clone();
        z.zeroize();
        assert!(z.is_empty());
        assert_eq!(s.len(), 35);
    }

    #[test]
    fn secret_buf_writes_and_converts() {
        use std::io::Write;
        let mut b = SecretBuf::with_capacity(2);
        b.write_all(b"{\"pin\":").unwrap();
        std::fmt::Write::write_str(&mut b, "\"482913\"}").unwrap();
        assert_eq!(b.as_str(), Some("{\"pin\":\"482913\"}"));
        assert_eq!(b.into_secret().unwrap().expose(), "{\"pin\":\"482913\"}");
        let mut bad = SecretBuf::default();
        bad.extend_from_slice(&[0xff, 0xfe]);
        assert!(bad.into_secret().is_none());
    }
}
