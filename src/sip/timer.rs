//! One deadline table for every SIP timer of an endpoint (RFC 3261 §17, Table 4),
//! in the style of quinn-proto's `TimerTable`: a timer is `(owner, Timer)`, setting it
//! again replaces the deadline, and `next()` is the earliest deadline of all.
//!
//! Two indexes keep both `set` and `next` logarithmic with hundreds of calls.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// The RFC 3261 timers, plus the UAS core's 2xx retransmission (§13.3.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// INVITE client: request retransmit (T1, doubling).
    A,
    /// INVITE client: transaction timeout (64*T1).
    B,
    /// INVITE client: wait for response retransmits after a non-2xx (32 s).
    D,
    /// Non-INVITE client: request retransmit (T1 doubling to T2).
    E,
    /// Non-INVITE client: transaction timeout (64*T1).
    F,
    /// INVITE server: non-2xx final response retransmit (T1 doubling to T2).
    G,
    /// INVITE server: wait for ACK (64*T1), for a non-2xx and, in the UAS core, a 2xx.
    H,
    /// INVITE server: absorb ACK retransmits (T4).
    I,
    /// Non-INVITE server: absorb request retransmits (64*T1).
    J,
    /// Non-INVITE client: absorb response retransmits (T4).
    K,
    /// INVITE server after a 2xx (RFC 6026 `Accepted`): absorb INVITE retransmits (64*T1).
    L,
    /// UAS core: 2xx retransmit until ACK (T1 doubling to T2).
    Retransmit2xx,
    /// UAS core: the dialog's session timer (RFC 4028): our refresh, or the
    /// caller's deadline.
    Session,
}

/// Deadlines keyed by `(owner, timer)`.
#[derive(Debug)]
pub struct TimerTable<K: Ord + Clone> {
    by_key: BTreeMap<(K, Timer), Instant>,
    by_time: BTreeSet<(Instant, K, Timer)>,
}

impl<K: Ord + Clone> Default for TimerTable<K> {
    fn default() -> Self {
        TimerTable {
            by_key: BTreeMap::new(),
            by_time: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> TimerTable<K> {
    pub fn set(&mut self, owner: K, timer: Timer, at: Instant) {
        if let Some(old) = self.by_key.insert((owner.clone(), timer), at) {
            self.by_time.remove(&(old, owner.clone(), timer));
        }
        self.by_time.insert((at, owner, timer));
    }

    pub fn stop(&mut self, owner: &K, timer: Timer) {
        if let Some(old) = self.by_key.remove(&(owner.clone(), timer)) {
            self.by_time.remove(&(old, owner.clone(), timer));
        }
    }

    /// Stop every timer of one owner.
    pub fn stop_all(&mut self, owner: &K) {
        let timers: Vec<Timer> = self
            .by_key
            .range((owner.clone(), Timer::A)..=(owner.clone(), Timer::Retransmit2xx))
            .map(|((_, t), _)| *t)
            .collect();
        for t in timers {
            self.stop(owner, t);
        }
    }

    pub fn get(&self, owner: &K, timer: Timer) -> Option<Instant> {
        self.by_key.get(&(owner.clone(), timer)).copied()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.iter().next().map(|(at, _, _)| *at)
    }

    /// Remove and return one timer that is due at `now` (with its deadline), earliest
    /// first. Rescheduling from the deadline rather than `now` keeps retransmissions
    /// on the RFC schedule even when the runtime wakes late.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(K, Timer, Instant)> {
        let first = self.by_time.iter().next()?.clone();
        if first.0 > now {
            return None;
        }
        self.by_time.remove(&first);
        self.by_key.remove(&(first.1.clone(), first.2));
        Some((first.1, first.2, first.0))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_replace() {
        let t0 = Instant::now();
        let mut t: TimerTable<u32> = TimerTable::default();
        t.set(1, Timer::H, t0 + Duration::from_secs(32));
        t.set(1, Timer::G, t0 + Duration::from_millis(500));
        t.set(2, Timer::J, t0 + Duration::from_secs(1));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(500)));
        t.set(1, Timer::G, t0 + Duration::from_secs(2));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_expired(t0), None);
        let late = t0 + Duration::from_secs(5);
        assert_eq!(
            t.pop_expired(late),
            Some((2, Timer::J, t0 + Duration::from_secs(1)))
        );
        assert_eq!(
            t.pop_expired(late),
            Some((1, Timer::G, t0 + Duration::from_secs(2)))
        );
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(5)), None);
        t.stop_all(&1);
        assert!(t.is_empty());
        assert_eq!(t.next(), None);
    }
}
