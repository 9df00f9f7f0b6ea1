//! `comfort_loop`: hold music while the caller waits for the code, then a
//! menu (enter the code / resend), for a bounded number of rounds.
//!
//! With a `type_ahead` collect (the code entry), keys mean:
//! - before the menu was first offered: every key is the code (it and all
//!   that follow go to the code entry);
//! - once the menu has been offered (while it plays, while it waits, and
//!   during the music of every later round): a menu key (or the escape
//!   key) is *held*. If `choice_pause` passes with no other key, or the
//!   code entry's terminator follows, it is the menu choice; any other key
//!   within the pause makes it the first digit of a run, and the run is
//!   the code. Any other key is the code at once.
//!
//! Without `type_ahead` every key is a menu key at once, and keys kept
//! from before the loop are dropped.

use std::time::{Duration, Instant};

use super::super::model::{Collect, ComfortLoop, Kind, State};
use super::collect::terminator;
use super::typeahead::CHOICE_TERMINATOR_WINDOW;
use super::{Activity, Command, Interpreter, Say};

#[derive(Debug)]
pub(super) enum ComfortPart {
    Music { id: u64 },
    Menu { prompt: Option<u64> },
}

#[derive(Debug)]
pub(super) struct ComfortRun {
    pub(super) round: u32,
    pub(super) part: ComfortPart,
    /// The menu has been offered at least once.
    pub(super) offered: bool,
    /// The last kept key is a menu key waiting for its pause.
    pub(super) holding: bool,
}

impl Interpreter {
    /// On entry: keys kept from before go straight to the code entry
    /// (true: the state was left). Without one they are dropped.
    pub(super) fn comfort_type_ahead(&mut self, now: Instant, spec: &ComfortLoop) -> bool {
        if self.type_ahead.is_empty() {
            return false;
        }
        match spec.type_ahead.as_deref() {
            Some(target) => {
                self.goto(now, target);
                true
            }
            None => {
                self.flush_keys();
                false
            }
        }
    }

    pub(super) fn start_music(&mut self, now: Instant, spec: &ComfortLoop) {
        let id = self.id();
        if let Activity::Comfort(run) = &mut self.activity {
            run.part = ComfortPart::Music { id };
        }
        self.emit_play(id, vec![Say::Prompt(spec.music.clone())], true);
        self.arm(now, spec.seconds.0);
    }

    pub(super) fn comfort_digit(&mut self, now: Instant, st: &State, spec: &ComfortLoop, d: char) {
        let is_escape = !st.secure && self.escape_key() == Some(d);
        let Some(target) = spec.type_ahead.clone() else {
            return self.comfort_menu_key_at_once(now, spec, d, is_escape);
        };
        let entry = self.collect_spec(&target);
        let guarded =
            self.secure || st.guard_keys || self.flow.states.get(&target).is_some_and(|t| t.secure);
        let choice_key = spec.options.contains_key(&d.to_string()) || is_escape;
        let Activity::Comfort(run) = &mut self.activity else {
            return;
        };
        if std::mem::take(&mut run.holding) {
            if entry.as_ref().and_then(terminator) == Some(d) {
                // `2#`: the held key was a choice, and this is its end.
                return self.comfort_choose(now, st, spec, false);
            }
            // A second key within the pause: the held key began the code.
            self.keep(d, guarded);
            return self.goto(now, &target);
        }
        if run.offered && choice_key {
            run.holding = true;
            if let ComfortPart::Menu { prompt } = &mut run.part {
                *prompt = None;
            }
            self.emit(Command::StopPlayback);
            self.keep(d, guarded);
            self.arm(now, spec.choice_pause.0);
            return;
        }
        self.emit(Command::StopPlayback);
        self.keep(d, guarded);
        self.goto(now, &target);
    }

