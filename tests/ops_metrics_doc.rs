//! docs/operations.md lists exactly the metrics the process exposes.

use std::collections::BTreeSet;

use sspr_ivr::ops::metrics::{families, MetricDoc};

#[test]
fn operations_guide_lists_every_metric_and_no_other() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs/operations.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `sspr_ivr_"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let exposed: BTreeSet<&str> = families()
        .map(|d| d.name.strip_prefix("sspr_ivr_").expect("prefix"))
        .collect();
    assert_eq!(documented, exposed);
    for MetricDoc { name, kind, .. } in families() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .expect("row");
        assert!(
            row.contains(&format!("| {kind} |")),
            "{name} documented with the wrong type"
        );
    }
}
