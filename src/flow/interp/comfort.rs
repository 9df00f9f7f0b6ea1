//! `comfort_loop`: hold music while the caller waits for the code, then a
//! menu (enter the code / resend), for a bounded number of rounds.

use std::time::Instant;

use super::super::model::ComfortLoop;
use super::{Activity, Interpreter, Say};

#[derive(Debug)]
pub(super) enum ComfortPart {
    Music { id: u64 },
    Menu { prompt: Option<u64> },
}

#[derive(Debug)]
pub(super) struct ComfortRun {
    pub(super) round: u32,
    pub(super) part: ComfortPart,
}

impl Interpreter {
    pub(super) fn start_music(&mut self, now: Instant, spec: &ComfortLoop) {
        let id = self.id();
        if let Activity::Comfort(run) = &mut self.activity {
            run.part = ComfortPart::Music { id };
        }
        self.emit_play(id, vec![Say::Prompt(spec.music.clone())], true);
        self.deadline = Some(now + spec.seconds.0);
    }

    pub(super) fn comfort_key(
        &mut self,
        now: Instant,
        spec: &ComfortLoop,
        d: char,
        is_escape: bool,
    ) {
        self.deadline = None;
        if let Some(to) = spec.options.get(&d.to_string()) {
            return self.goto(now, to);
        }
        if is_escape {
            return self.escape(now);
        }
        // An unknown key ends the round early, like silence would.
        self.deadline = Some(now);
        if let Activity::Comfort(run) = &mut self.activity {
            run.part = ComfortPart::Menu { prompt: None };
        }
        self.handle_timeout(now);
    }
}
