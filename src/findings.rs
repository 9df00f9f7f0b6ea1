//! Flow validator findings, placed where an operator edits them: the line and
//! column of the key in the flow file, and — for a flow `on` key and an action
//! outcome that differ by a typo — the rule in the configuration file that
//! declares the action's outcome, as a finding of its own.
//!
//! A flow saying `not_found` where the action's rule says `not_fund` cannot be
//! told apart from the opposite typo: either file may be the wrong one. So both
//! places are named, each with file, line and key, and each message names the
//! other. The validator (`flow::validate`) stays free of file reading; this is
//! the start-up side (`config::Loaded`), which has the files.

use std::path::Path;

use crate::config::Config;
use crate::flow::Diagnostic;
use crate::yaml_path;

/// `diags` for one flow with positions filled in and the config-side finding
/// of each outcome typo added after the flow-side one.
pub fn place(diags: Vec<Diagnostic>, config: &Config) -> Vec<Diagnostic> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let config_text = read(&config.source);
    let mut flow_text: Option<(std::path::PathBuf, Option<String>)> = None;
    let mut out = Vec::with_capacity(diags.len());
    for mut d in diags {
        if flow_text.as_ref().is_none_or(|(p, _)| *p != d.file) {
            flow_text = Some((d.file.clone(), read(&d.file)));
        }
        if let Some((_, Some(text))) = &flow_text {
            d.at = yaml_path::locate_nearest(text, &d.state).map(|(_, at)| at);
        }
        let rule = d
            .outcome
            .clone()
            .and_then(|r| Some((rule_key(config, &r.action, r.declared.as_deref()?)?, r)));
        let Some((key, r)) = rule else {
            out.push(d);
            continue;
        };
        let rule_at = config_text
            .as_deref()
            .and_then(|t| yaml_path::locate(t, &key));
        let rule_place = format!("{}{} {key}", config.source.display(), line_col(rule_at));
        let declared = r.declared.as_deref().unwrap_or_default();
        let action = &r.action;
        match r.flow_key.as_deref() {
            // A typo pair: the flow side names the rule, and the rule gets a finding.
            Some(flow_key) => {
                let flow_place = format!("{}{} {}", d.file.display(), line_col(d.at), d.state);
                d.hint = Some(format!(
                    "did you mean `{declared}`, which {rule_place} declares? \
                     one of the two names is misspelt"
                ));
                out.push(d);
                out.push(Diagnostic {
                    file: config.source.clone(),
                    state: key,
                    message: format!(
                        "outcome `{declared}` of action `{action}` is not handled by \
                         {flow_place}, which says `{flow_key}` instead"
                    ),
                    hint: Some("one of the two names is misspelt".into()),
                    at: rule_at,
                    outcome: None,
                });
            }
            // An unhandled outcome: where it comes from.
            None => {
                d.hint = Some(format!(
                    "add `{declared}: <state>` under `on`; {rule_place} declares it"
                ));
                out.push(d);
            }
        }
    }
    out
}

/// `actions.NAME.outcomes.I.outcome` of the first rule of `action` giving `outcome`.
fn rule_key(config: &Config, action: &str, outcome: &str) -> Option<String> {
    let i = config
        .actions
        .get(action)?
        .outcomes
        .iter()
        .position(|r| r.outcome == outcome)?;
    Some(format!("actions.{action}.outcomes.{i}.outcome"))
}

fn line_col(at: Option<(usize, usize)>) -> String {
    at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default()
}
