//! Sliding-window rate limits per key (caller ANI, account id), sans-IO.
//!
//! Each key keeps the instants of its admitted events inside the window, at
//! most `max` of them, so memory per key is bounded; the number of keys is
//! bounded by `max_keys`. When the table is full, keys whose window is empty
//! are dropped first, then the key idle longest — an attacker spraying new
//! keys can only push out the quietest callers, never reset a busy one before
//! the whole table has turned over. State is per process; a shared store is
//! the job of a deployment with several instances (see DESIGN.md, Scaling out).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `{ max: 5, window: 1h }` in the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Events admitted per key within any `window`.
    pub max: u32,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub window: Duration,
    /// Keys tracked at once (default 100 000).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    100_000
}

pub struct RateLimiter {
    max: usize,
    window: Duration,
    max_keys: usize,
    keys: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration, max_keys: usize) -> Self {
        RateLimiter {
            max: max as usize,
            window,
            max_keys: max_keys.max(1),
            keys: HashMap::new(),
        }
    }

    /// Forget every key (the demo's reset).
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    pub fn from_config(c: &RateLimitConfig) -> Self {
        Self::new(c.max, c.window, c.max_keys)
    }

    /// True (and the event is counted) if `key` has had fewer than `max`
    /// admitted events in the window ending at `now`; false otherwise
    /// (refused events are not counted, so a caller who waits gets in).
    pub fn check_and_record(&mut self, now: Instant, key: &str) -> bool {
        if self.max == 0 {
            return false;
        }
        let window = self.window;
        if let Some(q) = self.keys.get_mut(key) {
            prune(q, now, window);
            if q.len() >= self.max {
                return false;
            }
            q.push_back(now);
            return true;
        }
        if self.keys.len() >= self.max_keys {
            self.evict(now);
        }
        self.keys.insert(key.to_string(), VecDeque::from([now]));
        true
    }

    /// Events still admissible for `key` at `now` (does not record).
    pub fn remaining(&self, now: Instant, key: &str) -> u32 {
        let used = self.keys.get(key).map_or(0, |q| {
            q.iter()
                .filter(|t| now.saturating_duration_since(**t) < self.window)
                .count()
        });
        self.max.saturating_sub(used) as u32
    }

    /// Follow a changed configuration (a reload) without forgetting what
    /// was admitted: a lower `max` applies at once to the events already in
    /// the window; a smaller table drops the keys idle longest.
    pub fn reconfigure(&mut self, c: &RateLimitConfig) {
        self.max = c.max as usize;
        self.window = c.window;
        self.max_keys = c.max_keys.max(1);
        if self.keys.len() > self.max_keys {
            let mut by_last: Vec<(Option<Instant>, String)> = self
                .keys
                .iter()
                .map(|(k, q)| (q.back().copied(), k.clone()))
                .collect();
            by_last.sort_unstable();
            let excess = self.keys.len() - self.max_keys;
            for (_, k) in by_last.into_iter().take(excess) {
                self.keys.remove(&k);
            }
        }
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.keys.retain(|_, q| {
            prune(q, now, window);
            !q.is_empty()
        });
        if self.keys.len() < self.max_keys {
            return;
        }
        let idlest = self
            .keys
            .iter()
            .min_by_key(|(_, q)| q.back().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = idlest {
            self.keys.remove(&k);
        }
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while let Some(front) = q.front() {
        if now.saturating_duration_since(*front) >= window {
            q.pop_front();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_table() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut rl = RateLimiter::new(3, Duration::from_secs(60), 100);
        // (time, key, admitted)
        let steps = [
            (0, "ani1", true),
            (10, "ani1", true),
            (20, "ani1", true),
            (30, "ani1", false), // 4th within 60 s
            (30, "ani2", true),  // keys are independent
            (59, "ani1", false),
            (60, "ani1", true), // the t=0 event left the window
            (61, "ani1", false),
            (70, "ani1", true), // t=10 left
            (200, "ani1", true),
        ];
        for (at, key, want) in steps {
            assert_eq!(rl.check_and_record(s(at), key), want, "t={at} {key}");
        }
        assert_eq!(rl.remaining(s(200), "ani1"), 2);
        // The demo's reset forgets every key.
        rl.clear();
        assert!(rl.is_empty());
        assert_eq!(rl.remaining(s(200), "ani1"), 3);
        assert_eq!(rl.remaining(s(200), "nobody"), 3);
    }

    #[test]
    fn memory_is_bounded_and_busy_keys_survive() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut rl = RateLimiter::new(2, Duration::from_secs(60), 10);
        assert!(rl.check_and_record(at(0), "victim"));
        assert!(rl.check_and_record(at(50_000), "quiet"));
        assert!(rl.check_and_record(at(50_001), "victim"));
        // Fill the table: the quiet key (idle longest) goes before the victim.
        for i in 0..9u64 {
            assert!(rl.check_and_record(at(51_000 + i), &format!("spray{i}")));
        }
        assert_eq!(rl.len(), 10);
        assert!(
            !rl.check_and_record(at(52_000), "victim"),
            "victim still limited"
        );
        assert_eq!(
            rl.remaining(at(52_000), "quiet"),
            2,
            "quiet key was evicted"
        );
        for i in 0..1000u64 {
            rl.check_and_record(at(53_000 + i), &format!("more{i}"));
            assert!(rl.len() <= 10);
        }
        // Expired keys are dropped first.
        assert!(rl.check_and_record(at(1_000_000), "new"));
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn reconfigure_keeps_history() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut rl = RateLimiter::new(5, Duration::from_secs(60), 10);
        assert!(rl.check_and_record(at(0), "b"));
        for i in 1..4 {
            assert!(rl.check_and_record(at(i), "a"));
        }
        let lower = RateLimitConfig {
            max: 3,
            window: Duration::from_secs(60),
            max_keys: 1,
        };
        rl.reconfigure(&lower);
        assert_eq!(rl.len(), 1, "the table shrank to its new size");
        assert!(!rl.check_and_record(at(4), "a"), "3 already used of 3");
        assert_eq!(rl.remaining(at(4), "b"), 3, "b (idle longest) was dropped");
        let longer = RateLimitConfig {
            window: Duration::from_secs(600),
            ..lower
        };
        rl.reconfigure(&longer);
        assert!(
            !rl.check_and_record(at(100), "a"),
            "a longer window counts back further"
        );
    }

    #[test]
    fn zero_max_refuses() {
        let mut rl = RateLimiter::new(0, Duration::from_secs(1), 10);
        assert!(!rl.check_and_record(Instant::now(), "k"));
    }
}
