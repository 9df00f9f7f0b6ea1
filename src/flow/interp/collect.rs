//! `collect`: one entry (and its confirmation leg) from the caller's keys,
//! with the timers, attempts and type-ahead rules of
//! `docs/collect-timers.md`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::secret::Secret;

use super::super::model::{self, Collect, Kind, State};
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
    /// Start an entry leg (first or confirm): consume type-ahead, or play
    /// `before` + the leg's prompt.
    pub(super) fn start_leg(
        &mut self,
        now: Instant,
        spec: &Collect,
        before: &[model::PlayItem],
        confirm: bool,
    ) {
        if let Activity::Collect(run) = &mut self.activity {
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
        if let Activity::Collect(run) = &mut self.activity {
            run.prompt = Some(id);
        }
        self.play(id, &items, spec.barge_in);
    }

    pub(super) fn collect_digit(
        &mut self,
        now: Instant,
        st: &State,
        spec: &Collect,
        d: char,
        is_escape: bool,
    ) {
        let Activity::Collect(run) = &mut self.activity else {
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
        let Activity::Collect(run) = &mut self.activity else {
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

    pub(super) fn finish_entry(&mut self, now: Instant, st: &State, spec: &Collect) {
        self.deadline = None;
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
            && spec.pattern.as_deref().is_none_or(|p| {
                anchored(p)
                    .map(|re| re.is_match(entry.expose()))
                    .unwrap_or(false)
            });
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

/// Compile a pattern matched against the whole value.
pub(crate) fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}
