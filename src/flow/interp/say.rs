//! What a flow asks the call to play, in the flow's own terms ([`Say`]:
//! a prompt, a spoken digit, a silence), rendered from the flow file's play
//! items (`digits` templates become one [`Say::Digit`] per digit), and the
//! `Play` command. The call translates `Say` for the media layer, as it
//! translates flow commands for SIP; nothing here knows about RTP.

use std::time::Duration;

use super::super::model;
use super::{Command, Interpreter, TimelineEvent};

/// One thing to play.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Say {
    /// A prompt by name (`welcome`).
    Prompt(String),
    /// One digit `0`–`9`, spoken with the prompt [`digit_prompt`] names.
    /// Only plain (never secret) values are spoken: the validator proves it.
    Digit(char),
    /// Silence.
    Silence(Duration),
}

/// The prompt that speaks digit `d` (`digit_7`): the flow's convention,
/// checked by the validator wherever a flow speaks digits.
pub fn digit_prompt(d: char) -> String {
    format!("digit_{d}")
}

impl Say {
    /// The prompt this item plays, if any (silences have none).
    pub fn prompt_name(&self) -> Option<String> {
        match self {
            Say::Prompt(p) => Some(p.clone()),
            Say::Digit(d) => Some(digit_prompt(*d)),
            Say::Silence(_) => None,
        }
    }
}

impl Interpreter {
    /// Render play items (a `digits` template, compiled with the flow, into
    /// one `Digit` per digit). `None` after failing the call on a template
    /// error.
    pub(super) fn render(&mut self, items: &[model::PlayItem]) -> Option<Vec<Say>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                model::PlayItem::Prompt(p) => out.push(Say::Prompt(p.clone())),
                model::PlayItem::Silence(d) => out.push(Say::Silence(*d)),
                model::PlayItem::Digits(src) => match src.render(&self.vars, false) {
                    Ok(text) => {
                        out.extend(text.chars().filter(char::is_ascii_digit).map(Say::Digit))
                    }
                    Err(e) => {
                        self.fail(&format!("digits: {e}"));
                        return None;
                    }
                },
            }
        }
        Some(out)
    }

    pub(super) fn emit_play(&mut self, id: u64, items: Vec<Say>, barge_in: bool) {
        let prompts = items.iter().filter_map(Say::prompt_name).collect();
        self.timeline(TimelineEvent::PromptPlayed { prompts });
        self.emit(Command::Play {
            id,
            items,
            barge_in,
        });
    }

    /// Render and play; false after failing the call.
    pub(super) fn play(&mut self, id: u64, items: &[model::PlayItem], barge_in: bool) -> bool {
        match self.render(items) {
            Some(items) => {
                self.emit_play(id, items, barge_in);
                true
            }
            None => false,
        }
    }
}
