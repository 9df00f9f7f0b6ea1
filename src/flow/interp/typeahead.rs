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

use zeroize::Zeroize;

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

/// The keys waiting to be read, oldest first. A kept key may be a digit of a
/// code or a PIN typed ahead, so it is treated like a [`crate::secret::Secret`]:
/// a fixed ring inside the interpreter (it never grows, so no reallocation
/// leaves a copy behind), each slot zeroed as its key leaves, and the whole
/// ring zeroed when dropped. `Debug` shows only how many keys wait.
/// Keys are DTMF symbols (ASCII); anything else is not kept.
pub(super) struct KeptKeys {
    keys: [u8; MAX_TYPE_AHEAD],
    guarded: [bool; MAX_TYPE_AHEAD],
    head: usize,
    len: usize,
}

impl KeptKeys {
    pub(super) fn new() -> Self {
        KeptKeys {
            keys: [0; MAX_TYPE_AHEAD],
            guarded: [false; MAX_TYPE_AHEAD],
            head: 0,
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> usize {
        (self.head + i) % MAX_TYPE_AHEAD
    }

    fn get(&self, i: usize) -> Kept {
        let at = self.slot(i);
        Kept {
            key: char::from(self.keys[at]),
            guarded: self.guarded[at],
        }
    }

    /// Reads slot `at` and zeroes it.
    fn take(&mut self, at: usize) -> Kept {
        let kept = Kept {
            key: char::from(self.keys[at]),
            guarded: self.guarded[at],
        };
        self.keys[at].zeroize();
        self.guarded[at] = false;
        kept
    }

    /// Appends `kept`; `false` (and nothing kept) when full or not ASCII.
    pub(super) fn push_back(&mut self, kept: Kept) -> bool {
        if self.len == MAX_TYPE_AHEAD || !kept.key.is_ascii() {
            return false;
        }
        let at = self.slot(self.len);
        self.keys[at] = kept.key as u8;
        self.guarded[at] = kept.guarded;
        self.len += 1;
        true
    }

    pub(super) fn front(&self) -> Option<Kept> {
        (!self.is_empty()).then(|| self.get(0))
    }

    pub(super) fn pop_front(&mut self) -> Option<Kept> {
        if self.is_empty() {
            return None;
        }
        let kept = self.take(self.head);
        self.head = (self.head + 1) % MAX_TYPE_AHEAD;
        self.len -= 1;
        Some(kept)
    }

    pub(super) fn pop_back(&mut self) -> Option<Kept> {
        if self.is_empty() {
            return None;
        }
        let kept = self.take(self.slot(self.len - 1));
        self.len -= 1;
        Some(kept)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Kept> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    /// Drops every key, zeroing the whole ring.
    pub(super) fn clear(&mut self) {
        self.keys.zeroize();
        self.guarded = [false; MAX_TYPE_AHEAD];
        self.head = 0;
        self.len = 0;
    }
}

impl Drop for KeptKeys {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for KeptKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptKeys({} waiting)", self.len)
    }
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
        // On the stack, not the heap: these may be digits of a code.
        let mut keys = ['\0'; MAX_TYPE_AHEAD + 1];
        let n = self.type_ahead.len();
        for (slot, k) in keys.iter_mut().zip(self.type_ahead.iter()) {
            *slot = k.key;
        }
        keys[n] = key;
        let leftover = collect::is_leftover(spec, self.escape_key(), &keys[..=n]);
        keys.zeroize();
        leftover
    }

    /// Keep `key` for the next reader; turn the guard on if it is guarded.
    pub(super) fn keep(&mut self, key: char, guarded: bool) {
        if !self.type_ahead.push_back(Kept { key, guarded }) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(key: char) -> Kept {
        Kept {
            key,
            guarded: key.is_ascii_digit(),
        }
    }

    /// Order, bounds, and no key left in a slot it has left.
    #[test]
    fn kept_keys_are_a_bounded_ring_that_zeroes_what_leaves() {
        let mut k = KeptKeys::new();
        for c in "4829#".chars() {
            assert!(k.push_back(kept(c)));
        }
        assert!(!k.push_back(kept('é')), "not a DTMF symbol");
        assert_eq!(k.front(), Some(kept('4')));
        assert_eq!(k.pop_front(), Some(kept('4')));
        assert_eq!(k.pop_back(), Some(kept('#')));
        assert_eq!(k.iter().map(|x| x.key).collect::<String>(), "829");
        assert_eq!(k.keys.iter().filter(|b| **b != 0).count(), 3);
        assert_eq!(format!("{k:?}"), "KeptKeys(3 waiting)");
        // Wrap around the end of the ring.
        for i in 0..MAX_TYPE_AHEAD - 3 {
            assert!(k.push_back(kept(char::from(b'0' + (i % 10) as u8))), "{i}");
        }
        assert!(!k.push_back(kept('1')), "full");
        assert_eq!(k.len(), MAX_TYPE_AHEAD);
        while k.pop_front().is_some() {}
        assert!(k.keys.iter().all(|b| *b == 0), "{:?}", k.keys);
        assert!(k.guarded.iter().all(|g| !g));
        for c in "1375".chars() {
            k.push_back(kept(c));
        }
        k.clear();
        assert!(k.is_empty() && k.keys.iter().all(|b| *b == 0));
    }
}
