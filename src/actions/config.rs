//! The YAML shape of one data action and its load-time validation.
//!
//! Everything that can be checked before the first call is checked here:
//! templates compile, the scheme and host of the URL are literal (caller input
//! can only reach the path and query), secure actions use HTTPS (or plain HTTP
//! to a loopback host when explicitly allowed), retries are only configured
//! where repeating the request is safe, outcome rules are well formed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::outcome::{OutcomeRule, OUTCOME_ERROR, OUTCOME_TIMEOUT};
use super::selector::Selector;
use super::ActionError;
use crate::template::{Escaping, Template};

/// HTTP method of an action. Written upper-case in YAML (`GET`, `POST`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    /// RFC 9110 §9.2.2: repeating these has the same effect as sending once.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
        )
    }

    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

/// Request body, as written: exactly one of `json`, `json_template`, `form`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyConfig {
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    #[serde(default)]
    pub json_template: Option<String>,
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
}

impl BodyConfig {
    pub fn kind(&self) -> Result<Body<'_>, String> {
        match (&self.json, &self.json_template, &self.form) {
            (Some(j), None, None) => Ok(Body::Json(j)),
            (None, Some(t), None) => Ok(Body::JsonTemplate(t)),
            (None, None, Some(f)) => Ok(Body::Form(f)),
            _ => Err("body must be exactly one of `json`, `json_template`, `form`".into()),
        }
    }
}

/// The body forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Body<'a> {
    /// A JSON document written as YAML. Every string leaf is a template
    /// (rendered without escaping) whose result is inserted as a JSON string
    /// value; keys, numbers, booleans and nulls are sent as written. Caller
    /// input can therefore never change the document's structure.
    Json(&'a serde_json::Value),
    /// Raw JSON text; every `{{ }}` output is JSON-encoded (strings quoted).
    /// The result must parse as JSON or the action ends in `error`.
    JsonTemplate(&'a str),
    /// `application/x-www-form-urlencoded` fields (Twilio-style APIs); each
    /// value is a template, the encoder escapes the result.
    Form(&'a BTreeMap<String, String>),
}

/// Credentials, always from environment variables read at start-up.
///
/// One of:
/// - `{ bearer_env: VAR }` → `Authorization: Bearer $VAR`
/// - `{ basic: { username_env: A, password_env: B } }` → HTTP Basic
/// - `{ header: Authorization, value_env: VAR, prefix: "SSWS " }` → any header
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub bearer_env: Option<String>,
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub value_env: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username_env: String,
    pub password_env: String,
}

/// The auth forms after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthKind<'a> {
    Bearer {
        env: &'a str,
    },
    Basic {
        username_env: &'a str,
        password_env: &'a str,
    },
    Header {
        name: &'a str,
        value_env: &'a str,
        prefix: &'a str,
    },
}

impl AuthConfig {
    pub fn kind(&self) -> Result<AuthKind<'_>, String> {
        match (
            &self.bearer_env,
            &self.basic,
            &self.header,
            &self.value_env,
            &self.prefix,
        ) {
            (Some(env), None, None, None, None) => Ok(AuthKind::Bearer { env }),
            (None, Some(b), None, None, None) => Ok(AuthKind::Basic {
                username_env: &b.username_env,
                password_env: &b.password_env,
            }),
            (None, None, Some(name), Some(value_env), prefix) => Ok(AuthKind::Header {
                name,
                value_env,
                prefix: prefix.as_deref().unwrap_or(""),
            }),
            _ => Err("auth must be exactly one of `{ bearer_env: VAR }`, \
                      `{ basic: { username_env: A, password_env: B } }` or \
                      `{ header: NAME, value_env: VAR, prefix: \"…\" }`"
                .to_string()),
        }
    }

    /// Every environment variable this auth reads.
    pub fn env_vars(&self) -> Vec<&str> {
        match self.kind() {
            Ok(AuthKind::Bearer { env }) => vec![env],
            Ok(AuthKind::Basic {
                username_env,
                password_env,
            }) => vec![username_env, password_env],
            Ok(AuthKind::Header { value_env, .. }) => vec![value_env],
            Err(_) => Vec::new(),
        }
    }
}

