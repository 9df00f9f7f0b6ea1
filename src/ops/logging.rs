//! Log output: `tracing-subscriber` set-up and a capture helper for tests.
//!
//! [`init`] installs the process-wide subscriber once at start-up: human-readable lines by
//! default, one JSON object per line with [`LogFormat::Json`]. The filter comes from the
//! configuration or `--log-level`, and `RUST_LOG`, when set, overrides it. Logs go to stderr,
//! which systemd hands to the journal.
//!
//! Every call runs inside a [`call_span`] (`call{call_id=…}`), so every line logged while
//! handling a call carries its Call-ID: in the human format as the `call{call_id=…}:` prefix, in
//! JSON as `span.call_id` and in the `spans` list.
//!
//! [`Capture`] records what the real formatter would print, at every level and with span fields,
//! so tests can assert that no PIN or OTP ever reaches a log line (the idea of str0m's
//! `tests/pii.rs`). It is public, not `cfg(test)`, so integration tests can use it.
//!
//! This module never decides what is secret: callers log `Secret` values only through their
//! masked `Debug`/`Display`, and the media layer never logs digit values at all.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Output format of the log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-01-01T10:00:00.000Z  INFO call{call_id=…}: sspr_ivr::runtime::sip_task: call answered source=… flow=sspr`
    #[default]
    Human,
    /// One JSON object per line with `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

/// Default filter when neither configuration nor `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "info";

/// Errors of logging set-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The filter directive did not parse.
    #[error("invalid log filter {source_name}: {message}")]
    Filter {
        /// `RUST_LOG` or `configuration`.
        source_name: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Builds the filter: `RUST_LOG` when set and non-empty, else `filter` (empty means
/// [`DEFAULT_FILTER`]).
pub fn build_filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => {
            EnvFilter::try_new(env.trim()).map_err(|e| LoggingError::Filter {
                source_name: "RUST_LOG",
                message: e.to_string(),
            })
        }
        _ => {
            let f = if filter.trim().is_empty() {
                DEFAULT_FILTER
            } else {
                filter.trim()
            };
            EnvFilter::try_new(f).map_err(|e| LoggingError::Filter {
                source_name: "configuration",
                message: e.to_string(),
            })
        }
    }
}

/// Installs the global subscriber. Call once, early in `main`.
///
/// When stderr is the journal (`JOURNAL_STREAM` set by systemd), human lines carry no
/// timestamp of their own: the journal stamps every line already.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let filter = build_filter(filter)?;
    let to_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    tracing_subscriber::registry()
        .with(filter)
        .with(format_layer(
            format,
            io::stderr,
            io::stderr().is_terminal(),
            !to_journal,
        ))
        .try_init()
        .map_err(|e| LoggingError::AlreadyInitialised(e.to_string()))
}

/// The formatting layer used in production and by [`Capture`], so tests see exactly what
/// operators see.
fn format_layer<S, W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
    timestamps: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    match (format, timestamps) {
        (LogFormat::Human, true) => Box::new(base),
        (LogFormat::Human, false) => Box::new(base.without_time()),
        (LogFormat::Json, _) => Box::new(base.json().with_current_span(true).with_span_list(true)),
    }
}

/// Longest Call-ID kept in the call span; longer ones are cut (with `…`).
pub const MAX_CALL_ID_LEN: usize = 128;

/// The per-call span: enter it (or `.instrument()` the call task with it) so every line of the
/// call carries `call_id`. The Call-ID is peer data: control characters are replaced and its
/// length bounded so it cannot forge or flood log lines.
///
/// The span has level ERROR so that it is enabled whatever the filter: with `warn`, a warning
/// inside a call still names the call. (Span levels only decide whether a span exists; the fmt
/// layers do not log span creation.)
pub fn call_span(call_id: &str) -> tracing::Span {
    let id = sanitize(call_id, MAX_CALL_ID_LEN);
    tracing::error_span!("call", call_id = %id)
}

/// Replaces control characters with `?` and bounds the length in characters.
pub fn sanitize(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars * 4));
    for (i, c) in value.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Records every log line the real formatter produces, for tests.
///
/// ```
/// use sspr_ivr::ops::logging::Capture;
/// let capture = Capture::new();
/// {
///     let _guard = capture.set_default();
///     let span = sspr_ivr::ops::logging::call_span("abc@host");
///     let _e = span.enter();
///     tracing::trace!(state = "collect_pin", "entered state");
/// }
/// assert!(capture.contains("call_id=abc@host"));
/// capture.assert_never_logged("4711");
/// ```
///
/// [`set_default`](Self::set_default) installs a subscriber for the current thread (use a
/// current-thread runtime, which `#[tokio::test]` is by default); [`layer`](Self::layer) gives
/// the formatter layer to compose yourself. Every level is recorded, span fields included, in
/// the human format, or in JSON with [`Capture::json`].
#[derive(Clone, Debug)]
pub struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    format: LogFormat,
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

impl Capture {
    /// A capture in the human format.
    pub fn new() -> Self {
        Capture {
            lines: Arc::new(Mutex::new(Vec::new())),
            format: LogFormat::Human,
        }
    }

    /// A capture in the JSON format (span fields as JSON).
    pub fn json() -> Self {
        Capture {
            format: LogFormat::Json,
            ..Self::new()
        }
    }

