//! Random input sequences against the shipped SSPR flow (seeded, so
//! deterministic): whatever the caller types, whatever the backends answer
//! and whenever the caller hangs up, the interpreter never panics, never
//! asks for a deadline in the past, toggles the secure segment in strict
//! on/off pairs and ends outside it, never shows a digit collected in a
//! secure state, and ends every reset attempt with exactly one audit.

#[path = "golden/catalog.rs"]
mod catalog;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sspr_ivr::files::load_flow as load;
use sspr_ivr::flow::{Command, Interpreter, Say, TimelineEvent};
use sspr_ivr::vars::Vars;

#[test]
fn random_calls_keep_the_invariants() {
    let flow = Arc::new(
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/sspr.yaml")).expect("load"),
    );
    let cat = catalog::catalog();
    let keys: Vec<char> = "0123456789#*".chars().collect();
    let mut lookups_total = 0;
    let mut resets_total = 0;
    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let t0 = Instant::now();
        let mut vars = Vars::new();
        if rng.gen_bool(0.5) {
            vars.set_plain("enumeration_safe", "true");
        }
        let mut it = Interpreter::new(t0, flow.clone(), vars);
        let mut now = t0;
        let mut playing: Option<(u64, Instant)> = None;
        let mut action: Option<(u64, String, Instant)> = None;
        let mut transfer_at: Option<Instant> = None;
        let mut secure = false;
        let mut guard = false;
        let mut state_secure = false;
        let (mut audits, mut lookups) = (0, 0);
        // Half the callers type the same six digits over and over, so that
        // codes and PIN confirmations can match and calls reach the reset.
        let structured = rng.gen_bool(0.5);
        let mut typed = 0u32;
        let mut next_key = t0 + Duration::from_millis(rng.gen_range(0..4000));
        let hangup_at = t0 + Duration::from_millis(rng.gen_range(1000..200_000));
        for _ in 0..5000 {
            while let Some(c) = it.poll_command() {
                match c {
                    Command::Play { id, items, .. } => {
                        let len: u64 = items
                            .iter()
                            .map(|i| match i {
                                Say::Prompt(_) | Say::Digit(_) => 1500,
                                Say::Silence(d) => d.as_millis() as u64,
                            })
                            .sum();
                        playing = Some((id, now + Duration::from_millis(len)));
                    }
                    Command::StopPlayback => playing = None,
                    Command::RunAction { id, action: a, .. } => {
                        let latency = Duration::from_millis(rng.gen_range(10..4000));
                        action = Some((id, a, now + latency));
                    }
                    Command::Transfer { target, reason } => {
                        assert!(cat.transfer_targets.contains(&target));
                        assert!(reason.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                        assert!(!secure, "transfer inside the secure segment");
                        transfer_at = Some(now + Duration::from_millis(100));
                    }
                    Command::Secure(on) => {
                        assert_ne!(on, secure, "seed {seed}: Secure({on}) twice");
                        secure = on;
                    }
                    Command::KeyGuard(on) => {
                        assert_ne!(on, guard, "seed {seed}: KeyGuard({on}) twice");
                        guard = on;
                    }
                    Command::Audit { .. } => audits += 1,
                    Command::Hangup => {
                        assert!(!secure, "hangup inside the secure segment");
                        assert!(!guard, "seed {seed}: hangup with keys still guarded");
                    }
                    Command::Timeline(TimelineEvent::StateEntered { state, secure: s }) => {
                        state_secure = s;
                        if state == "lookup" {
                            lookups += 1;
                        }
                        if state == "reset" {
                            resets_total += 1;
                        }
                    }
                    Command::Timeline(TimelineEvent::DigitsCollected { shown, .. })
                        if state_secure =>
                    {
                        assert!(
                            shown.chars().all(|c| c == '*'),
                            "seed {seed}: secure digits shown"
                        );
                    }
                    Command::Timeline(_) => {}
                }
            }
            assert_eq!(secure, it.is_secure());
            assert_eq!(guard, it.is_guarding_keys());
            if it.is_finished() {
                break;
            }
            let timer = it.poll_timeout();
            if let Some(t) = timer {
                assert!(t >= now, "seed {seed}: deadline in the past");
            }
            let candidates = [
                timer,
                playing.map(|p| p.1),
                action.as_ref().map(|a| a.2),
                transfer_at,
                Some(next_key),
                Some(hangup_at),
            ];
            let next = candidates
                .into_iter()
                .flatten()
                .min()
                .expect("always a key");
            now = next;
            if hangup_at == now {
                it.handle_hangup(now);
            } else if transfer_at == Some(now) {
                transfer_at = None;
                it.handle_transfer_result(now, rng.gen_bool(0.5));
            } else if action.as_ref().is_some_and(|a| a.2 == now) {
                let (id, name, _) = action.take().expect("action");
                let outcomes = &cat.actions[&name].outcomes;
                let mut outputs = Vars::new();
                if name == "lookup_user" {
                    outputs.set_plain("user_id", "00u1");
                    outputs.set_plain("mobile", "+1 555 010 0199");
                    outputs.set_plain("factor", if rng.gen_bool(0.5) { "sms" } else { "email" });
                }
                // Mostly success, so that calls get deep into the flow.
                let outcome = if rng.gen_bool(0.6) {
                    "success"
                } else {
                    &outcomes[rng.gen_range(0..outcomes.len())]
                };
                it.handle_action_result(now, id, outcome, outputs);
            } else if playing.is_some_and(|p| p.1 == now) {
                let (id, _) = playing.take().expect("playing");
                it.handle_play_finished(now, id);
            } else if next_key == now {
                // Mostly plausible entries (digits in bursts), sometimes
                // anything, sometimes long pauses.
                typed += 1;
                let k = if structured {
                    char::from(b'1' + ((typed - 1) % 6) as u8)
                } else {
                    match rng.gen_range(0..100) {
                        0..=79 => char::from(b'1' + rng.gen_range(0..9u8)),
                        80..=87 => '#',
                        _ => keys[rng.gen_range(0..keys.len())],
                    }
                };
                it.handle_digit(now, k);
                let gap = if rng.gen_bool(0.85) {
                    rng.gen_range(50..600)
                } else {
                    rng.gen_range(600..12_000)
                };
                next_key = now + Duration::from_millis(gap);
            } else {
                it.handle_timeout(now);
            }
        }
        assert!(it.is_finished(), "seed {seed}: call never ended");
        assert!(
            !secure && !it.is_secure(),
            "seed {seed}: ended inside the secure segment"
        );
        assert_eq!(
            audits, lookups,
            "seed {seed}: {lookups} attempts but {audits} audits"
        );
        lookups_total += lookups;
    }
    assert!(
        lookups_total > 100,
        "random calls rarely reach the lookup ({lookups_total})"
    );
    assert!(
        resets_total > 10,
        "random calls rarely reach the PIN reset ({resets_total})"
    );
}
