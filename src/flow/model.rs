//! The flow file: serde types for `flows/*.yaml` and [`load`].
//!
//! Every table rejects unknown keys (`deny_unknown_fields`, and hand-written
//! visitors where serde's derive cannot), so a typo is a load error naming
//! the key, the file, the line and the column rather than a silently ignored
//! setting. A state is written as one mapping holding exactly one *kind* key
//! (`play`, `collect`, `menu`, `branch`, `action`, `comfort_loop`,
//! `transfer`, `audit`, `set`, `hangup`) plus the transition keys that kind
//! understands; [`RawState`] is that mapping and [`State`] the checked form.
//! Semantic checks (references, reachability, loops, secrets) live in
//! `validate`; this module only decides what the text *says*. Repeated keys
//! in a mapping (two states with one name) are load errors too.
//!
//! Header: `flow`, `version`, `start`, `language?`, `escape? { key, to }`,
//! `secure_media?` (`optional` | `required`), `on_insecure_media?` (a state),
//! `variables? { name: default }`, `states`. Every state may add `secure`,
//! `secure_media`, `guard_keys`, `attempt: begin` and
//! `counter { name, max, on_exceeded }`.
//! Kinds:
//!
//! | kind | keys |
//! |---|---|
//! | `play: [items]` | `barge_in?` (false), `next` |
//! | `collect: { into, prompt, min?(1), max, terminator?, first_digit_timeout?(5s), inter_digit_timeout?(3s), attempts?(3), no_input?, no_match?, pattern?, confirm? { prompt, mismatch }, barge_in?(true), escape?(false), restart?(true) }` | `next`, `on_fail`, `on_mismatch?` |
//! | `menu: { prompt, options { key: state }, timeout?(5s), attempts?(3), no_input?, no_match?, barge_in?(true) }` | `on_fail` |
//! | `branch: [ { var, equals \| is_set \| matches, to } ]` | `default` |
//! | `action: name` | `processing? [items]`, `on { outcome: state }` |
//! | `comfort_loop: { music, seconds, menu, options, menu_timeout?(5s), rounds, type_ahead?, choice_pause?(1500ms) }` | `on_exhausted` |
//! | `transfer: { target, reason }` | `on_refused` |
//! | `audit: { result, reason }` | `next` |
//! | `set: { vars? { name: template }, reset_counters? [names] }` | `next` |
//! | `hangup: { prompt? [items] }` | — |
//!
//! Play items: `name`, `{ digits: "{{ template }}" }`, `{ silence: 500ms }`.
//! Templates and patterns are compiled as the file is read ([`Template`],
//! [`Pattern`]), so a call only renders and matches; one that does not
//! compile is kept with its error for the validator to report.
//! Durations: `500ms`, `5s`, `1.5s`, `2m`, `1h` (the grammar of [`crate::duration`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

pub use super::pattern::Pattern;
pub use crate::template::Template;

/// Errors from [`load`]. Messages never contain variable values (a flow file
/// holds none), only names, positions and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        /// serde's description, including the offending key when there is
        /// one (`unknown field `spurious_key``).
        message: String,
    },
}

/// A whole flow file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The flow's name (audit records carry it).
    pub flow: String,
    /// Version string, copied into every audit record.
    pub version: String,
    /// The first state.
    pub start: String,
    /// Prompt language directory (`prompts/<language>/`); the config's
    /// default when absent.
    #[serde(default)]
    pub language: Option<String>,
    /// The "press 0 for an agent" key; see [`Escape`].
    #[serde(default)]
    pub escape: Option<Escape>,
    /// `required`: the whole flow needs encrypted media (SIP over TLS with
    /// SRTP); a call without it goes to `on_insecure_media` instead of `start`.
    #[serde(default)]
    pub secure_media: SecureMedia,
    /// Where a call goes instead of a state that needs encrypted media when its
    /// media is not (the "cannot be taken on this line" path).
    #[serde(default)]
    pub on_insecure_media: Option<String>,
    /// Defaults for flow variables; the config (and the runtime's call
    /// facts) may preset any of them before the call starts.
    #[serde(default, deserialize_with = "unique")]
    pub variables: BTreeMap<String, String>,
    #[serde(deserialize_with = "unique")]
    pub states: BTreeMap<String, State>,
    /// Where typed-ahead keys can go, worked out once per flow
    /// ([`Flow::key_routes`]) and shared by every call.
    #[serde(skip)]
    pub routes_once: super::keys::KeyRoutesOnce,
}

