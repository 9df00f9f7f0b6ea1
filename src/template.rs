//! Templates for prompts, URLs, headers and request bodies (minijinja).
//!
//! Caller input never reaches a request by string concatenation: every
//! `{{ value }}` is escaped for where it lands — percent-encoded in a URL,
//! JSON-encoded in a JSON body, left as-is in a header or form field (the
//! HTTP client encodes forms). Secrets are in the context only when the
//! caller of [`Template::render`] says the destination is secure; otherwise
//! a reference to one fails with an "undefined variable" error. Error
//! messages never contain variable values.
//!
//! Compiled once: a [`Template`] is parsed when the file holding it is
//! loaded (a flow, the actions config; again on SIGHUP) and a call only
//! renders it. A syntax error is kept in the template, so the loader reports
//! it with the file and key it knows ([`Template::check`]).
//!
//! Secrets in memory: in the context a secret is an object holding its own
//! [`Secret`] (zeroed when the context is dropped) that writes its cleartext
//! straight into the output — escaped there for URLs and JSON — instead of a
//! template string the engine would copy. [`Template::render_into`] renders
//! into a [`SecretBuf`], which zeroes itself (and every buffer it outgrows).
//! A filter applied to a secret still sees a plain copy of it; request
//! templates have no reason to filter one.
//!
//! Filters for phone numbers live here because a masked number must be the
//! only form that reaches a caller's ear: `last4`, `e164`, `digits_only`.

use minijinja::value::{Object, ObjectRepr, Value as JValue};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

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

/// Three environments, one per escape mode, sharing the same filters. They
/// hold filters and formatters only (no templates, no state), so one set
/// serves the whole process and every [`Template`] borrows the one for its
/// escape mode.
struct Envs {
    plain: Environment<'static>,
    url: Environment<'static>,
    json: Environment<'static>,
}

fn base_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("last4", last4);
    env.add_filter("digits_only", digits_only);
    env.add_filter("e164", e164);
    env
}

impl Envs {
    fn new() -> Self {
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
        Envs { plain, url, json }
    }

    fn get() -> &'static Envs {
        static ENVS: OnceLock<Envs> = OnceLock::new();
        ENVS.get_or_init(Envs::new)
    }

    fn env(escape: Escaping) -> &'static Environment<'static> {
        let envs = Envs::get();
        match escape {
            Escaping::None => &envs.plain,
            Escaping::Url => &envs.url,
            Escaping::Json => &envs.json,
        }
    }
}

/// The name a template has in its own environment (the name minijinja
/// gives a template compiled from a string).
const NAME: &str = "<string>";

/// What compiling produced: the template, held by a private copy of its
/// escape mode's environment (a cheap clone: filters and formatters are
/// shared), and the variables it reads.
struct Inner {
    env: Environment<'static>,
    /// Top-level variable names, sorted.
    variables: Vec<String>,
}

/// A template compiled once, when the file that holds it is loaded (a flow,
/// the actions config), and rendered on every call without parsing again.
/// Clones share the compiled form.
///
/// A template that does not compile is kept with its error, so the loader
/// can report it where it knows the file, state and key
/// ([`check`](Self::check)); rendering it fails with the same description.
#[derive(Clone)]
pub struct Template {
    source: Arc<str>,
    escape: Escaping,
    /// The compiled template, or the description of its syntax error.
    compiled: Result<Arc<Inner>, String>,
}

impl Template {
    /// Compile `source` for the destination `escape`. Never fails: see
    /// [`check`](Self::check).
    pub fn new(source: &str, escape: Escaping) -> Self {
        #[cfg(test)]
        COMPILES.with(|c| c.set(c.get() + 1));
        let compile = || {
            let mut env = Envs::env(escape).clone();
            env.add_template_owned(NAME, source.to_string())?;
            let mut variables: Vec<String> = env
                .get_template(NAME)?
                .undeclared_variables(false)
                .into_iter()
                .collect();
            variables.sort();
            Ok(Arc::new(Inner { env, variables }))
        };
        Template {
            source: source.into(),
            escape,
            compiled: compile().map_err(|e: Error| describe(&e)),
        }
    }

    /// [`new`](Self::new), failing on a syntax error.
    pub fn compile(source: &str, escape: Escaping) -> Result<Self, TemplateError> {
        let t = Self::new(source, escape);
        t.check()?;
        Ok(t)
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level variable names it reads (sorted), so validators can
    /// prove that no secret reaches an insecure destination; or its syntax
    /// error.
    pub fn check(&self) -> Result<&[String], TemplateError> {
        match &self.compiled {
            Ok(inner) => Ok(&inner.variables),
            Err(e) => Err(TemplateError::Syntax(e.clone())),
        }
    }

    /// Render against `vars`. Secrets are visible only when `allow_secrets`
    /// is true (the destination is a secure action or state).
    pub fn render(&self, vars: &Vars, allow_secrets: bool) -> Result<String, TemplateError> {
        let inner = self
            .compiled
            .as_ref()
            .map_err(|e| TemplateError::Render(e.clone()))?;
        inner
            .env
            .get_template(NAME)
            .and_then(|t| t.render(context(vars, allow_secrets)))
            .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// Like [`render`](Self::render), appending to `out`: the form for text
    /// that may hold a secret (the output never passes through a plain
    /// `String`).
    pub fn render_into(
        &self,
        vars: &Vars,
        allow_secrets: bool,
        out: &mut SecretBuf,
    ) -> Result<(), TemplateError> {
        let inner = self
            .compiled
            .as_ref()
            .map_err(|e| TemplateError::Syntax(e.clone()))?;
        inner
            .env
            .get_template(NAME)
            .and_then(|t| t.render_captured_to(context(vars, allow_secrets), out))
            .map(|_| ())
            .map_err(|e| TemplateError::Render(describe(&e)))
    }

    /// [`render_into`](Self::render_into) a fresh buffer, returned as a
    /// [`Secret`].
    pub fn render_secret(&self, vars: &Vars, allow_secrets: bool) -> Result<Secret, TemplateError> {
        let mut out = SecretBuf::with_capacity(self.source.len() + 32);
        self.render_into(vars, allow_secrets, &mut out)?;
        out.into_secret()
            .ok_or_else(|| TemplateError::Render("output is not UTF-8".into()))
    }
}

/// The source and the escape mode: a template holds no values.
impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template")
            .field(&self.source)
            .field(&self.escape)
            .finish()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.escape == other.escape
    }
}