    /// The production formatting layer writing into this capture (no filter of its own: compose
    /// it with an `EnvFilter` to test filtering, or use [`set_default`](Self::set_default)).
    pub fn layer<S>(&self) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync + 'static>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        format_layer(self.format, self.clone(), false, true)
    }

    /// Installs a TRACE-level subscriber writing into this capture for the current thread,
    /// until the guard is dropped.
    #[must_use = "the capture stops when the guard is dropped"]
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        tracing_subscriber::registry()
            .with(self.layer())
            .set_default()
    }

    fn locked(&self) -> MutexGuard<'_, Vec<String>> {
        match self.lines.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.locked().clone()
    }

    /// Number of lines captured so far.
    pub fn len(&self) -> usize {
        self.locked().len()
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.locked().is_empty()
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        self.locked().clear();
    }

    /// True if any captured line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.locked().iter().any(|l| l.contains(needle))
    }

    /// Panics if any line contains `needle`. The panic names the line number and the line count
    /// but never echoes the needle or the line, so a failing test does not print the secret.
    #[track_caller]
    pub fn assert_never_logged(&self, needle: &str) {
        let lines = self.locked();
        if needle.is_empty() {
            panic!("assert_never_logged needs a non-empty value");
        }
        if let Some(i) = lines.iter().position(|l| l.contains(needle)) {
            panic!(
                "a forbidden value appeared in captured log line {} of {}",
                i + 1,
                lines.len()
            );
        }
    }
}

/// One formatted event being written; pushed as lines into the capture when dropped.
#[derive(Debug)]
pub struct CaptureWriter {
    buf: Vec<u8>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let mut lines = match self.lines.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        lines.extend(text.lines().map(str::to_owned));
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter {
            buf: Vec::new(),
            lines: Arc::clone(&self.lines),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn capture_records_all_levels_with_span_fields() {
        let capture = Capture::new();
        {
            let _g = capture.set_default();
            let span = call_span("a84b4c76e66710@pc33");
            let _e = span.enter();
            tracing::trace!("t-event");
            tracing::debug!("d-event");
            tracing::info!(state = "greeting", "i-event");
            tracing::warn!("w-event");
            tracing::error!("e-event");
        }
        let lines = capture.lines();
        for (level, msg) in [
            ("TRACE", "t-event"),
            ("DEBUG", "d-event"),
            ("INFO", "i-event"),
            ("WARN", "w-event"),
            ("ERROR", "e-event"),
        ] {
            let line = lines
                .iter()
                .find(|l| l.contains(msg))
                .unwrap_or_else(|| panic!("{msg} missing in {lines:#?}"));
            assert!(line.contains(level), "{line}");
            assert!(line.contains("call_id=a84b4c76e66710@pc33"), "{line}");
        }
    }

    #[test]
    fn json_capture_carries_call_id_in_span() {
        let capture = Capture::json();
        {
            let _g = capture.set_default();
            let span = call_span("id-1");
            let _e = span.enter();
            let inner = tracing::debug_span!("action", action = "lookup_user");
            let _i = inner.enter();
            tracing::info!("inner event");
        }
        let line = capture
            .lines()
            .into_iter()
            .find(|l| l.contains("inner event"))
            .expect("event captured");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let spans = v["spans"].as_array().expect("span list");
        assert!(spans.iter().any(|s| s["call_id"] == "id-1"), "{line}");
        assert_eq!(v["span"]["name"], "action", "{line}");
        assert_eq!(v["span"]["action"], "lookup_user", "{line}");
    }

    #[test]
    fn secrets_are_masked_and_assert_detects_leaks() {
        let capture = Capture::new();
        let pin = Secret::new("4711");
        {
            let _g = capture.set_default();
            tracing::trace!(pin = ?pin, "collected");
            tracing::trace!(pin = %pin, "collected");
        }
        capture.assert_never_logged("4711");
        {
            let _g = capture.set_default();
            tracing::trace!(leak = pin.expose(), "oops");
        }
        let result = std::panic::catch_unwind(|| capture.assert_never_logged("4711"));
        let err = result.expect_err("leak must be detected");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("forbidden value"), "{msg}");
        assert!(
            !msg.contains("4711"),
            "panic message must not echo the secret"
        );
    }

    #[test]
    fn call_id_survives_a_warn_filter() {
        let capture = Capture::new();
        {
            let _g = tracing_subscriber::registry()
                .with(EnvFilter::new("warn"))
                .with(capture.layer())
                .set_default();
            let span = call_span("kept@host");
            let _e = span.enter();
            tracing::info!("filtered out");
            tracing::warn!("backend slow");
        }
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("call{call_id=kept@host}"), "{}", lines[0]);
    }

    #[test]
    fn sanitize_table() {
        for (input, max, want) in [
            ("abc@host", 128, "abc@host"),
            ("a\nb\rc\u{1b}[31m", 128, "a?b?c?[31m"),
            ("abcdef", 3, "abc…"),
            ("", 3, ""),
        ] {
            assert_eq!(sanitize(input, max), want, "{input:?}");
        }
    }

    #[test]
    fn filter_from_configuration_is_validated() {
        // RUST_LOG is not set by the test harness; if it is, the check below still holds for
        // the configuration path being parsed only when RUST_LOG is absent.
        if std::env::var_os("RUST_LOG").is_none() {
            assert!(build_filter("sspr_ivr=debug,info").is_ok());
            assert!(build_filter("").is_ok());
            let err = build_filter("sspr_ivr=loud").unwrap_err();
            assert!(err.to_string().contains("configuration"), "{err}");
        }
    }
}
