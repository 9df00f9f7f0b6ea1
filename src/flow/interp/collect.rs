//! `collect`: one entry (and its confirmation leg) from the caller's keys,
//! with the timers, attempts and type-ahead rules of
//! `docs/collect-timers.md`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::secret::Secret;

use super::super::model::{self, Collect, Kind, State, RESTART_KEY};
use super::{Activity, Command, Failure, Interpreter, TimelineEvent};

/// Entry in progress of a `collect`.
#[derive(Debug)]
pub(super) struct CollectRun {
    pub(super) failures: u32,
    /// `Some` during the confirm leg: the first entry.
    pub(super) first: Option<Secret>,
    pub(super) digits: Secret,
    /// Prompt currently playing.
    pub(super) prompt: Option<u64>,
    /// Keys heard while a non-barge-in prompt played.
    pub(super) pending: VecDeque<char>,
}

impl Interpreter {
    /// Start an entry leg (first or confirm): read the kept keys, or play
    /// `before` + the leg's prompt.
    pub(super) fn start_leg(
        &mut self,
        now: Instant,
        spec: &Collect,
        before: &[model::PlayItem],
        confirm: bool,
    ) {
        self.entry_seq += 1;
        self.deadline = None;
        if let Activity::Collect(run) = &mut self.activity {
            run.digits = Secret::default();
            run.prompt = None;
            run.pending.clear();
        }
        if !self.type_ahead.is_empty() {
            return self.read_type_ahead(now);
        }
        let mut items: Vec<model::PlayItem> = before.to_vec();
        match (&spec.confirm, confirm) {
            (Some(c), true) => items.extend(c.prompt.iter().cloned()),
            _ => items.extend(spec.prompt.iter().cloned()),
        }
        let id = self.id();
        if let Activity::Collect(run) = &mut self.activity {
            run.prompt = Some(id);
        }
        self.play(id, &items, spec.barge_in);
    }

    /// Type-ahead: the prompt is skipped and the kept keys count as if
    /// pressed now, one by one, for as long as this entry reads them;
    /// whatever it does not use stays kept for the next state.
    fn read_type_ahead(&mut self, now: Instant) {
        let entry = self.entry_seq;
        while self.entry_seq == entry {
            let flow = Arc::clone(&self.flow);
            let Some(st) = flow.states.get(&self.state) else {
                return;
            };
            let Kind::Collect { spec, .. } = &st.kind else {
                return;
            };
            let Some(kept) = self.type_ahead.pop_front() else {
                return;
            };
            self.collect_digit(now, st, spec, kept.key);
        }
    }

    pub(super) fn collect_digit(&mut self, now: Instant, st: &State, spec: &Collect, d: char) {
        let is_escape = !st.secure && self.escape_key() == Some(d);
        let Activity::Collect(run) = &mut self.activity else {
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
        let Activity::Collect(run) = &mut self.activity else {
            return;
        };
        if is_escape && spec.escape && run.digits.is_empty() && run.first.is_none() {
            return self.escape(now);
        }
        if spec.restart && d == RESTART_KEY {
            return self.restart_entry(now, spec);
        }
        if terminator(spec) == Some(d) {
            return self.finish_entry(now, st, spec, false);
        }
        run.digits.push(d);
        if run.digits.len() >= spec.max as usize {
            return self.finish_entry(now, st, spec, true);
        }
        self.arm(now, spec.inter_digit_timeout.0);
    }

    /// `*`: this leg starts again, its prompt plays again (unless more keys
    /// are waiting), and no attempt is used.
    fn restart_entry(&mut self, now: Instant, spec: &Collect) {
        let Activity::Collect(run) = &mut self.activity else {
            return;
        };
        let confirm = run.first.is_some();
        let state = self.state.clone();
        self.timeline(TimelineEvent::EntryRestarted { state });
        self.start_leg(now, spec, &[], confirm);
    }

    /// The entry is complete: by its terminator, or on `max` digits (then a
    /// terminator right behind it is its own, not the next state's).
    pub(super) fn finish_entry(&mut self, now: Instant, st: &State, spec: &Collect, on_max: bool) {
        self.deadline = None;
        if let (true, Some(t)) = (on_max, terminator(spec)) {
            self.swallow(t, now + spec.inter_digit_timeout.0);
        }
        let Activity::Collect(run) = &mut self.activity else {
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
            && spec
                .pattern
                .as_ref()
                .is_none_or(|p| p.is_match(entry.expose()));
        if !ok {
            return self.collect_failure(now, st, spec, Failure::NoMatch);
        }
        let Activity::Collect(run) = &mut self.activity else {
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

    pub(super) fn collect_failure(&mut self, now: Instant, st: &State, spec: &Collect, f: Failure) {
        self.deadline = None;
        self.type_ahead.clear();
        let Activity::Collect(run) = &mut self.activity else {
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
}

/// The key that ends an entry early, if the collect has one.
pub(super) fn terminator(spec: &Collect) -> Option<char> {
    spec.terminator.as_deref().and_then(|t| t.chars().next())
}

/// Whether the last of `keys`, read as type-ahead by a (non-secure)
/// collect from an empty entry, falls after that collect is done with its
/// entry and confirmation, i.e. is left over for the states after it. It
/// reads keys the way [`Interpreter::collect_digit`] does (escape, restart,
/// terminator, `max`, a swallowed terminator) and ignores whether the
/// entry would be accepted: leftovers of a failed entry are dropped, which
/// only makes this answer more careful.
pub(super) fn is_leftover(spec: &Collect, escape: Option<char>, keys: &[char]) -> bool {
    let legs = if spec.confirm.is_some() { 2 } else { 1 };
    let term = terminator(spec);
    let mut done = 0;
    let mut len = 0usize;
    let mut after_max = false;
    for (i, &k) in keys.iter().enumerate() {
        if std::mem::take(&mut after_max) && Some(k) == term {
            continue;
        }
        if done == legs {
            return true;
        }
        let last = i + 1 == keys.len();
        if spec.escape && done == 0 && len == 0 && escape == Some(k) {
            // An escape leaves the collect; what follows goes elsewhere.
            return !last;
        }
        if spec.restart && k == RESTART_KEY {
            len = 0;
        } else if Some(k) == term {
            done += 1;
            len = 0;
        } else {
            len += 1;
            if len >= spec.max as usize {
                done += 1;
                len = 0;
                after_max = true;
            }
        }
    }
    false
}