/// A template written in a flow file: plain text ([`Escaping::None`]),
/// compiled as it is read.
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Ok(Template::new(&source, Escaping::None))
    }
}

// How many templates this thread compiled: tests prove that a call only
// renders.
#[cfg(test)]
thread_local! {
    static COMPILES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
pub(crate) fn compiles_on_this_thread() -> usize {
    COMPILES.with(std::cell::Cell::get)
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

    fn render(
        source: &str,
        escape: Escaping,
        allow_secrets: bool,
    ) -> Result<String, TemplateError> {
        Template::new(source, escape).render(&vars(), allow_secrets)
    }

    #[test]
    fn url_outputs_are_percent_encoded() {
        let out = render("https://idp/users/{{ id }}?x=1", Escaping::Url, false).unwrap();
        assert_eq!(out, "https://idp/users/12%2034%26x%3D%22y%22?x=1");
    }

    #[test]
    fn json_outputs_are_json_escaped() {
        let out = render(r#"{"login": {{ id }}}"#, Escaping::Json, false).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["login"], "12 34&x=\"y\"");
    }

    #[test]
    fn secrets_only_when_allowed_and_errors_hide_values() {
        let err = render(r#"{"pin": {{ pin }}}"#, Escaping::Json, false).unwrap_err();
        assert!(!err.to_string().contains("482913"));
        let ok = render(r#"{"pin": {{ pin }}}"#, Escaping::Json, true).unwrap();
        assert_eq!(ok, r#"{"pin": "482913"}"#);
    }

    #[test]
    fn phone_filters() {
        assert_eq!(
            render("{{ mobile | last4 }}", Escaping::None, false).unwrap(),
            "0316"
        );
        assert_eq!(
            render("{{ mobile | e164 }}", Escaping::None, false).unwrap(),
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
        let t = Template::new("{{ a }}-{{ b | last4 }}", Escaping::None);
        assert_eq!(t.check().unwrap(), ["a", "b"]);
        let bad = Template::new("{{ a ", Escaping::None);
        let Err(TemplateError::Syntax(why)) = bad.check() else {
            panic!("a broken template checks as an error")
        };
        // Rendering it fails with the same description, as compiling on
        // every render used to.
        assert_eq!(
            bad.render(&vars(), false),
            Err(TemplateError::Render(why.clone()))
        );
        let mut out = SecretBuf::default();
        assert_eq!(
            bad.render_into(&vars(), false, &mut out),
            Err(TemplateError::Syntax(why))
        );
        assert!(Template::compile("{{ a ", Escaping::None).is_err());
    }

    /// A template is parsed once: rendering it (and its clones, which a
    /// flow hands to every call) parses nothing again, in every escaping.
    #[test]
    fn rendering_reuses_the_compiled_template() {
        for escape in [Escaping::None, Escaping::Url, Escaping::Json] {
            let before = compiles_on_this_thread();
            let t = Template::compile("{{ id }}-{{ pin }}", escape).unwrap();
            assert_eq!(compiles_on_this_thread(), before + 1);
            let copy = t.clone();
            let (Ok(a), Ok(b)) = (&t.compiled, &copy.compiled) else {
                panic!("compiled")
            };
            assert!(Arc::ptr_eq(a, b), "clones share one compiled template");
            let first = copy.render(&vars(), true).unwrap();
            for _ in 0..1000 {
                assert_eq!(copy.render(&vars(), true).unwrap(), first);
                let secret = t.render_secret(&vars(), true).unwrap();
                assert_eq!(secret.expose(), first);
            }
            assert_eq!(compiles_on_this_thread(), before + 1, "{escape:?}");
        }
    }

    /// Rendering a compiled template gives what compiling it on the spot
    /// gives, escaping included.
    #[test]
    fn compiled_once_renders_as_compiled_on_the_spot() {
        for (source, escape) in [
            ("/u/{{ id }}?m={{ mobile | digits_only }}", Escaping::Url),
            (r#"{"id": {{ id }}, "pin": {{ pin }}}"#, Escaping::Json),
            ("{{ id }} {{ mobile | last4 }}", Escaping::None),
        ] {
            let t = Template::new(source, escape);
            let on_the_spot = Envs::env(escape)
                .render_str(source, context(&vars(), true))
                .unwrap();
            assert_eq!(t.render(&vars(), true).unwrap(), on_the_spot, "{source}");
        }
    }
}
