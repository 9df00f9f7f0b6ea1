//! HTTP data actions: named requests defined in the config (`actions:`) and
//! called from flows, plus the rate limiter for per-ANI / per-account limits.
//!
//! An action is a URL, header and body template rendered against the call's
//! variables by [`crate::template`] (caller input is percent-encoded in URLs
//! and JSON-encoded in JSON bodies, never concatenated), sent with reqwest
//! over rustls, then mapped to a named outcome by ordered rules over the
//! status code and response fields, with outputs read by JSON pointer
//! (RFC 6901) or JSONPath (RFC 9535). `timeout` and `error` are built in.
//! Credentials come from environment variables read once at start-up.
//! Secret variables render only into actions marked `secure: true`, which
//! must use HTTPS (plain HTTP only to loopback, when explicitly allowed).
//!
//! Logs name the action, outcome, status and latency — never a URL, header,
//! body or credential. Redirects are not followed and system proxy settings
//! are ignored (a data action talks to exactly the host it names). This
//! module does not cache responses or share rate-limit state between
//! processes.
//!
//! Files: `config` (the YAML shape of an action and its load-time checks),
//! [`outcome`] (outcome rules: shape, check, evaluation), [`selector`] (JSON
//! pointer / JSONPath into a response, outputs), `render` (the URL, header and
//! body templates, compiled when the actions are loaded and rendered per
//! request), `executor` (reqwest, retries), [`ratelimit`], [`budget`] (OTP
//! send budgets). Dependencies point one way: executor → render → config →
//! outcome → selector.

pub mod budget;
mod config;
mod executor;
pub mod outcome;
pub mod ratelimit;
mod render;
pub mod selector;

pub use config::{
    ActionConfig, ActionInfo, AuthConfig, BasicAuth, Body, BodyConfig, Method, TlsConfig,
};
pub use executor::{ActionResult, Executor};
pub use outcome::{OutcomeRule, Scalar, StatusPattern, OUTCOME_ERROR, OUTCOME_TIMEOUT};

use crate::template::TemplateError;

/// Start-up errors. Run-time failures are not errors: they are the
/// `timeout` and `error` outcomes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    #[error("action {action}: {message}")]
    Config { action: String, message: String },
    #[error("action {action}: {field}: {error}")]
    Template {
        action: String,
        field: String,
        error: TemplateError,
    },
    #[error("action {action}: environment variable {var} is not set (it holds a credential)")]
    MissingEnv { action: String, var: String },
    #[error("unknown action {0}")]
    UnknownAction(String),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("actions YAML: {0}")]
    Yaml(String),
}
