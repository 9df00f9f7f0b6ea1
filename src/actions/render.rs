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

use super::config::Body;
use crate::secret::SecretBuf;
use crate::template::{Escaping, Templates};
use crate::vars::Vars;

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
pub(super) fn text(
    templates: &Templates,
    what: &str,
    source: &str,
    vars: &Vars,
    escape: Escaping,
    secure: bool,
) -> Result<SecretBuf, String> {
    let mut out = SecretBuf::with_capacity(source.len() + 32);
    templates
        .render_into(source, vars, escape, secure, &mut out)
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(out)
}

/// A header value: no CR or LF, a valid header value, sensitive when the
/// action is secure (kept out of the client's debug output).
pub(super) fn header(
    templates: &Templates,
    name: &str,
    source: &str,
    vars: &Vars,
    secure: bool,
) -> Result<HeaderValue, String> {
    let value = text(
        templates,
        &format!("header {name}"),
        source,
        vars,
        Escaping::None,
        secure,
    )?;
    if value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return Err(format!("header {name}: value contains CR or LF"));
    }
    let mut hv = HeaderValue::from_maybe_shared(into_bytes(value))
        .map_err(|_| format!("header {name}: not a valid header value"))?;
    hv.set_sensitive(secure);
    Ok(hv)
}

/// The body, if the action has one.
pub(super) fn body(
    templates: &Templates,
    body: Option<Body<'_>>,
    vars: &Vars,
    secure: bool,
) -> Result<Option<RenderedBody>, String> {
    let (content_type, buf) = match body {
        None => return Ok(None),
        Some(Body::Json(tree)) => {
            let mut out = SecretBuf::with_capacity(256);
            json_tree(templates, tree, vars, secure, &mut out)?;
            ("application/json", out)
        }
        Some(Body::JsonTemplate(src)) => {
            let out = text(templates, "body", src, vars, Escaping::Json, secure)?;
            if serde_json::from_slice::<serde::de::IgnoredAny>(out.as_bytes()).is_err() {
                return Err("body: json_template did not render to valid JSON".into());
            }
            ("application/json", out)
        }
        Some(Body::Form(fields)) => {
            let mut out = SecretBuf::with_capacity(256);
            for (i, (k, src)) in fields.iter().enumerate() {
                let v = text(
                    templates,
                    &format!("body.form.{k}"),
                    src,
                    vars,
                    Escaping::None,
                    secure,
                )?;
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
    templates: &Templates,
    tree: &Json,
    vars: &Vars,
    secure: bool,
    out: &mut SecretBuf,
) -> Result<(), String> {
    match tree {
        Json::String(src) => {
            let leaf = text(templates, "body", src, vars, Escaping::None, secure)?;
            let leaf = leaf
                .as_str()
                .ok_or_else(|| "body: a value is not UTF-8".to_string())?;
            encode(out, leaf)?;
        }
        Json::Array(items) => {
            out.extend_from_slice(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                json_tree(templates, item, vars, secure, out)?;
            }
            out.extend_from_slice(b"]");
        }
        Json::Object(map) => {
            out.extend_from_slice(b"{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",");
                }
                encode(out, k.as_str())?;
                out.extend_from_slice(b":");
                json_tree(templates, v, vars, secure, out)?;
            }
            out.extend_from_slice(b"}");
        }
        other => encode(out, other)?,
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

    #[test]
    fn json_tree_matches_serde_json_of_the_rendered_tree() {
        let t = Templates::new();
        let tree = json!({"pin": "{{ pin }}", "n": 3, "list": ["{{ user }}", true, null],
                          "nested": {"z": "x{{ user }}y", "a": 1.5}});
        let mut out = SecretBuf::default();
        json_tree(&t, &tree, &vars(), true, &mut out).unwrap();
        let want = json!({"pin": "48\"2913", "n": 3, "list": ["u-1 \"&\"", true, null],
                          "nested": {"z": "xu-1 \"&\"y", "a": 1.5}});
        assert_eq!(out.as_str().unwrap(), serde_json::to_string(&want).unwrap());
    }

    #[test]
    fn form_matches_serde_urlencoded() {
        let t = Templates::new();
        let fields = std::collections::BTreeMap::from([
            ("Code".to_string(), "{{ pin }}".to_string()),
            ("To".to_string(), "{{ user }} +x".to_string()),
        ]);
        let got = body(&t, Some(Body::Form(&fields)), &vars(), true)
            .unwrap()
            .unwrap();
        let want =
            serde_urlencoded::to_string([("Code", "48\"2913"), ("To", "u-1 \"&\" +x")]).unwrap();
        assert_eq!(got.bytes, want.as_bytes());
        assert_eq!(got.content_type, "application/x-www-form-urlencoded");
    }

    #[test]
    fn secrets_stay_out_of_insecure_renders() {
        let t = Templates::new();
        let err = text(&t, "url", "/x/{{ pin }}", &vars(), Escaping::Url, false).unwrap_err();
        assert!(err.starts_with("url: ") && !err.contains("2913"), "{err}");
        let ok = text(&t, "url", "/x/{{ pin }}", &vars(), Escaping::Url, true).unwrap();
        assert_eq!(ok.as_str(), Some("/x/48%222913"));
    }
}
