//! Pictures of a flow for authors: Graphviz `dot` and Mermaid text.
//!
//! States are nodes labelled with their kind, outcomes are labelled edges,
//! the secure segment is its own cluster (`subgraph cluster_secure` /
//! Mermaid `subgraph secure`), transfers and hangups have their own shapes
//! and colours, and the escape key is drawn as a dashed edge from a note.
//! Output is deterministic (states in name order) so it can be committed and
//! diffed. Rendering the text to an image is left to Graphviz/Mermaid.

use std::fmt::Write as _;

use super::model::{Flow, Kind, State};

fn detail(st: &State) -> String {
    match &st.kind {
        Kind::Play { .. } => "play".into(),
        Kind::Collect { spec, .. } => format!("collect {} ({}-{})", spec.into, spec.min, spec.max),
        Kind::Menu { .. } => "menu".into(),
        Kind::Branch { .. } => "branch".into(),
        Kind::Action { name, .. } => format!("action {name}"),
        Kind::ComfortLoop { spec, .. } => format!("comfort loop ({} rounds)", spec.rounds),
        Kind::Transfer { spec, .. } => format!("transfer {} ({})", spec.target, spec.reason),
        Kind::Audit { spec, .. } => format!("audit {}/{}", spec.result, spec.reason),
        Kind::Set { .. } => "set".into(),
        Kind::Hangup { .. } => "hangup".into(),
    }
}

fn counter_note(st: &State) -> String {
    st.counter
        .as_ref()
        .map(|c| format!(" [{} max {}]", c.name, c.max))
        .unwrap_or_default()
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot_node(out: &mut String, indent: &str, name: &str, st: &State) {
    let label = dot_escape(&format!("{name}\\n{}{}", detail(st), counter_note(st)));
    let style = match &st.kind {
        Kind::Transfer { .. } => r##"shape=cds, style=filled, fillcolor="#cfe2ff""##,
        Kind::Hangup { .. } => r##"shape=doubleoctagon, style=filled, fillcolor="#f8d7da""##,
        Kind::Branch { .. } => "shape=diamond",
        Kind::Audit { .. } => r##"shape=note, style=filled, fillcolor="#fff3cd""##,
        Kind::Collect { .. } | Kind::Menu { .. } | Kind::ComfortLoop { .. } => {
            "shape=box, style=\"rounded,bold\""
        }
        _ => "shape=box, style=rounded",
    };
    // Labels use `\n` which dot interprets; undo the escaping of it.
    let label = label.replace("\\\\n", "\\n");
    let _ = writeln!(
        out,
        "{indent}\"{}\" [label=\"{label}\", {style}];",
        dot_escape(name)
    );
}

/// Graphviz source.
pub fn to_dot(flow: &Flow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&flow.flow));
    let _ = writeln!(
        out,
        "  label=\"{} {}\"; labelloc=t; fontname=\"Helvetica\";",
        dot_escape(&flow.flow),
        dot_escape(&flow.version)
    );
    let _ = writeln!(
        out,
        "  node [fontname=\"Helvetica\", fontsize=10]; edge [fontname=\"Helvetica\", fontsize=9];"
    );
    let _ = writeln!(out, "  \"__start\" [shape=point, width=0.15];");
    let _ = writeln!(out, "  \"__start\" -> \"{}\";", dot_escape(&flow.start));
    let secure: Vec<_> = flow.states.iter().filter(|(_, s)| s.secure).collect();
    if !secure.is_empty() {
        let _ = writeln!(out, "  subgraph cluster_secure {{");
        let _ = writeln!(out, "    label=\"secure segment (recording suppressed)\"; style=filled; fillcolor=\"#fdecea\"; color=\"#c0392b\";");
        for (name, st) in &secure {
            dot_node(&mut out, "    ", name, st);
        }
        let _ = writeln!(out, "  }}");
    }
    for (name, st) in flow.states.iter().filter(|(_, s)| !s.secure) {
        dot_node(&mut out, "  ", name, st);
    }
    for (name, st) in &flow.states {
        for e in st.edges() {
            let style = if e.key.starts_with("counter") {
                ", style=dashed, color=\"#c0392b\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\"{style}];",
                dot_escape(name),
                dot_escape(e.to),
                dot_escape(&e.label)
            );
        }
    }
    if let Some(esc) = &flow.escape {
        let _ = writeln!(
            out,
            "  \"__escape\" [shape=plaintext, label=\"key {} (any non-secure prompt)\"];",
            dot_escape(&esc.key)
        );
        let _ = writeln!(
            out,
            "  \"__escape\" -> \"{}\" [style=dashed];",
            dot_escape(&esc.to)
        );
    }
    out.push_str("}\n");
    out
}

