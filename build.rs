//! Embeds the shipped English prompts (`prompts/en/*.wav`) into the binary, so `sspr-ivr dial`
//! recognises what it hears from any directory (see `files::embedded_prompts`).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("prompts/en entry").file_name())
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.ends_with(".wav"))
        .collect();
    names.sort();
    let mut code = String::from("/// `prompts/en/*.wav`: (file name, bytes).\npub const PROMPTS_EN: &[(&str, &[u8])] = &[\n");
    for name in &names {
        let path = dir.join(name);
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("prompts_en.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
