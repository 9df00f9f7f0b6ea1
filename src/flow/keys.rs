//! Where keys typed ahead can go: a static reading of a [`Flow`] shared by
//! the interpreter (which keys may escape, which must be kept out of the
//! recording) and the validator (which states must say `guard_keys`).
//!
//! A key the caller types while a `play`, an `action` or a comfort loop's
//! music is running is *kept* (type-ahead) and consumed by the next state
//! that reads keys — a *consumer*: a `collect` (its entry), a `menu` (its
//! choice) or a `comfort_loop`. Between the two, the kept keys ride along
//! every transition that does not read keys (play `next`, action outcomes,
//! branches, audits, sets, counters, a refused transfer). A non-secure
//! collect takes the keys of its entry; what is left over after the entry
//! rides on along its `next`. A menu's choice flushes the rest, and so does
//! every failed entry.
//!
//! From that: the consumers a key kept in a state can reach, whether one of
//! them puts it into a secure value directly (a secure collect, or a comfort
//! loop whose type-ahead goes to one), and whether it can get there only as
//! the leftover of a non-secure entry. It is an over-approximation (every
//! action outcome, every branch is possible); it never runs the flow.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::model::{Flow, Kind, State};

/// The routes of keys kept in one state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// The first states that can consume a key kept here.
    pub consumers: BTreeSet<String>,
    /// A key kept here can become part of a secure value without passing a
    /// non-secure entry first.
    pub secure_direct: bool,
    /// A key kept here can become part of a secure value as what is left
    /// over after a non-secure entry (e.g. the code typed right after the
    /// employee ID and its `#`).
    pub secure_after_entry: bool,
}

impl Routes {
    /// Whether a key kept here can end up in a secure value at all.
    pub fn reaches_secure(&self) -> bool {
        self.secure_direct || self.secure_after_entry
    }
}

/// [`Routes`] for every state of a flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRoutes {
    states: BTreeMap<String, Routes>,
}

impl KeyRoutes {
    pub fn new(flow: &Flow) -> KeyRoutes {
        let mut states = BTreeMap::new();
        for (name, st) in &flow.states {
            let consumers = consumers_from(flow, exits(st));
            let mut seen = BTreeSet::new();
            let (direct, after) = secure_reach(flow, &consumers, &mut seen);
            states.insert(
                name.clone(),
                Routes {
                    consumers,
                    secure_direct: direct,
                    secure_after_entry: after,
                },
            );
        }
        KeyRoutes { states }
    }

    /// The routes of keys kept in `state` (empty for an unknown state).
    pub fn get(&self, state: &str) -> &Routes {
        static NONE: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
        self.states
            .get(state)
            .unwrap_or_else(|| NONE.get_or_init(Routes::default))
    }

    /// Keys left over after `collect`'s entry: where they can go.
    pub fn after_entry(&self, flow: &Flow, collect: &str) -> Routes {
        let Some(st) = flow.states.get(collect) else {
            return Routes::default();
        };
        let next = match &st.kind {
            Kind::Collect { next, .. } => next.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let consumers = consumers_from(flow, next);
        let mut seen = BTreeSet::new();
        let (direct, after) = secure_reach(flow, &consumers, &mut seen);
        Routes {
            consumers,
            secure_direct: direct,
            secure_after_entry: after,
        }
    }
}

/// A flow's [`KeyRoutes`], worked out the first time they are asked for
/// (by [`crate::flow::model::parse`], so at load) and shared by every call
/// through the `Arc<Flow>`: they depend on the flow alone.
#[derive(Clone, Default)]
pub struct KeyRoutesOnce(OnceLock<Arc<KeyRoutes>>);

impl Flow {
    /// Where keys kept in each state can go (see [`KeyRoutes`]).
    pub fn key_routes(&self) -> &Arc<KeyRoutes> {
        self.routes_once
            .0
            .get_or_init(|| Arc::new(KeyRoutes::new(self)))
    }
}

impl fmt::Debug for KeyRoutesOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRoutesOnce")
    }
}

