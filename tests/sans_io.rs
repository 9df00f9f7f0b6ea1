//! The sans-IO claim, checked: `sip/`, `media/`, `flow/` and `call.rs` (and the small
//! modules they build on) never reach for tokio, a socket, a clock, a global RNG, a file,
//! the environment or a new thread. A call is driven by `handle_*(now, input)` and
//! `poll_*()`; all IO belongs to `runtime/` (see DESIGN.md, "Layers").
//!
//! The check reads the source: comments, string and character literals and test code
//! (`#[cfg(test)]` items and the `tests.rs` files they declare) are removed, then every
//! remaining line is matched against [`FORBIDDEN`], and every `crate::` path against the
//! layers a sans-IO module may use. A hit fails the test with file, line and reason,
//! unless [`ALLOWED`] lists it with its reason; an entry that no longer matches anything
//! fails too, so the list only ever shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The sans-IO modules: directories (recursively) and single files.
const SANS_IO: &[&str] = &[
    "src/sip",
    "src/media",
    "src/flow",
    "src/call.rs",
    // What those build on; they must be as pure as their users.
    "src/codec.rs",
    "src/vars.rs",
    "src/secret.rs",
    "src/template.rs",
    "src/duration.rs",
];

/// The modules a sans-IO module may name as `crate::…`.
const PURE_MODULES: &[&str] = &[
    "sip", "media", "flow", "call", "codec", "vars", "secret", "template", "duration",
];

/// (pattern, what it reaches for).
const FORBIDDEN: &[(&str, &str)] = &[
    (r"\btokio\b", "the tokio runtime"),
    (r"\bmio\b|\bsocket2\b", "a socket library"),
    (
        r"\b(UdpSocket|TcpStream|TcpListener|UnixStream|UnixListener|UnixDatagram)\b",
        "a socket",
    ),
    (r"\bstd\s*::\s*net\s*::\s*\*", "a socket (std::net::*)"),
    (
        r"\b(Instant|SystemTime|Utc|Local|OffsetDateTime)\s*::\s*now(_utc|_local)?\b",
        "the clock (now comes in as an argument)",
    ),
    (
        r"\bthread_rng\b|\brand\s*::\s*(random|rng)\b|\bOsRng\b|\bgetrandom\b|\bfastrand\b",
        "a global RNG (randomness comes from an RNG the caller owns)",
    ),
    (
        r"\bstd\s*::\s*fs\b|\bfs\s*::|\bFile\s*::\s*(open|create)\b|\bOpenOptions\b|\bread_dir\b",
        "a file (crate::files reads them)",
    ),
    (
        r"\bWavReader\s*::\s*open\b|\bWavWriter\s*::\s*create\b",
        "a file (through hound)",
    ),
    (
        r"\bspawn(_blocking|_local)?\b|\bstd\s*::\s*thread\b|\bthread\s*::",
        "a thread or task",
    ),
    (r"\bstd\s*::\s*process\b", "a process"),
    (
        r"\bstd\s*::\s*env\b|\benv\s*::\s*(var|vars|var_os)\b",
        "the environment",
    ),
];

