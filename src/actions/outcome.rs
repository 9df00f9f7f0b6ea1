//! Outcome rules: how an HTTP response becomes a named outcome.
//!
//! The YAML shape of a rule ([`OutcomeRule`]: status patterns, a field selector and one
//! comparison), its load-time check, and the ordered evaluation ([`decide`]): the first rule
//! whose conditions all hold names the outcome, else the built-in `error`. Pure functions over
//! a status code and an optional parsed body, so every rule is testable without a server.
//! Reading fields is [`super::selector`]'s job.

use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use super::selector::{value_text, Selector};

/// Built-in outcome: no response within `timeout` (including connect).
pub const OUTCOME_TIMEOUT: &str = "timeout";
/// Built-in outcome: anything else that did not match a rule.
pub const OUTCOME_ERROR: &str = "error";

/// A status pattern: `200`, `"2xx"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusPattern {
    Exact(u16),
    /// The hundreds digit: `4` for `4xx`.
    Class(u16),
}

impl StatusPattern {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Exact(s) => s == status,
            StatusPattern::Class(c) => status / 100 == c,
        }
    }

    fn parse(item: StatusItem) -> Result<Self, String> {
        match item {
            StatusItem::Code(c) if (100..=599).contains(&c) => Ok(StatusPattern::Exact(c)),
            StatusItem::Code(c) => Err(format!("status {c} is not an HTTP status code")),
            StatusItem::Text(t) => {
                let b = t.as_bytes();
                if b.len() == 3
                    && (b'1'..=b'5').contains(&b[0])
                    && b[1..].eq_ignore_ascii_case(b"xx")
                {
                    Ok(StatusPattern::Class(u16::from(b[0] - b'0')))
                } else if let Ok(c) = t.parse::<u16>() {
                    StatusPattern::parse(StatusItem::Code(c))
                } else {
                    Err(format!(
                        "status {t:?} is neither a code nor a class like \"2xx\""
                    ))
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusItem {
    Code(u16),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusSpec {
    One(StatusItem),
    Many(Vec<StatusItem>),
}

fn deserialize_status<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<StatusPattern>>, D::Error> {
    let spec = StatusSpec::deserialize(d)?;
    let items = match spec {
        StatusSpec::One(i) => vec![i],
        StatusSpec::Many(v) => v,
    };
    if items.is_empty() {
        return Err(serde::de::Error::custom("status list is empty"));
    }
    items
        .into_iter()
        .map(StatusPattern::parse)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A scalar to compare a response field with (`equals: LOCKED_OUT`, `equals: 5`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    /// The form a response value is compared in (see [`value_text`]).
    pub fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// One outcome rule; the first rule whose conditions all hold names the
/// outcome. A rule with no condition matches any HTTP response.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRule {
    #[serde(default, deserialize_with = "deserialize_status")]
    pub status: Option<Vec<StatusPattern>>,
    /// JSON pointer (`/status`) or JSONPath (`$.errorCauses[0].errorSummary`).
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub equals: Option<Scalar>,
    #[serde(default, rename = "in")]
    pub in_: Option<Vec<Scalar>>,
    #[serde(default)]
    pub exists: Option<bool>,
    /// The field's text contains this substring.
    #[serde(default)]
    pub contains: Option<String>,
    pub outcome: String,
}

impl OutcomeRule {
    /// Load-time check of one rule: a well-formed outcome name, not the built-in `timeout`,
    /// and a `field` with exactly one comparison (or neither).
    pub fn check(&self) -> Result<(), String> {
        if !is_outcome_name(&self.outcome) {
            return Err(format!(
                "outcome {:?} must be lower-case letters, digits and _",
                self.outcome
            ));
        }
        if self.outcome == OUTCOME_TIMEOUT {
            return Err(
                "`timeout` is built in (no response in time); use another name".to_string(),
            );
        }
        let conditions = usize::from(self.equals.is_some())
            + usize::from(self.in_.is_some())
            + usize::from(self.exists.is_some())
            + usize::from(self.contains.is_some());
        match (&self.field, conditions) {
            (Some(f), 1) => Selector::parse(f)
                .map(|_| ())
                .map_err(|e| format!("field: {e}")),
            (Some(_), _) => {
                Err("a `field` needs exactly one of equals, in, exists, contains".to_string())
            }
            (None, 0) => Ok(()),
            (None, _) => Err("equals/in/exists/contains need a `field`".to_string()),
        }
    }
}

fn is_outcome_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
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
            (
                403,
                Some(
                    json!({"errorCauses": [{"errorSummary": "password: Password has been used too recently"}]}),
                ),
                "reused2",
            ),
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
}
