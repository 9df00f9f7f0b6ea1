//! Reading a response: field selectors (RFC 6901 JSON pointer or RFC 9535
//! JSONPath), outputs into flow variables, and the ordered outcome rules.
//!
//! Pure functions over a status code and an optional parsed body, so every
//! rule is testable without a server.

use serde_json::Value as Json;
use serde_json_path::JsonPath;

use super::config::{OutcomeRule, OUTCOME_ERROR};
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

/// A compiled outcome rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub rule: OutcomeRule,
    pub field: Option<Selector>,
}

impl Rule {
    pub fn compile(rule: &OutcomeRule) -> Result<Self, String> {
        let field = rule.field.as_deref().map(Selector::parse).transpose()?;
        Ok(Rule {
            rule: rule.clone(),
            field,
        })
    }

    fn matches(&self, status: u16, doc: Option<&Json>) -> bool {
        if let Some(pats) = &self.rule.status {
            if !pats.iter().any(|p| p.matches(status)) {
                return false;
            }
        }
        let Some(sel) = &self.field else {
            return true;
        };
        let found = doc.and_then(|d| sel.select(d)).and_then(value_text);
        if let Some(want) = self.rule.exists {
            return found.is_some() == want;
        }
        let Some(found) = found else {
            return false;
        };
        if let Some(eq) = &self.rule.equals {
            return found == eq.text();
        }
        if let Some(set) = &self.rule.in_ {
            return set.iter().any(|s| s.text() == found);
        }
        if let Some(part) = &self.rule.contains {
            return found.contains(part.as_str());
        }
        false
    }
}

/// The first matching rule's outcome, else `error`.
pub(crate) fn decide(rules: &[Rule], status: u16, doc: Option<&Json>) -> String {
    rules
        .iter()
        .find(|r| r.matches(status, doc))
        .map(|r| r.rule.outcome.clone())
        .unwrap_or_else(|| OUTCOME_ERROR.to_string())
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

    fn rules(yaml: &str) -> Vec<Rule> {
        let parsed: Vec<OutcomeRule> = serde_yaml::from_str(yaml).unwrap();
        parsed.iter().map(|r| Rule::compile(r).unwrap()).collect()
    }

    #[test]
    fn rule_table() {
        let r = rules(
            r#"
- { status: 200, field: /status, equals: LOCKED_OUT, outcome: locked }
- { status: "2xx", outcome: success }
- { status: [403], field: "$.errorCauses[0].errorSummary", in: ["Password has been used too recently"], outcome: reused }
- { status: 403, field: "$.errorCauses[*].errorSummary", contains: "too recently", outcome: reused2 }
- { status: 403, field: /errorCode, equals: E0000080, outcome: too_simple }
- { status: [404, 410], outcome: not_found }
- { status: 429, field: /code, equals: 60202, outcome: rate_limited }
- { field: /retry, exists: true, outcome: later }
"#,
        );
        let reused = json!({"errorCode": "E0000080",
            "errorCauses": [{"errorSummary": "Password has been used too recently"}]});
        let cases: Vec<(u16, Option<Json>, &str)> = vec![
            (200, Some(json!({"status": "LOCKED_OUT"})), "locked"),
            (200, Some(json!({"status": "ACTIVE"})), "success"),
            (204, None, "success"),
            (403, Some(reused), "reused"),
            (403, Some(json!({"errorCode": "E0000080"})), "too_simple"),
            (403, Some(json!({"errorCauses": [{"errorSummary": "password: Password has been used too recently"}]})), "reused2"),
            (403, Some(json!({"errorCode": "E0000069"})), "error"),
            (404, None, "not_found"),
            (410, Some(json!("gone")), "not_found"),
            (429, Some(json!({"code": 60202})), "rate_limited"),
            (429, Some(json!({"code": 60203})), "error"),
            (500, Some(json!({"retry": 1})), "later"),
            (500, Some(json!({"retry": null})), "error"),
            (302, None, "error"),
        ];
        for (status, doc, want) in cases {
            assert_eq!(decide(&r, status, doc.as_ref()), want, "{status} {doc:?}");
        }
    }

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
            ("sms_phone", "$.factors[?@.factorType == 'sms'].profile.phoneNumber"),
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