/// TLS settings of one action (`tls:`); the files are read when the actions
/// are loaded, so a missing or malformed file stops start-up (and `check`).
///
/// ```yaml
/// tls:
///   ca_file: /etc/sspr-ivr/idp-ca.pem          # one or more PEM certificates
///   client_cert_file: /etc/sspr-ivr/ivr.pem    # optional, mTLS: PEM chain
///   client_key_file: /etc/sspr-ivr/ivr.key     # optional, mTLS: PEM key
/// ```
///
/// The certificates in `ca_file` are trusted in addition to the built-in
/// (Mozilla) roots. Relative paths are relative to the working directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// One named HTTP data action, as written under `actions:` in the config.
///
/// Retries use exponential backoff and are allowed only for idempotent
/// methods, or for a request that carries an idempotency key header (named
/// in `idempotency_header`, which must also be in `headers`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    #[serde(default)]
    pub method: Method,
    /// URL template; every `{{ }}` output is percent-encoded. Scheme and host
    /// must be literal.
    pub url: String,
    /// Header templates (outputs not escaped; CR/LF in a result is an error).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<BodyConfig>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Per attempt: connect, send and read the whole response.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Extra attempts after a timeout, network error or 502/503/504.
    #[serde(default)]
    pub retries: u32,
    /// First backoff; doubles per retry, capped at 5 s.
    #[serde(
        default = "default_backoff",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub retry_backoff: Duration,
    /// A header that makes a POST/PATCH safe to repeat (e.g. `Idempotency-Key`).
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// May read secret variables (PIN, OTP). Must use HTTPS.
    #[serde(default)]
    pub secure: bool,
    /// Let a secure action use plain HTTP, only to a loopback host (tests, demo).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Extra trust roots and an optional client certificate for HTTPS
    /// (an identity provider behind a private CA, or one that wants mTLS).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Flow variable ← JSON pointer or JSONPath into the response.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Flow variable ← literal, set when an HTTP response arrived and the
    /// output of the same name was absent (e.g. `factor: sms` for a
    /// directory that only knows phone numbers).
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Ordered rules; `timeout` and `error` are built in.
    #[serde(default)]
    pub outcomes: Vec<OutcomeRule>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_backoff() -> Duration {
    Duration::from_millis(200)
}

/// What the flow validator needs to know about an action: the flow's own
/// type, so the two never drift apart.
pub use crate::flow::ActionInfo;

/// Scheme and authority as written in a URL template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub https: bool,
    /// Host as written (brackets kept for IPv6), lower-cased.
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Host as `url::Url::host_str` prints it (IPv6 in brackets).
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        if h == "localhost" {
            return true;
        }
        h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    }
}

