//! An action's URL, header and body templates: compiled once when the
//! actions are loaded (start-up and SIGHUP, [`RequestTemplates::compile`]),
//! then rendered for every request.
//!
//! Rendering a request's URL, headers and body for an action, into buffers
//! that are zeroed when dropped ([`SecretBuf`]): a secure action's body holds
//! the new PIN or the code, and a plain `String` grown while rendering would
//! leave copies of it in freed memory.
//!
//! The bytes handed to the HTTP client keep that property: they become a
//! `Bytes` that owns the buffer (`Bytes::from_owner`), so the body and
//! header values are zeroed when the client drops the request. What the
//! client makes of them on the way out (TLS records, its own write buffer)
//! is its business. The rendered text is exactly what `serde_json` /
//! `serde_urlencoded` would have produced from the rendered values.

use bytes::Bytes;
use reqwest::header::HeaderValue;
use serde_json::Value as Json;

use super::config::{ActionConfig, Body};
use super::ActionError;
use crate::secret::SecretBuf;
use crate::template::{Escaping, Template, TemplateError};
use crate::vars::Vars;

/// An action's URL, header and body templates, compiled once when the
/// actions are loaded (and on SIGHUP); a call only renders them.
pub(super) struct RequestTemplates {
    /// Every output percent-encoded.
    url: Template,
    /// Name and value; outputs as-is.
    headers: Vec<(String, Template)>,
    body: Option<BodyTemplate>,
}

/// The body forms of [`Body`], compiled.
enum BodyTemplate {
    Json(JsonTree),
    /// Every output JSON-encoded.
    JsonTemplate(Template),
    Form(Vec<(String, Template)>),
}

/// A `json:` body: string leaves are templates, the rest is sent as written.
enum JsonTree {
    Leaf(Template),
    Array(Vec<JsonTree>),
    /// Keys in the order the document holds them.
    Object(Vec<(String, JsonTree)>),
    Literal(Json),
}

