//! Rendering a flow's play items (prompts, `digits` templates, silences)
//! into what the call plays, and the `Play` command.

use crate::template::Escape;

use super::super::model;
use super::{templates, Command, Interpreter, PlayItem, TimelineEvent};

impl Interpreter {
    /// Render play items (digits templates into digit prompts). `None`
    /// after failing the call on a template error.
    pub(super) fn render(&mut self, items: &[model::PlayItem]) -> Option<Vec<PlayItem>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                model::PlayItem::Prompt(p) => out.push(PlayItem::Prompt(p.clone())),
                model::PlayItem::Silence(d) => out.push(PlayItem::Silence(*d)),
                model::PlayItem::Digits(src) => {
                    match templates().render(src, &self.vars, Escape::None, false) {
                        Ok(text) => out.extend(
                            text.chars()
                                .filter(char::is_ascii_digit)
                                .map(|c| PlayItem::Prompt(format!("digit_{c}"))),
                        ),
                        Err(e) => {
                            self.fail(&format!("digits: {e}"));
                            return None;
                        }
                    }
                }
            }
        }
        Some(out)
    }

    pub(super) fn emit_play(&mut self, id: u64, items: Vec<PlayItem>, barge_in: bool) {
        let prompts = items
            .iter()
            .filter_map(|i| match i {
                PlayItem::Prompt(p) => Some(p.clone()),
                PlayItem::Silence(_) => None,
            })
            .collect();
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