pub(crate) fn literal_origin(url: &str) -> Result<Origin, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("url must start with a literal https:// or http://".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('{') || authority.contains('}') || authority.is_empty() {
        return Err("the host and port of url must be literal (no template in them)".into());
    }
    if authority.contains('@') {
        return Err("url must not carry credentials; use `auth`".into());
    }
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let close = stripped
            .find(']')
            .ok_or("url has an unterminated IPv6 address")?;
        let host = format!("[{}]", &stripped[..close]);
        let after = &stripped[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| "url has a bad port")?),
            None if after.is_empty() => None,
            None => return Err("url has a bad authority".into()),
        };
        (host, port)
    } else if let Some((h, p)) = authority.rsplit_once(':') {
        (
            h.to_string(),
            Some(p.parse::<u16>().map_err(|_| "url has a bad port")?),
        )
    } else {
        (authority.to_string(), None)
    };
    Ok(Origin {
        https,
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn is_header_name(s: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(s.as_bytes()).is_ok()
}

impl ActionConfig {
    /// Check everything that does not need the environment. `name` is used
    /// in error messages.
    pub fn validate(&self, name: &str) -> Result<(), ActionError> {
        let bad = |message: String| ActionError::Config {
            action: name.to_string(),
            message,
        };
        let origin = literal_origin(&self.url).map_err(bad)?;
        if self.secure && !origin.https {
            if !self.allow_insecure_http {
                return Err(bad(
                    "a secure action must use https:// (plain http is allowed only to a \
                     loopback host with `allow_insecure_http: true`)"
                        .into(),
                ));
            }
            if !origin.is_loopback() {
                return Err(bad(format!(
                    "allow_insecure_http is only honoured for loopback hosts, not {}",
                    origin.host
                )));
            }
        }
        if self.allow_insecure_http && !origin.https && !origin.is_loopback() {
            return Err(bad(format!(
                "allow_insecure_http is only honoured for loopback hosts, not {}",
                origin.host
            )));
        }
        if let Some(tls) = &self.tls {
            if !origin.https {
                return Err(bad(
                    "`tls` settings need an https:// url (this action uses plain http)".into(),
                ));
            }
            match (&tls.client_cert_file, &tls.client_key_file) {
                (Some(_), Some(_)) | (None, None) => {}
                _ => {
                    return Err(bad(
                        "tls: client_cert_file and client_key_file go together".into()
                    ))
                }
            }
            if tls.ca_file.is_none() && tls.client_cert_file.is_none() {
                return Err(bad(
                    "tls: set ca_file and/or client_cert_file + client_key_file".into(),
                ));
            }
        }
        let check = |field: &str, src: &str| {
            Template::new(src, Escaping::None)
                .check()
                .map(|_| ())
                .map_err(|e| ActionError::Template {
                    action: name.to_string(),
                    field: field.to_string(),
                    error: e,
                })
        };
        check("url", &self.url)?;
        for (h, v) in &self.headers {
            if !is_header_name(h) {
                return Err(bad(format!(
                    "header name {h:?} is not a valid HTTP header name"
                )));
            }
            check(&format!("headers.{h}"), v)?;
        }
        if let Some(b) = &self.body {
            b.kind().map_err(bad)?;
        }
        for (field, src) in self.body_templates() {
            check(&field, src)?;
        }
        if let Some(auth) = &self.auth {
            let kind = auth.kind().map_err(bad)?;
            let auth_header = match kind {
                AuthKind::Header { name: h, .. } => {
                    if !is_header_name(h) {
                        return Err(bad(format!("auth header {h:?} is not a valid header name")));
                    }
                    h
                }
                _ => "Authorization",
            };
            if self
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case(auth_header))
            {
                return Err(bad(format!(
                    "header {auth_header} is set by `auth`; remove it from `headers` \
                     (credentials belong in environment variables)"
                )));
            }
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout must be greater than zero".into()));
        }
        if self.retries > 10 {
            return Err(bad("retries is at most 10".into()));
        }
        if let Some(h) = &self.idempotency_header {
            if !self.headers.keys().any(|k| k.eq_ignore_ascii_case(h)) {
                return Err(bad(format!(
                    "idempotency_header {h:?} must also be set in `headers` (e.g. to the record id)"
                )));
            }
        }
        if self.retries > 0 && !self.method.is_idempotent() && self.idempotency_header.is_none() {
            return Err(bad(format!(
                "retries on a {:?} request could apply it twice; remove `retries` or name an \
                 `idempotency_header` the server deduplicates on",
                self.method
            )));
        }
        for (var, sel) in &self.outputs {
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(format!(
                    "output variable name {var:?} is not an identifier"
                )));
            }
            Selector::parse(sel).map_err(|e| bad(format!("output {var}: {e}")))?;
        }
        for var in self.defaults.keys() {
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(format!(
                    "default variable name {var:?} is not an identifier"
                )));
            }
        }
        for (i, rule) in self.outcomes.iter().enumerate() {
            rule.check()
                .map_err(|e| bad(format!("outcomes[{i}]: {e}")))?;
        }
        Ok(())
    }

    /// Every template in the body with a field path for error messages.
    pub(crate) fn body_templates(&self) -> Vec<(String, &str)> {
        fn walk<'a>(path: String, v: &'a serde_json::Value, out: &mut Vec<(String, &'a str)>) {
            match v {
                serde_json::Value::String(s) => out.push((path, s)),
                serde_json::Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        walk(format!("{path}[{i}]"), x, out);
                    }
                }
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        walk(format!("{path}.{k}"), x, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        match self.body.as_ref().and_then(|b| b.kind().ok()) {
            Some(Body::Json(v)) => walk("body.json".into(), v, &mut out),
            Some(Body::JsonTemplate(s)) => out.push(("body.json_template".into(), s)),
            Some(Body::Form(m)) => {
                for (k, v) in m {
                    out.push((format!("body.form.{k}"), v));
                }
            }
            None => {}
        }
        out
    }

    /// Outcomes, secure flag, inputs and outputs, for the flow validator.
    /// Templates that do not compile contribute no inputs (`validate`
    /// reports them).
    pub fn info(&self) -> ActionInfo {
        let mut outcomes: Vec<String> = Vec::new();
        for r in &self.outcomes {
            if !outcomes.contains(&r.outcome) {
                outcomes.push(r.outcome.clone());
            }
        }
        for builtin in [OUTCOME_TIMEOUT, OUTCOME_ERROR] {
            if !outcomes.iter().any(|o| o == builtin) {
                outcomes.push(builtin.to_string());
            }
        }
        let mut inputs = BTreeSet::new();
        let mut sources: Vec<&str> = vec![&self.url];
        sources.extend(self.headers.values().map(String::as_str));
        sources.extend(self.body_templates().into_iter().map(|(_, s)| s));
        for src in sources {
            if let Ok(names) = Template::new(src, Escaping::None).check() {
                inputs.extend(names.iter().cloned());
            }
        }
        ActionInfo {
            outcomes,
            secure: self.secure,
            inputs: inputs.into_iter().collect(),
            outputs: self
                .outputs
                .keys()
                .chain(self.defaults.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_origin_table() {
        let ok = |u: &str, https: bool, host: &str, port: Option<u16>, lo: bool| {
            let o = literal_origin(u).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert_eq!(
                (o.https, o.host.as_str(), o.port),
                (https, host, port),
                "{u}"
            );
            assert_eq!(o.is_loopback(), lo, "{u}");
        };
        ok(
            "https://IdP.Example.com/x/{{ a }}",
            true,
            "idp.example.com",
            None,
            false,
        );
        ok(
            "http://127.0.0.1:8085/users?x={{ a }}",
            false,
            "127.0.0.1",
            Some(8085),
            true,
        );
        ok("http://127.9.9.9", false, "127.9.9.9", None, true);
        ok("http://[::1]:9000/pin", false, "[::1]", Some(9000), true);
        ok("http://localhost:1/", false, "localhost", Some(1), true);
        ok(
            "https://example.okta.com#frag",
            true,
            "example.okta.com",
            None,
            false,
        );
        for bad in [
            "//x/",
            "https://",
            "https://{{ host }}/",
            "https://x{{ a }}.com/",
            "https://x:{{ port }}/",
            "https://x:99999/",
            "https://a@b/",
            "http://[::1/",
            "HTTPS://x/",
        ] {
            assert!(literal_origin(bad).is_err(), "{bad}");
        }
        // 127.0.0.1.example.com is not loopback.
        assert!(!literal_origin("http://127.0.0.1.example.com/")
            .unwrap()
            .is_loopback());
        assert!(!literal_origin("http://localhost.example.com/")
            .unwrap()
            .is_loopback());
    }
}
