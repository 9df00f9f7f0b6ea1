//! Lining a call's outgoing packet times up just after its caller's packets.
//!
//! A call reads its socket in its own turns, and its turns come at its packet
//! deadlines (`runtime::ingress`): a key the caller presses is heard at the
//! next deadline after its packet arrived, and the answer (the next prompt)
//! leaves in that same turn. With the deadlines at an arbitrary phase to the
//! caller's packets, a key waited anything from 0 to a whole packet time
//! (20 ms) before it was heard: p99 ≈ 19.8 ms before any work was done.
//!
//! Phones send their packets at their own steady 20 ms (audio, and the
//! RFC 4733 events that replace it while a key is down). So each call measures,
//! for every packet its caller sends, the *slack*: how long before the call's
//! next deadline it arrived. Over a window of packets it takes the
//! second-smallest slack (one straggler is ignored) and, when that is below
//! zero (the caller's packets now arrive after the deadline: they wait a
//! whole packet time) or needlessly large, moves all of the call's future
//! deadlines by whole pacing-grid steps so that it lands in 1–6 ms. The
//! deadlines stay on the process's pacing grid and one packet time apart;
//! only the interval at the move is longer or shorter, by whole steps.
//!
//! It moves nothing when the slacks are spread over more than 8 ms (a caller
//! with another packet time, or a jittery path: there is no phase to lock
//! to), and the band it keeps (0–11 ms) is wider than the one it aims for,
//! so a caller whose packets jitter around a boundary does not make it move
//! back and forth. A clock that drifts against ours moves the phase by a step
//! now and then (100 ppm: a step every ~50 s).

use std::time::Duration;

/// Packets in the first window (the first lock comes this many packets in).
const FIRST_WINDOW: u32 = 10;
/// Packets in every later window (1 s at 20 ms).
const WINDOW: u32 = 50;
/// After a move, the window's second-smallest slack lies in
/// `[TARGET, TARGET + step)`.
const TARGET: Duration = Duration::from_millis(1);
/// A window whose second-smallest slack is at least this moves earlier.
const KEEP_BELOW: Duration = Duration::from_millis(11);
/// A window whose slacks (second-smallest to second-largest) spread wider
/// than this moves nothing.
const MAX_SPREAD: Duration = Duration::from_millis(8);

/// One call's phase lock (see the module docs).
#[derive(Debug)]
pub struct PhaseLock {
    /// Moves are whole multiples of this (the pacing grid's step).
    step: i64,
    /// Moves are shorter than this (the packet time).
    ptime: i64,
    window: u32,
    seen: u32,
    /// The two smallest and the two largest slacks of the window (ns).
    least: [i64; 2],
    most: [i64; 2],
}

impl PhaseLock {
    /// A lock whose moves are whole `step`s and shorter than `ptime`; `None`
    /// for a zero step or one that does not fit in a packet time.
    pub fn new(step: Duration, ptime: Duration) -> Option<PhaseLock> {
        let step = i64::try_from(step.as_nanos()).ok()?;
        let ptime = i64::try_from(ptime.as_nanos()).ok()?;
        (step > 0 && step < ptime).then_some(PhaseLock {
            step,
            ptime,
            window: FIRST_WINDOW,
            seen: 0,
            least: [i64::MAX; 2],
            most: [i64::MIN; 2],
        })
    }

    /// `shift` (from [`PhaseLock::observe`]) cut to whole steps so that a
    /// deadline `room` ns away stays ahead (only an earlier move can pass it).
    pub fn fit(&self, shift: i64, room: i64) -> i64 {
        if shift >= 0 || room + shift >= 0 {
            return shift;
        }
        -(room.max(0) / self.step) * self.step
    }