/// Known exceptions: (file, pattern that matched, why, and until when). Empty: the last
/// one (`thread_rng` in `sip::random_token`) went when the endpoint got its own `TokenRng`.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// Source text with comments, string/char literals (their contents) and nothing else
/// changed; newlines are kept so line numbers stay right.
fn strip_comments_and_literals(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    // Keep newlines of a skipped span.
    let blank = |out: &mut String, span: &[u8]| {
        for &c in span {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            blank(&mut out, &rest[2..len]);
            i += len;
        } else if rest[0] == b'"' || rest.starts_with(b"b\"") {
            let start = usize::from(rest[0] == b'b');
            let mut j = start + 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            out.push_str("\"\"");
            blank(&mut out, &rest[2.min(end)..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\'', '\u{1F600}') or a lifetime ('a).
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + ch_len) == Some(&b'\'')).then_some(ch_len + 2)
            };
            match len {
                Some(len) => {
                    out.push_str("' '");
                    blank(&mut out, &rest[3.min(len)..len]);
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br##"…"##`) starting here.
fn raw_string_len(b: &[u8]) -> Option<usize> {
    let start = if b.starts_with(b"br") {
        2
    } else if b.starts_with(b"r") {
        1
    } else {
        return None;
    };
    let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
    if b.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    let body = start + hashes + 1;
    let end = b[body..].windows(close.len()).position(|w| w == close)?;
    Some(body + end + close.len())
}

/// Blanks every item marked `#[cfg(test)]` (a block item up to its closing brace, or a
/// `…;` item) and returns the names of `#[cfg(test)] mod NAME;` files. Expects stripped
/// source, so braces and semicolons are code.
fn strip_test_items(code: &str) -> (String, Vec<String>) {
    let attr = Regex::new(r"#\[cfg\(\s*test\s*\)\]").unwrap();
    let file_mod =
        Regex::new(r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;").unwrap();
    let mut out: Vec<u8> = code.as_bytes().to_vec();
    let mut test_files = Vec::new();
    for m in attr.find_iter(code) {
        let after = &code[m.end()..];
        if let Some(c) = file_mod.captures(after) {
            test_files.push(c[1].to_string());
        }
        // Blank from the attribute to the end of the item.
        let bytes = after.as_bytes();
        let mut depth = 0usize;
        let mut end = bytes.len();
        for (j, &c) in bytes.iter().enumerate() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        for c in &mut out[m.start()..m.end() + end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    (
        String::from_utf8(out).expect("blanking keeps UTF-8"),
        test_files,
    )
}

/// One finding: file, line, what was found, why it is forbidden.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    file: String,
    line: usize,
    found: String,
    reason: String,
}

/// The compiled [`FORBIDDEN`] patterns.
fn forbidden() -> &'static [(Regex, &'static str)] {
    static RE: std::sync::OnceLock<Vec<(Regex, &'static str)>> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        FORBIDDEN
            .iter()
            .map(|(p, why)| (Regex::new(p).expect("pattern"), *why))
            .collect()
    })
}

/// Every forbidden use in one file's source (`file` as it is reported), and the
/// test-only module files it declares.
fn scan_source(file: &str, src: &str) -> (Vec<Finding>, Vec<String>) {
    let (code, test_files) = strip_test_items(&strip_comments_and_literals(src));
    let crate_path = Regex::new(r"\bcrate\s*::\s*(\w+)").unwrap();
    let mut findings = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for (re, reason) in forbidden() {
            for m in re.find_iter(line) {
                findings.push(Finding {
                    file: file.to_string(),
                    line: n + 1,
                    found: m.as_str().to_string(),
                    reason: reason.to_string(),
                });
            }
        }
        for c in crate_path.captures_iter(line) {
            if !PURE_MODULES.contains(&&c[1]) {
                findings.push(Finding {
                    file: file.to_string(),
                    line: n + 1,
                    found: c[0].to_string(),
                    reason: format!("crate::{} is not a sans-IO module", &c[1]),
                });
            }
        }
    }
    (findings, test_files)
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            rust_files(&p, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Scans every sans-IO file of the crate at `root`, skipping test-only files.
fn scan_tree(root: &Path) -> Vec<Finding> {
    let mut files = Vec::new();
    for entry in SANS_IO {
        let path = root.join(entry);
        assert!(path.exists(), "{entry} does not exist: update SANS_IO");
        rust_files(&path, &mut files);
    }
    let mut test_only: BTreeSet<String> = BTreeSet::new();
    let mut findings = Vec::new();
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned()
    };
    for path in &files {
        let src = std::fs::read_to_string(path).expect("read source");
        let (found, test_mods) = scan_source(&rel(path), &src);
        findings.extend(found);
        // `#[cfg(test)] mod tests;` in a/b.rs or a/b/mod.rs is a/b/tests.rs, or every
        // file under a/b/tests/.
        let dir = if path.file_name().is_some_and(|n| n == "mod.rs") {
            path.parent().expect("parent").to_path_buf()
        } else {
            path.with_extension("")
        };
        for m in test_mods {
            let mut nested = vec![dir.join(format!("{m}.rs"))];
            let sub = dir.join(&m);
            if sub.is_dir() {
                rust_files(&sub, &mut nested);
            }
            test_only.extend(nested.iter().map(|p| rel(p)));
        }
    }
    findings.retain(|f| !test_only.contains(&f.file));
    findings.sort();
    findings
}

#[test]
fn sans_io_modules_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let findings = scan_tree(root);
    let allowed = |f: &Finding| {
        ALLOWED
            .iter()
            .any(|(file, pattern, _)| f.file == *file && f.found == *pattern)
    };
    let problems: Vec<String> = findings
        .iter()
        .filter(|f| !allowed(f))
        .map(|f| format!("{}:{}: `{}`: {}", f.file, f.line, f.found, f.reason))
        .collect();
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|(file, pattern, _)| {
            !findings
                .iter()
                .any(|f| f.file == *file && f.found == *pattern)
        })
        .map(|(file, pattern, _)| {
            format!("{file}: `{pattern}` is allowed but no longer used: remove it from ALLOWED")
        })
        .collect();
    assert!(
        problems.is_empty() && stale.is_empty(),
        "sans-IO rule broken (see DESIGN.md, Layers):\n{}",
        problems
            .iter()
            .chain(&stale)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The scanner itself: it finds what it must and ignores comments, literals and tests.
#[test]
fn the_scanner_finds_io_and_ignores_comments_literals_and_tests() {
    let src = r####"
//! Docs may say tokio::spawn and Instant::now().
use std::time::Instant; /* std::fs::read in a comment */
const MSG: &str = "thread_rng() and std::fs in a string";
const RAW: &str = r#"tokio::spawn in a "raw" string"#;
const Q: char = '"';
fn f<'a>(now: Instant, s: &'a str) -> &'a str { let _ = Q; s }
fn g() { let t = Instant::now(); }
fn h() { let data = std::fs::read("x"); let r = rand::thread_rng(); }
fn i() { tokio::spawn(async {}); let s = std::net::UdpSocket::bind("0:0"); }
fn j() { let v = std::env::var("HOME"); let _ = crate::runtime::server::serve; }
#[cfg(test)]
mod tests {
    fn t() { let t = std::time::Instant::now(); std::fs::write("x", "y"); }
}
#[cfg(test)]
mod more_tests;
#[cfg(test)]
fn helper() { tokio::spawn(async {}); }
fn k() { let c = crate::codec::Codec::Pcmu; let p = SystemTime::now(); }
"####;
    let (findings, test_mods) = scan_source("x.rs", src);
    let got: Vec<(usize, &str)> = findings
        .iter()
        .map(|f| (f.line, f.found.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (8, "Instant::now"),
            (9, "thread_rng"),
            (9, "std::fs"),
            (10, "tokio"),
            (10, "UdpSocket"),
            (10, "spawn"),
            (11, "std::env"),
            (11, "crate::runtime"),
            (20, "SystemTime::now"),
        ]
    );
    assert_eq!(test_mods, ["more_tests"]);
}
