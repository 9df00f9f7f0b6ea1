//! A regular expression from a flow file (`collect.pattern`, a branch's
//! `matches`), compiled once when the flow is loaded and matched against the
//! whole value on every call.
//!
//! Like [`crate::template::Template`], a pattern that does not compile is
//! kept with its error rather than failing the parse: the validator reports
//! it with the state and key (`states.x.collect.pattern`), and a call that
//! meets it anyway (an unvalidated flow) treats it as matching nothing.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// An anchored regular expression and the text it was written as.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    compiled: Result<Regex, regex::Error>,
}

impl Pattern {
    /// Compile `source`, anchored at both ends. Never fails: see
    /// [`regex`](Self::regex).
    pub fn new(source: &str) -> Self {
        #[cfg(test)]
        COMPILES.with(|c| c.set(c.get() + 1));
        Pattern {
            source: source.to_string(),
            compiled: Regex::new(&format!("^(?:{source})$")),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled expression, or why it does not compile.
    pub fn regex(&self) -> Result<&Regex, &regex::Error> {
        self.compiled.as_ref()
    }

    /// Whether all of `value` matches; never for a pattern that does not
    /// compile.
    pub fn is_match(&self, value: &str) -> bool {
        self.compiled.as_ref().is_ok_and(|re| re.is_match(value))
    }
}

/// The source only: a pattern holds no values.
impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Ok(Pattern::new(&source))
    }
}

// How many patterns this thread compiled: tests prove that a call only
// matches.
#[cfg(test)]
thread_local! {
    static COMPILES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
pub(crate) fn compiles_on_this_thread() -> usize {
    COMPILES.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_at_both_ends() {
        let p = Pattern::new("[1-9][0-9]*|0");
        assert!(p.is_match("120"));
        assert!(p.is_match("0"));
        // The alternation is grouped before anchoring.
        assert!(!p.is_match("01"));
        assert!(!p.is_match("x120"));
        assert!(!p.is_match("120x"));
    }

    #[test]
    fn a_bad_pattern_keeps_its_error_and_matches_nothing() {
        let p = Pattern::new("[0-9");
        assert!(p.regex().is_err());
        assert!(!p.is_match("1"));
        assert_eq!(p.as_str(), "[0-9");
    }
}
