//! The flow interpreter: walks one call through a [`Flow`], sans-IO.
//!
//! Inputs carry an `Instant` (`handle_digit`, `handle_play_finished`,
//! `handle_action_result`, `handle_transfer_result`, `handle_hangup`,
//! `handle_timeout`); outputs are [`Command`]s drained with
//! `poll_command()`, and the one deadline the interpreter cares about is
//! `poll_timeout()`. It never reads a clock, plays audio, calls HTTP or
//! sends SIP; it says what should happen and when it wants to be woken.
//!
//! Secure segments: entering a `secure: true` state emits `Secure(true)`,
//! leaving it `Secure(false)`, and every exit (flow hangup, caller hangup,
//! transfer, error) emits `Secure(false)` first if needed. Digits collected
//! in a secure state are stored as [`Secret`]s and shown as `*` in the
//! timeline; no per-digit event is ever emitted. The escape key is never
//! honoured in a secure state.
//!
//! Audit: a state with `attempt: begin` opens a reset attempt; an `audit`
//! state emits `Command::Audit` and closes it. If the call ends while an
//! attempt is open, the interpreter emits exactly one audit itself
//! (`abandoned`/`caller_hangup[_in_secure_segment]`,
//! `transferred`/`<transfer reason>`, `failure`/`<reason>_transfer_refused`,
//! `incomplete`/`flow_ended_without_result`, `error`/`flow_error`).
//!
//! Collect timer semantics are documented (and table-tested) in
//! `docs/collect-timers.md`. It deliberately does not time out actions
//! (the action executor reports `timeout`) nor bound the call's length (the
//! runtime does).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::secret::Secret;
use crate::template::{Escaping, Templates};
use crate::vars::{Value, Vars};

use super::model::{self, Collect, ComfortLoop, Flow, Kind, Menu, State};

/// One piece of audio to play: the media layer's own type.
pub use crate::media::PlayItem;

/// What the runtime must do. Drain with [`Interpreter::poll_command`] after
/// every input.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Play `items`, replacing anything playing; report
    /// `handle_play_finished(id)` when done. `barge_in` tells the media layer
    /// a key may cut it short (the interpreter also sends `StopPlayback`
    /// when it barges in).
    Play {
        id: u64,
        items: Vec<PlayItem>,
        barge_in: bool,
    },
    StopPlayback,
    /// Run a data action; answer with `handle_action_result(id, ..)`.
    /// Secrets are included only when the running state is secure (the
    /// executor still renders them only into a `secure: true` action).
    RunAction {
        id: u64,
        action: String,
        vars: Vars,
    },
    /// SIP REFER; answer with `handle_transfer_result`. `reason` is a
    /// fixed token from the flow, never caller data.
    Transfer {
        target: String,
        reason: String,
    },
    /// End the call (BYE). The interpreter is finished afterwards.
    Hangup,
    Audit {
        result: String,
        reason: String,
    },
    /// Recording suppression on/off (secure segment boundaries).
    Secure(bool),
    Timeline(TimelineEvent),
}

/// The per-call interaction timeline. Never carries a secret: digits
/// collected in a secure state are shown as `*`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TimelineEvent {
    StateEntered {
        state: String,
        secure: bool,
    },
    PromptPlayed {
        prompts: Vec<String>,
    },
    DigitsCollected {
        var: String,
        shown: String,
    },
    NoInput {
        state: String,
        attempt: u32,
    },
    NoMatch {
        state: String,
        attempt: u32,
    },
    Mismatch {
        state: String,
        attempt: u32,
    },
    CounterExceeded {
        counter: String,
        state: String,
    },
    Escape {
        from: String,
    },
    ActionStarted {
        action: String,
    },
    ActionFinished {
        action: String,
        outcome: String,
        #[serde(rename = "latency_ms", serialize_with = "millis")]
        latency: Duration,
    },
    TransferRequested {
        target: String,
        reason: String,
    },
    TransferResult {
        accepted: bool,
    },
    Hangup {
        by_caller: bool,
    },
    FlowError {
        state: String,
        message: String,
    },
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
}

/// Immediate transitions allowed per input before the flow is declared
/// looping (the validator rejects such flows; this is the runtime fuse).
const MAX_HOPS: u32 = 100;

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(Templates::new)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    NoInput,
    NoMatch,
    Mismatch,
}

/// Entry in progress of a `collect`.
#[derive(Debug)]
struct CollectRun {
    failures: u32,
    /// `Some` during the confirm leg: the first entry.
    first: Option<Secret>,
    digits: Secret,
    /// Prompt currently playing.
    prompt: Option<u64>,
    /// Keys heard while a non-barge-in prompt played.
    pending: VecDeque<char>,
}

#[derive(Debug)]
struct MenuRun {
    failures: u32,
    prompt: Option<u64>,
    pending: VecDeque<char>,
}

#[derive(Debug)]
enum ComfortPart {
    Music { id: u64 },
    Menu { prompt: Option<u64> },
}

#[derive(Debug)]
struct ComfortRun {
    round: u32,
    part: ComfortPart,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Play {
        id: u64,
        barge_in: bool,
    },
    Collect(CollectRun),
    Menu(MenuRun),
    Action {
        id: u64,
        started: Instant,
        processing: Option<u64>,
    },
    Comfort(ComfortRun),
    Transfer,
    Hangup {
        id: Option<u64>,
    },
    Done,
}

