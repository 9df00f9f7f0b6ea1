//! `menu`: one key chooses an option (a `#` right behind it is swallowed);
//! no-input and no-match share the attempts.

use std::collections::VecDeque;
use std::time::Instant;

use super::super::model::{self, Kind, Menu, State};
use super::typeahead::CHOICE_TERMINATOR_WINDOW;
use super::{Activity, Failure, Interpreter, TimelineEvent};

#[derive(Debug)]
pub(super) struct MenuRun {
    pub(super) failures: u32,
    pub(super) prompt: Option<u64>,
    pub(super) pending: VecDeque<char>,
}

impl Interpreter {
    pub(super) fn menu_prompt(&mut self, spec: &Menu, before: &[model::PlayItem]) {
        let mut items = before.to_vec();
        items.extend(spec.prompt.iter().cloned());
        let id = self.id();
        if let Activity::Menu(run) = &mut self.activity {
            run.prompt = Some(id);
            run.pending.clear();
        }
        self.play(id, &items, spec.barge_in);
    }

    pub(super) fn menu_key(
        &mut self,
        now: Instant,
        st: &State,
        spec: &Menu,
        d: char,
        is_escape: bool,
    ) {
        self.deadline = None;
        if let Some(to) = spec.options.get(&d.to_string()) {
            // A `#` right behind the choice ends it, unless `#` is a choice.
            if !spec.options.contains_key("#") {
                self.swallow('#', now + CHOICE_TERMINATOR_WINDOW);
            }
            return self.goto(now, to);
        }
        if is_escape {
            return self.escape(now);
        }
        self.menu_failure(now, st, spec, Failure::NoMatch);
    }

    pub(super) fn menu_failure(&mut self, now: Instant, st: &State, spec: &Menu, f: Failure) {
        self.type_ahead.clear();
        let Activity::Menu(run) = &mut self.activity else {
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
}
