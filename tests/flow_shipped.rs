//! The shipped flows load, validate clean against the shipped catalog, and
//! reject a spurious key added to any of their tables.

#[path = "golden/catalog.rs"]
mod catalog;

use std::path::Path;

use sspr_ivr::files::load_flow as load;
use sspr_ivr::flow::validate;

const FLOWS: &[&str] = &["flows/echo.yaml", "flows/sspr.yaml"];

#[test]
fn shipped_flows_validate_clean() {
    for f in FLOWS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let flow = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let diags = validate(&flow, Path::new(f), &catalog::catalog());
        assert!(
            diags.is_empty(),
            "{f}:\n{}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Every mapping of the value tree, as a path of keys/indices.
fn mappings(v: &serde_yaml::Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            out.push(path.clone());
            for (k, child) in m {
                let key = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                let mut p = path.clone();
                p.push(key);
                mappings(child, p, out);
            }
        }
        serde_yaml::Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                let mut p = path.clone();
                p.push(format!("#{i}"));
                mappings(child, p, out);
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut serde_yaml::Value, path: &[String]) -> &'a mut serde_yaml::Value {
    path.iter().fold(v, |v, k| match k.strip_prefix('#') {
        Some(i) => &mut v.as_sequence_mut().expect("sequence")[i.parse::<usize>().expect("index")],
        None => v
            .as_mapping_mut()
            .expect("mapping")
            .get_mut(k.as_str())
            .expect("key"),
    })
}

/// Maps whose keys are data rather than schema (state names, menu keys,
/// outcomes, variable names): a new key there is not a typo that serde can
/// see, so the validator must reject it instead. `variables` accepts any
/// name by design (the config may preset any flow variable).
fn free_form(path: &[String]) -> Option<&'static str> {
    match path.last().map(String::as_str) {
        Some("variables") if path.len() == 1 => Some("variables"),
        Some("states") if path.len() == 1 => Some("states"),
        Some("options") | Some("on") => Some("data"),
        Some("vars") if path.iter().any(|p| p == "set") => Some("data"),
        _ => None,
    }
}

#[test]
fn spurious_key_in_every_table_is_rejected() {
    let mut checked = 0;
    for f in FLOWS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let text = std::fs::read_to_string(&path).expect("read");
        let tree: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        let mut all = Vec::new();
        mappings(&tree, Vec::new(), &mut all);
        assert!(all.len() >= 9, "{f}: only {} tables found", all.len());
        for table in all {
            let mut t = tree.clone();
            at(&mut t, &table)
                .as_mapping_mut()
                .expect("mapping")
                .insert("spurious_key".into(), 1.into());
            let mutated = serde_yaml::to_string(&t).expect("serialise");
            let result = sspr_ivr::flow::model::parse(&mutated, Path::new(f));
            match (free_form(&table), result) {
                (None, Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("spurious_key"),
                        "{f} {table:?}: error does not name the key: {msg}"
                    );
                    assert!(msg.starts_with(&format!("{f}:")), "{msg}");
                }
                (None, Ok(_)) => panic!("{f} {table:?}: spurious key accepted"),
                (Some("variables"), Ok(_)) => {}
                (Some(_), Err(e)) => {
                    assert!(e.to_string().contains("spurious_key"), "{f} {table:?}: {e}");
                }
                (Some(_), Ok(flow)) => {
                    let diags = validate(&flow, Path::new(f), &catalog::catalog());
                    assert!(
                        diags.iter().any(|d| d.to_string().contains("spurious_key")),
                        "{f} {table:?}: validator did not name the key: {diags:#?}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} tables checked");
}
