//! Reading a JSON response: field selectors (RFC 6901 JSON pointer or RFC 9535 JSONPath),
//! the text form of a selected value, and an action's outputs into flow variables.
//!
//! Shared by the outcome rules (`field:`) and the outputs (`outputs:`); pure functions.

use serde_json::Value as Json;
use serde_json_path::JsonPath;

use crate::vars::Vars;

/// Where in a JSON document a value is taken from.
#[derive(Clone, Debug)]
pub enum Selector {
    /// `/profile/mobilePhone` (and `""` for the whole document).
    Pointer(String),
    /// `$.factors[0].profile.phoneNumber`
    Path(Box<JsonPath>),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.starts_with('/') {
            Ok(Selector::Pointer(text.to_string()))
        } else if text.starts_with('$') {
            JsonPath::parse(text)
                .map(|p| Selector::Path(Box::new(p)))
                .map_err(|e| format!("bad JSONPath {text:?}: {e}"))
        } else {
            Err(format!(
                "{text:?} is neither a JSON pointer (starting with /) nor a JSONPath (starting with $)"
            ))
        }
    }

    /// The first value selected, if any.
    pub fn select<'a>(&self, doc: &'a Json) -> Option<&'a Json> {
        match self {
            Selector::Pointer(p) => doc.pointer(p),
            Selector::Path(p) => p.query(doc).first(),
        }
    }
}

/// A JSON value as a flow variable / comparison string. `null` is absent.
pub fn value_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Outputs present in `doc`, as plain variables.
pub(crate) fn extract(outputs: &[(String, Selector)], doc: &Json) -> Vars {
    let mut vars = Vars::new();
    for (name, sel) in outputs {
        if let Some(text) = sel.select(doc).and_then(value_text) {
            vars.set_plain(name.clone(), text);
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_and_outputs() {
        let doc = json!({
            "id": "00u1", "status": "ACTIVE", "n": 5, "ok": true, "none": null,
            "profile": {"mobilePhone": "+1 555-010-0199"},
            "factors": [{"factorType": "email"}, {"factorType": "sms", "profile": {"phoneNumber": "+44 7700 900123"}}]
        });
        let outputs: Vec<(String, Selector)> = [
            ("user_id", "/id"),
            ("mobile", "/profile/mobilePhone"),
            (
                "sms_phone",
                "$.factors[?@.factorType == 'sms'].profile.phoneNumber",
            ),
            ("first", "$.factors[0].factorType"),
            ("n", "/n"),
            ("ok", "/ok"),
            ("none", "/none"),
            ("missing", "/nope"),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), Selector::parse(s).unwrap()))
        .collect();
        let vars = extract(&outputs, &doc);
        assert_eq!(vars.plain("user_id"), Some("00u1"));
        assert_eq!(vars.plain("mobile"), Some("+1 555-010-0199"));
        assert_eq!(vars.plain("sms_phone"), Some("+44 7700 900123"));
        assert_eq!(vars.plain("first"), Some("email"));
        assert_eq!(vars.plain("n"), Some("5"));
        assert_eq!(vars.plain("ok"), Some("true"));
        assert!(vars.get("none").is_none());
        assert!(vars.get("missing").is_none());
        assert!(Selector::parse("profile.mobilePhone").is_err());
        assert!(Selector::parse("$[").is_err());
    }
}