/// One call's walk through a flow.
pub struct Interpreter {
    flow: Arc<Flow>,
    vars: Vars,
    counters: BTreeMap<String, u32>,
    state: String,
    phase: Phase,
    secure: bool,
    attempt_open: bool,
    refused_reason: Option<String>,
    type_ahead: VecDeque<char>,
    next_id: u64,
    deadline: Option<Instant>,
    commands: VecDeque<Command>,
    hops: u32,
}

impl Interpreter {
    /// Start a call at the flow's `start` state. `vars` holds the call facts
    /// (`ani`, `dnis`, `call_id`) and config presets; the flow's
    /// `variables:` fill in whatever is missing.
    pub fn new(now: Instant, flow: Arc<Flow>, mut vars: Vars) -> Self {
        for (k, v) in &flow.variables {
            if vars.get(k).is_none() {
                vars.set_plain(k.clone(), v.clone());
            }
        }
        let start = flow.start.clone();
        let mut me = Interpreter {
            flow,
            vars,
            counters: BTreeMap::new(),
            state: String::new(),
            phase: Phase::Idle,
            secure: false,
            attempt_open: false,
            refused_reason: None,
            type_ahead: VecDeque::new(),
            next_id: 1,
            deadline: None,
            commands: VecDeque::new(),
            hops: 0,
        };
        me.goto(now, &start);
        me
    }

    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            None
        } else {
            self.deadline
        }
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The current state's name (for logs and metrics labels: flow-defined,
    /// never caller data).
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Plain variables and masked secrets, for diagnostics.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    fn emit(&mut self, c: Command) {
        self.commands.push_back(c);
    }

    fn timeline(&mut self, e: TimelineEvent) {
        self.emit(Command::Timeline(e));
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- inputs -------------------------------------------------------

    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        if self.is_finished() {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        let escape_key = self.flow.escape.as_ref().and_then(|e| e.key.chars().next());
        let is_escape = !st.secure && escape_key == Some(digit);
        match (&mut self.phase, &st.kind) {
            (Phase::Play { barge_in, .. }, Kind::Play { next, .. }) => {
                if is_escape {
                    return self.escape(now);
                }
                self.type_ahead.push_back(digit);
                if *barge_in {
                    self.emit(Command::StopPlayback);
                    self.follow(now, next.as_deref(), "next");
                }
            }
            (Phase::Collect(_), Kind::Collect { spec, .. }) => {
                self.collect_digit(now, st, spec, digit, is_escape);
            }
            (Phase::Menu(run), Kind::Menu { spec, .. }) => {
                if run.prompt.is_some() && !spec.barge_in {
                    run.pending.push_back(digit);
                    return;
                }
                if run.prompt.take().is_some() {
                    self.emit(Command::StopPlayback);
                }
                self.menu_key(now, st, spec, digit, is_escape);
            }
            (Phase::Action { .. }, _) => {
                if is_escape {
                    return self.escape(now);
                }
                self.type_ahead.push_back(digit);
            }
            (Phase::Comfort(run), Kind::ComfortLoop { spec, .. }) => match run.part {
                ComfortPart::Music { .. } => {
                    if let Some(target) = spec.type_ahead.clone() {
                        self.type_ahead.push_back(digit);
                        self.emit(Command::StopPlayback);
                        self.goto(now, &target);
                    } else if is_escape && !spec.options.contains_key(&digit.to_string()) {
                        self.escape(now);
                    } else {
                        self.emit(Command::StopPlayback);
                        self.comfort_key(now, spec, digit, false);
                    }
                }
                ComfortPart::Menu { ref mut prompt } => {
                    if prompt.take().is_some() {
                        self.emit(Command::StopPlayback);
                    }
                    self.comfort_key(now, spec, digit, is_escape);
                }
            },
            (Phase::Hangup { .. }, _) | (Phase::Transfer, _) | (Phase::Idle, _) => {
                // Keys after the flow decided to leave are kept for nothing.
            }
            _ => {}
        }
    }

    pub fn handle_play_finished(&mut self, now: Instant, id: u64) {
        if self.is_finished() {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        match (&mut self.phase, &st.kind) {
            (Phase::Play { id: playing, .. }, Kind::Play { next, .. }) if *playing == id => {
                self.follow(now, next.as_deref(), "next");
            }
            (Phase::Collect(run), Kind::Collect { spec, .. }) if run.prompt == Some(id) => {
                run.prompt = None;
                let pending: Vec<char> = run.pending.drain(..).collect();
                if pending.is_empty() {
                    self.deadline = Some(now + spec.first_digit_timeout.0);
                } else {
                    // Keys heard during a non-barge-in prompt count now.
                    for d in pending {
                        self.handle_digit(now, d);
                    }
                }
            }
            (Phase::Menu(run), Kind::Menu { spec, .. }) if run.prompt == Some(id) => {
                run.prompt = None;
                let first = run.pending.pop_front();
                run.pending.clear();
                match first {
                    Some(d) => {
                        let escape_key =
                            self.flow.escape.as_ref().and_then(|e| e.key.chars().next());
                        let is_escape = !st.secure && escape_key == Some(d);
                        self.menu_key(now, st, spec, d, is_escape)
                    }
                    None => self.deadline = Some(now + spec.timeout.0),
                }
            }
            (
                Phase::Action { processing, .. },
                Kind::Action {
                    processing: items, ..
                },
            ) if *processing == Some(id) => {
                // The processing prompt loops until the action answers.
                let id = self.id();
                if let Phase::Action { processing, .. } = &mut self.phase {
                    *processing = Some(id);
                }
                self.play(id, items, false);
            }
            (Phase::Comfort(run), Kind::ComfortLoop { spec, .. }) => match run.part {
                ComfortPart::Music { id: playing } if playing == id => {
                    // Music shorter than the round: play it again.
                    let new = self.next_id;
                    self.next_id += 1;
                    if let Phase::Comfort(run) = &mut self.phase {
                        run.part = ComfortPart::Music { id: new };
                    }
                    let music = spec.music.clone();
                    self.emit_play(new, vec![PlayItem::Prompt(music)], true);
                }
                ComfortPart::Menu { prompt: Some(p) } if p == id => {
                    run.part = ComfortPart::Menu { prompt: None };
                    self.deadline = Some(now + spec.menu_timeout.0);
                }
                _ => {}
            },
            (Phase::Hangup { id: Some(playing) }, _) if *playing == id => self.finish_hangup(),
            _ => {}
        }
    }

    pub fn handle_action_result(&mut self, now: Instant, id: u64, outcome: &str, outputs: Vars) {
        if self.is_finished() {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        let (
            Phase::Action {
                id: waiting,
                started,
                processing,
            },
            Kind::Action { name, on, .. },
        ) = (&self.phase, &st.kind)
        else {
            return;
        };
        if *waiting != id {
            return;
        }
        let latency = now.saturating_duration_since(*started);
        if processing.is_some() {
            self.emit(Command::StopPlayback);
        }
        self.phase = Phase::Idle;
        for (k, v) in outputs.iter() {
            // Whatever a secure state's action returns stays secret.
            let v = match v {
                Value::Plain(p) if st.secure => Value::Secret(Secret::new(p.clone())),
                other => other.clone(),
            };
            self.vars.set(k.clone(), v);
        }
        let outcome_token = if on.contains_key(outcome) {
            outcome
        } else {
            "error"
        };
        self.timeline(TimelineEvent::ActionFinished {
            action: name.clone(),
            outcome: outcome_token.to_string(),
            latency,
        });
        let to = on.get(outcome_token).cloned();
        self.follow(now, to.as_deref(), &format!("on.{outcome_token}"));
    }

    pub fn handle_transfer_result(&mut self, now: Instant, accepted: bool) {
        if !matches!(self.phase, Phase::Transfer) {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        let Kind::Transfer { spec, on_refused } = &st.kind else {
            return;
        };
        self.timeline(TimelineEvent::TransferResult { accepted });
        if accepted {
            if self.attempt_open {
                self.attempt_open = false;
                self.emit(Command::Audit {
                    result: "transferred".into(),
                    reason: spec.reason.clone(),
                });
            }
            self.timeline(TimelineEvent::Hangup { by_caller: false });
            self.emit(Command::Hangup);
            self.phase = Phase::Done;
            self.deadline = None;
        } else {
            self.refused_reason = Some(spec.reason.clone());
            self.phase = Phase::Idle;
            let to = on_refused;
            self.follow(now, to.as_deref(), "on_refused");
        }
    }

    /// The caller hung up (BYE, CANCEL, media timeout).
    pub fn handle_hangup(&mut self, now: Instant) {
        self.end_call(now, true, "caller_hangup");
    }

    /// The server ends the call (call limit, RTP timeout, shutdown after the
    /// drain limit): like a hangup, but an open attempt is audited with
    /// `reason` (a fixed token such as `shutdown`), not as the caller's doing.
    pub fn handle_abort(&mut self, now: Instant, reason: &str) {
        self.end_call(now, false, reason);
    }

    fn end_call(&mut self, _now: Instant, by_caller: bool, reason: &str) {
        if self.is_finished() {
            return;
        }
        self.timeline(TimelineEvent::Hangup { by_caller });
        let was_secure = self.secure;
        self.leave_secure();
        if self.attempt_open {
            self.attempt_open = false;
            let reason = if was_secure {
                format!("{reason}_in_secure_segment")
            } else {
                reason.to_string()
            };
            self.emit(Command::Audit {
                result: "abandoned".into(),
                reason,
            });
        }
        self.phase = Phase::Done;
        self.deadline = None;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if now >= d && !self.is_finished() => {}
            _ => return,
        }
        self.deadline = None;
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        match (&mut self.phase, &st.kind) {
            (Phase::Collect(run), Kind::Collect { spec, .. }) => {
                if run.digits.is_empty() {
                    self.collect_failure(now, st, spec, Failure::NoInput);
                } else {
                    self.finish_entry(now, st, spec);
                }
            }
            (Phase::Menu(_), Kind::Menu { spec, .. }) => {
                self.menu_failure(now, st, spec, Failure::NoInput);
            }
            (Phase::Comfort(run), Kind::ComfortLoop { spec, on_exhausted }) => match run.part {
                ComfortPart::Music { .. } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    run.part = ComfortPart::Menu { prompt: Some(id) };
                    self.emit(Command::StopPlayback);
                    self.play(id, &spec.menu, true);
                }
                ComfortPart::Menu { .. } => {
                    run.round += 1;
                    if run.round > spec.rounds {
                        let to = on_exhausted;
                        self.follow(now, to.as_deref(), "on_exhausted");
                    } else {
                        self.start_music(now, spec);
                    }
                }
            },
            _ => {}
        }
    }

    // ---- transitions --------------------------------------------------

    /// Follow an optional transition; a missing one is a flow error (the
    /// validator reports it before a call ever gets here).
    fn follow(&mut self, now: Instant, to: Option<&str>, key: &str) {
        match to {
            Some(to) => self.goto(now, to),
            None => self.fail(&format!("state has no `{key}` transition")),
        }
    }

    fn escape(&mut self, now: Instant) {
        let Some(esc) = self.flow.escape.clone() else {
            return;
        };
        self.timeline(TimelineEvent::Escape {
            from: self.state.clone(),
        });
        self.emit(Command::StopPlayback);
        self.goto(now, &esc.to);
    }

    fn leave_secure(&mut self) {
        if self.secure {
            self.secure = false;
            self.emit(Command::Secure(false));
        }
    }

    fn fail(&mut self, message: &str) {
        self.timeline(TimelineEvent::FlowError {
            state: self.state.clone(),
            message: message.to_string(),
        });
        self.leave_secure();
        if self.attempt_open {
            self.attempt_open = false;
            self.emit(Command::Audit {
                result: "error".into(),
                reason: "flow_error".into(),
            });
        }
        self.timeline(TimelineEvent::Hangup { by_caller: false });
        self.emit(Command::Hangup);
        self.phase = Phase::Done;
        self.deadline = None;
    }

    fn goto(&mut self, now: Instant, name: &str) {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return self.fail("too many transitions without waiting for anything (loop)");
        }
        self.deadline = None;
        self.phase = Phase::Idle;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(name) else {
            self.state = name.to_string();
            return self.fail("unknown state");
        };
        self.state = name.to_string();
        if let Some(c) = &st.counter {
            let n = self.counters.entry(c.name.clone()).or_insert(0);
            *n += 1;
            if *n > c.max {
                self.timeline(TimelineEvent::CounterExceeded {
                    counter: c.name.clone(),
                    state: name.to_string(),
                });
                let to = &c.on_exceeded;
                return self.goto(now, to);
            }
        }
        if st.secure != self.secure {
            self.secure = st.secure;
            self.emit(Command::Secure(st.secure));
        }
        if st.attempt == Some(model::AttemptMark::Begin) {
            self.attempt_open = true;
        }
        self.timeline(TimelineEvent::StateEntered {
            state: name.to_string(),
            secure: st.secure,
        });
        match &st.kind {
            Kind::Play {
                items,
                barge_in,
                next,
            } => {
                let Some(items) = self.render(items) else {
                    return;
                };
                if items.is_empty() {
                    return self.follow(now, next.as_deref(), "next");
                }
                let id = self.id();
                self.phase = Phase::Play {
                    id,
                    barge_in: *barge_in,
                };
                self.emit_play(id, items, *barge_in);
            }
            Kind::Collect { spec, .. } => {
                self.phase = Phase::Collect(CollectRun {
                    failures: 0,
                    first: None,
                    digits: Secret::default(),
                    prompt: None,
                    pending: VecDeque::new(),
                });
                self.start_leg(now, spec, &[], false);
            }
            Kind::Menu { spec, .. } => {
                self.phase = Phase::Menu(MenuRun {
                    failures: 0,
                    prompt: None,
                    pending: VecDeque::new(),
                });
                if let Some(d) = self.type_ahead.pop_front() {
                    self.type_ahead.clear();
                    let escape_key = self.flow.escape.as_ref().and_then(|e| e.key.chars().next());
                    return self.menu_key(now, st, spec, d, !st.secure && escape_key == Some(d));
                }
                self.menu_prompt(spec, &[]);
            }
            Kind::Branch { cases, default } => {
                let mut target = default.clone();
                for c in cases {
                    match self.case_holds(st, c) {
                        Ok(true) => {
                            target = Some(c.to.clone());
                            break;
                        }
                        Ok(false) => {}
                        Err(m) => return self.fail(&m),
                    }
                }
                self.follow(now, target.as_deref(), "default");
            }
            Kind::Action {
                name, processing, ..
            } => {
                let id = self.id();
                let mut vars = Vars::new();
                for (k, v) in self.vars.iter() {
                    if st.secure || !v.is_secret() {
                        vars.set(k.clone(), v.clone());
                    }
                }
                self.timeline(TimelineEvent::ActionStarted {
                    action: name.clone(),
                });
                self.emit(Command::RunAction {
                    id,
                    action: name.clone(),
                    vars,
                });
                let mut proc_id = None;
                if !processing.is_empty() {
                    let pid = self.id();
                    proc_id = Some(pid);
                    if !self.play(pid, processing, false) {
                        return;
                    }
                }
                self.phase = Phase::Action {
                    id,
                    started: now,
                    processing: proc_id,
                };
            }
            Kind::ComfortLoop { spec, .. } => {
                self.phase = Phase::Comfort(ComfortRun {
                    round: 1,
                    part: ComfortPart::Music { id: 0 },
                });
                if let (Some(target), false) = (spec.type_ahead.clone(), self.type_ahead.is_empty())
                {
                    return self.goto(now, &target);
                }
                self.start_music(now, spec);
            }
            Kind::Transfer { spec, .. } => {
                self.leave_secure();
                self.timeline(TimelineEvent::TransferRequested {
                    target: spec.target.clone(),
                    reason: spec.reason.clone(),
                });
                self.emit(Command::Transfer {
                    target: spec.target.clone(),
                    reason: spec.reason.clone(),
                });
                self.phase = Phase::Transfer;
            }
            Kind::Audit { spec, next } => {
                self.attempt_open = false;
                self.emit(Command::Audit {
                    result: spec.result.clone(),
                    reason: spec.reason.clone(),
                });
                self.follow(now, next.as_deref(), "next");
            }
            Kind::Set { spec, next } => {
                for (k, src) in &spec.vars {
                    let reads_secret = match templates().check(src) {
                        Ok(names) => names
                            .iter()
                            .any(|n| self.vars.get(n).is_some_and(Value::is_secret)),
                        Err(e) => return self.fail(&format!("set `{k}`: {e}")),
                    };
                    match templates().render(src, &self.vars, Escaping::None, st.secure) {
                        Ok(v) if reads_secret => self.vars.set_secret(k.clone(), Secret::new(v)),
                        Ok(v) => self.vars.set_plain(k.clone(), v),
                        Err(e) => return self.fail(&format!("set `{k}`: {e}")),
                    }
                }
                for c in &spec.reset_counters {
                    self.counters.remove(c);
                }
                self.follow(now, next.as_deref(), "next");
            }
            Kind::Hangup { spec } => {
                if self.attempt_open {
                    self.attempt_open = false;
                    let (result, reason) = match &self.refused_reason {
                        Some(r) => ("failure".to_string(), format!("{r}_transfer_refused")),
                        None => (
                            "incomplete".to_string(),
                            "flow_ended_without_result".to_string(),
                        ),
                    };
                    self.emit(Command::Audit { result, reason });
                }
                let Some(items) = self.render(&spec.prompt) else {
                    return;
                };
                if items.is_empty() {
                    return self.finish_hangup();
                }
                let id = self.id();
                self.phase = Phase::Hangup { id: Some(id) };
                self.emit_play(id, items, false);
            }
        }
    }

    fn finish_hangup(&mut self) {
        self.leave_secure();
        self.timeline(TimelineEvent::Hangup { by_caller: false });
        self.emit(Command::Hangup);
        self.phase = Phase::Done;
        self.deadline = None;
    }

    fn case_holds(&self, st: &State, c: &model::BranchCase) -> Result<bool, String> {
        let value = match self.vars.get(&c.var) {
            None => None,
            Some(Value::Plain(p)) => Some(p.as_str()),
            // Only a secure state may look at a secret (the validator
            // proves it); elsewhere a secret is treated as opaque.
            Some(Value::Secret(s)) if st.secure => Some(s.expose()),
            Some(Value::Secret(_)) => {
                return Err(format!(
                    "branch on secret `{}` outside a secure state",
                    c.var
                ))
            }
        };
        if let Some(want) = c.is_set {
            return Ok(value.is_some() == want);
        }
        if let Some(eq) = &c.equals {
            return Ok(value == Some(eq.as_str()));
        }
        if let Some(pat) = &c.matches {
            let re =
                anchored(pat).map_err(|_| format!("branch on `{}`: invalid pattern", c.var))?;
            return Ok(value.is_some_and(|v| re.is_match(v)));
        }
        Ok(false)
    }

    // ---- audio --------------------------------------------------------

    /// Render play items (digits templates into digit prompts). `None`
    /// after failing the call on a template error.
    fn render(&mut self, items: &[model::PlayItem]) -> Option<Vec<PlayItem>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                model::PlayItem::Prompt(p) => out.push(PlayItem::Prompt(p.clone())),
                model::PlayItem::Silence(d) => out.push(PlayItem::Silence(*d)),
                model::PlayItem::Digits(src) => {
                    match templates().render(src, &self.vars, Escaping::None, false) {
                        Ok(text) => out.extend(
                            text.chars()
                                .filter(char::is_ascii_digit)
                                .map(|c| PlayItem::Prompt(format!("digit_{c}"))),
                        ),
                        Err(e) => {
                            self.fail(&format!("digits: {e}"));
                            return None;
                        }
                    }
                }
            }
        }
        Some(out)
    }

    fn emit_play(&mut self, id: u64, items: Vec<PlayItem>, barge_in: bool) {
        let prompts = items
            .iter()
            .filter_map(|i| match i {
                PlayItem::Prompt(p) => Some(p.clone()),
                PlayItem::Silence(_) => None,
            })
            .collect();
        self.timeline(TimelineEvent::PromptPlayed { prompts });
        self.emit(Command::Play {
            id,
            items,
            barge_in,
        });
    }

    /// Render and play; false after failing the call.
    fn play(&mut self, id: u64, items: &[model::PlayItem], barge_in: bool) -> bool {
        match self.render(items) {
            Some(items) => {
                self.emit_play(id, items, barge_in);
                true
            }
            None => false,
        }
    }

    // ---- collect ------------------------------------------------------

    /// Start an entry leg (first or confirm): consume type-ahead, or play
    /// `before` + the leg's prompt.
    fn start_leg(
        &mut self,
        now: Instant,
        spec: &Collect,
        before: &[model::PlayItem],
        confirm: bool,
    ) {
        if let Phase::Collect(run) = &mut self.phase {
            run.digits = Secret::default();
            run.prompt = None;
            run.pending.clear();
        }
        if !self.type_ahead.is_empty() {
            // Type-ahead: the prompt is skipped and the kept keys count as
            // if pressed now; whatever this entry does not use stays
            // type-ahead for the next state.
            let keys: Vec<char> = self.type_ahead.drain(..).collect();
            for d in keys {
                self.handle_digit(now, d);
            }
            return;
        }
        let mut items: Vec<model::PlayItem> = before.to_vec();
        match (&spec.confirm, confirm) {
            (Some(c), true) => items.extend(c.prompt.iter().cloned()),
            _ => items.extend(spec.prompt.iter().cloned()),
        }
        let id = self.id();
        if let Phase::Collect(run) = &mut self.phase {
            run.prompt = Some(id);
        }
        self.play(id, &items, spec.barge_in);
    }

    fn collect_digit(
        &mut self,
        now: Instant,
        st: &State,
        spec: &Collect,
        d: char,
        is_escape: bool,
    ) {
        let Phase::Collect(run) = &mut self.phase else {
            self.type_ahead.push_back(d);
            return;
        };
        if run.prompt.is_some() {
            if !spec.barge_in {
                run.pending.push_back(d);
                return;
            }
            run.prompt = None;
            self.emit(Command::StopPlayback);
        }
        let Phase::Collect(run) = &mut self.phase else {
            return;
        };
        if is_escape && spec.escape && run.digits.is_empty() && run.first.is_none() {
            return self.escape(now);
        }
        if spec.terminator.as_deref().and_then(|t| t.chars().next()) == Some(d) {
            return self.finish_entry(now, st, spec);
        }
        run.digits.push(d);
        if run.digits.len() >= spec.max as usize {
            return self.finish_entry(now, st, spec);
        }
        self.deadline = Some(now + spec.inter_digit_timeout.0);
    }

    fn finish_entry(&mut self, now: Instant, st: &State, spec: &Collect) {
        self.deadline = None;
        let Phase::Collect(run) = &mut self.phase else {
            return;
        };
        let entry = std::mem::take(&mut run.digits);
        let len = entry.len();
        if len == 0 && spec.min > 0 {
            return self.collect_failure(now, st, spec, Failure::NoMatch);
        }
        // The pattern check is one of the few places a secret is exposed:
        // it is compared, never formatted.
        let ok = len >= spec.min as usize
            && len <= spec.max as usize
            && spec.pattern.as_deref().is_none_or(|p| {
                anchored(p)
                    .map(|re| re.is_match(entry.expose()))
                    .unwrap_or(false)
            });
        if !ok {
            return self.collect_failure(now, st, spec, Failure::NoMatch);
        }
        let Phase::Collect(run) = &mut self.phase else {
            return;
        };
        match (&spec.confirm, run.first.take()) {
            (Some(_), None) => {
                run.first = Some(entry);
                self.start_leg(now, spec, &[], true);
            }
            (Some(_), Some(first)) if first != entry => {
                self.collect_failure(now, st, spec, Failure::Mismatch);
            }
            _ => {
                let shown = if st.secure {
                    "*".repeat(len)
                } else {
                    entry.expose().to_string()
                };
                if st.secure {
                    self.vars.set_secret(spec.into.clone(), entry);
                } else {
                    self.vars.set_plain(spec.into.clone(), entry.expose());
                }
                self.timeline(TimelineEvent::DigitsCollected {
                    var: spec.into.clone(),
                    shown,
                });
                let Kind::Collect { next, .. } = &st.kind else {
                    return;
                };
                self.follow(now, next.as_deref(), "next");
            }
        }
    }

    fn collect_failure(&mut self, now: Instant, st: &State, spec: &Collect, f: Failure) {
        self.deadline = None;
        self.type_ahead.clear();
        let Phase::Collect(run) = &mut self.phase else {
            return;
        };
        run.failures += 1;
        let attempt = run.failures;
        let in_confirm = run.first.is_some();
        if f == Failure::Mismatch {
            run.first = None;
        }
        let state = self.state.clone();
        self.timeline(match f {
            Failure::NoInput => TimelineEvent::NoInput { state, attempt },
            Failure::NoMatch => TimelineEvent::NoMatch { state, attempt },
            Failure::Mismatch => TimelineEvent::Mismatch { state, attempt },
        });
        let Kind::Collect {
            on_fail,
            on_mismatch,
            ..
        } = &st.kind
        else {
            return;
        };
        if attempt >= spec.attempts {
            let to = match f {
                Failure::Mismatch if on_mismatch.is_some() => on_mismatch.clone(),
                _ => on_fail.clone(),
            };
            return self.follow(now, to.as_deref(), "on_fail");
        }
        let before = match f {
            Failure::NoInput => spec.no_input.clone(),
            Failure::NoMatch => spec.no_match.clone(),
            Failure::Mismatch => spec
                .confirm
                .as_ref()
                .map(|c| c.mismatch.clone())
                .unwrap_or_default(),
        };
        self.start_leg(now, spec, &before, in_confirm && f != Failure::Mismatch);
    }

    // ---- menu ---------------------------------------------------------

    fn menu_prompt(&mut self, spec: &Menu, before: &[model::PlayItem]) {
        let mut items = before.to_vec();
        items.extend(spec.prompt.iter().cloned());
        let id = self.id();
        if let Phase::Menu(run) = &mut self.phase {
            run.prompt = Some(id);
            run.pending.clear();
        }
        self.play(id, &items, spec.barge_in);
    }

    fn menu_key(&mut self, now: Instant, st: &State, spec: &Menu, d: char, is_escape: bool) {
        self.deadline = None;
        if let Some(to) = spec.options.get(&d.to_string()) {
            return self.goto(now, to);
        }
        if is_escape {
            return self.escape(now);
        }
        self.menu_failure(now, st, spec, Failure::NoMatch);
    }

    fn menu_failure(&mut self, now: Instant, st: &State, spec: &Menu, f: Failure) {
        self.type_ahead.clear();
        let Phase::Menu(run) = &mut self.phase else {
            return;
        };
        run.failures += 1;
        let attempt = run.failures;
        let state = self.state.clone();
        self.timeline(match f {
            Failure::NoInput => TimelineEvent::NoInput { state, attempt },
            _ => TimelineEvent::NoMatch { state, attempt },
        });
        if attempt >= spec.attempts {
            let Kind::Menu { on_fail, .. } = &st.kind else {
                return;
            };
            let to = on_fail;
            return self.follow(now, to.as_deref(), "on_fail");
        }
        let before = if f == Failure::NoInput {
            spec.no_input.clone()
        } else {
            spec.no_match.clone()
        };
        self.menu_prompt(spec, &before);
    }

    // ---- comfort loop -------------------------------------------------

    fn start_music(&mut self, now: Instant, spec: &ComfortLoop) {
        let id = self.id();
        if let Phase::Comfort(run) = &mut self.phase {
            run.part = ComfortPart::Music { id };
        }
        self.emit_play(id, vec![PlayItem::Prompt(spec.music.clone())], true);
        self.deadline = Some(now + spec.seconds.0);
    }

    fn comfort_key(&mut self, now: Instant, spec: &ComfortLoop, d: char, is_escape: bool) {
        self.deadline = None;
        if let Some(to) = spec.options.get(&d.to_string()) {
            return self.goto(now, to);
        }
        if is_escape {
            return self.escape(now);
        }
        // An unknown key ends the round early, like silence would.
        self.deadline = Some(now);
        if let Phase::Comfort(run) = &mut self.phase {
            run.part = ComfortPart::Menu { prompt: None };
        }
        self.handle_timeout(now);
    }
}

