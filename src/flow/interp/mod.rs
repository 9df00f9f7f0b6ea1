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
//! Encrypted media: a state with `secure_media: required` (or the start state
//! of a flow with it) is never entered on a call whose media is not encrypted
//! (SIP over TLS with SRTP, [`Interpreter::with_media`]): the flow's
//! `on_insecure_media` state runs instead, before anything of the state
//! happens (no prompt, no action, no counter).
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
//!
//! Layout: this file holds the public surface (inputs, [`Command`],
//! [`TimelineEvent`]) and routes each input to the current state's kind;
//! `transition` enters states and leaves the call; `collect`, `menu` and
//! `comfort` hold one kind each; `say` renders what is played.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::secret::Secret;
use crate::vars::{Value, Vars};

use super::keys::KeyRoutes;
use super::model::{Flow, Kind};

mod collect;
mod comfort;
mod menu;
mod say;
mod transition;
mod typeahead;

use collect::CollectRun;
use comfort::{ComfortPart, ComfortRun};
use menu::MenuRun;
use typeahead::KeptKeys;

pub use say::{digit_prompt, Say};

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
        items: Vec<Say>,
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
    /// Keys that may become part of a secret are waiting (typed ahead
    /// outside the secure segment, or kept from inside it): while on, keep
    /// the caller's audio out of the recording, from just before the first
    /// of them. Off when they have been read or dropped; the media layer
    /// then waits for the last key's tone to end (plus a grace) before it
    /// records the caller again. See `typeahead`.
    KeyGuard(bool),
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
    /// `*` started the entry of `state` again.
    EntryRestarted {
        state: String,
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
    /// `state` needs encrypted media and this call's is not: the flow's
    /// `on_insecure_media` state runs instead.
    MediaNotSecure {
        state: String,
    },
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
}

/// Immediate transitions allowed per input before the flow is declared
/// looping (the validator rejects such flows; this is the runtime fuse).
const MAX_HOPS: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    NoInput,
    NoMatch,
    Mismatch,
}

/// What the current state is doing: its kind's run data (the prompt that
/// plays, the entry so far, the action awaited). Distinct from the state
/// itself, which `Interpreter::state` names.
#[derive(Debug)]
enum Activity {
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
    activity: Activity,
    secure: bool,
    attempt_open: bool,
    refused_reason: Option<String>,
    /// Where kept keys can go (worked out once per flow, when it is loaded).
    routes: Arc<KeyRoutes>,
    type_ahead: KeptKeys,
    /// `KeyGuard(true)` was sent and not yet withdrawn.
    guard: bool,
    /// A terminator to swallow if it is the next key, until then.
    swallowing: Option<(char, Instant)>,
    /// Changes with every state entered and every entry leg started: a
    /// leg reading type-ahead stops when it changes.
    entry_seq: u64,
    next_id: u64,
    deadline: Option<Instant>,
    /// Since when the caller has held the call ([`Self::pause`]): the
    /// flow's timers stand still.
    paused: Option<Instant>,
    commands: VecDeque<Command>,
    hops: u32,
    /// The call's media is encrypted (SIP over TLS with SRTP): states with
    /// `secure_media: required` may run.
    encrypted_media: bool,
}

impl Interpreter {
    /// Start a call at the flow's `start` state. `vars` holds the call facts
    /// (`ani`, `dnis`, `call_id`) and config presets; the flow's
    /// `variables:` fill in whatever is missing.
    pub fn new(now: Instant, flow: Arc<Flow>, vars: Vars) -> Self {
        Self::with_media(now, flow, vars, false)
    }

