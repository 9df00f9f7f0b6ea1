//! Static checks of a loaded [`Flow`] against the [`Catalog`] of prompts,
//! actions and transfer targets the configuration provides.
//!
//! Every finding names the file, the state path (`states.lookup.on.locked`)
//! and, where one exists, a hint ("did you mean `check_locked`?"). Checked:
//! unknown state references, unreachable states, missing failure paths,
//! action outcomes left unhandled or impossible, unbounded loops, unknown
//! prompts and transfer targets, malformed keys/tokens/patterns/templates,
//! and the secure-segment rule: a secure value (collected in a secure state,
//! returned by a secure action or by any action run in a secure state, or
//! derived from one by `set`) may only be read by a secure state's `branch`
//! or `set` and by a `secure: true` action — never spoken, never given to
//! a non-secure action, never in a transfer or audit reason (those are
//! fixed tokens). Keys typed ahead (`keys`): a non-secure state whose kept
//! keys can reach a secure collect must say `guard_keys: true` (or be
//! secure). It does not run the flow; `interp` enforces the same rules at
//! run time as a second line.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use super::interp::digit_prompt;
use super::keys::check_guards;
use super::model::{Flow, Kind, PlayItem, State};
use super::Catalog;

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// Path of the offending key (`states.get_id.on_fail`, `start`).
    pub state: String,
    pub message: String,
    pub hint: Option<String>,
    /// Line and column of `state` in `file`, when the loader has the text
    /// (`crate::findings` fills it in; the validator never reads files).
    pub at: Option<(usize, usize)>,
    /// Set for a mismatch between a flow's `on` keys and what an action
    /// produces, so the loader can point at the config rule as well.
    pub outcome: Option<OutcomeRef>,
}

/// The two names of an action-outcome mismatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRef {
    pub action: String,
    /// The outcome as the action declares it: one the flow does not handle,
    /// or the unhandled one a typo away from `flow_key`.
    pub declared: Option<String>,
    /// An `on` key naming no outcome of the action (else the finding is an
    /// unhandled `declared`).
    pub flow_key: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}: {}", self.state, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

const DTMF: &str = "0123456789*#ABCD";

/// Longest entry a collect may ask for: caller input is bounded before it
/// reaches any template.
pub const MAX_DIGITS: u32 = 32;

struct Ctx<'a> {
    file: PathBuf,
    flow: &'a Flow,
    catalog: &'a Catalog,
    out: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn push(&mut self, state: impl Into<String>, message: impl Into<String>, hint: Option<String>) {
        self.out.push(Diagnostic {
            file: self.file.clone(),
            state: state.into(),
            message: message.into(),
            hint,
            at: None,
            outcome: None,
        });
    }

    /// Marks the finding just pushed as an action-outcome mismatch.
    fn outcome_ref(&mut self, action: &str, declared: Option<&String>, flow_key: Option<&String>) {
        if let Some(d) = self.out.last_mut() {
            d.outcome = Some(OutcomeRef {
                action: action.to_string(),
                declared: declared.cloned(),
                flow_key: flow_key.cloned(),
            });
        }
    }

    fn state_ref(&mut self, at: String, to: &str) {
        if !self.flow.states.contains_key(to) {
            let hint = did_you_mean(to, self.flow.states.keys().map(String::as_str));
            self.push(at, format!("unknown state `{to}`"), hint);
        }
    }

    fn prompts(&mut self, at: &str, items: &[PlayItem], secure_vars: &BTreeSet<String>) {
        for (i, item) in items.iter().enumerate() {
            match item {
                PlayItem::Prompt(p) => self.prompt(&format!("{at}.{i}"), p),
                PlayItem::Silence(_) => {}
                PlayItem::Digits(src) => {
                    for d in '0'..='9' {
                        self.prompt(&format!("{at}.{i}.digits"), &digit_prompt(d));
                    }
                    match src.check() {
                        Ok(names) => {
                            for n in names.iter().filter(|n| secure_vars.contains(*n)) {
                                self.push(
                                    format!("{at}.{i}.digits"),
                                    format!("secure value `{n}` would be spoken"),
                                    Some("secrets are never played; speak only masked plain values such as `{{ mobile | last4 }}`".into()),
                                );
                            }
                        }
                        Err(e) => self.push(
                            format!("{at}.{i}.digits"),
                            format!("bad template: {e}"),
                            None,
                        ),
                    }
                }
            }
        }
    }

    fn prompt(&mut self, at: &str, name: &str) {
        if !self.catalog.prompts.contains(name) {
            let hint = did_you_mean(name, self.catalog.prompts.iter().map(String::as_str));
            let msg = format!("prompt `{name}` does not exist");
            if !self.out.iter().any(|d| d.state == at && d.message == msg) {
                self.push(at, msg, hint);
            }
        }
    }

    fn token(&mut self, at: String, what: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            self.push(
                at,
                format!("{what} must be a fixed token of a-z, 0-9 and `_` (it can never carry caller data or a secret)"),
                None,
            );
        }
    }

    fn keys<'k>(&mut self, at: &str, keys: impl Iterator<Item = &'k String>) {
        for k in keys {
            if k.chars().count() != 1 || !DTMF.contains(k.as_str()) {
                self.push(
                    format!("{at}.{k}"),
                    format!("`{k}` is not a single DTMF key (0-9, *, #, A-D)"),
                    None,
                );
            }
        }
    }
}