/// Derived from the rest of the flow: two flows are equal or not whatever
/// each has worked out so far.
impl PartialEq for KeyRoutesOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One finding of [`check_guards`]: (state, message, hint).
pub type GuardFinding = (String, String, String);

/// The validator's half of the key guard: a non-secure state whose kept
/// keys can reach a secure collect directly must say `guard_keys: true`
/// (or be secure), and `guard_keys` where it cannot matter is a mistake.
/// Keys that reach a secure collect only as the leftover of a non-secure
/// entry need no declaration: the interpreter sorts the entry's keys from
/// the rest itself.
pub fn check_guards(flow: &Flow, routes: &KeyRoutes) -> Vec<GuardFinding> {
    let mut out = Vec::new();
    for (name, st) in &flow.states {
        let secure_target = if st.secure {
            None
        } else {
            direct_secure_target(flow, name, st, routes)
        };
        match (st.guard_keys, st.secure, secure_target) {
            (false, false, Some(target)) => out.push((
                name.clone(),
                format!(
                    "keys typed here can be type-ahead for secure collect `{target}`: \
                     they would be recorded before the secure segment begins"
                ),
                "add `guard_keys: true` (the caller's audio is kept out of the recording from \
                 the first such key), or make this state `secure: true`"
                    .to_string(),
            )),
            (true, true, _) => out.push((
                name.clone(),
                "`guard_keys` has no effect in a secure state (nothing in it is recorded)".into(),
                "remove `guard_keys`".into(),
            )),
            (true, false, None) => out.push((
                name.clone(),
                "`guard_keys` has no effect here: keys typed in this state cannot reach a \
                 secure collect as type-ahead"
                    .into(),
                "remove `guard_keys`".into(),
            )),
            _ => {}
        }
    }
    out
}

/// The secure collect a key kept in (non-secure) `st` can go to without a
/// non-secure entry in between, if any.
fn direct_secure_target(flow: &Flow, name: &str, st: &State, routes: &KeyRoutes) -> Option<String> {
    let secure_collect = |n: &str| {
        flow.states
            .get(n)
            .is_some_and(|t| t.secure && matches!(t.kind, Kind::Collect { .. }))
    };
    let via_comfort = |n: &str| match flow.states.get(n).map(|s| &s.kind) {
        Some(Kind::ComfortLoop { spec, .. }) => spec
            .type_ahead
            .as_deref()
            .filter(|t| secure_collect(t))
            .map(str::to_string),
        _ => None,
    };
    match &st.kind {
        // Keys typed during the music go straight to the type-ahead collect.
        Kind::ComfortLoop { .. } => via_comfort(name),
        Kind::Play { .. } | Kind::Action { .. } => {
            routes.get(name).consumers.iter().find_map(|c| {
                if secure_collect(c) {
                    Some(c.clone())
                } else {
                    via_comfort(c)
                }
            })
        }
        // Other kinds take no time (branch, audit, set), read the keys
        // themselves (collect, menu) or drop them (transfer, hangup).
        _ => None,
    }
}

/// Whether `st` reads keys itself (kept keys stop there).
pub fn is_consumer(st: &State) -> bool {
    matches!(
        st.kind,
        Kind::Collect { .. } | Kind::Menu { .. } | Kind::ComfortLoop { .. }
    )
}

/// The transitions kept keys ride along when `st` is left without reading
/// them (a consumer's own exits are not among them: it reads the keys).
fn exits(st: &State) -> Vec<&str> {
    match &st.kind {
        Kind::Play { next, .. } | Kind::Audit { next, .. } | Kind::Set { next, .. } => {
            next.iter().map(String::as_str).collect()
        }
        Kind::Action { on, .. } => on.values().map(String::as_str).collect(),
        Kind::Branch { cases, default } => cases
            .iter()
            .map(|c| c.to.as_str())
            .chain(default.iter().map(String::as_str))
            .collect(),
        Kind::Transfer { on_refused, .. } => on_refused.iter().map(String::as_str).collect(),
        Kind::Hangup { .. }
        | Kind::Collect { .. }
        | Kind::Menu { .. }
        | Kind::ComfortLoop { .. } => Vec::new(),
    }
}