/// Whether a flow or a state needs encrypted media (TLS signalling + SRTP).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecureMedia {
    #[default]
    Optional,
    Required,
}

/// The agent key. Honoured while a prompt of a non-secure `play`, `menu`,
/// `action` (processing prompt) or `comfort_loop` menu plays or waits, and as
/// the very first key of a non-secure `collect` that sets `escape: true`.
/// Never inside a secure state, never as a menu key that the menu itself
/// maps, and never during comfort music that feeds type-ahead (those digits
/// belong to the code). See `docs/collect-timers.md`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Escape {
    pub key: String,
    pub to: String,
}

/// One item of a prompt list.
#[derive(Clone, Debug, PartialEq)]
pub enum PlayItem {
    /// A prompt by name (`welcome`).
    Prompt(String),
    /// A template whose result is spoken digit by digit with prompts
    /// `digit_0`..`digit_9` (`{ digits: "{{ mobile | last4 }}" }`),
    /// compiled as the flow is read.
    Digits(Template),
    /// Silence (`{ silence: 500ms }`).
    Silence(Duration),
}

impl<'de> Deserialize<'de> for PlayItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlayItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prompt name, `{ digits: TEMPLATE }` or `{ silence: DURATION }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PlayItem, E> {
                Ok(PlayItem::Prompt(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlayItem, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::custom("empty play item"))?;
                let item = match key.as_str() {
                    "digits" => PlayItem::Digits(map.next_value()?),
                    "silence" => PlayItem::Silence(map.next_value::<Dur>()?.0),
                    other => return Err(de::Error::unknown_field(other, &["digits", "silence"])),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::unknown_field(&extra, &[]));
                }
                Ok(item)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserialize a map whose keys must be unique: YAML allows a repeated key
/// and serde would keep the last one silently; in a flow that is always a
/// mistake (two states with one name, one menu key twice).
fn unique<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping with unique keys")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = map.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(de::Error::custom(format!("duplicate key `{k}`")));
                }
                let v = map.next_value()?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(std::marker::PhantomData))
}

fn unique_opt<'de, D, T>(d: D) -> Result<Option<BTreeMap<String, T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    unique(d).map(Some)
}

/// A duration in the crate's one grammar ([`crate::duration`]: `500ms`, `5s`, `1.5s`, `2m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::duration::deserialize(d).map(Dur)
    }
}

/// Bounded-loop counter on a state: every entry increments `name`; the entry
/// that would make it exceed `max` goes to `on_exceeded` instead of running
/// the state. Counters are per call and shared by name between states.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    pub name: String,
    pub max: u32,
    pub on_exceeded: String,
}

/// `attempt: begin` marks where a reset attempt starts (see `interp`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttemptMark {
    Begin,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// Variable that receives the digits (a `Secret` in a secure state).
    pub into: String,
    pub prompt: Vec<PlayItem>,
    #[serde(default = "one")]
    pub min: u32,
    pub max: u32,
    /// Ends the entry; not part of the value. None: only `max` or the
    /// inter-digit timeout end it.
    #[serde(default)]
    pub terminator: Option<String>,
    #[serde(default = "five_s")]
    pub first_digit_timeout: Dur,
    #[serde(default = "three_s")]
    pub inter_digit_timeout: Dur,
    #[serde(default = "three")]
    pub attempts: u32,
    #[serde(default)]
    pub no_input: Vec<PlayItem>,
    #[serde(default)]
    pub no_match: Vec<PlayItem>,
    /// Regular expression the whole entry must match (anchored).
    #[serde(default)]
    pub pattern: Option<Pattern>,
    /// Confirm by re-entry.
    #[serde(default)]
    pub confirm: Option<Confirm>,
    #[serde(default = "yes")]
    pub barge_in: bool,
    /// Honour the flow's escape key as the first key of this entry.
    #[serde(default)]
    pub escape: bool,
    /// `*` starts the entry (or its confirmation) again: the keys so far
    /// are dropped, the prompt plays again, no attempt is used. With
    /// `false`, `*` is an ordinary key of the value.
    #[serde(default = "yes")]
    pub restart: bool,
}

