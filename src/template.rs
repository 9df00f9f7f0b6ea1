//! Templates for prompts, URLs, headers and request bodies (minijinja).
//!
//! Caller input never reaches a request by string concatenation: every
//! `{{ value }}` is escaped for where it lands — percent-encoded in a URL,
//! JSON-encoded in a JSON body, left as-is in a header or form field (the
//! HTTP client encodes forms). Secrets are in the context only when the
//! caller of [`Templates::render`] says the destination is secure; otherwise
//! a reference to one fails with [`TemplateError::SecretNotAllowed`]-style
//! undefined errors. Error messages never contain variable values.
//!
//! Secrets in memory: in the context a secret is an object holding its own
//! [`Secret`] (zeroed when the context is dropped) that writes its cleartext
//! straight into the output — escaped there for URLs and JSON — instead of a
//! template string the engine would copy. [`Templates::render_into`] renders
//! into a [`SecretBuf`], which zeroes itself (and every buffer it outgrows).
//! A filter applied to a secret still sees a plain copy of it; request
//! templates have no reason to filter one.
//!
//! Filters for phone numbers live here because a masked number must be the
//! only form that reaches a caller's ear: `last4`, `e164`, `digits_only`.

use minijinja::value::{Object, ObjectRepr, Value as JValue};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::secret::{Secret, SecretBuf};
use crate::vars::{Value, Vars};

/// Where the rendered text goes; decides how each `{{ }}` output is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// Plain text: prompts' spoken digits, headers, form fields.
    None,
    /// A URL: every output is percent-encoded (unreserved characters kept).
    Url,
    /// A JSON document: every output is a JSON value (strings quoted).
    Json,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("template syntax: {0}")]
    Syntax(String),
    #[error("template render: {0}")]
    Render(String),
}

/// RFC 3986 unreserved characters stay; everything else is escaped.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Three environments, one per escape mode, sharing the same filters.
pub struct Templates {
    plain: Environment<'static>,
    url: Environment<'static>,
    json: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn base_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("last4", last4);
    env.add_filter("digits_only", digits_only);
    env.add_filter("e164", e164);
    env
}

impl Templates {
    pub fn new() -> Self {
        let plain = base_env();
        let mut url = base_env();
        url.set_formatter(|out, _state, value| {
            if let Some(secret) = value.downcast_object_ref::<SecretValue>() {
                return write!(
                    out,
                    "{}",
                    utf8_percent_encode(secret.0.expose(), URL_COMPONENT)
                )
                .map_err(Error::from);
            }
            let s = if value.is_undefined() || value.is_none() {
                String::new()
            } else {
                value.to_string()
            };
            write!(out, "{}", utf8_percent_encode(&s, URL_COMPONENT)).map_err(Error::from)
        });
        let mut json = base_env();
        json.set_auto_escape_callback(|_| AutoEscape::Json);
        json.set_formatter(|out, state, value| {
            let Some(secret) = value.downcast_object_ref::<SecretValue>() else {
                return minijinja::escape_formatter(out, state, value);
            };
            // A JSON string, escaped on the way into the output.
            let mut w = FmtIo(out);
            serde_json::to_writer(&mut w, secret.0.expose())
                .map_err(|_| Error::new(ErrorKind::BadSerialization, "secret not JSON-encodable"))
        });
        Templates { plain, url, json }
    }

    fn env(&self, escape: Escaping) -> &Environment<'static> {
        match escape {
            Escaping::None => &self.plain,
            Escaping::Url => &self.url,
            Escaping::Json => &self.json,
        }
    }

    /// Compile-check a template; returns the top-level variable names it
    /// reads, so validators can prove that no secret reaches an insecure
    /// destination.
    pub fn check(&self, source: &str) -> Result<Vec<String>, TemplateError> {
        let tmpl = self
            .plain
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let mut names: Vec<String> = tmpl.undeclared_variables(false).into_iter().collect();
        names.sort();
        Ok(names)
    }

    /// Render `source` against `vars`. Secrets are visible only when
    /// `allow_secrets` is true (the destination is a secure action).
    pub fn render(
        &self,
        source: &str,
        vars: &Vars,
        escape: Escaping,
        allow_secrets: bool,
    ) -> Result<String, TemplateError> {
        let ctx = context(vars, allow_secrets);
        self.env(escape)
            .render_str(source, ctx)
            .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// Like [`render`](Self::render), appending to `out`: the form for text
    /// that may hold a secret (the output never passes through a plain
    /// `String`).
    pub fn render_into(
        &self,
        source: &str,
        vars: &Vars,
        escape: Escaping,
        allow_secrets: bool,
        out: &mut SecretBuf,
    ) -> Result<(), TemplateError> {
        let tmpl = self
            .env(escape)
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let ctx = context(vars, allow_secrets);
        tmpl.render_captured_to(ctx, out)
            .map(|_| ())
            .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// [`render_into`](Self::render_into) a fresh buffer, returned as a
    /// [`Secret`].
    pub fn render_secret(
        &self,
        source: &str,
        vars: &Vars,
        escape: Escaping,
        allow_secrets: bool,
    ) -> Result<Secret, TemplateError> {
        let mut out = SecretBuf::with_capacity(source.len() + 32);
        self.render_into(source, vars, escape, allow_secrets, &mut out)?;
        out.into_secret()
            .ok_or_else(|| TemplateError::Render("output is not UTF-8".into()))
    }
}

/// A secret in a template context. It renders as its cleartext, written
/// straight into the output; its `Debug` is the mask.
#[derive(Debug)]
struct SecretValue(Secret);

impl Object for SecretValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.expose())
    }
}

/// `io::Write` over a `fmt::Write` (serde_json writes UTF-8 pieces).
struct FmtIo<'a, W: std::fmt::Write + ?Sized>(&'a mut W);