/// The consumers reached from `start` (states about to be entered).
fn consumers_from<'a>(flow: &'a Flow, start: Vec<&'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue = start;
    while let Some(name) = queue.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(st) = flow.states.get(name) else {
            continue;
        };
        // Entering a state may be redirected by its counter.
        if let Some(c) = &st.counter {
            queue.push(&c.on_exceeded);
        }
        if is_consumer(st) {
            out.insert(name.to_string());
        } else {
            queue.extend(exits(st));
        }
    }
    out
}

/// (direct, after an entry) for a set of consumers; `seen` breaks cycles
/// through collects.
fn secure_reach(
    flow: &Flow,
    consumers: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> (bool, bool) {
    let mut direct = false;
    let mut after = false;
    for c in consumers {
        let Some(st) = flow.states.get(c) else {
            continue;
        };
        match &st.kind {
            Kind::Collect { next, .. } if st.secure => {
                direct = true;
                // Leftovers of a secure entry are inside the segment already.
                let _ = next;
            }
            Kind::Collect { next, .. } => {
                if !seen.insert(c.clone()) {
                    continue;
                }
                let more = consumers_from(flow, next.iter().map(String::as_str).collect());
                let (d, a) = secure_reach(flow, &more, seen);
                after |= d || a;
            }
            Kind::ComfortLoop { spec, .. } => {
                let target = spec.type_ahead.as_deref().and_then(|t| flow.states.get(t));
                if target.is_some_and(|t| t.secure && matches!(t.kind, Kind::Collect { .. })) {
                    direct = true;
                }
            }
            _ => {}
        }
    }
    (direct, after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::parse;
    use std::path::Path;

    fn shipped() -> Flow {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/sspr.yaml");
        crate::files::load_flow(&path).expect("sspr.yaml")
    }

    #[test]
    fn the_read_back_feeds_the_code_directly_the_welcome_only_after_the_id() {
        let f = shipped();
        let r = KeyRoutes::new(&f);
        let welcome = r.get("welcome");
        assert_eq!(welcome.consumers, BTreeSet::from(["get_id".to_string()]));
        assert!(!welcome.secure_direct && welcome.secure_after_entry);
        let announce = r.get("announce_sms");
        assert_eq!(announce.consumers, BTreeSet::from(["comfort".to_string()]));
        assert!(announce.secure_direct);
        let lookup = r.get("lookup");
        assert!(lookup.consumers.contains("get_id") && lookup.consumers.contains("comfort"));
        assert!(lookup.secure_direct);
        // After the PIN is reset nothing reads keys again.
        assert!(r.get("success_message").consumers.is_empty());
    }

    #[test]
    fn counters_and_refused_transfers_carry_keys() {
        let text = r#"
flow: t
version: "1"
start: a
states:
  a: { play: [p], next: b }
  b: { counter: { name: n, max: 1, on_exceeded: c }, transfer: { target: x, reason: r }, on_refused: d }
  c: { secure: true, collect: { into: pin, prompt: [p], max: 4 }, next: e, on_fail: e }
  d: { collect: { into: v, prompt: [p], max: 4 }, next: e, on_fail: e }
  e: { hangup: {} }
"#;
        let f = parse(text, Path::new("t.yaml")).expect("parse");
        let r = KeyRoutes::new(&f);
        assert_eq!(
            r.get("a").consumers,
            BTreeSet::from(["c".to_string(), "d".to_string()])
        );
        assert!(r.get("a").secure_direct);
        assert!(!r.get("d").reaches_secure());
    }
}
