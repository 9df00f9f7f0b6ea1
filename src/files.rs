//! The file reading that the sans-IO layers leave to their callers.
//!
//! `flow/` parses flow text and `media/` decodes WAV bytes, but neither opens a file
//! (the rule is checked by `tests/sans_io.rs`). Start-up loading (`config::Loaded`),
//! `sspr-ivr graph`, `dtmf`, `dial` and tests read through here, so a file that is missing
//! or unreadable is always an error naming it, in the layer's own error type.

use std::path::{Path, PathBuf};

use crate::flow::{Flow, FlowError};
use crate::media::{PromptCache, PromptError};

/// Reads and parses one flow file.
pub fn load_flow(path: &Path) -> Result<Flow, FlowError> {
    let text = std::fs::read_to_string(path).map_err(|source| FlowError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    crate::flow::model::parse(&text, path)
}

/// Reads every `*.wav` in `dir` (not recursive; other files are ignored) into a
/// [`PromptCache`]; see [`PromptCache::from_wav_files`] for what is checked.
pub fn load_prompts(dir: &Path) -> Result<PromptCache, PromptError> {
    let dir_err = |source| PromptError::Dir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        let is_wav = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if is_wav {
            let bytes = std::fs::read(&path).map_err(|source| PromptError::Read {
                file: path.clone(),
                source,
            })?;
            files.push((path, bytes));
        }
    }
    PromptCache::from_wav_files(dir, files)
}

/// The shipped English prompts (`prompts/en/*.wav`), embedded in the binary at build time
/// (`build.rs`): `sspr-ivr dial` recognises what it hears from any directory.
pub fn embedded_prompts() -> Result<PromptCache, PromptError> {
    mod generated {
        include!(concat!(env!("OUT_DIR"), "/prompts_en.rs"));
    }
    let dir = Path::new("prompts/en");
    PromptCache::from_wav_files(
        dir,
        generated::PROMPTS_EN
            .iter()
            .map(|(name, bytes)| (dir.join(name), bytes.to_vec())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded prompts are the files in `prompts/en`, byte for byte.
    #[test]
    fn embedded_prompts_match_the_prompt_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
        let on_disk = load_prompts(&dir).expect("prompts/en");
        let embedded = embedded_prompts().expect("embedded");
        let names: Vec<&str> = on_disk.names().collect();
        assert_eq!(embedded.names().collect::<Vec<_>>(), names);
        assert!(names.len() > 40, "{names:?}");
        for name in names {
            let pcm = |c: &PromptCache| c.get(name).map(|p| p.pcm().to_vec());
            assert_eq!(pcm(&embedded), pcm(&on_disk), "{name}");
        }
    }
}
