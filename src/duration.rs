//! The one duration grammar of the configuration, the actions and the flows.
//!
//! A duration is a string in `humantime`'s grammar: a number and a unit, optionally several
//! (`250ms`, `5s`, `1.5s`, `2m`, `1h`, `1h 30m`, `7days`). A unit is always required — a bare
//! `5` is an error, not five seconds — and the value is at most [`MAX`], so adding it to an
//! `Instant` can never overflow. Used through serde ([`deserialize`], or the flow's `Dur`), an
//! error keeps serde_yaml's `line N column M` and names the key.
//!
//! Pure text parsing; sans-IO layers (`flow/`) use it too.

use std::time::Duration;

use serde::Deserializer;

/// The longest duration anything may be configured with (365 days).
pub const MAX: Duration = Duration::from_secs(365 * 86_400);

/// Why a duration did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not in the grammar at all.
    #[error(
        "duration {text:?} is not a number with a unit ({detail}); \
         write e.g. `500ms`, `5s`, `1.5s`, `2m` or `1h`"
    )]
    Syntax { text: String, detail: String },
    /// A number without a unit.
    #[error("duration {text:?} needs a unit: ms, s, m or h (e.g. `{text}s`)")]
    NoUnit { text: String },
    /// Longer than [`MAX`].
    #[error("duration {text:?} is longer than 365 days")]
    TooLong { text: String },
}

/// Parses a duration (see the module docs for the grammar).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DurationError::NoUnit {
            text: t.to_string(),
        });
    }
    let d = humantime::parse_duration(t).map_err(|e| DurationError::Syntax {
        text: t.to_string(),
        detail: e.to_string(),
    })?;
    if d > MAX {
        return Err(DurationError::TooLong {
            text: t.to_string(),
        });
    }
    Ok(d)
}

/// Serde `deserialize_with` helper for `Duration` fields. The text is parsed inside the
/// deserializer's own visit, so serde_yaml reports a bad value at its key (`drain.timeout`),
/// line and column, not at the enclosing table.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as `5s`")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).map_err(E::custom)
        }
    }
    d.deserialize_str(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_table() {
        for (text, ms) in [
            ("0ms", 0),
            ("500ms", 500),
            ("5s", 5_000),
            (" 5s ", 5_000),
            ("1.5s", 1_500),
            ("2m", 120_000),
            ("2min", 120_000),
            ("1h", 3_600_000),
            ("1h 30m", 5_400_000),
            ("1m30s", 90_000),
            ("7days", 604_800_000),
            ("365d", 31_536_000_000),
        ] {
            assert_eq!(parse(text).map(|d| d.as_millis()), Ok(ms), "{text}");
        }
        for (text, want) in [
            ("5", "needs a unit"),
            ("1.5", "needs a unit"),
            ("", "is not a number with a unit"),
            ("s", "is not a number with a unit"),
            ("-1s", "is not a number with a unit"),
            ("5 parsecs", "is not a number with a unit"),
            ("abc", "is not a number with a unit"),
            ("366d", "longer than 365 days"),
            ("99999999999999999999s", "is not a number with a unit"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn yaml_errors_keep_the_location() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct D {
            #[serde(deserialize_with = "deserialize")]
            timeout: Duration,
        }
        let d: D = serde_yaml::from_str("timeout: 1h").unwrap();
        assert_eq!(d.timeout, Duration::from_secs(3600));
        // A bare YAML number is text to the grammar, and needs a unit.
        let err = serde_yaml::from_str::<D>("\ntimeout: 7").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("duration \"7\" needs a unit"), "{msg}");
        assert!(msg.contains("line 2 column 1"), "{msg}");
    }
}