/// Check `flow` (loaded from `path`) against `catalog`. Empty means valid.
pub fn validate(flow: &Flow, path: &Path, catalog: &Catalog) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        file: path.to_path_buf(),
        flow,
        catalog,
        out: Vec::new(),
    };
    cx.state_ref("start".into(), &flow.start);
    if flow.flow.trim().is_empty() {
        cx.push("flow", "the flow needs a name", None);
    }
    if flow.version.trim().is_empty() {
        cx.push(
            "version",
            "the flow needs a version (audit records carry it)",
            None,
        );
    }
    if let Some(esc) = &flow.escape {
        cx.keys("escape.key", std::iter::once(&esc.key));
        cx.state_ref("escape.to".into(), &esc.to);
    }
    check_insecure_media_path(&mut cx);
    let secure_vars = secure_values(flow, catalog);
    for (name, st) in &flow.states {
        check_state(&mut cx, name, st, &secure_vars);
    }
    check_reachable(&mut cx);
    check_loops(&mut cx);
    for (state, message, hint) in check_guards(flow, flow.key_routes()) {
        cx.push(format!("states.{state}"), message, Some(hint));
    }
    cx.out
}

fn check_state(cx: &mut Ctx, name: &str, st: &State, secure_vars: &BTreeSet<String>) {
    let at = format!("states.{name}");
    for e in st.edges() {
        cx.state_ref(format!("{at}.{}", e.key), e.to);
    }
    if let Some(c) = &st.counter {
        if c.max == 0 {
            cx.push(
                format!("{at}.counter.max"),
                "a counter's max must be at least 1",
                None,
            );
        }
    }
    let need = |cx: &mut Ctx, key: &str, v: &Option<String>, msg: &str| {
        if v.is_none() {
            cx.push(
                format!("{at}.{key}"),
                msg.to_string(),
                Some(format!("add `{key}: <state>`")),
            );
        }
    };
    match &st.kind {
        Kind::Play { items, next, .. } => {
            cx.prompts(&format!("{at}.play"), items, secure_vars);
            need(cx, "next", next, "a play state needs `next`");
        }
        Kind::Collect {
            spec,
            next,
            on_fail,
            on_mismatch,
        } => {
            need(cx, "next", next, "a collect needs `next`");
            need(
                cx,
                "on_fail",
                on_fail,
                "a collect needs a failure path for when its attempts run out",
            );
            if on_mismatch.is_some() && spec.confirm.is_none() {
                cx.push(
                    format!("{at}.on_mismatch"),
                    "`on_mismatch` needs `collect.confirm`",
                    None,
                );
            }
            let c = format!("{at}.collect");
            if spec.max == 0 || spec.max > MAX_DIGITS {
                cx.push(
                    format!("{c}.max"),
                    format!("max must be 1 to {MAX_DIGITS} digits"),
                    None,
                );
            }
            if spec.min > spec.max {
                cx.push(format!("{c}.min"), "min is larger than max", None);
            }
            if spec.attempts == 0 {
                cx.push(format!("{c}.attempts"), "attempts must be at least 1", None);
            }
            if spec.first_digit_timeout.0.is_zero() || spec.inter_digit_timeout.0.is_zero() {
                cx.push(c.clone(), "timeouts must be longer than zero", None);
            }
            if let Some(t) = &spec.terminator {
                cx.keys(&format!("{c}.terminator"), std::iter::once(t));
            }
            if let Some(p) = &spec.pattern {
                if p.regex().is_err() {
                    cx.push(
                        format!("{c}.pattern"),
                        "pattern is not a valid regular expression",
                        None,
                    );
                }
            }
            if !is_ident(&spec.into) {
                cx.push(
                    format!("{c}.into"),
                    "variable names are letters, digits and `_`",
                    None,
                );
            }
            if spec.restart && spec.terminator.as_deref() == Some("*") {
                cx.push(
                    format!("{c}.terminator"),
                    "`*` cannot end the entry while it restarts it",
                    Some("set `restart: false`, or end the entry with `#`".into()),
                );
            }
            if spec.escape && st.secure {
                cx.push(
                    format!("{c}.escape"),
                    "the escape key is never honoured in a secure state",
                    None,
                );
            }
            cx.prompts(&format!("{c}.prompt"), &spec.prompt, secure_vars);
            cx.prompts(&format!("{c}.no_input"), &spec.no_input, secure_vars);
            cx.prompts(&format!("{c}.no_match"), &spec.no_match, secure_vars);
            if let Some(conf) = &spec.confirm {
                cx.prompts(&format!("{c}.confirm.prompt"), &conf.prompt, secure_vars);
                cx.prompts(
                    &format!("{c}.confirm.mismatch"),
                    &conf.mismatch,
                    secure_vars,
                );
            }
        }
        Kind::Menu { spec, on_fail } => {
            need(
                cx,
                "on_fail",
                on_fail,
                "a menu needs a failure path for when its attempts run out",
            );
            let m = format!("{at}.menu");
            if spec.options.is_empty() {
                cx.push(
                    format!("{m}.options"),
                    "a menu needs at least one option",
                    None,
                );
            }
            cx.keys(&format!("{m}.options"), spec.options.keys());
            if spec.attempts == 0 {
                cx.push(format!("{m}.attempts"), "attempts must be at least 1", None);
            }
            cx.prompts(&format!("{m}.prompt"), &spec.prompt, secure_vars);
            cx.prompts(&format!("{m}.no_input"), &spec.no_input, secure_vars);
            cx.prompts(&format!("{m}.no_match"), &spec.no_match, secure_vars);
        }
        Kind::Branch { cases, default } => {
            need(cx, "default", default, "a branch needs `default`");
            for (i, c) in cases.iter().enumerate() {
                let b = format!("{at}.branch.{i}");
                let tests = [c.equals.is_some(), c.is_set.is_some(), c.matches.is_some()];
                if tests.iter().filter(|t| **t).count() != 1 {
                    cx.push(
                        b.clone(),
                        "a case needs exactly one of `equals`, `is_set`, `matches`",
                        None,
                    );
                }
                if let Some(p) = &c.matches {
                    if p.regex().is_err() {
                        cx.push(
                            format!("{b}.matches"),
                            "not a valid regular expression",
                            None,
                        );
                    }
                }
                if secure_vars.contains(&c.var) && !st.secure {
                    cx.push(
                        format!("{b}.var"),
                        format!(
                            "secure value `{}` is examined outside the secure segment",
                            c.var
                        ),
                        Some("mark this state `secure: true` or branch on a plain value".into()),
                    );
                }
            }
        }
        Kind::Action {
            name: action,
            processing,
            on,
        } => {
            cx.prompts(&format!("{at}.processing"), processing, secure_vars);
            match cx.catalog.actions.get(action) {
                None => {
                    let hint = did_you_mean(action, cx.catalog.actions.keys().map(String::as_str));
                    cx.push(
                        format!("{at}.action"),
                        format!("action `{action}` is not defined in the config"),
                        hint,
                    );
                }
                Some(info) => {
                    let unproduced = |k: &&String| !info.outcomes.contains(k);
                    // One typo between two names is one finding, on the `on` key:
                    // `crate::findings` also points at the action's rule, since
                    // either file may hold the typo.
                    let near = |k: &String, o: &String| {
                        did_you_mean(k, std::iter::once(o.as_str())).is_some()
                    };
                    for o in &info.outcomes {
                        if !on.contains_key(o) && !on.keys().filter(unproduced).any(|k| near(k, o))
                        {
                            cx.push(
                                format!("{at}.on"),
                                format!("outcome `{o}` of action `{action}` is not handled"),
                                Some(format!("add `{o}: <state>` under `on`")),
                            );
                            cx.outcome_ref(action, Some(o), None);
                        }
                    }
                    for k in on.keys().filter(unproduced) {
                        let hint = did_you_mean(k, info.outcomes.iter().map(String::as_str));
                        let declared = info
                            .outcomes
                            .iter()
                            .filter(|o| !on.contains_key(*o))
                            .find(|o| near(k, o));
                        cx.push(
                            format!("{at}.on.{k}"),
                            format!("action `{action}` never produces outcome `{k}`"),
                            hint,
                        );
                        cx.outcome_ref(action, declared, Some(k));
                    }
                    if !info.secure {
                        for i in info.inputs.iter().filter(|i| secure_vars.contains(*i)) {
                            cx.push(
                                format!("{at}.action"),
                                format!("secure value `{i}` would reach non-secure action `{action}`"),
                                Some("only actions marked `secure: true` (HTTPS) may receive secrets".into()),
                            );
                        }
                    }
                }
            }
        }
        Kind::ComfortLoop { spec, on_exhausted } => {
            need(
                cx,
                "on_exhausted",
                on_exhausted,
                "a comfort loop needs `on_exhausted` for when its rounds run out",
            );
            let c = format!("{at}.comfort_loop");
            cx.prompt(&format!("{c}.music"), &spec.music);
            cx.prompts(&format!("{c}.menu"), &spec.menu, secure_vars);
            cx.keys(&format!("{c}.options"), spec.options.keys());
            if spec.rounds == 0 {
                cx.push(format!("{c}.rounds"), "rounds must be at least 1", None);
            }
            if spec.choice_pause.0.is_zero() {
                cx.push(
                    format!("{c}.choice_pause"),
                    "choice_pause must be longer than zero (a menu key needs a pause to be told from a code's first digit)",
                    None,
                );
            }
            if spec.seconds.0.is_zero() {
                cx.push(
                    format!("{c}.seconds"),
                    "seconds must be longer than zero",
                    None,
                );
            }
            if let Some(t) = &spec.type_ahead {
                if let Some(target) = cx.flow.states.get(t) {
                    if !matches!(target.kind, Kind::Collect { .. }) {
                        cx.push(
                            format!("{c}.type_ahead"),
                            format!("type-ahead target `{t}` is not a collect"),
                            None,
                        );
                    }
                }
            }
        }
        Kind::Transfer { spec, on_refused } => {
            need(
                cx,
                "on_refused",
                on_refused,
                "a transfer needs `on_refused` for when the peer refuses REFER",
            );
            if !cx.catalog.transfer_targets.contains(&spec.target) {
                let hint = did_you_mean(
                    &spec.target,
                    cx.catalog.transfer_targets.iter().map(String::as_str),
                );
                cx.push(
                    format!("{at}.transfer.target"),
                    format!("transfer target `{}` is not in the config", spec.target),
                    hint,
                );
            }
            cx.token(
                format!("{at}.transfer.reason"),
                "a transfer reason",
                &spec.reason,
            );
        }
        Kind::Audit { spec, next } => {
            need(cx, "next", next, "an audit state needs `next`");
            cx.token(
                format!("{at}.audit.result"),
                "an audit result",
                &spec.result,
            );
            cx.token(
                format!("{at}.audit.reason"),
                "an audit reason",
                &spec.reason,
            );
        }
        Kind::Set { spec, next } => {
            need(cx, "next", next, "a set state needs `next`");
            for (k, src) in &spec.vars {
                if !is_ident(k) {
                    cx.push(
                        format!("{at}.set.vars.{k}"),
                        "variable names are letters, digits and `_`",
                        None,
                    );
                }
                match src.check() {
                    Ok(names) if !st.secure => {
                        for n in names.iter().filter(|n| secure_vars.contains(*n)) {
                            cx.push(
                                format!("{at}.set.vars.{k}"),
                                format!("secure value `{n}` is copied outside the secure segment"),
                                Some("mark this state `secure: true`".into()),
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(e) => cx.push(
                        format!("{at}.set.vars.{k}"),
                        format!("bad template: {e}"),
                        None,
                    ),
                }
            }
        }
        Kind::Hangup { spec } => {
            cx.prompts(&format!("{at}.hangup.prompt"), &spec.prompt, secure_vars)
        }
    }
}

/// Variables that hold secrets at run time.
fn secure_values(flow: &Flow, catalog: &Catalog) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for st in flow.states.values() {
        match &st.kind {
            Kind::Collect { spec, .. } if st.secure => {
                s.insert(spec.into.clone());
            }
            Kind::Action { name, .. } => {
                if let Some(info) = catalog.actions.get(name) {
                    if info.secure || st.secure {
                        s.extend(info.outputs.iter().cloned());
                    }
                }
            }
            _ => {}
        }
    }
    // `set` in a secure state propagates secrecy; iterate to a fixpoint.
    loop {
        let before = s.len();
        for st in flow.states.values() {
            if let Kind::Set { spec, .. } = &st.kind {
                for (k, src) in &spec.vars {
                    if let Ok(names) = src.check() {
                        if names.iter().any(|n| s.contains(n)) {
                            s.insert(k.clone());
                        }
                    }
                }
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// `secure_media: required` (on the flow or a state) needs the path a clear
/// call takes instead: `on_insecure_media`, an existing state that does not
/// itself require encrypted media.
fn check_insecure_media_path(cx: &mut Ctx) {
    use super::model::SecureMedia::Required;
    let flow = cx.flow;
    let requiring: Vec<String> = std::iter::once(("secure_media", flow.secure_media))
        .filter(|(_, m)| *m == Required)
        .map(|(k, _)| k.to_string())
        .chain(
            flow.states
                .iter()
                .filter(|(_, st)| st.secure_media == Required)
                .map(|(n, _)| format!("states.{n}.secure_media")),
        )
        .collect();
    match &flow.on_insecure_media {
        None => {
            if let Some(first) = requiring.first() {
                cx.push(
                    first.clone(),
                    "encrypted media is required but the flow has no `on_insecure_media` state",
                    Some("add `on_insecure_media: <state>` to the flow header: a path that tells the caller this line cannot take the request and transfers or hangs up".into()),
                );
            }
        }
        Some(to) => {
            cx.state_ref("on_insecure_media".into(), to);
            let itself = flow.states.get(to).is_some_and(|st| {
                st.secure_media == Required || (*to == flow.start && flow.secure_media == Required)
            });
            if itself {
                cx.push(
                    "on_insecure_media",
                    format!("`{to}` itself requires encrypted media"),
                    None,
                );
            }
        }
    }
}

fn check_reachable(cx: &mut Ctx) {
    let flow = cx.flow;
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    queue.push_back(flow.start.as_str());
    if let Some(e) = &flow.escape {
        queue.push_back(e.to.as_str());
    }
    if let Some(to) = &flow.on_insecure_media {
        queue.push_back(to.as_str());
    }
    while let Some(n) = queue.pop_front() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(st) = flow.states.get(n) {
            for e in st.edges() {
                queue.push_back(e.to);
            }
        }
    }
    for name in flow.states.keys() {
        if !seen.contains(name.as_str()) {
            cx.push(
                format!("states.{name}"),
                format!("state `{name}` is never reached from `start`"),
                Some("remove it or add a transition to it".into()),
            );
        }
    }
}

/// A cycle is bounded when it waits for the caller (a completed collect, a
/// menu key) or passes a counter that the cycle itself does not reset.
/// Everything else would spin without bound: report it.
fn check_loops(cx: &mut Ctx) {
    let flow = cx.flow;
    let graph = |skip: &BTreeSet<&str>| -> BTreeMap<&str, Vec<&str>> {
        flow.states
            .iter()
            .filter(|(n, _)| !skip.contains(n.as_str()))
            .map(|(n, st)| {
                let succ = st
                    .edges()
                    .into_iter()
                    .filter(|e| {
                        !e.caller_input && !skip.contains(e.to) && flow.states.contains_key(e.to)
                    })
                    .map(|e| e.to)
                    .collect();
                (n.as_str(), succ)
            })
            .collect()
    };
    let full = graph(&BTreeSet::new());
    let comp = scc(&full);
    let mut bounding: BTreeSet<&str> = BTreeSet::new();
    for (n, st) in &flow.states {
        let Some(c) = &st.counter else { continue };
        let reset_in_cycle = flow.states.iter().any(|(m, other)| {
            matches!(&other.kind, Kind::Set { spec, .. } if spec.reset_counters.contains(&c.name))
                && comp.get(m.as_str()) == comp.get(n.as_str())
        });
        if !reset_in_cycle {
            bounding.insert(n.as_str());
        }
    }
    let g = graph(&bounding);
    let comp = scc(&g);
    let mut groups: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (n, c) in &comp {
        groups.entry(*c).or_default().push(n);
    }
    let mut reported = BTreeSet::new();
    for members in groups.values() {
        let cyclic =
            members.len() > 1 || g.get(members[0]).is_some_and(|s| s.contains(&members[0]));
        if cyclic && reported.insert(members[0]) {
            let mut m = members.clone();
            m.sort();
            cx.push(
                format!("states.{}", m[0]),
                format!("unbounded loop through {}", m.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")),
                Some("add `counter: { name, max, on_exceeded }` to a state of the loop, or wait for caller input in it".into()),
            );
        }
    }
}

/// Tarjan's strongly connected components: node → component index.
fn scc<'a>(g: &BTreeMap<&'a str, Vec<&'a str>>) -> BTreeMap<&'a str, usize> {
    struct T<'a, 'g> {
        g: &'g BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        comp: BTreeMap<&'a str, usize>,
        ncomp: usize,
    }
    impl<'a> T<'a, '_> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for &w in self.g.get(v).map(Vec::as_slice).unwrap_or(&[]) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    self.comp.insert(w, self.ncomp);
                    if w == v {
                        break;
                    }
                }
                self.ncomp += 1;
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        comp: BTreeMap::new(),
        ncomp: 0,
    };
    for &v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.comp
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "did you mean `x`?" for the closest candidate within a small edit
/// distance.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_hints() {
        assert_eq!(levenshtein("chek_locked", "check_locked"), 1);
        assert_eq!(
            did_you_mean("chek_locked", ["check_locked", "goodbye"].into_iter()).as_deref(),
            Some("did you mean `check_locked`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["goodbye"].into_iter()), None);
    }
}
