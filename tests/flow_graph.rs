//! Graph renderings of the shipped SSPR flow: secure states inside their own
//! cluster, transfers and hangups with their own shapes, labelled outcome
//! edges; the dot output is accepted by Graphviz when it is installed.

use std::path::Path;

use sspr_ivr::files::load_flow as load;
use sspr_ivr::flow::{to_dot, to_mermaid, Flow};

#[path = "common/tools.rs"]
mod tools;

fn sspr() -> Flow {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/sspr.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The text between `start` and the matching closing line.
fn block<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in\n{text}"));
    let rest = &text[from..];
    let to = rest.find(end).expect("block end");
    &rest[..to]
}

#[test]
fn dot_clusters_secure_states_and_marks_exits() {
    let flow = sspr();
    let dot = to_dot(&flow);
    let cluster = block(&dot, "subgraph cluster_secure {", "\n  }\n");
    for (name, st) in &flow.states {
        let decl = format!("\"{name}\" [label=");
        assert_eq!(
            cluster.contains(&decl),
            st.secure,
            "{name}: secure={} but cluster membership differs",
            st.secure
        );
        assert!(dot.contains(&decl), "{name} missing");
    }
    assert!(dot.contains("\"to_recovery\" [label=\"to_recovery\\ntransfer account_recovery (account_locked)\", shape=cds"), "{dot}");
    assert!(
        dot.contains("\"goodbye\" [label=\"goodbye\\nhangup\", shape=doubleoctagon"),
        "{dot}"
    );
    assert!(
        dot.contains("\"lookup\" -> \"audit_locked\" [label=\"locked\"];"),
        "{dot}"
    );
    assert!(
        dot.contains(
            "\"otp_wrong\" -> \"otp_exhausted\" [label=\"otp_failures > 2\", style=dashed"
        ),
        "{dot}"
    );
    assert!(dot.contains("\"__escape\" -> \"agent\""), "{dot}");
}

#[test]
fn dot_is_accepted_by_graphviz() {
    if !tools::available("dot", "graphviz") {
        return;
    }
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dot");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(to_dot(&sspr()).as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("dot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn mermaid_has_secure_subgraph_and_shapes() {
    let flow = sspr();
    let mm = to_mermaid(&flow);
    assert!(mm.starts_with("flowchart TD\n"));
    let sub = block(&mm, "subgraph secure", "\n  end\n");
    for (name, st) in &flow.states {
        let decl = format!("s_{name}[");
        let decl2 = format!("s_{name}{{");
        let inside = sub.contains(&decl) || sub.contains(&decl2);
        assert_eq!(inside, st.secure, "{name}");
    }
    assert!(
        mm.contains(
            "s_to_recovery[[\"to_recovery<br/>transfer account_recovery (account_locked)\"]]"
        ),
        "{mm}"
    );
    assert!(mm.contains("s_goodbye([\"goodbye<br/>hangup\"])"), "{mm}");
    assert!(
        mm.contains("s_lookup -->|\"locked\"| s_audit_locked"),
        "{mm}"
    );
    assert!(
        mm.contains("s_otp_wrong -.->|\"otp_failures #gt; 2\"| s_otp_exhausted"),
        "{mm}"
    );
    assert!(mm.contains("class s_to_recovery transfer"));
    assert!(mm.contains("class s_goodbye hangup"));
}
