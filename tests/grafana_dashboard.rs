//! deploy/grafana/sspr-ivr.json asks only for what the server exports: every PromQL query
//! (panels and template variables) names metrics from the registry's own list
//! (`ops::metrics::families`, which `/metrics` is tested against), with a histogram's
//! `_bucket`/`_sum`/`_count` series only for histograms, and groups or filters only by labels
//! docs/operations.md documents for those metrics. It also covers the areas an operator looks
//! at first.

use std::collections::{BTreeMap, BTreeSet};

use sspr_ivr::ops::metrics::families;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> serde_json::Value {
    let path = root().join("deploy/grafana/sspr-ivr.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/sspr-ivr.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every query string in the dashboard: panel targets' `expr` (rows' nested panels too)
/// and template variables' `query`/`definition`.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains("sspr_ivr_") => {
                        out.push(s.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| queries(i, out)),
        _ => {}
    }
}

/// The `sspr_ivr_…` names a query mentions.
fn metric_names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("sspr_ivr_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Label names a query groups by (`by (a, b)`) or matches on (`{a="x"}`).
fn label_names(query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = query;
    while let Some(at) = rest.find("by (") {
        let tail = &rest[at + 4..];
        let end = tail.find(')').expect("closing )");
        out.extend(tail[..end].split(',').map(|l| l.trim().to_string()));
        rest = &tail[end..];
    }
    let mut rest = query;
    while let Some(at) = rest.find('{') {
        let tail = &rest[at + 1..];
        let end = tail.find('}').expect("closing }");
        for matcher in tail[..end].split(',') {
            if let Some(pos) = matcher.find(['=', '!']) {
                out.insert(matcher[..pos].trim().to_string());
            }
        }
        rest = &tail[end..];
    }
    out.retain(|l| !l.is_empty());
    out
}

/// docs/operations.md's metric table: name → the row's labels column.
fn documented_labels() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('`')?;
            let cols: Vec<&str> = rest.split('|').collect();
            name.starts_with("sspr_ivr_")
                .then(|| (name.to_string(), cols.get(2).unwrap_or(&"").to_string()))
        })
        .collect()
}

#[test]
fn every_query_names_only_exported_metrics_and_documented_labels() {
    let exported: BTreeMap<&str, &str> = families().map(|d| (d.name, d.kind)).collect();
    let labels = documented_labels();
    let mut all = Vec::new();
    queries(&dashboard(), &mut all);
    assert!(all.len() >= 25, "only {} queries", all.len());
    let mut used = BTreeSet::new();
    for q in &all {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query naming no sspr-ivr metric: {q}");
        let mut families_in_query = Vec::new();
        for name in names {
            let family = if exported.contains_key(name.as_str()) {
                name.clone()
            } else {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or_else(|| panic!("`{name}` is not exported (query: {q})"));
                assert_eq!(
                    exported.get(base),
                    Some(&"histogram"),
                    "`{name}`: only a histogram has {}; query: {q}",
                    &name[base.len()..]
                );
                base.to_string()
            };
            used.insert(family.clone());
            families_in_query.push(family);
        }
        for label in label_names(q) {
            if matches!(label.as_str(), "job" | "instance" | "le") {
                continue; // Prometheus' own target labels, and histogram buckets
            }
            for family in &families_in_query {
                let row = labels
                    .get(family)
                    .unwrap_or_else(|| panic!("{family} is not in docs/operations.md"));
                assert!(
                    row.contains(&format!("`{label}`")),
                    "query uses label `{label}`, not documented for {family}: {q}"
                );
            }
        }
    }
    // The areas an operator looks at first are all there.
    for family in [
        "sspr_ivr_calls_active",
        "sspr_ivr_calls_finished_total",
        "sspr_ivr_call_setup_rejections_total",
        "sspr_ivr_dtmf_digits_total",
        "sspr_ivr_action_duration_seconds",
        "sspr_ivr_resets_total",
        "sspr_ivr_audit_spool_backlog",
        "sspr_ivr_audit_records_delivered_total",
        "sspr_ivr_audit_delivery_failures_total",
        "sspr_ivr_rtp_packets_lost_total",
        "sspr_ivr_rtp_packets_received_total",
    ] {
        assert!(used.contains(family), "the dashboard never shows {family}");
    }
}

#[test]
fn dashboard_is_importable() {
    let d = dashboard();
    assert_eq!(d["uid"], "sspr-ivr");
    assert!(d["schemaVersion"].as_u64().is_some());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id {p}"
        );
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                !expr.contains("rate(") || expr.contains("[$__rate_interval]"),
                "{}: rate without $__rate_interval: {expr}",
                p["title"]
            );
        }
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{} is wider than the grid", p["title"]);
    }
}
