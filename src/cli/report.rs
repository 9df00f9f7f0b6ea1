//! How the command line prints an error: one message, each cause once, no OS error numbers.
//!
//! Errors in this crate often put their cause into their own text (`config.yaml: cannot read:
//! No such file or directory`) and also return it as `source()`; printing the whole chain
//! would say it twice. The standard library adds ` (os error 2)` to I/O errors, which tells an
//! operator nothing the words do not.

/// The error and its causes on one line (`a: b: c`), skipping any cause whose text is
/// already there, with ` (os error N)` removed.
pub fn report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = without_os_error(&cause.to_string());
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `text` without the standard library's ` (os error N)` suffixes.
pub fn without_os_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{file}: cannot read: {source}")]
    struct Read {
        file: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = anyhow::Error::new(Read {
            file: "/etc/x.yaml".into(),
            source: io,
        });
        assert_eq!(
            report(&e),
            "/etc/x.yaml: cannot read: No such file or directory"
        );
    }

    #[test]
    fn context_and_cause_each_once() {
        let io = std::io::Error::from_raw_os_error(98);
        let e = anyhow::Error::new(io).context("bind SIP UDP 127.0.0.1:5060");
        assert_eq!(
            report(&e),
            "bind SIP UDP 127.0.0.1:5060: Address already in use"
        );
    }

    #[test]
    fn os_error_suffixes_go_and_other_parentheses_stay() {
        assert_eq!(
            without_os_error("a (os error 13) and b (os error 2)"),
            "a and b"
        );
        assert_eq!(without_os_error("x (os error y)"), "x (os error y)");
        assert_eq!(without_os_error("plain (note)"), "plain (note)");
    }
}