/// The key that restarts an entry (see [`Collect::restart`]).
pub const RESTART_KEY: char = '*';

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub prompt: Vec<PlayItem>,
    pub mismatch: Vec<PlayItem>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub prompt: Vec<PlayItem>,
    /// Key → state.
    #[serde(deserialize_with = "unique")]
    pub options: BTreeMap<String, String>,
    #[serde(default = "five_s")]
    pub timeout: Dur,
    #[serde(default = "three")]
    pub attempts: u32,
    #[serde(default)]
    pub no_input: Vec<PlayItem>,
    #[serde(default)]
    pub no_match: Vec<PlayItem>,
    #[serde(default = "yes")]
    pub barge_in: bool,
}

/// One branch case; the first that holds wins. Exactly one test per case.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BranchCase {
    pub var: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub is_set: Option<bool>,
    /// Anchored regular expression.
    #[serde(default)]
    pub matches: Option<Pattern>,
    pub to: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComfortLoop {
    /// Hold music prompt, repeated for `seconds`.
    pub music: String,
    pub seconds: Dur,
    /// Menu played after the music of each round.
    pub menu: Vec<PlayItem>,
    #[serde(deserialize_with = "unique")]
    pub options: BTreeMap<String, String>,
    /// How long to wait for a menu key after the menu prompt.
    #[serde(default = "five_s")]
    pub menu_timeout: Dur,
    pub rounds: u32,
    /// Digits typed during the music go to this state (a collect) as
    /// type-ahead.
    #[serde(default)]
    pub type_ahead: Option<String>,
    /// Once the menu has been offered, a lone option key is the menu
    /// choice when this much silence follows it (or the type-ahead
    /// collect's terminator); a key within it makes a run of digits, which
    /// is the code. See `docs/collect-timers.md`.
    #[serde(default = "choice_pause")]
    pub choice_pause: Dur,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// A transfer target name from the config.
    pub target: String,
    /// A fixed token carried in the REFER header; never caller data.
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// `success`, `failure`, ... (a fixed token).
    pub result: String,
    /// A fixed token (`pin_reset`, `otp_exhausted`, ...).
    pub reason: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Variable → template (plain unless it reads a secret in a secure state).
    #[serde(default, deserialize_with = "unique")]
    pub vars: BTreeMap<String, Template>,
    /// Counters set back to zero.
    #[serde(default)]
    pub reset_counters: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hangup {
    #[serde(default)]
    pub prompt: Vec<PlayItem>,
}

/// A state as written: one kind key plus the transitions it uses.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    #[serde(default)]
    pub secure: bool,
    #[serde(default)]
    pub secure_media: SecureMedia,
    #[serde(default)]
    pub guard_keys: bool,
    #[serde(default)]
    pub attempt: Option<AttemptMark>,
    #[serde(default)]
    pub counter: Option<Counter>,
    #[serde(default)]
    pub play: Option<Vec<PlayItem>>,
    #[serde(default)]
    pub barge_in: Option<bool>,
    #[serde(default)]
    pub collect: Option<Collect>,
    #[serde(default)]
    pub menu: Option<Menu>,
    #[serde(default)]
    pub branch: Option<Vec<BranchCase>>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub processing: Option<Vec<PlayItem>>,
    #[serde(default)]
    pub comfort_loop: Option<ComfortLoop>,
    #[serde(default)]
    pub transfer: Option<Transfer>,
    #[serde(default)]
    pub audit: Option<Audit>,
    #[serde(default)]
    pub set: Option<SetSpec>,
    #[serde(default)]
    pub hangup: Option<Hangup>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub on_fail: Option<String>,
    #[serde(default)]
    pub on_mismatch: Option<String>,
    #[serde(default, deserialize_with = "unique_opt")]
    pub on: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub on_refused: Option<String>,
    #[serde(default)]
    pub on_exhausted: Option<String>,
}