    /// A caller packet arrived `slack` ns before the call's next deadline
    /// (negative: after it). `Some(shift)`: move every future deadline by
    /// `shift` ns (a whole number of steps, shorter than a packet time; a
    /// negative shift never puts the next deadline before this arrival).
    pub fn observe(&mut self, slack: i64) -> Option<i64> {
        if slack < self.least[0] {
            self.least = [slack, self.least[0]];
        } else if slack < self.least[1] {
            self.least[1] = slack;
        }
        if slack > self.most[0] {
            self.most = [slack, self.most[0]];
        } else if slack > self.most[1] {
            self.most[1] = slack;
        }
        self.seen += 1;
        if self.seen < self.window {
            return None;
        }
        let (low, high) = (self.least[1], self.most[1]);
        self.seen = 0;
        self.window = WINDOW;
        self.least = [i64::MAX; 2];
        self.most = [i64::MIN; 2];
        if high.saturating_sub(low) > MAX_SPREAD.as_nanos() as i64 {
            return None;
        }
        let keep_below = KEEP_BELOW.as_nanos() as i64;
        if (0..keep_below).contains(&low) {
            return None;
        }
        // The smallest whole number of steps that brings `low` to TARGET or above.
        let want = TARGET.as_nanos() as i64 - low;
        let mut steps = want.div_euclid(self.step) + i64::from(want.rem_euclid(self.step) != 0);
        // Shorter than a packet time, and never before this packet's arrival.
        let max = (self.ptime - 1) / self.step;
        steps = steps.clamp(-max, max);
        while steps < 0 && slack + steps * self.step < 0 {
            steps += 1;
        }
        (steps != 0).then_some(steps * self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn lock() -> PhaseLock {
        PhaseLock::new(Duration::from_millis(5), Duration::from_millis(20)).expect("valid")
    }

    /// Feed `n` packets with slacks from `slack(i)`; the moves made.
    fn feed(l: &mut PhaseLock, n: u32, slack: impl Fn(u32) -> i64) -> Vec<i64> {
        (0..n).filter_map(|i| l.observe(slack(i))).collect()
    }

    #[test]
    fn a_caller_just_after_the_deadline_moves_it_a_step_later() {
        let mut l = lock();
        // Arrives 2 ms after each deadline: a key would wait 18 ms.
        assert_eq!(feed(&mut l, FIRST_WINDOW, |_| -2 * MS), vec![5 * MS]);
        // Now 3 ms before: nothing more moves.
        assert!(feed(&mut l, 500, |_| 3 * MS).is_empty());
    }

    #[test]
    fn a_caller_long_before_the_deadline_moves_it_earlier_but_not_past_the_packet() {
        let mut l = lock();
        // 17 ms of slack: aim for [1, 6) ms, i.e. three steps earlier.
        assert_eq!(feed(&mut l, FIRST_WINDOW, |_| 17 * MS), vec![-15 * MS]);
        // The packet that closes the window arrived 12 ms before: two steps at most.
        let mut l = lock();
        let moves = feed(&mut l, FIRST_WINDOW, |i| {
            if i + 1 == FIRST_WINDOW {
                12 * MS
            } else {
                17 * MS
            }
        });
        assert_eq!(moves, vec![-10 * MS]);
    }

    #[test]
    fn inside_the_band_nothing_moves() {
        let mut l = lock();
        for slack in [0, MS, 6 * MS, 10 * MS] {
            assert!(feed(&mut l, 200, |_| slack).is_empty(), "{slack}");
        }
    }

    #[test]
    fn one_straggler_does_not_move_it() {
        let mut l = lock();
        let moves = feed(&mut l, 500, |i| if i % 50 == 7 { -9 * MS } else { 4 * MS });
        assert!(moves.is_empty());
    }

    #[test]
    fn slacks_spread_over_the_packet_time_move_nothing() {
        // A caller with 30 ms packets against our 20 ms: its phase walks round.
        let mut l = lock();
        let moves = feed(&mut l, 1000, |i| {
            let t = i64::from(i) * 30 * MS;
            20 * MS - t.rem_euclid(20 * MS) - 10 * MS
        });
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn a_drifting_clock_moves_a_step_at_a_time_and_rarely() {
        // The caller's packets come 2 µs later every packet (100 ppm).
        let mut l = lock();
        let mut offset = 0i64;
        let mut moves = 0;
        for i in 0..50_000 {
            let slack = 3 * MS - i * 2_000 + offset;
            if let Some(m) = l.observe(slack) {
                assert_eq!(m, 5 * MS, "packet {i}");
                offset += m;
                moves += 1;
            }
        }
        // 100 ms of drift over 1000 s, in 5 ms steps.
        assert!((19..=21).contains(&moves), "{moves}");
    }

    #[test]
    fn an_earlier_move_never_passes_the_next_deadline() {
        let l = lock();
        assert_eq!(l.fit(5 * MS, 0), 5 * MS);
        assert_eq!(l.fit(-15 * MS, 20 * MS), -15 * MS);
        assert_eq!(l.fit(-15 * MS, 12 * MS), -10 * MS);
        assert_eq!(l.fit(-15 * MS, 4 * MS), 0);
        assert_eq!(l.fit(-15 * MS, -MS), 0);
    }

    #[test]
    fn a_step_that_does_not_fit_a_packet_time_is_no_lock() {
        let ms = Duration::from_millis;
        assert!(PhaseLock::new(ms(0), ms(20)).is_none());
        assert!(PhaseLock::new(ms(20), ms(20)).is_none());
        assert!(PhaseLock::new(ms(5), ms(10)).is_some());
    }
}
