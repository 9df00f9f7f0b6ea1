//! Moving between states: `goto` runs a state's entry (counters, secure
//! boundaries, attempts, the kind's first step), `follow` takes a named
//! transition, and the ways out of a call (escape, flow error, hangup).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::secret::Secret;
use crate::vars::{Value, Vars};

use super::super::model::{self, Kind, State};
use super::{
    Activity, CollectRun, ComfortPart, ComfortRun, Command, Interpreter, MenuRun, TimelineEvent,
    MAX_HOPS,
};

impl Interpreter {
    /// Follow an optional transition; a missing one is a flow error (the
    /// validator reports it before a call ever gets here).
    pub(super) fn follow(&mut self, now: Instant, to: Option<&str>, key: &str) {
        match to {
            Some(to) => self.goto(now, to),
            None => self.fail(&format!("state has no `{key}` transition")),
        }
    }

    pub(super) fn escape(&mut self, now: Instant) {
        let Some(esc) = self.flow.escape.clone() else {
            return;
        };
        self.timeline(TimelineEvent::Escape {
            from: self.state.clone(),
        });
        self.emit(Command::StopPlayback);
        // What was typed after the escape was meant for somewhere else.
        self.flush_keys();
        self.goto(now, &esc.to);
    }

    pub(super) fn leave_secure(&mut self) {
        if self.secure {
            self.guard_waiting_keys();
            self.secure = false;
            self.emit(Command::Secure(false));
        }
    }

    pub(super) fn fail(&mut self, message: &str) {
        self.timeline(TimelineEvent::FlowError {
            state: self.state.clone(),
            message: message.to_string(),
        });
        self.leave_secure();
        self.flush_keys();
        self.settle_guard();
        if self.attempt_open {
            self.attempt_open = false;
            self.emit(Command::Audit {
                result: "error".into(),
                reason: "flow_error".into(),
            });
        }
        self.timeline(TimelineEvent::Hangup { by_caller: false });
        self.emit(Command::Hangup);
        self.activity = Activity::Done;
        self.deadline = None;
    }

    pub(super) fn goto(&mut self, now: Instant, name: &str) {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return self.fail("too many transitions without waiting for anything (loop)");
        }
        self.deadline = None;
        self.activity = Activity::Idle;
        self.entry_seq += 1;
        let flow = Arc::clone(&self.flow);
        let Some(st) = flow.states.get(name) else {
            self.state = name.to_string();
            return self.fail("unknown state");
        };
        self.state = name.to_string();
        let needs_encryption = st.secure_media == model::SecureMedia::Required
            || (name == flow.start && flow.secure_media == model::SecureMedia::Required);
        if needs_encryption && !self.encrypted_media {
            self.timeline(TimelineEvent::MediaNotSecure {
                state: name.to_string(),
            });
            return match &flow.on_insecure_media {
                Some(to) if to != name => self.goto(now, to),
                _ => self.fail("needs encrypted media and has no `on_insecure_media` state"),
            };
        }
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
            if !st.secure {
                self.guard_waiting_keys();
            }
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
                self.activity = Activity::Play {
                    id,
                    barge_in: *barge_in,
                };
                self.emit_play(id, items, *barge_in);
            }
            Kind::Collect { spec, .. } => {
                self.activity = Activity::Collect(CollectRun {
                    failures: 0,
                    first: None,
                    digits: Secret::default(),
                    prompt: None,
                    pending: VecDeque::new(),
                });
                self.start_leg(now, spec, &[], false);
            }
            Kind::Menu { spec, .. } => {
                self.activity = Activity::Menu(MenuRun {
                    failures: 0,
                    prompt: None,
                    pending: VecDeque::new(),
                });
                // One kept key is the choice; the rest is dropped.
                if let Some(kept) = self.type_ahead.pop_front() {
                    self.flush_keys();
                    let d = kept.key;
                    let is_escape = !st.secure && self.escape_key() == Some(d);
                    return self.menu_key(now, st, spec, d, is_escape);
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
                self.activity = Activity::Action {
                    id,
                    started: now,
                    processing: proc_id,
                };
            }
            Kind::ComfortLoop { spec, .. } => {
                self.activity = Activity::Comfort(ComfortRun {
                    round: 1,
                    part: ComfortPart::Music { id: 0 },
                    offered: false,
                    holding: false,
                });
                if self.comfort_type_ahead(now, spec) {
                    return;
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
                self.activity = Activity::Transfer;
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
                    let reads_secret = match src.check() {
                        Ok(names) => names
                            .iter()
                            .any(|n| self.vars.get(n).is_some_and(Value::is_secret)),
                        Err(e) => return self.fail(&format!("set `{k}`: {e}")),
                    };
                    match src.render(&self.vars, st.secure) {
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
                self.activity = Activity::Hangup { id: Some(id) };
                self.emit_play(id, items, false);
            }
        }
    }

    pub(super) fn finish_hangup(&mut self) {
        self.leave_secure();
        self.flush_keys();
        self.settle_guard();
        self.timeline(TimelineEvent::Hangup { by_caller: false });
        self.emit(Command::Hangup);
        self.activity = Activity::Done;
        self.deadline = None;
    }

    pub(super) fn case_holds(&self, st: &State, c: &model::BranchCase) -> Result<bool, String> {
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
            let re = pat
                .regex()
                .map_err(|_| format!("branch on `{}`: invalid pattern", c.var))?;
            return Ok(value.is_some_and(|v| re.is_match(v)));
        }
        Ok(false)
    }
}
