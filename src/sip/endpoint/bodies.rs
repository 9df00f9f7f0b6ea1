//! Request bodies the endpoint reads: DTMF in SIP INFO (`application/dtmf-relay`,
//! `application/dtmf`) and the status line of a NOTIFY's `message/sipfrag`
//! (RFC 3420) during a transfer.

/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`). `Signal` may be a digit,
/// `*`, `#`, `A`–`D`, or the event number 10/11 for `*`/`#`.
pub fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = dtmf_char(v),
            "duration" => duration = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

/// `application/dtmf`: the body is the digit (or event number).
pub fn parse_dtmf(body: &str) -> Option<char> {
    dtmf_char(body.trim())
}

fn dtmf_char(v: &str) -> Option<char> {
    match v {
        "10" => return Some('*'),
        "11" => return Some('#'),
        "12" => return Some('A'),
        "13" => return Some('B'),
        "14" => return Some('C'),
        "15" => return Some('D'),
        _ => {}
    }
    let mut chars = v.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

/// The status code of a `message/sipfrag` body's status line.
pub fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code = rest.split_whitespace().next()?;
    let code: u16 = code.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}