/// A checked state: its kind with the transitions that kind uses. Missing
/// transitions are `None` here and reported by the validator (which can name
/// the state and give a hint); the interpreter treats them as flow errors.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub secure: bool,
    /// Entering this state needs encrypted media (else `on_insecure_media`).
    pub secure_media: SecureMedia,
    /// Keys typed in this (non-secure) state may be the start of a secret
    /// (a code typed during its read-back): the caller's audio is kept out
    /// of the recording from the first such key. The validator asks for it
    /// wherever kept keys can reach a secure collect directly.
    pub guard_keys: bool,
    pub attempt: Option<AttemptMark>,
    pub counter: Option<Counter>,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Play {
        items: Vec<PlayItem>,
        /// A key stops the prompt and moves on (the key is kept as
        /// type-ahead). Default false: keys are kept, the prompt finishes.
        barge_in: bool,
        next: Option<String>,
    },
    Collect {
        spec: Collect,
        next: Option<String>,
        on_fail: Option<String>,
        on_mismatch: Option<String>,
    },
    Menu {
        spec: Menu,
        on_fail: Option<String>,
    },
    Branch {
        cases: Vec<BranchCase>,
        default: Option<String>,
    },
    Action {
        name: String,
        processing: Vec<PlayItem>,
        on: BTreeMap<String, String>,
    },
    ComfortLoop {
        spec: ComfortLoop,
        on_exhausted: Option<String>,
    },
    Transfer {
        spec: Transfer,
        on_refused: Option<String>,
    },
    Audit {
        spec: Audit,
        next: Option<String>,
    },
    Set {
        spec: SetSpec,
        next: Option<String>,
    },
    Hangup {
        spec: Hangup,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Play { .. } => "play",
            Kind::Collect { .. } => "collect",
            Kind::Menu { .. } => "menu",
            Kind::Branch { .. } => "branch",
            Kind::Action { .. } => "action",
            Kind::ComfortLoop { .. } => "comfort_loop",
            Kind::Transfer { .. } => "transfer",
            Kind::Audit { .. } => "audit",
            Kind::Set { .. } => "set",
            Kind::Hangup { .. } => "hangup",
        }
    }
}

/// A transition out of a state, for the validator and the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge<'a> {
    /// Key path under the state (`next`, `on.locked`, `menu.options.1`).
    pub key: String,
    /// Label for graphs.
    pub label: String,
    pub to: &'a str,
    /// Taking it needs a successful caller entry (a completed collect or a
    /// menu key): a cycle through such an edge waits for the caller every
    /// round.
    pub caller_input: bool,
}

