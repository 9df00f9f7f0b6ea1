//! Keys typed ahead: what a key typed outside an entry means, and what it
//! may not reveal.
//!
//! - A key typed while a `play`, an `action` or a comfort loop's music runs
//!   is *kept* for the next state that reads keys ([`crate::flow::keys`]).
//! - The escape key counts only as the first key of an entry: typed ahead,
//!   it escapes at once only if nothing is kept yet and every state that
//!   could read it would take it as an escape (a collect that opts in, a
//!   menu that does not map it); otherwise it is kept and the reader
//!   decides. So `0` typed during the welcome reaches the agent at once,
//!   and `0` typed during the read-back of a code is the code's first digit.
//! - The key guard: a kept key that can end up in a secure value (a code
//!   typed during its read-back, or after the employee ID and its `#`) is
//!   *guarded*: [`Command::KeyGuard`]`(true)` asks the call to keep the
//!   caller's audio out of the recording from just before it, until every
//!   guarded key has been read or dropped. Keys kept inside the secure
//!   segment are guarded too: if the segment ends while they still wait,
//!   the guard goes up before the segment's suppression ends.
//! - A terminator typed right after an entry that ended on its maximum
//!   length (within its inter-digit timeout), or right after a menu choice,
//!   belongs to that entry: it is swallowed ([`Interpreter::swallow`]).

use std::time::{Duration, Instant};

use super::super::model::{Kind, State};
use super::{collect, Command, Interpreter};

/// At most this many keys wait as type-ahead; further keys are dropped.
pub(super) const MAX_TYPE_AHEAD: usize = 64;

/// How long after a menu choice a `#` is taken as the choice's terminator.
pub(super) const CHOICE_TERMINATOR_WINDOW: Duration = Duration::from_secs(3);

/// A key waiting to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Kept {
    pub(super) key: char,
    /// May be part of a secret: the recording must not hear it.
    pub(super) guarded: bool,
}

impl Interpreter {
    /// The flow's escape key, if it has one.
    pub(super) fn escape_key(&self) -> Option<char> {
        self.flow.escape.as_ref().and_then(|e| e.key.chars().next())
    }

    /// Whether `key`, typed in `st` outside an entry, is the escape: the
    /// first key of the entry to come, and one every possible reader of it
    /// takes as the escape.
    pub(super) fn escapes_now(&self, st: &State, key: char) -> bool {
        if st.secure || self.escape_key() != Some(key) || !self.type_ahead.is_empty() {
            return false;
        }
        self.routes
            .get(&self.state)
            .consumers
            .iter()
            .all(|c| match self.flow.states.get(c) {
                Some(s) if s.secure => false,
                Some(State {
                    kind: Kind::Collect { spec, .. },
                    ..
                }) => spec.escape,
                Some(State {
                    kind: Kind::Menu { spec, .. },
                    ..
                }) => !spec.options.contains_key(&key.to_string()),
                _ => false,
            })
    }

    /// Whether a key typed now in `st` and kept may end up in a secure
    /// value (see the module docs).
    pub(super) fn kept_key_is_guarded(&self, st: &State, key: char) -> bool {
        if self.secure || st.secure || st.guard_keys {
            return true;
        }
        let routes = self.routes.get(&self.state);
        if routes.secure_direct {
            return true;
        }
        if !routes.secure_after_entry {
            return false;
        }
        // Only what a non-secure entry leaves over can go on to a secret.
        // When that entry is known, sort its keys from the rest.
        let mut next = routes.consumers.iter();
        let (Some(only), None) = (next.next(), next.next()) else {
            return true;
        };
        let Some(State {
            kind: Kind::Collect { spec, .. },
            secure: false,
            ..
        }) = self.flow.states.get(only)
        else {
            return true;
        };
        let keys: Vec<char> = self
            .type_ahead
            .iter()
            .map(|k| k.key)
            .chain(std::iter::once(key))
            .collect();
        collect::is_leftover(spec, self.escape_key(), &keys)
    }

    /// Keep `key` for the next reader; turn the guard on if it is guarded.
    pub(super) fn keep(&mut self, key: char, guarded: bool) {
        if self.type_ahead.len() >= MAX_TYPE_AHEAD {
            return;
        }
        self.type_ahead.push_back(Kept { key, guarded });
        // Inside the segment the recording is off anyway; the guard is
        // raised when the segment ends with such keys still waiting.
        if guarded && !self.secure {
            self.raise_guard();
        }
    }

    pub(super) fn raise_guard(&mut self) {
        if !self.guard {
            self.guard = true;
            self.emit(Command::KeyGuard(true));
        }
    }

    /// Leaving the secure segment with guarded keys still waiting: guard
    /// them before the segment's suppression ends.
    pub(super) fn guard_waiting_keys(&mut self) {
        if self.type_ahead.iter().any(|k| k.guarded) {
            self.raise_guard();
        }
    }

    /// After every input: the guard is off once no guarded key waits.
    pub(super) fn settle_guard(&mut self) {
        if self.guard && !self.type_ahead.iter().any(|k| k.guarded) {
            self.guard = false;
            self.emit(Command::KeyGuard(false));
        }
    }

    /// Drop every kept key (a failed entry, an escape, the end of the call).
    pub(super) fn flush_keys(&mut self) {
        self.type_ahead.clear();
    }

    /// A terminator right after an entry or a choice belongs to it: if it
    /// is already waiting, drop it now; otherwise swallow it when it comes
    /// before `until`.
    pub(super) fn swallow(&mut self, terminator: char, until: Instant) {
        if self.type_ahead.front().map(|k| k.key) == Some(terminator) {
            self.type_ahead.pop_front();
        } else {
            self.swallowing = Some((terminator, until));
        }
    }

    /// Whether a live key is the terminator being swallowed (any key ends
    /// the wait for it).
    pub(super) fn swallowed(&mut self, now: Instant, key: char) -> bool {
        matches!(self.swallowing.take(), Some((t, until)) if t == key && now <= until)
    }
}