impl JsonTree {
    fn compile(tree: &Json) -> Result<Self, TemplateError> {
        Ok(match tree {
            Json::String(src) => JsonTree::Leaf(Template::compile(src, Escaping::None)?),
            Json::Array(items) => JsonTree::Array(
                items
                    .iter()
                    .map(JsonTree::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => JsonTree::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), JsonTree::compile(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => JsonTree::Literal(other.clone()),
        })
    }
}

impl RequestTemplates {
    /// Compile the templates of `config` (already validated, so an error
    /// here names the field the same way validation would).
    pub(super) fn compile(name: &str, config: &ActionConfig) -> Result<Self, ActionError> {
        let bad = |field: &str| {
            let action = name.to_string();
            let field = field.to_string();
            move |error| ActionError::Template {
                action,
                field,
                error,
            }
        };
        let plain =
            |field: &str, src: &str| Template::compile(src, Escaping::None).map_err(bad(field));
        let url = Template::compile(&config.url, Escaping::Url).map_err(bad("url"))?;
        let headers = config
            .headers
            .iter()
            .map(|(h, src)| Ok((h.clone(), plain(&format!("headers.{h}"), src)?)))
            .collect::<Result<_, ActionError>>()?;
        let body = match config.body.as_ref().and_then(|b| b.kind().ok()) {
            None => None,
            Some(Body::Json(tree)) => Some(BodyTemplate::Json(
                JsonTree::compile(tree).map_err(bad("body.json"))?,
            )),
            Some(Body::JsonTemplate(src)) => Some(BodyTemplate::JsonTemplate(
                Template::compile(src, Escaping::Json).map_err(bad("body.json_template"))?,
            )),
            Some(Body::Form(fields)) => Some(BodyTemplate::Form(
                fields
                    .iter()
                    .map(|(k, src)| Ok((k.clone(), plain(&format!("body.form.{k}"), src)?)))
                    .collect::<Result<_, ActionError>>()?,
            )),
        };
        Ok(RequestTemplates { url, headers, body })
    }

    /// The URL, rendered into a buffer that is zeroed when dropped.
    pub(super) fn url(&self, vars: &Vars, secure: bool) -> Result<SecretBuf, String> {
        text(&self.url, "url", vars, secure)
    }

    /// Every header, rendered (see [`header`]).
    pub(super) fn headers<'a>(
        &'a self,
        vars: &'a Vars,
        secure: bool,
    ) -> impl Iterator<Item = Result<(&'a str, HeaderValue), String>> + 'a {
        self.headers
            .iter()
            .map(move |(name, t)| Ok((name.as_str(), header(t, name, vars, secure)?)))
    }

    /// The body, if the action has one (see [`body`]).
    pub(super) fn body(&self, vars: &Vars, secure: bool) -> Result<Option<RenderedBody>, String> {
        body(self.body.as_ref(), vars, secure)
    }
}

/// A rendered body and its content type.
pub(super) struct RenderedBody {
    pub content_type: &'static str,
    pub bytes: Bytes,
}

/// Hand a rendered buffer to the HTTP client without copying it; it is
/// zeroed when the last reference is dropped.
pub(super) fn into_bytes(buf: SecretBuf) -> Bytes {
    Bytes::from_owner(buf)
}

/// Render a template; errors name `what`, never a value.
fn text(template: &Template, what: &str, vars: &Vars, secure: bool) -> Result<SecretBuf, String> {
    let mut out = SecretBuf::with_capacity(template.source().len() + 32);
    template
        .render_into(vars, secure, &mut out)
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(out)
}

/// A header value: no CR or LF, a valid header value, sensitive when the
/// action is secure (kept out of the client's debug output).
fn header(
    template: &Template,
    name: &str,
    vars: &Vars,
    secure: bool,
) -> Result<HeaderValue, String> {
    let value = text(template, &format!("header {name}"), vars, secure)?;
    if value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return Err(format!("header {name}: value contains CR or LF"));
    }
    let mut hv = HeaderValue::from_maybe_shared(into_bytes(value))
        .map_err(|_| format!("header {name}: not a valid header value"))?;
    hv.set_sensitive(secure);
    Ok(hv)
}

/// The body, if the action has one.
fn body(
    body: Option<&BodyTemplate>,
    vars: &Vars,
    secure: bool,
) -> Result<Option<RenderedBody>, String> {
    let (content_type, buf) = match body {
        None => return Ok(None),
        Some(BodyTemplate::Json(tree)) => {
            let mut out = SecretBuf::with_capacity(256);
            json_tree(tree, vars, secure, &mut out)?;
            ("application/json", out)
        }
        Some(BodyTemplate::JsonTemplate(t)) => {
            let out = text(t, "body", vars, secure)?;
            if serde_json::from_slice::<serde::de::IgnoredAny>(out.as_bytes()).is_err() {
                return Err("body: json_template did not render to valid JSON".into());
            }
            ("application/json", out)
        }
        Some(BodyTemplate::Form(fields)) => {
            let mut out = SecretBuf::with_capacity(256);
            for (i, (k, t)) in fields.iter().enumerate() {
                let v = text(t, &format!("body.form.{k}"), vars, secure)?;
                if i > 0 {
                    out.extend_from_slice(b"&");
                }
                for piece in form_urlencoded::byte_serialize(k.as_bytes()) {
                    out.extend_from_slice(piece.as_bytes());
                }
                out.extend_from_slice(b"=");
                for piece in form_urlencoded::byte_serialize(v.as_bytes()) {
                    out.extend_from_slice(piece.as_bytes());
                }
            }
            ("application/x-www-form-urlencoded", out)
        }
    };
    Ok(Some(RenderedBody {
        content_type,
        bytes: into_bytes(buf),
    }))
}

/// Write `tree` as compact JSON, each string leaf rendered as a template
/// (plain text, then JSON-encoded) — what `serde_json::to_vec` of the
/// rendered tree would give, without the tree.
fn json_tree(
    tree: &JsonTree,
    vars: &Vars,
    secure: bool,
    out: &mut SecretBuf,
) -> Result<(), String> {
    match tree {
        JsonTree::Leaf(t) => {
            let leaf = text(t, "body", vars, secure)?;
            let leaf = leaf
                .as_str()
                .ok_or_else(|| "body: a value is not UTF-8".to_string())?;
            encode(out, leaf)?;
        }
        JsonTree::Array(items) => {
            out.extend_from_slice(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                json_tree(item, vars, secure, out)?;
            }
            out.extend_from_slice(b"]");
        }
        JsonTree::Object(fields) => {
            out.extend_from_slice(b"{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                encode(out, k.as_str())?;
                out.extend_from_slice(b":");
                json_tree(v, vars, secure, out)?;
            }
            out.extend_from_slice(b"}");
        }
        JsonTree::Literal(other) => encode(out, other)?,
    }
    Ok(())
}

/// JSON-encode `value` onto `out`.
fn encode<T: serde::Serialize + ?Sized>(out: &mut SecretBuf, value: &T) -> Result<(), String> {
    serde_json::to_writer(out, value).map_err(|_| "body: not serialisable".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set_plain("user", "u-1 \"&\"");
        v.set_secret("pin", Secret::new("48\"2913"));
        v
    }

    fn plain(src: &str) -> Template {
        Template::compile(src, Escaping::None).unwrap()
    }

    #[test]
    fn json_tree_matches_serde_json_of_the_rendered_tree() {
        let tree = json!({"pin": "{{ pin }}", "n": 3, "list": ["{{ user }}", true, null],
                          "nested": {"z": "x{{ user }}y", "a": 1.5}});
        let mut out = SecretBuf::default();
        json_tree(&JsonTree::compile(&tree).unwrap(), &vars(), true, &mut out).unwrap();
        let want = json!({"pin": "48\"2913", "n": 3, "list": ["u-1 \"&\"", true, null],
                          "nested": {"z": "xu-1 \"&\"y", "a": 1.5}});
        assert_eq!(out.as_str().unwrap(), serde_json::to_string(&want).unwrap());
    }

    #[test]
    fn form_matches_serde_urlencoded() {
        let fields = BodyTemplate::Form(vec![
            ("Code".to_string(), plain("{{ pin }}")),
            ("To".to_string(), plain("{{ user }} +x")),
        ]);
        let got = body(Some(&fields), &vars(), true).unwrap().unwrap();
        let want =
            serde_urlencoded::to_string([("Code", "48\"2913"), ("To", "u-1 \"&\" +x")]).unwrap();
        assert_eq!(got.bytes, want.as_bytes());
        assert_eq!(got.content_type, "application/x-www-form-urlencoded");
    }

    #[test]
    fn secrets_stay_out_of_insecure_renders() {
        let t = Template::compile("/x/{{ pin }}", Escaping::Url).unwrap();
        let err = text(&t, "url", &vars(), false).unwrap_err();
        assert!(err.starts_with("url: ") && !err.contains("2913"), "{err}");
        let ok = text(&t, "url", &vars(), true).unwrap();
        assert_eq!(ok.as_str(), Some("/x/48%222913"));
    }

    /// Every template of an action is compiled when the action is loaded;
    /// building its requests afterwards compiles nothing.
    #[test]
    fn requests_render_without_compiling() {
        let config: ActionConfig = serde_yaml::from_str(
            r#"
method: POST
url: "https://idp.example/users/{{ user }}/pin"
secure: true
headers: { X-User: "{{ user }}", Idempotency-Key: "k-{{ user }}" }
body: { json: { pin: "{{ pin }}", who: ["{{ user }}", 1] } }
"#,
        )
        .unwrap();
        let before = crate::template::compiles_on_this_thread();
        let request = RequestTemplates::compile("set_pin", &config).unwrap();
        let compiled = crate::template::compiles_on_this_thread() - before;
        assert_eq!(compiled, 5, "url, two headers, two body leaves");
        let vars = vars();
        for _ in 0..200 {
            let url = request.url(&vars, true).unwrap();
            assert_eq!(
                url.as_str(),
                Some("https://idp.example/users/u-1%20%22%26%22/pin")
            );
            let headers: Vec<_> = request
                .headers(&vars, true)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(headers.len(), 2);
            let body = request.body(&vars, true).unwrap().unwrap();
            assert_eq!(
                body.bytes,
                r#"{"pin":"48\"2913","who":["u-1 \"&\"",1]}"#.as_bytes()
            );
        }
        assert_eq!(
            crate::template::compiles_on_this_thread() - before,
            compiled,
            "rendering compiled again"
        );
    }
}