impl State {
    /// Every transition out of this state, including the counter's.
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out = Vec::new();
        fn e<'a>(
            out: &mut Vec<Edge<'a>>,
            key: &str,
            label: &str,
            to: &'a Option<String>,
            input: bool,
        ) {
            if let Some(to) = to {
                out.push(Edge {
                    key: key.to_string(),
                    label: label.to_string(),
                    to,
                    caller_input: input,
                });
            }
        }
        if let Some(c) = &self.counter {
            out.push(Edge {
                key: "counter.on_exceeded".into(),
                label: format!("{} > {}", c.name, c.max),
                to: &c.on_exceeded,
                caller_input: false,
            });
        }
        match &self.kind {
            Kind::Play { next, .. } => e(&mut out, "next", "", next, false),
            Kind::Collect {
                next,
                on_fail,
                on_mismatch,
                ..
            } => {
                e(&mut out, "next", "entered", next, true);
                e(&mut out, "on_fail", "fail", on_fail, false);
                e(&mut out, "on_mismatch", "mismatch", on_mismatch, false);
            }
            Kind::Menu { spec, on_fail } => {
                for (k, to) in &spec.options {
                    out.push(Edge {
                        key: format!("menu.options.{k}"),
                        label: k.clone(),
                        to,
                        caller_input: true,
                    });
                }
                e(&mut out, "on_fail", "fail", on_fail, false);
            }
            Kind::Branch { cases, default } => {
                for (i, c) in cases.iter().enumerate() {
                    let label = if let Some(v) = &c.equals {
                        format!("{} == {v}", c.var)
                    } else if let Some(s) = c.is_set {
                        format!("{} {}", c.var, if s { "set" } else { "unset" })
                    } else if let Some(m) = &c.matches {
                        format!("{} ~ {m}", c.var)
                    } else {
                        c.var.clone()
                    };
                    out.push(Edge {
                        key: format!("branch.{i}.to"),
                        label,
                        to: &c.to,
                        caller_input: false,
                    });
                }
                e(&mut out, "default", "default", default, false);
            }
            Kind::Action { on, .. } => {
                for (k, to) in on {
                    out.push(Edge {
                        key: format!("on.{k}"),
                        label: k.clone(),
                        to,
                        caller_input: false,
                    });
                }
            }
            Kind::ComfortLoop { spec, on_exhausted } => {
                for (k, to) in &spec.options {
                    out.push(Edge {
                        key: format!("comfort_loop.options.{k}"),
                        label: k.clone(),
                        to,
                        caller_input: true,
                    });
                }
                e(
                    &mut out,
                    "comfort_loop.type_ahead",
                    "type-ahead",
                    &spec.type_ahead,
                    true,
                );
                e(&mut out, "on_exhausted", "exhausted", on_exhausted, false);
            }
            Kind::Transfer { on_refused, .. } => {
                e(&mut out, "on_refused", "refused", on_refused, false)
            }
            Kind::Audit { next, .. } | Kind::Set { next, .. } => {
                e(&mut out, "next", "", next, false)
            }
            Kind::Hangup { .. } => {}
        }
        out
    }
}

const KINDS: &str =
    "play, collect, menu, branch, action, comfort_loop, transfer, audit, set, hangup";

impl TryFrom<RawState> for State {
    type Error = String;

