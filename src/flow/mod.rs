//! Call flows: the YAML model (`model`, with its regular expressions in
//! `pattern`), its static checks (`validate`), the
//! sans-IO interpreter that walks one call through a flow (`interp`), where
//! typed-ahead keys can go (`keys`, read by both) and renderings for people
//! (`graph`).
//!
//! Nothing here touches a clock, a socket or a file (flow files are read by
//! `crate::files::load_flow`); the runtime feeds events with an `Instant` and executes
//! the [`interp::Command`]s the interpreter emits. Action execution, prompt
//! audio and SIP transfer live elsewhere.

use std::collections::{BTreeMap, BTreeSet};

pub mod graph;
pub mod interp;
pub mod keys;
pub mod model;
pub mod pattern;
pub mod validate;

pub use model::{Flow, FlowError};

/// What the rest of the configuration offers a flow: the validator checks
/// every name a flow uses against it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub prompts: BTreeSet<String>,
    pub actions: BTreeMap<String, ActionInfo>,
    pub transfer_targets: BTreeSet<String>,
}

/// What the validator needs to know about one data action.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionInfo {
    /// Every outcome it can produce, including `timeout` and `error`.
    pub outcomes: Vec<String>,
    /// May receive secrets (HTTPS only); its outputs are secret too.
    pub secure: bool,
    /// Variables its templates read.
    pub inputs: Vec<String>,
    /// Variables it sets.
    pub outputs: Vec<String>,
}

pub use graph::{to_dot, to_mermaid};
pub use interp::{digit_prompt, Command, Interpreter, Say, TimelineEvent};
pub use validate::{validate, Diagnostic, OutcomeRef};
