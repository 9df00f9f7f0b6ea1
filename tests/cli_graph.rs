//! `sspr-ivr graph`, the real binary, on the shipped flows: exit status,
//! every state drawn, the secure segment as its own cluster, and Graphviz
//! accepting the DOT output (when `dot` is installed).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn graph(flow: &str, format: &str) -> (bool, String, String) {
    run_with_timeout(
        Command::new(BIN)
            .current_dir(repo())
            .args(["graph", flow, "--format", format]),
        Duration::from_secs(30),
    )
}

/// State names, and the secure ones, straight from the YAML.
fn states(flow: &str) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(repo().join(flow)).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["states"]
        .as_mapping()
        .expect("states")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v["secure"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// The lines between the line containing `start` and the next line that is
/// exactly `end` (trimmed).
fn block<'a>(text: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.contains(start))
        .skip(1)
        .take_while(|l| l.trim() != end)
        .collect()
}

#[test]
fn dot_has_every_state_and_the_secure_cluster() {
    for flow in ["flows/sspr.yaml", "flows/echo.yaml"] {
        let (ok, dot, err) = graph(flow, "dot");
        assert!(ok, "{flow}: {err}");
        assert!(dot.starts_with("digraph "), "{dot}");
        let secure = block(&dot, "subgraph cluster_secure {", "}");
        for (name, is_secure) in states(flow) {
            let decl = format!("\"{name}\" [label=");
            assert!(dot.contains(&decl), "{flow}: state {name} missing:\n{dot}");
            assert_eq!(
                secure.iter().any(|l| l.contains(&decl)),
                is_secure,
                "{flow}: {name} secure={is_secure} but cluster membership differs"
            );
        }
        if flow.ends_with("sspr.yaml") {
            assert!(secure.len() > 5, "{dot}");
            // Transfers and hangups have their own shapes.
            assert!(dot.contains("shape=cds"), "transfers: {dot}");
            assert!(dot.contains("shape=doubleoctagon"), "hangups: {dot}");
        }
    }
}

#[test]
fn mermaid_has_every_state_and_the_secure_subgraph() {
    let (ok, text, err) = graph("flows/sspr.yaml", "mermaid");
    assert!(ok, "{err}");
    assert!(text.starts_with("flowchart "), "{text}");
    let secure = block(&text, "subgraph secure", "end");
    assert!(!secure.is_empty(), "{text}");
    for (name, is_secure) in states("flows/sspr.yaml") {
        let node = format!("s_{name}");
        assert!(
            text.lines().any(|l| l.contains(&format!("{node}["))
                || l.contains(&format!("{node}{{"))
                || l.contains(&format!("{node}("))
                || l.contains(&format!("{node}>"))),
            "state {name} missing:\n{text}"
        );
        assert_eq!(
            secure
                .iter()
                .any(|l| l.trim_start().starts_with(&format!("{node}["))
                    || l.trim_start().starts_with(&format!("{node}{{"))),
            is_secure,
            "{name}"
        );
    }
}

#[test]
fn graph_of_a_missing_or_broken_flow_fails() {
    let (ok, _, err) = graph("flows/does-not-exist.yaml", "dot");
    assert!(!ok);
    assert!(err.contains("does-not-exist.yaml"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "flow: x\nversion: \"1\"\nstart: a\nstates: { a: { hangup: {}, colour: red } }\n",
    )
    .unwrap();
    let (ok, _, err) = graph(bad.to_str().unwrap(), "dot");
    assert!(!ok);
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn graphviz_accepts_the_dot_output() {
    if !common::tools::available("dot", "graphviz") {
        return;
    }
    for flow in ["flows/sspr.yaml", "flows/echo.yaml"] {
        let (ok, dot, err) = graph(flow, "dot");
        assert!(ok, "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flow.dot");
        std::fs::write(&file, &dot).unwrap();
        let (ok, svg, err) = run_with_timeout(
            Command::new("dot").arg("-Tsvg").arg(&file),
            Duration::from_secs(60),
        );
        assert!(ok, "dot rejected the {flow} graph: {err}");
        assert!(err.trim().is_empty(), "dot warnings for {flow}: {err}");
        assert!(svg.contains("<svg"), "{svg}");
        for (name, _) in states(flow) {
            assert!(
                svg.contains(&format!("<title>{name}</title>")),
                "{name} not rendered"
            );
        }
    }
    // The committed picture exists and is an SVG (not compared byte for
    // byte: Graphviz versions lay out differently).
    let committed = std::fs::read_to_string(repo().join("docs/sspr-flow.svg")).unwrap();
    assert!(committed.contains("<svg") && committed.contains("secure segment"));
}