/// Compile a pattern matched against the whole value.
pub(crate) fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

#[cfg(test)]
mod tests {
    //! Collect timer semantics as a table (docs/collect-timers.md), in
    //! virtual time: every prompt item lasts exactly 2 s.
    use super::*;
    use crate::flow::model::parse;
    use std::path::Path;

    fn flow(params: &str, secure: bool) -> Arc<Flow> {
        let text = format!(
            r##"
flow: t
version: "1"
start: c
escape: {{ key: "0", to: agent }}
states:
  c:
    secure: {secure}
    collect: {{ into: v, prompt: [p], no_input: [ni], no_match: [nm], first_digit_timeout: 5s,
               inter_digit_timeout: 3s, attempts: 3, {params} }}
    next: done
    on_fail: failed
  done: {{ hangup: {{}} }}
  failed: {{ hangup: {{}} }}
  agent: {{ hangup: {{}} }}
"##
        );
        Arc::new(parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Run until the call is over; keys at absolute milliseconds. Returns
    /// lines `<ms> <what>`.
    fn simulate(flow: Arc<Flow>, keys: &[(u64, char)]) -> Vec<String> {
        let t0 = Instant::now();
        let ms = |t: Instant| t.duration_since(t0).as_millis();
        let mut it = Interpreter::new(t0, flow, Vars::new());
        let mut now = t0;
        let mut log = Vec::new();
        let mut playing: Option<(u64, Instant)> = None;
        let mut keys: VecDeque<(u64, char)> = keys.iter().copied().collect();
        loop {
            while let Some(c) = it.poll_command() {
                match c {
                    Command::Play { id, items, .. } => {
                        let names: Vec<String> = items
                            .iter()
                            .map(|i| match i {
                                PlayItem::Prompt(p) => p.clone(),
                                PlayItem::Silence(_) => "-".into(),
                            })
                            .collect();
                        log.push(format!("{} play {}", ms(now), names.join(",")));
                        playing = Some((id, now + Duration::from_secs(2 * items.len() as u64)));
                    }
                    Command::StopPlayback if playing.take().is_some() => {
                        log.push(format!("{} stop", ms(now)));
                    }
                    Command::Timeline(TimelineEvent::DigitsCollected { var, shown }) => {
                        log.push(format!("{} collected {var}={shown}", ms(now)))
                    }
                    Command::Timeline(TimelineEvent::NoInput { attempt, .. }) => {
                        log.push(format!("{} no-input {attempt}", ms(now)))
                    }
                    Command::Timeline(TimelineEvent::NoMatch { attempt, .. }) => {
                        log.push(format!("{} no-match {attempt}", ms(now)))
                    }
                    Command::Timeline(TimelineEvent::Mismatch { attempt, .. }) => {
                        log.push(format!("{} mismatch {attempt}", ms(now)))
                    }
                    Command::Timeline(TimelineEvent::StateEntered { state, .. })
                        if state != "c" =>
                    {
                        log.push(format!("{} state {state}", ms(now)))
                    }
                    _ => {}
                }
            }
            if it.is_finished() {
                return log;
            }
            let key_at = keys.front().map(|(t, _)| t0 + Duration::from_millis(*t));
            let candidates = [it.poll_timeout(), playing.map(|(_, t)| t), key_at];
            let next = candidates.into_iter().flatten().min().expect("stuck");
            assert!(next >= now, "deadline in the past");
            now = next;
            if key_at == Some(now) {
                let (_, k) = keys.pop_front().expect("key");
                it.handle_digit(now, k);
            } else if let Some((id, t)) = playing.filter(|(_, t)| *t == now) {
                let _ = t;
                playing = None;
                it.handle_play_finished(now, id);
            } else {
                it.handle_timeout(now);
            }
            assert!(ms(now) < 120_000, "ran away: {log:?}");
        }
    }

    fn keys(start: u64, gap: u64, s: &str) -> Vec<(u64, char)> {
        s.chars()
            .enumerate()
            .map(|(i, c)| (start + gap * i as u64, c))
            .collect()
    }

    #[test]
    fn collect_timer_table() {
        // (row, collect params, keys, expected log lines in order)
        type Row<'a> = (&'a str, &'a str, Vec<(u64, char)>, Vec<&'a str>);
        let rows: Vec<Row> = vec![
            (
                "first-digit timeout starts when the prompt ends: re-prompt after exactly 5 s",
                "min: 1, max: 4",
                vec![],
                vec!["0 play p", "7000 no-input 1", "7000 play ni,p"],
            ),
            (
                "no input on every attempt: on_fail after the third",
                "min: 1, max: 4",
                vec![],
                vec![
                    "7000 no-input 1",
                    "16000 no-input 2",
                    "25000 no-input 3",
                    "25000 state failed",
                ],
            ),
            (
                "inter-digit timeout with >= min digits accepts",
                "min: 2, max: 4",
                keys(3000, 500, "12"),
                vec!["6500 collected v=12", "6500 state done"],
            ),
            (
                "inter-digit timeout restarts on each digit",
                "min: 1, max: 9",
                keys(3000, 2500, "123"),
                vec!["11000 collected v=123"],
            ),
            (
                "inter-digit timeout with < min digits is no-match",
                "min: 4, max: 6",
                keys(3000, 500, "12"),
                vec!["6500 no-match 1", "6500 play nm,p"],
            ),
            (
                "terminator ends entry and is not included",
                "min: 1, max: 6, terminator: \"#\"",
                keys(3000, 250, "123#"),
                vec!["3750 collected v=123"],
            ),
            (
                "terminator with < min digits is no-match at once",
                "min: 4, max: 6, terminator: \"#\"",
                keys(3000, 250, "12#"),
                vec!["3500 no-match 1"],
            ),
            (
                "terminator alone is no-match",
                "min: 1, max: 6, terminator: \"#\"",
                keys(3000, 0, "#"),
                vec!["3000 no-match 1"],
            ),
            (
                "max digits ends entry without waiting",
                "min: 1, max: 3, terminator: \"#\"",
                keys(3000, 250, "123"),
                vec!["3500 collected v=123"],
            ),
            (
                "barge-in: a key stops the prompt and starts the inter-digit timer",
                "min: 1, max: 4",
                keys(1000, 0, "7"),
                vec!["1000 stop", "4000 collected v=7"],
            ),
            (
                "no barge-in: keys during the prompt are kept, timer from the prompt end",
                "min: 1, max: 4, barge_in: false",
                keys(1000, 0, "7"),
                vec!["0 play p", "5000 collected v=7"],
            ),
            (
                "pattern mismatch is no-match",
                "min: 1, max: 4, pattern: \"[1-9][0-9]*\"",
                keys(3000, 250, "0123"),
                vec!["3750 no-match 1"],
            ),
            (
                "no-input and no-match share the attempts",
                "min: 2, max: 4",
                vec![(3000, '1'), (16000, '1')],
                vec![
                    "6000 no-match 1",
                    "15000 no-input 2",
                    "19000 no-match 3",
                    "19000 state failed",
                ],
            ),
            (
                "keys beyond max are type-ahead, not part of the value",
                "min: 1, max: 2",
                keys(3000, 100, "123"),
                vec!["3100 collected v=12"],
            ),
            (
                "escape: first key of an opted-in collect goes to the agent",
                "min: 1, max: 4, escape: true",
                keys(3000, 0, "0"),
                vec!["3000 state agent"],
            ),
            (
                "escape: not a later key",
                "min: 1, max: 4, escape: true",
                keys(3000, 250, "10"),
                vec!["6250 collected v=10"],
            ),
            (
                "escape: not honoured without opt-in",
                "min: 1, max: 4",
                keys(3000, 0, "0"),
                vec!["6000 collected v=0"],
            ),
            (
                "confirm by re-entry: equal entries accepted",
                "min: 2, max: 2, confirm: { prompt: [cp], mismatch: [mm] }",
                [keys(3000, 100, "12"), keys(4000, 100, "12")].concat(),
                vec!["3100 play cp", "4000 stop", "4100 collected v=12"],
            ),
            (
                "confirm mismatch counts as an attempt and restarts the entry",
                "min: 2, max: 2, confirm: { prompt: [cp], mismatch: [mm] }",
                [keys(3000, 100, "12"), keys(4000, 100, "13")].concat(),
                vec!["4100 mismatch 1", "4100 play mm,p"],
            ),
        ];
        for (row, params, k, want) in rows {
            let log = simulate(flow(params, false), &k);
            let mut it = log.iter();
            for w in &want {
                assert!(
                    it.any(|l| l == w),
                    "row `{row}`: missing `{w}` (in order) in {log:#?}"
                );
            }
        }
    }

    #[test]
    fn secure_collect_masks_and_ignores_escape() {
        let log = simulate(
            flow("min: 1, max: 4, escape: false", true),
            &keys(3000, 250, "0412#"),
        );
        assert!(
            log.contains(&"3750 collected v=****".to_string()),
            "{log:#?}"
        );
    }

    #[test]
    fn secure_exits_and_auto_audit() {
        let text = r##"
flow: t
version: "1"
start: a
states:
  a:
    attempt: begin
    secure: true
    collect: { into: pin, prompt: [p], min: 4, max: 4 }
    next: done
    on_fail: done
  done: { hangup: {} }
"##;
        let f = Arc::new(parse(text, Path::new("t.yaml")).expect("parse"));
        let t0 = Instant::now();
        let mut it = Interpreter::new(t0, f, Vars::new());
        it.handle_digit(t0, '4');
        it.handle_hangup(t0 + Duration::from_secs(1));
        let cmds: Vec<Command> = std::iter::from_fn(|| it.poll_command()).collect();
        let pos = |c: &Command| cmds.iter().position(|x| x == c);
        let on = pos(&Command::Secure(true)).expect("secure on");
        let off = pos(&Command::Secure(false)).expect("secure off");
        let audit = pos(&Command::Audit {
            result: "abandoned".into(),
            reason: "caller_hangup_in_secure_segment".into(),
        })
        .expect("audit");
        assert!(on < off && off < audit, "{cmds:?}");
        assert!(it.is_finished() && !it.is_secure() && it.poll_timeout().is_none());
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Command::Audit { .. }))
                .count(),
            1
        );
    }
}