    /// No code entry to feed: a key is a menu key as soon as it is pressed.
    fn comfort_menu_key_at_once(
        &mut self,
        now: Instant,
        spec: &ComfortLoop,
        d: char,
        is_escape: bool,
    ) {
        let Activity::Comfort(run) = &mut self.activity else {
            return;
        };
        match &mut run.part {
            ComfortPart::Music { .. } => {
                if is_escape && !spec.options.contains_key(&d.to_string()) {
                    return self.escape(now);
                }
                self.emit(Command::StopPlayback);
                self.comfort_key(now, spec, d, false, true);
            }
            ComfortPart::Menu { prompt } => {
                if prompt.take().is_some() {
                    self.emit(Command::StopPlayback);
                }
                self.comfort_key(now, spec, d, is_escape, true);
            }
        }
    }

    /// The held key is the menu choice. `swallow`: a terminator may still
    /// follow it (it did not end with one).
    fn comfort_choose(&mut self, now: Instant, st: &State, spec: &ComfortLoop, swallow: bool) {
        let Some(kept) = self.type_ahead.pop_back() else {
            return;
        };
        let is_escape = !st.secure && self.escape_key() == Some(kept.key);
        self.comfort_key(now, spec, kept.key, is_escape, swallow);
    }

    pub(super) fn comfort_play_finished(&mut self, now: Instant, spec: &ComfortLoop, id: u64) {
        let Activity::Comfort(run) = &mut self.activity else {
            return;
        };
        match run.part {
            ComfortPart::Music { id: playing } if playing == id => {
                // Music shorter than the round: play it again.
                let new = self.id();
                if let Activity::Comfort(run) = &mut self.activity {
                    run.part = ComfortPart::Music { id: new };
                }
                self.emit_play(new, vec![Say::Prompt(spec.music.clone())], true);
            }
            ComfortPart::Menu { prompt: Some(p) } if p == id => {
                run.part = ComfortPart::Menu { prompt: None };
                self.arm(now, spec.menu_timeout.0);
            }
            _ => {}
        }
    }

    pub(super) fn comfort_timeout(
        &mut self,
        now: Instant,
        st: &State,
        spec: &ComfortLoop,
        on_exhausted: Option<&str>,
    ) {
        let Activity::Comfort(run) = &mut self.activity else {
            return;
        };
        if std::mem::take(&mut run.holding) {
            return self.comfort_choose(now, st, spec, true);
        }
        match run.part {
            ComfortPart::Music { .. } => {
                let id = self.id();
                if let Activity::Comfort(run) = &mut self.activity {
                    run.part = ComfortPart::Menu { prompt: Some(id) };
                    run.offered = true;
                }
                self.emit(Command::StopPlayback);
                self.play(id, &spec.menu, true);
            }
            ComfortPart::Menu { .. } => {
                run.round += 1;
                if run.round > spec.rounds {
                    self.follow(now, on_exhausted, "on_exhausted");
                } else {
                    self.start_music(now, spec);
                }
            }
        }
    }

    /// A menu key: an option, the escape, or (unknown) the end of the
    /// round. After an option a terminator right behind it is swallowed.
    fn comfort_key(
        &mut self,
        now: Instant,
        spec: &ComfortLoop,
        d: char,
        is_escape: bool,
        swallow: bool,
    ) {
        self.deadline = None;
        if let Some(to) = spec.options.get(&d.to_string()) {
            if swallow {
                let entry = spec
                    .type_ahead
                    .as_deref()
                    .and_then(|t| self.collect_spec(t));
                let (t, window) = match &entry {
                    Some(c) => (terminator(c), c.inter_digit_timeout.0),
                    None => (Some('#'), CHOICE_TERMINATOR_WINDOW),
                };
                if let Some(t) = t.filter(|t| !spec.options.contains_key(&t.to_string())) {
                    self.swallow(t, now + window);
                }
            }
            return self.goto(now, to);
        }
        if is_escape {
            return self.escape(now);
        }
        // An unknown key ends the round early, like silence would.
        self.arm(now, Duration::ZERO);
        if let Activity::Comfort(run) = &mut self.activity {
            run.part = ComfortPart::Menu { prompt: None };
        }
        self.on_timeout(now);
    }

    /// The collect spec of state `name`, if it is a collect.
    fn collect_spec(&self, name: &str) -> Option<Collect> {
        match self.flow.states.get(name).map(|s| &s.kind) {
            Some(Kind::Collect { spec, .. }) => Some(spec.clone()),
            _ => None,
        }
    }
}