    /// [`new`](Self::new) for a call whose media is encrypted or not: a state
    /// that requires encrypted media (`secure_media: required`, or the start
    /// state of a flow that does) is never entered on a clear call; the flow's
    /// `on_insecure_media` state runs instead.
    pub fn with_media(now: Instant, flow: Arc<Flow>, mut vars: Vars, encrypted: bool) -> Self {
        for (k, v) in &flow.variables {
            if vars.get(k).is_none() {
                vars.set_plain(k.clone(), v.clone());
            }
        }
        let start = flow.start.clone();
        let mut me = Interpreter {
            flow: Arc::clone(&flow),
            vars,
            counters: BTreeMap::new(),
            state: String::new(),
            activity: Activity::Idle,
            secure: false,
            attempt_open: false,
            refused_reason: None,
            routes: Arc::clone(flow.key_routes()),
            type_ahead: KeptKeys::new(),
            guard: false,
            swallowing: None,
            entry_seq: 0,
            next_id: 1,
            deadline: None,
            paused: None,
            commands: VecDeque::new(),
            hops: 0,
            encrypted_media: encrypted,
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
        if self.is_finished() || self.paused.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// The caller has put the call on hold: it hears nothing, so the flow's
    /// timers (no input, between keys, a comfort loop's seconds) stand still
    /// until [`Self::resume`]. A request to the backend goes on; keys and
    /// results are still taken.
    pub fn pause(&mut self, now: Instant) {
        if self.paused.is_none() {
            self.paused = Some(now);
        }
    }

    /// The caller took the call back: every timer resumes with the time it
    /// had left when the call was held.
    pub fn resume(&mut self, now: Instant) {
        let Some(since) = self.paused.take() else {
            return;
        };
        let held = now.saturating_duration_since(since);
        self.deadline = self.deadline.map(|d| d.max(since) + held);
        if let Some((_, until)) = &mut self.swallowing {
            *until = (*until).max(since) + held;
        }
    }

    /// Set the flow's timer to `after` from `now`. While the call is held, a
    /// timer armed then (a key sent by SIP INFO, a backend's answer) counts
    /// from the hold's start, so that [`Self::resume`] gives it all of
    /// `after` from the moment the caller is back.
    fn arm(&mut self, now: Instant, after: Duration) {
        self.deadline = Some(self.paused.unwrap_or(now) + after);
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Keys that may become part of a secret are waiting (see
    /// [`Command::KeyGuard`]).
    pub fn is_guarding_keys(&self) -> bool {
        self.guard
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.activity, Activity::Done)
    }

    /// Whether a key the caller presses now can change anything: the current
    /// state reads keys (collect, menu, comfort loop), a prompt can be barged
    /// in, the flow's escape key is honoured here, or a kept key can reach a
    /// state that reads it (see [`KeyRoutes`]). False once the flow decided to
    /// leave (hangup prompt, transfer) or ended, and in a `play` or `action`
    /// from which no reader of keys can be reached. Lets the call skip in-band
    /// tone detection where no digit can matter (`docs/collect-timers.md`,
    /// "Where in-band detection runs").
    pub fn reads_keys(&self) -> bool {
        let consumers = || !self.routes.get(&self.state).consumers.is_empty();
        let escape = || {
            self.escape_key().is_some()
                && self
                    .flow
                    .states
                    .get(&self.state)
                    .is_none_or(|st| !st.secure)
        };
        match &self.activity {
            Activity::Collect(_) | Activity::Menu(_) | Activity::Comfort(_) | Activity::Idle => {
                true
            }
            Activity::Play { barge_in, .. } => *barge_in || escape() || consumers(),
            Activity::Action { .. } => escape() || consumers(),
            Activity::Transfer | Activity::Hangup { .. } | Activity::Done => false,
        }
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
        if !self.swallowed(now, digit) {
            self.digit(now, digit);
        }
        self.settle_guard();
    }

    fn digit(&mut self, now: Instant, digit: char) {
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        match (&mut self.activity, &st.kind) {
            (Activity::Play { barge_in, .. }, Kind::Play { next, .. }) => {
                let barge_in = *barge_in;
                if self.escapes_now(st, digit) {
                    return self.escape(now);
                }
                let guarded = self.kept_key_is_guarded(st, digit);
                self.keep(digit, guarded);
                if barge_in {
                    self.emit(Command::StopPlayback);
                    self.follow(now, next.as_deref(), "next");
                }
            }
            (Activity::Collect(_), Kind::Collect { spec, .. }) => {
                self.collect_digit(now, st, spec, digit);
            }
            (Activity::Menu(run), Kind::Menu { spec, .. }) => {
                if run.prompt.is_some() && !spec.barge_in {
                    run.pending.push_back(digit);
                    return;
                }
                if run.prompt.take().is_some() {
                    self.emit(Command::StopPlayback);
                }
                let is_escape = !st.secure && self.escape_key() == Some(digit);
                self.menu_key(now, st, spec, digit, is_escape);
            }
            (Activity::Action { .. }, _) => {
                if self.escapes_now(st, digit) {
                    return self.escape(now);
                }
                let guarded = self.kept_key_is_guarded(st, digit);
                self.keep(digit, guarded);
            }
            (Activity::Comfort(_), Kind::ComfortLoop { spec, .. }) => {
                self.comfort_digit(now, st, spec, digit);
            }
            (Activity::Hangup { .. }, _) | (Activity::Transfer, _) | (Activity::Idle, _) => {
                // Keys after the flow decided to leave are kept for nothing.
            }
            _ => {}
        }
    }

    pub fn handle_play_finished(&mut self, now: Instant, id: u64) {
        self.on_play_finished(now, id);
        self.settle_guard();
    }

    fn on_play_finished(&mut self, now: Instant, id: u64) {
        if self.is_finished() {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        match (&mut self.activity, &st.kind) {
            (Activity::Play { id: playing, .. }, Kind::Play { next, .. }) if *playing == id => {
                self.follow(now, next.as_deref(), "next");
            }
            (Activity::Collect(run), Kind::Collect { spec, .. }) if run.prompt == Some(id) => {
                run.prompt = None;
                let pending: Vec<char> = run.pending.drain(..).collect();
                if pending.is_empty() {
                    self.arm(now, spec.first_digit_timeout.0);
                } else {
                    // Keys heard during a non-barge-in prompt count now.
                    for d in pending {
                        self.digit(now, d);
                    }
                }
            }
            (Activity::Menu(run), Kind::Menu { spec, .. }) if run.prompt == Some(id) => {
                run.prompt = None;
                let first = run.pending.pop_front();
                run.pending.clear();
                match first {
                    Some(d) => {
                        let is_escape = !st.secure && self.escape_key() == Some(d);
                        self.menu_key(now, st, spec, d, is_escape)
                    }
                    None => self.arm(now, spec.timeout.0),
                }
            }
            (
                Activity::Action { processing, .. },
                Kind::Action {
                    processing: items, ..
                },
            ) if *processing == Some(id) => {
                // The processing prompt loops until the action answers.
                let id = self.id();
                if let Activity::Action { processing, .. } = &mut self.activity {
                    *processing = Some(id);
                }
                self.play(id, items, false);
            }
            (Activity::Comfort(_), Kind::ComfortLoop { spec, .. }) => {
                self.comfort_play_finished(now, spec, id);
            }
            (Activity::Hangup { id: Some(playing) }, _) if *playing == id => self.finish_hangup(),
            _ => {}
        }
    }

    pub fn handle_action_result(&mut self, now: Instant, id: u64, outcome: &str, outputs: Vars) {
        self.on_action_result(now, id, outcome, outputs);
        self.settle_guard();
    }

    fn on_action_result(&mut self, now: Instant, id: u64, outcome: &str, outputs: Vars) {
        if self.is_finished() {
            return;
        }
        self.hops = 0;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(&self.state) else {
            return;
        };
        let (
            Activity::Action {
                id: waiting,
                started,
                processing,
            },
            Kind::Action { name, on, .. },
        ) = (&self.activity, &st.kind)
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
        self.activity = Activity::Idle;
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
        self.on_transfer_result(now, accepted);
        self.settle_guard();
    }

    fn on_transfer_result(&mut self, now: Instant, accepted: bool) {
        if !matches!(self.activity, Activity::Transfer) {
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
            self.flush_keys();
            self.settle_guard();
            self.timeline(TimelineEvent::Hangup { by_caller: false });
            self.emit(Command::Hangup);
            self.activity = Activity::Done;
            self.deadline = None;
        } else {
            self.refused_reason = Some(spec.reason.clone());
            self.activity = Activity::Idle;
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
        self.flush_keys();
        self.settle_guard();
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
        self.activity = Activity::Done;
        self.deadline = None;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
        self.settle_guard();
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.paused.is_some() {
            return;
        }
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
        match (&mut self.activity, &st.kind) {
            (Activity::Collect(run), Kind::Collect { spec, .. }) => {
                if run.digits.is_empty() {
                    self.collect_failure(now, st, spec, Failure::NoInput);
                } else {
                    self.finish_entry(now, st, spec, false);
                }
            }
            (Activity::Menu(_), Kind::Menu { spec, .. }) => {
                self.menu_failure(now, st, spec, Failure::NoInput);
            }
            (Activity::Comfort(_), Kind::ComfortLoop { spec, on_exhausted }) => {
                self.comfort_timeout(now, st, spec, on_exhausted.as_deref());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