impl<W: std::fmt::Write + ?Sized> std::io::Write for FmtIo<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.write_str(s).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The minijinja context for `vars`: plain values as strings, secrets (as
/// [`SecretValue`]s) only when allowed — their absence makes a reference
/// fail under strict mode.
fn context(vars: &Vars, allow_secrets: bool) -> BTreeMap<String, JValue> {
    let mut ctx = BTreeMap::new();
    for (name, value) in vars.iter() {
        match value {
            Value::Plain(s) => {
                ctx.insert(name.clone(), JValue::from(s.as_str()));
            }
            Value::Secret(s) if allow_secrets => {
                ctx.insert(name.clone(), JValue::from_object(SecretValue(s.clone())));
            }
            Value::Secret(_) => {}
        }
    }
    ctx
}

/// An error description that never includes values: only the kind, the
/// engine's short detail (names, not values) and the line.
fn describe(e: &Error) -> String {
    let mut s = match e.kind() {
        ErrorKind::UndefinedError => {
            "undefined variable (or a secret used where secrets are not allowed)".to_string()
        }
        kind => kind.to_string(),
    };
    if let Some(detail) = e.detail() {
        if e.kind() != ErrorKind::UndefinedError {
            s.push_str(": ");
            s.push_str(detail);
        }
    }
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// Digits of a value, last four. `+1 (555) 010-0199` → `0199`.
pub fn last4_of(value: &str) -> String {
    let digits: Vec<char> = value.chars().filter(|c| c.is_ascii_digit()).collect();
    let start = digits.len().saturating_sub(4);
    digits[start..].iter().collect()
}

fn last4(value: String) -> String {
    last4_of(&value)
}

fn digits_only(value: String) -> String {
    value.chars().filter(|c| c.is_ascii_digit()).collect()
}

/// Normalise a phone number as people type it to E.164.
///
/// `+1 555-010-0199` → `+15550100199`; `0044 7700 900123` → `+447700900123`;
/// a number without `+`/`00` takes `default_cc` when given. Errors name no
/// digits, so a bad directory entry cannot leak a number into a log.
pub fn e164_of(value: &str, default_cc: Option<&str>) -> Result<String, &'static str> {
    let trimmed = value.trim();
    let mut allowed = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '/'));
    let compact: String = allowed.by_ref().collect();
    let (international, rest) = if let Some(r) = compact.strip_prefix('+') {
        (true, r.to_string())
    } else if let Some(r) = compact.strip_prefix("00") {
        (true, r.to_string())
    } else {
        (false, compact.clone())
    };
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
        return Err("phone number has characters other than digits and separators");
    }
    let full = if international {
        rest
    } else {
        let cc = default_cc.ok_or("phone number has no country code and no default was given")?;
        let national = rest.trim_start_matches('0');
        format!("{cc}{national}")
    };
    if !(8..=15).contains(&full.len()) {
        return Err("phone number is not 8 to 15 digits long");
    }
    Ok(format!("+{full}"))
}

fn e164(value: String, default_cc: Option<String>) -> Result<String, Error> {
    e164_of(&value, default_cc.as_deref()).map_err(|m| Error::new(ErrorKind::InvalidOperation, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set_plain("id", "12 34&x=\"y\"");
        v.set_plain("mobile", "+1 (555) 010-0316");
        v.set_secret("pin", Secret::new("482913"));
        v
    }

    #[test]
    fn url_outputs_are_percent_encoded() {
        let t = Templates::new();
        let out = t
            .render(
                "https://idp/users/{{ id }}?x=1",
                &vars(),
                Escaping::Url,
                false,
            )
            .unwrap();
        assert_eq!(out, "https://idp/users/12%2034%26x%3D%22y%22?x=1");
    }

    #[test]
    fn json_outputs_are_json_escaped() {
        let t = Templates::new();
        let out = t
            .render(r#"{"login": {{ id }}}"#, &vars(), Escaping::Json, false)
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["login"], "12 34&x=\"y\"");
    }

    #[test]
    fn secrets_only_when_allowed_and_errors_hide_values() {
        let t = Templates::new();
        let err = t
            .render(r#"{"pin": {{ pin }}}"#, &vars(), Escaping::Json, false)
            .unwrap_err();
        assert!(!err.to_string().contains("482913"));
        let ok = t
            .render(r#"{"pin": {{ pin }}}"#, &vars(), Escaping::Json, true)
            .unwrap();
        assert_eq!(ok, r#"{"pin": "482913"}"#);
    }

    #[test]
    fn phone_filters() {
        let t = Templates::new();
        assert_eq!(
            t.render("{{ mobile | last4 }}", &vars(), Escaping::None, false)
                .unwrap(),
            "0316"
        );
        assert_eq!(
            t.render("{{ mobile | e164 }}", &vars(), Escaping::None, false)
                .unwrap(),
            "+15550100316"
        );
        for (input, want) in [
            ("+1 555-010-0199", "+15550100199"),
            ("+44 7700 900123", "+447700900123"),
            ("0044 7700 900123", "+447700900123"),
        ] {
            assert_eq!(e164_of(input, None).unwrap(), want);
        }
        assert_eq!(
            e164_of("07700 900123", Some("44")).unwrap(),
            "+447700900123"
        );
        assert!(e164_of("555-0199", None).is_err());
        assert!(e164_of("+1 555 CALL NOW", None).is_err());
    }

    #[test]
    fn check_lists_variables() {
        let t = Templates::new();
        assert_eq!(t.check("{{ a }}-{{ b | last4 }}").unwrap(), vec!["a", "b"]);
        assert!(t.check("{{ a ").is_err());
    }
}