    fn try_from(r: RawState) -> Result<Self, String> {
        let present: Vec<&str> = [
            ("play", r.play.is_some()),
            ("collect", r.collect.is_some()),
            ("menu", r.menu.is_some()),
            ("branch", r.branch.is_some()),
            ("action", r.action.is_some()),
            ("comfort_loop", r.comfort_loop.is_some()),
            ("transfer", r.transfer.is_some()),
            ("audit", r.audit.is_some()),
            ("set", r.set.is_some()),
            ("hangup", r.hangup.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect();
        let kind_name = match present.as_slice() {
            [one] => *one,
            [] => return Err(format!("a state needs one of: {KINDS}")),
            many => {
                return Err(format!(
                    "a state has exactly one kind, found: {}",
                    many.join(", ")
                ))
            }
        };
        // Which transition keys each kind accepts; anything else is a
        // mistake worth a load error (it would be silently ignored).
        let allowed: &[&str] = match kind_name {
            "play" => &["next", "barge_in"],
            "collect" => &["next", "on_fail", "on_mismatch"],
            "menu" => &["on_fail"],
            "branch" => &["default"],
            "action" => &["on", "processing"],
            "comfort_loop" => &["on_exhausted"],
            "transfer" => &["on_refused"],
            "audit" | "set" => &["next"],
            _ => &[],
        };
        let used = [
            ("next", r.next.is_some()),
            ("on_fail", r.on_fail.is_some()),
            ("on_mismatch", r.on_mismatch.is_some()),
            ("on", r.on.is_some()),
            ("default", r.default.is_some()),
            ("on_refused", r.on_refused.is_some()),
            ("on_exhausted", r.on_exhausted.is_some()),
            ("processing", r.processing.is_some()),
            ("barge_in", r.barge_in.is_some()),
        ];
        for (key, is_used) in used {
            if is_used && !allowed.contains(&key) {
                return Err(format!(
                    "key `{key}` does not apply to a `{kind_name}` state"
                ));
            }
        }
        let kind = if let Some(items) = r.play {
            Kind::Play {
                items,
                barge_in: r.barge_in.unwrap_or(false),
                next: r.next,
            }
        } else if let Some(spec) = r.collect {
            Kind::Collect {
                spec,
                next: r.next,
                on_fail: r.on_fail,
                on_mismatch: r.on_mismatch,
            }
        } else if let Some(spec) = r.menu {
            Kind::Menu {
                spec,
                on_fail: r.on_fail,
            }
        } else if let Some(cases) = r.branch {
            Kind::Branch {
                cases,
                default: r.default,
            }
        } else if let Some(name) = r.action {
            Kind::Action {
                name,
                processing: r.processing.unwrap_or_default(),
                on: r.on.unwrap_or_default(),
            }
        } else if let Some(spec) = r.comfort_loop {
            Kind::ComfortLoop {
                spec,
                on_exhausted: r.on_exhausted,
            }
        } else if let Some(spec) = r.transfer {
            Kind::Transfer {
                spec,
                on_refused: r.on_refused,
            }
        } else if let Some(spec) = r.audit {
            Kind::Audit { spec, next: r.next }
        } else if let Some(spec) = r.set {
            Kind::Set { spec, next: r.next }
        } else if let Some(spec) = r.hangup {
            Kind::Hangup { spec }
        } else {
            return Err(format!("a state needs one of: {KINDS}"));
        };
        Ok(State {
            secure: r.secure,
            secure_media: r.secure_media,
            guard_keys: r.guard_keys,
            attempt: r.attempt,
            counter: r.counter,
            kind,
        })
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawState::deserialize(d)?;
        State::try_from(raw).map_err(de::Error::custom)
    }
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn yes() -> bool {
    true
}
fn five_s() -> Dur {
    Dur(Duration::from_secs(5))
}
fn three_s() -> Dur {
    Dur(Duration::from_secs(3))
}
fn choice_pause() -> Dur {
    Dur(Duration::from_millis(1500))
}

/// Parse flow text; `file` only names the source in errors. Templates and
/// patterns are compiled here, and the key routes worked out, so a call
/// through the flow only uses them.
pub fn parse(text: &str, file: &Path) -> Result<Flow, FlowError> {
    let flow: Flow = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        FlowError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    flow.key_routes();
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Flow, FlowError> {
        parse(text, Path::new("t.yaml"))
    }

    #[test]
    fn parses_kinds_and_items() {
        let f = p(r#"
flow: t
version: "1"
start: a
states:
  a: { play: [welcome, { digits: "{{ x }}" }, { silence: 500ms }], next: b }
  b: { hangup: {} }
"#)
        .unwrap();
        match &f.states["a"].kind {
            Kind::Play {
                items,
                next,
                barge_in,
            } => {
                assert_eq!(
                    items,
                    &vec![
                        PlayItem::Prompt("welcome".into()),
                        PlayItem::Digits(Template::new("{{ x }}", crate::template::Escaping::None)),
                        PlayItem::Silence(Duration::from_millis(500))
                    ]
                );
                assert_eq!(next.as_deref(), Some("b"));
                assert!(!barge_in);
            }
            k => panic!("wrong kind {k:?}"),
        }
    }

    #[test]
    fn errors_name_line_column_and_key() {
        let cases = [
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { hangup: {}, spurious: 1 }\n",
                "spurious",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { play: [{ digitz: x }] }\n",
                "digitz",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { play: [x], hangup: {} }\n",
                "exactly one kind",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { play: [x], on_fail: b }\n",
                "on_fail",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { play: [{ silence: 5 }] }\n",
                "needs a unit",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { hangup: {} }\n  a: { hangup: {} }\n",
                "duplicate key `a`",
                5,
            ),
            (
                "flow: t\nversion: '1'\nstart: a\nstates:\n  a: { action: x, on: { ok: a, ok: a } }\n",
                "duplicate key `ok`",
                5,
            ),
        ];
        for (text, needle, line) in cases {
            let err = p(text).unwrap_err();
            let FlowError::Parse {
                line: l,
                column,
                message,
                ..
            } = &err
            else {
                panic!("{err}")
            };
            assert!(message.contains(needle), "{needle}: {message}");
            assert_eq!(*l, line, "{needle}: {err}");
            assert!(*column > 0);
            assert!(err.to_string().starts_with("t.yaml:5:"), "{err}");
        }
    }
}
