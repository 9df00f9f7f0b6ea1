//! `Secret`: a value collected inside a secure segment (a new PIN, an OTP).
//!
//! Its `Debug` and `Display` print a fixed mask, it does not implement
//! `Serialize`, and the only way to read it is [`Secret::expose`], which is
//! called from exactly two places: the template engine when rendering a
//! request for an action marked `secure: true`, and equality checks for
//! confirm-by-re-entry. Grep for `expose(` to audit every use.

use std::fmt;

/// A string that must never reach a log line, recording, metric, audit
/// record or panic message.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// What `Debug`/`Display` print instead of the value.
pub const MASK: &str = "[secret]";

impl Secret {
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

    /// Append a character (digit collection builds secrets one key at a time).
    pub fn push(&mut self, c: char) {
        self.0.push(c);
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

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is freed.
        // SAFETY-free version: replace contents with zeros of the same length.
        let len = self.0.len();
        self.0.clear();
        self.0.extend(std::iter::repeat_n('\0', len));
        std::hint::black_box(&self.0);
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
    }
}