fn mm_id(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("s_{clean}")
}

fn mm_text(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

fn mm_node(out: &mut String, indent: &str, name: &str, st: &State) {
    let label = format!(
        "\"{}<br/>{}{}\"",
        mm_text(name),
        mm_text(&detail(st)),
        mm_text(&counter_note(st))
    );
    let id = mm_id(name);
    let shape = match &st.kind {
        Kind::Transfer { .. } => format!("{id}[[{label}]]"),
        Kind::Hangup { .. } => format!("{id}([{label}])"),
        Kind::Branch { .. } => format!("{id}{{{label}}}"),
        Kind::Audit { .. } => format!("{id}[/{label}/]"),
        _ => format!("{id}[{label}]"),
    };
    let _ = writeln!(out, "{indent}{shape}");
}

/// Mermaid flowchart source.
pub fn to_mermaid(flow: &Flow) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "  start_node((start)) --> {}", mm_id(&flow.start));
    let secure: Vec<_> = flow.states.iter().filter(|(_, s)| s.secure).collect();
    if !secure.is_empty() {
        let _ = writeln!(
            out,
            "  subgraph secure [\"secure segment (recording suppressed)\"]"
        );
        for (name, st) in &secure {
            mm_node(&mut out, "    ", name, st);
        }
        let _ = writeln!(out, "  end");
    }
    for (name, st) in flow.states.iter().filter(|(_, s)| !s.secure) {
        mm_node(&mut out, "  ", name, st);
    }
    for (name, st) in &flow.states {
        for e in st.edges() {
            let arrow = if e.key.starts_with("counter") {
                "-.->"
            } else {
                "-->"
            };
            if e.label.is_empty() {
                let _ = writeln!(out, "  {} {arrow} {}", mm_id(name), mm_id(e.to));
            } else {
                let _ = writeln!(
                    out,
                    "  {} {arrow}|\"{}\"| {}",
                    mm_id(name),
                    mm_text(&e.label),
                    mm_id(e.to)
                );
            }
        }
    }
    if let Some(esc) = &flow.escape {
        let _ = writeln!(
            out,
            "  escape_note>\"key {} at any non-secure prompt\"] -.-> {}",
            mm_text(&esc.key),
            mm_id(&esc.to)
        );
    }
    let _ = writeln!(out, "  classDef transfer fill:#cfe2ff,stroke:#0d6efd");
    let _ = writeln!(out, "  classDef hangup fill:#f8d7da,stroke:#dc3545");
    let _ = writeln!(out, "  classDef audit fill:#fff3cd,stroke:#997404");
    let _ = writeln!(out, "  style secure fill:#fdecea,stroke:#c0392b");
    for (name, st) in &flow.states {
        let class = match st.kind {
            Kind::Transfer { .. } => "transfer",
            Kind::Hangup { .. } => "hangup",
            Kind::Audit { .. } => "audit",
            _ => continue,
        };
        let _ = writeln!(out, "  class {} {class}", mm_id(name));
    }
    if secure.is_empty() {
        // `style secure` needs the subgraph to exist.
        out = out.replace("  style secure fill:#fdecea,stroke:#c0392b\n", "");
    }
    out
}
